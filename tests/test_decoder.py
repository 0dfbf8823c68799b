"""Decoder: smoothing, hysteresis, minimum durations, levels and overrides on constructed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtclassify.detect.decoder import Decoder, DecoderConfig
from rtclassify.detect.events import TagLevel, TagOff, TagOn
from rtclassify.errors import ParameterError

HOP = 0.1
LABELS = ("a", "b")


def make(on=0.6, off=0.4, hop=HOP, **kw) -> Decoder:
    cfg = DecoderConfig(labels=LABELS, thresholds={t: (on, off) for t in LABELS}, **kw)
    return Decoder(cfg, hop)


def run(dec: Decoder, seq_a, seq_b=None):
    """Feed sequences (tag a, tag b); returns per-hop lists of (kind, tag) for on/off events and the states."""
    seq_b = seq_b if seq_b is not None else [0.0] * len(seq_a)
    changes, states = [], []
    for k, (pa, pb) in enumerate(zip(seq_a, seq_b)):
        evs = dec.step(np.array([pa, pb], np.float32), stream_time=k * HOP)
        changes.append([(e.kind, e.tag) for e in evs if e.kind != "level"])
        states.append(tuple(dec.active))
    return changes, states


def test_hysteresis():
    dec = make(level_rate=0)
    seq = [0.5, 0.59, 0.6, 0.61, 0.5, 0.41, 0.4, 0.39, 0.5, 0.61]
    changes, states = run(dec, seq)
    on_a = [s[0] for s in states]
    # between thresholds nothing happens; exactly on the threshold is not above it; strictly above turns on;
    # between thresholds it stays on; exactly off is not below; strictly below turns off
    assert on_a == [False, False, False, True, True, True, True, False, False, True]
    assert changes[3] == [("on", "a")] and changes[7] == [("off", "a")] and changes[9] == [("on", "a")]
    assert sum(len(c) for c in changes) == 3


def test_tagon_prob_and_times():
    dec = make(level_rate=0)
    evs = dec.step(np.array([0.9, 0.1], np.float32), stream_time=1.25, wall_time=99.0)
    assert evs == [TagOn(1.25, 0.0, 0, "a", float(np.float32(0.9)))]
    assert evs[0].wall_time == 99.0


def test_min_on_duration_holds_tag_on():
    # min_on 0.3 s = 3 hops: on at hop 0, below off at hop 1, 2 -> held; off at hop 3
    dec = make(min_on_s=0.3, level_rate=0)
    changes, states = run(dec, [0.9, 0.1, 0.1, 0.1, 0.1])
    assert [s[0] for s in states] == [True, True, True, False, False]
    assert changes[3] == [("off", "a")]


def test_min_on_duration_off_only_if_still_below():
    dec = make(min_on_s=0.3, level_rate=0)
    changes, states = run(dec, [0.9, 0.1, 0.1, 0.5, 0.1])
    # at hop 3 the hold expired but p=0.5 is not below off: stays on; turns off at hop 4
    assert [s[0] for s in states] == [True, True, True, True, False]


def test_min_off_duration_holds_tag_off():
    dec = make(min_off_s=0.25, level_rate=0)  # ceil(0.25/0.1) = 3 hops
    changes, states = run(dec, [0.9, 0.1, 0.9, 0.9, 0.9, 0.9])
    assert [s[0] for s in states] == [True, False, False, False, True, True]
    assert changes[4] == [("on", "a")]


def test_onset_never_delayed_at_stream_start():
    dec = make(min_off_s=10.0, level_rate=0)
    changes, states = run(dec, [0.9])
    assert states[0][0] and changes[0] == [("on", "a")]


def test_ema_smoothing_step_response():
    tau = 0.2
    dec = make(smoothing_s=tau, level_rate=0)
    alpha = 1 - math.exp(-HOP / tau)
    seq = [0.0] + [1.0] * 6
    expected = [0.0]
    for p in seq[1:]:
        expected.append(expected[-1] + alpha * (p - expected[-1]))
    got = []
    for k, p in enumerate(seq):
        dec.step(np.array([p, p], np.float32), stream_time=k * HOP)
        got.append(float(dec.smoothed[0]))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # on threshold 0.6 crossed at the first smoothed value above it
    first_above = next(i for i, v in enumerate(expected) if v > 0.6)
    dec2 = make(smoothing_s=tau, level_rate=0)
    _, states = run(dec2, seq)
    assert [s[0] for s in states].index(True) == first_above


def test_attack_release_envelope_follower():
    """attack_s while rising, smoothing_s (release) while falling, per tag."""
    tau_a, tau_r = 0.05, 0.4
    dec = make(smoothing_s=tau_r, attack_s=tau_a, level_rate=0)
    aa, ar = 1 - math.exp(-HOP / tau_a), 1 - math.exp(-HOP / tau_r)
    seq_a = [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    seq_b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]  # the other way round at the same time
    exp_a, exp_b = [0.0], [1.0]
    for pa, pb in zip(seq_a[1:], seq_b[1:]):
        exp_a.append(exp_a[-1] + (aa if pa > exp_a[-1] else ar) * (pa - exp_a[-1]))
        exp_b.append(exp_b[-1] + (aa if pb > exp_b[-1] else ar) * (pb - exp_b[-1]))
    got = []
    for k, (pa, pb) in enumerate(zip(seq_a, seq_b)):
        dec.step(np.array([pa, pb], np.float32), stream_time=k * HOP)
        got.append(dec.smoothed.copy())
    np.testing.assert_allclose(np.array(got), np.array([exp_a, exp_b]).T, rtol=1e-5, atol=1e-6)
    # a fast attack turns the tag on at the first rising hop, the slow release keeps it on through the dip
    changes, states = run(make(smoothing_s=tau_r, attack_s=0.0, level_rate=0), [0.0, 0.9, 0.1, 0.9, 0.9])
    assert changes[1] == [("on", "a")] and all(s[0] for s in states[1:])
    # the symmetric EMA with the same time constant is slower to turn on
    _, states_sym = run(make(smoothing_s=tau_r, level_rate=0), [0.0, 0.9, 0.1, 0.9, 0.9])
    assert not states_sym[1][0]


def test_ema_first_output_initialises():
    dec = make(smoothing_s=1.0, level_rate=0)
    dec.step(np.array([0.8, 0.2], np.float32), 0.0)
    np.testing.assert_array_equal(dec.smoothed, np.array([0.8, 0.2], np.float32))
    assert dec.active.tolist() == [True, False]


def test_median_smoothing_removes_single_spike():
    dec = make(smoothing="median", median_hops=3, level_rate=0)
    changes, states = run(dec, [0.1, 0.1, 0.95, 0.1, 0.1, 0.9, 0.9, 0.9])
    assert [s[0] for s in states] == [False, False, False, False, False, False, True, True]
    raw = make(level_rate=0)
    _, raw_states = run(raw, [0.1, 0.1, 0.95, 0.1])
    assert raw_states[2][0]  # without smoothing the spike turns the tag on


def test_tags_are_independent_and_events_ordered():
    dec = make(level_rate=0)
    dec.step(np.array([0.9, 0.1], np.float32), 0.0)
    evs = dec.step(np.array([0.1, 0.9], np.float32), 0.1)
    assert [(type(e), e.tag) for e in evs] == [(TagOff, "a"), (TagOn, "b")]


def test_levels_every_hop_by_default_and_after_changes():
    dec = make()
    evs = dec.step(np.array([0.9, 0.2], np.float32), 0.0)
    assert [type(e) for e in evs] == [TagOn, TagLevel, TagLevel]
    assert [(e.tag, e.prob) for e in evs[1:]] == [("a", float(np.float32(0.9))), ("b", float(np.float32(0.2)))]


def test_level_rate():
    dec = make(level_rate=2.5)  # every 0.4 s with a 0.1 s hop
    level_hops = [k for k in range(20)
                  if any(isinstance(e, TagLevel) for e in dec.step(np.zeros(2, np.float32), k * HOP))]
    assert level_hops == [0, 4, 8, 12, 16]
    none = make(level_rate=0)
    assert not any(isinstance(e, TagLevel) for k in range(5) for e in none.step(np.zeros(2, np.float32), k * HOP))


def test_a_tag_that_turns_on_between_two_levels_gets_its_level_with_it():
    """The sinks send levels from TagLevel events only: a tag's level rises with its note, not up to a level
    period later; with level_rate=0 no level goes out at all, so nothing is left at a receiver (the sinks sent
    a level with each TagOn, which a decoder without levels never set back to 0)."""
    dec = make(level_rate=2.5, smoothing_s=0.0)  # levels at hops 0, 4, 8, ...
    dec.step(np.zeros(2, np.float32), 0.0)
    dec.step(np.zeros(2, np.float32), HOP)
    evs = dec.step(np.array([0.2, 0.9], np.float32), 2 * HOP)
    assert [(type(e), e.tag) for e in evs] == [(TagOn, "b"), (TagLevel, "b")]
    assert evs[1].prob == pytest.approx(0.9)
    assert dec.step(np.array([0.2, 0.9], np.float32), 3 * HOP) == []
    evs = dec.step(np.array([0.2, 0.9], np.float32), 4 * HOP)  # the next level: every tag
    assert [(type(e), e.tag) for e in evs] == [(TagLevel, "a"), (TagLevel, "b")]

    none = make(level_rate=0)
    evs = [e for k, p in enumerate([0.0, 0.9, 0.9, 0.1]) for e in none.step(np.array([p, 0.0], np.float32), k * HOP)]
    evs += none.flush(1.0)
    assert [(type(e), e.tag) for e in evs] == [(TagOn, "a"), (TagOff, "a")]


def test_flush_turns_everything_off():
    dec = make(min_on_s=5.0, level_rate=0)
    dec.step(np.array([0.9, 0.9], np.float32), 0.0)
    evs = dec.flush(3.0, wall_time=7.0)
    assert evs == [TagOff(3.0, 0.0, 0, "a"), TagOff(3.0, 0.0, 0, "b")]
    assert not dec.active.any() and dec.flush(3.1) == []


def test_flush_sends_every_level_to_zero_when_levels_are_sent():
    """A receiver's level (a MIDI CC, an OSC value) would otherwise keep its last value after the stream ends."""
    dec = make(min_on_s=5.0, level_rate=2.5)
    dec.step(np.array([0.9, 0.3], np.float32), 0.0)
    evs = dec.flush(3.0)
    assert [type(e) for e in evs] == [TagOff, TagLevel, TagLevel]
    assert [(e.tag, e.prob, e.stream_time) for e in evs[1:]] == [("a", 0.0, 3.0), ("b", 0.0, 3.0)]
    assert dec.flush(3.1) == []
    # a stream that never sent a level (no output yet) sends no zeros either
    assert make(level_rate=2.5).flush(0.0) == []


