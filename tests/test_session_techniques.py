"""Technique trackers inside the streaming session: events, frame values, block-split invariance, tag output."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

from _streaming import stream_all  # noqa: E402

from rtclassify.detect.events import TechniqueValues, VibratoOff, VibratoOn  # noqa: E402

SR = 44100


def vibrato_tone(sr=SR, seconds=4.0, f0=330.0, rate=5.5, extent_cents=60.0, start=1.5):
    """A plain harmonic tone whose vibrato starts at ``start`` seconds."""
    t = np.arange(int(sr * seconds)) / sr
    cents = np.where(t >= start, extent_cents * np.sin(2 * np.pi * rate * (t - start)), 0.0)
    f = f0 * 2.0 ** (cents / 1200.0)
    phase = 2 * np.pi * np.cumsum(f) / sr
    y = sum(a * np.sin(k * phase) for k, a in ((1, 0.5), (2, 0.25), (3, 0.12)))
    return (0.6 * y).astype(np.float32)


def test_vibrato_events_and_frame_values(clf):
    x = vibrato_tone()
    s = clf.stream(sample_rate=SR, techniques=True, level_rate=0)
    events, frames = stream_all(s, x, [1024])
    on = [e for e in events if isinstance(e, VibratoOn)]
    assert len(on) >= 1
    assert 1.5 < on[0].stream_time < 1.5 + 2.5 / 5.5 + 0.3  # within a few modulation periods
    assert on[0].rate == pytest.approx(5.5, abs=0.5)
    assert any(isinstance(e, VibratoOff) for e in events)  # flush turns it off
    assert any(isinstance(e, TechniqueValues) for e in events)
    times = [e.stream_time for e in events]
    assert times == sorted(times)  # one block's events come in stream-time order
    late = [f.technique for f in frames if f.time > 3.0]
    assert late and all(t["vibrato"]["on"] for t in late)
    assert all(t["pitch"] == pytest.approx(330.0, rel=0.05) for t in late)
    early = [f.technique for f in frames if 0.3 < f.time < 1.4]
    assert early and not any(t["vibrato"]["on"] for t in early)


def test_techniques_off_by_default(clf):
    s = clf.stream(sample_rate=SR, level_rate=0)
    events, frames = stream_all(s, vibrato_tone(), [4096])
    assert s.technique_detector is None
    assert not any(e.kind in ("technique", "vibrato_on") for e in events)
    assert all(f.technique is None for f in frames)


@pytest.mark.parametrize("sr", [16000, SR])
def test_block_splits_give_the_same_techniques(clf, sr):
    x = vibrato_tone(sr=sr, seconds=3.0, start=1.0)
    ref_events, ref_frames = stream_all(clf.stream(sample_rate=sr, techniques=True, level_rate=0), x, [len(x)])

    def key(e):
        return (e.stream_time, e.kind, getattr(e, "tag", ""))

    for sizes in ([256], [1, 999, 4096, 17], [3000, 0, 5]):
        events, frames = stream_all(clf.stream(sample_rate=sr, max_block=1024, techniques=True, level_rate=0), x, sizes)
        assert sorted(events, key=key) == sorted(ref_events, key=key)
        assert [f.technique for f in frames] == [f.technique for f in ref_frames]


def test_a_tag_result_keeps_the_frames_values_compactly(clf):
    """`tag` of a long file kept every output as a FrameResult with its trackers' values as nested dicts, about
    0.8-1.7 kB an output (over 200 MB of resident memory an hour of audio); the result keeps arrays now and
    makes each output's technique dict on access, the same dict."""
    import tracemalloc

    from rtclassify.model.classifier import TechniqueFrames

    x = np.concatenate([np.zeros(8000, np.float32), np.tile(vibrato_tone(sr=16000, seconds=4.0, start=1.0), 15)])
    _, frames = stream_all(clf.stream(sample_rate=16000, max_block=4096, techniques=True, level_rate=0), x, [4096])
    clf.tag(x[:16000], 16000, techniques=True)  # what a first run keeps for the next ones
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        r = clf.tag(x, 16000, techniques=True)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert isinstance(r.techniques, TechniqueFrames) and len(r.techniques) == len(r.times) == len(frames)
    assert r.techniques == [f.technique for f in frames]  # the dicts the session gave, None pitch included
    assert r.techniques[3:5] == [frames[3].technique, frames[4].technique]
    assert r.techniques[-1] == frames[-1].technique and r.techniques.index(r.techniques[0]) == 0
    assert json.loads(json.dumps(r.techniques.tolist())) == [f.technique for f in frames]
    assert any(t["pitch"] is None for t in r.techniques) and any(t["vibrato"]["on"] for t in r.techniques)
    assert held / len(r.times) < 400, held / len(r.times)  # bytes per output (about 220; 670 before)


