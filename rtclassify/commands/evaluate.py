"""``rtclassify evaluate``: measure a bundle on a data split and on real recordings."""

from __future__ import annotations

from ..model.classifier import OFFLINE_THREADS
from ._args import nonempty, number, threads

NAME = "evaluate"
HELP = "measure a bundle: ROC-AUC, PR-AUC, F1 per tag on a data split; on-fractions on real files"
DESCRIPTION = (
    "Run a bundle's ONNX graph (ONNX Runtime, native frontend) on a split made by `rtclassify data build` "
    "and report per-tag and macro ROC-AUC, PR-AUC and F1 at the bundle's thresholds (JSON + PNG plots). "
    "With --real DIR (a folder with labels.csv), also report per file the fraction of sounding frames in "
    "which each tag is on. With --held-notes FONTS, tag single held notes of GM programs across their "
    "range, rendered through those soundfonts (a look at which timbres and registers a model misreads)."
)


def add_arguments(parser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder or zip")
    parser.add_argument("--data", metavar="DIR", type=nonempty("a folder"),
                        help="dataset folder (rtclassify data build output)")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--real", metavar="DIR", type=nonempty("a folder"),
                        help="folder of real recordings with labels.csv")
    parser.add_argument("--out", metavar="DIR", type=nonempty("a folder"),
                        default="eval", help="report folder (default: ./eval)")
    parser.add_argument("--cache", metavar="DIR", type=nonempty("a folder"),
                        help="feature cache (default: DATA/features)")
    parser.add_argument("--rms-floor-db", type=number(float, "a level in dBFS", lo=-200.0, hi=0.0), default=-50.0,
                        metavar="DB", help="a frame is sounding when its RMS exceeds this (dBFS, -200 to 0; default "
                                           "-50; write a value with an exponent as --rms-floor-db=-1e2)")
    parser.add_argument("--threads", type=threads, default=OFFLINE_THREADS,
                        help=f"ONNX Runtime threads (default: the CPU's cores up to 8, {OFFLINE_THREADS} here)")
    parser.add_argument("--held-notes", metavar="FONTS",
                        help="also tag single held notes of GM programs across their range, rendered through these "
                             "soundfonts (comma-separated, e.g. FluidR3_GM,TimGM6mb,STK): held_notes.json and a table")
    parser.add_argument("--programs", metavar="LIST",
                        help="GM program numbers for --held-notes, 0-127 as FluidSynth counts them (comma-"
                             "separated; default: 40,42,48,68,71,73,19,16,11,12,56,60,24,0: violin, cello, strings, "
                             "oboe, clarinet, flute, church and drawbar organ, vibraphone, marimba, trumpet, horn, "
                             "nylon guitar, piano); programs whose tag the bundle lacks are left out")
    parser.add_argument("--key-step", type=number(int, "a number of keys", lo=1, hi=127), default=6, metavar="N",
                        help="--held-notes: every N-th key of each program's range (default 6)")
    parser.add_argument("--update-bundle", action="store_true",
                        help="also store the results in the bundle's model.json metrics (bundle folders only)")


