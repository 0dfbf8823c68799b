"""``rtclassify data``: build the synthesized, frame-labelled training set."""

from __future__ import annotations

from ._args import number

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


_seed = number(int, "a non-negative integer", lo=0)


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    b = sub.add_parser("build", help="synthesize a labelled data set", description=DESCRIPTION)
    b.add_argument("--out", required=True, metavar="DIR", help="output folder")
    b.add_argument("--hours", required=True, type=_positive(float), metavar="H",
                   help="hours of audio over all splits (e.g. 3; 0.01 for a tiny set)")
    b.add_argument("--seed", type=_seed, default=1, metavar="S", help="random seed (default 1)")
    b.add_argument("--vibrato", type=float, default=None, metavar="P",
                   help="probability that a GM string, wind, synth or voice part is played with vibrato "
                        "(default 0: the recipe of the shipped model)")
    b.add_argument("--solo", type=float, default=None, metavar="P",
                   help="share of the train/val music clips rendered as one instrument playing single held notes "
                        "over its whole range (default 0: the recipe of the shipped model; the test split is the "
                        "same for every value)")
    b.add_argument("--sample-parts", type=float, default=None, metavar="P",
                   help="probability that a train/val part of a family with recorded npm notes is played from them "
                        "instead of a soundfont (default 0.35: the recipe of the shipped model; the test split "
                        "always uses 0.35)")
    b.add_argument("--splits", default=None, metavar="LIST",
                   help="comma-separated splits to render (default train,val,test); the clips are those of the "
                        "full build, e.g. --splits test rebuilds a recipe's test split alone")
    b.add_argument("--extra-soundfonts", default=None, metavar="LIST",
                   help="soundfonts added to the training timbres (train and val splits): OPL3_FM (Debian "
                        "opl3-soundfont), FreePats (Debian freepats, through timidity), FreePats_pitched (the same "
                        "for pitched parts, drums by FluidR3_GM), STK (physical models with controls drawn per "
                        "part, Debian stk and faketime; drums by FluidR3_GM); default none: the recipe of the shipped model")
    b.add_argument("--clip-seconds", type=_positive(float), default=10.0, metavar="SEC",
                   help="length of each clip (default 10)")
    b.add_argument("--workers", type=_positive(int), default=None, metavar="N",
                   help="worker processes (default: 1 for fewer than 40 clips, else min(2, CPUs)); the output does not depend on it")
    b.add_argument("--npm-cache", metavar="DIR", default=None,
                   help="folder of the npm sample packages (default ~/.cache/rtclassify/npm or $RTCLASSIFY_NPM_CACHE)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    f = sub.add_parser("fetch", help="fetch the npm sample packages into the cache (npm pack)")
    f.add_argument("--npm-cache", metavar="DIR", default=None, help="cache folder (default ~/.cache/rtclassify/npm)")


def run(args) -> int:
    import time

    from ..errors import ParameterError

    if args.data_command == "fetch":
        from ..train.data.build import fetch_samples

        versions = fetch_samples(args.npm_cache)
        for inst, v in versions.items():
            print(f"tonejs-instrument-{inst}-mp3 {v}")
        return 0
    if args.data_command != "build":
        raise ParameterError("data: choose an action: build or fetch (see rtclassify data --help)")
    from rich.console import Console
    from rich.table import Table

    from ..train.data.build import build_dataset

    t0 = time.monotonic()
    m = build_dataset(args.out, args.hours, args.seed, clip_seconds=args.clip_seconds, workers=args.workers,
                      npm_cache=args.npm_cache, progress=not args.no_progress,
                      splits=args.splits.split(",") if args.splits else None,
                      extra_soundfonts=args.extra_soundfonts.split(",") if args.extra_soundfonts else (),
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
    total_h = sum(i["hours"] for i in m["splits"].values())
    console.print(f"{total_h:.3f} h of audio in {dt:.1f} s ({total_h * 3600 / max(dt, 1e-9):.0f}x real time); "
                  f"manifest: {args.out}/manifest.json")
    return 0
