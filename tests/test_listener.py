"""The threaded Listener: clip source -> callback -> SampleRing -> worker -> session -> sinks.

Uses a real Classifier on the small test bundle (tests/_rtc_bundle.py) and the ClipSource,
which calls the audio callback from its own thread exactly as PortAudio would.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("onnx")

from _rtc_bundle import demo_signal  # noqa: E402
from _streaming import callback_peak_bytes, onoff  # noqa: E402

from rtclassify.audio.sources import CallbackFlags, ClipSource  # noqa: E402
from rtclassify.engine.listener import Listener  # noqa: E402
from rtclassify.errors import DeviceError, ParameterError, SinkError, StateError  # noqa: E402

SR = 16000


class RecordingSink:
    """Records what the listener sends, and the order of open/send/close."""

    def __init__(self, fail_after: int | None = None):
        self.calls: list[str] = []
        self.events: list = []
        self.statuses: list[dict] = []
        self.fail_after = fail_after

    def open(self):
        self.calls.append("open")

    def send(self, events):
        if self.fail_after is not None and len(self.events) >= self.fail_after:
            raise SinkError("the test sink failed")
        self.calls.append("send")
        self.events.extend(events)

    def status(self, counters):
        self.statuses.append(counters)

    def close(self):
        self.calls.append("close")
        self.close_thread = threading.current_thread()


def test_events_match_offline_tagging_and_end_of_clip_turns_tags_off(clf):
    x = demo_signal(SR)
    sink = RecordingSink()
    got = []
    lis = Listener(clf, sinks=[sink], source=ClipSource(x, SR, blocksize=256, speed=8.0), on_event=got.append)
    with lis:
        assert lis.wait(30)
    assert lis.error is None
    offline = clf.tag(x, SR, level_rate=0)
    assert onoff(sink.events) == onoff(offline.events)
    assert onoff(got) == onoff(sink.events)
    assert any(k == "on" for k, _, _ in onoff(sink.events))
    # every tag that went on went off again, and the sink was closed once, after the last send
    state = {}
    for k, tag, _ in onoff(sink.events):
        state[tag] = k
    assert set(state.values()) == {"off"}
    assert sink.calls[0] == "open" and sink.calls[-1] == "close" and sink.calls.count("close") == 1
    c = lis.counters()
    assert c["samples_in"] == c["samples_processed"] == x.shape[0]
    assert c["dropped_samples"] == 0 and c["input_overflows"] == 0
    assert c["hops"] == len(offline.times)
    # every event sent, and of them the on/off switches (the summary's "N events" counted levels and tracker
    # values alone, thousands of them against a few dozen switches)
    assert c["events"] == len(got)
    assert c["switches"] == sum(1 for e in got if e.kind not in ("level", "technique")) > 0
    assert c["switches"] < c["events"]
    assert c["latency_algorithmic_ms"] == pytest.approx(1e3 * lis.session.latency_samples / SR)
    assert c["latency_device_ms"] == pytest.approx(1e3 * 256 / SR)
    for k in ("compute", "output", "total"):
        assert c[f"latency_{k}_ms"] is not None and c[f"latency_{k}_ms"] >= 0
    assert sink.statuses and sink.statuses[-1]["samples_processed"] == x.shape[0]


def test_clip_ending_while_a_tag_is_on_sends_the_final_off(clf):
    x = demo_signal(SR)[: int(1.2 * SR)]  # cut inside the low tone (0.5-1.5 s)
    sink = RecordingSink()
    with Listener(clf, sinks=[sink], source=ClipSource(x, SR, blocksize=256, speed=8.0)) as lis:
        lis.wait(30)
    ev = onoff(sink.events)
    assert ev and ev[-1][0] == "off"
    on = {t for k, t, _ in ev if k == "on"}
    assert on == {t for k, t, _ in ev if k == "off"}
    assert ev[-1][2] == pytest.approx(x.shape[0] / SR, abs=1e-3)


@pytest.mark.parametrize("mode", ["channel", "mix"])
def test_channel_selection_and_downmix(clf, mode):
    x = demo_signal(SR)
    two = np.zeros((x.shape[0], 2), np.float32)
    two[:, 1] = x
    sink = RecordingSink()
    kw = {"channel": 1} if mode == "channel" else {"mix": True}
    with Listener(clf, sinks=[sink], source=ClipSource(two, SR, blocksize=256, speed=8.0), **kw) as lis:
        lis.wait(30)
    expect = clf.tag(x if mode == "channel" else x * np.float32(0.5), SR, level_rate=0)
    assert onoff(sink.events) == onoff(expect.events)
    assert onoff(sink.events)
    # the events say which input channel they came from (a downmix: 0), as Classifier.tag's do
    assert {e.channel for e in sink.events} == {1 if mode == "channel" else 0}
    # channel 0 is silent: nothing turns on there
    sink0 = RecordingSink()
    with Listener(clf, sinks=[sink0], source=ClipSource(two, SR, blocksize=256, speed=8.0), channel=0) as lis:
        lis.wait(30)
    assert onoff(sink0.events) == []


def test_stop_from_another_thread_flushes_and_closes_once(clf):
    x = np.tile(demo_signal(SR)[int(0.6 * SR): int(1.4 * SR)], 20)  # a long low tone
    sink = RecordingSink()
    lis = Listener(clf, sinks=[sink], source=ClipSource(x, SR, blocksize=256, speed=2.0))
    lis.start()
    end = time.monotonic() + 20
    while not any(e.kind == "on" for e in sink.events) and time.monotonic() < end:
        time.sleep(0.02)
    assert any(e.kind == "on" for e in sink.events)
    t = threading.Thread(target=lis.stop)
    t.start()
    t.join(20)
    assert lis.finished and not lis.running and lis.error is None
    ev = onoff(sink.events)
    assert ev[-1][0] == "off" and {t for k, t, _ in ev if k == "on"} == {t for k, t, _ in ev if k == "off"}
    assert sink.calls.count("close") == 1
    assert sink.close_thread is t  # a sink closes on the thread that stops the listener, not on the worker
    lis.stop()  # idempotent
    assert sink.calls.count("close") == 1
    c = lis.counters()
    assert c["samples_in"] == c["samples_processed"]


def test_a_clip_source_says_finished_only_when_it_ends_on_its_own():
    calls = []
    src = ClipSource(np.zeros(SR * 30, np.float32), SR, blocksize=256)
    src.start(lambda *a: None, lambda: calls.append("finished"))
    time.sleep(0.1)
    src.stop()
    assert calls == []  # stopped: the caller knows
    src = ClipSource(np.zeros(1024, np.float32), SR, blocksize=256, speed=8.0)
    src.start(lambda *a: None, lambda: calls.append("finished"))
    end = time.monotonic() + 10
    while not calls and time.monotonic() < end:
        time.sleep(0.01)
    src.stop()
    assert calls == ["finished"]


def test_failing_sink_stops_the_listener_and_closes_the_others(clf):
    bad, good = RecordingSink(fail_after=3), RecordingSink()
    lis = Listener(clf, sinks=[good, bad], source=ClipSource(demo_signal(SR), SR, blocksize=256, speed=4.0))
    lis.start()
    assert lis.wait(30)
    assert isinstance(lis.error, SinkError) and "the test sink failed" in str(lis.error)
    assert good.calls[-1] == "close" and bad.calls[-1] == "close"
    lis.stop()
    assert good.calls.count("close") == 1


def test_a_failed_model_run_stops_the_listener_after_sending_what_its_call_decided(clf):
    """A session call whose backend run raised carries the events it decided before the failure (``events``);
    the listener sends them before its final offs, so a receiver never gets an off whose on it missed."""
    sink = RecordingSink()
    lis = Listener(clf, sinks=[sink], source=ClipSource(demo_signal(SR), SR, blocksize=256, speed=4.0))
    real = lis.session.process
    seen, failed = [], []

    def process(block):
        events = real(block)
        if any(e.kind == "on" for e in seen):  # a tag is on: the next call that decides something fails
            if events:
                exc = RuntimeError("backend fault")
                exc.events = failed[:] = events
                raise exc
        seen.extend(events)
        return events

    lis.session.process = process
    with lis:
        assert lis.wait(30)
    assert "backend fault" in str(lis.error)
    ev = onoff(sink.events)
    ons = [t for k, t, _ in ev if k == "on"]
    offs = [t for k, t, _ in ev if k == "off"]
    assert sorted(ons) == sorted(offs)
    assert failed and all(any(x is e for x in sink.events) for e in failed)
    assert [id(e) for e in sink.events[:len(seen) + len(failed)]] == [id(e) for e in seen + failed]


def test_a_model_run_failing_in_the_final_flush_still_sends_its_offs(clf):
    """The flush's exception carries its TagOffs (``events``); the listener dropped them, so the sinks got tags
    turned on and never off."""
    sink = RecordingSink()
    lis = Listener(clf, sinks=[sink], source=ClipSource(demo_signal(SR)[: int(1.2 * SR)], SR, blocksize=256,
                                                        speed=8.0))
    real = lis.session.flush

    def flush():
        events = real()
        exc = RuntimeError("backend fault in the flush")
        exc.events = events
        raise exc

    lis.session.flush = flush
    with lis:
        assert lis.wait(30)
    assert "backend fault in the flush" in str(lis.error)
    ev = onoff(sink.events)
    ons = [t for k, t, _ in ev if k == "on"]
    assert ons and sorted(ons) == sorted(t for k, t, _ in ev if k == "off")


def test_on_event_exception_becomes_one_line_error(clf):
    def boom(ev):
        raise ZeroDivisionError("bad handler")

    lis = Listener(clf, source=ClipSource(demo_signal(SR), SR, blocksize=256, speed=4.0), on_event=boom)
    with lis:
        assert lis.wait(30)
    assert isinstance(lis.error, RuntimeError)
    assert str(lis.error) == "ZeroDivisionError: bad handler"


class StallingSource:
    """Delivers ``blocks`` blocks of a tone, then nothing: like a device that vanished silently."""

    def __init__(self, blocks: int, samplerate: int = SR, blocksize: int = 256):
        self.samplerate, self.blocksize, self.channels = samplerate, blocksize, 1
        self.input_latency, self.name, self.error = 0.0, "stalling test device", None
        self.blocks = blocks
        self.stopped = 0
        self._t = None

    @property
    def active(self):
        return True

    def start(self, callback, finished=None):
        tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(self.blocks * self.blocksize) / self.samplerate))
        tone = tone.astype(np.float32)[:, None]

        def run():
            for i in range(self.blocks):
                callback(tone[i * self.blocksize:(i + 1) * self.blocksize], self.blocksize, None, CallbackFlags())
                time.sleep(self.blocksize / self.samplerate / 4)

        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()

    def stop(self):
        self.stopped += 1


def test_device_that_stops_delivering_is_detected_and_tags_turn_off(clf):
    sink = RecordingSink()
    src = StallingSource(blocks=120)
    lis = Listener(clf, sinks=[sink], source=src, stall_timeout=0.5)
    lis.start()
    assert lis.wait(30)
    assert isinstance(lis.error, DeviceError)
    assert "no audio from 'stalling test device' for 0.5 s" in str(lis.error)
    ev = onoff(sink.events)
    assert ev and ev[-1][0] == "off"
    assert src.stopped >= 1 and sink.calls[-1] == "close"


class FailingSource(StallingSource):
    """Delivers a few blocks, then reports a device error and finishes (like PortAudio's finished callback)."""

    def start(self, callback, finished=None):
        def run():
            for _ in range(self.blocks):
                callback(np.zeros((self.blocksize, 1), np.float32), self.blocksize, None, CallbackFlags())
            self.error = DeviceError("input device 'x' stopped delivering audio (device lost?)")
            finished()

        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()


def test_a_frozen_process_is_not_taken_for_a_lost_device(clf):
    """SIGSTOP, a swap storm or a suspended VM freezes the worker and the device's callback thread alike; the
    worker woke first, found no new audio and called the device lost (a stall measured on a clock that ran
    while it was frozen itself), ending the show. The device now gets its full stall limit from the wake."""
    frozen = threading.Event()

    class FreezingSink(RecordingSink):
        def send(self, events):
            if not frozen.is_set():
                frozen.set()
                time.sleep(1.2)  # the worker is frozen...
            super().send(events)

    class FreezingSource(StallingSource):
        def start(self, callback, finished=None):
            tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(self.blocks * self.blocksize) / self.samplerate))
            tone = tone.astype(np.float32)[:, None]

            def run():
                for i in range(self.blocks):
                    if frozen.is_set() and not getattr(self, "_slept", False):
                        self._slept = True
                        time.sleep(1.25)  # ...and so is the device's callback thread, waking just after it
                    callback(tone[i * self.blocksize:(i + 1) * self.blocksize], self.blocksize, None,
                             CallbackFlags())
                    time.sleep(self.blocksize / self.samplerate)
                self.done = True

            self._t = threading.Thread(target=run, daemon=True)
            self._t.start()

    sink = FreezingSink()
    src = FreezingSource(blocks=200)
    lis = Listener(clf, sinks=[sink], source=src, stall_timeout=0.5, level_rate=0)
    lis.start()
    src._t.join(30)
    lis.stop()
    assert frozen.is_set() and getattr(src, "done", False)
    assert lis.error is None, lis.error


