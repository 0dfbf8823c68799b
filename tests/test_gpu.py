"""GPU path on a real GPU: CUDA frontend, TensorRT backend, engine cache, cupy hand-off.

Every test here is marked ``gpu``: it skips where the NVIDIA driver sees no
device, and with ``RTCLASSIFY_TEST_FORCE_CUDA=1`` any skip (no GPU, no cupy,
no tensorrt, a build without CUDA) fails instead (tests/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import rtclassify

pytestmark = pytest.mark.gpu

FE = dict(sample_rate=16000, n_fft=512, hop_length=256, n_mels=128, fmin=0.0, fmax=8000.0)
DB_TOL = 1e-3  # dB, CUDA frontend vs CPU frontend
PROB_TOL = 1e-3  # TensorRT vs ONNX Runtime


@pytest.fixture(scope="module")
def cp():
    cupy = pytest.importorskip("cupy", reason="cupy is not installed (pip install 'rtclassify[gpu]')")
    if cupy.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("cupy sees no CUDA device")
    return cupy


@pytest.fixture(scope="module")
def cuda_build():
    if not rtclassify.build_info()["cuda"]:
        pytest.skip("this build of rtclassify has no CUDA (nvcc was not found at build time)")


def _signals(streams: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FE["sample_rate"]
    x = np.empty((streams, n), np.float32)
    for s in range(streams):
        f = 110.0 * (s + 1)
        x[s] = 0.4 * np.sin(2 * np.pi * f * t) + 0.05 * (s % 3) * rng.standard_normal(n)
    x[0, : n // 4] = 0.0  # silence: the dB floor
    return x


def _cpu_frames(x: np.ndarray, **kw) -> list[np.ndarray]:
    return [rtclassify.MelFrontend(**{**FE, **kw}).push(row) for row in x]


def _push_all(fe, x, blocks, cp, device_input=False):
    out, pos = [], 0
    for n in blocks:
        block = x[:, pos:pos + n]
        pos += n
        out.append(cp.asnumpy(fe.push(cp.asarray(block) if device_input else block)))
    cp.cuda.get_current_stream().synchronize()
    return np.concatenate(out, axis=1)


# ----------------------------------------------------------------------
# CUDA frontend
# ----------------------------------------------------------------------
@pytest.mark.parametrize("device_input", [False, True], ids=["host-input", "device-input"])
def test_cuda_frontend_matches_cpu(cp, cuda_build, device_input):
    S, blocks = 5, [256] * 10 + [1000, 37, 4096, 5000, 0, 256]
    x = _signals(S, sum(blocks))
    fe = rtclassify.CudaMelFrontend(streams=S, max_block=4096, **FE)
    got = _push_all(fe, x, blocks, cp, device_input)
    want = _cpu_frames(x)
    assert got.shape == (S, *want[0].shape) and got.shape[1] > 0
    for s in range(S):
        np.testing.assert_allclose(got[s], want[s], rtol=0, atol=DB_TOL)
    assert fe.frames_emitted == want[0].shape[0]
    assert fe.samples_consumed == sum(blocks)
    assert fe.max_block == 5000  # grew once for the longer block
    assert fe.pending == sum(blocks) - fe.frames_emitted * FE["hop_length"]


@pytest.mark.parametrize("kw", [dict(n_fft=4096, hop_length=1024, n_mels=96),
                                dict(n_fft=256, hop_length=100, n_mels=40, log="ln", power=1.0),
                                dict(mel_scale="slaney", norm="slaney", window="hamming", win_length=400)])
def test_cuda_frontend_other_configs(cp, cuda_build, kw):
    S = 3
    x = _signals(S, 20000, seed=2)
    fe = rtclassify.CudaMelFrontend(streams=S, **{**FE, **kw})
    got = _push_all(fe, x, [20000], cp)
    want = _cpu_frames(x, **kw)
    for s in range(S):
        np.testing.assert_allclose(got[s], want[s], rtol=0, atol=DB_TOL if kw.get("log", "db") == "db" else 1e-4)


def test_cuda_frontend_block_split_invariance(cp, cuda_build):
    S = 2
    x = _signals(S, 9000, seed=3)
    whole = _push_all(rtclassify.CudaMelFrontend(streams=S, **FE), x, [9000], cp)
    split = _push_all(rtclassify.CudaMelFrontend(streams=S, **FE), x, [1, 255, 700, 3000, 44, 5000], cp)
    assert np.array_equal(whole, split)


def test_cuda_frontend_nonfinite_and_reset(cp, cuda_build):
    S = 3
    x = _signals(S, 4096, seed=4)
    x[1, 5] = np.nan
    x[2, 7] = np.inf
    x[2, 9] = -np.inf
    fe = rtclassify.CudaMelFrontend(streams=S, **FE)
    got = _push_all(fe, x, [4096], cp)
    assert list(fe.nonfinite_replaced) == [0, 1, 2]
    assert np.all(np.isfinite(got))
    cpu = _cpu_frames(x)
    np.testing.assert_allclose(got[2], cpu[2], rtol=0, atol=DB_TOL)
    fe.reset()
    assert list(fe.nonfinite_replaced) == [0, 0, 0] and fe.pending == 0 and fe.frames_emitted == 0
    again = _push_all(fe, x, [4096], cp)
    assert np.array_equal(again, got)


def test_cuda_frontend_input_kinds(cp, cuda_build):
    S = 2
    x = _signals(S, 3000, seed=5)
    ref = _push_all(rtclassify.CudaMelFrontend(streams=S, **FE), x, [3000], cp)
    # float64 and int16 on the host; float64 and a strided view on the device
    i16 = np.round(x * 20000).astype(np.int16)
    fe = rtclassify.CudaMelFrontend(streams=S, **FE)
    np.testing.assert_allclose(cp.asnumpy(fe.push(x.astype(np.float64))), ref, rtol=0, atol=DB_TOL)
    fe = rtclassify.CudaMelFrontend(streams=S, **FE)
    got16 = cp.asnumpy(fe.push(i16))
    for s in range(S):  # the CPU frontend scales int16 the same way
        np.testing.assert_allclose(got16[s], rtclassify.MelFrontend(**FE).push(i16[s]), rtol=0, atol=DB_TOL)
    fe = rtclassify.CudaMelFrontend(streams=S, **FE)
    np.testing.assert_allclose(cp.asnumpy(fe.push(cp.asarray(i16))), got16, rtol=0, atol=DB_TOL)
    fe = rtclassify.CudaMelFrontend(streams=S, **FE)
    wide = cp.zeros((S, 4000), cp.float32)
    wide[:, :3000] = cp.asarray(x)
    np.testing.assert_array_equal(cp.asnumpy(fe.push(wide[:, :3000])), ref)  # rows 4000 apart, read in place
    fe = rtclassify.CudaMelFrontend(streams=S, **FE)
    np.testing.assert_allclose(cp.asnumpy(fe.push(cp.asarray(x, dtype=cp.float64))), ref, rtol=0, atol=DB_TOL)
    with pytest.raises(ValueError, match=r"block: must have shape \(streams=2, n\)"):
        fe.push(np.zeros((3, 10), np.float32))
    with pytest.raises(ValueError, match="out: must be a C-contiguous float32 cupy array"):
        fe.push(np.zeros((2, 512), np.float32), out=cp.zeros((2, 5, 128), cp.float32))


def test_cupy_handoff_without_host_copies(cp, cuda_build):
    S = 4
    x = cp.asarray(_signals(S, 2048, seed=6))
    fe = rtclassify.CudaMelFrontend(streams=S, **FE)
    frames = fe.frames_for(2048)
    out = cp.empty((S, frames, FE["n_mels"]), cp.float32)
    res = fe.push(x, out=out)
    assert res is out and int(res.data.ptr) == int(out.data.ptr)
    assert isinstance(res, cp.ndarray)
    assert fe.host_uploads == 0  # device samples were read in place
    fe.push(cp.asnumpy(x))
    assert fe.host_uploads == 1  # a host array is the only upload


def test_stream_argument_orders_the_work(cp, cuda_build):
    S = 2
    x = _signals(S, 4096, seed=7)
    ref = _push_all(rtclassify.CudaMelFrontend(streams=S, **FE), x, [4096], cp)
    fe = rtclassify.CudaMelFrontend(streams=S, **FE)
    s1, s2 = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    a = fe.push(cp.asarray(x[:, :2048]), stream=s1)
    b = fe.push(cp.asarray(x[:, 2048:]), stream=s2)  # waits for the push on s1
    s1.synchronize()
    s2.synchronize()
    np.testing.assert_array_equal(np.concatenate([cp.asnumpy(a), cp.asnumpy(b)], axis=1), ref)


# ----------------------------------------------------------------------
# TensorRT backend
# ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trt_bundle(tmp_path_factory):
    pytest.importorskip("tensorrt", reason="tensorrt is not installed (pip install 'rtclassify[gpu]')")
    pytest.importorskip("onnx", reason="the test bundle is built with the onnx package")
    import _rtc_bundle as tb

    from rtclassify.model import load_bundle

    fe = dict(tb.FRONTEND, n_mels=FE["n_mels"])
    return load_bundle(tb.write_bundle(tmp_path_factory.mktemp("trt") / "bundle", frontend=fe, window=64))


def _windows(bundle, batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-100.0, 20.0, (batch, bundle.n_mels, bundle.window_frames)).astype(np.float32)


def test_tensorrt_matches_onnxruntime(cp, trt_bundle, tmp_path):
    from rtclassify.model import make_backend

    trt_b = make_backend(trt_bundle, "tensorrt", max_batch=8, cache_dir=tmp_path)
    ort_b = make_backend(trt_bundle, "onnx")
    assert trt_b.name == "tensorrt" and trt_b.engine_source == "built"
    for batch in (1, 3, 8, 13):  # 13 > max_batch: run in chunks
        w = _windows(trt_bundle, batch, seed=batch)
        np.testing.assert_allclose(trt_b.run(w), ort_b.run(w), rtol=0, atol=PROB_TOL)
        np.testing.assert_allclose(trt_b.embed(w), ort_b.embed(w), rtol=0, atol=PROB_TOL * 100)
        dev = trt_b.run(cp.asarray(w))
        assert isinstance(dev, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(dev), ort_b.run(w), rtol=0, atol=PROB_TOL)


def test_engine_cache_reuse_and_rebuild(cp, trt_bundle, tmp_path):
    from rtclassify.model.backend_tensorrt import TensorRTBackend

    first = TensorRTBackend(trt_bundle, max_batch=4, cache_dir=tmp_path)
    assert first.engine_source == "built" and first.engine_path.is_file()
    w = _windows(trt_bundle, 2)
    ref = first.run(w)
    second = TensorRTBackend(trt_bundle, max_batch=4, cache_dir=tmp_path)
    assert second.engine_source == "cache"
    np.testing.assert_array_equal(second.run(w), ref)
    first.engine_path.write_bytes(b"corrupt engine bytes")
    third = TensorRTBackend(trt_bundle, max_batch=4, cache_dir=tmp_path)
    assert third.engine_source == "rebuilt"
    # a rebuilt engine may pick other tactics (chosen by timing): equal up to rounding, not bit for bit
    np.testing.assert_allclose(third.run(w), ref, rtol=0, atol=1e-5)
    assert TensorRTBackend(trt_bundle, max_batch=4, cache_dir=tmp_path).engine_source == "cache"
    # another profile is another engine
    assert TensorRTBackend(trt_bundle, max_batch=2, cache_dir=tmp_path).engine_source == "built"


def test_frontend_to_tensorrt_on_device(cp, cuda_build, trt_bundle, tmp_path):
    """Samples on the device -> CUDA frontend -> windows (device) -> TensorRT, against the CPU path."""
    from rtclassify.model import make_backend

    S, W = 4, trt_bundle.window_frames
    n = FE["n_fft"] + (W - 1) * FE["hop_length"]
    x = _signals(S, n, seed=8)
    fe = rtclassify.CudaMelFrontend(streams=S, **trt_bundle.frontend)
    frames = fe.push(cp.asarray(x))  # (S, W, n_mels) on the device
    assert frames.shape == (S, W, trt_bundle.n_mels) and fe.host_uploads == 0
    windows = cp.ascontiguousarray(frames.transpose(0, 2, 1))  # (S, n_mels, W), device to device
    backend = make_backend(trt_bundle, "tensorrt", max_batch=S, cache_dir=tmp_path)
    probs = backend.run(windows)
    assert isinstance(probs, cp.ndarray)
    assert backend.last_input_address == int(windows.data.ptr)  # bound in place, no staging copy
    cpu_windows = np.stack([rtclassify.MelFrontend(**trt_bundle.frontend).push(row).T for row in x])
    ref = make_backend(trt_bundle, "onnx").run(np.ascontiguousarray(cpu_windows))
    np.testing.assert_allclose(cp.asnumpy(probs), ref, rtol=0, atol=PROB_TOL)


def test_auto_picks_tensorrt_on_a_gpu(cp, trt_bundle, tmp_path):
    from rtclassify.model import make_backend

    b = make_backend(trt_bundle, "auto", cache_dir=tmp_path, max_batch=2)
    assert b.name == "tensorrt"
    assert b.selection.startswith("auto: tensorrt (")


def test_tensorrt_takes_device_windows_at_any_offset(cp, trt_bundle, tmp_path):
    """Device windows at an address TensorRT cannot bind (not 256-byte aligned) are copied to the engine's own
    input; aligned ones are bound in place."""
    from rtclassify.model import make_backend
    from rtclassify.model.backend_tensorrt import TENSOR_ALIGNMENT

    host = _windows(trt_bundle, 5, seed=3)
    ref = make_backend(trt_bundle, "onnx").run(host)
    backend = make_backend(trt_bundle, "tensorrt", max_batch=2, cache_dir=tmp_path)
    flat = cp.zeros(host.size + 1, dtype=cp.float32)
    flat[1:] = cp.asarray(host.ravel())
    view = flat[1:].reshape(host.shape)  # C-contiguous, 4 bytes past an aligned address
    assert view.data.ptr % TENSOR_ALIGNMENT == 4
    got = cp.asnumpy(backend.run(view))
    np.testing.assert_allclose(got, ref, rtol=0, atol=PROB_TOL)
    assert backend.last_input_address == backend._in.data.ptr  # the copy was bound, not the view
    dev = cp.asarray(host)
    assert dev.data.ptr % TENSOR_ALIGNMENT == 0
    np.testing.assert_allclose(cp.asnumpy(backend.run(dev)), ref, rtol=0, atol=PROB_TOL)
    assert backend.last_input_address == dev.data.ptr + 4 * host[0].nbytes  # in place: the last chunk, window 4
