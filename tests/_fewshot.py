"""Test helper: the few-shot data builder's renderers replaced by fakes that record their calls."""

from __future__ import annotations

import numpy as np


def fake_renderers(monkeypatch) -> list:
    """Patch :mod:`rtclassify.learn.fewshot`'s support and query renderers (and the render context) with fakes
    that render silence; returns the list their calls are appended to, as ``(kind, task name, task seed,
    count)`` with kind ``"support"`` or ``"queries"``."""
    from rtclassify.learn import fewshot

    calls: list = []

    class Context:
        def __init__(self, cache=None):
            pass

        def close(self):
            pass

    def support(task, ctx, tseed, pool):
        calls.append(("support", task.name, tseed, pool))
        return [np.zeros(10, np.float32)]

    def queries(task, ctx, tseed, n_query, src):
        calls.append(("queries", task.name, tseed, n_query))
        return [(np.zeros(10, np.float32), np.zeros(10, np.float32))]

    monkeypatch.setattr("rtclassify.train.data.build.WorkerContext", Context)
    monkeypatch.setattr(fewshot, "_support", support)
    monkeypatch.setattr(fewshot, "_queries", queries)
    return calls
