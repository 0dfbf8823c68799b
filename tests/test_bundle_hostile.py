"""Corrupt or hostile model bundles: one BundleError naming the file and the key, never a crash or a huge allocation."""

from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402

from rtclassify.errors import BundleError  # noqa: E402
from rtclassify.model import load_bundle, make_backend  # noqa: E402
from rtclassify.model import bundle as bundle_mod  # noqa: E402
from rtclassify.model.classifier import Classifier  # noqa: E402

UNSUPPORTED_METHOD = 99  # AES in WinZip's scheme: zipfile cannot read it
HUGE_JSON = 20 * 1024 * 1024  # above the 16 MiB model.json limit, valid JSON (padded with spaces)


@pytest.fixture
def bdir(tmp_path):
    return tb.write_bundle(tmp_path / "bundle")


def _zip(bdir, z, compression=zipfile.ZIP_STORED, json_bytes=None):
    with zipfile.ZipFile(z, "w", compression=compression) as zf:
        if json_bytes is None:
            zf.write(bdir / "model.json", "model.json")
        else:
            zf.writestr("model.json", json_bytes)
        zf.write(bdir / "model.onnx", "model.onnx")
    return z


def _patch_member(z, member, flag_bits=0, method=None):
    """Set flag bits and/or the compression method of ``member`` in both its local and central headers."""
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        local = zf.getinfo(member).header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    eocd = data.rfind(b"PK\x05\x06")
    count, = struct.unpack_from("<H", data, eocd + 10)
    pos, = struct.unpack_from("<I", data, eocd + 16)
    central = None
    for _ in range(count):
        assert data[pos:pos + 4] == b"PK\x01\x02"
        nlen, xlen, clen = struct.unpack_from("<HHH", data, pos + 28)
        if data[pos + 46:pos + 46 + nlen].decode() == member:
            central = pos
        pos += 46 + nlen + xlen + clen
    assert central is not None
    for flag_at, method_at in ((local + 6, local + 8), (central + 8, central + 10)):
        flags, = struct.unpack_from("<H", data, flag_at)
        struct.pack_into("<H", data, flag_at, flags | flag_bits)
        if method is not None:
            struct.pack_into("<H", data, method_at, method)
    z.write_bytes(bytes(data))


def _one_error(path) -> str:
    with pytest.raises(BundleError) as err:
        load_bundle(path)
    return str(err.value)


# ----------------------------------------------------------------------
# zip members zipfile cannot read
# ----------------------------------------------------------------------
def test_encrypted_model_json(bdir, tmp_path):
    z = _zip(bdir, tmp_path / "b.zip")
    _patch_member(z, "model.json", flag_bits=0x1)
    msg = _one_error(z)
    assert "b.zip!model.json" in msg and "encrypted" in msg


def test_model_json_unsupported_compression(bdir, tmp_path):
    z = _zip(bdir, tmp_path / "b.zip")
    _patch_member(z, "model.json", method=UNSUPPORTED_METHOD)
    msg = _one_error(z)
    assert "b.zip!model.json" in msg and "compressed with an unsupported method" in msg and "99" in msg


@pytest.mark.parametrize("flag_bits, method, text", [
    (0x1, None, "encrypted"),
    (0, UNSUPPORTED_METHOD, "compressed with an unsupported method"),
])
def test_unreadable_model_onnx_member(bdir, tmp_path, flag_bits, method, text):
    z = _zip(bdir, tmp_path / "b.zip")
    good = load_bundle(z)
    _patch_member(z, "model.onnx", flag_bits=flag_bits, method=method)
    # refused at load ...
    msg = _one_error(z)
    assert "b.zip!model.onnx" in msg and text in msg
    # ... and, for a bundle loaded before the zip changed, when the backend reads the graph
    with pytest.raises(BundleError) as err:
        make_backend(good)
    msg = str(err.value)
    assert "b.zip!model.onnx" in msg and text in msg and "ONNX Runtime" not in msg


