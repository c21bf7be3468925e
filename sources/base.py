"""The Source protocol and the one bounded HTTP client every HTTP source uses.

httpx alone has no overall deadline (its read timeout is per read, so a slow drip defeats it) and
no cap on the decoded body (a gzip bomb inflates in memory). :func:`get_json` adds both, retries
transport errors and 5xx with full jitter, and turns 429/503 ``Retry-After`` into a rescheduling
request for the poller instead of sleeping in the worker. An optional :class:`RequestBudget` keeps a
source inside a documented request rate (io.net: 150 requests per 10 s).

Redirects are never followed: a 3xx is an error that names the redirect, so a key sent in a header
can never travel to another host. Error messages are built from the host, the status and the
provider's own (sanitised, key-redacted) message only.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import socket
import ssl
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import httpx

from sources.models import ErrorKind, Reading, SourceError
from sources.text import one_line

JSON_BODY_CAP = 8 * 1024 * 1024
RETRY_AFTER_CAP = 3600.0
RETRY_AFTER_DEFAULT = 60.0
USER_AGENT = "depin-explorer"


Counters = dict[str, dict[str, float]]
"""node -> counter name -> total, as stored with a node's previous sample."""


class CacheInput(StrEnum):
    """What a source may ask the poller to read from the cache before each of its polls."""

    FLEET_DEVICES = "fleet_devices"
    """Fleet nodes labelled with an io.net ``device_id``: device_id -> node name."""
    KNOWN_REWARDS = "known_rewards"
    """(device_id, reward source) pairs stored within the source's ``reward_lookback``."""
    FLEET_PROVIDERS = "fleet_providers"
    """Fleet nodes labelled with an Akash ``provider`` address: address -> node name."""


@dataclass(frozen=True)
class PollContext:
    """What the poller hands a source before a poll: plain values, read from the cache for it.

    Only what the source declared (``counter_kind``, ``needs``) is filled in; the rest is empty.
    """

    clock: Callable[[], datetime]
    """The poller's clock (UTC), injectable in tests."""
    previous: Counters = field(default_factory=dict)
    """Counters of the previous stored sample of each node, for rates. The poller keeps this
    dict for the whole run and adds each successful poll's counters to it."""
    fleet_devices: Mapping[str, str] = field(default_factory=dict)
    """:attr:`CacheInput.FLEET_DEVICES`, when asked for."""
    known_rewards: set[tuple[str, str]] = field(default_factory=set)
    """:attr:`CacheInput.KNOWN_REWARDS`, when asked for."""
    fleet_providers: Mapping[str, str] = field(default_factory=dict)
    """:attr:`CacheInput.FLEET_PROVIDERS`, when asked for."""


class Source(Protocol):
    """One upstream, as the poller sees it: the whole contract between the two.

    ``fetch`` returns a validated :class:`Reading` or raises SourceError. The read-only members
    below are optional capabilities; :class:`SourceDefaults` gives each its "not used" default,
    so a source states only what it has.
    """

    name: str
    uses_network: bool

    @property
    def runs_offline(self) -> bool:
        """May poll in an offline session (only the bundled sample: it makes no request)."""

    @property
    def stand_in(self) -> bool:
        """Stand-in data: stored only while the cache holds no rankings; no circuit breaker."""

    @property
    def counter_kind(self) -> str | None:
        """Whose stored counters :attr:`PollContext.previous` carries; None: no rates."""

    @property
    def needs(self) -> frozenset[CacheInput]:
        """What else of the cache the poller reads and hands to :meth:`prepare`."""

    @property
    def reward_lookback(self) -> timedelta:
        """How far back :attr:`CacheInput.KNOWN_REWARDS` reaches."""

    @property
    def budget(self) -> RequestBudget | None:
        """The client-side request budget a provider documents, if any."""

    def min_interval(self) -> float | None:
        """The shortest poll interval the provider's request budget allows; None: no floor.

        A method, not a value: it may depend on what :meth:`prepare` handed in (io.net: the
        number of devices). The poller never polls more often than this.
        """

    def prepare(self, context: PollContext) -> None:
        """Take what the poller read for this poll, just before :meth:`fetch`."""

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """Fetch and validate one reading; raise SourceError on failure."""
        ...


