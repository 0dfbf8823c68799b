"""GPU benchmarks: CUDA frontend per-hop latency, streams per GPU with TensorRT.

Ready to run on a machine with an NVIDIA GPU, a CUDA build of rtclassify and
the ``gpu`` extra (cupy, tensorrt). Elsewhere each test skips with the reason;
with ``RTCLASSIFY_TEST_FORCE_CUDA=1`` it fails instead. No GPU figure in this
project has been measured by these benchmarks unless a GPU run printed it.

Budgets are real-time ratios: compute time per hop over the hop's audio
duration, with every launch synchronized (the time a caller waits).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import rtclassify

from conftest import bench_bundle_path, per_call_seconds

pytestmark = pytest.mark.gpu

SR, N_FFT, HOP, N_MELS = 16000, 512, 256, 128
HOP_S = HOP / SR  # one frontend hop: 16 ms
FRONTEND_STREAMS = (1, 16, 256, 4096)
MODEL_STREAMS = (16, 64, 256, 1024)
FRONTEND_BUDGET = 0.1  # per-hop compute <= 10% of the hop, at every stream count above
STREAM_BUDGET = 0.5  # a stream count "fits" when a model hop's compute <= 50% of its audio
MIN_STREAMS = 16  # the GPU must serve at least this many streams (the CPU target per core)


def _skip_or_fail(reason: str):
    if os.environ.get("RTCLASSIFY_TEST_FORCE_CUDA", "") == "1":
        pytest.fail(f"gpu benchmark cannot run but RTCLASSIFY_TEST_FORCE_CUDA=1: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cp():
    from rtclassify.gpu import gpu_devices, package_available

    names, why = gpu_devices()
    if not names:
        _skip_or_fail(f"needs an NVIDIA GPU: {why}")
    if not rtclassify.build_info()["cuda"]:
        _skip_or_fail("this build of rtclassify has no CUDA")
    if not package_available("cupy"):
        _skip_or_fail("cupy is not installed (pip install 'rtclassify[gpu]')")
    import cupy

    return cupy


def _gpu_name(cp) -> str:
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def test_cuda_frontend_per_hop_latency(cp, benchmark, report):
    ratios = {}
    for S in FRONTEND_STREAMS:
        fe = rtclassify.CudaMelFrontend(streams=S, sample_rate=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
        block = cp.asarray(np.random.default_rng(S).uniform(-0.5, 0.5, (S, HOP)).astype(np.float32))
        fe.push(cp.zeros((S, N_FFT - HOP), cp.float32))  # steady state: one frame per hop
        out = cp.empty((S, 1, N_MELS), cp.float32)
        stream = cp.cuda.get_current_stream()

        def hop():
            fe.push(block, out=out)
            stream.synchronize()

        t = per_call_seconds(hop, calls=200)
        ratios[S] = t / HOP_S
        report(f"CUDA frontend on {_gpu_name(cp)}: {S} streams, one 16 ms hop each: {t*1e6:.1f} us per hop "
               f"(real-time ratio {ratios[S]:.5f}; {t/S*1e9:.0f} ns per stream-hop)")
        if S == FRONTEND_STREAMS[-1]:
            benchmark.extra_info.update({f"rtf_{k}": v for k, v in ratios.items()})
            benchmark(hop)
    for S, r in ratios.items():
        assert r <= FRONTEND_BUDGET, f"{S} streams: per-hop compute is {r:.3f} of the hop (budget {FRONTEND_BUDGET})"


def test_streams_per_gpu_with_tensorrt(cp, benchmark, report, tmp_path_factory):
    from rtclassify.gpu import package_available
    from rtclassify.model import load_bundle, make_backend

    if not package_available("tensorrt"):
        _skip_or_fail("tensorrt is not installed (pip install 'rtclassify[gpu]')")
    path = bench_bundle_path()
    try:
        bundle = load_bundle(path)
    except rtclassify.errors.BundleError as exc:
        _skip_or_fail(f"the bundle {path} cannot be loaded: {exc}")
    fe_cfg, W, hop_frames = bundle.frontend, bundle.window_frames, bundle.hop_frames
    model_hop_s = hop_frames * bundle.hop_length / bundle.sample_rate
    backend = make_backend(bundle, "tensorrt", max_batch=max(MODEL_STREAMS))
    fits, ratios = 0, {}
    for S in MODEL_STREAMS:
        fe = rtclassify.CudaMelFrontend(streams=S, **fe_cfg)
        block = cp.asarray(np.random.default_rng(S).uniform(-0.5, 0.5, (S, bundle.hop_length)).astype(np.float32))
        fe.push(cp.zeros((S, bundle.n_fft - bundle.hop_length), cp.float32))
        state = {"ring": cp.full((S, bundle.n_mels, W), -100.0, cp.float32)}
        stream = cp.cuda.get_current_stream()

        def model_hop():
            frames = [fe.push(block) for _ in range(hop_frames)]  # (S, 1, n_mels) each
            new = cp.concatenate(frames, axis=1).transpose(0, 2, 1)  # (S, n_mels, hop_frames)
            ring = cp.concatenate([state["ring"][:, :, hop_frames:], new], axis=2)
            state["ring"] = ring
            probs = backend.run(ring)
            cp.asnumpy(probs)  # the decoder needs the probabilities on the host
            stream.synchronize()

        t = per_call_seconds(model_hop, calls=20, repeats=3)
        ratios[S] = t / model_hop_s
        report(f"frontend + TensorRT on {_gpu_name(cp)}: {S} streams, one {model_hop_s*1e3:.0f} ms model hop: "
               f"{t*1e3:.2f} ms (real-time ratio {ratios[S]:.4f})")
        if ratios[S] <= STREAM_BUDGET and fits == max((n for n in MODEL_STREAMS if n < S), default=0):
            fits = S  # every smaller count fitted too
        if S == MODEL_STREAMS[0]:
            benchmark.pedantic(model_hop, rounds=5, iterations=1)
    report(f"streams per GPU (largest tested count within {STREAM_BUDGET:.0%} of real time, with every smaller one): {fits} "
           f"(tested {', '.join(map(str, MODEL_STREAMS))})")
    benchmark.extra_info.update(streams_per_gpu=fits, **{f"rtf_{k}": v for k, v in ratios.items()})
    assert fits >= MIN_STREAMS, f"the GPU serves only {fits} streams within budget (need {MIN_STREAMS})"
