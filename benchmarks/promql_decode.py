"""Decoding one large ``/api/v1/query`` answer: the stdlib json, orjson and the project's msgspec.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/promql_decode.py [--nodes 100000] [--rounds 5]

Bodies: ``tests.support.promql_fleet.vector_body`` for ``--nodes`` series with the labels a
dcgm-exporter target has behind the Prometheus Operator (about 470 bytes a series), once as the
``up`` answer (labels kept) and once as an aggregated answer (only instance and value needed).
Each decoder turns a body into what the join reads: the instances and float values as lists,
and for ``up`` each series' labels too. ``json`` and ``orjson`` build the whole document, then
pull those out with list comprehensions; ``msgspec`` is ``sources.promql.parse_response`` (limit
0), which also checks every value is finite and that the labels need no sanitising. Each round
runs the three in turn on the same bytes, GC on as in the app; the table shows the median wall
time of ``--rounds`` rounds and its ratio to msgspec.

Memory, per decoder and body, for one decode: "traced" is the tracemalloc peak (every Python
allocation, including memory reserved but never touched), "RSS" is the peak resident memory
above the process's resident memory before the decode, in a fresh child process that reads the
body from a file (Linux: VmHWM after resetting it through /proc/self/clear_refs; n/a elsewhere).
No BUDGET line: this justifies a choice, it does not gate one.
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
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from benchmarks.common import median  # noqa: E402
from sources.promql import QueryResult, parse_response  # noqa: E402
from tests.support.promql_fleet import vector_body  # noqa: E402

try:
    import orjson
except ImportError:  # the bench extra is not installed: measure the other two
    orjson = None  # type: ignore[assignment]

Decoder = Callable[[bytes, bool], Any]
QUERIES = {"up (labels kept)": ("up", True), "aggregated (instance only)": ("aggregated", False)}


def _columns(doc: Any, labelled: bool) -> tuple[list[str], list[float], list[Any] | None]:
    result = doc["data"]["result"]
    instances = [series["metric"].get("instance", "") for series in result]
    values = [float(series["value"][1]) for series in result]
    if not labelled:
        return instances, values, None
    labels = [series["metric"] for series in result]
    for metric in labels:  # as parse_response does: the metric name is no label of a node
        metric.pop("__name__", None)
    return instances, values, labels


def decoders() -> dict[str, Decoder]:
    """name -> decoder, in the order each round runs them (orjson only when installed)."""
    found: dict[str, Decoder] = {"json": lambda b, labelled: _columns(json.loads(b), labelled)}
    if orjson is not None:
        found["orjson"] = lambda b, labelled: _columns(orjson.loads(b), labelled)
    found["msgspec"] = lambda b, labelled: _ours(parse_response(b, "q", 0, labelled))
    return found


def _ours(result: QueryResult) -> tuple[list[str], list[float | None], list[Any] | None]:
    return result.instances, result.values, result.labels


def traced_mb(decode: Decoder, body: bytes, labelled: bool) -> float:
    tracemalloc.start()
    result = decode(body, labelled)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return peak / 2**20


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise OSError(key)


def child(name: str, path: str, labelled: bool) -> None:
    """In a fresh process: the peak RSS of one decode above the RSS before it, in MiB."""
    body = Path(path).read_bytes()
    decode = decoders()[name]
    before = _status_mb("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    result = decode(body, labelled)
    print(f"{_status_mb('VmHWM:') - before:.1f}")
    del result


def rss_mb(name: str, path: Path, labelled: bool) -> str:
    argv = [sys.executable, __file__, "--child", name, str(path), str(int(labelled))]
    run = subprocess.run(argv, capture_output=True, text=True, check=False)
    return run.stdout.strip() if run.returncode == 0 and run.stdout.strip() else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2] == "1")
        return
    found = decoders()
    versions = f"msgspec {msgspec.__version__}, orjson " + (
        orjson.__version__ if orjson is not None else "not installed: skipped"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {versions}; {args.nodes:,} series, "
        f"median of {args.rounds} rounds, GC on"
    )
    header = (
        f"{'answer':<27} {'body MiB':>8} {'decoder':<8} {'median s':>9} {'x msgspec':>10} "
        f"{'traced MiB':>11} {'RSS MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    summary: list[str] = []
    with tempfile.TemporaryDirectory(prefix="depin-promql-decode-") as tmp:
        for label, (query, labelled) in QUERIES.items():
            body = vector_body(query, args.nodes)
            path = Path(tmp) / f"{query}.json"
            path.write_bytes(body)
            first = found["msgspec"](body, labelled)
            for name, decode in found.items():  # warm up, and check they read the same
                if decode(body, labelled) != first:
                    raise SystemExit(f"{name} read {label} differently")
            del first
            times: dict[str, list[float]] = {name: [] for name in found}
            for _ in range(args.rounds):
                for name, decode in found.items():
                    started = time.perf_counter()
                    result = decode(body, labelled)
                    times[name].append(time.perf_counter() - started)
                    del result
            ours = median(times["msgspec"])
            for name, decode in found.items():
                took = median(times[name])
                print(
                    f"{label:<27} {len(body) / 2**20:>8.1f} {name:<8} {took:>9.3f} "
                    f"{took / ours:>9.1f}x {traced_mb(decode, body, labelled):>11.0f} "
                    f"{rss_mb(name, path, labelled):>8}"
                )
            others = (f"{n} {median(t) / ours:.1f}x" for n, t in times.items() if n != "msgspec")
            summary.append(f"{query}: {', '.join(others)}")
    print("summary, time relative to msgspec: " + "; ".join(summary))


if __name__ == "__main__":
    main()
