"""Few-shot evaluation of learned tags on sounds the default model was never trained to tag (``train`` extra).

Tasks (none of them is a tag of the default model; the data recipe never
renders the GM programs 119-127 and keeps the npm instruments below for its
test split only):

* eight GM sound effects, GM programs 120-127: fret noise, breath noise,
  seashore, bird tweet, telephone ring, helicopter, applause, gunshot;
* distortion guitar (GM 29/30) against clean guitars (GM 26-28), a timbre
  inside the default tag ``guitar``;
* four held-out recorded instruments (npm ``tonejs-instrument-*``, test-only
  timbres of the recipe): cello, clarinet, trombone, nylon guitar, each
  against GM instruments of its own family.

For each task the data are (:func:`build_fewshot_data`, deterministic for a seed):

support pool
    :data:`POOL` recordings of the sound alone, 3-5 s each, rendered from
    the training soundfonts (FluidR3_GM, MuseScore_General) or the npm
    samples, with a faint noise floor.
query clips
    :data:`N_QUERY` clips of :data:`QUERY_SECONDS` s: a background clip of
    the recipe's *test* split (music, speech, singing, non-music, held-out
    timbres; never one that plays the task's own sound), a part of a "confuser" of the same family in most clips (for
    the tasks that have one), and the sound in a 2-6 s span at -6..+6 dB
    against the background. The clip's number picks its role and its
    background's kind: of :data:`N_QUERY` = 10 clips, 2 hold the sound
    alone, 2 a music background without the sound, and 6 the sound over a
    background (1 music, 2 speech, 2 singing, 1 non-music; so ``mix`` is
    the sound over other sounds, mostly voices). Background and sound are
    stored apart and heard in two conditions (:func:`query_audio`): ``mix`` (the sound over the
    background) and ``alternate`` (the background muted around the sound:
    sound and other sounds take turns). Frame labels follow the data
    recipe's rule (the sound's frame energy within 40 dB of the clip's
    loudest frame and above -70 dBFS). Query source ``same``: the support's soundfonts (another
    rendering: other notes, other levels); ``other``: the held-out
    soundfont TimGM6mb (an unseen sample of the same kind of sound; GM
    tasks only).

Protocol (:func:`evaluate_fewshot`): for k in (1, 5, 10) and several random
draws of k support recordings, a head is fitted with the functions of
``Classifier.learn`` (:func:`rtclassify.learn.learner.positive_rows`: the
sounding windows of the k recordings and of their mixed copies, hop 2
frames; :func:`rtclassify.learn.head.fit_head` against the generic
negatives), on each encoder's embedding; the query windows (the live hop) give
the frame-level ROC-AUC and the balanced accuracy at the learned threshold.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ParameterError

__all__ = ["Task", "TASKS", "build_fewshot_data", "evaluate_fewshot", "Encoder", "onnx_encoder", "melstats_encoder",
           "combined", "format_tables", "POOL", "N_QUERY", "QUERY_SECONDS"]

SR = 16000
POOL = 15
N_QUERY = 10
QUERY_SECONDS = 8.0
TRAIN_FONTS = ("FluidR3_GM", "MuseScore_General")
HELDOUT_FONT = "TimGM6mb"


@dataclass(frozen=True)
class Task:
    """A new tag to learn.

    Attributes
    ----------
    name : str
    kind : {"gm", "samples"}
    programs : tuple of int
        GM programs (bank 0) of the sound: what a ``kind="gm"`` task renders;
        for a ``kind="samples"`` task, its instrument's GM programs, which no
        query background may play (they are the sound, not a confuser).
    instrument : str
        npm instrument (``kind="samples"``).
    tag : str
        Default-model family used for the musical parts' register and role.
    confusers : tuple of int
        GM programs of the same family mixed into the query backgrounds.
    fx : bool
        Sparse sound-effect notes instead of musical parts.
    """

    name: str
    kind: str
    programs: tuple = ()
    instrument: str = ""
    tag: str = "synth"
    confusers: tuple = ()
    fx: bool = False


TASKS: tuple = (
    Task("fret_noise", "gm", (120,), fx=True),
    Task("breath_noise", "gm", (121,), fx=True),
    Task("seashore", "gm", (122,), fx=True),
    Task("bird_tweet", "gm", (123,), fx=True),
    Task("telephone", "gm", (124,), fx=True),
    Task("helicopter", "gm", (125,), fx=True),
    Task("applause", "gm", (126,), fx=True),
    Task("gunshot", "gm", (127,), fx=True),
    Task("distortion_guitar", "gm", (29, 30), tag="guitar", confusers=(26, 27, 28)),
    Task("cello", "samples", (42,), instrument="cello", tag="strings", confusers=(40, 41, 48, 49)),
    Task("clarinet", "samples", (71,), instrument="clarinet", tag="woodwind", confusers=(68, 70, 73, 65)),
    Task("trombone", "samples", (57,), instrument="trombone", tag="brass", confusers=(56, 58, 60, 61)),
    Task("nylon_guitar", "samples", (24,), instrument="guitar-nylon", tag="guitar", confusers=(25, 26, 27)),
)


def task_index(name: str) -> int:
    """A task's fixed number for its seeds: its place in :data:`TASKS` (other names: from a CRC of the name).

    Seeds never depend on which other tasks are built or evaluated in the same call, so one task's
    data and support draws are the same alone as in the full set.
    """
    for i, t in enumerate(TASKS):
        if t.name == name:
            return i
    import zlib

    return len(TASKS) + zlib.crc32(name.encode()) % 100000


# --------------------------------------------------------------------------------------------- rendering
def _fx_notes(rng, t0: float, t1: float, short: bool):
    from ..train.data.gm import Note

    notes, t = [], t0 + float(rng.uniform(0.0, 0.3))
    while t < t1 - 0.1:
        d = float(rng.uniform(0.1, 0.5) if short else rng.uniform(0.4, 2.2))
        notes.append(Note(t, min(t + d, t1), int(rng.integers(48, 77)), int(rng.integers(70, 121))))
        t += d + float(rng.uniform(0.05, 0.7))
    if not notes:
        notes.append(Note(t0, min(t1, t0 + 0.5), 60, 100))
    return notes


def _stem(task: Task, ctx, rng, seconds: float, font: str, t0: float, t1: float) -> np.ndarray:
    """The task's sound between t0 and t1 in a ``seconds``-long buffer (16 kHz, peak-normalized)."""
    from ..train.data import gm

    if task.kind == "gm":
        prog = int(rng.choice(task.programs))
        if task.fx:
            notes = _fx_notes(rng, t0, t1, short=prog in (127, 120))
            part = gm.PartSpec(tag=task.tag, role="fx", program=prog, bank=0, notes=notes)
        else:
            part = gm.make_part(rng, gm.random_song(rng), task.tag, prog, 0, t0, t1)
        x = ctx.fluid.render_parts(font, [part], seconds)[0]
    else:
        lo, hi = ctx.samples.key_range(task.instrument)
        part = gm.make_part(rng, gm.random_song(rng), task.tag, 0, 0, t0, t1, role="melody",
                            key_range=(max(lo, 21), min(hi, 108)))
        x = ctx.samples.render(task.instrument, part.notes, seconds, release=float(rng.uniform(0.05, 0.3)))
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x / peak).astype(np.float32) if peak > 0 else x.astype(np.float32)


