"""Randomized stress of rtclassify._core, for a sanitized build (run by .ci/asan-check).

Usage: python asan-stress.py [seconds] [seed] [stage]
Every native class with random parameters at their documented bounds, random block sizes (0, 1,
huge), hostile sample values (NaN, inf, denormals, finite values far beyond full scale) and odd
call orders (reset between pushes, out= buffers of the wrong size, concurrent push/pop). It checks
little beyond "no crash and no sanitizer report": a ValueError/TypeError/MemoryError for a bad
parameter is fine. STRESS_VERBOSE=1 logs each pitch tracker and block to stderr (the last block
goes to ./last_block.npy) to replay a report. Stages: frontend, rfft, ring, pitch, modulation,
technique, internal.
"""
import sys
import time
import threading

import numpy as np

import rtclassify
import rtclassify._core as C

print("rtclassify from", rtclassify.__file__, "core", C.__file__, flush=True)

DUR = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 0
ONLY = sys.argv[3] if len(sys.argv) > 3 else ""
rng = np.random.default_rng(SEED)
F32MAX = float(np.finfo(np.float32).max)
HOSTILE = [0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, F32MAX, -F32MAX, 1e-45, -1e-45, 1e-38, 1e30, -1e30]


import os
VERBOSE = os.environ.get("STRESS_VERBOSE") == "1"


def log(*a):
    if VERBOSE:
        print(*a, file=sys.stderr, flush=True)


def pick(xs):
    return xs[int(rng.integers(len(xs)))]


def block_size():
    return int(pick([0, 1, 2, 3, 7, 255, 256, 257, 511, 4096, 4097, int(rng.integers(0, 5000)), 200_000]))


