"""The JSONL event log and the CLI's event printer when their output fails during a run."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time

import pytest

from rtclassify.commands._live import EventPrinter, run_listener
from rtclassify.detect.events import TagOff, TagOn
from rtclassify.errors import OutputClosed, SinkError
from rtclassify.sinks import log as logmod
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


def _no_space(*a, **kw):
    """``open`` of a disk that is still full (the log's tries to write its file again)."""
    raise OSError(28, "No space left on device")


def test_a_full_disk_stops_the_log_not_the_run(tmp_path, monkeypatch):
    said = []
    sink = JsonlSink(tmp_path / "ev.jsonl", status_interval=0, on_fault=said.append)
    sink.open()
    sink._fh.close()
    sink._fh = _FullDisk(room=1)
    for t, flushed in ((1.0, True), (2.0, False), (3.0, False)):  # written; the disk is full (no exception);
        sink.send(_batch(t))                                         # not written: counted, no second report
        assert sink.flush(timeout=10) is flushed  # False: what was queued was not written
    assert said == [f"{sink.fault}; it is tried again every 5-30 s (the events meanwhile are counted)"]
    assert sink.written == 2 and sink.lost == 4
    assert sink.fault == (f"the event log {tmp_path / 'ev.jsonl'} stopped after 2 events: No space left on device "
                          f"(its last line may be cut)")
    monkeypatch.setattr(logmod, "open", _no_space, raising=False)  # still full at the end: its last try fails
    sink.close()
    assert sink.fault.startswith(f"the event log {tmp_path / 'ev.jsonl'} stopped after 2 events: No space left on "
                                 f"device (its last line may be cut); the 4 events since ")
    assert sink.fault.endswith(" were not written") and len(said) == 1


class _StalledDisk(io.StringIO):
    """A file whose writes wait until ``go`` is set (a disk that stalls), recording each write."""

    def __init__(self):
        super().__init__()
        self.go = threading.Event()
        self.writes = 0

    def write(self, text):
        assert self.go.wait(30), "never released"
        self.writes += 1
        return super().write(text)


def _stalled(tmp_path, **kw):
    sink = JsonlSink(tmp_path / "ev.jsonl", **kw)
    sink.open()
    sink._fh.close()
    disk = sink._fh = _StalledDisk()
    return sink, disk


def test_a_stalled_file_does_not_hold_the_caller(tmp_path):
    sink, disk = _stalled(tmp_path, status_interval=0)
    for t in range(20):  # all return while the first write waits on the disk
        sink.send(_batch(float(t)))
    assert not sink.flush(timeout=0.2) and disk.writes == 0
    disk.go.set()
    assert sink.flush(timeout=10)
    lines = [json.loads(x) for x in disk.getvalue().splitlines()]
    assert sink.written == len(lines) == 40
    assert [x["stream_time"] for x in lines] == [t + d for t in range(20) for d in (0.0, 0.5)]  # in order
    assert disk.writes < 40  # what queued up while the disk stalled went out together
    sink.close()
    assert sink.fault is None


def test_a_file_too_far_behind_drops_batches_and_says_so(tmp_path):
    said = []
    sink, disk = _stalled(tmp_path, status_interval=0, on_fault=said.append, max_pending=6)
    for t in range(5):  # 3 batches of 2 events are held; the 4th and 5th are dropped
        sink.send(_batch(float(t)))
    assert sink.dropped == 4
    assert said == [f"the event log {tmp_path / 'ev.jsonl'} fell 6 events behind its file: dropping events until "
                    f"it catches up"]
    disk.go.set()
    assert sink.flush(timeout=10)
    sink.send(_batch(9.0))  # caught up: taken again
    sink.close()
    assert sink.written == 8 and sink.dropped == 4
    assert sink.fault == f"the event log {tmp_path / 'ev.jsonl'} lost 4 events: its file fell more than 6 events behind"


def test_the_last_status_line_is_written_at_close(tmp_path):
    path = tmp_path / "ev.jsonl"
    sink = JsonlSink(path, status_interval=3600)
    sink.open()
    sink.status({"hops": 1})  # written: the first
    sink.send(_batch())
    sink.status({"hops": 2})  # held back by the interval ...
    sink.status({"hops": 3, "latency": float("nan")})
    sink.close()  # ... the latest goes out at the end
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x.get("hops") for x in lines] == [1, None, None, 3]
    assert lines[-1]["latency"] is None and lines[-1]["event"] == "status"
    with pytest.raises(SinkError, match="not open"):
        sink.send(_batch())


