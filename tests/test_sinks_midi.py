"""MIDI sink through a real rtmidi loopback: a MidiIn opens the sink's virtual port and records.

Runs on the ALSA sequencer when /dev/snd/seq exists, and on a private dummy
JACK server (``jackd -d dummy``) when jackd is installed; each API skips with
its reason otherwise.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import pytest

rtmidi = pytest.importorskip("rtmidi")

from _jackd import JackServer, missing, skip_or_fail  # noqa: E402

from rtclassify.detect.events import TagLevel, TagOff, TagOn, TechniqueValues, TremoloOff, TremoloOn, VibratoOn  # noqa: E402
from rtclassify.errors import SinkError  # noqa: E402
from rtclassify.sinks.mapping import Mapping, MidiMapping, MidiTag  # noqa: E402
from rtclassify.sinks.midi import MidiSink, list_midi_outputs  # noqa: E402

LABELS = ("piano", "organ", "guitar", "bass", "strings", "brass", "woodwind", "mallet", "drums", "synth", "singing",
          "speech")
HAVE_SEQ = os.path.exists("/dev/snd/seq")
SERVER: dict[str, JackServer] = {}


@pytest.fixture(scope="module")
def jack_server():
    gone = missing("jackd", "jack_lsp")
    if gone:
        skip_or_fail(f"JACK MIDI needs {', '.join(gone)} (Debian: jackd2)")
    with JackServer() as server:
        SERVER["jack"] = server
        yield server
        SERVER.pop("jack", None)


@pytest.fixture(params=["alsa", "jack"])
def api(request, monkeypatch):
    if request.param == "alsa":
        if not HAVE_SEQ:
            pytest.skip("the ALSA sequencer is not available here (/dev/snd/seq missing; modprobe snd-seq)")
    else:
        server = request.getfixturevalue("jack_server")
        monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
        monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    return request.param


class Recorder:
    """A MidiIn that records every message from the port named ``source``.

    On JACK it opens a virtual input and connects ``source`` to it by exact name (jack_connect), so
    ports that other tests are closing meanwhile cannot shift an index; on ALSA it opens the port by
    index once the port list is stable.

    Messages are read from rtmidi's own queue, never through a Python callback: on JACK the callback
    runs inside the receiver's process cycle and must take the GIL first, and a receiver that misses
    its cycle that way reads a MIDI buffer the sender has already cleared and refilled, so it records
    stale events (the first message of the burst over and over) instead of what was sent.
    """

    def __init__(self, api: str, source: str | None, server: JackServer | None = None, client: str | None = None,
                 port: str = "in"):
        a = rtmidi.API_LINUX_ALSA if api == "alsa" else rtmidi.API_UNIX_JACK
        client = client or f"rec{uuid.uuid4().hex[:6]}"
        self.midi_in = rtmidi.MidiIn(a, name=client)
        self.messages: list[list[int]] = []
        if source is None:  # only offer an input port, as a DAW does, for a sender to open
            self.midi_in.open_virtual_port(port)
        elif api == "jack":
            self.midi_in.open_virtual_port("in")
            server.connect(source, f"{client}:in")
        else:
            ports = stable_ports(self.midi_in)
            hits = [i for i, p in enumerate(ports) if source in p]
            assert len(hits) == 1, f"port {source!r} not found once in {ports}"
            self.midi_in.open_port(hits[0])

    def poll(self) -> list[list[int]]:
        """Move what rtmidi has queued into ``messages``; returns all recorded so far."""
        while (got := self.midi_in.get_message()) is not None:
            self.messages.append(list(got[0]))
        return list(self.messages)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[list[int]]:
        end = time.monotonic() + timeout
        while len(self.poll()) < n and time.monotonic() < end:
            time.sleep(0.01)
        return list(self.messages)

    def settle(self, quiet: float = 0.3) -> list[list[int]]:
        """Wait until no message arrived for ``quiet`` seconds."""
        n = -1
        while n != len(self.poll()):
            n = len(self.messages)
            time.sleep(quiet)
        return list(self.messages)

    def close(self):
        self.midi_in.close_port()
        self.midi_in.delete()


def stable_ports(midi) -> list[str]:
    """The port list once two reads 0.1 s apart agree."""
    ports = midi.get_ports()
    for _ in range(50):
        time.sleep(0.1)
        again = midi.get_ports()
        if again == ports:
            return ports
        ports = again
    return ports


def late_clients() -> str:
    """For an assertion message: the clients this module's JACK server reported late, if any."""
    server = SERVER.get("jack")
    late = server.xruns() if server is not None else []
    return f"; JACK server reported late clients: {late}" if late else ""


