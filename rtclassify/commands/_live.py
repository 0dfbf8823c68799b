"""Shared parts of the live commands (``listen`` and ``demo``): output options, sinks, the run loop."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from ..errors import OutputClosed, ParameterError, SinkError
from ._args import DEFAULT_HOP_MS, UsageError, add_backend, check_not_an_input, drop_stdout, nonempty, seconds


def osc_destination(text: str) -> str:
    """argparse type for ``--osc HOST:PORT`` (a bad value is a one-line usage error, exit 2)."""
    from ..sinks.osc import parse_destination

    try:
        parse_destination(text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--osc: ")) from None
    return text


def channel_list(text: str) -> tuple[int, ...]:
    """argparse type for ``--channels``: ``0-7``, ``0,2,5`` or ``0-3,8`` (0-based, like ``--channel``)."""
    from ..engine.multistream import parse_channels

    try:
        return parse_channels(text, name="channels")
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("channels: ")) from None


def channels_label(channels) -> str:
    """``0-7`` for a contiguous run, else ``0,2,5``."""
    c = list(channels)
    if len(c) > 2 and c == list(range(c[0], c[0] + len(c))):
        return f"{c[0]}-{c[-1]}"
    return ",".join(map(str, c))


positive_float = seconds




def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--bundle", metavar="PATH", type=nonempty("a bundle folder or zip"),
                   help="model bundle folder or zip (default: the bundled model)")
    add_backend(g)
    g.add_argument("--hop", type=positive_float, metavar="SEC",
                   help=f"seconds between two model runs, rounded to whole frontend frames (16 ms for the shipped "
                        f"model; at least one) (default: the bundle's; {DEFAULT_HOP_MS:g} ms for the shipped model)")


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("outputs")
    m = g.add_mutually_exclusive_group()
    m.add_argument("--midi", metavar="PORT",
                   help="send MIDI to an existing port (index or part of its name; `rtclassify devices --midi` "
                        "lists them)")
    m.add_argument("--midi-virtual", metavar="NAME", help="create a virtual MIDI output port NAME")
    g.add_argument("--midi-wait", action="store_true",
                   help="with --midi PORT (a name): start even when no port matches it yet, and connect when one "
                        "is offered (a DAW started after rtclassify)")
    g.add_argument("--midi-api", choices=("alsa", "jack"), default=None,
                   help="MIDI system (default: ALSA on Linux, the native one elsewhere)")
    g.add_argument("--osc", metavar="HOST:PORT", action="append", type=osc_destination, default=[],
                   help="send OSC over UDP to HOST:PORT (repeat for several destinations)")
    g.add_argument("--osc-wait", action="store_true",
                   help="with --osc: start even when a host cannot be resolved or reached yet (a run started at "
                        "boot before the network is up), and send to it once it can")
    g.add_argument("--map", metavar="FILE.toml", type=nonempty("a mapping file"),
                   help="mapping file: MIDI notes/CCs, OSC addresses, decoder overrides (see "
                        "rtclassify/data/mapping.example.toml)")
    g.add_argument("--no-display", action="store_true",
                   help="no live display; print on/off events as lines instead")
    g.add_argument("--log", metavar="FILE.jsonl", type=nonempty("a file (or -)"),
                   help="write every event as JSON lines ('-' for stdout)")
    g.add_argument("--log-changes", action="store_true",
                   help="log only what changes (tags, vibrato and tremolo on and off) and the status lines, not "
                        "the tags' levels and the trackers' values (about 180 MB an hour with them, 4 MB without)")
    g.add_argument("--no-techniques", dest="techniques", action="store_false",
                   help="do not run the pitch, vibrato and tremolo trackers")


def load_classifier(args):
    from ..model.classifier import Classifier

    return Classifier.load(args.bundle, backend=args.backend)


def load_mapping(args, clf):
    from ..sinks.mapping import Mapping, load_mapping

    if args.map:
        return load_mapping(args.map, clf.labels, clf.bundle.thresholds)
    return Mapping.default(clf.labels)


class EventPrinter:
    """Sink that prints on/off events of tags, vibrato and tremolo as short lines, for ``--no-display``.

    Continuous values (tag levels, pitch and technique values) are left to the display, the log and
    the MIDI/OSC outputs.

    With ``channels`` true (several streams) each line names the event's input channel.

    The lines are written by a thread of their own (:class:`~rtclassify.sinks._background.BackgroundText`): a
    terminal paused with Ctrl-S, or a reader that stops reading, holds the printing only, not the worker
    that feeds MIDI and OSC (lines beyond what the writer holds are dropped and counted in :attr:`fault`).
    """

    def __init__(self, stream=None, channels: bool = False, alone: bool = True, on_fault=None):
        from ..sinks._background import BackgroundText

        self.stream = stream or sys.stdout
        self.channels = bool(channels)
        #: the only output: when its reader goes away (``| head``) or a write fails (a full disk) the run ends;
        #: beside MIDI, OSC or a log file the printer just goes quiet and the show goes on (a failed write is
        #: said once through ``on_fault`` and counted in :attr:`fault`)
        self.alone = bool(alone)
        self.on_fault = on_fault
        self._closed = False
        self._quiet_error: str | None = None  # the failed write the printer went quiet after
        self._writer = BackgroundText(lambda: self.stream, name="rtclassify-print")

    def open(self) -> None:
        pass

    @property
    def fault(self) -> str | None:
        """Lines the printer dropped because its output was blocked, and a write that failed in its last
        batches (after the last ``send``, which would have raised it), or None."""
        w, faults = self._writer, []
        if w.dropped:
            faults.append(f"{w.dropped} batch{'es' if w.dropped != 1 else ''} of event lines not printed: standard "
                          f"output was blocked (a paused terminal or a reader that stopped reading)")
        if self._quiet_error is not None:
            faults.append(self._quiet_error)
        elif w.error is not None and not self._closed:
            faults.append(f"printing the events to standard output failed: {w.error.strerror or w.error}")
        return "; ".join(faults) or None

    def send(self, events) -> None:
        w = self._writer
        if not self._closed and (w.reader_gone or w.error is not None):
            self._closed = True
            if w.reader_gone:
                if self.stream is not None and self.stream is sys.stdout:
                    drop_stdout()
                if self.alone:
                    raise OutputClosed("the reader of standard output went away")
            else:  # a full disk, a device error
                why = f"printing the events to standard output failed: {w.error.strerror or w.error}"
                if self.alone:
                    raise SinkError(why)
                # beside MIDI or OSC the show goes on (it had ended 0.5 s after a disk filled up under `> file`)
                self._quiet_error = why
                if self.on_fault is not None:
                    self.on_fault(f"{why}; no more event lines are printed, the other outputs go on")
        if self._closed:
            return
        lines = []
        for ev in events:
            t = f"{ev.stream_time:9.3f}s  ch {ev.channel:<2d}" if self.channels else f"{ev.stream_time:9.3f}s"
            if ev.kind == "on":
                lines.append(f"{t}  on   {ev.tag:<10s} {ev.prob:.2f}")
            elif ev.kind == "off":
                lines.append(f"{t}  off  {ev.tag}")
            elif ev.kind not in ("level", "technique"):
                d = ev.to_dict()
                rest = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items()
                                if k not in ("stream_time", "wall_time", "channel", "event"))
                lines.append(f"{t}  {ev.kind:<4s} {rest}")
        if lines:
            w.write("\n".join(lines) + "\n")

    def close(self, timeout: float = 2.0) -> None:
        """Print what is queued, waiting up to ``timeout`` seconds for a blocked output."""
        self._writer.close(timeout)


def build_sinks(args, labels, mapping, title: str, channels=None, clip=None, what: str | None = None):
    """The sinks asked for on the command line (not opened yet) and a description of them.

    ``channels``: the input channel of each stream when several channels are
    tagged as streams of their own (MIDI channel and OSC address per stream).
    ``clip``: the audio file played (``demo``'s, the bundled one included), which the log must not replace.
    ``what``: the command (``demo``), for the line saying that the display cannot redraw in place (standard
    output is a file, a pipe or a dumb terminal): the event lines of ``--no-display`` are printed instead.
    """
    from ..sinks.display import LiveDisplay, cannot_redraw
    from ..sinks.log import JsonlSink
    from ..sinks.midi import MidiSink, is_port_index
    from ..sinks.osc import OscSink

    sinks, outputs = [], []
    warnings = Warnings()  # the outputs' warnings, written off the worker thread
    warn_later = warnings.warn
    if args.midi_api is not None and args.midi is None and args.midi_virtual is None:
        raise UsageError(f"--midi-api {args.midi_api} goes with --midi PORT or --midi-virtual NAME (no MIDI is sent "
                         f"without one)")
    if args.midi_wait and args.midi is None:
        raise UsageError("--midi-wait goes with --midi PORT (a virtual port is there from the start)")
    if args.midi_wait and is_port_index(args.midi):
        raise UsageError("--midi-wait needs the port's name: an index names no port that is not there yet")
    if args.midi is not None or args.midi_virtual is not None:
        sinks.append(MidiSink(mapping.midi, port=args.midi, virtual=args.midi_virtual, api=args.midi_api,
                              streams=channels, on_fault=warn_later, wait=args.midi_wait))
    if args.osc_wait and not args.osc:
        raise UsageError("--osc-wait goes with --osc HOST:PORT (no OSC is sent without one)")
    if args.osc:
        sinks.append(OscSink(mapping.osc, args.osc, streams=channels, on_fault=warn_later, wait=args.osc_wait))
        outputs.append("OSC " + ", ".join(args.osc))
    if args.log_changes and not args.log:
        raise UsageError("--log-changes goes with --log FILE.jsonl (no log is written without it)")
    if args.log:
        if args.log == "-" and not args.no_display:
            raise UsageError("--log -: standard output is used by the display; add --no-display")
        from ..model.bundle import default_bundle_path

        check_not_an_input("--log", args.log, [("the clip to play", clip),
                                               ("the mapping file", args.map),
                                               ("a file of the model bundle", args.bundle or default_bundle_path())])
        sinks.append(JsonlSink(args.log, levels=not args.log_changes, values=not args.log_changes,
                               on_fault=warn_later))
        outputs.append(f"log {args.log}")
    display = not args.no_display
    if display:
        why = cannot_redraw()
        if why:  # rich would draw nothing until the stop: the run looked hung
            _say(f"rtclassify{' ' + what if what else ''}: {why}: printing event lines instead of the live display")
            display = False
    if display:
        sinks.append(LiveDisplay(labels, title=title, channels=channels))
    elif args.log != "-":
        sinks.append(EventPrinter(channels=channels is not None, alone=not sinks, on_fault=warn_later))
    sinks.append(warnings)  # closed last: the warnings of the others' closing are written too
    return sinks, outputs


class _StderrOrAbove:
    """Standard error, or above a live display drawing on the terminal (:func:`~rtclassify.sinks.display.say_above`:
    a warning written under it was overwritten by the next frame)."""

    def write(self, text: str) -> None:
        from ..sinks.display import say_above

        if not say_above(text.rstrip("\n")):
            sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR_OR_ABOVE = _StderrOrAbove()


class Warnings:
    """Not an output: the standard-error writer of the other outputs' warnings (a paused terminal holds them,
    not the worker), as a sink so that the listener closes it, after the outputs, waiting a while for it."""

    def __init__(self):
        from ..sinks._background import BackgroundText

        self.writer = BackgroundText(lambda: _STDERR_OR_ABOVE, name="rtclassify-warn")

    def warn(self, line: str) -> None:
        """An output's ``on_fault``: the line of :func:`rtclassify.sinks.warn`, queued."""
        self.writer.write(f"rtclassify: warning: {line}\n")

    def open(self) -> None:
        pass

    def send(self, events) -> None:
        pass

    def close(self, timeout: float = 2.0) -> None:
        self.writer.close(timeout)

    @property
    def fault(self) -> str | None:
        """Warnings dropped because standard error was blocked, or None."""
        n = self.writer.dropped
        return f"{n} warning(s) not printed: standard error was blocked" if n else None


