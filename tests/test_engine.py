"""Engine edges found in review: a slow-opening source, ClipSource input, channels-first blocks, parameters
refused before outputs open, re-entrant on_frame, overflow in the channel mix, a non-callable on_event."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from rtclassify.audio.sources import ClipSource
from rtclassify.engine.listener import Listener
from rtclassify.errors import ParameterError

SR = 16000


class SlowOpen(ClipSource):
    """A source whose start() takes a while, as a Bluetooth or JACK device may."""

    def __init__(self, *a, delay: float, **kw):
        super().__init__(*a, **kw)
        self.delay = delay

    def start(self, callback, finished=None):
        time.sleep(self.delay)
        super().start(callback, finished)


def test_a_source_slower_to_open_than_the_stall_limit_is_not_a_lost_device(clf):
    src = SlowOpen(np.zeros(SR * 20, np.float32), SR, blocksize=256, delay=0.6)
    lis = Listener(clf, source=src, stall_timeout=0.3)
    try:
        lis.start()
        time.sleep(0.8)
        assert lis.error is None
        assert not lis.finished
        assert src.active
        assert lis.counters()["samples_processed"] > 0
    finally:
        lis.stop()
    assert not src.active


def test_clip_source_scales_int16_like_the_session(clf):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(SR) * 3000).astype(np.int16)
    src = ClipSource(x, SR)
    np.testing.assert_array_equal(src._audio[:, 0], x.astype(np.float32) / np.float32(32768.0))
    with pytest.raises(ParameterError, match=r"int32 / 2\*\*31"):
        ClipSource(x.astype(np.int32), SR)


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -1.0, 0, "44100", True])
def test_clip_source_refuses_a_rate_that_is_not_a_positive_number(rate):
    with pytest.raises(ParameterError, match="samplerate"):
        ClipSource(np.zeros(100, np.float32), rate)


def test_a_channels_first_block_is_refused_not_read_as_many_channels(clf):
    s = clf.stream(sample_rate=48000)
    with pytest.raises(ParameterError, match="transpose"):
        s.process(np.zeros((2, 512), np.float32))
    assert s.stream_time == 0.0
    # a first block may be short (1 frame of stereo); the stream's channels are kept from a full block on
    s.process(np.zeros((1, 2), np.float32))
    s.process(np.zeros((512, 2), np.float32))
    s.process(np.zeros((1, 2), np.float32))
    with pytest.raises(ParameterError, match="earlier blocks 2"):
        s.process(np.zeros((512, 3), np.float32))
    assert s.counters["samples_in"] == 514
    s.reset()
    s.process(np.zeros((512, 3), np.float32))  # a new stream may have other channels


def test_on_frame_calling_the_session_gets_frames_in_order(clf):
    x = (0.1 * np.random.default_rng(0).standard_normal(SR * 3)).astype(np.float32)
    seen = []
    state = {"fed": False}

    def on_frame(fr):
        seen.append(fr.index)
        if not state["fed"]:
            state["fed"] = True
            s.process(x[SR:2 * SR])

    s = clf.stream(sample_rate=SR, on_frame=on_frame, record_frames=False)
    s.process(x[:SR])
    assert len(seen) > 10
    assert seen == sorted(seen)


def test_a_huge_float64_stereo_block_is_counted_not_warned(clf):
    s = clf.stream(sample_rate=SR, channel="mix")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.process(np.full((1024, 2), 1e308))
    assert s.counters["nonfinite_replaced"] == 1024


def test_on_event_must_be_callable(clf):
    with pytest.raises(ParameterError, match="on_event must be callable"):
        Listener(clf, source=ClipSource(np.zeros(SR, np.float32), SR), on_event=42)


def test_a_bad_hop_is_refused_by_the_listener_before_anything_opens(clf):
    with pytest.raises(ParameterError, match="hop"):
        Listener(clf, source=ClipSource(np.zeros(SR, np.float32), SR), hop=30.0)


def test_demo_with_a_bad_hop_leaves_an_existing_log_alone(tmp_path):
    log = tmp_path / "keep.jsonl"
    log.write_text(json.dumps({"previous": "run"}) + "\n")
    r = subprocess.run([sys.executable, "-m", "rtclassify", "demo", "--no-display", "--log", str(log), "--hop", "30"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 1
    assert "hop" in r.stderr and "Traceback" not in r.stderr
    assert json.loads(log.read_text()) == {"previous": "run"}


def test_a_refused_block_does_not_set_the_streams_channels_and_short_first_blocks_pass(clf):
    s = clf.stream(sample_rate=48000, channel=3)
    with pytest.raises(ParameterError, match="channel 3 out of range"):
        s.process(np.zeros((512, 2), np.float32))
    s.process(np.zeros((512, 4), np.float32))
    m = clf.stream(sample_rate=48000, channel="mix")
    m.process(np.zeros((0, 16), np.float32))
    m.process(np.zeros((8, 16), np.float32))  # a 16-channel device's short first block
    m.process(np.zeros((256, 16), np.float32))


def test_frames_of_a_call_from_another_thread_are_delivered_on_that_thread(clf):
    import threading

    x = (0.1 * np.random.default_rng(2).standard_normal(SR * 2)).astype(np.float32)
    on = {}
    started = threading.Event()

    def on_frame(fr):
        on.setdefault(threading.get_ident(), []).append(fr.index)
        if threading.current_thread() is threading.main_thread() and not started.is_set():
            started.set()
            t.start()
            t.join(10)  # the other thread's process() runs while this on_frame does

    s = clf.stream(sample_rate=SR, on_frame=on_frame, record_frames=False)
    t = threading.Thread(target=lambda: s.process(x[SR:]))
    s.process(x[:SR])
    assert t.ident in on and threading.main_thread().ident in on


def test_a_raising_on_frame_still_gets_the_nested_calls_outputs(clf):
    x = (0.1 * np.random.default_rng(3).standard_normal(SR * 3)).astype(np.float32)
    seen, state = [], {"n": 0}

    def on_frame(fr):
        seen.append(fr.index)
        state["n"] += 1
        if state["n"] == 1:
            s.process(x[SR:2 * SR])
            raise RuntimeError("once")

    s = clf.stream(sample_rate=SR, on_frame=on_frame, record_frames=False)
    with pytest.raises(RuntimeError, match="once"):
        s.process(x[:SR])
    assert not s._pending_frames and seen == sorted(seen) and len(seen) > 20


def test_clip_source_takes_byte_swapped_samples(clf):
    x = (np.arange(100) * 300).astype(np.int16)
    np.testing.assert_array_equal(ClipSource(x.astype(">i2"), SR)._audio, ClipSource(x, SR)._audio)