def unique() -> str:
    return f"rtc-{uuid.uuid4().hex[:6]}"


def opened_sink(api: str, mapping: MidiMapping | None = None):
    name = unique()
    sink = MidiSink(mapping or Mapping.default(LABELS).midi, virtual=name, api=api)
    sink.open()
    rec = Recorder(api, f"rtclassify:{name}" if api == "jack" else name, SERVER.get("jack"))
    time.sleep(0.2)  # let the connection settle before the first message
    return sink, rec


def _on(t: float, tag: str, prob: float) -> list:
    """A tag turning on as the decoder says it: its TagOn, then its level (a sink sends levels from TagLevel
    events only, so that a decoder without levels, level_rate = 0, leaves none at a receiver)."""
    return [TagOn(t, 0.0, 0, tag, prob), TagLevel(t, 0.0, 0, tag, prob)]


def test_note_on_off_and_level_cc(api):
    sink, rec = opened_sink(api)
    try:
        t = time.time()
        sink.send([TagOn(1.0, t, 0, "piano", 1.0), TagOn(1.0, t, 0, "speech", 0.5),
                   TagLevel(1.0, t, 0, "piano", 1.0), TagLevel(1.0, t, 0, "speech", 0.5)])
        sink.send([TagLevel(1.5, t, 0, "piano", 0.5), TagOn(1.6, t, 0, "organ", 0.9)])
        sink.send([TagOff(2.0, t, 0, "piano"), TagLevel(2.0, t, 0, "piano", 0.0)])
        rec.wait_for(8)
    finally:
        sink.close()
        rec.settle()
        rec.close()
    assert rec.messages == [
        [0x90, 36, 127], [0x90, 47, 64],     # piano on: note 36 full velocity; speech: note 47
        [0xB0, 20, 127], [0xB0, 31, 64],     # their levels: CC 20 and 31 = prob
        [0xB0, 20, 64],                      # level 0.5
        [0x90, 37, 114],                     # organ on, no level sent with it: no CC
        [0x80, 36, 0],                       # piano off
        [0xB0, 20, 0],                       # level 0
        [0x80, 47, 0], [0x80, 37, 0],        # close: the note-offs of the notes still sounding
    ], late_clients()


def test_every_note_on_gets_its_note_off_on_close(api):
    sink, rec = opened_sink(api, MidiMapping(channel=10, cc=False, tags={
        t: MidiTag(note=70 + i, cc=None) for i, t in enumerate(LABELS)}))
    try:
        sink.send([TagOn(0.1, 0.0, 0, t, 0.9) for t in ("piano", "drums", "bass")])
        assert sink.sounding == {70: "piano", 78: "drums", 73: "bass"}
    finally:
        sink.close()
    got = rec.settle()
    rec.close()
    ons = [m for m in got if m[0] == 0x99]
    offs = [m for m in got if m[0] == 0x89]
    assert sorted(m[1] for m in ons) == sorted(m[1] for m in offs) == [70, 73, 78], late_clients()
    assert sink.sounding == {}
    sink.close()  # idempotent


def test_retrigger_keeps_on_off_paired(api):
    sink, rec = opened_sink(api)
    try:
        sink.send([TagOn(0.1, 0.0, 0, "organ", 0.7), TagOn(0.2, 0.0, 0, "organ", 0.9), TagOff(0.3, 0.0, 0, "organ"),
                   TagOff(0.4, 0.0, 0, "organ")])
    finally:
        sink.close()
    notes = [m for m in rec.settle() if m[0] in (0x90, 0x80)]
    rec.close()
    assert notes == [[0x90, 37, 89], [0x80, 37, 0], [0x90, 37, 114], [0x80, 37, 0]], late_clients()


