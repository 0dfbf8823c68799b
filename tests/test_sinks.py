"""Output edges found in review: MIDI and OSC sinks reused after close(), a note-off that fails in close(),
mapping classes built in code, OSC addresses and ports, the event log's writer and its stalled reader, NaN
levels in the display."""

from __future__ import annotations

import io
import socket
import threading
import time

import numpy as np
import pytest

import rtclassify.sinks.midi as midi_mod
from rtclassify.detect.events import TagLevel, TagOff, TagOn, TechniqueValues
from rtclassify.errors import ConfigError, ParameterError, SinkError
from rtclassify.sinks.log import JsonlSink
from rtclassify.sinks.mapping import Mapping, MidiMapping, MidiTag, MidiTechnique, load_mapping
from rtclassify.sinks.midi import MidiSink
from rtclassify.sinks.osc import OscSink


class _Out:
    """python-rtmidi's MidiOut as the sink uses it; ``fail`` makes a message's send raise."""

    def __init__(self, fail=None):
        self.sent, self.fail = [], fail

    def open_virtual_port(self, name):
        pass

    def send_message(self, msg):
        if self.fail is not None and self.fail(list(msg)):
            raise RuntimeError("send failed")
        self.sent.append(list(msg))

    def close_port(self):
        pass

    def delete(self):
        pass


@pytest.fixture
def outs(monkeypatch):
    made = []

    def new(api, client, fail=None):
        made.append(_Out(made_fail[0]))
        return made[-1]

    made_fail = [None]
    monkeypatch.setattr(midi_mod, "_new_midiout", new)
    return made, made_fail


def test_midi_sink_reopened_sends_the_level_ccs_again(outs):
    made, _ = outs
    sink = MidiSink(Mapping.default(["piano", "organ"]).midi, virtual="tags")
    for _ in range(2):
        sink.open()
        sink.send([TagOn(0.0, tag="piano", prob=0.5), TagLevel(0.0, tag="organ", prob=0.2)])
        sink.close()
    assert made[0].sent == made[1].sent
    assert [0xB0, 21, 25] in made[1].sent  # organ's level CC


def test_midi_close_sends_every_other_note_off_when_one_fails_and_does_not_raise(outs, capsys):
    made, fail = outs
    fail[0] = lambda m: m[:2] == [0x80, 36]  # piano's note-off on channel 1
    sink = MidiSink(Mapping.default(["piano", "organ", "bass"]).midi, virtual="tags", streams=[0, 1])
    sink.open()
    sink.send([TagOn(0.0, channel=0, tag="piano", prob=0.5), TagOn(0.0, channel=0, tag="organ", prob=0.5),
               TagOn(0.0, channel=1, tag="bass", prob=0.5)])
    sink.close()
    assert [0x80, 37, 0] in made[0].sent and [0x81, 38, 0] in made[0].sent
    assert sink.sounding_by_channel == {1: {}, 2: {}}
    assert "may hang" in capsys.readouterr().err


def test_midi_port_spec_of_non_ascii_digits_is_a_name_not_a_crash():
    from rtclassify.errors import SinkError

    with pytest.raises(SinkError, match="no MIDI port matches"):
        MidiSink._match(["Synth A:0"], "²")


@pytest.mark.parametrize("make, field", [
    (lambda: MidiTag(note=200, cc=None), "MidiTag.note"),
    (lambda: MidiTag(note=36, cc=120), "MidiTag.cc"),
    (lambda: MidiTag(note=True, cc=None), "MidiTag.note"),
    (lambda: MidiMapping(channel=0), "MidiMapping.channel"),
    (lambda: MidiMapping(channel=None), "MidiMapping.channel"),
    (lambda: MidiMapping(velocity_min=100, velocity_max=50), "MidiMapping.velocity_min"),
    (lambda: MidiMapping(tags={"piano": 36}), r"MidiMapping.tags\['piano'\]"),
    (lambda: MidiTechnique(rate_max_hz=0.0), "MidiTechnique.rate_max_hz"),
    (lambda: MidiTechnique(vibrato_note=128), "MidiTechnique.vibrato_note"),
])
def test_mapping_classes_built_in_code_refuse_values_midi_cannot_carry(make, field):
    with pytest.raises(ConfigError, match=field):
        make()


