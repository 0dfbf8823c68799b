"""Lazy module attributes (PEP 562), so that ``import rtclassify`` stays light."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_getattr(module_name: str, table: dict[str, tuple[str, str]], namespace: dict) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``table[name] = (module, attribute)`` on first use.

    The value is cached in ``namespace`` (the module's ``globals()``), so later lookups are plain.
    """

    def __getattr__(name: str):
        if name in table:
            module, attr = table[name]
            value = getattr(importlib.import_module(module), attr)
            namespace[name] = value
            return value
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    return __getattr__