def _rms_active(x: np.ndarray) -> float:
    from ..train.data.labels import frame_energy

    e = frame_energy(x)
    if len(e) == 0 or e.max() <= 0:
        return 0.0
    return float(np.sqrt(e[e >= e.max() * 1e-3].mean()))


def _frame_labels(stem: np.ndarray, mix: np.ndarray) -> np.ndarray:
    from ..train.data.labels import FLOOR_DB, REL_DB, frame_energy

    se, me = frame_energy(stem), frame_energy(mix)
    if len(me) == 0:
        return np.zeros(0, np.uint8)
    peak = 10 * np.log10(max(float(me.max()), 1e-20))
    return (10 * np.log10(np.maximum(se, 1e-20)) > max(peak - REL_DB, FLOOR_DB)).astype(np.uint8)


#: a query frame whose energy is under this (dBFS, mean square) is digital silence: the muted margins of
#: ``alternate``, the silent parts of the clips that hold the sound alone, silent stretches of a background
SILENT_DB = -100.0


def _sounding_frames(audio: np.ndarray) -> np.ndarray:
    """Per label frame of ``audio``: True where it is not digital silence (:data:`SILENT_DB`)."""
    from ..train.data.labels import frame_energy

    return frame_energy(audio) > 10 ** (SILENT_DB / 10)


