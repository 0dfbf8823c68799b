"""Audio sources: the clip source feeds the callback like an audio device would."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from _fake_sounddevice import FakeSoundDevice, FakeStream

from rtclassify.audio.files import AudioFileError
from rtclassify.audio.sources import ClipSource
from rtclassify.errors import ParameterError


def run(src: ClipSource):
    blocks, done = [], threading.Event()

    def cb(indata, frames, time_info, status):
        assert indata.shape == (frames, src.channels) and indata.dtype == np.float32
        assert not status.input_overflow
        blocks.append(indata.copy())

    src.start(cb, done.set)
    assert done.wait(10)
    src.stop()
    return blocks


def test_clip_is_delivered_whole_in_blocks_then_finishes():
    x = np.arange(1000, dtype=np.float32) / 1000
    src = ClipSource(x, 8000, blocksize=256, speed=float("inf"))
    blocks = run(src)
    assert [b.shape[0] for b in blocks] == [256, 256, 256, 232]
    np.testing.assert_array_equal(np.concatenate(blocks)[:, 0], x)
    assert src.position == 1000 and not src.active and src.error is None
    assert src.duration == pytest.approx(1000 / 8000)


def test_multichannel_clip_keeps_its_channels():
    x = np.stack([np.zeros(300), np.ones(300)], axis=1)
    blocks = run(ClipSource(x, 8000, blocksize=128, speed=float("inf")))
    y = np.concatenate(blocks)
    assert y.shape == (300, 2) and (y[:, 1] == 1).all() and (y[:, 0] == 0).all()


def test_stop_ends_a_looping_clip():
    src = ClipSource(np.zeros(64, np.float32), 8000, blocksize=64, speed=4.0, loop=True)
    done = threading.Event()
    src.start(lambda *a: None, done.set)
    assert not done.wait(0.1) and src.active
    src.stop()
    assert not src.active
    assert not done.is_set()  # finished() is for a source that stops on its own, not after stop()


def test_callback_error_is_reported_as_source_error():
    src = ClipSource(np.zeros(512, np.float32), 8000, blocksize=256, speed=float("inf"))
    done = threading.Event()

    def cb(*a):
        raise ValueError("callback broke")

    src.start(cb, done.set)
    assert done.wait(10)
    assert isinstance(src.error, ValueError)


def test_from_file(tmp_path):
    import soundfile as sf

    p = tmp_path / "a.wav"
    sf.write(p, np.zeros((800, 2), np.float32), 16000)
    src = ClipSource.from_file(p, blocksize=100)
    assert src.samplerate == 16000 and src.channels == 2 and src.name == "a.wav"
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000)
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    for path, words in ((tmp_path / "nope.wav", "no such file"), (tmp_path, "is a folder"),
                        (empty, "no samples"), (junk, "cannot read audio")):
        with pytest.raises(AudioFileError) as exc:
            ClipSource.from_file(path)
        assert str(exc.value).startswith(f"{path}: ") and words in str(exc.value)


@pytest.mark.parametrize("kw, words", [
    ({"audio": np.zeros(0)}, "shape"), ({"samplerate": 0}, "samplerate"), ({"blocksize": 0}, "blocksize"),
    ({"speed": 0}, "speed"), ({"audio": np.zeros((2, 2, 2))}, "shape"),
])
def test_bad_parameters(kw, words):
    args = {"audio": np.zeros(10), "samplerate": 8000}
    args.update(kw)
    audio, sr = args.pop("audio"), args.pop("samplerate")
    with pytest.raises(ParameterError, match=words):
        ClipSource(audio, sr, **args)


def test_demo_clip_ships_with_the_package():
    from rtclassify.commands.demo import clip_path

    src = ClipSource.from_file(clip_path())
    assert src.samplerate == 16000 and src.channels == 1 and 20 < src.duration < 30


@pytest.mark.parametrize("blocksize, reported, device_ms", [
    (256, 0.0, 1e3 * 4096 / 44100),  # a JACK period of 4096 frames under 256-frame blocks: one period
    (8192, 0.0, 1e3 * 8192 / 44100),  # blocks longer than the period: one block
    (256, 0.2, 1e3 * (256 / 44100 + 0.2)),  # a device that reports more: as reported
])
def test_device_latency_is_at_least_the_devices_default_latency(monkeypatch, blocksize, reported, device_ms):
    from rtclassify.audio import sources
    from rtclassify.audio.devices import DeviceInfo

    dev = DeviceInfo(0, "system", "JACK Audio Connection Kit", 2, 44100.0, default_latency=4096 / 44100)
    monkeypatch.setattr(sources, "import_sounddevice", lambda: FakeSoundDevice)
    monkeypatch.setattr(sources, "list_input_devices", lambda: [dev])
    monkeypatch.setattr(FakeStream, "latency", reported)
    src = sources.DeviceSource("system", channels=1, blocksize=blocksize)
    src.start(lambda *a: None)
    try:
        assert 1e3 * (blocksize / src.samplerate + src.input_latency) == pytest.approx(device_ms)
    finally:
        src.stop()


def test_misuse_of_a_running_source_or_listener_is_a_state_error(clf):
    # plain RuntimeErrors before: outside the project's error hierarchy, which the command line reports in one line
    from rtclassify.engine.listener import Listener
    from rtclassify.errors import RtclassifyError, StateError

    src = ClipSource(np.zeros(16000, np.float32), 16000, loop=True)
    src.start(lambda block, frames, t, status: None)
    try:
        with pytest.raises(StateError, match="already running"):
            src.start(lambda block, frames, t, status: None)
    finally:
        src.stop()
    lis = Listener(clf, source=ClipSource(np.zeros(16000, np.float32), 16000, loop=True), sinks=[])
    lis.start()
    try:
        with pytest.raises(StateError, match="already started") as err:
            lis.start()
        assert isinstance(err.value, RtclassifyError) and isinstance(err.value, RuntimeError)
    finally:
        lis.stop()


def test_a_channel_first_clip_is_refused_with_the_way_out():
    """A (channels, n) clip read as (n, channels) would play a second of audio as 2 frames of 48000 channels."""
    x = np.zeros(48000, np.float32)
    for audio in (np.stack([x, x]), np.zeros((1, 300), np.float32), np.zeros((40, 2000), np.float32),
                  np.zeros((2000, 1025), np.float32), np.zeros((8, 512), np.float32)):
        with pytest.raises(ParameterError, match=r"^audio of shape .* looks like \(channels, n\).*pass audio\.T$"):
            ClipSource(audio, 48000)
    src = ClipSource(np.stack([x, x]).T, 48000)  # the documented layout, and a square one, are taken
    assert src.channels == 2 and src.duration == pytest.approx(1.0)
    assert ClipSource(np.zeros((2, 2), np.float32), 8000).channels == 2
    # short multichannel clips the session would take as they are: one stereo frame, 10 frames of 16 channels
    assert ClipSource(np.zeros((1, 2), np.float32), 8000).channels == 2
    assert ClipSource(np.zeros((10, 16), np.float32), 8000).channels == 16


@pytest.mark.parametrize("kw, words", [
    ({"blocksize": 2.5}, "blocksize must be a whole number of frames >= 1, got 2.5"),
    ({"blocksize": "x"}, "blocksize must be a whole number of frames >= 1, got 'x'"),
    ({"blocksize": float("inf")}, "blocksize must be"), ({"blocksize": True}, "blocksize must be"),
    ({"speed": "fast"}, "speed must be a number > 0"), ({"speed": float("nan")}, "speed must be a number > 0"),
    ({"speed": -1.0}, "speed must be a number > 0"),
])
def test_clip_parameters_of_the_wrong_kind_are_refused_by_name(kw, words):
    with pytest.raises(ParameterError, match=f"^{words}"):
        ClipSource(np.zeros(1000, np.float32), 8000, **kw)
    src = ClipSource(np.zeros(1000, np.float32), 8000, blocksize=np.int64(100), speed=float("inf"))
    assert src.blocksize == 100 and isinstance(src.blocksize, int)
