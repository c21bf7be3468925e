"""``serve``'s server at the HTTP level: the token, the cookie, the Origin, the cap, the idle end.

aiohttp's test server runs ViewerServer's app on loopback; a refused request must start no
viewer (``server.spawned`` and the process table say so). The sessions that do start run the
real read-only viewer (``python -m explorer --viewer browser``) on a prepared cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp.test_utils import TestClient, TestServer
from textual_serve.download_manager import DownloadManager

from explorer.serve_app import ServeSettings, ViewerServer, ViewerService
from tests.support.browser import screen_text
from tests.ui.appkit import store_live, store_sample

TOKEN = "t" * 43
FRAME_TIMEOUT = 60.0
POLL = 0.1

Serving = Callable[..., contextlib.AbstractAsyncContextManager[tuple[ViewerServer, TestClient]]]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    db = tmp_path / "cache.db"
    store_sample(db)
    store_live(db)
    return db


@pytest.fixture
def serving(tmp_path: Path, cache: Path) -> Serving:
    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[ViewerServer, TestClient]]:
        options: dict[str, Any] = {
            "token": TOKEN,
            "viewer_args": ["--db", str(cache)],
            "sessions_dir": tmp_path / "sessions",
        }
        settings = ServeSettings(**{**options, **overrides})
        server = ViewerServer(settings)
        test_server = TestServer(await server._make_app(), host="127.0.0.1")
        # without aiohttp's access log, as serve runs it (TestServer() would drop the option)
        await test_server.start_server(access_log=None)
        async with test_server:
            server.use_port(int(test_server.port or 0))
            async with TestClient(test_server) as client:
                yield server, client

    return start


def cookie(server: ViewerServer, value: str = TOKEN) -> dict[str, str]:
    return {"Cookie": f"{server.cookie}={value}"}


def origin(client: TestClient) -> str:
    return f"http://127.0.0.1:{client.port}"


_EARLIER: set[int] = set()


@pytest.fixture(autouse=True)
def _earlier_children() -> None:
    """Processes other tests left to this one (multiprocessing's resource tracker
    lives as long as pytest) are not the server's: children() counts only newer ones."""
    _EARLIER.clear()
    _EARLIER.update(child.pid for child in psutil.Process().children(recursive=True))


def children() -> list[psutil.Process]:
    """The server's live child processes started during this test."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.pid not in _EARLIER and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
    return alive


def serve_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The serve logger's own lines (other loggers may propagate to caplog too)."""
    return [r.getMessage() for r in caplog.records if r.name == "explorer.serve"]


async def until(check: Callable[[], object], within: float, what: str) -> None:
    for _ in range(int(within / POLL) + 1):
        if check():
            return
        await asyncio.sleep(POLL)
    raise TimeoutError(f"{what} not within {within:g} s")


async def read_until(
    ws: aiohttp.ClientWebSocketResponse, needle: str, within: float = FRAME_TIMEOUT
) -> tuple[str, list[Any]]:
    """The screen text received until ``needle`` shows, and the text messages seen meanwhile."""
    received, texts = b"", []
    async with asyncio.timeout(within):
        while needle not in screen_text(received):
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                received += message.data
            elif message.type == aiohttp.WSMsgType.TEXT:
                texts.append(message.json())
            else:
                raise AssertionError(f"the session ended first: {message}")
    return screen_text(received), texts


async def session(server: ViewerServer, client: TestClient) -> aiohttp.ClientWebSocketResponse:
    return await client.ws_connect(
        "/ws?width=120&height=40", headers={**cookie(server), "Origin": origin(client)}
    )


# -- the token ---------------------------------------------------------------------------------


async def test_without_the_token_every_path_is_401_and_no_viewer_starts(serving: Serving) -> None:
    async with serving() as (server, client):
        for path in ("/", "/static/js/textual.js", "/download/some-key", "/ws", "/?fontsize=20"):
            reply = await client.get(path, allow_redirects=False)
            assert reply.status == 401, path
            assert "access token" in await reply.text()
            assert "Set-Cookie" not in reply.headers
        assert server.spawned == 0 and not server.sessions
        assert children() == []


