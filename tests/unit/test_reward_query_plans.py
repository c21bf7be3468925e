"""The rewards reads of the Rewards and Node screens use the index their period needs.

Without ANALYZE statistics (the app never runs it), SQLite took the primary key's ``network``
prefix for the period's rewards, i.e. every io.net row ever stored: 0.4 s on the benchmark cache
of 218,000 rewards for one day's 2,400; one device's rows by the primary key are its whole
history, scattered over the file (0.67 s with a cold page cache). Checked on the plan, not a clock.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cache.db import open_reader, open_writer
from cache.reward_misses import reward_misses
from cache.rewards import reward_rows
from cache.store import PollRecord, write_poll
from sources.models import Reading, Reward

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DEV = "3f1d2c4b-5a69-4e7f-8b0c-1d2e3f405162"


def _cache(db: Path) -> None:
    rewards = [
        Reward(
            network="io.net",
            device_id=DEV,
            node="rig-01",
            at=T0 - timedelta(hours=h),
            amount=0.0 if h % 5 == 0 else 0.25,
            token="IO",
            source=f"io.net block {h}",
            status="Failed" if h % 5 == 0 else "Success",
        )
        for h in range(1, 200)
    ]
    conn = open_writer(db)
    try:
        write_poll(conn, PollRecord("ionet-devices", T0, T0, Reading(rewards=rewards)))
    finally:
        conn.close()


def _plans(conn: sqlite3.Connection, run: object) -> dict[str, str]:
    """Each rewards statement ``run`` executes, with its query plan."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)  # statements with their values bound in
    try:
        run()  # type: ignore[operator]
    finally:
        conn.set_trace_callback(None)
    plans = {}
    for sql in seen:
        if " FROM rewards " in sql:
            rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
            plans[sql] = " | ".join(str(r[-1]) for r in rows)
    assert plans, seen
    return plans


def test_the_period_s_misses_are_read_through_the_at_index(tmp_path: Path) -> None:
    _cache(tmp_path / "c.db")
    conn = open_reader(tmp_path / "c.db")
    since = T0 - timedelta(hours=24)
    for plan in _plans(conn, lambda: reward_misses(conn, since, T0)).values():
        assert "USING INDEX rewards_at" in plan, plan
    for plan in _plans(conn, lambda: reward_misses(conn, since, T0, node="rig-01")).values():
        assert "USING INDEX rewards_node_at" in plan, plan


def test_the_node_screen_reads_its_device_s_range_through_the_at_index(tmp_path: Path) -> None:
    _cache(tmp_path / "c.db")
    conn = open_reader(tmp_path / "c.db")
    since = T0 - timedelta(days=7)
    read = lambda: reward_rows(conn, at=T0, since=since, device=("io.net", DEV))  # noqa: E731
    for plan in _plans(conn, read).values():  # the range's rows, stored together: few pages
        assert "USING INDEX rewards_at" in plan, plan
