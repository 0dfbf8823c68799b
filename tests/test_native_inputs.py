"""Inputs at the edges of the native bindings: dtypes that came through pickle, misaligned buffers,
integer or complex samples, values far beyond full scale, overflowing sizes, and one object used
from two threads at once (the bindings release the GIL while an object works)."""

import pickle
import threading

import numpy as np
import pytest

from rtclassify import _core


def _frontend(n_fft=512, hop=256, n_mels=64):
    return _core.MelFrontend(16000, n_fft, hop, n_mels)


def test_a_dtype_that_came_through_pickle_is_accepted():
    x = np.random.default_rng(0).standard_normal(2048).astype(np.float32) * 0.1
    y = pickle.loads(pickle.dumps(x))
    assert y.dtype is not np.dtype(np.float32)  # another object with the same meaning
    out = pickle.loads(pickle.dumps(np.zeros((16, 64), np.float32)))
    a = _frontend().push(x)
    b = _frontend().push(y, out=out)
    np.testing.assert_array_equal(a, b)


def test_a_misaligned_buffer_gives_the_frames_of_an_aligned_one():
    x = np.random.default_rng(1).standard_normal(4096).astype(np.float32) * 0.1
    raw = np.zeros(x.nbytes + 1, np.uint8)
    raw[1:] = np.frombuffer(x.tobytes(), np.uint8)
    y = np.frombuffer(raw.tobytes(), np.float32, count=x.size, offset=1)
    assert not y.flags.aligned
    np.testing.assert_array_equal(_frontend().push(y), _frontend().push(x))
    t1, t2 = _core.PitchTracker(16000), _core.PitchTracker(16000)
    np.testing.assert_array_equal(t1.process(y)["f0"], t2.process(x)["f0"])


def test_samples_far_beyond_full_scale_give_finite_frames():
    for v in (3e38, 1e30, -3e38):
        f = _frontend()
        m = f.push(np.full(2048, v, np.float32))
        assert m.shape == (7, 64) and np.isfinite(m).all()
        assert f.nonfinite_replaced == 0
        m64 = _frontend().push(np.full(2048, v, np.float64))
        assert np.isfinite(m64).all()
    # ordinary levels are not touched by the bound
    x = np.random.default_rng(2).standard_normal(2048).astype(np.float32)
    assert np.abs(_frontend().push(x) - _frontend().push(x.astype(np.float64))).max() < 1e-3


def test_frames_for_does_not_wrap_on_huge_counts():
    f = _frontend(512, 256)
    f.push(np.zeros(300, np.float32))  # 300 pending samples
    assert f.frames_for(211) == 0 and f.frames_for(212) == 1
    assert f.frames_for(2**64 - 1) == (2**64 - 1 - 212) // 256 + 1


@pytest.mark.parametrize("bad", [np.array([16384, -32768], np.int16), np.array([1, 2], np.int32),
                                 np.array([1 + 1j]), np.array([True, False])])
def test_integer_or_complex_samples_are_refused_where_they_would_be_misread(bad):
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.SampleRing(64).push(bad)
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.PitchTracker(16000).process(bad)
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.TechniqueTracker(16000).process(bad)
    # ... while MelFrontend documents int16 (scaled by 1/32768)
    if bad.dtype == np.int16:
        assert _frontend().push(np.zeros(600, np.int16)).shape == (1, 64)


def test_lists_and_float64_still_pass():
    r = _core.SampleRing(64)
    r.push([0.25, -0.5])
    r.push(np.array([1.0]))
    np.testing.assert_array_equal(r.pop(8), np.array([0.25, -0.5, 1.0], np.float32))
    assert _core.VibratoTracker(100.0).process([0, 220, 221])["on"].shape == (3,)


@pytest.mark.parametrize("hop, err", [(80.5, TypeError), ("160", TypeError), (True, TypeError),
                                      (2**40, ValueError), (2**70, ValueError), (0, ValueError)])
