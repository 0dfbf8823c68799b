"""Tests of TechniqueDetector (rtclassify.detect.techniques): its option checks, and that ``process`` (which
does Python work only for the frames that give an output) emits what a plain loop over every frame of the
native tracker's output emits."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from _trackers import modulated_tone

from rtclassify.detect.events import TechniqueValues, TremoloOff, TremoloOn, VibratoOff, VibratoOn
from rtclassify.detect.techniques import MAX_VALUE_INTERVAL, TechniqueDetector, hz_to_midi
from rtclassify.errors import ParameterError


class _PerFrameLoop:
    """The detector's specification: every frame of the native output looked at in turn (the loop
    TechniqueDetector.process ran up to the twenty-first session), on a second detector's ``track``."""

    def __init__(self, sr, **kw):
        self.det = TechniqueDetector(sr, **kw)
        self.von = self.ton = False
        self.latest = None

    def process(self, block, offset=None):
        d = self.det
        before, first = d._tracker.samples, d._tracker.frames
        fr = {k: v.tolist() for k, v in d.track(block).items()}
        events, values = [], []
        sr, hop, ch, n = d.sample_rate, d.hop_length, d.channel, len(fr["f0"])
        for i in range(n):
            k = first + i
            t = (k + 1) * hop / sr if offset is None else float(offset) + ((k + 1) * hop - before) / sr
            von, ton = fr["vibrato_on"][i], fr["tremolo_on"][i]
            if von != self.von:
                self.von = von
                events.append(VibratoOn(t, 0.0, ch, rate=fr["vibrato_rate"][i], extent=fr["vibrato_extent"][i])
                              if von else VibratoOff(t, 0.0, ch))
            if ton != self.ton:
                self.ton = ton
                events.append(TremoloOn(t, 0.0, ch, rate=fr["tremolo_rate"][i], depth=fr["tremolo_depth"][i])
                              if ton else TremoloOff(t, 0.0, ch))
            pitch = fr["f0"][i] if fr["voiced"][i] else None
            v = TechniqueValues(t, 0.0, ch, pitch=pitch, midi=hz_to_midi(pitch) if pitch else None,
                                confidence=fr["confidence"][i], level_db=fr["level_db"][i], vibrato=von,
                                vibrato_rate=fr["vibrato_rate"][i] if von else 0.0,
                                vibrato_extent=fr["vibrato_extent"][i] if von else 0.0, tremolo=ton,
                                tremolo_rate=fr["tremolo_rate"][i] if ton else 0.0,
                                tremolo_depth=fr["tremolo_depth"][i] if ton else 0.0)
            if k % d._value_every == 0:
                values.append(v)
            self.latest = v
        return events, values


def _exact(e):
    """An event's fields (wall time left out) with their types: floats as hex, so equality is bit for bit."""
    if e is None:
        return None
    return (type(e).__name__,) + tuple(
        (f.name, type(getattr(e, f.name)).__name__,
         getattr(e, f.name).hex() if isinstance(getattr(e, f.name), float) else getattr(e, f.name))
        for f in dataclasses.fields(e) if f.name != "wall_time")


