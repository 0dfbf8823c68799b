"""Long examples: learning embeds an example longer than DENSE_SECONDS at a wider hop, so time and memory stay
bounded (a 5-minute example took 8x the time and 4x the memory of a 30-s one before)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from _rtc_bundle import write_bundle  # noqa: E402
from _sounds import bell  # noqa: E402

from rtclassify import Classifier  # noqa: E402
from rtclassify.learn import embeddings, learner  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return Classifier.load(write_bundle(tmp_path_factory.mktemp("base"), window=16, hop_frames=3, lookahead=1))


def test_example_hop_frames():
    assert learner.example_hop_frames(5.0, 2) == 2
    assert learner.example_hop_frames(learner.DENSE_SECONDS, 2) == 2
    assert learner.example_hop_frames(learner.DENSE_SECONDS + 0.01, 2) == 4
    assert learner.example_hop_frames(10 * learner.DENSE_SECONDS, 3) == 30


def test_long_examples_are_strided(base, monkeypatch):
    """With DENSE_SECONDS lowered to 2 s, a 6-s positive (and a 6-s negative) is embedded every 6 frames
    instead of 2: about a third of the windows, spread over the whole example; a 2-s one stays dense."""
    pos = [bell(SR, 6.0, 1), bell(SR, 2.0, 2)]
    neg = [np.random.default_rng(3).normal(0, 0.05, 6 * SR).astype(np.float32)]
    dense = base.learn("bell", pos, negatives=neg, sample_rate=SR, pitch_shifts=(), mix_positives=False)
    monkeypatch.setattr(learner, "DENSE_SECONDS", 2.0)
    strided = base.learn("bell", pos, negatives=neg, sample_rate=SR, pitch_shifts=(), mix_positives=False)
    d, s = dense.bundle.meta["learned_tags"][-1], strided.bundle.meta["learned_tags"][-1]
    assert [p["hop_frames"] for p in d["positives"]] == [2, 2] and d["negatives"][0]["hop_frames"] == 2
    assert [p["hop_frames"] for p in s["positives"]] == [6, 2] and s["negatives"][0]["hop_frames"] == 6
    w_dense, w_strided = d["positives"][0]["windows"], s["positives"][0]["windows"]
    assert abs(w_strided - w_dense / 3) <= 2
    assert s["positives"][1]["windows"] == d["positives"][1]["windows"]
    assert d["windows"]["negative"] - s["windows"]["negative"] >= 100  # the negative's 2/3 fewer windows
    # the strided tag still detects the sound
    r = strided.tag(np.concatenate([np.zeros(SR, np.float32), bell(SR, 3.0, 9)]), SR)
    on = r.probs[:, -1]
    assert on[r.times > 1.5].mean() > on[r.times < 0.8].mean()


def test_strided_rows_cover_the_whole_example(base, monkeypatch):
    """The shifted and mixed copies of a long example use its hop, and its rows reach from its start to its end."""
    from rtclassify.learn.embeddings import embedding_backend, head_features
    from rtclassify.learn.examples import Example

    monkeypatch.setattr(learner, "DENSE_SECONDS", 2.0)
    fn, ex = head_features(embedding_backend(base)), [Example("positives[0]", bell(SR, 6.0, 4), SR)]
    P = learner.positive_rows(fn, base.bundle, ex, pitch_shifts=(-2.0, 2.0))
    monkeypatch.setattr(learner, "DENSE_SECONDS", 100.0)
    Q = learner.positive_rows(fn, base.bundle, ex, pitch_shifts=(-2.0, 2.0))
    assert abs(len(P) - len(Q) / 3) <= 12
    assert P.place.min() < 0.1 and P.place.max() > 0.9


def test_embed_examples_hop_per_example(base):
    from rtclassify.learn.embeddings import embed_examples, embedding_backend
    from rtclassify.learn.examples import Example

    frame_s = base.bundle.hop_length / base.bundle.sample_rate
    exs = [Example("a", bell(SR, 2.0, 1), SR), Example("b", bell(SR, 2.0, 2), SR)]
    E = embed_examples(embedding_backend(base), base.bundle, exs, [2 * frame_s, 4 * frame_s])
    n_a, n_b = int(np.sum(E.group == 0)), int(np.sum(E.group == 1))
    assert abs(n_b - n_a / 2) <= 1
    with pytest.raises(ValueError, match="2 values for 1 examples"):
        embed_examples(embedding_backend(base), base.bundle, exs[:1], [frame_s, frame_s])


def test_frame_levels_in_chunks_match(base, monkeypatch):
    x = (np.random.default_rng(5).normal(0, 0.1, 3 * SR) + 0.02).astype(np.float32)
    whole = embeddings.frame_levels_db(base.bundle, x, SR)
    raw = embeddings.frame_levels_db(base.bundle, x, SR, remove_dc=False)
    monkeypatch.setattr(embeddings, "_LEVEL_CHUNK", 7)
    np.testing.assert_allclose(embeddings.frame_levels_db(base.bundle, x, SR), whole, rtol=0, atol=1e-9)
    np.testing.assert_allclose(embeddings.frame_levels_db(base.bundle, x, SR, remove_dc=False), raw, rtol=0, atol=1e-9)
    idx = np.array([0, 5, 3, 40])
    np.testing.assert_allclose(embeddings.frame_levels_db(base.bundle, x, SR, index=idx), whole[idx], rtol=0, atol=1e-9)
