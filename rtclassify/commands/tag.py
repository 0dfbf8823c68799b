"""``rtclassify tag``: tag audio files offline through the streaming engine."""

from __future__ import annotations

import argparse
import sys

from ._args import (DEFAULT_HOP_MS, UsageError, add_backend, channel, check_not_an_input, check_technique_rate,
                    drop_stdout, nonempty, seconds, threads)

from ..model.classifier import OFFLINE_THREADS

NAME = "tag"
HELP = "tag audio files offline (same engine as live audio): per-frame probabilities and on/off events"
DESCRIPTION = (
    "Tag audio files offline. Each file goes through the same streaming engine as live audio (resampling, "
    "native log-mel frontend, model every hop, decoder), so it gives the same outputs and events as the file "
    "played live. "
    "jsonl (default) writes one object per model output, {\"time\": s, \"probs\": {tag: p}, \"active\": [tags]}, "
    "each followed by the events decided at that output, {\"time\": s, \"event\": \"on\"|\"off\", \"tag\": name} "
    "(\"on\" also carries \"prob\"); vibrato/tremolo switches, {\"time\": s, \"event\": \"on\"|\"off\", "
    "\"technique\": \"vibrato\"|\"tremolo\"} (\"on\" also carries \"rate\" and \"extent\" or \"depth\"), come "
    "at their own time, before the first output after it (the times never go back); "
    "\"time\" is the time in seconds of the frame the output refers to, and "
    "tags still on at the end of a file get an \"off\" at the file's duration. "
    "csv writes a header time,<tag>,... and one row of probabilities per output. "
    "The format follows --out's extension (.csv, or .jsonl or .ndjson); --format sets it for any other (an "
    "extension that "
    "names the other format is an error). "
    "With several files every object or row gets a \"file\" field or column (the bytes of a name that is not "
    "valid UTF-8 written as \\xNN). "
    "--out is written to a temporary file that replaces PATH only when every file was tagged, so a failed run "
    "leaves an existing PATH as it was. "
    "--plot PNG draws the waveform above a tag-activity heatmap (needs matplotlib: the plot extra); with several "
    "files it writes one PNG per file, NAME-<file stem>.png (NAME-<file stem>-2.png and so on for a repeated stem)."
)

_PROB_DIGITS = 5
#: what to do with audio that is not a file (standard input, a pipe)
_STREAM_HINT = "save the stream to a file first, or use Classifier.tag_file, which reads a WAV or Ogg stream once"

FORMATS = ("jsonl", "csv")
#: output file extensions and the format each implies
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG, MP3, AIFF, ...)")
    parser.add_argument("--format", choices=FORMATS,
                        help="output format (default: csv for an --out ending in .csv, else jsonl)")
    parser.add_argument("--out", metavar="PATH", type=nonempty("a file (or -)"),
                        default="-", help="output file (default: standard output)")
    parser.add_argument("--plot", metavar="PNG", type=nonempty("a PNG file"),
                        help="also draw waveform + tag heatmap into this PNG")
    parser.add_argument("--bundle", metavar="B", type=nonempty("a bundle folder or zip"),
                        help="model bundle folder or zip (default: the shipped model)")
    add_backend(parser)
    parser.add_argument("--threads", type=threads, default=OFFLINE_THREADS, metavar="N",
                        help=f"inference threads (default: the CPU's cores up to 8, {OFFLINE_THREADS} here; a file "
                             f"is not real time, so it takes what the machine has)")
    parser.add_argument("--hop", type=_positive_float, metavar="SEC",
                        help=f"time between model outputs in seconds, rounded to whole frontend hops (16 ms for the "
                             f"shipped model; default: the bundle's; {DEFAULT_HOP_MS:g} ms for the shipped model)")
    parser.add_argument("--channel", type=_channel, metavar="C",
                        help="use channel C (0-based) of multi-channel files (default: average all channels)")
    parser.add_argument("--no-techniques", dest="techniques", action="store_false",
                        help="skip the pitch, vibrato and tremolo trackers (frames then carry no pitch/vibrato/"
                        "tremolo fields)")


_channel = channel


