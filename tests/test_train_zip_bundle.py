"""`rtclassify train` with a `.zip` output bundle: the test metrics reach the zip.

The test evaluation writes its report into the bundle's model.json, which a zip cannot take in place;
the run packs the zip from an evaluated folder instead of failing after the training.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("onnx")  # export

from _train import SR, fake_data, tiny_config  # noqa: E402


def _tiny(tmp_path, monkeypatch, out):
    fake_data(monkeypatch, {"train": 20, "val": 21, "test": 22}, {"train": 6, "val": 3, "test": 3}, "zip",
              {"recipe": "synthetic clips of the test"})
    (tmp_path / "data").mkdir()
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(tiny_config(tmp_path, 128, f'bundle = "{out}"\nname = "tiny-zip"'))
    return cfg


def test_train_writes_a_zip_bundle_with_its_test_metrics(tmp_path, monkeypatch):
    from rtclassify.cli import main
    from rtclassify.model.classifier import Classifier

    out = tmp_path / "out" / "tiny.zip"
    cfg = _tiny(tmp_path, monkeypatch, out)
    assert main(["train", "--config", str(cfg)]) == 0
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == ["model.json", "model.onnx"]
        meta = json.loads(z.read("model.json"))
    assert meta["name"] == "tiny-zip" and {"validation", "test"} <= set(meta["metrics"])
    assert meta["metrics"]["test"]["split"] == "test"
    report = json.loads((tmp_path / "run" / "eval" / "test.json").read_text())
    assert meta["metrics"]["test"]["macro"] == report["macro"]
    # the folder it was packed from is gone; the run folder holds the run only
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".bundle-")]
    assert Classifier.load(out).tag(np.zeros(SR, np.float32), SR).probs.shape[1] == 12


def test_a_failed_test_evaluation_still_leaves_the_zip(tmp_path, monkeypatch, capsys):
    """The trained model is not lost with the evaluation: the zip is packed without test metrics."""
    import rtclassify.train.trainer as T
    from rtclassify.cli import main
    from rtclassify.errors import ParameterError

    def fail(*a, **kw):
        raise ParameterError("the test split cannot be read")

    monkeypatch.setattr(T, "_evaluate_test", fail)
    out = tmp_path / "tiny.zip"
    assert main(["train", "--config", str(_tiny(tmp_path, monkeypatch, out))]) == 1
    captured = capsys.readouterr()
    assert "the test split cannot be read" in captured.err and "without test metrics" in captured.out
    with zipfile.ZipFile(out) as z:
        meta = json.loads(z.read("model.json"))
    assert "validation" in meta["metrics"] and "test" not in meta["metrics"]
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".bundle-")]
