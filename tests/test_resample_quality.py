"""Streams resampled with quality "AUTO": the native resampler, or where it cannot take the rates, MQ or HQ,
whichever holds samples back less at the stream's rates."""

from __future__ import annotations

import numpy as np
import pytest

from rtclassify.audio.resample import AUTO, NATIVE, StreamResampler, measure_stream_latency, resample, stream_quality
from rtclassify.errors import ParameterError


@pytest.mark.parametrize("rate", [8000, 44100, 48000, 88200, 96000, 176400, 192000, 22050])
def test_auto_picks_the_native_resampler(rate):
    assert stream_quality(rate, 16000, AUTO) == NATIVE
    assert stream_quality(rate, 16000, "auto") == NATIVE
    assert stream_quality(rate, 16000, "vhq") == "VHQ"  # an explicit quality is kept
    auto, hq = StreamResampler(rate, 16000, AUTO, 1024), StreamResampler(rate, 16000, "HQ", 1024)
    assert auto.quality == NATIVE and hq.quality == "HQ"
    assert auto.latency_s < 0.2 * hq.latency_s


@pytest.mark.parametrize("rate", [44101, 96001])
def test_auto_falls_back_to_the_shorter_of_mq_and_hq(rate):
    """A ratio the native filter cannot take (16000/44101) goes to soxr."""
    hq = measure_stream_latency(rate, 16000, "HQ", 256)
    mq = measure_stream_latency(rate, 16000, "MQ", 256)
    assert stream_quality(rate, 16000, AUTO) == ("MQ" if mq < hq else "HQ")
    rs = StreamResampler(rate, 16000, AUTO, 256)
    assert rs.quality in ("MQ", "HQ") and len(rs.process(np.zeros(rate, np.float32), last=True)) > 15900
    with pytest.raises(ParameterError, match=f"NATIVE cannot convert {rate} Hz"):
        StreamResampler(rate, 16000, "native", 256)


def test_native_and_soxr_streams_agree_and_split_alike():
    """From 48 kHz, a stream through the native resampler and one through soxr's HQ give the same signal to
    -70 dB below 5 kHz (they differ in the transition band above 7.3 kHz), and any split gives the same output."""
    rate = 48000
    rng = np.random.default_rng(4)
    t = np.arange(rate * 2) / rate
    x = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (97, 440, 1250, 2500, 4900)).astype(np.float32)
    outs = {}
    for q in (NATIVE, "HQ"):
        for size in (1024, 333):
            rs = StreamResampler(rate, 16000, q, size)
            outs[q, size] = np.concatenate([rs.process(x[i:i + size]) for i in range(0, len(x), size)]
                                           + [rs.process(np.zeros(0, np.float32), last=True)])
    assert np.array_equal(outs[NATIVE, 1024], outs[NATIVE, 333])
    a, b = outs[NATIVE, 1024][2000:-2000], outs["HQ", 1024][2000:-2000]
    assert 20 * np.log10(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b ** 2))) < -70


def test_mq_and_hq_streams_agree_in_the_passband():
    """From 96 kHz: the two outputs differ by less than -60 dB of the signal, aliases included (tones above
    8 kHz must vanish from both)."""
    rate = 96000
    t = np.arange(rate * 2) / rate
    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 6000 * t) + 0.3 * np.sin(2 * np.pi * 20000 * t)
         + 0.05 * rng.normal(size=len(t))).astype(np.float32)
    outs = {}
    for q in ("MQ", "HQ"):
        rs = StreamResampler(rate, 16000, q, 1024)
        outs[q] = np.concatenate([rs.process(x[i:i + 1024]) for i in range(0, len(x), 1024)] + [rs.process(
            np.zeros(0, np.float32), last=True)])
    n = min(len(outs["MQ"]), len(outs["HQ"]))
    a, b = outs["MQ"][2000:n - 2000], outs["HQ"][2000:n - 2000]
    assert 20 * np.log10(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b ** 2))) < -60


def test_bad_quality_names_auto_among_the_choices():
    with pytest.raises(ParameterError, match="QQ, LQ, MQ, HQ, VHQ, NATIVE, AUTO"):
        StreamResampler(96000, 16000, "best", 256)
    with pytest.raises(ParameterError, match="QQ, LQ, MQ, HQ, VHQ \\(got"):  # one-shot resampling has no latency
        resample(np.zeros(100, np.float32), 96000, 16000, quality="auto")


def test_sessions_default_to_auto(tmp_path):
    """A session from 96 or 48 kHz declares at least 30 ms less latency than with soxr's HQ, and its model
    outputs match HQ's to 1e-3."""
    pytest.importorskip("onnx", reason="the test bundle is built with the onnx package")
    import _rtc_bundle as tb
    from _streaming import stream_all

    from rtclassify.model.classifier import Classifier

    clf = Classifier.load(tb.write_bundle(tmp_path / "bundle"))
    rng = np.random.default_rng(1)
    for rate in (96000, 48000):
        t = np.arange(rate * 3) / rate
        x = (0.3 * np.sin(2 * np.pi * 330 * t) * (t % 1 < 0.6) + 0.02 * rng.normal(size=len(t))).astype(np.float32)
        auto, hq = clf.stream(sample_rate=rate), clf.stream(sample_rate=rate, resample_quality="HQ")
        _, fa = stream_all(auto, x, [1024])
        _, fh = stream_all(hq, x, [1024])
        pa = np.array([f.probs for f in fa])
        ph = np.array([f.probs for f in fh])
        assert pa.shape == ph.shape
        assert (hq.latency_samples - auto.latency_samples) / rate > (0.07 if rate == 96000 else 0.03)
        assert np.abs(pa - ph).max() < 1e-3
