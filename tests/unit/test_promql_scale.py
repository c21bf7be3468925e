"""The PromQL path at fleet scale and against real answers: sizes, refusals, columns, settings.

The bodies of a real Prometheus 3.14 (tests/fixtures/real/) are read with figures checked by
hand; a loopback stand-in for a server answering for 20,000 nodes (tests/support/promql_fleet.py,
gzip, dcgm-exporter labels) goes through the source, the cache and the export; servers refusing
a query (too many samples, a timeout, an answer over ``max_body_mb``, a gzip bomb) give messages
that name the query and what narrows it.
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from cache.db import open_writer
from cache.export import fleet_records
from cache.queries import latest_fleet
from cache.store import PollRecord, write_poll
from explorer.cli import cli
from explorer.config import Config, PrometheusConfig, Secrets
from explorer.registry import build_sources
from sources.base import make_client
from sources.models import ErrorKind, NodeColumns, NodeSample, Reading, SourceError
from sources.promql import (
    DEFAULT_LIMIT,
    DEFAULT_MAX_BODY_MB,
    PromqlSource,
    parse_response,
)
from tests.support.fault_server import FaultServer, Reply, Request, gzip_bomb
from tests.support.promql_fleet import DOWN_EVERY, fleet_server, node_name, value_for

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
VECTOR_UP = REAL / "prometheus_api_v1_query.prom3.14-rust-test-vector-up.json"
BAD_DATA = REAL / "prometheus_api_v1_query.prom3.14-rust-test-error-bad_data.json"
URL = "http://prom.test:9090"


def json_reply(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


async def run(source: PromqlSource, handler: Any) -> Reading:
    async with make_client(transport=httpx.MockTransport(handler)) as client:
        return await source.fetch(client)


def up_then(answer: Any) -> Any:
    """A server answering ``up`` with one node and every other query with ``answer``."""
    up = json.loads(VECTOR_UP.read_text())

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["query"] == "up":
            return json_reply(200, up)
        return answer(request) if callable(answer) else answer

    return handler


# -- real answers ---------------------------------------------------------------------------------


def test_a_real_prometheus_3_14_vector_reads_as_its_body_says():
    body = VECTOR_UP.read_bytes()
    result = parse_response(body, "up", limit=0, labelled=True)
    # one series: instance 127.0.0.1:9099, job prometheus, value "1"; __name__ is dropped
    assert result.instances == ["127.0.0.1:9099"] and result.values == [1.0]
    assert result.labels == [{"instance": "127.0.0.1:9099", "job": "prometheus"}]
    assert result.warnings == [] and result.truncated == 0
    # the same body, read as an aggregated query: only the instance is kept
    other = parse_response(body, "cpu_pct", limit=0, labelled=False)
    assert (other.instances, other.values, other.labels) == (["127.0.0.1:9099"], [1.0], None)


async def test_a_real_prometheus_3_14_bad_data_error_names_the_query():
    bad = json.loads(BAD_DATA.read_text())
    source = PromqlSource(url=URL)
    reading = await run(source, up_then(json_reply(400, bad)))
    [node] = reading.node_columns.samples()  # type: ignore[union-attr]
    assert node.node == "127.0.0.1:9099" and node.up and node.labels["job"] == "prometheus"
    errors = {e.endpoint: e.error for e in reading.errors}
    assert set(errors) == set(source.queries()) - {"up"}
    load = errors["load1"]
    assert load.kind is ErrorKind.HTTP_4XX and load.status == 400
    assert load.message == (
        'load1: HTTP 400 from prom.test: invalid parameter "query": 1:4: parse error: '
        "unexpected end of input inside braces"
    )


# -- refusals say which query, why, and what narrows it ---------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (
            422,
            {
                "status": "error",
                "errorType": "execution",
                "error": "query processing would load too many samples into memory in query "
                "execution",
            },
            "narrow the selector of the [[fleet.prometheus]] at prom.test:9090, or raise the "
            "server's own limit (Prometheus --query.max-samples",
        ),
        (
            422,
            {
                "status": "error",
                "errorType": "422",
                "error": "cannot select more than -search.maxUniqueTimeseries=300000 time series",
            },
            "VictoriaMetrics -search.maxUniqueTimeseries",
        ),
        (
            503,
            {"status": "error", "errorType": "timeout", "error": "query timed out in expression"},
            "raise [fleet] timeout (now 10 s) or narrow the selector",
        ),
        (
            200,
            {"status": "error", "errorType": "timeout", "error": "query timed out"},
            "raise [fleet] timeout",
        ),
    ],
)
async def test_a_refused_query_says_which_and_what_narrows_it(
    status: int, body: dict[str, str], says: str
):
    reading = await run(PromqlSource(url=URL, timeout=10.0), up_then(json_reply(status, body)))
    message = {e.endpoint: e.error.message for e in reading.errors}["cpu_pct"]
    assert message.startswith("cpu_pct: ") and says in message


async def test_an_answer_over_max_body_mb_says_to_raise_it():
    big = b'{"status":"success","data":{"resultType":"vector","result":[' + b" " * (2 << 20)
    source = PromqlSource(url=URL, max_body_mb=1)
    reading = await run(
        source,
        up_then(httpx.Response(200, content=big, headers={"content-type": "application/json"})),
    )
    error = {e.endpoint: e.error for e in reading.errors}["mem_pct"]
    assert error.kind is ErrorKind.TOO_LARGE
    assert error.message == (
        "mem_pct: body larger than 1 MiB; raise max_body_mb of the [[fleet.prometheus]] at "
        "prom.test:9090 (now 1) or narrow its selector"
    )


async def test_a_gzip_bomb_stops_at_the_cap_with_flat_memory():
    # 0.2 MB on the wire, 200 MB decoded, for every query: each stops at the 16 MiB cap
    async with FaultServer({"/api/v1/query": gzip_bomb()}) as server:
        source = PromqlSource(url=server.url, max_body_mb=16, timeout=20.0)
        tracemalloc.start()
        try:
            async with make_client() as client:
                with pytest.raises(SourceError) as info:
                    await source.fetch(client)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert info.value.kind is ErrorKind.TOO_LARGE
    assert info.value.message.startswith("node health unknown: up: body larger than 16 MiB")
    # three answers in flight at most, each held to the cap: never the 200 MB they inflate to
    assert peak < 3 * 20 * 1024 * 1024


# -- leniency on odd answers, without cost on plain ones --------------------------------------


def _vector(series: list[dict[str, Any]]) -> bytes:
    envelope = {"status": "success", "data": {"resultType": "vector", "result": series}}
    return json.dumps(envelope).encode()


def test_infinite_and_junk_values_are_missing_and_the_rest_is_read():
    body = _vector(
        [
            {"metric": {"instance": "a"}, "value": [1, "+Inf"]},
            {"metric": {"instance": "b"}, "value": [1, "12.5"]},
            {"metric": {"instance": "c"}, "value": [1, "NaN"]},
            {"metric": {"instance": "d"}, "value": [1, "junk"]},
            {"metric": {"instance": "e"}, "value": [1, "-Inf"]},
        ]
    )
    result = parse_response(body, "x", limit=0, labelled=False)
    assert result.instances == ["a", "b", "c", "d", "e"]
    assert result.values == [None, 12.5, None, None, None]


def test_a_malformed_item_is_skipped_and_the_others_kept():
    body = _vector(
        [
            {"metric": {"instance": "a", "job": 7}, "value": [1, "1"]},  # a label not a string
            {"metric": {"instance": "b", "job": "node"}, "value": [1, "1"]},
            {"metric": {"instance": "c"}, "value": [1]},
        ]
    )
    result = parse_response(body, "up", limit=0, labelled=True)
    assert result.instances == ["b"] and result.labels == [{"instance": "b", "job": "node"}]


def test_plain_labels_are_bounded_and_escaped_ones_sanitised():
    long_value = "v" * 300
    plain = _vector(
        [{"metric": {"__name__": "up", "instance": "a", "x": long_value}, "value": [1, "1"]}]
    )
    [labels] = parse_response(plain, "up", limit=0, labelled=True).labels or []
    assert "__name__" not in labels and labels["x"] == "v" * 256 + "…"
    hostile = _vector([{"metric": {"instance": "a", "x": "\x1b[2Jred\u202e"}, "value": [1, "1"]}])
    [labels] = parse_response(hostile, "up", limit=0, labelled=True).labels or []
    assert labels["x"] == "␛[2Jred"


# -- NodeColumns --------------------------------------------------------------------------------


def test_node_columns_need_one_entry_per_node():
    with pytest.raises(ValueError):
        NodeColumns("promql", ["a", "b"], [True], [None, None], [None, None], [{}, {}])
    with pytest.raises(ValueError):
        NodeColumns("promql", ["a"], [True], [None], [None], [{}], {"cpu_pct": [1.0, 2.0]})


def test_node_columns_read_back_as_validated_samples_and_count_as_items():
    columns = NodeColumns(
        "promql",
        ["a", "b"],
        [True, False],
        [None, "down"],
        ["io.net", None],
        [{"instance": "a"}, {"instance": "b"}],
        {"cpu_pct": [12.5, None], "gpus": [2.0, None]},
    )
    a, b = columns.samples()
    assert a == NodeSample(
        node="a",
        source_kind="promql",
        network="io.net",
        labels={"instance": "a"},
        up=True,
        cpu_pct=12.5,
        gpus=2,
    )
    assert (b.up, b.error, b.cpu_pct, b.gpus) == (False, "down", None, None)
    assert Reading(node_columns=columns).items == 2


# -- settings ---------------------------------------------------------------------------------


def test_config_defaults_are_the_sources_and_reach_it():
    server = PrometheusConfig(url=URL)
    assert (server.limit, server.max_body_mb) == (DEFAULT_LIMIT, DEFAULT_MAX_BODY_MB)
    config = Config.model_validate(
        {
            "fleet": {
                "prometheus": [{"url": URL, "limit": 0, "max_body_mb": 512}],
                "local": {"enabled": False},
            }
        }
    )
    source, _ = build_sources(config, Secrets())["promql"]
    assert isinstance(source, PromqlSource)
    assert (source.limit, source.max_body_mb) == (0, 512)


# -- a fleet of 20,000 nodes, end to end --------------------------------------------------------


async def test_a_fleet_of_20000_nodes_is_read_stored_and_exported_in_one_poll(tmp_path: Path):
    nodes = 20_000
    with fleet_server(nodes) as url:
        source = PromqlSource(url=url, timeout=60.0)
        async with make_client() as client:
            started = datetime.now(UTC)
            reading = await source.fetch(client)
    assert reading.errors == [] and reading.nodes == []
    assert reading.node_columns is not None and len(reading.node_columns) == nodes
    conn = open_writer(tmp_path / "fleet.db")
    write_poll(conn, PollRecord("promql", started, datetime.now(UTC), reading))
    rows = latest_fleet(conn, None)
    conn.close()
    records = {r["node"]: r for r in fleet_records(rows)}
    labels = {row.node: row.labels for row in rows}
    assert len(records) == nodes
    for index in (0, 1, DOWN_EVERY - 1, 12_345, nodes - 1):
        record = records[node_name(index)]
        up = value_for("up", index) == "1"
        assert record["up"] is up
        expected = float(value_for("cpu_pct", index)) if up else None
        assert record["cpu_pct"] == expected and record["gpu_temp_c"] == expected
        assert record["gpus"] == (None if not up else None if expected % 1 else int(expected))
        assert labels[node_name(index)]["Hostname"] == f"gpu-node-{index:06d}"
    down = sum(1 for r in records.values() if not r["up"])
    assert down == nodes // DOWN_EVERY


def test_the_stored_labels_open_as_json(tmp_path: Path):
    columns = NodeColumns("promql", ["a"], [True], [None], [None], [{"z": "1", "a": "é"}], {})
    conn = open_writer(tmp_path / "c.db")
    now = datetime.now(UTC)
    write_poll(conn, PollRecord("promql", now, now, Reading(node_columns=columns)))
    (labels,) = conn.execute("SELECT labels FROM nodes").fetchone()
    conn.close()
    assert labels == '{"a":"é","z":"1"}' and json.loads(labels) == {"a": "é", "z": "1"}


# -- what the operator reads: poll --once and the Sources screen ------------------------------

TOO_MANY = {
    "status": "error",
    "errorType": "execution",
    "error": "query processing would load too many samples into memory in query execution",
}


class RefusingServer:
    """Answers ``up`` with one node and refuses every other query (422, too many samples)."""

    async def __call__(self, request: Request, writer: asyncio.StreamWriter) -> None:
        query = parse_qs(urlsplit(request.target).query).get("query", [""])[0]
        if query.startswith("up"):
            await Reply(200, VECTOR_UP.read_bytes())(request, writer)
        else:
            await Reply(422, json.dumps(TOO_MANY).encode())(request, writer)


async def test_poll_once_says_which_query_was_refused_and_what_narrows_it(tmp_path: Path):
    async with FaultServer({"/api/v1/query": RefusingServer()}) as server:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[[fleet.prometheus]]\nurl = "{server.url}"\nselector = \'{{job="node"}}\'\n\n'
            "[fleet.local]\nenabled = false\n"
        )
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            [
                "--config",
                str(config),
                "--db",
                str(tmp_path / "c.db"),
                "poll",
                "--once",
                "--only",
                "fleet",
            ],
        )
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("promql: partial")]
    assert len(lines) == len(PromqlSource(url=URL).queries()) - 1
    cpu = next(line for line in lines if ": cpu_pct: " in line)
    assert "query processing would load too many samples" in cpu
    assert cpu.endswith(
        "narrow the selector of the [[fleet.prometheus]] at "
        f"{server.url.removeprefix('http://')}, or raise the server's own limit (Prometheus "
        "--query.max-samples, VictoriaMetrics -search.maxUniqueTimeseries, Thanos/Mimir max "
        "series per query)"
    )


async def test_one_deadline_for_the_poll_a_query_queued_too_long_is_not_sent():
    # every answer takes 0.4 s; 13 queries three at a time need about 2 s, the poll has 1 s
    import time as clock

    sent: list[str] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.params["query"])
        await asyncio.sleep(0.4)
        if request.url.params["query"] == "up":
            return json_reply(200, json.loads(VECTOR_UP.read_text()))
        return json_reply(
            200, {"status": "success", "data": {"resultType": "vector", "result": []}}
        )

    source = PromqlSource(url=URL, timeout=1.0)
    started = clock.monotonic()
    async with make_client(transport=httpx.MockTransport(slow)) as client:
        reading = await source.fetch(client)
    elapsed = clock.monotonic() - started
    assert elapsed < 1.0  # within the poll's timeout, so the poller's cut-off never loses it
    assert sent[0] == "up" and reading.node_columns is not None  # up goes first and is read
    unsent = [e for e in reading.errors if "not sent" in e.error.message]
    assert unsent and len(sent) + len(unsent) == len(source.queries())
    assert all(e.error.kind is ErrorKind.TIMEOUT for e in unsent)
    assert "raise [fleet] timeout or narrow the selector" in unsent[0].error.message
