"""A loopback asyncio HTTP/1.1 fault server for the HTTP client tests (docs/reliability.md).

Each path is scripted with one or more behaviours, served in turn (the last one repeats): a plain
reply (status, headers, body, optionally a lying Content-Length), a 1-byte-per-interval drip, a
streamed body of any size that is never held in memory, a hang, and ready-made faults (429 with
every kind of Retry-After, a gzip bomb, a captive portal, truncated and deeply nested JSON, a
redirect). Every request is recorded (path, headers, time). The server binds 127.0.0.1 on a free
port, optionally speaks TLS, answers one request per connection, bounds every loop, and is
stopped (all connections cancelled) when its ``async with`` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import ssl
import subprocess
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON_TYPE = {"content-type": "application/json"}
HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 5.0
HANG_CAP = 60.0
REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; header names are lower case."""

    method: str
    target: str
    headers: dict[str, str]
    at: float

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


Behaviour = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


def _head(status: int, headers: Mapping[str, str], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"content-length: {length}")
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Reply:
    """A complete answer; ``content_length`` can lie (declare more than is sent, then close)."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: dict(JSON_TYPE))
    content_length: int | None = None

    async def __call__(self, request: Request, writer: asyncio.StreamWriter) -> None:
        length = len(self.body) if self.content_length is None else self.content_length
        writer.write(_head(self.status, self.headers, length) + self.body)
        await writer.drain()


@dataclass
class Drip:
    """Headers at once, then one body byte per ``interval``, at most ``max_bytes``, then close."""

    body: bytes = b"[" + b" " * 100 + b"]"
    interval: float = 1.0
    max_bytes: int = 30
    headers: Mapping[str, str] = field(default_factory=lambda: dict(JSON_TYPE))

    async def __call__(self, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, self.headers, len(self.body)))
        await writer.drain()
        for byte in self.body[: self.max_bytes]:
            await asyncio.sleep(self.interval)
            writer.write(bytes([byte]))
            await writer.drain()


@dataclass
class Stream:
    """A body of ``total`` bytes sent in chunks with back-pressure, never built in memory.

    The body is a JSON array of small numbers (valid JSON when complete).
    """

    total: int
    chunk_size: int = 64 * 1024
    headers: Mapping[str, str] = field(default_factory=lambda: dict(JSON_TYPE))

    async def __call__(self, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, self.headers, self.total))
        chunk = b"1," * (self.chunk_size // 2)
        sent = 1
        writer.write(b"[")
        while sent < self.total - 2:  # bounded by total
            part = chunk[: min(len(chunk), self.total - 2 - sent)]
            writer.write(part)
            sent += len(part)
            await writer.drain()
        writer.write(b"1]"[: self.total - sent])
        await writer.drain()


@dataclass
class Hang:
    """Read the request, never answer; bounded by ``max_seconds`` and by the server stopping."""

    max_seconds: float = HANG_CAP

    async def __call__(self, request: Request, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(self.max_seconds)


def json_reply(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON answer (``application/json`` unless ``headers`` say otherwise)."""
    return Reply(status, json.dumps(data).encode(), {**JSON_TYPE, **(headers or {})})


def rate_limited(retry_after: str | None = None, body: Any = None) -> Reply:
    """429 with an optional ``Retry-After`` header and CoinGecko's error object."""
    headers = {**JSON_TYPE, **({"retry-after": retry_after} if retry_after is not None else {})}
    data = body if body is not None else {"status": {"error_code": 429, "error_message": "slow"}}
    return Reply(429, json.dumps(data).encode(), headers)


def status_reply(status: int, body: bytes = b"") -> Reply:
    """A bare status (503, 500, 401 …) with an optional body."""
    return Reply(status, body, dict(JSON_TYPE))


def redirect(location: str, status: int = 302) -> Reply:
    """A redirect to ``location`` (another host, in the tests)."""
    return Reply(status, b"", {"location": location})


def captive_portal() -> Reply:
    """What a hotel Wi-Fi answers instead of the API: 200, text/html."""
    body = b"<html><body><h1>Welcome</h1>Please accept the terms to go online.</body></html>"
    return Reply(200, body, {"content-type": "text/html; charset=utf-8"})


