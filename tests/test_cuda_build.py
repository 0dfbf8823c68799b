"""The CUDA build and the math the CUDA path shares with the CPU, checked without a GPU.

The CUDA kernel spreads each frame over a thread block (window_pack_one per
j, fft_stage_butterfly per butterfly of each stage, rfft_bin_power per bin,
mel_band per band); the CUDA frontend keeps each stream's pending samples in
row buffers driven by BatchStreamPlan. ``_core._internal`` runs both in
those orders on the CPU: they must give the CPU frontend's frames bit for bit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtclassify
from rtclassify import _core
from rtclassify.errors import RtclassifyError
from rtclassify.gpu import GpuUnavailableError, gpu_devices

BASE = dict(sample_rate=16000, n_fft=512, hop_length=256, n_mels=128, fmin=0.0, fmax=8000.0)


def _config(**kw):
    return rtclassify.MelFrontend(**{**BASE, **kw}).config


def _signal(n, seed=0, streams=None):
    rng = np.random.default_rng(seed)
    shape = (n,) if streams is None else (streams, n)
    x = 0.3 * rng.standard_normal(shape)
    t = np.arange(n) / 16000.0
    x = x + 0.5 * np.sin(2 * np.pi * 440.0 * t)
    return x.astype(np.float32)


# ----------------------------------------------------------------------
# what was compiled
# ----------------------------------------------------------------------
def test_build_info_cuda_matches_nvcc_at_build():
    if os.environ.get("RTCLASSIFY_EXPECT_CUDA") != "1":
        pytest.skip("RTCLASSIFY_EXPECT_CUDA=1 is not set (CI sets it: there the build and the tests share one PATH)")
    info = rtclassify.build_info()
    have_nvcc = shutil.which("nvcc") is not None
    assert info["cuda"] is have_nvcc, f"nvcc {'is' if have_nvcc else 'is not'} on PATH but build_info()['cuda'] is {info['cuda']}"
    if have_nvcc:
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", info["cuda_version"])
        archs = info["cuda_architectures"].split(",")
        assert archs and all(re.fullmatch(r"\d+[a-z]?", a) for a in archs), archs  # explicit, never "native"


def _configure(tmp_path, *defs, env=None):
    """Run CMake's configure step of this checkout in ``tmp_path`` with ``defs`` (-D...) and the environment
    variables ``env`` added; (exit status, output)."""
    import subprocess
    import sys

    cmake = shutil.which("cmake")
    if cmake is None or shutil.which("nvcc") is None:
        pytest.skip("needs cmake and nvcc on PATH")
    pybind11 = pytest.importorskip("pybind11")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cmd = [cmake, "-S", root, "-B", str(tmp_path), *gen, f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
           f"-DPython_EXECUTABLE={sys.executable}", *defs]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    return r.returncode, " ".join((r.stdout + r.stderr).split())


@pytest.mark.slow
def test_auto_builds_without_the_architectures_nvcc_cannot_compile(tmp_path):
    """An older nvcc cannot compile for every listed architecture (one before CUDA 11.8 has no 89/90): AUTO
    builds for the others, or without CUDA, instead of failing the configure and with it the whole install;
    ON refuses, naming them. This nvcc stands in with architecture 60, which CUDA 13 dropped."""
    rc, out = _configure(tmp_path / "some", "-DRTCLASSIFY_CUDA=AUTO", "-DRTCLASSIFY_CUDA_ARCHITECTURES=60;75")
    if "rtclassify: CUDA ON (architectures: 60;75)" in out:
        pytest.skip("this nvcc still compiles for architecture 60")
    assert rc == 0, out
    assert "cannot compile for the architecture(s) 60" in out and "building for 75 only" in out, out
    assert "rtclassify: CUDA ON (architectures: 75)" in out, out
    rc, out = _configure(tmp_path / "none", "-DRTCLASSIFY_CUDA=AUTO", "-DRTCLASSIFY_CUDA_ARCHITECTURES=60")
    assert rc == 0 and "rtclassify: CUDA OFF" in out and "building without CUDA" in out, out
    rc, out = _configure(tmp_path / "on", "-DRTCLASSIFY_CUDA=ON", "-DRTCLASSIFY_CUDA_ARCHITECTURES=60;75")
    assert rc != 0 and "RTCLASSIFY_CUDA=ON but" in out and "architecture(s) 60 of RTCLASSIFY_CUDA_ARCHITECTURES" in out
    # the probe compiles with the flags enable_language(CUDA) would use (CUDAFLAGS): one nvcc refuses is found
    # by the probe, not by enable_language after it
    rc, out = _configure(tmp_path / "flags", "-DRTCLASSIFY_CUDA=AUTO", "-DRTCLASSIFY_CUDA_ARCHITECTURES=75",
                         env={"CUDAFLAGS": "--no-such-nvcc-flag"})
    assert rc == 0 and "rtclassify: CUDA OFF" in out, out


def test_cuda_symbols_follow_build_info():
    info = rtclassify.build_info()
    assert hasattr(_core, "_CudaMelFrontend") is info["cuda"]
    assert ("CudaMelFrontend" in rtclassify.__all__) is info["cuda"]
    assert hasattr(rtclassify, "CudaMelFrontend") is info["cuda"]
    if not info["cuda"]:
        assert info["cuda_version"] is None and info["cuda_devices"] == 0


def test_no_cuda_build_says_so(monkeypatch, tmp_path):
    # As in a build without CUDA: the native class is absent.
    monkeypatch.delattr(_core, "_CudaMelFrontend", raising=False)
    monkeypatch.delitem(rtclassify.__dict__, "CudaMelFrontend", raising=False)
    with pytest.raises(AttributeError, match=r"this build of rtclassify has no CUDA .*build_info\(\)\['cuda'\] is False"):
        rtclassify.CudaMelFrontend  # noqa: B018
    assert not hasattr(rtclassify, "CudaMelFrontend")
    # as the interpreter's traceback shows it: the message, without "Did you mean: '_CudaMelFrontend'?" (the
    # private native class) appended to it
    code = ("import rtclassify\nfrom rtclassify import _core\nif hasattr(_core, '_CudaMelFrontend'):\n"
            "    del _core._CudaMelFrontend\nrtclassify.CudaMelFrontend\n")
    # (from outside the checkout: there `import rtclassify` is the installed package, not the unbuilt sources)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("AttributeError: rtclassify.CudaMelFrontend is not available")
    assert last.endswith("to get it.") and "Did you mean" not in last


def _cuda_build_without_gpu():
    if not rtclassify.build_info()["cuda"]:
        pytest.skip("this build has no CUDA")
    if gpu_devices()[0]:
        pytest.skip("a GPU is present: tests/test_gpu.py covers construction")


def test_construct_without_gpu_raises_no_cuda_device():
    _cuda_build_without_gpu()
    with pytest.raises(RuntimeError, match=r"^no CUDA device: \S") as info:
        rtclassify.CudaMelFrontend(streams=4, **BASE)
    assert isinstance(info.value, GpuUnavailableError) and isinstance(info.value, RtclassifyError)
    with pytest.raises(RuntimeError, match=r"^no CUDA device: \S"):
        _core._CudaMelFrontend(2, _config())
    assert _core._cuda_device_available()[0] is False and _core._cuda_device_available()[1]


def test_parameters_are_validated_before_the_device():
    _cuda_build_without_gpu()
    with pytest.raises(ValueError, match="streams"):
        rtclassify.CudaMelFrontend(streams=0, **BASE)
    with pytest.raises(ValueError, match="n_fft"):
        rtclassify.CudaMelFrontend(streams=2, **{**BASE, "n_fft": 500})
    with pytest.raises(ValueError, match="max_block"):
        rtclassify.CudaMelFrontend(streams=2, max_block=0, **BASE)
    with pytest.raises(ValueError, match="n_fft: missing frontend parameter"):
        rtclassify.CudaMelFrontend(streams=2, sample_rate=16000)
    with pytest.raises(ValueError, match="streams"):
        _core._CudaMelFrontend(70000, _config())
    with pytest.raises(ValueError, match="hop_length"):
        _core._CudaMelFrontend(1, {**_config(), "hop_length": 0})
    with pytest.raises(ValueError, match="bogus: not a frontend parameter"):
        _core._CudaMelFrontend(1, {**_config(), "bogus": 1})


# ----------------------------------------------------------------------
# the kernel's block-parallel order of operations, on the CPU
# ----------------------------------------------------------------------
CONFIGS = [
    {},
    dict(n_fft=256, hop_length=64, n_mels=40),
    dict(n_fft=1024, hop_length=1024, n_mels=96, win_length=800, window="hamming"),
    dict(n_fft=2048, hop_length=300, n_mels=64, mel_scale="slaney", norm="slaney", fmin=30.0),
    dict(n_fft=4096, hop_length=1024, n_mels=128, window="blackman"),
    dict(power=1.0, log="ln"),
    dict(power=1.5, log=None, n_mels=20),
    dict(window="rect", amin=1e-5),
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
@pytest.mark.parametrize("block_dim,seed", [(128, 0), (32, 0), (1, 0), (128, 7)])
def test_block_order_equals_cpu_frontend_bit_for_bit(kw, block_dim, seed):
    cfg = _config(**kw)
    x = _signal(5 * cfg["n_fft"] + 123, seed=len(kw))
    x[100:300] = 0.0  # a stretch of silence: the dB floor
    want = rtclassify.MelFrontend(**cfg).push(x)
    got = _core._internal.frames_block_order(x, cfg, block_dim=block_dim, seed=seed)
    assert got.shape == want.shape and got.shape[0] > 0
    assert np.array_equal(got, want)


def test_block_order_is_sensitive_to_the_math():
    # the comparison above can fail: a different window gives different frames
    x = _signal(4096)
    a = _core._internal.frames_block_order(x, _config())
    b = _core._internal.frames_block_order(x, _config(window="hamming"))
    assert not np.array_equal(a, b)


# ----------------------------------------------------------------------
# the CUDA frontend's batched streaming bookkeeping, on the CPU
# ----------------------------------------------------------------------
def _cpu_frames(cfg, x_stream):
    return rtclassify.MelFrontend(**cfg).push(x_stream)


def test_batched_stream_matches_cpu_frontend():
    cfg = _config()
    S, blocks = 3, [100, 700, 1, 3000, 999, 256, 256, 0, 5]
    total = sum(blocks)
    x = _signal(total + 50, seed=1, streams=S)
    x[1, 10] = np.nan
    x[2, 4000] = np.inf
    x[2, 4001] = -np.inf
    frames, nonfinite, pending = _core._internal.batched_stream_cpu(x, blocks, cfg)
    for s in range(S):
        fe = rtclassify.MelFrontend(**cfg)
        want = fe.push(x[s, :total])
        assert np.array_equal(frames[s], want)
        assert nonfinite[s] == fe.nonfinite_replaced
    assert list(nonfinite) == [0, 1, 2]
    n_frames = frames.shape[1]
    assert pending == total - n_frames * cfg["hop_length"]
    assert 0 <= pending < cfg["n_fft"]


@settings(max_examples=40, deadline=None)
@given(
    blocks=st.lists(st.integers(0, 1500), min_size=1, max_size=12),
    hop=st.sampled_from([64, 100, 256, 512]),
    streams=st.integers(1, 3),
)
def test_batched_stream_any_block_split(blocks, hop, streams):
    cfg = _config(n_fft=512, hop_length=hop, n_mels=32)
    total = sum(blocks)
    x = _signal(max(total, 1), seed=total, streams=streams)
    frames, _, pending = _core._internal.batched_stream_cpu(x, blocks, cfg)
    for s in range(streams):
        want = _cpu_frames(cfg, x[s, :total])
        assert np.array_equal(frames[s], want)
    assert pending == total - frames.shape[1] * hop


def test_batched_stream_rejects_bad_input():
    cfg = _config()
    with pytest.raises(ValueError, match="x: must be 2-D"):
        _core._internal.batched_stream_cpu(np.zeros(10, np.float32), [10], cfg)
    with pytest.raises(ValueError, match="blocks"):
        _core._internal.batched_stream_cpu(np.zeros((1, 10), np.float32), [11], cfg)
