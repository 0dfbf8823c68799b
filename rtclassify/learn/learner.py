"""``learn_tag``: learn a new tag from a few examples and return a classifier that outputs it.

See :mod:`rtclassify.learn` for the method and
:mod:`rtclassify.learn.examples` for what an example may be.
"""

from __future__ import annotations

import tempfile
import time
import weakref
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from .examples import MIN_POSITIVE_EXAMPLES, check_distinct, load_examples, same_audio_groups

__all__ = ["learn_tag", "save_classifier", "generic_embeddings", "positive_rows", "mixed_copies", "shifted_copies",
           "parse_pitch_shifts", "check_pitch_shifts", "example_hop_frames", "one_example_folds", "window_share",
           "LEARN_HOP_FRAMES",
           "REL_DB", "FLOOR_DB", "MIX_REL_DB", "MIX_SNR_DB", "PITCH_SHIFTS", "DENSE_SECONDS"]

#: Frontend frames between the windows embedded for learning (denser than the live hop: more rows per example).
LEARN_HOP_FRAMES = 2
#: A positive window counts when its frame is within REL_DB of the example's loudest frame ...
REL_DB = 40.0
#: ... and above FLOOR_DB dB re full scale (the data recipe's labelling rule).
FLOOR_DB = -70.0

#: In the mixed copies of positive examples, only frames within MIX_REL_DB of the example's loudest frame count.
MIX_REL_DB = 20.0
#: The example sits this many dB (uniform range) above the background in its mixed copy.
MIX_SNR_DB = (0.0, 10.0)
#: Default pitch shifts (semitones) of the extra copies of each positive example (:func:`shifted_copies`):
#: ten examples rarely cover an instrument's register, and a shifted copy shows the head the same
#: timbre a little higher and lower (the few-shot evaluation in RESULTS.md chose it).
PITCH_SHIFTS = (-2.0, 2.0)
#: Largest pitch shift accepted (semitones).
MAX_PITCH_SHIFT = 12.0
#: Up to this many seconds of an example are embedded at the learning hop; a longer one is embedded at a
#: multiple of it (:func:`example_hop_frames`), its windows spread over all of it, so it gives about as many
#: rows as a 15-30-s example. Learning from one 2-minute example otherwise took 28 s and 723 MB of resident
#: memory, growing with the length (the head's fit holds a few float64 copies of every row).
DENSE_SECONDS = 30.0

#: Under this cross-validated ROC-AUC a learned tag is said to be weak (:func:`weak_tag`).
WEAK_CV_AUC = 0.75

_GENERIC_CACHE: dict = {}


#: Over this share of the user's negatives it is on for in cross-validation, a learned tag is said to be weak
#: (:func:`weak_tag`).
WEAK_ON_SHARE = 0.1
#: Over this share of the generic negatives taken for its sound (a head learned without them: --no-generic), a
#: learned tag is said to be weak (:func:`weak_tag`). Higher than :data:`WEAK_ON_SHARE`: the generic music holds
#: every family of the built-in tags, some of which a good tag fairly takes (good tags of a review took 8-12% of
#: them in cross-validation, a marimba's the mallet segments; the poor ones learned without them 58-100%).
WEAK_GENERIC_SHARE = 0.25


