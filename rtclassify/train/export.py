"""Export a trained checkpoint as a model bundle (``model.onnx`` + ``model.json``).

The ONNX graph is opset 17 with a dynamic batch axis, input ``mel``
``(batch, n_mels, window_frames)`` and outputs ``probs`` ``(batch, n_tags)``
and ``embedding`` ``(batch, D)``. Batch norm is folded into the convolutions,
and the operator set is checked against the TensorRT-supported list below.
After writing, ONNX Runtime and torch are run on the same inputs and must
agree within ``1e-4``.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import BundleError, ParameterError, require

__all__ = ["export_bundle", "build_model", "model_json", "check_parity", "update_bundle_metrics",
           "check_metrics_bundle", "check_checkpoint_path", "ALLOWED_OPS"]

#: ONNX operators the exported graph may contain (all supported by TensorRT's ONNX parser).
ALLOWED_OPS = frozenset({
    "Conv", "BatchNormalization", "Relu", "MaxPool", "ReduceMax", "ReduceMean", "Gemm", "MatMul", "Add", "Sub",
    "Mul", "Div", "Sigmoid", "Slice", "Gather", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Flatten",
    "Constant", "Identity", "Transpose",
})

FORMAT_VERSION = 1


def build_model(checkpoint: dict):
    """A :class:`ShortChunkCNN` in eval mode with the checkpoint's weights."""
    from .model import ModelConfig, ShortChunkCNN

    try:
        model = ShortChunkCNN(ModelConfig.from_dict(dict(checkpoint["model_config"])))
        model.load_state_dict(checkpoint["state_dict"])
    except KeyError as exc:
        raise ParameterError(f"the checkpoint has no {exc.args[0]}") from None
    except (RuntimeError, TypeError, ParameterError) as exc:  # weights of another architecture
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParameterError(f"the checkpoint's weights do not fit its model_config ({first[:200]})") from None
    model.eval()
    return model


def model_json(checkpoint: dict, onnx_sha256: str = "", name: str | None = None) -> dict:
    """The bundle's model.json for a finalized checkpoint (see the model contract)."""
    from .features import DEFAULT_FRONTEND, full_frontend

    mc = checkpoint["model_config"]
    tags = list(checkpoint["tags"])
    th = checkpoint.get("thresholds")
    if th is None:
        raise ParameterError("checkpoint has no thresholds (a last.pt or best.pt); export the model.pt written at "
                             "the end of training (a `train --config` run stopped early writes it when resumed to "
                             "its end: rtclassify train --config FILE --resume, with --set train.epochs=N to end it "
                             "at epoch N; a `train --data` run is run again)")
    missing = [t for t in tags if t not in th]
    if missing:
        raise ParameterError(f"checkpoint thresholds miss tag(s) {missing}")
    fe = full_frontend(checkpoint.get("frontend", {}))
    if int(fe["n_mels"]) != int(mc["n_mels"]):
        raise ParameterError(f"frontend n_mels={fe['n_mels']} but the model expects {mc['n_mels']}")
    params = checkpoint.get("train_params", {})
    history = checkpoint.get("history", [])
    return {
        "format_version": FORMAT_VERSION,
        "name": name or checkpoint.get("name", "rtclassify-model"),
        "labels": tags,
        "frontend": {k: fe[k] for k in DEFAULT_FRONTEND},
        "input": {"name": "mel", "window_frames": int(mc["window_frames"]), "layout": "batch,mels,frames"},
        "outputs": {"probs": "probs", "embedding": "embedding", "embedding_dim": int(mc["embedding_dim"])},
        "lookahead_frames": int(mc["lookahead_frames"]),
        "hop_frames": int(checkpoint.get("hop_frames", 6)),
        "thresholds": {t: {"on": float(th[t]["on"]), "off": float(th[t]["off"])} for t in tags},
        "decoder": dict(checkpoint.get("decoder", {"smoothing_s": 0.15, "min_on_s": 0.1, "min_off_s": 0.2})),
        "provenance": checkpoint.get("provenance", {}),
        "metrics": checkpoint.get("metrics", {}),
        "training": {
            "model": mc,
            "params": params,
            "config": checkpoint.get("config", {}),
            "epochs_run": len(history),
            "best_epoch": checkpoint.get("best_epoch"),
            "elapsed_s": checkpoint.get("elapsed_s"),
            "history": history,
            "onnx_sha256": onnx_sha256,
        },
    }


