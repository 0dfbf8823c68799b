"""Bundles, learning and backends: findings of the second bundle review, each one a clear error or a right result.

The TensorRT backend runs here on named fakes (no GPU): ``FakeCupy`` holds device arrays as numpy arrays,
``FakeTensorRT``'s "engine" is the ONNX graph itself run by ONNX Runtime (``_build_serialized`` is replaced
by one that returns the graph's bytes, and ``deserialize_cuda_engine`` opens them), so the backend's own
code (options, engine cache, binding, probe, run, close) runs as it is.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402

from rtclassify import cli, gpu  # noqa: E402
from rtclassify.errors import BundleError, MissingDependencyError, ParameterError, StateError  # noqa: E402
from rtclassify.model import bundle as bundle_mod  # noqa: E402
from rtclassify.model.backends import make_backend  # noqa: E402
from rtclassify.model.bundle import load_bundle  # noqa: E402
from rtclassify.model.classifier import Classifier  # noqa: E402

SR = tb.FRONTEND["sample_rate"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _contents(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _edit_graph(folder: Path, edit, outputs: dict) -> Path:
    """Change a bundle folder's graph (``edit(graph)`` appends nodes and outputs) and its ``outputs`` names."""
    import onnx

    m = onnx.load(str(folder / "model.onnx"))
    edit(m.graph)
    onnx.save(m, str(folder / "model.onnx"))
    tb.rewrite_meta(folder, lambda meta: meta["outputs"].update(outputs))
    return folder


def _learn_fast(clf, **kw):
    """A learn on the small test bundle in about a second: own negatives only, no copies."""
    pos = tb.tone(SR, 1.5, 3000.0, 0.4)
    neg = tb.tone(SR, 1.5, 200.0, 0.4)
    return clf.learn("bell", [pos], [neg], sample_rate=SR, generic_negatives=False, mix_positives=False,
                     pitch_shifts=(), **kw)


# ----------------------------------------------------------------------------------------------------------
# 1. a learned graph that does not load is never written; a float64 embedding is refused at load
# ----------------------------------------------------------------------------------------------------------
def _broken_head(monkeypatch):
    from rtclassify.learn import bundle_ext

    monkeypatch.setattr(bundle_ext, "append_head", lambda *a, **k: (b"not an ONNX graph", "probs_bell"))


def test_a_learned_bundle_that_does_not_load_leaves_out_as_it_was(bundle_dir, tmp_path, monkeypatch):
    clf = Classifier.load(bundle_dir)
    out = _copy(bundle_dir, tmp_path / "out")
    before = _contents(out)
    _broken_head(monkeypatch)
    with pytest.raises(BundleError) as err:
        _learn_fast(clf, out=out)
    assert _contents(out) == before
    Classifier.load(out)
    assert f"'bell': the learned bundle does not load, so it was not written; {out} is left as it was: model.onnx " \
           f"of the learned bundle: cannot be loaded by ONNX Runtime" in str(err.value)
    # without out: the message names no temporary folder (it is gone by then)
    with pytest.raises(BundleError) as err:
        _learn_fast(clf)
    assert "rtclassify-learned-" not in str(err.value) and "/tmp" not in str(err.value)
    assert "model.onnx of the learned bundle" in str(err.value)


def test_learn_force_keeps_the_old_bundle_when_the_new_one_does_not_load(bundle_dir, tmp_path, monkeypatch, capsys):
    import soundfile as sf

    sf.write(tmp_path / "pos.wav", tb.tone(SR, 1.5, 3000.0, 0.4), SR)
    sf.write(tmp_path / "neg.wav", tb.tone(SR, 1.5, 200.0, 0.4), SR)
    out = _copy(bundle_dir, tmp_path / "out")
    before = _contents(out)
    _broken_head(monkeypatch)
    assert cli.main(["learn", "--tag", "bell", str(tmp_path / "pos.wav"), "--negatives", str(tmp_path / "neg.wav"),
                     "--no-generic", "--no-mix", "--pitch-shifts", "none", "--bundle", str(bundle_dir),
                     "--out", str(out), "--force"]) == 1
    assert _contents(out) == before
    assert "the learned bundle does not load, so it was not written" in capsys.readouterr().err