def test_technique_events_map_to_notes_and_ccs(api):
    sink, rec = opened_sink(api)
    try:
        # pitch CC 102, vibrato rate/extent
        sink.send([TechniqueValues(0.1, 0.0, 0, pitch=440.0, midi=69.2, vibrato_rate=5.0, vibrato_extent=30.0),
                   TremoloOn(0.1, 0.0, 0, 6.35, 6.35),  # note 61, rate/depth CCs 105/106
                   TremoloOff(0.5, 0.0, 0)])
    finally:
        sink.close()
    got = rec.settle()
    rec.close()
    # a technique's rate and size CCs come before its note-on: a patch that reads them when the note comes
    # gets these, not the 0 the last off left
    assert got == [[0xB0, 102, 69], [0xB0, 103, 50], [0xB0, 104, 30], [0xB0, 105, 0], [0xB0, 106, 0],
                   [0xB0, 105, 64], [0xB0, 106, 64], [0x90, 61, 127],
                   [0x80, 61, 0], [0xB0, 105, 0], [0xB0, 106, 0]], late_clients()


def test_named_existing_port_and_missing_port_lists_ports(api):
    # a MidiIn with a virtual input is the "existing port" a DAW would offer
    name = unique()
    daw = Recorder(api, None, client="fake-daw", port=name)
    try:
        assert any(name in p for p in list_midi_outputs(api))
        sink = MidiSink(Mapping.default(LABELS).midi, port=name.upper(), api=api)
        sink.open()
        assert name in sink.port_name
        time.sleep(0.2)
        sink.send(_on(0.1, "brass", 1.0))
        sink.close()
        got = daw.wait_for(3)
        assert got == [[0x90, 41, 127], [0xB0, 25, 127], [0x80, 41, 0]], late_clients()
        with pytest.raises(SinkError, match=r"no MIDI port matches 'no-such-port'; MIDI ports: .*" + name):
            MidiSink(Mapping.default(LABELS).midi, port="no-such-port", api=api).open()
    finally:
        daw.close()


@pytest.mark.parametrize("by_index", [False, True])
def test_a_receiver_that_quits_and_comes_back_is_connected_again(api, by_index):
    """`--midi PORT`: a DAW that crashed and was restarted got no more MIDI, and nothing was said. The sink
    now says the port went away, connects again when it is back and sends the current state first."""
    name = unique()
    said = []
    daw = Recorder(api, None, client="fake-daw", port=name)
    sink = None
    try:
        spec = name
        if by_index:
            spec = next(i for i, p in enumerate(list_midi_outputs(api)) if name in p)
        sink = MidiSink(Mapping.default(LABELS).midi, port=spec, api=api, on_fault=said.append)
        sink.open()
        time.sleep(0.2)
        sink.send(_on(0.1, "brass", 1.0))
        assert daw.wait_for(2) == [[0x90, 41, 127], [0xB0, 25, 127]], late_clients()
        assert not sink.check_port(force=True) and not said  # still there: nothing to do
        daw.close()  # the DAW quits
        time.sleep(0.3)
        assert not sink.check_port(force=True) and sink.port_gone
        assert said[-1].startswith(f"MIDI port {sink.port_name!r} went away")
        sink.send(_on(0.2, "piano", 0.5))  # the show goes on meanwhile
        assert not sink.check_port(force=True)  # not back yet
        daw = Recorder(api, None, client="fake-daw", port=name)  # restarted, under the same name
        time.sleep(0.3)
        assert sink.check_port(force=True) and not sink.port_gone and sink.reconnects == 1
        assert said[-1].endswith("is back: connected again")
        time.sleep(0.2)
        sink.send([TagOff(0.3, 0.0, 0, "brass")])
        got = daw.wait_for(5)
        # the state first (the notes sounding, the last CC values), then what comes next
        assert sorted(got[:4]) == sorted([[0x90, 41, 127], [0x90, 36, 64], [0xB0, 25, 127], [0xB0, 20, 64]])
        assert got[4:] == [[0x80, 41, 0]], late_clients()
    finally:
        if sink is not None:
            sink.close()
        daw.close()


