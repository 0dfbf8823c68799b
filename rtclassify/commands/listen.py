"""``rtclassify listen``: tag live audio from an input device and send MIDI/OSC."""

from __future__ import annotations

import argparse

from . import _live

NAME = "listen"
HELP = "tag live audio from an input device and send the tags as MIDI and OSC"
DESCRIPTION = """\
Listen to an audio input device and tell, with low latency, which instrument families are playing
and whether someone sings or speaks. Tags go to a MIDI port (note on/off + level CC per tag), to OSC
destinations, to a JSONL log and to a live terminal display. Stop with Ctrl-C (every sounding note
gets its note-off).

examples:
  rtclassify listen --device 2 --midi-virtual rtclassify
  rtclassify listen --device usb --channel 1 --osc 127.0.0.1:9000 --osc 192.168.1.20:7000
  rtclassify listen --device usb --channels 0-7 --midi-virtual stage --osc 127.0.0.1:9000
  rtclassify listen --device system --midi-api jack --midi-virtual tags --map mapping.toml
"""


def _channel(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a channel number (0-based), got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _rate(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of Hz, got {text!r}") from None
    if not 1000 <= v <= 768000:
        raise argparse.ArgumentTypeError(f"must be 1000-768000 Hz, got {v}")
    return v


def _blocksize(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of frames, got {text!r}") from None
    if not 16 <= v <= 65536:
        raise argparse.ArgumentTypeError(f"must be 16-65536 frames, got {v}")
    return v


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
    _live.add_model_arguments(p)
    _live.add_output_arguments(p)


def run(args) -> int:
    from ..audio.sources import DeviceSource
    from ..engine.listener import Listener

    clf = _live.load_classifier(args)
    mapping = _live.load_mapping(args, clf.labels)
    channels = args.channels
    if channels is not None:
        need = max(channels) + 1
        what = f"{len(channels)} streams: channels {_live.channels_label(channels)}"
    else:
        need = None if args.mix else (args.channel or 0) + 1
        what = "mix" if args.mix else f"channel {args.channel or 0}"
    source = DeviceSource(args.device, channels=need, samplerate=args.samplerate, blocksize=args.blocksize)
    title = f"rtclassify listen · {source.info.name} ({source.info.hostapi}) · {source.samplerate:g} Hz · {what}"
    sinks, outputs = _live.build_sinks(args, clf.labels, mapping, title, channels=channels)
    if channels is not None:
        listener = Listener(clf, sinks=sinks, source=source, channels=channels, blocksize=args.blocksize,
                            hop=args.hop, decoder=mapping.decoder.as_dict() or None,
                            techniques=args.techniques)
    else:
        listener = Listener(clf, sinks=sinks, source=source, channel=None if args.mix else (args.channel or 0),
                            mix=args.mix, blocksize=args.blocksize, hop=args.hop,
                            decoder=mapping.decoder.as_dict() or None,
                            techniques=args.techniques)
    _live.open_sinks(sinks)
    midi = _live.describe_midi(sinks)
    if midi:
        outputs.insert(0, midi)
    for s in sinks:
        if hasattr(s, "title"):
            s.title = f"{title}\n→ {', '.join(outputs) or 'display only'}"
    code = _live.run_listener(listener, args.duration, what="listen")
    from ..audio.sources import hard_exit_needed

    if hard_exit_needed():
        # the device (or audio server) died and PortAudio cannot be shut down: its exit handler would hang
        _live.hard_exit(code)
    return code
