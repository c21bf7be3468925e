"""Measure the steady-state size of a cache under the default retention policy.

    .venv/bin/python tools/retention_size.py [--nodes 500] [--path FILE]

Builds what the file holds once retention has run for more than a year, for a fleet of NODES
nodes polled every 60 s (60 % with GPUs) and CoinGecko rankings (250 coins, every 120 s):

- 8 days of raw fleet polls through ``cache.store.write_poll`` (what the poller stores, counter
  totals included), then one real ``apply_retention`` run: it rolls every hour and day up from
  the raw samples and folds the oldest day into 1-minute rollups (its timings are printed);
- the older tiers as retention leaves them: 1-minute rollups to 30 days, 1-hour rollups to
  400 days, 1-day rollups for one year (the only tier that grows: forever by default);
- rankings: every poll of the last day (hourly sparklines), one an hour for 90 days (daily
  sparklines), one a day for a year; four networks' figures likewise.

Prints bytes per table (``dbstat``) and the file size. Results are in docs/retention.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cache.db import iso, open_writer
from cache.retention import RetentionPolicy, apply_retention
from cache.rollup import INSERT_ROLLUP
from cache.store import PollRecord, write_poll
from sources.models import MarketCoin, NetworkMetric, NodeSample, Reading

NOW = datetime(2027, 6, 1, tzinfo=UTC)
POLICY = RetentionPolicy()


def node_sample(rng: random.Random, name: str, gpu: bool, t: float) -> NodeSample:
    """A sample as the exporter source stores it (rounded the way exporters report)."""
    values = {
        "cpu_pct": rng.uniform(5, 95),
        "mem_pct": rng.uniform(20, 90),
        "disk_pct": rng.uniform(10, 80),
        "load1": rng.uniform(0, 16),
        "uptime_s": 86400 * 30 + t,
        "net_rx_bps": rng.uniform(1e3, 1e8),
        "net_tx_bps": rng.uniform(1e3, 1e8),
    }
    if gpu:
        values |= {
            "gpus": 8,
            "gpu_util_pct": rng.uniform(0, 100),
            "gpu_temp_c": rng.uniform(40, 85),
            "gpu_power_w": rng.uniform(400, 5600),
            "gpu_mem_pct": rng.uniform(0, 100),
        }
    counters = {
        "at": t,
        "cpu_idle_s": rng.uniform(1e6, 1e8),
        "cpu_total_s": rng.uniform(1e8, 1e9),
        "net_rx_bytes": rng.uniform(1e9, 1e13),
        "net_tx_bytes": rng.uniform(1e9, 1e13),
    }
    labels = {"network": "io.net", "device_id": f"dev-{name}"}
    return NodeSample(
        node=name,
        source_kind="exporter",
        up=True,
        network="io.net",
        labels=labels,
        counters=counters,
        **values,
    )


def coins(rng: random.Random, spark: bool) -> list[MarketCoin]:
    """250 coins of a CoinGecko page, with or without the 168-point sparkline."""
    out = []
    for i in range(250):
        price = rng.uniform(0.01, 50)
        item = {
            "id": f"coin-{i}",
            "symbol": f"c{i}",
            "name": f"Coin number {i}",
            "market_cap_rank": i + 40,
            "current_price": price,
            "market_cap": price * 1e8,
            "total_volume": price * 1e6,
            "fully_diluted_valuation": price * 2e8,
            "price_change_percentage_24h_in_currency": rng.uniform(-9, 9),
            "price_change_percentage_7d_in_currency": rng.uniform(-20, 20),
            "price_change_percentage_30d_in_currency": rng.uniform(-40, 40),
            "last_updated": "2027-05-31T23:59:12.123Z",
        }
        if spark:
            item["sparkline_in_7d"] = {"price": [price * rng.uniform(0.9, 1.1) for _ in range(168)]}
        out.append(MarketCoin.model_validate(item))
    return out


def metrics() -> list[NetworkMetric]:
    """About 40 figures across the four networks."""
    return [
        NetworkMetric(
            network=n, metric=f"metric_{i}", value=i * 1234.5, unit="count", endpoint="/x"
        )
        for n in ("io.net", "akash", "filecoin", "helium")
        for i in range(10)
    ]


def rollup_rows(rng: random.Random, nodes: int, resolution: int, start: datetime, end: datetime):
    """Synthetic rollup rows for every node and bucket in [start, end)."""
    t = start
    while t < end:
        at = iso(t)
        for k in range(nodes):
            gpu = k % 10 < 6
            g = [8.0, rng.uniform(0, 100), rng.uniform(40, 85), rng.uniform(400, 5600)]
            g.append(rng.uniform(0, 100))
            yield (
                resolution,
                f"node-{k:04d}",
                "exporter",
                at,
                resolution // 60,
                resolution // 60,
                *(rng.uniform(0, 100) for _ in range(4)),
                rng.uniform(1e6, 1e8),
                rng.uniform(1e3, 1e8),
                rng.uniform(1e3, 1e8),
                *(g if gpu else [None] * 5),
                rng.uniform(40, 90) if gpu else None,
            )
        t += timedelta(seconds=resolution)


def fill_rollups(conn: sqlite3.Connection, rows) -> int:
    """Bulk insert, 50,000 rows a transaction."""
    batch, total = [], 0
    for row in rows:
        batch.append(row)
        if len(batch) == 50_000:
            with conn:
                conn.executemany(INSERT_ROLLUP, batch)
            total += len(batch)
            batch = []
    conn.executemany(INSERT_ROLLUP, batch)
    return total + len(batch)


def snapshots(conn: sqlite3.Connection, rng: random.Random) -> None:
    """Rankings and network polls as the thinning leaves them."""
    times: list[tuple[datetime, bool]] = []
    t = NOW - timedelta(days=1)
    while t < NOW:  # the last day: every poll, a sparkline an hour
        times.append((t, t.minute == 58))
        t += timedelta(seconds=120)
    for h in range(24, 90 * 24):  # 90 days: one an hour, a sparkline a day
        times.append((NOW - timedelta(hours=h), h % 24 == 0))
    for d in range(90, 365):  # a year: one a day
        times.append((NOW - timedelta(days=d), False))
    for at, spark in sorted(times):
        write_poll(conn, PollRecord("coingecko", at, at, Reading(market=coins(rng, spark))))
        write_poll(conn, PollRecord("ionet", at, at, Reading(metrics=metrics())))


def main() -> None:
    """Build, prune once, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--path", type=Path, default=Path("/tmp/retention-size.db"))
    args = parser.parse_args()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.path}{suffix}").unlink(missing_ok=True)
    rng = random.Random(7)
    conn = open_writer(args.path)
    started = time.monotonic()
    t = NOW - timedelta(days=POLICY.raw_days + 1)
    names = [f"node-{k:04d}" for k in range(args.nodes)]
    while t < NOW:
        ts = t.timestamp()
        nodes = [node_sample(rng, n, k % 10 < 6, ts) for k, n in enumerate(names)]
        write_poll(conn, PollRecord("fleet", t, t, Reading(nodes=nodes)))
        t += timedelta(seconds=60)
    print(f"raw fleet polls written in {time.monotonic() - started:.0f} s", flush=True)
    snapshots(conn, rng)
    started = time.monotonic()
    report = apply_retention(conn, POLICY, NOW)
    print(
        f"apply_retention: {time.monotonic() - started:.1f} s, {report.transactions} "
        f"transactions, longest {report.longest_transaction_ms:.0f} ms, "
        f"{report.samples_rolled_up:,} samples rolled up",
        flush=True,
    )
    oldest_minute = conn.execute(
        "SELECT MIN(bucket_at) FROM node_rollups WHERE resolution = 60"
    ).fetchone()[0]
    oldest_hour = conn.execute(
        "SELECT MIN(bucket_at) FROM node_rollups WHERE resolution = 3600"
    ).fetchone()[0]
    minute_from = NOW - timedelta(days=POLICY.minute_days)
    end = datetime.fromisoformat(oldest_minute.replace("Z", "+00:00"))
    fill_rollups(conn, rollup_rows(rng, args.nodes, 60, minute_from, end))
    end = datetime.fromisoformat(oldest_hour.replace("Z", "+00:00"))
    fill_rollups(conn, rollup_rows(rng, args.nodes, 3600, NOW - timedelta(days=400), end))
    fill_rollups(
        conn,
        rollup_rows(rng, args.nodes, 86400, NOW - timedelta(days=365), NOW - timedelta(days=8)),
    )
    again = apply_retention(conn, POLICY, NOW)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sizes = conn.execute(
        "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
    ).fetchall()
    counts = {}
    for table in ("node_samples", "node_rollups", "market", "network_stats", "polls"):
        counts[table] = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    per_res = dict(
        conn.execute("SELECT resolution, COUNT(*) FROM node_rollups GROUP BY 1").fetchall()
    )
    conn.close()
    print(json.dumps({"second_run_changed": again.changed, "rows": counts, "rollups": per_res}))
    for name, size in sizes:
        print(f"{name:<28} {size / 1e6:>10,.1f} MB")
    print(f"file: {args.path.stat().st_size / 1e6:,.1f} MB")


if __name__ == "__main__":
    main()
