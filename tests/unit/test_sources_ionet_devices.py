"""io.net devices: status, earnings, block rewards, token, budgets.

Parsers run on the docs' example bodies and on bodies written from the documented live fields;
``fetch`` runs through httpx.MockTransport under a loopback-style base_url.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sources.base import BudgetChain, RequestBudget, make_client
from sources.ionet_devices import (
    IonetDeviceSource,
    completed_blocks,
    parse_block_worker,
    parse_details,
    parse_rewards_summary,
    parse_summary,
    token_info,
)
from sources.models import ErrorKind, SourceError
from sources.models import _count_or_none as lax_count
from sources.models import _finite_or_none as lax_number

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
LIVE = "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17"
DOCS = "599ef4af-7fe6-44b5-aba3-25899bde2ab6"
ROOT = "http://127.0.0.1:9/io"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.c2lnbmF0dXJl"


# -- parsers -----------------------------------------------------------------------------------


def test_summary_docs_example() -> None:
    parsed = parse_summary(load("ionet_explorer_device_summary.docs_example.json"), "/s")
    assert parsed["uptime_pct"] == 78.0  # 100 - down_percentage 22
    assert parsed["connectivity_tier"] == "2"
    assert parsed["earnings_total"] == 0.0 and parsed["earnings_token"] is None
    assert parsed["slashed_total"] == 0.0  # the docs' spelling total_slashed_earning
    assert parsed["status"] is None  # the docs example has none: missing, not guessed
    assert parsed["compute_hours"] == 0.0


def test_summary_live_fields_prefer_io_coin_figures() -> None:
    parsed = parse_summary(load("ionet_device-summary-live.written.json"), "/s")
    assert parsed["status"] == "up"
    assert parsed["uptime_pct"] == 96.0  # "4" as a string
    assert parsed["earnings_total"] == pytest.approx(402.8815)
    assert parsed["earnings_token"] == "IO"
    assert parsed["slashed_total"] == 1.125  # total_slahed_io_coin: the API's own misspelling
    assert parsed["connectivity_tier"] == "3"
    assert "\x1b" not in parsed["name"] and "rig-07" in parsed["name"]


def test_summary_is_working_stands_in_for_status() -> None:
    body = {"status": "succeeded", "data": {"is_working": False, "down_percentage": 140}}
    parsed = parse_summary(body, "/s")
    assert parsed["status"] == "down"
    assert parsed["uptime_pct"] is None  # 140 % down is not a percentage: left out


@pytest.mark.parametrize(
    "body",
    [[], {"status": "failed", "data": {}}, {"status": "succeeded"}, {"data": [1]}],
)
def test_summary_shape_errors(body: Any) -> None:
    with pytest.raises(SourceError) as info:
        parse_summary(body, "/v1/x")
    assert info.value.kind is ErrorKind.SCHEMA and info.value.message.startswith("/v1/x: ")


def test_details_docs_example_and_live() -> None:
    docs = parse_details(load("ionet_explorer_device_details.docs_example.json"), "/d")
    assert docs["hardware"] == "RTX A6000" and docs["hardware_quantity"] == 2
    assert docs["location"] == "Canada" and docs["jobs_running"] == 0
    assert docs["tier_name"] == "Ultra High Speed" and "status" not in docs
    live = parse_details(load("ionet_device-details-live.written.json"), "/d")
    assert live["jobs_running"] == 1 and live["status"] == "up" and live["location"] == "Germany"


def test_rewards_summary_and_worker_detail() -> None:
    docs = parse_rewards_summary(load("ionet_blocks_block_rewards_summary.docs_example.json"), "/r")
    assert docs == {
        "block_rewards_7d": 0.0,
        "blocks_earned_7d": 0,
        "blocks_failed_7d": 0,
        "blocks_missed_7d": 0,
    }
    written = parse_rewards_summary(load("ionet_block-rewards-summary.written.json"), "/r")
    assert written["block_rewards_7d"] == pytest.approx(38.5125)
    assert written["blocks_missed_7d"] == 8
    amount, status = parse_block_worker(
        load("ionet_blocks_block_worker_detail.docs_example.json"), "/w"
    )
    assert (amount, status) == (1.401, "Success")
    with pytest.raises(SourceError):
        parse_block_worker({"status": "Success"}, "/w")


def test_completed_blocks_newest_first_within_lookback() -> None:
    ids = completed_blocks(load("ionet_blocks-recent.written.json"), NOW)
    assert ids == [f"2026-11-26T0{h}:00:00" for h in (8, 7, 6, 5, 4)]
    with pytest.raises(SourceError):
        completed_blocks({"blocks": "nope"}, NOW)


# -- the token -----------------------------------------------------------------------------------


def test_token_info_reads_exp_and_iat() -> None:
    info = token_info(jwt({"exp": 1_765_000_000, "iat": 1_763_200_000}))
    assert info is not None
    assert info.expires_at == datetime.fromtimestamp(1_765_000_000, UTC)
    assert info.issued_at == datetime.fromtimestamp(1_763_200_000, UTC)


def test_token_without_exp_lasts_21_days_from_iat() -> None:
    info = token_info(jwt({"iat": 1_763_200_000}))
    assert info is not None and info.expires_at is not None
    assert info.expires_at - datetime.fromtimestamp(1_763_200_000, UTC) == timedelta(days=21)


@pytest.mark.parametrize(
    "token", ["", "not-a-jwt", "a.b.c", "a.!!!.c", jwt({"exp": "soon"}), "x." + "A" * 9000 + ".y"]
)
def test_unreadable_tokens_give_none_or_no_dates(token: str) -> None:
    info = token_info(token)
    assert info is None or (info.expires_at is None and info.issued_at is None)


# -- fetch ---------------------------------------------------------------------------------------


class Upstream:
    """A recorded io.net: routes by path; counts requests and remembers auth headers."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.reject_token_header = False
        self.reject_all_auth = False
        self.rate_limit: str | None = None
        self.missing_blocks: set[str] = {"2026-11-26T05:00:00"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/io")
        if path == "/v1/io-blocks/blocks/all/1":
            return httpx.Response(200, json=load("ionet_blocks-recent.written.json"))
        if "token" in request.headers and (self.reject_token_header or self.reject_all_auth):
            return httpx.Response(401, json={"detail": "Could not validate credentials"})
        if "authorization" in request.headers and self.reject_all_auth:
            return httpx.Response(401, json={"detail": "Could not validate credentials"})
        if self.rate_limit is not None:
            return httpx.Response(429, headers={"retry-after": self.rate_limit}, text="slow down")
        live = LIVE in path
        if path.endswith("/summary"):
            name = "ionet_device-summary-live" if live else "ionet_explorer_device_summary"
        elif path.endswith("/details"):
            name = "ionet_device-details-live" if live else "ionet_explorer_device_details"
        elif "/block-rewards-summary/" in path:
            name = "ionet_block-rewards-summary" if live else "ionet_blocks_block_rewards_summary"
        elif "/workers/" in path:
            block = path.split("/")[4]
            if block in self.missing_blocks:
                return httpx.Response(404, text="Not found", headers={"content-type": "text/plain"})
            body = load("ionet_block-worker-live.written.json") | {"block_id": block}
            return httpx.Response(200, json=body)
        else:
            return httpx.Response(404, text="Not found", headers={"content-type": "text/plain"})
        suffix = ".written.json" if live else ".docs_example.json"
        return httpx.Response(200, json=load(name + suffix))


def source(upstream: Upstream, **kw: Any) -> tuple[IonetDeviceSource, httpx.AsyncClient]:
    made = IonetDeviceSource(
        base_url=ROOT,
        token=kw.pop("token", jwt({"exp": 1_765_000_000})),
        devices=lambda: {LIVE: "rig-07", DOCS: None},
        clock=lambda: NOW,
        **kw,
    )
    return made, make_client(transport=httpx.MockTransport(upstream))


async def test_fetch_stores_status_and_block_rewards() -> None:
    upstream = Upstream()
    src, client = source(upstream)
    async with client:
        reading = await src.fetch(client)
    by_id = {d.device_id: d for d in reading.devices}
    live = by_id[LIVE]
    assert live.node == "rig-07" and live.status == "up" and live.uptime_pct == 96.0
    assert live.earnings_total == pytest.approx(402.8815) and live.earnings_token == "IO"
    assert live.block_rewards_7d == pytest.approx(38.5125) and live.jobs_running == 1
    assert live.hardware == "RTX A6000" and live.connectivity_tier == "3" and live.error is None
    docs = by_id[DOCS]
    assert docs.node is None and docs.hardware == "RTX A6000" and docs.location == "Canada"
    assert docs.connectivity_tier == "2"  # the summary's tier wins over the details' tier name
    # four newest completed blocks per device per cycle; 05:00 is a 404: earned nothing there
    live_rewards = sorted(
        (r.at.hour, r.amount, r.status) for r in reading.rewards if r.device_id == LIVE
    )
    assert live_rewards == [
        (5, 0.0, "not in block"),
        (6, 0.2417, "Success"),
        (7, 0.2417, "Success"),
        (8, 0.2417, "Success"),
    ]
    assert {r.token for r in reading.rewards} == {"IO"}
    assert {r.source for r in reading.rewards if r.device_id == LIVE} == {
        f"io.net block 2026-11-26T0{h}:00:00" for h in (5, 6, 7, 8)
    }
    summary = [r for r in upstream.requests if r.url.path.endswith("/summary")]
    assert len(summary) == 2 and all(r.headers["token"] == src.token for r in summary)
    blocks_call = [r for r in upstream.requests if r.url.path.endswith("/blocks/all/1")]
    assert "token" not in blocks_call[0].headers  # network-wide endpoints go without auth
    today = date(2026, 11, 26)
    assert any(
        r.url.path.endswith(f"/block-rewards-summary/{today - timedelta(days=6)}/{today}")
        for r in upstream.requests
    )


async def test_known_rewards_are_not_fetched_again() -> None:
    upstream = Upstream()
    src, client = source(upstream)
    src.known_rewards = {(LIVE, f"io.net block 2026-11-26T0{h}:00:00") for h in (5, 6, 7, 8)}
    async with client:
        reading = await src.fetch(client)
    fetched = [
        r.url.path for r in upstream.requests if "/workers/" in r.url.path and LIVE in r.url.path
    ]
    assert fetched == [f"/io/v1/io-blocks/blocks/2026-11-26T04:00:00/workers/{LIVE}"]
    assert [r.at.hour for r in reading.rewards if r.device_id == LIVE] == [4]


async def test_401_on_token_header_falls_back_to_bearer_and_keeps_it() -> None:
    upstream = Upstream()
    upstream.reject_token_header = True
    src, client = source(upstream)
    async with client:
        reading = await src.fetch(client)
    assert len(reading.devices) == 2 and not reading.errors
    bearer = [r for r in upstream.requests if "authorization" in r.headers]
    assert bearer and all(r.headers["authorization"] == f"Bearer {src.token}" for r in bearer)
    token_tries = [r for r in upstream.requests if "token" in r.headers]
    assert 1 <= len(token_tries) <= 8  # only the first concurrent requests tried Token
    async with make_client(transport=httpx.MockTransport(upstream)) as again:
        upstream.requests.clear()
        await src.fetch(again)
    assert not [r for r in upstream.requests if "token" in r.headers]


async def test_expired_token_stops_the_cycle_with_a_clear_message() -> None:
    upstream = Upstream()
    upstream.reject_all_auth = True
    src, client = source(upstream)
    async with client:
        with pytest.raises(SourceError) as info:
            await src.fetch(client)
    assert info.value.kind is ErrorKind.AUTH
    assert info.value.message == "io.net token expired or invalid (HTTP 401)"
    assert src.token not in info.value.message


async def test_429_stops_the_cycle_with_retry_after() -> None:
    upstream = Upstream()
    upstream.rate_limit = "120"
    src, client = source(upstream)
    async with client:
        with pytest.raises(SourceError) as info:
            await src.fetch(client)
    assert info.value.kind is ErrorKind.RATE_LIMITED and info.value.retry_after == 120.0


async def test_no_token_is_a_key_error_without_any_request() -> None:
    upstream = Upstream()
    src, client = source(upstream, token=None)
    async with client:
        with pytest.raises(SourceError) as info:
            await src.fetch(client)
    assert info.value.kind is ErrorKind.AUTH and "IONET_TOKEN" in info.value.message
    assert upstream.requests == []


async def test_no_devices_is_an_empty_poll_without_requests() -> None:
    upstream = Upstream()
    src, client = source(upstream)
    src.devices = dict
    async with client:
        reading = await src.fetch(client)
    assert reading.items == 0 and upstream.requests == [] and reading.note


async def test_fleet_labels_join_configured_devices() -> None:
    src, client = source(Upstream())
    src.fleet_devices = {DOCS: "gpu-02", "1111aaaa-0000-0000-0000-000000000000": "gpu-03"}
    assert src.all_devices() == {
        LIVE: "rig-07",
        DOCS: "gpu-02",
        "1111aaaa-0000-0000-0000-000000000000": "gpu-03",
    }
    assert src.min_interval() == 9.0  # 3 devices x 3 s: 100 summaries per 5 min
    # a label is untrusted (file_sd, a remote Prometheus): only device ids reach the token's URLs
    src.fleet_devices = {"../../v1/other?x=": "gpu-04", "": "gpu-05", DOCS: "gpu-02"}
    assert src.all_devices() == {LIVE: "rig-07", DOCS: "gpu-02"}
    await client.aclose()


def test_a_number_too_big_for_a_float_is_missing_not_a_crash() -> None:
    huge = int("9" * 400)  # JSON has no limit on integers
    assert lax_number(huge) is None and lax_count(huge) is None


async def test_per_endpoint_budget_is_kept() -> None:
    """101 summaries in one window: the 101st waits past the deadline and is rate limited."""
    clock = [0.0]

    async def fake_sleep(seconds: float) -> None:
        clock[0] += seconds

    budget = RequestBudget(100, 300.0, clock=lambda: clock[0], sleep=fake_sleep)
    whole = RequestBudget(150, 10.0, clock=lambda: clock[0], sleep=fake_sleep)
    chain = BudgetChain(whole, budget)
    for _ in range(100):
        await chain.acquire(5.0)
        clock[0] += 0.1  # 10 per second: within the 150 / 10 s of the whole API
    with pytest.raises(SourceError) as info:
        await chain.acquire(5.0)
    assert info.value.kind is ErrorKind.RATE_LIMITED
    assert info.value.retry_after == pytest.approx(300.0 - 10.0, abs=0.01)


# -- through the poller into the cache -------------------------------------------------------------


def devices_config(**ionet: Any) -> Any:
    from explorer.config import Config

    sources = {name: {"enabled": False} for name in ("coingecko", "akash", "filecoin", "helium")}
    sources["ionet"] = {"base_url": ROOT, "interval": 60, **ionet}
    return Config.model_validate(
        {
            "sources": sources,
            "fleet": {
                "local": {"enabled": False},
                "targets": [
                    {
                        "name": "rig-07",
                        "url": "http://127.0.0.1:9/metrics",
                        "labels": {"network": "io.net", "device_id": LIVE},
                    }
                ],
            },
        }
    )


async def test_poller_stores_devices_and_fetches_each_block_once(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from cache.db import open_reader
    from cache.rewards import latest_devices, reward_rows
    from explorer.config import Secrets
    from explorer.poller import Poller

    upstream = Upstream()
    db = tmp_path / "c.db"
    secrets = Secrets(ionet_token=SecretStr(jwt({"exp": 1_765_000_000})))

    async def once() -> Any:
        poller = Poller(
            devices_config(),
            secrets,
            db,
            clock=lambda: NOW,
            transport=httpx.MockTransport(upstream),
        )
        await poller.prepare()
        try:
            return await poller.poll_once(["ionet-devices"])
        finally:
            await poller.close()

    [outcome] = await once()
    assert outcome.record is not None and outcome.record.ok
    conn = open_reader(db)
    [device] = latest_devices(conn)
    assert device.device_id == LIVE and device.get("node") == "rig-07"
    assert device.get("earnings_total") == pytest.approx(402.8815)
    first = reward_rows(conn)
    assert len(first) == 4  # the blocks of the 48 h look-back, at most four per cycle
    upstream.requests.clear()
    await once()
    workers = [r.url.path.split("/")[5] for r in upstream.requests if "/workers/" in r.url.path]
    assert workers == ["2026-11-26T04:00:00"]  # the one block left of the look-back
    assert not set(workers) & {r.at.strftime("%Y-%m-%dT%H:%M:%S") for r in first}
    assert len(reward_rows(conn)) == len(first) + len(workers)


async def test_poller_pauses_on_an_expired_token(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from explorer.config import Secrets
    from explorer.poller import Poller

    upstream = Upstream()
    upstream.reject_all_auth = True
    poller = Poller(
        devices_config(),
        Secrets(ionet_token=SecretStr("expired-token-123456")),
        tmp_path / "c.db",
        transport=httpx.MockTransport(upstream),
    )
    await poller.prepare()
    try:
        [outcome] = await poller.poll_once(["ionet-devices"])
        assert outcome.record is not None and outcome.record.error is not None
        assert outcome.record.error.message == "io.net token expired or invalid (HTTP 401)"
        assert poller.schedules["ionet-devices"].paused
        upstream.requests.clear()
        [again] = await poller.poll_once(["ionet-devices"])
        assert again.skipped == "paused" and upstream.requests == []
    finally:
        await poller.close()


def test_device_interval_never_below_the_budget() -> None:
    from explorer.config import Secrets
    from explorer.registry import build_sources

    many = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(150)]
    built = build_sources(devices_config(device_ids=many), Secrets())
    source, settings = built["ionet-devices"]
    assert settings.interval == 151 * 3.0  # 150 configured + the labelled target
    assert source.api_budget is built["ionet"][0].budget  # one limit for the whole explorer API
