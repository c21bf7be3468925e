"""One node: labels, last error, and charts of its figures over 1 h, 24 h or 7 d.

CPU, GPU utilization, temperature and power, read from the cache like every screen.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from cache.fleet import node_row
from cache.queries import NodeRow, PollInfo, latest_good_poll, node_history
from cache.rewards import DeviceRow, RewardRow, latest_devices, reward_rows
from cache.text import safe_text
from screens.base import CacheScreen, ReadContext
from screens.host import host
from screens.render import age, local_time, text
from screens.table_export import HIDDEN
from screens.widgets.chart import Chart, ChartData, Series, series
from screens.widgets.chart_axis import Mark, Point, chart_title, thin, window_label
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine

RANGES = [("1 h", timedelta(hours=1)), ("24 h", timedelta(hours=24)), ("7 d", timedelta(days=7))]
CHARTS = [
    ("cpu_pct", "CPU", "%"),
    ("gpu_util_pct", "GPU utilization", "%"),
    ("gpu_temp_c", "GPU temperature", "°C"),
    ("gpu_power_w", "GPU power", "W"),
]
MAX_POINTS = 600  # plenty for a terminal-wide chart; keeps drawing cheap on 7 d of samples


@dataclass(frozen=True)
class FigureHistory:
    """One figure over the range: the chart's points (thinned, gaps kept) and its figures."""

    points: tuple[Point, ...]
    count: int
    """Samples with a value in the range (before thinning)."""
    last: float | None
    low: float | None
    high: float | None


def figure_history(
    history: list[tuple[datetime, dict[str, float | int | None]]],
    field: str,
    start: datetime,
    end: datetime,
) -> FigureHistory:
    """A field's points from the node's samples; a sample without the field is a gap."""
    points: list[Point] = [
        (at, float(v) if isinstance(v := values.get(field), int | float) else None)
        for at, values in history
    ]
    present = [v for _, v in points if v is not None]
    return FigureHistory(
        tuple(thin(points, start, end, MAX_POINTS)),
        len(present),
        present[-1] if present else None,
        min(present) if present else None,
        max(present) if present else None,
    )


@dataclass(frozen=True)
class NodeData:
    """What the Node screen shows: each figure over the range, io.net status and rewards."""

    node: NodeRow | None
    """The node's latest sample in full; None when the cache no longer holds it."""
    figures: dict[str, FigureHistory]
    device: DeviceRow | None
    rewards: list[RewardRow]
    start: datetime
    end: datetime
    live: bool
    """False when time travelling: the titles say up to when."""
    marks: tuple[Mark, ...] = ()
    """Events to mark on the charts' time axis (none are read yet)."""


def _device_for(node: NodeRow, devices: list[DeviceRow]) -> DeviceRow | None:
    """The io.net device of this node: by its ``device_id`` label, else by node name."""
    device_id = node.labels.get("device_id")
    for device in devices:
        if device_id and device.device_id == device_id:
            return device
    for device in devices:
        if device.get("node") == node.node:
            return device
    return None


def _amount(value: object, token: object = None, private: bool = False) -> str:
    if not isinstance(value, int | float):
        return "—"
    shown = f" {safe_text(str(token), 20)}" if token else ""  # from the cache: untrusted
    return (HIDDEN if private else f"{value:,.2f}") + shown


