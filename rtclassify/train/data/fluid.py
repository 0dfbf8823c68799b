"""FluidSynth rendering of generated parts, in process and without an audio driver.

Each part is rendered as its own stem with ``fluid_synth_write_float`` at
``render_rate`` (32 kHz by default, so the soundfont samples' pitch-shifting
interpolation does not alias into the band the model sees) and resampled to
16 kHz with soxr. Events are applied on FluidSynth's 64-sample block grid.

Determinism: a FluidSynth synth keeps state from one render to the next (a
stem rendered second differs in its last bits from the same stem rendered
first), so every clip is rendered by a fresh synth, in a fixed order. A
"holder" synth per soundfont keeps FluidSynth's sample cache warm, so creating
the fresh synth and loading the soundfont takes ~0.1 s.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from dataclasses import dataclass

import numpy as np

from ...errors import MissingDependencyError, ParameterError, RtclassifyError, require
from .gm import DRUM_KITS, PartSpec, bend_range_ccs, vibrato_bends
from .labels import SAMPLE_RATE

BLOCK = 64  # FluidSynth's internal block size
#: Samples (at the render rate) between pitch-bend updates of a part's vibrato (8 ms at 32 kHz).
VIBRATO_CONTROL = 4 * BLOCK


def set_bend_range(synth, chan: int, semitones: int = 2) -> None:
    """Set a channel's pitch-bend range (RPN 0) to ``semitones``, then deselect the RPN."""
    for cc, v in bend_range_ccs(semitones):
        synth.cc(chan, cc, v)


@dataclass(frozen=True)
class SoundFont:
    """A GM soundfont from a Debian package (``engine`` "timidity": a GUS patch set, ``path`` its
    TiMidity++ configuration, rendered by :mod:`.timidity`; ``engine`` "stk": STK's physical models,
    rendered by :mod:`.stk`; ``drums_from``: the soundfont that plays this one's drum parts
    instead)."""

    name: str
    path: str
    package: str
    license: str
    engine: str = "fluidsynth"
    drums_from: str | None = None


def _musescore_path() -> str:
    for p in ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "/usr/share/sounds/sf2/MuseScore_General_Lite.sf2",
              "/usr/share/sounds/sf3/MuseScore_General.sf3", "/usr/share/sounds/sf2/MuseScore_General.sf2"):
        if os.path.exists(p):
            return p
    return "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"


SOUNDFONTS: dict[str, SoundFont] = {
    "FluidR3_GM": SoundFont("FluidR3_GM", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm", "MIT"),
    "MuseScore_General": SoundFont("MuseScore_General", _musescore_path(), "musescore-general-soundfont-small", "MIT"),
    "TimGM6mb": SoundFont("TimGM6mb", "/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont", "GPL-2.0"),
    # FM synthesis of the OPL3 chip (one drum kit); an optional training timbre (data build --extra-soundfonts)
    "OPL3_FM": SoundFont("OPL3_FM", "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2", "opl3-soundfont", "CC-BY-SA-4.0"),
    # sampled instruments of the FreePats project through TiMidity++; an optional training timbre
    "FreePats": SoundFont("FreePats", "/etc/timidity/freepats.cfg", "freepats",
                          "GPL-2.0-or-later with a composition exception", engine="timidity"),
    # the same patch set for pitched parts only; its clips' drum parts are played by FluidR3_GM
    "FreePats_pitched": SoundFont("FreePats_pitched", "/etc/timidity/freepats.cfg", "freepats",
                                  "GPL-2.0-or-later with a composition exception", engine="timidity",
                                  drums_from="FluidR3_GM"),
    # STK's physical models with controls drawn per part (rendered by :mod:`.stk`); an optional
    # training timbre, its clips' drum parts played by FluidR3_GM
    "STK": SoundFont("STK", "/usr/share/stk/rawwaves/", "stk", "STK license (MIT-style)", engine="stk",
                     drums_from="FluidR3_GM"),
}


def external_stem(cmd: list[str], wav: str, n_out: int, failure: str, **run_kw) -> np.ndarray:
    """Run an external renderer (TiMidity++, stk-demo) that writes the WAV file ``wav`` and return it as
    a 16 kHz mono float32 stem of ``n_out`` samples (cut or zero-padded); raise RtclassifyError
    starting with ``failure`` when it fails."""
    import soundfile as sf
    import soxr

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **run_kw)
    if res.returncode != 0 or not os.path.exists(wav):
        raise RtclassifyError(f"{failure}: {(res.stderr or res.stdout).strip()[-300:]}")
    x, sr = sf.read(wav, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    y = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32) if len(x) else np.zeros(0, np.float32)
    out = np.zeros(n_out, np.float32)
    out[:min(n_out, len(y))] = y[:n_out]
    return out


