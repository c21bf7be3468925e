"""Reading the cache "as of time T": the only way screens and exports see data.

``at=None`` means now. Every query returns what was stored at or before ``at`` and nothing newer,
which is what makes offline browsing and time travel work without special cases.
Live rankings always win over the bundled sample; the sample is used only when no live snapshot
exists at ``at``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cache import rollup
from cache.db import SAMPLE_SOURCE, iso, parse_iso
from sources.figures import NODE_VALUE_FIELDS

_FAR_FUTURE = "9999-12-31T23:59:59.999Z"


@dataclass(frozen=True)
class PollInfo:
    """One stored poll, good or failed."""

    id: int
    source: str
    finished_at: datetime
    data_at: datetime
    status: str
    error_kind: str | None
    error: str | None
    latency_ms: float | None
    items: int
    skipped: int
    retry_at: datetime | None

    @property
    def is_sample(self) -> bool:
        """Whether this poll is the bundled, dated sample."""
        return self.source == SAMPLE_SOURCE


@dataclass(frozen=True)
class CoinRow:
    """One project of a rankings snapshot."""

    coin_id: str
    symbol: str | None
    name: str
    rank: int | None
    price_usd: float | None
    market_cap_usd: float | None
    volume_24h_usd: float | None
    fdv_usd: float | None
    change_24h_pct: float | None
    change_7d_pct: float | None
    change_30d_pct: float | None
    sparkline_7d: tuple[float | None, ...]
    category: str | None
    devices: int | None


@dataclass(frozen=True)
class Rankings:
    """A rankings snapshot and the poll it came from."""

    poll: PollInfo
    coins: list[CoinRow]


@dataclass(frozen=True)
class SourceState:
    """What the cache knows of one source: its newest poll and its newest good poll."""

    source: str
    last: PollInfo
    last_ok: PollInfo | None
    failures_since_ok: int


def _bound(at: datetime | None) -> str:
    return iso(at) if at else _FAR_FUTURE


def _poll(row: sqlite3.Row) -> PollInfo:
    return PollInfo(
        id=row["id"],
        source=row["source"],
        finished_at=parse_iso(row["finished_at"]),
        data_at=parse_iso(row["data_at"]),
        status=row["status"],
        error_kind=row["error_kind"],
        error=row["error"],
        latency_ms=row["latency_ms"],
        items=row["items"],
        skipped=row["skipped"],
        retry_at=parse_iso(row["retry_at"]) if row["retry_at"] else None,
    )


def _coin(row: sqlite3.Row, sparkline: str | None = None) -> CoinRow:
    spark: tuple[float | None, ...] = ()
    if text := sparkline or row["sparkline_7d"]:
        try:
            spark = tuple(json.loads(text))
        except ValueError:
            spark = ()
    return CoinRow(
        coin_id=row["coin_id"],
        symbol=row["symbol"],
        name=row["name"],
        rank=row["rank"],
        price_usd=row["price_usd"],
        market_cap_usd=row["market_cap_usd"],
        volume_24h_usd=row["volume_24h_usd"],
        fdv_usd=row["fdv_usd"],
        change_24h_pct=row["change_24h_pct"],
        change_7d_pct=row["change_7d_pct"],
        change_30d_pct=row["change_30d_pct"],
        sparkline_7d=spark,
        category=row["category"],
        devices=row["devices"],
    )


def latest_rankings_poll(conn: sqlite3.Connection, at: datetime | None = None) -> PollInfo | None:
    """The newest good rankings poll at ``at``: live first, the sample only as a fallback."""
    row = conn.execute(
        "SELECT * FROM polls WHERE status = 'ok' AND items > 0 AND finished_at <= ? "
        "AND EXISTS (SELECT 1 FROM market WHERE market.poll_id = polls.id) "
        "ORDER BY source = ? , finished_at DESC, id DESC LIMIT 1",
        (_bound(at), SAMPLE_SOURCE),
    ).fetchone()
    return _poll(row) if row else None


def latest_rankings(conn: sqlite3.Connection, at: datetime | None = None) -> Rankings | None:
    """The rankings snapshot to show at ``at``, or None when nothing is stored yet."""
    poll = latest_rankings_poll(conn, at)
    if poll is None:
        return None
    # Retention keeps a sparkline on one snapshot an hour (cache/retention.py): a snapshot
    # without one shows the newest earlier one of its source, from at most a day before.
    rows = conn.execute(
        "SELECT m.*, COALESCE(m.sparkline_7d, (SELECT e.sparkline_7d FROM market e "
        "  JOIN polls p ON p.id = e.poll_id WHERE e.coin_id = m.coin_id AND e.poll_id < m.poll_id"
        "  AND e.sparkline_7d IS NOT NULL AND p.source = ? AND p.finished_at >= ? "
        "  ORDER BY e.poll_id DESC LIMIT 1)) AS spark FROM market m WHERE m.poll_id = ? "
        "ORDER BY market_cap_usd IS NULL, market_cap_usd DESC, name",
        (poll.source, iso(poll.finished_at - timedelta(days=1)), poll.id),
    ).fetchall()
    return Rankings(poll=poll, coins=[_coin(row, row["spark"]) for row in rows])


def coin_history(
    conn: sqlite3.Connection, coin_id: str, at: datetime | None = None, limit: int = 5000
) -> list[tuple[datetime, float | None, float | None]]:
    """(time, price, market cap) of one project across stored snapshots, oldest first."""
    rows = conn.execute(
        "SELECT p.data_at, m.price_usd, m.market_cap_usd FROM market m "
        "JOIN polls p ON p.id = m.poll_id WHERE m.coin_id = ? AND p.finished_at <= ? "
        "ORDER BY p.finished_at DESC LIMIT ?",
        (coin_id, _bound(at), limit),
    ).fetchall()
    return [(parse_iso(r[0]), r[1], r[2]) for r in reversed(rows)]


def source_states(conn: sqlite3.Connection, at: datetime | None = None) -> list[SourceState]:
    """Every source that ever polled, with its newest poll and newest good poll at ``at``."""
    bound = _bound(at)
    states = []
    sources = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT source FROM polls WHERE finished_at <= ? ORDER BY source", (bound,)
        )
    ]
    for source in sources:
        last = conn.execute(
            "SELECT * FROM polls WHERE source = ? AND finished_at <= ? "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            (source, bound),
        ).fetchone()
        last_ok = conn.execute(
            "SELECT * FROM polls WHERE source = ? AND finished_at <= ? AND status != 'failed' "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            (source, bound),
        ).fetchone()
        since = last_ok["finished_at"] if last_ok else ""
        failures = conn.execute(
            "SELECT COUNT(*) FROM polls WHERE source = ? AND status = 'failed' "
            "AND finished_at > ? AND finished_at <= ?",
            (source, since, bound),
        ).fetchone()[0]
        states.append(
            SourceState(
                source=source,
                last=_poll(last),
                last_ok=_poll(last_ok) if last_ok else None,
                failures_since_ok=failures,
            )
        )
    return states


@dataclass(frozen=True)
class MetricValue:
    """The most recent successfully fetched value of one (network, metric)."""

    network: str
    metric: str
    value: float
    unit: str
    source: str
    fetched_at: datetime


@dataclass(frozen=True)
class GpuModelRow:
    """A GPU model on offer in a network, from its latest poll that listed GPU models."""

    network: str
    model: str
    memory_gb: float | None
    cards: int | None
    total: int | None
    available: int | None
    price_usd_gpu_hour: float | None
    source: str
    fetched_at: datetime


def _bound_poll_id(conn: sqlite3.Connection, at: datetime | None) -> int:
    """The newest poll id such that no poll up to it finished after ``at``.

    Queries read "as of T" as ``poll_id <= bound``, which the indexes serve. Ids grow in commit
    order, and a source's polls never overlap, so per source id order is time order; but a poll
    may commit moments after another source's later-finishing one. Bounding below the first poll
    that finished after T (rather than at the last one before it) means nothing newer than T is
    ever shown, at the price of hiding such a straggler until T passes its neighbour.
    """
    if at is None:
        return int(conn.execute("SELECT MAX(id) FROM polls").fetchone()[0] or 0)
    first_after = conn.execute(
        "SELECT MIN(id) FROM polls WHERE finished_at > ?", (iso(at),)
    ).fetchone()[0]
    if first_after is None:
        return int(conn.execute("SELECT MAX(id) FROM polls").fetchone()[0] or 0)
    return int(first_after) - 1


def latest_metrics(conn: sqlite3.Connection, at: datetime | None = None) -> list[MetricValue]:
    """Every (network, metric) with its own last good value and fetch time, as of ``at``."""
    bound = _bound_poll_id(conn, at)
    rows = conn.execute(
        "SELECT n.network, n.metric, n.value, n.unit, p.source, p.finished_at "
        "FROM (SELECT network, metric, MAX(poll_id) AS poll_id FROM network_stats "
        "      WHERE poll_id <= ? GROUP BY network, metric) latest "
        "JOIN network_stats n ON n.poll_id = latest.poll_id AND n.network = latest.network "
        "     AND n.metric = latest.metric "
        "JOIN polls p ON p.id = n.poll_id ORDER BY n.network, n.metric",
        (bound,),
    ).fetchall()
    return [MetricValue(r[0], r[1], r[2], r[3], r[4], parse_iso(r[5])) for r in rows]


def metric_history(
    conn: sqlite3.Connection,
    network: str,
    metric: str,
    since: datetime,
    at: datetime | None = None,
) -> list[tuple[datetime, float]]:
    """(time, value) of one network metric between ``since`` and ``at``, oldest first."""
    rows = conn.execute(
        "SELECT p.finished_at, n.value FROM network_stats n JOIN polls p ON p.id = n.poll_id "
        "WHERE n.network = ? AND n.metric = ? AND n.poll_id <= ? AND p.finished_at >= ? "
        "ORDER BY n.poll_id",
        (network, metric, _bound_poll_id(conn, at), iso(since)),
    ).fetchall()
    return [(parse_iso(r[0]), r[1]) for r in rows]


def latest_gpu_models(conn: sqlite3.Connection, at: datetime | None = None) -> list[GpuModelRow]:
    """For each network, the GPU models of its latest poll that listed any, as of ``at``."""
    bound = _bound_poll_id(conn, at)
    rows = conn.execute(
        "SELECT g.network, g.model, g.memory_gb, g.cards, g.total, g.available, "
        "g.price_usd_gpu_hour, p.source, p.finished_at FROM gpu_models g "
        "JOIN polls p ON p.id = g.poll_id "
        "WHERE g.poll_id = (SELECT MAX(poll_id) FROM gpu_models g2 "
        "                   WHERE g2.network = g.network AND g2.poll_id <= ?) "
        "ORDER BY g.network, g.price_usd_gpu_hour IS NULL, g.price_usd_gpu_hour DESC, g.model",
        (bound,),
    ).fetchall()
    return [
        GpuModelRow(net, model, memory, cards, total, available, price, source, parse_iso(at))
        for net, model, memory, cards, total, available, price, source, at in rows
    ]


def poll_errors(conn: sqlite3.Connection, poll_id: int) -> list[tuple[str, str, str]]:
    """(endpoint, kind, message) of the endpoints that failed in one poll."""
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT endpoint, error_kind, error FROM poll_errors WHERE poll_id = ?", (poll_id,)
        )
    ]


def latest_good_poll(
    conn: sqlite3.Connection, sources: tuple[str, ...], at: datetime | None = None
) -> PollInfo | None:
    """The newest poll of any of ``sources`` that stored data (ok or partial), as of ``at``."""
    marks = ",".join("?" * len(sources))
    row = conn.execute(
        f"SELECT * FROM polls WHERE source IN ({marks}) AND status != 'failed' "
        "AND finished_at <= ? ORDER BY finished_at DESC, id DESC LIMIT 1",
        (*sources, _bound(at)),
    ).fetchone()
    return _poll(row) if row else None


@dataclass(frozen=True)
class NodeRow:
    """One node's latest sample from one source kind (exporter, promql, local)."""

    node: str
    source_kind: str
    network: str | None
    labels: dict[str, str]
    up: bool
    error: str | None
    values: dict[str, float | int | None]
    fetched_at: datetime


