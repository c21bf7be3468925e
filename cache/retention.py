"""Retention: keep the cache bounded in a long run, in short write transactions.

Fleet samples (``node_samples``): raw for ``raw_days``; then 1-minute rollups for
``minute_days``, 1-hour rollups for ``hour_days`` and 1-day rollups for ``day_days`` (None:
forever). Hours are rolled from raw samples as soon as they are over and days from hours; minutes
are rolled only when raw samples expire (until then the raw samples are finer), in the same
transaction that deletes them, so a crash never leaves a minute half rolled.

Snapshot polls (rankings, network figures, GPU models, io.net devices: anything without node
samples): every poll for ``snapshot_full_days``, then the best poll of each UTC hour (ok before
partial, then the latest) until ``snapshot_hourly_days``, then the best of each UTC day for
``day_days``. A rankings snapshot's 7-day sparkline (hourly prices, about 2.5 KB per coin) is kept
on one snapshot per hour while the poll is within ``snapshot_full_days``, then one per day until
``snapshot_hourly_days``, then dropped. Failed polls are kept ``raw_days``.

Never deleted: the bundled sample (``polls.source = 'sample'``), each source's newest poll and
newest good poll, the polls a ``nodes`` row points to (with each node's last sample, so a node that
went away still shows as last seen), and ``rewards`` (no foreign key to polls on purpose).

Work is split into transactions of at most about ``BATCH_ROWS`` rows, each ``BEGIN IMMEDIATE``
and short, so the poller waits milliseconds, never seconds. Aggregates are read outside the write
transactions (WAL readers block nobody). Progress is kept in ``meta``, so every step resumes
where it stopped and running twice changes nothing the second time.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cache import rollup, usage
from cache.db import SAMPLE_SOURCE, iso, parse_iso, write_txn
from cache.retention_policy import RetentionPolicy

BATCH_ROWS = 5000
"""Rows touched per write transaction (measured: about 30-60 ms on a 2-core VM)."""
READ_ROWS = 100_000
"""Raw samples aggregated per read, outside any write transaction."""
_WATERMARK = {3600: "retention.hours_until", 86400: "retention.days_until"}
_RAW_WATERMARK = "retention.raw_until"


@dataclass
class RetentionReport:
    """What one run did."""

    rollups_written: dict[int, int] = field(
        default_factory=lambda: dict.fromkeys(rollup.RESOLUTIONS, 0)
    )
    samples_rolled_up: int = 0
    """Raw samples folded into 1-minute rollups and deleted."""
    rollups_deleted: int = 0
    polls_deleted: int = 0
    sparklines_dropped: int = 0
    transactions: int = 0
    longest_transaction_ms: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether the run wrote anything."""
        return bool(
            sum(self.rollups_written.values())
            or self.samples_rolled_up
            or self.rollups_deleted
            or self.polls_deleted
            or self.sparklines_dropped
        )


class _Writer:
    """Short ``BEGIN IMMEDIATE`` transactions, timed into the report."""

    def __init__(
        self, conn: sqlite3.Connection, policy: RetentionPolicy, report: RetentionReport
    ) -> None:
        self.conn = conn
        self.policy = policy
        self.report = report

    @contextmanager
    def txn(self) -> Iterator[sqlite3.Connection]:
        started = time.perf_counter()
        try:
            with write_txn(self.conn):
                yield self.conn
        finally:
            ms = (time.perf_counter() - started) * 1000
            self.report.transactions += 1
            self.report.longest_transaction_ms = max(self.report.longest_transaction_ms, ms)

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def insert_rollups(self, rows: Sequence[Sequence[Any]]) -> None:  # rows as SQLite gives them
        for start in range(0, len(rows), BATCH_ROWS):
            chunk = rows[start : start + BATCH_ROWS]
            with self.txn() as conn:
                conn.executemany(rollup.INSERT_ROLLUP, chunk)
            for row in chunk:
                self.report.rollups_written[int(row[0])] += 1


def _ids(polls: Iterable[tuple[int, str, int]]) -> str:
    return json.dumps([p[0] for p in polls])


