"""``make bench``: run every benchmark script in turn; each ends with its BUDGET line(s)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["parse.py", "poll_1000.py", "fleet_table.py"]


def main() -> int:
    budget_lines = []
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        result = subprocess.run(
            [sys.executable, str(HERE / script)],
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
        print(result.stdout, end="")
        if result.returncode != 0:
            print(result.stderr, end="", file=sys.stderr)
        budget_lines += [line for line in result.stdout.splitlines() if line.startswith("BUDGET ")]
    print("== summary")
    for line in budget_lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
