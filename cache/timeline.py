"""Stepping through history: the stored polls just before or after a moment."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from cache.db import iso, parse_iso


def neighbour_poll(conn: sqlite3.Connection, moment: datetime, later: bool) -> datetime | None:
    """When the good poll nearest before (or after, ``later``) ``moment`` finished; None if none.

    Time travel steps to these instants, so each step shows exactly one more (or one fewer) poll.
    """
    if later:
        sql = "SELECT MIN(finished_at) FROM polls WHERE status != 'failed' AND finished_at > ?"
    else:
        sql = "SELECT MAX(finished_at) FROM polls WHERE status != 'failed' AND finished_at < ?"
    found = conn.execute(sql, (iso(moment),)).fetchone()[0]
    return parse_iso(found) if found else None


def newest_poll_id(conn: sqlite3.Connection) -> int:
    """The id of the newest stored poll (0 for none): a cheap "has anything changed?" mark."""
    return int(conn.execute("SELECT MAX(id) FROM polls").fetchone()[0] or 0)
