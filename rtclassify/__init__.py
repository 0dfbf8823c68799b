"""rtclassify: real-time music classification.

Light at import: only numpy and the native core are loaded here. The model,
engine and I/O layers load on first use.
"""

from __future__ import annotations

from . import errors
from ._core import MelFrontend, SampleRing, build_info
from ._lazy import lazy_getattr
from .errors import RtclassifyError

__version__ = build_info()["version"]

_LAZY = {
    "Classifier": ("rtclassify.model.classifier", "Classifier"),
    "Listener": ("rtclassify.engine.listener", "Listener"),
    # CUDA builds only; elsewhere the access raises AttributeError saying the build has no CUDA.
    "CudaMelFrontend": ("rtclassify.cuda_frontend", "CudaMelFrontend"),
}

__all__ = ["MelFrontend", "SampleRing", "build_info", "errors", "RtclassifyError",
           *(k for k in _LAZY if k != "CudaMelFrontend" or build_info()["cuda"])]

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