def test_a_sink_that_waits_for_its_port_connects_when_it_is_offered(api):
    """`--midi PORT --midi-wait`: rtclassify started before the DAW. Without wait the sink refuses a port that is
    not there; with it, it opens without one, says so once, sends nothing, and when a matching port is offered it
    connects and sends the notes sounding and the last CC values first."""
    name = unique()
    said = []
    with pytest.raises(SinkError, match="no MIDI port matches"):
        MidiSink(Mapping.default(LABELS).midi, port=name, api=api).open()
    sink = MidiSink(Mapping.default(LABELS).midi, port=name, api=api, on_fault=said.append, wait=True)
    daw = None
    try:
        sink.open()
        assert sink.port_name is None and sink.port_gone
        assert len(said) == 1 and said[0].startswith(f"no MIDI port matches {name!r} yet")
        sink.send(_on(0.1, "brass", 1.0))  # the show starts: nothing goes out, the state is kept
        assert sink.messages_sent == 0 and not sink.check_port(force=True) and len(said) == 1
        daw = Recorder(api, None, client="fake-daw", port=name)  # the DAW starts
        time.sleep(0.3)
        assert sink.check_port(force=True) and not sink.port_gone and name in sink.port_name
        assert said[-1].endswith("is offered: connected") and sink.reconnects == 0
        time.sleep(0.2)
        sink.send([TagOff(0.3, 0.0, 0, "brass")])
        got = daw.wait_for(3)
        assert sorted(got[:2]) == sorted([[0x90, 41, 127], [0xB0, 25, 127]]), late_clients()
        assert got[2:] == [[0x80, 41, 0]], late_clients()
    finally:
        sink.close()
        if daw is not None:
            daw.close()


def test_waiting_for_a_port_needs_its_name():
    for spec in (3, "3", " "):
        with pytest.raises(SinkError, match="needs the port's name"):
            MidiSink(Mapping.default(LABELS).midi, port=spec, wait=True)
    with pytest.raises(SinkError, match="a virtual port is there from the start"):
        MidiSink(Mapping.default(LABELS).midi, virtual="x", wait=True)


def test_a_sink_still_waiting_names_what_it_waits_for():
    """A JACK server that stopped while the sink still waited said "MIDI output None lost"; the summary said
    "to its port"."""
    sink = MidiSink(Mapping.default(LABELS).midi, port="fake-daw", wait=True)
    assert sink.shown_name == "(waiting for a port matching 'fake-daw')"
    assert sink._quoted_name() == sink.shown_name


