"""Model bundles, inference backends and the :class:`Classifier`.

Nothing here imports torch: the torch backend is loaded only when asked for.
"""

from __future__ import annotations

from .backends import BACKENDS, Backend, OnnxBackend, make_backend
from .bundle import Bundle, default_bundle_path, load_bundle
from .classifier import Classifier, TagResult

__all__ = ["Bundle", "load_bundle", "default_bundle_path", "Backend", "OnnxBackend", "make_backend", "BACKENDS",
           "Classifier", "TagResult"]
