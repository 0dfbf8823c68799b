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


def rtc(*args, timeout=120, extra_env=None):
    # run from outside the checkout: `python -m` puts the working directory first on sys.path, and the
    # package to test is the installed one (in CI the checkout has no compiled extension)
    return subprocess.run([sys.executable, "-m", "rtclassify", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(env(), **(extra_env or {})), cwd=tempfile.gettempdir())


def in_a_terminal(*args, extra_env=None, until: bytes = b"", then=(), timeout=60) -> tuple[int, str]:
    """Run ``rtclassify ARGS`` on a pseudo-terminal of 80x24 (its standard input, output and error), as in a
    terminal window: its exit status and all it wrote, with the terminal's "\\r\\n" read as "\\n".

    ``then``: signals sent to it 20 ms apart once it has written ``until``.
    """
    import fcntl
    import pty
    import struct
    import termios
    import threading
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    e = dict(env(), **{"TERM": "xterm-256color", **(extra_env or {})})
    for k in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE"):  # (the terminal's own size and kind)
        e.pop(k, None)
    p = subprocess.Popen([sys.executable, "-m", "rtclassify", *args], stdin=slave, stdout=slave, stderr=slave,
                         env=e, cwd=tempfile.gettempdir(), start_new_session=True)
    os.close(slave)
    out = bytearray()

    def read():
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:  # EIO: the program has ended (nothing holds the terminal any more)
                return
            if not b:
                return
            out.extend(b)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if then:
            end = time.monotonic() + timeout
            while until not in out:
                assert p.poll() is None and time.monotonic() < end, bytes(out).decode(errors="replace")
                time.sleep(0.05)
            for sig in then:
                p.send_signal(sig)
                time.sleep(0.02)
        code = p.wait(timeout)
        reader.join(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return code, bytes(out).decode(e.get("PYTHONIOENCODING") or "utf-8").replace("\r\n", "\n")


def _plain_text(terminal: str) -> str:
    """What a terminal's output says, without its control sequences and carriage returns."""
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", terminal)


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
    # ignored without a word before: no MIDI was sent, and devices listed no ports
    (["demo", "--midi-api", "jack"], "--midi-api jack goes with --midi PORT or --midi-virtual NAME"),
    (["devices", "--midi-api", "jack"], "--midi-api jack goes with --midi"),
    (["demo", "--osc", "localhost:9000:1"], "an IPv6 address goes in brackets"),
    (["demo", "--midi-wait"], "--midi-wait goes with --midi PORT"),
    (["demo", "--midi-virtual", "x", "--midi-wait"], "--midi-wait goes with --midi PORT"),
    (["demo", "--midi", "3", "--midi-wait"], "--midi-wait needs the port's name"),
    (["demo", "--osc-wait"], "--osc-wait goes with --osc HOST:PORT"),
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
    # without the display a line says what runs and where it goes, before any event (a silent start looked hung)
    first = our_lines(r.stderr)[0]
    assert first.startswith("rtclassify demo · ") and first.endswith(f"→ log {log}")
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
    code, out = in_a_terminal("demo", "--bundle", bundle, "--duration", "1.5", "--speed", "4")
    assert code == 0, out
    text = _plain_text(out)
    for tag in ("low", "high", "any"):
        assert tag in text
    assert "latency ms" in text and "dropped" in text and "→ display only" in text
    assert "Traceback" not in text and "instead of the live display" not in text
    assert out.index("\x1b[?25h", out.rindex("\x1b[?25l"))  # the cursor is shown again at the end


def test_a_forced_quit_gives_the_terminal_back(bundle):
    """A second SIGTERM (or Ctrl-C) while stopping leaves with os._exit: the cursor rich's Live had hidden stayed
    hidden in the shell, and the quit line was glued to the display's last line ("= 128.8rtclassify demo:
    SIGTERM again: ...")."""
    import signal

    code, out = in_a_terminal("demo", "--bundle", bundle, "--duration", "20", until=b"latency ms",
                              then=(signal.SIGTERM, signal.SIGTERM))
    assert code == 128 + signal.SIGTERM, out
    assert "\x1b[?25h" in out[out.rindex("\x1b[?25l"):]  # the cursor is shown again
    assert "\nrtclassify demo: SIGTERM again: quitting without waiting for the stop\n" in _plain_text(out), out[-300:]


def test_without_a_terminal_the_run_prints_the_event_lines_and_says_so(bundle):
    """On a pipe or a file (`| cat`, `> file`, nohup) or a dumb terminal rich's Live draws nothing until the
    stop, then one snapshot: the run looked hung. It prints what --no-display prints instead."""
    r = rtc("demo", "--bundle", bundle, "--duration", "2.5", "--speed", "4")
    assert r.returncode == 0, r.stderr
    lines = our_lines(r.stderr)
    assert lines[0] == ("rtclassify demo: standard output is not a terminal: printing event lines instead of the "
                        "live display")
    assert lines[1].startswith("rtclassify demo · ") and lines[1].endswith("→ the events on standard output")
    assert lines[-1].startswith("rtclassify demo: stopped after") and len(lines) == 3
    assert any(" on " in l for l in r.stdout.splitlines()) and "latency" not in r.stdout
    code, out = in_a_terminal("demo", "--bundle", bundle, "--duration", "2.5", "--speed", "4",
                              extra_env={"TERM": "dumb"})
    assert code == 0, out
    assert "rtclassify demo: a dumb terminal (TERM=dumb): printing event lines instead of the live display\n" in out
    assert " on " in out and "\x1b[" not in out


def test_a_latin_1_terminal_gets_the_display_in_ascii(bundle):
    """`LANG=en_US.ISO-8859-1 rtclassify demo`: rich's refresh thread died at its first draw (UnicodeEncodeError
    on "→") and the display stayed blank; the lines on standard error had "\\u2192" in them."""
    code, out = in_a_terminal("demo", "--bundle", bundle, "--duration", "1.5", "--speed", "4",
                              extra_env={"PYTHONIOENCODING": "latin-1"})
    assert code == 0, out
    text = _plain_text(out)
    assert "Traceback" not in text and "Error" not in text
    assert "rtclassify demo | " in text and "-> display only" in text and "latency ms" in text
    assert text.isascii()
    r = rtc("demo", "--bundle", bundle, "--duration", "1.5", "--speed", "4", "--no-display",
            extra_env={"PYTHONIOENCODING": "latin-1"})
    assert r.returncode == 0, r.stderr
    lines = our_lines(r.stderr)
    assert lines[0].startswith("rtclassify demo | ") and lines[0].endswith(" -> the events on standard output")
    assert "\\u" not in r.stderr and " | late hops " in lines[-1]


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
    # the summary says what went out (it read the same with outputs or without)
    # (the receiver reads once the run is over: its socket's buffer may have dropped some of them)
    last = our_lines(r.stderr)[-2]  # (the line before the summary)
    assert last.startswith("rtclassify demo: sent OSC ") and last.endswith(" datagrams")
    assert int(last.split()[-2]) >= len(got) > 0
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
    assert r.returncode == 2  # a wrong argument (README: exit code 2)
    assert "add --no-display" in our_lines(r.stderr)[-1]


def test_log_to_stdout_with_no_display(bundle):
    r = rtc("demo", "--bundle", bundle, "--no-display", "--duration", "1.5", "--speed", "4", "--log", "-")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    assert recs and all("event" in e for e in recs)


@pytest.mark.parametrize("cmd", ["demo", "tag"])
def test_a_reader_that_leaves_early_ends_the_run_quietly(bundle, cmd):
    # `rtclassify demo --log - | head -1`: the closed pipe is the end of the run, not an error
    from rtclassify.commands.demo import clip_path

    if cmd == "demo":
        args = ["demo", "--bundle", bundle, "--no-display", "--log", "-", "--duration", "20", "--speed", "4"]
    else:
        args = ["tag", str(clip_path()), "--bundle", bundle]
    p = subprocess.Popen([sys.executable, "-m", "rtclassify", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env(), cwd=tempfile.gettempdir())
    first = p.stdout.readline()
    p.stdout.close()
    _, err = p.communicate(timeout=60)
    assert json.loads(first)
    assert p.returncode == 0, err
    assert "Traceback" not in err and "error" not in err
    if cmd == "demo":
        assert "stopped (standard output closed)" in our_lines(err)[-1]


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


def test_help_says_which_backend_and_hop_the_code_uses():
    from rtclassify.commands._args import DEFAULT_HOP_MS
    from rtclassify.model.backends import BACKENDS
    from rtclassify.model.bundle import default_bundle_path, load_bundle

    b = load_bundle(default_bundle_path())
    assert DEFAULT_HOP_MS == pytest.approx(1e3 * b.hop_frames * b.hop_length / b.sample_rate)
    for cmd in ("listen", "demo", "tag"):
        r = rtc(cmd, "--help")
        assert r.returncode == 0
        text = " ".join(r.stdout.split())
        assert "{" + ",".join(BACKENDS) + "}" in text
        assert "default auto: TensorRT on a GPU when available, else ONNX Runtime on the CPU" in text
        assert f"the bundle's; {DEFAULT_HOP_MS} ms for the shipped model" in text
        assert "about 0.1 s" not in text


def _small_pipe():
    """A pipe (read end, write end) holding one page, so that a writer nobody reads blocks soon."""
    import fcntl

    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    return r, w


def _pipe_bytes(fd: int) -> int:
    import array
    import fcntl
    import termios

    b = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, b)
    return b[0]


def _popen_ctrl_c(cmd: list, stdout) -> subprocess.Popen:
    """Start ``cmd`` so that a later SIGINT reaches it as Ctrl-C would.

    A test runner started as a background job of a non-interactive shell ignores SIGINT, and a child
    inherits an ignored signal (Python then installs no KeyboardInterrupt handler): the child starts
    with SIGINT at its default instead, as from a terminal.
    """
    import signal

    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:  # a handled signal is reset to its default in the child at exec
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env(),
                                cwd=tempfile.gettempdir())
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _demo_stopped_by(sig: str, bundle: str, log) -> tuple[int, str]:
    """Run the demo until a tag is on, send ``sig``; the exit status and standard error. Every tag that turned
    on must have turned off again in the log (the final offs)."""
    import signal
    import time

    cmd = [sys.executable, "-m", "rtclassify", "demo", "--bundle", bundle, "--no-display", "--log", str(log),
           "--speed", "2"]
    if sig == "SIGINT":
        p = _popen_ctrl_c(cmd, stdout=subprocess.DEVNULL)
    else:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env(),
                             cwd=tempfile.gettempdir())
    with p:
        try:
            end = time.monotonic() + 60
            while not (log.exists() and '"event": "on"' in log.read_text()):
                assert p.poll() is None and time.monotonic() < end, "no tag turned on"
                time.sleep(0.05)
            p.send_signal(getattr(signal, sig))
            _, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    state = {}
    for e in map(json.loads, log.read_text().splitlines()):
        if e["event"] in ("on", "off"):
            state[e["tag"]] = e["event"]
    assert state and set(state.values()) == {"off"}, err
    return p.returncode, err


