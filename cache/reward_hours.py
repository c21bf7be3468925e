"""What our own history says about one node in one hour: down time, utilization, temperature.

For the reward misses (:mod:`cache.reward_misses`): for each (node, UTC hour) asked, the samples
taken in that hour, each counted as economics counts it (for the time until the node's next
sample, at most ``span`` seconds, the last one until ``until``) in the hour it was taken, as
``node_usage_hours`` does:

- ``sampled_s``: the time those samples stand for (at most the hour); the rest has none;
- ``down_s``: the part that down samples (a failed scrape) stand for;
- ``cpu_pct``, ``gpu_util_pct``: the mean over the up samples;
- ``gpu_temp_max_c``: the hottest GPU reading of those samples.

Where it comes from, the same figures each way:

- an hour the writer has rolled up (``node_rollups`` at 3600 s) whose samples were all up, with
  its ``node_usage_hours`` row complete for the moment read: its sample count, means and hottest
  GPU from the rollup, ``sampled_s`` the usage row's up time, no down time (one index lookup
  per hour instead of windowing its samples);
- any other hour with raw samples: the samples, windowed per (node, source kind, hour) in SQL;
- an hour older than the raw samples (``meta retention.raw_until``): the 1-minute rollups, a
  bucket with samples standing for 60 s, its down share ``(samples − up_samples) / samples``,
  means weighted by ``up_samples``. Older than those, nothing: hourly rollups do not say how
  much of the hour was sampled when a sample was down.

The exporter's network error counters are not stored (``node_samples.counters`` holds CPU and
byte totals only), so no figure here counts network errors.

A node seen by several source kinds uses, per hour, the kind whose samples stand for most of it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cache import usage
from cache.db import iso, parse_iso

HOUR = timedelta(hours=1)
HOUR_S = 3600.0
_RAW_WATERMARK = "retention.raw_until"
FLEET_POLLS = "(source IN ('fleet', 'local') OR source GLOB 'promql*')"
"""The polls that store node samples (polls.source)."""

_NUMBER = "typeof({0}) IN ('integer', 'real')"
_RAW = (
    # Each request (node, kind, first and last poll id, hour start and end) windowed on its own:
    # a sample stands until the next one (at most :span seconds, the last one until :until).
    "WITH s AS (SELECT j.key AS k, s.source_kind AS kind, s.up AS up, s.cpu_pct AS cpu, "
    "  s.gpu_util_pct AS gpu, s.gpu_temp_c AS temp, s.error AS error, p.finished_at AS t, "
    "  julianday(p.finished_at) AS jd, json_extract(j.value, '$[4]') AS lo, "
    "  json_extract(j.value, '$[5]') AS hi, "
    "  LEAD(julianday(p.finished_at)) OVER (PARTITION BY j.key ORDER BY s.poll_id) AS nxt "
    "  FROM json_each(:q) j "
    "  CROSS JOIN node_samples s ON s.node = json_extract(j.value, '$[0]') "
    "    AND s.source_kind = json_extract(j.value, '$[1]') "
    "    AND s.poll_id >= json_extract(j.value, '$[2]') "
    "    AND s.poll_id <= json_extract(j.value, '$[3]') "
    "  JOIN polls p ON p.id = s.poll_id WHERE p.finished_at <= :until), "
    "c AS (SELECT *, MIN(:span, 86400.0 * (COALESCE(nxt, julianday(:until)) - jd)) AS stands "
    "  FROM s WHERE t >= lo AND t < hi) "
    "SELECT k, MIN(kind), COUNT(*), SUM(stands), SUM(CASE WHEN up THEN 0.0 ELSE stands END), "
    f"AVG(CASE WHEN up AND {_NUMBER.format('cpu')} THEN cpu END), "
    f"AVG(CASE WHEN up AND {_NUMBER.format('gpu')} THEN gpu END), "
    f"MAX(CASE WHEN up AND {_NUMBER.format('temp')} THEN temp END), "
    "MAX(CASE WHEN NOT up AND typeof(error) = 'text' AND error != '' "
    "  THEN t || char(31) || error END) FROM c GROUP BY k"
)
_HOURS = (
    "SELECT j.key, r.source_kind, r.samples, r.up_samples, r.cpu_pct, r.gpu_util_pct, "
    "r.gpu_temp_max_c, u.up_s, u.max_gap_s, u.next_poll_id, u.next_at FROM json_each(:q) j "
    # CROSS JOIN: the requests first, each a primary-key lookup (not a scan of every hour)
    "CROSS JOIN node_rollups r ON r.resolution = 3600 AND r.node = json_extract(j.value, '$[0]') "
    "  AND r.source_kind = json_extract(j.value, '$[1]') "
    "  AND r.bucket_at = json_extract(j.value, '$[2]') "
    "LEFT JOIN node_usage_hours u ON u.hour = substr(r.bucket_at, 1, 13) AND u.node = r.node "
    "  AND u.source_kind = r.source_kind"
)
_MINUTES = (
    "SELECT source_kind, COUNT(*), SUM(60.0 * (samples - up_samples) / samples), "
    "SUM(cpu_pct * up_samples) / SUM(CASE WHEN cpu_pct IS NOT NULL THEN up_samples END), "
    "SUM(gpu_util_pct * up_samples) / "
    "  SUM(CASE WHEN gpu_util_pct IS NOT NULL THEN up_samples END), "
    "MAX(gpu_temp_max_c), SUM(samples) FROM node_rollups WHERE resolution = 60 AND node = ? "
    "AND bucket_at >= ? AND bucket_at < ? AND bucket_at <= ? AND samples > 0 "
    "GROUP BY source_kind"
)


@dataclass(frozen=True)
class HourFigures:
    """One node's samples in one hour; None is "no sample had it"."""

    source_kind: str
    samples: int
    sampled_s: float
    down_s: float
    cpu_pct: float | None
    gpu_util_pct: float | None
    gpu_temp_max_c: float | None
    scrape_error: str | None
    """The newest down sample's error in the hour (why the scrape failed)."""
    read_from: str = "samples"
    """``samples``, ``hour rollup`` or ``minute rollups``: where the figures were read."""


