"""What a chart shows, decided without Textual or Rich: gaps, thinning, time and value ticks.

Times come in UTC (as the cache stores them) and are labelled in local time (or the ``tz``
given, for tests). A point whose value is None is a poll without the figure; a stretch with no
point at all longer than ``GAP_FACTOR`` sample intervals is a gap too. Either way the line stops
there: a missing sample is never drawn as 0, nor bridged by a line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo

from cache.text import safe_text

Point = tuple[datetime, float | None]
"""One sample of a series: its time (UTC) and its value, None where the figure is missing."""
Mark = tuple[datetime, str]
"""An event on the time axis (a missed block, a status change): its time and a short label."""

GAP_FACTOR = 2.5
"""A stretch longer than this many sample intervals is a gap: one missed sample is bridged,
two in a row are not."""
MARK_LABEL_MAX = 10
TIME_STEPS = [timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720)] + [
    timedelta(days=d) for d in (1, 2, 7, 14, 30, 91, 182, 365)
]
DAY = timedelta(days=1)


def sample_interval(times: Sequence[datetime]) -> timedelta | None:
    """The spacing of the samples where they are densest; None under two samples.

    The lower quartile of the steps, not their median: with a few samples far apart (a bundled
    sample two years before the live polls), the median is the long step itself, and the
    line would cross it.
    """
    steps = sorted((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False) if b > a)
    return timedelta(seconds=steps[len(steps) // 4]) if steps else None


def segments(
    points: Sequence[Point], interval: timedelta | None = None
) -> list[list[tuple[datetime, float]]]:
    """The runs of a series a line may join: split at missing values and at gaps.

    Args:
        points: the series, oldest first.
        interval: the expected sample spacing; by default the series' own (median) spacing.
    """
    present = [p for p in points if p[1] is not None and math.isfinite(p[1])]
    interval = interval or sample_interval([t for t, _ in present])
    longest = interval * GAP_FACTOR if interval else None
    runs: list[list[tuple[datetime, float]]] = []
    run: list[tuple[datetime, float]] = []
    for at, value in points:
        if value is None or not math.isfinite(value):
            if run:
                runs.append(run)
            run = []
            continue
        if run and longest is not None and at - run[-1][0] > longest:
            runs.append(run)
            run = []
        run.append((at, value))
    if run:
        runs.append(run)
    return runs


def bucket_run(
    run: Sequence[tuple[datetime, float]], start: datetime, end: datetime, buckets: int
) -> list[tuple[datetime, float]]:
    """One run's means per time bucket (``buckets`` across start to end).

    Each mean is placed at the mean time of its samples; a run is never split, so no gap is
    made or lost.
    """
    span = (end - start).total_seconds()
    if len(run) <= 1 or span <= 0 or buckets <= 0:
        return list(run)
    width = span / buckets
    out: list[tuple[datetime, float]] = []
    slot, times, values, count = None, 0.0, 0.0, 0
    for at, value in run:
        seconds = (at - start).total_seconds()
        index = int(seconds // width)
        if index != slot and count:
            out.append((start + timedelta(seconds=times / count), values / count))
            times, values, count = 0.0, 0.0, 0
        slot = index
        times += seconds
        values += value
        count += 1
    if count:
        out.append((start + timedelta(seconds=times / count), values / count))
    return out


def thin(points: Sequence[Point], start: datetime, end: datetime, buckets: int) -> list[Point]:
    """At most about ``buckets`` points: means per time bucket, the gaps kept as None points.

    Gaps are found on the samples as given, before any averaging, so thinning never joins two
    runs.
    """
    if len(points) <= buckets:
        return list(points)
    out: list[Point] = []
    for run in segments(points):
        if out:
            out.append((run[0][0], None))  # the gap between two runs
        out += bucket_run(run, start, end, buckets)
    return out


def window_label(span: timedelta, end: datetime, live: bool, tz: tzinfo | None = None) -> str:
    """The range for a title: "last 24 h" when live, "24 h to Tue 14:05" when travelling."""
    seconds = span.total_seconds()
    if seconds < 2 * 3600:
        length = f"{seconds / 60:.0f} min" if seconds < 3600 else "1 h"
    elif seconds <= 2 * 86400:
        length = f"{seconds / 3600:.0f} h"
    elif seconds <= 400 * 86400:
        length = f"{seconds / 86400:.0f} d"
    else:
        length = f"{seconds / (365.25 * 86400):.1f} years"
    if live:
        return f"last {length}"
    return f"{length} to {end.astimezone(tz).strftime('%a %d %b %H:%M')}"


def chart_title(label: str, unit: str, window: str) -> str:
    """What, in what unit, over which range: "GPU utilization, % — last 24 h"."""
    return f"{label}, {unit} — {window}" if unit else f"{label} — {window}"


def _tick_format(span: timedelta, step: timedelta) -> str:
    if span <= DAY + timedelta(minutes=1):
        return "%H:%M"
    if step < DAY:
        return "%a %H:%M"
    return "%a %d %b" if step < timedelta(days=28) else "%d %b %Y"


def time_ticks(
    start: datetime, end: datetime, width: int, tz: tzinfo | None = None
) -> list[tuple[datetime, str]]:
    """Ticks at round local times that fit ``width`` columns: HH:MM up to a day, then dates.

    Each label needs its own width plus two columns; the finest step whose labels fit wins.
    Steps of a day or more fall on local midnight.
    """
    span = end - start
    if span.total_seconds() <= 0 or width <= 0:
        return []
    for step in TIME_STEPS:
        fmt = _tick_format(span, step)
        label_width = len(start.astimezone(tz).strftime(fmt)) + 2
        if span / step * label_width <= width:
            break
    local = start.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = local - midnight
    first = midnight + step * math.ceil(elapsed / step) if step < DAY else midnight
    while first < local:
        first += step if step < DAY else DAY
    ticks = []
    at = first
    while at <= end:
        ticks.append((at, at.strftime(fmt)))
        at = at + step if step < DAY else (at + step).replace(hour=0, minute=0)
    return ticks


def value_range(values: Sequence[float], unit: str) -> tuple[float, float]:
    """The scale's ends: the data's range with a little room.

    A figure that is never negative starts from 0 when its range is near it (so the size of a
    change reads true); percentages stay within 0-100.
    """
    low, high = min(values), max(values)
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    else:
        pad = (high - low) * 0.05
        low, high = low - pad, high + pad
    if min(values) >= 0:
        low = max(low, 0.0)
        if low < (high - low) * 0.5:
            low = 0.0
    if unit == "%":
        low, high = max(low, 0.0), min(high, 100.0) if max(values) <= 100 else high
    return low, high


def value_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round values (1, 2, 2.5, 5 times a power of ten) between ``low`` and ``high``."""
    if high <= low or count < 2:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _decimals(step: float) -> int:
    """Enough decimals to tell two neighbouring ticks apart (2.5 needs one, 0.25 two)."""
    if step <= 0:
        return 0
    for decimals in range(7):
        scaled = step * 10**decimals
        if abs(scaled - round(scaled)) < 1e-6 * max(1.0, scaled):
            return decimals
    return 6