LATEST_SAMPLES = (
    "WITH RECURSIVE names(node) AS (SELECT MIN(node) FROM node_samples UNION ALL "
    "  SELECT (SELECT MIN(node) FROM node_samples WHERE node > names.node) FROM names "
    "  WHERE names.node IS NOT NULL), "
    "kinds(node, source_kind) AS (SELECT node, (SELECT MIN(source_kind) FROM node_samples s "
    "  WHERE s.node = names.node) FROM names WHERE node IS NOT NULL UNION ALL "
    "  SELECT node, (SELECT MIN(source_kind) FROM node_samples s WHERE s.node = kinds.node "
    "  AND s.source_kind > kinds.source_kind) FROM kinds WHERE source_kind IS NOT NULL), "
    "newest(node, source_kind, poll_id) AS (SELECT node, source_kind, (SELECT MAX(poll_id) "
    "  FROM node_samples s WHERE s.node = kinds.node AND s.source_kind = kinds.source_kind "
    "  AND s.poll_id <= ?) FROM kinds WHERE source_kind IS NOT NULL), "
    "latest AS MATERIALIZED (SELECT * FROM newest WHERE poll_id IS NOT NULL)"
)
"""``latest``: each (node, source kind)'s newest ``poll_id`` up to the bound (the one parameter).

Walks the ``node_samples_node`` index from one node and kind to the next, then one seek for
each one's newest sample: two seeks per node, where grouping read every stored sample (five
million rows for a week of 500 nodes, about a second).
"""


