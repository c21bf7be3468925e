"""Storing one 1,000-node poll into the realistic cache: ``cache.store.write_poll``.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/poll_write.py [--rounds 20]

A private copy of the realistic cache is opened with ``cache.db.open_writer`` (WAL, synchronous
NORMAL, as the poller opens it). Each round stores one fleet poll of 1,000 nodes (the 500 nodes
already in the cache and 500 new ones; 60 % with GPUs, counter totals as the exporter source
keeps them) through ``write_poll``: the poll row, 1,000 ``node_samples`` rows and 1,000 ``nodes``
upserts in one transaction, commit included. The table shows the median and the slowest round.
Also shown, not budgeted: ``cache.queries.previous_counters``, which the poller reads once per
fleet source per run (then carries the counters in memory), on the same cache.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import realistic_cache  # noqa: E402
from benchmarks.common import budget_line, median, remove_cache, scratch_copy  # noqa: E402
from cache.db import open_writer  # noqa: E402
from cache.queries import previous_counters  # noqa: E402
from cache.store import PollRecord, write_poll  # noqa: E402
from sources.models import NodeSample, Reading  # noqa: E402

BUDGET_MS = 50.0
NODES = 1000


def poll_nodes(rng: random.Random, at: float) -> list[NodeSample]:
    nodes = []
    for i in range(NODES):
        gpu = i % 5 < 3
        cpu = rng.uniform(0, 100)
        nodes.append(
            NodeSample(
                node=realistic_cache.node_name(i),
                source_kind="exporter",
                network="io.net",
                labels={"network": "io.net", "region": f"r{i % 7}"},
                up=True,
                cpu_pct=cpu,
                mem_pct=rng.uniform(5, 95),
                disk_pct=rng.uniform(5, 95),
                load1=cpu / 50,
                uptime_s=rng.uniform(1e3, 1e7),
                net_rx_bps=rng.uniform(1e4, 1e7),
                net_tx_bps=rng.uniform(1e4, 1e7),
                gpus=8 if gpu else None,
                gpu_util_pct=rng.uniform(0, 100) if gpu else None,
                gpu_temp_c=rng.uniform(30, 85) if gpu else None,
                gpu_power_w=rng.uniform(100, 2800) if gpu else None,
                gpu_mem_pct=rng.uniform(0, 100) if gpu else None,
                counters={
                    "at": at,
                    "cpu_idle_s": rng.uniform(1e5, 1e7),
                    "cpu_total_s": rng.uniform(1e7, 2e7),
                    "net_rx_bytes": rng.uniform(1e9, 1e12),
                    "net_tx_bytes": rng.uniform(1e9, 1e12),
                },
            )
        )
    return nodes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    info = realistic_cache.ensure()
    rng = random.Random(5)
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="depin-bench-", dir=info.path.parent) as tmp:
        db = scratch_copy(info.path, Path(tmp) / "poll-write.db")
        conn = open_writer(db)
        counters_started = time.perf_counter()
        previous = previous_counters(conn, "exporter")
        counters_ms = (time.perf_counter() - counters_started) * 1000
        for number in range(args.rounds):
            started_at = info.end + timedelta(minutes=number + 1)
            reading = Reading(nodes=poll_nodes(rng, started_at.timestamp()), at=started_at)
            record = PollRecord("fleet", started_at, started_at + timedelta(seconds=2), reading)
            started = time.perf_counter()
            write_poll(conn, record)
            times.append((time.perf_counter() - started) * 1000)
        conn.close()
        remove_cache(db)
    ms = median(times)
    print(
        f"write_poll of {NODES:,} nodes into a copy of the realistic cache "
        f"({info.node_samples:,} node_samples rows), {args.rounds} rounds"
    )
    print(f"{'median ms':>10}{'min':>8}{'max':>8}")
    print(f"{ms:>10.1f}{min(times):>8.1f}{max(times):>8.1f}")
    print(
        f"not budgeted: previous_counters (read once per fleet source per run) "
        f"{counters_ms:,.0f} ms for {len(previous):,} nodes"
    )
    print(budget_line("poll_write_1000", ms < BUDGET_MS, f"{ms:.1f}ms", f"{BUDGET_MS:g}ms"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