_positive_float = seconds


def plot_paths(base: str, files: list[str]) -> list[str]:
    """The PNG of each file: ``base`` for one file, else ``NAME-<stem>.png``, made unique for repeated stems."""
    from pathlib import Path

    if len(files) == 1:
        return [base]
    p = Path(base)
    suffix = p.suffix or ".png"
    out, taken = [], set()
    for f in files:
        stem = Path(f).stem
        name, k = f"{p.stem}-{stem}{suffix}", 1
        # a stem that ends in -2 may be another file's second name: count on until the name is free
        # (compared without case, as a case-insensitive file system would)
        while name.casefold() in taken:
            k += 1
            name = f"{p.stem}-{stem}-{k}{suffix}"
        taken.add(name.casefold())
        out.append(str(p.with_name(name)))
    return out


def file_text(path: str) -> str:
    """``path`` as text that any UTF-8 output can hold: the bytes of a name that is not valid UTF-8 (which
    Python holds as surrogates) are written as ``\\xNN``; other names are returned as they are."""
    import os

    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    return path


def output_format(fmt: str | None, out: str) -> str:
    """The format to write: ``--format`` when given (refused when --out's extension says the other), else from
    --out's extension (jsonl when it has none of them, and for standard output)."""
    from pathlib import Path

    from ..errors import ParameterError

    implied = _EXTENSIONS.get(Path(out).suffix.lower()) if out != "-" else None
    if fmt is None:
        return implied or "jsonl"
    if implied is not None and implied != fmt:
        raise ParameterError(f"--out {out} ends in {Path(out).suffix} but --format is {fmt}; give an --out that "
                             f"matches, or leave --format out")
    return fmt


def write_jsonl(out, result, file: str | None) -> None:
    """Write one result as JSON lines (frames, each followed by the tag events it decided; a vibrato or tremolo
    switch before the first frame after its time); ``file`` as :func:`file_text` gives it."""
    import json

    labels = result.labels
    dumps = json.dumps
    times, probs = result.times, result.probs  # (a row at a time: the whole as lists took ~0.5 kB an output)
    active = result.active
    ev, ev_t = result.events, result.event_times.tolist()
    j = 0
    head = {"file": file_text(file)} if file is not None else {}

    def event_line(e, t):
        d = dict(head)
        d["time"] = round(t, 6)
        if e.kind in ("on", "off"):
            d.update(event=e.kind, tag=e.tag)
            if e.kind == "on":
                d["prob"] = round(e.prob, _PROB_DIGITS)
        else:  # vibrato_on / vibrato_off / tremolo_on / tremolo_off
            technique, state = e.kind.split("_")
            d.update(event=state, technique=technique)
            if state == "on":
                d.update({k: round(getattr(e, k), 3) for k in ("rate", "extent", "depth") if hasattr(e, k)})
        return dumps(d)

    # tag events at the time of the output that decided them, technique switches at their own time
    pending = sorted([(t, 0, n, e) for n, (e, t) in enumerate(zip(ev, ev_t)) if e.kind in ("on", "off")]
                     + [(e.stream_time, 1, n, e) for n, e in enumerate(result.technique_events)],
                     key=lambda x: x[:3])
    techniques = result.techniques
    for i in range(len(times)):
        t = float(times[i])
        while j < len(pending) and pending[j][0] < t:  # a switch before this line's time goes before it
            out.write(event_line(pending[j][3], pending[j][0]) + "\n")
            j += 1
        d = dict(head)
        d["time"] = round(t, 6)
        d["probs"] = {tag: round(p, _PROB_DIGITS) for tag, p in zip(labels, probs[i].tolist())}
        d["active"] = [labels[k] for k in active[i].nonzero()[0]]
        if techniques is not None:
            d.update(_rounded_technique(techniques[i]))
        out.write(dumps(d) + "\n")
        while j < len(pending) and pending[j][0] <= t:
            out.write(event_line(pending[j][3], pending[j][0]) + "\n")
            j += 1
    for t, _, _, e in pending[j:]:
        out.write(event_line(e, t) + "\n")


