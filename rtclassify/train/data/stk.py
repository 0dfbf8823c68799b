"""Physical-model rendering of generated parts through the Synthesis ToolKit (Debian ``stk``).

The soundfonts and the recorded npm notes are fixed samples: a family is heard through a few
instruments, each with one timbre. STK's physical models (bowed string, reed and jet winds, lip
reed, modal bars, plucked and stiff strings, FM organ and electric piano, formant voice) take
physical controls instead: bow pressure and position, reed stiffness, jet delay, stick hardness,
pickup position and so on. Each part draws its own controls, so one GM program becomes a family
of timbres (a training-only source, ``data build --extra-soundfonts STK``). Drum parts are
played by FluidR3_GM.

Each part becomes a SKINI score rendered by its own ``stk-demo`` process at ``render_rate``
(16-bit WAV) and resampled to 16 kHz with soxr. Some models excite with noise that STK seeds
from the wall clock; the process runs under ``faketime`` with its clock stopped at a time drawn
from the part's own controls, so the output is byte-identical from run to run (a running fake
clock is not enough: a process that starts slowly on a loaded machine reads the next second).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

from ...errors import MissingDependencyError, RtclassifyError
from .gm import PartSpec
from .labels import SAMPLE_RATE

#: Folder of STK's raw wave tables (Debian libstk).
RAWWAVES = "/usr/share/stk/rawwaves/"


@dataclass(frozen=True)
class StkVoice:
    """An STK instrument for a GM program: ``fixed`` controls always sent (a ModalBar preset),
    ``drawn`` controls ``(cc, lo, hi)`` drawn per part, uniformly in ``lo..hi``; note velocities are
    mapped to ``min_velocity..127``; ``volume`` is stk-demo's output volume (CC 7, so the loud
    models do not clip its 16-bit output); notes under ``min_key`` are raised and notes over
    ``max_key`` lowered by octaves (the model is silent there)."""

    instrument: str
    drawn: tuple[tuple[int, int, int], ...] = ()
    fixed: tuple[tuple[int, int], ...] = ()
    min_velocity: int = 1
    volume: int = 127
    min_key: int = 0
    max_key: int = 127


# Control numbers are STK's (see each class's documentation). Vibrato gain (CC 1) is drawn from 0
# half of the time: a held note of a real player is often straight.
_BOWED = StkVoice("Bowed", ((2, 30, 100), (4, 15, 95), (11, 40, 75), (1, 0, 24)), min_velocity=70, volume=64,
                  max_key=88)
_CLARINET = StkVoice("Clarinet", ((2, 40, 100), (4, 5, 40), (11, 40, 75), (1, 0, 16)), min_velocity=80, volume=40)
_SAX = StkVoice("Saxofony", ((2, 40, 100), (4, 40, 90), (11, 5, 40), (26, 40, 70), (1, 0, 16)), min_velocity=80,
                volume=40)
_FLUTE = StkVoice("Flute", ((2, 45, 80), (4, 10, 50), (11, 40, 75), (1, 0, 20)), min_velocity=80, volume=40)
_BRASS = StkVoice("Brass", ((11, 40, 75), (1, 0, 16)), min_velocity=80, min_key=67)
_FM_KEYS = ((2, 30, 90), (4, 30, 90), (11, 30, 80), (1, 0, 10))
_ORGAN = StkVoice("BeeThree", ((2, 20, 100), (4, 20, 100), (11, 30, 80), (1, 0, 30)), volume=64)
_VOICE = StkVoice("VoicForm", ((2, 110, 128), (4, 0, 40), (11, 40, 75), (1, 0, 40)), min_velocity=60, volume=48)

_GUITAR = StkVoice("StifKarp", ((4, 10, 100), (11, 60, 120), (1, 0, 40)))
_BASS = StkVoice("StifKarp", ((4, 10, 100), (11, 70, 120), (1, 0, 30)))
_MANDOLIN = StkVoice("Mandolin", ((2, 40, 90), (4, 10, 90), (11, 60, 120), (1, 0, 20)))
_MOOG = StkVoice("Moog", ((2, 20, 110), (4, 0, 60), (11, 40, 75), (1, 0, 15)))

STK_PROGRAMS: dict[int, StkVoice] = {
    4: StkVoice("Rhodey", _FM_KEYS), 5: StkVoice("Wurley", _FM_KEYS),
    11: StkVoice("ModalBar", ((2, 40, 110), (4, 20, 100), (11, 0, 40), (1, 0, 60)), ((16, 1),)),
    12: StkVoice("ModalBar", ((2, 40, 110), (4, 20, 100), (1, 0, 60)), ((16, 0),)),
    13: StkVoice("ModalBar", ((2, 60, 120), (4, 20, 100), (1, 0, 60)), ((16, 3),)),
    14: StkVoice("TubeBell", _FM_KEYS),
    16: _ORGAN, 17: _ORGAN, 18: _ORGAN,
    24: _GUITAR, 25: _GUITAR, 26: StkVoice("Plucked"), 27: _MANDOLIN, 104: StkVoice("Sitar"), 105: _MANDOLIN,
    32: _BASS, 33: StkVoice("Plucked"), 34: _BASS,
    40: _BOWED, 41: _BOWED, 42: _BOWED, 43: _BOWED, 48: _BOWED, 49: _BOWED,
    52: _VOICE, 53: _VOICE,
    54: StkVoice("FMVoices", ((2, 0, 127), (4, 20, 100), (11, 40, 75), (1, 0, 30)), volume=64),
    56: _BRASS, 57: _BRASS, 58: _BRASS, 60: _BRASS, 61: _BRASS,
    64: _SAX, 65: _SAX, 66: _SAX, 67: _SAX,
    71: _CLARINET, 72: _FLUTE, 73: _FLUTE,
    74: StkVoice("Recorder", ((11, 40, 75), (1, 0, 16)), min_velocity=80, volume=40),
    76: StkVoice("BlowBotl", ((4, 5, 40), (11, 40, 75), (1, 0, 16)), min_velocity=80, volume=64),
    80: _MOOG, 81: _MOOG, 87: _MOOG,
}


def check_stk(package: str = "stk") -> None:
    """Raise MissingDependencyError naming the Debian packages when stk-demo, its wave tables or
    faketime are missing."""
    if shutil.which("stk-demo") is None:
        raise MissingDependencyError(f"stk-demo not found; install the Debian package {package} "
                                     f"(apt-get install {package})")
    if not os.path.isdir(RAWWAVES):
        raise MissingDependencyError(f"STK wave tables {RAWWAVES} not found; install the Debian package {package}")
    if shutil.which("faketime") is None:
        raise MissingDependencyError("faketime not found; install the Debian package faketime "
                                     "(apt-get install faketime)")


def part_controls(part: PartSpec) -> tuple[str, list[tuple[int, int]], int]:
    """The STK instrument of a part, its controls ``[(cc, value)]`` and a clock seed, drawn from
    the part's notes (the same part always gets the same controls)."""
    voice = STK_PROGRAMS.get(int(part.program))
    if voice is None or part.bank != 0:
        raise RtclassifyError(f"STK has no instrument for program {part.program} (bank {part.bank})")
    key = [int(part.program)] + [int(round(n.start * 1000)) for n in part.notes[:8]] + \
          [int(n.key) for n in part.notes[:8]]
    rng = np.random.default_rng(key)
    ccs = [(7, voice.volume)] + list(voice.fixed)
    for cc, lo, hi in voice.drawn:
        value = int(rng.integers(lo, hi + 1))
        if cc == 1 and rng.random() < 0.5:
            value = 0
        ccs.append((cc, value))
    return voice.instrument, ccs, int(rng.integers(0, 86400 * 365))


