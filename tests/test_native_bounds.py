"""Regression tests for what AddressSanitizer/UndefinedBehaviorSanitizer found in the native core.

Each test reproduces one finding of a sanitized build (``.ci/asan-check``). Where the undefined
behaviour also showed in a normal build (a wrong result, an unnamed error), the test checks that
result; where a normal build happened to compute the right thing anyway, the test pins the
behaviour and the finding shows only under ``.ci/asan-check``.
"""

from __future__ import annotations

import numpy as np
import pytest

import rtclassify
from rtclassify import _core

SR = 16000.0


# --- MelFrontend: n_mels + 2 band edges counted in int (csrc/spectral.cpp, make_mel_filterbank) ---


@pytest.mark.parametrize("n_mels", [4097, 2**31 - 3, 2**31 - 1])
def test_frontend_n_mels_beyond_bound_is_a_named_error(n_mels):
    # n_mels = 2**31 - 1 overflowed `n_mels + 2` (signed int) before any check; a normal build then
    # raised an unnamed "cannot create std::vector larger than max_size()" or tried to allocate
    # terabytes
    with pytest.raises(ValueError, match=r"n_mels: must be from 1 to 4096"):
        rtclassify.MelFrontend(SR, 512, 256, n_mels)


def test_frontend_n_mels_bound_itself_works():
    fe = rtclassify.MelFrontend(SR, 256, 128, 4096)
    assert fe.filterbank.shape == (4096, 129)
    out = fe.push(np.zeros(256, np.float32))
    assert out.shape == (1, 4096)


def test_frontend_config_dict_n_mels_beyond_bound_is_a_named_error():
    # the CUDA path's configuration (and its CPU emulation) goes through the same validation
    cfg = dict(sample_rate=SR, n_fft=512, hop_length=256, n_mels=2**31 - 1)
    with pytest.raises(ValueError, match=r"n_mels: must be from 1 to 4096"):
        _core._internal.frames_block_order(np.zeros(1024, np.float32), cfg)


# --- PitchTracker: NaN period converted to int (csrc/pitch.cpp, refine) ---


def _sine_with_spikes(spike: float, every: int) -> np.ndarray:
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / SR)).astype(np.float32)
    x[4000::every] = spike
    return x


@pytest.mark.parametrize("spike", [1e30, float(np.finfo(np.float32).max)])
def test_pitch_overflowing_differences_are_unvoiced_with_zero_confidence(spike):
    # Finite samples far beyond full scale overflow the float difference function to inf; the
    # parabola through inf, x, inf gave a NaN period offset that refine() converted to int
    # (undefined; the lags derived from it could point outside the history), and the NaN
    # aperiodicity read as 0, so such frames reported confidence 1.
    t = _core.PitchTracker(SR)
    r = t.process(_sine_with_spikes(spike, 50))
    first = 4000 // t.hop_length
    assert r["voiced"][10:first].all()  # the clean sine before the spikes (after the warm-up)
    np.testing.assert_allclose(r["f0"][10:first], 440.0, rtol=2e-3)
    late = slice(first + 20, None)  # every analysis window holds spikes
    assert not r["voiced"][late].any()
    assert (r["confidence"][late] == 0.0).all(), r["confidence"][late]
    assert (r["f0"][late] == 0.0).all()
    for k in ("f0", "confidence", "level_db"):
        assert np.isfinite(r[k]).all()


def test_pitch_random_spikes_sanitizer_case():
    # the input the randomized stress run found (seed 146: 2 % of the samples set to 1e30)
    rng = np.random.default_rng(146)
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(4000) / SR)).astype(np.float32)
    x[rng.integers(0, x.size, size=x.size // 50)] = 1e30
    r = _core.PitchTracker(SR).process(x)
    assert np.isfinite(r["f0"]).all() and np.isfinite(r["confidence"]).all()
    assert (r["confidence"][~r["voiced"]] == 0.0).all(), r["confidence"]


def test_technique_tracker_survives_huge_samples():
    # the same path through TechniqueTracker (which keeps the period for its compensation)
    t = _core.TechniqueTracker(SR)
    r = t.process(_sine_with_spikes(1e30, 50))
    for k, v in r.items():
        if v.dtype.kind == "f":
            assert np.isfinite(v).all(), k
    assert not r["voiced"][4000 // t.hop_length + 20:].any()


# --- TremoloTracker: vibrato rate near 0 converted to int (csrc/modulation.cpp, harmonic_fit) ---


@pytest.mark.parametrize("rate", [1e-30, 1e-12, float(np.finfo(np.float32).tiny)])
def test_tremolo_vibrato_rate_near_zero_explains_nothing(rate):
    # fs / (2.5 k rate) as int was out of range (undefined; a normal x86 build happened to read
    # it as INT_MIN and clamp it to 1). A rate that close to 0 explains nothing.
    fr = 200.0
    n = 2000
    lvl = (-20 + 3 * np.sin(2 * np.pi * 6 * np.arange(n) / fr)).astype(np.float32)
    plain = _core.TremoloTracker(fr).process(lvl)
    r = _core.TremoloTracker(fr).process(lvl, vibrato_on=np.ones(n, bool),
                                              vibrato_rate=np.full(n, rate, np.float32))
    assert plain["on"].any()
    np.testing.assert_array_equal(r["on"], plain["on"])
    np.testing.assert_array_equal(r["depth"], plain["depth"])


# --- out= and test-hook arrays at a misaligned address (bindings/) ---


def _misaligned_f32(n: int) -> np.ndarray:
    a = np.frombuffer(bytearray(4 * n + 1), dtype=np.float32, offset=1, count=n)
    assert not a.flags.aligned and a.flags.writeable and a.flags.c_contiguous
    return a


def test_frontend_push_refuses_misaligned_out():
    # the frames were stored through a float pointer into the misaligned buffer (UBSan: store to
    # misaligned address, csrc/spectral.cpp compute_frame_host); an output cannot be copied aside
    fe = rtclassify.MelFrontend(SR, 512, 256, 16)
    out = _misaligned_f32(4 * 16).reshape(4, 16)
    with pytest.raises(ValueError, match="out: .*aligned"):
        fe.push(np.zeros(1024, np.float32), out=out)
    assert fe.samples_consumed == 0


def test_ring_pop_refuses_misaligned_out():
    ring = rtclassify.SampleRing(64)
    ring.push(np.ones(10, np.float32))
    with pytest.raises(ValueError, match="out: .*aligned"):
        ring.pop(10, out=_misaligned_f32(10))
    assert ring.available == 10


def test_internal_hooks_copy_misaligned_input():
    # the test-only hooks took array_t<float, c_style | forcecast>, which passes a misaligned array
    # through (UBSan: load of misaligned address, csrc/frame_math.h window_pack_one)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1024).astype(np.float32)
    xm = _misaligned_f32(1024)
    xm[:] = x
    np.testing.assert_array_equal(_core._internal.rfft(xm[:512]), _core._internal.rfft(x[:512]))
    cfg = rtclassify.MelFrontend(SR, 512, 256, 16).config
    np.testing.assert_array_equal(_core._internal.frames_block_order(xm, cfg),
                                  _core._internal.frames_block_order(x, cfg))
    x2 = np.stack([x, -x])
    x2m = _misaligned_f32(2048).reshape(2, 1024)
    x2m[:] = x2
    got = _core._internal.batched_stream_cpu(x2m, [300, 724], cfg)
    want = _core._internal.batched_stream_cpu(x2, [300, 724], cfg)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
