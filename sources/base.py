"""The Source protocol and the one bounded HTTP client every HTTP source uses.

httpx alone has no overall deadline (its read timeout is per read, so a slow drip defeats it) and
no cap on the decoded body (a gzip bomb inflates in memory). :func:`get_json` adds both, retries
transport errors and 5xx with full jitter, and turns 429/503 ``Retry-After`` into a rescheduling
request for the poller instead of sleeping in the worker.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from sources.models import ErrorKind, Reading, SourceError
from sources.text import one_line

JSON_BODY_CAP = 8 * 1024 * 1024
RETRY_AFTER_CAP = 3600.0
RETRY_AFTER_DEFAULT = 60.0
USER_AGENT = "depin-explorer"


class Source(Protocol):
    """One upstream. ``fetch`` returns a validated :class:`Reading` or raises SourceError."""

    name: str
    uses_network: bool

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """Fetch and validate one reading; raise SourceError on failure."""
        ...


@dataclass(frozen=True)
class HttpPolicy:
    """Limits for one request: overall deadline, decoded body cap, attempts."""

    deadline: float = 10.0
    body_cap: int = JSON_BODY_CAP
    attempts: int = 3
    backoff_cap: float = 4.0


Sleep = Callable[[float], Awaitable[None]]


def make_client(
    *,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    ca_file: str | None = None,
) -> httpx.AsyncClient:
    """Create the shared client: TLS verified, no redirects, gzip/deflate only.

    The standard proxy variables (HTTPS_PROXY, NO_PROXY) are honoured, as operators behind a
    proxy expect.
    """
    verify: Any = ca_file if ca_file else True
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        verify=verify,
        transport=transport,
        headers={"user-agent": USER_AGENT, "accept-encoding": "gzip, deflate"},
    )


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


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    """Read the raw stream and decompress it ourselves, never holding more than ``cap`` bytes."""
    encoding = response.headers.get("content-encoding", "").lower().strip()
    decoder = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(47)  # 32 + 15: zlib or gzip header, detected
    elif encoding not in ("", "identity"):
        raise SourceError(ErrorKind.PARSE, f"unsupported content-encoding {one_line(encoding)}")
    if response.is_stream_consumed:  # a response built in memory (recorded bodies in tests)
        if len(response.content) > cap:
            raise SourceError(ErrorKind.TOO_LARGE, f"body larger than {cap // 1024} KiB")
        return response.content
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        if decoder is None:
            size += len(chunk)
            if size > cap:
                raise SourceError(ErrorKind.TOO_LARGE, f"body larger than {cap // 1024} KiB")
            parts.append(chunk)
            continue
        data = chunk
        while data:
            try:
                out = decoder.decompress(data, cap + 1 - size)
            except zlib.error as exc:
                raise SourceError(ErrorKind.TRUNCATED, "compressed body is corrupt") from exc
            size += len(out)
            if size > cap:
                raise SourceError(ErrorKind.TOO_LARGE, f"body larger than {cap // 1024} KiB")
            parts.append(out)
            data = decoder.unconsumed_tail
    if decoder is not None:
        try:
            tail = decoder.flush()
        except zlib.error as exc:
            raise SourceError(ErrorKind.TRUNCATED, "compressed body is corrupt") from exc
        size += len(tail)
        if size > cap:
            raise SourceError(ErrorKind.TOO_LARGE, f"body larger than {cap // 1024} KiB")
        parts.append(tail)
    return b"".join(parts)


def _error_message(body: bytes) -> str | None:
    """A provider's own error text, if the body carries one (CoinGecko, generic shapes)."""
    try:
        data = json.loads(body[:65536])
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict):
        status = data.get("status")
        if isinstance(status, dict):
            message = status.get("error_message")
            if message:
                return one_line(message, 160)
        for key in ("error", "message", "detail"):
            if isinstance(data.get(key), str):
                return one_line(data[key], 160)
    return None


def _classify(status: int, body: bytes, retry_after: float | None, host: str) -> SourceError:
    detail = _error_message(body)
    suffix = f": {detail}" if detail else ""
    if status == 429:
        return SourceError(
            ErrorKind.RATE_LIMITED,
            f"rate limited by {host}{suffix}",
            status=status,
            retry_after=retry_after if retry_after is not None else RETRY_AFTER_DEFAULT,
        )
    if status in (401, 403):
        return SourceError(
            ErrorKind.AUTH, f"HTTP {status} from {host}, check API key{suffix}", status=status
        )
    kind = ErrorKind.HTTP_5XX if status >= 500 else ErrorKind.HTTP_4XX
    return SourceError(
        kind, f"HTTP {status} from {host}{suffix}", status=status, retry_after=retry_after
    )


def decode_json(body: bytes) -> Any:
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


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    policy: HttpPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> Any:
    """GET ``url`` and return its JSON body, within the policy's deadline, cap and attempts.

    Raises SourceError whose message never contains the query string or a header value.
    """
    policy = policy or HttpPolicy()
    rng = rng or random.Random()
    host = httpx.URL(url).host or "upstream"
    started = time.monotonic()
    try:
        async with asyncio.timeout(policy.deadline):
            for attempt in range(policy.attempts):
                last = attempt == policy.attempts - 1
                try:
                    return await _attempt(client, url, params, headers, policy, host)
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


async def _attempt(
    client: httpx.AsyncClient,
    url: str,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
    policy: HttpPolicy,
    host: str,
) -> Any:
    try:
        async with client.stream("GET", url, params=params, headers=headers) as response:
            body = await _read_capped(response, policy.body_cap)
            status = response.status_code
            content_type = response.headers.get("content-type", "")
            retry_after = parse_retry_after(response.headers.get("retry-after"))
    except httpx.TimeoutException as exc:
        raise SourceError(ErrorKind.TIMEOUT, f"timed out talking to {host}") from exc
    except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
        raise SourceError(ErrorKind.CONNECT, f"cannot connect to {host}") from exc
    except httpx.RemoteProtocolError as exc:
        raise SourceError(ErrorKind.TRUNCATED, f"{host} closed the connection mid-answer") from exc
    except httpx.TransportError as exc:
        raise SourceError(
            ErrorKind.CONNECT, f"network error talking to {host}: {type(exc).__name__}"
        ) from exc
    if 300 <= status < 400:
        raise SourceError(
            ErrorKind.HTTP_4XX, f"HTTP {status} redirect from {host} not followed", status=status
        )
    if status >= 400:
        raise _classify(status, body, retry_after, host)
    if "json" not in content_type.lower():
        raise SourceError(
            ErrorKind.BAD_CONTENT_TYPE,
            f"{host} answered {one_line(content_type or 'no content type', 60)}, not JSON",
            status=status,
        )
    try:
        return decode_json(body)
    except SourceError as error:
        error.status = status
        raise