def test_corrupt_deflated_model_json(bdir, tmp_path):
    z = _zip(bdir, tmp_path / "b.zip", compression=zipfile.ZIP_DEFLATED)
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("model.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 4, start + min(info.compress_size, 64)):
        data[i] ^= 0x5A
    z.write_bytes(bytes(data))
    msg = _one_error(z)
    assert "b.zip!model.json" in msg and "corrupt zip member" in msg


def test_zip_bomb_model_json(bdir, tmp_path):
    raw = (bdir / "model.json").read_bytes()
    padded = raw[:-1] + b" " * HUGE_JSON + raw[-1:]
    z = _zip(bdir, tmp_path / "b.zip", compression=zipfile.ZIP_DEFLATED, json_bytes=padded)
    assert z.stat().st_size < 1024 * 1024  # small on disk, large once inflated
    msg = _one_error(z)
    assert "b.zip!model.json" in msg and "too large" in msg


def test_huge_model_json_in_folder(bdir):
    raw = (bdir / "model.json").read_bytes()
    (bdir / "model.json").write_bytes(raw[:-1] + b" " * HUGE_JSON + raw[-1:])
    msg = _one_error(bdir)
    assert "model.json" in msg and "too large" in msg


# ----------------------------------------------------------------------
# hostile numbers and structure in model.json
# ----------------------------------------------------------------------
@pytest.mark.parametrize("key, value, text", [
    ("n_mels", 1e9, "'frontend.n_mels' must be from 1 to 1024"),
    ("n_mels", 10**6, "'frontend.n_mels' must be from 1 to 1024"),
    ("sample_rate", 1e12, "'frontend.sample_rate' must be from 1000 to 384000 Hz"),
    ("sample_rate", 10, "'frontend.sample_rate' must be from 1000 to 384000 Hz"),
    ("n_fft", 2**40, "'frontend.n_fft' must be from 1 to 65536"),
    ("hop_length", 10**9, "'frontend.hop_length' must be from 1 to 65536"),
])
def test_frontend_values_bounded(bdir, key, value, text):
    tb.rewrite_meta(bdir, lambda m: m["frontend"].update({key: value}))
    msg = _one_error(bdir)
    assert "model.json" in msg and text in msg
    # the parser's bounds hold without the MelFrontend check too
    with pytest.raises(BundleError, match=text):
        load_bundle(bdir, check_frontend=False)


def test_frontend_memory_error_is_a_bundle_error(bdir, monkeypatch):
    import rtclassify._core as core

    def no_memory(**kw):
        raise MemoryError("std::bad_alloc")

    monkeypatch.setattr(core, "MelFrontend", no_memory)
    msg = _one_error(bdir)
    assert "model.json" in msg and "rejected by MelFrontend" in msg and "memory" in msg


def test_window_frames_bounded(bdir):
    tb.rewrite_meta(bdir, lambda m: m["input"].update(window_frames=10**9))
    msg = _one_error(bdir)
    assert "model.json" in msg and "'input.window_frames' must be from 1 to 16384" in msg


def test_median_hops_bounded(bdir):
    tb.rewrite_meta(bdir, lambda m: m["decoder"].update(smoothing="median", median_hops=10**12))
    msg = _one_error(bdir)
    assert "model.json" in msg and "'decoder.median_hops' must be from 1 to 1000" in msg


@pytest.mark.parametrize("hop", [17, 10**12])
def test_hop_longer_than_window(bdir, hop):
    tb.rewrite_meta(bdir, lambda m: m.update(hop_frames=hop))
    msg = _one_error(bdir)
    assert "model.json" in msg and f"'hop_frames' ({hop}) is longer than the model's window (16 frames)" in msg


def test_hop_equal_to_window_loads(bdir):
    tb.rewrite_meta(bdir, lambda m: m.update(hop_frames=16))
    assert load_bundle(bdir).hop_frames == 16


def test_deeply_nested_json(bdir):
    (bdir / "model.json").write_text("[" * 100_000)
    msg = _one_error(bdir)
    assert "model.json" in msg and "not valid JSON (nested too deeply)" in msg


def test_deeply_nested_json_in_zip(bdir, tmp_path):
    z = _zip(bdir, tmp_path / "b.zip", json_bytes=b'{"metrics": ' + b"[" * 100_000)
    msg = _one_error(z)
    assert "b.zip!model.json" in msg and "nested too deeply" in msg


def test_integer_with_too_many_digits(bdir):
    raw = (bdir / "model.json").read_text().replace('"hop_frames": 3', '"hop_frames": ' + "9" * 5000)
    assert "9" * 5000 in raw
    (bdir / "model.json").write_text(raw)
    msg = _one_error(bdir)
    assert "model.json" in msg and "not valid JSON" in msg and len(msg) < 1000


# ----------------------------------------------------------------------
# good bundles still load
# ----------------------------------------------------------------------
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_good_bundle_loads(bdir, tmp_path, compression):
    b = load_bundle(bdir)
    assert b.labels == tuple(tb.LABELS) and b.hop_frames == 3 and b.window_frames == 16
    z = _zip(bdir, tmp_path / "b.zip", compression=compression)
    bz = load_bundle(z)
    assert bz.is_zip and bz.to_config() == b.to_config()
    assert bz.read_bytes("model.onnx") == (bdir / "model.onnx").read_bytes()
    x = tb.demo_signal(16000)[:16000]
    assert np.array_equal(Classifier.load(z).tag(x, 16000).probs, Classifier.load(bdir).tag(x, 16000).probs)


def test_default_bundle_loads():
    b = load_bundle(bundle_mod.default_bundle_path())
    assert b.n_tags > 0 and b.hop_frames <= b.window_frames
    assert load_bundle(None).labels == b.labels
    res = Classifier.load(None).tag(np.zeros(b.sample_rate, np.float32), b.sample_rate)
    assert len(res.probs) > 0


def test_a_learned_bundle_whose_graph_does_not_match_its_recorded_checksum_is_refused(tmp_path):
    """One flipped byte in a learned bundle's model.onnx loaded and ran, every output a little off (the review:
    up to 0.006), although its model.json records the graph's sha256."""
    import shutil

    base = Classifier.load(tb.write_bundle(tmp_path / "base", window=16, hop_frames=3, lookahead=1))
    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * 16000) / 16000) * (1 + 0.5 * rng.random(3 * 16000)))
    good = base.learn("beep", [x.astype(np.float32)], sample_rate=16000, out=tmp_path / "learned")
    bad = tmp_path / "damaged"
    shutil.copytree(good.bundle.path, bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (bad / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"damaged/model\.onnx: does not match the checksum its model\.json "
                                          r"records \(sha256 [0-9a-f]{12}\.\.\., recorded [0-9a-f]{12}\.\.\.\)"):
        Classifier.load(bad)
    Classifier.load(tmp_path / "learned")  # the undamaged copy loads
