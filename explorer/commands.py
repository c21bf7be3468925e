"""Command palette entries ("area: Verb"), next to Textual's own system commands."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from explorer.app import DepinExplorerApp


class ExplorerCommands(Provider):
    """Screens, refresh, and sorting of the rankings."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        from screens.rankings import COLUMNS, RankingsScreen  # loaded when the palette opens

        app = cast("DepinExplorerApp", self.app)  # the palette provider of this app only
        commands: list[tuple[str, Callable[[], object], str]] = [
            ("go: Overview", partial(app.action_show, "overview"), "Market summary and sources"),
            ("go: Rankings", partial(app.action_show, "rankings"), "DePIN projects ranked"),
            ("poll: Refresh now", app.action_refresh, "Poll every source now"),
            ("help: Show keys", app.action_toggle_help, "Show or hide the key panel"),
        ]
        screen = app.screen
        if isinstance(screen, RankingsScreen):
            for column in COLUMNS:
                commands.append(
                    (
                        f"rankings: Sort by {column.label}",
                        partial(screen.sort_by, column.key),
                        "Sort the table",
                    )
                )
            commands.append(
                (
                    "rankings: Watchlist only",
                    screen.action_watchlist_only,
                    "Toggle showing only starred projects",
                )
            )
        return commands

    async def discover(self) -> Hits:
        """Everything, when the palette opens empty."""
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        """Fuzzy-match titles."""
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
