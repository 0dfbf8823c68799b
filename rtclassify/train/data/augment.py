"""Per-clip augmentation applied to every stem alike, so the stems still add up to the mix.

Chain (each step drawn from the clip's RNG):

1. EQ and filters: 0-3 peaking/shelving biquads (+-12 dB), optional high-pass
   (30-400 Hz) and low-pass (2.5-7.5 kHz, or a telephone band now and then).
2. Reverb (p=0.5): a synthetic impulse response of exponentially decaying
   noise (RT60 0.15-2.5 s, pre-delay 0-40 ms, high frequencies decaying
   faster), mixed wet/dry.
3. Additive background noise (p=0.5) at an SNR of 0-40 dB against the mix.
4. Mild compression (p=0.4): an RMS detector on the mix (attack 5-30 ms,
   release 50-300 ms), ratio 1.5-4, threshold 6-20 dB below the peak level;
   the same gain curve multiplies every stem and the noise.
5. Gain: the mix is scaled to a random peak of -40 to -1 dBFS (never clipping).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from . import noise as noise_mod
from .labels import SAMPLE_RATE


@dataclass
class AugmentResult:
    stems: list[np.ndarray]
    noise: np.ndarray
    mix: np.ndarray
    params: dict = field(default_factory=dict)


def _peaking(f0, gain_db, q):
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a]
    return signal.tf2sos(b, den)


def _shelf(f0, gain_db, high):
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w0) / 2 * np.sqrt(2)
    c = np.cos(w0)
    s = 1 if high else -1
    b0 = a * ((a + 1) + s * (a - 1) * c + 2 * np.sqrt(a) * alpha)
    b1 = -2 * s * a * ((a - 1) + s * (a + 1) * c)
    b2 = a * ((a + 1) + s * (a - 1) * c - 2 * np.sqrt(a) * alpha)
    a0 = (a + 1) - s * (a - 1) * c + 2 * np.sqrt(a) * alpha
    a1 = 2 * s * ((a - 1) - s * (a + 1) * c)
    a2 = (a + 1) - s * (a - 1) * c - 2 * np.sqrt(a) * alpha
    return signal.tf2sos([b0, b1, b2], [a0, a1, a2])


def random_eq(rng: np.random.Generator) -> tuple[np.ndarray | None, dict]:
    """A random filter chain as second-order sections (None: no filtering)."""
    sections = []
    desc = []
    for _ in range(int(rng.integers(0, 4))):
        kind = rng.choice(["peak", "lowshelf", "highshelf"])
        g = float(rng.uniform(-12, 12))
        if kind == "peak":
            f0 = float(np.exp(rng.uniform(np.log(100), np.log(6000))))
            sections.append(_peaking(f0, g, float(rng.uniform(0.5, 4))))
        else:
            f0 = float(rng.uniform(100, 400) if kind == "lowshelf" else rng.uniform(2000, 6000))
            sections.append(_shelf(f0, g, kind == "highshelf"))
        desc.append(f"{kind}@{f0:.0f}Hz{g:+.1f}dB")
    r = rng.random()
    if r < 0.25:
        f = float(rng.uniform(30, 400))
        sections.append(signal.butter(2, f, btype="high", fs=SAMPLE_RATE, output="sos"))
        desc.append(f"hp@{f:.0f}Hz")
    r = rng.random()
    if r < 0.05:
        sections.append(signal.butter(4, [300, 3400], btype="band", fs=SAMPLE_RATE, output="sos"))
        desc.append("telephone")
    elif r < 0.25:
        f = float(rng.uniform(2500, 7500))
        sections.append(signal.butter(2, f, fs=SAMPLE_RATE, output="sos"))
        desc.append(f"lp@{f:.0f}Hz")
    if not sections:
        return None, {"eq": []}
    return np.vstack(sections), {"eq": desc}


def reverb_ir(rng: np.random.Generator, rt60: float, predelay: float) -> np.ndarray:
    """Exponentially decaying noise impulse response (unit direct path first), shape (m,)."""
    n = int((predelay + rt60 * 1.1) * SAMPLE_RATE) + 1
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n)
    lo = signal.sosfilt(signal.butter(1, 2000, fs=SAMPLE_RATE, output="sos"), tail)
    hi = tail - lo
    decay = np.exp(-6.9 * t / rt60)
    decay_hi = np.exp(-6.9 * t / (rt60 * 0.5))
    ir = lo * decay + hi * decay_hi
    ir[: int(predelay * SAMPLE_RATE)] = 0.0
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-12
    return ir


def _compress_gain(mix: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    attack = float(rng.uniform(0.005, 0.03))
    release = float(rng.uniform(0.05, 0.3))
    ratio = float(rng.uniform(1.5, 4.0))
    # RMS envelope in 64-sample blocks, attack/release smoothing, interpolated back
    blk = 64
    nb = int(np.ceil(len(mix) / blk))
    pad = np.pad(mix.astype(np.float64), (0, nb * blk - len(mix)))
    level = 10 * np.log10(np.mean(pad.reshape(nb, blk) ** 2, axis=1) + 1e-12)
    thresh = float(level.max() - rng.uniform(6, 20))
    over = np.maximum(level - thresh, 0.0)
    target = -over * (1 - 1 / ratio)
    ga = np.exp(-blk / (attack * SAMPLE_RATE))
    gr = np.exp(-blk / (release * SAMPLE_RATE))
    g = np.empty(nb)
    cur = 0.0
    for i, v in enumerate(target):
        coef = ga if v < cur else gr
        cur = coef * cur + (1 - coef) * v
        g[i] = cur
    gain = 10 ** (np.interp(np.arange(len(mix)), np.arange(nb) * blk + blk / 2, g) / 20)
    return gain.astype(np.float32), {"ratio": round(ratio, 2), "threshold_db": round(thresh, 1)}


def augment(rng: np.random.Generator, stems: list[np.ndarray], *, noise_p: float = 0.5, reverb_p: float = 0.5,
            compress_p: float = 0.4, peak_db: tuple[float, float] | None = (-40.0, -1.0)) -> AugmentResult:
    """Apply the augmentation chain to a clip's stems.

    Parameters
    ----------
    rng : numpy.random.Generator
        The clip's RNG.
    stems : list of np.ndarray, each shape (n,)
        Dry stems at their mixing levels.
    peak_db : (low, high) or None
        Range of the final peak level in dBFS; None keeps the level as it is.

    Returns
    -------
    AugmentResult
        ``stems`` (processed, same length), ``noise`` (shape (n,)), ``mix`` =
        sum(stems) + noise, all float32, and ``params`` describing the draws.
    """
    n = len(stems[0]) if stems else 0
    params: dict = {}
    out = [np.asarray(s, np.float64) for s in stems]
    sos, p = random_eq(rng)
    params.update(p)
    if sos is not None:
        out = [signal.sosfilt(sos, s) for s in out]
    if rng.random() < reverb_p:
        rt60 = float(np.exp(rng.uniform(np.log(0.15), np.log(2.5))))
        pre = float(rng.uniform(0, 0.04))
        wet = float(rng.uniform(0.1, 0.6))
        ir = reverb_ir(rng, rt60, pre)
        out = [(1 - wet) * s + wet * signal.oaconvolve(s, ir)[:n] for s in out]
        params["reverb"] = {"rt60_s": round(rt60, 3), "predelay_s": round(pre, 3), "wet": round(wet, 2)}
    dry_mix = np.sum(out, axis=0) if out else np.zeros(n)
    noise = np.zeros(n)
    if rng.random() < noise_p and n:
        kind = str(rng.choice(noise_mod.BACKGROUNDS))
        bg = noise_mod.GENERATORS[kind](rng, n).astype(np.float64)
        snr = float(rng.uniform(0, 40))
        p_sig = float(np.mean(dry_mix ** 2))
        p_bg = float(np.mean(bg ** 2)) + 1e-20
        if p_sig > 0:
            noise = bg * np.sqrt(p_sig / p_bg / 10 ** (snr / 10))
            params["noise"] = {"kind": kind, "snr_db": round(snr, 1)}
    mix = dry_mix + noise
    if rng.random() < compress_p and n and np.any(mix):
        gain, p = _compress_gain(mix, rng)
        out = [s * gain for s in out]
        noise = noise * gain
        mix = mix * gain
        params["compression"] = p
    peak = float(np.max(np.abs(mix))) if n else 0.0
    g = 1.0
    if peak_db is not None and peak > 0:
        target = 10 ** (float(rng.uniform(*peak_db)) / 20)
        g = target / peak
    elif peak > 0.99:
        g = 0.99 / peak
    params["peak_dbfs"] = round(20 * np.log10(peak * g), 2) if peak > 0 else None
    out = [(s * g).astype(np.float32) for s in out]
    noise = (noise * g).astype(np.float32)
    mix = (mix * g).astype(np.float32)
    return AugmentResult(out, noise, mix, params)
