"""Test helpers shared by the tracker tests (test_pitch.py, test_vibrato.py, test_tremolo.py).

Signal generators, the TechniqueTracker run with frame times, block-by-block
streaming of a TechniqueDetector, the block-split invariance check and the
bad-parameter cases. tests/conftest.py registers this module for pytest's
assertion rewriting, so a failing check here reports its values.
"""

from __future__ import annotations

import numpy as np

from rtclassify import _core


def modulated_tone(sr, dur, f0, vib=None, trem=None, start=1.0, harmonics=8, amp=0.2, seed=0):
    """Harmonic tone; vib = (rate Hz, extent cents half p-p), trem = (rate Hz, depth dB p-p), from `start` s."""
    n = int(sr * dur)
    t = np.arange(n) / sr
    on = t >= start
    c = np.zeros(n)
    g = np.zeros(n)
    if vib:
        c[on] = vib[1] * np.sin(2 * np.pi * vib[0] * (t[on] - start))
    if trem:
        g[on] = 0.5 * trem[1] * np.sin(2 * np.pi * trem[0] * (t[on] - start))
    f = f0 * 2 ** (c / 1200)
    ph = 2 * np.pi * np.cumsum(f) / sr
    rng = np.random.default_rng(seed)
    x = sum(np.sin(k * ph + rng.uniform(0, 2 * np.pi)) / k for k in range(1, harmonics + 1) if k * f0 * 1.1 < sr / 2)
    return (amp * x * 10 ** (g / 20)).astype(np.float32)


def frame_times(n_frames: int, hop_length: int, sr: float) -> np.ndarray:
    """Stream time (s) at the end of each of ``n_frames`` tracker frames."""
    return (np.arange(n_frames) + 1) * hop_length / sr


def track(sr, x, **kw) -> dict:
    """A fresh TechniqueTracker's output on ``x``, with the frames' stream times added as ``time``."""
    tr = _core.TechniqueTracker(sr, **kw)
    out = tr.process(x)
    out["time"] = frame_times(len(out["f0"]), tr.hop_length, sr)
    return out


def detect_in_blocks(det, x, block: int) -> tuple[list, list]:
    """Feed ``x`` to the TechniqueDetector ``det`` in blocks of ``block`` samples; returns (events, values)."""
    events, values = [], []
    for i in range(0, len(x), block):
        e, v = det.process(x[i:i + block])
        events += e
        values += v
    return events, values


def assert_steady_modulation(out, which: str, rate: float, amount: str, value: float, tol: float,
                             settle_periods: float, start: float = 1.0):
    """A synthetic ``which`` modulation (vibrato or tremolo) from ``start`` s, alone, in a ``track`` output.

    Off before ``start``; on, with its rate within 0.2 Hz and ``{which}_{amount}`` within ``tol`` of
    ``value`` once ``settle_periods`` periods have passed; first detected within 2.5 periods of the
    start; the other technique never on.
    """
    other = {"vibrato": "tremolo", "tremolo": "vibrato"}[which]
    t = out["time"]
    steady = t > start + settle_periods / rate
    assert out[f"{which}_on"][steady].all()
    assert not out[f"{which}_on"][t < start].any()
    assert np.abs(out[f"{which}_rate"][steady] - rate).max() < 0.2
    assert np.abs(out[f"{which}_{amount}"][steady] - value).max() < tol
    assert not out[f"{other}_on"].any()
    first = t[np.argmax(out[f"{which}_on"])]
    assert (first - start) * rate <= 2.5


def assert_split_invariant(make, x, cuts):
    """A tracker from ``make()`` fed ``x`` split at ``cuts`` gives, bit for bit and dtype for dtype, the
    frames of a fresh one fed ``x`` whole."""
    whole = make().process(x)
    tr = make()
    parts = [tr.process(b) for b in np.split(x, sorted(set(cuts)))]
    for k in whole:
        joined = np.concatenate([p[k] for p in parts])
        assert joined.dtype == whole[k].dtype, k
        assert np.array_equal(joined, whole[k]), k


def bad_parameters(base: dict, *bad: tuple[str, object]) -> list[tuple[dict, str]]:
    """``(kwargs, name)`` cases: ``base`` with parameter ``name`` set to ``value``, one for each ``(name, value)``."""
    return [({**base, name: value}, name) for name, value in bad]


def in_a_room(x, sr, rt60: float, drr_db: float, snr_db: float | None = None, seed: int = 0) -> np.ndarray:
    """``x`` plus its reverberation (the technique evaluation's synthetic room: ``rt60`` s, direct-to-
    reverberant ratio ``drr_db``) and, when ``snr_db`` is given, white noise that far below the result's level."""
    from scipy import signal

    from rtclassify.train.techniques_eval import _room_ir

    rng = np.random.default_rng(seed)
    ir = _room_ir(sr, rt60, rng)
    y = x + 10 ** (-drr_db / 20) * signal.fftconvolve(x, ir)[: len(x)]
    if snr_db is not None:
        y = y + rng.standard_normal(len(y)) * np.sqrt(np.mean(y ** 2)) * 10 ** (-snr_db / 20)
    return y.astype(np.float32)