def latest_fleet(conn: sqlite3.Connection, at: datetime | None = None) -> list[NodeRow]:
    """Each (node, source kind) with its most recent sample stored at or before ``at``."""
    bound = _bound_poll_id(conn, at)
    cols = ", ".join(f"s.{f}" for f in NODE_VALUE_FIELDS)
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: sqlite3.Row costs ~0.1 s per 100,000 nodes
    newest = conn.execute("SELECT MAX(id) FROM polls").fetchone()[0] or 0
    if bound >= newest:  # live: each node's newest poll is in `nodes`; no grouping of history
        rows = cursor.execute(
            f"SELECT {NODE_COLUMNS} FROM nodes n CROSS JOIN node_samples s "
            "ON s.poll_id = n.last_poll_id AND s.node = n.node AND s.source_kind = n.source_kind "
            "JOIN polls p ON p.id = s.poll_id ORDER BY n.source_kind, n.node"
        ).fetchall()
        return _nodes(rows)
    rows = cursor.execute(
        f"{LATEST_SAMPLES} SELECT s.node, s.source_kind, n.network, n.labels, s.up, s.error, "
        f"{cols}, p.finished_at FROM latest "
        "JOIN node_samples s ON s.poll_id = latest.poll_id AND s.node = latest.node "
        "     AND s.source_kind = latest.source_kind "
        "JOIN polls p ON p.id = s.poll_id "
        "LEFT JOIN nodes n ON n.node = s.node AND n.source_kind = s.source_kind "
        "ORDER BY s.source_kind, s.node",
        (bound,),
    ).fetchall()
    return _nodes(rows)


