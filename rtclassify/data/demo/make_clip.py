"""Rebuild demo.flac, the clip that ``rtclassify demo`` plays, from the sms-tools recordings.

Run from the repository root (the recordings live in ../shared/data/sms-tools)::

    python rtclassify/data/demo/make_clip.py [SMS_TOOLS_DIR]

Each excerpt is cut, faded in and out over 30 ms, peak-normalized to -3 dBFS,
resampled to 16 kHz mono and followed by 0.6 s of silence. The segment list
(file, start s, length s, expected tag) is SEGMENTS below; demo.json records
the resulting segment times so that a test can check what the demo detects.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 16000
GAP_S = 0.6
FADE_S = 0.03
SEGMENTS = [
    ("piano.wav", 0.0, 3.8, "piano"),
    ("speech-female.wav", 0.0, 3.0, "speech"),
    ("sax-phrase.wav", 0.0, 3.0, "woodwind"),
    ("cello-phrase.wav", 0.0, 3.0, "strings"),
    ("bendir.wav", 0.0, 2.5, "drums"),
    ("trumpet-A4.wav", 0.0, 2.5, "brass"),
    ("organ-C3.wav", 0.5, 2.5, "organ"),
]


def build(src: Path, out_dir: Path) -> None:
    parts, meta, t = [np.zeros(int(0.4 * RATE), np.float32)], [], 0.4
    for name, start, length, tag in SEGMENTS:
        x, sr = sf.read(src / name, dtype="float32", always_2d=True)
        x = x.mean(axis=1)[int(start * sr):int((start + length) * sr)]
        x = soxr.resample(x, sr, RATE, quality="VHQ").astype(np.float32)
        fade = int(FADE_S * RATE)
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
        x *= np.float32(10 ** (-3 / 20) / max(float(np.abs(x).max()), 1e-9))
        meta.append({"file": name, "tag": tag, "start": round(t, 4), "end": round(t + len(x) / RATE, 4)})
        t += len(x) / RATE + GAP_S
        parts += [x, np.zeros(int(GAP_S * RATE), np.float32)]
    clip = np.concatenate(parts)
    sf.write(out_dir / "demo.flac", clip, RATE, subtype="PCM_16", format="FLAC")
    (out_dir / "demo.json").write_text(json.dumps({"sample_rate": RATE, "segments": meta}, indent=1) + "\n")


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else here.parents[2].parent / "shared" / "data" / "sms-tools"
    build(src, here)
