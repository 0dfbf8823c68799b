"""``rtclassify data build`` output folder: option checks, --out, free space, rebuilding into a folder that
holds a build (merge, refusal, interruption)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("scipy")

from _data_build import MISSING, needs_tools, tree_digest  # noqa: E402

from rtclassify.cli import main  # noqa: E402
from rtclassify.commands import data as data_cmd  # noqa: E402
from rtclassify.errors import MissingDependencyError, ParameterError  # noqa: E402
from rtclassify.train.data import build as B, samples  # noqa: E402

#: a tiny recipe: 7 clips of 1 s (train 5, val 1, test 1)
TINY = dict(hours=0.002, seed=2, clip_seconds=1.0)


def _build(out, **kw):
    args = dict(TINY, **kw)
    return B.build_dataset(out, args.pop("hours"), args.pop("seed"), workers=1, progress=False, **args)


# --------------------------------------------------------------------------- options (no rendering)

@pytest.mark.parametrize("argv, option", [
    (["--splits="], "--splits"),
    (["--splits", "train,,val"], "--splits"),
    (["--splits", "tset"], "--splits"),
    (["--splits", "test,test"], "--splits"),
    (["--extra-soundfonts="], "--extra-soundfonts"),
    (["--extra-soundfonts", "TimGM6mb"], "--extra-soundfonts"),
    (["--extra-soundfonts", "STK,STK"], "--extra-soundfonts"),
    (["--extra-nonmusic", "rain"], "--extra-nonmusic"),  # already a kind of every build
    (["--extra-nonmusic", "drips,drips"], "--extra-nonmusic"),
    (["--clip-seconds", "0.5"], "--clip-seconds"),
    (["--clip-seconds", "1e6"], "--clip-seconds"),
    (["--hours", "10001", "--clip-seconds", "600"], "--hours"),  # 1e9 h: see test_planned_audio_is_bounded
    (["--vibrato", "2"], "--vibrato"),
    (["--solo", "1.5"], "--solo"),
    (["--sample-parts", "-0.1"], "--sample-parts"),
    (["--npm-cache="], "--npm-cache"),
    (["--out="], "--out"),
])
def test_bad_options_are_usage_errors(tmp_path, capsys, argv, option):
    out = tmp_path / "a-file"  # an --out that the old code failed on with a traceback, had it gone on
    out.write_text("keep me")
    with pytest.raises(SystemExit) as info:
        main(["data", "build", "--out", str(out), "--hours", "0.002", "--clip-seconds", "1", "--no-progress"] + argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"argument {option}:" in err[-1] and "Traceback" not in "".join(err)
    assert out.read_text() == "keep me"


def test_cli_limits_are_the_builders():
    assert data_cmd.SPLITS == B.SPLITS and data_cmd.SOUNDFONTS_EXTRA == B.SOUNDFONTS_EXTRA
    assert data_cmd.NONMUSIC_EXTRA == B.NONMUSIC_EXTRA
    assert data_cmd.MAX_HOURS == B.MAX_HOURS
    assert (data_cmd.MIN_CLIP_SECONDS, data_cmd.MAX_CLIP_SECONDS) == (B.MIN_CLIP_SECONDS, B.MAX_CLIP_SECONDS)


def test_planned_audio_is_bounded():
    # hours capped before anything is planned (1e9 h was a MemoryError)
    with pytest.raises(ParameterError, match="hours"):
        B.split_sizes(1e9, 10)
    assert sum(B.split_sizes(B.MAX_HOURS, 10).values()) == 3_600_000
    # the 3-clip floor renders at most 3x the hours asked for: less than one clip is refused
    with pytest.raises(ParameterError, match="--hours 0.001 .*--clip-seconds 600"):
        B.plan_clips(0.001, 1, clip_seconds=600)
    assert len(B.plan_clips(600 / 3600, 1, clip_seconds=600)) == 3
    with pytest.raises(ParameterError, match="clip_seconds"):
        B.split_sizes(1, 1e6)
    with pytest.raises(ParameterError, match="hours"):
        B.build_dataset("unused", B.MAX_HOURS * 2, 1)
    with pytest.raises(ParameterError, match="clip_seconds"):
        B.build_dataset("unused", 1, 1, clip_seconds=601)


def test_free_space_is_checked_first(tmp_path, monkeypatch, capsys):
    free = shutil.disk_usage(tmp_path)._replace(free=1_000_000)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free)
    monkeypatch.setattr(B, "fetch_samples", lambda *a, **k: pytest.fail("fetched before the checks"))
    out = tmp_path / "new" / "data"
    # 180 clips of 1 s: 180 * (16000 + 8192) bytes
    assert main(["data", "build", "--out", str(out), "--hours", "0.05", "--clip-seconds", "1", "--no-progress"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"--out {out}" in line and "4.35 MB" in line and "1 MB is free" in line and "180 clips" in line
    assert not (tmp_path / "new").exists()  # the folders it made are gone


@pytest.mark.parametrize("kind", ["file", "under-file", "proc"])
def test_unusable_out_is_one_error_naming_it(tmp_path, monkeypatch, capsys, kind):
    if kind == "proc" and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    monkeypatch.setattr(B, "fetch_samples", lambda *a, **k: pytest.fail("fetched before --out was checked"))
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "under-file": tmp_path / "f" / "sub", "proc": Path("/proc/rtclassify-x")}[kind]
    with pytest.raises(ParameterError, match=f"--out {out}"):
        B.build_dataset(out, 0.002, 1, clip_seconds=1, progress=False)
    assert main(["data", "build", "--out", str(out), "--hours", "0.002", "--clip-seconds", "1", "--no-progress"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"--out {out}" in line
    assert (tmp_path / "f").read_text() == "x"


def test_out_holding_other_files_or_builds_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(B, "fetch_samples", lambda *a, **k: pytest.fail("fetched before --out was checked"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="holds files that are not a data set build .notes.txt."):
        B.build_dataset(other, 0.002, 1, clip_seconds=1, progress=False)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    built = tmp_path / "built"
    built.mkdir()
    (built / "manifest.json").write_text(json.dumps({"recipe": B.RECIPE, "recipe_version": B.RECIPE_VERSION,
                                                     "seed": 2, "hours_requested": 0.01, "clip_seconds": 10.0,
                                                     "splits": {}}))
    with pytest.raises(ParameterError, match=r"--out .* holds another build \(seed 2, 0.01 h; .*--seed, --hours, "
                                             r"--clip-seconds.*\); give an empty or new folder"):
        B.build_dataset(built, 0.002, 1, clip_seconds=1, progress=False)
    (built / "manifest.json").write_text("{}")
    with pytest.raises(ParameterError, match="not written by 'rtclassify data build'"):
        B.build_dataset(built, 0.002, 1, clip_seconds=1, progress=False)


def test_build_gives_its_npm_cache_to_the_dependency_check(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(B, "check_dependencies", lambda extra=(), npm_cache=None: seen.append(npm_cache))

    def stop(*a, **k):
        raise RuntimeError("stop here")

    monkeypatch.setattr(B, "fetch_samples", stop)
    with pytest.raises(RuntimeError, match="stop here"):
        B.build_dataset(tmp_path / "d", 0.002, 1, clip_seconds=1, npm_cache=tmp_path / "cache", progress=False)
    assert seen == [tmp_path / "cache"]
    assert not (tmp_path / "d").exists()  # nothing left behind: the split folders come after the fetch


@needs_tools
def test_npm_check_looks_in_the_given_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    for inst in samples.SAMPLE_INSTRUMENT_TAGS:
        (cache / samples.package_name(inst)).mkdir(parents=True)
        (cache / samples.package_name(inst) / "package.json").write_text("{}")
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "npm" else which(name, *a, **k))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RTCLASSIFY_NPM_CACHE", raising=False)
    B.check_dependencies((), cache)  # no error: the given cache is complete
    with pytest.raises(MissingDependencyError, match="npm not found and the npm cache .*home"):
        B.check_dependencies(())


# --------------------------------------------------------------------------- rebuilding (tiny renders)

@pytest.fixture(scope="module")
def full(tmp_path_factory):
    if MISSING:
        pytest.skip("data tools missing: " + "; ".join(MISSING))
    out = tmp_path_factory.mktemp("full") / "d"
    _build(out)
    return out, tree_digest(out)


def _copy(full, tmp_path) -> Path:
    out = tmp_path / "d"
    shutil.copytree(full[0], out)
    return out


def _interrupt_after(monkeypatch, n):
    """Make the build stop (like a Ctrl-C) after writing ``n`` clips."""
    import soundfile

    real, written = soundfile.write, []

    def write(*a, **k):
        if len(written) == n:
            raise KeyboardInterrupt
        written.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(soundfile, "write", write)  # in this process: the workers only render


@needs_tools
def test_interrupted_rebuild_leaves_a_folder_training_refuses(full, tmp_path, monkeypatch):
    out = _copy(full, tmp_path)
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        _build(out)
    assert not (out / "manifest.json").exists() and not (out / "manifest.jsonl").exists()
    for read in (lambda: B.load_split(out, "train"), lambda: B.read_manifest(out), lambda: B.provenance(out),
                 lambda: B.split_fingerprint(out, "val")):
        with pytest.raises(ParameterError, match="did not finish.*run the same build again"):
            read()
    # the same build finishes it: the same files as the first build
    monkeypatch.undo()
    _build(out)
    assert tree_digest(out) == full[1]


@needs_tools
def test_manifest_is_written_last_through_temporary_files(full, tmp_path, monkeypatch):
    out = _copy(full, tmp_path)
    events = []
    real_render, real_write = B._render_jobs, B._write_atomic

    def render(*a, **k):
        for item in real_render(*a, **k):
            events.append(("clip", (out / "manifest.json").exists(), (out / "manifest.jsonl").exists()))
            yield item

    def write(path, text):
        events.append(("write", path.name))
        real_write(path, text)

    monkeypatch.setattr(B, "_render_jobs", render)
    monkeypatch.setattr(B, "_write_atomic", write)
    _build(out)
    assert events[0] == ("write", B.UNFINISHED)
    assert events[1:-2] == [("clip", False, False)] * 7  # no manifest while clips are written
    assert events[-2:] == [("write", "manifest.jsonl"), ("write", "manifest.json")]
    assert not (out / B.UNFINISHED).exists() and tree_digest(out) == full[1]


@needs_tools
def test_another_recipe_is_refused_and_changes_nothing(full, tmp_path):
    out = _copy(full, tmp_path)
    for kw in ({"seed": 1}, {"splits": ["test"], "seed": 1}, {"vibrato_p": 1.0}, {"hours": 0.003},
               {"extra_nonmusic": ["drips"]}):
        with pytest.raises(ParameterError, match=r"holds another build \(seed 2, 0.002 h; .*differ"):
            _build(out, **kw)
    assert tree_digest(out) == full[1]


@needs_tools
def test_some_splits_into_the_same_recipe_keep_the_others(full, tmp_path, monkeypatch):
    out = _copy(full, tmp_path)
    m = _build(out, splits=["test"])
    assert list(m["splits"]) == list(B.SPLITS)
    assert tree_digest(out) == full[1]  # manifests included: byte for byte the full build
    assert [B.load_split(out, s).count for s in B.SPLITS] == [5, 1, 1]
    # interrupted before its one clip, it keeps train and val's records until the same build finishes it
    _interrupt_after(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        _build(out, splits=["test"])
    with pytest.raises(ParameterError, match="did not finish"):
        B.load_split(out, "train")
    monkeypatch.undo()
    _build(out, splits=["test"])
    assert tree_digest(out) == full[1]


@needs_tools
def test_workers_never_outnumber_the_clips(tmp_path, monkeypatch):
    import concurrent.futures

    sizes = []
    real = concurrent.futures.ProcessPoolExecutor

    def pool(max_workers=None, *a, **k):
        sizes.append(max_workers)
        return real(max_workers, *a, **k)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", pool)
    m = B.build_dataset(tmp_path / "d", 0.002, 2, clip_seconds=1, splits=["test"], workers=3, progress=False)
    assert m["splits"]["test"]["clips"] == 1 and sizes == [1]


@needs_tools
def test_a_manifest_from_before_the_newer_options_is_the_same_recipe(full, tmp_path):
    out = _copy(full, tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    for key in ("vibrato_p", "solo_p", "sample_p", "extra_soundfonts", "extra_nonmusic"):  # added later, at defaults
        del m[key]
    (out / "manifest.json").write_text(json.dumps(m))
    assert list(_build(out, splits=["val"])["splits"]) == list(B.SPLITS)
    assert tree_digest(out) == full[1]


@needs_tools
def test_a_render_worker_that_cannot_start_is_one_error_not_a_hang(tmp_path):
    import subprocess
    import sys

    fake = tmp_path / "lib"
    fake.mkdir()
    (fake / "libfluidsynth.so.3").write_text("not a library\n")
    env = dict(os.environ, LD_LIBRARY_PATH=str(fake))
    r = subprocess.run([sys.executable, "-m", "rtclassify", "data", "build", "--out", str(tmp_path / "d"), "--hours",
                        "0.002", "--clip-seconds", "1", "--no-progress"], capture_output=True, text=True, env=env,
                       timeout=240, cwd=tmp_path)  # outside the checkout: the installed package
    assert r.returncode == 1 and "cannot load libfluidsynth" in r.stderr and "Traceback" not in r.stderr


def _render_workers_once_rendering(p, out, timeout=120.0) -> list[int]:
    """The process ids of the render workers of the build ``p`` (children running multiprocessing's spawn_main),
    once it has written a clip of ``out`` (its workers then render the next ones); [] if it ended first."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.5)
        if not (out / "train").is_dir() or not any((out / "train").iterdir()):
            continue
        found = [pid for pid in _children(p.pid) if b"spawn_main" in _cmdline(pid)]
        if found:
            return found
    return []


def _children(pid: int) -> list[int]:
    kids = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(d))
    return kids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    """Running (not a zombie: a child already ended, not yet reaped by its parent's parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@needs_tools
def test_sigterm_ends_the_build_and_its_render_workers(tmp_path):
    """SIGTERM (a scheduler's cancel, `timeout`, `kill`) ended the build but left its render workers waiting on
    their job queue for good, each holding hundreds of MB."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "d"
    with subprocess.Popen([sys.executable, "-m", "rtclassify", "data", "build", "--out", str(out), "--hours", "0.05",
                           "--clip-seconds", "2", "--workers", "2", "--no-progress"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=tmp_path) as p:
        workers = []
        try:
            workers = _render_workers_once_rendering(p, out)
            assert workers, "no render worker was found"
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=60)
            deadline = time.monotonic() + 10
            while any(map(_alive, workers)) and time.monotonic() < deadline:
                time.sleep(0.2)
            left = [w for w in workers if _alive(w)]
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
            for w in workers:
                if _alive(w):
                    os.kill(w, signal.SIGKILL)
    # unwound, then ended by the signal itself (as without the handler: a host sees the signal)
    assert p.returncode == -signal.SIGTERM and "rtclassify: stopped by SIGTERM" in err, err[-2000:]
    assert "Traceback" not in err
    assert not left, f"render workers still running after the build ended: {left}"
    assert (out / "build-unfinished.json").is_file()  # the next run of the command picks up from here


@needs_tools
def test_a_render_worker_that_dies_ends_the_build_with_an_error(tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "d"
    with subprocess.Popen([sys.executable, "-m", "rtclassify", "data", "build", "--out", str(out), "--hours", "0.05",
                           "--clip-seconds", "2", "--workers", "1", "--no-progress"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=tmp_path) as p:  # cwd: the installed package
        try:
            workers = _render_workers_once_rendering(p, out)
            assert workers, "no render worker was found to kill"
            os.kill(workers[0], signal.SIGKILL)
            _, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert p.returncode == 1 and "a render worker process died" in err, err[-2000:]


@needs_tools
def test_every_job_is_rendered_once_in_order_whatever_the_workers(tmp_path):
    m1 = B.build_dataset(tmp_path / "a", 0.003, 7, clip_seconds=1.0, workers=1, progress=False)
    m2 = B.build_dataset(tmp_path / "b", 0.003, 7, clip_seconds=1.0, workers=2, progress=False)
    assert m1["splits"] == m2["splits"] and sum(s["clips"] for s in m1["splits"].values()) == 11
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


@needs_tools
def test_stopping_the_build_early_ends_the_workers_at_once(tmp_path):
    import time

    jobs = B.plan_clips(0.05, 3, clip_seconds=60.0)
    gen = B._render_jobs(jobs, 1, None, 32000)
    next(gen)
    t0 = time.monotonic()
    gen.close()
    assert time.monotonic() - t0 < 2.0


@needs_tools
@pytest.mark.parametrize("damage", ["audio gone", "audio cut", "labels gone", "labels cut"])
def test_a_damaged_clip_is_one_error_naming_it(full, tmp_path, damage):
    """A clip missing or cut short in a copied data set gave soundfile's or numpy's traceback in train/evaluate."""
    from rtclassify.errors import RtclassifyError

    out = _copy(full, tmp_path)
    rec = B.split_records(out, "val")[0]
    path = out / rec["audio" if damage.startswith("audio") else "labels"]
    if damage.endswith("gone"):
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(RtclassifyError) as err:
        list(B.iter_split(out, "val"))
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and ("no such file" in msg) == damage.endswith("gone"), msg
    assert f"the data set {out} is incomplete or damaged" in msg and "Traceback" not in msg