def truncated_body(declared: int = 1000, sent: int = 97) -> Reply:
    """Content-Length ``declared`` but only ``sent`` bytes, then the connection closes."""
    return Reply(200, (b'[{"id": "x", "name": "' + b"y" * sent)[:sent], content_length=declared)


def truncated_json() -> Reply:
    """A complete HTTP answer whose JSON stops half-way."""
    return Reply(200, b'[{"id": "bitcoin", "name": "Bitc')


def deep_json(depth: int = 100_000) -> Reply:
    """``[`` × depth then ``]`` × depth: valid JSON that recursive parsers choke on."""
    return Reply(200, b"[" * depth + b"]" * depth)


@functools.lru_cache(maxsize=2)
def gzip_bomb_bytes(decoded: int = 200 * 1024 * 1024) -> bytes:
    """gzip of a JSON array of zeros, ``decoded`` bytes long, built in 1 MiB steps (~0.2 MB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"0," * (512 * 1024)
    parts = [compressor.compress(b"[")]
    parts += [compressor.compress(block) for _ in range((decoded - 3) // len(block))]
    parts += [compressor.compress(b"0]"), compressor.flush()]
    return b"".join(parts)


def gzip_bomb(decoded: int = 200 * 1024 * 1024) -> Reply:
    """A 0.2 MB gzip body inflating to ``decoded`` bytes, labelled ``Content-Encoding: gzip``."""
    return Reply(200, gzip_bomb_bytes(decoded), {**JSON_TYPE, "content-encoding": "gzip"})


class FaultServer:
    """An asyncio HTTP/1.1 server on 127.0.0.1:0 playing scripted behaviours per path.

    Args:
        routes: path -> behaviour or list of behaviours (served in turn, the last repeats).
            Unknown paths get a JSON 404.
        tls: a server-side SSL context to speak HTTPS.
    """

    def __init__(
        self,
        routes: Mapping[str, Behaviour | Iterable[Behaviour]] | None = None,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.routes: dict[str, list[Behaviour]] = {}
        self._served: dict[str, int] = {}
        for path, script in (routes or {}).items():
            self.set(path, script)
        self.tls = tls
        self.requests: list[Request] = []
        self.connections = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._closing = False

    def set(self, path: str, script: Behaviour | Iterable[Behaviour]) -> None:
        """Script ``path`` (again); its turn counter restarts."""
        self.routes[path] = [script] if callable(script) else list(script)
        self._served.pop(path, None)

    def hits(self, path: str | None = None) -> list[Request]:
        """The recorded requests, all or for one path."""
        return [r for r in self.requests if path is None or r.path == path]

    @property
    def port(self) -> int:
        assert self._port is not None, "server not started"
        return self._port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultServer:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.tls, limit=HEAD_LIMIT
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._closing = True
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            request = _parse(head)
            self.requests.append(request)
            await self._pick(request.path)(request, writer)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ssl.SSLError,
            ValueError,
        ):
            pass
        except asyncio.CancelledError:
            # Cancelled by __aexit__: end quietly (Python 3.11's stream callback would log a
            # cancelled handler as an unhandled exception). Any other cancellation propagates.
            if not self._closing:
                raise
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()

    def _pick(self, path: str) -> Behaviour:
        script = self.routes.get(path)
        if not script:
            return json_reply({"error": "not found"}, 404)
        turn = self._served.get(path, 0)
        self._served[path] = turn + 1
        return script[min(turn, len(script) - 1)]


def _parse(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers, time.monotonic())


# === TLS ========================================================================================


def self_signed_cert(directory: Path) -> tuple[Path, Path] | None:
    """Write a self-signed certificate for 127.0.0.1/localhost and its key; None if no tool.

    Uses the ``cryptography`` package when importable, else ``openssl req``.
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        _cert_with_cryptography(cert, key)
        return cert, key
    except ImportError:
        pass
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def _cert_with_cryptography(cert_path: Path, key_path: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context for :class:`FaultServer`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
