"""The training-data recipe: plan, render, augment, label and write clips; load them back.

Output layout of ``build_dataset(out_dir, ...)``::

    out_dir/manifest.json              recipe, seed, parameters, splits, sources and licenses, statistics
    out_dir/manifest.jsonl             one JSON object per clip (see ``_clip_record``)
    out_dir/<split>/<clip>.flac        16 kHz mono 16-bit audio, ``clip_seconds`` long
    out_dir/<split>/<clip>.labels.npy  uint8 (n_frames, 12): tag activity on the model's frame grid
    out_dir/build-unfinished.json      only while a build runs (or after one stopped): no manifest then

The manifest files are written last, so a folder is either a finished build or refused by
:func:`load_split` (see :func:`build_dataset`).

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
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from .. import MAX_SEED
from ...errors import ParameterError, RtclassifyError
from . import augment as aug_mod
from . import gm
from . import noise as noise_mod
from . import voice as voice_mod
from .fluid import SOUNDFONTS, FluidRenderer, check_fluidsynth, check_soundfonts
from .labels import FLOOR_DB, HOP, N_FFT, REL_DB, FILL_GAP_FRAMES, SAMPLE_RATE, TAGS, frame_energy, label_stems, n_frames
from .limits import MAX_CLIP_SECONDS, MAX_HOURS, MIN_CLIP_SECONDS, NONMUSIC_EXTRA, SOUNDFONTS_EXTRA, SPLITS
from .samples import SAMPLE_INSTRUMENT_TAGS, SAMPLE_LICENSE, SampleBank, POLYPHONIC, fetch_samples, package_name

RECIPE = "rtclassify-synth"
RECIPE_VERSION = 1

SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}

#: Bytes a build writes per second of audio, FLAC and labels together, for the free-space check. Measured
#: on ``build_dataset(out, 0.2, 3, clip_seconds=10)`` (72 clips): 14.6 kB/s on average (FLAC of 16-bit
#: 16 kHz mono about 13.8 kB/s, labels 0.76 kB/s), 26 kB/s for the loudest noise clip; rounded up to
#: 16 kB/s. Raw 16-bit PCM is 32 kB/s, which no clip can exceed by much.
BYTES_PER_SECOND = 16_000
#: Bytes added per clip to :data:`BYTES_PER_SECOND` (two files: headers and the file system's blocks).
BYTES_PER_CLIP = 8192
#: Written by :func:`build_dataset` before it removes the manifest of a folder, removed once the new
#: manifest is in place: the recipe being built and the records of the splits it keeps. Its presence (and
#: no manifest) marks a build that did not finish.
UNFINISHED = "build-unfinished.json"
#: Manifest keys that make up a build's recipe: a folder holding a build with the same values may be
#: rebuilt in place, or have some of its splits rendered again; with their ``rtclassify data build`` option.
RECIPE_KEYS = {"recipe": "recipe", "recipe_version": "recipe version", "seed": "--seed", "hours_requested": "--hours",
               "clip_seconds": "--clip-seconds", "render_rate": "render_rate", "vibrato_p": "--vibrato",
               "solo_p": "--solo", "sample_p": "--sample-parts", "extra_soundfonts": "--extra-soundfonts",
               "extra_nonmusic": "--extra-nonmusic", "kind_weights": "kind_weights"}
_CLIP_FILE = re.compile(r"^(train|val|test)_[0-9]{6}\.(flac|labels\.npy)$")

SOUNDFONTS_TRAIN = ("FluidR3_GM", "MuseScore_General")
SOUNDFONTS_TEST = ("TimGM6mb",)
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
#: Values of the recipe keys added after the first builds, for a manifest written before them (their
#: defaults render the same clips as before they existed).
RECIPE_DEFAULTS = {"vibrato_p": DEFAULT_VIBRATO_P, "solo_p": DEFAULT_SOLO_P, "sample_p": SAMPLE_PART_P,
                   "extra_soundfonts": [], "extra_nonmusic": []}

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
    GM parts played with vibrato (:data:`DEFAULT_VIBRATO_P`), the soundfonts added to the training
    ones (:data:`SOUNDFONTS_EXTRA`) and the non-music kinds added to :data:`NONMUSIC_KINDS`
    (:data:`NONMUSIC_EXTRA`)."""

    split: str
    index: int
    kind: str
    seconds: float
    seed: int
    vibrato_p: float = 0.0
    extra_soundfonts: tuple = ()
    sample_p: float = SAMPLE_PART_P
    extra_nonmusic: tuple = ()

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


