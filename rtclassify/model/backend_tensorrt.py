"""TensorRT backend (GPU): the bundle's ONNX graph as a TensorRT 10 engine.

The engine is built with the TensorRT Python API (``OnnxParser`` on an
explicit-batch network, a builder config, one optimization profile for batch
1 to ``max_batch``, FP16 optional) and cached on disk, keyed by

* the sha256 of the ONNX file,
* the TensorRT version,
* the GPU's name and compute capability,
* the precision (``fp32`` / ``fp16``),
* the input name and the profile's shapes.

A cache file that TensorRT cannot deserialize (truncated, written by another
version, corrupt) is deleted and the engine rebuilt. Inference runs with
``execute_async_v3`` on device buffers whose addresses are set with
``set_tensor_address``; a cupy (or any ``__cuda_array_interface__``) float32
C-contiguous batch is bound directly as the input, so frames from
:class:`rtclassify.CudaMelFrontend` reach the engine without host copies.

tensorrt and cupy are the ``gpu`` extra, imported when the backend is
created. The cache logic (:class:`EngineKey`, :class:`EngineCache`,
:func:`obtain_engine`) is plain Python, independent of both.

Cache folder: ``$RTCLASSIFY_TRT_CACHE`` if set, else
``$XDG_CACHE_HOME/rtclassify/trt``, else ``~/.cache/rtclassify/trt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import gpu
from ..errors import BundleError, MissingDependencyError, ParameterError, RtclassifyError, StateError, require
from ..gpu import GPU_EXTRA, GpuUnavailableError, gpu_devices, tensorrt_availability
from .backends import (Backend, _first_line, check_embedding_dtype, check_probabilities, check_threads,
                       fixed_batch_of_one, probe_windows)
from .bundle import MODEL_ONNX, Bundle

__all__ = [
    "TensorRTBackend",
    "EngineKey",
    "EngineCache",
    "obtain_engine",
    "default_cache_dir",
    "select_gpu_backend",
    "check_available",
    "CACHE_ENV",
]

log = logging.getLogger("rtclassify.model")

#: environment variable that overrides the engine cache folder
CACHE_ENV = "RTCLASSIFY_TRT_CACHE"
#: version of the cache key's layout (part of the key)
KEY_FORMAT = 2  # 2: the workspace limit is part of the key
PRECISIONS = ("fp32", "fp16")


def default_cache_dir() -> Path:
    """The engine cache folder (see the module doc for the order of lookup)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rtclassify" / "trt"


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on.

    Attributes
    ----------
    onnx_sha256 : str
        Hex sha256 of the ONNX file's bytes.
    tensorrt_version : str
    gpu_name : str
    compute_capability : str
        ``"major.minor"``, e.g. ``"8.9"``.
    precision : {"fp32", "fp16"}
    input_name : str
    min_shape, opt_shape, max_shape : tuple of int
        The optimization profile of the input, ``(batch, n_mels, W)``.
    workspace_mb : int
        The builder's workspace limit (it decides which tactics TensorRT may choose).
    """

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_name: str
    min_shape: tuple
    opt_shape: tuple
    max_shape: tuple
    workspace_mb: int = 1024

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ParameterError(f"precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        for field in ("min_shape", "opt_shape", "max_shape"):
            object.__setattr__(self, field, tuple(int(v) for v in getattr(self, field)))

    @classmethod
    def for_model(cls, onnx_bytes: bytes, tensorrt_version: str, gpu_name: str, compute_capability: str,
                  precision: str, input_name: str, n_mels: int, window_frames: int, max_batch: int,
                  workspace_mb: int = 1024) -> "EngineKey":
        """The key of an engine for batch 1..max_batch of ``(n_mels, window_frames)`` windows."""
        return cls(
            onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            tensorrt_version=str(tensorrt_version),
            gpu_name=str(gpu_name),
            compute_capability=str(compute_capability),
            precision=precision,
            input_name=str(input_name),
            min_shape=(1, n_mels, window_frames),
            opt_shape=(max_batch, n_mels, window_frames),
            max_shape=(max_batch, n_mels, window_frames),
            workspace_mb=int(workspace_mb),
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["key_format"] = KEY_FORMAT
        for field in ("min_shape", "opt_shape", "max_shape"):
            d[field] = list(d[field])
        return d

    def digest(self) -> str:
        """Hex sha256 of the key's canonical JSON: the cache file's name."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class EngineCache:
    """Serialized engines on disk: ``<digest>.engine`` plus a ``<digest>.json`` description.

    Parameters
    ----------
    directory : str or Path, optional
        Cache folder (default :func:`default_cache_dir`); created on first store.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()

    def path(self, key: EngineKey) -> Path:
        """File that holds the engine of ``key``."""
        return self.directory / f"{key.digest()}.engine"

    def load(self, key: EngineKey) -> bytes | None:
        """The cached bytes of ``key``, or None when there are none (or they cannot be read)."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("TensorRT engine cache: cannot read %s (%s)", self.path(key), exc)
            return None

    def store(self, key: EngineKey, data: bytes) -> Path | None:
        """Write the engine atomically (temporary file, then rename); None when the folder is not writable."""
        target = self.path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            target.with_suffix(".json").write_text(json.dumps(key.to_dict(), indent=1, sort_keys=True))
        except OSError as exc:
            log.warning("TensorRT engine cache: cannot write %s (%s); the engine is used without caching", target, exc)
            return None
        return target

    def discard(self, key: EngineKey) -> None:
        """Delete the cached engine of ``key`` (and its description), if any."""
        for p in (self.path(key), self.path(key).with_suffix(".json")):
            try:
                p.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("TensorRT engine cache: cannot delete %s (%s)", p, exc)


