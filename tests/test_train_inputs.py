"""Bad inputs of the training commands (train --data, pretrain, evaluate --real) and fine-tuning a learned bundle."""

from __future__ import annotations

import io
import json
import math
import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")

from _models import write_cnn_bundle  # noqa: E402
from _rtc_bundle import tone  # noqa: E402
from _sounds import SR, bell  # noqa: E402
from _train import TINY, synthetic_clips  # noqa: E402

from rtclassify import Classifier, cli  # noqa: E402
from rtclassify.errors import ConfigError, ParameterError, WeakTagWarning  # noqa: E402
from rtclassify.train.features import DEFAULT_FRONTEND, build_feature_set  # noqa: E402
from rtclassify.train.model import TAGS, ModelConfig, ShortChunkCNN  # noqa: E402


@pytest.fixture(scope="module")
def learned_bundle(tmp_path_factory):
    """A tiny CNN bundle plus a tag learned with Classifier.learn: 13 labels, a 12-row network head."""
    tmp = tmp_path_factory.mktemp("learned")
    base = Classifier.load(write_cnn_bundle(tmp / "base"))
    with warnings.catch_warnings():  # (the tiny test network's head may be weak: not what these tests are about)
        warnings.simplefilter("ignore", WeakTagWarning)
        clf = base.learn("bell", [bell(SR, 2.0, i) for i in range(2)], sample_rate=SR, out=tmp / "learned")
    assert len(clf.labels) == 13 and clf.labels[-1] == "bell"
    return clf


def _tag_folders(root, seconds=1.5):
    import soundfile as sf

    for tag in ("ding", "_none"):
        (root / tag).mkdir(parents=True)
        for i in range(2):
            x = bell(SR, seconds, i) if tag == "ding" else tone(SR, seconds, 200.0 * (i + 1), 0.3)
            sf.write(root / tag / f"{i}.wav", x, SR)
    return root


# ------------------------------------------------------------------------------------------- 1. learned bundle
def test_state_from_onnx_of_a_learned_bundle_is_its_base_network(learned_bundle):
    from rtclassify.learn.finetune import state_from_onnx
    from rtclassify.train.export import build_model

    st = state_from_onnx(learned_bundle.bundle)
    assert st["tags"] == list(TAGS) and st["learned_tags"] == ["bell"]
    assert st["model_config"]["n_tags"] == 12
    x = np.random.default_rng(0).normal(-50, 20, (8, 128, 64)).clip(-100, 20).astype(np.float32)
    with torch.no_grad():
        p, _ = build_model(st)(torch.from_numpy(x))
    assert np.abs(p.numpy() - learned_bundle.backend.run(x)[:, :12]).max() < 1e-4


def test_state_from_onnx_reads_initializers_the_exporter_shared(tmp_path):
    # fresh batch norm: equal folded biases, which torch's exporter shares through Identity nodes
    from rtclassify.learn.finetune import state_from_onnx
    from rtclassify.train.export import build_model

    clf = Classifier.load(write_cnn_bundle(tmp_path / "b", randomize_bn=False))
    x = np.random.default_rng(1).normal(-50, 20, (4, 128, 64)).clip(-100, 20).astype(np.float32)
    with torch.no_grad():
        p, _ = build_model(state_from_onnx(clf.bundle))(torch.from_numpy(x))
    assert np.abs(p.numpy() - clf.backend.run(x)).max() < 1e-4


@pytest.mark.slow
def test_train_data_from_a_learned_bundle(learned_bundle, tmp_path, capsys):
    data = _tag_folders(tmp_path / "data")
    out = tmp_path / "tuned"
    rc = cli.main(["train", "--data", str(data), "--bundle", str(learned_bundle.bundle.path), "--out", str(out),
                   "--epochs", "1", "--windows-per-epoch", "64"])
    text = " ".join(capsys.readouterr().out.split())
    assert rc == 0
    assert "learned tag(s) bell" in text and "not in the new bundle" in text
    clf = Classifier.load(out)
    assert clf.labels == ("ding",)
    assert clf.bundle.meta["training"]["config"]["finetune"]["learned_tags_left_out"] == ["bell"]


def test_run_folder_of_a_zip_output_is_case_insensitive(learned_bundle, tmp_path):
    from rtclassify.learn.finetune import finetune
    from rich.console import Console

    data = _tag_folders(tmp_path / "data", seconds=0.5)  # too short for a window: stops after the run folder
    with pytest.raises(ParameterError, match="long enough"):
        finetune(data, tmp_path / "b.ZIP", bundle=write_cnn_bundle(tmp_path / "base"), epochs=1,
                 console=Console(file=io.StringIO()))
    assert (tmp_path / "b.run").is_dir()
    assert not (tmp_path / "b.ZIP.run").exists()


