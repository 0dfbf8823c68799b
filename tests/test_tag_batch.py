"""`rtclassify tag` on a batch of files (found in review): a bad file among good ones (--keep-going), standard
error or output closed, a write-protected --out (--force), what --help says and an --out ending in .json, and
file names after options."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402
import soundfile as sf  # noqa: E402

from rtclassify import cli  # noqa: E402
from rtclassify.model.classifier import Classifier  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def signal():
    return tb.demo_signal(SR)[: 2 * SR]


@pytest.fixture
def files(tmp_path, signal):
    """Two good WAV files, a file that is not audio (refused by the checks before any output), and a FLAC file
    whose header reads but whose frames do not (refused while it is tagged)."""
    a, b, text, damaged = (tmp_path / n for n in ("a.wav", "b.wav", "text.wav", "damaged.flac"))
    sf.write(a, signal, SR)
    sf.write(b, signal[: SR], SR)
    text.write_text("not audio")
    sf.write(damaged, 0.5 * np.random.default_rng(0).standard_normal(10 * SR), SR)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    damaged.write_bytes(bytes(data))
    return a, b, text, damaged


def _lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return err.strip().splitlines()


# 1 -- one bad file among good ones
def test_keep_going_tags_the_good_files_writes_them_and_exits_3(bundle_dir, files, tmp_path, capsys):
    """One bad file threw away the whole batch (with --out, the 300 files tagged before it): --keep-going says
    each bad file in one line, writes the others, and exits 3."""
    a, b, text, damaged = files
    out = tmp_path / "o.csv"
    args = ["tag", str(text), str(a), str(damaged), str(b), "--bundle", str(bundle_dir), "--out", str(out)]
    assert cli.main([*args, "--keep-going"]) == 3
    err = _lines(capsys.readouterr().err)
    for bad in (text, damaged):
        said = [line for line in err if str(bad) in line]
        assert len(said) == 1 and said[0].startswith("rtclassify tag: error: "), err
    assert "2 of 4 files failed" in err[-1]
    rows = out.read_text().splitlines()
    assert rows[0].startswith("file,time,low,high,any,pitch,")  # the header once, though the first file failed
    assert [r for r in rows if r.startswith("file,")] == rows[:1]
    assert {r.split(",")[0] for r in rows[1:]} == {str(a), str(b)}
    # the same on standard output, as JSON lines
    assert cli.main([*args[:-2], "--keep-going"]) == 3
    cap = capsys.readouterr()
    assert {json.loads(line)["file"] for line in cap.out.splitlines()} == {str(a), str(b)}


def test_without_keep_going_a_bad_file_stops_the_run_and_says_keep_going_exists(bundle_dir, files, tmp_path,
                                                                                 capsys):
    a, b, text, damaged = files
    out = tmp_path / "o.csv"
    out.write_text("earlier\n")
    for bad in (text, damaged):
        assert cli.main(["tag", str(a), str(bad), str(b), "--bundle", str(bundle_dir), "--out", str(out)]) == 1
        err = _lines(capsys.readouterr().err)
        assert len(err) == 1 and str(bad) in err[0] and "--keep-going" in err[0], err
        assert out.read_text() == "earlier\n"
    # every file failed: exit 1, and --out is left as it was
    assert cli.main(["tag", str(text), str(damaged), "--bundle", str(bundle_dir), "--out", str(out),
                     "--keep-going"]) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 3 and "none of the 2 files" in err[-1]
    assert out.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.wav", "b.wav", "text.wav", "damaged.flac",
                                                                  "o.csv"])


def test_keep_going_help_names_the_exit_status(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tag", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--keep-going" in text and "exit status is then 3" in text


# 2 -- standard error or standard output closed
def test_tag_with_standard_error_closed_writes_its_output_only(bundle_dir, signal, tmp_path, capsys, monkeypatch):
    """With standard error closed (`2>&-`: sys.stderr is None) every file failed (AttributeError); a warning
    must not land among the tags on standard output either."""
    nan = tmp_path / "nan.wav"
    y = signal.copy()
    y[1000:1100] = np.nan
    sf.write(nan, y, SR, subtype="FLOAT")
    monkeypatch.setattr(sys, "stderr", None)
    assert cli.main(["tag", str(nan), "--bundle", str(bundle_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)


def test_tag_with_standard_output_closed_says_use_out(bundle_dir, signal, tmp_path, capsys, monkeypatch):
    a = tmp_path / "a.wav"
    sf.write(a, signal, SR)
    monkeypatch.setattr(Classifier, "load", lambda *a, **k: pytest.fail("work began"))
    monkeypatch.setattr(sys, "stdout", None)
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir)]) == 1
    err = _lines(capsys.readouterr().err)
    assert err == ["rtclassify tag: error: standard output is closed; use --out FILE"]


def test_tag_in_a_process_with_standard_error_or_output_closed(bundle_dir, signal, tmp_path):
    a = tmp_path / "a.wav"
    sf.write(a, signal, SR)
    cmd = [sys.executable, "-m", "rtclassify.cli", "tag", str(a), "--bundle", str(bundle_dir), "--no-techniques"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120, cwd=tmp_path,
                       preexec_fn=lambda: os.close(2))
    assert p.returncode == 0 and [json.loads(line) for line in p.stdout.decode().splitlines()]
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120, cwd=tmp_path,
                       preexec_fn=lambda: os.close(1))
    assert p.returncode == 1
    assert p.stderr.decode().strip() == "rtclassify tag: error: standard output is closed; use --out FILE"


def test_an_error_with_standard_error_closed_does_not_land_among_the_output(bundle_dir, files, tmp_path):
    """`tag good.wav damaged.flac 2>&-`: the error line was printed to sys.stderr, None, and print wrote it into
    standard output, after the JSON lines of the good file."""
    a, _, _, damaged = files
    cmd = [sys.executable, "-m", "rtclassify.cli", "tag", str(a), str(damaged), "--bundle", str(bundle_dir),
           "--no-techniques"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120, cwd=tmp_path,
                       preexec_fn=lambda: os.close(2))
    assert p.returncode == 1
    lines = p.stdout.decode().splitlines()
    assert lines and all(json.loads(line)["file"] == str(a) for line in lines)


# 3 -- a write-protected --out
def test_a_write_protected_out_is_refused_before_any_work_unless_force(bundle_dir, signal, tmp_path, capsys,
                                                                        monkeypatch):
    """os.replace needs only the folder writable, so a mode-444 --out was replaced without a word (and as root
    os.access says yes to anything: the mode itself is read)."""
    a = tmp_path / "a.wav"
    sf.write(a, signal, SR)
    out = tmp_path / "o.jsonl"
    out.write_text("keep me\n")
    out.chmod(0o444)
    real_load = Classifier.load
    monkeypatch.setattr(Classifier, "load", lambda *a, **k: pytest.fail("work began"))
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", str(out)]) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and f"--out {out}: is write-protected" in err[0] and "--force" in err[0]
    assert out.read_text() == "keep me\n"
    monkeypatch.setattr(Classifier, "load", real_load)
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", str(out), "--force"]) == 0
    assert json.loads(out.read_text().splitlines()[0])["probs"]
    assert out.stat().st_mode & 0o777 == 0o444  # replaced, with the permissions it had


# 4 -- what --help says; an --out ending in .json
def test_tag_help_names_the_columns_fields_inputs_and_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tag", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("pitch,vibrato,vibrato_rate,vibrato_extent,tremolo,", "tremolo_rate,tremolo_depth",
                  "leading file column", '"file" field', '"probs"', '"active"', '"pitch"', '"vibrato"',
                  '"tremolo"', '"event"', '"technique"', "A folder is not searched",
                  "Standard input (-) or a pipe is read once, as the only FILE", "-f wav - | rtclassify tag -",
                  "exit status:", "130"):
        assert words in text, words


def test_an_out_ending_in_json_is_refused_with_the_way_out(bundle_dir, signal, tmp_path, capsys):
    """`--out x.json` wrote JSON lines, which json.load cannot read."""
    a = tmp_path / "a.wav"
    sf.write(a, signal, SR)
    for name, extra in (("x.json", []), ("y.JSON", ["--format", "jsonl"])):
        assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", str(tmp_path / name), *extra]) == 1
        err = _lines(capsys.readouterr().err)
        assert len(err) == 1 and name in err[0] and ".jsonl" in err[0]
        assert not (tmp_path / name).exists()


# 5 -- file names after options
def test_file_names_may_follow_options(bundle_dir, signal, tmp_path, capsys):
    from rtclassify.cli import build_parser

    p = build_parser()
    ns = p.parse_args(["tag", "a.wav", "--out", "x.csv", "b.wav", "--keep-going", "c.wav"])
    assert ns.files == ["a.wav", "b.wav", "c.wav"] and ns.out == "x.csv" and ns.keep_going
    # after "--" everything is a file name, as before
    assert p.parse_args(["tag", "--out", "x.csv", "--", "-b.wav"]).files == ["-b.wav"]
    assert p.parse_args(["tag", "--", "a.wav", "--out", "x.csv"]).files == ["a.wav", "--out", "x.csv"]
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["tag", "--out", "x.csv"])
    assert exc.value.code == 2 and "required: FILE" in capsys.readouterr().err
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, signal, SR)
    sf.write(b, signal, SR)
    out = tmp_path / "o.csv"
    assert cli.main(["tag", str(a), "--out", str(out), str(b), "--bundle", str(bundle_dir), "--no-techniques"]) == 0
    assert {r.split(",")[0] for r in out.read_text().splitlines()[1:]} == {str(a), str(b)}


def test_with_file_names_a_single_file_too(bundle_dir, signal, tmp_path, capsys):
    """`for f in *.wav; do rtclassify tag "$f" >> all.jsonl; done` lost which file each line came from: the
    file field came with several files only."""
    a = tmp_path / "a.wav"
    sf.write(a, signal, SR)
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--no-techniques", "--with-file"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and all(x["file"] == str(a) for x in lines)
    out = tmp_path / "a.csv"
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--no-techniques", "--with-file", "--out",
                     str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("file,time,") and all(r.startswith(f"{a},") for r in rows[1:])
