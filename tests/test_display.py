"""The live terminal display: drawing while the worker changes what it shows."""

import io
import sys
import threading

from rich.console import Console

from rtclassify.detect.events import TagOn, TremoloOff, TremoloOn, VibratoOff, VibratoOn
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
    assert "technique: vibrato on" in buf.getvalue()


LABELS = ("piano", "organ", "guitar", "bass", "strings", "brass", "woodwind", "mallet", "drums", "synth",
          "singing", "speech")


def _draw(width, **kw):
    console = Console(file=io.StringIO(), width=width)
    d = LiveDisplay(LABELS, console=console, **kw)
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
