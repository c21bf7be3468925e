"""Per-device market figures for Rankings (cache/market_devices.py) and `export rankings`: market
cap ÷ the stored device count, the count's and the price's 30-day change, "as of T", missing
where nothing is stored, never for the bundled sample's market cap."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cache.db import open_reader, open_writer
from cache.export import RANKINGS_KEYS, rankings_export, to_csv
from cache.market_devices import market_devices
from cache.queries import latest_rankings
from cache.store import PollRecord, write_poll
from explorer.cli import cli
from sources.models import MarketCoin, NetworkMetric, Reading

T = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def put(db: Path, source: str, when: datetime, reading: Reading) -> None:
    conn = open_writer(db)
    try:
        write_poll(conn, PollRecord(source, when - timedelta(seconds=1), when, reading))
    finally:
        conn.close()


def coins(io_price: float, io_cap: float, io_30d: float | None = None) -> Reading:
    rows = [
        {"id": "io-net", "name": "io.net", "current_price": io_price, "market_cap": io_cap},
        {"id": "helium", "name": "Helium", "current_price": 5.0, "market_cap": 9.0e8},
        {"id": "render-token", "name": "Render", "current_price": 7.0, "market_cap": 3.2e9},
    ]
    if io_30d is not None:
        rows[0]["change_30d_pct"] = io_30d
    return Reading(market=[MarketCoin.model_validate(r) for r in rows])


def devices(io_net: float, hotspots: float | None = None) -> Reading:
    metrics = [NetworkMetric(network="io.net", metric="devices_total", value=io_net)]
    if hotspots is not None:
        metrics.append(NetworkMetric(network="helium", metric="hotspots_iot_total", value=hotspots))
    return Reading(metrics=metrics)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """31 days of history, written in time order: io.net 20,000 → 25,000 devices."""
    path = tmp_path / "cache.db"
    put(path, "ionet", T - 31 * DAY, devices(19000.0))
    put(path, "ionet", T - 30 * DAY - timedelta(hours=2), devices(20000.0, hotspots=400000.0))
    put(path, "coingecko", T - 30 * DAY - timedelta(hours=1), coins(2.0, 1.0e8))
    put(path, "ionet", T - 10 * DAY, devices(22000.0))
    put(path, "coingecko", T - 2 * DAY, coins(2.5, 2.2e8, io_30d=20.0))
    put(path, "ionet", T - timedelta(hours=1), devices(25000.0))
    put(path, "coingecko", T - timedelta(minutes=5), coins(3.0, 2.4e8, io_30d=40.1))
    return path


def figures(db: Path, at: datetime | None = None):
    conn = open_reader(db)
    try:
        return market_devices(conn, latest_rankings(conn, at), at)
    finally:
        conn.close()


def test_market_cap_per_device_and_device_change(db: Path) -> None:
    io = figures(db)["io-net"]
    assert io.device is not None and (io.device.network, io.device.metric) == (
        "io.net",
        "devices_total",
    )
    assert io.devices == 25000.0 and io.devices_at == T - timedelta(hours=1)
    assert io.market_cap_per_device_usd == 2.4e8 / 25000.0
    assert io.devices_change_30d_pct == pytest.approx((25000 - 20000) / 20000 * 100)
    assert (io.price_change_30d_pct, io.price_change_30d_from) == (40.1, "market")


def test_price_change_from_stored_history_when_coingecko_has_none(db: Path) -> None:
    helium = figures(db)["helium"]
    assert helium.price_change_30d_pct == 0.0 and helium.price_change_30d_from == "history"
    render = figures(db)["render-token"]  # not a polled network: only the price figure
    assert render.device is None and render.devices is None
    assert render.market_cap_per_device_usd is None and render.devices_change_30d_pct is None
    assert render.price_change_30d_pct == 0.0


def test_helium_without_a_reading_30_days_back_has_no_device_change(db: Path) -> None:
    helium = figures(db)["helium"]
    assert helium.devices == 400000.0  # the only stored count, 30 days old
    assert helium.market_cap_per_device_usd == 9.0e8 / 400000.0
    assert helium.devices_change_30d_pct is None  # no reading 30 days before it


def test_as_of_t(db: Path) -> None:
    io = figures(db, at=T - DAY)["io-net"]
    assert io.devices == 22000.0 and io.market_cap_per_device_usd == 2.2e8 / 22000.0
    assert io.devices_change_30d_pct is None  # 30 days before T - 10 d: nothing within a day
    assert io.price_change_30d_pct == 20.0
    io = figures(db, at=T - 30 * DAY - timedelta(minutes=30))["io-net"]
    assert io.devices == 20000.0 and io.price_change_30d_pct is None  # no history before


def test_no_per_device_figure_for_the_bundled_sample(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    put(path, "ionet", T - DAY, devices(25000.0))
    put(path, "sample", T, coins(3.0, 2.4e8))
    io = figures(path)["io-net"]
    assert io.devices == 25000.0 and io.market_cap_per_device_usd is None


def test_export_records_and_csv(db: Path) -> None:
    conn = open_reader(db)
    try:
        records = {r["coin_id"]: r for r in rankings_export(conn)}
        earlier = {r["coin_id"]: r for r in rankings_export(conn, T - DAY)}
    finally:
        conn.close()
    io = records["io-net"]
    assert list(io) == list(RANKINGS_KEYS)
    assert io["devices"] == 25000 and io["devices_metric"] == "devices_total"
    assert io["devices_network"] == "io.net"
    assert io["market_cap_per_device_usd"] == 9600
    assert io["devices_change_30d_pct"] == 25
    assert io["devices_fetched_at"] == "2026-11-25T11:00:00.000Z"
    assert earlier["io-net"]["devices"] == 22000
    render = records["render-token"]
    assert (render["devices"], render["market_cap_per_device_usd"]) == (None, None)
    header, *rows = to_csv(records.values(), RANKINGS_KEYS).splitlines()
    assert header.split(",")[-7:] == list(RANKINGS_KEYS[-7:])


def test_cli_export_rankings_json_has_the_per_device_keys(db: Path) -> None:
    result = CliRunner().invoke(
        cli, ["export", "rankings", "--format", "json", "--db", str(db)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    io = next(r for r in json.loads(result.stdout) if r["coin_id"] == "io-net")
    assert io["market_cap_per_device_usd"] == io["market_cap_usd"] / io["devices"]
    assert io["devices"] == 25000
