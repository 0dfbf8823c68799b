"""Pitch, vibrato and tremolo trackers and the detectors around them: cases found in review.

Each test runs a synthetic signal whose answer is known (a sine near the top of the pitch range, a pulse
train, a modulation from the first frame of a note, a level window of one tremolo period) or a bad input
that must be refused with its parameter named.
"""

from __future__ import annotations

import numpy as np
import pytest
from _trackers import modulated_tone, track

from rtclassify import _core
from rtclassify.detect.decoder import Decoder, DecoderConfig
from rtclassify.detect.events import TremoloOff, TremoloOn, VibratoOn
from rtclassify.detect.techniques import TechniqueDetector
from rtclassify.errors import ParameterError


def sine(f, sr, dur, amp=0.3):
    t = np.arange(int(sr * dur)) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def cents(f, ref):
    return 1200 * np.log2(np.maximum(f, 1e-3) / ref)


# ---------------------------------------------------------------- pitch: top of the range, no decimation

@pytest.mark.parametrize("sr, fmax, f", [(8000, 2000, 1760.0), (11025, 2000, 1975.5), (11025, 2000, 2000.0),
                                         (48000, 12000, 8500.0), (48000, 12000, 11000.0)])
def test_short_periods_are_not_read_an_octave_down(sr, fmax, f):
    # periods of 4 to 6 samples at the full rate: the refinement's lags must not reach twice the period
    tr = _core.PitchTracker(sr, fmax=fmax)
    assert tr.decimation == 1
    out = tr.process(sine(f, sr, 0.5))
    late = slice(len(out["f0"]) // 2, None)
    assert out["voiced"][late].all()
    assert np.abs(cents(out["f0"][late], f)).max() < 30.0


def bright(f, sr, dur, n_harmonics, tilt=0.0, amp=0.3):
    """Harmonics 1..n_harmonics below the Nyquist frequency, amplitude 1 / k**tilt (0: all equal)."""
    t = np.arange(int(sr * dur)) / sr
    ks = [k for k in range(1, n_harmonics + 1) if k * f < sr / 2]
    x = sum(np.sin(2 * np.pi * k * f * t) / k ** tilt for k in ks)
    return (amp * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize("sr, fmax, f, n, tilt", [
    (8000, 2000, 411.2, 8, 0.0), (8000, 2000, 456.9, 8, 0.0), (11025, 2000, 594.7, 8, 0.0),
    (16000, 2000, 823.3, 8, 0.0), (16000, 4000, 860.3, 8, 0.0), (8000, 2000, 1768.5, 3, 1.0),
    (8000, 2000, 760.7, 6, 0.5), (11025, 2000, 883.2, 6, 0.5)])
def test_bright_tones_at_low_rates_are_not_read_an_octave_down(sr, fmax, f, n, tilt):
    # harmonics near the Nyquist frequency make the period's dip narrower than one lag: the coarse search's
    # whole lags miss it and stop at twice the period unless the period's fractions are measured too
    tr = _core.PitchTracker(sr, fmax=fmax)
    out = tr.process(bright(f, sr, 0.6, n, tilt))
    late = slice(len(out["f0"]) // 2, None)
    assert out["voiced"][late].all()
    assert np.abs(cents(np.median(out["f0"][late]), f)) < 20.0
    assert np.abs(cents(out["f0"][late], f)).max() < 100.0


@pytest.mark.parametrize("sr, f", [(8000, 110.0), (16000, 220.0), (11025, 300.0), (48000, 440.0)])
def test_low_notes_with_strong_even_harmonics_keep_their_octave(sr, f):
    # the fractions of the period are taken only when periodic: a note whose second harmonic is twice as
    # strong as its fundamental (and has odd harmonics above) is still read at its own period
    t = np.arange(int(sr * 0.6)) / sr
    x = (0.1 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(2 * np.pi * 2 * f * t) + 0.08 * np.sin(2 * np.pi * 3 * f * t)
         + 0.05 * np.sin(2 * np.pi * 5 * f * t)).astype(np.float32)
    out = _core.PitchTracker(sr).process(x)
    late = slice(len(out["f0"]) // 2, None)
    assert out["voiced"][late].all()
    assert np.abs(cents(out["f0"][late], f)).max() < 20.0


@pytest.mark.parametrize("sr, f", [(8000, 1760.0), (11025, 1975.5)])
def test_detector_reads_the_note_near_its_pitch_ceiling(sr, f):
    det = TechniqueDetector(sr)
    _, values = det.process(sine(f, sr, 1.0))
    assert values[-1].midi == pytest.approx(69 + 12 * np.log2(f / 440.0), abs=0.3)


# ---------------------------------------------------------------- pitch: a correlation peak one lag wide

def pulse_train(f, sr, dur, amp=0.3):
    """Band-limited pulse train: every harmonic below 0.49 sr at the same amplitude (a flat spectrum)."""
    t = np.arange(int(sr * dur)) / sr
    x = sum(np.cos(2 * np.pi * k * f * t) for k in range(1, int(0.49 * sr / f) + 1))
    return (amp * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize("period", [225, 250, 300])
def test_a_pulse_train_with_a_whole_period_is_not_missed_between_lags(period):
    # its correlation peak is one lag wide: the search on every other lag (periods >= 160) can miss it
    sr = 22050
    out = _core.PitchTracker(sr).process(pulse_train(sr / period, sr, 2.0))
    late = slice(60, None)
    assert out["voiced"][late].all()
    assert np.abs(cents(out["f0"][late], sr / period)).max() < 5.0


# ---------------------------------------------------------------- tremolo: restarts of the level contour

@pytest.mark.parametrize("cut", [500, 501])
def test_no_stale_tremolo_estimate_at_an_invalid_frame(cut):
    # with hold_frames=1 the analysis of the contour before the restart turned the tremolo on again
    fs = 200.0
    t = np.arange(int(3 * fs)) / fs
    level = (-20 + 1.5 * np.sin(2 * np.pi * 6 * t)).astype(np.float32)
    valid = np.ones(len(t), bool)
    valid[cut:] = False
    out = _core.TremoloTracker(fs, hold_frames=1, bridge_periods=0).process(level, valid=valid)
    assert out["on"][cut - 1] and out["restarted"][cut]
    assert not out["on"][cut:].any()
    assert (out["rate"][cut:] == 0).all() and (out["depth"][cut:] == 0).all()
    # bridged: on at the rate and depth it had for at most 30 ms of invalid frames (an attack's noise), then off
    out = _core.TremoloTracker(fs, hold_frames=1).process(level, valid=valid)
    assert out["on"][cut:cut + 6].all() and np.allclose(out["rate"][cut:cut + 6], out["rate"][cut - 1])
    assert not out["on"][cut + 7:].any()
    assert (out["rate"][cut + 7:] == 0).all() and (out["depth"][cut + 7:] == 0).all()


def test_no_stale_tremolo_estimate_at_an_onset():
    fs = 200.0
    t = np.arange(int(3 * fs)) / fs
    level = -20 + 1.5 * np.sin(2 * np.pi * 6 * t)
    level[400:] += 12.0  # a new note: a rise faster than any tremolo restarts the contour
    out = _core.TremoloTracker(fs, hold_frames=1, bridge_periods=0).process(level.astype(np.float32))
    assert out["on"][399] and out["restarted"][400]
    assert not out["on"][400] and out["rate"][400] == 0
    # bridged: the tremolo goes on through the new note at its rate, and the new contour confirms it
    out = _core.TremoloTracker(fs, hold_frames=1).process(level.astype(np.float32))
    assert out["restarted"][400] and out["on"][399:].all()
    assert abs(out["rate"][400] - 6.0) < 0.05 and abs(out["rate"][-1] - 6.0) < 0.05


def test_tremolo_under_vibrato_does_not_outlive_a_restart_of_the_level():
    # a tremolo found under a vibrato's by-product (the level less its fit by the vibrato) on a resonant
    # body; 8 ms of noise at the tone's level makes the pitch confidence dip and restarts the level
    # contour: the analysis made before the restart turned the tremolo on again for a few frames
    from rtclassify.train.techniques_eval import resonant_body

    sr, f0 = 22050, 220.0
    peaks = ((3.03 * f0, 10.0, 15.0), (5.05 * f0, 8.0, 12.0), (2500.0, 4.0, 8.0))
    x = 0.2 * resonant_body(modulated_tone(sr, 5.0, f0, vib=(5.0, 90.0), trem=(6.6, 3.0), harmonics=20, start=0.3),
                            sr, peaks)
    a, b = int(3.06 * sr), int(3.06 * sr) + int(0.008 * sr)
    x[a:b] = np.random.default_rng(0).standard_normal(b - a) * np.sqrt(np.mean(x[a - 2000:a] ** 2))
    out = track(sr, x.astype(np.float32), tremolo={"bridge_periods": 0})
    on, t = out["tremolo_on"], out["time"]
    offs = np.flatnonzero(on[:-1] & ~on[1:]) + 1  # the frames it turned off at
    off = offs[t[offs] > 3.0][0]
    assert 3.06 <= t[off] < 3.1
    # off until a whole new analysis: at least one window of the fastest rate (3 periods of 15 Hz)
    back_on = off + int(np.argmax(on[off:]))
    assert t[back_on] - t[off] >= 0.2
    events, _ = TechniqueDetector(sr, tremolo={"bridge_periods": 0}).process(x.astype(np.float32))
    assert len([e for e in events if isinstance(e, TremoloOn)]) == 2  # the first, and one after the restart
    # bridged (the default): the 8 ms of noise do not interrupt the tremolo
    events, _ = TechniqueDetector(sr).process(x.astype(np.float32))
    assert len([e for e in events if isinstance(e, TremoloOn)]) == 1
    assert not [e for e in events if isinstance(e, TremoloOff) and 3.0 < e.stream_time < 4.9]


# ---------------------------------------------------------------- depth compensation at x = 1

def test_depth_compensation_where_the_level_window_holds_one_tremolo_period():
    # level_window = 1 / rate: the Hann window's response sinc(x) / (1 - x^2) is 0 / 0 at x = 1 (limit 1/2)
    sr = 48000
    x = modulated_tone(sr, 4.0, 330.0, trem=(15.0, 6.0), start=0.5)
    depth = {}
    for lw in (0.066, 1 / 15, 0.0675):
        out = track(sr, x, level_window=lw)
        late = slice(len(out["f0"]) // 2, None)
        assert out["tremolo_on"][late].all()
        at_top = out["tremolo_rate"][late] == 15.0  # rate_max: x = 1 exactly where level_window = 1 / 15
        assert at_top.sum() > 100
        assert (out["tremolo_depth"][late] > 3.0).all()
        depth[lw] = float(np.median(out["tremolo_depth"][late][at_top]))
    assert depth[1 / 15] == pytest.approx(6.0, abs=0.5)
    # no jump across x = 1 and across the cutoff of the compensation
    assert depth[0.0675] == pytest.approx(depth[1 / 15], rel=0.05)
    assert depth[0.066] == pytest.approx(depth[1 / 15], rel=0.05)


# ---------------------------------------------------------------- hop_length named

@pytest.mark.parametrize("sr, hop", [(16000, 4), (16000, 1000), (48000, 1), (4000, 101)])
def test_a_hop_outside_the_frame_rates_is_named(sr, hop):
    with pytest.raises(ValueError, match=r"^hop_length: must be in \[\d+, \d+\] samples") as err:
        _core.TechniqueTracker(sr, hop_length=hop)
    assert "frame_rate" not in str(err.value)
    with pytest.raises(ParameterError, match="^hop_length"):
        TechniqueDetector(sr, hop_length=hop)


def test_a_hop_too_long_for_rate_max_is_named():
    with pytest.raises(ValueError, match=r"^hop_length: must be at most 266 samples .*tremolo\.rate_max") as err:
        _core.TechniqueTracker(16000, hop_length=320)
    assert "(got 320)" in str(err.value)
    with pytest.raises(ValueError, match=r"^hop_length: .*vibrato\.rate_max"):
        _core.TechniqueTracker(16000, hop_length=200, vibrato={"rate_max": 20.0}, tremolo={"rate_max": 10.0})
    assert _core.TechniqueTracker(16000, hop_length=266).hop_length == 266
    assert _core.TechniqueTracker(16000, hop_length=320, tremolo={"rate_max": 12.0}).hop_length == 320


def test_rate_max_errors_name_their_tracker():
    # with the default hop the rate_max is the parameter at fault
    with pytest.raises(ValueError, match=r"^tremolo\.rate_max"):
        _core.TechniqueTracker(16000, tremolo={"rate_max": 60.0})
    with pytest.raises(ValueError, match=r"^vibrato\.rate_max"):
        _core.TechniqueTracker(16000, vibrato={"rate_max": 2.0})
    with pytest.raises(ParameterError, match=r"^vibrato\.extent_on"):
        TechniqueDetector(16000, vibrato={"extent_on": -1.0})


# ---------------------------------------------------------------- a modulation from the first frame of a contour

def test_vibrato_from_the_contour_start_turns_on_at_its_own_rate():
    fs = 200.0
    t = np.arange(int(2 * fs)) / fs
    f0 = (440 * 2 ** (50 * np.sin(2 * np.pi * 5.5 * t) / 1200)).astype(np.float32)
    out = _core.VibratoTracker(fs).process(f0)
    on = out["on"]
    assert on.any()
    first = int(np.argmax(on))
    # never on at a rate pinned to the slowest candidate analyzed so far (it was 6.25 Hz, 44 cents)
    assert np.abs(out["rate"][on] - 5.5).max() < 0.1
    assert np.abs(out["extent"][on] - 50.0).max() < 1.5
    assert (first + 1) / fs * 5.5 <= 2.5  # detected within 2.5 periods of the start


@pytest.mark.parametrize("rate, extent", [(4.0, 50.0), (5.5, 50.0), (7.0, 30.0), (8.5, 30.0)])
def test_vibrato_on_event_of_a_note_that_starts_with_it(rate, extent):
    sr = 16000
    x = np.concatenate([np.zeros(sr // 2, np.float32), modulated_tone(sr, 3.0, 330.0, vib=(rate, extent), start=0.0)])
    events, _ = TechniqueDetector(sr).process(x)
    on = [e for e in events if isinstance(e, VibratoOn)]
    assert len(on) == 1
    assert on[0].rate == pytest.approx(rate, abs=0.1)
    assert on[0].extent == pytest.approx(extent, abs=2.5)
    assert (on[0].stream_time - 0.5) * rate <= 2.5


@pytest.mark.parametrize("rate", [4.0, 6.0, 10.0])
def test_tremolo_on_event_of_a_note_that_starts_with_it(rate):
    sr = 16000
    x = np.concatenate([np.zeros(sr // 2, np.float32), modulated_tone(sr, 3.0, 330.0, trem=(rate, 3.0), start=0.0)])
    events, _ = TechniqueDetector(sr).process(x)
    on = [e for e in events if isinstance(e, TremoloOn)]
    assert len(on) == 1
    assert on[0].rate == pytest.approx(rate, abs=0.1)
    assert on[0].depth == pytest.approx(3.0, abs=0.3)
    assert not any(isinstance(e, VibratoOn) for e in events)


# ---------------------------------------------------------------- detector inputs

@pytest.mark.parametrize("bad", [np.array([16384, -32768] * 200, np.int16), np.arange(400, dtype=np.int32),
                                 np.full(400, 0.1 + 0.1j), np.zeros(400, bool)])
def test_detector_refuses_samples_it_would_misread(bad):
    with pytest.raises(TypeError) as native:
        _core.TechniqueTracker(16000).process(bad)
    det = TechniqueDetector(16000)
    with pytest.raises(ParameterError) as err:
        det.process(bad)
    assert str(err.value) == str(native.value)  # the native binding's message
    assert det.samples == 0
    with pytest.raises(ParameterError, match="float32 or float64"):
        det.track(bad)


def test_detector_still_takes_float_samples():
    x = modulated_tone(16000, 1.0, 330.0)
    a = TechniqueDetector(16000).track(x.astype(np.float64))
    b = TechniqueDetector(16000).track(x)
    np.testing.assert_array_equal(a["f0"], b["f0"])


@pytest.mark.parametrize("sr", [6000, np.int64(6000), np.float32(6000.0), np.float64(6000.0), np.int32(6000)])
def test_detector_lowers_fmax_for_any_numeric_sample_rate(sr):
    assert TechniqueDetector(sr).config["fmax"] == 1500.0


# ---------------------------------------------------------------- decoder

def test_decoder_refuses_outputs_that_are_not_one_per_tag():
    labels = ("piano", "voice", "drums")
    d = Decoder(DecoderConfig(labels=labels, thresholds={t: (0.5, 0.4) for t in labels}), 0.1)
    for probs in (np.array([0.9], np.float32), 0.9, np.float32(0.9), np.array([0.9, 0.1], np.float32),
                  np.zeros(4, np.float32), np.zeros((1, 3), np.float32), [0.9]):
        with pytest.raises(ParameterError, match=r"probs: must have shape \(3,\)"):
            d.step(probs, 0.1)
    assert not d.active.any()
    ev = d.step(np.array([0.9, 0.1, 0.1], np.float32), 0.1)
    assert [e.tag for e in ev if type(e).__name__ == "TagOn"] == ["piano"]
    d.reset()
    assert [e.tag for e in d.step([0.1, 0.9, 0.1], 0.1) if type(e).__name__ == "TagOn"] == ["voice"]


def test_process_frames_gives_process_s_frames_as_one_structured_array():
    """The per-block path (TechniqueDetector) reads process_frames: the same values as process's dict, field by
    field and in its order, and the same stream state afterwards."""
    rng = np.random.default_rng(3)
    sr = 16000
    t = np.arange(sr * 3) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t + 0.5 * np.sin(2 * np.pi * 5.5 * t))
         * (1 + 0.3 * np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    a, b = _core.TechniqueTracker(sr), _core.TechniqueTracker(sr)
    for i in range(0, len(x), 1000):
        d = a.process(x[i:i + 1000])
        f = b.process_frames(x[i:i + 1000])
        assert f.dtype.names == tuple(d) and len(f) == len(d["f0"])
        for k, v in d.items():
            assert f[k].dtype == v.dtype and np.array_equal(f[k], v), k
    assert a.frames == b.frames and a.samples == b.samples
    assert b.process_frames(np.zeros(0, np.float32)).shape == (0,)
    with pytest.raises((TypeError, ValueError)):
        b.process_frames(np.zeros((2, 2), np.float32))
