"""Pitch, vibrato and tremolo tracker benchmarks (issue: native streaming trackers).

Budget: the trackers as the product runs them cost less than 0.01 of real time
on one core. The product path is :class:`rtclassify.detect.techniques.TechniqueDetector`
driven the way a stream session drives it (``rtclassify/engine/session.py``,
``_ingest`` and ``_track``): built with the session's rate and channel 0, fed each
chunk as a float32 view of the session's own input buffer, its events and values
collected; fed 256-sample chunks, what the live worker pops per call with the
default 256-frame device blocks; over 8 s of audio (the modulation analyses reach
their full cost only after about 1 s). The bare native ``_core.TechniqueTracker``
in 512-sample blocks (what this bench timed before) is printed beside it for
reference, not asserted.

Missed on a machine that runs the frozen reference model clearly slower than the development machine where
the budget was set and met, the figure is an expected failure (XFAIL, "not met on this machine") only when it
meets the budget with rtclassify's own work taken at most ``OWN_WORK_LEEWAY`` (1.2) times slower there
(bench/conftest.py); any other miss fails.

Cost is CPU time of this process (``time.process_time``), best of several
rounds after a warm-up round, so that other work on a shared machine does not
count; the hardest inputs are included (white noise: the pitch search runs over
every lag; a low tone: long lags; a tone with vibrato and tremolo: both
modulation analyses and their joint attribution run at every frame; a shallow
tremolo under a wide vibrato whose level wobbles with the f0: the level is also
re-analyzed with the vibrato's by-product removed). Peers measured in the same
run and printed: the native PitchTracker alone and librosa's pYIN (offline, on
the same audio).
"""

import time

import numpy as np
import pytest

from conftest import at_reference_speed, hold_speed_target

from rtclassify import _core
from rtclassify.detect.techniques import TechniqueDetector

BLOCK = 256  # the live worker's chunk (one 256-frame device block per session call)
NATIVE_BLOCK = 512  # the bare native tracker's reference figure (the earlier bench's setting)
SECONDS = 8.0
ROUNDS = 5
BUDGET_RT = 0.01


def _signal(kind: str, sr: int, seconds: float = SECONDS) -> np.ndarray:
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if kind == "noise":
        return (0.3 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    f0 = 80.0 if kind == "low" else 330.0
    cents = 50 * np.sin(2 * np.pi * 5.5 * t) if kind == "modulated" else 0.0 * t
    gain = 10 ** (3 * np.sin(2 * np.pi * 3.2 * t) / 20) if kind == "modulated" else 1.0
    if kind == "masked":  # a 3 dB tremolo at 6.6 Hz under a 90-cent vibrato that makes the level wobble 8 dB
        v = np.sin(2 * np.pi * 5.0 * t)
        cents = 90 * v
        gain = 10 ** ((4 * v + 2 * v * v + 1.5 * np.sin(2 * np.pi * 6.6 * t)) / 20)
    ph = 2 * np.pi * np.cumsum(f0 * 2 ** (cents / 1200)) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 16) if k * f0 * 1.1 < sr / 2)
    return (0.2 * x * gain).astype(np.float32)


class _SessionTrack:
    """A TechniqueDetector driven as StreamSession drives it live: constructed as ``StreamSession.__init__`` does
    with ``techniques=True`` (the session's int rate, channel 0, no options); each chunk handed to ``process`` as
    a float32 1-D view (``_ingest`` passes ``self._buf[:n]``, into which it has copied the chunk for the frontend
    as well: that copy is made with the trackers off too, and is not timed here); the events and values
    appended to the session's pending list, which the session merges and clears per call (``_track``; the
    listener's sessions keep no per-frame values, ``record_frames=False``)."""

    def __init__(self, sr: int):
        self.det = TechniqueDetector(sr, channel=0)
        self.pending: list = []

    def stream(self, x: np.ndarray, block: int = BLOCK) -> int:
        det, pending = self.det, self.pending
        n_out = 0
        for i in range(0, len(x), block):
            evs, values = det.process(x[i:i + block])
            pending.extend(evs)
            pending.extend(values)
            n_out += len(pending)
            pending.clear()
        return n_out


