"""The Textual app: wiring only. Screens read the cache; the in-process poller writes it."""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App
from textual.screen import Screen
from textual.worker import Worker, WorkerState

import screens
from cache.db import CacheError, Clock, ReadOnlyCacheError, open_reader, utc_now
from cache.lock import WriterLockHeldError, holder_pid
from cache.queries import latest_rankings_poll
from cache.timeline import neighbour_poll
from explorer.commands import ExplorerCommands
from explorer.keys import ALLOWED_ACTIONS, APP_BINDINGS
from explorer.setup import ConfigError, PendingSetup, Setup
from explorer.state import UserState
from explorer.watch import CacheWatcher
from screens.base import CacheScreen
from screens.host import SourceRuntime
from screens.messages import PollStored
from screens.overview import OverviewScreen
from screens.render import local_time
from screens.time_travel import LIVE, TimeTravelPrompt

if TYPE_CHECKING:  # the poller, the sources and httpx load after the first frame, when needed
    from cache.alerts import Alert
    from cache.economics import EconomicsSettings
    from cache.store import PollRecord
    from explorer.config import Config, Secrets
    from explorer.poller import Poller
    from explorer.registry import SourceSettings
    from screens.table_export import TableExport

STYLES = Path(screens.__file__).parent / "styles"


def _screen(module: str, name: str) -> Screen[None]:
    """A top-level screen, its module imported the first time it is shown."""
    return getattr(importlib.import_module(f"screens.{module}"), name)()  # type: ignore[no-any-return]


WATCH_EVERY = 2.0
"""Seconds between checks for polls stored by another process (read-only sessions)."""
TOKEN_WARNING = timedelta(days=3)
"""io.net tokens last 21 days; warn from day 18."""


