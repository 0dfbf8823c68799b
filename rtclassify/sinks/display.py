"""Live terminal display (rich): one bar per tag with its on/off state, recent events, counters.

With several streams (``channels=``, ``listen --channels``) it shows a matrix
instead: one row per tag, one column per input channel, each cell a short bar
of the tag's level on that channel, bright when the tag is on.

The view fits the terminal: a long tag name is cut (its middle replaced by
"…") before the bars shrink, and tags too many for the terminal's height are
laid out in blocks side by side (and in a short terminal the lines around
them are cut and the counters shortened), so that each tag's state and the
counters show in any terminal of 3 lines by 40 columns or more
(:meth:`LiveDisplay.render` says how). A terminal made narrower re-wraps
the last frame's lines, and rows of it can stay above the live frame (rich
goes back over as many rows as the frame had lines).

The worker thread only stores the latest values (plain attribute and dict
writes); rich's own refresh thread draws them ``refresh_per_second`` times a
second in place (``rich.live.Live``), so the screen does not flicker and the
audio path never waits for the terminal.

Where the output's encoding lacks one of the display's characters (→ █ · …
±: a Latin-1 or ASCII locale) the display draws ASCII stand-ins instead
(:data:`ASCII_GLYPHS`), decided once when it opens. On a file, a pipe or a
dumb terminal it cannot redraw in place (:func:`cannot_redraw`): the live
commands print the event lines of ``--no-display`` there instead.
"""

from __future__ import annotations

import collections
import functools
import os
import time
from typing import Sequence

from ._background import call_within
from .mapping import clip_unit

__all__ = ["LiveDisplay", "cannot_redraw", "fit_encoding", "plain", "readable", "release_terminal", "say_above"]

_BAR = 28
_NAME = 16  # a tag name longer than the width allows is cut down to no less than this
_GAP = 2  # columns between blocks of tags side by side

#: the display's characters beyond ASCII and what stands for each where the output's encoding lacks them
#: (rich's refresh thread died at its first draw on a Latin-1 terminal, and nothing was drawn again)
ASCII_GLYPHS = {"→": "->", "·": "|", "…": "..", "±": "+-", "█": "#"}
_PLAIN = str.maketrans(ASCII_GLYPHS)


@functools.lru_cache(maxsize=8)  # (read for every text of every frame: the answer per encoding is fixed)
def lacks_glyphs(encoding: str | None) -> bool:
    """True when text in ``encoding`` cannot hold every one of the display's characters (:data:`ASCII_GLYPHS`)."""
    try:
        "".join(ASCII_GLYPHS).encode(encoding or "utf-8")
    except (UnicodeError, LookupError):
        return True
    return False


def plain(text: str) -> str:
    """``text`` with the display's characters beyond ASCII replaced by their stand-ins (``→`` by ``->``...)."""
    return text.translate(_PLAIN)


def fit_encoding(text: str, encoding: str | None) -> str:
    """``text`` as ``encoding`` can hold it: :func:`plain` where it lacks the display's characters, and any
    other character it lacks (a clip's, a device's or a tag's name) as ``?`` (rich's refresh thread died on
    the first one it could not write, and the display stayed blank for the whole run)."""
    if not lacks_glyphs(encoding):
        try:
            text.encode(encoding or "utf-8")
            return text
        except (UnicodeError, LookupError):
            pass
    else:
        text = plain(text)
    try:
        return text.encode(encoding or "utf-8", "replace").decode(encoding or "utf-8")
    except LookupError:
        return text.encode("ascii", "replace").decode("ascii")


def readable(text: str, stream) -> str:
    """``text`` as ``stream`` can write it (:func:`fit_encoding`; without it, standard error wrote ``\\u2192``
    escapes)."""
    return fit_encoding(text, getattr(stream, "encoding", None))


