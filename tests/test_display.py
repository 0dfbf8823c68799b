"""The live terminal display: drawing while the worker changes what it shows."""

import io
import re
import sys
import threading

import pytest
from rich.console import Console
from rich.live_render import LiveRender

from rtclassify.detect.events import TagOn, TechniqueValues, TremoloOff, TremoloOn, VibratoOff, VibratoOn
from rtclassify.sinks.display import LiveDisplay


def test_render_survives_the_worker_adding_and_removing_technique_keys():
    # rich draws on its own thread while the worker sends: the technique keys come and go meanwhile
    d = LiveDisplay(("piano", "strings"), console=Console(file=io.StringIO(), width=100))
    d.send([TagOn(0.1, 0.0, 0, "strings", 0.9)])
    stop, errors = threading.Event(), []

    def worker():
        t = 0.0
        while not stop.is_set():
            t += 0.01
            d.send([VibratoOn(t, 0.0, 0, 5.5, 30.0), TremoloOn(t, 0.0, 0, 6.0, 3.0)])
            d.send([VibratoOff(t, 0.0, 0), TremoloOff(t, 0.0, 0)])

    th = threading.Thread(target=worker)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads between almost any two bytecodes
    th.start()
    try:
        for _ in range(20000):
            try:
                d.render()
            except RuntimeError as e:  # "dictionary changed size during iteration"
                errors.append(e)
                break
    finally:
        stop.set()
        th.join()
        sys.setswitchinterval(interval)
    assert errors == []
    d.send([VibratoOn(9.0, 0.0, 0, 5.5, 30.0)])
    buf = io.StringIO()
    Console(file=buf, width=100).print(d.render())
    assert "technique: vibrato on" in buf.getvalue() and "input" not in buf.getvalue()
    # the input's level, from the trackers' values: silence (a dead cable) and a quiet room read apart
    from rtclassify.detect.events import TechniqueValues

    d.send([TechniqueValues(9.1, 0.0, 0, level_db=-120.0)])
    buf = io.StringIO()
    Console(file=buf, width=100).print(d.render())
    assert "input -120 dBFS · technique: " in buf.getvalue()


LABELS = ("piano", "organ", "guitar", "bass", "strings", "brass", "woodwind", "mallet", "drums", "synth",
          "singing", "speech")


def _draw(width, height=25, labels=LABELS, **kw):
    console = Console(file=io.StringIO(), width=width, height=height, color_system=None)
    d = LiveDisplay(labels, console=console, **kw)
    d._console = console  # as open() sets it
    return d, console


def test_narrow_terminals_keep_every_tag_name():
    for width in (80, 40, 30, 20):
        d, console = _draw(width)
        d.send([TagOn(tag="piano", prob=0.7, stream_time=1.0)])
        console.print(d.render())
        lines = console.file.getvalue().splitlines()
        rows = lines[1:1 + len(LABELS)]
        assert [r.split()[0] for r in rows] == list(LABELS), width
        assert all(len(r.rstrip()) <= width for r in lines), width
        assert "…" not in "".join(rows), width  # nothing cut in the middle of a value
        if width >= 30:
            assert "0.70 ON" in rows[0]


def test_many_streams_show_what_fits_and_say_what_does_not():
    d, console = _draw(40, channels=range(100, 116))
    console.print(d.render())
    text = console.file.getvalue()
    lines = text.splitlines()
    header = lines[1].split()
    assert header[0] == "channel" and header[1] == "100"
    shown = [int(c) for c in header[1:]]
    assert shown == list(range(100, 100 + len(shown))) and len(shown) < 16
    assert "not shown: the terminal is too narrow" in " ".join(text.split())
    assert [r.split()[0] for r in lines[2:2 + len(LABELS)]] == list(LABELS)


def test_final_snapshot_to_a_file_ends_with_a_newline():
    buf = io.StringIO()
    d = LiveDisplay(("piano",), console=Console(file=buf, width=60, force_terminal=False))
    d.open()
    d.close()
    assert buf.getvalue().endswith("\n")


def test_closing_on_a_paused_terminal_gives_up_instead_of_holding_the_stop():
    """A terminal paused with Ctrl-S blocks rich's final draw; close() waited for it without end, so SIGTERM
    from a show-control script did not end the run until the terminal resumed."""
    import threading
    import time

    gate = threading.Event()

    class Paused(io.StringIO):
        def write(self, text):
            gate.wait(30)
            return super().write(text)

    d = LiveDisplay(("piano",), console=Console(file=Paused(), width=60, force_terminal=False))
    d.open()
    t0 = time.monotonic()
    d.close(timeout=0.5)
    assert time.monotonic() - t0 < 3.0
    gate.set()


