"""Request-supplied text against ``serve`` and ``ssh-serve``: what the pages, the close reasons,
the client's terminal and the operator's log (serve logs to its stderr, a terminal) get.

Nothing a request brings (path, query, Origin, X-Forwarded-For, SSH user name, subsystem, exec
command, TERM, env) is echoed into a page or to the client; what is logged is percent-encoded,
repr-escaped or cut down to a character set, never raw: no control, escape, bidi or zero-width
character reaches a log line, and each is one line of bounded length.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_parse
from prometheus_client.parser import text_string_to_metric_families as text_parse

from cache.metrics_view import (
    CoinFigures,
    Coins,
    DeviceRewards,
    FleetCount,
    GpuModelFigures,
    MetricsView,
    SourceHealth,
)
from cache.queries import MetricValue
from explorer import serve_page
from explorer.metrics_listen import families
from explorer.serve_app import ServeSettings, ViewerServer, peer
from explorer.ssh_session import ServeSettings as SshSettings
from explorer.ssh_session import ViewerServer as SshServer
from explorer.ssh_session import ViewerSession, viewer_env
from tests.corpus import ALL

TOKEN = "t" * 43
RAW = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
                 "\u2060-\u2069\ufeff\ufff9-\ufffb]")  # fmt: skip
"""What no log line and no page may carry raw (a line break included)."""
SHORT = [p for p in ALL if len(p) <= 200 and "\ud800" not in p]
"""Corpus strings a request can carry whole (a lone surrogate cannot be sent at all)."""
LINE_MAX = 400


def assert_clean_lines(lines: list[str]) -> None:
    assert lines
    for line in lines:
        found = RAW.search(line)
        assert found is None, repr(line[:200])
        assert len(line) <= LINE_MAX, len(line)


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[ViewerServer, TestServer]]:
    settings = ServeSettings(token=TOKEN, viewer_args=[], sessions_dir=tmp_path / "sessions")
    server = ViewerServer(settings)
    async with TestServer(await server._make_app(), host="127.0.0.1", access_log=None) as test:
        server.use_port(int(test.port or 0))
        yield server, test


def serve_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "explorer.serve"]


async def raw_request(port: int, head: bytes) -> bytes:
    """One request written as given (no client library to encode it); the reply's head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await reader.read(4096)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def body_of(reply: bytes) -> str:
    return reply.partition(b"\r\n\r\n")[2].decode("utf-8", errors="replace")


# -- serve ---------------------------------------------------------------------------------------
async def test_a_hostile_path_and_query_are_never_echoed_and_logged_encoded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "explorer.serve")
    async with serving(tmp_path) as (server, test):
        async with TestClient(test) as client:
            for payload in SHORT:
                reply = await client.get(f"/{payload}", params={"token": payload, "q": payload})
                assert reply.status == 401
                assert await reply.text() == serve_page.UNAUTHORIZED  # nothing of the request
                reply = await client.get(f"/static/{payload}", params={"q": payload})
                assert reply.status == 401
                assert await reply.text() == serve_page.UNAUTHORIZED
        assert server.spawned == 0
    lines = serve_lines(caplog)
    assert len(lines) == 2 * len(SHORT)
    assert_clean_lines(lines)
    assert "%1B%5B2J" in " ".join(lines)  # "x\x1b[2J\x1b[H" as percent-encoded
    assert not any("token=" in line or "q=" in line for line in lines)  # never the query


async def test_raw_bytes_in_the_request_line_are_refused_before_any_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "explorer.serve")
    targets = [
        "/\u202eabc",  # bidi override, as UTF-8
        "/a\x9b2Jb",  # C1 CSI, as UTF-8
        "/a\u200bb",
        "/\ufeffname",
        "/ｆｕｌｌｗｉｄｔｈ",
    ]
    async with serving(tmp_path) as (server, test):
        for target in targets:
            head = b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            reply = await raw_request(int(test.port or 0), head)
            assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n")[0]
            assert target[1:].encode() not in reply  # the 400 body does not echo it
        head = b"GET /\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n"  # a raw escape byte
        assert b" 400 " in (await raw_request(int(test.port or 0), head)).split(b"\r\n")[0]
        assert server.spawned == 0
    assert serve_lines(caplog) == []  # aiohttp refused them: our handlers never saw them