def test_close_gives_up_on_a_write_that_never_returns(tmp_path):
    sink, disk = _stalled(tmp_path, status_interval=0)
    sink.send(_batch())
    t0 = time.monotonic()
    sink.close(timeout=0.3)
    assert time.monotonic() - t0 < 5
    disk.go.set()  # let the writer go (it finishes, and stops)
    sink._writer.join(10)
    assert not sink._writer.is_alive()


def test_a_log_that_was_never_opened_says_so(tmp_path):
    with pytest.raises(SinkError, match="not open"):
        JsonlSink(tmp_path / "ev.jsonl").send(_batch())
    with pytest.raises(SinkError, match="not open"):
        JsonlSink("-").send(_batch())


def test_standard_output_that_was_closed_under_the_log_is_a_clear_error():
    sink = JsonlSink("-", status_interval=0)
    sink.open()
    closed = io.StringIO()
    closed.close()
    sink._fh = closed  # writing raises ValueError (no strerror)
    with pytest.raises(SinkError, match="^writing the event log to standard output failed: I/O operation on closed"):
        sink.send(_batch())


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
    writes = 0

    def write(self, text):
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")


def test_the_printer_alone_ends_the_run_when_its_reader_goes_away():
    p = EventPrinter(stream=_ClosedPipe(), alone=True)
    p.send(_batch())  # written by the printer's thread, which finds the reader gone
    p._writer.flush(5.0)
    with pytest.raises(OutputClosed):
        p.send(_batch())


def test_the_printer_beside_other_outputs_goes_quiet():
    pipe = _ClosedPipe()
    p = EventPrinter(stream=pipe, alone=False)
    p.send(_batch(1.0))  # no exception: MIDI or OSC go on
    p._writer.flush(5.0)
    assert pipe.writes == 1
    p.send(_batch(2.0))
    p.send(_batch(3.0))
    p._writer.flush(5.0)
    assert pipe.writes == 1  # quiet: the dead pipe is not written again


def test_a_blocked_output_does_not_hold_the_printer_s_caller():
    """A terminal paused with Ctrl-S blocks every write to it; the printer's send was a write on the worker
    thread, so MIDI and OSC stopped with it. Now send returns at once, the lines wait (the oldest kept, the
    newest beyond the limit dropped and said), and they are printed when the output resumes."""
    import threading
    import time

    gate = threading.Event()

    class Paused(io.StringIO):
        def write(self, text):
            gate.wait(30)  # blocked until "Ctrl-Q"
            return super().write(text)

    out = Paused()
    p = EventPrinter(stream=out, alone=True)
    p._writer.max_pending = 50
    t0 = time.monotonic()
    for i in range(200):
        p.send(_batch(float(i)))
    assert time.monotonic() - t0 < 1.0 and out.getvalue() == ""
    gate.set()
    p.close(5.0)
    printed, dropped = out.getvalue().count(" on "), p._writer.dropped
    # the batches the writer took before it blocked, then the 50 it holds; the rest dropped and counted
    assert 50 <= printed < 200 and printed + dropped == 200
    assert p.fault.startswith(f"{dropped} batches of event lines not printed: standard output was blocked")


class _RunListener:
    """What run_listener reads of a listener: one that has run and stopped."""

    error = None

    def __init__(self, sinks=()):
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


def test_an_output_fault_the_run_went_on_through_is_reported_and_exits_1(capsys):
    Listener = _RunListener

    class Faulty:
        fault = "the event log x.jsonl stopped after 2 events: No space left on device"

    assert run_listener(Listener([Faulty()]), 1.0, what="demo") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "rtclassify demo: error: the event log x.jsonl stopped after 2 events: No space left on device"
    assert run_listener(Listener([object()]), 1.0, what="demo") == 0


