"""OSC sink against real UDP receivers on 127.0.0.1 (python-osc's threading server, raw sockets)."""

from __future__ import annotations

import socket
import sys
import threading
import time

import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_server import ThreadingOSCUDPServer

from rtclassify.detect.events import Event, TagLevel, TagOff, TagOn, TechniqueValues, TremoloOn, VibratoOff, VibratoOn
from rtclassify.errors import ParameterError, SinkError
from rtclassify.sinks.mapping import Mapping, OscMapping
from rtclassify.sinks.osc import OscSink, parse_destination

LABELS = ("piano", "speech", "drums")


class Receiver:
    """A python-osc UDP server on an ephemeral port that records (address, args)."""

    def __init__(self):
        self.messages: list[tuple[str, tuple]] = []
        self._cv = threading.Condition()
        d = Dispatcher()
        d.set_default_handler(self._handle)
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def _handle(self, address, *args):
        with self._cv:
            self.messages.append((address, args))
            self._cv.notify_all()

    def wait_for(self, n: int, timeout: float = 5.0) -> list:
        end = time.monotonic() + timeout
        with self._cv:
            while len(self.messages) < n and time.monotonic() < end:
                self._cv.wait(0.05)
            return list(self.messages)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def events():
    t = time.time()
    return [
        TagOn(1.0, t, 0, "piano", 0.8),
        TagLevel(1.0, t, 0, "piano", 0.8),
        TagLevel(1.0, t, 0, "speech", 0.1),
        TagOff(2.0, t + 0.1, 0, "piano"),
    ]


def test_messages_are_well_formed(receiver):
    sink = OscSink(Mapping.default(LABELS).osc, [f"127.0.0.1:{receiver.port}"])
    with sink:
        sink.send(events())
    got = receiver.wait_for(4)
    assert got[0] == ("/rtclassify/on", ("piano",))
    assert got[1][0] == "/rtclassify/tag/piano" and got[1][1][0] == pytest.approx(0.8)  # the levels as they come
    assert got[2][0] == "/rtclassify/tag/speech" and got[2][1][0] == pytest.approx(0.1)
    assert got[3] == ("/rtclassify/off", ("piano",))
    assert len(got) == 4
    assert all(isinstance(a[0], (str, float)) and len(a) == 1 for _, a in got)
    assert sink.datagrams_sent == 4


def test_several_destinations_get_everything():
    r1, r2 = Receiver(), Receiver()
    try:
        sink = OscSink(Mapping.default(LABELS).osc, [("127.0.0.1", r1.port), f"localhost:{r2.port}"])
        with sink:
            sink.send([TagOn(0.5, time.time(), 0, "drums", 0.9)])
        # the tag left on gets its /off when the sink closes
        a, b = r1.wait_for(2), r2.wait_for(2)
        assert a == b and len(a) == 2
        assert a == [("/rtclassify/on", ("drums",)), ("/rtclassify/off", ("drums",))]
    finally:
        r1.close()
        r2.close()


