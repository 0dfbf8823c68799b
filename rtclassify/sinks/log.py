"""JSON Lines event log: one JSON object per event (``Event.to_dict()``), flushed per batch.

A line looks like::

    {"stream_time": 3.072, "wall_time": 1716000000.123, "channel": 0, "tag": "piano", "prob": 0.91, "event": "on"}

``-`` writes to standard output.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Sequence

from ..errors import SinkError

__all__ = ["JsonlSink"]


class JsonlSink:
    """Writes every event (``levels=False`` leaves out the frequent level events) as JSONL.

    Parameters
    ----------
    path : str or Path
        Output file (created or truncated) or ``"-"`` for standard output.
    levels : bool
        Also log ``level`` events (they come at the level rate for every tag).
    """

    def __init__(self, path, *, levels: bool = True):
        self.path = str(path)
        self.levels = bool(levels)
        self._fh = None
        self._lock = threading.Lock()
        #: events written
        self.written = 0

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
                raise SinkError("the event log is not open")
            lines = [json.dumps(ev.to_dict(), separators=(", ", ": ")) for ev in events
                     if self.levels or ev.kind != "level"]
            if not lines:
                return
            try:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
            except OSError as exc:
                raise SinkError(f"writing the event log {self.path} failed: {exc.strerror or exc}") from None
            self.written += len(lines)

    def close(self) -> None:
        with self._lock:
            fh, self._fh = self._fh, None
            if fh is None or fh is sys.stdout:
                return
            try:
                fh.close()
            except OSError:  # pragma: no cover - the disk vanished
                pass