def test_the_counters_say_bad_samples_bad_outputs_and_failed_runs_when_there_were_some():
    """NaN samples from a driver or cable were counted (session_nonfinite_replaced) but neither the display nor
    the summary of `listen` said so."""
    from rtclassify.sinks.display import format_counters

    base = {"dropped_samples": 0, "hops": 10, "late_hops": 0}
    assert "bad" not in format_counters(base) and "failed" not in format_counters(base)
    text = format_counters(dict(base, session_nonfinite_replaced=13616, session_bad_probabilities=2,
                                session_failed_hops=1))
    assert "bad samples replaced 13616 · bad model outputs 2 · failed model runs 1\n" in text


def _live_frame(d, console):
    """One frame as rich Live draws it (cut to the console's height, "..." on the last line when cut)."""
    console.print(LiveRender(d.render(), vertical_overflow="ellipsis"))
    return console.file.getvalue()


def _states(text, labels):
    """Each tag's on/off state as drawn beside its bar (several tags may share a line)."""
    found = {}
    for tag in labels:
        m = re.findall(rf"(?<!\S){re.escape(tag)} +[█·]+ +(?:\d\.\d\d +)?(ON|--)(?!\S)", text)
        assert len(m) == 1, (tag, text)
        found[tag] = m[0]
    return found


LEARNED = LABELS + tuple(f"learned{i}" for i in range(1, 19))
COUNTERS = {"dropped_samples": 0, "hops": 10, "latency_total_ms": 130.0}


@pytest.mark.parametrize("width,height,n", [(80, 24, 19), (80, 24, 30), (60, 20, 30), (40, 30, 30), (100, 12, 30)])
def test_many_tags_fit_the_terminal_height_with_each_state_and_the_counters(width, height, n):
    labels = LEARNED[:n]
    d, console = _draw(width, height, labels=labels)
    d.send([TagOn(tag=labels[-1], prob=0.9, stream_time=2.0), TagOn(tag="piano", prob=0.7, stream_time=2.0),
            TechniqueValues(2.0, 0.0, 0, pitch=220.0)])
    d.status(COUNTERS)
    text = _live_frame(d, console)
    lines = text.splitlines()
    assert len(lines) <= height and "..." not in text
    assert all(len(line.rstrip()) <= width for line in lines)
    assert _states(text, labels) == {t: "ON" if t in ("piano", labels[-1]) else "--" for t in labels}
    flat = " ".join(text.split())
    assert "late hops 0/10" in flat and "= 130.0" in flat


def test_tags_that_fit_keep_one_row_each():
    d, console = _draw(80, 40, labels=LEARNED)
    d.send([TagOn(tag="learned18", prob=0.9, stream_time=2.0)])
    d.status(COUNTERS)
    rows = _live_frame(d, console).splitlines()[1:1 + len(LEARNED)]
    assert [r.split()[0] for r in rows] == list(LEARNED)
    assert rows[-1].split()[2:] == ["0.90", "ON", "1x"] and rows[0].split()[1:] == ["·" * 28, "0.00", "--", "0x"]


def test_too_many_tags_for_any_layout_name_the_ones_on():
    d, console = _draw(40, 10, labels=LEARNED)
    d.send([TagOn(tag="learned18", prob=0.9, stream_time=2.0)])
    d.status(COUNTERS)
    text = _live_frame(d, console)
    flat = " ".join(text.split())
    assert len(text.splitlines()) <= 10 and "..." not in text
    assert "on: learned18 · 29 of 30 off" in flat and "= 130.0" in flat


def test_many_tags_on_several_streams_fit_the_terminal_height():
    d, console = _draw(80, 24, labels=LEARNED, channels=[0, 1])
    d.send([TagOn(tag="learned18", prob=1.0, stream_time=2.0, channel=1)])
    d.status(COUNTERS)
    text = _live_frame(d, console)
    assert len(text.splitlines()) <= 24 and "..." not in text
    rows = re.findall(r"(?<!\S)(\S+) +([█·]{5}) +([█·]{5})(?!\S)", text)
    assert sorted(r[0] for r in rows) == sorted(LEARNED)
    assert [r for r in rows if "█" in r[1] + r[2]] == [("learned18", "·····", "█████")]
    assert "not shown" not in text and "= 130.0" in " ".join(text.split())


