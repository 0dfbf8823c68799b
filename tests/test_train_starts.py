"""Training on the windows a stream starts with, and thresholds held above the model's level in noise.

The runtime pads a stream's first windows with the frontend's frame for digital silence
(``StreamSession``); ``stream_starts`` lets the trainer draw those windows too, padded the same way.
``quiet_false_rate`` keeps each tag's threshold above its probability in most frames of clips where
every tag is off.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from rtclassify import Classifier  # noqa: E402
from rtclassify.errors import ConfigError, ParameterError  # noqa: E402
from rtclassify.train.evaluate import MIN_QUIET_FRAMES, OnnxWindowModel, choose_thresholds  # noqa: E402
from rtclassify.train.features import (  # noqa: E402
    DEFAULT_FRONTEND, Clip, FeatureSet, build_feature_set, clip_index, make_frontend, window_batch)
from rtclassify.train.model import TAGS, ModelConfig  # noqa: E402
from rtclassify.train.trainer import (  # noqa: E402
    TrainParams, Trainer, WindowSampler, finalize_checkpoint, load_checkpoint, quiet_clips, windows)

SR = 16000
TINY = dict(width=4, multipliers=[1, 2, 2, 4], time_pools=4, embedding_dim=16)


def _index_frames(n_clips=3, n=100, frontend=None):
    """A FeatureSet whose frame k holds the value k in every mel band."""
    total = n_clips * n
    mel = np.repeat(np.arange(total, dtype=np.float32)[:, None], 128, axis=1).astype(np.float16)
    labels = np.zeros((total, 12), np.uint8)
    return FeatureSet(mel, labels, np.arange(0, total + 1, n), [f"c{i}" for i in range(n_clips)], list(TAGS),
                      dict(frontend or DEFAULT_FRONTEND))


# ----------------------------------------------------------------------------- windows before a clip
def test_start_targets_begin_at_each_clip_and_their_windows_hold_silence_before_it():
    fs = _index_frames()
    W, L = 64, 2
    plain = fs.target_frames(W, L)
    starts = fs.target_frames(W, L, starts=True)
    assert plain[0] == W - 1 - L and starts[0] == 0
    assert set(plain) < set(starts)
    assert {100, 200} <= set(starts) and not {100, 200} & set(plain)
    assert all(t % 100 <= 100 - 1 - L for t in starts)  # the lookahead frames stay inside the clip
    silence = fs.silence_frame()
    assert silence.shape == (128,) and np.all(silence < -90)  # the frontend's floor, not zeros
    x = windows(fs, np.array([100, 130, 200 + W - 1 - L]), W, L, True)
    assert x.shape == (3, 128, W)
    # target 100 (clip 1's first frame): its window ends at frame 102; the 61 frames before the clip are silence
    np.testing.assert_array_equal(x[0][:, :W - 1 - L], np.repeat(silence[:, None], W - 1 - L, axis=1))
    np.testing.assert_array_equal(x[0][0, W - 1 - L:], [100, 101, 102])
    assert np.all(x[1][0, -(130 + L - 100 + 1):] >= 100)  # never a frame of the clip before
    np.testing.assert_array_equal(x[2][0], np.arange(200, 200 + W))  # a full window needs no padding
    # without starts, a window is the plain gather
    np.testing.assert_array_equal(windows(fs, plain[:3], W, L, False), window_batch(fs.mel, plain[:3] + L, W))
    with pytest.raises(ParameterError, match="pad"):
        window_batch(fs.mel, np.array([5]), W, fs.offsets)


@pytest.mark.parametrize("n_fft", [512, 1024])
def test_padded_training_windows_are_the_runtime_windows_of_a_stream_start(tmp_path, n_fft):
    """Train as the runtime serves: the windows the trainer builds for a clip's first frames give, through the
    bundle's ONNX graph, the probabilities ``Classifier.tag`` gives for the same audio from its first output on."""
    from rtclassify.model.bundle import default_bundle_path

    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    meta = json.loads((bundle / "model.json").read_text())
    if meta["frontend"].get("n_fft") != n_fft:  # the same network on another analysis window: any weights do
        meta["frontend"].update(n_fft=n_fft, win_length=n_fft)
        (bundle / "model.json").write_text(json.dumps(meta))
    model = OnnxWindowModel(bundle, threads=1)
    W, L, hop = model.window_frames, int(meta["lookahead_frames"]), int(model.bundle.hop_frames)
    rng = np.random.default_rng(1)
    audio = (0.2 * rng.standard_normal(3 * SR)).astype(np.float32)
    audio[:SR // 4] = 0.0  # silence, then noise: the start a rain recording has
    mel = np.asarray(make_frontend(meta["frontend"]).push(audio), np.float32)
    fs = FeatureSet(mel, np.zeros((len(mel), 12), np.uint8), np.array([0, len(mel)]), ["a"], list(TAGS),
                    meta["frontend"])
    targets = np.arange(hop - 1, 30 * hop, hop)  # outputs 0..29: the first windows, all padded
    got = model(windows(fs, targets, W, L, True))
    want = Classifier.load(bundle).tag(audio, SR, level_rate=0).probs[:len(targets)]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # the unpadded alternative is not what the runtime computes
    assert not np.allclose(model(window_batch(mel, np.maximum(targets + L, W - 1), W)), want, atol=1e-3)


def _clips(seed, n, seconds=2.0):
    """Noise clips (every tag off) and clips of a harmonic tone (organ)."""
    rng = np.random.default_rng(seed)
    T = int(seconds * SR)
    nfr = 1 + (T - 512) // 256
    for k in range(n):
        if k % 2:
            a = (0.3 * rng.normal(size=T)).astype(np.float32)
            lab = np.zeros((nfr, 12), np.uint8)
        else:
            t = np.arange(T) / SR
            f0 = rng.uniform(110, 330)
            a = sum(0.3 / h * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 6)).astype(np.float32)
            lab = np.zeros((nfr, 12), np.uint8)
            lab[:, TAGS.index("organ")] = 1
        yield Clip(f"clip{k}", a, lab)


