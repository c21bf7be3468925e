"""What the app serves to screens (screens.host.ExplorerHost), without Textual.

:class:`ExplorerSession` holds the session's state (setup, time travel, private mode, the
watchlist, the in-process poller) and answers the screens' questions. What it needs of the UI
(a toast, the bell, a thread, a timer, the current screen) goes through the few ``_ui_*``
methods, which the App implements; so this module can be read, and tested, without Textual.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cache.db import CacheError, Clock, open_reader
from cache.lock import WriterLockHeldError, holder_pid
from cache.queries import latest_rankings_poll
from explorer.errors import ConfigError
from explorer.notices import PollNotices, Toast, alert_toast, cache_toast
from explorer.setup import PendingSetup
from explorer.state import UserState
from explorer.time_travel import step_poll
from screens.host import SourceRuntime
from screens.render import local_time

if TYPE_CHECKING:  # the poller, the sources and httpx load after the first frame, when needed
    from cache.alerts import Alert
    from cache.economics import EconomicsSettings
    from cache.store import PollRecord
    from explorer.config import Config, Secrets
    from explorer.poller import Poller
    from explorer.registry import SourceSettings
    from screens.table_export import TableExport

TOKEN_WARNING = timedelta(days=3)
"""io.net tokens last 21 days; warn from day 18."""
Viewer = Literal["browser", "ssh"]
"""A remote session's kind of read-only viewer (``serve``, ``ssh-serve``)."""
ThenOnUi = Callable[[], None] | None
"""What a thread's work asks to run on the UI thread once it is done (None: nothing)."""


