"""Bad input to `rtclassify evaluate`: labels.csv rows, --rms-floor-db, --out and --update-bundle are refused
in one line before any work, and nothing is written for a run that cannot start."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("sklearn")

from _rtc_bundle import tone  # noqa: E402

from rtclassify import cli  # noqa: E402
from rtclassify.errors import ParameterError  # noqa: E402
from rtclassify.model.bundle import default_bundle_path  # noqa: E402
from rtclassify.train import evaluate as ev  # noqa: E402

SR = 16000


def _real(tmp_path, labels: str):
    import soundfile as sf

    d = tmp_path / "real"
    d.mkdir(exist_ok=True)
    sf.write(d / "tone.wav", tone(SR, 1.0, 440.0, 0.3), SR)
    sf.write(d / "low.wav", tone(SR, 1.0, 110.0, 0.3), SR)
    (d / "labels.csv").write_text(labels)
    return d


def _evaluate(*argv):
    return cli.main(["evaluate", *[str(a) for a in argv]])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_file_listed_twice_is_an_error_naming_both_lines(tmp_path, capsys):
    d = _real(tmp_path, "file,tags,kind\ntone.wav,piano,real\nlow.wav,,real\n./tone.wav,organ,real\n")
    with pytest.raises(ParameterError, match=r"labels\.csv:4: file \./tone\.wav is listed twice \(lines 2 and 4\)"):
        ev.evaluate_real(default_bundle_path(), d)
    assert _evaluate(default_bundle_path(), "--real", d, "--out", tmp_path / "ev") == 1
    assert "is listed twice (lines 2 and 4)" in _one_line(capsys)
    assert not (tmp_path / "ev").exists()


def test_a_missing_file_is_named_as_missing_with_its_labels_csv_line(tmp_path, capsys):
    d = _real(tmp_path, "file,tags,kind\ntone.wav,piano,real\nmissing.wav,piano,real\n")
    with pytest.raises(ParameterError, match=r"labels\.csv:3: file .*missing\.wav is missing"):
        ev.evaluate_real(default_bundle_path(), d)
    with pytest.raises(ParameterError, match=r"missing\.wav: no such file"):
        ev._load_audio(d / "missing.wav", SR)
    assert _evaluate(default_bundle_path(), "--real", d, "--out", tmp_path / "ev") == 1
    err = _one_line(capsys)
    assert "labels.csv:3" in err and "is missing" in err and "System error" not in err


def test_an_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    from rtclassify.audio import files

    d = _real(tmp_path, "file,tags,kind\ntone.wav,piano,real\n")
    real_access = os.access
    monkeypatch.setattr(files.os, "access", lambda p, mode: False if str(p).endswith("tone.wav")
                        else real_access(p, mode))
    with pytest.raises(ParameterError, match=r"labels\.csv:2: .*tone\.wav: permission denied$"):
        ev.evaluate_real(default_bundle_path(), d)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_rms_floor_must_be_finite(tmp_path, capsys, value):
    d = _real(tmp_path, "file,tags,kind\ntone.wav,piano,real\n")
    with pytest.raises(SystemExit) as e:
        _evaluate(default_bundle_path(), "--real", d, "--out", tmp_path / "ev", f"--rms-floor-db={value}")
    assert e.value.code == 2
    assert "--rms-floor-db: must be a finite number" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="rms_floor_db must be a finite number"):
        ev.evaluate_real(default_bundle_path(), d, rms_floor_db=float(value))
    assert not (tmp_path / "ev").exists()


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    d = _real(tmp_path, "file,tags,kind\ntone.wav,piano,real\n")
    (tmp_path / "report.txt").write_text("mine")
    assert _evaluate(default_bundle_path(), "--real", d, "--out", tmp_path / "report.txt") == 1
    assert _one_line(capsys).endswith(f"--out {tmp_path / 'report.txt'}: exists and is not a folder")
    assert (tmp_path / "report.txt").read_text() == "mine"


def test_the_default_report_folder_waits_for_the_bundle_and_data(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = _real(tmp_path, "file,tags,kind\ntone.wav,kazoo,real\n")
    for argv in (("nope", "--real", d), (default_bundle_path(), "--real", tmp_path / "nothing"),
                 (default_bundle_path(), "--real", d), (default_bundle_path(), "--data", tmp_path / "nothing")):
        assert _evaluate(*argv) == 1
        _one_line(capsys)
        assert not (tmp_path / "eval").exists(), argv


def test_update_bundle_of_a_zip_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from rtclassify.model.bundle_write import write_bundle

    shipped = default_bundle_path()
    z = write_bundle(tmp_path / "b.zip", {n: shipped / n for n in ("model.onnx", "model.json")})
    d = _real(tmp_path, "file,tags,kind\ntone.wav,piano,real\n")
    monkeypatch.setattr(ev, "evaluate_real", lambda *a, **k: pytest.fail("evaluated before checking the bundle"))
    assert _evaluate(z, "--real", d, "--out", tmp_path / "ev", "--update-bundle") == 1
    assert _one_line(capsys).endswith(f"--update-bundle: {z} is a zip; metrics can be added to bundle folders only")
    assert not (tmp_path / "ev").exists()


def test_update_bundle_of_a_folder_still_works(tmp_path, capsys):
    from rtclassify.model.bundle_write import write_bundle

    shipped = default_bundle_path()
    b = write_bundle(tmp_path / "b", {n: shipped / n for n in ("model.onnx", "model.json")})
    d = _real(tmp_path, "file,tags,kind\ntone.wav,piano,real\n")
    assert _evaluate(b, "--real", d, "--out", tmp_path / "ev", "--update-bundle", "--rms-floor-db", "-60") == 0
    real = json.loads((b / "model.json").read_text())["metrics"]["real"]
    assert real["rms_floor_db"] == -60.0 and real["data"] == "real"
    rep = json.loads((tmp_path / "ev" / "real.json").read_text())
    assert np.isfinite(rep["rms_floor_db"]) and rep["files"]["tone.wav"]["n_sounding"] > 0


def test_split_f1_decides_as_the_live_decoder(tmp_path):
    # evaluate_split's F1 is of the tags' states as listen and Classifier.tag set them: the bundle's
    # smoothing and minimum durations along each clip, not its thresholds on the raw outputs
    from _rtc_bundle import write_bundle

    from rtclassify.model.bundle import load_bundle

    bundle = load_bundle(write_bundle(tmp_path / "b", smoothing_s=0.1, min_on_s=0.2, min_off_s=0.3))
    hop_s = bundle.hop_frames * bundle.hop_length / bundle.sample_rate
    n_tags = len(bundle.labels)
    p = np.full((40, n_tags), 0.1, np.float32)
    p[5:20] = 0.9          # a sound
    p[12] = 0.0            # one output's dip: raw thresholds turn off for one hop, the decoder holds on
    p[30] = 0.95           # one output's spike
    clip = np.r_[np.zeros(25, int), np.ones(15, int)]   # two clips: the decoder starts again at row 25
    active = ev._decide(bundle, p, clip, hop_s)
    from rtclassify.detect.decoder import Decoder, DecoderConfig

    expect = np.zeros_like(active)
    for rows in (range(0, 25), range(25, 40)):
        d = Decoder(DecoderConfig.from_bundle(bundle, level_rate=0.0), hop_s)
        for i in rows:
            d.step(p[i], i * hop_s)
            expect[i] = d.active
    assert np.array_equal(active, expect)
    raw = ev.hysteresis(p, np.full(n_tags, 0.6), np.full(n_tags, 0.4))
    assert not raw[12].any() and active[12].all()
    assert not np.array_equal(active, raw)
