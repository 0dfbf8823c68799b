"""The streaming engine: :class:`StreamSession` (synchronous, no threads) and the threaded ``Listener``."""

from __future__ import annotations

from .session import FrameResult, StreamSession

__all__ = ["StreamSession", "FrameResult", "Listener"]


def __getattr__(name: str):
    if name == "Listener":
        from .listener import Listener

        return Listener
    raise AttributeError(f"module 'rtclassify.engine' has no attribute {name!r}")
