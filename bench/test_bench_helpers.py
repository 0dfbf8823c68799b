"""The benchmarks' own helpers (bench/conftest.py): a speed target's excuse uses the figure's clock."""

import time

import pytest

import conftest as bc


def test_per_call_seconds_times_by_the_given_clock():
    # a call that waits: wall time counts the wait, CPU time does not
    wall = bc.per_call_seconds(lambda: time.sleep(0.005), calls=4, repeats=2)
    cpu = bc.per_call_seconds(lambda: time.sleep(0.005), calls=4, repeats=2, clock=time.process_time)
    assert wall >= 0.004 and cpu < 0.002


@pytest.mark.parametrize("clock", [time.perf_counter, time.process_time])
def test_a_missed_target_is_excused_by_the_slowdown_on_the_figures_clock(monkeypatch, clock):
    seen = []

    def slowdown(clock=time.perf_counter):
        seen.append(clock)
        return 2.0

    monkeypatch.setattr(bc, "machine_slowdown", slowdown)
    with pytest.raises(pytest.xfail.Exception, match="not met on this machine"):
        bc.hold_speed_target(False, "x", lambda f: True, lambda msg: None, clock=clock)
    assert seen == [clock]
    with pytest.raises(AssertionError):
        bc.hold_speed_target(False, "x", lambda f: False, lambda msg: None, clock=clock)
    monkeypatch.setattr(bc, "machine_slowdown", lambda clock=time.perf_counter: 1.1)  # within noise: no excuse
    with pytest.raises(AssertionError):
        bc.hold_speed_target(False, "x", lambda f: True, lambda msg: None, clock=clock)


def test_the_models_share_is_scaled_by_the_slowdown_and_the_rest_by_the_leeway_at_most():
    # 1 s of work of which 0.6 s in the model, on a machine running the model 2x slower: 0.3 + 0.4 / 1.2 s there
    assert bc.OWN_WORK_LEEWAY == 1.2
    assert bc.at_reference_speed(1.0, 0.6, 2.0) == pytest.approx(0.3 + 0.4 / 1.2)
    assert bc.at_reference_speed(1.0, 0.0, 2.0) == pytest.approx(1.0 / 1.2)  # no model: the leeway only
    assert bc.at_reference_speed(1.0, 0.0, 1.1) == pytest.approx(1.0 / 1.1)  # never more than the slowdown
    assert bc.at_reference_speed(1.0, 1.5, 2.0) == pytest.approx(0.5)  # the share never exceeds the whole


def test_the_slowdown_is_measured_when_asked_on_the_given_clock(monkeypatch):
    figures = iter([3.0e-3, 2.0e-3])  # seconds per reference window, now and later
    clocks = []

    def per_call(fn, calls, repeats=5, clock=time.perf_counter):
        clocks.append(clock)
        return next(figures)

    monkeypatch.setattr(bc, "per_call_seconds", per_call)
    monkeypatch.setattr(bc, "_SLOWDOWNS", {})
    assert bc.machine_slowdown() == pytest.approx(3.0e-3 / bc.REFERENCE_WINDOW_S)
    assert bc.machine_slowdown(time.process_time) == pytest.approx(2.0e-3 / bc.REFERENCE_WINDOW_S)
    assert clocks == [time.perf_counter, time.process_time]


def test_the_reference_model_is_frozen_apart_from_the_shipped_one():
    import hashlib

    digest = hashlib.sha256(bc.REFERENCE_MODEL.read_bytes()).hexdigest()
    assert digest.startswith("765530059e9c")  # the model the reference time was measured with


def test_inference_time_counts_the_sessions_calls_and_restores_it():
    now = [0.0]  # a clock that only the test moves

    class Session:
        def run(self, names, feeds):
            now[0] += 5.0
            return ["out"]

        def get_inputs(self):
            return ["in"]

    class Backend:
        def __init__(self):
            self._sess = Session()

    be = Backend()
    sess = be._sess
    with bc.InferenceTime(be, clock=lambda: now[0]) as model:
        assert be._sess.run(None, {}) == ["out"] and be._sess.get_inputs() == ["in"]
        now[0] += 100.0  # outside the session: not counted
        be._sess.run(None, {})
    assert model.seconds == 10.0 and be._sess is sess


def test_the_streams_bench_pops_as_the_listeners_worker(monkeypatch):
    from types import SimpleNamespace

    import numpy as np
    import test_bench_multistream as ms

    now = [0.0]  # CPU seconds, moved only by the calls
    sizes = []

    def process(block):
        sizes.append(len(block))
        now[0] += 0.012 if len(sizes) % 4 == 0 else 0.001  # every 4th call runs the model: 12 ms

    monkeypatch.setattr(ms, "time", SimpleNamespace(process_time=lambda: now[0]))
    cpu = ms._pops(process, np.zeros(100 * ms.BLOCK, np.float32), 0, 40 * ms.BLOCK)
    assert sum(sizes) == 40 * ms.BLOCK and max(sizes) <= ms.MAX_BLOCK
    # each callback (5.33 ms) is popped as it arrives, until the 4th call's 12 ms: two callbacks arrive meanwhile
    assert sizes[:6] == [256, 256, 256, 256, 512, 256]
    assert cpu == pytest.approx(now[0])
