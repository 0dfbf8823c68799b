"""MIDI output through python-rtmidi: a virtual port or an existing port, ALSA or JACK.

Default messages (all configurable in the mapping file, see
:mod:`rtclassify.sinks.mapping`), on one MIDI channel (default 1):

- tag i on: note-on, note 36 + i, velocity from the probability (1-127);
- tag i off: note-off of that note;
- tag i level: control change 20 + i, value round(prob * 127);
- technique values (from the pitch/vibrato/tremolo trackers): the f0 as a
  MIDI note number on CC 102; vibrato on/off as note 60 with rate / extent on
  CC 103 / 104; tremolo on/off as note 61 with rate / depth on CC 105 / 106
  (scaled by the mapping's full-scale values; 0 when the technique stops).

Several streams (``rtclassify listen --channels``, ``MidiSink(..., streams=)``):
stream ``k`` (the k-th channel of the list) sends the same messages on MIDI
channel ``channel + k``, so 8 streams from channel 1 use MIDI channels 1-8.

Connected to an existing port (``port=``, ``--midi PORT``), the sink looks every :data:`PORT_CHECK_S` (in
:meth:`MidiSink.status`, which the listener calls) whether that port is still there: when its program quits
(a DAW that crashed) that is said once, and when a port matching ``port`` comes back (the DAW restarted) the
sink connects to it again and sends what is sounding and the last CC values, so the receiver has the current
state. A virtual port is connected to by the receiving program itself; on JACK the sink looks at its
connections as often, and the first receiver to connect while none is (a DAW started or restarted after
rtclassify) gets the same state. On ALSA a virtual port's subscribers are not looked at.

On :meth:`MidiSink.close` every note still sounding gets its note-off. A CC
is not sent again while its value does not change. Event kinds handled:
``on``, ``off``, ``level``, ``technique`` (TechniqueValues: ``pitch``/``midi``,
``vibrato_rate``, ``vibrato_extent``, ``tremolo_rate``, ``tremolo_depth``),
``vibrato_on``/``vibrato_off`` (``rate``, ``extent``) and
``tremolo_on``/``tremolo_off`` (``rate``, ``depth``); add more through
:attr:`MidiSink.handlers`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Sequence

from ..errors import SinkError, require
from . import EventDispatch, warn
from .mapping import MidiMapping

__all__ = ["MidiSink", "list_midi_outputs", "midi_api"]

#: seconds between two looks at whether an existing port the sink is connected to is still there (a program
#: that quits and is offered again within one look goes unnoticed: a DAW's restart takes longer)
PORT_CHECK_S = 0.5

_API_NAMES = ("alsa", "jack")
#: seconds the JACK MIDI output is left open after the last message, so the JACK cycles deliver the queue
#: (at least two of the server's periods: 0.37 s each at 8192 frames and 22.05 kHz)
JACK_DRAIN_S = 0.2


def midi_api(name: str | None):
    """The rtmidi API constant for ``"alsa"``, ``"jack"`` or None (rtmidi's default)."""
    rtmidi = require("rtmidi", pip="python-rtmidi")
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
    rtmidi = require("rtmidi", pip="python-rtmidi")
    api = midi_api(api_name)
    if api == rtmidi.API_UNIX_JACK:
        # never let a MIDI port start a JACK server behind the user's back
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
    try:
        return rtmidi.MidiOut(api, name=client_name)
    except rtmidi.SystemError as exc:
        which = (api_name or "default").lower()
        if api == rtmidi.API_UNIX_JACK:
            hint = "is the JACK server running?"
        elif api == rtmidi.API_LINUX_ALSA or (api == rtmidi.API_UNSPECIFIED
                                               and rtmidi.API_LINUX_ALSA in rtmidi.get_compiled_api()):
            hint = ("is the ALSA sequencer available (/dev/snd/seq; modprobe snd-seq)? "
                    "With JACK running, try --midi-api jack")
        else:
            hint = "try --midi-api alsa or --midi-api jack"
        raise SinkError(f"cannot open the {which} MIDI system: {hint} ({exc})") from None


def is_port_index(spec) -> bool:
    """Whether a ``port`` spec names a port by its index in the port list (an int, or a string of digits), not
    by (part of) its name."""
    return isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isascii() and spec.strip().isdigit())


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
    wait : bool
        With ``port`` given by name: when no port matches it at :meth:`open`
        (a DAW started after rtclassify), open without one, say so once, and
        connect when a matching port is offered (the notes sounding and the
        last CC values first, as after a port that went away and came back);
        until then nothing is sent. Default False: no match is an error.
    api : {"alsa", "jack"}, optional
        The MIDI system; default rtmidi's default (ALSA on Linux).
    client_name : str
        The MIDI client name (the port shows as ``client_name:virtual``).
    streams : sequence of int, optional
        Several streams: the input channel of each stream, in stream order
        (the ``channel`` of their events). Stream ``k`` sends on MIDI channel
        ``mapping.channel + k``; an event from another input channel raises
        :class:`~rtclassify.errors.SinkError`. Default: every event on
        ``mapping.channel``.
    on_fault : callable, optional
        Called with one line when an existing port goes away or comes back,
        when the JACK server's stopping cannot be watched, and when the
        final note-offs fail (default: a warning on standard error).

    Raises
    ------
    SinkError
        Neither or both of ``port`` and ``virtual``; more streams than MIDI
        channels from ``mapping.channel`` to 16.

    Notes
    -----
    ``send`` and ``close`` may be called from different threads; a lock
    serializes them so that the final note-offs never interleave with a batch.
    """

    def __init__(self, mapping: MidiMapping, *, port: int | str | None = None, virtual: str | None = None,
                 api: str | None = None, client_name: str = "rtclassify", streams=None, on_fault=None,
                 wait: bool = False):
        if (port is None) == (virtual is None):
            raise SinkError("MIDI output: give exactly one of an existing port or a virtual port name")
        if virtual is not None and not str(virtual).strip():
            raise SinkError("MIDI output: the virtual port name is empty")
        if wait and port is None:
            raise SinkError("MIDI output: wait goes with an existing port given by name (a virtual port is there "
                            "from the start)")
        if wait and (not str(port).strip() or is_port_index(port)):
            raise SinkError("MIDI output: waiting for a port needs the port's name (an index names no port that is "
                            "not there yet)")
        self.wait = bool(wait)
        self.mapping = mapping
        self.port_spec = port
        self.virtual = virtual
        self.api = api
        self.client_name = client_name
        self._out = None
        self._lock = threading.Lock()
        #: input channel of each stream (several streams), or None
        self.streams = None if streams is None else tuple(int(c) for c in streams)
        n = 1 if self.streams is None else len(self.streams)
        if n == 0:
            raise SinkError("MIDI output: streams is empty (give the input channel of each stream)")
        if mapping.channel + n - 1 > 16:
            raise SinkError(f"MIDI output: {n} streams from MIDI channel {mapping.channel} need channels "
                            f"{mapping.channel}-{mapping.channel + n - 1}, but MIDI has 16 (set [midi] channel in the "
                            f"mapping file lower, or tag fewer channels)")
        # per MIDI channel: note-on, CC and note-off status bytes, sounding notes, last CC values
        self._voices = [(0x90 | (ch - 1), 0xB0 | (ch - 1), 0x80 | (ch - 1), {}, {})
                        for ch in range(mapping.channel, mapping.channel + n)]
        self._voice_of = None if self.streams is None else dict(zip(self.streams, self._voices))
        #: notes currently sounding (note -> tag/technique name); with several streams, stream 0's
        self.sounding: dict[int, str] = {}
        self._select(self._voices[0])
        #: number of MIDI messages sent
        self.messages_sent = 0
        #: the port name actually used
        self.port_name: str | None = None
        #: with JACK, the client that notices the server stopping (see :mod:`rtclassify.sinks.jack_watch`)
        self.watch = None
        self._on_fault = on_fault if on_fault is not None else warn
        self._last_look = 0.0
        #: the existing port the sink was connected to went away and no port matching ``port`` is back yet
        self.port_gone = False
        #: times the sink connected again to a port that came back
        self.reconnects = 0
        self._reconnect_said: str | None = None  # the last problem reported while the port is gone
        self._velocity: dict[tuple[int, int], int] = {}  # (note-on status, note) -> velocity sent
        self._receivers: set[str] = set()  # a virtual JACK port's connections at the last look

    @property
    def midi_channels(self) -> list[int]:
        """The MIDI channel (1-16) of each stream (one entry for a single stream)."""
        return [(v[0] & 0x0F) + 1 for v in self._voices]

    @property
    def sounding_by_channel(self) -> dict[int, dict[int, str]]:
        """Notes sounding per MIDI channel (1-16): {channel: {note: name}}."""
        return {(v[0] & 0x0F) + 1: dict(v[3]) for v in self._voices}

    def _select(self, voice) -> None:
        self._status, self._cc_status, self._off_status, self.sounding, self._last_cc = voice

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        if self._out is not None:
            return
        out = _new_midiout(self.api, self.client_name)
        try:
            if self.on_jack:
                self.watch = self._open_watch()
            if self.virtual is not None:
                before = self.watch.midi_outputs() if self.watch is not None else set()
                try:
                    out.open_virtual_port(str(self.virtual))
                except Exception as exc:
                    raise SinkError(f"cannot create virtual MIDI port {self.virtual!r}: {exc}") from None
                # the name JACK gave it: a second instance's client is "rtclassify-01", not "rtclassify"
                self.port_name = self._new_jack_port(before) or f"{self.client_name}:{self.virtual}"
                self._receivers = set()
            else:
                # rtmidi opens ports by index: re-read the list until it is the same twice in a row, so that
                # a port appearing or vanishing meanwhile cannot shift the index onto another program's port
                ports = list(out.get_ports())
                for _ in range(10):
                    again = list(out.get_ports())
                    if again == ports:
                        break
                    ports = again
                try:
                    idx = self._match(ports, self.port_spec)
                except SinkError as exc:
                    if not (self.wait and str(exc).startswith("no MIDI port")):
                        raise
                    idx = None
                    self.port_gone = True  # (check_port connects when a matching port is offered)
                    self._on_fault(f"no MIDI port matches {self.port_spec!r} yet: MIDI goes out once one is offered "
                                   f"({str(exc).partition('; ')[2]})")
                if idx is not None:
                    try:
                        out.open_port(idx, name=f"{self.client_name} out")
                    except Exception as exc:
                        raise SinkError(f"cannot open MIDI port {ports[idx]!r}: {exc}") from None
                    self.port_name = ports[idx]
        except BaseException:
            out.delete()
            if self.watch is not None:
                self.watch.close()
                self.watch = None
            raise
        self._out = out

    def _new_jack_port(self, before: set[str]) -> str | None:
        """The JACK name of the virtual port just opened: the MIDI output named ``:virtual`` that was not there
        ``before`` (None without a watch, or when it cannot be told)."""
        if self.watch is None:
            return None
        end = time.monotonic() + 0.5
        while True:
            new = [p for p in self.watch.midi_outputs() - before if p.endswith(f":{self.virtual}")]
            if len(new) == 1:
                return new[0]
            if new or time.monotonic() > end:
                return None
            time.sleep(0.01)

    def _open_watch(self):
        from .jack_watch import JackServerWatch

        try:
            return JackServerWatch(f"{self.client_name}-watch")
        except (ImportError, OSError) as exc:
            self._on_fault(f"MIDI over JACK: the JACK server stopping cannot be noticed without JACK-Client and "
                           f"the JACK library ({exc}); if it stops, MIDI output will hang")
            return None

    @property
    def on_jack(self) -> bool:
        """True when the output goes through JACK MIDI."""
        return (self.api or "").lower() == "jack"

    @property
    def lost(self) -> bool:
        """True when the output is gone for good (the JACK server stopped)."""
        return self.watch is not None and self.watch.lost

    @staticmethod
    def _match(ports: list[str], spec) -> int:
        listing = "; ".join(f"{i} {p!r}" for i, p in enumerate(ports)) or "none (no program offers a MIDI input)"
        if is_port_index(spec):
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
            gone = self.lost  # with the JACK server gone, a note-off could only queue up (and block, queue full)
            failed = None
            try:
                # every note gets its note-off even when one fails; the last values sent are forgotten, so
                # that the next open() sends them again (to another port, or another program on the same)
                for _, _, off_status, sounding, last_cc in self._voices:
                    for note in list(sounding):
                        if not gone:
                            try:
                                self._raw(out, [off_status, note, 0])
                            except SinkError as exc:
                                failed = failed or exc
                    sounding.clear()
                    last_cc.clear()
                if failed is not None:
                    self._on_fault(f"{failed}: the notes still sounding may hang")
            finally:
                # JACK MIDI output is queued and written by the next JACK cycles: closing the client at once
                # loses or garbles what is still queued (the final note-offs), so give it a few cycles
                if self.on_jack and self.messages_sent and not gone:
                    period = self.watch.period_s if self.watch is not None else None
                    time.sleep(max(JACK_DRAIN_S, 2.0 * (period or 0.0)))  # a long period: two of its cycles
                try:
                    out.close_port()
                finally:
                    out.delete()
                    if self.watch is not None:
                        self.watch.close()

    # ------------------------------------------------------------------ the port's program quitting
    def status(self, counters: dict) -> None:
        """Called by the listener every status interval: looks after the connection (:meth:`check_port`).

        Raises SinkError once the JACK server has stopped: a run whose audio came from that server too (listen
        on a JACK device) sends nothing more and would otherwise wait for its no-audio limit, then blame the
        device."""
        if self.lost:
            raise SinkError(f"MIDI output {self._quoted_name()} lost: the JACK server stopped ({self.watch.reason})")
        self.check_port()

    def check_port(self, force: bool = False) -> bool:
        """For a sink connected to an existing port: look (at most every :data:`PORT_CHECK_S` seconds, unless
        ``force``) whether the port is still offered; when it went away, say so once, and when a port matching
        ``port`` is offered again, connect to it and send the notes sounding and the last CC values; for a
        virtual port on JACK, send them to the first receiver that connects while none is. Returns True when
        the sink connected again or sent the state to such a receiver."""
        if self._out is None:
            return False
        now = time.monotonic()
        if not force and now - self._last_look < PORT_CHECK_S:
            return False
        self._last_look = now
        if self.virtual is not None:
            return self._check_receivers()
        said = None  # reported after the lock is released (a warning's write must not hold a send)
        with self._lock:
            out = self._out
            if out is None or self.lost:
                return False
            try:
                ports = list(out.get_ports())
            except Exception:  # noqa: BLE001 - the MIDI system itself failed: the sends will say so
                return False
            if not self.port_gone:
                if self.port_name in ports:
                    return False
                self.port_gone = True
                self._reconnect_said = None
                said = (f"MIDI port {self.port_name!r} went away (its program quit?): MIDI goes on when a port "
                        f"matching {self._reconnect_spec()!r} is offered again")
            else:
                said = self._reconnect(out, ports)
        if said:
            self._on_fault(said)
        return not self.port_gone and said is not None

    def _check_receivers(self) -> bool:
        """A virtual port on JACK: when a receiver connects while none was (a DAW started or restarted after
        rtclassify), send it the notes sounding and the last CC values, as a port that comes back gets them.
        Not to receivers joining others already connected: they would get every sounding note again. Returns
        True when the state was sent."""
        if self.watch is None or self.lost:
            return False
        conns = self.watch.connections(self.port_name)
        if conns is None:
            return False
        first = bool(conns) and not self._receivers
        self._receivers = conns
        if not first:
            return False
        with self._lock:
            out = self._out
            if out is None or self.lost:
                return False
            try:
                self._resend_state(out, retrigger=True)
            except SinkError:  # the next sends say it, if it lasts
                return False
        return True

    def _reconnect(self, out, ports: list[str]) -> str | None:
        """Connect to a port matching the spec that is offered again (the lock is held); the line to report (a
        problem only once until it changes), or None."""
        spec = self._reconnect_spec()
        try:
            if list(out.get_ports()) != ports:  # the list is changing: look again next time, so no index shifts
                return None
            idx = self._match(ports, spec)
        except SinkError as exc:
            if str(exc).startswith("no MIDI port"):
                return None  # not back yet
            return self._once(f"cannot connect again: {exc}")  # several ports match
        first = self.port_name is None  # a sink that waited for its port (wait=True) connects the first time
        try:
            if not first:
                out.close_port()
            out.open_port(idx, name=f"{self.client_name} out")
        except Exception as exc:  # noqa: BLE001 - tried again at the next look
            return self._once(f"cannot connect {'' if first else 'again '}to MIDI port {ports[idx]!r}: {exc}")
        self.port_name = ports[idx]
        self.port_gone = False
        if not first:
            self.reconnects += 1
        what = "is offered: connected" if first else "is back: connected again"
        try:
            self._resend_state(out)
        except SinkError as exc:  # the next sends say it again, if it lasts
            return f"MIDI port {self.port_name!r} {what.partition(':')[0]}, but sending it the current state failed: {exc}"
        return f"MIDI port {self.port_name!r} {what}"

    def _quoted_name(self) -> str:
        return repr(self.port_name) if self.port_name is not None else self.shown_name

    @property
    def shown_name(self) -> str:
        """The port's name, or what a sink still waiting for its port (wait=True) waits for."""
        return self.port_name if self.port_name is not None else f"(waiting for a port matching {self.port_spec!r})"

    def _once(self, line: str) -> str | None:
        """``line``, unless it was the last one reported while the port is gone."""
        if line == self._reconnect_said:
            return None
        self._reconnect_said = line
        return line

    def _reconnect_spec(self) -> str:
        """What a port that comes back must match: the ``port`` given by name, or the name of the port given by
        index, without the ALSA client and port numbers that a restarted program gets anew."""
        if isinstance(self.port_spec, str) and not self.port_spec.strip().isdigit():
            return self.port_spec
        name = self.port_name or ""
        head, _, tail = name.rpartition(" ")
        nums = tail.split(":")
        return head if head and len(nums) == 2 and all(n.isdigit() for n in nums) else name

    def _resend_state(self, out, retrigger: bool = False) -> None:
        """The notes sounding and the last CC values, to a receiver connected anew (the lock is held).
        ``retrigger``: each note-on after a note-off, for a receiver that may have had the note-on already (it
        connected to a virtual port up to a look before; two note-ons and one note-off could leave a voice
        hanging on a synth that stacks them)."""
        for on_status, cc_status, off_status, sounding, last_cc in self._voices:
            for note in sounding:
                if retrigger:
                    self._raw(out, [off_status, note, 0])
                self._raw(out, [on_status, note, self._velocity.get((on_status, note), 100)])
            for cc, value in last_cc.items():
                self._raw(out, [cc_status, cc, value])

    # ------------------------------------------------------------------ sending
    def send(self, events: Sequence) -> None:
        with self._lock:
            if self._out is None:
                raise SinkError("MIDI output is not open")
            if self._voice_of is None:
                EventDispatch.send(self, events)
                return
            try:
                for ev in events:
                    voice = self._voice_of.get(ev.channel)
                    if voice is None:
                        raise SinkError(f"MIDI output: an event from input channel {ev.channel}, which is not one "
                                        f"of the sink's streams ({', '.join(map(str, self.streams))})")
                    self._select(voice)
                    EventDispatch.send(self, (ev,))
            finally:
                self._select(self._voices[0])

    def _raw(self, out, msg: list[int]) -> None:
        if self.port_name is None and self.virtual is None:  # waiting for the port (wait=True): the state is kept
            return
        if self.watch is not None and self.watch.lost:
            raise SinkError(f"MIDI output {self._quoted_name()} lost: the JACK server stopped ({self.watch.reason})")
        try:
            out.send_message(msg)
        except Exception as exc:
            raise SinkError(f"MIDI send to {self.port_name!r} failed: {exc}") from None
        self.messages_sent += 1

    def _note_on(self, note: int | None, prob: float, name: str) -> None:
        if note is None:
            return
        if note in self.sounding:  # retrigger: close the old one first so on/off stay paired
            self._raw(self._out, [self._off_status, note, 0])
        velocity = self.mapping.velocity(prob)
        self._raw(self._out, [self._status, note, velocity])
        self.sounding[note] = name
        self._velocity[(self._status, note)] = velocity

    def _note_off(self, note: int | None) -> None:
        if note is None or note not in self.sounding:
            return
        self._raw(self._out, [self._off_status, note, 0])
        del self.sounding[note]

    def _cc(self, cc: int | None, value: int) -> None:
        if cc is None:
            return
        if self._last_cc.get(cc) == value:
            return
        self._raw(self._out, [self._cc_status, cc, value])
        self._last_cc[cc] = value

    def _tag(self, ev):
        t = self.mapping.tags.get(ev.tag)
        return t if (t is not None and t.enabled) else None

    # (the mapping's `notes` and `cc` switch the tags' notes and CCs; the technique's are switched one by one)
    def _on(self, ev) -> None:
        t = self._tag(ev)
        if t is not None and self.mapping.notes:
            self._note_on(t.note, ev.prob, ev.tag)

    def _off(self, ev) -> None:
        t = self._tag(ev)
        if t is not None:
            self._note_off(t.note)

    def _level(self, ev) -> None:
        t = self._tag(ev)
        if t is not None and self.mapping.cc:
            self._cc(t.cc, self.mapping.level(ev.prob))

    # technique values -------------------------------------------------------
    @staticmethod
    def _num(ev, *names):
        for n in names:
            v = getattr(ev, n, None)
            if v is not None:
                v = float(v)
                return v if math.isfinite(v) else None
        return None

    @staticmethod
    def _scaled(value: float | None, full_scale: float) -> int | None:
        if value is None:
            return None
        return int(round(min(max(value / full_scale, 0.0), 1.0) * 127))

    def _values(self, which: str, rate: float | None, depth: float | None) -> None:
        tech = self.mapping.technique
        full = tech.vibrato_depth_max_cents if which == "vibrato" else tech.tremolo_depth_max_db
        r, d = self._scaled(rate, tech.rate_max_hz), self._scaled(depth, full)
        if r is not None:
            self._cc(getattr(tech, f"{which}_rate_cc"), r)
        if d is not None:
            self._cc(getattr(tech, f"{which}_depth_cc"), d)

    def _technique_frame(self, ev) -> None:
        """``technique`` events (TechniqueValues): pitch, vibrato and tremolo values as CCs."""
        tech = self.mapping.technique
        note = self._num(ev, "midi")
        if note is None:
            hz = self._num(ev, "pitch")
            note = 69 + 12 * math.log2(hz / 440.0) if hz else None
        if note is not None:
            self._cc(tech.pitch_cc, int(min(max(round(note), 0), 127)))
        self._values("vibrato", self._num(ev, "vibrato_rate"), self._num(ev, "vibrato_extent"))
        self._values("tremolo", self._num(ev, "tremolo_rate"), self._num(ev, "tremolo_depth"))

    def _technique_on(self, ev, which: str) -> None:
        # the rate and size first: a patch that reads them when the note comes gets these, not the 0 of the off
        self._values(which, self._num(ev, "rate"), self._num(ev, "extent", "depth"))
        self._note_on(getattr(self.mapping.technique, f"{which}_note"), 1.0, which)

    def _technique_off(self, ev, which: str) -> None:
        self._note_off(getattr(self.mapping.technique, f"{which}_note"))
        self._values(which, 0.0, 0.0)

    handlers = {
        "on": _on,
        "off": _off,
        "level": _level,
        "technique": _technique_frame,
        "vibrato_on": lambda s, e: s._technique_on(e, "vibrato"),
        "vibrato_off": lambda s, e: s._technique_off(e, "vibrato"),
        "tremolo_on": lambda s, e: s._technique_on(e, "tremolo"),
        "tremolo_off": lambda s, e: s._technique_off(e, "tremolo"),
    }
