"""io.net: network-wide explorer figures, the latest reward block and the cloud GPU catalogue.

The explorer's network endpoints are undocumented: no body has been published, only code that
reads them. So each parser accepts the shapes that code implies (``data`` an object or a list of
rows, snake_case or camelCase keys, numbers as strings), sums only what is clearly countable, and
raises SourceError (``schema``) when nothing it needs is there, rather than guessing.
Unknown fields are ignored.

Endpoints, all under ``base_url`` and without auth:

- ``/v1/io-explorer/network/info``: GPUs and CPUs, total, active (or "hired") and verified.
  ``data`` may be one object, a list of per-network rows (``{name, total_gpu, active_gpu, …}``,
  summed) or per-type rows (``{name: "GPU", total, active}``). A figure is summed only when every
  row that reports that kind of device has it; a partial sum would under-count, so it is left
  out. ``devices_*`` is GPUs + CPUs only when both are published; ``gpu_utilization_pct`` is
  ``gpus_active / gpus_total * 100`` from the same body.
- ``/v1/io-explorer/network/info/clusters``: running clusters, network earnings (unit ``IO`` only
  when the body says so, else no unit) and compute hours served.
- ``/v1/io-blocks/blocks/all/1``: the newest *Completed* hourly block; the block in progress has
  partial figures.
- ``/v1/io-cloud/vmaas/hardware``: the VM catalogue as GPU model rows. ``price`` is USD per hour
  for the whole machine, so the price per GPU-hour is ``price / num_cards``. The live catalogue
  also lists CPU-only machines (``"name": ""``, ``"num_cards": 0``): they are out of scope for
  GPU models and skipped, never counted as broken entries. A sold-out offer is still a model,
  with 0 available (a real figure). ``price: 0`` (a free or unpriced offer) is a placeholder:
  the price is missing, never 0. The endpoint is rejected (``schema``) only when the body is not
  an object, has no ``data.hardware`` list, or more than 20 % of its GPU entries are not
  objects or have no name.

The cache keeps one GPU model row per (network, model) and poll, so catalogue entries that share
a name are told apart by their card count (``"H100 SXM5 x8"``) and entries that still collide
(the same machine from several suppliers) are merged: available counts summed when all are
known, and the lowest price per GPU-hour among entries not sold out (what a buyer pays "from").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sources.base import RequestBudget
from sources.models import ErrorKind, GpuModel, NetworkMetric, SourceError
from sources.models import _finite_or_none as lax_number
from sources.network import Endpoint, NetworkSource, Parsed, metric, utilization
from sources.text import one_line

NETWORK = "io.net"
DEFAULT_ROOT = "https://api.io.solutions"
NETWORK_INFO = "/v1/io-explorer/network/info"
CLUSTERS = "/v1/io-explorer/network/info/clusters"
BLOCKS = "/v1/io-blocks/blocks/all/1"
HARDWARE = "/v1/io-cloud/vmaas/hardware"
MAX_INVALID_SHARE = 0.2
MAX_VRAM_GB = 2048.0
"""Above this a ``vram_per_card`` is surely not in GB (MiB or bytes): left out, not guessed."""

_KINDS = ("gpu", "cpu")
_STATES: dict[str, tuple[str, ...]] = {
    "total": ("total",),
    "active": ("active", "hired"),  # the Explorer says "hired"; public code reads active_gpu
    "verified": ("verified",),
}
_TYPE_KEYS = ("name", "type", "devicetype", "kind", "hardwaretype", "category")
_AGGREGATE_NAMES = {"total", "all", "overall"}


# -- small helpers -------------------------------------------------------------------------------


def _norm(key: str) -> str:
    """``total_gpus``, ``totalGpus`` and ``Total-GPUs`` all become ``totalgpus``."""
    return "".join(ch for ch in key.lower() if ch.isalnum())


def _keyed(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {_norm(k): v for k, v in row.items() if isinstance(k, str)}


def _count(value: Any) -> float | None:
    """A lax, non-negative, finite number (``"12"`` counts; ``-1``, ``"n/a"`` and NaN do not)."""
    number = lax_number(value)
    return number if number is not None and number >= 0 else None


def _first(row: Mapping[str, Any], keys: Iterable[str]) -> float | None:
    for key in keys:
        if key in row:
            number = _count(row[key])
            if number is not None:
                return number
    return None


def _schema(endpoint: str, what: str) -> SourceError:
    return SourceError(ErrorKind.SCHEMA, f"{endpoint}: {what} (schema changed?)")


def _check_status(body: Any, endpoint: str) -> None:
    """Explorer endpoints wrap in ``{status, data}``: anything but "succeeded" is an error."""
    if isinstance(body, dict) and "status" in body:
        status = body["status"]
        if not (isinstance(status, str) and status.strip().lower() == "succeeded"):
            detail = body.get("message") or body.get("detail") or body.get("error")
            suffix = f": {one_line(detail, 120)}" if isinstance(detail, str) else ""
            raise SourceError(
                ErrorKind.HTTP_5XX,
                f"{endpoint}: upstream reported status {one_line(status, 40)!r}{suffix}",
            )


def _payload(body: Any, endpoint: str) -> Any:
    """The ``data`` of an explorer envelope (or the body itself when there is no wrapper)."""
    if not isinstance(body, dict):
        raise _schema(endpoint, f"expected an object, got {type(body).__name__}")
    _check_status(body, endpoint)
    return body["data"] if "data" in body else body


# -- /v1/io-explorer/network/info ----------------------------------------------------------------


def _row_kind(row: Mapping[str, Any]) -> str | None:
    """``"gpu"``/``"cpu"`` when a row names its device type (``{name: "GPU", total: …}``)."""
    for key in _TYPE_KEYS:
        value = row.get(key)
        if isinstance(value, str):
            text = value.lower()
            found = [kind for kind in _KINDS if kind in text]
            if len(found) == 1:
                return found[0]
    return None


def _specific(row: Mapping[str, Any], kind: str, state: str) -> float | None:
    keys = []
    for word in _STATES[state]:
        keys += [f"{word}{kind}", f"{word}{kind}s", f"{kind}{word}", f"{kind}s{word}"]
    return _first(row, keys)


def _rows(data: Any) -> list[tuple[str | None, dict[str, Any]]]:
    """Every object that may hold counts, with the device type it is about (if it says)."""
    items = data if isinstance(data, list) else [data]
    rows: list[tuple[str | None, dict[str, Any]]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        row = _keyed(item)
        rows.append((_row_kind(row), row))
        for key, value in row.items():  # {gpu: {total, active}, cpu: {…}}
            if key in ("gpu", "gpus", "cpu", "cpus") and isinstance(value, dict):
                rows.append((key[:3], _keyed(value)))
    named = [r for r in rows if str(r[1].get("name", "")).strip().lower() in _AGGREGATE_NAMES]
    return named or rows  # an explicit "total" row next to per-network rows: don't double count


def _device_counts(rows: list[tuple[str | None, dict[str, Any]]], kind: str) -> dict[str, float]:
    """Sum each state over the rows that report this kind; a partial sum is left out."""
    per_row: list[dict[str, float | None]] = []
    for row_kind, row in rows:
        values = {}
        for state in _STATES:
            value = _specific(row, kind, state)
            if value is None and row_kind == kind:
                value = _first(row, _STATES[state])
            values[state] = value
        if any(v is not None for v in values.values()):
            per_row.append(values)
    sums: dict[str, float] = {}
    for state in _STATES:
        column = [r[state] for r in per_row]
        if column and all(v is not None for v in column):
            sums[state] = sum(v for v in column if v is not None)
    return sums


def parse_network_info(body: Any, endpoint: str) -> Parsed:
    """``/v1/io-explorer/network/info``: GPU, CPU and device counts and GPU utilization."""
    rows = _rows(_payload(body, endpoint))
    gpus, cpus = _device_counts(rows, "gpu"), _device_counts(rows, "cpu")
    if not gpus and not cpus:
        raise _schema(endpoint, "no GPU or CPU counts in data")
    out: list[NetworkMetric] = []
    for state in ("total", "active"):
        both = state in gpus and state in cpus
        total = gpus[state] + cpus[state] if both else None
        metric(NETWORK, f"devices_{state}", total, "count", endpoint, out)
    for kind, found in (("gpu", gpus), ("cpu", cpus)):
        for state in _STATES:
            metric(NETWORK, f"{kind}s_{state}", found.get(state), "count", endpoint, out)
        if kind == "gpu":
            util = utilization(gpus.get("active"), gpus.get("total"))
            metric(NETWORK, "gpu_utilization_pct", util, "%", endpoint, out)
    return out, []


# -- /v1/io-explorer/network/info/clusters -------------------------------------------------------

_CLUSTERS_RUNNING = ("runningclusters", "clustersrunning", "activeclusters", "clustersactive")
_COMPUTE_HOURS = (
    "totalcomputehoursserved",
    "totalcomputehours",
    "computehoursserved",
    "computehourstotal",
)
_EARNINGS_BY_UNIT = (
    ("totalearningsiocoin", "IO"),
    ("totalearningsio", "IO"),
    ("totalearningsusd", "USD"),
)
_UNIT_KEYS = ("currency", "unit", "token", "coin", "earningsunit", "earningscurrency")


def _stated_unit(row: Mapping[str, Any]) -> str:
    """The earnings unit when the body names one ("IO", "$IO", "USD"); otherwise unknown."""
    for key in _UNIT_KEYS:
        value = row.get(key)
        if isinstance(value, str):
            text = value.strip().lstrip("$").upper()
            if text in ("IO", "USD"):
                return text
    return ""


def _sum_all(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> float | None:
    """The sum over rows when every row has the field; None otherwise (never a partial sum)."""
    values = [_first(row, keys) for row in rows]
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def parse_clusters(body: Any, endpoint: str) -> Parsed:
    """``/v1/io-explorer/network/info/clusters``: running clusters, earnings, compute hours."""
    data = _payload(body, endpoint)
    items = data if isinstance(data, list) else [data]
    rows = [_keyed(item) for item in items if isinstance(item, dict)]
    if not rows:
        raise _schema(endpoint, "no cluster figures in data")
    out: list[NetworkMetric] = []
    metric(NETWORK, "clusters_running", _sum_all(rows, _CLUSTERS_RUNNING), "count", endpoint, out)
    earnings: float | None = None
    unit = ""
    for key, key_unit in _EARNINGS_BY_UNIT:
        earnings = _sum_all(rows, (key,))
        if earnings is not None:
            unit = key_unit
            break
    if earnings is None:
        earnings = _sum_all(rows, ("totalearnings",))
        units = {_stated_unit(row) for row in rows}
        unit = units.pop() if len(units) == 1 else ""
    metric(NETWORK, "earnings_total", earnings, unit, endpoint, out)
    metric(NETWORK, "compute_hours_total", _sum_all(rows, _COMPUTE_HOURS), "h", endpoint, out)
    if not out:
        raise _schema(endpoint, "no running_clusters, total_earnings or compute hours")
    return out, []


# -- /v1/io-blocks/blocks/all/{page} -------------------------------------------------------------


def _block_time(block: Mapping[str, Any]) -> datetime | None:
    """The hourly epoch a block stands for, from ``block_id`` (never from ``time_and_date``)."""
    value = block.get("blockid")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is None else when.astimezone(UTC).replace(tzinfo=None)


def _newest_completed(blocks: list[Any]) -> dict[str, Any] | None:
    completed = [
        _keyed(b)
        for b in blocks
        if isinstance(b, dict) and str(b.get("status", "")).strip().lower() == "completed"
    ]
    if not completed:
        return None
    times = [_block_time(b) for b in completed]
    if all(t is not None for t in times):  # the first of equal times: page order breaks ties
        return completed[max(range(len(completed)), key=lambda i: times[i] or datetime.min)]
    return completed[0]  # ids we cannot order: trust the page order (newest first)


def parse_blocks(body: Any, endpoint: str) -> Parsed:
    """``/v1/io-blocks/blocks/all/1``: the newest completed block's emission and workers."""
    if isinstance(body, dict) and "blocks" not in body and isinstance(body.get("data"), dict):
        body = body["data"]
    if not isinstance(body, dict) or not isinstance(body.get("blocks"), list):
        raise _schema(endpoint, "no blocks list")
    block = _newest_completed(body["blocks"])
    if block is None:
        raise _schema(endpoint, "no completed block on the first page")
    out: list[NetworkMetric] = []
    metric(NETWORK, "block_emission", _first(block, ("totalblockemission",)), "IO", endpoint, out)
    metric(NETWORK, "block_workers", _first(block, ("totalworkers",)), "count", endpoint, out)
    metric(NETWORK, "block_gpus_verified", _first(block, ("verifiedgpus",)), "count", endpoint, out)
    metric(NETWORK, "block_cpus_verified", _first(block, ("verifiedcpus",)), "count", endpoint, out)
    if not out:
        raise _schema(endpoint, "the newest completed block has no emission or worker counts")
    metric(NETWORK, "blocks_total", _count(body.get("total_blocks")), "count", endpoint, out)
    return out, []


