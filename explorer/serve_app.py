"""The web server of ``serve``: textual-serve's Server and AppService, guarded.

textual-serve (pinned 1.1.3) runs one process per websocket and streams its terminal to
xterm.js; it has no authentication, no origin check and no session limit. This module reuses its
``Server`` (static files, downloads, the browser's message loop) and ``AppService`` (the process
and its packet protocol) and adds, in front of every request, the access token (cookie after the
first ``?token=`` visit), the websocket's Origin check, the session cap, the idle timeout and a
process that is always reaped. Every viewer is ``python -m explorer --viewer browser``: a
read-only reader of the cache (explorer/app.py), never a poller or a writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import re
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from explorer import serve_page
from explorer.serve_token import token_matches

log = logging.getLogger("explorer.serve")

COOKIE = "depin_explorer_token"
"""The cookie's name gets the port appended: cookies are per host, not per port."""
HEARTBEAT = 15.0
"""Seconds between websocket pings; a browser gone without a close frame is noticed by this."""
STOP_GRACE = 5.0
"""Seconds a viewer gets to quit after the tab closed, before SIGTERM, then as long to SIGKILL."""
MAX_MESSAGE = 1 << 20
"""The largest websocket message taken from a browser (keys, pastes, resizes are small)."""
MAX_SIZE = 1000
"""Terminal width or height asked by a browser is clamped to 1..this."""
WITHHELD_ENV = (
    "COINGECKO_API_KEY",
    "IONET_TOKEN",
    "DEPIN_EXPLORER_METRICS_USER",
    "DEPIN_EXPLORER_METRICS_PASSWORD",
)
"""Credentials in serve's environment that its viewers do not get (explorer/config.py,
explorer/metrics_listen.py); a secrets file named in the config is still read by each viewer."""
NONCE = web.RequestKey("nonce", str)
"""The console page's script nonce, from its handler to the headers hook."""
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_LATER = 1013


@dataclass
class ServeSettings:
    """What one ``serve`` runs with."""

    token: str
    viewer_args: Sequence[str]
    """The global options passed to every viewer (``--db``, ``--config``, ``--offline``…)."""
    sessions_dir: Path
    """Each session's own state file (watchlist, last look) lives here while it runs."""
    host: str = "127.0.0.1"
    port: int = 8080
    max_sessions: int = 8
    idle_timeout: float = 1800.0
    """Seconds without a key or a resize from the browser before the session ends."""
    title: str = "depin-explorer"
    python: str = field(default_factory=lambda: sys.executable)


def _prctl() -> Any:
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
"""libc's prctl, looked up here: the child, between fork and exec, only calls it (no dlopen)."""


def _die_with_server() -> None:  # pragma: no cover - runs in the child, before exec
    # A server killed outright (SIGKILL, OOM) cannot end its viewers, and a viewer whose stdin
    # closed keeps running: the kernel ends it with its parent (PR_SET_PDEATHSIG = 1). The
    # viewer holds no lock and writes nothing, so SIGKILL loses nothing.
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)


