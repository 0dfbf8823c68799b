"""Audio sources for the live engine: a sound card and a clip played in real time.

A source delivers blocks of float32 samples to an audio callback with the
signature of a ``sounddevice`` input callback::

    callback(indata, frames, time, status)

where ``indata`` has shape ``(frames, channels)`` and ``status`` has a boolean
``input_overflow`` attribute. :class:`DeviceSource` wraps a PortAudio input
stream (the callback runs on PortAudio's audio thread); :class:`ClipSource`
calls the same callback from its own thread at real-time pace, so a recording
goes through exactly the code path live audio takes, with no audio hardware
and no PortAudio (``rtclassify demo`` uses it).

Both have the same small interface: ``samplerate``, ``channels``,
``blocksize``, ``input_latency`` (seconds the device reports), ``name``,
``start(callback, finished)``, ``stop()``, ``active`` and ``error``.
``finished()`` is called once, after the last callback has returned, when the
source stops on its own (end of the clip, or the device stream ended without
``stop()``); ``error`` then tells whether that was a fault.
"""

from __future__ import annotations

import atexit
import math
import numbers
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import DeviceError, DeviceNotFoundError, ParameterError, StateError
from .devices import (DeviceInfo, describe_devices, find_input_device, import_sounddevice,
                      list_input_devices)

__all__ = ["CallbackFlags", "DeviceSource", "ClipSource", "hard_exit_needed", "reread_device_list"]

_HUNG: list[str] = []

# PortAudio streams this module has opened and not yet closed (an abandoned one stays counted), and the lock that
# keeps a re-initialisation of PortAudio (reread_device_list) and the opening of a stream apart
_open_streams = 0
_pa_lock = threading.Lock()
# how many times PortAudio was re-initialised: a device index from before may name another device now
_pa_generation = 0


def hard_exit_needed() -> bool:
    """True when a PortAudio stream could not be stopped (its device or audio server died).

    PortAudio's exit handler (``Pa_Terminate``, registered by sounddevice)
    would then block for ever too: the first such stream unregisters it, so
    that the interpreter can still exit. A command line program leaves with
    ``os._exit`` after flushing its output all the same (the stream's stop
    is still blocked in a thread inside PortAudio); an embedding host may do
    the same, or just exit.
    """
    return bool(_HUNG)


def _abandoned(sd, name: str) -> None:
    """A stream of ``name`` could not be stopped: remember it, and drop sounddevice's exit handler, whose
    ``Pa_Terminate`` would block the interpreter's exit for ever."""
    _HUNG.append(name)
    handler = getattr(sd, "_exit_handler", None)
    if handler is not None:
        atexit.unregister(handler)


def reread_device_list() -> bool:
    """Re-initialise PortAudio, so that it reads its device list again.

    PortAudio reads the list once, when it starts: a device plugged in or an
    audio server (JACK) started later is not in it. :class:`DeviceSource`
    calls this when the device it is asked for is not in the list.
    Re-initialising closes every open PortAudio stream, so it is done only
    when none is open: none of this module's, and no other ``sounddevice``
    stream of the process (a host's own playback, say), and no stream whose
    stop was abandoned. A host that queries PortAudio from another thread at
    the same time (``sounddevice.query_devices`` in a UI thread) must not
    create a :class:`DeviceSource` then: PortAudio's calls are not safe
    against a re-initialisation running beside them.

    It calls ``sounddevice._terminate`` and ``sounddevice._initialize``, the
    wrappers of ``Pa_Terminate`` and ``Pa_Initialize`` that sounddevice's
    maintainers give for re-reading the list (PortAudio has no hot-plug call
    yet); a sounddevice without them makes this return False.

    Returns
    -------
    bool
        True when the list was re-read; False when it could not be (a stream
        is open, PortAudio was initialised more than once by the host, or it
        failed).
    """
    global _pa_generation
    sd = import_sounddevice()
    terminate, initialize = getattr(sd, "_terminate", None), getattr(sd, "_initialize", None)
    with _pa_lock:
        if _open_streams or _HUNG or terminate is None or initialize is None \
                or getattr(sd, "_initialized", None) != 1 or _any_stream_open(sd):
            return False
        try:
            terminate()
        except Exception:  # noqa: BLE001 - PortAudio refused: it is still running with the old list
            return False
        _pa_generation += 1
        for _ in range(2):
            try:
                initialize()
                return True
            except Exception:  # noqa: BLE001 - try once more; without PortAudio every device call fails clearly
                pass
        return False


