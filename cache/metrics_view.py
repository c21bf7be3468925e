"""What the collector's ``/metrics`` endpoint shows: the cache's latest good readings, now.

One read per scrape, on the scrape's own read-only connection, in short indexed queries: each
network figure's last good value (as ``export networks``), each network's latest GPU catalogue
(as ``export gpu-models``), the newest live rankings snapshot (never the bundled sample: a 2024
price is not a current one), the fleet counted by network, source and state, the io.net devices'
rewards, the alerts firing, and each source's health. Plain dataclasses: the Prometheus side
(explorer/metrics_listen.py) turns them into series. A value the cache does not hold is left
out, never given as 0.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cache import alerts
from cache.db import SAMPLE_SOURCE, iso, parse_iso
from cache.queries import MetricValue, latest_gpu_models, latest_metrics

DEFAULT_STALE_AFTER = 240.0
"""Seconds after which a node of a kind with no configured interval is stale (2 x 120 s)."""
REWARDS_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class GpuModelFigures:
    """One GPU model a network offers, from that network's latest catalogue."""

    network: str
    model: str
    price_usd_per_hour: float | None
    available: int | None
    total: int | None
    fetched_at: datetime


@dataclass(frozen=True)
class CoinFigures:
    """One coin of the newest live rankings snapshot."""

    coin_id: str
    symbol: str | None
    price_usd: float | None
    market_cap_usd: float | None
    volume_24h_usd: float | None


@dataclass(frozen=True)
class Coins:
    """The coins exported and the rankings poll they come from."""

    source: str
    fetched_at: datetime
    coins: list[CoinFigures]


@dataclass(frozen=True)
class FleetCount:
    """How many nodes of one network and source kind are up, down and stale."""

    network: str | None
    source_kind: str
    up: int
    down: int
    stale: int


@dataclass(frozen=True)
class DeviceRewards:
    """One device's rewards: summed over the last 24 h, and the lifetime total it reports."""

    network: str
    device_id: str
    node: str | None
    token: str | None
    rewards_24h: float | None
    """Sum of the stored reward blocks that started in the last 24 h (None: no block stored)."""
    earnings: float | None
    """The device's total earnings as its latest status row reports them."""


@dataclass(frozen=True)
class SourceHealth:
    """One source's newest poll and newest good one."""

    source: str
    state: str
    """``ok``, ``partial`` or ``failing``: how the newest poll ended."""
    last_poll_at: datetime
    last_duration_s: float | None
    last_success_at: datetime | None
    failures_since_success: int


@dataclass(frozen=True)
class MetricsView:
    """Everything one scrape exports, as read at ``now``."""

    now: datetime
    networks: list[MetricValue]
    gpu_models: list[GpuModelFigures]
    coins: Coins | None
    fleet: list[FleetCount]
    rewards: list[DeviceRewards]
    """Empty when read in private mode."""
    alerts_firing: dict[tuple[str, str], int]
    """(rule, severity) -> alerts firing."""
    sources: list[SourceHealth]


def read_view(
    conn: sqlite3.Connection,
    now: datetime,
    *,
    watchlist: Collection[str] = (),
    top_coins: int = 20,
    stale_after: Mapping[str, float] | None = None,
    private: bool = False,
) -> MetricsView:
    """Read what a scrape exports.

    Args:
        conn: a read-only connection (``cache.db.open_reader``).
        now: the scrape's moment: what is stale and what "the last 24 h" are is measured from it.
        watchlist: coin ids to export; empty means the ``top_coins`` largest by market cap.
        top_coins: how many coins without a watchlist.
        stale_after: per node source kind (``exporter``, ``promql``, ``local``), seconds after
            which an up node's latest sample is stale.
        private: leave the rewards out entirely.
    """
    gpu = [
        GpuModelFigures(
            g.network, g.model, g.price_usd_gpu_hour, g.available, g.total, g.fetched_at
        )
        for g in latest_gpu_models(conn)
    ]
    return MetricsView(
        now=now,
        networks=latest_metrics(conn),
        gpu_models=gpu,
        coins=latest_coins(conn, watchlist, top_coins),
        fleet=fleet_counts(conn, now, stale_after or {}),
        rewards=[] if private else device_rewards(conn, now),
        alerts_firing=alerts_firing(conn),
        sources=source_health(conn),
    )


