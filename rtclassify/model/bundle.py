"""Model bundles: a folder or a zip file holding ``model.onnx`` and ``model.json``.

The bundle is the single source of truth for the frontend (sample rate, FFT,
mel filterbank, log scaling), the model's input window and output names, the
lookahead, the scheduler's default hop and the decoder's defaults (per-tag
thresholds, smoothing, minimum durations). :func:`load_bundle` reads and
validates ``model.json``; every problem raises :class:`~rtclassify.errors.BundleError`
naming the file. The ONNX file itself is checked when a backend opens it
(:class:`rtclassify.model.backends.OnnxBackend`): an unreadable graph, a
missing input or output name and a label count that does not match the
``probs`` output also raise ``BundleError`` naming ``model.onnx``.

A zip bundle may hold the two files at its root or inside one top-level folder.
:func:`bundle_from_bytes` validates a bundle held in memory (a learned bundle
before it is written), so a bundle that would not load is never written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..detect.decoder import MAX_DURATION_S, MAX_MEDIAN_HOPS
from ..errors import BundleError, ParameterError

__all__ = ["Bundle", "load_bundle", "bundle_from_bytes", "default_bundle_path", "check_labels", "MODEL_JSON",
           "MODEL_ONNX", "WEIGHTS", "FORMAT_VERSION", "LABEL_RE", "LABEL_RULE"]

MODEL_JSON = "model.json"
MODEL_ONNX = "model.onnx"
#: the torch weights a bundle may hold (``rtclassify export --include-weights``)
WEIGHTS = "weights.pt"
FORMAT_VERSION = 1

#: Allowed tag names (labels): they become OSC address parts and mapping-file keys.
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
#: :data:`LABEL_RE` in words, for messages
LABEL_RULE = ("1-64 letters, digits, '_', '-' or '.', starting with a letter or digit (it becomes an OSC address "
              "part and a mapping key)")
#: the columns of ``rtclassify tag --format csv`` beside the tags' (the trackers' values)
TECHNIQUE_COLUMNS = ("pitch", "vibrato", "vibrato_rate", "vibrato_extent", "tremolo", "tremolo_rate", "tremolo_depth")
#: names a new tag (learned, or trained with ``train --data``) may not take, in any case: a CSV column of ``tag``
#: would then come twice, and a reader by column name would take one for the other
RESERVED_TAG_NAMES = ("file", "time") + TECHNIQUE_COLUMNS

#: frontend keys passed to :class:`rtclassify.MelFrontend` (the first four are required)
FRONTEND_REQUIRED = ("sample_rate", "n_fft", "hop_length", "n_mels")
FRONTEND_OPTIONAL = ("win_length", "window", "fmin", "fmax", "mel_scale", "norm", "power", "log", "amin")

#: plausible ranges of the frontend and window values; generous for real models, they keep a
#: hostile ``model.json`` from asking the frontend or the session for gigabytes
FRONTEND_RANGES = {
    "sample_rate": (1000, 384000),
    "n_fft": (1, 65536),
    "hop_length": (1, 65536),
    "n_mels": (1, 1024),
}
MAX_WINDOW_FRAMES = 16384
#: the keys of model.json's ``decoder`` (the rest of the runtime decoder's settings, per-tag thresholds and
#: ``level_rate``, come from ``thresholds`` and from a mapping file)
DECODER_KEYS = ("smoothing_s", "min_on_s", "min_off_s", "attack_s", "smoothing", "median_hops")
#: the largest ``model.json`` read (the default bundle's is about 40 KiB)
MAX_JSON_BYTES = 16 * 1024 * 1024
#: the largest ``model.onnx`` (or ``weights.pt``) read: protobuf's limit on one serialized message, so
#: ONNX Runtime could not open a larger graph held in memory anyway (the default bundle's is 2.4 MB); a zip
#: member is refused by its declared size, before anything is inflated
MAX_MODEL_BYTES = 2**31 - 1


def _limit(name: str) -> int | None:
    """The most bytes read of a bundle file (looked up at each read, so tests can lower the limits)."""
    return MAX_JSON_BYTES if name == MODEL_JSON else MAX_MODEL_BYTES if name in (MODEL_ONNX, WEIGHTS) else None


def default_bundle_path() -> Path:
    """Folder of the default bundle shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "data" / "default_bundle"


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle.

    Attributes
    ----------
    path : Path
        The bundle folder or zip file.
    meta : dict
        The whole parsed ``model.json`` (provenance, metrics and training
        details included).
    name : str
        Model name.
    labels : tuple of str
        Tag names, in the order of the model's ``probs`` output.
    frontend : dict
        Keyword arguments for :class:`rtclassify.MelFrontend`.
    input_name : str
        Name of the ONNX input (``"mel"``), shape ``(batch, n_mels, window_frames)``.
    window_frames : int
        Frames per model input window (``W``).
    probs_name : str
        Name of the ONNX output with the probabilities, shape ``(batch, n_tags)``.
    embedding_name : str or None
        Name of the ONNX embedding output, shape ``(batch, embedding_dim)``.
    embedding_dim : int or None
        Declared embedding size.
    lookahead_frames : int
        Each output refers to the frame at index ``window_frames - 1 - lookahead_frames``
        of its window.
    hop_frames : int
        Default scheduler hop, in frontend frames.
    thresholds : dict
        ``{tag: (on, off)}`` hysteresis thresholds, one per label.
    decoder : dict
        Decoder defaults (``smoothing_s``, ``min_on_s``, ``min_off_s`` and,
        optionally, ``smoothing`` and ``median_hops``).
    zip_prefix : str
        Where the files sit in a zip bundle: ``""`` (its root) or ``"folder/"``.
    files : dict or None
        The files of a bundle held in memory (:func:`bundle_from_bytes`);
        None for a folder or zip. ``path`` then only names it.
    """

    path: Path
    meta: dict = field(repr=False)
    name: str
    labels: tuple
    frontend: dict
    input_name: str
    window_frames: int
    probs_name: str
    embedding_name: str | None
    embedding_dim: int | None
    lookahead_frames: int
    hop_frames: int
    thresholds: dict
    decoder: dict
    zip_prefix: str = ""
    files: dict | None = field(default=None, repr=False, compare=False)

    # -- derived values -------------------------------------------------
    @property
    def is_zip(self) -> bool:
        """True when the bundle is a zip file."""
        return self.files is None and self.path.is_file()

    @property
    def in_memory(self) -> bool:
        """True for a bundle held in memory (:func:`bundle_from_bytes`), not read from a folder or zip."""
        return self.files is not None

    @property
    def sample_rate(self) -> int:
        """Sample rate of the model's frontend (Hz)."""
        return int(self.frontend["sample_rate"])

    @property
    def top_hz(self) -> float:
        """The highest frequency the model's mel bands reach (``fmax``; half its rate when None)."""
        fmax = self.frontend.get("fmax")
        return float(fmax) if fmax else self.sample_rate / 2.0

    def narrow_band(self, sample_rate: float, what: str) -> str | None:
        """A warning when audio at ``sample_rate`` cannot reach the model's top band (a file at 8 or 11 kHz: the
        model learned from sound up to :attr:`top_hz` and reads such audio badly), or None. ``what`` names the
        audio in it."""
        if sample_rate / 2.0 >= self.top_hz * 0.99:
            return None
        return (f"{what} is at {sample_rate:g} Hz, so it holds sound up to {sample_rate / 2:g} Hz; the model "
                f"listens up to {self.top_hz:g} Hz and learned from sound that reaches it: its tags may be wrong "
                f"(resampling cannot add what the audio lacks)")

    @property
    def n_fft(self) -> int:
        return int(self.frontend["n_fft"])

    @property
    def hop_length(self) -> int:
        """Frontend hop in samples at :attr:`sample_rate`."""
        return int(self.frontend["hop_length"])

    @property
    def n_mels(self) -> int:
        return int(self.frontend["n_mels"])

    @property
    def n_tags(self) -> int:
        return len(self.labels)

    @property
    def frame_rate(self) -> float:
        """Frontend frames per second."""
        return self.sample_rate / self.hop_length

    def frame_time(self, index: int | float) -> float:
        """Time in seconds of the centre of frame ``index`` (``(i*hop + n_fft/2) / sr``)."""
        return (index * self.hop_length + self.n_fft / 2) / self.sample_rate

    def file_label(self, name: str) -> str:
        """How a file of the bundle is named in messages (``zip!name`` for a zip, ``name of LABEL`` in memory)."""
        if self.files is not None:
            return f"{name} of {self.path}"
        return f"{self.path}!{self.zip_prefix}{name}" if self.is_zip else str(self.path / name)

    def read_bytes(self, name: str) -> bytes:
        """Read one file of the bundle (works for folders, zips and bundles in memory).

        Raises
        ------
        BundleError
            If the file does not exist, cannot be read, or is larger than the
            limit of its kind (:data:`MAX_JSON_BYTES`, :data:`MAX_MODEL_BYTES`).
        """
        if self.files is not None:
            if name not in self.files:
                raise BundleError(f"{self.file_label(name)}: missing file in the model bundle")
            return bytes(self.files[name])
        return _read(self.path, self.zip_prefix, name, _limit(name))

    def has_file(self, name: str) -> bool:
        """True when the bundle holds a file ``name`` (``weights.pt``, say)."""
        if self.files is not None:
            return name in self.files
        if not self.is_zip:
            return (self.path / name).is_file()
        try:
            with zipfile.ZipFile(self.path) as zf:
                return self.zip_prefix + name in zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return False

    def model_source(self) -> str | bytes:
        """What ONNX Runtime should open: a file path (folder) or the bytes (zip, or a bundle in memory)."""
        if self.files is not None or self.is_zip:
            return self.read_bytes(MODEL_ONNX)
        return str(self.path / MODEL_ONNX)

    def to_config(self) -> dict:
        """The parsed ``model.json`` (a deep copy)."""
        return json.loads(json.dumps(self.meta))


