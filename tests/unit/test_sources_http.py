"""The bounded HTTP client: get_json and parse_retry_after (docs/reliability.md, HT-01..HT-13).

Everything goes through httpx.MockTransport, except the slow drip and the proxy check, which need a
real socket and use an asyncio server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import random
import re
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sources.base import (
    JSON_BODY_CAP,
    RETRY_AFTER_CAP,
    HttpPolicy,
    decode_json,
    get_json,
    make_client,
    parse_retry_after,
)
from sources.models import ErrorKind, SourceError
from tests.corpus import FORBIDDEN_SEQUENCES

URL = "https://api.example.test/v1/data"
HOST = "api.example.test"
KEY = "s3cret-KEY-9f8e7d6c"
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
JSON = {"content-type": "application/json"}


def reply(
    status: int = 200, body: Any = b"[]", headers: dict[str, str] | None = None
) -> httpx.Response:
    """A streamed response (get_json reads the raw stream, so no pre-loaded ``content=``)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = dict(JSON) if headers is None else headers
    # header values as bytes: a hostile server can send any octets, not just ASCII
    raw = [(k.encode(), v.encode("utf-8")) for k, v in all_headers.items()]
    return httpx.Response(status, headers=raw, stream=httpx.ByteStream(data))


class Script:
    """A MockTransport handler that plays a list of outcomes in turn (the last one repeats).

    An outcome is an httpx.Response, an exception class from httpx (raised with the request), or
    a callable taking the request. Responses must be built with a re-iterable stream.
    """

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = min(len(self.requests), len(self.outcomes)) - 1
        outcome = self.outcomes[index]
        if isinstance(outcome, type) and issubclass(outcome, Exception):
            raise outcome("scripted failure", request=request)
        if isinstance(outcome, httpx.Response):
            # A fresh response each time: one response object can only be streamed once.
            return httpx.Response(
                outcome.status_code, headers=outcome.headers, stream=outcome.stream
            )
        return outcome(request)

    def client(self) -> httpx.AsyncClient:
        return make_client(transport=httpx.MockTransport(self))


