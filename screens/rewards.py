"""Rewards: what each node earned over 24 h, 7 d or 30 d, what it was worth, what it cost.

Each reward is valued at the cached price of its token at the time it was earned; GPU-hours and
power come from the fleet's samples (cache/economics.py says exactly how). Per node or per UTC
day, with per-network and fleet totals above the table. A missing figure is "—", never 0; in
private mode every money figure is "•••".

Missed io.net blocks (cache/reward_misses.py): per node, how many and the most common cause our
history shows (``Miss``, ``Why``); ``m`` lists every missed block with io.net's cause and our
figures of its hour, with a summary line per node above.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cache.economics import MAX_SPAN, Economics, EconomicsSettings, Figures, economics
from cache.queries import PollInfo, latest_good_poll
from cache.reward_misses import RewardMisses, reward_misses
from cache.text import safe_text
from screens import reward_misses_view as misses_view
from screens.base import CacheScreen, ReadContext
from screens.host import host
from screens.node import NodeScreen
from screens.render import MISSING, age, local_time, missing, text
from screens.table_export import HIDDEN, TableExport, hidden_cell
from screens.widgets.fleet_table import Column, FleetTable, number_cell
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine

PERIODS = [("24 h", timedelta(hours=24)), ("7 d", timedelta(days=7)), ("30 d", timedelta(days=30))]
REWARD_SOURCES = ("ionet-devices", "coingecko", "fleet", "promql", "local")
MONEY = ("rewards", "value_usd", "power_cost", "net", "payback_days")
"""Columns private mode hides: earnings, and what they can be worked back from."""
MAX_NETWORK_LINES = 3
DAY_SECONDS = 86400.0


def _usd(value: object) -> Text:
    if not isinstance(value, int | float):
        return missing()
    sign = "-" if value < 0 else ""
    return Text(f"{sign}${abs(value):,.2f}", style="red" if value < 0 else "")


def _payback(value: object) -> Text:
    if not isinstance(value, int | float):
        return missing()
    if value == float("inf"):
        return Text("never", style="red")
    return Text(f"{value / 365:,.1f} y" if value >= 1000 else f"{value:,.0f} d")


def _price_age(value: object) -> Text:
    """Only a price more than a day older than its reward is worth a mention."""
    if not isinstance(value, int | float):
        return missing()
    return Text(age(value), style="yellow") if value > DAY_SECONDS else Text("")


def columns(by_day: bool, private: bool) -> list[Column]:
    """The table's columns: per node (with missed blocks) or per day; money "•••" if private."""

    def money(key: str, label: str, width: int, render: Callable[[object], Text]) -> Column:
        # while private, their order would tell what the "•••" hide
        return Column(
            key, label, width, "right", hidden_cell if private else render, sortable=not private
        )

    first = (
        [Column("day", "Day (UTC)", 10)]
        if by_day
        else [Column("node", "Node", 12), Column("network", "Net", 7)]
    )
    return [
        *first,
        money("rewards", "Earned", 8, number_cell(",.2f")),
        money("value_usd", "Value", 8, _usd),
        Column("gpu_hours", "GPU-h", 6, "right", number_cell(",.1f")),
        money("power_cost", "Power", 7, _usd),
        money("net", "Net", 8, _usd),
        *([] if by_day else [money("payback_days", "Payback", 7, _payback)]),
        *([] if by_day else misses_view.node_columns()),
        Column("price_age_s", "Px age", 6, "right", _price_age),
    ]


def _row(f: Figures, cols: list[Column], misses: RewardMisses | None) -> tuple[object, ...]:
    found = misses.nodes.get(f.label) if misses else None
    values = {**f.__dict__, "node": f.label, "day": f.label, **misses_view.node_cells(found)}
    return tuple(values[c.key] for c in cols)


@dataclass(frozen=True)
class RewardsData:
    """One Rewards read: the period's economics and its missed io.net blocks."""

    economics: Economics
    misses: RewardMisses


@dataclass(frozen=True)
class RewardsOptions:
    """What a Rewards read depends on, frozen on the UI thread."""

    period: timedelta
    settings: EconomicsSettings
    span: float


