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
from ..audio.samples import check_samples_dtype
from ..errors import ParameterError
from .events import Event, TechniqueValues, TremoloOff, TremoloOn, VibratoOff, VibratoOn

__all__ = ["TechniqueDetector", "hz_to_midi", "frame_dict", "SAMPLE_RATES"]

#: input sample rates (Hz) the native pitch tracker takes, and with it the vibrato and tremolo trackers
SAMPLE_RATES = (4000, 384000)


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
                or not math.isfinite(value_interval) or value_interval < 0:
            raise ParameterError(f"value_interval: must be a number >= 0 seconds (got {value_interval!r})")
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
            self._tracker = _core.TechniqueTracker(float(sample_rate), hop_length, **tracker)
        except (ValueError, TypeError) as exc:
            raise ParameterError(str(exc)) from exc
        self.channel = int(channel)
        self.sample_rate = float(sample_rate)
        self.hop_length = int(self._tracker.hop_length)
        self.frame_rate = self.sample_rate / self.hop_length
        self._value_every = max(1, int(round(value_interval * self.frame_rate)))
        self._vibrato_on = False
        self._tremolo_on = False
        self._latest: TechniqueValues | None = None
        self._last_time = 0.0

    # ------------------------------------------------------------------ state
    @property
    def config(self) -> dict:
        """The native tracker's configuration (hop, pitch range, thresholds)."""
        return self._tracker.config

    @property
    def latest(self) -> TechniqueValues | None:
        """Values of the newest tracker frame (None before the first one)."""
        return self._latest

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
        return frame_dict(self._latest)

    def reset(self) -> None:
        """Forget the stream (without emitting offs; see :meth:`finish`)."""
        self._tracker.reset()
        self._vibrato_on = False
        self._tremolo_on = False
        self._latest = None
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
        x = np.asarray(block)
        if x.ndim != 1:
            raise ParameterError(f"block: must be 1-D mono samples (got shape {x.shape})")
        # the native tracker's refusal, which the float32 conversion below would defeat
        x = check_samples_dtype(x, "block", int16=False)
        return self._tracker.process(np.ascontiguousarray(x, dtype=np.float32))

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
        """
        before = self._tracker.samples
        first_frame = int(self._tracker.frames)
        fr = self.track(block)
        n = len(fr["f0"])
        events: list[Event] = []
        values: list[TechniqueValues] = []
        if n == 0:
            return events, values
        base = (before / self.sample_rate) if stream_time_offset is None else float(stream_time_offset)
        wall = time.time()
        sr = self.sample_rate
        hop = self.hop_length
        f0 = fr["f0"].tolist()
        conf = fr["confidence"].tolist()
        level = fr["level_db"].tolist()
        voiced = fr["voiced"].tolist()
        von = fr["vibrato_on"].tolist()
        vrate = fr["vibrato_rate"].tolist()
        vext = fr["vibrato_extent"].tolist()
        ton = fr["tremolo_on"].tolist()
        trate = fr["tremolo_rate"].tolist()
        tdepth = fr["tremolo_depth"].tolist()
        ch = self.channel
        for i in range(n):
            k = first_frame + i
            # without an offset the time depends on the frame index only (the same whatever the block split)
            t = (k + 1) * hop / sr if stream_time_offset is None else base + ((k + 1) * hop - before) / sr
            if von[i] != self._vibrato_on:
                self._vibrato_on = von[i]
                events.append(VibratoOn(t, wall, ch, rate=vrate[i], extent=vext[i]) if von[i]
                              else VibratoOff(t, wall, ch))
            if ton[i] != self._tremolo_on:
                self._tremolo_on = ton[i]
                events.append(TremoloOn(t, wall, ch, rate=trate[i], depth=tdepth[i]) if ton[i]
                              else TremoloOff(t, wall, ch))
            if k % self._value_every == 0 or i == n - 1:
                pitch = f0[i] if voiced[i] else None
                v = TechniqueValues(
                    t, wall, ch,
                    pitch=pitch,
                    midi=hz_to_midi(pitch) if pitch else None,
                    confidence=conf[i],
                    level_db=level[i],
                    vibrato=von[i],
                    vibrato_rate=vrate[i] if von[i] else 0.0,
                    vibrato_extent=vext[i] if von[i] else 0.0,
                    tremolo=ton[i],
                    tremolo_rate=trate[i] if ton[i] else 0.0,
                    tremolo_depth=tdepth[i] if ton[i] else 0.0,
                )
                if k % self._value_every == 0:
                    values.append(v)
                self._latest = v
            self._last_time = t
        return events, values

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
