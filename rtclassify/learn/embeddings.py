"""Embeddings of audio with a bundle's CNN, through the same streaming path as live audio.

The windows are made by :class:`~rtclassify.engine.session.StreamSession`
itself (resampling with soxr, the native :class:`rtclassify.MelFrontend`, the
ring of the last ``W`` frames padded with the frontend's silence frame at the
start, the hop schedule and the lookahead), so a learned head sees exactly
the windows it will see live. The session is given a recorder in place of
the backend: the recorder keeps a copy of every window the session would run
(and answers with zeros, so the session's decoder output is meaningless and
unused); the windows are then embedded in batches with the bundle's ONNX
``embedding`` output.

Each window is described by the frontend frame it reports (``index``), that
frame's time, and the frame's level: the Hann-weighted mean square of the
frame's ``n_fft`` samples at the model rate, in dB re full scale (the data
recipe's labelling measure), of each frame less its own mean (a DC offset is not sound).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import BundleError, ParameterError

__all__ = ["StreamWindows", "Embedded", "stream_windows", "stream_embed", "frame_levels_db", "mel_stats",
           "head_features", "FEATURES", "MEL_STATS_FRAMES", "embed_windows", "embed_examples",
           "embedding_backend"]

_BLOCK = 65536
#: Windows per embedding call. 64 rather than 256: ONNX Runtime's arena grows with the batch, and learning
#: from a 2-minute example peaked at 1042 MB of resident memory with 256 against 660 MB with 64, in the
#: same 25 s (the embeddings are equal bit for bit).
_BATCH = 64

#: Frames measured at a time by :func:`frame_levels_db`.
_LEVEL_CHUNK = 2048

#: Frames at the end of the window averaged for the "recent" mel statistics.
MEL_STATS_FRAMES = 16
#: Head inputs: the CNN embedding alone, or the embedding and two log-mel averages of the window.
FEATURES = ("embedding+mel", "embedding")


def mel_stats(windows: np.ndarray) -> np.ndarray:
    """Per-band means of log-mel windows: over the whole window, then over its last frames.

    Parameters
    ----------
    windows : ndarray, float32, shape (n, n_mels, W)

    Returns
    -------
    ndarray, float32, shape (n, 2 * n_mels)
        ``[mean over the W frames, mean over the last min(16, W) frames]`` (dB).
    """
    w = np.asarray(windows, np.float32)
    last = min(MEL_STATS_FRAMES, w.shape[2])
    return np.concatenate([w.mean(axis=2), w[:, :, -last:].mean(axis=2)], axis=1).astype(np.float32)


def head_features(backend, features: str = "embedding+mel"):
    """The function from windows to a learned head's inputs.

    ``"embedding"``: the bundle's embedding output. ``"embedding+mel"``:
    the embedding followed by :func:`mel_stats` of the window (the few-shot
    evaluation found the CNN embedding of the default model partly blind to
    timbre details inside its own tags, such as distortion on a guitar, which
    the raw spectrum keeps; see RESULTS.md).
    """
    if features not in FEATURES:
        from ..errors import ParameterError

        raise ParameterError(f"features must be one of {', '.join(FEATURES)} (got {features!r})")
    if features == "embedding":
        return lambda w: embed_windows(backend, w)
    return lambda w: np.concatenate([embed_windows(backend, w), mel_stats(w)], axis=1)


class _WindowRecorder:
    """Takes the backend's place in a StreamSession and keeps a copy of every window.

    With ``sink``, every ``batch`` windows are handed to ``sink(windows)`` and
    dropped, so memory stays bounded for long signals.
    """

    name = "recorder"

    def __init__(self, n_tags: int, sink=None, batch: int = _BATCH):
        self.windows: list[np.ndarray] = []
        self._zeros = np.zeros((1, n_tags), np.float32)
        self._sink = sink
        self._batch = int(batch)

    def run(self, windows: np.ndarray) -> np.ndarray:
        self.windows.append(np.array(windows[0], np.float32))
        if self._sink is not None and len(self.windows) >= self._batch:
            self.drain()
        return self._zeros

    def drain(self) -> None:
        if self._sink is not None and self.windows:
            self._sink(np.stack(self.windows))
            self.windows = []


@dataclass
class StreamWindows:
    """The model windows of one signal.

    Attributes
    ----------
    windows : ndarray, float32, shape (n, n_mels, W)
        Raw log-mel windows, as the backend receives them.
    index : ndarray, int64, shape (n,)
        Frontend frame each window's output reports.
    time : ndarray, float64, shape (n,)
        Centre of that frame in input seconds.
    """

    windows: np.ndarray
    index: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


def stream_windows(bundle, audio: np.ndarray, sample_rate: int, hop: float | None = None,
                   sink=None) -> StreamWindows:
    """The windows the streaming path feeds to the model for one signal.

    Parameters
    ----------
    bundle : Bundle
    audio : ndarray, float32, shape (n,)
        Mono samples at ``sample_rate``.
    sample_rate : int
        Input rate (resampled to the bundle's rate by the session).
    hop : float, optional
        Seconds between outputs (default: the bundle's ``hop_frames``).
    sink : callable, optional
        ``sink(windows)`` receives the windows in order, in batches of up to
        ``_BATCH`` (64); the returned ``windows`` is then empty (bounded memory).

    Returns
    -------
    StreamWindows
    """
    from ..engine.session import StreamSession

    rec = _WindowRecorder(bundle.n_tags, sink)
    sess = StreamSession(bundle, rec, sample_rate=int(sample_rate), max_block=_BLOCK, hop=hop, level_rate=0,
                         record_frames=True)
    index, time = [], []
    x = np.ascontiguousarray(audio, dtype=np.float32)
    for start in range(0, len(x), _BLOCK):
        sess.process(x[start:start + _BLOCK])
        index.extend(fr.index for fr in sess.last_frames)
        time.extend(fr.time for fr in sess.last_frames)
    sess.flush()
    index.extend(fr.index for fr in sess.last_frames)
    time.extend(fr.time for fr in sess.last_frames)
    rec.drain()
    if rec.windows:
        windows = np.stack(rec.windows)
    else:
        windows = np.zeros((0, bundle.n_mels, bundle.window_frames), np.float32)
    return StreamWindows(windows, np.asarray(index, np.int64), np.asarray(time, np.float64))


def stream_embed(bundle, audio: np.ndarray, sample_rate: int, fn, hop: float | None = None):
    """Embeddings of one signal's windows, computed batch by batch as the stream produces them.

    Returns
    -------
    X : ndarray, float32, shape (n, D)
    sw : StreamWindows
        With the frame indices and times (and no windows).
    """
    outs: list[np.ndarray] = []
    sw = stream_windows(bundle, audio, sample_rate, hop, sink=lambda w: outs.append(np.asarray(fn(w), np.float32)))
    X = np.concatenate(outs) if outs else None
    return X, sw


def frame_levels_db(bundle, audio: np.ndarray, sample_rate: int, index: np.ndarray | None = None,
                    remove_dc: bool = True) -> np.ndarray:
    """Level of frontend frames, in dB re full scale.

    Parameters
    ----------
    bundle : Bundle
    audio : ndarray, float32, shape (n,)
        Mono samples at ``sample_rate`` (resampled to the bundle's rate here).
    sample_rate : int
    index : ndarray of int, shape (k,), optional
        Frontend frames (frame ``i`` covers model-rate samples ``[i*hop, i*hop + n_fft)``;
        samples past the end count as zeros). Default: every complete frame.
    remove_dc : bool
        Measure each frame less its (Hann-weighted) mean (default): a DC offset is not sound.

    Returns
    -------
    ndarray, float64, shape (k,)
        ``10*log10`` of the Hann-weighted mean square of each frame (less the frame's weighted mean with
        ``remove_dc``; -200 for digital silence, or a constant with ``remove_dc``).
    """
    from ..audio.resample import resample

    x = np.asarray(audio, np.float32)
    if remove_dc and len(x):
        # a constant offset is not sound; the whole signal's mean is removed before resampling (whose filter
        # would turn a constant's edges into clicks), and each frame's own mean below (the whole signal's
        # mean alone would put an offset into the pauses of a sound whose waveform is not symmetric)
        x = (x - np.mean(x, dtype=np.float64)).astype(np.float32)
    if int(sample_rate) != bundle.sample_rate and len(x):
        x = resample(x, int(sample_rate), bundle.sample_rate)
    hop, n_fft = bundle.hop_length, bundle.n_fft
    if index is None:
        index = np.arange(0 if len(x) < n_fft else 1 + (len(x) - n_fft) // hop)
    index = np.asarray(index, np.int64)
    if len(index) == 0:
        return np.zeros(0)
    need = int(index.max()) * hop + n_fft
    xx = np.zeros(max(need, len(x)), np.float32)
    xx[:len(x)] = x
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    w2 = w * w / np.sum(w * w)
    frames = np.lib.stride_tricks.sliding_window_view(xx, n_fft)
    e = np.empty(len(index), np.float64)
    for a in range(0, len(index), _LEVEL_CHUNK):  # in chunks: the frames' copy of a long signal is n_fft times its size
        seg = frames[index[a:a + _LEVEL_CHUNK] * hop].astype(np.float64)
        ee = (seg * seg) @ w2
        if remove_dc:
            ee = np.maximum(ee - (seg @ w2) ** 2, 0.0)  # the frame's weighted variance: its own offset left out
        e[a:a + len(ee)] = ee
    return 10.0 * np.log10(np.maximum(e, 1e-20))


def embedding_backend(clf):
    """A backend of ``clf`` that gives embeddings (its own, or an ONNX Runtime one on the same bundle).

    Raises
    ------
    BundleError
        The bundle declares no ``embedding`` output.
    """
    bundle = clf.bundle
    if bundle.embedding_name is None:
        raise BundleError(f"{bundle.file_label('model.json')}: the bundle has no 'outputs.embedding'; learning a tag "
                          f"needs the embedding output of the model")
    from ..model.backends import Backend, OnnxBackend

    backend = clf.backend
    if getattr(backend, "embedding_dim", None) is None or type(backend).embed is Backend.embed:
        backend = OnnxBackend(bundle, threads=max(1, int(getattr(clf.backend, "threads", 1))))
    return backend


def embed_windows(backend, windows: np.ndarray, batch: int = _BATCH) -> np.ndarray:
    """Embeddings of windows, float32 (n, D), computed in batches."""
    n = len(windows)
    if n == 0:
        return np.zeros((0, int(backend.embedding_dim or 0)), np.float32)
    out = [np.asarray(backend.embed(windows[i:i + batch]), np.float32) for i in range(0, n, batch)]
    return np.concatenate(out)


@dataclass
class Embedded:
    """Embeddings of a list of examples, one row per model output.

    Attributes
    ----------
    X : ndarray, float32, shape (n, D)
        Embeddings.
    level_db : ndarray, float64, shape (n,)
        Level of the frame each output reports (dB re full scale).
    peak_db : ndarray, float64, shape (n,)
        Loudest frame level of the output's example (dB), for relative thresholds.
    group : ndarray, int64, shape (n,)
        Example number of each row.
    time : ndarray, float64, shape (n,)
        Time of the reported frame inside its example (s).
    names : list of str
        Example names, indexed by ``group``.
    seconds : list of float
        Example lengths.
    """

    X: np.ndarray
    level_db: np.ndarray
    peak_db: np.ndarray
    group: np.ndarray
    time: np.ndarray
    names: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.group)

    def sounding(self, rel_db: float = 40.0, floor_db: float = -70.0) -> np.ndarray:
        """Rows whose frame is within ``rel_db`` of its example's loudest frame and above ``floor_db``."""
        return (self.level_db > np.maximum(self.peak_db - rel_db, floor_db))

    def select(self, mask: np.ndarray) -> "Embedded":
        """The rows where ``mask`` is true (same example numbering)."""
        return Embedded(self.X[mask], self.level_db[mask], self.peak_db[mask], self.group[mask], self.time[mask],
                        list(self.names), list(self.seconds))

    @staticmethod
    def concat(parts: list) -> "Embedded":
        """Stack several sets; example numbers are shifted so they stay distinct."""
        Xs, lv, pk, gr, tm, names, secs = [], [], [], [], [], [], []
        off = 0
        D = max((p.X.shape[1] for p in parts), default=0)
        for p in parts:
            # a part without windows (an example shorter than the window after a pitch shift) may carry no width
            Xs.append(p.X if len(p.X) else np.zeros((0, D), np.float32))
            lv.append(p.level_db)
            pk.append(p.peak_db)
            gr.append(p.group + off)
            tm.append(p.time)
            names += p.names
            secs += p.seconds
            off += len(p.names)
        return Embedded(np.concatenate(Xs) if Xs else np.zeros((0, D), np.float32),
                        np.concatenate(lv) if lv else np.zeros(0), np.concatenate(pk) if pk else np.zeros(0),
                        np.concatenate(gr) if gr else np.zeros(0, np.int64), np.concatenate(tm) if tm else np.zeros(0),
                        names, secs)


def embed_examples(embed, bundle, examples, hop: float | None = None, level_audio: list | None = None,
                   groups: list | None = None) -> Embedded:
    """Embed a list of :class:`~rtclassify.learn.examples.Example` through the streaming path.

    Parameters
    ----------
    embed : Backend or callable
        A backend with ``embed(windows)`` (see :func:`embedding_backend`), or
        a function from windows ``(n, n_mels, W)`` to embeddings ``(n, D)``.
    bundle : Bundle
    examples : list of Example
    hop : float or sequence of float, optional
        Seconds between outputs (default: the bundle's hop); a sequence gives each example its own.
    level_audio : list, optional
        Per example, ``None`` or an ``(audio, rate)`` pair whose frame levels
        replace the example's own (a clean source for a mixed example).
    groups : list of int, optional
        Group number of each example (default: its position).

    Returns
    -------
    Embedded
    """
    fn = embed if callable(embed) and not hasattr(embed, "embed") else (lambda w: embed_windows(embed, w))
    Xs, lv, pk, gr, tm = [], [], [], [], []
    hops = list(hop) if isinstance(hop, (list, tuple, np.ndarray)) else [hop] * len(examples)
    if len(hops) != len(examples):
        raise ParameterError(f"hop: {len(hops)} values for {len(examples)} examples")
    for g, ex in enumerate(examples):
        X, sw = stream_embed(bundle, ex.audio, ex.sample_rate, fn, hops[g])
        ref = level_audio[g] if level_audio is not None and level_audio[g] is not None else (ex.audio, ex.sample_rate)
        every = frame_levels_db(bundle, ref[0], ref[1])
        peak = float(every.max()) if len(every) else -200.0
        levels = np.full(len(sw.index), -200.0)
        inside = sw.index < len(every)
        levels[inside] = every[sw.index[inside]]
        Xs.append(X)
        lv.append(levels)
        pk.append(np.full(len(levels), peak))
        gr.append(np.full(len(levels), g if groups is None else groups[g], np.int64))
        tm.append(sw.time)
    D = next((x.shape[1] for x in Xs if x is not None), 0)
    Xs = [x if x is not None else np.zeros((0, D), np.float32) for x in Xs]
    return Embedded(np.concatenate(Xs) if Xs else np.zeros((0, D), np.float32),
                    np.concatenate(lv) if lv else np.zeros(0), np.concatenate(pk) if pk else np.zeros(0),
                    np.concatenate(gr) if gr else np.zeros(0, np.int64), np.concatenate(tm) if tm else np.zeros(0),
                    [ex.name for ex in examples], [ex.seconds for ex in examples])
