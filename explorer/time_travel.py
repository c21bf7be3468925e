"""Where a step of time travel lands (``[`` and ``]``), read from the cache without Textual."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cache.db import CacheError, open_reader
from cache.timeline import neighbour_poll

FAR_FUTURE = timedelta(days=36500)
"""Added to the clock to find the newest poll (live shows it)."""


@dataclass(frozen=True)
class Step:
    """One step: the moment to show (None: live), or why the view stays where it is."""

    moment: datetime | None = None
    refused: str | None = None


def step_poll(db_path: Path, at: datetime | None, now: datetime, later: bool) -> Step | None:
    """The stored poll one step earlier or later than ``at`` (None: live).

    Later than the newest poll is live; earlier than the oldest is refused. Returns None when
    there is nothing to do (a step later while live). Opens its own reader: call off the UI
    thread.
    """
    if later and at is None:
        return None
    try:
        conn = open_reader(db_path)
    except CacheError as exc:
        return Step(refused=str(exc))
    try:
        moment = at
        if moment is None:  # live shows the newest poll: one step back is the one before it
            moment = neighbour_poll(conn, now + FAR_FUTURE, later=False)
        found = neighbour_poll(conn, moment, later) if moment else None
    finally:
        conn.close()
    if found is None and not later:
        return Step(refused="no earlier poll stored")
    return Step(moment=found)  # None after the newest: live