def poll_ids(
    conn: sqlite3.Connection, lo: datetime, hi: datetime, bound: int, sources: str = FLEET_POLLS
) -> tuple[int, int] | None:
    """The lowest and highest id of ``sources`` polls finished in ``[lo, hi]``, up to ``bound``.

    Only those sources: another source's poll committed late must not widen the range.
    """
    row = conn.execute(
        f"SELECT MIN(id), MAX(id) FROM polls WHERE {sources} AND finished_at >= ? "
        "AND finished_at <= ? AND id <= ?",
        (iso(lo), iso(hi), bound),
    ).fetchone()
    return None if row[0] is None else (int(row[0]), int(row[1]))


def _keep(
    best: dict[tuple[str, datetime], HourFigures], key: tuple[str, datetime], f: HourFigures
) -> None:
    held = best.get(key)
    if held is None or f.sampled_s > held.sampled_s:
        best[key] = f


def hour_figures(
    conn: sqlite3.Connection,
    wanted: Iterable[tuple[str, datetime]],
    until: datetime,
    bound: int,
    span: float,
) -> dict[tuple[str, datetime], HourFigures]:
    """Figures of each (node, hour start) in ``wanted`` that has samples, as stored by ``bound``.

    A (node, hour) with no sample taken in it is left out: "no samples".
    """
    pairs = sorted(set(wanted))
    if not pairs:
        return {}
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_RAW_WATERMARK,)).fetchone()
    raw_from = parse_iso(row[0]) if row and row[0] else None
    older = [(n, h) for n, h in pairs if raw_from is not None and h < raw_from]
    recent = [(n, h) for n, h in pairs if raw_from is None or h >= raw_from]
    kinds: dict[str, list[str]] = {}
    for node, kind in conn.execute(
        "SELECT node, source_kind FROM nodes WHERE node IN (SELECT value FROM json_each(?)) "
        "ORDER BY node, source_kind",
        (json.dumps(sorted({n for n, _ in pairs})),),
    ):
        kinds.setdefault(node, []).append(kind)
    out, rest = _from_hour_rollups(conn, recent, kinds, until, bound, span)
    out.update(_from_samples(conn, rest, kinds, until, bound, span))
    for node, hour in older:
        found = _from_minutes(conn, node, hour, until)
        if found is not None:
            out[(node, hour)] = found
    return out