class Sleeps:
    """The injectable ``sleep``: records the waits instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


async def run(script: Script, policy: HttpPolicy | None = None, **kwargs: Any) -> Any:
    sleeps = kwargs.pop("sleep", None) or Sleeps()
    async with script.client() as client:
        return await get_json(client, URL, policy=policy, sleep=sleeps, **kwargs)


async def fail(script: Script, policy: HttpPolicy | None = None, **kwargs: Any) -> SourceError:
    with pytest.raises(SourceError) as info:
        await run(script, policy, **kwargs)
    return info.value


def bounds_ok(sleeps: list[float], policy: HttpPolicy) -> bool:
    return all(
        0 <= wait <= min(policy.backoff_cap, 0.5 * 2**attempt)
        for attempt, wait in enumerate(sleeps)
    )


# === parse_retry_after =========================================================================


@pytest.mark.parametrize(("value", "expected"), [("119", 119.0), (" 2 ", 2.0), ("0", 0.0)])
def test_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_http_date_fixed_clock():
    now = 1_700_000_000.0
    value = email.utils.formatdate(now + 3, usegmt=True)
    assert parse_retry_after(value, now=now) == pytest.approx(3.0)


def test_retry_after_http_date_real_clock():
    value = email.utils.formatdate(time.time() + 3, usegmt=True)
    waited = parse_retry_after(value)
    assert waited is not None
    assert 1.0 <= waited <= 3.0  # whole-second resolution of the date


def test_retry_after_date_in_the_past_is_zero():
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0


def test_retry_after_is_capped_at_one_hour():
    assert RETRY_AFTER_CAP == 3600
    assert parse_retry_after("999999") == 3600.0
    assert parse_retry_after("9" * 400) == 3600.0
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 86400, usegmt=True), now=now) == 3600.0


@pytest.mark.parametrize("value", ["abc", "", "   ", "1 2", "Wed, 99 Foo 2024", "\u00b2", "\u2167"])
def test_retry_after_garbage_is_none(value):
    assert parse_retry_after(value) is None


def test_retry_after_missing_is_none():
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("value", ["-5", "1.5", "+3"])
def test_retry_after_odd_values_never_raise_and_stay_bounded(value):
    waited = parse_retry_after(value)
    assert waited is None or 0 <= waited <= RETRY_AFTER_CAP


# === success, retries and backoff ==============================================================


async def test_success_returns_json_and_sends_the_usual_headers():
    script = Script(reply(200, {"ok": [1, 2]}))
    assert await run(script, params={"a": "1"}) == {"ok": [1, 2]}
    (request,) = script.requests
    assert request.url.params["a"] == "1"
    assert request.headers["user-agent"].startswith("depin-explorer")
    assert set(request.headers["accept-encoding"].replace(" ", "").split(",")) <= {
        "gzip",
        "deflate",
    }


async def test_503_503_200_succeeds_with_three_attempts_and_bounded_jitter():
    script = Script(reply(503, b""), reply(503, b""), reply(200, {"ok": True}))
    sleeps = Sleeps()
    policy = HttpPolicy()
    assert await run(script, policy, sleep=sleeps, rng=random.Random(7)) == {"ok": True}
    assert len(script.requests) == 3
    assert len(sleeps.calls) == 2
    assert bounds_ok(sleeps.calls, policy)


@pytest.mark.parametrize("seed", range(20))
async def test_jitter_is_within_zero_and_cap_for_many_seeds(seed):
    script = Script(reply(502, b""), reply(504, b""), reply(200, [1]))
    sleeps = Sleeps()
    policy = HttpPolicy(backoff_cap=0.75)
    assert await run(script, policy, sleep=sleeps, rng=random.Random(seed)) == [1]
    assert len(sleeps.calls) == 2
    assert bounds_ok(sleeps.calls, policy)


async def test_500_three_times_is_http_5xx_after_three_attempts():
    script = Script(reply(500, b"oops"))
    sleeps = Sleeps()
    error = await fail(script, sleep=sleeps)
    assert error.kind is ErrorKind.HTTP_5XX
    assert error.status == 500
    assert len(script.requests) == 3
    assert len(sleeps.calls) == 2


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_4xx_is_not_retried(status):
    script = Script(reply(status, {"error": "not here"}))
    sleeps = Sleeps()
    error = await fail(script, sleep=sleeps)
    assert error.kind is ErrorKind.HTTP_4XX
    assert error.status == status
    assert len(script.requests) == 1
    assert sleeps.calls == []


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_status_is_auth_and_not_retried(status):
    script = Script(reply(status, {"status": {"error_code": 10002, "error_message": "bad key"}}))
    error = await fail(script)
    assert error.kind is ErrorKind.AUTH
    assert "bad key" in error.message
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "119"}, 119.0),
        ({"retry-after": "999999"}, 3600.0),
        # no usable header: None, and the poller backs off 60 s doubling (test_poller.py)
        ({"retry-after": "abc"}, None),
        ({}, None),
        ({"retry-after": "\u00b2"}, None),  # a "digit" that float() rejects
    ],
    ids=["2", "119", "huge", "abc", "missing", "superscript-two"],
)
async def test_429_asks_the_poller_to_wait_and_does_not_sleep(header, expected):
    script = Script(reply(429, {"status": {"error_code": 429}}, {**JSON, **header}))
    sleeps = Sleeps()
    error = await fail(script, sleep=sleeps)
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after == (None if expected is None else pytest.approx(expected))
    assert len(script.requests) == 1
    assert sleeps.calls == []


async def test_429_with_http_date_retry_after():
    header = {"retry-after": email.utils.formatdate(time.time() + 3, usegmt=True)}
    error = await fail(Script(reply(429, b"{}", {**JSON, **header})))
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after is not None
    assert 1.0 <= error.retry_after <= 3.0


async def test_connect_error_is_connect_after_three_attempts():
    script = Script(httpx.ConnectError)
    sleeps = Sleeps()
    error = await fail(script, sleep=sleeps)
    assert error.kind is ErrorKind.CONNECT
    assert len(script.requests) == 3
    assert len(sleeps.calls) == 2
    assert bounds_ok(sleeps.calls, HttpPolicy())


async def test_read_timeout_is_timeout_after_three_attempts():
    script = Script(httpx.ReadTimeout)
    error = await fail(script)
    assert error.kind is ErrorKind.TIMEOUT
    assert len(script.requests) == 3


async def test_connection_closed_mid_answer_is_retried():
    script = Script(httpx.RemoteProtocolError, reply(200, {"ok": 1}))
    assert await run(script) == {"ok": 1}
    assert len(script.requests) == 2


async def test_real_sleep_is_not_used_when_sleep_is_injected():
    started = time.monotonic()
    await fail(Script(httpx.ConnectError), HttpPolicy(backoff_cap=4.0))
    assert time.monotonic() - started < 1.0


# === content checks ============================================================================


async def test_html_200_is_bad_content_type_and_not_retried():
    html = b"<html><body>Please log in to the hotel wifi</body></html>"
    script = Script(reply(200, html, {"content-type": "text/html; charset=utf-8"}))
    error = await fail(script)
    assert error.kind is ErrorKind.BAD_CONTENT_TYPE
    assert "hotel wifi" not in error.message
    assert len(script.requests) == 1


async def test_missing_content_type_is_bad_content_type():
    error = await fail(Script(reply(200, b"[]", {})))
    assert error.kind is ErrorKind.BAD_CONTENT_TYPE


async def test_deeply_nested_json_is_a_parse_error_not_recursion_error():
    body = b"[" * 100_000 + b"]" * 100_000
    error = await fail(Script(reply(200, body)))
    assert error.kind in (ErrorKind.PARSE, ErrorKind.SCHEMA)


async def test_deeply_nested_error_body_is_still_classified():
    body = b"[" * 100_000 + b"]" * 100_000
    error = await fail(Script(reply(400, body)))
    assert error.kind is ErrorKind.HTTP_4XX


@pytest.mark.parametrize("body", [b"", b"   \n  "], ids=["empty", "whitespace"])
async def test_empty_body_is_empty(body):
    error = await fail(Script(reply(200, body)))
    assert error.kind is ErrorKind.EMPTY


async def test_truncated_json_is_truncated_and_not_retried():
    script = Script(reply(200, b'[{"id": "bitcoin", "name": "Bitc'))
    sleeps = Sleeps()
    error = await fail(script, sleep=sleeps)
    assert error.kind is ErrorKind.TRUNCATED
    assert len(script.requests) == 1
    assert sleeps.calls == []


async def test_invalid_utf8_is_a_source_error():
    error = await fail(Script(reply(200, b'["\xff\xfe"]')))
    assert error.kind in (ErrorKind.PARSE, ErrorKind.TRUNCATED)


def test_decode_json_direct():
    assert decode_json(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(SourceError) as info:
        decode_json(b"[" * 100_000)
    assert info.value.kind in (ErrorKind.PARSE, ErrorKind.TRUNCATED)


# === size caps and compression =================================================================


def json_of_size(size: int) -> bytes:
    body = b'"' + b"x" * (size - 2) + b'"'
    assert len(body) == size
    return body


async def test_body_at_the_cap_is_accepted():
    assert (
        await run(Script(reply(200, json_of_size(1024))), HttpPolicy(body_cap=1024)) == "x" * 1022
    )


async def test_body_over_the_cap_is_too_large_and_not_retried():
    script = Script(reply(200, json_of_size(1025)))
    error = await fail(script, HttpPolicy(body_cap=1024))
    assert error.kind is ErrorKind.TOO_LARGE
    assert len(script.requests) == 1


class Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            yield chunk


async def test_body_over_the_cap_in_many_chunks():
    chunks = [b"[" + b"1," * 50] + [b"1," * 50] * 40 + [b"1]"]
    script = Script(httpx.Response(200, headers=JSON, stream=Chunks(chunks)))
    error = await fail(script, HttpPolicy(body_cap=1024))
    assert error.kind is ErrorKind.TOO_LARGE


async def test_body_under_the_cap_in_many_chunks():
    chunks = [b"[" + b"1," * 50] + [b"1," * 50] * 4 + [b"1]"]
    assert await run(Script(httpx.Response(200, headers=JSON, stream=Chunks(chunks)))) == [1] * 251


def zeros_gzip(total: int) -> bytes:
    """gzip of ``total`` zero bytes, built without holding the plain bytes in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(total // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return zeros_gzip(50 * 1024 * 1024)


async def test_gzip_bomb_is_too_large_with_small_peak_memory(gzip_bomb):
    assert len(gzip_bomb) < 1024 * 1024  # premise: ~50 KB on the wire
    headers = {**JSON, "content-encoding": "gzip"}
    script = Script(lambda request: reply(200, gzip_bomb, headers))
    tracemalloc.start()
    try:
        started = time.monotonic()
        error = await fail(script)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.kind is ErrorKind.TOO_LARGE
    assert HttpPolicy().body_cap == JSON_BODY_CAP == 8 * 1024 * 1024
    assert peak < 30 * 1024 * 1024
    assert elapsed < 5.0
    assert len(script.requests) == 1


async def test_gzip_over_a_small_cap_is_too_large():
    body = gzip.compress(json_of_size(5000))
    error = await fail(
        Script(reply(200, body, {**JSON, "content-encoding": "gzip"})), HttpPolicy(body_cap=1024)
    )
    assert error.kind is ErrorKind.TOO_LARGE


async def test_valid_gzip_body_decodes():
    payload = [{"id": f"coin-{i}", "name": "Coin"} for i in range(500)]
    body = gzip.compress(json.dumps(payload).encode())
    assert await run(Script(reply(200, body, {**JSON, "content-encoding": "gzip"}))) == payload


async def test_valid_deflate_body_decodes():
    body = zlib.compress(b'{"deflated": true}')
    result = await run(Script(reply(200, body, {**JSON, "content-encoding": "deflate"})))
    assert result == {"deflated": True}


async def test_corrupt_gzip_body_is_a_source_error():
    # Labelled gzip, but it is not: must fail as a SourceError, not leak zlib.error.
    script = Script(reply(200, b'{"not": "gzip"}', {**JSON, "content-encoding": "gzip"}))
    with pytest.raises(SourceError):
        await run(script)


async def test_unknown_content_encoding_is_rejected():
    error = await fail(Script(reply(200, b"xyz", {**JSON, "content-encoding": "br"})))
    assert error.kind is ErrorKind.PARSE


# === redirects, hostile error text, secrets ====================================================


async def test_redirect_is_not_followed():
    redirect = reply(302, b"", {"location": "https://evil.example/steal"})
    script = Script(redirect, reply(200, {"followed": True}))
    error = await fail(script)
    assert error.status == 302
    assert error.kind in (ErrorKind.HTTP_4XX, ErrorKind.HTTP_5XX, ErrorKind.PARSE)
    assert len(script.requests) == 1
    assert all(r.url.host == HOST for r in script.requests)


HOSTILE = "\x1b]52;c;ZWNobyBwd25lZA==\x07[@click=app.quit]Refresh[/] \x1b[2J\x9b6n\n\rEVIL"


@pytest.mark.parametrize(
    "body",
    [
        {"status": {"error_code": 400, "error_message": HOSTILE}},
        {"error": HOSTILE},
        {"message": HOSTILE},
        {"detail": HOSTILE},
    ],
    ids=["coingecko", "error", "message", "detail"],
)
@pytest.mark.parametrize("status", [400, 429, 401, 500])
async def test_error_message_from_upstream_is_sanitised(body, status):
    error = await fail(Script(reply(status, body)))
    for text in (error.message, str(error)):
        assert "\x1b" not in text
        assert UNSAFE.search(text) is None
        for sequence in FORBIDDEN_SEQUENCES:
            assert sequence not in text
    assert "\u241b" in error.message  # made visible, not silently dropped


@pytest.mark.parametrize(
    "outcome",
    [
        reply(404, {"error": "no"}),
        reply(500, b""),
        reply(429, b"{}"),
        reply(200, b"<html>", {"content-type": "text/html"}),
        reply(200, b"[1,"),
        httpx.ConnectError,
        httpx.ReadTimeout,
    ],
    ids=["404", "500", "429", "html", "truncated", "connect", "timeout"],
)
async def test_error_never_contains_query_string_or_header_values(outcome):
    error = await fail(
        Script(outcome),
        params={"x_cg_demo_api_key": KEY},
        headers={"x-cg-demo-api-key": KEY, "authorization": f"Bearer {KEY}"},
    )
    assert KEY not in error.message
    assert KEY not in str(error)
    assert KEY not in repr(error.args)


# === real sockets on 127.0.0.1 =================================================================


class LoopbackServer:
    """An asyncio server on 127.0.0.1:0 whose connection handlers are cancelled on exit."""

    def __init__(self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]):
        self.handler = handler
        self.tasks: set[asyncio.Task[Any]] = set()
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> LoopbackServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


@pytest.fixture
def no_env_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    yield


async def test_slow_drip_hits_the_overall_deadline(no_env_proxy):
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n"
        )
        await writer.drain()
        for byte in b"[" + b" " * 18 + b"]":  # at most 20 bytes, 0.5 s apart, then close
            await asyncio.sleep(0.5)
            writer.write(bytes([byte]))
            await writer.drain()

    async with LoopbackServer(drip) as server, make_client(timeout=10.0) as client:
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            await get_json(client, server.url + "/drip", policy=HttpPolicy(deadline=1.5))
        elapsed = time.monotonic() - started
    assert info.value.kind is ErrorKind.TIMEOUT
    assert 1.4 <= elapsed < 3.0
    assert server.connections >= 1
