"""Outputs of the live engine: MIDI, OSC, the terminal display and a JSONL log.

Every sink follows the :class:`Sink` protocol. The :class:`~rtclassify.Listener`
calls ``open()`` once before audio starts (a sink that cannot open raises
:class:`~rtclassify.errors.SinkError` with one clear line), ``send(events)`` on
its worker thread with each batch of events (in stream order), and
``close()`` once when it stops (after the decoder's final TagOff events, so a
MIDI sink has nothing sounding left; it still sends note-off for any note on).
``status(counters)`` is optional and receives the engine counters a few times
a second (the display shows them).

Sinks dispatch on the event's ``kind`` (``"on"``, ``"off"``, ``"level"``, and
the technique kinds ``"technique"`` (per-frame pitch/vibrato/tremolo values),
``"vibrato_on"``, ``"vibrato_off"``, ``"tremolo_on"``, ``"tremolo_off"``),
through a per-class ``handlers`` table, so new event kinds drop in by adding
a handler; kinds a sink does not know are ignored.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from ..detect.events import Event

__all__ = ["Sink", "EventDispatch", "warn"]


@runtime_checkable
class Sink(Protocol):
    """What the listener needs from an output. Methods run on the listener's worker thread,
    except ``open`` (the thread that starts the listener)."""

    def open(self) -> None:
        """Acquire the port/socket/file. Idempotent. Raises SinkError with one clear line."""

    def send(self, events: Sequence[Event]) -> None:
        """Deliver a batch of events. Raises SinkError when the output fails."""

    def close(self) -> None:
        """Release everything (MIDI: note-off for every sounding note). Idempotent, never raises."""


class EventDispatch:
    """Mixin: ``send`` calls ``handlers[event.kind](self, event)`` for each event;
    ``with sink:`` opens and closes it.

    Subclasses fill ``handlers`` (a dict kind -> function(sink, event)); to
    support a new event kind, add an entry::

        MidiSink.handlers["vibrato_on"] = my_handler
    """

    handlers: dict = {}

    def send(self, events: Sequence[Event]) -> None:
        h = self.handlers
        for ev in events:
            fn = h.get(ev.kind)
            if fn is not None:
                fn(self, ev)

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()


def warn(line: str) -> None:
    """One warning line on standard error: an output problem the run goes on through (the sinks' default
    ``on_fault``)."""
    import sys

    print(f"rtclassify: warning: {line}", file=sys.stderr, flush=True)
