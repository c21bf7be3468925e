"""io.net devices and rewards in the cache: rows per poll, rewards stored once, "as of T" reads,
the fleet's device labels, and the ``export rewards`` contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from cache.db import open_reader, open_writer
from cache.export import REWARDS_KEYS, rewards_records, to_csv
from cache.rewards import (
    fleet_devices,
    known_rewards,
    latest_device,
    latest_devices,
    reward_rows,
    rewards_by_node,
)
from cache.store import PollRecord, write_poll
from explorer.cli import cli
from sources.models import DeviceStatus, NodeSample, Reading, Reward

T0 = datetime(2026, 11, 26, 9, 10, tzinfo=UTC)
DEV = "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17"


def reward(hour: int, amount: float, node: str | None = "rig-07", device: str = DEV) -> Reward:
    block = f"2026-11-26T{hour:02d}:00:00"
    return Reward(
        network="io.net",
        device_id=device,
        node=node,
        at=datetime.fromisoformat(block).replace(tzinfo=UTC),
        amount=amount,
        token="IO",
        source=f"io.net block {block}",
        status="Success",
    )


def put(db: Path, at: datetime, reading: Reading, source: str = "ionet-devices") -> int:
    conn = open_writer(db)
    try:
        return write_poll(conn, PollRecord(source, at, at, reading))
    finally:
        conn.close()


def test_devices_and_rewards_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    status = DeviceStatus(
        network="io.net",
        device_id=DEV,
        node="rig-07",
        name="rig\x1b[31m-07",
        status="up",
        uptime_pct=96.0,
        earnings_total=402.8815,
        earnings_token="IO",
        hardware_quantity=4,
    )
    put(db, T0, Reading(devices=[status], rewards=[reward(7, 0.25), reward(8, 0.5)]))
    later = status.model_copy(update={"status": "down", "uptime_pct": 90.0})
    put(
        db,
        T0 + timedelta(hours=1),
        Reading(devices=[later], rewards=[reward(8, 9.9), reward(9, 1.0)]),
    )
    conn = open_reader(db)
    [row] = latest_devices(conn)
    assert row.get("status") == "down" and row.get("uptime_pct") == 90.0
    assert row.get("hardware_quantity") == 4
    assert "\x1b" not in str(row.get("name"))  # escapes are shown as visible symbols
    [earlier] = latest_devices(conn, at=T0 + timedelta(minutes=5))
    assert earlier.get("status") == "up" and earlier.fetched_at == T0
    rows = reward_rows(conn)
    # block 08:00 was fetched twice: the first amount and fetch time stay (history is not rewritten)
    assert [(r.at.hour, r.amount, r.fetched_at) for r in rows] == [
        (7, 0.25, T0),
        (8, 0.5, T0),
        (9, 1.0, T0 + timedelta(hours=1)),
    ]
    # as of T0 + 5 min, the 09:00 block's reward had not been fetched yet
    assert [r.at.hour for r in reward_rows(conn, at=T0 + timedelta(minutes=5))] == [7, 8]
    assert known_rewards(conn, T0 - timedelta(hours=3)) == {
        (DEV, f"io.net block 2026-11-26T{h:02d}:00:00") for h in (7, 8, 9)
    }


def test_rewards_by_node_sums_a_window_as_of_now(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    old = reward(1, 5.0).model_copy(update={"at": T0 - timedelta(hours=30)})
    put(
        db,
        T0,
        Reading(
            rewards=[old, reward(7, 0.25), reward(8, 0.5), reward(8, 2.0, node=None, device="x")]
        ),
    )
    put(db, T0 + timedelta(hours=1), Reading(rewards=[reward(9, 1.0)]))
    conn = open_reader(db)
    assert rewards_by_node(conn, T0 + timedelta(hours=2)) == {"rig-07": (1.75, "IO")}
    assert rewards_by_node(conn, T0) == {"rig-07": (0.75, "IO")}  # 09:00 not fetched by then
    assert rewards_by_node(conn, T0 + timedelta(days=3)) == {}


def test_fleet_devices_from_node_labels(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    nodes = [
        NodeSample(node="gpu-01", source_kind="exporter", up=True, labels={"device_id": DEV}),
        NodeSample(node="gpu-02", source_kind="exporter", up=True, labels={"network": "akash"}),
        NodeSample(node="gpu-03", source_kind="promql", up=True, labels={"device_id": " "}),
    ]
    put(db, T0, Reading(nodes=nodes), source="fleet")
    assert fleet_devices(open_reader(db)) == {DEV: "gpu-01"}


def test_export_rewards_keys_json_and_csv(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    hostile = reward(7, 0.25, node='=HYPERLINK("x")')
    put(db, T0, Reading(rewards=[hostile, reward(8, 1.0)]))
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(db), "export", "rewards"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [tuple(r) for r in records] == [REWARDS_KEYS] * 2
    explained = dict.fromkeys(REWARDS_KEYS[10:])  # paid: nothing to explain
    assert records[1] == {
        "node": "rig-07",
        "network": "io.net",
        "device_id": DEV,
        "at": "2026-11-26T08:00:00.000Z",
        "amount": 1,
        "token": "IO",
        "source": "io.net block 2026-11-26T08:00:00",
        "fetched_at": "2026-11-26T09:10:00.000Z",
        "status": "Success",
        "missed": False,
        **explained,
    }
    csv_out = runner.invoke(cli, ["--db", str(db), "export", "rewards", "--format", "csv"])
    assert csv_out.exit_code == 0
    lines = csv_out.output.splitlines()
    assert lines[0] == ",".join(REWARDS_KEYS)
    assert lines[1].startswith("\"'=HYPERLINK")  # a formula is neutralised
    assert to_csv(rewards_records([]), REWARDS_KEYS) == ",".join(REWARDS_KEYS) + "\n"


def test_reward_rows_of_one_device(tmp_path: Path) -> None:
    """The Node screen reads its device's rows only (through the primary key), node or not."""
    db = tmp_path / "c.db"
    other = "0f9e8d7c-6b5a-4938-a7b6-c5d4e3f2a1b0"
    rewards = [reward(7, 0.25), reward(8, 0.5, node=None), reward(8, 0.3, "rig-08", other)]
    put(db, T0, Reading(rewards=rewards))
    conn = open_reader(db)
    mine = reward_rows(conn, device=("io.net", DEV))
    assert [(r.at.hour, r.amount) for r in mine] == [(7, 0.25), (8, 0.5)]
    assert reward_rows(conn, device=("akash", DEV)) == []
    since = T0.replace(hour=8, minute=0)
    assert [r.device_id for r in reward_rows(conn, since=since, device=("io.net", other))] == [
        other
    ]