def test_a_float64_embedding_is_refused_at_load(tmp_path):
    from onnx import TensorProto, helper

    def cast(g):
        g.node.append(helper.make_node("Cast", ["embedding"], ["emb64"], to=TensorProto.DOUBLE))
        g.output.append(helper.make_tensor_value_info("emb64", TensorProto.DOUBLE, ["batch", 32]))

    b = _edit_graph(tb.write_bundle(tmp_path / "b"), cast, {"embedding": "emb64"})
    with pytest.raises(BundleError, match=r"model\.onnx: output 'emb64' \(outputs\.embedding\) is float64, "
                                          r"expected float32"):
        Classifier.load(b)


# ----------------------------------------------------------------------------------------------------------
# 2. the API does not write over the package's own default bundle
# ----------------------------------------------------------------------------------------------------------
def test_learn_and_save_refuse_the_shipped_bundle(bundle_dir, tmp_path, monkeypatch):
    shipped = _copy(bundle_dir, tmp_path / "shipped")  # stands for the default bundle: the real one is never written
    monkeypatch.setattr(bundle_mod, "default_bundle_path", lambda: shipped)
    before = _contents(shipped)
    clf = Classifier.load()
    assert clf.bundle.path == shipped.resolve()
    with pytest.raises(ParameterError, match="is the package's own default bundle"):
        clf.save(shipped)
    with pytest.raises(ParameterError, match="is the package's own default bundle"):
        clf.learn("bell", ["missing.wav"], out=shipped)  # refused before the examples are read
    with pytest.raises(ParameterError, match="is the package's own default bundle"):
        clf.learn("bell", ["missing.wav"], out=shipped / "sub")
    assert _contents(shipped) == before
    assert load_bundle(clf.save(tmp_path / "mine.zip")).labels == clf.labels  # elsewhere it is written


# ----------------------------------------------------------------------------------------------------------
# 3. probabilities outside [0, 1] are refused at load
# ----------------------------------------------------------------------------------------------------------
def _times_ten(g):
    from onnx import TensorProto, helper

    g.initializer.append(helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0]))
    g.node.append(helper.make_node("Mul", ["probs", "ten"], ["probs10"]))
    g.output.append(helper.make_tensor_value_info("probs10", TensorProto.FLOAT, ["batch", 3]))


def _logits_output(g):
    from onnx import TensorProto, helper

    g.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]))


def test_a_graph_without_its_sigmoid_is_refused_at_load(tmp_path):
    b = _edit_graph(tb.write_bundle(tmp_path / "b"), _times_ten, {"probs": "probs10"})
    with pytest.raises(BundleError, match=r"model\.onnx: output 'probs10' \(outputs\.probs\) is not probabilities "
                                          r"in \[0, 1\] on the probe windows \(values from .* to 10"):
        Classifier.load(b)
    # the logits of the test graph, before its sigmoid
    b2 = _edit_graph(tb.write_bundle(tmp_path / "b2"), _logits_output, {"probs": "logits"})
    with pytest.raises(BundleError, match=r"'logits' \(outputs\.probs\) is not probabilities"):
        Classifier.load(b2)


# ----------------------------------------------------------------------------------------------------------
# 4, 10. TensorRT on fakes: learning keeps the backend's options; run() after close() is a StateError
# ----------------------------------------------------------------------------------------------------------
class FakeCupy(types.ModuleType):
    """Stands for cupy: device arrays are numpy arrays, registered by address so the fake engine finds them."""

    class ndarray(np.ndarray):
        @property
        def data(self):
            return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])

        def set(self, a, stream=None):
            self[...] = a

        def get(self, stream=None):
            return np.array(self)

    float32 = np.float32

    class _Context:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class _Stream(_Context):
        ptr = 0

        def __init__(self, non_blocking=False):
            pass

        def wait_event(self, event):
            pass

        def synchronize(self):
            pass

    class _Event:
        def __init__(self, disable_timing=True):
            pass

        def record(self, stream=None):
            pass

    def __init__(self):
        super().__init__("cupy")
        self.arrays = {}
        self.cuda = types.SimpleNamespace(
            Device=lambda i: self._Context(), Stream=self._Stream, Event=self._Event,
            get_current_stream=lambda: self._Stream(),
            runtime=types.SimpleNamespace(getDeviceProperties=lambda i: {"name": b"FakeGPU", "major": 9, "minor": 0}))

    def empty(self, shape, dtype=np.float32):
        a = np.zeros(shape, dtype).view(self.ndarray)
        self.arrays[a.data.ptr] = a
        return a


