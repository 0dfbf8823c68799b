"""Frontend and ring benchmarks (issue: native streaming log-mel frontend).

The peers are fed the same 256-sample blocks the way a streaming caller must
use them: keep the last n_fft samples and compute the frame each block completes.
Each frontend benchmark runs at the paper's 512-sample frames (the issue's
setting) and at the shipped model's frame length (its bundle's ``n_fft``).

The librosa peer of the issue's budget is ``librosa.feature.melspectrogram``
per block on the buffered window (the issue's definition of the peer). librosa
builds the mel filterbank inside every such call (it caches ``filters.mel`` only
under ``LIBROSA_CACHE_DIR``), most of that peer's time; a second librosa peer,
measured in the same run and printed without a budget, builds the filterbank
once and does per block what melspectrogram does with it (``librosa.stft`` of
the window, the filterbank's matrix product, ``power_to_db``), and the run
prints the filterbank's share of the per-call peer.
"""

import numpy as np
import pytest

import rtclassify

from conftest import per_call_seconds

SR, HOP, N_MELS, BLOCK = 16000, 256, 128, 256


def _n_ffts():
    from rtclassify.model.bundle import load_bundle

    return sorted({512, int(load_bundle(None).frontend["n_fft"])})


N_FFTS = _n_ffts()


def _blocks(n_blocks, seed=0):
    y = np.random.default_rng(seed).uniform(-0.5, 0.5, BLOCK * n_blocks).astype(np.float32)
    return y.reshape(n_blocks, BLOCK)


class _Streamer:
    """Feeds blocks to a whole-buffer function the way a streaming caller must."""

    def __init__(self, frame_fn, n_fft):
        self.buf = np.zeros(n_fft, np.float32)
        self.frame_fn = frame_fn

    def push(self, block):
        self.buf[:-BLOCK] = self.buf[BLOCK:]
        self.buf[-BLOCK:] = block
        return self.frame_fn(self.buf)


def _native(n_fft):
    fe = rtclassify.MelFrontend(SR, n_fft, HOP, N_MELS)
    out = np.empty((4, N_MELS), np.float32)
    return lambda b: fe.push(b, out=out)


def _librosa(n_fft):
    """The issue's librosa peer: ``melspectrogram`` per block on the buffered window (it builds the mel
    filterbank in every call)."""
    librosa = pytest.importorskip("librosa")

    def frame(buf):
        s = librosa.feature.melspectrogram(y=buf, sr=SR, n_fft=n_fft, hop_length=HOP, center=False,
                                           power=2.0, n_mels=N_MELS, htk=True, norm=None)
        return librosa.power_to_db(s, ref=1.0, amin=1e-10, top_db=None)

    return _Streamer(frame, n_fft).push


def _mel_basis(n_fft):
    """The mel filterbank melspectrogram builds for the peers' settings."""
    librosa = pytest.importorskip("librosa")
    return librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=N_MELS, htk=True, norm=None)


def _librosa_fb_once(n_fft):
    """librosa with the mel filterbank built once: per block, what melspectrogram does with it (the window's
    power spectrum by ``librosa.stft``, the filterbank's matrix product) and ``power_to_db``."""
    librosa = pytest.importorskip("librosa")
    mel = _mel_basis(n_fft)

    def frame(buf):
        p = np.abs(librosa.stft(buf, n_fft=n_fft, hop_length=HOP, center=False)) ** 2
        return librosa.power_to_db(mel @ p, ref=1.0, amin=1e-10, top_db=None)

    return _Streamer(frame, n_fft).push


def _nnaudio(n_fft):
    torch = pytest.importorskip("torch")
    features = pytest.importorskip("nnAudio.features")
    torch.set_num_threads(1)
    spec = features.MelSpectrogram(sr=SR, n_fft=n_fft, hop_length=HOP, n_mels=N_MELS, center=False,
                                   htk=True, power=2.0, trainable_mel=False, trainable_STFT=False,
                                   verbose=False)

    def frame(buf):
        with torch.inference_mode():
            s = spec(torch.from_numpy(buf)[None])
            return 10.0 * torch.log10(torch.clamp(s, min=1e-10))

    return _Streamer(frame, n_fft).push


def _numpy(n_fft):
    mel = _mel_basis(n_fft)
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)

    def frame(buf):
        p = np.abs(np.fft.rfft(buf * win)) ** 2
        return 10.0 * np.log10(np.maximum(mel @ p, 1e-10))

    return _Streamer(frame, n_fft).push


def _per_frame(push, blocks):
    it = iter(range(10**12))

    def call():
        push(blocks[next(it) % len(blocks)])

    return per_call_seconds(call, calls=400)


