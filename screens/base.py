"""A screen that draws "the cache as of now": reads in a thread worker, renders on the UI thread."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.message import Message
from textual.screen import Screen

from cache.db import CacheError, open_reader
from cache.queries import PollInfo, source_states
from screens.host import host
from screens.messages import PollStored
from screens.widgets.status_line import Freshness, StatusLine, describe

AGE_TICK = 5.0


class CacheScreen(Screen[None]):
    """Base for screens fed from the cache; subclasses implement ``read`` and ``render_data``."""

    SOURCES: ClassVar[tuple[str, ...]] = ()
    """The sources whose failures this screen's status line reports."""

    @dataclass
    class Loaded(Message):
        """A thread worker read the cache; carries what ``read`` returned."""

        data: Any
        freshness: Freshness | None
        problem: str | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._freshness: Freshness | None = None

    def on_mount(self) -> None:
        """Read once, then keep the age on the status line current."""
        self.set_interval(AGE_TICK, self._tick_status)

    def on_screen_resume(self) -> None:
        """Hidden screens do nothing; a screen shown again re-reads the cache."""
        self.reload()

    @on(PollStored)
    def _poll_stored(self) -> None:
        self.reload()

    def read(self, conn: sqlite3.Connection) -> tuple[Any, PollInfo | None]:
        """Read this screen's data (runs in a worker thread); return (data, its poll)."""
        raise NotImplementedError

    def render_data(self, data: Any) -> None:
        """Show ``data`` (runs on the UI thread)."""
        raise NotImplementedError

    @work(thread=True, exclusive=True, group="cache-read", exit_on_error=False)
    def reload(self) -> None:
        """Read in a thread with its own read-only connection; post the result."""
        app = host(self)
        try:
            conn = open_reader(app.db_path)
        except CacheError as exc:
            self.post_message(self.Loaded(None, None, problem=str(exc)))
            return
        try:
            data, poll = self.read(conn)
            states = source_states(conn, app.at)
        finally:
            conn.close()
        fresh = Freshness(poll, states, app.offline, app.at, app.attached_note())
        self.post_message(self.Loaded(data, fresh))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self._freshness = message.freshness
        self.render_data(message.data)
        self._tick_status()

    def refresh_status(self) -> None:
        """Redraw the status line now (e.g. once the app knows the sources' intervals)."""
        self._tick_status()

    def _tick_status(self) -> None:
        line = self.query_one(StatusLine)
        app = host(self)
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