def signal(n, sr=16000.0, kind=None):
    kind = kind or pick(["sine", "noise", "hostile", "mixed", "silence", "vib", "trem", "huge"])
    t = np.arange(n) / sr
    if kind == "sine":
        f = float(rng.uniform(20, 5000))
        x = 0.5 * np.sin(2 * np.pi * f * t)
    elif kind == "vib":
        f = float(rng.uniform(100, 1000))
        x = 0.5 * np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 6 * t))
    elif kind == "trem":
        f = float(rng.uniform(100, 1000))
        x = 0.5 * (1 + 0.8 * np.sin(2 * np.pi * 5 * t)) * np.sin(2 * np.pi * f * t)
    elif kind == "noise":
        x = rng.standard_normal(n)
    elif kind == "hostile":
        x = rng.choice(HOSTILE, size=n)
    elif kind == "huge":
        x = rng.choice([F32MAX, -F32MAX], size=n)
    elif kind == "silence":
        x = np.zeros(n)
    else:
        x = 0.3 * np.sin(2 * np.pi * 440 * t)
        if n:
            idx = rng.integers(0, n, size=max(1, n // 50))
            x[idx] = rng.choice(HOSTILE, size=idx.size)
    return x.astype(pick([np.float32, np.float64]))


def ok_errors(fn, *a, **k):
    try:
        return fn(*a, **k)
    except (ValueError, TypeError, MemoryError, OverflowError) as e:
        return e


# ---------------------------------------------------------------- frontend
def rand_frontend_cfg():
    n_fft = int(pick([256, 512, 1024, 2048, 4096]))
    sr = float(pick([8000.0, 16000.0, 22050.0, 44100.0, 48000.0, 96000.0, 1.0, 0.001, 7.5, 1e9, 12345.678]))
    cfg = dict(
        sample_rate=sr,
        n_fft=n_fft,
        hop_length=int(pick([1, 2, n_fft // 2, n_fft - 1, n_fft, int(rng.integers(1, n_fft + 1))])),
        n_mels=int(pick([1, 2, 40, 128, n_fft // 2 + 1, n_fft, 3000])),
        fmin=float(pick([0.0, 0.0, 20.0, sr / 2 * 0.999999, sr / 4])),
        fmax=pick([None, sr / 2, sr / 2 * (1 + 1e-13), sr / 3]),
        win_length=pick([None, 1, 2, n_fft - 1, n_fft, int(rng.integers(1, n_fft + 1))]),
        window=pick(["hann", "hamming", "blackman", "rect", "HANN", "ones", "boxcar"]),
        mel_scale=pick(["htk", "slaney"]),
        norm=pick([None, "slaney"]),
        power=float(pick([2.0, 1.0, 0.5, 1e-300, 3.7, 1e300, 1e-10, 100.0])),
        log=pick(["db", "ln", None]),
        amin=float(pick([1e-10, 1e-300, 1.0, 1e300, 5e-324])),
    )
    return cfg


def stress_frontend(deadline):
    n = 0
    while time.time() < deadline:
        cfg = rand_frontend_cfg()
        f = ok_errors(C.MelFrontend, **cfg)
        if isinstance(f, Exception):
            continue
        n += 1
        for _ in range(int(rng.integers(1, 12))):
            op = rng.random()
            if op < 0.1:
                f.reset()
            elif op < 0.15:
                _ = f.config, f.filterbank, f.frames_emitted, f.nonfinite_replaced
                f2 = C.MelFrontend(**f.config)
                assert f2.config == f.config
            elif op < 0.2:
                for big in [0, 1, 2**31, 2**63, 2**64 - 1]:
                    f.frames_for(big)
            else:
                m = block_size()
                if m > 20000 and f.hop_length < 64:
                    m = 20000  # (a frame per sample or two: long enough)
                kind = pick(["f32", "f64", "i16", "out", "outbig", "badout"])
                if kind == "i16":
                    x = rng.integers(-32768, 32768, size=m, dtype=np.int16)
                else:
                    x = signal(m, cfg["sample_rate"] if cfg["sample_rate"] > 100 else 16000.0)
                    if kind == "f32":
                        x = x.astype(np.float32)
                    elif kind == "f64":
                        x = x.astype(np.float64)
                if kind in ("out", "outbig", "badout"):
                    rows = f.frames_for(m) + (3 if kind == "outbig" else 0) - (1 if kind == "badout" else 0)
                    out = np.full((max(rows, 0), f.n_mels), np.nan, np.float32)
                    r = ok_errors(f.push, x, out=out)
                else:
                    r = f.push(x)
                if not isinstance(r, Exception):
                    assert r.shape[1] == f.n_mels
    return n


def stress_rfft(deadline):
    n = 0
    while time.time() < deadline:
        m = int(pick([0, 1, 255, 256, 512, 4096, 8192, 300]))
        x = signal(m).astype(np.float32)
        ok_errors(C._internal.rfft, x)
        n += 1
    return n


# ---------------------------------------------------------------- ring
def stress_ring(deadline):
    n = 0
    while time.time() < deadline:
        cap = int(pick([1, 2, 3, 1000, 1024, 65536, 1 << 20]))
        r = C.SampleRing(cap)
        n += 1
        for _ in range(int(rng.integers(1, 30))):
            op = rng.random()
            if op < 0.45:
                m = int(pick([0, 1, 2, cap - 1, cap, cap + 1, 3 * cap + 5, 20000, 16384, 16383]))
                m = max(m, 0)
                r.push(signal(m))
            elif op < 0.8:
                k = int(pick([0, 1, cap, 2 * cap, 5]))
                if rng.random() < 0.5:
                    out = np.empty(k + int(rng.integers(0, 3)), np.float32)
                    r.pop(k, out=out)
                else:
                    r.pop(k)
            elif op < 0.85:
                r.reset()
            else:
                _ = r.available, r.dropped, r.pushed, r.capacity
            assert r.available <= r.capacity
    # concurrent producer / consumer
    r = C.SampleRing(4096)
    stop = time.time() + 1.0

    def prod():
        while time.time() < stop:
            r.push(rng.standard_normal(int(rng.integers(0, 3000))).astype(np.float32))

    def cons():
        out = np.empty(5000, np.float32)
        while time.time() < stop:
            r.pop(int(rng.integers(0, 5000)), out=out)

    ts = [threading.Thread(target=prod), threading.Thread(target=cons)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return n


# ---------------------------------------------------------------- trackers
def rand_pitch_kw():
    sr = float(pick([4000.0, 8000.0, 11025.0, 16000.0, 22050.0, 44100.0, 48000.0, 96000.0, 192000.0, 384000.0, 4000.5, 12345.6]))
    fmax = float(pick([sr / 4, 2000.0, 21.0, 1000.0, sr / 4 * 0.999]))
    fmin = float(pick([20.0, 50.0, fmax * 0.999, 20.000001]))
    kw = dict(
        sample_rate=sr,
        hop_length=pick([None, 1, 2, int(sr // 10), int(rng.integers(1, int(sr // 10) + 1))]),
        fmin=fmin,
        fmax=fmax,
        threshold=float(pick([1e-9, 0.15, 0.999999, 0.5])),
        silence_db=float(pick([-120.0, 0.0, -60.0])),
        level_window=float(pick([0.002, 0.2, 0.025])),
    )
    return kw


def stress_pitch(deadline):
    n = 0
    while time.time() < deadline:
        kw = rand_pitch_kw()
        t = ok_errors(C.PitchTracker, **kw)
        if isinstance(t, Exception):
            continue
        n += 1
        log("PitchTracker", kw)
        sr = kw["sample_rate"]
        for _ in range(int(rng.integers(1, 8))):
            op = rng.random()
            if op < 0.1:
                t.reset()
            else:
                m = block_size()
                hop = kw["hop_length"] or max(1, round(0.005 * sr))
                m = min(m, 200 * hop + 5000)  # at most about 200 frames per block
                x = signal(m, sr)
                if VERBOSE:
                    np.save("last_block.npy", x)
                log("process", m)
                t.process(x)
    return n


def rand_mod_kw(kind, frame_rate):
    kw = {}
    if rng.random() < 0.7:
        rmin = float(pick([0.5, 1.0, 3.0, 0.5000001]))
        rmax = float(pick([rmin + 0.02, frame_rate / 4 * 0.999, 10.0, 15.0, min(40.0, frame_rate / 4 * 0.99)]))
        kw["rate_min"] = rmin
        kw["rate_max"] = rmax
        if rmax > rmin:
            kw["rate_step"] = float(pick([0.01 if (rmax - rmin) / 0.01 < 3000 else 0.25, (rmax - rmin) / 2, 0.25, 1.0]))
    if rng.random() < 0.5:
        kw["window_periods"] = float(pick([1.0, 8.0, 2.5]))
        kw["release_periods"] = float(pick([1.0, kw["window_periods"]]))
    if rng.random() < 0.5:
        kw["regularity_on"] = float(pick([1.0, 1e-9, 0.6]))
        kw["regularity_off"] = float(pick([0.0, kw["regularity_on"]]))
    if rng.random() < 0.5:
        kw["hold_frames"] = int(pick([1, 1000, 3]))
    if kind == "vibrato":
        if rng.random() < 0.5:
            kw["extent_on"] = float(pick([1e-9, 5.0, 1e6]))
            kw["extent_off"] = float(pick([1e-12, kw["extent_on"]]))
        if rng.random() < 0.5:
            kw["jump_cents"] = float(pick([1e-9, 80.0, 1e9]))
            kw["max_gap"] = int(pick([0, 1000]))
            kw["max_glitch"] = int(pick([0, 8]))
    else:
        if rng.random() < 0.5:
            kw["depth_on"] = float(pick([1e-9, 1.0, 1e6]))
            kw["depth_off"] = float(pick([1e-12, kw["depth_on"]]))
        if rng.random() < 0.5:
            kw["onset_db"] = float(pick([1e-9, 8.0, 1e9]))
            kw["onset_frames"] = int(pick([1, 64]))
            kw["vibrato_explained"] = float(pick([1e-9, 0.8, 1e9]))
            kw["vibrato_harmonics"] = int(pick([1, 4]))
            kw["trend_ratio"] = float(pick([0.0, 0.25, 1e9]))
        if rng.random() < 0.5:
            kw["rate_stability"] = float(pick([0.0, 1.0, 0.05]))
            kw["stability_periods"] = float(pick([1e-9, 2.0, 0.75]))
            kw["crest_floor"] = float(pick([-1.0, 0.999999, -0.5]))
    return kw


def contour(n, kind):
    t = np.arange(n) / 200.0
    c = pick(["steady", "mod", "hostile", "jumps", "gaps"])
    if kind == "vibrato":
        base = 440 * 2 ** ((20 * np.sin(2 * np.pi * 5.5 * t)) / 1200) if c == "mod" else np.full(n, 220.0)
    else:
        base = -20 + 3 * np.sin(2 * np.pi * 6 * t) if c == "mod" else np.full(n, -20.0)
    x = base.copy()
    if c == "hostile":
        x = rng.choice(HOSTILE + [440.0, -20.0], size=n)
    elif c == "jumps":
        x = x * rng.choice([1.0, 2.0, 0.5, 3.0], size=n)
    elif c == "gaps" and n:
        x[rng.random(n) < 0.2] = pick([0.0, -1.0, np.nan])
    return x.astype(np.float32)


def stress_modulation(deadline):
    n = 0
    while time.time() < deadline:
        kind = pick(["vibrato", "tremolo"])
        fr = float(pick([20.0, 40.0, 200.0, 2000.0, 40.000001, 1999.9, 100.0]))
        kw = rand_mod_kw(kind, fr)
        cls = C.VibratoTracker if kind == "vibrato" else C.TremoloTracker
        t = ok_errors(cls, fr, **kw)
        if isinstance(t, Exception):
            continue
        n += 1
        for _ in range(int(rng.integers(1, 6))):
            if rng.random() < 0.1:
                t.reset()
                continue
            m = int(pick([0, 1, 2, 100, 1000, 3000]))
            x = contour(m, kind)
            if kind == "vibrato":
                t.process(x)
            else:
                args = {}
                if rng.random() < 0.5:
                    args["valid"] = rng.random(m) < 0.95
                if rng.random() < 0.3:
                    args["restart"] = rng.random(m) < 0.02
                if rng.random() < 0.7:
                    args["vibrato_on"] = rng.random(m) < pick([0.0, 0.5, 1.0])
                    args["vibrato_rate"] = rng.choice(
                        [5.0, 0.0, -3.0, np.nan, np.inf, 1e-30, 1e-45, F32MAX, 0.4, 1000.0, 6.0], size=m
                    ).astype(np.float32)
                t.process(x, **args)
    return n


def stress_technique(deadline):
    n = 0
    while time.time() < deadline:
        pk = rand_pitch_kw()
        kw = dict(pk)
        sr = kw.pop("sample_rate")
        if kw["hop_length"] is not None and sr / kw["hop_length"] < 40 or sr / (kw["hop_length"] or 1) > 2000:
            kw["hop_length"] = pick([None, max(1, int(sr / 2000) + 1), int(sr / 40)])
        kw.update(
            tremolo_min_confidence=float(pick([0.0, 1.0, 0.5])),
            tremolo_restart_on_pitch_jump=bool(rng.random() < 0.5),
            compensate=bool(rng.random() < 0.5),
            explained_high=float(pick([1e-9, 0.8, 1e9])),
            am_per_cent=float(pick([1e-9, 0.1, 1e9])),
            cents_per_db=float(pick([1e-9, 3.0, 1e9])),
            harmonics=int(pick([1, 4])),
            purity_weight=float(pick([0.0, 100.0, 4.0])),
            hz_pivot=float(pick([0.0, 100.0, 1.0])),
            tremolo_under_vibrato=bool(rng.random() < 0.7),
            exclusion=float(pick([0.0, 0.3, 0.1])),
            under_vibrato_regularity=float(pick([1.0, 0.36, 0.7])),
        )
        kw["explained_low"] = float(pick([1e-12, kw["explained_high"]]))
        fr = sr / (kw["hop_length"] or max(1, round(0.005 * sr)))
        if rng.random() < 0.5:
            kw["vibrato"] = rand_mod_kw("vibrato", fr)
        if rng.random() < 0.5:
            kw["tremolo"] = rand_mod_kw("tremolo", fr)
        t = ok_errors(C.TechniqueTracker, sr, **kw)
        if isinstance(t, Exception):
            continue
        n += 1
        for _ in range(int(rng.integers(1, 5))):
            if rng.random() < 0.1:
                t.reset()
                continue
            m = block_size()
            hop = kw["hop_length"] or max(1, round(0.005 * sr))
            m = min(m, 200 * hop + 5000)  # at most about 200 frames per block
            t.process(signal(m, sr))
    return n


def stress_resampler(deadline):
    n = 0
    while time.time() < deadline:
        # the session's input rates (1000 to 768000) and a few the constructor must refuse; a rate of a few Hz
        # into 16000 is legal but makes thousands of outputs per input sample, too slow for a sanitized build
        rates = [1000, 8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000, 768000, 44101, 0, -5, 5_000_000]
        kw = dict(in_rate=int(pick(rates)), out_rate=int(pick(rates + [16000] * 4)))
        if rng.random() < 0.3:
            kw["attenuation_db"] = float(pick([40.0, 60.0, 120.0, 180.0, 39.9, 181.0, float("nan")]))
        if rng.random() < 0.3:
            kw["passband"] = float(pick([0.5, 0.8, 0.913, 0.99, 0.49, 1.0, float("inf")]))
        r = ok_errors(C.Resampler, **kw)
        if isinstance(r, Exception):
            continue
        n += 1
        log("resampler", kw, r.taps_per_phase)
        total_in = total_out = 0
        for _ in range(int(rng.integers(1, 12))):
            x = signal(min(block_size(), 20_000), sr=float(max(r.in_rate, 1)))
            want = r.max_output(len(x))
            last = bool(rng.random() < 0.15)
            try:
                y = r.process(x, last=last)
            except (ValueError, TypeError):
                continue
            total_in += len(x)
            total_out += len(y)
            if last:
                assert total_out == -(-total_in * r.up // r.down), (kw, total_in, total_out)
                r.reset()
                total_in = total_out = 0
            else:
                assert len(y) == want, (kw, len(y), want)
    return n


def stress_internal(deadline):
    n = 0
    while time.time() < deadline:
        cfg = rand_frontend_cfg()
        try:
            cfgd = C.MelFrontend(**cfg).config
        except (ValueError, TypeError, MemoryError):
            continue
        n += 1
        x = signal(int(pick([0, 1, cfg["n_fft"], 3 * cfg["n_fft"] + 5]))).astype(np.float32)
        names = [a for a in dir(C._internal) if not a.startswith("__")]
        for nm in names:
            fn = getattr(C._internal, nm)
            if nm == "rfft":
                continue
            try:
                if "batch" in nm or "stream" in nm:
                    S = int(pick([1, 2, 3]))
                    xs = np.stack([x] * S) if x.size else np.zeros((S, 0), np.float32)
                    blocks = []
                    left = xs.shape[1]
                    while left > 0:
                        b = int(min(left, pick([0, 1, 7, 300, left])))
                        blocks.append(b)
                        left -= b
                        if len(blocks) > 50:
                            break
                    fn(xs, blocks, cfgd)
                else:
                    fn(x, cfgd, block_dim=int(pick([1, 128, 1000])), seed=int(pick([0, 1, 7])))
            except (ValueError, TypeError):
                pass
    return n


STAGES = [
    ("frontend", stress_frontend),
    ("rfft", stress_rfft),
    ("ring", stress_ring),
    ("resampler", stress_resampler),
    ("pitch", stress_pitch),
    ("modulation", stress_modulation),
    ("technique", stress_technique),
    ("internal", stress_internal),
]
per = DUR / len(STAGES) if not ONLY else DUR
for name, fn in STAGES:
    if ONLY and name != ONLY:
        continue
    t0 = time.time()
    count = fn(t0 + per)
    print(f"{name}: {count} objects, {time.time() - t0:.1f}s", flush=True)
print("stress: done, no sanitizer report")
