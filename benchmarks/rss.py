"""The TUI's memory with the realistic cache and 100,000 fleet rows, on the Fleet screen.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/rss.py [--rounds 3]

A private copy of the realistic cache gets one more fleet poll of 100,000 nodes (the cache's 500
among them), stored through ``cache.store.write_poll``, so the Fleet screen shows exactly
100,000 rows. Each round starts ``depin-explorer --offline --db <copy>`` on a fresh
pseudo-terminal (120x40), presses ``4``, waits for "100,000 nodes" and 5 s more, and reads the
process's resident set (RSS) and its peak (VmHWM). The peer is the bare Textual app of
``first_paint.py`` (Header + DataTable + Footer) read the same way once it has painted; rounds
interleave (A B A B ...) and the table shows medians. Budget: RSS under 120 MB.
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
from benchmarks.bare_app import MARKER as BARE_MARKER  # noqa: E402
from benchmarks.common import (  # noqa: E402
    APP,
    PtyProcess,
    budget_line,
    ensure_bytecode,
    isolated_env,
    median,
    remove_cache,
    scratch_copy,
)
from cache.db import open_writer  # noqa: E402
from cache.store import PollRecord, write_poll  # noqa: E402
from sources.models import NodeSample, Reading  # noqa: E402

BUDGET_MB = 120.0
ROWS = 100_000
SETTLE_S = 5.0


def big_poll(db: Path, end_offset: timedelta, info: realistic_cache.Info) -> float:
    """Store one 100,000-node fleet poll; return the seconds it took."""
    rng = random.Random(100)
    at = info.end + end_offset
    nodes = []
    for i in range(ROWS):
        gpu = i % 5 < 3
        up = rng.random() > 0.01
        nodes.append(
            NodeSample(
                node=realistic_cache.node_name(i) if i < 10_000 else f"node-{i:06d}",
                source_kind="exporter",
                network=("io.net", "akash", "nosana", "render", "grass")[i % 5],
                labels={"network": "io.net", "region": f"r{i % 7}"},
                up=up,
                error=None if up else "connect: connection refused",
                cpu_pct=rng.uniform(0, 100) if up else None,
                mem_pct=rng.uniform(5, 95) if up else None,
                disk_pct=rng.uniform(5, 95) if up else None,
                load1=rng.uniform(0, 8) if up else None,
                uptime_s=rng.uniform(1e3, 1e7) if up else None,
                gpus=8 if gpu else None,
                gpu_util_pct=rng.uniform(0, 100) if gpu and up else None,
                gpu_temp_c=rng.uniform(30, 85) if gpu and up else None,
                gpu_power_w=rng.uniform(100, 2800) if gpu and up else None,
                counters={"at": at.timestamp(), "cpu_idle_s": 1e6, "cpu_total_s": 2e6},
            )
        )
    started = time.perf_counter()
    conn = open_writer(db)
    write_poll(conn, PollRecord("fleet", at, at + timedelta(seconds=9), Reading(nodes=nodes)))
    conn.close()
    return time.perf_counter() - started


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ours(db: Path, home: Path) -> tuple[float, float, float]:
    """(RSS MB, peak MB, seconds from start to the 100,000 rows on screen)."""
    with PtyProcess([*APP, "--offline", "--db", str(db)], isolated_env(home)) as app:
        app.wait_for("Top gainers 24h", 60)
        app.send("4")
        shown = app.wait_for((f"{ROWS} nodes", f"{ROWS:,} nodes"), 300)
        time.sleep(SETTLE_S)
        return app.rss_mb(), vm_hwm_mb(app.proc.pid), shown


def peer(home: Path) -> tuple[float, float]:
    argv = [sys.executable, str(ROOT / "benchmarks" / "bare_app.py")]
    with PtyProcess(argv, isolated_env(home)) as app:
        app.wait_for(BARE_MARKER, 60)
        time.sleep(SETTLE_S)
        return app.rss_mb(), vm_hwm_mb(app.proc.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_bytecode()
    info = realistic_cache.ensure()
    rss: list[float] = []
    peaks: list[float] = []
    shown: list[float] = []
    peer_rss: list[float] = []
    peer_peaks: list[float] = []
    with tempfile.TemporaryDirectory(prefix="depin-bench-", dir=info.path.parent) as tmp:
        home = Path(tmp)
        db = scratch_copy(info.path, home / "rss-100k.db")
        store_s = big_poll(db, timedelta(minutes=1), info)
        for number in range(args.rounds):
            mb, peak, seconds = ours(db, home / f"ours-{number}")
            rss.append(mb)
            peaks.append(peak)
            shown.append(seconds)
            mb, peak = peer(home / f"peer-{number}")
            peer_rss.append(mb)
            peer_peaks.append(peak)
        remove_cache(db)
    ours_mb, peer_mb = median(rss), median(peer_rss)
    print(
        f"RSS on Fleet with {ROWS:,} rows (a {ROWS:,}-node poll stored into a copy of the "
        f"realistic cache in {store_s:.1f} s), {args.rounds} interleaved rounds, medians"
    )
    header = f"{'process':<46}{'RSS MB':>8}{'peak MB':>9}{'rows on screen after':>22}"
    print(header)
    print("-" * len(header))
    label = "depin-explorer on Fleet"
    print(f"{label:<46}{ours_mb:>8.1f}{median(peaks):>9.1f}{median(shown):>20.1f} s")
    label = "bare Textual app (Header+DataTable+Footer)"
    print(f"{label:<46}{peer_mb:>8.1f}{median(peer_peaks):>9.1f}")
    print(
        budget_line(
            "rss_100k",
            ours_mb < BUDGET_MB,
            f"{ours_mb:.1f}MB",
            f"{BUDGET_MB:g}MB",
            f"{peer_mb:.1f}MB",
            f"{ours_mb / peer_mb:.2f}x",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
