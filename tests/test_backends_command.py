"""`rtclassify backends`, the GPU availability checks and `make_backend(..., "auto")`.

Where a test needs a machine without (or with) a GPU or a package, the
answers of rtclassify.gpu are replaced with monkeypatch; the driver probe
itself runs for real in test_gpu_probe_is_consistent.
"""

from __future__ import annotations

import json

import pytest

from rtclassify import cli, gpu
from rtclassify.model.bundle import default_bundle_path


def _fake_machine(monkeypatch, *, gpus=(), why="no GPU: the NVIDIA driver library (libcuda) is not installed",
                  packages=(), cuda_build=True):
    monkeypatch.setattr(gpu, "gpu_devices", lambda: (list(gpus), "" if gpus else why))
    monkeypatch.setattr(gpu, "package_available", lambda m: m in packages or m == "onnxruntime")
    monkeypatch.setattr(gpu, "cuda_build", lambda: cuda_build)
    monkeypatch.setattr(gpu, "cuda_runtime", lambda: (True, ""))


def test_gpu_probe_is_consistent():
    names, why = gpu.gpu_devices()
    assert (why == "") is bool(names)
    if not names:
        assert why.startswith("no GPU: ")


def test_reasons_name_every_missing_piece(monkeypatch):
    _fake_machine(monkeypatch, cuda_build=False)
    t = gpu.tensorrt_availability()
    assert not t.available
    assert "no GPU: the NVIDIA driver library" in t.reason
    assert "tensorrt is not installed (pip install 'rtclassify[gpu]')" in t.reason
    assert "cupy is not installed (pip install 'rtclassify[gpu]')" in t.reason
    f = gpu.cuda_frontend_availability()
    assert not f.available
    assert "this build of rtclassify has no CUDA" in f.reason and "cupy is not installed" in f.reason


def test_available_with_gpu_and_packages(monkeypatch):
    _fake_machine(monkeypatch, gpus=["NVIDIA L4"], packages=("tensorrt", "cupy"))
    t = gpu.tensorrt_availability()
    assert t.available and t.reason == "" and t.detail == "NVIDIA L4"
    assert gpu.cuda_frontend_availability().available
    _fake_machine(monkeypatch, gpus=["NVIDIA L4"], packages=("tensorrt", "cupy"), cuda_build=False)
    f = gpu.cuda_frontend_availability()
    assert not f.available and f.reason.startswith("this build of rtclassify has no CUDA")
    assert gpu.tensorrt_availability().available  # TensorRT does not need the CUDA build


def test_missing_single_package_is_the_only_reason(monkeypatch):
    _fake_machine(monkeypatch, gpus=["NVIDIA L4"], packages=("cupy",))
    assert gpu.tensorrt_availability().reason == "tensorrt is not installed (pip install 'rtclassify[gpu]')"