def split_sizes(hours: float, clip_seconds: float = 10.0) -> dict:
    """Clips per split of a build: ``round(hours*3600/clip_seconds)`` in all (at least 3), val and test
    10 % each (at least 1).

    ``hours`` must be at most :data:`MAX_HOURS` and hold at least one clip, so that the floor of 3 clips
    never renders more than 3 times the hours asked for.
    """
    hours, clip_seconds = float(hours), float(clip_seconds)
    if not (np.isfinite(hours) and 0 < hours <= MAX_HOURS):
        raise ParameterError(f"hours: must be > 0 and <= {MAX_HOURS:g}, got {hours}")
    if not (np.isfinite(clip_seconds) and MIN_CLIP_SECONDS <= clip_seconds <= MAX_CLIP_SECONDS):
        raise ParameterError(f"clip_seconds: must be {MIN_CLIP_SECONDS:g}-{MAX_CLIP_SECONDS:g}, got {clip_seconds}")
    if hours * 3600.0 < clip_seconds:
        raise ParameterError(f"--hours {hours:g} ({hours * 3600:.3g} s) is less than one clip of --clip-seconds "
                             f"{clip_seconds:g}; ask for at least {clip_seconds / 3600:.3g} h or shorter clips")
    total = max(3, int(round(hours * 3600.0 / clip_seconds)))
    n_val = max(1, int(round(total * SPLIT_FRACTIONS["val"])))
    n_test = max(1, int(round(total * SPLIT_FRACTIONS["test"])))
    return {"train": total - n_val - n_test, "val": n_val, "test": n_test}


