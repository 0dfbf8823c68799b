"""JSON Lines event log: one JSON object per event (``Event.to_dict()``), flushed per batch.

A line looks like::

    {"stream_time": 3.072, "wall_time": 1716000000.123, "channel": 0, "tag": "piano", "prob": 0.91, "event": "on"}

``-`` writes to standard output. Once a second (``status_interval``), and
once more when the log closes, a status line carries the engine counters
(dropped samples, overflows, hops, compute time, latency parts)::

    {"event": "status", "wall_time": 1716000001.0, "dropped_samples": 0, "input_overflows": 0, ...}

A file that can no longer be written during a run (a full disk) does not stop
the show: the log stops at the last whole batch, the problem is reported once
through ``on_fault`` (default: one line on standard error) and
:attr:`JsonlSink.fault` says where the log ends. Standard output whose reader
went away (``--log - | head``) ends the run instead
(:class:`~rtclassify.errors.OutputClosed`): there the log is what the user
asked for.
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


class JsonlSink:
    """Writes every event (``levels=False`` leaves out the frequent level events) as JSONL.

    Parameters
    ----------
    path : str or Path
        Output file (created or truncated) or ``"-"`` for standard output.
    levels : bool
        Also log ``level`` events (they come at the level rate for every tag).
    status_interval : float
        Seconds between two status lines (0: none).
    """

    def __init__(self, path, *, levels: bool = True, status_interval: float = 1.0, on_fault=None):
        self.path = str(path)
        self.levels = bool(levels)
        self.status_interval = float(status_interval)
        self._last_status = 0.0
        self._pending_status: dict | None = None
        self._fh = None
        self._lock = threading.Lock()
        #: events written
        self.written = 0
        #: why the log stopped during the run (a file that could not be written), or None
        self.fault: str | None = None
        self._on_fault = on_fault

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

    def send(self, events: Sequence) -> None:
        with self._lock:
            fh = self._fh
            if fh is None:
                if self.fault is not None:
                    return  # stopped during the run (reported once)
                raise SinkError("the event log is not open")
            lines = [json.dumps(ev.to_dict(), separators=(", ", ": ")) for ev in events
                     if self.levels or ev.kind != "level"]
            if not lines:
                return
            try:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
            except OSError as exc:
                self._failed(exc)
                return
            self.written += len(lines)

    def status(self, counters: dict) -> None:
        """Write the counters as a status line, at most every ``status_interval`` seconds."""
        if self.status_interval <= 0:
            return
        now = time.time()
        with self._lock:
            self._pending_status = counters
            if now - self._last_status < self.status_interval:
                return
        self._write_status(now)

    def _write_status(self, now: float) -> None:
        with self._lock:
            self._write_status_locked(now)

    def _write_status_locked(self, now: float) -> None:
        c, self._pending_status = self._pending_status, None
        fh = self._fh
        if c is None or fh is None:
            return
        self._last_status = now
        rec = {"event": "status", "wall_time": now}
        for k, v in c.items():
            rec[k] = None if isinstance(v, float) and not math.isfinite(v) else v
        try:
            fh.write(json.dumps(rec, separators=(", ", ": ")) + "\n")
            fh.flush()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        """A write failed (the lock is held): standard output's reader gone ends the run; a file stops logging."""
        if self.path == "-":
            if isinstance(exc, BrokenPipeError):
                raise OutputClosed("the reader of standard output went away") from None
            raise SinkError(f"writing the event log to standard output failed: {exc.strerror or exc}") from None
        fh, self._fh = self._fh, None
        self.fault = (f"the event log {self.path} stopped after {self.written} events: "
                      f"{exc.strerror or exc} (its last line may be cut)")
        try:
            fh.close()
        except OSError:
            pass
        if self._on_fault is None:
            warn(f"{self.fault}; going on without it")
        else:
            self._on_fault(self.fault)

    def close(self, timeout: float = 2.0) -> None:
        """Write the last status line and close the file (standard output stays open).

        A write blocked in another thread (a full pipe nobody reads) holds the
        log: after ``timeout`` seconds ``close`` gives up instead of blocking
        too, and the log is left to that write.
        """
        if not self._lock.acquire(timeout=timeout):
            return
        try:
            if self._pending_status is not None:
                try:
                    self._write_status_locked(time.time())
                except SinkError:
                    pass
            fh, self._fh = self._fh, None
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
