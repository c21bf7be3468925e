"""CoinGecko /coins/markets: parse_markets (documented fields, type traps, schema drift, SC-*)
and CoinGeckoSource.fetch through httpx.MockTransport (plans, errors, HT-01, HT-05)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sources.base import make_client
from sources.coingecko import (
    DEFAULT_ROOT,
    PRO_ROOT,
    CoinGeckoSource,
    parse_markets,
    root_for_plan,
)
from sources.models import ErrorKind, SourceError
from tests.corpus import ALL

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
KEY = "CG-s3cret-Key-0123456789"
RATE_LIMIT_TEXT = "You've exceeded the Rate Limit"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def item(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"coin-{i}",
        "symbol": f"c{i}",
        "name": f"Coin {i}",
        "market_cap_rank": i + 1,
        "current_price": 1.0 + i,
        **extra,
    }


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """A streamed response (get_json reads the raw stream, so no pre-loaded ``content=``)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"content-type": "application/json", **(headers or {})}
    return httpx.Response(status, headers=all_headers, stream=httpx.ByteStream(data))


class Recorder:
    """A MockTransport handler that records every request and delegates to ``respond``."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    def client(self) -> httpx.AsyncClient:
        return make_client(transport=httpx.MockTransport(self))


def paged(universe: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    """Serve ``universe`` honouring ``page`` and ``per_page`` like CoinGecko does."""

    def respond(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        per_page = int(request.url.params["per_page"])
        return reply(200, universe[(page - 1) * per_page : page * per_page])

    return respond


# === parse_markets =============================================================================


def test_docs_example_without_sparkline_or_in_currency_fields():
    coins, skipped = parse_markets(fixture_json("coingecko_coins_markets.docs_example.json"))
    assert skipped == 0
    assert len(coins) == 1
    btc = coins[0]
    assert btc.coin_id == "bitcoin"
    assert btc.symbol == "btc"
    assert btc.name == "Bitcoin"
    assert btc.rank == 1
    assert btc.price_usd == 70187
    assert btc.market_cap_usd == 1381651251183
    assert btc.volume_24h_usd == 20154184933
    assert btc.fdv_usd == 1474623675796
    assert btc.change_24h_pct == pytest.approx(3.12502)  # falls back to the rounded field
    assert btc.change_7d_pct is None
    assert btc.change_30d_pct is None
    assert btc.sparkline_7d is None
    assert btc.last_updated == "2024-04-07T16:49:31.736Z"


def test_written_page_keeps_sparkline_and_prefers_in_currency():
    raw = fixture_json("coingecko_markets_depin.written.json")
    coins, skipped = parse_markets(raw)
    assert skipped == 0
    assert [c.coin_id for c in coins] == [r["id"] for r in raw]
    by_id = {c.coin_id: c for c in coins}
    for row in raw:
        coin = by_id[row["id"]]
        assert coin.sparkline_7d == row["sparkline_in_7d"]["price"]
        assert len(coin.sparkline_7d) == 168
        assert coin.change_7d_pct == row["price_change_percentage_7d_in_currency"]
    render = by_id["render-token"]
    assert render.change_24h_pct == pytest.approx(1.734)  # full precision, not the rounded 1.73
    assert render.change_30d_pct == pytest.approx(12.81)
    assert render.rank == 45


def test_written_page_helium_falls_back_to_rounded_24h():
    raw = fixture_json("coingecko_markets_depin.written.json")
    helium_raw = next(r for r in raw if r["id"] == "helium")
    assert helium_raw["price_change_percentage_24h_in_currency"] is None  # fixture premise
    coins, _ = parse_markets(raw)
    helium = next(c for c in coins if c.coin_id == "helium")
    assert helium.change_24h_pct == pytest.approx(0.87)
    assert helium.change_7d_pct == pytest.approx(1.1)
    assert helium.change_30d_pct is None


def test_empty_list_is_no_coins():
    assert parse_markets([]) == ([], 0)


def test_429_error_body_is_rate_limited_not_data():
    with pytest.raises(SourceError) as info:
        parse_markets(fixture_json("coingecko_429.json"))
    assert info.value.kind is ErrorKind.RATE_LIMITED
    assert RATE_LIMIT_TEXT in info.value.message


@pytest.mark.parametrize("code", [10002, 10010, 10011])
def test_key_error_body_is_auth(code):
    with pytest.raises(SourceError) as info:
        parse_markets({"status": {"error_code": code, "error_message": "nope"}})
    assert info.value.kind is ErrorKind.AUTH
    assert "nope" in info.value.message


def test_key_error_without_message_explains_itself():
    with pytest.raises(SourceError) as info:
        parse_markets({"status": {"error_code": 10002}})
    assert info.value.kind is ErrorKind.AUTH
    assert "API key" in info.value.message


@pytest.mark.parametrize("code", [[10002], {"a": 1}, "10002", None])
def test_error_code_of_any_json_type_is_an_http_error(code):
    with pytest.raises(SourceError) as info:  # a list or an object once raised TypeError
        parse_markets({"status": {"error_code": code}})
    assert info.value.kind is ErrorKind.HTTP_4XX


def test_error_body_message_is_sanitised():
    hostile = "\x1b]52;c;ZWNobyBwd25lZA==\x07[@click=app.quit]x[/]\nline2"
    with pytest.raises(SourceError) as info:
        parse_markets({"status": {"error_code": 10002, "error_message": hostile}})
    assert UNSAFE.search(info.value.message) is None
    assert "\x1b" not in str(info.value)


@pytest.mark.parametrize(
    "body",
    ["oops", 42, 1.5, None, True, {"coins": []}, {"status": "error"}, {}],
    ids=["str", "int", "float", "null", "bool", "dict", "dict-status-str", "empty-dict"],
)
def test_top_level_not_a_list_is_schema(body):
    with pytest.raises(SourceError) as info:
        parse_markets(body)
    assert info.value.kind is ErrorKind.SCHEMA


@pytest.mark.parametrize(
    "bad",
    [
        "junk",
        None,
        ["coin"],
        {"symbol": "x", "name": "No id"},
        {"id": "no-name"},
        {"id": "x", "name": ""},
        {"id": "x", "name": None},
        {"id": "x", "name": "\u200b"},  # empty once sanitised
    ],
    ids=[
        "str",
        "null",
        "list",
        "no-id",
        "no-name",
        "empty-name",
        "null-name",
        "invisible-name",
    ],
)
def test_one_invalid_item_in_100_is_skipped(bad):
    body = [item(i) for i in range(99)]
    body.insert(37, bad)
    coins, skipped = parse_markets(body)
    assert skipped == 1
    assert len(coins) == 99
    assert [c.coin_id for c in coins] == [f"coin-{i}" for i in range(99)]


def test_exactly_20_percent_invalid_is_still_accepted():
    body = [item(i) for i in range(80)] + [{"bad": i} for i in range(20)]
    coins, skipped = parse_markets(body)
    assert (len(coins), skipped) == (80, 20)


def test_more_than_20_percent_invalid_fails_the_page():
    body = [item(i) for i in range(79)] + [{"bad": i} for i in range(21)]
    with pytest.raises(SourceError) as info:
        parse_markets(body)
    assert info.value.kind is ErrorKind.SCHEMA
    assert "21" in info.value.message


def test_all_items_invalid_fails_the_page():
    with pytest.raises(SourceError) as info:
        parse_markets([{"name": "no id"}] * 5)
    assert info.value.kind is ErrorKind.SCHEMA


def test_numbers_as_strings_are_parsed():
    raw = item(
        0,
        current_price="1.5",
        market_cap=" 123456 ",
        market_cap_rank="7",
        total_volume="42",
        fully_diluted_valuation="2e6",
        price_change_percentage_24h_in_currency="-3.25",
        price_change_percentage_7d_in_currency="0",
        sparkline_in_7d={"price": ["1.0", 2, "x", None]},
    )
    (coin,), skipped = parse_markets([raw])
    assert skipped == 0
    assert coin.price_usd == 1.5
    assert coin.market_cap_usd == 123456.0
    assert coin.rank == 7
    assert coin.volume_24h_usd == 42.0
    assert coin.fdv_usd == 2e6
    assert coin.change_24h_pct == -3.25
    assert coin.change_7d_pct == 0.0
    assert coin.sparkline_7d == [1.0, 2.0, None, None]


def test_nulls_and_junk_become_none_not_zero():
    raw = item(
        0,
        current_price=None,
        market_cap="n/a",
        total_volume=True,
        fully_diluted_valuation={"usd": 1},
        market_cap_rank=None,
    )
    (coin,), _ = parse_markets([raw])
    assert coin.price_usd is None
    assert coin.market_cap_usd is None
    assert coin.volume_24h_usd is None
    assert coin.fdv_usd is None
    assert coin.rank is None


@pytest.mark.parametrize("cap", [0, 0.0, "0", -5, None])
def test_coin_without_a_market_cap_is_valid_with_the_cap_missing(cap):
    """CoinGecko's ``market_cap: 0`` (rank null) is a placeholder: missing, not a $0 coin."""
    raw = item(0, market_cap=cap, market_cap_rank=None, circulating_supply=0, total_volume=0)
    (coin,), skipped = parse_markets([raw])
    assert skipped == 0
    assert (coin.market_cap_usd, coin.rank) == (None, None)
    assert coin.price_usd == 1.0
    assert coin.volume_24h_usd == 0.0  # no trades in 24 h is a real 0


