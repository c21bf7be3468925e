"""Device growth against price: a project's network size from the cache, beside its market.

A CoinGecko project maps to a public network this app polls (:data:`COIN_NETWORKS`), and to the
one figure of that network that counts its devices. Growth is computed from our own history of
that figure (network_stats), never guessed: a change needs a stored value from the start of its
window, and is missing otherwise.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from cache.db import parse_iso
from cache.queries import _bound_poll_id, metric_history


@dataclass(frozen=True)
class DeviceMetric:
    """The figure that counts a network's devices, and what it counts."""

    network: str
    """The network as stored in network_stats."""
    metric: str
    counts: str
    """What the number is, in words ("devices", "active providers", …)."""


COIN_NETWORKS: dict[str, DeviceMetric] = {
    "io-net": DeviceMetric("io.net", "devices_total", "devices"),
    "akash-network": DeviceMetric("akash", "providers_active", "active providers"),
    "filecoin": DeviceMetric("filecoin", "miners_active", "active storage providers"),
    "helium": DeviceMetric("helium", "hotspots_iot_total", "registered IoT hotspots"),
}
"""CoinGecko coin id → its network's device figure (one per network)."""

WINDOWS = (timedelta(days=7), timedelta(days=30))
SLACK = timedelta(days=1)
"""How much older than the start of a window its first value may be (polls are hourly or less)."""


@dataclass(frozen=True)
class DeviceGrowth:
    """A network's device count as of a moment, its change over 7 and 30 days, its history."""

    device: DeviceMetric
    latest: float
    latest_at: datetime
    change_7d_pct: float | None
    change_30d_pct: float | None
    history: list[tuple[datetime, float]]
    """The last 30 days of stored values, oldest first."""


def device_growth(
    conn: sqlite3.Connection, coin_id: str, at: datetime | None = None
) -> DeviceGrowth | None:
    """The project's network devices as stored by ``at`` (None: no mapping or no value)."""
    device = COIN_NETWORKS.get(coin_id)
    if device is None:
        return None
    row = conn.execute(
        "SELECT p.finished_at, n.value FROM network_stats n JOIN polls p ON p.id = n.poll_id "
        "WHERE n.network = ? AND n.metric = ? AND n.poll_id <= ? ORDER BY n.poll_id DESC LIMIT 1",
        (device.network, device.metric, _bound_poll_id(conn, at)),
    ).fetchone()
    if row is None or not _count(row[1]):
        return None  # nothing stored, or (a copied cache is untrusted) not a count
    latest_at, latest = parse_iso(row[0]), float(row[1])
    longest = max(WINDOWS)
    since = latest_at - longest - SLACK
    points = [
        (when, float(value))
        for when, value in metric_history(conn, device.network, device.metric, since, at)
        if _count(value)
    ]
    changes = [_change(points, latest, latest_at - window) for window in WINDOWS]
    shown = [(t, v) for t, v in points if t >= latest_at - longest]
    return DeviceGrowth(device, latest, latest_at, changes[0], changes[1], shown)


def _count(value: object) -> bool:
    """A finite number (REAL columns hold anything in a cache written by another program)."""
    return isinstance(value, int | float) and math.isfinite(value)


def _change(points: list[tuple[datetime, float]], latest: float, start: datetime) -> float | None:
    """Percent change from the newest value at or before ``start`` (within SLACK) to ``latest``."""
    base = None
    for when, value in points:
        if when > start:
            break
        base = (when, value)
    if base is None or base[0] < start - SLACK or base[1] <= 0:
        return None
    return (latest - base[1]) / base[1] * 100.0
