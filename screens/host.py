"""What screens need from the app, as a protocol: screens never import the App class."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from cache.economics import EconomicsSettings
    from screens.table_export import TableExport


@dataclass(frozen=True)
class SourceRuntime:
    """What the running app knows of a source beyond the cache: config and schedule."""

    name: str
    enabled: bool
    uses_network: bool
    interval: float
    next_poll_at: datetime | None
    note: str | None
    """Rate limit, pause or open circuit held by the in-process poller."""
    insecure: bool = False
    """TLS verification is off for this source (a per-source opt-in)."""
    credential: str | None = None
    """What is known of the source's token, e.g. "io.net token expires … (in 5 d)"."""
    credential_level: str = ""
    """"" when fine, "warn" within three days of expiry, "expired" after it."""


class ExplorerHost(Protocol):
    """The app as screens see it."""

    db_path: Path
    offline: bool
    at: datetime | None
    """Time travel: every screen shows the cache as of this moment (UTC); None is live."""
    private: bool
    """Private mode (screen sharing): earnings and balances are hidden on every screen and in
    exports. Flipping it re-renders the current screen; the others re-read when shown."""

    @property
    def starting(self) -> bool:
        """The config is still being read (the first frame comes before it).

        What needs it (``db_path``, intervals, thresholds…) waits until it is there.
        """

    def now(self) -> datetime:
        """The moment screens show (UTC): ``at`` when time-travelling, else the clock."""

    def last_looked(self) -> datetime | None:
        """When the user last used the app on this database (from the state file), if ever."""

    def attached_note(self) -> str | None:
        """``attached to collector, pid N`` while another process writes the cache."""

    def source_interval(self, source: str) -> float:
        """Configured seconds between polls of ``source``."""

    def source_note(self, source: str) -> str | None:
        """What the in-process poller holds against a source ("rate limited until …")."""

    def is_watched(self, coin_id: str) -> bool:
        """Whether the user starred this project."""

    def toggle_watch(self, coin_id: str) -> bool:
        """Star or unstar a project; returns the new state."""

    def request_poll(self, source: str | None = None) -> None:
        """Poll every source, or one, now (says why not when offline)."""

    def source_runtimes(self) -> list[SourceRuntime]:
        """Every configured source, enabled or not, with its schedule."""

    def thresholds(self) -> dict[str, tuple[float, float]]:
        """Fleet figure -> (warn, critical) levels from the config."""

    def economics_settings(self) -> EconomicsSettings:
        """Power price, currency and hardware costs from ``[economics]``."""

    def export_table(self, table: TableExport) -> None:
        """Write a shown table to a new CSV file (off the UI thread) and say where in a toast."""


def host(node: DOMNode) -> ExplorerHost:
    """The running app, typed as the protocol."""
    return cast("ExplorerHost", node.app)
