"""Events produced by the engine.

Every event carries ``stream_time`` (seconds of audio consumed by the stream
when the event was decided, in the input's own time base) and ``wall_time``
(``time.time()`` when it was emitted), so that latency can be measured, and the
input ``channel`` it belongs to (0 for a mono stream).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of all events."""

    stream_time: float
    wall_time: float = field(default=0.0, compare=False)
    channel: int = 0

    #: short name used in JSON logs and OSC addresses
    kind = "event"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["event"] = self.kind
        return d


@dataclass(frozen=True, slots=True)
class TagOn(Event):
    """A tag turned on with probability ``prob``."""

    tag: str = ""
    prob: float = 0.0
    kind = "on"


@dataclass(frozen=True, slots=True)
class TagOff(Event):
    """A tag turned off."""

    tag: str = ""
    kind = "off"


@dataclass(frozen=True, slots=True)
class TagLevel(Event):
    """The smoothed probability of a tag, sent at the level rate."""

    tag: str = ""
    prob: float = 0.0
    kind = "level"