def _export_onnx(model, path: Path, n_mels: int, window_frames: int):
    torch = require("torch", extra="train")
    x = torch.zeros(2, n_mels, window_frames) - 60.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), input_names=["mel"], output_names=["probs", "embedding"],
            opset_version=17, do_constant_folding=True, dynamo=False,
            dynamic_axes={"mel": {0: "batch"}, "probs": {0: "batch"}, "embedding": {0: "batch"}},
        )


def check_graph(path) -> set:
    """Check the ONNX file (checker, opset 17, allowed ops); returns its operator set."""
    onnx = require("onnx", extra="train")
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset != 17:
        raise BundleError(f"{path}: opset {opset}, expected 17")
    ops = {n.op_type for n in m.graph.node}
    bad = ops - ALLOWED_OPS
    if bad:
        raise BundleError(f"{path}: operators outside the TensorRT-supported set: {sorted(bad)}")
    return ops


def check_parity(model, onnx_path, n_mels: int, window_frames: int, atol: float = 1e-4, seed: int = 0,
                 extra_inputs: np.ndarray | None = None) -> float:
    """Run torch and ONNX Runtime on the same windows; raise when they differ by more than ``atol``.

    Returns
    -------
    float
        The largest absolute difference over both outputs.
    """
    import onnxruntime as ort

    torch = require("torch", extra="train")
    rng = np.random.default_rng(seed)
    x = rng.normal(-45.0, 20.0, (5, n_mels, window_frames)).clip(-100.0, 20.0).astype(np.float32)
    x[0] = -100.0  # digital silence
    if extra_inputs is not None:
        x = np.concatenate([x, np.asarray(extra_inputs, np.float32)])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    p_ort, e_ort = sess.run(["probs", "embedding"], {"mel": x})
    with torch.no_grad():
        p_t, e_t = (t.numpy() for t in model(torch.from_numpy(x)))
    diff = float(max(np.abs(p_ort - p_t).max(), np.abs(e_ort - e_t).max()))
    if not diff <= atol:
        raise BundleError(f"{onnx_path}: ONNX Runtime and torch differ by {diff:.3g} (> {atol})")
    return diff


