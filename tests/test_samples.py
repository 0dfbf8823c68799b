"""Every reader of samples takes the same dtypes and refuses the same ones, with one message
(rtclassify.audio.samples.check_samples_dtype)."""

import numpy as np
import pytest

from rtclassify import _core
from rtclassify.audio.resample import resample
from rtclassify.audio.samples import I16_SCALE, check_samples_dtype
from rtclassify.audio.sources import ClipSource
from rtclassify.detect.techniques import TechniqueDetector
from rtclassify.errors import ParameterError
from rtclassify.learn.examples import _mono


def _tone(n=16000, rate=16000):
    return (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(n) / rate)).astype(np.float32)


def test_helper_accepts_floats_and_int16_and_widens_other_floats():
    x = _tone(100)
    assert check_samples_dtype(x, "x") is x
    assert check_samples_dtype(x.astype(np.float64), "x").dtype == np.float64
    assert check_samples_dtype(x.astype(np.int16), "x").dtype == np.int16
    h = check_samples_dtype(x.astype(np.float16), "x")
    assert h.dtype == np.float32 and np.array_equal(h, x.astype(np.float16).astype(np.float32))
    be = check_samples_dtype(x.astype(">f4"), "x")
    assert be.dtype.isnative and np.array_equal(be, x)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int64])
def test_helper_hints_at_scaling_integer_pcm(dtype):
    with pytest.raises(ParameterError, match=r"x must be float32, float64 or int16 samples .*int32 / 2\*\*31"):
        check_samples_dtype(np.zeros(8, dtype), "x")
    with pytest.raises(ParameterError, match=r"x must be float32 or float64 samples .*int16 / 32768"):
        check_samples_dtype(np.zeros(8, dtype), "x", int16=False)


@pytest.mark.parametrize("bad", [np.zeros(8, bool), np.zeros(8, complex), np.array(["a"] * 8)])
def test_helper_refuses_non_samples_without_the_pcm_hint(bad):
    with pytest.raises(ParameterError) as err:
        check_samples_dtype(bad, "x")
    assert "PCM" not in str(err.value)


def test_readers_refuse_int32_with_the_same_message(clf):
    bad = np.zeros(4000, np.int32)
    msgs = []
    for call in (lambda: clf.tag(bad, 16000), lambda: clf.stream(16000).process(bad),
                 lambda: clf.multistream([0], 16000).process(bad), lambda: ClipSource(bad, 16000),
                 lambda: _mono(bad, "audio")):
        with pytest.raises(ParameterError) as err:
            call()
        msgs.append(str(err.value))
    assert len(set(msgs)) == 2, msgs  # "audio ..." and "block ..." (the sessions')
    assert all("scale integer PCM to [-1, 1] first" in m for m in msgs)


def test_float_only_readers_name_int16_scaling():
    bad = (_tone(4000) * 32767).astype(np.int16)
    for call in (lambda: resample(bad, 16000, 8000), lambda: TechniqueDetector(16000).track(bad)):
        with pytest.raises(ParameterError, match="int16 / 32768"):
            call()
    with pytest.raises(TypeError) as native:
        _core.TechniqueTracker(16000).process(bad)
    with pytest.raises(ParameterError) as py:
        TechniqueDetector(16000).track(bad)
    assert str(native.value) == str(py.value)  # the binding words it as the helper does


def test_float16_reads_as_float32_everywhere(clf):
    x = _tone()
    h = x.astype(np.float16)
    ref = h.astype(np.float32)
    assert np.array_equal(clf.tag(h, 16000).probs, clf.tag(ref, 16000).probs)
    for make, block in ((lambda got: clf.stream(16000, on_frame=got.append), lambda a: a),
                        (lambda got: clf.multistream([0], 16000, on_frame=lambda *a: got.append(a[-1])), lambda a: a[:, None])):
        runs = []
        for a in (h, ref):
            got = []
            s = make(got)
            s.process(block(a))
            s.flush()
            runs.append([np.array(f.probs) for f in got])
        assert len(runs[0]) == len(runs[1]) > 0
        assert all(np.array_equal(a, b) for a, b in zip(*runs))
    assert np.array_equal(ClipSource(h, 16000)._audio, ClipSource(ref, 16000)._audio)
    assert np.array_equal(resample(h, 16000, 8000), resample(ref, 16000, 8000))
    assert np.array_equal(_mono(h, "a"), ref)


def test_int16_is_scaled_alike():
    pcm = (_tone(1000) * 20000).astype(np.int16)
    want = pcm.astype(np.float32) * I16_SCALE
    assert np.array_equal(ClipSource(pcm, 16000)._audio[:, 0], want)
    assert np.array_equal(_mono(pcm, "a"), want)
