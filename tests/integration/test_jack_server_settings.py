"""``rtclassify listen`` on JACK servers set up unlike the rig's 48 kHz / 256 frames: other rates, long
and short periods, a ``--blocksize`` that differs from the period, a ``--samplerate`` the server does not run at.

Each test starts its own dummy JACK server, runs ``listen --device system`` on it, plays piano.wav (resampled
to the server's rate) into the listener's PortAudio input port and stops it with Ctrl-C (SIGINT).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def _listen_to_piano(tmp_path, rate: int, period: int, *args: str) -> dict:
    """Play 2.5 s of piano.wav into ``listen`` on a ``rate``/``period`` server, then Ctrl-C; what came out."""
    import soxr

    from _jackd import JackServer
    from jack_rig import RATE, Player, Segment, choose_bundle, portaudio_input, program, start_listener

    model = choose_bundle(tmp_path, files=("piano.wav",))
    audio48, segs = program(["piano.wav"], 1, 1.5, lead_s=0.5)
    audio = soxr.resample(audio48, RATE, rate).astype(np.float32)
    segments = [Segment(s.file, s.start * rate // RATE, s.end * rate // RATE) for s in segs]
    log = tmp_path / "events.jsonl"
    with JackServer(rate, period) as server:
        cmd = [sys.executable, "-m", "rtclassify", "listen", "--device", "system", "--bundle", str(model.path),
               "--no-display", "--log", str(log), "--duration", "90", *args]
        listen = start_listener(cmd, dict(server.env, PYTHONUNBUFFERED="1"))
        player = None
        try:
            pa_in = portaudio_input(server)
            player = Player(server, audio, segments)
            server.connect(player.port_name, pa_in)
            time.sleep(0.5)
            player.play()
            assert player.done.wait(audio.shape[0] / rate + 30), "the player did not finish"
            time.sleep(1.0)
            listen.send_signal(signal.SIGINT)
            out, err = listen.communicate(timeout=60)
        finally:
            if listen.poll() is None:
                listen.kill()
                out, err = listen.communicate()
            if player is not None:
                player.close()
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    status = [e for e in events if e.get("event") == "status"]
    return {"returncode": listen.returncode, "stderr": err, "events": events, "expected": model.expected["piano.wav"],
            "final": status[-1] if status else {}}


def _check_clean_run(r: dict) -> None:
    """Exit 0 after Ctrl-C, the piano's tag on and every tag off again, nothing dropped."""
    from jack_rig import log_pairing_problems

    err = r["stderr"]
    assert r["returncode"] == 0, err
    assert "Traceback" not in err and "no audio from" not in err, err
    summary = [line for line in err.splitlines() if line.startswith("rtclassify listen:")][-1]
    assert "interrupted (Ctrl-C)" in summary and "dropped 0 samples" in summary, summary
    ons = [e["tag"] for e in r["events"] if e.get("event") == "on"]
    assert r["expected"] in ons, f"{r['expected']} never turned on: {ons}"
    assert not log_pairing_problems(r["events"])
    final = r["final"]
    assert final["dropped_samples"] == 0 and final["callback_errors"] == 0
    assert final["samples_processed"] == final["samples_in"] > 0


def test_44k1_server_with_a_long_period_under_the_default_blocksize(rig_available, tmp_path):
    """44.1 kHz, 4096-frame period, listen's 256-frame blocks: the device latency is at least one period.

    PortAudio's JACK host API reports 0 input latency for the stream and delivers the period as 16 blocks
    at once, so "one block plus the reported latency" said 5.8 ms for a wait of 92.9 ms.
    """
    rate, period = 44100, 4096
    r = _listen_to_piano(tmp_path, rate, period)
    _check_clean_run(r)
    assert r["final"]["latency_device_ms"] >= 1e3 * period / rate - 1e-6, r["final"]


def test_96k_server_with_a_short_period_under_a_long_blocksize(rig_available, tmp_path):
    """96 kHz, 128-frame period, ``--blocksize 2048``: PortAudio gathers 16 periods per block."""
    rate, period, block = 96000, 128, 2048
    r = _listen_to_piano(tmp_path, rate, period, "--blocksize", str(block))
    _check_clean_run(r)
    assert r["final"]["latency_device_ms"] == pytest.approx(1e3 * block / rate), r["final"]


def test_samplerate_the_server_does_not_run_at_is_one_line(rig_available, tmp_path):
    from _jackd import JackServer
    from jack_rig import OUTSIDE, choose_bundle

    model = choose_bundle(tmp_path, files=("piano.wav",))
    with JackServer(96000, 512) as server:
        r = subprocess.run([sys.executable, "-m", "rtclassify", "listen", "--device", "system", "--bundle",
                            str(model.path), "--no-display", "--duration", "5", "--samplerate", "48000"],
                           env=server.env, capture_output=True, text=True, timeout=60, cwd=OUTSIDE)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("rtclassify listen: error: input device 0 'system'"), lines[0]
    assert "96000 Hz" in lines[0] and "48000 Hz" in lines[0], lines[0]
