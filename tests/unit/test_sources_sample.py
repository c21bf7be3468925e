"""The bundled DePIN+AI sample of mid-2024 (sources/sample.py)."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sources.base import make_client
from sources.models import MarketCoin
from sources.sample import SAMPLE_DATE, SampleSource, load_sample

SHARED_CSV = Path("/work/shared/data/depin_ai_2024q2.csv")
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@pytest.fixture(scope="module")
def coins() -> list[MarketCoin]:
    return load_sample()


def by_name(coins: list[MarketCoin], name: str) -> MarketCoin:
    (coin,) = [c for c in coins if c.name == name]
    return coin


def test_sample_has_20_projects(coins):
    assert len(coins) == 20
    assert all(isinstance(c, MarketCoin) for c in coins)


def test_names_match_the_shared_csv(coins):
    if not SHARED_CSV.exists():
        pytest.skip(f"{SHARED_CSV} not present")
    with SHARED_CSV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [c.name for c in coins] == [row["project"] for row in rows]
    assert [c.symbol for c in coins] == [row["token"] or None for row in rows]


def test_ids_are_unique_slugs(coins):
    ids = [c.coin_id for c in coins]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i) for i in ids)
    assert by_name(coins, "io.net").coin_id == "io-net"
    assert by_name(coins, "PAAL AI").coin_id == "paal-ai"


def test_empty_cells_are_none_not_zero(coins):
    network3 = by_name(coins, "Network3")
    assert network3.symbol is None
    assert network3.price_usd is None
    assert network3.market_cap_usd is None
    assert network3.volume_24h_usd is None
    assert network3.change_24h_pct is None
    assert network3.change_7d_pct is None
    assert network3.change_30d_pct is None
    assert network3.devices == 235038
    assert network3.category == "AI"

    render = by_name(coins, "Render")
    assert render.devices is None
    aethir = by_name(coins, "Aethir")
    assert aethir.change_30d_pct is None
    assert aethir.change_7d_pct == pytest.approx(1.3)
    uprock = by_name(coins, "UpRock")
    assert uprock.market_cap_usd is None
    assert uprock.price_usd == pytest.approx(0.015)
    assert uprock.devices == 594731


def test_values_are_parsed(coins):
    render = by_name(coins, "Render")
    assert render.symbol == "RNDR"
    assert render.category == "Server AI"
    assert render.price_usd == pytest.approx(6.85)
    assert render.market_cap_usd == pytest.approx(2679921422)
    assert render.volume_24h_usd == pytest.approx(137480889)
    assert render.change_24h_pct == pytest.approx(4.3)
    assert render.change_7d_pct == pytest.approx(-9.3)
    assert render.change_30d_pct == pytest.approx(-25.1)
    assert by_name(coins, "Theta").devices == 5885
    assert by_name(coins, "Nosana").price_usd == 3.0


def test_sample_has_no_sparkline_or_fdv(coins):
    # The 2024 table has none of these: they must stay missing rather than be invented.
    for coin in coins:
        assert coin.sparkline_7d is None
        assert coin.fdv_usd is None


def test_sample_text_is_clean(coins):
    for coin in coins:
        for text in (coin.coin_id, coin.name, coin.symbol or "", coin.category or ""):
            assert UNSAFE.search(text) is None


async def test_sample_source_reading_is_dated_2024_06_30_utc():
    def no_network(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"the sample source made a request to {request.url}")

    source = SampleSource()
    assert source.uses_network is False
    assert source.name == "sample"
    async with make_client(transport=httpx.MockTransport(no_network)) as client:
        reading = await source.fetch(client)
    assert len(reading.market) == 20
    assert reading.skipped == 0
    assert reading.at == datetime(2024, 6, 30, tzinfo=UTC)
    assert reading.at is not None and reading.at.utcoffset() == timedelta(0)
    assert reading.at.date().isoformat() == "2024-06-30"
    assert SAMPLE_DATE == reading.at
    assert reading.note is not None and "sample" in reading.note
