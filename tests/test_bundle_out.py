"""Where `learn` and `export` write a bundle: an existing bundle only with --force, never a folder of other
files or the shipped bundle, and the folder swapped in whole (an interruption keeps the old bundle)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from rtclassify import cli
from rtclassify.errors import ParameterError
from rtclassify.model import bundle_write
from rtclassify.model.bundle import default_bundle_path
from rtclassify.model.bundle_write import check_bundle_out, write_bundle

OLD = {"model.onnx": b"old onnx", "model.json": b'{"old": 1}'}
NEW = {"model.onnx": b"new onnx", "model.json": b'{"new": 1}'}


def _folder(path: Path, files: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


def _contents(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _learn(out, *extra, positive="missing.wav"):
    return cli.main(["learn", "--tag", "t", positive, "--out", str(out), *extra])


def _export(out, *extra, checkpoint="missing.pt"):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    return cli.main(["export", str(checkpoint), "--out", str(out), *extra])


@pytest.mark.parametrize("command", [_learn, _export])
def test_an_existing_bundle_needs_force(tmp_path, capsys, command):
    out = _folder(tmp_path / "bundle", OLD)
    assert command(out) == 1
    err = _one_line(capsys)
    assert f"--out {out}: exists and is not empty" in err and "pass --force" in err
    assert _contents(out) == OLD
    write_bundle(tmp_path / "b.zip", OLD)
    before = (tmp_path / "b.zip").read_bytes()
    assert command(tmp_path / "b.zip") == 1
    assert "pass --force" in _one_line(capsys) and (tmp_path / "b.zip").read_bytes() == before


@pytest.mark.parametrize("command", [_learn, _export])
def test_force_does_not_mix_a_bundle_into_other_files(tmp_path, capsys, command):
    wavs = _folder(tmp_path / "takes", {"take1.wav": b"RIFF", "model.json": b"mine"})
    for extra in ((), ("--force",)):
        assert command(wavs, *extra) == 1
        err = _one_line(capsys)
        assert f"--out {wavs}: exists and holds files that are not a bundle's (take1.wav)" in err, err
    assert _contents(wavs) == {"model.json": b"mine", "take1.wav": b"RIFF"}
    (tmp_path / "photos.zip").write_bytes(b"PK not really")
    assert command(tmp_path / "photos.zip", "--force") == 1
    assert "is not a bundle zip" in _one_line(capsys)
    assert (tmp_path / "photos.zip").read_bytes() == b"PK not really"


@pytest.mark.parametrize("command", [_learn, _export])
def test_the_shipped_bundle_is_never_the_out(tmp_path, capsys, command):
    shipped = default_bundle_path()
    before = _contents(shipped)
    for out in (shipped, shipped / "sub"):
        assert command(out, "--force") == 1
        assert "the package's own default bundle" in _one_line(capsys)
    assert _contents(shipped) == before


def test_force_gets_past_the_out_check_and_an_empty_folder_needs_none(tmp_path, capsys):
    out = _folder(tmp_path / "bundle", OLD)
    assert _learn(out, "--force", positive=str(tmp_path / "missing.wav")) == 1
    assert _one_line(capsys).endswith("missing.wav: no such file")
    (tmp_path / "empty").mkdir()
    assert check_bundle_out(tmp_path / "empty", force=False) == tmp_path / "empty"
    assert _learn(tmp_path / "empty", positive=str(tmp_path / "missing.wav")) == 1
    assert _one_line(capsys).endswith("missing.wav: no such file")


def test_export_force_replaces_a_bundle_whole(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from _models import checkpoint_of, random_model

    torch.save(checkpoint_of(random_model()), tmp_path / "model.pt")
    out = _folder(tmp_path / "bundle", {**OLD, "weights.pt": b"old weights"})
    assert cli.main(["export", str(tmp_path / "model.pt"), "--out", str(out), "--name", "again", "--force"]) == 0
    assert sorted(os.listdir(out)) == ["model.json", "model.onnx"]
    assert b'"name": "again"' in (out / "model.json").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["bundle", "model.pt"]  # no temporary folder left beside it


def test_export_of_a_folder_says_a_checkpoint_file_is_expected(tmp_path, capsys):
    run = _folder(tmp_path / "run", {"model.pt": b"x"})
    assert _export(tmp_path / "out", checkpoint=run) == 1
    err = _one_line(capsys)
    assert f"checkpoint {run}: is a folder" in err and "model.pt" in err and "not found" not in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ write_bundle (every writer)
def test_a_failure_half_way_keeps_the_old_bundle_whole(tmp_path):
    out = _folder(tmp_path / "bundle", OLD)
    with pytest.raises(ParameterError, match="cannot write the bundle"):
        write_bundle(out, {"model.onnx": b"new onnx", "model.json": tmp_path / "gone.json"})
    assert _contents(out) == OLD
    assert os.listdir(tmp_path) == ["bundle"]


def test_an_interruption_between_the_renames_puts_the_old_bundle_back(tmp_path, monkeypatch):
    out = _folder(tmp_path / "bundle", OLD)
    monkeypatch.setattr(bundle_write, "_exchange", lambda a, b: False)  # a system without an atomic exchange
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:  # the new folder onto the bundle's name
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(bundle_write.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(out, NEW)
    monkeypatch.undo()
    assert _contents(out) == OLD and os.listdir(tmp_path) == ["bundle"]
    write_bundle(out, NEW)
    assert _contents(out) == NEW and os.listdir(tmp_path) == ["bundle"]


def test_the_swap_keeps_the_folder_mode_and_a_link_to_it(tmp_path):
    real = _folder(tmp_path / "real", OLD)
    os.chmod(real, 0o750)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    write_bundle(link, NEW)
    assert link.is_symlink() and _contents(real) == NEW
    assert (os.stat(real).st_mode & 0o777) == 0o750


def test_the_python_api_replaces_a_bundle_but_not_other_files(clf, tmp_path):
    out = _folder(tmp_path / "bundle", {**OLD, "weights.pt": b"old weights"})
    assert clf.save(out) == out
    assert sorted(os.listdir(out)) == ["model.json", "model.onnx"] and _contents(out)["model.json"] != OLD["model.json"]
    mine = _folder(tmp_path / "mine", {"model.json": b"my settings", "notes.txt": b"x"})
    with pytest.raises(ParameterError, match=r"holds files that are not a bundle's \(notes.txt\)"):
        clf.save(mine)
    assert _contents(mine) == {"model.json": b"my settings", "notes.txt": b"x"}
    z = tmp_path / "archive.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("holiday.jpg", b"jpeg")
    with pytest.raises(ParameterError, match="is not a bundle zip"):
        clf.save(z)
    assert zipfile.ZipFile(z).namelist() == ["holiday.jpg"]
    clf.save(tmp_path / "b.zip")
    assert sorted(zipfile.ZipFile(clf.save(tmp_path / "b.zip")).namelist()) == ["model.json", "model.onnx"]


def test_the_shipped_bundle_folder_holds_its_bundle_files_only():
    # the default config trains into it (README's rebuild), and an out folder holding other files is refused:
    # a README put there stopped the documented recipe (its notes are rtclassify/data/DEFAULT_MODEL.md)
    import os

    from rtclassify.model.bundle_write import _is_bundle_entry

    names = os.listdir(default_bundle_path())
    assert names and all(_is_bundle_entry(n) for n in names), names
    assert (default_bundle_path().parent / "DEFAULT_MODEL.md").is_file()
