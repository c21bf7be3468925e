"""Akash Network console API: capacity, GPUs, GPU prices per model, leases and daily spend.

Endpoints, all under ``base_url``, no auth:

- ``/v1/network-capacity``: the current nested shape (``resources.cpu.active`` …) and the older
  flat shape (``activeCPU``, ``totalCPU`` …) give the same normalised metrics. CPU comes in
  millicores and is stored as CPUs (÷ 1000); memory and storage in bytes. ``gpu_utilization_pct``
  is ``gpu.active / gpu.total * 100`` from this body, and only from it.
- ``/v1/gpu``: the network totals ``gpus_allocated`` and ``gpus_allocatable`` as metrics only.
- ``/v1/gpu-prices``: the GPU model rows. Endpoints are parsed independently, so the rows cannot
  join ``/v1/gpu``'s per-model counts; gpu-prices carries its own ``availability`` per model, so
  each row takes ``total``/``available`` from it and the price from ``price.weightedAverage``
  (``avg`` when that is missing; a ``null`` price stays missing). One row per model per poll: the
  key is (vendor, model, ram); entries that differ only by interface (PCIe, SXM) are merged,
  counts summed and prices averaged weighted by their GPU totals. The row is named
  ``"<vendor> <model>"`` (``"nvidia a100"``), with the memory appended (``"nvidia a100 80Gi"``)
  only when two memory sizes of one model are listed, since the cache keys rows by name.
- ``/v1/dashboard-data``: active leases and daily spend. ``dailyUUsdSpent`` (all spend valued in
  USD) is preferred; newer console builds serve it as a hard-coded 0 ("USD totals are not exposed
  yet"), so a 0 there counts as not published and ``dailyUUsdcSpent`` (stablecoin spend) is used.
  The dashboard's copy of the network capacity (``networkCapacity``, misspelt
  ``netwqorkCapacity`` in the published schema) is accepted but not read: capacity metrics come
  from ``/v1/network-capacity`` alone, so one metric never has two endpoints in one poll.

``/v1/providers`` is large and skipped: ``providers_active`` comes from network-capacity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sources.models import ErrorKind, GpuModel, NetworkMetric, SourceError
from sources.models import _finite_or_none as lax_number
from sources.network import Endpoint, NetworkSource, Parsed, metric, utilization
from sources.text import one_line

NETWORK = "akash"
DEFAULT_ROOT = "https://console-api.akash.network"
NETWORK_CAPACITY = "/v1/network-capacity"
GPU = "/v1/gpu"
GPU_PRICES = "/v1/gpu-prices"
DASHBOARD = "/v1/dashboard-data"
MILLI = 1000.0
MICRO = 1_000_000.0
MAX_INVALID_SHARE = 0.2
_FLAT_NAMES = {"cpu": "CPU", "gpu": "GPU", "memory": "Memory", "storage": "Storage"}


# -- small helpers -------------------------------------------------------------------------------


def _count(value: Any) -> float | None:
    """A lax, non-negative, finite number; anything else is missing (never 0)."""
    number = lax_number(value)
    return number if number is not None and number >= 0 else None


def _scaled(value: Any, divisor: float) -> float | None:
    number = _count(value)
    return number / divisor if number is not None else None


def _schema(endpoint: str, what: str) -> SourceError:
    return SourceError(ErrorKind.SCHEMA, f"{endpoint}: {what} (schema changed?)")


def _object(body: Any, endpoint: str) -> dict[str, Any]:
    """The body as an object; an error envelope with a status code in a 200 is an error."""
    if not isinstance(body, dict):
        raise _schema(endpoint, f"expected an object, got {type(body).__name__}")
    code = lax_number(body.get("statusCode"))
    if code is not None and code >= 400:
        text = body.get("message") or body.get("error") or ""
        kind = ErrorKind.HTTP_5XX if code >= 500 else ErrorKind.HTTP_4XX
        if code == 429:
            kind = ErrorKind.RATE_LIMITED
        raise SourceError(kind, f"{endpoint}: error {code:g} in the body: {one_line(text, 120)}")
    return body


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


# -- /v1/network-capacity ------------------------------------------------------------------------


def _nested(resources: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """(active, total) per resource from the nested ``resources`` object."""
    found: dict[str, tuple[Any, Any]] = {}
    for name in ("cpu", "gpu", "memory"):
        section = _dict(resources.get(name))
        found[name] = (section.get("active"), section.get("total"))
    storage = _dict(resources.get("storage"))
    total = storage.get("total")
    if isinstance(total, dict):  # {ephemeral, persistent, total: {active, total}}
        found["storage"] = (total.get("active"), total.get("total"))
    elif "active" in storage or "total" in storage:  # one undivided {active, total}
        found["storage"] = (storage.get("active"), total)
    else:  # no sum given: ephemeral + persistent, only when both have the figure
        parts = [_dict(storage.get("ephemeral")), _dict(storage.get("persistent"))]
        pair: list[float | None] = []
        for field in ("active", "total"):
            values = [_count(part.get(field)) for part in parts]
            pair.append(None if None in values else sum(v for v in values if v is not None))
        found["storage"] = (pair[0], pair[1])
    return found


def _flat(body: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """(active, total) per resource from the older flat keys (``activeCPU``, ``totalCPU`` …)."""
    return {k: (body.get(f"active{v}"), body.get(f"total{v}")) for k, v in _FLAT_NAMES.items()}


def parse_network_capacity(body: Any, endpoint: str) -> Parsed:
    """``/v1/network-capacity`` in either shape: providers, CPU, GPU, memory, storage."""
    body = _object(body, endpoint)
    if "resources" in body:
        if not isinstance(body["resources"], dict):
            raise _schema(endpoint, "resources is not an object")
        pairs = _nested(body["resources"])
    elif any(f"{state}{r}" in body for state in ("active", "total") for r in _FLAT_NAMES.values()):
        pairs = _flat(body)
    else:
        raise _schema(endpoint, "neither resources nor activeCPU/totalCPU")
    out: list[NetworkMetric] = []
    providers = _count(body.get("activeProviderCount"))
    metric(NETWORK, "providers_active", providers, "count", endpoint, out)
    cpu_active, cpu_total = (_scaled(v, MILLI) for v in pairs["cpu"])
    metric(NETWORK, "cpus_active", cpu_active, "count", endpoint, out)
    metric(NETWORK, "cpus_total", cpu_total, "count", endpoint, out)
    gpu_active, gpu_total = (_count(v) for v in pairs["gpu"])
    metric(NETWORK, "gpus_active", gpu_active, "count", endpoint, out)
    metric(NETWORK, "gpus_total", gpu_total, "count", endpoint, out)
    metric(NETWORK, "gpu_utilization_pct", utilization(gpu_active, gpu_total), "%", endpoint, out)
    for name in ("memory", "storage"):
        active, total = (_count(v) for v in pairs[name])
        metric(NETWORK, f"{name}_active_bytes", active, "bytes", endpoint, out)
        metric(NETWORK, f"{name}_total_bytes", total, "bytes", endpoint, out)
    if not any(m.metric != "providers_active" for m in out):
        raise _schema(endpoint, "no CPU, GPU, memory or storage figures")
    return out, []


# -- /v1/gpu -------------------------------------------------------------------------------------


def parse_gpu(body: Any, endpoint: str) -> Parsed:
    """``/v1/gpu``: network-wide GPUs allocated and allocatable (per-model rows: gpu-prices)."""
    gpus = _object(body, endpoint).get("gpus")
    total = gpus.get("total") if isinstance(gpus, dict) else None
    if not isinstance(total, dict):
        raise _schema(endpoint, "no gpus.total")
    out: list[NetworkMetric] = []
    metric(NETWORK, "gpus_allocated", _count(total.get("allocated")), "count", endpoint, out)
    metric(NETWORK, "gpus_allocatable", _count(total.get("allocatable")), "count", endpoint, out)
    if not out:
        raise _schema(endpoint, "no gpus.total.allocated or allocatable")
    return out, []


# -- /v1/gpu-prices ------------------------------------------------------------------------------

_RAM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_RAM_SCALE = {
    **dict.fromkeys(("", "g", "gi", "gb", "gib"), 1.0),
    **dict.fromkeys(("t", "ti", "tb", "tib"), 1024.0),
    **dict.fromkeys(("m", "mi", "mb", "mib"), 1 / 1024),
}


def memory_gb(ram: Any) -> float | None:
    """GPU memory in GB from Akash's ``ram`` (``"80Gi"``, ``"24Gi"``, ``"80GB"``, ``80``).

    GPU memory is sold as "80GB" while it is 80 GiB, so ``Gi`` is counted as GB, as vendors do.
    """
    number: float | None
    if isinstance(ram, str):
        match = _RAM.match(ram)
        scale = _RAM_SCALE.get(match.group(2).lower()) if match else None
        if match is None or scale is None:
            return None
        number = float(match.group(1)) * scale
    else:
        number = _count(ram)
    return number if number is not None and number > 0 else None


def _price(value: Any) -> float | None:
    """USD per GPU-hour: ``weightedAverage``, else ``avg``; a price in another currency is not."""
    if not isinstance(value, dict):
        return None
    currency = value.get("currency")
    if isinstance(currency, str) and currency.strip().upper() not in ("USD", "USDC"):
        return None
    price = _count(value.get("weightedAverage"))
    return price if price is not None else _count(value.get("avg"))


@dataclass
class _Entry:
    vendor: str
    model: str
    ram: str
    total: float | None
    available: float | None
    price: float | None


def _entry(item: Any) -> _Entry | None:
    if not isinstance(item, dict):
        return None
    vendor, model = item.get("vendor"), item.get("model")
    if not (
        isinstance(vendor, str) and vendor.strip() and isinstance(model, str) and model.strip()
    ):
        return None
    ram = item.get("ram")
    availability = _dict(item.get("availability"))
    return _Entry(
        vendor.strip(),
        model.strip(),
        ram.strip() if isinstance(ram, str) else "" if ram is None else str(ram),
        _count(availability.get("total")),
        _count(availability.get("available")),
        _price(item.get("price")),
    )


def _merged(label: str, entries: list[_Entry], endpoint: str) -> GpuModel:
    """Entries that differ only by interface: counts summed, prices weighted by GPU totals."""
    totals = [e.total for e in entries]
    availables = [e.available for e in entries]
    priced = [e for e in entries if e.price is not None]
    price: float | None = None
    if len(priced) == 1:
        price = priced[0].price
    elif priced:
        weights = [e.total or 0.0 for e in priced]
        prices = [e.price or 0.0 for e in priced]
        if sum(weights) > 0:
            price = sum(p * w for p, w in zip(prices, weights, strict=True)) / sum(weights)
        else:
            price = sum(prices) / len(prices)
    return GpuModel(
        network=NETWORK,
        model=label,
        memory_gb=memory_gb(entries[0].ram),
        cards=None,
        total=sum(t for t in totals if t is not None) if None not in totals else None,
        available=sum(a for a in availables if a is not None) if None not in availables else None,
        price_usd_gpu_hour=price,
        endpoint=endpoint,
    )


def parse_gpu_prices(body: Any, endpoint: str) -> Parsed:
    """``/v1/gpu-prices``: one GPU model row per (vendor, model, ram) with availability, price."""
    models = _object(body, endpoint).get("models")
    if not isinstance(models, list):
        raise _schema(endpoint, "no models list")
    entries = [_entry(item) for item in models]
    valid = [e for e in entries if e is not None]
    invalid = len(entries) - len(valid)
    if entries and invalid > len(entries) * MAX_INVALID_SHARE:
        raise _schema(endpoint, f"{invalid} of {len(entries)} models have no vendor or model")
    by_key: dict[tuple[str, str, str], list[_Entry]] = {}
    for e in valid:
        by_key.setdefault((e.vendor.lower(), e.model.lower(), e.ram.lower()), []).append(e)
    rams: dict[tuple[str, str], set[str]] = {}
    for vendor, model, ram in by_key:
        rams.setdefault((vendor, model), set()).add(ram)
    rows = []
    for (vendor, model, _ram), group in by_key.items():
        label = f"{group[0].vendor} {group[0].model}"
        if len(rams[(vendor, model)]) > 1 and group[0].ram:
            label += f" {group[0].ram}"
        rows.append(_merged(label, group, endpoint))
    return [], rows


# -- /v1/dashboard-data --------------------------------------------------------------------------


def parse_dashboard(body: Any, endpoint: str) -> Parsed:
    """``/v1/dashboard-data``: active leases and the daily spend in USD and AKT."""
    body = _object(body, endpoint)
    now = body.get("now")
    if not isinstance(now, dict):
        raise _schema(endpoint, "no now object")
    usd = _scaled(now.get("dailyUUsdSpent"), MICRO)
    if not usd:  # missing, or the hard-coded 0 of newer builds: stablecoin spend instead
        usd = _scaled(now.get("dailyUUsdcSpent"), MICRO)
    out: list[NetworkMetric] = []
    metric(NETWORK, "leases_active", _count(now.get("activeLeaseCount")), "count", endpoint, out)
    metric(NETWORK, "spend_daily_usd", usd, "USD", endpoint, out)
    akt = _scaled(now.get("dailyUAktSpent"), MICRO)
    metric(NETWORK, "spend_daily_akt", akt, "AKT", endpoint, out)
    if not out:
        raise _schema(endpoint, "no now.activeLeaseCount or daily spend")
    return out, []


# -- the source ----------------------------------------------------------------------------------

ENDPOINTS = (
    Endpoint(NETWORK_CAPACITY, parse_network_capacity),
    Endpoint(GPU, parse_gpu),
    Endpoint(GPU_PRICES, parse_gpu_prices),
    Endpoint(DASHBOARD, parse_dashboard),
)


@dataclass
class AkashSource(NetworkSource):
    """Akash capacity, GPUs, prices and leases; each endpoint stored on its own."""

    ENDPOINTS = ENDPOINTS
    base_url: str = DEFAULT_ROOT
    name: str = "akash"
