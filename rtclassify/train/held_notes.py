"""How a bundle reads single held notes of GM programs across their range, per soundfont.

A diagnostic for the timbre gap (``rtclassify evaluate BUNDLE --held-notes FONTS``): each note is
rendered alone (one part of role ``held``, no augmentation) through FluidSynth, TiMidity++ or STK
at every ``step``-th key of the program's range and tagged by the bundle's runtime
(:meth:`rtclassify.Classifier.tag`); the table gives, per note, the mean probability of the
program's tag over the note and the tag read most when it is another.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

__all__ = ["DEFAULT_PROGRAMS", "check_held_notes", "held_note_table", "format_held_notes"]

#: Violin, cello, string ensemble, oboe, clarinet, flute, church organ, drawbar organ, vibraphone,
#: marimba, trumpet, French horn, nylon guitar, acoustic piano (programs whose real recordings in
#: the development set are misread, and a few neighbours).
DEFAULT_PROGRAMS = (40, 42, 48, 68, 71, 73, 19, 16, 11, 12, 56, 60, 24, 0)
#: Note onset and the stretch after it that is scored, s.
ONSET_S = 0.1
SKIP_S = 0.1


def check_held_notes(soundfonts, programs=DEFAULT_PROGRAMS, step: int = 6, seconds: float = 2.0) -> None:
    """ParameterError unless :func:`held_note_table` can run with these: known soundfonts that are installed,
    pitched GM programs with a tag, ``step`` >= 1 and ``seconds`` in 0.3..10 (cheap: checked before other work)."""
    from .data import gm
    from .data.fluid import SOUNDFONTS, check_soundfonts

    unknown = [s for s in soundfonts if s not in SOUNDFONTS]
    if unknown or not soundfonts:
        raise ParameterError(f"held notes: soundfonts must be some of {', '.join(SOUNDFONTS)}, got {list(soundfonts)}")
    bad = [p for p in programs if not 0 <= int(p) <= 127 or gm.GM_PROGRAM_TAGS[int(p)] in (None, "drums")]
    if bad or not programs:
        raise ParameterError(f"held notes: programs must be pitched GM programs with a tag, got {list(programs)}")
    if int(step) < 1 or not 0.3 <= float(seconds) <= 10.0:
        raise ParameterError(f"held notes: step must be >= 1 and seconds in 0.3..10, got {step}, {seconds}")
    check_soundfonts(list(soundfonts))


def programs_of_bundle(programs, labels) -> tuple[list[int], list[int]]:
    """``programs`` split into those whose tag is among the bundle's ``labels`` and those whose tag is not."""
    from .data import gm

    kept, left = [], []
    for p in map(int, programs):
        (kept if gm.GM_PROGRAM_TAGS[p] in labels else left).append(p)
    return kept, left


def held_note_table(clf, soundfonts, programs=DEFAULT_PROGRAMS, step: int = 6, seconds: float = 2.0,
                    velocity: int = 90, progress=None) -> list[dict]:
    """Rows ``{soundfont, program, tag, keys: [{key, prob, top, top_prob}]}``.

    Parameters
    ----------
    clf : rtclassify.Classifier
    soundfonts : sequence of str
        Keys of :data:`rtclassify.train.data.fluid.SOUNDFONTS`.
    programs : sequence of int
        GM programs (bank 0) with a tag; a program a soundfont lacks is skipped there, and one whose tag the
        bundle does not output (a fine-tuned bundle's subset) everywhere (see :func:`programs_of_bundle`).
    step : int
        Every ``step``-th key of the program's range (:func:`gm.program_range`).
    seconds : float
        Note length.
    progress : callable or None
        Called with one string per rendered row.
    """
    from .data import gm
    from .data.fluid import FluidRenderer
    from .data.labels import SAMPLE_RATE

    check_held_notes(soundfonts, programs, step, seconds)
    labels = list(clf.labels)
    programs, _ = programs_of_bundle(programs, labels)
    renderer = FluidRenderer(32000)
    rows = []
    try:
        for sf in soundfonts:
            presets = renderer.presets(sf)
            for prog in programs:
                prog = int(prog)
                if (0, prog) not in presets:
                    continue
                tag = gm.GM_PROGRAM_TAGS[prog]
                lo, hi = gm.program_range(prog)
                keys = []
                for key in range(lo, hi + 1, int(step)):
                    part = gm.PartSpec(tag, "held", prog, 0, [gm.Note(ONSET_S, ONSET_S + seconds, key, velocity)])
                    x = renderer.render_parts(sf, [part], ONSET_S + seconds + 0.3)[0]
                    res = clf.tag(x, SAMPLE_RATE)
                    keep = (res.times >= ONSET_S + SKIP_S) & (res.times <= ONSET_S + seconds)
                    p = res.probs[keep].mean(axis=0)
                    j = int(np.argmax(p))
                    keys.append({"key": key, "prob": round(float(p[labels.index(tag)]), 4), "top": labels[j],
                                 "top_prob": round(float(p[j]), 4)})
                rows.append({"soundfont": sf, "program": prog, "tag": tag, "preset": presets[(0, prog)], "keys": keys})
                if progress is not None:
                    progress(f"{sf} program {prog}")
    finally:
        renderer.close()
    return rows


def format_held_notes(rows: list[dict]):
    """A rich Table: one row per soundfont and program, ``key:prob`` cells, the top tag in
    parentheses where it is not the program's."""
    from rich.table import Table

    t = Table(title="held notes: mean probability of the program's tag (the tag read most, when another)")
    for c in ("soundfont", "program", "tag", "notes (key:prob)", "mean"):
        t.add_column(c)
    for r in rows:
        cells = [f"{k['key']}:{k['prob']:.2f}" + ("" if k["top"] == r["tag"] else f"({k['top'][:4]})")
                 for k in r["keys"]]
        mean = np.mean([k["prob"] for k in r["keys"]]) if r["keys"] else float("nan")
        t.add_row(r["soundfont"], f"{r['program']} {r['preset']}", r["tag"], " ".join(cells), f"{mean:.2f}")
    return t
