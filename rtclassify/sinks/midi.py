"""MIDI output through python-rtmidi: a virtual port or an existing port, ALSA or JACK.

Default messages (all configurable in the mapping file, see
:mod:`rtclassify.sinks.mapping`), on one MIDI channel (default 1):

- tag i on: note-on, note 36 + i, velocity from the probability (1-127);
- tag i off: note-off of that note;
- tag i level: control change 20 + i, value round(prob * 127);
- technique values (when the trackers send them): pitch as CC 102 (MIDI note
  number of f0), vibrato on/off as note 60, rate / depth as CC 103 / 104,
  tremolo on/off as note 61, rate / depth as CC 105 / 106.

On :meth:`MidiSink.close` every note still sounding gets its note-off.
Technique events are read duck-typed: ``pitch`` events carry ``hz`` (or
``f0``), ``vibrato``/``tremolo`` events (and their ``_on`` forms) carry
``rate`` (Hz) and ``depth`` (cents for vibrato, 0-1 for tremolo).
"""

from __future__ import annotations

import math
import os
import threading
from typing import Sequence

from ..errors import SinkError, require
from . import EventDispatch
from .mapping import MidiMapping

__all__ = ["MidiSink", "list_midi_outputs", "midi_api"]

_API_NAMES = ("alsa", "jack")


def midi_api(name: str | None):
    """The rtmidi API constant for ``"alsa"``, ``"jack"`` or None (rtmidi's default)."""
    rtmidi = require("rtmidi", system="python-rtmidi")
    if name is None:
        return rtmidi.API_UNSPECIFIED
    key = name.strip().lower()
    if key == "alsa":
        api = rtmidi.API_LINUX_ALSA
    elif key == "jack":
        api = rtmidi.API_UNIX_JACK
    else:
        raise SinkError(f"unknown MIDI API {name!r}; use one of: {', '.join(_API_NAMES)}")
    if api not in rtmidi.get_compiled_api():
        have = ", ".join(rtmidi.get_api_name(a) for a in rtmidi.get_compiled_api()) or "none"
        raise SinkError(f"this python-rtmidi was built without the {key} MIDI API (it has: {have})")
    return api


def _new_midiout(api_name: str | None, client_name: str):
    rtmidi = require("rtmidi", system="python-rtmidi")
    api = midi_api(api_name)
    if api == rtmidi.API_UNIX_JACK:
        # never let a MIDI port start a JACK server behind the user's back
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
    try:
        return rtmidi.MidiOut(api, name=client_name)
    except rtmidi.SystemError as exc:
        which = (api_name or "default").lower()
        if which == "jack":
            hint = "is the JACK server running?"
        elif which == "alsa":
            hint = ("is the ALSA sequencer available (/dev/snd/seq; modprobe snd-seq)? "
                    "With JACK running, try --midi-api jack")
        else:
            hint = "try --midi-api alsa or --midi-api jack"
        raise SinkError(f"cannot open the {which} MIDI system: {hint} ({exc})") from None


def list_midi_outputs(api: str | None = None) -> list[str]:
    """Names of the MIDI input ports we could send to (other programs' inputs)."""
    out = _new_midiout(api, "rtclassify-list")
    try:
        return list(out.get_ports())
    finally:
        out.delete()


