"""Batched streaming log-mel frontend on a CUDA GPU (CUDA builds only).

``rtclassify.CudaMelFrontend(streams=S, **frontend_config)`` turns the new
samples of S streams into log-mel frames on the GPU with the per-frame math of
the CPU :class:`rtclassify.MelFrontend` (shared ``__host__ __device__`` code,
identical tables). Input: a host numpy array or any device array exposing
``__cuda_array_interface__`` (cupy, ...), read in place; output: a cupy array
wrapping device memory, so frames can go straight to the TensorRT backend.

In a build without CUDA, ``rtclassify.CudaMelFrontend`` raises
:class:`AttributeError` saying so (``hasattr`` is False).
"""

from __future__ import annotations

import numpy as np

from . import _core
from .errors import ParameterError, require
from .gpu import GPU_EXTRA, GpuUnavailableError, gpu_devices

__all__ = ["CudaMelFrontend"]

NO_CUDA_BUILD = (
    "rtclassify.CudaMelFrontend is not available: this build of rtclassify has no CUDA "
    "(build_info()['cuda'] is False). Rebuild with nvcc on the PATH (RTCLASSIFY_CUDA=AUTO, the "
    "default, or ON) to get it."
)


def _cupy():
    return require("cupy", extra=GPU_EXTRA)


class _StreamHandle:
    """A raw cudaStream_t handle exposed through the CUDA stream protocol."""

    def __init__(self, handle: int):
        self.handle = int(handle)

    def __cuda_stream__(self):
        return (0, self.handle)


def _external_stream(cupy, handle: int):
    """A cupy stream object for a raw handle (``Stream.from_external``; ``ExternalStream`` before cupy 14)."""
    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None:
        return from_external(_StreamHandle(handle))
    return cupy.cuda.ExternalStream(int(handle))


def _cupy_stream(cupy, stream):
    """The cupy stream object for ``stream`` (None: cupy's current stream)."""
    if stream is None:
        return cupy.cuda.get_current_stream()
    if isinstance(stream, (int, np.integer)) and not isinstance(stream, bool):
        return _external_stream(cupy, int(stream))
    if getattr(stream, "ptr", None) is None:
        raise ParameterError(f"stream must be a cupy Stream, a cudaStream_t handle (int) or None (got {stream!r})")
    return stream


def _same_stream(a: int, b: int) -> bool:
    # 0 and 1 (cudaStreamLegacy) both mean the legacy default stream
    return a == b or {a, b} <= {0, 1}


