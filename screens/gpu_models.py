"""GPU models on offer in a network: availability and price per GPU-hour."""

from __future__ import annotations

import sqlite3
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from cache.queries import GpuModelRow, PollInfo, latest_good_poll, latest_gpu_models
from screens.base import CacheScreen, ReadContext
from screens.host import host
from screens.render import age, integer, missing, text
from screens.table_export import TableExport
from screens.widgets.keys_footer import KeysFooter
from screens.widgets.nav import NavBar
from screens.widgets.status_line import StatusLine

GPU_SOURCES = ("ionet", "akash")


class GpuModelsScreen(CacheScreen[list[GpuModelRow], str | None]):
    """Pushed from Networks with Enter; Escape goes back."""

    SOURCES = GPU_SOURCES
    BINDINGS = [
        Binding(
            "escape,backspace", "back", "Back", id="gpu_models.back", tooltip="Back to the networks"
        ),
        Binding(
            "a",
            "all_networks",
            "All networks",
            id="gpu_models.all",
            tooltip="Show every network's GPU models",
        ),
    ]

    def __init__(self, network: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.network = network
        self.models: list[GpuModelRow] = []

    def compose(self) -> ComposeResult:
        """Nav, title, the table, status line, footer."""
        yield NavBar("networks")
        yield Static(id="gpu-title", classes="screen-title")
        yield DataTable(id="gpu-table", cursor_type="row", zebra_stripes=True)
        yield StatusLine()
        yield KeysFooter()

    def on_mount(self) -> None:
        """Fixed column widths."""
        super().on_mount()
        table = self.query_one(DataTable)
        for label, width in (
            ("Network", 8),
            ("Model", 22),
            ("GB", 5),
            ("Cards", 5),
            ("Total", 6),
            ("Avail", 6),
            ("$/GPU-h", 8),
            ("Age", 6),
        ):
            table.add_column(label, width=width)

    def action_back(self) -> None:
        """Back to the networks."""
        self.dismiss()

    def action_all_networks(self) -> None:
        """Drop the network filter."""
        self.network = None
        self.reload()

    def table_export(self) -> TableExport:
        """The GPU models as shown."""
        columns = (
            "network",
            "model",
            "memory_gb",
            "cards",
            "total",
            "available",
            "price_usd_gpu_hour",
            "fetched_at",
        )
        rows = [
            (
                m.network,
                m.model,
                m.memory_gb,
                m.cards,
                m.total,
                m.available,
                m.price_usd_gpu_hour,
                m.fetched_at,
            )
            for m in self.models
        ]
        return TableExport(f"gpu-models-{self.network or 'all'}", columns, rows)

    def read_options(self) -> str | None:
        """The network shown (None: every network)."""
        return self.network

    def read(
        self, conn: sqlite3.Connection, ctx: ReadContext[str | None]
    ) -> tuple[list[GpuModelRow], PollInfo | None]:
        """The latest catalogue of each network."""
        network = ctx.options
        models = [
            m for m in latest_gpu_models(conn, ctx.at) if network is None or m.network == network
        ]
        return models, latest_good_poll(conn, GPU_SOURCES, ctx.at)

    def render_data(self, data: list[GpuModelRow] | None) -> None:
        """Fill the table; prices and counts a network does not publish stay "—"."""
        models: list[GpuModelRow] = data or []
        self.models = models
        now = host(self).now()
        table = self.query_one(DataTable)
        table.clear()
        table.add_rows(
            [
                (
                    text(m.network),
                    text(m.model, max_len=60),
                    Text(f"{m.memory_gb:g}", justify="right")
                    if m.memory_gb is not None
                    else missing(),
                    integer(m.cards),
                    integer(m.total),
                    integer(m.available),
                    Text(f"${m.price_usd_gpu_hour:,.2f}", justify="right")
                    if m.price_usd_gpu_hour is not None
                    else missing(),
                    Text(age((now - m.fetched_at).total_seconds()), style="dim"),
                )
                for m in models
            ]
        )
        scope = self.network or "all networks"
        title = Text.assemble(("GPU models", "bold"), f"  ·  {scope}  ·  {len(models)} models")
        if not models:
            title.append("  ·  none cached yet", style="bold")
        self.query_one("#gpu-title", Static).update(title)
