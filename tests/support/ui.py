"""Shared helpers of the UI tests: Pilot waits, terminal sizes, key scripts, the deferred app,
a real pty, and a bare FleetTable app; imported by tests in several directories."""

from __future__ import annotations

import fcntl
import os
import pty
import random
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.strip import Strip

from explorer.app import DepinExplorerApp
from explorer.setup import default_setup, load_setup, read_toml, start_screen
from screens.widgets.fleet_table import Column, FleetTable, number_cell
from screens.widgets.status_line import StatusLine
from tests.ui.appkit import NOW, frozen, store_live, store_sample

ROOT = Path(__file__).resolve().parents[2]
SIZES = [(80, 24), (120, 40)]
"""The terminal sizes every screen is checked at: the smallest supported, and a common one."""


# -- Pilot ---------------------------------------------------------------------------------------
async def settle(pilot: Pilot[None]) -> None:
    """Let cache reads finish (the poller worker runs until the app exits)."""
    for _ in range(4):
        readers = [w for w in pilot.app.workers if w.group != "poller"]
        if readers:  # an empty list would mean "every worker", the poller included
            await pilot.app.workers.wait_for_complete(readers)
        await pilot.pause()


def status(app: App[None]) -> str:
    """The current screen's status line as plain text."""
    return str(app.screen.query_one(StatusLine).render())


def keys(*presses: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    """A snapshot's ``run_before``: settle, then each key press followed by a settle."""

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        for key in presses:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def live_cache(tmp_path: Path) -> None:
    """A cache with an old sample and two live rankings polls, the newest 40 s old."""
    db = tmp_path / "cache.db"
    store_sample(db, at=NOW - timedelta(days=1))
    store_live(db, at=NOW - timedelta(minutes=3))
    store_live(db, at=NOW - timedelta(seconds=40))


def deferred_app(tmp_path: Path, config_text: str) -> DepinExplorerApp:
    """The app as the command builds it: config validated after the first frame."""
    path = tmp_path / "config.toml"
    path.write_text(config_text)
    db = tmp_path / "cache.db"
    return DepinExplorerApp.deferred(
        lambda: load_setup(path, required=True, db=db, log_file=tmp_path / "debug.log"),
        lambda: default_setup(path, db),
        start_screen=start_screen(read_toml(path, required=True)),
        offline=True,
        state_path=tmp_path / "state.json",
        clock=frozen,
        poll=False,
    )


# -- a real terminal -----------------------------------------------------------------------------
def run_in_pty(
    args: list[str],
    keys: list[tuple[float, bytes]],
    env: dict[str, str],
    size: tuple[int, int] = (120, 40),
    limit: float = 25.0,
    program: Sequence[str] | None = None,
    cwd: Path = ROOT,
) -> tuple[bytes, int]:
    """Run ``python -m explorer ARGS`` (or ``PROGRAM ARGS``, e.g. an installed console script)
    in a pty in ``cwd``; send each key after its delay; return all bytes written to the
    terminal and the exit status. Bounded by ``limit`` seconds."""
    argv = [*(program or [sys.executable, "-m", "explorer"]), *args]
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    cols, rows = size
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = bytearray()
    start = time.monotonic()
    pending = list(keys)
    status = None
    try:
        while time.monotonic() - start < limit:
            if pending and time.monotonic() - start >= pending[0][0]:
                os.write(fd, pending.pop(0)[1])
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
                break
    finally:
        if status is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    return bytes(out), os.waitstatus_to_exitcode(status)


# -- a bare FleetTable ---------------------------------------------------------------------------
def cpu_level(value: object) -> str:
    """Warn from 70 %, critical from 90 %."""
    if not isinstance(value, int | float):
        return ""
    return "critical" if value >= 90 else "warn" if value >= 70 else ""


COLUMNS = [
    Column("name", "Node", 12),
    Column("network", "Network", 8),
    Column("status", "Status", 6),
    Column("cpu", "CPU %", 6, "right", number_cell(".1f"), cpu_level),
    Column("power", "Power", 7, "right", number_cell(",.0f", " W")),
    Column("rewards", "Rewards 24h", 11, "right", number_cell(",.2f")),
]


def make_rows(count: int) -> tuple[list[tuple[object, ...]], list[str]]:
    """Deterministic rows: every 7th CPU and every 5th reward missing, three networks."""
    rng = random.Random(5)
    networks = ["io.net", "Akash", "nosana"]
    rows = []
    for i in range(count):
        rows.append(
            (
                f"node-{i:05d}",
                networks[i % 3],
                "down" if i % 11 == 0 else "up",
                None if i % 7 == 0 else round(rng.uniform(0, 100), 1),
                rng.randrange(50, 700),
                None if i % 5 == 0 else round(rng.uniform(0, 40), 2),
            )
        )
    return rows, [f"key-{i}" for i in range(count)]


class CountingTable(FleetTable):
    """Records every line it is asked to render (a repaint spy)."""

    def __init__(self) -> None:
        super().__init__(id="fleet")
        self.rendered: list[int] = []

    def render_line(self, y: int) -> Strip:
        self.rendered.append(y)
        return super().render_line(y)


class TableApp(App[None]):
    """One CountingTable, focused, filled with ``rows``."""

    def __init__(
        self,
        rows: Sequence[Sequence[object]],
        keys: Sequence[str],
        columns: Sequence[Column] = COLUMNS,
    ) -> None:
        super().__init__()
        self.rows, self.keys, self.columns = rows, keys, columns

    def compose(self) -> ComposeResult:
        yield CountingTable()

    def on_mount(self) -> None:
        table = self.query_one(CountingTable)
        table.set_rows(self.columns, self.rows, self.keys)
        table.focus()