def test_latest_device_of_one_node(tmp_path: Path) -> None:
    """By its device_id label (any poll), else by name in the newest poll; as of T; one network."""
    db = tmp_path / "c.db"
    rig = DeviceStatus(network="io.net", device_id=DEV, node="rig-07", status="up")
    provider = DeviceStatus(network="akash", device_id="akash1abc", node="rig-09", status="up")
    put(db, T0, Reading(devices=[rig, provider]))
    later = rig.model_copy(update={"status": "down"})
    put(db, T0 + timedelta(hours=1), Reading(devices=[later]))
    other = DeviceStatus(network="io.net", device_id="d-2", node="rig-08", status="up")
    put(db, T0 + timedelta(hours=2), Reading(devices=[other]))
    conn = open_reader(db)
    found = latest_device(conn, "io.net", DEV, "rig-07")
    assert found is not None and found.get("status") == "down"  # not in the newest poll
    assert found.fetched_at == T0 + timedelta(hours=1)
    earlier = latest_device(conn, "io.net", DEV, "rig-07", at=T0 + timedelta(minutes=5))
    assert earlier is not None and earlier.get("status") == "up"
    by_name = latest_device(conn, "io.net", None, "rig-08")
    assert by_name is not None and by_name.device_id == "d-2"
    assert latest_device(conn, "io.net", None, "rig-07") is None  # not named in the newest poll
    assert latest_device(conn, "io.net", None, "rig-09") is None  # an Akash provider
    unknown = latest_device(conn, "io.net", "no-such-id", "rig-08")  # a label of no device
    assert unknown is not None and unknown.device_id == "d-2"
    assert latest_device(conn, "io.net", None, "rig-08", at=T0 - timedelta(hours=1)) is None
