"""Writing a model bundle (a folder, or a ``.zip`` file) so that a failure loses nothing.

Every writer of bundles (``learn``, ``Classifier.save``, ``export`` and the
trainers) goes through :func:`write_bundle`:

- a ``.zip`` (any case of the suffix) is written to a temporary file beside it
  and moved over it in one step, so an existing zip stays loadable when the
  disk fills or the run is interrupted;
- in a folder each file is written the same way, one file at a time;
- the files get the permissions a new file gets (the umask), not the
  owner-only ones of a temporary file, so a service running as another user
  can load the bundle;
- a bad path (empty, a folder where a zip is meant, a file where a folder is
  meant, a folder that cannot be created) is one :class:`ParameterError`.

:func:`check_bundle_out` runs the cheap path checks up front, so a command can
refuse a bad ``--out`` before minutes of work.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ParameterError

__all__ = ["check_bundle_out", "write_bundle", "write_atomic", "is_zip_path", "make_output_folder"]


def is_zip_path(path) -> bool:
    """True when ``path`` names a zip bundle (suffix ``.zip`` in any case)."""
    return Path(os.fspath(path)).suffix.lower() == ".zip"


def _as_path(out, what: str) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise ParameterError(f"{what} must be a folder or a .zip path, got {type(out).__name__}")
    text = os.fspath(out)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise ParameterError(f"{what} is empty: give a folder or a .zip path")
    return Path(os.path.expanduser(text))


def check_bundle_out(out, what: str = "--out") -> Path:
    """Refuse a bundle output path that cannot be written, before any work.

    Returns
    -------
    Path
        The path with ``~`` expanded.

    Raises
    ------
    ParameterError
        The path is empty or not a path, a ``.zip`` path is a folder, a folder
        path is a file, or the nearest existing folder above it is not a
        writable folder.
    """
    p = _as_path(out, what)
    if is_zip_path(p):
        if p.is_dir():
            raise ParameterError(f"{what} {p}: is a folder; give a new .zip file name, or a folder path without "
                                 f".zip")
        parent = p.parent
    else:
        if p.exists() and not p.is_dir():
            raise ParameterError(f"{what} {p}: exists and is not a folder (give a folder, or a path ending in .zip)")
        parent = p
    up = parent
    while not up.exists():
        if up.parent == up:
            break
        up = up.parent
    if not up.is_dir():
        raise ParameterError(f"{what} {p}: {up} is not a folder")
    if not os.access(up, os.W_OK | os.X_OK):
        raise ParameterError(f"{what} {p}: the folder {up} is not writable")
    return p


def new_file_mode() -> int:
    """The permission bits a file created now gets (``0o666`` less the umask): for files written under a
    temporary name (``mkstemp`` makes them owner-only) and renamed into place."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(dest: Path, write) -> None:
    """Write ``dest`` through a temporary file in its folder (``write(fileobj)``), then rename it over ``dest``."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_bundle(out, files: dict, stale=(), what: str = "out") -> Path:
    """Write the bundle files to a folder or a ``.zip``.

    Parameters
    ----------
    out : str or PathLike
        A folder (created with its parents), or a path ending in ``.zip``.
    files : dict
        Name in the bundle -> ``bytes``, or a path whose content is copied.
    stale : sequence of str
        Names to remove from an existing folder bundle when ``files`` does not
        hold them (an older export's ``weights.pt``, for example).
    what : str
        How to name ``out`` in errors.

    Returns
    -------
    Path

    Raises
    ------
    ParameterError
        A bad path, or the files cannot be written (the message says why;
        an existing bundle at ``out`` is left as it was, in a folder file by
        file).
    """
    import zipfile

    p = check_bundle_out(out, what)

    def data(v) -> bytes:
        return v if isinstance(v, (bytes, bytearray, memoryview)) else Path(v).read_bytes()

    try:
        if is_zip_path(p):
            p.parent.mkdir(parents=True, exist_ok=True)

            def write_zip(f):
                with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
                    for name, v in files.items():
                        z.writestr(name, data(v))

            write_atomic(p, write_zip)
            return p
        p.mkdir(parents=True, exist_ok=True)
        for name, v in files.items():
            blob = data(v)
            write_atomic(p / name, lambda f, b=blob: f.write(b))
        for name in stale:
            if name not in files and (p / name).is_file():
                (p / name).unlink()
        return p
    except OSError as exc:
        raise ParameterError(f"{what} {p}: cannot write the bundle ({exc.strerror or exc})") from exc


def make_output_folder(path, what: str = "--out") -> Path:
    """Create an output folder (a run's, a report's) with its parents, or fail with one line naming ``what``.

    Raises
    ------
    ParameterError
        ``path`` is empty, is a file, cannot be created or is not writable.
    """
    p = _as_path(path, what)
    if p.exists() and not p.is_dir():
        raise ParameterError(f"{what} {p}: exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"{what} {p}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise ParameterError(f"{what} {p}: the folder is not writable")
    return p
