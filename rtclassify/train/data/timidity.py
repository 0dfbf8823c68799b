"""TiMidity++ rendering of generated parts through GUS patch sets (Debian ``freepats``).

A patch set is one more source of GM timbres next to the soundfonts: FreePats is sampled from other
real instruments than the soundfonts' (a training-only timbre, ``data build --extra-soundfonts
FreePats``). Each part becomes a one-track Standard MIDI File, rendered by its own ``timidity``
process at ``render_rate`` (mono, 24-bit, effects off) and resampled to 16 kHz with soxr; a part's
vibrato is written as pitch-bend events every 8 ms. One process per part keeps the stems
independent and the output byte-identical from run to run.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile

import numpy as np

from ...errors import MissingDependencyError
from .gm import DRUM_KITS, PartSpec, bend_range_ccs, vibrato_bends
from .labels import SAMPLE_RATE

#: MIDI ticks per second (tempo 500000 us per quarter note, 480 ticks per quarter): 1.04 ms steps.
TICKS_PER_S = 960
#: Seconds between pitch-bend events of a part's vibrato.
VIBRATO_STEP_S = 0.008
_DRUM_CHANNEL = 9


def check_timidity(cfg_path: str, package: str) -> None:
    """Raise MissingDependencyError naming the Debian packages when timidity or the patch set is missing."""
    if shutil.which("timidity") is None:
        raise MissingDependencyError("timidity not found; install the Debian package timidity (apt-get install timidity)")
    if not os.path.exists(cfg_path):
        raise MissingDependencyError(f"patch set configuration {cfg_path} not found; install the Debian package "
                                     f"{package} (apt-get install {package})")


def read_presets(cfg_path: str) -> dict[tuple[int, int], str]:
    """``{(bank, program): patch file}`` of a TiMidity configuration: melodic programs of ``bank 0``
    and drum kits of ``drumset N`` (as bank 128, like the soundfonts' percussion bank)."""
    presets: dict[tuple[int, int], str] = {}
    section = None
    with open(cfg_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.match(r"^(bank|drumset)\s+(\d+)$", line)
            if m:
                section = (m.group(1), int(m.group(2)))
                continue
            m = re.match(r"^(\d+)\s+(\S+)", line)
            if m is None or section is None:
                continue
            kind, number = section
            if kind == "bank" and number == 0:
                presets[(0, int(m.group(1)))] = m.group(2)
            elif kind == "drumset" and number in DRUM_KITS:
                presets.setdefault((128, number), m.group(2))
    return presets


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def part_midi(part: PartSpec, duration: float) -> bytes:
    """A format-0 Standard MIDI File playing ``part`` (notes cut at ``duration`` s)."""
    drums = part.bank == 128
    ch = _DRUM_CHANNEL if drums else 0
    events: list[tuple[int, int, bytes]] = [(0, 0, b"\xff\x51\x03" + (500000).to_bytes(3, "big"))]
    if not drums:
        events += [(0, 1, bytes([0xB0 | ch, cc, v])) for cc, v in bend_range_ccs()]
    events.append((0, 2, bytes([0xC0 | ch, int(part.program) & 0x7F])))
    end_tick = int(round(duration * TICKS_PER_S))
    onsets = []
    for note in part.notes:
        on = int(round(note.start * TICKS_PER_S))
        if on >= end_tick:
            continue
        off = max(on + 1, min(end_tick, int(round(note.end * TICKS_PER_S))))
        events.append((on, 4, bytes([0x90 | ch, int(note.key) & 0x7F, int(np.clip(note.velocity, 1, 127))])))
        events.append((off, 3, bytes([0x80 | ch, int(note.key) & 0x7F, 0])))
        onsets.append(note.start)
    if part.vibrato is not None and not drums and onsets:
        t = np.arange(0.0, duration, VIBRATO_STEP_S)
        keep, bend = vibrato_bends(part.vibrato, t, np.array(sorted(set(onsets)), np.float64))
        for ti, b in zip(t[keep], bend + 8192):  # the 14-bit value, centre 8192
            events.append((int(round(ti * TICKS_PER_S)), 2, bytes([0xE0 | ch, int(b) & 0x7F, int(b) >> 7])))
    events.sort(key=lambda e: (e[0], e[1]))
    track, last = bytearray(), 0
    for tick, _, data in events:
        track += _vlq(tick - last) + data
        last = tick
    track += _vlq(max(0, end_tick - last)) + b"\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


class TimidityRenderer:
    """Renders :class:`PartSpec` parts through a TiMidity++ patch set, one stem per part.

    Parameters
    ----------
    cfg_path : str
        The patch set's TiMidity configuration (e.g. ``/etc/timidity/freepats.cfg``).
    package : str
        Its Debian package (named in errors).
    render_rate : int
        TiMidity's output rate; stems are resampled to 16 kHz.
    """

    def __init__(self, cfg_path: str, package: str, render_rate: int = 32000):
        check_timidity(cfg_path, package)
        self.cfg_path = cfg_path
        self.package = package
        self.render_rate = int(render_rate)
        self._presets = read_presets(cfg_path)

    def presets(self) -> dict[tuple[int, int], str]:
        return dict(self._presets)

    def render_part(self, part: PartSpec, duration: float) -> np.ndarray:
        from .fluid import external_stem

        with tempfile.TemporaryDirectory(prefix="rtclassify-timidity-") as tmp:
            mid, wav = os.path.join(tmp, "part.mid"), os.path.join(tmp, "part.wav")
            with open(mid, "wb") as fh:
                fh.write(part_midi(part, duration))
            cmd = ["timidity", "-c", self.cfg_path, "-idq", "--preserve-silence", "-OwM2", "-s", str(self.render_rate), "-A80",
                   "-EFreverb=d", "-EFchorus=d", "-EFdelay=d", "-EFns=0", "-o", wav, mid]
            return external_stem(cmd, wav, int(round(duration * SAMPLE_RATE)),
                                 f"timidity failed on a part of program {part.program} (bank {part.bank})")

    def render_parts(self, parts: list[PartSpec], duration: float) -> list[np.ndarray]:
        """Render each part as a stem: float32 arrays of ``round(duration*16000)`` samples."""
        return [self.render_part(p, duration) for p in parts]
