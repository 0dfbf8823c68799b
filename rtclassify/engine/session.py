"""The streaming path from audio samples to tag events, synchronous and without threads.

:class:`StreamSession` is the one implementation of the runtime path: the
live listener runs it on its worker thread, a host application calls it from
its own audio loop (plugin style), and offline tagging
(:meth:`rtclassify.Classifier.tag`, ``rtclassify tag``) feeds a file through
it in large blocks. Any split of a stream into blocks gives the same frames,
probabilities (bit for bit) and events.

Per block (:meth:`StreamSession.process`):

1. The block is validated and converted to mono float32 (int16 is scaled by
   1/32768; a 2-D ``(frames, channels)`` block is reduced to the configured
   channel or to the average of all channels). Blocks longer than
   ``max_block`` are processed in pieces of ``max_block`` samples.
2. If the input rate differs from the model's, the streaming resampler
   (:class:`rtclassify.audio.resample.StreamResampler`: the native
   low-latency one by default, or soxr) resamples it (non-finite samples are replaced by 0 and counted before resampling, since
   the resampler would spread them). Otherwise the native frontend replaces and
   counts them.
3. :class:`rtclassify.MelFrontend`, built from the bundle's frontend config,
   turns samples into log-mel frames, which go into a preallocated ring of the
   last ``W`` frames (``W`` = the model's window). Before ``W`` frames exist,
   the ring holds the frontend's value for silence (the frame it gives for
   digital silence), so the first windows are padded with silence.
4. Every ``hop_frames`` frames the backend runs on the last ``W`` frames and
   the decoder turns its output into events.

Timing conventions (all times are seconds of *input* audio):

- Output ``k`` refers to frontend frame ``o_k = (k + 1) * hop_frames - 1``
  (the frame at index ``W - 1 - lookahead`` of its window); its ``time`` is
  that frame's centre, ``(o_k * hop_length + n_fft / 2) / model_rate``. The
  resampler is time-aligned, so this is also the time in the input.
- It is computed when frame ``o_k + lookahead`` is complete; events carry
  ``stream_time`` = the input time by which that is guaranteed:
  ``((o_k + lookahead) * hop_length + n_fft) / model_rate`` plus, when
  resampling, the resampler's worst-case delay (the native filter's newer
  half, or soxr's measured hold-back). Without resampling
  this is exactly the number of input seconds consumed when the output
  became due. It does not depend on how the stream is split into blocks.
- :attr:`StreamSession.latency_samples` (input rate) is the algorithmic
  latency a host should compensate: resampler delay + ``n_fft / 2`` (half a
  frame) + ``lookahead * hop_length`` + one hop of scheduling
  (``hop_frames * hop_length``).

A session is not thread-safe; call it from one thread at a time. A call of
``process``, ``flush`` or ``reset`` made while another thread is inside one of
them is refused with :class:`~rtclassify.errors.StateError` before it touches
anything (the running call is not disturbed).
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..audio.samples import F32, I16_SCALE, check_samples_dtype
from ..detect.decoder import Decoder, DecoderConfig
from ..detect.events import Event
from ..detect.techniques import frame_dict, frame_dict_after
from ..errors import BlockLayoutWarning, ParameterError, StateError

__all__ = ["StreamSession", "FrameResult"]

_TIMING_HISTORY = 4096


@dataclass(slots=True)
class FrameResult:
    """One model output.

    Attributes
    ----------
    index : int
        Frontend frame the output refers to (``o_k``).
    time : float
        Centre of that frame, in input seconds.
    stream_time : float
        Input seconds by which the output was decided (as in the events).
    probs : ndarray, float32, shape (n_tags,)
        The model's probabilities.
    smoothed : ndarray, float32, shape (n_tags,)
        The decoder's smoothed probabilities.
    active : ndarray, bool, shape (n_tags,)
        The decoder's on/off state after this output.
    events : list of Event
        The events decided at this output.
    technique : dict or None
        With techniques on: pitch, vibrato and tremolo as the trackers gave
        them last by ``time`` (their values come every 20 ms; see
        :func:`rtclassify.detect.techniques.frame_dict`); None otherwise.
    """

    index: int
    time: float
    stream_time: float
    probs: np.ndarray
    smoothed: np.ndarray
    active: np.ndarray
    events: list = field(default_factory=list)
    technique: dict | None = None


class _HopTimer:
    """Engine cost per hop: the time of each ``process``/``flush`` call, spread over the hops it produced.

    A call that produced no hop carries its time over to the next call that does.
    """

    def __init__(self, hop_s: float):
        self.hop_s = hop_s
        self.times = np.zeros(_TIMING_HISTORY, np.float64)
        self.reset()

    def reset(self) -> None:
        self.hops = 0
        self.late = 0
        self.sum = 0.0
        self.pending = 0.0
        self.times[:] = 0.0

    def add(self, elapsed: float, hops: int) -> None:
        """Account ``elapsed`` seconds of a call that produced ``hops`` hops."""
        elapsed += self.pending
        if hops == 0:
            self.pending = elapsed
            return
        self.pending = 0.0
        per = elapsed / hops
        self.sum += elapsed
        if per > self.hop_s:
            self.late += hops
        hist = self.times
        for k in range(self.hops, self.hops + hops):
            hist[k % _TIMING_HISTORY] = per
        self.hops += hops

    def stats_ms(self) -> tuple[float, float]:
        """(mean, p99 over the last 4096 hops) engine cost per hop in milliseconds (0 before any hop)."""
        n = self.hops
        if not n:
            return 0.0, 0.0
        recent = self.times[: min(n, _TIMING_HISTORY)]
        return 1000.0 * self.sum / n, 1000.0 * float(np.percentile(recent, 99))


def _positive_seconds(value, name: str) -> float:
    """``value`` as float seconds: a finite number > 0 (not a bool or a string), else a ParameterError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} must be a positive number of seconds (got {value!r})")
    return float(value)


