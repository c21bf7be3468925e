"""First paint: the app on the realistic cache against a bare Textual app, in a real terminal.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/first_paint.py [--rounds 10]

Each round starts a process on a fresh pseudo-terminal (120x40, TERM=xterm-256color, its own HOME
and XDG dirs) and times process start -> the first frame of its first screen on the terminal,
taken when the bytes arrive: for the app ``depin-explorer --offline --db realistic.db`` the
Overview's "Top gainers 24h" (drawn in the first frame, before the cache is read), for the peer
``benchmarks/bare_app.py`` (Header + DataTable + Footer) its last table row. The process is then
stopped. Rounds interleave ours and the peer's (A B A B ...) after one unmeasured warm-up each;
the table shows medians. Also shown, not budgeted: the time until the Overview shows data from
the cache ("Tracked market cap").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import realistic_cache  # noqa: E402
from benchmarks.bare_app import MARKER as BARE_MARKER  # noqa: E402
from benchmarks.common import (  # noqa: E402
    APP,
    TERM_SIZE,
    PtyProcess,
    budget_line,
    ensure_bytecode,
    isolated_env,
    median,
)

BUDGET_RATIO = 1.5
OUR_MARKER = "Top gainers 24h"
DATA_MARKER = "Tracked market cap"
TIMEOUT_S = 60.0


def ours(db: Path, home: Path) -> tuple[float, float]:
    """Seconds to the first frame and to the first frame with cached data."""
    argv = [*APP, "--offline", "--db", str(db)]
    with PtyProcess(argv, isolated_env(home)) as app:
        first = app.wait_for(OUR_MARKER, TIMEOUT_S)
        data = app.wait_for(DATA_MARKER, TIMEOUT_S)
    return first, data


def peer(home: Path) -> float:
    argv = [sys.executable, str(ROOT / "benchmarks" / "bare_app.py")]
    with PtyProcess(argv, isolated_env(home)) as app:
        return app.wait_for(BARE_MARKER, TIMEOUT_S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    ensure_bytecode()
    info = realistic_cache.ensure()
    firsts: list[float] = []
    datas: list[float] = []
    peers: list[float] = []
    with tempfile.TemporaryDirectory(prefix="depin-bench-") as tmp:
        home = Path(tmp)
        ours(info.path, home / "warm-ours")  # page cache and .pyc files warm for both
        peer(home / "warm-peer")
        for number in range(args.rounds):
            first, data = ours(info.path, home / f"ours-{number}")
            firsts.append(first)
            datas.append(data)
            peers.append(peer(home / f"peer-{number}"))
    first_ms, data_ms, peer_ms = (median(v) * 1000 for v in (firsts, datas, peers))
    ratio = first_ms / peer_ms
    print(
        f"first paint in a real pty {TERM_SIZE[0]}x{TERM_SIZE[1]}, {args.rounds} interleaved "
        f"rounds, medians; cache {info.path.stat().st_size / 2**30:.1f} GiB"
    )
    header = f"{'':<46}{'median ms':>10}{'min':>8}{'max':>8}"
    print(header)
    print("-" * len(header))
    for label, values in (
        ("depin-explorer: first frame (Overview)", firsts),
        ("depin-explorer: cached data on screen", datas),
        ("bare Textual app (Header+DataTable+Footer)", peers),
    ):
        ms = [v * 1000 for v in values]
        print(f"{label:<46}{median(ms):>10.0f}{min(ms):>8.0f}{max(ms):>8.0f}")
    print(f"ratio first frame / bare app: {ratio:.2f}x (budget <= {BUDGET_RATIO}x)")
    print(
        budget_line(
            "first_paint",
            ratio <= BUDGET_RATIO,
            f"{first_ms:.0f}ms",
            f"{BUDGET_RATIO}x",
            f"{peer_ms:.0f}ms",
            f"{ratio:.2f}x",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
