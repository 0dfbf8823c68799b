"""End to end with two streams on a real audio server: ``rtclassify listen --channels 0-1``.

Setup (see jack_rig.py): ``jackd -d dummy -r 48000 -p 256`` (two capture channels, so PortAudio's JACK
device has inputs ``in_0`` and ``in_1``); one JACK client plays piano.wav into ``in_0``, another plays
speech-female.wav into ``in_1``, starting a second later, twice each; ``rtclassify listen --channels 0-1``
sends MIDI (stream k on MIDI channel 1 + k) to jack_midi_dump and OSC (``/rtclassify/<channel>/...``) to
oscdump, and is stopped with Ctrl-C after the playback.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.integration

FILES = ("piano.wav", "speech-female.wav")  # stream 0 (in_0), stream 1 (in_1)


@pytest.fixture(scope="module")
def run(rig_available, tmp_path_factory):
    from _jackd import JackServer
    from jack_rig import (PERIOD, RATE, Player, Receivers, choose_bundle, parse_midi, parse_osc, portaudio_input,
                          program, start_listener, tear_down)
    from rtclassify.sinks.mapping import Mapping

    tmp = tmp_path_factory.mktemp("multi")
    model = choose_bundle(tmp, FILES)
    notes = {t: m.note for t, m in Mapping.default(model.labels).midi.tags.items()}
    plays = [program([FILES[0]], 2, 2.5, lead_s=1.0), program([FILES[1]], 2, 2.5, lead_s=2.0)]
    log = tmp / "events.jsonl"
    with JackServer(RATE, PERIOD) as server:
        env = dict(server.env, PYTHONUNBUFFERED="1")
        rx = Receivers(server, env)
        virt = f"tags{uuid.uuid4().hex[:4]}"
        duration = max(a.shape[0] for a, _ in plays) / RATE + 30.0
        listen = start_listener(
            [sys.executable, "-m", "rtclassify", "listen", "--device", "system", "--channels", "0-1",
             "--bundle", str(model.path), "--midi-api", "jack", "--midi-virtual", virt,
             "--osc", f"127.0.0.1:{rx.osc_port}", "--no-display", "--log", str(log), "--duration", f"{duration:.1f}"],
            env)
        players = []
        play_start = float("inf")
        try:
            rx.hear(f"rtclassify:{virt}")
            ins = [portaudio_input(server, k) for k in range(2)]
            for (audio, segs), pa_in in zip(plays, ins):
                p = Player(server, audio, segs)
                players.append(p)
                server.connect(p.port_name, pa_in)
            time.sleep(2.5)  # let the graph changes pass
            play_start = time.time()
            for p in players:
                p.play()
            for p in players:
                if not p.done.wait(p.audio.shape[0] / RATE + 20):
                    raise AssertionError("a player did not finish")
            time.sleep(1.5)
            listen.send_signal(signal.SIGINT)
            out, err = listen.communicate(timeout=60)
        finally:
            tear_down(listen, players, rx)
            xruns = server.xruns(play_start)
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    r = {"model": model, "notes": notes, "plays": plays, "midi": parse_midi(rx.midi.lines),
         "osc": parse_osc(rx.osc.lines), "log": events, "returncode": listen.returncode, "stdout": out,
         "stderr": err, "xruns": xruns, "monitor": rx.monitor}
    print(f"\n[jack multi] model: {model.description}")
    print(f"[jack multi] {[line for line in err.splitlines() if 'rtclassify listen:' in line][-1:]}")
    return r


def test_listen_with_two_streams_stops_cleanly(run):
    assert run["returncode"] == 0, run["stderr"]
    assert "Traceback" not in run["stderr"]
    assert "interrupted (Ctrl-C)" in run["stderr"]
    status = [e for e in run["log"] if e.get("event") == "status"]
    assert status and status[-1]["dropped_samples"] == 0
    assert status[-1]["session_streams"] == 2
    assert status[-1]["samples_processed"] == status[-1]["samples_in"] > 0


def test_each_stream_tags_its_own_recording_on_its_own_midi_channel(run):
    from jack_rig import late_midi_clients

    model, notes = run["model"], run["notes"]
    for k, f in enumerate(FILES):
        tag = model.expected[f]
        note = notes[tag]
        # the engine's decisions (the log, with the input channel)
        log_on = [e for e in run["log"] if e.get("event") == "on" and e["tag"] == tag and e["channel"] == k]
        assert len(log_on) >= 2, f"{tag} did not turn on twice on stream {k} for {f}"
        # OSC: /rtclassify/<channel>/on
        osc_on = [v for _, a, _, v in run["osc"] if a == f"/rtclassify/{k}/on" and v == [tag]]
        assert len(osc_on) == len(log_on)
        # MIDI on channel k + 1: the same, unless JACK dropped a late cycle of the sender or receiver
        ons = [t for t, m in run["midi"] if m[0] == 0x90 | k and m[1] == note and m[2] > 0]
        offs = [t for t, m in run["midi"] if m[0] == 0x80 | k and m[1] == note]
        assert (len(ons) == len(log_on) and len(offs) == len(ons)) or late_midi_clients(run["xruns"], run["monitor"]), \
            f"{tag} (note {note}) on MIDI channel {k + 1}: {len(ons)} on, {len(offs)} off; the log has {len(log_on)} on"


def test_messages_stay_on_the_streams_channels_and_are_paired(run):
    from jack_rig import check_note_pairing, log_pairing_problems

    assert run["midi"], "jack_midi_dump received nothing"
    for _, m in run["midi"]:
        kind, ch = m[0] & 0xF0, m[0] & 0x0F
        assert kind in (0x80, 0x90, 0xB0) and ch in (0, 1), m
    assert not log_pairing_problems(run["log"])
    check_note_pairing(run["midi"], run["xruns"], run["monitor"])
    assert {e["channel"] for e in run["log"] if e.get("event") in ("on", "off", "level")} == {0, 1}
    for _, addr, _, _ in run["osc"]:
        assert addr.startswith(("/rtclassify/0/", "/rtclassify/1/")), addr
    on_log = [(e["channel"], e["tag"]) for e in run["log"] if e.get("event") == "on"]
    on_osc = [(int(a.split("/")[2]), v[0]) for _, a, _, v in run["osc"] if a.endswith("/on")]
    assert on_log == on_osc
