"""Exception hierarchy of rtclassify.

Every error the package raises on purpose derives from :class:`RtclassifyError`.
Bad parameters are also :class:`ValueError` and runtime faults also
:class:`RuntimeError`, so callers can catch either the package's base class or
the built-in one.
"""

from __future__ import annotations


class RtclassifyError(Exception):
    """Base class of every error raised by rtclassify."""


class ParameterError(RtclassifyError, ValueError):
    """A parameter has a bad value; the message names the parameter."""


class BundleError(RtclassifyError, ValueError):
    """A model bundle is missing, corrupt or inconsistent; the message names the file."""


class ConfigError(RtclassifyError, ValueError):
    """A configuration or mapping file is invalid; the message names the file, line and key."""


class DeviceError(RtclassifyError, RuntimeError):
    """An audio device is missing, busy or vanished."""


class DeviceNotFoundError(DeviceError):
    """No audio input device matches the one asked for (PortAudio's list may date from before it appeared)."""


class SinkError(RtclassifyError, RuntimeError):
    """An output (MIDI port, OSC host, log file) cannot be opened or written."""


class OutputClosed(SinkError):
    """The reader of standard output went away (``listen --log - | head``): the end of the run, not a fault."""


class StateError(RtclassifyError, RuntimeError):
    """A call the object's state does not allow (audio after ``flush()`` without ``reset()``)."""


class MissingDependencyError(RtclassifyError, ImportError):
    """An optional dependency is not installed; the message names the extra or system package."""


class WeakTagWarning(UserWarning):
    """A learned tag separates its examples from the negatives poorly and may turn on for most sounds."""


class BlockLayoutWarning(UserWarning):
    """A stream's 2-D blocks keep having 4 times as many channels as frames or more: they may be (channels,
    frames), read the wrong way round (said once per stream, unless a block first shows the channel count)."""


def interruption_behind(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt, or other exception that is not an Exception (SIGTERM's ``Terminated``), that
    ``exc`` was raised from or while handling: a module whose import is interrupted (onnxruntime's) raises
    ImportError("initialization failed") from it, which is not a missing package. None when there is none."""
    seen = set()
    e = exc.__cause__ or exc.__context__
    while e is not None and id(e) not in seen:
        if not isinstance(e, Exception):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def require(module: str, extra: str | None = None, system: str | None = None, pip: str | None = None):
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    module : str
        Module name to import.
    extra : str, optional
        The pip extra that provides it (``pip install rtclassify[extra]``).
    system : str, optional
        The system package that provides it (for example a Debian package).
    pip : str, optional
        The pip package that provides it, where its name is not the module's
        (``python-rtmidi`` for ``rtmidi``); the module's name otherwise.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        stop = interruption_behind(exc)
        if stop is not None:  # Ctrl-C or SIGTERM during the import: not a missing package
            raise stop from None
        hints = []
        if extra:
            hints.append(f"pip install 'rtclassify[{extra}]'")
        if pip:
            hints.append(f"pip install {pip}")
        if system:
            hints.append(f"install the system package {system}")
        hint = " or ".join(hints) if hints else f"pip install {module}"
        raise MissingDependencyError(f"{module} is not installed ({exc}); {hint}") from exc
