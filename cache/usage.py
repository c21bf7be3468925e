"""GPU time, GPU energy and up time of the fleet's samples, summed per UTC hour as they arrive.

:mod:`cache.economics` counts each up sample for the time until its node's next sample, at most
``max_span`` seconds, the last one until ``until``. Windowing every sample of the period for that
took about 3 s for a day of 500 nodes polled every minute. ``node_usage_hours`` (migration 7)
holds what the window would find, per (hour of the sample, node, source kind): when a poll is
stored (:func:`upkeep`, from :func:`cache.store.write_poll`), each of its samples completes its
node's previous sample, whose gap and sums go to that sample's hour, with the largest gap and
the newest successor (poll id and time) seen in the hour.

:func:`usage_rows` answers a period from whole hours of that table and from the samples only
for the partial first and last hour, for the hours whose successors are newer than the period
or whose largest gap exceeds ``max_span`` (the cap would apply: those hours are windowed from
the samples), and for each node's last sample (counted until ``until``). Every sample's time is
the same expression on the same text as the window's, so the sums differ from it only in the
order they are added.

``node_usage_state.complete_to`` says up to which poll the table is complete; a cache filled
some other way (a bulk loader that inserts samples directly) is answered from the samples alone
until :func:`fill_usage_hours` has run.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta

from cache.db import USAGE_BACKFILL, USAGE_UPKEEP, iso, parse_iso
from cache.queries import LATEST_SAMPLES

HOUR = timedelta(hours=1)
UsageRow = tuple[str, str, str, float | None, float | None, float]
"""(node, source kind, UTC day, GPU-seconds, joules, up seconds), as economics sums them."""

_SEGMENT = (
    "WITH t AS (SELECT id, finished_at, julianday(finished_at) AS jd FROM polls "
    "  WHERE id >= :lo_id AND id <= :hi_id AND finished_at >= :lo AND finished_at <= :ext) "
    "SELECT node, source_kind, substr(t, 1, 10), "
    "SUM(CASE WHEN up AND gpus IS NOT NULL THEN gpus * dt END), "
    "SUM(CASE WHEN up AND gpu_power_w IS NOT NULL THEN gpu_power_w * dt END), "
    "SUM(CASE WHEN up THEN dt ELSE 0 END) FROM ("
    "  SELECT s.node, s.source_kind, s.up, s.gpus, s.gpu_power_w, t.finished_at AS t, "
    "  MIN(:span, (COALESCE(LEAD(t.jd) OVER w, julianday(:until)) - t.jd) * 86400.0) AS dt "
    "  FROM t CROSS JOIN node_samples s ON s.poll_id = t.id {pairs}"
    "  WINDOW w AS (PARTITION BY s.node, s.source_kind ORDER BY s.poll_id)) "
    "WHERE t < :keep GROUP BY node, source_kind, substr(t, 1, 10)"
)
_PAIRS = (
    "WHERE (s.node, s.source_kind) IN (SELECT json_extract(value, '$[0]'), "
    "json_extract(value, '$[1]') FROM json_each(:pairs)) "
)


def upkeep(conn: sqlite3.Connection, poll_id: int) -> None:
    """Add what poll ``poll_id``'s samples complete (inside the writer's poll transaction).

    Only while the table is complete up to the fleet's previous poll: a cache whose samples came
    some other way stays marked incomplete, and readers use the samples.
    """
    row = conn.execute("SELECT complete_to FROM node_usage_state").fetchone()
    if row is None:
        return
    previous = conn.execute(
        "SELECT MAX(poll_id) FROM node_samples WHERE poll_id < ?", (poll_id,)
    ).fetchone()[0]
    if int(row[0]) < (previous or 0):
        return
    conn.execute(USAGE_UPKEEP, (poll_id,))
    _mark(conn, poll_id)


def fill_usage_hours(conn: sqlite3.Connection) -> None:
    """Rebuild ``node_usage_hours`` from every stored sample (what migration 7 does).

    For caches filled without :func:`cache.store.write_poll` (a generator inserting samples
    directly); the caller runs it in a write transaction of its own, or none.
    """
    conn.execute("DELETE FROM node_usage_hours")
    conn.execute(USAGE_BACKFILL)
    newest = conn.execute("SELECT MAX(poll_id) FROM node_samples").fetchone()[0]
    _mark(conn, newest or 0)


def prune(conn: sqlite3.Connection, before: str, limit: int) -> int:
    """Delete up to ``limit`` hours rows older than ``before`` (retention); the count deleted."""
    return conn.execute(
        "DELETE FROM node_usage_hours WHERE (hour, node, source_kind) IN ("
        "SELECT hour, node, source_kind FROM node_usage_hours WHERE hour < ? LIMIT ?)",
        (before[:13], limit),
    ).rowcount


def _mark(conn: sqlite3.Connection, poll_id: int) -> None:
    conn.execute(
        "INSERT INTO node_usage_state VALUES (1, ?) "
        "ON CONFLICT (only) DO UPDATE SET complete_to = excluded.complete_to",
        (poll_id,),
    )


def complete(conn: sqlite3.Connection, bound: int) -> bool:
    """Whether ``node_usage_hours`` counts every sample whose successor is up to poll ``bound``."""
    try:
        row = conn.execute("SELECT complete_to FROM node_usage_state").fetchone()
    except sqlite3.OperationalError:
        return False  # an older cache (read-only, not migrated yet)
    if row is None:
        return False
    top = conn.execute(
        "SELECT MAX(poll_id) FROM node_samples WHERE poll_id <= ?", (bound,)
    ).fetchone()[0]
    return int(row[0]) >= (top or 0)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def usage_rows(
    conn: sqlite3.Connection, start: str, until: datetime, bound: int, span: float
) -> list[UsageRow] | None:
    """The usage of samples in ``[start, until]`` (polls up to ``bound``), in economics' rows.

    ``start`` is the iso text economics starts the raw samples at. None when the hours table
    cannot answer (missing, incomplete, or no whole hour in the period): window the samples.
    """
    first = _floor_hour(parse_iso(start))
    if iso(first) < start:
        first += HOUR
    last = _floor_hour(until)
    if first >= last or not complete(conn, bound):
        return None
    until_s = iso(until)
    rows: list[UsageRow] = []
    if start < iso(first):
        ext = min(until, first + timedelta(seconds=span))
        rows += _segment(conn, start, iso(first), ext, until_s, bound, span)
    rows += _segment(conn, iso(last), "9999", until, until_s, bound, span)
    redo: dict[str, list[tuple[str, str]]] = {}
    for hour, node, kind, gpu_s, joules, up_s, gap, next_id, next_at in conn.execute(
        "SELECT hour, node, source_kind, gpu_s, joules, up_s, max_gap_s, next_poll_id, next_at "
        "FROM node_usage_hours WHERE hour >= ? AND hour < ?",
        (iso(first)[:13], iso(last)[:13]),
    ):
        if gap <= span and next_id <= bound and next_at <= until_s:
            rows.append((node, kind, hour[:10], gpu_s, joules, up_s))
        else:
            redo.setdefault(hour, []).append((node, kind))
    for hour, pairs in sorted(redo.items()):
        begin = parse_iso(hour + ":00:00.000Z")
        ext = min(until, begin + HOUR + timedelta(seconds=span))
        rows += _segment(conn, iso(begin), iso(begin + HOUR), ext, until_s, bound, span, pairs)
    rows += _last_samples(conn, iso(first), iso(last), until_s, bound, span, redo)
    return rows


def _segment(
    conn: sqlite3.Connection,
    lo: str,
    keep: str,
    ext: datetime,
    until: str,
    bound: int,
    span: float,
    pairs: list[tuple[str, str]] | None = None,
) -> list[UsageRow]:
    """Samples from ``lo`` to before ``keep``, windowed over ``[lo, ext]``.

    A sample's next one, if the window over the whole period has it, is in ``[lo, ext]`` or
    more than ``span`` later: either way its time is the same as in the whole window.
    """
    ids = conn.execute(
        "SELECT MIN(id), MAX(id) FROM polls WHERE finished_at >= ? AND finished_at <= ?",
        (lo, iso(ext)),
    ).fetchone()
    if ids[0] is None:
        return []
    params: dict[str, object] = {
        "lo_id": ids[0],
        "hi_id": min(ids[1], bound),
        "lo": lo,
        "ext": iso(ext),
        "keep": keep,
        "until": until,
        "span": span,
    }
    if pairs is not None:
        params["pairs"] = json.dumps(pairs)
    sql = _SEGMENT.format(pairs=_PAIRS if pairs is not None else "")
    return conn.execute(sql, params).fetchall()


def _last_samples(
    conn: sqlite3.Connection,
    first: str,
    last: str,
    until: str,
    bound: int,
    span: float,
    redo: dict[str, list[tuple[str, str]]],
) -> list[UsageRow]:
    """Each node's newest sample, counted until ``until``, when it is in a whole hour.

    It has no successor up to ``bound`` (it would not be the newest), so no hours row has it;
    an hour windowed from the samples (``redo``) counts it already.
    """
    rows = conn.execute(
        f"{LATEST_SAMPLES} SELECT s.node, s.source_kind, p.finished_at, s.up, s.gpus, "
        "s.gpu_power_w, MIN(?, (julianday(?) - julianday(p.finished_at)) * 86400.0) "
        "FROM latest JOIN node_samples s ON s.poll_id = latest.poll_id "
        "AND s.node = latest.node AND s.source_kind = latest.source_kind "
        "JOIN polls p ON p.id = s.poll_id WHERE p.finished_at >= ? AND p.finished_at < ?",
        (bound, span, until, first, last),
    ).fetchall()
    skip = {(hour, node, kind) for hour, pairs in redo.items() for node, kind in pairs}
    out: list[UsageRow] = []
    for node, kind, at, up, gpus, watts, dt in rows:
        if (at[:13], node, kind) in skip:
            continue
        out.append(
            (
                node,
                kind,
                at[:10],
                gpus * dt if up and gpus is not None else None,
                watts * dt if up and watts is not None else None,
                dt if up else 0.0,
            )
        )
    return out
