"""Shared helpers of the benchmark suites.

Budgets are real-time ratios or ratios against peers measured in the same run;
absolute times are printed but never asserted.
"""

import time

import pytest


def per_call_seconds(fn, calls: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` mean time of one call of ``fn`` over ``calls`` calls."""
    best = float("inf")
    fn()  # warm up
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


@pytest.fixture
def report(capsys):
    """Prints a line to the terminal even under output capture."""

    def _print(line: str):
        with capsys.disabled():
            print(f"\n[bench] {line}", flush=True)

    return _print
