"""Shared helpers of the benchmark suites.

Budgets are real-time ratios or ratios against peers measured in the same run;
absolute times are printed but not asserted, except the sound-to-message latency
of the JACK rig, whose contract is in milliseconds (DESIGN.md, latency).

``RTCLASSIFY_REQUIRE_RIG=1`` (set by ``.ci/run``) makes the benchmarks fail
where they would skip the JACK rig or play synthetic audio for missing
recordings.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

if str(Path(__file__).resolve().parent.parent / "tests") not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))  # the shared test helpers (_jackd)

REPO = Path(__file__).resolve().parent.parent
#: real recordings (the sms-tools sounds) that the CPU benchmarks play when they are present
REAL = Path(os.environ.get("RTCLASSIFY_REAL_DATA", REPO.parent / "shared" / "data" / "sms-tools"))
CLIPS = ("orchestra.wav", "piano.wav", "speech-male.wav", "sax-phrase.wav", "organ-C3.wav")


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


def bench_bundle_path() -> Path | None:
    """The bundle named by ``RTCLASSIFY_BENCH_BUNDLE``, else the shipped default bundle, else the training
    developer's dev bundle (datasets/dev_bundle); None when there is none."""
    from rtclassify.model.bundle import default_bundle_path

    env = os.environ.get("RTCLASSIFY_BENCH_BUNDLE")
    if env:
        return Path(env)
    for p in (default_bundle_path(), REPO / "datasets" / "dev_bundle"):
        if (p / "model.json").is_file():
            return p
    return None


@pytest.fixture(scope="module")
def clf():
    """A Classifier on the :func:`bench_bundle_path` bundle with ONNX Runtime on one thread (skips without one)."""
    from rtclassify.model.backends import OnnxBackend
    from rtclassify.model.bundle import load_bundle
    from rtclassify.model.classifier import Classifier

    path = bench_bundle_path()
    if path is None:
        pytest.skip("no model bundle: neither rtclassify/data/default_bundle nor datasets/dev_bundle exists")
    bundle = load_bundle(path)
    return Classifier(bundle, OnnxBackend(bundle, threads=1))


def synthetic_audio(seconds: float, rate: int) -> np.ndarray:
    """Stand-in for the real recordings: a 220 Hz tone gated at 0.25 Hz over quiet noise (float32). Under
    ``RTCLASSIFY_REQUIRE_RIG=1`` (CI) the recordings are required: the benchmark fails instead."""
    from _jackd import REQUIRE_ENV, rig_required

    if rig_required():
        pytest.fail(f"the recordings the benchmarks play are missing: {REAL} ({REQUIRE_ENV}=1: required here; "
                    f"set RTCLASSIFY_REAL_DATA)")
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.25 * t) > 0)
            + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture
def report(capsys):
    """Prints a line to the terminal even under output capture."""

    def _print(line: str):
        with capsys.disabled():
            print(f"\n[bench] {line}", flush=True)

    return _print
