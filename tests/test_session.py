"""StreamSession: streaming invariance, timing, flush/reset, block validation, counters."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402
from _streaming import stream_all  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rtclassify import MelFrontend  # noqa: E402
from rtclassify.detect.events import TagOff, TagOn  # noqa: E402
from rtclassify.errors import ParameterError  # noqa: E402
from rtclassify.model.classifier import Classifier  # noqa: E402


@pytest.fixture(scope="module")
def signals():
    return {sr: tb.demo_signal(sr) for sr in (16000, 44100, 48000)}


def test_reference_windows(clf, signals):
    """The session's outputs equal the backend run on windows built independently from the frontend's frames."""
    x = signals[16000]
    b = clf.bundle
    mel = MelFrontend(**b.frontend).push(x)
    silence = MelFrontend(**b.frontend).push(np.zeros(b.n_fft, np.float32))[0]
    W, L, H = b.window_frames, b.lookahead_frames, b.hop_frames
    padded = np.concatenate([np.tile(silence, (W - 1, 1)), mel])  # frame f at row f + W - 1
    triggers = np.arange(H - 1 + L, len(mel), H)
    windows = np.stack([padded[t:t + W].T for t in triggers]).astype(np.float32)
    expected = clf.backend.run(windows)
    s = clf.stream(sample_rate=16000, max_block=1000, level_rate=0)
    _, frames = stream_all(s, x, [1000])
    assert len(frames) == len(triggers)
    np.testing.assert_array_equal(np.stack([f.probs for f in frames]), expected)
    idx = triggers - L
    assert [f.index for f in frames] == idx.tolist()
    np.testing.assert_allclose([f.time for f in frames], (idx * b.hop_length + b.n_fft / 2) / b.sample_rate)
    # the first windows are padded with the frontend's silence value: silence gives the silence output
    silent = clf.backend.run(np.tile(silence[:, None], (1, 1, W)).astype(np.float32))
    np.testing.assert_array_equal(frames[0].probs, silent[0])


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_block_splits_match_tag(clf, signals, sr):
    x = signals[sr]
    ref = clf.tag(x, sr, level_rate=None)
    rng = np.random.default_rng(sr)
    for sizes in ([1024], [1, 7, 333, 4096, 0, 50], rng.integers(0, 3000, 64).tolist(), [len(x)]):
        s = clf.stream(sample_rate=sr, max_block=1024)
        events, frames = stream_all(s, x, sizes)
        assert events == ref.events
        probs = np.stack([f.probs for f in frames])
        assert probs.dtype == np.float32
        np.testing.assert_array_equal(probs, ref.probs)
        np.testing.assert_array_equal(np.stack([f.active for f in frames]), ref.active)
        np.testing.assert_array_equal([f.time for f in frames], ref.times)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=40).filter(any),
       dtype=st.sampled_from(["float32", "float64", "int16"]), sr=st.sampled_from([16000, 44100]))
def test_any_split_any_dtype_same_as_tag(clf, signals, sizes, dtype, sr):
    x = signals[sr]
    if dtype == "int16":
        x = np.round(x * 32767).astype(np.int16)
    else:
        x = x.astype(dtype)
    ref = clf.tag(x, sr)
    s = clf.stream(sample_rate=sr, max_block=2048, level_rate=0)
    events, frames = stream_all(s, x, sizes)
    assert events == ref.events
    np.testing.assert_array_equal(np.stack([f.probs for f in frames]), ref.probs)


class CountingBackend:
    """The classifier's backend, counting calls and windows."""

    def __init__(self, backend):
        self.backend, self.calls, self.windows = backend, 0, 0

    def run(self, windows):
        self.calls += 1
        self.windows += windows.shape[0]
        return self.backend.run(windows)