def test_a_late_receiver_of_a_jack_virtual_port_gets_the_state(jack_server, monkeypatch):
    """`--midi-virtual` on JACK: a DAW patched (or restarted) after rtclassify started got the note-offs of notes
    it never saw turn on, and no level until one changed. The first receiver to connect gets what is sounding
    and the last CC values; one joining a receiver already connected does not (the first would hear every
    sounding note again). And the port's name is JACK's: a second instance's client is rtclassify-01."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    name = unique()
    first = MidiSink(Mapping.default(LABELS).midi, virtual=name, api="jack")
    second = MidiSink(Mapping.default(LABELS).midi, virtual=name, api="jack")
    daws = []
    try:
        first.open()
        second.open()
        ports = jack_server.ports().splitlines()
        assert first.port_name in ports and second.port_name in ports and first.port_name != second.port_name
        first.send(_on(0.1, "brass", 1.0))
        time.sleep(0.1)
        assert not first.check_port(force=True)  # nobody connected yet
        daws.append(Recorder("jack", first.port_name, jack_server))
        time.sleep(0.2)
        first.send(_on(0.15, "piano", 0.5))  # between the receiver connecting and the sink's look: it has it
        time.sleep(0.1)
        assert first.check_port(force=True)
        got = daws[0].wait_for(7)
        # piano's note-on twice would stack two voices for one note-off: the state retriggers (off, then on)
        assert got[:2] == [[0x90, 36, 64], [0xB0, 20, 64]], late_clients()
        assert got[2:4] == [[0x80, 41, 0], [0x90, 41, 127]] and got[4:6] == [[0x80, 36, 0], [0x90, 36, 64]]
        assert sorted(got[6:]) == sorted([[0xB0, 25, 127], [0xB0, 20, 64]]), late_clients()
        assert not first.check_port(force=True)  # still connected: once
        daws.append(Recorder("jack", first.port_name, jack_server))
        time.sleep(0.2)
        assert not first.check_port(force=True)  # joining a connected receiver: nothing again
        first.send([TagOff(0.2, 0.0, 0, "brass")])
        assert daws[0].wait_for(9)[8:] == [[0x80, 41, 0]] and daws[1].wait_for(1) == [[0x80, 41, 0]], late_clients()
    finally:
        first.close()
        second.close()
        for d in daws:
            d.close()

def test_a_port_that_comes_back_twice_over_is_said_once_and_left(api):
    """Two ports matching the spec come back: the sink cannot tell which to take; it says so once (not at every
    look) and connects when one of them is gone."""
    name = unique()
    said = []
    daw = Recorder(api, None, client="fake-daw", port=name)
    sink = MidiSink(Mapping.default(LABELS).midi, port=name, api=api, on_fault=said.append)
    twins = []
    try:
        sink.open()
        daw.close()
        time.sleep(0.3)
        sink.check_port(force=True)
        twins = [Recorder(api, None, client=f"daw{i}", port=f"{name}-{i}") for i in range(2)]
        time.sleep(0.3)
        for _ in range(3):
            assert not sink.check_port(force=True)
        assert len(said) == 2 and said[1].startswith(f"cannot connect again: 2 MIDI ports match {name!r}")
        twins.pop().close()
        time.sleep(0.3)
        assert sink.check_port(force=True) and said[-1].endswith("is back: connected again")
    finally:
        sink.close()
        for t in twins:
            t.close()


def test_alsa_without_sequencer_is_one_clear_error():
    if HAVE_SEQ:
        pytest.skip("this machine has an ALSA sequencer")
    with pytest.raises(SinkError, match=r"cannot open the alsa MIDI system: is the ALSA sequencer available"):
        MidiSink(Mapping.default(LABELS).midi, virtual="x", api="alsa").open()


def test_exactly_one_of_port_or_virtual():
    with pytest.raises(SinkError, match="exactly one"):
        MidiSink(Mapping.default(LABELS).midi)
    with pytest.raises(SinkError, match="exactly one"):
        MidiSink(Mapping.default(LABELS).midi, port="a", virtual="b")


# ------------------------------------------------------------------ JACK server loss (no server needed)
class _FakeOut:
    def __init__(self):
        self.sent = []
        self.closed = False

    def send_message(self, msg):
        self.sent.append(list(msg))

    def close_port(self):
        self.closed = True

    def delete(self):
        pass


class _FakeWatch:
    def __init__(self, period_s=None):
        self.lost = False
        self.reason = None
        self.closed = False
        self.period_s = period_s

    def close(self):
        self.closed = True


def _jack_sink():
    sink = MidiSink(Mapping.default(LABELS).midi, virtual="tags", api="jack")
    sink._out, sink.watch, sink.port_name = _FakeOut(), _FakeWatch(), "rtclassify:tags"
    return sink


def test_jack_server_loss_is_a_sink_error_and_close_sends_nothing(monkeypatch):
    """Once the watch reports the server gone, no message reaches python-rtmidi (whose JACK send would block
    forever once its queue is full): send raises, and close neither sends note-offs nor waits for JACK cycles."""
    sink = _jack_sink()
    out = sink._out
    sink.send(_on(0.0, "piano", 0.9))
    assert len(out.sent) == 2 and sink.sounding
    sink.watch.lost, sink.watch.reason = True, "JACK server has been closed"
    with pytest.raises(SinkError, match=r"MIDI output 'rtclassify:tags' lost: the JACK server stopped "
                                        r"\(JACK server has been closed\)"):
        sink.send([TagLevel(0.1, tag="organ", prob=0.5)])
    slept = []
    monkeypatch.setattr("rtclassify.sinks.midi.time.sleep", slept.append)
    sink.close()
    assert len(out.sent) == 2 and not sink.sounding and out.closed and sink.watch.closed and not slept


def test_jack_close_with_the_server_alive_sends_note_offs(monkeypatch):
    sink = _jack_sink()
    out = sink._out
    sink.send([TagOn(0.0, tag="piano", prob=0.9)])
    slept = []
    monkeypatch.setattr("rtclassify.sinks.midi.time.sleep", slept.append)
    sink.close()
    assert out.sent[-1] == [0x80, 36, 0] and slept == [0.2] and sink.watch.closed


def test_jack_close_waits_two_periods_of_a_slow_server(monkeypatch):
    sink = _jack_sink()
    sink.watch.period_s = 8192 / 22050
    sink.send([TagOn(0.0, tag="piano", prob=0.9)])
    slept = []
    monkeypatch.setattr("rtclassify.sinks.midi.time.sleep", slept.append)
    sink.close()
    assert slept == [pytest.approx(2 * 8192 / 22050)]


def test_jack_without_jack_client_warns_and_goes_on(monkeypatch, capsys):
    import rtclassify.sinks.jack_watch as jw

    def no_jack(name):
        raise ImportError("No module named 'jack'")

    monkeypatch.setattr(jw, "JackServerWatch", no_jack)
    sink = MidiSink(Mapping.default(LABELS).midi, virtual="tags", api="jack")
    assert sink._open_watch() is None
    assert "cannot be noticed without JACK-Client" in capsys.readouterr().err


def test_jack_watch_sees_the_server_stop(jack_server, monkeypatch):
    from rtclassify.sinks.jack_watch import JackServerWatch

    server = JackServer().start()
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    try:
        watch = JackServerWatch("rtc-watch-test")
        assert not watch.lost and watch.period_s == pytest.approx(server.period / server.rate)
        server.proc.terminate()
        assert watch.wait(5) and "closed" in watch.reason
        watch.close()
        watch.close()
    finally:
        server.stop()
    with pytest.raises(SinkError, match="is the JACK server running"):
        JackServerWatch("rtc-watch-test")


def test_a_missing_python_rtmidi_names_the_pip_package(monkeypatch):
    # the hint said "install the system package python-rtmidi" (pip's name; Debian's is python3-rtmidi)
    from rtclassify.errors import MissingDependencyError
    from rtclassify.sinks.midi import midi_api

    monkeypatch.setitem(sys.modules, 'rtmidi', None)  # as where it is not installed
    with pytest.raises(MissingDependencyError, match=r"pip install python-rtmidi$"):
        midi_api(None)


@pytest.mark.parametrize("switch", ["notes", "cc"])
def test_the_mappings_notes_and_cc_switches_leave_the_technique_messages(switch):
    """`notes = false` / `cc = false` switch the tags' notes / level CCs (as the example file says); the
    vibrato and tremolo notes and the technique CCs are switched one by one (-1), and went off with them."""
    from dataclasses import replace

    sink = MidiSink(replace(Mapping.default(LABELS).midi, **{switch: False}), virtual="tags", api="jack")
    out = sink._out = _FakeOut()
    sink.send(_on(0.0, "piano", 0.9) + [
        TechniqueValues(0.1, 0.0, 0, pitch=440.0, midi=69.0, vibrato_rate=5.0, vibrato_extent=30.0),
        VibratoOn(0.1, 0.0, 0, 5.0, 30.0)])
    tag_msgs = [m for m in out.sent if m[1] in (36, 20)]
    assert tag_msgs == ([[0xB0, 20, 114]] if switch == "notes" else [[0x90, 36, 114]])
    assert [m for m in out.sent if m[1] not in (36, 20)] == [
        [0xB0, 102, 69], [0xB0, 103, 50], [0xB0, 104, 30], [0xB0, 105, 0], [0xB0, 106, 0], [0x90, 60, 127]]
