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
from datetime import datetime
from typing import Any

from cache.db import iso, utc_now
from cache.network_status import EXPORT_STATES, NodeNetStatus, node_statuses
from cache.queries import GpuModelRow, MetricValue, NodeRow, Rankings, latest_fleet
from cache.rewards import RewardRow
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
)
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
REWARDS_KEYS = ("node", "network", "device_id", "at", "amount", "token", "source", "fetched_at")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def number(value: float | None) -> float | int | None:
    """Integral floats as ints (served ``70187`` exports as ``70187``, not ``70187.0``)."""
    if value is not None and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def rankings_records(rankings: Rankings | None) -> list[dict[str, Any]]:
    """One dict per project with exactly :data:`RANKINGS_KEYS`; missing values are None."""
    if rankings is None:
        return []
    fetched_at = iso(rankings.poll.data_at)
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
        }
        for coin in rankings.coins
    ]


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


def fleet_export(conn: sqlite3.Connection, at: datetime | None = None) -> list[dict[str, Any]]:
    """``export fleet``: each node's latest sample as of ``at`` (or now), with the network's view.

    The states use :class:`cache.network_status.Limits`' defaults, like the ``status_disagrees``
    alert (ours at most 5 min old, the network's 30 min), not the Fleet screen's stale times.
    """
    return fleet_records(latest_fleet(conn, at), node_statuses(conn, at or utc_now(), at))


def rewards_records(rewards: list[RewardRow]) -> list[dict[str, Any]]:
    """One dict per stored reward, oldest first; ``at`` is when it was earned (block start)."""
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
        }
        for r in rewards
    ]


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