def test_bad_hop_length_is_named(hop, err):
    for cls in (_core.PitchTracker, _core.TechniqueTracker):
        with pytest.raises(err, match="hop_length"):
            cls(16000, hop_length=hop)
    assert _core.PitchTracker(16000, hop_length=np.int64(160)).hop_length == 160


@pytest.mark.parametrize("make, err, said", [
    (lambda: _core.MelFrontend(16000, 512.5, 256, 64), TypeError, "n_fft: must be a whole number (got 512.5 (float))"),
    (lambda: _core.MelFrontend("16000", 512, 256, 64), TypeError, "sample_rate: must be a real number (got '16000' (str))"),
    (lambda: _core.MelFrontend(16000, 512, 256, True), TypeError, "n_mels: must be a whole number (got True (bool))"),
    (lambda: _core.MelFrontend(16000, 512, 256, 2**40), ValueError, "n_mels: is far too large"),
    (lambda: _core.MelFrontend(16000, 512, 256, 64, fmax="8000"), TypeError, "fmax: must be a real number"),
    (lambda: _core.MelFrontend(16000, 512, 256, 64, power=2j), TypeError, "power: must be a real number"),
    (lambda: _core.MelFrontend(16000, 512, 256, 64, win_length=0), ValueError, "win_length: must be positive"),
    (lambda: _core.MelFrontend(16000, 512, [256], 64), TypeError, "hop_length: must be a whole number (got [256] (list))"),
    (lambda: _core.Resampler(48000.5, 16000), TypeError, "in_rate: must be a whole number (got 48000.5 (float))"),
    (lambda: _core.Resampler(48000, "16k"), TypeError, "out_rate: must be a whole number"),
    (lambda: _core.Resampler(48000, 16000, attenuation_db=None), TypeError, "attenuation_db: must be a real number"),
    (lambda: _core.SampleRing(64.0), TypeError, "capacity: must be a whole number (got 64.0 (float))"),
    (lambda: _core.SampleRing(-1), ValueError, "capacity: must be from 1 to 1073741824 (got -1 (int))"),
    (lambda: _core.SampleRing(2**31), ValueError, "capacity: must be from 1 to 1073741824"),
    (lambda: _core.PitchTracker("16000"), TypeError, "sample_rate: must be a real number (got '16000' (str))"),
    (lambda: _core.PitchTracker(16000, fmax=None), TypeError, "fmax: must be a real number (got None (NoneType))"),
    (lambda: _core.TechniqueTracker(16000, fmin="50"), TypeError, "fmin: must be a real number"),
    (lambda: _core.VibratoTracker([200.0]), TypeError, "frame_rate: must be a real number"),
    (lambda: _core.TremoloTracker(True), TypeError, "frame_rate: must be a real number (got True (bool))"),
    (lambda: _core.TechniqueTracker(16000, threshold="0.2"), TypeError, "threshold: must be a real number"),
    (lambda: _core.TechniqueTracker(16000, harmonics=4.0), TypeError,
     "harmonics: must be a whole number (got 4.0 (float))"),
    (lambda: _core.TechniqueTracker(16000, compensate="no"), TypeError,
     "compensate: must be True or False (got 'no' (str))"),
    (lambda: _core.TechniqueTracker(16000, tremolo_under_vibrato=1), TypeError,
     "tremolo_under_vibrato: must be True or False (got 1 (int))"),
    (lambda: _core.TechniqueTracker(16000, vibrato={"rate_min": "4"}), TypeError,
     "vibrato.rate_min: must be a real number (got '4' (str))"),
    (lambda: _core.TechniqueTracker(16000, tremolo={"hold_frames": 2.5}), TypeError,
     "tremolo.hold_frames: must be a whole number (got 2.5 (float))"),
    (lambda: _core.TechniqueTracker(16000, vibrato="slow"), TypeError, "vibrato: must be a dict"),
    (lambda: _core.TechniqueTracker(16000, treshold=0.2), ValueError,
     "TechniqueTracker: unknown technique parameter 'treshold'"),
    (lambda: _core.TechniqueTracker(16000, vibrato={"rate": 5}), ValueError, "vibrato: unknown vibrato parameter 'rate'"),
    (lambda: _core.VibratoTracker(200.0, extent_on=None), TypeError, "extent_on: must be a real number"),
    # beyond a C int: not "from -2147483648 to 2147483647", which would read as the valid range
    (lambda: _core.TremoloTracker(200.0, onset_frames=2**40), ValueError,
     "onset_frames: is far too large (got 1099511627776 (int))"),
    (lambda: _core.TechniqueTracker(16000, vibrato={"hold_frames": -2**40}), ValueError,
     "vibrato.hold_frames: is far too negative"),
    (lambda: _core.MelFrontend(16000, 512, 256, 64, window=None), TypeError,
     "window: must be 'hann', 'hamming', 'blackman' or 'rect' (got None (NoneType))"),
    (lambda: _core.MelFrontend(16000, 512, 256, 64, mel_scale=b"htk"), TypeError,
     "mel_scale: must be 'htk' or 'slaney' (got b'htk' (bytes))"),
    (lambda: _core.MelFrontend(16000, 512, 256, 64, norm=1), TypeError, "norm: must be None or 'slaney' (got 1 (int))"),
    (lambda: _core.MelFrontend(16000, 512, 256, 64, log=10), TypeError, "log: must be 'db', 'ln' or None (got 10 (int))"),
])
def test_bad_constructor_arguments_are_named(make, err, said):
    # pybind's own conversion would say only "incompatible constructor arguments" and print the signature
    with pytest.raises(err) as info:
        make()
    assert str(info.value).startswith(said), str(info.value)


