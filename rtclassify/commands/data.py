"""``rtclassify data``: build the synthesized, frame-labelled training set."""

from __future__ import annotations


# the build's own limits, from a light module (the build itself loads the synthesizers)
from ..train import MAX_SEED
from ..train.data.limits import MAX_CLIP_SECONDS, MAX_HOURS, MIN_CLIP_SECONDS, NONMUSIC_EXTRA, SOUNDFONTS_EXTRA, SPLITS
from ._args import names_of, nonempty, number

NAME = "data"
HELP = "build the training data set (FluidSynth, npm samples, speech, singing, noise) with frame labels"
DESCRIPTION = (
    "`rtclassify data build --out DIR --hours H --seed S` renders clips of generated music through the Debian "
    "GM soundfonts (FluidSynth), real instrument notes from the npm packages tonejs-instrument-<name>-mp3, speech "
    "and singing from espeak-ng and Festival voices, and non-music noise; augments them; and writes 16 kHz FLAC "
    "audio, per-frame labels (uint8 n_frames x 12 .npy) and manifest.json/manifest.jsonl into DIR, split into "
    "train/val/test (test uses only held-out timbres). The same seed gives byte-identical files. "
    "`rtclassify data fetch` only downloads the npm sample packages into the cache."
)


def _positive(kind):
    return number(kind, f"a {kind.__name__}", above=0)



_seed = number(int, "a non-negative integer", lo=0, hi=MAX_SEED)
_hours = number(float, "a number of hours", hi=MAX_HOURS, above=0, unit=" h")
_clip_seconds = number(float, "a number of seconds", lo=MIN_CLIP_SECONDS, hi=MAX_CLIP_SECONDS, unit=" s")
_probability = number(float, "a probability (0-1)", lo=0, hi=1)


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    b = sub.add_parser("build", help="synthesize a labelled data set", description=DESCRIPTION)
    b.add_argument("--out", required=True, type=nonempty("a folder"), metavar="DIR",
                   help="output folder: new, empty, or holding a build of the same recipe (rebuilt in place; with "
                        "--splits its other splits are kept)")
    b.add_argument("--hours", required=True, type=_hours, metavar="H",
                   help=f"hours of audio over all splits (e.g. 3; 0.01 for a tiny set; at most {MAX_HOURS:g}, at "
                        "least one clip)")
    b.add_argument("--seed", type=_seed, default=1, metavar="S", help="random seed (default 1)")
    b.add_argument("--vibrato", type=_probability, default=None, metavar="P",
                   help="probability that a GM string, wind, synth or voice part is played with vibrato "
                        "(default 0: the recipe of the shipped model)")
    b.add_argument("--solo", type=_probability, default=None, metavar="P",
                   help="share of the train/val music clips rendered as one instrument playing single held notes "
                        "over its whole range (default 0: the recipe of the shipped model; the test split is the "
                        "same for every value)")
    b.add_argument("--sample-parts", type=_probability, default=None, metavar="P",
                   help="probability that a train/val part of a family with recorded npm notes is played from them "
                        "instead of a soundfont (default 0.35: the recipe of the shipped model; the test split "
                        "always uses 0.35)")
    b.add_argument("--splits", type=names_of(SPLITS), default=None, metavar="LIST",
                   help="comma-separated splits to render (default train,val,test); the clips are those of the "
                        "full build, e.g. --splits test rebuilds a recipe's test split alone")
    b.add_argument("--extra-soundfonts", type=names_of(SOUNDFONTS_EXTRA), default=None, metavar="LIST",
                   help="soundfonts added to the training timbres (train and val splits): OPL3_FM (Debian "
                        "opl3-soundfont), FreePats (Debian freepats, through timidity), FreePats_pitched (the same "
                        "for pitched parts, drums by FluidR3_GM), STK (physical models with controls drawn per "
                        "part, Debian stk and faketime; drums by FluidR3_GM); default none: the recipe of the shipped model")
    b.add_argument("--extra-nonmusic", type=names_of(NONMUSIC_EXTRA), default=None, metavar="LIST",
                   help="non-music kinds added to the train/val clips where every tag is off: drips (water drops "
                        "that ring and knock, from drips to a downpour), crackle (fire, frying, a worn record); "
                        "default none (the shipped model's recipe adds drips,crackle; the test split is the same either way)")
    b.add_argument("--clip-seconds", type=_clip_seconds, default=10.0, metavar="SEC",
                   help=f"length of each clip ({MIN_CLIP_SECONDS:g}-{MAX_CLIP_SECONDS:g}; default 10)")
    b.add_argument("--workers", type=_positive(int), default=None, metavar="N",
                   help="worker processes (default: 1 for fewer than 40 clips, else min(2, CPUs); never more than the "
                        "clips); the output does not depend on it")
    b.add_argument("--npm-cache", type=nonempty("a folder"), metavar="DIR", default=None,
                   help="folder of the npm sample packages (default ~/.cache/rtclassify/npm or $RTCLASSIFY_NPM_CACHE)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    f = sub.add_parser("fetch", help="fetch the npm sample packages into the cache (npm pack)")
    f.add_argument("--npm-cache", type=nonempty("a folder"), metavar="DIR", default=None,
                   help="cache folder (default ~/.cache/rtclassify/npm or $RTCLASSIFY_NPM_CACHE)")


def run(args) -> int:
    import time

    from ..errors import ParameterError, require

    if args.data_command == "fetch":
        from ..train.data.samples import fetch_samples

        versions = fetch_samples(args.npm_cache)
        for inst, v in versions.items():
            print(f"tonejs-instrument-{inst}-mp3 {v}")
        return 0
    if args.data_command != "build":
        raise ParameterError("data: choose an action: build or fetch (see rtclassify data --help)")
    require("scipy", extra="train")  # the builder's filters import it as they load; say so rather than a traceback
    from rich.console import Console
    from rich.table import Table

    from ..train.data.build import build_dataset

    t0 = time.monotonic()
    m = build_dataset(args.out, args.hours, args.seed, clip_seconds=args.clip_seconds, workers=args.workers,
                      npm_cache=args.npm_cache, progress=not args.no_progress,
                      splits=args.splits, extra_soundfonts=args.extra_soundfonts or (),
                      extra_nonmusic=args.extra_nonmusic or (),
                      **({} if args.vibrato is None else {"vibrato_p": args.vibrato}),
                      **({} if args.solo is None else {"solo_p": args.solo}),
                      **({} if args.sample_parts is None else {"sample_p": args.sample_parts}))
    dt = time.monotonic() - t0
    console = Console()
    table = Table(title=f"frame prevalence per tag ({args.out})")
    table.add_column("tag")
    for s, info in m["splits"].items():
        table.add_column(f"{s} ({info['clips']} clips)", justify="right")
    for tag in m["tags"] + ["(none)"]:
        row = [tag]
        for info in m["splits"].values():
            v = info["no_tag_fraction"] if tag == "(none)" else info["tag_prevalence"][tag]
            row.append(f"{100 * v:.1f}%")
        table.add_row(*row)
    console.print(table)
    rendered = args.splits or list(m["splits"])
    kept = [s for s in m["splits"] if s not in rendered]
    total_h = sum(m["splits"][s]["hours"] for s in rendered)
    console.print(f"{total_h:.3f} h of audio in {dt:.1f} s ({total_h * 3600 / max(dt, 1e-9):.0f}x real time); "
                  + (f"{', '.join(kept)} kept from the build there; " if kept else "")
                  + f"manifest: {args.out}/manifest.json")
    return 0