def open_sinks(sinks) -> None:
    """Open every sink now, so that a missing port or host fails before audio starts."""
    from ..sinks.display import LiveDisplay

    opened = []
    try:
        for s in sinks:
            if not isinstance(s, LiveDisplay):  # the display starts with the listener, not before
                s.open()
                opened.append(s)
    except BaseException:
        for s in opened:
            try:
                s.close()
            except Exception:
                pass
        raise


def describe_midi(sinks) -> str | None:
    from ..sinks.midi import MidiSink

    for s in sinks:
        if isinstance(s, MidiSink):
            chans = s.midi_channels
            which = f"ch {chans[0]}" if len(chans) == 1 else f"ch {chans[0]}-{chans[-1]}"
            return f"MIDI {s.shown_name} {which}"
    return None


def run_live(args, clf, mapping, source, title: str, *, what: str, blocksize: int, channels=None, clip=None,
             **select) -> int:
    """Build the sinks and the listener of ``listen``/``demo``, open the sinks, run (see :func:`run_listener`).

    ``channels``: several input channels as streams of their own; otherwise ``select`` says which
    channel the one stream takes (``channel=``, ``mix=``). ``clip``: the audio file played (``demo``).
    """
    from ..engine.listener import Listener
    from ..sinks.display import LiveDisplay

    sinks, outputs = build_sinks(args, clf.labels, mapping, title, channels=channels, clip=clip, what=what)
    if channels is not None:
        select = {"channels": channels}
    listener = Listener(clf, sinks=sinks, source=source, blocksize=blocksize, hop=args.hop,
                        decoder=mapping.decoder.as_dict() or None, techniques=args.techniques,
                        max_lag=getattr(args, "max_lag", None) or None, **select)
    narrow = clf.bundle.narrow_band(source.samplerate, getattr(source, "name", None) or "the input")
    if narrow:
        print(f"rtclassify {what}: warning: {narrow}", file=sys.stderr)
    open_sinks(sinks)

    def heading(sep: str = "\n→ ", none: str = "display only") -> str:
        # the MIDI part is read at each draw: a port connected after the start (--midi-wait) shows its name
        midi = describe_midi(sinks)
        return f"{title}{sep}{', '.join(([midi] if midi else []) + outputs) or none}"

    for s in sinks:
        if isinstance(s, LiveDisplay):
            s.title = heading
    # without the display (its title says it), a line says what runs: a silent start looked like a hung one
    if not any(isinstance(s, LiveDisplay) for s in sinks):
        _say(heading(" → ", "the events on standard output"))
    return run_listener(listener, args.duration, what=what)


