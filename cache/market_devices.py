"""Per-device market figures for the Rankings table: market cap per device, device and price change.

For a project whose network this app polls (:data:`cache.device_growth.COIN_NETWORKS`: the same
coin → network figure the Project screen's "devices against price" uses), as of T:

- ``devices``: the newest stored value of that network's device figure at or before T (io.net
  ``devices_total``, Akash ``providers_active``, Filecoin ``miners_active``, Helium
  ``hotspots_iot_total``), with when it was fetched;
- ``market_cap_per_device_usd``: the snapshot's market cap ÷ ``devices`` (missing when either
  is, when the count is not above 0, or when the snapshot is the bundled 2024 sample: its market
  cap is not of the time the device count is from);
- ``devices_change_30d_pct``: the change of ``devices`` from the newest stored value 30 days
  before it (within a day of slack, :mod:`cache.device_growth`); missing without one.

For every project, ``price_change_30d_pct``: CoinGecko's own 30-day change when the snapshot has
it, else the change from the price in the newest live snapshot 30 days (within a day) before
this one; missing when neither is stored. ``price_change_30d_from`` says which.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from cache.db import SAMPLE_SOURCE, iso
from cache.device_growth import COIN_NETWORKS, SLACK, DeviceMetric, device_growth
from cache.queries import Rankings

PRICE_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class MarketDevices:
    """One project's per-device figures as of T; None is missing."""

    device: DeviceMetric | None
    """The network figure that counts its devices; None: a project whose network is not polled."""
    devices: float | None = None
    devices_at: datetime | None = None
    market_cap_per_device_usd: float | None = None
    devices_change_30d_pct: float | None = None
    price_change_30d_pct: float | None = None
    price_change_30d_from: str | None = None
    """``"market"`` (CoinGecko's figure) or ``"history"`` (from our stored snapshots)."""


NONE = MarketDevices(device=None)
"""A project with no figure at all (the table's default)."""


def _prices_30d_before(conn: sqlite3.Connection, rankings: Rankings) -> dict[str, float]:
    """Coin id → price in the newest live snapshot of the source 30 days before this one."""
    if rankings.poll.source == SAMPLE_SOURCE:
        return {}
    start = rankings.poll.finished_at - PRICE_WINDOW
    row = conn.execute(
        "SELECT id FROM polls WHERE source = ? AND status = 'ok' AND finished_at <= ? "
        "AND finished_at >= ? ORDER BY finished_at DESC LIMIT 1",
        (rankings.poll.source, iso(start), iso(start - SLACK)),
    ).fetchone()
    if row is None:
        return {}
    return {
        coin: float(price)
        for coin, price in conn.execute(
            "SELECT coin_id, price_usd FROM market WHERE poll_id = ? AND price_usd > 0", (row[0],)
        )
    }


def market_devices(
    conn: sqlite3.Connection, rankings: Rankings | None, at: datetime | None = None
) -> dict[str, MarketDevices]:
    """Per-device figures of every project of ``rankings``, as stored by ``at``."""
    if rankings is None:
        return {}
    before: dict[str, float] | None = None
    live = rankings.poll.source != SAMPLE_SOURCE
    out: dict[str, MarketDevices] = {}
    for coin in rankings.coins:
        price_change = coin.change_30d_pct
        source = "market" if price_change is not None else None
        if price_change is None and coin.price_usd is not None:
            if before is None:
                before = _prices_30d_before(conn, rankings)
            then = before.get(coin.coin_id)
            if then:
                price_change, source = (coin.price_usd - then) / then * 100.0, "history"
        device = COIN_NETWORKS.get(coin.coin_id)
        growth = device_growth(conn, coin.coin_id, at) if device else None
        per_device = None
        if growth and live and coin.market_cap_usd is not None and growth.latest > 0:
            per_device = coin.market_cap_usd / growth.latest
        out[coin.coin_id] = MarketDevices(
            device=device,
            devices=growth.latest if growth else None,
            devices_at=growth.latest_at if growth else None,
            market_cap_per_device_usd=per_device,
            devices_change_30d_pct=growth.change_30d_pct if growth else None,
            price_change_30d_pct=price_change,
            price_change_30d_from=source,
        )
    return out
