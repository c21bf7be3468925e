"""Issue 6: a real `depin-explorer poll` collector on loopback, read-only TUIs beside it, clean
stops on SIGTERM, SIGKILL at random points, and `export --at` between two polls."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from cache.lock import holder_pid
from explorer.app import DepinExplorerApp
from explorer.cli import cli
from explorer.config import Config, Secrets
from screens.rankings import RankingsScreen
from tests.support.loopback import LoopbackServer, Reply
from tests.support.ui import settle, status

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MARKETS = "/api/v3/coins/markets"
OFF = "".join(
    f"[sources.{n}]\nenabled = false\n" for n in ("ionet", "akash", "filecoin", "helium", "sample")
)


def page(price: float) -> bytes:
    coins = json.loads((FIXTURES / "coingecko_markets_depin.written.json").read_text())
    return json.dumps([c | {"current_price": price} for c in coins]).encode()


def config(tmp_path: Path, server: LoopbackServer, interval: float = 1) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[sources.coingecko]\nbase_url = "{server.url}/api/v3"\ninterval = {interval}\n'
        f"timeout = 5\n{OFF}[fleet.local]\nenabled = false\n[retention]\nenabled = false\n"
    )
    return path


def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.endswith("_PROXY")}
    for name in ("CONFIG", "DATA", "STATE"):
        out[f"XDG_{name}_HOME"] = str(tmp_path / f"xdg-{name.lower()}")
    out["PYTHONPATH"] = str(ROOT)
    out.pop("COINGECKO_API_KEY", None)
    return out


def start_collector(tmp_path: Path, cfg: Path, db: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "explorer", "--config", str(cfg), "--db", str(db), "poll"],
        env=env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def polls(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM polls WHERE status = 'ok'").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is being created
        return 0
    finally:
        conn.close()


def wait_for(predicate: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_collector_two_read_only_tuis_and_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    with LoopbackServer({MARKETS: [Reply(200, page(1.5))]}) as server:
        cfg = config(tmp_path, server)
        collector = start_collector(tmp_path, cfg, db)
        try:
            wait_for(lambda: polls(db) >= 2)
            assert holder_pid(db) == collector.pid
            # a second writer is refused with the holder named
            second = CliRunner().invoke(
                cli, ["--config", str(cfg), "--db", str(db), "poll", "--once"]
            )
            assert second.exit_code == 2
            assert f"process {collector.pid} is writing" in second.output

            async def viewers() -> None:
                apps = [
                    DepinExplorerApp(
                        Config.model_validate({"sources": {"sample": {"enabled": False}}}),
                        Secrets(),
                        db,
                        state_path=tmp_path / f"state-{i}.json",
                        poll=True,
                    )
                    for i in range(2)
                ]
                async with (
                    apps[0].run_test(size=(80, 24)) as one,
                    apps[1].run_test(size=(120, 40)) as two,
                ):
                    for pilot in (one, two):
                        await pilot.press("2")
                        await settle(pilot)
                        app = pilot.app
                        assert app.poller is None and app.attached_pid == collector.pid
                        assert f"attached to collector, pid {collector.pid}" in status(app)
                        assert isinstance(app.screen, RankingsScreen)
                        assert {c.price_usd for c in app.screen.shown} == {1.5}
                    marks = [pilot.app._cache_mark for pilot in (one, two)]
                    for _ in range(80):  # bounded: the collector stores a poll every second
                        await asyncio.sleep(0.1)
                        if all(
                            p.app._cache_mark > m for p, m in zip((one, two), marks, strict=True)
                        ):
                            break
                    assert all(
                        p.app._cache_mark > m for p, m in zip((one, two), marks, strict=True)
                    )

            asyncio.run(viewers())
        finally:
            collector.send_signal(signal.SIGTERM)
            code = collector.wait(timeout=20)
    assert code == 0, collector.stderr.read().decode() if collector.stderr else ""
    assert holder_pid(db) is None
    assert integrity(db) == "ok"


KILL_RUNS = 20


def test_sigkill_at_random_points_leaves_an_intact_database(tmp_path: Path) -> None:
    """DB-03: SIGKILL of the collector at a random point, 20 runs: integrity_check ok after each
    run and every stored poll complete (all six coins), the last one included."""
    db = tmp_path / "history.db"
    rng = random.Random(6)
    served = [Reply(200, page(float(n))) for n in range(1, 400)]
    with LoopbackServer({MARKETS: served}) as server:
        cfg = config(tmp_path, server)
        for _ in range(KILL_RUNS):
            collector = start_collector(tmp_path, cfg, db)
            time.sleep(rng.uniform(0.3, 1.6))
            collector.kill()
            collector.wait(timeout=10)
            assert integrity(db) == "ok"
            assert holder_pid(db) is None  # the kernel dropped the lock with the process
            if db.exists() and polls(db):
                conn = sqlite3.connect(db)
                try:
                    sizes = conn.execute(
                        "SELECT COUNT(market.coin_id) FROM polls LEFT JOIN market "
                        "ON market.poll_id = polls.id WHERE polls.status = 'ok' GROUP BY polls.id"
                    ).fetchall()
                finally:
                    conn.close()
                assert {n for (n,) in sizes} == {6}, sizes
    assert polls(db) >= 1
    exported = CliRunner().invoke(cli, ["--db", str(db), "export", "rankings", "--offline"])
    assert exported.exit_code == 0
    rows = json.loads(exported.output)
    assert rows and len({r["price_usd"] for r in rows}) == 1  # one complete poll, not a mix


def test_export_at_a_time_between_two_polls_gives_the_first(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    runner = CliRunner()
    with LoopbackServer({MARKETS: [Reply(200, page(1.0)), Reply(200, page(2.0))]}) as server:
        cfg = config(tmp_path, server)
        args = ["--config", str(cfg), "--db", str(db)]
        assert runner.invoke(cli, [*args, "poll", "--once"]).exit_code == 0
        time.sleep(0.05)
        between = datetime.now(UTC)
        time.sleep(0.05)
        assert runner.invoke(cli, [*args, "poll", "--once"]).exit_code == 0
    at = between.isoformat()
    first = runner.invoke(cli, [*args, "export", "rankings", "--at", at])
    assert first.exit_code == 0, first.output
    assert {r["price_usd"] for r in json.loads(first.output)} == {1.0}
    latest = runner.invoke(cli, [*args, "export", "rankings"])
    assert {r["price_usd"] for r in json.loads(latest.output)} == {2.0}
    relative = runner.invoke(cli, [*args, "export", "rankings", "--at", "-1h"])
    assert relative.exit_code == 0 and json.loads(relative.output) == []
    bad = runner.invoke(cli, [*args, "export", "rankings", "--at", "yesterday-ish"])
    assert bad.exit_code == 2 and "--at" in bad.output


def test_offline_never_writes_a_cache_that_has_rankings(tmp_path: Path) -> None:
    """A colleague's copy: offline browsing never opens it for writing (no migration, no sample,
    no lock). SQLite's own -wal/-shm files for readers are not writes to the history."""
    db = tmp_path / "copy.db"
    with LoopbackServer({MARKETS: [Reply(200, page(3.0))]}) as server:
        cfg = config(tmp_path, server)
        args = ["--config", str(cfg), "--db", str(db), "poll", "--once"]
        assert CliRunner().invoke(cli, args).exit_code == 0
    for extra in ("-wal", "-shm", ".lock"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    before = db.read_bytes()

    async def browse() -> None:
        app = DepinExplorerApp(
            Config(), Secrets(), db, offline=True, state_path=tmp_path / "s.json", poll=True
        )
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await settle(pilot)
            assert {c.price_usd for c in app.screen.shown} == {3.0}
            assert "offline" in status(app)

    asyncio.run(browse())
    assert db.read_bytes() == before
    assert not Path(f"{db}.lock").exists()  # no writer was ever started


def test_backup_of_a_killed_collectors_database_browses_offline(tmp_path: Path) -> None:
    """Issue 6 acceptance: SIGKILL, then `db backup`, then every screen, time travel and the
    diff on the copy, offline (tests cannot reach the internet anyway: conftest)."""
    db = tmp_path / "history.db"
    served = [Reply(200, page(float(n))) for n in range(1, 100)]
    with LoopbackServer({MARKETS: served}) as server:
        cfg = config(tmp_path, server)
        collector = start_collector(tmp_path, cfg, db)
        try:
            wait_for(lambda: polls(db) >= 3)
        finally:
            collector.kill()
            collector.wait(timeout=10)
    copy = tmp_path / "elsewhere" / "copy.db"
    copy.parent.mkdir()
    backup = CliRunner().invoke(cli, ["--db", str(db), "db", "backup", str(copy)])
    assert backup.exit_code == 0, backup.output
    assert integrity(copy) == "ok"

    async def browse() -> None:
        app = DepinExplorerApp(
            Config(), Secrets(), copy, offline=True, state_path=tmp_path / "s.json", poll=True
        )
        async with app.run_test(size=(80, 24)) as pilot:
            for key in "1234567":
                await pilot.press(key)
                await settle(pilot)
                assert "no data yet" not in status(app) or key in "3456"
            await pilot.press("2")
            await settle(pilot)
            newest = {c.price_usd for c in app.screen.shown}
            await pilot.press("comma")  # one poll back
            await settle(pilot)
            assert app.at is not None and "AS OF" in status(app)
            earlier = {c.price_usd for c in app.screen.shown}
            assert len(newest) == len(earlier) == 1 and earlier != newest
            await pilot.press("6")
            await settle(pilot)
            assert "What changed" in str(app.screen.query_one("#history-title").render())

    asyncio.run(browse())