def _strict_lines(path):
    """The log's lines parsed as strict JSON (Python's json reads a bare NaN or Infinity, which JSON has not)."""
    def no_constant(name):
        raise AssertionError(f"{name} is not JSON")

    return [json.loads(x, parse_constant=no_constant) for x in path.read_text().splitlines()]


def test_numpy_counters_in_a_status_line_are_written_and_the_writer_goes_on(tmp_path):
    """A numpy integer in a host's status dict killed the writer thread: every later event was lost while flush()
    said True, fault stayed None and dropped 0."""
    import numpy as np

    path = tmp_path / "ev.jsonl"
    said = []
    sink = JsonlSink(path, status_interval=1e-9, on_fault=said.append)
    sink.open()
    sink.send(_batch(0.0))
    sink.status({"hops": np.int64(3), "load": np.float32(0.5), "parts": np.array([1, 2])})
    for t in range(1, 51):
        sink.send(_batch(float(t)))
    assert sink.flush(timeout=10)
    sink.close()
    lines = _strict_lines(path)
    assert sink.written == 102 and len([x for x in lines if x["event"] != "status"]) == 102
    status = [x for x in lines if x["event"] == "status"][0]
    assert status["hops"] == 3 and status["load"] == 0.5 and status["parts"] == [1, 2]
    assert sink.fault is None and sink.unwritable == 0 and said == []


def test_nan_and_infinities_are_written_as_null_not_as_invalid_json(tmp_path):
    import numpy as np

    path = tmp_path / "ev.jsonl"
    sink = JsonlSink(path, status_interval=1e-9)
    sink.open()
    sink.send([TagOn(1.0, 0.0, 0, "piano", float("nan")), TagOn(2.0, 0.0, 0, "voice", np.float32("inf")),
               TagOn(3.0, 0.0, 0, "drums", 0.5)])
    sink.status({"latency": np.float64("nan"), "ratio": float("-inf"), "hops": 4})
    sink.close()
    lines = _strict_lines(path)
    assert [x.get("prob") for x in lines] == [None, None, 0.5, None]
    assert lines[-1]["latency"] is None and lines[-1]["ratio"] is None and lines[-1]["hops"] == 4
    assert sink.fault is None and sink.written == 3


def test_a_record_json_cannot_hold_is_left_out_counted_and_reported_once_and_the_log_goes_on(tmp_path):
    class BrokenEvent:
        kind = "on"

        def to_dict(self):
            raise KeyError("no dict for this one")

    path = tmp_path / "ev.jsonl"
    said = []
    sink = JsonlSink(path, status_interval=1e-9, on_fault=said.append)
    sink.open()
    sink.send([TagOn(1.0, 0.0, 0, "piano", object()), TagOn(1.5, 0.0, 0, "piano", 0.5)])
    sink.send([BrokenEvent()])
    sink.status({"hops": object()})
    for t in range(2, 12):
        sink.send(_batch(float(t)))
    assert sink.flush(timeout=10)
    sink.close()
    lines = _strict_lines(path)
    assert sink.written == len(lines) == 21 and lines[0]["stream_time"] == 1.5  # the rest of each batch, and later
    assert sink.unwritable == 3
    assert len(said) == 1 and "the log goes on" in said[0] and "JSON cannot hold" in said[0]
    assert sink.fault.startswith(f"the event log {path} left out 3 records that JSON cannot hold, the first an "
                                 f"event TagOn: TypeError: ")


def _log_with_one_batch(tmp_path):
    """An open log (no status lines) that wrote one batch: its path, the lines it said and the sink."""
    path = tmp_path / "ev.jsonl"
    said = []
    sink = JsonlSink(path, status_interval=0, on_fault=said.append)
    sink.open()
    sink.send(_batch(1.0))
    assert sink.flush(timeout=10)
    return path, said, sink


