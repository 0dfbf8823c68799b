"""train --data and pretrain (found in review): reproducible seeds, non-finite samples, CSV headers, the file split,
tag names, and outputs checked before any work."""

from __future__ import annotations

import io
import json
import re
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("scipy")  # the pretraining augmentations and the data helpers

from _models import write_cnn_bundle  # noqa: E402
from _rtc_bundle import tone  # noqa: E402
from _sounds import SR, bell  # noqa: E402

from rtclassify import cli  # noqa: E402
from rtclassify.errors import ParameterError  # noqa: E402
from rtclassify.train.features import DEFAULT_FRONTEND  # noqa: E402


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return write_cnn_bundle(tmp_path_factory.mktemp("tiny") / "base")


def _write(path, x, sr=SR):
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, subtype="FLOAT")
    return path


def _tag_folders(root, tags=("ding", "hum"), seconds=1.5):
    for t, tag in enumerate(tags):
        for i in range(2):
            x = bell(SR, seconds, i) if t == 0 else tone(SR, seconds, 110.0 * (t + i), 0.3)
            _write(root / tag / f"{i}.wav", x)
    _write(root / "_none" / "n.wav", tone(SR, seconds, 900.0, 0.01))
    return root


def _quiet():
    from rich.console import Console

    return Console(file=io.StringIO())


def _no_audio(monkeypatch):
    import rtclassify.learn.finetune as ft

    monkeypatch.setattr(ft, "_load", lambda *a, **k: pytest.fail("audio read before the check"))


def _help(capsys, command) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps the lines


def _one_line_error(capsys, argv):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ------------------------------------------------------------------------------------------- 1. seeds
def test_a_seed_gives_one_finetuned_bundle(tiny_base, tmp_path, monkeypatch):
    """The new output head was built before the trainer seeded torch: one seed, two different bundles."""
    from rtclassify.learn.finetune import finetune

    data = _tag_folders(tmp_path / "data")
    # the learning-rate schedule also follows the time used; frozen, the steps alone set it
    monkeypatch.setattr(time, "perf_counter", lambda: 1000.0)
    onnx = []
    for i in range(2):
        torch.manual_seed(100 + i)  # whatever state torch's generator was left in
        finetune(data, tmp_path / f"out{i}", bundle=tiny_base, epochs=1, windows_per_epoch=32, seed=3,
                 console=_quiet())
        onnx.append((tmp_path / f"out{i}" / "model.onnx").read_bytes())
    assert onnx[0] == onnx[1]


def test_a_seed_gives_one_start_of_the_supervised_step(tmp_path, monkeypatch):
    """pretrain --labelled built its new tag head the same way, unseeded."""
    import rtclassify.learn.pretrain as pt
    import rtclassify.train.trainer as tr
    from rtclassify.train.model import ModelConfig, ShortChunkCNN

    cfg = ModelConfig(width=2, multipliers=[1, 2, 2, 2], time_pools=4, embedding_dim=16, lookahead_frames=2)
    enc = tmp_path / "encoder.pt"
    torch.save({"format": pt.ENCODER_FORMAT, "model_config": cfg.to_dict(),
                "state_dict": ShortChunkCNN(cfg).state_dict(), "frontend": {}}, enc)
    data = tmp_path / "built"
    data.mkdir()
    (data / "manifest.json").write_text("{}")
    (data / "manifest.jsonl").write_text("".join(json.dumps({"split": s}) + "\n" for s in ("train", "val")))

    class Stop(Exception):
        pass

    starts = []

    def trainer(*a, init_state=None, **k):
        starts.append(init_state)
        raise Stop

    monkeypatch.setattr(tr, "split_features", lambda *a, **k: None)
    monkeypatch.setattr(tr, "data_provenance", lambda *a, **k: {})
    monkeypatch.setattr(tr, "Trainer", trainer)
    for i in range(2):
        torch.manual_seed(100 + i)
        with pytest.raises(Stop):
            pt.train_supervised_head(enc, data, tmp_path / "ssl", None, ["train.seed=5"], console=_quiet())
    assert starts[0].keys() == starts[1].keys()
    assert all(torch.equal(starts[0][k], starts[1][k]) for k in starts[0])


