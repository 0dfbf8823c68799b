"""Tests of the vibrato tracker (native VibratoTracker, TechniqueTracker, TechniqueDetector events)."""

from __future__ import annotations

import numpy as np
import pytest
from _trackers import (assert_split_invariant, assert_steady_modulation, bad_parameters, detect_in_blocks,
                       modulated_tone, track)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtclassify import _core
from rtclassify.detect.events import TechniqueValues, VibratoOff, VibratoOn
from rtclassify.detect.techniques import TechniqueDetector, frame_dict, hz_to_midi
from rtclassify.errors import ParameterError


@pytest.mark.parametrize("rate, extent, f0, sr", [
    (3.0, 100.0, 196.0, 44100),
    (5.5, 50.0, 440.0, 44100),
    (7.0, 20.0, 261.6, 16000),
    (9.0, 10.0, 659.3, 48000),
    (6.0, 120.0, 110.0, 22050),
])
def test_rate_and_extent_of_a_synthetic_vibrato(rate, extent, f0, sr):
    out = track(sr, modulated_tone(sr, 4.0, f0, vib=(rate, extent)))
    # on from 3 periods after the start (detected within 2.5), off before, no tremolo
    assert_steady_modulation(out, "vibrato", rate, "extent", extent, tol=max(2.0, 0.06 * extent), settle_periods=3.0)


def test_plain_tone_and_slow_glide_are_not_vibrato():
    sr = 22050
    out = track(sr, modulated_tone(sr, 3.0, 330.0))
    assert not out["vibrato_on"].any()
    # a glide of a whole tone over one second (portamento), then a held note
    n = int(sr * 3.0)
    t = np.arange(n) / sr
    cents = np.clip(t - 1.0, 0.0, 1.0) * 200.0
    ph = 2 * np.pi * np.cumsum(300.0 * 2 ** (cents / 1200)) / sr
    x = (0.2 * (np.sin(ph) + 0.5 * np.sin(2 * ph))).astype(np.float32)
    assert not track(sr, x)["vibrato_on"].any()


@pytest.mark.parametrize("note_s, slide_s", [(0.25, 0.03), (0.25, 0.06), (0.25, 0.12), (0.4, 0.06), (0.4, 0.12)])
def test_legato_melody_with_short_slides_is_not_vibrato(note_s, slide_s):
    """Notes joined by slides too gradual to count as note changes: what the quadratic trend leaves of such a
    staircase repeats at the note rate (read as vibrato of 30-120 cents at about 4 Hz before the trend rule), but
    the trend moves by about a note per period."""
    fs = 200.0
    notes = [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72, 67, 64, 60]
    per, ns = int(note_s * fs), int(slide_s * fs)
    midi = np.repeat(np.asarray(notes, float), per)
    for i in range(1, len(notes)):  # a linear slide into each note, starting at its first frame
        a, b = notes[i - 1], notes[i]
        midi[i * per:i * per + ns] = a + (b - a) * (np.arange(1, ns + 1) / ns)
    f0 = (440 * 2 ** ((midi - 69) / 12)).astype(np.float32)
    assert not _core.VibratoTracker(fs).process(f0)["on"].any()


def test_vibrato_over_a_legato_melody_is_read_in_each_note():
    """A 6 Hz vibrato of 40 cents sung over 1 s notes joined by 60 ms slides: off for a while after each slide
    (the window holds the note change), as after a note change without a slide, and on in most of each note."""
    fs = 200.0
    notes = [60, 62, 64, 65, 67, 65, 64, 62, 60]
    midi = np.repeat(np.asarray(notes, float), 200)
    for i in range(1, len(notes)):
        a, b = notes[i - 1], notes[i]
        midi[i * 200:i * 200 + 12] = a + (b - a) * (np.arange(1, 13) / 12)
    t = np.arange(len(midi)) / fs
    f0 = (440 * 2 ** ((midi - 69 + 0.4 * np.sin(2 * np.pi * 6.0 * t)) / 12)).astype(np.float32)
    out = _core.VibratoTracker(fs).process(f0)
    assert out["on"].mean() > 0.6, out["on"].mean()
    for i in range(len(notes)):  # on in the second half of every note
        assert out["on"][i * 200 + 100:(i + 1) * 200].all(), i