def test_a_write_that_fails_otherwise_is_a_fault_like_a_full_disk(tmp_path):
    """A write that fails with any Exception, not only OSError and ValueError, is a failure of the file like a
    full disk: reported, flush() says False, the events are counted and the file is tried again."""
    path, said, sink = _log_with_one_batch(tmp_path)
    real = sink._write_events

    def broken(*a, **kw):
        raise RuntimeError("a bug in the writer")

    sink._write_events = broken
    sink.send(_batch(2.0))
    assert sink.flush(timeout=10) is False
    assert sink.fault == f"the event log {path} stopped after 2 events: a bug in the writer (its last line may be cut)"
    assert len(said) == 1 and said[0].startswith(sink.fault)
    sink._write_events = real
    sink.close(timeout=5)  # one last try at the end: written again, with the line that says what is missing
    lines = _strict_lines(path)
    assert [x["event"] for x in lines] == ["on", "off", "log_gap"] and lines[-1]["lost_events"] == 2
    assert sink.fault.startswith(f"the event log {path} lost 2 events while its file could not be written (once, ")


def test_a_writer_that_fails_is_a_fault_and_flush_says_so(tmp_path):
    """A failure of the writer thread itself (not an Exception) stops the log for good, is reported like a full
    disk, and flush() says False: what was queued was not written."""
    error = SystemExit
    path, said, sink = _log_with_one_batch(tmp_path)

    def broken(*a, **kw):
        raise error("a bug in the writer")

    sink._write_events = broken
    sink.send(_batch(2.0))
    assert sink.flush(timeout=10) is False  # the writer is gone
    assert said == [sink.fault]
    assert sink.fault == f"the event log {path} stopped after 2 events: a bug in the writer (its last line may be cut)"
    sink.send(_batch(3.0))  # not queued for a log that stopped, nor a status line
    sink.status_interval = 1e-9
    sink.status({"hops": 1})
    assert not sink._queue
    sink.close(timeout=5)
    assert sink.fault.startswith(f"the event log {path} stopped after 2 events") and path.read_text().count("\n") == 2


def test_events_lost_behind_the_file_are_named_beside_a_record_left_out(tmp_path):
    """A record JSON cannot hold is the log's fault while it goes on; events it later drops (the file fell
    behind) are still said at close, with the records left out."""
    sink, disk = _stalled(tmp_path, status_interval=0, on_fault=lambda line: None)
    path = tmp_path / "ev.jsonl"
    sink.max_pending = 1
    sink.status_interval = 1e-9
    sink.status({"host": object()})  # a record JSON cannot hold: left out before the disk is reached
    assert sink.flush(timeout=10)
    assert sink.unwritable == 1 and "JSON cannot hold" in sink.fault
    for k in range(6):  # the first batch waits on the stalled disk, the later ones fall behind it
        sink.send(_batch(float(k)))
    disk.go.set()
    sink.close(timeout=5)
    assert sink.dropped > 0
    assert sink.fault.startswith(f"the event log {path} lost {sink.dropped} events") and "JSON cannot hold" in sink.fault


def test_the_live_outputs_warn_through_a_writer_that_a_paused_terminal_does_not_block(monkeypatch):
    """The OSC and log outputs of `listen` and `demo` warned with a print to standard error on the worker
    thread: with the terminal paused, one failed OSC send held every output. Their warnings now go through
    the run's warnings writer, closed after the outputs (so the last ones are written)."""
    from rtclassify import cli
    from rtclassify.commands._live import Warnings, build_sinks
    from rtclassify.sinks.mapping import Mapping

    gate = threading.Event()

    class Paused(io.StringIO):
        def write(self, text):
            gate.wait(30)
            return super().write(text)

    args = cli.build_parser().parse_args(["listen", "--osc", "127.0.0.1:9", "--no-display", "--log",
                                          os.devnull])
    sinks, _ = build_sinks(args, ["piano"], Mapping.default(["piano"]), "t")
    assert isinstance(sinks[-1], Warnings)
    err = Paused()
    monkeypatch.setattr(sys, "stderr", err)
    t0 = time.monotonic()
    for s in sinks[:2]:  # the OSC sink and the log, as their faults reach them on the worker thread
        s._on_fault(f"a fault of {type(s).__name__}")
    assert time.monotonic() - t0 < 1.0
    gate.set()
    sinks[-1].close(5.0)
    assert err.getvalue() == ("rtclassify: warning: a fault of OscSink\nrtclassify: warning: a fault of JsonlSink\n")


