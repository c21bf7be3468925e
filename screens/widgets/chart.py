"""A time chart with a local-time axis, a value scale with units, gaps and event marks.

Drawn by plotext (through textual-plotext's ``Plot``, a figure with no global state) as text;
what to draw (gaps, ticks, labels) is decided in ``chart_axis``. The screen hands plain data
down as ``Chart.data`` (a ``ChartData``, built from its cache read); the widget does no I/O and
has no timer: it draws again only when its data or its size changes.

``ChartPlot`` is the same drawing as a Rich renderable, for a chart inside another widget's
content (a Networks panel); it draws at the width it is given and keeps the result for that width.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text
from textual.app import RenderResult as WidgetRender
from textual.reactive import reactive
from textual.widget import Widget
from textual_plotext.plot import Plot

from screens.widgets.chart_axis import (
    Mark,
    Point,
    bucket_run,
    format_value,
    segments,
    time_ticks,
    value_range,
    value_ticks,
    visible_marks,
)

NO_SAMPLES = "no samples in this range"
MARKERS = [("braille", "⢕"), ("dot", "•"), ("x", "x"), ("+", "+")]
"""Each series its own marker, so series are told apart without colour (NO_COLOR)."""
COLORS = ["cyan", "orange", "magenta", "green"]
MARK_COLOR = "red"
MIN_PLOT_HEIGHT = 4
LEVEL_OFFSET = 0.15


@dataclass(frozen=True)
class Series:
    """One line of a chart: its name (for the legend) and its samples, oldest first."""

    label: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class ChartData:
    """Everything a chart draws: the time range, the unit, the series and the event marks."""

    start: datetime
    end: datetime
    unit: str
    """ "%", "°C", "W", "USD", or a count's noun; the scale's labels carry it where short."""
    series: tuple[Series, ...] = ()
    marks: tuple[Mark, ...] = ()
    """Events drawn as vertical lines with a short label (a missed block, a status change)."""
    levels: tuple[tuple[float, str], ...] = ()
    """Named values for a state series (1 "up", 0 "down"): the scale shows the names."""
    tz: tzinfo | None = None
    """The zone of the time labels; None is the local zone."""

    @property
    def empty(self) -> bool:
        """No sample with a value inside the range."""
        return not any(
            v is not None and self.start <= t <= self.end for s in self.series for t, v in s.points
        )


def series(label: str, points: Iterable[tuple[datetime, float | int | None]]) -> Series:
    """A series from (time, value) pairs; a value that is not a number becomes a gap."""
    return Series(
        label,
        tuple((t, float(v) if isinstance(v, int | float) else None) for t, v in points),
    )


def draw(data: ChartData, width: int, height: int) -> Text:
    """The chart as text, ``width`` by ``height`` cells (a legend line under it when needed)."""
    width = max(width, 20)
    if data.empty:
        return Text(NO_SAMPLES, style="dim", justify="center")
    legend = _legend(data) if len(data.series) > 1 else None
    plot_height = max(height - (1 if legend else 0), MIN_PLOT_HEIGHT)
    span = (data.end - data.start).total_seconds()
    plot = Plot()
    plot.theme("clear")  # the widget's own colours; the lines get theirs below
    plot.plotsize(width, plot_height)
    # plotext caps a figure at the terminal it detects; textual-plotext's widget sets the size
    # this way too (its issue 5)
    plot._set_size(width, plot_height)
    plot.xlim(0, span)
    values: list[float] = []
    for index, line in enumerate(data.series):
        # states of several series side by side: each a little below the one before, so two
        # series in the same state stay two lines
        offset = -LEVEL_OFFSET * index if data.levels else 0.0
        marker = MARKERS[index % len(MARKERS)][0]
        color = COLORS[index % len(COLORS)]
        inside = [p for p in line.points if data.start <= p[0] <= data.end]
        for whole in segments(inside):
            # one point per cell: plotext's cost grows with the points, braille lines join them
            run = bucket_run(whole, data.start, data.end, width)
            if data.levels:
                run = _steps(run)
            xs = [(t - data.start).total_seconds() for t, _ in run]
            ys = [v + offset for _, v in run]
            values += ys
            # each run is its own line: nothing joins two runs across a gap
            (plot.plot if len(run) > 1 else plot.scatter)(xs, ys, marker=marker, color=color)
    low, high = _scale(data, values)
    plot.ylim(low, high)
    # about one value label per two rows inside the frame (the frame and time labels take 3)
    rows = plot_height - 3
    ticks = _one_per_row(
        _levels_or_ticks(data, low, high, max(2, min(5, rows // 2 + 1))), low, high, rows
    )
    plot.yticks([t for t, _ in ticks], [label for _, label in ticks])
    x_ticks = time_ticks(data.start, data.end, width - 8, data.tz)
    # plotext places tick labels in the order of a set (it varies with the hash seed): it gets
    # blank labels, draws the tick marks, and the labels are written here, left to right
    plot.xticks([(t - data.start).total_seconds() for t, _ in x_ticks], [""] * len(x_ticks))
    for at, label in visible_marks(data.marks, data.start, data.end, width - 8):
        x = (at - data.start).total_seconds()
        plot.vline(x, color=MARK_COLOR)
        if label:
            plot.text(label, x, high, color=MARK_COLOR, alignment="left")
    drawn = plot.build().rstrip("\n").split("\n")
    text = Text.from_ansi("\n".join(drawn[:-1]), no_wrap=True)
    text.append("\n")
    text.append(_time_labels(Text.from_ansi(drawn[0]).plain, data, x_ticks, width))
    if legend:
        text.append("\n")
        text.append_text(legend)
    return text


def _scale(data: ChartData, values: list[float]) -> tuple[float, float]:
    if data.levels:
        named = [v for v, _ in data.levels]
        below = LEVEL_OFFSET * (len(data.series) - 1)
        return min(named) - 0.25 - below, max(named) + 0.25
    return value_range(values, data.unit)


def _one_per_row(
    ticks: list[tuple[float, str]], low: float, high: float, rows: int
) -> list[tuple[float, str]]:
    """At most one label per row (two on one row would leave the hash seed to pick one)."""
    kept: list[tuple[float, str]] = []
    taken: set[int] = set()
    for value, label in ticks:
        row = math.floor(0.5 + (rows - 1) * (value - low) / (high - low)) if high > low else 0
        if row not in taken:
            taken.add(row)
            kept.append((value, label))
    return kept


def _time_labels(top: str, data: ChartData, ticks: list[tuple[datetime, str]], width: int) -> str:
    """The time labels under the tick marks, centred on them, none overlapping another.

    The columns are plotext's (``get_matrix_data``): the canvas runs from after the top-left
    corner of the frame to its top-right corner.
    """
    first, last = top.find("┌") + 1, top.find("┐")
    if first <= 0 or last <= first:
        return ""
    bins, span = last - first, (data.end - data.start).total_seconds()
    row = [" "] * width
    free = 0
    for at, label in ticks:
        column = first + math.floor(0.5 + (bins - 1) * (at - data.start).total_seconds() / span)
        begin = min(max(column - len(label) // 2, free, 0), width - len(label))
        if begin < free:
            continue
        row[begin : begin + len(label)] = label
        free = begin + len(label) + 1
    return "".join(row).rstrip()


def _steps(run: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """A state holds until the next sample: each change drawn as a step, not a slope."""
    out = run[:1]
    for at, value in run[1:]:
        if value != out[-1][1]:
            out.append((at, out[-1][1]))
        out.append((at, value))
    return out


def _levels_or_ticks(
    data: ChartData, low: float, high: float, count: int
) -> list[tuple[float, str]]:
    if data.levels:
        return list(data.levels)
    ticks = value_ticks(low, high, count)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 0.0
    top = max(abs(t) for t in ticks)
    return [(t, format_value(t, data.unit, step, top)) for t in ticks]


def _legend(data: ChartData) -> Text:
    legend = Text(no_wrap=True, overflow="ellipsis")
    for index, line in enumerate(data.series):
        if index:
            legend.append("   ")
        legend.append(MARKERS[index % len(MARKERS)][1], style=COLORS[index % len(COLORS)])
        legend.append(f" {line.label}")
    return legend


class ChartPlot:
    """``draw`` as a Rich renderable: as wide as it is given, ``height`` lines high."""

    def __init__(self, data: ChartData, height: int) -> None:
        self.data = data
        self.height = height
        self._drawn: dict[int, Text] = {}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Draw once per width: a repaint of unchanged data costs nothing."""
        width = options.max_width
        if width not in self._drawn:
            self._drawn = {width: draw(self.data, width, self.height)}
        yield self._drawn[width]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        """Any width from 20 columns up."""
        return Measurement(20, options.max_width)


class Chart(Widget):
    """A time chart; set ``data`` to draw (None draws nothing, an empty range says so)."""

    DEFAULT_CSS = """
    Chart { height: 9; width: 1fr; }
    Chart.-empty { height: 1; }
    """

    data: reactive[ChartData | None] = reactive(None)
    """What to draw, set by the screen from its cache read."""

    _plot: ChartPlot | None = None
    """The drawing of ``data`` at the widget's height, kept across repaints."""

    def watch_data(self, data: ChartData | None) -> None:
        """One line for a range without samples, the full height for a plot."""
        self.set_class(data is not None and data.empty, "-empty")
        self._plot = None

    def render(self) -> WidgetRender:
        """The plot at the widget's size."""
        data = self.data
        if data is None:
            return ""
        height = self.content_size.height
        if self._plot is None or self._plot.height != height:
            self._plot = ChartPlot(data, height)
        return self._plot
