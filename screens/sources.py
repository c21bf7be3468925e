"""Sources: every source's state, last success, latency, items, last error and next poll."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from cache.queries import PollInfo, SourceState, latest_good_poll, poll_errors, source_states
from screens.base import CacheScreen, ReadContext
from screens.host import SourceRuntime, host
from screens.render import age, local_time, missing, text
from screens.table_export import TableExport
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine


@dataclass(frozen=True)
class SourceRow:
    """One line of the table: runtime facts joined with what the cache knows."""

    runtime: SourceRuntime
    state: SourceState | None
    endpoint_errors: list[tuple[str, str, str]]


def source_state(row: SourceRow, now: datetime, offline: bool) -> tuple[str, str]:
    """The state label and its style: disabled, offline, paused, rate limited, failing, ok."""
    runtime, state = row.runtime, row.state
    if not runtime.enabled:
        return "disabled", "dim"
    if offline and runtime.uses_network:
        label, _ = source_state(row, now, offline=False)  # what the cache last saw, offline
        return f"offline · {label}", "dim"
    if runtime.credential_level == "expired":
        return "token expired", "bold red"
    if runtime.note:
        return runtime.note, "bold yellow"
    if state is None:
        return "never polled", "dim"
    if state.last.retry_at and state.last.retry_at > now:
        return f"rate limited until {local_time(state.last.retry_at)}", "bold yellow"
    if state.last.status == "failed":
        return f"failing ×{state.failures_since_ok}", "bold red"
    if (
        state.last_ok
        and runtime.name != "sample"
        and (now - state.last_ok.finished_at).total_seconds() > 2 * runtime.interval
    ):
        return "stale", "bold yellow"
    if state.last.status == "partial":
        return "partial", "yellow"
    return "ok", "green"


class ErrorDetail(ModalScreen[None]):
    """The full text of a source's last error and of each failed endpoint."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="error.close")]

    def __init__(self, row: SourceRow) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        """The error texts, sanitised, in a scrollable box."""
        body = Text()
        state = self.row.state
        body.append(f"{self.row.runtime.name}\n", style="bold")
        if state is None or state.last.error is None:
            body.append("No error recorded.")
        else:
            body.append(f"last poll {local_time(state.last.finished_at, True)}: ")
            body.append_text(text(state.last.error_kind or "error", "bold"))
            body.append("\n")
            body.append_text(text(state.last.error, max_len=2000))
            for endpoint, kind, message in self.row.endpoint_errors:
                body.append("\n\n")
                body.append_text(text(endpoint, "bold", 200))
                body.append(f"  {kind}\n")
                body.append_text(text(message, max_len=2000))
        with VerticalScroll(id="error-box"):
            yield Static(body)

    def action_close(self) -> None:
        """Back to the table."""
        self.dismiss()