class RewardsScreen(CacheScreen[RewardsData, RewardsOptions]):
    """Fleet economics over a period; sortable; Enter opens the node; ``m`` the missed blocks."""

    SOURCES = REWARD_SOURCES
    AUTO_FOCUS = "FleetTable"
    BINDINGS = [
        Binding(
            "right_square_bracket",
            "period(1)",
            "Period",
            id="rewards.period_next",
            tooltip="Longer period: 24 h, 7 d, 30 d",
        ),
        Binding(
            "left_square_bracket",
            "period(-1)",
            "Shorter",
            show=False,
            id="rewards.period_previous",
            tooltip="Shorter period",
        ),
        Binding("s", "sort_next", "Sort", id="rewards.sort", tooltip="Sort by the next column"),
        Binding(
            "S",
            "sort_reverse",
            "Reverse",
            show=False,
            id="rewards.reverse",
            tooltip="Reverse the sort order",
        ),
        Binding("v", "toggle_days", "By day", id="rewards.view", tooltip="Per node or per day"),
        Binding(
            "m",
            "toggle_misses",
            "Missed",
            id="rewards.misses",
            tooltip="Missed io.net blocks: io.net's cause and our history of each hour",
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.period_index = 0
        self.by_day = False
        self.show_misses = False
        self.sort_key = "net"
        self.descending = True
        self.data: Economics | None = None
        self.misses: RewardMisses | None = None
        self._shown_private: bool | None = None

    def compose(self) -> ComposeResult:
        """Nav, title, totals, the table, status line, footer."""
        yield NavBar("rewards")
        yield Static(id="rewards-title", classes="screen-title")
        yield Static(id="rewards-totals")
        yield FleetTable(id="rewards-table")
        yield StatusLine()
        yield KeysFooter()

    def read_options(self) -> RewardsOptions:
        """The period, the economics settings and the longest gap between fleet samples."""
        app = host(self)
        span = max(MAX_SPAN, 2 * app.source_interval("fleet"))
        return RewardsOptions(PERIODS[self.period_index][1], app.economics_settings(), span)

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[RewardsOptions]
    ) -> tuple[RewardsData, PollInfo | None]:
        """The period's economics and missed blocks as of now (or the time-travel moment)."""
        options = ctx.options
        found = economics(conn, options.period, options.settings, ctx.now, options.span)
        misses = reward_misses(conn, found.since, found.until, span=options.span)
        return RewardsData(found, misses), latest_good_poll(conn, REWARD_SOURCES, ctx.at)

    def render_data(self, data: RewardsData | None) -> None:
        """Rows per node (or day, or missed block), totals per network and for the fleet."""
        if data is not None:
            self.data, self.misses = data.economics, data.misses
        else:
            self.data = self.misses = None
        self._draw()

    def _draw(self) -> None:
        data = self.data
        private = host(self).private
        table = self.query_one(FleetTable)
        if self.show_misses:
            cols = misses_view.columns()
            shown = self.misses.misses if self.misses else []
            keys = [misses_view.row_key(m) for m in shown]
            rows = [misses_view.row(m) for m in shown]
        else:
            cols = columns(self.by_day, private)
            figures = (data.days if self.by_day else data.nodes) if data else []
            keys = [f.label for f in figures]
            rows = [_row(f, cols, self.misses) for f in figures]
        col_keys = [c.key for c in cols]
        if [c.key for c in table.columns] != col_keys or private != self._shown_private:
            table.set_rows(cols, rows, keys)  # new renderers: cells are drawn afresh
            self._shown_private = private
            if not table.can_sort_by(self.sort_key):  # gone, or hidden by private mode
                self.sort_key, self.descending = self._default_sort(private)
            table.sort_by(self.sort_key, self.descending)
            table.cursor_to_top()
        else:
            table.update_rows(rows, keys)
        self._title(data)
        if self.show_misses:
            self.query_one("#rewards-totals", Static).update(misses_view.summary(self.misses))
        else:
            self._totals(data, private)

    def _title(self, data: Economics | None) -> None:
        period = PERIODS[self.period_index][0]
        title = Text.assemble(("Rewards", "bold"), f"  last {period}")
        if data is not None:
            title.append(f" to {local_time(data.until, True)}", style="dim")
        view = "missed blocks" if self.show_misses else "per day" if self.by_day else "per node"
        title.append(f"  ·  {view}")
        shown = self.query_one(FleetTable).columns
        label = next((c.label for c in shown if c.key == self.sort_key), self.sort_key)
        title.append(f"  ·  sort: {label} {'↓' if self.descending else '↑'}", style="dim")
        self.query_one("#rewards-title", Static).update(title)

    def _totals(self, data: Economics | None, private: bool) -> None:
        box = self.query_one("#rewards-totals", Static)
        if data is None or not data.nodes:
            box.update(Text("no rewards or fleet samples stored for this period", style="dim"))
            return
        out = Text()
        known = [f for f in data.networks if f.rewards is not None or f.gpu_hours is not None]
        for f in known[:MAX_NETWORK_LINES]:
            out.append_text(self._line(f, private))
            out.append("\n")
        if len(known) > MAX_NETWORK_LINES:
            out.append(f"… {len(known) - MAX_NETWORK_LINES} more networks\n", style="dim")
        out.append_text(self._line(data.fleet, private, bold=True))
        notes = []
        fleet = data.fleet
        if fleet.unpriced:
            amount = HIDDEN if private else f"{fleet.unpriced:,.2f}"
            token = safe_text(fleet.token, 20) if fleet.token else "in rewards"  # from the cache
            notes.append(f"{amount} {token} without a cached price")
        if fleet.price_age_s is not None and fleet.price_age_s > DAY_SECONDS:
            notes.append(f"prices up to {age(fleet.price_age_s)} older than their rewards")
        if data.settings.power_price_per_kwh is None:
            notes.append("no power price set: net is the rewards' value")
        if notes:
            out.append("\n" + "  ·  ".join(notes), style="yellow")
        box.update(out)

    @staticmethod
    def _line(f: Figures, private: bool, bold: bool = False) -> Text:
        def usd(value: float | None) -> str:
            if value is None:
                return MISSING
            return HIDDEN if private else f"{'-' if value < 0 else ''}${abs(value):,.2f}"

        line = Text.assemble(text(f.label, "bold" if bold else "", 20))
        line.pad_right(max(0, 11 - line.cell_len))
        earned = MISSING if f.rewards is None else HIDDEN if private else f"{f.rewards:,.2f}"
        line.append(f" {earned} {safe_text(f.token, 20) if f.token else ''}".rstrip())
        line.append(f"  value {usd(f.value_usd)}")
        gpu = MISSING if f.gpu_hours is None else f"{f.gpu_hours:,.1f}"
        line.append(f"  {gpu} GPU-h  power {usd(f.power_cost)}  net {usd(f.net)}")
        return line

    # -- actions ----------------------------------------------------------------------------
    def action_period(self, step: int = 1) -> None:
        """24 h → 7 d → 30 d → 24 h (or back)."""
        self.period_index = (self.period_index + step) % len(PERIODS)
        self.reload()

    def action_toggle_days(self) -> None:
        """Rows per node or per UTC day."""
        self.by_day = not self.by_day
        self.show_misses = False
        self.sort_key, self.descending = self._default_sort(host(self).private)
        self._draw()

    def action_toggle_misses(self) -> None:
        """Rows per missed io.net block (again: back to the nodes or days)."""
        self.show_misses = not self.show_misses
        self.sort_key, self.descending = self._default_sort(host(self).private)
        self._draw()

    def action_sort_next(self) -> None:
        """Sort by the next column: text ascending, figures descending."""
        self.sort_key = self.query_one(FleetTable).next_sort_key(self.sort_key)
        text_keys = ("node", "network", "cause", "seen", "network_status", "device_id", "why")
        self.descending = self.sort_key not in text_keys
        self._sort()

    def action_sort_reverse(self) -> None:
        """Reverse the sort order."""
        self.descending = not self.descending
        self._sort()

    def _sort(self) -> None:
        table = self.query_one(FleetTable)
        table.sort_by(self.sort_key, self.descending)
        table.cursor_to_top()
        self._title(self.data)

    def _default_sort(self, private: bool) -> tuple[str, bool]:
        """Newest day (or missed block) first, else best net first (by node name if private)."""
        if self.show_misses:
            return "at", True
        if self.by_day:
            return "day", True
        return ("node", False) if private else ("net", True)

    @on(FleetTable.SortChanged)
    def _sorted(self, event: FleetTable.SortChanged) -> None:
        self.sort_key, self.descending = event.column_key, event.descending
        self._title(self.data)

    @on(FleetTable.RowSelected)
    def _open_node(self, event: FleetTable.RowSelected) -> None:
        if (self.by_day and not self.show_misses) or self.data is None:
            return
        who = misses_view.key_who(event.key) if self.show_misses else event.key
        found = next((f for f in self.data.nodes if f.label == who), None)
        if found is None or found.source_kind is None:
            self.notify("no fleet samples stored for this node", timeout=3, markup=False)
            return
        self.app.push_screen(NodeScreen(found.label, found.source_kind))

    def table_export(self) -> TableExport:
        """The rows as shown, with the reward token beside the amount."""
        table = self.query_one(FleetTable)
        keys = [c.key for c in table.columns]
        if self.show_misses:  # no amount in it: a missed block paid nothing
            shown = [r for k in table.visible_keys() if (r := table.row_for(k)) is not None]
            name = f"rewards-missed-{PERIODS[self.period_index][0]}"
            return TableExport(name, keys, shown, frozenset(MONEY))
        at = keys.index("rewards") + 1
        pool = (self.data.days if self.by_day else self.data.nodes) if self.data else []
        token = {f.label: f.token for f in pool}
        rows = [
            (*row[:at], token.get(key), *row[at:])
            for key in table.visible_keys()
            if (row := table.row_for(key)) is not None
        ]
        name = f"rewards-{'days' if self.by_day else 'nodes'}-{PERIODS[self.period_index][0]}"
        return TableExport(name, [*keys[:at], "token", *keys[at:]], rows, frozenset(MONEY))