@pytest.fixture
def raw_rx():
    """A bare UDP socket on 127.0.0.1 (whole datagrams, bundles undecoded)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    yield rx
    rx.close()


def test_bundle_carries_the_decision_time_as_timetag(raw_rx):
    raw_rx.settimeout(5)
    mapping = OscMapping(bundle=True)
    sink = OscSink(mapping, [("127.0.0.1", raw_rx.getsockname()[1])])
    evs = events()
    with sink:
        sink.send(evs)
    data, _ = raw_rx.recvfrom(65536)
    assert OscBundle.dgram_is_bundle(data)
    b = OscBundle(data)
    assert b.num_contents == 4
    assert b.timestamp == pytest.approx(evs[0].wall_time, abs=1e-3)
    addrs = [m.address for m in b]
    assert addrs[0] == "/rtclassify/on" and addrs[-1] == "/rtclassify/off"


def test_custom_addresses_and_switches(receiver):
    mapping = OscMapping(prefix="/show", levels=False, tags={"speech": "/voice"})
    sink = OscSink(mapping, [("127.0.0.1", receiver.port)])
    with sink:
        sink.send(events())
    got = receiver.wait_for(2)
    time.sleep(0.1)
    assert receiver.messages == [("/show/on", ("piano",)), ("/show/off", ("piano",))] == got


def test_technique_messages(receiver):
    sink = OscSink(Mapping.default(LABELS).osc, [("127.0.0.1", receiver.port)])
    with sink:
        sink.send([TechniqueValues(1.0, 0.0, 0, pitch=440.0, midi=69.0), VibratoOn(1.0, 0.0, 0, 5.5, 40.0),
                   # vibrato values unchanged: not repeated
                   TechniqueValues(1.1, 0.0, 0, pitch=440.0, midi=69.0, vibrato_rate=5.5, vibrato_extent=40.0),
                   TechniqueValues(1.2, 0.0, 0, pitch=None, midi=None, vibrato_rate=5.5, vibrato_extent=41.0,
                                   tremolo_rate=4.0, tremolo_depth=3.0),
                   VibratoOff(2.0, 0.0, 0)])
    got = receiver.wait_for(6)
    time.sleep(0.1)
    assert [a for a, _ in receiver.messages] == ["/rtclassify/pitch", "/rtclassify/vibrato", "/rtclassify/tremolo",
                                                 "/rtclassify/vibrato", "/rtclassify/vibrato", "/rtclassify/tremolo",
                                                 "/rtclassify/vibrato", "/rtclassify/tremolo"]
    args = [a for _, a in got + receiver.messages[len(got):]]
    assert args[0] == pytest.approx((440.0,))
    assert args[1] == pytest.approx((0.0, 0.0)) and args[2] == pytest.approx((0.0, 0.0))
    assert args[3] == pytest.approx((5.5, 40.0))
    assert args[4] == pytest.approx((5.5, 41.0)) and args[5] == pytest.approx((4.0, 3.0))
    assert args[6] == (0.0, 0.0)
    assert args[7] == (0.0, 0.0)  # the tremolo the values left on, stopped at close


def test_a_vibrato_or_tremolo_left_on_is_stopped_at_close(receiver):
    """A run that ends without its flush (no VibratoOff) leaves no receiver with a vibrato or tremolo on:
    the sink sends `0 0` for each at close, per stream, as it sends the /off of a tag left on; one that
    stopped gets nothing more."""
    sink = OscSink(Mapping.default(LABELS).osc, [("127.0.0.1", receiver.port)], streams=[0, 1])
    with sink:
        sink.send([VibratoOn(1.0, 0.0, 1, 5.5, 40.0), TremoloOn(1.0, 0.0, 0, 4.0, 3.0),
                   VibratoOn(1.0, 0.0, 0, 6.0, 30.0), VibratoOff(1.5, 0.0, 0)])
        assert len(receiver.wait_for(4)) == 4
    time.sleep(0.1)
    assert receiver.messages[4:] == [("/rtclassify/1/vibrato", (0.0, 0.0)), ("/rtclassify/0/tremolo", (0.0, 0.0))]


def test_unknown_event_kinds_are_ignored(receiver):
    sink = OscSink(Mapping.default(LABELS).osc, [("127.0.0.1", receiver.port)])
    with sink:
        sink.send([Event(1.0), TagOn(1.0, 0.0, 0, "piano", 0.7)])
    assert receiver.wait_for(1)[0] == ("/rtclassify/on", ("piano",))


def test_unresolvable_host_is_one_clear_error():
    sink = OscSink(OscMapping(), ["no-such-host.invalid:9000"])
    with pytest.raises(SinkError, match="OSC host 'no-such-host.invalid' cannot be resolved"):
        sink.open()


@pytest.mark.parametrize("host", ["a..b", "x" * 300])
def test_invalid_host_name_is_one_clear_error(host):
    # the resolver raises UnicodeError (empty or over-long label) rather than gaierror for these
    with pytest.raises(SinkError, match="not a valid host name"):
        OscSink(OscMapping(), [f"{host}:9000"]).open()


def test_send_before_open_is_an_error():
    with pytest.raises(SinkError, match="not open"):
        OscSink(OscMapping(), ["127.0.0.1:9"]).send(events())


@pytest.mark.parametrize("spec, expected", [("127.0.0.1:9000", ("127.0.0.1", 9000)), ("host:1", ("host", 1)),
                                            ("[::1]:7000", ("::1", 7000))])
def test_parse_destination(spec, expected):
    assert parse_destination(spec) == expected


@pytest.mark.parametrize("spec", ["9000", "host:", ":9000", "host:0", "host:70000", "host:port", "[::1]",
                                  "localhost:9000:1", "::1:9000"])
def test_parse_destination_rejects(spec):
    with pytest.raises(ParameterError, match="HOST:PORT"):
        parse_destination(spec)


class _FlakySocket:
    """Wraps a UDP socket: sends to ``bad_port`` fail as a lost route does."""

    def __init__(self, sock, bad_port):
        self.sock, self.bad_port = sock, bad_port

    def sendto(self, data, addr):
        if addr[1] == self.bad_port:
            raise OSError(113, "No route to host")
        return self.sock.sendto(data, addr)

    def close(self):
        self.sock.close()


def test_a_destination_that_fails_mid_run_is_counted_and_the_others_get_everything():
    good, bad = Receiver(), Receiver()
    said = []
    try:
        sink = OscSink(Mapping.default(LABELS).osc, [f"127.0.0.1:{bad.port}", f"127.0.0.1:{good.port}"],
                       on_fault=said.append)
        with sink:
            fam = next(iter(sink._socks))
            sink._socks[fam] = _FlakySocket(sink._socks[fam], bad.port)
            sink.send(events())  # no exception: the show goes on
            sink.send([TagOn(3.0, time.time(), 0, "drums", 0.9)])
            assert sink.send_errors == {f"127.0.0.1:{bad.port}": 5}
            assert said == [f"OSC send to 127.0.0.1:{bad.port} failed: No route to host; going on (failures are "
                            f"counted)"]  # once
        got = good.wait_for(6)
        assert [m for m in got if m[0].endswith(("/on", "/off"))] == [
            ("/rtclassify/on", ("piano",)), ("/rtclassify/off", ("piano",)), ("/rtclassify/on", ("drums",)),
            ("/rtclassify/off", ("drums",))]  # drums' /off at close
        assert sink.fault == f"OSC to 127.0.0.1:{bad.port}: 6 datagram(s) not sent (No route to host)"
    finally:
        good.close()
        bad.close()


def test_a_large_batch_is_split_into_bundles_under_the_datagram_limit(raw_rx):
    from rtclassify.sinks.osc import MAX_DATAGRAM

    raw_rx.settimeout(0.5)
    channels = range(64)
    sink = OscSink(OscMapping(bundle=True), [("127.0.0.1", raw_rx.getsockname()[1])], streams=channels)
    t = time.time()
    batch = [e for c in channels for e in (TagOn(1.0, t, c, "piano", 0.8), TagLevel(1.0, t, c, "piano", 0.8),
                                           TagLevel(1.0, t, c, "speech", 0.3), TagLevel(1.0, t, c, "drums", 0.2))]
    with sink:
        sink.send(batch)
        sink.send([TagOff(2.0, t, c, "piano") for c in channels])
    sizes, ons, offs = [], 0, 0
    while True:
        try:
            data = raw_rx.recv(70000)
        except socket.timeout:
            break
        sizes.append(len(data))
        b = OscBundle(data)
        for m in b:
            ons += m.address.endswith("/on")
            offs += m.address.endswith("/off")
    assert len(sizes) > 2 and max(sizes) <= MAX_DATAGRAM
    assert ons == 64 and offs == 64 and not sink.send_errors


@pytest.mark.parametrize("dest", ["255.255.255.255", "subnet"])
def test_broadcast_destination_reaches_a_receiver(dest):
    """A broadcast destination was refused at start ("Permission denied": no SO_BROADCAST on the socket)."""
    import ipaddress

    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("0.0.0.0", 0))
    r.settimeout(5)
    port = r.getsockname()[1]
    if dest == "subnet":
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect(("192.0.2.1", 9))  # no packet: asks which local address routes outwards
            local = probe.getsockname()[0]
        except OSError:
            pytest.skip("no IPv4 route out of this machine")
        finally:
            probe.close()
        if local.startswith("127."):
            pytest.skip("no IPv4 network interface")
        dest = str(ipaddress.ip_network(f"{local}/24", strict=False).broadcast_address)
    sink = OscSink(Mapping.default(LABELS).osc, [f"{dest}:{port}"])
    try:
        sink.open()
        sink.send(events())
        data, _ = r.recvfrom(65536)
    except OSError as exc:
        if getattr(exc, "errno", None) in (101, 113) or isinstance(exc, socket.timeout):
            pytest.skip(f"broadcast to {dest} does not reach this machine's own sockets here: {exc}")
        raise
    finally:
        sink.close()
        r.close()
    assert b"/rtclassify/on" in data


def test_a_missing_python_osc_is_named_when_the_sink_opens(monkeypatch):
    # it was found at the first message, after the run had started, as a bare ModuleNotFoundError
    from rtclassify.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, 'pythonosc', None)  # as where it is not installed
    sink = OscSink(OscMapping(), [("127.0.0.1", 9)])
    with pytest.raises(MissingDependencyError, match="pip install python-osc"):
        sink.open()


def test_a_name_with_ipv6_and_ipv4_addresses_is_sent_to_its_ipv4_one(monkeypatch):
    """`--osc localhost:PORT` where /etc/hosts lists `::1 localhost` first (Debian, Ubuntu, macOS): the sink sent
    to ::1 only, which a receiver listening on IPv4 (as most visuals software does) never gets, and nothing was
    said. An IPv6 literal keeps IPv6."""
    real = socket.getaddrinfo

    def both(host, port, *a, **kw):
        if host == "localhost":
            return [(socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("::1", port, 0, 0)),
                    (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", port))]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", both)
    r = Receiver()
    try:
        sink = OscSink(Mapping.default(LABELS).osc, [f"localhost:{r.port}"])
        with sink:
            assert [family for family, _ in sink._addrs] == [socket.AF_INET]
            sink.send([TagOn(0.5, time.time(), 0, "drums", 0.9)])
        assert r.wait_for(1)[0] == ("/rtclassify/on", ("drums",))
    finally:
        r.close()

    class NoIPv4Route(socket.socket):  # an IPv6-only network: the IPv6 address is taken, not a refusal
        def connect(self, address):
            if self.family == socket.AF_INET:
                raise OSError(101, "Network is unreachable")
            return super().connect(address)

    import rtclassify.sinks.osc as osc_mod

    monkeypatch.setattr(osc_mod, "_udp_socket", lambda family: NoIPv4Route(family, socket.SOCK_DGRAM))
    sink = OscSink(Mapping.default(LABELS).osc, ["localhost:9"])
    try:
        sink.open()
    except SinkError as exc:  # no IPv6 loopback on this machine either
        assert "unreachable: Network is unreachable" in str(exc)
    else:
        assert [family for family, _ in sink._addrs] == [socket.AF_INET6]
        sink.close()
    monkeypatch.undo()
    if socket.has_ipv6:
        try:
            sink = OscSink(Mapping.default(LABELS).osc, ["[::1]:9"])
            sink.open()
        except SinkError:  # no IPv6 loopback on this machine
            return
        assert [family for family, _ in sink._addrs] == [socket.AF_INET6]
        sink.close()


class _HealingSocket(_FlakySocket):
    """A socket whose sends to one port fail until ``healed``."""

    healed = False

    def sendto(self, data, addr):
        if addr[1] == self.bad_port and not self.healed:
            raise OSError(113, "No route to host")
        return self.sock.sendto(data, addr)


def test_a_destination_that_works_again_is_said_and_a_new_outage_too():
    """A monitor of an unattended run saw the first failure only, never that sending worked again nor a second
    outage: each outage's first failure and the first send after it are said."""
    r = Receiver()
    said = []
    try:
        with OscSink(Mapping.default(LABELS).osc, [f"127.0.0.1:{r.port}"], on_fault=said.append) as sink:
            fam = next(iter(sink._socks))
            flaky = sink._socks[fam] = _HealingSocket(sink._socks[fam], r.port)
            sink.send([TagOn(1.0, time.time(), 0, "piano", 0.9)])
            sink.send([TagOff(2.0, time.time(), 0, "piano")])
            flaky.healed = True
            sink.send([TagOn(3.0, time.time(), 0, "drums", 0.9)])
            flaky.healed = False
            sink.send([TagOff(4.0, time.time(), 0, "drums")])
            flaky.healed = True
            sink.send([TagOn(5.0, time.time(), 0, "speech", 0.9)])
        dest = f"127.0.0.1:{r.port}"
        assert said == [f"OSC send to {dest} failed: No route to host; going on (failures are counted)",
                        f"OSC send to {dest} works again (2 datagram(s) not sent so far)",
                        f"OSC send to {dest} failed: No route to host; going on (failures are counted)",
                        f"OSC send to {dest} works again (3 datagram(s) not sent so far)"]
    finally:
        r.close()


