"""Tests of the bundle export: ONNX graph, parity with torch, model.json keys, torch backend, CLI."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from _models import checkpoint_of, random_model  # noqa: E402

from rtclassify.errors import BundleError, ParameterError  # noqa: E402
from rtclassify.train.export import ALLOWED_OPS, check_parity, export_bundle, model_json  # noqa: E402
from rtclassify.train.model import TAGS  # noqa: E402

CONTRACT_KEYS = {"format_version", "name", "labels", "frontend", "input", "outputs", "lookahead_frames",
                 "hop_frames", "thresholds", "decoder", "provenance", "metrics", "training"}
FRONTEND_KEYS = {"sample_rate", "n_fft", "win_length", "hop_length", "window", "n_mels", "fmin", "fmax",
                 "mel_scale", "norm", "power", "log", "amin"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    model = random_model(lookahead_frames=3)
    path = tmp / "model.pt"
    torch.save(checkpoint_of(model), path)
    return export_bundle(path, tmp / "bundle", include_weights=True), model, path


def test_bundle_has_every_contract_key(bundle):
    b, model, _ = bundle
    meta = json.loads((b / "model.json").read_text())
    assert CONTRACT_KEYS <= set(meta)
    assert set(meta["frontend"]) == FRONTEND_KEYS
    assert meta["frontend"]["sample_rate"] == 16000 and meta["frontend"]["n_mels"] == 128
    assert meta["labels"] == list(TAGS)
    assert meta["input"] == {"name": "mel", "window_frames": 64, "layout": "batch,mels,frames"}
    assert meta["outputs"] == {"probs": "probs", "embedding": "embedding", "embedding_dim": 24}
    assert meta["lookahead_frames"] == 3 and meta["hop_frames"] == 6
    assert set(meta["thresholds"]) == set(TAGS)
    assert set(meta["decoder"]) == {"smoothing_s", "min_on_s", "min_off_s"}
    assert meta["provenance"]["sources"][0]["license"] == "CC0"
    assert meta["training"]["model"]["width"] == 4 and len(meta["training"]["onnx_sha256"]) == 64


def test_onnx_graph_is_opset17_with_allowed_ops_and_dynamic_batch(bundle):
    b, _, _ = bundle
    m = onnx.load(str(b / "model.onnx"))
    onnx.checker.check_model(m)
    assert {o.version for o in m.opset_import if o.domain in ("", "ai.onnx")} == {17}
    ops = {n.op_type for n in m.graph.node}
    assert ops <= ALLOWED_OPS
    assert "BatchNormalization" not in ops  # folded into the convolutions
    (inp,) = m.graph.input
    assert inp.name == "mel"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [128, 64]
    assert [o.name for o in m.graph.output] == ["probs", "embedding"]
    assert (b / "model.onnx").stat().st_size < 5e6


def test_onnxruntime_and_torch_agree(bundle):
    import onnxruntime as ort

    b, model, _ = bundle
    sess = ort.InferenceSession(str(b / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for batch in (1, 7):
        x = rng.normal(-45, 20, (batch, 128, 64)).astype(np.float32)
        p, e = sess.run(["probs", "embedding"], {"mel": x})
        with torch.no_grad():
            pt, et = model(torch.from_numpy(x))
        assert p.shape == (batch, 12) and e.shape == (batch, 24)
        np.testing.assert_allclose(p, pt.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(e, et.numpy(), atol=1e-4, rtol=0)


def test_parity_check_detects_a_different_model(bundle):
    b, _, _ = bundle
    other = random_model(seed=1, lookahead_frames=3)
    with pytest.raises(BundleError, match="differ"):
        check_parity(other, b / "model.onnx", 128, 64)


def test_runtime_loads_the_bundle(bundle):
    from rtclassify.model.backends import make_backend
    from rtclassify.model.bundle import load_bundle

    b, model, _ = bundle
    bd = load_bundle(b)
    assert bd.labels == tuple(TAGS) and bd.lookahead_frames == 3 and bd.embedding_dim == 24
    x = np.random.default_rng(3).normal(-50, 15, (4, 128, 64)).astype(np.float32)
    onnx_probs = make_backend(bd, "onnx").run(x)
    torch_probs = make_backend(bd, "torch").run(x)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4, rtol=0)


def test_torch_backend_sources(bundle, tmp_path):
    from rtclassify.model.backend_torch import TorchBackend

    b, model, ck_path = bundle
    x = np.random.default_rng(4).normal(-50, 15, (3, 128, 64)).astype(np.float32)
    ref = TorchBackend(model).run(x)
    for src in (b, ck_path):
        p, e = TorchBackend(src).run(x)
        np.testing.assert_allclose(p, ref[0], atol=1e-6)
        np.testing.assert_allclose(e, ref[1], atol=1e-6)
    with pytest.raises(ParameterError, match="shape"):
        TorchBackend(b).run(np.zeros((2, 64, 64), np.float32))
    # a bundle without weights.pt whose referenced checkpoint is gone
    lone = tmp_path / "lone"
    lone.mkdir()
    meta = json.loads((b / "model.json").read_text())
    meta["training"]["checkpoint"] = str(tmp_path / "gone.pt")
    (lone / "model.json").write_text(json.dumps(meta))
    (lone / "model.onnx").write_bytes((b / "model.onnx").read_bytes())
    with pytest.raises(BundleError, match="torch backend needs"):
        TorchBackend(lone)


def test_zip_bundle(tmp_path):
    model = random_model()
    out = export_bundle(checkpoint_of(model), tmp_path / "m.zip")
    with zipfile.ZipFile(out) as z:
        assert set(z.namelist()) == {"model.onnx", "model.json"}
        meta = json.loads(z.read("model.json"))
    assert meta["name"] == "test-model"
    from rtclassify.model.bundle import load_bundle

    assert load_bundle(out).labels == tuple(TAGS)


def test_export_needs_thresholds():
    model = random_model()
    ck = checkpoint_of(model)
    del ck["thresholds"]
    with pytest.raises(ParameterError, match="thresholds"):
        model_json(ck)
    ck = checkpoint_of(model, thresholds={"piano": {"on": 0.5, "off": 0.3}})
    with pytest.raises(ParameterError, match="organ"):
        model_json(ck)


def test_export_cli(tmp_path, capsys):
    from rtclassify.cli import main

    model = random_model()
    torch.save(checkpoint_of(model), tmp_path / "model.pt")
    assert main(["export", str(tmp_path / "model.pt"), "--out", str(tmp_path / "b"), "--name", "cli"]) == 0
    assert json.loads((tmp_path / "b" / "model.json").read_text())["name"] == "cli"
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "c")]) == 1
    assert "missing.pt" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["export", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "c")]) == 1
    assert "junk.pt" in capsys.readouterr().err
