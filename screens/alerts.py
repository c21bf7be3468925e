"""Alerts: what fires now and what fired before, as of now or the time-travel moment.

Firing alerts first (most severe first), then the history, newest first. ``s`` cycles the state
shown (all, firing, resolved), ``v`` the severity (all, critical, warning, info). The line under
the table gives the selected alert's whole message, which the table cuts at 80 columns.
Rules are evaluated by whoever polls (docs/config.md, ``[alerts]``); this screen only reads.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from cache.alerts import ALERT_KEYS, SEVERITY_ORDER, Alert, firing, history
from cache.queries import PollInfo, latest_good_poll
from screens.base import CacheScreen, ReadContext
from screens.host import host
from screens.render import age, missing, text
from screens.table_export import TableExport
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine

STATES: list[str | None] = [None, "firing", "resolved"]
SEVERITIES: list[str | None] = [None, "critical", "warning", "info"]
SHOWN = 500
"""Rows read at most; the CLI's ``export alerts`` gives the whole history."""
ALL_SOURCES = (
    "fleet",
    "promql",
    "local",
    "coingecko",
    "ionet",
    "ionet-devices",
    "akash",
    "akash-providers",
    "filecoin",
    "helium",
)
SEVERITY_STYLE = {"critical": "bold white on red", "warning": "bold yellow", "info": "cyan"}
SEVERITY_SHORT = {"critical": "CRIT", "warning": "warn", "info": "info"}
COLUMNS = (
    ("State", 8),
    ("Sev", 4),
    ("Rule", 16),
    ("Subject", 16),
    ("Started", 11),
    ("Lasted", 6),
)
"""Then the message, as wide as the rest of the terminal: no horizontal scroll."""
NARROW = 100
"""Below this width rule and subject get 11 cells each, so the message keeps a few."""
MESSAGE_MIN = 8


@dataclass(frozen=True)
class AlertsData:
    """The rows to show and the firing alerts (for the summary), both as of the same moment."""

    alerts: list[Alert]
    firing: list[Alert]
    resolved: int


def ordered(alerts: list[Alert]) -> list[Alert]:
    """Firing first, most severe first, newest first within; then resolved, newest first."""
    return sorted(
        alerts,
        key=lambda a: (
            not a.firing,
            SEVERITY_ORDER.get(a.severity, 3) if a.firing else 0,
            -a.started_at.timestamp(),
        ),
    )


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%m-%d %H:%M")