@pytest.mark.parametrize("sr", [16000, 44100])
def test_batched_session_decides_the_same_outputs_in_fewer_calls(clf, signals, sr):
    """batch > 1: every due window of a block in one backend call, outputs decided in the same order and times."""
    x = signals[sr]
    ref_events, ref = stream_all(clf.stream(sample_rate=sr, max_block=4096, level_rate=None, techniques=True), x,
                                 [3000])
    for batch, sizes, max_block in ((3, [3000], 4096), (16, [1, 4096, 77], 4096), (16, [len(x)], len(x))):
        counting = CountingBackend(clf.backend)
        seen = []
        s = Classifier(clf.bundle, counting).stream(sample_rate=sr, max_block=max_block, level_rate=None,
                                                    techniques=True, batch=batch, on_frame=seen.append)
        events, frames = stream_all(s, x, sizes)
        assert counting.windows == len(ref) == len(seen) == s.counters["hops"]
        if max_block == len(x):  # one block: full batches, then the rest and the resampler's tail
            assert counting.calls <= math.ceil(len(ref) / batch) + 1
        else:
            assert counting.calls < len(ref)
        # tag and technique events each in the same order (how they interleave follows the block split)
        for is_tag in (True, False):
            assert [e for e in events if hasattr(e, "tag") == is_tag] == \
                [e for e in ref_events if hasattr(e, "tag") == is_tag]
        assert [f.index for f in frames] == [f.index for f in ref]
        assert [f.time for f in frames] == [f.time for f in ref]
        assert [f.stream_time for f in frames] == [f.stream_time for f in ref]
        assert [f.technique for f in frames] == [f.technique for f in ref]
        np.testing.assert_allclose(np.stack([f.probs for f in frames]), np.stack([f.probs for f in ref]), atol=1e-6)


def test_times_in_input_seconds(clf, signals):
    """The low tone starts at 0.5 s: whatever the input rate, the tag turns on near 0.5 s of input time."""
    onsets = {}
    for sr, x in signals.items():
        r = clf.tag(x, sr)
        on = [t for e, t in zip(r.events, r.event_times) if isinstance(e, TagOn) and e.tag == "low"]
        onsets[sr] = on[0]
        assert r.duration == pytest.approx(len(x) / sr)
        assert r.times[-1] < r.duration
    assert all(0.45 <= t <= 0.6 for t in onsets.values()), onsets
    assert len(set(onsets.values())) == 1  # same frame whatever the input rate


def test_event_stream_time_is_input_consumed(clf, signals):
    """Without resampling, an event's stream_time is exactly the input consumed when it became due."""
    x = signals[16000]
    ref = clf.tag(x, 16000)
    first = next(e for e in ref.events if isinstance(e, TagOn))
    due = int(round(first.stream_time * 16000))
    assert due == first.stream_time * 16000
    s = clf.stream(sample_rate=16000, max_block=4096, level_rate=0)
    assert s.process(x[:due - 1]) == []
    evs = s.process(x[due - 1:due])
    assert first in evs
    assert s.stream_time == first.stream_time
    b = clf.bundle
    o = s.last_frames[0].index
    assert first.stream_time == ((o + b.lookahead_frames) * b.hop_length + b.n_fft) / b.sample_rate


def test_resampled_event_time_includes_resampler_delay(clf, signals):
    s16 = clf.stream(sample_rate=16000, level_rate=0)
    s48 = clf.stream(sample_rate=48000, level_rate=0)
    e16, _ = stream_all(s16, signals[16000], [1024])
    e48, _ = stream_all(s48, signals[48000], [1024])
    on16 = next(e for e in e16 if isinstance(e, TagOn))
    on48 = next(e for e in e48 if isinstance(e, TagOn))
    assert s48.resampler_latency_s > 0
    assert on48.stream_time == pytest.approx(on16.stream_time + s48.resampler_latency_s)


def test_latency_samples(clf):
    b = clf.bundle
    s = clf.stream(sample_rate=16000)
    expect = b.n_fft / 2 + (b.lookahead_frames + b.hop_frames) * b.hop_length
    assert s.latency_samples == expect and isinstance(s.latency_samples, int)
    assert s.counters["latency_algorithmic_ms"] == pytest.approx(1000 * expect / 16000)
    s48 = clf.stream(sample_rate=48000)
    assert s48.latency_samples == math.ceil((expect / 16000 + s48.resampler_latency_s) * 48000 - 1e-9)
    s_hop = clf.stream(sample_rate=16000, hop=0.1)
    assert s_hop.hop_frames == 6 and s_hop.latency_samples == expect + 3 * b.hop_length


