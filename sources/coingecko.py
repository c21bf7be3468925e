"""CoinGecko ``/coins/markets`` for one category: the DePIN rankings.

Pages of up to 250 are fetched until a short page or ``max_coins``. The key, when there is one,
travels only in its header (``x-cg-demo-api-key`` or ``x-cg-pro-api-key``), never in the URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from sources.base import HttpPolicy, SourceDefaults, get_json
from sources.models import ErrorKind, MarketCoin, Reading, SourceError
from sources.models import _finite_or_none as lax_number
from sources.text import one_line

log = logging.getLogger(__name__)

DEFAULT_ROOT = "https://api.coingecko.com/api/v3"
PRO_ROOT = "https://pro-api.coingecko.com/api/v3"
PAGE_SIZE = 250
MAX_INVALID_SHARE = 0.2
KEY_ERRORS = {
    10002: "API key missing or wrong",
    10005: "endpoint not on your plan",
    10010: "Pro key used with the Demo root",
    10011: "Demo key used with the Pro root",
}


# The fields CoinGecko documents for /coins/markets; anything else is new and logged once.
KNOWN_FIELDS = frozenset(
    {
        "id",
        "symbol",
        "name",
        "image",
        "current_price",
        "market_cap",
        "market_cap_rank",
        "fully_diluted_valuation",
        "total_volume",
        "high_24h",
        "low_24h",
        "price_change_24h",
        "price_change_percentage_24h",
        "market_cap_change_24h",
        "market_cap_change_percentage_24h",
        "circulating_supply",
        "total_supply",
        "max_supply",
        "ath",
        "ath_change_percentage",
        "ath_date",
        "atl",
        "atl_change_percentage",
        "atl_date",
        "roi",
        "last_updated",
        "sparkline_in_7d",
    }
)
_reported_fields: set[str] = set()


def _report_new_fields(item: dict[str, Any]) -> None:
    new = {
        k for k in item if k not in KNOWN_FIELDS and not k.startswith("price_change_percentage_")
    }
    new -= _reported_fields
    if new:
        _reported_fields.update(new)
        log.info(
            "coingecko: new fields in /coins/markets (ignored): %s",
            one_line(", ".join(sorted(new)), 200),
        )


def _drop_placeholders(item: dict[str, Any]) -> None:
    """Figures CoinGecko fills in when it has none become missing (shown "—"), never 0.

    - ``market_cap`` 0: served (with ``market_cap_rank`` null and ``circulating_supply`` 0) for
      listed, traded coins whose circulating supply CoinGecko has not verified. A coin with a
      price is never worth 0, so 0 (or a negative cap) means "not published". ``total_volume``
      0 is left alone: a coin nobody traded in 24 h really has 0 volume.
    - ``sparkline_in_7d`` null, missing or ``{"price": []}``: no chart, not a flat line.
    """
    cap = lax_number(item.get("market_cap"))
    if cap is not None and cap <= 0:
        item["market_cap"] = None
    spark = item.get("sparkline_in_7d")
    points = spark.get("price") if isinstance(spark, dict) else spark
    if not isinstance(points, list) or not points:
        item["sparkline_in_7d"] = None


def root_for_plan(plan: str | None) -> str:
    """The API root a plan implies; an explicit ``base_url`` in the config always wins."""
    return PRO_ROOT if plan == "pro" else DEFAULT_ROOT


def parse_markets(body: Any) -> tuple[list[MarketCoin], int]:
    """Validate one ``/coins/markets`` page item by item; return (coins, skipped).

    An error object (``{"status": {"error_code": …}}``) or any non-list is an error, not data.
    More than 20 % invalid items (not an object, or no ``id``/``name``) fails the page: the
    schema has probably changed. A coin without a market cap or a sparkline is a valid coin with
    those figures missing, never an invalid item.
    """
    if isinstance(body, dict):
        status = body.get("status")
        if isinstance(status, dict) and "error_code" in status:
            code = status.get("error_code")
            known = KEY_ERRORS.get(code) if isinstance(code, int) else None  # a list: unhashable
            text = one_line(status.get("error_message") or known or "", 160)
            kind = ErrorKind.AUTH if known is not None else ErrorKind.HTTP_4XX
            if code == 429:
                kind = ErrorKind.RATE_LIMITED
            raise SourceError(kind, f"CoinGecko error {one_line(code, 12)}: {text}")
        raise SourceError(
            ErrorKind.SCHEMA, "expected a list of coins, got an object (schema changed?)"
        )
    if not isinstance(body, list):
        raise SourceError(ErrorKind.SCHEMA, "expected a list of coins (schema changed?)")
    coins: list[MarketCoin] = []
    skipped = 0
    for item in body:
        if not isinstance(item, dict):
            skipped += 1
            continue
        _report_new_fields(item)
        item = dict(item)
        item["change_24h_pct"] = item.get("price_change_percentage_24h_in_currency")
        if item["change_24h_pct"] is None:
            item["change_24h_pct"] = item.get("price_change_percentage_24h")
        item["change_7d_pct"] = item.get("price_change_percentage_7d_in_currency")
        item["change_30d_pct"] = item.get("price_change_percentage_30d_in_currency")
        _drop_placeholders(item)
        try:
            coins.append(MarketCoin.model_validate(item))
        except ValidationError as exc:
            skipped += 1
            fields = ",".join(str(e["loc"][0]) for e in exc.errors(include_input=False)[:3])
            log.debug("coingecko: skipped one item (invalid %s)", one_line(fields, 60))
    if body and skipped > len(body) * MAX_INVALID_SHARE:
        raise SourceError(
            ErrorKind.SCHEMA, f"{skipped} of {len(body)} items invalid (schema changed?)"
        )
    return coins, skipped


@dataclass
class CoinGeckoSource(SourceDefaults):
    """Rankings of one CoinGecko category, paged up to ``max_coins``."""

    base_url: str = DEFAULT_ROOT
    category: str = "depin"
    max_coins: int = 250
    timeout: float = 10.0
    api_key: SecretStr | None = None
    plan: str | None = None
    name: str = "coingecko"
    uses_network: bool = True

    def _headers(self) -> dict[str, str]:
        if self.api_key is None:
            return {"accept": "application/json"}
        header = "x-cg-pro-api-key" if self.plan == "pro" else "x-cg-demo-api-key"
        return {"accept": "application/json", header: self.api_key.get_secret_value()}

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """Fetch every page needed for ``max_coins`` coins; all pages or nothing."""
        url = self.base_url.rstrip("/") + "/coins/markets"
        policy = HttpPolicy(deadline=self.timeout)
        per_page = min(PAGE_SIZE, self.max_coins)
        coins: list[MarketCoin] = []
        seen: set[str] = set()
        skipped = 0
        page = 1
        while len(coins) < self.max_coins:
            params = {
                "vs_currency": "usd",
                "category": self.category,
                "order": "market_cap_desc",
                "per_page": str(per_page),
                "page": str(page),
                "sparkline": "true",
                "price_change_percentage": "24h,7d,30d",
            }
            body = await get_json(
                client, url, params=params, headers=self._headers(), policy=policy
            )
            page_coins, page_skipped = parse_markets(body)
            skipped += page_skipped
            before = len(coins)
            for coin in page_coins:
                if coin.coin_id not in seen:  # pages can shift while we read them
                    seen.add(coin.coin_id)
                    coins.append(coin)
            if len(body) < per_page or len(coins) == before:
                break  # a short page ends the list; a page with nothing new would loop forever
            page += 1
        if not coins and skipped:
            raise SourceError(ErrorKind.SCHEMA, "no valid coin in the answer (schema changed?)")
        return Reading(market=coins[: self.max_coins], skipped=skipped)
