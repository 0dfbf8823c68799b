"""Log-mel features for training and evaluation, and their on-disk cache.

Features are computed with the native streaming frontend
(:class:`rtclassify.MelFrontend`), the same code the runtime uses, so the
model is trained on exactly the frames it will see live.

A split is cached as one contiguous array of frames for all its clips:

``<cache>/<split>/mel.npy``
    float16, shape (n_frames_total, n_mels): log-mel frames in dB.
``<cache>/<split>/labels.npy``
    uint8, shape (n_frames_total, n_tags): per-frame tag activity (0/1).
``<cache>/<split>/offsets.npy``
    int64, shape (n_clips + 1,): clip ``k`` owns frames
    ``offsets[k]:offsets[k + 1]``.
``<cache>/<split>/meta.json``
    frontend config, tags, clip names and a fingerprint of the source data;
    the cache is rebuilt when any of them changes.

A frontend other than :data:`DEFAULT_FRONTEND` is cached beside it, in
``<cache>/<split>-<key>`` (:func:`cache_folder`), so that models with
different frontends can be trained and evaluated on one data folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import ConfigError, ParameterError

__all__ = [
    "DEFAULT_FRONTEND",
    "FeatureSet",
    "Clip",
    "make_frontend",
    "logmel",
    "frame_rms_db",
    "build_feature_set",
    "cache_folder",
    "clip_index",
    "full_frontend",
    "frontend_differences",
    "load_feature_set",
    "window_batch",
]

#: Frontend of the default model (see the model contract).
DEFAULT_FRONTEND = {
    "sample_rate": 16000,
    "n_fft": 512,
    "win_length": 512,
    "hop_length": 256,
    "window": "hann",
    "n_mels": 128,
    "fmin": 0.0,
    "fmax": 8000.0,
    "mel_scale": "htk",
    "norm": None,
    "power": 2.0,
    "log": "db",
    "amin": 1e-10,
}

_CACHE_VERSION = 1


def full_frontend(frontend: dict | None = None) -> dict:
    """Every key of a frontend config: :data:`DEFAULT_FRONTEND` with ``frontend``'s values. A config that
    sets ``n_fft`` but not ``win_length`` gets a window as long as the FFT, as the native frontend does."""
    fe = dict(frontend or {})
    f = dict(DEFAULT_FRONTEND, **fe)
    if "n_fft" in fe and fe.get("win_length") is None:
        f["win_length"] = fe["n_fft"]
    return f


def frontend_differences(a: dict, b: dict) -> list[str]:
    """The keys, sorted, whose values differ between two frontend configs (a key one lacks counts as None)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def cache_folder(cache: str | os.PathLike, split: str, frontend: dict | None = None) -> Path:
    """The cache folder of a split for a frontend.

    ``<cache>/<split>`` for :data:`DEFAULT_FRONTEND` (the folder every earlier
    cache used), ``<cache>/<split>-<key>`` for any other, where ``key`` is a
    short hash of the frontend's values.
    """
    f = full_frontend(frontend)
    if f == DEFAULT_FRONTEND:
        return Path(cache) / split
    return Path(cache) / f"{split}-{_fingerprint(f'{k}={f[k]!r}' for k in sorted(f))[:8]}"


@dataclass
class Clip:
    """One labelled clip.

    Attributes
    ----------
    name : str
        Identifier (relative path or id) used in error messages and the cache.
    audio : np.ndarray, shape (n_samples,)
        float32 mono audio at the frontend's sample rate.
    labels : np.ndarray, shape (n_frames, n_tags)
        Per-frontend-frame tag activity (0/1 or bool). Rows beyond the number
        of frames the frontend produces are ignored; missing rows are an error.
    """

    name: str
    audio: np.ndarray
    labels: np.ndarray