def test_audio_dropped_while_the_worker_was_held_does_not_put_later_times_behind(clf):
    """A sink held the worker past the ring's length: its oldest audio was dropped (counted) and every later
    event was stamped that much early, for the rest of the run. The session's clock now runs on over the gap:
    the final offs come at the end of the audio the device delivered."""
    held = []

    class HoldingSink(RecordingSink):
        def send(self, events):
            if not held:
                held.append(1)
                time.sleep(1.0)  # the worker is held: the 0.25 s ring overflows
            super().send(events)

    x = demo_signal(SR)
    sink = HoldingSink()
    lis = Listener(clf, sinks=[sink], source=ClipSource(x, SR, blocksize=256, speed=2.0), ring_seconds=0.25)
    with lis:
        assert lis.wait(60)
    c = lis.counters()
    assert lis.error is None and c["dropped_samples"] > SR // 4
    last = max(e.stream_time for e in sink.events)
    assert last == pytest.approx(len(x) / SR, abs=0.05)  # the device's clock, not len(x) minus the drops
    assert c["session_skipped_samples"] == c["dropped_samples"]


def test_max_lag_drops_the_stale_audio_of_a_stall_instead_of_replaying_it(clf):
    """A sink held the worker for 1 s (ring 2 s): the worker then sent the events of that second's audio at once,
    a burst of notes and levels that were over. With max_lag=0.2 the audio waiting longer than 0.2 s is dropped
    (counted, the session's clock runs on) and the next events are of the newest audio."""
    def run(**kw):
        batches = []

        class HoldingSink(RecordingSink):
            def send(self, events):
                super().send(events)
                batches.append([e.stream_time for e in events])
                if "held" not in batches and events[-1].stream_time > 1.0:
                    time.sleep(1.0)  # the worker is held; the source goes on at real-time pace
                    batches.append("held")

        x = demo_signal(SR)[: 4 * SR]
        sink = HoldingSink()
        lis = Listener(clf, sinks=[sink], source=ClipSource(x, SR, blocksize=256, speed=1.0), **kw)
        with lis:
            assert lis.wait(60)
        assert lis.error is None
        i = batches.index("held")
        return lis.counters(), sink, max(batches[i - 1]), min(batches[i + 1])

    c, sink, t_held, t_next = run(max_lag=0.2)
    assert c["dropped_samples"] > 0.6 * SR and c["session_skipped_samples"] == c["dropped_samples"]
    assert t_next - t_held > 0.6  # the next events are of audio after the dropped stretch
    assert max(e.stream_time for e in sink.events) == pytest.approx(4.0, abs=0.1)  # the device's clock
    c0, _, t_held, t_next = run()
    assert c0["dropped_samples"] == 0 and t_next - t_held < 0.1  # the 2 s ring held the stall: all replayed