def _route(port):
    return socket.AF_INET, ("127.0.0.1", port)


def test_a_host_waited_for_gets_its_messages_once_it_resolves(monkeypatch):
    """`--osc-wait`: a run started at boot before the network is up refused to start (the host could not be
    resolved, or had no route); with wait=True it starts, says so, drops that host's messages meanwhile and
    sends to it once a lookup succeeds (tried every WAIT_RETRY seconds, off the sending thread)."""
    import rtclassify.sinks.osc as osc

    r = Receiver()
    up = threading.Event()

    def resolve(host, port, keep=None):
        if host == "visuals.local" and not up.is_set():
            raise SinkError(f"OSC host {host!r} cannot be resolved: Name or service not known")
        return _route(r.port)

    monkeypatch.setattr(osc, "_resolve", resolve)
    monkeypatch.setattr(osc, "WAIT_RETRY", 0.05)
    said = []
    try:
        with pytest.raises(SinkError, match="cannot be resolved"):  # without wait: refused, as before
            OscSink(Mapping.default(LABELS).osc, [f"visuals.local:{r.port}"]).open()
        sink = OscSink(Mapping.default(LABELS).osc, [f"visuals.local:{r.port}"], on_fault=said.append, wait=True)
        with sink:
            sink.send([TagOn(1.0, time.time(), 0, "piano", 0.9)])  # dropped: not there yet
            assert sink.datagrams_sent == 0 and not sink.send_errors
            up.set()
            end = time.monotonic() + 5.0
            while not sink._addrs and time.monotonic() < end:
                time.sleep(0.01)
            sink.send([TagOn(2.0, time.time(), 0, "drums", 0.9)])
        got = r.wait_for(1)
        assert ("/rtclassify/on", ("drums",)) in got and ("/rtclassify/on", ("piano",)) not in got
        assert said[0] == ("OSC host 'visuals.local' cannot be resolved: Name or service not known; waiting for it "
                           "(its messages are dropped until it resolves and has a route)")
        assert said[1] == f"OSC host visuals.local:{r.port} reached at 127.0.0.1:{r.port}: its messages go out from now on"
        assert sink.fault is None
        never = OscSink(Mapping.default(LABELS).osc, ["other.local:9000"], on_fault=said.append, wait=True)
        up.clear()
        monkeypatch.setattr(osc, "_resolve", lambda h, p, keep=None: (_ for _ in ()).throw(
            SinkError(f"OSC host {h!r} cannot be resolved: Name or service not known")))
        with never:
            never.send([TagOn(1.0, time.time(), 0, "piano", 0.9)])
        assert never.fault == "OSC host other.local:9000 was never reached"
    finally:
        r.close()


