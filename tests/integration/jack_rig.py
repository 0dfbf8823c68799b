"""The real-components rig: a dummy JACK server, ``rtclassify listen`` on it, a JACK player, MIDI and OSC receivers.

::

    jackd -d dummy -r 48000 -p 256            (no sound card)
      player (JACK client) --audio--> PortAudio:in_0  (rtclassify listen, PortAudio's JACK host API)
      rtclassify:<name> (JACK MIDI, rtmidi) --> jack_midi_dump
      OSC over UDP 127.0.0.1:<port>         --> oscdump

The player writes real recordings into the listener's JACK input port and
records, for every segment, the wall time of the JACK cycle that carried its
first non-silent sample ("the sound entered the server"). The receivers'
output lines are time-stamped as they arrive (both run line-buffered), so
sound-to-message latency = receive time - sound time.

Used by tests/integration/test_jack_e2e.py, tests/integration/test_jack_multistream.py and
bench/test_bench_live.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from _jackd import JackServer, missing, wait_for_port  # noqa: E402

REPO = TESTS.parent
DATA = Path(os.environ.get("RTCLASSIFY_DATA", REPO.parent / "shared" / "data")) / "sms-tools"
#: where subprocesses run: outside the checkout, so ``python -m rtclassify`` imports the installed package
OUTSIDE = tempfile.gettempdir()
PROGRAMS = ("jackd", "jack_lsp", "jack_connect", "jack_midi_dump", "oscdump", "stdbuf")
RATE = 48000
PERIOD = 256


def why_skip() -> str | None:
    """Why the rig cannot run here, or None."""
    gone = missing(*PROGRAMS)
    if gone:
        return f"the JACK rig needs {', '.join(gone)} (Debian: jackd2 liblo-tools coreutils)"
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"the JACK player needs the JACK-Client package (pip install JACK-Client): {exc}"
    if not (DATA / "piano.wav").exists():
        return f"the recordings are missing: {DATA} (set RTCLASSIFY_DATA to the shared data folder)"
    return None


# ----------------------------------------------------------------------------- model
@dataclass
class ModelChoice:
    """The bundle the rig runs, and which tag each recording must turn on."""

    path: Path
    labels: list
    expected: dict  # recording file -> tag
    description: str


LABELLED = {"piano.wav": "piano", "speech-female.wav": "speech", "sax-phrase.wav": "woodwind",
            "bendir.wav": "drums", "cello-phrase.wav": "strings", "organ-C3.wav": "organ"}


def choose_bundle(tmp: Path, files=("piano.wav", "speech-female.wav"), seg_s: float = 2.5) -> ModelChoice:
    """The model the rig runs and the tag each recording must turn on.

    ``RTCLASSIFY_E2E_BUNDLE`` if set, else the shipped default bundle, else the training developer's
    ``datasets/dev_bundle``; for a trained model, the expected tag of a recording is its labelled tag
    (labels.csv) when the offline tagger (``Classifier.tag``, the same streaming engine) keeps it on
    for at least half as long as its longest-on tag in the segment the rig plays (a tag that flickers
    on for a moment offline may or may not do so live, depending on where the hop grid falls),
    otherwise the tag the offline tagger keeps on longest. These tests
    are about the live path reproducing the engine's decisions over a real audio server; the model's
    accuracy is evaluated elsewhere. Without a trained model that turns something on for every
    recording: the small test graph, whose ``any`` tag follows the energy in all mel bands.
    """
    candidates = []
    if os.environ.get("RTCLASSIFY_E2E_BUNDLE"):
        candidates.append(Path(os.environ["RTCLASSIFY_E2E_BUNDLE"]))
    candidates += [REPO / "rtclassify" / "data" / "default_bundle", REPO / "datasets" / "dev_bundle"]
    for c in candidates:
        if not ((c / "model.json").exists() or (c.suffix == ".zip" and c.exists())):
            continue
        from rtclassify.model.classifier import Classifier

        clf = Classifier.load(c)
        expected, notes = {}, []
        for f in files:
            audio, segs = program([f], 1, 2.5, seg_s=seg_s)
            res = clf.tag(audio, RATE)
            on_time: dict[str, float] = {}
            started: dict[str, float] = {}
            for ev, t in zip(res.events, res.event_times):
                if ev.kind == "on":
                    started[ev.tag] = t
                elif ev.kind == "off" and ev.tag in started:
                    on_time[ev.tag] = on_time.get(ev.tag, 0.0) + t - started.pop(ev.tag)
            want = LABELLED.get(f)
            if want in on_time and on_time[want] >= 0.5 * max(on_time.values()):
                expected[f] = want
            elif on_time:
                expected[f] = max(on_time, key=on_time.get)
                seen = f"on for {on_time[want]:.1f} s only" if want in on_time else "not detected"
                notes.append(f"{f}: {want} {seen} offline, expecting {expected[f]}")
        if len(expected) == len(files):
            extra = f" ({'; '.join(notes)})" if notes else ""
            return ModelChoice(c, list(clf.labels), expected, f"model bundle {c}{extra}")
    from _rtc_bundle import write_bundle

    path = write_bundle(tmp / "e2e_bundle")
    return ModelChoice(path, ["low", "high", "any"], {f: "any" for f in files},
                       "test graph (tag 'any' = energy in all mel bands; no trained model turns a tag on for "
                       "every recording)")


# ----------------------------------------------------------------------------- player
@dataclass
class Segment:
    file: str
    start: int  # sample index of the first non-silent sample
    end: int
    sound_wall: float | None = None  # wall time of the JACK cycle that carried `start`


def program(files: list[str], rounds: int, gap_s: float, lead_s: float = 1.0, seg_s: float = 2.5,
            hop_s: float | None = None):
    """The audio to play (48 kHz float32) and its segments: ``rounds`` x files, separated by silence.

    With ``hop_s`` (the model's hop), each round is padded with silence so that it starts ``hop_s /
    rounds`` later on the model's hop grid than the one before: the rounds then hear every recording
    at ``rounds`` evenly spread phases of the hop and of the frontend's frame grid (a fixed-length
    round that is a whole number of frames, as 10 s is of 16 ms frames, would hear every round at the
    same phase, so a run's latencies would all depend on one phase).
    """
    import soundfile as sf
    import soxr

    parts = [np.zeros(int(lead_s * RATE), np.float32)]
    segs = []
    pos = parts[0].shape[0]
    clips = {}
    for f in files:
        x, sr = sf.read(DATA / f, dtype="float32", always_2d=True)
        x = soxr.resample(x.mean(axis=1), sr, RATE).astype(np.float32)[: int(seg_s * RATE)]
        fade = int(0.01 * RATE)
        x[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        clips[f] = x
    for _ in range(rounds):
        round_start = pos
        for f in files:
            x = clips[f]
            nz = np.flatnonzero(np.abs(x) > 1e-3)
            first = int(nz[0]) if nz.size else 0
            segs.append(Segment(f, pos + first, pos + x.shape[0]))
            gap = np.zeros(int(gap_s * RATE), np.float32)
            parts += [x, gap]
            pos += x.shape[0] + gap.shape[0]
        if hop_s:
            hop, step = hop_s * RATE, hop_s * RATE / rounds
            pad = int(round((step - (pos - round_start)) % hop))
            parts.append(np.zeros(pad, np.float32))
            pos += pad
    return np.concatenate(parts), segs


class Player:
    """A JACK client with one output port that plays ``audio`` once, from :meth:`play` on."""

    def __init__(self, server: JackServer, audio: np.ndarray, segments: list[Segment], loop: bool = False):
        import jack

        self.loop = loop
        self.audio = audio
        self.segments = segments
        self.pos = 0
        self.playing = False
        self.done = threading.Event()
        self.client = jack.Client(f"rtc-player-{uuid.uuid4().hex[:4]}", servername=server.name,
                                  no_start_server=True)
        self.port = self.client.outports.register("out")
        self.client.set_process_callback(self._process)
        self.client.activate()
        self._next = 0

    @property
    def port_name(self) -> str:
        return self.port.name

    def play(self) -> None:
        self.playing = True

    def _process(self, frames: int) -> None:
        buf = self.port.get_array()
        if self.loop and self.pos >= self.audio.shape[0]:
            self.pos = 0
        if not self.playing or self.pos >= self.audio.shape[0]:
            buf.fill(0.0)
            if self.playing:
                self.done.set()
            return
        now = time.time()
        n = min(frames, self.audio.shape[0] - self.pos)
        buf[:n] = self.audio[self.pos:self.pos + n]
        buf[n:] = 0.0
        end = self.pos + frames
        while self._next < len(self.segments) and self.segments[self._next].start < end:
            self.segments[self._next].sound_wall = now
            self._next += 1
        self.pos = end

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


# ----------------------------------------------------------------------------- receivers
class LineReader:
    """Runs a line-buffered program and time-stamps each output line as it arrives."""

    def __init__(self, args: list[str], env: dict):
        self.proc = subprocess.Popen(["stdbuf", "-oL", *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_MIDI_LINE = re.compile(r"^\s*(\d+):\s+((?:[0-9a-f]{2}\s?)+)")

#: the JACK client of the listener's MIDI output (python-rtmidi's JACK API)
MIDI_SENDER = "rtclassify"


def note_pairing_problems(midi) -> list[str]:
    """Per MIDI channel: a note turned on twice without an off, a note-off without a note-on, notes left on."""
    sounding: dict[int, set] = {}
    problems = []
    for t, m in midi:
        kind, ch = m[0] & 0xF0, m[0] & 0x0F
        on = sounding.setdefault(ch, set())
        if kind == 0x90 and m[2] > 0:
            if m[1] in on:
                problems.append(f"note {m[1]} on twice on channel {ch + 1} (at {t:.3f})")
            on.add(m[1])
        elif kind == 0x80 or (kind == 0x90 and m[2] == 0):
            if m[1] not in on:
                problems.append(f"note-off {m[1]} without a note-on on channel {ch + 1} (at {t:.3f})")
            on.discard(m[1])
    problems += [f"notes {sorted(on)} left on on channel {ch + 1}" for ch, on in sounding.items() if on]
    return problems


def log_pairing_problems(log_events) -> list[str]:
    """The engine's own decisions (the --log JSONL): per channel and tag, on and off alternate, ending off."""
    on: set = set()
    problems = []
    for e in log_events:
        key = (e.get("channel", 0), e.get("tag"))
        if e.get("event") == "on":
            if key in on:
                problems.append(f"{key} on twice at stream time {e['stream_time']:.3f}")
            on.add(key)
        elif e.get("event") == "off":
            if key not in on:
                problems.append(f"{key} off without on at stream time {e['stream_time']:.3f}")
            on.discard(key)
    problems += [f"{key} left on" for key in sorted(on)]
    return problems


def late_midi_clients(xruns: list[str], monitor: str) -> list[str]:
    """The MIDI sender or receiver among the clients the JACK server reported late (see check_note_pairing)."""
    return sorted({c for c in xruns if c in (MIDI_SENDER, monitor)})


def check_note_pairing(midi, xruns: list[str], monitor: str) -> list[str]:
    """Assert that every note-on has its note-off; returns the problems tolerated.

    JACK discards what a client wrote in a cycle it did not finish in time (an xrun): on this shared
    machine, with a dummy driver in non-real-time mode, the server reports such late clients now and
    then. A pairing problem is accepted only when the server reported the MIDI sender
    (:data:`MIDI_SENDER`) or the receiver (``monitor``, jack_midi_dump's client) late during the run;
    the engine's own decisions are checked separately, from its event log.
    """
    problems = note_pairing_problems(midi)
    late = late_midi_clients(xruns, monitor)
    assert not problems or late, "; ".join(problems) + " (and no xrun of the MIDI sender or receiver was reported)"
    if problems:
        print(f"[jack] MIDI lost in JACK xruns of {', '.join(late)}: {'; '.join(problems)}")
    return problems


def parse_midi(lines):
    """jack_midi_dump lines -> [(recv_wall, [status, data1, data2])]; raises on a malformed line."""
    out = []
    for t, line in lines:
        m = _MIDI_LINE.match(line)
        if not m:
            continue
        out.append((t, [int(b, 16) for b in m.group(2).split()]))
    return out


_OSC_LINE = re.compile(r'^(?:[0-9a-f]{8}\.[0-9a-f]{8} )?(/\S+) (\w+)(?: (.*))?$')


def parse_osc(lines):
    """oscdump lines -> [(recv_wall, address, typetags, [args])]."""
    out = []
    for t, line in lines:
        m = _OSC_LINE.match(line.strip())
        if not m:
            continue
        addr, types, rest = m.group(1), m.group(2), m.group(3) or ""
        args = re.findall(r'"[^"]*"|\S+', rest)
        vals = []
        for ty, a in zip(types, args):
            vals.append(a.strip('"') if ty == "s" else float(a))
        out.append((t, addr, types, vals))
    return out


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Receivers:
    """The rig's receivers, time-stamping what they get: jack_midi_dump on a new JACK client ``monitor``
    and oscdump on a free UDP port ``osc_port``."""

    def __init__(self, server: JackServer, env: dict):
        self.server = server
        self.monitor = f"mon{uuid.uuid4().hex[:4]}"
        self.midi = LineReader(["jack_midi_dump", self.monitor], env)
        self.osc_port = free_udp_port()
        self.osc = LineReader(["oscdump", "-L", str(self.osc_port)], env)
        wait_for_port(server, f"{self.monitor}:input")

    def hear(self, midi_port: str) -> None:
        """Wait for the JACK MIDI output ``midi_port`` (the listener's) and connect it to jack_midi_dump."""
        wait_for_port(self.server, midi_port, timeout=30)
        self.server.connect(midi_port, f"{self.monitor}:input")

    def stop(self) -> None:
        self.midi.stop()
        self.osc.stop()


def portaudio_input(server: JackServer, channel: int = 0) -> str:
    """The JACK port of PortAudio's capture channel ``channel`` (the listener's input), waited for."""
    return [p for p in wait_for_port(server, f":in_{channel}", timeout=30) if p.startswith("PortAudio")][0]


def start_listener(cmd: list, env: dict) -> subprocess.Popen:
    """Start ``rtclassify listen`` so that a later SIGINT reaches it as Ctrl-C would.

    A test runner started as a background job of a non-interactive shell ignores SIGINT, and a
    child inherits an ignored signal (Python then installs no KeyboardInterrupt handler): the
    listener is started with SIGINT at its default instead, as from a terminal.
    """
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:  # a handled signal is reset to its default in the child at exec
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=OUTSIDE)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def tear_down(listen: subprocess.Popen, players: list, rx: Receivers) -> None:
    """After a run, a failed one too: kill ``listen`` if it still runs, close the players, give the last
    messages time to arrive and stop the receivers."""
    if listen.poll() is None:
        listen.kill()
        listen.communicate()
    for p in players:
        p.close()
    time.sleep(0.3)
    rx.stop()


