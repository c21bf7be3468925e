"""``depin-explorer serve`` with Debian's headless Chromium on loopback.

The real command serves a prepared cache; Chromium opens the printed URL. The Overview's figures
are read from the websocket frames the browser itself received (DevTools' Network events) before
the screenshot is taken and checked for drawn text; the PNG is kept under ``$CI_ARTIFACTS`` (or
the test's tmp_path), and its path printed. Without the token the browser gets 401 and no viewer
starts; a page of another origin cannot open the websocket; the cache file and its writer lock
are as they were after the session, and a closed tab leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil
import pytest
from aiohttp import web

from cache.lock import holder_pid
from tests.support.browser import Chromium, png_colours, require_chromium, screen_text
from tests.support.prom import _die_with_parent
from tests.ui.appkit import store_live, store_sample

pytestmark = pytest.mark.integration

START_TIMEOUT = 30.0
DRAW_TIMEOUT = 60.0
GONE_TIMEOUT = 20.0
POLL = 0.2
OVERVIEW = ("Tracked market cap", "$11.15B", "io.net", "+8.4%")
"""What the Overview draws from store_sample + store_live (the written CoinGecko page)."""


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    url: str
    log: Path

    @property
    def base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def viewers(self) -> list[psutil.Process]:
        """The server's live child processes (zombies are not viewers left behind)."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        alive = []
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
        return alive

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, db: Path, *extra: str) -> AsyncIterator[Served]:
    log = tmp_path / "serve.log"
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "explorer",
            "serve",
            "--db",
            str(db),
            "--port",
            "0",
            *extra,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            preexec_fn=_die_with_parent,
        )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        url = line.decode().strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url, (url, log.read_text())
        yield Served(proc, url, log)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_for(check: Callable[[], object], *, within: float, what: str) -> None:
    """Poll ``check`` (process tables, log files: nothing to await) until true, bounded."""
    for _ in range(int(within / POLL) + 1):
        if check():
            return
        await asyncio.sleep(POLL)
    raise TimeoutError(f"{what} not within {within:g} s")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("CI_ARTIFACTS") or tmp_path) / "serve"
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture
def chromium() -> str:
    return require_chromium()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    db = tmp_path / "cache.db"
    store_sample(db)
    store_live(db)
    return db


async def test_chromium_shows_the_overview_and_the_cache_is_left_as_it_was(
    tmp_path: Path, chromium: str, cache: Path
) -> None:
    before = digest(cache)
    async with (
        serving(tmp_path, cache) as served,
        Chromium(chromium, tmp_path / "profile") as browser,
    ):
        reply = await browser.navigate(served.url)
        assert "errorText" not in reply, reply

        def drawn() -> bool:
            text = screen_text(browser.ws_received())
            return all(figure in text for figure in OVERVIEW)

        await browser.wait_until(drawn, within=DRAW_TIMEOUT, what="the Overview's figures")
        # xterm.js draws what it received on its next animation frame; the page shows the
        # terminal once its first bytes arrived
        classes = await browser.evaluate("document.body.className")
        assert "-first-byte" in classes, classes
        await asyncio.sleep(1.0)
        shot = await browser.screenshot(artifacts(tmp_path) / "serve-overview.png")
        print(f"screenshot: {shot}")

        # the token left the address bar for an HttpOnly cookie scripts cannot read
        assert await browser.evaluate("location.href") == f"{served.base}/"
        assert await browser.evaluate("document.cookie") == ""
        # nothing but this server was asked for anything (fonts and scripts are local)
        asked = [url for url in browser.requests() if not url.startswith("about:")]
        assert asked, "the page asked for nothing?"
        ws_base = served.base.replace("http:", "ws:", 1)
        foreign = [u for u in asked if not u.startswith((f"{served.base}/", f"{ws_base}/"))]
        assert not foreign, foreign
        assert (served.url, 303) in browser.responses()  # the cookie set, then the page
        assert (f"{served.base}/", 200) in browser.responses()

        # keys reach the viewer with no click first (the page focuses the terminal)
        await browser.press("2")
        await browser.wait_until(
            lambda: "DePIN rankings" in screen_text(browser.ws_received()),
            within=DRAW_TIMEOUT,
            what="the Rankings screen after 2",
        )

        viewers = served.viewers()
        assert len(viewers) == 1, viewers
        assert "--viewer" in viewers[0].cmdline() and "browser" in viewers[0].cmdline()
        assert holder_pid(cache) is None  # a viewer never takes the writer lock

        # the screenshot has the console drawn in it: text colours on the top rows, not one
        # dialog's background
        width, height, colours = png_colours(shot, rows=60)
        assert (width, height) == (1280, 900)
        assert len(colours) > 20, len(colours)

        await browser.navigate("about:blank")  # the tab leaves: its viewer must end
        await wait_for(lambda: not served.viewers(), within=GONE_TIMEOUT, what="no viewer left")
        await wait_for(
            lambda: "ended for 127.0.0.1" in served.log_text(), within=5, what="the end logged"
        )
        log = served.log_text()
    assert "started for 127.0.0.1" in log
    token = served.url.split("token=", 1)[1]
    assert token not in log  # the log never carries the token
    assert digest(cache) == before
    assert holder_pid(cache) is None


async def test_without_the_token_chromium_gets_401_and_no_viewer_starts(
    tmp_path: Path, chromium: str, cache: Path
) -> None:
    async with (
        serving(tmp_path, cache) as served,
        Chromium(chromium, tmp_path / "profile") as browser,
    ):
        for url in (f"{served.base}/", f"{served.base}/?token=not-the-token"):
            await browser.navigate(url)
            await browser.wait_until(
                lambda url=url: any(u == url for u, _ in browser.responses()),
                within=START_TIMEOUT,
                what=f"the answer to {url}",
            )
            assert (url, 401) in browser.responses()
        await asyncio.sleep(1.0)  # had the page started a session, its viewer would run now
        text = await browser.evaluate("document.body.innerText")
        assert "access token" in text, text
        assert served.viewers() == []
        assert "started for" not in served.log_text()
        assert not [u for u in browser.requests() if u.startswith("ws:")]  # no session tried