def test_reset_forgets_state():
    dec = make(smoothing_s=1.0, level_rate=0)
    run(dec, [0.9, 0.9])
    dec.reset()
    assert not dec.active.any()
    dec.step(np.array([0.3, 0.3], np.float32), 0.0)
    assert dec.smoothed[0] == np.float32(0.3)


class _FakeBundle:
    labels = LABELS
    thresholds = {"a": (0.6, 0.4), "b": (0.7, 0.5)}
    decoder = {"smoothing_s": 0.2, "min_on_s": 0.1, "min_off_s": 0.0}


def test_config_from_bundle_and_overrides():
    cfg = DecoderConfig.from_bundle(_FakeBundle)
    assert cfg.thresholds == {"a": (0.6, 0.4), "b": (0.7, 0.5)} and cfg.smoothing_s == 0.2 and cfg.min_on_s == 0.1
    cfg2 = DecoderConfig.from_bundle(_FakeBundle, {"thresholds": {"b": {"on": 0.8}}, "smoothing_s": 0,
                                                    "smoothing": "median", "median_hops": 5, "level_rate": 10})
    assert cfg2.thresholds["b"] == (0.8, 0.5) and cfg2.thresholds["a"] == (0.6, 0.4)
    assert cfg2.smoothing == "median" and cfg2.median_hops == 5 and cfg2.level_rate == 10.0
    assert cfg2.smoothing_s == 0.0 and cfg2.min_on_s == 0.1
    # an 'on' below the old 'off' drags 'off' down with it
    cfg3 = DecoderConfig.from_bundle(_FakeBundle, {"thresholds": {"b": {"on": 0.3}}})
    assert cfg3.thresholds["b"] == (0.3, 0.3)
    assert DecoderConfig.from_bundle(_FakeBundle, level_rate=4).level_rate == 4.0