class DepinExplorerApp(App[None]):
    """depin-explorer's TUI."""

    TITLE = "depin-explorer"
    CSS_PATH: ClassVar = [STYLES / "app.tcss"]
    COMMANDS = App.COMMANDS | {ExplorerCommands}
    MODES: ClassVar = {
        "overview": OverviewScreen,
        "rankings": lambda: _screen("rankings", "RankingsScreen"),
        "networks": lambda: _screen("networks", "NetworksScreen"),
        "fleet": lambda: _screen("fleet", "FleetScreen"),
        "rewards": lambda: _screen("rewards", "RewardsScreen"),
        "history": lambda: _screen("history", "HistoryScreen"),
        "sources": lambda: _screen("sources", "SourcesScreen"),
        "alerts": lambda: _screen("alerts", "AlertsScreen"),
    }
    """Only the first screen is built (and imported) at start; the others when first shown."""
    BINDINGS: ClassVar = APP_BINDINGS
    ALLOWED_ACTIONS: ClassVar[frozenset[str]] = ALLOWED_ACTIONS

    def __init__(
        self,
        config: Config,
        secrets: Secrets,
        db_path: Path,
        *,
        offline: bool = False,
        state_path: Path,
        clock: Clock = utc_now,
        poll: bool = True,
        transport: object | None = None,
        at: datetime | None = None,
        private: bool = False,
        _pending: PendingSetup | None = None,
        _start_screen: str | None = None,
    ) -> None:
        # The first screen is the app's default mode, so Textual composes it at start (not a
        # blank default screen, then a switch that parses the stylesheet twice more).
        self.DEFAULT_MODE = _start_screen or config.ui.start_screen
        super().__init__()
        # Given (tests, embedding): known now. Deferred (the command): see ``deferred``.
        self._setup = _pending or PendingSetup(Setup(Path(), config, secrets, db_path))
        self._state_path = state_path
        self.at = at
        self.private = private
        """Private mode: earnings hidden on every screen and in exports (``p``, ``--private``)."""
        """Time travel: screens show the cache as of this moment; None is live."""
        self.attached_pid: int | None = None
        """Set while another process (a collector) holds the writer lock."""
        self.offline = offline
        self.clock = clock
        self._cache_mark = 0
        self._watcher: CacheWatcher | None = None
        self.poller: Poller | None = None
        self._settings: dict[str, SourceSettings] | None = None
        self._settings_requested = False
        self.fatal_message: str | None = None
        self.fatal_code = 1
        """The exit status for ``fatal_message``: 2 for a config error, as the CLI uses."""
        self._poll_enabled = poll
        self._transport = transport
        self._stop = asyncio.Event()
        self._failing: set[str] = set()
        self._newly_failing: dict[str, str] = {}

    @classmethod
    def deferred(
        cls,
        load: Callable[[], Setup],
        fallback: Callable[[], Setup],
        *,
        start_screen: str,
        **options: Any,
    ) -> DepinExplorerApp:
        """The app as the command starts it: the first screen paints, then ``load`` runs.

        ``load`` validates the config (pydantic: about 70 ms) in a thread after the first frame;
        until it returns, whatever needs ``config``, ``secrets`` or ``db_path`` waits for it. A
        config error ends the app with exit status 2 and the message (``fatal_message``).
        """
        pending = PendingSetup(loader=load, fallback=fallback)
        return cls(None, None, None, _pending=pending, _start_screen=start_screen, **options)  # type: ignore[arg-type]

    # -- the setup: given, or loaded after the first frame ------------------------------------
    @property
    def config(self) -> Config:
        """The validated config (waits for it while the app starts)."""
        return self._setup.get().config

    @property
    def secrets(self) -> Secrets:
        """Keys from the environment or secrets.toml (waits for them while the app starts)."""
        return self._setup.get().secrets

    @secrets.setter
    def secrets(self, secrets: Secrets) -> None:
        self._setup.get().secrets = secrets

    @property
    def db_path(self) -> Path:
        """The cache file (waits for the config while the app starts)."""
        return self._setup.get().db_path

    @property
    def starting(self) -> bool:
        """The config is still being loaded after the first frame."""
        return self._setup.pending

    @cached_property
    def state(self) -> UserState:
        """Watchlist and "last looked", kept per database in the state file."""
        return UserState(self._state_path, self.db_path)

    @cached_property
    def _watchlist(self) -> set[str]:
        return set(self.state.watchlist)

    @cached_property
    def _last_looked(self) -> datetime | None:
        return self.state.last_looked  # read once, before this session sets it on exit

    # -- ExplorerHost -------------------------------------------------------------------------
    def now(self) -> datetime:
        """The moment on screen: the time-travel moment, else the injectable clock."""
        return self.at or self.clock()

    def last_looked(self) -> datetime | None:
        """When the app last closed on this database (read once at start)."""
        return self._last_looked

    def attached_note(self) -> str | None:
        """The status-line note while a collector writes and this TUI only reads."""
        if self.attached_pid is None:
            return None
        return (
            f"attached to collector, pid {self.attached_pid}"
            if self.attached_pid
            else ("attached to collector")
        )

    def _source_settings(self, *, wait: bool = True) -> dict[str, SourceSettings]:
        """The poller's settings, or (without a poller: offline, attached, tests) the config's.

        Without a poller they are built once (the sources' modules and httpx: about 75 ms);
        ``wait=False`` builds them in a thread instead and answers ``{}`` until then, so the
        status line never stalls the UI thread on them.
        """
        if self.poller is not None:
            return self.poller.settings
        if self._settings is None:
            if not wait:
                if not self._settings_requested:
                    self._settings_requested = True
                    self._load_settings()
                return {}
            self._settings = self._build_settings()
        return self._settings

    def _build_settings(self) -> dict[str, SourceSettings]:
        from explorer.registry import build_sources

        try:
            built = build_sources(self.config, self.secrets)
        except ConfigError:
            built = {}
        return {name: settings for name, (_, settings) in built.items()}

    @work(thread=True, group="settings", exit_on_error=False)
    def _load_settings(self) -> None:
        settings = self._build_settings()
        self.call_from_thread(self._settings_loaded, settings)

    def _settings_loaded(self, settings: dict[str, SourceSettings]) -> None:
        if self._settings is None:
            self._settings = settings
        if isinstance(self.screen, CacheScreen):  # its freshness may depend on an interval
            self.screen.refresh_status()

    def source_interval(self, source: str) -> float:
        """Configured seconds between polls of ``source``."""
        settings = self._source_settings(wait=False).get(source)
        if settings is not None:
            return settings.interval
        section = getattr(self.config.sources, source, None)
        return float(section.interval) if section is not None else 120.0

    def source_note(self, source: str) -> str | None:
        """Rate limit or pause held by the in-process poller."""
        schedule = self.poller.schedules.get(source) if self.poller else None
        if schedule is None:
            return None
        if schedule.paused:
            return f"paused: {schedule.paused}"
        if schedule.retry_at and schedule.retry_at > self.now():
            return f"rate limited until {local_time(schedule.retry_at)}"
        return self.poller.circuit_note(source) if self.poller else None

    def is_watched(self, coin_id: str) -> bool:
        """Whether the user starred this project."""
        return coin_id in self._watchlist

    def toggle_watch(self, coin_id: str) -> bool:
        """Star or unstar; saved to the state file, not the database."""
        self._watchlist ^= {coin_id}
        self.state.set_watchlist(self._watchlist)
        return coin_id in self._watchlist

    def request_poll(self, source: str | None = None) -> None:
        """Poll every source, or one, now."""
        if source is None or self.offline or self.poller is None:
            self.action_refresh()
        elif source not in self.poller.sources:
            self.notify(f"{source} is disabled in the config", markup=False)
        else:
            self.poller.poll_soon(source)
            self.notify(f"polling {source} now", timeout=2, markup=False)

    def economics_settings(self) -> EconomicsSettings:
        """``[economics]`` as the cache's settings."""
        from cache.economics import EconomicsSettings

        section = self.config.economics
        return EconomicsSettings(
            section.power_price_per_kwh, section.currency, dict(section.hardware_cost)
        )

    def export_table(self, table: TableExport) -> None:
        """Write what a table shows to a new file in a thread; a toast says where."""
        self._write_export(table.masked() if self.private else table)

    @work(thread=True, group="export", exit_on_error=False)
    def _write_export(self, table: TableExport) -> None:
        from explorer.exports import write_export

        try:
            path = write_export(table, self.clock())
        except OSError as exc:
            self.call_from_thread(
                self.notify, f"export failed: {exc}", severity="error", markup=False
            )
            return
        rows = len(table.rows)
        note = " (private: earnings hidden)" if self.private and table.private_columns else ""
        self.call_from_thread(
            self.notify,
            f"{rows} row{'' if rows == 1 else 's'} written to {path}{note}",
            title="exported",
            timeout=10,
            markup=False,
        )

    def thresholds(self) -> dict[str, tuple[float, float]]:
        """Fleet figure -> (warn, critical), from ``[fleet.thresholds]``."""
        return {k: (t.warn, t.critical) for k, t in self.config.fleet.thresholds.items()}

    def source_runtimes(self) -> list[SourceRuntime]:
        """Every configured source with its schedule, for the Sources screen."""
        runtimes = []
        now = self.clock()  # schedules and token expiry are about the real present
        names = list(type(self.config.sources).model_fields)
        names += [n for n in self._source_settings() if n not in names]
        for name in names:
            section = getattr(self.config.sources, name, None)
            settings = self._source_settings().get(name)
            schedule = self.poller.schedules.get(name) if self.poller else None
            next_at = None
            if schedule is not None and schedule.next_due != float("inf"):
                wait = max(0.0, schedule.next_due - time.monotonic())
                next_at = now + timedelta(seconds=wait)
            runtimes.append(
                SourceRuntime(
                    name=name,
                    enabled=section.enabled if section is not None else True,
                    uses_network=name not in ("sample", "local"),
                    interval=settings.interval if settings else section.interval,
                    next_poll_at=next_at,
                    note=self.source_note(name),
                    insecure=bool(settings.insecure) if settings else False,
                    **self._credential(name, now),
                )
            )
        return runtimes

    def _credential(self, name: str, now: datetime) -> dict[str, str]:
        """The io.net token's expiry for the device source (a warning from 3 days before)."""
        from explorer.registry import IONET_DEVICES
        from sources.ionet_devices import token_info

        if name != IONET_DEVICES:
            return {}
        token = self.secrets.ionet_token
        if token is None:
            return {"credential": "IONET_TOKEN is not set", "credential_level": "warn"}
        info = token_info(token.get_secret_value())
        if info is None or info.expires_at is None:
            return {"credential": "io.net token: expiry unknown (not a readable JWT)"}
        left = info.expires_at - now
        when = info.expires_at.astimezone().strftime("%Y-%m-%d %H:%M")
        if left <= timedelta(0):
            return {
                "credential": f"io.net token expired {when}: copy a new one into IONET_TOKEN",
                "credential_level": "expired",
            }
        days = left.total_seconds() / 86400
        span = f"{days:.0f} d" if days >= 1 else f"{left.total_seconds() / 3600:.0f} h"
        level = "warn" if left <= TOKEN_WARNING else ""
        return {"credential": f"io.net token expires {when} (in {span})", "credential_level": level}

    # -- lifecycle ------------------------------------------------------------------------
    def on_mount(self) -> None:
        """Apply key remaps, then (after the first frame) load the config and start polling."""
        if self._setup.pending:
            self.call_after_refresh(self._load_setup)
        else:
            self._configured()

    @work(thread=True, group="setup", exit_on_error=False)
    def _load_setup(self) -> None:
        try:
            self._setup.load()
        except ConfigError as exc:
            self.call_from_thread(self._config_failed, f"config error: {exc}")
            return
        if self._poll_enabled and not self.offline:
            # the poller's modules (httpx, the sources: about 100 ms) load here, not when
            # run_poller imports it on the UI thread
            importlib.import_module("explorer.poller")
        self.call_from_thread(self._configured)

    def _config_failed(self, message: str) -> None:
        """End the app with the config error's line and exit status 2, as the CLI does."""
        self.fatal_message, self.fatal_code = message, 2
        self.exit(return_code=2)

    def _configured(self) -> None:
        """Apply animations and key remaps, say if the log cannot be written, start polling."""
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            self.animation_level = self.config.ui.animations
        if self.config.keys:
            self.set_keymap(self.config.keys)
        problem = self._setup.get().log_problem
        if problem:
            self.notify(problem, severity="warning", markup=False)
        if not gc.isenabled():  # the command paused it for the start (cli.run_tui)
            gc.freeze()  # the start's objects: kept for good, never scanned again
            gc.enable()
        if self._poll_enabled:
            # after the first frame: the poller, the sources and httpx are not needed to paint
            self.call_after_refresh(self._start_polling)

    def _start_polling(self) -> None:
        """Poll in-process, attach to a running collector, or (offline) only read."""
        if self.offline:
            self.run_worker(
                self._offline_sample(), name="poller", group="poller", exit_on_error=False
            )
        else:
            pid = holder_pid(self.db_path)
            if pid is None:
                self.run_poller()
                if self.fatal_message:
                    return
            else:
                self._attach(pid)
        # A reader (offline, or attached to a collector) sees other processes' polls this way.
        self._watcher = CacheWatcher(
            self.db_path,
            lambda mark, gone: self.call_from_thread(self._cache_changed, mark, gone),
            attached=lambda: self.attached_pid is not None,
            every=WATCH_EVERY,
        )
        self._watcher.start()

    def _attach(self, pid: int | None) -> None:
        self.attached_pid = pid or 0
        self.poller = None
        self.notify(
            f"{self.attached_note()}: reading its cache, not polling", timeout=4, markup=False
        )

    async def _offline_sample(self) -> None:
        """Offline, only the bundled sample may be stored, into a cache without rankings.

        A cache that has them (a colleague's copy, perhaps read-only) is never opened for writing.
        """
        if holder_pid(self.db_path) is not None or await asyncio.to_thread(self._has_rankings):
            return
        from explorer.poller import Poller

        poller = Poller(
            self.config,
            self.secrets,
            self.db_path,
            offline=True,
            clock=self.clock,
            on_stored=self._stored,
        )
        try:
            await poller.prepare()
            await poller.poll_once()  # offline, every other source is skipped
        except WriterLockHeldError:
            pass  # a collector started meanwhile: it writes, we read
        except CacheError as exc:  # e.g. a read-only copy: browse it as it is
            self.notify(f"not storing the sample: {exc}", markup=False)
        finally:
            await poller.close()

    def _has_rankings(self) -> bool:
        try:
            conn = open_reader(self.db_path)
        except CacheError:
            return False
        try:
            return latest_rankings_poll(conn) is not None
        except sqlite3.Error:
            return False
        finally:
            conn.close()

    def _cache_changed(self, mark: int, collector_gone: bool) -> None:
        if self.poller is not None:  # polling in-process: PollStored already says so
            return
        if mark:
            self._cache_mark = mark
            self.screen.post_message(PollStored("collector", mark))
        if collector_gone and not self.offline and self.attached_pid is not None:
            self.attached_pid = None
            self.notify("the collector stopped: polling in-process", markup=False)
            self.run_poller()

    def run_poller(self) -> None:
        """The poller runs as an async worker in the app's loop; it never touches widgets."""
        from explorer.poller import Poller

        try:
            self.poller = Poller(
                self.config,
                self.secrets,
                self.db_path,
                offline=self.offline,
                clock=self.clock,
                transport=self._transport,  # type: ignore[arg-type]
                on_stored=self._stored,
                on_notice=self._cache_notice,
            )
        except ConfigError as exc:  # e.g. a credentials variable named in the config is unset
            self._config_failed(f"config error: {exc}")
            return
        if self.poller.alerting is not None:  # a toast (and the bell) per alert transition
            self.poller.alerting.on_transition = self._alert_changed
        self.run_worker(
            self._poll_forever(self.poller),
            name="poller",
            group="poller",
            exclusive=True,
            exit_on_error=False,
        )

    async def _poll_forever(self, poller: Poller) -> None:
        try:
            await poller.prepare()
            await poller.run(self._stop)
        finally:
            await poller.close()

    def _cache_notice(self, message: str) -> None:
        """A damaged cache moved aside, writes paused by a full disk, or resumed."""
        self.notify(message, title="cache", severity="warning", timeout=15, markup=False)

    def _stored(self, record: PollRecord, poll_id: int) -> None:
        self.screen.post_message(PollStored(record.source, poll_id))
        if record.ok:
            if record.source in self._failing:
                self._failing.discard(record.source)
                self.notify(f"{record.source} recovered", markup=False)
        elif record.error and record.source not in self._failing:
            self._failing.add(record.source)  # say it once per state change, not every cycle
            self._newly_failing[record.source] = record.error.message
            if len(self._newly_failing) == 1:  # one toast for a burst, e.g. no network at all
                self.set_timer(1.0, self._announce_failures)

    def _alert_changed(self, alert: Alert) -> None:
        level = {"critical": "error", "warning": "warning"}.get(alert.severity, "information")
        self.notify(
            alert.message,
            title=f"{alert.severity} alert {alert.state}: {alert.rule} (8: Alerts)",
            severity=level if alert.firing else "information",  # type: ignore[arg-type]
            timeout=10 if alert.firing else 5,
            markup=False,
        )
        if self.config.alerts.bell:
            self.bell()

    def _announce_failures(self) -> None:
        failures, self._newly_failing = self._newly_failing, {}
        if len(failures) == 1:
            [(source, message)] = failures.items()
            text = f"{source}: {message}"
        else:
            text = f"{len(failures)} sources failing: {', '.join(sorted(failures))} (7: Sources)"
        self.notify(text, title="poll failed", severity="warning", markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The poller's failures end up here, never as a traceback on screen."""
        if event.worker.name != "poller" or event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, WriterLockHeldError):  # a collector started first: read its cache
            self._attach(error.pid)
        elif isinstance(error, ReadOnlyCacheError):  # e.g. a shared cache we may only read
            self.poller = None
            self.notify(f"{error}: read-only session, not polling", markup=False)
        elif isinstance(error, CacheError):
            self.fatal_message = str(error)
            self.exit(return_code=1)
        else:
            self.notify(f"polling stopped: {type(error).__name__}", severity="error", markup=False)

    def _fatal_error(self) -> None:
        """Textual's crash report without local variables, so no key can show (R8, SE-05).

        Overrides private API of the pinned Textual (``show_locals=True`` is hard-coded there).
        """
        from rich.segment import Segments
        from rich.traceback import Traceback

        self.bell()
        traceback = Traceback(show_locals=False, width=None)
        rendered = self.console.render(traceback, self.console.options)
        self._exit_renderables.append(Segments(rendered))
        self._close_messages_no_wait()

    async def on_unmount(self) -> None:
        """Stop the poller cleanly; remember when the user last looked."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.stop()
        if self._setup.ok:  # a session that never loaded its config leaves the state file be
            self.state.set_last_looked(self.clock())

    # -- actions ----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the app's own listed actions run, whatever text on screen asks for."""
        return action in self.ALLOWED_ACTIONS

    def action_show(self, mode: str) -> None:
        """Switch to a top-level screen."""
        if mode in self.MODES and mode != self.current_mode:
            self.switch_mode(mode)

    def action_refresh(self) -> None:
        """Poll every source now."""
        if self.offline:
            self.notify("offline: no network request is made", markup=False)
        elif self.poller is None:
            self.notify("polling is off in this session", markup=False)
        else:
            self.poller.poll_soon()
            self.notify("polling now", timeout=2, markup=False)

    def action_time_travel(self) -> None:
        """Ask for a moment and show every screen as of then."""
        self.push_screen(TimeTravelPrompt(self.at, self.clock()), self._travel_answer)

    def _travel_answer(self, answer: datetime | str | None) -> None:
        if answer is not None:
            self.travel_to(None if answer == LIVE else answer)  # type: ignore[arg-type]

    def travel_to(self, moment: datetime | None) -> None:
        """Show the cache as of ``moment`` (None: live) on every screen."""
        self.at = moment
        if isinstance(self.screen, CacheScreen):
            self.screen.reload()  # the others re-read when shown again
        if moment is None:
            self.notify("live", timeout=2, markup=False)
        else:
            self.notify(f"showing the cache as of {local_time(moment, True)}", markup=False)

    def action_live(self) -> None:
        """Back to live data."""
        if self.at is not None:
            self.travel_to(None)

    def action_step_poll(self, step: int) -> None:
        """One stored poll earlier or later (later than the newest is live)."""
        self._step_poll(step > 0)

    @work(thread=True, exclusive=True, group="travel", exit_on_error=False)
    def _step_poll(self, later: bool) -> None:
        if later and self.at is None:
            return
        try:
            conn = open_reader(self.db_path)
        except CacheError as exc:
            self.call_from_thread(self.notify, str(exc), markup=False)
            return
        try:
            moment = self.at
            if moment is None:  # live shows the newest poll: one step back is the one before it
                moment = neighbour_poll(conn, self.clock() + timedelta(days=36500), later=False)
            found = neighbour_poll(conn, moment, later) if moment else None
        finally:
            conn.close()
        if found is None and not later:
            self.call_from_thread(self.notify, "no earlier poll stored", markup=False)
            return
        self.call_from_thread(self.travel_to, found)  # None after the newest: live

    def action_export_table(self) -> None:
        """Export the current screen's table as shown, if it has one."""
        build = getattr(self.screen, "table_export", None)
        table = build() if callable(build) else None
        if table is None:
            self.notify("no table to export on this screen", timeout=3, markup=False)
        else:
            self.export_table(table)

    def action_toggle_private(self) -> None:
        """Hide or show earnings on every screen (and in exports)."""
        self.private = not self.private
        if isinstance(self.screen, CacheScreen):
            self.screen.reload()  # the others re-read when shown again
        self.notify(
            "private: earnings hidden" if self.private else "earnings shown",
            timeout=2,
            markup=False,
        )

    def action_toggle_help(self) -> None:
        """Show or hide the panel of keys for the focused screen."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_request_quit(self) -> None:
        """Quit."""
        self.exit()