async def test_a_hostile_origin_is_logged_escaped_and_cut_and_the_403_echoes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "explorer.serve")
    origins = [
        "http://e\u202evil.example",
        "http://a\x9b2Jb",
        "http://a\u200bb\u2066x\u2069",
        "[link=https://evil.example]x[/link]",
        "http://" + "\U0001f9e8" * 500,
        "http://" + "Z" + "\u0301" * 2000,
    ]
    async with serving(tmp_path) as (server, test):
        for origin in origins:
            head = (
                "GET /ws HTTP/1.1\r\nHost: x\r\n"
                f"Cookie: {server.cookie}={TOKEN}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
                "X-Forwarded-For: 203.0.113.9\u202e\u200b[b]\r\n\r\n"
            ).encode()
            reply = await raw_request(int(test.port or 0), head)
            assert b" 403 " in reply.split(b"\r\n")[0]
            assert body_of(reply) == serve_page.FORBIDDEN_ORIGIN
        assert server.spawned == 0
    lines = serve_lines(caplog)
    assert len(lines) == len(origins)
    assert_clean_lines(lines)
    assert all("forwarded for 203.0.113.9[b])" in line for line in lines)


async def test_a_download_key_not_held_is_a_404_that_echoes_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path) as (server, test):
        async with TestClient(test) as client:
            for payload in SHORT:
                reply = await client.get(
                    f"/download/{payload}", headers={"Cookie": f"{server.cookie}={TOKEN}"}
                )
                assert reply.status == 404
                # a key with a "/" in it matches no route: aiohttp's own 404, which echoes nothing
                assert await reply.text() in ("404: no such download\n", "404: Not Found")
                assert reply.headers["Content-Type"].startswith("text/plain")
                assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert server.spawned == 0


@pytest.mark.parametrize("payload", ALL)
def test_a_forwarded_for_header_is_cut_to_address_characters(payload: str) -> None:
    value = payload[:2000].encode("utf-8", "surrogatepass").decode("latin-1")  # as aiohttp has it
    request = make_mocked_request("GET", "/", headers={"X-Forwarded-For": value})
    logged = peer(request)
    assert re.fullmatch(r"[^()]*\(forwarded for [0-9A-Za-z.:\[\], -]{0,80}\)", logged), logged


def test_the_pages_hold_no_request_text_and_escape_the_configured_title() -> None:
    page = serve_page.index_page(title='<script>x</script>"[bold]', nonce="n0", font_size=16)
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;&#34;[bold]" in page
    for page in (serve_page.UNAUTHORIZED, serve_page.FORBIDDEN_ORIGIN, serve_page.full_page(3)):
        assert not RAW.search(page.replace("\n", ""))
    assert serve_page.full_message(3) == "3 sessions are open; try later."


# -- ssh-serve -----------------------------------------------------------------------------------
class Channel:
    """What a session writes to the client, and its exit status."""

    def __init__(self) -> None:
        self.written = b""
        self.status: int | None = None

    def write(self, data: bytes) -> None:
        self.written += data

    def exit(self, status: int) -> None:
        self.status = status

    def get_environment(self) -> dict[str, str]:
        return {}


def ssh_settings(tmp_path: Path) -> SshSettings:
    keys = tmp_path / "authorized_keys"
    keys.write_text(asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode())
    return SshSettings(keys, 1, 60.0, tmp_path / "ssh-sessions", [])


def ssh_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "explorer.ssh_serve"]


def test_ssh_user_names_subsystems_and_commands_are_logged_escaped_or_not_at_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "explorer.ssh_serve")
    settings = ssh_settings(tmp_path)
    stranger = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    for payload in SHORT:
        server = SshServer(settings)
        server.peer = "192.0.2.7:50000"
        assert server.begin_auth(payload) is True
        assert server.validate_public_key(payload, stranger) is False
        server.connection_lost(None)  # refused: no authorized key
        session = ViewerSession(settings, server.peer, "SHA256:abc")
        assert session.subsystem_requested(payload) is False
        assert session.exec_requested(payload) is False
    lines = ssh_lines(caplog)
    assert len(lines) == 3 * len(SHORT)
    assert_clean_lines(lines)
    refused_exec = [line for line in lines if line.startswith("refused exec")]
    assert refused_exec == ["refused exec from 192.0.2.7:50000 (SHA256:abc)"] * len(SHORT)


