"""Inference backends behind one interface.

A backend turns a batch of log-mel windows into tag probabilities::

    probs = backend.run(windows)   # windows: float32 (B, n_mels, W) -> probs: float32 (B, n_tags)
    emb = backend.embed(windows)   # optional: float32 (B, embedding_dim)

Backends:

``"onnx"``
    ONNX Runtime on the CPU (:class:`OnnxBackend`), the default. Its intra-op
    thread count is configurable; one thread is the real-time default.
``"torch"``
    The training model run by PyTorch (``rtclassify.model.backend_torch``),
    for development only. torch is imported when this backend is asked for;
    without it a :class:`~rtclassify.errors.MissingDependencyError` names the
    ``train`` extra.
``"tensorrt"``
    TensorRT on a CUDA GPU (``rtclassify.model.backend_tensorrt``, the ``gpu``
    extra: tensorrt and cupy), with an on-disk engine cache.
``"auto"``
    TensorRT when a GPU, tensorrt and cupy are present, else ONNX Runtime on
    the CPU; the chosen backend's ``selection`` says which and why.

:meth:`Backend.run` may be called from several threads at once for the ONNX
backend (ONNX Runtime sessions allow concurrent runs); other backends document
their own rules.
"""

from __future__ import annotations

import numpy as np

from ..errors import BundleError, ParameterError, StateError, require
from .bundle import MODEL_ONNX, Bundle

__all__ = ["Backend", "OnnxBackend", "TorchAdapter", "make_backend", "BACKENDS"]

#: names accepted by :func:`make_backend`
BACKENDS = ("auto", "onnx", "torch", "tensorrt")


