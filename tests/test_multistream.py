"""Multi-stream tagging: MultiStreamSession (one batched backend call per hop), the Listener with
``channels``, the per-stream MIDI channels and OSC addresses, the display's matrix and ``--channels``.

Uses the small real ONNX test bundle (tests/_rtc_bundle.py); the shipped default bundle's CNN is checked
too when it exists.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402
from _streaming import callback_peak_bytes, onoff, stream_all  # noqa: E402

from rtclassify.audio.sources import CallbackFlags, ClipSource  # noqa: E402
from rtclassify.detect.events import TagLevel, TagOff, TagOn  # noqa: E402
from rtclassify.engine.listener import Listener  # noqa: E402
from rtclassify.engine.multistream import MultiStreamSession, parse_channels  # noqa: E402
from rtclassify.errors import ConfigError, ParameterError, SinkError  # noqa: E402
from rtclassify.model.classifier import Classifier  # noqa: E402
from rtclassify.sinks.mapping import Mapping, OscMapping, load_mapping  # noqa: E402

SR = 16000


class CountingBackend:
    """The real backend, with every call's batch size recorded."""

    def __init__(self, backend):
        self.inner = backend
        self.batches: list[int] = []

    def run(self, windows):
        self.batches.append(int(windows.shape[0]))
        return self.inner.run(windows)


def signals(sr: int, S: int) -> np.ndarray:
    """(n, S) float32: different material per stream (other seeds, gains and offsets of the demo signal)."""
    cols = []
    for k in range(S):
        x = tb.demo_signal(sr, seed=k) * np.float32(0.4 + 0.15 * k)
        cols.append(np.roll(x, int(0.37 * k * sr)))
    return np.ascontiguousarray(np.stack(cols, axis=1))


# ---------------------------------------------------------------------------------------------- channel lists
@pytest.mark.parametrize("spec, want", [
    ("0-7", (0, 1, 2, 3, 4, 5, 6, 7)), ("0,2,5", (0, 2, 5)), ("0-2,8,10-11", (0, 1, 2, 8, 10, 11)),
    (" 3 ", (3,)), ("5,1", (5, 1)), ([2, 0], (2, 0)), (np.arange(3), (0, 1, 2)),
])
def test_parse_channels(spec, want):
    assert parse_channels(spec) == want


@pytest.mark.parametrize("spec, text", [
    ("", "expected channel numbers"), ("a-b", "expected channel numbers"), ("3-1", "runs backwards"),
    ("1,1", "channel 1 is given twice"), ("0-3,2", "given twice"), ("-1", "expected channel numbers"),
    ([], "no channel given"), ([0, -1], ">= 0"), ([True], ">= 0"), (3, "sequence"),
    ("0-999999999", "beyond the last possible channel, 1023"), ([2, 1024], "channel 1024 is beyond"),
])
def test_parse_channels_errors(spec, text):
    with pytest.raises(ParameterError, match=text):
        parse_channels(spec)


# ---------------------------------------------------------------------------------------------- the session
@pytest.mark.parametrize("sr", [16000, 48000])
def test_each_stream_equals_a_single_stream_session_bit_for_bit(clf, sr):
    x = signals(sr, 3)
    chans = (4, 0, 2)  # any order: stream k is column k and carries channel chans[k]
    sizes = [700, 1, 2048, 333, 0, 4096]
    m = clf.multistream(chans, sample_rate=sr, max_block=1024, level_rate=None)
    events, frames = stream_all(m, x, sizes, per_stream=True)
    total_on = 0
    for k, c in enumerate(chans):
        single = clf.stream(sample_rate=sr, max_block=1024, level_rate=None, channel=c)
        ev1, fr1 = stream_all(single, x[:, k], sizes, per_stream=False)
        mine = [e for e in events if e.channel == c]
        assert mine == ev1  # same events, same times, and they carry the channel
        assert len(frames[k]) == len(fr1) > 0
        np.testing.assert_array_equal(np.stack([f.probs for f in frames[k]]), np.stack([f.probs for f in fr1]))
        np.testing.assert_array_equal(np.stack([f.smoothed for f in frames[k]]), np.stack([f.smoothed for f in fr1]))
        assert [f.index for f in frames[k]] == [f.index for f in fr1]
        assert [f.time for f in frames[k]] == [f.time for f in fr1]
        total_on += sum(e.kind == "on" for e in mine)
    assert {e.channel for e in events} == set(chans)
    assert total_on >= 3
    # the streams really differ (different material gives different outputs)
    assert not np.array_equal(np.stack([f.probs for f in frames[0]]), np.stack([f.probs for f in frames[1]]))