def test_many_coins_without_a_market_cap_do_not_fail_the_page():
    body = [item(i, market_cap=0, market_cap_rank=None) for i in range(10)]
    coins, skipped = parse_markets(body)
    assert (len(coins), skipped) == (10, 0)
    assert all(c.market_cap_usd is None for c in coins)


@pytest.mark.parametrize(
    "spark",
    [None, {"price": []}, {"price": None}, {}, [], "n/a"],
    ids=["null", "empty", "price-null", "no-price", "empty-list", "junk"],
)
def test_coin_without_a_sparkline_has_none(spark):
    (coin,), skipped = parse_markets([item(0, sparkline_in_7d=spark)])
    assert (coin.sparkline_7d, skipped) == (None, 0)


def test_coin_with_no_sparkline_key_has_none():
    (coin,), _ = parse_markets([item(0)])
    assert coin.sparkline_7d is None


def test_nan_inf_and_huge_numbers():
    text = (
        '[{"id": "x", "name": "X", "current_price": "NaN", "total_volume": 1e999,'
        ' "fully_diluted_valuation": -1e999, "market_cap": 1000000000000000000000000000000,'
        ' "market_cap_rank": 1000000000000000000000000000000,'
        ' "price_change_percentage_24h_in_currency": "Infinity",'
        ' "price_change_percentage_7d_in_currency": "-inf",'
        ' "price_change_percentage_30d_in_currency": "nan",'
        ' "sparkline_in_7d": {"price": [1, "NaN", 1e999, 2]}}]'
    )
    body = json.loads(text)
    assert math.isinf(body[0]["total_volume"])  # the JSON text really produced inf
    (coin,), skipped = parse_markets(body)
    assert skipped == 0
    assert coin.price_usd is None
    assert coin.volume_24h_usd is None
    assert coin.fdv_usd is None
    assert coin.change_24h_pct is None
    assert coin.change_7d_pct is None
    assert coin.change_30d_pct is None
    assert coin.sparkline_7d == [1.0, None, None, 2.0]
    # 10**30 is a finite market cap: kept, but as a float (an int that large overflows SQLite).
    assert isinstance(coin.market_cap_usd, float)
    assert coin.market_cap_usd == 1e30
    # ... and out of bounds for a rank.
    assert coin.rank is None


