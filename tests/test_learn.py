"""Learning a tag from examples (rtclassify.learn): the head, the ONNX extension, the bundle, live use, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from _models import write_cnn_bundle  # noqa: E402
from _rtc_bundle import tone, write_bundle  # noqa: E402
from _sounds import SR, bell  # noqa: E402

from rtclassify import Classifier  # noqa: E402
from rtclassify.errors import BundleError, ParameterError  # noqa: E402
from rtclassify.learn.bundle_ext import append_head, graph_names  # noqa: E402
from rtclassify.learn.head import fit_head, roc_auc  # noqa: E402

def scene(sr: int) -> tuple[np.ndarray, slice]:
    """Silence, a low tone, the bell, noise: returns the audio and the bell's span in seconds."""
    rng = np.random.default_rng(5)
    parts = [np.zeros(sr // 2, np.float32), tone(sr, 1.5, 220.0, 0.4), np.zeros(sr // 2, np.float32),
             bell(sr, 2.0, 99), np.zeros(sr // 2, np.float32),
             (0.1 * rng.standard_normal(int(1.5 * sr))).astype(np.float32)]
    return np.concatenate(parts), slice(2.5, 4.5)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = write_bundle(tmp_path_factory.mktemp("base"), window=16, hop_frames=3, lookahead=1)
    return Classifier.load(folder)


@pytest.fixture(scope="module")
def learned(base, tmp_path_factory):
    out = tmp_path_factory.mktemp("learned") / "bundle"
    positives = [bell(SR, 2.0, i) for i in range(4)]
    return base.learn("bell", positives, sample_rate=SR, out=out)


# ----------------------------------------------------------------------------------------------- head
def test_roc_auc_counts_ties_as_half():
    assert roc_auc([0, 1], [0.2, 0.8]) == 1.0
    assert roc_auc([0, 1], [0.8, 0.2]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = rng.normal(size=300) + y
    # brute force over all pairs
    pairs = (s[y][:, None] > s[~y][None, :]).mean() + 0.5 * (s[y][:, None] == s[~y][None, :]).mean()
    assert roc_auc(y, s) == pytest.approx(pairs)


def test_fit_head_separates_and_folds_standardization_into_the_weights():
    rng = np.random.default_rng(1)
    D = 6
    scale = np.array([1, 10, 100, 0.1, 1, 1.0])
    pos = (rng.normal(size=(80, D)) + np.array([2, 0, 0, 0, 0, 0])) * scale + 50
    neg = rng.normal(size=(300, D)) * scale + 50
    head = fit_head(pos, neg, np.repeat(np.arange(4), 20), np.repeat(np.arange(10), 30))
    p_pos, p_neg = head.predict_proba(pos), head.predict_proba(neg)
    assert roc_auc(np.r_[np.ones(80), np.zeros(300)], np.r_[p_pos, p_neg]) > 0.9
    assert 0.05 <= head.off < head.on <= 0.95
    assert head.info["cv_folds"] == 4 and head.info["cv_roc_auc"] > 0.85
    # the head runs on raw features: logits equal the standardized model's
    assert np.allclose(head.logit(pos), pos @ head.weight + head.bias)


def test_fit_head_with_one_positive_example_uses_its_halves():
    rng = np.random.default_rng(2)
    pos = rng.normal(3.0, 1.0, (40, 4))
    neg = rng.normal(0.0, 1.0, (200, 4))
    head = fit_head(pos, neg, np.zeros(40, int), np.repeat(np.arange(5), 40))
    assert head.info["cv_folds"] == 2
    assert (head.predict_proba(pos) >= head.on).mean() > 0.95
    assert (head.predict_proba(neg) < head.on).mean() > 0.95


def test_fit_head_rejects_empty_classes():
    with pytest.raises(ParameterError, match="positives"):
        fit_head(np.zeros((0, 3)), np.ones((5, 3)))
    with pytest.raises(ParameterError, match="negatives"):
        fit_head(np.ones((5, 3)), np.zeros((0, 3)))


# ----------------------------------------------------------------------------------------------- ONNX extension
def test_append_head_keeps_the_graph_and_adds_an_output(tmp_path):
    import onnx
    import onnxruntime as ort

    folder = write_bundle(tmp_path / "b", window=16)
    model = (folder / "model.onnx").read_bytes()
    names = graph_names(model)
    assert names["inputs"] == ["mel"] and names["outputs"] == ["probs", "embedding"]
    w = np.linspace(-0.02, 0.03, 32)
    new, out = append_head(model, "embedding", "probs", 3, w, 0.25, "my tag")
    assert out == "probs_my_tag"
    from rtclassify.learn.bundle_ext import _split_model

    assert _split_model(new, "new")[1].startswith(_split_model(model, "old")[1])  # the original graph, then the head
    m = onnx.load_from_string(new)
    onnx.checker.check_model(m, full_check=True)
    from rtclassify.train.export import ALLOWED_OPS

    assert {n.op_type for n in m.graph.node} <= ALLOWED_OPS
    assert [o.name for o in m.graph.output] == ["probs", "embedding", "probs_my_tag"]
    x = np.random.default_rng(0).normal(-50, 20, (7, 32, 16)).astype(np.float32)
    s0 = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    s1 = ort.InferenceSession(new, providers=["CPUExecutionProvider"])
    p0, e0 = s0.run(["probs", "embedding"], {"mel": x})
    p1, e1 = s1.run([out, "embedding"], {"mel": x})
    assert p1.shape == (7, 4)
    assert np.array_equal(p1[:, :3], p0)
    expect = 1 / (1 + np.exp(-(e0.astype(np.float64) @ w + 0.25)))
    assert np.abs(p1[:, 3] - expect).max() < 1e-5
    # a head that also reads mel statistics of the input window
    w2 = np.linspace(-0.01, 0.02, 32 + 64)
    new2, out2 = append_head(model, "embedding", "probs", 3, w2, -0.5, "t2", mel="mel", window_frames=16,
                             stats_frames=4)
    m2 = onnx.load_from_string(new2)
    onnx.checker.check_model(m2, full_check=True)
    assert {n.op_type for n in m2.graph.node} <= ALLOWED_OPS
    p2 = ort.InferenceSession(new2, providers=["CPUExecutionProvider"]).run([out2], {"mel": x})[0]
    assert np.array_equal(p2[:, :3], p0)
    feats = np.concatenate([e0, x.mean(axis=2), x[:, :, -4:].mean(axis=2)], axis=1).astype(np.float64)
    assert np.abs(p2[:, 3] - 1 / (1 + np.exp(-(feats @ w2 - 0.5)))).max() < 1e-5
    with pytest.raises(BundleError, match="no input 'x'"):
        append_head(model, "embedding", "probs", 3, w2, 0.0, "t3", mel="x", window_frames=16)
    with pytest.raises(BundleError, match="no output 'nope'"):
        append_head(model, "nope", "probs", 3, w, 0.0, "x")
    with pytest.raises(BundleError, match="not a valid ONNX"):
        append_head(b"\x0a\xff\xff", "embedding", "probs", 3, w, 0.0, "x")


# ----------------------------------------------------------------------------------------------- learning
def test_learned_tag_is_added_and_original_tags_are_unchanged(base, learned):
    assert learned.labels == base.labels + ("bell",)
    audio, span = scene(SR)
    r0, r1 = base.tag(audio, SR), learned.tag(audio, SR)
    assert np.array_equal(r0.times, r1.times)
    assert np.abs(r1.probs[:, :3] - r0.probs).max() <= 1e-6
    assert np.array_equal(r0.active, r1.active[:, :3])
    p = r1.probs[:, 3]
    inside = (r1.times > span.start + 0.3) & (r1.times < span.stop - 0.1)
    outside = (r1.times < span.start - 1.1) | (r1.times > span.stop + 1.1)
    assert p[inside].mean() > 0.8
    assert p[outside].max() < 0.5
    y = (r1.times >= span.start) & (r1.times <= span.stop)
    assert roc_auc(y, p) > 0.9


def test_learned_bundle_records_provenance(learned):
    meta = learned.bundle.meta
    assert meta["labels"][-1] == "bell"
    assert meta["outputs"]["probs"] == "probs_bell" and meta["outputs"]["embedding"] == "embedding"
    th = meta["thresholds"]["bell"]
    assert 0 < th["off"] <= th["on"] < 1
    rec = meta["learned_tags"][-1]
    assert rec["tag"] == "bell" and rec["index"] == 3 and rec["base_output"] == "probs"
    assert len(rec["head"]["weight"]) == 32 + 2 * 32  # embedding, then two mel means
    assert rec["head"]["features"] == "embedding+mel" and rec["features"] == "embedding+mel"
    assert [p["name"] for p in rec["positives"]] == [f"positives[{i}]" for i in range(4)]
    assert all(p["windows"] > 0 for p in rec["positives"])
    assert rec["generic_negatives"] is True and rec["windows"]["negative"] > 500
    assert rec["pitch_shifts"] == [-2.0, 2.0]
    assert rec["cv"]["cv_roc_auc"] > 0.9
    assert rec["onnx_sha256"] != rec["base_onnx_sha256"]


def test_save_and_load_folder_and_zip(learned, tmp_path):
    audio, _ = scene(SR)
    ref = learned.tag(audio, SR)
    for target in (tmp_path / "copy", tmp_path / "copy.zip"):
        path = learned.save(target)
        clf = Classifier.load(path)
        assert clf.labels == learned.labels
        r = clf.tag(audio, SR)
        assert np.array_equal(r.probs, ref.probs)
        if target.suffix == ".zip":
            assert sorted(zipfile.ZipFile(target).namelist()) == ["model.json", "model.onnx"]


def test_learning_without_out_lives_with_the_classifier(base):
    clf = base.learn("bell2", [(bell(44100, 1.5, 7), 44100)])
    path = clf.bundle.path
    assert (path / "model.onnx").is_file()
    del clf
    import gc

    gc.collect()
    assert not path.exists()


def test_stream_session_turns_the_new_tag_on_and_off(learned):
    sr = 48000
    audio = np.concatenate([np.zeros(sr // 2, np.float32), bell(sr, 2.5, 42), np.zeros(sr, np.float32)])
    session = learned.stream(sample_rate=sr, max_block=480, level_rate=0)
    events = []
    for i in range(0, len(audio), 480):
        events += session.process(audio[i:i + 480])
    events += session.flush()
    bell_events = [e for e in events if getattr(e, "tag", None) == "bell"]
    assert [e.kind for e in bell_events][:2] == ["on", "off"]
    on = bell_events[0]
    assert 0.5 < on.stream_time < 1.5
    assert bell_events[1].stream_time > 2.5


def test_learning_twice_chains_the_heads(learned):
    hum = [(np.tile(tone(22050, 1.0, 120.0, 0.3) + tone(22050, 1.0, 240.0, 0.2), 2), 22050) for _ in range(2)]
    clf3 = learned.learn("hum120", hum, features="embedding")
    assert len(clf3.bundle.meta["learned_tags"][-1]["head"]["weight"]) == 32
    assert clf3.labels == learned.labels + ("hum120",)
    audio, _ = scene(SR)
    r2, r3 = learned.tag(audio, SR), clf3.tag(audio, SR)
    assert np.abs(r3.probs[:, :4] - r2.probs).max() <= 1e-6
    assert [t["tag"] for t in clf3.bundle.meta["learned_tags"]] == ["bell", "hum120"]


@pytest.mark.filterwarnings("ignore::rtclassify.errors.WeakTagWarning")  # (the tiny test model)
def test_examples_of_different_rates_and_files(base, tmp_path):
    import soundfile as sf

    f = tmp_path / "bell.wav"
    sf.write(f, np.stack([bell(22050, 2.0, 3), bell(22050, 2.0, 3)], axis=1), 22050)
    clf = base.learn("bell3", [str(f), (bell(44100, 2.0, 4), 44100), (bell(SR, 2.0, 5), SR)],
                     negatives=[(tone(8000, 1.0, 1000.0), 8000)])
    rec = clf.bundle.meta["learned_tags"][-1]
    assert [p["sample_rate"] for p in rec["positives"]] == [22050, 44100, SR]
    assert rec["positives"][0]["name"] == str(f)
    assert rec["negatives"][0]["seconds"] == 1.0


# ----------------------------------------------------------------------------------------------- errors
def test_too_few_examples(base):
    with pytest.raises(ParameterError, match=r"positives: at least 1 example"):
        base.learn("x", [], sample_rate=SR)
    with pytest.raises(ParameterError, match=r"positives\[0\]: 0.100 s is too short"):
        base.learn("x", [np.ones(1600, np.float32) * 0.1], sample_rate=SR)


def test_silent_examples(base):
    with pytest.raises(ParameterError, match=r"positives\[0\]: silent \(digital silence\)"):
        base.learn("x", [np.zeros(SR, np.float32), np.zeros(SR, np.float32)], sample_rate=SR)
    with pytest.raises(ParameterError, match=r"positives\[1\]: silent \(its loudest frame is -100.0 dBFS\)"):
        base.learn("x", [bell(SR, 1.0, 1), np.full(SR, 1e-5, np.float32)], sample_rate=SR)


def test_sample_rate_is_required_and_must_agree(base):
    with pytest.raises(ParameterError, match=r"positives\[0\]: an array example needs its rate: pass sample_rate="):
        base.learn("x", [bell(SR, 1.0, 1)])
    with pytest.raises(ParameterError, match=r"negatives\[0\]: .*sample_rate"):
        base.learn("x", [(bell(SR, 1.0, 1), SR)], negatives=[np.zeros(SR, np.float32)])
    with pytest.raises(ParameterError, match=r"positives\[1\]: its sample rate 44100 Hz differs from sample_rate=16000"):
        base.learn("x", [bell(SR, 1.0, 1), (bell(44100, 1.0, 1), 44100)], sample_rate=SR)
    with pytest.raises(ParameterError, match="sample_rate must be a whole number of Hz from 1000"):
        base.learn("x", [bell(SR, 1.0, 1)], sample_rate=0)
    with pytest.raises(ParameterError, match=r"positives\[0\] sample rate must be a whole number of Hz"):
        base.learn("x", [(bell(SR, 1.0, 1), 44100.5)])


def test_bad_names_shapes_and_options(base, tmp_path):
    b = bell(SR, 1.0, 1)
    with pytest.raises(ParameterError, match="already a tag"):
        base.learn("low", [b], sample_rate=SR)
    with pytest.raises(ParameterError, match="differs from this bundle's tag 'low' only by case"):
        base.learn("Low", [b], sample_rate=SR)
    with pytest.raises(ParameterError, match="name must be"):
        base.learn("my tag", [b], sample_rate=SR)
    with pytest.raises(ParameterError, match="wrap a single example in a list"):
        base.learn("x", b, sample_rate=SR)
    with pytest.raises(ParameterError, match=r"positives\[0\]: holds NaN"):
        base.learn("x", [np.full(SR, np.nan, np.float32)], sample_rate=SR)
    with pytest.raises(ParameterError, match=r"positives\[0\]: audio must have shape"):
        base.learn("x", [np.zeros((3, 3, SR), np.float32)], sample_rate=SR)
    with pytest.raises(ParameterError, match="generic_negatives=False"):
        base.learn("x", [b], sample_rate=SR, generic_negatives=False)
    with pytest.raises(ParameterError, match=r"negatives: every window .*\(silent\).*silence is not 'x'"):
        base.learn("x", [b], negatives=[np.zeros(2 * SR, np.float32)], sample_rate=SR, generic_negatives=False)
    with pytest.raises(ParameterError, match="hop_frames"):
        base.learn("x", [b], sample_rate=SR, hop_frames=0)
    with pytest.raises(ParameterError, match="features must be one of"):
        base.learn("x", [b], sample_rate=SR, features="mel")
    for bad in ((0,), (13,), (float("nan"),), ("up",), 2):
        with pytest.raises(ParameterError, match="pitch_shifts"):
            base.learn("x", [b], sample_rate=SR, pitch_shifts=bad)
    from rtclassify.audio.files import AudioFileError

    with pytest.raises(AudioFileError, match="nope.wav: no such file"):
        base.learn("x", [str(tmp_path / "nope.wav")])


def test_bundle_without_embedding_is_refused(tmp_path):
    from _rtc_bundle import model_json

    meta = model_json(window=16)
    del meta["outputs"]["embedding"]
    del meta["outputs"]["embedding_dim"]
    clf = Classifier.load(write_bundle(tmp_path / "b", meta=meta))
    with pytest.raises(BundleError, match="embedding"):
        clf.learn("x", [bell(SR, 1.0, 1)], sample_rate=SR)


# ----------------------------------------------------------------------------------------------- commands
def rtc(*args, timeout=180):
    env = dict(os.environ, JACK_NO_START_SERVER="1", COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "rtclassify", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tempfile.gettempdir())


@pytest.fixture(scope="module")
def example_files(tmp_path_factory):
    import soundfile as sf

    d = tmp_path_factory.mktemp("examples")
    files = []
    for i in range(3):
        f = d / f"bell{i}.wav"
        sf.write(f, bell(44100, 2.0, 10 + i), 44100)
        files.append(str(f))
    neg = d / "low.flac"
    sf.write(neg, tone(SR, 2.0, 200.0, 0.3), SR)
    scene_f = d / "scene.wav"
    sf.write(scene_f, scene(SR)[0], SR)
    return files, str(neg), str(scene_f)


def test_learn_command_writes_a_bundle_that_listen_and_demo_load(base, example_files, tmp_path):
    files, neg, scene_f = example_files
    out = tmp_path / "learned"
    r = rtc("learn", "--tag", "bell", *files, "--negatives", neg, "--bundle", str(base.bundle.path), "--out",
            str(out), "--json", "--pitch-shifts=-1,1")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["tag"] == "bell" and len(rec["positives"]) == 3 and rec["negatives"][0]["name"] == neg
    assert rec["pitch_shifts"] == [-1.0, 1.0]
    assert "learned tag 'bell' from 3 example(s)" in r.stderr
    clf = Classifier.load(out)
    assert clf.labels[-1] == "bell"
    # the live engine loads it through the normal bundle loader (--bundle) and emits the new tag
    log = tmp_path / "events.jsonl"
    r = rtc("demo", "--bundle", str(out), "--clip", scene_f, "--no-display", "--speed", "8", "--log", str(log))
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = [(e.get("event"), e.get("tag")) for e in events]
    assert ("on", "bell") in kinds and ("off", "bell") in kinds
    on = next(e for e in events if e.get("event") == "on" and e.get("tag") == "bell")
    assert 2.3 < on["stream_time"] < 3.5
    # listen loads it (and a mapping that names the new tag) before it looks for the device
    mapping = tmp_path / "map.toml"
    mapping.write_text("[midi.tags.bell]\nnote = 72\ncc = 40\n")
    r = rtc("listen", "--bundle", str(out), "--map", str(mapping), "--device", "99", "--no-display", "--duration", "1")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("rtclassify listen: error: no input device with index 99")
    from rtclassify.sinks.mapping import load_mapping

    m = load_mapping(mapping, clf.labels)
    assert m.midi.tags["bell"].note == 72 and m.midi.tags["bell"].cc == 40


def test_learn_command_errors_are_one_line(base, example_files, tmp_path):
    files, neg, _ = example_files
    r = rtc("learn", "--tag", "bell", str(tmp_path / "missing.wav"), "--bundle", str(base.bundle.path), "--out",
            str(tmp_path / "o"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].endswith("missing.wav: no such file")
    r = rtc("learn", "--tag", "low", *files, "--bundle", str(base.bundle.path), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "already a tag" in r.stderr
    r = rtc("learn", "--tag", "x", *files, "--no-generic", "--bundle", str(base.bundle.path), "--out",
            str(tmp_path / "o"))
    assert r.returncode == 1 and "--no-generic needs --negatives" in r.stderr
    r = rtc("learn", *files, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--tag" in r.stderr
    r = rtc("learn", "--tag", "x", *files, "--pitch-shifts", "13", "--bundle", str(base.bundle.path), "--out",
            str(tmp_path / "o"))
    assert r.returncode == 1 and "pitch_shifts" in r.stderr.strip().splitlines()[-1]


def test_learning_needs_no_torch(base, tmp_path):
    code = f"""
import sys
sys.modules['torch'] = None
import numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
from _sounds import bell
from rtclassify import Classifier
clf = Classifier.load({str(base.bundle.path)!r})
new = clf.learn('bell', [bell(16000, 1.5, 1)], sample_rate=16000, out={str(tmp_path / 'nt')!r})
assert new.labels[-1] == 'bell'
assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None and m.split('.')[0] == 'torch']
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# ----------------------------------------------------------------------------------------------- training side
@pytest.fixture(scope="module")
def cnn_bundle(tmp_path_factory):
    return write_cnn_bundle(tmp_path_factory.mktemp("cnn") / "bundle")


def test_state_from_onnx_reproduces_the_exported_network(cnn_bundle):
    torch = pytest.importorskip("torch")
    from rtclassify.learn.finetune import state_from_onnx
    from rtclassify.train.export import build_model

    clf = Classifier.load(cnn_bundle)
    x = np.random.default_rng(0).normal(-50, 20, (48, 128, 64)).clip(-100, 20).astype(np.float32)
    for calib in (None, x[:24]):
        net = build_model(state_from_onnx(clf.bundle, calib))
        with torch.no_grad():
            p, e = net(torch.from_numpy(x))
        assert np.abs(p.numpy() - clf.backend.run(x)).max() < 1e-4
        assert np.abs(e.numpy() - clf.backend.embed(x)).max() < 1e-3
    # calibrated: training-mode batch norm on the calibration batch gives the same function
    net.train()
    net.dropout.p = 0.0
    with torch.no_grad():
        p_train = net(torch.from_numpy(x[:24]))[0].numpy()
    assert np.abs(p_train - clf.backend.run(x[:24])).max() < 1e-4


def test_read_labelled_data_folders_and_csv(tmp_path):
    import soundfile as sf

    from rtclassify.learn.finetune import read_labelled_data
    from rtclassify.train.features import DEFAULT_FRONTEND

    for tag in ("bell", "_none"):
        (tmp_path / "tree" / tag).mkdir(parents=True)
    x = np.concatenate([np.zeros(SR // 2, np.float32), bell(SR, 1.0, 1), np.zeros(SR // 2, np.float32)])
    sf.write(tmp_path / "tree" / "bell" / "a.wav", x, SR)
    sf.write(tmp_path / "tree" / "_none" / "n.wav", tone(44100, 1.0, 300.0), 44100)
    items, tags = read_labelled_data(tmp_path / "tree", DEFAULT_FRONTEND)
    assert tags == ["bell"]
    lab = {name.split("/")[-1]: lab for name, _, lab in items}
    assert lab["n.wav"].sum() == 0 and lab["n.wav"].shape[0] == 61  # resampled to 16 kHz: 1 s -> 61 frames
    on = np.flatnonzero(lab["a.wav"][:, 0])
    t = (on * 256 + 256) / SR
    assert 0.4 < t.min() < 0.6 and 1.4 < t.max() < 1.6
    csv = tmp_path / "labels.csv"
    csv.write_text("file,start,end,tag\ntree/bell/a.wav,0.5,1.0,bell\ntree/bell/a.wav,0.8,1.5,ding\n")
    items, tags = read_labelled_data(csv, DEFAULT_FRONTEND)
    assert tags == ["bell", "ding"]
    lab = items[0][2]
    centre = (np.arange(len(lab)) * 256 + 256) / SR
    assert np.array_equal(lab[:, 0].astype(bool), (centre >= 0.5) & (centre < 1.0))
    assert np.array_equal(lab[:, 1].astype(bool), (centre >= 0.8) & (centre < 1.5))
    csv.write_text("file,start,end,tag\ntree/bell/a.wav,0.5,x,bell\n")
    with pytest.raises(ParameterError, match=r"labels.csv:2: start and end must be numbers"):
        read_labelled_data(csv, DEFAULT_FRONTEND)
    csv.write_text("file,start,end,tag\ntree/bell/a.wav,1.0,0.5,bell\n")
    with pytest.raises(ParameterError, match=r"labels.csv:2: need 0 <= start < end"):
        read_labelled_data(csv, DEFAULT_FRONTEND)
    with pytest.raises(ParameterError, match="no tag folder"):
        read_labelled_data(tmp_path / "tree" / "_none", DEFAULT_FRONTEND)


@pytest.mark.slow
def test_train_data_command_finetunes_a_bundle(cnn_bundle, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("scipy")
    import soundfile as sf

    rng = np.random.default_rng(0)
    for tag, make in (("bell", lambda i: bell(SR, 2.0, i)),
                      ("hiss", lambda i: (0.2 * rng.standard_normal(2 * SR)).astype(np.float32)),
                      ("_none", lambda i: tone(SR, 2.0, 150.0 * (i + 1), 0.3))):
        (tmp_path / "data" / tag).mkdir(parents=True)
        for i in range(3):
            sf.write(tmp_path / "data" / tag / f"{i}.wav", make(i), SR)
    out = tmp_path / "tuned"
    r = rtc("train", "--data", str(tmp_path / "data"), "--bundle", str(cnn_bundle), "--out", str(out),
            "--epochs", "1", "--windows-per-epoch", "256", timeout=300)
    assert r.returncode == 0, r.stderr
    clf = Classifier.load(out)
    assert clf.labels == ("bell", "hiss")
    prov = clf.bundle.meta["provenance"]
    assert prov["files"] == 9 and prov["base_bundle"] == "tiny-cnn"
    assert len(prov["val_files"]) == 3  # one file of each folder
    # a bundle already at --out is replaced only with --force, as learn and export do, and the
    # package's own bundle never; both are refused before any training
    before = (out / "model.onnx").read_bytes()
    args = ["train", "--data", str(tmp_path / "data"), "--bundle", str(cnn_bundle), "--epochs", "1",
            "--windows-per-epoch", "256", "--seed", "1"]
    r = rtc(*args, "--out", str(out), timeout=300)
    assert r.returncode == 1 and "--force" in r.stderr and "fine-tuning from" not in r.stdout
    assert (out / "model.onnx").read_bytes() == before
    import rtclassify

    shipped = Path(rtclassify.__file__).parent / "data" / "default_bundle"
    r = rtc(*args, "--out", str(shipped), "--force", timeout=300)
    assert r.returncode == 1 and "own default bundle" in r.stderr and "fine-tuning from" not in r.stdout
    r = rtc(*args, "--out", str(out), "--force", timeout=300)
    assert r.returncode == 0, r.stderr
    assert Classifier.load(out).labels == ("bell", "hiss") and (out / "model.onnx").read_bytes() != before
    r = rtc("train", "--config", "x.toml", "--init", "x.pt")
    assert r.returncode == 1 and "--init: for fine-tuning with --data" in r.stderr
    r = rtc("train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "tuned2"))
    assert r.returncode == 1 and "neither a folder of tag folders nor a CSV file" in r.stderr
    r = rtc("train")
    assert r.returncode == 1 and "--config FILE" in r.stderr and "--data FOLDER" in r.stderr


def test_nt_xent_prefers_matching_views():
    torch = pytest.importorskip("torch")
    from rtclassify.learn.pretrain import nt_xent

    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=g)
    same = nt_xent(z, z + 0.01 * torch.randn(16, 8, generator=g), 0.2)
    other = nt_xent(z, torch.randn(16, 8, generator=g), 0.2)
    assert float(same) < 0.6 and float(other) > 2.0
    assert abs(float(nt_xent(torch.zeros(4, 3) + 1, torch.zeros(4, 3) + 1, 1.0)) - np.log(7)) < 1e-5


def test_augmenter_views_are_valid_and_seeded():
    pytest.importorskip("scipy")
    from rtclassify.learn.pretrain import Augmenter

    aug = Augmenter(SR, 16640)
    chunk = bell(SR, 1.5, 3)
    views = [aug.view(chunk, np.random.default_rng(i)) for i in range(20)]
    assert all(v.shape == (16640,) and v.dtype == np.float32 and np.all(np.isfinite(v)) for v in views)
    assert all(np.abs(v).max() <= 1.0 for v in views)
    assert np.array_equal(aug.view(chunk, np.random.default_rng(5)), views[5])
    assert len({v.tobytes() for v in views}) == 20


@pytest.mark.slow
def test_pretrain_command_writes_an_encoder(cnn_bundle, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("scipy")
    import soundfile as sf

    from rtclassify.learn.pretrain import load_encoder, ssl_encoder

    (tmp_path / "audio" / "sub").mkdir(parents=True)
    for i in range(3):
        sf.write(tmp_path / "audio" / ("sub" if i else "") / f"{i}.flac", bell(22050, 3.0, i), 22050)
    r = rtc("pretrain", "--data", str(tmp_path / "audio"), "--out", str(tmp_path / "ssl"), "--bundle",
            str(cnn_bundle), "--steps", "2", "--batch-size", "4", timeout=300)
    assert r.returncode == 0, r.stderr
    model, ck = load_encoder(tmp_path / "ssl" / "encoder.pt")
    assert ck["steps"] == 2 and ck["data"]["files"] == 3
    assert ck["model_config"]["embedding_dim"] == 16
    enc = ssl_encoder(tmp_path / "ssl" / "encoder.pt")
    emb = enc(np.random.default_rng(0).normal(-50, 20, (5, 128, 64)).astype(np.float32))
    assert emb.shape == (5, 16) and np.all(np.isfinite(emb))
    r = rtc("pretrain", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), "--bundle", str(cnn_bundle))
    assert r.returncode == 1 and "is not a folder" in r.stderr


def test_mixed_copies_put_the_example_over_generic_material():
    from rtclassify.learn.examples import Example
    from rtclassify.learn.learner import mixed_copies
    from rtclassify.learn.negatives import generic_negative_examples

    backgrounds = [e for e in generic_negative_examples() if e.name.split(":")[1] == "music"]
    assert len(backgrounds) >= 8
    ex = [Example("a", bell(44100, 1.5, 1), 44100), Example("b", bell(SR, 4.0, 2), SR)]
    mixes, clean = mixed_copies(ex, backgrounds, SR, seed=3)
    assert [m.name for m in mixes] == ["a+mix", "b+mix"]
    for m, (c, rate), e in zip(mixes, clean, ex):
        assert m.sample_rate == rate == SR and len(m.audio) == len(c) == round(e.seconds * SR)
        rest = m.audio - c
        assert np.abs(rest).max() > 0.01  # a background is there
        # the example is 0-10 dB above the background
        ratio_db = 20 * np.log10(np.sqrt(np.mean(c ** 2)) / np.sqrt(np.mean(rest ** 2)))
        assert -3 < ratio_db < 16


def test_query_audio_conditions():
    pytest.importorskip("scipy")
    from rtclassify.learn.fewshot import query_audio

    bg = (0.1 * np.random.default_rng(0).standard_normal(4 * SR)).astype(np.float32)
    snd = np.zeros(4 * SR, np.float32)
    snd[SR:2 * SR] = tone(SR, 1.0, 1000.0, 0.3)
    mix, lab = query_audio(bg, snd, "mix")
    assert np.array_equal(mix, bg + snd)
    t = (np.flatnonzero(lab) * 256 + 256) / SR
    assert 0.9 < t.min() < 1.1 and 1.9 < t.max() < 2.1
    alt, lab2 = query_audio(bg, snd, "alternate")
    assert np.abs(alt[int(0.8 * SR):int(2.2 * SR)] - snd[int(0.8 * SR):int(2.2 * SR)]).max() < 1e-6
    assert np.array_equal(alt[:int(0.7 * SR)], bg[:int(0.7 * SR)])
    with pytest.raises(ParameterError, match="condition"):
        query_audio(bg, snd, "both")


def test_fewshot_backgrounds_never_play_the_tasks_own_sound(monkeypatch):
    """A query background is negative throughout: a test-split clip that plays the task's npm instrument or
    GM program is passed over for the next draw (a trombone clip once sat under the trombone task's query)."""
    from rtclassify.learn import fewshot
    from rtclassify.train.data import build

    by_name = {t.name: t for t in fewshot.TASKS}
    npm = {"type": "tonejs-samples", "instrument": "trombone", "program": 57}
    gm = {"type": "soundfont", "bank": 0, "program": 29}
    assert fewshot._holds_sound(by_name["trombone"], [gm, npm])
    assert not fewshot._holds_sound(by_name["cello"], [gm, npm])
    assert fewshot._holds_sound(by_name["distortion_guitar"], [gm])
    # a soundfont playing a samples task's instrument (GM 57, trombone) is that instrument too
    assert fewshot._holds_sound(by_name["trombone"], [{**gm, "program": 57}])
    assert not fewshot._holds_sound(by_name["trombone"], [{**gm, "program": 56}])  # a trumpet: a confuser
    # an npm sample whose GM number matches is not the soundfont's program; drum banks are not programs
    assert not fewshot._holds_sound(by_name["distortion_guitar"], [{**npm, "program": 29}, {**gm, "bank": 128}])
    assert not fewshot._holds_sound(by_name["gunshot"], [{"type": "nonmusic", "kind": "rain"}])

    seen = []

    def render(job, ctx):
        seen.append(job.index)
        draw = len(seen) - 1
        sources = [npm] if draw < 2 else [{"type": "tonejs-samples", "instrument": "cello"}]
        return np.full(4, draw, np.float32), None, {"sources": sources}

    monkeypatch.setattr(build, "render_clip", render)
    bg = fewshot._background(by_name["trombone"], None, 11_011, 3, "same")
    assert bg[0] == 2 and len(set(seen)) == 3   # the third draw, each a clip of its own
    seen.clear()
    assert fewshot._background(by_name["cello"], None, 11_011, 3, "same")[0] == 0
    monkeypatch.setattr(build, "render_clip", lambda job, ctx: (np.zeros(4, np.float32), None, {"sources": [npm]}))
    with pytest.raises(RuntimeError, match="trombone.*query 3"):
        fewshot._background(by_name["trombone"], None, 11_011, 3, "same")


def test_fewshot_one_support_example_uses_the_folds_of_learn(tmp_path, monkeypatch):
    """At k = 1 the few-shot protocol cross-validates the example by its halves in time, as learn does."""
    pytest.importorskip("scipy")
    from rtclassify.learn import fewshot, head
    from rtclassify.learn.learner import one_example_folds

    sr = fewshot.SR
    support = [tone(sr, 2.0, f, 0.3) for f in (440.0, 523.0, 659.0)]
    bg = (0.05 * np.random.default_rng(1).standard_normal((2, 3 * sr))).astype(np.float32)
    snd = np.zeros((2, 3 * sr), np.float32)
    snd[:, sr:2 * sr] = tone(sr, 1.0, 587.0, 0.3)
    np.savez(tmp_path / "bell.npz", support=np.concatenate(support),
             support_offsets=np.cumsum([0] + [len(x) for x in support]), background_same=bg, sound_same=snd)
    folds = []
    real_fit = head.fit_head

    def spy(pos, neg, groups, neg_groups, **kw):
        folds.append(np.unique(groups))
        return real_fit(pos, neg, groups, neg_groups, **kw)

    monkeypatch.setattr(head, "fit_head", spy)
    out = fewshot.evaluate_fewshot(Classifier.load(), tmp_path, [fewshot.melstats_encoder()], ks=(1, 2), repeats=1,
                                   conditions=("alternate",), pitch_shifts=(), mix_positives=False, progress=False)
    assert [r["k"] for r in out["results"]] == [1, 2]
    assert list(folds[0]) == [-1, 0, 1]      # k = 1: the example's two halves, a window apart
    # the AUC over sounding frames leaves out the muted margins around the sound (digital silence)
    assert all(np.isfinite(r["auc_sounding"]) for r in out["results"])
    assert "sounding frames only" in fewshot.format_tables(out)
    x = np.r_[np.zeros(fewshot.SR), tone(fewshot.SR, 1.0, 440.0, 0.001)].astype(np.float32)
    frames = fewshot._sounding_frames(x)
    assert not frames[:20].any() and frames[-20:].all()
    assert len(folds[1]) == 2                # k = 2: the two examples drawn
    g = np.zeros(10, np.int64)
    place = np.linspace(0, 1, 10)
    assert list(one_example_folds(g, place)) == [0] * 5 + [1] * 5
    assert one_example_folds(np.array([3, 3, 5]), place[:3]).tolist() == [3, 3, 5]


def test_one_example_halves_leave_out_the_rows_whose_windows_reach_across():
    # a window of 0.15 of the example: the rows within 0.075 of the boundary are left out of the
    # cross-validation (-1), so no scored row's window holds audio of the other half
    from rtclassify.learn.learner import one_example_folds, window_share

    g = np.zeros(11, np.int64)
    place = np.linspace(0, 1, 11)
    assert one_example_folds(g, place, gap=0.15).tolist() == [0] * 5 + [-1] + [1] * 5
    assert one_example_folds(g, place, gap=0.45).tolist() == [0, 0, 0, -1, -1, -1, -1, -1, 1, 1, 1]
    # an example too short for a gap keeps its whole halves
    assert one_example_folds(g, place, gap=2.0).tolist() == [0] * 5 + [1] * 6
    bundle = Classifier.load().bundle
    span = ((bundle.window_frames - 1) * bundle.hop_length + bundle.frontend["n_fft"]) / bundle.sample_rate
    assert window_share(bundle, 4 * span) == pytest.approx(0.25)


def test_rows_out_of_the_cross_validation_are_not_scored_there_but_are_fitted():
    from rtclassify.learn.head import fit_head

    rng = np.random.default_rng(0)
    pos = rng.normal(2.0, 0.3, (40, 3))
    neg = rng.normal(-2.0, 0.3, (60, 3))
    odd = rng.normal(-2.0, 0.3, (8, 3))   # positives that look like negatives
    groups = np.r_[np.arange(40) % 4, np.full(8, -1)]
    h = fit_head(np.r_[pos, odd], neg, groups, np.arange(60) % 4)
    assert h.info["cv_roc_auc"] == pytest.approx(1.0) and h.info["n_positive"] == 48
    scored = fit_head(np.r_[pos, odd], neg, np.r_[np.arange(40) % 4, np.arange(8) % 4], np.arange(60) % 4)
    assert scored.info["cv_roc_auc"] < 0.95


def test_fewshot_seeds_do_not_depend_on_the_other_tasks(tmp_path, monkeypatch):
    """A task's data are rendered from the same seed whether it is built alone or with others."""
    pytest.importorskip("scipy")
    from rtclassify.learn import fewshot

    from _fewshot import fake_renderers

    calls = fake_renderers(monkeypatch)
    by_name = {t.name: t for t in fewshot.TASKS}
    fewshot.build_fewshot_data(tmp_path / "all", progress=False)
    fewshot.build_fewshot_data(tmp_path / "two", tasks=[by_name["trombone"], by_name["clarinet"]], progress=False)
    seeds: dict = {}
    for _, name, tseed, _ in calls:
        seeds.setdefault(name, set()).add(tseed)
    assert len(seeds) == len(fewshot.TASKS)
    assert all(len(s) == 1 for s in seeds.values())  # each task: one seed, alone or in the full set
    assert len({next(iter(s)) for s in seeds.values()}) == len(fewshot.TASKS)
    assert fewshot.task_index("clarinet") == [t.name for t in fewshot.TASKS].index("clarinet")
    assert fewshot.task_index("my_pedal") == fewshot.task_index("my_pedal") >= len(fewshot.TASKS)


def test_shifted_copies_move_pitch_and_length():
    from rtclassify.learn.examples import Example
    from rtclassify.learn.learner import parse_pitch_shifts, shifted_copies

    x = tone(SR, 1.0, 440.0, 0.3)
    out = shifted_copies([Example("a", x, SR)], (-2.0, 2.0))
    assert [e.name for e in out] == ["a@-2st", "a@+2st"]
    for e, st in zip(out, (-2.0, 2.0)):
        ratio = 2 ** (st / 12)
        assert e.sample_rate == SR and e.audio.dtype == np.float32
        assert abs(len(e.audio) - SR / ratio) <= 2
        spec = np.abs(np.fft.rfft(e.audio * np.hanning(len(e.audio))))
        peak = np.argmax(spec) * SR / len(e.audio)
        assert abs(1200 * np.log2(peak / (440.0 * ratio))) < 10  # cents
    assert parse_pitch_shifts("-2,2") == (-2.0, 2.0) and parse_pitch_shifts("none") == ()
    assert parse_pitch_shifts(None) is None
    with pytest.raises(ParameterError, match="semitones"):
        parse_pitch_shifts("up")
    from rtclassify.learn.fewshot import evaluate_fewshot

    with pytest.raises(ParameterError, match="pitch_shifts"):  # the evaluation checks them as learn does
        evaluate_fewshot(None, "unused", [], pitch_shifts=(13,))


def test_shifted_copies_join_their_examples_group(base):
    from rtclassify.learn.examples import Example
    from rtclassify.learn.learner import positive_rows

    ex = [Example(f"positives[{i}]", bell(SR, 1.5, i), SR) for i in range(3)]
    embed = lambda w: w.mean(axis=2)  # noqa: E731  (any function of the windows)
    plain = positive_rows(embed, base.bundle, ex, mix=False)
    shifted = positive_rows(embed, base.bundle, ex, mix=False, pitch_shifts=(-2.0, 2.0))
    assert set(np.unique(shifted.group)) == {0, 1, 2}
    for g in range(3):
        n0, n1 = int(np.sum(plain.group == g)), int(np.sum(shifted.group == g))
        assert 2.5 * n0 < n1 < 3.5 * n0  # the example and two copies, about as long
    # the original rows come first and are the same
    assert np.array_equal(shifted.X[: len(plain)], plain.X)
    assert shifted.names == plain.names