LONG = "fuzz_pedal_through_the_marshall_recorded_at_home_take_one_1234"  # 63 characters (64 are legal)


@pytest.mark.parametrize("width", [40, 45, 50, 60, 80, 120])
def test_a_long_tag_name_is_cut_so_that_state_and_value_stay(width):
    labels = LABELS + (LONG,)
    d, console = _draw(width, 40, labels=labels)
    d.send([TagOn(tag="piano", prob=0.8, stream_time=1.0), TagOn(tag=LONG, prob=0.9, stream_time=1.0)])
    console.print(d.render())
    lines = console.file.getvalue().splitlines()
    rows = lines[1:1 + len(labels)]
    assert all(len(line.rstrip()) <= width for line in lines)
    assert [r.split()[0] for r in rows[:-1]] == list(LABELS)
    name = rows[-1].split()[0]
    assert (name == LONG) if width >= 120 else (name.startswith("fuzz_") and name.endswith("_1234") and "…" in name)
    cells = [r.split()[1:4] for r in rows]
    assert all(len(bar) >= 8 and set(bar) <= set("█·") for bar, _, _ in cells)
    assert [c[1:] for c in cells] == [["0.80", "ON"]] + [["0.00", "--"]] * (len(LABELS) - 1) + [["0.90", "ON"]]
    if width >= 60:
        assert all(len(bar) == 28 for bar, _, _ in cells)  # the name is cut before the bars shrink


def test_a_long_tag_name_leaves_room_for_the_channels():
    d, console = _draw(60, 40, labels=("piano", LONG), channels=[0, 1, 2, 3])
    console.print(d.render())
    text = console.file.getvalue()
    header = text.splitlines()[1].split()
    assert header == ["channel", "0", "1", "2", "3"] and "not shown" not in text
    assert all(len(line.rstrip()) <= 60 for line in text.splitlines())


def test_an_output_without_the_display_s_characters_gets_ascii_ones():
    """In a Latin-1 (or ASCII) locale rich's refresh thread died at its first draw (UnicodeEncodeError on "→")
    and the display stayed blank for the whole run."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="latin-1", write_through=True)
    console = Console(file=out, width=60, height=30, color_system=None)
    d = LiveDisplay(("piano", "a_very_long_learned_tag_take2"), title="rtclassify demo · x\n→ display only",
                    console=console)
    d.send([TagOn(1.0, 0.0, 0, "piano", 0.5), VibratoOn(1.0, 0.0, 0, 5.5, 30.0),
            TechniqueValues(1.1, 0.0, 0, level_db=-20.0, pitch=440.0, vibrato=True, vibrato_rate=5.5,
                            vibrato_extent=30.0)])
    d.status({"hops": 3})
    console.print(d.render())
    text = out.buffer.getvalue().decode("latin-1")
    assert text.isascii(), text
    assert "rtclassify demo | x\n-> display only\n" in text
    assert "piano  " in text and "##############.............. 0.50 ON" in text
    name = next(line for line in text.splitlines() if line.startswith("a_very")).split()[0]
    assert ".." in name and name.endswith("_take2")  # cut in the middle, the end kept
    assert "vibrato 5.5 Hz +-30 c" in text and "t = 1.1 s | dropped 0 samples | " in text
    # a UTF-8 output keeps them
    d = LiveDisplay(("piano",), title="a · b", console=Console(file=io.StringIO(), width=60, color_system=None))
    d.send([TagOn(1.0, 0.0, 0, "piano", 0.5)])
    d._console.print(d.render())
    assert "a · b" in d._console.file.getvalue() and "█" in d._console.file.getvalue()


def _drain(master: int) -> bytes:
    """What a pseudo-terminal's other end has written so far."""
    import os

    os.set_blocking(master, False)
    got = b""
    while True:
        try:
            got += os.read(master, 65536)
        except BlockingIOError:
            return got


