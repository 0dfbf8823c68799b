"""``rtclassify demo``: play the bundled clip through the live engine, no audio hardware needed."""

from __future__ import annotations

import argparse

from . import _live
from ._args import UsageError, check_technique_rate, nonempty

NAME = "demo"
HELP = "play a short bundled clip through the live engine at real-time pace (no audio hardware needed)"
DESCRIPTION = """\
Play a 25 s clip of real recordings (piano, speech, saxophone, cello, frame
drum, trumpet, organ; CC BY 4.0, from freesound.org via sms-tools) through the
same live engine as `rtclassify listen`, at real-time pace, with the live
display and the event log. Needs no sound card and no PortAudio. MIDI and OSC
outputs work as in `listen`.

examples:
  rtclassify demo
  rtclassify demo --no-display --log events.jsonl
  rtclassify demo --osc 127.0.0.1:9000 --midi-virtual rtclassify
  # each channel of a multichannel file as a stream:
  rtclassify demo --clip band.wav --channels 0-3
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--duration", type=_live.positive_float, metavar="SEC",
                   help="stop after SEC seconds (default: the whole clip)")
    p.add_argument("--clip", metavar="FILE", type=nonempty("an audio file"),
                   help="play this audio file instead of the bundled clip")
    p.add_argument("--channels", type=_live.channel_list, metavar="LIST",
                   help="tag each of these channels of the clip as a stream of its own, e.g. 0-3 or 0,2 (0-based; "
                        "default: the clip's channels mixed to one stream)")
    p.add_argument("--speed", type=_live.positive_float, default=1.0, help=argparse.SUPPRESS)
    _live.add_model_arguments(p)
    _live.add_output_arguments(p)


def clip_path():
    """The bundled demo clip."""
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "data" / "demo" / "demo.flac"


def run(args) -> int:
    import sys

    from ..audio.files import info
    from ..audio.sources import ClipSource
    from ..engine.session import check_sample_rate

    clf = _live.load_classifier(args)
    mapping = _live.load_mapping(args, clf)
    clip = args.clip or clip_path()
    inf = info(clip)
    check_sample_rate(inf.sample_rate, f"{clip}: the sample rate")
    if args.techniques:
        check_technique_rate(inf.sample_rate, str(clip))
    source = ClipSource.from_file(clip, blocksize=256, speed=args.speed)
    truncation = inf.truncation
    if truncation:
        print(f"warning: {truncation}", file=sys.stderr)
    title = f"rtclassify demo · {source.name} ({source.duration:.1f} s, {source.samplerate:g} Hz, real time)"
    channels = args.channels
    if channels is not None:
        missing = [c for c in channels if c >= source.channels]
        if missing:
            n = source.channels
            has = "1 channel (0)" if n == 1 else f"{n} channels (0-{n - 1})"
            raise UsageError(f"--channels {_live.channels_label(channels)}: channel {missing[0]} is not in {clip}, "
                             f"which has {has}")
        title += f" · {len(channels)} streams: channels {_live.channels_label(channels)}"
    return _live.run_live(args, clf, mapping, source, title, what="demo", blocksize=256, channels=channels,
                          clip=clip, mix=source.channels > 1)
