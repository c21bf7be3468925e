"""Issue 18's acceptance, from outside: a fleet node labelled with an io.net device id, whose real
node_exporter stops answering while the loopback io.net device summary still says "up".

A real `depin-explorer poll` collector polls both (fleet every second, the io.net devices once at
start: its interval is a minute) and evaluates a `status_disagrees` rule. Stopping the exporter
makes the Fleet show the disagreement (`net↑ we↓`), `alerts --firing` list the rule after its
`for`, and the webhook receive exactly one firing; the exporter back on the same port makes both
views agree again, and the alert resolves exactly once. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cache.network_status import AGREES, NET_UP
from explorer.cli import cli
from screens.fleet import FleetScreen
from screens.widgets.fleet_table import FleetTable
from tests.integration.test_collector import env, wait_for
from tests.integration.test_ionet_devices_loopback import token
from tests.support import prom
from tests.support.loopback import LoopbackServer, PostReceiver, Reply
from tests.support.ui import settle

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEVICE = "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17"
OFF = "".join(
    f"[sources.{n}]\nenabled = false\n"
    for n in ("coingecko", "akash", "filecoin", "helium", "sample")
)


def io_net() -> dict[str, list[Reply]]:
    """The device summary says "up" (the live fields' written body); no completed block."""
    summary = json.loads((FIXTURES / "ionet_device-summary-live.written.json").read_text())
    assert summary["data"]["status"] == "up"
    today = datetime.now(UTC).date()
    week = f"{today - timedelta(days=6)}/{today}"
    return {
        f"/v1/io-blocks/devices/{DEVICE}/block-rewards-summary/{week}": [
            Reply(body=(FIXTURES / "ionet_block-rewards-summary.written.json").read_bytes())
        ],
        "/v1/io-blocks/blocks/all/1": [Reply(body=b'{"total_blocks": 1, "blocks": []}')],
        f"/v1/io-explorer/devices/{DEVICE}/summary": [Reply(body=json.dumps(summary).encode())],
        f"/v1/io-explorer/devices/{DEVICE}/details": [
            Reply(body=(FIXTURES / "ionet_device-details-live.written.json").read_bytes())
        ],
    }


def start_exporter(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    """node_exporter on ``port`` (the same address again after a stop), ready to answer."""
    binary = prom.node_exporter_binary()
    assert binary is not None
    args = [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    args += ["--collector.disable-defaults", *(f"--collector.{c}" for c in prom.CHEAP_COLLECTORS)]
    log = tmp_path / f"node_exporter-{port}-again.log"
    proc = prom._spawn(args, log)
    prom._started(proc, log, lambda: prom._answers(f"http://127.0.0.1:{port}/metrics"), "again")
    return proc


def latest_up(db: Path) -> int | None:
    """Our view of rig-07 in its newest stored sample (None before the first)."""
    if not db.exists():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(
            "SELECT up FROM node_samples WHERE node = 'rig-07' ORDER BY poll_id DESC LIMIT 1"
        ).fetchone()
        devices = conn.execute("SELECT COUNT(*) FROM devices WHERE status = 'up'").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is being created
        return None
    finally:
        conn.close()
    return int(row[0]) if row and devices else None


def firing(db: Path) -> tuple[int, list[dict[str, object]]]:
    result = CliRunner().invoke(cli, ["--db", str(db), "alerts", "--firing", "--format", "json"])
    return result.exit_code, json.loads(result.output) if result.output.strip() else []


def fleet_net(tmp_path: Path) -> str | None:
    """What the Fleet screen of a read-only TUI shows in rig-07's Net column."""
    from tests.ui.appkit import make_app

    app = make_app(tmp_path)  # offline, the same cache file: a reader beside the collector
    app.clock = lambda: datetime.now(UTC)

    async def look() -> str | None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("4")
            await settle(pilot)
            assert isinstance(app.screen, FleetScreen)
            table = app.screen.query_one(FleetTable)
            column = [c.key for c in table.columns].index("net")
            row = table.row_for("rig-07")
            return None if row is None else str(row[column])

    return asyncio.run(look())  # the CLI runs its own event loop: this test is sync


def test_exporter_down_while_io_net_says_up_fires_once_and_resolves_once(tmp_path: Path) -> None:
    prom.require_binaries()
    db = tmp_path / "cache.db"
    exporter, url = prom.start_node_exporter(tmp_path)
    port = int(url.rsplit(":", 1)[1])
    again: subprocess.Popen[bytes] | None = None
    with LoopbackServer(io_net()) as server, PostReceiver() as hook:
        config = tmp_path / "config.toml"
        config.write_text(
            OFF + f'[sources.ionet]\nbase_url = "{server.url}"\ninterval = 3600\n'
            "device_interval = 60\ndevice_timeout = 10\n"
            "[fleet]\ninterval = 1\ntimeout = 0.5\n[fleet.local]\nenabled = false\n"
            f'[[fleet.targets]]\nname = "rig-07"\nurl = "{url}/metrics"\n'
            f'labels = {{ network = "io.net", device_id = "{DEVICE}" }}\n'
            "[retention]\nenabled = false\n"
            f'[alerts.webhook]\nurl = "{hook.url}"\ntimeout = 2\nretries = 2\n'
            '[[alerts.rules]]\nkind = "status_disagrees"\nseverity = "critical"\n'
            'for = "4s"\nresolve_after = "2s"\n'
        )
        collector = subprocess.Popen(
            [sys.executable, "-m", "explorer", "--config", str(config), "--db", str(db), "poll"],
            env={**env(tmp_path), "IONET_TOKEN": token()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(lambda: latest_up(db) == 1, 30)  # both views stored: up and up
            assert fleet_net(tmp_path) == AGREES
            assert firing(db) == (0, []) and hook.bodies() == []

            prom.stop(exporter)  # connection refused from now on; io.net still says up
            wait_for(lambda: latest_up(db) == 0, 15)
            assert firing(db)[0] == 0  # not before its `for`
            assert fleet_net(tmp_path) == NET_UP  # "net↑ we↓"
            wait_for(lambda: len(hook.bodies()) >= 1, 20)
            code, alerts = firing(db)
            assert code == 1 and [a["rule"] for a in alerts] == ["status_disagrees"]
            assert alerts[0]["subject"] == "rig-07"
            assert alerts[0]["message"] == "rig-07: io.net says up, our poll says down"
            time.sleep(3)  # three more polls, still disagreeing: nothing more is sent
            assert len(hook.bodies()) == 1 and firing(db)[0] == 1

            again = start_exporter(tmp_path, port)  # the same address answers again
            wait_for(lambda: len(hook.bodies()) >= 2, 20)
            assert fleet_net(tmp_path) == AGREES
            assert firing(db) == (0, [])
            time.sleep(2)
        finally:
            collector.send_signal(signal.SIGTERM)
            code = collector.wait(timeout=20)
            prom.stop(exporter)
            if again is not None:
                prom.stop(again)
        assert code == 0, collector.stderr.read().decode() if collector.stderr else ""
    fired, resolved = hook.bodies()
    assert fired["state"] == "firing" and resolved["state"] == "resolved"  # type: ignore[index]
    for body in (fired, resolved):
        assert body["rule"] == "status_disagrees" and body["subject"] == "rig-07"  # type: ignore[index]
        assert body["severity"] == "critical"  # type: ignore[index]
    assert fired["started_at"] == resolved["started_at"]  # type: ignore[index]
    assert len(hook.bodies()) == 2
    summaries = [p for p, _ in server.requests if p.endswith("/summary")]
    assert len(summaries) == 1  # one device poll: the network's "up" never changed
