"""One node: labels, last error, and charts of its figures over 1 h, 24 h or 7 d.

CPU, GPU utilization, temperature and power, read from the cache like every screen. For a node
the network reports on (a ``device_id`` or ``provider`` label), our up/down beside the network's
over the range (cache/network_status.py); its missed io.net blocks (cache/reward_misses.py) are
marked on every chart's time axis and summed up by cause.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from cache.fleet import node_row
from cache.network_status import (
    AGREES,
    LABELS,
    NETWORK_SOURCES,
    UNKNOWN,
    Limits,
    Timeline,
    classify,
    network_limit,
    status_timelines,
)
from cache.queries import NodeRow, PollInfo, latest_good_poll, node_history
from cache.reward_misses import NodeMisses, reward_misses
from cache.rewards import DeviceRow, RewardRow, latest_device, reward_rows
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
STATUS_LEVELS = ((1.0, "up"), (0.0, "down"))
POLL_SOURCES = {"exporter": "fleet", "promql": "promql", "local": "local"}
"""The poll source of each way a node is seen (as the Fleet reads it), for its stale time."""


class NodeOptions(NamedTuple):
    """The read's choices: which node, the chart range, and when each status reading is too old.

    The limits are the Fleet's (twice the node source's interval; the network source's
    :func:`network_limit`), so the status heading says what the Fleet's Net column says.
    """

    node: str
    source_kind: str
    range_index: int
    ours_s: float = Limits.ours_s
    network_s: tuple[tuple[str, float], ...] = ()
    """(poll source, seconds) for each network source."""


@dataclass(frozen=True)
class StatusView:
    """Our up/down and the network's over the range, and what they say now."""

    network: str
    """``io.net`` or ``akash``."""
    ours: tuple[Point, ...]
    """1 up, 0 down at each of our polls."""
    theirs: tuple[Point, ...]
    """1 up, 0 down, None (nothing readable) at each of the network's readings."""
    ours_last: tuple[bool, datetime] | None
    """Our newest reading in the range."""
    theirs_last: tuple[bool, datetime] | None
    """The network's newest readable status in the range."""
    state: str
    """:func:`cache.network_status.classify` of both newest readings at the range's end."""


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
    """The node's missed io.net blocks in the range: (block start, short cause)."""
    misses: NodeMisses | None = None
    """The missed blocks summed up by cause; None when the node has no block in the range."""
    status: StatusView | None = None
    """None when the network reports nothing on the node (no device id or provider label)."""


def _points(timeline: Timeline) -> tuple[Point, ...]:
    return tuple((at, None if up is None else float(up)) for at, up in timeline)


def _newest(timeline: Timeline) -> tuple[bool, datetime] | None:
    return next(((up, at) for at, up in reversed(timeline) if up is not None), None)


def status_view(
    conn: sqlite3.Connection,
    node: str,
    options: NodeOptions,
    start: datetime,
    now: datetime,
    at: datetime | None,
) -> StatusView | None:
    """Both views of the node over ``[start, now]`` as of ``at``; None without a network label."""
    lines = status_timelines(conn, node, start, now, at=at, source_kind=options.source_kind)
    if lines.network_name is None:
        return None
    ours, theirs = _newest(lines.ours), _newest(lines.network)
    source = next((s for s, (n, _) in NETWORK_SOURCES.items() if n == lines.network_name), "")
    limits = Limits(options.ours_s, dict(options.network_s).get(source, Limits.network_s))
    state = classify(
        ours[0] if ours else None,
        (now - ours[1]).total_seconds() if ours else None,
        theirs[0] if theirs else None,
        (now - theirs[1]).total_seconds() if theirs else None,
        limits,
    )
    return StatusView(
        lines.network_name, _points(lines.ours), _points(lines.network), ours, theirs, state
    )


def misses_line(misses: NodeMisses | None, span: str) -> Text:
    """The range's missed blocks by io.net's cause, then the cause our history shows most."""
    if misses is None or not misses.missed:
        return Text("no missed blocks in this range", style="dim")
    count = misses.missed
    out = Text()
    out.append(f"{count} missed block{'' if count == 1 else 's'} in {span}: ", style="bold")
    # causes come from stored statuses: untrusted text
    out.append(", ".join(f"{safe_text(cause, 40)} ×{n}" for cause, n in misses.causes.items()))
    out.append(f"  ·  {misses.summary}", style="dim")
    return out


def _amount(value: object, token: object = None, private: bool = False) -> str:
    if not isinstance(value, int | float):
        return "—"
    shown = f" {safe_text(str(token), 20)}" if token else ""  # from the cache: untrusted
    return (HIDDEN if private else f"{value:,.2f}") + shown


