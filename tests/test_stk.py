"""STK physical-model rendering: the program map, SKINI scores, stems and errors."""

import shutil

import numpy as np
import pytest

from rtclassify.errors import MissingDependencyError, RtclassifyError
from rtclassify.train.data import gm
from rtclassify.train.data.gm import Note, PartSpec

pytest.importorskip("soxr")
import rtclassify.train.data.stk as S  # noqa: E402  (the project's own module: a failed import fails)


def _has_stk():
    try:
        S.check_stk()
    except MissingDependencyError:
        return False
    return True


needs_stk = pytest.mark.skipif(not _has_stk(), reason="apt-get install stk faketime")


def _messages(score: str) -> list[tuple[float, list[str]]]:
    """(absolute time, fields) of each SKINI line (the scores use delta times)."""
    out, now = [], 0.0
    for line in score.strip().splitlines():
        kind, dt, *rest = line.split("\t")
        now += float(dt)
        out.append((round(now, 6), [kind] + rest))
    return out


def test_every_pitched_music_tag_has_stk_programs():
    for prog in S.STK_PROGRAMS:
        assert gm.GM_PROGRAM_TAGS[prog] is not None
    tags = {gm.GM_PROGRAM_TAGS[p] for p in S.STK_PROGRAMS}
    assert tags == set(gm.TAG_PROGRAMS) - {"drums"}  # drum parts are played by FluidR3_GM
    presets = S.StkRenderer.presets(None)
    assert presets[(0, 40)] == "Bowed" and presets[(0, 71)] == "Clarinet" and (0, 0) not in presets


def test_controls_are_drawn_per_part_within_their_ranges():
    a = PartSpec("strings", "melody", 40, 0, [Note(0.1, 1.0, 60, 90)])
    b = PartSpec("strings", "melody", 40, 0, [Note(0.2, 1.0, 60, 90)])
    inst, ccs, clock = S.part_controls(a)
    assert inst == "Bowed" and S.part_controls(a) == (inst, ccs, clock)  # the same part, the same draw
    assert dict(ccs)[7] == S.STK_PROGRAMS[40].volume
    for cc, lo, hi in S.STK_PROGRAMS[40].drawn:
        assert lo <= dict(ccs)[cc] <= hi or (cc == 1 and dict(ccs)[cc] == 0)
    draws = [S.part_controls(PartSpec("strings", "melody", 40, 0, [Note(0.01 * i, 1.0, 60, 90)]))[1] for i in range(40)]
    assert len({tuple(d) for d in draws}) > 30 and S.part_controls(b) != (inst, ccs, clock)
    assert 5 < sum(dict(d)[1] == 0 for d in draws) < 35  # straight notes and vibrato both occur
    assert dict(S.part_controls(PartSpec("mallet", "melody", 11, 0, [Note(0, 1, 72, 90)]))[1])[16] == 1  # vibraphone
    with pytest.raises(RtclassifyError, match="program 0"):
        S.part_controls(PartSpec("piano", "melody", 0, 0, [Note(0, 1, 60, 90)]))


def test_skini_score_times_keys_and_velocities():
    part = PartSpec("brass", "melody", 57, 0, [Note(0.5, 1.25, 55, 1), Note(1.0, 9.0, 70, 127), Note(4.5, 5, 72, 90)])
    _, ccs, _ = S.part_controls(part)
    msgs = _messages(S.part_skini(part, 4.0, ccs))
    assert [m for t, m in msgs if m[0] == "ControlChange"] == [["ControlChange", "1", str(c), str(v)] for c, v in ccs]
    assert all(t == 0.0 for t, m in msgs if m[0] == "ControlChange")
    notes = [(t, m) for t, m in msgs if m[0].startswith("Note") and m[2] != "0"]
    # key 55 is under the lip-reed model's lowest speaking note (67): raised by an octave
    assert notes == [(0.5, ["NoteOn", "1", "67", "80"]), (1.0, ["NoteOn", "1", "70", "127"]),
                     (1.25, ["NoteOff", "1", "67", "64"]), (4.0, ["NoteOff", "1", "70", "64"])]
    assert msgs[-1] == (4.0, ["NoteOff", "1", "0", "0"])  # the score lasts the clip
    high = S.part_skini(PartSpec("strings", "melody", 40, 0, [Note(0, 1, 100, 90)]), 2.0, [])
    assert "\t1\t88\t" in high  # over the bowed model's top: lowered by an octave


@needs_stk
def test_stems_are_sized_timed_and_deterministic():
    r = S.StkRenderer("stk", 32000)
    for prog in (71, 26, 40, 57):  # two noise-excited models, the bowed string and the lip reed
        part = PartSpec(gm.GM_PROGRAM_TAGS[prog], "melody", prog, 0, [Note(0.1, 1.4, 60, 100)])
        a = r.render_part(part, 2.0)
        assert a.shape == (32000,) and a.dtype == np.float32
        assert np.sqrt(np.mean(a[3200:20000] ** 2)) > 1e-3, prog
        assert np.abs(a).max() < 1.0
        onset = int(np.argmax(np.abs(a) > 0.01 * np.abs(a).max()))
        assert 1580 <= onset < 2080, (prog, onset)  # the note at 0.1 s (the lip reed speaks ~20 ms later)
        assert np.array_equal(a, r.render_part(part, 2.0)), prog
    part2 = PartSpec("strings", "melody", 40, 0, [Note(0.1, 1.4, 60, 100), Note(1.5, 1.9, 62, 100)])
    b, c = r.render_parts([part2, part2], 2.0)
    assert np.array_equal(b, c) and not np.array_equal(b, r.render_part(part, 2.0))


@needs_stk
def test_chords_render_every_voice():
    r = S.StkRenderer("stk", 32000)
    one = r.render_part(PartSpec("organ", "chords", 16, 0, [Note(0.1, 1.5, 60, 100)]), 2.0)
    three = r.render_part(PartSpec("organ", "chords", 16, 0, [Note(0.1, 1.5, k, 100) for k in (60, 64, 67)]), 2.0)
    assert np.sqrt(np.mean(three ** 2)) > 1.3 * np.sqrt(np.mean(one ** 2))


def test_missing_tools_name_the_packages(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install stk"):
        S.check_stk()
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name if name == "stk-demo" else None)
    monkeypatch.setattr(S.os.path, "isdir", lambda p: True)
    with pytest.raises(MissingDependencyError, match="faketime"):
        S.check_stk()