def test_releasing_the_terminal_ends_the_line_and_shows_the_cursor_without_blocking_on_a_paused_one():
    """A second Ctrl-C or SIGTERM leaves with os._exit while rich's Live holds the cursor hidden: the cursor
    stayed hidden in the shell, and the quit message was glued to the display's last line. The terminal is
    given back first, without waiting on a terminal paused with Ctrl-S (the process must leave)."""
    import os
    import pty
    import termios
    import time

    from rtclassify.sinks import display

    for paused in (False, True):
        master, slave = pty.openpty()
        tty = open(slave, "w", encoding="utf-8", closefd=True)
        try:
            d = LiveDisplay(("piano",), console=Console(file=tty, width=60, height=20))
            d.open()
            time.sleep(0.3)  # a few draws
            if paused:
                termios.tcflow(slave, termios.TCOOFF)
            t0 = time.monotonic()
            display.release_terminal()
            assert time.monotonic() - t0 < 1.5
            if paused:
                termios.tcflow(slave, termios.TCOON)
            time.sleep(0.3)  # (rich draws no more)
            got = _drain(master)
            assert b"\x1b[?25l" in got
            if paused:  # nothing could be written: the draws stopped, the process can leave
                assert not got.endswith(b"\x1b[?25h")
            else:
                assert got.endswith(b"\r\n\x1b[?25h"), got[-80:]
            assert display._HOLDING == []
            d._live._lock.release()  # (kept by release_terminal: the process was leaving)
            d.close(timeout=2.0)
        finally:
            tty.close()
            os.close(master)


DEMO_TITLE = "rtclassify demo · demo.flac (24.9 s, 16000 Hz, real time)\n→ display only"
FULL_COUNTERS = {"dropped_samples": 0, "input_overflows": 0, "hops": 114, "late_hops": 0, "compute_ms_mean": 8.8,
                 "compute_ms_p99": 15.6, "latency_device_ms": 16.0, "latency_algorithmic_ms": 112.0,
                 "latency_compute_ms": 8.8, "latency_output_ms": 0.0, "latency_total_ms": 136.9}


def test_a_short_terminal_cuts_the_lines_around_a_matrix_before_it_leaves_channels_out():
    """12 streams at 40x20 showed 3 blocks of channel 0 only ("channels 1, 2, ..., 11 not shown"): more blocks were
    tried before the title and events lines were cut, and one block of 10 channels fits with them cut."""
    title = ("rtclassify demo · multi12.wav (24.9 s, 16000 Hz, real time) · 12 streams: channels 0-11\n"
             "→ display only")
    d, console = _draw(40, 20, title=title, channels=range(12))
    d.send([TagOn(tag=tag, prob=0.9, stream_time=5.0 + i / 10, channel=i) for i, tag in enumerate(LABELS[:6])])
    d.status(FULL_COUNTERS)
    text = _live_frame(d, console)
    lines = text.splitlines()
    assert len(lines) <= 20 and "..." not in text and all(len(line.rstrip()) <= 40 for line in lines)
    assert [line.split() for line in lines if line.startswith("channel ")] == [["channel", *map(str, range(10))]]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.split() and line.split()[0] in LABELS}
    assert list(rows) == list(LABELS) and all(len(cells) == 10 for cells in rows.values())
    assert [rows[tag][i] for i, tag in enumerate(LABELS[:6])] == ["██"] * 6
    assert lines[3 + len(LABELS)].startswith("channels 10, 11 not shown")
    flat = " ".join(text.split())
    assert "dropped 0" in flat and "late hops 0/114" in flat and "8.8 ms/hop" in flat and "latency 136.9 ms" in flat


@pytest.mark.parametrize("width,height", [(40, 8), (40, 6), (40, 4), (40, 3), (60, 3), (80, 5)])
def test_a_very_short_terminal_still_shows_the_counters_and_the_tags_that_are_on(width, height):
    """At 40x8 the counters took 4 lines and were cut after "dropped 0 samples ·" (late hops, compute and latency
    were not on screen): they take a short form then, and lines around them go before they do."""
    d, console = _draw(width, height, labels=LABELS, title=DEMO_TITLE)
    d.send([TagOn(tag="speech", prob=0.9, stream_time=4.0), TechniqueValues(4.1, 0.0, 0, level_db=-19.0, pitch=155.5)])
    d.status(FULL_COUNTERS)
    text = _live_frame(d, console)
    lines = text.splitlines()
    assert len(lines) <= height and "..." not in text and all(len(line.rstrip()) <= width for line in lines)
    flat = " ".join(text.split())
    assert "on: speech · 11 of 12 off" in flat
    assert "dropped 0" in flat and "late hops 0/114" in flat and "8.8 ms/hop" in flat and "latency 136.9 ms" in flat
    if height >= 8:  # room for the title and the events too, cut to a line each
        assert lines[0].startswith("rtclassify demo · demo.flac") and any(x.startswith("events: ") for x in lines)


@pytest.mark.parametrize("width,height,channels", [(40, 3, None), (40, 4, None), (40, 6, tuple(range(12))),
                                                   (60, 6, tuple(range(12)))])
