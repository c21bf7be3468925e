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

from cache.db import iso
from sources.models import MarketCoin, Reading, SourceError
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


def write_poll(conn: sqlite3.Connection, record: PollRecord) -> int:
    """Store one poll and its rows in a single transaction; return the poll id."""
    reading = record.reading if record.ok else None
    error = record.error
    items = len(reading.market) if reading else 0
    data_at = reading.at if reading and reading.at else record.finished_at
    latency = (record.finished_at - record.started_at).total_seconds() * 1000
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(
            "INSERT INTO polls (source, started_at, finished_at, data_at, status, error_kind, "
            "error, latency_ms, items, skipped, retry_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.source,
                iso(record.started_at),
                iso(record.finished_at),
                iso(data_at),
                "ok" if reading else "failed",
                str(error.kind) if error else None,
                safe_text(error.message, 500) if error else None,
                round(latency, 1),
                items,
                reading.skipped if reading else 0,
                iso(record.retry_at) if record.retry_at else None,
            ),
        )
        poll_id = int(cursor.lastrowid or 0)
        if reading and reading.market:
            conn.executemany(
                "INSERT INTO market VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [_market_row(poll_id, coin) for coin in reading.market],
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return poll_id


def has_rankings(conn: sqlite3.Connection) -> bool:
    """Whether any good rankings snapshot (live or sample) is stored."""
    return conn.execute("SELECT 1 FROM market LIMIT 1").fetchone() is not None
