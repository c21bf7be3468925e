"""Debian's headless Chromium driven over the DevTools protocol, for the ``serve`` tests.

``require_chromium`` skips the caller when Chromium is missing, and fails instead under
``CI=true`` (CI installs it with apt-get). ``Chromium`` starts one headless browser with its own
profile on a loopback DevTools port, attaches to its page and records what the page received:
the websocket frames (the viewer's terminal output, as the browser got it) are read from the
protocol's Network events, so a test can wait for the Overview's figures before it takes the
screenshot. Every wait is bounded; the browser is stopped (SIGTERM, then SIGKILL) on the way
out, and gets SIGKILL if the test process dies first (Linux).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.prom import _die_with_parent

CHROMIUM_NAMES = ("chromium", "chromium-browser")
START_TIMEOUT = 30.0
CALL_TIMEOUT = 20.0
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--password-store=basic",
    "--use-mock-keychain",
)
_ESCAPES = re.compile(
    r"\x1b(\[[0-9;?<=>]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|.)"
)


def chromium_binary() -> str | None:
    """Path of Chromium (``CHROMIUM_BIN`` or on PATH), or None."""
    override = os.environ.get("CHROMIUM_BIN")
    if override:
        return override if os.access(override, os.X_OK) else None
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def require_chromium() -> str:
    """The chromium path; skip the caller when missing, fail instead under CI=true."""
    binary = chromium_binary()
    if binary is not None:
        return binary
    reason = "chromium not installed (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def screen_text(data: bytes) -> str:
    """Terminal output with its escape sequences removed: the text a person would read."""
    return _ESCAPES.sub("", data.decode("utf-8", "replace"))


class Chromium:
    """One headless Chromium and its first page, driven over DevTools (``async with``)."""

    def __init__(self, binary: str, profile: Path, size: tuple[int, int] = (1280, 900)) -> None:
        self.binary = binary
        self.profile = profile
        self.size = size
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        log = (self.profile / "chromium.log").open("ab")
        self._proc = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once
            [
                self.binary,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={self.size[0]},{self.size[1]}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        try:
            port = await self._devtools_port(port_file)
            self._session = aiohttp.ClientSession()
            url = await self._page_target(port)
            self._ws = await self._session.ws_connect(url, max_msg_size=64 << 20)
            self._reader = asyncio.create_task(self._read())
            await self.call("Network.enable")
            await self.call("Page.enable")
            await self.call("Runtime.enable")
            width, height = self.size  # the viewport, whatever the window's decorations take
            await self.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _devtools_port(self, port_file: Path) -> int:
        assert self._proc is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + START_TIMEOUT
        while loop.time() < end:
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self._proc.returncode}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = await asyncio.to_thread(port_file.read_text)
                return int(text.splitlines()[0])
            await asyncio.sleep(0.1)
        raise TimeoutError(f"chromium's DevTools port not within {START_TIMEOUT:g} s")

    async def _page_target(self, port: int) -> str:
        assert self._session is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + START_TIMEOUT
        while loop.time() < end:
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                async with self._session.get(f"http://127.0.0.1:{port}/json/list") as reply:
                    targets = await reply.json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no page target in chromium within {START_TIMEOUT:g} s")

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._calls.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self.events.append((data.get("method", ""), data.get("params", {})))
                self._changed.set()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its ``result`` (raises on a protocol error)."""
        assert self._ws is not None
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[self._next_id] = future
        await self._ws.send_json({"id": self._next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, CALL_TIMEOUT)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def navigate(self, url: str) -> dict[str, Any]:
        """Open ``url`` in the page; the navigation's result (``errorText`` if it failed)."""
        return await self.call("Page.navigate", url=url)

    async def load(self, url: str, within: float = START_TIMEOUT) -> None:
        """Open ``url`` and wait for its load event (the page and its scripts are there)."""
        loaded = self._count("Page.loadEventFired")
        reply = await self.navigate(url)
        if "errorText" in reply:
            raise RuntimeError(f"{url}: {reply['errorText']}")
        await self.wait_until(
            lambda: self._count("Page.loadEventFired") > loaded, within=within, what=f"{url} loaded"
        )

    def _count(self, method: str) -> int:
        return sum(1 for name, _ in self.events if name == method)

    async def press(self, key: str) -> None:
        """Type one printable key into the focused element, as a person would."""
        await self.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key)
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=key)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_until(self, check: Callable[[], Any], *, within: float, what: str) -> Any:
        """Wait for an event making ``check()`` true (re-checked on every event), bounded."""
        try:
            async with asyncio.timeout(within):
                while not (result := check()):
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):  # re-check now and then anyway
                        await asyncio.wait_for(self._changed.wait(), 0.5)
        except TimeoutError:
            raise TimeoutError(f"{what} not within {within:g} s") from None
        return result

    def ws_received(self) -> bytes:
        """Every binary websocket frame the page received so far, joined (terminal output)."""
        chunks = []
        for method, params in self.events:
            if method != "Network.webSocketFrameReceived":
                continue
            frame = params.get("response", {})
            if frame.get("opcode") == 2:
                chunks.append(base64.b64decode(frame.get("payloadData", "")))
        return b"".join(chunks)

    def ws_closed(self) -> bool:
        """Whether a websocket of the page closed."""
        return any(method == "Network.webSocketClosed" for method, _ in self.events)

    def requests(self) -> list[str]:
        """Every URL the page asked for (documents, scripts, fonts, websockets)."""
        urls = [
            params.get("request", {}).get("url", "")
            for method, params in self.events
            if method == "Network.requestWillBeSent"
        ]
        urls += [
            params.get("url", "")
            for method, params in self.events
            if method == "Network.webSocketCreated"
        ]
        return urls

    def responses(self) -> list[tuple[str, int]]:
        """(URL, status) of every response the page got, redirects included."""
        found = []
        for method, params in self.events:
            if method == "Network.responseReceived":
                response = params["response"]
            elif method == "Network.requestWillBeSent" and "redirectResponse" in params:
                response = params["redirectResponse"]
            else:
                continue
            found.append((str(response.get("url", "")), int(response.get("status", 0))))
        return found

    async def screenshot(self, path: Path) -> Path:
        """The page as a PNG file."""
        result = await self.call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(result["data"]))
        return path

    async def close(self) -> None:
        """Close the DevTools connection and stop the browser (SIGTERM, then SIGKILL)."""
        if self._ws is not None:
            with contextlib.suppress(Exception):  # no reply comes: the browser is gone
                await self._ws.send_json({"id": 0, "method": "Browser.close", "params": {}})
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._session is not None:
            await self._session.close()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)


def png_colours(path: Path, rows: int = 120) -> tuple[int, int, set[bytes]]:
    """(width, height, the distinct colours of the top ``rows`` rows) of a screenshot PNG.

    An 8-bit RGB(A), non-interlaced PNG (what Chromium writes), decoded here so the tests need
    no imaging library; only the rows asked for are unfiltered (pure Python is slow).
    """
    import struct
    import zlib

    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"{path}: depth {depth}, colour type {color}: not a screenshot PNG")
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    colours: set[bytes] = set()
    previous = bytearray(stride)
    for y in range(min(rows, height)):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - bpp] if x >= bpp else 0
            up = previous[x]
            corner = previous[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + pred) & 0xFF
        colours.update(bytes(line[x : x + 3]) for x in range(0, stride, bpp))
        previous = line
    return width, height, colours