class FakeTensorRT(types.ModuleType):
    """Stands for tensorrt: a serialized "engine" is the ONNX graph, run by ONNX Runtime."""

    __version__ = "10.0.0"
    TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")

    class Logger:
        WARNING = 1

        def __init__(self, level=None):
            pass

    def __init__(self, cupy: FakeCupy):
        super().__init__("tensorrt")
        cp = cupy

        class Engine:
            def __init__(self, data: bytes):
                import onnxruntime as ort

                self.sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
                self.inp = self.sess.get_inputs()[0].name
                self.outs = [o.name for o in self.sess.get_outputs()]
                self.shapes = {o.name: o.shape for o in self.sess.get_outputs()}
                self.num_io_tensors = 1 + len(self.outs)

            def get_tensor_name(self, i):
                return ([self.inp] + self.outs)[i]

            def get_tensor_mode(self, name):
                return "input" if name == self.inp else "output"

            def get_tensor_shape(self, name):
                return [d if isinstance(d, int) else -1 for d in self.shapes[name]]

            def get_tensor_dtype(self, name):
                return np.float32

            def create_execution_context(self):
                engine = self

                class Context:
                    def __init__(self):
                        self.address, self.shape = {}, None

                    def set_tensor_address(self, name, address):
                        self.address[name] = address
                        return True

                    def set_input_shape(self, name, shape):
                        self.shape = tuple(shape)
                        return True

                    def execute_async_v3(self, stream):
                        x = np.array(cp.arrays[self.address[engine.inp]][:self.shape[0]])
                        for name, r in zip(engine.outs, engine.sess.run(engine.outs, {engine.inp: x})):
                            cp.arrays[self.address[name]][:len(r)] = r
                        return True

                return Context()

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                return Engine(bytes(data))

        self.Runtime = Runtime

    @staticmethod
    def nptype(dtype):
        return dtype


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    """Two fake GPUs with (fake) tensorrt and cupy; the default engine cache is a folder of tmp_path."""
    from rtclassify.model import backend_tensorrt as bt

    cp = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(cp))
    monkeypatch.setattr(bt, "gpu_devices", lambda: (["FakeGPU0", "FakeGPU1"], ""))
    monkeypatch.setattr(bt, "tensorrt_availability", lambda: gpu.Availability(True, detail="FakeGPU0, FakeGPU1"))
    monkeypatch.setattr(bt, "_build_serialized", lambda trt, logger, onnx_bytes, where, key, ws: onnx_bytes)
    monkeypatch.setenv(bt.CACHE_ENV, str(tmp_path / "default-cache"))
    return bt


def test_learning_on_tensorrt_keeps_the_backend_options(fake_gpu, bundle_dir, tmp_path):
    b = load_bundle(bundle_dir)
    cache = tmp_path / "my-cache"
    base = Classifier(b, make_backend(b, "tensorrt", device=1, max_batch=8, fp16=True, cache_dir=cache,
                                      workspace_mb=256))
    assert base.backend.name == "tensorrt" and base.backend.engine_path.parent == cache
    new = _learn_fast(base)
    be = new.backend
    assert be.name == "tensorrt" and new.labels == (*b.labels, "bell")
    assert (be.device, be.max_batch, be.precision) == (1, 8, "fp16")
    assert be.engine_path.parent == cache and be.key.workspace_mb == 256
    assert not (tmp_path / "default-cache").exists()
    # the learned graph runs: its first columns are the base's
    w = np.random.default_rng(1).normal(-40, 15, (3, b.n_mels, b.window_frames)).astype(np.float32)
    np.testing.assert_allclose(be.run(w)[:, :3], base.backend.run(w), atol=1e-6)


def test_tensorrt_run_after_close_is_a_state_error(fake_gpu, bundle_dir):
    b = load_bundle(bundle_dir)
    be = make_backend(b, "tensorrt")
    w = np.zeros((1, b.n_mels, b.window_frames), np.float32)
    assert be.run(w).shape == (1, 3)
    be.close()
    with pytest.raises(StateError, match=r"model\.onnx: the backend was closed; load the classifier again"):
        be.run(w)
    with pytest.raises(StateError, match="the backend was closed"):
        be.embed(w)