class Backend:
    """Interface of an inference backend.

    Attributes
    ----------
    name : str
        Backend name (``"onnx"``, ``"torch"``).
    bundle : Bundle
        The bundle the model comes from.
    n_tags : int
        Number of probabilities per window (``len(bundle.labels)``).
    embedding_dim : int or None
        Size of :meth:`embed` outputs, None when the model has no embedding.
    threads : int
        Intra-op threads used by the backend.
    max_batch : int or None
        The most windows the model takes in one run (None: any number);
        :meth:`run` and :meth:`embed` take larger batches and run them in parts.
    """

    name = "base"
    max_batch = None
    #: how :func:`make_backend` chose this backend ("auto: ..." and the reason; "" when named)
    selection = ""

    def __init__(self, bundle: Bundle, threads: int = 1):
        self.bundle = bundle
        self.threads = int(threads)
        self.n_tags = bundle.n_tags
        self.embedding_dim = bundle.embedding_dim
        self._shape = (bundle.n_mels, bundle.window_frames)

    def __copy__(self):
        """A shallow copy shares the native session (as two sessions of one Classifier share its backend)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __reduce__(self):
        raise TypeError(f"{type(self).__name__} objects cannot be pickled or deep-copied (one holds a native session); "
                        f"make one in the process that uses it (Classifier.load, or make_backend)")

    def check_windows(self, windows) -> np.ndarray:
        """Validate a batch of windows; returns a C-contiguous float32 array (B, n_mels, W)."""
        w = np.asarray(windows)
        if w.ndim != 3 or w.shape[1:] != self._shape:
            raise ParameterError(
                f"windows must have shape (batch, {self._shape[0]}, {self._shape[1]}) (n_mels, window_frames); got {w.shape}"
            )
        if w.dtype != np.float32 or not w.flags.c_contiguous:
            w = np.ascontiguousarray(w, dtype=np.float32)
        return w

    def run(self, windows: np.ndarray) -> np.ndarray:
        """Tag probabilities of a batch of windows.

        Parameters
        ----------
        windows : ndarray, float32, shape (B, n_mels, W)
            Log-mel windows as produced by the bundle's frontend.

        Returns
        -------
        ndarray, float32, shape (B, n_tags)
        """
        raise NotImplementedError

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Embeddings of a batch of windows, float32 (B, embedding_dim)."""
        raise NotImplementedError(f"the {self.name} backend gives no embedding")

    def close(self) -> None:
        """Release the model (optional)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.bundle.name!r} threads={self.threads}>"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:400]


def fixed_batch_of_one(sess, bundle: Bundle, where: str) -> bool:
    """True when an ONNX Runtime session's model fixes its batch axis at 1 (an int, not a name, on the input or
    the outputs ``model.json`` names), False for a dynamic batch axis.

    Raises
    ------
    BundleError
        The model fixes another batch: the stream runs one window at a time.
    """
    shapes = [i.shape for i in sess.get_inputs() if i.name == bundle.input_name]
    shapes += [o.shape for o in sess.get_outputs() if o.name in (bundle.probs_name, bundle.embedding_name)]
    fixed = sorted({dims[0] for dims in shapes if dims and isinstance(dims[0], int)})
    if fixed and fixed != [1]:
        raise BundleError(f"{where}: has a fixed batch of {' and '.join(map(str, fixed))} windows; the stream "
                          f"runs one window at a time: export the model with a dynamic batch axis (or a batch "
                          f"of 1)")
    return bool(fixed)


class OnnxBackend(Backend):
    """ONNX Runtime backend (CPU).

    Opens ``model.onnx`` of the bundle, checks its input and output names and
    sizes against ``model.json`` with one probe run, and keeps the session.
    A model exported with a fixed batch of 1 is run one window at a time
    (:attr:`max_batch` is 1), so batches from offline tagging or several
    streams work with it too.

    Parameters
    ----------
    bundle : Bundle
    threads : int
        ONNX Runtime intra-op threads (>= 1). Inter-op parallelism is off and
        idle worker threads do not spin, which suits a machine shared with an
        audio thread.
    providers : list of str, optional
        ONNX Runtime execution providers (default ``["CPUExecutionProvider"]``).

    Raises
    ------
    BundleError
        ``model.onnx`` cannot be loaded, lacks the input or an output named in
        ``model.json``, has a fixed batch other than 1, rejects a window of
        shape (1, n_mels, W), gives a number of probabilities different
        from the number of labels, probabilities that are not float32 or not
        in [0, 1] on the probe windows (:func:`probe_windows`), or an
        embedding that is not float32 (batch, D).
    """

    name = "onnx"

    def __init__(self, bundle: Bundle, threads: int = 1, providers: list | None = None):
        check_threads(threads)
        super().__init__(bundle, threads)
        import onnxruntime as ort

        where = bundle.file_label(MODEL_ONNX)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        try:
            self._sess = ort.InferenceSession(bundle.model_source(), so, providers=self.providers)
        except BundleError:
            raise
        except Exception as exc:  # ONNX Runtime raises its own exception types
            raise BundleError(f"{where}: cannot be loaded by ONNX Runtime: {_first_line(exc)}") from exc

        inputs = {i.name: i for i in self._sess.get_inputs()}
        outputs = {o.name: o for o in self._sess.get_outputs()}
        if bundle.input_name not in inputs:
            raise BundleError(f"{where}: has no input named {bundle.input_name!r} (inputs: {', '.join(inputs)})")
        for key, oname in (("probs", bundle.probs_name), ("embedding", bundle.embedding_name)):
            if oname is not None and oname not in outputs:
                raise BundleError(f"{where}: has no output named {oname!r} for '{key}' (outputs: {', '.join(outputs)})")
        shape = inputs[bundle.input_name].shape
        if len(shape) != 3:
            raise BundleError(f"{where}: input {bundle.input_name!r} has rank {len(shape)}, expected 3 (batch, mels, frames)")
        fixed = fixed_batch_of_one(self._sess, bundle, where)
        for axis, (dim, want, what) in enumerate(zip(shape[1:], self._shape, ("n_mels", "window_frames")), start=1):
            if isinstance(dim, int) and dim != want:
                raise BundleError(f"{where}: input axis {axis} has size {dim} but model.json gives {what} = {want}")

        self._input = bundle.input_name
        self._probs_out = [bundle.probs_name]
        self._emb_out = [bundle.embedding_name] if bundle.embedding_name else None
        names = [bundle.probs_name] + ([bundle.embedding_name] if bundle.embedding_name else [])
        # one run of three windows: all zeros, digital silence and a seeded random one (probe_windows)
        probe = np.concatenate([np.zeros((1, *self._shape), np.float32), probe_windows(self._shape)])
        if fixed:
            self.max_batch = 1
            self._sess = _OneWindowAtATime(self._sess)
        try:
            res = self._sess.run(names, {self._input: probe})
        except Exception as exc:
            raise BundleError(
                f"{where}: fails on {len(probe)} probe windows of shape ({self._shape[0]}, {self._shape[1]}): "
                f"{_first_line(exc)}"
            ) from exc
        probs = res[0]
        if probs.ndim != 2 or probs.shape[0] != len(probe):
            raise BundleError(f"{where}: output {bundle.probs_name!r} has shape {probs.shape} for {len(probe)} windows, "
                              f"expected (batch, n_tags)")
        if probs.shape[1] != bundle.n_tags:
            raise BundleError(
                f"{where}: output {bundle.probs_name!r} gives {probs.shape[1]} probabilities but model.json lists "
                f"{bundle.n_tags} labels"
            )
        if probs.dtype != np.float32:
            raise BundleError(f"{where}: output {bundle.probs_name!r} is {probs.dtype}, expected float32")
        check_probabilities(probs, where, bundle.probs_name)
        if self._emb_out is not None:
            emb = res[1]
            if emb.ndim != 2 or emb.shape[0] != len(probe):
                raise BundleError(f"{where}: output {bundle.embedding_name!r} has shape {emb.shape}, expected (batch, D)")
            check_embedding_dtype(emb.dtype, where, bundle.embedding_name)
            if bundle.embedding_dim is not None and emb.shape[1] != bundle.embedding_dim:
                raise BundleError(
                    f"{where}: output {bundle.embedding_name!r} has size {emb.shape[1]} but model.json gives "
                    f"embedding_dim = {bundle.embedding_dim}"
                )
            self.embedding_dim = int(emb.shape[1])
        else:
            self.embedding_dim = None

    def run(self, windows: np.ndarray) -> np.ndarray:
        w = self.check_windows(windows)
        return self._sess.run(self._probs_out, {self._input: w})[0]

    def run_unchecked(self, windows: np.ndarray) -> np.ndarray:
        """:meth:`run` without validation, for callers that own a C-contiguous float32 (B, n_mels, W) buffer."""
        return self._sess.run(self._probs_out, {self._input: windows})[0]

    def embed(self, windows: np.ndarray) -> np.ndarray:
        if self._emb_out is None:
            raise NotImplementedError(f"{self.bundle.file_label(MODEL_ONNX)} has no embedding output")
        w = self.check_windows(windows)
        return self._sess.run(self._emb_out, {self._input: w})[0]

    def close(self) -> None:
        """Release the model; any later :meth:`run` or :meth:`embed` raises :class:`~rtclassify.errors.StateError`."""
        self._sess = _ClosedSession(self.bundle.file_label(MODEL_ONNX))


def probe_windows(shape: tuple) -> np.ndarray:
    """Windows a backend runs when it opens a model, beside the all-zero one: digital silence (-100 dB, the
    floor of the default log scaling) and a seeded random window of music-like levels (-100 to 20 dB).
    float32, shape (2, n_mels, W)."""
    rng = np.random.default_rng(0)
    noise = rng.normal(-45.0, 20.0, shape).clip(-100.0, 20.0)
    return np.stack([np.full(shape, -100.0), noise]).astype(np.float32)


def check_probabilities(probs: np.ndarray, where: str, name: str) -> None:
    """Refuse a model whose ``probs`` output, on the probe windows, holds values that are not probabilities
    (outside [0, 1], NaN or infinite): the decoder would clip them for ever after, silently."""
    p = np.asarray(probs)
    finite = np.isfinite(p)
    if finite.all() and p.min() >= 0.0 and p.max() <= 1.0:
        return
    shown = f"values from {float(p[finite].min()):.4g} to {float(p[finite].max()):.4g}" if finite.any() else ""
    if not finite.all():
        shown = ", ".join(x for x in (shown, "NaN or infinite values") if x)
    raise BundleError(f"{where}: output {name!r} (outputs.probs) is not probabilities in [0, 1] on the probe "
                      f"windows ({shown}); a graph exported without its final sigmoid gives logits")


def check_embedding_dtype(dtype, where: str, name: str) -> None:
    """Refuse an embedding output that is not float32 (a learned head reads it as float32)."""
    if np.dtype(dtype) != np.float32:
        raise BundleError(f"{where}: output {name!r} (outputs.embedding) is {np.dtype(dtype)}, expected float32")


class _OneWindowAtATime:
    """The ONNX Runtime session of a model exported with a batch of 1, behind the same ``run``: a batch of
    windows is run one window at a time and the outputs are stacked."""

    def __init__(self, sess):
        self._sess = sess

    def run(self, names, feeds):
        (key, w), = feeds.items()
        if len(w) == 1:
            return self._sess.run(names, feeds)
        if len(w) == 0:
            return [r[:0] for r in self._sess.run(names, {key: np.zeros((1, *w.shape[1:]), w.dtype)})]
        parts = [self._sess.run(names, {key: w[i:i + 1]}) for i in range(len(w))]
        return [np.concatenate(out) for out in zip(*parts)]


class _ClosedSession:
    """Stands in for the ONNX Runtime session after :meth:`OnnxBackend.close` (so a run costs no check)."""

    def __init__(self, where: str):
        self._where = where

    def run(self, names, feeds):
        raise StateError(f"{self._where}: the backend was closed; load the classifier again to run the model")


#: the most intra-op threads a backend takes (far above the cores of any machine this runs on; more only
#: makes the thread pools ask for absurd memory)
MAX_THREADS = 256


def check_threads(threads) -> int:
    """``threads`` as an int from 1 to :data:`MAX_THREADS`, else a ParameterError naming it."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= MAX_THREADS:
        raise ParameterError(f"threads must be an integer from 1 to {MAX_THREADS} (got {threads!r})")
    return int(threads)