# ------------------------------------------------------------------------------------------- 2. non-finite samples
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_sample_is_replaced_and_named(tmp_path, capsys, bad):
    """One NaN made the whole tag file silent (every frame a negative)."""
    from rtclassify.learn.finetune import read_labelled_data

    x = bell(SR, 1.5, 1)
    x[SR // 2] = bad
    _write(tmp_path / "data" / "ding" / "a.wav", x)
    items, tags = read_labelled_data(tmp_path / "data", DEFAULT_FRONTEND)
    (_, audio, lab), = items
    assert tags == ["ding"] and np.all(np.isfinite(audio))
    assert lab[:, 0].mean() > 0.8
    note = "".join(capsys.readouterr().err.split())  # the console wraps the line
    assert f"{tmp_path}/data/ding/a.wav:1of24000samplesareNaNorinfinite;replacedby0" in note


# ------------------------------------------------------------------------------------------- 3. CSV header
def _csv_files(tmp_path):
    _write(tmp_path / "a.wav", bell(SR, 3.0, 1))
    _write(tmp_path / "b.wav", bell(SR, 3.0, 2))


def test_a_first_row_with_a_bad_number_is_reported_not_taken_for_a_header(tmp_path, monkeypatch):
    from rtclassify.learn.finetune import read_labelled_data

    _csv_files(tmp_path)
    _no_audio(monkeypatch)
    csv = tmp_path / "labels.csv"
    for first, got in (("a.wav,1s,2.5,beep", "'1s', '2.5'"), ("a.wav,0.5,2.5s,beep", "'0.5', '2.5s'")):
        csv.write_text(f"{first}\nb.wav,0,3,beep\n")
        with pytest.raises(ParameterError, match=rf"labels\.csv:1: start and end must be numbers of seconds "
                                                 rf"\(got {got}\)"):
            read_labelled_data(csv, DEFAULT_FRONTEND)


@pytest.mark.parametrize("header", ["file,start,end,tag", "File,Start,End,Tag", "path, begin, stop, label",
                                    "path,t0,t1,label"])
def test_a_header_may_follow_comments_and_blank_lines(tmp_path, header):
    from rtclassify.learn.finetune import read_labelled_data

    _csv_files(tmp_path)
    csv = tmp_path / "labels.csv"
    csv.write_text(f"# my labels\n\n{header}\na.wav,0,3,beep\n# the second take\n\nb.wav,0.5,3,beep\n")
    items, tags = read_labelled_data(csv, DEFAULT_FRONTEND)
    assert tags == ["beep"] and len(items) == 2
    csv.write_text(f"a.wav,0,3,beep\n{header}\n")  # a header among the data rows is a bad row
    with pytest.raises(ParameterError, match=r"labels\.csv:2: "):
        read_labelled_data(csv, DEFAULT_FRONTEND)


# ------------------------------------------------------------------------------------------- 4. split
def _item(name, n, tags_on):
    lab = np.zeros((n, 2), np.uint8)
    for t, frames in tags_on.items():
        lab[frames, t] = 1
    return (name, np.zeros(1, np.float32), lab)


def test_every_tag_keeps_a_training_file(tmp_path):
    """A CSV tag on part of one file went to validation with that file and had no training example."""
    from rtclassify.learn.finetune import _split_files

    items = [_item("a", 100, {0: slice(0, 100), 1: slice(10, 20)}), _item("b", 100, {0: slice(0, 100)}),
             _item("n1", 100, {}), _item("n2", 100, {})]
    for seed in range(12):
        train, val = _split_files(items, ["beep", "click"], 0.5, seed)
        assert [n for n, _, _ in train].count("a") == 1, seed
        assert len(train) + len(val) == 4 and val, seed


def test_val_fraction_0_holds_out_no_file(capsys):
    from rtclassify.learn.finetune import _split_files, check_settings

    check_settings(val_fraction=0.0)
    items = [_item(f"f{i}", 100, {i % 2: slice(0, 100)}) for i in range(6)]
    train, val = _split_files(items, ["beep", "click"], 0.0, 0)
    assert val == [] and [n for n, _, _ in train] == [n for n, _, _ in items]
    assert len(_split_files(items, ["beep", "click"], 0.2, 0)[1]) == 2
    assert "0 to below 1 (0: none, validating on the training files" in _help(capsys, "train")


# ------------------------------------------------------------------------------------------- 5-6. pretrain outputs
def _built(tmp_path):
    data = tmp_path / "built"
    data.mkdir()
    (data / "manifest.json").write_text("{}")
    (data / "manifest.jsonl").write_text("".join(json.dumps({"split": s}) + "\n" for s in ("train", "val")))
    return data


def _pretrain_audio(tmp_path):
    for i in range(2):
        _write(tmp_path / "audio" / f"{i}.wav", bell(SR, 2.0, i))
    return tmp_path / "audio"


def test_pretrain_labelled_checks_its_bundle_before_pretraining(tmp_path, capsys, monkeypatch):
    """A bad OUT/bundle was refused after pretraining and the whole supervised training."""
    import rtclassify.learn.pretrain as pt
    from rtclassify.model.bundle import default_bundle_path

    monkeypatch.setattr(pt, "pretrain", lambda *a, **k: pytest.fail("pretrained before checking the bundle"))
    data = _built(tmp_path)
    args = ["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "ssl"), "--labelled", str(data)]
    err = _one_line_error(capsys, [*args, "--set", f"output.bundle={json.dumps(str(default_bundle_path()))}"])
    assert "--set output.bundle" in err and "the package's own default bundle" in err, err
    assert (default_bundle_path() / "model.onnx").is_file()
    (tmp_path / "ssl").mkdir()
    (tmp_path / "ssl" / "bundle").write_text("not a bundle")
    err = _one_line_error(capsys, [*args, "--force"])
    assert err.endswith(f"--out {(tmp_path / 'ssl' / 'bundle').resolve()}: exists and is not a folder (give a folder, "
                        f"or a path ending in .zip)"), err
    assert (tmp_path / "ssl" / "bundle").read_text() == "not a bundle"


def test_pretrain_refuses_a_training_run_folder_even_with_force(tiny_base, tmp_path, capsys, monkeypatch):
    """A `train` run's folder (checkpoints and bundle, no encoder) is not a pretraining run: --force does not
    let pretraining remove its files."""
    import rtclassify.learn.pretrain as pt

    audio = _pretrain_audio(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    for name in ("last.pt", "best.pt", "model.pt", "history.json"):
        (out / name).write_bytes(b"a training run")
    (out / "bundle").mkdir()
    (out / "bundle" / "model.json").write_text("{}")
    monkeypatch.setattr(pt, "pretrain", lambda *a, **k: pytest.fail("pretrained into a training run's folder"))
    err = _one_line_error(capsys, ["pretrain", "--data", str(audio), "--out", str(out), "--bundle", str(tiny_base),
                                   "--steps", "1", "--batch-size", "2", "--force"])
    assert err.endswith(f"--out {out}: holds a training run (last.pt, best.pt, model.pt, history.json, bundle), "
                        f"not a pretraining run; give another folder"), err
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "bundle", "history.json", "last.pt", "model.pt"]
    assert (out / "model.pt").read_bytes() == b"a training run"


def test_pretrain_history_run_folder_and_force(tiny_base, tmp_path, capsys, monkeypatch):
    """The supervised step's history.json replaced the pretraining history; a second run replaced the first."""
    import rtclassify.learn.pretrain as pt

    audio = _pretrain_audio(tmp_path)
    out = tmp_path / "ssl"
    args = ["pretrain", "--data", str(audio), "--out", str(out), "--bundle", str(tiny_base), "--steps", "1",
            "--batch-size", "2"]
    assert cli.main(args) == 0
    capsys.readouterr()
    hist = json.loads((out / "pretrain_history.json").read_text())
    assert hist[0]["step"] == 1 and not (out / "history.json").exists()
    encoder = (out / "encoder.pt").read_bytes()
    real = pt.pretrain
    monkeypatch.setattr(pt, "pretrain", lambda *a, **k: pytest.fail("pretrained into a folder holding a run"))
    err = _one_line_error(capsys, args)
    assert err.endswith(f"--out {out}: holds a pretraining run (encoder.pt, pretrain_history.json); pass --force to "
                        f"replace it, or give another folder"), err
    assert (out / "encoder.pt").read_bytes() == encoder
    monkeypatch.setattr(pt, "pretrain", real)
    # an earlier --labelled run's files beside the new encoder described another run: removed at the end
    for name in ("last.pt", "best.pt", "model.pt", "history.json", "curves.png"):
        (out / name).write_bytes(b"earlier run")
    (out / "bundle").mkdir()
    (out / "bundle" / "model.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    assert cli.main([*args, "--seed", "1", "--force"]) == 0
    assert (out / "encoder.pt").read_bytes() != encoder
    assert sorted(p.name for p in out.iterdir()) == ["encoder.pt", "notes.txt", "pretrain_history.json"]
    assert "removed the earlier run's last.pt, best.pt, model.pt, history.json, curves.png, bundle" in \
        capsys.readouterr().out
    help_text = _help(capsys, "pretrain")
    assert "OUT/pretrain_history.json" in help_text and "--force" in help_text


def test_pretraining_refuses_too_little_audio_for_its_batch(tiny_base, tmp_path, capsys):
    """1.6 s of audio with --batch-size 8 pretrained without a word: every negative was the positive's sound."""
    _write(tmp_path / "audio" / "a.wav", bell(SR, 1.6, 0))
    err = _one_line_error(capsys, ["pretrain", "--data", str(tmp_path / "audio"), "--out", str(tmp_path / "ssl"),
                                   "--bundle", str(tiny_base), "--steps", "1", "--batch-size", "8"])
    assert err.endswith("--data: 1.6 s of audio is too little to pretrain with batches of 8 chunks of 1.5 s (the "
                        "other chunks of a batch are the negatives, so they must be other sound): give 12 s or "
                        "more, or a smaller --batch-size"), err
    assert not (tmp_path / "ssl").exists()


def test_supervised_step_paths_are_values_not_toml_text(tmp_path):
    r"""--out 'ssl\test' became 'ssl<TAB>est' in the supervised step's config."""
    from rtclassify.learn.pretrain import check_supervised_step

    data = _built(tmp_path)
    odd = tmp_path / 'd\\t "q" \udcff'
    data.rename(odd)
    for out in (tmp_path / "ssl\\test", tmp_path / 'o"ut', tmp_path / "a\x7fb"):
        cfg = check_supervised_step(odd, out)
        assert cfg.output["dir"] == str(out.resolve()) and cfg.data["dir"] == str(odd.resolve())
        assert cfg.output["bundle"] == str((out / "bundle").resolve())


# ------------------------------------------------------------------------------------------- 7. tag names
def test_tag_names_are_checked_before_any_audio(tmp_path, monkeypatch):
    from rtclassify.learn.finetune import read_labelled_data

    data = _tag_folders(tmp_path / "data", tags=("Beep", "beep"))
    _no_audio(monkeypatch)
    with pytest.raises(ParameterError, match=rf"--data: {tmp_path / 'data' / 'beep'}: tag 'beep' differs from "
                                             rf"the tag 'Beep' of the folder {tmp_path / 'data' / 'Beep'} only by "
                                             rf"case; give them one spelling"):
        read_labelled_data(data, DEFAULT_FRONTEND)
    (data / "beep").rename(data / "be ep")
    with pytest.raises(ParameterError, match=rf"--data: {tmp_path / 'data' / 'be ep'}: tag name must be 1-64"):
        read_labelled_data(data, DEFAULT_FRONTEND)
    csv = tmp_path / "labels.csv"
    csv.write_text("file,start,end,tag\na.wav,0,3,beep\nb.wav,0,3,beep\nb.wav,0,3,Beep\n")
    with pytest.raises(ParameterError, match=r"labels\.csv:4: tag 'Beep' differs from the tag 'beep' of line 2 "
                                             r"only by case"):
        read_labelled_data(csv, DEFAULT_FRONTEND)


def test_a_tag_named_as_a_column_of_tags_csv_is_refused(tmp_path, monkeypatch):
    """`tag --format csv` writes time, the tags and the trackers' columns: a tag named `time` or `pitch` gave a
    header with that column twice, and a reader by name took the tag's probabilities for the times."""
    from rtclassify.learn.finetune import read_labelled_data

    data = _tag_folders(tmp_path / "data", tags=("beep", "Pitch"))
    _no_audio(monkeypatch)
    with pytest.raises(ParameterError, match=rf"--data: {tmp_path / 'data' / 'Pitch'}: tag name 'Pitch' is a column "
                                             rf"of `rtclassify tag`'s CSV beside the tags \(file, time, pitch, "):
        read_labelled_data(data, DEFAULT_FRONTEND)


def test_none_folders_are_negatives_in_any_case(tmp_path):
    from rtclassify.learn.finetune import read_labelled_data

    data = tmp_path / "data"
    _write(data / "beep" / "a.wav", bell(SR, 1.0, 1))
    for name in ("None", "NEGATIVES", "_None"):
        _write(data / name / "n.wav", tone(SR, 1.0, 300.0, 0.3))
    items, tags = read_labelled_data(data, DEFAULT_FRONTEND)
    assert tags == ["beep"] and len(items) == 4
    assert sum(int(lab.sum()) for name, _, lab in items if "beep" not in name) == 0


# ------------------------------------------------------------------------------------------- 8. OUT.run
def test_the_run_folder_is_checked_before_any_work(tmp_path, capsys, monkeypatch):
    """A file at OUT.run crashed with a FileExistsError traceback after all the audio was read."""
    import rtclassify.learn.finetune as ft

    data = _tag_folders(tmp_path / "data", seconds=0.5)
    monkeypatch.setattr(ft, "read_labelled_data", lambda *a, **k: pytest.fail("data read before the run folder"))
    (tmp_path / "b.run").write_text("x")
    for out in ("b", "b.zip"):
        err = _one_line_error(capsys, ["train", "--data", str(data), "--out", str(tmp_path / out)])
        assert err.endswith(f"--out's run folder {tmp_path / 'b.run'}: exists and is not a folder"), err
    assert (tmp_path / "b.run").read_text() == "x" and not (tmp_path / "b").exists()
    assert "go to the folder BUNDLE.run beside it" in _help(capsys, "train")


def test_refused_data_leaves_no_run_folder(tmp_path, capsys):
    data = tmp_path / "data"
    _write(data / "a b" / "a.wav", bell(SR, 1.0, 1))
    err = _one_line_error(capsys, ["train", "--data", str(data), "--out", str(tmp_path / "o")])
    assert "tag name must be 1-64" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.run").exists()


def test_pretraining_audio_with_nan_is_loaded_finite_and_noted(tmp_path):
    import soundfile as sf

    from rtclassify.learn.pretrain import AudioPool

    x = (0.1 * np.random.default_rng(0).standard_normal(48000)).astype(np.float32)
    x[1000] = np.nan
    x[2000] = np.inf
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    pool = AudioPool([tmp_path / "a.wav"], 16000)
    assert pool.nonfinite == {str(tmp_path / "a.wav"): 2}
    assert pool.clips[0][1000] == 0 and pool.clips[0][2000] == 0 and abs(int(pool.clips[0][1001])) < 32767


def test_technique_detector_value_interval_takes_numpy_numbers_not_bools():
    from rtclassify.detect.techniques import TechniqueDetector

    TechniqueDetector(16000, value_interval=np.float32(0.02))
    with pytest.raises(ParameterError, match="value_interval"):
        TechniqueDetector(16000, value_interval=True)


# ------------------------------------------------------------------------------------ third review round
def test_a_file_in_two_tag_folders_carries_both_tags(tmp_path):
    """A duet linked into piano/ and singing/ was read twice, each copy a negative for the other tag."""
    from rtclassify.learn.finetune import read_labelled_data

    data = tmp_path / "data"
    duet = _write(data / "ding" / "duet.wav", bell(SR, 1.0, 1))
    (data / "hum").mkdir()
    (data / "hum" / "duet.wav").symlink_to(duet)
    _write(data / "hum" / "solo.wav", tone(SR, 1.0, 220.0, 0.3))
    items, tags = read_labelled_data(data, DEFAULT_FRONTEND, _quiet())
    assert tags == ["ding", "hum"] and len(items) == 2
    lab = dict((name, lab) for name, _, lab in items)[str(duet)]
    assert lab[:, 0].sum() > 0 and np.array_equal(lab[:, 0], lab[:, 1])


def test_hidden_files_are_skipped_and_loose_files_noted(tmp_path):
    """macOS '._a.wav' resource forks aborted the run (cannot read audio); files beside the tag folders vanished
    without a word."""
    from rtclassify.learn.finetune import read_labelled_data
    from rtclassify.learn.pretrain import list_audio

    data = tmp_path / "data"
    _write(data / "ding" / "a.wav", bell(SR, 1.0, 1))
    (data / "ding" / "._a.wav").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    (data / "ding" / ".cache").mkdir()
    (data / "ding" / ".cache" / "b.wav").write_bytes(b"junk")
    _write(data / "loose.wav", bell(SR, 1.0, 2))
    console = _quiet()
    items, tags = read_labelled_data(data, DEFAULT_FRONTEND, console)
    assert [name for name, _, _ in items] == [str(data / "ding" / "a.wav")]
    note = " ".join(console.file.getvalue().split())
    assert f"1 audio file(s) directly in {data} carry no tag and are left out (loose.wav)" in note, note
    assert list_audio(data / "ding") == [data / "ding" / "a.wav"]


def test_csv_rows_tagged_none_list_negatives(tmp_path):
    """'none' in a CSV became a tag called none (sent as MIDI and OSC); a negatives-only file could not be listed."""
    from rtclassify.learn.finetune import read_labelled_data

    _write(tmp_path / "a.wav", bell(SR, 1.0, 1))
    _write(tmp_path / "n.wav", tone(SR, 1.0, 300.0, 0.3))
    csv = tmp_path / "labels.csv"
    for none in ("none", "NONE", "_none", "Negatives"):
        csv.write_text(f"file,start,end,tag\na.wav,0,1,beep\nn.wav,0,1,{none}\n")
        items, tags = read_labelled_data(csv, DEFAULT_FRONTEND, _quiet())
        assert tags == ["beep"] and len(items) == 2
        assert dict((n, lab) for n, _, lab in items)[str(tmp_path / "n.wav")].sum() == 0
    csv.write_text("n.wav,0,1,none\n")
    with pytest.raises(ParameterError, match=r"every row is tagged none, _none or negatives \(negatives only\): at least one row must carry"):
        read_labelled_data(csv, DEFAULT_FRONTEND, _quiet())


def test_csv_missing_file_names_its_line_and_a_long_row_is_noted(tmp_path):
    from rtclassify.learn.finetune import read_labelled_data

    _write(tmp_path / "a.wav", bell(SR, 1.0, 1))
    csv = tmp_path / "labels.csv"
    csv.write_text("a.wav,0,1,beep\n# note\nnope.wav,0,1,beep\n")
    with pytest.raises(ParameterError, match=rf"labels\.csv:3: {tmp_path / 'nope.wav'}: no such file"):
        read_labelled_data(csv, DEFAULT_FRONTEND, _quiet())
    csv.write_text("a.wav,0,1500,beep\n")
    console = _quiet()
    items, _ = read_labelled_data(csv, DEFAULT_FRONTEND, console)
    assert items[0][2].all()
    note = " ".join(console.file.getvalue().split())
    assert "labels.csv:1: the row ends at 1500 s, past the end of" in note and "(are the times in seconds?)" in note


def test_out_inside_data_is_refused_before_any_work(tmp_path, capsys):
    """The run folder made inside --data was then read as a tag folder holding no audio."""
    data = _tag_folders(tmp_path / "data", seconds=0.5)
    err = _one_line_error(capsys, ["train", "--data", str(data), "--out", str(data / "mine")])
    assert err.endswith(f"error: --out {data / 'mine'} is inside --data {data}: the bundle and its run folder mine.run "
                   f"would be read as tag folders; write them outside the data folder"), err
    assert sorted(p.name for p in data.iterdir()) == ["_none", "ding", "hum"]


@pytest.mark.parametrize("what", ["n_mels", "frontend"])
def test_an_init_checkpoint_for_other_frames_is_refused_before_the_data_is_read(tiny_base, tmp_path, capsys,
                                                                                  monkeypatch, what):
    """A 64-mel checkpoint against a 128-mel base crashed with a tensor-size traceback after the features were
    built; one whose frontend differed trained silently on frames its network never saw."""
    import rtclassify.learn.finetune as ft
    from rtclassify.train.model import TAGS, ModelConfig, ShortChunkCNN
    from rtclassify.train.trainer import CHECKPOINT_FORMAT

    cfg = ModelConfig(n_mels=64 if what == "n_mels" else 128, width=2, multipliers=[1, 2, 2, 2], time_pools=4,
                      embedding_dim=16, lookahead_frames=2)
    ck = {"format": CHECKPOINT_FORMAT, "model_config": cfg.to_dict(), "state_dict": ShortChunkCNN(cfg).state_dict(),
          "tags": list(TAGS)}
    if what == "frontend":
        ck["frontend"] = {**DEFAULT_FRONTEND, "fmax": 4000.0}
    torch.save(ck, tmp_path / "other.pt")
    data = _tag_folders(tmp_path / "data", seconds=0.5)
    monkeypatch.setattr(ft, "read_labelled_data", lambda *a, **k: pytest.fail("data read before --init's check"))
    err = _one_line_error(capsys, ["train", "--data", str(data), "--out", str(tmp_path / "ft"), "--bundle",
                                   str(tiny_base), "--init", str(tmp_path / "other.pt")])
    assert f"error: --init {tmp_path / 'other.pt'}: its " in err, err
    assert ("n_mels 64, the base bundle" in err) if what == "n_mels" else ("fmax (4000.0 against 8000.0)" in err)
    assert not (tmp_path / "ft").exists() and not (tmp_path / "ft.run").exists()


def test_an_interrupted_pretraining_keeps_its_steps(tiny_base, tmp_path, capsys, monkeypatch):
    """Ctrl-C (or SIGTERM) during pretraining left nothing, not even the folder; now the encoder as it was when
    stopped is written (marked interrupted) with its history, and the command still ends with 130."""
    import torch

    import rtclassify.learn.pretrain as pt

    real, calls = pt.nt_xent, []

    def interrupted_at_the_fourth_step(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(pt, "nt_xent", interrupted_at_the_fourth_step)
    out = tmp_path / "ssl"
    assert cli.main(["pretrain", "--data", str(_pretrain_audio(tmp_path)), "--out", str(out), "--bundle",
                     str(tiny_base), "--steps", "50", "--batch-size", "2"]) == 130
    assert "interrupted after 3 steps" in capsys.readouterr().out
    ck = torch.load(out / "encoder.pt", map_location="cpu", weights_only=True)
    assert ck["interrupted"] is True and ck["steps"] == 3
    assert json.loads((out / "pretrain_history.json").read_text())[0]["step"] == 1
    model, _ = pt.load_encoder(out / "encoder.pt")  # a usable encoder
    assert not model.training
    # with --force over an earlier run, the earlier run's other files (trained from its encoder) go too
    for name in ("last.pt", "model.pt"):
        (out / name).write_bytes(b"earlier run")
    calls.clear()
    time.sleep(0.05)  # the earlier files are older than the run
    assert cli.main(["pretrain", "--data", str(tmp_path / "audio"), "--out", str(out), "--bundle", str(tiny_base),
                     "--steps", "50", "--batch-size", "2", "--force"]) == 130
    assert sorted(p.name for p in out.iterdir()) == ["encoder.pt", "pretrain_history.json"]


def test_ctrl_c_in_an_optimizer_step_lets_the_step_end_before_the_encoder_is_saved(tiny_base, tmp_path, capsys,
                                                                                 monkeypatch):
    """A SIGINT that arrives while the optimizer updates the weights took effect there, and the interrupted
    encoder was saved with some of them updated and its step not counted; now the step ends first."""
    import os
    import signal

    import torch

    after = {}
    real_init = torch.optim.AdamW.__init__

    def init_with_hooks(opt, *a, **k):
        real_init(opt, *a, **k)
        steps = []

        def pre(o, args, kwargs):
            steps.append(1)
            if len(steps) == 4:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the fourth update begins

        def post(o, args, kwargs):
            after["weights"] = [p.detach().clone() for g in o.param_groups for p in g["params"]]

        opt.register_step_pre_hook(pre)
        opt.register_step_post_hook(post)

    monkeypatch.setattr(torch.optim.AdamW, "__init__", init_with_hooks)
    out = tmp_path / "ssl"
    # Python's own Ctrl-C handler, as in a terminal: a test run started in the background (`cmd &`) inherits
    # SIGINT ignored, and the signal would do nothing at all
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert cli.main(["pretrain", "--data", str(_pretrain_audio(tmp_path)), "--out", str(out), "--bundle",
                         str(tiny_base), "--steps", "50", "--batch-size", "2"]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
    assert "interrupted after 4 steps" in capsys.readouterr().out
    ck = torch.load(out / "encoder.pt", map_location="cpu", weights_only=True)
    assert ck["interrupted"] is True and ck["steps"] == 4
    saved = list(ck["state_dict"].values()) + list(ck["projector"].values())
    for w in after["weights"]:  # every weight saved is the one the fourth update gave
        assert any(v.shape == w.shape and torch.equal(v, w) for v in saved)


def test_a_csv_row_naming_a_file_that_is_not_audio_is_named_by_its_line(tmp_path):
    """The file's error did not say which row of the CSV listed it."""
    from rtclassify.audio.files import AudioFileError
    from rtclassify.learn.finetune import read_labelled_data

    (tmp_path / "notes.wav").write_text("not audio")
    csv = tmp_path / "labels.csv"
    csv.write_text("file,start,end,tag\n\nnotes.wav,0,3,beep\n")
    with pytest.raises(AudioFileError, match=rf"^{re.escape(str(csv))}:3: .*notes\.wav: cannot read audio"):
        read_labelled_data(csv, DEFAULT_FRONTEND)