class MidiSink(EventDispatch):
    """Sends tags (and technique values) as MIDI.

    Parameters
    ----------
    mapping : MidiMapping
        Notes, CCs and channel (``Mapping.default(labels).midi`` gives the defaults).
    port : int or str, optional
        An existing MIDI input port to connect to: its index in the port list
        or a case-insensitive substring of its name.
    virtual : str, optional
        Name of a virtual output port to create instead (other programs
        connect to it). Exactly one of ``port`` and ``virtual``.
    api : {"alsa", "jack"}, optional
        The MIDI system; default rtmidi's default (ALSA on Linux).
    client_name : str
        The MIDI client name (the port shows as ``client_name:virtual``).

    Notes
    -----
    ``send`` and ``close`` may be called from different threads; a lock
    serializes them so that the final note-offs never interleave with a batch.
    """

    def __init__(self, mapping: MidiMapping, *, port: int | str | None = None, virtual: str | None = None,
                 api: str | None = None, client_name: str = "rtclassify"):
        if (port is None) == (virtual is None):
            raise SinkError("MIDI output: give exactly one of an existing port or a virtual port name")
        if virtual is not None and not str(virtual).strip():
            raise SinkError("MIDI output: the virtual port name is empty")
        self.mapping = mapping
        self.port_spec = port
        self.virtual = virtual
        self.api = api
        self.client_name = client_name
        self._out = None
        self._lock = threading.Lock()
        self._status = 0x90 | (mapping.channel - 1)
        self._cc_status = 0xB0 | (mapping.channel - 1)
        self._off_status = 0x80 | (mapping.channel - 1)
        #: notes currently sounding (note -> tag/technique name)
        self.sounding: dict[int, str] = {}
        self._last_cc: dict[int, int] = {}
        #: number of MIDI messages sent
        self.messages_sent = 0
        #: the port name actually used
        self.port_name: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        if self._out is not None:
            return
        out = _new_midiout(self.api, self.client_name)
        try:
            if self.virtual is not None:
                try:
                    out.open_virtual_port(str(self.virtual))
                except Exception as exc:
                    raise SinkError(f"cannot create virtual MIDI port {self.virtual!r}: {exc}") from None
                self.port_name = f"{self.client_name}:{self.virtual}"
            else:
                ports = list(out.get_ports())
                idx = self._match(ports, self.port_spec)
                try:
                    out.open_port(idx, name=f"{self.client_name} out")
                except Exception as exc:
                    raise SinkError(f"cannot open MIDI port {ports[idx]!r}: {exc}") from None
                self.port_name = ports[idx]
        except BaseException:
            out.delete()
            raise
        self._out = out

    @staticmethod
    def _match(ports: list[str], spec) -> int:
        listing = "; ".join(f"{i} {p!r}" for i, p in enumerate(ports)) or "none (no program offers a MIDI input)"
        if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
            i = int(spec)
            if 0 <= i < len(ports):
                return i
            raise SinkError(f"no MIDI port with index {i}; MIDI ports: {listing}")
        needle = str(spec).strip().casefold()
        hits = [i for i, p in enumerate(ports) if needle and needle in p.casefold()]
        if len(hits) == 1:
            return hits[0]
        exact = [i for i in hits if ports[i].casefold() == needle]
        if len(exact) == 1:
            return exact[0]
        if not hits:
            raise SinkError(f"no MIDI port matches {spec!r}; MIDI ports: {listing}")
        raise SinkError(f"{len(hits)} MIDI ports match {spec!r}, give the index: "
                        + "; ".join(f"{i} {ports[i]!r}" for i in hits))

    def close(self) -> None:
        with self._lock:
            out, self._out = self._out, None
            if out is None:
                return
            try:
                for note in list(self.sounding):
                    self._raw(out, [self._off_status, note, 0])
                self.sounding.clear()
            finally:
                try:
                    out.close_port()
                finally:
                    out.delete()

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ sending
    def send(self, events: Sequence) -> None:
        with self._lock:
            if self._out is None:
                raise SinkError("MIDI output is not open")
            EventDispatch.send(self, events)

    def _raw(self, out, msg: list[int]) -> None:
        try:
            out.send_message(msg)
        except Exception as exc:
            raise SinkError(f"MIDI send to {self.port_name!r} failed: {exc}") from None
        self.messages_sent += 1

    def _note_on(self, note: int | None, prob: float, name: str) -> None:
        if note is None or not self.mapping.notes:
            return
        if note in self.sounding:  # retrigger: close the old one first so on/off stay paired
            self._raw(self._out, [self._off_status, note, 0])
        self._raw(self._out, [self._status, note, self.mapping.velocity(prob)])
        self.sounding[note] = name

    def _note_off(self, note: int | None) -> None:
        if note is None or note not in self.sounding:
            return
        self._raw(self._out, [self._off_status, note, 0])
        del self.sounding[note]

    def _cc(self, cc: int | None, value: int) -> None:
        if cc is None or not self.mapping.cc:
            return
        if self._last_cc.get(cc) == value:
            return
        self._raw(self._out, [self._cc_status, cc, value])
        self._last_cc[cc] = value

    def _tag(self, ev):
        t = self.mapping.tags.get(ev.tag)
        return t if (t is not None and t.enabled) else None

    def _on(self, ev) -> None:
        t = self._tag(ev)
        if t is not None:
            self._note_on(t.note, ev.prob, ev.tag)
            self._cc(t.cc, self.mapping.level(ev.prob))

    def _off(self, ev) -> None:
        t = self._tag(ev)
        if t is not None:
            self._note_off(t.note)

    def _level(self, ev) -> None:
        t = self._tag(ev)
        if t is not None:
            self._cc(t.cc, self.mapping.level(ev.prob))

    # technique values -------------------------------------------------------
    @staticmethod
    def _attr(ev, *names):
        for n in names:
            v = getattr(ev, n, None)
            if v is not None:
                return float(v)
        return None

    def _scaled(self, value: float | None, full_scale: float) -> int | None:
        if value is None or not math.isfinite(value):
            return None
        return int(round(min(max(value / full_scale, 0.0), 1.0) * 127))

    def _pitch(self, ev) -> None:
        hz = self._attr(ev, "hz", "f0", "frequency")
        tech = self.mapping.technique
        if hz is None or hz <= 0 or tech.pitch_cc is None:
            return
        self._cc(tech.pitch_cc, int(min(max(round(69 + 12 * math.log2(hz / 440.0)), 0), 127)))

    def _technique_values(self, ev, which: str) -> None:
        tech = self.mapping.technique
        rate = self._scaled(self._attr(ev, "rate", "rate_hz"), tech.rate_max_hz)
        depth_full = tech.vibrato_depth_max_cents if which == "vibrato" else tech.tremolo_depth_max
        depth = self._scaled(self._attr(ev, "depth", "depth_cents"), depth_full)
        if rate is not None:
            self._cc(getattr(tech, f"{which}_rate_cc"), rate)
        if depth is not None:
            self._cc(getattr(tech, f"{which}_depth_cc"), depth)

    def _technique_on(self, ev, which: str) -> None:
        note = getattr(self.mapping.technique, f"{which}_note")
        prob = self._attr(ev, "prob", "confidence")
        self._note_on(note, 1.0 if prob is None else prob, which)
        self._technique_values(ev, which)

    def _technique_off(self, ev, which: str) -> None:
        self._note_off(getattr(self.mapping.technique, f"{which}_note"))

    handlers = {
        "on": _on,
        "off": _off,
        "level": _level,
        "pitch": _pitch,
        "vibrato_on": lambda s, e: s._technique_on(e, "vibrato"),
        "vibrato_off": lambda s, e: s._technique_off(e, "vibrato"),
        "vibrato": lambda s, e: s._technique_values(e, "vibrato"),
        "tremolo_on": lambda s, e: s._technique_on(e, "tremolo"),
        "tremolo_off": lambda s, e: s._technique_off(e, "tremolo"),
        "tremolo": lambda s, e: s._technique_values(e, "tremolo"),
    }