class SourceDefaults:
    """The defaults of :class:`Source`'s optional members; every source class derives from it.

    Plain class attributes, not dataclass fields: a subclass overrides one by assigning it (or by
    declaring a field of the same name) without changing its constructor.
    """

    runs_offline: bool = False
    stand_in: bool = False
    counter_kind: str | None = None
    needs: frozenset[CacheInput] = frozenset()
    reward_lookback: timedelta = timedelta(0)

    @property
    def budget(self) -> RequestBudget | None:
        """No documented request budget."""
        return None

    def min_interval(self) -> float | None:
        """No floor beyond the configured interval."""
        return None

    def prepare(self, context: PollContext) -> None:
        """Nothing to take: the source needs nothing from the cache."""


@dataclass(frozen=True)
class HttpPolicy:
    """Limits for one request: overall deadline, decoded body cap, attempts."""

    deadline: float = 10.0
    body_cap: int = JSON_BODY_CAP
    attempts: int = 3
    backoff_cap: float = 4.0


Sleep = Callable[[float], Awaitable[None]]
Decoder = Callable[[bytes | bytearray], Any]
"""Turns a response body into a value; raises SourceError when the body is not what it must be."""


def make_client(
    *,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    ca_file: str | None = None,
    insecure: bool = False,
) -> httpx.AsyncClient:
    """Create the shared client: TLS verified, no redirects, gzip/deflate only.

    The standard proxy variables (HTTPS_PROXY, NO_PROXY) are honoured, as operators behind a
    proxy expect.

    Args:
        timeout: httpx's per-operation timeout (connect, read, write, pool); the overall deadline
            of a request is :attr:`HttpPolicy.deadline`, enforced by :func:`get_json`.
        transport: a custom transport (tests use ``httpx.MockTransport``).
        ca_file: a PEM file of CA certificates to trust *instead of* the system store, for one
            target with a self-signed or private certificate (like Prometheus
            ``tls_config.ca_file``).
        insecure: turn certificate verification off. Per target, off by default, and meant to be
            shown as a persistent warning; it wins over ``ca_file`` when both are set.

    Raises:
        ValueError: ``ca_file`` cannot be read or holds no usable certificate.
    """
    verify: ssl.SSLContext | bool = True
    if insecure:
        verify = False
    elif ca_file:
        try:
            verify = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = one_line(getattr(exc, "strerror", None) or type(exc).__name__, 80)
            raise ValueError(f"cannot load ca_file {one_line(ca_file, 200)}: {reason}") from exc
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        verify=verify,
        transport=transport,
        headers={"user-agent": USER_AGENT, "accept-encoding": "gzip, deflate"},
    )


class RequestBudget:
    """A sliding-window request limiter for one source: at most ``max_requests`` per window.

    io.net documents 150 requests per 10 s. :meth:`acquire` is called before every attempt; it
    waits for a free slot when the wait fits the remaining deadline and otherwise raises a
    ``rate_limited`` SourceError whose ``retry_after`` tells the poller when a slot frees up.
    One instance is shared by every request of its source (all on one event loop).

    Args:
        max_requests: requests allowed per window (at least 1).
        per_seconds: the window length in seconds (positive).
        clock: monotonic time in seconds (injectable for tests).
        sleep: how to wait (injectable for tests, e.g. to advance a fake clock).
    """

    def __init__(
        self,
        max_requests: int,
        per_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        if max_requests < 1 or not per_seconds > 0:
            raise ValueError("a request budget needs max_requests >= 1 and per_seconds > 0")
        self.max_requests = max_requests
        self.per_seconds = float(per_seconds)
        self._clock = clock
        self._sleep: Sleep = sleep or asyncio.sleep
        self._granted: deque[float] = deque()

    def wait_needed(self) -> float:
        """Seconds until the next request may start (0 when a slot is free now)."""
        now = self._clock()
        while self._granted and self._granted[0] <= now - self.per_seconds:
            self._granted.popleft()
        if len(self._granted) < self.max_requests:
            return 0.0
        return max(self._granted[0] + self.per_seconds - now, 0.0)

    async def acquire(self, deadline_remaining: float) -> None:
        """Take one slot, waiting for it only when the wait fits ``deadline_remaining`` seconds.

        Raises:
            SourceError: kind ``rate_limited``, with ``retry_after`` set to the wait, when the
                next slot frees up too late for this request's deadline.
        """
        end = self._clock() + deadline_remaining
        for _ in range(self.max_requests + 2):  # each wait frees a slot; bounded regardless
            wait = self.wait_needed()
            if wait <= 0:
                self._granted.append(self._clock())
                return
            if wait >= end - self._clock():
                break
            await self._sleep(wait)
        wait = max(self.wait_needed(), 0.001)
        raise SourceError(
            ErrorKind.RATE_LIMITED,
            f"request budget of {self.max_requests} per {self.per_seconds:g} s used up; "
            f"next request in {wait:.1f} s",
            retry_after=wait,
        )


class BudgetChain:
    """Several request budgets taken together, e.g. io.net's whole-API and per-endpoint limits.

    A request waits for a slot in each, in order; one that is used up raises like a single
    budget does (``rate_limited`` with ``retry_after``).
    """

    def __init__(self, *budgets: RequestBudget) -> None:
        self.budgets = budgets

    async def acquire(self, deadline_remaining: float) -> None:
        """Take one slot of every budget within ``deadline_remaining`` seconds."""
        started = time.monotonic()
        for budget in self.budgets:
            await budget.acquire(max(deadline_remaining - (time.monotonic() - started), 0.0))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or HTTP date), capped at 1 h."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return min(max((when - current).total_seconds(), 0.0), RETRY_AFTER_CAP)


