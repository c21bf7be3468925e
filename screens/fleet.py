"""Fleet: every node at a glance, answering "what is wrong right now" on an 80x24 terminal.

Built on the virtualised FleetTable, so it stays fast with very large fleets: the table renders
only visible rows and repaints only lines whose values changed on a refresh.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from cache.db import parse_iso
from cache.fleet import fleet_rows
from cache.network_status import (
    AGREES,
    DISAGREES,
    NETWORK_SOURCES,
    Limits,
    classify,
    network_limit,
    network_views,
)
from cache.queries import PollInfo, latest_good_poll
from cache.rewards import rewards_by_node
from cache.text import safe_text
from screens.base import CacheScreen, ReadContext
from screens.host import host
from screens.node import NodeScreen
from screens.render import age, missing
from screens.table_export import HIDDEN, TableExport, from_fleet_table, hidden_cell
from screens.widgets.fleet_table import Column, FleetTable, number_cell
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine

FLEET_SOURCES = ("fleet", "promql", "local")
GROUPS: list[str | None] = [None, "network", "source"]
"""Then every label key the fleet's nodes carry (``rack``, ``region``, …)."""
LABEL_COLUMN = "label"


def _level(field: str, levels: tuple[float, float]) -> Callable[[object], str]:
    warn, critical = levels

    def style_for(value: object) -> str:
        if not isinstance(value, int | float):
            return ""
        return "critical" if value >= critical else "warn" if value >= warn else ""

    return style_for


def _status_cell(value: object) -> Text:
    style = {"up": "green", "down": "bold red", "stale": "bold yellow"}.get(str(value), "")
    return Text(str(value), style=style)


def _age_cell(value: object) -> Text:
    return missing() if not isinstance(value, int | float) else Text(age(value))


def _net_cell(value: object) -> Text:
    """The network's view against ours: words and arrows, so NO_COLOR loses nothing."""
    if value is None:
        return missing()  # a node the network does not report on
    style = "bold red" if value in DISAGREES else "green" if value == AGREES else "dim"
    return Text(str(value), style=style)


def _uptime_cell(value: object) -> Text:
    return missing() if not isinstance(value, int | float) else Text(age(value))


def fleet_columns(
    thresholds: dict[str, tuple[float, float]], private: bool = False
) -> list[Column]:
    """The Fleet columns, coloured by the warn / critical levels; earnings "•••" if private."""

    def level(field: str) -> Callable[[object], str] | None:
        return _level(field, thresholds[field]) if field in thresholds else None

    return [
        Column("node", "Node", 16),
        Column("network", "Network", 8),
        Column("status", "Status", 7, render=_status_cell),
        Column("net", "Net", 8, render=_net_cell),
        Column("cpu_pct", "CPU%", 5, "right", number_cell(".0f"), level("cpu_pct")),
        Column("mem_pct", "Mem%", 5, "right", number_cell(".0f"), level("mem_pct")),
        Column("disk_pct", "Disk%", 5, "right", number_cell(".0f"), level("disk_pct")),
        Column("gpu_util_pct", "GPU%", 5, "right", number_cell(".0f"), level("gpu_util_pct")),
        Column("gpu_temp_c", "GPU°C", 6, "right", number_cell(".0f"), level("gpu_temp_c")),
        Column("gpu_power_w", "Watts", 6, "right", number_cell(",.0f"), level("gpu_power_w")),
        Column("uptime_s", "Uptime", 7, "right", _uptime_cell),
        Column("seen_s", "Seen", 6, "right", _age_cell),
        Column("net_seen_s", "NetAge", 6, "right", _age_cell),
        Column(
            "reward_24h",
            "IO 24h",
            8,
            "right",
            hidden_cell if private else number_cell(",.2f"),
            sortable=not private,  # its order would rank the nodes by earnings
        ),
        Column("source", "Source", 8),
    ]


NET_KEYS = ("net", "net_seen_s")
COLUMN_KEYS = [c.key for c in fleet_columns({}) if c.key not in NET_KEYS] + list(NET_KEYS)
"""The order ``s`` walks the columns in: the network's view last, so the figures come first."""

KEY_SEPARATOR = "\x1f"
"""Starts every key that is not a bare node name. Never in a stored name (the store replaces
control characters), but a copied cache need not have been written by the store."""


