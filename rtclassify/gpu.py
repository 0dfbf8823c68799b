"""What the GPU path can use here, and why not when it cannot.

Plain checks, no heavy imports: the NVIDIA driver is probed through
``ctypes`` (``cuInit`` / ``cuDeviceGetCount`` of ``libcuda``), optional
packages through :func:`importlib.util.find_spec`. The ``rtclassify backends``
command, ``make_backend(..., "auto")`` and the GPU tests use these answers.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from dataclasses import dataclass

from .errors import RtclassifyError

__all__ = [
    "GpuUnavailableError",
    "Availability",
    "gpu_devices",
    "cuda_build",
    "package_available",
    "cuda_frontend_availability",
    "tensorrt_availability",
]

GPU_EXTRA = "gpu"


class GpuUnavailableError(RtclassifyError, RuntimeError):
    """No usable CUDA device (no GPU, no driver, or a build without CUDA); the message says which."""


@dataclass(frozen=True)
class Availability:
    """Whether a component can be used, and the exact reason when it cannot.

    Attributes
    ----------
    available : bool
    reason : str
        Empty when available; otherwise every missing piece, joined by "; ".
    detail : str
        Extra facts when available (device names, versions).
    """

    available: bool
    reason: str = ""
    detail: str = ""


def _driver_library() -> ctypes.CDLL | None:
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so", "libcuda.dylib")
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _driver_error(lib, rc: int) -> str:
    text = ctypes.c_char_p()
    try:
        if lib.cuGetErrorString(int(rc), ctypes.byref(text)) == 0 and text.value:
            return f"{text.value.decode(errors='replace')} (error {rc})"
    except AttributeError:
        pass
    return f"error {rc}"


def gpu_devices() -> tuple[list[str], str]:
    """CUDA devices the NVIDIA driver sees.

    Returns
    -------
    names : list of str
        One name per device (empty without a GPU).
    reason : str
        Why the list is empty ("" when it is not): no driver library, the
        driver's ``cuInit`` error, or zero devices.
    """
    lib = _driver_library()
    if lib is None:
        return [], "no GPU: the NVIDIA driver library (libcuda) is not installed"
    rc = lib.cuInit(0)
    if rc != 0:
        return [], f"no GPU: the NVIDIA driver cannot start ({_driver_error(lib, rc)})"
    count = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0:
        return [], f"no GPU: cuDeviceGetCount failed ({_driver_error(lib, rc)})"
    names = []
    for i in range(count.value):
        dev = ctypes.c_int(0)
        buf = ctypes.create_string_buffer(256)
        if lib.cuDeviceGet(ctypes.byref(dev), i) == 0 and lib.cuDeviceGetName(buf, 256, dev) == 0:
            names.append(buf.value.decode(errors="replace"))
        else:
            names.append(f"CUDA device {i}")
    if not names:
        return [], "no GPU: the NVIDIA driver sees 0 devices"
    return names, ""


def cuda_build() -> bool:
    """True when the native core was compiled with CUDA (``build_info()['cuda']``)."""
    from ._core import build_info

    return bool(build_info()["cuda"])


def cuda_runtime() -> tuple[bool, str]:
    """(usable, why not) of the CUDA runtime the native core links: it needs a driver at least as new as
    the CUDA it was built with, so a driver that sees a GPU is not enough (CUDA builds only)."""
    from . import _core

    ok, why = _core._cuda_device_available()
    return bool(ok), str(why)


def _cuda_version() -> str:
    from ._core import build_info

    return str(build_info().get("cuda_version") or "?")


def package_available(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing(module: str, pip_name: str) -> str:
    return f"{pip_name} is not installed (pip install 'rtclassify[{GPU_EXTRA}]')"


def cuda_frontend_availability() -> Availability:
    """Can :class:`rtclassify.CudaMelFrontend` run here?"""
    reasons = []
    if not cuda_build():
        reasons.append("this build of rtclassify has no CUDA (build_info()['cuda'] is False; rebuild with nvcc "
                       "present and RTCLASSIFY_CUDA=AUTO or ON)")
    names, why = gpu_devices()
    if not names:
        reasons.append(why)
    elif cuda_build():
        ok, runtime_why = cuda_runtime()
        if not ok:
            reasons.append(f"the CUDA runtime of this build cannot use the GPU: {runtime_why} (update the NVIDIA "
                           f"driver to one that supports CUDA {_cuda_version()})")
    if not package_available("cupy"):
        reasons.append(_missing("cupy", "cupy"))
    if reasons:
        return Availability(False, "; ".join(reasons))
    return Availability(True, detail=", ".join(names))


def tensorrt_availability() -> Availability:
    """Can the TensorRT backend run here (a GPU, tensorrt and cupy)?"""
    reasons = []
    names, why = gpu_devices()
    if not names:
        reasons.append(why)
    if not package_available("tensorrt"):
        reasons.append(_missing("tensorrt", "tensorrt"))
    if not package_available("cupy"):
        reasons.append(_missing("cupy", "cupy"))
    if reasons:
        return Availability(False, "; ".join(reasons))
    return Availability(True, detail=", ".join(names))