def test_a_name_is_looked_up_again_during_the_run(monkeypatch):
    """A receiver whose address changed (DHCP) got nothing until the next start: the name was resolved once.
    It is looked up again every RESOLVE_EVERY seconds, and the messages follow the new address."""
    import rtclassify.sinks.osc as osc

    old, new = Receiver(), Receiver()
    target = [old.port]
    monkeypatch.setattr(osc, "_resolve", lambda host, port, keep=None: _route(target[0]))
    monkeypatch.setattr(osc, "RESOLVE_EVERY", 0.05)
    monkeypatch.setattr(osc, "WAIT_RETRY", 0.05)
    said = []
    try:
        with OscSink(Mapping.default(LABELS).osc, ["visuals.local:9000"], on_fault=said.append) as sink:
            sink.send([TagOn(1.0, time.time(), 0, "piano", 0.9)])
            target[0] = new.port
            end = time.monotonic() + 5.0
            while sink._addrs[0][1][1] != new.port and time.monotonic() < end:
                time.sleep(0.01)
            sink.send([TagOn(2.0, time.time(), 0, "drums", 0.9)])
        assert ("/rtclassify/on", ("piano",)) in old.wait_for(1)
        assert ("/rtclassify/on", ("drums",)) in new.wait_for(1)
        assert ("/rtclassify/on", ("drums",)) not in old.messages
        assert said == [f"OSC host visuals.local:9000 now resolves to 127.0.0.1:{new.port} (was 127.0.0.1:{old.port}): "
                        f"its messages go there from now on"]
    finally:
        old.close()
        new.close()


