"""A WAV file cut short (its header declares more audio than it holds) is read as far as it goes, and said so."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import _rtc_bundle as tb
from rtclassify import cli
from rtclassify.audio import files

SR = 16000


def _wav(path, seconds=1.0, subtype="PCM_16", channels=1):
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SR)) / SR).astype(np.float32)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    sf.write(path, x, SR, subtype=subtype, format="WAV")
    return path


def _cut(path, keep_bytes):
    with open(path, "r+b") as fh:
        fh.truncate(keep_bytes)


def _data_start(path):
    return Path(path).read_bytes().index(b"data") + 8


@pytest.mark.parametrize("subtype, channels, width", [("PCM_16", 1, 2), ("PCM_24", 2, 6), ("FLOAT", 1, 4)])
def test_a_cut_wav_reports_the_frames_its_header_declares_beyond_the_data(tmp_path, subtype, channels, width):
    path = _wav(tmp_path / "a.wav", 1.0, subtype, channels)
    whole = files.info(path)
    assert whole.frames == SR and whole.missing_frames == 0 and whole.truncation is None
    _cut(path, _data_start(path) + 4000 * width)
    cut = files.info(path)
    assert cut.frames == 4000 and cut.missing_frames == SR - 4000
    assert cut.truncation == (f"{path}: the file is cut short: its header declares 1.000 s of audio and 0.250 s is "
                              f"there; only that is read")
    data, rate = files.read_channels(path)  # what is there is read, as before
    assert rate == SR and data.shape == (4000, channels)


def test_whole_files_placeholders_and_other_chunks_are_not_flagged(tmp_path):
    # FLAC: the format does not say
    flac = tmp_path / "a.flac"
    sf.write(flac, np.zeros(SR, np.float32), SR)
    assert files.info(flac).missing_frames == 0
    # a streaming writer's placeholder sizes (0 and 0xFFFFFFFF) declare nothing
    for placeholder in (0, 0xFFFFFFFF):
        path = _wav(tmp_path / f"p{placeholder}.wav", 0.5)
        raw = bytearray(path.read_bytes())
        i = raw.index(b"data")
        raw[i + 4:i + 8] = struct.pack("<I", placeholder)
        path.write_bytes(bytes(raw))
        assert files.info(path).missing_frames == 0
    # an odd-sized chunk before the data (padded to even) is stepped over
    path = _wav(tmp_path / "list.wav", 0.5)
    raw = path.read_bytes()
    i = raw.index(b"data")
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\0"
    raw = raw[:i] + extra + raw[i:]
    raw = raw[:4] + struct.pack("<I", len(raw) - 8) + raw[8:]
    path.write_bytes(raw)
    assert files.info(path).frames == SR // 2 and files.info(path).missing_frames == 0
    _cut(path, len(raw) - 2000)
    assert files.info(path).missing_frames == 1000


def test_tag_warns_and_tags_what_is_there(tmp_path, capsys):
    bundle = tb.write_bundle(tmp_path / "bundle")
    path = tmp_path / "cut.wav"
    sf.write(path, tb.demo_signal(SR), SR, subtype="PCM_16")
    _cut(path, _data_start(path) + 2 * SR)  # 1 s of about 4
    out = tmp_path / "out.jsonl"
    assert cli.main(["tag", str(path), "--bundle", str(bundle), "--out", str(out), "--no-techniques"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: the file is cut short" in err and "1.000 s is there" in err
    frames = [json.loads(s) for s in out.read_text().splitlines() if '"probs"' in s]
    assert frames and max(d["time"] for d in frames) < 1.0


def test_demo_warns_about_a_cut_clip(tmp_path):
    bundle = tb.write_bundle(tmp_path / "bundle")
    path = tmp_path / "cut.wav"
    sf.write(path, tb.demo_signal(SR), SR, subtype="PCM_16")
    _cut(path, _data_start(path) + SR)  # 0.5 s
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER="none-truncated")
    r = subprocess.run([sys.executable, "-m", "rtclassify", "demo", "--bundle", str(bundle), "--clip", str(path),
                        "--no-display", "--speed", "4"], capture_output=True, text=True, timeout=120, env=env,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stderr
    assert "the file is cut short: its header declares" in r.stderr and "0.500 s is there" in r.stderr


def test_sizes_that_declare_nothing_and_other_layouts(tmp_path):
    # SoX's placeholder for a header it could not rewrite (output into a pipe)
    path = _wav(tmp_path / "sox.wav", 0.5)
    raw = bytearray(path.read_bytes())
    i = raw.index(b"data")
    raw[i + 4:i + 8] = struct.pack("<I", 0x7FFFF000)
    path.write_bytes(bytes(raw))
    assert files.info(path).missing_frames == 0
    # four channels, cut short
    path = _wav(tmp_path / "wavex.wav", 0.5, "PCM_16", 4)
    _cut(path, _data_start(path) + 1000 * 8)
    assert files.info(path).missing_frames == SR // 2 - 1000


def test_a_pipe_is_read_by_libsndfile_alone(tmp_path):
    """info() on a FIFO (process substitution, `tag <(ffmpeg ...)`): opening it a second time would block for
    ever once the writer is done, or take the stream's bytes while it writes."""
    import threading

    src = _wav(tmp_path / "a.wav", 0.5)
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    # the header check leaves a pipe alone: here no writer is left, where a second open() blocks for ever
    result = []
    t = threading.Thread(target=lambda: result.append(files._wav_missing_frames(fifo, 0)), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "the header check opened the pipe again"
    assert result == [0]
    # and info() on a pipe that a writer fills
    writer = subprocess.Popen(["sh", "-c", f"cat '{src}' > '{fifo}'"])
    result = []
    t = threading.Thread(target=lambda: result.append(files.info(fifo)), daemon=True)
    t.start()
    t.join(20)
    writer.wait(20)
    assert not t.is_alive(), "info() blocked on the pipe"
    assert result and result[0].missing_frames == 0 and result[0].sample_rate == SR


def _mp3(path, seconds, rate=SR):
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    sf.write(path, x, rate, format="MP3")  # libsndfile (LAME) writes a Xing header with the frame count
    return path


def test_an_mp3_cut_short_that_declares_its_length_is_said_to_be_cut(tmp_path, capsys):
    """An MP3 with a Xing / Info header declares its frame count and its bytes; cut short, libsndfile still
    reports that count and reads half of it without a word, as it does a WAV cut short."""
    whole = _mp3(tmp_path / "whole.mp3", 4.0)
    inf = files.info(whole)
    assert files._mp3_declared_bytes(whole) == (0, whole.stat().st_size)
    assert inf.frames == 4 * SR and inf.missing_frames == 0
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
    inf = files.info(cut)
    assert 0.3 * 4 * SR < inf.frames < 0.7 * 4 * SR and inf.frames + inf.missing_frames == 4 * SR
    assert inf.truncation.startswith(f"{cut}: the file is cut short: its header declares 4.000 s of audio")
    got, _ = files.read_audio(cut)
    assert len(got) == inf.frames
    with files.open_blocks(cut, 4096) as (inf2, blocks):
        assert inf2 == inf and sum(len(b) for b in blocks) == inf.frames
    out = tmp_path / "tags.csv"
    bundle = tb.write_bundle(tmp_path / "bundle")
    assert cli.main(["tag", str(cut), "--bundle", str(bundle), "--out", str(out), "--no-techniques"]) == 0
    assert f"warning: {cut}: the file is cut short" in capsys.readouterr().err


def test_an_mp3_without_a_length_header_is_not_called_cut(tmp_path):
    """Without a Xing / Info header (the npm samples' encoder, ``ffmpeg -write_xing 0``) libsndfile estimates the
    length from the file's size, so a cut file declares nothing and a whole one, whose estimate may exceed what
    it decodes, is not called cut. Behind an ID3v2 tag the header is still found."""
    whole = _mp3(tmp_path / "whole.mp3", 2.0)
    raw = whole.read_bytes()
    i = raw.index(b"Xing")
    no_xing = tmp_path / "noxing.mp3"
    no_xing.write_bytes(raw[:i] + b"XXXX" + raw[i + 4:])  # the header no longer names itself
    assert files._mp3_declared_bytes(no_xing) is None
    cut = tmp_path / "cut_noxing.mp3"
    cut.write_bytes(no_xing.read_bytes()[:len(raw) // 2])
    assert files.info(cut).missing_frames == 0
    tagged = tmp_path / "id3.mp3"  # an ID3v2.3 tag of 100 bytes (syncsafe size) before the first frame
    tagged.write_bytes(b"ID3\x03\x00\x00" + bytes([0, 0, 0, 100]) + bytes(100) + raw[:len(raw) // 2])
    assert files._mp3_declared_bytes(tagged) == (110, len(raw)) and files.info(tagged).missing_frames > 0


def _music(sr: int, seconds: float) -> np.ndarray:
    """Plucked harmonic notes over a little noise (sines alone compress into pages that damage spares)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.01 * rng.standard_normal(len(t))
    for k in range(int(seconds * 2)):
        f0, start = 220 * 2 ** (rng.integers(0, 12) / 12), 0.5 * k
        env = np.where(t >= start, np.exp(-(t - start) * 3), 0.0)
        x += 0.2 * env * sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 8))
    return x.astype(np.float32)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian ffmpeg) to encode the files")
@pytest.mark.parametrize("codec, ext", [("libvorbis", "ogg"), ("libopus", "opus")])
def test_an_ogg_damaged_inside_is_refused_not_cut_short_silently(tmp_path, codec, ext):
    """libsndfile ends the reads of an Ogg file damaged in its middle at the damage, without an error, and its
    count of the file's frames sometimes ends there too: the rest was lost without a word (tag exited 0 with
    2.3 of 3.8 s read, the tags' offs where the reads ended). The file's last page declares its length (the
    granule position): reads that end before it are an AudioFileError saying where, as for a damaged FLAC.
    Whole files read as before."""
    sr = 44100
    src = tmp_path / "music.wav"
    sf.write(src, _music(sr, 4.0), sr)
    whole = tmp_path / f"whole.{ext}"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-c:a", codec, str(whole)], check=True)
    data = bytearray(whole.read_bytes())
    at = int(0.3 * len(data))
    for i in range(at, at + 3000):
        data[i] = (data[i] * 7 + 13) & 255
    damaged = tmp_path / f"damaged.{ext}"
    damaged.write_bytes(bytes(data))
    with sf.SoundFile(whole) as f:
        length = f.frames
    in_blocks = 0
    with sf.SoundFile(damaged) as f:  # (SoundFile.blocks pads a short last read: read as the readers do)
        while len(block := f.read(65536, dtype="float32")):
            in_blocks += len(block)
    assert in_blocks < length  # (the premise: libsndfile's reads end early, silently)
    with pytest.raises(files.AudioFileError, match=r"cannot decode audio after .* of the 4\.000 s the file "
                                                   r"declares: it is damaged there"):
        files.read_channels(damaged)
    with pytest.raises(files.AudioFileError, match="damaged there"):
        with files.open_blocks(damaged) as (_, blocks):
            for _ in blocks:
                pass
    assert len(files.read_channels(whole)[0]) == length
    with files.open_blocks(whole) as (inf, blocks):
        assert sum(len(b) for b in blocks) == inf.frames == length


@pytest.mark.parametrize("rate", [8000, 12000, 16000, 24000, 48000])
def test_a_whole_opus_file_at_any_of_its_rates_is_read_whole(tmp_path, rate):
    """libsndfile decodes an Opus file at the rate of its header when that is 8, 12, 16 or 24 kHz, and the last
    page's granule position counts 48 kHz samples: the check of an Ogg file's length took a 16 kHz file for one
    three times longer and refused every such file as damaged."""
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * rate) / rate)).astype(np.float32)
    path = tmp_path / "voice.opus"
    sf.write(path, x, rate, format="OGG", subtype="OPUS")
    data, sr = files.read_channels(path)
    assert sr == rate and len(data) == 3 * rate
    with files.open_blocks(path) as (inf, blocks):
        assert sum(len(b) for b in blocks) == inf.frames == 3 * rate


def test_a_wav_stream_s_declared_length_leaves_out_a_streaming_writer_s_placeholder():
    """`ffmpeg ... -f wav -` writes a data size of 0xFFFFFFFF, which libsndfile reports as 2**31 - 1 frames of 16-bit
    mono: no declared length, or every such stream would be called cut short."""
    inf = files.AudioInfo("-", 44100, 2 ** 31 - 1, 1, "WAV")
    assert files.stream_declared_frames(inf, "PCM_16") is None
    assert files.stream_declared_frames(files.AudioInfo("-", 44100, 169600, 1, "WAV"), "PCM_16") == 169600
    assert files.stream_declared_frames(files.AudioInfo("-", 44100, 169600, 1, "OGG"), "VORBIS") is None
