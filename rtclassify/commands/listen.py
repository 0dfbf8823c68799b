"""``rtclassify listen``: tag live audio from an input device and send MIDI/OSC."""

from __future__ import annotations

import argparse

from ._args import channel, check_technique_rate, number

from . import _live

NAME = "listen"
HELP = "tag live audio from an input device and send the tags as MIDI and OSC"
DESCRIPTION = """\
Listen to an audio input device and tell, with low latency, which instrument
families are playing and whether someone sings or speaks. Tags go to a MIDI
port (note on/off + level CC per tag), to OSC destinations, to a JSONL log and
to a live terminal display. Stop with Ctrl-C (every sounding note gets its
note-off).

examples:
  rtclassify listen --device 2 --midi-virtual rtclassify
  rtclassify listen --device usb --channel 1 \\
      --osc 127.0.0.1:9000 --osc 192.168.1.20:7000
  rtclassify listen --device usb --channels 0-7 --midi-virtual stage \\
      --osc 127.0.0.1:9000
  rtclassify listen --device system --midi-api jack --midi-virtual tags \\
      --map mapping.toml
"""


_channel = channel


_rate = number(int, "a whole number of Hz", 1000, 768000, unit=" Hz")


_blocksize = number(int, "a number of frames", 16, 65536, unit=" frames")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    a = p.add_argument_group("audio input")
    a.add_argument("--device", metavar="N|NAME",
                   help="input device: index or part of its name (`rtclassify devices` lists them; default: the "
                        "system's default input)")
    ch = a.add_mutually_exclusive_group()
    ch.add_argument("--channel", type=_channel, metavar="C", help="analyse input channel C (0-based; default 0)")
    ch.add_argument("--mix", action="store_true", help="analyse the average of all input channels")
    ch.add_argument("--channels", type=_live.channel_list, metavar="LIST",
                    help="tag each of these input channels as a stream of its own, e.g. 0-7 or 0,2,5 (0-based, "
                         "like --channel); one batched model run per hop for all; stream k sends on MIDI channel "
                         "base+k and OSC /rtclassify/<channel>/...")
    a.add_argument("--samplerate", type=_rate, metavar="R", help="device sample rate in Hz (default: the device's)")
    a.add_argument("--blocksize", type=_blocksize, default=256, metavar="B",
                   help="frames per audio callback (default 256)")
    a.add_argument("--duration", type=_live.positive_float, metavar="SEC", help="stop after SEC seconds")
    a.add_argument("--max-lag", type=number(float, "a number of seconds >= 0", lo=0.0), default=0.5, metavar="SEC",
                   help="audio waiting longer than SEC seconds after a stall is dropped (counted) and the run goes "
                        "on from the newest, instead of sending the stale events at once (default 0.5; at least "
                        "one pop of the worker, 4 blocks; 0: off, the 2 s ring replays them)")
    _live.add_model_arguments(p)
    _live.add_output_arguments(p)


def run(args) -> int:
    from ..audio.sources import DeviceSource

    clf = _live.load_classifier(args)
    mapping = _live.load_mapping(args, clf)
    channels = args.channels
    if channels is not None:
        need = max(channels) + 1
        what = f"{len(channels)} streams: channels {_live.channels_label(channels)}"
    else:
        need = None if args.mix else (args.channel or 0) + 1
        what = "mix" if args.mix else f"channel {args.channel or 0}"
    source = DeviceSource(args.device, channels=need, samplerate=args.samplerate, blocksize=args.blocksize)
    if args.techniques:
        check_technique_rate(source.samplerate, f"input device {source.info.index} {source.info.name!r}")
    title = f"rtclassify listen · {source.info.name} ({source.info.hostapi}) · {source.samplerate:g} Hz · {what}"
    code = _live.run_live(args, clf, mapping, source, title, what="listen", blocksize=args.blocksize,
                          channels=channels, channel=None if args.mix else (args.channel or 0), mix=args.mix)
    from ..audio.sources import hard_exit_needed

    if hard_exit_needed():
        # the device (or audio server) died and PortAudio cannot be shut down: its exit handler would hang
        _live.hard_exit(code)
    return code
