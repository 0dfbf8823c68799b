"""``rtclassify evaluate-techniques``: pitch, vibrato and tremolo against exact ground truth."""

from __future__ import annotations

NAME = "evaluate-techniques"
HELP = "measure the pitch, vibrato and tremolo trackers on a synthetic set with exact ground truth"
DESCRIPTION = (
    "Generate a synthetic set from a seed (sine, sawtooth, harmonic and body-filtered tones, FluidSynth "
    "instruments driven by pitch-bend and expression LFOs, plucked notes; vibrato 3-9 Hz / 10-120 cents, "
    "tremolo 3-9 Hz / 1-12 dB; noise at 10-40 dB SNR; a synthetic room), run the native trackers through the "
    "streaming path, and report frame F1 for vibrato and tremolo, the mean absolute error of rate, extent and "
    "depth, the detection delay in modulation periods, and on the steady real notes of sms-tools the fraction "
    "of voiced frames called vibrato or tremolo. The same clips also go through librosa's pYIN + the same "
    "modulation analysis and, when installed, Essentia's PitchYinFFT + Vibrato. Prints a comparison table and "
    "writes techniques.json."
)

DEFAULT_CLIPS = 60
QUICK_CLIPS = 12


def _default_data_dir():
    """The default ``--data``: ``shared/data/sms-tools`` beside the source checkout (``<checkout>/../shared``, as
    the README's ``../shared/data/sms-tools`` from the checkout's root), else inside it; None when neither is a
    folder. It does not depend on the current folder."""
    from pathlib import Path

    here = Path(__file__).resolve().parents[2]
    for cand in (here.parent / "shared" / "data" / "sms-tools", here / "shared" / "data" / "sms-tools"):
        if cand.is_dir():
            return cand
    return None


def add_arguments(parser) -> None:
    from ..train import MAX_SEED
    from ._args import nonempty, number

    default = _default_data_dir()
    where = (f"now {default}" if default is not None
             else "neither exists here, so the steady notes are skipped").replace("%", "%%")
    parser.add_argument("--out", metavar="DIR", type=nonempty("a folder"), default="eval-techniques",
                        help="report folder (default: ./eval-techniques)")
    parser.add_argument("--seed", type=number(int, "an integer", lo=0, hi=MAX_SEED), default=0, help=f"seed of the synthetic set, 0..{MAX_SEED} (default 0)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CLIPS} clips instead of {DEFAULT_CLIPS}")
    parser.add_argument("--clips", type=number(int, "a number of clips", lo=1), metavar="N",
                        help="number of synthetic clips, >= 1 (overrides --quick)")
    parser.add_argument("--data", metavar="DIR", type=nonempty("a folder"),
                        help="folder with the sms-tools steady notes (default: shared/data/sms-tools beside the "
                             "rtclassify source checkout, i.e. ../shared/data/sms-tools from the checkout's root, "
                             f"else inside the checkout; not relative to the current folder: {where})")
    parser.add_argument("--no-anchors", action="store_true", help="skip pYIN and Essentia")
    parser.add_argument("--no-room", action="store_true",
                        help="render the clips without the synthetic room (a diagnostic: how much of the "
                             "error the reverberation causes; the targets are for the clips with it)")


def _met(target) -> str:
    if not target.get("measured", True):
        return "[yellow]not measured"
    return "[green]yes" if target["met"] else "[red]no"


def _fmt(v, digits=3):
    import math

    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def _check_out(out) -> None:
    """Create the report folder ``out`` (before the evaluation) or fail with one line naming --out."""
    import os

    from ..errors import ParameterError
    from ..model.bundle_write import make_output_folder

    make_output_folder(out)
    if (out / "techniques.json").exists() and not os.access(out / "techniques.json", os.W_OK):
        raise ParameterError(f"--out {out}: techniques.json is not writable")