def test_one_backend_call_per_hop_with_every_stream_in_the_batch(clf):
    S = 5
    x = signals(48000, S)
    backend = CountingBackend(clf.backend)
    m = MultiStreamSession(clf.bundle, backend, list(range(S)), sample_rate=48000, max_block=512)
    events, frames = stream_all(m, x, [256], per_stream=True)
    hops = m.counters["hops"]
    assert hops == len(frames[0]) > 10
    assert backend.batches == [S] * hops
    # the same audio through one stream: as many hops, one window per call
    one = CountingBackend(clf.backend)
    s = MultiStreamSession(clf.bundle, one, [0], sample_rate=48000, max_block=512)
    stream_all(s, x[:, :1], [256], per_stream=True)
    assert one.batches == [1] * hops


def test_blocks_longer_than_a_hop_still_batch_every_hop(clf):
    backend = CountingBackend(clf.backend)
    m = MultiStreamSession(clf.bundle, backend, [0, 1], sample_rate=SR, max_block=65536, record_frames=False)
    x = signals(SR, 2)
    m.process(x)  # one call, many hops
    assert len(backend.batches) == m.counters["hops"] > 20
    assert set(backend.batches) == {2}


def test_dtypes_and_one_dimensional_single_stream(clf):
    x = signals(SR, 2)
    ref, _ = stream_all(clf.multistream([0, 1], sample_rate=SR), x, [1000], per_stream=True)
    got, _ = stream_all(clf.multistream([0, 1], sample_rate=SR), x.astype(np.float64), [1000], per_stream=True)
    assert got == ref
    i16 = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    a, _ = stream_all(clf.multistream([0, 1], sample_rate=SR), i16, [1000], per_stream=True)
    b, _ = stream_all(clf.multistream([0, 1], sample_rate=SR), i16.astype(np.float32) / 32768, [1000], per_stream=True)
    assert a == b
    m = clf.multistream([3], sample_rate=SR)
    ev1 = m.process(x[:, 0]) + m.flush()
    assert ev1 and {e.channel for e in ev1} == {3}


@pytest.mark.parametrize("block, text", [
    (np.zeros((10, 3), np.float32), r"shape \(frames, 2\)"),
    (np.zeros(10, np.float32), r"shape \(frames, 2\)"),
    (np.zeros((10, 2), np.int32), "dtype int32"),
    (np.zeros((2, 10, 2), np.float32), r"shape \(frames, 2\)"),
])
def test_bad_blocks(clf, block, text):
    with pytest.raises(ParameterError, match=text):
        clf.multistream([0, 1], sample_rate=SR).process(block)


def test_bad_parameters(clf):
    with pytest.raises(ParameterError, match="given twice"):
        clf.multistream([1, 1])
    with pytest.raises(ParameterError, match="max_block"):
        clf.multistream([0, 1], max_block=0)
    with pytest.raises(ParameterError, match="on_frame"):
        clf.multistream([0, 1], on_frame=3)


def test_flush_turns_every_stream_off_then_reset(clf):
    x = signals(SR, 3)[: int(1.2 * SR)]  # ends inside the first tone of stream 0
    m = clf.multistream([0, 1, 2], sample_rate=44100, level_rate=0)
    ev = m.process(x)
    on = {(e.channel, e.tag) for e in ev if e.kind == "on"}
    assert on and m.active_tags[0]
    tail = m.flush()
    offs = {(e.channel, e.tag) for e in tail if e.kind == "off"}
    assert {(c, t) for c, tags in m.active_tags.items() for t in tags} == set()
    assert on - {(e.channel, e.tag) for e in ev if e.kind == "off"} <= offs
    assert m.flush() == []
    with pytest.raises(RuntimeError, match="flushed"):
        m.process(x)
    m.reset()
    assert m.counters["hops"] == 0 and m.stream_time == 0
    again = m.process(x) + m.flush()
    assert onoff([e for e in again if e.channel == 0]) == onoff([e for e in ev + tail if e.channel == 0])


