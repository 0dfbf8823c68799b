"""Evaluation of a model bundle: tag metrics on a data split and on real recordings.

Inference goes through the shipped artifact (the bundle's ONNX graph run by
ONNX Runtime on windows of the native frontend's frames), never through torch,
so the numbers describe what users get.

Metrics per tag and macro (mean over tags that have positives and negatives):
ROC-AUC and PR-AUC (average precision) from scikit-learn, and F1 of the tags'
states as the live decoder sets them along each clip (the bundle's smoothing,
thresholds with hysteresis and minimum durations, one output per hop).
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
from pathlib import Path

import numpy as np

from ..errors import ParameterError, RtclassifyError, require
from .data.labels import TAGS as DEFAULT_TAGS

__all__ = [
    "tag_metrics",
    "choose_thresholds",
    "hysteresis",
    "OnnxWindowModel",
    "format_real_table",
    "predict_feature_set",
    "evaluate_split",
    "subset_metrics",
    "source_of_positives",
    "by_source_metrics",
    "evaluate_real",
    "check_real_labels",
    "plot_split_report",
]


# ----------------------------------------------------------------------------- metrics
def hysteresis(probs: np.ndarray, on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Binarize a sequence with per-tag hysteresis.

    Parameters
    ----------
    probs : np.ndarray, shape (n_frames, n_tags)
    on, off : np.ndarray, shape (n_tags,)
        A tag turns on when ``p >= on`` and off when ``p < off`` (``off <= on``).

    Returns
    -------
    np.ndarray, shape (n_frames, n_tags), bool
    """
    probs = np.asarray(probs)
    out = np.zeros(probs.shape, bool)
    state = np.zeros(probs.shape[1], bool)
    for i in range(probs.shape[0]):
        p = probs[i]
        state = np.where(state, p >= off, p >= on)
        out[i] = state
    return out


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(y & pred))
    fp = float(np.sum(~y & pred))
    fn = float(np.sum(y & ~pred))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def tag_metrics(y_true: np.ndarray, probs: np.ndarray, tags, active: np.ndarray | None = None) -> dict:
    """Per-tag and macro ROC-AUC, PR-AUC and (optionally) F1.

    Parameters
    ----------
    y_true : np.ndarray, shape (n, n_tags)
        0/1 labels.
    probs : np.ndarray, shape (n, n_tags)
    tags : sequence of str
    active : np.ndarray, shape (n, n_tags), bool, optional
        Decisions (for example from :func:`hysteresis`); gives ``f1``.

    Returns
    -------
    dict
        ``{"per_tag": {tag: {roc_auc, pr_auc, f1?, positives, prevalence}},
        "macro": {roc_auc, pr_auc, f1?}, "n": n}``. Tags without both classes
        get ``None`` AUCs and are left out of the macro means.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y_true) > 0.5
    probs = np.asarray(probs, np.float64)
    if y.shape != probs.shape or y.ndim != 2 or y.shape[1] != len(tags):
        raise ParameterError(f"y_true {y.shape} and probs {probs.shape} must both be (n, {len(tags)})")
    per = {}
    for j, tag in enumerate(tags):
        pos = int(y[:, j].sum())
        d = {"positives": pos, "prevalence": pos / max(1, len(y))}
        if 0 < pos < len(y):
            d["roc_auc"] = float(roc_auc_score(y[:, j], probs[:, j]))
            d["pr_auc"] = float(average_precision_score(y[:, j], probs[:, j]))
        else:
            d["roc_auc"] = d["pr_auc"] = None
        if active is not None:
            d["f1"] = _f1(y[:, j], np.asarray(active)[:, j]) if pos > 0 else None
        per[tag] = d

    out = {"per_tag": per, "macro": {"roc_auc": _macro(per, "roc_auc"), "pr_auc": _macro(per, "pr_auc")},
           "n": int(len(y))}
    if active is not None:
        out["macro"]["f1"] = _macro(per, "f1")
    return out


def _macro(per: dict, key: str):
    """Mean of a per-tag metric over the tags that have it (None when none has)."""
    vals = [d[key] for d in per.values() if d.get(key) is not None]
    return float(np.mean(vals)) if vals else None


#: Fewest quiet frames a quiet-frame floor is taken from (fewer leave the thresholds to F1 alone).
MIN_QUIET_FRAMES = 500


def choose_thresholds(y_true: np.ndarray, probs: np.ndarray, tags, off_ratio: float = 0.7,
                      lo: float = 0.05, hi: float = 0.95, quiet_false_rate: float = 0.0,
                      quiet: np.ndarray | None = None, report: dict | None = None) -> dict:
    """Per-tag thresholds that maximize frame F1, with hysteresis ``off = on * off_ratio``.

    Parameters
    ----------
    y_true, probs : np.ndarray, shape (n, n_tags)
    tags : sequence of str
    off_ratio : float
        Ratio of the off threshold to the on threshold (0 < ratio <= 1).
    lo, hi : float
        Range the on threshold is clipped to.
    quiet_false_rate : float
        In [0, 0.5). When > 0, each on threshold is at least the ``1 - quiet_false_rate`` quantile of
        the tag's probability over the quiet frames, so that a tag crosses it in at most that share
        of them. F1 counts a few hundred false frames in noise as next to nothing, while on stage
        they are a tag lit by rain. Needs at least :data:`MIN_QUIET_FRAMES` quiet frames; with fewer
        the floor is not applied.
    quiet : np.ndarray of bool, shape (n,), optional
        Which rows are quiet. Default: the rows with every tag off. The trainer passes the frames of
        clips with every tag off throughout (noise, ambiences, test tones, silence): the gaps
        between notes of music clips are mostly near-silent and would dilute the quantile.
    report : dict, optional
        Filled with ``"quiet_frames"`` and, for each tag whose floor raised its threshold,
        ``{tag: {"f1_on", "quiet_floor", "on", "met"}}``: the F1 threshold, the floor, the
        threshold kept (at most ``hi``), and whether it reaches the floor.

    Returns
    -------
    dict
        ``{tag: {"on": float, "off": float}}``.
    """
    from sklearn.metrics import precision_recall_curve

    if not 0 < off_ratio <= 1:
        raise ParameterError(f"off_ratio must be in (0, 1], got {off_ratio}")
    if not (math.isfinite(quiet_false_rate) and 0 <= quiet_false_rate < 0.5):
        raise ParameterError(f"quiet_false_rate must be in [0, 0.5), got {quiet_false_rate}")
    y = np.asarray(y_true) > 0.5
    probs = np.asarray(probs)
    quiet = ~y.any(axis=1) if quiet is None else np.asarray(quiet, bool)
    if quiet.shape != (len(y),):
        raise ParameterError(f"quiet must be a bool mask of {len(y)} rows, got shape {quiet.shape}")
    use_floor = quiet_false_rate > 0 and int(quiet.sum()) >= MIN_QUIET_FRAMES
    if report is not None:
        report["quiet_frames"] = int(quiet.sum())
    out = {}
    for j, tag in enumerate(tags):
        on = 0.5
        if 0 < y[:, j].sum() < len(y):
            p, r, t = precision_recall_curve(y[:, j], probs[:, j])
            f = 2 * p[:-1] * r[:-1] / np.maximum(p[:-1] + r[:-1], 1e-12)
            on = float(t[int(np.argmax(f))])
        f1_on = float(min(max(on, lo), hi))
        on = f1_on
        if use_floor:
            floor = float(np.quantile(probs[quiet, j], 1.0 - quiet_false_rate))
            on = float(min(max(on, floor), hi))
            if on > f1_on and report is not None:
                # the floor is held up to ``hi`` only: above it the tag crosses the threshold in more quiet frames
                report[tag] = {"f1_on": round(f1_on, 4), "quiet_floor": round(floor, 4), "on": round(on, 4),
                               "met": bool(floor <= hi)}
        out[tag] = {"on": round(on, 4), "off": round(on * off_ratio, 4)}
    return out


# ----------------------------------------------------------------------------- inference
class OnnxWindowModel:
    """A bundle loaded by the runtime (:func:`rtclassify.model.bundle.load_bundle`) with its ONNX backend.

    Parameters
    ----------
    bundle : path
        Bundle folder or zip.
    threads : int
        ONNX Runtime intra-op threads.
    """

    def __init__(self, bundle, threads: int = 1):
        from ..model.backends import make_backend
        from ..model.bundle import load_bundle

        self.bundle = load_bundle(bundle)
        self.backend = make_backend(self.bundle, "onnx", threads=int(threads))
        self.meta = self.bundle.meta
        self.window_frames = self.bundle.window_frames

    def __call__(self, windows: np.ndarray, batch: int = 512) -> np.ndarray:
        """Probabilities (n, n_tags) of windows of shape (n, n_mels, W)."""
        out = [self.backend.run(windows[i:i + batch]) for i in range(0, len(windows), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.bundle.n_tags), np.float32)


def _eval_targets(model: OnnxWindowModel, fs, stride: int, max_windows: int | None) -> np.ndarray:
    targets = fs.target_frames(model.window_frames, int(model.meta["lookahead_frames"]), stride)
    if max_windows and len(targets) > max_windows:
        targets = targets[np.linspace(0, len(targets) - 1, max_windows).astype(np.int64)]
    return targets


#: Stretches after an onset scored on their own by :func:`evaluate_split`, ms.
ONSET_SPANS_MS = (100, 250)


def subset_metrics(y_true: np.ndarray, probs: np.ndarray, keep: np.ndarray, tags) -> dict:
    """ROC-AUC and PR-AUC per tag with only some of its positives (and every negative).

    Parameters
    ----------
    y_true, probs : np.ndarray, shape (n, n_tags)
    keep : np.ndarray, shape (n, n_tags), bool
        The positive frames to keep (for example :meth:`FeatureSet.after_onsets` at the
        evaluated frames: the positives just after the tag's onsets, or the frames of one
        source); every negative frame is kept.

    Returns
    -------
    dict
        Like :func:`tag_metrics` without F1 (``positives`` counts the kept ones).
    """
    y = np.asarray(y_true) > 0.5
    keep = np.asarray(keep, bool) | ~y
    per = {}
    for j, tag in enumerate(tags):
        rows = keep[:, j]
        per[tag] = tag_metrics(y[rows, j:j + 1], np.asarray(probs)[rows, j:j + 1], [tag])["per_tag"][tag]
    return {"per_tag": per, "macro": {k: _macro(per, k) for k in ("roc_auc", "pr_auc")}, "n": int(len(y))}


def _source_name(src: dict) -> str:
    from .data.fluid import SOUNDFONTS

    if src.get("type") in {sf.engine for sf in SOUNDFONTS.values()}:
        return f"soundfont {src.get('soundfont', '?')}"
    if src.get("type") == "tonejs-samples":
        return f"npm {src.get('instrument', '?')}"
    return str(src.get("type", "?"))


def source_of_positives(data_dir, split: str, fs, tags) -> list[dict]:
    """Per clip of ``fs``: for each tag, the one source its positives come from.

    The source is the manifest's: ``soundfont NAME`` (FluidSynth renders), ``npm INSTRUMENT``
    (recorded notes) or the source type (``espeak-ng``, ``sung-festival``, ...). A tag with
    positives from more than one source in a clip gets None there (its frames cannot be told
    apart). Empty when the data set has no manifest (not built by ``rtclassify data build``).
    """
    from .data.build import split_records

    try:
        recs = {r["clip"]: r for r in split_records(data_dir, split)}
    except (ParameterError, OSError):
        return []
    out = []
    for name in fs.names:
        by_tag = {}
        for src in recs.get(name, {}).get("sources", []):
            t = src.get("tag")
            if t in tags:
                by_tag.setdefault(t, set()).add(_source_name(src))
        out.append({t: next(iter(v)) if len(v) == 1 else None for t, v in by_tag.items()})
    return out


def by_source_metrics(labels: np.ndarray, probs: np.ndarray, clip_index: np.ndarray, sources: list[dict],
                      tags) -> dict:
    """``{tag: {source: {positives, roc_auc, pr_auc}}}``: each tag scored on the positives of one
    source at a time (see :func:`source_of_positives`) against all its negatives."""
    out = {}
    for j, tag in enumerate(tags):
        per_clip = np.array([src.get(tag) or "" for src in sources], dtype=object)
        names = sorted(set(per_clip) - {""})
        rows = {}
        for name in names:
            keep = (per_clip[clip_index] == name)[:, None]
            rows[name] = subset_metrics(labels[:, j:j + 1], probs[:, j:j + 1], keep, [tag])["per_tag"][tag]
        out[tag] = rows
    return out


def predict_feature_set(model: OnnxWindowModel, fs, stride: int, max_windows: int | None = None):
    """Probabilities for every ``stride``-th reportable frame of every clip.

    Returns
    -------
    probs : np.ndarray, shape (n, n_tags)
    labels : np.ndarray, shape (n, n_tags)
    clip_index : np.ndarray, shape (n,)
        The clip of each row (rows of a clip are consecutive and in time order).
    """
    return _predict_targets(model, fs, _eval_targets(model, fs, stride, max_windows))


def _predict_targets(model: OnnxWindowModel, fs, targets: np.ndarray):
    """:func:`predict_feature_set` at given target frames."""
    from .features import clip_index, window_batch

    W = model.window_frames
    L = int(model.meta["lookahead_frames"])
    probs = []
    for i in range(0, len(targets), 2048):
        t = targets[i:i + 2048]
        probs.append(model(window_batch(fs.mel, t + L, W)))
    probs = np.concatenate(probs) if probs else np.zeros((0, len(fs.tags)), np.float32)
    return probs, np.asarray(fs.labels[targets]), clip_index(fs.offsets, targets)


def _decide(bundle, probs: np.ndarray, clip_index: np.ndarray, hop_s: float) -> np.ndarray:
    """The live decoder's states over each clip's outputs (one row per hop, every tag of ``bundle``): the
    bundle's smoothing, thresholds and minimum durations, as ``listen`` and ``Classifier.tag`` decide."""
    from ..detect.decoder import Decoder, DecoderConfig

    config = DecoderConfig.from_bundle(bundle, level_rate=0.0)
    active = np.zeros(probs.shape, bool)
    bounds = np.flatnonzero(np.diff(clip_index)) + 1
    for seg in np.split(np.arange(len(probs)), bounds):
        decoder = Decoder(config, hop_s)
        for i in seg:
            decoder.step(probs[i], float(i) * hop_s)
            active[i] = decoder.active
    return active


