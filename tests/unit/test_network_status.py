"""Our view of each node against the network's: every state, "too old", timelines, time travel.

Histories are written here through the real writer (``write_poll``): fleet polls of nodes
labelled with an io.net ``device_id`` or an Akash ``provider``, and device polls of the
``ionet-devices`` and ``akash-providers`` sources.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cache.db import open_reader, open_writer
from cache.network_status import (
    AGREES,
    EXPORT_STATES,
    NET_DOWN,
    NET_UP,
    UNKNOWN,
    Limits,
    classify,
    network_limit,
    network_views,
    node_statuses,
    status_timelines,
    status_up,
)
from cache.store import PollRecord, write_poll
from sources.models import DeviceStatus, ErrorKind, NodeSample, Reading, SourceError

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
D1, D2, D3, D4, D5 = (f"{n}{n}{n}{n}{n}{n}{n}{n}-0000-4000-8000-000000000000" for n in "12345")
PROVIDER = "akash1hcu596l97rqkcllcwundclhgkvurld6grecjgy"


def sample(name: str, up: bool, **labels: str) -> NodeSample:
    return NodeSample(node=name, source_kind="exporter", up=up, network="io.net", labels=labels)


def device(device_id: str, node: str | None, status: str | None, network: str = "io.net"):
    return DeviceStatus(network=network, device_id=device_id, node=node, status=status)


def put(db: Path, source: str, at: datetime, reading: Reading) -> int:
    conn = open_writer(db)
    try:
        return write_poll(conn, PollRecord(source, at, at, reading))
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("ours", "ours_age", "net", "net_age", "state"),
    [
        (True, 10, True, 60, AGREES),
        (False, 10, False, 60, AGREES),
        (True, 10, False, 60, NET_DOWN),
        (False, 10, True, 60, NET_UP),
        (None, None, True, 60, UNKNOWN),  # we have no sample
        (True, 10, None, 60, UNKNOWN),  # the network published no status we can read
        (True, 10, None, None, UNKNOWN),  # no network reading at all
        (True, 301, True, 60, UNKNOWN),  # ours too old
        (False, 10, True, 1801, UNKNOWN),  # the network's too old
        (True, 300, False, 1800, NET_DOWN),  # at the limits exactly: still compared
    ],
)
def test_each_state(
    ours: bool | None, ours_age: float | None, net: bool | None, net_age: float | None, state: str
) -> None:
    assert classify(ours, ours_age, net, net_age, Limits(300, 1800)) == state
    assert state in EXPORT_STATES


def test_published_words_and_the_network_limit() -> None:
    assert status_up("up") is True and status_up(" Down ") is False
    assert status_up("offline") is False and status_up("online") is True
    assert status_up("degraded") is None and status_up(None) is None and status_up(1) is None
    assert network_limit(300) == 600 and network_limit(30) == 600 and network_limit(3600) == 7200


def history(db: Path) -> None:
    """Six nodes, one io.net device poll, one older one, one Akash provider poll."""
    put(
        db,
        "ionet-devices",
        T0 - timedelta(minutes=20),
        Reading(devices=[device(D4, "d-fallback", "up")]),
    )
    put(
        db,
        "fleet",
        T0,
        Reading(
            nodes=[
                sample("a-agrees", True, device_id=D1),
                sample("b-netdown", True, device_id=D2),
                sample("c-netup", False, device_id=D3),
                sample("d-fallback", True, device_id=D4),
                sample("e-unlabelled", False),
                sample("k8s-1", True, provider=PROVIDER),
                sample("k8s-2", False, provider=PROVIDER),
            ]
        ),
    )
    put(
        db,
        "ionet-devices",
        T0 + timedelta(seconds=30),
        Reading(
            devices=[
                device(D1, "a-agrees", "up"),
                device(D2, "b-netdown", "down"),
                device(D3, "c-netup", "up"),
                device(D4, "d-fallback", None),  # the summary failed this poll
                device(D5, None, "up"),  # configured on its own: no node
            ]
        ),
    )
    put(
        db,
        "akash-providers",
        T0 + timedelta(seconds=40),
        Reading(devices=[device(PROVIDER, "k8s-1", "up", network="akash")]),
    )


def test_states_on_a_written_history(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    history(db)
    conn = open_reader(db)
    now = T0 + timedelta(minutes=1)
    got = node_statuses(conn, now)
    assert {n: s.state for n, s in got.items()} == {
        "a-agrees": AGREES,
        "b-netdown": NET_DOWN,
        "c-netup": NET_UP,
        "d-fallback": AGREES,  # the older summary said up, 21 minutes ago: within 30 min
        "k8s-1": AGREES,  # every node labelled with the provider shares its state
        "k8s-2": NET_UP,
    }
    assert "e-unlabelled" not in got  # the network says nothing about it: no state at all
    fallback = got["d-fallback"]
    assert fallback.net is not None and fallback.net.at == T0 - timedelta(minutes=20)
    assert fallback.ages(now) == (60.0, 21 * 60.0)
    assert got["k8s-2"].net is not None and got["k8s-2"].net.network == "akash"
    assert got["k8s-2"].net.device_id == PROVIDER and got["k8s-2"].net.source == "akash-providers"
    # the fallback reading grows too old for a tighter limit; ours for a tighter one of ours
    tight = node_statuses(conn, now, limits=Limits(300, 600))
    assert tight["d-fallback"].state == UNKNOWN and tight["b-netdown"].state == NET_DOWN
    assert node_statuses(conn, now, limits=Limits(30, 1800))["b-netdown"].state == UNKNOWN
    assert set(node_statuses(conn, now, nodes=["c-netup", "e-unlabelled"])) == {"c-netup"}


def test_as_of_an_earlier_moment(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    history(db)
    conn = open_reader(db)
    # before the second io.net poll and the Akash poll: only the old reading of D4 exists
    at = T0 + timedelta(seconds=10)
    views = network_views(conn, at)
    assert set(views) == {"d-fallback"}
    assert node_statuses(conn, at, at)["d-fallback"].state == AGREES
    assert network_views(conn, T0 - timedelta(hours=1)) == {}


def test_failed_network_poll_keeps_the_last_good_one(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    history(db)
    conn = open_writer(db)
    at = T0 + timedelta(minutes=2)
    failure = SourceError(ErrorKind.CONNECT, "connect: refused")
    write_poll(conn, PollRecord("ionet-devices", at, at, None, error=failure))
    conn.close()
    views = network_views(open_reader(db))
    assert views["b-netdown"].up is False and views["b-netdown"].at == T0 + timedelta(seconds=30)


def test_timelines_side_by_side(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    ours = [True, True, False, False, True]
    net = ["up", "up", "up", None, "down"]
    for i, (up, status) in enumerate(zip(ours, net, strict=True)):
        at = T0 + timedelta(minutes=i)
        put(db, "fleet", at, Reading(nodes=[sample("gpu-01", up, device_id=D1)]))
        put(
            db,
            "ionet-devices",
            at + timedelta(seconds=20),
            Reading(devices=[device(D1, "gpu-01", status)]),
        )
    conn = open_reader(db)
    whole = status_timelines(conn, "gpu-01", T0, T0 + timedelta(minutes=10))
    assert whole.ours == [(T0 + timedelta(minutes=i), up) for i, up in enumerate(ours)]
    assert whole.network == [
        (T0 + timedelta(minutes=i, seconds=20), {"up": True, "down": False}.get(s or ""))
        for i, s in enumerate(net)
    ]
    assert whole.network_name == "io.net" and whole.source_kind == "exporter"
    end = T0 + timedelta(minutes=3, seconds=30)
    part = status_timelines(conn, "gpu-01", T0 + timedelta(minutes=2), end)
    assert [up for _, up in part.ours] == [False, False]
    assert [up for _, up in part.network] == [True, None]
    assert status_timelines(conn, "nobody", T0, T0 + timedelta(hours=1)).ours == []


def test_timeline_of_a_node_without_a_network_label(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, "fleet", T0, Reading(nodes=[sample("plain", True)]))
    lines = status_timelines(open_reader(db), "plain", T0, T0 + timedelta(minutes=1))
    assert lines.ours == [(T0, True)]
    assert lines.network == [] and lines.network_name is None


def test_export_fleet_carries_the_network_view(tmp_path: Path) -> None:
    from cache.export import FLEET_KEYS, NET_KEYS, fleet_export, to_csv

    db = tmp_path / "c.db"
    history(db)
    at = T0 + timedelta(minutes=1)
    records = {(r["node"], r["source"]): r for r in fleet_export(open_reader(db), at)}
    assert all(list(r) == list(FLEET_KEYS) for r in records.values())
    down = records[("b-netdown", "exporter")]
    assert down["net_status"] == "network_down" and down["net_up"] is False
    assert down["net_network"] == "io.net" and down["net_device"] == D2
    assert down["net_fetched_at"] == "2026-11-26T12:00:30.000Z"
    assert records[("c-netup", "exporter")]["net_status"] == "network_up"
    assert records[("k8s-1", "exporter")]["net_network"] == "akash"
    plain = records[("e-unlabelled", "exporter")]
    assert all(plain[k] is None for k in NET_KEYS)  # no network reports on it: null, not "unknown"
    assert to_csv(records.values(), FLEET_KEYS).splitlines()[0].endswith(",".join(NET_KEYS))