class _CudaMelFrontend:
    """Streaming log-mel frontend for S streams on one GPU.

    Every :meth:`push` gives each stream the same number ``n`` of new samples
    (``n`` may change between calls). Stream ``s`` yields the frames a
    :class:`rtclassify.MelFrontend` fed the same samples yields (frame ``i``
    covers samples ``[i*hop_length, i*hop_length + n_fft)``), within the
    rounding of the GPU's arithmetic (it fuses multiply-adds). NaN/Inf
    samples are replaced by 0 and counted per stream.

    The tables are uploaded once; each stream's pending samples (fewer than
    ``n_fft``) stay on the device. A push allocates no device memory in the
    frontend unless its block is longer than ``max_block`` and every earlier
    block (then the buffers grow, once, with a stream synchronization); the
    returned array comes from cupy's memory pool unless ``out`` is given.

    Parameters
    ----------
    streams : int
        Number of streams S (1 to 65535).
    max_block : int
        Longest block (samples per stream) pushed without a device allocation.
    device : int, optional
        CUDA device index (default: cupy's current device).
    **frontend_config
        The parameters of :class:`rtclassify.MelFrontend` (``sample_rate``,
        ``n_fft``, ``hop_length``, ``n_mels``, ``fmin``, ``fmax``, ...),
        validated the same way.

    Raises
    ------
    ValueError
        A parameter is out of range; the message names it.
    GpuUnavailableError (a RuntimeError)
        "no CUDA device: ..." when no GPU is visible, with the reason.
    MissingDependencyError
        cupy is not installed (names the ``gpu`` extra).

    Notes
    -----
    Work is issued on the given CUDA stream (default: cupy's current stream,
    so cupy operations on the output are ordered after it). Not thread-safe.
    """

    def __init__(self, streams: int, *, max_block: int = 4096, device: int | None = None, **frontend_config):
        if isinstance(streams, bool) or not isinstance(streams, (int, np.integer)) or not 1 <= streams <= 65535:
            raise ParameterError(f"streams: must be an integer from 1 to 65535 (got {streams!r})")
        if isinstance(max_block, bool) or not isinstance(max_block, (int, np.integer)) or max_block < 1:
            raise ParameterError(f"max_block: must be an integer >= 1 (got {max_block!r})")
        if device is not None and (isinstance(device, bool) or not isinstance(device, (int, np.integer)) or device < 0):
            raise ParameterError(f"device: must be a CUDA device index >= 0 or None (got {device!r})")
        missing = [k for k in ("sample_rate", "n_fft", "hop_length", "n_mels") if k not in frontend_config]
        if missing:
            raise ParameterError(f"{missing[0]}: missing frontend parameter (needed: sample_rate, n_fft, hop_length, n_mels)")
        # The CPU frontend validates the parameters (same messages) and resolves the defaults.
        config = _core.MelFrontend(**frontend_config).config
        ok, runtime_why = _core._cuda_device_available()
        if not ok:
            _, why = gpu_devices()
            raise GpuUnavailableError(f"no CUDA device: {why.removeprefix('no GPU: ') if why else runtime_why}")
        self._cp = cp = _cupy()
        if device is None:
            # cupy's current device (the native code links its own CUDA runtime, whose
            # current device is not cupy's)
            device = cp.cuda.Device().id
        try:
            self._native = _core._CudaMelFrontend(int(streams), config, int(max_block), int(device))
        except RuntimeError as exc:
            if str(exc).startswith("no CUDA device"):
                raise GpuUnavailableError(str(exc)) from None
            raise
        self._config = config
        self._n_mels = int(config["n_mels"])

    # -- properties ------------------------------------------------------
    @property
    def streams(self) -> int:
        """Number of streams S."""
        return self._native.streams

    @property
    def config(self) -> dict:
        """Frontend parameters; ``MelFrontend(**config)`` builds the matching CPU frontend."""
        return dict(self._config)

    @property
    def n_mels(self) -> int:
        return self._n_mels

    @property
    def hop_length(self) -> int:
        return int(self._config["hop_length"])

    @property
    def n_fft(self) -> int:
        return int(self._config["n_fft"])

    @property
    def sample_rate(self) -> float:
        return float(self._config["sample_rate"])

    @property
    def device(self) -> int:
        """CUDA device index."""
        return self._native.device

    @property
    def max_block(self) -> int:
        """Longest block pushed without a device allocation (grows with longer blocks)."""
        return self._native.max_block

    @property
    def pending(self) -> int:
        """Samples each stream keeps for its next frames (< n_fft)."""
        return self._native.pending

    @property
    def frames_emitted(self) -> int:
        """Frames per stream since construction or :meth:`reset`."""
        return self._native.frames_emitted

    @property
    def samples_consumed(self) -> int:
        """Samples per stream since construction or :meth:`reset`."""
        return self._native.samples_consumed

    @property
    def host_uploads(self) -> int:
        """Pushes whose samples came from host memory (device input never counts)."""
        return self._native.host_uploads

    @property
    def nonfinite_replaced(self) -> np.ndarray:
        """NaN/Inf samples replaced by 0, per stream, uint64 (S,). Waits for the last push."""
        return self._native.nonfinite_replaced

    def frames_for(self, n: int) -> int:
        """Frames per stream a push of ``n`` samples per stream returns."""
        return self._native.frames_for(int(n))

    # -- work ------------------------------------------------------------
    def push(self, block, out=None, stream=None):
        """Push ``n`` new samples of every stream; return the frames they complete.

        Parameters
        ----------
        block : ndarray or device array, shape (S, n)
            Host numpy (float32, float64 or int16; int16 is scaled to [-1, 1))
            or an array exposing ``__cuda_array_interface__`` on this
            frontend's device. A float32 device array whose rows have unit
            stride is read in place (no copy); others are converted on the
            device by cupy. Never copied through host memory.
        out : cupy.ndarray, shape (S, frames_for(n), n_mels), float32, optional
            C-contiguous device buffer to write into.
        stream : cupy.cuda.Stream or int, optional
            CUDA stream for the work (default: cupy's current stream). When a
            device input names another stream in its interface, this stream
            first waits for it (on the device).

        Returns
        -------
        cupy.ndarray, shape (S, n_frames, n_mels), float32
            The new frames of every stream (``out`` when given).
        """
        cp = self._cp
        S = self.streams
        st = _cupy_stream(cp, stream)
        handle = int(st.ptr)
        cai = getattr(block, "__cuda_array_interface__", None)
        # Conversions and the output are allocated on the work's stream, so
        # cupy's stream-ordered pool never hands their memory out early.
        with cp.cuda.Device(self.device), st:
            if cai is not None:
                shape = tuple(cai["shape"])
                if len(shape) != 2 or shape[0] != S:
                    raise ParameterError(f"block: must have shape (streams={S}, n) (got {shape})")
                n = int(shape[1])
                self._order_with_producer(cp, cai, st, before=True)
                ptr, row_stride, block = self._device_view(cp, block, cai, n)
            else:
                host = np.asarray(block)
                if host.ndim != 2 or host.shape[0] != S:
                    raise ParameterError(f"block: must have shape (streams={S}, n) (got {host.shape})")
                host = self._host_float32(host)
                n = int(host.shape[1])
            frames = self._native.frames_for(n)
            out = self._output(cp, out, frames)
            out_ptr = int(out.data.ptr) if out.size else 0
            if cai is not None:
                self._native.push_ptr(ptr, n, row_stride, True, out_ptr, frames, handle)
                self._order_with_producer(cp, cai, st, before=False)
            else:
                self._native.push_host(host, out_ptr, frames, handle)
        return out

    def reset(self, stream=None) -> None:
        """Forget the pending samples and zero the counters (issued on ``stream``)."""
        self._native.reset(int(_cupy_stream(self._cp, stream).ptr))

    # -- helpers ---------------------------------------------------------
    @staticmethod
    def _host_float32(host: np.ndarray) -> np.ndarray:
        if host.dtype == np.float32:
            return np.ascontiguousarray(host)
        if host.dtype == np.float64:
            return np.ascontiguousarray(host, dtype=np.float32)
        if host.dtype == np.int16:
            return host.astype(np.float32) * np.float32(1.0 / 32768.0)
        raise ParameterError(f"block: dtype must be float32, float64 or int16 (got {host.dtype})")

    @staticmethod
    def _order_with_producer(cp, cai: dict, st, before: bool) -> None:
        """Order ``st`` and the stream a device block's interface names (its producer), if they differ.

        ``before``: ``st`` waits until the block is written. After the push: the producer waits for the work
        that reads the block, since cupy's pool hands a freed block's memory out again in the producer's
        stream order (as torch's ``record_stream``).
        """
        producer = cai.get("stream")
        if producer is None or _same_stream(int(producer), int(st.ptr)):
            return
        other = _external_stream(cp, int(producer))
        event = cp.cuda.Event(disable_timing=True)
        if before:
            event.record(other)
            st.wait_event(event)
        else:
            event.record(st)
            other.wait_event(event)

    def _device_view(self, cp, block, cai: dict, n: int):
        """(pointer, row stride in floats, object kept alive) of a float32 device array with unit inner stride."""
        typestr = cai["typestr"]
        strides = cai.get("strides")
        direct = typestr in ("<f4", "=f4") and (
            strides is None or (strides[1] == 4 and strides[0] % 4 == 0 and strides[0] >= 4 * n))
        if direct:
            arr = block
            if isinstance(block, cp.ndarray) and block.device.id != self.device:
                raise ParameterError(f"block: is on CUDA device {block.device.id} but the frontend runs on device "
                                     f"{self.device}")
            ptr = int(cai["data"][0])
            row_stride = n if strides is None else int(strides[0]) // 4
            return ptr, max(row_stride, n), arr
        arr = cp.asarray(block)
        if arr.dtype == cp.int16:
            arr = arr.astype(cp.float32) * cp.float32(1.0 / 32768.0)
        elif arr.dtype in (cp.float32, cp.float64):
            arr = cp.ascontiguousarray(arr, dtype=cp.float32)
        else:
            raise ParameterError(f"block: dtype must be float32, float64 or int16 (got {arr.dtype})")
        return int(arr.data.ptr), n, arr

    def _output(self, cp, out, frames: int):
        shape = (self.streams, frames, self._n_mels)
        if out is None:
            return cp.empty(shape, dtype=cp.float32)
        if not isinstance(out, cp.ndarray):
            raise ParameterError(f"out: must be a cupy array (got {type(out).__name__})")
        if out.dtype != cp.float32 or tuple(out.shape) != shape or not out.flags.c_contiguous:
            raise ParameterError(f"out: must be a C-contiguous float32 cupy array of shape {shape} "
                                 f"(got {out.dtype} {tuple(out.shape)})")
        if out.device.id != self.device:
            raise ParameterError(f"out: is on CUDA device {out.device.id} but the frontend runs on device {self.device}")
        return out

    def __repr__(self) -> str:
        c = self._config
        return (f"<CudaMelFrontend streams={self.streams} device={self.device} sr={c['sample_rate']:g} "
                f"n_fft={c['n_fft']} hop={c['hop_length']} n_mels={c['n_mels']}>")


_CudaMelFrontend.__name__ = _CudaMelFrontend.__qualname__ = "CudaMelFrontend"


def __getattr__(name: str):
    if name == "CudaMelFrontend":
        if not hasattr(_core, "_CudaMelFrontend"):
            # (obj=None: no "Did you mean: '_CudaMelFrontend'?" after the message, which named a private class)
            raise AttributeError(NO_CUDA_BUILD, name=name, obj=None)
        return _CudaMelFrontend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