_STREAM_TIME = operator.attrgetter("stream_time")


def merge_techniques(sessions, events: list, start: int) -> None:
    """Merge the technique events that ``sessions`` (StreamSessions, in order) gathered over a chunk into
    ``events[start:]`` in stream-time order. The sort is stable: events of one time keep the order of
    ``events[start:]``, then of the sessions, so one merge for several streams gives what merging them one
    after the other would."""
    added = False
    for s in sessions:
        if s._tech_events:
            events.extend(s._tech_events)
            s._tech_events.clear()
            added = True
    if added:
        events[start:] = sorted(events[start:], key=_STREAM_TIME)


def call_all(calls) -> None:
    """Make every ``(function, argument)`` call, then raise the first exception one of them raised (the
    callbacks of a block's outputs: one that fails does not keep the others from theirs)."""
    first = None
    for fn, arg in calls:
        try:
            fn(arg)
        except BaseException as exc:  # noqa: BLE001 - raised below, after the other calls
            if first is None:
                first = exc
    if first is not None:
        raise first


def _positive_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum \
            or (maximum is not None and value > maximum):
        rng = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ParameterError(f"{name} must be an integer {rng} (got {value!r})")
    return int(value)


#: input sample rates a session takes (Hz)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768000


def check_sample_rate(rate, name: str = "sample_rate") -> int:
    """``rate`` as an int of Hz a session takes (:data:`MIN_SAMPLE_RATE` to :data:`MAX_SAMPLE_RATE`);
    ParameterError naming ``name`` otherwise."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(rate) or int(rate) != rate or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ParameterError(f"{name} must be a whole number of Hz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} "
                             f"(got {rate!r})")
    return int(rate)


#: the largest block a session takes in one piece (samples; longer blocks are split) and the largest batch
MAX_BLOCK = 1 << 24
MAX_BATCH = 4096
#: the most channels a 2-D block may have (more is a (channels, frames) block read the wrong way round)
MAX_BLOCK_CHANNELS = 1024
#: a stream's channels are taken from its first 2-D block with at least as many frames as channels; before
#: it, a block of at most this many frames and 8 times as many channels is (channels, frames) the wrong way
#: round (:func:`looks_channels_first`)
TRANSPOSED_CHANNELS = 16


#: after this many 2-D blocks of at least 4 times as many channels as frames, before any block has
#: shown the channel count, a stream warns that they may be (channels, frames) (BlockLayoutWarning, once)
NARROW_BLOCKS_WARNED = 16


def looks_channels_first(n_fr: int, n_ch: int) -> bool:
    """A (frames, channels) block of shape ``(n_fr, n_ch)`` that is surely (channels, frames) the wrong way round:
    at most :data:`TRANSPOSED_CHANNELS` "frames" of 8 times as many "channels". That catches the planar buffers
    of plugin hosts (JUCE, VST: channel-major) from 16 frames of stereo, 64 of 8 channels and 128 of 16 on (the
    rule was 64 times, and 64-frame stereo buffers, a usual low-latency size, went through as 2 frames of 64
    channels: the stream ran 32 times slow without a word), while a device's first block passes unless it
    holds at most 16 frames of 8 times as many channels (2 frames of 16, 16 of 128)."""
    return 0 < n_fr <= TRANSPOSED_CHANNELS and n_ch >= 8 * n_fr


def skip_count(n, flushed: bool, unit: str = "samples", flushed_what: str = "the stream was") -> int:
    """``skip(n)``'s ``n`` as an int, checked: a whole number >= 0 (of ``unit``), and no skip after a flush."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ParameterError(f"skip: n must be a whole number of {unit} >= 0 (got {n!r})")
    if flushed:
        raise StateError(f"{flushed_what} flushed; call reset() before skipping audio")
    return int(n)


def one_call_at_a_time(deliver: bool = False):
    """Decorator of a session's ``process``, ``flush`` and ``reset``: the call takes the session
    (:meth:`NativeStateMixin._enter`: refused with a StateError while another thread is inside one of them)
    and releases it before handing its outputs to ``on_frame`` (``deliver``), so ``on_frame`` may call the
    session: the outputs of such a nested call are handed over after the outer call's, in order."""

    def wrap(fn):
        what = fn.__name__

        @functools.wraps(fn)
        def call(self, *args, **kwargs):
            self._enter(what)
            try:
                try:
                    out = fn(self, *args, **kwargs)
                finally:
                    self._in_use.release()
            except Exception:
                if deliver:  # what the call decided before it failed (a failed model run) still goes to on_frame
                    with contextlib.suppress(Exception):  # the call's own error is the one raised
                        self._deliver_all()
                raise
            if deliver:
                try:
                    self._deliver_all()
                except BaseException as exc:
                    # what on_frame raised: the call's events (a process or flush returns them) go with it, as
                    # with a failed model run, so a host still sends its technique switches and on/offs (always
                    # this call's: a host raising one exception object every time would get the first call's)
                    if isinstance(out, list):
                        with contextlib.suppress(AttributeError, TypeError):
                            exc.events = out
                    raise
            return out

        return call

    return wrap