class ViewerService(AppService):
    """One browser session's viewer process (textual-serve's AppService, 1.1.3)."""

    def __init__(self, argv: Sequence[str], **kwargs: Any) -> None:
        super().__init__(" ".join(argv), **kwargs)
        self.argv = list(argv)
        self.last_input = time.monotonic()
        """When the browser last sent a key or a resize: the idle timeout counts from it."""
        self.ended_by: str | None = None
        """Why the session ended, for the log line."""

    @property
    def pid(self) -> int | None:
        """The viewer's process id, once started."""
        return None if self._process is None else self._process.pid

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        # Overrides a private method of textual-serve 1.1.3, which runs ``command`` through a
        # shell: exec the argv instead, so no path needs shell quoting and the pid we stop is
        # the viewer's own, not a shell's.
        environment = self._build_environment(width=width, height=height)
        for name in WITHHELD_ENV:  # a viewer polls nothing: it needs no upstream's key
            environment.pop(name, None)
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            preexec_fn=_die_with_server if _PRCTL is not None else None,
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def send_bytes(self, data: bytes) -> bool:
        """Forward a key press (counts as activity for the idle timeout)."""
        self.last_input = time.monotonic()
        return await super().send_bytes(data)

    async def set_terminal_size(self, width: int, height: int) -> None:
        """Forward a resize, clamped (counts as activity for the idle timeout)."""
        self.last_input = time.monotonic()
        await super().set_terminal_size(clamp_size(width), clamp_size(height))

    async def on_meta(self, data: bytes) -> None:
        """A packet from the viewer; "exit" (q, ctrl+q) is noted for the session's log line."""
        with contextlib.suppress(ValueError, AttributeError):
            if json.loads(data).get("type") == "exit" and self.ended_by is None:
                self.ended_by = "the viewer quit"
        await super().on_meta(data)

    @property
    def output_ended(self) -> bool:
        """Whether the viewer's output ended (it exited, or closed its stdout)."""
        return self._task is not None and self._task.done()

    async def exited(self, grace: float = STOP_GRACE) -> int | None:
        """Wait until the viewer's output ends, then (bounded) for its exit status."""
        if self._task is None or self._process is None:
            return None
        await asyncio.wait({self._task})  # not ``await task``: a cancelled wait leaves it alone
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self._process.wait(), grace)
        return None

    async def end(self, grace: float = STOP_GRACE) -> int | None:
        """Stop the viewer for good: ask it to quit, then SIGTERM, then SIGKILL; reap it.

        AppService.stop() only asks (a "quit" packet) and waits for its output to end, without a
        bound and without waiting for the process: a viewer that hangs would be left behind.

        Returns:
            The viewer's exit status (None if it never started).
        """
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(self.stop(), grace)
        process = self._process
        if process is None:
            return None
        for escalate in (None, process.terminate, process.kill):
            if escalate is not None:
                with contextlib.suppress(ProcessLookupError):
                    escalate()
            try:
                await asyncio.wait_for(process.wait(), grace)
                break
            except TimeoutError:
                continue
        if self._task is not None:  # the output reader, if stop() timed out
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return process.returncode


