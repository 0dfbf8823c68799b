"""Notice the JACK server going away, which python-rtmidi's JACK output does not report.

When the JACK server stops, python-rtmidi's JACK ``send_message`` raises nothing and calls no error
callback: it queues each message in its ring buffer, and once the buffer is full (about 2,300
messages: 10-20 s of tag levels) it waits for space that never comes. The listener's worker would
hang inside the MIDI sink, and so would the final note-offs on exit. :class:`JackServerWatch` opens
a JACK client of its own (through JACK-Client), never activated, so it takes no part in the
server's processing, and registers a shutdown callback; :class:`~rtclassify.sinks.midi.MidiSink`
checks :attr:`JackServerWatch.lost` before every message and raises SinkError instead. The server's
shutdown reaches the callback within about 10 ms.
"""

from __future__ import annotations

import threading

from ..errors import SinkError

__all__ = ["JackServerWatch"]

#: seconds :meth:`JackServerWatch.close` waits for the JACK library to close the client
CLOSE_TIMEOUT_S = 2.0


class JackServerWatch:
    """A JACK client that only waits for the server's shutdown.

    Parameters
    ----------
    client_name : str
        JACK client name (the server may add a suffix when it is taken).

    Raises
    ------
    SinkError
        The JACK server is not reachable.
    ImportError, OSError
        JACK-Client or the JACK library is not available (the caller decides whether to go on).
    """

    def __init__(self, client_name: str):
        import jack

        self._lost = threading.Event()
        #: the server's reason, once it has shut down
        self.reason: str | None = None
        try:
            self._client = jack.Client(client_name, no_start_server=True)
        except jack.JackError as exc:
            raise SinkError(f"cannot open a JACK client to watch the server: is the JACK server running? ({exc})") \
                from None
        self._client.set_shutdown_callback(self._on_shutdown)
        self.name = self._client.name

    def _on_shutdown(self, status, reason: str) -> None:
        # a JACK thread, as from a signal handler: record and flag, nothing more
        self.reason = str(reason) or "no reason given"
        self._lost.set()

    @property
    def period_s(self) -> float | None:
        """The server's period in seconds (frames per cycle / rate); None when it cannot be read."""
        try:
            return float(self._client.blocksize) / float(self._client.samplerate)
        except Exception:
            return None

    def midi_outputs(self) -> set[str]:
        """The names of the server's MIDI output ports now (empty when they cannot be read)."""
        try:
            return {p.name for p in self._client.get_ports(is_midi=True, is_output=True)}
        except Exception:
            return set()

    def connections(self, port_name: str) -> set[str] | None:
        """The ports connected to ``port_name`` now; None when they cannot be read (no such port, no server)."""
        try:
            return {p.name for p in self._client.get_all_connections(port_name)}
        except Exception:
            return None

    @property
    def lost(self) -> bool:
        """True once the JACK server has shut down (or shut this client out)."""
        return self._lost.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the server shuts down; returns :attr:`lost`."""
        return self._lost.wait(timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Close the client (idempotent, never raises, returns within ``timeout`` seconds).

        ``jack_client_close`` waits for the server; once in a clean-clone CI run it never returned (right
        after the MIDI sink had deleted python-rtmidi's own client). The watch takes no part in the
        server's processing, so a close that has not come back in time is left to finish (or to end with
        the process) on its own thread rather than freeze the sink's close and the run's exit.
        """
        client, self._client = getattr(self, "_client", None), None
        if client is None:
            return
        done = threading.Event()

        def close_client():
            try:
                client.close()
            except Exception:
                pass
            finally:
                done.set()

        threading.Thread(target=close_client, name="rtclassify-jack-watch-close", daemon=True).start()
        done.wait(timeout)