def _nodes(rows: list[tuple[object, ...]]) -> list[NodeRow]:
    # Label sets and poll times repeat across a fleet: parse each distinct one once (shared,
    # read-only), which halves the cost of a 100,000-node fleet.
    labels_of: dict[str, dict[str, str]] = {}
    times: dict[str, datetime] = {}
    return [node_from_row(r, labels_of, times) for r in rows]


NODE_COLUMNS = (
    "s.node, s.source_kind, n.network, n.labels, s.up, s.error, "
    + ", ".join(f"s.{f}" for f in NODE_VALUE_FIELDS)
    + ", p.finished_at"
)
"""The select list :func:`node_from_row` reads (``s`` node_samples, ``n`` nodes, ``p`` polls)."""


def node_from_row(
    r: tuple[Any, ...],  # SQLite's cells: typed by the schema, not for Python
    labels_of: dict[str, dict[str, str]] | None = None,
    times: dict[str, datetime] | None = None,
) -> NodeRow:
    """A NodeRow from a :data:`NODE_COLUMNS` row; the dicts memoise repeated labels and times."""
    raw = str(r[3] or "{}")
    labels = labels_of.get(raw) if labels_of is not None else None
    if labels is None:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {}
        labels = parsed if isinstance(parsed, dict) else {}
        if labels_of is not None:
            labels_of[raw] = labels
    stamp = str(r[-1])
    fetched = times.get(stamp) if times is not None else None
    if fetched is None:
        fetched = parse_iso(stamp)
        if times is not None:
            times[stamp] = fetched
    values = dict(zip(NODE_VALUE_FIELDS, r[6 : 6 + len(NODE_VALUE_FIELDS)], strict=True))
    return NodeRow(
        str(r[0]),
        str(r[1]),
        r[2],
        labels,
        bool(r[4]),
        r[5],
        values,
        fetched,
    )