@pytest.mark.parametrize("overrides, text", [
    ({"smoothness": 1}, "decoder.smoothness"),
    ({"smoothing": "mean"}, "decoder.smoothing"),
    ({"smoothing_s": -1}, "decoder.smoothing_s"),
    ({"attack_s": -0.1}, "decoder.attack_s"),
    ({"min_on_s": "long"}, "decoder.min_on_s"),
    ({"median_hops": 0}, "decoder.median_hops"),
    ({"level_rate": -2}, "decoder.level_rate"),
    ({"thresholds": {"zz": {"on": 0.5}}}, "unknown tag 'zz'"),
    ({"thresholds": {"a": {"on": 1.2}}}, "decoder.thresholds.a.on"),
    ({"thresholds": {"a": {"on": 0.5, "off": 0.6}}}, "must not exceed"),
    ({"thresholds": {"a": {"high": 0.5}}}, "decoder.thresholds.a"),
])
def test_bad_overrides_name_the_key(overrides, text):
    with pytest.raises(ParameterError) as err:
        DecoderConfig.from_bundle(_FakeBundle, overrides)
    assert text in str(err.value)


def test_bad_hop():
    cfg = DecoderConfig.from_bundle(_FakeBundle)
    with pytest.raises(ParameterError, match="hop_s"):
        Decoder(cfg, 0.0)