def test_hop_override(clf, signals):
    s = clf.stream(sample_rate=16000, hop=0.1, level_rate=0)
    _, frames = stream_all(s, signals[16000], [4096])
    assert s.hop_frames == round(0.1 * 16000 / 256) == 6
    assert s.hop_s == pytest.approx(6 * 256 / 16000)
    np.testing.assert_allclose(np.diff([f.time for f in frames]), s.hop_s)
    assert clf.stream(sample_rate=16000, hop=0.001).hop_frames == 1
    for bad in (0, -0.1, float("nan"), "0.1", 100000.0):
        with pytest.raises(ParameterError, match="hop"):
            clf.stream(hop=bad)
    window_s = clf.bundle.window_frames * clf.bundle.hop_length / 16000
    assert clf.stream(sample_rate=16000, hop=window_s).hop_frames == clf.bundle.window_frames


def test_flush_turns_everything_off_and_reset(clf, signals):
    x = signals[16000]
    cut = int(2.5 * 16000)  # inside the high tone: tags are on
    s = clf.stream(sample_rate=16000, level_rate=0)
    s.process(x[:cut])
    on = s.active_tags
    assert on
    tail = s.flush()
    offs = [e for e in tail if isinstance(e, TagOff)]
    assert sorted(e.tag for e in offs) == sorted(on) and len(offs) == len(tail)
    assert s.active_tags == [] and all(e.stream_time == pytest.approx(cut / 16000) for e in offs)
    assert s.flush() == []
    with pytest.raises(RuntimeError, match="reset"):
        s.process(x[:100])
    s.reset()
    assert s.counters["samples_in"] == 0 and s.counters["hops"] == 0
    again, _ = stream_all(s, x, [777])
    assert again == clf.tag(x, 16000).events


def test_flush_drains_resampler(clf, signals):
    x = signals[48000]
    s = clf.stream(sample_rate=48000, level_rate=0)
    s.process(x)
    frames_before = s.counters["frames"]
    s.flush()
    assert s.counters["frames"] > frames_before  # the resampler's held-back samples made more frames


def test_two_d_blocks(clf, signals):
    x = signals[16000]
    stereo = np.stack([x, np.zeros_like(x)], axis=1)
    mono_ref = clf.tag(x, 16000)
    s0 = clf.stream(sample_rate=16000, channel=0, level_rate=0)
    e0, f0 = stream_all(s0, stereo, [1024])
    assert e0 == mono_ref.events
    s1 = clf.stream(sample_rate=16000, channel=1, level_rate=0)
    e1, _ = stream_all(s1, stereo, [1024])
    assert not [e for e in e1 if isinstance(e, TagOn)]  # channel 1 is silent
    assert all(e.channel == 1 for e in e1)
    smix = clf.stream(sample_rate=16000, channel="mix", level_rate=0)
    _, fm = stream_all(smix, stereo, [1000, 24])
    half = clf.tag((x.astype(np.float64) / 2).astype(np.float32), 16000)
    np.testing.assert_array_equal(np.stack([f.probs for f in fm]), half.probs)
    with pytest.raises(ParameterError, match="channel 2 out of range"):
        clf.stream(sample_rate=16000, channel=2).process(stereo[:100])


@pytest.mark.parametrize("block, text", [
    (np.zeros((10, 2, 2), np.float32), "1-D"),
    (np.zeros(10, np.int32), "dtype int32"),
    (np.zeros(10, np.complex64), "dtype complex64"),
    (np.array(["a", "b"]), "dtype"),
])
def test_bad_blocks(clf, block, text):
    s = clf.stream(sample_rate=16000)
    with pytest.raises(ParameterError, match=text):
        s.process(block)


@pytest.mark.parametrize("kwargs, text", [
    ({"sample_rate": 0}, "sample_rate"), ({"sample_rate": 44100.5}, "sample_rate"),
    ({"max_block": 0}, "max_block"), ({"channel": -1}, "channel"), ({"channel": "left"}, "channel"),
    ({"on_frame": 3}, "on_frame"), ({"resample_quality": "best", "sample_rate": 44100}, "quality"),
    ({"decoder": {"bogus": 1}}, "decoder.bogus"), ({"batch": 0}, "batch"), ({"batch": 2.5}, "batch"),
])
def test_bad_parameters(clf, kwargs, text):
    with pytest.raises(ParameterError, match=text):
        clf.stream(**kwargs)


