"""HT-01..HT-14 and SC-01..SC-07 (docs/reliability.md) against a loopback fault server.

Everything goes through real sockets on 127.0.0.1 (plus one ``.invalid`` lookup that the resolver
answers locally): the real ``make_client``/``get_json`` and, where a case is about a source,
``CoinGeckoSource.fetch`` with its ``base_url`` on the fault server. The circuit breaker and the
request budget run on fake clocks. The unit tests in tests/unit/test_sources_http.py cover the same
client through httpx.MockTransport; this file proves it on the wire.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import random
import re
import socket
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from sources.base import (
    RETRY_AFTER_CAP,
    RETRY_AFTER_DEFAULT,
    HttpPolicy,
    RequestBudget,
    get_json,
    make_client,
)
from sources.breaker import CircuitBreaker
from sources.coingecko import CoinGeckoSource
from sources.models import ErrorKind, Reading, SourceError
from tests.corpus import FORBIDDEN_SEQUENCES
from tests.support.fault_server import (
    Drip,
    FaultServer,
    Hang,
    Reply,
    Stream,
    captive_portal,
    deep_json,
    gzip_bomb,
    gzip_bomb_bytes,
    json_reply,
    rate_limited,
    redirect,
    self_signed_cert,
    server_tls,
    status_reply,
    truncated_body,
    truncated_json,
)

pytestmark = pytest.mark.integration

KEY = "CG-s3cretKEY-9f8e7d6c5b4a"
MARKETS = "/coins/markets"
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
HOSTILE = "\x1b]52;c;ZWNobyBwd25lZA==\x07[@click=app.quit]Refresh[/] \x1b[2J\x9b6n\n\rEVIL"
OK = json_reply({"ok": True})


class Sleeps:
    """An injectable ``sleep`` that records every wait and, optionally, really waits."""

    def __init__(self, real: bool = False) -> None:
        self.calls: list[float] = []
        self.real = real

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.real:
            await asyncio.sleep(seconds)


class FakeClock:
    """A monotonic clock that only moves when told to (or when its ``sleep`` is awaited)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def coin(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"coin-{i}",
        "symbol": f"c{i}",
        "name": f"Coin {i}",
        "market_cap_rank": i + 1,
        "current_price": 1.0 + i,
        "market_cap": 1000.0 * (100 - i),
        **extra,
    }


def coins(n: int = 10) -> list[dict[str, Any]]:
    return [coin(i) for i in range(n)]


def cg(server: FaultServer, **kwargs: Any) -> CoinGeckoSource:
    return CoinGeckoSource(base_url=server.url, timeout=kwargs.pop("timeout", 5.0), **kwargs)


async def fetch(source: CoinGeckoSource, **client_kwargs: Any) -> Reading:
    async with make_client(**client_kwargs) as client:
        return await source.fetch(client)


async def fetch_error(source: CoinGeckoSource, **client_kwargs: Any) -> SourceError:
    with pytest.raises(SourceError) as info:
        await fetch(source, **client_kwargs)
    return info.value


async def get(url: str, **kwargs: Any) -> Any:
    client_kwargs = kwargs.pop("client", {})
    kwargs.setdefault("sleep", Sleeps())
    async with make_client(**client_kwargs) as client:
        return await get_json(client, url, **kwargs)


async def get_error(url: str, **kwargs: Any) -> SourceError:
    with pytest.raises(SourceError) as info:
        await get(url, **kwargs)
    return info.value