@pytest.mark.parametrize("seed", range(4))
def test_a_random_pitch_wander_of_a_few_cents_is_not_vibrato(seed):
    """A held note whose pitch wanders at random by 4 cents (standard deviation, band-limited to about 12 Hz):
    its narrow-band wobble can pass the regularity test, and with extent_on at 5 cents it read as vibrato of
    5-8 cents in up to 12% of the frames. At 8 cents it does not; a 10-cent vibrato still does."""
    fs = 200.0
    rng = np.random.default_rng(seed)
    n = int(4 * fs)
    w = np.convolve(rng.standard_normal(n + 16), np.ones(8) / 8, mode="valid")[:n]  # ~12 Hz wide
    cents = 4.0 * w / w.std()
    f0 = (220 * 2 ** (cents / 1200)).astype(np.float32)
    assert not _core.VibratoTracker(fs).process(f0)["on"].any()
    t = np.arange(n) / fs
    vib = (220 * 2 ** ((cents / 4 + 10 * np.sin(2 * np.pi * 5.5 * t)) / 1200)).astype(np.float32)
    assert _core.VibratoTracker(fs).process(vib)["on"][t > 1.0].mean() > 0.9


def test_vibrato_trend_rule_off_restores_the_staircase_reading():
    """trend_ratio=0 turns the rule off (the tracker before it): the same staircase reads as vibrato."""
    fs = 200.0
    notes = np.tile([60, 62, 64, 65], 6).astype(float)
    midi = np.repeat(notes, 50)
    for i in range(1, len(notes)):
        a, b = notes[i - 1], notes[i]
        midi[i * 50:i * 50 + 12] = a + (b - a) * (np.arange(1, 13) / 12)
    f0 = (440 * 2 ** ((midi - 69) / 12)).astype(np.float32)
    assert _core.VibratoTracker(fs, trend_ratio=0.0, trend_ratio_off=0.0).process(f0)["on"].any()
    assert not _core.VibratoTracker(fs).process(f0)["on"].any()


def test_note_change_restarts_and_vibrato_resumes():
    sr = 16000
    a = modulated_tone(sr, 2.0, 262.0, vib=(6.0, 40.0), start=0.3)
    b = modulated_tone(sr, 2.0, 330.0, vib=(6.0, 40.0), start=0.0)
    x = np.concatenate([a, b])
    out = track(sr, x, vibrato={"bridge_periods": 0})
    t = out["time"]
    assert out["vibrato_on"][(t > 1.2) & (t < 1.95)].all()
    assert out["vibrato_on"][t > 2.0 + 3 / 6.0].all()
    # the contour restarted at the note change, so vibrato was off for a moment
    assert not out["vibrato_on"][(t > 2.0) & (t < 2.15)].all()
    # bridged (the default): on through the note change, at the rate and extent it had until the new note's fit
    out = track(sr, x)
    assert out["vibrato_on"][t > 1.2].all()
    assert np.abs(out["vibrato_rate"][t > 1.2] - 6.0).max() < 0.4  # (5.65 Hz for 15 ms as the f0 moves)
    settled = (t > 1.2) & ((t < 2.0) | (t > 2.1))  # (the 20 ms of the f0's move read 46-49 cents before too)
    assert np.abs(out["vibrato_extent"][settled] - 40.0).max() < 10.0  # (48 held over the bridge: the last fit)


