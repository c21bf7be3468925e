"""Rankings: every tracked DePIN project, sortable by any column, filterable, with a watchlist.

Beside each project's market figures, for projects whose network the app polls: market cap per
device and the device count's 30-day change (cache/market_devices.py), next to the price's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Static

from cache.market_devices import NONE, MarketDevices, market_devices
from cache.queries import CoinRow, PollInfo, Rankings, latest_rankings
from screens.base import CacheScreen, ReadContext
from screens.host import host
from screens.project import ProjectScreen
from screens.render import integer, money, pct, sparkline, text
from screens.table_export import TableExport
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine


@dataclass(frozen=True)
class Column:
    """One rankings column: its label, width and how to sort and draw it.

    ``value`` and ``cell`` take the project and its per-device figures (``NONE`` when its
    network is not polled).
    """

    key: str
    label: str
    width: int
    value: Callable[[CoinRow, MarketDevices], Any]
    cell: Callable[[CoinRow, MarketDevices], Text]


def _watch_cell(watched: bool) -> Text:
    return Text("★" if watched else " ", style="bold yellow")


def _market(
    key: str,
    label: str,
    width: int,
    value: Callable[[CoinRow], Any],
    cell: Callable[[CoinRow], Text],
) -> Column:
    """A column of the snapshot's own figures."""
    return Column(key, label, width, lambda c, _: value(c), lambda c, _: cell(c))


COLUMNS: list[Column] = [
    # Ordered so that the columns an investor scans first fit in 80 columns.
    _market("rank", "#", 4, lambda c: c.rank, lambda c: integer(c.rank)),
    _market("name", "Name", 14, lambda c: c.name.casefold(), lambda c: text(c.name, max_len=40)),
    _market(
        "symbol",
        "Symbol",
        6,
        lambda c: (c.symbol or "").casefold(),
        lambda c: text(c.symbol and c.symbol.upper(), max_len=12),
    ),
    _market(
        "price", "Price", 10, lambda c: c.price_usd, lambda c: money(c.price_usd, compact=False)
    ),
    _market("change_24h", "24h", 7, lambda c: c.change_24h_pct, lambda c: pct(c.change_24h_pct)),
    _market("change_7d", "7d", 7, lambda c: c.change_7d_pct, lambda c: pct(c.change_7d_pct)),
    _market(
        "market_cap", "Mkt cap", 9, lambda c: c.market_cap_usd, lambda c: money(c.market_cap_usd)
    ),
    Column(
        "change_30d",
        "Px 30d",
        7,
        lambda _, d: d.price_change_30d_pct,
        lambda _, d: pct(d.price_change_30d_pct),
    ),
    Column(
        "per_device",
        "MCap/dev",
        9,
        lambda _, d: d.market_cap_per_device_usd,
        lambda _, d: money(d.market_cap_per_device_usd),
    ),
    Column(
        "devices_30d",
        "Dev 30d",
        7,
        lambda _, d: d.devices_change_30d_pct,
        lambda _, d: pct(d.devices_change_30d_pct),
    ),
    _market("volume", "Vol 24h", 9, lambda c: c.volume_24h_usd, lambda c: money(c.volume_24h_usd)),
    _market(
        "sparkline",
        "7 days",
        14,
        lambda c: c.change_7d_pct,
        lambda c: sparkline(c.sparkline_7d, 14),
    ),
]
DEFAULT_SORT = "market_cap"


def sort_coins(
    coins: list[CoinRow],
    key: str,
    descending: bool,
    per_device: dict[str, MarketDevices] | None = None,
) -> list[CoinRow]:
    """Sort by a column; missing values always go last, whatever the direction."""
    column = next(c for c in COLUMNS if c.key == key)
    found = per_device or {}

    def value(coin: CoinRow) -> Any:
        return column.value(coin, found.get(coin.coin_id, NONE))

    present = [c for c in coins if value(c) is not None]
    absent = [c for c in coins if value(c) is None]
    present.sort(key=value, reverse=descending)
    return present + sorted(absent, key=lambda c: c.name.casefold())


@dataclass(frozen=True)
class RankingsData:
    """One Rankings read: the snapshot and its projects' per-device figures."""

    rankings: Rankings
    per_device: dict[str, MarketDevices]


