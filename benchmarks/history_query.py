"""History of one node from the realistic cache: 7 days of raw samples, 90 days of rollups.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/history_query.py [--rounds 30]

Each figure is one call of ``cache.queries.node_history`` (what the Node screen's charts call)
on a read-only connection (``cache.db.open_reader``) to the realistic cache, for a node in the
middle of the fleet: ``since`` 7 days before the newest sample (answered from raw samples at
1-minute steps, about 10,080 points) and 90 days before it (answered from hourly rollups, about
2,160 points). Rounds alternate the two queries; the table shows medians, and the first query on
a fresh connection (cold statement cache) beside them. The BUDGET line takes the slower of the
two medians: each must stay under 50 ms. Also shown, not budgeted: ``latest_fleet``, what the
Fleet screen reads on every refresh, on the same cache.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import realistic_cache  # noqa: E402
from benchmarks.common import budget_line, median  # noqa: E402
from cache.db import open_reader  # noqa: E402
from cache.queries import latest_fleet, node_history  # noqa: E402

BUDGET_MS = 50.0
NODE = realistic_cache.node_name(realistic_cache.NODES // 2)


def timed(func: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = func()
    return (time.perf_counter() - started) * 1000, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    info = realistic_cache.ensure()
    spans = {"7d": timedelta(days=7), "90d": timedelta(days=90)}
    times: dict[str, list[float]] = {name: [] for name in spans}
    points: dict[str, int] = {}
    cold: dict[str, float] = {}
    resolution: dict[str, str] = {}
    try:
        from cache import rollup
    except ImportError:
        rollup = None  # type: ignore[assignment]

    for name, span in spans.items():
        conn = open_reader(info.path)
        since = info.end - span
        cold[name], result = timed(lambda c=conn, s=since: node_history(c, NODE, "exporter", s))
        points[name] = len(result)  # type: ignore[arg-type]
        if rollup is not None:
            tier = rollup.choose_resolution(conn, NODE, "exporter", since)
            resolution[name] = "raw samples" if tier == 0 else f"{tier} s rollups"
        else:
            resolution[name] = "raw samples (no rollups in this checkout)"
        conn.close()
    conn = open_reader(info.path)
    for _ in range(args.rounds):
        for name, span in spans.items():
            since = info.end - span
            ms, _ = timed(lambda s=since: node_history(conn, NODE, "exporter", s))
            times[name].append(ms)
    fleet_ms = [timed(lambda: latest_fleet(conn))[0] for _ in range(3)]
    fleet_rows = len(latest_fleet(conn))
    conn.close()

    print(
        f"node_history of {NODE} on the realistic cache ({info.node_samples:,} node_samples, "
        f"{info.rollups:,} node_rollups rows), {args.rounds} alternating rounds"
    )
    header = f"{'query':<12}{'answered from':<30}{'points':>8}{'median ms':>11}{'cold ms':>9}"
    print(header)
    print("-" * len(header))
    for name in spans:
        print(
            f"{name:<12}{resolution[name]:<30}{points[name]:>8,}"
            f"{median(times[name]):>11.1f}{cold[name]:>9.1f}"
        )
    print(
        f"not budgeted: latest_fleet (the Fleet screen's read) {median(fleet_ms):,.0f} ms "
        f"for {fleet_rows:,} nodes (median of 3)"
    )
    medians = {name: median(values) for name, values in times.items()}
    served_by_rollups = info.rollup_table and "rollups" in resolution["90d"]
    if not served_by_rollups:
        print("the 90-day query is not answered from rollups in this checkout: budget not met")
        print(budget_line("node_history_query", False, "n/a", f"{BUDGET_MS:g}ms"))
        return 0
    worst = max(medians.values())
    print(
        f"(the BUDGET line takes the slower: 7d {medians['7d']:.1f} ms, "
        f"90d {medians['90d']:.1f} ms)"
    )
    print(
        budget_line("node_history_query", worst < BUDGET_MS, f"{worst:.1f}ms", f"{BUDGET_MS:g}ms")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