def test_first_ctrl_c_stops_cleanly_with_the_final_offs(tmp_path, bundle):
    code, err = _demo_stopped_by("SIGINT", bundle, tmp_path / "ev.jsonl")
    assert code == 0, err
    assert "rtclassify demo: stopping (Ctrl-C again to quit at once)" in err
    assert "rtclassify demo: interrupted (Ctrl-C) after" in err and "Traceback" not in err


def test_second_ctrl_c_quits_while_the_log_is_blocked_on_a_full_pipe(bundle):
    import queue
    import signal
    import threading
    import time

    r, w = _small_pipe()
    lines: queue.Queue = queue.Queue()
    try:
        with _popen_ctrl_c([sys.executable, "-m", "rtclassify", "demo", "--bundle", bundle, "--no-display",
                            "--log", "-", "--speed", "4"], stdout=w) as p:
            os.close(w)
            w = None
            reader = threading.Thread(target=lambda: [lines.put(l) for l in p.stderr], daemon=True)
            reader.start()
            try:
                # the log fills the pipe (nobody reads it) and its writer blocks: the pipe then stops growing
                last, since, end = -1, time.monotonic(), time.monotonic() + 60
                while time.monotonic() < end:
                    n = _pipe_bytes(r)
                    if n != last:
                        last, since = n, time.monotonic()
                    elif n > 0 and time.monotonic() - since > 1.0:
                        break
                    assert p.poll() is None, list(lines.queue)
                    time.sleep(0.05)
                else:
                    pytest.fail("the event log never filled the pipe")
                p.send_signal(signal.SIGINT)
                got = []
                end = time.monotonic() + 30
                while not any("stopping (Ctrl-C again to quit at once)" in l for l in got):
                    try:
                        got.append(lines.get(timeout=max(0.01, end - time.monotonic())))
                    except queue.Empty:
                        pytest.fail(f"no 'stopping' line after the first Ctrl-C: {got}")
                p.send_signal(signal.SIGINT)
                assert p.wait(20) == 130
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            reader.join(10)
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
    got += list(lines.queue)
    assert "rtclassify demo: Ctrl-C again: quitting without waiting for the stop\n" in got