def test_tensorrt_refuses_probabilities_outside_0_1(fake_gpu, tmp_path):
    b = load_bundle(_edit_graph(tb.write_bundle(tmp_path / "b"), _times_ten, {"probs": "probs10"}))
    with pytest.raises(BundleError, match=r"'probs10' \(outputs\.probs\) is not probabilities in \[0, 1\]"):
        make_backend(b, "tensorrt")


# ----------------------------------------------------------------------------------------------------------
# 5. a zip member declared larger than the limit is refused before it is inflated
# ----------------------------------------------------------------------------------------------------------
def test_a_zip_bomb_model_onnx_is_refused_by_its_declared_size(bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "MAX_MODEL_BYTES", 64 * 1024, raising=False)  # 2 GiB in use; lowered here
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(bundle_dir / "model.json", "model.json")
        zf.writestr("model.onnx", bytes(1 << 20))  # 1 MiB of zeros in about 1 KiB
    assert z.stat().st_size < 8 * 1024
    with pytest.raises(BundleError, match=r"bomb\.zip!model\.onnx: too large"):
        load_bundle(z)
    # a bundle within the limit loads
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(bundle_dir / "model.json", "model.json")
        zf.write(bundle_dir / "model.onnx", "model.onnx")
    assert Classifier.load(good).labels == tuple(tb.LABELS)


