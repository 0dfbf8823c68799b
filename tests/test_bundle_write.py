"""Writing bundles (learn, Classifier.save, export): bad paths are one error, a failure keeps the old bundle."""

from __future__ import annotations

import os
import stat
import zipfile

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

from _rtc_bundle import write_bundle as write_test_bundle  # noqa: E402

from rtclassify.errors import ParameterError  # noqa: E402
from rtclassify.model import bundle_write  # noqa: E402
from rtclassify.model.bundle_write import check_bundle_out, write_bundle  # noqa: E402
from rtclassify.model.classifier import Classifier  # noqa: E402

FILES = {"model.onnx": b"onnx bytes", "model.json": b"{}"}


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return Classifier.load(write_test_bundle(tmp_path_factory.mktemp("bundle")))


def test_folder_and_zip_in_any_case(tmp_path):
    assert write_bundle(tmp_path / "a" / "b", FILES) == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b" / "model.json").read_bytes() == b"{}"
    for name in ("x.zip", "y.ZIP"):
        p = write_bundle(tmp_path / name, FILES)
        assert p.is_file() and sorted(zipfile.ZipFile(p).namelist()) == ["model.json", "model.onnx"]
    assert sorted(os.listdir(tmp_path)) == ["a", "x.zip", "y.ZIP"]  # no temporary left beside them


def test_files_get_the_umask_permissions_not_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        for out in (tmp_path / "f", tmp_path / "z.zip"):
            write_bundle(out, FILES)
            paths = [out] if out.suffix else [out / n for n in FILES]
            assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in paths)
    finally:
        os.umask(old)


@pytest.mark.parametrize("kind", ["empty", "not a path", "zip is a folder", "folder is a file", "under a file"])
def test_bad_paths_are_one_error(tmp_path, kind):
    (tmp_path / "dir.zip").mkdir()
    (tmp_path / "afile.txt").write_text("x")
    out, words = {
        "empty": ("", "is empty"),
        "not a path": (5, "must be a folder or a .zip path"),
        "zip is a folder": (tmp_path / "dir.zip", "is a folder"),
        "folder is a file": (tmp_path / "afile.txt", "exists and is not a folder"),
        "under a file": (tmp_path / "afile.txt" / "sub", "is not a folder"),
    }[kind]
    with pytest.raises(ParameterError, match=words):
        check_bundle_out(out)
    with pytest.raises(ParameterError, match=words):
        write_bundle(out, FILES)
    assert (tmp_path / "afile.txt").read_text() == "x"


def test_a_failed_write_keeps_the_existing_zip(tmp_path, monkeypatch):
    out = write_bundle(tmp_path / "b.zip", FILES)
    before = out.read_bytes()

    def full_disk(dest, write):  # the temporary file fills the disk half-way
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_write, "write_atomic", full_disk)
    with pytest.raises(ParameterError, match="cannot write the bundle .No space left on device"):
        write_bundle(out, {"model.onnx": b"new", "model.json": b"new"})
    assert out.read_bytes() == before


def test_a_partly_written_temporary_is_removed(tmp_path):
    dest = tmp_path / "m.bin"
    dest.write_bytes(b"old")

    def fail_half_way(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        bundle_write.write_atomic(dest, fail_half_way)
    assert dest.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.bin"]


def test_save_refuses_bad_paths_and_keeps_files(clf, tmp_path):
    (tmp_path / "dir.zip").mkdir()
    for path in ("", 5, tmp_path / "dir.zip"):
        with pytest.raises(ParameterError):
            clf.save(path)
    p = clf.save(tmp_path / "ok.ZIP")
    assert p.is_file() and Classifier.load(p).labels == clf.labels


def test_learn_checks_out_before_learning(clf, tmp_path, monkeypatch):
    from rtclassify.learn import learner

    monkeypatch.setattr(learner, "load_examples", lambda *a, **k: pytest.fail("learned before checking out"))
    (tmp_path / "dir.zip").mkdir()
    x = np.zeros(16000, np.float32)
    for out in ("", tmp_path / "dir.zip"):
        with pytest.raises(ParameterError):
            clf.learn("t", [x] * 3, sample_rate=16000, out=out)
    assert not (tmp_path / "model.onnx").exists() and not os.path.exists("model.onnx")


def test_learn_and_export_commands_refuse_a_bad_out_first(tmp_path, capsys):
    from rtclassify import cli

    (tmp_path / "afile.txt").write_text("x")
    for argv in (["learn", "--tag", "t", str(tmp_path / "missing.wav"), "--out", str(tmp_path / "afile.txt")],
                 ["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "afile.txt")]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--out" in err and "missing" not in err, err
    # an empty --out is a usage error, before anything else is looked at
    with pytest.raises(SystemExit) as exc:
        cli.main(["learn", "--tag", "t", str(tmp_path / "missing.wav"), "--out", ""])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err


def test_json_reports_are_written_whole_or_not_at_all(tmp_path):
    """The reports and histories (evaluate's <split>.json, real.json, held_notes.json, a run's history.json and
    eval/<test>.json, pretrain_history.json) went straight into their files: a run stopped mid-write left half
    of one. write_json_atomic leaves the earlier file when the new one cannot be written."""
    import json

    from rtclassify.model.bundle_write import write_json_atomic

    dest = tmp_path / "real.json"
    write_json_atomic(dest, {"n": 1})
    assert json.loads(dest.read_text()) == {"n": 1}
    with pytest.raises(TypeError):
        write_json_atomic(dest, {"n": 2, "bad": object()})
    assert json.loads(dest.read_text()) == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.json"]
