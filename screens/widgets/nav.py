"""The top line: numbered top-level screens, the current one highlighted (k9s-style)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

SCREENS: list[tuple[str, str, str]] = [
    ("1", "overview", "Overview"),
    ("2", "rankings", "Rankings"),
    ("3", "networks", "Networks"),
    ("4", "fleet", "Fleet"),
    ("7", "sources", "Sources"),
]


class NavBar(Static):
    """Which screens exist, their keys, and where the user is."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, current: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.current = current

    def render(self) -> Text:
        """``depin-explorer  1 Overview  2 Rankings`` with the current screen in reverse."""
        line = Text("depin-explorer", style="bold")
        for key, mode, label in SCREENS:
            style = "reverse bold" if mode == self.current else ""
            line.append(" ")
            line.append(f" {key} {label} ", style=style)
        return line
