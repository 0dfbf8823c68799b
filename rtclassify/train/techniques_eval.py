"""Evaluation of the pitch, vibrato and tremolo trackers against exact ground truth.

The synthetic set (:func:`make_specs`, :func:`render_clip`) is generated from a
seed. Each clip holds one to three notes with plain stretches and modulated
segments starting at random times: vibrato (an f0 LFO, 3 to 9 Hz, extent 10
to 120 cents half peak-to-peak), tremolo (a level LFO in dB, 3 to 9 Hz, depth
1 to 12 dB peak-to-peak) or both at once (rates at least 25 % apart from
each other and from twice the other). Sources:

- ``sine``, ``sawtooth`` (band-limited), ``harmonic`` (random spectral
  slope), synthesized with exact phase integration;
- ``body``: a harmonic tone through a fixed resonant filter (three peaks), so
  that a vibrato also moves the level, as through an instrument body, without
  any tremolo in the ground truth;
- ``fluidsynth``: FluidR3_GM presets driven by pitch-bend (range set to 2
  semitones) and expression (CC11) LFOs updated every 64 samples; the ground
  truth is the realized, quantized controller curve (CC11 maps to
  40*log10(cc/127) dB). The presets are the sustained FluidR3 ones whose plain
  notes have no built-in LFO (screened: f0 spread under 8 cents, no level
  modulation): reed organ, trombone, tuba, muted trumpet, "bass & lead";
- ``pluck``: plucked-string notes (Karplus-Strong) and FluidR3 piano / guitar
  notes without any modulation, to count false alarms on decays.

Sustained notes are never perfectly steady: every sustained source gets a
player's natural f0 jitter (0.5 to 3 cents RMS) and level shimmer (0.05 to 0.3
dB RMS), random fluctuations below ~10 Hz that are not techniques, and
attacks of 10 to 80 ms and releases of 50 to 400 ms.

Every clip gets a synthetic room (exponentially decaying noise impulse
response, RT60 0.3 to 1.2 s, direct-to-reverberant ratio 6 to 20 dB) and
white noise at 10 to 40 dB SNR, at a sample rate drawn from 16 to 48 kHz.

Metrics (:func:`score_system`), on the tracker's frames:

- frame precision / recall / F1 for vibrato and tremolo, both with a collar
  (frames within 2.5 modulation periods after a segment's start or end are
  not scored; the detection delay is reported separately) and without;
- mean absolute error of rate, extent and depth over frames where the
  technique is on in both the truth and the output, outside the collar;
- detection delay of each modulated segment, in modulation periods, from its
  start to the first frame reported on (misses counted separately);
- pitch: fraction of voiced truth frames within 50 cents, median error.

Anchors, run on the same clips: librosa's pYIN followed by the same vibrato
and tremolo analysis (the native VibratoTracker / TremoloTracker on pYIN's f0
and an RMS level contour, offline), and Essentia's PitchYinFFT followed by its
Vibrato algorithm (vibrato only) when the ``essentia`` wheel is installed.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError, ParameterError, require

__all__ = [
    "Modulation",
    "Note",
    "ClipSpec",
    "Truth",
    "make_specs",
    "render_clip",
    "resonant_body",
    "truth_at",
    "run_native",
    "run_pyin",
    "run_essentia",
    "score_system",
    "steady_notes",
    "evaluate",
    "TARGETS",
    "SOURCES",
    "FLUID_PRESETS",
    "STEADY_NOTES",
]

SOURCES = ("sine", "sawtooth", "harmonic", "body", "fluidsynth", "pluck")
SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)
# FluidR3_GM presets (program, lowest key, highest key) without built-in LFOs.
FLUID_PRESETS = ((20, 48, 84), (57, 40, 65), (58, 33, 50), (59, 55, 82), (87, 40, 72))
# Plucked FluidR3_GM presets used as negatives.
FLUID_PLUCKED = ((0, 40, 84), (24, 40, 76), (46, 40, 84))
FLUID_SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
STEADY_NOTES = ("flute-A4.wav", "oboe-A4.wav", "organ-C3.wav", "trumpet-A4.wav", "violin-B3.wav")
COLLAR_PERIODS = 2.5
TARGETS = {
    "vibrato_f1": (">=", 0.95),
    "tremolo_f1": (">=", 0.95),
    "vibrato_rate_mae": ("<=", 0.2),
    "vibrato_extent_mae": ("<=", 10.0),
    "tremolo_rate_mae": ("<=", 0.2),
    "tremolo_depth_mae": ("<=", 1.0),
    "vibrato_delay_periods": ("<=", 2.5),
    "tremolo_delay_periods": ("<=", 2.5),
    "steady_false_fraction": ("<=", 0.05),
}


# ----------------------------------------------------------------------------- specs
@dataclass
class Modulation:
    """An LFO segment: ``kind`` "vibrato" (amount = extent, cents, half
    peak-to-peak) or "tremolo" (amount = depth, dB, peak-to-peak)."""

    kind: str
    start: float
    end: float
    rate: float
    amount: float


@dataclass
class Note:
    """A note from ``start`` to ``end`` seconds at MIDI pitch ``midi``."""

    start: float
    end: float
    midi: float
    modulations: list[Modulation] = field(default_factory=list)


@dataclass
class ClipSpec:
    """Everything needed to render one clip deterministically."""

    name: str
    source: str
    sample_rate: int
    duration: float
    notes: list[Note]
    snr_db: float
    rt60: float
    drr_db: float
    level_db: float
    seed: int
    program: int = -1
    slope: float = 1.0
    jitter_cents: float = 0.0
    shimmer_db: float = 0.0
    attack: float = 0.02
    release: float = 0.06


def _pick_rates(rng, kinds):
    while True:
        rates = [float(rng.uniform(3.0, 9.0)) for _ in kinds]
        if len(rates) < 2:
            return rates
        a, b = rates
        lo, hi = min(a, b), max(a, b)
        if hi > 1.25 * lo and abs(hi - 2 * lo) > 0.25 * 2 * lo:
            return rates


def make_specs(n_clips: int, seed: int = 0) -> list[ClipSpec]:
    """Draw ``n_clips`` clip specifications, cycling through the sources.

    Parameters
    ----------
    n_clips : int
        Number of clips (>= 1).
    seed : int
        Seed of everything random.

    Returns
    -------
    list of ClipSpec
    """
    if n_clips < 1:
        raise ParameterError(f"n_clips: must be >= 1 (got {n_clips})")
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n_clips):
        source = SOURCES[i % len(SOURCES)]
        sr = int(rng.choice(SAMPLE_RATES))
        program = -1
        if source == "fluidsynth":
            program, lo, hi = FLUID_PRESETS[int(rng.integers(len(FLUID_PRESETS)))]
        elif source == "pluck":
            if rng.random() < 0.5:
                program, lo, hi = FLUID_PLUCKED[int(rng.integers(len(FLUID_PLUCKED)))]
            else:
                lo, hi = 40, 84
        else:
            lo, hi = 36, 88
        notes = []
        t = float(rng.uniform(0.25, 0.5))
        n_notes = int(rng.integers(1, 4)) if source != "pluck" else int(rng.integers(3, 6))
        prev = None
        for _ in range(n_notes):
            if source == "pluck":
                dur = float(rng.uniform(0.8, 2.0))
            else:
                dur = float(rng.uniform(2.4, 4.0))
            while True:
                midi = float(rng.integers(lo, hi + 1))
                if prev is None or abs(midi - prev) >= 2:
                    break
            note = Note(t, t + dur, midi)
            if source != "pluck" and rng.random() < 0.85:
                lead = float(rng.uniform(0.4, 1.0))
                mod_dur = float(rng.uniform(1.2, max(1.25, dur - lead - 0.3)))
                start = t + lead
                end = min(start + mod_dur, t + dur - 0.3)
                r = rng.random()
                kinds = ["vibrato"] if r < 0.4 else (["tremolo"] if r < 0.8 else ["vibrato", "tremolo"])
                rates = _pick_rates(rng, kinds)
                for kind, rate in zip(kinds, rates):
                    amount = float(rng.uniform(10.0, 120.0)) if kind == "vibrato" else float(rng.uniform(1.0, 12.0))
                    note.modulations.append(Modulation(kind, start, end, rate, amount))
            notes.append(note)
            prev = midi
            gap = 0.0 if (source != "pluck" and rng.random() < 0.5) else float(rng.uniform(0.1, 0.4))
            t = t + dur + gap
        duration = t + 0.5
        specs.append(ClipSpec(
            name=f"{i:03d}-{source}", source=source, sample_rate=sr, duration=round(duration, 3), notes=notes,
            snr_db=float(rng.uniform(10.0, 40.0)), rt60=float(rng.uniform(0.3, 1.2)),
            drr_db=float(rng.uniform(6.0, 20.0)), level_db=float(rng.uniform(-32.0, -14.0)),
            seed=int(rng.integers(2**31)), program=program, slope=float(rng.uniform(0.7, 2.0)),
            jitter_cents=float(rng.uniform(0.5, 3.0)), shimmer_db=float(rng.uniform(0.05, 0.3)),
            attack=float(rng.uniform(0.01, 0.08)), release=float(rng.uniform(0.05, 0.4))))
    return specs


# ----------------------------------------------------------------------------- truth
@dataclass
class Truth:
    """Ground truth sampled at given times (all arrays shape (n,))."""

    times: np.ndarray
    f0: np.ndarray          # Hz, 0 where no note sounds
    vibrato: np.ndarray     # bool
    vibrato_rate: np.ndarray
    vibrato_extent: np.ndarray
    tremolo: np.ndarray     # bool
    tremolo_rate: np.ndarray
    tremolo_depth: np.ndarray
    collar_vibrato: np.ndarray  # bool: frame not scored for vibrato
    collar_tremolo: np.ndarray


def _fluctuation(spec: ClipSpec, t: np.ndarray, salt: int) -> np.ndarray:
    """Unit-RMS random fluctuation below ~10 Hz (a player's natural f0 jitter
    or level shimmer), deterministic from the spec's seed."""
    signal = require("scipy.signal", extra="train")
    rng = np.random.default_rng([spec.seed, salt])
    fs = 100.0
    n = int(np.ceil(spec.duration * fs)) + 64
    w = rng.standard_normal(n)
    sos = signal.butter(2, 10.0, fs=fs, output="sos")
    v = signal.sosfiltfilt(sos, w)
    v /= np.sqrt(np.mean(v ** 2))
    return np.interp(t, np.arange(n) / fs, v)


