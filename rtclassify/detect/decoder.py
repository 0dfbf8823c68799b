"""Turning per-hop tag probabilities into on/off events and levels.

For each tag, independently, once per model output (hop):

1. **Smoothing** of the probability: an exponential moving average with time
   constant ``smoothing_s`` (``alpha = 1 - exp(-hop_s / smoothing_s)``; the
   first output initialises it; ``smoothing_s = 0`` disables it), or the
   median of the last ``median_hops`` outputs (``smoothing="median"``). With
   ``attack_s`` set, the EMA is an envelope follower: time constant
   ``attack_s`` while the probability rises and ``smoothing_s`` (the release)
   while it falls, so a tag turns on fast and a short dip does not turn it
   off (``attack_s = 0``: a rise is taken at once).
2. **Hysteresis**: an off tag turns on when the smoothed probability is above
   its ``on`` threshold; an on tag turns off when it is below its ``off``
   threshold (``off <= on``).
3. **Minimum durations**: a tag that turned on stays on for at least
   ``min_on_s`` and a tag that turned off stays off for at least
   ``min_off_s`` (durations counted in hops: ``ceil(min_s / hop_s)``). A turn
   that is held back happens at the first hop where it is allowed and the
   threshold condition still holds. Onsets are never delayed by these rules:
   at the start of a stream every tag counts as having been off for ever.

Events per hop, in this order: :class:`~rtclassify.detect.events.TagOff` and
:class:`~rtclassify.detect.events.TagOn` in label order (``prob`` of TagOn is
the smoothed probability), then one :class:`~rtclassify.detect.events.TagLevel`
per tag (smoothed probability) when a level is due: every hop by default
(``level_rate=None``), at most ``level_rate`` times per second of stream time,
or never (``level_rate=0``). When levels are sent and none is due, a tag that
turns on gets its TagLevel after its TagOn all the same (a receiver's level
rises with the note, not up to a level period later); with ``level_rate=0``
no TagLevel is ever sent, so nothing is left for a receiver to reset.

Defaults come from the bundle (``thresholds``, ``decoder``); a dict of
overrides (what a mapping file provides) replaces any of them::

    {"smoothing": "ema" | "median", "smoothing_s": 0.1, "attack_s": 0.0, "median_hops": 3,
     "min_on_s": 0.2, "min_off_s": 0.2, "level_rate": 10.0,
     "thresholds": {"piano": {"on": 0.6, "off": 0.4}}}

The decoder works in preallocated arrays; :meth:`Decoder.step` allocates only
the event objects it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError
from .events import Event, TagLevel, TagOff, TagOn

__all__ = ["DecoderConfig", "Decoder", "OVERRIDE_KEYS", "DURATION_KEYS", "MAX_DURATION_S", "MAX_MEDIAN_HOPS"]

#: keys accepted in a decoder override dict
OVERRIDE_KEYS = ("smoothing", "smoothing_s", "attack_s", "median_hops", "min_on_s", "min_off_s", "level_rate", "thresholds")
#: the decoder's time constants and minimum durations, in seconds
DURATION_KEYS = ("smoothing_s", "attack_s", "min_on_s", "min_off_s")
#: the longest of them (an hour: far beyond any musical use; 1e308 overflowed the count of hops)
MAX_DURATION_S = 3600.0
#: the longest median (``median_hops``): the one bound of the Python API, a bundle's ``model.json`` and a
#: mapping file's ``[decoder]`` (the median's history is preallocated: median_hops x tags floats)
MAX_MEDIAN_HOPS = 1000

_LARGE = 1 << 60


def _number(value, key: str, lo: float = 0.0, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
        raise ParameterError(f"{key} must be a finite number (got {value!r})")
    if value < lo or (hi is not None and value > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ParameterError(f"{key} must be {rng} (got {value})")
    return float(value)


def _median_hops(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_MEDIAN_HOPS:
        raise ParameterError(f"decoder.median_hops must be a whole number from 1 to {MAX_MEDIAN_HOPS} (got {value!r})")
    return int(value)


@dataclass
class DecoderConfig:
    """Decoder parameters (see the module notes).

    Attributes
    ----------
    labels : tuple of str
    thresholds : dict
        ``{tag: (on, off)}`` for every label.
    smoothing : {"ema", "median"}
    smoothing_s : float
        EMA time constant in seconds (0: no smoothing); the release time
        constant when ``attack_s`` is set.
    attack_s : float or None
        EMA time constant while the probability rises (None: ``smoothing_s``).
    median_hops : int
        Median length in hops (``smoothing="median"``), 1 to :data:`MAX_MEDIAN_HOPS` (1000).
    min_on_s, min_off_s : float
        Minimum on and off durations in seconds.
    level_rate : float or None
        TagLevel events per second; None: every hop; 0: none.
    """

    labels: tuple
    thresholds: dict
    smoothing: str = "ema"
    smoothing_s: float = 0.0
    attack_s: float | None = None
    median_hops: int = 3
    min_on_s: float = 0.0
    min_off_s: float = 0.0
    level_rate: float | None = None
    _extra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_bundle(cls, bundle, overrides: dict | None = None, level_rate: float | None = None) -> "DecoderConfig":
        """Bundle defaults, then ``overrides`` (a dict, see the module notes), then ``level_rate``.

        Raises
        ------
        ParameterError
            Unknown override key, unknown tag, or a value out of range; the
            message names the key (``decoder.<key>``).
        """
        d = dict(bundle.decoder)
        cfg = cls(
            labels=tuple(bundle.labels),
            thresholds=dict(bundle.thresholds),
            smoothing=d.get("smoothing", "ema"),
            smoothing_s=d.get("smoothing_s", 0.0),
            attack_s=d.get("attack_s"),
            median_hops=d.get("median_hops", 3),
            min_on_s=d.get("min_on_s", 0.0),
            min_off_s=d.get("min_off_s", 0.0),
        )
        if overrides:
            cfg = cfg.override(overrides)
        if level_rate is not None:
            cfg.level_rate = _number(level_rate, "level_rate")
        cfg.validate()
        return cfg

    def override(self, overrides: dict) -> "DecoderConfig":
        """A copy with the keys of ``overrides`` replaced (validated)."""
        if not isinstance(overrides, dict):
            raise ParameterError(f"decoder overrides must be a dict (got {type(overrides).__name__})")
        unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
        if unknown:
            raise ParameterError(f"unknown decoder key(s): {', '.join('decoder.' + k for k in unknown)} "
                                 f"(known: {', '.join(OVERRIDE_KEYS)})")
        new = DecoderConfig(**{k: getattr(self, k) for k in ("labels", "smoothing", "smoothing_s", "attack_s", "median_hops",
                                                             "min_on_s", "min_off_s", "level_rate")},
                            thresholds=dict(self.thresholds))
        for key, value in overrides.items():
            if key == "thresholds":
                if not isinstance(value, dict):
                    raise ParameterError("decoder.thresholds must be a dict {tag: {'on': p, 'off': p}}")
                for tag, entry in value.items():
                    if tag not in new.thresholds:
                        raise ParameterError(f"decoder.thresholds: unknown tag {tag!r} (tags: {', '.join(self.labels)})")
                    if not isinstance(entry, dict) or not set(entry) <= {"on", "off"}:
                        raise ParameterError(f"decoder.thresholds.{tag} must be a dict with 'on' and/or 'off'")
                    on, off = new.thresholds[tag]
                    on = _number(entry.get("on", on), f"decoder.thresholds.{tag}.on", 0.0, 1.0)
                    off = _number(entry.get("off", off), f"decoder.thresholds.{tag}.off", 0.0, 1.0)
                    if "on" in entry and "off" not in entry:
                        off = min(off, on)
                    new.thresholds[tag] = (on, off)
            elif key == "level_rate":
                new.level_rate = None if value is None else _number(value, "decoder.level_rate")
            elif key == "smoothing":
                new.smoothing = value
            elif key == "attack_s":
                new.attack_s = None if value is None else _number(value, "decoder.attack_s", 0.0, MAX_DURATION_S)
            elif key == "median_hops":
                new.median_hops = _median_hops(value)
            else:
                hi = MAX_DURATION_S if key in DURATION_KEYS else None
                setattr(new, key, _number(value, f"decoder.{key}", 0.0, hi))
        new.validate()
        return new

    def validate(self) -> None:
        if self.smoothing not in ("ema", "median"):
            raise ParameterError(f"decoder.smoothing must be 'ema' or 'median' (got {self.smoothing!r})")
        _median_hops(self.median_hops)
        for key in ("smoothing_s", "min_on_s", "min_off_s"):
            _number(getattr(self, key), f"decoder.{key}", 0.0, MAX_DURATION_S)
        if self.attack_s is not None:
            _number(self.attack_s, "decoder.attack_s", 0.0, MAX_DURATION_S)
        if self.level_rate is not None:
            _number(self.level_rate, "decoder.level_rate")
        for tag in self.labels:
            if tag not in self.thresholds:
                raise ParameterError(f"decoder.thresholds: no thresholds for tag {tag!r}")
            on, off = self.thresholds[tag]
            if off > on:
                raise ParameterError(f"decoder.thresholds.{tag}: off ({off}) must not exceed on ({on})")


class Decoder:
    """Per-tag smoothing, hysteresis and minimum durations (see the module notes).

    Parameters
    ----------
    config : DecoderConfig
    hop_s : float
        Time between two model outputs, in seconds (> 0).
    channel : int
        Channel number written into the events.

    Attributes
    ----------
    active : ndarray of bool, shape (n_tags,)
        Current on/off state (read only; updated in place by :meth:`step`).
    smoothed : ndarray of float32, shape (n_tags,)
        Current smoothed probabilities (updated in place).
    """

    def __init__(self, config: DecoderConfig, hop_s: float, channel: int = 0):
        config.validate()
        hop_s = _number(hop_s, "hop_s")
        if hop_s <= 0:
            raise ParameterError(f"hop_s must be > 0 (got {hop_s})")
        self.config = config
        self.labels = tuple(config.labels)
        self.hop_s = hop_s
        self.channel = int(channel)
        n = len(self.labels)
        self.n_tags = n
        self._shape = (n,)
        self._on = np.array([config.thresholds[t][0] for t in self.labels], np.float32)
        self._off = np.array([config.thresholds[t][1] for t in self.labels], np.float32)
        eps = 1e-9
        self.min_on_hops = int(math.ceil(config.min_on_s / hop_s - eps)) if config.min_on_s > 0 else 0
        self.min_off_hops = int(math.ceil(config.min_off_s / hop_s - eps)) if config.min_off_s > 0 else 0
        median = config.smoothing == "median"
        self._median = median and int(config.median_hops) > 1
        # median over one hop: no smoothing at all (not the EMA of smoothing_s)
        self._alpha = np.float32(1.0) if median else self._ema_alpha(config.smoothing_s, hop_s)
        # envelope follower: attack alpha while rising (None: symmetric EMA)
        self._attack = (None if config.attack_s is None or median
                        else self._ema_alpha(config.attack_s, hop_s))
        self._alphas = np.zeros(n, np.float32)
        if self._median:
            self._hist = np.zeros((int(config.median_hops), n), np.float32)
        lr = config.level_rate
        self._level_every_hop = lr is None
        self._level_period = (1.0 / lr) if (lr is not None and lr > 0) else None
        self.active = np.zeros(n, bool)
        self.smoothed = np.zeros(n, np.float32)
        self._held = np.zeros(n, np.int64)
        self._tmp = np.zeros(n, np.float32)
        self._p = np.zeros(n, np.float32)
        #: model outputs that were NaN, infinite or outside [0, 1] (replaced: NaN by 0, the others clipped)
        self.bad_probabilities = 0
        self._b1 = np.zeros(n, bool)
        self._b2 = np.zeros(n, bool)
        self._b3 = np.zeros(n, bool)
        self.reset()

    @staticmethod
    def _ema_alpha(time_constant_s: float, hop_s: float) -> np.float32:
        return np.float32(1.0 - math.exp(-hop_s / time_constant_s)) if time_constant_s > 0 else np.float32(1.0)

    def reset(self) -> None:
        """Back to the start of a stream: every tag off, no smoothing history."""
        self.active[:] = False
        self.smoothed[:] = 0.0
        self.bad_probabilities = 0
        self._held[:] = _LARGE
        self._count = 0
        self._next_level = None
        self._level_origin, self._levels_due = 0.0, 0  # next level at origin + due * period (no summed error)
        self._levels_sent = False  # a TagLevel went out since the start: flush() sends the zeros

    def step(self, probs: np.ndarray, stream_time: float, level_time: float | None = None,
             wall_time: float = 0.0) -> list[Event]:
        """Decode one model output.

        Parameters
        ----------
        probs : ndarray, float32, shape (n_tags,)
            Probabilities of this hop.
        stream_time : float
            Input seconds consumed when the output was decided (written into the events).
        level_time : float, optional
            Time used to schedule levels at ``level_rate`` (default ``stream_time``).
        wall_time : float
            ``time.time()`` to write into the events.

        Returns
        -------
        list of Event

        Raises
        ------
        ParameterError
            ``probs`` does not hold exactly one value per tag (a single value would
            otherwise be broadcast to every tag).
        """
        shape = probs.shape if isinstance(probs, np.ndarray) else np.shape(probs)
        if shape != self._shape:
            raise ParameterError(f"probs: must have shape ({self.n_tags},), one probability per tag "
                                 f"(got shape {shape})")
        # a model output that is not a probability (NaN from a broken backend, inf, 1.7) would stick in the
        # smoothing for ever and reach the outputs: it is taken as 0 (NaN) or clipped to [0, 1], and counted
        p = self._p
        np.copyto(p, probs, casting="same_kind")
        if not (p.min(initial=0.0) >= 0.0 and p.max(initial=0.0) <= 1.0):  # False for NaN too
            bad = ~((p >= 0.0) & (p <= 1.0))
            self.bad_probabilities += int(np.count_nonzero(bad))
            np.nan_to_num(p, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
            np.clip(p, 0.0, 1.0, out=p)
        s = self.smoothed
        if self._median:
            k = self._hist.shape[0]
            self._hist[self._count % k] = p
            m = min(self._count + 1, k)
            if m == k:
                np.median(self._hist, axis=0, out=s)
            else:
                s[:] = np.median(self._hist[:m], axis=0)
        elif self._count == 0 or (self._alpha == 1.0 and self._attack in (None, 1.0)):
            s[:] = p
        elif self._attack is None:
            np.subtract(p, s, out=self._tmp)
            self._tmp *= self._alpha
            s += self._tmp
        else:
            np.subtract(p, s, out=self._tmp)
            rising = np.greater(self._tmp, 0.0, out=self._b3)
            a = self._alphas  # alpha per tag: attack where rising, release elsewhere
            np.multiply(rising, self._attack - self._alpha, out=a)
            a += self._alpha
            self._tmp *= a
            s += self._tmp
        self._count += 1
        held = self._held
        held += 1
        active = self.active
        events: list[Event] = []
        # turn off: on, below off threshold, held on long enough
        b1, b2 = self._b1, self._b2
        np.less(s, self._off, out=b1)
        b1 &= active
        if self.min_on_hops:
            np.greater_equal(held, self.min_on_hops, out=b2)
            b1 &= b2
        # turn on: off, above on threshold, held off long enough
        if b1.any():
            idx_off = np.flatnonzero(b1)
        else:
            idx_off = ()
        b3 = self._b3
        np.greater(s, self._on, out=b2)
        np.logical_not(active, out=b3)
        b2 &= b3
        if self.min_off_hops:
            np.greater_equal(held, self.min_off_hops, out=b3)
            b2 &= b3
        ch = self.channel
        labels = self.labels
        idx_on = np.flatnonzero(b2) if b2.any() else ()
        if len(idx_off) or len(idx_on):
            changed = sorted([(int(i), False) for i in idx_off] + [(int(i), True) for i in idx_on])
            for i, on in changed:
                if on:
                    events.append(TagOn(stream_time, wall_time, ch, labels[i], float(s[i])))
                else:
                    events.append(TagOff(stream_time, wall_time, ch, labels[i]))
                active[i] = on
                held[i] = 0
        if self._level_every_hop:
            events.extend(TagLevel(stream_time, wall_time, ch, label, v) for label, v in zip(labels, s.tolist()))
            self._levels_sent = True
        elif self._level_period is not None:
            t = stream_time if level_time is None else level_time
            # (the times of the levels are counted from an origin, not summed period by period, and compared with
            # a tolerance relative to the period: after 100 days of stream an absolute 1e-9 s, under the times'
            # float spacing, and the summed error skipped a level now and then)
            if self._next_level is None or t >= self._next_level - 1e-4 * self._level_period:
                events.extend(TagLevel(stream_time, wall_time, ch, label, v) for label, v in zip(labels, s.tolist()))
                self._levels_sent = True
                self._levels_due += 1
                nxt = self._level_origin + self._levels_due * self._level_period
                if self._next_level is None or nxt <= t:  # the first level, or a jump past the next one
                    self._level_origin, self._levels_due = t, 1
                    nxt = t + self._level_period
                self._next_level = nxt
            elif len(idx_on):  # between two levels: the tags that turned on get theirs now
                events.extend(TagLevel(stream_time, wall_time, ch, labels[i], float(s[i])) for i in idx_on)
                self._levels_sent = True
        return events

    def flush(self, stream_time: float, wall_time: float = 0.0) -> list[Event]:
        """TagOff for every active tag (end of stream), then, when levels were sent, a TagLevel of 0 for every
        tag (a receiver's level, a MIDI CC or an OSC value, would otherwise keep the last one); all tags are off
        afterwards, and a second flush sends nothing."""
        events = [TagOff(stream_time, wall_time, self.channel, self.labels[i]) for i in np.flatnonzero(self.active)]
        if self._levels_sent:
            events.extend(TagLevel(stream_time, wall_time, self.channel, label, 0.0) for label in self.labels)
            self._levels_sent = False
        self.active[:] = False
        self._held[:] = _LARGE
        return events