def test_counters_and_on_frame(clf):
    seen = []
    m = clf.multistream([2, 7], sample_rate=48000, on_frame=lambda c, fr: seen.append((c, fr.index)))
    x = signals(48000, 2)
    x[100:110, 1] = np.nan
    m.process(x)
    c = m.counters
    assert c["streams"] == 2 and c["samples_in"] == x.shape[0]
    assert c["hops"] == len(m.last_frames[0]) == len(m.last_frames[1]) > 0
    assert c["nonfinite_replaced"] == 10
    assert c["compute_ms_mean"] > 0 and c["latency_algorithmic_ms"] == pytest.approx(1e3 * m.latency_s)
    assert seen[:2] == [(2, m.last_frames[0][0].index), (7, m.last_frames[1][0].index)]
    assert "2 streams" in repr(m)


def test_trained_model_rows_are_independent_of_the_batch():
    """The shipped model (a CNN) gives each stream exactly what it gives that stream alone."""
    from rtclassify.model.bundle import default_bundle_path

    path = default_bundle_path()
    if not (path / "model.json").is_file():
        pytest.skip(f"no shipped default bundle at {path}")
    clf = Classifier.load(path, backend="onnx")
    x = signals(SR, 4)[: 3 * SR]
    m = clf.multistream([0, 1, 2, 3], sample_rate=SR, level_rate=0)
    _, frames = stream_all(m, x, [4096], per_stream=True)
    for k in range(4):
        s = clf.stream(sample_rate=SR, level_rate=0, channel=k)
        _, fr1 = stream_all(s, x[:, k], [4096], per_stream=False)
        np.testing.assert_array_equal(np.stack([f.probs for f in frames[k]]), np.stack([f.probs for f in fr1]))


# ---------------------------------------------------------------------------------------------- the listener
class RecordingSink:
    def __init__(self):
        self.events: list = []
        self.calls: list[str] = []

    def open(self):
        self.calls.append("open")

    def send(self, events):
        self.events.extend(events)

    def close(self):
        self.calls.append("close")


def test_listener_tags_each_channel_as_its_own_stream(clf):
    x = signals(SR, 3)
    four = np.zeros((x.shape[0], 4), np.float32)
    four[:, 3], four[:, 1] = x[:, 0], x[:, 1]  # channel 0 and 2 are silent
    sink = RecordingSink()
    lis = Listener(clf, sinks=[sink], source=ClipSource(four, SR, blocksize=256, speed=8.0), channels="3,1,2")
    with lis:
        assert lis.wait(30)
    assert lis.error is None
    assert lis.channels == (3, 1, 2)
    for c, col in ((3, x[:, 0]), (1, x[:, 1])):
        expect = onoff(clf.tag(col, SR, level_rate=0).events)
        assert expect and onoff([e for e in sink.events if e.channel == c]) == expect
    assert onoff([e for e in sink.events if e.channel == 2]) == []  # silent input: nothing turns on
    assert {e.channel for e in sink.events} <= {1, 2, 3}
    c = lis.counters()
    assert c["samples_in"] == c["samples_processed"] == x.shape[0]
    assert c["dropped_samples"] == 0
    assert c["session_streams"] == 3 and c["hops"] > 0
    assert sink.calls == ["open", "close"]


def test_listener_parameters(clf):
    src = ClipSource(np.zeros((1000, 2), np.float32), SR)
    with pytest.raises(ParameterError, match="not several"):
        Listener(clf, source=src, channels=[0, 1], channel=0)
    with pytest.raises(ParameterError, match="not several"):
        Listener(clf, source=src, channels=[0, 1], mix=True)
    with pytest.raises(ParameterError, match="channel 2 does not exist: the source has 2"):
        Listener(clf, source=src, channels="0-2")
    with pytest.raises(ParameterError, match="given twice"):
        Listener(clf, source=src, channels="0,0")