def check_soundfonts(names) -> None:
    """Raise MissingDependencyError naming the Debian package of any missing soundfont."""
    for n in names:
        sf = SOUNDFONTS[n]
        if sf.engine == "timidity":
            from .timidity import check_timidity

            check_timidity(sf.path, sf.package)
        elif sf.engine == "stk":
            from .stk import check_stk

            check_stk(sf.package)
        elif not os.path.exists(sf.path):
            raise MissingDependencyError(
                f"soundfont {sf.name} not found at {sf.path}; install the Debian package {sf.package} "
                f"(apt-get install {sf.package})")


def _fluidsynth():
    try:
        fs = require("fluidsynth", extra="train", system="fluidsynth (libfluidsynth3)")
    except (ImportError, OSError) as exc:
        if isinstance(exc, MissingDependencyError):
            raise
        raise MissingDependencyError(
            f"pyfluidsynth cannot load libfluidsynth ({exc}); install the Debian package fluidsynth") from exc
    if not hasattr(fs, "_fl") or not hasattr(fs, "Synth"):
        raise MissingDependencyError("the 'fluidsynth' module is not pyfluidsynth; pip install pyfluidsynth")
    return fs


def check_fluidsynth() -> None:
    """Raise MissingDependencyError when pyfluidsynth or libfluidsynth is missing (without loading it)."""
    import ctypes.util
    import importlib.util

    if importlib.util.find_spec("fluidsynth") is None:
        raise MissingDependencyError("pyfluidsynth is not installed; pip install 'rtclassify[train]' "
                                     "(or pip install pyfluidsynth)")
    if ctypes.util.find_library("fluidsynth") is None:
        raise MissingDependencyError("libfluidsynth not found; install the Debian package fluidsynth "
                                     "(apt-get install fluidsynth)")