@pytest.mark.parametrize(
    ("rank", "expected"),
    [(1, 1), (250, 250), ("3", 3), (2**53, 2**53), (0, None), (-4, None), (1.5, None)]
    + [(2**63, None), (10**30, None), (True, None), ("NaN", None), (float("inf"), None)],
)
def test_rank_bounds(rank, expected):
    (coin,), _ = parse_markets([item(0, market_cap_rank=rank)])
    assert coin.rank == expected
    assert coin.rank is None or isinstance(coin.rank, int)


def test_all_numbers_are_float_or_none():
    raw = fixture_json("coingecko_markets_depin.written.json")
    raw += fixture_json("coingecko_coins_markets.docs_example.json")
    coins, _ = parse_markets(raw)
    for coin in coins:
        for name in ("price_usd", "market_cap_usd", "volume_24h_usd", "fdv_usd"):
            value = getattr(coin, name)
            assert value is None or (isinstance(value, float) and math.isfinite(value))


def test_unknown_fields_are_ignored():
    raw = item(0, brand_new_field={"nested": [1, 2]}, roi={"times": 1.2}, image="https://x/y.png")
    raw["another_new_one"] = "\x1b[2J"
    (coin,), skipped = parse_markets([raw])
    assert skipped == 0
    dumped = coin.model_dump()
    assert "brand_new_field" not in dumped
    assert "another_new_one" not in dumped
    assert coin.coin_id == "coin-0"


