"""Reading audio files (soundfile / libsndfile: WAV, FLAC, OGG, MP3, AIFF and more).

Files are returned as mono float32 at their own sample rate: a multi-channel
file is averaged over its channels (``channel=None``) or one channel is picked
(``channel=c``, 0-based). Resampling to the model rate happens in the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ParameterError, RtclassifyError

__all__ = ["AudioFileError", "AudioInfo", "info", "read_audio", "iter_blocks", "to_mono"]


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

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _open(path):
    import soundfile as sf

    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise AudioFileError(f"{p}: no such file")
    if p.is_dir():
        raise AudioFileError(f"{p}: is a folder, not an audio file")
    try:
        return sf.SoundFile(str(p))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:  # LibsndfileError derives from RuntimeError
        msg = str(exc).split(":")[-1].strip() or type(exc).__name__
        raise AudioFileError(f"{p}: cannot read audio ({msg}); supported: WAV, FLAC, OGG, MP3, AIFF and others "
                             "that libsndfile reads") from exc


def info(path) -> AudioInfo:
    """Sample rate, length and channel count of an audio file."""
    with _open(path) as f:
        return AudioInfo(str(path), int(f.samplerate), int(f.frames), int(f.channels), f.format)


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
        try:
            data = f.read(dtype="float32", always_2d=True)
        except RuntimeError as exc:
            raise AudioFileError(f"{path}: cannot decode audio ({exc})") from exc
    return data, sr


def iter_blocks(path, blocksize: int = 65536, channel: int | None = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of at most ``blocksize`` samples, in order.

    The file is opened (and errors raised) when the first block is requested;
    call :func:`info` first to check it.
    """
    if isinstance(blocksize, bool) or not isinstance(blocksize, (int, np.integer)) or blocksize < 1:
        raise ParameterError(f"blocksize must be an integer >= 1 (got {blocksize!r})")
    with _open(path) as f:
        if channel is not None and not (0 <= channel < f.channels):
            raise ParameterError(f"channel {channel!r} out of range: {path} has {f.channels} channel(s)")
        while True:
            try:
                data = f.read(blocksize, dtype="float32", always_2d=True)
            except RuntimeError as exc:
                raise AudioFileError(f"{path}: cannot decode audio ({exc})") from exc
            if len(data) == 0:
                return
            yield to_mono(data, channel)