@pytest.mark.parametrize("nch, chans", [(4, (0, 1, 2, 3)), (6, (1, 2, 3)), (6, (5, 0, 3)), (2, (1,))])
def test_multi_callback_copies_without_allocating(clf, nch, chans):
    """The callback moves the chosen columns into the ring, interleaved, without block-sized allocations."""
    bs = 4096
    src = ClipSource(np.zeros((bs, nch), np.float32), SR, blocksize=bs)
    lis = Listener(clf, source=src, blocksize=bs, channels=chans)
    from rtclassify._core import SampleRing

    P = lis._stride
    assert P >= len(chans) and P & (P - 1) == 0
    lis._ring = SampleRing(16 * bs * P)
    cb = lis._make_callback()
    block = np.random.default_rng(0).standard_normal((bs, nch)).astype(np.float32)
    flags = CallbackFlags()
    peak = callback_peak_bytes(cb, lis._ring, block, flags, pop=bs * P)
    assert peak < bs, f"the callback allocated {peak} bytes at peak (a column is {bs * 4})"
    cb(block, bs, None, flags)
    cb(block[:100], 100, None, flags)  # a short last block
    out = lis._ring.pop(2 * bs * P).reshape(-1, P)
    want = np.concatenate([block, block[:100]])[:, list(chans)]
    np.testing.assert_array_equal(out[:, :len(chans)], want)


def test_ring_overflow_drops_whole_frames(clf):
    """Three streams (stride 4) through a ring that overflows: every popped frame is still one instant."""
    src = ClipSource(np.zeros((256, 3), np.float32), SR, blocksize=256)
    lis = Listener(clf, source=src, blocksize=256, channels=[0, 1, 2])
    from rtclassify._core import SampleRing

    lis._ring = SampleRing(1000 * lis._stride)  # 1024 frames
    cb = lis._make_callback()
    t = 0
    for n in (256, 100, 256, 77, 256, 256, 256, 31, 256):  # 1744 frames into 1024
        frames = np.arange(t, t + n, dtype=np.float32)[:, None] * 8 + np.arange(3, dtype=np.float32)
        cb(frames, n, None, CallbackFlags())
        t += n
    assert lis._ring.dropped > 0 and lis._ring.dropped % lis._stride == 0
    out = lis._ring.pop(1 << 20).reshape(-1, lis._stride)[:, :3]
    idx = out[:, 0] / 8
    np.testing.assert_array_equal(out - out[:, :1], np.tile([0, 1, 2], (len(out), 1)))
    np.testing.assert_array_equal(idx, np.arange(t - len(out), t))


# ---------------------------------------------------------------------------------------------- sinks
class FakeMidiOut:
    """Stands in for the rtmidi port (the JACK end-to-end test uses a real one)."""

    def __init__(self):
        self.messages: list[list[int]] = []

    def send_message(self, msg):
        self.messages.append(list(msg))

    def close_port(self):
        pass

    def delete(self):
        pass


def test_midi_stream_k_sends_on_channel_base_plus_k():
    from rtclassify.sinks.midi import MidiSink

    labels = ("piano", "speech", "drums")
    mapping = load_mapping_text("[midi]\nchannel = 3\n", labels).midi
    sink = MidiSink(mapping, virtual="x", streams=[5, 0, 2])
    assert sink.midi_channels == [3, 4, 5]
    sink._out = out = FakeMidiOut()
    sink.send([TagOn(1.0, 0.0, 5, "piano", 1.0), TagLevel(1.0, 0.0, 5, "piano", 1.0), TagOn(1.0, 0.0, 0, "piano", 1.0),
               TagLevel(1.0, 0.0, 0, "piano", 1.0), TagLevel(1.0, 0.0, 2, "drums", 0.5),
               TagOn(1.1, 0.0, 2, "speech", 0.5), TagLevel(1.1, 0.0, 2, "speech", 0.5), TagOff(1.2, 0.0, 5, "piano")])
    assert out.messages == [
        [0x92, 36, 127], [0xB2, 20, 127],  # stream 0 (input 5): MIDI channel 3
        [0x93, 36, 127], [0xB3, 20, 127],  # stream 1 (input 0): channel 4, the same note on its own channel
        [0xB4, 22, 64],                    # stream 2 (input 2): channel 5
        [0x94, 37, 64], [0xB4, 21, 64],
        [0x82, 36, 0],                     # only stream 0's piano turns off
    ]
    assert sink.sounding_by_channel == {3: {}, 4: {36: "piano"}, 5: {37: "speech"}}
    with pytest.raises(SinkError, match="input channel 7, which is not one of the sink's streams"):
        sink.send([TagOn(1.0, 0.0, 7, "piano", 1.0)])
    out.messages.clear()
    sink.close()
    assert sorted(out.messages) == [[0x83, 36, 0], [0x84, 37, 0]]
    assert sink.sounding_by_channel == {3: {}, 4: {}, 5: {}}