def test_lone_surrogate_from_json_becomes_replacement_char():
    body = json.loads('[{"id": "x", "symbol": "\\ud800", "name": "node-\\ud800-x"}]')
    assert "\ud800" in body[0]["name"]  # premise: json.loads keeps the lone surrogate
    (coin,), skipped = parse_markets(body)
    assert skipped == 0
    assert "\ufffd" in coin.name
    assert coin.name == "node-\ufffd-x"
    assert coin.symbol == "\ufffd"
    coin.name.encode("utf-8")  # no UnicodeEncodeError on the way to SQLite or the terminal


@pytest.mark.parametrize("payload", ALL, ids=[f"p{i:02d}" for i in range(len(ALL))])
def test_hostile_names_are_sanitised_on_ingest(payload):
    coins, skipped = parse_markets([{"id": payload, "symbol": payload, "name": payload}])
    assert (len(coins), skipped) == (1, 0)
    coin = coins[0]
    for text in (coin.coin_id, coin.symbol, coin.name):
        assert UNSAFE.search(text) is None
        assert len(text) <= 257


# === CoinGeckoSource.fetch =====================================================================


def test_root_for_plan():
    assert root_for_plan("pro") == PRO_ROOT
    assert root_for_plan("demo") == DEFAULT_ROOT
    assert root_for_plan(None) == DEFAULT_ROOT
    assert "pro-api.coingecko.com" in PRO_ROOT
    assert DEFAULT_ROOT.startswith("https://api.coingecko.com/")


async def test_fetch_request_url_and_params():
    recorder = Recorder(lambda request: reply(200, [item(0), item(1)]))
    async with recorder.client() as client:
        reading = await CoinGeckoSource().fetch(client)
    assert [c.coin_id for c in reading.market] == ["coin-0", "coin-1"]
    assert reading.skipped == 0
    assert reading.at is None  # live data, not dated
    (request,) = recorder.requests
    assert request.method == "GET"
    assert request.url.scheme == "https"
    assert request.url.host == "api.coingecko.com"
    assert request.url.path == "/api/v3/coins/markets"
    params = request.url.params
    assert params["vs_currency"] == "usd"
    assert params["category"] == "depin"
    assert params["sparkline"] == "true"
    assert {"24h", "7d", "30d"} <= set(params["price_change_percentage"].split(","))
    assert params["per_page"] == "250"
    assert params["page"] == "1"
    assert params.get("order", "market_cap_desc") == "market_cap_desc"


