"""The live commands from the outside: ``rtclassify devices``, ``listen``, ``demo`` (run as subprocesses)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid

import pytest

pytest.importorskip("onnx")

from _rtc_bundle import write_bundle  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(write_bundle(tmp_path_factory.mktemp("bundle")))


def env():
    # a JACK server name nobody runs: PortAudio and rtmidi see no JACK server
    return dict(os.environ, JACK_DEFAULT_SERVER=f"none{uuid.uuid4().hex[:6]}", JACK_NO_START_SERVER="1",
                COLUMNS="100")


def rtc(*args, timeout=120):
    # run from outside the checkout: `python -m` puts the working directory first on sys.path, and the
    # package to test is the installed one (in CI the checkout has no compiled extension)
    return subprocess.run([sys.executable, "-m", "rtclassify", *args], capture_output=True, text=True,
                          timeout=timeout, env=env(), cwd=tempfile.gettempdir())


def our_lines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.startswith("rtclassify")]


@pytest.mark.parametrize("cmd, words", [
    ("listen", ["--device", "--channel", "--mix", "--samplerate", "--blocksize", "--midi", "--midi-virtual",
                "--midi-api", "--osc", "--map", "--backend", "--bundle", "--hop", "--duration", "--no-display",
                "--log"]),
    ("devices", ["--midi", "--json"]),
    ("demo", ["--no-display", "--duration", "--log", "--osc"]),
])
def test_help(cmd, words):
    r = rtc(cmd, "--help")
    assert r.returncode == 0
    for w in words:
        assert w in r.stdout, w


@pytest.mark.parametrize("args, words", [
    (["listen", "--channel", "1", "--mix"], "not allowed with argument"),
    (["listen", "--osc", "nohost"], "HOST:PORT"),
    (["listen", "--osc", "host:99999"], "HOST:PORT"),
    (["listen", "--blocksize", "3"], "16-65536"),
    (["listen", "--midi", "a", "--midi-virtual", "b"], "not allowed with argument"),
    (["listen", "--midi-api", "coreaudio"], "invalid choice"),
    (["listen", "--samplerate", "fast"], "whole number of Hz"),
    (["demo", "--duration", "-1"], "must be > 0"),
    (["demo", "--hop", "0"], "must be > 0"),
])
def test_wrong_arguments_are_one_line_and_exit_2(args, words):
    r = rtc(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert words in lines[-1]
    assert "Traceback" not in r.stderr


def test_demo_runs_the_live_engine_and_logs(tmp_path, bundle):
    log = tmp_path / "ev.jsonl"
    r = rtc("demo", "--bundle", bundle, "--no-display", "--duration", "2.5", "--speed", "4", "--log", str(log))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    out = r.stdout.splitlines()
    assert any(" on " in l for l in out) and any(" off " in l for l in out)
    summary = our_lines(r.stderr)[-1]
    assert summary.startswith("rtclassify demo: stopped after") and "dropped 0 samples" in summary
    recs = [json.loads(l) for l in log.read_text().splitlines()]
    kinds = {e["event"] for e in recs}
    assert {"on", "off", "level", "status"} <= kinds
    ons = [e for e in recs if e["event"] == "on"]
    assert all({"stream_time", "wall_time", "channel", "tag", "prob"} <= set(e) for e in ons)
    # every tag that turned on turned off by the end (clean stop)
    state = {}
    for e in recs:
        if e["event"] in ("on", "off"):
            state[e["tag"]] = e["event"]
    assert set(state.values()) == {"off"}
    assert recs[-1]["event"] == "status" and recs[-1]["dropped_samples"] == 0


def test_demo_with_display_draws_the_tags(bundle):
    r = rtc("demo", "--bundle", bundle, "--duration", "1.5", "--speed", "4")
    assert r.returncode == 0, r.stderr
    for tag in ("low", "high", "any"):
        assert tag in r.stdout
    assert "latency ms" in r.stdout and "dropped" in r.stdout


def test_demo_sends_osc(bundle):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    try:
        r = rtc("demo", "--bundle", bundle, "--no-display", "--duration", "1.5", "--speed", "4", "--osc",
                f"127.0.0.1:{rx.getsockname()[1]}")
        assert r.returncode == 0, r.stderr
        got = []
        while True:
            try:
                got.append(rx.recv(65536))
            except TimeoutError:
                break
    finally:
        rx.close()
    from pythonosc.osc_message import OscMessage

    addrs = {OscMessage(d).address for d in got}
    assert "/rtclassify/on" in addrs and "/rtclassify/tag/any" in addrs


def test_bad_mapping_file_is_one_line(tmp_path, bundle):
    m = tmp_path / "m.toml"
    m.write_text("[midi]\nchannel = 1\n\n[midi.tags.any]\nnote = 300\n")
    r = rtc("demo", "--bundle", bundle, "--no-display", "--duration", "1", "--map", str(m))
    assert r.returncode == 1
    assert our_lines(r.stderr) == [f"rtclassify demo: error: {m}:5: midi.tags.any.note: must be an integer 0-127 "
                                   f"(or -1 for off), got 300"]


def test_log_to_stdout_needs_no_display(bundle):
    r = rtc("demo", "--bundle", bundle, "--duration", "1", "--log", "-")
    assert r.returncode == 1
    assert "add --no-display" in our_lines(r.stderr)[-1]


def test_log_to_stdout_with_no_display(bundle):
    r = rtc("demo", "--bundle", bundle, "--no-display", "--duration", "1.5", "--speed", "4", "--log", "-")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    assert recs and all("event" in e for e in recs)


def test_missing_device_is_one_line(bundle):
    r = rtc("listen", "--bundle", bundle, "--device", "99", "--no-display", "--duration", "1")
    assert r.returncode == 1
    lines = our_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("rtclassify listen: error: no input device with index 99; ")
    assert "Traceback" not in r.stderr


def test_missing_bundle_is_one_line(tmp_path):
    r = rtc("demo", "--bundle", str(tmp_path / "nope"), "--no-display", "--duration", "1")
    assert r.returncode == 1
    assert len(our_lines(r.stderr)) == 1 and "nope" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_midi_port_lists_ports(bundle):
    # without a JACK server the JACK MIDI system itself is missing: one line saying so
    r = rtc("demo", "--bundle", bundle, "--no-display", "--duration", "1", "--midi-api", "jack", "--midi", "x")
    assert r.returncode == 1
    assert our_lines(r.stderr)[-1].startswith("rtclassify demo: error: cannot open the jack MIDI system: "
                                              "is the JACK server running?")


def test_devices_runs_without_any_device():
    r = rtc("devices")
    assert r.returncode == 0
    assert ("index" in r.stdout and "host API" in r.stdout) or "No audio input device exists" in r.stderr
    r = rtc("devices", "--json")
    assert r.returncode == 0
    assert isinstance(json.loads(r.stdout)["audio_inputs"], list)
