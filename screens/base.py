"""A screen that draws "the cache as of T": one typed, ordered read path for every screen.

On the UI thread the screen freezes everything its read needs into one :class:`ReadContext`
(the time-travel moment, now, offline and private mode, and the screen's own options); a thread
worker opens its own read-only connection and calls ``read(conn, ctx)`` with nothing else, so a
read never looks at widgets or the App from its thread. Each read carries a generation number: a
result that a newer read has superseded is dropped, never drawn. A read that fails says so on the
screen and on the status line (a cache from a newer depin-explorer, a damaged file, anything else
in one line with the full text in the log) instead of leaving "no data yet" behind; a read that
takes a moment says what it is reading.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from cache.db import CacheError, CorruptCacheError, SchemaTooNewError, open_reader
from cache.maintenance import check
from cache.queries import PollInfo, source_states
from cache.text import safe_text
from screens.host import host
from screens.messages import PollStored
from screens.widgets.status_line import Freshness, StatusLine, describe

log = logging.getLogger(__name__)

AGE_TICK = 5.0
LOADING_AFTER = 0.15
"""Seconds a read may take before the screen says what it is reading (no flicker before)."""
NEWER_SCHEMA = "this cache was written by a newer depin-explorer; upgrade to read it"
PROBLEM_LEN = 500

T = TypeVar("T")
O = TypeVar("O")  # noqa: E741 - the screen's Options, beside T its data


@dataclass(frozen=True)
class ReadContext(Generic[O]):
    """What one read may use, frozen on the UI thread before the worker starts.

    Attributes:
        db_path: the cache file.
        at: the time-travel moment (UTC), or None for live.
        now: the moment shown: ``at`` when travelling, else the clock when the read began.
        offline: no network polling in this session.
        private: private mode (earnings hidden).
        options: the screen's own choices (window, period, grouping, which node…), frozen.
    """

    db_path: Path
    at: datetime | None
    now: datetime
    offline: bool
    private: bool
    options: O


@dataclass(frozen=True)
class Freshened(Generic[T]):
    """A read's result: the data, its poll, and the sources' states for the status line."""

    data: T
    freshness: Freshness


def read_problem(exc: BaseException, path: Path) -> str:
    """One line saying why a read failed and what to do, for the screen and the status line."""
    if isinstance(exc, SchemaTooNewError):
        return NEWER_SCHEMA
    if isinstance(exc, CorruptCacheError | sqlite3.DatabaseError):
        try:
            result = check(path)
            problems = result.problems
        except (CacheError, OSError, sqlite3.Error):
            problems = []
        what = problems[0] if problems else str(exc)
        return f"the cache file is damaged: {what}; see depin-explorer db check"
    if isinstance(exc, CacheError):
        return str(exc)
    return f"could not read the cache: {type(exc).__name__}: {exc} (full text in the log)"


class CacheScreen(Screen[None], Generic[T, O]):
    """Base for screens fed from the cache.

    Subclasses implement :meth:`read` (worker thread: only the connection and the context) and
    :meth:`render_data` (UI thread), and :meth:`read_options` when their read depends on choices
    made on the screen.
    """

    SOURCES: ClassVar[tuple[str, ...]] = ()
    """The sources whose failures this screen's status line reports."""
    LOADING: ClassVar[str] = "reading the cache"
    """What a slow read of this screen is doing, shown while it runs ("reading 7 days of …")."""

    @dataclass
    class Loaded(Message):
        """A thread worker read the cache: what ``read`` returned, or why it could not."""

        generation: int
        result: Freshened[Any] | None
        problem: str | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._freshness: Freshness | None = None
        self._problem: str | None = None
        self._generation = 0
        self._drawn = 0
        """The generation last drawn (0: nothing yet)."""
        self._loading_timer: Timer | None = None
        self._in_flight: tuple[object, ...] | None = None
        """What the newest read under way reads (its context but "now"), None when none is."""

    def on_mount(self) -> None:
        """Keep the age on the status line current; the first read comes with the resume."""
        self.set_interval(AGE_TICK, self._tick_status)

    def on_screen_resume(self) -> None:
        """Hidden screens do nothing; a screen shown again re-reads the cache."""
        self.reload()

    @on(PollStored)
    def _poll_stored(self) -> None:
        self.reload(new_data=True)

    def read_options(self) -> O:
        """The screen's own choices the read depends on (UI thread), frozen; None by default."""
        return None  # type: ignore[return-value]  # O is None for screens with no options

    def read(self, conn: sqlite3.Connection, ctx: ReadContext[O]) -> tuple[T, PollInfo | None]:
        """Read this screen's data from ``conn`` as of ``ctx`` (worker thread); (data, its poll)."""
        raise NotImplementedError

    def render_data(self, data: T | None) -> None:
        """Show ``data`` (UI thread); None when the cache holds nothing yet."""
        raise NotImplementedError

    def read_context(self) -> ReadContext[O]:
        """Everything the next read needs, taken now on the UI thread."""
        app = host(self)
        return ReadContext(
            db_path=app.db_path,
            at=app.at,
            now=app.now(),
            offline=app.offline,
            private=app.private,
            options=self.read_options(),
        )

    def reload(self, *, new_data: bool = False) -> None:
        """Start a read of the cache; it supersedes any read still running.

        A request that would read exactly what the read under way reads (the same moment,
        modes and options) is answered by that read, unless a poll was stored since it began
        (``new_data``): a screen shown for the first time resumes twice, and two reads of
        100,000 nodes side by side took twice as long to draw as one.
        """
        if host(self).starting:  # freezing the context now would wait on the UI thread
            self._reload_once_started()
            return
        ctx = self.read_context()
        wanted = (ctx.at, ctx.offline, ctx.private, ctx.options)
        if not new_data and self._in_flight is not None and self._in_flight == wanted:
            return
        self._in_flight = wanted
        self._generation += 1
        attached = host(self).attached_note()
        if self._loading_timer is None and self._drawn == 0:
            self._loading_timer = self.set_timer(LOADING_AFTER, self._show_loading)
        self._read_worker(self._generation, ctx, attached)

    @work(thread=True, group="cache-read", exclusive=True, exit_on_error=False)
    def _reload_once_started(self) -> None:
        """Wait in a thread for the config (the first frame comes before it), then read."""
        host(self).db_path  # noqa: B018 - blocks until the setup is loaded (or has failed)
        self.app.call_from_thread(self._reload_if_mounted)

    def _reload_if_mounted(self) -> None:
        if self.is_attached and not host(self).starting:
            self.reload()

    @work(thread=True, group="cache-read", exit_on_error=False)
    def _read_worker(self, generation: int, ctx: ReadContext[O], attached: str | None) -> None:
        """Read in a thread with its own read-only connection; post the result or the problem."""
        try:
            conn = open_reader(ctx.db_path)
        except (SchemaTooNewError, CorruptCacheError) as exc:
            self.post_message(self.Loaded(generation, None, read_problem(exc, ctx.db_path)))
            return
        except CacheError:  # no cache yet, or nothing polled into it: no data, not a problem
            empty = Freshness(None, (), ctx.offline, ctx.at, attached)
            self.post_message(self.Loaded(generation, Freshened(None, empty)))
            return
        except Exception as exc:  # e.g. a permission error: said on the screen, logged in full
            log.exception("%s: opening the cache failed", type(self).__name__)
            self.post_message(self.Loaded(generation, None, read_problem(exc, ctx.db_path)))
            return
        try:
            data, poll = self.read(conn, ctx)
            states = source_states(conn, ctx.at)
        except Exception as exc:  # shown on the screen; the traceback goes to the log
            log.exception("%s: reading the cache failed", type(self).__name__)
            self.post_message(self.Loaded(generation, None, read_problem(exc, ctx.db_path)))
            return
        finally:
            conn.close()
        fresh = Freshness(poll, states, ctx.offline, ctx.at, attached)
        self.post_message(self.Loaded(generation, Freshened(data, fresh)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.generation < self._drawn or message.generation < self._generation:
            return  # a newer read was started: this result is stale, never drawn
        self._drawn = message.generation
        self._in_flight = None
        self._stop_loading()
        if message.result is None:
            # exception texts and db check findings can carry a copied file's own strings
            self._problem = safe_text(message.problem or "", PROBLEM_LEN)
            self._show_notice(self._problem, "-problem")
        else:
            self._problem = None
            self._hide_notice()
            self._freshness = message.result.freshness
            self.render_data(message.result.data)
        self._tick_status()

    # -- the notice above the status line: loading, or why the read failed -----------------------

    def _notice(self) -> Static:
        found = self.query("#read-notice")
        if found:
            return found.first(Static)
        notice = Static(id="read-notice")
        self.mount(notice, before=self.query_one(StatusLine))
        return notice

    def _show_notice(self, message: str, kind: str) -> None:
        notice = self._notice()
        notice.update(Text(message))
        notice.set_class(kind == "-problem", "-problem")
        notice.set_class(kind == "-loading", "-loading")
        notice.display = True

    def _hide_notice(self) -> None:
        for notice in self.query("#read-notice"):
            notice.display = False

    def _show_loading(self) -> None:
        self._loading_timer = None
        if self._drawn < self._generation and self._problem is None:
            self._show_notice(f"{self.LOADING.capitalize()}…", "-loading")

    def _stop_loading(self) -> None:
        if self._loading_timer is not None:
            self._loading_timer.stop()
            self._loading_timer = None

    # -- the status line -----------------------------------------------------------------------

    def refresh_status(self) -> None:
        """Redraw the status line now (e.g. once the app knows the sources' intervals)."""
        self._tick_status()

    def _tick_status(self) -> None:
        line = self.query_one(StatusLine)
        app = host(self)
        if self._problem is not None:
            line.show(Text(self._problem, style="bold"), "warn")
            return
        if self._freshness is None:
            line.show(
                describe(
                    Freshness(None, (), app.offline, app.at, app.attached_note()),
                    app.now(),
                    app.source_interval,
                    app.source_note,
                    self.SOURCES,
                )[0],
                "warn",
            )
            return
        content, level = describe(
            self._freshness, app.now(), app.source_interval, app.source_note, self.SOURCES
        )
        line.show(content, level)