def _rounded_technique(tech: dict) -> dict:
    pitch = tech["pitch"]
    return {
        "pitch": None if pitch is None else round(pitch, 2),
        "vibrato": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in tech["vibrato"].items()},
        "tremolo": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in tech["tremolo"].items()},
    }


def write_csv(out, result, file: str | None, header: bool) -> None:
    """Write one result as CSV rows (time + one probability column per tag); ``file`` as :func:`file_text` gives it."""
    import csv

    from ..model.bundle import TECHNIQUE_COLUMNS

    w = csv.writer(out, lineterminator="\n")
    tech = result.techniques
    tech_cols = list(TECHNIQUE_COLUMNS) if tech is not None else []
    if header:
        w.writerow((["file"] if file is not None else []) + ["time"] + list(result.labels) + tech_cols)
    lead = [file_text(file)] if file is not None else []
    for i, (t, row) in enumerate(zip(result.times, result.probs)):
        t, row = float(t), row.tolist()
        extra = []
        if tech is not None:
            x = tech[i]
            v, r = x["vibrato"], x["tremolo"]
            extra = ["" if x["pitch"] is None else f"{x['pitch']:.2f}", int(v["on"]), f"{v['rate']:.3f}",
                     f"{v['extent']:.3f}", int(r["on"]), f"{r['rate']:.3f}", f"{r['depth']:.3f}"]
        w.writerow(lead + [f"{t:.6f}"] + [f"{p:.{_PROB_DIGITS}f}" for p in row] + extra)