def _fleet_polls(conn: sqlite3.Connection, start: str, end: str) -> list[tuple[int, str, int]]:
    """(id, finished_at, items) of polls with node samples in [start, end), oldest first."""
    return conn.execute(
        "SELECT id, finished_at, items FROM polls WHERE finished_at >= ? AND finished_at < ? "
        "AND EXISTS (SELECT 1 FROM node_samples s WHERE s.poll_id = polls.id) "
        "ORDER BY finished_at, id",
        (start, end),
    ).fetchall()


def _batches(
    polls: list[tuple[int, str, int]], resolution: int, budget: int
) -> Iterator[list[tuple[int, str, int]]]:
    """Polls in runs of whole buckets, each run about ``budget`` samples (at least one bucket)."""
    batch: list[tuple[int, str, int]] = []
    rows = 0
    for i, poll in enumerate(polls):
        batch.append(poll)
        rows += max(poll[2], 1)
        last_of_bucket = i + 1 == len(polls) or rollup.bucket_key(
            resolution, polls[i + 1][1]
        ) != rollup.bucket_key(resolution, poll[1])
        if last_of_bucket and rows >= budget:
            yield batch
            batch, rows = [], 0
    if batch:
        yield batch


def _protected(conn: sqlite3.Connection) -> set[int]:
    rows = conn.execute(
        "SELECT first_poll_id FROM nodes UNION SELECT last_poll_id FROM nodes "
        "UNION SELECT MAX(id) FROM polls GROUP BY source "
        "UNION SELECT MAX(id) FROM polls WHERE status != 'failed' GROUP BY source "
        "UNION SELECT id FROM polls WHERE source = ?",
        (SAMPLE_SOURCE,),
    )
    return {r[0] for r in rows if r[0] is not None}


def _roll_hours(w: _Writer, now: datetime) -> str:
    """Roll every hour that is over from raw samples; return how far hours are rolled."""
    closed = iso(rollup.floor_time(now, 3600))
    start = w.get_meta(_WATERMARK[3600]) or ""
    for batch in _batches(_fleet_polls(w.conn, start, closed), 3600, READ_ROWS):
        rows = w.conn.execute(
            rollup.raw_aggregate_sql(3600, "s.poll_id IN (SELECT value FROM json_each(?))"),
            (_ids(batch),),
        ).fetchall()
        w.insert_rollups(rows)
    if start < closed:
        with w.txn():
            w.set_meta(_WATERMARK[3600], closed)
        return closed
    return start


def _nodes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT node, source_kind FROM nodes ORDER BY node, source_kind").fetchall()


def _roll_days(w: _Writer, now: datetime, hours_until: str) -> str:
    """Roll every day that is over and fully rolled into hours, from the hours."""
    closed = min(iso(rollup.floor_time(now, 86400)), hours_until[:10] + "T00:00:00.000Z")
    start = w.get_meta(_WATERMARK[86400]) or ""
    if not hours_until or start >= closed:
        return start
    sql = rollup.rollup_aggregate_sql(
        86400, 3600, "node = ? AND source_kind = ? AND bucket_at >= ? AND bucket_at < ?"
    )
    pending: list[Sequence[Any]] = []
    for node, kind in _nodes(w.conn):
        pending.extend(w.conn.execute(sql, (node, kind, start, closed)).fetchall())
        if len(pending) >= BATCH_ROWS:
            w.insert_rollups(pending)
            pending = []
    w.insert_rollups(pending)
    with w.txn():
        w.set_meta(_WATERMARK[86400], closed)
    return closed


# Each node's last sample stays, so a node that went away is still "last seen" in the fleet.
_DELETE_SAMPLES = (
    "DELETE FROM node_samples WHERE poll_id IN (SELECT value FROM json_each(?)) "
    "AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node = node_samples.node "
    "AND n.source_kind = node_samples.source_kind AND n.last_poll_id = node_samples.poll_id)"
)
_DELETE_POLLS = (
    "DELETE FROM polls WHERE id IN (SELECT value FROM json_each(?)) "
    "AND id NOT IN (SELECT value FROM json_each(?))"
)