def make_frontend(frontend: dict | None = None):
    """Construct a native :class:`rtclassify.MelFrontend` from a frontend dict.

    Parameters
    ----------
    frontend : dict, optional
        Keys as in :data:`DEFAULT_FRONTEND` (the bundle's ``frontend``).
    """
    from .. import MelFrontend

    f = full_frontend(frontend)
    return MelFrontend(
        int(f["sample_rate"]), int(f["n_fft"]), int(f["hop_length"]), int(f["n_mels"]),
        fmin=float(f["fmin"]), fmax=None if f["fmax"] is None else float(f["fmax"]),
        win_length=None if f["win_length"] is None else int(f["win_length"]),
        window=f["window"], mel_scale=f["mel_scale"], norm=f["norm"], power=float(f["power"]),
        log=f["log"], amin=float(f["amin"]),
    )


def logmel(audio: np.ndarray, frontend: dict | None = None, _fe=None) -> np.ndarray:
    """Log-mel frames of a whole signal through the native streaming frontend.

    Parameters
    ----------
    audio : np.ndarray, shape (n_samples,)
        Mono audio at the frontend's sample rate.
    frontend : dict, optional
        Frontend config (defaults to :data:`DEFAULT_FRONTEND`).

    Returns
    -------
    np.ndarray, shape (n_frames, n_mels), float32
        ``n_frames = 1 + (n_samples - n_fft) // hop`` (0 when shorter than n_fft).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ParameterError(f"audio must be 1-D (mono), got shape {audio.shape}")
    fe = _fe if _fe is not None else make_frontend(frontend)
    fe.reset()
    out = fe.push(np.ascontiguousarray(audio))
    fe.reset()
    return np.asarray(out, dtype=np.float32)


def frame_rms_db(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """RMS level in dBFS of each frontend frame (frame i = samples [i*hop, i*hop+n_fft)).

    Parameters
    ----------
    audio : np.ndarray, shape (n_samples,)

    Returns
    -------
    np.ndarray, shape (n_frames,)
    """
    audio = np.asarray(audio, dtype=np.float64)
    n = 0 if audio.size < n_fft else 1 + (audio.size - n_fft) // hop
    if n == 0:
        return np.zeros(0)
    c = np.concatenate([[0.0], np.cumsum(audio * audio)])
    starts = np.arange(n) * hop
    ms = (c[starts + n_fft] - c[starts]) / n_fft
    return 10.0 * np.log10(np.maximum(ms, 1e-12))


@dataclass
class FeatureSet:
    """A split's cached frames, labels and clip boundaries (see the module doc).

    Attributes
    ----------
    mel : np.ndarray, shape (n_frames_total, n_mels), float16 (may be memory-mapped)
    labels : np.ndarray, shape (n_frames_total, n_tags), uint8
    offsets : np.ndarray, shape (n_clips + 1,), int64
    names : list of str
    tags : list of str
    frontend : dict
    """

    mel: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    names: list
    tags: list
    frontend: dict

    @property
    def n_clips(self) -> int:
        return len(self.offsets) - 1

    def target_frames(self, window_frames: int, lookahead: int, stride: int = 1, starts: bool = False) -> np.ndarray:
        """Absolute indices of the frames a model can report, per clip, every ``stride`` frames.

        A target frame ``t`` needs the window ``[t + lookahead - W + 1, t + lookahead]``
        inside its clip. With ``starts``, the frames of a clip's first window are targets too:
        their windows reach back before the clip, where :func:`window_batch` puts the frontend's
        frame for digital silence, as a live stream or a file has before its first sample.

        Returns
        -------
        np.ndarray, shape (n_targets,), int64
        """
        out = []
        for a, b in zip(self.offsets[:-1], self.offsets[1:]):
            first = a if starts else a + window_frames - 1 - lookahead
            last = b - 1 - lookahead
            if last >= first:
                out.append(np.arange(first, last + 1, stride, dtype=np.int64))
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def silence_frame(self) -> np.ndarray:
        """The frontend's frame for digital silence (n_mels,) float32: what the runtime's window holds
        before a stream's first frame."""
        if getattr(self, "_silence", None) is None:
            from ..engine.session import silence_frame

            self._silence = silence_frame(full_frontend(self.frontend))
        return self._silence

    def frames_in(self, ms: float) -> int:
        """Whole frames (at least one) nearest to ``ms`` milliseconds at this set's hop."""
        hop_ms = 1000.0 * float(self.frontend["hop_length"]) / float(self.frontend["sample_rate"])
        return max(1, round(float(ms) / hop_ms))

    def after_onsets(self, frames: int) -> np.ndarray:
        """Per frame and tag: the tag turned on (off -> on inside the same clip, not at the clip's
        first frame) at most ``frames - 1`` frames before and is still on.

        Returns
        -------
        np.ndarray, shape (n_frames_total, n_tags), bool
        """
        if int(frames) < 1:
            raise ParameterError(f"frames must be >= 1, got {frames}")
        labels = np.asarray(self.labels).astype(bool)
        idx = np.arange(len(labels))
        clip_start = np.repeat(self.offsets[:-1], np.diff(self.offsets))
        prev = np.zeros_like(labels)
        prev[1:] = labels[:-1]
        onset = labels & ~prev & (idx != clip_start)[:, None]
        last = np.maximum.accumulate(np.where(onset, idx[:, None], -1), axis=0)
        return labels & (last >= clip_start[:, None]) & (idx[:, None] - last < int(frames))


