"""The screens' host without Textual: notification policy, time travel, the session's answers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from cache.alerts import Alert
from cache.store import PollRecord
from explorer.config import Config, Secrets
from explorer.host import ExplorerSession, ThenOnUi
from explorer.notices import BURST, PollNotices, Toast, alert_toast, cache_toast
from explorer.setup import PendingSetup, Setup
from explorer.time_travel import Step, step_poll
from sources.models import ErrorKind, Reading, SourceError
from tests.ui.appkit import NOW, frozen, store_live


def test_the_host_modules_load_without_textual() -> None:
    code = (
        "import sys, explorer.host, explorer.notices, explorer.time_travel\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'textual']\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# -- notification policy -------------------------------------------------------------------------
def poll(source: str, ok: bool) -> PollRecord:
    error = None if ok else SourceError(ErrorKind.CONNECT, f"cannot connect to {source}")
    return PollRecord(
        source=source,
        started_at=NOW,
        finished_at=NOW,
        reading=Reading(note="x") if ok else None,
        error=error,
    )


class Recorder:
    """Toasts shown and timers set, run by hand."""

    def __init__(self) -> None:
        self.toasts: list[Toast] = []
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((delay, callback))

    def fire(self) -> None:
        timers, self.timers = self.timers, []
        for _, callback in timers:
            callback()


def test_failures_starting_together_are_one_toast_and_told_once() -> None:
    ui = Recorder()
    notices = PollNotices(ui.toasts.append, ui.later)
    for source in ("akash", "helium", "akash"):
        notices.stored(poll(source, ok=False))
    assert [delay for delay, _ in ui.timers] == [BURST]  # one timer for the burst
    ui.fire()
    assert ui.toasts == [
        Toast("2 sources failing: akash, helium (7: Sources)", "poll failed", "warning")
    ]
    notices.stored(poll("akash", ok=False))  # still failing: nothing new
    assert len(ui.toasts) == 1 and not ui.timers


def test_one_failure_names_its_error_and_a_recovery_is_told_at_once() -> None:
    ui = Recorder()
    notices = PollNotices(ui.toasts.append, ui.later)
    notices.stored(poll("akash", ok=True))
    assert not ui.toasts  # never failed: nothing to say
    notices.stored(poll("akash", ok=False))
    ui.fire()
    notices.stored(poll("akash", ok=True))
    assert [t.message for t in ui.toasts] == ["akash: cannot connect to akash", "akash recovered"]
    assert notices.failing == set()


def alert(severity: str, state: str) -> Alert:
    return Alert(
        id=1,
        rule="gpu hot",
        kind="threshold",
        subject="gpu-01",
        severity=severity,
        state=state,
        since=NOW,
        started_at=NOW,
        resolved_at=None if state == "firing" else NOW,
        value=91.0,
        message="gpu-01 GPU at 91 °C",
    )


def test_alert_toasts_follow_severity_while_firing() -> None:
    assert alert_toast(alert("critical", "firing")) == Toast(
        "gpu-01 GPU at 91 °C", "critical alert firing: gpu hot (8: Alerts)", "error", 10
    )
    assert alert_toast(alert("warning", "firing")).severity == "warning"
    resolved = alert_toast(alert("critical", "resolved"))
    assert (resolved.severity, resolved.timeout) == ("information", 5)
    assert cache_toast("writes paused") == Toast("writes paused", "cache", "warning", 15)


# -- time travel ---------------------------------------------------------------------------------
def test_steps_walk_the_stored_polls_and_later_than_the_newest_is_live(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    old, new = NOW - timedelta(hours=2), NOW - timedelta(minutes=1)
    store_live(db, at=old)
    store_live(db, at=new)
    assert step_poll(db, None, NOW, later=True) is None  # live is as late as it gets
    assert step_poll(db, None, NOW, later=False) == Step(moment=old)  # live shows the newest
    assert step_poll(db, old, NOW, later=False) == Step(refused="no earlier poll stored")
    assert step_poll(db, old, NOW, later=True) == Step(moment=new)
    assert step_poll(db, new, NOW, later=True) == Step(moment=None)


# -- the session, with a recording UI ------------------------------------------------------------
class Session(ExplorerSession):
    """The session as the App runs it, with the UI recorded and threads run inline."""

    def __init__(self, tmp_path: Path, *, offline: bool = True) -> None:
        setup = Setup(Path(), Config(), Secrets(), tmp_path / "cache.db")
        super().__init__(
            PendingSetup(setup),
            state_path=tmp_path / "state.json",
            offline=offline,
            clock=frozen,
            at=None,
            private=False,
        )
        self.toasts: list[str] = []
        self.changes: list[bool] = []

    def _ui_toast(self, toast: Toast) -> None:
        self.toasts.append(toast.message)

    def _ui_thread(
        self, work: Callable[[], ThenOnUi], *, group: str, exclusive: bool = False
    ) -> None:
        then = work()
        if then is not None:
            then()

    def _ui_screen_changed(self, *, reload: bool) -> None:
        self.changes.append(reload)


def test_time_travel_reloads_the_screen_and_says_where_it_is(tmp_path: Path) -> None:
    store_live(tmp_path / "cache.db", at=NOW - timedelta(hours=2))
    store_live(tmp_path / "cache.db", at=NOW - timedelta(minutes=1))
    session = Session(tmp_path)
    session.step_poll(later=False)
    assert session.at == NOW - timedelta(hours=2) and session.now() == session.at
    assert session.changes == [True] and session.toasts[-1].startswith("showing the cache as of")
    session.step_poll(later=False)
    assert session.toasts[-1] == "no earlier poll stored" and session.changes == [True]
    session.travel_to(None)
    assert session.at is None and session.now() == NOW and session.toasts[-1] == "live"


def test_polling_requests_say_why_nothing_polls(tmp_path: Path) -> None:
    offline = Session(tmp_path)
    offline.request_poll("coingecko")
    assert offline.toasts == ["offline: no network request is made"]
    online = Session(tmp_path, offline=False)  # no poller: attached, or polling off
    online.request_poll()
    assert online.toasts == ["polling is off in this session"]


def test_private_mode_and_the_watchlist(tmp_path: Path) -> None:
    session = Session(tmp_path)
    session.toggle_private()
    assert session.private and session.toasts == ["private: earnings hidden"]
    assert session.changes == [True]
    assert session.toggle_watch("render") and session.is_watched("render")
    assert not Session(tmp_path).private  # private mode is per session, the watchlist is kept
    assert Session(tmp_path).is_watched("render")


def test_intervals_come_from_the_config_until_a_poller_runs(tmp_path: Path) -> None:
    session = Session(tmp_path)
    assert session.source_interval("coingecko") == 120.0  # settings load in a thread: the config
    assert session.source_interval("nonexistent") == 120.0
    assert session.source_note("coingecko") is None
    assert session.attached_note() is None
    session.attached_pid = 42
    assert session.attached_note() == "attached to collector, pid 42"


def test_an_unsupplied_ui_hook_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError):  # the bell is the App's to ring
        Session(tmp_path)._ui_bell()