def test_source_fault_becomes_the_listener_error(clf):
    lis = Listener(clf, source=FailingSource(blocks=20))
    with lis:
        assert lis.wait(30)
    assert isinstance(lis.error, DeviceError) and "device lost" in str(lis.error)


def test_bad_parameters(clf):
    src = ClipSource(np.zeros(1000, np.float32), SR)
    with pytest.raises(ParameterError, match="channel and mix"):
        Listener(clf, source=src, channel=0, mix=True)
    with pytest.raises(ParameterError, match="channel 1 does not exist: the source has 1 channel"):
        Listener(clf, source=src, channel=1)
    with pytest.raises(ParameterError, match="blocksize"):
        Listener(clf, source=src, blocksize=3)
    with pytest.raises(ParameterError, match="hop"):
        Listener(clf, source=src, hop=0)


def test_switch_interval_is_lowered_while_running_and_restored(clf):
    before = sys.getswitchinterval()
    lis = Listener(clf, source=ClipSource(demo_signal(SR), SR, blocksize=256, speed=4.0), switch_interval=0.0007)
    with lis:
        assert sys.getswitchinterval() == pytest.approx(0.0007)
        lis.wait(30)
    assert sys.getswitchinterval() == pytest.approx(before)


def test_decoder_overrides_reach_the_session(clf):
    x = demo_signal(SR)
    sink = RecordingSink()
    thresholds = {t: {"on": 0.999999, "off": 0.99999} for t in clf.labels}
    with Listener(clf, sinks=[sink], source=ClipSource(x, SR, blocksize=256, speed=8.0),
                  decoder={"thresholds": thresholds}) as lis:
        lis.wait(30)
    assert onoff(sink.events) == onoff(clf.tag(x, SR, decoder={"thresholds": thresholds}, level_rate=0).events)
    assert lis.session.decoder.config.thresholds[clf.labels[0]] == (0.999999, 0.99999)