def test_a_note_change_read_through_one_value_between_the_notes_is_a_jump():
    """The pitch frame that straddles a note change reads a value between the notes: a 170-cent step came as
    73 + 77 cents, each under jump_cents, so no note change was seen and the vibrato went off (the trend rule)
    for about 0.3 s instead of being bridged."""
    fs = 200.0
    notes = [60.0, 61.5, 60.0, 61.5, 63.0, 61.5, 60.0, 61.5]  # 150-cent steps: 75 + 75 through the middle
    per = 200  # 1 s notes
    midi = np.repeat(notes, per)
    for i in range(1, len(notes)):
        midi[i * per] = 0.5 * (notes[i - 1] + notes[i])  # the straddling frame
    t = np.arange(len(midi)) / fs
    f0 = (440 * 2 ** ((midi - 69 + 0.4 * np.sin(2 * np.pi * 5.5 * t)) / 12)).astype(np.float32)
    out = _core.VibratoTracker(fs).process(f0)
    assert out["restarted"][1:].sum() == len(notes) - 1  # every change a note change
    first = int(np.argmax(out["on"]))
    assert out["on"][first:].all()  # bridged across each


def test_a_bridge_ends_when_the_next_note_has_no_vibrato():
    sr = 16000
    a = modulated_tone(sr, 2.0, 262.0, vib=(6.0, 40.0), start=0.3)
    b = modulated_tone(sr, 2.0, 330.0, start=0.0)
    out = track(sr, np.concatenate([a, b]))
    on, t = out["vibrato_on"], out["time"]
    assert on[(t > 1.2) & (t < 1.95)].all()
    assert not on[t > 2.0 + 1.25 / 6.0 + 0.1].any()  # the jump is a note change after 25 ms; hold_frames


def test_vibrato_tracker_on_an_f0_contour():
    fs = 100.0
    t = np.arange(int(4 * fs)) / fs
    f0 = 440 * 2 ** ((30 * np.sin(2 * np.pi * 5.0 * t) + 100 * t / 4) / 1200)  # vibrato over a slow rise
    f0[(t > 2.0) & (t < 2.03)] = 0.0  # a short unvoiced gap is bridged
    out = _core.VibratoTracker(fs).process(f0.astype(np.float32))
    late = t > 1.0
    assert out["on"][late].all()
    assert np.abs(out["rate"][late] - 5.0).max() < 0.1
    assert np.abs(out["extent"][late] - 30.0).max() < 1.5
    # a long gap turns it off and restarts the contour
    f0[(t > 3.0) & (t < 3.2)] = 0.0
    out = _core.VibratoTracker(fs).process(f0.astype(np.float32))
    assert out["restarted"][(t > 3.0) & (t < 3.2)].any()
    assert not out["on"][(t > 3.05) & (t < 3.2)].any()


def test_a_single_f0_glitch_does_not_restart():
    fs = 200.0
    t = np.arange(int(3 * fs)) / fs
    f0 = 300 * 2 ** (40 * np.sin(2 * np.pi * 6.0 * t) / 1200)
    f0[400] *= 2.0  # an octave error for one frame
    f0[450:452] *= 0.5
    out = _core.VibratoTracker(fs).process(f0.astype(np.float32))
    assert not out["restarted"][1:].any()
    assert out["on"][t > 1.0].all()


def test_nan_f0_counts_as_unvoiced():
    fs = 100.0
    f0 = np.full(300, np.nan, np.float32)
    out = _core.VibratoTracker(fs).process(f0)
    assert not out["on"].any()
    assert np.all(out["rate"] == 0)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=10))
def test_vibrato_tracker_split_invariance(cuts):
    fs = 100.0
    t = np.arange(500) / fs
    f0 = (220 * 2 ** (50 * np.sin(2 * np.pi * 4.5 * t) / 1200)).astype(np.float32)
    f0[200:230] = 0
    assert_split_invariant(lambda: _core.VibratoTracker(fs), f0, cuts)


