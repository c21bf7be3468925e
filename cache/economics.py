"""Fleet economics "as of time T": what each node earned, what it was worth, what it cost.

For a period ``[since, until]`` (``until`` is T, or now):

- Rewards: the stored rewards for blocks in the period, fetched by ``until`` (as
  :mod:`cache.rewards` reads them), summed per node and per UTC day.
- Value: each reward times the price of its token from the newest live rankings poll (never the
  bundled sample) that finished at or before the reward's ``at``. The token → CoinGecko coin map
  is :data:`TOKEN_COINS`. How far that price is from its reward is kept (``price_age_s``: the
  oldest price used) so a screen can say when it is more than a day old. Rewards older than the
  first live poll take the hourly prices of that poll's 7-day sparkline. A reward with no price
  at or before it leaves its node's value missing (None), never 0; ``unpriced`` says how much.
- GPU-hours: from ``node_samples``, each up sample counts ``gpus`` for the time until the node's
  next sample, at most ``max_span`` seconds (a collector that stopped proves nothing about the
  gap); the last sample counts until ``until`` under the same cap. Before the raw samples'
  retention watermark (``meta retention.raw_until``), 1-minute rollups stand in:
  ``gpus × 60 s × up_samples / samples`` per bucket. A time is counted on the UTC day of the
  sample (or bucket) it belongs to.
- Energy and power cost: ``gpu_power_w`` (the GPU exporters' summed watts: GPUs only, not the
  whole machine) integrated the same way, in kWh, times the configured price per kWh. Without a
  configured price, power is not counted (``power_cost`` None, ``net`` = value); with one, GPU
  time that came without watts makes the power cost unknown, so the net is missing. A node with
  no GPUs has no GPU power to count: its net is its value.
- Net: value − power cost. For a network, a day or the fleet: all its rewards' value minus all
  its nodes' power cost (earning or not); missing when the value or a power cost is.
- Payback: the configured hardware cost (by node, else network, else ``default``) divided by the
  net per day over the period; ``math.inf`` when the net is not positive.

A node seen by several source kinds (exporter and promql) uses the kind that saw it up longest,
so it is not counted twice. Rewards of a device with no fleet node are listed under the device id.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cache import usage
from cache.db import SAMPLE_SOURCE, iso, parse_iso
from cache.queries import _bound_poll_id

TOKEN_COINS: dict[str, str] = {"IO": "io-net"}
"""Reward token → the CoinGecko coin id whose cached price values it (the one place to add one)."""
MAX_SPAN = 300.0
"""Default seconds one sample may stand for (raise it for fleets polled less often)."""
DAY = 86400.0
SPARKLINE_STEP = timedelta(hours=1)
"""CoinGecko's 7-day sparkline: one price an hour."""
_RAW_WATERMARK = "retention.raw_until"


@dataclass(frozen=True)
class EconomicsSettings:
    """What the config says about money: power price, currency, hardware cost."""

    power_price_per_kwh: float | None = None
    currency: str = "USD"
    hardware_cost: Mapping[str, float] = field(default_factory=dict)
    """Keyed by node name, network name or ``default`` (looked up in that order)."""

    def hardware_cost_for(self, node: str, network: str | None) -> float | None:
        """This node's hardware cost: its own, else its network's, else the default."""
        for key in (node, network, "default"):
            if key is not None and key in self.hardware_cost:
                return self.hardware_cost[key]
        return None


@dataclass
class _Cell:
    """One node on one UTC day (or summed over days): the raw sums everything derives from."""

    rewards: dict[str, float] = field(default_factory=dict)
    value_usd: float = 0.0
    unpriced: float = 0.0
    price_age_s: float | None = None
    gpu_s: float | None = None
    joules: float | None = None
    watts_missing: bool = False
    """Some GPU time here came with no watts: its power cost is unknown."""

    def add(self, other: _Cell) -> None:
        for token, amount in other.rewards.items():
            self.rewards[token] = self.rewards.get(token, 0.0) + amount
        self.value_usd += other.value_usd
        self.unpriced += other.unpriced
        self.price_age_s = _max(self.price_age_s, other.price_age_s)
        self.gpu_s = _plus(self.gpu_s, other.gpu_s)
        self.joules = _plus(self.joules, other.joules)
        self.watts_missing |= other.watts_missing