# ----------------------------------------------------------------------------- the run
@dataclass
class RigResult:
    model: ModelChoice
    segments: list
    midi: list
    osc: list
    log_events: list
    returncode: int
    stdout: str
    stderr: str
    notes: dict  # tag -> MIDI note
    play_start: float = 0.0
    play_end: float = 0.0
    xruns_during_play: list = field(default_factory=list)  # late JACK clients the server named
    midi_raw: list = field(default_factory=list)
    osc_raw: list = field(default_factory=list)
    monitor: str = ""  # jack_midi_dump's JACK client
    xruns_after_start: list = field(default_factory=list)  # late clients from the playback's start to the end

    def segment_latencies(self, kind: str = "midi") -> list[float | None]:
        """For each segment: first message saying its expected tag turned on, minus the sound's wall time
        (s); None where no such message came while the segment played or within a second after it."""
        out: list[float | None] = []
        for seg in self.segments:
            tag = self.model.expected[seg.file]
            if seg.sound_wall is None:
                out.append(None)
                continue
            if kind == "midi":
                note = self.notes[tag]
                times = [t for t, m in self.midi if (m[0] & 0xF0) == 0x90 and m[1] == note and m[2] > 0
                         and t >= seg.sound_wall]
            else:
                times = [t for t, a, _, v in self.osc if a.endswith("/on") and v == [tag] and t >= seg.sound_wall]
            ok = times and times[0] - seg.sound_wall < (seg.end - seg.start) / RATE + 1.0
            out.append(times[0] - seg.sound_wall if ok else None)
        return out

    def latencies(self, kind: str = "midi") -> list[float]:
        """The latencies of :meth:`segment_latencies` that were measured."""
        return [x for x in self.segment_latencies(kind) if x is not None]

    @property
    def status(self) -> list[dict]:
        """The listener's status lines (counters once a second, and at the end)."""
        return [e for e in self.log_events if e.get("event") == "status"]

    @property
    def final_counters(self) -> dict:
        return self.status[-1] if self.status else {}

    def during_play(self, key: str) -> int:
        """Increase of counter ``key`` from the last status line before playback to the first one after it."""
        before = [e[key] for e in self.status if e["wall_time"] <= self.play_start]
        after = [e[key] for e in self.status if e["wall_time"] >= self.play_end]
        if not before or not after:
            raise AssertionError(f"no status lines around the playback: {self.status}")
        return after[0] - before[-1]

    def counters_line(self) -> str:
        lines = [l for l in self.stderr.splitlines() if "rtclassify listen:" in l]
        return lines[-1] if lines else ""


