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

    def slowdown(bundle, clock=time.perf_counter):
        seen.append(clock)
        return 2.0

    monkeypatch.setattr(bc, "machine_slowdown", slowdown)
    with pytest.raises(pytest.xfail.Exception, match="not met on this machine"):
        bc.hold_speed_target(False, "x", lambda f: True, None, lambda msg: None, clock=clock)
    assert seen == [clock]
    with pytest.raises(AssertionError):
        bc.hold_speed_target(False, "x", lambda f: False, None, lambda msg: None, clock=clock)
