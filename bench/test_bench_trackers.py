"""Pitch, vibrato and tremolo tracker benchmarks (issue: native streaming trackers).

Budget: the native TechniqueTracker (pitch + vibrato + tremolo) costs less than
0.01 of real time on one core, fed 512-sample blocks like a live callback.
Cost is CPU time of this process (``time.process_time``), best of several
rounds, so that other work on a shared machine does not count; the hardest
inputs are included (white noise: the pitch search runs over every lag; a low
tone: long lags; a tone with vibrato and tremolo: both modulation analyses and
their joint attribution run at every frame; a shallow tremolo under a wide
vibrato whose level wobbles with the f0: the level is also re-analyzed with
the vibrato's by-product removed). Peers measured in the same run
and printed: the native PitchTracker alone and librosa's pYIN (offline, on
the same audio).
"""

import time

import numpy as np
import pytest

from rtclassify import _core

BLOCK = 512
SECONDS = 2.0
BUDGET_RT = 0.01


def _signal(kind: str, sr: int) -> np.ndarray:
    n = int(SECONDS * sr)
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


def _stream(make, x):
    tracker = make()
    for i in range(0, len(x), BLOCK):
        tracker.process(x[i:i + BLOCK])


def _cpu_rt(fn, audio_seconds, rounds=5):
    fn()  # warm up
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best / audio_seconds


@pytest.mark.benchmark(group="trackers", timer=time.process_time, min_rounds=3)
@pytest.mark.parametrize("sr", [16000, 44100, 48000])
@pytest.mark.parametrize("kind", ["modulated", "masked", "low", "noise"])
def test_technique_tracker_real_time_ratio(benchmark, report, sr, kind):
    x = _signal(kind, sr)
    times = []  # timed here too: benchmark.stats is empty under --benchmark-disable

    def run():
        t0 = time.process_time()
        _stream(lambda: _core.TechniqueTracker(sr), x)
        times.append(time.process_time() - t0)

    benchmark(run)
    rt = min(times) / SECONDS
    pitch_rt = _cpu_rt(lambda: _stream(lambda: _core.PitchTracker(sr), x), SECONDS)
    hop = _core.TechniqueTracker(sr).hop_length
    report(f"TechniqueTracker sr={sr} {kind}: CPU real-time ratio {rt:.5f} "
           f"({rt * hop / sr * 1e6:.1f} us per {hop}-sample hop); PitchTracker alone {pitch_rt:.5f}; "
           f"budget {BUDGET_RT}")
    assert rt < BUDGET_RT


def test_pyin_peer(report):
    librosa = pytest.importorskip("librosa")
    sr = 22050
    x = _signal("modulated", sr)
    ours = _cpu_rt(lambda: _stream(lambda: _core.TechniqueTracker(sr), x), SECONDS)
    pyin = _cpu_rt(lambda: librosa.pyin(x, fmin=50.0, fmax=2000.0, sr=sr, frame_length=2048,
                                        hop_length=220), SECONDS, rounds=1)
    report(f"sr={sr}: TechniqueTracker {ours:.5f} vs librosa.pyin {pyin:.3f} real-time "
           f"(pyin / ours = {pyin / ours:.0f}x)")
    assert ours < BUDGET_RT
    assert ours < pyin
