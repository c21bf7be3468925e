"""Issue 5 acceptance: io.net device bodies served on loopback reach the cache, the export and the
Node screen with the served values (``[sources.ionet] base_url`` pointed at the server)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from textual.widgets import Static

from cache.db import open_reader
from cache.rewards import latest_devices
from explorer.cli import cli
from screens.node import NodeScreen
from sources.models import NodeSample, Reading
from tests.support.loopback import LoopbackServer, Reply
from tests.support.ui import settle
from tests.ui.appkit import store

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DEVICE = "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17"


def body(name: str, **changes: object) -> Reply:
    data = json.loads((FIXTURES / name).read_text()) | changes
    return Reply(body=json.dumps(data).encode())


def token() -> str:
    claims = json.dumps({"exp": int((datetime.now(UTC) + timedelta(days=10)).timestamp())})
    payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2lnbmF0dXJl"


def routes() -> tuple[dict[str, list[Reply]], dict[str, float]]:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    blocks = [hour - timedelta(hours=h) for h in (0, 1, 2, 3)]
    ids = [b.strftime("%Y-%m-%dT%H:%M:%S") for b in blocks]
    listing = {
        "total_blocks": 9000,
        "blocks": [
            {"block_id": ids[0], "status": "In Progress"},
            *({"block_id": i, "status": "Completed"} for i in ids[1:]),
        ],
    }
    paid = {ids[1]: 0.2417, ids[2]: 0.5}  # ids[3]: a 404, the device was not in that block
    today = hour.date()
    week = f"{today - timedelta(days=6)}/{today}"
    table: dict[str, list[Reply]] = {
        "/v1/io-blocks/blocks/all/1": [Reply(body=json.dumps(listing).encode())],
        f"/v1/io-explorer/devices/{DEVICE}/summary": [
            body("ionet_device-summary-live.written.json")
        ],
        f"/v1/io-explorer/devices/{DEVICE}/details": [
            body("ionet_device-details-live.written.json")
        ],
        f"/v1/io-blocks/devices/{DEVICE}/block-rewards-summary/{week}": [
            body("ionet_block-rewards-summary.written.json")
        ],
    }
    for block_id, amount in paid.items():
        table[f"/v1/io-blocks/blocks/{block_id}/workers/{DEVICE}"] = [
            body("ionet_block-worker-live.written.json", block_id=block_id, rewarded=amount)
        ]
    table[f"/v1/io-blocks/blocks/{ids[3]}/workers/{DEVICE}"] = [
        Reply(404, b"Not found", {"content-type": "text/plain"})
    ]
    return table, paid


def test_served_device_values_reach_export_and_node_screen(tmp_path: Path) -> None:
    table, paid = routes()
    db = tmp_path / "cache.db"
    secret = token()
    with LoopbackServer(table) as server:
        config = tmp_path / "config.toml"
        config.write_text(
            "[sources.coingecko]\nenabled = false\n[sources.akash]\nenabled = false\n"
            "[sources.filecoin]\nenabled = false\n[sources.helium]\nenabled = false\n"
            f'[sources.ionet]\nbase_url = "{server.url}"\n'
            "[fleet.local]\nenabled = false\n"
            '[[fleet.targets]]\nname = "rig-07"\nurl = "http://127.0.0.1:9/metrics"\n'
            f'labels = {{ network = "io.net", device_id = "{DEVICE}" }}\n'
        )
        runner = CliRunner()
        args = ["--config", str(config), "--db", str(db)]
        result = runner.invoke(
            cli, [*args, "poll", "--once", "--only", "ionet-devices"], env={"IONET_TOKEN": secret}
        )
        assert result.exit_code == 0, result.output
        assert secret not in result.output
        device_calls = [h for p, h in server.requests if "/devices/" in p or "/workers/" in p]
        assert device_calls and all(
            {k.lower(): v for k, v in h.items()}.get("token") == secret for h in device_calls
        )
        exported = runner.invoke(cli, [*args, "export", "rewards"])
    assert exported.exit_code == 0, exported.output
    rewards = json.loads(exported.output)
    earned = {r["at"][:19]: r["amount"] for r in rewards}
    assert {k: v for k, v in earned.items() if v} == paid
    assert len(rewards) == 3 and all(r["node"] == "rig-07" for r in rewards)
    [device] = latest_devices(open_reader(db))
    summary = json.loads((FIXTURES / "ionet_device-summary-live.written.json").read_text())["data"]
    assert device.get("earnings_total") == float(summary["total_earnings_io_coin"])
    assert device.get("status") == summary["status"]

    # the Node screen of the labelled node shows the same served values
    from tests.ui.appkit import make_app

    now = datetime.now(UTC)
    store(
        db,
        "fleet",
        now,
        Reading(
            nodes=[
                NodeSample(
                    node="rig-07",
                    source_kind="exporter",
                    network="io.net",
                    labels={"network": "io.net", "device_id": DEVICE},
                    up=True,
                    cpu_pct=10.0,
                )
            ]
        ),
    )
    app = make_app(tmp_path)
    app.clock = lambda: datetime.now(UTC)

    async def node_screen() -> str:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("4")
            await settle(pilot)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, NodeScreen)
            return str(app.screen.query_one("#node-ionet", Static).render())

    shown = asyncio.run(node_screen())  # the CLI above runs its own event loop: this test is sync
    assert "  up  uptime 96%" in shown
    assert "earned 402.88 IO to date" in shown  # served "402.8815"
    assert f"{sum(paid.values()):,.4f} IO in 2 of 3 blocks" in shown