def previous_counters(conn: sqlite3.Connection, source_kind: str) -> dict[str, dict[str, float]]:
    """Each node's newest stored counter totals, so rates work across separate runs.

    One index seek per known node (newest first, usually the first row has counters) rather
    than grouping every stored sample: a week of 1-minute samples for 500 nodes is 5 million
    rows, which took seconds to group.
    """
    rows = conn.execute(
        "SELECT n.node, (SELECT s.counters FROM node_samples s WHERE s.node = n.node "
        "AND s.source_kind = n.source_kind AND s.counters IS NOT NULL "
        "ORDER BY s.poll_id DESC LIMIT 1) FROM nodes n WHERE n.source_kind = ?",
        (source_kind,),
    ).fetchall()
    out = {}
    for node, counters in rows:
        if counters is None:
            continue
        try:
            value = json.loads(counters)
        except ValueError:
            continue
        if isinstance(value, dict):
            out[node] = {k: float(v) for k, v in value.items() if isinstance(v, int | float)}
    return out


def node_history(
    conn: sqlite3.Connection,
    node: str,
    source_kind: str,
    since: datetime,
    at: datetime | None = None,
    fields: tuple[str, ...] = NODE_VALUE_FIELDS,
) -> list[tuple[datetime, dict[str, float | int | None]]]:
    """One node's samples between ``since`` and ``at``, oldest first.

    Raw samples where they reach back to ``since``; else the finest rollup that does (1 minute,
    1 hour, 1 day: cache/rollup.py), each point a bucket's means labelled by its start. Down
    samples (and all-down buckets) are included, with no values, so a chart shows the gap.
    """
    unknown = set(fields) - set(NODE_VALUE_FIELDS)
    if unknown:
        raise ValueError(f"not a node figure: {', '.join(sorted(unknown))}")
    bound = _bound_poll_id(conn, at)
    resolution = rollup.choose_resolution(conn, node, source_kind, since)
    if resolution == 0:
        return rollup.raw_history(conn, node, source_kind, since, bound, fields)
    return rollup.rollup_history(conn, node, source_kind, resolution, since, at, bound, fields)
