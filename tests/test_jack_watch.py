"""JackServerWatch.close never holds up the MIDI sink's close (no JACK server needed)."""

import threading
import time

from rtclassify.sinks.jack_watch import JackServerWatch


class _Client:
    def __init__(self, blocks: bool):
        self.release = threading.Event()
        self.blocks = blocks
        self.closed = 0

    def close(self):
        self.closed += 1
        if self.blocks:
            self.release.wait()


def _watch(client):
    w = JackServerWatch.__new__(JackServerWatch)  # without a server: only what close() reads
    w._client = client
    return w


def test_a_close_that_the_jack_library_never_returns_from_is_left_behind():
    client = _Client(blocks=True)
    w = _watch(client)
    t0 = time.monotonic()
    w.close(timeout=0.3)
    assert time.monotonic() - t0 < 2.0  # returned: not held by the close that never comes back
    assert client.closed == 1 and not client.release.is_set()
    left = [t for t in threading.enumerate() if t.name == "rtclassify-jack-watch-close"]
    assert left and all(t.is_alive() for t in left)  # that close goes on, on a thread of its own
    w.close(timeout=0.3)  # idempotent: the client is not closed twice
    assert client.closed == 1
    client.release.set()


def test_a_normal_close_returns_at_once():
    client = _Client(blocks=False)
    t0 = time.monotonic()
    _watch(client).close()
    assert time.monotonic() - t0 < 1.0 and client.closed == 1