async def _read_capped(response: httpx.Response, cap: int) -> bytes | bytearray:
    """Read the raw stream and decompress it ourselves, never holding more than ``cap`` bytes.

    The body grows in one bytearray: a large answer (a PromQL vector of 100,000 series is tens of
    MB) is never held twice, as a list of chunks and their join would be.
    """
    encoding = response.headers.get("content-encoding", "").lower().strip()
    decoder = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(47)  # 32 + 15: zlib or gzip header, detected
    elif encoding not in ("", "identity"):
        raise SourceError(ErrorKind.PARSE, f"unsupported content-encoding {one_line(encoding)}")
    if response.is_stream_consumed:  # a response built in memory (recorded bodies in tests)
        if len(response.content) > cap:
            raise _too_large(cap)
        return response.content
    body = bytearray()
    async for chunk in response.aiter_raw():
        if decoder is None:
            if len(body) + len(chunk) > cap:
                raise _too_large(cap)
            body += chunk
            continue
        data = chunk
        while data:
            try:
                # at most 1 MiB a step: the body alone grows toward the cap, never body + out
                out = decoder.decompress(data, min(cap + 1 - len(body), _INFLATE_STEP))
            except zlib.error as exc:
                raise SourceError(ErrorKind.TRUNCATED, "compressed body is corrupt") from exc
            if len(body) + len(out) > cap:
                raise _too_large(cap)
            body += out
            data = decoder.unconsumed_tail
    if decoder is not None:
        try:
            tail = decoder.flush()
        except zlib.error as exc:
            raise SourceError(ErrorKind.TRUNCATED, "compressed body is corrupt") from exc
        if len(body) + len(tail) > cap:
            raise _too_large(cap)
        body += tail
    return body


_INFLATE_STEP = 1024 * 1024


def _too_large(cap: int) -> SourceError:
    mib = 1024 * 1024
    # in the unit the settings use (max_body_mb), whenever the cap is whole MiB
    size = f"{cap // mib} MiB" if cap >= mib and cap % mib == 0 else f"{cap // 1024} KiB"
    return SourceError(ErrorKind.TOO_LARGE, f"body larger than {size}")


_SENSITIVE_PARAM = re.compile(r"(?i)key|token|secret|auth|sig|pass|session|jwt")
_MIN_SECRET_LEN = 6
_PLAIN_HEADERS = frozenset(
    {"accept", "accept-encoding", "accept-language", "cache-control", "content-type", "user-agent"}
)


