"""Writing one poll atomically: its record and all its rows in one BEGIN IMMEDIATE transaction.

A failed poll is stored too (status, error kind, sanitised message, latency), with no rows, so the
last good snapshot stays the latest good one and the screens can say what went wrong.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat

import msgspec

from cache import usage
from cache.db import LABEL_KEYS, iso, write_txn
from sources.figures import NODE_VALUE_FIELDS
from sources.models import (
    DeviceStatus,
    MarketCoin,
    NodeColumns,
    NodeSample,
    Reading,
    Reward,
    SourceError,
)
from sources.text import safe_text

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class PollRecord:
    """What the poller knows about one run of one source."""

    source: str
    started_at: datetime
    finished_at: datetime
    reading: Reading | None = None
    error: SourceError | None = None
    retry_at: datetime | None = None

    @property
    def ok(self) -> bool:
        """A poll is good when it produced a reading and no error."""
        return self.reading is not None and self.error is None


def _real(value: float | None) -> float | None:
    # NaN binds as NULL silently and inf as a REAL inf: never let either reach SQLite.
    return value if value is not None and math.isfinite(value) else None


def _int(value: int | None) -> int | None:
    return value if value is not None and -INT64_MAX <= value <= INT64_MAX else None


def _market_row(poll_id: int, coin: MarketCoin) -> tuple[object, ...]:
    spark = None
    if coin.sparkline_7d:
        spark = json.dumps([_real(p) for p in coin.sparkline_7d], separators=(",", ":"))
    return (
        poll_id,
        safe_text(coin.coin_id),
        coin.symbol and safe_text(coin.symbol),
        safe_text(coin.name),
        _int(coin.rank),
        _real(coin.price_usd),
        _real(coin.market_cap_usd),
        _real(coin.volume_24h_usd),
        _real(coin.fdv_usd),
        _real(coin.change_24h_pct),
        _real(coin.change_7d_pct),
        _real(coin.change_30d_pct),
        spark,
        coin.category and safe_text(coin.category),
        _int(coin.devices),
        coin.last_updated and safe_text(coin.last_updated),
    )


def _metric_rows(poll_id: int, reading: Reading) -> list[tuple[object, ...]]:
    rows = {}
    for m in reading.metrics:  # one value per (network, metric) per poll: the last one wins
        if math.isfinite(m.value):
            rows[(m.network, m.metric)] = (
                poll_id,
                safe_text(m.network),
                safe_text(m.metric),
                m.value,
                safe_text(m.unit),
                safe_text(m.endpoint),
            )
    return list(rows.values())


def _gpu_rows(poll_id: int, reading: Reading) -> list[tuple[object, ...]]:
    rows = {}
    for g in reading.gpu_models:
        rows[(g.network, g.model)] = (
            poll_id,
            safe_text(g.network),
            safe_text(g.model),
            _real(g.memory_gb),
            _int(g.cards),
            _int(g.total),
            _int(g.available),
            _real(g.price_usd_gpu_hour),
            safe_text(g.endpoint),
        )
    return list(rows.values())


def _node_row(poll_id: int, n: NodeSample) -> tuple[object, ...]:
    values = [_int(n.gpus) if f == "gpus" else _real(getattr(n, f)) for f in NODE_VALUE_FIELDS]
    counters = {k: v for k, v in n.counters.items() if math.isfinite(v)}
    return (
        poll_id,
        safe_text(n.node),
        n.source_kind,
        int(n.up),
        n.error and safe_text(n.error, 300),
        *values,
        json.dumps(counters, separators=(",", ":")) if counters else None,
    )


def _node_identity(poll_id: int, n: NodeSample) -> tuple[object, ...]:
    labels = {safe_text(k, 100): safe_text(v) for k, v in list(n.labels.items())[:64]}
    return (
        safe_text(n.node),
        n.source_kind,
        n.network and safe_text(n.network),
        json.dumps(labels, sort_keys=True, ensure_ascii=False),
        poll_id,
        poll_id,
    )


DEVICE_FIELDS = (
    "node",
    "name",
    "status",
    "uptime_pct",
    "connectivity_tier",
    "hardware",
    "hardware_quantity",
    "location",
    "earnings_total",
    "earnings_token",
    "slashed_total",
    "block_rewards_7d",
    "blocks_earned_7d",
    "blocks_failed_7d",
    "blocks_missed_7d",
    "jobs_running",
    "compute_hours",
    "error",
)
"""The ``devices`` columns after (poll_id, network, device_id), in table order."""


def _device_row(poll_id: int, d: DeviceStatus) -> tuple[object, ...]:
    values: list[object] = []
    for name in DEVICE_FIELDS:
        value = getattr(d, name)
        if isinstance(value, str):
            value = safe_text(value, 300)
        elif isinstance(value, float):
            value = _real(value)
        elif isinstance(value, int):
            value = _int(value)
        values.append(value)
    return (poll_id, safe_text(d.network), safe_text(d.device_id), *values)


def _reward_row(poll_id: int, r: Reward, fetched_at: str) -> tuple[object, ...]:
    return (
        poll_id,
        safe_text(r.network),
        safe_text(r.device_id),
        r.node and safe_text(r.node),
        iso(r.at),
        r.amount,
        safe_text(r.token),
        safe_text(r.source),
        r.status and safe_text(r.status),
        fetched_at,
    )


def poll_status(record: PollRecord) -> str:
    """``ok``; ``partial`` when some endpoints failed but data came back; else ``failed``."""
    if not record.ok or record.reading is None:
        return "failed"
    return "partial" if record.reading.errors else "ok"


def write_poll(conn: sqlite3.Connection, record: PollRecord) -> int:
    """Store one poll and its rows in a single transaction; return the poll id."""
    reading = record.reading if record.ok else None
    error = record.error
    if reading and reading.errors and not error:  # the poll's headline error: the first one
        error = reading.errors[0].error
    items = reading.items if reading else 0
    data_at = reading.at if reading and reading.at else record.finished_at
    latency = (record.finished_at - record.started_at).total_seconds() * 1000
    with write_txn(conn):
        cursor = conn.execute(
            "INSERT INTO polls (source, started_at, finished_at, data_at, status, error_kind, "
            "error, latency_ms, items, skipped, retry_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.source,
                iso(record.started_at),
                iso(record.finished_at),
                iso(data_at),
                poll_status(record),
                str(error.kind) if error else None,
                safe_text(error.message, 500) if error else None,
                round(latency, 1),
                items,
                reading.skipped if reading else 0,
                iso(record.retry_at) if record.retry_at else None,
            ),
        )
        poll_id = int(cursor.lastrowid or 0)
        _insert_rows(conn, poll_id, reading)
        if reading and reading.rewards:
            # a reward already stored keeps its first fetch time: history is never rewritten
            fetched = iso(record.finished_at)
            conn.executemany(
                "INSERT OR IGNORE INTO rewards VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    _reward_row(poll_id, r, fetched)
                    for r in reading.rewards
                    if math.isfinite(r.amount)
                ],
            )
    return poll_id


def _insert_rows(conn: sqlite3.Connection, poll_id: int, reading: Reading | None) -> None:
    if reading is None:
        return
    if reading.market:
        conn.executemany(
            "INSERT INTO market VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [_market_row(poll_id, coin) for coin in reading.market],
        )
    if reading.metrics:
        conn.executemany(
            "INSERT INTO network_stats VALUES (?,?,?,?,?,?)", _metric_rows(poll_id, reading)
        )
    if reading.gpu_models:
        conn.executemany(
            "INSERT INTO gpu_models VALUES (?,?,?,?,?,?,?,?,?)", _gpu_rows(poll_id, reading)
        )
    if reading.nodes:
        conn.executemany(
            f"INSERT INTO node_samples VALUES ({','.join('?' * (6 + len(NODE_VALUE_FIELDS)))})",
            [_node_row(poll_id, n) for n in reading.nodes],
        )
        conn.executemany(
            "INSERT INTO nodes VALUES (?,?,?,?,?,?) ON CONFLICT (node, source_kind) DO UPDATE "
            "SET network = excluded.network, labels = excluded.labels, "
            "last_poll_id = excluded.last_poll_id",
            [_node_identity(poll_id, n) for n in reading.nodes],
        )
    if reading.node_columns:
        _insert_node_columns(conn, poll_id, reading.node_columns)
    if reading.nodes or reading.node_columns:
        usage.upkeep(conn, poll_id)  # the samples this poll completes, into node_usage_hours
        keys: set[str] = set()
        for labels in (n.labels for n in reading.nodes):
            keys.update(labels)
        for labels in reading.node_columns.labels if reading.node_columns else ():
            keys.update(labels)
        remember_label_keys(conn, keys)
    if reading.devices:
        rows = {(d.network, d.device_id): _device_row(poll_id, d) for d in reading.devices}
        conn.executemany(
            f"INSERT INTO devices VALUES ({','.join('?' * (3 + len(DEVICE_FIELDS)))})",
            list(rows.values()),
        )
    if reading.errors:
        conn.executemany(
            "INSERT INTO poll_errors VALUES (?,?,?,?)",
            [
                (poll_id, safe_text(e.endpoint), str(e.error.kind), safe_text(e.error.message, 500))
                for e in reading.errors
            ],
        )


_LABELS_JSON = msgspec.json.Encoder(order="sorted")


def _insert_node_columns(conn: sqlite3.Connection, poll_id: int, columns: NodeColumns) -> None:
    """Store a fleet read at scale row by row straight from its columns (see NodeColumns).

    The rows are zipped from the columns as executemany consumes them: 100,000 nodes never
    exist as 100,000 row tuples at once. The source has sanitised the text and checked the
    values (NodeColumns' contract); names are passed through safe_text once more, as every
    stored name is, which costs little for the plain ASCII they nearly always are.
    """
    nodes = [safe_text(node) for node in columns.nodes]
    rows = len(nodes)
    absent = repeat(None, rows)
    values = [columns.values.get(name) or repeat(None, rows) for name in NODE_VALUE_FIELDS]
    conn.executemany(
        f"INSERT INTO node_samples VALUES ({','.join('?' * (6 + len(NODE_VALUE_FIELDS)))})",
        zip(
            repeat(poll_id, rows),
            nodes,
            repeat(columns.source_kind, rows),
            map(int, columns.up),
            columns.errors,
            *values,
            absent,  # counters: a server's figures are rates already
            strict=True,
        ),
    )
    encode = _LABELS_JSON.encode  # 5x json.dumps; the same JSON, compact, keys sorted
    conn.executemany(
        "INSERT INTO nodes VALUES (?,?,?,?,?,?) ON CONFLICT (node, source_kind) DO UPDATE "
        "SET network = excluded.network, labels = excluded.labels, "
        "last_poll_id = excluded.last_poll_id",
        zip(
            nodes,
            repeat(columns.source_kind, rows),
            columns.networks,
            (encode(labels).decode() for labels in columns.labels),
            repeat(poll_id, rows),
            repeat(poll_id, rows),
            strict=True,
        ),
    )


def remember_label_keys(conn: sqlite3.Connection, keys: set[str]) -> None:
    """Add ``keys`` to the label keys the fleet's nodes carry (``meta`` key ``label_keys``).

    The Fleet screen offers every label key for grouping; finding them in 100,000 label sets
    at each read took most of a second, while the writer has them in hand anyway.
    """
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (LABEL_KEYS,)).fetchone()
    try:
        known = set(json.loads(row[0])) if row else set()
    except (ValueError, TypeError):
        known = set()
    if row is not None and keys <= known:
        return
    merged = sorted(known | {safe_text(key, 100) for key in keys})
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (LABEL_KEYS, json.dumps(merged, ensure_ascii=False)),
    )


def has_rankings(conn: sqlite3.Connection) -> bool:
    """Whether any good rankings snapshot (live or sample) is stored."""
    return conn.execute("SELECT 1 FROM market LIMIT 1").fetchone() is not None
