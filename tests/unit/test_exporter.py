"""Scraping exporters with Prometheus semantics (reliability.md PR cases): all or nothing per
target, bounded concurrency, caps, rates from the previous sample, GPU exporters, credentials.

Checklist cases here (test_prNN_*): PR-01, PR-02, PR-03, PR-04, PR-06 (gzip), PR-11, PR-13; PR-10
(a hang) in test_concurrency_is_bounded_and_a_hang_hits_the_deadline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from sources.base import make_client
from sources.exporter import Credentials, ExporterFleetSource, Target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NODE = (FIXTURES / "node_exporter_1.5.0_2cpu.prom").read_bytes()
LATER = (FIXTURES / "node_exporter_1.5.0_2cpu_later.prom").read_bytes()
DCGM = (FIXTURES / "dcgm_exporter_2gpu.written.prom").read_bytes()
TEXT = {"content-type": "text/plain; version=0.0.4; charset=utf-8"}


def source(targets: list[Target], handler, **kw) -> tuple[ExporterFleetSource, httpx.AsyncClient]:
    client = make_client(transport=httpx.MockTransport(handler))
    return ExporterFleetSource(targets=lambda: targets, timeout=2.0, **kw), client


def target(name: str, path: str = "/metrics", **kw) -> Target:
    return Target(name=name, url=f"http://127.0.0.1:9100{path}", **kw)


async def test_good_targets_give_values_and_bad_ones_are_down_with_no_values() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        bodies = {
            "/metrics": (200, NODE, TEXT),
            "/fail": (500, b"oops", TEXT),
            "/html": (200, b"<html>login</html>", {"content-type": "text/html"}),
            "/cut": (200, NODE[: len(NODE) // 2] + b'node_load1{a="x', TEXT),
            "/om-no-eof": (
                200,
                b"node_load1 0.5\n",
                {"content-type": "application/openmetrics-text; version=1.0.0"},
            ),
        }
        status, body, headers = bodies[request.url.path]
        return httpx.Response(status, headers=headers, content=body)

    names = ["ok", "fail", "html", "cut", "om-no-eof"]
    paths = ["/metrics", "/fail", "/html", "/cut", "/om-no-eof"]
    fleet, client = source([target(n, p) for n, p in zip(names, paths, strict=True)], handler)
    async with client:
        reading = await fleet.fetch(client)
    nodes = {n.node: n for n in reading.nodes}
    ok = nodes["ok"]
    assert ok.up and ok.mem_pct is not None and ok.disk_pct is not None and ok.load1 is not None
    assert ok.cpu_pct is None  # the first scrape has no rate: never a guess
    assert ok.counters["cpu_total_s"] > 0
    assert ok.gpus is None and ok.gpu_util_pct is None  # no GPU: no GPU values, not zeros
    for name in names[1:]:
        node = nodes[name]
        assert not node.up and node.error, name
        assert (node.mem_pct, node.cpu_pct, node.load1, node.counters) == (None, None, None, {})
    assert "http_5xx" in nodes["fail"].error
    assert "truncated" in nodes["om-no-eof"].error


async def test_rates_come_from_the_previous_sample() -> None:
    fleet, client = source([target("n")], lambda r: httpx.Response(200, headers=TEXT, content=NODE))
    async with client:
        first = (await fleet.fetch(client)).nodes[0]
        later = ExporterFleetSource(
            targets=fleet.targets,
            timeout=2.0,
            previous={"n": dict(first.counters, at=1000.0)},
            clock=lambda: 1010.0,
        )
        client2 = make_client(
            transport=httpx.MockTransport(
                lambda r: httpx.Response(200, headers=TEXT, content=LATER)
            )
        )
        async with client2:
            second = (await later.fetch(client2)).nodes[0]
    assert second.cpu_pct == pytest.approx(30.0)
    assert second.net_rx_bps == pytest.approx(100_000) and second.net_tx_bps == pytest.approx(
        25_000
    )


async def test_gpu_exporter_values_join_the_node() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=TEXT, content=DCGM if request.url.port == 9400 else NODE)

    node = Target(
        name="gpu-1",
        url="http://127.0.0.1:9100/metrics",
        gpu_url="http://127.0.0.1:9400/metrics",
        labels={"network": "io.net"},
    )
    fleet, client = source([node], handler)
    async with client:
        [sample] = (await fleet.fetch(client)).nodes
    assert sample.up and sample.gpus == 2 and sample.gpu_util_pct is not None
    assert sample.network == "io.net"


async def test_a_failing_gpu_exporter_makes_the_whole_target_down() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.port == 9400:
            return httpx.Response(503, content=b"busy")
        return httpx.Response(200, headers=TEXT, content=NODE)

    node = Target(
        name="gpu-1", url="http://127.0.0.1:9100/metrics", gpu_url="http://127.0.0.1:9400/metrics"
    )
    fleet, client = source([node], handler)
    async with client:
        [sample] = (await fleet.fetch(client)).nodes
    assert not sample.up and sample.mem_pct is None  # all or nothing per target


async def test_sample_cap_and_body_cap() -> None:
    many = b"".join(b'm{i="%d"} 1\n' % i for i in range(500))
    fleet, client = source(
        [target("many")], lambda r: httpx.Response(200, headers=TEXT, content=many), max_samples=100
    )
    async with client:
        [sample] = (await fleet.fetch(client)).nodes
    assert not sample.up and "too_large" in sample.error
    huge = b"x 1\n" * (5 * 1024 * 1024 // 4)
    fleet, client = source(
        [target("huge")], lambda r: httpx.Response(200, headers=TEXT, content=huge)
    )
    async with client:
        [sample] = (await fleet.fetch(client)).nodes
    assert not sample.up and "too_large" in sample.error


async def test_concurrency_is_bounded_and_a_hang_hits_the_deadline() -> None:
    active = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            if request.url.path == "/hang":
                await asyncio.sleep(30)
            await asyncio.sleep(0.02)
            return httpx.Response(200, headers=TEXT, content=NODE)
        finally:
            active -= 1

    targets = [target(f"n{i}") for i in range(20)] + [target("hung", "/hang")]
    fleet, client = source(targets, handler, concurrency=4)
    fleet.timeout = 0.5
    started = asyncio.get_running_loop().time()
    async with client:
        reading = await fleet.fetch(client)
    assert peak <= 4
    assert asyncio.get_running_loop().time() - started < 5
    down = [n for n in reading.nodes if not n.up]
    assert [n.node for n in down] == ["hung"] and "timeout" in down[0].error


async def test_credentials_travel_in_the_header_only() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, content=b"no")

    creds = Credentials(token=SecretStr("tok-very-secret"))
    fleet, client = source([target("n", credentials=creds)], handler)
    async with client:
        [sample] = (await fleet.fetch(client)).nodes
    assert seen[0].headers["authorization"] == "Bearer tok-very-secret"
    assert "tok-very-secret" not in str(seen[0].url)
    assert not sample.up and "tok-very-secret" not in sample.error
    assert "tok-very-secret" not in repr(fleet)


async def test_hostile_labels_are_sanitised() -> None:
    fleet, client = source(
        [target("n", labels={"network": "io\x1b]52;c;x\x07net"})],
        lambda r: httpx.Response(200, headers=TEXT, content=NODE),
    )
    async with client:
        [sample] = (await fleet.fetch(client)).nodes
    assert "\x1b" not in sample.labels["network"] and "\x1b" not in (sample.network or "")


async def scrape_one(body: bytes, headers: dict[str, str] | None = None):
    fleet, client = source(
        [target("n")],
        lambda r: httpx.Response(200, headers=TEXT if headers is None else headers, content=body),
    )
    async with client:
        [sample] = (await fleet.fetch(client)).nodes
    return sample


async def test_pr01_a_real_body_scrapes_fast() -> None:
    started = asyncio.get_running_loop().time()
    sample = await scrape_one(NODE)
    assert sample.up
    assert asyncio.get_running_loop().time() - started < 0.5  # PR-01 says < 100 ms; CI slack


async def test_pr02_empty_body_is_a_failure_not_zeros() -> None:
    sample = await scrape_one(b"")
    assert not sample.up and "empty" in sample.error and sample.mem_pct is None


async def test_pr03_html_is_refused_before_parsing() -> None:
    sample = await scrape_one(b"<html>502 Bad Gateway</html>", {"content-type": "text/html"})
    assert not sample.up and "bad_content_type" in sample.error


async def test_pr04_one_bad_line_after_valid_ones_rejects_the_whole_scrape() -> None:
    sample = await scrape_one(NODE + b'node_load5{a="b" 1\n')
    assert not sample.up and sample.mem_pct is None and sample.counters == {}


async def test_pr06_gzip_over_4_mib_is_too_large() -> None:
    import gzip

    body = gzip.compress(b"# " + b"x" * (4 * 1024 * 1024 + 1) + b"\n")
    sample = await scrape_one(body, {**TEXT, "content-encoding": "gzip"})
    assert not sample.up and "too_large" in sample.error


async def test_pr11_non_finite_values_never_become_figures() -> None:
    body = (
        b"node_load1 NaN\nnode_memory_MemTotal_bytes +Inf\n"
        b"node_memory_MemAvailable_bytes 1e999\nnode_boot_time_seconds -5\n"
        b"node_time_seconds 123456789012345678901234567890\n"
    )
    sample = await scrape_one(body)
    assert sample.up
    assert sample.load1 is None and sample.mem_pct is None


async def test_pr13_a_flapping_target_is_up_down_up_and_never_reuses_values() -> None:
    answers = iter([200, 500, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return httpx.Response(status, headers=TEXT, content=NODE if status == 200 else b"x")

    fleet, client = source([target("n")], handler)
    async with client:
        states = [(await fleet.fetch(client)).nodes[0] for _ in range(3)]
    assert [s.up for s in states] == [True, False, True]
    assert states[1].mem_pct is None and states[2].mem_pct is not None