class NativeStateMixin:
    """Refuses copy and pickle: a copy would share the native frontend, resampler and trackers with the
    original, and each would corrupt the other's stream. ``_create_with`` says how to make another."""

    _create_with = "its Classifier"
    _delivering = None  # the thread handing outputs to on_frame (one_call_at_a_time), or None

    def _deliver_all(self) -> None:
        """Hand every queued output to ``on_frame``. A call from inside ``on_frame`` on the same thread only
        queues its outputs: this loop hands them over after the outer call's, in order. Every output gets
        its call even when one raises; then the first exception is raised."""
        me = threading.get_ident()
        if self._delivering == me:
            return
        self._delivering, outer = me, self._delivering
        first = None
        try:
            while True:
                try:
                    if not self._deliver_frames():
                        break
                except BaseException as exc:  # noqa: BLE001 - raised below, once everything is delivered
                    first = first or exc
        finally:
            self._delivering = outer
        if first is not None:
            raise first

    _run_error = None  # the first exception of a backend run in the current call (see _run_or_skip)

    def _run_or_skip(self, windows: np.ndarray, hops: int):
        """The backend's outputs for ``windows``, or None when its run failed: the ``hops`` outputs are lost, not
        the stream (the caller's triggers are already past them, its frames still go into the mel rings, the rest
        of the block is processed), and the first exception is raised when the call ends
        (:meth:`_raise_run_error`). After an exception that is not an Exception (KeyboardInterrupt), the model is
        not run again in this call."""
        err = self._run_error
        if err is not None and not isinstance(err, Exception):
            self._failed_hops += hops
            return None
        try:
            return self._run(windows)
        except BaseException as exc:  # noqa: BLE001 - raised by _raise_run_error once the audio is taken in
            self._failed_hops += hops
            if err is None:
                self._run_error = exc
            return None

    def _interrupted(self) -> bool:
        """A backend run of this call ended with KeyboardInterrupt or another non-Exception: stop after the chunk."""
        err = self._run_error
        return err is not None and not isinstance(err, Exception)

    def _raise_run_error(self, events: list) -> None:
        """Raise the first exception of a backend run in this call, if any, with ``events`` (what the call
        decided: the outputs of the other hops, and their events) as its ``events`` attribute."""
        exc, self._run_error = self._run_error, None
        if exc is not None:
            try:
                exc.events = events
            except (AttributeError, TypeError):
                pass
            raise exc

    def _enter(self, what: str) -> None:
        """Take the session for one ``process``/``flush``/``reset`` call (release ``self._in_use`` after it), or
        refuse with a StateError when another thread is inside one: two calls at once would interleave the
        stream's state (native objects refuse only while both run native code, after state has moved)."""
        if not self._in_use.acquire(blocking=False):
            raise StateError(f"{type(self).__name__}.{what}: another thread is using this session now; a session "
                             f"takes one call at a time (give each thread its own session)")

    def __copy__(self):
        raise TypeError(f"a {type(self).__name__} cannot be copied (its native state would be shared); create "
                        f"another with {self._create_with}")

    def __deepcopy__(self, memo):
        self.__copy__()

    def __reduce__(self):
        raise TypeError(f"a {type(self).__name__} cannot be pickled (it holds native state); create one where it "
                        f"runs with {self._create_with}")


def silence_frame(frontend: dict) -> np.ndarray:
    """The frame (n_mels,) float32 a frontend config gives for digital silence: what a session's window
    holds before a stream's first frame (the trainer pads its stream-start windows with the same frame)."""
    from .._core import MelFrontend

    return np.array(MelFrontend(**frontend).push(np.zeros(int(frontend["n_fft"]), np.float32))[0], np.float32)