# ----------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------
def _too_large(where: str, limit: int) -> BundleError:
    return BundleError(f"{where}: too large (over {limit // (1024 * 1024)} MiB)")


def _read(path: Path, prefix: str, name: str, limit: int | None = None) -> bytes:
    """Bytes of one bundle file; ``limit`` refuses a file larger than that many bytes."""
    if path.is_dir():
        f = path / name
        if not f.is_file():
            raise BundleError(f"{f}: missing file in the model bundle")
        try:
            if limit is not None and f.stat().st_size > limit:
                raise _too_large(str(f), limit)
            return f.read_bytes()
        except OSError as exc:
            raise BundleError(f"{f}: cannot read ({exc.strerror or exc})") from exc
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_member(zf, path, prefix + name, limit)
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{path}: not a valid zip file ({exc})") from exc
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _open_member(zf: zipfile.ZipFile, path: Path, member: str):
    """Open one zip member for reading; a member zipfile cannot read is a BundleError naming it."""
    where = f"{path}!{member}"
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise BundleError(f"{where}: missing file in the model bundle") from None
    if info.flag_bits & 0x1:
        raise BundleError(f"{where}: encrypted (a model bundle's zip must not use a password)")
    try:
        return zf.open(info)
    except (NotImplementedError, RuntimeError) as exc:
        # zipfile raises NotImplementedError for an unknown method and RuntimeError
        # when the module of a known one (bz2, lzma) is missing
        raise BundleError(f"{where}: compressed with an unsupported method ({info.compress_type}: {exc}); "
                          f"store or deflate the bundle's files") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise BundleError(f"{where}: corrupt zip member ({exc})") from exc


