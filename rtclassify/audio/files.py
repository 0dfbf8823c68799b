"""Reading audio files (soundfile / libsndfile: WAV, FLAC, OGG, MP3, AIFF and more).

Files are returned as mono float32 at their own sample rate: a multi-channel
file is averaged over its channels (``channel=None``) or one channel is picked
(``channel=c``, 0-based). Resampling to the model rate happens in the engine.
"""

from __future__ import annotations

import os
import stat
import struct
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import MissingDependencyError, ParameterError, RtclassifyError

__all__ = ["AudioFileError", "AudioInfo", "info", "read_audio", "iter_blocks", "open_blocks", "to_mono",
           "AUDIO_EXTENSIONS", "audio_files_under"]

#: File name extensions taken for audio when a folder is searched (``rtclassify pretrain``, ``train --data``).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".opus")


def audio_files_under(folder) -> list:
    """The audio files under ``folder`` (by extension, searched recursively, sorted). Hidden files and folders
    (a name starting with ``.``: the ``._x.wav`` resource forks macOS leaves on other file systems, ``.Trash``)
    are skipped."""
    folder = Path(folder)
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file()
                  and not any(part.startswith(".") for part in f.relative_to(folder).parts))


class AudioFileError(RtclassifyError, OSError):
    """An audio file is missing, unreadable or in an unsupported format; the message names the file."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds."""

    path: str
    sample_rate: int
    frames: int
    channels: int
    format: str
    #: frames that the file's header declares beyond the audio present (a WAV, FLAC or MP3 file cut short, as by
    #: a recorder that was stopped or a copy that did not finish); 0 when it is whole or the format does
    #: not say. ``frames`` counts only what is present, and only that is read.
    missing_frames: int = 0
    #: for a WAV stream (a pipe, standard input, opened by :func:`open_blocks`): the frames its header declares,
    #: which only reading it through can check (:attr:`frames` is then that count too); None otherwise
    stream_frames: int | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    @property
    def truncation(self) -> str | None:
        """One line saying how much of a truncated file is missing, or None when it is whole."""
        if self.missing_frames <= 0:
            return None
        have, declared = self.frames, self.frames + self.missing_frames
        return (f"{self.path}: the file is cut short: its header declares {_seconds(declared, self.sample_rate)} "
                f"of audio and {_seconds(have, self.sample_rate)} is there; only that is read")


def _seconds(frames: int, rate: int) -> str:
    return f"{frames / rate:.3f} s" if rate else f"{frames} frames"


#: data chunk sizes that streaming writers put in a header they cannot go back to (0, SoX's 0x7ffff000 and
#: anything above it, 0xffffffff): they declare nothing
_UNKNOWN_DATA_SIZE = 0x7FFFF000


