"""Learned heads on the CNN's ``features`` output (what its embedding layer reads): export, backend, head, graph."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("torch")

from _rtc_bundle import rewrite_meta  # noqa: E402
from test_learn import SR, bell, scene, write_cnn_bundle  # noqa: E402

from rtclassify import Classifier  # noqa: E402
from rtclassify.errors import BundleError, ParameterError  # noqa: E402
from rtclassify.learn.head import fit_head, roc_auc  # noqa: E402


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return write_cnn_bundle(tmp_path_factory.mktemp("cnn-features") / "bundle")


@pytest.fixture(scope="module")
def learned(cnn, tmp_path_factory):
    base = Classifier.load(cnn)
    out = tmp_path_factory.mktemp("learned-features") / "bundle"
    return base, base.learn("bell", [bell(SR, 2.0, i) for i in range(4)], sample_rate=SR, out=out)


def test_the_default_head_reads_embedding_features_and_mel_statistics(learned):
    base, new = learned
    b = base.bundle
    assert (b.embedding_dim, b.features_name, b.features_dim) == (16, "features", 8)
    rec = new.bundle.meta["learned_tags"][-1]
    assert rec["features"] == "embedding+features+mel" and rec["features_weight"] == 0.25
    assert rec["head"]["inputs"][:2] == ["embedding", "features"]
    assert len(rec["head"]["weight"]) == 16 + 8 + 2 * b.n_mels
    # the learned bundle keeps the base outputs, so a second tag can read them too
    assert new.bundle.features_name == "features" and new.bundle.embedding_name == "embedding"


def test_original_tags_stay_bit_identical_and_the_new_tag_follows_the_sound(learned):
    base, new = learned
    audio, span = scene(SR)
    r0, r1 = base.tag(audio, SR), new.tag(audio, SR)
    n = len(base.labels)
    assert np.array_equal(r1.probs[:, :n], r0.probs)
    y = (r1.times >= span.start) & (r1.times <= span.stop)
    assert roc_auc(y, r1.probs[:, n]) > 0.9


def test_the_graph_computes_the_head_the_learner_fitted(learned):
    """The appended nodes give sigmoid([embedding, features, mel means] @ w + b) on the windows learn saw."""
    from rtclassify.learn.embeddings import embedding_backend, head_features, stream_windows

    base, new = learned
    rec = new.bundle.meta["learned_tags"][-1]
    w, bias = np.asarray(rec["head"]["weight"], np.float64), rec["head"]["bias"]
    audio, _ = scene(SR)
    sw = stream_windows(base.bundle, audio, SR)
    X = head_features(embedding_backend(base, wide=True), "embedding+features+mel")(sw.windows)
    want = 1.0 / (1.0 + np.exp(-(X.astype(np.float64) @ w + bias)))
    got = new.backend.run(sw.windows)[:, -1]
    assert np.abs(got - want).max() < 1e-5


def test_explicit_heads_and_a_bundle_without_features(learned, tmp_path):
    base, _ = learned
    pos = [bell(SR, 2.0, i) for i in range(2)]
    mel_only = base.learn("bell2", pos, sample_rate=SR, features="embedding+mel")
    rec = mel_only.bundle.meta["learned_tags"][-1]
    assert rec["features"] == "embedding+mel" and "features_weight" not in rec
    assert len(rec["head"]["weight"]) == 16 + 2 * base.bundle.n_mels
    # a bundle exported before the features output: auto falls back, an explicit request is refused
    import shutil

    old = tmp_path / "old"
    shutil.copytree(base.bundle.path, old)

    def drop(meta):
        del meta["outputs"]["features"], meta["outputs"]["features_dim"]

    rewrite_meta(old, drop)
    old_clf = Classifier.load(old)
    assert old_clf.bundle.features_name is None
    auto = old_clf.learn("bell3", pos, sample_rate=SR)
    assert auto.bundle.meta["learned_tags"][-1]["features"] == "embedding+mel"
    with pytest.raises(BundleError, match="no 'outputs.features'"):
        old_clf.learn("bell4", pos, sample_rate=SR, features="embedding+features+mel")
    with pytest.raises(ParameterError, match="features must be auto or one of"):
        base.learn("bell5", pos, sample_rate=SR, features="wide")


def test_a_wrong_features_size_in_model_json_is_named(cnn, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(cnn, bad)
    rewrite_meta(bad, lambda m: m["outputs"].update(features_dim=9))
    with pytest.raises(BundleError, match="'features' has size 8 but model.json gives features_dim = 9"):
        Classifier.load(bad, backend="onnx")
    rewrite_meta(bad, lambda m: m["outputs"].update(features="nope", features_dim=8))
    with pytest.raises(BundleError, match="no output named 'nope' for 'features'"):
        Classifier.load(bad, backend="onnx")


def test_column_scale_weakens_only_its_columns():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.random(2 * n) < 0.5
    X = rng.standard_normal((2 * n, 4))
    X[:, 0] += 1.5 * y  # two equally informative columns
    X[:, 1] += 1.5 * y
    pos, neg = X[y], X[~y]
    plain = fit_head(pos, neg, l2=1.0)
    scaled = fit_head(pos, neg, l2=1.0, col_scale=np.array([1.0, 0.1, 1.0, 1.0]))
    assert abs(plain.weight[1]) > 0.5 * abs(plain.weight[0])
    assert abs(scaled.weight[1]) < 0.1 * abs(scaled.weight[0])
    # the weights stay on raw inputs: the same logits as the scaled, standardized fit
    assert np.allclose(scaled.logit(X), X @ scaled.weight + scaled.bias)
    for bad in (np.ones(3), np.array([1.0, 0.0, 1.0, 1.0]), np.array([1.0, np.nan, 1.0, 1.0])):
        with pytest.raises(ParameterError, match="col_scale"):
            fit_head(pos, neg, col_scale=bad)


def test_fewshot_combined_parts_carry_their_weights(monkeypatch, tmp_path):
    """A weighted part of a combined encoder reaches fit_head as its columns' scale; a part-only encoder
    gets no head of its own."""
    pytest.importorskip("scipy")
    from _rtc_bundle import tone

    from rtclassify.learn import fewshot, head

    assert fewshot.combined("c", "a", ("b", 0.5)) == ("c", (("a", 1.0), ("b", 0.5)))
    sr = fewshot.SR
    support = [tone(sr, 2.0, f, 0.3) for f in (440.0, 523.0)]
    bg = (0.05 * np.random.default_rng(1).standard_normal((1, 3 * sr))).astype(np.float32)
    snd = np.zeros((1, 3 * sr), np.float32)
    snd[:, sr:2 * sr] = tone(sr, 1.0, 587.0, 0.3)
    np.savez(tmp_path / "t.npz", support=np.concatenate(support),
             support_offsets=np.cumsum([0] + [len(x) for x in support]), background_same=bg, sound_same=snd)
    scales = {}
    real_fit = head.fit_head

    def spy(pos, neg, *a, col_scale=None, **kw):
        scales[pos.shape[1]] = col_scale
        return real_fit(pos, neg, *a, col_scale=col_scale, **kw)

    monkeypatch.setattr(head, "fit_head", spy)
    mel = fewshot.melstats_encoder("m")
    part = fewshot.Encoder("p", lambda w: w[:, :4, -1], evaluate=False)
    out = fewshot.evaluate_fewshot(Classifier.load(), tmp_path, [mel, part], (fewshot.combined("m+p", "m", ("p", 0.25)),),
                                   ks=(2,), repeats=1, conditions=("alternate",), pitch_shifts=(),
                                   mix_positives=False, progress=False)
    assert out["settings"]["encoders"] == ["m", "m+p"]
    n_mel = 2 * Classifier.load().bundle.n_mels
    assert scales[n_mel] is None
    assert np.array_equal(scales[n_mel + 4], np.r_[np.ones(n_mel), np.full(4, 0.25)])
    json.dumps(out)  # the report stays JSON
