"""Tests of the native streaming pitch tracker (rtclassify._core.PitchTracker)."""

from __future__ import annotations

import numpy as np
import pytest
from _trackers import assert_split_invariant, frame_times
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtclassify import _core

SAMPLE_RATES = (16000, 22050, 44100, 48000)
FREQS = (55.0, 82.41, 110.0, 196.0, 261.63, 440.0, 659.26, 987.77, 1318.5, 1760.0, 1975.5)


def tone(kind: str, f0: float, sr: int, dur: float = 0.5, amp: float = 0.3) -> np.ndarray:
    """A sine, a band-limited sawtooth or a harmonic tone with random phases."""
    t = np.arange(int(sr * dur)) / sr
    if kind == "sine":
        x = np.sin(2 * np.pi * f0 * t)
    else:
        n = int(0.45 * sr / f0)
        rng = np.random.default_rng(int(f0))
        x = np.zeros_like(t)
        for k in range(1, n + 1):
            if kind == "sawtooth":
                x += np.sin(2 * np.pi * k * f0 * t) / k
            else:
                x += k ** -1.3 * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    return (amp * x / np.max(np.abs(x))).astype(np.float32)


def cents(a, b):
    return 1200 * np.log2(np.asarray(a, float) / b)


@pytest.mark.parametrize("sr", SAMPLE_RATES)
@pytest.mark.parametrize("kind", ["sine", "sawtooth", "harmonic"])
def test_pitch_within_10_cents_across_range(sr, kind):
    for f0 in FREQS:
        tr = _core.PitchTracker(sr)
        out = tr.process(tone(kind, f0, sr))
        steady = slice(int(0.1 * tr.frame_rate), None)  # after the analysis span has filled
        assert out["voiced"][steady].all(), (kind, sr, f0)
        err = np.abs(cents(out["f0"][steady], f0))
        assert err.max() < 10.0, (kind, sr, f0, float(err.max()))
        assert (out["confidence"][steady] > 0.85).all()


@pytest.mark.parametrize("sr,f0", [(8000, 55.0), (8000, 94.58), (11025, 70.0), (11025, 83.26), (16000, 61.89),
                                   (16000, 68.85)])