_BLOCKED_STOP = """
import errno, os, sys
import numpy as np
from rtclassify.audio.sources import ClipSource
from rtclassify.commands._live import run_listener
from rtclassify.engine.listener import Listener
from rtclassify.model.classifier import Classifier
from rtclassify.sinks.log import JsonlSink

os.set_blocking(1, False)
try:
    while True:  # fill standard output (a pipe nobody reads): the log's first write blocks
        os.write(1, b"x" * 512)
except BlockingIOError:
    pass
os.set_blocking(1, True)
clf = Classifier.load(sys.argv[1])
x = (0.5 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
lis = Listener(clf, sinks=[JsonlSink("-")], source=ClipSource(x, 16000, speed=4.0, loop=True))
sys.exit(run_listener(lis, 0.5, what="test", stop_timeout=0.5))
"""


def test_a_stop_blocked_on_a_full_pipe_is_reported_and_the_program_leaves(bundle):
    r, w = _small_pipe()
    try:
        p = subprocess.run([sys.executable, "-c", _BLOCKED_STOP, bundle], stdout=w, stderr=subprocess.PIPE,
                           text=True, env=env(), cwd=tempfile.gettempdir(), timeout=120)
    finally:
        os.close(w)
        os.close(r)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "Fatal Python error" not in p.stderr
    err = our_lines(p.stderr)[-1]
    # the write had held the worker for about 0.5 s when the stop began, under BLOCKED_AFTER_S: it gets the time
    # again (stop_and_finish), and is abandoned after 1 s in all
    assert err.startswith("rtclassify test: error: the listener did not stop within 1 s: the worker is blocked in "
                          "sink JsonlSink('-') ("), err
    assert " at sinks/log.py:" in err and "fh.write(" in err


