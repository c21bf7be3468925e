"""cache.diff.changes: polls stored at T1 < T2 < T3, compared as of two times, exact values,
and nothing stored after ``until`` ever leaks in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cache.db import open_reader, open_writer
from cache.diff import Changes, changes
from cache.store import PollRecord, write_poll
from sources.models import MarketCoin, NetworkMetric, NodeSample, Reading, Reward

T1 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)
T3 = T2 + timedelta(hours=1)
BETWEEN = T1 + timedelta(minutes=30)  # a moment between T1 and T2
DEV = "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17"
LOOSE = "599ef4af-7fe6-44b5-aba3-25899bde2ab6"  # a device no fleet node is labelled with


def put(db: Path, source: str, at: datetime, reading: Reading) -> int:
    conn = open_writer(db)
    try:
        return write_poll(conn, PollRecord(source, at - timedelta(seconds=2), at, reading))
    finally:
        conn.close()


def node(
    name: str, up: bool = True, kind: str = "exporter", error: str | None = None
) -> NodeSample:
    return NodeSample(node=name, source_kind=kind, network="io.net", up=up, error=error)


def coin(coin_id: str, rank: int, price: float) -> MarketCoin:
    return MarketCoin.model_validate(
        {"id": coin_id, "symbol": coin_id[:3], "name": coin_id.title(), "market_cap_rank": rank,
         "current_price": price, "market_cap": 1e9 / rank}
    )  # fmt: skip


def metric(name: str, value: float, unit: str = "count", network: str = "io.net") -> NetworkMetric:
    return NetworkMetric(network=network, metric=name, value=value, unit=unit)


def reward(at: datetime, amount: float, node_name: str | None = "gpu-a", dev: str = DEV) -> Reward:
    return Reward(
        network="io.net",
        device_id=dev,
        node=node_name,
        at=at,
        amount=amount,
        token="IO",
        source=f"io.net block {at.isoformat()}",
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "c.db"
    # T1: the fleet as it was; a PromQL fleet that is never polled again
    put(
        path,
        "fleet",
        T1,
        Reading(
            nodes=[
                node("gpu-a"),
                node("gpu-b", up=False, error="connect: refused"),
                node("gpu-c"),
                node("gpu-d"),
                node("gpu-e", up=False),
            ]
        ),
    )
    put(path, "promql", T1, Reading(nodes=[node("10.0.0.9:9100", kind="promql")]))
    put(path, "coingecko", T1, Reading(market=[coin("render", 1, 10.0), coin("akash", 2, 4.0),
        coin("helium", 3, 2.0), coin("theta", 4, 1.0)]))  # fmt: skip
    put(path, "ionet", T1, Reading(metrics=[metric("gpus_total", 100), metric("util", 50, "%")]))
    # T2: a went down, b came up, d is no longer scraped, f is new; the others unchanged
    put(
        path,
        "fleet",
        T2,
        Reading(
            nodes=[
                node("gpu-a", up=False, error="timeout"),
                node("gpu-b"),
                node("gpu-c"),
                node("gpu-e", up=False),
                node("gpu-f"),
            ]
        ),
    )
    put(path, "coingecko", T2, Reading(market=[coin("akash", 1, 5.0), coin("render", 2, 9.0),
        coin("helium", 3, 2.0), coin("grass", 4, 3.0)]))  # fmt: skip
    put(
        path,
        "ionet",
        T2,
        Reading(
            metrics=[metric("gpus_total", 120), metric("util", 50, "%"), metric("zero", 0)],
            rewards=[],
        ),
    )
    put(path, "akash", T2, Reading(metrics=[metric("gpus_total", 7, network="akash")]))
    put(
        path,
        "ionet-devices",
        T2,
        Reading(
            rewards=[
                reward(T1 - timedelta(hours=1), 9.0),  # before `since`: not earned in between
                reward(T1, 5.0),  # exactly at `since`: the interval is (since, until]
                reward(T1 + timedelta(minutes=10), 0.25),
                reward(T1 + timedelta(minutes=40), 0.0),
                reward(T1 + timedelta(minutes=50), 0.5),
                reward(T1 + timedelta(minutes=50), 1.5, node_name=None, dev=LOOSE),
            ]
        ),
    )
    # T3: everything moves again; none of it may show when comparing up to T2
    put(path, "fleet", T3, Reading(nodes=[node("gpu-a"), node("gpu-g"), node("gpu-d")]))
    put(path, "coingecko", T3, Reading(market=[coin("theta", 1, 99.0)]))
    put(path, "ionet", T3, Reading(metrics=[metric("gpus_total", 999), metric("new_one", 1)]))
    put(
        path,
        "ionet-devices",
        T3,
        Reading(rewards=[reward(T1 + timedelta(minutes=55), 100.0), reward(T3, 7.0)]),
    )
    return path


def diff(db: Path, since: datetime, until: datetime | None) -> Changes:
    conn = open_reader(db)
    try:
        return changes(conn, since, until)
    finally:
        conn.close()


def test_nodes_down_gone_up_new_trouble_first(db: Path) -> None:
    result = diff(db, T1, T2)
    assert [(c.kind, c.node, c.up) for c in result.nodes] == [
        ("down", "gpu-a", False),
        ("gone", "gpu-d", True),
        ("up", "gpu-b", True),
        ("new", "gpu-f", True),
    ]
    down = result.nodes[0]
    assert down.error == "timeout" and down.last_seen == T2 and down.source_kind == "exporter"
    assert result.nodes[1].last_seen == T1  # gone: when it was last seen
    # the PromQL node got no new sample, but neither did any PromQL node: not called gone
    assert "10.0.0.9:9100" not in {c.node for c in result.nodes}
    assert (result.fleet_before, result.fleet_after) == (6, 7)


def test_no_poll_in_between_means_no_node_change(db: Path) -> None:
    result = diff(db, T1, BETWEEN)
    # rewards for blocks before BETWEEN were fetched at T2: not known yet
    assert result.nodes == () and result.metrics_changed == () and result.rewards == ()
    assert result.rankings.moves == () and result.rankings.comparable


def test_rankings_moves_sorted_by_size_with_new_and_dropped(db: Path) -> None:
    ranks = diff(db, T1, T2).rankings
    assert ranks.before is not None and ranks.before.finished_at == T1
    assert ranks.after is not None and ranks.after.finished_at == T2
    moves = [(m.coin_id, m.rank_before, m.rank_after, m.rank_move) for m in ranks.moves]
    # helium kept rank and price: not a move
    assert moves == [("akash", 2, 1, 1), ("render", 1, 2, -1)]
    akash, render = ranks.moves
    assert (akash.price_before, akash.price_after) == (4.0, 5.0)
    assert akash.price_change_pct == pytest.approx(25.0)
    assert render.price_change_pct == pytest.approx(-10.0)
    assert [(m.coin_id, m.rank_after, m.price_after) for m in ranks.new] == [("grass", 4, 3.0)]
    assert [(m.coin_id, m.rank_before, m.rank_after) for m in ranks.dropped] == [("theta", 4, None)]


def test_rankings_live_against_the_sample_are_not_compared(db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    put(other, "sample", T1, Reading(market=[coin("render", 1, 10.0)], at=T1 - timedelta(days=9)))
    put(other, "coingecko", T2, Reading(market=[coin("render", 3, 1.0)]))
    ranks = diff(other, T1, T2).rankings
    assert ranks.before is not None and ranks.before.is_sample
    assert not ranks.comparable and ranks.moves == ranks.new == ranks.dropped == ()
    nothing_before = diff(other, T1 - timedelta(hours=1), T2).rankings
    assert nothing_before.before is None and not nothing_before.comparable


def test_network_deltas_for_figures_known_at_both_times(db: Path) -> None:
    result = diff(db, T1, T2)
    found = {(m.network, m.metric): m for m in result.metrics}
    # akash's figure and io.net's "zero" were first stored at T2: no delta; T3's never shows
    assert sorted(found) == [("io.net", "gpus_total"), ("io.net", "util")]
    gpus = found[("io.net", "gpus_total")]
    assert (gpus.before, gpus.after, gpus.delta, gpus.unit) == (100, 120, 20, "count")
    assert gpus.pct == pytest.approx(20.0)
    assert (gpus.before_at, gpus.after_at) == (T1, T2)
    assert [m.metric for m in result.metrics_changed] == ["gpus_total"]
    util = found[("io.net", "util")]
    assert util.delta == 0 and util.unit == "%"


def test_rewards_in_the_half_open_interval_fetched_by_until(db: Path) -> None:
    totals = diff(db, T1, T2).rewards
    assert [(t.node, t.device_id, t.network, t.token, t.count, t.paid) for t in totals] == [
        ("gpu-a", None, "io.net", "IO", 3, 2),
        (None, LOOSE, "io.net", "IO", 1, 1),
    ]
    assert totals[0].amount == pytest.approx(0.75) and totals[1].amount == pytest.approx(1.5)


def test_nothing_after_until_leaks_in(db: Path) -> None:
    up_to_t2 = diff(db, T1, T2)
    just_before_t3 = diff(db, T1, T3 - timedelta(milliseconds=1))
    assert up_to_t2 == Changes(**{**just_before_t3.__dict__, "until": T2})
    everything = {c.node for c in up_to_t2.nodes} | {m.coin_id for m in up_to_t2.rankings.new}
    assert "gpu-g" not in everything and "theta" not in {m.coin_id for m in up_to_t2.rankings.new}
    assert all(m.after != 999 for m in up_to_t2.metrics)
    assert all(t.amount < 100 for t in up_to_t2.rewards)


def test_until_none_is_now(db: Path) -> None:
    result = diff(db, T2, None)
    assert result.until is None
    assert [(c.kind, c.node) for c in result.nodes] == [
        ("gone", "gpu-b"),
        ("gone", "gpu-c"),
        ("gone", "gpu-e"),
        ("gone", "gpu-f"),
        ("up", "gpu-a"),
        ("new", "gpu-g"),
    ]  # gpu-d was gone at T2 and is back at T3: present at both ends, up both times
    assert {m.metric: m.after for m in result.metrics}["gpus_total"] == 999
    # rewards for blocks after T2 fetched at T3 count; the late 100 IO is for a block before T2
    assert [(t.node, t.amount) for t in result.rewards] == [("gpu-a", 7.0)]


def test_since_after_until_is_refused(db: Path) -> None:
    with pytest.raises(ValueError, match="must not be after"):
        diff(db, T2, T1)
    assert diff(db, T2, T2).nodes == ()