def run_listener(listener, duration: float | None, *, what: str, stop_timeout: float = 10.0) -> int:
    """Run until ``duration`` passes, the source ends, a fault, Ctrl-C, SIGTERM or SIGHUP; print one summary line.

    The first Ctrl-C stops cleanly (the sinks get the final offs, the MIDI
    notes their note-offs); a Ctrl-C while stopping quits at once, with exit
    status 130. SIGTERM and SIGHUP stop cleanly too (see :class:`_StopSignals`).
    A stop that does not finish within ``stop_timeout`` seconds, or within
    twice that when the worker was still working at the first deadline
    (:func:`~rtclassify.engine.listener.stop_and_finish`), is a fault (the
    worker is blocked: a sink that cannot write, e.g. a full pipe): the
    summary says where it is blocked and the process leaves at once with
    status 1 (it does not return: interpreter shutdown would wait for the
    lock the blocked write holds).

    Returns the exit code: 0 after a normal stop (Ctrl-C, SIGTERM and SIGHUP included), 1 after a fault.
    """
    from ..engine.listener import stop_and_finish
    from ..sinks.display import format_counters

    global _stderr_blocked
    _stderr_blocked = False  # (a host may run several listeners, one after the other)
    t0 = time.monotonic()
    interrupted = False
    # the signals' clean stop is in place before the listener starts: in between, SIGTERM would unwind the
    # command (rtclassify.cli) and leave the listener's threads running
    with _StopSignals(what) as requested:
        listener.start()
        try:
            _wait_watching(listener, duration, what, requested)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            # a Ctrl-C while stopping (the second one) quits at once, without waiting for the stop
            old = signal.signal(signal.SIGINT, _force_quit(what)) if _main_thread() else None
            if interrupted:
                _say(f"rtclassify {what}: stopping (Ctrl-C again to quit at once)")
            elif requested.name:
                _say(f"rtclassify {what}: {requested.name}: stopping")
            try:
                stopped = stop_and_finish(listener, stop_timeout)
            finally:
                if old is not None:
                    signal.signal(signal.SIGINT, old)
    elapsed = time.monotonic() - t0
    if not stopped:  # the display may still be drawing: its line ends before the summary (see hard_exit)
        from ..sinks.display import release_terminal

        release_terminal()
    try:
        c = listener.counters()
        summary = " ".join(format_counters(c).split("\n"))
    except Exception as exc:  # the worker is blocked inside the session
        c, summary = {"events": "?"}, f"(counters unavailable: {exc})"
    how = "interrupted (Ctrl-C)" if interrupted else f"stopped ({requested.name})" if requested.name else "stopped"
    error = listener.error
    if isinstance(error, OutputClosed):  # `--log - | head`: the reader has what it wanted
        how, error = "stopped (standard output closed)", None
        drop_stdout()
    sent = sent_by_outputs(listener.sinks)
    if sent:  # (before the summary, which stays the line before any error)
        _say(f"rtclassify {what}: sent {sent}")
    _say(f"rtclassify {what}: {how} after {elapsed:.1f} s, {c['events']} events ({c.get('switches', '?')} on/off, "
         f"the rest levels and tracker values); {summary}")
    if error is not None:
        _say(f"rtclassify {what}: error: {error}")
    faults = [f for f in (getattr(s, "fault", None) for s in listener.sinks) if f]
    for f in faults:  # outputs that failed during the run while the show went on
        _say(f"rtclassify {what}: error: {f}")
    code = 1 if error is not None or faults else 0
    if not stopped or _stderr_blocked:
        hard_exit(1 if not stopped else code)
    return code