def export_bundle(checkpoint, out, name: str | None = None, include_weights: bool = False) -> Path:
    """Write a bundle for a finalized checkpoint.

    Parameters
    ----------
    checkpoint : path or dict
        ``model.pt`` written at the end of training (it carries thresholds,
        metrics and provenance), or the loaded dict.
    out : path
        Bundle folder, or a ``.zip`` file.
    name : str, optional
        Bundle name (default: the one in the checkpoint).
    include_weights : bool
        Also store the torch weights as ``weights.pt`` (for the torch backend).

    Returns
    -------
    Path
        The bundle folder or zip.
    """
    import hashlib

    from .trainer import load_checkpoint

    from ..model.bundle import load_bundle
    from ..model.bundle_write import check_bundle_out, write_bundle

    out = check_bundle_out(out, "out")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ParameterError(f"name must be a non-empty string (got {name!r})")
    if not isinstance(checkpoint, dict):
        check_checkpoint_path(checkpoint)
    ck = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    model = build_model(ck)
    mc = ck["model_config"]
    with tempfile.TemporaryDirectory(prefix="rtc-export-") as tmp:
        tmp = Path(tmp)
        onnx_path = tmp / "model.onnx"
        _export_onnx(model, onnx_path, int(mc["n_mels"]), int(mc["window_frames"]))
        check_graph(onnx_path)
        check_parity(model, onnx_path, int(mc["n_mels"]), int(mc["window_frames"]))
        sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        meta = model_json(ck, sha, name)
        if not isinstance(checkpoint, dict):
            ck_path = Path(checkpoint).resolve()
            # the torch backend takes a file of this name only when it is this checkpoint
            meta["training"]["checkpoint_sha256"] = hashlib.sha256(ck_path.read_bytes()).hexdigest()
            try:  # relative to the working directory (the repository root) when inside it
                ck_path = ck_path.relative_to(Path.cwd())
            except ValueError:
                pass
            meta["training"]["checkpoint"] = str(ck_path)
        (tmp / "model.json").write_text(json.dumps(meta, indent=1, allow_nan=False))
        files = ["model.onnx", "model.json"]
        if include_weights:
            torch = require("torch", extra="train")
            torch.save({"format": ck["format"], "model_config": mc, "state_dict": model.state_dict(),
                        "tags": list(ck["tags"])}, tmp / "weights.pt")
            files.append("weights.pt")
        try:  # a bundle that would not load must not replace the one at ``out``
            load_bundle(tmp)
        except BundleError as exc:
            raise ParameterError(f"the exported bundle would not load, {out} is left as it was: "
                                 f"{str(exc).replace(str(tmp), 'bundle')}") from None
        return write_bundle(out, {f: tmp / f for f in files})


def check_checkpoint_path(path, what: str = "checkpoint") -> Path:
    """Refuse a checkpoint path that is missing or a folder, before torch reads it.

    Returns
    -------
    Path

    Raises
    ------
    ParameterError
        The path does not exist, or is a folder (the message names the ``model.pt`` in it when there is one).
    """
    p = Path(path).expanduser()
    if p.is_dir():
        hint = f" ({p / 'model.pt'} is there)" if (p / "model.pt").is_file() else ""
        raise ParameterError(f"{what} {p}: is a folder; give the checkpoint file (model.pt) that "
                             f"`rtclassify train` wrote{hint}")
    if not p.exists():
        raise ParameterError(f"{what} {p} not found")
    return p


def check_metrics_bundle(bundle, what: str = "--update-bundle") -> Path:
    """Refuse a bundle whose metrics cannot be updated (a zip, or not a bundle folder), before any work.

    Returns
    -------
    Path
        The bundle folder.

    Raises
    ------
    BundleError
        ``bundle`` is a zip file or has no ``model.json`` (metrics can be added to bundle folders only).
    """
    from ..model.bundle_write import is_zip_path

    bundle = Path(bundle).expanduser()
    if bundle.is_file() or is_zip_path(bundle):
        kind = "a zip" if is_zip_path(bundle) else "a file"
        raise BundleError(f"{what}: {bundle} is {kind}; metrics can be added to bundle folders only")
    if not (bundle / "model.json").is_file():
        raise BundleError(f"{what}: {bundle / 'model.json'} not found (metrics can be added to bundle folders only)")
    return bundle


def update_bundle_metrics(bundle, metrics: dict) -> None:
    """Merge ``metrics`` into the ``metrics`` of a bundle folder's model.json.

    The file is replaced in one step (written beside it, then renamed), so an interruption keeps the old one.

    Raises
    ------
    BundleError
        ``bundle`` is not a bundle folder (see :func:`check_metrics_bundle`).
    ParameterError
        ``metrics`` holds values JSON cannot store (NaN, infinity).
    """
    from ..model.bundle_write import write_atomic

    path = check_metrics_bundle(bundle, "bundle") / "model.json"
    meta = json.loads(path.read_text())
    meta.setdefault("metrics", {}).update(metrics)
    try:
        text = json.dumps(meta, indent=1, allow_nan=False)
    except ValueError as exc:
        raise ParameterError(f"{path}: the metrics hold a value JSON cannot store ({exc})") from None
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))