def test_empty_and_list_blocks(clf):
    s = clf.stream(sample_rate=16000)
    assert s.process(np.zeros(0, np.float32)) == [] and s.last_frames == []
    assert s.process([]) == []
    s.process([0.0] * 2000)
    assert s.counters["samples_in"] == 2000
    with pytest.raises(ParameterError, match="no channels"):
        s.process(np.zeros((1000, 0), np.float32))
    assert s.counters["samples_in"] == 2000 and s.counters["nonfinite_replaced"] == 0


@pytest.mark.parametrize("channel", [0, "mix"])
def test_a_channels_first_block_is_refused_not_read_as_two_samples(clf, channel):
    """(channels, frames) read as (frames, channels) would take two seconds of stereo as two samples."""
    s = clf.stream(sample_rate=22050, channel=channel)
    with pytest.raises(ParameterError, match=r"44100 channels.*transpose"):
        s.process(np.zeros((2, 44100), np.float32))
    assert s.counters["samples_in"] == 0
    s.process(np.zeros((64, 1024), np.float32))  # a 1024-channel interface's block is still taken
    assert s.counters["samples_in"] == 64


@pytest.mark.parametrize("channels, frames", [(2, 64), (2, 16), (8, 64), (8, 256), (16, 128)])
def test_a_plugin_host_s_planar_buffers_are_refused(clf, channels, frames):
    """Plugin hosts hold audio channel-major; a (2, 64) buffer went through as 2 frames of 64 channels (the
    rule needed 64 times as many channels as frames) and the stream ran 32 times slow without a word."""
    s = clf.stream(sample_rate=48000)
    with pytest.raises(ParameterError, match=rf"shape \({channels}, {frames}\) looks like \(channels, frames\)"):
        s.process(np.zeros((channels, frames), np.float32))
    assert s.counters["samples_in"] == 0
    s.process(np.zeros((frames, channels), np.float32))  # the same buffer frames first is taken
    assert s.counters["samples_in"] == frames


@pytest.mark.parametrize("shape", [(1, 2), (2, 8), (10, 16), (17, 1024), (64, 1024)])
def test_short_first_blocks_of_a_device_are_taken(clf, shape):
    s = clf.stream(sample_rate=48000)
    s.process(np.zeros(shape, np.float32))
    assert s.counters["samples_in"] == shape[0]


def test_large_block_split(clf, signals):
    x = signals[16000]
    s = clf.stream(sample_rate=16000, max_block=256, level_rate=0)
    events = s.process(x) + s.flush()
    assert events == clf.tag(x, 16000).events


@pytest.mark.parametrize("sr", [16000, 48000])
def test_nonfinite_replaced_and_counted(clf, signals, sr):
    x = signals[sr].copy()
    x[1000:1010] = np.nan
    x[5000] = np.inf
    x[9000] = -np.inf
    s = clf.stream(sample_rate=sr, level_rate=0)
    _, frames = stream_all(s, x, [1024])
    assert s.counters["nonfinite_replaced"] == 12
    assert all(np.isfinite(f.probs).all() for f in frames)
    clean = x.copy()
    clean[~np.isfinite(clean)] = 0
    np.testing.assert_array_equal(np.stack([f.probs for f in frames]), clf.tag(clean, sr).probs)


