"""What our own history says about one node in one hour: down time, utilization, temperature.

For the reward misses (:mod:`cache.reward_misses`): for each (node, UTC hour) asked, the
samples of that hour as economics counts them (each sample stands for the time until the node's
next sample, at most ``span`` seconds, the last one until ``until``), clipped to the hour:

- ``sampled_s``: seconds of the hour some sample stands for; the rest of the hour has none;
- ``down_s``: seconds of it that down samples (a failed scrape) stand for;
- ``cpu_pct``, ``gpu_util_pct``: the mean over the up samples taken in the hour;
- ``gpu_temp_max_c``: the hottest GPU reading of those samples.

Hours older than the raw samples' retention watermark (``meta retention.raw_until``) are read
from the 1-minute rollups instead: a bucket with samples stands for 60 s, its down share is
``(samples − up_samples) / samples``, means are weighted by ``up_samples``. Hours older than the
1-minute rollups have no figures (hourly rollups do not say how much of the hour was sampled).

The exporter's network error counters are not stored (``node_samples.counters`` holds CPU and
byte totals only), so no figure here counts network errors.

A node seen by several source kinds uses, per hour, the kind whose samples cover most of it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cache.db import iso, parse_iso

HOUR = timedelta(hours=1)
_RAW_WATERMARK = "retention.raw_until"

_RAW = (
    "SELECT j.key, s.source_kind, p.finished_at, s.up, s.cpu_pct, s.gpu_util_pct, "
    "s.gpu_temp_c, s.error FROM json_each(:q) j "
    "JOIN node_samples s ON s.node = json_extract(j.value, '$[0]') "
    "  AND s.source_kind = json_extract(j.value, '$[1]') "
    "  AND s.poll_id >= json_extract(j.value, '$[2]') "
    "  AND s.poll_id <= json_extract(j.value, '$[3]') "
    "JOIN polls p ON p.id = s.poll_id ORDER BY j.key, s.poll_id"
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
    from_rollups: bool = False


@dataclass
class _Acc:
    """Sums for one (node, kind, hour) while its samples are walked."""

    samples: int = 0
    sampled_s: float = 0.0
    down_s: float = 0.0
    cpu: tuple[float, int] = (0.0, 0)
    gpu: tuple[float, int] = (0.0, 0)
    temp: float | None = None
    error: str | None = None

    def figures(self, kind: str) -> HourFigures:
        return HourFigures(
            source_kind=kind,
            samples=self.samples,
            sampled_s=self.sampled_s,
            down_s=self.down_s,
            cpu_pct=self.cpu[0] / self.cpu[1] if self.cpu[1] else None,
            gpu_util_pct=self.gpu[0] / self.gpu[1] if self.gpu[1] else None,
            gpu_temp_max_c=self.temp,
            scrape_error=self.error,
        )


def _mean(acc: tuple[float, int], value: float | None) -> tuple[float, int]:
    return acc if value is None else (acc[0] + value, acc[1] + 1)


def poll_ids(
    conn: sqlite3.Connection, lo: datetime, hi: datetime, bound: int
) -> tuple[int, int] | None:
    """The lowest and highest id of polls finished in ``[lo, hi]``, up to ``bound``."""
    row = conn.execute(
        "SELECT MIN(id), MAX(id) FROM polls WHERE finished_at >= ? AND finished_at <= ? "
        "AND id <= ?",
        (iso(lo), iso(hi), bound),
    ).fetchone()
    return None if row[0] is None else (int(row[0]), int(row[1]))


def hour_figures(
    conn: sqlite3.Connection,
    wanted: Iterable[tuple[str, datetime]],
    until: datetime,
    bound: int,
    span: float,
) -> dict[tuple[str, datetime], HourFigures]:
    """Figures of each (node, hour start) in ``wanted`` that has samples, as stored by ``bound``.

    A (node, hour) with no sample standing for any of the hour is left out: "no samples".
    """
    pairs = sorted(set(wanted))
    if not pairs:
        return {}
    kinds: dict[str, list[str]] = {}
    for node, kind in conn.execute(
        "SELECT node, source_kind FROM nodes WHERE node IN (SELECT value FROM json_each(?)) "
        "ORDER BY node, source_kind",
        (json.dumps(sorted({n for n, _ in pairs})),),
    ):
        kinds.setdefault(node, []).append(kind)
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_RAW_WATERMARK,)).fetchone()
    raw_from = parse_iso(row[0]) if row and row[0] else None
    reach = timedelta(seconds=span)
    ids: dict[datetime, tuple[int, int] | None] = {}
    requests: list[tuple[str, str, int, int]] = []
    keys: list[tuple[str, datetime]] = []
    older: list[tuple[str, datetime]] = []
    for node, hour in pairs:
        if raw_from is not None and hour < raw_from:
            older.append((node, hour))
            continue
        if hour not in ids:
            ids[hour] = poll_ids(conn, hour - reach, min(hour + HOUR + reach, until), bound)
        span_ids = ids[hour]
        if span_ids is None:
            continue
        for kind in kinds.get(node, []):
            requests.append((node, kind, *span_ids))
            keys.append((node, hour))
    out = _from_samples(conn, requests, keys, until, span)
    for node, hour in older:
        found = _from_minutes(conn, node, hour, until)
        if found is not None:
            out[(node, hour)] = found
    return out


def _from_samples(
    conn: sqlite3.Connection,
    requests: list[tuple[str, str, int, int]],
    keys: list[tuple[str, datetime]],
    until: datetime,
    span: float,
) -> dict[tuple[str, datetime], HourFigures]:
    """Walk each request's samples in poll order, each standing until the next (capped)."""
    by_request: dict[int, list[tuple[str, str, int, object, object, object, object]]] = {}
    if requests:
        for index, kind, at, up, cpu, gpu, temp, error in conn.execute(
            _RAW, {"q": json.dumps(requests)}
        ):
            by_request.setdefault(int(index), []).append((kind, at, up, cpu, gpu, temp, error))
    best: dict[tuple[str, datetime], HourFigures] = {}
    until_s = iso(until)
    for index, rows in by_request.items():
        node, hour = keys[index]
        start, end = hour.timestamp(), (hour + HOUR).timestamp()
        lo, hi = iso(hour), iso(hour + HOUR)
        rows = [r for r in rows if r[1] <= until_s]
        acc = _Acc()
        for i, (_, at, up, cpu, gpu, temp, error) in enumerate(rows):
            t = parse_iso(at).timestamp()
            nxt = parse_iso(rows[i + 1][1]).timestamp() if i + 1 < len(rows) else until.timestamp()
            stands = max(0.0, min(end, t + min(span, nxt - t)) - max(start, t))
            acc.sampled_s += stands
            if not up:
                acc.down_s += stands
            if not lo <= at < hi:
                continue
            acc.samples += 1
            if up:
                acc.cpu = _mean(acc.cpu, _number(cpu))
                acc.gpu = _mean(acc.gpu, _number(gpu))
                hot = _number(temp)
                if hot is not None and (acc.temp is None or hot > acc.temp):
                    acc.temp = hot
            elif isinstance(error, str) and error:
                acc.error = error
        if acc.sampled_s <= 0:
            continue
        figures = acc.figures(rows[0][0])
        held = best.get((node, hour))
        if held is None or figures.sampled_s > held.sampled_s:
            best[(node, hour)] = figures
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
            from_rollups=True,
        )
        if best is None or figures.sampled_s > best.sampled_s:
            best = figures
    return best


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None