def latest_coins(
    conn: sqlite3.Connection, watchlist: Collection[str] = (), top: int = 20
) -> Coins | None:
    """The watchlist's coins (else the ``top`` by market cap) of the newest live rankings."""
    # Newest first along polls_finished: the first good poll that stored market rows.
    poll = conn.execute(
        "SELECT id, source, data_at FROM polls WHERE source != ? AND status = 'ok' "
        "AND items > 0 AND EXISTS (SELECT 1 FROM market m WHERE m.poll_id = polls.id) "
        "ORDER BY finished_at DESC, id DESC LIMIT 1",
        (SAMPLE_SOURCE,),
    ).fetchone()
    if poll is None:
        return None
    columns = "coin_id, symbol, price_usd, market_cap_usd, volume_24h_usd"
    if watchlist:
        wanted = sorted(watchlist)
        marks = ",".join("?" * len(wanted))
        rows = conn.execute(
            f"SELECT {columns} FROM market WHERE poll_id = ? AND coin_id IN ({marks}) "
            "ORDER BY coin_id",
            (poll[0], *wanted),
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {columns} FROM market WHERE poll_id = ? "
            "ORDER BY market_cap_usd IS NULL, market_cap_usd DESC, coin_id LIMIT ?",
            (poll[0], top),
        ).fetchall()
    coins = [CoinFigures(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    return Coins(source=poll[1], fetched_at=parse_iso(poll[2]), coins=coins)


def fleet_counts(
    conn: sqlite3.Connection, now: datetime, stale_after: Mapping[str, float]
) -> list[FleetCount]:
    """Nodes up, down and stale per (network, source kind), from each node's newest sample.

    Down is what the sample says; stale is an up node whose sample is older than its kind's
    limit (the Fleet screen's rule). Grouped by poll in SQL, so Python sees one row per
    (network, kind, up, poll), not one per node; each poll's time is then read once.
    """
    rows = conn.execute(
        "SELECT n.network, n.source_kind, s.up, n.last_poll_id, COUNT(*) FROM nodes n "
        "CROSS JOIN node_samples s ON s.poll_id = n.last_poll_id AND s.node = n.node "
        "AND s.source_kind = n.source_kind "
        "GROUP BY n.network, n.source_kind, s.up, n.last_poll_id"
    ).fetchall()
    ages: dict[int, float] = {}
    for poll_id in {r[3] for r in rows}:
        finished = conn.execute("SELECT finished_at FROM polls WHERE id = ?", (poll_id,)).fetchone()
        ages[poll_id] = (now - parse_iso(finished[0])).total_seconds()
    counts: dict[tuple[str | None, str], list[int]] = {}
    for network, kind, up, poll_id, count in rows:
        slot = counts.setdefault((network, kind), [0, 0, 0])
        if not up:
            slot[1] += count
        elif ages[poll_id] > stale_after.get(kind, DEFAULT_STALE_AFTER):
            slot[2] += count
        else:
            slot[0] += count
    return [
        FleetCount(network, kind, *slot)
        for (network, kind), slot in sorted(counts.items(), key=lambda i: (i[0][0] or "", i[0][1]))
    ]


def device_rewards(conn: sqlite3.Connection, now: datetime) -> list[DeviceRewards]:
    """Each device's rewards of the last 24 h and its reported lifetime earnings."""
    summed = {
        (r[0], r[1], r[3]): (r[2], float(r[4]))
        for r in conn.execute(
            "SELECT network, device_id, MAX(node), token, SUM(amount) FROM rewards "
            "WHERE at >= ? AND at <= ? AND fetched_at <= ? GROUP BY network, device_id, token",
            (iso(now - REWARDS_WINDOW), iso(now), iso(now)),
        )
    }
    reported = conn.execute(
        "SELECT d.network, d.device_id, d.node, d.earnings_token, d.earnings_total FROM "
        "(SELECT network, device_id, MAX(poll_id) AS poll_id FROM devices "
        " WHERE earnings_total IS NOT NULL GROUP BY network, device_id) latest "
        "JOIN devices d ON d.poll_id = latest.poll_id AND d.network = latest.network "
        "AND d.device_id = latest.device_id"
    ).fetchall()
    out: dict[tuple[str, str, str | None], DeviceRewards] = {}
    for network, device_id, node, token, earnings in reported:
        node_24h, sum_24h = summed.pop((network, device_id, token), (None, None))
        out[(network, device_id, token)] = DeviceRewards(
            network, device_id, node or node_24h, token, sum_24h, earnings
        )
    for (network, device_id, token), (node, total) in summed.items():
        out[(network, device_id, token)] = DeviceRewards(
            network, device_id, node, token, total, None
        )
    return [out[key] for key in sorted(out, key=lambda k: (k[0], k[1], k[2] or ""))]


def alerts_firing(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """(rule, severity) -> how many alerts of it are firing now."""
    counts: dict[tuple[str, str], int] = {}
    for alert in alerts.firing(conn):
        key = (alert.rule, alert.severity)
        counts[key] = counts.get(key, 0) + 1
    return counts


def source_health(conn: sqlite3.Connection) -> list[SourceHealth]:
    """Every source that ever polled: its newest poll, newest good poll and failures since.

    Three index seeks per source on ``polls_source_finished``; the sources are found by
    skipping along that index from one name to the next, not by reading every poll.
    """
    names = [
        r[0]
        for r in conn.execute(
            "WITH RECURSIVE s(source) AS (SELECT MIN(source) FROM polls UNION ALL "
            "SELECT (SELECT MIN(source) FROM polls WHERE source > s.source) FROM s "
            "WHERE s.source IS NOT NULL) SELECT source FROM s WHERE source IS NOT NULL"
        )
    ]
    out = []
    for name in names:
        last = conn.execute(
            "SELECT status, finished_at, latency_ms FROM polls WHERE source = ? "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            (name,),
        ).fetchone()
        good = conn.execute(
            "SELECT finished_at FROM polls WHERE source = ? AND status != 'failed' "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            (name,),
        ).fetchone()
        failures = conn.execute(
            "SELECT COUNT(*) FROM polls WHERE source = ? AND status = 'failed' AND finished_at > ?",
            (name, good[0] if good else ""),
        ).fetchone()[0]
        status = str(last[0])
        out.append(
            SourceHealth(
                source=name,
                state="failing" if status == "failed" else status,
                last_poll_at=parse_iso(last[1]),
                last_duration_s=None if last[2] is None else float(last[2]) / 1000,
                last_success_at=parse_iso(good[0]) if good else None,
                failures_since_success=int(failures),
            )
        )
    return out
