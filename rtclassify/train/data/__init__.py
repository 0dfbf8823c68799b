"""Synthesized, frame-labelled training data (``rtclassify data build``).

Sources: FluidSynth renders of generated parts through the Debian GM soundfonts
(:mod:`.gm`, :mod:`.fluid`), real recorded notes from the npm packages
``tonejs-instrument-<name>-mp3`` (:mod:`.samples`), speech and singing from
espeak-ng and Festival voices (:mod:`.voice`), non-music sounds (:mod:`.noise`),
augmentation (:mod:`.augment`), frame labels (:mod:`.labels`) and the recipe
with its loader (:mod:`.build`).

Main API::

    build_dataset(out_dir, hours, seed, clip_seconds=10.0, workers=None, npm_cache=None) -> manifest dict
    clips, count = load_split(out_dir, "train")     # lazy Clip(name, audio, labels) items
    audio, labels = load_split_arrays(out_dir, "val")
"""

from __future__ import annotations

from .labels import HOP, N_FFT, N_TAGS, SAMPLE_RATE, TAGS, n_frames

_LAZY = {
    "build_dataset", "load_split", "load_split_arrays", "iter_split", "split_records", "split_fingerprint",
    "provenance", "read_manifest", "plan_clips", "render_clip", "Clip", "SplitClips", "RECIPE_VERSION",
    "SPLITS",
}

__all__ = ["TAGS", "N_TAGS", "SAMPLE_RATE", "N_FFT", "HOP", "n_frames", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        from . import build

        value = getattr(build, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rtclassify.train.data' has no attribute {name!r}")