def _wav_missing_frames(path, frames_present: int) -> int:
    """Frames that a RIFF/WAVE header's data chunk declares beyond ``frames_present``.

    libsndfile reads a WAV file whose data chunk is shorter than its header says as far as the data
    goes, and says nothing. 0 when the file is whole, when the data size is a streaming writer's
    placeholder, when the path is not a regular file (a pipe: reading it again would block or take
    its data), or when the header cannot be read (libsndfile judged the file).
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return 0
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return 0
            block_align = 0
            while True:
                ch = fh.read(8)
                if len(ch) < 8:
                    return 0
                cid, size = ch[:4], struct.unpack("<I", ch[4:])[0]
                if cid == b"fmt ":
                    fmt = fh.read(size)
                    if len(fmt) < 14:
                        return 0
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                    if size % 2:
                        fh.seek(1, os.SEEK_CUR)
                elif cid == b"data":
                    if block_align <= 0 or size == 0 or size >= _UNKNOWN_DATA_SIZE:
                        return 0
                    return max(0, size // block_align - int(frames_present))
                else:
                    fh.seek(size + (size % 2), os.SEEK_CUR)
    except (OSError, struct.error):
        return 0


#: bytes a sample of each PCM subtype takes (a WAV stream's declared length, :func:`stream_declared_frames`)
_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
                 "ULAW": 1, "ALAW": 1}


def stream_declared_frames(inf: "AudioInfo", subtype: str) -> int | None:
    """The frames a WAV stream's header declares (read from a pipe, whose header cannot be read again), or None when
    it declares none: not a WAV of plain samples, or a streaming writer's placeholder (``ffmpeg ... -f wav -``
    writes a data size of 0xFFFFFFFF, which libsndfile reports as about 2**31 bytes of frames)."""
    width = _SAMPLE_BYTES.get(subtype)
    if inf.format not in ("WAV", "WAVEX") or width is None or not 0 < inf.frames < UNKNOWN_FRAMES:
        return None
    if inf.frames * inf.channels * width >= _UNKNOWN_DATA_SIZE:
        return None
    return int(inf.frames)


def _os_reason(exc: OSError) -> str:
    """What an OSError says about a path, in the words of the other messages here."""
    import errno

    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such file"
    return f"cannot open ({exc.strerror or exc})"


def _as_path(path) -> Path:
    """``path`` (str, bytes or path-like) as a Path, ``~`` expanded; bytes as the file system spells them
    (surrogates kept)."""
    return Path(os.fsdecode(path)).expanduser()


def import_soundfile():
    """Import ``soundfile`` or raise :class:`MissingDependencyError`: ``soundfile`` raises ``OSError`` (not
    ``ImportError``) when the libsndfile shared library is missing (its wheels bundle one on some platforms
    only); both become one clear error."""
    try:
        import soundfile
    except ImportError as exc:
        raise MissingDependencyError(f"soundfile is not installed ({exc}); pip install soundfile") from exc
    except OSError as exc:
        raise MissingDependencyError(
            f"the libsndfile library cannot be loaded ({exc}); install the system package libsndfile1 "
            "(Debian/Ubuntu) or libsndfile (Homebrew)") from exc
    return soundfile


def _open(path):
    sf = import_soundfile()

    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ParameterError(f"an audio file's path must be a str, bytes or a path (os.PathLike); got "
                             f"{type(path).__name__} {path!r}")
    p = _as_path(path)
    try:
        st = os.stat(p)
    except OSError as exc:  # a missing file, or a folder on the way that cannot be searched
        raise AudioFileError(f"{p}: {_os_reason(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioFileError(f"{p}: is a folder, not an audio file")
    if stat.S_ISREG(st.st_mode) and not os.access(p, os.R_OK):
        raise AudioFileError(f"{p}: permission denied")
    try:  # as bytes: a name that is not valid UTF-8 (held as surrogates) opens as the file system spells it
        return sf.SoundFile(os.fsencode(p))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:  # LibsndfileError derives from RuntimeError
        if stat.S_ISREG(st.st_mode):
            try:  # libsndfile says "System error." for any failed open(2): ask the system which
                with open(p, "rb"):
                    pass
            except OSError as os_exc:
                raise AudioFileError(f"{p}: {_os_reason(os_exc)}") from exc
        msg = str(exc).split(":")[-1].strip() or type(exc).__name__
        raise AudioFileError(f"{p}: cannot read audio ({msg}); supported: WAV, FLAC, OGG, MP3, AIFF and others "
                             "that libsndfile reads") from exc


#: libsndfile's frame count for a file whose header gives none (SF_COUNT_MAX): a FLAC written to a pipe
#: (``ffmpeg ... -f flac - > x.flac``, ``sox ... -t flac -``) has no total sample count
UNKNOWN_FRAMES = 2 ** 63 - 1


def _read_frames(f, path, blocksize: int, cut_short: bool = False) -> Iterator[np.ndarray]:
    """Float32 ``(n, channels)`` blocks of the open file ``f`` to its end, from its start.

    A FLAC whose header gives no length (:data:`UNKNOWN_FRAMES`) is read by libsndfile until a request reaches
    past its end: that request fails ("Internal psf_fseek() failed.") and leaves the handle unusable. The
    rest is then read from a fresh open of the file, sought to where the good reads ended, in requests 16
    times smaller, down to one frame; libsndfile cannot read the very last frame of such a file. A FLAC
    ``cut_short`` (:func:`_cut_short`) ends the same way, or with a decoding error at its partial last
    frame, and is read the same way up to there. Any other decoding error is an AudioFileError that says
    where it happened.
    """
    unknown = _flac_without_length(f)
    step, done, own = blocksize, 0, None
    try:
        while True:
            try:
                data = f.read(step, dtype="float32", always_2d=True)
            except RuntimeError as exc:
                if not (cut_short or (unknown and "psf_fseek" in str(exc))):
                    at = _decoding_fails_at(path, done, step)
                    # not found again (a pipe): after what was read, when something was
                    where = (f" at {_seconds(at, int(f.samplerate))}" if at is not None else
                             f" after {_seconds(done, int(f.samplerate))}" if done else "")
                    raise AudioFileError(f"{path}: cannot decode audio{where} ({exc})") from exc
                if step == 1:
                    return
                if own is not None:
                    own.close()
                f = own = _reopen_unknown_length(path)
                try:
                    f.seek(done)
                except RuntimeError as exc:
                    raise AudioFileError(f"{path}: cannot decode audio after {_seconds(done, int(f.samplerate))} "
                                         f"({exc})") from exc
                step = max(1, step // 16)
                continue
            if len(data) == 0:
                _check_ogg_length(f, path, done)
                return
            done += len(data)
            yield data
    finally:
        if own is not None:
            own.close()


#: frames per request when a failed read is narrowed down (:func:`_decoding_fails_at`)
_LOCATE_STEP = 1024


def _decoding_fails_at(path, start: int, length: int) -> int | None:
    """The frame at which a read of ``path`` fails, looked for from ``start`` over ``length`` frames by
    reading a second open of it in requests of :data:`_LOCATE_STEP` frames (a damaged FLAC frame fails the
    first request that needs it); None when that cannot be done (a pipe) or those reads go through."""
    if not _regular_file(path):
        return None
    try:
        with _open(path) as g:
            if start:
                g.seek(start)
            pos = start
            while pos < start + length:
                try:
                    data = g.read(_LOCATE_STEP, dtype="float32", always_2d=True)
                except RuntimeError:
                    return pos
                if len(data) == 0:
                    break
                pos += len(data)
    except (AudioFileError, RuntimeError):
        pass
    return None


def _check_ogg_length(f, path, done: int) -> None:
    """Refuse an Ogg (Vorbis, Opus) file whose reads ended at frame ``done``, before the length it declares
    (libsndfile's, or its last page's granule position, :func:`_ogg_granule_frames`): libsndfile ends the reads
    of a file damaged inside at the damage, without an error, and the rest was lost without a word (read as if
    the file ended there; libsndfile's own count of such a file sometimes ends there too). An AudioFileError
    that says where, as for a damaged FLAC. (A file cut short at its end declares what it holds: read whole.)"""
    if f.format != "OGG":
        return
    declared = int(f.frames)
    if not 0 < declared < UNKNOWN_FRAMES:
        return
    declared = max(declared, _ogg_granule_frames(path, f.subtype, int(f.samplerate)) or 0)
    if done < declared:
        sr = int(f.samplerate)
        raise AudioFileError(f"{path}: cannot decode audio after {_seconds(done, sr)} of the {_seconds(declared, sr)} "
                             f"the file declares: it is damaged there (re-encode or repair it, or cut it before that "
                             f"point)")


#: bytes at the end of an Ogg file searched for its last page
_OGG_TAIL = 1 << 16


def _ogg_granule_frames(path, subtype: str, sample_rate: int) -> int | None:
    """The frames an Ogg Vorbis or Opus file ``path`` declares at ``sample_rate`` (libsndfile's): its last page's
    granule position (for Opus a count at 48 kHz, less the pre-skip of its OpusHead, converted to the rate
    libsndfile decodes it at: the header's 8, 12, 16 or 24 kHz, else 48 kHz); None for a pipe or without a
    readable page."""
    if not _regular_file(path):
        return None
    try:
        with open(_as_path(path), "rb") as fh:
            head = fh.read(512)
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _OGG_TAIL))
            tail = fh.read(_OGG_TAIL)
    except OSError:
        return None
    at = len(tail)
    while True:
        at = tail.rfind(b"OggS", 0, at)
        if at < 0 or len(tail) < at + 14:
            return None
        if tail[at + 4] == 0:  # stream structure version 0: a page header
            granule = struct.unpack("<q", tail[at + 6:at + 14])[0]
            if granule >= 0:
                break
    if subtype == "OPUS":
        j = head.find(b"OpusHead")
        if j < 0 or len(head) < j + 12:
            return None
        granule -= struct.unpack("<H", head[j + 10:j + 12])[0]
        granule = granule * sample_rate // 48000
    return granule


def _flac_without_length(f) -> bool:
    """True for a FLAC whose header gives no length (libsndfile: :data:`UNKNOWN_FRAMES`). Other formats read
    from a pipe (Ogg, Opus) report that count too and end their reads by themselves: they are read as they come."""
    return f.format == "FLAC" and int(f.frames) >= UNKNOWN_FRAMES


def _regular_file(path) -> bool:
    try:
        return stat.S_ISREG(os.stat(_as_path(path)).st_mode)
    except OSError:
        return False


def _reopen_unknown_length(path):
    p = _as_path(path)
    if not _regular_file(p):
        raise AudioFileError(f"{p}: the file's header gives no length (as a FLAC written to a pipe), so it is read "
                             "to its end twice, which a pipe cannot be; write it to a file first")
    return _open(p)


def _cut_short(f, path) -> bool:
    """True when the open file ``f`` declares a length in its header and holds less (a file cut short, as a
    copy that did not finish): a FLAC with its total sample count that cannot give the last frame of it (read on
    a second open of ``path``, so that the caller's position stays), or an MP3 whose Xing, Info or VBRI header
    declares more bytes of stream than the file holds (:func:`_mp3_declared_bytes`; a header check only: seeking
    a whole VBR MP3 to its last frame makes libmpg123 print decoding complaints). Without such a header
    libsndfile estimates an MP3's length from the file's size, which declares nothing. A pipe, which cannot be
    opened twice, is taken as whole."""
    declared = int(f.frames)
    if f.format not in ("FLAC", "MP3") or not 0 < declared < UNKNOWN_FRAMES or not _regular_file(path):
        return False
    if f.format == "MP3":
        stream = _mp3_declared_bytes(path)
        if stream is None:
            return False
        first, n_bytes = stream
        try:
            return os.stat(_as_path(path)).st_size - first < n_bytes
        except OSError:
            return False
    with _open(path) as g:
        try:
            g.seek(declared - 1)
            return len(g.read(1, dtype="float32")) == 0
        except RuntimeError:
            return True


#: bytes of an MP3 file searched for its first frame after any ID3v2 tag (junk or padding before it)
_MP3_SYNC_SEARCH = 1 << 16


def _mp3_declared_bytes(path) -> tuple[int, int] | None:
    """Where the first MPEG audio frame of the MP3 file ``path`` starts and how many bytes of stream from there
    its header declares: a Xing / Info header with its byte count (LAME, ffmpeg and libsndfile write one; the
    stream's bytes from that frame on) or a VBRI header; None when there is none."""
    try:
        with open(_as_path(path), "rb") as fh:
            head = fh.read(10)
            start = 0
            if len(head) == 10 and head[:3] == b"ID3":  # skip an ID3v2 tag (syncsafe size, optional footer)
                size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
                start = 10 + size + (10 if head[5] & 0x10 else 0)
            fh.seek(start)
            buf = fh.read(_MP3_SYNC_SEARCH)
    except OSError:
        return None
    for i in range(len(buf) - 4):
        if buf[i] == 0xFF and buf[i + 1] & 0xE0 == 0xE0:
            frame = buf[i:i + 200]  # the first frame: a Xing / Info tag follows its side information
            for tag in (b"Xing", b"Info"):
                j = frame.find(tag)
                if 0 <= j <= 40 and len(frame) >= j + 16:
                    flags = struct.unpack(">I", frame[j + 4:j + 8])[0]
                    if not flags & 2:  # no byte count
                        return None
                    at = j + 8 + (4 if flags & 1 else 0)  # after the frame count, when there is one
                    return start + i, struct.unpack(">I", frame[at:at + 4])[0]
            if frame[36:40] == b"VBRI" and len(frame) >= 50:  # id, version, delay, quality, then the bytes
                return start + i, struct.unpack(">I", frame[46:50])[0]
            return None
    return None


def _info_of(f, path) -> AudioInfo:
    frames = int(f.frames)
    missing = 0
    cut = _cut_short(f, path)
    if (_flac_without_length(f) and _regular_file(path)) or cut:
        # no length in the header, or less audio than it declares: count the frames (a second open, read through;
        # from a pipe, which cannot be read twice, the count stays unknown)
        with _reopen_unknown_length(path) as g:
            present = sum(len(b) for b in _read_frames(g, path, 1 << 16, cut_short=cut))
        missing = 0 if frames >= UNKNOWN_FRAMES else max(0, frames - present)
        frames = present
    pcm = f.subtype.startswith("PCM_") or f.subtype in ("FLOAT", "DOUBLE", "ULAW", "ALAW")
    if f.format in ("WAV", "WAVEX") and pcm:
        missing = _wav_missing_frames(f.name, frames)
    return AudioInfo(str(path), int(f.samplerate), frames, int(f.channels), f.format, missing)


def info(path) -> AudioInfo:
    """Sample rate, length and channel count of an audio file, and what a truncated WAV, FLAC or MP3 file misses."""
    with _open(path) as f:
        return _info_of(f, path)


def to_mono(block: np.ndarray, channel: int | None = None) -> np.ndarray:
    """Mono float32 from a (n, channels) block: the average (``channel=None``) or one channel."""
    if block.ndim == 1:
        if channel not in (None, 0):
            raise ParameterError(f"channel {channel} out of range: the audio has 1 channel")
        return np.ascontiguousarray(block, dtype=np.float32)
    n_ch = block.shape[1]
    if channel is None:
        if n_ch == 1:
            return np.ascontiguousarray(block[:, 0], dtype=np.float32)
        return block.mean(axis=1, dtype=np.float64).astype(np.float32)
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < n_ch:
        raise ParameterError(f"channel {channel!r} out of range: the audio has {n_ch} channel(s) (0..{n_ch - 1})")
    return np.ascontiguousarray(block[:, channel], dtype=np.float32)


def finite_samples(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``x`` with NaN and infinite samples replaced by 0, and how many there were (replace them before
    resampling, which would spread them)."""
    bad = ~np.isfinite(x)
    n = int(np.count_nonzero(bad))
    return (np.where(bad, np.zeros((), x.dtype), x) if n else x), n


def read_audio(path, channel: int | None = None) -> tuple[np.ndarray, int]:
    """Read a whole file as mono float32.

    Parameters
    ----------
    path : str or Path
    channel : int, optional
        Channel to keep (0-based); None averages all channels.

    Returns
    -------
    audio : ndarray, float32, shape (n,)
    sample_rate : int

    Raises
    ------
    AudioFileError
        Missing, unreadable or unsupported file (the message names it).
    ParameterError
        ``channel`` out of range.
    """
    data, sr = read_channels(path)
    return to_mono(data, channel), sr


def read_channels(path) -> tuple[np.ndarray, int]:
    """All channels of an audio file: float32 ``(n, channels)`` and the sample rate.

    Raises
    ------
    AudioFileError
        Missing, unreadable, unsupported or undecodable file (the message names it).
    """
    with _open(path) as f:
        sr = int(f.samplerate)
        cut = _cut_short(f, path)
        # (an Ogg in blocks: a whole read of an Opus file damaged inside ended at the damage where reads in blocks
        # decode past it)
        if int(f.frames) < UNKNOWN_FRAMES and not cut and f.format != "OGG":
            try:
                data = f.read(dtype="float32", always_2d=True)
            except RuntimeError as exc:
                _raise_where_decoding_fails(path, exc)
                raise AudioFileError(f"{path}: cannot decode audio ({exc})") from exc
        else:
            blocks = list(_read_frames(f, path, 1 << 16, cut_short=cut))
            data = np.concatenate(blocks) if blocks else np.zeros((0, int(f.channels)), np.float32)
    return data, sr


def _raise_where_decoding_fails(path, exc: Exception) -> None:
    """After a whole-file read failed with ``exc``: the AudioFileError that says where the damage is, found by
    reading a second open of ``path`` in blocks (:func:`_decoding_fails_at`); returns when that cannot be done
    (a pipe) or the blocks read through."""
    at = _decoding_fails_at(path, 0, UNKNOWN_FRAMES)
    if at is None:
        return
    with _open(path) as g:
        sr = int(g.samplerate)
    raise AudioFileError(f"{path}: cannot decode audio at {_seconds(at, sr)} ({exc})") from exc


def iter_blocks(path, blocksize: int = 65536, channel: int | None = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of at most ``blocksize`` samples, in order.

    The file is opened (and errors raised) when the first block is requested;
    call :func:`info` first to check it, or use :func:`open_blocks`, which
    opens it once for both (a pipe can be read only once).
    """
    with open_blocks(path, blocksize, channel) as (_, blocks):
        yield from blocks


@contextmanager
def open_blocks(path, blocksize: int = 65536, channel: int | None = None):
    """Open an audio file once for what it holds and its blocks: ``with open_blocks(p) as (info, blocks):``.

    ``blocks`` yields mono float32 blocks of at most ``blocksize`` samples, in
    order, from the same open file as ``info``, so a named pipe or
    ``/dev/fd/N`` (which can be read only once) works too. The file is closed
    when the ``with`` block ends.

    Raises
    ------
    AudioFileError
        Missing, unreadable, unsupported or undecodable file (the message names it).
    ParameterError
        ``blocksize`` below 1, or ``channel`` out of range.
    """
    if isinstance(blocksize, bool) or not isinstance(blocksize, (int, np.integer)) or blocksize < 1:
        raise ParameterError(f"blocksize must be an integer >= 1 (got {blocksize!r})")
    with _open(path) as f:
        if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (int, np.integer))
                                    or not 0 <= channel < f.channels):
            raise ParameterError(f"channel {channel!r} out of range: {path} has {f.channels} channel(s)")
        inf = _info_of(f, path)
        if not _regular_file(path):  # (a stream's header was read once, by libsndfile)
            inf = replace(inf, stream_frames=stream_declared_frames(inf, f.subtype))
        yield inf, _blocks_of(f, path, int(blocksize), channel,
                             inf.missing_frames > 0 and inf.format in ("FLAC", "MP3"))


def _blocks_of(f, path, blocksize: int, channel: int | None, cut_short: bool = False) -> Iterator[np.ndarray]:
    for data in _read_frames(f, path, blocksize, cut_short):
        yield to_mono(data, channel)
