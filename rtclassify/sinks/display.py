"""Live terminal display (rich): one bar per tag with its on/off state, recent events, counters.

With several streams (``channels=``, ``listen --channels``) it shows a matrix
instead: one row per tag, one column per input channel, each cell a short bar
of the tag's level on that channel, bright when the tag is on.

The worker thread only stores the latest values (plain attribute and dict
writes); rich's own refresh thread draws them ``refresh_per_second`` times a
second in place (``rich.live.Live``), so the screen does not flicker and the
audio path never waits for the terminal.
"""

from __future__ import annotations

import collections
import time
from typing import Sequence

from .mapping import clip_unit

__all__ = ["LiveDisplay"]

_BAR = 28


class LiveDisplay:
    """A rich Live view of the tags.

    Parameters
    ----------
    labels : sequence of str
        The tags, in the order to show them.
    title : str
        First line (source, rate, outputs).
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
        self.recent: collections.deque = collections.deque(maxlen=recent)
        self.counters: dict = {}
        self.stream_time = 0.0
        self._live = None
        self._t0 = time.monotonic()

    # ---------------------------------------------------------------- sink protocol
    def open(self) -> None:
        if self._live is not None:
            return
        from rich.console import Console
        from rich.live import Live

        console = self._console or Console()
        self._console = console
        self._t0 = time.monotonic()
        self._live = Live(get_renderable=self.render, console=console, refresh_per_second=self._rate,
                          transient=False, redirect_stdout=False, redirect_stderr=False)
        self._live.start()

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

    def close(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            try:
                live.refresh()
                live.stop()
                if not live.console.is_terminal:
                    live.console.line()  # rich ends the final snapshot of a file or pipe without a newline
            except Exception:  # pragma: no cover - the terminal went away
                pass

    # ---------------------------------------------------------------- drawing
    def render(self):
        from rich.console import Group
        from rich.text import Text

        if self.channels is not None:
            table = self._matrix()
        else:
            table = self._bars()
        parts = [Text(self.title, style="bold"), table]
        # a copy in one C call: the worker adds and removes technique keys while this runs on rich's
        # refresh thread, and iterating the live dict would raise there and freeze the display
        technique = dict(self.technique)
        if technique:
            parts.append(Text("technique: " + "  ".join(f"{k} {v}" for k, v in technique.items())))
        ev = "  ".join(f"{t:6.2f}s {name} {p}".rstrip() for t, name, p in list(self.recent))
        parts.append(Text(f"events: {ev or '(none yet)'}", style="grey70"))
        parts.append(Text(f"t = {self.stream_time:.1f} s · " + format_counters(self.counters), style="grey62"))
        return Group(*parts)

    def _width(self) -> int:
        """The console's width now (it follows a resized terminal)."""
        return int(self._console.width) if self._console is not None else 80

    def _tag_width(self) -> int:
        return max([9] + [len(t) for t in self.labels])

    def _matrix(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        tag_w = self._tag_width()
        chans = self.channels
        widest = max(len(str(c)) for c in chans)
        avail = self._width() - tag_w  # each cell takes its width plus one column of padding
        cell = max(widest, min(5, avail // len(chans) - 1))
        shown = chans[:max(1, avail // (cell + 1))]
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="left", min_width=tag_w, no_wrap=True)
        for _ in shown:
            table.add_column(width=cell, no_wrap=True)
        table.add_row(Text("channel", style="grey50"), *(Text(f"{c:>{cell}}", style="grey50") for c in shown))
        for tag in self.labels:
            row = []
            any_on = False
            for c in shown:
                p = clip_unit(self.levels_by_channel[c].get(tag, 0.0))
                on = self.active_by_channel[c].get(tag, False)
                any_on = any_on or on
                filled = int(round(p * cell))
                bar = Text("█" * filled, style="bold green" if on else "cyan")
                bar.append("·" * (cell - filled), style="grey37")
                row.append(bar)
            table.add_row(Text(tag, style="bold" if any_on else ""), *row)
        if len(shown) == len(chans):
            return table
        return Group(table, Text(f"channels {', '.join(map(str, chans[len(shown):]))} not shown: the terminal is "
                                 f"too narrow", style="grey50"))

    def _bars(self):
        from rich.table import Table
        from rich.text import Text

        tag_w = self._tag_width()
        room = self._width() - tag_w - 1
        # value, on/off state and on count beside the bar, dropped from the right in a narrow terminal
        extras = [4, 3, 4]
        while extras and room - sum(w + 1 for w in extras) < 4:
            extras.pop()
        width = max(4, min(_BAR, room - sum(w + 1 for w in extras)))
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="left", min_width=tag_w, no_wrap=True)
        table.add_column(width=width, no_wrap=True)
        for w in extras:
            table.add_column(justify="right" if w == 4 else "left", width=w, no_wrap=True)
        for tag in self.labels:
            p = clip_unit(self.levels.get(tag, 0.0))
            on = self.active.get(tag, False)
            filled = int(round(p * width))
            bar = Text("█" * filled, style="bold green" if on else "cyan")
            bar.append("·" * (width - filled), style="grey37")
            cells = [f"{p:.2f}", Text("ON", style="bold green") if on else Text("--", style="grey50"),
                     Text(f"{self.on_counts.get(tag, 0)}x", style="grey50")]
            table.add_row(Text(tag, style="bold" if on else ""), bar, *cells[:len(extras)])
        return table


def format_counters(c: dict) -> str:
    """The counters as one or two short lines (what the display and ``listen`` print)."""
    if not c:
        return "counters: (starting)"

    def ms(key):
        v = c.get(key)
        return "-" if v is None else f"{v:.1f}"

    return (
        f"dropped {c.get('dropped_samples', 0)} samples · overflows {c.get('input_overflows', 0)} · "
        f"late hops {c.get('late_hops', 0)}/{c.get('hops', 0)} · compute {ms('compute_ms_mean')} ms/hop "
        f"(p99 {ms('compute_ms_p99')})\n"
        f"latency ms: device {ms('latency_device_ms')} + algorithmic {ms('latency_algorithmic_ms')} + "
        f"compute {ms('latency_compute_ms')} + output {ms('latency_output_ms')} = {ms('latency_total_ms')}"
    )
