"""``rtclassify learn``: learn a new tag from a few example recordings and write a bundle with it."""

from __future__ import annotations

import argparse

from ..model.classifier import OFFLINE_THREADS
from ._args import nonempty, threads

NAME = "learn"
HELP = "learn a new tag from a few example recordings (writes a bundle with the original tags plus the new one)"
DESCRIPTION = """\
Learn your own tag (a pedal, a prepared piano, your voice) from a few
recordings of it. Each example file goes through the bundle's streaming path;
the bundle's CNN embedding (the layer before its output head) of every window
is computed, and a logistic-regression head on it (and on two log-mel averages
of the window) is fitted in seconds on the CPU. Each example is also learned
mixed into generic music, so the tag holds when the sound plays with the band
(--no-mix for a sound heard alone), and shifted 2 semitones up and down, so it
holds over more of the instrument's register (--pitch-shifts none for a sound
defined by its pitch).
The output is a normal bundle: the original graph plus the new head, so the
original tags give exactly the same outputs, and `listen --bundle OUT` sends
the new tag to MIDI and OSC like the built-in ones. --out is a new or empty
folder (or a new .zip); --force replaces a bundle there, whole, and a folder
that holds other files is never written into.

Positive examples: recordings of the sound, up to a few seconds each (1 is
enough to start, 5-10 give a steadier tag); only their sounding frames are
used. Negatives: recordings of what the tag must stay off for (the same
instrument without the effect, the room, the rest of the band). Generic
negatives are always added unless --no-generic: about 42 s of music covering
the twelve built-in tags, speech and singing from the default model's data
recipe (training timbres), plus silence, noise and hum.

A warning (weak tag) says when the head may turn the tag on for sounds that
are not it: in cross-validation, the examples themselves cannot be told from
your negatives or the generic ones, or the tag is on for over a tenth of your
negatives, or (--no-generic) it takes over a quarter of the generic ones for
its sound. The summary line gives the share of the generic and of your
negatives the tag is on for in cross-validation (the generic music holds every
built-in family: a good tag takes some). Either way, check the tag over the
band or the room alone before a show: rtclassify tag --bundle OUT band.wav.

examples:
  rtclassify learn --tag fuzz fuzz1.wav fuzz2.wav fuzz3.wav \\
      --negatives clean.wav --out fuzz_bundle
  rtclassify learn --tag whistle w*.flac --bundle my_bundle \\
      --out my_bundle2.zip
  rtclassify listen --bundle fuzz_bundle --midi-virtual rtclassify
"""


