"""``depin-explorer ssh-serve``: the console over SSH, public keys only, one read-only viewer each.

Binds 127.0.0.1:2222 unless ``--host`` says otherwise. Only the keys in an authorized_keys file
get in (default ``~/.ssh/authorized_keys``, read again at every connection); passwords,
keyboard-interactive, host-based auth, certificates, forwarding of any kind, exec, sftp, agent
and X11 are refused. The host key is created 0600 in the state dir on first run and its
fingerprint printed at every start. Sessions: explorer/ssh_session.py.

Exit status: 0 stopped (SIGINT, SIGTERM); 1 cannot listen; 2 refused: no or no valid authorized
keys, a host key others can read, a bad config or option. One line on stderr, never a traceback.

explorer/cli.py registers this command lazily; import ``explorer.cli``, not this module, first.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from explorer.cli import EXIT_USAGE, Globals, _merge, fail, global_options, load_setup
from explorer.paths import private_write, state_dir

if TYPE_CHECKING:  # asyncssh loads only when the server starts
    from asyncssh import SSHKey

    from explorer.ssh_session import ServeSettings

EXIT_LISTEN = 1
HOST_KEY_NAME = "ssh_host_ed25519_key"
SESSIONS_DIR = "ssh-sessions"
LOGIN_TIMEOUT = 30.0
"""Seconds a client has to authenticate."""
KEEPALIVE = 30.0
"""A client that answers no keepalive for 3 of these is gone: its viewer is stopped."""

log = logging.getLogger("explorer.ssh_serve")


def host_key_path() -> Path:
    """The server's host key, in the platform state dir."""
    return state_dir() / HOST_KEY_NAME


def load_host_key(path: Path) -> tuple[SSHKey, bool]:
    """The host key (created 0600 if missing) and whether it was just created.

    A key file others can read, or one that does not parse, exits 2 (as OpenSSH refuses it).
    """
    import asyncssh

    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="depin-explorer ssh-serve")
        private_write(path, key.export_private_key().decode())
        return key, True
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        fail(f"host key {path} is open to others (mode {mode & 0o777:o}): chmod 600 {path}")
    try:
        return asyncssh.read_private_key(str(path)), False
    except (OSError, ValueError) as exc:
        fail(f"host key {path}: {exc}")
        raise  # unreachable


def check_authorized_keys(path: Path) -> tuple[int, list[int]]:
    """The number of keys in ``path`` and the numbers of the lines that hold none.

    Lines that are not keys are skipped, as sshd skips them; a missing, unreadable or empty
    file, or one without a single valid key, exits 2.
    """
    import asyncssh

    hint = "add the public keys that may connect, one per line (OpenSSH's format)"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"no authorized keys file {path}: {hint}")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")
    keys, skipped = 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            asyncssh.import_authorized_keys(line)
        except ValueError:
            skipped.append(number)
        else:
            keys += 1
    if not keys:
        fail(f"{path} holds no key{' (every line is malformed)' if skipped else ''}: {hint}")
    return keys, skipped


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def viewer_args(glob: Globals, db_path: Path) -> list[str]:
    """The global options every session's viewer gets: the same config, cache and view."""
    args = ["--db", str(db_path)]
    if glob.config is not None:
        args += ["--config", str(glob.config)]
    if glob.offline:
        args.append("--offline")
    if glob.private:
        args.append("--private")
    if glob.at is not None:
        args += ["--at", glob.at]
    if glob.log_file is not None:
        args += ["--log-file", str(glob.log_file)]
    return args


def _session_log() -> None:
    """Session starts and ends on stderr, one line each, as well as in the debug log."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # a line per packet otherwise


@click.command("ssh-serve")
@global_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=2222,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free one, printed on start).",
)
@click.option(
    "--authorized-keys",
    "authorized_keys",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The public keys that may connect (default: ~/.ssh/authorized_keys).",
)
@click.option(
    "--max-sessions",
    default=8,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Sessions open at once; the next is told to try later.",
)
@click.option(
    "--idle-timeout",
    default=1800.0,
    show_default=True,
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="Close a session after this long without a key press (0: never).",
)
@click.pass_context
def ssh_serve(
    ctx: click.Context,
    host: str,
    port: int,
    authorized_keys: Path | None,
    max_sessions: int,
    idle_timeout: float,
    **globals_: Any,
) -> None:
    """Serve the console over SSH to the keys in an authorized_keys file (read-only).

    Each key keeps its own watchlist, last look and private mode. With --private every
    session hides earnings and cannot show them (p says the server fixed it).
    """
    _merge(ctx, **globals_)
    glob: Globals = ctx.obj
    if glob.viewer is not None or glob.state_file is not None:
        fail("--viewer and --state-file are the sessions' own options", EXIT_USAGE)
    keys_path = (authorized_keys or Path.home() / ".ssh" / "authorized_keys").expanduser()
    count, skipped = check_authorized_keys(keys_path)
    if skipped:
        lines = ", ".join(str(n) for n in skipped)
        click.echo(f"depin-explorer: {keys_path}: not a key, skipped: line {lines}", err=True)
    setup = load_setup(ctx)  # a bad config exits 2 here, not in every session
    from explorer.ssh_session import ServeSettings

    key, created = load_host_key(host_key_path())
    sessions_dir = state_dir() / SESSIONS_DIR
    sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = ServeSettings(
        authorized_keys=keys_path,
        max_sessions=max_sessions,
        idle_timeout=idle_timeout,
        sessions_dir=sessions_dir,
        viewer_args=viewer_args(glob, setup.db_path),
    )
    _session_log()
    if not setup.db_path.exists():
        click.echo(
            f"depin-explorer: no cache at {setup.db_path} yet: sessions show what a collector "
            "(depin-explorer poll) stores",
            err=True,
        )
    try:
        code = asyncio.run(_serve(settings, key, host, port, created, count))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_LISTEN)
        return
    sys.exit(code)


async def _serve(
    settings: ServeSettings, key: SSHKey, host: str, port: int, created: bool, count: int
) -> int:
    import asyncssh

    from explorer.ssh_session import ViewerServer

    server = await asyncssh.listen(
        host,
        port,
        server_factory=lambda: ViewerServer(settings),
        server_host_keys=[key],
        encoding=None,  # bytes both ways: the viewer's output is not ours to decode
        allow_pty=True,
        line_editor=False,
        x11_forwarding=False,
        agent_forwarding=False,
        allow_scp=False,
        sftp_factory=None,
        password_auth=False,
        kbdint_auth=False,
        host_based_auth=False,
        gss_host=None,
        login_timeout=LOGIN_TIMEOUT,
        keepalive_interval=KEEPALIVE,
        keepalive_count_max=3,
        server_version="depin-explorer",
    )
    bound = server.get_port()  # the one the system chose for --port 0
    shown = f"[{host}]" if ":" in host else host
    fingerprint = key.get_fingerprint("sha256")
    new = " (created now)" if created else ""
    click.echo(f"depin-explorer ssh-serve on {shown}:{bound}", err=True)
    click.echo(f"host key {fingerprint} (ED25519){new}: {host_key_path()}", err=True)
    plural = "" if count == 1 else "s"
    click.echo(f"{count} key{plural} from {settings.authorized_keys} may connect", err=True)
    if not is_loopback(host):
        click.echo(
            f"listening beyond loopback: only the keys in {settings.authorized_keys} get in; "
            "check the host key fingerprint above on first connect",
            err=True,
        )
    click.echo(f"connect: ssh -p {bound} {shown}", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await settings.close_all("the server is stopping")
    await server.wait_closed()
    return 0
