"""``rtclassify tag``: tag audio files offline through the streaming engine."""

from __future__ import annotations

import argparse
import sys

from ._args import (DEFAULT_HOP_MS, UsageError, add_backend, channel, check_not_an_input, check_technique_rate,
                    drop_stdout, nonempty, seconds, threads)

from ..model.classifier import OFFLINE_THREADS

NAME = "tag"
HELP = "tag audio files offline (same engine as live audio): per-frame probabilities and on/off events"
DESCRIPTION = """\
Tag audio files offline. Each file goes through the same streaming engine as
live audio (resampling, native log-mel frontend, model every hop, decoder), so
it gives the outputs and events the file would give played live.

inputs:
  Each FILE is an audio file (WAV, FLAC, OGG, MP3, AIFF, ...). A folder is not
  searched: name its files (DIR/*.wav). Standard input (-) or a pipe is read
  once, as the only FILE, as a WAV or Ogg stream (a format libsndfile cannot
  read: ffmpeg -i take.m4a -f wav - | rtclassify tag -).

output:
  The format follows --out's extension: .csv, or .jsonl or .ndjson; --format
  sets it for any other (.txt, none) and for standard output (default jsonl).
  An extension that names the other format is an error, and so is .json: the
  output is JSON lines, one object a line, which json.load cannot read.

  jsonl: one object per model output,
    {"time": s, "probs": {tag: p}, "active": [tags], "pitch": Hz or null,
     "vibrato": {"on", "rate", "extent"}, "tremolo": {"on", "rate", "depth"}}
  (pitch, vibrato and tremolo come from the trackers, on unless
  --no-techniques), each followed by the events decided at that output,
    {"time": s, "event": "on"|"off", "tag": name}   ("on" adds "prob").
  Vibrato and tremolo switches come at their own time, before the first output
  after it (the times never go back),
    {"time": s, "event": "on"|"off", "technique": "vibrato"|"tremolo"}
  ("on" adds "rate" and "extent" or "depth"). "time" is the centre, in
  seconds, of the frame an output refers to; tags still on at the end of a
  file get an "off" at the file's duration.

  csv: a header, then one row per output:
    time,<tag>,...,pitch,vibrato,vibrato_rate,vibrato_extent,tremolo,
    tremolo_rate,tremolo_depth
  (the tracker columns unless --no-techniques; pitch is empty where none).

  With several files (or --with-file) every object gets a "file" field, and
  every row a leading file column (a name that is not valid UTF-8 has its
  bytes written as \\xNN). --out is written to a temporary file that replaces
  PATH only when the run succeeds (with --keep-going, when some file was
  tagged), so a failed run leaves an existing PATH as it was; a write-protected
  PATH is refused unless --force.

  --plot PNG draws the waveform above a tag-activity heatmap (needs
  matplotlib: the plot extra); with several files one PNG each,
  NAME-<file stem>.png (NAME-<file stem>-2.png and so on for a repeated stem).

exit status:
  0    every file was tagged
  1    an error, said in one line (an existing --out is left as it was)
  2    wrong arguments
  3    --keep-going: some files failed, each said in one line; the others
       were tagged and written
  130  interrupted (Ctrl-C)
"""

#: exit status of a --keep-going run in which some files failed and the others were tagged
SOME_FAILED = 3

_PROB_DIGITS = 5
#: what to do with audio that is not a file (standard input, a pipe)
_STREAM_HINT = "save the stream to a file first, or tag it alone: a WAV or Ogg stream is read once"

FORMATS = ("jsonl", "csv")
#: output file extensions and the format each implies
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: an output file extension that names a format tag does not write (a reader would take its JSON lines for JSON)
_JSON = ".json"