# -- /v1/io-cloud/{vmaas,caas}/hardware ----------------------------------------------------------

_GB = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(gb|gib|gi|g)?\s*$", re.IGNORECASE)


def _vram_gb(value: Any) -> float | None:
    """``vram_per_card`` in GB: a number, or a string such as ``"80"``/``"80GB"``/``"80Gi"``."""
    number: float | None
    if isinstance(value, str):
        match = _GB.match(value)
        number = float(match.group(1)) if match else None
    else:
        number = _count(value)
    return number if number is not None and 0 < number <= MAX_VRAM_GB else None


@dataclass
class _Offer:
    name: str
    cards: int | None
    memory_gb: float | None
    available: int | None
    price: float | None


def _cpu_only(item: Any) -> bool:
    """A machine with no GPU (``num_cards`` 0, typically with ``"name": ""``): not a GPU model."""
    return isinstance(item, dict) and _count(item.get("num_cards")) == 0


def _offer(item: Mapping[str, Any]) -> _Offer | None:
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    cards_value = _count(item.get("num_cards"))
    cards = (
        int(cards_value) if cards_value is not None and cards_value == int(cards_value) else None
    )
    price = _count(item.get("price"))
    if price == 0:  # free/promotional offers say 0: not a rate anyone pays, so no price
        price = None
    per_gpu = price / cards if price is not None and cards else None
    replicas = _count(item.get("available_replicas"))
    available: int | None = None
    if replicas is not None and replicas == int(replicas):
        available = int(replicas)
    elif item.get("sold_out") is True:
        available = 0
    memory = _vram_gb(item.get("vram_per_card"))
    return _Offer(name.strip(), cards or None, memory, available, per_gpu)


