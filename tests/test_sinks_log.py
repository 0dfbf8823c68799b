"""The JSONL event log and the CLI's event printer when their output fails during a run."""

from __future__ import annotations

import io
import time

import pytest

from rtclassify.commands._live import EventPrinter, run_listener
from rtclassify.detect.events import TagOff, TagOn
from rtclassify.errors import OutputClosed
from rtclassify.sinks.log import JsonlSink


def _batch(t=1.0):
    now = time.time()
    return [TagOn(t, now, 0, "piano", 0.8), TagOff(t + 0.5, now, 0, "piano")]


class _FullDisk(io.StringIO):
    """A file that takes ``room`` writes, then fails as a full disk does."""

    def __init__(self, room: int):
        super().__init__()
        self.room = room

    def write(self, text):
        if self.room <= 0:
            raise OSError(28, "No space left on device")
        self.room -= 1
        return super().write(text)


def test_a_full_disk_stops_the_log_not_the_run(tmp_path):
    said = []
    sink = JsonlSink(tmp_path / "ev.jsonl", status_interval=0, on_fault=said.append)
    sink.open()
    sink._fh.close()
    sink._fh = _FullDisk(room=1)
    sink.send(_batch(1.0))  # written
    sink.send(_batch(2.0))  # the disk is full: no exception
    sink.send(_batch(3.0))  # the log has stopped: nothing, no second report
    assert sink.written == 2
    assert said == [sink.fault]
    assert sink.fault.startswith(f"the event log {tmp_path / 'ev.jsonl'} stopped after 2 events: No space left")
    sink.close()


def test_standard_output_closed_ends_the_run():
    sink = JsonlSink("-", status_interval=0)
    sink.open()

    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    sink._fh = Closed()
    with pytest.raises(OutputClosed):
        sink.send(_batch())
    assert sink.fault is None


class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_the_printer_alone_ends_the_run_when_its_reader_goes_away():
    p = EventPrinter(stream=_ClosedPipe(), alone=True)
    with pytest.raises(OutputClosed):
        p.send(_batch())


def test_the_printer_beside_other_outputs_goes_quiet():
    p = EventPrinter(stream=_ClosedPipe(), alone=False)
    p.send(_batch(1.0))  # no exception: MIDI or OSC go on
    p.send(_batch(2.0))


def test_an_output_fault_the_run_went_on_through_is_reported_and_exits_1(capsys):
    class Listener:  # what run_listener reads
        error = None

        def __init__(self, sinks):
            self.sinks = sinks

        def start(self):
            pass

        def wait(self, timeout=None):
            return True

        def blocked(self, seconds):
            return None

        def stop(self, timeout=None):
            return True

        def counters(self):
            return {"events": 3}

    class Faulty:
        fault = "the event log x.jsonl stopped after 2 events: No space left on device"

    assert run_listener(Listener([Faulty()]), 1.0, what="demo") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "rtclassify demo: error: the event log x.jsonl stopped after 2 events: No space left on device"
    assert run_listener(Listener([object()]), 1.0, what="demo") == 0
