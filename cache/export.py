"""Exports: the latest snapshot of a table as JSON or CSV, with a fixed key set per table.

CSV cells that a spreadsheet would run as a formula (leading = + - @ TAB CR) are prefixed
with ``'``; numbers are left as numbers in JSON and written plainly in CSV.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cache.db import iso, utc_now
from cache.market_devices import MarketDevices, market_devices
from cache.network_status import EXPORT_STATES, NodeNetStatus, node_statuses
from cache.queries import (
    GpuModelRow,
    MetricValue,
    NodeRow,
    Rankings,
    latest_fleet,
    latest_rankings,
)
from cache.reward_misses import Miss, RewardMisses, reward_misses
from cache.rewards import RewardRow, reward_rows
from sources.figures import NODE_VALUE_FIELDS

RANKINGS_KEYS = (
    "coin_id",
    "symbol",
    "name",
    "rank",
    "price_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "change_24h_pct",
    "change_7d_pct",
    "change_30d_pct",
    "source",
    "fetched_at",
    "price_change_30d_pct",
    "devices_network",
    "devices_metric",
    "devices",
    "devices_fetched_at",
    "market_cap_per_device_usd",
    "devices_change_30d_pct",
)
"""A project of the snapshot, then the per-device figures (cache/market_devices.py): null for a
project whose network the app does not poll, or when a figure is not stored."""
NETWORKS_KEYS = ("network", "metric", "value", "unit", "source", "fetched_at")
GPU_MODELS_KEYS = (
    "network",
    "model",
    "memory_gb",
    "cards",
    "total",
    "available",
    "price_usd_gpu_hour",
    "source",
    "fetched_at",
)
NET_KEYS = ("net_status", "net_network", "net_device", "net_up", "net_fetched_at")
"""The network's view of the node (docs/alerts.md, "status_disagrees"): ``net_status`` is
``agrees``, ``network_down``, ``network_up`` or ``unknown`` (null for a node no network reports
on), ``net_up`` what the network said (null: nothing readable), ``net_fetched_at`` when it was
read."""
FLEET_KEYS = (
    "node",
    "network",
    "up",
    *NODE_VALUE_FIELDS,
    "source",
    "fetched_at",
    *NET_KEYS,
)
REWARDS_KEYS = (
    "node",
    "network",
    "device_id",
    "at",
    "amount",
    "token",
    "source",
    "fetched_at",
    "status",
    "missed",
    "cause",
    "seen_cause",
    "down_min",
    "sampled_min",
    "cpu_pct_mean",
    "gpu_util_pct_mean",
    "gpu_temp_max_c",
    "network_status",
)
"""A reward and, for an io.net block it did not earn (``missed``), io.net's ``cause`` and what
our history says about that hour (cache/reward_misses.py; null for earned blocks)."""
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def number(value: float | None) -> float | int | None:
    """Integral floats as ints (served ``70187`` exports as ``70187``, not ``70187.0``)."""
    if value is not None and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _per_device(d: MarketDevices) -> dict[str, Any]:
    return {
        "price_change_30d_pct": number(d.price_change_30d_pct),
        "devices_network": d.device.network if d.device else None,
        "devices_metric": d.device.metric if d.device else None,
        "devices": number(d.devices),
        "devices_fetched_at": iso(d.devices_at) if d.devices_at else None,
        "market_cap_per_device_usd": number(d.market_cap_per_device_usd),
        "devices_change_30d_pct": number(d.devices_change_30d_pct),
    }


def rankings_records(
    rankings: Rankings | None, per_device: dict[str, MarketDevices] | None = None
) -> list[dict[str, Any]]:
    """One dict per project with exactly :data:`RANKINGS_KEYS`; missing values are None.

    ``per_device``: :func:`cache.market_devices.market_devices` of the snapshot (without it the
    per-device keys are null, and ``price_change_30d_pct`` is CoinGecko's own).
    """
    if rankings is None:
        return []
    fetched_at = iso(rankings.poll.data_at)
    extra = per_device or {}
    return [
        {
            "coin_id": coin.coin_id,
            "symbol": coin.symbol,
            "name": coin.name,
            "rank": coin.rank,
            "price_usd": number(coin.price_usd),
            "market_cap_usd": number(coin.market_cap_usd),
            "volume_24h_usd": number(coin.volume_24h_usd),
            "change_24h_pct": number(coin.change_24h_pct),
            "change_7d_pct": number(coin.change_7d_pct),
            "change_30d_pct": number(coin.change_30d_pct),
            "source": rankings.poll.source,
            "fetched_at": fetched_at,
            **_per_device(
                extra.get(coin.coin_id)
                or MarketDevices(
                    device=None,
                    price_change_30d_pct=coin.change_30d_pct,
                    price_change_30d_from="market" if coin.change_30d_pct is not None else None,
                )
            ),
        }
        for coin in rankings.coins
    ]


def rankings_export(conn: sqlite3.Connection, at: datetime | None = None) -> list[dict[str, Any]]:
    """``export rankings``: the snapshot as of ``at`` with its per-device figures."""
    rankings = latest_rankings(conn, at)
    return rankings_records(rankings, market_devices(conn, rankings, at))


def networks_records(metrics: list[MetricValue]) -> list[dict[str, Any]]:
    """One dict per (network, metric): its most recent successfully fetched value."""
    return [
        {
            "network": m.network,
            "metric": m.metric,
            "value": number(m.value),
            "unit": m.unit,
            "source": m.source,
            "fetched_at": iso(m.fetched_at),
        }
        for m in metrics
    ]


def gpu_models_records(models: list[GpuModelRow]) -> list[dict[str, Any]]:
    """One dict per (network, GPU model) of each network's latest catalogue."""
    return [
        {
            "network": g.network,
            "model": g.model,
            "memory_gb": number(g.memory_gb),
            "cards": g.cards,
            "total": g.total,
            "available": g.available,
            "price_usd_gpu_hour": number(g.price_usd_gpu_hour),
            "source": g.source,
            "fetched_at": iso(g.fetched_at),
        }
        for g in models
    ]


def fleet_records(
    nodes: list[NodeRow], net: Mapping[str, NodeNetStatus] | None = None
) -> list[dict[str, Any]]:
    """One dict per (source, node) of the latest poll; GPU values null without a GPU.

    ``net`` (from :func:`cache.network_status.node_statuses`) fills :data:`NET_KEYS`; without
    it, or for a node no network reports on, they are null.
    """
    records = []
    for n in nodes:
        record: dict[str, Any] = {"node": n.node, "network": n.network, "up": n.up}
        for field in NODE_VALUE_FIELDS:
            value = n.values[field]
            record[field] = number(value) if isinstance(value, float) else value
        record["source"] = n.source_kind
        record["fetched_at"] = iso(n.fetched_at)
        status = net.get(n.node) if net else None
        reading = status.net if status else None
        record["net_status"] = EXPORT_STATES[status.state] if status else None
        record["net_network"] = reading.network if reading else None
        record["net_device"] = reading.device_id if reading else None
        record["net_up"] = reading.up if reading else None
        record["net_fetched_at"] = iso(reading.at) if reading else None
        records.append(record)
    return records


def _miss_fields(miss: Miss | None, missed: bool | None) -> dict[str, Any]:
    f = miss.figures if miss else None
    return {
        "missed": missed,
        "cause": miss.cause if miss else None,
        "seen_cause": miss.seen_label if miss else None,
        "down_min": number(miss.down_min) if miss and miss.down_min is not None else None,
        "sampled_min": number(miss.sampled_min) if miss and miss.sampled_min is not None else None,
        "cpu_pct_mean": f.cpu_pct if f else None,
        "gpu_util_pct_mean": f.gpu_util_pct if f else None,
        "gpu_temp_max_c": f.gpu_temp_max_c if f else None,
        "network_status": miss.network_status if miss else None,
    }


def fleet_export(conn: sqlite3.Connection, at: datetime | None = None) -> list[dict[str, Any]]:
    """``export fleet``: each node's latest sample as of ``at`` (or now), with the network's view.

    The states use :class:`cache.network_status.Limits`' defaults, like the ``status_disagrees``
    alert (ours at most 5 min old, the network's 30 min), not the Fleet screen's stale times.
    """
    return fleet_records(latest_fleet(conn, at), node_statuses(conn, at or utc_now(), at))


def rewards_records(
    rewards: list[RewardRow], misses: RewardMisses | None = None
) -> list[dict[str, Any]]:
    """One dict per stored reward, oldest first; ``at`` is when it was earned (block start).

    With ``misses``, each io.net block that paid nothing carries its explanation; ``missed`` is
    null for a reward of another network (no block to miss).
    """
    found = {(m.device_id, m.at): m for m in misses.misses} if misses else {}
    return [
        {
            "node": r.node,
            "network": r.network,
            "device_id": r.device_id,
            "at": iso(r.at),
            "amount": number(r.amount),
            "token": r.token,
            "source": r.source,
            "fetched_at": iso(r.fetched_at),
            "status": r.status,
            **_miss_fields(
                found.get((r.device_id, r.at)),
                (r.amount <= 0) if r.network == "io.net" else None,
            ),
        }
        for r in rewards
    ]


def rewards_export(conn: sqlite3.Connection, at: datetime | None = None) -> list[dict[str, Any]]:
    """``export rewards``: every reward stored by ``at`` (or now), missed blocks explained."""
    rows = reward_rows(conn, at)
    if not rows:
        return []
    until = at or datetime.now(UTC)
    return rewards_records(rows, reward_misses(conn, min(r.at for r in rows), until))


def neutralise(value: Any) -> Any:
    """Make a CSV cell inert in spreadsheets (CWE-1236); numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_json(records: Iterable[dict[str, Any]]) -> str:
    """A JSON list of objects; numbers stay numbers, missing values are null."""
    return json.dumps(list(records), ensure_ascii=False, indent=2) + "\n"


def to_csv(records: Iterable[dict[str, Any]], keys: Sequence[str]) -> str:
    """CSV with a header row of ``keys``; missing values are empty cells."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(keys)
    for record in records:
        writer.writerow(["" if record[k] is None else neutralise(record[k]) for k in keys])
    return out.getvalue()