def sent_by_outputs(sinks) -> str:
    """What the MIDI and OSC outputs sent ("MIDI 812 messages to rtclassify:tags, OSC 1630 datagrams"), or ""."""
    parts = []
    for s in sinks:
        if hasattr(s, "messages_sent"):
            name = getattr(s, "shown_name", None) or getattr(s, "port_name", None) or "its port"
            parts.append(f"MIDI {s.messages_sent} messages to {name}")
        elif hasattr(s, "datagrams_sent"):
            errors = sum(getattr(s, "send_errors", {}).values())
            parts.append(f"OSC {s.datagrams_sent} datagrams" + (f" ({errors} failed)" if errors else ""))
    return ", ".join(parts)


#: seconds the worker may spend in one output call before the run says so (the audio is then being dropped)
BLOCKED_WARNING_S = 2.0


def _wait_watching(listener, duration: float | None, what: str, requested=None) -> None:
    """``listener.wait(duration)``, saying once when an output has held up the worker for a while; returns
    early when ``requested`` (:class:`_StopSignals`) has caught a stop signal."""
    end = None if duration is None else time.monotonic() + duration
    warned = False
    while True:
        step = 0.25 if end is None else min(0.25, end - time.monotonic())
        if step <= 0 or listener.wait(step) or (requested is not None and requested.name):
            return
        if not warned:
            where = listener.blocked(BLOCKED_WARNING_S)
            if where:
                _say(f"rtclassify {what}: warning: blocked for more than {BLOCKED_WARNING_S:g} s in {where}; "
                     f"the audio arriving meanwhile is dropped")
                warned = True


