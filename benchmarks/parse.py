"""Exposition parser throughput: sources.exposition against prometheus_client on the same bodies.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/parse.py [--rounds 30]

Bodies: the real node_exporter 1.5.0 fixture (507 samples), and a 10x body built from it the way
a federation endpoint would serve ten nodes (each family's HELP/TYPE once, then its samples for
instances node-01..node-10). Each round times ours, then prometheus_client (A B A B ...), each
as the mean of a small batch of calls so a batch lasts a few milliseconds; the table shows the
medians over the rounds. prometheus_client is consumed fully (every sample of every family).
The garbage collector stays on, as in the app.

The last line is the budget verdict: ours must be at least 10x faster on the node_exporter body.
Exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sources.exposition import parse_exposition  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "node_exporter_1.5.0_2cpu.prom"
BUDGET = 10.0

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # the ratio cannot be measured; still report our own figures
    text_string_to_metric_families = None
try:
    PEER_VERSION = metadata.version("prometheus-client")
except metadata.PackageNotFoundError:
    PEER_VERSION = "missing"


def ours(body: str) -> int:
    return len(parse_exposition(body))


def peer(body: str) -> int:
    return sum(len(family.samples) for family in text_string_to_metric_families(body))


def tenfold(body: str, nodes: int = 10) -> str:
    """The body as ten nodes' worth: each family once, its samples per ``instance``."""
    out: list[str] = []
    samples: list[str] = []

    def flush() -> None:
        for index in range(1, nodes + 1):
            label = f'instance="node-{index:02d}"'
            for line in samples:
                name, brace, rest = line.partition("{")
                if brace:
                    out.append(f"{name}{{{label},{rest}")
                else:
                    metric, _, value = line.partition(" ")
                    out.append(f"{metric}{{{label}}} {value}")
        samples.clear()

    for line in body.splitlines():
        if line.startswith("#"):
            if samples:
                flush()
            out.append(line)
        elif line:
            samples.append(line)
    flush()
    return "\n".join(out) + "\n"


def batch_ms(func: Callable[[str], int], body: str, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        func(body)
    return (time.perf_counter() - started) * 1000 / calls


def calls_for(func: Callable[[str], int], body: str, target_ms: float = 5.0) -> int:
    one = batch_ms(func, body, 1)
    return max(1, min(200, int(target_ms / max(one, 1e-6))))


def measure(body: str, rounds: int) -> tuple[float, float | None]:
    """Median ms per call of ours and of the peer (None without prometheus_client)."""
    for _ in range(3):  # warm up: compiled patterns, caches, allocator
        ours(body)
        if text_string_to_metric_families is not None:
            peer(body)
    our_calls = calls_for(ours, body)
    peer_calls = calls_for(peer, body) if text_string_to_metric_families is not None else 0
    our_times: list[float] = []
    peer_times: list[float] = []
    for _ in range(rounds):
        our_times.append(batch_ms(ours, body, our_calls))
        if peer_calls:
            peer_times.append(batch_ms(peer, body, peer_calls))
    return statistics.median(our_times), statistics.median(peer_times) if peer_times else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    node = FIXTURE.read_text(encoding="utf-8")
    bodies = {"node_exporter 1.5.0": node, "10 nodes (instance label)": tenfold(node)}
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"prometheus_client {PEER_VERSION}, {args.rounds} interleaved rounds, GC on"
    )
    header = (
        f"{'body':<26} {'KiB':>6} {'samples':>8} {'ours ms':>9} {'peer ms':>9} "
        f"{'ours samples/s':>15} {'peer samples/s':>15} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    results: dict[str, tuple[float, float | None]] = {}
    for label, body in bodies.items():
        count = ours(body)
        if text_string_to_metric_families is not None and peer(body) != count:
            print(f"warning: sample counts differ on {label}: ours {count}, peer {peer(body)}")
        our_ms, peer_ms = measure(body, args.rounds)
        results[label] = (our_ms, peer_ms)
        peer_cell = f"{peer_ms:9.3f}" if peer_ms is not None else f"{'n/a':>9}"
        peer_rate = f"{count / peer_ms * 1000:15,.0f}" if peer_ms else f"{'n/a':>15}"
        ratio = f"{peer_ms / our_ms:6.1f}" if peer_ms else f"{'n/a':>6}"
        print(
            f"{label:<26} {len(body.encode()) / 1024:6.1f} {count:8d} {our_ms:9.3f} {peer_cell} "
            f"{count / our_ms * 1000:15,.0f} {peer_rate} {ratio}"
        )

    our_ms, peer_ms = results["node_exporter 1.5.0"]
    if peer_ms is None:
        print("prometheus_client is not installed: the ratio cannot be measured")
        print(f"BUDGET parse FAIL measured={our_ms:.3f} budget=10x peer=nan ratio=nan")
        return 0
    ratio = peer_ms / our_ms
    verdict = "PASS" if ratio >= BUDGET else "FAIL"
    print(
        f"BUDGET parse {verdict} measured={our_ms:.3f} budget=10x peer={peer_ms:.3f} "
        f"ratio={ratio:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