def obtain_engine(cache: EngineCache, key: EngineKey, build: Callable[[], bytes],
                  deserialize: Callable[[bytes], object]):
    """Load the engine of ``key`` from the cache, or build (and cache) it.

    Parameters
    ----------
    cache : EngineCache
    key : EngineKey
    build : callable () -> bytes
        Builds and serializes the engine (TensorRT's builder).
    deserialize : callable (bytes) -> engine or None
        TensorRT's ``Runtime.deserialize_cuda_engine``: None (or an
        exception) means the bytes are not a usable engine.

    Returns
    -------
    engine : object
    source : {"cache", "built", "rebuilt"}
        ``"rebuilt"``: a cache file existed but could not be deserialized; it
        was deleted and replaced.

    Raises
    ------
    RuntimeError
        A freshly built engine cannot be deserialized.
    """
    source = "built"
    data = cache.load(key)
    if data is not None:
        try:
            engine = deserialize(data)
        except Exception as exc:  # TensorRT raises its own types
            log.warning("TensorRT engine cache: %s cannot be deserialized (%s); rebuilding", cache.path(key), exc)
            engine = None
        else:
            if engine is None:
                log.warning("TensorRT engine cache: %s cannot be deserialized; rebuilding", cache.path(key))
        if engine is not None:
            return engine, "cache"
        cache.discard(key)
        source = "rebuilt"
    data = build()
    engine = deserialize(data)
    if engine is None:
        raise RuntimeError("TensorRT cannot deserialize the engine it has just built")
    cache.store(key, data)
    return engine, source


# ----------------------------------------------------------------------
# the TensorRT boundary
# ----------------------------------------------------------------------
_LOGGER = None
_LOGGER_LOCK = threading.Lock()


def _shared_logger(trt):
    """The process's one TensorRT logger. TensorRT keeps a single logger pointer while any builder or runtime
    exists: a second backend that passed a logger of its own would get a warning and the first one's logger,
    which that backend's close may free while the second still runs. One logger, never freed, for all."""
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            _LOGGER = trt.Logger(trt.Logger.WARNING)
        return _LOGGER