def plot(result, path_audio: str, png: str, channel: int | None, file) -> None:
    """Waveform (min/max envelope) above a heatmap of tag probabilities with the active spans marked, written to
    the binary ``file`` (the temporary file of ``png``) in the format ``png``'s extension names (PNG without one;
    ``png`` names the plot in errors)."""
    import numpy as np

    from ..audio import files
    from ..errors import require

    matplotlib = require("matplotlib", extra="plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = files.info(path_audio)
    n_bins = 2000
    per = max(1, int(np.ceil(info.frames / n_bins)))
    lo, hi = [], []
    carry = np.zeros(0, np.float32)
    for block in files.iter_blocks(path_audio, max(per, 65536 // per * per), channel):
        x = np.concatenate([carry, block])
        k = len(x) // per
        if k:
            seg = x[: k * per].reshape(k, per)
            lo.append(seg.min(axis=1))
            hi.append(seg.max(axis=1))
        carry = x[k * per:]
    if len(carry):
        lo.append(carry.min(keepdims=True))
        hi.append(carry.max(keepdims=True))
    lo = np.concatenate(lo) if lo else np.zeros(1)
    hi = np.concatenate(hi) if hi else np.zeros(1)
    tw = (np.arange(len(lo)) + 0.5) * per / info.sample_rate

    labels = result.labels
    fig, (ax_w, ax_h) = plt.subplots(2, 1, sharex=True, figsize=(12, 2 + 0.3 * len(labels)),
                                     gridspec_kw={"height_ratios": [1, max(2, len(labels) / 4)]})
    ax_w.fill_between(tw, lo, hi, color="0.3", linewidth=0)
    ax_w.set_ylabel("amplitude")
    ax_w.set_ylim(-1.05, 1.05)
    ax_w.set_title(file_text(path_audio))
    if len(result.times):
        dt = float(np.median(np.diff(result.times))) if len(result.times) > 1 else info.duration or 1.0
        extent = [result.times[0] - dt / 2, result.times[-1] + dt / 2, len(labels) - 0.5, -0.5]
        im = ax_h.imshow(result.probs.T, aspect="auto", interpolation="nearest", extent=extent, vmin=0, vmax=1,
                         cmap="magma")
        for k in range(len(labels)):
            on = result.active[:, k]
            if not on.any():
                continue
            edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
            for a, b in zip(edges[::2], edges[1::2]):
                ax_h.hlines(k + 0.35, result.times[a] - dt / 2, result.times[b - 1] + dt / 2, colors="cyan",
                            linewidth=2.5)
        fig.colorbar(im, ax=[ax_w, ax_h], label="probability (cyan: on)", fraction=0.03, pad=0.01)
    ax_h.set_yticks(range(len(labels)), labels)
    ax_h.set_xlabel("time (s)")
    ax_h.set_xlim(0, max(info.duration, float(result.times[-1]) if len(result.times) else 0.0, 1e-3))
    try:
        import os

        fig.savefig(file, format=os.path.splitext(png)[1].lstrip(".").lower() or "png", dpi=100, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        from ..errors import SinkError

        raise SinkError(f"{png}: cannot write the plot ({getattr(exc, 'strerror', None) or exc})") from exc
    finally:
        plt.close(fig)


def _check_writable_folder(path: str, option: str) -> None:
    """Fails before any work when ``path`` is a folder, or the folder that will hold it is missing or not writable."""
    import os

    from ..errors import SinkError

    if os.path.isdir(path):
        raise SinkError(f"{option} {path}: is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SinkError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise SinkError(f"{option} {path}: the folder {folder} is not writable")


def _check_plot_format(path: str) -> None:
    """Fails before any work when matplotlib cannot write ``path``'s extension."""
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..errors import ParameterError

    kinds = FigureCanvasAgg.get_supported_filetypes()
    ext = Path(path).suffix.lower().lstrip(".")
    if ext and ext not in kinds:
        raise ParameterError(f"--plot {path}: matplotlib cannot write .{ext} files; use one of "
                             f"{', '.join('.' + k for k in sorted(kinds))}")


class _AtomicOutput:
    """A text file (``binary``: a binary one) written next to ``path`` and moved over it by :meth:`commit` (an
    existing ``path`` stays as it was until then, and for good when the run fails). A ``path`` that exists and is
    not a regular file (a device such as /dev/stdout, a named pipe) is written directly."""

    def __init__(self, path: str, binary: bool = False):
        import os
        import stat
        import tempfile

        from ..errors import SinkError

        # through a symbolic link: the file it points to is replaced, the link stays
        folder, name = os.path.split(os.path.realpath(path))
        self.path = os.path.join(folder, name)
        self.tmp = None
        try:
            mode = {"mode": "wb"} if binary else {"mode": "w", "encoding": "utf-8", "newline": ""}
            if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
                self.file = open(path, **mode)
                return
            fd, self.tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        except OSError as exc:
            raise SinkError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        self.file = os.fdopen(fd, **mode)

    def close(self) -> None:
        """Close the file (written whole); :meth:`commit` then moves it over ``path`` (many can wait for that
        without holding a file open each)."""
        self.file.close()

    def commit(self) -> None:
        import os

        self.file.close()
        if self.tmp is None:
            return
        if os.path.exists(self.path):  # keep the permissions of the file it replaces
            os.chmod(self.tmp, os.stat(self.path).st_mode & 0o7777)
        else:
            from ..model.bundle_write import new_file_mode

            os.chmod(self.tmp, new_file_mode())
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        import os

        try:
            self.file.close()
        except OSError:
            pass
        if self.tmp is None:
            return
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def run(args: argparse.Namespace) -> int:
    import os
    import stat

    from ..audio import files as audio_files
    from ..engine.session import check_sample_rate
    from ..errors import RtclassifyError, SinkError, require
    from ..model.classifier import Classifier

    fmt = output_format(args.format, args.out)
    for f in args.files:
        if f == "-":
            raise RtclassifyError(f"-: rtclassify tag reads audio files, not standard input ({_STREAM_HINT})")
        try:
            pipe = stat.S_ISFIFO(os.stat(f).st_mode)
        except OSError:
            pipe = False  # info() names a missing or unreadable file
        if pipe:
            # its header would be read once for the checks and be gone for the tagging
            raise RtclassifyError(f"{f}: is a pipe; rtclassify tag reads audio files ({_STREAM_HINT})")
    infos = [audio_files.info(f) for f in args.files]  # one clear line for a missing/unsupported file
    for inf in infos:
        if inf.truncation:
            print(f"warning: {inf.truncation}", file=sys.stderr)
    for inf in infos:  # before any output: a later file's rate would otherwise fail after earlier files went out
        check_sample_rate(inf.sample_rate, f"{inf.path}: the sample rate")
    if args.techniques:
        for inf in infos:
            if inf.frames:
                check_technique_rate(inf.sample_rate, inf.path)
    if args.channel is not None:
        for inf in infos:
            if args.channel >= inf.channels:
                raise RtclassifyError(f"{inf.path}: has {inf.channels} channel(s); --channel {args.channel} "
                                      f"is out of range")
    if args.plot:
        require("matplotlib", extra="plot")
        _check_writable_folder(args.plot, "--plot")
        _check_plot_format(args.plot)
    if args.out != "-":
        if not os.path.exists(args.out) or os.path.isdir(args.out) or stat.S_ISREG(os.stat(args.out).st_mode):
            _check_writable_folder(args.out, "--out")  # (a device or pipe is written directly)
    from ..model.bundle import default_bundle_path

    inputs = [("one of the audio files to tag", f) for f in args.files]
    inputs.append(("a file of the model bundle", args.bundle or default_bundle_path()))
    check_not_an_input("--out", args.out, inputs)
    pngs = plot_paths(args.plot, args.files) if args.plot else None
    for png in pngs or ():
        check_not_an_input("--plot", png, inputs)
        if args.out != "-" and os.path.abspath(png) == os.path.abspath(args.out):
            raise UsageError(f"--plot {png} is the --out file; give another name")
    clf = Classifier.load(args.bundle, backend=args.backend, threads=args.threads)
    for inf in infos:
        narrow = clf.bundle.narrow_band(inf.sample_rate, str(inf.path))
        if narrow:
            print(f"warning: {narrow}", file=sys.stderr)
    several = len(args.files) > 1

    target = None if args.out == "-" else _AtomicOutput(args.out)
    plots: list = []  # the plots, written beside their paths and moved there with --out once every file is tagged
    out = sys.stdout if target is None else target.file
    where = "standard output" if target is None else args.out
    show_progress = sys.stderr.isatty()
    try:
        for n, (path, inf) in enumerate(zip(args.files, infos)):
            if inf.frames == 0:
                print(f"{path}: no samples: nothing to tag" + (", no plot" if pngs else ""), file=sys.stderr)
            if show_progress and inf.duration > 20:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

                with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                              TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
                    task = bar.add_task(f"tagging {path}", total=max(inf.frames, 1))
                    result = clf.tag_file(path, channel=args.channel, hop=args.hop, techniques=args.techniques,
                                          progress=lambda done, total: bar.update(task, completed=done))
            else:
                result = clf.tag_file(path, channel=args.channel, hop=args.hop, techniques=args.techniques)
            if result.nonfinite_replaced:
                print(f"warning: {path}: {result.nonfinite_replaced} NaN or infinite sample(s) were taken as 0",
                      file=sys.stderr)
            if inf.frames and not len(result):
                print(f"{path}: {inf.frames} sample(s) ({inf.frames / inf.sample_rate * 1000:.3g} ms) are fewer than "
                      f"one output of the model needs: nothing to tag", file=sys.stderr)
            file_field = path if several else None
            try:
                if fmt == "jsonl":
                    write_jsonl(out, result, file_field)
                else:
                    write_csv(out, result, file_field, header=(n == 0))
                out.flush()
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise SinkError(f"cannot write to {where} ({exc.strerror or exc})") from exc
            if pngs and inf.frames:
                plots.append(_AtomicOutput(pngs[n], binary=True))
                plot(result, path, pngs[n], args.channel, plots[-1].file)
                plots[-1].close()
        if target is not None:
            try:
                target.commit()
            except OSError as exc:
                raise SinkError(f"{args.out}: cannot write ({exc.strerror or exc})") from exc
            target = None
        while plots:
            try:
                plots[0].commit()
            except OSError as exc:
                raise SinkError(f"{plots[0].path}: cannot write the plot ({exc.strerror or exc})") from exc
            plots.pop(0)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly
        if target is None:
            drop_stdout()
        return 0
    finally:
        if target is not None:
            target.discard()
        for p in plots:
            p.discard()
    return 0