def clip_index(offsets: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The clip (an index into ``offsets[:-1]``) of each absolute frame of a FeatureSet."""
    return np.searchsorted(offsets, frames, side="right") - 1


def window_batch(mel: np.ndarray, ends: np.ndarray, window_frames: int, offsets: np.ndarray | None = None,
                 pad: np.ndarray | None = None) -> np.ndarray:
    """Gather windows that end at the given absolute frames.

    Parameters
    ----------
    mel : np.ndarray, shape (n_frames_total, n_mels)
    ends : np.ndarray, shape (batch,)
        Absolute index of each window's last frame (``>= window_frames - 1`` unless ``offsets``
        is given).
    window_frames : int
    offsets, pad : np.ndarray, optional
        The clips' first frames (a FeatureSet's ``offsets``) and a frame (n_mels,): the frames of
        a window before its clip's first frame become ``pad`` (the frontend's frame for silence,
        :meth:`FeatureSet.silence_frame`), as in the runtime's first windows of a stream.

    Returns
    -------
    np.ndarray, shape (batch, n_mels, window_frames), float32
    """
    ends = np.asarray(ends, np.int64)
    idx = ends[:, None] + np.arange(1 - window_frames, 1, dtype=np.int64)[None, :]
    if offsets is None:
        return np.ascontiguousarray(np.asarray(mel[idx], dtype=np.float32).transpose(0, 2, 1))
    if pad is None:
        raise ParameterError("window_batch: offsets need a pad frame")
    offsets = np.asarray(offsets, np.int64)
    starts = offsets[clip_index(offsets, ends)]
    before = idx < starts[:, None]
    out = np.asarray(mel[np.maximum(idx, starts[:, None])], dtype=np.float32)
    out[before] = np.asarray(pad, np.float32)
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def _fingerprint(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def build_feature_set(clips: Iterable[Clip], out_dir: str | os.PathLike, tags: list, frontend: dict | None = None,
                      source_fingerprint: str = "", n_clips: int | None = None, progress: bool = True,
                      label_offset: int = 0) -> FeatureSet:
    """Compute log-mel frames for every clip and write the split cache.

    Parameters
    ----------
    clips : iterable of Clip
    out_dir : path
        The split's cache folder (created).
    tags : list of str
        Tag names of the label columns.
    frontend : dict, optional
    source_fingerprint : str
        Identifies the source data; stored so a changed source rebuilds the cache.
    n_clips : int, optional
        Total for the progress bar.
    progress : bool
        Show a rich progress bar.
    label_offset : int
        The clips' label row of frontend frame ``i`` is ``i + label_offset``: labels made on a
        grid of shorter frames than the frontend's, with the same hop, whose frame
        ``i + label_offset`` has the centre of the frontend's frame ``i`` (see
        :func:`grid_label_offset`). 0 when the labels are on the
        frontend's own frames.

    Returns
    -------
    FeatureSet
    """
    if isinstance(label_offset, bool) or not isinstance(label_offset, int) or label_offset < 0:
        raise ParameterError(f"label_offset must be a whole number >= 0, got {label_offset!r}")
    f = full_frontend(frontend)
    from ..model.bundle_write import make_output_folder

    out_dir = make_output_folder(out_dir, "the feature cache folder (--cache, [data] cache)")
    fe = make_frontend(f)
    mels, labs, names, offsets = [], [], [], [0]
    it: Iterator[Clip] = iter(clips)
    ctx = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
        ctx = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), transient=True)
        ctx.start()
        task = ctx.add_task(f"features {out_dir.name}", total=n_clips)
    try:
        for clip in it:
            m = logmel(clip.audio, f, _fe=fe)
            lab = np.asarray(clip.labels)
            if lab.ndim != 2 or lab.shape[1] != len(tags):
                raise ParameterError(f"labels of clip {clip.name!r} must have shape (n_frames, {len(tags)}), "
                                     f"got {lab.shape}")
            if lab.shape[0] < m.shape[0] + label_offset:
                raise ParameterError(f"clip {clip.name!r} has {lab.shape[0]} label frames for {m.shape[0]} "
                                     f"frontend frames" + (f" from label frame {label_offset}" if label_offset else ""))
            mels.append(m.astype(np.float16))
            labs.append((lab[label_offset: label_offset + m.shape[0]] > 0.5).astype(np.uint8))
            names.append(clip.name)
            offsets.append(offsets[-1] + m.shape[0])
            if ctx is not None:
                ctx.advance(task)
    finally:
        if ctx is not None:
            ctx.stop()
    n_mels = int(f["n_mels"])
    mel = np.concatenate(mels) if mels else np.zeros((0, n_mels), np.float16)
    labels = np.concatenate(labs) if labs else np.zeros((0, len(tags)), np.uint8)
    offs = np.asarray(offsets, np.int64)
    np.save(out_dir / "mel.npy", mel)
    np.save(out_dir / "labels.npy", labels)
    np.save(out_dir / "offsets.npy", offs)
    meta = {"version": _CACHE_VERSION, "frontend": f, "tags": list(tags), "names": names,
            "source": source_fingerprint, "n_frames": int(mel.shape[0])}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return FeatureSet(mel, labels, offs, names, list(tags), f)


def load_feature_set(out_dir: str | os.PathLike, tags: list | None = None, frontend: dict | None = None,
                     source_fingerprint: str | None = None, mmap: bool = False) -> FeatureSet | None:
    """Load a split cache; ``None`` when it is absent or stale.

    Parameters
    ----------
    out_dir : path
    tags, frontend, source_fingerprint : optional
        When given, the cache must match them, else ``None`` is returned.
    mmap : bool
        Memory-map the arrays instead of reading them.
    """
    out_dir = Path(out_dir)
    try:
        meta = json.loads((out_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("version") != _CACHE_VERSION:
        return None
    if tags is not None and list(tags) != meta.get("tags"):
        return None
    if frontend is not None and full_frontend(frontend) != meta.get("frontend"):
        return None
    if source_fingerprint is not None and source_fingerprint != meta.get("source"):
        return None
    mode = "r" if mmap else None
    try:
        mel = np.load(out_dir / "mel.npy", mmap_mode=mode)
        labels = np.load(out_dir / "labels.npy", mmap_mode=mode)
        offsets = np.load(out_dir / "offsets.npy")
    except (OSError, ValueError):
        return None
    if mel.shape[0] != offsets[-1] or labels.shape[0] != offsets[-1]:
        return None
    return FeatureSet(mel, labels, offsets, meta["names"], meta["tags"], meta["frontend"])


# ----------------------------------------------------------------------------- data builder splits
#: the FFT sizes a training frontend may take: powers of two up to the native frontend's 4096, from the
#: data builder's 512-sample label frames
_GRID_FFT_SIZES = (512, 1024, 2048, 4096)


def grid_label_offset(frontend: dict) -> int:
    """The data builder's label frame that has the centre of the frontend's frame 0.

    The builder labels frames of ``N_FFT`` samples every ``HOP`` (``rtclassify.train.data.labels``).
    A frontend with the same hop and a longer FFT has frames centred ``(n_fft - N_FFT) / 2``
    samples later, which is a whole number of label frames when ``n_fft - N_FFT`` is a multiple of
    ``2 * HOP``.

    Raises
    ------
    ConfigError
        The frontend's rate or hop is not the grid's, or its frames do not fall on the grid's centres.
    """
    from .data.labels import HOP, N_FFT, SAMPLE_RATE

    f = full_frontend(frontend)
    n_fft = f["n_fft"]
    if int(f["sample_rate"]) != SAMPLE_RATE or int(f["hop_length"]) != HOP:
        raise ConfigError(f"the frontend must keep the data's {SAMPLE_RATE} Hz and hop of {HOP} samples, got "
                          f"{f['sample_rate']} Hz and {f['hop_length']}")
    if (isinstance(n_fft, bool) or not isinstance(n_fft, int) or n_fft not in _GRID_FFT_SIZES
            or (n_fft - N_FFT) % (2 * HOP)):
        raise ConfigError(f"[frontend] n_fft must be one of {', '.join(map(str, _GRID_FFT_SIZES))} (a power of two "
                          f"the frontend computes, whose frames are centred on the data's label frames), got {n_fft!r}")
    return (n_fft - N_FFT) // (2 * HOP)


def _split_clips(data_dir: Path, split: str):
    """(clips iterator, count, fingerprint, provenance) of a data-builder split."""
    from .data import load_split

    return load_split(data_dir, split)


def split_features(data_dir, split: str, tags=None, frontend: dict | None = None, cache_dir=None,
                   progress: bool = True) -> FeatureSet:
    """Features of a data-builder split, from the cache or computed (and cached).

    Parameters
    ----------
    data_dir : path
        Output folder of ``rtclassify data build``.
    split : str
    tags : sequence of str, optional
        Default the data builder's twelve tags.
    frontend : dict, optional
    cache_dir : path, optional
        Default ``<data_dir>/features``.

    Returns
    -------
    FeatureSet

    Raises
    ------
    ParameterError
        The folder is missing, or the split has no clips (a build with ``--splits`` that left it out).
    """
    from .data import TAGS, split_fingerprint

    tags = TAGS if tags is None else tags
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ParameterError(f"data dir {data_dir} does not exist")
    cache = Path(cache_dir) if cache_dir else data_dir / "features"
    fp = split_fingerprint(data_dir, split)
    fe = full_frontend(frontend)
    try:
        offset = grid_label_offset(fe)
    except ConfigError as exc:
        raise ParameterError(f"data dir {data_dir}: {exc}") from None
    folder = cache_folder(cache, split, fe)
    fs = load_feature_set(folder, tags=list(tags), frontend=fe, source_fingerprint=fp)
    if fs is not None and fs.n_clips > 0:
        return fs
    clips, n = _split_clips(data_dir, split)
    if n == 0:
        raise ParameterError(f"data dir {data_dir}: the {split!r} split has no clips (a build with --splits "
                             f"that left it out?); rebuild it with rtclassify data build")
    return build_feature_set(clips, folder, list(tags), fe, source_fingerprint=fp, n_clips=n,
                             progress=progress, label_offset=offset)
