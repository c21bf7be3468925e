"""History: what changed between two times, "from" and "to".

"From" defaults to when you last looked, "to" is now or the time-travel moment. Sections: nodes
down, gone, up and new; ranking moves; network deltas; rewards earned in between.

Everything comes from :func:`cache.diff.changes`, which reads the cache as of each end, so a
time-travelling user never sees anything stored after "to".
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.widgets import Input, Static

from cache.diff import Changes, CoinMove, MetricDelta, NodeChange
from cache.diff import changes as read_changes
from cache.queries import MetricValue, PollInfo, latest_good_poll
from cache.timeparse import EXAMPLES, parse_moment
from screens.base import CacheScreen, ReadContext
from screens.host import ExplorerHost, host
from screens.networks import LABELS, NETWORK_SOURCES, format_value
from screens.render import local_time, missing, pct, text, usd_price
from screens.table_export import HIDDEN, TableExport, changes_export
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine

DEFAULT_WINDOW = timedelta(hours=24)
MAX_LINES = 8  # per section: the four sections stay on screen together at 120x40
HISTORY_SOURCES = ("fleet", "promql", "local", "coingecko", "ionet-devices", *NETWORK_SOURCES)
NODE_STYLES = {
    "down": ("▼ down", "bold red"),
    "gone": ("✕ gone", "bold yellow"),
    "up": ("▲ up", "green"),
    "new": ("+ new", "cyan"),
}


@dataclass(frozen=True)
class HistoryData:
    """The two ends, why "from" is what it is, and the changes (None when from >= to)."""

    since: datetime
    until: datetime
    reason: str
    changes: Changes | None


def last_looked(app: ExplorerHost) -> datetime | None:
    """The host's last look, or None (never looked, or a host without a state file)."""
    method = getattr(app, "last_looked", None)
    return method() if callable(method) else None


def span(seconds: float) -> str:
    """How far apart two times are: 45 s, 20 min, 3 h 20 min, 2 d 4 h."""
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60 % 60, seconds // 3600 % 24, seconds // 86400
    if days:
        return f"{days} d" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min"


def _grid(*ratios: int | None) -> Table:
    table = Table.grid(padding=(0, 1), expand=True)
    for ratio in ratios:
        table.add_column(no_wrap=True, overflow="ellipsis", ratio=ratio)
    return table


def _more(table: Table, shown: int, total: int) -> None:
    if total > shown:
        table.add_row(Text(f"… {total - shown} more", style="dim"))


def _no_change(why: str) -> Text:
    return Text.assemble(("no change", "bold"), (f"  ({why})" if why else "", "dim"))


def _signed(m: MetricDelta) -> str:
    """The delta in the figure's own unit, with its sign: +20, −1.5 TiB, +$3.20."""
    shown = format_value(MetricValue(m.network, m.metric, abs(m.delta), m.unit, "", m.after_at))
    return ("+" if m.delta > 0 else "−") + shown


def _value(m: MetricDelta, value: float) -> str:
    return format_value(MetricValue(m.network, m.metric, value, m.unit, "", m.after_at))


def _window(
    until: datetime, chosen: datetime | None, looked: datetime | None
) -> tuple[datetime, str]:
    if chosen is not None:
        return chosen, "from the time you picked"
    if looked is not None and looked < until:
        return looked, "since you last looked"
    return until - DEFAULT_WINDOW, "over the last 24 h"


