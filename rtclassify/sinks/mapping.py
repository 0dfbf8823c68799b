"""The mapping file: how tags and technique values become MIDI and OSC, and decoder overrides.

A mapping is a TOML file (read with :mod:`tomllib`). Every section and key is
optional; what is left out keeps its default. The documented example ships as
package data: ``rtclassify/data/mapping.example.toml``
(:func:`example_path`). Sections:

``[midi]``
    ``channel`` (1-16, default 1; with several streams, ``listen
    --channels``, the channel of the first stream: stream k uses ``channel +
    k``), ``notes`` / ``cc`` (send the tags' note on/off and level CCs,
    default true; the technique's messages are switched one by one, -1),
    ``velocity_min`` / ``velocity_max`` (note-on velocity = min + prob * (max
    - min), default 1 / 127).
``[midi.tags.<tag>]``
    ``note`` (0-127, default 36 + i for the i-th tag of the model),
    ``cc`` (0-119, default 20 + i up to 31, then the undefined 85-87, 89,
    90 and 107-119: :data:`DEFAULT_CCS`), ``enabled`` (default true).
``[midi.technique]``
    ``pitch_cc`` (102: the f0 as a MIDI note number 0-127), ``vibrato_note``
    (60), ``vibrato_rate_cc`` (103), ``vibrato_depth_cc`` (104),
    ``tremolo_note`` (61), ``tremolo_rate_cc`` (105), ``tremolo_depth_cc``
    (106), and the full-scale values of the CCs: ``rate_max_hz`` (12.7),
    ``vibrato_depth_max_cents`` (127: vibrato extent, cents, half
    peak-to-peak), ``tremolo_depth_max_db`` (12.7: tremolo depth, dB peak to
    peak). Any CC or note may be ``-1`` to switch that message off.
``[osc]``
    ``prefix`` (``"/rtclassify"``), ``levels`` / ``on_off`` / ``technique``
    (send those messages, default true), ``bundle`` (send each batch as one
    bundle with a time tag, default false), ``streams`` (how several streams,
    ``listen --channels``, are told apart: ``"path"`` (default) puts the
    input channel into the address, ``<prefix>/<channel>/tag/<tag>``, and
    appends it to addresses outside the prefix; ``"argument"`` keeps the
    addresses and sends the channel as a first int32 argument).
``[osc.tags]``
    ``<tag> = "/address"``: the level address of a tag (default
    ``<prefix>/tag/<tag>``).
``[osc.technique]``
    ``pitch`` (``<prefix>/pitch``, one float: f0 in Hz), ``vibrato``
    (``<prefix>/vibrato``, two floats: rate Hz, extent cents), ``tremolo``
    (``<prefix>/tremolo``, two floats: rate Hz, depth dB), ``enabled``.
``[decoder]``
    ``smoothing`` (``"ema"`` or ``"median"``), ``smoothing_s`` (EMA time
    constant; the release when ``attack_s`` is set), ``attack_s`` (EMA time
    constant while a probability rises), ``median_hops``, ``min_on_s``, ``min_off_s``, ``level_rate``
    (level messages per second; 0: none): override the bundle's decoder
    settings (they apply to every tag).
``[decoder.tags.<tag>]``
    ``on``, ``off``: the tag's hysteresis thresholds (0-1, off <= on).

Errors name the file, the line and the dotted key::

    mapping.toml:7: midi.tags.piano.note: must be an integer 0-127, got 200
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..detect.decoder import MAX_MEDIAN_HOPS
from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "MidiTag", "MidiTechnique", "MidiMapping", "OscMapping", "DecoderOverrides", "Mapping",
    "load_mapping", "example_path",
]

#: default note of tag i is NOTE_BASE + i; default level CC is CC_BASE + i (past the technique's notes and CCs)
NOTE_BASE = 36
CC_BASE = 20
#: the CCs a tag's level may take by default, in order: the controllers MIDI leaves undefined (20-31, 85-87,
#: 89, 90, 102-119; 88 is the high-resolution velocity prefix). Counting on from CC 31 would give a 13th tag (a
#: learned one) CC 32, bank select's fine half, and later ones the fine halves of the modulation wheel, data
#: entry and the rest, which a synth on the channel acts on
DEFAULT_CCS = tuple(range(CC_BASE, 32)) + (85, 86, 87, 89, 90) + tuple(range(102, 120))


def example_path() -> Path:
    """Path of the documented example mapping shipped with the package."""
    return Path(__file__).resolve().parent.parent / "data" / "mapping.example.toml"


def _check_fields(obj, ints: dict[str, tuple[int, int]], reals: Sequence[str] = (), off: bool = True) -> None:
    """The mapping classes built in code (the loader checks a file's values with their line): each field of
    ``ints`` a whole number in its range (or None, not sent, where ``off``), each of ``reals`` a finite
    number > 0."""
    what = type(obj).__name__
    for name, (lo, hi) in ints.items():
        v = getattr(obj, name)
        if (v is not None or not off) and (isinstance(v, bool) or not isinstance(v, numbers.Integral)
                                           or not lo <= v <= hi):
            none = " or None (not sent)" if off else ""
            raise ConfigError(f"{what}.{name}: must be a whole number {lo}-{hi}{none}, got {v!r}")
    for name in reals:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < math.inf:
            raise ConfigError(f"{what}.{name}: must be a number > 0, got {v!r}")


@dataclass(frozen=True)
class MidiTag:
    """MIDI messages of one tag: note on/off and a level CC (None: not sent)."""

    note: int | None
    cc: int | None
    enabled: bool = True

    def __post_init__(self):
        _check_fields(self, {"note": (0, 127), "cc": (0, 119)})


@dataclass(frozen=True)
class MidiTechnique:
    """MIDI messages of the technique trackers (None: not sent)."""

    pitch_cc: int | None = 102
    vibrato_note: int | None = 60
    vibrato_rate_cc: int | None = 103
    vibrato_depth_cc: int | None = 104
    tremolo_note: int | None = 61
    tremolo_rate_cc: int | None = 105
    tremolo_depth_cc: int | None = 106
    rate_max_hz: float = 12.7
    vibrato_depth_max_cents: float = 127.0
    tremolo_depth_max_db: float = 12.7

    def __post_init__(self):
        _check_fields(self, {k: (0, 127 if k.endswith("note") else 119) for k in _TECH_INT}, _TECH_FLOAT)


@dataclass(frozen=True)
class MidiMapping:
    """MIDI side of a mapping.

    Attributes
    ----------
    channel : int
        MIDI channel 1-16 (as musicians number them).
    notes, cc : bool
        Send note on/off per tag, and level CCs per tag.
    velocity_min, velocity_max : int
        Note-on velocity range (1-127) over probabilities 0-1.
    tags : dict
        Tag name -> :class:`MidiTag`, in the model's label order.
    technique : MidiTechnique
    """

    channel: int = 1
    notes: bool = True
    cc: bool = True
    velocity_min: int = 1
    velocity_max: int = 127
    tags: dict[str, MidiTag] = field(default_factory=dict)
    technique: MidiTechnique = field(default_factory=MidiTechnique)

    def __post_init__(self):
        _check_fields(self, {"channel": (1, 16), "velocity_min": (1, 127), "velocity_max": (1, 127)}, off=False)
        if self.velocity_min > self.velocity_max:
            raise ConfigError(f"MidiMapping.velocity_min: must be <= velocity_max ({self.velocity_max}), "
                              f"got {self.velocity_min}")
        for tag, t in self.tags.items():
            if not isinstance(t, MidiTag):
                raise ConfigError(f"MidiMapping.tags[{tag!r}]: must be a MidiTag, got {t!r}")
        if not isinstance(self.technique, MidiTechnique):
            raise ConfigError(f"MidiMapping.technique: must be a MidiTechnique, got {self.technique!r}")
        shared = _shared_numbers(self.tags, self.technique, self.notes, self.cc)
        if shared:
            kind, num, keys = shared[0]
            raise ConfigError(f"MidiMapping: {kind} {num} is used by {' and '.join(keys)}; each output needs a "
                              f"{kind} of its own (None: not sent)")

    def velocity(self, prob: float) -> int:
        """Note-on velocity for a probability (1-127, never 0 which means note-off)."""
        p = clip_unit(prob)
        v = round(self.velocity_min + p * (self.velocity_max - self.velocity_min))
        return int(min(max(v, 1), 127))

    @staticmethod
    def level(prob: float) -> int:
        """CC value (0-127) for a probability."""
        return int(round(clip_unit(prob) * 127))


def clip_unit(prob: float) -> float:
    """A probability clipped to [0, 1]; NaN is 0."""
    p = float(prob)
    return 0.0 if p != p else min(max(p, 0.0), 1.0)


@dataclass(frozen=True)
class OscMapping:
    """OSC side of a mapping: addresses and switches (see the module docstring)."""

    prefix: str = "/rtclassify"
    levels: bool = True
    on_off: bool = True
    technique: bool = True
    bundle: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    technique_addresses: dict[str, str] = field(default_factory=dict)
    #: several streams: "path" (the channel in the address) or "argument" (a first int argument)
    streams: str = "path"

    def stream_address(self, address: str, channel: int) -> str:
        """The address of a message of the stream on input ``channel`` in ``"path"`` mode.

        ``<prefix>/<rest>`` becomes ``<prefix>/<channel>/<rest>``; an address
        outside the prefix gets ``/<channel>`` appended.
        """
        p = self._root
        if address.startswith(p + "/"):
            return f"{p}/{channel}{address[len(p):]}"
        return f"{address.rstrip('/')}/{channel}"

    @property
    def _root(self) -> str:
        """The prefix without a trailing slash: ``""`` for the prefix ``"/"`` (addresses ``/on``, ``/tag/piano``)."""
        return self.prefix.rstrip("/")

    @property
    def on_address(self) -> str:
        return f"{self._root}/on"

    @property
    def off_address(self) -> str:
        return f"{self._root}/off"

    def tag_address(self, tag: str) -> str:
        return self.tags.get(tag) or f"{self._root}/tag/{tag}"

    def technique_address(self, name: str) -> str:
        """Address of ``pitch``, ``vibrato`` or ``tremolo`` messages."""
        return self.technique_addresses.get(name) or f"{self._root}/{name}"

    def __post_init__(self):
        if self.streams not in ("path", "argument"):
            raise ConfigError(f"osc.streams: must be \"path\" or \"argument\", got {self.streams!r}")
        # the addresses it knows (the tags given their own; a mapping file's check covers every tag)
        shared = _shared_address(_osc_uses(self, tuple(self.tags)))
        if shared:
            address, (_, first), (_, second) = shared
            raise ConfigError(f"OscMapping: {address} is {first} and {second}; each kind of message needs an "
                              f"address of its own")


@dataclass(frozen=True)
class DecoderOverrides:
    """Decoder settings that replace the bundle's (the dict format of
    :meth:`rtclassify.detect.decoder.DecoderConfig.override`).

    Attributes
    ----------
    defaults : dict
        Keys among ``smoothing`` (``"ema"`` or ``"median"``), ``smoothing_s``,
        ``attack_s``, ``median_hops``, ``min_on_s``, ``min_off_s``, ``level_rate``, for all tags.
    tags : dict
        Tag -> ``{"on": p, "off": p}`` (either or both).
    """

    defaults: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, dict[str, float]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.defaults or self.tags)

    def as_dict(self) -> dict[str, Any]:
        """The overrides as the decoder takes them: ``{"smoothing_s": .., "thresholds": {tag: {..}}}``."""
        d: dict[str, Any] = dict(self.defaults)
        if self.tags:
            d["thresholds"] = {k: dict(v) for k, v in self.tags.items()}
        return d


@dataclass(frozen=True)
class Mapping:
    """A whole mapping: MIDI, OSC and decoder overrides, for a given label list."""

    labels: tuple[str, ...]
    midi: MidiMapping
    osc: OscMapping
    decoder: DecoderOverrides
    source: str | None = None

    @classmethod
    def default(cls, labels: Sequence[str]) -> "Mapping":
        """The default mapping: note 36 + i and CC 20 + i on channel 1, standard OSC addresses."""
        return _build({}, tuple(labels), _Locator("", "<default>"))


def load_mapping(path, labels: Sequence[str], thresholds: dict | None = None) -> Mapping:
    """Load and validate a TOML mapping file for a model with these labels.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    labels : sequence of str
        The model's tags, in order (they give the default notes and CCs and
        the valid tag names).
    thresholds : dict, optional
        The model's ``{tag: (on, off)}`` thresholds: a ``[decoder.tags.<tag>]``
        that sets only one of them is checked against the other.

    Raises
    ------
    ConfigError
        The file cannot be read, is not valid TOML, or a key is unknown or has
        a bad value; the message names the file, the line and the key.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read mapping file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    m = _build(data, tuple(labels), _Locator(text, str(p)), thresholds)
    return Mapping(labels=m.labels, midi=m.midi, osc=m.osc, decoder=m.decoder, source=str(p))