@pytest.mark.parametrize("channels, kw", [(1, {}), (4, {"channel": 2}), (4, {"mix": True})])
def test_audio_callback_allocates_no_sample_buffers(clf, channels, kw):
    """The callback copies into a preallocated buffer: no block-sized allocation per call."""
    bs = 4096
    src = ClipSource(np.zeros((bs, channels), np.float32), SR, blocksize=bs)
    lis = Listener(clf, source=src, blocksize=bs, ring_seconds=4.0, **kw)
    from rtclassify._core import SampleRing

    lis._ring = SampleRing(16 * bs)
    cb = lis._make_callback()
    block = np.random.default_rng(0).standard_normal((bs, channels)).astype(np.float32)
    flags = CallbackFlags()
    peak = callback_peak_bytes(cb, lis._ring, block, flags, pop=bs)
    assert peak < bs * 4 // 4, f"the callback allocated {peak} bytes at peak (a block is {bs * 4})"
    # and it really delivered the selected channel
    cb(block, bs, None, flags)
    out = lis._ring.pop(bs)
    if "mix" in kw:
        np.testing.assert_allclose(out, block.mean(axis=1), rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(out, block[:, kw.get("channel", 0)])


# ---------------------------------------------------------------- block size from the source


@pytest.mark.parametrize("kw", [{"channel": 1}, {"mix": True}])
def test_blocksize_comes_from_the_source(clf, kw):
    """A source with 512-frame blocks (the Listener's default would be 256) is taken whole, not refused per block."""
    x = demo_signal(SR)
    two = np.zeros((x.shape[0], 2), np.float32)
    two[:, 1] = x
    sink = RecordingSink()
    lis = Listener(clf, sinks=[sink], source=ClipSource(two, SR, blocksize=512, speed=8.0), **kw)
    assert lis.blocksize == 512
    with lis:
        assert lis.wait(30)
    assert lis.error is None
    c = lis.counters()
    assert c["samples_processed"] == c["samples_in"] == x.shape[0] and c["callback_errors"] == 0
    expect = clf.tag(x if "channel" in kw else x * np.float32(0.5), SR, level_rate=0)
    assert onoff(sink.events) == onoff(expect.events) and onoff(sink.events)


def test_blocksize_differing_from_the_source_is_refused(clf):
    src = ClipSource(np.zeros(4096, np.float32), SR, blocksize=512)
    with pytest.raises(ParameterError, match="blocksize 256 differs from the source's blocksize 512"):
        Listener(clf, source=src, blocksize=256)
    assert Listener(clf, source=src, blocksize=512).blocksize == 512


@pytest.mark.parametrize("channels, kw", [(1, {}), (4, {"channel": 2}), (4, {"mix": True}),
                                          (4, {"channels": [1, 2]}), (4, {"channels": [0, 3]})])
def test_callback_takes_a_block_longer_than_its_buffers_in_pieces(clf, channels, kw):
    """A source that delivers more frames than it said: stored whole, piece by piece, without allocating."""
    bs = 4096
    n = 3 * bs + 100
    src = ClipSource(np.zeros((bs, channels), np.float32), SR, blocksize=bs)
    lis = Listener(clf, source=src, ring_seconds=4.0, **kw)
    from rtclassify._core import SampleRing

    P = lis._stride
    lis._ring = SampleRing(4 * n * P)
    cb = lis._make_callback()
    block = np.random.default_rng(1).standard_normal((n, channels)).astype(np.float32)
    flags = CallbackFlags()
    cb(block, n, None, flags)  # raised "could not broadcast" before
    out = lis._ring.pop(n * P)
    assert out.shape == (n * P,)
    if "mix" in kw:
        np.testing.assert_allclose(out, block.mean(axis=1), rtol=1e-5, atol=1e-6)
    elif "channels" in kw:
        np.testing.assert_array_equal(out.reshape(n, P)[:, :2], block[:, kw["channels"]])
    else:
        np.testing.assert_array_equal(out, block[:, kw.get("channel", 0)])
    assert lis.counters()["callback_errors"] == 0
    peak = callback_peak_bytes(cb, lis._ring, block, flags, pop=n * P)
    assert peak < bs * 4 // 4, f"the callback allocated {peak} bytes at peak (a piece is {bs * 4})"


class MalformedSource(StallingSource):
    """Delivers blocks with one channel fewer than it says it has."""

    def __init__(self):
        super().__init__(blocks=8)
        self.channels = 2

    def start(self, callback, finished=None):
        def run():
            for _ in range(self.blocks):
                callback(np.zeros((self.blocksize, 1), np.float32), self.blocksize, None, CallbackFlags())

        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()


def test_a_failing_callback_never_raises_and_stops_the_listener_with_the_error(clf):
    src = MalformedSource()
    lis = Listener(clf, source=src, channel=1)
    from rtclassify._core import SampleRing

    lis._ring = SampleRing(4096)
    cb = lis._make_callback()
    cb(np.zeros((256, 1), np.float32), 256, None, CallbackFlags())  # column 1 missing: counted, not raised
    assert lis._cb_faults.tolist() == [1, 256]
    lis = Listener(clf, source=MalformedSource(), channel=1)
    with lis:
        assert lis.wait(30)
    assert isinstance(lis.error, RuntimeError)
    assert str(lis.error).startswith("the audio callback failed on ") and "IndexError" in str(lis.error)
    assert lis.counters()["callback_errors"] >= 1


# ---------------------------------------------------------------- stall timeout


def test_stall_timeout_is_at_least_two_block_periods(clf):
    src = ClipSource(np.zeros(16, np.float32), SR, blocksize=65536)
    assert Listener(clf, source=src).stall_limit() == pytest.approx(2 * 65536 / SR)  # 8.2 s, not 2 s
    assert Listener(clf, source=src, stall_timeout=30).stall_limit() == 30
    assert Listener(clf, source=ClipSource(np.zeros(16, np.float32), SR)).stall_limit() == 2.0


def test_blocks_longer_than_the_stall_timeout_are_not_a_lost_device(clf):
    # one 8192-frame block every 0.512 s; the stall timeout (0.05 s) is far shorter than a block period
    x = demo_signal(SR)[: 4 * 8192]
    lis = Listener(clf, source=ClipSource(x, SR, blocksize=8192), stall_timeout=0.05)
    with lis:
        assert lis.wait(30)
    assert lis.error is None
    assert lis.counters()["samples_processed"] == x.shape[0]


@pytest.mark.parametrize("value", [-1, 0, float("inf"), float("nan"), "2", True])
def test_bad_stall_timeout_is_refused_by_name(clf, value):
    with pytest.raises(ParameterError, match="stall_timeout"):
        Listener(clf, source=ClipSource(np.zeros(1000, np.float32), SR), stall_timeout=value)


# ---------------------------------------------------------------- ring_seconds and hop


@pytest.mark.parametrize("name, value", [
    ("ring_seconds", float("inf")), ("ring_seconds", float("nan")), ("ring_seconds", 0), ("ring_seconds", -2),
    ("ring_seconds", 1e6), ("ring_seconds", "2"), ("hop", "0.1"), ("hop", float("inf")), ("hop", float("nan")),
    ("hop", -0.1), ("hop", True),
])
def test_bad_ring_seconds_and_hop_are_refused_by_name(clf, name, value):
    with pytest.raises(ParameterError, match=f"^{name}"):
        Listener(clf, source=ClipSource(np.zeros(1000, np.float32), SR), **{name: value})


def test_ring_seconds_limit_names_the_largest_allowed(clf):
    with pytest.raises(ParameterError, match=r"ring_seconds: 1e\+06 s at 16000 Hz .* 2\^30; give at most 67108"):
        Listener(clf, source=ClipSource(np.zeros(1000, np.float32), SR), ring_seconds=1e6)
    Listener(clf, source=ClipSource(np.zeros(1000, np.float32), SR), ring_seconds=60.0)


# ---------------------------------------------------------------- on_event errors


def test_on_event_error_does_not_keep_events_from_the_sinks(clf):
    """on_event raising on the first TagOn: the sinks still get that TagOn, and its final TagOff."""
    seen = []

    def boom(ev):
        seen.append(ev)
        if ev.kind == "on":
            raise ZeroDivisionError("bad handler")

    x = np.tile(demo_signal(SR)[int(0.6 * SR): int(1.4 * SR)], 20)  # a long low tone
    sinks = [RecordingSink(), RecordingSink()]
    lis = Listener(clf, sinks=sinks, source=ClipSource(x, SR, blocksize=256, speed=4.0), on_event=boom)
    with lis:
        assert lis.wait(30)
    assert str(lis.error) == "ZeroDivisionError: bad handler"
    for sink in sinks:
        ev = onoff(sink.events)
        assert ev and ev[0][0] == "on" and ev[-1][0] == "off"
        assert {t for k, t, _ in ev if k == "on"} == {t for k, t, _ in ev if k == "off"}
        assert sink.calls[-1] == "close"
    assert onoff(seen)[0] == onoff(sinks[0].events)[0]


# ---------------------------------------------------------------- stop with a blocked sink


class BlockedSink(RecordingSink):
    """Blocks in its second send until released (like a write to a full pipe)."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, events):
        if self.events:
            self.entered.set()
            self.release.wait()
        super().send(events)


def _start_with_a_blocked_sink(clf, monkeypatch, blocked_after_s):
    """A running listener with a RecordingSink and a BlockedSink; a sink counts as blocked once it has held
    the worker for ``blocked_after_s``."""
    import rtclassify.engine.listener as L

    monkeypatch.setattr(L, "BLOCKED_AFTER_S", blocked_after_s)
    blocked, other = BlockedSink(), RecordingSink()
    x = np.tile(demo_signal(SR), 4)
    lis = Listener(clf, sinks=[other, blocked], source=ClipSource(x, SR, blocksize=256, speed=4.0))
    lis.start()
    return lis, blocked, other


def test_stop_gives_up_on_a_blocked_sink_says_where_and_closes_the_others(clf, monkeypatch):
    lis, blocked, other = _start_with_a_blocked_sink(clf, monkeypatch, 0.1)
    try:
        assert blocked.entered.wait(30)
        result = []
        t = threading.Thread(target=lambda: result.append(lis.stop(timeout=0.3)), daemon=True)
        t.start()
        t.join(20)
        assert not t.is_alive(), "stop() waited for ever on the blocked sink"
        assert result == [False]
        assert lis.finished and lis.running
        assert lis.hung.startswith("sink BlockedSink (send at ")
        assert isinstance(lis.error, RuntimeError)
        assert str(lis.error).startswith("the listener did not stop within 0.3 s: the worker is blocked in sink "
                                         "BlockedSink")
        assert other.calls[-1] == "close" and "close" not in blocked.calls
    finally:
        blocked.release.set()
    assert lis.wait(20) and not lis.running
    assert lis.stop(timeout=5) is True


class SlowSink(RecordingSink):
    """Takes a while over every send (a slow network write), but never blocks."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.first = threading.Event()

    def send(self, events):
        time.sleep(self.seconds)
        super().send(events)
        self.first.set()


def test_a_short_stop_leaves_a_working_worker_to_finish_and_close_the_sinks_itself(clf):
    """stop(timeout=0) on a healthy listener: the worker is working, not blocked. It is not reported as hung,
    and the sinks stay open for its final offs, which it sends before it closes them."""
    slow, other = SlowSink(0.05), RecordingSink()
    x = np.tile(demo_signal(SR), 6)
    lis = Listener(clf, sinks=[other, slow], source=ClipSource(x, SR, blocksize=256, speed=8.0))
    lis.start()
    assert slow.first.wait(30)
    assert lis.stop(timeout=0) is False  # not finished yet
    assert lis.hung is None and lis.error is None
    assert lis.wait(30) and not lis.running
    for sink in (other, slow):
        assert sink.calls[-1] == "close" and sink.calls.count("close") == 1
        ev = onoff(sink.events)
        assert {t for k, t, _ in ev if k == "on"} == {t for k, t, _ in ev if k == "off"}  # every on got its off
    assert lis.stop(timeout=5) is True and lis.error is None


class SlowFinalSink(RecordingSink):
    """Once a tag is on (``sounding``), takes ``seconds`` over its next send (the final offs over a slow
    link), and no time over the others."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.stopping = threading.Event()
        self.sounding = threading.Event()
        self.slow_done = False

    def send(self, events):
        if self.stopping.is_set() and not self.slow_done:
            self.slow_done = True
            time.sleep(self.seconds)
        super().send(events)
        on = set()
        for kind, tag, _ in onoff(self.events):
            (on.add if kind == "on" else on.discard)(tag)
        if on and not self.stopping.is_set():
            self.stopping.set()  # from here on every send is slow, the final offs included
            self.sounding.set()


def test_stop_and_finish_gives_a_working_worker_time_to_send_the_final_offs(clf):
    """What the commands and the exit handler use: a stop whose timeout runs out while the final offs are
    still going out waits as long again, so the offs reach the sinks before they close."""
    from rtclassify.engine.listener import stop_and_finish

    slow = SlowFinalSink(1.4)  # longer than the timeout, shorter than twice it and than BLOCKED_AFTER_S
    x = np.tile(demo_signal(SR), 6)
    lis = Listener(clf, sinks=[slow], source=ClipSource(x, SR, blocksize=256, speed=8.0))
    lis.start()
    assert slow.sounding.wait(30)
    assert stop_and_finish(lis, 1.0) is True
    assert lis.hung is None and lis.error is None and not lis.running
    assert slow.calls[-1] == "close" and slow.calls.count("close") == 1
    ev = onoff(slow.events)
    assert {t for k, t, _ in ev if k == "on"} == {t for k, t, _ in ev if k == "off"}


class SlowCloseSink(RecordingSink):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.closing = threading.Event()

    def close(self):
        self.closing.set()
        time.sleep(self.seconds)
        super().close()


def test_a_worker_slowly_closing_the_sinks_after_a_handover_is_not_called_hung(clf):
    slow = SlowCloseSink(0.8)
    x = np.tile(demo_signal(SR), 4)
    lis = Listener(clf, sinks=[slow], source=ClipSource(x, SR, blocksize=256, speed=8.0))
    lis.start()
    assert lis.stop(timeout=0) is False  # handed over
    assert slow.closing.wait(30)  # the worker is in the sink's close() now
    assert lis.stop(timeout=0.2) is False  # still working: 0.2 s into a 0.8 s close
    assert lis.hung is None and lis.error is None
    assert lis.wait(10) and slow.calls.count("close") == 1


def test_stop_and_finish_abandons_a_worker_still_busy_after_twice_the_timeout(clf):
    """A worker that is never blocked in one call but has not finished after twice the timeout (a long
    backlog into a slow sink): the commands must leave, so it is abandoned with a reason."""
    from rtclassify.engine.listener import stop_and_finish

    slow, other = SlowSink(0.1), RecordingSink()
    x = np.tile(demo_signal(SR), 8)
    lis = Listener(clf, sinks=[other, slow], source=ClipSource(x, SR, blocksize=256, speed=16.0))
    lis.start()
    assert slow.first.wait(30)
    t0 = time.monotonic()
    assert stop_and_finish(lis, 0.3) is False
    assert time.monotonic() - t0 < 0.3 * 2 + 1.0
    assert lis.hung is not None and str(lis.error).startswith("the listener did not stop within 0.6 s")
    assert other.calls[-1] == "close"


def test_a_slow_flush_after_a_quiet_stretch_is_work_not_a_block(clf, monkeypatch):
    """The worker's call times are taken at every call (the flush included): a flush after a quiet stretch
    is not judged by the time of the last hop."""
    import rtclassify.engine.listener as L

    monkeypatch.setattr(L, "BLOCKED_AFTER_S", 0.5)
    sink = RecordingSink()
    lis = Listener(clf, sinks=[sink], source=StallingSource(blocks=20), stall_timeout=30.0)
    lis.start()
    time.sleep(1.0)  # the blocks are in; the worker idles
    real_flush = lis.session.flush

    def slow_flush():
        time.sleep(0.4)
        return real_flush()

    monkeypatch.setattr(lis.session, "flush", slow_flush)
    assert lis.stop(timeout=0.1) is False  # 0.1 s into a 0.4 s flush: working
    assert lis.hung is None and lis.error is None
    assert lis.wait(10) and sink.calls[-1] == "close"


def test_a_later_stop_abandons_a_worker_that_has_become_blocked(clf, monkeypatch):
    lis, blocked, other = _start_with_a_blocked_sink(clf, monkeypatch, 0.2)
    try:
        assert blocked.entered.wait(30)
        assert lis.stop(timeout=0) is False  # in the sink for a moment only: still working
        assert lis.hung is None and "close" not in other.calls
        time.sleep(0.3)
        assert lis.stop(timeout=0.1) is False  # now it has been in the sink for longer than 0.2 s
        assert lis.hung.startswith("sink BlockedSink (send at ")
        assert str(lis.error).startswith("the listener did not stop within 0.1 s: the worker is blocked in sink")
        assert other.calls[-1] == "close" and "close" not in blocked.calls
    finally:
        blocked.release.set()
    assert lis.wait(20) and not lis.running


def test_stop_timeout_is_checked(clf):
    lis = Listener(clf, source=ClipSource(np.zeros(1000, np.float32), SR))
    with pytest.raises(ParameterError, match="timeout"):
        lis.stop(timeout=-1)


class SlowStartSource(StallingSource):
    """A source whose start() takes a while (a device being opened); records the order of start and stop."""

    def __init__(self):
        super().__init__(blocks=0)
        self.order: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def start(self, callback, finished=None):
        self.entered.set()
        self.release.wait(10)
        self.order.append("start")

    def stop(self):
        self.order.append("stop")


def test_stop_during_start_from_another_thread_stops_the_started_source(clf):
    src = SlowStartSource()
    sink = RecordingSink()
    lis = Listener(clf, sinks=[sink], source=src)
    starter = threading.Thread(target=lis.start)
    starter.start()
    assert src.entered.wait(10)
    stopper = threading.Thread(target=lis.stop)
    stopper.start()
    time.sleep(0.2)  # the stop is waiting for start() to finish, not stopping the source before it starts
    assert src.order == []
    src.release.set()
    starter.join(10)
    stopper.join(10)
    assert src.order == ["start", "stop"]
    assert lis.finished and not lis.running and sink.calls[-1] == "close"


def test_a_stop_that_gives_up_waiting_for_a_slow_start_still_leaves_the_source_stopped(clf):
    """stop(timeout) shorter than the source's start: the stop goes ahead (and stops a source not started yet);
    start() then stops the source it has just started, so no audio runs without a worker."""
    src = SlowStartSource()
    lis = Listener(clf, sinks=[RecordingSink()], source=src)
    starter = threading.Thread(target=lis.start)
    starter.start()
    assert src.entered.wait(10)
    assert lis.stop(timeout=0.1) is True
    src.release.set()
    starter.join(10)
    assert src.order[:2] == ["stop", "start"] and src.order[-1] == "stop"


def test_start_after_stop_is_refused(clf):
    src = ClipSource(np.zeros(1000, np.float32), SR)
    sink = RecordingSink()
    lis = Listener(clf, sinks=[sink], source=src)
    lis.stop()
    with pytest.raises(StateError, match="stopped before it started"):  # a RuntimeError, of the project's kind
        lis.start()
    assert "open" not in sink.calls and lis.finished


def test_a_failing_sink_does_not_keep_the_next_sinks_from_the_batch(clf):
    # the sink that fails comes first, on the batch with the first "on": the one after it must still get that
    # batch and then the final flush with its "off"
    class FailsOnFirstOn(RecordingSink):
        def send(self, events):
            if any(e.kind == "on" for e in events):
                raise SinkError("the test sink failed")
            super().send(events)

    failing, after = FailsOnFirstOn(), RecordingSink()
    lis = Listener(clf, sinks=[failing, after], source=ClipSource(demo_signal(SR), SR, blocksize=256, speed=8.0))
    lis.start()
    assert lis.wait(30)
    assert isinstance(lis.error, SinkError)
    ev = onoff(after.events)
    on = {}
    for kind, tag in ((e[0], e[1]) for e in ev):
        on[tag] = on.get(tag, 0) + (1 if kind == "on" else -1)
    assert ev and ev[0][0] == "on" and all(v == 0 for v in on.values()), ev  # the on, then its off
    assert [k for k, _, _ in onoff(failing.events)] == ["off"] * len(onoff(failing.events))  # only the flush


def test_blocked_says_where_an_output_holds_up_the_worker(clf):
    blocked = BlockedSink()
    x = np.tile(demo_signal(SR), 4)
    lis = Listener(clf, sinks=[blocked], source=ClipSource(x, SR, blocksize=256, speed=4.0))
    lis.start()
    try:
        assert lis.blocked(0.0) is None or blocked.entered.is_set()
        assert blocked.entered.wait(30)
        time.sleep(0.3)
        assert lis.blocked(10.0) is None  # not that long yet
        assert lis.blocked(0.2).startswith("sink BlockedSink (send at ")
    finally:
        blocked.release.set()
    lis.stop(timeout=10)
    assert lis.blocked(0.0) is None


@pytest.mark.parametrize("kw, name", [({"channel": float("nan")}, "channel"), ({"channel": float("inf")}, "channel"),
                                      ({"channel": "x"}, "channel"), ({"switch_interval": 0}, "switch_interval"),
                                      ({"switch_interval": float("nan")}, "switch_interval"),
                                      ({"status_interval": -1}, "status_interval"),
                                      ({"status_interval": "x"}, "status_interval")])
def test_bad_listener_numbers_are_refused_by_name_before_anything_opens(clf, kw, name):
    sink = RecordingSink()
    before = sys.getswitchinterval()
    with pytest.raises(ParameterError, match=f"^{name} must be"):
        Listener(clf, sinks=[sink], source=ClipSource(np.zeros(1000, np.float32), SR), **kw)
    assert sink.calls == [] and sys.getswitchinterval() == before


def test_a_source_blocksize_beyond_the_listeners_limit_is_refused_in_the_sources_name(clf):
    """Not as ``max_block`` (4 blocks, an internal setting the caller never gave)."""
    src = ClipSource(np.zeros(1000, np.float32), SR, blocksize=10**7)
    with pytest.raises(ParameterError, match=r"^source: its blocksize must be a whole number of frames from 1 to "
                                             r"65536, got 10000000$"):
        Listener(clf, source=src)
    assert Listener(clf, source=ClipSource(np.zeros(1000, np.float32), SR, blocksize=65536)).blocksize == 65536


@pytest.mark.parametrize("rate", [2000, 768000])
@pytest.mark.parametrize("channels", [None, "0,1"])
def test_a_rate_the_technique_trackers_refuse_says_so_and_the_way_out(clf, rate, channels):
    """The session takes 1000-768000 Hz, the trackers (on by default) 4000-384000: the refusal names them."""
    sink = RecordingSink()
    src = ClipSource(np.zeros((4096, 2), np.float32), rate, name="take.wav")
    with pytest.raises(ParameterError, match=rf"^samplerate: {rate} Hz \(the source 'take.wav'\) is outside the "
                                             r"4000-384000 Hz that the pitch, vibrato and tremolo trackers take "
                                             r"\(techniques, on by default\); pass techniques=False to tag without "
                                             r"them$"):
        Listener(clf, sinks=[sink], source=src, channels=channels)
    with pytest.raises(ParameterError, match="pass techniques=False"):
        Listener(clf, sinks=[sink], source=src, channels=channels, techniques={"fmin": 80.0})
    assert sink.calls == [] and not src.active
    lis = Listener(clf, sinks=[sink], source=src, channels=channels, techniques=False)
    assert lis.session.sample_rate == rate


class _SendOnly:
    def send(self, events):
        pass


@pytest.mark.parametrize("sinks, words", [
    (None, r"^sinks must be a list of sinks \(objects with open\(\), send\(events\) and close\(\); status\(counters\) "
           r"optional\), got None \(none: sinks=\[\] or leave it out\)$"),
    ("midi", r"^sinks must be a list of sinks .* got 'midi'"),
    (RecordingSink(), r"^sinks must be a list of sinks .*\(one sink: sinks=\[sink\]\)$"),
    ([RecordingSink(), _SendOnly()], r"^sinks\[1\]: _SendOnly has no open\(\) or close\(\): a sink needs open\(\), "
                                     r"send\(events\) and close\(\) \(see rtclassify\.sinks\.Sink\)$"),
    ([object()], r"^sinks\[0\]: object has no open\(\) or send\(\) or close\(\)"),
])
def test_bad_sinks_are_refused_at_construction_by_name(clf, sinks, words):
    """A sink without open/close was accepted and failed in start() with an AttributeError; sinks=None was a
    bare TypeError."""
    with pytest.raises(ParameterError, match=words):
        Listener(clf, sinks=sinks, source=ClipSource(np.zeros(1000, np.float32), SR))


def test_sinks_may_be_any_iterable_of_sinks(clf):
    sink = RecordingSink()
    assert Listener(clf, sinks=(s for s in [sink]), source=ClipSource(np.zeros(1000, np.float32), SR)).sinks == [sink]


def test_on_event_refusal_says_it_is_called_per_event(clf):
    with pytest.raises(ParameterError, match=r"^on_event must be callable \(a function called once per event, "
                                             r"on_event\(event\)\), got 5$"):
        Listener(clf, source=ClipSource(np.zeros(1000, np.float32), SR), on_event=5)


def test_the_status_lines_carry_the_outputs_faults(clf, tmp_path):
    """A monitor of an unattended run reads the log's status lines: an OSC destination failing mid-run was said
    once on standard error and never in them. They carry each output's fault so far (its count grows while
    the outage lasts)."""
    import json

    from rtclassify.sinks.log import JsonlSink

    class Flaky(RecordingSink):
        def __init__(self):
            super().__init__()
            self.failed = 0

        def send(self, events):
            super().send(events)
            self.failed += 1

        @property
        def fault(self):
            return f"test output: {self.failed} batch(es) not sent" if self.failed else None

    path = tmp_path / "ev.jsonl"
    log = JsonlSink(path, status_interval=0.05)
    lis = Listener(clf, sinks=[Flaky(), log], source=ClipSource(demo_signal(SR)[: 2 * SR], SR, blocksize=256,
                                                                 speed=4.0))
    assert lis.counters()["output_faults"] == []
    with lis:
        assert lis.wait(30)
    status = [r for r in map(json.loads, path.read_text().splitlines()) if r.get("event") == "status"]
    counts = [int(r["output_faults"][0].split()[2]) for r in status if r["output_faults"]]
    assert len(counts) >= 2 and counts == sorted(counts) and counts[-1] > counts[0]
