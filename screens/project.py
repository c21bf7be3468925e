"""One project: its latest figures and its price history from the cache."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from cache.device_growth import DeviceGrowth, device_growth
from cache.queries import CoinRow, PollInfo, coin_history, latest_rankings
from screens.base import CacheScreen, ReadContext
from screens.render import integer, local_time, money, pct, text, usd_price
from screens.widgets.chart import Chart, ChartData, series
from screens.widgets.chart_axis import chart_title, window_label
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine

SPARK_STEP = timedelta(hours=1)
"""CoinGecko's 7-day series: about 168 hourly prices, oldest first, without times."""


@dataclass(frozen=True)
class ProjectData:
    """The project in the latest snapshot, its stored history, and the moment shown."""

    coin: CoinRow
    history: list[tuple[datetime, float | None, float | None]]
    devices: DeviceGrowth | None
    snapshot_at: datetime | None
    """When the snapshot's data is from; None when no snapshot holds the project."""
    now: datetime
    live: bool


class ProjectScreen(CacheScreen[ProjectData, None]):
    """Pushed from Rankings with Enter; Escape goes back."""

    SOURCES = ("coingecko",)
    BINDINGS = [
        Binding(
            "escape,backspace", "back", "Back", id="project.back", tooltip="Back to the rankings"
        )
    ]

    def __init__(self, coin: CoinRow, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.coin = coin

    def action_back(self) -> None:
        """Back to where Enter was pressed."""
        self.dismiss()

    def compose(self) -> ComposeResult:
        """Title, figures, the 7-day sparkline and the cached price history."""
        yield NavBar("rankings")

        with VerticalScroll(id="project-body"):
            yield Static(id="project-title", classes="screen-title")
            yield DataTable(id="project-figures", cursor_type="none", show_header=False)
            yield Static(id="project-spark-7d-title", classes="section-title")
            yield Chart(id="project-spark-7d")
            yield Static(id="project-spark-7d-note", classes="dim")
            yield Static(id="project-history-title", classes="section-title")
            yield Chart(id="project-history")
            yield Static(id="project-history-range", classes="dim")
            yield Static(id="project-devices-title", classes="section-title")
            yield Chart(id="project-devices")
            yield Static(id="project-devices-range", classes="dim")
        yield StatusLine()
        yield KeysFooter()

    def on_mount(self) -> None:
        """Two fixed columns for the figures."""
        super().on_mount()
        table = self.query_one("#project-figures", DataTable)
        table.add_column("field", width=16)
        table.add_column("value", width=36)

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[None]
    ) -> tuple[ProjectData, PollInfo | None]:
        """The project in the latest snapshot, and its price across every stored snapshot."""
        rankings = latest_rankings(conn, ctx.at)
        coin = self.coin  # set at construction, never changed: safe to read from the worker
        if rankings:
            coin = next((c for c in rankings.coins if c.coin_id == self.coin.coin_id), coin)
        history = coin_history(conn, self.coin.coin_id, ctx.at)
        devices = device_growth(conn, self.coin.coin_id, ctx.at)
        poll = rankings.poll if rankings else None
        data = ProjectData(
            coin, history, devices, poll.data_at if poll else None, ctx.now, ctx.at is None
        )
        return data, poll

    def render_data(self, data: ProjectData | None) -> None:
        """Fill figures and charts; a range without samples says so."""
        if data is None:
            return
        coin, history, devices = data.coin, data.history, data.devices
        self.coin = coin
        title = Text.assemble(
            text(coin.name, "bold", 60), "  ", text(coin.symbol and coin.symbol.upper(), max_len=12)
        )
        self.query_one("#project-title", Static).update(title)
        table = self.query_one("#project-figures", DataTable)
        table.clear()
        rows: list[tuple[str, Text]] = [
            ("Rank", integer(coin.rank)),
            ("Price", money(coin.price_usd, compact=False)),
            ("Change 24h", pct(coin.change_24h_pct)),
            ("Change 7d", pct(coin.change_7d_pct)),
            ("Change 30d", pct(coin.change_30d_pct)),
            ("Market cap", money(coin.market_cap_usd)),
            ("FDV", money(coin.fdv_usd)),
            ("Volume 24h", money(coin.volume_24h_usd)),
            ("Category", text(coin.category)),
            *self._device_rows(coin, devices),
            ("Id", text(coin.coin_id)),
        ]
        for _, value in rows:
            value.justify = "left"  # a two-column sheet reads best aligned on one edge
        table.add_rows([(Text(label), value) for label, value in rows])
        self._spark_chart(data)
        prices: list[tuple[datetime, float]] = [(t, p) for t, p, _ in history if p is not None]
        start = min((t for t, _ in prices), default=data.now - timedelta(days=1))
        window = window_label(data.now - start, data.now, data.live)
        self.query_one("#project-history", Chart).data = ChartData(
            start, data.now, "USD", (series("price", prices),)
        )
        self.query_one("#project-history-title", Static).update(
            f"{chart_title('Price in the cache', 'USD', window)}: "
            f"{len(prices):,} snapshot{'' if len(prices) == 1 else 's'}"
        )
        self.query_one("#project-history-range", Static).update(
            _span(prices, usd_price) or "— (history builds up as polls are stored)"
        )
        self._device_chart(devices, data)

    def _spark_chart(self, data: ProjectData) -> None:
        """CoinGecko's 7-day series of the snapshot, placed hourly up to the snapshot's time."""
        spark = data.coin.sparkline_7d
        end = data.snapshot_at or data.now
        start = end - timedelta(days=7)
        points = [(end - SPARK_STEP * (len(spark) - 1 - i), p) for i, p in enumerate(spark)]
        window = window_label(end - start, end, live=False)
        self.query_one("#project-spark-7d-title", Static).update(
            chart_title("Price", "USD", window) + " (CoinGecko's hourly series, times approximate)"
        )
        self.query_one("#project-spark-7d", Chart).data = ChartData(
            start, end, "USD", (series("price", points),)
        )
        present = sum(1 for p in spark if p is not None)
        self.query_one("#project-spark-7d-note", Static).update(
            "" if present >= 2 else "— (this snapshot has no 7-day series)"
        )

    @staticmethod
    def _device_rows(coin: CoinRow, growth: DeviceGrowth | None) -> list[tuple[str, Text]]:
        """Its network's devices from our history, against price; else the snapshot's figure."""
        if growth is None:
            return [("Devices", integer(coin.devices))]
        per_device = (
            coin.market_cap_usd / growth.latest
            if coin.market_cap_usd is not None and growth.latest > 0
            else None
        )

        def against(devices: float | None, price: float | None) -> Text:
            return Text.assemble(pct(devices), ("  price ", "dim"), pct(price))

        return [
            ("Devices", Text(f"{growth.latest:,.0f} {growth.device.counts}")),
            ("Mcap / device", money(per_device, compact=False)),
            ("Devices 7d", against(growth.change_7d_pct, coin.change_7d_pct)),
            ("Devices 30d", against(growth.change_30d_pct, coin.change_30d_pct)),
        ]

    def _device_chart(self, growth: DeviceGrowth | None, data: ProjectData) -> None:
        title = self.query_one("#project-devices-title", Static)
        note = self.query_one("#project-devices-range", Static)
        chart = self.query_one("#project-devices", Chart)
        title.display = note.display = chart.display = growth is not None
        if growth is None:
            return
        points = [v for _, v in growth.history]
        chart.data = ChartData(
            data.now - timedelta(days=30),
            data.now,
            "",  # a count: the title says of what
            (series(growth.device.counts, growth.history),),
        )
        title.update(
            f"{growth.device.network} {growth.device.counts} in the cache, last 30 days: "
            f"{len(points)} value{'' if len(points) == 1 else 's'}"
        )
        note.update(
            _span(growth.history, "{:,.0f}".format)
            or "— (the device count builds up as the network is polled)"
        )


def _span(series: list[tuple[datetime, float]], show: Callable[[float], str]) -> str:
    """The line under a chart: first → last time, low and high; "" for under two points."""
    if len(series) < 2:
        return ""
    values = [v for _, v in series]
    return (
        f"{local_time(series[0][0], True)} → {local_time(series[-1][0], True)}   "
        f"low {show(min(values))}   high {show(max(values))}"
    )
