"""Non-music sounds where every tag is off: silence, coloured noise, hum, ambiences, test tones.

All generators take a :class:`numpy.random.Generator` and a length in samples
(16 kHz) and return float32 with a peak near 1 (the clip's gain is set later),
except :func:`silence`, which is zeros or a very faint noise floor.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .labels import SAMPLE_RATE


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), shape (n,)."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1] if n > 1 else 1.0
    spec *= f ** (-exponent / 2.0)
    x = np.fft.irfft(spec, n)
    return _norm(x)


def _norm(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x / peak).astype(np.float32) if peak > 0 else np.asarray(x, np.float32)


def _slow_envelope(rng, n, rate_hz, depth):
    """A smooth random envelope in [1-depth, 1] varying at about ``rate_hz``."""
    k = max(4, int(n / SAMPLE_RATE * rate_hz) + 4)
    pts = rng.uniform(1.0 - depth, 1.0, k)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), pts)


def hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) with a little noise."""
    f0 = float(rng.choice([50.0, 60.0])) * float(rng.uniform(0.995, 1.005))
    t = np.arange(n) / SAMPLE_RATE
    x = np.zeros(n)
    for h in range(1, int(rng.integers(3, 12))):
        x += rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    x += 10 ** (rng.uniform(-40, -15) / 20) * coloured_noise(rng, n, 1.0)
    return _norm(x)


def wind(rng: np.random.Generator, n: int) -> np.ndarray:
    """Band-passed noise whose band and level drift slowly (wind, air conditioning)."""
    x = coloured_noise(rng, n, float(rng.uniform(0.5, 2.0)))
    lo = float(rng.uniform(80, 600))
    sos = signal.butter(2, [lo, min(7500.0, lo * rng.uniform(2, 10))], btype="band", fs=SAMPLE_RATE, output="sos")
    x = signal.sosfilt(sos, x)
    return _norm(x * _slow_envelope(rng, n, 0.5, float(rng.uniform(0.3, 0.9))))


def surf(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ocean-like surf: pink/brown noise with swells every few seconds."""
    x = coloured_noise(rng, n, float(rng.uniform(0.8, 1.6)))
    t = np.arange(n) / SAMPLE_RATE
    period = float(rng.uniform(3, 9))
    swell = 0.5 - 0.5 * np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    env = 0.15 + 0.85 * swell ** float(rng.uniform(1, 3))
    lp = signal.butter(2, float(rng.uniform(1500, 6000)), fs=SAMPLE_RATE, output="sos")
    return _norm(signal.sosfilt(lp, x) * env)


def rain(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rain: a dense random stream of short filtered drops over high-passed noise."""
    bed = coloured_noise(rng, n, float(rng.uniform(0.0, 1.0)))
    hp = signal.butter(2, float(rng.uniform(300, 2000)), btype="high", fs=SAMPLE_RATE, output="sos")
    bed = signal.sosfilt(hp, bed)
    drops = np.zeros(n)
    count = int(n / SAMPLE_RATE * rng.uniform(50, 600))
    pos = rng.integers(0, n, count)
    drops[pos] = rng.uniform(-1, 1, count) * rng.pareto(2.5, count)
    decay = np.exp(-np.arange(int(0.004 * SAMPLE_RATE)) / (0.0008 * SAMPLE_RATE))
    drops = np.convolve(drops, decay)[:n]
    bp = signal.butter(2, [1000.0, 7000.0], btype="band", fs=SAMPLE_RATE, output="sos")
    drops = signal.sosfilt(bp, drops)
    mix = _norm(bed) * float(rng.uniform(0.2, 1.0)) + _norm(drops)
    return _norm(mix)


def drips(rng: np.random.Generator, n: int) -> np.ndarray:
    """Water: drops at random times (a Poisson stream, from a few drips to a downpour), each the ring of
    an air bubble (a decaying sine whose pitch rises) or a short tap on a surface, their rate drifting,
    sometimes over a bed of rain noise. Unlike :func:`rain`, whose drops are all clicks above 1 kHz,
    these ring and knock at any height, and loud ones come out of a quiet stream."""
    sr = SAMPLE_RATE
    rate = float(np.exp(rng.uniform(np.log(2.0), np.log(300.0))))
    env = _slow_envelope(rng, n, float(rng.uniform(0.2, 2.0)), float(rng.uniform(0.0, 0.9)))
    count = int(rng.poisson(rate * n / sr))
    longest = int(0.2 * sr)
    streams = np.zeros((2, n + longest))  # bubbles, taps
    pos = rng.integers(0, n, count)
    amp = (rng.pareto(2.0, count) + 0.2) * rng.choice([-1.0, 1.0], count) * env[pos]
    bubble_p = float(rng.uniform(0.2, 0.9))
    for p, a in zip(pos, amp):
        tau = float(rng.uniform(0.002, 0.02))
        t = np.arange(min(longest, int(6 * tau * sr) + 1)) / sr
        decay = np.exp(-t / tau)
        if rng.random() < bubble_p:  # rising by 0.3-1.5 octaves within a few tens of ms: no struck bar does
            f0 = float(np.exp(rng.uniform(np.log(300.0), np.log(5000.0))))
            f = np.minimum(f0 * 2.0 ** (float(rng.uniform(0.3, 1.5)) * (1.0 - decay)), 7500.0)
            streams[0, p:p + len(t)] += a * np.sin(2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 2 * np.pi)) * decay
        else:
            streams[1, p:p + len(t)] += a * rng.standard_normal(len(t)) * decay
    lo = float(np.exp(rng.uniform(np.log(150.0), np.log(2500.0))))
    band = signal.butter(2, [lo, min(7500.0, lo * float(rng.uniform(2.0, 12.0)))], btype="band", fs=sr,
                         output="sos")
    x = streams[0, :n] + signal.sosfilt(band, streams[1])[:n]
    if rng.random() < 0.6:
        x = _norm(x) + float(10 ** (rng.uniform(-30, -6) / 20)) * rain(rng, n)
    return _norm(x)