def query_audio(background: np.ndarray, sound: np.ndarray, condition: str) -> tuple[np.ndarray, np.ndarray]:
    """A query clip and its frame labels.

    ``condition="mix"``: the sound over the background. ``"alternate"``: the
    background is muted (20 ms ramps) wherever the sound plays, plus 0.25 s
    on either side, so the sound and the other sounds take turns.

    Returns
    -------
    audio : ndarray, float32, shape (n,)
    labels : ndarray, uint8, shape (n_frames,)
    """
    if condition == "mix":
        audio = background + sound
    elif condition == "alternate":
        from ..train.data.labels import HOP, N_FFT

        on = _frame_labels(sound, sound).astype(bool)
        gate = np.ones(len(sound))
        pad = int(0.25 * SR)
        for i in np.flatnonzero(on):
            a = max(0, i * HOP - pad)
            gate[a:i * HOP + N_FFT + pad] = 0.0
        ramp = int(0.02 * SR)
        gate = np.convolve(np.pad(gate, ramp, mode="edge"), np.ones(ramp) / ramp, mode="same")[ramp:-ramp]
        audio = background * gate + sound
    else:
        raise ParameterError(f"condition must be 'mix' or 'alternate' (got {condition!r})")
    audio = np.asarray(audio, np.float32)
    return audio, _frame_labels(sound, audio)


def _support(task: Task, ctx, seed: int, n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 1, i])
        seconds = float(rng.uniform(3.0, 5.0))
        font = TRAIN_FONTS[i % len(TRAIN_FONTS)]
        x = _stem(task, ctx, rng, seconds, font, 0.0, seconds)
        x = x * float(10 ** (rng.uniform(-20, -1) / 20))
        x = x + (10 ** (-65 / 20) * rng.standard_normal(len(x))).astype(np.float32)
        out.append(np.clip(x, -1, 1).astype(np.float32))
    return out


_KINDS = ("music", "music", "speech", "singing", "music", "nonmusic")


#: test-split clips drawn for one query background before giving up on one without the task's sound
_BACKGROUND_DRAWS = 20


def _holds_sound(task: Task, sources) -> bool:
    """True when a rendered clip's ``sources`` (its meta's list) play the task's own sound: its npm
    instrument, or one of its GM programs (bank 0) from a soundfont (a samples task's instrument played by
    a soundfont is that instrument too)."""
    for s in sources:
        if not isinstance(s, dict):
            continue
        if task.kind == "samples" and s.get("instrument") == task.instrument:
            return True
        if s.get("type") != "tonejs-samples" and s.get("bank", 0) == 0 and s.get("program") in task.programs:
            return True
    return False


def _background(task: Task, ctx, seed: int, i: int, source: str) -> np.ndarray:
    """Query ``i``'s background: a clip of the recipe's test split of the kind the clip's number picks, the
    first of a fixed sequence of draws that does not play the task's own sound (a background is negative
    throughout; the held-out npm instruments the sample tasks use are test-split timbres)."""
    from ..train.data.build import ClipJob, render_clip

    base = 700_000 + 97 * seed % 10_000 + i + (0 if source == "same" else 50_000)
    for draw in range(_BACKGROUND_DRAWS):
        job = ClipJob("test", base + 100_000 * draw, _KINDS[i % len(_KINDS)], QUERY_SECONDS, int(seed))
        audio, _, meta = render_clip(job, ctx)
        if not _holds_sound(task, meta.get("sources", ())):
            return audio
    raise RuntimeError(f"{task.name}: {_BACKGROUND_DRAWS} test-split clips drawn for query {i} ({source}) all "
                       f"play the task's own sound")


