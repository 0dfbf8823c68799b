"""A training config's [frontend]: a longer analysis window on the data builder's label grid."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from rtclassify.errors import ConfigError, ParameterError  # noqa: E402
from rtclassify.train.data.labels import HOP, N_FFT, SAMPLE_RATE, TAGS, n_frames  # noqa: E402
from rtclassify.train.features import (  # noqa: E402
    DEFAULT_FRONTEND, Clip, build_feature_set, cache_folder, logmel)
from rtclassify.train.trainer import grid_label_offset, parse_config  # noqa: E402

FE_1024 = dict(DEFAULT_FRONTEND, n_fft=1024, win_length=1024)


@pytest.mark.parametrize("n_fft, offset", [(512, 0), (1024, 1), (2048, 3), (4096, 7)])
def test_label_offset_puts_frame_centres_on_the_grid(n_fft, offset):
    assert grid_label_offset(dict(DEFAULT_FRONTEND, n_fft=n_fft)) == offset
    # frame 0 of the frontend is centred on label frame `offset` of the data's grid
    assert n_fft / 2 == offset * HOP + N_FFT / 2


@pytest.mark.parametrize("change, words", [
    ({"n_fft": 768}, "n_fft must be one of 512, 1024, 2048, 4096"),
    ({"n_fft": 256}, "n_fft must be one of"),
    ({"n_fft": 1536}, "n_fft must be one of"),  # on the grid, but not a size the native frontend computes
    ({"n_fft": 8192}, "n_fft must be one of"),
    ({"n_fft": 1024.0}, "n_fft must be"),
    ({"hop_length": 128}, "hop of 256 samples"),
    ({"sample_rate": 22050}, "16000 Hz"),
])
def test_label_offset_refuses_frames_off_the_grid(change, words):
    with pytest.raises(ConfigError, match=words):
        grid_label_offset(dict(DEFAULT_FRONTEND, **change))


def test_config_frontend_table(tmp_path):
    base = {"data": {"dir": "d"}}
    assert parse_config(base, "c.toml", tmp_path).frontend == DEFAULT_FRONTEND
    cfg = parse_config({**base, "frontend": {"n_fft": 1024}}, "c.toml", tmp_path)
    assert cfg.frontend == FE_1024  # the window grows with the FFT unless given
    cfg = parse_config({**base, "frontend": {"n_fft": 1024, "win_length": 800}}, "c.toml", tmp_path)
    assert cfg.frontend["win_length"] == 800 and cfg.frontend["n_fft"] == 1024
    for table, words in [({"n_fft": 1000}, r"c\.toml: \[frontend\] n_fft must be one of"),
                         ({"n_fft": 1024, "win_length": 2048}, "win_length must be a whole number from 1 to n_fft"),
                         ({"n_fft": "1024"}, "n_fft must be"),
                         ({"hop_length": 128}, r"\[frontend\] unknown key\(s\) \['hop_length'\]"),
                         ("1024", r"\[frontend\] must be a table")]:
        with pytest.raises(ConfigError, match=words):
            parse_config({**base, "frontend": table}, "c.toml", tmp_path)


def _clip(seed, seconds=2.0):
    """Noise whose label row k is k % 2 for every tag (so a shift of the rows shows)."""
    rng = np.random.default_rng(seed)
    audio = (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    lab = np.zeros((n_frames(audio.size), len(TAGS)), np.uint8)
    lab[1::2] = 1
    return Clip(f"c{seed}", audio, lab)


def test_feature_set_takes_labels_from_the_offset(tmp_path):
    clips = [_clip(0), _clip(1, 1.3)]
    fs = build_feature_set(clips, tmp_path / "f", list(TAGS), FE_1024, progress=False, label_offset=1)
    for k, clip in enumerate(clips):
        a, b = fs.offsets[k], fs.offsets[k + 1]
        mel = logmel(clip.audio, FE_1024)
        assert b - a == mel.shape[0] == n_frames(clip.audio.size) - 2
        np.testing.assert_array_equal(fs.labels[a:b], clip.labels[1:1 + mel.shape[0]])
        assert fs.labels[a, 0] == 1  # label row 1, not row 0
    # labels that end before the last frame at this offset are refused by name
    short = Clip("short", clips[0].audio, clips[0].labels[: fs.offsets[1] - fs.offsets[0]])
    with pytest.raises(ParameterError, match="from label frame 1"):
        build_feature_set([short], tmp_path / "g", list(TAGS), FE_1024, progress=False, label_offset=1)
    with pytest.raises(ParameterError, match="label_offset"):
        build_feature_set(clips, tmp_path / "h", list(TAGS), FE_1024, progress=False, label_offset=-1)


def test_a_longer_fft_gets_a_window_as_long_unless_given():
    from rtclassify import MelFrontend
    from rtclassify.train.features import full_frontend, make_frontend

    assert full_frontend({"n_fft": 1024})["win_length"] == 1024  # as the native frontend takes it
    assert MelFrontend(16000, 1024, 256, 128).config["win_length"] == 1024
    assert make_frontend({"n_fft": 1024}).config["win_length"] == 1024
    assert full_frontend({"n_fft": 1024, "win_length": 800})["win_length"] == 800
    assert full_frontend({"n_fft": 1024, "win_length": None})["win_length"] == 1024
    assert full_frontend(None) == DEFAULT_FRONTEND


def test_cache_folders_keep_frontends_apart(tmp_path):
    assert cache_folder(tmp_path, "train") == tmp_path / "train"
    assert cache_folder(tmp_path, "train", DEFAULT_FRONTEND) == tmp_path / "train"
    other = cache_folder(tmp_path, "train", FE_1024)
    assert other.parent == tmp_path and other.name.startswith("train-") and other != tmp_path / "train"
    assert cache_folder(tmp_path, "train", dict(FE_1024)) == other
    assert cache_folder(tmp_path, "train", dict(FE_1024, win_length=800)) != other


def test_split_features_align_a_longer_window_with_the_builders_labels(tiny_data):
    from rtclassify.train.data import load_split
    from rtclassify.train.trainer import split_features

    short = split_features(tiny_data, "train", TAGS, DEFAULT_FRONTEND, progress=False)
    long = split_features(tiny_data, "train", TAGS, FE_1024, progress=False)
    assert (tiny_data / "features" / "train" / "meta.json").is_file()
    meta = json.loads((cache_folder(tiny_data / "features", "train", FE_1024) / "meta.json").read_text())
    assert meta["frontend"]["n_fft"] == 1024
    # both caches stay: loading the default frontend again reads its own folder
    again = split_features(tiny_data, "train", TAGS, DEFAULT_FRONTEND, progress=False)
    np.testing.assert_array_equal(np.asarray(again.mel), np.asarray(short.mel))
    clips, _ = load_split(tiny_data, "train")
    for k, clip in enumerate(clips):
        a, b = long.offsets[k], long.offsets[k + 1]
        a0, b0 = short.offsets[k], short.offsets[k + 1]
        assert b - a == b0 - a0 - 2  # two frames fewer: one at each end
        np.testing.assert_array_equal(long.labels[a:b], short.labels[a0 + 1:b0 - 1])


def test_train_with_a_longer_window_exports_its_frontend(tiny_data, tmp_path, capsys):
    from pathlib import Path

    from rtclassify.cli import main
    from rtclassify.model.classifier import Classifier

    ci = Path(__file__).resolve().parent.parent / "rtclassify" / "train" / "configs" / "ci.toml"
    assert main(["train", "--config", str(ci), "--set", f'data.dir="{tiny_data}"',
                 "--set", f'output.dir="{tmp_path / "run"}"', "--set", "frontend.n_fft=1024"]) == 0
    meta = json.loads((tmp_path / "run" / "bundle" / "model.json").read_text())
    assert meta["frontend"]["n_fft"] == 1024 and meta["frontend"]["win_length"] == 1024
    assert "test" in meta["metrics"]  # evaluated on features of its own frontend
    clf = Classifier.load(tmp_path / "run" / "bundle")
    assert clf.config["frontend"]["n_fft"] == 1024
    res = clf.tag(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert res.probs.shape[1] == 12
    # resuming that run with the default frontend is another run: refused by name
    capsys.readouterr()
    assert main(["train", "--config", str(ci), "--set", f'data.dir="{tiny_data}"',
                 "--set", f'output.dir="{tmp_path / "run"}"', "--resume", "--no-export"]) == 1
    assert "frontend.n_fft 1024 -> 512" in " ".join(capsys.readouterr().err.split())


def test_evaluating_a_bundle_on_a_split_needs_no_torch(tiny_data, tmp_path):
    # `rtclassify evaluate --data` checks for scikit-learn only: the split's features and their label grid
    # came from the trainer's module, which imports torch
    import subprocess
    import sys

    from rtclassify.model.bundle import default_bundle_path

    code = f"""
import sys

class NoTorch:  # as where torch is not installed (a None in sys.modules trips scipy's array-API checks)
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'torch':
            raise ModuleNotFoundError(f"No module named {{name!r}}")

sys.meta_path.insert(0, NoTorch())
from rtclassify.train.evaluate import evaluate_split
from rtclassify.train.features import grid_label_offset
report, _ = evaluate_split({str(default_bundle_path())!r}, {str(tiny_data)!r}, 'train',
                           cache_dir={str(tmp_path / 'feat')!r}, progress=False)
assert report['split'] == 'train' and grid_label_offset(dict(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=128)) == 1
assert not [m for m in sys.modules if m.split('.')[0] == 'torch']
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
