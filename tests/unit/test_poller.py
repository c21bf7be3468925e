"""The poller: schedules, offline, the sample, rate limits, the circuit breaker, deadlines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from cache.db import open_reader
from cache.queries import latest_metrics, latest_rankings, source_states
from explorer.config import Config, Secrets
from explorer.poller import Poller

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MARKETS = (FIXTURES / "coingecko_markets_depin.written.json").read_bytes()


def config(**sources: dict) -> Config:
    base = {name: {"enabled": False} for name in ("ionet", "akash", "filecoin", "helium")}
    base["coingecko"] = {"base_url": "http://127.0.0.1:9/api/v3", "timeout": 3}
    base.update(sources)
    return Config.model_validate({"sources": base, "fleet": {"local": {"enabled": False}}})


def transport(handler) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def json_reply(body: bytes, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, headers={"content-type": "application/json", **headers}, content=body
    )


async def run_once(poller: Poller, only=None):
    await poller.prepare()
    try:
        return await poller.poll_once(only)
    finally:
        await poller.close()


async def test_first_round_stores_the_sample_then_live_and_live_wins(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    poller = Poller(
        config(), Secrets(), db, transport=transport(lambda request: json_reply(MARKETS))
    )
    outcomes = await run_once(poller)
    assert [o.source for o in outcomes] == ["sample", "coingecko"]
    assert not any(o.failed for o in outcomes)
    conn = open_reader(db)
    assert latest_rankings(conn).poll.source == "coingecko"
    again = Poller(
        config(), Secrets(), db, transport=transport(lambda request: json_reply(MARKETS))
    )
    second = await run_once(again)
    assert second[0].skipped == "not needed"  # rankings exist: the sample is not stored again


async def test_offline_makes_no_request_and_skips_network_sources(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"request made offline: {request.url}")

    poller = Poller(
        config(akash={"base_url": "http://127.0.0.1:9"}),
        Secrets(),
        tmp_path / "c.db",
        offline=True,
        transport=transport(refuse),
    )
    outcomes = {o.source: o for o in await run_once(poller)}
    assert outcomes["coingecko"].skipped == "offline" and not outcomes["coingecko"].failed
    assert outcomes["akash"].skipped == "offline"
    assert outcomes["sample"].record is not None and outcomes["sample"].record.ok


async def test_rate_limit_reschedules_without_sleeping(tmp_path: Path) -> None:
    body = (FIXTURES / "coingecko_429.json").read_bytes()
    poller = Poller(
        config(sample={"enabled": False}),
        Secrets(),
        tmp_path / "c.db",
        transport=transport(lambda r: json_reply(body, 429, **{"retry-after": "119"})),
    )
    await poller.prepare()
    started = asyncio.get_running_loop().time()
    first = await poller.poll_source("coingecko")
    assert asyncio.get_running_loop().time() - started < 2
    assert first.record.error.kind == "rate_limited"
    second = await poller.poll_source("coingecko")
    assert second.skipped == "rate limited" and "until" in second.detail
    await poller.close()


async def test_circuit_opens_after_five_failed_cycles(tmp_path: Path) -> None:
    calls = []

    def failing(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return json_reply(b'{"error":"bad"}', 400)

    poller = Poller(
        config(sample={"enabled": False}),
        Secrets(),
        tmp_path / "c.db",
        transport=transport(failing),
    )
    await poller.prepare()
    for _ in range(5):
        assert (await poller.poll_source("coingecko")).record.error is not None
    assert len(calls) == 5
    sixth = await poller.poll_source("coingecko")
    assert sixth.skipped == "circuit open" and sixth.failed
    assert sixth.detail.startswith("circuit open until")
    assert len(calls) == 5  # no request while open
    await poller.close()


async def test_partial_network_poll_keeps_other_endpoints(tmp_path: Path) -> None:
    capacity = (FIXTURES / "akash_network-capacity.test_fixture_synthetic.json").read_bytes()

    def akash(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/network-capacity":
            return json_reply(capacity)
        return json_reply(b'{"error":"down"}', 404)

    cfg = config(
        coingecko={"enabled": False},
        sample={"enabled": False},
        akash={"base_url": "http://127.0.0.1:9"},
    )
    poller = Poller(cfg, Secrets(), tmp_path / "c.db", transport=transport(akash))
    [outcome] = await run_once(poller)
    assert outcome.record.ok and outcome.record.reading.errors
    conn = open_reader(tmp_path / "c.db")
    metrics = {m.metric: m.value for m in latest_metrics(conn)}
    assert metrics["gpus_total"] == 2742 and metrics["providers_active"] == 2
    assert metrics["gpu_utilization_pct"] == pytest.approx(904 / 2742 * 100)
    assert source_states(conn)[0].last.status == "partial"


async def test_a_hanging_source_is_cut_at_its_deadline(tmp_path: Path) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return json_reply(MARKETS)

    cfg = config(
        coingecko={"base_url": "http://127.0.0.1:9/api/v3", "timeout": 0.5},
        sample={"enabled": False},
    )
    poller = Poller(cfg, Secrets(), tmp_path / "c.db", transport=transport(hang))
    started = asyncio.get_running_loop().time()
    [outcome] = await run_once(poller)
    assert asyncio.get_running_loop().time() - started < 5
    assert outcome.record.error.kind == "timeout"


def test_build_sources_respects_enabled_and_base_url(tmp_path: Path) -> None:
    cfg = config(ionet={"base_url": "http://127.0.0.1:1"}, helium={"enabled": True})
    poller = Poller(cfg, Secrets(), tmp_path / "c.db")
    assert set(poller.sources) == {"coingecko", "ionet", "helium", "sample"}
    assert poller.sources["ionet"].base_url == "http://127.0.0.1:1"
    assert json.loads("[]") == []


async def test_429_without_retry_after_backs_off_60_s_doubling(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    moments = [datetime(2026, 11, 25, 12, tzinfo=UTC)]
    body = b'{"status":{"error_code":429,"error_message":"slow down"}}'
    poller = Poller(
        config(sample={"enabled": False}),
        Secrets(),
        tmp_path / "c.db",
        clock=lambda: moments[0],
        transport=transport(lambda r: json_reply(body, 429)),
    )
    await poller.prepare()
    waits = []
    for _ in range(6):
        outcome = await poller.poll_source("coingecko")
        waits.append((outcome.record.retry_at - moments[0]).total_seconds())
        moments[0] = outcome.record.retry_at + timedelta(seconds=1)
    await poller.close()
    assert waits == [60, 120, 240, 480, 900, 900]


async def test_file_sd_changes_between_polls_and_counters_give_rates(tmp_path: Path) -> None:
    import os

    from cache.queries import latest_fleet
    from tests.support.loopback import LoopbackServer, Reply

    node = (FIXTURES / "node_exporter_1.5.0_2cpu.prom").read_bytes()
    text = {"content-type": "text/plain; version=0.0.4"}
    targets = tmp_path / "targets.json"
    with LoopbackServer({"/metrics": [Reply(body=node, headers=text)]}) as server:
        address = server.url.removeprefix("http://")
        targets.write_text(json.dumps([{"targets": [address], "labels": {"network": "io.net"}}]))
        cfg = config(coingecko={"enabled": False}, sample={"enabled": False})
        cfg = cfg.model_copy(
            update={
                "fleet": cfg.fleet.model_validate(
                    {"file_sd": [{"path": str(targets)}], "local": {"enabled": False}}
                )
            }
        )
        db = tmp_path / "c.db"
        first = await run_once(Poller(cfg, Secrets(), db), only=["fleet"])
        assert [n.node for n in first[0].record.reading.nodes] == [address]
        targets.write_text(
            json.dumps(
                [
                    {"targets": [address], "labels": {"network": "io.net"}},
                    {"targets": [address], "labels": {"instance": "second", "network": "akash"}},
                ]
            )
        )
        os.utime(targets, ns=(1, 4_000_000_000_000))
        second = await run_once(Poller(cfg, Secrets(), db), only=["fleet"])
    nodes = {n.node: n for n in second[0].record.reading.nodes}
    assert set(nodes) == {address, "second"}
    assert nodes["second"].network == "akash"
    conn = open_reader(db)
    rows = {r.node: r for r in latest_fleet(conn)}
    assert rows["second"].labels == {"network": "akash"}
    # a separate run continued the first node's counters: the body is identical, so no CPU
    # time passed between the two samples and no rate can be computed (None, never a guess)
    assert rows[address].values["cpu_pct"] is None and first[0].record.reading.nodes[0].counters
