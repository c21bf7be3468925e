"""Networks: a panel per public DePIN network (devices, GPUs, utilization, its own chart).

Each figure is the network's last good value with its own age: one failing endpoint leaves the
other figures current, and the failing ones show how old they are. A figure a network does not
publish is "—", never 0.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.widgets import Static

from cache.queries import (
    MetricValue,
    PollInfo,
    latest_good_poll,
    latest_metrics,
    metric_history,
)
from screens.base import CacheScreen, ReadContext
from screens.gpu_models import GpuModelsScreen
from screens.host import host
from screens.render import MISSING, age, text
from screens.widgets.chart import ChartData, ChartPlot, series
from screens.widgets.chart_axis import chart_title, window_label
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine

# network label in the cache -> the source that polls it
NETWORKS: dict[str, str] = {
    "io.net": "ionet",
    "akash": "akash",
    "filecoin": "filecoin",
    "helium": "helium",
}
NETWORK_SOURCES = tuple(NETWORKS.values())
CORE_ROWS = ["devices_total", "gpus_total", "gpus_active", "gpu_utilization_pct"]
LABELS = {
    "devices_total": "Devices",
    "devices_active": "Devices active",
    "gpus_total": "GPUs",
    "gpus_active": "GPUs active",
    "gpus_verified": "GPUs verified",
    "gpu_utilization_pct": "GPU utilization",
    "cpus_total": "CPUs",
    "cpus_active": "CPUs active",
    "clusters_running": "Clusters running",
    "providers_active": "Providers active",
    "leases_active": "Leases active",
    "hotspots_total": "Hotspots",
    "hotspots_iot_total": "Hotspots IoT",
    "hotspots_mobile_total": "Hotspots mobile",
    "miners_active": "Miners active",
    "blocks_total": "Blocks",
    "block_emission": "Last block emission",
    "block_workers": "Last block workers",
    "block_gpus_verified": "Last block GPUs verified",
    "block_cpus_verified": "Last block CPUs verified",
    "compute_hours_total": "Compute hours",
    "earnings_total": "Earnings total",
    "gpus_allocatable": "GPUs allocatable",
    "gpus_allocated": "GPUs allocated",
    "memory_active_bytes": "Memory active",
    "memory_total_bytes": "Memory",
    "storage_active_bytes": "Storage active",
    "storage_total_bytes": "Storage",
    "height": "Chain height",
    "power_qa_bytes": "Power (QA)",
    "power_raw_bytes": "Power (raw)",
    "price_usd": "Price",
    "spend_daily_usd": "Spend 24h",
    "spend_daily_akt": "Spend 24h (AKT)",
}
SHORT = {
    "gpu_utilization_pct": "util",
    "gpus_active": "GPUs",
    "devices_active": "devices",
    "hotspots_iot_total": "IoT",
    "miners_active": "miners",
}
CHART_WINDOW = timedelta(hours=24)
CHART_HEIGHT = 7
CHART_METRICS = (
    "gpu_utilization_pct",
    "gpus_active",
    "devices_active",
    "hotspots_iot_total",
    "miners_active",
)
"""The figure each network's chart draws: the first of these it publishes."""
GAUGE_WIDTH = 12


@dataclass(frozen=True)
class NetworkView:
    """One network's latest figures and its utilization (or GPU count) series."""

    network: str
    metrics: dict[str, MetricValue]
    series_metric: str | None
    series: list[tuple[datetime, float]]
    start: datetime
    end: datetime
    live: bool


def gauge(pct: float) -> Text:
    """A text gauge: ████░░░░ 62.3%; amber above 85 %, as capacity runs out."""
    filled = round(max(0.0, min(pct, 100.0)) / 100 * GAUGE_WIDTH)
    style = "yellow" if pct >= 85 else "green"
    return Text.assemble(
        ("█" * filled, style), ("░" * (GAUGE_WIDTH - filled), "dim"), f" {pct:.1f}%"
    )


def format_value(m: MetricValue) -> str:
    """Counts with separators; bytes, USD and percentages readably."""
    if m.unit == "%":
        return f"{m.value:.1f}%"
    if m.unit == "bytes":
        for limit, suffix in (
            (1 << 60, "EiB"),
            (1 << 50, "PiB"),
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
        ):
            if m.value >= limit:
                return f"{m.value / limit:,.1f} {suffix}"
        return f"{m.value:,.0f} B"
    if m.unit == "USD":
        return f"${m.value:,.2f}"
    if m.value.is_integer():
        suffix = "" if m.unit in ("", "count") else f" {m.unit}"
        return f"{m.value:,.0f}{suffix}"
    return f"{m.value:,.2f}" + ("" if m.unit in ("", "count") else f" {m.unit}")