def _trt_major(trt) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        return 0


def _build_serialized(trt, logger, onnx_bytes: bytes, where: str, key: EngineKey, workspace_bytes: int) -> bytes:
    """Parse the ONNX graph and build a serialized engine for ``key``'s profile and precision."""
    builder = trt.Builder(logger)
    flags = 0
    if _trt_major(trt) < 10:  # explicit batch is the only mode (and the default) from TensorRT 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BundleError(f"{where}: TensorRT's ONNX parser rejects the graph: {'; '.join(errors)[:600]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if key.precision == "fp16":
        flag = getattr(trt.BuilderFlag, "FP16", None)
        if flag is None:  # TensorRT 11: networks are always strongly typed, the flag is gone
            raise ParameterError(f"fp16: TensorRT {trt.__version__} has no FP16 builder flag (its networks are "
                                 "strongly typed: the ONNX graph's own types decide); use fp16=False, or TensorRT 10")
        config.set_flag(flag)
    profile = builder.create_optimization_profile()
    profile.set_shape(key.input_name, key.min_shape, key.opt_shape, key.max_shape)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BundleError(f"{where}: TensorRT could not build an engine (see the TensorRT messages above)")
    return bytes(memoryview(plan))


def engine_max_batch(onnx_bytes: bytes, bundle: Bundle, where: str, max_batch: int) -> int:
    """The largest batch of the engine built for a model: ``max_batch``, or 1 for a model exported with a fixed
    batch of 1 (its profile is batch 1 only: TensorRT refuses a range on a static axis; it runs one window at a
    time, as on ONNX Runtime). Another fixed batch raises BundleError."""
    return 1 if onnx_fixed_batch_of_one(onnx_bytes, bundle, where) else int(max_batch)


