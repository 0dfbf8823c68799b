"""OSC output over UDP (python-osc message building, one socket, several destinations).

Messages (addresses configurable in the mapping file, see
:mod:`rtclassify.sinks.mapping`; ``/rtclassify`` is the default prefix):

=============================  ======  ===========================================
address                        types   meaning
=============================  ======  ===========================================
``/rtclassify/tag/<tag>``      ``f``   smoothed probability of a tag (0-1)
``/rtclassify/on``             ``s``   a tag turned on (its name)
``/rtclassify/off``            ``s``   a tag turned off (its name)
``/rtclassify/pitch``          ``f``   f0 in Hz (technique trackers; only while voiced)
``/rtclassify/vibrato``        ``ff``  vibrato rate (Hz) and extent (cents); 0 0 when it stops
``/rtclassify/tremolo``        ``ff``  tremolo rate (Hz) and depth (dB); 0 0 when it stops
=============================  ======  ===========================================

Several streams (``rtclassify listen --channels``, ``OscSink(..., streams=)``)
are told apart by the events' input channel: with the mapping's ``streams =
"path"`` (default) it goes into the address after the prefix
(``/rtclassify/3/tag/piano``, ``/rtclassify/3/on``, ``/rtclassify/3/pitch``;
an address outside the prefix, from ``[osc.tags]`` or ``[osc.technique]``, gets
``/3`` appended), with ``streams = "argument"`` the addresses stay as above and
every message starts with the channel as an int32 argument
(``/rtclassify/on ,is 3 piano``).

With ``bundle = true`` each batch of events goes out as OSC bundles (one, or
several of at most :data:`MAX_DATAGRAM` bytes each when the batch is larger,
e.g. many streams) whose time tag is the wall time at which the engine decided
the first event of the batch (in the past, so receivers act at once but can
measure the delay).

A send that fails during a run (the network went away, no route to the host)
does not stop the show: the message still goes to every other destination, the
failures are counted per destination (:attr:`OscSink.send_errors`), the first
one of each outage is reported through ``on_fault`` (default: one line on
standard error), and so is the first send that works again after it;
:attr:`OscSink.fault` sums them up for the end of the run. A destination given
by name is looked up again every :data:`RESOLVE_EVERY` seconds, off the sending
thread (a receiver whose address changed, as by DHCP, got nothing until the
next start), and with ``wait=True`` (``--osc-wait``) a host that cannot be
resolved or reached at the start is waited for instead of refused (a run
started at boot before the network is up): its messages are dropped until then. Tags still on when
the sink closes get their ``/off`` then (a run that ended without its final
flush: a blocked output, a fault).
Technique messages come every 20 ms (the trackers' values); a value that did not
change since the last message on its address is not sent again.
"""

from __future__ import annotations

import numbers
import socket
import threading
import time
from typing import Sequence

from ..errors import ParameterError, SinkError, require
from . import EventDispatch, warn
from .mapping import OscMapping

__all__ = ["OscSink", "parse_destination", "MAX_DATAGRAM", "RESOLVE_EVERY"]

#: seconds between two lookups of a destination given by name during a run (one being waited for: WAIT_RETRY)
RESOLVE_EVERY = 30.0
#: seconds between two tries of a destination that could not be resolved or reached (``wait=True``)
WAIT_RETRY = 2.0

#: the largest bundle sent (bytes): a batch larger than this (many streams) is split over several bundles,
#: well under UDP's 65507-byte limit and the receive buffers of common OSC receivers
MAX_DATAGRAM = 8192
_BUNDLE_HEADER = 16  # "#bundle\0" and the time tag; each element adds a 4-byte size before its message


