"""Test helpers shared by the streaming tests (sessions and the Listener's audio callback).

tests/conftest.py registers this module for pytest's assertion rewriting.
"""

from __future__ import annotations

import tracemalloc


def stream_all(session, x, sizes, per_stream: bool = False):
    """Feed x in blocks of the given sizes (cycled), then flush; returns (events, frames).

    ``frames`` is one list, or with ``per_stream`` (a multi-stream session, x of shape (n, S)) one list per stream.
    """
    assert any(sizes), "at least one block size must be positive"
    events = []
    frames = [[] for _ in range(x.shape[1])] if per_stream else []

    def collect():
        if per_stream:
            for s, fr in enumerate(session.last_frames):
                frames[s] += fr
        else:
            frames.extend(session.last_frames)

    i = k = 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        k += 1
        events += session.process(x[i:i + n])
        collect()
        i += n
    events += session.flush()
    collect()
    return events, frames


def onoff(events):
    """(kind, tag, stream time to the microsecond) of the on/off events."""
    return [(e.kind, e.tag, round(e.stream_time, 6)) for e in events if e.kind in ("on", "off")]


def callback_peak_bytes(cb, ring, block, flags, pop: int, warmup: int = 3, calls: int = 50) -> int:
    """Peak bytes that ``calls`` calls of the audio callback ``cb`` with ``block`` allocate.

    First ``warmup`` calls, each followed by popping ``pop`` samples from ``ring``; then the measured
    calls under tracemalloc, each followed by a reset of the ring.
    """
    frames = block.shape[0]
    for _ in range(warmup):
        cb(block, frames, None, flags)
        ring.pop(pop)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(calls):
            cb(block, frames, None, flags)
            ring.reset()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
