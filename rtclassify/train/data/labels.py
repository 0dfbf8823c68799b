"""Tags, the model's frame grid and the rule that turns stems into frame labels.

Frame grid (shared with the native frontend and the model): audio at
``SAMPLE_RATE`` = 16000 Hz, frame ``i`` covers samples ``[i*HOP, i*HOP + N_FFT)``
with ``N_FFT`` = 512 and ``HOP`` = 256 (no centering); its time is
``(i*HOP + N_FFT/2) / SAMPLE_RATE``. A signal of ``n`` samples has
``1 + (n - N_FFT) // HOP`` frames (0 when ``n < N_FFT``).

Labelling rule
--------------
Every source of a clip is rendered as its own *stem* and goes through the same
augmentation as the mix (gain, EQ, reverb and the compressor's gain curve are
applied to each stem, so the stems add up to the mix without the added noise).
For each stem and frame the Hann-weighted mean-square energy over the frame's
512 samples is computed (the window of the frontend). A tag is active in a frame
when at least one stem carrying that tag is *audibly present* there:

* its frame energy is within ``REL_DB`` = 40 dB of the loudest frame of the
  clip's mix (stems + noise), and
* its frame energy is above ``FLOOR_DB`` = -70 dB re full scale (mean square
  of 1.0 = 0 dB), measured after the final gain of the clip.

Rests, decays and reverb tails are therefore labelled by the sound itself. Off
runs of at most ``FILL_GAP_FRAMES`` = 6 frames (~96 ms) between two active
frames of the same tag are filled, so the stop consonants of speech and the
tiny gaps of detached notes do not flicker (the model reports at ~100 ms
resolution). Noise, silence and non-music stems carry no tag.
"""

from __future__ import annotations

import numpy as np

from ...errors import ParameterError

TAGS: tuple[str, ...] = (
    "piano", "organ", "guitar", "bass", "strings", "brass",
    "woodwind", "mallet", "drums", "synth", "singing", "speech",
)
TAG_INDEX = {t: i for i, t in enumerate(TAGS)}
N_TAGS = len(TAGS)

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256

REL_DB = 40.0
FLOOR_DB = -70.0
FILL_GAP_FRAMES = 6

_WIN2 = None


def n_frames(n_samples: int) -> int:
    """Number of complete frames on the model grid for ``n_samples`` samples."""
    if n_samples < N_FFT:
        return 0
    return 1 + (int(n_samples) - N_FFT) // HOP


def frame_times(count: int) -> np.ndarray:
    """Times in seconds (shape ``(count,)``) of frames ``0..count-1``."""
    return (np.arange(count) * HOP + N_FFT / 2) / SAMPLE_RATE


def frame_energy(x: np.ndarray) -> np.ndarray:
    """Hann-weighted mean-square energy per frame.

    Parameters
    ----------
    x : np.ndarray, shape (n_samples,)
        Mono signal at ``SAMPLE_RATE``.

    Returns
    -------
    np.ndarray, shape (n_frames(n_samples),), float64
        ``sum(w^2 x^2) / sum(w^2)`` over each frame, ``w`` the periodic Hann window.
    """
    global _WIN2
    if _WIN2 is None:
        w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
        _WIN2 = (w * w) / np.sum(w * w)
    nf = n_frames(len(x))
    if nf == 0:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), N_FFT)[::HOP][:nf]
    return (frames * frames) @ _WIN2


def _db(e: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(e, 1e-20))


def fill_gaps(active: np.ndarray, max_gap: int = FILL_GAP_FRAMES) -> np.ndarray:
    """Fill off runs of at most ``max_gap`` frames enclosed by on frames.

    Parameters
    ----------
    active : np.ndarray of bool, shape (n_frames,)
    max_gap : int

    Returns
    -------
    np.ndarray of bool, shape (n_frames,)
    """
    a = np.asarray(active, bool).copy()
    if max_gap <= 0 or not a.any():
        return a
    on = np.flatnonzero(a)
    gaps = np.diff(on) - 1
    for start, g in zip(on[:-1], gaps):
        if 0 < g <= max_gap:
            a[start + 1:start + 1 + g] = True
    return a


def label_stems(stems, stem_tags, mix: np.ndarray, rel_db: float = REL_DB,
                floor_db: float = FLOOR_DB, max_gap: int = FILL_GAP_FRAMES) -> np.ndarray:
    """Frame labels of a clip from its processed stems (see the module docstring).

    Parameters
    ----------
    stems : sequence of np.ndarray, each shape (n_samples,)
        The processed stems, at their final level.
    stem_tags : sequence of (str or None)
        The tag of each stem (``None``: no tag, e.g. noise).
    mix : np.ndarray, shape (n_samples,)
        The final clip audio (the stems plus noise).

    Returns
    -------
    np.ndarray of uint8, shape (n_frames(n_samples), N_TAGS)
    """
    nf = n_frames(len(mix))
    labels = np.zeros((nf, N_TAGS), np.uint8)
    mix_e = frame_energy(mix)
    if nf == 0:
        return labels
    peak_db = float(_db(mix_e).max())
    thresh = max(peak_db - rel_db, floor_db)
    per_tag = np.zeros((nf, N_TAGS), bool)
    for stem, tag in zip(stems, stem_tags):
        if tag is None:
            continue
        if tag not in TAG_INDEX:
            raise ParameterError(f"stem_tags: unknown tag {tag!r}")
        per_tag[:, TAG_INDEX[tag]] |= _db(frame_energy(stem)) > thresh
    for j in range(N_TAGS):
        if per_tag[:, j].any():
            labels[:, j] = fill_gaps(per_tag[:, j], max_gap)
    return labels
