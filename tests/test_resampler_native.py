"""The native streaming resampler (rtclassify._core.Resampler): response, alignment, latency, streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soxr

from rtclassify import _core

RATES = [8000, 22050, 32000, 44100, 48000, 96000, 192000]


def stream(r, x, sizes, seed=0, last=True):
    """Push ``x`` in blocks of random sizes from ``sizes`` (zero included); ``last`` ends the stream."""
    rng = np.random.default_rng(seed)
    outs, i = [], 0
    while i < len(x):
        b = int(rng.choice(sizes))
        outs.append(r.process(x[i:i + b]))
        i += b
    if last:
        outs.append(r.process(np.zeros(0, np.float32), last=True))
    return np.concatenate(outs)


def tone(rate, f, seconds=1.0, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def level_db(y, ref_amp=0.5, trim=600):
    """Level of ``y`` (past its ends) in dB relative to a sine of amplitude ``ref_amp``."""
    y = y[trim:-trim]
    return 20 * np.log10(max(np.sqrt(np.mean(y.astype(np.float64) ** 2)), 1e-30) / (ref_amp / math.sqrt(2)))


def fit_sine(y, f, rate=16000, trim=800):
    """Amplitude and phase of the sine of frequency ``f`` in ``y`` (least squares, past the ends)."""
    t = np.arange(len(y)) / rate
    a = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], 1)[trim:-trim]
    (s, c), *_ = np.linalg.lstsq(a, y[trim:-trim].astype(np.float64), rcond=None)
    return float(np.hypot(s, c)), float(np.arctan2(c, s))


@pytest.mark.parametrize("rate", RATES)
def test_any_split_gives_the_output_of_one_call(rate):
    rng = np.random.default_rng(rate)
    x = rng.normal(0, 0.2, rate).astype(np.float32)
    whole = _core.Resampler(rate, 16000).process(x, last=True)
    r = _core.Resampler(rate, 16000)
    for seed, sizes in enumerate(([0, 1, 2, 3], [0, 64, 256, 1000], [4096, 9999])):
        r.reset()
        assert np.array_equal(stream(r, x, sizes, seed), whole)
    # total length: every output instant before the input's end
    assert len(whole) == math.ceil(len(x) * 16000 / rate)


@pytest.mark.parametrize("rate", [44100, 48000, 96000, 8000])
def test_passband_flat_and_nothing_aliases(rate):
    """Flat within 0.01 dB up to 7 kHz (3.5 kHz from 8 kHz); a tone above 8 kHz (from 8 kHz: the images above
    4 kHz) is 120 dB down."""
    nyq = min(rate, 16000) / 2
    for f in np.linspace(50, 0.875 * nyq, 9):
        r = _core.Resampler(rate, 16000)
        amp, _ = fit_sine(r.process(tone(rate, f), last=True), f)
        assert abs(20 * np.log10(amp / 0.5)) < 0.01, f
    if rate > 16000:
        # a cosine: a sine at exactly 8 kHz is zero at every 16 kHz sample and would pass any filter; the
        # stop edge is where the filter is weakest, so it gets the densest sweep
        edge = list(np.linspace(8000, 8100, 6)) + list(np.linspace(8100, min(rate / 2 - 50, 40000), 13))
        r = _core.Resampler(rate, 16000)
        for f in edge:
            r.reset()
            x = (0.5 * np.cos(2 * np.pi * f * np.arange(2 * rate) / rate)).astype(np.float32)
            y = r.process(x, last=True)[3000:-3000]
            assert 20 * np.log10(np.abs(y).max() / 0.5 + 1e-30) < -120, f
    else:  # up-sampling: the spectrum's image above the input's Nyquist frequency
        x = tone(rate, 3000)
        y = _core.Resampler(rate, 16000).process(x, last=True)
        spec = np.abs(np.fft.rfft(y[1000:9000] * np.hanning(8000)))
        freqs = np.fft.rfftfreq(8000, 1 / 16000)
        assert 20 * np.log10(spec[freqs > 4100].max() / spec.max()) < -120


@pytest.mark.parametrize("rate", [44100, 48000, 8000])
def test_output_is_time_aligned_with_the_input(rate):
    """An impulse at input time t comes out centred at output time t (to a small fraction of a sample)."""
    x = np.zeros(rate, np.float32)
    i = rate // 3 + 7
    x[i] = 1.0
    y = _core.Resampler(rate, 16000).process(x, last=True).astype(np.float64)
    k = int(np.argmax(np.abs(y)))
    # the peak's centre by the weighted mean of the main lobe
    lobe = slice(k - 3, k + 4)
    centre = float(np.sum(np.arange(len(y))[lobe] * y[lobe]) / np.sum(y[lobe]))
    assert abs(centre / 16000 - i / rate) < 0.25 / 16000


@pytest.mark.parametrize("rate", RATES)
def test_declared_latency_is_the_largest_hold_back(rate):
    """After any block, the output reaches the input's time minus at most latency_s, and the bound is reached
    (within one output sample); it is far below soxr's streaming HQ at the same rates."""
    r = _core.Resampler(rate, 16000)
    worst, pushed, produced = 0.0, 0, 0
    for n in [1, 7, 64, 256, 1000, 3] * 200:
        produced += len(r.process(np.zeros(n, np.float32)))
        pushed += n
        worst = max(worst, pushed / rate - produced / 16000)
    assert worst <= r.latency_s + 1e-12
    assert worst > r.latency_s - 1 / 16000 - 1 / rate
    assert r.latency_s < (0.012 if rate == 8000 else 0.006)
    from rtclassify.audio.resample import measure_stream_latency

    assert r.latency_s < 0.2 * measure_stream_latency(rate, 16000, "HQ", 256)


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_agrees_with_soxr(rate):
    """The same output as soxr's one-shot VHQ: to -120 dB up to 3 kHz, and up to 7.2 kHz the same phase (to
    1e-6 rad) and level within 0.01 dB (soxr's passband starts to roll off there; ours is flat)."""
    for f in (110, 1234, 3000, 5500, 6900, 7200):
        x = tone(rate, f, 2.0)
        ours = _core.Resampler(rate, 16000).process(x, last=True)
        ref = soxr.resample(x, rate, 16000, quality="VHQ")
        assert len(ours) == len(ref)
        (a1, p1), (a2, p2) = fit_sine(ours, f), fit_sine(ref, f)
        assert abs(p1 - p2) < 1e-6 and abs(20 * np.log10(a1 / a2)) < 0.01, f
        if f <= 3000:
            assert level_db(ours[800:-800] - ref[800:-800]) < -120, f