class SourcesScreen(CacheScreen[list[SourceRow], tuple[SourceRuntime, ...]]):
    """Every configured source and how it is doing."""

    SOURCES = ("coingecko", "ionet", "akash", "filecoin", "helium")
    BINDINGS = [
        Binding(
            "r",
            "poll_selected",
            "Poll now",
            id="sources.poll",
            tooltip="Poll the selected source now",
        ),
        Binding(
            "enter",
            "show_error",
            "Error",
            id="sources.error",
            tooltip="Full text of the selected source's last error",
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: list[SourceRow] = []

    def compose(self) -> ComposeResult:
        """Nav, title, table, status line, footer."""
        yield NavBar("sources")
        yield Static(Text("Sources", style="bold"), id="sources-title", classes="screen-title")
        yield DataTable(id="sources-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="sources-notes")
        yield StatusLine()
        yield KeysFooter()

    def on_mount(self) -> None:
        """Fixed columns."""
        super().on_mount()
        table = self.query_one(DataTable)
        for label, width in (
            ("Source", 15),  # "akash-providers"
            ("State", 22),  # "offline · never polled"
            ("Last success", 16),
            ("Age", 6),
            ("Latency", 8),
            ("Items", 6),
            ("Last error", 20),  # Enter shows all of it
            ("Next", 8),
        ):
            table.add_column(label, width=width)

    def read_options(self) -> tuple[SourceRuntime, ...]:
        """Every configured source as the running app knows it (schedule, notes)."""
        return tuple(host(self).source_runtimes())

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[tuple[SourceRuntime, ...]]
    ) -> tuple[list[SourceRow], PollInfo | None]:
        """Each configured source, its cache state and its last poll's failed endpoints."""
        states = {s.source: s for s in source_states(conn, ctx.at)}
        rows = []
        for runtime in ctx.options:
            state = states.get(runtime.name)
            errors = poll_errors(conn, state.last.id) if state else []
            rows.append(SourceRow(runtime, state, errors))
        # freshness of whatever was polled last, the sample and this machine included
        names = tuple(r.runtime.name for r in rows) or self.SOURCES
        return rows, latest_good_poll(conn, names, ctx.at)

    def render_data(self, data: list[SourceRow] | None) -> None:
        """Fill the table, keeping the cursor on the same source."""
        self.rows = data or []
        app = host(self)
        now = app.now()
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in self.rows:
            label, style = source_state(row, now, app.offline)
            last_ok = row.state.last_ok if row.state else None
            when = (
                (last_ok.data_at if last_ok.is_sample else last_ok.finished_at) if last_ok else None
            )
            last = row.state.last if row.state else None
            error = missing()
            if last is not None and last.error:
                error = text(f"{last.error_kind}: {last.error}", max_len=80)
            next_poll = missing()
            if (
                row.runtime.next_poll_at
                and row.runtime.enabled
                and not (app.offline and row.runtime.uses_network)
            ):
                next_poll = Text(local_time(row.runtime.next_poll_at))
            name = text(row.runtime.name)
            if row.runtime.insecure:
                name = Text.assemble(name, (" TLS off", "bold white on red"))
            table.add_row(
                name,
                Text(label, style=style),
                Text(local_time(when, True)) if when else missing(),
                Text(age((now - when).total_seconds())) if when else missing(),
                Text(f"{last.latency_ms:,.0f} ms", justify="right")
                if last and last.latency_ms is not None
                else missing(),
                Text(str(last_ok.items), justify="right") if last_ok else missing(),
                error,
                next_poll,
            )
        if self.rows:
            table.move_cursor(row=min(cursor, len(self.rows) - 1))
        notes = Text()
        for row in self.rows:
            if row.runtime.credential:
                style = {"warn": "bold yellow", "expired": "bold red"}.get(
                    row.runtime.credential_level, ""
                )
                notes.append(f"{row.runtime.name}: ", style="bold")
                notes.append(row.runtime.credential + "\n", style=style)
        box = self.query_one("#sources-notes", Static)
        notes.rstrip()  # in place: the last note's newline
        box.display = bool(notes)
        box.update(notes)

    def table_export(self) -> TableExport:
        """Each source's state as shown: times in UTC, the age in seconds."""
        app = host(self)
        now = app.now()
        rows = []
        for row in self.rows:
            last, last_ok = (row.state.last, row.state.last_ok) if row.state else (None, None)
            when = (
                (last_ok.data_at if last_ok.is_sample else last_ok.finished_at) if last_ok else None
            )
            rows.append(
                (
                    row.runtime.name,
                    source_state(row, now, app.offline)[0],
                    when,
                    (now - when).total_seconds() if when else None,
                    last.latency_ms if last else None,
                    last_ok.items if last_ok else None,
                    f"{last.error_kind}: {last.error}" if last and last.error else None,
                    row.runtime.next_poll_at if row.runtime.enabled else None,
                )
            )
        columns = (
            "source",
            "state",
            "last_success",
            "age_s",
            "latency_ms",
            "items",
            "last_error",
            "next_poll",
        )
        return TableExport("sources", columns, rows)

    def _selected(self) -> SourceRow | None:
        table = self.query_one(DataTable)
        if 0 <= table.cursor_row < len(self.rows):
            return self.rows[table.cursor_row]
        return None

    def action_poll_selected(self) -> None:
        """Poll the selected source now."""
        row = self._selected()
        if row is not None:
            host(self).request_poll(row.runtime.name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row: the table takes the key before the screen's binding sees it."""
        event.stop()
        self.action_show_error()

    def action_show_error(self) -> None:
        """Open the full error text."""
        row = self._selected()
        if row is not None:
            self.app.push_screen(ErrorDetail(row))
