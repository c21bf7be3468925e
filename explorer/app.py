"""The Textual app: wiring only. Screens read the cache; the in-process poller writes it.

What screens ask of the app (explorer.host.ExplorerSession) and which happenings become toasts
(explorer.notices) live in Textual-free modules; here are composition, modes, bindings, workers
and the ``_ui_*`` hooks that session uses.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState

import screens
from cache.db import CacheError, Clock, ReadOnlyCacheError, utc_now
from cache.lock import WriterLockHeldError, holder_pid
from explorer.commands import ExplorerCommands
from explorer.errors import ConfigError
from explorer.host import ExplorerSession, ThenOnUi, Viewer
from explorer.keys import ALLOWED_ACTIONS, APP_BINDINGS
from explorer.notices import Toast
from explorer.setup import PendingSetup, Setup
from explorer.watch import CacheWatcher
from screens.base import CacheScreen
from screens.messages import PollStored
from screens.overview import OverviewScreen
from screens.time_travel import LIVE, TimeTravelPrompt

if TYPE_CHECKING:  # the poller, the sources and httpx load after the first frame, when needed
    from explorer.config import Config, Secrets
    from explorer.poller import Poller
    from screens.table_export import TableExport

STYLES = Path(screens.__file__).parent / "styles"


def _screen(module: str, name: str) -> Screen[None]:
    """A top-level screen, its module imported the first time it is shown."""
    screen: Screen[None] = getattr(importlib.import_module(f"screens.{module}"), name)()
    return screen


WATCH_EVERY = 2.0
"""Seconds between checks for polls stored by another process (read-only sessions)."""


class DepinExplorerApp(App[None], ExplorerSession):
    """depin-explorer's TUI: the screens' host is the ExplorerSession it derives from."""

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
        viewer: Viewer | None = None,
        _pending: PendingSetup | None = None,
        _start_screen: str | None = None,
    ) -> None:
        # The first screen is the app's default mode, so Textual composes it at start (not a
        # blank default screen, then a switch that parses the stylesheet twice more).
        # Textual declares DEFAULT_MODE a ClassVar; the start screen is chosen per app
        self.DEFAULT_MODE = _start_screen or config.ui.start_screen  # type: ignore[misc]
        super().__init__()  # Textual's chain of __init__ ends before the session's: call it too
        ExplorerSession.__init__(
            self,
            # Given (tests, embedding): known now. Deferred (the command): see ``deferred``.
            _pending or PendingSetup(Setup(Path(), config, secrets, db_path)),
            state_path=state_path,
            offline=offline,
            clock=clock,
            at=at,
            private=private,
            viewer=viewer,
        )
        self._cache_mark = 0
        self._watcher: CacheWatcher | None = None
        self.fatal_message: str | None = None
        self.fatal_code = 1
        """The exit status for ``fatal_message``: 2 for a config error, as the CLI uses."""
        self._poll_enabled = poll
        self._transport = transport
        self._stop = asyncio.Event()

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
        # config, secrets and db_path come from the pending setup, not the arguments
        return cls(None, None, None, _pending=pending, _start_screen=start_screen, **options)  # type: ignore[arg-type]

    # -- what the session asks of the UI ------------------------------------------------------
    def _ui_toast(self, toast: Toast) -> None:
        self.notify(
            toast.message,
            title=toast.title,
            severity=toast.severity,
            timeout=toast.timeout,
            markup=False,  # text from the cache or a provider is never markup
        )

    def _ui_bell(self) -> None:
        self.bell()

    def _ui_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.set_timer(delay, callback)

    def _ui_thread(
        self, work: Callable[[], ThenOnUi], *, group: str, exclusive: bool = False
    ) -> None:
        def run() -> None:
            then = work()
            if then is not None:
                self.call_from_thread(then)

        self.run_worker(
            run, name=group, group=group, exclusive=exclusive, thread=True, exit_on_error=False
        )

    def _ui_screen_changed(self, *, reload: bool) -> None:
        if isinstance(self.screen, CacheScreen):  # other screens re-read when shown again
            if reload:
                self.screen.reload()
            else:
                self.screen.refresh_status()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's palette commands and private mode (not where the server fixed it on).

        An SSH viewer has no Screenshot (it saves on the server).
        """
        for command in super().get_system_commands(screen):
            if not (self.viewer == "ssh" and command.title == "Screenshot"):
                yield command
        if not self.private_fixed:
            yield SystemCommand(
                "Private mode",
                "Show earnings" if self.private else "Hide earnings everywhere (screen sharing)",
                self.action_toggle_private,
            )

    def _ui_deliver(self, table: TableExport) -> None:
        if not self.is_web:  # only a browser can take a download; a terminal would write here
            self.notify("exports download only in a browser session", markup=False)
            return
        from io import StringIO

        from explorer.exports import export_body, export_stem

        name = f"{export_stem(table, self.clock())}.csv"
        self.deliver_text(StringIO(export_body(table)), save_filename=name, mime_type="text/csv")
        rows = len(table.rows)
        self.notify(f"{rows} row{'' if rows == 1 else 's'}: downloading {name}", markup=False)

    def _ui_poll_stored(self, source: str, poll_id: int) -> None:
        self.screen.post_message(PollStored(source, poll_id))

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
        if self._poll_enabled and not self.offline and not self.viewer:
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
        """Poll in-process, attach to a running collector, or (offline, viewer) only read."""
        if self.viewer:  # a remote session: reads what a collector writes, never writes itself
            pid = holder_pid(self.db_path)
            self.attached_pid = None if pid is None else pid
        elif self.offline:
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
                self._attach_to_collector(pid)
        # A reader (offline, or attached to a collector) sees other processes' polls this way.
        self._watcher = CacheWatcher(
            self.db_path,
            lambda mark, gone: self.call_from_thread(self._cache_changed, mark, gone),
            attached=lambda: self.attached_pid is not None,
            every=WATCH_EVERY,
        )
        self._watcher.start()

    def _attach_to_collector(self, pid: int | None) -> None:
        # not ``_attach``: MessagePump has one (a node joining the DOM) this must not override
        self.attached_pid = pid or 0
        self.poller = None
        self.notify(
            f"{self.attached_note()}: reading its cache, not polling", timeout=4, markup=False
        )

    def _cache_changed(self, mark: int, collector_gone: bool) -> None:
        if self.poller is not None:  # polling in-process: PollStored already says so
            return
        if mark:
            self._cache_mark = mark
            self.screen.post_message(PollStored("collector", mark))
        if self.viewer:  # polls arriving mean a collector writes; its lock gone, it stopped
            self.attached_pid = None if collector_gone else (self.attached_pid or 0)
        elif collector_gone and not self.offline and self.attached_pid is not None:
            self.attached_pid = None
            self.notify("the collector stopped: polling in-process", markup=False)
            self.run_poller()

    def run_poller(self) -> None:
        """The poller runs as an async worker in the app's loop; it never touches widgets."""
        try:
            self.poller = self._new_poller(self._transport)
        except ConfigError as exc:  # e.g. a credentials variable named in the config is unset
            self._config_failed(f"config error: {exc}")
            return
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

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The poller's failures end up here, never as a traceback on screen."""
        if event.worker.name != "poller" or event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, WriterLockHeldError):  # a collector started first: read its cache
            self._attach_to_collector(error.pid)
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
        self.poll_all()

    def action_time_travel(self) -> None:
        """Ask for a moment and show every screen as of then."""
        self.push_screen(TimeTravelPrompt(self.at, self.clock()), self._travel_answer)

    def _travel_answer(self, answer: datetime | str | None) -> None:
        if answer is not None:
            self.travel_to(None if answer == LIVE else answer)  # type: ignore[arg-type]  # LIVE is the only str

    def action_live(self) -> None:
        """Back to live data."""
        if self.at is not None:
            self.travel_to(None)

    def action_step_poll(self, step: int) -> None:
        """One stored poll earlier or later (later than the newest is live)."""
        self.step_poll(step > 0)

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
        self.toggle_private()

    def action_toggle_help(self) -> None:
        """Show or hide the panel of keys for the focused screen."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_request_quit(self) -> None:
        """Quit."""
        self.exit()
