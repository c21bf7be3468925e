"""The one place that turns data into Rich ``Text``: sanitised, never parsed as markup.

Numbers that are missing render as "—" (dim), never as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text

from cache.text import safe_text

MISSING = "—"
_BLOCKS = "▁▂▃▄▅▆▇█"


def missing() -> Text:
    """The marker for a value a source did not publish."""
    return Text(MISSING, style="dim")


def text(value: object, style: str = "", max_len: int = 256) -> Text:
    """Untrusted text as a literal ``Text``: sanitised, no markup, no emoji codes."""
    if value is None or value == "":
        return missing()
    return Text(safe_text(value, max_len), style=style, no_wrap=True, overflow="ellipsis")


def _compact(value: float) -> str:
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.2f}{suffix}"
    return f"{value:.2f}"


def usd_compact(value: float | None) -> str:
    """Large amounts: $26.39B, $888.36M."""
    return MISSING if value is None else "$" + _compact(value)


def usd_price(value: float | None) -> str:
    """Prices keep their precision where it matters: $70,187 · $6.85 · $0.07100."""
    if value is None:
        return MISSING
    if abs(value) >= 1000:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4g}" if value else "$0"


def money(value: float | None, *, compact: bool = True) -> Text:
    """A right-aligned USD cell."""
    if value is None:
        return Text(MISSING, style="dim", justify="right")
    return Text(usd_compact(value) if compact else usd_price(value), justify="right")


def pct(value: float | None) -> Text:
    """A signed percentage, green up, red down."""
    if value is None:
        return Text(MISSING, style="dim", justify="right")
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(f"{value:+.1f}%", style=style, justify="right")


def integer(value: int | None) -> Text:
    """A right-aligned count with thousands separators."""
    if value is None:
        return Text(MISSING, style="dim", justify="right")
    return Text(f"{value:,}", justify="right")


def sparkline(values: Sequence[float | None], width: int = 14) -> Text:
    """A one-line chart from block characters; gaps are skipped, nothing to draw is "—"."""
    points = [v for v in values if v is not None]
    if len(points) < 2:
        return missing()
    if len(points) > width:  # resample: mean of each bucket
        step = len(points) / width
        points = [
            sum(bucket) / len(bucket)
            for i in range(width)
            if (bucket := points[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)])
        ]
    low, high = min(points), max(points)
    span = high - low or 1.0
    chars = "".join(_BLOCKS[min(7, int((p - low) / span * 7.999))] for p in points)
    return Text(chars, style="green" if points[-1] >= points[0] else "red")


def age(seconds: float) -> str:
    """A short human age: 12 s, 5 min, 3 h, 2 d."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def local_time(moment: datetime, with_date: bool = False) -> str:
    """UTC in storage, local in display."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M:%S")
