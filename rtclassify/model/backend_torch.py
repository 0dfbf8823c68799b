"""Torch backend (development only): runs the training-side model on windows.

It exists to check that the shipped ONNX graph behaves like the torch model it
was exported from, and to iterate on models without exporting. torch is
imported when a backend is created, never by ``import rtclassify``.

The weights come from (first match):

* an ``nn.Module`` passed directly (returns ``(probs, embedding)``);
* a training checkpoint file (``model.pt``, ``best.pt``, ``last.pt``);
* a bundle folder that holds ``weights.pt`` (``rtclassify export --include-weights``);
* a bundle whose ``model.json`` names the checkpoint it was exported from
  (``training.checkpoint``), when that file still exists and is that
  checkpoint. A relative name is looked up in the bundle folder, then in the
  current folder (export writes it relative to the folder it ran in, the
  repository root). A file found is taken only when it is the same
  checkpoint: its sha256 equals ``training.checkpoint_sha256`` where
  ``model.json`` records one; else its tags, frontend and model configuration
  (and, where both record them, its best epoch and training time) equal the
  bundle's. Another run's ``model.pt`` under the same name is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import BundleError, ParameterError, require

__all__ = ["TorchBackend"]


class TorchBackend:
    """Run windows of log-mel frames through the torch model.

    Parameters
    ----------
    source : path or torch.nn.Module
        Checkpoint, bundle folder, or a module (see the module doc).
    threads : int, optional
        torch intra-op threads (unchanged when None).

    Attributes
    ----------
    name : str
        ``"torch"``.
    labels : list of str or None
    window_frames, n_mels : int
    """

    name = "torch"

    def __init__(self, source, threads: int | None = None):
        torch = require("torch", extra="train")
        self._torch = torch
        if threads is not None:
            from .backends import check_threads

            torch.set_num_threads(check_threads(threads))
        self.labels = None
        if isinstance(source, torch.nn.Module):
            self.model = source
            cfg = getattr(source, "config", None)
            self.n_mels = getattr(cfg, "n_mels", None)
            self.window_frames = getattr(cfg, "window_frames", None)
        else:
            ck = self._load(Path(source))
            from ..train.export import build_model

            self.model = build_model(ck)
            self.labels = list(ck["tags"])
            self.n_mels = int(ck["model_config"]["n_mels"])
            self.window_frames = int(ck["model_config"]["window_frames"])
        self.model.eval()

    @staticmethod
    def _load(path: Path) -> dict:
        from ..train.trainer import load_checkpoint

        if path.is_file():
            if _is_bundle_zip(path):
                return _zip_weights(path)
            return load_checkpoint(path)
        if not path.is_dir():
            raise BundleError(f"{path}: no such checkpoint or bundle folder")
        if (path / "weights.pt").is_file():
            return load_checkpoint(path / "weights.pt")
        meta_path = path / "model.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise BundleError(f"{meta_path}: cannot read ({exc})") from exc
        training = meta.get("training") if isinstance(meta, dict) else None
        training = training if isinstance(training, dict) else {}
        ref = training.get("checkpoint")
        if not isinstance(ref, str) or not ref:
            ref = None
        refused = []
        for candidate in _checkpoint_candidates(path, ref):
            ck = load_checkpoint(candidate)
            why = _not_the_checkpoint(candidate, ck, meta, training)
            if not why:
                return ck
            refused.append(f"{candidate} ({why})")
        if refused:
            raise BundleError(f"{meta_path}: training.checkpoint {ref!r}: not the checkpoint this bundle was "
                              f"exported from: {'; '.join(refused)}; the torch backend needs that run's weights (or "
                              f"a bundle exported with --include-weights)")
        raise BundleError(f"{path}: no weights.pt and the checkpoint named in model.json ({ref}) is not "
                          f"available; the torch backend needs the training weights")

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and embeddings of a batch of windows.

        Parameters
        ----------
        windows : np.ndarray, shape (batch, n_mels, window_frames)
            Raw log-mel dB.

        Returns
        -------
        probs : np.ndarray, shape (batch, n_tags), float32
        embedding : np.ndarray, shape (batch, D), float32
        """
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or (self.n_mels and x.shape[1] != self.n_mels) or (
                self.window_frames and x.shape[2] != self.window_frames):
            raise ParameterError(f"windows must have shape (batch, {self.n_mels}, {self.window_frames}), "
                                 f"got {np.shape(windows)}")
        with self._torch.no_grad():
            probs, emb = self.model(self._torch.from_numpy(np.ascontiguousarray(x)))
        return probs.numpy(), emb.numpy()

    __call__ = run


