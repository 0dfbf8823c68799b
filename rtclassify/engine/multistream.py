"""Several streams at once (the channels of one input), with one batched model run per hop.

:class:`MultiStreamSession` tags every channel of a multi-channel input as a
stream of its own. It holds one :class:`~rtclassify.engine.session.StreamSession`
per stream for the per-stream parts (block conversion, resampler, native
frontend, mel-frame ring, decoder, counters) and shares the session's backend:
whenever a hop is due, the windows of all streams go to the backend as one
batch ``(S, n_mels, W)``, so ONNX Runtime, TensorRT or torch runs once per hop
for S streams instead of S times.

All streams get the same number of samples per block (the columns of a
``(frames, streams)`` block), the same resampler and the same frontend, so
their frames, and therefore their hops, are always in step: every hop is due
for every stream at once and each batch holds S windows.

Each stream's outputs and events are those a single
:class:`~rtclassify.engine.session.StreamSession` gives for that channel
alone: the same frames, the same windows and, where the backend computes each
row of a batch independently of the others (ONNX Runtime on the CPU does, for
the models tested), bit-for-bit the same probabilities. Events carry the
stream's input ``channel``.

A session is not thread-safe; call it from one thread at a time. A call of
``process``, ``flush`` or ``reset`` made while another thread is inside one of
them is refused with :class:`~rtclassify.errors.StateError` before it touches
anything (the running call is not disturbed).
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Callable

import numpy as np

from ..audio.samples import check_samples_dtype
from ..detect.events import Event
from ..errors import ParameterError, StateError
from .session import (FrameResult, NativeStateMixin, StreamSession, _HopTimer, call_all, merge_techniques,
                      one_call_at_a_time, skip_count)

__all__ = ["MultiStreamSession", "parse_channels"]


#: the highest 0-based input channel a channel list may name (more than any audio interface has)
MAX_CHANNEL_INDEX = 1023


def parse_channels(spec, *, name: str = "channels") -> tuple[int, ...]:
    """Channel list from ``"0-7"``, ``"0,2,5"``, ``"0-3,8,10-11"`` or a sequence of integers.

    Channels are 0-based input channel indices (as ``--channel``), in the
    order given; each at most once.

    Raises
    ------
    ParameterError
        Empty, not integers, negative, a range running backwards, or a
        channel given twice.
    """
    if isinstance(spec, str):
        out: list[int] = []
        for part in spec.split(","):
            part = part.strip()
            lo, sep, hi = part.partition("-")
            try:
                a = int(lo)
                b = int(hi) if sep else a
            except ValueError:
                raise ParameterError(f"{name}: expected channel numbers like 0-7 or 0,2,5 (0-based), "
                                     f"got {spec!r}") from None
            if a < 0 or b < 0:
                raise ParameterError(f"{name}: channels are 0-based numbers >= 0, got {spec!r}")
            if b < a:
                raise ParameterError(f"{name}: the range {part!r} runs backwards")
            if b > MAX_CHANNEL_INDEX:  # checked before the range is built: '0-999999999' is one error, not a huge list
                raise ParameterError(f"{name}: channel {b} is beyond the last possible channel, {MAX_CHANNEL_INDEX}")
            out.extend(range(a, b + 1))
    else:
        try:
            items = list(spec)
        except TypeError:
            raise ParameterError(f"{name}: expected a sequence of channel indices, got {spec!r}") from None
        out = []
        for c in items:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0:
                raise ParameterError(f"{name}: channels must be integers >= 0 (0-based), got {c!r}")
            if c > MAX_CHANNEL_INDEX:
                raise ParameterError(f"{name}: channel {c} is beyond the last possible channel, {MAX_CHANNEL_INDEX}")
            out.append(int(c))
    if not out:
        raise ParameterError(f"{name}: no channel given")
    seen: set[int] = set()
    for c in out:
        if c in seen:
            raise ParameterError(f"{name}: channel {c} is given twice")
        seen.add(c)
    return tuple(out)


class MultiStreamSession(NativeStateMixin):
    """Synchronous multi-stream classifier: ``(frames, streams)`` blocks in, events of every stream out.

    Create it with :meth:`rtclassify.Classifier.multistream`.

    Parameters
    ----------
    bundle : Bundle
    backend : Backend
        Shared by all streams; called once per hop with a batch of S windows.
    channels : sequence of int or str
        The input channel of each stream (0-based), in stream order, e.g.
        ``[0, 1, 2, 3]`` or ``"0-3"``: stream ``k`` is column ``k`` of the
        blocks and its events carry ``channel = channels[k]``.
    sample_rate, max_block, hop, decoder, level_rate, resample_quality, record_frames
        As in :class:`~rtclassify.engine.session.StreamSession`; the same for
        every stream.
    on_frame : callable, optional
        ``on_frame(channel, frame)`` with each stream's
        :class:`~rtclassify.engine.session.FrameResult`, at the end of the
        ``process``/``flush`` call that produced it.

    Attributes
    ----------
    channels : tuple of int
    streams : list of StreamSession
        The per-stream parts (do not call their methods while this session
        is in use).
    sample_rate, model_rate, labels, hop_frames, hop_s, latency_samples, resampler_latency_s
        As in :class:`~rtclassify.engine.session.StreamSession` (the same for
        every stream).
    last_frames : list of list of FrameResult
        Per stream, the outputs of the last :meth:`process` or :meth:`flush`.
    decoders : list of Decoder
        Per stream.
    """

    _create_with = "Classifier.multistream()"

    def __init__(self, bundle, backend, channels, sample_rate: int = 48000, max_block: int = 1024,
                 hop: float | None = None, decoder: dict | None = None, level_rate: float | None = None,
                 resample_quality: str = "auto", record_frames: bool = True,
                 on_frame: Callable[[int, FrameResult], None] | None = None, techniques: bool | dict = False):
        self.channels = parse_channels(channels)
        if on_frame is not None and not callable(on_frame):
            raise ParameterError("on_frame must be callable")
        self.streams: list[StreamSession] = [
            StreamSession(bundle, backend, sample_rate=sample_rate, max_block=max_block, hop=hop, channel=c,
                          decoder=decoder, level_rate=level_rate, resample_quality=resample_quality,
                          record_frames=record_frames, techniques=techniques,
                          on_frame=None if on_frame is None else functools.partial(on_frame, c))
            for c in self.channels
        ]
        first = self.streams[0]
        self.bundle = bundle
        self.backend = backend
        self.sample_rate = first.sample_rate
        self.model_rate = first.model_rate
        self.max_block = first.max_block
        self.labels = first.labels
        self.hop_frames = first.hop_frames
        self.hop_s = first.hop_s
        self.latency_samples = first.latency_samples
        self.resampler_latency_s = first.resampler_latency_s
        self.decoders = [s.decoder for s in self.streams]
        S = len(self.streams)
        self._batch = np.empty((S, bundle.n_mels, bundle.window_frames), np.float32)
        self._pos = [0] * S
        self._run = getattr(backend, "run_unchecked", backend.run)
        self._timer = _HopTimer(self.hop_s)
        self._in_use = threading.Lock()
        self.reset()

    # ------------------------------------------------------------------
    @property
    def n_streams(self) -> int:
        """Number of streams S."""
        return len(self.streams)

    @property
    def latency_s(self) -> float:
        """:attr:`latency_samples` in seconds."""
        return self.latency_samples / self.sample_rate

    @property
    def active_tags(self) -> dict[int, list[str]]:
        """Tags that are on now, per input channel."""
        return {c: s.active_tags for c, s in zip(self.channels, self.streams)}

    @property
    def stream_time(self) -> float:
        """Seconds of input consumed so far (by every stream)."""
        return self.streams[0].stream_time

    def output_time(self, index: int) -> float:
        """Time (input seconds) of the centre of frontend frame ``index``."""
        return self.streams[0].output_time(index)

    @one_call_at_a_time()
    def reset(self) -> None:
        """Start new streams: clears audio state, decoder state and counters of every stream."""
        for s in self.streams:
            s.reset()
        self._hops = 0
        self._failed_hops = 0
        self._run_error = None
        self._timer.reset()
        self._flushed = False
        self.last_frames: list[list[FrameResult]] = [[] for _ in self.streams]

    @property
    def counters(self) -> dict:
        """Counters of the session (a new dict each call).

        Keys: ``streams`` (S), ``samples_in`` (input frames consumed, per
        stream), ``frames`` (frontend frames, per stream), ``hops`` (batched
        backend calls; each decided one output of every stream),
        ``failed_hops`` (backend calls that raised: no output of any stream),
        ``late_hops`` (hops whose engine cost, for all streams together,
        exceeded the hop duration), ``compute_ms_mean``, ``compute_ms_p99``
        (engine cost per hop for all streams: conversion, resampling,
        frontends, one backend call, decoding; wall-clock, so it includes time
        the OS gave the CPU to other processes), ``nonfinite_replaced`` (all
        streams), ``hop_ms``, ``latency_algorithmic_ms``,
        ``latency_compute_ms`` (= ``compute_ms_mean``) and
        ``resampler_latency_ms``.
        """
        first = self.streams[0]
        mean_ms, p99_ms = self._timer.stats_ms()
        return {
            "streams": len(self.streams),
            "samples_in": first._samples_in,
            "skipped_samples": first._skipped,
            "frames": first._n_frames,
            "hops": self._hops,
            "failed_hops": self._failed_hops,
            "late_hops": self._timer.late,
            "compute_ms_mean": mean_ms,
            "compute_ms_p99": p99_ms,
            "nonfinite_replaced": sum(s.counters["nonfinite_replaced"] for s in self.streams),
            "bad_probabilities": sum(s.decoder.bad_probabilities for s in self.streams),
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
        S = len(self.streams)
        if block.ndim == 1 and S == 1:
            return block[:, None]
        if block.ndim != 2 or block.shape[1] != S:
            raise ParameterError(f"block must have shape (frames, {S}): one column per stream (channels "
                                 f"{','.join(map(str, self.channels))}); got shape {block.shape}")
        return block

    @one_call_at_a_time(deliver=True)
    def process(self, block) -> list[Event]:
        """Process a block of every stream; returns the events it decided.

        Parameters
        ----------
        block : ndarray, shape (n, S)
            float32/float64 in [-1, 1] or int16 samples at :attr:`sample_rate`;
            column ``k`` belongs to stream ``k`` (input channel
            ``channels[k]``). A 1-D block is accepted when S is 1. Any length
            (empty included); longer than ``max_block`` is split.

        Returns
        -------
        list of Event
            Per hop, the events of stream 0, then stream 1, ...; each carries
            its stream's input channel. :attr:`last_frames` holds this call's
            outputs per stream.

        Raises
        ------
        ParameterError
            Wrong dtype or shape.
        StateError
            The session was flushed and not reset, or another thread is
            inside ``process``/``flush``/``reset`` now (a RuntimeError).
        Exception
            Whatever the backend raised, as :meth:`StreamSession.process`
            raises it: after the whole block was taken in (the failed hops'
            outputs lost, ``counters["failed_hops"]``), this call's events in
            its ``events`` attribute. Whatever an ``on_frame`` raised, after
            every output was handed over, with this call's events likewise.
        """
        if self._flushed:
            raise StateError("the streams were flushed; call reset() before processing more audio")
        t0 = time.perf_counter()
        self._run_error = None  # (one left by a call that another exception ended is not this call's)
        x = self._check_block(block)
        events: list[Event] = []
        self._start_outputs()
        hops_before = self._hops
        streams = self.streams
        mb = self.max_block
        for start in range(0, x.shape[0], mb):
            chunk = x[start:start + mb]
            first = len(events)
            self._push_frames([s._ingest(chunk[:, k]) for k, s in enumerate(streams)], events)
            merge_techniques(streams, events, first)
            if self._interrupted():
                break
        self._end_outputs()
        self._timer.add(time.perf_counter() - t0, self._hops - hops_before)
        self._raise_run_error(events)
        return events

    def _deliver_frames(self) -> bool:
        """The ``on_frame`` calls of this call, hop by hop (stream 0, stream 1, ... of each hop; see
        StreamSession._deliver_frames); the first exception is raised after all of them."""
        pending = [s._pending_frames for s in self.streams]
        if not any(pending):
            return False
        for s in self.streams:
            s._pending_frames = []
        call_all((s.on_frame, p[i]) for i in range(max(len(p) for p in pending))
                 for s, p in zip(self.streams, pending) if i < len(p))
        return True

    @one_call_at_a_time(deliver=True)
    def flush(self) -> list[Event]:
        """End every stream: drain the resamplers and turn every active tag off.

        Returns the remaining events (outputs from the resamplers' last
        samples, batched like any hop, then a TagOff for every tag that is on,
        stream by stream). Afterwards no audio is accepted until :meth:`reset`.
        """
        if self._flushed:
            return []
        t0 = time.perf_counter()
        self._run_error = None
        events: list[Event] = []
        self._start_outputs()
        hops_before = self._hops
        self._push_frames([s._tail_frames() for s in self.streams], events)
        for s in self.streams:
            s._end(events)
        self._end_outputs()
        self._timer.add(time.perf_counter() - t0, self._hops - hops_before)
        self._flushed = True
        self._raise_run_error(events)
        return events

    @one_call_at_a_time()
    def skip(self, n: int) -> None:
        """Let every stream's clock run on by ``n`` input frames that will never come (see
        :meth:`StreamSession.skip <rtclassify.engine.session.StreamSession.skip>`)."""
        n = skip_count(n, self._flushed, "frames", "the streams were")
        for s in self.streams:
            s._skip_samples(n)

    # ------------------------------------------------------------------
    def _start_outputs(self) -> None:
        for s in self.streams:
            s._frames_out = []

    def _end_outputs(self) -> None:
        for s in self.streams:
            s.last_frames = s._frames_out
        self.last_frames = [s.last_frames for s in self.streams]

    def _push_frames(self, frames: list, events: list) -> None:
        """Feed each stream its new frames; at every due hop, one backend call for all streams."""
        streams = self.streams
        k = 0 if frames[0] is None else frames[0].shape[0]
        for f in frames:
            if (0 if f is None else f.shape[0]) != k:
                raise RuntimeError("the streams fell out of step (different numbers of frontend frames)")
        if k == 0:
            return
        pos = self._pos
        batch = self._batch
        j = 0
        while j < k:
            nxt = j
            for i, s in enumerate(streams):
                nxt, pos[i] = s._advance(frames[i], j)
            j = nxt
            if pos[0] < 0:
                continue
            for i, s in enumerate(streams):
                s._window(pos[i], batch[i])
            probs = self._run_or_skip(batch, 1)
            if probs is None:
                # a run that fails loses this hop only: every stream's trigger moves on as _decide would have
                # moved it (left on a frame already written, no hop would ever be due again)
                for s in streams:
                    s._trigger += self.hop_frames
                continue
            for i, s in enumerate(streams):
                s._decide(probs[i], events)
            self._hops += 1

    def __repr__(self) -> str:
        return (f"<MultiStreamSession {self.bundle.name!r} {len(self.streams)} streams (channels "
                f"{','.join(map(str, self.channels))}) {self.sample_rate} Hz -> {self.model_rate} Hz, "
                f"hop {self.hop_frames} frames ({self.hop_s * 1000:.0f} ms)>")