# ------------------------------------------------------------------------------------------- 2. CSV encodings
def test_labels_csv_must_be_utf8_and_may_have_a_bom(tmp_path):
    import soundfile as sf

    from rtclassify.learn.finetune import read_labelled_data

    sf.write(tmp_path / "a.wav", bell(SR, 1.0, 1), SR)
    csv = tmp_path / "labels.csv"
    csv.write_bytes(b"file,start,end,tag\ncaf\xe9.wav,0,1,bell\n")
    with pytest.raises(ParameterError, match=r"labels\.csv is not UTF-8 text"):
        read_labelled_data(csv, DEFAULT_FRONTEND)
    csv.write_bytes("\ufeffa.wav,0.2,0.8,bell\n".encode("utf-8"))  # a BOM, no header
    items, tags = read_labelled_data(csv, DEFAULT_FRONTEND)
    assert tags == ["bell"] and items[0][0].endswith("a.wav")
    for audio in (tmp_path / "a.wav", tmp_path / "noext"):
        if audio.name == "noext":
            audio.write_bytes((tmp_path / "a.wav").read_bytes())
        with pytest.raises(ParameterError, match="is an audio file; give a folder of tag folders"):
            read_labelled_data(audio, DEFAULT_FRONTEND)


def test_train_data_csv_errors_are_one_line(tmp_path, capsys):
    csv = tmp_path / "x.csv"
    csv.write_bytes(b"caf\xe9.wav,0,1,bell\n")
    assert cli.main(["train", "--data", str(csv), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.csv is not UTF-8 text" in err[0]


# ------------------------------------------------------------------------------------------- 2-3. evaluate --real
def _real_dir(tmp_path, labels: bytes):
    import soundfile as sf

    sf.write(tmp_path / "tone.wav", tone(SR, 1.0, 440.0, 0.3), SR)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    (tmp_path / "labels.csv").write_bytes(labels)
    return tmp_path


def test_real_labels_csv_errors(tmp_path, capsys):
    from rtclassify.model.bundle import default_bundle_path
    from rtclassify.train.evaluate import evaluate_real

    bundle = default_bundle_path()
    _real_dir(tmp_path, b"file,tags,kind\ncaf\xe9.wav,piano,real\n")
    with pytest.raises(ParameterError, match=r"labels\.csv is not UTF-8 text"):
        evaluate_real(bundle, tmp_path)
    _real_dir(tmp_path, b"name,tags,kind\ntone.wav,piano,real\n")
    with pytest.raises(ParameterError, match=r"labels\.csv has no column 'file'"):
        evaluate_real(bundle, tmp_path)
    assert cli.main(["evaluate", str(bundle), "--real", str(tmp_path), "--out", str(tmp_path / "ev")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'file'" in err[0]
    with pytest.raises(ParameterError, match="is a file; give the folder"):
        evaluate_real(bundle, tmp_path / "tone.wav")


def test_real_report_with_an_empty_file(tmp_path):
    from rich.console import Console

    from rtclassify.model.bundle import default_bundle_path
    from rtclassify.train.evaluate import evaluate_real, format_real_table

    _real_dir(tmp_path, "\ufefffile,tags,kind\nempty.wav,piano,real\ntone.wav,piano,real\n".encode("utf-8"))
    rep = evaluate_real(default_bundle_path(), tmp_path)
    assert rep["files"]["empty.wav"]["n_frames"] == 0 and rep["files"]["tone.wav"]["n_frames"] > 0
    con = Console(file=io.StringIO(), width=200)
    con.print(format_real_table(rep))
    text = con.file.getvalue()
    assert "empty.wav" in text and "no sounding frames" in text and "tone.wav" in text


# ------------------------------------------------------------------------------------------- 4. numbers
@pytest.mark.parametrize("opts, word", [(["--seed", "-1"], "argument --seed: must be 0-4294967295"),
                                        (["--lr", "inf"], "argument --lr: must be a finite number"),
                                        (["--lr", "1e6"], "argument --lr: must be <= 10"),
                                        (["--lr", "nan"], "argument --lr: must be a finite number"),
                                        (["--minutes", "inf"], "argument --minutes: must be a finite number"),
                                        # found only after the features were computed, naming config keys
                                        (["--minutes", "1e9"], "argument --minutes: must be <= 10080"),
                                        (["--threads", "100000"], "argument --threads: must be 1-256"),
                                        (["--epochs", "2000000000"], "argument --epochs: must be 1-1000000000"),
                                        (["--windows-per-epoch", "2000000000"],
                                         "argument --windows-per-epoch: must be 1-1000000000")])
def test_train_data_rejects_bad_numbers(tmp_path, capsys, opts, word):
    _tag_folders(tmp_path / "data", seconds=0.2)
    with pytest.raises(SystemExit) as exc:  # refused at parse time
        cli.main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"), *opts])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and word in err[0], err
    assert not (tmp_path / "o.run").exists()


def test_finetune_settings_are_bounded_in_the_python_api_too():
    from rtclassify.learn.finetune import check_settings

    for kw, word in (({"threads": 100000}, "--threads must be an integer from 1 to 256"),
                     ({"epochs": 2 * 10 ** 9}, "--epochs must be an integer from 1 to 1000000000"),
                     ({"windows_per_epoch": 0}, "--windows-per-epoch must be an integer from 1"),
                     ({"minutes": 1e9}, "--minutes must be a finite number in (0, 10080]")):
        with pytest.raises(ParameterError, match=re.escape(word)):
            check_settings(**kw)


def test_pretrain_budget_and_audio_are_bounded(capsys):
    from rtclassify.learn.pretrain import PretrainParams

    for kw, word in (({"minutes": 1e9}, "minutes must be at most 10080"),
                     ({"max_hours": 1e308}, "max_hours must be at most 1000"),
                     ({"epochs": 1e300}, "epochs must be a number from 0 to 1000000000")):
        with pytest.raises(ParameterError, match=re.escape(word)):
            PretrainParams(**kw).validate()
    for opts in (["--max-hours", "1e308"], ["--minutes", "1e9"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["pretrain", "--data", ".", "--out", "pt", *opts])
        assert exc.value.code == 2 and "must be <= " in capsys.readouterr().err


def test_train_and_pretrain_params_check_seed_and_lr(tmp_path, capsys):
    from rtclassify.learn.pretrain import PretrainParams
    from rtclassify.train import MAX_LR
    from rtclassify.train.trainer import TrainParams, parse_config

    for kw, word in (({"seed": -1}, "seed"), ({"lr": math.inf}, "lr"), ({"lr": 1e6}, "lr"),
                     ({"lr": math.nan}, "lr"), ({"lr": 0.0}, "lr")):
        with pytest.raises(ConfigError, match=rf"\[train\] {word} must be"):
            TrainParams(**kw).validate()
        with pytest.raises(ParameterError, match=rf"^{word} must be"):
            PretrainParams(**kw).validate()
    with pytest.raises(ConfigError, match=r"c\.toml: \[train\] seed must be an integer from 0"):
        parse_config({"data": {"dir": "d"}, "train": {"seed": -1}}, "c.toml", tmp_path)
    TrainParams(seed=7, lr=MAX_LR).validate()
    with pytest.raises(SystemExit) as e:
        cli.main(["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--seed", "-1"])
    assert e.value.code == 2 and "--seed: must be 0-4294967295" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--lr", "1e6"])
    assert e.value.code == 2 and "--lr: must be <= 10" in capsys.readouterr().err


def test_a_diverging_loss_stops_with_a_clear_error(tmp_path):
    from rtclassify.train.trainer import TrainParams, Trainer

    train = build_feature_set(synthetic_clips(0, 3, 2.0), tmp_path / "f" / "train", list(TAGS), progress=False)
    val = build_feature_set(synthetic_clips(1, 3, 2.0), tmp_path / "f" / "val", list(TAGS), progress=False)
    mc = ModelConfig(**TINY, lookahead_frames=2)
    init = ShortChunkCNN(mc).state_dict()
    init["head.bias"] = torch.full_like(init["head.bias"], float("nan"))
    params = TrainParams(epochs=1, windows_per_epoch=64, batch_size=32, lr=1e-3, threads=1)
    trainer = Trainer(mc, params, train, val, tmp_path / "run", TAGS, init_state=init)
    with pytest.raises(ParameterError, match="training diverged: the training loss became nan at step 1.*lower "
                                             "learning rate"):
        trainer.fit()
    assert not (tmp_path / "run" / "history.json").exists() or json.loads(
        (tmp_path / "run" / "history.json").read_text()) == []


def test_train_data_and_pretrain_refuse_a_file_as_out_before_any_work(tmp_path, capsys):
    _tag_folders(tmp_path / "data", seconds=0.2)
    (tmp_path / "afile.txt").write_text("x")
    assert cli.main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "afile.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists and is not a folder" in err[0]
    assert not (tmp_path / "afile.txt.run").exists()
    assert cli.main(["pretrain", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "afile.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists and is not a folder" in err[0]
    assert (tmp_path / "afile.txt").read_text() == "x"


def test_a_tag_on_in_every_sounding_frame_is_refused(tmp_path):
    """One tag folder of continuous sound and nothing else: the tag was trained to be on for any sound (no
    warning; its bundle turned it on for noise and near-silence)."""
    from rich.console import Console

    import soundfile as sf
    from rtclassify.learn.finetune import finetune

    (tmp_path / "data" / "beep").mkdir(parents=True)
    for i in range(2):
        sf.write(tmp_path / "data" / "beep" / f"{i}.wav", tone(SR, 2.0, 440.0 * (i + 1), 0.3), SR)
    with pytest.raises(ParameterError, match=r"the tag\(s\) beep are on in every sounding frame .* '_none' folder"):
        finetune(tmp_path / "data", tmp_path / "b", bundle=write_cnn_bundle(tmp_path / "base"), epochs=1,
                 console=Console(file=io.StringIO()))
    short = tmp_path / "short" / "tick"
    short.mkdir(parents=True)
    sf.write(short / "0.wav", tone(SR, 0.01, 440.0, 0.3), SR)
    sf.write(short / "1.wav", tone(SR, 0.01, 880.0, 0.3), SR)
    with pytest.raises(ParameterError, match=r"silent or shorter than one frame \(512 samples at 16000 Hz, 32 ms\)"):
        finetune(tmp_path / "short", tmp_path / "c", bundle=write_cnn_bundle(tmp_path / "base2"), epochs=1,
                 console=Console(file=io.StringIO()))
