"""Akash providers: the console's online state per named provider, parsed and fetched.

No body recorded from the live console was found: the parser runs on bodies **written** from the
provider object the console documents (``tests/fixtures/akash_provider-*.written.json``, said so
in tests/fixtures/README.md). ``fetch`` runs through httpx.MockTransport under a loopback URL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sources.akash_address import is_provider_address
from sources.akash_providers import (
    PROVIDER,
    REQUEST_LIMIT,
    AkashProviderSource,
    parse_provider,
)
from sources.base import RequestBudget, make_client
from sources.models import ErrorKind, SourceError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
ONLINE = "akash1hcu596l97rqkcllcwundclhgkvurld6grecjgy"
OFFLINE = "akash1nj6ygd4ggz589ldtt4e7yklazxm9zpp8cf7yh7"
ROOT = "http://127.0.0.1:9"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_online_provider() -> None:
    parsed = parse_provider(load("akash_provider-online.written.json"), "/p", NOW)
    assert parsed["status"] == "up"
    assert parsed["uptime_pct"] == pytest.approx(98.71)
    assert parsed["name"] == "provider.example-gpu.net"
    assert parsed["location"] == "Netherlands"
    assert parsed["hardware"] == "nvidia a100, nvidia rtx4090"
    assert parsed["error"] is None


def test_offline_provider_older_shape() -> None:
    parsed = parse_provider(load("akash_provider-offline.written.json"), "/p", NOW)
    assert parsed["status"] == "down"
    assert parsed["uptime_pct"] == pytest.approx(81.0)  # "0.81" as a string
    assert parsed["name"] == "https://provider.example-cpu.org:8443"  # no name: the host URI
    assert parsed["location"] == "DE"  # ipCountry null: the declared country
    assert parsed["hardware"] is None  # no GPU models: missing, not ""


def test_a_stale_or_missing_check_is_no_reading() -> None:
    body = load("akash_provider-online.written.json")
    late = parse_provider(body, "/p", NOW + timedelta(hours=2))
    assert late["status"] is None and "last checked" in late["error"]
    assert parse_provider(body, "/p", NOW + timedelta(hours=2), max_check_age=3 * 3600)[
        "status"
    ] == ("up")
    for key, value in (("isOnline", "yes"), ("isOnline", None), ("lastCheckDate", "soon")):
        broken = {**body, key: value}
        assert parse_provider(broken, "/p", NOW)["status"] is None
    assert parse_provider({**body, "uptime7d": 1.7}, "/p", NOW)["uptime_pct"] is None


@pytest.mark.parametrize("body", [[], "x", {"isOnline": True}, {"owner": 5}])
def test_not_a_provider_is_a_schema_error(body: Any) -> None:
    with pytest.raises(SourceError) as caught:
        parse_provider(body, "/p", NOW)
    assert caught.value.kind == ErrorKind.SCHEMA


def test_addresses() -> None:
    assert is_provider_address(ONLINE) and is_provider_address(OFFLINE)
    assert not is_provider_address(ONLINE + "q")
    assert not is_provider_address("akash1" + "b" * 38)  # "b" is not in the bech32 alphabet
    assert not is_provider_address("../../v1/providers")


def _source(handler: Any, providers: dict[str, str | None]) -> tuple[AkashProviderSource, Any]:
    source = AkashProviderSource(base_url=ROOT, providers=lambda: dict(providers))
    source.clock = lambda: NOW
    return source, httpx.MockTransport(handler)


async def test_fetch_one_request_per_named_provider() -> None:
    asked: list[str] = []
    bodies = {
        PROVIDER.format(address=ONLINE): load("akash_provider-online.written.json"),
        PROVIDER.format(address=OFFLINE): load("akash_provider-offline.written.json"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        body = bodies.get(request.url.path)
        return httpx.Response(200, json=body) if body else httpx.Response(404, json={})

    unknown = "akash1" + "q" * 38
    named = {ONLINE: "k8s-1", OFFLINE: None, unknown: "k8s-9", "not an address": "x"}
    source, transport = _source(handler, named)
    async with make_client(transport=transport) as client:
        reading = await source.fetch(client)
    assert sorted(asked) == sorted(PROVIDER.format(address=a) for a in (ONLINE, OFFLINE, unknown))
    got = {d.device_id: d for d in reading.devices}
    assert got[ONLINE].status == "up" and got[ONLINE].node == "k8s-1"
    assert got[ONLINE].network == "akash"
    assert got[OFFLINE].status == "down" and got[OFFLINE].node is None
    assert got[unknown].status is None and "404" in (got[unknown].error or "")
    assert reading.errors == []  # a 404 is an answer about that provider, not a failed endpoint
    assert source.min_interval() == pytest.approx(3 * 60.0 / REQUEST_LIMIT)


async def test_every_request_failing_fails_the_poll() -> None:
    source, transport = _source(lambda r: httpx.Response(502), {ONLINE: None, OFFLINE: None})
    source.timeout = 2.0
    async with make_client(transport=transport) as client:
        with pytest.raises(SourceError) as caught:
            await source.fetch(client)
    assert caught.value.kind == ErrorKind.HTTP_5XX


async def test_one_failure_is_listed_the_rest_stored() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if OFFLINE in request.url.path:
            return httpx.Response(500)
        return httpx.Response(200, json=load("akash_provider-online.written.json"))

    source, transport = _source(handler, {ONLINE: "a", OFFLINE: "b"})
    source.timeout = 2.0
    async with make_client(transport=transport) as client:
        reading = await source.fetch(client)
    got = {d.device_id: d for d in reading.devices}
    assert got[ONLINE].status == "up"
    assert got[OFFLINE].status is None and got[OFFLINE].error == "http_5xx"
    assert len(reading.errors) == 1 and OFFLINE[:12] in reading.errors[0].endpoint


async def test_budget_used_up_stops_the_cycle() -> None:
    source, transport = _source(
        lambda r: httpx.Response(200, json=load("akash_provider-online.written.json")),
        {ONLINE: None, OFFLINE: None},
    )
    source.api_budget = RequestBudget(1, 600.0)
    source.timeout = 1.0
    async with make_client(transport=transport) as client:
        with pytest.raises(SourceError) as caught:
            await source.fetch(client)
    assert caught.value.kind == ErrorKind.RATE_LIMITED and caught.value.retry_after


async def test_nothing_named_makes_no_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    source, transport = _source(handler, {})
    async with make_client(transport=transport) as client:
        reading = await source.fetch(client)
    assert reading.devices == [] and reading.note


def test_registry_builds_it_from_the_config_and_fleet_labels() -> None:
    from explorer.config import Config, ConfigError, Secrets
    from explorer.registry import AKASH_PROVIDERS, build_sources

    assert AKASH_PROVIDERS not in build_sources(Config(), Secrets())  # nothing named: no source
    config = Config.model_validate(
        {
            "sources": {"akash": {"providers": [OFFLINE], "provider_interval": 120}},
            "fleet": {
                "targets": [
                    {
                        "name": "k8s-1",
                        "url": "http://127.0.0.1:9100",
                        "labels": {"provider": ONLINE},
                    }
                ]
            },
        }
    )
    source, settings = build_sources(config, Secrets())[AKASH_PROVIDERS]
    assert isinstance(source, AkashProviderSource)
    assert source.all_providers() == {OFFLINE: None, ONLINE: "k8s-1"}
    assert settings.interval == 120
    with pytest.raises((ConfigError, ValueError)):
        Config.model_validate({"sources": {"akash": {"providers": ["akash1nope"]}}})


def test_prepare_merges_the_providers_labelled_in_the_cache() -> None:
    from datetime import datetime as _dt

    from sources.base import PollContext

    source = AkashProviderSource(base_url=ROOT, providers=lambda: {OFFLINE: None})
    source.prepare(
        PollContext(
            clock=lambda: NOW, fleet_providers={ONLINE: "k8s-1", OFFLINE: "k8s-2", "x": "y"}
        )
    )
    assert source.all_providers() == {OFFLINE: "k8s-2", ONLINE: "k8s-1"}  # a node name wins
    assert isinstance(source.clock(), _dt) and source.clock() == NOW


async def test_the_poller_asks_about_providers_labelled_by_prometheus_nodes(
    tmp_path: Path,
) -> None:
    """Nodes from a Prometheus server carry the label: the poller reads them from the cache."""
    from cache.db import open_reader, open_writer
    from cache.network_status import network_views
    from cache.store import PollRecord, write_poll
    from explorer.config import Config, Secrets
    from explorer.poller import Poller
    from explorer.registry import AKASH_PROVIDERS
    from sources.models import NodeSample, Reading

    db = tmp_path / "c.db"
    conn = open_writer(db)
    node = NodeSample(node="k8s-1", source_kind="promql", up=True, labels={"provider": ONLINE})
    write_poll(conn, PollRecord("promql", NOW, NOW, Reading(nodes=[node])))
    conn.close()
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        body = load("akash_provider-online.written.json")
        return httpx.Response(200, json={**body, "lastCheckDate": datetime.now(UTC).isoformat()})

    off = {name: {"enabled": False} for name in ("coingecko", "ionet", "filecoin", "helium")}
    config = Config.model_validate(
        {
            "sources": {**off, "sample": {"enabled": False}, "akash": {"base_url": ROOT}},
            "fleet": {"local": {"enabled": False}, "prometheus": [{"url": ROOT + "/prom"}]},
        }
    )
    poller = Poller(config, Secrets(), db, transport=httpx.MockTransport(handler))
    await poller.prepare()
    try:
        outcome = await poller.poll_source(AKASH_PROVIDERS)
    finally:
        await poller.close()
    assert outcome.record is not None and outcome.record.ok
    assert asked == [PROVIDER.format(address=ONLINE)]
    view = network_views(open_reader(db))["k8s-1"]
    assert view.network == "akash" and view.up is True and view.device_id == ONLINE