class NetworkPanel(Static, can_focus=True):
    """One network's figures; focusable, Enter opens its GPU models."""

    DEFAULT_CSS = """
    NetworkPanel { height: auto; border: round $panel-lighten-2; padding: 0 1; }
    NetworkPanel:focus { border: round $accent; }
    """

    def __init__(self, network: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.network = network
        self.border_title = network

    def show(self, view: NetworkView | None, now: datetime, stale_after: float) -> None:
        """Render the figures; each line's age when it is older than the stale limit."""
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(ratio=3)
        grid.add_column(ratio=3, justify="right")
        grid.add_column(ratio=2, justify="right")
        metrics = view.metrics if view else {}
        names = CORE_ROWS + sorted(k for k in metrics if k not in CORE_ROWS)
        for name in names:
            m = metrics.get(name)
            label = LABELS.get(name, name.replace("_", " "))
            if m is None:
                grid.add_row(Text(label), Text(MISSING, style="dim"), Text(""))
                continue
            value: Text = gauge(m.value) if name == "gpu_utilization_pct" else text(format_value(m))
            seconds = (now - m.fetched_at).total_seconds()
            when = Text(age(seconds), style="bold yellow" if seconds > stale_after else "dim")
            grid.add_row(text(label, max_len=40), value, when)
        self.update(Group(grid, *self._chart(view)) if view else grid)

    @staticmethod
    def _chart(view: NetworkView) -> list[Text | ChartPlot]:
        """The title (figure, unit, range) and the chart of the network's chosen figure."""
        window = window_label(view.end - view.start, view.end, view.live)
        metric = view.series_metric
        if metric is None:
            return [Text(f"{window}: no figure to chart", style="dim")]
        unit = view.metrics[metric].unit
        unit = unit if unit in ("%", "USD") else ""  # a count: the figure's name says of what
        label = LABELS.get(metric, metric.replace("_", " "))
        data = ChartData(view.start, view.end, unit, (series(label, view.series),))
        return [Text(chart_title(label, unit, window), style="bold"), ChartPlot(data, CHART_HEIGHT)]


class NetworksScreen(CacheScreen[dict[str, NetworkView], None]):
    """All public networks side by side."""

    SOURCES = NETWORK_SOURCES
    AUTO_FOCUS = "NetworkPanel"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding(
            "enter",
            "gpu_models",
            "GPU models",
            id="networks.gpu_models",
            tooltip="GPU models on offer in the focused network",
        ),
    ]

    def compose(self) -> ComposeResult:
        """Nav, a grid of panels, status line, footer."""
        yield NavBar("networks")
        with VerticalScroll(id="networks-body"):
            yield Static(id="networks-title", classes="screen-title")
            with Grid(id="networks-grid"):
                for network in NETWORKS:
                    yield NetworkPanel(network, id=f"panel-{NETWORKS[network]}")
        yield StatusLine()
        yield KeysFooter()

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[None]
    ) -> tuple[dict[str, NetworkView], PollInfo | None]:
        """Latest figures per network and a 24 h series for each chart."""
        by_network: dict[str, dict[str, MetricValue]] = {}
        for m in latest_metrics(conn, ctx.at):
            by_network.setdefault(m.network, {})[m.metric] = m
        since = ctx.now - CHART_WINDOW
        views = {}
        for network in NETWORKS:
            metrics = by_network.get(network, {})
            chosen = next((k for k in CHART_METRICS if k in metrics), None)
            history = metric_history(conn, network, chosen, since, ctx.at) if chosen else []
            views[network] = NetworkView(
                network, metrics, chosen, history, since, ctx.now, ctx.at is None
            )
        return views, latest_good_poll(conn, NETWORK_SOURCES, ctx.at)

    def render_data(self, data: Any) -> None:
        """Fill each panel."""
        views: dict[str, NetworkView] = data or {}
        app = host(self)
        now = app.now()
        for network, source in NETWORKS.items():
            panel = self.query_one(f"#panel-{source}", NetworkPanel)
            panel.show(views.get(network), now, 2 * app.source_interval(source))
        known = sum(1 for v in views.values() if v.metrics)
        title = Text.assemble(
            ("Public DePIN networks", "bold"),
            f"  {known} of {len(NETWORKS)} with data",
            ("  ·  Enter: GPU models of the focused network", "dim"),
        )
        self.query_one("#networks-title", Static).update(title)

    def action_gpu_models(self) -> None:
        """Open the GPU-model table of the focused network (or of all)."""
        focused = self.focused
        network = focused.network if isinstance(focused, NetworkPanel) else None
        self.app.push_screen(GpuModelsScreen(network))
