"""JSON Lines event log: one JSON object per event (``Event.to_dict()``), flushed per batch.

A line looks like::

    {"stream_time": 3.072, "wall_time": 1716000000.123, "channel": 0, "tag": "piano", "prob": 0.91, "event": "on"}

``-`` writes to standard output. Once a second (``status_interval``, timed on the
monotonic clock, so a step of the wall clock neither silences nor floods them), and
once more when the log closes, a status line carries the engine counters
(dropped samples, overflows, hops, compute time, latency parts)::

    {"event": "status", "wall_time": 1716000001.0, "dropped_samples": 0, "input_overflows": 0, ...}

A file is appended to, never truncated: a run restarted with the same path (a
supervisor's restart after a failure) keeps the log of the run before, and a
file truncated under the log (logrotate's ``copytruncate``) is written on from
its new end (not at the old offset, behind a run of NUL bytes). A run that
appends to a file that is not empty first writes one line that marks its start
(after a newline, when the file's last line was cut)::

    {"event": "log_start", "wall_time": 1716000000.0, "pid": 4242, "version": "0.4.0"}

A file is written by a thread of its own: ``send`` and ``status`` only queue
the batch, so a disk that stalls (a busy or network file system, a full
page cache being written back) never holds the listener's worker. The
writer flushes whenever it has caught up. If the file falls more than
``max_pending`` events behind, further batches are dropped and counted
rather than held in memory without end; ``close`` waits for the writer to
write what it has. About once a second (:data:`CHECK_MOVED_S`) the writer
also looks whether the path still names the file it writes: when the file was
renamed (logrotate's default ``create``) or deleted, the path is opened again
(created), so the log goes on in the new file (counted in :attr:`JsonlSink.reopened`).

A file that cannot be written during a run (a full disk) does not stop the
show, nor the log for good: the writer closes it, counts the events it could not
write (:attr:`JsonlSink.lost`) and tries to open and write it again after 5 s,
then after longer waits up to 30 s (``retry_interval``). When it can write
again, its first line says what is missing::

    {"event": "log_gap", "wall_time": 1716000300.0, "since": 1716000100.0, "lost_events": 9120,
     "lost_status_lines": 200, "first_stream_time": 99.84, "last_stream_time": 299.8,
     "error": "No space left on device"}

(the events of the write that failed are counted as lost, though a part of them
may have reached the file: its last line before the gap may be cut). The
failure and the recovery are each reported once through ``on_fault`` (default:
one line on standard error; a log that keeps failing again is said at most
every 10 minutes, the ``log_gap`` lines say every time), and
:attr:`JsonlSink.fault` says, at the end of the run, how many events the log
lost and when. Standard output is written on the caller's thread: its reader
sets the pace the user asked for, and a reader that went away
(``--log - | head``) ends the run (:class:`~rtclassify.errors.OutputClosed`):
there the log is what the user asked for.

Values JSON has no form for are written as near as JSON allows: numpy
numbers (a host's own event or status counters) as plain numbers, NaN and
infinities as ``null``. A record that still cannot be written (an object JSON
cannot hold, an event whose ``to_dict`` fails) is left out, counted in
:attr:`JsonlSink.unwritable` and reported once as a fault; the log goes on
with the next one.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from ..errors import OutputClosed, ParameterError, SinkError
from . import warn

__all__ = ["JsonlSink", "CHECK_MOVED_S", "QUIET_S"]

_STOP = object()  # the writer thread's last item
_SEPARATORS = (", ", ": ")

#: seconds between two looks, from the file's writer thread, at whether the log's path still names the file it
#: writes (logrotate's rename and create, a log deleted to free space)
CHECK_MOVED_S = 1.0
#: seconds after a failure of the file that is reported (through ``on_fault``) during which a new failure, and
#: its recovery, are not: a disk that fills up again and again (its ``log_gap`` lines still say every one)
QUIET_S = 600.0


def _json_value(v):
    """A numpy number or array in a record (a library caller's own event or counters) as the Python number or
    list JSON writes."""
    tolist = getattr(v, "tolist", None)
    if callable(tolist) and not isinstance(v, type):
        try:
            return tolist()
        except Exception:  # noqa: BLE001 - not numpy's: said below
            pass
    raise TypeError(f"{v!r} ({type(v).__name__}) is a value JSON cannot hold")


def _finite(v, depth: int = 0):
    """``v`` with NaN and infinities (JSON has neither) as None, through dicts and lists, numpy values included."""
    if depth > 64:  # a record that holds itself: left for json to refuse
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x, depth + 1) for x in v]
    if not isinstance(v, (str, int)) and callable(getattr(v, "tolist", None)):
        try:
            return _finite(_json_value(v), depth + 1)
        except TypeError:
            return v
    return v


def _dumps(record: dict) -> str:
    """One JSON line of ``record``; raises (TypeError, ValueError) when it holds a value JSON cannot hold."""
    try:
        return json.dumps(record, separators=_SEPARATORS, allow_nan=False, default=_json_value)
    except ValueError:  # NaN or an infinity, which JSON has no form for (Python would write a bare NaN): null
        return json.dumps(_finite(record), separators=_SEPARATORS, allow_nan=False, default=_json_value)


def _clock(t: float) -> str:
    """A wall time as the local date and time a person reads ("2025-05-18 03:12:07")."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _appending_to(path: str) -> str | None:
    """What a file about to be appended to at ``path`` holds: None when nothing (no file, an empty one, or not a
    regular file: a FIFO, a device), ``""`` when whole lines, ``"\\n"`` when its last line was cut (a run that
    ended in the middle of a write, a disk that filled up), the newline the next line must start with."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return None
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return "" if f.read(1) == b"\n" else "\n"
    except OSError:  # not there, or not readable (a log the user may only append to): nothing to go by
        return None


def _close_quietly(fh) -> None:
    """Close a file that failed (its buffer's last write fails again, on a full disk): what is lost is counted."""
    if fh is None or fh is sys.stdout:
        return
    try:
        fh.close()
    except Exception:  # noqa: BLE001 - OSError, or a file object's own
        pass


class _Outage:
    """A time the log's file could not be written: from a failed write until a line is written again."""

    __slots__ = ("since", "why", "written", "events", "status_lines", "first_stream_time", "last_stream_time",
                 "wait", "retry_at", "said")

    def __init__(self, why: str, written: int, wait: float, said: bool):
        self.since = time.time()  # wall time: what the log_gap line and the messages say
        self.why = why
        self.written = written  # events written before it
        self.events = 0  # events not written
        self.status_lines = 0
        self.first_stream_time = None
        self.last_stream_time = None
        self.wait = wait  # seconds until the next try (doubled after each failed one, up to the longest)
        self.retry_at = time.monotonic() + wait
        self.said = said  # reported through on_fault (then its recovery is too)


class JsonlSink:
    """Writes every event as JSONL (``levels=False`` and ``values=False`` leave out the periodic ones).

    Parameters
    ----------
    path : str or Path
        Output file (created, or appended to: see the module's notes) or ``"-"`` for standard output.
    levels : bool
        Also log ``level`` events (they come at the level rate for every tag).
    values : bool
        Also log ``technique`` events, the trackers' pitch, vibrato and tremolo values (one per
        tracker frame, 50 a second). Without them and the levels, a log holds what changes (tags,
        vibrato and tremolo on and off) and the status lines.
    status_interval : float
        Seconds between two status lines (0: none).
    on_fault : callable or None
        Called with a line when the file stops being written (once per failure, and once more when it is
        written again) or falls behind (default: a warning on standard error). For a file it is called on
        the writer thread.
    max_pending : int
        Most events a file's writer may have waiting before batches are dropped.
    retry_interval : (float, float)
        Seconds before the first try to write a file again after a write failed (a full disk), and the
        longest wait between two tries (each failed try doubles the wait).
    """

    def __init__(self, path, *, levels: bool = True, values: bool = True, status_interval: float = 1.0,
                 on_fault=None, max_pending: int = 200_000, retry_interval=(5.0, 30.0)):
        try:
            first, longest = (float(x) for x in retry_interval)
        except (TypeError, ValueError):
            raise ParameterError(f"retry_interval must be two numbers of seconds (first, longest); got "
                                 f"{retry_interval!r}") from None
        if not (0 < first <= longest < math.inf):
            raise ParameterError(f"retry_interval must be (first, longest) seconds with 0 < first <= longest; got "
                                 f"{retry_interval!r}")
        self.path = str(path)
        self.levels = bool(levels)
        self.values = bool(values)
        self.status_interval = float(status_interval)
        self.max_pending = int(max_pending)
        self.retry_interval = (first, longest)
        self._last_status = -math.inf  # time.monotonic() of the last status line queued
        self._pending_status: dict | None = None
        self._fh = None
        self._lock = threading.Lock()  # the file handle (held by whoever writes)
        #: events written
        self.written = 0
        #: events dropped because the file's writer fell ``max_pending`` events behind
        self.dropped = 0
        #: events not written because the file could not be written (a full disk), in all its outages
        self.lost = 0
        #: times the file could not be written (each ends when a ``log_gap`` line is written, or with the log)
        self.outages = 0
        #: times the path was opened again because it no longer named the file written (rotated, deleted)
        self.reopened = 0
        #: events and status lines left out because they hold a value JSON cannot hold (or their ``to_dict``
        #: failed); the first is reported as :attr:`fault`
        self.unwritable = 0
        self._unwritable_why: str | None = None
        self._outage: _Outage | None = None  # the file cannot be written now
        self._first_outage: tuple[float, str] | None = None  # (wall time, why) of the first
        self._quiet_until = -math.inf  # time.monotonic() before which a new outage is not reported
        self._quiet_since = 0.0  # wall time of the failure reported last
        self._unsaid: tuple[int, int, str] | None = None  # failures since then not reported: (times, lost before, why)
        self._next_check = math.inf  # time.monotonic() of the next look at whether the path still names the file
        self._moved_said = False  # the path named another file and could not be opened: said once
        self._dead: str | None = None  # why the writer itself failed (the log stopped for good)
        self._gave_up: str | None = None  # close() gave up on a stalled writer: how much was left
        self._stopped = False  # the log stopped for good (its writer failed): nothing more is queued
        #: why the log stopped or lost events during the run, or None
        self.fault: str | None = None
        self._on_fault = on_fault
        # the file's writer: a queue of batches (lists of events, ("status", dict, time) or ("line", text))
        self._queue: list = []
        self._queued = 0  # events in the queue or being written
        self._cv = threading.Condition(threading.Lock())  # the queue and the status throttle
        self._writer: threading.Thread | None = None
        self._accepting = False  # a file's writer takes batches (from open to close)
        self._abandoned = False  # close() gave up on a stalled writer, which closes the file when it is done
        self._writer_stopped = False  # the writer has taken its stop item (and decided who closes the file)
        self._writer_failed = False
        self._unflushed = 0  # events written since the file's last flush (the writer's)
        self._busy = False  # the writer is writing a set of items

    # ------------------------------------------------------------------ opening
    def open(self) -> None:
        if self._fh is not None:
            return
        if self.path == "-":
            if sys.stdout is None:  # (started with standard output closed: `>&-`)
                raise SinkError("the event log goes to standard output, which is closed; give --log FILE")
            self._fh = sys.stdout
            return
        p = Path(self.path)
        before = _appending_to(self.path)
        try:
            self._fh = p.open("a", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"cannot write the event log {p}: {exc.strerror or exc}") from None
        if before is not None:  # runs in one file are told apart (written by the writer, like any line)
            self._queue.append(("line", before + _dumps(self._start_record())))
        self._writer = threading.Thread(target=self._write_loop, name="rtclassify-log", daemon=True)
        self._abandoned = False
        self._writer_stopped = False
        self._writer_failed = False
        self._unflushed = 0  # events written since the file's last flush (the writer's)
        self._stopped = False
        self._outage = None
        self._next_check = time.monotonic() + CHECK_MOVED_S
        self._accepting = True
        self._writer.start()

    @staticmethod
    def _start_record() -> dict:
        """The ``log_start`` line of a run appending to a log that holds lines already."""
        try:
            from .. import __version__ as version
        except Exception:  # noqa: BLE001 - a partial install: the line goes without it
            version = None
        return {"event": "log_start", "wall_time": time.time(), "pid": os.getpid(), "version": version}

    # ------------------------------------------------------------------ the caller's side
    def send(self, events: Sequence) -> None:
        left_out = ("level" if not self.levels else None, "technique" if not self.values else None)
        batch = [ev for ev in events if ev.kind not in left_out]
        if self.path != "-":
            if self._accepting:
                if batch and not self._stopped:
                    self._put(batch, len(batch))
            elif self.fault is None:
                raise SinkError("the event log is not open")
            return
        with self._lock:
            fh = self._fh
            if fh is None:
                raise SinkError("the event log is not open")
            self._write_events(fh, batch)

    def status(self, counters: dict) -> None:
        """Write the counters as a status line, at most every ``status_interval`` seconds (of the monotonic
        clock: a step of the wall clock does not change the pace; the line's ``wall_time`` is the wall clock's)."""
        if self.status_interval <= 0:
            return
        now = time.monotonic()
        with self._cv:
            self._pending_status = counters
            if now - self._last_status < self.status_interval:
                return
            self._last_status = now
            self._pending_status = None
        wall = time.time()
        if self.path != "-":
            if self._accepting and not self._stopped:  # (a log that stopped queues nothing more)
                self._put(("status", dict(counters), wall), 0)
            return
        with self._lock:
            if self._fh is not None:
                self._write_status(self._fh, counters, wall)

    def _put(self, item, n: int) -> None:
        """Queue an item for the file's writer (never blocks on the file)."""
        with self._cv:
            behind = self._queued
            if not n or behind + n <= self.max_pending:
                self._queue.append(item)
                self._queued += n
                self._cv.notify()
                return
            first = self.dropped == 0
            self.dropped += n
        if first:
            self._report(f"the event log {self.path} fell {behind} events behind its file: "
                         f"dropping events until it catches up")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the file's writer has written (and flushed) everything queued; False on timeout, and
        when the file could not be written instead (a full disk, a write that failed, the writer itself:
        :attr:`fault` says how; the log is written again once it can be, see the module's notes)."""
        writer = self._writer
        if writer is None:
            return True
        with self._cv:
            done = self._cv.wait_for(lambda: not (self._queue or self._busy) or not writer.is_alive(), timeout)
            return (bool(done) and not self._writer_failed and not self._stopped and self._outage is None
                    and not (self._queue or self._busy))

    # ------------------------------------------------------------------ the writer's side
    def _write_loop(self) -> None:
        try:
            self._write_items()
        except BaseException as exc:  # noqa: BLE001 - the writer itself failed: the log stops, and says so
            try:
                with self._lock:
                    self._stopped = True
                    fh, self._fh = self._fh, None
                    why = getattr(exc, "strerror", None) or exc
                    if fh is not None:
                        _close_quietly(fh)
                        self._dead = (f"the event log {self.path} stopped after {self.written} events: {why} (its "
                                      f"last line may be cut)")
                    else:  # (it was not being written: a failure reported already, or a close that gave up)
                        self._dead = (f"the event log {self.path} stopped after {self.written} events: its "
                                      f"writer failed: {type(exc).__name__}: {exc}")
                    if fh is not None or self.fault is None:
                        self.fault = self._dead
                        self._report(self.fault)
            finally:  # flush() and close() wait for it no longer
                with self._cv:
                    self._writer_failed = True
                    self._busy = False
                    self._writer_stopped = True
                    self._cv.notify_all()

    def _write_items(self) -> None:
        while True:
            with self._cv:
                while not self._queue:
                    self._cv.wait()
                items, self._queue = self._queue, []
                self._busy = True
            stop = False
            with self._lock:
                # a look at the path (at most every CHECK_MOVED_S), or a new try after a failure when one is due
                # (one more at the end of the log)
                fh = self._current_file(final=any(item is _STOP for item in items))
                done = []  # written since the last flush: lost too when the flush fails
                for item in items:
                    if item is _STOP:
                        stop = True
                        break
                    if fh is None:  # the file cannot be written now: counted, for the log_gap line
                        self._count_lost(item)
                        continue
                    before = self.written
                    try:
                        if isinstance(item, list):
                            ok = self._write_events(fh, item, flush=False)
                        elif item[0] == "status":
                            ok = self._write_status(fh, item[1], item[2], flush=False)
                        else:
                            fh.write(item[1] + "\n")
                            ok = True
                    except Exception as exc:  # noqa: BLE001 - a file object that fails otherwise: as a full disk
                        self._failed(exc)
                        ok = False
                    if ok:
                        done.append((item, self.written - before))
                        self._unflushed += self.written - before
                    else:
                        self._lost_unflushed(done, item)
                        fh = None
                if fh is not None:  # caught up: one flush for everything written
                    try:
                        fh.flush()
                        self._unflushed = 0
                    except Exception as exc:  # noqa: BLE001 - OSError, ValueError (closed) or a file's own
                        self._failed(exc)
                        self._lost_unflushed(done)
            with self._cv:
                self._queued -= sum(len(i) for i in items if isinstance(i, list))
                self._busy = False
                self._cv.notify_all()
                abandoned = stop and self._abandoned
                self._writer_stopped = stop
            if abandoned:  # close() gave up waiting: the file is this thread's to close
                with self._lock:
                    fh, self._fh = self._fh, None
                    _close_quietly(fh)
            if stop:
                return

    def _current_file(self, final: bool):
        """The file to write the next items to (the lock is held), None while it cannot be written.

        While the file is written, the path is looked at every :data:`CHECK_MOVED_S` and opened again when it
        names another file or none (a log rotated or deleted). After a failure, the file is opened and
        written again when the next try is due, or at once when ``final`` (the log is closing).
        """
        now = time.monotonic()
        if self._unsaid is not None and now >= self._quiet_until:
            self._say_unsaid(now)
        fh = self._fh
        if fh is not None:
            if now >= self._next_check:
                self._next_check = now + CHECK_MOVED_S
                if self._moved(fh):
                    self._open_again(fh)
            return self._fh
        o = self._outage
        if o is None or (now < o.retry_at and not final):
            return None
        return self._write_again(o)

    def _moved(self, fh) -> bool:
        """Whether the path no longer names the file ``fh`` writes: it was renamed away or deleted."""
        try:
            mine = os.fstat(fh.fileno())
        except (OSError, ValueError, AttributeError):  # not a file of the system's (a stand-in), or closed
            return False
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return True
        except OSError:  # (the folder cannot be read now): the file written is kept
            return False
        return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev)

    def _open_again(self, old) -> None:
        """Open the path again after the file was moved away (the lock is held; ``old`` has been flushed)."""
        before = _appending_to(self.path)
        try:
            fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - the log's file, closed by close()
        except OSError as exc:
            if not self._moved_said:
                self._moved_said = True
                self._report(f"the event log {self.path} was moved or deleted and cannot be created again: "
                             f"{exc.strerror or exc}; the log goes on in the file that was moved (it is tried again "
                             f"every {CHECK_MOVED_S:g} s)")
            return
        _close_quietly(old)
        self._fh = fh
        self.reopened += 1
        if before:  # a file put there holds a cut last line
            try:
                fh.write(before)
            except Exception as exc:  # noqa: BLE001 - as any write of the log's
                self._failed(exc)

    def _write_again(self, o: _Outage):
        """A try to write the file again after it failed (the lock is held): opened in append mode, its first
        line says what is missing (``log_gap``); the file, or None when it cannot be written yet."""
        before = _appending_to(self.path) or ""
        try:
            fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - the log's file, closed by close()
        except OSError as exc:
            o.why = str(exc.strerror or exc)
            self._wait_longer(o)
            return None
        self._fh = fh
        now = time.time()
        gap = {"event": "log_gap", "wall_time": now, "since": o.since, "lost_events": o.events,
               "lost_status_lines": o.status_lines, "first_stream_time": o.first_stream_time,
               "last_stream_time": o.last_stream_time, "error": o.why}
        try:
            fh.write(before + _dumps(gap) + "\n")
            fh.flush()
        except Exception as exc:  # noqa: BLE001 - still full: closed again, and a longer wait
            self._failed(exc)
            return None
        self._outage = None
        self._next_check = time.monotonic() + CHECK_MOVED_S
        self.fault = self._outages_fault()
        if o.said:
            self._report(f"the event log {self.path} is written again since {_clock(now)}: {o.events} events "
                         f"since {_clock(o.since)} were not written ({o.why}); a \"log_gap\" line in it says so")
        return fh

    def _wait_longer(self, o: _Outage) -> None:
        o.wait = min(2 * o.wait, self.retry_interval[1])
        o.retry_at = time.monotonic() + o.wait

    def _count_lost(self, item) -> None:
        """An item not written while the file cannot be (the lock is held): counted for the log_gap line."""
        o = self._outage
        if o is None:  # (the log stopped for good: its writer failed)
            return
        if isinstance(item, list):
            o.events += len(item)
            self.lost += len(item)
            if item:
                if o.first_stream_time is None:
                    o.first_stream_time = getattr(item[0], "stream_time", None)
                o.last_stream_time = getattr(item[-1], "stream_time", None)
        elif item[0] == "status":
            o.status_lines += 1

    def _lost_unflushed(self, done: list, failed=None) -> None:
        """A write or the flush failed: what was written since the last flush is counted as lost with the item
        that failed (a part of it may have reached the file, whose last line may be cut)."""
        for item, n in done:
            self.written -= n
            self._count_lost(item)
        done.clear()
        self._unflushed = 0
        if failed is not None:
            self._count_lost(failed)

    def _write_events(self, fh, events, flush: bool = True) -> bool:
        """Write one batch, level events already left out as asked (the lock is held); False when the write
        failed (the failure is dealt with)."""
        if not events:
            return True
        lines = []
        for ev in events:
            try:
                lines.append(_dumps(ev.to_dict()))
            except Exception as exc:  # noqa: BLE001 - a value JSON cannot hold, a host's to_dict that fails
                self._unwritable(f"an event {type(ev).__name__}", exc)
        if not lines:
            return True
        try:
            fh.write("\n".join(lines) + "\n")
            if flush:
                fh.flush()
        except (OSError, ValueError) as exc:  # a closed file, text it cannot encode
            self._failed(exc)
            return False
        self.written += len(lines)
        return True

    def _write_status(self, fh, counters: dict, now: float, flush: bool = True) -> bool:
        rec = {"event": "status", "wall_time": now}
        try:
            rec.update(counters)
            line = _dumps(rec)
        except Exception as exc:  # noqa: BLE001 - a counter JSON cannot hold: this line is left out
            self._unwritable("a status line", exc)
            return True
        try:
            fh.write(line + "\n")
            if flush:
                fh.flush()
        except (OSError, ValueError) as exc:  # ValueError: a closed file, text it cannot encode
            self._failed(exc)
            return False
        return True

    def _unwritable(self, what: str, exc: Exception) -> None:
        """A record JSON cannot hold was left out (the lock is held): counted; the first is a fault, reported."""
        self.unwritable += 1
        if self._unwritable_why is not None:
            return
        self._unwritable_why = f"{what}: {type(exc).__name__}: {exc}"
        if self.fault is None:
            self.fault = self._unwritable_fault()
        self._report(f"{self._unwritable_fault()}; the log goes on without it")

    def _lost(self) -> str:
        return (f"the event log {self.path} lost {self.dropped} events: its file fell more than {self.max_pending} "
                f"events behind")

    def _unwritable_fault(self) -> str:
        n = self.unwritable
        return (f"the event log {self.path} left out {n} record{'s' if n != 1 else ''} that JSON cannot hold, "
                f"the first {self._unwritable_why}")

    def _outages_fault(self) -> str:
        """What the times the file could not be written cost: the events not written, and when."""
        o, n = self._outage, self.outages
        if o is not None:  # not written again before the end
            s = (f"the event log {self.path} stopped after {o.written} events: {o.why} (its last line may be cut); "
                 f"the {o.events} events since {_clock(o.since)} were not written")
            if n > 1:
                times = "once" if n == 2 else f"{n - 1} times"
                s += (f"; before that it lost {self.lost - o.events} events while it could not be written ({times}, "
                      f"first at {_clock(self._first_outage[0])})")
            return s
        since, why = self._first_outage
        return (f"the event log {self.path} lost {self.lost} events while its file could not be written "
                f"({'once' if n == 1 else f'{n} times'}, first at {_clock(since)}: {why}); its \"log_gap\" "
                f"line{'s say' if n > 1 else ' says'} when")

    def _failed(self, exc: Exception) -> None:
        """A write failed (the lock is held): standard output's reader gone ends the run; a file is closed, and
        written again (appended to) once it can be (:meth:`_write_again`)."""
        why = getattr(exc, "strerror", None) or exc  # a ValueError (a closed file) has no strerror
        if self.path == "-":
            if isinstance(exc, BrokenPipeError):
                raise OutputClosed("the reader of standard output went away") from None
            raise SinkError(f"writing the event log to standard output failed: {why}") from None
        fh, self._fh = self._fh, None
        _close_quietly(fh)
        o = self._outage
        if o is not None:  # a try to write it again failed: a longer wait
            o.why = str(why)
            self._wait_longer(o)
            return
        now = time.monotonic()
        said = now >= self._quiet_until
        # (the events written since the last flush are counted as lost, not as written before the outage)
        written = self.written - self._unflushed
        o = self._outage = _Outage(str(why), written, self.retry_interval[0], said)
        self.outages += 1
        if self._first_outage is None:
            self._first_outage = (o.since, o.why)
        self.fault = f"the event log {self.path} stopped after {written} events: {why} (its last line may be cut)"
        if said:
            self._quiet_until = now + QUIET_S
            self._quiet_since = o.since
            first, longest = self.retry_interval
            self._report(f"{self.fault}; it is tried again every {first:g}-{longest:g} s (the events meanwhile "
                         f"are counted)")
        else:  # said when the quiet time is over (_say_unsaid)
            times, lost_before, _ = self._unsaid or (0, self.lost, "")
            self._unsaid = (times + 1, lost_before, o.why)

    def _say_unsaid(self, now: float) -> None:
        """The failures of the file within :data:`QUIET_S` of one reported, in one line once that time is over
        (the lock is held)."""
        times, lost_before, why = self._unsaid
        self._unsaid = None
        self._quiet_until = now + QUIET_S
        o = self._outage
        if o is not None:
            o.said = True  # its recovery is said
        state = "it is not written now" if o is not None else "it is written again"
        self._report(f"the event log {self.path} could not be written {times} more time{'s' if times > 1 else ''} "
                     f"since {_clock(self._quiet_since)} ({why}): {self.lost - lost_before} more events not "
                     f"written; {state} (its \"log_gap\" lines say when)")
        self._quiet_since = time.time()

    def _report(self, line: str) -> None:
        if self._on_fault is None:
            warn(f"{line}; going on without it" if line is self.fault else line)
        else:
            self._on_fault(line)

    # ------------------------------------------------------------------ closing
    def close(self, timeout: float = 2.0) -> None:
        """Write the last status line and close the file (standard output stays open).

        A write blocked in another thread (a full pipe nobody reads, a stalled
        disk) holds the log: after ``timeout`` seconds ``close`` gives up
        instead of blocking too, and the log is left to that write. A file
        that could not be written is tried once more first.
        """
        try:
            self._close(timeout)
        finally:  # what the log lost, all told, now that it is done
            parts = [self._dead or self._gave_up]
            if self.outages:
                parts.append(self._outages_fault())
            if self.dropped:
                parts.append(self._lost())
            if self._unwritable_why is not None:
                parts.append(self._unwritable_fault())
            said = "; ".join(x for x in parts if x)
            if said:
                self.fault = said

    def _close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cv:
            c, self._pending_status = self._pending_status, None
            writer, self._accepting = self._writer, False
            if writer is not None:
                if c is not None:
                    self._queue.append(("status", dict(c), time.time()))
                    c = None
                self._queue.append(_STOP)
                self._cv.notify()
        if writer is not None:
            writer.join(timeout)
            if writer.is_alive():
                with self._cv:
                    behind = self._queued
                    self._abandoned = True
                    past = self._writer_stopped  # it took the stop without seeing _abandoned: it is leaving
                if not past:
                    self._gave_up = (f"the event log {self.path} did not finish writing within {timeout:g} s "
                                     f"(its reader or disk is stalled): up to {behind} events not written")
                    return
                writer.join()
            self._writer = None
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return
        try:
            fh, self._fh = self._fh, None
            if c is not None and fh is not None:
                try:
                    self._write_status(fh, c, time.time())
                except SinkError:
                    pass
            if fh is None or fh is sys.stdout:
                return
            try:
                fh.close()
            except OSError:  # pragma: no cover - the disk vanished
                pass
        finally:
            self._lock.release()

    def __repr__(self) -> str:
        return f"JsonlSink({self.path!r})"