@pytest.mark.parametrize("kwargs, name", [
    (dict(frame_rate=5.0), "frame_rate"),
    *bad_parameters(dict(frame_rate=100.0), ("rate_min", 0.0), ("rate_min", 1e-9), ("rate_max", 40.0), ("extent_on", 0.0),
                    ("extent_off", 10.0), ("regularity_on", 1.5), ("regularity_off", 0.9), ("window_periods", 0.5),
                    ("release_periods", 5.0), ("max_glitch", 99), ("hold_frames", 0), ("trend_ratio", -0.1),
                    ("trend_ratio", float("inf")), ("trend_ratio_off", 0.7), ("bridge_periods", -1.0),
                    ("nonsense", 1)),
])
def test_bad_vibrato_parameters_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        _core.VibratoTracker(**kwargs)


def test_bad_technique_parameters_raise_parameter_error():
    with pytest.raises(ParameterError, match="extent_on"):
        TechniqueDetector(44100, vibrato={"extent_on": -1.0})
    with pytest.raises(ParameterError, match="sample_rate"):
        TechniqueDetector(100)
    with pytest.raises(ParameterError, match="value_interval"):
        TechniqueDetector(44100, value_interval=-1)
    with pytest.raises(ValueError, match="am_per_cent"):
        _core.TechniqueTracker(44100, am_per_cent=0.0)
    for name, value in (("purity_weight", -1.0), ("hz_pivot", -0.5), ("exclusion", 0.5), ("attribution_margin", -0.1),
                        ("under_vibrato_regularity", 0.2)):
        with pytest.raises(ValueError, match=name):
            _core.TechniqueTracker(44100, **{name: value})
    with pytest.raises(ParameterError, match="rate_stability"):
        TechniqueDetector(44100, tremolo={"rate_stability": -0.1})


def test_detector_events_values_and_frame_dict():
    sr = 22050
    x = modulated_tone(sr, 4.0, 440.0, vib=(6.0, 60.0), start=1.0)
    x[int(3.0 * sr):] = 0.0  # the note stops
    det = TechniqueDetector(sr, value_interval=0.05)
    assert det.frame_dict() == {"pitch": None, "vibrato": {"on": False, "rate": 0.0, "extent": 0.0},
                                "tremolo": {"on": False, "rate": 0.0, "depth": 0.0}}
    events, values = detect_in_blocks(det, x, 1000)
    kinds = [type(e) for e in events]
    assert kinds == [VibratoOn, VibratoOff]
    on, off = events
    assert 1.0 < on.stream_time < 1.0 + 2.5 / 6.0
    assert on.rate == pytest.approx(6.0, abs=0.3) and on.extent > 20
    assert 3.0 <= off.stream_time < 3.1
    assert all(isinstance(v, TechniqueValues) for v in values)
    times = np.array([v.stream_time for v in values])
    assert np.allclose(np.diff(times), 0.05, atol=det.hop_length / sr)
    mid = [v for v in values if 2.0 < v.stream_time < 2.9]
    assert all(v.vibrato and abs(v.vibrato_rate - 6.0) < 0.2 for v in mid)
    assert all(abs(v.midi - hz_to_midi(v.pitch)) < 1e-9 and abs(v.midi - 69) < 1.2 for v in mid)
    late = [v for v in values if v.stream_time > 3.1]
    assert all(v.pitch is None and v.midi is None and not v.vibrato and v.vibrato_rate == 0.0 for v in late)
    assert det.finish() == []
    d = frame_dict(mid[-1])
    assert d["vibrato"]["on"] is True and d["pitch"] == pytest.approx(mid[-1].pitch)
    assert set(d["tremolo"]) == {"on", "rate", "depth"}
    assert mid[-1].to_dict()["event"] == "technique"


def test_detector_finish_sends_off_and_uses_given_stream_time():
    sr = 16000
    x = modulated_tone(sr, 2.5, 300.0, vib=(5.0, 50.0), start=0.2)
    det = TechniqueDetector(sr)
    events, _ = det.process(x, stream_time_offset=10.0)
    assert [type(e) for e in events] == [VibratoOn]
    assert 10.2 < events[0].stream_time < 10.8
    offs = det.finish(stream_time=12.5)
    assert [type(e) for e in offs] == [VibratoOff] and offs[0].stream_time == 12.5
    assert det.finish() == []
