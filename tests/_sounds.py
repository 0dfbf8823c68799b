"""Test helper: sounds to learn a tag from (numpy only: no onnx, no torch)."""

from __future__ import annotations

import numpy as np

from _rtc_bundle import tone

#: the sample rate the learning tests make their sounds at (the test bundles' front end)
SR = 16000


def bell(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Bursts of a 3 kHz-ish tone with a decaying envelope: the sound to learn."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = np.zeros(n, np.float32)
    t = 0.0
    while t < seconds - 0.3:
        d = float(rng.uniform(0.3, 0.7))
        f = float(rng.uniform(2800, 3300))
        a = int(t * sr)
        seg = tone(sr, d, f, 0.4)[: n - a]
        y[a:a + len(seg)] += seg * np.exp(-np.arange(len(seg)) / (0.4 * sr)).astype(np.float32)
        t += d * float(rng.uniform(0.6, 0.9))  # overlapping strikes: no silent gap inside the sound
    return y