async def test_fetch_custom_base_url_and_category():
    recorder = Recorder(lambda request: reply(200, [item(0)]))
    source = CoinGeckoSource(base_url="http://127.0.0.1:9/api/v3/", category="ai-agents")
    async with recorder.client() as client:
        await source.fetch(client)
    (request,) = recorder.requests
    assert str(request.url).startswith("http://127.0.0.1:9/api/v3/coins/markets?")
    assert request.url.params["category"] == "ai-agents"


async def test_fetch_two_pages_when_first_is_full():
    universe = [item(i) for i in range(280)]
    recorder = Recorder(paged(universe))
    async with recorder.client() as client:
        reading = await CoinGeckoSource(max_coins=300).fetch(client)
    assert [r.url.params["page"] for r in recorder.requests] == ["1", "2"]
    assert all(r.url.params["per_page"] == "250" for r in recorder.requests)
    assert [c.coin_id for c in reading.market] == [f"coin-{i}" for i in range(280)]


async def test_fetch_stops_at_max_coins():
    universe = [item(i) for i in range(1000)]
    recorder = Recorder(paged(universe))
    async with recorder.client() as client:
        reading = await CoinGeckoSource(max_coins=300).fetch(client)
    assert len(recorder.requests) == 2
    assert [c.coin_id for c in reading.market] == [f"coin-{i}" for i in range(300)]


async def test_fetch_small_max_coins_asks_for_a_small_page():
    universe = [item(i) for i in range(100)]
    recorder = Recorder(paged(universe))
    async with recorder.client() as client:
        reading = await CoinGeckoSource(max_coins=5).fetch(client)
    (request,) = recorder.requests
    assert request.url.params["per_page"] == "5"
    assert [c.coin_id for c in reading.market] == [f"coin-{i}" for i in range(5)]


async def test_fetch_caps_coins_even_if_server_ignores_per_page():
    recorder = Recorder(lambda request: reply(200, [item(i) for i in range(250)]))
    async with recorder.client() as client:
        reading = await CoinGeckoSource(max_coins=5).fetch(client)
    assert len(recorder.requests) == 1
    assert len(reading.market) == 5


async def test_fetch_drops_a_coin_repeated_across_pages():
    page1 = [item(i) for i in range(250)]
    page2 = [item(249)] + [item(i) for i in range(250, 260)]  # the list shifted by one
    recorder = Recorder(lambda r: reply(200, page1 if r.url.params["page"] == "1" else page2))
    async with recorder.client() as client:
        reading = await CoinGeckoSource(max_coins=500).fetch(client)
    ids = [c.coin_id for c in reading.market]
    assert len(ids) == len(set(ids)) == 260


async def test_fetch_is_bounded_when_server_ignores_page():
    # A server (or a proxy cache) that returns the same full page whatever ``page`` says must not
    # make fetch loop: at most the pages max_coins needs (2 here), plus perhaps one more.
    full_page = [item(i) for i in range(250)]

    def respond(request: httpx.Request) -> httpx.Response:
        # Safety stop for the test itself: a short page ends any loop.
        return reply(200, full_page if len(recorder.requests) <= 10 else [])

    recorder = Recorder(respond)
    async with recorder.client() as client:
        reading = await CoinGeckoSource(max_coins=300).fetch(client)
    assert len(reading.market) == 250
    assert len(recorder.requests) <= 3


async def test_fetch_counts_skipped_items():
    body = [item(i) for i in range(9)] + [{"name": "no id"}]
    recorder = Recorder(lambda request: reply(200, body))
    async with recorder.client() as client:
        reading = await CoinGeckoSource().fetch(client)
    assert len(reading.market) == 9
    assert reading.skipped == 1


