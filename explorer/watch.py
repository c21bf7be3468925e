"""Noticing polls stored by another process (a collector), for read-only sessions.

One plain thread per app, asleep most of the time: every couple of seconds it asks SQLite's
``PRAGMA data_version`` on its own long-lived read connection (it changes when another
connection commits, and costs a shared-memory read) and, while attached, whether the collector
still holds the writer lock. Cheaper than a worker per check, which an idle console would pay
forever.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from cache.db import CacheError, open_reader
from cache.lock import holder_pid
from cache.timeline import newest_poll_id

Changed = Callable[[int, bool], None]
"""(newest poll id, collector gone) -> None; called from the watcher thread."""


class CacheWatcher(threading.Thread):
    """Calls ``on_change`` when the cache gained a poll or the attached collector went away."""

    def __init__(
        self,
        db_path: Path,
        on_change: Changed,
        attached: Callable[[], bool],
        every: float = 2.0,
    ) -> None:
        super().__init__(name="cache-watch", daemon=True)
        self.db_path = db_path
        self.on_change = on_change
        self.attached = attached
        self.every = every
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the thread to end (it does within one interval)."""
        self._stop_event.set()

    def run(self) -> None:
        """Check, sleep, repeat until stopped; never raises."""
        conn: sqlite3.Connection | None = None
        version: int | None = None
        try:
            while not self._stop_event.wait(self.every):
                try:
                    if conn is None:
                        conn = open_reader(self.db_path)
                    now = int(conn.execute("PRAGMA data_version").fetchone()[0])
                    changed = version is not None and now != version
                    version = now
                    mark = newest_poll_id(conn) if changed else 0
                except (CacheError, sqlite3.Error):
                    if conn is not None:
                        conn.close()
                    conn, version = None, None  # no cache yet, or replaced: open again later
                    continue
                gone = self.attached() and holder_pid(self.db_path) is None
                if changed or gone:
                    self.on_change(mark, gone)
        finally:
            if conn is not None:
                conn.close()
