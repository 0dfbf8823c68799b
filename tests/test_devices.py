"""Device matching (by index or case-insensitive name substring) and its one-line errors."""

from __future__ import annotations

import pytest

from rtclassify.audio.devices import DeviceInfo, describe_devices, find_input_device
from rtclassify.errors import DeviceError

DEVICES = [
    DeviceInfo(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "ALSA", 2, 44100.0),
    DeviceInfo(2, "Scarlett 2i2 USB: Audio (hw:1,0)", "ALSA", 2, 48000.0, is_default=True),
    DeviceInfo(5, "system", "JACK Audio Connection Kit", 2, 48000.0),
    DeviceInfo(7, "USB Mic", "ALSA", 1, 16000.0),
    DeviceInfo(8, "usb mic", "JACK Audio Connection Kit", 1, 48000.0),
]


@pytest.mark.parametrize("spec, index", [
    (2, 2), ("2", 2), (" 5 ", 5), ("scarlett", 2), ("SCARLETT 2I2", 2), ("alc3246", 0), ("system", 5),
    ("system (jack", 5), (None, 2),
])
def test_find_by_index_name_or_default(spec, index):
    assert find_input_device(spec, DEVICES).index == index


def test_exact_name_wins_over_substring_matches():
    assert find_input_device("USB Mic", DEVICES[:4]).index == 7


def test_several_matches_list_the_candidates():
    with pytest.raises(DeviceError) as ei:
        find_input_device("usb", DEVICES)
    msg = str(ei.value)
    assert msg.startswith("3 input devices match 'usb', give the index instead: ")
    assert "2 'Scarlett 2i2 USB: Audio (hw:1,0)' (ALSA, 2 ch, 48000 Hz)" in msg and "8 'usb mic'" in msg


def test_unknown_name_lists_what_exists():
    with pytest.raises(DeviceError) as ei:
        find_input_device("focusrite", DEVICES)
    msg = str(ei.value)
    assert msg.startswith("no input device matches 'focusrite'; input devices: 0 'HDA Intel PCH")
    assert all(f"{d.index} {d.name!r}" in msg for d in DEVICES)
    assert "\n" not in msg


def test_unknown_index_lists_what_exists():
    with pytest.raises(DeviceError, match=r"^no input device with index 3; input devices: 0 "):
        find_input_device(3, DEVICES)


def test_no_device_at_all():
    with pytest.raises(DeviceError, match="no audio input device exists"):
        find_input_device(None, [])
    with pytest.raises(DeviceError, match="no input device with index 0; no audio input device exists"):
        find_input_device("0", [])
    assert "audio server" in describe_devices([])


def test_default_falls_back_to_the_first_input():
    devs = [DeviceInfo(3, "a", "ALSA", 1, 48000.0), DeviceInfo(4, "b", "ALSA", 1, 48000.0)]
    assert find_input_device(None, devs).index == 3


def test_label():
    assert DEVICES[2].label() == "5 'system' (JACK Audio Connection Kit, 2 ch, 48000 Hz)"
