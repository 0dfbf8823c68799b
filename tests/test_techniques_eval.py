"""Tests of the technique evaluation (rtclassify.train.techniques_eval, `rtclassify evaluate-techniques`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("scipy")

from rtclassify import cli  # noqa: E402
from rtclassify.errors import ParameterError  # noqa: E402
from rtclassify.train import techniques_eval as te  # noqa: E402


def oracle(spec, hop_s=0.005) -> te.SystemOutput:
    """A system that outputs the ground truth itself."""
    times = np.arange(int(spec.duration / hop_s)) * hop_s
    tr = te.truth_at(spec, times)
    return te.SystemOutput(times, tr.f0, tr.vibrato, tr.vibrato_rate, tr.vibrato_extent, tr.tremolo,
                           tr.tremolo_rate, tr.tremolo_depth)


def test_specs_are_deterministic_and_cover_the_sources():
    a, b = te.make_specs(12, seed=3), te.make_specs(12, seed=3)
    assert [s.name for s in a] == [s.name for s in b] and a[5].notes == b[5].notes
    assert {s.source for s in a} == set(te.SOURCES)
    assert te.make_specs(12, seed=4)[0].notes != a[0].notes
    with pytest.raises(ParameterError, match="n_clips"):
        te.make_specs(0)


def test_scoring_rewards_the_truth_and_punishes_errors():
    specs = [s for s in te.make_specs(12, seed=0) if any(m.kind == "tremolo" for n in s.notes for m in n.modulations)]
    specs = specs[:3]
    perfect = te.score_system(specs, [oracle(s) for s in specs])
    for kind in ("vibrato", "tremolo"):
        if kind in perfect and perfect[kind]["segments"]:
            assert perfect[kind]["f1"] == 1.0
            assert perfect[kind]["rate_mae"] == 0.0 and perfect[kind]["amount_mae"] == 0.0
            assert perfect[kind]["missed"] == 0
    # never on: every segment missed, F1 0
    outs = []
    for s in specs:
        o = oracle(s)
        o.tremolo = np.zeros_like(o.tremolo)
        outs.append(o)
    silent = te.score_system(specs, outs)
    assert silent["tremolo"]["f1"] == 0.0 and silent["tremolo"]["missed"] == silent["tremolo"]["segments"] > 0
    assert math.isnan(silent["tremolo"]["delay_periods"])
    # depth off by 2 dB everywhere: a depth MAE of 2 dB
    outs = []
    for s in specs:
        o = oracle(s)
        o.tremolo_depth = o.tremolo_depth + 2.0
        outs.append(o)
    assert te.score_system(specs, outs)["tremolo"]["amount_mae"] == pytest.approx(2.0)


def test_render_is_deterministic_and_the_room_is_optional():
    spec = te.make_specs(1, seed=0)[0]
    x = te.render_clip(spec)
    assert x.dtype == np.float32 and len(x) == int(round(spec.duration * spec.sample_rate))
    assert np.array_equal(x, te.render_clip(spec))
    dry = te.render_clip(spec, room=False)
    assert not np.array_equal(x, dry)
    # the room adds its reverberation, not a different noise: the silent lead-in before the first note
    # holds the same noise (scaled by the level normalization) in both
    lead = slice(0, int(0.2 * spec.sample_rate))
    ratio = np.std(x[lead]) / np.std(dry[lead])
    corr = np.corrcoef(x[lead], dry[lead])[0, 1]
    assert corr > 0.99 and 0.2 < ratio < 5.0


@pytest.mark.parametrize("sr, midi", [(16000, 79.0), (22050, 84.0), (48000, 60.0)])
def test_plucked_notes_sound_at_their_pitch(sr, midi):
    # the truth says the note's pitch: the string loop (a delay line and a two-point average, which delays by
    # half a sample) must have the note's period, or high plucked notes sound tens of cents flat
    note = te.Note(0.1, 1.1, midi)
    spec = te.ClipSpec(name="p", source="pluck", sample_rate=sr, duration=1.3, notes=[note], snr_db=80.0,
                       rt60=0.3, drr_db=20.0, level_db=-20.0, seed=5)
    x = te.render_clip(spec, room=False).astype(np.float64)
    seg = x[int(0.15 * sr):int(0.95 * sr)] * np.hanning(int(0.8 * sr))
    n_fft = 1 << 22
    mag = np.abs(np.fft.rfft(seg, n_fft))
    f = 440.0 * 2 ** ((midi - 69) / 12)
    band = slice(int(f * 0.9 * n_fft / sr), int(f * 1.1 * n_fft / sr))
    peak = (band.start + np.argmax(mag[band])) * sr / n_fft
    assert abs(1200 * np.log2(peak / f)) < 2.0


def test_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "eval"
    assert cli.main(["evaluate-techniques", "--clips", "3", "--no-anchors", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tremolo F1" in text and "targets met" in text
    report = json.loads((out / "techniques.json").read_text())
    assert report["config"]["n_clips"] == 3 and report["config"]["room"] is True
    assert set(report["systems"]) == {"rtclassify"}
    assert set(report["targets"]) == set(te.TARGETS)
    for t in report["targets"].values():  # each target's verdict follows from its value and bound
        assert t["op"] in (">=", "<=")
        if t["value"] is None or t["value"] != t["value"]:
            assert t["met"] is None
        else:
            assert t["met"] is (t["value"] >= t["bound"] if t["op"] == ">=" else t["value"] <= t["bound"])


def test_command_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # a usage error
        cli.main(["evaluate-techniques", "--clips", "0", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "--clips: must be >= 1" in capsys.readouterr().err
    assert cli.main(["evaluate-techniques", "--clips", "1", "--data", str(tmp_path / "missing"), "--out",
                     str(tmp_path)]) != 0
    assert "is not a folder" in capsys.readouterr().err
    # a folder without the steady notes names the missing file
    assert cli.main(["evaluate-techniques", "--clips", "1", "--no-anchors", "--data", str(tmp_path), "--out",
                     str(tmp_path / "out")]) != 0
    assert "flute-A4.wav" in capsys.readouterr().err
