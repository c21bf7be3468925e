"""One poll of 1,000 exporter targets on loopback: wall time, CPU per target, peak RSS.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/poll_1000.py [--targets 1000] [--rounds 5]

A separate process serves the real node_exporter 1.5.0 body (56 KiB, 507 samples) on
127.0.0.1 for every target path ``/t/<i>/metrics`` (keep-alive HTTP/1.1, asyncio). This process
runs the app's own scrape path (``ExporterFleetSource`` with the default concurrency of 64: fetch,
cap, parse, node values) and stores the poll through ``cache.store.write_poll`` into a fresh
SQLite file, exactly as the poller does. Each round is timed whole; the table shows medians.
The last line is the budget verdict: under 5 s wall and under 300 MB RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cache.db import open_writer  # noqa: E402
from cache.store import PollRecord, write_poll  # noqa: E402
from sources.base import make_client  # noqa: E402
from sources.exporter import ExporterFleetSource, Target  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "node_exporter_1.5.0_2cpu.prom"
WALL_BUDGET = 5.0
RSS_BUDGET_MB = 300.0

SERVER = r"""
import asyncio, sys
body = open(sys.argv[1], "rb").read()
head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n"
        b"content-length: %d\r\n\r\n" % len(body))
async def serve(reader, writer):
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            if not request:
                break
            writer.write(head + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def one_round(port: int, count: int, db: Path) -> tuple[float, float, int]:
    targets = [
        Target(
            name=f"node-{i:04}",
            url=f"http://127.0.0.1:{port}/t/{i}/metrics",
            labels={"network": "io.net"},
        )
        for i in range(count)
    ]
    source = ExporterFleetSource(targets=lambda: targets, timeout=5.0)
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    async with make_client() as client:
        started = datetime.now(UTC)
        reading = await source.fetch(client)
    conn = open_writer(db)
    write_poll(conn, PollRecord("fleet", started, datetime.now(UTC), reading))
    conn.close()
    wall = time.perf_counter() - wall0
    up = sum(1 for n in reading.nodes if n.up)
    return wall, time.process_time() - cpu0, up


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(FIXTURE)], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        walls, cpus = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for number in range(args.rounds):
                wall, cpu, up = asyncio.run(
                    one_round(port, args.targets, Path(tmp) / f"r{number}.db")
                )
                if up != args.targets:
                    print(f"round {number}: only {up} of {args.targets} targets up")
                walls.append(wall)
                cpus.append(cpu)
    finally:
        server.terminate()
        server.wait(timeout=10)
    wall = statistics.median(walls)
    cpu = statistics.median(cpus)
    rss = rss_mb()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; server in a separate process on 127.0.0.1"
    )
    print(
        f"{'targets':>8} {'rounds':>6} {'wall s':>8} {'CPU s':>7} {'CPU ms/target':>14} "
        f"{'peak RSS MB':>12}"
    )
    print(
        f"{args.targets:>8} {args.rounds:>6} {wall:>8.2f} {cpu:>7.2f} "
        f"{cpu / args.targets * 1000:>14.2f} {rss:>12.1f}"
    )
    verdict = "PASS" if wall < WALL_BUDGET and rss < RSS_BUDGET_MB else "FAIL"
    print(f"(the verdict needs both: wall < {WALL_BUDGET:g} s and peak RSS < {RSS_BUDGET_MB:g} MB)")
    print(
        f"BUDGET poll_1000_targets {verdict} measured={wall:.2f}s budget={WALL_BUDGET:g}s "
        "peer=- ratio=-"
    )


if __name__ == "__main__":
    main()
