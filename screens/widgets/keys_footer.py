"""The footer of every screen: Textual's Footer, rebuilt only when the keys it shows change."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

Shown = tuple[tuple[str, str, str, bool, str], ...]


class KeysFooter(Footer):
    """A Footer that skips a rebuild which would show the keys already shown.

    Textual's Footer rebuilds every key on each bindings signal (screen resume, every focus
    change): three rebuilds of the same keys before the first frame, about 30 ms on a 2-core
    machine (docs/performance.md).
    """

    def __init__(self, **kwargs: bool | str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # Footer's own keyword arguments
        self._shown: Shown | None = None

    def _keys(self, screen: Screen[object]) -> Shown:
        return tuple(
            (binding.key, binding.action, binding.description, enabled, tooltip)
            for _, binding, enabled, tooltip in screen.active_bindings.values()
            if binding.show
        )

    def compose(self) -> ComposeResult:
        """Textual's keys, remembering which they were."""
        self._shown = self._keys(self.screen) if self._bindings_ready else None
        yield from super().compose()

    def bindings_changed(self, screen: Screen[object]) -> None:
        """Rebuild (as Footer does) unless the keys to show are the ones on screen."""
        if self._shown is not None and screen is self.screen and self._keys(screen) == self._shown:
            return
        super().bindings_changed(screen)