def _merge(label: str, offers: list[_Offer], endpoint: str) -> GpuModel:
    """One row for offers that share a label: counts summed, the lowest buyable price."""
    counts = [o.available for o in offers]
    available = sum(c for c in counts if c is not None) if None not in counts else None
    buyable = [o.price for o in offers if o.price is not None and o.available != 0]
    priced = buyable or [o.price for o in offers if o.price is not None]
    memory = next((o.memory_gb for o in offers if o.memory_gb is not None), None)
    cards = {o.cards for o in offers}
    return GpuModel(
        network=NETWORK,
        model=label,
        memory_gb=memory,
        cards=cards.pop() if len(cards) == 1 else None,
        total=None,
        available=available,
        price_usd_gpu_hour=min(priced) if priced else None,
        endpoint=endpoint,
    )


def parse_hardware(body: Any, endpoint: str) -> Parsed:
    """``/v1/io-cloud/vmaas/hardware`` (or ``caas``): the catalogue as GPU model rows."""
    if not isinstance(body, dict):
        raise _schema(endpoint, f"expected an object, got {type(body).__name__}")
    data = body.get("data", body)
    hardware = data.get("hardware") if isinstance(data, dict) else data
    if not isinstance(hardware, list):
        raise _schema(endpoint, "no data.hardware list")
    in_scope = [item for item in hardware if not _cpu_only(item)]  # CPU machines: skipped
    offers = [_offer(item) if isinstance(item, dict) else None for item in in_scope]
    valid = [o for o in offers if o is not None]
    invalid = len(offers) - len(valid)
    if offers and invalid > len(offers) * MAX_INVALID_SHARE:
        raise _schema(endpoint, f"{invalid} of {len(offers)} GPU hardware entries have no name")
    cards_by_name: dict[str, set[int | None]] = {}
    for o in valid:
        cards_by_name.setdefault(o.name, set()).add(o.cards)
    grouped: dict[str, list[_Offer]] = {}
    for o in valid:
        several = len(cards_by_name[o.name]) > 1 and o.cards is not None
        grouped.setdefault(f"{o.name} x{o.cards}" if several else o.name, []).append(o)
    return [], [_merge(label, group, endpoint) for label, group in grouped.items()]


# -- the source ----------------------------------------------------------------------------------

ENDPOINTS = (
    Endpoint(NETWORK_INFO, parse_network_info),
    Endpoint(CLUSTERS, parse_clusters),
    Endpoint(BLOCKS, parse_blocks),
    Endpoint(HARDWARE, parse_hardware),
)


@dataclass
class IonetSource(NetworkSource):
    """io.net network figures and GPU catalogue; each endpoint stored on its own."""

    ENDPOINTS = ENDPOINTS
    base_url: str = DEFAULT_ROOT
    name: str = "ionet"
    budget: RequestBudget | None = field(default_factory=lambda: RequestBudget(150, 10.0))
    """io.net documents 150 requests per 10 s for the whole explorer API."""