#: file names may come after options (``tag a.wav --out x.csv b.wav``): rtclassify.cli parses this command with
#: argparse's parse_intermixed_args
INTERMIXED = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files (WAV, FLAC, OGG, MP3, AIFF, ...; not a folder; - or a pipe alone)")
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
    parser.add_argument("--keep-going", action="store_true",
                        help=f"a file that cannot be read or tagged is said in one line and left out, the others "
                             f"are tagged and written; the exit status is then {SOME_FAILED} (default: stop at the "
                             f"first such file, exit status 1)")
    parser.add_argument("--with-file", action="store_true",
                        help="the file field or column for a single FILE too (as several files get it: a script "
                             "that tags one file at a time into one output keeps the names)")
    parser.add_argument("--force", action="store_true",
                        help="replace a write-protected --out or --plot file (refused without it)")


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
    --out's extension (jsonl when it has none of them, and for standard output). An --out ending in .json is
    refused: its JSON lines are not the one JSON document a .json file holds."""
    from pathlib import Path

    from ..errors import ParameterError

    suffix = Path(out).suffix.lower() if out != "-" else ""
    if suffix == _JSON:
        raise ParameterError(f"--out {out}: tag writes no .json file (one JSON document): its jsonl output is one "
                             f"object a line, which json.load cannot read; name it .jsonl (or .csv for CSV)")
    implied = _EXTENSIONS.get(suffix)
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


def _check_not_write_protected(path: str, option: str, force: bool) -> None:
    """Fails before any work when ``path`` is a regular file that is write-protected (not writable for this user,
    or by nobody, as ``chmod 444`` leaves it, which root could write over): moving the new file over it needs only
    its folder writable, so it would be replaced without a word. ``force``: replace it."""
    import os
    import stat

    from ..errors import SinkError

    if force:
        return
    try:
        st = os.stat(path)
    except OSError:
        return  # nothing there (or nothing this user may look at: opening it will say so)
    if stat.S_ISREG(st.st_mode) and (not st.st_mode & 0o222 or not os.access(path, os.W_OK)):
        raise SinkError(f"{option} {path}: is write-protected; pass --force to replace it, or give another file")


def _say(line: str) -> None:
    """Print ``line`` on standard error (closed, ``2>&-``, it is os.devnull: :func:`rtclassify.cli.main`)."""
    print(line, file=sys.stderr)


def _is_stream(path: str) -> bool:
    """Whether ``path`` is standard input (``-``) or a pipe (``<(...)``, a named pipe): audio read once."""
    import os
    import stat

    if path == "-":
        return True
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False  # info() names a missing or unreadable file


def _check_file(path: str, args: argparse.Namespace):
    """The :class:`~rtclassify.audio.files.AudioInfo` of one input, after the checks made before any output (a
    file missing, unreadable or damaged, at a rate the engine or the trackers do not take, without --channel's
    channel); each raises a one-line error naming the file. None for standard input or a pipe, the only FILE:
    read once, by the tagging (which checks it as it opens it)."""
    from ..audio import files as audio_files
    from ..engine.session import check_sample_rate
    from ..errors import RtclassifyError

    if _is_stream(path):
        # its header would be read once for the checks and be gone for the tagging: the only input, read once
        if len(args.files) == 1:
            return None
        what = "standard input" if path == "-" else "a pipe"
        raise RtclassifyError(f"{path}: {what} can be tagged as the only FILE, not among others ({_STREAM_HINT})")
    inf = audio_files.info(path)  # one clear line for a missing/unsupported file
    if inf.truncation:
        _say(f"warning: {inf.truncation}")
    # before any output: a later file's rate would otherwise fail after earlier files went out
    check_sample_rate(inf.sample_rate, f"{inf.path}: the sample rate")
    if args.techniques and inf.frames:
        check_technique_rate(inf.sample_rate, inf.path)
    if args.channel is not None and args.channel >= inf.channels:
        raise RtclassifyError(f"{inf.path}: has {inf.channels} channel(s); --channel {args.channel} is out of range")
    return inf


def _reworded(exc: Exception, text: str) -> Exception:
    """One of the package's errors with the message ``text``, of ``exc``'s class where it can be made from a
    message alone."""
    from ..errors import RtclassifyError

    try:
        new = type(exc)(text)
    except TypeError:
        new = RtclassifyError(text)
    return new if str(new) == text else RtclassifyError(text)


def _with_hint(exc: Exception, hint: str) -> Exception:
    """``exc`` (one of the package's errors) with ``hint`` added to its message."""
    return _reworded(exc, f"{exc} ({hint})")


def run(args: argparse.Namespace) -> int:
    """Tag ``args.files``; returns the exit status (0, or :data:`SOME_FAILED` when --keep-going left files out)."""
    import os
    import stat

    from ..errors import MissingDependencyError, RtclassifyError, SinkError, require
    from ..model.bundle import default_bundle_path
    from ..model.classifier import Classifier

    if args.out == "-" and sys.stdout is None:  # (started with standard output closed: `>&-`)
        raise SinkError("standard output is closed; use --out FILE")
    several = len(args.files) > 1
    keep_going = getattr(args, "keep_going", False)  # (a Namespace made by a caller of an older version)
    force = getattr(args, "force", False)
    # an output that is an input is refused first (a file given that is a folder stands for no input: it is refused
    # as a folder)
    inputs = [("one of the audio files to tag", f) for f in args.files if not os.path.isdir(f)]
    inputs.append(("a file of the model bundle", args.bundle or default_bundle_path()))
    check_not_an_input("--out", args.out, inputs)
    pngs = plot_paths(args.plot, args.files) if args.plot else None  # (a file left out keeps its plot's name)
    for png in pngs or ():
        check_not_an_input("--plot", png, inputs)
        if args.out != "-" and os.path.abspath(png) == os.path.abspath(args.out):
            raise UsageError(f"--plot {png} is the --out file; give another name")
    fmt = output_format(args.format, args.out)
    if args.plot:
        require("matplotlib", extra="plot")
        _check_writable_folder(args.plot, "--plot")
        _check_plot_format(args.plot)
    if args.out != "-":
        if not os.path.exists(args.out) or os.path.isdir(args.out) or stat.S_ISREG(os.stat(args.out).st_mode):
            _check_writable_folder(args.out, "--out")  # (a device or pipe is written directly)
        _check_not_write_protected(args.out, "--out", force)
    for png in pngs or ():
        _check_not_write_protected(png, "--plot", force)

    failed: list[str] = []  # the files left out (--keep-going)

    def file_failed(path: str, exc: RtclassifyError) -> None:
        """A file that cannot be read or tagged: with --keep-going said in one line and left out, else raised."""
        if isinstance(exc, (MissingDependencyError, SinkError)) or not several:
            raise exc  # (a missing package or an output fault is not the file's: every file would fail alike)
        if not keep_going:
            raise _with_hint(exc, "--keep-going leaves such a file out and tags the others") from exc
        _say(f"rtclassify {NAME}: error: {exc} (left out: --keep-going)")
        failed.append(path)

    todo = []  # (index in args.files, path, info) of the files that passed the checks
    for n, path in enumerate(args.files):
        try:
            todo.append((n, path, _check_file(path, args)))
        except RtclassifyError as exc:
            file_failed(path, exc)
    if not todo:
        raise RtclassifyError(f"none of the {len(args.files)} files can be tagged (each is said above)")
    clf = Classifier.load(args.bundle, backend=args.backend, threads=args.threads)
    for _, _, inf in todo:
        narrow = clf.bundle.narrow_band(inf.sample_rate, str(inf.path)) if inf is not None else None
        if narrow:
            _say(f"warning: {narrow}")

    target = None if args.out == "-" else _AtomicOutput(args.out)
    plots: list = []  # the plots, written beside their paths and moved there with --out once every file is tagged
    out = sys.stdout if target is None else target.file
    where = "standard output" if target is None else args.out
    show_progress = sys.stderr.isatty()
    header = True  # (CSV: before the first file written)
    try:
        for n, path, inf in todo:
            source = "/dev/stdin" if path == "-" else path  # (standard input or a pipe: opened once, as it comes)
            try:
                if inf is None:
                    result = clf.tag_file(source, channel=args.channel, hop=args.hop, techniques=args.techniques)
                    narrow = clf.bundle.narrow_band(result.sample_rate, path)
                    if narrow:
                        _say(f"warning: {narrow}")
                    if result.missing_frames:  # (a writer that died: its header declared more)
                        sr = result.sample_rate
                        _say(f"warning: {path}: the stream is cut short: its header declares "
                             f"{result.duration + result.missing_frames / sr:.3f} s of audio and "
                             f"{result.duration:.3f} s came; only that is tagged")
                elif show_progress and inf.duration > 20:
                    from rich.console import Console
                    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

                    with Progress(TextColumn("{task.description}"), BarColumn(),
                                  TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                                  console=Console(stderr=True), transient=True) as bar:
                        task = bar.add_task(f"tagging {path}", total=max(inf.frames, 1))
                        result = clf.tag_file(path, channel=args.channel, hop=args.hop, techniques=args.techniques,
                                              progress=lambda done, total: bar.update(task, completed=done))
                else:
                    result = clf.tag_file(path, channel=args.channel, hop=args.hop, techniques=args.techniques)
            except RtclassifyError as exc:  # (damaged inside, past what the checks read)
                if path == "-":  # named as the user gave it
                    exc = _reworded(exc, str(exc).replace("/dev/stdin", "- (standard input)"))
                file_failed(path, exc)
                continue
            if result.nonfinite_replaced:
                _say(f"warning: {path}: {result.nonfinite_replaced} NaN or infinite sample(s) were taken as 0")
            frames = inf.frames if inf is not None else int(round(result.duration * result.sample_rate))
            if not frames:
                _say(f"{path}: no samples: nothing to tag" + (", no plot" if pngs else ""))
            elif not len(result):
                _say(f"{path}: {frames} sample(s) ({frames / result.sample_rate * 1000:.3g} ms) are fewer "
                     f"than one output of the model needs: nothing to tag")
            file_field = path if several or getattr(args, "with_file", False) else None
            try:
                if fmt == "jsonl":
                    write_jsonl(out, result, file_field)
                else:
                    write_csv(out, result, file_field, header=header)
                    header = False
                out.flush()
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise SinkError(f"cannot write to {where} ({exc.strerror or exc})") from exc
            if pngs and frames:
                plots.append(_AtomicOutput(pngs[n], binary=True))
                plot(result, path, pngs[n], args.channel, plots[-1].file)
                plots[-1].close()
        if len(failed) == len(args.files):
            raise RtclassifyError(f"none of the {len(args.files)} files could be tagged (each is said above)")
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
        return SOME_FAILED if failed else 0
    finally:
        if target is not None:
            target.discard()
        for p in plots:
            p.discard()
    if failed:
        _say(f"rtclassify {NAME}: {len(failed)} of {len(args.files)} files failed and were left out (each is said "
             f"above); the others were tagged and written to {where}")
        return SOME_FAILED
    return 0
