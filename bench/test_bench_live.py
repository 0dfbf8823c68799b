"""Live engine benchmarks: the audio callback's cost, and sound-to-message latency on a real JACK server.

Budgets (issue: real-time engine):

- audio callback per 256-sample block: under 1% of the block's duration at 48 kHz (5.33 ms), measured
  on the real callback function (``Listener._make_callback``) with a fake frame buffer;
- sound-to-message latency on the JACK rig (tests/integration/jack_rig.py: ``jackd -d dummy -r 48000
  -p 256``, recordings played in by a JACK client, MIDI received by jack_midi_dump, OSC by oscdump):
  median and p95 printed, budget 250 ms median at the default settings. The four rounds hear each
  recording at four phases of the model's hop (0, 12, 24 and 36 ms at the 48 ms hop; also four phases
  of the 16 ms frame grid), so the median is taken over phases rather than decided by the one phase at
  which a run happened to start. It is the sum of the live
  path's own latency (device block + algorithmic + compute + output, declared by the engine: about
  140 ms at the default 48 ms hop) and the model's recognition time (how much of a sound the model
  must hear before the tag's probability crosses its threshold), which depends on the recording and
  on where the hop grid falls. Asserted: every segment produced its OSC and its MIDI message (a MIDI
  message may be missing only where the JACK server reported the MIDI sender or receiver late), MIDI and
  OSC agree, no message came sooner than the declared algorithmic latency allows (the measurement
  is physical), and the live path's declared latency is under the budget. When the median exceeds
  the budget the test is reported as XFAIL with the measured numbers: that gap is the model's
  recognition time (see README, Latency), not a fault of the live path.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
for p in (REPO / "tests", REPO / "tests" / "integration"):
    if str(p) not in sys.path:
        sys.path.append(str(p))

RATE = 48000
BLOCK = 256
#: sound-to-message median at the default settings: over it, the bench fails. (It used to be an expected failure
#: up to 450 ms, from when the model then shipped gave 245-251 ms medians; the shipped model's have been
#: 200-216 ms in every run since, README, Status of the targets.)
BUDGET_S = 0.25
CALLS = 64


class _Source:
    """Only what the Listener reads from a source to build its callback."""

    def __init__(self, channels: int):
        self.samplerate, self.channels, self.blocksize = RATE, channels, BLOCK
        self.input_latency, self.name, self.error, self.active = 0.0, "bench", None, True


@pytest.mark.parametrize("channels, kw", [(1, {}), (2, {"channel": 1}), (8, {"channel": 5}), (2, {"mix": True})],
                         ids=["mono", "2ch-pick", "8ch-pick", "2ch-mix"])
def test_audio_callback_cost_per_block(benchmark, report, channels, kw):
    from rtclassify._core import SampleRing
    from rtclassify.audio.sources import CallbackFlags
    from rtclassify.engine.listener import Listener

    from rtclassify import Classifier

    # the listener builds its session when constructed (its parameters are checked before anything opens);
    # only the callback runs here
    lis = Listener(clf=Classifier.load(), source=_Source(channels), blocksize=BLOCK, **kw)
    lis._ring = SampleRing(4 * CALLS * BLOCK)
    cb = lis._make_callback()
    frames = np.random.default_rng(0).uniform(-0.5, 0.5, (BLOCK, channels)).astype(np.float32)
    flags = CallbackFlags()
    ring = lis._ring

    times = []  # timed here too: benchmark.stats is empty under --benchmark-disable

    def run():
        t0 = time.perf_counter()
        for _ in range(CALLS):
            cb(frames, BLOCK, None, flags)
        times.append(time.perf_counter() - t0)
        ring.reset()

    benchmark.pedantic(run, rounds=100, iterations=1, warmup_rounds=5)
    per_block = float(np.median(times)) / CALLS
    block_s = BLOCK / RATE
    # the callback swallows its faults (PortAudio must never see one): a fast callback that stored nothing
    # would pass the budget, so check that it stored every block
    for _ in range(CALLS):
        cb(frames, BLOCK, None, flags)
    assert lis._cb_faults[0] == 0, lis._cb_error
    assert ring.available == CALLS * BLOCK * lis._stride
    ring.reset()
    ratio = per_block / block_s
    report(f"audio callback {channels} ch {kw or 'mono'}: {per_block * 1e6:.2f} us per {BLOCK}-sample block "
           f"= {100 * ratio:.3f}% of the block's {block_s * 1e3:.2f} ms (budget 1%)")
    assert ratio < 0.01


@pytest.mark.slow
def test_sound_to_message_latency_on_jack(report, tmp_path):
    from jack_rig import late_midi_clients, run_rig, summary, why_skip

    from rtclassify.model.bundle import load_bundle

    reason = why_skip()
    if reason:
        from _jackd import skip_or_fail

        skip_or_fail(reason)
    r = run_rig(tmp_path, rounds=4, spread_phases=True)
    assert r.returncode == 0, r.stderr
    midi, osc = r.latencies("midi"), r.latencies("osc")
    report(f"JACK rig model: {r.model.description}")
    report(f"sound-to-MIDI latency: {summary(midi)}")
    report(f"sound-to-OSC latency:  {summary(osc)}")
    report("per segment (file: expected tag, MIDI ms): " + ", ".join(
        f"{seg.file}: {r.model.expected[seg.file]} {'-' if t is None else f'{t * 1e3:.0f}'}"
        for seg, t in zip(r.segments, r.segment_latencies("midi"))))
    c = r.final_counters
    report("engine latency parts (ms): device {:.1f} + algorithmic {:.1f} + compute {:.1f} + output {:.2f}; "
           "compute p99 {:.1f} ms/hop; dropped {}; input overflows {}; JACK xruns during playback: {}".format(
               c["latency_device_ms"], c["latency_algorithmic_ms"], c["latency_compute_ms"], c["latency_output_ms"],
               c["compute_ms_p99"], c["dropped_samples"], c["input_overflows"], r.xruns_during_play or "none"))
    assert len(osc) == len(r.segments), "a segment got no OSC message"
    # JACK drops the MIDI of a cycle in which the sender or receiver ran late (see jack_rig.check_note_pairing)
    assert len(midi) == len(r.segments) or late_midi_clients(r.xruns_after_start, r.monitor), \
        "a segment got no MIDI message (and no xrun of the MIDI sender or receiver was reported)"
    # MIDI and OSC are sent for the same decision, one after the other
    pairs = [(m, o) for m, o in zip(r.segment_latencies("midi"), r.segment_latencies("osc")) if m is not None and o is not None]
    assert all(abs(m - o) < 0.05 for m, o in pairs), pairs
    # no message can come sooner than the lookahead and the resampler delay after its sound (algorithmic
    # latency less one hop and half a frame; 30 ms allowed for where the sound falls in a JACK period)
    algorithmic_s = c["latency_algorithmic_ms"] / 1e3
    b = load_bundle(r.model.path)
    hop_s = b.hop_frames / b.frame_rate
    assert min(midi) >= algorithmic_s - hop_s - 0.03, f"a message came {min(midi):.3f} s after its sound"
    declared_ms = c["latency_device_ms"] + c["latency_algorithmic_ms"] + c["latency_compute_ms"] + c["latency_output_ms"]
    report(f"live path's declared latency {declared_ms:.1f} ms (budget {BUDGET_S * 1e3:.0f} ms)")
    assert declared_ms < BUDGET_S * 1e3
    median = max(float(np.median(midi)), float(np.median(osc)))
    assert median < BUDGET_S, (f"sound-to-message median {median * 1e3:.0f} ms is over the {BUDGET_S * 1e3:.0f} ms "
                               f"budget; the live path declares {declared_ms:.0f} ms, the rest is the model's "
                               f"recognition time on these recordings")