class NodeScreen(CacheScreen[NodeData, NodeOptions]):
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
            yield Static(id="chart-title-status", classes="section-title")
            yield Chart(id="chart-status")
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

    def read_options(self) -> NodeOptions:
        """The node, the chart range and the Fleet's limits for the status heading."""
        app = host(self)
        return NodeOptions(
            self.node_name,
            self.source_kind,
            self.range_index,
            2 * app.source_interval(POLL_SOURCES.get(self.source_kind, "fleet")),
            tuple((s, network_limit(app.source_interval(s))) for s in NETWORK_SOURCES),
        )

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[NodeOptions]
    ) -> tuple[NodeData, PollInfo | None]:
        """The node's samples, missed blocks and status timelines over the chosen range."""
        name, kind, range_index = ctx.options[:3]
        since = ctx.now - RANGES[range_index][1]
        node = node_row(conn, name, kind, ctx.at)
        history = node_history(
            conn, name, kind, since, at=ctx.at, fields=tuple(f for f, _, _ in CHARTS)
        )
        figures = {f: figure_history(history, f, since, ctx.now) for f, _, _ in CHARTS}
        device = None
        if node is not None:
            labelled = node.labels.get("device_id")
            device = latest_device(conn, "io.net", labelled, node.node, ctx.at)
        rewards = []
        if device is not None:
            rewards = reward_rows(
                conn, at=ctx.now, since=since, device=(device.network, device.device_id)
            )
        marks: tuple[Mark, ...] = ()
        misses = status = None
        if node is not None:
            # one node's blocks (the rewards_node_at index); as stored by T when travelling
            found = reward_misses(conn, since, ctx.now, node=name, at=ctx.at)
            marks = tuple((m.at, m.mark) for m in found.misses)
            misses = found.nodes.get(name)
            if any(node.labels.get(label) for label in LABELS):  # else no network side to draw
                status = status_view(conn, name, ctx.options, since, ctx.now, ctx.at)
        data = NodeData(
            node,
            figures,
            device,
            rewards,
            since,
            ctx.now,
            ctx.at is None,
            marks,
            misses,
            status,
        )
        return data, latest_good_poll(conn, self.SOURCES, ctx.at)

    def render_data(self, data: NodeData | None) -> None:
        """Title, labels and charts; a figure with fewer than two points is said, not drawn."""
        if data is None:
            now = host(self).now()
            data = NodeData(None, {}, None, [], now, now, True)
        node = self.node = data.node
        self._render_status(data)
        if node is None:
            self.query_one("#node-title", Static).update(
                Text.assemble(text(self.node_name, "bold", 80), "  no sample stored")
            )
            return
        self._render_ionet(data, node)
        title = Text.assemble(text(node.node, "bold", 80), f"  ({node.source_kind})  ")
        seen = (data.end - node.fetched_at).total_seconds()
        if seen > self.read_options().ours_s:  # as the Fleet says it: the sample is too old
            title.append("stale", style="bold yellow")
            title.append(f" (last sample {'up' if node.up else 'down'}, {age(seen)} ago)")
        else:
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

    def _render_status(self, data: NodeData) -> None:
        """Ours and the network's up/down side by side, headed by what each says now."""
        chart = self.query_one("#chart-status", Chart)
        heading = self.query_one("#chart-title-status", Static)
        view = data.status
        chart.display = heading.display = view is not None
        if view is None:
            return
        window = window_label(data.end - data.start, data.end, data.live)
        out = Text(chart_title(f"Status: ours vs {view.network}", "", window), style="bold")
        out.append("   now: ")
        for side, last in (("ours", view.ours_last), (view.network, view.theirs_last)):
            if last is None:
                none = "no sample in range" if side == "ours" else "no status stored"
                out.append(f"{'ours' if side == 'ours' else 'network'}: {none}", style="dim")
            else:
                up, at = last
                out.append(f"{side} ")
                out.append("up" if up else "down", style="green" if up else "bold red")
                out.append(f" {age((data.end - at).total_seconds())} ago", style="dim")
            out.append("  ·  " if side == "ours" else "  →  ")
        style = {AGREES: "green", UNKNOWN: "dim"}.get(view.state, "bold red")
        out.append(view.state, style=style)
        heading.update(out)
        chart.data = ChartData(
            data.start,
            data.end,
            "",
            (Series("ours", view.ours), Series(view.network, view.theirs)),
            data.marks,
            STATUS_LEVELS,
        )

    def _render_ionet(self, data: NodeData, node: NodeRow) -> None:
        """io.net status, earnings and the rewards of the chart range, when the node has any."""
        box = self.query_one("#node-ionet", Static)
        chart = self.query_one("#chart-rewards", Chart)
        heading = self.query_one("#chart-title-rewards", Static)
        device = data.device
        private = host(self).private  # screen sharing: no earning, not even its chart
        box.display = device is not None or "device_id" in node.labels
        chart.display = heading.display = bool(data.rewards) and not private
        label = RANGES[self.range_index][0]
        if device is None:
            out = Text("io.net: no device status stored yet", style="dim")
            if data.misses is not None and data.misses.missed:
                out.append("\n")
                out.append_text(misses_line(data.misses, label))
            box.update(out)
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
        out.append("\n")
        out.append_text(misses_line(data.misses, label))  # counts, not amounts: private too
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