def run(args) -> int:
    import json
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ..errors import ParameterError, require

    require("scipy", extra="train")
    from ..train import techniques_eval as te

    n = args.clips if args.clips is not None else (QUICK_CLIPS if args.quick else DEFAULT_CLIPS)
    if n < 1:  # (argparse refuses it from the command line)
        raise ParameterError(f"--clips must be >= 1, got {n}")
    # everything checked before the synthetic clips (minutes), so that a bad option loses nothing
    data_dir = Path(args.data) if args.data else _default_data_dir()
    if data_dir is not None:
        if args.data and not data_dir.is_dir():
            raise ParameterError(f"--data {data_dir}: is not a folder")
        te.check_steady_notes(data_dir, what="--data" if args.data else "--data (default)")
    if te.needs_fluid(te.make_specs(n, args.seed)):
        te.check_fluid()
    out = Path(args.out)
    _check_out(out)
    console = Console()
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("synthetic clips", total=n)

        def step(done, total, name):
            progress.update(task, completed=done, description=f"synthetic clips ({name})")

        report = te.evaluate(n_clips=n, seed=args.seed, data_dir=data_dir, anchors=not args.no_anchors,
                             progress=step, room=not args.no_room)
    (out / "techniques.json").write_text(json.dumps(report, indent=1, default=float))

    systems = list(report["systems"])
    t = Table(title=f"techniques: {n} synthetic clips (seed {args.seed}{', no room' if args.no_room else ''}), collar "
                    f"{report['config']['collar_periods']} periods")
    t.add_column("metric")
    for s in systems:
        t.add_column(s, justify="right")
    t.add_column("target", justify="right")
    t.add_column("met", justify="center")
    steady = report["steady"]
    rows = [
        ("vibrato F1", lambda m: m["vibrato"]["f1"], "vibrato_f1"),
        ("vibrato F1 (no collar)", lambda m: m["vibrato"]["f1_raw"], None),
        ("vibrato rate MAE (Hz)", lambda m: m["vibrato"]["rate_mae"], "vibrato_rate_mae"),
        ("vibrato extent MAE (cents)", lambda m: m["vibrato"]["amount_mae"], "vibrato_extent_mae"),
        ("vibrato delay (periods, mean)", lambda m: m["vibrato"]["delay_periods"], "vibrato_delay_periods"),
        ("vibrato delay p90", lambda m: m["vibrato"]["delay_p90"], None),
        ("vibrato segments missed", lambda m: m["vibrato"]["missed"], None),
        ("tremolo F1", lambda m: m.get("tremolo", {}).get("f1"), "tremolo_f1"),
        ("tremolo F1 (no collar)", lambda m: m.get("tremolo", {}).get("f1_raw"), None),
        ("tremolo rate MAE (Hz)", lambda m: m.get("tremolo", {}).get("rate_mae"), "tremolo_rate_mae"),
        ("tremolo depth MAE (dB)", lambda m: m.get("tremolo", {}).get("amount_mae"), "tremolo_depth_mae"),
        ("tremolo delay (periods, mean)", lambda m: m.get("tremolo", {}).get("delay_periods"),
         "tremolo_delay_periods"),
        ("tremolo delay p90", lambda m: m.get("tremolo", {}).get("delay_p90"), None),
        ("tremolo segments missed", lambda m: m.get("tremolo", {}).get("missed"), None),
        ("pitch within 50 cents", lambda m: m["pitch"]["rpa50"], None),
        ("pitch median error (cents)", lambda m: m["pitch"]["median_cents"], None),
        ("CPU real-time ratio", lambda m: m["cpu_rt"], None),
    ]
    targets = report["targets"]
    for label, get, key in rows:
        cells = []
        for s in systems:
            v = get(report["systems"][s])
            cells.append(str(v) if isinstance(v, int) else _fmt(v))
        if key:
            tg = targets[key]
            cells += [f"{tg['op']} {tg['bound']:g}", _met(tg)]
        else:
            cells += ["", ""]
        t.add_row(label, *cells)
    if steady:
        cells = [_fmt(steady[s]["false_fraction"]) for s in systems]
        tg = targets["steady_false_fraction"]
        t.add_row("steady real notes: vib/trem on", *cells, f"{tg['op']} {tg['bound']:g}", _met(tg))
    console.print(t)
    if steady:
        st = Table(title="steady real notes (sms-tools): fraction of voiced frames called vibrato / tremolo")
        st.add_column("file")
        for s in systems:
            st.add_column(s, justify="right")
        for f in te.STEADY_NOTES:
            cells = []
            for s in systems:
                d = steady[s]["files"][f]
                tr = "-" if d["tremolo_fraction"] is None else f"{d['tremolo_fraction']:.3f}"
                cells.append(f"{d['vibrato_fraction']:.3f} / {tr}")
            st.add_row(f, *cells)
        console.print(st)
    else:
        console.print("steady real notes: skipped (no sms-tools folder; give --data DIR)")
    for name, status in report["config"]["anchors"].items():
        if status != "ran":
            console.print(f"{name}: {status}", markup=False)  # a status may name an extra, "rtclassify[train]"
    summary = report["targets_summary"]
    counts = f"{summary['met']}/{summary['measured']}"
    if summary["not_measured"]:
        counts += f", {len(summary['not_measured'])} not measured ({', '.join(summary['not_measured'])})"
    console.print(f"targets met: {counts}; wrote {out / 'techniques.json'}")
    return 0
