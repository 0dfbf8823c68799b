"""An audio file that cannot be opened says why: permission denied, no such file, not libsndfile's
"System error."."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtclassify.audio import files
from rtclassify.audio.files import AudioFileError

SR = 16000
#: run a child without the capabilities that let root read any file
DROP = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-dac_override,-dac_read_search"]


@pytest.fixture
def wav(tmp_path):
    import soundfile as sf

    p = tmp_path / "take.wav"
    sf.write(p, np.zeros(SR // 4, np.float32), SR)
    return p


def test_a_file_without_read_permission_is_named_so(wav, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(files.os, "access", lambda p, mode: False if Path(p) == wav else real_access(p, mode))
    for read in (files.info, files.read_audio, lambda p: next(files.iter_blocks(p))):
        with pytest.raises(AudioFileError) as exc:
            read(wav)
        assert str(exc.value) == f"{wav}: permission denied"


def test_a_failed_open_asks_the_system_why(wav, monkeypatch):
    import soundfile as sf

    def system_error(*a, **k):
        raise sf.LibsndfileError(2, prefix=f"Error opening {str(wav)!r}: ")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(wav))

    monkeypatch.setattr(sf, "SoundFile", system_error)
    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(AudioFileError) as exc:
        files.info(wav)
    assert str(exc.value) == f"{wav}: permission denied"


def test_a_missing_file_under_an_unsearchable_folder(tmp_path, monkeypatch):
    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(files.os, "stat", denied)
    with pytest.raises(AudioFileError) as exc:
        files.info(tmp_path / "locked" / "take.wav")
    assert str(exc.value) == f"{tmp_path / 'locked' / 'take.wav'}: permission denied"


def _as_user_without_override(code: str, tmp_path):
    """Run ``code`` where file permissions hold: this user, or root without its override capabilities."""
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root reads any file and setpriv is not there to drop that")
        prefix = DROP
    else:
        prefix = []
    # the installed package (cwd outside the checkout: in CI the checkout has no compiled extension)
    return subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def test_tag_and_learn_say_permission_denied(wav, tmp_path):
    os.chmod(wav, 0)
    code = f"""
import sys
from rtclassify import cli
for argv in (["tag", {str(wav)!r}, "--out", "o.csv"],
             ["learn", "--tag", "t", {str(wav)!r}, "--out", "o"]):
    print(cli.main(argv), file=sys.stderr)
"""
    r = _as_user_without_override(code, tmp_path)
    if "Operation not permitted" in r.stderr and "setpriv" in r.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {r.stderr.strip()}")
    lines = r.stderr.strip().splitlines()
    assert lines[-4:] == [f"rtclassify tag: error: {wav}: permission denied", "1",
                          f"rtclassify learn: error: {wav}: permission denied", "1"], r.stderr


def _flac_without_length(path, x):
    """A FLAC whose header gives no total sample count, as one written to a pipe is
    (``ffmpeg ... -f flac - > x.flac``): STREAMINFO's 36-bit total is zeroed."""
    import soundfile as sf

    sf.write(path, x, SR, subtype="PCM_16", format="FLAC")
    b = bytearray(path.read_bytes())
    assert b[:4] == b"fLaC" and b[4] & 0x7F == 0  # the first metadata block is STREAMINFO
    b[8 + 13] &= 0xF0
    b[8 + 14:8 + 18] = bytes(4)
    path.write_bytes(bytes(b))
    return path


