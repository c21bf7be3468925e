"""One ``poll --once --only fleet`` of a Prometheus server answering for 100,000 nodes.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/promql_100k_poll.py [--nodes 100000] [--rounds 3] [--big 300000]

A child process (tests/support/promql_fleet.py) stands in for the server on 127.0.0.1: every
``/api/v1/query`` gets an instant vector of ``--nodes`` series carrying the labels a dcgm-exporter
target has behind the Prometheus Operator (about 470 bytes a series, 47 MB a query, gzip on the
wire), so each of the thirteen queries of a poll is as big as the largest answer a fleet of that
size can give. The app runs as the user runs it, ``python -m explorer poll --once --only fleet``
against a fresh cache in an isolated HOME; its wall time and peak RSS (the child's own
``ru_maxrss``) are taken per round. Then ``export fleet --format json`` must list every node.
BUDGET: under 10 s wall and under 600 MB peak RSS for 100,000 nodes (the median round). The
``--big`` fleet (300,000 by default; 0 skips it) is reported once, not budgeted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import APP, budget_line, ensure_bytecode, isolated_env, median  # noqa: E402
from tests.support.promql_fleet import fleet_server  # noqa: E402

WALL_BUDGET_S = 10.0
RSS_BUDGET_MB = 600.0


def _config(home: Path, url: str) -> Path:
    path = home / "config.toml"
    path.write_text(
        "[fleet]\ninterval = 120\ntimeout = 60\n\n"
        f'[[fleet.prometheus]]\nurl = "{url}"\n\n'
        "[fleet.local]\nenabled = false\n\n"
        "[sources.sample]\nenabled = false\n"
    )
    return path


def _run(argv: list[str], env: dict[str, str], tmp: Path) -> tuple[float, float, int, str, str]:
    """(wall s, this child's own peak RSS MB, exit code, stdout, stderr) of one app command."""
    out, err = tmp / "stdout", tmp / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # this child's rusage, not the maximum of all
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, child.returncode, out.read_text(), err.read_text()


def one_round(nodes: int, url: str, tmp: Path, number: int) -> tuple[float, float, float, int]:
    """(poll wall s, poll peak RSS MB, export wall s, nodes exported) for one fresh cache."""
    home = tmp / f"home-{nodes}-{number}"
    home.mkdir()
    env = isolated_env(home)
    config = _config(home, url)
    db = home / "fleet.db"
    base = [*APP, "--config", str(config), "--db", str(db)]
    wall, rss, code, _, stderr = _run([*base, "poll", "--once", "--only", "fleet"], env, home)
    if code != 0:
        raise SystemExit(f"poll failed ({code}): {stderr.strip()[-500:]}")
    export_wall, _, code, stdout, stderr = _run(
        [*base, "export", "fleet", "--format", "json"], env, home
    )
    if code != 0:
        raise SystemExit(f"export failed ({code}): {stderr.strip()[-500:]}")
    count = len(json.loads(stdout))
    return wall, rss, export_wall, count


def measure(nodes: int, rounds: int, tmp: Path) -> tuple[float, float, float, int]:
    walls, rsss, exports, counts = [], [], [], []
    with fleet_server(nodes) as url:
        for number in range(rounds):
            wall, rss, export_wall, count = one_round(nodes, url, tmp, number)
            print(
                f"  {nodes:>7} nodes, round {number + 1}: poll {wall:.2f} s, peak RSS "
                f"{rss:.0f} MB, export {export_wall:.2f} s, {count} nodes exported",
                flush=True,
            )
            walls.append(wall)
            rsss.append(rss)
            exports.append(export_wall)
            counts.append(count)
    return median(walls), max(rsss), median(exports), min(counts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", type=int, default=300_000)
    args = parser.parse_args()
    ensure_bytecode()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; server in a separate process on 127.0.0.1, gzip"
    )
    with tempfile.TemporaryDirectory(prefix="depin-promql-") as tmp:
        wall, rss, export_wall, count = measure(args.nodes, args.rounds, Path(tmp))
        big = measure(args.big, 1, Path(tmp)) if args.big else None
    per_10k = wall / args.nodes * 10_000
    print(f"{'nodes':>8} {'poll s':>7} {'s / 10k':>8} {'peak RSS MB':>12} {'export s':>9}")
    print(f"{args.nodes:>8} {wall:>7.2f} {per_10k:>8.3f} {rss:>12.0f} {export_wall:>9.2f}")
    if big is not None:
        b_wall, b_rss, b_export, b_count = big
        print(
            f"{args.big:>8} {b_wall:>7.2f} {b_wall / args.big * 10_000:>8.3f} {b_rss:>12.0f} "
            f"{b_export:>9.2f}   (reported, not budgeted; {b_count} nodes exported)"
        )
    complete = count == args.nodes
    if not complete:
        print(f"only {count} of {args.nodes} nodes were exported")
    passed = complete and wall < WALL_BUDGET_S and rss < RSS_BUDGET_MB
    print(
        f"(the verdict needs all {args.nodes} nodes exported, wall < {WALL_BUDGET_S:g} s and "
        f"peak RSS < {RSS_BUDGET_MB:g} MB)"
    )
    print(
        budget_line(
            "promql_100k_poll",
            passed,
            f"{wall:.2f}s,{rss:.0f}MB",
            f"{WALL_BUDGET_S:g}s,{RSS_BUDGET_MB:g}MB",
        )
    )


if __name__ == "__main__":
    main()