def _on_shares(cv: dict) -> str:
    """", on for 9% of the generic negatives and 0% of yours in cross-validation" (nothing without the figures)."""
    shares = cv.get("cv_on_share_by_kind") or {}
    parts = [f"{100 * shares[k]:.0f}% of {what}" for k, what in (("generic", "the generic negatives"),
                                                                  ("yours", "yours")) if k in shares]
    return f", on for {' and '.join(parts)} in cross-validation" if parts else ""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.usage = ("%(prog)s [-h] --tag NAME POSITIVE_FILE [POSITIVE_FILE ...]\n"
               "       [--negatives FILE [FILE ...]] --out BUNDLE [--bundle IN] [--force]\n"
               "       [--no-generic] [--no-mix] [--pitch-shifts LIST]\n"
               "       [--features {embedding+mel,embedding}] [--json] [--threads N]")
    # "*", checked in run(): a usage error that can say the files after --negatives all went to --negatives
    p.add_argument("positives", nargs="*", metavar="POSITIVE_FILE", help="recordings of the new sound (at least one; "
                                                                         "before --negatives)")
    p.add_argument("--tag", required=True, metavar="NAME",
                   help="name of the new tag (letters, digits, '_', '-', '.'; becomes the OSC address part)")
    p.add_argument("--negatives", nargs="+", default=[], metavar="FILE",
                   help="recordings the tag must stay off for")
    p.add_argument("--bundle", metavar="IN", type=nonempty("a bundle folder or zip"),
                   help="base bundle folder or zip (default: the bundled model)")
    p.add_argument("--out", required=True, metavar="BUNDLE", type=nonempty("a bundle folder or .zip"),
                   help="output bundle folder, or a path ending in .zip (a new or empty folder; see --force)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing bundle at --out (a folder holding other files is still refused)")
    p.add_argument("--no-generic", action="store_true",
                   help="do not add the generic negatives (then --negatives is required; such a head never meets "
                        "other music, speech or noise: it is scored on them after, and a warning says when it "
                        "takes over a quarter of them for its sound)")
    p.add_argument("--no-mix", action="store_true",
                   help="do not also learn from copies of the examples mixed into generic music (better for a "
                        "sound that is heard alone, worse when it plays with the band; see rtclassify/learn/RESULTS.md)")
    p.add_argument("--pitch-shifts", default=None, metavar="LIST",
                   help="also learn from copies of each example shifted by these semitones (default -2,2: the tag "
                        "holds over more of an instrument's register; 'none' for a sound defined by its pitch; "
                        "write negative lists as --pitch-shifts=-1,1)")
    p.add_argument("--features", choices=("embedding+mel", "embedding"), default="embedding+mel",
                   help="head input: the CNN embedding and log-mel means of the window (default), or the embedding")
    p.add_argument("--json", action="store_true", help="print the new tag's learned_tags record as JSON")
    p.add_argument("--threads", type=threads, default=OFFLINE_THREADS, metavar="N",
                   help=f"inference threads of the embedding runs (default: the CPU's cores up to 8, "
                        f"{OFFLINE_THREADS} here; the results are the same with any number)")


def run(args) -> int:
    import json
    import time

    from rich.console import Console

    from ..errors import ParameterError
    from ..model.bundle_write import check_bundle_out
    from ..model.classifier import Classifier

    console = Console(stderr=True)
    if not args.positives:
        from ._args import UsageError

        if args.negatives:
            raise UsageError(f"no POSITIVE_FILE: every file after --negatives is a negative "
                             f"({', '.join(args.negatives)}); give the positive files before --negatives")
        raise UsageError("give at least one POSITIVE_FILE (a recording of the new sound)")
    check_bundle_out(args.out, "--out", force=args.force, shipped=False)
    if args.no_generic and not args.negatives:
        raise ParameterError("--no-generic needs --negatives FILE...")
    from ..learn.learner import parse_pitch_shifts

    shifts = parse_pitch_shifts(args.pitch_shifts)
    t0 = time.perf_counter()
    clf = Classifier.load(args.bundle, backend="onnx", threads=args.threads)
    import warnings

    from ..errors import WeakTagWarning

    with console.status("learning") as status, warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakTagWarning)  # printed below from the bundle's record
        new = clf.learn(args.tag, args.positives, args.negatives or None, out=args.out,
                        generic_negatives=not args.no_generic, mix_positives=not args.no_mix,
                        features=args.features, progress=lambda stage: status.update(stage),
                        **({} if shifts is None else {"pitch_shifts": shifts}))
    dt = time.perf_counter() - t0
    rec = new.bundle.meta["learned_tags"][-1]
    if args.json:
        print(json.dumps({k: v for k, v in rec.items() if k != "head"}, indent=1))
    cv = rec["cv"]
    auc = "n/a" if cv.get("cv_roc_auc") is None else f"{cv['cv_roc_auc']:.3f}"
    console.print(f"learned tag {args.tag!r} from {len(rec['positives'])} example(s) "
                  f"({rec['windows']['positive']} windows; {rec['windows']['negative']} negative windows) in "
                  f"{dt:.1f} s: cross-validated ROC-AUC {auc}, threshold on {rec['thresholds']['on']:.2f} / off "
                  f"{rec['thresholds']['off']:.2f}{_on_shares(cv)}")
    console.print(f"bundle: {args.out} (tags: {', '.join(new.labels)})")
    if rec.get("warning"):
        from rich.markup import escape

        console.print(f"[yellow]warning:[/yellow] {escape(rec['warning'])}", highlight=False)
    return 0