def _secrets_of(
    headers: Mapping[str, str] | None, params: Mapping[str, str] | None
) -> tuple[str, ...]:
    """Values an error message must never repeat.

    Every header value the caller passed except a few plain ones like ``accept`` (and each word
    of it, for ``Bearer <token>``) and the values of key-like query parameters.
    """
    found: set[str] = set()
    for name, value in (headers or {}).items():
        if str(name).lower() in _PLAIN_HEADERS:
            continue
        found.update(part for part in [value, *str(value).split()] if len(part) >= _MIN_SECRET_LEN)
    for name, value in (params or {}).items():
        if _SENSITIVE_PARAM.search(str(name)) and len(str(value)) >= _MIN_SECRET_LEN:
            found.add(str(value))
    return tuple(sorted(found, key=len, reverse=True))


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _error_message(body: bytes | bytearray, secrets: Iterable[str] = ()) -> str | None:
    """A provider's own error text, if the body carries one (CoinGecko, generic shapes).

    Any credential the request carried is redacted before the text is cut to one short line, so
    a provider that echoes the key back never puts it (or a prefix of it) into an error.
    """
    try:
        data = json.loads(body[:65536])
    except (ValueError, RecursionError):
        return None
    message: Any = None
    if isinstance(data, dict):
        status = data.get("status")
        if isinstance(status, dict):
            message = status.get("error_message") or None
        if message is None:
            message = next(
                (
                    data[key]
                    for key in ("error", "message", "detail")
                    if isinstance(data.get(key), str)
                ),
                None,
            )
    if not message:
        return None
    text = message if isinstance(message, str) else str(message)
    return one_line(_redact(text, secrets), 160)


def _classify(
    status: int,
    body: bytes | bytearray,
    retry_after: float | None,
    host: str,
    secrets: Iterable[str] = (),
) -> SourceError:
    detail = _error_message(body, secrets)
    suffix = f": {detail}" if detail else ""
    if status == 429:
        return SourceError(
            ErrorKind.RATE_LIMITED,
            f"rate limited by {host}{suffix}",
            status=status,
            retry_after=retry_after,  # None: the poller backs off 60 s, doubling to 15 min
        )
    if status in (401, 403):
        return SourceError(
            ErrorKind.AUTH, f"HTTP {status} from {host}, check API key{suffix}", status=status
        )
    kind = ErrorKind.HTTP_5XX if status >= 500 else ErrorKind.HTTP_4XX
    return SourceError(
        kind, f"HTTP {status} from {host}{suffix}", status=status, retry_after=retry_after
    )


