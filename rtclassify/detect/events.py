"""Events produced by the engine.

Every event carries ``stream_time`` (seconds of audio consumed by the stream
when the event was decided, in the input's own time base: the input time by
which it is decided whatever the block split; behind a resampler that can be up
to one model-rate sample after the audio consumed when it actually was, since
the resampler's delay is counted at its worst case) and ``wall_time``
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


@dataclass(frozen=True, slots=True)
class VibratoOn(Event):
    """A vibrato started: ``rate`` in Hz, ``extent`` in cents (half peak-to-peak) when detected."""

    rate: float = 0.0
    extent: float = 0.0
    kind = "vibrato_on"


@dataclass(frozen=True, slots=True)
class VibratoOff(Event):
    """The vibrato stopped."""

    kind = "vibrato_off"


@dataclass(frozen=True, slots=True)
class TremoloOn(Event):
    """A tremolo started: ``rate`` in Hz, ``depth`` in dB (peak-to-peak) when detected."""

    rate: float = 0.0
    depth: float = 0.0
    kind = "tremolo_on"


@dataclass(frozen=True, slots=True)
class TremoloOff(Event):
    """The tremolo stopped."""

    kind = "tremolo_off"


@dataclass(frozen=True, slots=True)
class TechniqueValues(Event):
    """Continuous pitch, vibrato and tremolo values at one tracker frame.

    ``pitch`` is the f0 in Hz and ``midi`` the fractional MIDI note number
    (both None when unvoiced); ``vibrato_rate`` (Hz) / ``vibrato_extent``
    (cents, half peak-to-peak) and ``tremolo_rate`` (Hz) / ``tremolo_depth``
    (dB peak-to-peak) are 0.0 while the technique is off.
    """

    pitch: float | None = None
    midi: float | None = None
    confidence: float = 0.0
    level_db: float = -120.0
    vibrato: bool = False
    vibrato_rate: float = 0.0
    vibrato_extent: float = 0.0
    tremolo: bool = False
    tremolo_rate: float = 0.0
    tremolo_depth: float = 0.0
    kind = "technique"
