"""Pitch, vibrato and tremolo of a live stream: events and continuous values.

:class:`TechniqueDetector` wraps the native :class:`rtclassify._core.TechniqueTracker`
(streaming YIN pitch, vibrato from the f0 contour, tremolo from the level
contour; see ``csrc/technique.h``) and turns its frames into events:

- :class:`~rtclassify.detect.events.VibratoOn` / ``VibratoOff`` and
  :class:`~rtclassify.detect.events.TremoloOn` / ``TremoloOff`` at the frames
  where the tracker's hysteresis switches;
- :class:`~rtclassify.detect.events.TechniqueValues` (pitch in Hz and MIDI
  note, vibrato rate/extent, tremolo rate/depth) every ``value_interval``
  seconds.

The tracker emits one frame every ``hop_length`` samples (5 ms by default);
frame ``k`` of the stream is decided after sample ``(k + 1) * hop_length``, and
that is its stream time. Any split of the stream into blocks gives the same
frames and events.
"""

from __future__ import annotations

import functools
import math
import numbers
import time

import numpy as np

from .. import _core
from ..audio.samples import F32, check_samples_dtype
from ..errors import ParameterError
from .events import Event, TechniqueValues, TremoloOff, TremoloOn, VibratoOff, VibratoOn

__all__ = ["TechniqueDetector", "hz_to_midi", "frame_dict", "SAMPLE_RATES", "check_sample_rate"]

#: input sample rates (Hz) the native pitch tracker takes, and with it the vibrato and tremolo trackers
SAMPLE_RATES = (4000, 384000)
#: the longest ``value_interval`` (seconds) a TechniqueDetector takes
MAX_VALUE_INTERVAL = 3600.0


def check_sample_rate(rate: float, what: str, way_out: str) -> None:
    """Refuse a sample rate the pitch, vibrato and tremolo trackers do not take (:data:`SAMPLE_RATES`): a
    ParameterError that begins with ``what`` (the rate and where it comes from) and ends with ``way_out``."""
    lo, hi = SAMPLE_RATES
    if not lo <= rate <= hi:
        raise ParameterError(f"{what} is outside the {lo}-{hi} Hz that the pitch, vibrato and tremolo trackers "
                             f"take{way_out}")


def hz_to_midi(hz: float) -> float:
    """Fractional MIDI note number of a frequency in Hz (A4 = 440 Hz = 69)."""
    return 69.0 + 12.0 * math.log2(hz / 440.0)


def frame_dict(values: TechniqueValues | None) -> dict:
    """The technique part of a ``rtclassify tag`` JSONL frame.

    Parameters
    ----------
    values : TechniqueValues or None
        The newest values (None before the first tracker frame).

    Returns
    -------
    dict
        ``{"pitch": Hz or None, "vibrato": {"on", "rate", "extent"},
        "tremolo": {"on", "rate", "depth"}}``; rate in Hz, extent in cents
        (half peak-to-peak), depth in dB (peak-to-peak), 0.0 while off.
    """
    if values is None:
        return {
            "pitch": None,
            "vibrato": {"on": False, "rate": 0.0, "extent": 0.0},
            "tremolo": {"on": False, "rate": 0.0, "depth": 0.0},
        }
    return {
        "pitch": values.pitch,
        "vibrato": {"on": values.vibrato, "rate": values.vibrato_rate, "extent": values.vibrato_extent},
        "tremolo": {"on": values.tremolo, "rate": values.tremolo_rate, "depth": values.tremolo_depth},
    }


def frame_dict_after(frame: dict, event) -> dict:
    """``frame`` (a :func:`frame_dict`) after a newer event of the trackers: a TechniqueValues gives the whole
    dict, a switch (VibratoOn/Off, TremoloOn/Off) its technique's part. The values come every 20 ms and a switch
    at its own frame, so a dict built from the values alone could say a vibrato was still off just after the
    VibratoOn before it."""
    kind = event.kind
    if kind == "technique":
        return frame_dict(event)
    if kind in ("vibrato_on", "vibrato_off", "tremolo_on", "tremolo_off"):
        which, state = kind.split("_")
        size = "extent" if which == "vibrato" else "depth"
        on = state == "on"
        frame = dict(frame)
        frame[which] = {"on": on, "rate": float(event.rate) if on else 0.0,
                        size: float(getattr(event, size)) if on else 0.0}
    return frame


@functools.lru_cache(maxsize=1)
def _native_defaults() -> dict:
    """The native TechniqueTracker's default configuration, read once (a tracker is built to read it)."""
    return dict(_core.TechniqueTracker(48000.0).config)


def _default_fmax() -> float:
    """The native tracker's default pitch ceiling (Hz)."""
    return float(_native_defaults()["fmax"])