def plan_clips(hours: float, seed: int, clip_seconds: float = 10.0, kind_weights: dict | None = None,
               vibrato_p: float = 0.0, extra_soundfonts=(), solo_p: float = 0.0,
               sample_p: float = SAMPLE_PART_P, extra_nonmusic=()) -> list[ClipJob]:
    """Every clip of a build, in output order (train, val, test).

    Clip counts: :func:`split_sizes` (``round(hours*3600/clip_seconds)`` in
    all, at least 3; val and test 10 % each, at least 1); kinds in proportion to ``kind_weights``
    (largest remainders), order shuffled by the seed. In the train and val
    splits each music clip becomes a ``solo`` clip (one instrument, single
    held notes over its whole range) with probability ``solo_p``; the other
    clips, and the whole test split, are the same whatever ``solo_p`` is.
    ``sample_p`` is the train and val splits' probability that a part of a
    family with recorded notes is played from them (the test split keeps
    :data:`SAMPLE_PART_P`). ``extra_nonmusic`` (some of :data:`NONMUSIC_EXTRA`) joins the kinds a
    train or val non-music clip draws from; the music, speech and singing clips, and the whole test
    split, are the same whatever it is.
    """
    weights = dict(KIND_WEIGHTS if kind_weights is None else kind_weights)
    if not weights or any(k not in KIND_WEIGHTS for k in weights) or any(w < 0 for w in weights.values()) \
            or sum(weights.values()) <= 0:
        raise ParameterError(f"kind_weights: expected non-negative weights for {sorted(KIND_WEIGHTS)}, got {weights}")
    sizes = split_sizes(hours, clip_seconds)
    jobs = []
    for si, split in enumerate(SPLITS):
        counts = _kind_counts(sizes[split], weights)
        kinds = [k for k in weights for _ in range(counts[k])]
        np.random.default_rng([seed, si, 999_999_999]).shuffle(kinds)
        if split != "test" and solo_p > 0:
            draws = np.random.default_rng([seed, si, 999_999_998]).random(len(kinds))
            kinds = ["solo" if k == "music" and u < solo_p else k for k, u in zip(kinds, draws)]
        sp = SAMPLE_PART_P if split == "test" else float(sample_p)
        xn = () if split == "test" else tuple(extra_nonmusic)
        jobs += [ClipJob(split, i, k, float(clip_seconds), int(seed), float(vibrato_p), tuple(extra_soundfonts), sp,
                         xn if k == "nonmusic" else ())
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
        kind = str(rng.choice(NONMUSIC_KINDS + tuple(job.extra_nonmusic)))
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
_INIT_ERROR: Exception | None = None  # why this render worker could not start
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


def die_with_parent(parent_pid: int) -> None:
    """Have this process end (SIGTERM) when the process ``parent_pid`` that started it ends, however it ends: a
    build killed with SIGKILL (or by the OOM killer) left its render workers running, each holding hundreds of
    MB and the build's standard output (Linux ``PR_SET_PDEATHSIG``; elsewhere nothing is done)."""
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # it ended before the request was made
        os._exit(1)


def _worker_init(npm_cache, render_rate, parent_pid=None):
    """Start a clean render process: libfluidsynth is loaded before anything imports soundfile.

    The soundfile wheel ships its own libsndfile with the SONAME libsndfile.so.1; when it is loaded
    first, libfluidsynth binds to it instead of the system one, and the Ogg Vorbis samples of an sf3
    soundfont (MuseScore_General) decode to slightly different values. Rendering only in fresh
    processes that load FluidSynth first keeps the output byte-identical.
    """
    import sys

    global _CTX, _INIT_ERROR
    if parent_pid is not None:
        die_with_parent(parent_pid)
    try:
        if "soundfile" in sys.modules and "fluidsynth" not in sys.modules:
            raise RuntimeError("render worker: soundfile was imported before fluidsynth; renders would not be "
                               "reproducible")
        from .fluid import _fluidsynth

        _fluidsynth()
        _CTX = WorkerContext(npm_cache, render_rate)
    except Exception as exc:  # noqa: BLE001 - handed to the build with the first job (an initializer that
        _INIT_ERROR = exc     # raised would leave the pool without workers, and the build waiting)


def _worker_run(job: ClipJob):
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    assert _CTX is not None
    return job, render_clip(job, _CTX)


def check_dependencies(extra_soundfonts=(), npm_cache=None) -> None:
    """Raise MissingDependencyError (naming the package) for any missing tool or soundfont (``npm_cache``:
    the npm sample folder, which makes npm unnecessary when it holds every package)."""
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
        cache = SampleBank(npm_cache).cache_dir
        if not all((cache / package_name(i) / "package.json").exists()
                   or list(cache.glob(f"{package_name(i)}-[0-9]*.tgz")) for i in SAMPLE_INSTRUMENT_TAGS):
            raise MissingDependencyError(f"npm not found and the npm cache {cache} is incomplete; install the Debian "
                                         "package npm")


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


def _some_of(name: str, values, allowed: tuple) -> tuple:
    """``values`` as a tuple of str, each one of ``allowed`` and none twice (else a ParameterError naming ``name``)."""
    values = tuple(str(x) for x in values)
    if any(x not in allowed for x in values) or len(set(values)) < len(values):
        raise ParameterError(f"{name}: expected some of {', '.join(allowed)}, got {list(values)!r}")
    return values


def _size(n: float) -> str:
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= f:
            return f"{n / f:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def _prepare_out(out: Path) -> Path | None:
    """Create ``out`` (a folder this process can write in); the topmost folder it created, or None.

    Raises ParameterError naming ``--out`` when it is a file, lies under one, or cannot be created or written.
    """
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out}: exists and is not a folder")
    top = None
    if not out.exists():
        top = out
        while not top.parent.exists() and top.parent != top:
            top = top.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".rtclassify-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove_created(out, top)
        raise ParameterError(f"--out {out}: cannot create or write the folder ({exc.strerror or exc})") from None
    return top


def _remove_created(out: Path, top: Path | None) -> None:
    """Remove the empty folders from ``out`` up to ``top`` that :func:`_prepare_out` created."""
    if top is None:
        return
    d = out
    while True:
        try:
            d.rmdir()
        except OSError:
            return
        if d == top or d.parent == d:
            return
        d = d.parent


def _recipe_text(m: dict) -> str:
    try:
        return f"seed {m['seed']}, {float(m['hours_requested']):g} h"
    except (KeyError, TypeError, ValueError):
        return "an unknown recipe"


def _our_entry(p: Path) -> bool:
    """A file or folder a build (or training's feature cache) leaves in its output folder."""
    if p.name in SPLITS and p.is_dir():
        return all(_CLIP_FILE.match(f.name) for f in p.iterdir())
    return (p.name == "features" and p.is_dir()) or p.name.startswith(".rtclassify-probe-") or p.name in (
        "manifest.jsonl", UNFINISHED, ".manifest.json.tmp", ".manifest.jsonl.tmp", f".{UNFINISHED}.tmp")


