"""The streaming engine: :class:`StreamSession` (synchronous, no threads), :class:`MultiStreamSession`
(several channels, one batched model run per hop) and the threaded ``Listener``."""

from __future__ import annotations

from .multistream import MultiStreamSession
from .session import FrameResult, StreamSession

__all__ = ["StreamSession", "MultiStreamSession", "FrameResult", "Listener"]


def __getattr__(name: str):
    if name == "Listener":
        from .listener import Listener

        return Listener
    raise AttributeError(f"module 'rtclassify.engine' has no attribute {name!r}")