def test_dc_gain_is_one_and_reset_starts_again():
    r = _core.Resampler(44100, 16000)
    y = r.process(np.full(44100, 0.25, np.float32))
    assert np.allclose(y[400:], 0.25, atol=1e-6)
    r.reset()
    assert r.samples_in == 0 and r.samples_out == 0
    assert np.array_equal(r.process(np.full(44100, 0.25, np.float32)), y)


def test_same_rate_and_other_directions():
    x = np.random.default_rng(3).normal(0, 0.1, 4800).astype(np.float32)
    r = _core.Resampler(16000, 16000)
    assert (r.up, r.down) == (1, 1)
    y = r.process(x, last=True)
    assert len(y) == len(x) and level_db(y - x, 0.1) > -60  # a low-pass FIR, not a copy: the top band goes
    x = tone(16000, 1000, 0.3)
    y = r.process(x, last=True) if r.reset() is None else None
    assert np.abs(y - x)[200:-200].max() < 1e-5
    up = _core.Resampler(16000, 48000)
    assert (up.up, up.down) == (3, 1)
    assert len(up.process(x, last=True)) == 3 * len(x)


def test_the_stream_ends_with_last():
    r = _core.Resampler(48000, 16000)
    r.process(np.zeros(1000, np.float32), last=True)
    with pytest.raises(RuntimeError, match="reset"):
        r.process(np.zeros(10, np.float32))
    r.reset()
    assert len(r.process(np.zeros(48000, np.float32))) > 15000


def test_bad_parameters_name_themselves():
    with pytest.raises(ValueError, match="in_rate"):
        _core.Resampler(0, 16000)
    with pytest.raises(ValueError, match="out_rate"):
        _core.Resampler(48000, -1)
    for bad in (float("nan"), 39.0, 131.0):  # beyond 130 dB float32 cannot deliver what is asked
        with pytest.raises(ValueError, match="attenuation_db"):
            _core.Resampler(48000, 16000, attenuation_db=bad)
    with pytest.raises(ValueError, match="passband"):
        _core.Resampler(48000, 16000, passband=1.0)
    with pytest.raises(ValueError, match="in_rate, out_rate.*coefficients"):
        _core.Resampler(44101, 16000)  # ratio 16000/44101: a filter of 8 million coefficients


def test_max_output_saturates_for_a_length_no_array_has():
    assert _core.Resampler(44100, 16000).max_output(2**60) == 2**64 - 1


def test_bad_blocks_are_refused():
    r = _core.Resampler(48000, 16000)
    with pytest.raises(TypeError, match="float32 or float64"):
        r.process(np.zeros(10, np.int16))
    with pytest.raises(ValueError, match="1-D"):
        r.process(np.zeros((10, 2), np.float32))
    assert r.samples_in == 0  # nothing was taken
    want = r.max_output(3000)
    y = r.process(np.full(3000, 0.5, np.float64))  # float64 is converted
    assert y.dtype == np.float32 and len(y) == want and r.samples_in == 3000 and r.samples_out == want
