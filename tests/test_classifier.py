"""Classifier.load / tag / tag_file, the `rtclassify tag` command, and the runtime without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402
import soundfile as sf  # noqa: E402

from rtclassify import cli  # noqa: E402
from rtclassify.audio.files import AudioFileError  # noqa: E402
from rtclassify.detect.events import TagOff, TagOn  # noqa: E402
from rtclassify.errors import BundleError, ParameterError  # noqa: E402
from rtclassify.model.classifier import Classifier, TagResult  # noqa: E402

TESTS = Path(__file__).resolve().parent




def test_load_labels_config(clf, bundle_dir):
    assert clf.labels == tuple(tb.LABELS)
    cfg = clf.config
    assert cfg["frontend"]["n_mels"] == 32 and cfg["input"]["window_frames"] == 16
    cfg["labels"].append("mutated")
    assert clf.config["labels"] == tb.LABELS  # a copy
    assert clf.sample_rate == 16000 and clf.backend.name == "onnx"
    assert "rtc-test" in repr(clf)


def test_load_errors(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        Classifier.load(tmp_path / "missing")
    with pytest.raises(ParameterError, match="backend"):
        Classifier.load(tb.write_bundle(tmp_path / "b"), backend="cuda")


def test_tag_result(clf):
    x = tb.demo_signal(16000)
    r = clf.tag(x, 16000)
    assert isinstance(r, TagResult) and r.labels == clf.labels
    n = len(r)
    assert r.times.shape == (n,) and r.probs.shape == (n, 3) and r.active.shape == (n, 3)
    assert r.probs.dtype == np.float32 and r.active.dtype == bool and r.smoothed.shape == (n, 3)
    hop_s = clf.bundle.hop_frames * clf.bundle.hop_length / clf.bundle.sample_rate
    np.testing.assert_allclose(np.diff(r.times), hop_s)
    assert r.duration == pytest.approx(4.0)
    assert n == len(range(clf.bundle.hop_frames - 1 + clf.bundle.lookahead_frames,
                          1 + (len(x) - 512) // 256, clf.bundle.hop_frames))
    # the low tone (0.5-1.5 s) turns 'low' on and the silence after it turns it off; 'high' follows the high tone
    lo = r.active[:, 0]
    assert lo[(r.times > 0.7) & (r.times < 1.4)].all() and not lo[(r.times > 1.7) & (r.times < 2.0)].any()
    hi = r.active[:, 1]
    assert hi[(r.times > 2.3) & (r.times < 3.2)].all() and not hi[r.times < 0.4].any()
    # events: alternate on/off per tag, final state all off, event_times are output times
    for tag in clf.labels:
        kinds = [type(e) for e in r.events if e.tag == tag]
        assert kinds == [TagOn, TagOff] * (len(kinds) // 2)
    assert len(r.event_times) == len(r.events) and set(r.event_times) <= set(r.times) | {r.duration}
    assert r.active_tags(int(np.argmin(abs(r.times - 2.5)))) == ["low", "high", "any"]


def test_tag_stereo_layouts_and_channel(clf):
    x = tb.demo_signal(44100)
    y = tb.demo_signal(44100, seed=5)[::-1].copy()
    st_n2 = np.stack([x, y], axis=1)
    r_n2 = clf.tag(st_n2, 44100)
    r_2n = clf.tag(st_n2.T.copy(), 44100)
    np.testing.assert_array_equal(r_n2.probs, r_2n.probs)
    mean = st_n2.mean(axis=1, dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(r_n2.probs, clf.tag(mean, 44100).probs)
    np.testing.assert_array_equal(clf.tag(st_n2, 44100, channel=1).probs, clf.tag(y, 44100).probs)
    # int16 and float64 inputs are accepted
    np.testing.assert_array_equal(clf.tag(x.astype(np.float64), 44100).probs, clf.tag(x, 44100).probs)
    assert len(clf.tag((x * 32767).astype(np.int16), 44100)) == len(r_n2)


@pytest.mark.parametrize("audio, kwargs, text", [
    (np.zeros((4, 4, 100), np.float32), {}, "shape"),
    (np.zeros((1000, 20), np.float32), {}, "at most 8 channels"),
    (np.zeros((20, 20), np.float32), {}, "at most 8 channels"),
    (np.zeros(1000, np.float32), {"channel": 1}, "out of range"),
    (np.zeros((1000, 2), np.float32), {"channel": 2}, "out of range"),
    # a float channel was said to be out of range
    (np.zeros((1000, 2), np.float32), {"channel": 1.0}, r"^channel must be a whole number .*got float 1\.0$"),
    (np.zeros(1000, np.int32), {}, r"audio must be .*int32.*scale integer PCM"),
    (np.zeros(1000, np.complex64), {}, "audio must be .*complex64"),
    (np.zeros(()), {}, "shape"),
])
def test_tag_wrong_audio(clf, audio, kwargs, text):
    with pytest.raises(ParameterError, match=text):
        clf.tag(audio, 16000, **kwargs)


@pytest.mark.parametrize("path", [5, None, 2.5])
def test_tag_file_of_something_that_is_not_a_path_is_named(clf, path):
    """tag_file(5) and tag_file(None) were bare TypeErrors from pathlib naming no parameter."""
    with pytest.raises(ParameterError, match=rf"^an audio file's path must be a str, bytes or a path .*got "
                                             rf"{type(path).__name__}"):
        clf.tag_file(path)


def test_tag_file_takes_a_path_in_bytes(clf, tmp_path):
    import soundfile as sf

    path = tmp_path / "x.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    assert len(clf.tag_file(os.fsencode(path)).times) == len(clf.tag_file(path).times) > 0


@pytest.mark.parametrize("rate", [0, -44100, 44100.5, float("nan"), "44100"])
def test_tag_bad_sample_rate(clf, rate):
    with pytest.raises(ParameterError, match="sample_rate"):
        clf.tag(np.zeros(1000, np.float32), rate)


def test_tag_takes_float16_as_float32(clf):
    x = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float16)
    assert np.array_equal(clf.tag(x, 16000).probs, clf.tag(x.astype(np.float32), 16000).probs)


def test_tag_empty_and_short(clf):
    r = clf.tag(np.zeros(0, np.float32), 16000)
    assert r.probs.shape == (0, 3) and r.times.shape == (0,) and r.events == []
    assert len(clf.tag(np.zeros(100, np.float32), 48000)) == 0
    for empty in (np.zeros((0, 1), np.float32), np.zeros((0, 2), np.float32)):  # no samples yet: not transposed
        r = clf.tag(empty, 16000)
        assert r.probs.shape == (0, 3) and r.duration == 0.0
    with pytest.raises(ParameterError, match="no channels"):
        clf.tag(np.zeros((1000, 0), np.float32), 16000)


def test_tag_progress(clf):
    calls = []
    x = np.zeros(200000, np.float32)
    clf.tag(x, 16000, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (200000, 200000) and len(calls) == 4


def test_tag_file_equals_tag(clf, tmp_path):
    x = tb.demo_signal(44100)
    st = np.stack([x, 0.5 * x], axis=1)
    path = tmp_path / "s.wav"
    sf.write(path, st, 44100, subtype="FLOAT")
    a = clf.tag_file(path)
    b = clf.tag(st, 44100)
    np.testing.assert_array_equal(a.probs, b.probs)
    assert a.events == b.events
    np.testing.assert_array_equal(clf.tag_file(path, channel=1).probs, clf.tag(0.5 * x, 44100).probs)
    with pytest.raises(AudioFileError, match="no such file"):
        clf.tag_file(tmp_path / "none.wav")
    with pytest.raises(ParameterError, match="out of range"):
        clf.tag_file(path, channel=3)


def _cli_events(lines):
    return [(d["time"], d["event"], d["tag"]) for d in lines if "event" in d]


@pytest.mark.parametrize("rate", [16000, 48000])
def test_session_process_on_file_gives_same_events_as_tag_command(bundle_dir, clf, tmp_path, rate, capsys):
    """`rtclassify tag FILE` and session.process over the same file in any block size agree."""
    x = tb.demo_signal(rate, seed=1)
    path = tmp_path / "f.wav"
    sf.write(path, x, rate, subtype="PCM_16")
    out = tmp_path / "out.jsonl"
    assert cli.main(["tag", str(path), "--bundle", str(bundle_dir), "--out", str(out)]) == 0
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    frames = [d for d in lines if "probs" in d]
    expected = _cli_events(lines)
    assert expected and len(frames) > 50
    for blocksize in (64, 256, 1000, 4096, 48000):
        s = clf.stream(sample_rate=rate, max_block=1024, level_rate=0)
        got, times = [], []
        with sf.SoundFile(path) as f:
            for block in f.blocks(blocksize, dtype="float32"):
                for e in s.process(block):
                    got.append(e)
                for fr in s.last_frames:
                    times += [fr.time] * len(fr.events)
        tail = s.flush()
        times += [s.stream_time] * len(tail)
        got += tail
        assert [(round(t, 6), e.kind, e.tag) for e, t in zip(got, times)] == expected, blocksize


def test_tag_command_formats_and_errors(bundle_dir, tmp_path, capsys):
    x = tb.demo_signal(16000)
    a, b = tmp_path / "a.wav", tmp_path / "b.flac"
    sf.write(a, x, 16000)
    sf.write(b, np.stack([x, x], 1), 22050)
    assert cli.main(["tag", str(a), str(b), "--bundle", str(bundle_dir), "--format", "csv", "--no-techniques"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "file,time,low,high,any"
    assert {r.split(",")[0] for r in rows[1:]} == {str(a), str(b)}
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--format", "csv"]) == 0  # trackers on by default
    assert capsys.readouterr().out.splitlines()[0] == ("time,low,high,any,pitch,vibrato,vibrato_rate,"
                                                        "vibrato_extent,tremolo,tremolo_rate,tremolo_depth")
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir)]) == 0
    objs = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert set(objs[0]) == {"time", "probs", "active", "pitch", "vibrato", "tremolo"}
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--no-techniques"]) == 0
    objs = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    frame = objs[0]
    assert set(frame) == {"time", "probs", "active"} and set(frame["probs"]) == set(tb.LABELS)
    ev = [o for o in objs if "event" in o]
    assert ev and all(set(o) - {"prob"} == {"time", "event", "tag"} and o["event"] in ("on", "off") for o in ev)
    # missing and unsupported files: one line, exit 1
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    for f in (tmp_path / "missing.wav", bad):
        assert cli.main(["tag", str(f), "--bundle", str(bundle_dir)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(f) in err
    assert cli.main(["tag", str(a), "--bundle", str(tmp_path / "nob")]) == 1
    assert "nob" in capsys.readouterr().err
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--channel", "3"]) == 1
    assert "--channel 3" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["tag", str(a), "--format", "xml"])
    assert exc.value.code == 2


def test_tag_command_says_what_it_could_not_tag(bundle_dir, tmp_path, capsys):
    """A rate the trackers cannot take is refused before any file is tagged (and named, with the way out); NaN
    samples are counted; a file too short for one output says so."""
    x = tb.demo_signal(16000)
    ok, low = tmp_path / "ok.wav", tmp_path / "low.wav"
    sf.write(ok, x, 16000)
    sf.write(low, x[::8], 2000)
    assert cli.main(["tag", str(ok), str(low), "--bundle", str(bundle_dir)]) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and f"{low}: 2000 Hz is outside the 4000-384000 Hz" in cap.err and "--no-techniques" in cap.err
    assert cli.main(["tag", str(ok), str(low), "--bundle", str(bundle_dir), "--no-techniques"]) == 0
    capsys.readouterr()

    nan = tmp_path / "nan.wav"
    y = x.copy()
    y[1000:1100] = np.nan
    sf.write(nan, y, 16000, subtype="FLOAT")
    assert cli.main(["tag", str(nan), "--bundle", str(bundle_dir)]) == 0
    assert f"warning: {nan}: 100 NaN or infinite sample(s) were taken as 0" in capsys.readouterr().err

    short = tmp_path / "short.wav"
    sf.write(short, x[:300], 16000)
    assert cli.main(["tag", str(short), "--bundle", str(bundle_dir)]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and f"{short}: 300 sample(s) (18.8 ms) are fewer than one output of the model needs" in cap.err
    one = tmp_path / "one.wav"
    sf.write(one, x[:1], 44100)  # said "0.000 s"
    assert cli.main(["tag", str(one), "--bundle", str(bundle_dir), "--no-techniques"]) == 0
    assert f"{one}: 1 sample(s) (0.0227 ms) are fewer than" in capsys.readouterr().err
    empty = tmp_path / "empty.wav"
    sf.write(empty, x[:0], 16000)
    assert cli.main(["tag", str(empty), "--bundle", str(bundle_dir), "--plot", str(tmp_path / "e.png")]) == 0
    assert f"{empty}: no samples: nothing to tag, no plot" in capsys.readouterr().err  # no PNG, said
    assert not (tmp_path / "e.png").exists()
    assert cli.main(["tag", "-", str(one), "--bundle", str(bundle_dir)]) == 1  # said "-: no such file"
    assert "-: standard input can be tagged as the only FILE, not among others" in capsys.readouterr().err


def test_tag_command_refuses_a_pipe_among_other_files(bundle_dir, tmp_path, capsys):
    import os

    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)  # never opened: the check reads only its type
    other = tmp_path / "a.wav"
    sf.write(other, tb.demo_signal(16000)[:16000], 16000)
    assert cli.main(["tag", str(other), str(fifo), "--bundle", str(bundle_dir)]) == 1
    assert f"{fifo}: a pipe can be tagged as the only FILE" in capsys.readouterr().err


def test_tag_command_reads_standard_input_and_a_pipe_alone(bundle_dir, tmp_path):
    """`ffmpeg -i take.m4a -f wav - | rtclassify tag -` (a format libsndfile cannot read, converted on the fly)
    was refused: standard input or a pipe, the only FILE, is read once as it comes, as a file gives it."""
    import os
    import subprocess
    import sys
    import threading

    x = tb.demo_signal(16000)[: 2 * 16000]
    wav = tmp_path / "a.wav"
    sf.write(wav, x, 16000)
    # (run outside the checkout: `python -m` puts the working directory first on sys.path, and the package to test
    # is the installed one; in CI the checkout has no compiled extension)
    cmd = [sys.executable, "-m", "rtclassify.cli", "tag", "--bundle", str(bundle_dir), "--format", "csv"]
    from_file = subprocess.run(cmd + [str(wav)], capture_output=True, timeout=120, cwd=tmp_path)
    assert from_file.returncode == 0, from_file.stderr
    from_stdin = subprocess.run(cmd + ["-"], input=wav.read_bytes(), capture_output=True, timeout=120, cwd=tmp_path)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout and from_file.stdout.count(b"\n") > 10
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(wav.read_bytes()))
    writer.start()
    from_pipe = subprocess.run(cmd + [str(fifo)], capture_output=True, timeout=120, cwd=tmp_path)
    writer.join(30)
    assert from_pipe.returncode == 0, from_pipe.stderr
    assert from_pipe.stdout == from_file.stdout
    bad = subprocess.run(cmd + ["-"], input=b"not audio", capture_output=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 1 and b"- (standard input): cannot read audio" in bad.stderr
    assert b"cut short" not in from_stdin.stderr
    # a writer that died: the WAV header declares 2 s, a quarter of it came (a cut file is said by info(); a
    # stream's header is read once, and the stream was tagged as far as it went without a word)
    cut = subprocess.run(cmd + ["-"], input=wav.read_bytes()[: 44 + 16000], capture_output=True, timeout=120,
                         cwd=tmp_path)
    assert cut.returncode == 0
    assert b"warning: -: the stream is cut short: its header declares 2.000 s of audio and 0.500 s came" in cut.stderr


def test_tag_command_plot(bundle_dir, tmp_path):
    pytest.importorskip("matplotlib")
    x = tb.demo_signal(16000)
    a = tmp_path / "a.wav"
    sf.write(a, x, 16000)
    png = tmp_path / "p.png"
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--plot", str(png), "--out",
                     str(tmp_path / "o.jsonl")]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tag_command_plot_to_a_missing_folder_fails_before_tagging(bundle_dir, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from rtclassify.model.classifier import Classifier

    a = tmp_path / "a.wav"
    sf.write(a, tb.demo_signal(16000)[:16000], 16000)
    monkeypatch.setattr(Classifier, "tag_file", lambda *a, **k: pytest.fail("tagged before checking --plot"))
    png = tmp_path / "no" / "p.png"
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--plot", str(png)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err and str(png) in err


def test_tag_command_keeps_an_existing_output_when_it_fails(bundle_dir, tmp_path, capsys):
    a, bad = tmp_path / "a.wav", tmp_path / "bad.flac"
    sf.write(a, tb.demo_signal(16000)[:32000], 16000)
    rng = np.random.default_rng(0)
    sf.write(bad, 0.5 * rng.standard_normal(160000), 16000)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)  # damaged: its header reads, its frames do not
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.jsonl"
    out.write_text("earlier results\n")
    # a bad hop, and a second file that cannot be decoded after the first was written
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--hop", "10", "--out", str(out)]) == 1
    assert cli.main(["tag", str(a), str(bad), "--bundle", str(bundle_dir), "--out", str(out)]) == 1
    assert "bad.flac" in capsys.readouterr().err
    assert out.read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "bad.flac", "out.jsonl"]  # no temporary left
    # success replaces it, with the permissions it had
    out.chmod(0o640)
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", str(out), "--no-techniques"]) == 0
    assert json.loads(out.read_text().splitlines()[0])["probs"] and (out.stat().st_mode & 0o777) == 0o640
    # the output may not be one of the inputs
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", str(a)]) == 2  # a wrong argument
    assert "one of the audio files" in capsys.readouterr().err
    assert sf.info(a).frames == 32000


def test_tag_command_format_from_the_extension(bundle_dir, tmp_path, capsys):
    a = tmp_path / "a.wav"
    sf.write(a, tb.demo_signal(16000)[:32000], 16000)
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", str(tmp_path / "o.csv")]) == 0
    assert (tmp_path / "o.csv").read_text().startswith("time,low,high,any")
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", str(tmp_path / "o.CSV"),
                     "--format", "jsonl"]) == 1
    assert "--format is jsonl" in capsys.readouterr().err
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", str(tmp_path / "o.txt"),
                     "--format", "csv"]) == 0
    assert (tmp_path / "o.txt").read_text().startswith("time,")


def test_tag_command_write_errors_are_one_line(bundle_dir, tmp_path, capsys):
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    a = tmp_path / "a.wav"
    sf.write(a, tb.demo_signal(16000)[:32000], 16000)
    assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--out", "/dev/full"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write to /dev/full" in err
    assert os.path.exists("/dev/full") and not os.path.isfile("/dev/full")  # written to, never replaced


def test_tag_command_plot_names_and_formats(bundle_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    a = tmp_path / "a.wav"
    (tmp_path / "sub").mkdir()
    sf.write(a, tb.demo_signal(16000)[:32000], 16000)
    sf.write(tmp_path / "sub" / "a.wav", tb.demo_signal(16000)[:16000], 16000)
    png = tmp_path / "p.png"
    assert cli.main(["tag", str(a), str(tmp_path / "sub" / "a.wav"), "--bundle", str(bundle_dir), "--plot", str(png),
                     "--out", str(tmp_path / "o.jsonl")]) == 0
    assert (tmp_path / "p-a.png").is_file() and (tmp_path / "p-a-2.png").is_file()
    for plot, words in ((tmp_path / "p.txt", "cannot write .txt"), (tmp_path / "sub", "is a folder")):
        assert cli.main(["tag", str(a), "--bundle", str(bundle_dir), "--plot", str(plot)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err


def _run_blocked(code: str, bundle_dir) -> dict:
    """Run code in a fresh interpreter where importing torch (or matplotlib) fails and is recorded."""
    prelude = textwrap.dedent("""
        import json, sys
        attempts = []
        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                root = name.split(".")[0]
                if root in BLOCKED:
                    attempts.append(name)
                    raise ImportError(f"{name} is blocked for this test")
                return None
        sys.meta_path.insert(0, _Blocker())
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=str(TESTS))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_runtime_without_torch(bundle_dir):
    code = f"""
        BLOCKED = {{"torch"}}
        import numpy as np
        import rtclassify
        from rtclassify import Classifier
        from rtclassify.errors import MissingDependencyError
        import _rtc_bundle as tb
        clf = Classifier.load({str(bundle_dir)!r})
        r = clf.tag(tb.demo_signal(44100), 44100)
        s = clf.stream(sample_rate=48000)
        s.process(np.zeros(48000, np.float32))
        try:
            Classifier.load({str(bundle_dir)!r}, backend="torch")
            torch_error = None
        except MissingDependencyError as exc:
            torch_error = str(exc)
        print(json.dumps({{"n": len(r), "on": sum(e.kind == "on" for e in r.events),
                          "torch_loaded": "torch" in sys.modules, "attempts_runtime": attempts,
                          "torch_error": torch_error}}))
    """
    res = _run_blocked(code, bundle_dir)
    assert res["n"] > 50 and res["on"] > 0
    assert not res["torch_loaded"]
    # the only torch import attempt is the explicit backend="torch" request
    assert res["attempts_runtime"] == ["torch"]
    assert "train" in res["torch_error"]