def weak_tag(name: str, info: dict) -> str | None:
    """Why a learned head may turn its tag on for sounds that are not it, from its cross-validation record
    (``cv``), or None.

    A cross-validated ROC-AUC under :data:`WEAK_CV_AUC`: pooled, or of the examples themselves (not their mixed or
    shifted copies) against the user's negatives or against the generic ones (``cv_roc_auc_by_kind``: the pooled
    figure hid a head that could not tell a clean guitar from a clean guitar behind its easy rows, 0.81); an on
    threshold that the best cut put beyond the clip range (:data:`rtclassify.learn.head.ON_RANGE`; a head that
    cannot rank its held-out examples above the negatives draws its threshold to the floor, and the tag is then
    on nearly everywhere); a head on for over :data:`WEAK_ON_SHARE` of the user's negatives in cross-validation
    (``cv_on_share_by_kind``); a head learned without the generic negatives that takes over
    :data:`WEAK_GENERIC_SHARE` of them for its sound (``generic_on_share``). (The share of the generic
    negatives a head is on for in cross-validation is recorded, and printed by ``rtclassify learn``, not warned
    on: it counts the built-in families the new sound belongs to.)"""
    why = []
    auc = info.get("cv_roc_auc")
    if auc is not None and auc < WEAK_CV_AUC:
        why.append(f"cross-validated ROC-AUC {auc:.2f}")
    by_kind = info.get("cv_roc_auc_by_kind") or {}
    for key, against in (("examples/yours", "your negatives"), ("examples/generic", "other music, speech and noise")):
        a = by_kind.get(key)
        if a is not None and a < WEAK_CV_AUC and not (auc is not None and auc < WEAK_CV_AUC and a >= auc):
            why.append(f"its examples against {against}: cross-validated ROC-AUC {a:.2f}")
    if info.get("threshold_clipped"):
        from .head import ON_RANGE

        why.append(f"its on threshold is at the limit of the range it may take ({ON_RANGE[0]:g}-{ON_RANGE[1]:g})")
    share = info.get("generic_on_share")
    if share is not None and share > WEAK_GENERIC_SHARE:
        why.append(f"it takes {100 * share:.0f}% of the generic music, speech and noise for its sound (it was learned "
                   f"without them: --no-generic)")
    loose = []  # a head that ranks well but whose threshold takes in a share of the user's negatives
    mine = (info.get("cv_on_share_by_kind") or {}).get("yours")
    if mine is not None and mine > WEAK_ON_SHARE:  # (the review's spoken cue at 26%: on for other words 10-22%)
        loose.append(f"in cross-validation it is on for {100 * mine:.0f}% of your negatives")
    if not why and not loose:
        return None
    allow = ", allow the generic negatives" if share is not None else ""
    advice = (f"Give more or longer examples, and negatives like the sounds it must stay off for (the band without "
              f"it){allow}, and check it on other recordings (rtclassify tag --bundle BUNDLE band.wav)")
    if not why:
        return f"{name!r} may turn on for sounds that are not it ({'; '.join(loose)}). {advice}"
    return (f"{name!r} is learned poorly ({'; '.join(why + loose)}): it may turn on for sounds that are not it. "
            f"{advice}")


def _active_rms(x: np.ndarray) -> float:
    n = len(x) // 512 * 512
    if n == 0:
        return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    e = np.mean(np.asarray(x[:n], np.float64).reshape(-1, 512) ** 2, axis=1)
    if e.max() <= 0:
        return 0.0
    return float(np.sqrt(e[e >= e.max() * 1e-3].mean()))


def mixed_copies(examples, backgrounds, model_rate: int, seed: int = 0) -> tuple[list, list]:
    """Copies of positive examples mixed into generic material (music, speech, singing).

    A learned tag must turn on when its sound plays with other sounds, while
    the examples are usually recorded alone. Each example (at the model rate)
    gets one copy over a background segment drawn from ``backgrounds``
    (looped to its length), the example's active level ``MIX_SNR_DB`` above
    the background's.

    Returns
    -------
    mixes : list of Example
        At ``model_rate``.
    clean : list of (audio, rate)
        The example alone at the model rate (its levels label the copy).
    """
    from ..audio.resample import resample
    from .examples import Example

    rng = np.random.default_rng(seed)
    mixes, clean = [], []
    if not backgrounds:
        return mixes, clean
    for ex in examples:
        x = ex.audio if ex.sample_rate == model_rate else resample(ex.audio, ex.sample_rate, model_rate)
        x = np.asarray(x, np.float32)
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        b = bg.audio if bg.sample_rate == model_rate else resample(bg.audio, bg.sample_rate, model_rate)
        reps = int(np.ceil(len(x) / max(1, len(b))))
        b = np.tile(b, reps)[:len(x)]
        rx, rb = _active_rms(x), _active_rms(b)
        if rx <= 0 or rb <= 0:
            continue
        snr = float(rng.uniform(*MIX_SNR_DB))
        mix = x + b * (rx / rb * 10 ** (-snr / 20))
        peak = float(np.max(np.abs(mix)))
        g = min(1.0, 0.99 / peak) if peak > 0 else 1.0
        mixes.append(Example(f"{ex.name}+mix", (mix * g).astype(np.float32), model_rate))
        clean.append((x * g, model_rate))
    return mixes, clean