class AlertsScreen(CacheScreen[AlertsData, tuple[str | None, str | None]]):
    """Firing and resolved alerts; filter by state and severity."""

    SOURCES = ALL_SOURCES
    AUTO_FOCUS = "DataTable"
    DEFAULT_CSS = """
    AlertsScreen #alerts-table { height: 1fr; }
    AlertsScreen #alerts-detail { height: auto; max-height: 3; }
    """
    BINDINGS = [
        Binding(
            "s",
            "next_state",
            "State",
            id="alerts.state",
            tooltip="Show all alerts, only firing ones, or only resolved ones",
        ),
        Binding(
            "v",
            "next_severity",
            "Severity",
            id="alerts.severity",
            tooltip="Show every severity, or only critical, warning or info",
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state: str | None = None
        self.severity: str | None = None
        self.shown: list[Alert] = []
        self._width = 0
        self._data: AlertsData | None = None

    def compose(self) -> ComposeResult:
        """Nav, summary, table, the selected alert's message, status line, footer."""
        yield NavBar("alerts")
        yield Static(id="alerts-summary", classes="screen-title")
        yield DataTable(id="alerts-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="alerts-detail", classes="dim")
        yield StatusLine()
        yield KeysFooter()

    def _layout(self) -> None:
        """Columns for this width: the message takes what the others leave."""
        width = self.size.width or 80
        if width == self._width:
            return
        self._width = width
        columns = [
            (n, 11 if width < NARROW and n in ("Rule", "Subject") else w) for n, w in COLUMNS
        ]
        fixed = sum(w for _, w in columns) + 2 * (len(columns) + 1) + 2  # cell padding, scrollbar
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for label, column_width in columns:
            table.add_column(label, width=column_width)
        table.add_column("Message", width=max(MESSAGE_MIN, width - fixed))

    def on_resize(self) -> None:
        """Lay the columns out again for the new width."""
        if self._data is not None:
            self.render_data(self._data)

    def read_options(self) -> tuple[str | None, str | None]:
        """The (severity, state) filters."""
        return self.severity, self.state

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[tuple[str | None, str | None]]
    ) -> tuple[AlertsData, PollInfo | None]:
        """The alerts that had fired by the moment shown, with the state and severity filters."""
        at = ctx.at
        severity, state = ctx.options
        rows = history(conn, at, severity=severity, state=state, limit=SHOWN)
        now_firing = firing(conn, at)
        resolved = len(history(conn, at, state="resolved", limit=SHOWN))
        data = AlertsData(ordered(rows), now_firing, resolved)
        return data, latest_good_poll(conn, ALL_SOURCES, at)

    def _summary(self, data: AlertsData) -> Text:
        out = Text("Alerts  ", style="bold")
        if data.firing:
            counts = {s: sum(a.severity == s for a in data.firing) for s in SEVERITY_ORDER}
            out.append(f"{len(data.firing)} firing", style="bold red")
            parts = [f"{n} {s}" for s, n in counts.items() if n]
            out.append(f" ({', '.join(parts)})")
        else:
            out.append("none firing", style="green")
        more = f"{SHOWN}+" if data.resolved >= SHOWN else str(data.resolved)
        out.append(f" · {more} resolved")
        shown = " · ".join(f for f in (self.state, self.severity) if f)
        if shown:
            out.append(f"   showing {shown}", style="bold")
        return out

    def render_data(self, data: AlertsData | None) -> None:
        """Fill the table, keeping the cursor on the same row number."""
        data = data or AlertsData([], [], 0)
        self._data = data
        self.shown = data.alerts
        self._layout()
        self.query_one("#alerts-summary", Static).update(self._summary(data))
        now = host(self).now()
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for alert in self.shown:
            end = alert.resolved_at or now
            state = (
                Text("● firing", style="bold red") if alert.firing else Text("resolved", "green")
            )
            table.add_row(
                state,
                Text(
                    SEVERITY_SHORT.get(alert.severity, alert.severity),
                    SEVERITY_STYLE.get(alert.severity, ""),
                ),
                text(alert.rule, max_len=60),
                text(alert.subject, max_len=60),
                Text(_when(alert.started_at)),
                Text(age((end - alert.started_at).total_seconds()), justify="right"),
                text(alert.message, max_len=300),
            )
        if self.shown:
            table.move_cursor(row=min(cursor, len(self.shown) - 1))
        self._show_detail()

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        """The detail line follows the cursor."""
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#alerts-detail", Static)
        row = self.query_one(DataTable).cursor_row
        if not self.shown:
            filtered = self.state or self.severity
            detail.update(
                Text("no alerts match the filter" if filtered else "no alerts have fired")
            )
            return
        if not 0 <= row < len(self.shown):
            detail.update(missing())
            return
        alert = self.shown[row]
        out = Text.assemble(text(alert.rule, "bold", 60), " · ", text(alert.subject, "bold", 60))
        if alert.resolved_at:
            out.append(f" · resolved {_when(alert.resolved_at)}")
        out.append("\n")
        out.append_text(text(alert.message, max_len=500))
        out.no_wrap = False
        detail.update(out)

    def table_export(self) -> TableExport:
        """What ``e`` writes: the alerts shown, in order, with the keys of ``export alerts``."""
        return TableExport("alerts", ALERT_KEYS, [tuple(a.record().values()) for a in self.shown])

    def action_next_state(self) -> None:
        """All, firing, resolved."""
        self.state = STATES[(STATES.index(self.state) + 1) % len(STATES)]
        self.reload()

    def action_next_severity(self) -> None:
        """All, critical, warning, info."""
        self.severity = SEVERITIES[(SEVERITIES.index(self.severity) + 1) % len(SEVERITIES)]
        self.reload()