def test_the_frontends_text_arguments_none_and_names():
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(4096) / 16000)).astype(np.float32)
    power = _core.MelFrontend(16000, 512, 256, 64, log=None, norm=None)
    db = _core.MelFrontend(16000, 512, 256, 64, log="db", norm="slaney", window="hamming", mel_scale="slaney")
    assert (power.config["log"], power.config["norm"]) == (None, None)
    assert (db.config["log"], db.config["norm"], db.config["window"], db.config["mel_scale"]) == (
        "db", "slaney", "hamming", "slaney")
    assert power.push(x).min() >= 0.0  # power, not decibels
    assert db.push(x).min() < 0.0


def test_numpy_numbers_are_taken_as_constructor_arguments():
    f = _core.MelFrontend(np.float32(16000), np.int64(512), np.int32(256), np.int16(64), fmax=np.float64(8000))
    assert f.push(np.zeros(512, np.float32)).shape == (1, 64)
    assert _core.Resampler(np.int64(48000), 16000, attenuation_db=np.float32(100)).process(
        np.zeros(480, np.float32)).dtype == np.float32
    assert _core.SampleRing(np.uint16(64)).capacity == 64
    assert _core.PitchTracker(np.float32(16000), fmin=np.int64(60)).hop_length == 80
    assert _core.VibratoTracker(np.float64(200.0)).frame_rate == 200.0
    t = _core.TechniqueTracker(16000, harmonics=np.int32(3), compensate=np.bool_(False), threshold=np.float32(0.25),
                               vibrato={"hold_frames": np.int64(3), "rate_min": 4})
    assert (t.config["harmonics"], t.config["compensate"], t.config["vibrato"]["hold_frames"]) == (3, False, 3)
    assert t.config["vibrato"]["rate_min"] == 4.0 and abs(t.config["threshold"] - 0.25) < 1e-7


def test_batched_stream_blocks_that_overflow_are_refused():
    cfg = _frontend().config
    with pytest.raises(ValueError, match="blocks"):
        _core._internal.batched_stream_cpu(np.zeros((1, 1000), np.float32), [2**64 - 1, 2], cfg)


def _refused_while_busy(long_call, short_call):
    """Runs long_call in a thread and short_call here until one is refused or long_call ends."""
    started, done = threading.Event(), threading.Event()

    def worker():
        started.set()
        try:
            long_call()
        finally:
            done.set()

    th = threading.Thread(target=worker)
    th.start()
    started.wait()
    refused = 0
    while not done.is_set():
        try:
            short_call()
        except RuntimeError as e:
            assert "another thread" in str(e)
            refused += 1
            break
    th.join()
    return refused


