"""Which happenings become toasts (and the bell): the notification policy, without Textual.

A failing source is told once when it starts failing and once when it recovers, never every
cycle; sources that start failing together (no network at all) share one toast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cache.alerts import Alert
    from cache.store import PollRecord

Severity = Literal["information", "warning", "error"]
"""As Textual's ``notify`` names them."""
BURST = 1.0
"""Seconds failures are gathered after the first, so a burst becomes one toast."""
ALERT_LEVELS: dict[str, Severity] = {"critical": "error", "warning": "warning"}


@dataclass(frozen=True)
class Toast:
    """One notification; the App shows it with ``notify`` (never as markup)."""

    message: str
    title: str = ""
    severity: Severity = "information"
    timeout: float | None = None
    """Seconds on screen; None: Textual's default."""


class PollNotices:
    """Turns stored polls into toasts: a change of state once, a burst of failures as one.

    Args:
        show: shows a toast (the App's ``notify``).
        later: calls back after a delay in seconds, on the same thread (the App's timer).
    """

    def __init__(
        self, show: Callable[[Toast], None], later: Callable[[float, Callable[[], None]], None]
    ) -> None:
        self._show = show
        self._later = later
        self.failing: set[str] = set()
        """Sources whose latest poll failed (and were told about)."""
        self.newly_failing: dict[str, str] = {}
        """Sources that started failing since the last toast: source -> error message."""

    def stored(self, record: PollRecord) -> None:
        """A poll was stored: tell a recovery now, a new failure with the rest of its burst."""
        if record.ok:
            if record.source in self.failing:
                self.failing.discard(record.source)
                self._show(Toast(f"{record.source} recovered"))
        elif record.error and record.source not in self.failing:
            self.failing.add(record.source)  # say it once per state change, not every cycle
            self.newly_failing[record.source] = record.error.message
            if len(self.newly_failing) == 1:  # one toast for a burst, e.g. no network at all
                self._later(BURST, self.announce)

    def announce(self) -> None:
        """One toast for the failures gathered: the error itself when there is one."""
        failures, self.newly_failing = self.newly_failing, {}
        if len(failures) == 1:
            [(source, message)] = failures.items()
            text = f"{source}: {message}"
        else:
            text = f"{len(failures)} sources failing: {', '.join(sorted(failures))} (7: Sources)"
        self._show(Toast(text, title="poll failed", severity="warning"))


def alert_toast(alert: Alert) -> Toast:
    """An alert's transition: firing ones by severity and longer on screen than resolved ones."""
    level = ALERT_LEVELS.get(alert.severity, "information")
    return Toast(
        alert.message,
        title=f"{alert.severity} alert {alert.state}: {alert.rule} (8: Alerts)",
        severity=level if alert.firing else "information",
        timeout=10 if alert.firing else 5,
    )


def cache_toast(message: str) -> Toast:
    """A damaged cache moved aside, writes paused by a full disk, or resumed: kept up 15 s."""
    return Toast(message, title="cache", severity="warning", timeout=15)
