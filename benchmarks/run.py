"""``make bench``: every benchmark script in turn, then one BUDGET line per performance budget.

The realistic cache is generated first (or reused while current), so the scripts that need it
share one copy. A script that crashes or times out still gets its BUDGET lines, as FAIL with
``measured=n/a``, so the summary always has every budget.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (script, the budgets it prints); the order keeps the long idle-CPU run last.
SCRIPTS: list[tuple[str, list[str]]] = [
    ("realistic_cache.py", []),
    ("parse.py", ["parse"]),
    ("poll_1000.py", ["poll_1000_targets"]),
    ("promql_100k_poll.py", ["promql_100k_poll"]),
    ("fleet_table.py", ["fleet_100k_first_paint", "fleet_100k_sort", "fleet_100k_filter"]),
    ("first_paint.py", ["first_paint"]),
    ("screen_first_view.py", ["screen_first_view"]),
    ("history_query.py", ["node_history_query"]),
    ("poll_write.py", ["poll_write_1000"]),
    ("rss.py", ["rss_100k"]),
    ("cli_start.py", []),
    ("tui_idle_cpu.py", ["tui_idle_cpu"]),
]
TIMEOUT_S = 900


def main() -> int:
    started = time.perf_counter()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
        flush=True,
    )
    budget_lines: list[str] = []
    for script, budgets in SCRIPTS:
        print(f"== {script}", flush=True)
        script_started = time.perf_counter()
        try:
            result = subprocess.run(
                [sys.executable, str(HERE / script)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
            stdout, stderr, code = result.stdout, result.stderr, result.returncode
        except subprocess.TimeoutExpired as exc:
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            stderr, code = f"timed out after {TIMEOUT_S} s\n", -1
        print(stdout, end="")
        if code != 0:
            print(stderr, end="", file=sys.stderr)
        print(f"({script}: {time.perf_counter() - script_started:.0f} s)", flush=True)
        found = [line for line in stdout.splitlines() if line.startswith("BUDGET ")]
        budget_lines += found
        for name in budgets:
            if not any(line.split()[1] == name for line in found):
                budget_lines.append(
                    f"BUDGET {name} FAIL measured=n/a budget=see-docs/performance.md peer=- ratio=-"
                )
    print(f"== summary (whole run {(time.perf_counter() - started) / 60:.1f} min)")
    for line in budget_lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