class ViewerServer(Server):
    """textual-serve's Server with a token, an Origin check, a session cap and an idle timeout."""

    def __init__(self, settings: ServeSettings) -> None:
        super().__init__(
            command=f"{settings.python} -m explorer --viewer browser",
            host=settings.host,
            port=settings.port,
            title=settings.title,
        )
        self.settings = settings
        self.cookie = f"{COOKIE}_{settings.port}"
        self.sessions: dict[str, ViewerService] = {}
        """Running sessions by id (the id is for logs and the state file, not a secret)."""
        self._sockets: set[web.WebSocketResponse] = set()
        self._starting = 0
        self._ending: set[asyncio.Task[None]] = set()
        self._none_open = asyncio.Event()
        self._none_open.set()
        self.spawned = 0
        """Viewers started since the server started (tests: a refusal starts none)."""

    def use_port(self, port: int) -> None:
        """The port actually bound (``--port 0``): the cookie's name and the printed URL."""
        self.port = self.settings.port = port
        self.cookie = f"{COOKIE}_{port}"

    async def _make_app(self) -> web.Application:
        """The aiohttp app: textual-serve's routes, behind the guard, with our page."""
        # Replaces Server._make_app (1.1.3): its index template loads a Google font and its
        # static route lists directories; the routes and handlers are otherwise the same.
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.add_routes(
            [
                web.get("/", self.handle_index, name="index"),
                web.get("/ws", self.handle_websocket, name="websocket"),
                web.get("/download/{key}", self.handle_download, name="download"),
                web.static("/static", self.statics_path, show_index=False, name="static"),
            ]
        )
        app.on_response_prepare.append(self._secure_headers)
        app.on_shutdown.append(self.on_shutdown)
        return app

    @staticmethod
    async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in serve_page.headers(request.get(NONCE)).items():
            response.headers.setdefault(name, value)

    def _is_https(self, request: web.Request) -> bool:
        # Behind a TLS reverse proxy the page is https though this server speaks http. Taking
        # the header from anyone is safe: a browser's page cannot set it, and a client that is
        # not a browser can send any Origin anyway (the token is what keeps it out).
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return request.secure or forwarded == "https"

    @web.middleware
    async def _guard(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Every path needs the token: ``?token=`` on ``/`` (then a cookie), else the cookie."""
        token = self.settings.token
        if request.path == "/" and "token" in request.query:
            if not token_matches(request.query.get("token"), token):
                return self._unauthorized(request)
            return self._admit(request)
        if not token_matches(request.cookies.get(self.cookie), token):
            return self._unauthorized(request)
        return await handler(request)

    def _unauthorized(self, request: web.Request) -> web.Response:
        log.info(
            "refused %s %s from %s: no valid token (401)",
            request.method,
            request.url.raw_path,  # still percent-encoded: no line breaks; never the query
            peer(request),
        )
        return web.Response(
            status=401, text=serve_page.UNAUTHORIZED, content_type="text/html", charset="utf-8"
        )

    def _admit(self, request: web.Request) -> web.Response:
        """Set the cookie and drop the token from the address bar."""
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            response = web.Response(
                text=serve_page.landing_page(), content_type="text/html", charset="utf-8"
            )
        else:
            response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(
            self.cookie,
            self.settings.token,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self._is_https(request),
        )
        return response

    def _busy(self) -> bool:
        return len(self.sessions) + self._starting >= self.settings.max_sessions

    async def handle_index(self, request: web.Request) -> web.Response:
        """The console page, or the busy page while the session cap is reached."""
        if self._busy():
            return web.Response(
                status=503,
                text=serve_page.full_page(self.settings.max_sessions),
                content_type="text/html",
                charset="utf-8",
                headers={"Retry-After": "60"},
            )
        nonce = secrets.token_urlsafe(16)
        request[NONCE] = nonce
        font_size = min(max(to_int(request.query.get("fontsize", "16"), 16), 6), 64)
        page = serve_page.index_page(title=self.title, nonce=nonce, font_size=font_size)
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    async def handle_download(self, request: web.Request) -> web.StreamResponse:
        """An export's file, once; a key not (or no longer) held is a 404 that echoes nothing.

        textual-serve 1.1.3 answers it with the key from the path quoted back in the body.
        """
        try:
            await self.download_manager.get_download_metadata(request.match_info["key"])
        except KeyError:
            return web.Response(
                status=404, text="404: no such download\n", content_type="text/plain"
            )
        return await super().handle_download(request)

    def _origin_ok(self, request: web.Request) -> bool:
        """The websocket's Origin is this page's scheme, host and port (no other site's page)."""
        origin = request.headers.get("Origin", "").lower().rstrip("/")
        host = request.host.lower()
        schemes = {"https" if request.secure else "http"}
        if self._is_https(request):
            schemes.add("https")
        return origin in {f"{scheme}://{host}" for scheme in schemes}

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One session: check the Origin and the cap, run a viewer, end it with the socket."""
        if not self._origin_ok(request):
            log.info(
                "refused websocket from %s: origin %r is not this page's (403)",
                peer(request),
                request.headers.get("Origin", "")[:100],
            )
            raise web.HTTPForbidden(text=serve_page.FORBIDDEN_ORIGIN, content_type="text/html")
        websocket = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_MESSAGE)
        if self._busy():
            await websocket.prepare(request)
            message = serve_page.full_message(self.settings.max_sessions)
            log.info("refused session from %s: %s", peer(request), message)
            await websocket.close(code=CLOSE_TRY_LATER, message=message.encode())
            return websocket
        self._starting += 1
        try:
            await websocket.prepare(request)
        finally:
            self._starting -= 1
        await self._run_session(request, websocket)
        return websocket

    async def _run_session(self, request: web.Request, websocket: web.WebSocketResponse) -> None:
        session = secrets.token_hex(6)
        state_file = self.settings.sessions_dir / f"session-{session}.json"
        argv = [
            self.settings.python,
            "-m",
            "explorer",
            "--viewer",
            "browser",
            "--state-file",
            str(state_file),
            *self.settings.viewer_args,
        ]
        service = ViewerService(
            argv,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=websocket.close,
            download_manager=self.download_manager,
        )
        width = clamp_size(to_int(request.query.get("width", "80"), 80))
        height = clamp_size(to_int(request.query.get("height", "24"), 24))
        self.sessions[session] = service
        self._none_open.clear()
        self._sockets.add(websocket)
        started = time.monotonic()
        try:
            await service.start(width, height)
            self.spawned += 1
            log.info(
                "session %s started for %s: viewer pid %s (%d open)",
                session,
                peer(request),
                service.pid,
                len(self.sessions),
            )
            watches = [
                asyncio.create_task(self._watch_idle(websocket, service)),
                asyncio.create_task(self._watch_viewer(websocket, service)),
            ]
            try:
                await self._process_messages(websocket, service)
            finally:
                for watch in watches:
                    watch.cancel()
            if service.ended_by is None:
                quit_ = service.output_ended
                service.ended_by = "the viewer quit" if quit_ else "the browser closed"
        except Exception as exc:  # a malformed message, a broken pipe: this session ends
            service.ended_by = f"{type(exc).__name__} in the session"
            log.debug("session %s failed", session, exc_info=True)
        finally:
            # aiohttp cancels this handler once the browser's connection is gone: the viewer's
            # end runs in a task of its own, which a cancelled handler does not take down
            ending = asyncio.create_task(self._end_session(session, request, websocket, started))
            self._ending.add(ending)
            ending.add_done_callback(self._ending.discard)
            await asyncio.shield(ending)

    async def _end_session(
        self, session: str, request: web.Request, websocket: web.WebSocketResponse, started: float
    ) -> None:
        service = self.sessions[session]
        self._sockets.discard(websocket)
        try:
            if not websocket.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await websocket.close()
            status = await service.end()
        finally:
            del self.sessions[session]
            if not self.sessions:
                self._none_open.set()
            with contextlib.suppress(OSError):
                (self.settings.sessions_dir / f"session-{session}.json").unlink(missing_ok=True)
        log.info(
            "session %s ended for %s after %.0f s (%s; viewer exit %s; %d open)",
            session,
            peer(request),
            time.monotonic() - started,
            service.ended_by,
            status,
            len(self.sessions),
        )

    async def _watch_idle(self, websocket: web.WebSocketResponse, service: ViewerService) -> None:
        """Close the session once the browser sent nothing (no key, no resize) for a while."""
        timeout = self.settings.idle_timeout
        while not websocket.closed:
            left = service.last_input + timeout - time.monotonic()
            if left <= 0:
                service.ended_by = "idle timeout"
                await websocket.close(code=CLOSE_NORMAL, message=idle_message(timeout).encode())
                return
            await asyncio.sleep(left)

    async def _watch_viewer(self, websocket: web.WebSocketResponse, service: ViewerService) -> None:
        """A viewer that stops on its own without saying so (a crash) ends its session."""
        status = await service.exited()
        if websocket.closed:  # q: the viewer said "exit" and the socket closed already
            return
        service.ended_by = f"the viewer stopped (exit {status})"
        message = (
            "The viewer stopped."
            if status == 0
            else f"The viewer stopped (exit status {status}); the server's log says why."
        )
        await websocket.close(code=CLOSE_NORMAL, message=message.encode())

    async def on_shutdown(self, app: web.Application) -> None:
        """The server stops: close every session and wait (bounded) for their viewers' end."""
        for websocket in list(self._sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await websocket.close(code=CLOSE_GOING_AWAY, message=b"The server stopped.")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_open.wait(), 3 * STOP_GRACE + 1)


def clamp_size(cells: object) -> int:
    """A terminal width or height from the browser as 1..MAX_SIZE cells (a number, or 80)."""
    try:
        value = int(cells)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        value = 80
    return min(max(value, 1), MAX_SIZE)


_PEER_CHARS = re.compile(r"[^0-9A-Za-z.:\[\], -]")


def peer(request: web.Request) -> str:
    """The remote address for the log, and whom a proxy says it forwards for (unverified)."""
    remote = request.remote or "?"
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        return f"{remote} (forwarded for {_PEER_CHARS.sub('', forwarded)[:80]})"
    return remote


def idle_message(timeout: float) -> str:
    """The close reason after the idle timeout, in the unit a person reads."""
    if timeout >= 120:
        amount = f"{timeout / 60:.0f} minutes"
    else:
        amount = f"{timeout:.0f} second{'' if round(timeout) == 1 else 's'}"
    return f"Session ended: no input for {amount}. Reload to start a new one."
