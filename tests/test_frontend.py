"""MelFrontend: parity with librosa, streaming invariance, input handling, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtclassify
from rtclassify._core import _internal

SR = 16000


def _signal(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3100 * t * (1 + t))
    y += 0.05 * rng.standard_normal(n)
    y *= np.linspace(0.1, 1.0, n)  # a wide dynamic range across frames
    return y.astype(np.float32)


@pytest.mark.parametrize("n", [256, 512, 1024, 2048, 4096])
def test_rfft_matches_numpy(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    ours = _internal.rfft(x)
    ref = np.fft.rfft(x.astype(np.float64))
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) <= 1e-5 * np.max(np.abs(ref))


@pytest.mark.parametrize("n", [128, 300, 8192])
def test_rfft_rejects_bad_sizes(n):
    with pytest.raises(ValueError, match="n_fft"):
        _internal.rfft(np.zeros(n, np.float32))


@pytest.mark.parametrize("n_fft", [512, 1024, 2048])
@pytest.mark.parametrize("scale,norm", [("htk", None), ("slaney", "slaney"), ("slaney", None)])
def test_parity_with_librosa(n_fft, scale, norm):
    librosa = pytest.importorskip("librosa")
    y = _signal(SR * 2)
    hop = n_fft // 4
    n_mels = 64 if n_fft == 512 else 128
    ref = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=n_fft, hop_length=hop, center=False, power=2.0,
        htk=scale == "htk", norm=norm, n_mels=n_mels, fmin=30.0, fmax=7600.0,
    )
    ref_db = librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=None).T
    fe = rtclassify.MelFrontend(SR, n_fft, hop, n_mels, fmin=30.0, fmax=7600.0,
                                mel_scale=scale, norm=norm)
    ours = fe.push(y)
    assert ours.shape == ref_db.shape
    assert ours.dtype == np.float32
    mask = ref_db > ref_db.max() - 80.0
    assert mask.mean() > 0.5
    assert np.max(np.abs(ours - ref_db)[mask]) < 0.01


def test_log_modes_and_power():
    y = _signal(4096, seed=3)
    lin = rtclassify.MelFrontend(SR, 512, 256, 40, log=None).push(y)
    db = rtclassify.MelFrontend(SR, 512, 256, 40, log="db").push(y)
    ln = rtclassify.MelFrontend(SR, 512, 256, 40, log="ln", amin=1e-6).push(y)
    mag = rtclassify.MelFrontend(SR, 512, 256, 40, log=None, power=1.0).push(y)
    np.testing.assert_allclose(db, 10 * np.log10(np.maximum(lin, 1e-10)), atol=1e-3)
    np.testing.assert_allclose(ln, np.log(lin.astype(np.float64) + 1e-6), atol=1e-4)
    assert np.all(lin >= 0) and np.all(mag >= 0)
    assert not np.allclose(mag, lin)


def test_frame_grid_no_centering():
    fe = rtclassify.MelFrontend(SR, 512, 160, 32)
    assert fe.push(np.zeros(511, np.float32)).shape == (0, 32)
    assert fe.push(np.zeros(1, np.float32)).shape == (1, 32)  # frame 0 = samples [0, 512)
    assert fe.push(np.zeros(159, np.float32)).shape == (0, 32)
    assert fe.push(np.zeros(1, np.float32)).shape == (1, 32)  # frame 1 = samples [160, 672)
    assert fe.frames_emitted == 2
    assert fe.frames_for(160 * 3) == 3


def test_frame_matches_its_samples():
    # frame i must depend only on samples [i*hop, i*hop + n_fft)
    y = _signal(SR)
    hop, n_fft = 256, 512
    frames = rtclassify.MelFrontend(SR, n_fft, hop, 48).push(y)
    for i in (0, 7, 30):
        single = rtclassify.MelFrontend(SR, n_fft, hop, 48).push(y[i * hop: i * hop + n_fft])
        np.testing.assert_array_equal(single[0], frames[i])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 6000),
    cuts=st.lists(st.integers(0, 6000), max_size=25),
    hop=st.sampled_from([1, 100, 160, 256, 512]),
    seed=st.integers(0, 2**16),
)
def test_streaming_invariance(n, cuts, hop, seed):
    y = np.random.default_rng(seed).uniform(-1, 1, n).astype(np.float32)
    whole = rtclassify.MelFrontend(SR, 512, hop, 24).push(y)
    fe = rtclassify.MelFrontend(SR, 512, hop, 24)
    edges = sorted({0, n, *(c for c in cuts if c <= n)})
    parts = [fe.push(y[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    split = np.concatenate(parts) if parts else np.zeros((0, 24), np.float32)
    assert split.shape == whole.shape
    np.testing.assert_array_equal(split, whole)  # bit for bit


def test_input_dtypes():
    y = _signal(3000)
    ref = rtclassify.MelFrontend(SR, 512, 256, 16).push(y)
    np.testing.assert_array_equal(rtclassify.MelFrontend(SR, 512, 256, 16).push(y.astype(np.float64)), ref)
    q = np.round(y * 32767).astype(np.int16)
    from_int = rtclassify.MelFrontend(SR, 512, 256, 16).push(q)
    from_float = rtclassify.MelFrontend(SR, 512, 256, 16).push(q.astype(np.float32) / 32768.0)
    np.testing.assert_array_equal(from_int, from_float)
    # non-contiguous input is accepted (copied)
    y2 = np.repeat(y, 2)[::2]
    np.testing.assert_array_equal(rtclassify.MelFrontend(SR, 512, 256, 16).push(y2), ref)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.complex64, np.float16, bool])
def test_bad_dtype(dtype):
    fe = rtclassify.MelFrontend(SR, 512, 256, 16)
    with pytest.raises(TypeError, match="dtype"):
        fe.push(np.zeros(600, dtype))
    assert fe.frames_emitted == 0


def test_bad_shape():
    fe = rtclassify.MelFrontend(SR, 512, 256, 16)
    with pytest.raises(ValueError, match="1-D"):
        fe.push(np.zeros((600, 2), np.float32))


def test_nonfinite_replaced_and_counted():
    y = _signal(2048)
    bad = y.copy()
    bad[[5, 100, 700]] = [np.nan, np.inf, -np.inf]
    fe = rtclassify.MelFrontend(SR, 512, 256, 16)
    out = fe.push(bad)
    assert np.isfinite(out).all()
    assert fe.nonfinite_replaced == 3
    clean = y.copy()
    clean[[5, 100, 700]] = 0
    np.testing.assert_array_equal(out, rtclassify.MelFrontend(SR, 512, 256, 16).push(clean))


def test_empty_block_and_silence():
    fe = rtclassify.MelFrontend(SR, 512, 256, 16)
    out = fe.push(np.zeros(0, np.float32))
    assert out.shape == (0, 16) and out.dtype == np.float32
    silent = fe.push(np.zeros(1024, np.float32))
    np.testing.assert_array_equal(silent, np.full_like(silent, -100.0))  # 10*log10(amin)


def test_huge_block():
    y = np.random.default_rng(1).uniform(-1, 1, SR * 60).astype(np.float32)
    fe = rtclassify.MelFrontend(SR, 512, 256, 64)
    out = fe.push(y)
    assert out.shape == ((len(y) - 512) // 256 + 1, 64)


def test_out_buffer_reuse():
    y = _signal(4096)
    fe = rtclassify.MelFrontend(SR, 512, 256, 16)
    buf = np.empty((64, 16), np.float32)
    got = fe.push(y, out=buf)
    assert np.shares_memory(got, buf)
    np.testing.assert_array_equal(got, rtclassify.MelFrontend(SR, 512, 256, 16).push(y))
    with pytest.raises(ValueError, match="out"):
        fe.push(y, out=np.empty((2, 16), np.float32))
    with pytest.raises(ValueError, match="n_mels"):
        fe.push(y, out=np.empty((64, 8), np.float32))
    with pytest.raises(TypeError, match="out"):
        fe.push(y, out=np.empty((64, 16), np.float64))
    # a rejected push consumed nothing
    assert fe.frames_emitted == got.shape[0]


def test_reset_and_config_roundtrip():
    y = _signal(5000)
    fe = rtclassify.MelFrontend(SR, 1024, 300, 20, fmin=50.0, fmax=6000.0, win_length=800,
                                window="hamming", mel_scale="slaney", norm="slaney", log="ln")
    first = fe.push(y)
    fe.reset()
    assert fe.frames_emitted == 0
    np.testing.assert_array_equal(fe.push(y), first)
    cfg = fe.config
    assert cfg["norm"] == "slaney" and cfg["log"] == "ln" and cfg["win_length"] == 800
    np.testing.assert_array_equal(rtclassify.MelFrontend(**cfg).push(y), first)
    assert rtclassify.MelFrontend(SR, 512, 256, 8).config["fmax"] == SR / 2


def test_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    for htk, norm in [(True, None), (False, "slaney")]:
        fe = rtclassify.MelFrontend(22050, 2048, 512, 96, fmin=20, fmax=11025,
                                    mel_scale="htk" if htk else "slaney", norm=norm)
        ref = librosa.filters.mel(sr=22050, n_fft=2048, n_mels=96, fmin=20, fmax=11025, htk=htk, norm=norm)
        np.testing.assert_allclose(fe.filterbank, ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "kwargs,param",
    [
        (dict(n_fft=500), "n_fft"),
        (dict(n_fft=128), "n_fft"),
        (dict(n_fft=8192), "n_fft"),
        (dict(hop_length=0), "hop_length"),
        (dict(hop_length=513), "hop_length"),
        (dict(n_mels=0), "n_mels"),
        (dict(fmax=9000.0), "fmax"),
        (dict(fmin=8000.0), "fmin"),
        (dict(fmin=-1.0), "fmin"),
        (dict(win_length=1024), "win_length"),
        (dict(window="kaiser"), "window"),
        (dict(mel_scale="bark"), "mel_scale"),
        (dict(norm="l2"), "norm"),
        (dict(log="log2"), "log"),
        (dict(power=0.0), "power"),
        (dict(amin=0.0), "amin"),
        (dict(sample_rate=0.0), "sample_rate"),
    ],
)
def test_bad_parameters(kwargs, param):
    args = dict(sample_rate=SR, n_fft=512, hop_length=256, n_mels=32)
    args.update(kwargs)
    with pytest.raises(ValueError, match=param):
        rtclassify.MelFrontend(**args)


def test_build_info():
    info = rtclassify.build_info()
    assert {"version", "compiler", "cuda"} <= set(info)
    assert info["version"] == rtclassify.__version__
    assert isinstance(info["cuda"], bool)


# ------------------------------------------------- out= overlapping the block, byte order, size messages
def test_frontend_out_overlapping_the_block_is_refused():
    rng = np.random.default_rng(1)
    buf = rng.standard_normal(29 * 64 + 4096).astype(np.float32) * 0.1
    fe = rtclassify.MelFrontend(16000, 512, 256, 64)
    out = buf[-29 * 64:].reshape(29, 64)  # over samples the push has not read yet
    with pytest.raises(ValueError, match="out: overlaps the block"):
        fe.push(buf, out=out)
    assert fe.frames_emitted == 0
    own = np.empty((29, 64), np.float32)
    assert np.array_equal(fe.push(buf, out=own), rtclassify.MelFrontend(16000, 512, 256, 64).push(buf))


@pytest.mark.parametrize("dtype", [">i2", ">f4", ">f8"])
def test_frontend_takes_byte_swapped_blocks(dtype):
    x = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(6400) / 16000)).astype(np.float32)
    native = (x * 32767).astype(np.int16) if dtype == ">i2" else x.astype(dtype[1:].replace("f", "float").replace(
        "float4", "float32").replace("float8", "float64"))
    swapped = native.astype(dtype)
    a = rtclassify.MelFrontend(16000, 512, 256, 64).push(swapped)
    b = rtclassify.MelFrontend(16000, 512, 256, 64).push(native)
    assert a.shape[0] > 0 and np.array_equal(a, b)


@pytest.mark.parametrize("make, said", [
    (lambda: rtclassify.MelFrontend(16000, 0, 256, 64), "n_fft: must be positive (got 0 (int))"),
    (lambda: rtclassify.MelFrontend(16000, 2**40, 256, 64), "n_fft: is far too large"),
    (lambda: rtclassify.MelFrontend(16000, 2**70, 256, 64), "n_fft: is far too large"),
    (lambda: rtclassify.MelFrontend(16000, -2**70, 256, 64), "n_fft: must be positive"),
    (lambda: rtclassify._core.PitchTracker(16000.0, hop_length=0), "hop_length: must be positive"),
    (lambda: rtclassify.MelFrontend(16000, 512, 256, 64, fmax=0.0), "fmax: must be positive or None (got 0.0"),
    (lambda: rtclassify.MelFrontend(16000, 512, 256, 64, fmax=float("nan")), "fmax: must be positive or None"),
])
def test_size_and_fmax_messages_say_what_is_wrong(make, said):
    with pytest.raises(ValueError) as err:
        make()
    assert said in str(err.value)
    assert "2147483647" not in str(err.value)
