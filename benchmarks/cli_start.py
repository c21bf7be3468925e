"""CLI start: ``depin-explorer --help`` and ``--version`` against ``python -c pass``.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/cli_start.py [--rounds 20]

Each round starts a fresh process (its own HOME and XDG dirs) and times start -> exit, wall
clock: ``depin-explorer --help``, ``depin-explorer --version`` (the checkout's code, as
``python -m explorer``) and the peer, the same interpreter doing nothing (``python -c pass``);
also shown, the interpreter importing click alone (what any click CLI pays). Rounds interleave
them after one unmeasured warm-up each; the table shows medians. Then one
more run of each reports how many modules it had loaded and whether Textual (or pydantic, httpx,
SQLite, asyncio) was among them: a quick answer imports none of them
(tests/unit/test_cli_startup.py fails if it does). Printed, not budgeted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import APP, ensure_bytecode, isolated_env, median  # noqa: E402

TIMEOUT_S = 30.0
HEAVY = ("textual", "pydantic", "httpx", "sqlite3", "sqlite_utils", "asyncio")
# The console script's entry point, then what it loaded, on stderr after a marker.
RUNNER = r"""
import json, sys
sys.argv = ["depin-explorer", *json.loads(sys.argv[1])]
from explorer.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\nMODULES " + json.dumps(sorted(sys.modules)))
"""
PEER_RUNNER = 'import json, sys; sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)))'
CASES: dict[str, list[str]] = {
    "depin-explorer --help": [*APP, "--help"],
    "depin-explorer --version": [*APP, "--version"],
    "python -c 'import click'": [sys.executable, "-c", "import click"],
    "python -c pass (peer)": [sys.executable, "-c", "pass"],
}
MODULE_PROBES: dict[str, list[str]] = {
    "depin-explorer --help": [sys.executable, "-c", RUNNER, json.dumps(["--help"])],
    "depin-explorer --version": [sys.executable, "-c", RUNNER, json.dumps(["--version"])],
    "python -c 'import click'": [sys.executable, "-c", f"import click; {PEER_RUNNER}"],
    "python -c pass (peer)": [sys.executable, "-c", PEER_RUNNER],
}


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of one process (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
        timeout=TIMEOUT_S,
        check=True,
    )
    return time.perf_counter() - start


def loaded(argv: list[str], env: dict[str, str]) -> set[str]:
    """The modules the process had loaded when it was done."""
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=TIMEOUT_S, check=True
    )
    return set(json.loads(result.stderr.rpartition("\nMODULES ")[2]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    ensure_bytecode()
    times: dict[str, list[float]] = {label: [] for label in CASES}
    with tempfile.TemporaryDirectory(prefix="depin-bench-") as tmp:
        env = isolated_env(Path(tmp))
        for argv in CASES.values():  # warm-up: page cache and .pyc files
            timed(argv, env)
        for _ in range(args.rounds):
            for label, argv in CASES.items():
                times[label].append(timed(argv, env))
        modules = {label: loaded(argv, env) for label, argv in MODULE_PROBES.items()}
    peer_ms = median(times["python -c pass (peer)"]) * 1000
    print(f"CLI start, wall clock start -> exit, {args.rounds} interleaved rounds, medians")
    header = f"{'':<30}{'median ms':>10}{'min':>8}{'max':>8}{'x peer':>8}{'modules':>9}  heavy"
    print(header)
    print("-" * len(header))
    for label, values in times.items():
        ms = [v * 1000 for v in values]
        heavy = sorted({m.split(".")[0] for m in modules[label]} & set(HEAVY))
        print(
            f"{label:<30}{median(ms):>10.1f}{min(ms):>8.1f}{max(ms):>8.1f}"
            f"{median(ms) / peer_ms:>7.1f}x{len(modules[label]):>9}  {', '.join(heavy) or 'none'}"
        )
    for label in ("depin-explorer --help", "depin-explorer --version"):
        textual = "textual" in {m.split(".")[0] for m in modules[label]}
        print(f"{label}: textual imported: {'yes' if textual else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