@pytest.mark.parametrize("n_fft", N_FFTS)
def test_frontend_vs_peers(benchmark, report, n_fft):
    blocks = _blocks(64)
    native = _native(n_fft)
    systems = {"native": native, "librosa": _librosa(n_fft), "librosa_fb_once": _librosa_fb_once(n_fft),
               "nnaudio": _nnaudio(n_fft), "numpy": _numpy(n_fft)}
    # the two librosa peers compute the same frames
    a, b = _librosa(n_fft), _librosa_fb_once(n_fft)
    for blk in blocks[:n_fft // BLOCK + 1]:
        fa, fb = a(blk), b(blk)
    np.testing.assert_allclose(fa, fb, atol=1e-3)
    # three interleaved rounds, best per system: a burst of load from other programs on a shared machine
    # then hits every system alike instead of whichever happened to be measured during it
    best = dict.fromkeys(systems, float("inf"))
    t_fb = float("inf")
    for _ in range(3):
        for name, fn in systems.items():
            best[name] = min(best[name], _per_frame(fn, blocks))
        t_fb = min(t_fb, per_call_seconds(lambda: _mel_basis(n_fft), calls=50, repeats=3))
    t_native, t_librosa, t_lfb, t_nnaudio, t_numpy = (
        best[k] for k in ("native", "librosa", "librosa_fb_once", "nnaudio", "numpy"))
    report(f"per-frame cost (256-sample blocks, n_fft {n_fft}, 128 mels): native {t_native*1e6:.2f} us; "
           f"librosa melspectrogram per block (the issue's peer) {t_librosa*1e6:.1f} us; librosa with the "
           f"filterbank built once (stft + mel matrix product + power_to_db per block) {t_lfb*1e6:.1f} us; "
           f"nnAudio {t_nnaudio*1e6:.1f} us; numpy (rfft, filterbank built once) {t_numpy*1e6:.1f} us")
    report(f"speed-up of native: {t_librosa/t_native:.0f}x librosa melspectrogram per block (budget >= 50x), "
           f"{t_lfb/t_native:.0f}x librosa with the filterbank built once (no budget), "
           f"{t_nnaudio/t_native:.0f}x nnAudio (budget >= 20x), {t_numpy/t_native:.1f}x numpy (no budget)")
    report(f"librosa.filters.mel alone takes {t_fb*1e6:.0f} us: {t_fb/t_librosa:.0%} of the per-block "
           f"melspectrogram peer's time (it builds the filterbank in every call)")
    benchmark.extra_info.update(librosa_ratio=t_librosa / t_native, librosa_fb_once_ratio=t_lfb / t_native,
                                librosa_filterbank_share=t_fb / t_librosa, nnaudio_ratio=t_nnaudio / t_native,
                                numpy_ratio=t_numpy / t_native)
    it = iter(range(10**12))
    benchmark(lambda: native(blocks[next(it) % len(blocks)]))
    assert t_librosa / t_native >= 50, "native must be at least 50x faster per frame than librosa"
    assert t_nnaudio / t_native >= 20, "native must be at least 20x faster per frame than nnAudio"


@pytest.mark.parametrize("n_fft", N_FFTS)
def test_frontend_realtime_factor(benchmark, report, n_fft):
    seconds = 10.0
    y = np.random.default_rng(1).uniform(-0.5, 0.5, int(SR * seconds)).astype(np.float32)
    fe = rtclassify.MelFrontend(SR, n_fft, HOP, N_MELS)
    blocks = np.array_split(y, len(y) // BLOCK)

    def run():
        fe.reset()
        for b in blocks:
            fe.push(b)

    t = per_call_seconds(run, calls=1, repeats=5)
    rtf = t / seconds
    report(f"frontend real-time factor at 16 kHz, n_fft {n_fft}, hop 256, 128 mels, 256-sample blocks: {rtf:.5f}")
    benchmark.extra_info["rtf"] = rtf
    benchmark.pedantic(run, rounds=3, iterations=1)
    assert rtf < 0.002


def test_ring_push_pop(benchmark, report):
    ring = rtclassify.SampleRing(1 << 14)
    block = np.zeros(BLOCK, np.float32)
    out = np.empty(BLOCK, np.float32)

    def cycle():
        ring.push(block)
        ring.pop(BLOCK, out=out)

    t = per_call_seconds(cycle, calls=20000)
    ratio = t / (BLOCK / 48000)
    report(f"SampleRing push+pop of 256 samples: {t*1e6:.2f} us = {ratio*100:.4f}% of the block at 48 kHz")
    benchmark.extra_info["ratio"] = ratio
    benchmark(cycle)
    assert ratio < 0.001