def cannot_redraw(console=None) -> str | None:
    """Why the display cannot redraw in place on ``console`` (default: a rich Console on standard output), or
    None when it can.

    rich's Live draws nothing on a file, a pipe or a dumb terminal (``TERM=dumb``) until it stops, then one
    snapshot: a run there looked hung.
    """
    if console is None:
        from rich.console import Console

        console = Console()
    if not console.is_terminal:
        return "standard output is not a terminal"
    if console.is_dumb_terminal:
        return f"a dumb terminal (TERM={os.environ.get('TERM', '')})"
    return None


#: (rich Live, file descriptor) of each display that hid a terminal's cursor and has not shown it again (open,
#: not closed): what :func:`release_terminal` gives back
_HOLDING: list = []


def say_above(line: str) -> bool:
    """Print ``line`` above a live display that is drawing on a terminal (rich moves the display down under
    it) and return True; False when none is (the caller writes the line itself). A line written to standard
    error while the display redraws was overwritten by the next frame ("Ctrl-C again to quit at once", an
    output's warning). Only when standard error is that terminal too (a standard error sent to a file keeps
    its lines). The write can block on a paused terminal: call it where that is bounded."""
    for live, fd in list(_HOLDING):
        try:
            if os.ttyname(2) != os.ttyname(fd):
                return False
        except OSError:  # standard error is no terminal
            return False
        try:
            console = live.console
            console.print(fit_encoding(line, console.encoding), markup=False, highlight=False, emoji=False,
                          soft_wrap=True)
        except Exception:  # noqa: BLE001 - the caller writes it to standard error instead
            return False
        return True
    return False


def release_terminal(wait: float = 0.2) -> None:
    """Give back the terminal of every display still drawing on one: end its last line and show the cursor.

    For a process about to leave at once (``os._exit``: a second Ctrl-C or
    SIGTERM, a stop that did not finish), which skips the display's close:
    rich had hidden the cursor, and the next line was glued to the display's
    last one. rich's drawing is stopped first (its refresh thread, and its lock
    taken for up to ``wait`` seconds and kept, so that nothing is drawn after
    the line ends). The line end and the show-cursor sequence are written
    without blocking: on a terminal paused with Ctrl-S they are not written
    (the write would wait for the terminal to resume, and the process must
    leave).
    """
    while _HOLDING:
        try:
            live, fd = _HOLDING.pop()
        except IndexError:  # (another thread took it)
            return
        refresher = getattr(live, "_refresh_thread", None)
        if refresher is not None:
            refresher.stop()
        lock = getattr(live, "_lock", None)
        if lock is not None:
            lock.acquire(timeout=wait)
        _write_without_blocking(fd, b"\n\x1b[?25h", wait)