def _tracker_options() -> set:
    """The keyword options of the native TechniqueTracker (its configuration's keys less the positional ones)."""
    return set(_native_defaults()) - {"sample_rate", "hop_length"}


def _stream_time_offset(value) -> float:
    """``stream_time_offset`` as a float: a finite real number (not a bool), else a ParameterError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ParameterError(f"stream_time_offset: must be a number of seconds (got {value!r})")
    t = float(value)
    if not math.isfinite(t):
        raise ParameterError(f"stream_time_offset: must be finite (got {value!r})")
    return t


class TechniqueDetector:
    """Streaming pitch, vibrato and tremolo detector for one audio channel.

    Parameters
    ----------
    sample_rate : float
        Rate of the samples given to :meth:`process`, Hz (4000 to 384000).
    hop_length : int, optional
        Samples between tracker frames (default: 5 ms).
    channel : int
        Channel number written into the events.
    value_interval : float
        Seconds between :class:`TechniqueValues` (rounded to whole frames;
        0 emits one per frame).
    **tracker
        Further keyword arguments of :class:`rtclassify._core.TechniqueTracker`
        (``fmin``, ``fmax``, ``threshold``, ``silence_db``, ``level_window``,
        ``tremolo_min_confidence``, ``compensate``, ``vibrato={...}``,
        ``tremolo={...}``).

    Raises
    ------
    ParameterError
        For a bad parameter (the message names it).
    """

    def __init__(self, sample_rate: float, *, hop_length: int | None = None, channel: int = 0,
                 value_interval: float = 0.02, **tracker):
        if isinstance(value_interval, bool) or not isinstance(value_interval, numbers.Real) \
                or not math.isfinite(value_interval) or not 0 <= value_interval <= MAX_VALUE_INTERVAL:
            raise ParameterError(f"value_interval: must be a number of seconds from 0 to {MAX_VALUE_INTERVAL:g} "
                                 f"(got {value_interval!r})")
        if isinstance(channel, bool) or not isinstance(channel, (numbers.Integral, np.integer)) or channel < 0:
            raise ParameterError(f"channel: must be an integer >= 0 (got {channel!r})")
        if "fmax" not in tracker and isinstance(sample_rate, numbers.Real) and not isinstance(sample_rate, bool) \
                and math.isfinite(sample_rate):
            # the default pitch ceiling needs 4x its rate: lower it for slower input instead of refusing a
            # parameter the caller never set
            top = _default_fmax()
            if 0 < sample_rate / 4 < top:
                tracker["fmax"] = sample_rate / 4
        known = _tracker_options()
        unknown = sorted(set(tracker) - known)
        if unknown:
            raise ParameterError(f"unknown technique tracker option(s): {', '.join(map(repr, unknown))} (known: "
                                 f"{', '.join(sorted(known))})")
        try:
            # the rate as given: the native constructor names a string or None as sample_rate (float() would
            # take "48000" and word a None's refusal without the parameter's name)
            self._tracker = _core.TechniqueTracker(sample_rate, hop_length, **tracker)
        except (ValueError, TypeError) as exc:
            raise ParameterError(str(exc)) from exc
        self.channel = int(channel)
        self.sample_rate = float(self._tracker.sample_rate)
        self.hop_length = int(self._tracker.hop_length)
        self.frame_rate = self.sample_rate / self.hop_length
        self._value_every = max(1, int(round(value_interval * self.frame_rate)))
        self._vibrato_on = False
        self._tremolo_on = False
        self._latest: TechniqueValues | None = None
        # the newest frame when it is not a value frame: (the block's native frames, its index, time, wall time),
        # made a TechniqueValues by :attr:`latest` (the block's frames are held until the next block)
        self._latest_at: tuple | None = None
        self._latest_made: tuple | None = None  # (_latest_at, its TechniqueValues), once asked for
        self._last_time = 0.0

    # ------------------------------------------------------------------ state
    @property
    def config(self) -> dict:
        """The native tracker's configuration (hop, pitch range, thresholds)."""
        return self._tracker.config

    @property
    def latest(self) -> TechniqueValues | None:
        """Values of the newest tracker frame (None before the first one)."""
        # made when asked (most blocks' newest frame is not a value frame), from one read of the pending frame and
        # without changing it: a reader on another thread never undoes a newer block's update
        at = self._latest_at
        if at is None:
            return self._latest
        made = self._latest_made
        if made is None or made[0] is not at:
            made = (at, self._value(*at))
            self._latest_made = made
        return made[1]

    @property
    def vibrato_on(self) -> bool:
        """Whether a vibrato is on now."""
        return self._vibrato_on

    @property
    def tremolo_on(self) -> bool:
        """Whether a tremolo is on now."""
        return self._tremolo_on

    @property
    def samples(self) -> int:
        """Samples consumed since construction or :meth:`reset`."""
        return int(self._tracker.samples)

    @property
    def nonfinite_count(self) -> int:
        """Non-finite input samples replaced by 0."""
        return int(self._tracker.nonfinite_count)

    def frame_dict(self) -> dict:
        """The technique part of a JSONL frame for the newest values (see :func:`frame_dict`)."""
        return frame_dict(self.latest)

    def reset(self) -> None:
        """Forget the stream (without emitting offs; see :meth:`finish`)."""
        self._tracker.reset()
        self._vibrato_on = False
        self._tremolo_on = False
        self._latest = None
        self._latest_at = None
        self._latest_made = None
        self._last_time = 0.0

    # ------------------------------------------------------------ processing
    def track(self, block: np.ndarray) -> dict:
        """Run the native tracker on a block and return its raw frames.

        Parameters
        ----------
        block : np.ndarray, shape (n_samples,)
            Mono float samples in [-1, 1] (converted to float32).

        Returns
        -------
        dict of np.ndarray, each shape (n_frames,)
            See :meth:`rtclassify._core.TechniqueTracker.process`.

        Raises
        ------
        ParameterError
            A block that is not 1-D, or not of a float dtype (integer PCM would
            be read unscaled, complex values would lose their imaginary part).
        """
        return self._tracker.process(self._samples(block))

    def _frames(self, block: np.ndarray) -> np.ndarray:
        """:meth:`track`'s frames as one structured array (a field per key of its dict: one array per call)."""
        return self._tracker.process_frames(self._samples(block))

    @staticmethod
    def _samples(block) -> np.ndarray:
        """``block`` as 1-D float32 samples for the native tracker (see :meth:`track`)."""
        if type(block) is np.ndarray and block.dtype is F32 and block.ndim == 1:
            # float32 samples in the machine's order (the session's own buffer): as they are, the native side
            # reads them in place (contiguous) or copies them (strided) as ascontiguousarray would
            return block
        x = np.asarray(block)
        if x.ndim != 1:
            raise ParameterError(f"block: must be 1-D mono samples (got shape {x.shape})")
        # the native tracker's refusal, which the float32 conversion below would defeat
        x = check_samples_dtype(x, "block", int16=False)
        return np.ascontiguousarray(x, dtype=np.float32)

    def process(self, block: np.ndarray, stream_time_offset: float | None = None
                ) -> tuple[list[Event], list[TechniqueValues]]:
        """Consume a block of samples.

        Parameters
        ----------
        block : np.ndarray, shape (n_samples,)
            Mono float samples at ``sample_rate`` (integer PCM and complex
            values are refused, see :meth:`track`).
        stream_time_offset : float, optional
            Stream time in seconds of the block's first sample. Default: the
            samples this detector has consumed, divided by the sample rate.

        Returns
        -------
        events : list of Event
            VibratoOn/VibratoOff/TremoloOn/TremoloOff, in time order.
        values : list of TechniqueValues
            One every ``value_interval`` seconds of stream.

        Raises
        ------
        ParameterError
            A bad block (see :meth:`track`), or a ``stream_time_offset``
            that is not a finite number of seconds; nothing is consumed.
        """
        tracker = self._tracker
        first_frame = tracker.frames
        # the samples before the block matter only for an offset's times
        before = tracker.samples if stream_time_offset is not None else 0
        # checked before the block is consumed: a refused call takes in nothing
        base = None if stream_time_offset is None else _stream_time_offset(stream_time_offset)
        fr = self._frames(block)
        von = fr["vibrato_on"]
        n = len(von)
        events: list[Event] = []
        values: list[TechniqueValues] = []
        if n == 0:
            return events, values
        wall = time.time()
        # No per-frame Python work unless a frame gives an output: a switch of either technique (rare; one
        # frame's bool, or a block's bools' bytes, compared with the state) or a value frame (every
        # ``_value_every``-th frame of the stream, the newest frame's only when asked for, see :attr:`latest`).
        ton = fr["tremolo_on"]
        if n == 1:
            switch = von.item(0) != self._vibrato_on or ton.item(0) != self._tremolo_on
        else:
            switch = (b"\0" if self._vibrato_on else b"\1") in von.tobytes() \
                or (b"\0" if self._tremolo_on else b"\1") in ton.tobytes()
        if switch:
            self._switches(fr, n, first_frame, before, base, wall, events)
        every = self._value_every
        first_value = -first_frame % every  # index in this block of its first value frame
        if first_value < n:
            if first_value + every >= n:  # the block holds a single value frame
                values.append(self._value(fr, first_value, self._time(first_frame + first_value, before, base), wall))
            else:
                values.extend(self._values(fr, range(first_value, n, every), first_frame, before, base, wall))
        k = first_frame + n - 1
        t = self._time(k, before, base)
        if values and k % every == 0:  # the newest frame is a value frame
            self._latest = values[-1]
            self._latest_at = self._latest_made = None  # (in this order: a reader sees the older or the newer)
        else:
            self._latest_at = (fr, n - 1, t, wall)
        self._last_time = t
        return events, values

    def _time(self, k: int, before: int, base: float | None) -> float:
        """Stream time of the stream's frame ``k`` (``base``: the block's offset, its first sample ``before``).
        Without an offset it depends on the frame index only (the same whatever the block split)."""
        if base is None:
            return (k + 1) * self.hop_length / self.sample_rate
        return base + ((k + 1) * self.hop_length - before) / self.sample_rate

    def _switches(self, fr: np.ndarray, n: int, first_frame: int, before: int, base: float | None, wall: float,
                  events: list) -> None:
        """Append the VibratoOn/Off and TremoloOn/Off of a block's frames to ``events`` (frame order; a vibrato's
        before a tremolo's in one frame) and follow the on states."""
        von = fr["vibrato_on"].tolist()
        ton = fr["tremolo_on"].tolist()
        ch = self.channel
        for i in range(n):
            v, tr = von[i], ton[i]
            if v == self._vibrato_on and tr == self._tremolo_on:
                continue
            t = self._time(first_frame + i, before, base)
            if v != self._vibrato_on:
                self._vibrato_on = v
                events.append(VibratoOn(t, wall, ch, rate=fr["vibrato_rate"].item(i),
                                        extent=fr["vibrato_extent"].item(i)) if v else VibratoOff(t, wall, ch))
            if tr != self._tremolo_on:
                self._tremolo_on = tr
                events.append(TremoloOn(t, wall, ch, rate=fr["tremolo_rate"].item(i),
                                        depth=fr["tremolo_depth"].item(i)) if tr else TremoloOff(t, wall, ch))

    #: the fields of a block's frames (:meth:`_frames`) that a TechniqueValues reads, in :meth:`_values_of`'s order
    _VALUE_FIELDS = ("f0", "voiced", "confidence", "level_db", "vibrato_on", "vibrato_rate", "vibrato_extent",
                     "tremolo_on", "tremolo_rate", "tremolo_depth")

    def _value(self, fr: np.ndarray, i: int, t: float, wall: float) -> TechniqueValues:
        """The TechniqueValues of frame ``i`` of a block's frames ``fr`` (:meth:`_frames`), at stream time ``t``."""
        return self._values_of(t, wall, *(fr[k].item(i) for k in self._VALUE_FIELDS))

    def _values(self, fr: np.ndarray, idx: range, first_frame: int, before: int, base: float | None,
                wall: float) -> list[TechniqueValues]:
        """The TechniqueValues of the block's frames ``idx`` (a range), each column read once (strided)."""
        sl = slice(idx.start, idx.stop, idx.step)
        cols = [fr[k][sl].tolist() for k in self._VALUE_FIELDS]
        return [self._values_of(self._time(first_frame + idx[j], before, base), wall, *row)
                for j, row in enumerate(zip(*cols))]

    def _values_of(self, t: float, wall: float, f0, voiced, conf, level, von, vrate, vext, ton, trate,
                   tdepth) -> TechniqueValues:
        """A TechniqueValues from one frame's fields (:data:`_VALUE_FIELDS`): no pitch where unvoiced, no rate,
        extent or depth where that technique is off."""
        pitch = f0 if voiced else None
        return TechniqueValues(
            t, wall, self.channel,
            pitch=pitch,
            midi=hz_to_midi(pitch) if pitch else None,
            confidence=conf,
            level_db=level,
            vibrato=von,
            vibrato_rate=vrate if von else 0.0,
            vibrato_extent=vext if von else 0.0,
            tremolo=ton,
            tremolo_rate=trate if ton else 0.0,
            tremolo_depth=tdepth if ton else 0.0,
        )

    def finish(self, stream_time: float | None = None) -> list[Event]:
        """Offs for every technique that is on (call when the stream stops).

        Parameters
        ----------
        stream_time : float, optional
            Stream time of the stop (default: the newest frame's time).
        """
        t = self._last_time if stream_time is None else float(stream_time)
        wall = time.time()
        events: list[Event] = []
        if self._vibrato_on:
            events.append(VibratoOff(t, wall, self.channel))
            self._vibrato_on = False
        if self._tremolo_on:
            events.append(TremoloOff(t, wall, self.channel))
            self._tremolo_on = False
        return events