# --------------------------------------------------------------------------- validation


class _Locator:
    """Finds the line of a dotted key in TOML text, for error messages."""

    def __init__(self, text: str, name: str):
        self.name = name
        self.lines = text.splitlines()

    @staticmethod
    def _split_key(s: str) -> list[str]:
        parts, cur, quote = [], "", None
        for ch in s:
            if quote:
                if ch == quote:
                    quote = None
                else:
                    cur += ch
            elif ch in "\"'":
                quote = ch
            elif ch == ".":
                parts.append(cur.strip())
                cur = ""
            else:
                cur += ch
        parts.append(cur.strip())
        return [p for p in parts if p != ""]

    def line_of(self, path: Sequence[str]) -> int | None:
        """1-based line where ``path`` (or its longest defined prefix) is set."""
        table: list[str] = []
        best, best_len = None, 0
        for i, raw in enumerate(self.lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                inner = line.strip("[]").split("#")[0].strip().rstrip("]").strip()
                table = self._split_key(inner)
                full = table
            elif "=" in line:
                key = line.split("=", 1)[0]
                full = table + self._split_key(key)
            else:
                continue
            n = 0
            for a, b in zip(full, path):
                if a != b:
                    break
                n += 1
            if n == len(full) or n == len(path):
                if n > best_len:
                    best, best_len = i, n
                    if n == len(path):
                        break
        return best

    def error(self, path: Sequence[str], message: str) -> ConfigError:
        line = self.line_of(path)
        where = f"{self.name}:{line}" if line else self.name
        return ConfigError(f"{where}: {'.'.join(path)}: {message}")


def _table(d: dict, path: list[str], allowed: Sequence[str], loc: _Locator) -> dict:
    if not isinstance(d, dict):
        raise loc.error(path, f"must be a table, got {type(d).__name__}")
    for k in d:
        if k not in allowed:
            raise loc.error(path + [k], f"unknown key (known: {', '.join(allowed)})")
    return d


def _int(d: dict, key: str, path: list[str], loc: _Locator, lo: int, hi: int, default, allow_off: bool = False):
    if key not in d:
        return default
    v = d[key]
    if allow_off and isinstance(v, int) and not isinstance(v, bool) and v == -1:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        extra = " (or -1 for off)" if allow_off else ""
        raise loc.error(path + [key], f"must be an integer {lo}-{hi}{extra}, got {v!r}")
    return v


def _bool(d: dict, key: str, path: list[str], loc: _Locator, default: bool) -> bool:
    if key not in d:
        return default
    v = d[key]
    if not isinstance(v, bool):
        raise loc.error(path + [key], f"must be true or false, got {v!r}")
    return v


def _float(d: dict, key: str, path: list[str], loc: _Locator, lo: float, hi: float, default, *,
           lo_open: bool = False):
    if key not in d:
        return default
    v = d[key]
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if ok:
        v = float(v)
        ok = (v > lo if lo_open else v >= lo) and v <= hi
    if not ok:
        lo_s = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise loc.error(path + [key], f"must be a number {lo_s} and <= {hi:g}, got {d[key]!r}")
    return v


#: the longest OSC address (or prefix) a mapping may give
MAX_ADDRESS = 512


def _address(v, path: list[str], loc: _Locator) -> str:
    # printable ASCII only: a control character (a NUL ends the address on the wire) or a non-ASCII one
    # would make messages that a receiver, or python-osc itself, cannot parse
    if not isinstance(v, str) or not v.startswith("/") or any(c in v for c in " #*,?[]{}") \
            or not all("!" <= c <= "~" for c in v):
        raise loc.error(path, f"must be an OSC address of printable ASCII starting with '/', without spaces or "
                              f"any of #*,?[]{{}}, got {v!r}")
    if len(v) > MAX_ADDRESS:
        raise loc.error(path, f"must be at most {MAX_ADDRESS} characters long, got {len(v)}")
    return v.rstrip("/") or "/"


def _tag(name: str, labels: Sequence[str], path: list[str], loc: _Locator) -> str:
    if name not in labels:
        raise loc.error(path, f"unknown tag {name!r} (tags of the model: {', '.join(labels)})")
    return name


_TECH_INT = ("pitch_cc", "vibrato_note", "vibrato_rate_cc", "vibrato_depth_cc", "tremolo_note", "tremolo_rate_cc",
             "tremolo_depth_cc")
_TECH_FLOAT = ("rate_max_hz", "vibrato_depth_max_cents", "tremolo_depth_max_db")
_DEC_COMMON = ("smoothing", "smoothing_s", "attack_s", "median_hops", "min_on_s", "min_off_s", "level_rate")


def _build(data: dict, labels: tuple[str, ...], loc: _Locator, thresholds: dict | None = None) -> Mapping:
    if not labels:
        raise ConfigError("the model has no labels; a mapping needs at least one tag")
    _table(data, [], ("midi", "osc", "decoder"), loc)

    # ---- midi
    md = _table(data.get("midi", {}), ["midi"], ("channel", "notes", "cc", "velocity_min", "velocity_max", "tags",
                                                  "technique"), loc)
    channel = _int(md, "channel", ["midi"], loc, 1, 16, 1)
    vmin = _int(md, "velocity_min", ["midi"], loc, 1, 127, 1)
    vmax = _int(md, "velocity_max", ["midi"], loc, 1, 127, 127)
    if vmin > vmax:
        raise loc.error(["midi", "velocity_min"], f"must be <= velocity_max ({vmax}), got {vmin}")
    td = _table(md.get("technique", {}), ["midi", "technique"], _TECH_INT + _TECH_FLOAT, loc)
    base = MidiTechnique()
    tech_kwargs: dict[str, Any] = {}
    for k in _TECH_INT:
        hi = 127 if k.endswith("note") else 119
        tech_kwargs[k] = _int(td, k, ["midi", "technique"], loc, 0, hi, getattr(base, k), allow_off=True)
    for k in _TECH_FLOAT:
        tech_kwargs[k] = _float(td, k, ["midi", "technique"], loc, 0.0, 1e6, getattr(base, k), lo_open=True)
    technique = MidiTechnique(**tech_kwargs)
    tag_tables = _table(md.get("tags", {}), ["midi", "tags"], labels, _TagLoc(loc, labels))
    # a tag's default note and CC count up from NOTE_BASE and CC_BASE past the technique's default ones (a model
    # of more than 24 tags would otherwise land on the vibrato note), and stop at MIDI's last (None: not sent).
    # Past the defaults, not the file's: a technique note or CC moved onto a tag's is refused below as any
    # shared number is, instead of moving every later tag's without a word
    tech_notes = {getattr(base, k) for k in _TECH_INT if k.endswith("_note")}
    tech_ccs = {getattr(base, k) for k in _TECH_INT if k.endswith("_cc")}
    notes = iter([n for n in range(NOTE_BASE, 128) if n not in tech_notes])
    ccs = iter([c for c in DEFAULT_CCS if c not in tech_ccs])
    tags: dict[str, MidiTag] = {}
    for tag in labels:
        t = _table(tag_tables.get(tag, {}), ["midi", "tags", tag], ("note", "cc", "enabled"), loc)
        p = ["midi", "tags", tag]
        tags[tag] = MidiTag(
            note=_int(t, "note", p, loc, 0, 127, next(notes, None), allow_off=True),
            cc=_int(t, "cc", p, loc, 0, 119, next(ccs, None), allow_off=True),
            enabled=_bool(t, "enabled", p, loc, True),
        )
    _check_unique(tags, technique, md, loc)
    midi = MidiMapping(channel=channel, notes=_bool(md, "notes", ["midi"], loc, True),
                       cc=_bool(md, "cc", ["midi"], loc, True), velocity_min=vmin, velocity_max=vmax,
                       tags=tags, technique=technique)

    # ---- osc
    od = _table(data.get("osc", {}), ["osc"], ("prefix", "levels", "on_off", "technique", "bundle", "tags", "streams"),
                loc)
    prefix = _address(od["prefix"], ["osc", "prefix"], loc) if "prefix" in od else "/rtclassify"
    tech = od.get("technique", True)
    tech_addr: dict[str, str] = {}
    if isinstance(tech, dict):
        _table(tech, ["osc", "technique"], ("pitch", "vibrato", "tremolo", "enabled"), loc)
        for k in ("pitch", "vibrato", "tremolo"):
            if k in tech:
                tech_addr[k] = _address(tech[k], ["osc", "technique", k], loc)
        tech_on = _bool(tech, "enabled", ["osc", "technique"], loc, True)
    else:
        tech_on = _bool(od, "technique", ["osc"], loc, True)
    ot = _table(od.get("tags", {}), ["osc", "tags"], labels, _TagLoc(loc, labels))
    osc_tags = {tag: _address(v, ["osc", "tags", tag], loc) for tag, v in ot.items()}
    streams = od.get("streams", "path")
    if streams not in ("path", "argument"):
        raise loc.error(["osc", "streams"], f"must be \"path\" or \"argument\", got {streams!r}")
    switches = dict(prefix=prefix, levels=_bool(od, "levels", ["osc"], loc, True),
                    on_off=_bool(od, "on_off", ["osc"], loc, True), technique=tech_on,
                    bundle=_bool(od, "bundle", ["osc"], loc, False), streams=streams)
    # checked with the file's places before the mapping checks them itself (without them)
    _check_osc_unique(OscMapping(**switches), labels, loc, osc_tags, tech_addr)
    osc = OscMapping(**switches, tags=osc_tags, technique_addresses=tech_addr)

    # ---- decoder
    dd = _table(data.get("decoder", {}), ["decoder"], _DEC_COMMON + ("tags",), loc)
    defaults: dict[str, Any] = {}
    for k in ("smoothing_s", "attack_s", "min_on_s", "min_off_s"):
        if k in dd:
            defaults[k] = _float(dd, k, ["decoder"], loc, 0.0, 60.0, None)
    if "level_rate" in dd:
        defaults["level_rate"] = _float(dd, "level_rate", ["decoder"], loc, 0.0, 1000.0, None)
    if "median_hops" in dd:
        defaults["median_hops"] = _int(dd, "median_hops", ["decoder"], loc, 1, MAX_MEDIAN_HOPS, None)
    if "smoothing" in dd:
        if dd["smoothing"] not in ("ema", "median"):
            raise loc.error(["decoder", "smoothing"], f"must be \"ema\" or \"median\", got {dd['smoothing']!r}")
        defaults["smoothing"] = dd["smoothing"]
    dt = _table(dd.get("tags", {}), ["decoder", "tags"], labels, _TagLoc(loc, labels))
    dec_tags: dict[str, dict[str, float]] = {}
    for tag, t in dt.items():
        p = ["decoder", "tags", tag]
        _table(t, p, ("on", "off"), loc)
        d = {k: _float(t, k, p, loc, 0.0, 1.0, None) for k in ("on", "off") if k in t}
        if "on" in d and "off" in d and d["off"] > d["on"]:
            raise loc.error(p + ["off"], f"must be <= on ({d['on']:g}) for hysteresis, got {d['off']:g}")
        if thresholds and tag in thresholds and len(d) == 1:
            on, off = thresholds[tag]
            if "off" in d and d["off"] > on:
                raise loc.error(p + ["off"], f"must be <= the model's on threshold ({on:g}) for hysteresis, got "
                                             f"{d['off']:g}; set on as well")
        dec_tags[tag] = d
    decoder = DecoderOverrides(defaults=defaults, tags=dec_tags)
    return Mapping(labels=labels, midi=midi, osc=osc, decoder=decoder)


class _TagLoc(_Locator):
    """Locator wrapper whose unknown-key message is about tags."""

    def __init__(self, loc: _Locator, labels: Sequence[str]):
        self.name, self.lines, self._labels = loc.name, loc.lines, labels

    def error(self, path, message):
        if message.startswith("unknown key"):
            message = f"unknown tag {path[-1]!r} (tags of the model: {', '.join(self._labels)})"
        return _Locator.error(self, path, message)


def _shared_numbers(tags: dict[str, MidiTag], tech: MidiTechnique, send_notes: bool = True,
                    send_ccs: bool = True) -> list[tuple[str, int, list[str]]]:
    """The notes and CCs that more than one enabled output uses, as (``"note"`` or ``"CC"``, number, the
    mapping keys that use it): the MIDI sink keeps one state per note, so one output's note-off would end
    the other's note. ``send_notes`` / ``send_ccs`` False: the tags' notes / CCs are not sent (the mapping's
    ``notes`` / ``cc``), and take no number."""
    notes: dict[int, list[str]] = {}
    ccs: dict[int, list[str]] = {}
    for tag, t in tags.items():
        if not t.enabled:
            continue
        if t.note is not None and send_notes:
            notes.setdefault(t.note, []).append(f"midi.tags.{tag}.note")
        if t.cc is not None and send_ccs:
            ccs.setdefault(t.cc, []).append(f"midi.tags.{tag}.cc")
    for k in _TECH_INT:
        v = getattr(tech, k)
        if v is not None:
            (notes if k.endswith("note") else ccs).setdefault(v, []).append(f"midi.technique.{k}")
    return [(kind, num, keys) for kind, table in (("note", notes), ("CC", ccs))
            for num, keys in table.items() if len(keys) > 1]


def _check_unique(tags: dict[str, MidiTag], tech: MidiTechnique, md: dict, loc: _Locator) -> None:
    shared = _shared_numbers(tags, tech, md.get("notes", True) is not False, md.get("cc", True) is not False)
    if not shared:
        return
    kind, num, keys = shared[0]
    # blame the key the user wrote, if one of them was written
    written = [k for k in keys if _written(md, k)]
    key = (written or keys)[-1]
    others = ", ".join(k if _written(md, k) else f"{k} (default; set it to another value or -1)"
                       for k in keys if k != key)
    raise loc.error(key.split("."), f"{kind} {num} is also used by {others}")


def _osc_uses(osc: OscMapping, labels: Sequence[str], tags: dict | None = None,
              technique_addresses: dict | None = None) -> list[tuple[str, str | None, str]]:
    """The addresses the OSC sink sends to, as (address, the mapping key that set it or None for a default,
    what is sent there); ``tags`` and ``technique_addresses``: the addresses set (default: ``osc``'s; ``osc``'s
    own methods give the others)."""
    tags = osc.tags if tags is None else tags
    tech = osc.technique_addresses if technique_addresses is None else technique_addresses
    uses: list[tuple[str, str | None, str]] = []
    if osc.on_off:
        uses += [(osc.on_address, None, "the address of the on messages (from osc.prefix)"),
                 (osc.off_address, None, "the address of the off messages (from osc.prefix)")]
    if osc.levels:
        uses += [(tags.get(t) or osc.tag_address(t), f"osc.tags.{t}" if tags.get(t) else None,
                  f"the address of {t}'s level" + ("" if tags.get(t) else " (default)")) for t in labels]
    if osc.technique:
        uses += [(tech.get(k) or osc.technique_address(k), f"osc.technique.{k}" if tech.get(k) else None,
                  f"the address of the {k} messages" + ("" if tech.get(k) else " (default)"))
                 for k in ("pitch", "vibrato", "tremolo")]
    return uses


def _shared_address(uses) -> tuple | None:
    """The first address two of ``uses`` (:func:`_osc_uses`) share, as (address, the first's (key, what), the
    second's), or None."""
    seen: dict[str, tuple[str | None, str]] = {}
    for address, key, what in uses:
        if address in seen:
            return address, seen[address], (key, what)
        seen[address] = (key, what)
    return None


def _check_osc_unique(osc: OscMapping, labels: Sequence[str], loc: _Locator, tags: dict,
                      technique_addresses: dict) -> None:
    """Two kinds of message on one address are refused (a receiver would take one tag's level for another's, or
    a float for a tag name), as MIDI notes and CCs used twice are."""
    shared = _shared_address(_osc_uses(osc, labels, tags, technique_addresses))
    if shared:
        address, (other_key, other), (key, what) = shared
        # blame the key the user wrote; the message names the other use
        blame, said = (key, other) if key is not None else (other_key or "osc.prefix", what)
        raise loc.error(blame.split("."), f"{address} is also {said}")


def _written(md: dict, dotted: str) -> bool:
    d: Any = {"midi": md}
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return True