def _expire_raw(w: _Writer, now: datetime, hours_until: str, protected: set[int]) -> None:
    """Fold expired raw samples into 1-minute rollups and delete them, a batch per transaction."""
    cut = min(iso(rollup.floor_time(now - timedelta(days=w.policy.raw_days), 60)), hours_until)
    start = w.get_meta(_RAW_WATERMARK) or ""
    keep = json.dumps(sorted(protected))
    _sweep_last_samples(w, start, keep)
    if start >= cut:
        return
    for batch in _batches(_fleet_polls(w.conn, start, cut), 60, BATCH_ROWS):
        ids = _ids(batch)
        rows = w.conn.execute(
            rollup.raw_aggregate_sql(60, "s.poll_id IN (SELECT value FROM json_each(?))"), (ids,)
        ).fetchall()
        with w.txn() as conn:
            conn.executemany(rollup.INSERT_ROLLUP, rows)
            deleted = conn.execute(_DELETE_SAMPLES, (ids,)).rowcount
            polls = conn.execute(_DELETE_POLLS, (ids, keep)).rowcount
            bucket_end = rollup.floor_time(parse_iso(batch[-1][1]), 60) + timedelta(seconds=60)
            w.set_meta(_RAW_WATERMARK, min(iso(bucket_end), cut))
        w.report.rollups_written[60] += len(rows)
        w.report.samples_rolled_up += deleted
        w.report.polls_deleted += polls
    with w.txn():
        w.set_meta(_RAW_WATERMARK, cut)
    _prune_usage(w, cut)


def _prune_usage(w: _Writer, raw_until: str) -> None:
    """Drop ``node_usage_hours`` rows of hours before the raw samples (never read again)."""
    while True:
        with w.txn() as conn:
            if not usage.prune(conn, raw_until, BATCH_ROWS):
                return


def _sweep_last_samples(w: _Writer, raw_until: str, keep: str) -> None:
    """Delete kept last samples (already rolled up) of nodes that have come back since."""
    stale = [
        r[0]
        for r in w.conn.execute(
            "SELECT id FROM polls WHERE finished_at < ? "
            "AND EXISTS (SELECT 1 FROM node_samples s WHERE s.poll_id = polls.id)",
            (raw_until,),
        )
    ]
    if not stale:
        return
    with w.txn() as conn:
        ids = json.dumps(stale)
        conn.execute(_DELETE_SAMPLES, (ids,))
        w.report.polls_deleted += conn.execute(_DELETE_POLLS, (ids, keep)).rowcount


def _prune_rollups(w: _Writer, now: datetime, days_until: str) -> None:
    """Delete rollups past their tier's age, node by node (the primary key's order)."""
    policy = w.policy
    cuts = {
        60: iso(now - timedelta(days=policy.minute_days)),
        # hours go only once their day is rolled up
        3600: min(iso(now - timedelta(days=policy.hour_days)), days_until),
    }
    if policy.day_days is not None:
        cuts[86400] = iso(now - timedelta(days=policy.day_days))
    for node, kind in _nodes(w.conn):
        for resolution, cut in cuts.items():
            oldest = w.conn.execute(
                "SELECT bucket_at FROM node_rollups WHERE resolution = ? AND node = ? "
                "AND source_kind = ? ORDER BY bucket_at LIMIT 1",
                (resolution, node, kind),
            ).fetchone()
            if oldest is None or not cut or oldest[0] >= cut:
                continue
            # Steps of BATCH_ROWS buckets: a long backlog is several short transactions.
            step = timedelta(seconds=resolution * BATCH_ROWS)
            low = parse_iso(oldest[0])
            while iso(low) < cut:
                low += step
                with w.txn() as conn:
                    w.report.rollups_deleted += conn.execute(
                        "DELETE FROM node_rollups WHERE resolution = ? AND node = ? "
                        "AND source_kind = ? AND bucket_at < ?",
                        (resolution, node, kind, min(iso(low), cut)),
                    ).rowcount


