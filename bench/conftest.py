"""Shared helpers of the benchmark suites.

Budgets are real-time ratios or ratios against peers measured in the same run;
absolute times are printed but not asserted, except the sound-to-message latency
of the JACK rig, whose contract is in milliseconds (DESIGN.md, latency).

``RTCLASSIFY_REQUIRE_RIG=1`` (set by ``.ci/run``) makes the benchmarks fail
where they would skip the JACK rig or play synthetic audio for missing
recordings.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

if str(Path(__file__).resolve().parent.parent / "tests") not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))  # the shared test helpers (_jackd)

REPO = Path(__file__).resolve().parent.parent
#: real recordings (the sms-tools sounds) that the CPU benchmarks play when they are present
REAL = Path(os.environ.get("RTCLASSIFY_REAL_DATA", REPO.parent / "shared" / "data" / "sms-tools"))
CLIPS = ("orchestra.wav", "piano.wav", "speech-male.wav", "sax-phrase.wav", "organ-C3.wav")


def per_call_seconds(fn, calls: int, repeats: int = 5, clock=time.perf_counter) -> float:
    """Best-of-``repeats`` mean time of one call of ``fn`` over ``calls`` calls, by ``clock``."""
    best = float("inf")
    fn()  # warm up
    for _ in range(repeats):
        t0 = clock()
        for _ in range(calls):
            fn()
        best = min(best, (clock() - t0) / calls)
    return best


#: the machine-speed yardstick: a frozen copy of the model shipped when the speed targets were set and met (the
#: n_fft-1024 short-chunk CNN of runs/v18s, sha256 765530059e9c...), kept apart from the shipped model so that a
#: heavier model, or a slower way of running it, can never pass for a slower machine
REFERENCE_MODEL = Path(__file__).resolve().parent / "data" / "reference_window.onnx"
#: one window of :data:`REFERENCE_MODEL` through a plain ONNX Runtime session on one thread on the development
#: machine where the speed targets were set and met (AMD EPYC, 2 cores: 0.926-0.930 ms in the seventeenth
#: session's clean-clone CI runs)
REFERENCE_WINDOW_S = 0.93e-3
#: a machine counts as slower than the development machine from this factor on (below it, run-to-run noise)
SLOWER_FROM = 1.25
#: on such a machine, rtclassify's own work (native code and Python, no model) is taken as at most this many
#: times slower than on the development machine: the least slowdown measured for it on the slower machine of the
#: eighteenth to twenty-first sessions (the native resampler 1.24x, the trackers about 1.5x, the model 2.2-2.6x),
#: so that the leeway never exceeds what that machine showed; a figure more than 1.2x over its budget there, or
#: any miss on a machine that runs the model at the development machine's speed, fails
OWN_WORK_LEEWAY = 1.2

_SLOWDOWNS: dict = {}


def machine_slowdown(clock=time.perf_counter) -> float:
    """How many times longer than on the development machine one window of :data:`REFERENCE_MODEL` takes here
    (> 1: slower), with a plain ONNX Runtime session on one thread (none of rtclassify's code), measured now.

    It is measured right after the figure it scales, on the figure's clock, so that both see the machine in the
    same state: this machine's speed drifts between benches of one run (the reference window took 1.8-2.4 ms
    within one session on the slower machine), and a figure's model share follows it (16 streams: a share of
    0.634, 0.657 and 0.724 of a core against slowdowns of 1.91, 2.05 and 2.36, the same 0.31-0.33 scaled). A
    figure in CPU time (``time.process_time``) needs the slowdown in CPU time: other programs on a shared core
    stretch the wall-clock one (the reference was quiet, so it holds for either clock)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(REFERENCE_MODEL), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    feed = {inp.name: np.full([1, *inp.shape[1:]], -40.0, np.float32)}
    f = per_call_seconds(lambda: sess.run(None, feed), calls=50, repeats=7, clock=clock) / REFERENCE_WINDOW_S
    _SLOWDOWNS.setdefault(clock, []).append(f)
    return f


class InferenceTime:
    """Seconds (by ``clock``) that ONNX Runtime spends in ``backends``' model calls while it is open: the model's
    share of a figure, which :func:`at_reference_speed` scales by the machine's slowdown (the rest of the work,
    rtclassify's own, by at most :data:`OWN_WORK_LEEWAY`). Wraps each backend's ONNX Runtime session; every call
    goes through it."""

    def __init__(self, *backends, clock=time.perf_counter):
        self.clock = clock
        self.seconds = 0.0
        self._backends = backends
        self._sessions = []

    def __enter__(self) -> "InferenceTime":
        timer = self

        class Timed:
            def __init__(self, sess):
                self._sess = sess

            def run(self, *args, **kwargs):
                t0 = timer.clock()
                try:
                    return self._sess.run(*args, **kwargs)
                finally:
                    timer.seconds += timer.clock() - t0

            def __getattr__(self, name):
                return getattr(self._sess, name)

        for be in self._backends:
            self._sessions.append(be._sess)
            be._sess = Timed(be._sess)
        return self

    def __exit__(self, *exc) -> None:
        for be, sess in zip(self._backends, self._sessions):
            be._sess = sess
        self._sessions.clear()