def _jitter_and_shimmer(spec: ClipSpec, t: np.ndarray):
    """Natural f0 jitter (cents) and level shimmer (dB) of sustained sources."""
    if spec.source == "pluck":
        return np.zeros_like(t), np.zeros_like(t)
    return spec.jitter_cents * _fluctuation(spec, t, 1), spec.shimmer_db * _fluctuation(spec, t, 2)


def _cents_and_gain(spec: ClipSpec, t: np.ndarray):
    """f0 deviation (cents) and level LFO (dB) of the spec at times t."""
    cents = np.zeros_like(t)
    gain = np.zeros_like(t)
    for note in spec.notes:
        for m in note.modulations:
            sel = (t >= m.start) & (t < m.end)
            lfo = np.sin(2 * np.pi * m.rate * (t[sel] - m.start))
            if m.kind == "vibrato":
                cents[sel] += m.amount * lfo
            else:
                gain[sel] += 0.5 * m.amount * lfo
    return cents, gain


def truth_at(spec: ClipSpec, times: np.ndarray) -> Truth:
    """Sample the ground truth of a (rendered) spec at ``times`` seconds.

    Parameters
    ----------
    spec : ClipSpec
        As returned by :func:`render_clip` (amounts are the realized ones).
    times : np.ndarray, shape (n,)

    Returns
    -------
    Truth
    """
    t = np.asarray(times, dtype=np.float64)
    n = len(t)
    f0 = np.zeros(n)
    out = {k: np.zeros(n, bool) for k in ("vibrato", "tremolo", "collar_vibrato", "collar_tremolo")}
    vals = {k: np.zeros(n) for k in ("vibrato_rate", "vibrato_extent", "tremolo_rate", "tremolo_depth")}
    cents, _ = _cents_and_gain(spec, t)
    cents = cents + _jitter_and_shimmer(spec, t)[0]
    for note in spec.notes:
        sel = (t >= note.start) & (t < note.end)
        f0[sel] = 440.0 * 2 ** ((note.midi - 69) / 12) * 2 ** (cents[sel] / 1200)
        for m in note.modulations:
            sel = (t >= m.start) & (t < m.end)
            out[m.kind][sel] = True
            if m.kind == "vibrato":
                vals["vibrato_rate"][sel] = m.rate
                vals["vibrato_extent"][sel] = m.amount
            else:
                vals["tremolo_rate"][sel] = m.rate
                vals["tremolo_depth"][sel] = m.amount
            collar = COLLAR_PERIODS / m.rate
            for b in (m.start, m.end):
                out["collar_" + m.kind][(t >= b) & (t < b + collar)] = True
    return Truth(t, f0, out["vibrato"], vals["vibrato_rate"], vals["vibrato_extent"], out["tremolo"],
                 vals["tremolo_rate"], vals["tremolo_depth"], out["collar_vibrato"], out["collar_tremolo"])


