"""The threaded live engine: audio callback -> native ring -> worker thread -> session -> sinks.

Threads
-------
- **Audio thread** (PortAudio's, or the clip source's feeding thread): runs
  only the callback built at start. The device stream is opened with the
  first ``channel + 1`` channels (all of them for ``mix``); the callback
  copies the chosen column, or the average of the columns, into a buffer
  preallocated at start (a mono stream's single column is contiguous and goes
  in without a copy), pushes it into the native lock-free
  :class:`rtclassify.SampleRing`, and counts input overflows in a
  preallocated counter. With ``channels`` (several streams) the stream is
  opened with the first ``max(channels) + 1`` channels and the callback copies
  the chosen columns into a preallocated ``(blocksize, P)`` frame buffer
  (``P`` = the number of streams rounded up to a power of two; the padding
  columns stay 0) and pushes it, interleaved, into one ring: the ring's
  capacity, a power of two, then holds whole frames, so an overflow drops
  whole frames and the streams never slip against each other (when the device
  delivers exactly the chosen channels, ``P`` of them in order, the block goes
  in without a copy). The buffers are sized from the source's block size; a
  block longer than that (a source that delivers more than it said) goes in
  through the same buffers in pieces. The callback never raises: a failure
  there is counted (``callback_errors``) and the worker stops the listener
  with it. No sample buffer is allocated, no lock is taken, nothing is logged
  there. (Python itself still creates a few small objects
  to call a callback and slice a column; that is the floor of any Python
  audio callback.)
- **Worker thread** (``rtclassify-listener``): polls the ring (a short sleep
  when it is empty), pops what is there (at most ``max_block`` samples, or
  frames with several streams, at a time), runs ``session.process``
  (resampling, frontend, model every hop, decoder; with several streams a
  :class:`~rtclassify.engine.multistream.MultiStreamSession`, one batched
  model run per hop for all of them), calls ``on_event`` and every sink
  with the events, and updates the counters. When the listener stops it drains the ring, calls
  ``session.flush()`` (TagOff for every active tag) and sends those events,
  then closes the sinks (the MIDI sink sends note-off for every note still
  sounding).
- **Caller's thread**: constructs, starts, waits, reads counters, stops
  (``stop`` waits a bounded time for the worker; a worker blocked in a sink
  or ``on_event`` is abandoned and reported in :attr:`Listener.hung`).

Thread safety
-------------
``start``, ``stop``, ``wait``, ``counters()``, ``latency()``, ``running``,
``finished`` and ``error`` may be used from any thread (``stop`` on the worker
thread, from ``on_event`` or a sink, only asks the worker to stop; ``wait``
there is refused: it would wait for itself). ``counters()`` returns
a fresh dict (a snapshot: each value is read whole, but values written by the
worker between two reads may come from consecutive hops). ``on_event`` and
the sinks' ``send``/``status`` run on the worker thread only, one at a time,
in stream order: they need no locking among themselves but must not block
for long (the ring holds ``ring_seconds`` of audio; beyond that the oldest
audio is dropped and counted). A sink's ``close`` runs on the thread that
calls ``stop`` (or on the worker when the source ends by itself, or when
``stop`` is called on the worker) after the worker has finished with it. Do
not call ``session`` methods yourself while the listener runs.

Latency parts (``latency()``, also in the counters, all in milliseconds)
-------------------------------------------------------------------------
- ``device``: one block plus the input latency the device reports;
- ``algorithmic``: ``session.latency_samples`` (window, lookahead, resampler);
- ``compute``: mean engine cost per hop (conversion, resampling, frontend,
  inference, decoding; from the session's counters);
- ``output``: mean time from the end of ``session.process`` until every sink
  has sent the batch.

Leaving without stop
--------------------
A listener that is still running when the interpreter exits (the host
returned from its main function or was interrupted without calling
:meth:`Listener.stop`) is stopped by an exit handler, waiting at most
:data:`EXIT_STOP_TIMEOUT` seconds for the worker: the sinks get the final
TagOffs and are closed (the MIDI sink's note-offs), as at any other stop. A
running listener is never garbage collected (its worker holds it).
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Callable, Sequence

import numpy as np

from ..audio.sources import _is_real
from ..errors import DeviceError, ParameterError, RtclassifyError, StateError
from .multistream import MAX_CHANNEL_INDEX
from .session import _positive_seconds

__all__ = ["Listener", "stop_and_finish"]

#: the native ring's largest capacity in samples
_RING_MAX = 1 << 30
#: the most frames per audio callback: the ``blocksize`` argument's and a given source's limit
MAX_BLOCKSIZE = 65536

#: seconds the exit handler waits for each listener still running at interpreter exit
EXIT_STOP_TIMEOUT = 3.0
#: seconds in one call (the session, on_event, a sink) after which a worker that outlasts stop()'s timeout
#: counts as blocked there; one that is further along is still working and finishes the stop itself
BLOCKED_AFTER_S = 2.0
_IDLE = (None, 0.0)  # the worker is in none of those calls
#: event kinds that are not an on or off (counters' ``switches`` leave them out)
_NOT_SWITCHES = frozenset({"level", "technique"})

# listeners started and not yet stopped, for the exit handler (weak: a stopped one is not kept alive)
_live: "weakref.WeakSet[Listener]" = weakref.WeakSet()
_live_lock = threading.Lock()
_exit_hook_registered = False


def _track_for_exit(lis: "Listener") -> None:
    """Remember a started listener; the first one registers the exit handler (after sounddevice's, which an
    audio device's source imported already, so it runs before PortAudio is terminated)."""
    global _exit_hook_registered
    with _live_lock:
        _live.add(lis)
        if not _exit_hook_registered:
            atexit.register(_stop_at_exit)
            _exit_hook_registered = True


def _stop_at_exit() -> None:
    """At interpreter exit: stop every listener still running, so its sinks get the final offs and close."""
    with _live_lock:
        running = [lis for lis in _live if lis.running and not lis.finished]
    for lis in running:
        try:
            stop_and_finish(lis, EXIT_STOP_TIMEOUT)
        except Exception:  # noqa: BLE001 - the interpreter is leaving: stop the others all the same
            pass


def stop_and_finish(lis: "Listener", timeout: float) -> bool:
    """``lis.stop(timeout)`` for a caller that leaves right after (a command, interpreter exit): a worker
    that was still working when the timeout ran out (not blocked: it finishes the stop itself) gets as
    long again to send its final offs and close the sinks, and is then abandoned with a reason.

    Returns
    -------
    bool
        True when the listener has stopped; False when its worker was abandoned (:attr:`Listener.hung`).
    """
    if lis.stop(timeout=timeout):
        return True
    if lis.hung is not None and not lis._source_hung:  # the worker was abandoned
        return False
    # the worker is still working (or done) — also when the audio source hung: it sends the final offs
    if lis.wait(timeout):
        return not lis._source_hung
    lis._abandon(2 * timeout)  # working or not, it has had twice the time: say where it is and close the rest
    return lis.hung is None


class Listener:
    """Listen to an audio input (or a clip) in real time and send events to sinks.

    Parameters
    ----------
    clf : Classifier
        Anything with ``stream(sample_rate=, max_block=, hop=, channel=, ...)``
        returning a session (see :class:`rtclassify.engine.session.StreamSession`),
        and, for ``channels``, ``multistream(channels, sample_rate=, ...)``
        (see :class:`rtclassify.engine.multistream.MultiStreamSession`).
    device : int, str or None
        Input device: PortAudio index, case-insensitive name substring, or
        None for the default input (ignored when ``source`` is given).
    sinks : sequence of Sink
        Outputs (MIDI, OSC, display, log, or a host's own object with
        ``open()``, ``send(events)`` and ``close()``, and optionally
        ``status(counters)``: see :class:`rtclassify.sinks.Sink`). The listener
        opens them on :meth:`start` (unless already open) and closes them on :meth:`stop`.
        A :class:`~rtclassify.sinks.midi.MidiSink` or
        :class:`~rtclassify.sinks.osc.OscSink` must be told the streams
        (``streams=``, the input channels) when ``channels`` is given, and
        must include ``channel`` in its streams when it has any.
    channel : int, optional
        0-based input channel to analyse. Default: channel 0, or the downmix
        when ``mix`` is true.
    mix : bool
        Analyse the mean of all input channels.
    channels : sequence of int or str, optional
        Tag each of these 0-based input channels as a stream of its own
        (``[0, 1, 2, 3]``, ``"0-3"`` or ``"0,2,5"``), batched into one model
        run per hop; events carry their channel. Excludes ``channel`` and
        ``mix``. The session is then a
        :class:`~rtclassify.engine.multistream.MultiStreamSession` (built with
        ``clf.multistream``), and the sample counters count frames (one
        sample of every stream).
    samplerate : float, optional
        Device sample rate in Hz (a whole number > 0); default the device's default rate.
    blocksize : int, optional
        Frames per audio callback: 256 by default, or the source's blocksize
        when ``source`` is given (the callback's buffers are sized from it; a
        different ``blocksize`` is a ParameterError). A source block longer
        than that still goes in, in ``blocksize`` pieces.
    hop : float, optional
        Seconds between two model runs (a finite number > 0); default the
        bundle's hop.
    on_event : callable, optional
        ``on_event(event)`` for each event, on the worker thread. If it
        raises, the sinks still get the events, the error becomes
        :attr:`error` and the listener stops (flushing TagOffs to the sinks).
    source : DeviceSource or ClipSource, optional
        An audio source to use instead of opening ``device``.
    decoder : dict, optional
        Decoder overrides for the session (a mapping file's ``[decoder]``).
    level_rate : float, optional
        TagLevel events per second (None: every hop; 0: none).
    ring_seconds : float
        Capacity of the sample ring in seconds of audio (finite, > 0; the
        ring holds at most 2^30 samples).
    max_lag : float or None
        Seconds of audio (finite, > 0) the worker may have waiting before it
        drops the oldest of it, counted in ``dropped_samples`` as a ring
        overflow is: after a stall (the process frozen, a sink or ``on_event``
        held up) it goes on from the newest audio, instead of replaying up to
        ``ring_seconds`` of stale events to the sinks at once (a burst of
        notes and levels that were over). The session's clock runs on over
        the gap (``session.skip``). At least one pop of the worker
        (``max(4 * blocksize, 1024)`` frames, what a worker that keeps up can
        have waiting); ``ring_seconds`` or more does nothing the ring does not.
        None (the default): only the ring's overflow drops audio
        (``rtclassify listen`` sets 0.5).
    stall_timeout : float
        A device that delivers no audio for this many seconds (finite, > 0)
        while it should is treated as lost; never less than two block periods
        plus the device's input latency (see :meth:`stall_limit`).
    status_interval : float
        Seconds between two ``status(counters)`` calls to sinks that have it.
    latency : str or float
        PortAudio input latency setting (``"low"``, ``"high"`` or seconds).
    switch_interval : float or None
        While any listener runs, Python's thread switch interval
        (:func:`sys.setswitchinterval`) is lowered to this many seconds (default
        1 ms, Python's default is 5 ms), so that the audio callback, which
        needs the GIL to run, never waits for the worker for longer than that;
        the old value comes back when the last listener stops. None leaves it
        alone.
    techniques : bool or dict
        Run the pitch, vibrato and tremolo trackers on the same samples
        (default True): vibrato/tremolo on/off and technique value events go to
        the sinks. A dict passes options to the tracker. The trackers take
        4000-384000 Hz: at other rates the listener is refused (a
        ParameterError saying so) unless ``techniques=False``.

    Raises
    ------
    ParameterError
        Bad channel(s), blocksize, samplerate, latency, hop, ring_seconds,
        max_lag or stall_timeout; ``sinks`` not a sequence, or a sink without ``open``,
        ``send`` or ``close``; ``on_event`` not callable; a sample rate the
        technique trackers do not take while ``techniques`` is on; a MIDI or
        OSC sink whose ``streams`` do not match the channels.
    DeviceError
        The device does not exist or refuses the settings (raised by
        :meth:`start` or the constructor).

    Examples
    --------
    >>> with rtclassify.Listener(clf, device="usb", sinks=[midi], on_event=print) as lis:  # doctest: +SKIP
    ...     lis.wait(60)
    """

    def __init__(self, clf, device=None, sinks: Sequence = (), *, channel: int | None = None, mix: bool = False,
                 channels=None, samplerate: float | None = None, blocksize: int | None = None, hop: float | None = None,
                 on_event: Callable | None = None, source=None, decoder: dict | None = None,
                 level_rate: float | None = None, ring_seconds: float = 2.0, stall_timeout: float = 2.0, status_interval: float = 0.1,
                 latency="low", switch_interval: float | None = 0.001, techniques: bool | dict = True,
                 max_lag: float | None = None):
        if channel is not None and mix:
            raise ParameterError("channel and mix: give one of them, not both")
        if channels is not None:
            if channel is not None or mix:
                raise ParameterError("channels: give channels, channel or mix, not several of them")
            from .multistream import parse_channels

            channels = parse_channels(channels)
        if channel is not None and (not _is_real(channel) or not math.isfinite(channel) or int(channel) != channel
                                    or not 0 <= channel <= MAX_CHANNEL_INDEX):
            raise ParameterError(f"channel must be a 0-based channel index 0-{MAX_CHANNEL_INDEX}, got {channel!r}")
        if blocksize is not None and (not _is_real(blocksize) or int(blocksize) != blocksize
                                      or not 16 <= blocksize <= MAX_BLOCKSIZE):
            raise ParameterError(f"blocksize must be an integer 16-{MAX_BLOCKSIZE} frames, got {blocksize!r}")
        if hop is not None:
            _positive_seconds(hop, "hop")
        _positive_seconds(ring_seconds, "ring_seconds")
        _positive_seconds(stall_timeout, "stall_timeout")
        if max_lag is not None:
            _positive_seconds(max_lag, "max_lag")
        if not _is_real(status_interval) or not math.isfinite(status_interval) or status_interval < 0:
            raise ParameterError(f"status_interval must be a number of seconds >= 0, got {status_interval!r}")
        if switch_interval is not None and (not _is_real(switch_interval) or not math.isfinite(switch_interval)
                                            or not 0 < switch_interval <= 1):
            raise ParameterError(f"switch_interval must be None or a number of seconds in (0, 1], got "
                                 f"{switch_interval!r}")
        if on_event is not None and not callable(on_event):
            raise ParameterError(f"on_event must be callable (a function called once per event, on_event(event)), "
                                 f"got {on_event!r}")
        sinks = _check_sinks(sinks)
        _check_sink_streams(sinks, channels, 0 if channel is None else int(channel))
        self.clf = clf
        self.sinks = sinks
        self.channel = None if channel is None else int(channel)
        self.mix = bool(mix)
        #: the input channel of each stream (several streams), or None
        self.channels = channels
        # frame stride of the interleaved ring (several streams): a power of two
        self._stride = 1 if channels is None else 1 << (len(channels) - 1).bit_length()
        self.hop = None if hop is None else float(hop)
        self.on_event = on_event
        self.decoder = decoder
        self.level_rate = level_rate
        self.techniques = techniques
        self.ring_seconds = float(ring_seconds)
        self.max_lag = None if max_lag is None else float(max_lag)
        self.stall_timeout = float(stall_timeout)
        self.status_interval = float(status_interval)
        self.switch_interval = switch_interval
        self._switch_held = False
        if source is None:
            from ..audio.sources import DeviceSource

            if channels is not None:
                need = max(channels) + 1
            else:
                need = None if self.mix else (self.channel or 0) + 1
            source = DeviceSource(device, channels=need, samplerate=samplerate,
                                  blocksize=256 if blocksize is None else int(blocksize), latency=latency)
        src_bs = getattr(source, "blocksize", None)
        if (not _is_real(src_bs) or not math.isfinite(src_bs) or int(src_bs) != src_bs
                or not 1 <= src_bs <= MAX_BLOCKSIZE):
            raise ParameterError(f"source: its blocksize must be a whole number of frames from 1 to {MAX_BLOCKSIZE}, "
                                 f"got {src_bs!r}")
        if blocksize is not None and int(blocksize) != int(src_bs):
            raise ParameterError(f"blocksize {int(blocksize)} differs from the source's blocksize {int(src_bs)}: "
                                 f"leave blocksize out when giving a source (its blocksize is used)")
        #: frames per audio callback: the source's (the callback's buffers are sized from it)
        self.blocksize = int(src_bs)
        if self.channel is not None and self.channel >= source.channels:
            raise ParameterError(f"channel {self.channel} does not exist: the source has {source.channels} channel(s)")
        if channels is not None and max(channels) >= source.channels:
            raise ParameterError(f"channel {max(channels)} does not exist: the source has {source.channels} "
                                 f"channel(s) (channels are 0-based)")
        self.source = source
        sr = float(source.samplerate)
        cap = self._ring_capacity(sr)
        if cap > _RING_MAX:
            most = (_RING_MAX // self._stride - self.blocksize) / sr
            raise ParameterError(f"ring_seconds: {self.ring_seconds:g} s at {sr:g} Hz needs a ring of {cap} samples, "
                                 f"more than the limit of 2^30; give at most {most:g} s")
        #: the error that stopped the listener (device lost, sink failed), or None
        self.error: BaseException | None = None
        self._max_block = max(4 * self.blocksize, 1024)
        # the session is built here, so that its parameters (hop, sample rate, decoder) are refused before
        # anything is opened
        self.session = self._make_session(sr)
        self._ring = None
        self._thread: threading.Thread | None = None
        self._stop_req = threading.Event()
        self._done = threading.Event()
        self._source_finished = threading.Event()
        self._source_started = threading.Event()  # source.start() has returned: the stall clock runs
        self._worker_exit = threading.Event()  # set as the worker's last action
        # (what the worker is calling now: the session, on_event, a sink, or None; when it started that call,
        # time.monotonic()): one tuple, written and read whole, for stop()'s and blocked()'s judgement
        self._call = _IDLE
        #: what kept the worker from stopping within stop()'s timeout (a sink, on_event, the session), or the audio
        #: source whose stream could not be stopped (its device or audio server died), or None
        self.hung: str | None = None
        self._source_hung = False
        self._closed = False
        # guards _closed only: start() holds _lifecycle while it runs, and its failure path closes the sinks
        self._close_lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._starter: int | None = None  # the thread inside start(), if any
        self._stopping = False  # stop() was called
        self._source_stop_requested = False  # stop() has come to the source's stop (start() may still be running)
        # the worker closes the sinks when it leaves: stop() was called on the worker thread, or stop()'s
        # timeout ran out while the worker was still working (not blocked); _handover makes that decision
        # and the worker's own (whether to close) one after the other
        self._stop_on_worker = False
        self._handover = threading.Lock()
        self._worker_leaving = False  # the worker has decided whether it closes the sinks ...
        self._worker_closes = False  # ... and this is what it decided
        self._start_over = threading.Event()  # set when start() has returned or raised
        self._started_wall = 0.0
        self._reset_counters()

    def _make_session(self, sr: float):
        if sr != int(sr):
            raise ParameterError(f"samplerate must be a whole number of Hz, got {sr}")
        self._check_technique_rate(sr)
        kwargs = dict(sample_rate=int(sr), max_block=self._max_block, hop=self.hop,
                      level_rate=self.level_rate, record_frames=False, techniques=self.techniques)
        if self.decoder:
            kwargs["decoder"] = self.decoder
        if self.channels is None:
            # the callback already picked the channel: the session gets mono blocks, and its events carry the
            # input channel they came from (as Classifier.tag's do)
            return self.clf.stream(channel=self.channel or 0, **kwargs)
        return self.clf.multistream(self.channels, **kwargs)

    def _check_technique_rate(self, sr: float) -> None:
        """A rate the session takes but the pitch, vibrato and tremolo trackers (on by default) do not is refused
        in their name, with the way out (as the CLI's check_technique_rate does, for the library)."""
        from ..detect.techniques import check_sample_rate
        from .session import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

        if isinstance(self.techniques, (bool, dict)) and self.techniques and MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
            name = getattr(self.source, "name", None)
            where = f" (the source {name!r})" if isinstance(name, str) and name else ""
            check_sample_rate(sr, f"samplerate: {sr:g} Hz{where}",
                              " (techniques, on by default); pass techniques=False to tag without them")

    def _ring_capacity(self, sr: float) -> int:
        """Samples in the ring: ``ring_seconds`` of audio plus one block, times the frame stride."""
        return (int(self.ring_seconds * sr) + self.blocksize) * self._stride

    def stall_limit(self) -> float:
        """Seconds without audio after which the device counts as lost.

        ``stall_timeout``, but never less than two block periods plus the
        input latency the device reports (a source that delivers one long
        block every few seconds is not stalled between two blocks).
        """
        sr = float(self.source.samplerate)
        speed = getattr(self.source, "speed", 1.0)
        speed = min(float(speed), 1.0) if _is_real(speed) and speed > 0 else 1.0
        latency = getattr(self.source, "input_latency", 0.0)
        latency = float(latency) if _is_real(latency) and latency > 0 else 0.0
        return max(self.stall_timeout, 2.0 * self.blocksize / sr / speed + latency)

    # ------------------------------------------------------------------ counters
    def _reset_counters(self) -> None:
        self._overflows = np.zeros(1, dtype=np.int64)  # written by the audio thread (in place)
        # [callback faults, frames they lost]: written by the audio thread (in place)
        self._cb_faults = np.zeros(2, dtype=np.int64)
        self._cb_error: str | None = None
        self._events = 0
        self._switches = 0  # of them, the on/off switches of tags and techniques (not levels or values)
        self._samples_processed = 0
        self._output_sum = 0.0
        self._output_n = 0
        self._busy = 0.0
        self._max_backlog = 0
        self._lag_dropped = 0  # frames dropped for being older than max_lag (written by the worker)

    def counters(self) -> dict:
        """A snapshot of the counters.

        Returns
        -------
        dict
            ``samples_in`` (pushed by the audio callback), ``samples_processed``,
            ``dropped_samples`` (ring overflow: the worker fell behind by more
            than ``ring_seconds``; and with ``max_lag``, audio waiting longer
            than that, dropped), ``input_overflows`` (reported by the
            device), ``max_backlog_ms`` (most audio ever waiting in the ring),
            ``hops`` (model runs), ``late_hops`` (hops whose engine cost
            exceeded the hop duration), ``compute_ms_mean`` /
            ``compute_ms_p99`` (engine cost per hop, wall-clock: it includes
            time the OS gave the CPU to other processes), ``events`` (every
            event sent: levels and tracker values included), ``switches`` (of
            them, the tags' and techniques' on and off), ``realtime_ratio``
            (worker busy time / audio time, sinks included), the latency
            parts ``latency_device_ms``,
            ``latency_algorithmic_ms``, ``latency_compute_ms``,
            ``latency_output_ms`` and their sum ``latency_total_ms``,
            ``output_faults`` (the outputs' faults so far, one line each, as
            the run's end reports them: an OSC destination's failed sends with
            their count, a log's lost events; a count that stops growing is an
            outage that ended), and the session's other counters prefixed with
            ``session_``.
        """
        ring = self._ring
        sr = self.source.samplerate
        sc = dict(self.session.counters) if self.session is not None else {}
        hops = int(sc.pop("hops", 0))
        P = self._stride
        c = {
            "samples_in": int(ring.pushed) // P if ring is not None else 0,
            "samples_processed": self._samples_processed,
            "dropped_samples": (int(ring.dropped) // P if ring is not None else 0) + self._lag_dropped,
            "input_overflows": int(self._overflows[0]),
            "callback_errors": int(self._cb_faults[0]),
            "max_backlog_ms": 1e3 * self._max_backlog / sr,
            "hops": hops,
            "late_hops": int(sc.pop("late_hops", 0)),
            "compute_ms_mean": sc.pop("compute_ms_mean", None) if hops else None,
            "compute_ms_p99": sc.pop("compute_ms_p99", None) if hops else None,
            "events": self._events,
            "switches": self._switches,
            # (in the status lines a monitor of an unattended run reads: they said nothing of an outage)
            "output_faults": [f for f in (getattr(s, "fault", None) for s in self.sinks) if f],
        }
        audio_s = self._samples_processed / sr
        c["realtime_ratio"] = self._busy / audio_s if audio_s > 0 else None
        c.update({f"latency_{k}_ms": v for k, v in self._latency(c).items()})
        for k, v in sc.items():
            if not k.startswith("latency_"):
                c[f"session_{k}"] = v
        return c

    def latency(self) -> dict:
        """The four latency parts in milliseconds and their ``total`` (None: not measured yet).

        ``device`` (one block + the device's input latency), ``algorithmic``
        (``session.latency_samples``), ``compute`` (mean engine cost per hop),
        ``output`` (mean time from the end of ``session.process`` until every
        sink has sent the batch).
        """
        c = self.counters()
        return {k: c[f"latency_{k}_ms"] for k in ("device", "algorithmic", "compute", "output", "total")}

    def _latency(self, c: dict) -> dict:
        sr = self.source.samplerate
        device = (self.source.blocksize / sr + float(getattr(self.source, "input_latency", 0.0) or 0.0)) * 1e3
        s = self.session
        algo = float(s.latency_samples) / float(s.sample_rate) * 1e3 if s is not None else None
        compute = c["compute_ms_mean"] if c["hops"] else None
        output = self._output_sum / self._output_n * 1e3 if self._output_n else None
        parts = {"device": device, "algorithmic": algo, "compute": compute, "output": output}
        known = [v for v in parts.values() if v is not None]
        parts["total"] = sum(known) if len(known) == 4 else None
        return parts

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        """True between :meth:`start` and the end of the worker."""
        return self._thread is not None and not self._worker_exit.is_set()

    @property
    def finished(self) -> bool:
        """True once the listener has stopped (by :meth:`stop`, end of source or a fault)."""
        return self._done.is_set()

    def start(self) -> "Listener":
        """Open the sinks, create the session, start the worker and the audio source.

        Raises ``RuntimeError`` when the listener was already started, or stopped before it started.
        """
        with self._lifecycle:
            if self._thread is not None:
                raise StateError("this Listener was already started; create a new one")
            self._starter = threading.get_ident()
            if self._stopping:  # read after _starter is set; stop() sets _stopping before it reads _starter
                self._starter = None
                raise StateError("this Listener was stopped before it started; create a new one")
            try:
                self._start_locked()
                if self._source_stop_requested:
                    # a stop() that gave up waiting for this start may have stopped the source before it
                    # started: stop it again, or the audio would run with no worker
                    self._stop_source()
            finally:
                self._starter = None
                self._start_over.set()
        return self

    def _start_locked(self) -> None:
        from .._core import SampleRing

        sr = float(self.source.samplerate)
        P = self._stride
        try:
            self._ring = SampleRing(self._ring_capacity(sr))
            self._pop_buf = np.zeros(self._max_block * P, dtype=np.float32)
            self._callback = self._make_callback()
            for s in self.sinks:
                s.open()
        except BaseException:
            # the sinks are the listener's once given: a start that fails closes them all, those the caller
            # opened beforehand too
            self._close_sinks()
            raise
        self._started_wall = time.time()
        self._hold_switch_interval()
        self._thread = threading.Thread(target=self._run, name="rtclassify-listener", daemon=True)
        self._thread.start()
        _track_for_exit(self)
        try:
            self.source.start(self._callback, self._source_finished.set)
            self._source_started.set()
            if self._worker_exit.is_set():
                # the worker ended (and stopped the source) while start() was still opening it
                self._stop_source()
        except BaseException:
            self._stop_req.set()
            if not self._worker_exit.wait(10.0):
                self.hung = self._describe_stuck(self._stage, self._thread)
            self._close_sinks(skip=self._stage if self.hung else None)
            self._release_switch_interval()
            self._done.set()
            raise

    # Python's switch interval, lowered while any listener runs (see ``switch_interval``)
    _switch_lock = threading.Lock()
    _switch_users = 0
    _switch_saved: float | None = None

    def _hold_switch_interval(self) -> None:
        if self.switch_interval is None or self._switch_held:
            return
        import sys

        cls = Listener
        with cls._switch_lock:
            if cls._switch_users == 0:
                cls._switch_saved = sys.getswitchinterval()
            cls._switch_users += 1
            if sys.getswitchinterval() > self.switch_interval:
                sys.setswitchinterval(self.switch_interval)
        self._switch_held = True

    def _release_switch_interval(self) -> None:
        import sys

        cls = Listener
        with cls._switch_lock:
            if not self._switch_held:
                return
            self._switch_held = False
            cls._switch_users -= 1
            if cls._switch_users == 0 and cls._switch_saved is not None:
                sys.setswitchinterval(cls._switch_saved)
                cls._switch_saved = None

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop the audio, let the worker drain the ring and flush, and close the sinks.

        Idempotent; safe from any thread. Called while :meth:`start` runs in
        another thread, it first waits (up to ``timeout``) for the start to
        finish, so that the source it stops is not started after it. Called
        on the worker thread itself (from ``on_event`` or a sink's
        ``send``/``status``), it stops the source and returns at once
        (True, unless the source could not be stopped): the worker then
        finishes the current batch, drains the ring, sends the final TagOffs
        and closes the sinks itself; :meth:`wait` tells when it is done.
        Does not raise the listener's fault: read :attr:`error`.

        Parameters
        ----------
        timeout : float or None
            Seconds to wait for the worker to drain, flush and finish (None:
            for ever). A worker still busy after that and inside one call
            for more than :data:`BLOCKED_AFTER_S` is blocked there (a sink
            that cannot write, an ``on_event`` that never returns): it is
            abandoned, :attr:`hung` says where it is blocked, :attr:`error`
            becomes a ``RuntimeError`` saying so (unless a fault came first),
            and every other sink is closed. The worker is a daemon thread; a
            program should then leave without waiting for it (its blocked
            call may hold a lock that interpreter shutdown needs, e.g.
            standard output's). A worker that is still working (a short
            timeout, a long backlog) is not blocked: it finishes the stop
            itself, sends the final TagOffs to the open sinks and closes
            them; :attr:`hung` and :attr:`error` stay None and :meth:`wait`
            tells when it is done (a later ``stop()`` waits again, and
            abandons it if it has become blocked).

        Returns
        -------
        bool
            True when the worker finished, False when it had not (abandoned,
            or still finishing the stop), and False when the audio source's
            stream could not be stopped (its device or audio server died:
            PortAudio blocks there): :attr:`hung` then names the source,
            :attr:`error` says so unless a fault came first, and the
            process should leave without waiting for PortAudio (see
            :func:`rtclassify.audio.sources.hard_exit_needed`).

        Raises
        ------
        ParameterError
            ``timeout`` is not None and not a finite number >= 0.
        """
        if timeout is not None:
            if not _is_real(timeout) or not math.isfinite(timeout) or timeout < 0:
                raise ParameterError(f"timeout must be None or a finite number of seconds >= 0, got {timeout!r}")
        self._stopping = True
        t = self._thread
        if t is not None and t is threading.current_thread():
            # on the worker (on_event, a sink): it cannot wait for itself, and the sinks must stay open for
            # the rest of this batch and the final TagOffs; the worker closes them when it leaves
            self._stop_on_worker = True
            try:
                self._stop_source()
            finally:
                self._stop_req.set()
            return not self._source_hung
        starter = self._starter
        if starter is not None and starter != threading.get_ident():
            # start() is running in another thread: let it finish, or its source.start() would come after
            # our source.stop() and leave the audio running with no worker
            self._start_over.wait(timeout)
        try:
            # the source first: the worker then drains every sample it pushed before it sees the request
            self._source_stop_requested = True
            self._stop_source()
        finally:
            self._stop_req.set()
            t = self._thread
            outcome = "finished"
            if t is not None and t is not threading.current_thread():
                # wait on our own event, not Thread.join: in CPython 3.11 a join interrupted by Ctrl-C (in
                # wait()) can leave the still-running thread marked as stopped, and a later join returns at once
                if self._worker_exit.wait(timeout):
                    t.join(1.0)
                elif self._hand_over_stop():
                    outcome = "handed over"  # the worker sends the final offs and closes the sinks
                else:
                    self._abandon(timeout)  # closes the other sinks
                    outcome = "finished" if self.hung is None else "abandoned"
            if outcome == "finished" and not self._done.is_set():
                self._close_sinks()
                self._release_switch_interval()
                self._done.set()
        return outcome == "finished" and not self._source_hung

    def _stop_source(self) -> None:
        """Stop the audio source. One whose stream could not be stopped (``DeviceSource.stop`` returned False:
        its device or audio server died, and PortAudio blocks) is recorded in :attr:`hung` and :attr:`error`, and
        :meth:`stop` then returns False."""
        if self.source.stop() is not False:
            return
        self._source_hung = True
        name = getattr(self.source, "name", None)
        if self.hung is None:
            self.hung = f"the audio source {name!r} (its stream could not be stopped: the device or audio server died)"
        if self.error is None:
            self.error = DeviceError(f"the audio stream of {name!r} could not be stopped (the device or audio server "
                                     f"died)")

    def _hand_over_stop(self) -> bool:
        """stop()'s timeout ran out: when the worker is still working (in no call for longer than
        :data:`BLOCKED_AFTER_S`), leave the rest of the stop to it, so that the final offs reach open sinks.
        True when the worker finishes the stop (closes the sinks) itself; False when it is blocked, or is
        leaving without closing them (then stop() finishes the stop as before)."""
        if self._is_blocked(BLOCKED_AFTER_S):
            return False
        with self._handover:
            if not self._worker_leaving:
                self._stop_on_worker = True
                return True
            return self._worker_closes

    def _abandon(self, waited_s: float) -> None:
        """Give up on a worker that has not finished within ``waited_s``: say where it is, close every sink
        but the one it is inside, and mark the listener done."""
        t = self._thread
        if self._worker_exit.wait(0.5 if self._worker_leaving and not self._worker_closes else 0.0):
            stuck = None  # it left meanwhile
        else:
            stuck = self._stage
            self.hung = self._describe_stuck(stuck, t)
            if self.error is None:
                self.error = RuntimeError(f"the listener did not stop within {waited_s:g} s: the worker is "
                                          f"blocked in {self.hung}")
        self._close_sinks(skip=stuck)
        self._release_switch_interval()
        self._done.set()

    @property
    def _stage(self):
        """What the worker is calling now (the session, on_event, a sink), or None."""
        return self._call[0]

    def _enter(self, stage) -> None:
        self._call = (stage, time.monotonic())

    def _is_blocked(self, seconds: float) -> bool:
        """The worker has been inside one call for more than ``seconds``."""
        stage, since = self._call
        return stage is not None and time.monotonic() - since > seconds

    def blocked(self, seconds: float = 2.0) -> str | None:
        """Where the worker has been blocked for more than ``seconds`` in an output (a sink or ``on_event``),
        described as in :attr:`hung`; None when it is not. Audio that arrives meanwhile fills the ring and is
        then dropped (counted), so a caller can say so while the show goes on."""
        call = self._call
        stage, thread = call[0], self._thread
        if stage is None or stage is self.session or thread is None or self._worker_exit.is_set():
            return None
        if time.monotonic() - call[1] <= seconds or self._call is not call:
            return None
        return self._describe_stuck(stage, thread)

    def _describe_stuck(self, stage, thread) -> str:
        """Where the worker is blocked: the sink, ``on_event`` or the session, and its innermost Python line."""
        if stage is None:
            what = "the listener's worker"
        elif stage is self.session:
            what = "the session (model or frontend)"
        elif stage is self.on_event:
            what = f"on_event {getattr(stage, '__qualname__', None) or repr(stage)}"
        else:
            what = f"sink {_sink_name(stage)}"
        import sys
        import traceback

        frame = sys._current_frames().get(thread.ident)
        if frame is not None:
            import sysconfig

            stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep
            stack = traceback.extract_stack(frame)
            # the innermost line outside Python's own library (a sink's write, not threading's wait)
            fs = next((f for f in reversed(stack) if not os.path.realpath(f.filename).startswith(stdlib)), stack[-1])
            where = os.path.join(os.path.basename(os.path.dirname(fs.filename)), os.path.basename(fs.filename))
            line = f": {fs.line}" if fs.line else ""
            what += f" ({fs.name} at {where}:{fs.lineno}{line})"
        return what

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the listener stops by itself (end of the clip, a fault) or ``timeout`` passes.

        Returns
        -------
        bool
            True when it has stopped, False on timeout. Ctrl-C in the waiting
            thread raises ``KeyboardInterrupt`` as usual.

        Raises
        ------
        RuntimeError
            Called on the worker thread (from ``on_event`` or a sink), where
            it would wait for itself: call :meth:`stop` there instead.
        """
        if self._thread is not None and self._thread is threading.current_thread():
            raise StateError("Listener.wait() was called on the listener's own worker thread (from on_event or a "
                               "sink), where it would wait for itself; call stop() there, or wait from another thread")
        if self._thread is None:
            return self._done.is_set()
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if end is None else end - time.monotonic()
            if remaining is not None and remaining <= 0:
                return self._worker_exit.is_set()
            # short waits keep the waiting thread responsive to Ctrl-C
            if self._worker_exit.wait(0.1 if remaining is None else min(0.1, remaining)):
                return True

    def __enter__(self) -> "Listener":
        return self.start()

    def __exit__(self, *exc) -> None:
        stop_and_finish(self, 10.0)

    def _close_sinks(self, skip=None) -> None:
        """Close every sink once (``skip``: a sink the worker is blocked in: closing it could block too)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        on_worker = self._thread is not None and threading.current_thread() is self._thread
        for s in self.sinks:
            if s is not skip:
                if on_worker:  # stop() judges a slow close like any other call
                    self._enter(s)
                _close_quietly(s)
        if on_worker:
            self._call = _IDLE

    # ------------------------------------------------------------------ audio thread
    def _make_callback(self):
        """The audio callback: never raises, never allocates a sample buffer.

        Blocks of up to ``blocksize`` frames are copied into a buffer sized at
        start; a longer block (a source that delivers more than it said) goes
        through the same buffer in ``blocksize`` pieces. Anything that fails
        in the callback is counted with the frames it lost, and the worker
        stops the listener with that error (the callback itself must not
        raise: PortAudio would abort the stream as if the device were lost).
        """
        ring = self._ring
        ovf = self._overflows
        nch = self.source.channels
        bs = self.blocksize
        if self.channels is not None:
            store = self._make_multi_store(ring, nch, bs)
        else:
            store = self._make_mono_store(ring, nch, bs)
        faults = self._cb_faults

        def callback(indata, frames, time_info, status):
            try:
                if status.input_overflow:
                    ovf[0] += 1
                store(indata, frames)
            except BaseException as exc:  # noqa: BLE001 - nothing may escape to the audio thread
                faults[1] += frames if isinstance(frames, int) else 0
                faults[0] += 1
                if self._cb_error is None:  # the error path only: a message, once
                    self._cb_error = f"{type(exc).__name__}: {exc}"

        return callback

    def _make_mono_store(self, ring, nch: int, bs: int):
        """``store(indata, frames)``: the chosen column (or the downmix) of a block into the ring."""
        buf = np.zeros(bs, dtype=np.float32)
        if self.mix and nch > 1:
            scale = np.float32(1.0 / nch)
            rest = range(1, nch)

            def piece(x, n):
                out = buf if n == bs else buf[:n]
                np.copyto(out, x[:, 0])  # column by column: far cheaper than a reduction over axis 1
                for c in rest:
                    np.add(out, x[:, c], out=out)
                out *= scale
                ring.push(out)
        elif nch == 1:

            def store(indata, frames):
                ring.push(indata[:, 0])  # a (frames, 1) C array: column 0 is contiguous, no copy

            return store
        else:
            ch = self.channel or 0

            def piece(x, n):
                out = buf if n == bs else buf[:n]
                np.copyto(out, x[:, ch])
                ring.push(out)

        return _in_pieces(piece, bs)

    def _make_multi_store(self, ring, nch: int, bs: int):
        """Several streams: the chosen columns go interleaved, ``P`` samples per frame, into one ring."""
        chans = self.channels
        S, P = len(chans), self._stride
        if S == P == nch and chans == tuple(range(nch)):

            def store(indata, frames):
                ring.push(indata.reshape(-1))  # exactly the streams' frames, C-contiguous: no copy

            return store
        buf = np.zeros((bs, P), dtype=np.float32)  # columns S..P-1 stay 0
        flat = buf.reshape(-1)
        c0 = chans[0]
        if chans == tuple(range(c0, c0 + S)):
            hi = c0 + S

            def piece(x, n):
                np.copyto(buf[:n, :S], x[:, c0:hi])
                ring.push(flat[:n * P])
        else:
            pairs = tuple(enumerate(chans))

            def piece(x, n):
                for k, c in pairs:
                    np.copyto(buf[:n, k], x[:, c])
                ring.push(flat[:n * P])

        return _in_pieces(piece, bs)

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        ring, session = self._ring, self.session
        sr = self.source.samplerate
        buf = self._pop_buf
        P = self._stride
        S = 1 if self.channels is None else len(self.channels)
        pop_max = self._max_block * P
        poll = min(0.005, self.blocksize / sr / 2)
        # max_lag in frames: at least one pop (the backlog a worker that keeps up can have)
        lag_frames = None if self.max_lag is None else max(int(self.max_lag * sr), self._max_block)
        last_audio = last_look = time.monotonic()
        last_status = 0.0
        dropped_seen = int(ring.dropped) // P
        status_sinks = [s for s in self.sinks if callable(getattr(s, "status", None))]
        cb_faults = self._cb_faults
        try:
            while True:
                if cb_faults[0]:
                    self.error = RuntimeError(f"the audio callback failed on {int(cb_faults[0])} block(s) "
                                              f"({int(cb_faults[1])} frames lost): {self._cb_error}")
                    break
                n = ring.available
                now = time.monotonic()
                if now - last_look > 0.5 * self.stall_timeout:
                    # this thread did not look for that long (the whole process was frozen: SIGSTOP, a swap
                    # storm, a suspended VM; or one long call): the device gets its full stall limit from now,
                    # as its own callback thread may just be waking too
                    last_audio = max(last_audio, now)
                last_look = now
                if status_sinks and now - last_status > self.status_interval:
                    last_status = now
                    c = self.counters()
                    for s in status_sinks:
                        self._enter(s)
                        s.status(c)
                    self._call = _IDLE
                if n == 0:
                    if self._stop_req.is_set() or self._source_finished.is_set():
                        if ring.available == 0:  # the source may have pushed its last block meanwhile
                            break
                        continue
                    if not self._source_started.is_set():
                        last_audio = now  # a device may take seconds to open: no stall before it has
                    elif now - last_audio > self.stall_timeout:
                        # the input latency is known once the source has started: read it here, not up front
                        limit = self.stall_limit()
                        if now - last_audio > limit:
                            raise DeviceError(
                                f"no audio from {self.source.name!r} for {limit:g} s (device lost, or the "
                                f"audio server stopped)")
                    time.sleep(poll)
                    continue
                last_audio = now
                if n // P > self._max_backlog:
                    self._max_backlog = n // P
                if lag_frames is not None and n // P > lag_frames:
                    # more waiting than max_lag (a stall): the oldest goes, as a ring overflow would, and the worker
                    # goes on from the newest audio instead of replaying stale events at once
                    excess = n // P - lag_frames
                    left = excess
                    while left > 0:
                        take = min(left, self._max_block)
                        ring.pop(take * P, out=buf)
                        left -= take
                    self._enter(session)
                    session.skip(excess)
                    self._call = _IDLE
                    self._lag_dropped += excess
                    n = ring.available
                dropped = int(ring.dropped) // P
                if dropped > dropped_seen:
                    # the ring dropped its oldest frames (this thread fell behind): they were missing just before
                    # what comes next, so the stream's clock runs on over them and the times of later events stay
                    # the device's (they lagged by the audio dropped, for the rest of the run)
                    self._enter(session)
                    session.skip(dropped - dropped_seen)
                    self._call = _IDLE
                    dropped_seen = dropped
                block = ring.pop(min(n, pop_max), out=buf)
                if P > 1:  # whole frames only: pushes, pops and overflow drops all move by multiples of P
                    block = block.reshape(-1, P)[:, :S]
                t0 = time.perf_counter()
                self._enter(session)
                events = session.process(block)
                self._call = _IDLE
                t1 = time.perf_counter()
                self._samples_processed += block.shape[0]
                if events:
                    self._emit(events, t1)
                self._busy += time.perf_counter() - t0
            err = getattr(self.source, "error", None)
            if err is not None and not self._stop_req.is_set() and self.error is None:
                raise err if isinstance(err, RtclassifyError) else DeviceError(f"audio source failed: {err}")
        except BaseException as exc:
            self.error = _as_clear_error(exc)
            self._emit_decided(exc)
        finally:
            try:
                # flush: TagOff for every active tag, sent before the sinks close; a sink that fails here
                # does not keep the others from getting them
                try:
                    self._enter(session)
                    tail = session.flush()
                    self._call = _IDLE
                    if tail:
                        self._emit(tail, time.perf_counter(), tolerant=True)
                except BaseException as exc:
                    if self.error is None:
                        self.error = _as_clear_error(exc)
                    self._emit_decided(exc)  # a model run failed in the flush: its final offs
                for s in status_sinks:
                    self._enter(s)
                    try:
                        s.status(self.counters())
                    except Exception:
                        pass
                self._call = _IDLE
                with self._handover:
                    self._worker_leaving = True
                    close_here = self._source_finished.is_set() or self.error is not None or self._stop_on_worker
                    self._worker_closes = close_here
                if close_here:
                    # stopped by itself (or by stop() on this thread): release the source and the sinks here,
                    # then signal waiters
                    try:
                        self._stop_source()
                    except Exception:
                        pass
                    self._close_sinks()
                    self._release_switch_interval()
                    self._done.set()
            finally:
                self._worker_exit.set()

    def _emit_decided(self, exc: BaseException) -> None:
        """Send the events a session call decided before its model run failed (the exception's ``events``);
        the listener's first error stays the one to report."""
        decided = getattr(exc, "events", None)
        if decided:
            self._call = _IDLE
            try:
                self._emit(decided, time.perf_counter(), tolerant=True)
            except BaseException:  # noqa: BLE001 - the first error is the one to report
                pass

    def _emit(self, events, t_decided: float, tolerant: bool = False) -> None:
        """Hand a batch to ``on_event`` and then to every sink.

        Every sink gets the batch even when ``on_event`` or another sink
        raises: the first error becomes the listener's and, unless
        ``tolerant`` (the final flush), stops the listener after every sink
        has had the batch, so no output misses an off that another one sent.
        """
        self._events += len(events)
        self._switches += sum(1 for e in events if e.kind not in _NOT_SWITCHES)
        cb = self.on_event
        cb_exc = None
        if cb is not None:
            self._enter(cb)
            try:
                for ev in events:
                    cb(ev)
            except BaseException as exc:
                cb_exc = exc
                if self.error is None:
                    self.error = _as_clear_error(exc)
        sink_exc = None
        for s in self.sinks:
            self._enter(s)
            try:
                s.send(events)
            except BaseException as exc:  # the other sinks still get the batch (their offs, their note-offs)
                if sink_exc is None:
                    sink_exc = exc
                if tolerant and self.error is None:
                    self.error = _as_clear_error(exc)
        self._call = _IDLE
        self._output_sum += time.perf_counter() - t_decided
        self._output_n += 1
        if not tolerant:
            if cb_exc is not None:
                raise cb_exc
            if sink_exc is not None:
                raise sink_exc


def _check_sink_streams(sinks, channels, channel: int) -> None:
    """Refuse a MIDI or OSC sink that would not tell the listener's streams apart.

    Those sinks keep the streams apart by the events' input channel, as
    their ``streams`` (input channels) say: one told of no streams sends
    every stream on one MIDI channel (one stream's note-off ends another's
    note) or one set of OSC addresses, and one that lacks a channel stops the
    run at that channel's first event. Other sinks (the JSONL log, the
    display, a host's own) take any stream.
    """
    from ..sinks.midi import MidiSink
    from ..sinks.osc import OscSink

    for s in sinks:
        if not isinstance(s, (MidiSink, OscSink)):
            continue
        streams = s.streams
        given = None if streams is None else list(streams) if isinstance(streams, (tuple, list)) else sorted(streams)
        if channels is not None:
            want = f"streams={list(channels)}"
            if streams is None and len(channels) > 1:  # one stream has nothing to keep apart
                apart = "MIDI channel" if isinstance(s, MidiSink) else "set of OSC addresses"
                raise ParameterError(
                    f"sinks: {_sink_name(s)} was given no streams, but the listener tags channels "
                    f"{','.join(map(str, channels))} as streams of their own, which it would send on one {apart}; "
                    f"give it {want} (the input channels)")
            lacking = [] if streams is None else [c for c in channels if c not in streams]
            if lacking:
                chans = ",".join(map(str, channels))
                raise ParameterError(
                    f"sinks: {_sink_name(s)} has streams={given}, which lacks channel{'s' if len(lacking) > 1 else ''} "
                    f"{','.join(map(str, lacking))} of the listener's channels {chans}; give it {want} (streams "
                    f"are the input channels, 0-based, not stream numbers)")
        elif streams is not None and channel not in streams:
            raise ParameterError(
                f"sinks: {_sink_name(s)} has streams={given}, which lacks the listener's channel {channel} "
                f"(its events carry it); give it no streams, or streams=[{channel}]")


def _in_pieces(piece, bs: int):
    """``store(indata, frames)`` calling ``piece(x, n)`` on ``indata`` directly, or in ``bs``-frame pieces."""

    def store(indata, frames):
        if frames <= bs:
            piece(indata, frames)
            return
        for a in range(0, frames, bs):  # a block longer than the buffers: same buffer, piece by piece
            x = indata[a:a + bs]
            piece(x, x.shape[0])

    return store


def _check_sinks(sinks) -> list:
    """``sinks`` as a list, each with the :class:`~rtclassify.sinks.Sink` methods; a ParameterError naming what is
    wrong otherwise (not an AttributeError from start(), or a TypeError from list(None))."""
    what = "a list of sinks (objects with open(), send(events) and close(); status(counters) optional)"
    if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Iterable):
        hint = (" (one sink: sinks=[sink])" if callable(getattr(sinks, "send", None)) else
                " (none: sinks=[] or leave it out)" if sinks is None else "")
        raise ParameterError(f"sinks must be {what}, got {sinks!r}{hint}")
    sinks = list(sinks)
    for i, s in enumerate(sinks):
        missing = [m for m in ("open", "send", "close") if not callable(getattr(s, m, None))]
        if missing:
            raise ParameterError(f"sinks[{i}]: {_sink_name(s)} has no {' or '.join(m + '()' for m in missing)}: a sink "
                                 f"needs open(), send(events) and close() (see rtclassify.sinks.Sink)")
    return sinks


def _sink_name(sink) -> str:
    r = repr(sink)
    return type(sink).__name__ if r.startswith("<") else r


def _close_quietly(sink) -> None:
    try:
        sink.close()
    except Exception:
        pass


def _as_clear_error(exc: BaseException) -> BaseException:
    """Faults keep their class when they are ours; anything else becomes a one-line RuntimeError."""
    if isinstance(exc, (RtclassifyError, KeyboardInterrupt)):
        return exc
    if os.environ.get("RTCLASSIFY_DEBUG"):
        import traceback

        traceback.print_exception(exc)
    return RuntimeError(f"{type(exc).__name__}: {exc}")
