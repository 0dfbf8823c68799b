"""The Listener and the sessions used as a library by a host: calls from callbacks, other threads, odd orders.

Uses a real Classifier on the small test bundle (tests/_rtc_bundle.py) and the ClipSource, which calls
the audio callback from its own thread as PortAudio would.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("onnx")

from _rtc_bundle import demo_signal  # noqa: E402
from _streaming import onoff  # noqa: E402

from rtclassify.audio.sources import ClipSource  # noqa: E402
from rtclassify.engine.listener import Listener  # noqa: E402

SR = 16000


class OrderSink:
    """Records open/send/close in order; ``on_send(events)`` runs inside ``send``."""

    def __init__(self, on_send=None):
        self.calls: list[str] = []
        self.events: list = []
        self.on_send = on_send

    def open(self):
        self.calls.append("open")

    def send(self, events):
        self.calls.append("close-then-send" if "close" in self.calls else "send")
        self.events.extend(events)
        if self.on_send is not None:
            self.on_send(events)

    def close(self):
        self.calls.append("close")


def _assert_stopped_cleanly(lis, sink):
    assert lis.wait(30)
    assert lis.finished and not lis.running and lis.error is None
    # nothing was sent to a closed sink, the sink was closed once, last, and every tag that went on went off
    assert "close-then-send" not in sink.calls
    assert sink.calls[-1] == "close" and sink.calls.count("close") == 1
    ev = onoff(sink.events)
    on = {t for k, t, _ in ev if k == "on"}
    assert on and on == {t for k, t, _ in ev if k == "off"}
    assert ev[-1][0] == "off"


def test_stop_from_on_event_sends_the_final_offs_before_the_sinks_close(clf):
    # a host that stops the listener from its event callback (the worker thread): the worker must not close the
    # sinks under itself and then send the final TagOffs to closed sinks
    sink = OrderSink()
    box = {}

    def on_event(ev):
        if ev.kind == "on":
            box["ret"] = box["lis"].stop()

    lis = Listener(clf, sinks=[sink], source=ClipSource(demo_signal(SR), SR, blocksize=256, speed=8.0),
                   on_event=on_event)
    box["lis"] = lis
    lis.start()
    _assert_stopped_cleanly(lis, sink)
    assert box["ret"] is True
    assert lis.stop() is True and sink.calls.count("close") == 1  # a later stop() from the host is harmless


def test_stop_from_a_sinks_send_sends_the_final_offs_before_the_sinks_close(clf):
    box = {}

    def on_send(events):
        if any(e.kind == "on" for e in events):
            box["lis"].stop()

    stopper, other = OrderSink(on_send), OrderSink()
    lis = Listener(clf, sinks=[stopper, other], source=ClipSource(demo_signal(SR), SR, blocksize=256, speed=8.0))
    box["lis"] = lis
    lis.start()
    _assert_stopped_cleanly(lis, stopper)
    _assert_stopped_cleanly(lis, other)


def test_wait_on_the_worker_thread_is_refused_instead_of_waiting_for_itself(clf):
    # wait() in on_event would wait for the worker that runs it: with no timeout it never returned
    box = {}

    def on_event(ev):
        if ev.kind == "on" and "got" not in box:
            try:
                box["got"] = box["lis"].wait(1.0)
            except RuntimeError as exc:
                box["got"] = exc
            box["lis"].stop()

    lis = Listener(clf, source=ClipSource(demo_signal(SR), SR, blocksize=256, speed=8.0), on_event=on_event)
    box["lis"] = lis
    lis.start()
    assert lis.wait(30)
    lis.stop()
    assert isinstance(box["got"], RuntimeError) and "worker thread" in str(box["got"])
    assert lis.error is None


_EXIT_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
from _rtc_bundle import demo_signal
from rtclassify.audio.sources import ClipSource
from rtclassify.engine.listener import Listener
from rtclassify.model.classifier import Classifier

log = open(sys.argv[2], "w", buffering=1)

class FileSink:
    def open(self):
        log.write("open\n")
    def send(self, events):
        for e in events:
            if e.kind in ("on", "off"):
                log.write(f"{e.kind} {e.tag}\n")
    def close(self):
        log.write("close\n")

x = demo_signal(16000)[: int(1.2 * 16000)]  # ends inside the low tone: a tag is on
lis = Listener(Classifier.load(sys.argv[1]), sinks=[FileSink()],
               source=ClipSource(x, 16000, blocksize=256, speed=1.0, loop=True))
lis.start()
end = time.monotonic() + 60
while time.monotonic() < end:
    with open(sys.argv[2]) as f:
        if "on " in f.read():
            break
    time.sleep(0.05)
# the host leaves without stop()
"""