# ----------------------------------------------------------------------------- rendering
def _envelope(t: np.ndarray, start: float, end: float, attack: float = 0.02, release: float = 0.06) -> np.ndarray:
    env = np.zeros_like(t)
    a = (t >= start) & (t < start + attack)
    env[a] = 0.5 - 0.5 * np.cos(np.pi * (t[a] - start) / attack)
    env[(t >= start + attack) & (t < end)] = 1.0
    r = (t >= end) & (t < end + release)
    env[r] = 0.5 + 0.5 * np.cos(np.pi * (t[r] - end) / release)
    return env


def _additive(spec: ClipSpec, t: np.ndarray, rng) -> np.ndarray:
    sr = spec.sample_rate
    cents, gain = _cents_and_gain(spec, t)
    jit, shim = _jitter_and_shimmer(spec, t)
    cents = cents + jit
    gain = gain + shim
    x = np.zeros_like(t)
    for note in spec.notes:
        sel = (t >= note.start) & (t < note.end + spec.release)
        tt = t[sel]
        f = 440.0 * 2 ** ((note.midi - 69) / 12) * 2 ** (cents[sel] / 1200)
        phase = 2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 2 * np.pi)
        f_nom = 440.0 * 2 ** ((note.midi - 69) / 12)
        n_harm = max(1, int(0.45 * sr / (f_nom * 2 ** (130 / 1200))))
        if spec.source == "sine":
            tone = np.sin(phase)
        else:
            if spec.source == "sawtooth":
                amps = [1.0 / k for k in range(1, n_harm + 1)]
            else:
                amps = [k ** -spec.slope for k in range(1, min(n_harm, 40) + 1)]
            tone = np.zeros_like(tt)
            for k, a in enumerate(amps, start=1):
                tone += a * np.sin(k * phase + (0.0 if spec.source == "sawtooth" else rng.uniform(0, 2 * np.pi)))
        x[sel] += tone * _envelope(tt, note.start, note.end, spec.attack, spec.release) * 10 ** (gain[sel] / 20)
    if spec.source == "body":
        x = _body_filter(x, sr, rng)
    return x