def test_an_ip_address_is_not_looked_up_again(monkeypatch):
    import rtclassify.sinks.osc as osc

    monkeypatch.setattr(osc, "RESOLVE_EVERY", 0.01)
    before = {t.name for t in threading.enumerate()}
    with OscSink(Mapping.default(LABELS).osc, ["127.0.0.1:9"]):
        assert "rtclassify-osc-resolve" not in {t.name for t in threading.enumerate()} - before


def test_a_name_with_several_addresses_keeps_the_one_in_use(monkeypatch):
    """A name whose addresses come in another order at each lookup (round-robin DNS, a host on wired and
    wireless networks) moved the destination back and forth every 30 s: the address in use is kept while it is
    still one of the name's."""
    import rtclassify.sinks.osc as osc

    a = (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.2", 9000))
    b = (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.3", 9000))
    answers = [[a, b], [b, a], [b]]
    monkeypatch.setattr(osc.socket, "getaddrinfo", lambda *args, **kw: answers.pop(0))
    first = osc._resolve("visuals.local", 9000)
    assert first == (socket.AF_INET, ("127.0.0.2", 9000))
    assert osc._resolve("visuals.local", 9000, keep=first) == first  # answered b first: a kept
    assert osc._resolve("visuals.local", 9000, keep=first) == (socket.AF_INET, ("127.0.0.3", 9000))  # a gone


def test_the_fault_line_can_be_read_while_a_send_fails_for_the_first_time():
    """Listener.counters(), which a host may call from any thread, reads every output's fault: a destination
    counted before its first error was kept raised KeyError there."""
    sink = OscSink(Mapping.default(LABELS).osc, ["127.0.0.1:9"])
    sink.send_errors["127.0.0.1:9"] = 1  # (the moment between the two updates of a first failure)
    assert sink.fault == "OSC to 127.0.0.1:9: 1 datagram(s) not sent (failed)"
