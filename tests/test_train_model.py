"""Tests of the short-chunk CNN, features cache, sampling/augmentation, metrics and the training loop."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("onnx")  # export

from _train import SR, TINY, fake_data, synthetic_clips, tiny_config  # noqa: E402

from rtclassify.errors import ConfigError, ParameterError  # noqa: E402
from rtclassify.train.evaluate import (  # noqa: E402
    OnnxWindowModel, subset_metrics, choose_thresholds, hysteresis, predict_feature_set, tag_metrics)
from rtclassify.train.features import (  # noqa: E402
    DEFAULT_FRONTEND, Clip, FeatureSet, build_feature_set, frame_rms_db, load_feature_set, logmel, window_batch)
from rtclassify.train.model import TAGS, ModelConfig, ShortChunkCNN  # noqa: E402
from rtclassify.train.trainer import (  # noqa: E402
    TrainParams, Trainer, WindowSampler, augment, finalize_checkpoint, load_checkpoint, parse_config)


# ----------------------------------------------------------------------------- model
def test_model_shapes_and_ranges():
    m = ShortChunkCNN(ModelConfig(**TINY)).eval()
    x = torch.randn(3, 128, 64) * 20 - 50
    probs, emb = m(x)
    assert probs.shape == (3, 12) and emb.shape == (3, 16)
    assert torch.all((probs >= 0) & (probs <= 1))
    assert torch.all(emb >= 0)  # ReLU embedding
    logits, emb2 = m.logits_and_embedding(x)
    torch.testing.assert_close(torch.sigmoid(logits), probs)
    torch.testing.assert_close(emb, emb2)


def test_default_model_is_small():
    m = ShortChunkCNN(ModelConfig())
    n = sum(p.numel() for p in m.parameters())
    assert n * 4 < 5e6  # float32 weights under 5 MB


def test_output_reads_the_end_of_the_window():
    """Changing only the oldest frames changes the output less than changing the newest ones."""
    torch.manual_seed(0)
    m = ShortChunkCNN(ModelConfig(**TINY, dropout=0.0))
    m.eval()
    x = torch.full((1, 128, 64), -60.0)
    base = m.logits_and_embedding(x)[1]
    old = x.clone()
    old[..., :8] = 0.0
    new = x.clone()
    new[..., -8:] = 0.0
    d_old = (m.logits_and_embedding(old)[1] - base).abs().sum()
    d_new = (m.logits_and_embedding(new)[1] - base).abs().sum()
    assert d_new > d_old


@pytest.mark.parametrize("kw, word", [
    ({"window_frames": 60}, "window_frames"),
    ({"lookahead_frames": 64}, "lookahead_frames"),
    ({"width": 0}, "width"),
    ({"dropout": 1.0}, "dropout"),
])
def test_model_config_validation(kw, word):
    with pytest.raises(ParameterError, match=word):
        ModelConfig(**kw).validate()


def test_model_config_rejects_unknown_keys():
    with pytest.raises(ParameterError, match="colour"):
        ModelConfig.from_dict({"colour": 3})


def test_normalization_is_stored_and_used():
    m = ShortChunkCNN(ModelConfig(**TINY)).eval()
    x = torch.randn(2, 128, 64) * 10 - 40
    m.set_normalization(np.full(128, -40.0), np.full(128, 10.0))
    a = m(x)[0]
    # shifting the input and the mean by the same amount leaves the output unchanged
    m.set_normalization(np.full(128, -30.0), np.full(128, 10.0))
    torch.testing.assert_close(m(x + 10.0)[0], a)
    with pytest.raises(ParameterError):
        m.set_normalization(np.zeros(5), np.ones(5))


# ----------------------------------------------------------------------------- features
def test_logmel_uses_native_frontend_grid():
    x = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    m = logmel(x)
    assert m.shape == (1 + (SR - 512) // 256, 128) and m.dtype == np.float32
    import rtclassify

    fe = rtclassify.MelFrontend(16000, 512, 256, 128, fmin=0.0, fmax=8000.0)
    np.testing.assert_array_equal(m, fe.push(x))
    with pytest.raises(ParameterError, match="mono"):
        logmel(np.zeros((2, 1000), np.float32))


def test_frame_rms_db():
    x = np.concatenate([np.zeros(2048), 0.5 * np.ones(2048)]).astype(np.float32)
    r = frame_rms_db(x, 512, 256)
    assert r.shape == (1 + (4096 - 512) // 256,)
    assert r[0] < -100 and abs(r[-1] - 20 * np.log10(0.5)) < 1e-6


def _fs_with_index_frames(n_clips=3, n=100):
    """A FeatureSet whose frame k holds the value k in every mel band."""
    total = n_clips * n
    mel = np.repeat(np.arange(total, dtype=np.float32)[:, None], 128, axis=1).astype(np.float16)
    labels = np.zeros((total, 12), np.uint8)
    labels[:, 0] = np.arange(total) % 2
    offsets = np.arange(0, total + 1, n)
    return FeatureSet(mel, labels, offsets, [f"c{i}" for i in range(n_clips)], list(TAGS), dict(DEFAULT_FRONTEND))


def test_target_frames_and_windows_respect_lookahead_and_clips():
    fs = _fs_with_index_frames()
    W, L = 64, 3
    t = fs.target_frames(W, L, 1)
    # per clip of 100 frames: targets from W-1-L to 100-1-L
    assert len(t) == 3 * (100 - W + 1)
    assert t[0] == W - 1 - L and t[-1] == 299 - L
    w = window_batch(fs.mel, t[:2] + L, W)
    assert w.shape == (2, 128, W)
    # the window ends L frames after the target
    assert w[0, 0, -1] == t[0] + L and w[0, 0, -1 - L] == t[0] and w[0, 0, 0] == t[0] + L - W + 1
    # no window crosses a clip boundary
    starts = t + L - W + 1
    clip_of_start = np.searchsorted(fs.offsets, starts, side="right")
    clip_of_end = np.searchsorted(fs.offsets, t + L, side="right")
    np.testing.assert_array_equal(clip_of_start, clip_of_end)


def test_feature_cache_roundtrip_and_staleness(tmp_path):
    fs = build_feature_set(synthetic_clips(0, 4, 1.0), tmp_path / "train", list(TAGS), source_fingerprint="abc",
                           progress=False)
    assert fs.n_clips == 4 and fs.mel.dtype == np.float16 and fs.labels.dtype == np.uint8
    again = load_feature_set(tmp_path / "train", tags=list(TAGS), frontend=DEFAULT_FRONTEND, source_fingerprint="abc")
    assert again is not None
    np.testing.assert_array_equal(again.mel, fs.mel)
    np.testing.assert_array_equal(again.offsets, fs.offsets)
    assert load_feature_set(tmp_path / "train", source_fingerprint="changed") is None
    assert load_feature_set(tmp_path / "train", frontend={"n_mels": 64}) is None
    assert load_feature_set(tmp_path / "nothing") is None


def test_feature_set_rejects_short_labels(tmp_path):
    bad = Clip("short", np.zeros(SR, np.float32), np.zeros((3, 12)))
    with pytest.raises(ParameterError, match="short"):
        build_feature_set([bad], tmp_path / "x", list(TAGS), progress=False)


# ----------------------------------------------------------------------------- sampling and augmentation
def test_balanced_sampler_oversamples_rare_tags():
    total = 20000
    mel = np.zeros((total, 128), np.float16)
    labels = np.zeros((total, 12), np.uint8)
    labels[:200, 5] = 1  # rare tag: 1% of frames
    labels[200:15000, 0] = 1
    fs = FeatureSet(mel, labels, np.array([0, total]), ["c"], list(TAGS), dict(DEFAULT_FRONTEND))
    rng = np.random.default_rng(0)
    uniform = WindowSampler(fs, 64, 0, balance=0.0)
    balanced = WindowSampler(fs, 64, 0, balance=1.0)
    f_u = labels[uniform.draw(rng, 5000), 5].mean()
    f_b = labels[balanced.draw(rng, 5000), 5].mean()
    assert f_b > 10 * max(f_u, 1e-3)


def test_onset_sampler_draws_the_frames_after_onsets():
    total = 4000
    mel = np.zeros((total, 128), np.float16)
    labels = np.zeros((total, 12), np.uint8)
    labels[500:1500, 2] = 1     # onset at 500 (clip 0)
    labels[2000:2600, 4] = 1    # on from the start of clip 1: not an onset
    labels[3000:3100, 4] = 1    # onset at 3000 (clip 1)
    fs = FeatureSet(mel, labels, np.array([0, 2000, total]), ["a", "b"], list(TAGS), dict(DEFAULT_FRONTEND))
    per_tag = fs.after_onsets(25)
    assert set(np.flatnonzero(per_tag[:, 2])) == set(range(500, 525))
    assert set(np.flatnonzero(per_tag[:, 4])) == set(range(3000, 3025))
    near = per_tag.any(axis=1)
    rng = np.random.default_rng(0)
    plain = WindowSampler(fs, 64, 0, balance=0.5)
    onsets = WindowSampler(fs, 64, 0, balance=0.5, onset_fraction=0.5, onset_frames=25)
    f_plain = near[plain.draw(rng, 20000)].mean()
    f_onset = near[onsets.draw(rng, 20000)].mean()
    assert f_plain < 0.05
    assert 0.45 < f_onset < 0.55 + f_plain
    with pytest.raises(ConfigError, match="onset_fraction"):
        TrainParams(onset_fraction=1.5).validate()
    with pytest.raises(ConfigError, match="onset_ms"):
        TrainParams(onset_ms=0).validate()


def test_subset_metrics_keep_only_early_positives():
    y = np.zeros((8, 1))
    y[2:8, 0] = 1
    probs = np.array([[0.1], [0.2], [0.05], [0.15], [0.9], [0.9], [0.9], [0.9]])
    recent = np.zeros((8, 1), bool)
    recent[2:4, 0] = True           # the two frames after the onset score under a negative
    rep = subset_metrics(y, probs, recent, ["piano"])
    assert rep["per_tag"]["piano"]["positives"] == 2
    assert rep["per_tag"]["piano"]["roc_auc"] == pytest.approx(0.25)
    assert tag_metrics(y, probs, ["piano"])["per_tag"]["piano"]["roc_auc"] == pytest.approx(0.75)  # all positives
    assert rep["macro"]["roc_auc"] == pytest.approx(0.25)


def test_metrics_by_source_of_the_positives(tmp_path):
    from rtclassify.train.evaluate import by_source_metrics, source_of_positives

    recs = [
        {"clip": "a", "split": "test", "sources": [
            {"type": "fluidsynth", "soundfont": "TimGM6mb", "tag": "piano"},
            {"type": "tonejs-samples", "instrument": "cello", "tag": "strings"},
            {"type": "stk", "soundfont": "STK", "tag": "woodwind"}]},
        {"clip": "b", "split": "test", "sources": [
            {"type": "tonejs-samples", "instrument": "cello", "tag": "strings"},
            {"type": "fluidsynth", "soundfont": "TimGM6mb", "tag": "strings"},
            {"type": "espeak-ng", "tag": "speech"}]},
        {"clip": "c", "split": "train", "sources": []},
    ]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    fs = FeatureSet(np.zeros((8, 128), np.float16), np.zeros((8, 12), np.uint8), np.array([0, 4, 8]), ["a", "b"],
                    list(TAGS), dict(DEFAULT_FRONTEND))
    src = source_of_positives(tmp_path, "test", fs, list(TAGS))
    assert src == [{"piano": "soundfont TimGM6mb", "strings": "npm cello", "woodwind": "soundfont STK"},
                   {"strings": None, "speech": "espeak-ng"}]  # two sources of strings in b: not told apart
    assert source_of_positives(tmp_path / "none", "test", fs, list(TAGS)) == []
    j = list(TAGS).index("strings")
    labels = np.zeros((6, 12))
    labels[[0, 1, 3, 4], j] = 1
    probs = np.zeros((6, 12))
    probs[:, j] = [0.9, 0.8, 0.5, 0.1, 0.2, 0.3]   # clip a's strings rank above every negative, clip b's under
    clip_index = np.array([0, 0, 0, 1, 1, 1])
    rep = by_source_metrics(labels, probs, clip_index, src, list(TAGS))
    assert list(rep["strings"]) == ["npm cello"]
    assert rep["strings"]["npm cello"]["positives"] == 2 and rep["strings"]["npm cello"]["roc_auc"] == 1.0
    assert list(rep["piano"]) == ["soundfont TimGM6mb"] and rep["piano"]["soundfont TimGM6mb"]["roc_auc"] is None


def test_mixup_adds_power_and_ors_labels():
    rng = np.random.default_rng(0)
    x = torch.full((4, 128, 64), -40.0)
    y = torch.zeros(4, 12)
    y[:, 0] = 1
    y2 = torch.zeros(4, 12)
    y2[:, 3] = 1
    p = TrainParams(mixup=1.0, mixup_gain_db=0.0, gain_db=0.0, eq_db=0.0)
    xm, ym = augment(x, y, rng, p, (x.clone(), y2))
    torch.testing.assert_close(xm, torch.full_like(x, -40.0 + 10 * np.log10(2.0)))
    assert torch.all(ym[:, 0] == 1) and torch.all(ym[:, 3] == 1)
    assert torch.all(x == -40.0) and torch.all(y[:, 3] == 0)  # inputs untouched


def test_gain_augmentation_respects_floor():
    rng = np.random.default_rng(1)
    x = torch.full((64, 128, 64), -100.0)
    xm, _ = augment(x, torch.zeros(64, 12), rng, TrainParams(mixup=0.0, gain_db=6.0, eq_db=0.0))
    assert float(xm.min()) >= -100.0 and float(xm.max()) <= -94.0 and float(xm.max()) > -100.0
    # gain is one value per window
    x = torch.full((64, 128, 64), -40.0)
    xm, _ = augment(x, torch.zeros(64, 12), rng, TrainParams(mixup=0.0, gain_db=6.0, eq_db=0.0))
    assert torch.all(xm.std(dim=(1, 2)) < 1e-4) and float(xm.std()) > 1.0


def test_eq_augmentation_colours_bands_smoothly():
    rng = np.random.default_rng(2)
    x = torch.full((32, 128, 64), -40.0)
    xm, _ = augment(x, torch.zeros(32, 12), rng, TrainParams(mixup=0.0, gain_db=0.0, eq_db=6.0))
    d = (xm - x)[:, :, 0]
    assert torch.all((xm - x).std(dim=2) < 1e-4)  # the same colouring for every frame of a window
    assert float(d.abs().max()) <= 12.0 + 1e-4 and float(d.std(dim=1).mean()) > 0.5  # varies across bands
    assert float((d[:, 1:] - d[:, :-1]).abs().max()) < 1.0  # smooth across neighbouring bands


def test_freq_shift_moves_the_spectrum_by_whole_bands_and_keeps_labels():
    rng = np.random.default_rng(5)
    x = torch.full((64, 128, 8), -80.0)
    x[:, 60, :] = 0.0  # one peak band
    x[:, 0, :] = -10.0  # a loud lowest band, repeated into the gap of an upward shift
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 2, (64, 12)).astype(np.float32))
    p = TrainParams(mixup=0.0, gain_db=0.0, eq_db=0.0, freq_shift_bins=3)
    xm, ym = augment(x, y, rng, p)
    assert torch.equal(ym, y)
    peak = xm[:, :, 0].argmax(dim=1).numpy()
    assert set(peak) <= set(range(57, 64)) and len(set(peak)) > 3  # every shift in -3..3 shows up
    for b in range(64):
        s = peak[b] - 60
        assert torch.equal(xm[b, :, :], xm[b, :, :1].expand(-1, 8))  # the same shift for every frame
        if s > 0:
            assert torch.all(xm[b, :s + 1, 0] == -10.0)  # the edge band fills the gap
    x0, _ = augment(x, y, np.random.default_rng(5), TrainParams(mixup=0.0, gain_db=0.0, eq_db=0.0))
    assert torch.equal(x0, x)  # 0 disables it
    with pytest.raises(ConfigError, match="freq_shift_bins"):
        TrainParams(freq_shift_bins=-1).validate()


def test_freq_masks_set_runs_of_bands_to_the_window_mean_and_keep_labels():
    rng = np.random.default_rng(7)
    x = torch.randn(256, 128, 16) * 10.0 - 50.0
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 2, (256, 12)).astype(np.float32))
    p = TrainParams(mixup=0.0, gain_db=0.0, eq_db=0.0, freq_masks=2, freq_mask_bins=10)
    xm, ym = augment(x, y, rng, p)
    assert torch.equal(ym, y)
    changed = (xm != x).any(dim=2)  # (B, bands): a masked band differs from its noisy original
    mean = x.mean(dim=(1, 2))
    widths = []
    for b in range(256):
        bands = torch.nonzero(changed[b]).flatten()
        assert len(bands) >= 1
        assert torch.allclose(xm[b, bands, :], mean[b].expand(len(bands), 16))  # filled with the window mean
        assert torch.equal(xm[b, ~changed[b], :], x[b, ~changed[b], :])  # the rest untouched
        runs = np.split(bands.numpy(), np.flatnonzero(np.diff(bands.numpy()) > 1) + 1)
        assert len(runs) <= 2 and len(bands) <= 20  # two masks of at most 10 bands (they may touch or overlap)
        widths.append(len(bands))
    assert max(widths) > 10 and min(widths) < 5  # two masks of 1..10 bands each, varied
    x0, _ = augment(x, y, np.random.default_rng(7), TrainParams(mixup=0.0, gain_db=0.0, eq_db=0.0))
    assert torch.equal(x0, x)  # 0 disables it
    for bad in (dict(freq_masks=-1), dict(freq_masks=5), dict(freq_mask_bins=0)):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainParams(**bad).validate()


# ----------------------------------------------------------------------------- metrics
def test_hysteresis():
    p = np.array([[0.1], [0.6], [0.4], [0.2], [0.55]])
    a = hysteresis(p, np.array([0.5]), np.array([0.3]))
    assert a[:, 0].tolist() == [False, True, True, False, True]


def test_tag_metrics_and_thresholds():
    rng = np.random.default_rng(0)
    y = (rng.random((500, 12)) < 0.3).astype(np.uint8)
    y[:, 11] = 0  # a tag without positives is left out of the macro means
    perfect = y * 0.8 + 0.1
    m = tag_metrics(y, perfect, TAGS, active=perfect > 0.5)
    assert m["macro"]["roc_auc"] == pytest.approx(1.0) and m["macro"]["pr_auc"] == pytest.approx(1.0)
    assert m["macro"]["f1"] == pytest.approx(1.0)
    assert m["per_tag"]["speech"]["roc_auc"] is None
    noisy = rng.random((500, 12))
    assert tag_metrics(y, noisy, TAGS)["macro"]["roc_auc"] < 0.6
    th = choose_thresholds(y, perfect, TAGS, off_ratio=0.5)
    assert all(0.05 <= th[t]["on"] <= 0.95 and th[t]["off"] == pytest.approx(th[t]["on"] * 0.5, abs=1e-3)
               for t in TAGS)
    assert 0.1 < th["piano"]["on"] <= 0.9
    with pytest.raises(ParameterError):
        tag_metrics(y[:, :3], perfect, TAGS)


# ----------------------------------------------------------------------------- config
def test_config_parsing(tmp_path):
    cfg = parse_config({"data": {"dir": "d"}, "model": {"width": 4}, "train": {"epochs": 2}}, "c.toml", tmp_path)
    assert cfg.model.width == 4 and cfg.train.epochs == 2
    assert cfg.data["dir"] == str(tmp_path / "d") and cfg.data["cache"] == str(tmp_path / "d" / "features")
    with pytest.raises(ConfigError, match="epochz"):
        parse_config({"data": {"dir": "d"}, "train": {"epochz": 2}}, "c.toml", tmp_path)
    with pytest.raises(ConfigError, match=r"\[data\] dir"):
        parse_config({}, "c.toml", tmp_path)
    with pytest.raises(ConfigError, match="width"):
        parse_config({"data": {"dir": "d"}, "model": {"width": -1}}, "c.toml", tmp_path)
    with pytest.raises(ConfigError, match="mixup"):
        parse_config({"data": {"dir": "d"}, "train": {"mixup": 2.0}}, "c.toml", tmp_path)
    assert parse_config({"data": {"dir": "d"}, "train": {"lr": 1}}, "c.toml", tmp_path).train.lr == 1.0


@pytest.mark.parametrize("table, key, value, words", [
    ("train", "channels_last", "false", "channels_last must be true or false"),
    ("train", "seed", 1.9, "seed must be a whole number"),
    ("train", "epochs", "3", "epochs must be a whole number"),
    ("train", "time_budget_min", float("inf"), "time_budget_min must be a finite number"),
    ("train", "time_budget_min", 1e6, "time_budget_min must be > 0 and at most 10080"),
    ("train", "gain_db", float("nan"), "gain_db must be a finite number"),
    ("train", "weight_decay", -1.0, "weight_decay must be from 0"),
    ("train", "batch_size", 10 ** 9, "batch_size must be from 1 to"),
    ("model", "width", True, "width must be a whole number"),
    ("model", "width", 10 ** 6, "width must be a whole number from 0 to 1024"),
    ("model", "multipliers", "abc", "multipliers must be a list"),
    ("model", "window_frames", 0, "window_frames must be >= 1"),
    ("bundle", "hop_frames", 10 ** 6, "hop_frames must be a whole number from 1 to the model's window"),
    ("bundle", "decoder", {"smoothng_s": 0.2}, "unknown decoder key"),
    ("bundle", "decoder", {"min_on_s": float("nan")}, "min_on_s"),
    # taken and written into model.json, then ignored at load (level_rate), or refused naming a dummy tag
    ("bundle", "decoder", {"level_rate": 5.0}, r"unknown decoder key\(s\) for a bundle: \['level_rate'\] .*mapping"),
    ("bundle", "decoder", {"thresholds": {"piano": {"on": 0.9}}}, r"\['thresholds'\] .*chosen on validation"),
    # refused only after the features were computed ("mean and std must have 64 values")
    ("model", "n_mels", 64, r"\[model\] n_mels 64 differs from the frontend's 128 mel bands"),
    ("model", "n_tags", 3, r"\[model\] n_tags 3 differs from the 12 tags of the training data"),
    ("output", "dir", "", r"\[output\] dir is empty"),
])
def test_config_values_are_checked_by_name_before_training(tmp_path, table, key, value, words):
    raw = {"data": {"dir": "d"}, table: {key: value}}
    with pytest.raises(ConfigError, match=words):
        parse_config(raw, "c.toml", tmp_path)


def test_shipped_configs_parse():
    from pathlib import Path

    from rtclassify.train.trainer import load_config

    d = Path(__file__).resolve().parent.parent / "rtclassify" / "train" / "configs"
    for name in ("default.toml", "ci.toml"):
        cfg = load_config(d / name, ["train.epochs=1"])
        assert cfg.train.epochs == 1
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(d / "default.toml", ["epochs=1"])


def test_the_default_config_is_the_recipe_of_the_shipped_model():
    import json
    from pathlib import Path

    from rtclassify.train.trainer import load_config

    root = Path(__file__).resolve().parent.parent / "rtclassify"
    cfg = load_config(root / "train" / "configs" / "default.toml", [])
    shipped = json.loads((root / "data" / "default_bundle" / "model.json").read_text())
    ran = shipped["training"]["config"]  # the run's config, --set values included
    assert ran["model"] == {k: v for k, v in cfg.model.__dict__.items() if k in ran["model"]}
    assert ran["train"] == {k: v for k, v in cfg.train.__dict__.items() if k in ran["train"]}
    assert Path(cfg.data["dir"]).parts[-2:] == Path(ran["data"]["dir"]).parts[-2:]  # relative to the run's folder
    assert ran["bundle"]["hop_frames"] == cfg.bundle["hop_frames"] == shipped["hop_frames"]
    assert shipped["frontend"] == cfg.frontend
    assert ran["output"]["name"] == shipped["name"] == cfg.output["name"]


# ----------------------------------------------------------------------------- training loop end to end
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    train = build_feature_set(synthetic_clips(0, 12), tmp / "f" / "train", list(TAGS), progress=False)
    val = build_feature_set(synthetic_clips(1, 6), tmp / "f" / "val", list(TAGS), progress=False)
    params = TrainParams(epochs=2, windows_per_epoch=1280, batch_size=64, lr=5e-3, threads=1, seed=3)
    mc = ModelConfig(**TINY, lookahead_frames=2)
    trainer = Trainer(mc, params, train, val, tmp / "run", TAGS,
                      extra={"provenance": {"recipe": "synthetic test clips"}, "name": "tiny", "hop_frames": 6})
    result = trainer.fit()
    return tmp, trainer, result, train, val


def test_training_writes_checkpoints_history_and_curves(tiny_run):
    tmp, trainer, result, _, _ = tiny_run
    run = tmp / "run"
    for f in ("last.pt", "best.pt", "history.json", "curves.png"):
        assert (run / f).is_file(), f
    hist = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2]
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in hist)
    # the toy task is learnable: organ and drums separate on validation
    assert max(h["val_roc_auc"] for h in hist) > 0.9
    ck = load_checkpoint(run / "last.pt")
    assert ck["epoch"] == 2 and ck["model_config"]["lookahead_frames"] == 2


def test_resume_continues_and_matches(tiny_run, tmp_path):
    tmp, trainer, _, train, val = tiny_run
    params = TrainParams(epochs=3, windows_per_epoch=1280, batch_size=64, lr=5e-3, threads=1, seed=3)
    mc = ModelConfig(**TINY, lookahead_frames=2)
    import shutil

    shutil.copytree(tmp / "run", tmp_path / "run")
    t2 = Trainer(mc, params, train, val, tmp_path / "run", TAGS)
    assert t2.resume()
    assert t2.epoch == 2 and len(t2.history) == 2
    t2.fit(resume=False)
    assert t2.epoch == 3 and [h["epoch"] for h in t2.history] == [1, 2, 3]
    other = Trainer(ModelConfig(**TINY, lookahead_frames=1), params, train, val, tmp_path / "run", TAGS)
    with pytest.raises(ConfigError, match=r"\[model\] differs from the checkpoint.s \(lookahead_frames 2 -> 1\)"):
        other.resume()


def test_a_run_killed_between_its_checkpoints_resumes_to_the_same_best(tiny_run, tmp_path, monkeypatch):
    """A run stopped between the two checkpoints of an improving epoch resumes and ends as the whole run does.
    With last.pt written first, last.pt named a best epoch that best.pt did not hold: the export took older
    weights, or (after epoch 1) resume failed on a missing best.pt."""
    _, _, _, train, val = tiny_run
    params = TrainParams(epochs=2, windows_per_epoch=1280, batch_size=64, lr=5e-3, threads=1, seed=3)
    mc = ModelConfig(**TINY, lookahead_frames=2)
    whole = Trainer(mc, params, train, val, tmp_path / "whole", TAGS)
    whole.fit()
    real_save, saved = Trainer.save, []

    def killed_after_the_first_checkpoint(self, name):
        real_save(self, name)
        saved.append(name)
        raise KeyboardInterrupt  # epoch 1 always improves: the kill falls between its two checkpoints

    monkeypatch.setattr(Trainer, "save", killed_after_the_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        Trainer(mc, params, train, val, tmp_path / "killed", TAGS).fit()
    monkeypatch.setattr(Trainer, "save", real_save)
    assert saved == ["best.pt"]
    again = Trainer(mc, params, train, val, tmp_path / "killed", TAGS)
    result = again.fit(resume=True)
    assert again.best_epoch == whole.best_epoch and again.epoch == 2
    a = load_checkpoint(result["best"])["state_dict"]
    b = load_checkpoint(tmp_path / "whole" / "best.pt")["state_dict"]
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in b)


def test_a_resume_of_other_settings_is_refused_before_the_features(tiny_run, tmp_path, monkeypatch):
    """`train --config --resume` with another learning rate, model or frontend computed every feature (minutes
    the first time) before the checkpoint refused it; a corrupt last.pt too. Both are found first now."""
    import shutil

    import rtclassify.train.data as D
    import rtclassify.train.trainer as T

    tmp, _, _, _, _ = tiny_run
    shutil.copytree(tmp / "run", tmp_path / "run")
    monkeypatch.setattr(T, "split_features", lambda *a, **k: pytest.fail("features made before the check"))
    monkeypatch.setattr(D, "load_split", lambda d, split: ([], 3))  # a data set with every split

    def cfg(**train):
        return parse_config({"data": {"dir": "d"}, "model": {**TINY, "lookahead_frames": 2},
                             "train": {"epochs": 2, "windows_per_epoch": 1280, "batch_size": 64, "lr": 5e-3,
                                       "threads": 1, "seed": 3, **train},
                             "output": {"dir": str(tmp_path / "run")}}, "c.toml", tmp_path)

    with pytest.raises(ConfigError, match=r"last\.pt: this run differs from the checkpoint's in train\.lr 0\.005 -> "
                                          r"0\.001; cannot resume"):
        T.run_training(cfg(lr=1e-3), resume=True, export=False)
    (tmp_path / "run" / "last.pt").write_bytes(b"cut short")
    with pytest.raises(ParameterError, match="not a readable training checkpoint"):
        T.run_training(cfg(), resume=True, export=False)


def test_resume_refuses_other_training_settings_and_other_data(tiny_run, tmp_path):
    import shutil

    tmp, trainer, _, train, val = tiny_run
    shutil.copytree(tmp / "run", tmp_path / "run")
    mc = ModelConfig(**TINY, lookahead_frames=2)
    base = dict(epochs=2, windows_per_epoch=1280, batch_size=64, lr=5e-3, threads=1, seed=3)
    # another batch size and learning rate: named with both values, nothing loaded
    other = Trainer(mc, TrainParams(**{**base, "batch_size": 32, "lr": 1e-3}), train, val, tmp_path / "run", TAGS)
    with pytest.raises(ConfigError, match=r"train\.batch_size 64 -> 32; train\.lr 0\.005 -> 0\.001") as exc:
        other.resume()
    assert "epochs" in str(exc.value) and other.epoch == 0 and other.global_step == 0
    # another validation split of the same size: the same frame counts, other clips
    import dataclasses

    other = dataclasses.replace(val, names=[f"test_{i:06d}" for i in range(len(val.names))])
    with pytest.raises(ConfigError, match=r"the val split's clips"):
        Trainer(mc, TrainParams(**base), train, other, tmp_path / "run", TAGS).resume()
    # another validation split (the training split's clips in its place)
    with pytest.raises(ConfigError, match=r"the val split \(\d+ frames in 6 clips -> \d+ in 12\)"):
        Trainer(mc, TrainParams(**base), train, train, tmp_path / "run", TAGS).resume()
    # another build of the data
    with pytest.raises(ConfigError, match="provenance"):
        Trainer(mc, TrainParams(**base), train, val, tmp_path / "run", TAGS,
                extra={"provenance": {"recipe": "another"}}).resume()
    # what a resume may change: more epochs, time, patience, threads, the precision of the steps (a run of the
    # config that said "bf16" resumed with the one that says "auto")
    longer = Trainer(mc, TrainParams(**{**base, "epochs": 4, "time_budget_min": 90.0, "patience": 9,
                                        "precision": "auto"}), train, val,
                     tmp_path / "run", TAGS, extra={"provenance": {"recipe": "synthetic test clips"}})
    assert longer.resume() and longer.epoch == 2


def test_the_bundle_records_the_whole_run_not_the_run_up_to_its_best_epoch(tiny_run, tmp_path):
    """model.json's training record came from best.pt: epochs_run, history and time stopped at the best epoch,
    and the settings were those before a --resume."""
    import shutil

    from rtclassify.train.export import export_bundle

    tmp, _, _, train, val = tiny_run
    shutil.copytree(tmp / "run", tmp_path / "run")
    (tmp_path / "best").mkdir()
    shutil.copy(tmp / "run" / "best.pt", tmp_path / "best" / "best.pt")  # a best epoch of the first two
    best_epoch = load_checkpoint(tmp_path / "best" / "best.pt")["best_epoch"]
    params = TrainParams(epochs=3, windows_per_epoch=1280, batch_size=64, lr=5e-3, threads=1, seed=3, patience=7)
    t2 = Trainer(ModelConfig(**TINY, lookahead_frames=2), params, train, val, tmp_path / "run", TAGS,
                 extra={"provenance": {"recipe": "synthetic test clips"}, "name": "tiny", "hop_frames": 6})
    t2.fit(resume=True)
    meta = json.loads((export_bundle(finalize_checkpoint(t2, tmp_path / "best" / "best.pt"), tmp_path / "b")
                       / "model.json").read_text())["training"]
    assert meta["epochs_run"] == 3 and [h["epoch"] for h in meta["history"]] == [1, 2, 3]
    assert meta["best_epoch"] == best_epoch <= 2
    assert meta["elapsed_s"] == pytest.approx(t2.elapsed_s) and meta["params"]["epochs"] == 3
    assert meta["params"]["patience"] == 7


def test_finalize_export_and_onnx_inference(tiny_run):
    from rtclassify.train.export import export_bundle

    tmp, trainer, result, _, val = tiny_run
    model_pt = finalize_checkpoint(trainer, result["best"])
    ck = load_checkpoint(model_pt)
    assert set(ck["thresholds"]) == set(TAGS) and "validation" in ck["metrics"]
    bundle = export_bundle(model_pt, tmp / "bundle")
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["lookahead_frames"] == 2 and meta["provenance"]["recipe"] == "synthetic test clips"
    model = OnnxWindowModel(bundle)
    probs, labels, clip = predict_feature_set(model, val, 6)
    assert probs.shape == labels.shape and probs.shape[1] == 12
    assert np.all(np.diff(clip) >= 0)
    m = tag_metrics(labels, probs, TAGS)
    assert m["per_tag"]["organ"]["roc_auc"] > 0.9


def test_train_cli_end_to_end(tmp_path, monkeypatch, capsys):
    """`rtclassify train --config` on a tiny data set: features, 1 epoch, export, test evaluation, bundle loads."""
    from rtclassify.cli import main

    seeds = {"train": 10, "val": 11, "test": 12}
    provenance = {"recipe": "synthetic clips of the test", "sources": [{"name": "numpy", "license": "BSD-3-Clause"}]}
    fake_data(monkeypatch, seeds, {"train": 9, "val": 3, "test": 3}, "synthetic", provenance)
    (tmp_path / "data").mkdir()
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(tiny_config(tmp_path, 256, 'name = "tiny-cli"'))
    assert main(["train", "--config", str(cfg)]) == 0
    bundle = tmp_path / "run" / "bundle"
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["name"] == "tiny-cli" and meta["provenance"]["recipe"] == "synthetic clips of the test"
    assert {"validation", "test"} <= set(meta["metrics"])
    assert meta["metrics"]["test"]["split"] == "test"
    assert (tmp_path / "data" / "features" / "train" / "mel.npy").is_file()  # cached next to the data
    assert (tmp_path / "run" / "eval" / "pr_curves.png").is_file()
    from rtclassify.model.classifier import Classifier

    clf = Classifier.load(bundle)
    res = clf.tag(np.zeros(SR * 2, np.float32), SR)
    assert res.probs.shape[1] == 12 and len(res.times) > 0
    # evaluate command on the same data writes its JSON report and plots
    assert main(["evaluate", str(bundle), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "ev"),
                 "--update-bundle"]) == 0
    rep = json.loads((tmp_path / "ev" / "test.json").read_text())
    assert rep["macro"]["roc_auc"] is not None and (tmp_path / "ev" / "per_tag.png").is_file()
    assert set(rep["after_onset"]) == {"100ms", "250ms"}
    for span in rep["after_onset"].values():
        assert set(span["per_tag"]) == set(rep["per_tag"]) and span["n"] == rep["n"]
        for tag, d in span["per_tag"].items():
            assert d["positives"] <= rep["per_tag"][tag]["positives"]
    assert json.loads((bundle / "model.json").read_text())["metrics"]["test"]["n"] == rep["n"]
    # a data folder without training clips (built with --splits test) gives a one-line error
    fake_data(monkeypatch, seeds, {"train": 0, "val": 3, "test": 3}, "synthetic-2", provenance)
    capsys.readouterr()
    assert main(["train", "--config", str(cfg), "--set", f'output.dir="{tmp_path / "run2"}"']) == 1
    err = capsys.readouterr().err
    assert "has no 'train' split" in err and "Traceback" not in err
    assert not (tmp_path / "run2" / "last.pt").exists()
    # a data folder without the test split (built with --splits train,val): said before the training, not after
    fake_data(monkeypatch, seeds, {"train": 9, "val": 3, "test": 0}, "synthetic-3", provenance)
    capsys.readouterr()
    assert main(["train", "--config", str(cfg), "--set", f'output.dir="{tmp_path / "run2"}"']) == 1
    cap = capsys.readouterr()
    err = cap.err
    assert "[data] test: the data dir" in err and "has no 'test' split" in err and "--no-test" in err, err
    assert "features ready" not in cap.out and not (tmp_path / "run2" / "last.pt").exists()
    # a second run into the same folder would replace the first one's checkpoints: refused before any work
    capsys.readouterr()
    before = (tmp_path / "run" / "model.pt").read_bytes()
    assert main(["train", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a training run" in err[0] and "--resume" in err[0]
    assert (tmp_path / "run" / "model.pt").read_bytes() == before
    # an output bundle path that is a file is refused before the features, not after the training
    (tmp_path / "afile").write_text("x")
    assert main(["train", "--config", str(cfg), "--set", f'output.dir="{tmp_path / "run3"}"', "--set",
                 f'output.bundle="{tmp_path / "afile"}"']) == 1
    assert "exists and is not a folder" in capsys.readouterr().err and not (tmp_path / "run3").exists()
    # a bad config gives a one-line error naming the key
    cfg.write_text(cfg.read_text().replace("epochs = 1", "epochs = 1\nwarp = 9"))
    assert main(["train", "--config", str(cfg)]) == 1


def test_data_build_train_export_recipe(tmp_path):
    """The whole recipe on a tiny set: `data build` -> `train --config ci.toml` -> bundle -> Classifier."""
    from pathlib import Path

    from rtclassify.cli import main
    from rtclassify.errors import MissingDependencyError
    from rtclassify.train.data import build as B

    try:
        B.check_dependencies()
    except MissingDependencyError as exc:
        pytest.skip(f"data tools missing: {exc}")
    data = tmp_path / "data"
    B.build_dataset(data, 0.003, 7, clip_seconds=2.0, workers=1, progress=False)
    ci = Path(__file__).resolve().parent.parent / "rtclassify" / "train" / "configs" / "ci.toml"
    assert main(["train", "--config", str(ci), "--set", f'data.dir="{data}"',
                 "--set", f'output.dir="{tmp_path / "run"}"']) == 0
    meta = json.loads((tmp_path / "run" / "bundle" / "model.json").read_text())
    assert meta["provenance"]["recipe"] == "rtclassify-synth"
    assert meta["provenance"]["sources"]["soundfonts"]["TimGM6mb"]["license"] == "GPL-2.0"
    assert "test" in meta["metrics"]
    by_source = meta["metrics"]["test"]["by_source"]
    names = {name for rows in by_source.values() for name in rows}
    assert names and not any(n.startswith("soundfont") and n != "soundfont TimGM6mb" for n in names)  # held out
    from rtclassify.model.classifier import Classifier

    res = Classifier.load(tmp_path / "run" / "bundle").tag(np.zeros(SR, np.float32), SR)
    assert res.probs.shape[1] == 12


def test_split_plots_without_positives(tmp_path):
    from rtclassify.train.evaluate import plot_split_report

    y = np.zeros((50, 12), np.uint8)
    p = np.random.default_rng(0).random((50, 12))
    rep = tag_metrics(y, p, TAGS, active=p > 0.5)
    assert rep["macro"]["roc_auc"] is None
    paths = plot_split_report(rep, {"labels": y, "probs": p}, TAGS, tmp_path)
    assert all(x.is_file() for x in paths)


def test_bf16_channels_last_training_learns_and_exports_a_float32_graph(tmp_path):
    """precision = 'bf16' and channels_last change how steps run, not what is trained or exported:
    the toy task is learned, the checkpoint holds float32 weights, and the ONNX graph computes the
    float32 torch model's probabilities (the parity the runtime relies on)."""
    import torch

    from rtclassify.train.export import export_bundle

    train = build_feature_set(synthetic_clips(0, 12), tmp_path / "f" / "train", list(TAGS), progress=False)
    val = build_feature_set(synthetic_clips(1, 6), tmp_path / "f" / "val", list(TAGS), progress=False)
    params = TrainParams(epochs=2, windows_per_epoch=1280, batch_size=64, lr=5e-3, threads=1, seed=3,
                         precision="bf16", channels_last=True)
    trainer = Trainer(ModelConfig(**TINY, lookahead_frames=2), params, train, val, tmp_path / "run", TAGS,
                      extra={"provenance": {"recipe": "synthetic test clips"}, "name": "tiny", "hop_frames": 6})
    result = trainer.fit()
    assert max(h["val_roc_auc"] for h in trainer.history) > 0.9
    ck = load_checkpoint(result["best"])
    assert all(v.dtype in (torch.float32, torch.int64) for v in ck["state_dict"].values())
    bundle = export_bundle(finalize_checkpoint(trainer, result["best"]), tmp_path / "bundle")
    x = np.random.default_rng(0).normal(-40, 15, (5, 128, 64)).astype(np.float32)
    model = ShortChunkCNN(ModelConfig(**TINY, lookahead_frames=2))
    model.load_state_dict(load_checkpoint(result["best"])["state_dict"])
    model.eval()
    with torch.no_grad():
        want = torch.sigmoid(model.logits_and_embedding(torch.from_numpy(x))[0]).numpy()
    np.testing.assert_allclose(OnnxWindowModel(bundle)(x), want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("asked, native, runs, says", [
    ("auto", True, "bf16", "precision = 'auto': bf16 (this CPU has native bfloat16)"),
    ("auto", False, "fp32", "precision = 'auto': fp32 (this CPU has no native bfloat16)"),
    ("bf16", False, "bf16", "about ten times slower than with 'fp32'"),
    ("fp32", True, "fp32", None),
])
def test_auto_precision_follows_the_cpu(tmp_path, monkeypatch, asked, native, runs, says):
    """precision = 'auto' (the shipped configs) takes bfloat16 only on a CPU that runs it natively: emulated, a
    width-16 step took 3.8 s against 0.41 s in float32 on an AVX2 CPU. The precision that ran is in each
    epoch's record."""
    import io

    from rich.console import Console

    import rtclassify.train.trainer as T

    monkeypatch.setattr(T, "_cpu_has_bf16", lambda torch: native)
    seen = []
    real_autocast = torch.autocast

    def spy(*a, **kw):
        seen.append(bool(kw.get("enabled", True)))
        return real_autocast(*a, **kw)

    monkeypatch.setattr(torch, "autocast", spy)
    train = build_feature_set(synthetic_clips(0, 4), tmp_path / "f" / "train", list(TAGS), progress=False)
    val = build_feature_set(synthetic_clips(1, 2), tmp_path / "f" / "val", list(TAGS), progress=False)
    out = io.StringIO()
    params = TrainParams(epochs=1, windows_per_epoch=128, batch_size=64, lr=5e-3, threads=1, seed=3, precision=asked)
    trainer = Trainer(ModelConfig(**TINY, lookahead_frames=2), params, train, val, tmp_path / "run", TAGS,
                      extra={"name": "tiny", "hop_frames": 6}, console=Console(file=out, width=200))
    trainer.fit()
    assert trainer.precision == runs
    assert [h["precision"] for h in trainer.history] == [runs]
    assert seen and all(e == (runs == "bf16") for e in seen)  # the steps and the validation ran in it
    text = " ".join(out.getvalue().split())
    if says:
        assert says in text
    else:
        assert "precision" not in text


@pytest.mark.parametrize("kw, word", [({"precision": "fp16"}, "precision must be 'fp32', 'bf16' or 'auto'"),
                                      ({"channels_last": "yes"}, "channels_last")])
def test_train_params_reject_bad_precision_options(kw, word):
    with pytest.raises(ConfigError, match=word):
        TrainParams(**kw).validate()


def test_set_reaches_nested_tables(tmp_path):
    from rtclassify.train.trainer import load_config

    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\ndir = "d"\n')
    c = load_config(cfg, ["bundle.decoder.smoothing_s=0.2", "train.epochs=3"])
    assert c.bundle["decoder"]["smoothing_s"] == 0.2 and c.train.epochs == 3
    with pytest.raises(ConfigError, match="epochs is a value, not a table"):
        load_config(cfg, ["train.epochs=3", "train.epochs.x=1"])
    with pytest.raises(ConfigError, match=r"\[train\] epochs must be a whole number"):
        load_config(cfg, ["train.epochs.x=1"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(cfg, ["bundle..x=1"])
    # a number Python reads and TOML does not was taken for a string: "lr must be a finite number, got '.001'"
    with pytest.raises(ConfigError, match=r"--set 'train.lr=.001': .001 is not a TOML number; write it as 0.001"):
        load_config(cfg, ["train.lr=.001"])
    assert load_config(cfg, ["data.dir=./d2"]).data["dir"].endswith("/d2")  # a bare path stays a string


def test_a_bundle_another_run_wrote_is_replaced_only_with_force(tmp_path):
    """`train --config` replaced whatever bundle stood at [output] bundle; now, as export, learn and train --data
    do, one that another run wrote needs --force, while this run's own (a re-export, a resumed run) and the
    package's (the recipe's path, said on the console) are replaced."""
    import io
    import json

    from rich.console import Console

    from rtclassify.train.trainer import check_outputs

    def cfg(run, bundle):
        return parse_config({"data": {"dir": "d"}, "output": {"dir": str(run), "bundle": str(bundle)}}, "c.toml",
                            tmp_path)

    def bundle_of(folder, checkpoint):
        folder.mkdir()
        (folder / "model.json").write_text(json.dumps({"training": {"checkpoint": str(checkpoint)}}))
        (folder / "model.onnx").write_bytes(b"onnx")
        return folder

    console = Console(file=io.StringIO())
    other = bundle_of(tmp_path / "other", tmp_path / "run1" / "model.pt")
    c = cfg(tmp_path / "run2", other)
    with pytest.raises(ConfigError, match=r"\[output\] bundle .*other.*pass --force"):
        check_outputs(c, False, True, console, force=False)
    check_outputs(c, False, True, console, force=True)
    check_outputs(c, False, True, console)  # the Python API replaces, as check_bundle_out does
    check_outputs(c, False, False, console, force=False)  # no export: the bundle is not touched
    own = bundle_of(tmp_path / "own", tmp_path / "run2" / "model.pt")
    check_outputs(cfg(tmp_path / "run2", own), False, True, console, force=False)
    assert (other / "model.onnx").read_bytes() == b"onnx"
    # this run's bundle exported from elsewhere (model.json's path relative to that folder): known by content
    import hashlib

    (tmp_path / "run3").mkdir()
    (tmp_path / "run3" / "model.pt").write_bytes(b"weights")
    moved = bundle_of(tmp_path / "moved", "runs/run3/model.pt")
    meta = json.loads((moved / "model.json").read_text())
    meta["training"]["checkpoint_sha256"] = hashlib.sha256(b"weights").hexdigest()
    (moved / "model.json").write_text(json.dumps(meta))
    check_outputs(cfg(tmp_path / "run3", moved), True, True, console, force=False)
    (tmp_path / "run3" / "model.pt").write_bytes(b"other weights")
    with pytest.raises(ConfigError, match="pass --force"):
        check_outputs(cfg(tmp_path / "run3", moved), True, True, console, force=False)


def test_a_bad_value_from_set_is_named_as_such(tmp_path):
    """`train --set train.epochs=abc` blamed the config file for a value the file does not hold."""
    from rtclassify.train.trainer import load_config

    cfg = tmp_path / "good.toml"
    cfg.write_text('[data]\ndir = "d"\n[train]\nepochs = 3\n')
    with pytest.raises(ConfigError, match=r"^--set train\.epochs=abc: \[train\] epochs must be a whole number"):
        load_config(cfg, ["train.epochs=abc"])
    cfg.write_text('[data]\ndir = "d"\n[train]\nepochs = "x"\n')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(cfg))}: \[train\] epochs must be"):
        load_config(cfg, ["train.lr=0.001"])
    # a misspelt key from --set too (it was "good.toml: [train] unknown key(s) ['epoch']"), and a nested table's
    cfg.write_text('[data]\ndir = "d"\n[train]\nepochs = 3\n')
    with pytest.raises(ConfigError, match=r"^--set train\.epoch=3: \[train\] unknown key\(s\) \['epoch'\]"):
        load_config(cfg, ["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"^--set bundle\.decoder\.foo=1: "):
        load_config(cfg, ["bundle.decoder.foo=1"])
    with pytest.raises(ConfigError, match=r"^--set trian\.epochs=3: unknown table\(s\) \['trian'\]"):
        load_config(cfg, ["trian.epochs=3"])
    cfg.write_text('[data]\ndir = "d"\n[train]\nepoch = 3\n')  # the file's own misspelling is still the file's
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(cfg))}: \[train\] unknown key"):
        load_config(cfg, ["train.lr=0.001"])