def resonant_body(x: np.ndarray, sr: int, peaks) -> np.ndarray:
    """A fixed resonant 'body': RBJ peaking biquads ``(f Hz, Q, gain dB)`` in series, applied to ``x`` (float64)."""
    signal = require("scipy.signal", extra="train")
    sos = []
    for f, q, g in peaks:
        a = 10 ** (g / 40)
        w = 2 * np.pi * f / sr
        alpha = np.sin(w) / (2 * q)
        b0, b1, b2 = 1 + alpha * a, -2 * np.cos(w), 1 - alpha * a
        a0, a1, a2 = 1 + alpha / a, -2 * np.cos(w), 1 - alpha / a
        sos.append([b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0])
    return signal.sosfilt(np.array(sos), x)


def _body_filter(x: np.ndarray, sr: int, rng) -> np.ndarray:
    """A random resonant 'body': three peaks drawn from ``rng``, see :func:`resonant_body`."""
    peaks = [(float(rng.uniform(300.0, min(3500.0, 0.4 * sr))), float(rng.uniform(4.0, 10.0)),
              float(rng.uniform(8.0, 16.0))) for _ in range(3)]
    return resonant_body(x, sr, peaks)


def _karplus(spec: ClipSpec, t: np.ndarray, rng) -> np.ndarray:
    sr = spec.sample_rate
    x = np.zeros_like(t)
    for note in spec.notes:
        f = 440.0 * 2 ** ((note.midi - 69) / 12)
        # the loop's two-point average delays by half a sample: the delay line
        # is half a sample shorter, so that the loop (and the tone) has the
        # note's period
        delay = sr / f - 0.5
        n = int((note.end - note.start + 0.06) * sr)
        p = int(delay)
        frac = delay - p
        buf = rng.uniform(-1, 1, p + 2)
        out = np.zeros(n)
        decay = float(rng.uniform(0.990, 0.998))
        # string loop with a two-point average and a linear fractional delay; the
        # loop delay is at least p samples, so p - 1 samples are computed at once
        line = np.concatenate([buf, np.zeros(n)])
        i = p + 2
        while i < n + p + 2:
            j = min(n + p + 2, i + p - 1)
            d = np.arange(i, j) - p
            a = (1 - frac) * line[d] + frac * line[d - 1]
            b = (1 - frac) * line[d - 1] + frac * line[d - 2]
            line[i:j] = decay * 0.5 * (a + b)
            i = j
        out[:] = line[p + 2:p + 2 + n]
        i0 = int(note.start * sr)
        seg = out * _envelope(np.arange(n) / sr, 0.0, note.end - note.start, attack=0.002)
        x[i0:i0 + n] += seg[: max(0, len(x) - i0)]
    return x


def check_fluid():
    """pyfluidsynth, and the FluidR3_GM soundfont the ``fluidsynth`` and sampled ``pluck`` clips play
    (MissingDependencyError naming what to install); returns the fluidsynth module."""
    fs = require("fluidsynth", extra="train", system="fluidsynth (libfluidsynth3)")
    if not Path(FLUID_SF2).exists():
        raise MissingDependencyError(f"{FLUID_SF2} not found; apt-get install fluid-soundfont-gm")
    return fs


def needs_fluid(specs) -> bool:
    """Whether rendering ``specs`` plays the FluidR3_GM soundfont (see :func:`render_clip`)."""
    return any(s.source == "fluidsynth" or (s.source == "pluck" and s.program >= 0) for s in specs)


