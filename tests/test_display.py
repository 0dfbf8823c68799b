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