def evaluate_split(bundle, data_dir, split: str = "test", cache_dir=None, threads: int = 2,
                   max_windows: int | None = None, progress: bool = True) -> tuple[dict, dict]:
    """Metrics of a bundle on a data split (every hop_frames-th frame of every clip).

    F1 is of the live decoder's states over each clip's outputs (:func:`_decide`); with ``max_windows`` the
    rows are thinned and the decoder takes them as consecutive hops.

    Returns
    -------
    report : dict
        :func:`tag_metrics` output plus ``split`` and ``stride``.
    curves : dict
        Arrays for plotting: ``labels``, ``probs``.
    """
    from .features import split_features

    model = OnnxWindowModel(bundle, threads=threads)
    meta = model.meta
    names = list(model.bundle.labels)
    data_tags = _data_tags(data_dir, names)
    # the tags both have: a learned or fine-tuned bundle is scored on the data's tags it outputs
    tags = [t for t in names if t in data_tags]
    if not tags:
        raise ParameterError(f"the bundle's tags ({', '.join(names)}) and those of the data in {data_dir} "
                             f"({', '.join(data_tags)}) have none in common")
    fs = split_features(data_dir, split, data_tags, meta["frontend"], cache_dir=cache_dir, progress=progress)
    stride = int(model.bundle.hop_frames)
    targets = _eval_targets(model, fs, stride, max_windows)
    probs, labels, clip_index = _predict_targets(model, fs, targets)
    hop_s = stride * model.bundle.hop_length / model.bundle.sample_rate
    columns = [names.index(t) for t in tags]
    active = _decide(model.bundle, probs, clip_index, hop_s)[:, columns]
    probs = probs[:, columns]
    data_columns = [data_tags.index(t) for t in tags]
    labels = labels[:, data_columns]
    report = tag_metrics(labels, probs, tags, active=active)
    report["after_onset"] = {
        f"{ms}ms": subset_metrics(labels, probs, fs.after_onsets(fs.frames_in(ms))[targets][:, data_columns], tags)
        for ms in ONSET_SPANS_MS}
    sources = source_of_positives(data_dir, split, fs, tags)
    if sources:
        report["by_source"] = by_source_metrics(labels, probs, clip_index, sources, tags)
    report.update(split=split, stride_frames=stride, data=str(data_dir))
    if len(tags) < len(names):
        report["not_in_data"] = [t for t in names if t not in data_tags]
    return report, {"labels": labels, "probs": probs}