def row_key(node: str, source_kind: str) -> str:
    """The table key of a (node, source kind): one per pair, whatever the name holds.

    The node name itself for exporters, the usual case (no second string per row at 100,000
    nodes); else the separator, the kind, the separator and the name. A kind that is empty or
    holds the separator itself (only a copied cache has one) is two separators and JSON. So no
    two pairs share a key (a table refuses duplicate keys) and :func:`split_key` gives the pair
    back exactly.
    """
    if source_kind == "exporter" and KEY_SEPARATOR not in node:
        return node
    if source_kind and KEY_SEPARATOR not in source_kind:
        return f"{KEY_SEPARATOR}{source_kind}{KEY_SEPARATOR}{node}"
    return KEY_SEPARATOR * 2 + json.dumps([node, source_kind])


def split_key(key: str) -> tuple[str, str]:
    """(node, source kind) of a :func:`row_key`."""
    if not key.startswith(KEY_SEPARATOR):
        return key, "exporter"
    if key.startswith(KEY_SEPARATOR * 2):
        node, kind = json.loads(key[2:])
        return str(node), str(kind)
    kind, _, node = key[1:].partition(KEY_SEPARATOR)
    return node, kind


FILTER_COLUMNS = ("node", "network", "source", "net")


@dataclass(frozen=True)
class FleetData:
    """The latest sample of every (source, node), already laid out as table rows."""

    rows: list[tuple[object, ...]]
    keys: list[str]
    label_keys: list[str]
    """Every label key the nodes carry, for grouping by any label."""
    group_label: str | None = None
    """The label whose values the rows carry in an extra last column, when grouping by it."""


@dataclass(frozen=True)
class FleetOptions:
    """What a Fleet read depends on, frozen on the UI thread."""

    group: str | None
    stale_after: tuple[tuple[str, float], ...]
    """(node kind, seconds after which its latest sample is stale)."""
    net_after: tuple[tuple[str, float], ...] = ()
    """(network source, seconds after which its reading is too old to compare)."""


