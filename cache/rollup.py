"""Per-node rollups (table ``node_rollups``) and reading a node's history at the fitting resolution.

Three resolutions: 60 s, 3600 s and 86400 s. A rollup row holds a bucket's sample count, its up
count, the mean of each node figure over the samples that had it (down samples have none) and
the hottest GPU temperature seen. Buckets are labelled by their start, in :func:`cache.db.iso`
form, so buckets are plain text prefixes of the sample times (``2026-11-25T14`` is an hour).

How they are filled (cache/retention.py): hours from raw samples as soon as an hour is over,
days from hours, and minutes from raw samples only when the raw samples expire, so the newest
week is not stored twice.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from cache.db import iso, parse_iso
from sources.figures import NODE_VALUE_FIELDS

RESOLUTIONS = (60, 3600, 86400)
_PREFIX = {60: (16, ":00.000Z"), 3600: (13, ":00:00.000Z"), 86400: (10, "T00:00:00.000Z")}
ROLLUP_COLUMNS = (
    "resolution",
    "node",
    "source_kind",
    "bucket_at",
    "samples",
    "up_samples",
    *NODE_VALUE_FIELDS,
    "gpu_temp_max_c",
)
INSERT_ROLLUP = (
    f"INSERT OR REPLACE INTO node_rollups ({', '.join(ROLLUP_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ROLLUP_COLUMNS))})"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_key(resolution: int, moment: str) -> str:
    """The bucket of an iso() time as a text prefix (``2026-11-25T14`` for an hour)."""
    return moment[: _PREFIX[resolution][0]]


def bucket_sql(resolution: int, column: str) -> str:
    """SQL for the start of the bucket holding the iso() time in ``column``."""
    length, suffix = _PREFIX[resolution]
    return f"(substr({column}, 1, {length}) || '{suffix}')"


def floor_time(moment: datetime, resolution: int) -> datetime:
    """The start of the bucket holding ``moment`` (UTC)."""
    seconds = int((moment.astimezone(UTC) - _EPOCH).total_seconds() // resolution) * resolution
    return _EPOCH + timedelta(seconds=seconds)


def raw_aggregate_sql(resolution: int, where: str) -> str:
    """Bucketed means of raw ``node_samples s`` joined to ``polls p``, filtered by ``where``."""
    means = ", ".join(f"AVG(s.{f})" for f in NODE_VALUE_FIELDS)
    bucket = bucket_sql(resolution, "p.finished_at")
    return (
        f"SELECT {resolution}, s.node, s.source_kind, {bucket} AS b, COUNT(*), SUM(s.up), "
        f"{means}, MAX(s.gpu_temp_c) FROM node_samples s JOIN polls p ON p.id = s.poll_id "
        f"WHERE {where} GROUP BY s.node, s.source_kind, b"
    )


def rollup_aggregate_sql(resolution: int, finer: int, where: str) -> str:
    """Coarser buckets from finer rollups: each mean weighted by its bucket's up samples.

    Exact when every up sample carried the figure; close otherwise (e.g. a CPU percentage that
    is missing on the first sample after a counter reset).
    """
    means = ", ".join(
        f"SUM({f} * up_samples) / NULLIF(SUM(CASE WHEN {f} IS NOT NULL THEN up_samples END), 0)"
        for f in NODE_VALUE_FIELDS
    )
    bucket = bucket_sql(resolution, "bucket_at")
    return (
        f"SELECT {resolution}, node, source_kind, {bucket} AS b, SUM(samples), SUM(up_samples), "
        f"{means}, MAX(gpu_temp_max_c) FROM node_rollups "
        f"WHERE resolution = {finer} AND {where} GROUP BY node, source_kind, b"
    )


def _edge(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> str | None:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _tier_starts(conn: sqlite3.Connection, node: str, kind: str) -> dict[int, str | None]:
    """Where each tier's data starts (0 = raw samples), counting the raw tail of rollup tiers."""
    raw = _edge(
        conn,
        "SELECT p.finished_at FROM node_samples s JOIN polls p ON p.id = s.poll_id "
        "WHERE s.node = ? AND s.source_kind = ? ORDER BY s.poll_id LIMIT 1",
        (node, kind),
    )
    starts: dict[int, str | None] = {}
    for resolution in RESOLUTIONS:
        starts[resolution] = _edge(
            conn,
            "SELECT bucket_at FROM node_rollups WHERE resolution = ? AND node = ? "
            "AND source_kind = ? ORDER BY bucket_at LIMIT 1",
            (resolution, node, kind),
        )
    newest_minute = _edge(
        conn,
        "SELECT bucket_at FROM node_rollups WHERE resolution = 60 AND node = ? "
        "AND source_kind = ? ORDER BY bucket_at DESC LIMIT 1",
        (node, kind),
    )
    if raw and newest_minute:
        # Raw samples older than the minute rollups are the last samples of a node that went
        # away, kept for the fleet table: they do not make raw cover the minutes before them.
        raw = max(raw, iso(parse_iso(newest_minute) + timedelta(seconds=60)))
    out: dict[int, str | None] = {0: raw}
    for resolution in RESOLUTIONS:
        out[resolution] = starts[resolution] or raw
    return out