def test_many_tags_on_do_not_push_the_counters_off_a_short_terminal(width, height, channels):
    """The list of the tags that are on wrapped over as many lines as it needed and pushed the counters off the
    bottom (12 tags on at 40x3; 12 channels with two tags on each at 40x6): it is cut to one line first."""
    d, console = _draw(width, height, labels=LABELS, title=DEMO_TITLE, channels=channels)
    chans = channels or (0,)
    d.send([TagOn(tag=t, prob=0.9, stream_time=1.0, channel=c) for c in chans for t in LABELS[:12 if channels is None else 2]])
    d.status(FULL_COUNTERS)
    text = _live_frame(d, console)
    flat = " ".join(text.split())
    assert len(text.splitlines()) <= height and "..." not in text
    assert "dropped 0" in flat and "latency 136.9 ms" in flat


def test_names_the_console_cannot_encode_are_drawn_as_question_marks():
    """A clip or tag name outside a Latin-1 console's characters killed rich's refresh thread (a
    UnicodeEncodeError on the first draw) as the display's own characters did."""
    buf = io.BytesIO()
    console = Console(file=io.TextIOWrapper(buf, encoding="latin-1", errors="strict", write_through=True),
                      width=80, height=30, color_system=None, force_terminal=True)
    d = LiveDisplay(LABELS + ("鼓",), console=console, title="rtclassify demo · 鼓.wav (3.0 s) → MIDI")
    d._console = console
    d.ascii, d._encoding = True, "latin-1"
    d.send([TagOn(tag="鼓", prob=0.9, stream_time=1.0)])
    console.print(d.render())
    out = buf.getvalue().decode("latin-1")
    assert "? ON" in " ".join(out.split()) or "?" in out
    assert "rtclassify demo | ?.wav (3.0 s) -> MIDI" in out  # (· and → in ASCII too)


def test_a_title_given_as_a_function_is_read_at_each_draw():
    """`--midi-wait`: the title said "MIDI (waiting for a port matching 'daw')" for the whole run, also after
    the port was connected; the live commands give the display a function that reads it at each draw."""
    port = ["(waiting for a port matching 'daw')"]
    d, console = _draw(100, 30, title=lambda: f"rtclassify demo\n-> MIDI {port[0]} ch 1")
    console.print(d.render())
    port[0] = "daw:midi_in"
    console.print(d.render())
    out = console.file.getvalue()
    assert "MIDI (waiting for a port matching 'daw') ch 1" in out and "MIDI daw:midi_in ch 1" in out


def test_a_line_said_while_the_display_draws_goes_above_it():
    """"stopping (Ctrl-C again to quit at once)" and the outputs' warnings went to standard error under the live
    display, and its next frame overwrote them: while a display draws on a terminal they are printed above it."""
    import os
    import pty
    import time

    from rtclassify.sinks import display

    assert not display.say_above("nobody draws")  # (the caller writes it to standard error then)
    master, slave = pty.openpty()
    saved = os.dup(2)
    os.dup2(slave, 2)  # standard error on the display's terminal, as in a shell
    tty = open(slave, "w", encoding="utf-8", closefd=True)
    try:
        d = LiveDisplay(("piano",), console=Console(file=tty, width=60, height=20))
        d.open()
        time.sleep(0.2)
        assert display.say_above("rtclassify demo: stopping (Ctrl-C again to quit at once)")
        time.sleep(0.3)  # more frames: the line stays above them
        d.close()
        assert not display.say_above("after the close")
        got = _drain(master)
        text = got.decode("utf-8", "replace")
        assert "stopping (Ctrl-C again to quit at once)" in text
        # printed once, above the frames drawn after it (rich moves the live view down under it)
        assert text.count("stopping (Ctrl-C again") == 1
        assert text.rindex("piano") > text.index("stopping (Ctrl-C again")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        tty.close()
        os.close(master)


def test_a_line_is_not_said_above_the_display_when_standard_error_goes_elsewhere(tmp_path):
    """`rtclassify listen 2> run.log`: the warnings belong in the file, not above the display."""
    import os
    import pty
    import time

    from rtclassify.sinks import display

    master, slave = pty.openpty()
    tty = open(slave, "w", encoding="utf-8", closefd=True)
    saved = os.dup(2)
    log = open(tmp_path / "run.log", "w")
    os.dup2(log.fileno(), 2)
    try:
        d = LiveDisplay(("piano",), console=Console(file=tty, width=60, height=20))
        d.open()
        time.sleep(0.1)
        assert not display.say_above("a warning")
        d.close()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        log.close()
        tty.close()
        os.close(master)
