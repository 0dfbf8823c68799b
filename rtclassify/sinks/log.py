"""JSON Lines event log: one JSON object per event (``Event.to_dict()``), flushed per batch.

A line looks like::

    {"stream_time": 3.072, "wall_time": 1716000000.123, "channel": 0, "tag": "piano", "prob": 0.91, "event": "on"}

``-`` writes to standard output. Once a second (``status_interval``), and
once more when the log closes, a status line carries the engine counters
(dropped samples, overflows, hops, compute time, latency parts)::

    {"event": "status", "wall_time": 1716000001.0, "dropped_samples": 0, "input_overflows": 0, ...}

A file is written by a thread of its own: ``send`` and ``status`` only queue
the batch, so a disk that stalls (a busy or network file system, a full
page cache being written back) never holds the listener's worker. The
writer flushes whenever it has caught up. If the file falls more than
``max_pending`` events behind, further batches are dropped and counted
rather than held in memory without end; ``close`` waits for the writer to
write what it has.

A file that can no longer be written during a run (a full disk) does not stop
the show: the log stops at the last whole batch, the problem is reported once
through ``on_fault`` (default: one line on standard error) and
:attr:`JsonlSink.fault` says where the log ends. Standard output is written
on the caller's thread: its reader sets the pace the user asked for, and a
reader that went away (``--log - | head``) ends the run
(:class:`~rtclassify.errors.OutputClosed`): there the log is what the user
asked for.

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
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from ..errors import OutputClosed, SinkError
from . import warn

__all__ = ["JsonlSink"]

_STOP = object()  # the writer thread's last item
_SEPARATORS = (", ", ": ")


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


class JsonlSink:
    """Writes every event as JSONL (``levels=False`` and ``values=False`` leave out the periodic ones).

    Parameters
    ----------
    path : str or Path
        Output file (created or truncated) or ``"-"`` for standard output.
    levels : bool
        Also log ``level`` events (they come at the level rate for every tag).
    values : bool
        Also log ``technique`` events, the trackers' pitch, vibrato and tremolo values (one per
        tracker frame, 50 a second). Without them and the levels, a log holds what changes (tags,
        vibrato and tremolo on and off) and the status lines.
    status_interval : float
        Seconds between two status lines (0: none).
    on_fault : callable or None
        Called once with a line when the file stops being written or falls behind
        (default: a warning on standard error). For a file it is called on the writer thread.
    max_pending : int
        Most events a file's writer may have waiting before batches are dropped.
    """

    def __init__(self, path, *, levels: bool = True, values: bool = True, status_interval: float = 1.0,
                 on_fault=None, max_pending: int = 200_000):
        self.path = str(path)
        self.levels = bool(levels)
        self.values = bool(values)
        self.status_interval = float(status_interval)
        self.max_pending = int(max_pending)
        self._last_status = 0.0
        self._pending_status: dict | None = None
        self._fh = None
        self._lock = threading.Lock()  # the file handle (held by whoever writes)
        #: events written
        self.written = 0
        #: events dropped because the file's writer fell ``max_pending`` events behind
        self.dropped = 0
        #: events and status lines left out because they hold a value JSON cannot hold (or their ``to_dict``
        #: failed); the first is reported as :attr:`fault`
        self.unwritable = 0
        self._unwritable_why: str | None = None
        self._stopped = False  # the log stopped on a fault (a full disk, its writer failed): nothing more is queued
        #: why the log stopped or lost events during the run, or None
        self.fault: str | None = None
        self._on_fault = on_fault
        # the file's writer: a queue of batches (lists of events, or ("status", dict, time))
        self._queue: list = []
        self._queued = 0  # events in the queue or being written
        self._cv = threading.Condition(threading.Lock())  # the queue and the status throttle
        self._writer: threading.Thread | None = None
        self._accepting = False  # a file's writer takes batches (from open to close)
        self._abandoned = False  # close() gave up on a stalled writer, which closes the file when it is done
        self._writer_stopped = False  # the writer has taken its stop item (and decided who closes the file)
        self._busy = False  # the writer is writing a set of items

    # ------------------------------------------------------------------ opening
    def open(self) -> None:
        if self._fh is not None:
            return
        if self.path == "-":
            self._fh = sys.stdout
            return
        p = Path(self.path)
        try:
            self._fh = p.open("w", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"cannot write the event log {p}: {exc.strerror or exc}") from None
        self._writer = threading.Thread(target=self._write_loop, name="rtclassify-log", daemon=True)
        self._abandoned = False
        self._writer_stopped = False
        self._writer_failed = False
        self._stopped = False
        self._accepting = True
        self._writer.start()

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
        """Write the counters as a status line, at most every ``status_interval`` seconds."""
        if self.status_interval <= 0:
            return
        now = time.time()
        with self._cv:
            self._pending_status = counters
            if now - self._last_status < self.status_interval:
                return
            self._last_status = now
            self._pending_status = None
        if self.path != "-":
            if self._accepting and not self._stopped:  # (a log that stopped queues nothing more)
                self._put(("status", dict(counters), now), 0)
            return
        with self._lock:
            if self._fh is not None:
                self._write_status(self._fh, counters, now)

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
        when the log stopped on a fault instead (a full disk, a write that failed, the writer itself:
        :attr:`fault` says how)."""
        writer = self._writer
        if writer is None:
            return True
        with self._cv:
            done = self._cv.wait_for(lambda: not (self._queue or self._busy) or not writer.is_alive(), timeout)
            return (bool(done) and not self._writer_failed and not self._stopped
                    and not (self._queue or self._busy))

    # ------------------------------------------------------------------ the writer's side
    def _write_loop(self) -> None:
        try:
            self._write_items()
        except BaseException as exc:  # noqa: BLE001 - the writer itself failed: the log stops, and says so
            try:
                with self._lock:
                    if self._fh is not None:
                        self._failed(exc)
                    else:
                        self._stopped = True
                        if self.fault is None:
                            self.fault = (f"the event log {self.path} stopped after {self.written} events: its "
                                          f"writer failed: {type(exc).__name__}: {exc}")
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
                fh = self._fh
                for item in items:
                    if item is _STOP:
                        stop = True
                        break
                    if fh is None:
                        continue  # stopped after a fault (reported once): the rest is dropped
                    try:
                        if isinstance(item, tuple):
                            ok = self._write_status(fh, item[1], item[2], flush=False)
                        else:
                            ok = self._write_events(fh, item, flush=False)
                    except Exception as exc:  # noqa: BLE001 - a file object that fails otherwise: the log stops
                        self._failed(exc)
                        ok = False
                    if not ok:
                        fh = None
                if fh is not None:  # caught up: one flush for everything written
                    try:
                        fh.flush()
                    except Exception as exc:  # noqa: BLE001 - OSError, ValueError (closed) or a file's own
                        self._failed(exc)
            with self._cv:
                self._queued -= sum(len(i) for i in items if isinstance(i, list))
                self._busy = False
                self._cv.notify_all()
                abandoned = stop and self._abandoned
                self._writer_stopped = stop
            if abandoned:  # close() gave up waiting: the file is this thread's to close
                with self._lock:
                    fh, self._fh = self._fh, None
                    if fh is not None:
                        try:
                            fh.close()
                        except OSError:
                            pass
            if stop:
                return

    def _write_events(self, fh, events, flush: bool = True) -> bool:
        """Write one batch, level events already left out as asked (the lock is held); False when the log
        stopped on it."""
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
            self._report(f"{self.fault}; the log goes on without it")

    def _lost(self) -> str:
        return (f"the event log {self.path} lost {self.dropped} events: its file fell more than {self.max_pending} "
                f"events behind")

    def _unwritable_fault(self) -> str:
        n = self.unwritable
        return (f"the event log {self.path} left out {n} record{'s' if n != 1 else ''} that JSON cannot hold, "
                f"the first {self._unwritable_why}")

    def _failed(self, exc: Exception) -> None:
        """A write failed (the lock is held): standard output's reader gone ends the run; a file stops logging."""
        why = getattr(exc, "strerror", None) or exc  # a ValueError (a closed file) has no strerror
        if self.path == "-":
            if isinstance(exc, BrokenPipeError):
                raise OutputClosed("the reader of standard output went away") from None
            raise SinkError(f"writing the event log to standard output failed: {why}") from None
        fh, self._fh = self._fh, None
        self._stopped = True
        self.fault = f"the event log {self.path} stopped after {self.written} events: {why} (its last line may be cut)"
        try:
            fh.close()
        except OSError:
            pass
        self._report(self.fault)

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
        instead of blocking too, and the log is left to that write.
        """
        try:
            self._close(timeout)
        finally:
            why = self._unwritable_why
            if why is not None and self.fault is not None and self.fault.endswith(why):
                # how many in all, now that the log is done, after the events it lost if it lost some
                lost = self._lost() if self.dropped else None
                self.fault = "; ".join(x for x in (lost, self._unwritable_fault()) if x)

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
                    if self.fault is None:
                        self.fault = (f"the event log {self.path} did not finish writing within {timeout:g} s "
                                      f"(its reader or disk is stalled): up to {behind} events not written")
                    return
                writer.join()
            self._writer = None
            if self.dropped and self.fault is None:
                self.fault = self._lost()
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
