"""Writing a model bundle (a folder, or a ``.zip`` file) so that a failure loses nothing.

Every writer of bundles (``learn``, ``Classifier.save``, ``export`` and the
trainers) goes through :func:`write_bundle`:

- a ``.zip`` (any case of the suffix) is written to a temporary file beside it
  and moved over it in one step, so an existing zip stays loadable when the
  disk fills or the run is interrupted;
- a folder is written whole as a temporary folder beside it and swapped into
  place (an atomic exchange where the system has one, else two renames), so an
  interruption leaves either the old bundle or the new one, never a mix;
- an existing folder is replaced only when it holds nothing but a bundle's
  files (:data:`BUNDLE_FILES`), and an existing file at a ``.zip`` path only
  when it is a bundle zip (or empty): files that are not a bundle's are never
  mixed with one or deleted;
- the files get the permissions a new file gets (the umask), not the
  owner-only ones of a temporary file, so a service running as another user
  can load the bundle;
- a bad path (empty, a folder where a zip is meant, a file where a folder is
  meant, a folder that cannot be created) is one :class:`ParameterError`.

:func:`check_bundle_out` runs the cheap path checks up front, so a command can
refuse a bad ``--out`` before minutes of work; with ``force=False`` (a command
without ``--force``) it also refuses any existing bundle or non-empty folder,
and with ``shipped=False`` the package's own default bundle.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import ParameterError

__all__ = ["BUNDLE_FILES", "check_bundle_out", "write_bundle", "write_atomic", "is_zip_path", "make_output_folder"]

#: the files a bundle folder holds (``weights.pt`` only when exported with the torch weights)
BUNDLE_FILES = ("model.onnx", "model.json", "weights.pt")


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


def _is_bundle_entry(name: str) -> bool:
    """A bundle file, or the temporary of one that :func:`write_atomic` left behind (``.model.json.x.part``)."""
    return name in BUNDLE_FILES or any(name.startswith(f".{f}.") and name.endswith(".part") for f in BUNDLE_FILES)


def _listing(names, limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _is_bundle_zip(p: Path) -> bool:
    """An empty file, or a zip with ``model.json`` at its root or in one top-level folder."""
    import zipfile

    try:
        if p.stat().st_size == 0:
            return True
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return False
    return any(n == "model.json" or (n.endswith("/model.json") and n.count("/") == 1) for n in names)


def _is_shipped(p: Path) -> bool:
    """True when ``p`` is the package's default bundle folder or a path inside it."""
    from .bundle import default_bundle_path

    try:
        shipped = default_bundle_path().resolve()
        target = p.resolve()
    except (OSError, RuntimeError):
        return False
    return target == shipped or shipped in target.parents


def check_bundle_out(out, what: str = "--out", *, force: bool | None = None, shipped: bool = True) -> Path:
    """Refuse a bundle output path that cannot be written, before any work.

    Parameters
    ----------
    out : str or PathLike
        A folder, or a path ending in ``.zip``.
    what : str
        How to name ``out`` in errors.
    force : bool or None
        What an existing bundle at ``out`` gets. ``None`` (the Python API):
        it is replaced. ``False`` (a command without ``--force``): a folder
        that is not empty, or an existing ``.zip`` file, is refused; the
        message says to pass ``--force``. ``True`` (``--force``): it is
        replaced. In every case a folder holding files other than
        :data:`BUNDLE_FILES`, or a file at the ``.zip`` path that is not a
        bundle zip, is refused.
    shipped : bool
        False refuses the package's own default bundle folder (and paths
        inside it) as ``out``.

    Returns
    -------
    Path
        The path with ``~`` expanded.

    Raises
    ------
    ParameterError
        The path is empty or not a path, a ``.zip`` path is a folder, a folder
        path is a file, the nearest existing folder above it is not a
        writable folder, it is the shipped bundle (``shipped=False``), or it
        holds something that may not be replaced (see ``force``).
    """
    p = _as_path(out, what)
    if not shipped and _is_shipped(p):
        raise ParameterError(f"{what} {p}: is the package's own default bundle; give another folder or .zip path")
    again = "pass --force to replace the bundle there" if force is False else None
    if is_zip_path(p):
        if p.is_dir():
            raise ParameterError(f"{what} {p}: is a folder; give a new .zip file name, or a folder path without "
                                 f".zip")
        if p.exists():
            if not _is_bundle_zip(p):
                raise ParameterError(f"{what} {p}: exists and is not a bundle zip; give a new .zip file name"
                                     + (" (--force replaces a bundle only)" if force is not None else ""))
            if again:
                raise ParameterError(f"{what} {p}: exists; {again}, or give a new .zip file name")
        parent = p.parent
    else:
        if p.exists() and not p.is_dir():
            raise ParameterError(f"{what} {p}: exists and is not a folder (give a folder, or a path ending in .zip)")
        if p.is_dir():
            try:
                names = sorted(os.listdir(p))
            except OSError as exc:
                raise ParameterError(f"{what} {p}: cannot list the folder ({exc.strerror or exc})") from None
            foreign = [n for n in names if not _is_bundle_entry(n)]
            if foreign:
                raise ParameterError(f"{what} {p}: exists and holds files that are not a bundle's "
                                     f"({_listing(foreign)}); give a new or empty folder"
                                     + (" (--force replaces a bundle only)" if force is not None else ""))
            if names and again:
                raise ParameterError(f"{what} {p}: exists and is not empty; {again}, or give a new folder")
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
    if up == p:  # an existing folder is replaced by a rename in the folder above it
        try:
            here, target = Path.cwd().resolve(), p.resolve()
        except (OSError, RuntimeError):
            here = target = None
        if here is not None and (target == here or target in here.parents):
            raise ParameterError(f"{what} {p}: is the current folder or one above it; a bundle folder is replaced "
                                 f"whole, so give a new folder (for example {Path(p) / 'bundle'})")
        above = Path(os.path.abspath(_real_folder(p))).parent
        if not os.access(above, os.W_OK | os.X_OK):
            raise ParameterError(f"{what} {p}: the folder {above} is not writable (a bundle folder is written "
                                 f"beside the old one and renamed into place)")
    return p


