"""Helium hotspot counts from the entity API, one request per subnetwork (iot, mobile).

``/v2/hotspots/pagination-metadata?subnetwork=…`` answers ``{pageSize, totalItems, totalPages}``;
``totalItems`` counts *registered* hotspots, an upper bound on the active ones, never an active
count. The two subnetworks are two endpoints on the same path with different ``subnetwork``
params; the subnetwork is in the metric name (``hotspots_iot_total``,
``hotspots_mobile_total``). Endpoints are parsed and stored independently, so no
``hotspots_total`` is derived across the two: a sum of a fresh and a stale count would be neither.
A failed subnetwork is reported as ``/v2/hotspots/pagination-metadata?subnetwork=<name>``.

``totalItems: 0`` is a placeholder: both subnetworks have had registered hotspots since launch
and registrations are never removed from the count, so 0 means the entity API has not indexed
them (not "no hotspots"). It stores nothing (the last good count stays) and is no error; a
missing or non-integer ``totalItems`` is a ``schema`` error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from sources.models import ErrorKind, NetworkMetric, SourceError
from sources.models import _finite_or_none as lax_number
from sources.network import Endpoint, NetworkSource, Parsed, metric
from sources.text import one_line

NETWORK = "helium"
DEFAULT_ROOT = "https://entities.nft.helium.io"
PAGINATION = "/v2/hotspots/pagination-metadata"
SUBNETWORKS = ("iot", "mobile")


def metric_name(subnetwork: str) -> str:
    """The metric a subnetwork's count is stored under: ``hotspots_<subnetwork>_total``."""
    return f"hotspots_{subnetwork}_total"


def parse_pagination(body: Any, endpoint: str, *, subnetwork: str) -> Parsed:
    """``pagination-metadata`` of one subnetwork: its registered hotspot count."""
    if not isinstance(body, dict):
        raise SourceError(
            ErrorKind.SCHEMA,
            f"{endpoint}: expected an object, got {type(body).__name__} (schema changed?)",
        )
    code = lax_number(body.get("statusCode"))
    if code is not None and code >= 400:  # {"statusCode":400,"error":"Bad Request","message":…}
        text = body.get("message") or body.get("error") or ""
        kind = ErrorKind.HTTP_5XX if code >= 500 else ErrorKind.HTTP_4XX
        if code == 429:
            kind = ErrorKind.RATE_LIMITED
        raise SourceError(kind, f"{endpoint}: error {code:g} in the body: {one_line(text, 120)}")
    total = lax_number(body.get("totalItems"))
    if total is None or total < 0 or total != int(total):
        raise SourceError(
            ErrorKind.SCHEMA, f"{endpoint}: no totalItems count for {subnetwork} (schema changed?)"
        )
    out: list[NetworkMetric] = []
    if total > 0:  # 0 is the not-indexed placeholder: missing, never a count of 0
        metric(NETWORK, metric_name(subnetwork), total, "count", endpoint, out)
    return out, []


ENDPOINTS = tuple(
    Endpoint(PAGINATION, partial(parse_pagination, subnetwork=s), {"subnetwork": s})
    for s in SUBNETWORKS
)


@dataclass
class HeliumSource(NetworkSource):
    """Registered Helium hotspots per subnetwork (each an endpoint of its own)."""

    ENDPOINTS = ENDPOINTS
    base_url: str = DEFAULT_ROOT
    name: str = "helium"