def make_backend(bundle: Bundle, name: str = "auto", threads: int = 1, **options) -> Backend:
    """Open a bundle's model with the named backend.

    Parameters
    ----------
    bundle : Bundle
    name : {"auto", "onnx", "torch", "tensorrt"}
        ``"onnx"``: ONNX Runtime on the CPU. ``"torch"``: the development
        backend (needs the ``train`` extra). ``"tensorrt"``: TensorRT on the
        GPU (``gpu`` extra). ``"auto"``: TensorRT when a GPU, tensorrt and
        cupy are present, else ONNX Runtime (``backend.selection`` says which).
    threads : int
        Intra-op threads.
    **options
        TensorRT options (``max_batch``, ``fp16``, ``cache_dir``, ``device``,
        ``workspace_mb``); ignored when ONNX Runtime or torch runs.

    Raises
    ------
    ParameterError
        Unknown backend name.
    MissingDependencyError
        ``"torch"`` without torch installed, ``"tensorrt"`` without tensorrt or cupy.
    GpuUnavailableError
        ``"tensorrt"`` without a CUDA GPU.
    BundleError
        The model does not match the bundle.
    """
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ParameterError(f"backend must be one of {', '.join(BACKENDS)} (got {name!r})")
    check_threads(threads)
    name = name.lower()
    if name in ("auto", "tensorrt"):
        from .backend_tensorrt import select_gpu_backend

        gpu_backend, note = select_gpu_backend(bundle, name, threads=threads, **options)
        if gpu_backend is not None:
            return gpu_backend
        backend = OnnxBackend(bundle, threads=threads)
        backend.selection = note
        return backend
    if name == "onnx":
        return OnnxBackend(bundle, threads=threads)
    return TorchAdapter(bundle, threads=threads)