def _queries(task: Task, ctx, seed: int, n: int, source: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Query clips as (background, sound) pairs at their final levels (the clip is their sum)."""
    from ..train.data import gm

    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 2 if source == "same" else 3, i])
        font = HELDOUT_FONT if source == "other" else TRAIN_FONTS[i % len(TRAIN_FONTS)]
        nsamp = int(QUERY_SECONDS * SR)
        alone, absent = i % 6 == 0, i % 6 == 1
        if alone:
            bg = np.zeros(nsamp, np.float32)
        else:
            bg = _background(task, ctx, seed, i, source)
            if task.confusers and rng.random() < 0.7:
                prog = int(rng.choice(task.confusers))
                a = float(rng.uniform(0.0, 2.0))
                part = gm.make_part(rng, gm.random_song(rng), task.tag, prog, 0, a, QUERY_SECONDS)
                conf = ctx.fluid.render_parts(HELDOUT_FONT if source == "other" else font, [part], QUERY_SECONDS)[0]
                ref = _rms_active(bg) or 0.05
                cr = _rms_active(conf)
                if cr > 0:
                    bg = bg + conf * (ref / cr * float(10 ** (rng.uniform(-3, 3) / 20)))
        if absent:
            stem = np.zeros(nsamp, np.float32)
        else:
            length = float(rng.uniform(2.0, 6.0))
            t0 = float(rng.uniform(0.0, QUERY_SECONDS - length))
            stem = _stem(task, ctx, rng, QUERY_SECONDS, font, t0, t0 + length)
            if not alone:
                ref = _rms_active(bg) or 0.05
                sr_ = _rms_active(stem)
                if sr_ > 0:
                    stem = stem * (ref / sr_ * float(10 ** (rng.uniform(-6, 6) / 20)))
        mix = bg + stem
        peak = float(np.max(np.abs(mix)))
        g = float(10 ** (rng.uniform(-20, -1) / 20)) / peak if peak > 0 else 1.0
        out.append(((bg * g).astype(np.float32), (stem * g).astype(np.float32)))
    return out


#: the rendering settings a data folder's about.json records; the folder holds data of these settings only
RENDER_SETTINGS = ("seed", "pool", "n_query", "query_seconds")
DEFAULT_SEED = 11


def read_about(data_dir) -> dict | None:
    """A data folder's ``about.json`` (what :func:`build_fewshot_data` rendered there), or None when it has none."""
    f = Path(data_dir) / "about.json"
    if not f.exists():
        return None
    try:
        about = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ParameterError(f"{f}: not a readable few-shot data record ({exc})") from None
    if not isinstance(about, dict):
        raise ParameterError(f"{f}: not a few-shot data record (expected a JSON object)")
    return about


def data_settings(data_dir, seed: int | None = None, pool: int | None = None, n_query: int | None = None,
                  about: dict | None = None) -> dict:
    """The rendering settings for ``data_dir``: each one given, else the folder's (its about.json), else the default.

    ``about``: the folder's record when the caller has read it already (:func:`read_about`), else it is read here.

    Raises
    ------
    ParameterError
        A given setting differs from the one the folder's about.json records (its files were rendered
        with the recorded one; another data folder is needed), or a setting is out of range.
    """
    if about is None:
        about = read_about(data_dir) or {}
    given = {"seed": seed, "pool": pool, "n_query": n_query, "query_seconds": QUERY_SECONDS}
    defaults = {"seed": DEFAULT_SEED, "pool": POOL, "n_query": N_QUERY}
    out = {}
    for key in RENDER_SETTINGS:
        value, recorded = given[key], about.get(key)
        if value is not None and recorded is not None and value != recorded:
            raise ParameterError(f"{key}: the data folder {data_dir} holds task data rendered with {key} {recorded} "
                                 f"(its about.json), not {value}; give another data folder (--data) for {key} "
                                 f"{value}")
        out[key] = value if value is not None else recorded if recorded is not None else defaults[key]
    for key, lo in (("seed", 0), ("pool", 1), ("n_query", 1)):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ParameterError(f"{key} must be an integer >= {lo} (got {v!r})")
    return out


def build_fewshot_data(out_dir, seed: int | None = None, tasks=TASKS, pool: int | None = None,
                       n_query: int | None = None, npm_cache=None, progress: bool = True) -> Path:
    """Render the support pools and query clips of every task into ``out_dir/<task>.npz`` (skips existing files).

    ``seed``, ``pool``, ``n_query``: None takes the folder's (its ``about.json``), or the default
    (11, :data:`POOL`, :data:`N_QUERY`) for a new folder; one that differs from the folder's is refused
    (:func:`data_settings`), as the folder's files were rendered with it. ``about.json`` records these
    settings and the tasks rendered into the folder; it is written only when a task is rendered.

    Returns
    -------
    Path
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    about = read_about(out_dir) or {}
    settings = data_settings(out_dir, seed, pool, n_query, about=about)
    todo = [t for t in tasks if not (out_dir / f"{t.name}.npz").exists()]
    if not todo:
        return out_dir  # nothing to render: the folder and its about.json stay as they are

    from rich.progress import Progress

    from ..train.data.build import WorkerContext

    seed, pool, n_query = settings["seed"], settings["pool"], settings["n_query"]
    recorded = [t for t in about.get("tasks", []) if isinstance(t, dict)]
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = WorkerContext(npm_cache)
    try:
        with Progress(transient=True, disable=not progress) as bar:
            job = bar.add_task("few-shot data", total=len(todo))
            for task in todo:
                f = out_dir / f"{task.name}.npz"
                tseed = seed * 1000 + task_index(task.name)
                sup = _support(task, ctx, tseed, pool)
                arrays = {"support": np.concatenate(sup), "support_offsets": np.cumsum([0] + [len(s) for s in sup])}
                sources = ["same"] + (["other"] if task.kind == "gm" else [])
                for src in sources:
                    q = _queries(task, ctx, tseed, n_query, src)
                    arrays[f"background_{src}"] = np.stack([b for b, _ in q])
                    arrays[f"sound_{src}"] = np.stack([x for _, x in q])
                tmp = f.with_suffix(".tmp.npz")
                np.savez_compressed(tmp, **arrays)
                tmp.replace(f)
                # the record: the folder's earlier tasks and each one rendered now, written as each file lands
                recorded = [t for t in recorded if t.get("name") != task.name] + [dict(task.__dict__)]
                record = {**about, **settings, "tasks": recorded}
                rec_tmp = out_dir / "about.json.tmp"
                rec_tmp.write_text(json.dumps(record, indent=1, default=list))
                rec_tmp.replace(out_dir / "about.json")
                bar.advance(job)
    finally:
        ctx.close()
    return out_dir


# --------------------------------------------------------------------------------------------- encoders
@dataclass
class Encoder:
    """A named function from model windows ``(n, n_mels, W)`` to embeddings ``(n, D)``."""

    name: str
    fn: object

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(windows), np.float32)


def onnx_encoder(clf, name: str = "supervised") -> Encoder:
    """The bundle's ONNX ``embedding`` output."""
    from .embeddings import embed_windows, embedding_backend

    backend = embedding_backend(clf)
    return Encoder(name, lambda w: embed_windows(backend, w))


def melstats_encoder(name: str = "mel-stats") -> Encoder:
    """Baseline without a network: per-band mean of the whole window and of its last 16 frames (dB)."""
    from .embeddings import mel_stats

    return Encoder(name, mel_stats)


def combined(name: str, *parts: str) -> tuple:
    """A combined encoder: the concatenation of the named encoders' embeddings."""
    return (name, parts)


# --------------------------------------------------------------------------------------------- evaluation
def _check_counts(name: str, values) -> tuple:
    """``values`` as a tuple of ints, each >= 1 and at least one (ParameterError naming ``name`` otherwise)."""
    import operator

    bad = ParameterError(f"{name} must be whole numbers >= 1 (got {values!r})")
    try:
        out = tuple(int(operator.index(v)) for v in values)
    except TypeError:
        raise bad from None
    if not out or min(out) < 1:
        raise bad
    return out


def _split(arr: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [arr[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def evaluate_fewshot(clf, data_dir, encoders: list, combos: tuple = (), ks=(1, 5, 10), repeats: int = 5,
                     tasks=None, seed: int = 0, hop_frames: int = 2, mix_positives: bool = True,
                     pitch_shifts=None, conditions=("mix", "alternate"), progress: bool = True, log=None) -> dict:
    """Run the few-shot protocol (see the module notes).

    Parameters
    ----------
    clf : Classifier
        Gives the streaming path (frontend, window, lookahead, hop) of the windows.
    data_dir : path
        Output of :func:`build_fewshot_data`.
    encoders : list of Encoder
    combos : tuple of (name, (encoder names...))
        Concatenated encoders (see :func:`combined`).
    ks : sequence of int
    repeats : int
        Random draws of the support set per k.
    tasks : list of str, optional
        Task names (default: every ``.npz`` in ``data_dir``).
    hop_frames, mix_positives, pitch_shifts
        As in :func:`rtclassify.learn.learn_tag` (the same functions build the rows; ``pitch_shifts``
        None: its default).
    conditions : sequence of {"mix", "alternate"}
        Query conditions (see :func:`query_audio`).

    Returns
    -------
    dict
        ``{"results": [{"task", "source", "k", "encoder", "auc", "bacc", ...}], "settings": {...}}``.
    """
    from .embeddings import embed_examples, stream_embed
    from .examples import Example
    from .head import fit_head, roc_auc
    from .learner import PITCH_SHIFTS, check_pitch_shifts, one_example_folds, positive_rows, window_share
    from .negatives import generic_negative_examples

    shifts = check_pitch_shifts(PITCH_SHIFTS if pitch_shifts is None else pitch_shifts)
    ks = _check_counts("ks", ks)
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ParameterError(f"repeats must be an integer >= 1 (got {repeats!r})")

    data_dir = Path(data_dir)
    found = sorted(p.stem for p in data_dir.glob("*.npz") if not p.name.endswith(".tmp.npz"))
    names = found if tasks is None else list(dict.fromkeys(tasks))
    if not names:
        raise ParameterError(f"data_dir: no few-shot task files in {data_dir}" if tasks is None else
                             "tasks: no task names given")
    missing = [n for n in names if n not in found]
    if missing:
        raise ParameterError(f"tasks: no task file {', '.join(f'{n}.npz' for n in missing)} in {data_dir} "
                             f"(it holds: {', '.join(found) or 'none'})")
    bundle = clf.bundle
    hop_learn = hop_frames * bundle.hop_length / bundle.sample_rate
    say = log or (lambda s: None)
    t0 = time.perf_counter()
    dims: dict = {}

    def multi(windows):
        outs = [e(windows) for e in encoders]
        for e, o in zip(encoders, outs):
            dims[e.name] = o.shape[1]
        return np.concatenate(outs, axis=1)

    def split(X) -> dict:
        d, c = {}, 0
        for e in encoders:
            d[e.name] = X[:, c:c + dims[e.name]]
            c += dims[e.name]
        for cname, parts in combos:
            d[cname] = np.concatenate([d[p] for p in parts], axis=1)
        return d

    from ..train.features import grid_label_offset

    # the query labels are the data builder's 512-sample frames; a bundle with a longer window has the centre
    # of its frame i at label frame i + label_offset
    label_offset = grid_label_offset(bundle.frontend)
    generic = embed_examples(multi, bundle, generic_negative_examples(), hop_learn)
    gen, gen_groups = split(generic.X), generic.group
    say(f"generic negatives: {len(gen_groups)} windows ({time.perf_counter() - t0:.0f} s)")
    all_names = [e.name for e in encoders] + [c[0] for c in combos]
    results = []
    for name in names:
        ti = task_index(name)
        z = np.load(data_dir / f"{name}.npz")
        support = _split(z["support"], z["support_offsets"])
        rows = []
        for g, x in enumerate(support):
            r = positive_rows(multi, bundle, [Example(f"support[{g}]", x, SR)], hop_frames, mix=mix_positives,
                              seed=1000 * ti + g, pitch_shifts=shifts)
            r.group[:] = g
            rows.append(r)
        sup_X = np.concatenate([r.X for r in rows])
        sup_group = np.concatenate([r.group for r in rows])
        sup_place = np.concatenate([r.place for r in rows])
        sup = split(sup_X)
        sources = [f"{s}/{c}" for s in ("same", "other") if f"sound_{s}" in z.files for c in conditions]
        for src in sources:
            origin, cond = src.split("/")
            q_X, q_lab, q_sounding = [], [], []
            for bg, snd in zip(z[f"background_{origin}"], z[f"sound_{origin}"]):
                mix, lab = query_audio(bg, snd, cond)
                X, sw = stream_embed(bundle, mix, SR, multi)
                j = sw.index + label_offset  # the builder's label frame with this frame's centre
                jj = np.minimum(j, len(lab) - 1)
                q_lab.append(np.where(j < len(lab), lab[jj], 0))
                q_sounding.append(_sounding_frames(mix)[jj])
                q_X.append(X)
            q = split(np.concatenate(q_X))
            y = np.concatenate(q_lab).astype(bool)
            sounding = np.concatenate(q_sounding)
            for k in ks:
                rng = np.random.default_rng([seed, k, ti])
                for r in range(repeats):
                    pick = rng.choice(len(support), size=min(k, len(support)), replace=False)
                    sel = np.isin(sup_group, pick)
                    # the folds Classifier.learn uses (one example: its two halves in time), one set per draw
                    gap = window_share(bundle, max(len(support[g]) for g in pick) / SR)
                    folds = one_example_folds(sup_group[sel], sup_place[sel], gap)
                    for enc in all_names:
                        head = fit_head(sup[enc][sel], gen[enc], folds, gen_groups)
                        p = head.predict_proba(q[enc])
                        pred = p >= head.on
                        bacc = 0.5 * (pred[y].mean() + (~pred[~y]).mean())
                        results.append({"task": name, "source": src, "k": int(k), "repeat": r, "encoder": enc,
                                        "auc": roc_auc(y, p), "bacc": float(bacc), "threshold": head.on,
                                        "cv_auc": head.info["cv_roc_auc"],
                                        "auc_sounding": roc_auc(y[sounding], p[sounding])})
            say(f"{name} ({src}): {len(y)} query windows, {int(y.sum())} positive "
                f"({time.perf_counter() - t0:.0f} s)")
    return {"results": results, "settings": {"ks": list(ks), "repeats": repeats, "hop_frames_learn": hop_frames,
                                             "hop_frames_query": bundle.hop_frames, "bundle": bundle.name,
                                             "mix_positives": bool(mix_positives), "conditions": list(conditions),
                                             "pitch_shifts": list(shifts),
                                             "encoders": all_names,
                                             "tasks": names, "seconds": round(time.perf_counter() - t0, 1)}}


def _mean(v):
    v = [x for x in v if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def summarize(report: dict) -> dict:
    """Mean AUC / balanced accuracy per (source, k, encoder), over tasks (each task: mean over repeats)."""
    res = report["results"]
    out = {}
    keys = sorted({(r["source"], r["k"], r["encoder"]) for r in res})
    for src, k, enc in keys:
        per_task = {}
        for r in res:
            if (r["source"], r["k"], r["encoder"]) == (src, k, enc):
                per_task.setdefault(r["task"], []).append(r)
        aucs = {t: _mean([x["auc"] for x in v]) for t, v in per_task.items()}
        baccs = {t: _mean([x["bacc"] for x in v]) for t, v in per_task.items()}
        # reports written before the sounding-frame AUC have none: nan
        sounding = {t: _mean([x.get("auc_sounding") for x in v]) for t, v in per_task.items()}
        out[(src, k, enc)] = {"auc": _mean(list(aucs.values())), "bacc": _mean(list(baccs.values())),
                              "tasks_auc_090": int(sum(a >= 0.90 for a in aucs.values())), "n_tasks": len(aucs),
                              "per_task_auc": aucs,
                              "auc_sounding": _mean(list(sounding.values())),
                              "tasks_auc_sounding_090": int(sum(a >= 0.90 for a in sounding.values())),
                              "per_task_auc_sounding": sounding,
                              "auc_sd_repeats": _mean([float(np.std([x["auc"] for x in v])) for v in per_task.values()])}
    return out


def format_tables(report: dict) -> str:
    """Markdown tables: mean frame-level ROC-AUC per k and encoder, and per task at the largest k."""
    s = summarize(report)
    encs = report["settings"]["encoders"]
    ks = report["settings"]["ks"]
    lines = []
    for src in sorted({key[0] for key in s}, key=lambda v: (v.split("/")[0] != "same", v)):
        lines.append(f"\n**query source: {src}** (mean over tasks of the mean over {report['settings']['repeats']} "
                     f"support draws; ROC-AUC / balanced accuracy at the learned threshold; tasks with AUC >= 0.90)\n")
        lines.append("| k | " + " | ".join(encs) + " |")
        lines.append("|---|" + "---|" * len(encs))
        for k in ks:
            cells = []
            for e in encs:
                v = s.get((src, k, e))
                cells.append("n/a" if v is None else
                             f"{v['auc']:.3f} / {v['bacc']:.3f} ({v['tasks_auc_090']}/{v['n_tasks']})")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        kmax = max(ks)
        tasks = sorted(next(v for key, v in s.items() if key[0] == src and key[1] == kmax)["per_task_auc"])
        lines.append(f"\nsounding frames only (digital silence left out of the scored frames), k = {kmax}, "
                     f"ROC-AUC ({src}): " + ", ".join(
                         f"{e} {s[(src, kmax, e)]['auc_sounding']:.3f} ({s[(src, kmax, e)]['tasks_auc_sounding_090']}"
                         f"/{s[(src, kmax, e)]['n_tasks']})" for e in encs))
        lines.append(f"\nper task, k = {kmax}, ROC-AUC, all frames / sounding frames ({src}):\n")
        lines.append("| task | " + " | ".join(encs) + " |")
        lines.append("|---|" + "---|" * len(encs))
        for t in tasks:
            lines.append(f"| {t} | " + " | ".join(
                f"{s[(src, kmax, e)]['per_task_auc'].get(t, float('nan')):.3f} / "
                f"{s[(src, kmax, e)]['per_task_auc_sounding'].get(t, float('nan')):.3f}" for e in encs) + " |")
    return "\n".join(lines)


def _ks_arg(text: str) -> tuple:
    """``--ks``: comma-separated support sizes, each a whole number >= 1, each once."""
    import argparse

    out = []
    for v in text.split(","):
        try:
            k = int(v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= 1, got {text!r}") from None
        if k < 1:
            raise argparse.ArgumentTypeError(f"each k must be >= 1, got {text!r}")
        if k in out:
            raise argparse.ArgumentTypeError(f"k {k} is given twice in {text!r}")
        out.append(k)
    return tuple(out)


_ks_arg.__name__ = "list"


def _pitch_shifts_arg(text: str) -> tuple:
    """``--pitch-shifts``: read and checked as ``learn`` reads and checks them."""
    import argparse

    from .learner import check_pitch_shifts, parse_pitch_shifts

    try:
        return check_pitch_shifts(parse_pitch_shifts(text))
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_pitch_shifts_arg.__name__ = "list"


def report_paths(out) -> tuple[Path, Path]:
    """The report files of ``--out OUT``: ``OUT.json`` and ``OUT.md``, the suffixes added to the name as given
    (``runs/k1.v2`` -> ``runs/k1.v2.json``, never ``runs/k1.json``); an ``OUT`` that names one of the reports
    (``runs/k1.json``, ``runs/k1.md``) gives the pair ``runs/k1.json``, ``runs/k1.md``."""
    out = Path(out)
    if out.suffix.lower() in (".json", ".md"):
        out = out.with_suffix("")
    return out.with_name(out.name + ".json"), out.with_name(out.name + ".md")


def build_parser():
    """The argument parser of ``python -m rtclassify.learn.fewshot`` (every value checked as it is read)."""
    import argparse

    from ..commands._args import names_of, nonempty, number

    ap = argparse.ArgumentParser(prog="python -m rtclassify.learn.fewshot", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, type=nonempty("a data folder"),
                    help="task data folder (the missing tasks are rendered there; its about.json records the seed)")
    ap.add_argument("--bundle", default=None, help="bundle of the supervised encoder (default: the shipped one)")
    ap.add_argument("--ssl", default=None, metavar="ENCODER_PT", help="self-supervised encoder (rtclassify pretrain)")
    ap.add_argument("--out", required=True, type=nonempty("a report prefix"),
                    help="report prefix: writes OUT.json and OUT.md (added to the name: --out runs/k1.v2 writes "
                         "runs/k1.v2.json and runs/k1.v2.md)")
    ap.add_argument("--ks", default=(1, 5, 10), type=_ks_arg, metavar="LIST",
                    help="comma-separated numbers of support recordings k, each >= 1 (default 1,5,10)")
    ap.add_argument("--repeats", type=number(int, "a number of support draws", lo=1), default=5,
                    help="random draws of the support set per k (default 5)")
    ap.add_argument("--tasks", default=None, type=names_of([t.name for t in TASKS], "task"), metavar="LIST",
                    help="comma-separated task names (default: all): " + ", ".join(t.name for t in TASKS))
    ap.add_argument("--seed", type=number(int, "a whole number >= 0", lo=0), default=None,
                    help=f"seed of the task data (default: the one the data folder's about.json records; "
                         f"{DEFAULT_SEED} for a new folder); a folder holds the data of one seed")
    ap.add_argument("--no-mix", action="store_true", help="learn without the mixed copies of the examples")
    ap.add_argument("--pitch-shifts", default=None, type=_pitch_shifts_arg, metavar="LIST",
                    help="semitone shifts of the examples' extra copies (default: learn's, -2,2; 'none' for none)")
    ap.add_argument("--mel-combo", action="store_true",
                    help="also evaluate the supervised embedding concatenated with the mel-statistics baseline")
    return ap


def main(argv=None) -> int:
    """``python -m rtclassify.learn.fewshot``: build the task data if needed, evaluate, write JSON and Markdown.

    Exit status: 0 done; 1 an error reported in one line (a data folder of another seed, a bad bundle...);
    2 wrong arguments (argparse).
    """
    import sys

    from ..errors import RtclassifyError

    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        return _run(a)
    except RtclassifyError as exc:
        print(f"{ap.prog}: error: {exc}", file=sys.stderr)
        return 1


def _run(a) -> int:
    from rich.console import Console

    from ..model.classifier import Classifier

    console = Console(stderr=True)
    tasks = [t for t in TASKS if a.tasks is None or t.name in a.tasks]
    data_settings(a.data, a.seed)  # a folder of another seed is refused before the model loads
    clf = Classifier.load(a.bundle, backend="onnx")
    build_fewshot_data(a.data, seed=a.seed, tasks=tasks)
    encoders = [onnx_encoder(clf, "supervised")]
    combos = ()
    if a.ssl:
        from .pretrain import ssl_encoder

        encoders.append(ssl_encoder(a.ssl, "self-supervised"))
        combos = (combined("combined", "supervised", "self-supervised"),)
    encoders.append(melstats_encoder("mel-stats"))
    if a.mel_combo:
        combos = combos + (combined("supervised+mel-stats", "supervised", "mel-stats"),)
    rep = evaluate_fewshot(clf, a.data, encoders, combos, ks=a.ks, repeats=a.repeats,
                           tasks=[t.name for t in tasks], mix_positives=not a.no_mix,
                           pitch_shifts=a.pitch_shifts, log=console.print)
    rep["settings"]["bundle_path"] = str(clf.bundle.path)
    rep["settings"]["ssl"] = a.ssl
    json_path, md_path = report_paths(a.out)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(rep, indent=1))
    table = format_tables(rep)
    md_path.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