def run_rig(tmp: Path, *, files=("piano.wav", "speech-female.wav"), rounds: int = 2, gap_s: float = 2.5,
            hop: float | None = None, blocksize: int = PERIOD, stop_with_sigint: bool = True,
            extra_args: tuple = (), spread_phases: bool = False) -> RigResult:
    """Start everything, play, stop ``listen`` (Ctrl-C by default) and collect what the receivers got.

    ``spread_phases``: the rounds hear the recordings at evenly spread phases of the model's hop
    (see :func:`program`)."""
    model = choose_bundle(tmp, files)
    from rtclassify.model.bundle import load_bundle
    from rtclassify.sinks.mapping import Mapping

    notes = {t: m.note for t, m in Mapping.default(model.labels).midi.tags.items()}
    hop_s = None
    if spread_phases:
        b = load_bundle(model.path)
        hop_s = hop if hop is not None else b.hop_frames / b.frame_rate
    audio, segments = program(list(files), rounds, gap_s, hop_s=hop_s)
    with JackServer(RATE, PERIOD) as server:
        env = dict(server.env, PYTHONUNBUFFERED="1")
        rx = Receivers(server, env)
        devs = subprocess.run([sys.executable, "-m", "rtclassify", "devices", "--json"], env=env,
                              capture_output=True, text=True, check=True, cwd=OUTSIDE)
        jack_dev = [d for d in json.loads(devs.stdout)["audio_inputs"] if "JACK" in d["hostapi"]]
        assert jack_dev, f"PortAudio sees no JACK device: {devs.stdout} {devs.stderr}"
        virt = f"tags{uuid.uuid4().hex[:4]}"
        log = tmp / "events.jsonl"
        duration = audio.shape[0] / RATE + 30.0
        cmd = [sys.executable, "-m", "rtclassify", "listen", "--device", str(jack_dev[0]["index"]),
               "--bundle", str(model.path), "--midi-api", "jack", "--midi-virtual", virt,
               "--osc", f"127.0.0.1:{rx.osc_port}", "--no-display", "--log", str(log),
               "--duration", f"{duration:.1f}", "--blocksize", str(blocksize)]
        if hop is not None:
            cmd += ["--hop", str(hop)]
        cmd += list(extra_args)
        listen = start_listener(cmd, env)
        player = None
        play_start = play_end = 0.0
        try:
            rx.hear(f"rtclassify:{virt}")
            pa_in = portaudio_input(server)
            player = Player(server, audio, segments)
            server.connect(player.port_name, pa_in)
            time.sleep(2.5)  # let the graph changes pass and a status line be written
            play_start = time.time()
            player.play()
            if not player.done.wait(audio.shape[0] / RATE + 20):
                raise AssertionError("the player did not finish")
            play_end = time.time()
            time.sleep(1.5)
            if stop_with_sigint:
                listen.send_signal(signal.SIGINT)
            out, err = listen.communicate(timeout=60)
        finally:
            tear_down(listen, [] if player is None else [player], rx)
        xruns = server.xruns(play_start, play_end)
        xruns_after_start = server.xruns(play_start)
    events = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    return RigResult(model, segments, parse_midi(rx.midi.lines), parse_osc(rx.osc.lines), events,
                     listen.returncode, out, err, notes, play_start, play_end, xruns,
                     rx.midi.lines, rx.osc.lines, rx.monitor, xruns_after_start)


def summary(values: list[float]) -> str:
    if not values:
        return "no measurements"
    v = np.asarray(values) * 1e3
    return (f"n={v.size} median {np.median(v):.0f} ms, p95 {np.percentile(v, 95):.0f} ms, "
            f"min {v.min():.0f} ms, max {v.max():.0f} ms")


def _play_forever(recording: str, destination: str) -> None:
    """Loop a recording into ``destination`` on the server named by ``JACK_DEFAULT_SERVER`` until killed.

    Runs as its own process (``python jack_rig.py RECORDING DESTINATION``) for tests that kill the
    server under a playing client: libjack aborts a process that closes a client of a server that is
    gone, so such a client must not live in the test process.
    """
    audio, segments = program([recording], 1, 0.0, lead_s=0.0)

    class _Named:  # what Player needs of a JackServer
        name = os.environ["JACK_DEFAULT_SERVER"]

    player = Player(_Named(), audio, segments, loop=True)
    player.client.connect(player.port_name, destination)
    player.play()
    print("playing", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    os._exit(0)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    _play_forever(sys.argv[1], sys.argv[2])