class NodeScreen(CacheScreen[NodeData, tuple[str, str, int]]):
    """Pushed from Fleet with Enter; ``]`` and ``[`` change the range; Escape goes back."""

    SOURCES = ("fleet", "promql", "local")
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", id="node.back", tooltip="Back to the fleet"),
        # not t: t is time travel everywhere
        Binding(
            "right_square_bracket",
            "next_range(1)",
            "Range",
            id="node.range_next",
            tooltip="Longer chart range: 1 h, 24 h, 7 d",
        ),
        Binding(
            "left_square_bracket",
            "next_range(-1)",
            "Shorter",
            show=False,
            id="node.range_previous",
            tooltip="Shorter chart range",
        ),
    ]

    def __init__(self, node: str, source_kind: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node_name = node
        self.source_kind = source_kind
        self.node: NodeRow | None = None
        """Read with the charts, so opening a node out of 100,000 reads only that one."""
        self.range_index = 1

    def compose(self) -> ComposeResult:
        """Title, labels, one chart per figure."""
        yield NavBar("fleet")
        with VerticalScroll(id="node-body"):
            yield Static(id="node-title", classes="screen-title")
            yield Static(id="node-labels", classes="dim")
            yield Static(id="node-ionet")
            yield Static(id="chart-title-rewards", classes="section-title")
            yield Chart(id="chart-rewards")
            for field, _, _ in CHARTS:
                yield Static(id=f"chart-title-{field}", classes="section-title")
                yield Chart(id=f"chart-{field}")
        yield StatusLine()
        yield KeysFooter()

    def action_back(self) -> None:
        """Back to the fleet."""
        self.dismiss()

    def action_next_range(self, step: int = 1) -> None:
        """1 h → 24 h → 7 d → 1 h (or back)."""
        self.range_index = (self.range_index + step) % len(RANGES)
        self.reload()

    def read_options(self) -> tuple[str, str, int]:
        """(node, source kind, chart range index)."""
        return self.node_name, self.source_kind, self.range_index

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[tuple[str, str, int]]
    ) -> tuple[NodeData, PollInfo | None]:
        """The node's samples over the chosen range."""
        name, kind, range_index = ctx.options
        since = ctx.now - RANGES[range_index][1]
        node = node_row(conn, name, kind, ctx.at)
        history = node_history(
            conn, name, kind, since, at=ctx.at, fields=tuple(f for f, _, _ in CHARTS)
        )
        figures = {f: figure_history(history, f, since, ctx.now) for f, _, _ in CHARTS}
        device = _device_for(node, latest_devices(conn, ctx.at)) if node else None
        rewards = []
        if device is not None:
            rewards = [
                r
                for r in reward_rows(conn, at=ctx.now, since=since)
                if r.device_id == device.device_id
            ]
        data = NodeData(node, figures, device, rewards, since, ctx.now, ctx.at is None)
        return data, latest_good_poll(conn, self.SOURCES, ctx.at)

    def render_data(self, data: NodeData | None) -> None:
        """Title, labels and charts; a figure with fewer than two points is said, not drawn."""
        if data is None:
            now = host(self).now()
            data = NodeData(None, {}, None, [], now, now, True)
        node = self.node = data.node
        if node is None:
            self.query_one("#node-title", Static).update(
                Text.assemble(text(self.node_name, "bold", 80), "  no sample stored")
            )
            return
        self._render_ionet(data, node)
        title = Text.assemble(text(node.node, "bold", 80), f"  ({node.source_kind})  ")
        title.append("up" if node.up else "down", style="green" if node.up else "bold red")
        title.append(f"  ·  range {RANGES[self.range_index][0]} (] [ to change)", style="dim")
        self.query_one("#node-title", Static).update(title)
        labels = Text()
        for key, value in sorted(node.labels.items()):
            labels.append_text(text(key, max_len=60))
            labels.append("=")
            labels.append_text(text(value))
            labels.append("  ")
        if node.error:
            labels.append("last error: ", style="bold red")
            labels.append_text(text(node.error, max_len=300))
        self.query_one("#node-labels", Static).update(labels or Text("no labels"))
        window = window_label(data.end - data.start, data.end, data.live)
        for field, label, unit in CHARTS:
            figure = data.figures.get(field) or FigureHistory((), 0, None, None, None)
            self.query_one(f"#chart-{field}", Chart).data = ChartData(
                data.start, data.end, unit, (Series(label, figure.points),), data.marks
            )
            heading = Text(chart_title(label, unit, window), style="bold")
            if figure.count >= 2:
                heading.append(
                    f"   last {figure.last:,.1f} {unit}   min {figure.low:,.1f}   "
                    f"max {figure.high:,.1f}   ({figure.count:,} samples)",
                    style="",
                )
            elif figure.last is not None:
                heading.append(f"   {figure.last:,.1f} {unit} (one sample: no trend yet)")
            else:
                heading.append("   —  (not reported by this node)", style="dim")
            self.query_one(f"#chart-title-{field}", Static).update(heading)

    def _render_ionet(self, data: NodeData, node: NodeRow) -> None:
        """io.net status, earnings and the rewards of the chart range, when the node has any."""
        box = self.query_one("#node-ionet", Static)
        chart = self.query_one("#chart-rewards", Chart)
        heading = self.query_one("#chart-title-rewards", Static)
        device = data.device
        private = host(self).private  # screen sharing: no earning, not even its chart
        box.display = device is not None or "device_id" in node.labels
        chart.display = heading.display = bool(data.rewards) and not private
        if device is None:
            box.update(Text("io.net: no device status stored yet", style="dim"))
            return
        v = device.get
        out = Text()
        out.append("io.net ", style="bold")
        out.append_text(text(device.device_id, max_len=40))
        status = v("status")
        style = {"up": "green", "down": "bold red"}.get(str(status), "")
        out.append("  ")
        out.append_text(text(status, style) if status else Text("status —", style="dim"))
        uptime = v("uptime_pct")
        out.append(f"  uptime {uptime:.0f}%" if isinstance(uptime, int | float) else "  uptime —")
        out.append("  tier ")
        out.append_text(text(v("connectivity_tier") or "—", max_len=30))
        if v("hardware"):
            out.append("  ")
            out.append_text(text(v("hardware"), max_len=40))
            if isinstance(v("hardware_quantity"), int):
                out.append(f" ×{v('hardware_quantity')}")
        if v("location"):
            out.append("  ")
            out.append_text(text(v("location"), max_len=40))
        out.append("\n")
        out.append(f"earned {_amount(v('earnings_total'), v('earnings_token'), private)} to date")
        out.append(f"  slashed {_amount(v('slashed_total'), private=private)}")
        out.append(f"  block rewards 7 d {_amount(v('block_rewards_7d'), 'IO', private)}")
        counts = [v(k) for k in ("blocks_earned_7d", "blocks_failed_7d", "blocks_missed_7d")]
        if all(isinstance(c, int) for c in counts):
            out.append(f" ({counts[0]} earned, {counts[1]} failed, {counts[2]} missed)")
        if isinstance(v("jobs_running"), int):
            out.append(f"  {v('jobs_running')} job{'' if v('jobs_running') == 1 else 's'} running")
        out.append("\n")
        label = RANGES[self.range_index][0]
        if data.rewards:
            tokens = {r.token for r in data.rewards}
            total = sum(r.amount for r in data.rewards)
            paid = sum(1 for r in data.rewards if r.amount > 0)
            last = data.rewards[-1]
            out.append(f"rewards over {label}: ", style="bold")
            shown, last_shown = (
                (HIDDEN, HIDDEN) if private else (f"{total:,.4f}", f"{last.amount:,.4f}")
            )
            units = safe_text("/".join(sorted(tokens)), 40)
            out.append(f"{shown} {units} in {paid} of {len(data.rewards)} ")
            out.append(
                f"blocks; last {local_time(last.at)} {last_shown} {safe_text(last.token, 20)}"
            )
        else:
            out.append(f"rewards over {label}: none stored", style="dim")
        fetched = age((host(self).now() - device.fetched_at).total_seconds())
        out.append(f"  ·  fetched {fetched} ago", style="dim")
        if v("error"):
            out.append("\nlast errors: ", style="bold yellow")
            out.append_text(text(v("error"), max_len=300))
        box.update(out)
        if chart.display:
            units = safe_text("/".join(sorted({r.token for r in data.rewards})), 40)
            window = window_label(data.end - data.start, data.end, data.live)
            heading.update(Text(chart_title("Block rewards", units, window), style="bold"))
            chart.data = ChartData(
                data.start,
                data.end,
                units,
                (series("rewards", ((r.at, r.amount) for r in data.rewards)),),
                data.marks,
            )
