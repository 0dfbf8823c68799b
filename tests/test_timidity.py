"""TiMidity++ patch-set rendering (FreePats): presets, MIDI files, stems and errors."""

import os
import shutil
import struct

import numpy as np
import pytest

from rtclassify.errors import MissingDependencyError
from rtclassify.train.data import gm
from rtclassify.train.data.fluid import SOUNDFONTS
from rtclassify.train.data.gm import Note, PartSpec

pytest.importorskip("soxr")
import rtclassify.train.data.timidity as T  # noqa: E402  (the project's own module: a failed import fails)
FREEPATS = SOUNDFONTS["FreePats"].path
needs_freepats = pytest.mark.skipif(shutil.which("timidity") is None or not os.path.exists(FREEPATS),
                                    reason="apt-get install timidity freepats")


def _events(smf: bytes) -> list[tuple[int, bytes]]:
    """(absolute tick, status + data) of a format-0 file's channel and meta events."""
    assert smf[:4] == b"MThd" and struct.unpack(">IHHH", smf[4:14]) == (6, 0, 1, 480)
    assert smf[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", smf[18:22])
    data, pos, tick, out = smf[22:22 + length], 0, 0, []
    assert len(data) == length
    while pos < len(data):
        delta = 0
        while True:
            b = data[pos]
            pos += 1
            delta = (delta << 7) | (b & 0x7F)
            if b < 0x80:
                break
        tick += delta
        if data[pos] == 0xFF:
            n = data[pos + 2]
            out.append((tick, bytes(data[pos:pos + 3 + n])))
            pos += 3 + n
        else:
            n = 2 if data[pos] >> 4 in (0xC, 0xD) else 3
            out.append((tick, bytes(data[pos:pos + n])))
            pos += n
    return out


def test_config_parsing(tmp_path):
    cfg = tmp_path / "set.cfg"
    cfg.write_text("dir /somewhere\n# comment\ndrumset 0\n 35\tDrum_000/035_Kick.pat amp=100\n"
                   "bank 0\n 0\tTone_000/000_Piano.pat\n 40\tTone_000/040_Violin.pat # bowed\n"
                   "bank 8\n 0\tTone_008/x.pat\n")
    assert T.read_presets(str(cfg)) == {(128, 0): "Drum_000/035_Kick.pat", (0, 0): "Tone_000/000_Piano.pat",
                                        (0, 40): "Tone_000/040_Violin.pat"}


def test_part_midi_events():
    part = PartSpec("strings", "melody", 40, 0, [Note(0.5, 1.0, 60, 100), Note(1.0, 9.0, 64, 0), Note(4.5, 5, 67, 90)])
    ev = _events(T.part_midi(part, 4.0))
    notes = [(t, e) for t, e in ev if e[0] >> 4 in (8, 9)]
    assert notes == [(480, b"\x90\x3c\x64"), (960, b"\x80\x3c\x00"), (960, b"\x90\x40\x01"), (3840, b"\x80\x40\x00")]
    assert (0, b"\xc0\x28") in ev                      # program 40 on channel 1
    assert ev[-1] == (3840, b"\xff\x2f\x00")           # the file ends at the clip's end
    drums = T.part_midi(PartSpec("drums", "drums", 0, 128, [Note(0.0, 0.1, 38, 90)]), 1.0)
    assert (0, b"\x99\x26\x5a") in _events(drums)      # channel 10
    part.vibrato = gm.Vibrato(rate_hz=5.0, depth_cents=50.0, delay_s=0.0, ramp_s=0.0, drift=0.0, seed=1)
    bends = [e for _, e in _events(T.part_midi(part, 4.0)) if e[0] == 0xE0]
    values = np.array([(e[2] << 7 | e[1]) - 8192 for e in bends])
    assert len(bends) > 100 and 1500 < values.max() <= 2049 and -2049 <= values.min() < -1500  # +-50 cents of 2 st


@needs_freepats
def test_freepats_stems_are_deterministic_and_sized():
    r = T.TimidityRenderer(FREEPATS, "freepats", 32000)
    presets = r.presets()
    assert (0, 40) in presets and (128, 0) in presets and (0, 41) not in presets
    part = PartSpec("woodwind", "melody", 73, 0, [Note(0.1, 1.4, 72, 90)])
    a, = r.render_parts([part], 2.0)
    assert a.shape == (32000,) and a.dtype == np.float32
    assert np.sqrt(np.mean(a[3200:20000] ** 2)) > 1e-3
    onset = int(np.argmax(np.abs(a) > 0.01 * np.abs(a).max()))
    assert 1600 <= onset < 1760  # the note starts at 0.1 s: the leading silence is kept
    assert np.array_equal(a, r.render_part(part, 2.0))
    part.vibrato = gm.Vibrato(rate_hz=5.0, depth_cents=50.0, delay_s=0.2, ramp_s=0.3, drift=0.0, seed=1)
    assert not np.array_equal(a, r.render_part(part, 2.0))


def test_missing_patch_set_names_the_package(tmp_path):
    with pytest.raises(MissingDependencyError, match="freepats"):
        T.check_timidity(str(tmp_path / "none.cfg"), "freepats")