@pytest.mark.parametrize("plan", [None, "demo"])
async def test_demo_key_only_in_demo_header(plan):
    recorder = Recorder(lambda request: reply(200, [item(0)]))
    source = CoinGeckoSource(api_key=SecretStr(KEY), plan=plan)
    async with recorder.client() as client:
        await source.fetch(client)
    (request,) = recorder.requests
    assert request.headers["x-cg-demo-api-key"] == KEY
    assert "x-cg-pro-api-key" not in request.headers
    assert KEY not in str(request.url)
    assert "api_key" not in str(request.url)


async def test_pro_key_only_in_pro_header():
    recorder = Recorder(lambda request: reply(200, [item(0)]))
    source = CoinGeckoSource(base_url=root_for_plan("pro"), api_key=SecretStr(KEY), plan="pro")
    async with recorder.client() as client:
        await source.fetch(client)
    (request,) = recorder.requests
    assert request.url.host == "pro-api.coingecko.com"
    assert request.headers["x-cg-pro-api-key"] == KEY
    assert "x-cg-demo-api-key" not in request.headers
    assert KEY not in str(request.url)


async def test_keyless_sends_no_key_header():
    recorder = Recorder(lambda request: reply(200, [item(0)]))
    async with recorder.client() as client:
        await CoinGeckoSource().fetch(client)
    (request,) = recorder.requests
    assert "x-cg-demo-api-key" not in request.headers
    assert "x-cg-pro-api-key" not in request.headers


def test_source_repr_does_not_show_the_key():
    source = CoinGeckoSource(api_key=SecretStr(KEY), plan="demo")
    assert KEY not in repr(source)
    assert KEY not in str(source)


async def test_fetch_429_is_rate_limited_with_retry_after():
    body = fixture_bytes("coingecko_429.json")
    recorder = Recorder(lambda request: reply(429, body, {"retry-after": "119"}))
    source = CoinGeckoSource(api_key=SecretStr(KEY), plan="demo")
    async with recorder.client() as client:
        with pytest.raises(SourceError) as info:
            await source.fetch(client)
    error = info.value
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after == 119
    assert error.status == 429
    assert RATE_LIMIT_TEXT in error.message
    assert KEY not in error.message
    assert KEY not in str(error)
    assert len(recorder.requests) == 1  # no inline retry, no sleeping in the worker


@pytest.mark.parametrize("status", [401, 403])
async def test_fetch_auth_failure_is_not_retried(status):
    body = {"status": {"error_code": 10002, "error_message": "Missing or invalid API Key"}}
    recorder = Recorder(lambda request: reply(status, body))
    source = CoinGeckoSource(api_key=SecretStr(KEY), plan="demo")
    async with recorder.client() as client:
        with pytest.raises(SourceError) as info:
            await source.fetch(client)
    assert info.value.kind is ErrorKind.AUTH
    assert info.value.status == status
    assert KEY not in str(info.value)
    assert len(recorder.requests) == 1


async def test_fetch_error_body_with_200_is_an_error_not_data():
    body = {"status": {"error_code": 10011, "error_message": "wrong root"}}
    recorder = Recorder(lambda request: reply(200, body))
    async with recorder.client() as client:
        with pytest.raises(SourceError) as info:
            await CoinGeckoSource().fetch(client)
    assert info.value.kind is ErrorKind.AUTH
    assert len(recorder.requests) == 1


async def test_fetch_schema_drift_fails_the_whole_poll():
    # Page 1 fine, page 2 drifted: all pages or nothing.
    page1 = [item(i) for i in range(250)]
    page2 = [{"coin": {"id": f"x{i}"}} for i in range(10)]
    recorder = Recorder(lambda r: reply(200, page1 if r.url.params["page"] == "1" else page2))
    async with recorder.client() as client:
        with pytest.raises(SourceError) as info:
            await CoinGeckoSource(max_coins=500).fetch(client)
    assert info.value.kind is ErrorKind.SCHEMA
    assert len(recorder.requests) == 2