class FleetScreen(CacheScreen[FleetData, FleetOptions]):
    """Every node: status, load, GPU figures; sort, filter, group, drill down."""

    SOURCES = FLEET_SOURCES
    AUTO_FOCUS = "FleetTable"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="fleet.filter", tooltip="Filter by node, network"),
        Binding("s", "sort_next", "Sort", id="fleet.sort", tooltip="Sort by the next column"),
        Binding(
            "S",
            "sort_reverse",
            "Reverse",
            show=False,
            id="fleet.reverse",
            tooltip="Reverse the sort order",
        ),
        Binding(
            "g",
            "group_next",
            "Group",
            id="fleet.group",
            tooltip="Group by network, by source, by any node label, or not at all",
        ),
        Binding(
            "escape",
            "clear_filter",
            "Clear",
            show=False,
            id="fleet.clear",
            tooltip="Clear the filter",
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sort_key = "status"
        self.descending = False
        self.group: str | None = None
        self.label_keys: list[str] = []
        self._rows: list[tuple[object, ...]] = []
        self._summary_lines = 0
        self._columns_set = False
        self._private_shown = False

    def compose(self) -> ComposeResult:
        """Nav, summary bar, the table, filter input, status line, footer."""
        yield NavBar("fleet")
        yield Static(id="fleet-summary", classes="screen-title")
        yield FleetTable(id="fleet-table")
        yield Input(
            placeholder="filter by node, network or source (Esc clears)",
            id="fleet-filter",
            classes="-hidden",
        )
        yield StatusLine()
        yield KeysFooter()

    def read_options(self) -> FleetOptions:
        """The grouping, and after how long each kind of node is stale (twice its interval)."""
        app = host(self)
        stale_after = tuple(
            (kind, 2 * app.source_interval(_poll_name(kind)))
            for kind in ("exporter", "promql", "local")
        )
        net_after = tuple(
            (source, network_limit(app.source_interval(source))) for source in NETWORK_SOURCES
        )
        return FleetOptions(self.group, stale_after, net_after)

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[FleetOptions]
    ) -> tuple[FleetData, PollInfo | None]:
        """The latest sample of every (source, node), laid out as rows.

        Built here in the worker thread from flat tuples (no per-node objects), so a large fleet
        costs the UI thread only the table's own update.
        """
        now = ctx.now
        group = ctx.options.group
        group_label = group if group not in GROUPS else None
        fleet = fleet_rows(conn, ctx.at, label=group_label, whole=True)
        rewards = rewards_by_node(conn, now)
        stale_after = dict(ctx.options.stale_after)
        # the network's view only for the few nodes it reports on (a dict probe per row)
        views = network_views(conn, ctx.at)
        net_after = dict(ctx.options.net_after)
        net_ages: dict[str, float] = {
            node: (now - view.at).total_seconds() for node, view in views.items()
        }
        ages: dict[str, float] = {}
        shared: dict[str | None, str | None] = {}  # one str object per network / kind, not per row
        rows: list[tuple[object, ...]] = []
        keys: list[str] = []
        for (
            node,
            kind,
            network,
            up,
            cpu,
            mem,
            disk,
            gpu,
            temp,
            watts,
            uptime,
            at,
            label,
        ) in fleet.rows:
            seen = ages.get(at)
            if seen is None:
                seen = ages[at] = (now - parse_iso(at)).total_seconds()
            if not up:
                status = "down"
            elif seen > stale_after.get(kind, 2 * 120.0):
                status = "stale"
            else:
                status = "up"
            reward = rewards.get(node)
            view = views.get(node) if views else None
            net: str | None = None
            net_seen: float | None = None
            if view is not None:
                net_seen = net_ages[node]
                limits = Limits(
                    stale_after.get(kind, 2 * 120.0), net_after.get(view.source, Limits.network_s)
                )
                net = classify(bool(up), seen, view.up, net_seen, limits)
            network = shared.setdefault(network, network)
            kind = shared.setdefault(kind, kind) or kind  # never None: a NOT NULL column
            row = (
                node,
                network,
                status,
                net,
                cpu,
                mem,
                disk,
                gpu,
                temp,
                watts,
                uptime,
                seen,
                net_seen,
                reward[0] if reward else None,
                kind,
            )
            rows.append((*row, label) if group_label else row)
            keys.append(row_key(node, kind))
        labels = [k for k in fleet.label_keys if k not in GROUPS]
        data = FleetData(rows, keys, labels, group_label)
        return data, latest_good_poll(conn, FLEET_SOURCES, ctx.at)

    def render_data(self, data: Any) -> None:
        """Hand rows to the table (only changed lines repaint) and update the summary."""
        data = data or FleetData([], [], [])
        rows, keys = data.rows, data.keys
        self.label_keys = data.label_keys
        table = self.query_one(FleetTable)
        private = host(self).private
        columns = fleet_columns(host(self).thresholds(), private)
        if data.group_label:
            columns.append(Column(LABEL_COLUMN, data.group_label, 12))
        if (
            [c.key for c in table.columns] != [c.key for c in columns]
            or (data.group_label and table.columns[-1].label != data.group_label)
            or private != self._private_shown  # new renderers: cells are drawn afresh
        ):
            self._private_shown = private
            table.set_rows(columns, rows, keys)
            if not self._columns_set or table.sort_state is None:
                if not table.can_sort_by(self.sort_key):  # hidden by private mode
                    self.sort_key, self.descending = "status", False
                table.sort_by(self.sort_key, self.descending)
                table.cursor_to_top()  # not wherever row 0 went
                self._columns_set = True
        else:
            table.update_rows(rows, keys)
        wanted = LABEL_COLUMN if data.group_label else self.group
        if data.group_label == self.group or self.group in GROUPS:
            if table.group_key != wanted:
                table.group_by(wanted)
                table.cursor_to_top()
        self._rows = rows
        self._summary(rows)

    def _empty_hint(self) -> Text:
        """Why the table is empty, and what fills it."""
        app = host(self)
        if app.at is not None:
            return Text("  ·  no fleet poll stored by then", style="dim")
        if app.offline:
            return Text(
                "  ·  no fleet poll stored; offline, nothing is polled"
                " (without --offline this machine is polled, and [[fleet.targets]])",
                style="dim",
            )
        return Text(
            "  ·  no fleet poll stored yet: this machine and [[fleet.targets]] are polled"
            " (Sources shows how they fare)",
            style="dim",
        )

    def _summary(self, rows: list[tuple[object, ...]]) -> None:
        states = [r[2] for r in rows]
        nets = [r[3] for r in rows if r[3] is not None]
        cpus = [r[4] for r in rows if isinstance(r[4], int | float)]
        watts = [r[9] for r in rows if isinstance(r[9], int | float)]
        earned = [r[13] for r in rows if isinstance(r[13], int | float)]
        line = Text()
        line.append(f"{len(rows):,} node{'' if len(rows) == 1 else 's'}  ", style="bold")
        line.append(f"▲ {states.count('up'):,} up  ", style="green")
        line.append(
            f"▼ {states.count('down'):,} down  ", style="bold red" if "down" in states else ""
        )
        line.append(
            f"◌ {states.count('stale'):,} stale  ", style="bold yellow" if "stale" in states else ""
        )
        if nets:
            differ = sum(1 for n in nets if n in DISAGREES)
            line.append(f"≠ {differ:,} net disagree  ", style="bold red" if differ else "")
        line.append(f"CPU {sum(cpus) / len(cpus):.0f}% mean  " if cpus else "CPU —  ")
        line.append(f"{sum(watts):,.0f} W GPU power" if watts else "GPU power —")
        if earned:
            total = HIDDEN if host(self).private else f"{sum(earned):,.2f}"
            line.append(f"  {total} IO earned 24h")
        if self.group:
            line.append(f"  ·  grouped by {safe_text(self.group, 60)}", style="dim")  # a label key
        if not rows:
            line.append_text(self._empty_hint())
        box = self.query_one("#fleet-summary", Static)
        # a layout pass costs more than the whole table repaint: only when the line count changes
        width = max(box.content_size.width, 1)
        lines = -(-line.cell_len // width)
        box.update(line, layout=lines != self._summary_lines)
        self._summary_lines = lines

    # -- actions ----------------------------------------------------------------------------
    def action_filter(self) -> None:
        """Show the filter input."""
        box = self.query_one("#fleet-filter", Input)
        box.remove_class("-hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        """Clear the filter and go back to the table."""
        box = self.query_one("#fleet-filter", Input)
        box.value = ""
        box.add_class("-hidden")
        table = self.query_one(FleetTable)
        table.filter("", FILTER_COLUMNS)
        table.focus()

    @on(Input.Changed, "#fleet-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one(FleetTable).filter(event.value.strip(), FILTER_COLUMNS)

    @on(Input.Submitted, "#fleet-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.add_class("-hidden")
        self.query_one(FleetTable).focus()

    def action_sort_next(self) -> None:
        """Sort by the next column."""
        self.sort_key = self.query_one(FleetTable).next_sort_key(self.sort_key, COLUMN_KEYS)
        self.descending = self.sort_key not in ("node", "network", "status", "net", "source")
        self._sort()

    def action_sort_reverse(self) -> None:
        """Reverse the sort order."""
        self.descending = not self.descending
        self._sort()

    def _sort(self) -> None:
        table = self.query_one(FleetTable)
        table.sort_by(self.sort_key, self.descending)
        table.cursor_to_top()

    @on(FleetTable.SortChanged)
    def _sorted(self, event: FleetTable.SortChanged) -> None:
        self.sort_key, self.descending = event.column_key, event.descending
        event.control.cursor_to_top()

    def action_group_next(self) -> None:
        """No grouping → network → source → each node label key → none."""
        options = [*GROUPS, *self.label_keys]
        at = options.index(self.group) if self.group in options else 0
        self.group = options[(at + 1) % len(options)]
        table = self.query_one(FleetTable)
        if self.group in GROUPS:
            table.group_by(self.group)
            table.cursor_to_top()
            if table.columns and table.columns[-1].key == LABEL_COLUMN:
                self.reload()  # drop the label column
        else:
            self.reload()  # the rows must carry this label's values first
        self._summary(self._rows)

    @on(FleetTable.RowSelected)
    def _open_node(self, event: FleetTable.RowSelected) -> None:
        self.app.push_screen(NodeScreen(*split_key(event.key)))

    def table_export(self) -> TableExport:
        """The rows as shown (filter, sort, grouping order), every column's raw value."""
        return from_fleet_table("fleet", self.query_one(FleetTable), ("reward_24h",))


def _poll_name(source_kind: str) -> str:
    return {"exporter": "fleet", "promql": "promql", "local": "local"}.get(source_kind, "fleet")