def decode_json(body: bytes | bytearray) -> Any:
    """Parse JSON, mapping every failure (including deep nesting) to a SourceError."""
    if not body.strip():
        raise SourceError(ErrorKind.EMPTY, "empty body")
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise SourceError(ErrorKind.PARSE, "JSON nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(ErrorKind.PARSE, "body is not UTF-8") from exc
    except ValueError as exc:
        raise SourceError(ErrorKind.TRUNCATED, "invalid or truncated JSON") from exc


async def get_text(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    policy: HttpPolicy | None = None,
) -> tuple[str, str]:
    """GET a text body (an exporter's /metrics) once, within a deadline and a size cap.

    Scrapes follow Prometheus: one attempt per cycle, and a failed scrape marks the target down
    rather than being retried inside the cycle.

    Returns:
        (body decoded as UTF-8 with replacement characters, content type).

    Raises:
        SourceError: as for :func:`get_json`.
    """
    policy = policy or HttpPolicy()
    host = httpx.URL(url).host or "target"
    secrets = _secrets_of(headers, None)
    try:
        async with asyncio.timeout(policy.deadline):
            _, content_type, body = await _fetch(client, url, None, headers, policy, host, secrets)
    except TimeoutError as exc:
        raise SourceError(
            ErrorKind.TIMEOUT, f"no complete answer from {host} within {policy.deadline:g} s"
        ) from exc
    return body.decode("utf-8", errors="replace"), content_type


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    policy: HttpPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    budget: RequestBudget | BudgetChain | None = None,
    decode: Decoder = decode_json,
) -> Any:
    """GET ``url`` and return its JSON body, within the policy's deadline, cap and attempts.

    Args:
        client: the client from :func:`make_client`.
        url: the full URL, without credentials (keys travel in ``headers`` only).
        params: query parameters.
        headers: extra request headers (API keys go here).
        policy: deadline, body cap, attempts and back-off cap.
        sleep: how to wait between attempts (injectable for tests).
        rng: the jitter source (injectable for tests).
        budget: the source's request budget, taken before every attempt.
        decode: turns the body into the result; raises SourceError when it cannot. The default
            builds Python objects; a source reading very large bodies passes a typed decoder.

    Returns:
        The decoded JSON body.

    Raises:
        SourceError: whose message never contains the query string or a header value.
    """
    policy = policy or HttpPolicy()
    rng = rng or random.Random()
    host = httpx.URL(url).host or "upstream"
    secrets = _secrets_of(headers, params)
    started = time.monotonic()
    try:
        async with asyncio.timeout(policy.deadline):
            for attempt in range(policy.attempts):
                last = attempt == policy.attempts - 1
                if budget is not None:
                    await budget.acquire(policy.deadline - (time.monotonic() - started))
                try:
                    return await _attempt(
                        client, url, params, headers, policy, host, secrets, decode
                    )
                except SourceError as error:
                    retryable = error.kind in (
                        ErrorKind.CONNECT,
                        ErrorKind.TIMEOUT,
                        ErrorKind.TRUNCATED,
                    ) or (error.kind is ErrorKind.HTTP_5XX and error.status in (500, 502, 503, 504))
                    if error.kind is ErrorKind.TRUNCATED and error.status is not None:
                        retryable = False  # a complete 200 body that is not JSON stays bad
                    if last or not retryable:
                        raise
                    wait = rng.uniform(0, min(policy.backoff_cap, 0.5 * 2**attempt))
                    if error.retry_after is not None:
                        wait = error.retry_after
                    remaining = policy.deadline - (time.monotonic() - started)
                    if wait >= remaining:
                        raise
                    await sleep(wait)
    except TimeoutError as exc:
        raise SourceError(
            ErrorKind.TIMEOUT, f"no complete answer from {host} within {policy.deadline:g} s"
        ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _connect_reason(exc: BaseException) -> str | None:
    """Why a connection failed, from the exception chain: TLS, DNS or a refused port."""
    current: BaseException | None = exc
    for _ in range(8):  # the chain is short (httpx <- httpcore <- ssl/socket); stay bounded
        if current is None:
            break
        if isinstance(current, ssl.SSLCertVerificationError):
            detail = one_line(current.verify_message or current.reason or "", 80)
            suffix = f" ({detail})" if detail else ""
            return f"certificate verify failed{suffix}; set ca_file for this target"
        if isinstance(current, ssl.SSLError):
            return (
                f"TLS handshake failed ({one_line(current.reason or type(current).__name__, 60)})"
            )
        if isinstance(current, socket.gaierror):
            return "name not resolved"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        current = current.__cause__ or current.__context__
    return None


def _transport_error(exc: httpx.TransportError, host: str) -> SourceError:
    """What went wrong below HTTP (timeout, connect, truncation), without any URL or secret."""
    if isinstance(exc, httpx.TimeoutException):
        return SourceError(ErrorKind.TIMEOUT, f"timed out talking to {host}")
    if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol):
        reason = _connect_reason(exc)
        return SourceError(
            ErrorKind.CONNECT, f"cannot connect to {host}" + (f": {reason}" if reason else "")
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        return SourceError(ErrorKind.TRUNCATED, f"{host} closed the connection mid-answer")
    return SourceError(ErrorKind.CONNECT, f"network error talking to {host}: {type(exc).__name__}")


def _redirect_target(response: httpx.Response) -> str:
    """`` to HOST[:PORT]`` when a redirect points at another origin (never its path or query)."""
    try:
        target = response.url.join(response.headers.get("location", ""))
    except (httpx.InvalidURL, ValueError, TypeError):
        return ""
    here = response.url
    if not target.host or (target.scheme, target.host, target.port) == (
        here.scheme,
        here.host,
        here.port,
    ):
        return ""
    port = f":{target.port}" if target.port is not None else ""
    return f" to {one_line(target.host + port, 80)}"


async def _fetch(
    client: httpx.AsyncClient,
    url: str,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
    policy: HttpPolicy,
    host: str,
    secrets: Iterable[str] = (),
) -> tuple[int, str, bytes | bytearray]:
    """One GET: (status, content type, capped body), or a SourceError for any failure."""
    try:
        async with client.stream("GET", url, params=params, headers=headers) as response:
            status = response.status_code
            if 300 <= status < 400:
                raise SourceError(
                    ErrorKind.HTTP_4XX,
                    f"HTTP {status} redirect from {host}{_redirect_target(response)} not followed",
                    status=status,
                )
            body = await _read_capped(response, policy.body_cap)
            content_type = response.headers.get("content-type", "")
            retry_after = parse_retry_after(response.headers.get("retry-after"))
    except httpx.TransportError as exc:
        raise _transport_error(exc, host) from exc
    if status >= 400:
        raise _classify(status, body, retry_after, host, secrets)
    return status, content_type, body


async def _attempt(
    client: httpx.AsyncClient,
    url: str,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
    policy: HttpPolicy,
    host: str,
    secrets: Iterable[str] = (),
    decode: Decoder = decode_json,
) -> Any:
    status, content_type, body = await _fetch(client, url, params, headers, policy, host, secrets)
    if "json" not in content_type.lower():
        raise SourceError(
            ErrorKind.BAD_CONTENT_TYPE,
            f"{host} answered {one_line(content_type or 'no content type', 60)}, not JSON",
            status=status,
        )
    try:
        return decode(body)
    except SourceError as error:
        error.status = status
        raise


WEBHOOK_BODY_CAP = 64 * 1024


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
    policy: HttpPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> int:
    """POST ``payload`` as JSON (a webhook), within the policy's deadline and attempts.

    Connection errors, timeouts, 429 and 500/502/503/504 are retried with full-jitter back-off
    (a Retry-After is honoured when it fits the deadline); any other status fails at once. The
    answer's body is read up to a small cap and dropped. A retried POST may arrive twice.

    Returns:
        The HTTP status of the accepting answer (2xx).

    Raises:
        SourceError: whose message names the host and status, never the URL's path or query
            nor a header value.
    """
    policy = policy or HttpPolicy(body_cap=WEBHOOK_BODY_CAP)
    rng = rng or random.Random()
    host = httpx.URL(url).host or "webhook"
    secrets = _secrets_of(headers, None)
    body = json.dumps(payload, ensure_ascii=False).encode()
    sent = {**(headers or {}), "content-type": "application/json"}
    started = time.monotonic()
    try:
        async with asyncio.timeout(policy.deadline):
            for attempt in range(policy.attempts):
                try:
                    return await _post_once(client, url, body, sent, policy, host, secrets)
                except SourceError as error:
                    retryable = error.kind in (
                        ErrorKind.CONNECT,
                        ErrorKind.TIMEOUT,
                        ErrorKind.TRUNCATED,
                        ErrorKind.RATE_LIMITED,
                    ) or (error.kind is ErrorKind.HTTP_5XX and error.status in (500, 502, 503, 504))
                    if attempt == policy.attempts - 1 or not retryable:
                        raise
                    wait = rng.uniform(0, min(policy.backoff_cap, 0.5 * 2**attempt))
                    if error.retry_after is not None:
                        wait = error.retry_after
                    if wait >= policy.deadline - (time.monotonic() - started):
                        raise
                    await sleep(wait)
    except TimeoutError as exc:
        raise SourceError(
            ErrorKind.TIMEOUT, f"no answer from {host} within {policy.deadline:g} s"
        ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


async def _post_once(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: HttpPolicy,
    host: str,
    secrets: Iterable[str],
) -> int:
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            status = response.status_code
            answer: bytes | bytearray = b""
            if status >= 400:  # only an error's body says anything; a big one is cut, not fatal
                try:
                    answer = await _read_capped(response, policy.body_cap)
                except SourceError:
                    answer = b""
            retry_after = parse_retry_after(response.headers.get("retry-after"))
    except httpx.TransportError as exc:
        raise _transport_error(exc, host) from exc
    if 300 <= status < 400:  # never follow: the headers may carry a token
        raise SourceError(
            ErrorKind.HTTP_4XX,
            f"HTTP {status} redirect from {host}{_redirect_target(response)} not followed",
            status=status,
        )
    if status >= 400:
        raise _classify(status, answer, retry_after, host, secrets)
    return status
