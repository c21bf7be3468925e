"""Overview: the DePIN market at a glance and how fresh every source is."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from cache.queries import CoinRow, PollInfo, Rankings, SourceState, latest_rankings, source_states
from screens.base import CacheScreen, ReadContext
from screens.host import host
from screens.render import age, local_time, missing, pct, text, usd_compact
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine

MOVERS = 5


@dataclass(frozen=True)
class OverviewData:
    """What the overview draws."""

    rankings: Rankings | None
    states: list[SourceState]


def movers(coins: list[CoinRow], *, gainers: bool) -> list[CoinRow]:
    """Top gainers or losers over 24 h; projects without a 24 h change are left out."""
    known = [c for c in coins if c.change_24h_pct is not None]
    known.sort(key=lambda c: c.change_24h_pct or 0.0, reverse=gainers)
    chosen = known[:MOVERS]
    return (
        [c for c in chosen if (c.change_24h_pct or 0) > 0]
        if gainers
        else [c for c in chosen if (c.change_24h_pct or 0) < 0]
    )


LOOK_OFFER = 300.0
"""Seconds since the last look before the Overview offers "what changed"."""


class OverviewScreen(CacheScreen[OverviewData, None]):
    """Tracked market cap, project count, movers, and the freshness of each source."""

    SOURCES = ("coingecko",)

    def compose(self) -> ComposeResult:
        """Headline figures, two mover tables side by side, the sources table."""
        yield NavBar("overview")

        with VerticalScroll(id="overview-body"):
            yield Static(id="overview-headline", classes="screen-title")
            yield Static(id="overview-last-look", classes="dim")
            with Horizontal(id="overview-movers"):
                with Vertical(classes="movers"):
                    yield Static("Top gainers 24h", classes="section-title")
                    yield DataTable(id="gainers", cursor_type="none", show_header=False)
                with Vertical(classes="movers"):
                    yield Static("Top losers 24h", classes="section-title")
                    yield DataTable(id="losers", cursor_type="none", show_header=False)
            yield Static("Sources", classes="section-title")
            yield DataTable(id="overview-sources", cursor_type="none")
        yield StatusLine()
        yield KeysFooter()

    def on_mount(self) -> None:
        """Fixed column widths."""
        super().on_mount()
        for table_id in ("#gainers", "#losers"):
            table = self.query_one(table_id, DataTable)
            table.add_column("name", width=16)
            table.add_column("symbol", width=6)
            table.add_column("24h", width=8)
        sources = self.query_one("#overview-sources", DataTable)
        for label, width in (
            ("Source", 10),
            ("State", 12),
            ("Last good", 16),
            ("Age", 7),
            ("Items", 5),
            ("Last error", 26),
        ):
            sources.add_column(label, width=width)

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[None]
    ) -> tuple[OverviewData, PollInfo | None]:
        """The rankings snapshot to summarise and every source's state."""
        at = ctx.at
        rankings = latest_rankings(conn, at)
        return OverviewData(rankings, source_states(conn, at)), rankings.poll if rankings else None

    def _last_look(self) -> None:
        """Offer "what changed since you last looked" when this database was looked at before."""
        app = host(self)
        looked = app.last_looked()
        box = self.query_one("#overview-last-look", Static)
        # worth offering once something could have changed: not right after a restart
        box.display = looked is not None and (app.now() - looked).total_seconds() >= LOOK_OFFER
        if looked is not None:
            ago = age((app.now() - looked).total_seconds())
            box.update(
                Text.assemble(
                    f"You last looked {ago} ago ({local_time(looked, True)}): ",
                    ("6", "bold"),
                    " shows what changed since.",
                )
            )

    def render_data(self, data: Any) -> None:
        """Fill the headline, movers and sources."""
        data = data or OverviewData(None, [])
        self._headline(data.rankings)
        self._last_look()
        coins = data.rankings.coins if data.rankings else []
        for table_id, gainers in (("#gainers", True), ("#losers", False)):
            table = self.query_one(table_id, DataTable)
            table.clear()
            table.add_rows(
                [
                    (
                        text(c.name, max_len=40),
                        text(c.symbol and c.symbol.upper()),
                        pct(c.change_24h_pct),
                    )
                    for c in movers(coins, gainers=gainers)
                ]
            )
        self._sources(data.states)

    def _headline(self, rankings: Rankings | None) -> None:
        headline = Text()
        if rankings is None:
            headline.append("No rankings cached yet.", style="bold")
            if host(self).offline:
                headline.append(" Offline: nothing to poll.")
        else:
            caps = [c.market_cap_usd for c in rankings.coins if c.market_cap_usd is not None]
            headline.append("Tracked market cap ", style="bold")
            headline.append(usd_compact(sum(caps)) if caps else "—")
            headline.append(f"  ({len(caps)} with a market cap)" if caps else "")
            headline.append("   Projects ", style="bold")
            headline.append(str(len(rankings.coins)))
            if rankings.poll.is_sample:
                headline.append(
                    "\nBundled sample of 2024-06-30 (DePIN+AI report); "
                    "live rankings replace it after the first poll.",
                    style="italic",
                )
        self.query_one("#overview-headline", Static).update(headline)

    def _sources(self, states: list[SourceState]) -> None:
        table = self.query_one("#overview-sources", DataTable)
        table.clear()
        app = host(self)
        now = app.now()
        for state in states:
            good = state.last_ok
            note = app.source_note(state.source)
            if state.last.status == "failed":
                status = Text("failing", style="bold red")
            elif (
                good
                and state.source != "sample"
                and (now - good.finished_at).total_seconds() > 2 * app.source_interval(state.source)
            ):
                status = Text("stale", style="bold yellow")
            else:
                status = Text("ok", style="green")
            if note:  # "rate limited until …", "paused: check API key", "circuit open until …"
                status = Text(note.split(" until")[0].split(":")[0], style="bold yellow")
            error = missing()
            if state.last.status == "failed":
                error = text(f"{state.last.error_kind}: {state.last.error}", max_len=120)
            # the sample's data is from 2024, whenever it was stored: show the data's date
            when = (good.data_at if good.is_sample else good.finished_at) if good else None
            table.add_row(
                text(state.source),
                status,
                Text(local_time(when, True)) if when else missing(),
                Text(age((now - when).total_seconds())) if when else missing(),
                Text(str(good.items), justify="right") if good else missing(),
                error,
            )
