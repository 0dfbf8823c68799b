"""Text written to a terminal or pipe from a thread of its own, so that the engine's worker never waits on it.

A terminal paused with Ctrl-S (XOFF), an ssh link that stalls or a pipe whose reader stops reading blocks a
write until it resumes; written from the worker, that held every output (MIDI and OSC included) and dropped
the audio arriving meanwhile. :class:`BackgroundText` queues the text instead (up to ``max_pending`` writes;
beyond that the newest are dropped and counted) and a daemon thread writes it.
"""

from __future__ import annotations

import threading
from typing import Callable

__all__ = ["BackgroundText", "call_within"]


class BackgroundText:
    """Queue text for ``stream()`` (looked up at each write, so a replaced ``sys.stdout`` is followed).

    Parameters
    ----------
    stream : callable
        Returns the file object to write to (``lambda: sys.stdout``).
    name : str
        The writer thread's name.
    max_pending : int
        Most writes waiting at once; more are dropped (counted in :attr:`dropped`).
    """

    def __init__(self, stream: Callable, name: str = "rtclassify-text", max_pending: int = 10_000):
        self._stream = stream
        self._name = name
        self.max_pending = int(max_pending)
        self._queue: list[str] = []
        self._cv = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._busy = False
        self._stop = False
        #: writes dropped because ``max_pending`` were waiting (the stream was blocked)
        self.dropped = 0
        #: the stream's reader went away (BrokenPipeError, or no stream: a closed standard output): nothing more
        #: is written
        self.reader_gone = False
        #: a write failed otherwise (an OSError: a full disk, a device error); nothing more is written
        self.error: OSError | None = None

    def write(self, text: str) -> None:
        """Queue ``text`` (written as it is, then flushed); never blocks, never raises."""
        with self._cv:
            if self.reader_gone or self.error is not None or self._stop:
                return
            if len(self._queue) >= self.max_pending:
                self.dropped += 1
                return
            self._queue.append(text)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cv.notify()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for everything queued to be written; False when it was not (the
        stream is still blocked)."""
        with self._cv:
            return self._cv.wait_for(lambda: not (self._queue or self._busy) or self._thread is None
                                     or not self._thread.is_alive(), timeout) and not (self._queue or self._busy)

    def close(self, timeout: float = 2.0) -> bool:
        """Write what is queued (waiting up to ``timeout`` seconds), then stop the thread; False when the
        stream was still blocked (the thread is left to it: a daemon, it does not keep the process alive)."""
        done = self.flush(timeout)
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        return done

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stop:
                    self._cv.wait()
                if not self._queue:
                    return
                items, self._queue = self._queue, []
                self._busy = True
            out = self._stream()
            if out is None:  # (sys.stdout of a process started with it closed: `>&-`)
                self._failed(reader_gone=True)
                return
            try:
                out.write("".join(items))
                out.flush()
            except BrokenPipeError:
                self._failed(reader_gone=True)
                return
            except (OSError, ValueError) as exc:  # ValueError: the stream was closed
                self._failed(error=exc if isinstance(exc, OSError) else OSError(str(exc)))
                return
            with self._cv:
                self._busy = False
                self._cv.notify_all()

    def _failed(self, reader_gone: bool = False, error: OSError | None = None) -> None:
        with self._cv:
            self.reader_gone = self.reader_gone or reader_gone
            self.error = self.error or error
            self._queue.clear()
            self._busy = False
            self._cv.notify_all()


def call_within(fn: Callable[[], object], timeout: float, name: str) -> bool:
    """Run ``fn()`` in a daemon thread and wait up to ``timeout`` seconds for it; False when it is still running
    then (a write blocked on a paused terminal or a full pipe: left to its thread, which does not keep the
    process alive)."""
    t = threading.Thread(target=fn, name=name, daemon=True)
    t.start()
    t.join(timeout)
    return not t.is_alive()
