"""A stand-in for the parts of sounddevice that DeviceSource uses, for tests without audio hardware."""

from __future__ import annotations


class FakeStream:
    """What DeviceSource uses of a sounddevice InputStream; ``start`` fails when ``fail_start`` is set.
    Every stream made is kept in ``made`` (a test resets it)."""

    latency = 0.0  # what PortAudio's JACK host API reports
    active = True
    fail_start = False
    made: list = []

    def __init__(self, **kw):
        self.kw = kw
        self.closed = False
        FakeStream.made.append(self)

    def start(self):
        if self.fail_start:
            raise RuntimeError("Error starting stream (fake)")

    def abort(self, ignore_errors=True):
        pass

    def close(self, ignore_errors=True):
        self.closed = True


class FakeSoundDevice:
    PortAudioError = RuntimeError
    InputStream = FakeStream

    @staticmethod
    def check_input_settings(**kw):
        pass