def test_midi_needs_a_channel_per_stream():
    from rtclassify.sinks.midi import MidiSink

    mapping = load_mapping_text("[midi]\nchannel = 10\n", ("piano",)).midi
    MidiSink(mapping, virtual="x", streams=range(7))  # channels 10-16
    with pytest.raises(SinkError, match="8 streams from MIDI channel 10 need channels 10-17, but MIDI has 16"):
        MidiSink(mapping, virtual="x", streams=range(8))
    with pytest.raises(SinkError, match="streams is empty"):
        MidiSink(mapping, virtual="x", streams=[])


def load_mapping_text(text: str, labels):
    d = tempfile.mkdtemp()
    p = os.path.join(d, "m.toml")
    with open(p, "w") as f:
        f.write(text)
    return load_mapping(p, labels)


def osc_receive(sock, n: int, timeout: float = 5.0) -> list[tuple[str, list]]:
    from pythonosc.osc_message import OscMessage

    out = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        m = OscMessage(data)
        out.append((m.address, list(m.params)))
    return out


@pytest.fixture
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    yield s
    s.close()


def test_osc_streams_in_the_address(udp):
    from rtclassify.sinks.osc import OscSink

    labels = ("piano", "singing")
    mapping = load_mapping_text('[osc.tags]\nsinging = "/voice/singing"\n', labels).osc
    assert mapping.streams == "path"
    with OscSink(mapping, [("127.0.0.1", udp.getsockname()[1])], streams=[0, 3]) as sink:
        sink.send([TagOn(1.0, 0.0, 3, "piano", 0.75), TagLevel(1.0, 0.0, 3, "piano", 0.75),
                   TagLevel(1.0, 0.0, 0, "singing", 0.5), TagOff(1.1, 0.0, 3, "piano")])
        got = osc_receive(udp, 4)
        with pytest.raises(SinkError, match="input channel 1, which is not one of the sink's streams"):
            sink.send([TagOn(1.0, 0.0, 1, "piano", 0.75)])
    assert got == [("/rtclassify/3/on", ["piano"]), ("/rtclassify/3/tag/piano", [0.75]),
                   ("/voice/singing/0", [0.5]), ("/rtclassify/3/off", ["piano"])]


def test_osc_streams_as_first_argument(udp):
    from rtclassify.sinks.osc import OscSink

    mapping = load_mapping_text('[osc]\nstreams = "argument"\nprefix = "/stage"\n', ("piano",)).osc
    assert mapping.streams == "argument"
    with OscSink(mapping, [("127.0.0.1", udp.getsockname()[1])], streams=[0, 3]) as sink:
        sink.send([TagOn(1.0, 0.0, 3, "piano", 0.75), TagLevel(1.0, 0.0, 3, "piano", 0.75),
                   TagOn(1.0, 0.0, 0, "piano", 0.5), TagLevel(1.0, 0.0, 0, "piano", 0.5)])
        got = osc_receive(udp, 4)
    assert got == [("/stage/on", [3, "piano"]), ("/stage/tag/piano", [3, 0.75]),
                   ("/stage/on", [0, "piano"]), ("/stage/tag/piano", [0, 0.5])]


def test_osc_single_stream_addresses_unchanged(udp):
    from rtclassify.sinks.osc import OscSink

    with OscSink(OscMapping(), [("127.0.0.1", udp.getsockname()[1])]) as sink:
        sink.send([TagOn(1.0, 0.0, 4, "piano", 0.75), TagLevel(1.0, 0.0, 4, "piano", 0.75)])
        got = osc_receive(udp, 2)
    assert got == [("/rtclassify/on", ["piano"]), ("/rtclassify/tag/piano", [0.75])]


