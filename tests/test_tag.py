"""Offline tagging and its inputs (found in review): file names that are not UTF-8, a model with a fixed batch
of 1, a named pipe, plot names, a file's sample rate checked before any output, resample()'s input, device specs,
a closed backend, byte-swapped samples."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402
import soundfile as sf  # noqa: E402

from rtclassify import cli  # noqa: E402
from rtclassify.errors import BundleError, DeviceError, ParameterError, StateError  # noqa: E402
from rtclassify.model.classifier import Classifier  # noqa: E402

SR = 16000




@pytest.fixture(scope="module")
def signal():
    return tb.demo_signal(SR)[: 2 * SR]


# 1 -- a file name that is not valid UTF-8
def test_a_file_name_that_is_not_utf8_is_read_and_written(clf, bundle_dir, signal, tmp_path, capsys):
    ok = tmp_path / "ok.wav"
    sf.write(ok, signal, SR)
    bad = tmp_path / os.fsdecode(b"bad\xff.wav")  # held as a surrogate, as the command line gives it
    os.link(ok, os.fsencode(bad))
    want = clf.tag_file(ok)
    got = clf.tag_file(bad)
    np.testing.assert_array_equal(got.probs, want.probs)

    out = tmp_path / "o.csv"
    assert cli.main(["tag", str(ok), str(bad), "--bundle", str(bundle_dir), "--no-techniques", "--out",
                     str(out)]) == 0
    rows = out.read_text(encoding="utf-8").splitlines()
    assert {r.split(",")[0] for r in rows[1:]} == {str(ok), str(tmp_path / "bad\\xff.wav")}
    capsys.readouterr()
    assert cli.main(["tag", str(ok), str(bad), "--bundle", str(bundle_dir), "--no-techniques"]) == 0
    files = {json.loads(line)["file"] for line in capsys.readouterr().out.splitlines()}
    assert files == {str(ok), str(tmp_path / "bad\\xff.wav")}


def test_a_file_name_that_is_not_utf8_is_plotted(bundle_dir, signal, tmp_path):
    pytest.importorskip("matplotlib")
    bad = tmp_path / os.fsdecode(b"bad\xff.wav")
    sf.write(os.fsencode(bad), signal, SR)
    png = tmp_path / "p.png"
    assert cli.main(["tag", str(bad), "--bundle", str(bundle_dir), "--no-techniques", "--plot", str(png), "--out",
                     str(tmp_path / "o.jsonl")]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_are_written_with_out_once_every_file_is_tagged(bundle_dir, signal, tmp_path, capsys, monkeypatch):
    """A run that fails on its second file leaves the first file's plot as it was, as it leaves --out (the plot
    was written over at once); a plot path that is --out's, and an --out that is a file of the bundle, are
    refused before any work (the plot, and the bundle's model.json, were written over)."""
    import shutil

    import rtclassify.commands.tag as tag_cmd

    pytest.importorskip("matplotlib")
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, signal, SR)
    sf.write(b, signal, SR)
    out, png = tmp_path / "o.jsonl", tmp_path / "p.png"
    out.write_text("earlier\n")
    (tmp_path / "p-a.png").write_bytes(b"earlier plot")
    args = ["tag", str(a), str(b), "--bundle", str(bundle_dir), "--no-techniques", "--out", str(out), "--plot",
            str(png)]
    real_write = tag_cmd.write_jsonl
    calls = []

    def full_disk_at_the_second_file(f, result, file_field):
        calls.append(file_field)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_write(f, result, file_field)

    monkeypatch.setattr(tag_cmd, "write_jsonl", full_disk_at_the_second_file)
    assert cli.main(args) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_text() == "earlier\n" and (tmp_path / "p-a.png").read_bytes() == b"earlier plot"
    assert not (tmp_path / "p-b.png").exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
    monkeypatch.setattr(tag_cmd, "write_jsonl", real_write)
    real_plot, open_parts = tag_cmd.plot, []

    def plot_counting_open_parts(*a, **k):  # the plots written so far wait for the commit closed (a file each
        real_plot(*a, **k)                  # held open ran out of descriptors on a large batch)
        fds = os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []
        open_parts.append(sum(os.path.realpath(f"/proc/self/fd/{fd}").endswith(".part") for fd in fds))

    monkeypatch.setattr(tag_cmd, "plot", plot_counting_open_parts)
    assert cli.main(args) == 0
    assert all(n <= 2 for n in open_parts), open_parts  # --out's and the plot being written
    for name in ("p-a.png", "p-b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    same = str(tmp_path / "same.png")
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", same, "--plot", same]) == 2
    assert "is the --out file" in capsys.readouterr().err
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    before = (copy / "model.json").read_bytes()
    assert cli.main(["tag", str(a), "--bundle", str(copy), "--out", str(copy / "model.json")]) == 2
    assert "is a file of the model bundle" in capsys.readouterr().err
    assert (copy / "model.json").read_bytes() == before


# 2 -- a model exported with a batch of 1
def test_a_model_with_a_fixed_batch_of_one_tags_offline(clf, bundle_dir, signal, tmp_path):
    one = Classifier.load(tb.fixed_batch_bundle(bundle_dir, tmp_path / "one", 1))
    assert one.backend.max_batch == 1 and clf.backend.max_batch is None
    want = clf.tag(signal, SR)
    got = one.tag(signal, SR)
    assert len(got) == len(want) > 20
    np.testing.assert_allclose(got.probs, want.probs, atol=1e-6)
    path = tmp_path / "f.wav"
    sf.write(path, signal, SR, subtype="FLOAT")
    np.testing.assert_allclose(one.tag_file(path).probs, want.probs, atol=1e-6)
    w = np.random.default_rng(0).standard_normal((5, 32, 16)).astype(np.float32)
    np.testing.assert_allclose(one.backend.embed(w), clf.backend.embed(w), atol=1e-5)
    assert one.backend.run(w[:0]).shape == (0, 3)
    multi = one.multistream([0, 1], sample_rate=SR)  # one model run of two windows per hop
    multi.process(np.stack([signal, signal], 1))
    assert multi.last_frames


def test_a_model_with_a_fixed_batch_other_than_one_is_refused_at_load(bundle_dir, tmp_path):
    with pytest.raises(BundleError, match="model.onnx: has a fixed batch of 4 windows"):
        Classifier.load(tb.fixed_batch_bundle(bundle_dir, tmp_path / "four", 4))


# 3 -- a named pipe is opened once
def test_tag_file_reads_a_named_pipe(clf, signal, tmp_path):
    path = tmp_path / "f.wav"
    sf.write(path, signal, SR)
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    done = {}

    def tag():
        try:
            done["result"] = clf.tag_file(fifo)
        except Exception as exc:  # reported below
            done["error"] = exc

    t = threading.Thread(target=tag, daemon=True)
    t.start()
    try:
        with open(fifo, "wb") as w:
            w.write(path.read_bytes())
    except BrokenPipeError:
        pass  # the reader closed the pipe after the header
    t.join(20)
    if t.is_alive():
        open(fifo, "wb").close()  # let a reader that opens the pipe again see its end
        t.join(20)
        pytest.fail("tag_file opened the pipe a second time and waited for a writer")
    assert "error" not in done, done.get("error")
    np.testing.assert_array_equal(done["result"].probs, clf.tag_file(path).probs)


# 4 -- plot names
def test_plot_names_do_not_collide_with_a_stem_that_ends_in_a_count():
    from rtclassify.commands.tag import plot_paths

    got = plot_paths("p.png", ["a.wav", "a-2.wav", "sub/a.flac", "A.wav"])
    assert got == ["p-a.png", "p-a-2.png", "p-a-3.png", "p-A-4.png"]
    assert plot_paths("out/p.png", ["x/a.wav", "y/a.wav"]) == ["out/p-a.png", "out/p-a-2.png"]


# 5 -- every file's sample rate is checked before any output
def test_a_rate_the_session_cannot_take_is_refused_before_any_output(clf, bundle_dir, signal, tmp_path, capsys):
    ok, low = tmp_path / "ok.wav", tmp_path / "low.wav"
    sf.write(ok, signal, SR)
    sf.write(low, signal[:4000], 500)
    assert cli.main(["tag", str(ok), str(low), "--bundle", str(bundle_dir), "--no-techniques"]) == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert f"{low}: the sample rate must be a whole number of Hz from 1000 to 768000 (got 500)" in cap.err
    with pytest.raises(ParameterError, match=f"{low}: the sample rate"):
        clf.tag_file(low)


# 6 -- resample() takes mono float samples
def test_resample_refuses_integer_and_multichannel_samples():
    from rtclassify.audio.resample import resample

    x = (np.sin(np.arange(4800) / 10) * 20000).astype(np.int16)
    with pytest.raises(ParameterError, match=r"int16 / 32768"):
        resample(x, 48000, 16000)
    with pytest.raises(ParameterError, match=r"mono, shape \(n,\); got shape \(480, 2\)"):
        resample(np.zeros((480, 2), np.float32), 48000, 16000)
    y = resample(x / 32768.0, 48000, 16000)
    assert y.dtype == np.float32 and y.shape == (1600,) and 0.5 < np.abs(y).max() < 0.7


# 7 -- device specs
def test_device_specs_that_look_like_numbers_and_numpy_indices():
    from rtclassify.audio.devices import DeviceInfo, find_input_device

    devs = [DeviceInfo(0, "Built-in Mic", "ALSA", 2, 48000.0, is_default=True),
            DeviceInfo(3, "USB Audio", "ALSA", 2, 44100.0)]
    for spec in ("\u00b2", "--1", "1-"):
        with pytest.raises(DeviceError, match=f"no input device matches {spec!r}"):
            find_input_device(spec, devs)
    assert find_input_device(np.int64(3), devs).index == 3
    assert find_input_device(" 3 ", devs).index == 3
    with pytest.raises(DeviceError, match="no input device with index -1"):
        find_input_device("-1", devs)
    with pytest.raises(DeviceError, match="device must be an index or a name"):
        find_input_device(np.True_, devs)


# 8 -- a closed backend
def test_a_closed_backend_says_so(bundle_dir, signal):
    c = Classifier.load(bundle_dir)
    w = np.zeros((1, 32, 16), np.float32)
    c.backend.close()
    for call in (c.backend.run, c.backend.run_unchecked, c.backend.embed, lambda _: c.tag(signal, SR)):
        with pytest.raises(StateError, match="model.onnx: the backend was closed"):
            call(w)


# 9 -- byte-swapped samples
@pytest.mark.parametrize("dtype", ["float32", "float64", "int16"])
def test_byte_swapped_samples_give_what_native_ones_give(clf, signal, dtype):
    x = (signal * 32767).astype(dtype) if dtype == "int16" else signal.astype(dtype)
    swapped = x.astype(x.dtype.newbyteorder(">" if x.dtype.byteorder in "=<" else "<"))
    assert not swapped.dtype.isnative and np.array_equal(swapped, x)
    np.testing.assert_array_equal(clf.tag(swapped, SR).probs, clf.tag(x, SR).probs)
    for block in (swapped, np.stack([swapped, swapped], 1)):
        s, ref = clf.stream(sample_rate=SR, max_block=4096), clf.stream(sample_rate=SR, max_block=4096)
        s.process(block)
        ref.process(x if block.ndim == 1 else np.stack([x, x], 1))
        np.testing.assert_array_equal([f.probs for f in s.last_frames], [f.probs for f in ref.last_frames])
    m = clf.multistream([0, 1], sample_rate=SR)
    m.process(np.stack([swapped, swapped], 1))
    assert m.last_frames


def test_byte_swapped_examples_are_read_as_native_ones(signal):
    from rtclassify.learn.examples import load_examples

    x = (signal * 32767).astype(np.int16)
    got = load_examples([(x.astype(">i2"), SR)], None, "positives")
    want = load_examples([(x, SR)], None, "positives")
    np.testing.assert_array_equal(got[0].audio, want[0].audio)


def test_tag_and_learn_use_the_machines_cores_by_default(monkeypatch):
    """`rtclassify tag` ran one inference thread on any machine (44x real time where two gave 66x), and `learn`
    its embedding runs on one (30 s where two took 19 s, for the same bundle)."""
    import os

    from rtclassify.cli import build_parser
    from rtclassify.model.classifier import OFFLINE_THREADS

    assert OFFLINE_THREADS == max(1, min(8, len(os.sched_getaffinity(0))))
    assert build_parser().parse_args(["tag", "x.wav"]).threads == OFFLINE_THREADS
    assert build_parser().parse_args(["tag", "x.wav", "--threads", "1"]).threads == 1
    learn = ["learn", "--tag", "t", "x.wav", "--out", "o"]
    assert build_parser().parse_args(learn).threads == OFFLINE_THREADS
    assert build_parser().parse_args([*learn, "--threads", "1"]).threads == 1