def test_command_lists_each_backend(monkeypatch, capsys, tmp_path):
    _fake_machine(monkeypatch, packages=("torch",))
    monkeypatch.chdir(tmp_path)  # the default bundle's checkpoint is looked up here too: not here
    assert cli.main(["backends"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip() and not line.startswith("--")}
    assert set(lines) == {"onnx", "torch", "tensorrt", "cuda-frontend"}
    assert "available" in lines["onnx"] and "CPUExecutionProvider" in lines["onnx"]
    assert lines["torch"].split()[1] == "available"
    # torch runs training weights, which the package does not install: said, so that --backend torch is no surprise
    ref = json.loads((default_bundle_path() / "model.json").read_text())["training"]["checkpoint"]
    assert f"the default bundle's are not here (its checkpoint {ref} is not installed" in lines["torch"]
    (tmp_path / ref).parent.mkdir(parents=True)
    (tmp_path / ref).write_bytes(b"")
    assert cli.main(["backends"]) == 0
    assert f"a file named as the default bundle's checkpoint ({ref}) is here" in capsys.readouterr().out
    assert "not available: no GPU" in lines["tensorrt"] and "rtclassify[gpu]" in lines["tensorrt"]
    assert "not available: no GPU" in lines["cuda-frontend"]
    assert "--backend auto picks: onnx" in out


def test_command_json_and_auto_tensorrt(monkeypatch, capsys):
    _fake_machine(monkeypatch, gpus=["NVIDIA L4"], packages=("tensorrt", "cupy"))
    assert cli.main(["backends", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["auto"] == "tensorrt"
    assert data["backends"]["tensorrt"] == {"available": True, "reason": "", "detail": "NVIDIA L4"}
    assert data["backends"]["torch"]["available"] is False
    assert "rtclassify[train]" in data["backends"]["torch"]["reason"]


def test_command_without_onnxruntime_says_auto_has_nothing_to_pick(monkeypatch, capsys):
    # it listed onnx as not available and then said "--backend auto picks: onnx"
    _fake_machine(monkeypatch)
    monkeypatch.setattr(gpu, "package_available", lambda m: False)
    assert cli.main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "onnx           not available: onnxruntime is not installed" in out
    assert "--backend auto picks: nothing" in out and "picks: onnx" not in out
    assert cli.main(["backends", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["auto"] is None


def test_command_without_cuda_build(monkeypatch, capsys):
    _fake_machine(monkeypatch, gpus=["NVIDIA L4"], packages=("tensorrt", "cupy"), cuda_build=False)
    assert cli.main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "cuda-frontend  not available: this build of rtclassify has no CUDA" in out


# ----------------------------------------------------------------------
# make_backend("auto" / "tensorrt")
# ----------------------------------------------------------------------
@pytest.fixture
def bundle(tmp_path):
    pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")
    import _rtc_bundle as tb

    from rtclassify.model import load_bundle

    return load_bundle(tb.write_bundle(tmp_path / "bundle"))


def test_auto_without_tensorrt_runs_onnx_and_says_why(monkeypatch, bundle):
    from rtclassify.model import OnnxBackend, make_backend

    _fake_machine(monkeypatch, packages=("cupy",))
    b = make_backend(bundle, "auto")
    assert isinstance(b, OnnxBackend) and b.name == "onnx"
    assert b.selection.startswith("auto: onnx (ONNX Runtime on the CPU; TensorRT not used: no GPU")
    assert "tensorrt is not installed" in b.selection
    assert make_backend(bundle, "onnx").selection == ""


def test_auto_falls_back_when_tensorrt_fails(monkeypatch, bundle):
    from rtclassify.model import OnnxBackend, make_backend
    from rtclassify.model import backend_tensorrt as bt

    _fake_machine(monkeypatch, gpus=["NVIDIA L4"], packages=("tensorrt", "cupy"))

    def failing(*a, **k):
        raise gpu.GpuUnavailableError("the TensorRT backend needs a CUDA GPU: driver too old")

    monkeypatch.setattr(bt, "TensorRTBackend", failing)
    b = make_backend(bundle, "auto")
    assert isinstance(b, OnnxBackend)
    assert "TensorRT failed: the TensorRT backend needs a CUDA GPU: driver too old" in b.selection


def test_explicit_tensorrt_names_what_is_missing(bundle):
    from rtclassify.errors import MissingDependencyError
    from rtclassify.model import make_backend

    if gpu.tensorrt_availability().available:
        pytest.skip("TensorRT can run here: tests/test_gpu.py covers it")
    if not gpu.package_available("tensorrt") or not gpu.package_available("cupy"):
        with pytest.raises(MissingDependencyError, match=r"rtclassify\[gpu\]"):
            make_backend(bundle, "tensorrt")
    else:
        with pytest.raises(gpu.GpuUnavailableError, match="needs a CUDA GPU"):
            make_backend(bundle, "tensorrt")


@pytest.mark.parametrize("threads", [0, 257, 10 ** 9, True, 1.5])
def test_threads_out_of_range_are_refused_by_name(threads):
    from rtclassify import Classifier
    from rtclassify.errors import ParameterError

    with pytest.raises(ParameterError, match="threads must be an integer from 1 to 256"):
        Classifier.load(threads=threads)


@pytest.mark.parametrize("error, shown", [(TypeError("factory function returned nullptr"),
                                           "TypeError: factory function returned nullptr"),
                                          (MemoryError("Out of memory allocating 2,147,483,648 bytes"),
                                           "MemoryError: Out of memory allocating")])
def test_auto_falls_back_whatever_stops_tensorrt(monkeypatch, bundle, error, shown):
    # cupy's OutOfMemoryError is a MemoryError; a TensorRT builder without a CUDA context raises TypeError
    from rtclassify.model import OnnxBackend, make_backend
    from rtclassify.model import backend_tensorrt as bt

    _fake_machine(monkeypatch, gpus=["NVIDIA L4"], packages=("tensorrt", "cupy"))

    def failing(*a, **k):
        raise error

    monkeypatch.setattr(bt, "TensorRTBackend", failing)
    b = make_backend(bundle, "auto")
    assert isinstance(b, OnnxBackend) and shown in b.selection


@pytest.mark.parametrize("options, words", [({"max_bacth": 4}, "unknown TensorRT option.*max_bacth"),
                                            ({"max_batch": 0}, "max_batch must be an integer from 1"),
                                            ({"fp16": "yes"}, "fp16 must be True or False"),
                                            ({"device": -1}, "device must be an integer from 0")])
@pytest.mark.parametrize("gpus", [(), ("NVIDIA L4",)])
def test_tensorrt_options_are_checked_on_every_machine(monkeypatch, bundle, options, words, gpus):
    from rtclassify.errors import ParameterError
    from rtclassify.model import make_backend

    _fake_machine(monkeypatch, gpus=list(gpus), packages=("tensorrt", "cupy") if gpus else ())
    with pytest.raises(ParameterError, match=words):
        make_backend(bundle, "auto", **options)


def test_a_driver_too_old_for_the_builds_cuda_runtime_is_reported(monkeypatch):
    _fake_machine(monkeypatch, gpus=["NVIDIA L4"], packages=("cupy",))
    monkeypatch.setattr(gpu, "cuda_runtime", lambda: (False, "CUDA driver version is insufficient for CUDA runtime "
                                                              "version"))
    a = gpu.cuda_frontend_availability()
    assert not a.available
    assert "CUDA driver version is insufficient" in a.reason and "update the NVIDIA driver" in a.reason