def _kept_splits(out: Path, recipe: dict, built: list) -> dict:
    """The splits of the build in ``out`` that a build of ``recipe`` rendering the splits ``built`` keeps,
    ``{split: {"info": its manifest.json entry, "records": its manifest.jsonl records}}``.

    Raises ParameterError when ``out`` holds a build of another recipe, or files that are not a build.
    """
    mpath, upath = out / "manifest.json", out / UNFINISHED
    if mpath.exists():
        try:
            old = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict) or old.get("recipe") != RECIPE or not isinstance(old.get("splits"), dict):
            raise ParameterError(f"--out {out} holds a manifest.json not written by 'rtclassify data build'; "
                                 "give an empty or new folder")
        diff = [opt for k, opt in RECIPE_KEYS.items() if old.get(k, RECIPE_DEFAULTS.get(k)) != recipe[k]]
        if diff:
            raise ParameterError(f"--out {out} holds another build ({_recipe_text(old)}; {', '.join(diff)} "
                                 f"differ{'s' if len(diff) == 1 else ''}); give an empty or new folder")
        keep = [s for s in SPLITS if s in old["splits"] and s not in built]
        if not keep:
            return {}
        try:
            with open(out / "manifest.jsonl", encoding="utf-8") as fh:
                recs = [json.loads(line) for line in fh if line.strip()]
        except (OSError, ValueError):
            raise ParameterError(f"--out {out}: its manifest.jsonl is missing or invalid, so its {', '.join(keep)} "
                                 "split(s) cannot be kept; build every split (leave out --splits) or give an empty "
                                 "or new folder") from None
        return {s: {"info": old["splits"][s], "records": [r for r in recs if r.get("split") == s]} for s in keep}
    if upath.exists():  # a build that did not finish
        try:
            state = json.loads(upath.read_text(encoding="utf-8"))
            old, kept = state["recipe"], state["kept"]
            if not isinstance(old, dict) or not isinstance(kept, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise ParameterError(f"--out {out}: {UNFINISHED} is unreadable; give an empty or new folder") from None
        if any(old.get(k) != recipe[k] for k in RECIPE_KEYS):
            if kept:  # it holds finished splits of another recipe
                raise ParameterError(f"--out {out} holds another build ({_recipe_text(old)}; unfinished, with its "
                                     f"{', '.join(kept)} split(s) done); run that build again to finish it, or give "
                                     "an empty or new folder")
            return {}
        return {s: v for s, v in kept.items() if s in SPLITS and s not in built}
    foreign = sorted(p.name for p in out.iterdir() if not _our_entry(p))
    if foreign:
        raise ParameterError(f"--out {out} holds files that are not a data set build ({foreign[0]}"
                             f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}); give an empty or new "
                             "folder")
    return {}


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file that replaces it (never a half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _render_jobs(jobs: list, workers: int, npm_cache, render_rate: int):
    """Yield ``(job, (audio, labels, meta))`` in the order of ``jobs``, rendered in fresh (spawned) worker
    processes (see :func:`_worker_init`), a few jobs per worker ahead of the one yielded.

    A worker that dies (killed, out of memory, a crash in a native library) ends the build with an
    error instead of leaving it waiting for the clip it held.
    """
    import collections
    import itertools
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    n = max(1, min(int(workers), len(jobs)))
    pool = ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                               initargs=(npm_cache, render_rate, os.getpid()))
    finished = False
    try:
        todo = iter(jobs)
        ahead = collections.deque(pool.submit(_worker_run, j) for j in itertools.islice(todo, 4 * n))
        while ahead:
            fut = ahead.popleft()
            try:
                done = fut.result()
            except BrokenProcessPool:
                raise RtclassifyError("a render worker process died (killed, out of memory, or a crash in "
                                      "FluidSynth or another native library), and the build stopped; run the same "
                                      "command again") from None
            nxt = next(todo, None)
            if nxt is not None:
                ahead.append(pool.submit(_worker_run, nxt))
            yield done
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # an error or Ctrl-C in the build: the workers end now, not after the clips they are rendering
            workers = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for w in workers:
                w.terminate()
            for w in workers:
                w.join(5)