def _plus(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else a + b


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(frozen=True)
class Figures:
    """Economics of a node, a network, a day or the fleet over the period; None is missing."""

    label: str
    network: str | None
    token: str | None
    """The token of ``rewards`` ("IO"); None when nothing was earned or tokens are mixed."""
    rewards: float | None
    """Earned in the period, in ``token``; None when no reward is stored (not 0)."""
    value_usd: float | None
    unpriced: float
    """Rewards with no cached price at or before them (in their token)."""
    price_age_s: float | None
    """How much older than its reward the oldest price used is (seconds)."""
    gpu_hours: float | None
    energy_kwh: float | None
    power_cost: float | None
    net: float | None
    hardware_cost: float | None = None
    payback_days: float | None = None
    source_kind: str | None = None
    """For a node: the source kind to open it with (None: rewards only, no samples)."""


@dataclass(frozen=True)
class Economics:
    """The period, and its figures per node, per network, per UTC day and for the fleet."""

    since: datetime
    until: datetime
    settings: EconomicsSettings
    nodes: list[Figures]
    networks: list[Figures]
    days: list[Figures]
    fleet: Figures


def _figures(
    label: str,
    cell: _Cell,
    settings: EconomicsSettings,
    network: str | None = None,
    source_kind: str | None = None,
) -> Figures:
    token = next(iter(cell.rewards)) if len(cell.rewards) == 1 else None
    earned = bool(cell.rewards)
    value = cell.value_usd if earned and cell.unpriced == 0 else None
    energy = cell.joules / 3.6e6 if cell.joules is not None else None
    price = settings.power_price_per_kwh
    power_cost = energy * price if energy is not None and price is not None else None
    if value is None or (price is not None and cell.watts_missing):
        net = None
    else:
        net = value - (power_cost or 0.0)
    return Figures(
        label=label,
        network=network,
        token=token,
        rewards=cell.rewards[token] if token else None,
        value_usd=value,
        unpriced=cell.unpriced,
        price_age_s=cell.price_age_s,
        gpu_hours=cell.gpu_s / 3600 if cell.gpu_s is not None else None,
        energy_kwh=energy,
        power_cost=power_cost,
        net=net,
        source_kind=source_kind,
    )


def _with_payback(f: Figures, cost: float | None, period_days: float) -> Figures:
    payback = None
    if cost is not None and f.net is not None:
        per_day = f.net / period_days
        payback = cost / per_day if per_day > 0 else math.inf
    return Figures(**{**f.__dict__, "hardware_cost": cost, "payback_days": payback})


def _prices(
    conn: sqlite3.Connection, coin_id: str, since: datetime, until: datetime
) -> list[tuple[str, float]]:
    """(time, price) of live polls up to ``until``, from the newest one before ``since``.

    With no live price before ``since`` (rewards older than the first CoinGecko poll), the
    hourly 7-day sparkline of the first snapshot that has one reaches back up to 7 days.
    """
    live = (
        "SELECT p.finished_at, m.price_usd FROM market m JOIN polls p ON p.id = m.poll_id "
        "WHERE m.coin_id = ? AND p.source != ? AND m.price_usd IS NOT NULL "
    )
    before = conn.execute(
        live + "AND p.finished_at < ? ORDER BY p.finished_at DESC LIMIT 1",
        (coin_id, SAMPLE_SOURCE, iso(since)),
    ).fetchall()
    during = conn.execute(
        live + "AND p.finished_at >= ? AND p.finished_at <= ? ORDER BY p.finished_at",
        (coin_id, SAMPLE_SOURCE, iso(since), iso(until)),
    ).fetchall()
    series = [(r[0], float(r[1])) for r in (*before, *during)]
    if not before:
        first = series[0][0] if series else iso(until)
        series = _sparkline_prices(conn, coin_id, since, until, first) + series
    return series


def _sparkline_prices(
    conn: sqlite3.Connection, coin_id: str, since: datetime, until: datetime, first: str
) -> list[tuple[str, float]]:
    """The hourly points before ``first`` of the earliest stored 7-day sparkline of the coin.

    CoinGecko's ``sparkline_in_7d`` is about 168 hourly prices ending when it was fetched; its
    last point is taken as the snapshot's time, one hour apart back from there. Only the points
    from the hour before ``since`` on are kept.
    """
    row = conn.execute(
        "SELECT p.finished_at, m.sparkline_7d FROM market m JOIN polls p ON p.id = m.poll_id "
        "WHERE m.coin_id = ? AND p.source != ? AND m.sparkline_7d IS NOT NULL "
        "AND p.finished_at >= ? AND p.finished_at <= ? ORDER BY p.finished_at LIMIT 1",
        (coin_id, SAMPLE_SOURCE, iso(since), iso(until)),
    ).fetchone()
    if row is None:
        return []
    try:
        points = json.loads(row[1])
    except ValueError:
        return []
    if not isinstance(points, list):
        return []
    end = parse_iso(row[0])
    earliest = since - SPARKLINE_STEP
    out = []
    for back, value in enumerate(reversed(points)):
        when = end - back * SPARKLINE_STEP
        if when < earliest:
            break
        moment = iso(when)
        if moment < first and isinstance(value, int | float) and math.isfinite(value):
            out.append((moment, float(value)))
    out.reverse()
    return out


def _price_at(series: list[tuple[str, float]], moment: str) -> tuple[str, float] | None:
    """The newest (time, price) at or before ``moment`` (iso text sorts as time)."""
    low, high = 0, len(series)
    while low < high:
        mid = (low + high) // 2
        if series[mid][0] <= moment:
            low = mid + 1
        else:
            high = mid
    return series[low - 1] if low else None


def _usage_sql(span: float) -> str:
    # Each sample's time until the next one (or until `until`), capped at `span` seconds.
    return (
        "SELECT node, source_kind, substr(t, 1, 10), "
        "SUM(CASE WHEN up AND gpus IS NOT NULL THEN gpus * dt END), "
        "SUM(CASE WHEN up AND gpu_power_w IS NOT NULL THEN gpu_power_w * dt END), "
        "SUM(CASE WHEN up THEN dt ELSE 0 END) FROM ("
        "  SELECT s.node, s.source_kind, s.up, s.gpus, s.gpu_power_w, p.finished_at AS t, "
        f"  MIN({span!r}, (julianday(COALESCE(LEAD(p.finished_at) OVER w, :until)) "
        "       - julianday(p.finished_at)) * 86400.0) AS dt "
        "  FROM node_samples s JOIN polls p ON p.id = s.poll_id "
        "  WHERE s.poll_id >= :low AND s.poll_id <= :bound "
        "    AND p.finished_at >= :start AND p.finished_at <= :until "
        "  WINDOW w AS (PARTITION BY s.node, s.source_kind ORDER BY s.poll_id)) "
        "GROUP BY node, source_kind, substr(t, 1, 10)"
    )


_ROLLUP_USAGE = (
    "SELECT node, source_kind, substr(bucket_at, 1, 10), "
    "SUM(gpus * 60.0 * up_samples / samples), SUM(gpu_power_w * 60.0 * up_samples / samples), "
    "SUM(60.0 * up_samples / samples) FROM node_rollups WHERE resolution = 60 "
    "AND bucket_at >= ? AND bucket_at < ? AND bucket_at <= ? AND samples > 0 "
    "GROUP BY node, source_kind, substr(bucket_at, 1, 10)"
)


def _usage(
    conn: sqlite3.Connection, since: datetime, until: datetime, bound: int, span: float
) -> dict[tuple[str, str], dict[str, tuple[float | None, float | None, float]]]:
    """(node, kind) → day → (GPU-seconds, joules, up seconds)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_RAW_WATERMARK,)).fetchone()
    raw_from = max(iso(since), row[0] if row and row[0] else "")
    low = conn.execute(
        "SELECT MIN(id) FROM polls WHERE finished_at >= ?",
        (iso(parse_iso(raw_from) - timedelta(minutes=1)),),
    ).fetchone()[0]
    params = {"low": low or 0, "bound": bound, "start": raw_from, "until": iso(until)}
    # whole hours from node_usage_hours (cache/usage.py) when it can answer, the same figures
    rows = usage.usage_rows(conn, raw_from, until, bound, span)
    if rows is None:
        rows = conn.execute(_usage_sql(span), params).fetchall()
    if raw_from > iso(since):  # older than the raw samples: their 1-minute rollups
        last_bucket = iso(until - timedelta(seconds=60))
        rows += conn.execute(_ROLLUP_USAGE, (iso(since), raw_from, last_bucket)).fetchall()
    out: dict[tuple[str, str], dict[str, tuple[float | None, float | None, float]]] = {}
    for node, kind, day, gpu_s, joules, up_s in rows:
        days = out.setdefault((node, kind), {})
        old = days.get(day, (None, None, 0.0))
        days[day] = (_plus(old[0], gpu_s), _plus(old[1], joules), old[2] + (up_s or 0.0))
    return out


def economics(
    conn: sqlite3.Connection,
    period: timedelta,
    settings: EconomicsSettings,
    at: datetime,
    max_span: float = MAX_SPAN,
) -> Economics:
    """Economics of every node over ``[at − period, at]``, as stored by ``at``."""
    until, since = at, at - period
    cells: dict[str, dict[str, _Cell]] = {}  # node (or device id) → UTC day → sums
    network_of: dict[str, str | None] = {}
    for node, network in conn.execute("SELECT node, network FROM nodes ORDER BY network IS NULL"):
        network_of.setdefault(node, network)

    rewards = conn.execute(
        "SELECT COALESCE(node, device_id), network, token, at, SUM(amount) FROM rewards "
        "WHERE at >= ? AND at <= ? AND fetched_at <= ? GROUP BY 1, 2, 3, 4 ORDER BY at",
        (iso(since), iso(until), iso(until)),
    ).fetchall()
    series = {
        token: _prices(conn, coin, since, until)
        for token in {r[2] for r in rewards}
        if (coin := TOKEN_COINS.get(token))
    }
    for who, network, token, when, amount in rewards:
        network_of.setdefault(who, network)
        cell = cells.setdefault(who, {}).setdefault(when[:10], _Cell())
        cell.rewards[token] = cell.rewards.get(token, 0.0) + amount
        if amount == 0:
            continue  # a block the device was not in: nothing to value
        price = _price_at(series.get(token, []), when)
        if price is None:
            cell.unpriced += amount
            continue
        cell.value_usd += amount * price[1]
        age = (parse_iso(when) - parse_iso(price[0])).total_seconds()
        cell.price_age_s = _max(cell.price_age_s, age)

    kind_of: dict[str, str] = {}
    up_of: dict[str, float] = {}
    usage = _usage(conn, since, until, _bound_poll_id(conn, until), max_span)
    for (node, kind), usage_days in usage.items():
        up = sum(d[2] for d in usage_days.values())
        if node in kind_of and up_of[node] >= up:
            continue  # seen both ways: keep the kind that saw it up longest
        kind_of[node], up_of[node] = kind, up
    for node, kind in kind_of.items():
        node_days = cells.setdefault(node, {})
        for cell in node_days.values():  # a kind replaced above must not leave its usage
            cell.gpu_s, cell.joules, cell.watts_missing = None, None, False
        for day, (gpu_s, joules, _) in usage[(node, kind)].items():
            cell = node_days.setdefault(day, _Cell())
            cell.gpu_s, cell.joules = gpu_s, joules
            cell.watts_missing = gpu_s is not None and joules is None

    period_days = period.total_seconds() / DAY
    nodes: list[Figures] = []
    by_network: dict[str | None, _Cell] = {}
    by_day: dict[str, _Cell] = {}
    fleet = _Cell()
    for who in sorted(cells):
        total = _Cell()
        for day, cell in cells[who].items():
            total.add(cell)
            by_day.setdefault(day, _Cell()).add(cell)
        network = network_of.get(who)
        f = _figures(who, total, settings, network, kind_of.get(who))
        nodes.append(_with_payback(f, settings.hardware_cost_for(who, network), period_days))
        by_network.setdefault(network, _Cell()).add(total)
        fleet.add(total)
    networks = [
        _figures(net or "no network", by_network[net], settings, net)
        for net in sorted(by_network, key=lambda n: (n is None, n or ""))
    ]
    days = [_figures(day, by_day[day], settings) for day in sorted(by_day)]
    return Economics(
        since, until, settings, nodes, networks, days, _figures("fleet", fleet, settings)
    )
