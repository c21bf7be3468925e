"""``depin-explorer serve``: the console in a browser, one read-only viewer per session.

Binds 127.0.0.1:8080 unless told otherwise and prints the URL to open, with the access token,
on one line (as Jupyter does). The server itself is explorer/serve_app.py (textual-serve with a
token, an Origin check, a session cap and an idle timeout); the token is explorer/serve_token.py.
docs/remote.md has the use, a reverse proxy with TLS, and the threat model.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from explorer.cli import Globals, _merge, as_of, fail, global_options, load_setup
from explorer.paths import state_dir

if TYPE_CHECKING:
    from explorer.serve_app import ServeSettings

log = logging.getLogger("explorer.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def page_url(host: str, port: int, token: str) -> str:
    """The URL to open: the bound address (loopback for "every address"), with the token."""
    name = host.strip("[]")
    if name in ("0.0.0.0", ""):
        name = "127.0.0.1"
    elif name == "::":
        name = "::1"
    if ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}/?token={token}"


def viewer_args(glob: Globals, db_path: Path) -> list[str]:
    """The global options each viewer gets: the same database, config and modes as ``serve``."""
    args = ["--db", str(db_path.expanduser().resolve())]
    if glob.config is not None:
        args += ["--config", str(glob.config.expanduser().resolve())]
    if glob.log_file is not None:
        args += ["--log-file", str(glob.log_file.expanduser().resolve())]
    if glob.offline:
        args.append("--offline")
    if glob.private:
        args.append("--private")
    if glob.at is not None:
        args += ["--at", glob.at]
    return args


class _StderrHandler(logging.StreamHandler):
    """The session lines on stderr (one per start and end), beside the file log."""


def _log_to_stderr() -> None:
    for old in [h for h in log.handlers if isinstance(h, _StderrHandler)]:
        log.removeHandler(old)  # a second serve in one process (tests) logs once, not twice
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


@click.command("serve")
@global_options
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on; anything but loopback needs a TLS reverse proxy in front.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="TCP port (0: any free one, printed in the URL).",
)
@click.option(
    "--max-sessions",
    type=click.IntRange(1, 1000),
    default=8,
    show_default=True,
    help="Browser sessions at once; the next one is asked to try later.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=1),
    default=1800,
    show_default=True,
    metavar="SECONDS",
    help="End a session after this long without a key press or a resize.",
)
@click.option("--new-token", is_flag=True, help="Replace the access token (old URLs stop working).")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    max_sessions: int,
    idle_timeout: float,
    new_token: bool,
    **globals_: Any,
) -> None:
    """Serve the console to a browser: read-only viewers of the cache, behind a token.

    Listens on 127.0.0.1:8080 and prints the URL to open (with its token) on one line.
    Each browser tab runs its own viewer that never polls nor writes the database; a
    collector (depin-explorer poll) keeps the history fresh. With --private every session
    hides earnings and cannot show them (p says the server fixed it).
    """
    _merge(ctx, **globals_)
    glob: Globals = ctx.obj
    as_of(ctx)  # a bad --at fails here, not in every session
    setup = load_setup(ctx)  # so does a bad config
    from explorer.serve_app import ServeSettings
    from explorer.serve_token import load_token, token_path

    try:
        token = load_token(rotate=new_token)
    except OSError as exc:
        fail(f"cannot write the access token {token_path()}: {exc.strerror or exc}", 1)
        return
    _log_to_stderr()
    if token.reason:
        log.info("%s", token.reason)
    elif token.created:
        log.info("new access token written to %s", token_path())
    if not setup.db_path.exists():
        log.info("no cache at %s yet: sessions show nothing until a poll is stored", setup.db_path)
    settings = ServeSettings(
        token=token.value,
        viewer_args=viewer_args(glob, setup.db_path),
        sessions_dir=state_dir() / "serve-sessions",
        host=host,
        port=port,
        max_sessions=max_sessions,
        idle_timeout=idle_timeout,
    )
    try:
        asyncio.run(_serve(settings))
    except OSError as exc:  # the port is taken, the address is not this machine's
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)


async def _serve(settings: ServeSettings) -> None:
    from aiohttp import web

    from explorer.serve_app import ViewerServer

    settings.sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    server = ViewerServer(settings)
    runner = web.AppRunner(
        await server._make_app(),
        access_log=None,  # an access log would hold the first visit's ?token=
        handle_signals=False,
        shutdown_timeout=10.0,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else settings.port
        server.use_port(int(bound))
        _announce(settings, server.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping: %d session(s) to close", len(server.sessions))
    finally:
        await runner.cleanup()


def _announce(settings: ServeSettings, port: int) -> None:
    host = settings.host
    minutes = settings.idle_timeout / 60
    log.info(
        "serving read-only viewers on %s:%d (up to %d sessions, idle timeout %g min); Ctrl+C stops",
        host,
        port,
        settings.max_sessions,
        round(minutes, 1),
    )
    if not is_loopback(host):
        log.info(
            "listening beyond loopback (%s): every page and websocket needs the token, but "
            "this server speaks plain HTTP: the token and the console cross the network "
            "unencrypted. Put a TLS reverse proxy in front (docs/remote.md), or bind 127.0.0.1 "
            "and use ssh -L.",
            host,
        )
    click.echo(page_url(host, port, settings.token))
    sys.stdout.flush()