def _signal(sr, seconds=4.0):
    """A tone with a vibrato from 0.5 s and a tremolo from 1.5 s, gated off and on (several switches of both), a
    run of NaN and an inf, then silence."""
    x = modulated_tone(sr, seconds, 262.0, vib=(5.5, 60.0), start=0.5).astype(np.float64)
    t = np.arange(len(x)) / sr
    trem = 10 ** (3 * np.sin(2 * np.pi * 4.0 * t) * (t > 1.5) / 20)
    x = (x * trem * ((t % 1.8) < 1.2)).astype(np.float32)
    x[len(x) // 3: len(x) // 3 + 40] = np.nan
    x[len(x) // 2] = np.inf
    x[int(0.9 * len(x)):] = 0.0
    return x


def _feed(proc, x, splits):
    out, i, j = [], 0, 0
    while i < len(x):
        b = splits[j % len(splits)]
        evs, vals = proc.process(x[i:i + b])
        out.append(([_exact(e) for e in evs], [_exact(v) for v in vals]))
        i, j = i + b, j + 1
    return out


@pytest.mark.parametrize("sr, splits, offset, kw", [
    (16000, (256,), None, {}),
    (44100, (256,), None, {}),
    (48000, (37, 511, 1, 4096, 3), None, {}),
    (22050, (1000,), 2.5, {"value_interval": 0.0}),
    (48000, (300, 7), None, {"value_interval": 0.05, "channel": 2}),
    (8000, (5000,), None, {"hop_length": 32, "value_interval": 0.013}),
])
def test_process_emits_what_a_loop_over_every_frame_emits(sr, splits, offset, kw):
    x = _signal(sr)
    det, ref = TechniqueDetector(sr, **kw), _PerFrameLoop(sr, **kw)
    got, want = [], []
    i, j = 0, 0
    while i < len(x):
        b = splits[j % len(splits)]
        off = None if offset is None else offset + i / sr
        evs, vals = det.process(x[i:i + b], off)
        got.append(([_exact(e) for e in evs], [_exact(v) for v in vals], _exact(det.latest), det.vibrato_on,
                    det.tremolo_on))
        evs, vals = ref.process(x[i:i + b], off)
        want.append(([_exact(e) for e in evs], [_exact(v) for v in vals], _exact(ref.latest), ref.von, ref.ton))
        i, j = i + b, j + 1
    assert got == want
    kinds = {e[0] for call in got for e in call[0]}
    assert kinds == {"VibratoOn", "VibratoOff", "TremoloOn", "TremoloOff"}  # the signal switches both ways


def test_latest_is_the_newest_frame_whether_read_after_every_block_or_not():
    sr = 44100
    x = _signal(sr, 2.0)
    a, b = TechniqueDetector(sr), TechniqueDetector(sr)
    for i in range(0, len(x), 300):
        a.process(x[i:i + 300])
        a.latest  # noqa: B018 - read after every block
        b.process(x[i:i + 300])
    assert _exact(a.latest) == _exact(b.latest) and a.latest is not None
    assert a.frame_dict() == b.frame_dict()
    a.reset()
    assert a.latest is None
    # with a value every frame, the newest value is the latest itself
    c = TechniqueDetector(sr, value_interval=0)
    _, vals = c.process(x[:4096])
    assert c.latest is vals[-1]


@pytest.mark.parametrize("convert", [
    lambda b: b.astype(np.float64),
    lambda b: np.repeat(b, 2)[::2],  # a strided float32 view
    lambda b: b.astype(">f4"),  # byte-swapped
    lambda b: list(b.tolist()),
])
def test_blocks_of_other_layouts_give_the_same_output(convert):
    sr = 16000
    x = _signal(sr, 2.0)
    assert _feed(TechniqueDetector(sr), x, (333,)) == _feed(_Converted(TechniqueDetector(sr), convert), x, (333,))


class _Converted:
    def __init__(self, det, convert):
        self.det, self.convert = det, convert

    def process(self, block, offset=None):
        return self.det.process(self.convert(block), offset)


@pytest.mark.parametrize("value", [1e308, math.inf, MAX_VALUE_INTERVAL * 1.001, -0.5, math.nan, "0.02", True])
def test_value_interval_out_of_range_or_not_a_number_is_a_parameter_error(value):
    with pytest.raises(ParameterError, match="value_interval"):
        TechniqueDetector(48000, value_interval=value)


def test_value_interval_up_to_an_hour_is_taken():
    det = TechniqueDetector(48000, value_interval=MAX_VALUE_INTERVAL)
    assert det._value_every == round(MAX_VALUE_INTERVAL * det.frame_rate)


@pytest.mark.parametrize("value", ["a", -5, 2.7, 3.0, True, None, "3"])
def test_channel_not_a_whole_number_from_0_is_a_parameter_error(value):
    with pytest.raises(ParameterError, match="channel"):
        TechniqueDetector(48000, channel=value)


@pytest.mark.parametrize("value", [0, 3, np.int64(5), np.uint8(7)])
def test_channel_takes_python_and_numpy_integers(value):
    det = TechniqueDetector(48000, channel=value)
    assert det.channel == int(value) and type(det.channel) is int


@pytest.mark.parametrize("value", ["48000", b"48000", None, [48000]])
def test_sample_rate_that_is_not_a_number_is_a_parameter_error_naming_it(value):
    with pytest.raises(ParameterError, match="sample_rate"):
        TechniqueDetector(value)


@pytest.mark.parametrize("value", [48000, 44100.0, np.float32(22050), np.int32(16000)])
def test_sample_rate_takes_python_and_numpy_numbers(value):
    assert TechniqueDetector(value).sample_rate == float(value)


@pytest.mark.parametrize("offset", ["abc", "1.5", math.nan, math.inf, -math.inf, True, [1.0], 1 + 2j])
def test_a_bad_stream_time_offset_is_refused_before_the_block_is_consumed(offset):
    """The block was consumed and then the offset's float() failed (a ValueError naming nothing); the next
    call's events came late. NaN and infinite offsets gave events stamped NaN or inf."""
    sr = 16000
    x = modulated_tone(sr, 3.0, 440.0, vib=(5.5, 40.0), start=0.3)
    ref, det = TechniqueDetector(sr), TechniqueDetector(sr)
    with pytest.raises(ParameterError, match=r"^stream_time_offset: must be "):
        det.process(x[:4800], offset)
    assert det._tracker.samples == 0
    got = [det.process(x[a:a + 4800], a / sr)[0] for a in range(0, len(x), 4800)]
    want = [ref.process(x[a:a + 4800], a / sr)[0] for a in range(0, len(x), 4800)]
    assert got == want and any(got)


@pytest.mark.parametrize("offset", [2, 2.5, np.float32(1.25), np.int64(3)])
def test_stream_time_offsets_of_python_and_numpy_numbers_are_taken(offset):
    det = TechniqueDetector(16000)
    x = modulated_tone(16000, 2.0, 440.0, vib=(5.5, 40.0), start=0.3)
    events, _ = det.process(x, offset)
    assert events and all(math.isfinite(e.stream_time) and e.stream_time >= float(offset) for e in events)
