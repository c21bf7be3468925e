"""Every screen's first view: key press -> that screen's data on the terminal, realistic cache.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/screen_first_view.py [--rounds 5]

Each round starts fresh processes of ``depin-explorer --offline --db realistic.db`` on a real
pseudo-terminal (120x40, TERM=xterm-256color, their own HOME and XDG dirs; see
benchmarks/first_paint.py) and, once the start screen shows cached data, presses one key per
screen and times the key press -> the first frame that holds the screen's marker (taken when
the bytes arrive). Each screen is visited once per process, so every view is its first: its
mount, its cache read (a thread with its own connection) and its first drawing of the data. The
next key is pressed only once the marker is there and the terminal has been quiet for a moment.

The markers, each text that appears only once that screen's cache read has been drawn:

- Overview (1): "Tracked market cap", the totals line drawn from the rankings snapshot. The app
  starts on the Overview, so this one is measured in a second process per round that starts on
  Rankings (``[ui] start_screen = "rankings"``) and presses 1.
- Rankings (2): "Coin coin-", the name cell of the table's rows (the generated coins).
- Networks (3): "Hotspots mobile", Helium's figure row (drawn only when the cache holds it).
- Fleet (4): "node-0001", a row of the fleet table.
- Rewards (5): "last 24 h to", the title's period end, written only with the read's result.
- History (6): "What changed", the title with both ends, drawn only with the changes read.
- Sources (7): "2,000 ms", the latency column of the sources table (every generated poll took
  2 s).
- Alerts (8): "no alerts have fired", the empty table's line once the alerts were read (the
  generated cache has none).
- Node (Fleet, 4 then Enter on the first row): "samples)", a chart heading's sample count
  ("(10,081 samples)"), drawn once the node's history was read.

The table shows medians over the rounds. The budget: the slowest first view at most 2x the
Rankings screen's (the peer: a 250-row table read from one snapshot) and under 500 ms.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import realistic_cache  # noqa: E402
from benchmarks.common import (  # noqa: E402
    APP,
    TERM_SIZE,
    PtyProcess,
    budget_line,
    ensure_bytecode,
    isolated_env,
    median,
)

BUDGET_MS = 500.0
BUDGET_RATIO = 2.0
TIMEOUT_S = 60.0
QUIET_S = 0.5
"""How long the terminal must stay quiet after a marker before the next key is pressed."""
START_MARKER = "Tracked market cap"
RANKINGS_START_MARKER = "Coin coin-"
# (screen, keys, marker) in the order they are visited on an app that starts on the Overview.
VISITS: list[tuple[str, str, str]] = [
    ("rankings", "2", "Coin coin-"),
    ("networks", "3", "Hotspots mobile"),
    ("fleet", "4", "node-0001"),
    ("rewards", "5", "last 24 h to"),
    ("history", "6", "What changed"),
    ("sources", "7", "2,000 ms"),
    ("alerts", "8", "no alerts have fired"),
]
OVERVIEW = ("overview", "1", START_MARKER)
NODE_MARKER = "samples)"
ORDER = ["overview", *(v[0] for v in VISITS), "node"]


def _settle(app: PtyProcess) -> None:
    """Wait until the terminal has had no output for QUIET_S (a screen's last repaints)."""
    deadline = time.monotonic() + 10.0
    seen = app.bytes_out
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if app.bytes_out != seen:
            seen, quiet_since = app.bytes_out, time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_S:
            return


def _visit(app: PtyProcess, keys: str, marker: str) -> float:
    """Seconds from pressing ``keys`` to ``marker`` on the terminal."""
    _settle(app)
    app.forget()
    pressed = time.perf_counter() - app.started
    app.send(keys)
    return app.wait_for(marker, TIMEOUT_S) - pressed


def _config(home: Path, start: str | None) -> list[str]:
    if start is None:
        return []
    path = home / "config.toml"
    path.write_text(f'[ui]\nstart_screen = "{start}"\n')
    return ["--config", str(path)]


def one_round(db: Path, home: Path) -> dict[str, float]:
    """One fresh process visiting every screen, one more for the Overview: seconds per screen."""
    out: dict[str, float] = {}
    argv = [*APP, "--offline", "--db", str(db)]
    env = isolated_env(home / "all")
    with PtyProcess(argv + _config(home / "all", None), env) as app:
        app.wait_for(START_MARKER, TIMEOUT_S)
        for screen, keys, marker in VISITS:
            out[screen] = _visit(app, keys, marker)
        _settle(app)
        app.send("4")  # back to Fleet (seen already), its first row under the cursor
        out["node"] = _visit(app, "\r", NODE_MARKER)
    env = isolated_env(home / "overview")
    with PtyProcess(argv + _config(home / "overview", "rankings"), env) as app:
        app.wait_for(RANKINGS_START_MARKER, TIMEOUT_S)
        out["overview"] = _visit(app, OVERVIEW[1], OVERVIEW[2])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ensure_bytecode()
    info = realistic_cache.ensure()
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="depin-bench-") as tmp:
        home = Path(tmp)
        one_round(info.path, home / "warm")  # page cache and .pyc files warm
        for number in range(args.rounds):
            rounds.append(one_round(info.path, home / f"round-{number}"))
    medians = {s: median([r[s] * 1000 for r in rounds]) for s in ORDER}
    print(
        f"screen first view (key press -> data drawn) in a real pty {TERM_SIZE[0]}x"
        f"{TERM_SIZE[1]}, offline, {args.rounds} rounds (a fresh process each), medians; "
        f"cache {info.path.stat().st_size / 2**30:.1f} GiB"
    )
    header = f"{'screen':<12}{'median ms':>10}{'min':>8}{'max':>8}"
    print(header)
    print("-" * len(header))
    for screen in ORDER:
        ms = [r[screen] * 1000 for r in rounds]
        print(f"{screen:<12}{medians[screen]:>10.0f}{min(ms):>8.0f}{max(ms):>8.0f}")
    slowest = max(ORDER, key=lambda s: medians[s])
    peer = medians["rankings"]
    ratio = medians[slowest] / peer
    passed = medians[slowest] <= BUDGET_RATIO * peer and medians[slowest] < BUDGET_MS
    print(f"slowest: {slowest} {medians[slowest]:.0f} ms, {ratio:.2f}x Rankings")
    print(
        budget_line(
            "screen_first_view",
            passed,
            f"{medians[slowest]:.0f}ms",
            f"{BUDGET_MS:.0f}ms,{BUDGET_RATIO:.0f}x-rankings",
            "rankings",
            f"{ratio:.2f}",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