def test_sampler_draws_padded_start_windows(tmp_path):
    fs = build_feature_set(_clips(0, 4), tmp_path / "f", list(TAGS), progress=False)
    W, L = 64, 2
    plain = WindowSampler(fs, W, L, 0.5)
    both = WindowSampler(fs, W, L, 0.5, starts=True)
    assert len(both.targets) == len(plain.targets) + fs.n_clips * (W - 1 - L)
    t = both.draw(np.random.default_rng(0), 4000)
    clip_start = fs.offsets[clip_index(fs.offsets, t)]
    early = t - clip_start < W - 1 - L
    assert 0.05 < early.mean() < 0.8
    x, _ = both.batch(t[early][:8])
    assert np.all(x[:, :, 0] == fs.silence_frame()[None, :])  # the oldest frame of each is before its clip


def test_quiet_clips_are_the_clips_with_every_tag_off():
    fs = _index_frames(n_clips=4, n=10)
    fs.labels[12, 3] = 1  # clip 1 has one frame of a tag
    fs.labels[39, 0] = 1  # clip 3's last frame
    np.testing.assert_array_equal(quiet_clips(fs), [True, False, True, False])


# ----------------------------------------------------------------------------- the quiet-frame floor
def _scores(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 12), np.uint8)
    y[: n // 2, 0] = 1
    probs = rng.uniform(0.0, 0.2, (n, 12))
    probs[: n // 2, 0] = rng.uniform(0.3, 1.0, n // 2)
    quiet = np.zeros(n, bool)
    quiet[n // 2:] = True
    # in 5% of the quiet frames tag 0 reads 0.5-0.9: noise taken for it
    noisy = np.flatnonzero(quiet)[:: 20]
    probs[noisy, 0] = rng.uniform(0.5, 0.9, len(noisy))
    return y, probs, quiet


def test_quiet_floor_raises_a_threshold_to_its_quantile_in_quiet_frames():
    y, probs, quiet = _scores()
    f1 = choose_thresholds(y, probs, TAGS)
    assert f1["piano"]["on"] < 0.35  # F1 alone sits under the noise's 0.5-0.9
    report = {}
    th = choose_thresholds(y, probs, TAGS, quiet_false_rate=0.01, quiet=quiet, report=report)
    floor = float(np.quantile(probs[quiet, 0], 0.99))
    assert th["piano"]["on"] == pytest.approx(floor, abs=1e-4) and floor > 0.8
    assert th["piano"]["off"] == pytest.approx(0.7 * th["piano"]["on"], abs=1e-3)
    assert np.mean(probs[quiet, 0] >= th["piano"]["on"]) <= 0.0101
    assert report["quiet_frames"] == quiet.sum() and set(report) == {"quiet_frames", "piano"}
    assert report["piano"]["f1_on"] == pytest.approx(f1["piano"]["on"], abs=1e-4)
    # tags whose F1 threshold is already above the floor keep it
    assert all(th[t] == f1[t] for t in TAGS[1:])
    # the default quiet rows are the rows with every tag off: the same ones here
    assert choose_thresholds(y, probs, TAGS, quiet_false_rate=0.01) == th


def test_a_floor_over_the_cap_is_reported_as_not_met():
    y, probs, quiet = _scores()
    probs[np.flatnonzero(quiet)[::5], 0] = 0.999  # a fifth of the quiet frames: the floor is over hi
    report = {}
    th = choose_thresholds(y, probs, TAGS, quiet_false_rate=0.01, quiet=quiet, report=report)
    assert th["piano"]["on"] == 0.95
    assert report["piano"]["on"] == 0.95 and report["piano"]["quiet_floor"] > 0.99 and report["piano"]["met"] is False


def test_quiet_floor_needs_enough_quiet_frames_and_a_valid_rate():
    y, probs, quiet = _scores()
    few = np.zeros_like(quiet)
    few[np.flatnonzero(quiet)[:MIN_QUIET_FRAMES - 1]] = True
    assert choose_thresholds(y, probs, TAGS, quiet_false_rate=0.01, quiet=few) == choose_thresholds(y, probs, TAGS)
    for bad in (-0.1, 0.5, float("nan")):
        with pytest.raises(ParameterError, match="quiet_false_rate"):
            choose_thresholds(y, probs, TAGS, quiet_false_rate=bad)
    with pytest.raises(ParameterError, match="bool mask of 4000 rows"):
        choose_thresholds(y, probs, TAGS, quiet_false_rate=0.01, quiet=quiet[:10])


@pytest.mark.parametrize("kw, word", [({"quiet_false_rate": 0.5}, "quiet_false_rate"),
                                      ({"quiet_false_rate": -0.01}, "quiet_false_rate"),
                                      ({"stream_starts": 1}, "stream_starts")])
def test_train_params_check_the_new_options(kw, word):
    with pytest.raises(ConfigError, match=word):
        TrainParams(**kw).validate()


# ----------------------------------------------------------------------------- a run with both
def test_a_run_with_stream_starts_and_a_quiet_floor(tmp_path):
    from rich.console import Console

    train = build_feature_set(_clips(0, 8), tmp_path / "f" / "train", list(TAGS), progress=False)
    val = build_feature_set(_clips(1, 16), tmp_path / "f" / "val", list(TAGS), progress=False)
    base = dict(epochs=1, windows_per_epoch=640, batch_size=64, lr=5e-3, threads=1, seed=3, val_stride=1)
    params = TrainParams(**base, stream_starts=True, quiet_false_rate=0.01)
    mc = ModelConfig(**TINY, lookahead_frames=2)
    out = io.StringIO()
    trainer = Trainer(mc, params, train, val, tmp_path / "run", TAGS, extra={"name": "tiny", "hop_frames": 3},
                      console=Console(file=out, width=200))
    first = val.offsets[:-1]
    assert set(first) <= set(trainer.val_targets)  # validation scores the padded windows too
    assert trainer.sampler.starts and set(train.offsets[:-1]) <= set(trainer.sampler.targets)
    # the validation predictions read the padded windows, not frames before the clip
    import torch

    trainer.model.eval()
    with torch.no_grad():
        want = torch.sigmoid(trainer.model.logits_and_embedding(
            torch.from_numpy(windows(val, first, mc.window_frames, mc.lookahead_frames, True)))[0]).numpy()
    np.testing.assert_allclose(trainer.predict(val, first), want, atol=1e-6)
    result = trainer.fit()
    ck = load_checkpoint(finalize_checkpoint(trainer, result["best"]))
    floor = ck["metrics"]["validation"]["quiet_floor"]
    # the eight noise clips of validation are the quiet frames, enough for a floor
    n_quiet = int(quiet_clips(val)[clip_index(val.offsets, trainer.val_targets)].sum())
    assert floor["quiet_false_rate"] == 0.01 and floor["quiet_frames"] == n_quiet
    probs = trainer.predict(val, trainer.val_targets)
    q = quiet_clips(val)[clip_index(val.offsets, trainer.val_targets)]
    assert q.sum() >= MIN_QUIET_FRAMES
    for j, tag in enumerate(TAGS):
        assert ck["thresholds"][tag]["on"] >= min(0.95, np.quantile(probs[q, j], 0.99)) - 1e-4
    # the floor is taken over whole clips with every tag off, not over every all-off row
    import rtclassify.train.evaluate as E

    seen = {}
    real = E.choose_thresholds

    def spy(*a, **kw):
        seen["quiet"] = kw.get("quiet")
        return real(*a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "choose_thresholds", spy)
        finalize_checkpoint(trainer, result["best"])
    np.testing.assert_array_equal(seen["quiet"], q)
    # a resume may change the floor but not what is trained on
    for p, ok in ((TrainParams(**base, stream_starts=True, quiet_false_rate=0.05), True),
                  (TrainParams(**base, stream_starts=False, quiet_false_rate=0.01), False)):
        again = Trainer(mc, p, train, val, tmp_path / "run", TAGS, extra={"name": "tiny", "hop_frames": 3})
        if ok:
            assert again.resume()
            # the thresholds of model.pt (and the bundle's training.params) come from the resumed floor,
            # though best.pt was written before it
            done = load_checkpoint(finalize_checkpoint(again, result["best"]))
            assert done["train_params"]["quiet_false_rate"] == 0.05
            assert done["metrics"]["validation"]["quiet_floor"]["quiet_false_rate"] == 0.05
            assert load_checkpoint(result["best"])["train_params"]["quiet_false_rate"] == 0.01
        else:
            with pytest.raises(ConfigError, match="stream_starts True -> False"):
                again.resume()
    # a checkpoint from before the option trained without it: resuming it with the option is another run
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    del ck["train_params"]["stream_starts"]
    assert trainer._resume_conflicts(ck) == ["train.stream_starts False -> True"]