def _data_tags(data_dir, default) -> list[str]:
    """The tags of a built data set, in the order of its label columns (``default`` for a folder without a
    manifest's tag list)."""
    from .data.build import read_manifest

    try:
        tags = read_manifest(data_dir).get("tags")
    except (ParameterError, RtclassifyError, OSError):
        return list(default)
    return list(tags) if isinstance(tags, list) and tags else list(default)


def plot_split_report(report: dict, curves: dict, tags, out_dir) -> list[Path]:
    """Write PR curves per tag and per-tag metric bars as PNG files; returns their paths."""
    require("matplotlib", extra="train")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    from ..model.bundle_write import write_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y, p = np.asarray(curves["labels"]) > 0.5, curves["probs"]
    n = len(tags)
    cols = 4
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for j, tag in enumerate(tags):
        ax = axes[j // cols][j % cols]
        d = report["per_tag"][tag]
        if d["pr_auc"] is not None:
            pr, rc, _ = precision_recall_curve(y[:, j], p[:, j])
            ax.plot(rc, pr)
            ax.axhline(d["prevalence"], color="gray", lw=0.8, ls=":")
        ax.set_title(f"{tag}  AP={d['pr_auc']:.3f}" if d["pr_auc"] is not None else f"{tag} (no positives)",
                     fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    ap = report["macro"]["pr_auc"]
    fig.suptitle(f"PR curves ({report.get('split', '')}, macro AP={'-' if ap is None else f'{ap:.3f}'})")
    fig.tight_layout()
    pr_path = out_dir / "pr_curves.png"
    try:
        write_atomic(pr_path, lambda f: fig.savefig(f, format="png", dpi=90))
    finally:
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 3.6))
    x = np.arange(n)
    for k, (key, label) in enumerate([("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("f1", "F1")]):
        vals = [report["per_tag"][t].get(key) or 0.0 for t in tags]
        ax.bar(x + (k - 1) * 0.27, vals, width=0.27, label=label)
    ax.set_xticks(x, tags, rotation=30, fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncol=3)
    ax.set_title(f"per-tag metrics ({report.get('split', '')})")
    fig.tight_layout()
    bar_path = out_dir / "per_tag.png"
    try:
        write_atomic(bar_path, lambda f: fig.savefig(f, format="png", dpi=90))
    finally:
        plt.close(fig)
    return [pr_path, bar_path]


# ----------------------------------------------------------------------------- real recordings
def _load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 at ``sample_rate`` (the channels averaged); a missing, unreadable or undecodable file is a
    :class:`ParameterError` naming it and saying why."""
    from ..audio.files import AudioFileError, read_channels

    try:
        audio, sr = read_channels(path)
    except AudioFileError as exc:
        raise ParameterError(str(exc)) from exc
    audio = audio.mean(axis=1)
    if sr != sample_rate:
        import soxr

        audio = soxr.resample(audio, sr, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(audio, np.float32)


def _read_labels_csv(csv_path: Path) -> list[tuple[int, dict]]:
    """``(line number, row)`` of a real-recordings ``labels.csv`` (UTF-8, with a header naming ``file``).

    Raises
    ------
    ParameterError
        Not UTF-8 text, not CSV, or no ``file`` column (the message names the file).
    """
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParameterError(f"--real: {csv_path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ParameterError(f"--real: cannot read {csv_path} ({exc.strerror or exc})") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("file",) if c not in header]
        if missing:
            raise ParameterError(f"--real: {csv_path} has no column {', '.join(repr(c) for c in missing)} "
                                 f"(header: {', '.join(header) if header else 'none'}; expected file,tags,kind,...)")
        reader.fieldnames = header
        return [(reader.line_num, {k: v for k, v in row.items() if k is not None}) for row in reader]
    except csv.Error as exc:
        raise ParameterError(f"--real: {csv_path} is not a valid CSV file ({exc})") from None


def _labels_csv(real_dir) -> tuple[Path, Path]:
    """``real_dir`` and its ``labels.csv``; ParameterError when it is a file or has none."""
    real_dir = Path(real_dir)
    csv_path = real_dir / "labels.csv"
    if real_dir.is_file():
        raise ParameterError(f"--real: {real_dir} is a file; give the folder that holds labels.csv and the recordings")
    if not csv_path.is_file():
        raise ParameterError(f"--real: {csv_path} not found")
    return real_dir, csv_path


def check_real_labels(real_dir, tags) -> list[tuple[int, str, list, dict]]:
    """The rows of a real-recordings folder's ``labels.csv``, checked before any file is tagged.

    Parameters
    ----------
    real_dir : path
        Folder with ``labels.csv`` and the audio files (see :func:`evaluate_real`).
    tags : sequence of str
        The bundle's labels. A labelled tag the bundle lacks but the default tags have (a fine-tuned or
        learned bundle's subset) is kept here and left out of the scores by :func:`evaluate_real`.

    Returns
    -------
    list of (int, str, list of str, dict)
        ``(line number, file, labelled tags, row)`` per row, in order.

    Raises
    ------
    ParameterError
        ``real_dir`` is a file or has no ``labels.csv``; a row has an empty ``file``, a tag that neither the
        bundle nor the default tags have (a misspelling), a file that an earlier row lists already (both line
        numbers are named) or a file that is missing or a folder.
    """
    real_dir, csv_path = _labels_csv(real_dir)
    out = []
    seen: dict[str, int] = {}
    for ln, row in _read_labels_csv(csv_path):
        name = (row.get("file") or "").strip()
        if not name:
            raise ParameterError(f"{csv_path}:{ln}: empty 'file'")
        labelled = [t for t in (row.get("tags") or "").replace(";", " ").replace(",", " ").split() if t]
        unknown = [t for t in labelled if t not in tags and t not in DEFAULT_TAGS]
        if unknown:
            raise ParameterError(f"{csv_path}: file {name}: unknown tag(s) {unknown} (neither the bundle's "
                                 f"tags nor the default model's)")
        key = os.path.normpath(name)
        if key in seen:
            raise ParameterError(f"{csv_path}:{ln}: file {name} is listed twice (lines {seen[key]} and {ln}); "
                                 f"list each file once")
        seen[key] = ln
        path = real_dir / name
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise ParameterError(f"{csv_path}:{ln}: file {path} is missing") from None
        except OSError:
            st = None  # unreadable: reading it says why
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise ParameterError(f"{csv_path}:{ln}: {path} is a folder, not an audio file")
        out.append((ln, name, labelled, row))
    return out


def evaluate_real(bundle, real_dir, rms_floor_db: float = -50.0, threads: int = 2) -> dict:
    """Per file of ``labels.csv``: fraction of sounding frames in which each tag is on.

    Each file goes through the runtime exactly as a user's file would:
    :meth:`rtclassify.Classifier.tag` (native frontend, scheduler every
    ``hop_frames``, ONNX Runtime, the decoder with the bundle's thresholds,
    smoothing and minimum durations); a tag is "on" where ``active`` is true.

    Parameters
    ----------
    bundle : path
    real_dir : path
        Folder with ``labels.csv`` (UTF-8, a header row naming at least the
        ``file`` column: ``file, tags, kind, ...``; tags separated by ``;``,
        ``,`` or spaces; each file listed once) and the audio files. A file
        shorter than one frame is reported with no frames (``n_frames`` 0).
    rms_floor_db : float
        An output is "sounding" when the loudest frontend frame of its hop
        (the ``hop_frames`` frames ending at the reported frame) has an RMS
        above this level in dBFS (a finite number).

    Returns
    -------
    dict
        ``{"files": {file: {...}}, "targets": {...}, "rms_floor_db": ...}``;
        see :func:`format_real_table`.

    Raises
    ------
    ParameterError
        A bad ``rms_floor_db``, ``real_dir`` or ``labels.csv`` (see :func:`check_real_labels`; every row is
        checked before any file is tagged), or a file that cannot be read (the message names the row).
    """
    from ..model.classifier import Classifier
    from .features import frame_rms_db

    if (isinstance(rms_floor_db, bool) or not isinstance(rms_floor_db, (int, float, np.integer, np.floating))
            or not math.isfinite(rms_floor_db)):
        raise ParameterError(f"rms_floor_db must be a finite number (got {rms_floor_db!r})")
    rms_floor_db = float(rms_floor_db)
    real_dir, csv_path = _labels_csv(real_dir)
    clf = Classifier.load(bundle, threads=threads)
    tags = list(clf.labels)
    fe = clf.bundle.frontend
    sr, n_fft, hop = int(fe["sample_rate"]), int(fe["n_fft"]), int(fe["hop_length"])
    hop_frames = int(clf.bundle.hop_frames)
    files = {}
    for ln, name, labelled_all, row in check_real_labels(real_dir, tags):
        labelled = [t for t in labelled_all if t in tags]  # (a subset bundle is scored on the tags it has)
        try:
            audio = _load_audio(real_dir / name, sr)
        except ParameterError as exc:
            raise ParameterError(f"{csv_path}:{ln}: {exc}") from exc
        res = clf.tag(audio, sr)
        active = np.asarray(res.active, bool)
        frames = np.rint((np.asarray(res.times) * sr - n_fft / 2) / hop).astype(np.int64)
        rms = frame_rms_db(audio, n_fft, hop)
        lv = np.array([rms[max(0, f - hop_frames + 1):f + 1].max() if 0 <= f < len(rms) else -200.0
                       for f in frames]) if len(frames) else np.zeros(0)
        sounding = lv > rms_floor_db
        n_s = int(sounding.sum())
        files[name] = {
            "labelled": labelled, "not_in_bundle": [t for t in labelled_all if t not in tags],
            "kind": row.get("kind", ""), "note": row.get("note", ""),
            "n_frames": int(len(frames)), "n_sounding": n_s,
            "on_fraction_sounding": {t: (float(active[sounding, j].mean()) if n_s else None)
                                     for j, t in enumerate(tags)},
            "on_fraction_all": {t: (float(active[:, j].mean()) if len(active) else None)
                                for j, t in enumerate(tags)},
            "mean_prob_sounding": {t: (float(res.probs[sounding, j].mean()) if n_s else None)
                                   for j, t in enumerate(tags)},
            "onset_s": _onsets(audio, sr, res, labelled, tags, rms_floor_db),
        }
    return {"files": files, "targets": real_targets(files), "onsets": onset_summary(files),
            "rms_floor_db": rms_floor_db, "hop_frames": hop_frames, "data": str(real_dir), "bundle": str(bundle)}


def _onsets(audio: np.ndarray, sr: int, res, labelled, tags, rms_floor_db: float) -> dict | None:
    """Per labelled tag: seconds from the recording's first sample above ``rms_floor_db`` (as a peak
    level) to the time of the first output in which the tag is on (None: never on). None when no sample
    is above the floor: the sound never starts, so nothing is timed."""
    loud = np.flatnonzero(np.abs(audio) > 10 ** (rms_floor_db / 20))
    times = np.asarray(res.times)
    if not len(loud) or not len(times):  # (no output at all: a file shorter than one window is not timed either)
        return None
    start = loud[0] / sr
    active = np.asarray(res.active, bool) & (times >= start)[:, None]
    out = {}
    for t in labelled:
        on = np.flatnonzero(active[:, tags.index(t)])
        out[t] = float(times[on[0]] - start) if len(on) else None
    return out


def onset_summary(files: dict) -> dict:
    """Median time to the labelled tag's first on over the real labelled files (see :func:`_onsets`);
    ``unmeasured`` counts the (file, tag) pairs of files with no sample above the floor."""
    real = [f for f in files.values() if f.get("kind") == "real"]
    vals = [v for f in real for v in (f.get("onset_s") or {}).values()]
    found = [v for v in vals if v is not None]
    unmeasured = sum(len(f.get("labelled") or ()) for f in real if f.get("onset_s", {}) is None)
    return {"n": len(vals), "never": len(vals) - len(found), "unmeasured": unmeasured,
            "median_s": float(np.median(found)) if found else None}


def is_no_music(f: dict) -> bool:
    """A file of the real-recordings report whose row labels no tag and says "no music" in its note (the
    shared recordings' ocean.wav and rain.wav: "environmental sound; no music: every tag should be off")."""
    return not f["labelled"] and not f.get("not_in_bundle") and "no music" in (f.get("note") or "").lower()


def real_targets(files: dict) -> dict:
    """Check the issue's targets on real recordings.

    * every real single-tag file: its tag on in >= 70% of sounding frames;
    * files with no tags whose note says "no music" (labels.csv): every tag off on >= 90% of frames;
    * files labelled speech: singing on in <= 10% of frames (with a bundle that has singing).
    """
    out = {"single_instrument": {}, "no_music": {}, "speech_no_singing": {}, "unmeasured": []}
    for name, f in files.items():
        # (a file labelled with tags the bundle lacks as well is not single: "piano drums" with a piano-only bundle)
        single = f["kind"] == "real" and len(f["labelled"]) == 1 and not f.get("not_in_bundle") \
            and f["labelled"][0] != "speech"
        if single and not f["n_sounding"]:
            out["unmeasured"].append(name)  # no sounding frame: the target says nothing of it, and it does not pass
        elif single:
            tag = f["labelled"][0]
            v = f["on_fraction_sounding"][tag]
            out["single_instrument"][name] = {"tag": tag, "on": v, "pass": v >= 0.70}
        if is_no_music(f) and f["n_frames"]:
            worst = max(f["on_fraction_all"].values())
            out["no_music"][name] = {"max_on": worst, "pass": worst <= 0.10}
        if "speech" in f["labelled"] and "singing" in f["on_fraction_all"] and f["n_frames"]:
            v = f["on_fraction_all"]["singing"]
            out["speech_no_singing"][name] = {"singing_on": v, "pass": v <= 0.10}
    groups = ("single_instrument", "no_music", "speech_no_singing")
    out["all_pass"] = not out["unmeasured"] and all(d["pass"] for grp in groups for d in out[grp].values())
    return out


def format_real_table(report: dict):
    """A rich Table of the real-recordings report."""
    from rich.table import Table

    t = Table(title=f"real recordings (sounding = hop RMS > {report['rms_floor_db']} dBFS)")
    t.add_column("file")
    t.add_column("labelled")
    t.add_column("labelled on", justify="right")
    t.add_column("others on (top 3)")
    t.add_column("sounding", justify="right")
    for name, f in report["files"].items():
        if not f["n_frames"]:  # shorter than one frame (an empty file): nothing was tagged
            t.add_row(name, " ".join(f["labelled"]) or "-", "no sounding frames", "-", "0/0")
            continue
        fr = f["on_fraction_sounding"] if f["n_sounding"] else f["on_fraction_all"]
        lab = ", ".join(f"{x} {fr[x]:.0%}" for x in f["labelled"]) or "-"
        others = sorted(((v or 0.0, k) for k, v in fr.items() if k not in f["labelled"]), reverse=True)[:3]
        oth = ", ".join(f"{k} {v:.0%}" for v, k in others if v > 0) or "none"
        t.add_row(name, " ".join(f["labelled"]) or "-", lab, oth, f"{f['n_sounding']}/{f['n_frames']}")
    return t