class HistoryScreen(CacheScreen[HistoryData, tuple[datetime | None, datetime | None]]):
    """What changed between two times; ``s`` picks "from", ``l`` goes back to the last look."""

    SOURCES = HISTORY_SOURCES
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding(
            "s",
            "pick_since",
            "From",
            id="history.since",
            tooltip='Compare from another time: "2026-11-20 14:00", "-3h", "-2d"',
        ),
        Binding(
            "l",
            "since_last_looked",
            "Last look",
            id="history.last_looked",
            tooltip="Compare from when you last looked (else the last 24 h)",
        ),
        Binding(
            "d",
            "last_day",
            "24 h",
            id="history.day",
            tooltip="Compare with 24 hours before",
        ),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            show=False,
            id="history.cancel",
            tooltip="Close the time field",
        ),
    ]

    def __init__(self, since: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chosen: datetime | None = since
        """A "from" the user picked; None follows the default (last look, else 24 h)."""
        self.shown_data: HistoryData | None = None

    def compose(self) -> ComposeResult:
        """Title, a message line, four sections, the hidden "from" field."""
        yield NavBar("history")
        with VerticalScroll(id="history-body"):
            yield Static(id="history-title", classes="screen-title")
            yield Static(id="history-message", classes="-hidden")
            with Grid(id="history-grid"):
                for key in ("nodes", "rankings", "networks", "rewards"):
                    with Vertical(classes="history-section"):
                        yield Static(
                            key.title(), id=f"history-{key}-title", classes="section-title"
                        )
                        yield Static(id=f"history-{key}")
        yield Input(
            placeholder=f"from: {EXAMPLES} (Esc: cancel)", id="history-since", classes="-hidden"
        )
        yield StatusLine()
        yield KeysFooter()

    # -- the two ends -------------------------------------------------------------------------
    def window(self, until: datetime) -> tuple[datetime, str]:
        """The start for a given end ("to"), and why: picked, the last look, or 24 h before."""
        return _window(until, self.chosen, last_looked(host(self)))

    def read_options(self) -> tuple[datetime | None, datetime | None]:
        """(the "from" the user picked, when they last looked), as they are now."""
        return self.chosen, last_looked(host(self))

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[tuple[datetime | None, datetime | None]]
    ) -> tuple[HistoryData, PollInfo | None]:
        """The changes between the two ends, read as of each (runs in a worker thread)."""
        until = ctx.now
        since, reason = _window(until, *ctx.options)
        found = read_changes(conn, since, until) if since < until else None
        return HistoryData(since, until, reason, found), latest_good_poll(
            conn, HISTORY_SOURCES, at=until
        )

    # -- drawing ------------------------------------------------------------------------------
    def render_data(self, data: HistoryData | None) -> None:
        """Title and the four sections; an empty section says "no change"."""
        self.shown_data = data
        found = data.changes if data else None
        if data is None:
            self.query_one("#history-title", Static).update(Text("Nothing cached to compare yet."))
        else:
            self._draw_title(data)
        if found is None:
            why = "nothing cached yet"
            if data is not None:
                why = '"from" is not before "to": press s to pick another time'
            for key in ("nodes", "rankings", "networks", "rewards"):
                self.query_one(f"#history-{key}", Static).update(_no_change(why))
            return
        self._draw_nodes(found)
        self._draw_rankings(found)
        self._draw_networks(found)
        self._draw_rewards(found)

    def _draw_title(self, data: HistoryData) -> None:
        travelling = getattr(host(self), "at", None) is not None
        title = Text.assemble(
            ("What changed  ", "bold"),
            local_time(data.since, True),
            " → ",
            local_time(data.until, True),
            ("  (time travel)" if travelling else "", "bold yellow"),
            (f"  {span((data.until - data.since).total_seconds())} apart", "dim"),
        )
        title.append(f"\n{data.reason}", style="italic")
        title.append("  ·  s: from another time  l: last look  d: 24 h", style="dim")
        self.query_one("#history-title", Static).update(title)

    def _section(self, key: str, heading: Text, body: RenderableType) -> None:
        self.query_one(f"#history-{key}-title", Static).update(heading)
        self.query_one(f"#history-{key}", Static).update(body)

    def _draw_nodes(self, found: Changes) -> None:
        heading = Text("Nodes", style="bold")
        counts = {kind: sum(1 for c in found.nodes if c.kind == kind) for kind in NODE_STYLES}
        parts = [(f"{n} {kind}", NODE_STYLES[kind][1]) for kind, n in counts.items() if n]
        for label, style in parts:
            heading.append("  ")
            heading.append(label, style=style)
        if parts:  # "2 down  1 new  of 6"; with nothing counted, the line below says how many
            heading.append(f"  of {found.fleet_after}", style="dim")
        if not found.nodes:
            why = f"{found.fleet_after} nodes" if found.fleet_after else "no fleet nodes stored"
            self._section("nodes", heading, _no_change(why))
            return
        table = _grid(None, 3, 4)
        for change in found.nodes[:MAX_LINES]:
            table.add_row(*self._node_cells(change))
        _more(table, MAX_LINES, len(found.nodes))
        self._section("nodes", heading, table)

    def _node_cells(self, change: NodeChange) -> tuple[Text, Text, Text]:
        label, style = NODE_STYLES[change.kind]
        if change.kind == "gone":
            detail = Text(f"last seen {local_time(change.last_seen, True)}", style="dim")
        elif change.error:
            detail = text(change.error, "red", max_len=120)
        else:
            where = " · ".join(p for p in (change.source_kind, change.network) if p)
            detail = text(where, "dim")
            if change.kind == "new" and not change.up:
                detail = Text("down", style="bold red")
        return Text(label, style=style), text(change.node, max_len=60), detail

    def _draw_rankings(self, found: Changes) -> None:
        ranks = found.rankings
        heading = Text("Rankings", style="bold")
        if ranks.moves or ranks.new or ranks.dropped:
            heading.append(
                f"  {len(ranks.moves)} moved · {len(ranks.new)} new · {len(ranks.dropped)} dropped",
                style="dim",
            )
        if ranks.before is None:
            self._section("rankings", heading, _no_change("no rankings stored by then"))
            return
        if not ranks.comparable:
            why = "only the bundled 2024 sample was stored by then"
            self._section("rankings", heading, _no_change(why))
            return
        if ranks.after and ranks.before.id == ranks.after.id:
            self._section("rankings", heading, _no_change("no rankings polled in between"))
            return
        if not (ranks.moves or ranks.new or ranks.dropped):
            self._section("rankings", heading, _no_change("same ranks and prices"))
            return
        table = _grid(None, 1, None, None, None)
        for move in ranks.moves[:MAX_LINES]:
            table.add_row(*self._move_cells(move))
        _more(table, MAX_LINES, len(ranks.moves))
        lines: list[RenderableType] = [table]
        for label, coins, rank_of in (
            ("new", ranks.new, lambda m: m.rank_after),
            ("dropped", ranks.dropped, lambda m: m.rank_before),
        ):
            if coins:
                line = Text(f"{label}: ", style="bold")
                for i, coin in enumerate(coins[:MAX_LINES]):
                    line.append(", " if i else "")
                    line.append_text(text(coin.name, max_len=30))
                    line.append(f" #{rank_of(coin)}" if rank_of(coin) is not None else "")
                if len(coins) > MAX_LINES:
                    line.append(f" … {len(coins) - MAX_LINES} more", style="dim")
                lines.append(line)
        body = Table.grid()
        for part in lines:
            body.add_row(part)
        self._section("rankings", heading, body)

    @staticmethod
    def _move_cells(move: CoinMove) -> tuple[Text, ...]:
        places = move.rank_move or 0
        arrow = (
            Text(f"▲{places}", style="green")
            if places > 0
            else Text(f"▼{-places}", style="red")
            if places < 0
            else Text("=", style="dim")
        )
        name = text(move.name, max_len=40)
        if move.symbol:
            name.append(" ")
            name.append_text(text(move.symbol.upper(), "dim", max_len=12))
        ranks = Text(
            f"#{move.rank_before if move.rank_before is not None else '—'}"
            f" → #{move.rank_after if move.rank_after is not None else '—'}"
        )
        prices = Text(f"{usd_price(move.price_before)} → {usd_price(move.price_after)}")
        return arrow, name, ranks, prices, pct(move.price_change_pct)

    def _draw_networks(self, found: Changes) -> None:
        moved = found.metrics_changed
        heading = Text("Networks", style="bold")
        if found.metrics:
            heading.append(f"  {len(moved)} of {len(found.metrics)} figures moved", style="dim")
        if not moved:
            why = "same figures" if found.metrics else "no figures stored at both times"
            self._section("networks", heading, _no_change(why))
            return
        table = _grid(None, 1, None, None, None)
        for m in moved[:MAX_LINES]:
            label = LABELS.get(m.metric, m.metric.replace("_", " "))
            style = "green" if m.delta > 0 else "red"
            table.add_row(
                text(m.network, "bold", 20),
                text(label, max_len=40),
                text(f"{_value(m, m.before)} → {_value(m, m.after)}"),
                text(_signed(m), style),
                pct(m.pct) if m.pct is not None else missing(),
            )
        _more(table, MAX_LINES, len(moved))
        self._section("networks", heading, table)

    def _draw_rewards(self, found: Changes) -> None:
        heading = Text("Rewards", style="bold")
        totals: dict[str, float] = {}
        for r in found.rewards:
            totals[r.token] = totals.get(r.token, 0.0) + r.amount
        private = host(self).private  # screen sharing: amounts hidden, who earned stays

        def amount_of(amount: float) -> str:
            return HIDDEN if private else f"{amount:,.4f}"

        if totals:
            earned = ", ".join(f"{amount_of(a)} {token}" for token, a in sorted(totals.items()))
            heading.append("  earned ", style="dim")
            heading.append_text(text(earned))
        if not found.rewards:
            self._section("rewards", heading, _no_change("no rewards stored for blocks in between"))
            return
        table = _grid(1, None, None, None)
        for r in found.rewards[:MAX_LINES]:
            who = text(r.node, max_len=60) if r.node else text(f"device {r.device_id}", "dim", 24)
            table.add_row(
                who,
                text(r.network, "dim", 20),
                text(f"{amount_of(r.amount)} {r.token}"),
                Text(f"{r.paid} of {r.count} blocks paid", style="dim"),
            )
        _more(table, MAX_LINES, len(found.rewards))
        self._section("rewards", heading, table)

    def table_export(self) -> TableExport | None:
        """Every change of the four sections (not only the lines on screen), one per row."""
        found = self.shown_data.changes if self.shown_data else None
        return changes_export(found) if found is not None else None

    # -- picking "from" -----------------------------------------------------------------------
    def _say(self, message: Text | None) -> None:
        box = self.query_one("#history-message", Static)
        box.set_class(message is None, "-hidden")
        box.update(message or "")

    def action_pick_since(self) -> None:
        """Show the "from" field."""
        field = self.query_one("#history-since", Input)
        field.remove_class("-hidden")
        field.focus()

    def action_cancel(self) -> None:
        """Close the "from" field, keeping the current "from"."""
        self.query_one("#history-since", Input).add_class("-hidden")
        self._say(None)
        self.query_one("#history-body").focus()

    def action_since_last_looked(self) -> None:
        """Back to the default: since the last look (else the last 24 h)."""
        self.chosen = None
        if last_looked(host(self)) is None:
            self._say(Text("No last look recorded yet: showing the last 24 h.", style="italic"))
        else:
            self._say(None)
        self.reload()

    def action_last_day(self) -> None:
        """Compare with 24 hours before "to"."""
        self.chosen = host(self).now() - DEFAULT_WINDOW
        self._say(None)
        self.reload()

    @on(Input.Submitted, "#history-since")
    def _since_submitted(self, event: Input.Submitted) -> None:
        now = host(self).now()
        try:
            moment = parse_moment(event.value, now)
            if moment >= now:
                raise ValueError(f'"from" must be before "to" ({local_time(now, True)})')
        except ValueError as exc:  # keep the old "from" and the field open to correct it
            self._say(Text.assemble(("Not changed: ", "bold red"), text(str(exc), max_len=300)))
            return
        self.chosen = moment
        event.input.value = ""
        self.action_cancel()
        self.reload()
