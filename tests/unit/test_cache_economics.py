"""Fleet economics on hand-computed cases: rewards valued at the price of their time, GPU-hours
and energy integrated from samples (and 1-minute rollups), power cost, net, payback, as of T."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cache.db import open_reader, open_writer
from cache.economics import Economics, EconomicsSettings, Figures, economics
from cache.rollup import INSERT_ROLLUP
from cache.store import PollRecord, write_poll
from sources.models import MarketCoin, NodeSample, Reading, Reward

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
DEV_1, DEV_2, DEV_3 = "aaaaaaaa-0001", "aaaaaaaa-0002", "aaaaaaaa-0003"
SETTINGS = EconomicsSettings(
    power_price_per_kwh=0.20, hardware_cost={"default": 1000.0, "gpu-01": 2000.0, "akash": 500.0}
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def put(db: Path, source: str, when: datetime, reading: Reading) -> None:
    conn = open_writer(db)
    try:
        write_poll(conn, PollRecord(source, when - timedelta(seconds=1), when, reading))
    finally:
        conn.close()


def price(when: str, usd: float, source: str = "coingecko") -> tuple[datetime, str, Reading]:
    coin = MarketCoin.model_validate({"id": "io-net", "name": "io.net", "current_price": usd})
    return at(when), source, Reading(market=[coin])


def reward(device: str, node: str | None, when: str, amount: float, token: str = "IO") -> Reward:
    return Reward(
        network="other-net" if token != "IO" else "io.net",
        device_id=device,
        node=node,
        at=at(when),
        amount=amount,
        token=token,
        source=f"block {when}",
    )


def sample(node: str, up: bool = True, **values: float | int | None) -> NodeSample:
    network = "akash" if node.startswith("cpu") else "io.net"
    return NodeSample(node=node, source_kind="exporter", network=network, up=up, **values)


def fleet_cache(db: Path) -> None:
    """Polls written in time order, as a collector writes them (poll ids grow with time)."""
    polls = [
        price("2026-11-25T10:00", 2.0),
        price("2026-11-26T01:00", 3.0),
        price("2026-11-26T05:00", 100.0, source="sample"),  # the bundled sample: never a price
        price("2026-11-26T13:00", 10.0),  # after T
    ]
    rewards = [
        reward(DEV_1, "gpu-01", "2026-11-25T11:00", 5.0),  # before the period
        reward(DEV_1, "gpu-01", "2026-11-25T20:00", 1.0),  # $2 at 2.00, 10 h old
        reward(DEV_1, "gpu-01", "2026-11-26T02:00", 2.0),  # $6 at 3.00
        reward(DEV_1, "gpu-01", "2026-11-26T06:00", 0.0),  # not in block
        reward(DEV_2, "gpu-02", "2026-11-26T03:00", 1.0),  # $3
        reward(DEV_3, None, "2026-11-26T04:00", 7.0, token="FOO"),  # no coin for FOO
    ]
    polls.append((at("2026-11-26T09:00"), "ionet-devices", Reading(rewards=rewards)))
    late = [reward(DEV_1, "gpu-01", "2026-11-26T11:00", 0.5)]  # $1.50
    polls.append((at("2026-11-26T11:30"), "ionet-devices", Reading(rewards=late)))
    after = [reward(DEV_1, "gpu-01", "2026-11-26T10:00", 9.0)]  # fetched after T
    polls.append((at("2026-11-26T12:30"), "ionet-devices", Reading(rewards=after)))
    # gpu-01: up 120 s at 3000 W, up 120 s at 3000 W, down 120 s, then up until the 300 s cap
    for when, s in (
        ("2026-11-26T10:00", sample("gpu-01", gpus=8, gpu_power_w=3000.0)),
        ("2026-11-26T10:02", sample("gpu-01", gpus=8, gpu_power_w=3000.0)),
        ("2026-11-26T10:04", sample("gpu-01", up=False)),
        ("2026-11-26T10:06", sample("gpu-01", gpus=8, gpu_power_w=1800.0)),
        ("2026-11-26T11:00", sample("gpu-02", gpus=4)),  # GPUs but no watts
        ("2026-11-26T11:01", sample("gpu-02", gpus=4)),
        ("2026-11-26T11:02", sample("cpu-01", cpu_pct=5.0)),
        ("2026-11-26T12:30", sample("gpu-01", gpus=8, gpu_power_w=9999.0)),  # after T
    ):
        polls.append((at(when), "fleet", Reading(nodes=[s])))
    for when, source, reading in sorted(polls, key=lambda p: p[0]):
        put(db, source, when, reading)


def run(db: Path, moment: datetime = T, settings: EconomicsSettings = SETTINGS) -> Economics:
    conn = open_reader(db)
    try:
        return economics(conn, DAY, settings, moment)
    finally:
        conn.close()


def by_label(rows: list[Figures]) -> dict[str, Figures]:
    return {f.label: f for f in rows}


def test_node_figures_by_hand(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    fleet_cache(db)
    nodes = by_label(run(db).nodes)
    assert set(nodes) == {"gpu-01", "gpu-02", "cpu-01", DEV_3}
    g1 = nodes["gpu-01"]
    assert (g1.token, g1.network, g1.source_kind) == ("IO", "io.net", "exporter")
    assert g1.rewards == pytest.approx(3.5)  # 1 + 2 + 0 + 0.5
    assert g1.value_usd == pytest.approx(9.5)  # 1×2.00 + 2×3.00 + 0.5×3.00
    assert g1.unpriced == 0
    assert g1.price_age_s == 10 * 3600  # the 20:00 reward, priced at 10:00
    # GPU-seconds: 8×120 + 8×120 + 8×300 = 4320 → 1.2 GPU-h
    assert g1.gpu_hours == pytest.approx(1.2)
    # joules: 3000×120 + 3000×120 + 1800×300 = 1,260,000 → 0.35 kWh → $0.07 at 0.20
    assert g1.energy_kwh == pytest.approx(0.35)
    assert g1.power_cost == pytest.approx(0.07)
    assert g1.net == pytest.approx(9.43)
    assert g1.hardware_cost == 2000.0
    assert g1.payback_days == pytest.approx(2000 / 9.43)  # 212.09 days at 9.43 a day

    g2 = nodes["gpu-02"]
    assert g2.value_usd == pytest.approx(3.0)
    assert g2.gpu_hours == pytest.approx(0.4)  # 4×60 + 4×300 = 1440 s
    assert g2.energy_kwh is None and g2.power_cost is None  # no watts: missing, not 0
    assert g2.net is None and g2.payback_days is None
    assert g2.hardware_cost == 1000.0  # the default

    cpu = nodes["cpu-01"]
    assert cpu.rewards is None and cpu.value_usd is None and cpu.net is None
    assert cpu.gpu_hours is None and cpu.energy_kwh is None
    assert cpu.hardware_cost == 500.0  # by network

    foo = nodes[DEV_3]
    assert (foo.token, foo.rewards, foo.unpriced) == ("FOO", 7.0, 7.0)
    assert foo.value_usd is None and foo.source_kind is None and foo.network == "other-net"


def test_networks_days_and_fleet(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    fleet_cache(db)
    result = run(db)
    assert (result.since, result.until) == (T - DAY, T)
    nets = by_label(result.networks)
    assert list(nets) == ["akash", "io.net", "other-net"]
    io = nets["io.net"]
    assert io.rewards == pytest.approx(4.5) and io.value_usd == pytest.approx(12.5)
    assert io.gpu_hours == pytest.approx(1.6) and io.power_cost == pytest.approx(0.07)
    assert io.net is None  # gpu-02's power is unknown
    assert nets["akash"].value_usd is None and nets["akash"].gpu_hours is None
    days = by_label(result.days)
    assert list(days) == ["2026-11-25", "2026-11-26"]
    assert days["2026-11-25"].rewards == 1.0 and days["2026-11-25"].value_usd == 2.0
    assert days["2026-11-26"].value_usd is None  # FOO on that day has no price
    assert days["2026-11-26"].unpriced == 7.0
    assert result.fleet.token is None and result.fleet.rewards is None  # IO and FOO: mixed
    assert result.fleet.value_usd is None and result.fleet.net is None


def test_without_power_price_net_is_value(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    fleet_cache(db)
    result = run(db, settings=EconomicsSettings())
    nodes = by_label(result.nodes)
    assert nodes["gpu-01"].power_cost is None
    assert nodes["gpu-01"].energy_kwh == pytest.approx(0.35)  # still measured
    assert nodes["gpu-01"].net == pytest.approx(9.5)
    assert nodes["gpu-02"].net == pytest.approx(3.0)
    assert nodes["gpu-01"].payback_days is None  # no hardware cost configured
    assert by_label(result.networks)["io.net"].net == pytest.approx(12.5)


def test_negative_net_never_pays_back(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    fleet_cache(db)
    dear = EconomicsSettings(power_price_per_kwh=100.0, hardware_cost={"gpu-01": 10.0})
    g1 = by_label(run(db, settings=dear).nodes)["gpu-01"]
    assert g1.power_cost == pytest.approx(35.0)
    assert g1.net == pytest.approx(-25.5)
    assert g1.payback_days == math.inf


def test_as_of_an_earlier_time(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    fleet_cache(db)
    result = run(db, moment=at("2026-11-26T09:30"))  # from 2026-11-25T09:30
    nodes = by_label(result.nodes)
    assert set(nodes) == {"gpu-01", "gpu-02", DEV_3}  # rewards fetched at 09:00; no samples yet
    g1 = nodes["gpu-01"]
    assert g1.rewards == pytest.approx(8.0)  # 5 + 1 + 2
    assert g1.value_usd == pytest.approx(18.0)  # 5×2 + 1×2 + 2×3
    assert g1.gpu_hours is None


def test_rewards_before_any_price_are_missing_not_zero(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    early = Reading(rewards=[reward(DEV_1, "gpu-01", "2026-11-26T08:00", 2)])
    put(db, "ionet-devices", at("2026-11-26T08:30"), early)
    when, source, reading = price("2026-11-26T09:00", 3.0)  # after the reward: not used
    put(db, source, when, reading)
    g1 = run(db).nodes[0]
    assert g1.rewards == 2.0 and g1.unpriced == 2.0
    assert g1.value_usd is None and g1.net is None


def test_older_time_comes_from_minute_rollups(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, "fleet", at("2026-11-26T11:00"), Reading(nodes=[sample("gpu-03", gpus=8)]))
    conn = open_writer(db)
    try:
        row = {"samples": 4, "up_samples": 3, "gpus": 8, "gpu_power_w": 1200.0}
        columns = INSERT_ROLLUP.split("(")[1].split(")")[0].split(", ")
        values = {"resolution": 60, "node": "gpu-03", "source_kind": "exporter", **row}
        for bucket in ("2026-11-26T09:00:00.000Z", "2026-11-25T09:00:00.000Z"):  # in, out
            values["bucket_at"] = bucket
            conn.execute(INSERT_ROLLUP, [values.get(c) for c in columns])
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('retention.raw_until', ?)",
            ("2026-11-26T10:00:00.000Z",),
        )
        conn.commit()
    finally:
        conn.close()
    g3 = run(db, settings=EconomicsSettings()).nodes[0]
    # rollup: 8 × 60 s × 3/4 = 360 GPU-s; raw: the 11:00 sample until the 300 s cap, 8 × 300
    assert g3.gpu_hours == pytest.approx((360 + 2400) / 3600)
    assert g3.energy_kwh == pytest.approx(1200 * 45 / 3.6e6)  # the raw sample had no watts


def priced_with_sparkline(usd: float, hourly: list[float | None]) -> Reading:
    coin = MarketCoin.model_validate(
        {
            "id": "io-net",
            "name": "io.net",
            "current_price": usd,
            "sparkline_in_7d": {"price": hourly},
        }
    )
    return Reading(market=[coin])


def test_rewards_before_the_first_poll_take_its_sparkline_price(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    early = Reading(
        rewards=[
            reward(DEV_1, "gpu-01", "2026-11-26T06:30", 2.0),  # 06:00 point: 2.0
            reward(DEV_1, "gpu-01", "2026-11-26T08:10", 1.0),  # 08:00 point: None -> 07:00 (2.5)
            reward(DEV_2, "gpu-02", "2026-11-18T08:00", 4.0),  # before the 7 days: no price
        ]
    )
    put(db, "ionet-devices", at("2026-11-26T08:30"), early)
    # the last point is taken as 09:00 (the snapshot's time), then one an hour back
    hourly = [1.0] * 160 + [2.0, 2.0, 2.0, 2.0, 2.5, None, 3.0]  # ..., 06:00, 07:00, 08:00, 09:00
    put(db, "coingecko", at("2026-11-26T09:00"), priced_with_sparkline(3.0, hourly))
    conn = open_reader(db)
    try:
        result = economics(conn, timedelta(days=10), EconomicsSettings(), T)
    finally:
        conn.close()
    nodes = by_label(result.nodes)
    g1 = nodes["gpu-01"]
    assert g1.unpriced == 0 and g1.value_usd == pytest.approx(2 * 2.0 + 1 * 2.5)
    assert g1.price_age_s == pytest.approx(70 * 60)  # 08:10 valued at the 07:00 point
    assert nodes["gpu-02"].value_usd is None and nodes["gpu-02"].unpriced == 4.0


def test_the_sparkline_fill_respects_time_travel_and_a_damaged_value(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(
        db,
        "ionet-devices",
        at("2026-11-26T08:30"),
        Reading(rewards=[reward(DEV_1, "gpu-01", "2026-11-26T08:00", 1.0)]),
    )
    put(db, "coingecko", at("2026-11-26T09:00"), priced_with_sparkline(3.0, [2.0, 2.5, 3.0]))
    # as of 08:45 the 09:00 snapshot did not exist yet: its sparkline cannot price anything
    before = run(db, settings=EconomicsSettings(), moment=at("2026-11-26T08:45")).nodes[0]
    assert before.value_usd is None and before.unpriced == 1.0
    assert run(db, settings=EconomicsSettings()).nodes[0].value_usd == pytest.approx(2.5)
    conn = open_writer(db)  # a copied cache is untrusted: a damaged sparkline prices nothing
    try:
        conn.execute("UPDATE market SET sparkline_7d = '{not json'")
        conn.commit()
    finally:
        conn.close()
    damaged = run(db, settings=EconomicsSettings()).nodes[0]
    assert damaged.value_usd is None and damaged.unpriced == 1.0