def example_hop_frames(seconds: float, hop_frames: int, max_frames: int | None = None) -> int:
    """Frontend frames between the embedded windows of an example ``seconds`` long: ``hop_frames``, times
    ``ceil(seconds / DENSE_SECONDS)`` for an example longer than :data:`DENSE_SECONDS`, and at most
    ``max_frames`` (the model's window: a wider hop would skip audio; a very long example then gives more
    windows than a 30-s one, one per window length)."""
    hop = int(hop_frames) * max(1, int(np.ceil(float(seconds) / DENSE_SECONDS)))
    return hop if max_frames is None else max(int(hop_frames), min(hop, int(max_frames)))


def _example_hops_s(bundle, examples, hop_frames: int) -> list[float]:
    """Seconds between the embedded windows of each example (:func:`example_hop_frames`)."""
    return [example_hop_frames(ex.seconds, hop_frames, bundle.window_frames) * bundle.hop_length / bundle.sample_rate
            for ex in examples]


def parse_pitch_shifts(text):
    """``"-2,2"`` -> (-2.0, 2.0); ``"none"`` or ``""`` -> (); None -> None (the default)."""
    if text is None:
        return None
    text = text.strip().lower()
    if text in ("", "none", "0"):
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ParameterError(f"pitch shifts: expected comma-separated semitones or 'none' (got {text!r})") from None


def check_pitch_shifts(pitch_shifts) -> tuple:
    """``pitch_shifts`` as a tuple of floats; ParameterError unless each is non-zero and within
    +-:data:`MAX_PITCH_SHIFT` semitones (None or empty: no shifts; a string is read as
    :func:`parse_pitch_shifts` reads it)."""
    if isinstance(pitch_shifts, str):
        # the command line's form ("-2,2", "none"); iterated as characters, "12" would be shifts 1 and 2
        pitch_shifts = parse_pitch_shifts(pitch_shifts)
    try:
        shifts = tuple(float(s) for s in (() if pitch_shifts is None else pitch_shifts))
    except (TypeError, ValueError):
        raise ParameterError(f"pitch_shifts must be a sequence of semitones (got {pitch_shifts!r})") from None
    if any(not np.isfinite(s) or s == 0 or abs(s) > MAX_PITCH_SHIFT for s in shifts):
        raise ParameterError(f"pitch_shifts: each shift must be non-zero and within +-{MAX_PITCH_SHIFT:g} "
                             f"semitones (got {pitch_shifts!r})")
    return shifts


def shifted_copies(examples, shifts) -> list:
    """Copies of each example resampled (soxr) so that it plays ``s`` semitones higher, for each ``s`` in
    ``shifts``: pitch and spectral envelope move together, and the copy is shorter or longer by the same
    ratio. Returned example by example, shift by shift; names end in ``@+2st`` and the like."""
    import soxr

    from .examples import Example

    out = []
    for ex in examples:
        for st in shifts:
            ratio = 2.0 ** (float(st) / 12.0)
            y = soxr.resample(np.asarray(ex.audio, np.float32), ex.sample_rate * ratio, ex.sample_rate)
            out.append(Example(f"{ex.name}@{float(st):+g}st", np.asarray(y, np.float32), ex.sample_rate))
    return out