OTHER_PAGE = """<!DOCTYPE html><html><body><script>
var socket = new WebSocket("{ws}?width=80&height=24");
socket.onopen = function () {{ document.title = "opened"; }};
socket.onerror = function () {{ document.title = "refused"; }};
</script></body></html>"""


async def test_a_page_of_another_origin_cannot_open_the_session(
    tmp_path: Path, chromium: str, cache: Path
) -> None:
    """Same host, another port: the browser sends the cookie, the Origin check refuses it."""
    async with (
        serving(tmp_path, cache) as served,
        Chromium(chromium, tmp_path / "profile") as browser,
    ):
        # the browser holds the cookie (a first visit with the token), then the tab leaves
        await browser.navigate(served.url)
        await browser.wait_until(
            lambda: bool(browser.ws_received()), within=DRAW_TIMEOUT, what="a first frame"
        )
        await browser.navigate("about:blank")
        await wait_for(lambda: not served.viewers(), within=GONE_TIMEOUT, what="no viewer left")
        await wait_for(
            lambda: "ended for" in served.log_text(), within=5, what="the first session's end"
        )

        ws_url = served.base.replace("http:", "ws:", 1) + "/ws"
        page = OTHER_PAGE.format(ws=ws_url)

        async def other(request: web.Request) -> web.Response:
            return web.Response(text=page, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", other)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            await browser.navigate(f"http://127.0.0.1:{port}/")

            seen = ""
            for _ in range(int(START_TIMEOUT / POLL)):
                seen = str(await browser.evaluate("document.title"))
                if seen in ("opened", "refused"):
                    break
                await asyncio.sleep(POLL)
            assert seen == "refused", seen
        finally:
            await runner.cleanup()
        await asyncio.sleep(0.5)
        assert served.viewers() == []
        log = served.log_text()
    assert f"origin 'http://127.0.0.1:{port}' is not this page's (403)" in log, log
    assert log.count("started for") == 1  # only the first, same-origin session


async def _hold_session(served: Served) -> tuple[aiohttp.ClientSession, Any]:
    """A session held by a plain websocket client (a tab elsewhere), once its viewer drew."""
    port = urlsplit(served.base).port
    token = served.url.split("token=", 1)[1]
    client = aiohttp.ClientSession()
    ws = await client.ws_connect(
        served.base.replace("http:", "ws:", 1) + "/ws?width=100&height=30",
        headers={"Cookie": f"depin_explorer_token_{port}={token}", "Origin": served.base},
    )
    async with asyncio.timeout(DRAW_TIMEOUT):
        received = b""
        while "Tracked market cap" not in screen_text(received):
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.BINARY, message
            received += message.data
    return client, ws


async def test_the_cap_and_the_idle_timeout_answer_the_browser_with_a_clear_page(
    tmp_path: Path, chromium: str, cache: Path
) -> None:
    async with (
        serving(tmp_path, cache, "--max-sessions", "1", "--idle-timeout", "3") as served,
        Chromium(chromium, tmp_path / "profile") as browser,
    ):
        client, held = await _hold_session(served)
        try:
            await browser.load(served.url)
            assert (f"{served.base}/", 503) in browser.responses()
            text = await browser.evaluate("document.body.innerText")
            assert "1 session is open; try later." in text, text
            await browser.screenshot(artifacts(tmp_path) / "serve-busy.png")
            assert len(served.viewers()) == 1  # the held one; the browser's started none
        finally:
            await held.close()
            await client.close()
        await wait_for(lambda: not served.viewers(), within=GONE_TIMEOUT, what="no viewer left")

        await browser.navigate(f"{served.base}/")  # the cookie is kept: no token needed now
        await browser.wait_until(browser.ws_closed, within=DRAW_TIMEOUT, what="the idle end")
        assert "Tracked market cap" in screen_text(browser.ws_received())
        await asyncio.sleep(0.5)  # the close handler sets the dialog's text
        ended = await browser.evaluate("document.getElementById('ended-message').textContent")
        assert ended == "Session ended: no input for 3 seconds. Reload to start a new one."
        assert "-closed" in await browser.evaluate("document.body.className")
        shot = await browser.screenshot(artifacts(tmp_path) / "serve-idle.png")
        print(f"screenshots: {shot.parent}")
        await wait_for(lambda: not served.viewers(), within=GONE_TIMEOUT, what="no viewer left")
    assert "(idle timeout; viewer exit 0" in served.log_text()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_a_stopped_server_leaves_no_viewer(
    tmp_path: Path, cache: Path, how: signal.Signals
) -> None:
    async with serving(tmp_path, cache, "--max-sessions", "2") as served:
        held = [await _hold_session(served) for _ in range(2)]
        viewers = served.viewers()
        assert len(viewers) == 2
        served.proc.send_signal(how)
        status = await asyncio.wait_for(served.proc.wait(), 30)
        assert status == (0 if how == signal.SIGTERM else -signal.SIGKILL)

        def gone() -> bool:
            return not any(v.is_running() and v.status() != psutil.STATUS_ZOMBIE for v in viewers)

        await wait_for(gone, within=GONE_TIMEOUT, what="the viewers' end")
        for client, ws in held:
            await ws.close()
            await client.close()
    if how == signal.SIGTERM:
        assert "stopping: 2 session(s) to close" in served.log_text()
        assert served.log_text().count("ended for 127.0.0.1") == 2