#: seconds a line of the run's own (stopping, the summary) may wait for standard error
SAY_TIMEOUT_S = 2.0
#: a line of the run's own could not be written within SAY_TIMEOUT_S (a terminal paused with Ctrl-S): later
#: lines are dropped, and the run leaves with os._exit (interpreter shutdown would wait for standard error)
_stderr_blocked = False


def _say(line: str) -> None:
    """One line on standard error, now (nothing when standard error is gone: a closed terminal). A terminal
    that blocks the write (paused with Ctrl-S) holds it up to :data:`SAY_TIMEOUT_S`: SIGTERM and Ctrl-C must
    still stop the run (a line written before the stop began held the stop itself)."""
    from ..sinks._background import call_within
    from ..sinks.display import readable

    global _stderr_blocked
    if _stderr_blocked:
        return
    line = readable(line, sys.stderr)  # (→ and · in a Latin-1 or ASCII locale)

    def write():
        try:  # (above a live display drawing on the terminal: its next frame would overwrite the line)
            _STDERR_OR_ABOVE.write(line + "\n")
            _STDERR_OR_ABOVE.flush()
        except (OSError, ValueError):
            pass

    _stderr_blocked = not call_within(write, SAY_TIMEOUT_S, "rtclassify-say")


class _StopSignals:
    """SIGTERM and SIGHUP (a process manager's stop, a closed terminal) stop the run as the first Ctrl-C
    does: the sinks get the final offs, the MIDI notes their note-offs, and the exit status is 0. Killed by
    the signal's default action instead, the process left every sounding MIDI note hanging in the
    receiver. A second one quits at once with status 128 + the signal.

    The handler only records the signal; :func:`_wait_watching` sees it within 0.25 s. Installed in the
    main thread only (elsewhere signals cannot be handled), and not over a signal the process was started
    with ignored: ``nohup rtclassify listen ... &`` goes on when the ssh session that started it closes.
    """

    SIGNALS = ("SIGTERM", "SIGHUP")

    def __init__(self, what: str):
        self.what = what
        #: the name of the signal that asked for the stop, or None
        self.name: str | None = None
        self._old: dict = {}

    def __enter__(self) -> "_StopSignals":
        if _main_thread():
            for n in self.SIGNALS:
                sig = getattr(signal, n, None)
                if sig is not None and signal.getsignal(sig) != signal.SIG_IGN:
                    self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def _handler(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.name is None:  # the first: stop cleanly (when already stopping, the stop goes on)
            self.name = name
            return
        _leave_now(f"rtclassify {self.what}: {name} again: quitting without waiting for the stop", 128 + signum)


def _force_quit(what: str):
    """SIGINT handler while stopping: leave now with status 130 (see :func:`_leave_now`)."""

    def handler(signum, frame):
        _leave_now(f"rtclassify {what}: Ctrl-C again: quitting without waiting for the stop", 130)

    return handler


def _leave_now(line: str, code: int) -> None:
    """Write ``line`` to standard error and leave at once with ``code`` (from a signal handler; standard output
    is not flushed: it may be blocked).

    A live display's terminal is given back first (its line ended, the cursor shown: see
    :func:`~rtclassify.sinks.display.release_terminal`), and standard error is given at most a second for the
    line: a terminal paused with Ctrl-S blocks the write, and the process must leave.
    """
    import os

    from ..sinks._background import call_within
    from ..sinks.display import release_terminal

    release_terminal()

    def write():
        _flush_quietly(sys.stderr)
        try:
            os.write(2, f"{line}\n".encode())
        except OSError:
            pass

    call_within(write, 1.0, "rtclassify-leave")
    os._exit(code)


def hard_exit(code: int) -> None:
    """Leave now, without atexit handlers (PortAudio's would block on a dead device).

    A live display still drawing gives its terminal back (its line ended, the
    cursor shown, without blocking: see
    :func:`~rtclassify.sinks.display.release_terminal`). Standard output and
    error are flushed, each for at most a second (a blocked writer, e.g. a full
    pipe, may hold standard output).
    """
    import os

    from ..sinks._background import call_within
    from ..sinks.display import release_terminal

    release_terminal()
    for stream in (sys.stdout, sys.stderr):
        call_within(lambda stream=stream: _flush_quietly(stream), 1.0, "rtclassify-flush")
    os._exit(code)


def _flush_quietly(stream) -> None:
    try:
        stream.flush()
    except Exception:
        pass


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