def crackle(rng: np.random.Generator, n: int) -> np.ndarray:
    """Crackle: a fire, frying, a worn record -- clicks at random times with heavy-tailed sizes, some
    widened into pops, over a faint hiss or rumble."""
    sr = SAMPLE_RATE
    rate = float(np.exp(rng.uniform(np.log(5.0), np.log(2000.0))))
    count = int(rng.poisson(rate * n / sr))
    clicks = np.zeros(n)
    pos = rng.integers(0, n, count)
    np.add.at(clicks, pos, (rng.pareto(1.5, count) + 0.1) * rng.choice([-1.0, 1.0], count))
    hp = signal.butter(2, float(np.exp(rng.uniform(np.log(100.0), np.log(3000.0)))), btype="high", fs=sr,
                       output="sos")
    x = signal.sosfilt(hp, clicks)
    n_pops = int(rng.poisson(float(rng.uniform(0.0, 8.0)) * n / sr))
    longest = int(0.03 * sr)
    pops = np.zeros(n + longest)
    for p in rng.integers(0, n, n_pops):
        tau = float(rng.uniform(0.002, 0.01))
        t = np.arange(min(longest, int(5 * tau * sr) + 1)) / sr
        pops[p:p + len(t)] += (rng.pareto(1.5) + 0.5) * rng.standard_normal(len(t)) * np.exp(-t / tau)
    lp = signal.butter(2, float(rng.uniform(800.0, 5000.0)), fs=sr, output="sos")
    x = _norm(x) + float(rng.uniform(0.2, 1.0)) * _norm(signal.sosfilt(lp, pops)[:n])
    x = _norm(x) + float(10 ** (rng.uniform(-45, -15) / 20)) * coloured_noise(rng, n, float(rng.uniform(0.0, 2.0)))
    return _norm(x)


def tones(rng: np.random.Generator, n: int) -> np.ndarray:
    """Test signals that are not instruments: steady sines, sweeps, multi-sines, clicks."""
    t = np.arange(n) / SAMPLE_RATE
    kind = rng.choice(["sine", "sweep", "multisine", "clicks", "dtmf"])
    if kind == "sine":
        x = np.sin(2 * np.pi * float(np.exp(rng.uniform(np.log(60), np.log(4000)))) * t)
    elif kind == "sweep":
        f0, f1 = np.exp(rng.uniform(np.log(50), np.log(6000), 2))
        x = signal.chirp(t, f0, t[-1] if n > 1 else 1.0, f1, method=str(rng.choice(["linear", "logarithmic"])))
    elif kind == "multisine":
        x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in rng.uniform(100, 3000, int(rng.integers(2, 6))))
    elif kind == "clicks":
        x = np.zeros(n)
        step = int(rng.uniform(0.1, 1.5) * SAMPLE_RATE)
        x[int(rng.integers(0, step))::step] = 1.0
        x += 10 ** (-60 / 20) * rng.standard_normal(n)
    else:
        x = np.zeros(n)
        pos = 0
        while pos < n:
            ln = int(rng.uniform(0.08, 0.3) * SAMPLE_RATE)
            f1, f2 = rng.choice([697, 770, 852, 941]), rng.choice([1209, 1336, 1477])
            seg = t[:min(ln, n - pos)]
            x[pos:pos + len(seg)] = np.sin(2 * np.pi * f1 * seg) + np.sin(2 * np.pi * f2 * seg)
            pos += ln + int(rng.uniform(0.05, 0.3) * SAMPLE_RATE)
    return _norm(np.asarray(x, np.float64))


def silence(rng: np.random.Generator, n: int) -> np.ndarray:
    """Digital silence or a faint noise floor (-90 to -60 dBFS)."""
    if rng.random() < 0.3:
        return np.zeros(n, np.float32)
    return (10 ** (rng.uniform(-90, -60) / 20) * coloured_noise(rng, n, float(rng.uniform(0, 2)))).astype(np.float32)


#: Non-music generators by name (each gives a peak-normalised signal, except silence).
GENERATORS = {
    "white": lambda rng, n: coloured_noise(rng, n, 0.0),
    "pink": lambda rng, n: coloured_noise(rng, n, 1.0),
    "brown": lambda rng, n: coloured_noise(rng, n, 2.0),
    "hum": hum, "wind": wind, "surf": surf, "rain": rain, "tones": tones,
    "drips": drips, "crackle": crackle,
}

#: Background noises mixed under music at a random SNR (augmentation).
BACKGROUNDS = ("white", "pink", "brown", "hum", "wind", "surf", "rain")
