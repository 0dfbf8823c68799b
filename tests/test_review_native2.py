"""Native core findings of the seventeenth session's review: each test failed before its fix."""

import numpy as np
import pytest

import rtclassify
from rtclassify import _core


def _tone(f0, sr, seconds=0.4, harmonics=True):
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
    err = _cents(_core.PitchTracker(float(sr), fmax=2000.0), _tone(f0, sr, harmonics=harmonics), f0)
    assert abs(np.median(err)) < 8.0 and np.max(np.abs(err)) < 10.0, (np.median(err), np.max(np.abs(err)))


def test_pitch_of_periods_from_eight_samples_unchanged():
    err = _cents(_core.PitchTracker(16000.0, fmax=2000.0), _tone(1882.4, 16000), 1882.4)
    assert np.max(np.abs(err)) < 0.5


def test_frontend_out_overlapping_the_block_is_refused():
    rng = np.random.default_rng(1)
    buf = rng.standard_normal(29 * 64 + 4096).astype(np.float32) * 0.1
    fe = rtclassify.MelFrontend(16000, 512, 256, 64)
    out = buf[-29 * 64:].reshape(29, 64)  # over samples the push has not read yet
    with pytest.raises(ValueError, match="out: overlaps the block"):
        fe.push(buf, out=out)
    assert fe.frames_emitted == 0
    own = np.empty((29, 64), np.float32)
    assert np.array_equal(fe.push(buf, out=own), rtclassify.MelFrontend(16000, 512, 256, 64).push(buf))


@pytest.mark.parametrize("dtype", [">i2", ">f4", ">f8"])
def test_frontend_takes_byte_swapped_blocks(dtype):
    x = _tone(440.0, 16000)
    native = (x * 32767).astype(np.int16) if dtype == ">i2" else x.astype(dtype[1:].replace("f", "float").replace(
        "float4", "float32").replace("float8", "float64"))
    swapped = native.astype(dtype)
    a = rtclassify.MelFrontend(16000, 512, 256, 64).push(swapped)
    b = rtclassify.MelFrontend(16000, 512, 256, 64).push(native)
    assert a.shape[0] > 0 and np.array_equal(a, b)


@pytest.mark.parametrize("make, said", [
    (lambda: rtclassify.MelFrontend(16000, 0, 256, 64), "n_fft: must be positive (got 0 (int))"),
    (lambda: rtclassify.MelFrontend(16000, 2**40, 256, 64), "n_fft: is far too large"),
    (lambda: rtclassify.MelFrontend(16000, 2**70, 256, 64), "n_fft: is far too large"),
    (lambda: rtclassify.MelFrontend(16000, -2**70, 256, 64), "n_fft: must be positive"),
    (lambda: _core.PitchTracker(16000.0, hop_length=0), "hop_length: must be positive"),
    (lambda: rtclassify.MelFrontend(16000, 512, 256, 64, fmax=0.0), "fmax: must be positive or None (got 0.0"),
    (lambda: rtclassify.MelFrontend(16000, 512, 256, 64, fmax=float("nan")), "fmax: must be positive or None"),
])
def test_size_and_fmax_messages_say_what_is_wrong(make, said):
    with pytest.raises(ValueError) as err:
        make()
    assert said in str(err.value)
    assert "2147483647" not in str(err.value)
