"""Review findings on the multi-stream session, the listener's sinks and the audio sources/devices.

Uses the small real ONNX test bundle (tests/_rtc_bundle.py); the tests that need a JACK server start a
private dummy one (tests/_jackd.py) and skip where jackd is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test bundles are built with the onnx package")

import _rtc_bundle as tb  # noqa: E402

from rtclassify.engine.multistream import MultiStreamSession  # noqa: E402

SR = 16000


class FailingOnce:
    """The real backend, failing on call number ``fail_at`` (1-based) as a transient fault would."""

    def __init__(self, backend, fail_at: int):
        self.inner = backend
        self.fail_at = fail_at
        self.calls = 0

    def run(self, windows):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("transient backend fault")
        return self.inner.run(windows)


# ---------------------------------------------------------------------------------------------- multistream
def test_multistream_runs_the_model_again_after_a_failed_run(clf):
    from rtclassify.engine.session import StreamSession

    x = tb.demo_signal(SR, seed=1)
    x2 = np.ascontiguousarray(np.stack([x, x * np.float32(0.5)], axis=1))
    ref = MultiStreamSession(clf.bundle, clf.backend, [0, 1], sample_rate=SR, record_frames=False)
    ref.process(x2)
    hops = ref.counters["hops"]
    assert hops > 20

    def run(session, backend, blocks):
        errors = 0
        for a in range(0, blocks.shape[0], 1024):
            try:
                session.process(blocks[a:a + 1024])
            except RuntimeError:
                errors += 1
        assert errors == 1
        return session.counters["hops"], backend.calls

    multi = FailingOnce(clf.backend, 5)
    got = run(MultiStreamSession(clf.bundle, multi, [0, 1], sample_rate=SR, record_frames=False), multi, x2)
    single = FailingOnce(clf.backend, 5)
    want = run(StreamSession(clf.bundle, single, sample_rate=SR, record_frames=False), single, x)
    # the failed hop (and the rest of its block) is lost, every later hop runs, as in StreamSession
    assert got == want
    assert hops - 3 <= got[0] < hops
