"""Generic negative audio: what a learned tag must stay off for when no negatives are given.

Two sources, both available with the runtime dependencies only:

``rtclassify/data/learn_negatives/negatives.flac``
    About 42 s of material from the default model's data recipe, rendered from
    its *training* timbres (soundfonts FluidR3_GM and MuseScore_General, the
    training npm instruments, the BSD-licensed Festival voices): 3-s
    segments of generated music covering all twelve tags, speech, singing and
    non-music. ``segments.json`` next to it lists the segments and their
    sources and licenses. :func:`render_generic_negatives` (``train`` extra,
    FluidSynth and espeak-ng) rebuilds the file deterministically.
synthesized here
    Digital silence, a faint noise floor, white, pink and brown noise at two
    levels and mains hum (numpy, fixed seed).

Every segment is its own example (so cross-validation keeps segments whole).
A tag learned for a sound that the generic material contains (for example a
particular voice, against the speech segments) should be learned with
``generic_negatives=False`` and the user's own negatives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .examples import Example

__all__ = ["generic_negative_examples", "negatives_path", "render_generic_negatives", "SEGMENT_SECONDS"]

SEGMENT_SECONDS = 3.0
_SR = 16000
_CLIP_KINDS = ("music",) * 8 + ("speech",) * 2 + ("singing",) * 2 + ("nonmusic",) * 2
_RENDER_SEED = 20240607


#: License prefixes allowed in the packaged file (no GPL-licensed voice output is shipped).
PERMISSIVE = ("MIT", "CC-BY", "Festvox (BSD-like)", "BSD-like", "generated (rtclassify)")


def _licenses(meta: dict) -> list[str]:
    out = set()
    for src in meta["sources"]:
        lic = src.get("license")
        for item in (lic if isinstance(lic, list) else [lic]):
            if item:
                out.add(str(item))
    return sorted(out)


def negatives_path() -> Path:
    """The packaged generic negative audio."""
    return Path(__file__).resolve().parent.parent / "data" / "learn_negatives" / "negatives.flac"


def _synthetic(seconds: float = 2.0, seed: int = 1) -> list[Example]:
    rng = np.random.default_rng(seed)
    n = int(seconds * _SR)

    def coloured(exponent: float) -> np.ndarray:
        spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
        f = np.fft.rfftfreq(n, 1.0 / _SR)
        f[0] = f[1]
        x = np.fft.irfft(spec * f ** (-exponent / 2.0), n)
        return x / np.max(np.abs(x))

    t = np.arange(n) / _SR
    hum = sum(np.sin(2 * np.pi * 50.0 * h * t) / h for h in range(1, 6))
    hum = hum / np.max(np.abs(hum))
    items = [("silence", np.zeros(n)), ("noise-floor", 10 ** (-72 / 20) * coloured(1.0))]
    for exponent, kind in ((0.0, "white"), (1.0, "pink"), (2.0, "brown")):
        base = coloured(exponent)
        items += [(f"{kind}-noise-loud", 10 ** (-12 / 20) * base), (f"{kind}-noise-soft", 10 ** (-40 / 20) * base)]
    items.append(("hum", 0.1 * hum))
    return [Example(f"generic:{k}", x.astype(np.float32), _SR) for k, x in items]


def generic_negative_examples() -> list[Example]:
    """The generic negatives as examples (packaged segments, then the synthesized ones).

    Without the packaged file (a source checkout that never rendered it) only
    the synthesized examples are returned.
    """
    out: list[Example] = []
    path = negatives_path()
    if path.is_file():
        from ..audio.files import read_audio

        audio, sr = read_audio(path)
        seg_file = path.with_name("segments.json")
        segs = json.loads(seg_file.read_text())["segments"] if seg_file.is_file() else None
        if segs is None:
            step = int(SEGMENT_SECONDS * sr)
            segs = [{"start_s": i / sr, "seconds": SEGMENT_SECONDS, "kind": "segment"}
                    for i in range(0, len(audio) - step + 1, step)]
        for i, s in enumerate(segs):
            a = int(round(s["start_s"] * sr))
            b = a + int(round(s["seconds"] * sr))
            out.append(Example(f"generic:{s['kind']}:{i}", np.ascontiguousarray(audio[a:b]), sr))
    return out + _synthetic()


def render_generic_negatives(out_dir=None, seed: int = _RENDER_SEED, npm_cache=None) -> Path:
    """Render ``negatives.flac`` and ``segments.json`` with the data recipe (``train`` extra).

    Segments are 3-s clips of the recipe's training split (music, speech,
    singing, non-music). Music clips are drawn seed after seed and kept while
    they add a tag not yet covered, until all twelve tags appear.

    Parameters
    ----------
    out_dir : path, optional
        Default: the packaged folder (``rtclassify/data/learn_negatives``).
    seed : int
    npm_cache : path, optional
        The npm sample cache of the data recipe.

    Returns
    -------
    Path
        The FLAC file.
    """
    import soundfile as sf

    from ..train.data.build import ClipJob, WorkerContext, render_clip

    out_dir = Path(out_dir) if out_dir else negatives_path().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = WorkerContext(npm_cache)
    audio, segs, covered = [], [], set()
    index = 0
    try:
        for kind in _CLIP_KINDS:
            for _attempt in range(200):
                job = ClipJob("train", 900_000 + index, kind, SEGMENT_SECONDS, int(seed))
                index += 1
                x, labels, meta = render_clip(job, ctx)
                tags = set(meta["tags"])
                licenses = _licenses(meta)
                need_new = kind == "music" and len(covered) < 10
                if (not need_new or tags - covered) and (kind == "nonmusic" or tags) \
                        and all(lic.startswith(PERMISSIVE) for lic in licenses):
                    break
            else:
                raise RuntimeError(f"no usable {kind} clip in 200 draws")
            covered |= tags
            segs.append({"start_s": round(len(audio) * SEGMENT_SECONDS, 6), "seconds": SEGMENT_SECONDS, "kind": kind,
                         "clip": job.name, "tags": sorted(tags), "licenses": licenses,
                         "sources": [{k: v for k, v in src.items() if k in ("type", "tag", "soundfont", "program",
                                                                               "preset", "instrument", "package",
                                                                               "kind", "license")}
                                     for src in meta["sources"]]})
            audio.append(x)
    finally:
        ctx.close()
    y = np.concatenate(audio).astype(np.float32)
    path = out_dir / "negatives.flac"
    sf.write(str(path), y, _SR, subtype="PCM_16")
    all_tags = sorted({t for s in segs for t in s["tags"]})
    (out_dir / "segments.json").write_text(json.dumps({
        "about": "generic negative audio for rtclassify learn (rtclassify.learn.negatives.render_generic_negatives)",
        "recipe": "rtclassify-synth (training timbres only)", "seed": int(seed), "sample_rate": _SR,
        "tags_covered": all_tags, "segments": segs}, indent=1))
    return path
