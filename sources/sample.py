"""The bundled DePIN+AI table of mid-2024, shown only while the cache has no rankings at all.

Always stored as a poll dated 2024-06-30 with source ``sample``, so every screen labels it as a
dated sample and never as live data.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import httpx

from sources.base import SourceDefaults
from sources.models import MarketCoin, Reading

SAMPLE_DATE = datetime(2024, 6, 30, tzinfo=UTC)
SAMPLE_FILE = "depin_ai_2024q2.csv"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def load_sample() -> list[MarketCoin]:
    """Read the bundled CSV; empty cells stay missing."""
    text = resources.files("sources.data").joinpath(SAMPLE_FILE).read_text(encoding="utf-8")
    coins = []
    for row in csv.DictReader(io.StringIO(text)):
        cells = {key: (value.strip() or None) for key, value in row.items()}
        coins.append(
            MarketCoin.model_validate(
                {
                    "id": _slug(cells["project"] or ""),
                    "symbol": cells["token"],
                    "name": cells["project"],
                    "current_price": cells["price_usd"],
                    "market_cap": cells["market_cap_usd"],
                    "total_volume": cells["volume_24h_usd"],
                    "change_24h_pct": cells["change_1d_pct"],
                    "change_7d_pct": cells["change_7d_pct"],
                    "change_30d_pct": cells["change_30d_pct"],
                    "category": cells["category"],
                    "devices": cells["total_devices"],
                }
            )
        )
    return coins


@dataclass
class SampleSource(SourceDefaults):
    """Serves the bundled sample; makes no network request."""

    name: str = "sample"
    uses_network: bool = False
    runs_offline = True  # the one source an offline session stores (into an empty cache)
    stand_in = True

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """Return the sample as a reading dated 2024-06-30."""
        return Reading(market=load_sample(), at=SAMPLE_DATE, note="sample, 2024-06")