@pytest.mark.parametrize("prefix", ["/rt\\u0000x", "/rt\\u0007", "/rtå"])
def test_osc_address_with_a_control_or_non_ascii_character_is_refused_at_load(tmp_path, prefix):
    f = tmp_path / "m.toml"
    f.write_text(f'[osc]\nprefix = "{prefix}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"m.toml:2: osc.prefix: .*printable ASCII"):
        load_mapping(f, ["piano"])


@pytest.mark.parametrize("dest", [("127.0.0.1", 70000), ("127.0.0.1", 0), ("127.0.0.1", "90000"),
                                  ("127.0.0.1",), "127.0.0.1:²", ("127.0.0.1", "²")])
def test_osc_destinations_are_checked_as_pairs_too(dest):
    with pytest.raises(ParameterError, match="OSC destination|--osc"):
        OscSink(Mapping.default(["piano"]).osc, [dest])


def test_osc_sink_reopened_sends_the_technique_values_again():
    from pythonosc.osc_message import OscMessage

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    try:
        sink = OscSink(Mapping.default(["piano"]).osc, [("127.0.0.1", rx.getsockname()[1])])
        ev = TechniqueValues(0.0, pitch=220.0, midi=57.0)
        got = []
        for _ in range(2):
            sink.open()
            sink.send([ev])
            sink.close()
            run = []
            try:
                while True:
                    run.append(OscMessage(rx.recv(65536)).address)
            except socket.timeout:
                pass
            got.append(run)
        assert got[0] and got[0] == got[1]
    finally:
        rx.close()


def test_log_writes_numpy_numbers_and_keeps_writing(tmp_path):
    p = tmp_path / "ev.jsonl"
    faults = []
    s = JsonlSink(str(p), on_fault=faults.append)
    s.open()
    s.send([TagOn(0.0, tag="piano", prob=np.float32(0.75))])
    for i in range(20):
        s.send([TagOff(1.0 + i, tag="piano")])
    assert s.flush(5)
    s.close()
    lines = p.read_text().splitlines()
    assert '"prob": 0.75' in lines[0]
    assert len(lines) == 21 and not faults and s.fault is None


def test_log_an_event_json_cannot_hold_is_a_fault_not_a_dead_writer(tmp_path):
    p = tmp_path / "ev.jsonl"
    faults = []
    s = JsonlSink(str(p), on_fault=faults.append)
    s.open()
    s.send([TagOn(0.0, tag="piano", prob=object())])
    assert s.flush(5)
    s.close()
    assert s.fault and "JSON cannot hold" in s.fault and faults


def test_log_close_that_gives_up_on_a_stalled_writer_is_a_fault(tmp_path):
    p = tmp_path / "ev.jsonl"
    s = JsonlSink(str(p))
    s.open()
    gate = threading.Event()
    real = s._write_events

    def stalled(*a, **kw):
        gate.wait(10)
        return real(*a, **kw)

    s._write_events = stalled
    s.send([TagOn(0.0, tag="piano", prob=0.5)])
    t0 = time.monotonic()
    s.close(timeout=0.3)
    assert time.monotonic() - t0 < 5
    assert s.fault and "did not finish writing" in s.fault
    writer = s._writer
    gate.set()
    writer.join(5)
    assert not writer.is_alive() and s._fh is None  # the writer closed the file once done
    assert p.read_text().count("piano") == 1


def test_display_draws_a_nan_level_as_empty():
    from rich.console import Console

    from rtclassify.sinks.display import LiveDisplay

    d = LiveDisplay(["piano", "organ"])
    d.levels["piano"] = float("nan")
    console = Console(width=80, file=io.StringIO(), force_terminal=False)
    console.print(d._bars())
    assert "piano" in console.file.getvalue() and "nan" not in console.file.getvalue()


def test_osc_a_bad_event_mid_batch_still_sends_the_messages_before_it():
    from pythonosc.osc_message import OscMessage

    from rtclassify.errors import SinkError

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    try:
        sink = OscSink(Mapping.default(["piano"]).osc, [("127.0.0.1", rx.getsockname()[1])], streams=[0])
        sink.open()
        with pytest.raises(SinkError, match="input channel 3"):
            sink.send([TagOn(0.0, channel=0, tag="piano", prob=0.5), TagOn(0.0, channel=3, tag="piano", prob=0.5)])
        sink.close()  # the /off of the tag the first event turned on
        got = []
        try:
            while True:
                m = OscMessage(rx.recv(65536))
                got.append((m.address, m.params))
        except socket.timeout:
            pass
        assert ("/rtclassify/0/on", ["piano"]) in got and ("/rtclassify/0/off", ["piano"]) in got
    finally:
        rx.close()


def test_the_printer_beside_other_outputs_goes_quiet_on_a_full_disk_and_says_so():
    """`listen --no-display --osc ... > file`: a full disk ended the whole show 0.5 s later (OSC and MIDI too,
    exit 1), so a supervisor's restart died again at once. Beside other outputs the printer goes quiet, says
    it once, and the run's end still reports it (exit 1)."""
    import io

    from rtclassify.commands._live import EventPrinter
    from rtclassify.detect.events import TagOn

    class Full(io.StringIO):
        writes = 0

        def write(self, text):
            self.writes += 1
            raise OSError(28, "No space left on device")

    said = []
    out = Full()
    p = EventPrinter(stream=out, alone=False, on_fault=said.append)
    p.send([TagOn(1.0, 0.0, 0, "piano", 0.9)])
    p._writer.flush(5.0)
    for i in range(5):  # no exception: the show goes on
        p.send([TagOn(2.0 + i, 0.0, 0, "piano", 0.9)])
    p.close(5.0)
    assert out.writes == 1
    assert said == ["printing the events to standard output failed: No space left on device; no more event lines "
                    "are printed, the other outputs go on"]
    assert p.fault == "printing the events to standard output failed: No space left on device"
    # alone, it is the run's end, as before
    alone = EventPrinter(stream=Full(), alone=True)
    alone.send([TagOn(1.0, 0.0, 0, "piano", 0.9)])
    alone._writer.flush(5.0)
    with pytest.raises(SinkError, match="No space left"):
        alone.send([TagOn(2.0, 0.0, 0, "piano", 0.9)])


def test_a_closed_standard_output_is_a_reader_gone_not_a_traceback(monkeypatch, capsys):
    """`rtclassify listen --no-display --osc ... >&-`: sys.stdout is None, and the printer's thread died with
    an AttributeError traceback on standard error."""
    import sys
    import threading

    from rtclassify.sinks._background import BackgroundText

    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda a: raised.append(a.exc_type))
    monkeypatch.setattr(sys, "stdout", None)
    w = BackgroundText(lambda: sys.stdout, name="test-print")
    w.write("line\n")
    w.flush(5.0)
    w.close(5.0)
    assert raised == []
    assert w.reader_gone and w.error is None


@pytest.mark.parametrize("alone", [False, True])
def test_the_printer_with_standard_output_closed_goes_quiet_or_ends_the_run(monkeypatch, alone):
    """`listen --no-display --osc ... >&-`: the printer's next send called drop_stdout() on a None stdout and the
    AttributeError ended the whole run, OSC and MIDI with it. Beside other outputs it goes quiet; alone, the run
    ends as when the reader went away."""
    import sys

    from rtclassify.commands._live import EventPrinter
    from rtclassify.errors import OutputClosed

    monkeypatch.setattr(sys, "stdout", None)
    p = EventPrinter(alone=alone)
    p.send([TagOn(1.0, 0.0, 0, "piano", 0.9)])
    p._writer.flush(5.0)
    if alone:
        with pytest.raises(OutputClosed):
            p.send([TagOn(2.0, 0.0, 0, "piano", 0.9)])
    else:
        for i in range(3):
            p.send([TagOn(2.0 + i, 0.0, 0, "piano", 0.9)])
    p.close(5.0)
    assert p.fault is None