def build_dataset(out_dir, hours: float, seed: int, *, clip_seconds: float = 10.0, workers: int | None = None,
                  npm_cache=None, render_rate: int = 32000, kind_weights: dict | None = None,
                  vibrato_p: float = DEFAULT_VIBRATO_P, splits=None, extra_soundfonts=(),
                  solo_p: float = DEFAULT_SOLO_P, sample_p: float = SAMPLE_PART_P, extra_nonmusic=(),
                  progress: bool = True) -> dict:
    """Synthesize a labelled data set (see the module docstring for the layout).

    The folder may be new, empty, or hold a build of the same recipe (seed, hours, clip length and every
    option but ``splits``, ``workers`` and ``progress``): that build's files are rendered again in place,
    and the splits it has that ``splits`` leaves out are kept in the new manifest. Anything else in it is
    refused (ParameterError naming ``--out``). The manifest files are removed before the first clip is
    written and written again only after the last one, through temporary files: a build that stops half
    way leaves no manifest (and :data:`UNFINISHED`), so :func:`load_split` refuses the folder until the
    same build is run again.

    Parameters
    ----------
    out_dir : path
        Output folder (created; see above for one that exists).
    hours : float
        Total audio in hours over all splits (> 0, at most :data:`MAX_HOURS`, at least one clip).
    seed : int
        Seed of every random draw; the same seed gives byte-identical files.
    clip_seconds : float
        Length of each clip (:data:`MIN_CLIP_SECONDS` to :data:`MAX_CLIP_SECONDS`).
    workers : int, optional
        Worker processes (default: 1 for fewer than 40 clips, else min(2, CPUs); never more than the
        clips). Clips are always rendered in fresh (spawned) processes; the output does not depend on
        their number.
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
    extra_nonmusic : sequence of str
        Kinds of :data:`NONMUSIC_EXTRA` added to those a non-music clip of the train or val split draws
        from (:data:`NONMUSIC_KINDS`). Every other clip, and the test split, is the same whatever it is.
    progress : bool
        Show a rich progress bar.

    Returns
    -------
    dict
        The content of ``manifest.json`` (its ``splits`` lists the rendered ones and those kept).

    Raises
    ------
    ParameterError
        A bad parameter; ``out_dir`` unusable or holding another build; not enough free space there
        for about :data:`BYTES_PER_SECOND` per second of audio.
    """
    try:
        hours = float(hours)
        clip_seconds = float(clip_seconds)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"hours/clip_seconds must be numbers ({exc})") from None
    if not np.isfinite(hours) or not 0 < hours <= MAX_HOURS:
        raise ParameterError(f"hours: must be > 0 and <= {MAX_HOURS:g}, got {hours}")
    if not np.isfinite(clip_seconds) or not MIN_CLIP_SECONDS <= clip_seconds <= MAX_CLIP_SECONDS:
        raise ParameterError(f"clip_seconds: must be {MIN_CLIP_SECONDS:g}-{MAX_CLIP_SECONDS:g}, got {clip_seconds}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ParameterError(f"seed: must be an integer 0..{MAX_SEED}, got {seed!r}")
    if workers is not None and int(workers) < 1:
        raise ParameterError(f"workers: must be >= 1, got {workers}")
    vibrato_p = _probability("vibrato_p", vibrato_p)
    solo_p = _probability("solo_p", solo_p)
    sample_p = _probability("sample_p", sample_p)
    built = list(SPLITS) if splits is None else [str(x) for x in splits]
    if not built or any(x not in SPLITS for x in built):
        raise ParameterError(f"splits: expected some of {', '.join(SPLITS)}, got {splits!r}")
    built = [x for x in SPLITS if x in built]
    extra_soundfonts = _some_of("extra_soundfonts", extra_soundfonts, SOUNDFONTS_EXTRA)
    extra_nonmusic = _some_of("extra_nonmusic", extra_nonmusic, NONMUSIC_EXTRA)
    sizes = split_sizes(hours, clip_seconds)
    n_render = sum(sizes[s] for s in built)
    # the manifest's recipe keys, as JSON gives them back (to compare with a build already in the folder)
    recipe = json.loads(json.dumps({
        "recipe": RECIPE, "recipe_version": RECIPE_VERSION, "seed": int(seed), "hours_requested": hours,
        "clip_seconds": clip_seconds, "render_rate": int(render_rate), "vibrato_p": vibrato_p, "solo_p": solo_p,
        "sample_p": sample_p, "extra_soundfonts": list(extra_soundfonts), "extra_nonmusic": list(extra_nonmusic),
        "kind_weights": dict(KIND_WEIGHTS if kind_weights is None else kind_weights)}))

    out = Path(out_dir)
    created = _prepare_out(out)
    try:
        kept = _kept_splits(out, recipe, built)
        need = n_render * (clip_seconds * BYTES_PER_SECOND + BYTES_PER_CLIP)
        reclaimed = sum(f.stat().st_size for s in SPLITS if s not in kept and (out / s).is_dir()
                        for f in (out / s).iterdir() if _CLIP_FILE.match(f.name))  # rewritten or removed
        free = shutil.disk_usage(out).free
        if need - reclaimed > free:
            raise ParameterError(f"--out {out}: the build needs about {_size(need)} ({n_render} clips of "
                                 f"{clip_seconds:g} s) but {_size(free)} is free there; ask for fewer --hours or "
                                 "free some space")
        jobs = [j for j in plan_clips(hours, int(seed), clip_seconds, kind_weights, vibrato_p, extra_soundfonts,
                                      solo_p, sample_p, extra_nonmusic) if j.split in built]
        check_dependencies(extra_soundfonts, npm_cache)
        versions = fetch_samples(npm_cache)
    except BaseException:
        _remove_created(out, created)
        raise
    if workers is None:  # small sets: one process (each worker pays the soundfont and sample loading)
        workers = 1 if len(jobs) < 40 else max(1, min(2, os.cpu_count() or 1))

    # From here the folder holds no manifest until every clip is written: an interrupted build leaves
    # UNFINISHED (the recipe and the kept splits' records) and no manifest, which load_split refuses.
    _write_atomic(out / UNFINISHED, json.dumps({"recipe": recipe, "rendering": built, "kept": kept},
                                               sort_keys=True, ensure_ascii=False))
    for name in ("manifest.json", "manifest.jsonl"):
        (out / name).unlink(missing_ok=True)
    for s in SPLITS:  # clip files no manifest will list (an interrupted build of another size)
        if s in kept or not (out / s).is_dir():
            continue
        names = {f"{j.name}{ext}" for j in jobs if j.split == s for ext in (".flac", ".labels.npy")}
        for f in (out / s).iterdir():
            if _CLIP_FILE.match(f.name) and f.name not in names:
                f.unlink()
    for s in built:
        (out / s).mkdir(exist_ok=True)
    import soundfile as sf

    records = []
    stats = {s: {"clips": 0, "frames": 0, "active": np.zeros(len(TAGS), np.int64), "none": 0} for s in built}

    from contextlib import closing, nullcontext

    prog_cm = nullcontext()
    task = None
    if progress:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        prog_cm = Progress(TextColumn("[bold]data build[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("clips"), TimeElapsedColumn(), TimeRemainingColumn())
    rendered = _render_jobs(jobs, workers, npm_cache, render_rate)
    with prog_cm as prog, closing(rendered):  # an error or Ctrl-C here ends the workers at once
        if prog is not None:
            # (the workers start, load the soundfonts and sample banks and render their first clips: seconds)
            task = prog.add_task(f"starting {int(workers)} worker(s)" if int(workers) > 1 else "rendering",
                                 total=len(jobs))
        for job, (audio, labels, meta) in rendered:
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
    split_info = {s: dict(split_timbres(s, extra_soundfonts), clips=stats[s]["clips"], frames=int(stats[s]["frames"]),
                          hours=round(stats[s]["clips"] * clip_seconds / 3600, 4),
                          tag_prevalence={t: round(float(stats[s]["active"][j] / max(1, stats[s]["frames"])), 4)
                                          for j, t in enumerate(TAGS)},
                          no_tag_fraction=round(stats[s]["none"] / max(1, stats[s]["frames"]), 4))
                  for s in built}
    for s, k in kept.items():
        split_info[s] = k["info"]
        records += k["records"]
    order = {s: i for i, s in enumerate(SPLITS)}
    records.sort(key=lambda r: order[r["split"]])  # stable: each split's clips stay in order
    manifest = dict(recipe, **{
        "sample_rate": SAMPLE_RATE, "frame_grid": {"n_fft": N_FFT, "hop_length": HOP, "center": False},
        "tags": list(TAGS),
        "labelling": {"rule": "stem frame energy (Hann-weighted mean square) within rel_db of the clip mix's "
                              "loudest frame and above floor_db; off gaps of at most fill_gap_frames filled",
                      "rel_db": REL_DB, "floor_db": FLOOR_DB, "fill_gap_frames": FILL_GAP_FRAMES},
        "splits": {s: split_info[s] for s in SPLITS if s in split_info},
        "sources": _sources_summary(versions, extra_soundfonts),
        "files": {"clips": "manifest.jsonl", "audio": "<split>/<clip>.flac (16 kHz mono PCM_16)",
                  "labels": "<split>/<clip>.labels.npy (uint8, n_frames x n_tags)"},
    })
    # last: the clip list, then the manifest, then the end of UNFINISHED (which load_split refuses)
    _write_atomic(out / "manifest.jsonl",
                  "".join(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n" for rec in records))
    _write_atomic(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    (out / UNFINISHED).unlink()
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


def _check_built(data_dir, name: str) -> Path:
    """``data_dir/name`` of a finished build; ParameterError (saying to build it again) when the build did
    not finish or the file is missing."""
    root = Path(data_dir)
    if (root / UNFINISHED).exists():
        raise ParameterError(f"{root}: its 'rtclassify data build' did not finish ({UNFINISHED} is there, no "
                             "manifest); run the same build again to finish it")
    p = root / name
    if not p.exists():
        raise ParameterError(f"{p} not found: not a data set built by 'rtclassify data build', or its build was "
                             "interrupted; build it (again) with rtclassify data build")
    return p


def read_manifest(data_dir) -> dict:
    """The ``manifest.json`` of a built data set (ParameterError naming the file when missing, when the
    build did not finish, or when another recipe or recipe version wrote it: its labels and clips may not
    mean what this version's do)."""
    p = _check_built(data_dir, "manifest.json")
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RtclassifyError(f"{p}: invalid JSON ({exc})") from exc
    if not isinstance(m, dict):
        raise RtclassifyError(f"{p}: not a data manifest (a JSON object)")
    if m.get("recipe") != RECIPE or m.get("recipe_version") != RECIPE_VERSION:
        raise ParameterError(f"{p}: written by recipe {m.get('recipe')!r} version {m.get('recipe_version')!r}; this "
                             f"rtclassify reads {RECIPE!r} version {RECIPE_VERSION}: build the data again with "
                             f"rtclassify data build")
    return m


def split_records(data_dir, split: str) -> list[dict]:
    """The manifest.jsonl records of one split, in order (ParameterError when the file is missing or the
    build did not finish)."""
    if split not in SPLITS:
        raise ParameterError(f"split: {split!r} is not one of {SPLITS}")
    p = _check_built(data_dir, "manifest.jsonl")
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

    def damaged(path, why):
        return RtclassifyError(f"{path}: {why}: the data set {root} is incomplete or damaged (a copy or sync "
                               f"that did not finish, a full disk?); build it again (delete the folder and run "
                               f"the same 'rtclassify data build' command)")

    for rec in split_records(root, split):
        path = root / rec["audio"]
        try:
            audio, sr = sf.read(path, dtype="float32")
        except (OSError, RuntimeError, ValueError) as exc:  # soundfile's errors are RuntimeErrors
            raise damaged(path, "no such file" if not path.exists() else f"cannot read ({exc})") from None
        if sr != SAMPLE_RATE or audio.ndim != 1:
            raise RtclassifyError(f"{root / rec['audio']}: expected 16 kHz mono, got {sr} Hz {audio.shape}")
        path = root / rec["labels"]
        try:
            labels = np.load(path)
        except (OSError, ValueError, EOFError) as exc:
            raise damaged(path, "no such file" if not path.exists() else f"cannot read ({exc})") from None
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
    try:
        return _provenance_of(m)
    except (KeyError, TypeError, AttributeError) as exc:
        raise RtclassifyError(f"{Path(data_dir) / 'manifest.json'}: incomplete manifest (no usable {exc}); build "
                              f"the data again with rtclassify data build") from None


def _provenance_of(m: dict) -> dict:
    return {"recipe": m["recipe"], "recipe_version": m["recipe_version"], "seed": m["seed"],
            "hours": {s: m["splits"][s]["hours"] for s in SPLITS if s in m["splits"]},
            "clip_seconds": m["clip_seconds"],
            "labelling": m["labelling"], "test_timbres": {k: v for k, v in m["splits"].get("test", split_timbres("test")).items()
                                                          if k in ("soundfonts", "sample_instruments",
                                                                   "espeak_variants", "festival_voices")},
            "sources": m["sources"]}
