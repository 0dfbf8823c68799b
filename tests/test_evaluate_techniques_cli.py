"""`rtclassify evaluate-techniques` options: bad values are one error line, checked before the evaluation runs;
targets that could not be measured are reported as such, not as missed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("scipy")

from rtclassify import cli  # noqa: E402
from rtclassify.commands import evaluate_techniques as cmd  # noqa: E402
from rtclassify.errors import ParameterError  # noqa: E402
from rtclassify.train import MAX_SEED  # noqa: E402
from rtclassify.train import techniques_eval as te  # noqa: E402

SMS_TOOLS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sms-tools"


@pytest.fixture
def no_evaluation(monkeypatch):
    """te.evaluate replaced by one that records its calls (the option checks must come before it)."""
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        raise AssertionError("the evaluation ran before the options were checked")

    monkeypatch.setattr(te, "evaluate", fake)
    return calls


def _usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate-techniques", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("value", ["-1", str(MAX_SEED + 1)])
def test_a_seed_out_of_range_is_a_usage_error(value, capsys, no_evaluation):
    err = _usage_error(["--seed", value, "--out", "unused"], capsys)
    assert "--seed" in err and value in err and str(MAX_SEED) in err
    assert not no_evaluation
    # the range's ends are accepted
    parser = cli.build_parser()
    assert parser.parse_args(["evaluate-techniques", "--seed", str(MAX_SEED)]).seed == MAX_SEED
    assert parser.parse_args(["evaluate-techniques", "--seed", "0"]).seed == 0


@pytest.mark.parametrize("value", ["0", "-3"])
def test_clips_below_one_is_a_usage_error(value, capsys, no_evaluation):
    err = _usage_error(["--clips", value], capsys)
    assert "--clips" in err and ">= 1" in err


@pytest.mark.parametrize("sub", ["", "sub"])
def test_out_a_file_is_one_error_before_the_evaluation(sub, tmp_path, capsys, no_evaluation):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    out = afile / sub if sub else afile
    assert cli.main(["evaluate-techniques", "--clips", "1", "--no-anchors", "--data", str(SMS_TOOLS),
                     "--out", str(out)] if SMS_TOOLS.is_dir() else
                    ["evaluate-techniques", "--clips", "1", "--no-anchors", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rtclassify evaluate-techniques: error: --out ")
    assert str(out) in err
    assert not no_evaluation and afile.read_text() == "keep me"


def test_data_without_the_steady_notes_fails_before_the_evaluation(tmp_path, capsys, no_evaluation):
    data = tmp_path / "notes"
    data.mkdir()
    (data / "flute-A4.wav").write_bytes(b"")  # present (but not read: others are missing)
    out = tmp_path / "out"
    assert cli.main(["evaluate-techniques", "--clips", "1", "--data", str(data), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--data" in err
    assert "oboe-A4.wav" in err and "violin-B3.wav" in err and "flute-A4.wav" not in err
    assert not no_evaluation and not out.exists()


def test_data_with_an_unreadable_note_fails_before_the_evaluation(tmp_path, capsys, no_evaluation):
    for f in te.STEADY_NOTES:
        (tmp_path / f).write_bytes(b"not audio")
    assert cli.main(["evaluate-techniques", "--clips", "1", "--data", str(tmp_path), "--out",
                     str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--data" in err and "not a readable sound file" in err
    assert not no_evaluation


def test_evaluate_checks_the_steady_notes_before_the_synthetic_clips(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("synthetic clips made before data_dir was checked")

    monkeypatch.setattr(te, "make_specs", boom)
    with pytest.raises(ParameterError, match="data_dir .*flute-A4.wav"):
        te.evaluate(n_clips=1, data_dir=tmp_path, anchors=False)


def test_the_real_steady_notes_pass_the_check():
    from _jackd import skip_or_fail

    if not SMS_TOOLS.is_dir():
        skip_or_fail("no ../shared/data/sms-tools")
    te.check_steady_notes(SMS_TOOLS, what="--data")  # raises where a steady note fails the check


def test_an_unmeasurable_target_is_neither_met_nor_missed():
    assert te._check(math.nan, ("<=", 0.05)) is None and te._check(None, (">=", 0.95)) is None
    assert te._check(0.01, ("<=", 0.05)) is True and te._check(0.5, (">=", 0.95)) is False


def test_skipped_steady_notes_are_reported_as_not_measured(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cmd, "_default_data_dir", lambda: None)
    out = tmp_path / "out"
    assert cli.main(["evaluate-techniques", "--clips", "1", "--no-anchors", "--out", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    report = json.loads((out / "techniques.json").read_text())
    steady = report["targets"]["steady_false_fraction"]
    assert steady["measured"] is False and steady["met"] is None and steady["value"] is None
    summary = report["targets_summary"]
    assert "steady_false_fraction" in summary["not_measured"]
    assert summary["total"] == len(te.TARGETS) == summary["measured"] + len(summary["not_measured"])
    assert summary["met"] == sum(1 for t in report["targets"].values() if t["met"])
    for name, t in report["targets"].items():
        assert t["measured"] == (name not in summary["not_measured"])
        assert t["met"] == te._check(t["value"], (t["op"], t["bound"]))
    assert (f"targets met: {summary['met']}/{summary['measured']}, {len(summary['not_measured'])} not measured ("
            in text)
    assert "steady_false_fraction" in text.split("targets met:")[1]


def test_help_says_where_the_default_data_folder_is(monkeypatch, capsys):
    monkeypatch.setattr(cmd, "_default_data_dir", lambda: Path("/some/where/100%/shared/data/sms-tools"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate-techniques", "--help"])
    assert exc.value.code == 0
    text = "".join(capsys.readouterr().out.split())  # argparse wraps the lines
    assert "/some/where/100%/shared/data/sms-tools" in text
    assert "besidethertclassifysourcecheckout" in text and "notrelativetothecurrentfolder" in text
    monkeypatch.setattr(cmd, "_default_data_dir", lambda: None)
    with pytest.raises(SystemExit):
        cli.main(["evaluate-techniques", "--help"])
    assert "thesteadynotesareskipped" in "".join(capsys.readouterr().out.split())


def test_an_anchor_status_naming_an_extra_is_printed_whole(tmp_path, capsys, monkeypatch):
    # rich read "[train]" in "pip install 'rtclassify[train]'" as markup and printed "pip install 'rtclassify'"
    real = te.evaluate
    status = "skipped: librosa is not installed; pip install 'rtclassify[train]'"

    def with_a_skipped_anchor(**kwargs):
        report = real(**kwargs)
        report["config"]["anchors"] = {"pyin": status}
        return report

    monkeypatch.setattr(te, "evaluate", with_a_skipped_anchor)
    monkeypatch.setattr(cmd, "_default_data_dir", lambda: None)
    assert cli.main(["evaluate-techniques", "--clips", "1", "--no-anchors", "--out", str(tmp_path / "o")]) == 0
    assert f"pyin: {status}" in " ".join(capsys.readouterr().out.split())


def test_a_missing_soundfont_fails_before_the_evaluation_when_the_clips_need_it(tmp_path, capsys, monkeypatch,
                                                                                 no_evaluation):
    """Without FluidR3_GM the run failed at its fifth clip, after the first ones were rendered and tracked."""
    monkeypatch.setattr(te, "FLUID_SF2", str(tmp_path / "FluidR3_GM.sf2"))
    assert te.needs_fluid(te.make_specs(6, 0)) and not te.needs_fluid(te.make_specs(1, 0))
    out = tmp_path / "out"
    assert cli.main(["evaluate-techniques", "--clips", "6", "--no-anchors", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{tmp_path / 'FluidR3_GM.sf2'} not found; apt-get install fluid-soundfont-gm"), err
    assert not no_evaluation and not out.exists()