def assert_clean(text: str) -> None:
    assert UNSAFE.search(text) is None
    for sequence in FORBIDDEN_SEQUENCES:
        assert sequence not in text
    assert KEY not in text


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CountingTransport(httpx.AsyncHTTPTransport):
    """The real transport, counting the requests it was asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return await super().handle_async_request(request)


# === HT-01 / HT-02: 429 and Retry-After =========================================================


async def test_ht01_429_retry_after_2_reschedules_the_source_without_sleeping():
    async with FaultServer({MARKETS: rate_limited("2")}) as server:
        started = time.monotonic()
        error = await fetch_error(cg(server))
        elapsed = time.monotonic() - started
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.status == 429
    assert error.retry_after == pytest.approx(2.0)
    assert elapsed < 1.0
    assert len(server.hits(MARKETS)) == 1


def _date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("date+3", 1.0, 3.0),
        ("999999", RETRY_AFTER_CAP, RETRY_AFTER_CAP),
        ("abc", None, None),  # no usable header: the poller's own back-off decides
        (None, None, None),
    ],
    ids=["http-date", "huge", "garbage", "missing"],
)
async def test_ht02_retry_after_forms(header, low, high):
    value = _date_in(3) if header == "date+3" else header
    sleeps = Sleeps()
    async with FaultServer({"/limited": rate_limited(value)}) as server:
        started = time.monotonic()
        error = await get_error(server.url + "/limited", sleep=sleeps)
        elapsed = time.monotonic() - started
    assert error.kind is ErrorKind.RATE_LIMITED
    if low is None:
        assert error.retry_after is None
    else:
        assert low <= error.retry_after <= high
    assert RETRY_AFTER_CAP == 3600.0 and RETRY_AFTER_DEFAULT == 60.0
    assert elapsed < 1.0  # no sleeping inside get_json for a 429
    assert sleeps.calls == []
    assert len(server.hits()) == 1


# === HT-03: 503, 503, 200 =======================================================================


async def test_ht03_503_503_200_succeeds_with_three_attempts_and_jittered_gaps():
    policy = HttpPolicy(deadline=8.0)
    sleeps = Sleeps(real=True)
    flaky = [status_reply(503), status_reply(503), OK]
    async with FaultServer({"/flaky": flaky}) as server:
        result = await get(
            server.url + "/flaky", policy=policy, sleep=sleeps, rng=random.Random(11)
        )
    assert result == {"ok": True}
    hits = server.hits("/flaky")
    assert len(hits) == 3
    assert len(sleeps.calls) == 2
    for attempt, wait in enumerate(sleeps.calls):
        assert 0 <= wait <= min(policy.backoff_cap, 0.5 * 2**attempt)
    gaps = [later.at - earlier.at for earlier, later in zip(hits, hits[1:], strict=False)]
    for gap, wait in zip(gaps, sleeps.calls, strict=True):
        assert wait - 0.01 <= gap <= wait + 0.5  # the server saw the jittered gap


async def test_ht03_jitter_varies_between_runs():
    waits = set()
    async with FaultServer({"/flaky": [status_reply(502), OK]}) as server:
        for seed in range(4):
            server.set("/flaky", [status_reply(502), OK])
            sleeps = Sleeps()
            await get(server.url + "/flaky", sleep=sleeps, rng=random.Random(seed))
            (wait,) = sleeps.calls
            assert 0 <= wait <= 0.5
            waits.add(wait)
    assert len(waits) == 4  # full jitter, not a fixed back-off


async def test_ht03_source_recovers_within_the_same_cycle():
    flaky = [status_reply(503), status_reply(503), json_reply(coins(3))]
    async with FaultServer({MARKETS: flaky}) as server:
        reading = await fetch(cg(server, timeout=8.0))
    assert [c.coin_id for c in reading.market] == ["coin-0", "coin-1", "coin-2"]
    assert len(server.hits(MARKETS)) == 3


# === HT-04: the circuit breaker ================================================================


class EdgeRng(random.Random):
    """A ``random.Random`` whose ``uniform`` returns the lower or the upper bound."""

    def __init__(self, upper: bool) -> None:
        super().__init__(0)
        self.upper = upper

    def uniform(self, a: float, b: float) -> float:
        return b if self.upper else a


def open_breaker(breaker: CircuitBreaker, now: float) -> None:
    for _ in range(breaker.threshold):
        assert breaker.allow(now)
        breaker.record_failure(now)


def test_ht04_opens_after_five_consecutive_failures():
    breaker = CircuitBreaker(rng=random.Random(1))
    for n in range(1, 5):
        assert breaker.allow(100.0)
        breaker.record_failure(100.0)
        assert breaker.state == "closed"
        assert breaker.consecutive_failures == n
        assert breaker.next_trial_at is None
    breaker.record_failure(100.0)
    assert breaker.state == "open"
    assert breaker.consecutive_failures == 5
    assert breaker.next_trial_at == pytest.approx(160.0)


def test_ht04_a_success_resets_the_count():
    breaker = CircuitBreaker()
    for _ in range(4):
        breaker.record_failure(0.0)
    breaker.record_success()
    for _ in range(4):
        breaker.record_failure(1.0)
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 4


def test_ht04_one_trial_after_60s_then_closes_on_success():
    breaker = CircuitBreaker(rng=random.Random(2))
    open_breaker(breaker, 0.0)
    assert not breaker.allow(30.0)
    assert not breaker.allow(59.999)
    assert breaker.allow(60.0)  # the trial
    assert breaker.state == "half-open"
    assert breaker.next_trial_at is None
    assert not breaker.allow(60.0)  # one trial at a time
    assert not breaker.allow(5000.0)  # still one, however long the trial takes
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0
    assert breaker.next_trial_at is None
    assert breaker.allow(61.0) and breaker.allow(61.0)


@pytest.mark.parametrize(
    ("upper", "expected"),
    [(True, [120, 240, 480, 900, 900, 900]), (False, [60, 60, 60, 60, 60, 60])],
    ids=["ceiling", "floor"],
)
def test_ht04_failed_trials_double_the_ceiling_up_to_15_minutes(upper, expected):
    breaker = CircuitBreaker(rng=EdgeRng(upper))
    open_breaker(breaker, 0.0)
    now = breaker.next_trial_at
    assert now == 60.0  # the first trial is 60 s after opening
    delays = []
    for _ in expected:
        assert breaker.allow(now)
        breaker.record_failure(now)
        assert breaker.state == "open"
        assert breaker.next_trial_at is not None
        delays.append(breaker.next_trial_at - now)
        now = breaker.next_trial_at
    assert delays == expected


def test_ht04_trial_delays_are_jittered_within_the_window():
    delays: list[list[float]] = []
    for seed in range(20):
        breaker = CircuitBreaker(rng=random.Random(seed))
        open_breaker(breaker, 0.0)
        now = 60.0
        run = []
        for n in range(1, 7):
            assert breaker.allow(now)
            breaker.record_failure(now)
            assert breaker.next_trial_at is not None
            delay = breaker.next_trial_at - now
            assert 60.0 <= delay <= min(900.0, 60.0 * 2**n)
            run.append(delay)
            now = breaker.next_trial_at
        delays.append(run)
    assert len({run[2] for run in delays}) > 10  # jittered, not lock-step


def test_ht04_bad_arguments():
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(first_delay=1000, max_delay=900)


async def test_ht04_breaker_in_front_of_a_failing_server():
    """500 for N cycles: 5 failed cycles, silence while open, one trial request, recovery."""
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(rng=random.Random(3))
    async with FaultServer({"/down": status_reply(500)}) as server:

        async def cycle() -> str:
            if not breaker.allow(clock()):
                return "skipped"
            trial = breaker.state == "half-open"
            policy = HttpPolicy(deadline=5.0, attempts=1 if trial else 3)
            try:
                await get(server.url + "/down", policy=policy)
            except SourceError:
                breaker.record_failure(clock())
                return "failed"
            breaker.record_success()
            return "ok"

        results = []
        for _ in range(5):
            results.append(await cycle())
            clock.now += 10
        assert results == ["failed"] * 5
        assert breaker.state == "open"
        assert len(server.hits()) == 15  # 5 cycles of 3 attempts
        opened_at = 40.0
        assert breaker.next_trial_at == pytest.approx(opened_at + 60)
        while clock() < opened_at + 60:
            assert await cycle() == "skipped"
            clock.now += 10
        assert len(server.hits()) == 15  # nothing sent while open
        assert await cycle() == "failed"  # the trial
        assert len(server.hits()) == 16  # exactly one trial request
        assert breaker.state == "open"
        server.set("/down", OK)
        assert breaker.next_trial_at is not None
        clock.now = breaker.next_trial_at - 0.001
        assert await cycle() == "skipped"
        clock.now = breaker.next_trial_at
        assert await cycle() == "ok"
        assert breaker.state == "closed"
        assert len(server.hits()) == 17


# === HT-05: key errors ===========================================================================


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"status": {"error_code": 10002, "error_message": "API Key Missing"}}),
        (401, {"error": "unauthorized"}),
        (403, {"status": {"error_code": 10010, "error_message": "wrong root"}}),
        (200, {"status": {"error_code": 10002, "error_message": "API Key Missing"}}),
    ],
    ids=["401-10002", "401-plain", "403-10010", "200-10002"],
)
async def test_ht05_key_errors_are_auth_after_exactly_one_request(status, body):
    async with FaultServer({MARKETS: json_reply(body, status)}) as server:
        error = await fetch_error(cg(server, api_key=SecretStr(KEY)))
    assert error.kind is ErrorKind.AUTH
    assert len(server.hits(MARKETS)) == 1
    if status != 200:
        assert "check API key" in error.message
    assert_clean(error.message)


async def test_ht05_bare_401_through_get_json():
    async with FaultServer({"/x": status_reply(401)}) as server:
        error = await get_error(server.url + "/x", headers={"authorization": f"Bearer {KEY}"})
    assert error.kind is ErrorKind.AUTH
    assert error.status == 401
    assert len(server.hits()) == 1
    assert_clean(error.message)


# === HT-06: connection refused, DNS failure =====================================================


async def test_ht06_connection_refused_is_connect_after_three_attempts():
    transport = CountingTransport()
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{closed_port()}/x"
    error = await get_error(url, sleep=sleeps, client={"transport": transport})
    assert error.kind is ErrorKind.CONNECT
    assert "connection refused" in error.message
    assert transport.count == 3
    assert len(sleeps.calls) == 2


async def test_ht06_connection_refused_through_the_source():
    source = CoinGeckoSource(base_url=f"http://127.0.0.1:{closed_port()}/api/v3", timeout=5.0)
    started = time.monotonic()
    error = await fetch_error(source)
    assert error.kind is ErrorKind.CONNECT
    assert time.monotonic() - started < 5.0


async def test_ht06_dns_failure_is_connect_and_bounded():
    transport = CountingTransport()
    policy = HttpPolicy(deadline=6.0)
    started = time.monotonic()
    error = await get_error(
        "http://nonexistent.invalid/api", policy=policy, client={"transport": transport}
    )
    elapsed = time.monotonic() - started
    assert elapsed < policy.deadline + 1.0
    if error.kind is ErrorKind.TIMEOUT:  # a resolver that hangs is cut by the deadline
        assert elapsed >= policy.deadline - 0.5
    else:
        assert error.kind is ErrorKind.CONNECT
        assert "name not resolved" in error.message
    assert 1 <= transport.count <= 3


# === HT-07: Content-Length 1000, 97 bytes, close ================================================


async def test_ht07_short_body_is_retried_and_can_recover():
    async with FaultServer({"/short": [truncated_body(), OK]}) as server:
        assert await get(server.url + "/short") == {"ok": True}
    assert len(server.hits()) == 2


async def test_ht07_short_body_every_time_is_truncated_after_three_attempts():
    sleeps = Sleeps()
    async with FaultServer({"/short": truncated_body(1000, 97)}) as server:
        error = await get_error(server.url + "/short", sleep=sleeps)
    assert error.kind is ErrorKind.TRUNCATED
    assert len(server.hits()) == 3
    assert len(sleeps.calls) == 2


# === HT-08: captive portal =====================================================================


async def test_ht08_captive_portal_is_bad_content_type_and_not_retried():
    async with FaultServer({MARKETS: captive_portal()}) as server:
        error = await fetch_error(cg(server))
    assert error.kind is ErrorKind.BAD_CONTENT_TYPE
    assert "text/html" in error.message
    assert "Welcome" not in error.message
    assert len(server.hits()) == 1


# === HT-09: deeply nested JSON ==================================================================


async def test_ht09_deep_nesting_is_an_error_not_recursion_error():
    async with FaultServer({MARKETS: deep_json(100_000), "/deep": deep_json()}) as server:
        error = await fetch_error(cg(server))
        direct = await get_error(server.url + "/deep")
    for err in (error, direct):
        assert err.kind in (ErrorKind.PARSE, ErrorKind.SCHEMA)
    assert len(server.hits(MARKETS)) == 1


async def test_ht09_truncated_json_with_200_is_truncated_and_not_retried():
    async with FaultServer({"/t": truncated_json()}) as server:
        error = await get_error(server.url + "/t")
    assert error.kind is ErrorKind.TRUNCATED
    assert len(server.hits()) == 1


# === HT-10: 50 MB JSON and a gzip bomb ==========================================================


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = gzip_bomb_bytes()
    assert len(data) < 300 * 1024  # ~0.2 MB on the wire for ~200 MB decoded
    return data


@pytest.mark.parametrize("case", ["50MB-json", "gzip-bomb"])
async def test_ht10_oversized_bodies_are_too_large_with_flat_memory(case, bomb):
    behaviour = Stream(50 * 1024 * 1024) if case == "50MB-json" else gzip_bomb()
    async with FaultServer({"/big": behaviour}) as server:
        tracemalloc.start()
        try:
            started = time.monotonic()
            error = await get_error(server.url + "/big", policy=HttpPolicy(deadline=20.0))
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert error.kind is ErrorKind.TOO_LARGE
    assert peak < 30 * 1024 * 1024
    assert elapsed < 15.0
    assert len(server.hits()) == 1  # not retried


async def test_ht10_big_body_through_the_source():
    async with FaultServer({MARKETS: gzip_bomb()}) as server:
        error = await fetch_error(cg(server, timeout=10.0))
    assert error.kind is ErrorKind.TOO_LARGE


# === slow drip and hang: the overall deadline ===================================================


@pytest.mark.parametrize("case", ["drip", "hang"])
async def test_drip_and_hang_end_at_the_deadline(case):
    behaviour = Drip(interval=0.5, max_bytes=20) if case == "drip" else Hang(max_seconds=10)
    async with (
        FaultServer({"/slow": behaviour}) as server,
        make_client(timeout=10.0) as client,
    ):
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            await get_json(client, server.url + "/slow", policy=HttpPolicy(deadline=1.5))
        elapsed = time.monotonic() - started
    assert info.value.kind is ErrorKind.TIMEOUT
    assert 1.4 <= elapsed < 2.5


# === HT-11: TLS ==================================================================================


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    files = self_signed_cert(tmp_path_factory.mktemp("tls"))
    if files is None:
        reason = "neither the cryptography package nor openssl is available"
        if os.environ.get("CI") == "true":
            pytest.fail(f"TLS tests cannot run under CI: {reason}")
        pytest.skip(reason)
    return files


async def test_ht11_self_signed_certificate_is_refused_by_default(tls_files):
    cert, key = tls_files
    async with FaultServer({"/tls": OK}, tls=server_tls(cert, key)) as server:
        assert server.url.startswith("https://127.0.0.1:")
        error = await get_error(server.url + "/tls")
    assert error.kind is ErrorKind.CONNECT
    assert "certificate verify failed" in error.message
    assert server.hits() == []  # no request travelled over the untrusted connection


async def test_ht11_ca_file_trusts_the_target(tls_files):
    cert, key = tls_files
    async with FaultServer({"/tls": OK}, tls=server_tls(cert, key)) as server:
        assert await get(server.url + "/tls", client={"ca_file": str(cert)}) == {"ok": True}
        source = CoinGeckoSource(base_url=server.url, timeout=5.0)
        server.set(MARKETS, json_reply(coins(2)))
        reading = await fetch(source, ca_file=str(cert))
    assert len(reading.market) == 2


async def test_ht11_insecure_skips_verification(tls_files):
    cert, key = tls_files
    async with FaultServer({"/tls": OK}, tls=server_tls(cert, key)) as server:
        assert await get(server.url + "/tls", client={"insecure": True}) == {"ok": True}
    assert len(server.hits()) == 1


def test_ht11_insecure_is_off_by_default_and_a_bad_ca_file_is_a_clear_error(tmp_path):
    client = make_client()
    try:
        assert client._transport._pool._ssl_context.verify_mode.name == "CERT_REQUIRED"  # type: ignore[attr-defined]
    finally:
        asyncio.run(client.aclose())
    with pytest.raises(ValueError, match="ca_file"):
        make_client(ca_file=str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ValueError, match="ca_file"):
        make_client(ca_file=str(junk))


# === HT-12: redirects ============================================================================


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_ht12_redirect_is_not_followed_and_the_key_stays_home(status):
    async with FaultServer({"/steal": OK}) as other:
        target = f"{other.url}/steal?from=redirect"
        async with FaultServer({MARKETS: redirect(target, status)}) as server:
            error = await fetch_error(cg(server, api_key=SecretStr(KEY)))
            direct = await get_error(
                server.url + MARKETS, headers={"authorization": f"Bearer {KEY}"}
            )
    for err in (error, direct):
        assert err.status == status
        assert "not followed" in err.message
        assert f"127.0.0.1:{other.port}" in err.message
        assert "steal" not in err.message  # the target's path and query are not shown
        assert_clean(err.message)
    assert other.hits() == []  # the other host saw nothing, so no key travelled there
    sent = server.hits(MARKETS)
    assert len(sent) == 2
    assert sent[0].headers["x-cg-demo-api-key"] == KEY  # the key went to its own host only


async def test_ht12_control_a_following_client_would_leak_the_key():
    """The harness can see a leak: plain httpx with redirects on sends the custom key header."""
    async with FaultServer({"/steal": OK}) as other:
        async with FaultServer({"/r": redirect(f"{other.url}/steal")}) as server:
            async with httpx.AsyncClient(follow_redirects=True) as client:
                response = await client.get(server.url + "/r", headers={"x-cg-demo-api-key": KEY})
    assert response.status_code == 200
    (leaked,) = other.hits()
    assert leaked.headers.get("x-cg-demo-api-key") == KEY


# === HT-13: hostile error text ==================================================================


@pytest.mark.parametrize("status", [400, 401, 429, 500])
async def test_ht13_provider_error_message_is_sanitised(status):
    body = {"status": {"error_code": status, "error_message": HOSTILE}}
    async with FaultServer({MARKETS: json_reply(body, status)}) as server:
        error = await fetch_error(cg(server, timeout=5.0))
    for text in (error.message, str(error)):
        assert_clean(text)
    assert "\u241b" in error.message  # ESC made visible, not silently dropped
    assert "[@click=app.quit]" in error.message  # markup kept literal, for the UI to escape


@pytest.mark.parametrize("where", ["coingecko", "bearer"])
async def test_ht13_a_key_echoed_by_the_provider_is_redacted(where):
    body = {"status": {"error_code": 10002, "error_message": f"key {KEY} is not valid"}}
    if where == "bearer":
        body = {"error": f"token {KEY} expired; got header Bearer {KEY}"}
    async with FaultServer({"/x": json_reply(body, 401)}) as server:
        if where == "coingecko":
            server.set(MARKETS, json_reply(body, 401))
            error = await fetch_error(cg(server, api_key=SecretStr(KEY)))
        else:
            error = await get_error(server.url + "/x", headers={"authorization": f"Bearer {KEY}"})
    assert error.kind is ErrorKind.AUTH
    assert KEY not in error.message
    assert KEY[:12] not in error.message
    assert "***" in error.message


async def test_ht13_redaction_leaves_plain_header_values_alone():
    body = {"status": {"error_code": 400, "error_message": "expected application/json input"}}
    async with FaultServer({MARKETS: json_reply(body, 400)}) as server:
        error = await fetch_error(cg(server))
    assert server.hits(MARKETS)[0].headers["accept"] == "application/json"
    assert "expected application/json input" in error.message


async def test_ht13_key_in_query_never_reaches_the_message():
    async with FaultServer(
        {"/q": json_reply({"message": "bad x_cg_demo_api_key=" + KEY}, 400)}
    ) as s:
        error = await get_error(s.url + "/q", params={"x_cg_demo_api_key": KEY})
    assert error.kind is ErrorKind.HTTP_4XX
    assert_clean(error.message)


# === HT-14: ten sources failing at once =========================================================


async def test_ht14_ten_failing_sources_finish_within_the_deadline_and_the_loop_stays_live(bomb):
    routes = {
        "/hang": Hang(max_seconds=20),
        "/drip": Drip(interval=0.3, max_bytes=40),
        "/500": status_reply(500),
        "/503": status_reply(503),
        "/html": captive_portal(),
        "/bomb": gzip_bomb(),
        "/short": truncated_body(),
        "/429": rate_limited("5"),
        "/deep": deep_json(),
        "/401": status_reply(401),
    }
    deadline = 2.0
    async with FaultServer(routes) as server:
        lags: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                before = time.monotonic()
                await asyncio.sleep(0.02)
                lags.append(time.monotonic() - before - 0.02)

        tick = asyncio.create_task(ticker())
        async with make_client() as client:
            started = time.monotonic()
            results = await asyncio.gather(
                *(
                    get_json(client, server.url + path, policy=HttpPolicy(deadline=deadline))
                    for path in routes
                ),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - started
        stop.set()
        await tick
    assert all(isinstance(r, SourceError) for r in results), results
    kinds = {path: r.kind for path, r in zip(routes, results, strict=True)}  # type: ignore[union-attr]
    assert kinds["/hang"] is ErrorKind.TIMEOUT
    assert kinds["/drip"] is ErrorKind.TIMEOUT
    assert kinds["/bomb"] is ErrorKind.TOO_LARGE
    assert kinds["/429"] is ErrorKind.RATE_LIMITED
    assert kinds["/html"] is ErrorKind.BAD_CONTENT_TYPE
    assert kinds["/401"] is ErrorKind.AUTH
    assert elapsed < deadline + 1.0
    assert max(lags) < 0.3  # the event loop (the UI) kept answering


# === RequestBudget (io.net: 150 requests per 10 s) =============================================


async def test_budget_allows_150_per_10s_then_waits_when_it_fits():
    clock = FakeClock()
    budget = RequestBudget(150, 10.0, clock=clock, sleep=clock.sleep)
    for _ in range(150):
        await budget.acquire(5.0)
    assert clock.sleeps == []
    assert budget.wait_needed() == pytest.approx(10.0)
    clock.now += 9.0
    await budget.acquire(5.0)  # the oldest slot frees in 1 s, which fits
    assert clock.sleeps == [pytest.approx(1.0)]
    assert clock.now == pytest.approx(1010.0)


async def test_budget_raises_rate_limited_when_the_wait_does_not_fit():
    clock = FakeClock()
    budget = RequestBudget(150, 10.0, clock=clock, sleep=clock.sleep)
    for _ in range(150):
        await budget.acquire(1.0)
    clock.now += 2.0
    with pytest.raises(SourceError) as info:
        await budget.acquire(5.0)
    assert info.value.kind is ErrorKind.RATE_LIMITED
    assert info.value.retry_after == pytest.approx(8.0)
    assert "request budget" in info.value.message
    assert clock.sleeps == []


async def test_budget_window_slides():
    clock = FakeClock(0.0)
    budget = RequestBudget(3, 10.0, clock=clock, sleep=clock.sleep)
    for at in (0.0, 4.0, 8.0):
        clock.now = at
        await budget.acquire(0.0)
    clock.now = 10.0  # the request at 0 s has left the window
    await budget.acquire(0.0)
    assert budget.wait_needed() == pytest.approx(4.0)
    clock.now = 14.0
    assert budget.wait_needed() == 0.0


async def test_budget_concurrent_waiters_are_spread_out():
    clock = FakeClock(0.0)
    budget = RequestBudget(2, 10.0, clock=clock, sleep=clock.sleep)
    granted: list[float] = []

    async def take() -> None:
        await budget.acquire(60.0)
        granted.append(clock())

    await asyncio.gather(*(take() for _ in range(6)))
    granted.sort()
    for i in range(2, 6):
        assert granted[i] - granted[i - 2] >= 10.0 - 1e-9  # never more than 2 in any 10 s


def test_budget_bad_arguments():
    with pytest.raises(ValueError):
        RequestBudget(0, 10.0)
    with pytest.raises(ValueError):
        RequestBudget(10, 0.0)


async def test_budget_is_taken_before_every_attempt_of_get_json():
    clock = FakeClock()
    budget = RequestBudget(3, 10.0, clock=clock, sleep=clock.sleep)
    flaky = [status_reply(503), status_reply(503), OK]
    async with FaultServer({"/flaky": flaky, "/ok": OK}) as server:
        assert await get(server.url + "/flaky", budget=budget) == {"ok": True}
        assert budget.wait_needed() > 0  # three attempts took three slots
        started = time.monotonic()
        error = await get_error(server.url + "/ok", budget=budget, policy=HttpPolicy(deadline=2.0))
        elapsed = time.monotonic() - started
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after == pytest.approx(10.0)
    assert elapsed < 1.0
    assert server.hits("/ok") == []  # the over-budget request was never sent


# === Schema drift through CoinGeckoSource.fetch ================================================
# SC-01, SC-02, SC-03, SC-04, SC-05, SC-06, SC-07 (SC-08 is tests/unit/test_sources_networks.py)


async def test_sc01_unknown_fields_are_ignored():
    items = [
        {**c, "new_field": {"nested": [1, 2]}, "roi": {"times": 3}, "x" * 300: "y"}
        for c in coins(5)
    ]
    async with FaultServer({MARKETS: json_reply(items)}) as server:
        reading = await fetch(cg(server))
    assert [c.coin_id for c in reading.market] == [f"coin-{i}" for i in range(5)]
    assert reading.skipped == 0


async def test_sc02_a_required_field_removed_from_every_item_fails_with_schema():
    items = [{k: v for k, v in c.items() if k != "name"} for c in coins(10)]
    async with FaultServer({MARKETS: json_reply(items)}) as server:
        error = await fetch_error(cg(server))
    assert error.kind is ErrorKind.SCHEMA
    assert "schema changed?" in error.message


async def test_sc03_one_invalid_item_in_100_is_skipped():
    items = coins(100)
    items[42] = {"symbol": "nameless", "current_price": 1}
    async with FaultServer({MARKETS: json_reply(items)}) as server:
        reading = await fetch(cg(server))
    assert len(reading.market) == 99
    assert reading.skipped == 1
    assert "coin-42" not in {c.coin_id for c in reading.market}


async def test_sc04_numbers_as_strings_and_nulls():
    items = [
        coin(0, current_price="1.25", market_cap=" 2000 ", total_volume=None),
        coin(1, current_price=None, market_cap_rank="7", fully_diluted_valuation="junk"),
    ]
    async with FaultServer({MARKETS: json_reply(items)}) as server:
        reading = await fetch(cg(server))
    first, second = reading.market
    assert first.price_usd == 1.25
    assert first.market_cap_usd == 2000.0
    assert first.volume_24h_usd is None
    assert second.price_usd is None  # shown as "—", never 0
    assert second.rank == 7
    assert second.fdv_usd is None


async def test_sc05_nan_infinity_and_huge_numbers():
    body = (
        b'[{"id": "a", "name": "A", "current_price": "NaN", "market_cap": 1e999,'
        b' "total_volume": NaN, "market_cap_rank": 1000000000000000000000000000000,'
        b' "fully_diluted_valuation": 1000000000000000000000000000000,'
        b' "price_change_percentage_24h": -1e999}]'
    )
    async with FaultServer({MARKETS: Reply(200, body)}) as server:
        reading = await fetch(cg(server))
    (only,) = reading.market
    assert only.price_usd is None
    assert only.market_cap_usd is None
    assert only.volume_24h_usd is None
    assert only.change_24h_pct is None
    assert only.rank is None  # beyond int64: rejected, never sent to SQLite
    assert only.fdv_usd is not None and math.isfinite(only.fdv_usd)  # bounded as a float
    for value in (only.price_usd, only.market_cap_usd, only.fdv_usd, only.change_24h_pct):
        assert value is None or math.isfinite(value)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"coins": [coin(0)]}, ErrorKind.SCHEMA),
        ({"status": {"error_code": 429, "error_message": "slow down"}}, ErrorKind.RATE_LIMITED),
        ("just a string", ErrorKind.SCHEMA),
        (42, ErrorKind.SCHEMA),
    ],
    ids=["object", "429-body-with-200", "string", "number"],
)
async def test_sc06_top_level_not_a_list_is_an_error(body, kind):
    async with FaultServer({MARKETS: json_reply(body)}) as server:
        error = await fetch_error(cg(server))
    assert error.kind is kind
    assert len(server.hits()) == 1


async def test_sc07_validation_errors_never_escape_raw():
    hostile = {"a[0]": "[type=x, v={'a[0]'}]"}
    items = [coin(i, name=hostile, id=[f"[type=string_type] {i}"]) for i in range(10)]
    async with FaultServer({MARKETS: json_reply(items)}) as server:
        try:
            await fetch(cg(server))
        except ValidationError as exc:  # pragma: no cover - the failure this test guards
            pytest.fail(f"raw ValidationError escaped: {type(exc).__name__}")
        except SourceError as error:
            assert error.kind is ErrorKind.SCHEMA
            assert "[type=" not in error.message
            assert "input_value" not in error.message
            assert_clean(error.message)
        else:
            pytest.fail("ten invalid items must fail the poll")


async def test_sc07_one_bad_item_among_good_ones_is_counted_not_shown():
    items = [*coins(9), coin(9, name={"[type=dict_type]": 1})]
    async with FaultServer({MARKETS: json_reply(items)}) as server:
        reading = await fetch(cg(server))
    assert len(reading.market) == 9
    assert reading.skipped == 1
    assert reading.note is None or "[type=" not in reading.note


# === fault server self-checks ====================================================================


async def test_fault_server_plays_scripts_in_turn_and_stops_cleanly():
    async with FaultServer({"/s": [status_reply(503), OK]}) as server:
        url = server.url
        async with httpx.AsyncClient() as client:
            first = await client.get(url + "/s?a=1")
            second = await client.get(url + "/s")
            third = await client.get(url + "/s")
            missing = await client.get(url + "/nope")
    assert [first.status_code, second.status_code, third.status_code] == [503, 200, 200]
    assert missing.status_code == 404
    assert server.hits("/s")[0].target == "/s?a=1"
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(url + "/s")


async def test_fault_server_hang_is_bounded_when_the_server_stops():
    async with FaultServer({"/hang": Hang()}) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
    started = time.monotonic()
    async with asyncio.timeout(5):
        data = await reader.read()
    assert data == b""  # closed without an answer when the server stopped
    assert time.monotonic() - started < 5
    writer.close()


def test_gzip_bomb_is_small_on_the_wire_and_huge_decoded(bomb):
    import zlib

    decoder = zlib.decompressobj(47)
    out = decoder.decompress(bomb[:4096], 1024)
    assert out.startswith(b"[0,0,")
    assert len(bomb) < 300 * 1024


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield


NODE_BODY = (
    Path(__file__).resolve().parents[1] / "fixtures" / "node_exporter_1.5.0_2cpu.prom"
).read_bytes()


async def test_fleet_targets_each_use_their_own_ca_file(tls_files):
    from sources.exporter import ExporterFleetSource, Target

    cert, key = tls_files
    metrics = Reply(200, NODE_BODY, {"content-type": "text/plain; version=0.0.4"})
    async with FaultServer({"/metrics": metrics}, tls=server_tls(cert, key)) as server:
        url = server.url + "/metrics"
        targets = [
            Target(name="trusted", url=url, ca_file=str(cert)),
            Target(name="unknown-ca", url=url),
        ]
        fleet = ExporterFleetSource(targets=lambda: targets, timeout=3.0)
        async with make_client() as client:
            nodes = {n.node: n for n in (await fleet.fetch(client)).nodes}
    assert nodes["trusted"].up and nodes["trusted"].mem_pct is not None
    assert not nodes["unknown-ca"].up
    assert "certificate verify failed" in nodes["unknown-ca"].error