def test_the_client_is_told_only_the_server_s_own_words(tmp_path: Path) -> None:
    settings = ssh_settings(tmp_path)
    no_pty = ViewerSession(settings, "192.0.2.7:50000", "SHA256:abc")
    channel = Channel()
    no_pty.connection_made(channel)  # type: ignore[arg-type]
    no_pty.session_started()  # no pty was asked for: refused
    assert channel.written == (
        b"depin-explorer: ssh-serve shows a terminal console: connect with a terminal (ssh -t)\r\n"
    )
    settings.sessions.add(no_pty)  # the one session the cap allows
    full = ViewerSession(settings, "192.0.2.7:50001", "SHA256:abc")
    channel = Channel()
    full.connection_made(channel)  # type: ignore[arg-type]
    assert full.pty_requested("\x1b]0;PWNED\x07", (80, 24, 0, 0), {}) is True
    full.session_started()
    assert channel.written == b"depin-explorer: 1 sessions are open; try later\r\n"
    assert channel.status == 2


@pytest.mark.parametrize("payload", ALL)
def test_a_hostile_term_or_env_value_never_reaches_the_viewer(payload: str) -> None:
    client: dict[str, Any] = {"LANG": payload, "LC_ALL": payload, "NO_COLOR": payload}
    env = viewer_env(payload, client, {"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "TERM": "xterm-256color"}


# -- /metrics ------------------------------------------------------------------------------------
def hostile_view(payloads: list[str]) -> MetricsView:
    """Every label value a scrape exports from the cache, a corpus string."""
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    return MetricsView(
        now=at,
        networks=[MetricValue(p, p, 1.0, p, "ionet", at) for p in payloads],
        gpu_models=[GpuModelFigures(p, p, 1.0, 2, 3, at) for p in payloads],
        coins=Coins(payloads[0], at, [CoinFigures(p, p, 1.0, 2.0, 3.0) for p in payloads]),
        fleet=[FleetCount(p, p, 1, 2, 3) for p in payloads],
        rewards=[DeviceRewards(p, p, p, p, 1.0, 2.0) for p in payloads],
        alerts_firing={(p, "warning"): 1 for p in payloads},
        sources=[SourceHealth(p, "ok", at, 1.0, at, 0) for p in payloads],
    )


@pytest.mark.parametrize("accept", ["text/plain", "application/openmetrics-text"])
def test_metrics_label_values_round_trip_and_add_no_line(accept: str) -> None:
    """Metric names are fixed; a label value from the cache is escaped by prometheus_client:
    a line break or quote in it cannot start a series of its own."""
    payloads = [p[:300] for p in SHORT + [p for p in ALL if len(p) > 200]]
    payloads = [p for p in dict.fromkeys(payloads) if "\ud800" not in p]
    payloads += ['x"} 1\ndepin_forged{a="b', "trailing\\", "a\r\nb", "\u2028sep"]
    registry = CollectorRegistry()
    view = hostile_view(payloads)

    class Fixed:
        def collect(self) -> list[Any]:
            return families(view)

    registry.register(Fixed())  # type: ignore[arg-type]
    encoder, _ = choose_encoder(accept)
    body = encoder(registry).decode("utf-8")
    parse = openmetrics_parse if "openmetrics" in accept else text_parse
    parsed = list(parse(body))
    assert {f.name for f in parsed} == {f.name for f in families(view)}  # none forged
    samples = [s for f in parsed for s in f.samples]
    lines = [line for line in body.split("\n") if line and not line.startswith("#")]
    assert len(lines) == len(samples)  # no value broke out onto a line of its own
    seen = {v for s in samples for v in s.labels.values()}
    assert set(payloads) <= seen  # each value exported as it is stored
