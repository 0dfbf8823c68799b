"""argparse value types shared by the commands (a bad value is a one-line usage error, exit 2)."""

from __future__ import annotations

import argparse
import math
from typing import Callable

from ..errors import ParameterError

#: the shipped model's hop in milliseconds, for --help (3 frames of 256 samples at 16 kHz; a test checks it against
#: the bundle, which --help does not read)
DEFAULT_HOP_MS = 48


def number(kind: type, what: str, lo: float | None = None, hi: float | None = None, *,
           above: float | None = None, unit: str = "") -> Callable[[str], float]:
    """An argparse ``type=`` that parses ``kind`` (int or float) and checks its range.

    Parameters
    ----------
    kind : type
        ``int`` or ``float``.
    what : str
        What the value is, for the parse error: ``"expected <what>, got '...'"``.
    lo, hi : float, optional
        Inclusive bounds.
    above : float, optional
        Exclusive lower bound (``must be > above``).
    unit : str
        Unit named in the range error (``"must be 16-65536 frames"``).
    """

    def b(x) -> str:  # a bound as written: whole numbers in full (2**32 - 1, not 4.29497e+09)
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if above is not None and not v > above:
            raise argparse.ArgumentTypeError(f"must be > {b(above)}, got {text!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            if hi is None:
                raise argparse.ArgumentTypeError(f"must be >= {b(lo)}, got {text!r}")
            if lo is None:
                raise argparse.ArgumentTypeError(f"must be <= {b(hi)}{unit}, got {text!r}")
            span = f"{b(lo)}-{b(hi)}" if lo >= 0 else f"from {b(lo)} to {b(hi)}"  # not "-200-0"
            raise argparse.ArgumentTypeError(f"must be {span}{unit}, got {text!r}")
        return v

    parse.__name__ = kind.__name__  # argparse names the type in "invalid <name> value" messages
    return parse


#: a positive number of seconds (``--hop``, ``--duration``)
seconds = number(float, "a number of seconds", above=0)
#: a 0-based input channel
channel = number(int, "a channel number (0-based)", lo=0)


def nonempty(what: str) -> Callable[[str], str]:
    """An argparse ``type=`` for a path: an empty one (``--out ''``) is refused, not taken as the current folder
    or as "not given"."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return text

    parse.__name__ = "path"
    return parse


def names_of(choices, what: str = "") -> Callable[[str], list]:
    """An argparse ``type=``: a comma-separated list of some of ``choices``, each once, not empty; an unknown
    name lists the choices (``what`` names them in the message: "task")."""
    choices = tuple(choices)
    listed = ", ".join(choices)

    def parse(text: str) -> list:
        names = [x.strip() for x in text.split(",")]
        if not all(names):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {listed}, got {text!r}")
        for x in names:
            if x not in choices:
                raise argparse.ArgumentTypeError(f"{what + ' ' if what else ''}{x!r} is not one of {listed}")
            if names.count(x) > 1:
                raise argparse.ArgumentTypeError(f"{x!r} is given twice")
        return names

    parse.__name__ = "list"
    return parse


def threads(text: str) -> int:
    """``--threads``: 1 to the most threads a backend or torch is given."""
    from ..model.backends import MAX_THREADS

    return number(int, "a number of threads", lo=1, hi=MAX_THREADS)(text)


threads.__name__ = "int"


def add_backend(parser) -> None:
    """``--backend`` with the names :func:`rtclassify.model.backends.make_backend` takes."""
    from ..model.backends import BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="inference backend (default auto: TensorRT on a GPU when available, else ONNX Runtime "
                             "on the CPU)")


def drop_stdout() -> None:
    """Point standard output at /dev/null after its reader went away (``| head``), so that the interpreter's
    last flush meets no closed pipe."""
    import os
    import sys

    if sys.stdout is None:  # (started with standard output closed: nothing to flush)
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class UsageError(ParameterError):
    """Arguments that each parse but do not go together (an output that is one of the inputs, ``--log -``
    beside the display): the command line exits with code 2 like any other wrong argument."""


def check_not_an_input(option: str, out, inputs) -> None:
    """Refuse an output path that is one of the run's inputs (``inputs``: (what, path) pairs; a folder stands
    for every file in it, as a bundle folder does), before anything is written: the output would destroy it."""
    import os

    if not out or out == "-" or not os.path.exists(out):
        return
    for what, path in inputs:
        if not path:
            continue
        files = [os.path.join(path, f) for f in os.listdir(path)] if os.path.isdir(path) else [path]
        for f in files:
            if os.path.exists(f) and os.path.samefile(out, f):
                raise UsageError(f"{option} {out} is {what}; give another output file")


def check_technique_rate(rate: float, where: str) -> None:
    """Refuse a sample rate the pitch, vibrato and tremolo trackers do not take, naming ``where`` (a file, the
    clip, the device) and the way out."""
    from ..detect.techniques import check_sample_rate

    check_sample_rate(rate, f"{where}: {rate:g} Hz", "; run it with --no-techniques")
