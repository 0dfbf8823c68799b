"""End to end on a real audio server: recordings played into JACK, ``rtclassify listen`` on it,
MIDI received by jack_midi_dump, OSC by oscdump.

Setup (see jack_rig.py): ``jackd -d dummy -r 48000 -p 256``; a JACK client plays piano.wav then
speech-female.wav twice, with 2.5 s of silence after each, into the listener's PortAudio input port;
``rtclassify listen --midi-api jack --midi-virtual NAME --osc 127.0.0.1:PORT --no-display --log``
runs on the server's PortAudio device and is stopped with Ctrl-C (SIGINT) after the playback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid

import pytest

from rtclassify.sinks.mapping import Mapping

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rig(rig_available, tmp_path_factory):
    from jack_rig import run_rig, summary

    r = run_rig(tmp_path_factory.mktemp("rig"), rounds=2)
    print(f"\n[jack e2e] model: {r.model.description}")
    print(f"[jack e2e] {r.counters_line()}")
    print(f"[jack e2e] sound-to-MIDI latency: {summary(r.latencies('midi'))}")
    print(f"[jack e2e] sound-to-OSC latency:  {summary(r.latencies('osc'))}")
    print(f"[jack e2e] JACK xruns during playback (late clients): {r.xruns_during_play or 'none'}")
    return r


def test_listen_stops_cleanly_on_ctrl_c(rig):
    assert rig.returncode == 0, rig.stderr
    assert "Traceback" not in rig.stderr
    assert "interrupted (Ctrl-C)" in rig.counters_line()


def test_expected_tags_turn_on_and_off_in_their_segments(rig):
    from jack_rig import RATE

    # the event log's on/off events, in the listener's stream time: sound and silence alternate
    ons = [(e["stream_time"], e["tag"]) for e in rig.log_events if e.get("event") == "on"]
    offs = [(e["stream_time"], e["tag"]) for e in rig.log_events if e.get("event") == "off"]
    for seg in rig.segments:
        tag = rig.model.expected[seg.file]
        assert seg.sound_wall is not None
        # MIDI: the tag's note went on after the sound entered the server and off before the next segment
        note = rig.notes[tag]
        on_t = [t for t, m in rig.midi if m[0] == 0x90 and m[1] == note and m[2] > 0 and t >= seg.sound_wall]
        assert on_t, f"{tag} (note {note}) never turned on for {seg.file}"
        dur = (seg.end - seg.start) / RATE
        assert on_t[0] - seg.sound_wall < dur, f"{tag} turned on only after {seg.file} ended"
        off_t = [t for t, m in rig.midi if m[0] == 0x80 and m[1] == note and t > on_t[0]]
        assert off_t, f"{tag} never turned off after {seg.file}"
        assert off_t[0] - seg.sound_wall < dur + 2.5, f"{tag} stayed on through the silence after {seg.file}"
    assert len(ons) >= len(rig.segments) and len(offs) == len(ons)


def test_every_note_on_has_its_note_off_and_messages_are_well_formed(rig):
    from jack_rig import check_note_pairing, log_pairing_problems

    assert rig.midi, "jack_midi_dump received nothing"
    tech = Mapping.default(rig.model.labels).midi.technique
    # tag notes and level CCs, plus the technique trackers' notes (vibrato, tremolo) and CCs (pitch, rates, depths)
    valid_notes = set(rig.notes.values()) | {tech.vibrato_note, tech.tremolo_note}
    valid_ccs = set(range(20, 20 + len(rig.model.labels))) | {
        tech.pitch_cc, tech.vibrato_rate_cc, tech.vibrato_depth_cc, tech.tremolo_rate_cc, tech.tremolo_depth_cc}
    for _, m in rig.midi:
        assert len(m) == 3 and m[0] in (0x90, 0x80, 0xB0), m
        assert all(0 <= b < 128 for b in m[1:]), m
        if m[0] == 0x90:
            assert m[1] in valid_notes and m[2] > 0, m
        elif m[0] == 0xB0:
            assert m[1] in valid_ccs, m
    assert not log_pairing_problems(rig.log_events)
    check_note_pairing(rig.midi, rig.xruns_after_start, rig.monitor)
    # the raw dump has no line we could not parse as a MIDI message
    stray = [l for _, l in rig.midi_raw if l.strip() and ":" in l and "note" not in l and "control" not in l]
    assert not stray, stray


def test_osc_messages_are_well_formed_and_paired(rig):
    assert rig.osc, "oscdump received nothing"
    labels = set(rig.model.labels)
    active = set()
    for _, addr, types, vals in rig.osc:
        if addr in ("/rtclassify/on", "/rtclassify/off"):
            assert types == "s" and vals[0] in labels, (addr, types, vals)
            if addr.endswith("on"):
                assert vals[0] not in active
                active.add(vals[0])
            else:
                assert vals[0] in active
                active.discard(vals[0])
        elif addr == "/rtclassify/pitch":
            assert types == "f" and 40.0 <= vals[0] <= 2200.0, (addr, types, vals)  # f0 in Hz, sent only while voiced
        elif addr in ("/rtclassify/vibrato", "/rtclassify/tremolo"):
            assert types == "ff" and all(v >= 0.0 for v in vals), (addr, types, vals)  # rate, extent or depth
        else:
            assert addr.startswith("/rtclassify/tag/") and addr.rsplit("/", 1)[1] in labels, addr
            assert types == "f" and 0.0 <= vals[0] <= 1.0, (addr, types, vals)
    assert not active, f"tags left on: {active}"
    assert len(rig.osc) == len(rig.osc_raw), "oscdump printed lines that are not well-formed messages"


def test_nothing_was_dropped(rig):
    final = rig.final_counters
    assert final, "the event log has no status line"
    assert final["dropped_samples"] == 0
    assert final["samples_processed"] == final["samples_in"] > 0
    # JACK xruns (reported as input overflows) depend on the machine's load, not on the engine: printed above
    assert rig.during_play("dropped_samples") == 0


def test_log_and_messages_agree(rig):
    on_log = [e["tag"] for e in rig.log_events if e.get("event") == "on"]
    on_osc = [v[0] for _, a, _, v in rig.osc if a == "/rtclassify/on"]
    on_midi = [m[1] for _, m in rig.midi if m[0] == 0x90]
    assert on_log == on_osc
    assert on_midi == [rig.notes[t] for t in on_log]


def test_device_loss_mid_stream_is_one_line_and_turns_tags_off(rig_available, tmp_path):
    """Kill the JACK server while a tag is on: listen exits 1 with one clear line; OSC gets the offs."""
    from _jackd import JackServer
    import jack_rig
    from jack_rig import OUTSIDE, RATE, LineReader, choose_bundle, free_udp_port, parse_osc, wait_for_port

    model = choose_bundle(tmp_path)
    server = JackServer(RATE, 256).start()
    osc_rx = None
    listen = None
    player = None
    try:
        port = free_udp_port()
        osc_rx = LineReader(["oscdump", "-L", str(port)], server.env)
        listen = subprocess.Popen(
            [sys.executable, "-m", "rtclassify", "listen", "--device", "system", "--bundle", str(model.path),
             "--osc", f"127.0.0.1:{port}", "--no-display", "--duration", "60"],
            env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=OUTSIDE)
        pa_in = [p for p in wait_for_port(server, ":in_0", timeout=30) if p.startswith("PortAudio")][0]
        # the player runs in its own process: it is still playing when its server dies (see jack_rig._play_forever)
        player = LineReader([sys.executable, jack_rig.__file__, "piano.wav", pa_in], server.env)
        end = time.monotonic() + 20
        while time.monotonic() < end and not any(l == "playing" for _, l in player.lines):
            time.sleep(0.05)
        assert any(l == "playing" for _, l in player.lines), f"the player did not start: {player.lines}"
        end = time.monotonic() + 20
        while time.monotonic() < end and not any("/rtclassify/on" in l for _, l in osc_rx.lines):
            time.sleep(0.1)
        assert any("/rtclassify/on" in l for _, l in osc_rx.lines), "no tag turned on before the kill"
        server.proc.send_signal(signal.SIGTERM)  # SIGKILL would leave a stale entry in JACK's server registry
        out, err = listen.communicate(timeout=30)
    finally:
        if listen is not None and listen.poll() is None:
            listen.kill()
            listen.communicate()
        server.stop()
        if player is not None:
            player.stop()
        time.sleep(0.3)
        if osc_rx is not None:
            osc_rx.stop()
    assert listen.returncode == 1, err
    ours = [l for l in err.splitlines() if l.startswith("rtclassify")]
    assert ours[-1].startswith("rtclassify listen: error: no audio from"), err
    assert "Traceback" not in err
    msgs = parse_osc(osc_rx.lines)
    on = {v[0] for _, a, _, v in msgs if a == "/rtclassify/on"}
    off = {v[0] for _, a, _, v in msgs if a == "/rtclassify/off"}
    assert on and on == off


def test_missing_device_and_midi_port_are_one_line(rig_available, tmp_path):
    from _jackd import JackServer
    from jack_rig import OUTSIDE, choose_bundle

    model = choose_bundle(tmp_path)
    with JackServer() as server:
        base = [sys.executable, "-m", "rtclassify", "listen", "--bundle", str(model.path), "--no-display",
                "--duration", "1"]
        r = subprocess.run(base + ["--device", "no-such-device"], env=server.env, capture_output=True, text=True,
                           timeout=60, cwd=OUTSIDE)
        assert r.returncode == 1
        # (PortAudio's device list is re-read before the device counts as missing)
        assert r.stderr.strip().splitlines()[-1].startswith(
            "rtclassify listen: error: no input device matches 'no-such-device'; input devices (the list was "
            "re-read): 0 'system'")
        r = subprocess.run(base + ["--device", "system", "--midi-api", "jack", "--midi", f"nope{uuid.uuid4().hex}"],
                           env=server.env, capture_output=True, text=True, timeout=60, cwd=OUTSIDE)
        assert r.returncode == 1
        assert "error: no MIDI port matches" in r.stderr and "MIDI ports:" in r.stderr
        assert "Traceback" not in r.stderr
        r = subprocess.run(base + ["--device", "system", "--osc", "no-such-host.invalid:9000"], env=server.env,
                           capture_output=True, text=True, timeout=60, cwd=OUTSIDE)
        assert r.returncode == 1
        assert r.stderr.strip().splitlines()[-1].startswith(
            "rtclassify listen: error: OSC host 'no-such-host.invalid' cannot be resolved")