# ----------------------------------------------------------------------------------------------------------
# 6. the torch backend takes the checkpoint a bundle names only when it is the one it was exported from
# ----------------------------------------------------------------------------------------------------------
def test_the_torch_backend_refuses_another_runs_checkpoint(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from _models import checkpoint_of, random_model

    from rtclassify.model.backend_torch import TorchBackend
    from rtclassify.train.export import export_bundle

    proj, other = tmp_path / "proj", tmp_path / "other"
    ours = checkpoint_of(random_model(seed=0))
    theirs = checkpoint_of(random_model(seed=1), frontend={"n_fft": 1024})  # same tags, another run
    for folder, ck in ((proj, ours), (other, theirs)):
        (folder / "runs" / "x").mkdir(parents=True)
        torch.save(ck, folder / "runs" / "x" / "model.pt")
    monkeypatch.chdir(proj)
    bundle = export_bundle("runs/x/model.pt", proj / "bundle")
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["training"]["checkpoint"] == str(Path("runs/x/model.pt"))
    assert len(meta["training"]["checkpoint_sha256"]) == 64
    x = np.random.default_rng(2).normal(-45, 15, (2, 128, 64)).astype(np.float32)
    ref = TorchBackend(proj / "runs" / "x" / "model.pt").run(x)[0]
    np.testing.assert_allclose(TorchBackend(bundle).run(x)[0], ref, atol=1e-6)  # from the repository root

    monkeypatch.chdir(other)  # another project with a runs/x/model.pt of its own
    with pytest.raises(BundleError, match=r"training\.checkpoint 'runs/x/model\.pt': not the checkpoint this bundle "
                                          r"was exported from: .*other/runs/x/model\.pt \(its sha256 differs"):
        TorchBackend(bundle)
    # a bundle that records no sha256 (as the shipped one): the recorded frontend tells the runs apart
    del meta["training"]["checkpoint_sha256"]
    (bundle / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"other/runs/x/model\.pt \(its frontend differs\)"):
        TorchBackend(bundle)
    monkeypatch.chdir(proj)
    np.testing.assert_allclose(TorchBackend(bundle).run(x)[0], ref, atol=1e-6)
    # a copy beside the bundle (relative to the bundle folder) comes before the current folder's file
    (bundle / "runs" / "x").mkdir(parents=True)
    shutil.copy(proj / "runs" / "x" / "model.pt", bundle / "runs" / "x" / "model.pt")
    monkeypatch.chdir(other)
    np.testing.assert_allclose(TorchBackend(bundle).run(x)[0], ref, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# 7. the cache of embedded generic negatives knows the bundle's frontend, window and graph
# ----------------------------------------------------------------------------------------------------------
def test_the_generic_negatives_cache_follows_an_edited_frontend(bundle_dir, tmp_path, monkeypatch):
    from rtclassify.learn import learner

    monkeypatch.setattr(learner, "_GENERIC_CACHE", {})
    b = _copy(bundle_dir, tmp_path / "b")
    first = Classifier.load(b)
    E1 = learner.generic_embeddings(first.backend, first.bundle, 2, "embedding+mel")
    assert learner.generic_embeddings(first.backend, first.bundle, 2, "embedding+mel") is E1  # still a cache
    tb.rewrite_meta(b, lambda m: m["frontend"].update(fmax=4000.0))  # model.onnx untouched
    second = Classifier.load(b)
    E2 = learner.generic_embeddings(second.backend, second.bundle, 2, "embedding+mel")
    assert E2 is not E1 and E2.X.shape == E1.X.shape and not np.allclose(E2.X, E1.X)
    tb.rewrite_meta(b, lambda m: m.update(lookahead_frames=3))
    third = Classifier.load(b)
    assert learner.generic_embeddings(third.backend, third.bundle, 2, "embedding+mel") is not E2


# ----------------------------------------------------------------------------------------------------------
# 8. internal keys and learned_tags in model.json
# ----------------------------------------------------------------------------------------------------------
def test_model_json_keys_starting_with_two_underscores_are_refused(bundle_dir, tmp_path):
    b = _copy(bundle_dir, tmp_path / "b")
    tb.rewrite_meta(b, lambda m: m.update(__zip_prefix__="other/"))
    with pytest.raises(BundleError, match=r"model\.json: key\(s\) '__zip_prefix__': names starting with '__' are "
                                          r"reserved"):
        load_bundle(b)
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(b / "model.json", "model.json")
        zf.write(b / "model.onnx", "model.onnx")
        zf.writestr("other/model.onnx", b"not an ONNX graph")
    with pytest.raises(BundleError, match=r"b\.zip!model\.json: key\(s\) '__zip_prefix__'"):
        load_bundle(z)


def test_a_zip_bundle_in_a_folder_keeps_its_prefix_out_of_model_json(bundle_dir, tmp_path):
    z = tmp_path / "nested.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(bundle_dir / "model.json", "bundle/model.json")
        zf.write(bundle_dir / "model.onnx", "bundle/model.onnx")
    clf = Classifier.load(z)
    assert clf.bundle.zip_prefix == "bundle/" and not any(k.startswith("__") for k in clf.bundle.meta)
    assert clf.bundle.file_label("model.onnx") == f"{z.resolve()}!bundle/model.onnx"
    for out in (tmp_path / "copy.zip", tmp_path / "copy"):
        assert Classifier.load(clf.save(out)).labels == clf.labels


@pytest.mark.parametrize("value", [None, "abc", 5, {"tag": "x"}, [1], ["bell"]])
def test_learned_tags_must_be_a_list_of_objects(bundle_dir, tmp_path, value):
    b = _copy(bundle_dir, tmp_path / "b")
    tb.rewrite_meta(b, lambda m: m.update(learned_tags=value))
    with pytest.raises(BundleError, match=r"model\.json: 'learned_tags' must be a list of objects"):
        load_bundle(b)


# ----------------------------------------------------------------------------------------------------------
# 9. decoder durations are bounded
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["smoothing_s", "min_on_s", "min_off_s", "attack_s"])
def test_decoder_durations_over_an_hour_are_refused(bundle_dir, tmp_path, key):
    b = _copy(bundle_dir, tmp_path / "b")
    tb.rewrite_meta(b, lambda m: m["decoder"].update({key: 1e308}))
    with pytest.raises(BundleError, match=rf"model\.json: 'decoder\.{key}' must be <= 3600"):
        load_bundle(b)
    tb.rewrite_meta(b, lambda m: m["decoder"].update({key: 3600.0}))
    clf = Classifier.load(b)
    x = tb.tone(SR, 0.5, 440.0)
    assert len(clf.tag(x, SR)) > 0
    with pytest.raises(ParameterError, match=rf"decoder\.{key} must be in \[0\.0, 3600\.0\] \(got 1e\+308\)"):
        clf.tag(x, SR, decoder={key: 1e308})


def test_decoder_keys_are_the_keys_the_bundle_reader_keeps(bundle_dir, tmp_path):
    # DECODER_KEYS (what `train` lets a config write into model.json) must be what load_bundle reads:
    # each one set to a value no default has comes back, and a key outside it is not kept
    values = {"smoothing_s": 0.123, "min_on_s": 0.234, "min_off_s": 0.345, "attack_s": 0.0456,
              "smoothing": "median", "median_hops": 7}
    assert set(values) == set(bundle_mod.DECODER_KEYS)
    b = _copy(bundle_dir, tmp_path / "b")
    tb.rewrite_meta(b, lambda m: m["decoder"].update(values, level_rate=3.0))
    assert load_bundle(b).decoder == values


# ----------------------------------------------------------------------------------------------------------
# 11. messages: odd zips, an unavailable TensorRT, and save() keeps weights.pt
# ----------------------------------------------------------------------------------------------------------
def test_a_zip_with_two_bundles_or_backslash_names_says_so(bundle_dir, tmp_path):
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        for folder in ("a", "b"):
            zf.write(bundle_dir / "model.json", f"{folder}/model.json")
            zf.write(bundle_dir / "model.onnx", f"{folder}/model.onnx")
    with pytest.raises(BundleError, match=r"two\.zip: holds several bundles \(a/model\.json, b/model\.json\)"):
        load_bundle(two)
    bs = tmp_path / "bs.zip"
    with zipfile.ZipFile(bs, "w") as zf:
        zf.write(bundle_dir / "model.json", "bundle\\model.json")
        zf.write(bundle_dir / "model.onnx", "bundle\\model.onnx")
    with pytest.raises(BundleError, match=r"bs\.zip: its member names use backslashes \(bundle\\model\.json"):
        load_bundle(bs)


def _no_gpu_machine(monkeypatch):
    monkeypatch.setattr(gpu, "gpu_devices", lambda: ([], "no GPU: the NVIDIA driver library (libcuda) is not "
                                                          "installed"))
    monkeypatch.setattr(gpu, "package_available", lambda m: m == "onnxruntime")


def test_tensorrt_unavailable_names_every_reason(bundle_dir, monkeypatch):
    _no_gpu_machine(monkeypatch)
    with pytest.raises(MissingDependencyError) as err:
        make_backend(load_bundle(bundle_dir), "tensorrt")
    msg = str(err.value)
    assert "no GPU: the NVIDIA driver library" in msg
    assert "tensorrt is not installed (pip install 'rtclassify[gpu]')" in msg
    assert "cupy is not installed (pip install 'rtclassify[gpu]')" in msg


def test_learn_with_tensorrt_is_checked_before_the_work(clf, monkeypatch):
    _no_gpu_machine(monkeypatch)
    # the examples are never read: the missing file would be the error otherwise
    with pytest.raises(MissingDependencyError, match="no GPU: .*tensorrt is not installed.*cupy is not installed"):
        clf.learn("bell", ["missing.wav"], backend="tensorrt")


def test_save_keeps_weights_pt(bundle_dir, tmp_path):
    b = _copy(bundle_dir, tmp_path / "b")
    (b / "weights.pt").write_bytes(b"the torch weights")
    clf = Classifier.load(b)
    assert (clf.save(tmp_path / "copy") / "weights.pt").read_bytes() == b"the torch weights"
    with zipfile.ZipFile(clf.save(tmp_path / "copy.zip")) as zf:
        assert zf.read("weights.pt") == b"the torch weights"
    assert not (Classifier.load(bundle_dir).save(tmp_path / "plain") / "weights.pt").exists()


# ----------------------------------------------------------------------------------------------------------
# 12. labels follow the rule of learned tag names
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("labels, words", [
    (["piano/x", "high", "any"], r"'piano/x' is not a tag name"),
    ([" piano", "high", "any"], r"' piano' is not a tag name"),
    (["Piano", "piano", "any"], r"'Piano' and 'piano' differ only by case"),
])
def test_labels_are_tag_names(bundle_dir, tmp_path, labels, words):
    b = _copy(bundle_dir, tmp_path / "b")

    def rename(m):
        m["labels"] = labels
        m["thresholds"] = {t: {"on": 0.6, "off": 0.4} for t in labels}

    tb.rewrite_meta(b, rename)
    with pytest.raises(BundleError, match=rf"model\.json: 'labels': {words}"):
        load_bundle(b)


def test_the_shipped_and_test_bundles_still_load(bundle_dir):
    assert len(load_bundle().labels) == 12
    assert load_bundle(bundle_dir).labels == tuple(tb.LABELS)
