"""Denormal samples: the native processing calls read and write them as zero (flush-to-zero and denormals-are-zero
for the span of each call), so a decaying tail costs what silence costs, and give the caller's floating-point mode
back (a Python host's own arithmetic keeps its denormals)."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from rtclassify import _core

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"),
                                reason="FTZ/DAZ are set through the SSE control register (x86)")

TINY = np.float32(1e-40)  # a float32 denormal (under 1.18e-38)


def _denormal_tail(n: int) -> np.ndarray:
    x = np.full(n, TINY, np.float32)
    x[::2] = -TINY
    assert x[1] != 0 and abs(x[1]) < np.finfo(np.float32).tiny
    return x


def test_the_resampler_reads_denormal_samples_as_zero():
    """The float resampler's dot products slowed 1.3-2x on a denormal tail (review r2, AMD EPYC; far more per
    operation on many Intel cores), and wrote denormals out."""
    x = _denormal_tail(48000)
    out = _core.Resampler(48000, 16000).process(x, last=True)
    zeros = _core.Resampler(48000, 16000).process(np.zeros_like(x), last=True)
    np.testing.assert_array_equal(out, zeros)


def test_the_frontend_and_the_trackers_read_denormal_samples_as_zero():
    x = _denormal_tail(16000)
    fe, fz = _core.MelFrontend(16000, 1024, 256, 128), _core.MelFrontend(16000, 1024, 256, 128)
    np.testing.assert_array_equal(fe.push(x), fz.push(np.zeros_like(x)))
    a = _core.TechniqueTracker(16000).process(x)
    b = _core.TechniqueTracker(16000).process(np.zeros_like(x))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_the_caller_s_floating_point_mode_is_given_back():
    _core.Resampler(48000, 16000).process(_denormal_tail(4800), last=True)
    _core.TechniqueTracker(16000).process(_denormal_tail(1600))
    _core.MelFrontend(16000, 1024, 256, 128).push(_denormal_tail(2048))
    a = np.array([1e-38], np.float32)
    assert (a * np.float32(1e-3))[0] != 0  # a denormal result, not flushed: the host's mode is as it was
    assert (np.array([1e-300]) * 1e-10)[0] != 0
