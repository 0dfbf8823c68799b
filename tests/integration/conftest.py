"""Integration tests on real components: a dummy JACK server, ``rtclassify listen``, jack_midi_dump, oscdump.

Everything here skips with the reason when a program or the JACK-Client package
is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


@pytest.fixture(scope="session")
def rig_available():
    from _jackd import skip_or_fail
    from jack_rig import why_skip

    reason = why_skip()
    if reason:
        skip_or_fail(reason)
