"""``rtclassify devices``: list audio input devices (and MIDI ports)."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "devices"
#: what the command prints is its output: a reader that leaves early ends it with status 0 (see cli.main)
PRINTS_ITS_OUTPUT = True
HELP = "list audio input devices (index, name, host API, channels, default rate) and MIDI ports"
DESCRIPTION = """\
List the audio input devices PortAudio sees: the index and name are what `rtclassify listen --device`
takes (a name may be any part of it, in any case). The default input is marked with '*'. With
--midi, also list the MIDI ports `listen --midi PORT` can send to.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--midi", action="store_true", help="also list MIDI output ports")
    p.add_argument("--midi-api", choices=("alsa", "jack"), default=None, help="MIDI system for --midi")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    if args.midi_api is not None and not args.midi:
        from ._args import UsageError

        raise UsageError(f"--midi-api {args.midi_api} goes with --midi (the MIDI ports are listed only with it)")
    from ..audio.devices import list_input_devices

    from ..errors import MissingDependencyError, SinkError

    audio_error = None
    try:
        devices = list_input_devices()
    except MissingDependencyError as exc:  # no PortAudio: the MIDI ports asked for are still worth listing
        if not args.midi:
            raise
        devices, audio_error = [], str(exc)
    ports = None
    midi_error = None
    if args.midi:
        from ..sinks.midi import list_midi_outputs

        try:
            ports = list_midi_outputs(args.midi_api)
        except SinkError as exc:  # the audio list is still worth printing
            midi_error = str(exc)
    if args.json:
        out = {"audio_inputs": [d.__dict__ for d in devices]}
        if audio_error is not None:
            out["audio_error"] = audio_error
        if ports is not None:
            out["midi_outputs"] = ports
        if midi_error is not None:
            out["midi_error"] = midi_error
        print(json.dumps(out, indent=1))
        return 0 if midi_error is None and audio_error is None else 1
    if devices:
        w = max(len(d.name) for d in devices)
        hw = max(len(d.hostapi) for d in devices)
        print(f"    {'index':>5}  {'name':<{w}}  {'host API':<{hw}}  {'in ch':>5}  {'default rate':>12}")
        for d in devices:
            mark = "*" if d.is_default else " "
            print(f"  {mark} {d.index:>5}  {d.name:<{w}}  {d.hostapi:<{hw}}  {d.channels:>5}  "
                  f"{d.default_samplerate:>9g} Hz")
    elif audio_error is None:
        from ..audio.devices import describe_devices

        msg = describe_devices(devices)
        print(msg[0].upper() + msg[1:], file=sys.stderr)
    if ports is not None:
        print("\nMIDI ports:" if devices else "MIDI ports:")
        for i, p in enumerate(ports):
            print(f"  {i:>5}  {p}")
        if not ports:
            print("  (none: no program offers a MIDI input; use `listen --midi-virtual NAME` instead)")
    if audio_error is not None:
        print(f"rtclassify devices: error: audio inputs: {audio_error}", file=sys.stderr)
    if midi_error is not None:
        print(f"rtclassify devices: error: MIDI ports: {midi_error}", file=sys.stderr)
    return 0 if midi_error is None and audio_error is None else 1
