"""Test helper: what the training-data builder's renders need, and a digest of a built data set.

Needs scipy (the data builder does): importing this module skips the importing test module without it.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("scipy")

from rtclassify.errors import MissingDependencyError  # noqa: E402
from rtclassify.train.data import build as B  # noqa: E402
from rtclassify.train.data import samples, voice  # noqa: E402
from rtclassify.train.data.fluid import SOUNDFONTS  # noqa: E402


def missing_tools() -> list[str]:
    """What a build lacks here (libraries, modules, soundfonts, programs, the npm sample cache), as install hints."""
    missing = []
    if ctypes.util.find_library("fluidsynth") is None:
        missing.append("libfluidsynth (apt-get install fluidsynth)")
    for mod in ("fluidsynth", "parselmouth", "soxr"):
        try:
            __import__(mod)
        except (ImportError, OSError):
            missing.append(f"python module {mod}")
    for sf in (SOUNDFONTS[n] for n in B.build_soundfonts()):  # the recipe's own fonts
        if not os.path.exists(sf.path):
            missing.append(f"{sf.path} (apt-get install {sf.package})")
    if shutil.which("espeak-ng") is None:
        missing.append("espeak-ng")
    try:
        voice.check_festival()
    except MissingDependencyError as exc:
        missing.append(str(exc))
    cache = samples.default_cache_dir()
    have_cache = all((cache / samples.package_name(i) / "package.json").exists()
                     or list(cache.glob(f"{samples.package_name(i)}-[0-9]*.tgz")) for i in samples.SAMPLE_INSTRUMENT_TAGS)
    if shutil.which("npm") is None and not have_cache:
        missing.append("npm (and no npm sample cache)")
    return missing


#: the data tools missing here (empty where a build can run), looked up once per test run
MISSING = missing_tools()
#: marks a test that renders a data set: it skips, naming what is missing, where a build cannot run
needs_tools = pytest.mark.skipif(bool(MISSING), reason="data tools missing: " + "; ".join(MISSING))


def tree_digest(root: Path) -> dict:
    """``{relative path: sha256}`` of every file under ``root``: equal digests, byte-for-byte equal trees."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