def test_devices_still_lists_audio_when_midi_cannot_open(monkeypatch, capsys):
    from rtclassify import cli
    from rtclassify.errors import SinkError
    from rtclassify.sinks import midi

    def no_midi(api=None):
        raise SinkError("cannot open the default MIDI system: is the ALSA sequencer available?")

    monkeypatch.setattr(midi, "list_midi_outputs", no_midi)
    assert cli.main(["devices", "--midi"]) == 1
    out, err = capsys.readouterr()
    assert ("index" in out and "host API" in out) or "No audio input device exists" in err
    assert err.strip().splitlines()[-1] == ("rtclassify devices: error: MIDI ports: cannot open the default MIDI "
                                            "system: is the ALSA sequencer available?")
    assert cli.main(["devices", "--midi", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert isinstance(d["audio_inputs"], list) and "ALSA sequencer" in d["midi_error"]



def test_devices_still_lists_midi_ports_without_portaudio(monkeypatch, capsys):
    # the symmetric case: without PortAudio, `devices --midi` ended at the audio list's error and listed no port
    from rtclassify import cli
    from rtclassify.audio import devices
    from rtclassify.errors import MissingDependencyError
    from rtclassify.sinks import midi

    def no_portaudio():
        raise MissingDependencyError("the PortAudio library cannot be loaded (x); install the system package "
                                     "libportaudio2 (Debian/Ubuntu) or portaudio (Homebrew)")

    monkeypatch.setattr(devices, "list_input_devices", no_portaudio)
    monkeypatch.setattr(midi, "list_midi_outputs", lambda api=None: ["Synth:in 128:0"])
    assert cli.main(["devices", "--midi"]) == 1
    out, err = capsys.readouterr()
    assert "MIDI ports:" in out and "Synth:in 128:0" in out
    assert err.strip() == ("rtclassify devices: error: audio inputs: the PortAudio library cannot be loaded (x); "
                           "install the system package libportaudio2 (Debian/Ubuntu) or portaudio (Homebrew)")
    assert cli.main(["devices", "--midi", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["audio_inputs"] == [] and "PortAudio" in d["audio_error"] and d["midi_outputs"] == ["Synth:in 128:0"]
    assert cli.main(["devices"]) == 1  # without --midi, the audio error alone, as before
    assert "PortAudio" in capsys.readouterr().err

@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_cleanly_with_the_final_offs(tmp_path, bundle, sig):
    """A process manager's stop (SIGTERM) or a closed terminal (SIGHUP) killed the run at once, leaving every
    sounding MIDI note hanging; now it stops as the first Ctrl-C does."""
    code, err = _demo_stopped_by(sig, bundle, tmp_path / "ev.jsonl")
    assert code == 0, err
    assert f"rtclassify demo: {sig}: stopping" in err
    assert f"rtclassify demo: stopped ({sig}) after" in err and "Traceback" not in err


def test_second_sigterm_quits_at_once(monkeypatch):
    """The handler records the first signal and quits with 128 + the signal on the second."""
    import signal

    from rtclassify.commands._live import _StopSignals

    exits = []
    monkeypatch.setattr("os._exit", exits.append)
    with _StopSignals("demo") as requested:
        assert signal.getsignal(signal.SIGTERM) == requested._handler
        requested._handler(signal.SIGTERM, None)
        assert requested.name == "SIGTERM" and not exits
        requested._handler(signal.SIGHUP, None)
        assert exits == [128 + signal.SIGHUP]
    assert signal.getsignal(signal.SIGTERM) != requested._handler


def test_a_signal_the_run_was_started_with_ignored_stays_ignored():
    """`nohup rtclassify listen ... &` over ssh: nohup leaves SIGHUP ignored so that the run outlives the session,
    and the live commands' handler replaced that, so logging out stopped the show."""
    import signal

    from rtclassify.commands._live import _StopSignals

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with _StopSignals("listen") as requested:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == requested._handler
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_listing_ends_with_0_when_the_reader_of_its_output_has_gone():
    """`rtclassify backends | head -0` exited 141 where `tag` and `demo --log -` exit 0: what it prints is its
    output, taken."""
    p = subprocess.Popen([sys.executable, "-m", "rtclassify", "backends"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env(), cwd=tempfile.gettempdir())
    p.stdout.close()  # gone before the command writes anything
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0 and "Traceback" not in err, err


def test_a_reader_gone_before_a_command_whose_work_is_elsewhere_is_141(monkeypatch):
    """A training run (its product: files) stopped by `| head` is not a success; a listing is done once read."""
    import rtclassify.commands._args as args_mod
    import rtclassify.commands.backends as backends_cmd
    import rtclassify.commands.train as train_cmd
    from rtclassify import cli

    def gone(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(args_mod, "drop_stdout", lambda: None)
    monkeypatch.setattr(train_cmd, "run", gone)
    monkeypatch.setattr(backends_cmd, "run", gone)
    assert cli.main(["train", "--config", "x.toml"]) == 141
    assert cli.main(["backends"]) == 0