def test_tag_and_load_never_try_torch(bundle_dir):
    code = f"""
        BLOCKED = {{"torch"}}
        from rtclassify import Classifier
        import _rtc_bundle as tb
        clf = Classifier.load({str(bundle_dir)!r})
        r = clf.tag(tb.demo_signal(16000), 16000)
        print(json.dumps({{"attempts": attempts, "n": len(r)}}))
    """
    res = _run_blocked(code, bundle_dir)
    assert res["attempts"] == [] and res["n"] > 50


def test_plot_without_matplotlib_names_extra(bundle_dir, tmp_path):
    a = tmp_path / "a.wav"
    sf.write(a, tb.demo_signal(16000)[:16000], 16000)
    code = f"""
        BLOCKED = {{"matplotlib"}}
        from rtclassify import cli
        import contextlib, io
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = cli.main(["tag", {str(a)!r}, "--bundle", {str(bundle_dir)!r}, "--plot", {str(tmp_path / 'p.png')!r}])
        print(json.dumps({{"rc": rc, "err": err.getvalue()}}))
    """
    res = _run_blocked(code, bundle_dir)
    assert res["rc"] == 1 and "plot" in res["err"] and "matplotlib" in res["err"]


def test_tag_file_progress_is_called_as_its_docstring_says(clf, tmp_path):
    """The docstring said "the fraction done (0 to 1)"; the call is progress(samples_done, samples_total)."""
    import inspect

    doc = inspect.getdoc(Classifier.tag_file)
    assert "progress(samples_done, samples_total)" in doc and "fraction done (0 to 1)" not in doc
    path = tmp_path / "p.wav"
    n = 200_000
    sf.write(path, np.zeros((n, 2), np.float32), 16000)
    calls = []
    clf.tag_file(path, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 1 and calls[-1] == (n, n) and all(t == n for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_pickling_a_classifier_says_to_load_it_where_it_runs(clf):
    # ONNX Runtime's "cannot pickle 'InferenceSession' object" did not say what to do (a host handing a
    # Classifier to multiprocessing)
    import copy
    import pickle

    for attempt in (lambda: pickle.dumps(clf), lambda: copy.deepcopy(clf)):
        with pytest.raises(TypeError, match=r"a Classifier cannot be pickled or deep-copied .*Classifier\.load\("):
            attempt()
    with pytest.raises(TypeError, match="OnnxBackend objects cannot be pickled"):
        pickle.dumps(clf.backend)
    twin = copy.copy(clf)  # a shallow copy still works, sharing the backend
    assert twin.backend is clf.backend and twin.labels == clf.labels
    assert copy.copy(clf.backend).run is not None  # and a backend's shallow copy (it shares the session)
