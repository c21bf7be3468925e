"""The TUI's CPU on the Fleet screen while a collector polls 200 changing nodes, against glances.

Run from the repository root with the project's virtualenv (glances from ``.[bench]``):

    .venv/bin/python benchmarks/tui_idle_cpu.py [--rounds 3] [--seconds 60]

Set-up, all on 127.0.0.1: ``benchmarks/exporters.py`` serves 200 node_exporters (the real 1.5.0
body) whose CPU seconds, load, memory and network bytes move every 5 s; a separate collector
process, ``depin-explorer poll``, scrapes them every 5 s into a fresh cache (every other source
disabled). Each round then starts, on a fresh pseudo-terminal (120x40):

- ours: the TUI on the collector's cache, presses ``4`` (Fleet) and waits for "200 nodes";
- the peer: ``glances -t 5 --disable-check-update`` (refreshing every 5 s, like the nodes),
  waiting for its process list;

lets it settle for 5 s, then takes the CPU (user + system, all threads) it uses over the next
``--seconds`` seconds, as a percentage of one core, and the bytes it wrote to its terminal (what
it would send over SSH). Rounds interleave ours and glances (A B A B ...); the table shows
medians. The collector's own CPU over the same windows is reported beside ours. The TUI finds
the collector's writer lock and attaches read-only: it re-reads the cache whenever the collector
stores a poll (every 5 s here), so the figure includes redrawing the changed rows.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import tomli_w

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    APP,
    GLANCES,
    PtyProcess,
    budget_line,
    ensure_bytecode,
    exporter_fixture,
    isolated_env,
    median,
)
from explorer.config import Config  # noqa: E402

NODES = 200
PERIOD_S = 5.0
SETTLE_S = 5.0
OUR_FLEET_MARKER = (f"{NODES} nodes", f"{NODES:,} nodes")
GLANCES_MARKER = "TASKS"
TUI_ARGS: list[str] = []  # no --offline: the TUI attaches read-only to the collector


def collector_config(port: int) -> dict[str, object]:
    """Every source off but the fleet: 200 loopback targets polled every 5 s."""
    sources = {name: {"enabled": False} for name in type(Config().sources).model_fields}
    config: dict[str, object] = {
        "sources": sources,
        "fleet": {
            "interval": PERIOD_S,
            "timeout": PERIOD_S / 2,
            "local": {"enabled": False},
            "targets": [
                {
                    "name": f"node-{i:03d}",
                    "url": f"http://127.0.0.1:{port}/t/{i}/metrics",
                    "labels": {"network": "io.net"},
                }
                for i in range(NODES)
            ],
        },
    }
    Config.model_validate(config)  # fail here, not in the collector, if the schema moved
    return config


def fleet_polls(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute(
                "SELECT COUNT(*) FROM polls WHERE source = 'fleet' AND items >= ?", (NODES,)
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return int(row[0])


def cpu_of(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure(app: PtyProcess, seconds: float, collector: int) -> tuple[float, float, float, float]:
    """(CPU % of one core, terminal bytes/s, the collector's CPU %, RSS MB) over the window."""
    time.sleep(SETTLE_S)
    cpu0, out0, coll0 = app.cpu_seconds(), app.bytes_out, cpu_of(collector)
    time.sleep(seconds)
    cpu1, out1, coll1 = app.cpu_seconds(), app.bytes_out, cpu_of(collector)
    return (
        (cpu1 - cpu0) / seconds * 100,
        (out1 - out0) / seconds,
        (coll1 - coll0) / seconds * 100,
        app.rss_mb(),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    ensure_bytecode()
    if not GLANCES.exists():
        print(f"glances is not installed ({GLANCES}): pip install -e '.[bench]'")
        print(budget_line("tui_idle_cpu", False, "n/a", "<peer", "n/a", "-"))
        return 0
    results: dict[str, list[float]] = {
        k: [] for k in ("ours", "peer", "ours_bps", "peer_bps", "ours_rss", "peer_rss")
    }
    collector_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="depin-bench-") as tmp:
        home = Path(tmp)
        db = home / "collector.db"
        config_path = home / "config.toml"
        exporters = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "exporters.py"), str(exporter_fixture())],
            stdout=subprocess.PIPE,
            text=True,
        )
        collector: subprocess.Popen[bytes] | None = None
        try:
            port = int(exporters.stdout.readline())  # type: ignore[union-attr]
            config_path.write_text(tomli_w.dumps(collector_config(port)))
            collector_log = (home / "collector.log").open("wb")
            collector = subprocess.Popen(
                [*APP, "poll", "--db", str(db), "--config", str(config_path)],
                env=isolated_env(home / "collector"),
                stdout=collector_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            while fleet_polls(db) < 2:  # two polls: CPU rates need a previous sample
                if collector.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "the collector stored no fleet poll: "
                        + (home / "collector.log").read_text(errors="replace")[-2000:]
                    )
                time.sleep(0.5)
            for number in range(args.rounds):
                argv = [*APP, *TUI_ARGS, "--db", str(db), "--config", str(config_path)]
                with PtyProcess(argv, isolated_env(home / f"ours-{number}")) as app:
                    app.wait_for("Top gainers 24h", 60)
                    app.send("4")
                    app.wait_for(OUR_FLEET_MARKER, 60)
                    cpu, bps, coll, rss = measure(app, args.seconds, collector.pid)
                results["ours"].append(cpu)
                results["ours_bps"].append(bps)
                results["ours_rss"].append(rss)
                collector_cpu.append(coll)
                glances = [str(GLANCES), "-t", f"{PERIOD_S:g}", "--disable-check-update"]
                with PtyProcess(glances, isolated_env(home / f"peer-{number}")) as peer:
                    peer.wait_for(GLANCES_MARKER, 60)
                    cpu, bps, coll, rss = measure(peer, args.seconds, collector.pid)
                results["peer"].append(cpu)
                results["peer_bps"].append(bps)
                results["peer_rss"].append(rss)
                collector_cpu.append(coll)
            polls = fleet_polls(db)
        finally:
            if collector is not None:
                collector.terminate()
                try:
                    collector.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    collector.kill()
                    collector.wait()
            exporters.terminate()
            exporters.wait(timeout=10)

    ours, peer = median(results["ours"]), median(results["peer"])
    print(
        f"idle CPU over {args.seconds:g} s windows, {args.rounds} interleaved rounds, medians; "
        f"{NODES} loopback nodes changing every {PERIOD_S:g} s, collector polling every "
        f"{PERIOD_S:g} s ({polls} fleet polls stored); {os.cpu_count()} CPUs"
    )
    print(f"TUI run as: depin-explorer {' '.join(TUI_ARGS)} --db <collector's cache> (Fleet)")
    header = f"{'process':<44}{'CPU % of a core':>16}{'all rounds':>24}{'tty B/s':>10}{'RSS MB':>8}"
    print(header)
    print("-" * len(header))
    for label, key in (("depin-explorer TUI, Fleet", "ours"), ("glances -t 5", "peer")):
        rounds = " ".join(f"{v:.2f}" for v in results[key])
        bps, rss = median(results[key + "_bps"]), median(results[key + "_rss"])
        print(f"{label:<44}{median(results[key]):>16.2f}{rounds:>24}{bps:>10,.0f}{rss:>8.1f}")
    rounds = " ".join(f"{v:.1f}" for v in collector_cpu)
    label = "collector (depin-explorer poll), all windows"
    print(f"{label:<44}{median(collector_cpu):>16.2f}{rounds:>24}")
    ratio = ours / peer if peer > 0 else float("inf")
    print(
        budget_line(
            "tui_idle_cpu",
            ours < peer,
            f"{ours:.2f}%",
            "<peer",
            f"{peer:.2f}%",
            f"{ratio:.2f}x",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