def _any_stream_open(sd) -> bool:
    """True when any ``sounddevice`` stream of the process is open (or when that cannot be told)."""
    import gc

    base = getattr(sd, "_StreamBase", None)
    if base is None:
        return True
    gc.collect()  # a stream whose construction failed may wait in a reference cycle (an error's traceback)
    for obj in gc.get_objects():
        # the type, not isinstance(): that reads each object's __class__, which some libraries' objects answer
        # with a warning (or, under -W error, an exception)
        if issubclass(type(obj), base):
            try:
                if not obj.closed:
                    return True
            except Exception:  # noqa: BLE001 - a stream whose construction failed half-way
                return True
    return False


def _is_real(x) -> bool:
    """A real number (bools and strings are not); the listener's checks use it too."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


class CallbackFlags:
    """Status flags passed by :class:`ClipSource` (no overflow ever happens)."""

    __slots__ = ()
    input_overflow = False
    input_underflow = False

    def __bool__(self) -> bool:
        return False


_NO_FLAGS = CallbackFlags()


class DeviceSource:
    """A PortAudio input stream on one device (through ``sounddevice``).

    Parameters
    ----------
    device : int, str or None
        PortAudio index, case-insensitive name substring, or None for the
        default input device (see :func:`rtclassify.audio.devices.find_input_device`).
        One that is not in PortAudio's device list has the list re-read
        once (see :func:`reread_device_list`) before it is an error.
    channels : int, optional
        Number of input channels to open (the first ``channels`` of the
        device, a whole number >= 1). Default: all the device's input channels.
    samplerate : float, optional
        Sample rate in Hz (a finite number > 0); default the device's default rate.
    blocksize : int
        Frames per callback, a whole number >= 1 (fixed: PortAudio always delivers exactly this many).
    latency : str or float
        PortAudio input latency: ``"low"``, ``"high"`` or seconds (a finite number >= 0).

    Attributes
    ----------
    input_latency : float
        Set by :meth:`start`: the stream's input latency as PortAudio reports it, but at least the device's
        default low input latency minus one block (PortAudio's JACK host API reports 0, while a sample
        waits for the end of the server's period, however short the block).

    Raises
    ------
    ParameterError
        ``channels``, ``samplerate``, ``blocksize`` or ``latency`` is not a
        value of its kind (named in the message).
    DeviceError
        The device does not exist, has too few channels, or refuses the
        sample rate (the message lists what exists).
    """

    def __init__(self, device=None, *, channels: int | None = None, samplerate: float | None = None,
                 blocksize: int = 256, latency="low"):
        if not _is_real(blocksize) or not math.isfinite(blocksize) or int(blocksize) != blocksize or blocksize < 1:
            raise ParameterError(f"blocksize must be a whole number of frames >= 1, got {blocksize!r}")
        if channels is not None and (not _is_real(channels) or not math.isfinite(channels)
                                     or int(channels) != channels or channels < 1):
            raise ParameterError(f"channels must be None or a whole number of channels >= 1, got {channels!r}")
        if samplerate is not None and (not _is_real(samplerate) or not math.isfinite(samplerate) or samplerate <= 0):
            raise ParameterError(f"samplerate must be None or a number of Hz > 0, got {samplerate!r}")
        if not (latency in ("low", "high") if isinstance(latency, str)
                else _is_real(latency) and math.isfinite(latency) and latency >= 0):
            raise ParameterError(f"latency must be 'low', 'high' or a number of seconds >= 0, got {latency!r}")
        self._sd = import_sounddevice()
        try:
            info = find_input_device(device, list_input_devices())
        except DeviceNotFoundError:
            # PortAudio's list dates from its start: a device or audio server that appeared since is not in it
            reread = reread_device_list()
            info = find_input_device(device, list_input_devices(), reread=reread)
        self.info: DeviceInfo = info
        self._generation = _pa_generation
        n = self.info.channels
        if channels is None:
            channels = n
        if channels > n:
            have = "0" if n == 1 else f"0-{n - 1}"
            raise DeviceError(f"channel {int(channels) - 1} does not exist: device {self.info.name!r} has {n} input "
                              f"channel{'s' if n != 1 else ''} ({have})")
        self.channels = int(channels)
        self.samplerate = float(self.info.default_samplerate if samplerate is None else samplerate)
        self.blocksize = int(blocksize)
        self.latency_setting = latency if isinstance(latency, str) else float(latency)
        self.name = self.info.name
        try:
            self._sd.check_input_settings(
                device=self.info.index, channels=self.channels, dtype="float32", samplerate=self.samplerate
            )
        except (self._sd.PortAudioError, ValueError) as exc:
            raise DeviceError(
                f"input device {self.info.label()} refuses {self.channels} ch at {self.samplerate:g} Hz: {exc}"
            ) from None
        self._stream = None
        self._take_lock = threading.Lock()  # stop() from the worker and from the caller: one of them closes
        self._stopping = False
        self.error: Exception | None = None
        self.input_latency = 0.0
        #: True when stopping the stream hung (the device or audio server died)
        self.hung = False

    @property
    def active(self) -> bool:
        """True while the PortAudio stream runs."""
        s = self._stream
        return bool(s is not None and s.active)

    def start(self, callback, finished=None) -> None:
        """Open and start the stream; ``callback`` runs on the audio thread.

        A stream that opens but fails to start is closed again before the
        :class:`~rtclassify.errors.DeviceError` is raised.
        """
        global _open_streams
        sd = self._sd
        self._stopping = False
        self.error = None
        if self._generation != _pa_generation:
            self._find_again()

        def _finished():
            # only an end we did not ask for is signalled: after our own stop, the caller knows, and
            # PortAudio may call this before the last callback has returned
            if self._stopping:
                return
            self.error = DeviceError(f"input device {self.info.name!r} stopped delivering audio (device lost?)")
            if finished is not None:
                finished()

        stream = None
        try:
            with _pa_lock:  # not while reread_device_list re-initialises PortAudio
                stream = sd.InputStream(
                    device=self.info.index, channels=self.channels, samplerate=self.samplerate,
                    blocksize=self.blocksize, dtype="float32", latency=self.latency_setting,
                    callback=callback, finished_callback=_finished,
                )
                _open_streams += 1
            self._stream = stream
            stream.start()
        except BaseException as exc:
            with self._take_lock:
                self._stream = None
            if stream is not None:  # opened, but it did not start: close it, or it stays open in PortAudio
                self._stopping = True
                self._close(stream)
            if isinstance(exc, sd.PortAudioError):
                raise DeviceError(
                    f"cannot open input device {self.info.label()}: {exc} "
                    f"(busy or gone? {describe_devices(list_input_devices())})"
                ) from None
            raise
        # one block plus this is the device's part of the latency, and it is never less than the device's
        # default low input latency: under JACK that is the capture port's latency (one server period and
        # more), while PortAudio reports 0 for the stream; with a block shorter than the server's period
        # (listen's 256 frames under a 2048-frame period), every sample still waits for the period's end
        floor = self.info.default_latency - self.blocksize / self.samplerate
        self.input_latency = max(float(stream.latency), floor, 0.0)

    def _find_again(self) -> None:
        """PortAudio was re-initialised since this source found its device (its index may name another device
        now): find the device again by name and host API."""
        devices = list_input_devices()
        same = [d for d in devices if d.name == self.info.name and d.hostapi == self.info.hostapi]
        if len(same) != 1:
            raise DeviceError(f"input device {self.info.name!r} ({self.info.hostapi}) is "
                              f"{'gone' if not same else 'no longer one device'} since PortAudio's device list was "
                              f"re-read; {describe_devices(devices, reread=True)}")
        self.info = same[0]
        self._generation = _pa_generation

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop and close the stream (idempotent); errors from a lost device are ignored.

        PortAudio can block for ever stopping a stream whose device or audio
        server died (JACK's does), so the stop runs in a helper thread and is
        abandoned after ``timeout`` seconds.

        Returns
        -------
        bool
            False when the stop was abandoned (the device hangs): then
            :attr:`hung` is true, sounddevice's exit handler (whose
            ``Pa_Terminate`` would block the interpreter's exit for ever too)
            is unregistered, and a program should leave with ``os._exit``
            once its output is flushed (see :func:`hard_exit_needed`).
        """
        self._stopping = True
        with self._take_lock:
            s, self._stream = self._stream, None
        if s is None:
            return True
        return self._close(s, timeout)

    def _close(self, s, timeout: float = 3.0) -> bool:
        """Abort and close stream ``s`` in a helper thread; False when that is abandoned after ``timeout``."""

        def _stop():
            global _open_streams
            try:
                s.abort(ignore_errors=True)
                s.close(ignore_errors=True)
            except Exception:  # PortAudio may fail on a vanished device
                pass
            with _pa_lock:
                _open_streams -= 1

        t = threading.Thread(target=_stop, name="rtclassify-stream-stop", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            self.hung = True
            _abandoned(self._sd, self.info.name)
            return False
        return True


class ClipSource:
    """Plays an array of samples to the callback at real-time pace from its own thread.

    Parameters
    ----------
    audio : ndarray, shape (n,) or (n, channels)
        Samples in [-1, 1] (converted to float32 C-contiguous once, here).
        Frames first, as a sound card delivers them and as
        :meth:`StreamSession.process <rtclassify.engine.session.StreamSession.process>`
        takes blocks: a 2-D clip with more than 1024 channels, or with at
        most 16 frames of 8 times as many channels, is a ``(channels, n)``
        clip the wrong way round and is refused, as the session refuses such
        a block (pass ``audio.T``).
    samplerate : float
        Sample rate of ``audio`` in Hz.
    blocksize : int
        Frames per callback, a whole number >= 1 (the last block may be shorter).
        A :class:`~rtclassify.engine.listener.Listener` takes sources whose
        blocksize is at most 65536.
    speed : float
        1.0 is real time; 2.0 twice as fast; ``float('inf')`` as fast as the
        callback returns (only for tests: the consumer may fall behind and
        the ring then drops samples, which is counted). A number > 0.
    name : str
        Name shown in the display and messages.
    loop : bool
        Start again at the end instead of finishing.
    """

    def __init__(self, audio, samplerate: float, *, blocksize: int = 256, speed: float = 1.0,
                 name: str = "clip", loop: bool = False):
        from ..engine.session import MAX_BLOCK_CHANNELS, looks_channels_first
        from .samples import I16_SCALE, check_samples_dtype

        a = check_samples_dtype(np.asarray(audio), "audio")
        if a.dtype == np.int16:
            a = a.astype(np.float32) * I16_SCALE  # as the session scales int16 blocks
        else:
            a = a.astype(np.float32, copy=False)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            raise ParameterError(f"audio must have shape (n,) or (n, channels) with n > 0, got {np.shape(audio)}")
        n_fr, n_ch = a.shape
        if n_ch > MAX_BLOCK_CHANNELS or looks_channels_first(n_fr, n_ch):  # the session's rule
            # (channels, n) read as (n, channels) would play seconds of audio as a few frames of many channels
            raise ParameterError(f"audio of shape {a.shape} looks like (channels, n): {n_fr} frame(s) of {n_ch} "
                                 f"channels; a clip is (n,) or (n, channels), frames first as a sound card delivers "
                                 f"them, with at most {MAX_BLOCK_CHANNELS} channels: pass audio.T")
        if isinstance(samplerate, bool) or not isinstance(samplerate, (int, float, np.integer, np.floating)) \
                or not (0 < samplerate < float("inf")):
            raise ParameterError(f"samplerate must be a positive number of Hz, got {samplerate!r}")
        if not _is_real(blocksize) or not math.isfinite(blocksize) or int(blocksize) != blocksize or blocksize < 1:
            raise ParameterError(f"blocksize must be a whole number of frames >= 1, got {blocksize!r}")
        if not _is_real(speed) or math.isnan(speed) or not speed > 0:
            raise ParameterError(f"speed must be a number > 0 (1.0: real time; float('inf'): as fast as the "
                                 f"callback returns), got {speed!r}")
        self._audio = np.ascontiguousarray(a)
        self.samplerate = float(samplerate)
        self.channels = int(a.shape[1])
        self.blocksize = int(blocksize)
        self.speed = float(speed)
        self.loop = bool(loop)
        self.name = name
        self.input_latency = 0.0
        self.error: Exception | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: number of frames delivered so far
        self.position = 0

    @classmethod
    def from_file(cls, path, *, blocksize: int = 256, speed: float = 1.0, loop: bool = False) -> "ClipSource":
        """Load a sound file with ``soundfile`` (all channels, its own rate).

        Raises :class:`~rtclassify.errors.AudioFileError` naming the file when it is missing, a folder,
        unreadable or holds no samples.
        """
        from .files import AudioFileError, read_channels

        data, sr = read_channels(path)
        if data.shape[0] == 0:
            raise AudioFileError(f"{path}: no samples (an empty audio file)")
        return cls(data, sr, blocksize=blocksize, speed=speed, name=Path(path).name, loop=loop)

    @property
    def duration(self) -> float:
        """Length of the clip in seconds."""
        return self._audio.shape[0] / self.samplerate

    @property
    def active(self) -> bool:
        t = self._thread
        return bool(t is not None and t.is_alive())

    def start(self, callback, finished=None) -> None:
        """Start the feeding thread."""
        if self.active:
            raise StateError("ClipSource is already running")
        self._stop.clear()
        self.position = 0
        self._thread = threading.Thread(
            target=self._run, args=(callback, finished), name=f"rtclassify-clip-{self.name}", daemon=True
        )
        self._thread.start()

    def _run(self, callback, finished) -> None:
        audio, bs = self._audio, self.blocksize
        n = audio.shape[0]
        frame_s = 1.0 / self.samplerate / self.speed
        realtime = np.isfinite(frame_s) and frame_s > 0
        t0 = time.perf_counter()
        sent = 0  # frames delivered: the pace follows them, so a loop's short last block takes its own length
        pos = 0
        try:
            while not self._stop.is_set():
                if pos >= n:
                    if not self.loop:
                        break
                    pos = 0
                block = audio[pos:pos + bs]
                callback(block, block.shape[0], None, _NO_FLAGS)
                pos += block.shape[0]
                self.position += block.shape[0]
                sent += block.shape[0]
                if realtime:
                    delay = t0 + sent * frame_s - time.perf_counter()
                    if delay > 0:
                        self._stop.wait(delay)
        except BaseException as exc:  # the callback failed: report it like a device fault
            self.error = exc
        finally:
            if finished is not None and not self._stop.is_set():  # on its own only, not after stop()
                finished()

    def stop(self) -> None:
        """Stop feeding (idempotent) and join the thread."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()
        self._thread = None
