"""Model bundle loading and validation: every broken bundle gives a BundleError naming the file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402

from rtclassify.errors import BundleError, ParameterError  # noqa: E402
from rtclassify.model import OnnxBackend, load_bundle, make_backend  # noqa: E402
from rtclassify.model import bundle as bundle_mod  # noqa: E402
from rtclassify.model.classifier import Classifier  # noqa: E402


@pytest.fixture
def bdir(tmp_path):
    return tb.write_bundle(tmp_path / "bundle")


def test_valid_folder_loads(bdir):
    b = load_bundle(bdir)
    assert b.labels == tuple(tb.LABELS)
    assert b.sample_rate == 16000 and b.n_fft == 512 and b.hop_length == 256 and b.n_mels == 32
    assert b.window_frames == 16 and b.lookahead_frames == 1 and b.hop_frames == 3
    assert b.thresholds["low"] == (0.6, 0.4)
    assert b.decoder == {"smoothing_s": 0.0, "min_on_s": 0.0, "min_off_s": 0.0}
    assert b.frame_time(0) == pytest.approx(256 / 16000)
    assert b.to_config()["name"] == "rtc-test"
    # model.json itself is accepted as the path
    assert load_bundle(bdir / "model.json").labels == b.labels


@pytest.mark.parametrize("nested", [False, True])
def test_zip_bundle_loads_and_runs(bdir, tmp_path, nested):
    z = tmp_path / "b.zip"
    prefix = "inner/" if nested else ""
    with zipfile.ZipFile(z, "w") as zf:
        for name in ("model.json", "model.onnx"):
            zf.write(bdir / name, prefix + name)
    b = load_bundle(z)
    assert b.is_zip and b.labels == tuple(tb.LABELS)
    clf = Classifier(b, make_backend(b))
    ref = Classifier.load(bdir)
    x = tb.demo_signal(16000)[:16000]
    assert np.array_equal(clf.tag(x, 16000).probs, ref.tag(x, 16000).probs)


def test_missing_path(tmp_path):
    with pytest.raises(BundleError, match="nowhere.*not found"):
        load_bundle(tmp_path / "nowhere")


@pytest.mark.parametrize("path", ["", "  "])
def test_empty_path_is_refused_not_taken_for_the_working_folder(path):
    from rtclassify.model.classifier import Classifier

    with pytest.raises(BundleError, match="bundle path is empty"):
        load_bundle(path)
    with pytest.raises(BundleError, match="bundle path is empty"):
        Classifier.load(path)


@pytest.mark.parametrize("path", [5, 2.5, ["a"], b"bundle"])
def test_a_path_that_is_not_a_path_is_named(path):
    """Classifier.load(path=5) was a bare TypeError from pathlib naming no parameter."""
    with pytest.raises(ParameterError, match=rf"^the model bundle path must be a str or a path .*got {type(path).__name__}"):
        Classifier.load(path)


def test_missing_default_bundle(monkeypatch, tmp_path):
    monkeypatch.setattr(bundle_mod, "default_bundle_path", lambda: tmp_path / "no_default")
    with pytest.raises(BundleError, match="no_default.*default model bundle"):
        load_bundle(None)


@pytest.mark.parametrize("name", ["model.json", "model.onnx"])
def test_missing_file(bdir, name):
    (bdir / name).unlink()
    with pytest.raises(BundleError, match=rf"{name}: missing file"):
        load_bundle(bdir)


def test_an_unreadable_model_onnx_is_named_with_the_system_s_reason(bdir, monkeypatch):
    """ONNX Runtime opens model.onnx by its path and says only "system error number 13": the bundle is checked
    first. (Root reads any file, so the refusal of open() is simulated for that one path.)"""
    import builtins

    real_open, onnx = builtins.open, str(bdir / "model.onnx")

    def refusing_open(file, *args, **kwargs):
        if str(file) == onnx:
            raise PermissionError(13, "Permission denied", onnx)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(BundleError, match=r"model\.onnx: cannot read \(Permission denied\)$"):
        Classifier.load(bdir)


def test_missing_file_in_zip(bdir, tmp_path):
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(bdir / "model.json", "model.json")
    with pytest.raises(BundleError, match=r"b\.zip!model\.onnx: missing file"):
        load_bundle(z)


def test_not_a_bundle_file(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"\x00\x01garbage")
    with pytest.raises(BundleError, match="model.bin: not a model bundle"):
        load_bundle(f)


def test_a_cut_zip_is_called_a_bad_zip(bdir, tmp_path):
    import shutil

    z = Path(shutil.make_archive(str(tmp_path / "b"), "zip", bdir))
    z.write_bytes(z.read_bytes()[:200])  # the central directory is gone
    with pytest.raises(BundleError, match=r"b\.zip: not a readable zip file \(cut short or corrupt\?\)"):
        load_bundle(z)


def test_corrupt_json(bdir):
    (bdir / "model.json").write_text('{"format_version": 1,\n "labels": [1, 2,, }')
    with pytest.raises(BundleError) as err:
        load_bundle(bdir)
    msg = str(err.value)
    assert "model.json" in msg and "invalid JSON" in msg and "line 2" in msg


def test_json_not_an_object(bdir):
    (bdir / "model.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="model.json: must hold a JSON object"):
        load_bundle(bdir)


@pytest.mark.parametrize("key", [
    "format_version", "name", "labels", "frontend", "frontend.n_mels", "frontend.sample_rate", "input",
    "input.name", "input.window_frames", "outputs", "outputs.probs", "lookahead_frames", "hop_frames",
    "thresholds", "thresholds.high", "thresholds.high.off", "decoder", "decoder.min_on_s",
])
def test_missing_key(bdir, key):
    def drop(meta):
        parts = key.split(".")
        obj = meta
        for p in parts[:-1]:
            obj = obj[p]
        del obj[parts[-1]]

    tb.rewrite_meta(bdir, drop)
    with pytest.raises(BundleError) as err:
        load_bundle(bdir)
    assert "model.json" in str(err.value) and f"missing key '{key}'" in str(err.value)


@pytest.mark.parametrize("mutate, text", [
    (lambda m: m.update(format_version=2), "format_version"),
    (lambda m: m.update(labels=[]), "'labels'"),
    (lambda m: m.update(labels=["a", "a", "b"]), "duplicate"),
    (lambda m: m["frontend"].update(n_mels=0), "frontend.n_mels"),
    (lambda m: m["frontend"].update(colour="blue"), "unknown key"),
    (lambda m: m["input"].update(layout="batch,frames,mels"), "input.layout"),
    (lambda m: m.update(lookahead_frames=16), "lookahead_frames"),
    (lambda m: m.update(hop_frames=0), "hop_frames"),
    (lambda m: m["thresholds"]["low"].update(on=0.3, off=0.5), "must not exceed"),
    (lambda m: m["thresholds"].update(extra={"on": 0.5, "off": 0.5}), "not in 'labels'"),
    (lambda m: m["thresholds"]["low"].update(on=1.5), "thresholds.low.on"),
    (lambda m: m["decoder"].update(min_on_s=-1), "decoder.min_on_s"),
    (lambda m: m["decoder"].update(smoothing="mean"), "decoder.smoothing"),
])
def test_bad_values(bdir, mutate, text):
    tb.rewrite_meta(bdir, mutate)
    with pytest.raises(BundleError) as err:
        load_bundle(bdir)
    assert "model.json" in str(err.value) and text in str(err.value)


@pytest.mark.parametrize("change", [{"n_fft": 500}, {"window": "kaiser"}, {"fmax": 12000.0}, {"mel_scale": "bark"}])
def test_frontend_config_rejected_by_melfrontend(bdir, change):
    tb.rewrite_meta(bdir, lambda m: m["frontend"].update(change))
    with pytest.raises(BundleError) as err:
        load_bundle(bdir)
    assert "model.json" in str(err.value) and "rejected by MelFrontend" in str(err.value)


def test_labels_do_not_match_onnx_outputs(tmp_path):
    bdir = tb.write_bundle(tmp_path / "b", onnx_tags=4)  # model.json lists 3 labels
    b = load_bundle(bdir)
    with pytest.raises(BundleError) as err:
        OnnxBackend(b)
    msg = str(err.value)
    assert "model.onnx" in msg and "4 probabilities" in msg and "3 labels" in msg
    with pytest.raises(BundleError, match="model.onnx"):
        Classifier.load(bdir)


def test_unreadable_onnx(bdir):
    (bdir / "model.onnx").write_bytes(b"this is not a protobuf \x00\xff" * 10)
    b = load_bundle(bdir)  # model.json is fine; the graph is checked when the backend opens it
    with pytest.raises(BundleError, match=r"model\.onnx: cannot be loaded by ONNX Runtime"):
        make_backend(b)


def test_truncated_onnx(bdir):
    data = (bdir / "model.onnx").read_bytes()
    (bdir / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"model\.onnx"):
        Classifier.load(bdir)


def test_input_and_output_names_checked(bdir):
    tb.rewrite_meta(bdir, lambda m: m["input"].update(name="spectrogram"))
    with pytest.raises(BundleError, match=r"model\.onnx: has no input named 'spectrogram'"):
        Classifier.load(bdir)


def test_output_name_checked(bdir):
    tb.rewrite_meta(bdir, lambda m: m["outputs"].update(probs="scores"))
    with pytest.raises(BundleError, match=r"model\.onnx: has no output named 'scores'"):
        Classifier.load(bdir)


def test_window_size_mismatch(bdir):
    tb.rewrite_meta(bdir, lambda m: m["input"].update(window_frames=20))
    with pytest.raises(BundleError, match=r"model\.onnx: input axis 2 has size 16 but model.json gives window_frames = 20"):
        Classifier.load(bdir)


def test_embedding_dim_mismatch(bdir):
    tb.rewrite_meta(bdir, lambda m: m["outputs"].update(embedding_dim=7))
    with pytest.raises(BundleError, match=r"model\.onnx: output 'embedding' has size 32 .* embedding_dim = 7"):
        Classifier.load(bdir)


def test_backend_interface(bdir):
    b = load_bundle(bdir)
    be = make_backend(b, "onnx", threads=1)
    w = np.full((3, 32, 16), -100.0, np.float32)
    w[1] = 0.0
    p = be.run(w)
    assert p.shape == (3, 3) and p.dtype == np.float32
    assert np.array_equal(p[0], p[2]) and np.all(p[1] > p[0])
    e = be.embed(w)
    assert e.shape == (3, 32) and be.embedding_dim == 32
    np.testing.assert_allclose(e[0], -100.0)
    # float64 input is converted; a wrong shape names the expected one
    assert np.array_equal(be.run(w.astype(np.float64)), p)
    with pytest.raises(ParameterError, match=r"\(batch, 32, 16\)"):
        be.run(np.zeros((1, 16, 32), np.float32))


def test_make_backend_rejects_unknown_name_and_threads(bdir):
    b = load_bundle(bdir)
    with pytest.raises(ParameterError, match="backend must be one of"):
        make_backend(b, "tensorflow")
    with pytest.raises(ParameterError, match="threads"):
        make_backend(b, "onnx", threads=0)