def test_a_listener_left_running_at_exit_is_stopped_and_its_sinks_get_the_offs(clf, tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "host.py"
    script.write_text(_EXIT_SCRIPT)
    log = tmp_path / "sink.log"
    # the installed package (in CI the checkout itself has no compiled extension, so it must not come first)
    proc = subprocess.run([sys.executable, str(script), str(clf.bundle.path), str(log), os.path.dirname(__file__)],
                          timeout=120, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "open" and lines[-1] == "close", lines
    on = {ln.split()[1] for ln in lines if ln.startswith("on ")}
    off = {ln.split()[1] for ln in lines if ln.startswith("off ")}
    assert on and on <= off


class _HoldingBackend:
    """Wraps a backend; the first ``run`` waits until released, so a test can call the session meanwhile."""

    def __init__(self, inner):
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, windows):
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30)
        return self.inner.run(windows)


@pytest.mark.parametrize("kind", ["stream", "multistream"])
@pytest.mark.parametrize("call", ["process", "flush", "reset"])
def test_a_session_call_from_a_second_thread_during_one_is_refused_untouched(clf, kind, call):
    # without a guard, the second call ran through the session's state while the first was inside the model
    # (the native objects refuse only calls that overlap inside them) and both streams were silently mixed
    from rtclassify.engine.multistream import MultiStreamSession
    from rtclassify.engine.session import StreamSession
    from rtclassify.errors import StateError

    x = demo_signal(SR)[: SR]
    if kind == "multistream":
        x = np.stack([x, x], 1)

    def make(backend):
        if kind == "stream":
            return StreamSession(clf.bundle, backend, sample_rate=SR, max_block=4096)
        return MultiStreamSession(clf.bundle, backend, [0, 1], sample_rate=SR, max_block=4096)

    def probs(session):
        frames = session.last_frames if kind == "stream" else [f for fs in session.last_frames for f in fs]
        return np.array([fr.probs for fr in frames])

    ref = make(clf.backend)
    ref_events = ref.process(x)
    ref_probs = probs(ref)
    held = _HoldingBackend(clf.backend)
    sess = make(held)
    out = {}
    first = threading.Thread(target=lambda: out.setdefault("events", sess.process(x)))
    first.start()
    try:
        assert held.entered.wait(30)
        with pytest.raises(StateError, match="another thread"):
            getattr(sess, call)(*((x[:512],) if call == "process" else ()))
    finally:
        held.release.set()
        first.join(30)
    # the first call finished undisturbed, with the outputs of a session used by one thread
    assert onoff(out["events"]) == onoff(ref_events) and np.array_equal(probs(sess), ref_probs)
    assert len(ref_probs) > 0
    sess.process(x[:512])  # and the session takes calls again


class _FailingStartSource(ClipSource):
    """A source whose start fails, as an audio device that is busy or gone."""

    def start(self, callback, finished=None):
        from rtclassify.errors import DeviceError

        raise DeviceError("input device 'test' is busy")


def test_a_source_that_fails_to_start_raises_from_start_instead_of_hanging_it(clf):
    # start() holds its lifecycle lock while it runs; its failure path closed the sinks under the same lock
    # and waited for it for ever
    from rtclassify.errors import DeviceError

    sink = OrderSink()
    lis = Listener(clf, sinks=[sink], source=_FailingStartSource(demo_signal(SR), SR, blocksize=256))
    out = {}

    def start():
        try:
            lis.start()
        except BaseException as exc:  # noqa: BLE001 - looked at below
            out["exc"] = exc

    t = threading.Thread(target=start, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "Listener.start() hung after the source failed to start"
    assert isinstance(out.get("exc"), DeviceError)
    assert sink.calls == ["open", "close"]
    assert lis.finished and not lis.running and lis.wait(5)
    assert lis.stop() is True and sink.calls.count("close") == 1