class ExplorerSession:
    """The ExplorerHost implementation; the App derives from it and supplies the ``_ui_*``.

    Args:
        setup: the config, secrets and cache path, given or still loading.
        state_path: the state file (watchlist, "last looked").
        offline: browse the cache only; no network request.
        clock: the injectable clock (UTC).
        at: the time-travel moment to start at; None is live.
        private: start with earnings hidden. In a viewer this is the server's ``--private``,
            which the session cannot turn off (``private_fixed``).
        viewer: a remote session's read-only viewer ("browser" for ``serve``, "ssh" for
            ``ssh-serve``): never polls, never writes the cache, never evaluates alerts;
            exports go to the browser ("browser") or are refused ("ssh"). None: the local TUI.
    """

    def __init__(
        self,
        setup: PendingSetup,
        *,
        state_path: Path,
        offline: bool,
        clock: Clock,
        at: datetime | None,
        private: bool,
        viewer: Viewer | None = None,
    ) -> None:
        self._setup = setup
        self.viewer = viewer
        self._state_path = state_path
        self.offline = offline
        self.clock = clock
        self.at = at
        """Time travel: screens show the cache as of this moment; None is live."""
        self.private_fixed = private and viewer is not None
        """The server started this viewer private: ``p`` and the palette cannot show earnings."""
        if viewer == "ssh" and not private:  # the key's own file: as its last session left it
            private = UserState.stored_private(state_path)
        self.private = private
        """Private mode: earnings hidden on every screen and in exports (``p``, ``--private``)."""
        self.attached_pid: int | None = None
        """Set while another process (a collector) holds the writer lock."""
        self.poller: Poller | None = None
        self._settings: dict[str, SourceSettings] | None = None
        self._settings_requested = False
        self._notices = PollNotices(self._ui_toast, self._ui_later)

    # -- what the App supplies ----------------------------------------------------------------
    def _ui_toast(self, toast: Toast) -> None:
        """Show a toast."""
        raise NotImplementedError

    def _ui_bell(self) -> None:
        """Ring the terminal bell."""
        raise NotImplementedError

    def _ui_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Call back on the UI thread after ``delay`` seconds."""
        raise NotImplementedError

    def _ui_thread(
        self, work: Callable[[], ThenOnUi], *, group: str, exclusive: bool = False
    ) -> None:
        """Run ``work`` in a thread, then what it returns on the UI thread."""
        raise NotImplementedError

    def _ui_deliver(self, table: TableExport) -> None:
        """Hand an export to the browser as a download (``serve`` sessions)."""
        raise NotImplementedError

    def _ui_screen_changed(self, *, reload: bool) -> None:
        """Tell the current screen: re-read the cache (``reload``), or redraw its status line."""
        raise NotImplementedError

    def _ui_poll_stored(self, source: str, poll_id: int) -> None:
        """Tell the current screen a poll was stored."""
        raise NotImplementedError

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
            return "read-only viewer" if self.viewer else None
        if self.viewer:
            return "read-only viewer of the collector"
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
                    self._ui_thread(self._load_settings, group="settings")
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

    def _load_settings(self) -> ThenOnUi:
        settings = self._build_settings()
        return lambda: self._settings_loaded(settings)

    def _settings_loaded(self, settings: dict[str, SourceSettings]) -> None:
        if self._settings is None:
            self._settings = settings
        self._ui_screen_changed(reload=False)  # its freshness may depend on an interval

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
            self.poll_all()
        elif source not in self.poller.sources:
            self._ui_toast(Toast(f"{source} is disabled in the config"))
        else:
            self.poller.poll_soon(source)
            self._ui_toast(Toast(f"polling {source} now", timeout=2))

    def poll_all(self) -> None:
        """Poll every source now (or say why not)."""
        if self.viewer:
            self._ui_toast(Toast("read-only viewer: the collector on the server polls"))
        elif self.offline:
            self._ui_toast(Toast("offline: no network request is made"))
        elif self.poller is None:
            self._ui_toast(Toast("polling is off in this session"))
        else:
            self.poller.poll_soon()
            self._ui_toast(Toast("polling now", timeout=2))

    def economics_settings(self) -> EconomicsSettings:
        """``[economics]`` as the cache's settings."""
        from cache.economics import EconomicsSettings

        section = self.config.economics
        return EconomicsSettings(
            section.power_price_per_kwh, section.currency, dict(section.hardware_cost)
        )

    def export_table(self, table: TableExport) -> None:
        """Write what a table shows to a new file in a thread; a toast says where."""
        shown = table.masked() if self.private else table
        if self.viewer == "browser":  # a download in the browser; nothing written on the server
            self._ui_deliver(shown)
        elif self.viewer:
            self._ui_toast(
                Toast("a remote session writes no file: run `depin-explorer export` on the server")
            )
        else:
            self._ui_thread(lambda: self._write_export(shown), group="export")

    def _write_export(self, table: TableExport) -> ThenOnUi:
        from explorer.exports import write_export

        try:
            path = write_export(table, self.clock())
        except OSError as exc:
            failed = Toast(f"export failed: {exc}", severity="error")
            return lambda: self._ui_toast(failed)
        rows = len(table.rows)
        note = " (private: earnings hidden)" if self.private and table.private_columns else ""
        done = Toast(
            f"{rows} row{'' if rows == 1 else 's'} written to {path}{note}",
            title="exported",
            timeout=10,
        )
        return lambda: self._ui_toast(done)

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
                    interval=settings.interval if settings else self.source_interval(name),
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

    # -- private mode and time travel ---------------------------------------------------------
    def toggle_private(self) -> None:
        """Hide or show earnings on every screen (and in exports); an SSH key remembers it."""
        if self.private_fixed:
            self._ui_toast(Toast("private mode is fixed by the server", timeout=3))
            return
        self.private = not self.private
        if self.viewer == "ssh":  # the key's state file: its next login starts the same way
            self.state.set_private(self.private)
        self._ui_screen_changed(reload=True)  # the others re-read when shown again
        self._ui_toast(
            Toast("private: earnings hidden" if self.private else "earnings shown", timeout=2)
        )

    def travel_to(self, moment: datetime | None) -> None:
        """Show the cache as of ``moment`` (None: live) on every screen."""
        self.at = moment
        self._ui_screen_changed(reload=True)  # the others re-read when shown again
        if moment is None:
            self._ui_toast(Toast("live", timeout=2))
        else:
            self._ui_toast(Toast(f"showing the cache as of {local_time(moment, True)}"))

    def step_poll(self, later: bool) -> None:
        """One stored poll earlier or later (later than the newest is live), read in a thread."""
        self._ui_thread(lambda: self._step(later), group="travel", exclusive=True)

    def _step(self, later: bool) -> ThenOnUi:
        step = step_poll(self.db_path, self.at, self.clock(), later)
        if step is None:
            return None
        if step.refused is not None:
            refused = Toast(step.refused)
            return lambda: self._ui_toast(refused)
        return lambda: self.travel_to(step.moment)

    # -- notices ------------------------------------------------------------------------------
    @property
    def _failing(self) -> set[str]:
        """Sources whose latest poll failed."""
        return self._notices.failing

    @property
    def _newly_failing(self) -> dict[str, str]:
        """Sources that started failing and are not told yet."""
        return self._notices.newly_failing

    def _stored(self, record: PollRecord, poll_id: int) -> None:
        """The poller stored a poll: the screen re-reads; a change of state becomes a toast."""
        self._ui_poll_stored(record.source, poll_id)
        self._notices.stored(record)

    def _alert_changed(self, alert: Alert) -> None:
        """A toast (and the bell, if ``[alerts] bell``) per alert transition."""
        self._ui_toast(alert_toast(alert))
        if self.config.alerts.bell:
            self._ui_bell()

    def _cache_notice(self, message: str) -> None:
        """A damaged cache moved aside, writes paused by a full disk, or resumed."""
        self._ui_toast(cache_toast(message))

    # -- the poller ---------------------------------------------------------------------------
    def _new_poller(self, transport: object | None) -> Poller:
        """The in-process poller, its polls and alerts told through the notices.

        Raises:
            ConfigError: e.g. a credentials variable named in the config is unset.
        """
        from explorer.poller import Poller

        poller = Poller(
            self.config,
            self.secrets,
            self.db_path,
            offline=self.offline,
            clock=self.clock,
            transport=transport,  # type: ignore[arg-type]  # tests hand in a MockTransport
            on_stored=self._stored,
            on_notice=self._cache_notice,
        )
        if poller.alerting is not None:  # a toast (and the bell) per alert transition
            poller.alerting.on_transition = self._alert_changed
        return poller

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
            self._ui_toast(Toast(f"not storing the sample: {exc}"))
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