def test_a_stop_is_not_held_by_a_paused_terminal(monkeypatch):
    """The run's own lines ("stopping", the summary) were printed on the main thread before and after the stop:
    with the terminal paused, SIGTERM from a show-control script did not end the run. They wait a while now,
    then the run leaves anyway (os._exit: interpreter shutdown would wait for standard error)."""
    from rtclassify.commands import _live

    gate = threading.Event()

    class Paused(io.StringIO):
        def write(self, text):
            gate.wait(30)
            return super().write(text)

    left = []
    monkeypatch.setattr(sys, "stderr", Paused())
    monkeypatch.setattr(_live, "SAY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(_live, "_stderr_blocked", False)
    monkeypatch.setattr(_live, "hard_exit", left.append)
    t0 = time.monotonic()
    assert _live.run_listener(_RunListener(), 1.0, what="demo") == 0
    assert time.monotonic() - t0 < 5.0 and left == [0]  # one summary line waited, the rest dropped
    gate.set()


def test_a_printer_write_that_fails_after_the_last_send_is_the_printer_s_fault():
    """The failed write was raised at the next send only: one in the last batches (the final offs) was lost and
    the run exited 0, where a failed print gave exit 1 before the printer had a thread of its own."""
    class Full(io.StringIO):
        def write(self, text):
            raise OSError(28, "No space left on device")

    p = EventPrinter(stream=Full(), alone=False)
    p.send(_batch())
    p.close(5.0)
    assert p.fault == "printing the events to standard output failed: No space left on device"


def test_a_log_of_changes_leaves_out_the_levels_and_the_trackers_values(tmp_path):
    """`--log-changes`: the periodic events (every tag's level at the level rate, the trackers' values 50
    times a second) are nearly all of a live log's size; what changes and the status lines stay."""
    from rtclassify import cli
    from rtclassify.commands._live import build_sinks
    from rtclassify.detect.events import TagLevel, TechniqueValues, VibratoOff, VibratoOn
    from rtclassify.sinks.mapping import Mapping

    now = time.time()
    events = [TagOn(1.0, now, 0, "piano", 0.8), TagLevel(1.0, now, 0, "piano", 0.8),
              TechniqueValues(1.0, now, 0), VibratoOn(1.1, now, 0, 5.5, 30.0), TagLevel(1.2, now, 0, "piano", 0.7),
              VibratoOff(1.3, now, 0), TagOff(1.5, now, 0, "piano")]
    kinds = {}
    for name, extra in (("all", []), ("changes", ["--log-changes"])):
        path = tmp_path / f"{name}.jsonl"
        args = cli.build_parser().parse_args(["listen", "--no-display", "--log", str(path), *extra])
        sinks, _ = build_sinks(args, ["piano"], Mapping.default(["piano"]), "t")
        log = next(s for s in sinks if isinstance(s, JsonlSink))
        log.open()
        log.send(events)
        log.status({"hops": 3})
        log.close()
        kinds[name] = [json.loads(x)["event"] for x in path.read_text().splitlines()]
    assert kinds["all"] == ["on", "level", "technique", "vibrato_on", "level", "vibrato_off", "off", "status"]
    assert kinds["changes"] == ["on", "vibrato_on", "vibrato_off", "off", "status"]


def test_log_changes_without_a_log_is_a_usage_error(capsys):
    from rtclassify import cli

    assert cli.main(["demo", "--log-changes", "--no-display"]) == 2
    assert "--log-changes goes with --log FILE.jsonl" in capsys.readouterr().err


def _events(path):
    return [(x["event"], x.get("stream_time")) for x in _strict_lines(path)]


def test_a_restarted_run_appends_to_the_log_and_marks_its_start(tmp_path):
    """The log was opened with mode "w": a supervisor's restart with the same --log path erased the log of the
    run that had just failed. A run now appends, and one that appends to a log with lines in it says where it
    starts (after a newline when the run before was cut in the middle of a line)."""
    path = tmp_path / "ev.jsonl"
    for t in (1.0, 5.0):
        sink = JsonlSink(path, status_interval=0)
        sink.open()
        sink.send(_batch(t))
        sink.close()
    lines = _strict_lines(path)
    assert [(x["event"], x.get("stream_time")) for x in lines] == [
        ("on", 1.0), ("off", 1.5), ("log_start", None), ("on", 5.0), ("off", 5.5)]
    start = lines[2]
    assert start["pid"] == os.getpid() and abs(start["wall_time"] - time.time()) < 60 and "version" in start
    with open(path, "a") as f:  # a run killed in the middle of a line
        f.write('{"stream_time": 6.0, "wall_')
    sink = JsonlSink(path, status_interval=0)
    sink.open()
    sink.send(_batch(9.0))
    sink.close()
    text = path.read_text().splitlines()
    assert text[5] == '{"stream_time": 6.0, "wall_'  # the cut line alone: every other line is whole
    assert [json.loads(x)["event"] for x in text[6:]] == ["log_start", "on", "off"]


def test_a_new_log_has_no_start_line(tmp_path):
    path = tmp_path / "ev.jsonl"
    sink = JsonlSink(path, status_interval=0)
    sink.open()
    sink.send(_batch())
    sink.close()
    assert [x["event"] for x in _strict_lines(path)] == ["on", "off"]


def test_a_log_truncated_under_the_writer_goes_on_from_its_new_end(tmp_path):
    """logrotate's copytruncate: the writer kept its offset, so the truncated file began with as many NUL bytes
    as it had held (one line that is not JSON, and a sparse file that looks as large as before)."""
    path = tmp_path / "ev.jsonl"
    sink = JsonlSink(path, status_interval=0)
    sink.open()
    for t in range(50):
        sink.send(_batch(float(t)))
    assert sink.flush(timeout=10)
    os.truncate(path, 0)  # (after the copy)
    sink.send(_batch(100.0))
    assert sink.flush(timeout=10)
    sink.close()
    data = path.read_bytes()
    assert b"\0" not in data
    assert _events(path) == [("on", 100.0), ("off", 100.5)]


def test_a_renamed_or_deleted_log_is_opened_again(tmp_path, monkeypatch):
    """logrotate's rename and create: the writer wrote on in the renamed file for the rest of the run (and a log
    deleted to free space held its space for ever). The writer looks at the path (at most every CHECK_MOVED_S,
    from its own thread) and opens it again when it names another file or none."""
    monkeypatch.setattr(logmod, "CHECK_MOVED_S", 0.0, raising=False)  # a look before every write
    path = tmp_path / "ev.jsonl"
    sink = JsonlSink(path, status_interval=0)
    sink.open()
    sink.send(_batch(1.0))
    assert sink.flush(timeout=10)
    os.rename(path, tmp_path / "ev.jsonl.1")
    path.write_text("")  # logrotate's create
    sink.send(_batch(2.0))
    assert sink.flush(timeout=10)
    assert _events(tmp_path / "ev.jsonl.1") == [("on", 1.0), ("off", 1.5)]
    assert _events(path) == [("on", 2.0), ("off", 2.5)]
    os.rename(path, tmp_path / "ev.jsonl.2")  # and a rotation with no create: the log creates it
    sink.send(_batch(3.0))
    assert sink.flush(timeout=10)
    assert _events(path) == [("on", 3.0), ("off", 3.5)]
    os.unlink(path)  # deleted
    sink.send(_batch(4.0))
    sink.close()
    assert _events(tmp_path / "ev.jsonl.2") == [("on", 2.0), ("off", 2.5)]
    assert _events(path) == [("on", 4.0), ("off", 4.5)]
    assert sink.reopened == 3 and sink.fault is None


def test_the_path_is_looked_at_from_the_writer_thread_at_most_every_check_interval(tmp_path, monkeypatch):
    """The look at the path is the writer's: never on the caller's (the engine's worker's) thread, and not for
    every write."""
    path = tmp_path / "ev.jsonl"
    looks = []
    real_stat = os.stat

    def stat(p, *a, **kw):
        if str(p) == str(path):
            looks.append(threading.current_thread().name)
        return real_stat(p, *a, **kw)

    monkeypatch.setattr(logmod, "CHECK_MOVED_S", 0.3, raising=False)
    sink = JsonlSink(path, status_interval=1e-9)
    sink.open()
    monkeypatch.setattr(os, "stat", stat)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        sink.send(_batch())
        sink.status({"hops": 1})
        assert sink.flush(timeout=10)
    sink.close()
    assert set(looks) == {"rtclassify-log"} and 1 <= len(looks) <= 4


def test_a_full_disk_that_frees_up_is_written_again_and_the_gap_is_said(tmp_path, monkeypatch):
    """A write that failed (a full disk) closed the log for the rest of the run, even once space was freed.
    Now the events are counted while it cannot be written, the file is tried again (append, with a growing
    wait), and the first line written again says how many events were lost, and when; the failure and the
    recovery are each said once."""
    path = tmp_path / "ev.jsonl"
    said = []
    sink = JsonlSink(path, status_interval=0, on_fault=said.append)
    sink.retry_interval = (0.05, 0.2)
    sink.open()
    sink._fh.close()
    sink._fh = _FullDisk(room=1)
    monkeypatch.setattr(logmod, "open", _no_space, raising=False)  # still full when it is tried again
    sink.send(_batch(1.0))  # written
    assert sink.flush(timeout=10)
    sink.send(_batch(2.0))  # fails
    assert sink.flush(timeout=10) is False
    for t in (3.0, 4.0, 5.0, 6.0):  # tried again (and failed) for some of these: counted
        time.sleep(0.06)
        sink.send(_batch(t))
        assert sink.flush(timeout=10) is False
    monkeypatch.undo()  # space freed
    time.sleep(0.25)
    sink.send(_batch(7.0))
    assert sink.flush(timeout=10)
    sink.send(_batch(8.0))
    sink.close()
    assert len(said) == 2
    assert said[0] == (f"the event log {path} stopped after 2 events: No space left on device (its last line may "
                       f"be cut); it is tried again every 0.05-0.2 s (the events meanwhile are counted)")
    assert said[1].startswith(f"the event log {path} is written again since ")
    assert said[1].endswith(' were not written (No space left on device); a "log_gap" line in it says so')
    assert " 10 events since " in said[1]
    assert sink.lost == 10 and sink.written == 6
    lines = _strict_lines(path)
    assert [x["event"] for x in lines] == ["log_gap", "on", "off", "on", "off"]
    gap = lines[0]
    assert gap["lost_events"] == 10 and gap["lost_status_lines"] == 0 and gap["error"] == "No space left on device"
    assert (gap["first_stream_time"], gap["last_stream_time"]) == (2.0, 6.5)
    assert gap["since"] <= gap["wall_time"] <= time.time()
    assert sink.fault.startswith(f"the event log {path} lost 10 events while its file could not be written "
                                 f"(once, first at ") and sink.fault.endswith(': No space left on device); '
                                                                              'its "log_gap" line says when')


def test_the_tries_to_write_again_wait_longer_each_time(tmp_path, monkeypatch):
    """After each try that fails the wait doubles, up to the longest (``retry_interval``)."""
    sink = JsonlSink(tmp_path / "ev.jsonl", status_interval=0, retry_interval=(0.05, 0.2), on_fault=lambda x: None)
    sink.open()
    sink._fh.close()
    sink._fh = _FullDisk(room=0)
    tries = []

    def no_space(*a, **kw):
        tries.append(time.monotonic())
        _no_space()

    monkeypatch.setattr(logmod, "open", no_space, raising=False)
    sink.send(_batch(1.0))
    assert sink.flush(timeout=10) is False
    waits = []
    for t in (3.0, 4.0, 5.0, 6.0):
        time.sleep(sink._outage.wait + 0.02)
        sink.send(_batch(t))
        assert sink.flush(timeout=10) is False
        waits.append(sink._outage.wait)
    assert waits == [0.1, 0.2, 0.2, 0.2] and len(tries) == 4
    sink.close()  # one last try
    assert len(tries) == 5 and " were not written" in sink.fault


class _Clock:
    """The log module's ``time`` with a wall clock and a monotonic clock the test sets."""

    wall = 1_800_000_000.0
    mono = 1000.0

    def time(self):
        return self.wall

    def monotonic(self):
        return self.mono

    def __getattr__(self, name):
        return getattr(time, name)


def test_a_disk_that_fills_up_again_soon_is_counted_and_said_after_a_while(tmp_path, monkeypatch):
    """A disk that keeps filling up: each time is in the log (a log_gap line) and in the fault at the end; within
    QUIET_S of a failure that was said, a new one is said in one line once that time is over."""
    clock = _Clock()
    monkeypatch.setattr(logmod, "time", clock)
    path = tmp_path / "ev.jsonl"
    said = []
    sink = JsonlSink(path, status_interval=1e-9, on_fault=said.append)
    sink.open()
    for k in range(2):
        with sink._lock:
            sink._fh.close()
            sink._fh = _FullDisk(room=0)
        sink.send(_batch(float(k)))
        clock.mono += 1
        sink.status({"hops": k})
        assert sink.flush(timeout=10) is False
        clock.mono += 6  # the first try, after 5 s
        sink.send(_batch(k + 0.7))
        assert sink.flush(timeout=10)
    assert len(said) == 2 and "it is tried again" in said[0] and "is written again" in said[1]
    clock.mono += 600
    sink.send(_batch(3.0))
    assert sink.flush(timeout=10)
    assert said[2:] == [f"the event log {path} could not be written 1 more time since {logmod._clock(clock.wall)} "
                        f'(No space left on device): 2 more events not written; it is written again (its "log_gap" '
                        f"lines say when)"]
    monkeypatch.undo()
    sink.close()
    gaps = [x for x in _strict_lines(path) if x["event"] == "log_gap"]
    assert [(g["lost_events"], g["lost_status_lines"]) for g in gaps] == [(2, 1), (2, 1)]
    assert sink.outages == 2 and sink.lost == 4 and len(said) == 3
    assert sink.fault.startswith(f"the event log {path} lost 4 events while its file could not be written (2 times, ")
    assert sink.fault.endswith('its "log_gap" lines say when')


def test_status_lines_are_paced_on_the_monotonic_clock(tmp_path, monkeypatch):
    """A wall clock stepped back (NTP on a board without a real-time clock) silenced the status lines for as
    long as the step; a step forward does not flood them either. Their wall_time is still the wall clock's."""
    clock = _Clock()
    monkeypatch.setattr(logmod, "time", clock)
    path = tmp_path / "ev.jsonl"
    sink = JsonlSink(path, status_interval=1.0)
    sink.open()

    def run(seconds):
        for _ in range(int(seconds * 10)):
            clock.wall += 0.1
            clock.mono += 0.1
            sink.status({"hops": 0})

    run(10)
    clock.wall -= 3600.0  # stepped back an hour
    run(10)
    clock.wall += 7200.0  # and forward two
    run(10)
    monkeypatch.undo()
    sink.close()
    walls = [x["wall_time"] for x in _strict_lines(path)]
    assert 28 <= len(walls) <= 32
    assert sum(1 for w in walls if w < 1_800_000_000.0) >= 9  # the ten seconds after the step back
    assert max(walls) > 1_800_003_600.0


def test_a_bad_retry_interval_is_a_parameter_error(tmp_path):
    from rtclassify.errors import ParameterError

    for bad in ((0, 5), (10, 5), "x", (1,)):
        with pytest.raises(ParameterError, match="retry_interval"):
            JsonlSink(tmp_path / "ev.jsonl", retry_interval=bad)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (every write of it fails: ENOSPC)")
def test_events_lost_at_a_failed_flush_are_not_also_counted_as_written():
    """On a full disk the failure shows at the flush, after buffered writes: those events were said as written
    before the log stopped ("stopped after 2 events") and counted as lost too."""
    said = []
    sink = JsonlSink("/dev/full", status_interval=0, on_fault=said.append)
    sink.open()
    sink.send(_batch(1.0))
    assert sink.flush(timeout=10) is False
    sink.close(timeout=5)
    assert sink.written == 0 and sink.lost == 2
    assert said[0].startswith("the event log /dev/full stopped after 0 events: No space left on device")
    assert sink.fault.startswith("the event log /dev/full stopped after 0 events")


def test_a_log_to_a_closed_standard_output_says_so(monkeypatch):
    """`demo --no-display --log - >&-` ended with "the event log is not open"."""
    import sys

    from rtclassify.errors import SinkError

    monkeypatch.setattr(sys, "stdout", None)
    with pytest.raises(SinkError, match="standard output, which is closed; give --log FILE"):
        JsonlSink("-").open()
