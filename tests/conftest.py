"""Shared pytest hooks.

Tests marked ``gpu`` need an NVIDIA GPU: they skip, with the reason, where
the NVIDIA driver sees no device. With ``RTCLASSIFY_TEST_FORCE_CUDA=1`` every
skip of a ``gpu`` test (no GPU, a missing cupy/tensorrt, a build without CUDA)
is turned into a failure, so a GPU machine cannot pass them by skipping.
"""

from __future__ import annotations

import os

import pytest

FORCE_ENV = "RTCLASSIFY_TEST_FORCE_CUDA"

# shared helper modules whose asserts should report their values like the tests' own
pytest.register_assert_rewrite("_trackers", "_streaming")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    """The small test bundle (tests/_rtc_bundle.py), written once per test module."""
    pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")
    from _rtc_bundle import write_bundle

    return write_bundle(tmp_path_factory.mktemp("b") / "bundle")


@pytest.fixture(scope="module")
def clf(bundle_dir):
    """A Classifier on the small test bundle, one per test module (a module may define its own ``clf``)."""
    from rtclassify.model.classifier import Classifier

    return Classifier.load(bundle_dir)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A data set built by the data builder in seconds (0.003 h of 2-s clips, seed 7); skips without its tools."""
    pytest.importorskip("scipy", reason="the data builder's filters need scipy (the train extra)")
    from rtclassify.errors import MissingDependencyError
    from rtclassify.train.data import build as B

    try:
        B.check_dependencies()
    except MissingDependencyError as exc:
        pytest.skip(f"data tools missing: {exc}")
    data = tmp_path_factory.mktemp("tiny") / "data"
    B.build_dataset(data, 0.003, 7, clip_seconds=2.0, workers=1, progress=False)
    return data


def gpu_forced() -> bool:
    """True when gpu tests must run (``RTCLASSIFY_TEST_FORCE_CUDA=1``)."""
    return os.environ.get(FORCE_ENV, "") == "1"


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is None:
        return
    from rtclassify.gpu import gpu_devices

    names, why = gpu_devices()
    if not names:
        pytest.skip(f"needs an NVIDIA GPU: {why}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and gpu_forced() and item.get_closest_marker("gpu") is not None):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3 else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"gpu test skipped but {FORCE_ENV}=1 demands that it runs: {reason}"