class FluidRenderer:
    """Renders :class:`PartSpec` parts through GM soundfonts.

    Parameters
    ----------
    render_rate : int
        FluidSynth's output rate; stems are resampled to 16 kHz.
    """

    def __init__(self, render_rate: int = 32000):
        if not 8000 <= int(render_rate) <= 96000:
            raise ParameterError(f"render_rate: {render_rate} outside 8000..96000 Hz")
        self.render_rate = int(render_rate)
        self._fs = _fluidsynth()
        self._write = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
            ctypes.c_void_p, ctypes.c_int, ctypes.c_int)(("fluid_synth_write_float", self._fs._fl))
        self._holders: dict[str, object] = {}
        self._presets: dict[str, dict[tuple[int, int], str]] = {}
        self._patch_sets: dict[str, object] = {}

    # -- synth lifecycle
    def _new_synth(self, sf_name: str):
        sf = SOUNDFONTS[sf_name]
        check_soundfonts([sf_name])
        synth = self._fs.Synth(gain=0.4, samplerate=float(self.render_rate), **{
            "synth.reverb.active": 0, "synth.chorus.active": 0, "synth.polyphony": 256,
            "synth.cpu-cores": 1, "synth.dynamic-sample-loading": 0, "synth.verbose": 0})
        sfid = synth.sfload(sf.path)
        if sfid < 0:
            synth.delete()
            raise MissingDependencyError(f"FluidSynth could not load {sf.path} (package {sf.package})")
        return synth, sfid

    def _holder(self, sf_name: str):
        if sf_name not in self._holders:
            synth, sfid = self._new_synth(sf_name)
            self._holders[sf_name] = (synth, sfid)
            presets = {}
            for prog in range(128):
                name = synth.sfpreset_name(sfid, 0, prog)
                if name:
                    presets[(0, prog)] = name
            for kit in DRUM_KITS:
                name = synth.sfpreset_name(sfid, 128, kit)
                if name:
                    presets[(128, kit)] = name
            self._presets[sf_name] = presets
        return self._holders[sf_name]

    def _patch_set(self, sf_name: str):
        """The renderer of a patch set (``engine`` "timidity" or "stk"), or None for a soundfont."""
        sf = SOUNDFONTS[sf_name]
        if sf.engine == "fluidsynth":
            return None
        if sf_name not in self._patch_sets:
            if sf.engine == "stk":
                from .stk import StkRenderer

                self._patch_sets[sf_name] = StkRenderer(sf.package, self.render_rate)
            else:
                from .timidity import TimidityRenderer

                self._patch_sets[sf_name] = TimidityRenderer(sf.path, sf.package, self.render_rate)
        return self._patch_sets[sf_name]

    def presets(self, sf_name: str) -> dict[tuple[int, int], str]:
        """``{(bank, program): preset name}`` available in a soundfont."""
        if (ts := self._patch_set(sf_name)) is not None:
            return ts.presets()
        self._holder(sf_name)
        return self._presets[sf_name]

    def close(self) -> None:
        for synth, _ in self._holders.values():
            synth.delete()
        self._holders.clear()

    # -- rendering
    def _render_block(self, synth, n: int, left: np.ndarray, right: np.ndarray, pos: int) -> None:
        self._write(synth.synth, n, left.ctypes.data + 4 * pos, 0, 1, right.ctypes.data + 4 * pos, 0, 1)

    def _vibrato_events(self, synth, chan: int, vibrato, note_ons: list[int], n_total: int) -> list[tuple]:
        """Pitch-bend events (position, 2, bend, 0) every :data:`VIBRATO_CONTROL` samples for a part's
        ``vibrato`` given its note-on positions (samples); sets the channel's bend range to 2 semitones."""
        set_bend_range(synth, chan)
        pos = np.arange(0, n_total, VIBRATO_CONTROL)
        onsets = np.array(sorted(set(note_ons)), np.float64) / self.render_rate
        keep, bend = vibrato_bends(vibrato, (pos + 0.5 * VIBRATO_CONTROL) / self.render_rate, onsets)
        return [(int(p), 2, int(b), 0) for p, b in zip(pos[keep], bend)]

    def render_parts(self, sf_name: str, parts: list[PartSpec], duration: float, tail: float = 0.0) -> list[np.ndarray]:
        """Render each part as a stem.

        Parameters
        ----------
        sf_name : str
            Key of :data:`SOUNDFONTS`.
        parts : list of PartSpec
        duration : float
            Stem length in seconds (notes are cut at the end).

        Returns
        -------
        list of np.ndarray, each shape (round(duration*16000),), float32
        """
        import soxr

        if (ts := self._patch_set(sf_name)) is not None:
            return ts.render_parts(parts, duration)
        self._holder(sf_name)
        synth, sfid = self._new_synth(sf_name)
        out = []
        try:
            n_total = int(np.ceil(duration * self.render_rate / BLOCK)) * BLOCK
            n_out = int(round(duration * SAMPLE_RATE))
            for ch, part in enumerate(parts):
                chan = 9 if part.bank == 128 else (ch if ch < 9 else ch + 1)
                if synth.program_select(chan, sfid, part.bank, part.program) != 0:
                    raise RuntimeError(f"soundfont {sf_name} has no preset bank {part.bank} program {part.program}")
                events = []
                for nt in part.notes:
                    on = int(round(nt.start * self.render_rate / BLOCK)) * BLOCK
                    off = max(on + BLOCK, int(round(nt.end * self.render_rate / BLOCK)) * BLOCK)
                    events.append((on, 1, nt.key, nt.velocity))
                    events.append((off, 0, nt.key, 0))
                if part.vibrato is not None:
                    events += self._vibrato_events(synth, chan, part.vibrato, [e[0] for e in events if e[1] == 1],
                                                   n_total)
                events.sort(key=lambda e: (e[0], e[1]))
                left = np.zeros(n_total, np.float32)
                right = np.zeros(n_total, np.float32)
                pos = 0
                for t, kind, key, vel in events:
                    t = min(t, n_total)
                    if t > pos:
                        self._render_block(synth, t - pos, left, right, pos)
                        pos = t
                    if kind == 2:
                        synth.pitch_bend(chan, key)
                    elif kind:
                        synth.noteon(chan, key, vel)
                    else:
                        synth.noteoff(chan, key)
                if pos < n_total:
                    self._render_block(synth, n_total - pos, left, right, pos)
                synth.all_sounds_off(chan)
                self._render_block(synth, BLOCK, np.zeros(BLOCK, np.float32), np.zeros(BLOCK, np.float32), 0)
                mono = 0.5 * (left + right)
                y = soxr.resample(mono, self.render_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
                y = y[:n_out]
                if len(y) < n_out:
                    y = np.pad(y, (0, n_out - len(y)))
                out.append(y)
        finally:
            synth.delete()
        return out
