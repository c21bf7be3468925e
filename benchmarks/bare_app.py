"""The first-paint peer: a bare Textual app with a header, a table and a footer.

Started by ``first_paint.py`` and ``rss.py`` as ``python benchmarks/bare_app.py``; it imports
nothing of the project, so its start is Python + Textual and nothing else.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header

MARKER = "bare-row-0019"  # the last row: on screen only once the table has painted
ROWS = 20


class BareApp(App[None]):
    TITLE = "bare textual"
    BINDINGS: ClassVar = [Binding("q", "quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable()
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("name", "symbol", "price", "24h")
        table.add_rows(
            (f"bare-row-{i:04d}", f"S{i}", f"{i * 1.5:.2f}", f"{i % 7 - 3:+d}%")
            for i in range(ROWS)
        )


if __name__ == "__main__":
    BareApp().run()