def choose_resolution(conn: sqlite3.Connection, node: str, kind: str, since: datetime) -> int:
    """0 (raw) when raw samples cover ``since``, else the finest rollup that does.

    When nothing reaches back to ``since``, the tier that reaches furthest (finer on ties).
    """
    starts = _tier_starts(conn, node, kind)
    bound = iso(since)
    for tier in (0, *RESOLUTIONS):
        start = starts[tier]
        if start is not None and start <= bound:
            return tier
    known = [(start, tier) for tier, start in starts.items() if start is not None]
    return min(known)[1] if known else 0


Series = list[tuple[datetime, dict[str, float | int | None]]]


def _first_poll_id(conn: sqlite3.Connection, since: datetime) -> int:
    # Poll ids grow with time: start a node's index range near ``since`` instead of at its first
    # sample (a minute early, for polls that committed slightly out of time order).
    row = conn.execute(
        "SELECT MIN(id) FROM polls WHERE finished_at >= ?", (iso(since - timedelta(minutes=1)),)
    ).fetchone()
    return int(row[0] or 0)


def raw_history(
    conn: sqlite3.Connection,
    node: str,
    kind: str,
    since: datetime,
    bound_poll_id: int,
    fields: tuple[str, ...],
) -> Series:
    """Raw samples of one node from ``since`` up to poll ``bound_poll_id``, oldest first."""
    cols = ", ".join(f"s.{f}" for f in fields)
    low = _first_poll_id(conn, since)
    rows = conn.execute(
        f"SELECT p.finished_at, s.up, {cols} FROM node_samples s "
        "JOIN polls p ON p.id = s.poll_id WHERE s.node = ? AND s.source_kind = ? "
        "AND s.poll_id >= ? AND s.poll_id <= ? AND p.finished_at >= ? ORDER BY s.poll_id",
        (node, kind, low, bound_poll_id, iso(since)),
    ).fetchall()
    return [(parse_iso(r[0]), dict(zip(fields, r[2:], strict=True))) for r in rows]


def rollup_history(
    conn: sqlite3.Connection,
    node: str,
    kind: str,
    resolution: int,
    since: datetime,
    at: datetime | None,
    bound_poll_id: int,
    fields: tuple[str, ...],
) -> Series:
    """Buckets of one tier from ``since``, then the newer raw samples bucketed the same way.

    As of ``at``, only buckets that were over by ``at`` count, and the raw tail stops at the
    last poll stored by ``at``: nothing newer than ``at`` shows.
    """
    cols = ", ".join(fields)
    upper = iso(at - timedelta(seconds=resolution)) if at else "9999"
    rows = conn.execute(
        f"SELECT bucket_at, {cols} FROM node_rollups WHERE resolution = ? AND node = ? "
        "AND source_kind = ? AND bucket_at >= ? AND bucket_at <= ? ORDER BY bucket_at",
        (resolution, node, kind, iso(since), upper),
    ).fetchall()
    out: Series = [(parse_iso(r[0]), dict(zip(fields, r[1:], strict=True))) for r in rows]
    tail_from = since
    if out:
        tail_from = max(since, out[-1][0] + timedelta(seconds=resolution))
    index = {f: 6 + NODE_VALUE_FIELDS.index(f) for f in fields}
    tail = conn.execute(
        raw_aggregate_sql(
            resolution,
            "s.node = ? AND s.source_kind = ? AND s.poll_id >= ? AND s.poll_id <= ? "
            "AND p.finished_at >= ?",
        )
        + " ORDER BY b",
        (node, kind, _first_poll_id(conn, tail_from), bound_poll_id, iso(tail_from)),
    ).fetchall()
    for r in tail:
        start = parse_iso(r[3])
        if start >= since:
            out.append((start, {f: r[i] for f, i in index.items()}))
    return out