async def test_a_wrong_token_is_401_in_the_url_and_in_the_cookie(serving: Serving) -> None:
    async with serving() as (server, client):
        for wrong in ("", "x", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
            reply = await client.get("/", params={"token": wrong}, allow_redirects=False)
            assert reply.status == 401, wrong
            assert "Set-Cookie" not in reply.headers
            reply = await client.get("/", headers=cookie(server, wrong))
            assert reply.status == 401, wrong
        assert server.spawned == 0


async def test_the_token_becomes_a_strict_httponly_cookie_and_leaves_the_url(
    serving: Serving,
) -> None:
    async with serving() as (server, client):
        reply = await client.get("/", params={"token": TOKEN}, allow_redirects=False)
        assert reply.status == 303
        assert reply.headers["Location"] == "/"
        set_cookie = reply.headers["Set-Cookie"]
        assert set_cookie.startswith(f"{server.cookie}={TOKEN};")
        assert server.cookie == f"depin_explorer_token_{client.port}"  # one per port
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
            assert attribute in set_cookie, set_cookie
        assert "Secure" not in set_cookie  # plain http on loopback: a Secure cookie is not kept
        page = await client.get("/", headers=cookie(server))
        assert page.status == 200
        assert "textual-terminal" in await page.text()
        assert server.spawned == 0  # the page alone starts nothing; its websocket does


async def test_from_another_site_the_token_lands_on_a_same_origin_step(serving: Serving) -> None:
    """A Strict cookie set on a cross-site redirect chain is not sent on its next hop."""
    async with serving() as (server, client):
        reply = await client.get(
            "/",
            params={"token": TOKEN},
            headers={"Sec-Fetch-Site": "cross-site"},
            allow_redirects=False,
        )
        assert reply.status == 200
        assert '<meta http-equiv="refresh" content="0; url=/">' in await reply.text()
        assert "SameSite=Strict" in reply.headers["Set-Cookie"]


async def test_behind_a_tls_proxy_the_cookie_is_secure_and_https_origins_match(
    serving: Serving,
) -> None:
    async with serving() as (server, client):
        reply = await client.get(
            "/",
            params={"token": TOKEN},
            headers={"X-Forwarded-Proto": "https"},
            allow_redirects=False,
        )
        assert "Secure" in reply.headers["Set-Cookie"]
        host = f"127.0.0.1:{client.port}"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(
                "/ws", headers={**cookie(server), "Origin": f"https://{host}"}
            )  # no proxy said https: an https page is not this one
        assert refused.value.status == 403
        assert server.spawned == 0


# -- the page ----------------------------------------------------------------------------------

_URLS = re.compile(r"""(?:src|href|url)\s*[=(]\s*["']?([^"')\s>]+)""")


def foreign_urls(html: str) -> list[str]:
    """Every URL in the page that is not a same-origin path."""
    urls = _URLS.findall(html)
    assert urls, "no URL found: the pattern is wrong"
    return [u for u in urls if not u.startswith("/") or u.startswith("//")]


async def test_the_page_names_only_same_origin_urls_under_a_strict_policy(
    serving: Serving,
) -> None:
    import textual_serve

    packaged = Path(textual_serve.__file__).parent / "templates" / "app_index.html"
    # the check sees what the packaged page fetches from the internet (a Google font) …
    assert any("googleapis" in u for u in foreign_urls(packaged.read_text()))
    async with serving() as (server, client):
        reply = await client.get("/", headers=cookie(server))
        html = await reply.text()
        assert foreign_urls(html) == []  # … and that ours fetches nothing from elsewhere
        assert "googleapis" not in html and not re.search(r"(https?|wss?):?//", html)
        policy = reply.headers["Content-Security-Policy"]
        nonce = re.search(r'<script nonce="([^"]+)">', html)
        assert nonce is not None
        assert f"'nonce-{nonce.group(1)}'" in policy
        for directive in ("default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"):
            assert directive in policy
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["Cache-Control"] == "no-store"
        for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            assert (await client.get(path, headers=cookie(server))).status == 200, path
        assert (await client.get("/static/", headers=cookie(server))).status in (403, 404)


# -- the websocket -----------------------------------------------------------------------------


async def test_a_websocket_without_the_cookie_is_401_and_starts_nothing(serving: Serving) -> None:
    async with serving() as (server, client):
        for headers in ({}, cookie(server, "wrong")):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect("/ws", headers={**headers, "Origin": origin(client)})
            assert refused.value.status == 401
        assert server.spawned == 0
        assert children() == []


async def test_a_websocket_from_another_origin_is_403_and_starts_nothing(
    serving: Serving,
) -> None:
    async with serving() as (server, client):
        others = [
            {"Origin": "http://evil.example"},
            {"Origin": f"http://127.0.0.1:{client.port + 1}"},  # same host, another port
            {"Origin": f"http://localhost:{client.port}"},  # another name for the host
            {"Origin": "null"},
            {},  # no Origin at all
        ]
        for other in others:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect("/ws", headers={**cookie(server), **other})
            assert refused.value.status == 403, other
        assert server.spawned == 0
        assert children() == []


async def test_a_session_is_a_read_only_viewer_reaped_when_the_tab_closes(
    serving: Serving,
    cache: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, "explorer.serve")
    monkeypatch.setenv("COINGECKO_API_KEY", "CG-server-only-key")
    monkeypatch.setenv("IONET_TOKEN", "io-server-only-token")
    async with serving() as (server, client):
        ws = await session(server, client)
        text, _ = await read_until(ws, "Tracked market cap")
        assert "read-only viewer" in text
        (service,) = server.sessions.values()
        assert service.pid is not None
        viewer = psutil.Process(service.pid)
        argv = viewer.cmdline()
        assert argv[:5] == [sys.executable, "-m", "explorer", "--viewer", "browser"]
        state = Path(argv[argv.index("--state-file") + 1])
        assert state.parent == tmp_path / "sessions"
        assert argv[argv.index("--db") + 1] == str(cache)
        environment = viewer.environ()  # a viewer polls nothing: no upstream's credentials
        assert "COINGECKO_API_KEY" not in environment and "IONET_TOKEN" not in environment
        assert environment["TEXTUAL_DRIVER"].endswith("WebDriver")
        await ws.close()
        await until(lambda: not server.sessions, 15, "the session's end")
        assert not psutil.pid_exists(service.pid) or viewer.status() == psutil.STATUS_ZOMBIE
        assert not await asyncio.to_thread(state.exists)  # the session's own state goes with it
        assert children() == []
    lines = serve_lines(caplog)
    assert any(line.startswith("session ") and "started for 127.0.0.1" in line for line in lines)
    assert any("ended for 127.0.0.1" in line and "viewer exit 0" in line for line in lines), lines
    assert TOKEN not in caplog.text


async def test_the_session_after_the_cap_gets_a_message_and_no_viewer(serving: Serving) -> None:
    async with serving(max_sessions=1) as (server, client):
        first = await session(server, client)
        await read_until(first, "Tracked market cap")
        page = await client.get("/", headers=cookie(server))
        assert page.status == 503
        assert "1 session is open; try later." in await page.text()
        second = await session(server, client)
        message = await asyncio.wait_for(second.receive(), 10)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert message.data == 1013  # try again later
        assert message.extra == "1 session is open; try later."
        assert server.spawned == 1 and len(children()) == 1
        await first.close()
        await until(lambda: not server.sessions, 15, "the first session's end")
        assert (await client.get("/", headers=cookie(server))).status == 200  # room again


async def test_an_idle_session_ends_with_a_message_and_input_keeps_it_open(
    serving: Serving,
) -> None:
    async with serving(idle_timeout=3.0) as (server, client):
        ws = await session(server, client)
        typing = asyncio.Event()
        typing.set()

        async def type_keys() -> None:
            while typing.is_set():  # a key every half second, from the first moment on
                await ws.send_json(["stdin", "\x1b[B"])
                await asyncio.sleep(0.5)

        typist = asyncio.create_task(type_keys())
        await read_until(ws, "Tracked market cap")
        (service,) = server.sessions.values()
        drain = asyncio.create_task(closing(ws, within=60))
        await asyncio.sleep(7.0)  # more than twice the timeout, typing all along: still open
        assert server.sessions and service.ended_by is None
        assert not drain.done()
        typing.clear()
        await typist
        loop = asyncio.get_running_loop()
        quiet = loop.time()
        message = await asyncio.wait_for(drain, 15)
        assert loop.time() - quiet >= 2.0  # the timeout counts from the last key
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert message.extra == "Session ended: no input for 3 seconds. Reload to start a new one."
        await until(lambda: not server.sessions, 15, "the idle session's end")
        assert service.ended_by == "idle timeout"
        assert service.pid is not None and not psutil.pid_exists(service.pid)


async def test_an_export_downloads_only_with_the_token(serving: Serving) -> None:
    async with serving() as (server, client):
        ws = await session(server, client)
        await read_until(ws, "Tracked market cap")
        await ws.send_json(["stdin", "2"])  # Rankings: a table to export
        await read_until(ws, "DePIN rankings")
        await ws.send_json(["stdin", "e"])
        texts: list[Any] = []
        async with asyncio.timeout(FRAME_TIMEOUT):
            while not any(t[0] == "deliver_file_start" for t in texts):
                message = await ws.receive()
                assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
                if message.type == aiohttp.WSMsgType.TEXT:
                    texts.append(message.json())
        key = next(t[1] for t in texts if t[0] == "deliver_file_start")
        assert (await client.get(f"/download/{key}")).status == 401  # the URL alone is not enough
        reply = await client.get(f"/download/{key}", headers=cookie(server))
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in reply.headers["Content-Disposition"]
        body = await reply.text()
        assert "io.net" in body and len(body.splitlines()) > 2, body[:300]
        again = await client.get(f"/download/{key}", headers=cookie(server))
        assert again.status == 404  # single use
        await ws.close()
        await until(lambda: not server.sessions, 15, "the session's end")


async def closing(ws: aiohttp.ClientWebSocketResponse, within: float = 20) -> aiohttp.WSMessage:
    """Read (and drop) output until the server closes the session; the close message."""
    async with asyncio.timeout(within):
        while (message := await ws.receive()).type in (
            aiohttp.WSMsgType.BINARY,
            aiohttp.WSMsgType.TEXT,
        ):
            pass
    return message


async def test_q_in_the_viewer_ends_the_session(
    serving: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "explorer.serve")
    async with serving() as (server, client):
        ws = await session(server, client)
        await read_until(ws, "Tracked market cap")
        # a hostile resize is clamped (1000 x 80 here), not handed on to grow the viewer
        await ws.send_json(["resize", {"width": 10**9, "height": "many"}])
        await read_until(ws, "Tracked market cap")  # redrawn at the clamped size
        await ws.send_json(["stdin", "q"])
        message = await closing(ws)
        assert message.type == aiohttp.WSMsgType.CLOSE
        await until(lambda: not server.sessions, 15, "the session's end")
    assert "(the viewer quit; viewer exit 0; 0 open)" in caplog.text


async def test_a_viewer_that_cannot_start_ends_its_session_with_a_word(
    serving: Serving, cache: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.toml"  # the config vanished after serve started: exit 2
    async with serving(viewer_args=["--db", str(cache), "--config", str(missing)]) as (
        server,
        client,
    ):
        ws = await session(server, client)
        message = await closing(ws)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert message.extra.startswith("The viewer stopped (exit status 2)"), message
        await until(lambda: not server.sessions, 15, "the session's end")
        assert children() == []


async def test_a_screenshot_downloads_under_the_policy_that_blocks_its_font_link(
    serving: Serving,
) -> None:
    """Textual's SVG names a Fira Code font on cdnjs; served inline here, the CSP stops it."""
    async with serving() as (server, client):
        ws = await session(server, client)
        await read_until(ws, "Tracked market cap")
        for keys in ("\x10", "screenshot", "\r"):  # ctrl+p, the palette's Screenshot, enter
            await ws.send_json(["stdin", keys])
            await asyncio.sleep(0.8)
        texts: list[Any] = []
        async with asyncio.timeout(FRAME_TIMEOUT):
            while not any(t[0] == "deliver_file_start" for t in texts):
                message = await ws.receive()
                assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
                if message.type == aiohttp.WSMsgType.TEXT:
                    texts.append(message.json())
        key = next(t[1] for t in texts if t[0] == "deliver_file_start")
        reply = await client.get(f"/download/{key}", headers=cookie(server))
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("image/svg+xml")
        svg = await reply.text()
        assert "Tracked market cap" in svg.replace("&#160;", " ")
        assert "https://cdnjs.cloudflare.com" in svg  # what the policy has to stop
        policy = reply.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "font-src 'self'" in policy
        assert "script-src 'none'" in policy
        await ws.close()
        await until(lambda: not server.sessions, 15, "the session's end")


async def test_stopping_the_server_ends_every_session(serving: Serving) -> None:
    async with serving(max_sessions=2) as (server, client):
        sockets = [await session(server, client) for _ in range(2)]
        for ws in sockets:
            await read_until(ws, "Tracked market cap")
        pids = [s.pid for s in server.sessions.values()]
        assert len(pids) == 2
    # the test server's cleanup ran on_shutdown: the browsers are told, the viewers are gone
    for ws in sockets:
        assert ws.closed
    assert not server.sessions
    assert all(pid is not None and not psutil.pid_exists(pid) for pid in pids)


async def test_a_viewer_that_ignores_quit_and_sigterm_is_killed(tmp_path: Path) -> None:
    """AppService.stop() only asks; ViewerService.end() makes sure, within bounds."""
    stubborn = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "sys.stdout.write('__GANGLION__\\n'); sys.stdout.flush()\n"
        "sys.stdin.close()\n"
        "time.sleep(60)\n"
    )
    sent: list[bytes] = []

    async def write(data: Any) -> None:
        sent.append(data)

    async def close() -> None:
        pass

    service = ViewerService(
        [sys.executable, "-c", stubborn],
        write_bytes=write,
        write_str=write,
        close=close,
        download_manager=DownloadManager(),
    )
    await service.start(80, 24)
    await until(lambda: service.pid is not None, 5, "the process")
    assert service.pid is not None
    process = psutil.Process(service.pid)
    await until(lambda: process.status() != psutil.STATUS_RUNNING, 5, "the stub to sleep")
    loop = asyncio.get_running_loop()
    started = loop.time()
    status = await service.end(grace=0.5)
    assert status == -9  # SIGKILL, after "quit" and SIGTERM were ignored
    assert loop.time() - started < 5
    assert not psutil.pid_exists(service.pid)


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"Host": "console.example", "Origin": "http://console.example"}, True),
        ({"Host": "console.example", "Origin": "https://console.example"}, False),
        # behind a TLS proxy that passes Host and says https (docs/remote.md)
        (
            {
                "Host": "console.example",
                "Origin": "https://console.example",
                "X-Forwarded-Proto": "https",
            },
            True,
        ),
        (
            {
                "Host": "console.example",
                "Origin": "https://evil.example",
                "X-Forwarded-Proto": "https",
            },
            False,
        ),
        ({"Host": "console.example:8443", "Origin": "https://console.example"}, False),
        ({"Host": "Console.Example", "Origin": "http://console.example/"}, True),
    ],
)
def test_the_origin_must_be_the_page_s_own(headers: dict[str, str], ok: bool) -> None:
    from aiohttp.test_utils import make_mocked_request

    server = ViewerServer(ServeSettings(token=TOKEN, viewer_args=[], sessions_dir=Path(".")))
    request = make_mocked_request("GET", "/ws", headers=headers)
    assert server._origin_ok(request) is ok