def _fluid(spec: ClipSpec, t: np.ndarray) -> np.ndarray:
    """Render through FluidSynth with per-block pitch-bend and CC11 LFOs; updates
    ``spec``'s modulation amounts to the realized (quantized) ones."""
    import ctypes

    from .data.fluid import set_bend_range

    fs = check_fluid()
    sr = spec.sample_rate
    synth = fs.Synth(gain=0.4, samplerate=float(sr), **{
        "synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1, "synth.verbose": 0})
    try:
        sfid = synth.sfload(FLUID_SF2)
        synth.program_select(0, sfid, 0, spec.program)
        set_bend_range(synth, 0, 2)
        write = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                 ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int)(
            ("fluid_synth_write_float", fs._fl))
        block = 64
        n = int(np.ceil(len(t) / block)) * block
        left = np.zeros(n, np.float32)
        right = np.zeros(n, np.float32)
        tb = (np.arange(0, n, block) + 0.5 * block) / sr  # control times (block centres)
        cents, gain = _cents_and_gain(spec, tb)
        jitter = _jitter_and_shimmer(spec, tb)[0]
        # level LFOs sit below full expression so that +depth/2 is reachable
        center = np.zeros_like(tb)
        for note in spec.notes:
            for m in note.modulations:
                if m.kind == "tremolo":
                    center[(tb >= note.start) & (tb < note.end + 0.3)] = -0.5 * m.amount - 0.5
        bend = np.clip(np.round(8192 + (cents + jitter) / 200.0 * 8192), 0, 16383).astype(int)
        cc11 = np.clip(np.round(127 * 10 ** ((gain + center) / 40)), 1, 127).astype(int)
        real_cents = np.round(cents / 200.0 * 8192) / 8192 * 200.0  # the LFO alone, as quantized
        real_db = 40 * np.log10(cc11 / 127)
        for note in spec.notes:
            for m in note.modulations:
                sel = (tb >= m.start) & (tb < m.end)
                if not sel.any():
                    continue
                if m.kind == "vibrato":
                    m.amount = float(0.5 * (real_cents[sel].max() - real_cents[sel].min()))
                else:
                    m.amount = float(real_db[sel].max() - real_db[sel].min())
        events = []
        for note in spec.notes:
            events.append((int(round(note.start * sr / block)), 1, int(note.midi)))
            events.append((int(round(note.end * sr / block)), 0, int(note.midi)))
        events.sort(key=lambda e: (e[0], e[1]))
        ei = 0
        last_bend, last_cc = None, None
        for b in range(n // block):
            while ei < len(events) and events[ei][0] <= b:
                _, on, key = events[ei]
                if on:
                    synth.noteon(0, key, 100)
                else:
                    synth.noteoff(0, key)
                ei += 1
            if bend[b] != last_bend:
                synth.pitch_bend(0, int(bend[b]) - 8192)
                last_bend = bend[b]
            if cc11[b] != last_cc:
                synth.cc(0, 11, int(cc11[b]))
                last_cc = cc11[b]
            pos = b * block
            write(synth.synth, block, left.ctypes.data + 4 * pos, 0, 1, right.ctypes.data + 4 * pos, 0, 1)
    finally:
        synth.delete()
    shimmer = _jitter_and_shimmer(spec, t)[1]
    return (0.5 * (left + right))[: len(t)].astype(np.float64) * 10 ** (shimmer / 20)


def _room_ir(sr: int, rt60: float, rng) -> np.ndarray:
    """The synthetic room's impulse response (exponentially decaying noise, unit energy, ``rt60`` s at
    ``sr`` Hz), drawn from ``rng``."""
    n = int(1.5 * rt60 * sr)
    k = np.arange(n)
    ir = rng.standard_normal(n) * np.exp(-6.9078 * k / (rt60 * sr))
    ir[: int(0.005 * sr)] = 0.0
    return ir / np.sqrt(np.sum(ir ** 2))


def _room(x: np.ndarray, spec: ClipSpec, ir: np.ndarray) -> np.ndarray:
    signal = require("scipy.signal", extra="train")
    wet = signal.fftconvolve(x, ir)[: len(x)]
    return x + 10 ** (-spec.drr_db / 20) * wet


def render_clip(spec: ClipSpec, room: bool = True) -> np.ndarray:
    """Render a clip (float32 mono at ``spec.sample_rate``); ``room=False`` leaves out the
    synthetic room (a diagnostic; the noise stays).

    For FluidSynth clips the spec's modulation amounts are replaced by the
    realized ones (controller quantization), so render before
    :func:`truth_at`.
    """
    rng = np.random.default_rng(spec.seed)
    sr = spec.sample_rate
    t = np.arange(int(round(spec.duration * sr))) / sr
    if spec.source in ("sine", "sawtooth", "harmonic", "body"):
        x = _additive(spec, t, rng)
    elif needs_fluid([spec]):
        x = _fluid(spec, t)
    elif spec.source == "pluck":
        x = _karplus(spec, t, rng)
    else:
        raise ParameterError(f"source: unknown source {spec.source!r}")
    ir = _room_ir(spec.sample_rate, spec.rt60, rng)  # drawn either way, so that the noise after it stays the same
    if room:
        x = _room(x, spec, ir)
    active = np.zeros(len(t), bool)
    for note in spec.notes:
        active[(t >= note.start) & (t < note.end)] = True
    rms = np.sqrt(np.mean(x[active] ** 2)) if active.any() else 1.0
    x = x * (10 ** (spec.level_db / 20) / max(rms, 1e-12))
    noise = rng.standard_normal(len(x)) * 10 ** ((spec.level_db - spec.snr_db) / 20)
    return np.clip(x + noise, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- systems
@dataclass
class SystemOutput:
    """Frame-wise output of one system on one clip (all arrays shape (n,))."""

    times: np.ndarray
    f0: np.ndarray
    vibrato: np.ndarray
    vibrato_rate: np.ndarray
    vibrato_extent: np.ndarray
    tremolo: np.ndarray | None
    tremolo_rate: np.ndarray | None
    tremolo_depth: np.ndarray | None
    cpu_s: float = 0.0
    f0_delay: np.ndarray | None = None  # s from each f0's analysis-window centre to its frame time


def run_native(x: np.ndarray, sr: int, block: int = 512, **tracker) -> SystemOutput:
    """The product path: :class:`rtclassify.detect.techniques.TechniqueDetector` fed in blocks."""
    from ..detect.techniques import TechniqueDetector

    det = TechniqueDetector(sr, **tracker)
    parts = []
    t0 = time.process_time()
    for i in range(0, len(x), block):
        parts.append(det.track(x[i:i + block]))
    cpu = time.process_time() - t0
    fr = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(fr["f0"])
    times = (np.arange(n) + 1) * det.hop_length / sr
    f0 = np.where(fr["voiced"], fr["f0"], 0.0)
    # the refinement window spans max(2 periods, 12.5 ms) (at most 1 / fmin) plus one period
    period = np.where(f0 > 0, sr / np.maximum(f0, 1e-6), 0.0)
    win = np.clip(2 * period, min(0.0125 * sr, sr / 50.0), np.ceil(sr / 50.0))
    delay = 0.5 * (win + period) / sr
    return SystemOutput(times, f0, fr["vibrato_on"], fr["vibrato_rate"], fr["vibrato_extent"], fr["tremolo_on"],
                        fr["tremolo_rate"], fr["tremolo_depth"], cpu, delay)


def _modulation_offline(f0: np.ndarray, level_db: np.ndarray, valid: np.ndarray, frame_rate: float):
    """The native vibrato / tremolo analysis on given contours."""
    from .. import _core

    vib = _core.VibratoTracker(frame_rate)
    v = vib.process(np.where(f0 > 0, f0, 0.0).astype(np.float32))
    trem = _core.TremoloTracker(frame_rate)
    tr = trem.process(level_db.astype(np.float32), valid=valid, restart=v["restarted"], vibrato_on=v["on"],
                      vibrato_rate=v["rate"])
    return v, tr


def run_pyin(x: np.ndarray, sr: int, hop_s: float = 0.01) -> SystemOutput:
    """librosa.pyin (offline, centred frames) + the native modulation analysis."""
    librosa = require("librosa", extra="test")
    t0 = time.process_time()
    y = librosa.resample(x.astype(np.float32), orig_sr=sr, target_sr=22050) if sr != 22050 else x
    hop = int(round(hop_s * 22050))
    f0, voiced, _ = librosa.pyin(y, fmin=50.0, fmax=2000.0, sr=22050, frame_length=2048, hop_length=hop)
    f0 = np.where(voiced & np.isfinite(f0), f0, 0.0)
    rms = librosa.feature.rms(y=y, frame_length=552, hop_length=hop)[0][: len(f0)]
    level = 20 * np.log10(np.maximum(rms, 1e-6))
    valid = (f0 > 0) & (level > -60)
    frame_rate = 22050 / hop
    v, tr = _modulation_offline(f0, level, valid, frame_rate)
    cpu = time.process_time() - t0
    times = np.arange(len(f0)) * hop / 22050
    return SystemOutput(times, f0, v["on"], v["rate"], v["extent"], tr["on"], tr["rate"], tr["depth"], cpu)


def essentia_available() -> bool:
    """Whether the essentia wheel imports here."""
    try:
        import essentia.standard  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


def run_essentia(x: np.ndarray, sr: int, hop: int | None = None) -> SystemOutput:
    """Essentia PitchYinFFT (2048-sample frames) + Vibrato (vibrato only)."""
    es = require("essentia.standard", extra=None)
    hop = hop or int(round(0.005 * sr))
    t0 = time.process_time()
    frame = 2048
    win = es.Windowing(type="hann", size=frame)
    spec = es.Spectrum(size=frame)
    yin = es.PitchYinFFT(frameSize=frame, sampleRate=float(sr), minFrequency=50.0, maxFrequency=2000.0)
    f0 = []
    for fr in es.FrameGenerator(x.astype(np.float32), frameSize=frame, hopSize=hop, startFromZero=False):
        p, c = yin(spec(win(fr)))
        f0.append(p if c >= 0.5 else 0.0)
    f0 = np.asarray(f0, np.float32)
    vib = es.Vibrato(sampleRate=float(sr) / hop, minFrequency=3.0, maxFrequency=10.0, minExtend=20.0,
                     maxExtend=300.0)
    rate, extent_pp = vib(f0)
    cpu = time.process_time() - t0
    times = np.arange(len(f0)) * hop / sr
    rate = np.asarray(rate)
    return SystemOutput(times, f0, rate > 0, rate, 0.5 * np.asarray(extent_pp), None, None, None, cpu)


# ----------------------------------------------------------------------------- scoring
def _prf(pred: np.ndarray, ref: np.ndarray) -> dict:
    tp = int(np.sum(pred & ref))
    fp = int(np.sum(pred & ~ref))
    fn = int(np.sum(~pred & ref))
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f}


def score_system(specs: list[ClipSpec], outputs: list[SystemOutput]) -> dict:
    """Pool frame metrics, value errors and delays over clips.

    Returns
    -------
    dict
        ``vibrato`` / ``tremolo``: {f1, precision, recall, f1_raw, rate_mae,
        amount_mae, delay_periods (mean), delay_median, delay_p90, segments,
        missed}; ``pitch``: {rpa50, median_cents, voicing_recall,
        voicing_false_alarm}; ``cpu_rt``.
    """
    pooled: dict[str, dict[str, list]] = {}
    pitch_err, v_rec, v_fa = [], [], []
    cpu = 0.0
    dur = 0.0
    result: dict = {}
    for spec, out in zip(specs, outputs):
        tr = truth_at(spec, out.times)
        cpu += out.cpu_s
        dur += spec.duration
        # pitch: notes' steady parts (50 ms after the onset to the note end)
        steady = np.zeros(len(tr.times), bool)
        for note in spec.notes:
            steady |= (tr.times >= note.start + 0.05) & (tr.times < note.end)
        silent = np.ones(len(tr.times), bool)
        for note in spec.notes:
            silent &= ~((tr.times >= note.start) & (tr.times < note.end + spec.rt60))
        est = out.f0
        ok = steady & (est > 0)
        ref_f0 = tr.f0 if out.f0_delay is None else truth_at(spec, out.times - out.f0_delay).f0
        ok &= ref_f0 > 0
        pitch_err.append(np.abs(1200 * np.log2(est[ok] / ref_f0[ok])))
        pitch_err.append(np.full(int(np.sum(steady & (est <= 0))), np.inf))
        v_rec.append((int(np.sum(ok)), int(np.sum(steady))))
        v_fa.append((int(np.sum(silent & (est > 0))), int(np.sum(silent))))
        for kind in ("vibrato", "tremolo"):
            on = getattr(out, kind)
            if on is None:
                continue
            d = pooled.setdefault(kind, {k: [] for k in ("pred", "ref", "pred_raw", "ref_raw", "rate", "amount",
                                                         "delay")})
            ref = getattr(tr, kind)
            collar = getattr(tr, "collar_" + kind)
            d["pred"].append(on[~collar])
            d["ref"].append(ref[~collar])
            d["pred_raw"].append(on)
            d["ref_raw"].append(ref)
            both = on & ref & ~collar
            rate_est = getattr(out, kind + "_rate")
            amt_est = getattr(out, "vibrato_extent" if kind == "vibrato" else "tremolo_depth")
            rate_true = getattr(tr, kind + "_rate")
            amt_true = getattr(tr, "vibrato_extent" if kind == "vibrato" else "tremolo_depth")
            d["rate"].append(np.abs(rate_est[both] - rate_true[both]))
            d["amount"].append(np.abs(amt_est[both] - amt_true[both]))
            for note in spec.notes:
                for m in note.modulations:
                    if m.kind != kind:
                        continue
                    sel = (out.times >= m.start) & (out.times < m.end + COLLAR_PERIODS / m.rate) & on
                    if sel.any():
                        d["delay"].append((float(out.times[np.argmax(sel)]) - m.start) * m.rate)
                    else:
                        d["delay"].append(math.inf)
    for kind, d in pooled.items():
        pr = _prf(np.concatenate(d["pred"]), np.concatenate(d["ref"]))
        raw = _prf(np.concatenate(d["pred_raw"]), np.concatenate(d["ref_raw"]))
        delays = np.asarray(d["delay"])
        found = delays[np.isfinite(delays)]
        rate = np.concatenate(d["rate"]) if d["rate"] else np.zeros(0)
        amount = np.concatenate(d["amount"]) if d["amount"] else np.zeros(0)
        result[kind] = {
            **pr,
            "f1_raw": raw["f1"],
            "rate_mae": float(np.mean(rate)) if len(rate) else math.nan,
            "amount_mae": float(np.mean(amount)) if len(amount) else math.nan,
            "delay_periods": float(np.mean(found)) if len(found) else math.nan,
            "delay_median": float(np.median(found)) if len(found) else math.nan,
            "delay_p90": float(np.percentile(found, 90)) if len(found) else math.nan,
            "segments": int(len(delays)),
            "missed": int(np.sum(~np.isfinite(delays))),
        }
    err = np.concatenate(pitch_err) if pitch_err else np.zeros(0)
    rec = sum(a for a, _ in v_rec) / max(1, sum(b for _, b in v_rec))
    fa = sum(a for a, _ in v_fa) / max(1, sum(b for _, b in v_fa))
    result["pitch"] = {
        "rpa50": float(np.mean(err <= 50)) if len(err) else math.nan,
        "median_cents": float(np.median(err[np.isfinite(err)])) if np.isfinite(err).any() else math.nan,
        "voicing_recall": rec,
        "voicing_false_alarm": fa,
    }
    result["cpu_rt"] = cpu / dur if dur else math.nan
    return result


# ----------------------------------------------------------------------------- real notes
def check_steady_notes(data_dir: Path, what: str = "data_dir") -> None:
    """Fail, before any evaluation, when ``data_dir`` lacks a steady note of :data:`STEADY_NOTES` or holds one
    that is not a readable sound file.

    Parameters
    ----------
    data_dir : Path
        Folder with the sms-tools recordings.
    what : str
        What the folder is called in the error (``"--data"`` for the command).

    Raises
    ------
    ParameterError
        One line naming ``what``, the folder and every missing file (or the unreadable one).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ParameterError(f"{what} {data_dir}: is not a folder")
    missing = [f for f in STEADY_NOTES if not (data_dir / f).is_file()]
    if missing:
        raise ParameterError(f"{what} {data_dir}: missing {', '.join(missing)} (the steady notes of sms-tools)")
    sf = require("soundfile")
    for fname in STEADY_NOTES:
        try:
            sf.info(str(data_dir / fname))
        except (RuntimeError, OSError) as exc:
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ParameterError(f"{what} {data_dir / fname}: not a readable sound file ({detail})") from None


def steady_notes(data_dir: Path, systems: dict) -> dict:
    """Fraction of voiced frames called vibrato or tremolo on the steady real notes.

    Parameters
    ----------
    data_dir : Path
        Folder with the sms-tools recordings.
    systems : dict
        ``{name: callable(x, sr) -> SystemOutput}``.
    """
    sf = require("soundfile")
    out: dict = {name: {"files": {}} for name in systems}
    for fname in STEADY_NOTES:
        path = Path(data_dir) / fname
        if not path.exists():
            raise ParameterError(f"data_dir: {path} not found")
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        for name, fn in systems.items():
            o = fn(x, sr)
            voiced = o.f0 > 0
            called = o.vibrato.copy()
            if o.tremolo is not None:
                called |= o.tremolo
            n_v = int(np.sum(voiced))
            out[name]["files"][fname] = {
                "voiced_frames": n_v,
                "vibrato_fraction": float(np.sum(o.vibrato & voiced) / max(1, n_v)),
                "tremolo_fraction": float(np.sum(o.tremolo & voiced) / max(1, n_v)) if o.tremolo is not None else None,
                "false_fraction": float(np.sum(called & voiced) / max(1, n_v)),
            }
    for name in systems:
        files = out[name]["files"].values()
        tot = sum(f["voiced_frames"] for f in files)
        out[name]["false_fraction"] = float(sum(f["false_fraction"] * f["voiced_frames"] for f in files) / max(1, tot))
        out[name]["max_file_fraction"] = float(max(f["false_fraction"] for f in files))
    return out


# ----------------------------------------------------------------------------- driver
def _measured(value) -> bool:
    return value is not None and math.isfinite(value)


def _check(value: float | None, rule: tuple[str, float]) -> bool | None:
    """Whether ``value`` meets ``rule``; None when it could not be measured (None or NaN: no steady notes, no
    matched frames), which is neither met nor missed."""
    op, bound = rule
    if not _measured(value):
        return None
    return value >= bound if op == ">=" else value <= bound


def evaluate(n_clips: int = 60, seed: int = 0, data_dir: Path | None = None, anchors: bool = True,
             progress=None, room: bool = True) -> dict:
    """Run the whole evaluation.

    Parameters
    ----------
    n_clips : int
        Synthetic clips (cycling through :data:`SOURCES`).
    seed : int
        Seed of the synthetic set.
    data_dir : Path, optional
        sms-tools folder for the steady real notes (skipped when None).
    anchors : bool
        Also run pYIN (+ the same modulation analysis) and Essentia.
    progress : callable, optional
        ``progress(done, total, name)`` after each clip.
    room : bool
        Render with the synthetic room (False: a diagnostic without it).

    Returns
    -------
    dict
        ``{"config", "systems": {name: metrics}, "steady": {...}, "targets":
        {metric: {value, bound, op, measured, met}}, "targets_summary": {total, measured, met,
        not_measured}, "by_source": {...}}``. A target that could not be measured (the steady notes skipped,
        no matched frames) has ``value`` and ``met`` None and ``measured`` False: neither met nor missed.

    Raises
    ------
    ParameterError
        ``data_dir`` lacks a steady note or holds an unreadable one (checked before the synthetic clips).
    """
    if data_dir is not None:
        check_steady_notes(data_dir)  # before the long synthetic part, not after it
    specs = make_specs(n_clips, seed)
    systems = {"rtclassify": lambda x, sr: run_native(x, sr)}
    anchor_status = {}
    if anchors:
        try:
            require("librosa", extra="test")
            systems["pyin+same"] = lambda x, sr: run_pyin(x, sr)
            anchor_status["pyin+same"] = "ran"
        except MissingDependencyError as exc:
            anchor_status["pyin+same"] = f"skipped: {exc}"
        if essentia_available():
            systems["essentia"] = lambda x, sr: run_essentia(x, sr)
            anchor_status["essentia"] = "ran"
        else:
            anchor_status["essentia"] = "skipped: the essentia wheel does not import here"
    outputs: dict[str, list[SystemOutput]] = {k: [] for k in systems}
    for i, spec in enumerate(specs):
        x = render_clip(spec, room=room)
        for name, fn in systems.items():
            outputs[name].append(fn(x, spec.sample_rate))
        if progress:
            progress(i + 1, len(specs), spec.name)
    metrics = {name: score_system(specs, outs) for name, outs in outputs.items()}
    by_source = {}
    for src in SOURCES:
        idx = [i for i, s in enumerate(specs) if s.source == src]
        if idx:
            by_source[src] = score_system([specs[i] for i in idx], [outputs["rtclassify"][i] for i in idx])
    steady = steady_notes(data_dir, systems) if data_dir is not None else None
    ours = metrics["rtclassify"]
    values = {
        "vibrato_f1": ours["vibrato"]["f1"],
        "tremolo_f1": ours["tremolo"]["f1"],
        "vibrato_rate_mae": ours["vibrato"]["rate_mae"],
        "vibrato_extent_mae": ours["vibrato"]["amount_mae"],
        "tremolo_rate_mae": ours["tremolo"]["rate_mae"],
        "tremolo_depth_mae": ours["tremolo"]["amount_mae"],
        "vibrato_delay_periods": ours["vibrato"]["delay_periods"],
        "tremolo_delay_periods": ours["tremolo"]["delay_periods"],
        "steady_false_fraction": steady["rtclassify"]["false_fraction"] if steady else math.nan,
    }
    targets = {k: {"value": values[k] if _measured(values[k]) else None, "op": TARGETS[k][0],
                   "bound": TARGETS[k][1], "measured": _measured(values[k]), "met": _check(values[k], TARGETS[k])}
               for k in TARGETS}
    not_measured = [k for k, t in targets.items() if not t["measured"]]
    targets_summary = {"total": len(targets), "measured": len(targets) - len(not_measured),
                       "met": sum(1 for t in targets.values() if t["met"]), "not_measured": not_measured}
    return {
        "config": {"n_clips": n_clips, "seed": seed, "room": room, "collar_periods": COLLAR_PERIODS,
                   "anchors": anchor_status,
                   "sources": list(SOURCES), "fluid_presets": [p for p, _, _ in FLUID_PRESETS]},
        "specs": [asdict(s) for s in specs],
        "systems": metrics,
        "by_source": by_source,
        "steady": steady,
        "targets": targets,
        "targets_summary": targets_summary,
    }
