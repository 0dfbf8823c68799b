"""Review findings on the multi-stream session, the listener's sinks and the audio sources/devices.

Uses the small real ONNX test bundle (tests/_rtc_bundle.py); the tests that need a JACK server start a
private dummy one (tests/_jackd.py) and skip where jackd is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402

from rtclassify.engine.multistream import MultiStreamSession  # noqa: E402

SR = 16000


class FailingOnce:
    """The real backend, failing on call number ``fail_at`` (1-based) as a transient fault would."""

    def __init__(self, backend, fail_at: int):
        self.inner = backend
        self.fail_at = fail_at
        self.calls = 0

    def run(self, windows):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("transient backend fault")
        return self.inner.run(windows)


# ---------------------------------------------------------------------------------------------- multistream
def test_multistream_runs_the_model_again_after_a_failed_run(clf):
    from rtclassify.engine.session import StreamSession

    x = tb.demo_signal(SR, seed=1)
    x2 = np.ascontiguousarray(np.stack([x, x * np.float32(0.5)], axis=1))
    ref = MultiStreamSession(clf.bundle, clf.backend, [0, 1], sample_rate=SR, record_frames=False)
    ref.process(x2)
    hops = ref.counters["hops"]
    assert hops > 20

    def run(session, backend, blocks):
        errors = 0
        for a in range(0, blocks.shape[0], 1024):
            try:
                session.process(blocks[a:a + 1024])
            except RuntimeError:
                errors += 1
        assert errors == 1
        return session.counters["hops"], backend.calls

    multi = FailingOnce(clf.backend, 5)
    got = run(MultiStreamSession(clf.bundle, multi, [0, 1], sample_rate=SR, record_frames=False), multi, x2)
    single = FailingOnce(clf.backend, 5)
    want = run(StreamSession(clf.bundle, single, sample_rate=SR, record_frames=False), single, x)
    # the failed hop (and the rest of its block) is lost, every later hop runs, as in StreamSession
    assert got == want
    assert hops - 3 <= got[0] < hops


# ---------------------------------------------------------------------------------------------- the listener's sinks
def _clip4():
    from rtclassify.audio.sources import ClipSource

    return ClipSource(np.zeros((SR, 4), np.float32), SR)


@pytest.mark.parametrize("make, select, words", [
    ("midi", dict(channels=[0, 1]), "MidiSink was given no streams, but the listener tags channels 0,1 as streams of "
                                    "their own, which it would send on one MIDI channel; give it streams=[0, 1]"),
    ("osc", dict(channels=[0, 1]), "OscSink was given no streams, but the listener tags channels 0,1 as streams of "
                                   "their own, which it would send on one set of OSC addresses; give it "
                                   "streams=[0, 1]"),
    ("midi-01", dict(channels="2,3"), "MidiSink has streams=[0, 1], which lacks channels 2,3 of the listener's "
                                      "channels 2,3; give it streams=[2, 3] (streams are the input channels"),
    ("osc-01", dict(channels="1-2"), "OscSink has streams=[0, 1], which lacks channel 2 of the listener's "
                                     "channels 1,2"),
    ("midi-01", dict(channel=3), "MidiSink has streams=[0, 1], which lacks the listener's channel 3"),
    ("osc-01", dict(mix=True, channel=None), None),
])
def test_a_multi_stream_listener_refuses_sinks_not_told_about_its_streams(clf, make, select, words):
    from rtclassify.engine.listener import Listener
    from rtclassify.errors import ParameterError
    from rtclassify.sinks.mapping import Mapping
    from rtclassify.sinks.midi import MidiSink
    from rtclassify.sinks.osc import OscSink

    mp = Mapping.default(clf.labels)
    streams = [0, 1] if make.endswith("-01") else None
    sink = MidiSink(mp.midi, virtual="x", streams=streams) if make.startswith("midi") else \
        OscSink(mp.osc, ["127.0.0.1:9"], streams=streams)
    select = {k: v for k, v in select.items() if v is not None}
    if words is None:  # the downmix's events carry channel 0
        Listener(clf, source=_clip4(), sinks=[sink], **select)
        return
    with pytest.raises(ParameterError, match="^sinks: " + words.replace("(", r"\(").replace("[", r"\[")):
        Listener(clf, source=_clip4(), sinks=[sink], **select)


def test_sinks_told_about_the_streams_and_other_sinks_are_taken(clf):
    from rtclassify.engine.listener import Listener
    from rtclassify.sinks.log import JsonlSink
    from rtclassify.sinks.mapping import Mapping
    from rtclassify.sinks.midi import MidiSink
    from rtclassify.sinks.osc import OscSink

    mp = Mapping.default(clf.labels)
    log = JsonlSink("-")
    for select, streams in [(dict(channels=[2, 3]), [2, 3]), (dict(channels=[3, 2]), [0, 1, 2, 3]),
                            (dict(channel=1), None), (dict(channel=1), [1]), ({}, None), (dict(mix=True), None)]:
        sinks = [MidiSink(mp.midi, virtual="x", streams=streams), OscSink(mp.osc, ["127.0.0.1:9"], streams=streams),
                 log]
        lis = Listener(clf, source=_clip4(), sinks=sinks, **select)
        assert lis.sinks == sinks
