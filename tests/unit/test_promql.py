"""PromqlSource against Prometheus API bodies (docs/promql.md; docs/reliability.md PR-14, PR-15).

Bodies are byte-for-byte in the shape Prometheus 2.42 sends (compact JSON, values as strings,
``application/json``), served by httpx.MockTransport and routed by the ``query`` parameter to the
field it feeds. Nothing here opens a socket; tests/integration/test_promql_real.py runs the same
source against the real server.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from sources.base import make_client
from sources.figures import VIRTUAL_NET_DEVICES
from sources.models import ErrorKind, NodeSample, Reading, SourceError
from sources.promql import (
    DOWN_ERROR,
    PromqlSource,
    build_queries,
    parse_response,
    sample_value,
    selector_matchers,
    vector_selector,
)
from tests.corpus import FORBIDDEN_SEQUENCES

URL = "http://prom.test:9090"
TS = 1795653001.051
A, B, C = "10.0.0.1:9100", "10.0.0.2:9100", "10.0.0.3:9100"
SECRET = "Bearer s3cr3t-t0ken-value"

Series = tuple[dict[str, str], Any]


def body(result_type: str, result: Any, **extra: Any) -> bytes:
    envelope = {"status": "success", "data": {"resultType": result_type, "result": result}}
    envelope.update(extra)
    return json.dumps(envelope, separators=(",", ":")).encode()


def vector(*series: Series, **extra: Any) -> bytes:
    return body("vector", [{"metric": m, "value": [TS, v]} for m, v in series], **extra)


def per_instance(values: dict[str, Any], **extra: Any) -> bytes:
    """An aggregated ``by (instance)`` answer: {instance: value string}."""
    return vector(*(({"instance": i}, v) for i, v in values.items()), **extra)


def ok(content: bytes, status: int = 200, content_type: str = "application/json") -> httpx.Response:
    return httpx.Response(status, content=content, headers={"content-type": content_type})


def error(status: int, error_type: str, message: str) -> httpx.Response:
    envelope = {"status": "error", "errorType": error_type, "error": message}
    return ok(json.dumps(envelope).encode(), status)


UP = vector(
    ({"__name__": "up", "instance": A, "job": "node", "network": "io.net"}, "1"),
    ({"__name__": "up", "instance": B, "job": "node"}, "1"),
    ({"__name__": "up", "instance": C, "job": "node"}, "0"),
)
# a fleet where A has two dcgm GPUs, B none, and C is down (its rates still see old samples)
FLEET: dict[str, bytes] = {
    "up": UP,
    "cpu_pct": per_instance({A: "37.5", B: "2.25", C: "99"}),
    "mem_pct": per_instance({A: "61.03515625", B: "20"}),
    "disk_pct": per_instance({A: "44.5", B: "90.125"}),
    "load1": per_instance({A: "1.5", B: "0"}),
    "uptime_s": per_instance({A: "86400.25", B: "3600"}),
    "net_rx_bps": per_instance({A: "125000", B: "0"}),
    "net_tx_bps": per_instance({A: "2.5e+05", B: "0"}),
    "gpu_util_pct": per_instance({A: "87.5"}),
    "gpu_temp_c": per_instance({A: "71"}),
    "gpu_power_w": per_instance({A: "612.75"}),
    "gpus": per_instance({A: "2"}),
    "gpu_mem_pct": per_instance({A: "50"}),
}


class Server:
    """A MockTransport handler answering each query from a table keyed by field name.

    A value is bytes (served as JSON), an httpx.Response, a list of those (served in turn, the
    last repeating) or a callable taking the request.
    """

    def __init__(self, source: PromqlSource, answers: dict[str, Any]) -> None:
        self.fields = {query: name for name, query in source.queries().items()}
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def calls(self, name: str) -> int:
        return sum(1 for r in self.requests if self.fields.get(r.url.params["query"]) == name)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.path == "/api/v1/query"
        name = self.fields[request.url.params["query"]]
        answer = self.answers.get(name, vector())
        if isinstance(answer, list):
            answer = answer[0] if len(answer) == 1 else answer.pop(0)
        if callable(answer):
            return answer(request)
        if isinstance(answer, bytes):
            return ok(answer)
        return answer


async def run(source: PromqlSource, answers: dict[str, Any]) -> tuple[Reading, Server]:
    server = Server(source, answers)
    async with make_client(transport=httpx.MockTransport(server)) as client:
        return await source.fetch(client), server


async def fails(source: PromqlSource, answers: dict[str, Any]) -> SourceError:
    server = Server(source, answers)
    async with make_client(transport=httpx.MockTransport(server)) as client:
        with pytest.raises(SourceError) as info:
            await source.fetch(client)
    return info.value


def samples(reading: Reading) -> list[NodeSample]:
    """The nodes of a PromQL reading (it sends them as columns), as NodeSamples."""
    assert reading.nodes == [] and reading.node_columns is not None
    return reading.node_columns.samples()


def by_node(reading: Reading) -> dict[str, NodeSample]:
    nodes = {n.node: n for n in samples(reading)}
    assert len(nodes) == len(samples(reading)), "one sample per instance"
    return nodes


def source(**kw: Any) -> PromqlSource:
    return PromqlSource(url=URL, selector='{job="node"}', **kw)


# -- the whole fleet ------------------------------------------------------------------------------


async def test_every_query_joins_into_one_sample_per_instance():
    reading, server = await run(source(), FLEET)
    assert reading.errors == [] and reading.note is None and reading.skipped == 0
    nodes = by_node(reading)
    assert list(nodes) == [A, B, C]
    assert nodes[A].model_dump() == {
        "node": A,
        "source_kind": "promql",
        "network": "io.net",
        "labels": {"instance": A, "job": "node", "network": "io.net"},
        "up": True,
        "error": None,
        "cpu_pct": 37.5,
        "mem_pct": 61.03515625,
        "disk_pct": 44.5,
        "load1": 1.5,
        "uptime_s": 86400.25,
        "net_rx_bps": 125000.0,
        "net_tx_bps": 250000.0,
        "gpus": 2,
        "gpu_util_pct": 87.5,
        "gpu_temp_c": 71.0,
        "gpu_power_w": 612.75,
        "gpu_mem_pct": 50.0,
        "counters": {},
    }
    # no GPU means None, never 0; a real 0 stays 0
    b = nodes[B]
    assert (b.up, b.load1, b.net_rx_bps, b.cpu_pct) == (True, 0.0, 0.0, 2.25)
    assert (b.gpus, b.gpu_util_pct, b.gpu_temp_c, b.gpu_power_w, b.gpu_mem_pct) == (None,) * 5
    assert b.network is None
    # a down node keeps its labels but shows no value, not even the rate over old samples
    c = nodes[C]
    assert (c.up, c.error, c.cpu_pct, c.mem_pct) == (False, DOWN_ERROR, None, None)
    assert c.labels == {"instance": C, "job": "node"}
    # one request per query, all with the same timeout and limit
    assert len(server.requests) == len(FLEET)
    for request in server.requests:
        # 90 % of what is left of the queries' share (85 %) of the 10 s poll
        assert 7000 <= int(request.url.params["timeout"].removesuffix("ms")) <= 7650
        assert request.url.params["limit"] == "300000"
        assert request.headers["accept"] == "application/json"


async def test_values_are_json_strings_and_non_finite_ones_become_none():
    answers = dict(FLEET)
    answers["cpu_pct"] = per_instance({A: "NaN", B: "+Inf"})
    answers["mem_pct"] = per_instance({A: "-Inf", B: "1e999"})
    answers["load1"] = per_instance({A: "junk", B: 0.75})  # a number where a string belongs
    answers["disk_pct"] = vector(({"instance": A}, None), ({"instance": B}, "4.2e+01"))
    reading, _ = await run(source(), answers)
    nodes = by_node(reading)
    assert (nodes[A].cpu_pct, nodes[B].cpu_pct) == (None, None)
    assert (nodes[A].mem_pct, nodes[B].mem_pct) == (None, None)
    assert (nodes[A].load1, nodes[B].load1) == (None, 0.75)
    assert (nodes[A].disk_pct, nodes[B].disk_pct) == (None, 42.0)
    assert reading.errors == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1.0),
        ("0.25", 0.25),
        ("2.70553174016e+11", 2.70553174016e11),
        ("-3", -3.0),
        ("NaN", None),
        ("+Inf", None),
        ("-Inf", None),
        ("", None),
        ("abc", None),
        (True, None),
        (None, None),
        ([1], None),
        (7, 7.0),
        (math.nan, None),
    ],
)
def test_sample_value(raw: Any, expected: float | None):
    assert sample_value(raw) == expected


async def test_an_instance_missing_from_up_is_not_a_node_and_series_without_instance_are_skipped():
    answers = dict(FLEET)
    answers["up"] = vector(
        ({"__name__": "up", "instance": A, "job": "node"}, "1"),
        ({"__name__": "up", "job": "node"}, "1"),  # relabelled away: no name to give it
    )
    answers["cpu_pct"] = per_instance({A: "10", "elsewhere:9100": "50"})
    reading, _ = await run(source(), answers)
    assert [n.node for n in samples(reading)] == [A]
    assert samples(reading)[0].cpu_pct == 10.0
    assert reading.skipped == 1


async def test_the_same_instance_under_two_jobs_is_down_if_either_job_is_down():
    answers = dict(FLEET)
    answers["up"] = vector(
        ({"__name__": "up", "instance": A, "job": "node"}, "1"),
        ({"__name__": "up", "instance": A, "job": "node-again"}, "0"),
    )
    reading, _ = await run(source(), answers)
    [node] = samples(reading)
    assert node.up is False and node.labels["job"] == "node"


async def test_labels_are_sanitised_and_bounded():
    hostile = "x\x1b]52;c;ZWNobyBoaQ==\x07\x1b[2J\u202e"
    labels = {"__name__": "up", "instance": f"{A}\x1b[31m", "job": "node", "evil": hostile}
    labels.update({f"l{i:02d}": "v" for i in range(40)})
    answers = {"up": vector((labels, "1"))}
    reading, _ = await run(source(), answers)
    [node] = samples(reading)
    assert len(node.labels) == 30 and "__name__" not in node.labels
    for text in [node.node, *node.labels, *node.labels.values()]:
        assert not any(seq in text for seq in FORBIDDEN_SEQUENCES)
    assert node.node.startswith(A) and node.node != labels["instance"]


# -- failures -------------------------------------------------------------------------------------


async def test_one_query_failing_with_422_keeps_the_others_and_is_not_retried():
    answers = dict(FLEET)
    answers["cpu_pct"] = error(422, "execution", "query processing would load too many samples")
    reading, server = await run(source(), answers)
    assert [e.endpoint for e in reading.errors] == ["cpu_pct"]
    failure = reading.errors[0].error
    assert failure.kind is ErrorKind.HTTP_4XX and failure.status == 422
    assert failure.message.startswith("cpu_pct: HTTP 422 from prom.test")
    assert "too many samples" in failure.message
    assert server.calls("cpu_pct") == 1
    nodes = by_node(reading)
    assert nodes[A].cpu_pct is None and nodes[A].mem_pct == 61.03515625


async def test_error_message_with_escape_sequences_is_sanitised():
    answers = dict(FLEET)
    answers["mem_pct"] = error(422, "execution", "boom \x1b]52;c;ZWNobyBoaQ==\x07[red]x[/red]")
    answers["gpus"] = ok(
        json.dumps({"status": "error", "errorType": "bad\x1b[2J", "error": "\x9b31m"}).encode()
    )
    reading, _ = await run(source(), answers)
    assert [e.endpoint for e in reading.errors] == ["mem_pct", "gpus"]
    for failure in reading.errors:
        assert not any(seq in failure.error.message for seq in FORBIDDEN_SEQUENCES)


async def test_error_envelope_on_200_fails_that_query_with_its_error_type():
    answers = dict(FLEET)
    answers["disk_pct"] = ok(
        b'{"status":"error","errorType":"bad_data","error":"1:16: parse error: unclosed left'
        b' parenthesis"}'
    )
    answers["load1"] = ok(b'{"status":"error","errorType":"timeout","error":"query timed out"}')
    reading, _ = await run(source(), answers)
    errors = {e.endpoint: e.error for e in reading.errors}
    assert errors["disk_pct"].kind is ErrorKind.HTTP_4XX
    assert errors["disk_pct"].message == (
        "disk_pct: bad_data: 1:16: parse error: unclosed left parenthesis"
    )
    assert errors["load1"].kind is ErrorKind.TIMEOUT
    assert errors["load1"].message == (
        "load1: timeout: query timed out; raise [fleet] timeout (now 10 s) "
        "or narrow the selector of the [[fleet.prometheus]] at prom.test:9090"
    )


async def test_a_400_bad_data_on_up_fails_the_poll_without_retry():
    msg = 'invalid parameter "query": 1:4: parse error: unexpected character'
    err = await fails(source(), {"up": error(400, "bad_data", msg)})
    assert err.kind is ErrorKind.HTTP_4XX and err.status == 400
    assert err.message.startswith("node health unknown: up: HTTP 400 from prom.test")
    assert "parse error" in err.message


async def test_up_failing_fails_the_poll_even_when_other_queries_answer():
    answers = dict(FLEET)
    answers["up"] = ok(body("matrix", []))
    err = await fails(source(), answers)
    assert err.kind is ErrorKind.SCHEMA
    assert err.message == "node health unknown: up: expected a vector result, got matrix"


async def test_no_target_matching_the_selector_is_an_empty_poll():
    err = await fails(source(), {"up": vector(warnings=["no store matched"])})
    assert err.kind is ErrorKind.EMPTY
    assert err.message == 'no target matches up{job="node"} (no store matched)'


@pytest.mark.parametrize(
    ("result_type", "result"),
    [
        ("matrix", [{"metric": {"instance": A}, "values": [[TS, "1"], [TS + 1, "2"]]}]),
        ("scalar", [TS, "1"]),
        ("string", [TS, "hello"]),
        (None, []),
    ],
)
async def test_a_result_that_is_not_a_vector_is_a_schema_error_for_that_query(
    result_type: str | None, result: Any
):
    answers = dict(FLEET)
    answers["load1"] = ok(body(result_type, result))  # type: ignore[arg-type]
    reading, _ = await run(source(), answers)
    [failure] = reading.errors
    assert failure.endpoint == "load1" and failure.error.kind is ErrorKind.SCHEMA
    assert "expected a vector result" in failure.error.message
    assert by_node(reading)[A].load1 is None and by_node(reading)[A].cpu_pct == 37.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[1, 2]", "load1: not a Prometheus API answer"),
        (b'{"status":"success"}', "load1: answer has no data object"),
        (b'{"status":"success","data":{"resultType":"vector"}}', "vector result is not a list"),
        (b'{"data":{"resultType":"vector","result":[]}}', "no success or error status"),
    ],
)
async def test_malformed_envelopes_are_schema_errors(content: bytes, message: str):
    answers = dict(FLEET)
    answers["load1"] = ok(content)
    reading, _ = await run(source(), answers)
    [failure] = reading.errors
    assert failure.error.kind is ErrorKind.SCHEMA and message in failure.error.message


async def test_native_histograms_and_malformed_series_are_ignored():
    answers = dict(FLEET)
    answers["load1"] = body(
        "vector",
        [
            {"metric": {"instance": A}, "histogram": [TS, {"count": "3", "sum": "1"}]},
            {"metric": {"instance": B}, "value": [TS]},
            "junk",
            {"metric": "junk", "value": [TS, "1"]},
            {"metric": {"instance": B}, "value": [TS, "0.5"]},
        ],
    )
    reading, _ = await run(source(), answers)
    nodes = by_node(reading)
    assert (nodes[A].load1, nodes[B].load1) == (None, 0.5)


async def test_warnings_are_kept_going_and_returned_in_the_note():
    answers = dict(FLEET)
    answers["up"] = vector(
        ({"__name__": "up", "instance": A, "job": "node"}, "1"),
        warnings=["partial response: store 10.1.1.1:10901 unreachable"],
    )
    answers["cpu_pct"] = per_instance(
        {A: "12"},
        warnings=["partial response: store 10.1.1.1:10901 unreachable", "x\x1b[2Jy"],
    )
    answers["mem_pct"] = per_instance({A: "5"}, warnings="not a list")
    reading, _ = await run(source(), answers)
    assert reading.errors == []
    assert reading.note == "partial response: store 10.1.1.1:10901 unreachable; x␛[2Jy"
    assert samples(reading)[0].cpu_pct == 12.0 and samples(reading)[0].mem_pct == 5.0


async def test_long_warnings_are_truncated():
    answers = dict(FLEET)
    answers["up"] = vector(
        ({"__name__": "up", "instance": A}, "1"), warnings=[f"w{i} " + "x" * 150 for i in range(9)]
    )
    reading, _ = await run(source(), answers)
    assert reading.note is not None and len(reading.note) <= 501


async def test_series_over_the_limit_are_dropped_and_noted():
    ups = [({"__name__": "up", "instance": f"10.0.1.{i}:9100"}, "1") for i in range(5)]
    reading, server = await run(source(limit=3), {"up": vector(*ups)})
    assert [n.node for n in samples(reading)] == ["10.0.1.0:9100", "10.0.1.1:9100", "10.0.1.2:9100"]
    assert reading.note == (
        "up: 2 series over the limit of 3; raise limit of the [[fleet.prometheus]] at "
        "prom.test:9090 (0 = all)"
    )
    assert server.requests[0].url.params["limit"] == "3"


async def test_limit_zero_sends_no_limit_and_keeps_everything():
    ups = [({"__name__": "up", "instance": f"10.0.1.{i}:9100"}, "1") for i in range(5)]
    reading, server = await run(source(limit=0), {"up": vector(*ups)})
    assert len(samples(reading)) == 5 and reading.note is None
    assert "limit" not in server.requests[0].url.params


async def test_401_is_an_auth_error_and_the_token_never_shows():
    answers = {"up": error(401, "unauthorized", f"token {SECRET} rejected")}
    src = source(headers={"authorization": SECRET})
    server = Server(src, answers)
    async with make_client(transport=httpx.MockTransport(server)) as client:
        with pytest.raises(SourceError) as info:
            await src.fetch(client)
    assert info.value.kind is ErrorKind.AUTH and info.value.status == 401
    assert "s3cr3t" not in info.value.message and "s3cr3t" not in repr(src)
    assert all(r.headers["authorization"] == SECRET for r in server.requests)


async def test_html_page_with_200_is_bad_content_type():
    page = ok(b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    err = await fails(source(), {name: page for name in FLEET})
    assert err.kind is ErrorKind.BAD_CONTENT_TYPE
    assert err.message.startswith("node health unknown: up: prom.test answered text/html")


async def test_503_is_retried_within_the_deadline():
    answers = dict(FLEET)
    answers["up"] = [error(503, "timeout", "query timed out in expression evaluation"), UP]
    reading, server = await run(source(timeout=5.0), answers)
    assert server.calls("up") == 2
    assert len(samples(reading)) == 3 and reading.errors == []


async def test_every_query_failing_raises_the_up_failure():
    answers = {name: error(503, "unavailable", "no") for name in FLEET}
    err = await fails(source(timeout=0.3), answers)
    assert err.kind in (ErrorKind.HTTP_5XX, ErrorKind.TIMEOUT)
    assert err.message.startswith("node health unknown: up: ")


async def test_a_malformed_selector_fails_the_poll_before_any_request():
    src = PromqlSource(url=URL, selector='up{job="node"}')
    calls: list[httpx.Request] = []
    async with make_client(transport=httpx.MockTransport(calls.append)) as client:  # type: ignore[arg-type]
        with pytest.raises(SourceError) as info:
            await src.fetch(client)
    assert info.value.kind is ErrorKind.HTTP_4XX and "without a metric name" in info.value.message
    assert calls == []


async def test_url_with_path_prefix_and_trailing_slash():
    src = PromqlSource(url="http://thanos.test/prometheus/", selector="")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return ok(UP if request.url.params["query"] == "up" else vector())

    async with make_client(transport=httpx.MockTransport(handler)) as client:
        reading = await src.fetch(client)
    assert len(samples(reading)) == 3 and set(seen) == {"/prometheus/api/v1/query"}


# -- selector merging -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "matchers"),
    [
        ("", ""),
        ("   ", ""),
        ("{}", ""),
        ('{job="node"}', 'job="node"'),
        (' { job="node" , } ', 'job="node"'),
        ('{job="node",env=~"prod|stage"}', 'job="node",env=~"prod|stage"'),
        ('job="node"', 'job="node"'),
        ('{path="{x}"}', 'path="{x}"'),
    ],
)
def test_selector_matchers(selector: str, matchers: str):
    assert selector_matchers(selector) == matchers


@pytest.mark.parametrize("selector", ['up{job="node"}', 'node_load1 {job="x"}', '{job="node"'])
def test_selector_matchers_rejects_metric_names_and_open_braces(selector: str):
    with pytest.raises(ValueError):
        selector_matchers(selector)


def test_vector_selector_never_leaves_empty_braces():
    assert vector_selector("up", "") == "up"
    assert vector_selector("up", 'job="node"') == 'up{job="node"}'
    assert vector_selector("m", "", 'mode="idle"') == 'm{mode="idle"}'
    assert vector_selector("m", 'job="n"', 'a="1"', 'b!="2"') == 'm{a="1",b!="2",job="n"}'


def test_queries_with_an_empty_selector():
    q = build_queries("")
    assert q["up"] == "up"
    assert q["cpu_pct"] == (
        '100 * (1 - sum by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) / '
        "sum by (instance) (rate(node_cpu_seconds_total[5m])))"
    )
    assert q["mem_pct"] == (
        "avg by (instance) (100 * (1 - node_memory_MemAvailable_bytes / "
        "node_memory_MemTotal_bytes))"
    )
    assert q["load1"] == "max by (instance) (node_load1)"
    assert q["uptime_s"] == "max by (instance) (node_time_seconds - node_boot_time_seconds)"
    assert q["net_rx_bps"] == (
        "sum by (instance) (rate(node_network_receive_bytes_total"
        f'{{device!~"{VIRTUAL_NET_DEVICES}"}}[5m]))'
    )
    # sentinels (DCGM blanks, 4294967295 spikes) are filtered out before the mean
    assert q["gpu_util_pct"] == (
        "avg by (instance) ((DCGM_FI_DEV_GPU_UTIL >= 0 <= 100)) or "
        "avg by (instance) (100 * (nvidia_smi_utilization_gpu_ratio >= 0 <= 1))"
    )
    # MIG: GPUs counted from every dcgm family (MIG omits GPU_UTIL), memory summed per GPU
    assert q["gpus"] == (
        "count by (instance) (group by (instance, gpu) "
        '({__name__=~"DCGM_FI_DEV_(GPU_UTIL|GPU_TEMP|POWER_USAGE|FB_USED|FB_FREE)"})) or '
        "count by (instance) (group by (instance, uuid) (nvidia_smi_gpu_info))"
    )
    assert q["gpu_mem_pct"].startswith(
        "100 * sum by (instance) (max by (instance, gpu) "
        '((DCGM_FI_DEV_FB_USED{GPU_I_ID=""} >= 0 <= 16777216)) or '
        "sum by (instance, gpu) (max by (instance, gpu, GPU_I_ID) "
        '((DCGM_FI_DEV_FB_USED{GPU_I_ID!=""} >= 0 <= 16777216))))'
    )
    assert all("{}" not in query and ",}" not in query for query in q.values())


def test_queries_with_a_job_selector():
    q = build_queries('{job="node"}')
    assert q["up"] == 'up{job="node"}'
    assert q["cpu_pct"] == (
        "100 * (1 - sum by (instance) "
        '(rate(node_cpu_seconds_total{mode="idle",job="node"}[5m])) / '
        'sum by (instance) (rate(node_cpu_seconds_total{job="node"}[5m])))'
    )
    assert q["disk_pct"] == (
        "max by (instance) (100 * (1 - "
        'node_filesystem_avail_bytes{mountpoint="/",fstype!~"tmpfs|overlay|squashfs|nsfs",'
        'job="node"} / '
        'node_filesystem_size_bytes{mountpoint="/",fstype!~"tmpfs|overlay|squashfs|nsfs",'
        'job="node"}))'
    )
    assert q["gpu_temp_c"] == (
        'max by (instance) ((DCGM_FI_DEV_GPU_TEMP{job="node"} >= -40 <= 150)) or '
        'max by (instance) ((nvidia_smi_temperature_gpu{job="node"} >= -40 <= 150))'
    )
    assert q["gpus"] == (
        "count by (instance) (group by (instance, gpu) "
        '({__name__=~"DCGM_FI_DEV_(GPU_UTIL|GPU_TEMP|POWER_USAGE|FB_USED|FB_FREE)",'
        'job="node"})) or '
        'count by (instance) (group by (instance, uuid) (nvidia_smi_gpu_info{job="node"}))'
    )
    assert q["gpu_power_w"] == (
        "sum by (instance) (max by (instance, gpu) "
        '((DCGM_FI_DEV_POWER_USAGE{job="node"} >= 0 <= 5000))) or '
        "sum by (instance) (max by (instance, uuid) "
        '((nvidia_smi_power_draw_watts{job="node"} >= 0 <= 5000)))'
    )


def test_queries_with_extra_labels_merge_into_every_selector():
    sel = '{job="node",env=~"prod|stage",dc!="lab"}'
    inner = sel[1:-1]
    q = build_queries(sel)
    assert q["up"] == f"up{sel}"
    assert (
        f'node_network_transmit_bytes_total{{device!~"{VIRTUAL_NET_DEVICES}",{inner}}}'
        in q["net_tx_bps"]
    )
    # every metric in every query carries the selector exactly once per occurrence
    for name, query in q.items():
        metrics = query.count("{")
        assert metrics >= 1 and query.count(inner) == metrics, name


async def test_the_queries_sent_are_the_ones_built():
    src = PromqlSource(url=URL, selector='{job="node", env="prod"}')
    _, server = await run(src, {"up": UP})
    sent = {r.url.params["query"] for r in server.requests}
    assert sent == set(build_queries('{job="node", env="prod"}').values())
    assert 'up{job="node", env="prod"}' in sent


def test_parse_response_is_usable_on_its_own():
    result = parse_response(per_instance({A: "1"}, warnings=["w"]), "x", limit=10)
    assert (result.instances, result.values, result.warnings) == ([A], [1.0], ["w"])
    assert result.truncated == 0