def _from_hour_rollups(
    conn: sqlite3.Connection,
    pairs: list[tuple[str, datetime]],
    kinds: dict[str, list[str]],
    until: datetime,
    bound: int,
    span: float,
) -> tuple[dict[tuple[str, datetime], HourFigures], list[tuple[str, datetime]]]:
    """The hours whose rollup says every sample was up; the others are left to the samples."""
    out: dict[tuple[str, datetime], HourFigures] = {}
    closed = [(n, h) for n, h in pairs if h + HOUR <= until]
    if not closed or not usage.complete(conn, bound):
        return out, pairs
    until_s = iso(until)
    unsure: set[tuple[str, datetime]] = set()
    keys = [(n, h) for n, h in closed for _ in kinds.get(n, [])]
    query = json.dumps([(n, k, iso(h)) for n, h in closed for k in kinds.get(n, [])])
    for index, kind, samples, up, cpu, gpu, temp, up_s, gap, next_id, next_at in conn.execute(
        _HOURS, {"q": query}
    ):
        key = keys[int(index)]
        # complete: every gap within the cap, the successors all stored by T, the hour's last
        # sample's among them (a successor in a later hour)
        counted = (
            up_s is not None
            and gap <= span + 0.001  # julianday arithmetic: 300 s comes out as 300.00002
            and next_id <= bound
            and until_s >= next_at >= iso(key[1] + HOUR)
        )
        if not samples or up != samples or not counted:
            unsure.add(key)  # a down sample, a long gap, or a successor after T: the samples
            continue
        figures = HourFigures(
            source_kind=kind,
            samples=int(samples),
            sampled_s=min(HOUR_S, round(float(up_s), 3)),
            down_s=0.0,
            cpu_pct=_number(cpu),
            gpu_util_pct=_number(gpu),
            gpu_temp_max_c=_number(temp),
            scrape_error=None,
            read_from="hour rollup",
        )
        _keep(out, key, figures)
    for key in unsure:  # one kind in doubt: the hour is read from the samples, every kind
        out.pop(key, None)
    return out, [p for p in pairs if p not in out]


def _from_samples(
    conn: sqlite3.Connection,
    pairs: list[tuple[str, datetime]],
    kinds: dict[str, list[str]],
    until: datetime,
    bound: int,
    span: float,
) -> dict[tuple[str, datetime], HourFigures]:
    """Each (node, hour)'s figures from its samples (one query, windowed per request in SQL)."""
    best: dict[tuple[str, datetime], HourFigures] = {}
    if not pairs:
        return best
    reach = timedelta(seconds=span)
    ids: dict[datetime, tuple[int, int] | None] = {}
    requests: list[tuple[str, str, int, int, str, str]] = []
    keys: list[tuple[str, datetime]] = []
    for node, hour in pairs:
        if hour not in ids:  # the hour's polls and the next one within the span
            ids[hour] = poll_ids(conn, hour, min(hour + HOUR + reach, until), bound)
        span_ids = ids[hour]
        if span_ids is None:
            continue
        for kind in kinds.get(node, []):
            requests.append((node, kind, *span_ids, iso(hour), iso(hour + HOUR)))
            keys.append((node, hour))
    if not requests:
        return best
    params = {"q": json.dumps(requests), "until": iso(until), "span": span}
    for index, kind, samples, sampled, down, cpu, gpu, temp, error in conn.execute(_RAW, params):
        figures = HourFigures(
            source_kind=kind,
            samples=int(samples),
            sampled_s=min(HOUR_S, round(float(sampled or 0.0), 3)),
            down_s=min(HOUR_S, round(float(down or 0.0), 3)),
            cpu_pct=_number(cpu),
            gpu_util_pct=_number(gpu),
            gpu_temp_max_c=_number(temp),
            scrape_error=error.split("\x1f", 1)[1] if isinstance(error, str) else None,
        )
        _keep(best, keys[int(index)], figures)
    return best


def _from_minutes(
    conn: sqlite3.Connection, node: str, hour: datetime, until: datetime
) -> HourFigures | None:
    """The hour from 1-minute rollups (raw samples gone); the kind covering most of it."""
    rows = conn.execute(
        _MINUTES, (node, iso(hour), iso(hour + HOUR), iso(until - timedelta(seconds=60)))
    ).fetchall()
    best: HourFigures | None = None
    for kind, buckets, down_s, cpu, gpu, temp, samples in rows:
        figures = HourFigures(
            source_kind=kind,
            samples=int(samples or 0),
            sampled_s=60.0 * buckets,
            down_s=float(down_s or 0.0),
            cpu_pct=_number(cpu),
            gpu_util_pct=_number(gpu),
            gpu_temp_max_c=_number(temp),
            scrape_error=None,
            read_from="minute rollups",
        )
        if best is None or figures.sampled_s > best.sampled_s:
            best = figures
    return best


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None
