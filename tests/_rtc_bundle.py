"""Test helper: writes small but real model bundles (ONNX graph + model.json) into a folder.

The graph: ``mel (B, n_mels, W)`` -> mean over the last ``span`` frames of the
window -> ``(B, n_mels)`` = embedding; probs = sigmoid(scale * (emb @ M + bias))
where column ``t`` of ``M`` averages a band of mel bins. So with the default
three tags, ``low`` follows the energy in the low mel bands, ``high`` in the
high bands and ``any`` in all bands. Needs the ``onnx`` package.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FRONTEND = {
    "sample_rate": 16000, "n_fft": 512, "win_length": 512, "hop_length": 256, "window": "hann",
    "n_mels": 32, "fmin": 0.0, "fmax": 8000.0, "mel_scale": "htk", "norm": None, "power": 2.0,
    "log": "db", "amin": 1e-10,
}
LABELS = ["low", "high", "any"]


def band_matrix(n_mels: int, n_tags: int) -> np.ndarray:
    """(n_mels, n_tags): tag 0 averages the lower quarter, tag 1 the upper half, tag 2 all, others cycle."""
    m = np.zeros((n_mels, n_tags), np.float32)
    for t in range(n_tags):
        kind = t % 3
        if kind == 0:
            sel = slice(0, max(1, n_mels // 4))
        elif kind == 1:
            sel = slice(n_mels // 2, n_mels)
        else:
            sel = slice(0, n_mels)
        idx = np.arange(n_mels)[sel]
        m[idx, t] = 1.0 / len(idx)
    return m


def make_onnx(path: Path, n_mels: int, window: int, n_tags: int, span: int = 4, scale: float = 0.25,
              bias: float = 60.0, input_name: str = "mel", probs_name: str = "probs",
              embedding_name: str = "embedding", opset: int = 17) -> None:
    """Write the test graph to ``path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    span = min(span, window)
    inits = [
        numpy_helper.from_array(np.array([window - span], np.int64), "starts"),
        numpy_helper.from_array(np.array([window], np.int64), "ends"),
        numpy_helper.from_array(np.array([2], np.int64), "axes"),
        numpy_helper.from_array(band_matrix(n_mels, n_tags), "M"),
        numpy_helper.from_array(np.full(n_tags, bias, np.float32), "bias"),
        numpy_helper.from_array(np.array(scale, np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("Slice", [input_name, "starts", "ends", "axes"], ["recent"]),
        helper.make_node("ReduceMean", ["recent"], [embedding_name], axes=[2], keepdims=0),
        helper.make_node("MatMul", [embedding_name, "M"], ["band"]),
        helper.make_node("Add", ["band", "bias"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "scale"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [probs_name]),
    ]
    graph = helper.make_graph(
        nodes, "rtc_test",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", n_mels, window])],
        [helper.make_tensor_value_info(probs_name, TensorProto.FLOAT, ["batch", n_tags]),
         helper.make_tensor_value_info(embedding_name, TensorProto.FLOAT, ["batch", n_mels])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    Path(path).write_bytes(model.SerializeToString())


def model_json(labels=None, frontend=None, window: int = 16, lookahead: int = 1, hop_frames: int = 3,
               on: float = 0.6, off: float = 0.4, smoothing_s: float = 0.0, min_on_s: float = 0.0,
               min_off_s: float = 0.0, embedding_dim: int | None = None) -> dict:
    labels = list(labels or LABELS)
    fe = dict(frontend or FRONTEND)
    return {
        "format_version": 1,
        "name": "rtc-test",
        "labels": labels,
        "frontend": fe,
        "input": {"name": "mel", "window_frames": window, "layout": "batch,mels,frames"},
        "outputs": {"probs": "probs", "embedding": "embedding",
                    "embedding_dim": embedding_dim if embedding_dim is not None else fe["n_mels"]},
        "lookahead_frames": lookahead,
        "hop_frames": hop_frames,
        "thresholds": {t: {"on": on, "off": off} for t in labels},
        "decoder": {"smoothing_s": smoothing_s, "min_on_s": min_on_s, "min_off_s": min_off_s},
        "provenance": {"data": "test graph", "seed": 0, "sources": []},
        "metrics": {},
        "training": {},
    }


def write_bundle(folder: Path, meta: dict | None = None, onnx_tags: int | None = None, **kw) -> Path:
    """Write ``model.json`` and ``model.onnx`` into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = meta or model_json(**kw)
    (folder / "model.json").write_text(json.dumps(meta, indent=1))
    n_tags = onnx_tags if onnx_tags is not None else len(meta["labels"])
    make_onnx(folder / "model.onnx", meta["frontend"]["n_mels"], meta["input"]["window_frames"], n_tags)
    return folder


def rewrite_meta(folder: Path, mutate) -> None:
    """Change a bundle folder's model.json in place: ``mutate(meta)`` edits the loaded dict."""
    meta = json.loads((folder / "model.json").read_text())
    mutate(meta)
    (folder / "model.json").write_text(json.dumps(meta))


def tone(sr: int, seconds: float, freq: float, amp: float = 0.5, start: float = 0.0) -> np.ndarray:
    """A sine of ``seconds`` seconds, float32."""
    t = start + np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def demo_signal(sr: int, seed: int = 0) -> np.ndarray:
    """About 4 s: silence, a low tone, silence, a high tone with noise, silence (float32)."""
    rng = np.random.default_rng(seed)
    parts = [
        np.zeros(int(0.5 * sr), np.float32),
        tone(sr, 1.0, 220.0),
        np.zeros(int(0.6 * sr), np.float32),
        tone(sr, 1.2, 5000.0, 0.3) + (0.05 * rng.standard_normal(int(round(1.2 * sr)))).astype(np.float32),
        np.zeros(int(0.7 * sr), np.float32),
    ]
    return np.concatenate(parts).astype(np.float32)


def fixed_batch_bundle(src, dst, batch: int) -> Path:
    """A copy of bundle ``src`` whose model declares a fixed batch axis of ``batch`` (as some exporters write)."""
    import shutil

    import onnx

    shutil.copytree(src, dst)
    m = onnx.load(dst / "model.onnx")
    for v in list(m.graph.input) + list(m.graph.output):
        d = v.type.tensor_type.shape.dim[0]
        d.ClearField("dim_param")
        d.dim_value = batch
    onnx.save(m, dst / "model.onnx")
    return dst
