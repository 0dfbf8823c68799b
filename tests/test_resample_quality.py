"""Streams resampled with quality "AUTO": MQ or HQ, whichever holds samples back less at the stream's rates."""

from __future__ import annotations

import numpy as np
import pytest

from rtclassify.audio.resample import AUTO, StreamResampler, measure_stream_latency, resample, stream_quality
from rtclassify.errors import ParameterError


@pytest.mark.parametrize("rate", [44100, 48000, 88200, 96000, 176400, 192000, 22050])
def test_auto_picks_the_shorter_of_mq_and_hq(rate):
    hq = measure_stream_latency(rate, 16000, "HQ", 256)
    mq = measure_stream_latency(rate, 16000, "MQ", 256)
    assert stream_quality(rate, 16000, AUTO) == ("MQ" if mq < hq else "HQ")
    assert stream_quality(rate, 16000, "auto") == stream_quality(rate, 16000, AUTO)
    assert stream_quality(rate, 16000, "vhq") == "VHQ"  # an explicit quality is kept


def test_auto_halves_the_delay_from_96_and_192_khz_and_keeps_44_and_48():
    for rate in (96000, 192000):
        auto, hq = StreamResampler(rate, 16000, AUTO, 1024), StreamResampler(rate, 16000, "HQ", 1024)
        assert auto.quality == "MQ" and auto.latency_s < 0.6 * hq.latency_s
    for rate in (44100, 48000):
        assert StreamResampler(rate, 16000, AUTO, 1024).quality == "HQ"


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
    with pytest.raises(ParameterError, match="QQ, LQ, MQ, HQ, VHQ, AUTO"):
        StreamResampler(96000, 16000, "best", 256)
    with pytest.raises(ParameterError, match="QQ, LQ, MQ, HQ, VHQ \\(got"):  # one-shot resampling has no latency
        resample(np.zeros(100, np.float32), 96000, 16000, quality="auto")


def test_sessions_default_to_auto(tmp_path):
    """A session from 96 kHz declares about 41 ms less latency than with HQ, and its model outputs match HQ's
    (the 16 kHz input differs by less than -60 dB); from 48 kHz nothing changes, bit for bit."""
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
        if rate == 96000:
            assert (hq.latency_samples - auto.latency_samples) / rate > 0.035
            assert np.abs(pa - ph).max() < 1e-3
        else:
            assert auto.latency_samples == hq.latency_samples and np.array_equal(pa, ph)