def positive_rows(embed, bundle, examples, hop_frames: int = LEARN_HOP_FRAMES, rel_db: float = REL_DB,
                  floor_db: float = FLOOR_DB, mix: bool = True, seed: int = 0, pitch_shifts=()):
    """Embeddings of the sounding windows of positive examples (and of their mixed and shifted copies).

    Parameters
    ----------
    embed : Backend or callable
        See :func:`rtclassify.learn.embeddings.embed_examples`.
    bundle : Bundle
    examples : list of Example
    hop_frames : int
    rel_db, floor_db : float
        The sounding rule (the mixed copies use ``min(rel_db, MIX_REL_DB)``).
    mix : bool
        Add the mixed copies (:func:`mixed_copies`, backgrounds from the
        generic negatives' music, speech and singing).
    pitch_shifts : sequence of float
        Also learn from copies of each example shifted by these many
        semitones (:func:`shifted_copies`; each copy gets its own mixed copy
        too). Empty: none.

    Returns
    -------
    Embedded
        Rows of sounding windows; ``group`` is the example's position (its
        mixed and shifted copies share it, so cross-validation keeps them
        together); the extra attribute ``place`` (shape ``(n,)``) is where each
        row's frame lies in its example or copy, from 0 (start) to 1 (end).

    Raises
    ------
    ParameterError
        An example has no sounding window (silent).
    """
    from .embeddings import Embedded, embed_examples, frame_levels_db

    # seconds between windows, per example (a long one is strided: DENSE_SECONDS); its copies use the same
    hops = _example_hops_s(bundle, examples, hop_frames)
    P = embed_examples(embed, bundle, examples, hops)
    sounding = P.sounding(rel_db, floor_db)
    for g, ex in enumerate(examples):
        rows = P.group == g
        if not sounding[rows].any():
            peak = float(P.peak_db[rows][0]) if rows.any() else -200.0
            raw = frame_levels_db(bundle, ex.audio, ex.sample_rate, remove_dc=False)
            raw = float(raw.max()) if len(raw) else -200.0
            if raw <= floor_db:
                loud = "digital silence" if raw <= -199 else f"its loudest frame is {raw:.1f} dBFS"
            else:  # loud only by its DC offset
                loud = "a DC offset only" if peak <= -199 else \
                    f"its loudest frame is {peak:.1f} dBFS once its DC offset is removed"
            where = f"positives[{g}]" + ("" if ex.name == f"positives[{g}]" else f" ({ex.name})")
            raise ParameterError(f"{where}: silent ({loud}); a positive example needs sound above {floor_db:g} dBFS")
    parts = [P.select(sounding)]
    places = [_place(P, examples)[sounding]]
    kinds = [np.full(int(sounding.sum()), "examples")]
    # shifted copies (example by example, shift by shift) are learned in their example's group
    copies = shifted_copies(examples, pitch_shifts)
    copy_owner = [g for g in range(len(examples)) for _ in pitch_shifts]
    if copies:
        S = embed_examples(embed, bundle, copies, [hops[g] for g in copy_owner])
        keep_rows = S.sounding(rel_db, floor_db)
        places.append(_place(S, copies)[keep_rows])
        kinds.append(np.full(int(keep_rows.sum()), "shifted"))
        S.group = np.asarray(copy_owner, np.int64)[S.group]
        parts.append(S.select(keep_rows))
    if mix:
        from .negatives import generic_negative_examples

        backgrounds = [e for e in generic_negative_examples() if e.name.split(":")[1] in ("music", "speech", "singing")]
        every, owner = list(examples) + copies, list(range(len(examples))) + copy_owner
        mixes, clean = mixed_copies(every, backgrounds, bundle.sample_rate, seed)
        if mixes:
            keep = [owner[g] for g, ex in enumerate(every) if any(m.name == f"{ex.name}+mix" for m in mixes)]
            M = embed_examples(embed, bundle, mixes, [hops[g] for g in keep], level_audio=clean)
            keep_rows = M.sounding(min(rel_db, MIX_REL_DB), floor_db)
            places.append(_place(M, mixes)[keep_rows])
            kinds.append(np.full(int(keep_rows.sum()), "mixed"))
            M.group = np.asarray(keep, np.int64)[M.group]
            parts.append(M.select(keep_rows))
    out = Embedded.concat(parts)
    # concat shifts group numbers of later parts; restore the example positions
    out.group = np.concatenate([p.group for p in parts]) if parts else out.group
    out.names = [ex.name for ex in examples]
    out.seconds = [ex.seconds for ex in examples]
    out.place = np.concatenate(places)
    out.kind = np.concatenate(kinds)  # "examples", "shifted" or "mixed" (the copy each row comes from)
    return out


