"""Device growth against price: the network's device figure from our own history, as of T."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cache.db import open_reader, open_writer
from cache.device_growth import COIN_NETWORKS, DeviceGrowth, device_growth
from cache.store import PollRecord, write_poll
from sources.models import NetworkMetric, Reading

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def put(db: Path, when: datetime, devices: float, network: str = "io.net") -> None:
    metric = "devices_total" if network == "io.net" else COIN_NETWORKS["helium"].metric
    reading = Reading(metrics=[NetworkMetric(network=network, metric=metric, value=devices)])
    conn = open_writer(db)
    try:
        source = "ionet" if network == "io.net" else network
        write_poll(conn, PollRecord(source, when - timedelta(seconds=1), when, reading))
    finally:
        conn.close()


def growth(db: Path, coin: str = "io-net", at: datetime | None = None) -> DeviceGrowth | None:
    conn = open_reader(db)
    try:
        return device_growth(conn, coin, at)
    finally:
        conn.close()


def test_changes_over_7_and_30_days_from_stored_values(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    for when, devices in (
        (T - 40 * DAY, 50.0),  # older than the 30 days shown
        (T - 30 * DAY - timedelta(hours=3), 100.0),  # the 30-day base (3 h before the start)
        (T - 8 * DAY, 180.0),
        (T - 7 * DAY - timedelta(hours=1), 200.0),  # the 7-day base
        (T - 2 * DAY, 240.0),
        (T, 250.0),
    ):
        put(db, when, devices)
    found = growth(db)
    assert found is not None and found.device.counts == "devices"
    assert found.latest == 250.0 and found.latest_at == T
    assert found.change_7d_pct == pytest.approx(25.0)
    assert found.change_30d_pct == pytest.approx(150.0)
    assert [v for _, v in found.history] == [180.0, 200.0, 240.0, 250.0]  # the last 30 days


def test_a_change_without_a_value_near_its_start_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, T - 10 * DAY, 100.0)  # 3 days before the 7-day start: too old to be its base
    put(db, T - 3 * DAY, 150.0)
    put(db, T, 200.0)
    found = growth(db)
    assert found is not None and found.change_7d_pct is None and found.change_30d_pct is None


def test_as_of_an_earlier_moment_nothing_newer_is_used(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, T - 14 * DAY, 100.0)
    put(db, T - 7 * DAY, 120.0)
    put(db, T, 999.0)
    found = growth(db, at=T - DAY)
    assert found is not None and found.latest == 120.0
    assert found.change_7d_pct == pytest.approx(20.0)
    assert all(v != 999.0 for _, v in found.history)


def test_projects_without_a_network_or_without_values(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, T, 371_234.0, network="helium")
    assert growth(db, "render-token") is None  # no network this app polls
    assert growth(db, "io-net") is None  # mapped, nothing stored yet
    helium = growth(db, "helium")
    assert helium is not None and helium.device.counts == "registered IoT hotspots"
    assert helium.latest == 371_234.0 and helium.change_7d_pct is None


def test_values_that_are_not_counts_are_skipped(tmp_path: Path) -> None:
    # a copied cache is untrusted: SQLite keeps text in a REAL column if a program puts it there
    db = tmp_path / "c.db"
    put(db, T - 7 * DAY, 100.0)
    put(db, T - DAY, 150.0)
    put(db, T, 200.0)
    conn = open_writer(db)
    try:
        conn.execute("UPDATE network_stats SET value = 'lots' WHERE value = 150.0")
        conn.commit()
    finally:
        conn.close()
    found = growth(db)
    assert found is not None and [v for _, v in found.history] == [100.0, 200.0]
    conn = open_writer(db)
    try:
        conn.execute("UPDATE network_stats SET value = 'x' WHERE value = 200.0")
        conn.commit()
    finally:
        conn.close()
    assert growth(db) is None  # the newest value is not a count: nothing to show