def test_one_frontend_used_from_two_threads_is_refused_not_corrupted():
    f = _core.MelFrontend(16000, 4096, 16, 128)  # a slow push: one 4096-point frame per 16 samples
    big = np.random.default_rng(3).standard_normal(400_000).astype(np.float32) * 0.1
    small = np.zeros(4096, np.float32)
    accepted = []

    def short():
        f.push(small)
        accepted.append(small.size)

    assert _refused_while_busy(lambda: f.push(big), short) == 1
    # the state stayed whole: every accepted sample counted, and the object is usable again
    assert f.samples_consumed == big.size + sum(accepted)
    assert f.push(small).shape[1] == 128


def test_one_tracker_and_one_ring_side_used_from_two_threads_are_refused():
    t = _core.PitchTracker(16000, hop_length=1)
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(160_000) / 16000)).astype(np.float32)
    assert _refused_while_busy(lambda: t.process(x), lambda: t.process(x[:64])) == 1
    assert t.process(x[:1600])["f0"].shape == (1600,)

    r = _core.SampleRing(2**22)
    block = np.zeros(2**21, np.float32)  # large blocks release the GIL
    got = _refused_while_busy(lambda: [r.push(block) for _ in range(40)], lambda: r.push(block))
    assert got == 1
    # a producer and a consumer at once is the ring's purpose, and stays allowed
    r2 = _core.SampleRing(2**22)
    assert _refused_while_busy(lambda: [r2.push(block) for _ in range(20)], lambda: r2.pop(1024)) == 0


def test_a_reset_from_another_thread_is_refused_while_the_object_works():
    """reset() takes the object like push/process do: it would otherwise change the state under a push that runs
    without the GIL."""
    f = _core.MelFrontend(16000, 4096, 16, 128)
    big = np.random.default_rng(3).standard_normal(400_000).astype(np.float32) * 0.1
    assert _refused_while_busy(lambda: f.push(big), f.reset) == 1
    assert f.samples_consumed == big.size  # no reset ran during the push

    r = _core.Resampler(192000, 16000)
    x = np.random.default_rng(4).standard_normal(192000 * 60).astype(np.float32) * 0.1
    assert _refused_while_busy(lambda: r.process(x), r.reset) == 1
    assert r.samples_in == x.size

    t = _core.PitchTracker(16000, hop_length=1)
    s = (0.3 * np.sin(2 * np.pi * 220 * np.arange(160_000) / 16000)).astype(np.float32)
    assert _refused_while_busy(lambda: t.process(s), t.reset) == 1
    t.reset()  # once the push is over, reset works


@pytest.mark.parametrize("call, err, said", [
    (lambda f, r: f.push(None), TypeError, "block: must be an array of samples"),
    (lambda f, r: f.push(np.float32(1.0)), ValueError, "block: must be 1-D"),
    (lambda f, r: f.frames_for(-1), ValueError, "n: must be 0 or more"),
    (lambda f, r: f.frames_for(2.5), TypeError, "n: must be a whole number"),
    (lambda f, r: r.pop(-1), ValueError, "n: must be 0 or more"),
    (lambda f, r: r.pop(2.5), TypeError, "n: must be a whole number"),
    (lambda f, r: r.pop("8"), TypeError, "n: must be a whole number"),
    (lambda f, r: _core.Resampler(48000, 16000).max_output(-1), ValueError, "n: must be 0 or more"),
    (lambda f, r: _core.Resampler(48000, 16000).max_output(1.5), TypeError, "n: must be a whole number"),
])
def test_wrong_arguments_of_the_per_block_calls_are_named(call, err, said):
    """Not pybind11's 'incompatible function arguments' and its list of signatures; the object goes on."""
    f, r = _frontend(), _core.SampleRing(64)
    with pytest.raises(err, match=said):
        call(f, r)
    assert f.push([0.0] * 600).shape == (1, 64)  # a list, as the trackers and the ring take
    r.push(np.ones(3, np.float32))
    assert r.pop(np.int64(8)).shape == (3,)