def one_example_folds(groups: np.ndarray, place: np.ndarray, gap: float = 0.0) -> np.ndarray:
    """Cross-validation groups of positive rows; from one example, its earlier and later halves.

    With one example, its earlier and later halves in time (in every copy alike) are the two folds, so
    each fold holds clean, shifted and mixed rows (split by row order, the mixed copies alone would be
    one fold, scored by a head that never saw a mix: a threshold far too low). ``place`` is
    :func:`positive_rows`' ``place``. ``gap``: the audio of one model window as a fraction of the example
    (:func:`window_share`); the rows within half of it of the boundary get group -1 (left out of the
    cross-validation, kept for the final fit), so that no window of one fold holds audio that a window of
    the other holds (with the halves touching, a row just after the boundary reached back into the earlier
    half, and one example's cross-validated AUC read about 0.06 high). When that leaves a half empty (an
    example under about two windows), the halves stay whole. Other groups are returned as they are.
    """
    if len(np.unique(groups)) != 1:
        return groups
    mid = np.median(place)
    half = (place >= mid).astype(np.int64)
    if not 0 < half.sum() < len(half):
        return groups
    out = np.where(np.abs(place - mid) < 0.5 * gap, -1, half)
    return out if (out == 0).any() and (out == 1).any() else half


def window_share(bundle, seconds: float) -> float:
    """The audio one model window of ``bundle`` reads (its frames' hops and one analysis frame) as a fraction
    of ``seconds`` of audio (``one_example_folds``' gap)."""
    fe = bundle.frontend
    span = ((bundle.window_frames - 1) * bundle.hop_length + int(fe["n_fft"])) / bundle.sample_rate
    return span / max(float(seconds), 1e-9)


def _place(E, examples) -> np.ndarray:
    """Where each row's frame lies in its example (``E.group`` numbers ``examples``): 0 at the start, 1 at the end."""
    secs = np.array([max(ex.seconds, 1e-9) for ex in examples], np.float64)
    return np.clip(E.time / secs[E.group], 0.0, 1.0) if len(E) else np.zeros(0)


def _bundle_key(bundle, hop_frames: int, features: str) -> tuple:
    """What the generic negatives' head inputs depend on: the graph (its sha256) and everything of
    ``model.json`` that decides the windows (frontend, window, lookahead, input and embedding names), so
    an edit of either in place is not served the rows of the old bundle."""
    import hashlib
    import json

    from ..model.bundle import MODEL_ONNX

    graph = hashlib.sha256(bundle.read_bytes(MODEL_ONNX)).hexdigest()
    windows = json.dumps({"frontend": bundle.frontend, "window_frames": bundle.window_frames,
                          "lookahead_frames": bundle.lookahead_frames, "input": bundle.input_name,
                          "embedding": bundle.embedding_name}, sort_keys=True)
    return (graph, hashlib.sha256(windows.encode()).hexdigest(), int(hop_frames), features)


def generic_embeddings(backend, bundle, hop_frames: int = LEARN_HOP_FRAMES, features: str = "embedding+mel"):
    """Head inputs of the generic negatives for a bundle (cached in this process per graph, frontend, window,
    lookahead, hop and features: :func:`_bundle_key`).

    Returns
    -------
    Embedded
    """
    from .embeddings import embed_examples, head_features
    from .negatives import generic_negative_examples

    key = _bundle_key(bundle, hop_frames, features)
    hit = _GENERIC_CACHE.get(key)
    if hit is None:
        hop = hop_frames * bundle.hop_length / bundle.sample_rate
        hit = embed_examples(head_features(backend, features), bundle, generic_negative_examples(), hop)
        if len(_GENERIC_CACHE) > 8:
            _GENERIC_CACHE.clear()
        _GENERIC_CACHE[key] = hit
    return hit