@pytest.mark.parametrize("sr", [16000, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("second", [7000, 3001])  # in another block, or in the same one (+inf and -inf together)
def test_float64_beyond_float32_counted_without_warning(clf, signals, sr, channels, second):
    # float64 samples too large for float32 become +-inf in the cast: counted and replaced like
    # NaN, with no RuntimeWarning on the way (the audio thread must not print; a host running with
    # warnings as errors got an exception after the samples were counted)
    x = signals[sr].astype(np.float64)
    x[3000] = 1e300
    x[second] = -1e300
    if channels == 2:
        x = np.stack([x, x], axis=1)
    s = clf.stream(sample_rate=sr, level_rate=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, frames = stream_all(s, x, [1024])
    assert s.counters["nonfinite_replaced"] == 2
    assert all(np.isfinite(f.probs).all() for f in frames)


def test_counters(clf, signals):
    x = signals[16000]
    s = clf.stream(sample_rate=16000)
    stream_all(s, x, [512])
    c = s.counters
    assert c["samples_in"] == len(x)
    assert c["frames"] == 1 + (len(x) - 512) // 256
    assert c["hops"] == len(range(clf.bundle.hop_frames - 1 + clf.bundle.lookahead_frames, c["frames"],
                                  clf.bundle.hop_frames))
    assert c["compute_ms_mean"] > 0 and c["compute_ms_p99"] > 0 and c["latency_compute_ms"] == c["compute_ms_mean"]
    assert 0 <= c["late_hops"] <= c["hops"]
    assert c["hop_ms"] == pytest.approx(48.0) and c["nonfinite_replaced"] == 0
    for key in ("latency_algorithmic_ms", "resampler_latency_ms"):
        assert key in c


def test_on_frame_callback_and_record_frames(clf, signals):
    got = []
    s = clf.stream(sample_rate=16000, record_frames=False, on_frame=got.append, level_rate=0)
    s.process(signals[16000])
    assert s.last_frames == [] and len(got) == s.counters["hops"]
    np.testing.assert_array_equal(np.stack([f.probs for f in got]), clf.tag(signals[16000], 16000).probs[:len(got)])


def test_levels_in_stream(clf, signals):
    s = clf.stream(sample_rate=16000)  # levels every hop by default
    evs = s.process(signals[16000][:16000])
    levels = [e for e in evs if e.kind == "level"]
    assert len(levels) == s.counters["hops"] * len(clf.labels)
    s2 = clf.stream(sample_rate=16000, level_rate=5)
    evs2 = s2.process(signals[16000][:32000])
    n_levels = len([e for e in evs2 if e.kind == "level"]) // len(clf.labels)
    assert n_levels == pytest.approx(2.0 * 5, abs=1)


def test_an_on_frame_exception_leaves_the_session_consistent(clf, signals):
    x = signals[16000]
    calls = {"n": 0}

    def host_bug(fr):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("host bug")

    s = clf.stream(sample_rate=16000, on_frame=host_bug, max_block=4096, level_rate=0)
    ref = clf.stream(sample_rate=16000, max_block=4096, level_rate=0, record_frames=True)
    with pytest.raises(RuntimeError, match="host bug"):
        s.process(x[:4096])
    n_first = calls["n"]
    ref.process(x[:4096])
    assert n_first == len(ref.last_frames)  # every output of the call got its on_frame, the error after
    got = []
    s.on_frame = got.append
    s.process(x[4096:])
    ref.process(x[4096:])
    assert [f.index for f in got] == [f.index for f in ref.last_frames]
    np.testing.assert_array_equal(np.stack([f.probs for f in got]), np.stack([f.probs for f in ref.last_frames]))


def test_an_on_frame_exception_carries_the_calls_events(clf, signals):
    # the technique switches and values of a call whose on_frame raised were lost (the FrameResults hold the tag
    # events only): a host forwarding VibratoOn/Off could be left with a note sounding
    import dataclasses

    x = signals[48000]

    def host_bug(*args):  # (a MultiStreamSession's on_frame also gets the stream's channel)
        raise RuntimeError("host bug")

    def plain(evs):
        return [(type(e).__name__, {f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.name != "wall_time"})
                for e in evs]

    for multi in (False, True):
        def make(**kw):
            if multi:
                return clf.multistream([0, 1], sample_rate=48000, techniques=True, max_block=4096, **kw)
            return clf.stream(sample_rate=48000, techniques=True, max_block=4096, **kw)

        s, ref = make(on_frame=host_bug), make()
        kinds = set()
        for i in range(0, 48000 * 3, 12000):
            block = np.stack([x[i:i + 12000], x[i:i + 12000][::-1]], axis=1) if multi else x[i:i + 12000]
            expected = ref.process(block)
            with pytest.raises(RuntimeError, match="host bug") as exc:
                s.process(block)
            assert plain(exc.value.events) == plain(expected)
            kinds |= {type(e).__name__ for e in expected}
        assert "TechniqueValues" in kinds and "TagLevel" in kinds
    # a host raising one exception object every time gets each call's events, not the first call's
    sentinel = RuntimeError("host bug")

    def same_bug(*args):
        raise sentinel

    s, ref = clf.stream(sample_rate=48000, on_frame=same_bug), clf.stream(sample_rate=48000)
    for i in range(0, 48000 * 2, 16000):
        expected = ref.process(x[i:i + 16000])
        with pytest.raises(RuntimeError) as exc:
            s.process(x[i:i + 16000])
        assert exc.value is sentinel and plain(exc.value.events) == plain(expected)


def test_audio_after_flush_is_a_state_error(clf, signals):
    from rtclassify.errors import RtclassifyError, StateError

    s = clf.stream(sample_rate=16000)
    s.flush()
    with pytest.raises(StateError, match="reset") as exc:
        s.process(signals[16000][:100])
    assert isinstance(exc.value, RtclassifyError) and isinstance(exc.value, RuntimeError)


@pytest.mark.parametrize("kw, words", [
    ({"sample_rate": float("inf")}, "sample_rate must be a whole number of Hz from 1000 to 768000"),
    ({"sample_rate": 1}, "sample_rate must be"), ({"sample_rate": 10 ** 9}, "sample_rate must be"),
    ({"hop": 1e308}, "longer than the model's window"),
    ({"max_block": 10 ** 12}, "max_block must be an integer from 1 to"),
    ({"batch": 10 ** 9}, "batch must be an integer from 1 to"),
])
def test_absurd_session_parameters_are_refused_by_name(clf, kw, words):
    with pytest.raises(ParameterError, match=words):
        clf.stream(**kw)


def test_techniques_below_8_khz_lower_the_default_pitch_ceiling(clf):
    s = clf.stream(sample_rate=6000, techniques=True)
    s.process(np.zeros(6000, np.float32))
    with pytest.raises(ParameterError, match="fmax"):  # one the caller sets is still checked
        clf.stream(sample_rate=6000, techniques={"fmax": 2000.0})


@pytest.mark.parametrize("techniques, words", [("yes", "techniques must be True, False or a dict"),
                                               (1, "techniques must be True, False or a dict"),
                                               ({"bogus": 1}, "unknown technique tracker option.*'bogus'.*fmin")])
def test_bad_techniques_are_one_clear_error(clf, techniques, words):
    with pytest.raises(ParameterError, match=words):
        clf.stream(techniques=techniques)


def test_progress_must_be_callable_before_any_work(clf):
    with pytest.raises(ParameterError, match="progress must be a callable"):
        clf.tag(np.zeros(20000, np.float32), 16000, progress=1)


def test_sessions_cannot_be_copied_or_pickled(clf):
    import copy
    import pickle

    for s in (clf.stream(sample_rate=16000), clf.multistream([0, 1], sample_rate=16000)):
        for fn in (copy.copy, copy.deepcopy, pickle.dumps):
            with pytest.raises(TypeError, match="cannot be (copied|pickled)"):
                fn(s)


class _FailingAt:
    """The real backend, raising ``exc`` on its calls numbered in ``fail_at`` (1-based)."""

    def __init__(self, backend, fail_at, exc=RuntimeError("transient backend fault")):
        self.inner, self.fail_at, self.exc, self.calls = backend, set(fail_at), exc, 0
        self.bundle = backend.bundle

    def run(self, windows):
        self.calls += 1
        if self.calls in self.fail_at:
            raise self.exc
        return self.inner.run(windows)


def _drive(session, x, block, multi=False):
    """Feed ``x`` in blocks; returns (outputs of stream 0 by index, events of stream 0, exceptions caught)."""
    outs, events, errors = {}, [], []
    X = np.stack([x, x], axis=1) if multi else x
    for a in range(0, len(X), block):
        try:
            events += session.process(X[a:a + block])
        except RuntimeError as exc:
            errors.append(exc)
            events += exc.events
        frames = session.last_frames[0] if multi else session.last_frames
        outs.update((f.index, f) for f in frames)
    events += session.flush()
    return outs, [e for e in events if e.channel == 0], errors


@pytest.mark.parametrize("multi", [False, True])
def test_a_failed_backend_run_loses_its_hop_only(clf, multi):
    """A run that raised mid-call lost the rest of the block, the outputs and events decided before it in the
    call (a TagOff then came without its TagOn) and the frames the chunk had made after the due one, so every
    later output was one hop off its audio. Now only the failed hop's output is missing."""
    x = tb.demo_signal(16000, seed=3)

    def make(backend):
        c = Classifier(clf.bundle, backend)
        if multi:
            return c.multistream([0, 1], sample_rate=16000, max_block=1024, level_rate=0)
        return c.stream(sample_rate=16000, max_block=1024, level_rate=0)

    ref, ref_events, _ = _drive(make(clf.backend), x, 8192, multi)
    flaky = _FailingAt(clf.backend, [12])
    s = make(flaky)
    got, events, errors = _drive(s, x, 8192, multi)
    assert [str(e) for e in errors] == ["transient backend fault"]
    missing = sorted(set(ref) - set(got))
    assert len(missing) == 1 and set(got) <= set(ref)
    for i, f in got.items():  # the stream stays in step: every other output is the reference's, bit for bit
        assert np.array_equal(f.probs, ref[i].probs), i
    assert s.counters["samples_in"] == len(x) and s.counters["failed_hops"] == 1
    assert s.counters["hops"] == len(ref) - 1
    for tag in clf.labels:  # the host got every event decided: each on has its off
        ons = [e for e in events if isinstance(e, TagOn) and e.tag == tag]
        offs = [e for e in events if isinstance(e, TagOff) and e.tag == tag]
        assert len(ons) == len(offs), tag
    assert sum(isinstance(e, TagOn) for e in ref_events) >= 2


def test_a_keyboard_interrupt_in_a_run_stops_the_call_after_its_chunk(clf):
    """Ctrl-C in a backend run: no further model run in the call, the chunk's frames still go into the ring, the
    rest of the block is not taken in (samples_in says how far the call went), and the stream goes on after."""
    x = tb.demo_signal(16000, seed=4)
    flaky = _FailingAt(clf.backend, [3], KeyboardInterrupt())
    s = Classifier(clf.bundle, flaky).stream(sample_rate=16000, max_block=1024, level_rate=0)
    with pytest.raises(KeyboardInterrupt) as info:
        s.process(x[:8192])
    calls = flaky.calls
    taken = s.counters["samples_in"]
    assert taken % 1024 == 0 and 0 < taken < 8192 and s.counters["failed_hops"] >= 1
    assert isinstance(info.value.events, list)
    s.process(x[taken:])  # the host feeds the rest: the stream continues in step
    ref = Classifier(clf.bundle, clf.backend).stream(sample_rate=16000, max_block=1024, level_rate=0)
    ref.process(x)
    assert flaky.calls > calls
    assert np.array_equal(s.last_frames[-1].probs, ref.last_frames[-1].probs)
    assert s.counters["samples_in"] == len(x)


def test_the_good_hops_of_a_call_whose_run_failed_still_reach_on_frame(clf):
    """on_frame got nothing from a call that raised a failed run's error: the outputs decided before and after
    the failed hop waited for the next call, or were lost when the host reset the session."""
    got = []
    flaky = _FailingAt(clf.backend, [5])
    s = Classifier(clf.bundle, flaky).stream(sample_rate=16000, level_rate=0, on_frame=lambda fr: got.append(fr))
    with pytest.raises(RuntimeError, match="transient backend fault"):
        s.process(tb.demo_signal(16000, seed=5)[:16000])
    assert got and [f.index for f in got] == [f.index for f in s.last_frames]


def test_a_run_error_is_never_raised_by_a_later_call(clf):
    """A run failed, then another exception (Ctrl-C in the host's thread) ended the call: the next call, whose
    runs all went through, raised the old error."""
    s = Classifier(clf.bundle, _FailingAt(clf.backend, [2])).stream(sample_rate=16000, max_block=1024,
                                                                   level_rate=0)
    x = tb.demo_signal(16000, seed=6)
    real, n = s._ingest, [0]

    def ingest(chunk):
        n[0] += 1
        if n[0] == 6:
            raise KeyboardInterrupt
        return real(chunk)

    s._ingest = ingest
    with pytest.raises(KeyboardInterrupt):
        s.process(x[:8192])
    s._ingest = real
    s.process(x[8192:16384])  # no error: this call's runs all went through
    assert s.counters["failed_hops"] == 1


@pytest.mark.parametrize("sr", [16000, 48000])
def test_skipped_samples_move_the_times_of_what_comes_after_the_gap(clf, sr):
    """skip(n): the clock runs on over audio that never came (the listener's ring dropped it); the outputs and
    events after the gap are stamped on the device's clock, as they would be had the gap been fed."""
    x = tb.demo_signal(sr, seed=7)
    a, gap = len(x) // 3, int(0.75 * sr)
    ref = clf.stream(sample_rate=sr, level_rate=0)  # the same audio, the gap fed as audio (any: only times count)
    ref.process(x[:a])
    ref_frames = list(ref.last_frames)
    ref.process(np.zeros(gap, np.float32))
    ref_frames += ref.last_frames
    s = clf.stream(sample_rate=sr)  # with levels: the flush's zeros come at the stream's end
    s.process(x[:a])
    before = list(s.last_frames)
    made = s.counters["frames"]
    s.skip(gap)
    s.process(x[a:])
    after = list(s.last_frames)
    tail = s.flush()
    assert s.counters["skipped_samples"] == gap and s.counters["samples_in"] == len(x)
    assert s.stream_time == pytest.approx((len(x) + gap) / sr)
    assert [f.time for f in before] == [f.time for f in ref_frames[:len(before)]]
    b = clf.bundle
    plain = [(f.index * b.hop_length + b.n_fft / 2) / b.sample_rate for f in after]
    # a frame made after the gap is stamped the gap later; one made before it (the newest frames of the first
    # outputs after it, at most the lookahead and the resampler's delay) keeps its time
    assert [f.time for f in after] == pytest.approx([t + (gap / sr if f.index >= made else 0.0)
                                                     for t, f in zip(plain, after)])
    assert sum(f.index >= made for f in after) > len(after) - 3
    assert after[0].stream_time > before[-1].stream_time + gap / sr
    assert [s.output_time(f.index) for f in after] == pytest.approx([f.time for f in after])
    ends = [e.stream_time for e in tail if e.kind in ("off", "level")]
    assert ends and ends == pytest.approx([(len(x) + gap) / sr] * len(ends))
    with pytest.raises(ParameterError, match="skip: n must be a whole number"):
        s.skip(-1)


def test_skipped_samples_move_the_technique_events_too(clf):
    from _trackers import modulated_tone

    sr = 16000
    x = modulated_tone(sr, 4.0, 440.0, vib=(5.5, 40.0), start=2.0).astype(np.float32)
    plain = clf.stream(sample_rate=sr, level_rate=0, techniques=True)
    skipped = clf.stream(sample_rate=sr, level_rate=0, techniques=True)
    plain.process(x[:sr])
    skipped.process(x[:sr])
    skipped.skip(sr // 2)
    on_plain = [e for e in plain.process(x[sr:]) if e.kind == "vibrato_on"]
    on_skipped = [e for e in skipped.process(x[sr:]) if e.kind == "vibrato_on"]
    assert on_plain and len(on_plain) == len(on_skipped)
    assert on_skipped[0].stream_time == pytest.approx(on_plain[0].stream_time + 0.5, abs=1e-9)


@pytest.mark.parametrize("channels, frames", [(16, 64), (8, 32), (32, 256)])
def test_lasting_blocks_of_fewer_frames_than_channels_are_warned_about(clf, channels, frames):
    # channel-major buffers of an interface with many channels pass the refusal (not surely transposed: a device's
    # first blocks may be short) and ran the stream 4-8 times slow for ever without a word
    from rtclassify.engine.session import NARROW_BLOCKS_WARNED
    from rtclassify.errors import BlockLayoutWarning

    s = clf.stream(sample_rate=48000)
    block = np.zeros((channels, frames), np.float32)
    for _ in range(NARROW_BLOCKS_WARNED - 1):
        s.process(block)
    with pytest.warns(BlockLayoutWarning, match=rf"shape \({channels}, {frames}\).*transpose") as w:
        s.process(block)
        s.process(block)  # once
    assert len(w) == 1 and w[0].filename == __file__
    s = clf.stream(sample_rate=48000)  # a device whose first blocks are short: no warning once one shows them
    for _ in range(NARROW_BLOCKS_WARNED - 1):
        s.process(np.zeros((channels // 2, channels), np.float32))
    for _ in range(2 * NARROW_BLOCKS_WARNED):
        s.process(np.zeros((256, channels), np.float32))
        s.process(np.zeros((channels // 2, channels), np.float32))