def _write_without_blocking(fd: int, data: bytes, wait: float) -> None:
    """Write ``data`` to the terminal ``fd`` if it takes it now: through a description of its own opened
    non-blocking (setting O_NONBLOCK on ``fd`` would set it for the shell that shares it too), else from a
    daemon thread given ``wait`` seconds."""
    try:
        out = os.open(os.ttyname(fd), os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        def write():
            try:
                os.write(fd, data)
            except OSError:
                pass

        call_within(write, wait, "rtclassify-release-terminal")
        return
    try:
        os.write(out, data)
    except OSError:  # BlockingIOError: paused
        pass
    finally:
        os.close(out)


class LiveDisplay:
    """A rich Live view of the tags.

    Parameters
    ----------
    labels : sequence of str
        The tags, in the order to show them.
    title : str or callable
        First line (source, rate, outputs), or a function returning it, called
        at each draw (on rich's refresh thread: it must only read), for a title
        that changes (a MIDI port connected after the start).
    console : rich.console.Console, optional
        Where to draw (default: a Console on standard output).
    refresh_per_second : float
        Redraw rate.
    recent : int
        How many recent on/off events to list.
    channels : sequence of int, optional
        Several streams: the input channel of each (one column per channel).
    """

    def __init__(self, labels: Sequence[str], *, title: str = "rtclassify", console=None,
                 refresh_per_second: float = 12.0, recent: int = 6, channels=None):
        self.labels = list(labels)
        #: input channels of the streams (several streams), or None
        self.channels = None if channels is None else [int(c) for c in channels]
        #: several streams: per channel, the levels and on/off states of the tags
        self.levels_by_channel = {c: {t: 0.0 for t in self.labels} for c in self.channels or ()}
        self.active_by_channel = {c: {t: False for t in self.labels} for c in self.channels or ()}
        self.title = title
        self._console = console
        self._rate = refresh_per_second
        self.levels = {t: 0.0 for t in self.labels}
        self.active = {t: False for t in self.labels}
        self.on_counts = {t: 0 for t in self.labels}
        self.technique: dict[str, str] = {}
        #: the input's level (dBFS) at the trackers' last values, or None before any (or without the trackers)
        self.input_db: float | None = None
        self.recent: collections.deque = collections.deque(maxlen=recent)
        self.counters: dict = {}
        self.stream_time = 0.0
        self._live = None
        self._holding = None  # (live, fd) in _HOLDING while the live view holds a terminal's cursor
        #: draw ASCII stand-ins for the characters the console's encoding lacks (decided when it opens)
        self.ascii = console is not None and lacks_glyphs(console.encoding)
        self._encoding = None if console is None else console.encoding
        self._t0 = time.monotonic()

    # ---------------------------------------------------------------- sink protocol
    def open(self) -> None:
        if self._live is not None:
            return
        from rich.console import Console
        from rich.live import Live

        console = self._console or Console()
        self._console = console
        self.ascii = lacks_glyphs(console.encoding)
        self._encoding = console.encoding
        self._t0 = time.monotonic()
        self._live = Live(get_renderable=self.render, console=console, refresh_per_second=self._rate,
                          transient=False, redirect_stdout=False, redirect_stderr=False)
        self._live.start()
        if console.is_terminal:  # the cursor is hidden until the live view stops
            try:
                self._holding = (self._live, console.file.fileno())
            except (AttributeError, OSError, ValueError):
                pass
            else:
                _HOLDING.append(self._holding)

    def send(self, events) -> None:
        if self.channels is not None:
            self._send_streams(events)
            return
        for ev in events:
            k = ev.kind
            self.stream_time = max(self.stream_time, ev.stream_time)
            if k == "level":
                self.levels[ev.tag] = ev.prob
            elif k == "on":
                self.active[ev.tag] = True
                self.on_counts[ev.tag] = self.on_counts.get(ev.tag, 0) + 1
                self.levels[ev.tag] = max(self.levels.get(ev.tag, 0.0), ev.prob)
                self.recent.appendleft((ev.stream_time, f"+{ev.tag}", f"{ev.prob:.2f}"))
            elif k == "off":
                self.active[ev.tag] = False
                self.recent.appendleft((ev.stream_time, f"-{ev.tag}", ""))
            elif k == "technique":
                self.input_db = getattr(ev, "level_db", None)
                pitch = getattr(ev, "pitch", None)
                self.technique["pitch"] = f"{pitch:.1f} Hz" if pitch else "-"
                if getattr(ev, "vibrato", False):
                    self.technique["vibrato"] = f"{ev.vibrato_rate:.1f} Hz ±{ev.vibrato_extent:.0f} c"
                if getattr(ev, "tremolo", False):
                    self.technique["tremolo"] = f"{ev.tremolo_rate:.1f} Hz {ev.tremolo_depth:.1f} dB"
            elif k in ("vibrato_on", "tremolo_on"):
                self.technique[k[:-3]] = "on"
                self.recent.appendleft((ev.stream_time, f"+{k[:-3]}", ""))
            elif k in ("vibrato_off", "tremolo_off"):
                self.technique.pop(k[:-4], None)
                self.recent.appendleft((ev.stream_time, f"-{k[:-4]}", ""))

    def _send_streams(self, events) -> None:
        for ev in events:
            k = ev.kind
            self.stream_time = max(self.stream_time, ev.stream_time)
            levels = self.levels_by_channel.get(ev.channel)
            if levels is None or k not in ("level", "on", "off"):
                continue
            if k == "level":
                levels[ev.tag] = ev.prob
            elif k == "on":
                self.active_by_channel[ev.channel][ev.tag] = True
                levels[ev.tag] = max(levels.get(ev.tag, 0.0), ev.prob)
                self.on_counts[ev.tag] = self.on_counts.get(ev.tag, 0) + 1
                self.recent.appendleft((ev.stream_time, f"+{ev.tag}@{ev.channel}", f"{ev.prob:.2f}"))
            else:
                self.active_by_channel[ev.channel][ev.tag] = False
                self.recent.appendleft((ev.stream_time, f"-{ev.tag}@{ev.channel}", ""))

    def status(self, counters: dict) -> None:
        self.counters = counters

    def close(self, timeout: float = 2.0) -> None:
        """Draw the last state and stop drawing; a terminal that blocks writes (paused with Ctrl-S, a stalled
        ssh link) is given ``timeout`` seconds, then left to a daemon thread, so that a stop (SIGTERM from a
        show-control script) still ends the run."""
        live, self._live = self._live, None
        holding, self._holding = self._holding, None
        if live is None:
            return

        def finish():
            try:
                live.refresh()
                live.stop()
                if not live.console.is_terminal:
                    live.console.line()  # rich ends the final snapshot of a file or pipe without a newline
            except Exception:  # pragma: no cover - the terminal went away
                pass
            else:
                try:
                    _HOLDING.remove(holding)  # the cursor is shown again
                except ValueError:
                    pass

        call_within(finish, timeout, "rtclassify-display-close")

    # ---------------------------------------------------------------- drawing
    def render(self):
        """What rich draws: the title, the tags, technique values, recent events and the counters.

        The tags take today's one-row-per-tag layout when it fits the console's
        height with the lines around it. Otherwise the lines around the tags
        are squeezed in steps: as they are, then the title, technique and events
        lines cut to one line each, then the counters in their short form too
        (dropped samples, overflows, late hops, compute per hop and the total
        latency on one line that wraps, :func:`format_counters`). One bar per
        tag takes the first step at which some number of blocks side by side
        fits; a channel matrix takes the step and blocks that show the most
        channels (lines are cut before channels are left out). As a last resort
        only the tags that are on are named, and then the events line, the
        technique line and the title are left out in turn.

        So every tag's state (or the names of the tags that are on) and the
        counters are on screen in any terminal of 3 lines or more at 40
        columns or more (a terminal too small even for the short counters and
        the tags that are on shows what fits, and rich ends it with "...").
        """
        from rich.console import Group
        from rich.text import Text

        text = self._fit
        title = Text(text(self.title() if callable(self.title) else self.title), style="bold")
        # a copy in one C call: the worker adds and removes technique keys while this runs on rich's
        # refresh thread, and iterating the live dict would raise there and freeze the display
        technique = dict(self.technique)
        below = []
        line = []
        if self.input_db is not None:  # (a dead cable reads -120, a quiet room -60: every bar reads 0 in both)
            line.append(f"input {self.input_db:.0f} dBFS")
        if technique:
            line.append("technique: " + "  ".join(f"{k} {v}" for k, v in technique.items()))
        if line:
            below.append(Text(text(" · ".join(line))))
        ev = "  ".join(f"{t:6.2f}s {name} {p}".rstrip() for t, name, p in list(self.recent))
        below.append(Text(text(f"events: {ev or '(none yet)'}"), style="grey70"))
        counters = Text(text(f"t = {self.stream_time:.1f} s · " + format_counters(self.counters)), style="grey62")
        parts = (title, *below, counters)
        width, height = self._width(), self._height()
        bound = 0 if height is None else sum(self._lines_at_most(t, width) for t in parts)
        if height is None or len(self.labels) + (self.channels is not None) + bound <= height:
            view = self._tags(1, width)
            if height is None or view[1] + bound <= height:
                return Group(title, view[0], *below, counters)  # fits surely (or nothing to fit): not measured
        short = Text(text(format_counters(self.counters, short=True)), style="grey62")
        cut = [self._cut(t) for t in (title, *below)]
        steps = [(t, b, c, height - sum(self._lines(p, width) for p in (t, *b, c)))
                 for t, b, c in ((title, below, counters), (cut[0], cut[1:], counters), (cut[0], cut[1:], short))]
        views = {}  # (blocks, cut) -> what self._tags gives

        def tags(blocks, step):
            key = (blocks, step > 0 and self.channels is not None)  # (only the matrix's note is cut)
            if key not in views:
                views[key] = self._tags(blocks, width, cut=key[1])
            return views[key]

        def rows(blocks):
            return -(-len(self.labels) // blocks) + (self.channels is not None)

        if self.channels is None:
            for step, (t, b, c, spare) in enumerate(steps):
                for blocks in self._block_counts():
                    if rows(blocks) > spare:
                        continue  # too tall before any note: not worth drawing
                    view = tags(blocks, step)
                    if view is None:
                        break  # the blocks are too narrow already; more would be narrower still
                    if view[1] <= spare:
                        return Group(t, view[0], *b, c)
        else:
            best = self._most_channels(steps, tags, rows)
            if best is not None:
                t, b, c, _ = steps[best[1]]
                return Group(t, best[2], *b, c)
        return self._last_resort(steps, width, height)

    def _most_channels(self, steps, tags, rows):
        """The matrix layout that shows the most channels, then squeezes the fewest lines around it, then takes
        the fewest blocks: (channels shown, step, view), or None when none fits.

        Parameters
        ----------
        steps : list of (title, lines below, counters, spare lines)
            The lines around the tags, squeezed more at each step.
        tags : callable
            ``tags(blocks, step)``: what :meth:`_tags` gives for that many blocks at that step.
        rows : callable
            ``rows(blocks)``: the lines the matrix takes at the least in that many blocks.
        """
        best = None
        for blocks in self._block_counts():
            for step, (_, _, _, spare) in enumerate(steps):
                if rows(blocks) > spare:
                    continue  # too tall before any note: not worth drawing
                view = tags(blocks, step)
                if view is None or (best is not None and view[2] < best[0]):
                    return best  # more blocks are narrower still: no more channels
                if view[1] <= spare:
                    if best is None or (view[2], -step) > (best[0], -best[1]):
                        best = (view[2], step, view[0])
                    break  # the later steps squeeze more for as many channels
        return best

    def _last_resort(self, steps, width: int, height: int):
        """The tags that are on instead of the tags, with the lines around them squeezed until it all fits the
        height: the ``steps`` (title, lines below, counters, spare lines) in turn, then the short form of the
        tags that are on, then without the lines below (the last first) and without the title, and last that
        short form cut to one line (many tags on must not push the counters off)."""
        from rich.console import Group

        on, on_short = self._tags_on(), self._tags_on(short=True)
        tries = [(t, on, b, c) for t, b, c, _ in steps]
        t, b, c, _ = steps[-1]
        tries += [(t, on_short, b[:k], c) for k in range(len(b), -1, -1)] + [(None, on_short, [], c)]
        tries += [(None, self._cut(on_short), [], c)]
        for t, on, b, c in tries:
            parts = [p for p in (t, on, *b, c) if p is not None]
            if sum(self._lines(p, width) for p in parts) <= height:
                break
        return Group(*parts)

    def _cut(self, text):
        """A copy of ``text`` that takes one line per line it holds: what does not fit the width is cut."""
        text = text.copy()
        text.no_wrap, text.overflow = True, "crop" if self.ascii else "ellipsis"
        return text

    def _width(self) -> int:
        """The console's width now (it follows a resized terminal)."""
        return int(self._console.width) if self._console is not None else 80

    def _height(self) -> int | None:
        """The console's height now (it follows a resized terminal), or None without a console."""
        return int(self._console.height) if self._console is not None else None

    def _lines(self, text, width: int) -> int:
        """How many lines ``text`` takes at ``width`` columns (at most that many, without a console)."""
        if self._console is None:
            return self._lines_at_most(text, width)
        return len(text.wrap(self._console, width))

    @staticmethod
    def _lines_at_most(text, width: int) -> int:
        """At least as many lines as ``text`` takes at ``width`` columns, cheaply (without wrapping it).

        Word wrapping starts a line only when the next word does not fit, so
        any two lines in a row hold ``width - 1`` cells or more.
        """
        from rich.cells import cell_len

        if text.no_wrap:
            return text.plain.count("\n") + 1
        if width < 2:
            return sum(max(1, cell_len(line)) for line in text.plain.split("\n"))
        return sum(1 if n <= width else 2 * (n // (width - 1)) + 2 for n in map(cell_len, text.plain.split("\n")))

    def _block_counts(self):
        """The numbers of side-by-side blocks worth trying, fewest first (each gives fewer rows)."""
        n = len(self.labels)
        rows = None
        for blocks in range(1, max(1, n) + 1):
            r = -(-n // blocks)
            if r != rows:
                rows = r
                yield -(-n // r) if n else 1

    def _tag_width(self, width: int, rest: int, least: int) -> int:
        """The name column's width: the longest tag, cut down to leave the other columns room.

        Parameters
        ----------
        width : int
            Columns for the whole row.
        rest : int
            Columns the other columns take at their widest: names longer than
            what is left are cut, though not below ``_NAME`` characters.
        least : int
            Columns the other columns need at the least (what must stay
            visible): names are cut below ``_NAME`` characters to leave them
            that, though never below 9 (no tag of the default bundle is cut).
        """
        return min(max([9] + [len(t) for t in self.labels]), max(_NAME, width - rest), max(9, width - least))

    def _tags(self, blocks: int, width: int, cut: bool = False):
        """The tags in ``blocks`` blocks side by side, how many lines that takes and how many channels it shows.

        ``cut``: the matrix's note on the channels not shown takes one line (cut at the width).

        Returns
        -------
        (renderable, int, int or None) or None
            None when a block at this width could not show each tag's state
            (for a matrix: not one channel). The channels shown are None for
            one bar per tag.
        """
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        labels = self.labels
        rows = -(-len(labels) // blocks) if labels else 0
        chunks = [labels[i:i + rows] for i in range(0, len(labels), rows)] if rows else [labels]
        cell = (width - _GAP * (len(chunks) - 1)) // len(chunks)
        if self.channels is None:
            views = [self._bars(chunk, cell, compact=blocks > 1) for chunk in chunks]
            if any(v is None for v in views):
                return None
            shown, lines = None, rows
        else:
            views = [self._matrix(chunk, cell, least=1 if blocks == 1 else 0) for chunk in chunks]
            shown = min(n for _, n in views)
            if shown == 0:
                return None
            views = [v for v, _ in views]
            lines = rows + 1
        if len(views) == 1:
            view = views[0]
        else:
            view = Table.grid(padding=(0, _GAP))
            for _ in views:
                view.add_column(width=cell, no_wrap=True)
            view.add_row(*views)
        if self.channels is None or shown == len(self.channels):
            return view, lines, shown
        note = Text(f"channels {spans(self.channels[shown:])} not shown: the terminal is too narrow", style="grey50")
        if cut:
            note = self._cut(note)
        return Group(view, note), lines + self._lines(note, width), shown

    def _tags_on(self, short: bool = False):
        """The last resort when the tags fit no layout: the tags that are on, and how many are off (and why, but
        when ``short``)."""
        from rich.text import Text

        if self.channels is None:
            on = [t for t in self.labels if self.active.get(t, False)]
        else:
            on = [f"{t}@{c}" for c in self.channels for t in self.labels if self.active_by_channel[c].get(t, False)]
        total = len(self.labels) * len(self.channels or (0,))
        line = f"on: {', '.join(on) or 'none'} · {total - len(on)} of {total} off"
        if not short:
            line += " (too many tags to show each in this terminal)"
        return Text(self._fit(line), style="bold" if on else "")

    def _matrix(self, labels: Sequence[str] | None = None, width: int | None = None, least: int = 1):
        """The tags (rows) by channels (columns) matrix at ``width`` columns.

        It shows the channels that fit the width, and at least ``least`` of them.

        Returns
        -------
        (rich.table.Table, int)
            The matrix and how many channels it shows (the first ones; those
            that fit the width).
        """
        from rich.table import Table
        from rich.text import Text

        labels = self.labels if labels is None else labels
        width = self._width() if width is None else width
        chans = self.channels
        widest = max(len(str(c)) for c in chans)
        tag_w = self._tag_width(width, (max(widest, 5) + 1) * len(chans), max(widest, 5) + 1)
        avail = width - tag_w  # each cell takes its width plus one column of padding
        cell = max(widest, min(5, avail // len(chans) - 1))
        shown = chans[:max(least, avail // (cell + 1))]
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="left", min_width=tag_w, no_wrap=True)
        for _ in shown:
            table.add_column(width=cell, no_wrap=True)
        full, empty = self._glyphs()
        table.add_row(Text("channel", style="grey50"), *(Text(f"{c:>{cell}}", style="grey50") for c in shown))
        for tag in labels:
            row = []
            any_on = False
            for c in shown:
                p = clip_unit(self.levels_by_channel[c].get(tag, 0.0))
                on = self.active_by_channel[c].get(tag, False)
                any_on = any_on or on
                filled = int(round(p * cell))
                bar = Text(full * filled, style="bold green" if on else "cyan")
                bar.append(empty * (cell - filled), style="grey37")
                row.append(bar)
            table.add_row(Text(self._shorten(tag, tag_w), style="bold" if any_on else ""), *row)
        return table, len(shown)

    def _bars(self, labels: Sequence[str] | None = None, width: int | None = None, compact: bool = False):
        """One row per tag: name, level bar, value, on/off state and on count, at ``width`` columns.

        The side columns are dropped from the right when the width is short
        (count, then state, then value); ``compact`` (one of several blocks
        side by side) drops the value before the state and gives up (None)
        when the state would not fit beside a bar.
        """
        from rich.table import Table
        from rich.text import Text

        labels = self.labels if labels is None else labels
        width = self._width() if width is None else width
        # value, on/off state and on count beside the bar, dropped in a narrow terminal
        extras = {"value": 4, "state": 3, "count": 4}
        drop = ["count", "value"] if compact else ["count", "state", "value"]
        # what stays visible at the least: a bar of 4 and the state (and the value, but in a block)
        least = 1 + 4 + sum(extras[k] + 1 for k in extras if k == "state" or (k == "value" and not compact))
        tag_w = self._tag_width(width, 1 + _BAR + sum(w + 1 for w in extras.values()), least)
        room = width - tag_w - 1
        while drop and room - sum(w + 1 for w in extras.values()) < 4:
            del extras[drop.pop(0)]
        if compact and room - sum(w + 1 for w in extras.values()) < 4:
            return None
        width = max(4, min(_BAR, room - sum(w + 1 for w in extras.values())))
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="left", min_width=tag_w, no_wrap=True)
        table.add_column(width=width, no_wrap=True)
        for key, w in extras.items():
            table.add_column(justify="left" if key == "state" else "right", width=w, no_wrap=True)
        full, empty = self._glyphs()
        for tag in labels:
            p = clip_unit(self.levels.get(tag, 0.0))
            on = self.active.get(tag, False)
            filled = int(round(p * width))
            bar = Text(full * filled, style="bold green" if on else "cyan")
            bar.append(empty * (width - filled), style="grey37")
            cells = {"value": f"{p:.2f}", "state": Text("ON", style="bold green") if on else Text("--", style="grey50"),
                     "count": Text(f"{self.on_counts.get(tag, 0)}x", style="grey50")}
            table.add_row(Text(self._shorten(tag, tag_w), style="bold" if on else ""), bar, *(cells[k] for k in extras))
        return table

    def _glyphs(self) -> tuple[str, str]:
        """The characters of a bar's filled and empty cells."""
        return ("#", ".") if self.ascii else ("█", "·")

    def _shorten(self, name: str, width: int) -> str:
        return self._fit(shorten(name, width, mark=ASCII_GLYPHS["…"] if self.ascii else "…"))

    def _fit(self, text: str) -> str:
        """``text`` as the console's encoding can hold it (:func:`fit_encoding`)."""
        return fit_encoding(text, self._encoding) if (self.ascii or self._encoding) else text


def shorten(name: str, width: int, mark: str = "…") -> str:
    """``name`` in at most ``width`` characters: its middle replaced by ``mark`` when it is longer.

    The start and the end both stay, so learned tags that differ only at the
    end (``..._take1``, ``..._take2``) stay apart.
    """
    if len(name) <= width:
        return name
    head = (width - len(mark) + 1) // 2
    return name[:head] + mark + name[len(name) - (width - len(mark) - head):]


def spans(numbers: Sequence[int]) -> str:
    """``numbers`` (ascending) listed with each run of three or more in a row as ``first-last`` (``1, 3-11``)."""
    out, i = [], 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out += [f"{numbers[i]}-{numbers[j]}"] if j - i >= 2 else [str(n) for n in numbers[i:j + 1]]
        i = j + 1
    return ", ".join(out)


def format_counters(c: dict, short: bool = False) -> str:
    """The counters as one or two short lines (what the display and ``listen`` print).

    ``short``: one line (that wraps) for a small terminal: dropped samples, overflows, late hops, the mean
    compute per hop and the total latency, and the faults when there were any.
    """
    if not c:
        return "counters: (starting)"

    def ms(key):
        v = c.get(key)
        return "-" if v is None else f"{v:.1f}"

    # what went wrong with the input or the model, said only when it happened (NaN or infinite samples from a
    # driver or cable, model outputs that were not probabilities, model runs that failed)
    faults = [f"{what} {c[key]}" for key, what in (("session_nonfinite_replaced", "bad samples replaced"),
                                                   ("session_bad_probabilities", "bad model outputs"),
                                                   ("session_failed_hops", "failed model runs"))
              if c.get(key)]
    if short:
        return (f"dropped {c.get('dropped_samples', 0)} · overflows {c.get('input_overflows', 0)} · late hops "
                f"{c.get('late_hops', 0)}/{c.get('hops', 0)} · {ms('compute_ms_mean')} ms/hop · latency "
                f"{ms('latency_total_ms')} ms" + "".join(f" · {f}" for f in faults))
    return (
        f"dropped {c.get('dropped_samples', 0)} samples · overflows {c.get('input_overflows', 0)} · "
        f"late hops {c.get('late_hops', 0)}/{c.get('hops', 0)} · compute {ms('compute_ms_mean')} ms/hop "
        f"(p99 {ms('compute_ms_p99')})" + "".join(f" · {f}" for f in faults) + "\n"
        f"latency ms: device {ms('latency_device_ms')} + algorithmic {ms('latency_algorithmic_ms')} + "
        f"compute {ms('latency_compute_ms')} + output {ms('latency_output_ms')} = {ms('latency_total_ms')}"
    )