def _checkpoint_candidates(folder: Path, ref: str | None) -> list[Path]:
    """The files ``training.checkpoint`` may name: itself when absolute; else in the bundle folder, then in the
    current folder (each once, existing files only)."""
    if ref is None:
        return []
    p = Path(ref).expanduser()
    places = [p] if p.is_absolute() else [folder / p, Path.cwd() / p]
    out: list[Path] = []
    for c in places:
        try:
            real = c.resolve()
        except (OSError, RuntimeError):
            continue
        if c.is_file() and all(real != o.resolve() for o in out):
            out.append(c)
    return out


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _not_the_checkpoint(path: Path, ck: dict, meta: dict, training: dict) -> str:
    """Why the checkpoint at ``path`` is not the one the bundle of ``meta`` was exported from ("" when it is)."""
    sha = training.get("checkpoint_sha256")
    if isinstance(sha, str) and sha:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return "" if h.hexdigest() == sha.lower() else "its sha256 differs from training.checkpoint_sha256"
    from ..train.features import full_frontend

    if list(ck.get("tags", [])) != list(meta.get("labels", [])):
        return "its tags differ from the labels"
    bundle_fe = meta.get("frontend")
    try:
        fe = full_frontend(ck.get("frontend") or {})
    except (TypeError, ValueError):
        return "its frontend cannot be read"
    if not isinstance(bundle_fe, dict) or _canonical({k: fe.get(k) for k in bundle_fe}) != _canonical(bundle_fe):
        return "its frontend differs"
    if "model" in training and _canonical(ck.get("model_config")) != _canonical(training["model"]):
        return "its model configuration differs from training.model"
    for key in ("best_epoch", "elapsed_s"):
        if training.get(key) is not None and ck.get(key) is not None and \
                _canonical(ck[key]) != _canonical(training[key]):
            return f"its {key} differs from training.{key}"
    return ""


def _is_bundle_zip(path: Path) -> bool:
    """A zip the bundle reader takes (model.json at its root or in one folder); a torch checkpoint is a zip
    too, without it."""
    from .bundle import _zip_prefix

    try:
        _zip_prefix(path)
    except BundleError:
        return False
    return True


def _zip_weights(path: Path) -> dict:
    """The checkpoint in a bundle zip's ``weights.pt`` (export --include-weights)."""
    import shutil
    import tempfile
    import zipfile

    from ..train.trainer import load_checkpoint
    from .bundle import _zip_prefix

    member = _zip_prefix(path) + "weights.pt"
    with zipfile.ZipFile(path) as zf:
        if member not in zf.namelist():
            raise BundleError(f"{path}: no weights.pt in the bundle zip; the torch backend needs the training "
                              f"weights (export with --include-weights)")
        with tempfile.TemporaryDirectory(prefix="rtc-weights-") as tmp:
            with zf.open(member) as src, open(Path(tmp) / "weights.pt", "wb") as dst:
                shutil.copyfileobj(src, dst)
            try:
                return load_checkpoint(Path(tmp) / "weights.pt")
            except ParameterError as exc:
                raise BundleError(f"{path}!{member}: {str(exc).split(': ', 1)[-1]}") from None