def part_skini(part: PartSpec, duration: float, ccs: list[tuple[int, int]]) -> str:
    """A SKINI score of ``part`` (delta times; notes cut at ``duration`` s; a last message at
    ``duration`` so the render lasts that long)."""
    voice = STK_PROGRAMS[int(part.program)]
    events: list[tuple[float, int, str]] = [(0.0, 0, f"ControlChange\t{{dt}}\t1\t{cc}\t{v}") for cc, v in ccs]
    for note in part.notes:
        if note.start >= duration:
            continue
        key = int(note.key)
        while key < voice.min_key:
            key += 12
        while key > voice.max_key:
            key -= 12
        vel = int(np.clip(voice.min_velocity + (note.velocity - 1) * (127 - voice.min_velocity) / 126, 1, 127))
        events.append((float(note.start), 2, f"NoteOn\t{{dt}}\t1\t{key}\t{vel}"))
        events.append((float(min(note.end, duration)), 1, f"NoteOff\t{{dt}}\t1\t{key}\t64"))
    events.append((float(duration), 3, "NoteOff\t{dt}\t1\t0\t0"))
    events.sort(key=lambda e: (e[0], e[1]))
    lines, now = [], 0.0
    for t, _, fmt in events:
        lines.append(fmt.format(dt=f"{t - now:.6f}"))
        now = t
    return "\n".join(lines) + "\n"


def _polyphony(part: PartSpec) -> int:
    edges = sorted([(n.start, 1) for n in part.notes] + [(n.end, -1) for n in part.notes])
    cur = best = 0
    for _, d in edges:
        cur += d
        best = max(best, cur)
    return max(1, best)


class StkRenderer:
    """Renders :class:`PartSpec` parts through STK's physical models, one stem per part.

    Parameters
    ----------
    package : str
        The Debian package (named in errors).
    render_rate : int
        STK's output rate; stems are resampled to 16 kHz.
    """

    def __init__(self, package: str = "stk", render_rate: int = 32000):
        check_stk(package)
        self.package = package
        self.render_rate = int(render_rate)

    def presets(self) -> dict[tuple[int, int], str]:
        """``{(0, program): STK instrument}`` for the GM programs STK plays."""
        return {(0, p): v.instrument for p, v in STK_PROGRAMS.items()}

    def render_part(self, part: PartSpec, duration: float) -> np.ndarray:
        from .fluid import external_stem

        instrument, ccs, clock = part_controls(part)
        stamp = f"2001-01-01 {clock // 3600 % 24:02d}:{clock // 60 % 60:02d}:{clock % 60:02d}"
        with tempfile.TemporaryDirectory(prefix="rtclassify-stk-") as tmp:
            ski, wav = os.path.join(tmp, "part.ski"), os.path.join(tmp, "part.wav")
            with open(ski, "w") as fh:
                fh.write(part_skini(part, duration, ccs))
            cmd = ["faketime", "-f", stamp, "stk-demo", instrument, "-n", str(_polyphony(part) + 1),
                   "-s", str(self.render_rate), "-ow", wav, "-if", ski]
            return external_stem(cmd, wav, int(round(duration * SAMPLE_RATE)),
                                 f"stk-demo {instrument} failed on a part of program {part.program}",
                                 cwd=tmp, env=dict(os.environ, RAWWAVE_PATH=RAWWAVES))

    def render_parts(self, parts: list[PartSpec], duration: float) -> list[np.ndarray]:
        """Render each part as a stem: float32 arrays of ``round(duration*16000)`` samples."""
        return [self.render_part(p, duration) for p in parts]
