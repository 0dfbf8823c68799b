"""Speech and singing from speech synthesizers in Debian packages.

Speech
------
* espeak-ng (Debian ``espeak-ng``; output GPL-3): many languages and voice
  variants, random speaking rate, pitch and word gaps.
* Festival diphone / unit-selection voices (Debian ``festival`` and
  ``festvox-*``): concatenations of real recorded diphones or units, so their
  timbre is a real voice's (American English kal/ked, Italian lp/pc, Czech
  dita/machac/krb, Finnish lj/mv, Russian nsh).

Text is random: English sentences from a small grammar for English voices,
pronounceable pseudo-words for the others (Cyrillic for the Russian voice).

Singing
-------
Speech turned into sung notes with praat-parselmouth: the voiced stretches
(syllable nuclei) of an utterance each get a held note of a melody on a scale
(PitchTier replaced, optional 4-7 Hz vibrato of 20-80 cents, short glides),
and are lengthened 1.8-3.5x through a DurationTier while consonants keep
their length; overlap-add resynthesis. Labelled ``singing``, never ``speech``.
The GM choir and voice presets (programs 52-54) are the other singing source
(see :mod:`.gm`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from ...errors import MissingDependencyError, RtclassifyError, require
from .labels import SAMPLE_RATE

# --------------------------------------------------------------------------- voices

#: espeak-ng languages used (each gives its phonetics and default voice).
ESPEAK_LANGUAGES = (
    "en-us", "en-gb", "en-gb-scotland", "en-029", "en-us-nyc", "de", "fr-fr", "es", "es-419", "it", "pt",
    "pt-br", "nl", "sv", "nb", "da", "fi", "pl", "cs", "sk", "hu", "ro", "ru", "uk", "bg", "el", "tr",
    "ar", "he", "hi", "bn", "ta", "id", "ms", "vi", "cmn", "yue", "ja", "ko", "sw", "af", "cy", "ga",
    "is", "lt", "lv", "et", "hr", "sr", "sl", "ca", "eu",
)

#: espeak-ng voice variants (timbres) for training and validation.
ESPEAK_VARIANTS_TRAIN = (
    "m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f5", "klatt", "klatt2", "klatt4",
    "Alex", "Alicia", "Andy", "Annie", "Denis", "Diogo", "Gene", "Hugo", "Jacky", "Lee", "Marco",
    "Michael", "Mike", "Nguyen", "adam", "anika", "antonio", "aunty", "belinda", "benjamin", "caleb",
    "david", "ed", "edward", "grandma", "grandpa", "gustave", "iven", "john", "linda", "max", "michel",
    "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph",
    "travis", "victor", "whisper", "zac",
)
#: espeak-ng variants reserved for the test split.
ESPEAK_VARIANTS_TEST = ("m6", "f4", "klatt3", "Andrea", "boris", "iven2", "steph2", "whisperf", "marcelo")

#: Festival voice -> (language, Debian package, license). Keys are the names after ``voice_``.
FESTIVAL_VOICES: dict[str, tuple[str, str, str]] = {
    "kal_diphone": ("en", "festvox-kallpc16k", "Festvox (BSD-like)"),
    "ked_diphone": ("en", "festvox-kdlpc16k", "Festvox (BSD-like)"),
    "lp_diphone": ("it", "festvox-italp16k", "GPL-2.0+"),
    "pc_diphone": ("it", "festvox-itapc16k", "GPL-2.0+"),
    "czech_dita": ("cs", "festvox-czech-dita", "GPL-3.0+"),
    "czech_machac": ("cs", "festvox-czech-machac", "GPL-3.0+"),
    "czech_krb": ("cs", "festvox-czech-krb", "GPL-3.0+"),
    "suo_fi_lj_diphone": ("fi", "festvox-suopuhe-lj", "LGPL-2.1+"),
    "hy_fi_mv_diphone": ("fi", "festvox-suopuhe-mv", "LGPL-2.1+"),
    "msu_ru_nsh_clunits": ("ru", "festvox-ru", "BSD-like"),
}
FESTIVAL_VOICES_TEST = ("ked_diphone", "pc_diphone", "czech_krb", "hy_fi_mv_diphone")
FESTIVAL_VOICES_TRAIN = tuple(v for v in FESTIVAL_VOICES if v not in FESTIVAL_VOICES_TEST)

ESPEAK_LICENSE = "GPL-3.0 (espeak-ng output)"

_FEMALE_HINT = {"f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda", "grandma",
                "linda", "shelby", "steph", "steph2", "whisperf", "lp_diphone", "czech_dita", "suo_fi_lj_diphone"}

# --------------------------------------------------------------------------- text

_SUBJ = ("the old man", "my sister", "a small dog", "the teacher", "our neighbours", "this machine", "the children",
         "a young woman", "the weather", "everybody", "nobody here", "the captain", "your friend", "the city")
_VERB = ("wants to see", "never forgets", "is looking for", "carried", "found", "will bring", "talked about",
         "remembers", "could not open", "painted", "is waiting for", "sold", "heard", "likes")
_OBJ = ("the red house", "a long letter", "the morning train", "three green apples", "the blue door",
        "an empty box", "the river", "a strange noise", "the last page", "some fresh bread", "the garden",
        "a quiet street", "the winter coat", "the key")
_TAIL = ("yesterday", "after lunch", "every Sunday", "in the rain", "before dinner", "at the station", "again",
         "very slowly", "without a word", "near the window", "last summer", "right now", "", "", "")
_QUESTIONS = ("do you know where", "why did", "when will", "how often does")
_CONS = "ptkbdgmnlrsvfzhj"
_VOW = "aeiou"
_CYR_CONS = "пткбдгмнлрсвфзх"
_CYR_VOW = "аеиоуя"


def english_sentence(rng: np.random.Generator) -> str:
    s = f"{rng.choice(_SUBJ)} {rng.choice(_VERB)} {rng.choice(_OBJ)} {rng.choice(_TAIL)}".strip()
    if rng.random() < 0.2:
        s = f"{rng.choice(_QUESTIONS)} {s}?"
    else:
        s = s[0].upper() + s[1:] + rng.choice([".", ".", "!", ","])
    return s


def pseudo_sentence(rng: np.random.Generator, cyrillic: bool = False) -> str:
    cons, vow = (_CYR_CONS, _CYR_VOW) if cyrillic else (_CONS, _VOW)
    words = []
    for _ in range(int(rng.integers(4, 11))):
        syl = []
        for _ in range(int(rng.integers(1, 4))):
            s = ("" if rng.random() < 0.15 else cons[rng.integers(len(cons))]) + vow[rng.integers(len(vow))]
            if rng.random() < 0.25:
                s += cons[rng.integers(len(cons))]
            syl.append(s)
        words.append("".join(syl))
    return " ".join(words) + rng.choice([".", ".", "?", "!"])


# --------------------------------------------------------------------------- engines

def check_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingDependencyError("espeak-ng not found; install the Debian package espeak-ng")
    return exe


def check_festival(voices=tuple(FESTIVAL_VOICES)) -> str:
    exe = shutil.which("text2wave")
    if exe is None:
        pkgs = " ".join(sorted({FESTIVAL_VOICES[v][1] for v in voices}))
        raise MissingDependencyError(f"festival's text2wave not found; install the Debian packages festival {pkgs}")
    missing = [v for v in voices if not _festival_voice_dir(v)]
    if missing:
        pkgs = " ".join(sorted({FESTIVAL_VOICES[v][1] for v in missing}))
        raise MissingDependencyError(f"festival voices {', '.join(missing)} not installed; install the Debian packages {pkgs}")
    return exe


def _festival_voice_dir(voice: str) -> str | None:
    root = "/usr/share/festival/voices"
    if not os.path.isdir(root):
        return None
    for lang in os.listdir(root):
        d = os.path.join(root, lang, voice)
        if os.path.isdir(d):
            return d
    return None


class SynthesisFailed(RtclassifyError):
    """A speech engine produced no usable audio for a text (the caller draws another one)."""


def _read_wav(path: str) -> np.ndarray:
    import soundfile as sf
    import soxr

    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise SynthesisFailed(f"unreadable synthesizer output {path}: {exc}") from None
    if len(x) == 0 or not np.any(x):
        raise SynthesisFailed(f"empty synthesizer output {path}")
    x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return x


@dataclass
class Utterance:
    """A synthesized utterance at 16 kHz with its provenance."""

    audio: np.ndarray
    engine: str      # "espeak-ng" | "festival"
    voice: str
    text: str
    sample_rate_native: int = 0


def espeak(rng: np.random.Generator, split: str, tmpdir: str, sung: bool = False) -> Utterance:
    """One random espeak-ng utterance (language, variant, rate, pitch drawn from ``rng``)."""
    exe = check_espeak()
    lang = str(rng.choice(ESPEAK_LANGUAGES))
    variant = str(rng.choice(ESPEAK_VARIANTS_TEST if split == "test" else ESPEAK_VARIANTS_TRAIN))
    text = english_sentence(rng) if lang.startswith("en") else pseudo_sentence(rng)
    rate = int(rng.integers(95, 150) if sung else rng.integers(110, 250))
    pitch = int(rng.integers(15, 85))
    gap = int(rng.integers(0, 6))
    out = os.path.join(tmpdir, "espeak.wav")
    cmd = [exe, "-v", f"{lang}+{variant}", "-s", str(rate), "-p", str(pitch), "-g", str(gap),
           "-w", out, text]
    if os.path.exists(out):
        os.unlink(out)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(out):
        raise SynthesisFailed(f"espeak-ng failed for voice {lang}+{variant}: {proc.stderr.strip()}")
    x = _read_wav(out)
    os.unlink(out)
    return Utterance(x, "espeak-ng", f"{lang}+{variant}", text)


def festival(rng: np.random.Generator, split: str, tmpdir: str, sung: bool = False) -> Utterance:
    """One random Festival utterance from a voice of the split."""
    exe = check_festival(FESTIVAL_VOICES_TEST if split == "test" else FESTIVAL_VOICES_TRAIN)
    voice = str(rng.choice(FESTIVAL_VOICES_TEST if split == "test" else FESTIVAL_VOICES_TRAIN))
    lang = FESTIVAL_VOICES[voice][0]
    text = english_sentence(rng) if lang == "en" else pseudo_sentence(rng, cyrillic=(lang == "ru"))
    stretch = float(rng.uniform(1.1, 1.5) if sung else rng.uniform(0.8, 1.25))
    txt = os.path.join(tmpdir, "festival.txt")
    out = os.path.join(tmpdir, "festival.wav")
    with open(txt, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    cmd = [exe, "-eval", f"(voice_{voice})", "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.3f})",
           "-o", out, txt]
    if os.path.exists(out):
        os.unlink(out)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(out):
        raise SynthesisFailed(f"festival failed for voice {voice}: {proc.stderr.strip()[-300:]}")
    x = _read_wav(out)
    os.unlink(out)
    os.unlink(txt)
    return Utterance(x, "festival", voice, text)


def is_female(voice: str) -> bool:
    return voice.split("+")[-1] in _FEMALE_HINT


# --------------------------------------------------------------------------- singing

def _voiced_runs(f0: np.ndarray, times: np.ndarray, min_len: float = 0.05, merge_gap: float = 0.03):
    runs = []
    v = f0 > 0
    i = 0
    dt = times[1] - times[0] if len(times) > 1 else 0.01
    while i < len(v):
        if v[i]:
            j = i
            while j + 1 < len(v) and v[j + 1]:
                j += 1
            runs.append([times[i] - dt / 2, times[j] + dt / 2])
            i = j + 1
        else:
            i += 1
    merged = []
    for r in runs:
        if merged and r[0] - merged[-1][1] <= merge_gap:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    return [(a, b) for a, b in merged if b - a >= min_len]


def sing(x: np.ndarray, rng: np.random.Generator, low_hz: float, high_hz: float,
         scale: tuple[int, ...] = (0, 2, 4, 5, 7, 9, 11), tonic: int = 0) -> np.ndarray:
    """Turn speech into singing (held notes, optional vibrato, lengthened vowels).

    Parameters
    ----------
    x : np.ndarray, shape (n,)
        Speech at 16 kHz.
    low_hz, high_hz : float
        Range of the sung notes.
    scale, tonic
        Pitch classes of the melody.

    Returns
    -------
    np.ndarray, shape (m,), float32, at 16 kHz; empty when ``x`` has no voiced part.
    """
    parselmouth = require("parselmouth", extra="train")
    from parselmouth.praat import call

    # Praat's overlap-add uses its own random generator: seed it from ``rng`` for byte-identical output
    parselmouth.praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({int(rng.integers(1, 2**31))})")
    snd = parselmouth.Sound(np.asarray(x, np.float64), sampling_frequency=SAMPLE_RATE)
    dur = snd.get_total_duration()
    pitch = snd.to_pitch(time_step=0.01, pitch_floor=75.0, pitch_ceiling=600.0)
    f0 = pitch.selected_array["frequency"]
    runs = _voiced_runs(f0, pitch.xs())
    if not runs:
        return np.zeros(0, np.float32)
    manip = call(snd, "To Manipulation", 0.01, 75.0, 600.0)
    # melody: one note per voiced stretch (long stretches split), random walk on the scale
    lo_key = 69 + 12 * np.log2(low_hz / 440.0)
    hi_key = 69 + 12 * np.log2(high_hz / 440.0)
    keys = [k for k in range(int(np.ceil(lo_key)), int(np.floor(hi_key)) + 1) if (k - tonic) % 12 in scale]
    if not keys:
        keys = [int(round((lo_key + hi_key) / 2))]
    idx = int(rng.integers(len(keys)))
    vib_rate = float(rng.uniform(4.0, 7.0))
    vib_cents = float(rng.uniform(20, 80)) if rng.random() < 0.7 else 0.0
    stretch = float(rng.uniform(1.8, 3.5))
    ptier = call("Create PitchTier", "sung", 0.0, dur)
    dtier = call("Create DurationTier", "sung", 0.0, dur)
    call(dtier, "Add point", 0.0, 1.0)
    notes = []
    for a, b in runs:
        if b - a > 0.35 and rng.random() < 0.5:
            m = (a + b) / 2
            notes += [(a, m), (m, b)]
        else:
            notes.append((a, b))
    for a, b in notes:
        idx = int(np.clip(idx + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), 0, len(keys) - 1))
        hz = 440.0 * 2.0 ** ((keys[idx] - 69) / 12.0)
        glide = min(0.03, (b - a) / 4)
        for t in np.arange(a + glide, b, 0.01 / stretch * 2):
            cents = vib_cents * np.sin(2 * np.pi * vib_rate * stretch * (t - a)) * min(1.0, (t - a) * stretch / 0.3)
            call(ptier, "Add point", float(t), float(hz * 2.0 ** (cents / 1200.0)))
        edge = min(0.015, (b - a) / 4)
        call(dtier, "Add point", float(max(0.0, a - 0.005)), 1.0)
        call(dtier, "Add point", float(a + edge), stretch)
        call(dtier, "Add point", float(b - edge), stretch)
        call(dtier, "Add point", float(min(dur, b + 0.005)), 1.0)
    call([manip, ptier], "Replace pitch tier")
    call([manip, dtier], "Replace duration tier")
    out = call(manip, "Get resynthesis (overlap-add)")
    y = np.asarray(out.values[0], np.float32)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    return y / peak if peak > 0 else y