def _real_folder(p: Path) -> Path:
    """The folder itself when ``p`` is a symbolic link to one (the link is kept, its target replaced)."""
    return p.resolve() if p.is_symlink() else p


def new_file_mode() -> int:
    """The permission bits a file created now gets (``0o666`` less the umask): for files written under a
    temporary name (``mkstemp`` makes them owner-only) and renamed into place."""
    return 0o666 & ~_umask()


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


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def write_json_atomic(dest, obj) -> None:
    """``obj`` as indented JSON in ``dest``, through :func:`write_atomic` (a run stopped while it is written
    leaves the earlier file, not half of one)."""
    import json

    text = json.dumps(obj, indent=1).encode()
    write_atomic(Path(dest), lambda f: f.write(text))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system or the file
    system has no such call (the caller falls back to two renames)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import errno

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(new: Path, dest: Path) -> None:
    """Put the folder ``new`` at ``dest``; an existing folder there is removed once the new one is in place.

    With an atomic exchange ``dest`` always holds a whole bundle; with two renames an interruption between
    them leaves the old bundle beside ``dest`` as ``.NAME.*.old``.
    """
    if not dest.exists():
        os.rename(new, dest)
        return
    if _exchange(new, dest):
        shutil.rmtree(new, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".old"))
    os.rmdir(old)  # a free name beside it
    os.rename(dest, old)
    try:
        os.rename(new, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_folder(p: Path, files: dict, data) -> None:
    """Write ``files`` into a new temporary folder beside ``p`` and swap it into place."""
    dest = Path(os.path.abspath(_real_folder(p)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        for name, v in files.items():
            target = tmp / name
            with open(target, "wb") as f:
                f.write(data(v))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(target, new_file_mode())
        mode = stat.S_IMODE(dest.stat().st_mode) if dest.is_dir() else 0o777 & ~_umask()
        os.chmod(tmp, mode)
        _swap_in(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bundle(out, files: dict, what: str = "out", *, shipped: bool = True) -> Path:
    """Write the bundle files to a folder or a ``.zip``.

    Parameters
    ----------
    out : str or PathLike
        A folder (created with its parents), or a path ending in ``.zip``.
        An existing bundle there is replaced whole (see
        :func:`check_bundle_out` with ``force=None``); a folder holding other
        files is refused.
    files : dict
        Name in the bundle -> ``bytes``, or a path whose content is copied.
        A folder holds exactly these afterwards (an older export's
        ``weights.pt`` that ``files`` leaves out is gone).
    what : str
        How to name ``out`` in errors.
    shipped : bool
        False refuses the package's own default bundle as ``out`` (what
        ``learn`` and ``Classifier.save`` write); the training recipe that
        rebuilds the default model writes it on purpose.

    Returns
    -------
    Path

    Raises
    ------
    ParameterError
        A bad path, the shipped bundle with ``shipped=False``, or the files
        cannot be written (the message says why; an existing bundle at
        ``out`` is left as it was).
    """
    import zipfile

    p = check_bundle_out(out, what, shipped=shipped)

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
        _write_folder(p, files, data)
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


@contextmanager
def output_folder(path, what: str = "--out"):
    """:func:`make_output_folder` for a block of work: ``with output_folder(p) as folder:``. When the block fails
    (refused data, an error, Ctrl-C) and this call made the folder and nothing was written into it, the folder
    is removed again, so that a failed run leaves no empty folder behind."""
    p = _as_path(path, what)
    created = not p.exists()
    folder = make_output_folder(p, what)
    try:
        yield folder
    except BaseException:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise
