"""The top line: numbered top-level screens, the current one highlighted (k9s-style)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

SCREENS: list[tuple[str, str, str]] = [
    ("1", "overview", "Overview"),
    ("2", "rankings", "Rankings"),
    ("3", "networks", "Networks"),
    ("4", "fleet", "Fleet"),
    ("5", "rewards", "Rewards"),
    ("6", "history", "History"),
    ("7", "sources", "Sources"),
    ("8", "alerts", "Alerts"),
]


SHORT = {
    "overview": "Over",
    "rankings": "Rank",
    "networks": "Net",
    "rewards": "Rew",
    "history": "Hist",
    "sources": "Src",
    "alerts": "Alrt",
}


class NavBar(Static):
    """Which screens exist, their keys, and where the user is."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, current: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # Static's own keyword arguments
        self.current = current

    def render(self) -> Text:
        """``depin-explorer  1 Overview  2 Rankings`` with the current screen in reverse.

        Narrow terminals drop the title, then shorten the labels, so every key stays visible.
        """
        room = self.content_size.width or 80
        for title, short in ((True, False), (False, False), (False, True)):
            line = self._line(title, short)
            if line.cell_len <= room:
                return line
        return line

    def _line(self, title: bool, short: bool) -> Text:
        line = Text("depin-explorer ", style="bold") if title else Text()
        for key, mode, label in SCREENS:
            style = "reverse bold" if mode == self.current else ""
            shown = SHORT.get(mode, label) if short else label
            line.append(f" {key} {shown} ", style=style)
            line.append(" ")
        line.rstrip()
        return line