def test_a_flac_without_a_length_in_its_header_is_read_whole(tmp_path, capsys):
    """libsndfile gives such a file 2**63 - 1 frames and fails the read that reaches past its end; every reader
    of the package takes it to its end (all but its very last frame, which libsndfile cannot read)."""
    import soundfile as sf

    from rtclassify import cli

    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR * 3) / SR) + 0.01 * rng.standard_normal(SR * 3)).astype(np.float32)
    p = _flac_without_length(tmp_path / "piped.flac", x)
    with sf.SoundFile(p) as f:
        assert f.frames == files.UNKNOWN_FRAMES
    ref = sf.read(tmp_path / "piped.flac", dtype="float32", frames=len(x) - 1)[0]
    assert files.info(p).frames == len(x) - 1
    got, rate = files.read_audio(p)
    assert rate == SR and np.array_equal(got, ref)
    for blocksize in (1000, 65536):
        blocks = list(files.iter_blocks(p, blocksize))
        assert max(len(b) for b in blocks) <= blocksize and np.array_equal(np.concatenate(blocks), ref)
    out = tmp_path / "tags.csv"
    assert cli.main(["tag", str(p), "--out", str(out), "--no-techniques"]) == 0, capsys.readouterr().err
    assert len(out.read_text().splitlines()) > 10
    # a corrupt FLAC is still refused (its decoding error is not taken for the end)
    bad = bytearray(p.read_bytes())
    bad[len(bad) // 2:len(bad) // 2 + 64] = bytes(64)
    (tmp_path / "bad.flac").write_bytes(bytes(bad))
    with pytest.raises(AudioFileError, match="bad.flac: cannot decode audio"):
        files.read_audio(tmp_path / "bad.flac")


def test_a_flac_cut_short_is_read_as_far_as_it_goes_and_said_so(tmp_path, capsys):
    """As a WAV cut short is: the frames present are tagged, with one warning (the whole file was refused)."""
    import soundfile as sf

    from rtclassify import cli

    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR * 4) / SR)).astype(np.float32)
    whole = tmp_path / "whole.flac"
    sf.write(whole, x, SR, subtype="PCM_16", format="FLAC")
    assert files.info(whole).missing_frames == 0 and files.info(whole).frames == len(x)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
    inf = files.info(cut)
    assert 0.3 * len(x) < inf.frames < 0.7 * len(x) and inf.frames + inf.missing_frames == len(x)
    assert inf.truncation.startswith(f"{cut}: the file is cut short: its header declares 4.000 s of audio")
    ref = sf.read(whole, dtype="float32", frames=inf.frames)[0]
    got, _ = files.read_audio(cut)
    assert np.array_equal(got, ref)
    assert np.array_equal(np.concatenate(list(files.iter_blocks(cut, 4096))), ref)
    out = tmp_path / "tags.csv"
    assert cli.main(["tag", str(cut), "--out", str(out), "--no-techniques"]) == 0
    assert f"warning: {cut}: the file is cut short" in capsys.readouterr().err
    # damage inside a whole FLAC is still refused, with where it was found
    bad = bytearray(whole.read_bytes())
    bad[len(bad) // 2:len(bad) // 2 + 64] = bytes(64)
    (tmp_path / "bad.flac").write_bytes(bytes(bad))
    for read in (files.read_audio, lambda p: list(files.iter_blocks(p, 4096))):
        with pytest.raises(AudioFileError, match=r"bad.flac: cannot decode audio at (\d+\.\d+) s \(") as err:
            read(tmp_path / "bad.flac")
        assert 1.0 < float(err.value.args[0].split(" at ")[1].split(" s")[0]) < 3.0  # near the middle of 4 s


def test_an_ogg_file_read_from_a_pipe_is_read_as_it_comes(tmp_path):
    """libsndfile gives an Ogg stream on a pipe the unknown length too; it ends its reads by itself and a pipe
    cannot be opened twice, so it is read as it comes (only a FLAC without a length is counted first)."""
    import threading

    import soundfile as sf

    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR * 2) / SR)).astype(np.float32)
    src = tmp_path / "a.ogg"
    sf.write(src, x, SR, format="OGG", subtype="VORBIS")
    fifo = tmp_path / "fifo.ogg"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as fh:
            fh.write(src.read_bytes())

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    with files.open_blocks(fifo, 4096) as (inf, blocks):
        n = sum(len(b) for b in blocks)
    t.join(10)
    assert n == len(x) and inf.frames == files.UNKNOWN_FRAMES


def test_damage_inside_a_flac_is_placed_to_within_a_flac_frame(tmp_path):
    """Where a decoding error happened is narrowed down from the failed request (up to 65536 frames, the first
    one included, which named no place) to the first of 1024 frames that fails on a second open."""
    import soundfile as sf

    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR * 8) / SR)).astype(np.float32)
    whole = tmp_path / "whole.flac"
    sf.write(whole, x, SR, subtype="PCM_16", format="FLAC")
    raw = whole.read_bytes()
    for share in (0.1, 0.6):
        bad = bytearray(raw)
        at = int(len(bad) * share)
        bad[at:at + 64] = bytes(64)
        p = tmp_path / f"bad{share}.flac"
        p.write_bytes(bytes(bad))
        with sf.SoundFile(p) as f:  # the reference: the first 256-frame read that fails
            ref = 0
            with pytest.raises(RuntimeError):
                while len(f.read(256)):
                    ref += 256
        for read in (files.read_audio, lambda q: list(files.iter_blocks(q, 65536))):
            with pytest.raises(AudioFileError, match=r"cannot decode audio at (\d+\.\d+) s \(") as err:
                read(p)
            said = float(err.value.args[0].split(" at ")[1].split(" s")[0])
            assert ref / SR - 1024 / SR - 1e-3 <= said <= ref / SR + 1e-3, (share, said, ref / SR)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "MP3"])
def test_a_path_in_bytes_is_taken_in_every_format(tmp_path, fmt):
    """_open took bytes, but the FLAC and MP3 length checks turned the path into a Path again and failed with
    pathlib's TypeError."""
    import soundfile as sf

    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, np.zeros(SR, np.float32), SR, format=fmt)
    a, b = files.info(os.fsencode(path)), files.info(path)
    assert (a.frames, a.sample_rate, a.missing_frames) == (b.frames, b.sample_rate, b.missing_frames)
    assert len(files.read_audio(os.fsencode(path))[0]) == len(files.read_audio(path)[0])


#: a child's start-up that makes ``import soundfile`` fail as it does where libsndfile cannot be loaded (soundfile
#: raises OSError then, not ImportError)
_NO_LIBSNDFILE = """
import sys
class _NoLibsndfile:
    def find_spec(self, name, path=None, target=None):
        if name == "soundfile":
            raise OSError("sndfile library not found using ctypes.util.find_library")
sys.meta_path.insert(0, _NoLibsndfile())
"""


def test_without_libsndfile_reading_a_file_names_the_system_package(wav, tmp_path):
    # tag and demo ended in a traceback of soundfile's OSError (a missing PortAudio was already said in one line)
    code = _NO_LIBSNDFILE + f"""
from rtclassify import cli
sys.exit(cli.main(["tag", {str(wav)!r}]))
"""
    # (from outside the checkout: there `import rtclassify` is the installed package, not the unbuilt sources)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "libsndfile" in r.stderr and "libsndfile1" in r.stderr
    assert r.stdout == ""


def test_import_soundfile_turns_both_failures_into_one_error(monkeypatch):
    from rtclassify.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "soundfile", None)  # not installed: ImportError
    with pytest.raises(MissingDependencyError, match="pip install soundfile"):
        files.import_soundfile()
