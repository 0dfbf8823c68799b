"""Audio input devices: listing and matching.

PortAudio (through the ``sounddevice`` package) is imported only when a
function here is called, so ``import rtclassify`` works on a machine without
PortAudio. A missing PortAudio library gives a
:class:`~rtclassify.errors.MissingDependencyError` naming the system package.

A device is chosen by its PortAudio index (``2`` or ``"2"``) or by a
case-insensitive substring of its name (``"usb"``). A substring that matches
several devices is an error unless exactly one of them has that exact name;
the error lists the candidates with their indices.

PortAudio reads its device list once, when it starts (``Pa_Initialize``): a
device or audio server that appears later is not in it.
:class:`~rtclassify.audio.sources.DeviceSource` re-reads the list when the
device it is asked for is not there (see
:func:`rtclassify.audio.sources.reread_device_list`).
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass

from ..errors import DeviceError, DeviceNotFoundError, MissingDependencyError

__all__ = ["DeviceInfo", "import_sounddevice", "list_input_devices", "find_input_device", "describe_devices"]


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device that has input channels.

    Attributes
    ----------
    index : int
        PortAudio device index (what ``--device N`` takes).
    name : str
        Device name as PortAudio reports it.
    hostapi : str
        Host API name (ALSA, JACK Audio Connection Kit, Core Audio, WASAPI, ...).
    channels : int
        Maximum number of input channels.
    default_samplerate : float
        The device's default sample rate in Hz.
    default_latency : float
        PortAudio's default low input latency in seconds.
    is_default : bool
        True for the host's default input device.
    """

    index: int
    name: str
    hostapi: str
    channels: int
    default_samplerate: float
    default_latency: float = 0.0
    is_default: bool = False

    def label(self) -> str:
        """One-line description: ``2 'USB Audio' (ALSA, 2 ch, 48000 Hz)``."""
        return (
            f"{self.index} {self.name!r} ({self.hostapi}, {self.channels} ch, "
            f"{self.default_samplerate:g} Hz)"
        )


def import_sounddevice():
    """Import ``sounddevice`` or raise :class:`MissingDependencyError`.

    ``sounddevice`` raises ``OSError`` (not ``ImportError``) when the PortAudio
    shared library is missing; both become one clear error.
    """
    try:
        import sounddevice
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"sounddevice is not installed ({exc}); pip install sounddevice"
        ) from exc
    except OSError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"the PortAudio library cannot be loaded ({exc}); install the system package "
            "libportaudio2 (Debian/Ubuntu) or portaudio (Homebrew)"
        ) from exc
    return sounddevice


def list_input_devices() -> list[DeviceInfo]:
    """List the devices that have at least one input channel.

    Returns
    -------
    list of DeviceInfo
        In PortAudio index order. Empty when no input device exists (for
        example a headless machine with no sound card and no JACK server).
    """
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as exc:  # pragma: no cover - depends on the host
        raise DeviceError(f"cannot query audio devices: {exc}") from exc
    default_in = _default_input_index(sd, hostapis)
    out = []
    for d in devices:
        if d["max_input_channels"] <= 0:
            continue
        out.append(
            DeviceInfo(
                index=int(d["index"]),
                name=str(d["name"]),
                hostapi=str(hostapis[d["hostapi"]]["name"]),
                channels=int(d["max_input_channels"]),
                default_samplerate=float(d["default_samplerate"]),
                default_latency=float(d["default_low_input_latency"]),
                is_default=int(d["index"]) == default_in,
            )
        )
    return out


def _default_input_index(sd, hostapis) -> int:
    """The PortAudio index of the default input device, or -1.

    ``sd.default.device`` may hold an index or a name (a host program may set
    it either way, as sounddevice's documentation shows): sounddevice resolves
    it. One that names no input device, or several, counts as no default;
    then PortAudio's default input of the first host API that has one.
    """
    try:
        index = sd.query_devices(kind="input")["index"]
        if isinstance(index, numbers.Integral) and index >= 0:
            return int(index)
    except Exception:  # noqa: BLE001 - no default, a name that matches nothing or several, a PortAudio error
        pass
    return next((int(h["default_input_device"]) for h in hostapis if h["default_input_device"] >= 0), -1)


def describe_devices(devices: list[DeviceInfo], *, reread: bool | None = None) -> str:
    """The list of input devices as one line for error messages.

    Parameters
    ----------
    devices : list of DeviceInfo
    reread : bool, optional
        True: PortAudio's device list was re-read just before (the line says
        so); False: it could not be re-read (the line says that it dates from
        PortAudio's start); None: nothing is said about it.
    """
    names = "; ".join(d.label() for d in devices)
    if reread is False:
        stale = ("PortAudio's device list dates from when it started and cannot be re-read while an audio stream "
                 "is open: a device or audio server that appeared since is not in it")
        return f"input devices: {names} ({stale})" if devices else f"no audio input device is known ({stale})"
    again = "; the device list was re-read" if reread else ""
    if not devices:
        return ("no audio input device exists (no sound card, or the audio server (JACK/PulseAudio) is not "
                f"running{again})")
    return f"input devices{' (the list was re-read)' if reread else ''}: {names}"


def find_input_device(spec: int | str | None, devices: list[DeviceInfo] | None = None, *,
                      reread: bool | None = None) -> DeviceInfo:
    """Find an input device by index or by a case-insensitive name substring.

    Parameters
    ----------
    spec : int, str or None
        A PortAudio index (``2`` or ``"2"``), a name substring (``"usb"``), or
        None for the default input device.
    devices : list of DeviceInfo, optional
        The candidates; by default :func:`list_input_devices`.
    reread : bool, optional
        Whether ``devices`` comes from a device list re-read just before, for
        the error messages (see :func:`describe_devices`).

    Returns
    -------
    DeviceInfo

    Raises
    ------
    DeviceError
        No device or several devices match, or the index is not an input
        device. The message lists the input devices that exist.
    """
    if devices is None:
        devices = list_input_devices()
    if spec is None:
        for d in devices:
            if d.is_default:
                return d
        if devices:
            return devices[0]
        raise DeviceNotFoundError(f"no default input device; {describe_devices(devices, reread=reread)}")
    if isinstance(spec, str) and re.fullmatch(r"-?[0-9]+", spec.strip()):  # ASCII digits only: int() takes them
        spec = int(spec.strip())
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        spec = int(spec)  # a numpy integer too
        for d in devices:
            if d.index == spec:
                return d
        raise DeviceNotFoundError(f"no input device with index {spec}; {describe_devices(devices, reread=reread)}")
    if not isinstance(spec, str) or not spec.strip():
        raise DeviceError(f"device must be an index or a name, got {spec!r}; "
                          f"{describe_devices(devices, reread=reread)}")
    needle = spec.strip().casefold()
    matches = [d for d in devices if needle in d.name.casefold() or needle in f"{d.name} ({d.hostapi})".casefold()]
    if len(matches) == 1:
        return matches[0]
    exact = [d for d in matches if d.name.casefold() == needle]
    if len(exact) == 1:
        return exact[0]
    if not matches:
        raise DeviceNotFoundError(f"no input device matches {spec!r}; {describe_devices(devices, reread=reread)}")
    raise DeviceError(
        f"{len(matches)} input devices match {spec!r}, give the index instead: "
        + "; ".join(d.label() for d in matches)
    )
