"""The JACK server stops while MIDI goes out over JACK, and the audio does not come from JACK.

python-rtmidi's JACK output reports nothing when the server stops; it queues every message, and once
its ring buffer is full (about 2,300 messages) ``send_message`` waits for space forever. Without a
check of our own the listener's worker hangs in the MIDI sink, or the run goes on with its MIDI lost
without a word. :class:`rtclassify.sinks.jack_watch.JackServerWatch` notices the shutdown.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.integration


def test_demo_stops_with_one_line_when_the_jack_server_stops(rig_available, tmp_path):
    from _jackd import JackServer
    from jack_rig import OUTSIDE

    log = tmp_path / "events.jsonl"
    server = JackServer(48000, 256).start()
    demo = None
    try:
        demo = subprocess.Popen(
            [sys.executable, "-m", "rtclassify", "demo", "--no-display", "--log", str(log), "--midi-api", "jack",
             "--midi-virtual", "tags"],
            env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=OUTSIDE)
        end = time.monotonic() + 60
        while time.monotonic() < end and demo.poll() is None and \
                not (log.exists() and '"on"' in log.read_text(errors="replace")):
            time.sleep(0.1)
        assert demo.poll() is None, demo.communicate()[1]
        assert '"on"' in log.read_text(errors="replace"), "no tag turned on before the server stopped"
        server.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        out, err = demo.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if demo is not None and demo.poll() is None:
            demo.kill()
            demo.communicate()
        server.stop()
    assert demo.returncode == 1, err
    ours = [line for line in err.splitlines() if line.startswith("rtclassify")]
    assert "lost: the JACK server stopped" in ours[-1], err
    assert "Traceback" not in err
    assert took < 10, f"took {took:.1f} s to stop"


_SENDER = textwrap.dedent("""
    import sys, time
    from rtclassify.detect.events import TagLevel, TagOn
    from rtclassify.errors import SinkError
    from rtclassify.sinks.mapping import Mapping
    from rtclassify.sinks.midi import MidiSink

    sink = MidiSink(Mapping.default(["piano", "organ"]).midi, virtual="tags", api="jack")
    sink.open()
    sink.send([TagOn(0.0, tag="piano", prob=0.9)])
    print("open", flush=True)
    sys.stdin.readline()  # the server is stopped meanwhile
    try:  # the listener's look every status interval says it without a send (no audio comes either)
        sink.status({})
        print("status: nothing said", flush=True)
    except SinkError as exc:
        print(f"status: {exc}", flush=True)
    n = 0
    try:
        for i in range(20000):  # far more than python-rtmidi's ring buffer holds
            sink.send([TagLevel(0.01 * i, tag="organ", prob=(i % 100) / 100)])
            n += 1
    except SinkError as exc:
        print(f"after {n}: {exc}", flush=True)
    t0 = time.monotonic()
    sink.close()
    print(f"closed {time.monotonic() - t0:.2f} {sink.sounding}", flush=True)
""")


def test_midi_sink_raises_instead_of_hanging(rig_available):
    """In a process of its own: on a regression the sends would spin forever in python-rtmidi."""
    from _jackd import JackServer
    from jack_rig import OUTSIDE

    server = JackServer(48000, 256).start()
    p = subprocess.Popen([sys.executable, "-c", _SENDER], env=server.env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=OUTSIDE)
    try:
        assert p.stdout.readline().strip() == "open", p.stderr.read()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(10)
        time.sleep(0.2)
        out, err = p.communicate("go\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        server.stop()
    lines = out.strip().splitlines()
    assert lines[0].startswith("status: MIDI output 'rtclassify:tags' lost: the JACK server stopped"), out + err
    assert lines[1].startswith("after 0: MIDI output 'rtclassify:tags' lost: the JACK server stopped"), out + err
    assert lines[2].startswith("closed ") and lines[2].endswith("{}"), out  # no note-off queued behind a dead server
    assert float(lines[2].split()[1]) < 5