def test_tag_result_and_jsonl(clf):
    from rtclassify.commands.tag import write_csv, write_jsonl

    r = clf.tag(vibrato_tone(), SR, techniques=True)
    assert r.techniques is not None and len(r.techniques) == len(r.times)
    assert any(e.kind == "vibrato_on" for e in r.technique_events)
    buf = io.StringIO()
    write_jsonl(buf, r, None)
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    frames = [d for d in lines if "probs" in d]
    assert len(frames) == len(r.times)
    assert {"pitch", "vibrato", "tremolo"} <= set(frames[-1])
    assert frames[-1]["vibrato"]["on"] is True and frames[-1]["vibrato"]["extent"] > 20
    tech_events = [d for d in lines if d.get("technique") == "vibrato"]
    assert tech_events[0]["event"] == "on" and tech_events[0]["rate"] > 3
    assert [d["time"] for d in lines if "event" in d] == sorted(d["time"] for d in lines if "event" in d)
    csv = io.StringIO()
    write_csv(csv, r, None, header=True)
    head = csv.getvalue().splitlines()[0].split(",")
    assert head[-7:] == ["pitch", "vibrato", "vibrato_rate", "vibrato_extent", "tremolo", "tremolo_rate",
                         "tremolo_depth"]
    plain = clf.tag(vibrato_tone(), SR)
    assert plain.techniques is None and plain.technique_events == []


def test_a_channel_among_the_tracker_options_is_refused_by_name(clf):
    from rtclassify.errors import ParameterError

    with pytest.raises(ParameterError, match="techniques: 'channel' is not a tracker option"):
        clf.stream(sample_rate=16000, techniques={"channel": 3})
    assert clf.stream(sample_rate=16000, techniques={"value_interval": 0.05}) is not None


@pytest.mark.parametrize("sr", [16000, 48000])
def test_frame_values_are_the_trackers_at_the_outputs_own_time(clf, sr):
    """A FrameResult (a `tag` line) carries the tracker values given last by its own time, the centre of the
    frame its probabilities describe, not by the time the output was decided (a lookahead and a resampler
    later): with the vibrato starting mid-clip, the first lines after its onset event say it is on."""
    from rtclassify.detect.techniques import frame_dict, frame_dict_after

    x = vibrato_tone(sr=sr, seconds=4.0, start=1.5)
    events, frames = stream_all(clf.stream(sample_rate=sr, techniques=True, level_rate=0), x, [256])
    values = [e for e in events if isinstance(e, TechniqueValues)]
    assert frames and values
    assert all(f.stream_time - f.time > 0.03 for f in frames)  # decided later than the moment described
    tracker = sorted([e for e in events if e.kind in ("technique", "vibrato_on", "vibrato_off", "tremolo_on",
                                                      "tremolo_off")], key=lambda e: e.stream_time)
    for f in frames:
        want = frame_dict(None)
        for e in tracker:
            if e.stream_time <= f.time + 1e-9:
                want = frame_dict_after(want, e)
        assert f.technique == want, f.time
    # a line never says a vibrato is off after its VibratoOn (the values come every 20 ms: one could lag it)
    on_at = next(e for e in events if isinstance(e, VibratoOn)).stream_time
    assert all(f.technique["vibrato"]["on"] for f in frames if on_at <= f.time < on_at + 0.5)
    on = next(e for e in events if isinstance(e, VibratoOn))
    after = [f for f in frames if f.time >= on.stream_time + 0.021]
    assert after and after[0].technique["vibrato"]["on"]
    before = [f for f in frames if f.time < on.stream_time - 0.021]
    assert before and not before[-1].technique["vibrato"]["on"]


def test_tag_lines_never_go_back_in_time(clf):
    """A vibrato or tremolo switch was written after the first line at or after its time, so the times of a
    file's lines went back (115 times in a 10-minute file in review); it comes before that line now, and that
    line agrees with it (its values, every 20 ms, could lag the switch: 3 of 4 switches were contradicted)."""
    from rtclassify.commands.tag import write_jsonl

    t = np.arange(6 * 16000) / 16000  # a vibrato from 1 to 4.3 s, a tremolo from 2 to 5 s (the review's)
    f = 440 * 2 ** (np.where((t > 1) & (t < 4.3), 0.5 * np.sin(2 * np.pi * 6 * t), 0) / 12)
    amp = 0.3 * np.where((t > 2) & (t < 5), 1 + 0.5 * np.sin(2 * np.pi * 5 * t), 1)
    x = (amp * np.sin(2 * np.pi * np.cumsum(f) / 16000)).astype(np.float32)
    r = clf.tag(x, 16000, techniques=True, hop=0.016)  # a line every 16 ms: one falls within 20 ms of each switch
    assert r.technique_events and any(e.stream_time not in set(r.times.tolist()) for e in r.technique_events)
    buf = io.StringIO()
    write_jsonl(buf, r, None)
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    times = [d["time"] for d in lines]
    assert times == sorted(times)
    switches = [d for d in lines if "technique" in d]
    assert len(switches) == len(r.technique_events)
    state = {"vibrato": False, "tremolo": False}  # replayed in order, every line agrees with the switches before it
    for d in lines:
        if "technique" in d:
            state[d["technique"]] = d["event"] == "on"
        elif "probs" in d:
            assert {k: d[k]["on"] for k in state} == state, d["time"]
