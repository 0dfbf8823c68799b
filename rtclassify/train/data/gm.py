"""General MIDI program -> tag map, instrument ranges and generated musical parts.

GM map (program numbers 0-127, bank 0; drum kits are bank 128 on MIDI channel 10):

==========  ==========================================  ====================
programs    GM family                                   tag
==========  ==========================================  ====================
0-7         pianos (incl. electric piano, harpsichord,   piano
            clavinet)
8-15        chromatic percussion (celesta, glockenspiel, mallet
            music box, vibraphone, marimba, xylophone,
            tubular bells, dulcimer)
16-23       organs (incl. accordion, harmonica)         organ
24-31       guitars (acoustic, electric, overdriven,     guitar
            distortion, harmonics)
32-39       basses (acoustic, electric, fretless, slap,  bass
            synth bass)
40-45       violin, viola, cello, contrabass, tremolo,   strings
            pizzicato strings
46          orchestral harp                             strings
47          timpani                                     drums
48-51       string ensembles, synth strings             strings
52-53       choir aahs, voice oohs                      singing
54          synth voice                                 singing
55          orchestra hit                               (skipped: an effect)
56-63       brass (trumpet, trombone, tuba, muted       brass
            trumpet, french horn, sections, synth brass)
64-71       reeds (saxophones, oboe, english horn,       woodwind
            bassoon, clarinet)
72-79       pipes (piccolo, flute, recorder, pan flute,  woodwind
            bottle, shakuhachi, whistle, ocarina)
80-95       synth leads and pads                         synth
96-103      synth effects (rain, soundtrack, crystal,    synth
            atmosphere, brightness, goblins, echoes,
            sci-fi)
104-106     sitar, banjo, shamisen (plucked lutes)       guitar
107         koto (plucked zither, like the harp)         strings
108         kalimba (tuned metal tines)                  mallet
109         bagpipe                                     woodwind
110         fiddle                                      strings
111         shanai (double reed)                        woodwind
112         tinkle bell                                 mallet
113         agogo                                       drums
114         steel drums (pitched)                       mallet
115-118     woodblock, taiko, melodic tom, synth drum    drums
119-127     reverse cymbal and sound effects            (skipped)
bank 128    drum kits on channel 10                     drums
==========  ==========================================  ====================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import ParameterError
from .labels import TAGS


def _build_gm_map() -> dict[int, str | None]:
    m: dict[int, str | None] = {}
    spans = [
        (0, 7, "piano"), (8, 15, "mallet"), (16, 23, "organ"), (24, 31, "guitar"),
        (32, 39, "bass"), (40, 46, "strings"), (47, 47, "drums"), (48, 51, "strings"),
        (52, 54, "singing"), (55, 55, None), (56, 63, "brass"), (64, 79, "woodwind"),
        (80, 103, "synth"), (104, 106, "guitar"), (107, 107, "strings"), (108, 108, "mallet"),
        (109, 109, "woodwind"), (110, 110, "strings"), (111, 111, "woodwind"),
        (112, 112, "mallet"), (113, 113, "drums"), (114, 114, "mallet"), (115, 118, "drums"),
        (119, 127, None),
    ]
    for lo, hi, tag in spans:
        for p in range(lo, hi + 1):
            m[p] = tag
    return m


#: GM program (0-127, bank 0) -> tag, or None for programs left out (effects).
GM_PROGRAM_TAGS: dict[int, str | None] = _build_gm_map()

#: Tag of every drum kit (bank 128, channel 10).
DRUM_KIT_TAG = "drums"

#: GM drum kit presets (bank 128) tried in each soundfont; missing ones are skipped.
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)

#: Programs drawn for each tag (bank 0). Timpani and the percussive programs
#: 113-118 play as pitched parts, never as drum patterns.
TAG_PROGRAMS: dict[str, tuple[int, ...]] = {
    tag: tuple(p for p, t in sorted(GM_PROGRAM_TAGS.items()) if t == tag)
    for tag in TAGS if tag != "speech"
}

# Playable MIDI key ranges (low, high) per program; defaults per family.
_FAMILY_RANGE = {
    "piano": (33, 96), "mallet": (53, 96), "organ": (36, 91), "guitar": (40, 84),
    "bass": (28, 55), "strings": (36, 96), "drums": (36, 60), "singing": (45, 79),
    "brass": (40, 82), "woodwind": (52, 93), "synth": (36, 96),
}
PROGRAM_RANGE: dict[int, tuple[int, int]] = {
    8: (60, 108), 9: (72, 108), 10: (60, 96), 11: (53, 89), 12: (45, 96), 13: (65, 108),
    14: (60, 77), 15: (48, 84), 40: (55, 100), 41: (48, 88), 42: (36, 76), 43: (28, 60),
    46: (24, 103), 47: (40, 55), 56: (54, 84), 57: (40, 72), 58: (28, 58), 59: (54, 82),
    60: (41, 77), 64: (56, 87), 65: (49, 80), 66: (44, 75), 67: (36, 68), 68: (58, 91),
    69: (52, 81), 70: (34, 72), 71: (50, 91), 72: (74, 108), 73: (60, 96), 74: (60, 96),
    75: (60, 96), 76: (60, 84), 77: (55, 84), 78: (72, 96), 79: (60, 84), 104: (48, 79),
    105: (48, 79), 106: (50, 79), 107: (48, 84), 108: (60, 84), 109: (55, 77), 110: (55, 96),
    111: (60, 84), 112: (72, 96), 113: (60, 72), 114: (60, 84), 115: (60, 84), 116: (36, 55),
    117: (40, 70), 118: (40, 70),
}

#: Programs that sustain (bowed, blown, organ, pads): they play melodies and held chords.
SUSTAINED_TAGS = frozenset({"organ", "strings", "brass", "woodwind", "synth", "singing"})


def program_tag(program: int, bank: int = 0) -> str | None:
    """Tag of a GM preset (``bank`` 128 is a drum kit); None for programs left out."""
    if not 0 <= int(program) <= 127:
        raise ParameterError(f"program: {program} is not a GM program number (0-127)")
    if bank == 128:
        return DRUM_KIT_TAG
    return GM_PROGRAM_TAGS[int(program)]


def program_range(program: int) -> tuple[int, int]:
    """Playable MIDI key range of a GM program."""
    if program in PROGRAM_RANGE:
        return PROGRAM_RANGE[program]
    return _FAMILY_RANGE[GM_PROGRAM_TAGS[program] or "piano"]


# --------------------------------------------------------------------------- music

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10), "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11), "pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10), "blues": (0, 3, 5, 6, 7, 10),
}
_PROGRESSIONS = (
    (0, 5, 3, 4), (0, 3, 4, 0), (0, 4, 5, 3), (1, 4, 0, 0), (0, 0, 3, 4), (5, 3, 0, 4),
    (0, 5, 1, 4), (0, 2, 3, 4), (0, 3, 0, 4), (0, 6, 5, 4),
)


@dataclass
class Note:
    """One note: onset and release in seconds, MIDI key, velocity (1-127)."""

    start: float
    end: float
    key: int
    velocity: int


@dataclass
class Song:
    """Shared musical context of the parts of one clip."""

    tempo: float            # beats per minute
    beats_per_bar: int
    tonic: int              # pitch class 0-11
    scale: tuple[int, ...]
    progression: tuple[int, ...]  # scale degree of each bar's chord root
    swing: float            # 0 (straight) .. 0.3 (delay of off-beat eighths, in beats / 2)

    @property
    def beat(self) -> float:
        return 60.0 / self.tempo

    @property
    def bar(self) -> float:
        return self.beat * self.beats_per_bar

    def chord_at(self, t: float) -> int:
        """Scale degree of the chord root sounding at time ``t``."""
        return self.progression[int(t // self.bar) % len(self.progression)]

    def degree_key(self, degree: int, octave_base: int) -> int:
        """MIDI key of a scale degree (any integer) above ``octave_base`` (a C)."""
        n = len(self.scale)
        octv, d = divmod(degree, n)
        return octave_base + 12 * octv + self.tonic + self.scale[d]

    def chord_keys(self, root_degree: int, size: int, lo: int, hi: int) -> list[int]:
        """Keys of a chord (stacked thirds on the scale) inside ``[lo, hi]``."""
        degs = [root_degree + 2 * i for i in range(size)]
        base = 12 * (lo // 12)
        keys = [self.degree_key(d, base) for d in degs]
        while keys and min(keys) < lo:
            keys = [k + 12 for k in keys]
        while keys and max(keys) > hi and min(keys) - 12 >= lo - 6:
            keys = [k - 12 for k in keys]
        return [k for k in keys if lo <= k <= hi]


def random_song(rng: np.random.Generator) -> Song:
    """A random tempo, metre, key, scale, progression and swing."""
    scale_name = list(SCALES)[int(rng.integers(len(SCALES)))]
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    if len(SCALES[scale_name]) < 7:
        prog = tuple(int(d) % len(SCALES[scale_name]) for d in prog)
    return Song(
        tempo=float(rng.uniform(60, 180)),
        beats_per_bar=int(rng.choice([4, 4, 4, 3])),
        tonic=int(rng.integers(12)),
        scale=SCALES[scale_name],
        progression=prog,
        swing=float(rng.choice([0.0, 0.0, 0.0, rng.uniform(0.1, 0.3)])),
    )


def _articulation(rng: np.random.Generator, sustained: bool) -> float:
    """Ratio of sounding length to inter-onset interval (legato ~1, staccato ~0.3)."""
    kind = rng.choice(["legato", "normal", "staccato"], p=[0.35, 0.45, 0.2] if sustained else [0.25, 0.5, 0.25])
    return {"legato": float(rng.uniform(0.95, 1.05)), "normal": float(rng.uniform(0.7, 0.9)),
            "staccato": float(rng.uniform(0.25, 0.5))}[kind]


def _swing_time(song: Song, beat_pos: float) -> float:
    frac = beat_pos % 1.0
    if song.swing and abs(frac - 0.5) < 1e-6:
        beat_pos += song.swing / 2
    return beat_pos * song.beat


def _vel(rng, base, spread=10):
    return int(np.clip(base + rng.normal(0, spread / 2), 1, 127))


def melody(rng: np.random.Generator, song: Song, lo: int, hi: int, t0: float, t1: float,
           sustained: bool) -> list[Note]:
    """A melody on the song's scale inside keys ``[lo, hi]`` between ``t0`` and ``t1`` s."""
    notes: list[Note] = []
    art = _articulation(rng, sustained)
    durs = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0])
    w = np.array([1, 4, 1, 4, 1.5, 2, 0.7]) if sustained else np.array([2, 5, 1, 3, 1, 1, 0.3])
    w = w / w.sum()
    rest_p = float(rng.uniform(0.05, 0.25))
    base_vel = float(rng.uniform(45, 115))
    n = len(song.scale)
    # register: a window of about 1.5 octaves inside the instrument's range
    span_lo = lo + int(rng.integers(0, max(1, hi - lo - 18) + 1))
    span_hi = min(hi, span_lo + 19)
    base = 12 * (span_lo // 12)
    deg_lo = int(np.ceil((span_lo - base) / 12 * n)) - n
    degs = [d for d in range(deg_lo, deg_lo + 4 * n) if span_lo <= song.degree_key(d, base) <= span_hi]
    if not degs:
        degs = [0]
    idx = int(rng.integers(len(degs)))
    beat_pos = np.ceil(t0 / song.beat * 2) / 2
    while True:
        d = float(rng.choice(durs, p=w))
        start = _swing_time(song, beat_pos)
        if start >= t1:
            break
        ioi = d * song.beat
        if rng.random() >= rest_p:
            step = int(rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3, 4, -4]))
            idx = int(np.clip(idx + step, 0, len(degs) - 1))
            key = song.degree_key(degs[idx], base)
            end = min(start + max(0.06, ioi * art), t1)
            accent = 8 if abs(beat_pos % song.beats_per_bar) < 1e-6 else 0
            notes.append(Note(start, end, key, _vel(rng, base_vel + accent)))
        beat_pos += d
    return notes