def _compact(value: float, step: float, top: float) -> str:
    """A number with K/M/B/T chosen by the scale's largest tick, so a scale reads one way."""
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if top >= limit:
            return f"{value / limit:,.{_decimals(step / limit)}f}{suffix}" if value else "0"
    return f"{value:,.{_decimals(step)}f}"


def format_value(value: float, unit: str, step: float = 0.0, top: float | None = None) -> str:
    """A value with its unit, as precise as the scale's step needs: 50%, 72°C, 300 W, $1.25.

    Args:
        value: the value.
        unit: "%", "°C", "W", "USD", or a count's noun (GPUs, devices: said in the title).
        step: the scale's step (0 for a value on its own).
        top: the scale's largest absolute value, which picks K, M or B for the whole scale.
    """
    top = max(abs(value), abs(top or 0.0))
    if unit == "%":
        return f"{value:.{_decimals(step)}f}%"
    if unit == "°C":
        return f"{value:.{_decimals(step)}f}°C"
    if unit == "USD":
        if top >= 1000:
            return "$" + _compact(value, step, top)
        decimals = 0 if step >= 1 or not value else max(2, _decimals(step))
        return f"${value:,.{decimals}f}"
    number = _compact(value, step, top)
    return f"{number} {unit}" if unit == "W" else number


def visible_marks(
    marks: Sequence[Mark], start: datetime, end: datetime, width: int
) -> list[tuple[datetime, str]]:
    """The marks within the range, their labels cut short.

    A label that would run into the previous one is dropped (its line stays): labels never
    overlap.
    """
    span = (end - start).total_seconds()
    inside = sorted((m for m in marks if start <= m[0] <= end), key=lambda m: m[0])
    out = []
    free_from = -1.0
    for at, label in inside:
        # the chart reads its drawing back as ANSI: a label must hold no escape of its own
        label = safe_text(label, max_len=64)
        short = label if len(label) <= MARK_LABEL_MAX else label[: MARK_LABEL_MAX - 1] + "…"
        column = (at - start).total_seconds() / span * width if span > 0 else 0.0
        if column >= free_from:
            out.append((at, short))
            free_from = column + len(short) + 1
        else:
            out.append((at, ""))
    return out
