"""The `t` prompt: which moment every screen should show ("2026-11-20 14:00", "-3h", "now")."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from cache.timeparse import parse_moment
from screens.render import local_time

LIVE = "live"


class TimeTravelPrompt(ModalScreen[datetime | str | None]):
    """Ask for a moment. Dismisses with a UTC datetime, ``"live"``, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="travel.cancel")]

    def __init__(self, current: datetime | None, now: datetime) -> None:
        super().__init__()
        self.current = current
        self.now = now

    def compose(self) -> ComposeResult:
        """A title, the input and a line for the answer to a bad input."""
        where = (
            f"now showing the cache as of {local_time(self.current, True)}"
            if self.current
            else "now showing live data"
        )
        with Vertical(id="travel-box"):
            yield Static(Text("Time travel", style="bold"))
            yield Static(
                Text(
                    f"{where}. Show every screen as of: 2026-11-20 14:00 (local time), "
                    "-3h, -2d, -90m; empty or 'now' for live.",
                    style="dim",
                )
            )
            yield Input(placeholder="-3h", id="travel-input")
            yield Static(id="travel-error")

    @on(Input.Submitted, "#travel-input")
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value or value.lower() in ("now", LIVE):
            self.dismiss(LIVE)
            return
        try:
            moment = parse_moment(value, self.now)
        except ValueError as exc:  # say why, keep the prompt open with what was typed
            self.query_one("#travel-error", Static).update(Text(str(exc), style="bold red"))
            return
        if moment >= self.now:
            self.dismiss(LIVE)  # the future of the cache is the present
            return
        self.dismiss(moment)

    def action_cancel(self) -> None:
        """Keep whatever was shown."""
        self.dismiss(None)
