"""Tests of the real-recording evaluation (rtclassify.train.evaluate.evaluate_real, `evaluate --real`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rtclassify.errors import ParameterError
from rtclassify.train.evaluate import _onsets, evaluate_real, onset_summary

SMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sms-tools"
TAGS = ["piano", "speech"]


def test_onset_is_measured_from_the_first_loud_sample():
    sr = 1000
    audio = np.zeros(2000, np.float32)
    audio[500:] = 0.1  # -20 dBFS from 0.5 s
    times = np.arange(0.0, 2.0, 0.05)
    active = np.zeros((len(times), 2), bool)
    active[times >= 0.62, 0] = True
    active[times < 0.2, 1] = True  # on before the sound: does not count as its onset
    res = SimpleNamespace(times=times, active=active)
    on = _onsets(audio, sr, res, ["piano", "speech"], TAGS, -50.0)
    assert on["piano"] == pytest.approx(0.15)  # first output at or after 0.62 s is 0.65 s
    assert on["speech"] is None
    # no sample above the floor: nothing is timed (not "never on")
    assert _onsets(np.zeros(100, np.float32), sr, res, ["piano"], TAGS, -50.0) is None
    # a sound too short for one output is not timed either (it counted as "never on")
    none = SimpleNamespace(times=np.zeros(0), active=np.zeros((0, 2), bool))
    assert _onsets(np.full(100, 0.1, np.float32), sr, none, ["piano"], TAGS, -50.0) is None
    files = {"a": {"kind": "real", "onset_s": on}, "b": {"kind": "synthetic", "onset_s": {"piano": 0.0}},
             "c": {"kind": "real", "onset_s": {"piano": 0.35}},
             "d": {"kind": "real", "labelled": ["organ", "bass"], "onset_s": None}}
    assert onset_summary(files) == {"n": 3, "never": 1, "unmeasured": 2, "median_s": pytest.approx(0.25)}
    assert onset_summary({}) == {"n": 0, "never": 0, "unmeasured": 0, "median_s": None}


def test_real_report_with_the_default_bundle(tmp_path, capsys):
    from _jackd import skip_or_fail

    if not (SMS / "labels.csv").exists():
        skip_or_fail("../shared/data/sms-tools is not beside the checkout")
    from rtclassify import cli
    from rtclassify.model.bundle import default_bundle_path

    for f in ("flute-A4.wav", "speech-female.wav", "rain.wav"):
        shutil.copy(SMS / f, tmp_path / f)
    (tmp_path / "labels.csv").write_text("file,tags,kind,note\nflute-A4.wav,woodwind,real,\n"
                                         "speech-female.wav,speech,real,\nrain.wav,,real,no music\n")
    rep = evaluate_real(default_bundle_path(), tmp_path)
    assert set(rep["files"]) == {"flute-A4.wav", "speech-female.wav", "rain.wav"}
    assert set(rep["targets"]["single_instrument"]) == {"flute-A4.wav"}
    assert set(rep["targets"]["no_music"]) == {"rain.wav"}
    assert set(rep["targets"]["speech_no_singing"]) == {"speech-female.wav"}
    assert rep["onsets"]["n"] == 2 and rep["files"]["rain.wav"]["onset_s"] == {}
    for f in ("flute-A4.wav", "speech-female.wav"):
        v = next(iter(rep["files"][f]["onset_s"].values()))
        assert v is None or 0.0 <= v < 5.0
    assert cli.main(["evaluate", str(default_bundle_path()), "--real", str(tmp_path), "--out",
                     str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "first on after the sound starts" in out and "no music" in out
    assert json.loads((tmp_path / "ev" / "real.json").read_text())["onsets"]["n"] == 2
    # a floor no frame reaches: nothing is measured, and that is said, not counted as passes or as never on
    assert cli.main(["evaluate", str(default_bundle_path()), "--real", str(tmp_path), "--out",
                     str(tmp_path / "ev2"), "--rms-floor-db", "0"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    rep = json.loads((tmp_path / "ev2" / "real.json").read_text())
    assert rep["targets"]["single_instrument"] == {} and rep["targets"]["unmeasured"] == ["flute-A4.wav"]
    assert rep["targets"]["all_pass"] is False
    assert rep["onsets"]["n"] == 0 and rep["onsets"]["unmeasured"] == 2
    assert "single-instrument, not measured (no frame above --rms-floor-db 0 dBFS): flute-A4.wav" in out
    assert "not timed for 2 (file, tag) pair(s)" in out and "never on in" not in out
    # a report folder used before: its other reports are said to be older (they read as this run's)
    (tmp_path / "ev3").mkdir()
    (tmp_path / "ev3" / "test.json").write_text("{}")
    assert cli.main(["evaluate", str(default_bundle_path()), "--real", str(tmp_path), "--out",
                     str(tmp_path / "ev3")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"note: {tmp_path / 'ev3'} also holds test.json from an earlier evaluation" in out


def test_real_errors(tmp_path):
    from rtclassify.model.bundle import default_bundle_path

    with pytest.raises(ParameterError, match="labels.csv"):
        evaluate_real(default_bundle_path(), tmp_path)
    (tmp_path / "labels.csv").write_text("file,tags,kind\nx.wav,kazoo,real\n")
    with pytest.raises(ParameterError, match="kazoo"):
        evaluate_real(default_bundle_path(), tmp_path)