def parse_destination(spec: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (or ``[v6addr]:PORT``) into (host, port).

    Raises
    ------
    ParameterError
        Not of the form HOST:PORT, or the port is not 1-65535.
    """
    s = str(spec).strip()
    if s.startswith("["):
        host, sep, rest = s[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
        ok = bool(sep) and bool(port_s)
    else:
        host, sep, port_s = s.rpartition(":")
        ok = bool(sep) and bool(host)
    if not ok or not (port_s.isascii() and port_s.isdigit()) or not 1 <= int(port_s) <= 65535:
        raise ParameterError(f"--osc: expected HOST:PORT with a port 1-65535, got {spec!r}")
    if not s.startswith("[") and ":" in host:  # host:9000:1, or an IPv6 address without its brackets
        raise ParameterError(f"--osc: expected HOST:PORT with a port 1-65535, got {spec!r} (a host holds no ':'; "
                             f"an IPv6 address goes in brackets, as [::1]:9000)")
    return host, int(port_s)


def _destination(d) -> tuple[str, int]:
    """``"HOST:PORT"`` or a ``(host, port)`` pair, checked alike."""
    if isinstance(d, str):
        return parse_destination(d)
    try:
        host, port = d
    except (TypeError, ValueError):
        raise ParameterError(f"OSC destination must be \"HOST:PORT\" or (host, port), got {d!r}") from None
    if isinstance(port, str) and port.strip().isascii() and port.strip().isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, numbers.Integral) or not 1 <= port <= 65535:
        raise ParameterError(f"OSC destination {d!r}: the port must be a whole number 1-65535")
    return str(host), int(port)


def _udp_socket(family) -> socket.socket:
    """A UDP socket; an IPv4 one may send to broadcast addresses (``--osc 192.168.1.255:9000`` reaches every
    receiver on the network, as lighting and visuals rigs often listen; without SO_BROADCAST the system
    refuses such a destination with "Permission denied")."""
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    return s


def _resolve(host: str, port: int, keep: tuple | None = None) -> tuple:
    """``(family, sockaddr)`` of the first address of ``host`` with a route (a UDP ``connect`` on a probe
    socket, which sends nothing); ``keep`` (the one in use) when it is still one of the host's addresses with a
    route (a name with several, whose order changes from one lookup to the next: round-robin DNS, a host on
    wired and wireless networks); a SinkError that says why otherwise."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise SinkError(f"OSC host {host!r} cannot be resolved: {exc.strerror}") from None
    except (UnicodeError, ValueError) as exc:  # e.g. an empty label: 'a..b', or one over 63 characters
        raise SinkError(f"OSC host {host!r} is not a valid host name: {exc}") from None
    first_error = None
    candidates = [(family, sockaddr) for family, _, _, _, sockaddr in _preferred(info)]
    if keep is not None and keep in candidates:
        candidates.remove(keep)
        candidates.insert(0, keep)
    for family, sockaddr in candidates:
        try:
            probe = _udp_socket(family)
        except OSError as exc:  # a family this system has no sockets for
            first_error = first_error or exc
            continue
        try:
            probe.connect(sockaddr)
        except OSError as exc:
            first_error = first_error or exc
            continue
        finally:
            probe.close()
        return family, sockaddr
    raise SinkError(f"OSC host {host}:{port} is unreachable: {first_error.strerror or first_error}") from None


def _literal(host: str) -> bool:
    """Whether ``host`` is an IP address (nothing to look up again), not a name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except (OSError, ValueError):
            pass
    return False


def _preferred(info: list) -> list:
    """A host's addresses (``getaddrinfo``'s answer) to try in turn, IPv4 ones first: a name with both
    (``localhost`` is ``::1`` first on many systems) reaches receivers that listen on IPv4 only, as most visuals
    software does by default, and one whose IPv4 address has no route (an IPv6-only network) its IPv6 one; an
    IPv6 literal (``[::1]:9000``) or a name with IPv6 addresses only keeps them."""
    return sorted(info, key=lambda i: i[0] != socket.AF_INET)  # (stable: getaddrinfo's order within a family)


class OscSink(EventDispatch):
    """Sends tags (and technique values) as OSC over UDP to one or more destinations.

    Parameters
    ----------
    mapping : OscMapping
        Addresses and switches (``Mapping.default(labels).osc`` gives the defaults).
    destinations : sequence of (host, port) or "HOST:PORT"
        Where to send; every message goes to each.
    streams : sequence of int, optional
        Several streams: the input channel of each stream (the ``channel`` of
        their events); messages then say which stream they belong to (see
        the module notes). An event from another channel raises
        :class:`~rtclassify.errors.SinkError`. Default: one stream, addresses
        without a channel.

    Notes
    -----
    :meth:`open` resolves every host and checks that a route to it exists (a
    UDP ``connect`` on a probe socket, which sends nothing), so a typo or an
    unreachable network fails at start with one line. UDP gives no delivery
    guarantee: a receiver that is not running is not an error. A broadcast
    address (``255.255.255.255`` or a network's, such as ``192.168.1.255``)
    reaches every receiver on that network.
    """

    def __init__(self, mapping: OscMapping, destinations: Sequence, streams=None, on_fault=None, wait: bool = False):
        if not destinations:
            raise SinkError("OSC output needs at least one HOST:PORT destination")
        self.mapping = mapping
        #: input channel of each stream (several streams), or None
        self.streams = None if streams is None else frozenset(int(c) for c in streams)
        if self.streams is not None and not self.streams:
            raise SinkError("OSC output: streams is empty (give the input channel of each stream)")
        self._channel: int | None = None  # the channel of the event being dispatched (several streams)
        self._addresses: dict[tuple[str, int], str] = {}
        self.destinations = [_destination(d) for d in destinations]
        #: wait for a destination that cannot be resolved or reached at the start (see the module notes)
        self.wait = bool(wait)
        self._socks: dict[int, socket.socket] = {}
        # per destination: (family, sockaddr) while it has an address with a route, None while waited for
        self._routes: list[tuple[int, tuple] | None] = []
        self._failing: set = set()  # destinations whose last send failed (an outage being counted)
        self._reached: set = set()  # destinations that had an address at some time of the run
        self._stop = threading.Event()  # the resolver thread's of this opening (a new one at each open)
        self._lock = threading.Lock()
        self._pending: list = []
        self._last: dict[str, tuple] = {}
        self._batch_time = 0.0
        #: number of datagrams sent (to all destinations together)
        self.datagrams_sent = 0
        #: "host:port" -> datagrams that could not be sent there (the run went on)
        self.send_errors: dict[str, int] = {}
        self._first_error: dict[str, str] = {}
        self._on_fault = on_fault if on_fault is not None else warn
        self._on: set = set()  # (channel, tag) of the tags that are on: their /off is sent at close if still on

    @property
    def _addrs(self) -> list:
        """The destinations' ``(family, sockaddr)`` that have one now."""
        return [r for r in self._routes if r is not None]

    def open(self) -> None:
        if self._routes:
            return
        require("pythonosc", pip="python-osc")  # the messages are built with it: missing, say so before the run
        routes = []
        for host, port in self.destinations:
            try:
                routes.append(_resolve(host, port))
            except SinkError as exc:
                if not self.wait:
                    raise
                routes.append(None)
                self._on_fault(f"{exc}; waiting for it (its messages are dropped until it resolves and has a route)")
        socks = {}
        for route in routes:
            if route is not None and route[0] not in socks:
                socks[route[0]] = self._new_socket(route[0])
        self._socks, self._routes = socks, routes
        self._reached = {d for d, r in zip(self.destinations, routes) if r is not None}
        self._stop = threading.Event()
        if any(r is None or not _literal(d[0]) for d, r in zip(self.destinations, routes)):
            threading.Thread(target=self._resolve_loop, args=(self._stop,), name="rtclassify-osc-resolve",
                             daemon=True).start()

    @staticmethod
    def _new_socket(family) -> socket.socket:
        s = _udp_socket(family)
        s.setblocking(True)
        return s

    def _resolve_loop(self, stop: threading.Event) -> None:
        """Look the names up again now and then, and the destinations waited for more often (a thread of its
        own: a lookup can take seconds, which the sending thread must never wait), until ``stop``."""
        last = [time.monotonic()] * len(self.destinations)
        while not stop.wait(min(WAIT_RETRY, RESOLVE_EVERY)):
            now = time.monotonic()
            for i, (host, port) in enumerate(self.destinations):
                with self._lock:
                    if not self._routes or stop.is_set():
                        return
                    route = self._routes[i]
                if route is not None and (_literal(host) or now - last[i] < RESOLVE_EVERY):
                    continue
                if route is None and now - last[i] < WAIT_RETRY:
                    continue
                last[i] = now
                try:
                    new = _resolve(host, port, keep=route)
                except SinkError:
                    continue  # waited for still, or the old address kept (its sends count their failures)
                if new == route:
                    continue
                with self._lock:
                    if not self._routes or stop.is_set():
                        return
                    if new[0] not in self._socks:
                        self._socks[new[0]] = self._new_socket(new[0])
                    self._routes[i] = new
                    first = (host, port) not in self._reached
                    self._reached.add((host, port))
                where = f"{new[1][0]}:{new[1][1]}"
                if route is None:
                    self._on_fault(f"OSC host {host}:{port} {'reached' if first else 'reached again'} at {where}: "
                                   f"its messages go out from now on")
                else:
                    self._on_fault(f"OSC host {host}:{port} now resolves to {where} (was {route[1][0]}:{route[1][1]}): "
                                   f"its messages go there from now on")

    @property
    def fault(self) -> str | None:
        """The sends that failed during the run and the destinations never reached (waited for in vain), in one
        line (None when every one went out)."""
        # (a copy of the counts, and the first errors read with a default: a host may read this from another
        # thread, through Listener.counters(), while a send fails for the first time)
        faults = [f"OSC to {d}: {n} datagram(s) not sent ({self._first_error.get(d, 'failed')})"
                  for d, n in list(self.send_errors.items())]
        if self.wait:
            faults += [f"OSC host {h}:{p} was never reached" for h, p in self.destinations
                       if (h, p) not in self._reached]
        return "; ".join(faults) or None

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            try:
                if self._addrs:
                    # what the run left on (it ended without its final flush): the tags' /off and `0 0` for a
                    # vibrato or tremolo, so that no receiver keeps one on
                    self._pending = []
                    if self.mapping.on_off:
                        for ch, tag in sorted(self._on, key=lambda x: (x[0] is None, x[0] or 0, x[1])):
                            self._channel = ch
                            self._msg(self.mapping.off_address, tag)
                    if self.mapping.technique:
                        stopped = (0.0, 0.0)
                        for (addr, ch), values in self._last.items():
                            if addr in self._modulation_addresses() and values != stopped:
                                self._channel = ch
                                self._msg(addr, *stopped)
                    self._channel = None
                    if self._pending:
                        self._flush_pending()
            finally:
                self._on.clear()
                self._last.clear()  # the next open() sends every value again
                for s in self._socks.values():
                    s.close()
                self._socks, self._routes = {}, []

    # ------------------------------------------------------------------ sending
    def send(self, events: Sequence) -> None:
        with self._lock:
            if not self._routes:
                raise SinkError("OSC output is not open")
            self._pending = []
            self._batch_time = events[0].wall_time if events else 0.0
            try:
                if self.streams is None:
                    EventDispatch.send(self, events)
                else:
                    for ev in events:
                        if ev.channel not in self.streams:
                            raise SinkError(f"OSC output: an event from input channel {ev.channel}, which is not "
                                            f"one of the sink's streams ({', '.join(map(str, sorted(self.streams)))})")
                        self._channel = ev.channel
                        EventDispatch.send(self, (ev,))
            finally:
                # the messages of the events before a bad one go out: their on/off state is already kept
                self._channel = None
                self._flush_pending()

    def _flush_pending(self) -> None:
        """Send the messages of the batch: one by one, or as bundles of at most MAX_DATAGRAM bytes."""
        from pythonosc.osc_bundle_builder import OscBundleBuilder

        pending, self._pending = self._pending, []
        if not pending:
            return
        if not self.mapping.bundle:
            for m in pending:
                self._sendto(m.dgram)
            return
        group, size = [], _BUNDLE_HEADER
        for m in pending + [None]:
            n = 0 if m is None else 4 + len(m.dgram)
            if group and (m is None or size + n > MAX_DATAGRAM):
                b = OscBundleBuilder(self._batch_time or 1e-6)
                for g in group:
                    b.add_content(g)
                self._sendto(b.build().dgram)
                group, size = [], _BUNDLE_HEADER
            if m is not None:
                group.append(m)
                size += n

    def _sendto(self, data: bytes) -> None:
        """Send to every destination that has an address; a failure is counted (the first of each outage
        reported, and the send that works again after it), never raised."""
        for route in self._routes:
            if route is None:  # waited for (wait=True)
                continue
            family, addr = route
            try:
                self._socks[family].sendto(data, addr)
            except OSError as exc:
                dest = f"{addr[0]}:{addr[1]}"
                n = self.send_errors.get(dest, 0)
                if n == 0:
                    self._first_error[dest] = exc.strerror or str(exc)
                self.send_errors[dest] = n + 1
                if dest not in self._failing:
                    self._failing.add(dest)
                    self._on_fault(f"OSC send to {dest} failed: {exc.strerror or exc}; going on (failures are "
                                   f"counted)")
                continue
            # (the destination's name is made only during an outage: this runs for every datagram)
            if self._failing and (dest := f"{addr[0]}:{addr[1]}") in self._failing:
                self._failing.discard(dest)
                self._on_fault(f"OSC send to {dest} works again ({self.send_errors[dest]} datagram(s) not sent so "
                               f"far)")
            self.datagrams_sent += 1

    def _msg(self, address: str, *args) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        ch = self._channel
        if ch is not None:
            if self.mapping.streams == "argument":
                b = OscMessageBuilder(address=address)
                b.add_arg(ch, OscMessageBuilder.ARG_TYPE_INT)
            else:
                key = (address, ch)
                addr = self._addresses.get(key)
                if addr is None:
                    addr = self._addresses[key] = self.mapping.stream_address(address, ch)
                b = OscMessageBuilder(address=addr)
        else:
            b = OscMessageBuilder(address=address)
        for a in args:
            if isinstance(a, str):
                b.add_arg(a, OscMessageBuilder.ARG_TYPE_STRING)
            else:
                b.add_arg(float(a), OscMessageBuilder.ARG_TYPE_FLOAT)
        self._pending.append(b.build())

    def _tag_on(self, ev) -> None:
        self._on.add((self._channel, ev.tag))
        if self.mapping.on_off:
            self._msg(self.mapping.on_address, ev.tag)

    def _tag_off(self, ev) -> None:
        self._on.discard((self._channel, ev.tag))
        if self.mapping.on_off:
            self._msg(self.mapping.off_address, ev.tag)

    def _level(self, ev) -> None:
        if self.mapping.levels:
            self._msg(self.mapping.tag_address(ev.tag), ev.prob)

    @staticmethod
    def _num(ev, name: str, default: float = 0.0) -> float:
        v = getattr(ev, name, None)
        return default if v is None else float(v)

    def _changed(self, address: str, *values) -> bool:
        """Technique values repeat every 20 ms: send only what changed."""
        key = (address, self._channel)
        if self._last.get(key) == values:
            return False
        self._last[key] = values
        return True

    def _modulation_addresses(self) -> tuple:
        return (self.mapping.technique_address("vibrato"), self.mapping.technique_address("tremolo"))

    def _tech(self, which: str, *values) -> None:
        addr = self.mapping.technique_address(which)
        if self.mapping.technique and self._changed(addr, *values):
            self._msg(addr, *values)

    def _technique_frame(self, ev) -> None:
        pitch = getattr(ev, "pitch", None)
        if pitch is not None:
            self._tech("pitch", float(pitch))
        self._tech("vibrato", self._num(ev, "vibrato_rate"), self._num(ev, "vibrato_extent"))
        self._tech("tremolo", self._num(ev, "tremolo_rate"), self._num(ev, "tremolo_depth"))

    handlers = {
        "on": _tag_on,
        "off": _tag_off,
        "level": _level,
        "technique": _technique_frame,
        "vibrato_on": lambda s, e: s._tech("vibrato", s._num(e, "rate"), s._num(e, "extent")),
        "vibrato_off": lambda s, e: s._tech("vibrato", 0.0, 0.0),
        "tremolo_on": lambda s, e: s._tech("tremolo", s._num(e, "rate"), s._num(e, "depth")),
        "tremolo_off": lambda s, e: s._tech("tremolo", 0.0, 0.0),
    }
