"""The ``status_disagrees`` alert: fires once the two views differ for ``for``, resolves once
they agree for ``resolve_after``; an unknown state (a side too old, nothing published) neither
fires nor resolves. Polls of both views are written through the real writer, with their times.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cache.alert_rules import Rule, status_disagrees
from cache.alerts import evaluate, firing
from cache.db import open_writer
from cache.store import PollRecord, write_poll
from explorer.alert_config import AlertsConfig
from sources.models import DeviceStatus, NodeSample, Reading

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DEVICE = "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17"
PROVIDER = "akash1hcu596l97rqkcllcwundclhgkvurld6grecjgy"
RULE = Rule("net", "status_disagrees", "warning", for_s=60, resolve_after_s=60)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_writer(tmp_path / "cache.db")
    yield connection
    connection.close()


def fleet(conn: sqlite3.Connection, at: datetime, up: bool, name: str = "gpu-01") -> int:
    labels = {"device_id": DEVICE} if name == "gpu-01" else {"provider": PROVIDER}
    sample = NodeSample(node=name, source_kind="exporter", up=up, labels=labels)
    return write_poll(conn, PollRecord("fleet", at, at, Reading(nodes=[sample])))


def network(conn: sqlite3.Connection, at: datetime, status: str | None) -> int:
    device = DeviceStatus(network="io.net", device_id=DEVICE, node="gpu-01", status=status)
    return write_poll(conn, PollRecord("ionet-devices", at, at, Reading(devices=[device])))


def run(conn: sqlite3.Connection, poll_id: int, at: datetime) -> list[tuple[str, str]]:
    return [(a.state, a.subject) for a in evaluate(conn, [RULE], poll_id, at)]


def test_fires_after_for_and_resolves_after_resolve_after(conn: sqlite3.Connection) -> None:
    transitions: list[tuple[int, tuple[str, str]]] = []
    # the device summary says up throughout; our exporter answers, then stops, then answers
    ours = [True, True, False, False, False, False, False, True, True, True, True, True]
    network(conn, T0, "up")
    for i, up in enumerate(ours):
        at = T0 + timedelta(seconds=20 * (i + 1))
        transitions += [(i, t) for t in run(conn, fleet(conn, at, up), at)]
        if i % 3 == 2:  # the io.net device poll runs on its own, slower schedule
            transitions += [(i, t) for t in run(conn, network(conn, at, "up"), at)]
    assert [t for _, t in transitions] == [("firing", "gpu-01"), ("resolved", "gpu-01")]
    (fired, _), (resolved, _) = transitions
    assert fired == 5  # down from step 2, 60 s later (steps are 20 s apart)
    assert resolved == 10  # agreeing again from step 7, 60 s later
    alert = next(a for a in firing(conn, T0 + timedelta(seconds=20 * 6)))
    assert alert.rule == "net" and alert.subject == "gpu-01" and alert.value is None
    assert alert.message == "gpu-01: io.net says up, our poll says down"
    assert firing(conn) == []


def test_network_says_down_while_we_see_up(conn: sqlite3.Connection) -> None:
    fleet(conn, T0, True)
    first = run(conn, network(conn, T0, "down"), T0)
    later = T0 + timedelta(seconds=90)
    fleet(conn, later, True)
    second = run(conn, network(conn, later, "down"), later)
    assert first == [] and second == [("firing", "gpu-01")]
    (alert,) = firing(conn)
    assert alert.message == "gpu-01: io.net says down, our poll says up"


def test_unknown_neither_fires_nor_resolves(conn: sqlite3.Connection) -> None:
    fleet(conn, T0, False)
    run(conn, network(conn, T0, "up"), T0)
    # the summary stops publishing a status: the newest readable one (up, at T0) still counts
    at = T0 + timedelta(seconds=70)
    fleet(conn, at, False)
    assert run(conn, network(conn, at, None), at) == [("firing", "gpu-01")]
    # then that reading grows older than 30 min: unknown, so the alert stays as it is
    late = T0 + timedelta(minutes=31)
    poll_id = fleet(conn, late, True)
    assert status_disagrees(conn, RULE, poll_id, late) == []
    assert run(conn, poll_id, late) == [] and len(firing(conn)) == 1


def test_nodes_without_a_network_view_and_other_polls_are_not_observed(
    conn: sqlite3.Connection,
) -> None:
    plain = NodeSample(node="plain", source_kind="exporter", up=False)
    poll_id = write_poll(conn, PollRecord("fleet", T0, T0, Reading(nodes=[plain])))
    assert status_disagrees(conn, RULE, poll_id, T0) == []
    other = write_poll(conn, PollRecord("coingecko", T0, T0, Reading()))
    assert status_disagrees(conn, RULE, other, T0) == []


def test_akash_provider_and_subjects(conn: sqlite3.Connection) -> None:
    fleet(conn, T0, True, name="k8s-1")
    provider = DeviceStatus(network="akash", device_id=PROVIDER, node="k8s-1", status="down")
    poll_id = write_poll(conn, PollRecord("akash-providers", T0, T0, Reading(devices=[provider])))
    (seen,) = status_disagrees(conn, RULE, poll_id, T0)
    assert seen.subject == "k8s-1" and seen.breached
    assert seen.message == "k8s-1: akash says down, our poll says up"
    only_other = Rule("net", "status_disagrees", subjects=("gpu-01",))
    assert status_disagrees(conn, only_other, poll_id, T0) == []


def test_config_kind_defaults_and_stray_keys() -> None:
    config = AlertsConfig.model_validate({"rules": [{"kind": "status_disagrees"}]})
    (rule,) = config.rules_for_cache()
    assert rule.kind == "status_disagrees" and rule.name == "status_disagrees"
    assert rule.for_s == 900 and rule.resolve_after_s == 900
    config = AlertsConfig.model_validate(
        {"rules": [{"kind": "status_disagrees", "for": "2m", "resolve_after": "30s"}]}
    )
    assert config.rules_for_cache()[0].for_s == 120
    assert config.rules_for_cache()[0].resolve_after_s == 30
    with pytest.raises(ValueError, match="celsius"):
        AlertsConfig.model_validate({"rules": [{"kind": "status_disagrees", "celsius": 80}]})
