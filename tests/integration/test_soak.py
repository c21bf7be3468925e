"""Soak (issue 9): a real collector polls flaky loopback sources at a fast interval while a
read-only TUI is attached; afterwards the collector's memory is flat, the database is intact,
every successful poll is stored and no failed poll left rows behind.

Bounded: SOAK_SECONDS of polling, loopback only, every loop counted. Memory is compared after a
warm-up (imports, first parses, SQLite page cache), so the bound is about growth, not size.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cache.lock import holder_pid
from explorer.app import DepinExplorerApp
from explorer.config import Config, Secrets
from tests.integration.test_collector import env, integrity
from tests.support.fault_server import (
    Behaviour,
    Drip,
    FaultServer,
    Reply,
    Request,
    captive_portal,
    json_reply,
    rate_limited,
    status_reply,
    truncated_json,
)
from tests.support.ui import settle

SOAK_SECONDS = 120.0
"""How long the collector polls; about two minutes keeps CI fast."""
WARM_UP_SECONDS = 25.0
"""RSS growth is measured from this moment on."""
RSS_GROWTH_BOUND_KIB = 30 * 1024
"""The collector may grow by at most 30 MiB after the warm-up (a leak of one poll's objects per
cycle would pass that within the first minute)."""
NODES = 3

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MARKETS = "/api/v3/coins/markets"
COINS = json.loads((FIXTURES / "coingecko_markets_depin.written.json").read_text())
NODE_BODY = (FIXTURES / "node_exporter_1.5.0_2cpu.prom").read_bytes()
PROM_TYPE = {"content-type": "text/plain; version=0.0.4"}


@dataclass
class Flaky:
    """Each request gets one behaviour, picked at random with the given weights."""

    choices: list[tuple[float, Behaviour]]
    rng: random.Random

    async def __call__(self, request: Request, writer: asyncio.StreamWriter) -> None:
        weights = [w for w, _ in self.choices]
        behaviour = self.rng.choices([b for _, b in self.choices], weights)[0]
        await behaviour(request, writer)


def market_page(rng: random.Random) -> Reply:
    price = round(rng.uniform(1, 100), 2)
    return json_reply([c | {"current_price": price} for c in COINS])


def routes(rng: random.Random) -> dict[str, Flaky]:
    markets = Flaky(
        [
            (6, market_page(rng)),
            (1, rate_limited("1")),
            (1, status_reply(503)),
            (1, status_reply(500)),
            (1, Drip(interval=0.5, max_bytes=20)),  # past the 2 s deadline
            (1, captive_portal()),
            (1, truncated_json()),
        ],
        rng,
    )
    out: dict[str, Flaky] = {MARKETS: markets}
    for n in range(NODES):
        out[f"/node{n}/metrics"] = Flaky(
            [
                (6, Reply(200, NODE_BODY, PROM_TYPE)),
                (1, Reply(200, b"", PROM_TYPE)),  # empty: a failure, never zeros
                (1, Reply(200, NODE_BODY[: len(NODE_BODY) // 2] + b"\nbad line {\n", PROM_TYPE)),
                (1, status_reply(502)),
                (1, Drip(interval=0.3, max_bytes=10, headers=PROM_TYPE)),
            ],
            rng,
        )
    return out


def write_config(tmp_path: Path, url: str) -> Path:
    off = "".join(
        f"[sources.{n}]\nenabled = false\n"
        for n in ("ionet", "akash", "filecoin", "helium", "sample")
    )
    targets = "".join(
        f'[[fleet.targets]]\nname = "node{n}"\nurl = "{url}/node{n}/metrics"\n'
        for n in range(NODES)
    )
    path = tmp_path / "config.toml"
    path.write_text(
        f'[sources.coingecko]\nbase_url = "{url}/api/v3"\ninterval = 1\ntimeout = 2\n{off}'
        f"[fleet]\ninterval = 1\ntimeout = 1\n{targets}[fleet.local]\nenabled = false\n"
        "[retention]\nenabled = false\n"
    )
    return path


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1))  # type: ignore[union-attr]


async def test_soak_collector_with_an_attached_tui(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    log = tmp_path / "collector.log"
    async with FaultServer(routes(random.Random(9))) as server:
        cfg = write_config(tmp_path, server.url)
        collector = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once
            [
                sys.executable,
                "-m",
                "explorer",
                "--config",
                str(cfg),
                "--db",
                str(db),
                "--log-file",
                str(log),
                "poll",
            ],
            env=env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        samples: list[tuple[float, int]] = []
        try:
            for _ in range(400):  # the TUI attaches only once the collector holds the lock
                if holder_pid(db) == collector.pid:
                    break
                await asyncio.sleep(0.05)
            assert holder_pid(db) == collector.pid
            started = time.monotonic()
            app = DepinExplorerApp(
                Config.model_validate({"sources": {"sample": {"enabled": False}}}),
                Secrets(),
                db,
                state_path=tmp_path / "state.json",
                poll=True,
            )
            async with app.run_test(size=(100, 30)) as pilot:
                await settle(pilot)
                assert app.attached_pid == collector.pid and app.poller is None
                first_mark = app._cache_mark
                keys = ["4", "2", "7", "1", "3", "6"]
                step = 0
                while (elapsed := time.monotonic() - started) < SOAK_SECONDS:
                    assert collector.poll() is None, "the collector stopped"
                    samples.append((elapsed, rss_kib(collector.pid)))
                    await pilot.press(keys[step % len(keys)])
                    await settle(pilot)
                    step += 1
                    await asyncio.sleep(2.0)
                assert app.is_running
                assert app._cache_mark > first_mark  # the TUI kept seeing new polls
        finally:
            collector.send_signal(signal.SIGTERM)
            try:
                code = collector.wait(timeout=30)
            except subprocess.TimeoutExpired:
                collector.kill()
                code = collector.wait(timeout=10)
    stderr = collector.stderr.read().decode(errors="replace") if collector.stderr else ""
    assert code == 0, stderr[-2000:]
    assert integrity(db) == "ok"

    baseline = max(kib for t, kib in samples if t <= WARM_UP_SECONDS)
    end = max(kib for t, kib in samples[-5:])
    conn = sqlite3.connect(db)
    try:
        counts = dict(conn.execute("SELECT status, COUNT(*) FROM polls GROUP BY status").fetchall())
        per_source = conn.execute(
            "SELECT source, status, COUNT(*) FROM polls GROUP BY source, status"
        ).fetchall()
        leftovers = {
            table: conn.execute(
                f"SELECT COUNT(*) FROM {table} JOIN polls ON polls.id = {table}.poll_id "
                "WHERE polls.status = 'failed'"
            ).fetchone()[0]
            for table in ("market", "network_stats", "node_samples", "gpu_models")
        }
        empty_ok = conn.execute(
            "SELECT COUNT(*) FROM polls WHERE source = 'coingecko' AND status = 'ok' "
            "AND NOT EXISTS (SELECT 1 FROM market WHERE market.poll_id = polls.id)"
        ).fetchone()[0]
    finally:
        conn.close()
    text = log.read_text(errors="replace")
    logged_ok = len(re.findall(r"INFO explorer\.poller: poll \S+ stored", text))
    logged_failed = len(re.findall(r"WARNING explorer\.poller: poll \S+ failed", text))
    print(
        f"soak: {SOAK_SECONDS:.0f} s, polls {counts}, per source {per_source}, "
        f"logged ok {logged_ok} failed {logged_failed}, "
        f"RSS start {samples[0][1]} KiB, after warm-up {baseline} KiB, end {end} KiB"
    )
    stored_ok = counts.get("ok", 0) + counts.get("partial", 0)
    assert stored_ok > 50 and counts.get("failed", 0) > 10  # it really was flaky
    assert stored_ok == logged_ok  # every successful poll is in the database
    assert counts.get("failed", 0) == logged_failed
    assert leftovers == dict.fromkeys(leftovers, 0)  # failed polls left no rows
    assert empty_ok == 0  # and every stored rankings poll is complete
    assert end - baseline < RSS_GROWTH_BOUND_KIB, (baseline, end, samples)