def test_mapping_streams_key():
    with pytest.raises(ConfigError, match=r"m.toml:2: osc.streams: must be \"path\" or \"argument\", got 'x'"):
        load_mapping_text('[osc]\nstreams = "x"\n', ("piano",))
    assert Mapping.default(("piano",)).osc.streams == "path"
    assert OscMapping(prefix="/a/b").stream_address("/a/b/tag/x", 2) == "/a/b/2/tag/x"
    assert OscMapping().stream_address("/other/x", 2) == "/other/x/2"


def test_display_matrix_shows_each_channel():
    from rich.console import Console

    from rtclassify.sinks.display import LiveDisplay

    buf = io.StringIO()
    d = LiveDisplay(("piano", "speech"), title="multi", channels=[0, 5], console=Console(file=buf, width=100))
    d.send([TagOn(1.0, 0.0, 5, "speech", 1.0), TagLevel(1.0, 0.0, 0, "piano", 0.4), TagOff(1.5, 0.0, 5, "speech"),
            TagOn(1.6, 0.0, 0, "piano", 0.8)])
    assert d.active_by_channel == {0: {"piano": True, "speech": False}, 5: {"piano": False, "speech": False}}
    assert d.levels_by_channel[5]["speech"] == 1.0 and d.levels_by_channel[0]["piano"] == 0.8
    Console(file=buf, width=100).print(d.render())
    text = buf.getvalue()
    rows = {line.split()[0]: line for line in text.splitlines() if line.split()}
    assert rows["channel"].split()[1:] == ["0", "5"]
    assert rows["piano"].split()[1:] == ["████·", "·····"]
    assert rows["speech"].split()[1:] == ["·····", "█████"]
    assert "+piano@0" in text and "-speech@5" in text


# ---------------------------------------------------------------------------------------------- command line
def rtc(*args, timeout=120):
    env = dict(os.environ, JACK_DEFAULT_SERVER=f"none{uuid.uuid4().hex[:6]}", JACK_NO_START_SERVER="1",
               COLUMNS="100")
    return subprocess.run([sys.executable, "-m", "rtclassify", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tempfile.gettempdir())


def test_demo_clip_channels_as_streams(tmp_path, clf):
    import soundfile as sf

    x = signals(SR, 2)[: int(2.5 * SR)]
    three = np.zeros((x.shape[0], 3), np.float32)
    three[:, 0], three[:, 2] = x[:, 0], x[:, 1]
    clip = tmp_path / "three.wav"
    sf.write(clip, three, SR, subtype="FLOAT")
    log = tmp_path / "ev.jsonl"
    r = rtc("demo", "--bundle", str(clf.bundle.path), "--clip", str(clip), "--channels", "0,2", "--speed", "4",
            "--no-display", "--log", str(log))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert " ch 0 " in r.stdout and " ch 2 " in r.stdout
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    for c, col in ((0, x[:, 0]), (2, x[:, 1])):
        want = [(e.kind, e.tag, round(e.stream_time, 6)) for e in clf.tag(col, SR, level_rate=0).events]
        got = [(e["event"], e["tag"], round(e["stream_time"], 6)) for e in recs
               if e.get("channel") == c and e["event"] in ("on", "off")]
        assert want and got == want
    assert recs[-1]["event"] == "status" and recs[-1]["dropped_samples"] == 0


@pytest.mark.parametrize("args, code, words", [
    (["listen", "--channels", "0-3", "--channel", "1"], 2, "not allowed with argument"),
    (["listen", "--channels", "0-3", "--mix"], 2, "not allowed with argument"),
    (["listen", "--channels", "3-1"], 2, "runs backwards"),
    (["listen", "--channels", "x"], 2, "0-based"),
    (["demo", "--channels", "0-3"], 2, "--channels 0-3: "),  # names the option and the clip (demo.flac)
])
def test_channels_errors_are_one_line(args, code, words, clf):
    r = rtc(*args, "--bundle", str(clf.bundle.path))
    assert r.returncode == code, r.stderr
    assert words in r.stderr.strip().splitlines()[-1]
    if args[0] == "demo":
        assert "channel 1 is not in " in r.stderr and "demo.flac, which has 1 channel (0)" in r.stderr
    assert "Traceback" not in r.stderr


def test_listen_help_mentions_channels():
    r = rtc("listen", "--help")
    assert r.returncode == 0 and "--channels LIST" in r.stdout
