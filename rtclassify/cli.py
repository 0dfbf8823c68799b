"""The ``rtclassify`` command line.

Each subcommand lives in its own module under :mod:`rtclassify.commands` and
defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy dependencies are imported inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import re
import signal
import sys
import threading

from . import commands as _commands_pkg
from .commands._args import UsageError
from .errors import RtclassifyError, interruption_behind


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit code 2. ``intermixed``: positionals may come after
    options (``tag a.wav --out x.csv b.wav``), parsed by argparse's parse_intermixed_args (for a subcommand
    without subcommands of its own, whose positionals are lists or single values)."""

    def __init__(self, *args, intermixed: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._intermixed = intermixed
        self._parsing_intermixed = False
        # a value starting "-digit" or "-.digit" is a number, as from Python 3.13 on: before it, "-1e3" (and "-1.5e2")
        # was taken for an unknown option and `--rms-floor-db -1e3` failed as "expected one argument"
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        # the parent parser hands a subcommand its arguments through parse_known_args; the intermixed parse calls
        # parse_known_args itself (before Python 3.13), hence the guard. A "--" (what follows is positional: a
        # file named "-x.wav") is parsed as without intermixing: the intermixed parse (of Python 3.11, at least)
        # took an option after it for an option, and refused a "-x.wav" after it
        given = sys.argv[1:] if args is None else list(args)
        if not self._intermixed or self._parsing_intermixed or "--" in given:
            return super().parse_known_args(args, namespace)
        self._parsing_intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing_intermixed = False


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP during a command, raised where the main thread was: the command unwinds as after Ctrl-C
    (a data build ends its render workers, a training run keeps its last checkpoint) instead of dying with its
    child processes left running."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


@contextlib.contextmanager
def _signals_unwind():
    """SIGTERM and SIGHUP raise :class:`Terminated` while a command runs, where their action is the default one
    (a host that handles them keeps its handlers; the live commands install their own clean stop); the handlers
    in place before are put back after. Main thread only (elsewhere signals cannot be handled)."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
                old[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def _end_by(signum: int) -> None:
    """The command has unwound: the signal now does what it would have done (the process ends by it, so that
    its parent, a host program calling :func:`main` included, sees it ended by the signal)."""
    import os

    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _command_modules():
    for info in sorted(pkgutil.iter_modules(_commands_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        yield importlib.import_module(f"{_commands_pkg.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    """The ``rtclassify`` argument parser: one subcommand per module of :mod:`rtclassify.commands`."""
    from . import __version__

    parser = _Parser(
        prog="rtclassify",
        description="Real-time music classification: instrument families, voice, vibrato and "
        "tremolo, from a live audio device or a file, sent as MIDI and OSC.",
    )
    parser.add_argument("--version", action="version", version=f"rtclassify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           intermixed=getattr(module, "INTERMIXED", False))
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _prints_its_output=getattr(module, "PRINTS_ITS_OUTPUT", False))
    return parser


_DEVNULL = []


def _devnull():
    """One writable os.devnull for the process (opened once, kept open)."""
    if not _DEVNULL:
        _DEVNULL.append(open(os.devnull, "w"))
    return _DEVNULL[0]


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return its exit status.

    0: done; 1: an error the command reported in one line; 2: wrong arguments (argparse exits with it); 3: ``tag
    --keep-going`` left out files that failed (each reported in one line) and tagged the others;
    130: interrupted (Ctrl-C); 141: standard output's reader went away (``| head``) before a command whose work
    is elsewhere (files, a model) was done; a command whose output is what it prints (``backends``, ``devices``;
    ``tag`` and a live run's ``--log -`` likewise) ends quietly with 0 then. SIGTERM or SIGHUP: the command
    unwinds (see :class:`Terminated`), then the process ends by the signal, as it would have without the
    handler (a shell reports 143 or 129).
    """
    if sys.stderr is None:  # started with standard error closed (`2>&-`, some daemons): print(file=None) would
        sys.stderr = _devnull()  # write its lines into standard output, among a command's output
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        with _signals_unwind():
            try:
                return int(args._run(args) or 0)
            except ImportError as exc:
                stop = interruption_behind(exc)
                if stop is None:
                    raise
                raise stop from None  # Ctrl-C or SIGTERM during an import (onnxruntime's turns it into this)
    except Terminated as exc:
        try:
            print(f"rtclassify: stopped by {exc.args[0]}", file=sys.stderr)
        except (OSError, ValueError):  # SIGHUP: the terminal (standard error) is gone
            pass
        _end_by(exc.signum)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("rtclassify: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"rtclassify {args.command}: error: {exc} (see rtclassify {args.command} --help)", file=sys.stderr)
        return 2
    except RtclassifyError as exc:
        print(f"rtclassify {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader of standard output went away (``| head``): stop quietly, as other tools do
        from .commands._args import drop_stdout

        drop_stdout()
        return 0 if getattr(args, "_prints_its_output", False) else 141
    except OSError as exc:
        if not _is_unnamed_write_error(exc):
            raise
        from .commands._args import drop_stdout

        drop_stdout()
        print(f"rtclassify {args.command}: error: writing the output failed: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _is_unnamed_write_error(exc: OSError) -> bool:
    """True for the errors of a failed write (a full disk, a device error) that no command turned into its own
    message: no file named (a write to standard output, or to a report file, says no name)."""
    import errno

    return exc.filename is None and exc.errno in (errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EBADF)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