def _check_number(value, name: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ParameterError(f"{name} must be a finite number (got {value!r})")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ParameterError(f"{name} must be in [{lo}, {hi}] (got {value})")
    return float(value)


def learn_tag(clf, name: str, positives, negatives=None, sample_rate: int | None = None, *, out=None,
              generic_negatives: bool = True, hop_frames: int = LEARN_HOP_FRAMES, l2: float | None = None,
              off_ratio: float = 0.7, rel_db: float = REL_DB, floor_db: float = FLOOR_DB, mix_positives: bool = True,
              pitch_shifts=PITCH_SHIFTS, features: str = "embedding+mel", backend: str | None = None,
              progress=None):
    """Learn a new tag from examples; returns a classifier with the original tags plus ``name``.

    Parameters
    ----------
    clf : Classifier
        The base classifier (its bundle must have an ``embedding`` output).
    name : str
        The new tag: 1-64 letters, digits, ``_``, ``-`` or ``.``, not one of
        the bundle's tags.
    positives : list
        Examples of the sound (see :mod:`rtclassify.learn.examples`): paths,
        arrays (with ``sample_rate``) or ``(array, rate)`` tuples. At least
        one; each at least 0.2 s long and not silent. Only the sounding part
        of each example is learned as the tag (frames within ``rel_db`` of the
        example's loudest frame and above ``floor_db`` dBFS).
    negatives : list, optional
        Examples of what the tag must stay off for (every window is a negative).
    sample_rate : int, optional
        Rate of the arrays given without their own rate. Required when such
        arrays are given; an ``(array, rate)`` tuple whose rate differs from
        it is an error.
    out : path, optional
        Where to write the new bundle (a folder, or a path ending in ``.zip``;
        not the package's own default bundle). The new bundle is opened by the
        backend from memory first and written only when it loads, so a
        bundle at ``out`` is replaced only by one that works.
        Default: a temporary folder that lives as long as the returned
        classifier (use :func:`save_classifier` / ``Classifier.save`` to keep it).
    generic_negatives : bool
        Also use the generic negative audio (:mod:`.negatives`: music of all
        twelve tags, speech, singing, noise, silence). Default True; with
        False, ``negatives`` are required.
    hop_frames : int
        Frontend frames between embedded windows (default 2; the live hop is
        the bundle's ``hop_frames``). An example longer than
        :data:`DENSE_SECONDS` (30 s) is embedded at a multiple of it
        (:func:`example_hop_frames`), so time and memory stay bounded.
    l2 : float, optional
        Fixed L2 strength of the head (default: chosen by cross-validation).
    off_ratio : float
        ``off`` threshold = ``on`` * ``off_ratio``.
    rel_db, floor_db : float
        What counts as sounding in a positive example.
    mix_positives : bool
        Also learn from a copy of each positive example mixed into generic
        music, speech or singing (the example 0-10 dB above it; frames within
        20 dB of the example's loudest count), so the tag holds in a mix
        (:func:`mixed_copies`). Default True.
    pitch_shifts : sequence of float
        Also learn from copies of each positive example shifted by these
        many semitones (each within +-12; default :data:`PITCH_SHIFTS`,
        -2 and +2), so the tag holds over more of an instrument's register
        than the examples play. ``()`` learns the examples as they are
        (better for a sound defined by its pitch, such as one ringtone).
    features : {"embedding+mel", "embedding"}
        The head's input: the bundle's embedding followed by two per-band
        log-mel means of the window (whole window, last 16 frames; default),
        or the embedding alone (see :func:`rtclassify.learn.embeddings.head_features`).
    backend : str, optional
        Backend of the returned classifier (default: the base classifier's
        backend kind: ``"tensorrt"`` for a TensorRT base, ``"onnx"`` for any
        other, since a learned bundle has no torch weights). A TensorRT base
        classifier's options (``device``, ``max_batch``, ``fp16``,
        ``cache_dir``, ``workspace_mb``) are kept. ``"tensorrt"`` is checked
        before any work: without a GPU, tensorrt or cupy the error names what
        is missing.
    progress : callable, optional
        ``progress(stage: str)`` before each stage.

    Returns
    -------
    Classifier
        Loaded from the new bundle through the normal bundle loader; its
        ``bundle.meta["learned_tags"][-1]`` describes the new tag.

    Raises
    ------
    ParameterError
        Bad name, too few examples, a silent positive example, the same audio
        as a positive and a negative, an array without a sample rate,
        conflicting rates, or bad options (the message names the parameter).
    AudioFileError
        An example file is missing or unreadable.
    BundleError
        The bundle has no embedding output, or the learned bundle does not
        load (then nothing is written and a bundle at ``out`` is left as it was).
    MissingDependencyError, GpuUnavailableError
        ``backend="tensorrt"`` where TensorRT cannot run.
    """
    from .bundle_ext import check_tag_name, learned_bundle_files
    from .embeddings import Embedded, embed_examples, embedding_backend, head_features
    from .head import fit_head

    t_start = time.perf_counter()
    note = progress or (lambda stage: None)
    bundle = clf.bundle
    check_tag_name(name, bundle.labels)
    if isinstance(hop_frames, bool) or not isinstance(hop_frames, (int, np.integer)) \
            or not 1 <= hop_frames <= bundle.window_frames:
        raise ParameterError(f"hop_frames must be an integer from 1 to the model's window, {bundle.window_frames} "
                             f"frames (got {hop_frames!r})")
    if backend is not None:
        from ..model.backends import BACKENDS

        if not isinstance(backend, str) or backend.lower() not in BACKENDS or backend.lower() == "torch":
            raise ParameterError(f"backend must be one of {', '.join(b for b in BACKENDS if b != 'torch')} for a "
                                 f"learned bundle (the torch backend needs training weights, which it has not); "
                                 f"got {backend!r}")
        if backend.lower() == "tensorrt":
            from ..model.backend_tensorrt import check_available

            check_available()  # before the learning, not after it
    off_ratio = _check_number(off_ratio, "off_ratio", 0.01, 1.0)
    rel_db = _check_number(rel_db, "rel_db", 1.0, 200.0)
    floor_db = _check_number(floor_db, "floor_db", -200.0, 0.0)
    if l2 is not None:
        l2 = _check_number(l2, "l2", 1e-9, 1e6)
    shifts = check_pitch_shifts(pitch_shifts)
    from .embeddings import FEATURES

    if features not in FEATURES:
        raise ParameterError(f"features must be one of {', '.join(FEATURES)} (got {features!r})")
    if out is not None:
        from ..model.bundle_write import check_bundle_out

        check_bundle_out(out, "out", shipped=False)  # before the learning, not after it

    note("reading examples")
    pos = load_examples(positives, sample_rate, "positives")
    if len(pos) < MIN_POSITIVE_EXAMPLES:
        raise ParameterError(f"positives: at least {MIN_POSITIVE_EXAMPLES} example is needed (got {len(pos)})")
    neg = load_examples(negatives, sample_rate, "negatives")
    check_distinct(pos, neg)
    if not neg and not generic_negatives:
        raise ParameterError("negatives: none given and generic_negatives=False; give negative examples or allow "
                             "the generic ones")

    note("embedding examples")
    emb_backend = embedding_backend(clf)
    fn = head_features(emb_backend, features)
    P_s = positive_rows(fn, bundle, pos, int(hop_frames), rel_db, floor_db, mix=mix_positives, pitch_shifts=shifts)
    parts = []
    if neg:
        parts.append(embed_examples(fn, bundle, neg, _example_hops_s(bundle, neg, hop_frames)))
        if not generic_negatives and not (parts[0].level_db > floor_db).any():
            # a head fitted against silence alone scores perfectly and tells nothing
            raise ParameterError(f"negatives: every window of every negative example is below {floor_db:g} dBFS "
                                 f"(silent), and the generic negatives are off; the head would only learn that "
                                 f"silence is not {name!r}: give negatives with sound, or allow the generic ones")
    if generic_negatives:
        parts.append(generic_embeddings(emb_backend, bundle, int(hop_frames), features))
    N = Embedded.concat(parts)
    t_embedded = time.perf_counter()

    note("fitting the head")
    # copies of one recording (the same file twice) are one example for cross-validation
    groups = same_audio_groups(pos)[P_s.group]
    neg_groups = N.group.copy()
    user = neg_groups < len(neg)  # the user's negatives come first in N, numbered by position
    neg_groups[user] = same_audio_groups(neg)[neg_groups[user]]
    groups = one_example_folds(groups, P_s.place, window_share(bundle, max(P_s.seconds)))
    head = fit_head(P_s.X, N.X, groups, neg_groups, l2=l2, off_ratio=off_ratio, kinds_pos=P_s.kind,
                    kinds_neg=np.where(user, "yours", "generic"))
    if not generic_negatives:
        # the head never met other music, speech or noise: how much of the generic negatives it takes for its
        # sound (with --no-generic a head learned every tag of the review at a cross-validated 0.93-1.00 and
        # turned on for 87-100% of a band, an orchestra, the sea and speech)
        G = generic_embeddings(emb_backend, bundle, int(hop_frames), features)
        if len(G):
            head.info["generic_on_share"] = round(float(np.mean(head.predict_proba(G.X) >= head.on)), 5)
    t_fit = time.perf_counter()

    from .. import __version__

    record = {
        "learned_with": f"rtclassify {__version__} (rtclassify.learn)",
        "positives": [{"name": ex.name,
                       "seconds": round(ex.seconds, 3), "sample_rate": ex.sample_rate,
                       "windows": int(np.sum(P_s.group == g)),
                       "hop_frames": example_hop_frames(ex.seconds, hop_frames, bundle.window_frames)}
                      for g, ex in enumerate(pos)],
        "negatives": [{"name": ex.name, "seconds": round(ex.seconds, 3), "sample_rate": ex.sample_rate,
                       "hop_frames": example_hop_frames(ex.seconds, hop_frames, bundle.window_frames)}
                      for ex in neg],
        "generic_negatives": bool(generic_negatives),
        "windows": {"positive": int(len(P_s)), "negative": int(len(N)), "hop_frames": int(hop_frames)},
        "mixed_positives": bool(mix_positives),
        "pitch_shifts": list(shifts),
        "features": features,
        "sounding_rule": {"rel_db": rel_db, "floor_db": floor_db},
        "cv": {k: v for k, v in head.info.items()},
        "seconds": {"embedding": round(t_embedded - t_start, 3), "fit": round(t_fit - t_embedded, 3)},
    }
    weak = weak_tag(name, head.info)
    if weak is not None:
        import warnings

        from ..errors import WeakTagWarning

        record["warning"] = weak
        warnings.warn(weak, WeakTagWarning, stacklevel=3)
    note("checking the new bundle")
    from ..errors import BundleError
    from ..model.backends import make_backend
    from ..model.bundle import bundle_from_bytes, load_bundle
    from ..model.bundle_write import write_bundle
    from ..model.classifier import Classifier

    files = learned_bundle_files(bundle, name, head.weight, head.bias, head.on, head.off, record, features=features)
    # a TensorRT base keeps TensorRT (never "auto", which could land on the CPU with only a log line) and its device,
    # batch, precision and engine cache; any other base gets ONNX Runtime (a learned bundle has no torch weights)
    trt_base = getattr(clf.backend, "name", "") == "tensorrt"
    kind = backend or ("tensorrt" if trt_base else "onnx")
    options = dict(getattr(clf.backend, "options", None) or {}) if trt_base else {}
    threads = max(1, int(getattr(clf.backend, "threads", 1)))
    # the graph is opened (and probed) from memory, by the backend that will run it, before anything is written
    try:
        opened = make_backend(bundle_from_bytes(files, "the learned bundle"), kind, threads=threads, **options)
    except BundleError as exc:
        kept = f"; {out} is left as it was" if out is not None else ""
        raise BundleError(f"{name!r}: the learned bundle does not load, so it was not written{kept}: {exc}") from exc

    note("writing the bundle")
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="rtclassify-learned-")
        path = Path(tmp.name) / "bundle"
    else:
        path = out
    try:
        path = write_bundle(path, files, shipped=False)
        # the classifier's bundle is the one written, read back by the normal loader; the backend opened from
        # the same bytes runs it (a second open would build a TensorRT engine twice where no cache is writable)
        written = load_bundle(path)
        opened.bundle = written
        new = Classifier(written, opened)
    except BaseException:
        opened.close()
        if tmp is not None:
            tmp.cleanup()
        raise
    if tmp is not None:
        # the folder lives as long as the classifier; cleaned explicitly (no implicit-cleanup warning)
        new._learn_tmpdir = tmp
        weakref.finalize(new, tmp.cleanup)
    return new


def save_classifier(clf, path) -> Path:
    """Write a classifier's bundle (``model.onnx`` + ``model.json``, and ``weights.pt`` when the bundle has
    one) to a folder or a ``.zip`` file.

    Returns
    -------
    Path

    Raises
    ------
    ParameterError
        A bad path, or the package's own default bundle (see
        :func:`rtclassify.model.bundle_write.write_bundle`).
    """
    from .bundle_ext import copy_bundle

    if path is None:
        raise ParameterError("path must name a folder or a .zip file")
    return copy_bundle(clf.bundle, path)