def at_reference_speed(seconds: float, model_seconds: float, slowdown: float) -> float:
    """``seconds`` of work measured here, as the development machine would take it: the model's share
    ``model_seconds`` divided by the machine's ``slowdown`` (measured on the frozen reference model), the rest,
    rtclassify's own work, by at most :data:`OWN_WORK_LEEWAY`."""
    model_seconds = min(max(model_seconds, 0.0), seconds)
    return model_seconds / slowdown + (seconds - model_seconds) / min(slowdown, OWN_WORK_LEEWAY)


def hold_speed_target(met: bool, what: str, met_at_reference_speed, report, clock=time.perf_counter,
                      slowdown: float | None = None) -> None:
    """Assert a speed target of the issues, set on the development machine (a real-time ratio).

    Missed here, it fails, except on a machine that runs the reference model clearly slower than the
    development machine (:func:`machine_slowdown` >= :data:`SLOWER_FROM`, measured now) where the figure at the
    development machine's speed, ``met_at_reference_speed(slowdown)`` (the model's share scaled, see
    :func:`at_reference_speed`), meets it: that is reported as an expected failure (XFAIL) saying the target
    is not met on this machine and why. A miss that the machine's speed does not explain (rtclassify's own cost
    or the model's grew) fails on any machine. ``clock``: the figure's clock (``time.process_time`` for a
    CPU-time figure; see :func:`machine_slowdown`). ``slowdown``: measured already, right after the figure
    (by :func:`machine_slowdown`, on its clock), where other figures are taken before the target is held.
    """
    if met:
        return
    f = machine_slowdown(clock) if slowdown is None else slowdown
    seen = _SLOWDOWNS.get(clock, [f])
    report(f"this machine runs one window of the reference model in {f * REFERENCE_WINDOW_S * 1e3:.2f} ms now, "
           f"{f:.2f}x the development machine's {REFERENCE_WINDOW_S * 1e3:.2f} ms (this run: {min(seen):.2f}x to "
           f"{max(seen):.2f}x)")
    if f >= SLOWER_FROM and met_at_reference_speed(f):
        pytest.xfail(f"not met on this machine: {what}; it runs the reference model {f:.2f}x slower than the "
                     f"development machine the target is set on, and with the model's share at that machine's "
                     f"speed (rtclassify's own work at most {OWN_WORK_LEEWAY}x faster) the figure meets it")
    raise AssertionError(what)


def bench_bundle_path() -> Path | None:
    """The bundle named by ``RTCLASSIFY_BENCH_BUNDLE``, else the shipped default bundle, else the training
    developer's dev bundle (datasets/dev_bundle); None when there is none."""
    from rtclassify.model.bundle import default_bundle_path

    env = os.environ.get("RTCLASSIFY_BENCH_BUNDLE")
    if env:
        return Path(env)
    for p in (default_bundle_path(), REPO / "datasets" / "dev_bundle"):
        if (p / "model.json").is_file():
            return p
    return None


@pytest.fixture(scope="module")
def clf():
    """A Classifier on the :func:`bench_bundle_path` bundle with ONNX Runtime on one thread (skips without one)."""
    from rtclassify.model.backends import OnnxBackend
    from rtclassify.model.bundle import load_bundle
    from rtclassify.model.classifier import Classifier

    path = bench_bundle_path()
    if path is None:
        pytest.skip("no model bundle: neither rtclassify/data/default_bundle nor datasets/dev_bundle exists")
    bundle = load_bundle(path)
    return Classifier(bundle, OnnxBackend(bundle, threads=1))


def synthetic_audio(seconds: float, rate: int) -> np.ndarray:
    """Stand-in for the real recordings: a 220 Hz tone gated at 0.25 Hz over quiet noise (float32). Under
    ``RTCLASSIFY_REQUIRE_RIG=1`` (CI) the recordings are required: the benchmark fails instead."""
    from _jackd import fail_if_required

    fail_if_required(f"the recordings the benchmarks play are missing: {REAL} (set RTCLASSIFY_REAL_DATA)")
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.25 * t) > 0)
            + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture
def report(capsys):
    """Prints a line to the terminal even under output capture."""

    def _print(line: str):
        with capsys.disabled():
            print(f"\n[bench] {line}", flush=True)

    return _print