class TorchAdapter(Backend):
    """The development torch backend (:mod:`rtclassify.model.backend_torch`) behind the :class:`Backend` interface.

    The torch model's weights come from the bundle folder (``weights.pt``) or
    the training checkpoint named in ``model.json``; see
    :class:`rtclassify.model.backend_torch.TorchBackend`.

    Raises
    ------
    MissingDependencyError
        torch is not installed (names the ``train`` extra).
    BundleError
        No weights for the bundle, or the model's labels differ from the bundle's.
    """

    name = "torch"

    def __init__(self, bundle: Bundle, threads: int = 1):
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ParameterError(f"threads must be an integer >= 1 (got {threads!r})")
        super().__init__(bundle, threads)
        require("torch", extra="train")
        from .backend_torch import TorchBackend

        self._impl = TorchBackend(bundle.path, threads=threads)
        labels = getattr(self._impl, "labels", None)
        if labels is not None and tuple(labels) != tuple(bundle.labels):
            raise BundleError(f"{bundle.path}: the torch weights' tags {list(labels)} differ from model.json labels "
                              f"{list(bundle.labels)}")

    def run(self, windows: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._impl.run(self.check_windows(windows))[0], dtype=np.float32)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._impl.run(self.check_windows(windows))[1], dtype=np.float32)