# The best poll of a bucket: ok before partial, then the most rows, then the latest.
_RANKED = (
    "SELECT id, ROW_NUMBER() OVER (PARTITION BY source, substr(finished_at, 1, {length}) "
    "ORDER BY status = 'ok' DESC, items DESC, finished_at DESC, id DESC) AS rank "
    "FROM polls WHERE status != 'failed' AND source != '{sample}' "
    "AND finished_at >= ? AND finished_at < ? "
    "AND NOT EXISTS (SELECT 1 FROM node_samples s WHERE s.poll_id = polls.id)"
)


def _delete_polls(w: _Writer, ids: list[int], protected: set[int]) -> None:
    ids = [i for i in ids if i not in protected]
    budget = max(1, BATCH_ROWS // 250)  # a rankings poll cascades to about 250 rows
    for start in range(0, len(ids), budget):
        with w.txn() as conn:
            w.report.polls_deleted += conn.execute(
                "DELETE FROM polls WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids[start : start + budget]),),
            ).rowcount


def _thin_snapshots(w: _Writer, now: datetime, protected: set[int]) -> None:
    policy = w.policy
    full = iso(rollup.floor_time(now - timedelta(days=policy.snapshot_full_days), 3600))
    hourly = iso(rollup.floor_time(now - timedelta(days=policy.snapshot_hourly_days), 86400))
    failed_cut = iso(now - timedelta(days=policy.raw_days))
    doomed = [
        r[0]
        for r in w.conn.execute(
            "SELECT id FROM polls WHERE status = 'failed' AND source != ? AND finished_at < ?",
            (SAMPLE_SOURCE, failed_cut),
        )
    ]
    for length, low, high in ((13, hourly, full), (10, "", hourly)):
        sql = _RANKED.format(length=length, sample=SAMPLE_SOURCE)
        doomed += [r[0] for r in w.conn.execute(sql, (low, high)) if r[1] > 1]
    if policy.day_days is not None:
        day_cut = iso(now - timedelta(days=policy.day_days))
        doomed += [
            r[0]
            for r in w.conn.execute(
                "SELECT id FROM polls WHERE source != ? AND finished_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM node_samples s WHERE s.poll_id = polls.id)",
                (SAMPLE_SOURCE, day_cut),
            )
        ]
    _delete_polls(w, sorted(set(doomed)), protected)
    _drop_sparklines(w, now, full, hourly)


def _drop_sparklines(w: _Writer, now: datetime, full: str, hourly: str) -> None:
    # Sparkline keepers: the best rankings poll of each closed hour within snapshot_full_days,
    # of each day until snapshot_hourly_days; none before that.
    this_hour = iso(rollup.floor_time(now, 3600))
    candidates: list[int] = []
    for length, low, high in ((13, full, this_hour), (10, hourly, full)):
        sql = _RANKED.format(length=length, sample=SAMPLE_SOURCE)
        candidates += [r[0] for r in w.conn.execute(sql, (low, high)) if r[1] > 1]
    candidates += [
        r[0]
        for r in w.conn.execute(
            "SELECT id FROM polls WHERE source != ? AND finished_at < ?", (SAMPLE_SOURCE, hourly)
        )
    ]
    step = max(1, BATCH_ROWS // 250)
    for start in range(0, len(candidates), step):
        chunk = json.dumps(candidates[start : start + step])
        with w.txn() as conn:
            w.report.sparklines_dropped += conn.execute(
                "UPDATE market SET sparkline_7d = NULL WHERE sparkline_7d IS NOT NULL "
                "AND poll_id IN (SELECT value FROM json_each(?))",
                (chunk,),
            ).rowcount


def apply_retention(
    conn: sqlite3.Connection, policy: RetentionPolicy, now: datetime
) -> RetentionReport:
    """Roll up and prune as of ``now`` (the writer's clock); safe to run again at any time.

    ``conn`` is a writer connection (cache.db.open_writer) outside any transaction. Only the
    process holding the writer lock (cache.lock) may call this.
    """
    report = RetentionReport()
    w = _Writer(conn, policy, report)
    hours_until = _roll_hours(w, now)
    days_until = _roll_days(w, now, hours_until)
    protected = _protected(conn)
    _expire_raw(w, now, hours_until, protected)
    _prune_rollups(w, now, days_until)
    _thin_snapshots(w, now, protected)
    return report