def run(args) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from ..errors import ParameterError, require

    require("sklearn", extra="train")
    from ..model.bundle import load_bundle
    from ..model.bundle_write import output_folder, write_json_atomic
    from ..train.data.limits import SPLITS
    from ..train.evaluate import (check_real_labels, evaluate_real, evaluate_split, format_real_table,
                                  plot_split_report)
    from ..train.export import check_metrics_bundle, update_bundle_metrics

    if not args.data and not args.real and not args.held_notes:
        raise ParameterError("give --data DIR, --real DIR and/or --held-notes FONTS")
    if args.programs and not args.held_notes:
        raise ParameterError("--programs goes with --held-notes")
    programs = None
    fonts = []
    if args.held_notes:
        from ..train.held_notes import DEFAULT_PROGRAMS, check_held_notes

        try:
            programs = [int(p) for p in args.programs.split(",")] if args.programs else list(DEFAULT_PROGRAMS)
        except ValueError:
            raise ParameterError(f"--programs: expected comma-separated GM program numbers, got {args.programs!r}")
        fonts = [s.strip() for s in args.held_notes.split(",") if s.strip()]
        check_held_notes(fonts, programs, step=args.key_step)
    # the bundle and the data are checked before the report folder is made and before any work
    bundle = load_bundle(args.bundle)
    if args.update_bundle:
        check_metrics_bundle(args.bundle, "--update-bundle")
    if args.data:
        from ..train.data import split_fingerprint

        data = Path(args.data)
        if not data.is_dir():
            raise ParameterError(f"--data {data}: " + ("is a file; give the folder `rtclassify data build` wrote"
                                                       if data.exists() else "not found"))
        split_fingerprint(data, args.split)  # the split's manifest records, which the features are made from
        from ..train.data import load_split

        if load_split(data, args.split)[1] == 0:
            raise ParameterError(f"--data {data}: the {args.split!r} split has no clips (a build with --splits that "
                                 f"left it out?)")
        from ..train.data import provenance

        provenance(data)  # its manifest: a build of another recipe version is refused here, before any work
    skipped_programs = []
    if args.held_notes:
        from ..train.held_notes import programs_of_bundle

        programs, skipped_programs = programs_of_bundle(programs, bundle.labels)
        if not programs:
            raise ParameterError(f"--held-notes: the bundle outputs none of the programs' tags (its tags: "
                                 f"{', '.join(bundle.labels)}); give --programs of its tags")
    if args.real:
        check_real_labels(args.real, list(bundle.labels))
    console = Console()
    # refused data, a failed evaluation or Ctrl-C before anything was written: no empty folder left
    written: list[str] = []  # the reports this run writes (the names of the files in --out)
    with output_folder(args.out, "--out") as out:
        if args.data:
            report, curves = evaluate_split(args.bundle, args.data, args.split, args.cache, threads=args.threads)
            labels = list(report["per_tag"])
            write_json_atomic(out / f"{args.split}.json", report)
            plots = plot_split_report(report, curves, labels, out)
            written += [f"{args.split}.json", *(p.name for p in plots)]
            t = Table(title=f"{args.split}: {report['n']} frames (every {report['stride_frames']} frames)")
            for c in ("tag", "ROC-AUC", "PR-AUC", "F1", "prevalence"):
                t.add_column(c, justify="right" if c != "tag" else "left")

            def f(v):
                return "-" if v is None else f"{v:.3f}"

            for tag, d in report["per_tag"].items():
                t.add_row(tag, f(d["roc_auc"]), f(d["pr_auc"]), f(d.get("f1")), f"{d['prevalence']:.3f}")
            m = report["macro"]
            t.add_row("[bold]macro", f(m["roc_auc"]), f(m["pr_auc"]), f(m.get("f1")), "")
            console.print(t)
            for span, rep in report.get("after_onset", {}).items():
                console.print(f"first {span} after each onset: macro ROC-AUC {f(rep['macro']['roc_auc'])}, "
                              f"PR-AUC {f(rep['macro']['pr_auc'])}")
            for tag, rows in report.get("by_source", {}).items():
                if len(rows) > 1:
                    console.print(f"{tag} by source (ROC-AUC, positives): " + ", ".join(
                        f"{name} {f(d['roc_auc'])} ({d['positives']})" for name, d in rows.items()))
            if report.get("not_in_data"):
                console.print(f"not scored (the data has no labels for them): {', '.join(report['not_in_data'])}")
            console.print(f"wrote {out / (args.split + '.json')}, " + ", ".join(str(p) for p in plots))
            if args.update_bundle:
                update_bundle_metrics(args.bundle, {args.split: report})
                console.print(f"updated {args.bundle}'s model.json: metrics.{args.split}")
        if args.real:
            rep = evaluate_real(args.bundle, args.real, rms_floor_db=args.rms_floor_db, threads=args.threads)
            write_json_atomic(out / "real.json", rep)
            written.append("real.json")
            console.print(format_real_table(rep))
            tg = rep["targets"]
            for group, rows in (("single-instrument (labelled tag on >= 70% of sounding frames)",
                                 tg["single_instrument"]),
                                ("no music (every tag off on >= 90% of frames)", tg["no_music"]),
                                ("speech (singing on <= 10% of frames)", tg["speech_no_singing"])):
                passed = sum(r["pass"] for r in rows.values())
                console.print(f"{group}: {passed}/{len(rows)} pass"
                              + ("" if passed == len(rows) else
                                 " (fail: " + ", ".join(k for k, r in rows.items() if not r["pass"]) + ")"))
            if tg.get("unmeasured"):
                console.print(f"single-instrument, not measured (no frame above --rms-floor-db "
                              f"{rep['rms_floor_db']:g} dBFS): {', '.join(tg['unmeasured'])}")
            left_out = sorted({t for f in rep["files"].values() for t in f.get("not_in_bundle", ())})
            if left_out:
                console.print(f"not scored (labelled, but the bundle has no such tag): {', '.join(left_out)}")
            on = rep["onsets"]
            if on["n"]:
                med = "-" if on["median_s"] is None else f"{1000 * on['median_s']:.0f} ms"
                console.print(f"labelled tag's first on after the sound starts: median {med} over the "
                              f"{on['n'] - on['never']} of {on['n']} (file, tag) pairs of real recordings in which "
                              f"it came on (never on in {on['never']})")
            if on.get("unmeasured"):
                console.print(f"labelled tag's first on: not timed for {on['unmeasured']} (file, tag) pair(s) whose "
                              f"recording has no sample above --rms-floor-db {rep['rms_floor_db']:g} dBFS")
            console.print(f"wrote {out / 'real.json'}")
            if args.update_bundle:
                summary = {"data": Path(args.real).name, "rms_floor_db": rep["rms_floor_db"], "targets": tg,
                           "onsets": on,
                           "labelled_on_fraction": {k: {t: f["on_fraction_sounding"][t] for t in f["labelled"]}
                                                    for k, f in rep["files"].items() if f["labelled"]}}
                update_bundle_metrics(args.bundle, {"real": summary})
                console.print(f"updated {args.bundle}'s model.json: metrics.real")
        if args.held_notes:
            from ..model.classifier import Classifier
            from ..train.held_notes import format_held_notes, held_note_table

            clf = Classifier.load(args.bundle, backend="onnx", threads=args.threads)
            with console.status("rendering and tagging held notes") as status:
                rows = held_note_table(clf, fonts, programs, step=args.key_step,
                                       progress=lambda msg: status.update(f"held notes: {msg}"))
            write_json_atomic(out / "held_notes.json", rows)
            written.append("held_notes.json")
            console.print(format_held_notes(rows))
            if skipped_programs:
                console.print(f"left out (the bundle has no tag for them): programs "
                              f"{', '.join(map(str, skipped_programs))}")
            console.print(f"wrote {out / 'held_notes.json'}")
        # a report folder used before keeps the other kinds of report: said, so they are not read as this run's
        older = sorted(n for n in (*(f"{s}.json" for s in SPLITS), "pr_curves.png", "per_tag.png", "real.json",
                                   "held_notes.json") if n not in written and (out / n).is_file())
        if older:
            console.print(f"note: {out} also holds {', '.join(older)} from an earlier evaluation (not this one's)")
    return 0