@pytest.mark.parametrize("kw", [dict(smoothing_s=0.1), dict(smoothing_s=0.1, attack_s=0.0),
                                dict(smoothing="median", median_hops=3)])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1.7, -0.3])
def test_a_bad_model_output_never_sticks_or_reaches_the_events(kw, bad):
    d = make(**kw)
    events = []
    for p in [0.9, bad] + [0.1] * 30:
        events += d.step(np.array([p, 0.0], np.float32), 0.0)
    assert not d.active[0] and np.isfinite(d.smoothed).all()  # the tag recovered and turned off
    assert all(0.0 <= e.prob <= 1.0 for e in events if hasattr(e, "prob"))
    assert [type(e) for e in events if not isinstance(e, TagLevel)] == [TagOn, TagOff]
    assert d.bad_probabilities == 1
    d.reset()
    assert d.bad_probabilities == 0


def test_median_over_one_hop_is_no_smoothing():
    d = make(smoothing="median", median_hops=1, smoothing_s=0.5, level_rate=0)
    got = []
    for p in (0.0, 0.9, 0.9):
        d.step(np.array([p, 0.0], np.float32), 0.0)
        got.append(float(d.smoothed[0]))
    assert got == pytest.approx([0.0, 0.9, 0.9])


def test_a_float_median_hops_is_refused():
    with pytest.raises(ParameterError, match="median_hops"):
        make(smoothing="median", median_hops=3.0)


def test_midi_values_of_a_bad_probability_are_in_range():
    from rtclassify.sinks.mapping import MidiMapping

    m = MidiMapping()
    assert m.level(float("nan")) == 0 and m.level(float("inf")) == 127 and m.level(-1) == 0
    assert 1 <= m.velocity(float("nan")) <= 127


@pytest.mark.parametrize("hops", [1001, 10**9, np.int64(10**7)])
def test_median_hops_has_the_bound_of_a_bundle_and_a_mapping_file(hops):
    """10**9 hops asked the decoder for a 45 GiB history (MemoryError), 10**7 got 480 MB, through the Python API."""
    words = r"^decoder\.median_hops must be a whole number from 1 to 1000 \(got "
    with pytest.raises(ParameterError, match=words):
        DecoderConfig.from_bundle(_FakeBundle, {"smoothing": "median", "median_hops": hops})
    with pytest.raises(ParameterError, match=words):  # a config built by hand is checked before any allocation
        make(smoothing="median", median_hops=hops)


def test_median_hops_one_bound_for_the_api_the_bundle_and_the_mapping_file():
    from rtclassify.detect import decoder
    from rtclassify.model import bundle
    from rtclassify.sinks import mapping

    assert decoder.MAX_MEDIAN_HOPS == 1000
    assert bundle.MAX_MEDIAN_HOPS is decoder.MAX_MEDIAN_HOPS and mapping.MAX_MEDIAN_HOPS is decoder.MAX_MEDIAN_HOPS
    cfg = DecoderConfig.from_bundle(_FakeBundle, {"smoothing": "median", "median_hops": 1000})
    assert cfg.median_hops == 1000 and Decoder(cfg, HOP)._hist.shape == (1000, 2)


@pytest.mark.parametrize("days", [0, 100, 365, 3650])
@pytest.mark.parametrize("level_rate", [16000 / 768, 10.0, 7.0])
def test_levels_keep_their_rate_after_months_of_stream(days, level_rate):
    """An installation runs for weeks: the stream time grows and its float spacing with it (2e-9 s after 100
    days). The next level's time was summed period by period and compared within an absolute 1e-9 s, so a level
    was skipped now and then (at a level period of one hop even on a fresh stream). Every hop of 768 samples
    at 16 kHz over 20000 hops: as many levels at any age of the stream."""
    hop_samples, sr, n = 768, 16000, 20000
    dec = make(level_rate=level_rate, hop=hop_samples / sr)
    n0 = int(days * 86400 * sr) // hop_samples * hop_samples
    zeros = np.zeros(2, np.float32)
    levels = sum(isinstance(e, TagLevel) for k in range(n) for e in dec.step(zeros, (n0 + k * hop_samples) / sr))
    expected = math.floor((n - 1) * hop_samples / sr * level_rate + 1e-6) + 1
    assert levels == 2 * expected  # two tags