class StreamSession(NativeStateMixin):
    """Synchronous streaming classifier: blocks of samples in, events out.

    Create it with :meth:`rtclassify.Classifier.stream`.

    Parameters
    ----------
    bundle : Bundle
    backend : Backend
    sample_rate : int
        Input sample rate in Hz (resampled to the bundle's rate when different).
    max_block : int
        Largest block processed in one piece; larger blocks are split. Buffers
        are preallocated for this size.
    hop : float, optional
        Time between model outputs in seconds, rounded to whole frontend
        frames (at least one). Default: the bundle's ``hop_frames``.
    channel : int or "mix"
        For 2-D blocks ``(frames, channels)``: the channel to use, or
        ``"mix"`` for the average of all channels. 1-D blocks are mono.
    decoder : dict, optional
        Decoder overrides (see :mod:`rtclassify.detect.decoder`).
    level_rate : float, optional
        TagLevel events per second (None: every hop, 0: none).
    resample_quality : str
        When resampling: ``"auto"`` (default) takes the native low-latency
        resampler (``"native"``: 5.9 ms from 44.1-192 kHz, where soxr's HQ
        holds samples back 36.5-79 ms), or for a ratio it cannot take (e.g.
        from 44101 Hz) soxr's MQ or HQ, whichever holds samples back less; see
        :func:`rtclassify.audio.resample.stream_quality`. Or ``"native"`` or a
        soxr quality name.
    record_frames : bool
        Keep a :class:`FrameResult` per output in :attr:`last_frames`.
    on_frame : callable, optional
        Called with each :class:`FrameResult`, in order, at the end of the
        ``process``/``flush`` call that produced it (once the block is taken
        in, so an exception from it leaves the session consistent).
    techniques : bool or dict
        Run the native pitch, vibrato and tremolo trackers on the same input
        samples (at the input rate): ``process`` then also returns
        VibratoOn/Off, TremoloOn/Off and TechniqueValues events, merged in
        stream-time order with the tag events of each block, and every
        :class:`FrameResult` carries ``technique``. With resampling, a tag
        event's time includes the resampler's delay, so a later block can
        bring technique events with earlier times than tag events already
        returned: the events are the same for any split of the input, their
        order across blocks is not (sort by ``stream_time`` if it matters). A dict passes options to
        :class:`~rtclassify.detect.techniques.TechniqueDetector`.
    batch : int
        Most hops of one block run through the model in one call (1: one
        call per hop). Offline tagging uses a batch, which is several times
        cheaper per window on a multi-core CPU; every output is still decided
        in order, from the same window, before the block's call returns, but
        a batch's floating-point sums may differ from one window's in the
        last bits, so outputs match batch 1 to about 1e-6, not bit for bit.

    Attributes
    ----------
    sample_rate : int
        Input rate.
    model_rate : int
        The bundle's frontend rate.
    labels : tuple of str
    hop_frames : int
        Frontend frames per hop.
    hop_s : float
        Seconds per hop.
    latency_samples : int
        Algorithmic latency at the input rate (see the module notes).
    last_frames : list of FrameResult
        Outputs produced by the last :meth:`process` or :meth:`flush` call
        to end its work (with ``record_frames``): a call made from ``on_frame``
        ends before the outputs of the call that ran ``on_frame`` are handed
        over, so after both it holds the inner call's.
    decoder : Decoder
    """

    _create_with = "Classifier.stream()"

    def __init__(self, bundle, backend, sample_rate: int = 48000, max_block: int = 1024, hop: float | None = None,
                 channel: int | str = 0, decoder: dict | None = None, level_rate: float | None = None,
                 resample_quality: str = "auto", record_frames: bool = True,
                 on_frame: Callable[[FrameResult], None] | None = None, techniques: bool | dict = False,
                 batch: int = 1):
        from .._core import MelFrontend

        self.sample_rate = check_sample_rate(sample_rate)
        self.max_block = _positive_int(max_block, "max_block", maximum=MAX_BLOCK)
        self.batch = _positive_int(batch, "batch", maximum=MAX_BATCH)
        if channel != "mix":
            if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or channel < 0:
                raise ParameterError(f"channel must be an integer >= 0 or 'mix' (got {channel!r})")
            channel = int(channel)
        self.channel = channel
        if on_frame is not None and not callable(on_frame):
            raise ParameterError("on_frame must be callable")
        self.bundle = bundle
        self.backend = backend
        self.labels = tuple(bundle.labels)
        self.model_rate = bundle.sample_rate
        self._hop_len = bundle.hop_length
        self._n_fft = bundle.n_fft
        self._W = bundle.window_frames
        self._L = bundle.lookahead_frames
        if hop is None:
            self.hop_frames = bundle.hop_frames
        else:
            _positive_seconds(hop, "hop")
            window_s = self._W * self._hop_len / self.model_rate
            self.hop_frames = max(1, int(round(min(hop, 2 * window_s) * self.model_rate / self._hop_len)))
            if self.hop_frames > self._W:
                raise ParameterError(f"hop {hop!r} s is longer than the model's window ({window_s:.2f} s): the audio "
                                     f"between two outputs would never be heard")
        self.hop_s = self.hop_frames * self._hop_len / self.model_rate
        self.record_frames = bool(record_frames)
        self.on_frame = on_frame

        self._fe = MelFrontend(**bundle.frontend)
        self._silence = silence_frame(bundle.frontend)
        self._ring = np.empty((2 * self._W, bundle.n_mels), np.float32)
        self._win = np.empty((self.batch, bundle.n_mels, self._W), np.float32)
        self._buf = np.empty(self.max_block, np.float32)
        self._mix = np.empty(self.max_block, np.float64)
        self._mask = np.empty(self.max_block, bool)
        self._empty = np.zeros(0, np.float32)
        ratio = self.model_rate / self.sample_rate
        self._fbuf = np.empty((int(math.ceil(self.max_block * ratio / self._hop_len)) + 2, bundle.n_mels), np.float32)

        if self.sample_rate != self.model_rate:
            from ..audio.resample import StreamResampler

            self._rs = StreamResampler(self.sample_rate, self.model_rate, resample_quality, chunk=self.max_block)
            self.resampler_latency_s = self._rs.latency_s
        else:
            self._rs = None
            self.resampler_latency_s = 0.0

        self.decoder = Decoder(DecoderConfig.from_bundle(bundle, decoder, level_rate), self.hop_s,
                               channel=0 if channel == "mix" else channel)
        self._run = getattr(backend, "run_unchecked", backend.run)
        if not isinstance(techniques, (bool, dict)):
            raise ParameterError(f"techniques must be True, False or a dict of tracker options (got {techniques!r})")
        if techniques:
            from ..detect.techniques import TechniqueDetector

            options = dict(techniques) if isinstance(techniques, dict) else {}
            if "channel" in options:
                raise ParameterError("techniques: 'channel' is not a tracker option; the session's channel= sets it")
            self._tech = TechniqueDetector(self.sample_rate, channel=0 if channel == "mix" else channel, **options)
        else:
            self._tech = None
        latency_s = self.resampler_latency_s + (self._n_fft / 2 + (self._L + self.hop_frames) * self._hop_len) / self.model_rate
        self.latency_samples = int(math.ceil(latency_s * self.sample_rate - 1e-9))
        self._timer = _HopTimer(self.hop_s)
        self._in_use = threading.Lock()
        self.reset()

    # ------------------------------------------------------------------
    @property
    def latency_s(self) -> float:
        """:attr:`latency_samples` in seconds."""
        return self.latency_samples / self.sample_rate

    @property
    def technique_detector(self):
        """The :class:`~rtclassify.detect.techniques.TechniqueDetector` (None when techniques are off)."""
        return self._tech

    @property
    def active_tags(self) -> list[str]:
        """Tags that are on now."""
        return [self.labels[i] for i in np.flatnonzero(self.decoder.active)]

    @property
    def stream_time(self) -> float:
        """Seconds of input consumed so far (and skipped, :meth:`skip`)."""
        return (self._samples_in + self._skipped) / self.sample_rate

    @one_call_at_a_time()
    def skip(self, n: int) -> None:
        """Let the stream's clock run on by ``n`` input samples that will never come.

        A live host whose audio was dropped (the listener's ring overflowed while the worker was held up)
        calls it where the samples are missing, so that the times of the later outputs and events stay those
        of the audio device's clock; before, every later time lagged by the audio dropped, for the rest of
        the run. The audio before and after the gap is joined as it is (the model hears the splice); an
        output whose newest frame was made before the gap keeps its time. Counted in
        ``counters["skipped_samples"]``.

        Raises
        ------
        ParameterError
            ``n`` not a whole number >= 0.
        StateError
            After :meth:`flush` (until :meth:`reset`), or while another thread is inside a call.
        """
        self._skip_samples(skip_count(n, self._flushed))

    def _skip_samples(self, n: int) -> None:
        if n == 0:
            return
        if self._n_frames != self._skip_frame:  # frames made since the last gap: they keep the time before it
            self._skipped_before = self._skipped
            self._skip_frame = self._n_frames
        self._skipped += n

    def _skip_of(self, index: int) -> float:
        """Seconds skipped before frontend frame ``index`` (0 without a gap)."""
        return (self._skipped if index >= self._skip_frame else self._skipped_before) / self.sample_rate

    def output_time(self, index: int) -> float:
        """Time (input seconds, skipped ones included) of the centre of frontend frame ``index``."""
        return (index * self._hop_len + self._n_fft / 2) / self.model_rate + self._skip_of(index)

    @one_call_at_a_time()
    def reset(self) -> None:
        """Start a new stream: clears audio state, decoder state and counters."""
        self._fe.reset()
        if self._rs is not None:
            self._rs.reset()
        self._ring[:] = self._silence
        self._n_frames = 0
        self._trigger = self.hop_frames - 1 + self._L
        self.decoder.reset()
        self._samples_in = 0
        self._skipped = 0  # input samples skipped (skip()): the stream's clock ran on without them
        self._skip_frame = 0  # the first frame made after the last gap (before it: self._skipped_before)
        self._skipped_before = 0
        self._block_channels = 0  # channels of this stream's 2-D blocks, once a block has shown them
        self._narrow_blocks = 0  # 2-D blocks of 4 times as many channels as frames while the channels are unknown
        self._hops = 0
        self._failed_hops = 0
        self._run_error = None
        self._nonfinite_own = 0
        self._fe_nonfinite_base = self._frontend_nonfinite()
        self._last_decided = 0.0
        self._timer.reset()
        self._flushed = False
        self.last_frames: list[FrameResult] = []
        self._pending_frames: list[FrameResult] = []
        if self._tech is not None:
            self._tech.reset()
        self._tech_events: list[Event] = []  # technique events of the chunk being processed
        self._tech_values: list = []  # TechniqueValues and switches not yet passed by a model output
        self._tech_next = 0
        self._tech_now = frame_dict(None)  # the trackers' state at the last model output

    def _frontend_nonfinite(self) -> int:
        return int(self._fe.nonfinite_replaced)

    @property
    def counters(self) -> dict:
        """Counters of this stream (a new dict each call).

        Keys: ``samples_in``, ``frames``, ``hops``, ``failed_hops`` (hops
        whose backend run raised: no output), ``late_hops`` (hops whose
        engine cost exceeded the hop duration), ``compute_ms_mean``,
        ``compute_ms_p99`` (engine cost per hop: conversion, resampling,
        frontend, inference, decoding; p99 over the last 4096 hops; wall-clock
        time, so it includes any time the OS gave the CPU to other processes:
        on a busy machine a late hop need not be the engine's own cost),
        ``nonfinite_replaced``, ``bad_probabilities`` (model outputs that
        were NaN, infinite or outside [0, 1]: taken as 0 or clipped),
        ``hop_ms``, ``latency_algorithmic_ms``,
        ``latency_compute_ms`` (= ``compute_ms_mean``) and
        ``resampler_latency_ms`` (part of the algorithmic latency).
        """
        mean_ms, p99_ms = self._timer.stats_ms()
        return {
            "samples_in": self._samples_in,
            "skipped_samples": self._skipped,
            "frames": self._n_frames,
            "hops": self._hops,
            "failed_hops": self._failed_hops,
            "late_hops": self._timer.late,
            "compute_ms_mean": mean_ms,
            "compute_ms_p99": p99_ms,
            "nonfinite_replaced": self._nonfinite_own + self._frontend_nonfinite() - self._fe_nonfinite_base,
            "bad_probabilities": self.decoder.bad_probabilities,
            "hop_ms": 1000.0 * self.hop_s,
            "latency_algorithmic_ms": 1000.0 * self.latency_s,
            "latency_compute_ms": mean_ms,
            "resampler_latency_ms": 1000.0 * self.resampler_latency_s,
        }

    # ------------------------------------------------------------------
    def _check_block(self, block) -> np.ndarray:
        if not isinstance(block, np.ndarray):
            block = np.asarray(block)
        block = check_samples_dtype(block, "block")
        if block.ndim == 1:
            return block
        if block.ndim == 2:
            n_fr, n_ch = block.shape
            if n_ch == 0:
                raise ParameterError(f"block has no channels (shape (frames, channels) = {block.shape})")
            # (channels, frames) read as (frames, channels) would take seconds of audio as a few samples
            transpose = "blocks are (frames, channels): transpose a (channels, frames) block first"
            if n_ch > MAX_BLOCK_CHANNELS:
                raise ParameterError(f"block of shape {block.shape} has {n_ch} channels, more than any device "
                                     f"({MAX_BLOCK_CHANNELS}); {transpose}")
            if self._block_channels and n_ch != self._block_channels:
                raise ParameterError(f"block of shape {block.shape} has {n_ch} channels, the stream's earlier "
                                     f"blocks {self._block_channels}; {transpose} (a new stream: reset())")
            if not self._block_channels and looks_channels_first(n_fr, n_ch):
                raise ParameterError(f"block of shape {block.shape} looks like (channels, frames): {n_fr} "
                                     f"frame(s) of {n_ch} channels; {transpose}")
            if self.channel != "mix" and self.channel >= n_ch:
                raise ParameterError(f"channel {self.channel} out of range: the block has {n_ch} channel(s) "
                                     f"(shape (frames, channels) = {block.shape})")
            if not self._block_channels:
                if n_fr >= n_ch:  # a block that passed every check shows them
                    self._block_channels = n_ch
                elif n_fr and n_ch >= 4 * n_fr:
                    # not surely the wrong way round (looks_channels_first: a device's first blocks may be short),
                    # but (channels, frames) blocks of an interface with many channels ((16, 64), (32, 256)) would
                    # run the stream several times slow for ever without a word: said once when it lasts (frames
                    # first, 4 times as many channels as frames is rare: 64 channels in 16-frame buffers)
                    self._narrow_blocks += 1
                    if self._narrow_blocks == NARROW_BLOCKS_WARNED:
                        warnings.warn(BlockLayoutWarning(
                            f"{NARROW_BLOCKS_WARNED} blocks have had a quarter as many frames as channels or fewer "
                            f"(the last of shape {block.shape}, read as {n_fr} frame(s) of {n_ch} channels); if they "
                            f"are (channels, frames), transpose them first"), stacklevel=4)
            return block if self.channel == "mix" else block[:, self.channel]
        raise ParameterError(f"block must be 1-D (frames,) or 2-D (frames, channels); got shape {block.shape}")

    @one_call_at_a_time(deliver=True)
    def process(self, block) -> list[Event]:
        """Process a block of samples; returns the events it decided.

        Parameters
        ----------
        block : ndarray, shape (n,) or (n, channels)
            float32/float64 in [-1, 1] or int16 samples at :attr:`sample_rate`.
            2-D blocks are reduced with the session's ``channel`` setting. Any
            length is accepted (empty included); blocks longer than
            ``max_block`` are split.

        Returns
        -------
        list of Event
            TagOn/TagOff/TagLevel events in order. :attr:`last_frames` holds
            this call's outputs.

        Raises
        ------
        ParameterError
            Wrong dtype, rank or channel.
        StateError
            The session was flushed and not reset, or another thread is
            inside ``process``/``flush``/``reset`` now (a RuntimeError).
        Exception
            Whatever ``on_frame`` raised: after the whole block was taken
            in and every output handed to ``on_frame``, so the session stays
            consistent, with this call's events (technique switches and values
            included) in the exception's ``events`` attribute.
            Whatever the backend raised: after the whole block was taken in
            (only the outputs of the hops whose run failed are lost, counted
            in ``counters["failed_hops"]``), with this call's events in the
            exception's ``events`` attribute; after a KeyboardInterrupt in a
            run, the rest of the block is not taken in (``samples_in`` says
            how far it went).
        """
        if self._flushed:
            raise StateError("the stream was flushed; call reset() before processing more audio")
        t0 = time.perf_counter()
        self._run_error = None  # (one left by a call that another exception ended is not this call's)
        x = self._check_block(block)
        events: list[Event] = []
        frames: list[FrameResult] = []
        self._frames_out = frames
        n = x.shape[0]
        mb = self.max_block
        hops_before = self._hops
        for start in range(0, n, mb):
            self._process_chunk(x[start:start + mb], events)
            if self._interrupted():
                break
        self.last_frames = frames
        self._account(t0, hops_before)
        self._raise_run_error(events)
        return events

    @one_call_at_a_time(deliver=True)
    def flush(self) -> list[Event]:
        """End the stream: drain the resampler and turn every active tag off.

        Returns the remaining events (outputs from the resampler's last
        samples, then a TagOff for every tag that is on). Afterwards the
        session accepts no audio until :meth:`reset`.
        """
        if self._flushed:
            return []
        t0 = time.perf_counter()
        self._run_error = None
        events: list[Event] = []
        frames: list[FrameResult] = []
        self._frames_out = frames
        hops_before = self._hops
        tail = self._tail_frames()
        if tail is not None:
            self._push_frames(tail, events)
        self._end(events)
        self.last_frames = frames
        self._account(t0, hops_before)
        self._raise_run_error(events)
        return events

    def _deliver_frames(self) -> bool:
        """Hand the outputs of the call to ``on_frame``, once the audio is taken in (an exception from it then
        leaves the session consistent); every output gets its call, then the first exception is raised."""
        pending = self._pending_frames
        if not pending:
            return False
        self._pending_frames = []
        call_all((self.on_frame, fr) for fr in pending)
        return True

    # ------------------------------------------------------------------
    # The building blocks below are shared with MultiStreamSession (engine/multistream.py), which runs
    # several sessions' front parts and decoders around one batched backend call per hop.
    def _account(self, t0: float, hops_before: int) -> None:
        self._timer.add(time.perf_counter() - t0, self._hops - hops_before)

    def _process_chunk(self, x: np.ndarray, events: list) -> None:
        start = len(events)
        frames = self._ingest(x)
        if frames is not None:
            self._push_frames(frames, events)
        self._merge_techniques(events, start)

    def _track(self, buf: np.ndarray) -> None:
        """Run the technique trackers on a chunk of input-rate mono samples (before resampling)."""
        if self._skipped:  # the stream's clock, gaps included (the chunk is counted in _samples_in already)
            evs, values = self._tech.process(buf, (self._samples_in - len(buf) + self._skipped) / self.sample_rate)
        else:
            evs, values = self._tech.process(buf)
        self._tech_events.extend(evs)
        self._tech_events.extend(values)
        if self.record_frames or self.on_frame is not None:  # kept for the FrameResults' `technique`
            if self._tech_next:
                del self._tech_values[:self._tech_next]
                self._tech_next = 0
            # in time order; a switch before the values of its own frame
            self._tech_values.extend(sorted(evs + values, key=_STREAM_TIME))

    def _merge_techniques(self, events: list, start: int) -> None:
        """Merge the chunk's technique events into ``events[start:]`` in stream-time order (stable)."""
        merge_techniques((self,), events, start)

    def _ingest(self, x: np.ndarray) -> np.ndarray | None:
        """Convert, count, resample and run the frontend on a chunk of at most ``max_block`` samples.

        ``x``: 1-D (any stride) or 2-D (averaged) samples of the stream.
        Returns the new frames, float32 (k, n_mels) (a view of a buffer the
        next call overwrites), or None when the chunk gave no samples at the
        model rate.
        """
        n = x.shape[0]
        if n == 0:
            return None
        buf = self._buf[:n]
        dtype = x.dtype
        if x.ndim == 2:
            mix = self._mix[:n]
            # beyond float64's or float32's range becomes +-inf: counted below, like NaN
            with np.errstate(over="ignore", invalid="ignore"):
                np.mean(x, axis=1, dtype=np.float64, out=mix)
                if dtype == np.int16:
                    mix *= 1.0 / 32768.0
                np.copyto(buf, mix, casting="same_kind")
        elif dtype is F32 or dtype == np.float32:
            np.copyto(buf, x)
        elif dtype == np.int16:
            np.multiply(x, I16_SCALE, out=buf)
        else:
            with np.errstate(over="ignore"):
                np.copyto(buf, x, casting="same_kind")
        self._samples_in += n
        if self._tech is not None:
            self._track(buf)
        if self._rs is not None:
            # (not a float64 sum's finiteness, as cheap, but +inf and -inf in one block warned "invalid value",
            # which a host running with warnings as errors got as an exception after the samples were counted)
            mask = self._mask[:n]
            if not np.isfinite(buf, out=mask).all():
                bad = ~mask
                self._nonfinite_own += int(np.count_nonzero(bad))
                buf[bad] = 0.0
            y = self._rs.process(buf)
            if len(y) == 0:
                return None
        else:
            y = buf
        return self._frontend(y)

    def _frontend(self, y: np.ndarray) -> np.ndarray:
        """Frontend frames of model-rate samples ``y``: float32 (k, n_mels), a view of a reused buffer."""
        need = self._fe.frames_for(y.shape[0])
        if need > self._fbuf.shape[0]:
            self._fbuf = np.empty((need, self._fbuf.shape[1]), np.float32)
        return self._fe.push(y, out=self._fbuf)

    def _tail_frames(self) -> np.ndarray | None:
        """End of stream: the frames of the resampler's last samples (None without resampling or samples)."""
        if self._rs is None:
            return None
        tail = self._rs.process(self._empty, last=True)
        return self._frontend(tail) if len(tail) else None

    def _end(self, events: list) -> None:
        """End of stream: a TagOff for every active tag (and technique offs); no audio is accepted until :meth:`reset`."""
        end = max((self._samples_in + self._skipped) / self.sample_rate, self._last_decided)
        events.extend(self.decoder.flush(end, time.time()))
        if self._tech is not None:
            events.extend(self._tech.finish(end))
        self._flushed = True

    def _push_frames(self, frames: np.ndarray, events: list) -> None:
        k = frames.shape[0]
        j = 0
        # copy each due window aside and move the trigger on, so _advance finds the next due frame; at
        # `batch` windows (and at the end of the frames) run them and decide their outputs in order
        # (_decide moves the trigger again)
        n = 0
        first = self._trigger
        while j < k:
            j, p = self._advance(frames, j)
            if p >= 0:
                self._window(p, self._win[n])
                n += 1
                self._trigger += self.hop_frames
                if n == self.batch:
                    self._decide_batch(first, n, events)
                    n, first = 0, self._trigger
        if n:
            self._decide_batch(first, n, events)

    def _decide_batch(self, first: int, n: int, events: list) -> None:
        """Run the first ``n`` windows of the batch buffer and decide them in order, from trigger ``first``
        (a failed run decides none: the trigger stays past them, :meth:`_run_or_skip`)."""
        probs = self._run_or_skip(self._win[:n], n)
        if probs is None:
            return
        self._trigger = first
        for i in range(n):
            self._decide(probs[i], events)

    def _advance(self, frames: np.ndarray, j: int) -> tuple[int, int]:
        """Write ``frames[j:]`` into the mel ring up to and including the next frame at which a hop is due.

        Returns
        -------
        j : int
            Index of the first frame not written.
        p : int
            Ring position of the due frame (pass it to :meth:`_window`), or -1
            when every frame was written and no hop is due.
        """
        W = self._W
        ring = self._ring
        f = self._n_frames
        trig = self._trigger
        k = frames.shape[0]
        while j < k:
            p = f % W
            row = frames[j]
            ring[p] = row
            ring[p + W] = row
            j += 1
            f += 1
            if f - 1 == trig:
                self._n_frames = f
                return j, p
        self._n_frames = f
        return j, -1

    def _window(self, p: int, out: np.ndarray) -> None:
        """Copy the last ``W`` frames, ending at ring position ``p``, into ``out`` (n_mels, W)."""
        np.copyto(out, self._ring[p + 1:p + 1 + self._W].T)

    def _decide(self, probs: np.ndarray, events: list) -> None:
        """Decode the model output ``probs`` (n_tags,) of the hop that is due; appends its events."""
        trig = self._trigger
        index = trig - self._L
        t_frame = self.output_time(index)
        t_dec = (trig * self._hop_len + self._n_fft) / self.model_rate + self.resampler_latency_s
        if self._skipped:  # (without a gap the time stays exactly as it was)
            t_dec += self._skipped / self.sample_rate
        self._last_decided = t_dec
        evs = self.decoder.step(probs, t_dec, level_time=t_frame, wall_time=time.time())
        events.extend(evs)
        self._trigger = trig + self.hop_frames
        self._hops += 1
        if self.record_frames or self.on_frame is not None:
            technique = None
            if self._tech is not None:
                # the trackers' newest values and switches at the output's own time (its frame's centre), so
                # that a FrameResult (a `tag` line) gives the pitch, vibrato and tremolo of the moment its
                # probabilities describe, and agrees with the switches before it; consumed long before the
                # output is decided, so the choice does not depend on how the input was split into blocks
                vals, i = self._tech_values, self._tech_next
                while i < len(vals) and vals[i].stream_time <= t_frame + 1e-9:
                    self._tech_now = frame_dict_after(self._tech_now, vals[i])
                    i += 1
                self._tech_next = i
                technique = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._tech_now.items()}
            fr = FrameResult(index, t_frame, t_dec, np.array(probs, np.float32), self.decoder.smoothed.copy(),
                             self.decoder.active.copy(), evs, technique)
            if self.record_frames:
                self._frames_out.append(fr)
            if self.on_frame is not None:
                self._pending_frames.append(fr)  # called at the end of process()/flush()

    def __repr__(self) -> str:
        return (f"<StreamSession {self.bundle.name!r} {self.sample_rate} Hz -> {self.model_rate} Hz, "
                f"hop {self.hop_frames} frames ({self.hop_s * 1000:.0f} ms), latency {self.latency_samples} samples>")
