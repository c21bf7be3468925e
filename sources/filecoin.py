"""Filecoin via Filfox ``/overview``: active miners, network power, FIL price, chain height.

The power figures are bytes as decimal strings around 10^19, beyond int64:
they are read with :class:`~decimal.Decimal` and stored as floats (REAL), never as integers.
Each figure is optional; the endpoint fails (``schema``) only when the body is not an object or
none of the figures is there at all.

A 0 is a placeholder here: on mainnet there are always active miners, network power, a chain
height and a FIL price, so Filfox's 0 for any of them means "not published" (its indexer or
price feed has nothing yet) and the figure is missing, never stored as 0. A body whose figures
are all such zeros stores nothing this poll (the last good values stay), without an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sources.models import ErrorKind, NetworkMetric, SourceError
from sources.models import _finite_or_none as lax_number
from sources.network import Endpoint, NetworkSource, Parsed, metric

NETWORK = "filecoin"
DEFAULT_ROOT = "https://filfox.info/api/v1"
OVERVIEW = "/overview"


def big_number(value: Any) -> float | None:
    """A non-negative decimal of any size (``"23456789012345678901"``) as a float, else None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number < 0:
        return None
    result = float(number)
    return result if result != float("inf") else None


def _count(value: Any) -> float | None:
    number = lax_number(value)
    return number if number is not None and number >= 0 else None


def _published(value: float | None) -> float | None:
    """The figure, or None for Filfox's 0 placeholder (none of these is ever 0 on mainnet)."""
    return value if value is not None and value > 0 else None


_FIGURES = ("activeMiners", "totalRawBytePower", "totalQualityAdjPower", "price", "height")


def parse_overview(body: Any, endpoint: str) -> Parsed:
    """``/overview``: active miners, raw and quality-adjusted power, FIL price, chain height."""
    if not isinstance(body, dict):
        raise SourceError(
            ErrorKind.SCHEMA,
            f"{endpoint}: expected an object, got {type(body).__name__} (schema changed?)",
        )
    out: list[NetworkMetric] = []
    miners = _published(_count(body.get("activeMiners")))
    metric(NETWORK, "miners_active", miners, "count", endpoint, out)
    raw = _published(big_number(body.get("totalRawBytePower")))
    metric(NETWORK, "power_raw_bytes", raw, "bytes", endpoint, out)
    qa = _published(big_number(body.get("totalQualityAdjPower")))
    metric(NETWORK, "power_qa_bytes", qa, "bytes", endpoint, out)
    metric(NETWORK, "price_usd", _published(_count(body.get("price"))), "USD", endpoint, out)
    metric(NETWORK, "height", _published(_count(body.get("height"))), "", endpoint, out)
    if not out and any(big_number(body.get(key)) == 0 for key in _FIGURES):
        return out, []  # the shape is there, only placeholders: nothing published this poll
    if not out:
        raise SourceError(
            ErrorKind.SCHEMA,
            f"{endpoint}: no activeMiners, totalRawBytePower, price or height (schema changed?)",
        )
    return out, []


ENDPOINTS = (Endpoint(OVERVIEW, parse_overview),)


@dataclass
class FilecoinSource(NetworkSource):
    """Filecoin network figures from Filfox."""

    ENDPOINTS = ENDPOINTS
    base_url: str = DEFAULT_ROOT
    name: str = "filecoin"