def test_bright_low_tones_at_low_rates_are_voiced(sr, f0):
    """Equal harmonics up to 0.45 of the rate, whose period falls between two lags: at these rates no low-pass
    precedes the search, the dip is narrower than a lag, and read at whole lags only the note was unvoiced."""
    t = np.arange(int(sr * 0.5)) / sr
    x = sum(np.cos(2 * np.pi * k * f0 * t) for k in range(1, int(0.45 * sr // f0) + 1))
    tr = _core.PitchTracker(sr)
    out = tr.process((0.9 * x / np.abs(x).max()).astype(np.float32))
    steady = slice(len(out["f0"]) // 2, None)
    assert out["voiced"][steady].mean() > 0.9, (sr, f0)
    assert np.abs(cents(out["f0"][steady][out["voiced"][steady]], f0)).max() < 10.0


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
@pytest.mark.parametrize("kind", ["sine", "harmonic"])
@pytest.mark.parametrize("f0", [2600.0, 3000.0, 3500.0])
def test_tones_above_fmax_are_unvoiced_not_an_octave_down(sr, kind, f0):
    """A tone above fmax (2000 Hz) is periodic at twice its period, which is in range: it read 1300 Hz for 2600
    and 1500 Hz for 3000, voiced with full confidence. Its period's fraction out of range dips under the
    threshold, so the frame is unvoiced; a tone just under fmax is still read."""
    tr = _core.PitchTracker(sr)
    out = tr.process(tone(kind, f0, sr))
    steady = slice(int(0.1 * tr.frame_rate), None)
    assert not out["voiced"][steady].any(), (sr, kind, f0, np.unique(np.round(out["f0"][steady])))
    assert (out["f0"][steady] == 0).all()
    out = _core.PitchTracker(sr).process(tone(kind, 1950.0, sr))
    assert out["voiced"][steady].all()
    assert np.abs(cents(out["f0"][steady], 1950.0)).max() < 10.0


@pytest.mark.parametrize("sr", [44100, 48000, 96000, 192000])
@pytest.mark.parametrize("f0", [5000.0, 6000.0, 7000.0, 7999.0, 9000.0, 12000.0])
def test_tones_far_above_the_search_band_are_unvoiced(sr, f0):
    """A lone tone above the coarse search's band (a whistle, feedback) survives its anti-alias filter as a
    clean alias, which YIN, deaf to level, read as a pitch at full confidence: 7999 Hz as 2666 Hz at 48 kHz,
    9000 Hz as 2250 Hz at 44.1 kHz, 5000 Hz as 1000 Hz at 192 kHz. Under a tenth of its energy lies in that
    band: unvoiced."""
    tr = _core.PitchTracker(sr)
    out = tr.process(tone("sine", f0, sr))
    steady = slice(int(0.1 * tr.frame_rate), None)
    assert not out["voiced"][steady].any(), (sr, f0, np.unique(np.round(out["f0"][steady])))


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_no_pitch_is_reported_outside_fmin_to_fmax(sr):
    """The refinement could carry a period past the range's ends (2100 Hz was read at fmax 2000): every
    reported f0 lies within fmin..fmax, 3% to spare, over a sweep of tones around both ends."""
    for f0 in (35.0, 45.0, 48.0, 52.0, 1950.0, 2000.0, 2080.0, 2100.0, 2200.0, 2300.0, 2400.0):
        for kind in ("sine", "sawtooth"):
            out = _core.PitchTracker(sr).process(tone(kind, f0, sr))
            f = out["f0"][out["voiced"]]
            assert ((f >= 50.0 / 1.03) & (f <= 2000.0 * 1.03)).all(), (sr, f0, kind, f.min(), f.max())


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
@pytest.mark.parametrize("f0", [110.0, 440.0, 1000.0])
def test_bright_tones_in_range_are_still_voiced(sr, f0):
    """The energy check leaves tones in range voiced however bright: a sawtooth with every harmonic up to
    0.45 of the sample rate (at 1000 Hz and 96 kHz, most of its harmonics lie above the search's band)."""
    tr = _core.PitchTracker(sr)
    out = tr.process(tone("sawtooth", f0, sr))
    steady = slice(int(0.1 * tr.frame_rate), None)
    assert out["voiced"][steady].all()
    assert np.abs(cents(out["f0"][steady], f0)).max() < 10.0


@pytest.mark.parametrize("f0", [1100.0, 1400.0, 1600.0, 1800.0])
def test_a_tone_in_range_with_a_weak_fundamental_is_still_read(f0):
    """Its half period dips too (its second harmonic dominates), less deeply than a tone above fmax's: with the
    fundamental 12 dB under the second harmonic it is read at its pitch (the first out-of-range check took
    any dip under the threshold and unvoiced such tones from 1400 Hz on)."""
    sr = 44100
    t = np.arange(sr) / sr
    amps = [10 ** (-12 / 20), 1.0, 0.5, 0.4, 0.3, 0.2]
    x = sum(a * np.sin(2 * np.pi * (k + 1) * f0 * t) for k, a in enumerate(amps) if (k + 1) * f0 < sr / 2)
    tr = _core.PitchTracker(sr)
    out = tr.process((0.3 * x / np.abs(x).max()).astype(np.float32))
    steady = slice(int(0.1 * tr.frame_rate), None)
    assert out["voiced"][steady].all()
    assert np.abs(cents(out["f0"][steady], f0)).max() < 10.0


def test_frames_every_hop_and_default_hop_is_5_ms():
    sr = 44100
    tr = _core.PitchTracker(sr)
    assert tr.hop_length == int(0.005 * sr + 0.5)  # 5 ms, rounded half up
    assert tr.frame_rate == pytest.approx(sr / tr.hop_length)
    out = tr.process(np.zeros(10 * tr.hop_length + 7, np.float32))
    assert len(out["f0"]) == 10
    assert len(tr.process(np.zeros(tr.hop_length - 8, np.float32))["f0"]) == 0
    assert len(tr.process(np.zeros(1, np.float32))["f0"]) == 1
    assert tr.samples == 11 * tr.hop_length
    assert _core.PitchTracker(16000, hop_length=64).hop_length == 64


def test_unvoiced_on_noise_and_silence():
    sr = 44100
    rng = np.random.default_rng(0)
    noise = (0.3 * rng.standard_normal(sr)).astype(np.float32)
    out = _core.PitchTracker(sr).process(noise)
    assert out["voiced"].mean() < 0.02
    assert np.all(out["f0"][~out["voiced"]] == 0)
    for rate in (8000, 16000):  # where dips are also read between the lags
        assert _core.PitchTracker(rate).process(noise[:rate])["voiced"].mean() < 0.02
    out = _core.PitchTracker(sr).process(np.zeros(sr, np.float32))
    assert not out["voiced"].any()
    assert np.all(out["level_db"] <= -119.0)
    quiet = tone("sine", 440.0, sr, amp=1e-4)  # -83 dBFS: below the silence level
    assert not _core.PitchTracker(sr).process(quiet)["voiced"].any()


def test_level_of_a_sine():
    sr = 32000
    out = _core.PitchTracker(sr).process(tone("sine", 440.0, sr, amp=0.5))
    expected = 20 * np.log10(0.5 / np.sqrt(2))
    assert np.abs(out["level_db"][20:] - expected).max() < 0.1


def test_tracks_a_note_change_within_two_coarse_periods():
    sr = 22050
    x = np.concatenate([tone("harmonic", 220.0, sr, 0.5), tone("harmonic", 330.0, sr, 0.5)])
    tr = _core.PitchTracker(sr)
    out = tr.process(x)
    t = frame_times(len(out["f0"]), tr.hop_length, sr)
    after = (t > 0.5 + 0.06) & out["voiced"]
    assert np.abs(cents(out["f0"][after], 330.0)).max() < 10.0


def test_nonfinite_samples_are_replaced_and_counted():
    sr = 16000
    x = tone("sine", 300.0, sr, 1.0)
    x[1000:1010] = np.nan
    x[5000] = np.inf
    x[6000] = -np.inf
    tr = _core.PitchTracker(sr)
    out = tr.process(x)
    assert tr.nonfinite_count == 12
    for k in ("f0", "confidence", "level_db"):
        assert np.isfinite(out[k]).all()
    late = slice(int(0.5 * tr.frame_rate), None)
    assert np.abs(cents(out["f0"][late], 300.0)).max() < 10.0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=24000), min_size=1, max_size=12),
       sr=st.sampled_from(SAMPLE_RATES))
def test_streaming_invariance_bit_identical(cuts, sr):
    rng = np.random.default_rng(1)
    n = 24000
    t = np.arange(n) / sr
    x = (0.3 * np.sin(2 * np.pi * 230 * t * (1 + 0.02 * np.sin(2 * np.pi * 5 * t)))
         + 0.01 * rng.standard_normal(n)).astype(np.float32)
    x[n // 2:n // 2 + 3000] = 0.0  # a silent gap
    assert_split_invariant(lambda: _core.PitchTracker(sr), x, cuts)


def test_reset_restarts_the_stream():
    sr = 16000
    x = tone("harmonic", 200.0, sr)
    tr = _core.PitchTracker(sr)
    a = tr.process(x)
    tr.reset()
    assert tr.samples == 0
    b = tr.process(x)
    for k in a:
        assert np.array_equal(a[k], b[k])


@pytest.mark.parametrize("kwargs, name", [
    (dict(sample_rate=1000), "sample_rate"),
    (dict(sample_rate=float("nan")), "sample_rate"),
    (dict(sample_rate=16000, hop_length=0), "hop_length"),
    (dict(sample_rate=16000, hop_length=5000), "hop_length"),
    (dict(sample_rate=16000, fmin=10.0), "fmin"),
    (dict(sample_rate=16000, fmin=3000.0, fmax=2500.0), "fmin"),
    (dict(sample_rate=16000, fmax=5000.0), "fmax"),
    (dict(sample_rate=16000, threshold=0.0), "threshold"),
    (dict(sample_rate=16000, threshold=1.5), "threshold"),
    (dict(sample_rate=16000, silence_db=10.0), "silence_db"),
    (dict(sample_rate=16000, level_window=1.0), "level_window"),
])
def test_bad_parameters_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        _core.PitchTracker(**kwargs)


def test_bad_block_raises():
    tr = _core.PitchTracker(16000)
    with pytest.raises(ValueError, match="block"):
        tr.process(np.zeros((2, 100), np.float32))


# ------------------------------------------------- periods under 8 samples (high notes at low sample rates)
def _harmonic_tone(f0, sr, seconds=0.4, harmonics=True):
    t = np.arange(int(sr * seconds)) / sr
    x = np.zeros_like(t)
    for k in range(1, (int(0.45 * sr / f0) if harmonics else 1) + 1):
        x += np.sin(2 * np.pi * k * f0 * t) / k
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def _cents(tracker, x, f0):
    out = tracker.process(x)
    f = out["f0"][len(out["f0"]) // 2:]
    assert np.all(f > 0)
    return 1200 * np.log2(f / f0)


@pytest.mark.parametrize("sr, f0, harmonics", [(8000, 1882.4, False), (8000, 1855.1, True), (8000, 1706.7, True),
                                               (8000, 1523.8, True), (8000, 1196.3, True), (11025, 1940.0, True),
                                               (12000, 1800.0, True)])
def test_pitch_of_periods_under_eight_samples(sr, f0, harmonics):
    # periods of 4-7 samples took the parabola instead of the Lanczos interpolation: 10-30 cents off
    # (a sweep of periods 4-9 in 1/16 samples: worst median 7.4 cents after, 29 before)
    err = _cents(_core.PitchTracker(float(sr), fmax=2000.0), _harmonic_tone(f0, sr, harmonics=harmonics), f0)
    assert abs(np.median(err)) < 8.0 and np.max(np.abs(err)) < 10.0, (np.median(err), np.max(np.abs(err)))


def test_pitch_of_periods_from_eight_samples_unchanged():
    err = _cents(_core.PitchTracker(16000.0, fmax=2000.0), _harmonic_tone(1882.4, 16000), 1882.4)
    assert np.max(np.abs(err)) < 0.5