def chords(rng: np.random.Generator, song: Song, lo: int, hi: int, t0: float, t1: float,
           sustained: bool, strum: bool = False) -> list[Note]:
    """Block chords, comping or arpeggios following the progression, in ``[lo, hi]``."""
    notes: list[Note] = []
    style = rng.choice(["block", "comp", "arp"], p=[0.5, 0.25, 0.25] if sustained else [0.3, 0.35, 0.35])
    size = int(rng.choice([3, 3, 4]))
    base_vel = float(rng.uniform(40, 105))
    c_lo = lo + int(rng.integers(0, max(1, hi - lo - 14) + 1))
    c_hi = min(hi, c_lo + 16)
    art = _articulation(rng, sustained)
    bar0 = int(t0 // song.bar)
    bar = bar0
    while bar * song.bar < t1:
        bstart = bar * song.bar
        keys = song.chord_keys(song.chord_at(bstart + 1e-6), size, c_lo, c_hi)
        if not keys:
            bar += 1
            continue
        if style == "block":
            hits = [(0.0, float(song.beats_per_bar))] if rng.random() < 0.6 else \
                [(b, 2.0) for b in range(0, song.beats_per_bar, 2)]
        elif style == "comp":
            hits = [(b, float(rng.choice([0.5, 1.0]))) for b in np.arange(0, song.beats_per_bar, 0.5)
                    if rng.random() < 0.45]
        else:
            hits = []
        if style == "arp":
            seq = keys + keys[-2:0:-1] if len(keys) > 2 else keys
            step = float(rng.choice([0.5, 0.25])) if song.tempo < 130 else 0.5
            for j, b in enumerate(np.arange(0, song.beats_per_bar, step)):
                s = bstart + _swing_time(song, b)
                if t0 <= s < t1:
                    notes.append(Note(s, min(s + step * song.beat * max(art, 0.9), t1),
                                      seq[j % len(seq)], _vel(rng, base_vel)))
        for b, d in hits:
            s = bstart + _swing_time(song, b)
            if not t0 <= s < t1:
                continue
            for j, k in enumerate(keys):
                off = j * float(rng.uniform(0.008, 0.03)) if strum else 0.0
                notes.append(Note(s + off, min(s + d * song.beat * art, t1), k, _vel(rng, base_vel)))
        bar += 1
    return notes


def bass_line(rng: np.random.Generator, song: Song, lo: int, hi: int, t0: float, t1: float) -> list[Note]:
    """A bass line on the chord roots (whole, half, quarter, eighth or syncopated patterns)."""
    notes: list[Note] = []
    pattern = rng.choice(["whole", "half", "quarter", "eighth", "synco", "walk"])
    base_vel = float(rng.uniform(60, 115))
    art = _articulation(rng, False)
    lo2, hi2 = lo, min(hi, lo + 19)
    bar = int(t0 // song.bar)
    prev = None
    while bar * song.bar < t1:
        bstart = bar * song.bar
        root = song.chord_keys(song.chord_at(bstart + 1e-6), 1, lo2, hi2)
        root = root[0] if root else lo2
        fifth = root + 7 if root + 7 <= hi2 else root - 5
        if pattern == "whole":
            hits = [(0.0, float(song.beats_per_bar), root)]
        elif pattern == "half":
            hits = [(float(b), 2.0, root if i % 2 == 0 else fifth) for i, b in enumerate(range(0, song.beats_per_bar, 2))]
        elif pattern == "quarter":
            hits = [(float(b), 1.0, root if rng.random() < 0.7 else fifth) for b in range(song.beats_per_bar)]
        elif pattern == "eighth":
            hits = [(float(b), 0.5, root) for b in np.arange(0, song.beats_per_bar, 0.5)]
        elif pattern == "synco":
            hits = [(0.0, 1.5, root), (1.5, 1.0, root), (2.5, 0.5, fifth)]
            hits = [h for h in hits if h[0] < song.beats_per_bar]
        else:
            walk = [root]
            for _ in range(song.beats_per_bar - 1):
                walk.append(int(np.clip(walk[-1] + rng.choice([-2, -1, 1, 2, 3, 5]), lo2, hi2)))
            hits = [(float(b), 1.0, k) for b, k in enumerate(walk)]
        for b, d, k in hits:
            s = bstart + _swing_time(song, b)
            if t0 <= s < t1 and rng.random() > 0.05:
                notes.append(Note(s, min(s + d * song.beat * art, t1), int(k), _vel(rng, base_vel)))
                prev = k
        bar += 1
    del prev
    return notes


# GM drum keys
KICK, SNARE, CLAP, RIM, HH_C, HH_P, HH_O, CRASH, RIDE, TOM_L, TOM_M, TOM_H = 36, 38, 39, 37, 42, 44, 46, 49, 51, 45, 47, 50
_DRUM_STYLES = {
    # 16th-step grids for one 4/4 bar: {key: [steps]}
    "rock": {KICK: [0, 8, 10], SNARE: [4, 12], HH_C: list(range(0, 16, 2))},
    "four": {KICK: [0, 4, 8, 12], CLAP: [4, 12], HH_O: [2, 6, 10, 14], HH_C: [0, 4, 8, 12]},
    "funk": {KICK: [0, 3, 10], SNARE: [4, 12, 15], HH_C: list(range(16))},
    "half": {KICK: [0, 11], SNARE: [8], HH_C: list(range(0, 16, 2))},
    "jazz": {RIDE: [0, 4, 7, 8, 12, 15], HH_P: [4, 12], KICK: [0], SNARE: [11]},
    "latin": {KICK: [0, 6, 8, 14], RIM: [3, 6, 10, 12], 62: [2, 6, 10, 14], 63: [4, 12], 64: [7, 15]},
    "breaks": {KICK: [0, 10], SNARE: [4, 12], HH_C: list(range(0, 16, 2)), HH_O: [14]},
    "toms": {TOM_L: [0, 6, 12], TOM_M: [3, 9], TOM_H: [2, 8, 14], KICK: [0, 8]},
    "perc": {54: list(range(0, 16, 2)), 56: [0, 6, 8, 14], 69: list(range(16)), 75: [3, 10]},
}


def drum_pattern(rng: np.random.Generator, song: Song, t0: float, t1: float) -> list[Note]:
    """A drum-kit pattern (channel 10 keys) with variations, fills and crashes."""
    style = list(_DRUM_STYLES)[int(rng.integers(len(_DRUM_STYLES)))]
    grid = {k: list(v) for k, v in _DRUM_STYLES[style].items()}
    base_vel = float(rng.uniform(60, 120))
    notes: list[Note] = []
    steps_per_bar = 4 * song.beats_per_bar
    step_t = song.beat / 4
    bar = int(t0 // song.bar)
    while bar * song.bar < t1:
        bstart = bar * song.bar
        fill = rng.random() < 0.2
        for k, steps in grid.items():
            for st in steps:
                if st >= steps_per_bar or (fill and st >= steps_per_bar - 4):
                    continue
                if rng.random() < 0.07:
                    continue
                s = bstart + _swing_time(song, st / 4) + rng.normal(0, 0.004)
                if t0 <= s < t1:
                    v = base_vel * (1.0 if st % 4 == 0 else 0.8)
                    notes.append(Note(max(s, t0), min(s + 0.1, t1), k, _vel(rng, v, 16)))
        if fill:
            for st in range(steps_per_bar - 4, steps_per_bar):
                s = bstart + st * step_t
                if t0 <= s < t1:
                    k = int(rng.choice([SNARE, TOM_L, TOM_M, TOM_H]))
                    notes.append(Note(s, min(s + 0.1, t1), k, _vel(rng, base_vel, 16)))
        if bar % 4 == 0 and rng.random() < 0.5 and t0 <= bstart < t1:
            notes.append(Note(bstart, min(bstart + 0.5, t1), CRASH, _vel(rng, base_vel, 10)))
        bar += 1
    return notes


#: Tags whose GM parts may be played with vibrato (:func:`draw_vibrato`): players and singers of these
#: families use it; keys, plucked strings, bass, mallets and drums do not.
VIBRATO_TAGS = frozenset({"strings", "brass", "woodwind", "synth", "singing"})


@dataclass(frozen=True)
class Vibrato:
    """A performer's vibrato on a part, rendered as pitch bend (:meth:`FluidRenderer.render_parts`).

    After each note-on the pitch stays steady for ``delay_s``, then the
    sinusoid's extent grows linearly to ``depth_cents`` (half the peak-to-peak
    swing) over ``ramp_s``; ``rate_hz`` drifts by up to ``drift`` (relative) in
    a slow random walk, and every note starts at a random phase (``seed``).
    """

    rate_hz: float
    depth_cents: float
    delay_s: float
    ramp_s: float
    drift: float
    seed: int

    def cents(self, t: np.ndarray, onsets: np.ndarray) -> np.ndarray:
        """The pitch offset (cents) at control times ``t`` (s) given the note-on times ``onsets`` (s, sorted)."""
        t = np.asarray(t, np.float64)
        out = np.zeros_like(t)
        if len(onsets) == 0 or len(t) == 0:
            return out
        rng = np.random.default_rng(self.seed)
        dt = np.diff(t, prepend=t[0])
        walk = np.cumsum(rng.normal(0.0, 1.0, len(t)) * np.sqrt(np.maximum(dt, 0.0) / 0.5))
        walk = self.drift * np.tanh(walk / 2.0)
        phase = 2.0 * np.pi * np.cumsum(self.rate_hz * (1.0 + walk) * dt)
        idx = np.searchsorted(onsets, t, side="right") - 1
        note_phase = rng.uniform(0.0, 2.0 * np.pi, len(onsets))
        on = idx >= 0
        since = np.where(on, t - onsets[np.maximum(idx, 0)], 0.0)
        env = np.clip((since - self.delay_s) / max(self.ramp_s, 1e-3), 0.0, 1.0) * on
        return self.depth_cents * env * np.sin(phase + note_phase[np.maximum(idx, 0)])


#: Pitch-bend range (semitones) that a vibrato is written for.
BEND_RANGE_SEMITONES = 2


def bend_range_ccs(semitones: int = BEND_RANGE_SEMITONES) -> tuple[tuple[int, int], ...]:
    """Controller messages (cc, value) that set a channel's pitch-bend range (RPN 0) to ``semitones``,
    then deselect the RPN."""
    return ((101, 0), (100, 0), (6, int(semitones)), (38, 0), (101, 127), (100, 127))


def vibrato_bends(vibrato: Vibrato, t: np.ndarray, onsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pitch-bend values (-8192..8191 at :data:`BEND_RANGE_SEMITONES`) of ``vibrato`` at control times
    ``t`` (s) given the sorted note-on times ``onsets`` (s); returns ``(keep, bend)``: the indices of
    ``t`` where the value changes (the first always) and the values there."""
    cents = vibrato.cents(t, onsets)
    bend = np.clip(np.round(cents / (100.0 * BEND_RANGE_SEMITONES) * 8192.0), -8192, 8191).astype(int)
    keep = np.flatnonzero(np.concatenate([[True], bend[1:] != bend[:-1]]))
    return keep, bend[keep]


def draw_vibrato(rng: np.random.Generator) -> Vibrato:
    """A vibrato in the range of players and singers: 4.5-7 Hz, extent 8-50 cents, after 0.05-0.4 s."""
    return Vibrato(rate_hz=float(rng.uniform(4.5, 7.0)), depth_cents=float(rng.uniform(8.0, 50.0)),
                   delay_s=float(rng.uniform(0.05, 0.4)), ramp_s=float(rng.uniform(0.15, 0.5)),
                   drift=float(rng.uniform(0.0, 0.08)), seed=int(rng.integers(0, 2**31 - 1)))


@dataclass
class PartSpec:
    """A generated part: which tag/program plays which notes (and with which vibrato, if any)."""

    tag: str
    role: str                 # melody | chords | bass | drums | held
    program: int              # GM program (bank 0) or kit preset (bank 128)
    bank: int
    notes: list[Note] = field(default_factory=list)
    vibrato: Vibrato | None = None


def held_notes(rng: np.random.Generator, lo: int, hi: int, t0: float, t1: float) -> list[Note]:
    """Single held notes anywhere in keys ``[lo, hi]`` (chromatic, uniform), 0.6 to 3.5 s each with
    short gaps, between ``t0`` and ``t1`` s: an instrument played alone, the way a note library or a
    player trying out a sound plays it."""
    notes: list[Note] = []
    t = t0 + float(rng.uniform(0.0, 0.3))
    while t < t1 - 0.3:
        end = min(t1, t + float(rng.uniform(0.6, 3.5)))
        notes.append(Note(t, end, int(rng.integers(lo, hi + 1)), int(rng.uniform(50, 121))))
        t = end + float(rng.uniform(0.05, 0.8))
    return notes


def make_part(rng: np.random.Generator, song: Song, tag: str, program: int, bank: int,
              t0: float, t1: float, role: str | None = None, key_range: tuple[int, int] | None = None) -> PartSpec:
    """Generate the notes of a part for ``tag`` played by a program between ``t0`` and ``t1``.

    ``role`` defaults by tag: bass -> bass line, drum kit -> drum pattern, others
    melody or chords; ``"held"`` plays single held notes over the whole range
    (:func:`held_notes`). ``key_range`` overrides the program's range (used for
    sampled instruments).
    """
    lo, hi = key_range if key_range is not None else (program_range(program) if bank != 128 else (35, 81))
    sustained = tag in SUSTAINED_TAGS
    if role is None:
        if bank == 128:
            role = "drums"
        elif tag == "bass":
            role = "bass"
        else:
            p_chords = {"brass": 0.2, "woodwind": 0.1, "singing": 0.3}.get(tag, 0.45)
            role = "chords" if rng.random() < p_chords else "melody"
    if role == "drums":
        notes = drum_pattern(rng, song, t0, t1)
    elif role == "held":
        notes = held_notes(rng, lo, hi, t0, t1)
    elif role == "bass":
        notes = bass_line(rng, song, lo, hi, t0, t1)
    elif role == "chords":
        notes = chords(rng, song, lo, hi, t0, t1, sustained, strum=(tag == "guitar"))
    else:
        notes = melody(rng, song, lo, hi, t0, t1, sustained)
    if not notes:  # very short spans: one held note so the part is never empty
        k = int((lo + hi) // 2)
        notes = [Note(t0, min(t1, t0 + 1.0), k if bank != 128 else SNARE, 90)]
    return PartSpec(tag=tag, role=role, program=int(program), bank=int(bank), notes=notes)
