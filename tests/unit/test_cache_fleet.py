"""Fleet samples in the cache: latest per (source, node), down nodes keep their history,
counters for rates across runs, the export contract."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cache.db import open_reader, open_writer
from cache.export import FLEET_KEYS, fleet_records, to_csv, to_json
from cache.queries import latest_fleet, previous_counters
from cache.store import PollRecord, write_poll
from sources.models import NodeSample, Reading

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def node(name: str, up: bool = True, kind: str = "exporter", **values) -> NodeSample:
    return NodeSample(
        node=name,
        source_kind=kind,
        up=up,
        network="io.net",
        labels={"network": "io.net", "device_id": "d-1"},
        **values,
    )


def put(db: Path, at: datetime, *nodes: NodeSample, source: str = "fleet") -> int:
    conn = open_writer(db)
    try:
        return write_poll(conn, PollRecord(source, at, at, Reading(nodes=list(nodes))))
    finally:
        conn.close()


def test_latest_sample_per_node_and_down_keeps_history(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(
        db,
        T0,
        node("a", cpu_pct=10.0, mem_pct=50.0, counters={"at": 1.0, "cpu_total_s": 9.0}),
        node("b", cpu_pct=20.0),
    )
    put(
        db,
        T0 + timedelta(seconds=15),
        node("a", up=False, error="connect: refused"),
        node("b", cpu_pct=25.0),
    )
    conn = open_reader(db)
    rows = {r.node: r for r in latest_fleet(conn)}
    assert rows["a"].up is False and rows["a"].values["cpu_pct"] is None
    assert rows["a"].error == "connect: refused"
    assert rows["b"].values["cpu_pct"] == 25.0
    assert rows["a"].labels == {"device_id": "d-1", "network": "io.net"}
    earlier = {r.node: r for r in latest_fleet(conn, at=T0 + timedelta(seconds=5))}
    assert earlier["a"].up and earlier["a"].values["cpu_pct"] == 10.0
    count = conn.execute("SELECT COUNT(*) FROM node_samples WHERE node = 'a'").fetchone()[0]
    assert count == 2  # history is never lost when a node goes down
    # counters survive the down sample: the next good scrape still gets a rate
    assert previous_counters(conn, "exporter") == {"a": {"at": 1.0, "cpu_total_s": 9.0}}


def test_same_node_from_two_source_kinds_is_two_rows(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, T0, node("host:9100", cpu_pct=5.0))
    put(db, T0, node("host:9100", kind="promql", cpu_pct=6.0), source="promql")
    conn = open_reader(db)
    assert [(r.source_kind, r.values["cpu_pct"]) for r in latest_fleet(conn)] == [
        ("exporter", 5.0),
        ("promql", 6.0),
    ]


def test_fleet_export_keys_nulls_and_booleans(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(
        db,
        T0,
        node(
            "a",
            cpu_pct=12.5,
            mem_pct=40.0,
            disk_pct=math.nan,
            load1=0.5,
            uptime_s=3600.0,
            gpus=None,
        ),
    )
    conn = open_reader(db)
    records = fleet_records(latest_fleet(conn))
    assert list(records[0]) == list(FLEET_KEYS)
    assert records[0]["up"] is True and records[0]["source"] == "exporter"
    assert records[0]["disk_pct"] is None  # NaN never stored as a number
    assert records[0]["gpus"] is None and records[0]["gpu_util_pct"] is None
    assert records[0]["uptime_s"] == 3600 and records[0]["fetched_at"].endswith("Z")
    assert json.loads(to_json(records))[0]["cpu_pct"] == 12.5
    assert to_csv(records, FLEET_KEYS).splitlines()[0] == ",".join(FLEET_KEYS)


def test_storing_a_1000_node_poll_is_one_transaction(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    nodes = [node(f"n{i:04}", cpu_pct=float(i % 100), counters={"at": 1.0}) for i in range(1000)]
    poll_id = put(db, T0, *nodes)
    conn = open_reader(db)
    assert conn.execute("SELECT items FROM polls WHERE id = ?", (poll_id,)).fetchone()[0] == 1000
    assert len(latest_fleet(conn)) == 1000


def test_fleet_rows_live_and_as_of_agree_with_latest_fleet(tmp_path: Path) -> None:
    from cache.fleet import FLEET_FIGURES, fleet_rows, node_row

    db = tmp_path / "c.db"
    odd = NodeSample(
        node="b-odd",
        source_kind="promql",
        up=True,
        labels={'we"ird.key': "x", "rack": "7"},
        cpu_pct=3.0,
    )
    put(db, T0, node("c", cpu_pct=10.0), odd)
    put(
        db,
        T0 + timedelta(seconds=15),
        node("a", up=False, error="refused"),
        node("c", cpu_pct=20.0),
    )
    conn = open_reader(db)
    live = fleet_rows(conn)
    live_rows = list(live.rows)
    assert [r[0] for r in live_rows] == ["a", "b-odd", "c"]  # node order, no sort step needed
    assert live.label_keys == ["device_id", "network", "rack", 'we"ird.key']
    by_node = {r[0]: r for r in live_rows}
    full = {n.node: n for n in latest_fleet(conn)}
    for name, row in by_node.items():
        assert row[3] == full[name].up
        assert list(row[4 : 4 + len(FLEET_FIGURES)]) == [
            full[name].values[f] for f in FLEET_FIGURES
        ]
    earlier = {r[0]: r for r in fleet_rows(conn, at=T0 + timedelta(seconds=5)).rows}
    assert set(earlier) == {"b-odd", "c"} and earlier["c"][4] == 10.0
    quoted = {r[0]: r[-1] for r in fleet_rows(conn, label='we"ird.key').rows}
    assert quoted == {"a": None, "b-odd": "x", "c": None}
    assert {r[0]: r[-1] for r in fleet_rows(conn, label="rack").rows}["b-odd"] == "7"
    one = node_row(conn, "a", "exporter")
    assert one is not None and one.up is False and one.error == "refused"
    assert node_row(conn, "a", "exporter", at=T0 + timedelta(seconds=5)) is None
    assert node_row(conn, "nope", "exporter") is None
    whole = {r[0]: r[4] for r in fleet_rows(conn, whole=True).rows}
    assert whole["c"] == 20 and type(whole["c"]) is int  # what the table shows, as a small int


def test_the_writer_keeps_every_label_key_and_an_older_file_finds_them(tmp_path: Path) -> None:
    import sqlite3

    from cache.fleet import fleet_rows

    db = tmp_path / "c.db"
    put(db, T0, node("a"))
    put(
        db,
        T0 + timedelta(seconds=15),
        NodeSample(node="b", source_kind="promql", up=True, labels={"rack": "7", "zone": "z"}),
    )
    conn = open_reader(db)
    keys = fleet_rows(conn).label_keys
    conn.close()
    # the union over every poll: the first poll's keys stay after a poll without them
    assert keys == ["device_id", "network", "rack", "zone"]
    raw = sqlite3.connect(db)
    with raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'label_keys'").fetchone() == (
            json.dumps(keys),
        )
        raw.execute("DELETE FROM meta WHERE key = 'label_keys'")
    raw.close()
    conn = open_reader(db)
    assert fleet_rows(conn).label_keys == keys  # found in the nodes' labels themselves
    conn.close()
