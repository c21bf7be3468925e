"""Alert rules on hand-made polls, and the hysteresis with an injected clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cache.alert_rules import Rule
from cache.alerts import ALERT_KEYS, evaluate, firing, history
from cache.db import open_writer
from cache.store import PollRecord, write_poll
from sources.models import (
    ErrorKind,
    MarketCoin,
    NetworkMetric,
    NodeSample,
    Reading,
    SourceError,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_writer(tmp_path / "cache.db")
    yield connection
    connection.close()


def poll(
    conn: sqlite3.Connection,
    at: datetime,
    source: str = "fleet",
    reading: Reading | None = None,
    error: SourceError | None = None,
) -> int:
    record = PollRecord(source, at - timedelta(seconds=1), at, reading=reading, error=error)
    return write_poll(conn, record)


def node(name: str = "gpu-01", up: bool = True, **values: float) -> NodeSample:
    return NodeSample(node=name, source_kind="exporter", up=up, **values)


def nodes(*samples: NodeSample) -> Reading:
    return Reading(nodes=list(samples))


def step(
    conn: sqlite3.Connection,
    rules: list[Rule],
    at: datetime,
    reading: Reading,
    source: str = "fleet",
) -> list[tuple[str, str]]:
    poll_id = poll(conn, at, source, reading)
    return [(a.state, a.subject) for a in evaluate(conn, rules, poll_id, at)]


def test_flapping_input_fires_once_and_resolves_once(conn: sqlite3.Connection) -> None:
    rule = Rule("down", "node_down", "critical", for_s=60, resolve_after_s=60)
    # down/up every 20 s for two minutes: never down for a whole minute, so nothing fires
    pattern = [False, True] * 3
    # then down for good (fires once, 60 s after it went down), flapping up for 20 s at a time
    # (too short to resolve), then up for good (resolves once), then brief downs again
    pattern += [False, False, False, False, True, False, True, False, False]
    pattern += [True, True, True, True, False, True, False, True]
    transitions = []
    for i, up in enumerate(pattern):
        at = T0 + timedelta(seconds=20 * i)
        transitions += [(t, i) for t in step(conn, [rule], at, nodes(node(up=up)))]
    assert [t for t, _ in transitions] == [("firing", "gpu-01"), ("resolved", "gpu-01")]
    fired_at, resolved_at = (T0 + timedelta(seconds=20 * i) for _, i in transitions)
    assert fired_at == T0 + timedelta(seconds=20 * 9)  # down from step 6, a minute later
    assert resolved_at == T0 + timedelta(seconds=20 * 18)  # up from step 15, a minute later
    [alert] = history(conn)
    assert alert.state == "resolved" and alert.severity == "critical"
    assert alert.since == T0 + timedelta(seconds=120) and alert.started_at == fired_at
    assert alert.resolved_at == resolved_at and "gpu-01 is down" in alert.message
    # as of a moment in between, it was firing, not yet resolved
    middle = fired_at + timedelta(seconds=30)
    assert [a.state for a in firing(conn, middle)] == ["firing"]
    assert history(conn, middle)[0].resolved_at is None
    assert firing(conn, fired_at - timedelta(seconds=1)) == []
    assert firing(conn) == []


def test_zero_durations_fire_and_resolve_on_the_first_poll(conn: sqlite3.Connection) -> None:
    rule = Rule("down", "node_down")
    assert step(conn, [rule], T0, nodes(node(up=False))) == [("firing", "gpu-01")]
    assert step(conn, [rule], T0 + timedelta(seconds=5), nodes(node(up=False))) == []
    assert step(conn, [rule], T0 + timedelta(seconds=10), nodes(node())) == [("resolved", "gpu-01")]


def test_the_wait_survives_a_restart(tmp_path: Path) -> None:
    rule = Rule("down", "node_down", for_s=60)
    db = tmp_path / "cache.db"
    first = open_writer(db)
    assert step(first, [rule], T0, nodes(node(up=False))) == []
    first.close()
    second = open_writer(db)  # a collector restarted mid-wait
    assert step(second, [rule], T0 + timedelta(seconds=61), nodes(node(up=False))) == [
        ("firing", "gpu-01")
    ]
    second.close()


def test_gpu_temperature_above(conn: sqlite3.Connection) -> None:
    rule = Rule("hot", "gpu_temp_above", threshold=85)
    reading = nodes(
        node("gpu-01", gpus=8, gpu_temp_c=91.0),
        node("gpu-02", gpus=8, gpu_temp_c=85.0),
        node("cpu-01"),  # no GPU: not observed
        node("gpu-03", up=False),  # down: no temperature, neither fires nor resolves
    )
    assert step(conn, [rule], T0, reading) == [("firing", "gpu-01")]
    [alert] = firing(conn)
    assert alert.value == 91.0 and alert.message == "gpu-01 GPU at 91 °C (limit 85 °C)"


def test_node_utilization_below_uses_gpus_else_cpus(conn: sqlite3.Connection) -> None:
    rule = Rule("idle", "utilization_below", threshold=20)
    reading = nodes(
        node("gpu-01", gpus=8, gpu_util_pct=5.0, cpu_pct=90.0),
        node("gpu-02", gpus=8, gpu_util_pct=95.0, cpu_pct=3.0),
        node("cpu-01", cpu_pct=10.0),
        node("cpu-02"),  # a first sample has no CPU rate: not observed
    )
    assert sorted(step(conn, [rule], T0, reading)) == [
        ("firing", "cpu-01"),
        ("firing", "gpu-01"),
    ]


def test_network_utilization_below(conn: sqlite3.Connection) -> None:
    rule = Rule("quiet", "utilization_below", threshold=50, scope="network", subjects=("akash",))
    metrics = [
        NetworkMetric(network="akash", metric="gpu_utilization_pct", value=41.5, unit="%"),
        NetworkMetric(network="io.net", metric="gpu_utilization_pct", value=12.0, unit="%"),
    ]
    assert step(conn, [rule], T0, Reading(metrics=metrics), "akash") == [("firing", "akash")]


def coin(coin_id: str, change: float | None) -> MarketCoin:
    return MarketCoin.model_validate(
        {"id": coin_id, "symbol": coin_id[:3], "name": coin_id, "current_price": 1.0}
        | {"change_24h_pct": change}
    )


def test_price_change_either_way_and_never_on_the_sample(conn: sqlite3.Connection) -> None:
    rule = Rule("move", "price_change", threshold=10)
    market = Reading(market=[coin("render-token", -12.5), coin("io-net", 4.0), coin("x", None)])
    assert step(conn, [rule], T0, market, "sample") == []
    assert step(conn, [rule], T0, market, "coingecko") == [("firing", "render-token")]
    [alert] = firing(conn)
    assert alert.message == "REN -12.5 % in 24 h" and alert.value == -12.5
    up_only = Rule("up", "price_change", threshold=10, direction="up")
    assert step(conn, [rule, up_only], T0 + timedelta(seconds=1), market, "coingecko") == []


def devices(count: float, metric: str = "devices_total") -> Reading:
    return Reading(metrics=[NetworkMetric(network="io.net", metric=metric, value=count)])


def test_devices_drop_over_seven_days(conn: sqlite3.Connection) -> None:
    rule = Rule("shrink", "devices_drop", threshold=20, days=7)
    assert step(conn, [rule], T0 - timedelta(days=8), devices(1000), "ionet") == []
    assert step(conn, [rule], T0 - timedelta(days=3), devices(5000), "ionet") == []
    # against the value a week before (1000, stored 8 days ago): up, not down
    assert step(conn, [rule], T0, devices(3900), "ionet") == []
    # five days on, a week before is the 5000 of T0 - 3 d: down 22 %
    assert step(conn, [rule], T0 + timedelta(days=5), devices(3900), "ionet") == [
        ("firing", "io.net")
    ]
    [alert] = firing(conn)
    assert alert.value == pytest.approx(22.0)
    assert alert.message == "io.net devices 3,900, down 22.0 % from 5,000"


def test_devices_drop_with_a_short_history_uses_the_oldest_value(
    conn: sqlite3.Connection,
) -> None:
    rule = Rule("shrink", "devices_drop", threshold=20)
    assert step(conn, [rule], T0, devices(100, "gpus_total"), "ionet") == []
    gpus = Rule("gpus", "devices_drop", threshold=20, metric="gpus")
    at = T0 + timedelta(hours=5)
    assert step(conn, [gpus], at, devices(75, "gpus_total"), "ionet") == [("firing", "io.net")]


def test_source_failing_for_cycles(conn: sqlite3.Connection) -> None:
    rule = Rule("failing", "source_failing", "warning", cycles=3)
    error = SourceError(ErrorKind.HTTP_5XX, "HTTP 503 from api.coingecko.com")
    seen = []
    for i, ok in enumerate([True, False, False, True, False, False, False, False, True]):
        at = T0 + timedelta(minutes=i)
        reading = Reading(market=[coin("io-net", 1.0)]) if ok else None
        poll_id = poll(conn, at, "coingecko", reading, None if ok else error)
        seen += [(a.state, i) for a in evaluate(conn, [rule], poll_id, at)]
    assert seen == [("firing", 6), ("resolved", 8)]
    [alert] = history(conn)
    assert alert.subject == "coingecko" and alert.value == 3
    assert alert.message == "coingecko failed 3 polls in a row: HTTP 503 from api.coingecko.com"


def test_a_removed_rule_resolves_its_alerts(conn: sqlite3.Connection) -> None:
    rule = Rule("down", "node_down")
    step(conn, [rule], T0, nodes(node(up=False)))
    assert step(conn, [], T0 + timedelta(seconds=1), nodes(node(up=False))) == [
        ("resolved", "gpu-01")
    ]


def test_records_have_exactly_the_export_keys(conn: sqlite3.Connection) -> None:
    step(conn, [Rule("down", "node_down", "critical")], T0, nodes(node(up=False)))
    [alert] = firing(conn)
    assert tuple(alert.record()) == ALERT_KEYS
    assert alert.record() == {
        "rule": "down",
        "subject": "gpu-01",
        "severity": "critical",
        "state": "firing",
        "started_at": "2026-11-25T12:00:00.000Z",
        "resolved_at": None,
        "value": None,
        "message": "gpu-01 is down",
    }


def test_history_filters(conn: sqlite3.Connection) -> None:
    rules = [Rule("down", "node_down", "critical"), Rule("hot", "gpu_temp_above", threshold=80)]
    step(conn, rules, T0, nodes(node("a", up=False), node("b", gpus=1, gpu_temp_c=90.0)))
    step(conn, rules, T0 + timedelta(minutes=1), nodes(node("a", up=True)))
    assert [a.subject for a in history(conn, severity="critical")] == ["a"]
    assert [a.subject for a in history(conn, state="firing")] == ["b"]
    assert [a.subject for a in history(conn, state="resolved")] == ["a"]
    assert [a.subject for a in history(conn, T0, state="firing")] == ["b", "a"]


def test_a_cache_without_the_alerts_table_has_no_alerts(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    assert firing(conn) == [] and history(conn) == []
    conn.close()