def _native_stream(make, x, block=NATIVE_BLOCK):
    tracker = make()
    for i in range(0, len(x), block):
        tracker.process(x[i:i + block])


def _best_cpu_rt(fn, audio_seconds, setup=None, rounds=ROUNDS):
    """Best-of-``rounds`` CPU time of ``fn(setup())`` (setup untimed) per second of audio, after a warm-up."""
    best = float("inf")
    for r in range(rounds + 1):
        arg = setup() if setup else None
        t0 = time.process_time()
        fn(arg) if setup else fn()
        dt = time.process_time() - t0
        if r:  # round 0 warms up
            best = min(best, dt)
    return best / audio_seconds


@pytest.mark.benchmark(group="trackers", timer=time.process_time, min_rounds=3)
@pytest.mark.parametrize("sr", [16000, 44100, 48000])
@pytest.mark.parametrize("kind", ["modulated", "masked", "low", "noise"])
def test_technique_tracker_real_time_ratio(benchmark, report, sr, kind):
    x = _signal(kind, sr)
    times = []  # timed here too: benchmark.stats is empty under --benchmark-disable (one cold round)

    def run(track):
        t0 = time.process_time()
        track.stream(x)
        times.append(time.process_time() - t0)

    benchmark.pedantic(run, setup=lambda: ((_SessionTrack(sr),), {}), rounds=ROUNDS, warmup_rounds=1)
    while len(times) < ROUNDS + 1:  # --benchmark-disable ran one round: top up (the first is a warm-up)
        run(_SessionTrack(sr))
    rt = min(times[1:]) / SECONDS
    native_rt = _best_cpu_rt(lambda: _native_stream(lambda: _core.TechniqueTracker(sr), x), SECONDS, rounds=3)
    pitch_rt = _best_cpu_rt(lambda: _native_stream(lambda: _core.PitchTracker(sr), x), SECONDS, rounds=3)
    hop = _core.TechniqueTracker(sr).hop_length
    report(f"trackers sr={sr} {kind}, {SECONDS:g} s: product path (TechniqueDetector as the session runs it, "
           f"{BLOCK}-sample chunks) CPU real-time ratio {rt:.5f} ({rt * hop / sr * 1e6:.1f} us per {hop}-sample "
           f"hop), budget {BUDGET_RT}; for reference: bare native TechniqueTracker in {NATIVE_BLOCK}-sample "
           f"blocks {native_rt:.5f}, native PitchTracker alone {pitch_rt:.5f}")
    benchmark.extra_info.update(product_rt=rt, native_rt=native_rt, pitch_rt=pitch_rt)
    hold_speed_target(rt < BUDGET_RT, f"TechniqueDetector as the session runs it costs {rt:.5f} of real time at "
                                      f"{sr} Hz ({kind}), over the {BUDGET_RT} budget",
                      lambda slowdown: at_reference_speed(rt, 0.0, slowdown) < BUDGET_RT, report,
                      clock=time.process_time)


def test_pyin_peer(report):
    librosa = pytest.importorskip("librosa")
    sr = 22050
    x = _signal("modulated", sr)
    ours = _best_cpu_rt(lambda t: t.stream(x), SECONDS, setup=lambda: _SessionTrack(sr), rounds=3)
    seg = 2.0  # pYIN takes about its audio's duration: 2 s of the same audio, one round
    pyin = _best_cpu_rt(lambda: librosa.pyin(x[:int(seg * sr)], fmin=50.0, fmax=2000.0, sr=sr, frame_length=2048,
                                             hop_length=220), seg, rounds=1)
    report(f"sr={sr}: trackers' product path (TechniqueDetector, {BLOCK}-sample chunks, {SECONDS:g} s) {ours:.5f} "
           f"vs librosa.pyin (offline, first {seg:g} s) {pyin:.3f} real-time (pyin / ours = {pyin / ours:.0f}x)")
    assert ours < pyin
    hold_speed_target(ours < BUDGET_RT, f"the trackers' product path costs {ours:.5f} of real time at {sr} Hz, over "
                                        f"the {BUDGET_RT} budget",
                      lambda slowdown: at_reference_speed(ours, 0.0, slowdown) < BUDGET_RT, report,
                      clock=time.process_time)