def matches(coin: CoinRow, needle: str) -> bool:
    """``/`` filter: case-insensitive substring of name, symbol or id."""
    needle = needle.casefold()
    return any(needle in (v or "").casefold() for v in (coin.name, coin.symbol, coin.coin_id))


class RankingsScreen(CacheScreen[RankingsData | None, None]):
    """The DePIN rankings table."""

    SOURCES = ("coingecko",)
    BINDINGS = [
        Binding(
            "slash", "filter", "Filter", id="rankings.filter", tooltip="Filter by name or symbol"
        ),
        Binding("s", "sort_next", "Sort", id="rankings.sort", tooltip="Sort by the next column"),
        Binding(
            "S",
            "sort_reverse",
            "Reverse",
            id="rankings.reverse",
            show=False,
            tooltip="Reverse the sort order",
        ),
        Binding(
            "f",
            "watch",
            "Star",
            id="rankings.watch",
            tooltip="Add or remove the project from the watchlist",
        ),
        Binding(
            "w",
            "watchlist_only",
            "Watchlist",
            id="rankings.watchlist",
            tooltip="Show only starred projects (again: show all)",
        ),
        Binding(
            "escape",
            "clear_filter",
            "Clear",
            show=False,
            id="rankings.clear",
            tooltip="Clear the filter",
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rankings: Rankings | None = None
        self.per_device: dict[str, MarketDevices] = {}
        self.sort_key = DEFAULT_SORT
        self.descending = True
        self.filter_text = ""
        self.watchlist_only = False
        self.shown: list[CoinRow] = []

    def compose(self) -> ComposeResult:
        """Title line, table, filter input, status line, footer."""
        yield NavBar("rankings")

        with Vertical(id="rankings-body"):
            yield Static(id="rankings-title", classes="screen-title")
            yield DataTable(id="rankings-table", cursor_type="row", zebra_stripes=True)
            yield Input(
                placeholder="filter by name or symbol (Enter keeps, Esc clears)",
                id="rankings-filter",
                classes="-hidden",
            )
        yield StatusLine()
        yield KeysFooter()

    def on_mount(self) -> None:
        """Columns are added once, with fixed widths, so cells are never measured."""
        super().on_mount()
        table = self.query_one(DataTable)
        table.add_column(Text("★"), width=1, key="watch")
        for column in COLUMNS:
            table.add_column(Text(column.label), width=column.width, key=column.key)

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[None]
    ) -> tuple[RankingsData | None, PollInfo | None]:
        """The latest rankings snapshot (live over sample) and its per-device figures."""
        rankings = latest_rankings(conn, ctx.at)
        if rankings is None:
            return None, None
        return RankingsData(rankings, market_devices(conn, rankings, ctx.at)), rankings.poll

    def render_data(self, data: RankingsData | None) -> None:
        """Keep the new snapshot and redraw."""
        self.rankings = data.rankings if data else None
        self.per_device = data.per_device if data else {}
        self.refresh_table()

    def refresh_table(self) -> None:
        """Apply watchlist, filter and sort; rebuild the rows, keeping the cursor's project."""
        table = self.query_one(DataTable)
        app = host(self)
        coins = self.rankings.coins if self.rankings else []
        if self.watchlist_only:
            coins = [c for c in coins if app.is_watched(c.coin_id)]
        if self.filter_text:
            coins = [c for c in coins if matches(c, self.filter_text)]
        self.shown = sort_coins(coins, self.sort_key, self.descending, self.per_device)
        selected = self.selected_coin()
        with self.app.batch_update():
            table.clear()
            table.add_rows(
                [
                    [
                        _watch_cell(app.is_watched(c.coin_id)),
                        *(col.cell(c, self.per_device.get(c.coin_id, NONE)) for col in COLUMNS),
                    ]
                    for c in self.shown
                ],
            )
            for index, coin in enumerate(self.shown):  # keys let the cursor follow a project
                if selected and coin.coin_id == selected.coin_id:
                    table.move_cursor(row=index)
        self._update_title()

    def _update_title(self) -> None:
        total = len(self.rankings.coins) if self.rankings else 0
        label = next(c.label for c in COLUMNS if c.key == self.sort_key)
        title = Text.assemble(
            ("DePIN rankings", "bold"),
            f"  {len(self.shown)} of {total}",
            f"  ·  sort: {label} {'↓' if self.descending else '↑'}",
        )
        if self.rankings and self.rankings.poll.is_sample:
            title.append("  ·  bundled sample of 2024-06-30, not live", style="bold")
        if self.watchlist_only:
            title.append("  ·  watchlist only", style="bold yellow")
        if self.filter_text:
            title.append("  ·  filter: ")
            title.append_text(text(self.filter_text, max_len=30))
        self.query_one("#rankings-title", Static).update(title)

    def selected_coin(self) -> CoinRow | None:
        """The project under the cursor, if any."""
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row is None:
            return None
        if 0 <= table.cursor_row < len(self.shown):
            return self.shown[table.cursor_row]
        return None

    # -- actions ----------------------------------------------------------------------------
    def action_filter(self) -> None:
        """Show the filter input."""
        box = self.query_one("#rankings-filter", Input)
        box.remove_class("-hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        """Clear the filter and go back to the table."""
        box = self.query_one("#rankings-filter", Input)
        box.value = ""
        box.add_class("-hidden")
        self.query_one(DataTable).focus()
        if self.filter_text:
            self.filter_text = ""
            self.refresh_table()

    @on(Input.Changed, "#rankings-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.refresh_table()

    @on(Input.Submitted, "#rankings-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.add_class("-hidden")
        self.query_one(DataTable).focus()

    def sort_by(self, key: str, descending: bool | None = None) -> None:
        """Sort by column ``key``: text ascending, numbers descending, unless told."""
        self.sort_key = key
        self.descending = (
            key not in ("name", "symbol", "rank") if descending is None else descending
        )
        self.refresh_table()

    def action_sort_next(self) -> None:
        """Sort by the next column."""
        keys = [c.key for c in COLUMNS]
        self.sort_by(keys[(keys.index(self.sort_key) + 1) % len(keys)])

    def action_sort_reverse(self) -> None:
        """Reverse the sort order."""
        self.descending = not self.descending
        self.refresh_table()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key == "watch":
            return
        if key == self.sort_key:
            self.action_sort_reverse()
        else:
            self.sort_by(key)

    def action_watch(self) -> None:
        """Star or unstar the project under the cursor."""
        coin = self.selected_coin()
        if coin is None:
            return
        starred = host(self).toggle_watch(coin.coin_id)
        table = self.query_one(DataTable)
        if self.watchlist_only and not starred:
            self.refresh_table()
        else:
            table.update_cell_at(Coordinate(table.cursor_row, 0), _watch_cell(starred))

    def action_watchlist_only(self) -> None:
        """Toggle showing only starred projects."""
        self.watchlist_only = not self.watchlist_only
        self.refresh_table()

    def table_export(self) -> TableExport:
        """The projects as shown (watchlist, filter, sort); the sparkline chart is left out."""
        starred = host(self).is_watched
        per = self.per_device
        rows = [
            (
                starred(c.coin_id),
                c.rank,
                c.coin_id,
                c.name,
                c.symbol,
                c.price_usd,
                c.change_24h_pct,
                c.change_7d_pct,
                c.market_cap_usd,
                c.change_30d_pct,
                c.volume_24h_usd,
                per.get(c.coin_id, NONE).price_change_30d_pct,
                per.get(c.coin_id, NONE).market_cap_per_device_usd,
                per.get(c.coin_id, NONE).devices,
                per.get(c.coin_id, NONE).devices_change_30d_pct,
            )
            for c in self.shown
        ]
        columns = (
            "watched",
            "rank",
            "coin_id",
            "name",
            "symbol",
            "price_usd",
            "change_24h_pct",
            "change_7d_pct",
            "market_cap_usd",
            "change_30d_pct",
            "volume_24h_usd",
            "price_change_30d_pct",
            "market_cap_per_device_usd",
            "devices",
            "devices_change_30d_pct",
        )
        return TableExport("rankings", columns, rows)

    @on(DataTable.RowSelected, "#rankings-table")
    def _open_project(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self.shown):
            self.app.push_screen(ProjectScreen(self.shown[event.cursor_row]))