def onnx_fixed_batch_of_one(onnx_bytes: bytes, bundle: Bundle, where: str) -> bool:
    """:func:`~rtclassify.model.backends.fixed_batch_of_one` of an ONNX graph, read with ONNX Runtime (on the CPU,
    unoptimized: only the graph's declared shapes are read)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types
        raise BundleError(f"{where}: cannot be read by ONNX Runtime: {_first_line(exc)}") from exc
    return fixed_batch_of_one(sess, bundle, where)


class TensorRTBackend(Backend):
    """TensorRT backend on a CUDA GPU.

    Parameters
    ----------
    bundle : Bundle
    threads : int
        Kept for the interface (TensorRT does not use host threads here).
    max_batch : int
        Largest batch (the number of streams served at once); the engine's
        profile covers batch 1 to ``max_batch``. Larger batches are run in
        chunks. A model exported with a fixed batch of 1 gets an engine of
        batch 1 and runs one window at a time (:attr:`max_batch` is 1).
    fp16 : bool
        Let TensorRT use FP16 kernels (inputs and outputs stay float32).
        Needs TensorRT 10's FP16 builder flag; TensorRT 11 builds strongly
        typed networks only and raises ParameterError for it.
    cache_dir : str or Path, optional
        Engine cache folder (default :func:`default_cache_dir`).
    device : int
        CUDA device index.
    workspace_mb : int
        Builder workspace limit.

    Attributes
    ----------
    options : dict
        The options it was opened with (``max_batch``, ``fp16``,
        ``cache_dir``, ``device``, ``workspace_mb``): what a classifier
        learned from this one is opened with too.
    engine_source : {"cache", "built", "rebuilt"}
        Where the engine came from.
    engine_path : Path
        The cache file of the engine.
    key : EngineKey
    last_input_address : int
        Device address bound as the input by the last run (equals the
        caller's array address when a device batch was used in place).

    Raises
    ------
    MissingDependencyError
        tensorrt or cupy is missing (names the ``gpu`` extra).
    GpuUnavailableError
        No CUDA device.
    BundleError
        TensorRT rejects the graph, or the engine's inputs/outputs do not
        match ``model.json``.

    Notes
    -----
    :meth:`run` accepts numpy (returns numpy) or a device array (returns a
    cupy array, ordered on cupy's current stream). Calls are serialized by a
    lock; the engine runs on the backend's own CUDA stream, synchronized with
    the caller's stream by events.
    """

    name = "tensorrt"

    def __init__(self, bundle: Bundle, threads: int = 1, max_batch: int = 16, fp16: bool = False,
                 cache_dir: str | os.PathLike | None = None, device: int = 0, workspace_mb: int = 1024):
        check_threads(threads)
        check_options(max_batch=max_batch, fp16=fp16, cache_dir=cache_dir, device=device, workspace_mb=workspace_mb)
        super().__init__(bundle, threads)
        trt = require("tensorrt", extra=GPU_EXTRA)
        cp = require("cupy", extra=GPU_EXTRA)
        names, why = gpu_devices()
        if not names:
            raise GpuUnavailableError(f"the TensorRT backend needs a CUDA GPU: {why}")
        if device >= len(names):
            raise ParameterError(f"device {device} does not exist ({len(names)} CUDA device(s): {', '.join(names)})")
        self._trt, self._cp = trt, cp
        self.options = {"max_batch": int(max_batch), "fp16": bool(fp16), "cache_dir": cache_dir, "device": int(device),
                        "workspace_mb": int(workspace_mb)}
        self._closed = False
        self.device = int(device)
        self.precision = "fp16" if fp16 else "fp32"
        self._lock = threading.Lock()
        self.last_input_address = 0
        where = bundle.file_label(MODEL_ONNX)
        onnx_bytes = bundle.read_bytes(MODEL_ONNX)
        self.max_batch = engine_max_batch(onnx_bytes, bundle, where, max_batch)
        M, W = self._shape

        with cp.cuda.Device(self.device):
            props = cp.cuda.runtime.getDeviceProperties(self.device)
            gpu_name = props["name"].decode(errors="replace") if isinstance(props["name"], bytes) else str(props["name"])
            cc = f"{props['major']}.{props['minor']}"
            self.key = EngineKey.for_model(onnx_bytes, trt.__version__, gpu_name, cc, self.precision,
                                           bundle.input_name, M, W, self.max_batch, workspace_mb)
            self._logger = _shared_logger(trt)
            self._runtime = trt.Runtime(self._logger)
            cache = EngineCache(cache_dir)
            self.engine_path = cache.path(self.key)

            def build() -> bytes:
                log.info("building the TensorRT engine for %s on %s (%s, batch 1..%d); cached as %s",
                         where, gpu_name, self.precision, self.max_batch, self.engine_path)
                return _build_serialized(trt, self._logger, onnx_bytes, where, self.key, workspace_mb << 20)

            self._engine, self.engine_source = obtain_engine(cache, self.key, build,
                                                             self._runtime.deserialize_cuda_engine)
            self._bind(where)
            self._stream = cp.cuda.Stream(non_blocking=True)
            self._ev_in = cp.cuda.Event(disable_timing=True)
            self._ev_out = cp.cuda.Event(disable_timing=True)
            self._released = cp.cuda.Event(disable_timing=True)
            self._released.record(self._stream)
            self._probe(where)
        self.selection = f"tensorrt ({gpu_name}, TensorRT {trt.__version__}, {self.precision}, engine from {self.engine_source})"

    # -- setup -----------------------------------------------------------
    def _bind(self, where: str) -> None:
        trt, cp, engine, b = self._trt, self._cp, self._engine, self.bundle
        io = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            io[name] = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        inputs = [n for n, is_in in io.items() if is_in]
        outputs = [n for n, is_in in io.items() if not is_in]
        if inputs != [b.input_name]:
            raise BundleError(f"{where}: the TensorRT engine's inputs are {inputs}, expected [{b.input_name!r}]")
        for key, oname in (("probs", b.probs_name), ("embedding", b.embedding_name)):
            if oname is not None and oname not in outputs:
                raise BundleError(f"{where}: has no output named {oname!r} for '{key}' (outputs: {', '.join(outputs)})")
        self._context = engine.create_execution_context()
        if self._context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
        M, W = self._shape
        self._input = b.input_name
        self._in = cp.empty((self.max_batch, M, W), dtype=cp.float32)
        self._outs = {}
        for name in outputs:  # every output needs an address; unused ones still get a buffer
            shape = [self.max_batch if d < 0 else int(d) for d in engine.get_tensor_shape(name)]
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            buf = cp.empty(tuple(shape), dtype=dtype)
            self._outs[name] = buf
            if not self._context.set_tensor_address(name, int(buf.data.ptr)):
                raise RuntimeError(f"TensorRT rejected the address of output {name!r}")
        if b.embedding_name is not None:
            check_embedding_dtype(self._outs[b.embedding_name].dtype, where, b.embedding_name)
        probs = self._outs[b.probs_name]
        if probs.dtype != np.float32 or probs.ndim != 2:
            raise BundleError(f"{where}: output {b.probs_name!r} is {probs.dtype} {probs.shape}, expected float32 (batch, n_tags)")
        if probs.shape[1] != b.n_tags:
            raise BundleError(f"{where}: output {b.probs_name!r} gives {probs.shape[1]} probabilities but model.json "
                              f"lists {b.n_tags} labels")
        emb = self._outs.get(b.embedding_name) if b.embedding_name else None
        self.embedding_dim = int(emb.shape[1]) if emb is not None and emb.ndim == 2 else None

    def _probe(self, where: str) -> None:
        try:
            p = self.run(np.zeros((1, *self._shape), np.float32))
        except Exception as exc:
            raise BundleError(f"{where}: the TensorRT engine fails on a window of shape (1, {self._shape[0]}, "
                              f"{self._shape[1]}): {exc}") from exc
        if p.shape != (1, self.n_tags):
            raise BundleError(f"{where}: the TensorRT engine gives probabilities of shape {p.shape}, expected "
                              f"(1, {self.n_tags})")
        try:
            more = self.run(probe_windows(self._shape))
        except Exception as exc:
            raise BundleError(f"{where}: the TensorRT engine fails on a batch of 2 probe windows: {exc}") from exc
        check_probabilities(np.concatenate([p, more]), where, self.bundle.probs_name)

    # -- inference -------------------------------------------------------
    def _execute(self, address: int, batch: int) -> None:
        ctx = self._context
        if not ctx.set_input_shape(self._input, (batch, *self._shape)):
            raise RuntimeError(f"TensorRT rejected the input shape {(batch, *self._shape)}")
        if not ctx.set_tensor_address(self._input, int(address)):
            raise RuntimeError("TensorRT rejected the input address")
        self.last_input_address = int(address)
        if not ctx.execute_async_v3(self._stream.ptr):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT messages)")

    def _run_host(self, windows: np.ndarray, output: str) -> np.ndarray:
        w = self.check_windows(windows)
        B = w.shape[0]
        results = []
        with self._lock, self._cp.cuda.Device(self.device):
            self._stream.wait_event(self._released)
            for i in range(0, B, self.max_batch):
                chunk = w[i:i + self.max_batch]
                b = chunk.shape[0]
                self._in[:b].set(chunk, stream=self._stream)
                self._execute(self._in.data.ptr, b)
                results.append(self._outs[output][:b].get(stream=self._stream))
            self._released.record(self._stream)
        if not results:
            width = self._outs[output].shape[1]
            return np.zeros((0, width), self._outs[output].dtype)
        return results[0] if len(results) == 1 else np.concatenate(results)

    def _device_windows(self, windows):
        """A C-contiguous float32 cupy view of a device batch, validated (no copy when already so)."""
        cp = self._cp
        arr = windows if isinstance(windows, cp.ndarray) else cp.asarray(windows)  # __cuda_array_interface__
        if arr.ndim != 3 or tuple(arr.shape[1:]) != self._shape:
            raise ParameterError(f"windows must have shape (batch, {self._shape[0]}, {self._shape[1]}) "
                                 f"(n_mels, window_frames); got {tuple(arr.shape)}")
        if arr.device.id != self.device:
            raise ParameterError(f"windows are on CUDA device {arr.device.id} but the engine runs on device {self.device}")
        if arr.dtype != cp.float32 or not arr.flags.c_contiguous:
            arr = cp.ascontiguousarray(arr, dtype=cp.float32)  # on the device
        return arr

    def _run_device(self, windows, output: str):
        cp = self._cp
        with self._lock, cp.cuda.Device(self.device):
            caller = cp.cuda.get_current_stream()
            w = self._device_windows(windows)
            B = int(w.shape[0])
            width = self._outs[output].shape[1]
            result = cp.empty((B, width), dtype=self._outs[output].dtype)
            per_window = self._shape[0] * self._shape[1] * 4
            for i in range(0, B, self.max_batch):
                b = min(self.max_batch, B - i)
                self._ev_in.record(caller)
                self._stream.wait_event(self._ev_in)  # the windows are written
                self._stream.wait_event(self._released)  # the outputs of the last run are copied out
                address = int(w.data.ptr) + i * per_window
                if address % TENSOR_ALIGNMENT:
                    # TensorRT needs tensor addresses aligned to 256 bytes: copy the chunk to the engine's input
                    with self._stream:
                        self._in[:b] = w[i:i + b]
                    address = int(self._in.data.ptr)
                self._execute(address, b)
                self._ev_out.record(self._stream)
                caller.wait_event(self._ev_out)
                result[i:i + b] = self._outs[output][:b]  # device copy, on the caller's stream
                self._released.record(caller)
            # keep `w` alive until the engine has read it: the caller's stream now waits for the engine
            return result

    def _run(self, windows, output: str):
        if self._closed:
            raise StateError(f"{self.bundle.file_label(MODEL_ONNX)}: the backend was closed; load the classifier "
                             f"again to run the model")
        if hasattr(windows, "__cuda_array_interface__"):
            return self._run_device(windows, output)
        return self._run_host(windows, output)

    def run(self, windows):
        """Tag probabilities of a batch of windows.

        Parameters
        ----------
        windows : ndarray or device array, float32, shape (B, n_mels, W)
            numpy (copied to the device) or a cupy / ``__cuda_array_interface__``
            array on the engine's device (bound in place when C-contiguous
            float32).

        Returns
        -------
        ndarray (numpy input) or cupy.ndarray (device input), float32, shape (B, n_tags)
        """
        return self._run(windows, self.bundle.probs_name)

    def embed(self, windows):
        """Embeddings of a batch of windows, float32 (B, embedding_dim); numpy or cupy like :meth:`run`."""
        if not self.bundle.embedding_name:
            raise NotImplementedError(f"{self.bundle.file_label(MODEL_ONNX)} has no embedding output")
        return self._run(windows, self.bundle.embedding_name)

    def close(self) -> None:
        """Release the engine; any later :meth:`run` or :meth:`embed` raises :class:`~rtclassify.errors.StateError`."""
        with self._lock:
            self._closed = True
            if getattr(self, "_stream", None) is not None:
                self._stream.synchronize()
            self._context = None
            self._engine = None
            self._outs = {}
            self._in = None

    def __repr__(self) -> str:
        return (f"<TensorRTBackend {self.bundle.name!r} device={self.device} {self.precision} "
                f"max_batch={self.max_batch} engine={self.engine_source}>")


#: the alignment TensorRT requires of a tensor's address (IExecutionContext.setTensorAddress), bytes
TENSOR_ALIGNMENT = 256

#: the options of :class:`TensorRTBackend` (beside ``threads``)
OPTIONS = ("max_batch", "fp16", "cache_dir", "device", "workspace_mb")


def check_options(**options) -> None:
    """Refuse unknown TensorRT option names and bad values (ParameterError naming them), on any machine."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ParameterError(f"unknown TensorRT option(s): {', '.join(unknown)} (known: {', '.join(OPTIONS)})")

    def integer(name, lo, hi):
        v = options[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise ParameterError(f"{name} must be an integer from {lo} to {hi} (got {v!r})")

    if "max_batch" in options:
        integer("max_batch", 1, 65536)
    if "device" in options:
        integer("device", 0, 1023)
    if "workspace_mb" in options:
        integer("workspace_mb", 1, 1 << 20)
    if "fp16" in options and not isinstance(options["fp16"], (bool, np.bool_)):
        raise ParameterError(f"fp16 must be True or False (got {options['fp16']!r})")
    cache_dir = options.get("cache_dir")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise ParameterError(f"cache_dir must be a folder path or None (got {cache_dir!r})")


def check_available() -> None:
    """Raise unless the TensorRT backend can run here, naming every missing piece (as ``rtclassify backends``:
    no GPU, tensorrt not installed, cupy not installed).

    Raises
    ------
    MissingDependencyError
        tensorrt or cupy is not installed (the message also names a missing GPU).
    GpuUnavailableError
        Both are installed but there is no CUDA GPU.
    """
    avail = tensorrt_availability()
    if avail.available:
        return
    text = f"the TensorRT backend needs a CUDA GPU, tensorrt and cupy: {avail.reason}"
    if not (gpu.package_available("tensorrt") and gpu.package_available("cupy")):
        raise MissingDependencyError(text)
    raise GpuUnavailableError(text)


def select_gpu_backend(bundle: Bundle, name: str, threads: int = 1, **options):
    """The GPU half of :func:`rtclassify.model.backends.make_backend`.

    Parameters
    ----------
    name : {"tensorrt", "auto"}
    **options
        :class:`TensorRTBackend` options (``max_batch``, ``fp16``, ``cache_dir``,
        ``device``, ``workspace_mb``).

    Returns
    -------
    backend : TensorRTBackend or None
        None for ``"auto"`` when TensorRT cannot be used here.
    note : str
        Which backend ``"auto"`` picked and why (logged at INFO).

    Raises
    ------
    MissingDependencyError, GpuUnavailableError, BundleError
        For ``"tensorrt"`` when it cannot be used (the reason named).
    """
    check_options(**options)  # a mistyped option is an error on every machine, not only on one with a GPU
    if name == "tensorrt":
        check_available()
        backend = TensorRTBackend(bundle, threads=threads, **options)
        return backend, backend.selection
    avail = tensorrt_availability()
    if not avail.available:
        note = f"auto: onnx (ONNX Runtime on the CPU; TensorRT not used: {avail.reason})"
        log.info("backend %s", note)
        return None, note
    try:
        backend = TensorRTBackend(bundle, threads=threads, **options)
    except ParameterError:
        raise  # the caller's mistake (a device that does not exist): said, not hidden behind the fallback
    except Exception as exc:  # noqa: BLE001 - any failure to start TensorRT (out of GPU memory included)
        first = (str(exc).splitlines() or [""])[0][:300]
        what = first if isinstance(exc, RtclassifyError) else f"{type(exc).__name__}: {first}".rstrip(": ")
        note = f"auto: onnx (ONNX Runtime on the CPU; TensorRT failed: {what})"
        log.warning("backend %s", note)
        return None, note
    backend.selection = f"auto: {backend.selection}"
    log.info("backend %s", backend.selection)
    return backend, backend.selection