async def test_refusals_log_one_line_without_the_query(
    serving: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "explorer.serve")
    near_miss = TOKEN[:-1] + "u"  # a mistyped token is nearly the token: never logged
    async with serving() as (_, client):
        reply = await client.get("/%0Afake%20line", params={"token": near_miss})
        assert reply.status == 401
        reply = await client.get("/", params={"token": near_miss})
        assert reply.status == 401
    lines = serve_lines(caplog)
    assert len(lines) == 2
    assert all("\n" not in line and near_miss not in line for line in lines), lines
    assert near_miss not in caplog.text
    assert "refused GET /%0Afake%20line from 127.0.0.1: no valid token (401)" in lines


def test_the_log_names_a_proxy_s_client_unverified_and_cleaned() -> None:
    from aiohttp.test_utils import make_mocked_request

    from explorer.serve_app import peer

    plain = make_mocked_request("GET", "/")
    assert peer(plain) == (plain.remote or "?")
    proxied = make_mocked_request(
        "GET", "/", headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.1\x1b[31m<b>"}
    )
    # the escape character and the markup go; brackets stay (IPv6 addresses have them)
    assert peer(proxied).endswith("(forwarded for 203.0.113.9, 10.0.0.1[31mb)")


@pytest.mark.parametrize(
    ("given", "cells"),
    [(120, 120), (0, 1), (-5, 1), (10**9, 1000), ("40", 40), ("many", 80), (None, 80), (2.7, 2)],
)
def test_terminal_sizes_from_the_browser_are_clamped(given: object, cells: int) -> None:
    from explorer.serve_app import clamp_size

    assert clamp_size(given) == cells