def _read_member(zf: zipfile.ZipFile, path: Path, member: str, limit: int | None = None) -> bytes:
    where = f"{path}!{member}"
    _check_declared_size(zf, path, member, limit)
    with _open_member(zf, path, member) as f:
        try:
            data = f.read() if limit is None else f.read(limit + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise BundleError(f"{where}: corrupt zip member ({exc})") from exc
    if limit is not None and len(data) > limit:
        raise _too_large(where, limit)
    return data


def _check_declared_size(zf: zipfile.ZipFile, path: Path, member: str, limit: int | None) -> None:
    """Refuse a zip member whose declared (inflated) size is over ``limit``, before it is inflated: a small
    zip may declare gigabytes of zeros. (The read itself stops at ``limit + 1`` bytes too, whatever it
    declares.)"""
    if limit is None:
        return
    try:
        size = zf.getinfo(member).file_size
    except KeyError:
        return  # _open_member names the missing file
    if size > limit:
        raise _too_large(f"{path}!{member}", limit)


def _zip_prefix(path: Path) -> str:
    """Where model.json sits in a zip: '' (root) or 'folder/'."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{path}: not a valid zip file ({exc})") from exc
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if MODEL_JSON in names:
        return ""
    nested = sorted(n[: -len(MODEL_JSON)] for n in names if n.endswith("/" + MODEL_JSON) and n.count("/") == 1)
    if len(nested) == 1:
        return nested[0]
    if len(nested) > 1:
        raise BundleError(f"{path}: holds several bundles ({', '.join(n + MODEL_JSON for n in nested[:8])}); a "
                          f"bundle zip holds one, at its root or in one top-level folder")
    backslashed = [n for n in names if "\\" in n]
    if any(n.replace("\\", "/").split("/")[-1] == MODEL_JSON for n in backslashed):
        raise BundleError(f"{path}: its member names use backslashes ({', '.join(backslashed[:4])}), which zip "
                          f"does not take as folder separators; re-create the zip with a tool that writes '/' "
                          f"(Python's zipfile, 7-Zip, Explorer's 'Compress')")
    raise BundleError(f"{path}!{MODEL_JSON}: missing file in the model bundle (zip holds: {', '.join(names[:8]) or 'nothing'})")


# ----------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------
class _Checker:
    def __init__(self, where: str):
        self.where = where

    def fail(self, msg: str):
        raise BundleError(f"{self.where}: {msg}")

    def get(self, obj: dict, key: str, parent: str = ""):
        full = f"{parent}.{key}" if parent else key
        if not isinstance(obj, dict):
            self.fail(f"'{parent}' must be an object")
        if key not in obj:
            self.fail(f"missing key '{full}'")
        return obj[key]

    def integer(self, value, key: str, minimum: int | None = None, maximum: int | None = None,
                unit: str = "") -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                self.fail(f"'{key}' must be an integer (got {value!r})")
        if maximum is not None and (value > maximum or (minimum is not None and value < minimum)):
            lo = f"from {minimum} " if minimum is not None else ""
            self.fail(f"'{key}' must be {lo}to {maximum}{unit} (got {value})")
        if minimum is not None and value < minimum:
            self.fail(f"'{key}' must be >= {minimum} (got {value})")
        return int(value)

    def number(self, value, key: str, lo: float | None = None, hi: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(f"'{key}' must be a finite number (got {value!r})")
        if lo is not None and value < lo:
            self.fail(f"'{key}' must be >= {lo} (got {value})")
        if hi is not None and value > hi:
            self.fail(f"'{key}' must be <= {hi} (got {value})")
        return float(value)

    def string(self, value, key: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(f"'{key}' must be a non-empty string (got {value!r})")
        return value


def _parse(path: Path, prefix: str, raw: bytes, where: str, check_frontend: bool) -> Bundle:
    c = _Checker(where)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        c.fail(f"not UTF-8 text ({exc})")
    except json.JSONDecodeError as exc:
        c.fail(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        c.fail("not valid JSON (nested too deeply)")
    except ValueError as exc:  # an integer with more digits than Python converts
        c.fail(f"not valid JSON ({exc})")
    if not isinstance(meta, dict):
        c.fail("must hold a JSON object")
    internal = sorted(k for k in meta if k.startswith("__"))
    if internal:
        c.fail(f"key(s) {', '.join(repr(k) for k in internal)}: names starting with '__' are reserved for "
               f"rtclassify's own use")

    version = c.get(meta, "format_version")
    if version != FORMAT_VERSION:
        c.fail(f"unsupported format_version {version!r} (this rtclassify reads {FORMAT_VERSION})")
    name = c.string(c.get(meta, "name"), "name")

    labels = c.get(meta, "labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        c.fail("'labels' must be a non-empty list of tag names")
    if len(set(labels)) != len(labels):
        c.fail("'labels' has duplicate names")
    problem = check_labels(labels)
    if problem:
        c.fail(f"'labels': {problem}")

    fe = c.get(meta, "frontend")
    if not isinstance(fe, dict):
        c.fail("'frontend' must be an object")
    unknown = sorted(set(fe) - set(FRONTEND_REQUIRED) - set(FRONTEND_OPTIONAL))
    if unknown:
        c.fail(f"unknown key(s) in 'frontend': {', '.join(unknown)}")
    frontend = {}
    for key in FRONTEND_REQUIRED:
        lo, hi = FRONTEND_RANGES[key]
        frontend[key] = c.integer(c.get(fe, key, "frontend"), f"frontend.{key}", lo, hi,
                                  " Hz" if key == "sample_rate" else "")
    for key in FRONTEND_OPTIONAL:
        if key in fe:
            frontend[key] = fe[key]
    if check_frontend:
        from .._core import MelFrontend

        try:
            MelFrontend(**frontend)
        except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
            c.fail(f"frontend config rejected by MelFrontend: {exc}")
        except MemoryError as exc:
            c.fail(f"frontend config rejected by MelFrontend: it needs more memory than there is ({exc})")

    inp = c.get(meta, "input")
    input_name = c.string(c.get(inp, "name", "input"), "input.name")
    window_frames = c.integer(c.get(inp, "window_frames", "input"), "input.window_frames", 1, MAX_WINDOW_FRAMES)
    layout = inp.get("layout", "batch,mels,frames")
    if layout != "batch,mels,frames":
        c.fail(f"'input.layout' must be 'batch,mels,frames' (got {layout!r})")

    outs = c.get(meta, "outputs")
    probs_name = c.string(c.get(outs, "probs", "outputs"), "outputs.probs")
    embedding_name = outs.get("embedding")
    if embedding_name is not None:
        embedding_name = c.string(embedding_name, "outputs.embedding")
    embedding_dim = outs.get("embedding_dim")
    if embedding_dim is not None:
        embedding_dim = c.integer(embedding_dim, "outputs.embedding_dim", 1)

    lookahead = c.integer(c.get(meta, "lookahead_frames"), "lookahead_frames", 0)
    if lookahead >= window_frames:
        c.fail(f"'lookahead_frames' ({lookahead}) must be smaller than input.window_frames ({window_frames})")
    hop_frames = c.integer(c.get(meta, "hop_frames"), "hop_frames", 1)
    if hop_frames > window_frames:
        c.fail(f"'hop_frames' ({hop_frames}) is longer than the model's window ({window_frames} frames): "
               f"the audio between two outputs would never be heard")

    th = c.get(meta, "thresholds")
    if not isinstance(th, dict):
        c.fail("'thresholds' must be an object {tag: {on, off}}")
    unknown = sorted(set(th) - set(labels))
    if unknown:
        c.fail(f"'thresholds' names tags that are not in 'labels': {', '.join(unknown)}")
    thresholds = {}
    for tag in labels:
        entry = c.get(th, tag, "thresholds")
        on = c.number(c.get(entry, "on", f"thresholds.{tag}"), f"thresholds.{tag}.on", 0.0, 1.0)
        off = c.number(c.get(entry, "off", f"thresholds.{tag}"), f"thresholds.{tag}.off", 0.0, 1.0)
        if off > on:
            c.fail(f"'thresholds.{tag}': off ({off}) must not exceed on ({on})")
        thresholds[tag] = (on, off)

    dec = c.get(meta, "decoder")
    if not isinstance(dec, dict):
        c.fail("'decoder' must be an object")
    decoder = {}
    for key in ("smoothing_s", "min_on_s", "min_off_s"):
        decoder[key] = c.number(c.get(dec, key, "decoder"), f"decoder.{key}", 0.0, MAX_DURATION_S)
    if dec.get("attack_s") is not None:
        decoder["attack_s"] = c.number(dec["attack_s"], "decoder.attack_s", 0.0, MAX_DURATION_S)
    if "smoothing" in dec:
        if dec["smoothing"] not in ("ema", "median"):
            c.fail(f"'decoder.smoothing' must be 'ema' or 'median' (got {dec['smoothing']!r})")
        decoder["smoothing"] = dec["smoothing"]
    if "median_hops" in dec:
        decoder["median_hops"] = c.integer(dec["median_hops"], "decoder.median_hops", 1, MAX_MEDIAN_HOPS)

    learned = meta.get("learned_tags", [])
    if not isinstance(learned, list) or not all(isinstance(e, dict) for e in learned):
        c.fail(f"'learned_tags' must be a list of objects, one per learned tag (got {_short(learned)})")

    return Bundle(
        path=path,
        meta=meta,
        name=name,
        labels=tuple(labels),
        frontend=frontend,
        input_name=input_name,
        window_frames=window_frames,
        probs_name=probs_name,
        embedding_name=embedding_name,
        embedding_dim=embedding_dim,
        lookahead_frames=lookahead,
        hop_frames=hop_frames,
        thresholds=thresholds,
        decoder=decoder,
        zip_prefix=prefix,
    )


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_labels(labels) -> str:
    """What is wrong with a bundle's tag names, or ``""``.

    Each label must match :data:`LABEL_RE` (1-64 letters, digits, ``_``,
    ``-`` or ``.``, starting with a letter or digit), and no two may differ
    only by case: labels become OSC address parts and mapping-file keys.
    """
    for tag in labels:
        if not LABEL_RE.match(tag):
            return f"{tag!r} is not a tag name: {LABEL_RULE}"
    seen: dict = {}
    for tag in labels:
        other = seen.setdefault(tag.casefold(), tag)
        if other != tag:
            return f"{other!r} and {tag!r} differ only by case (they would be one OSC address and mapping key)"
    return ""


def load_bundle(path: str | Path | None = None, *, check_frontend: bool = True) -> Bundle:
    """Read and validate a model bundle.

    Parameters
    ----------
    path : str or Path, optional
        A bundle folder, a zip file, or the ``model.json`` inside a folder.
        ``None`` loads the default bundle shipped in the package.
    check_frontend : bool
        Build a :class:`rtclassify.MelFrontend` from the frontend config to
        check that the native frontend accepts it (default True).

    Returns
    -------
    Bundle

    Raises
    ------
    BundleError
        The folder, zip or one of its files is missing or unreadable (a zip
        member that is encrypted or compressed with a method zipfile cannot
        read included), ``model.json`` is larger than 16 MiB, is not valid
        JSON or lacks a key, a value is out of range (see
        :data:`FRONTEND_RANGES`, :data:`MAX_WINDOW_FRAMES`; ``hop_frames`` may
        not exceed the window; decoder durations are at most an hour), a
        label is not a tag name (:func:`check_labels`), a key starts with
        ``__`` (reserved), ``learned_tags`` is not a list of objects, the
        frontend config is rejected by ``MelFrontend``, or a zip's
        ``model.onnx`` declares more than :data:`MAX_MODEL_BYTES`. The message
        names the file.
    """
    if path is None:
        path = default_bundle_path()
        if not path.exists():
            raise BundleError(f"{path}: the default model bundle is not installed")
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"the model bundle path must be a str or a path (os.PathLike), or None for the "
                             f"default bundle; got {type(path).__name__} {path!r}")
    if isinstance(path, str) and not path.strip():
        raise BundleError("the model bundle path is empty (give a bundle folder or zip, or None for the default "
                          "bundle)")
    path = Path(path).expanduser()
    if path.is_file() and path.name == MODEL_JSON:
        path = path.parent
    if not path.exists():
        raise BundleError(f"{path}: model bundle not found (expected a folder or zip with {MODEL_JSON} and {MODEL_ONNX})")
    path = path.resolve()
    if path.is_dir():
        prefix = ""
        where = str(path / MODEL_JSON)
    elif zipfile.is_zipfile(path):
        prefix = _zip_prefix(path)
        where = f"{path}!{prefix}{MODEL_JSON}"
    elif path.suffix.lower() == ".zip":
        raise BundleError(f"{path}: not a readable zip file (cut short or corrupt?); a model bundle is a folder or "
                          f"a zip with {MODEL_JSON} and {MODEL_ONNX}")
    else:
        raise BundleError(f"{path}: not a model bundle (expected a folder or a zip file)")
    raw = _read(path, prefix, MODEL_JSON, MAX_JSON_BYTES)
    bundle = _parse(path, prefix, raw, where, check_frontend)
    # model.onnx must at least exist; its contents are checked by the backend
    if path.is_dir():
        onnx = path / MODEL_ONNX
        if not onnx.is_file():
            raise BundleError(f"{onnx}: missing file in the model bundle")
        try:  # ONNX Runtime opens it by path and would say only "system error number 13"
            with open(onnx, "rb"):
                pass
        except OSError as exc:
            raise BundleError(f"{onnx}: cannot read ({exc.strerror or exc})") from exc
    else:
        # opening the member (without reading it) also refuses an encrypted one, an unsupported
        # compression method or a declared size over the limit now rather than when a backend loads the graph
        try:
            with zipfile.ZipFile(path) as zf:
                _check_declared_size(zf, path, prefix + MODEL_ONNX, _limit(MODEL_ONNX))
                with _open_member(zf, path, prefix + MODEL_ONNX):
                    pass
        except zipfile.BadZipFile as exc:
            raise BundleError(f"{path}: not a valid zip file ({exc})") from exc
        except OSError as exc:
            raise BundleError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    _check_recorded_checksum(bundle)
    return bundle


def _check_recorded_checksum(bundle: Bundle) -> None:
    """A learned bundle's ``model.json`` records the sha256 of its ``model.onnx`` (its last ``learned_tags``
    entry): a graph that does not match it (a damaged copy: one flipped byte in the weights loads and runs, with
    every output a little off) is refused. Other bundles record none."""
    learned = bundle.meta.get("learned_tags")
    want = learned[-1].get("onnx_sha256") if isinstance(learned, list) and learned and isinstance(learned[-1], dict) \
        else None
    if not isinstance(want, str):
        return
    import hashlib

    got = hashlib.sha256(bundle.read_bytes(MODEL_ONNX)).hexdigest()
    if got != want:
        raise BundleError(f"{bundle.file_label(MODEL_ONNX)}: does not match the checksum its {MODEL_JSON} records "
                          f"(sha256 {got[:12]}..., recorded {want[:12]}...): a damaged or edited copy; copy the "
                          f"bundle again, or learn the tag again")


def bundle_from_bytes(files: dict, label: str, *, check_frontend: bool = True) -> Bundle:
    """Validate a bundle held in memory, as :func:`load_bundle` validates one on disk.

    A writer checks a bundle this way (and opens its graph with a backend)
    before it writes it, so a bundle that would not load never replaces one
    that does.

    Parameters
    ----------
    files : dict
        ``{"model.json": bytes, "model.onnx": bytes}`` (and optionally ``weights.pt``).
    label : str
        How the bundle is named in messages (``model.onnx of LABEL``); also its ``path``.
    check_frontend : bool
        As in :func:`load_bundle`.

    Returns
    -------
    Bundle
        With :attr:`Bundle.files` set; :meth:`Bundle.read_bytes` and
        :meth:`Bundle.model_source` serve the bytes.

    Raises
    ------
    BundleError
        As :func:`load_bundle`, naming ``model.json of LABEL``.
    """
    files = {name: bytes(data) for name, data in files.items()}
    where = f"{MODEL_JSON} of {label}"
    for name in (MODEL_JSON, MODEL_ONNX):
        if name not in files:
            raise BundleError(f"{name} of {label}: missing file in the model bundle")
        limit = _limit(name)
        if len(files[name]) > limit:
            raise _too_large(f"{name} of {label}", limit)
    parsed = dataclasses.replace(_parse(Path(label), "", files[MODEL_JSON], where, check_frontend), files=files)
    _check_recorded_checksum(parsed)
    return parsed
