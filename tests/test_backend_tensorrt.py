"""TensorRT engine cache: key, files, reuse and rebuild (plain Python, no GPU).

The TensorRT module boundary is replaced by fakes here, named as such:
``fake_trt_build`` stands for ``Builder.build_serialized_network`` and
``fake_trt_deserialize`` for ``Runtime.deserialize_cuda_engine`` (None for
bytes it does not recognise, as TensorRT does). ``FakeTensorRT`` records how
``_build_serialized`` drives the builder API. The real engine is covered by
tests/test_gpu.py on a GPU machine.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest

from rtclassify.errors import BundleError, ParameterError
from rtclassify.model import backend_tensorrt as bt

ONNX = b"\x08\x07onnx model bytes"


def _key(**kw) -> bt.EngineKey:
    args = dict(onnx_bytes=ONNX, tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3",
                compute_capability="9.0", precision="fp32", input_name="mel", n_mels=128,
                window_frames=64, max_batch=16)
    args.update(kw)
    return bt.EngineKey.for_model(**args)


class FakeEngine:
    """What fake_trt_deserialize returns for bytes fake_trt_build wrote."""

    def __init__(self, data: bytes):
        self.data = data


def fake_trt_build_factory(calls: list):
    def fake_trt_build() -> bytes:
        calls.append("build")
        return b"FAKE-ENGINE:" + str(len(calls)).encode()

    return fake_trt_build


def fake_trt_deserialize(data: bytes):
    return FakeEngine(data) if data.startswith(b"FAKE-ENGINE:") else None


# ----------------------------------------------------------------------
# key
# ----------------------------------------------------------------------
def test_key_is_stable_and_hashes_the_onnx_file():
    a, b = _key(), _key()
    assert a == b and a.digest() == b.digest()
    assert len(a.digest()) == 64
    import hashlib

    assert a.onnx_sha256 == hashlib.sha256(ONNX).hexdigest()
    assert a.min_shape == (1, 128, 64) and a.opt_shape == a.max_shape == (16, 128, 64)


@pytest.mark.parametrize("change", [
    dict(onnx_bytes=ONNX + b"!"),
    dict(tensorrt_version="10.4.0"),
    dict(gpu_name="NVIDIA GeForce RTX 4090"),
    dict(compute_capability="8.9"),
    dict(precision="fp16"),
    dict(input_name="mel2"),
    dict(n_mels=64),
    dict(window_frames=32),
    dict(max_batch=8),
])
def test_key_changes_with_each_component(change):
    base, other = _key(), _key(**change)
    assert other != base
    assert other.digest() != base.digest()


def test_every_key_field_is_in_the_digest():
    base = _key()
    for f in dataclasses.fields(bt.EngineKey):
        value = getattr(base, f.name)
        changed = (tuple(v + 1 for v in value) if isinstance(value, tuple)
                   else value + 1 if isinstance(value, int) else value + "x")
        if f.name == "precision":
            changed = "fp16"
        other = dataclasses.replace(base, **{f.name: changed})
        assert other.digest() != base.digest(), f.name


def test_key_rejects_unknown_precision():
    with pytest.raises(ParameterError, match="precision"):
        _key(precision="int8")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(bt.CACHE_ENV, str(tmp_path / "mine"))
    assert bt.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(bt.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert bt.default_cache_dir() == tmp_path / "xdg" / "rtclassify" / "trt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert bt.default_cache_dir() == tmp_path / "home" / ".cache" / "rtclassify" / "trt"
    assert bt.EngineCache().directory == tmp_path / "home" / ".cache" / "rtclassify" / "trt"


# ----------------------------------------------------------------------
# cache files and the build / reuse / rebuild decision
# ----------------------------------------------------------------------
def test_first_use_builds_and_stores(tmp_path):
    cache, key, calls = bt.EngineCache(tmp_path / "trt"), _key(), []
    engine, source = bt.obtain_engine(cache, key, fake_trt_build_factory(calls), fake_trt_deserialize)
    assert source == "built" and calls == ["build"]
    assert cache.path(key).read_bytes() == engine.data == b"FAKE-ENGINE:1"
    assert cache.path(key).name == key.digest() + ".engine"
    side = cache.path(key).with_suffix(".json").read_text()
    assert key.onnx_sha256 in side and "NVIDIA H100" in side
    assert not [p for p in (tmp_path / "trt").iterdir() if p.suffix == ".tmp"]


def test_second_use_reuses_the_cache(tmp_path):
    cache, key, calls = bt.EngineCache(tmp_path), _key(), []
    bt.obtain_engine(cache, key, fake_trt_build_factory(calls), fake_trt_deserialize)
    engine, source = bt.obtain_engine(cache, key, fake_trt_build_factory(calls), fake_trt_deserialize)
    assert source == "cache" and calls == ["build"] and engine.data == b"FAKE-ENGINE:1"
    # another key (another GPU) does not reuse it
    _, source = bt.obtain_engine(cache, _key(gpu_name="other"), fake_trt_build_factory(calls), fake_trt_deserialize)
    assert source == "built" and len(calls) == 2


@pytest.mark.parametrize("corrupt", [b"", b"garbage", b"FAKE"])
def test_corrupt_cache_file_is_rebuilt(tmp_path, corrupt, caplog):
    cache, key, calls = bt.EngineCache(tmp_path), _key(), []
    bt.obtain_engine(cache, key, fake_trt_build_factory(calls), fake_trt_deserialize)
    cache.path(key).write_bytes(corrupt)
    with caplog.at_level(logging.WARNING, logger="rtclassify.model"):
        engine, source = bt.obtain_engine(cache, key, fake_trt_build_factory(calls), fake_trt_deserialize)
    assert source == "rebuilt" and calls == ["build", "build"]
    assert engine.data == b"FAKE-ENGINE:2" and cache.path(key).read_bytes() == b"FAKE-ENGINE:2"
    assert "cannot be deserialized" in caplog.text
    # and the rebuilt file is reused afterwards
    _, source = bt.obtain_engine(cache, key, fake_trt_build_factory(calls), fake_trt_deserialize)
    assert source == "cache" and len(calls) == 2


def test_deserializer_exception_also_rebuilds(tmp_path):
    cache, key, calls = bt.EngineCache(tmp_path), _key(), []
    cache.store(key, b"FAKE-ENGINE:old")

    def fake_trt_deserialize_raising(data):
        if data == b"FAKE-ENGINE:old":
            raise RuntimeError("serialization assertion failed: version mismatch")
        return fake_trt_deserialize(data)

    engine, source = bt.obtain_engine(cache, key, fake_trt_build_factory(calls), fake_trt_deserialize_raising)
    assert source == "rebuilt" and engine.data == b"FAKE-ENGINE:1"


def test_fresh_engine_that_cannot_load_raises_and_is_not_cached(tmp_path):
    cache, key = bt.EngineCache(tmp_path), _key()
    with pytest.raises(RuntimeError, match="cannot deserialize the engine it has just built"):
        bt.obtain_engine(cache, key, lambda: b"not an engine", fake_trt_deserialize)
    assert not cache.path(key).exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user for a read-only folder")
def test_unwritable_cache_still_gives_an_engine(tmp_path, caplog):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        cache, calls = bt.EngineCache(ro / "trt"), []
        with caplog.at_level(logging.WARNING, logger="rtclassify.model"):
            engine, source = bt.obtain_engine(cache, _key(), fake_trt_build_factory(calls), fake_trt_deserialize)
        assert source == "built" and engine.data == b"FAKE-ENGINE:1"
        assert "cannot write" in caplog.text
    finally:
        ro.chmod(0o700)


def test_store_failure_is_reported_not_raised(tmp_path, caplog):
    # a regular file where the cache folder should be: mkdir fails (also as root)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    cache = bt.EngineCache(blocker / "trt")
    with caplog.at_level(logging.WARNING, logger="rtclassify.model"):
        assert cache.store(_key(), b"FAKE-ENGINE:1") is None
    assert "cannot write" in caplog.text
    assert cache.load(_key()) is None


def test_discard_removes_engine_and_description(tmp_path):
    cache, key = bt.EngineCache(tmp_path), _key()
    path = cache.store(key, b"FAKE-ENGINE:1")
    assert path.exists() and path.with_suffix(".json").exists()
    cache.discard(key)
    assert not path.exists() and not path.with_suffix(".json").exists()
    cache.discard(key)  # nothing left: no error


# ----------------------------------------------------------------------
# how the builder API is driven (fake tensorrt module)
# ----------------------------------------------------------------------
class FakeTensorRT:
    """Records the builder calls of _build_serialized (stands for the tensorrt module)."""

    __version__ = "10.3.0"

    class Logger:
        WARNING = 2

        def __init__(self, level=None):
            self.level = level

    class MemoryPoolType:
        WORKSPACE = "workspace"

    class BuilderFlag:
        FP16 = "fp16"

    class NetworkDefinitionCreationFlag:
        EXPLICIT_BATCH = 0

    def __init__(self, parse_ok=True, plan=b"PLAN"):
        self.log = []
        self.parse_ok = parse_ok
        self.plan = plan
        fake = self

        class Profile:
            def set_shape(self, name, mn, opt, mx):
                fake.log.append(("set_shape", name, tuple(mn), tuple(opt), tuple(mx)))

        class Config:
            def set_memory_pool_limit(self, pool, size):
                fake.log.append(("pool", pool, size))

            def set_flag(self, flag):
                fake.log.append(("flag", flag))

            def add_optimization_profile(self, p):
                fake.log.append(("add_profile",))

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                fake.log.append(("network", flags))
                return object()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                fake.log.append(("build",))
                return fake.plan

        class Parser:
            num_errors = 1

            def __init__(self, network, logger):
                pass

            def parse(self, data):
                fake.log.append(("parse", len(data)))
                return fake.parse_ok

            def get_error(self, i):
                return "In node 3 (Foo): UNSUPPORTED_NODE"

        self.Builder = Builder
        self.OnnxParser = Parser


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_drives_the_builder_api(precision):
    fake = FakeTensorRT()
    key = _key(precision=precision, max_batch=8)
    plan = bt._build_serialized(fake, fake.Logger(), ONNX, "b/model.onnx", key, 256 << 20)
    assert plan == b"PLAN"
    assert ("network", 0) in fake.log  # TensorRT 10: explicit batch without a flag
    assert ("parse", len(ONNX)) in fake.log
    assert ("pool", "workspace", 256 << 20) in fake.log
    assert ("set_shape", "mel", (1, 128, 64), (8, 128, 64), (8, 128, 64)) in fake.log
    assert (("flag", "fp16") in fake.log) is (precision == "fp16")
    assert fake.log[-1] == ("build",)


def test_fp16_without_the_builder_flag_is_refused():
    fake = FakeTensorRT()
    fake.BuilderFlag = type("BuilderFlag", (), {"TF32": "tf32"})  # as in TensorRT 11: no FP16 flag
    with pytest.raises(ParameterError, match="fp16: TensorRT 10.3.0 has no FP16 builder flag"):
        bt._build_serialized(fake, fake.Logger(), ONNX, "b/model.onnx", _key(precision="fp16"), 1 << 20)
    assert ("build",) not in fake.log


def test_build_reports_parser_errors_and_failed_builds():
    with pytest.raises(BundleError, match=r"b/model\.onnx: TensorRT's ONNX parser rejects the graph: In node 3"):
        fake = FakeTensorRT(parse_ok=False)
        bt._build_serialized(fake, fake.Logger(), ONNX, "b/model.onnx", _key(), 1 << 20)
    with pytest.raises(BundleError, match="could not build an engine"):
        fake = FakeTensorRT(plan=None)
        bt._build_serialized(fake, fake.Logger(), ONNX, "b/model.onnx", _key(), 1 << 20)


def test_cache_path_is_in_the_given_folder(tmp_path):
    assert bt.EngineCache(tmp_path).path(_key()).parent == Path(tmp_path)


# ----------------------------------------------------------------------
# a model exported with a fixed batch of 1
# ----------------------------------------------------------------------
def test_a_fixed_batch_of_one_gets_a_profile_of_batch_one(bundle_dir, tmp_path):
    """TensorRT refuses a profile range on a static axis: a model that fixes its batch at 1 is built for batch 1
    only and run one window at a time (as ONNX Runtime runs it); another fixed batch is refused by name."""
    pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")
    import _rtc_bundle as tb

    from rtclassify.model.bundle import MODEL_ONNX, load_bundle

    def max_batch(folder, asked=16):  # what TensorRTBackend.__init__ builds the engine and its key for
        b = load_bundle(folder)
        return bt.engine_max_batch(b.read_bytes(MODEL_ONNX), b, b.file_label(MODEL_ONNX), asked)

    assert max_batch(bundle_dir) == 16 and max_batch(bundle_dir, 3) == 3
    assert max_batch(tb.fixed_batch_bundle(bundle_dir, tmp_path / "one", 1)) == 1
    with pytest.raises(BundleError, match="model.onnx: has a fixed batch of 4 windows"):
        max_batch(tb.fixed_batch_bundle(bundle_dir, tmp_path / "four", 4))
    fake = FakeTensorRT()
    bt._build_serialized(fake, fake.Logger(), ONNX, "b/model.onnx", _key(max_batch=1), 1 << 20)
    assert ("set_shape", "mel", (1, 128, 64), (1, 128, 64), (1, 128, 64)) in fake.log


def test_every_backend_shares_one_tensorrt_logger(monkeypatch):
    """TensorRT keeps one logger pointer per process: each backend passing its own gave a warning and the
    first one's logger, freed when that backend went."""
    made = []

    class Logger:
        WARNING = 2

        def __init__(self, level):
            made.append(level)

    fake = type("trt", (), {"Logger": Logger})
    monkeypatch.setattr(bt, "_LOGGER", None)
    first = bt._shared_logger(fake)
    assert bt._shared_logger(fake) is first and made == [Logger.WARNING]
