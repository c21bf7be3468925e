"""One ``ssh-serve`` connection and its sessions: public-key auth, a pty, the viewer inside it.

Each session runs ``python -m explorer --viewer ssh`` (the read-only viewer: it never polls,
never writes the cache, writes no export) on a pty of its own, in a process group of its own,
and copies bytes both ways between the SSH channel and the pty. asyncssh's ``redirect`` helper
does not forward window changes, so the copy is done here and a resize is set on the pty
(``TIOCSWINSZ``) and signalled to the viewer (``SIGWINCH``). However a session ends (``q``, idle,
a dropped connection, the server stopping), its process group is stopped: SIGHUP, then SIGKILL
after ``STOP_GRACE``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import signal
import struct
import sys
import termios
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

log = logging.getLogger("explorer.ssh_serve")

STOP_GRACE = 2.0
"""Seconds a viewer has to exit after SIGHUP before SIGKILL."""
NO_SESSION_TIMEOUT = 30.0
"""An authenticated connection that opens no session in this time is closed."""
MAX_COLUMNS, MAX_ROWS = 1000, 500
"""A client's terminal size is clamped to this: the viewer allocates every cell."""
INPUT_HIGH_WATER = 64 * 1024
"""Keys not yet taken by the viewer beyond this pause reading from the client."""
EXIT_REFUSED = 2
EXIT_ENDED = 1
"""The client's exit status when the server ended the session (idle, stopping)."""
# What a client's env may set in the viewer; the rest of its env is the server's minimum.
ACCEPTED_ENV = re.compile(r"NO_COLOR|COLORTERM|LANG|LC_[A-Z]+")
_ENV_VALUE = re.compile(r"[A-Za-z0-9._@+:=-]{0,64}")
_TERM = re.compile(r"[A-Za-z0-9._+-]{1,64}")
# The server's own variables the viewer needs to find the same config, cache and state.
SERVER_ENV = (
    "PATH",
    "HOME",
    "TZ",
    "DEPIN_EXPLORER_CONFIG",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
)
# A viewer stopped by a signal cannot restore the client's terminal: leave the alternate screen,
# mouse and paste modes, the kitty keyboard protocol; show the cursor.
TERMINAL_RESET = (
    b"\x1b[<u\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l\x1b[?1004l\x1b[?2004l"
    b"\x1b[0m\x1b[?25h\x1b[?1049l"
)


def key_file_name(fingerprint: str) -> str:
    """``SHA256:ab+c/d`` as a file name: ``SHA256-ab-c_d`` (base64's URL-safe alphabet)."""
    return fingerprint.replace(":", "-", 1).replace("+", "-").replace("/", "_")


def viewer_env(
    term: str | None, client: Mapping[str, str], server: Mapping[str, str]
) -> dict[str, str]:
    """The viewer's environment: the server's few paths, TERM and the client's accepted few."""
    env = {name: server[name] for name in SERVER_ENV if name in server}
    env.setdefault("PATH", os.defpath)
    for name, value in client.items():
        if ACCEPTED_ENV.fullmatch(name) and _ENV_VALUE.fullmatch(value):
            env[name] = value
    env["TERM"] = term if term and _TERM.fullmatch(term) else "xterm-256color"
    return env


def clamp_size(columns: int, rows: int) -> tuple[int, int]:
    """The client's size within bounds; 0 (not given) is 80x24."""
    return (
        min(columns, MAX_COLUMNS) if columns > 0 else 80,
        min(rows, MAX_ROWS) if rows > 0 else 24,
    )


@dataclass
class ServeSettings:
    """What every connection of one ``ssh-serve`` shares."""

    authorized_keys: Path
    max_sessions: int
    idle_timeout: float
    sessions_dir: Path
    """``<state dir>/ssh-sessions``: one state file (watchlist, last look, private mode) per key."""
    viewer_args: list[str]
    """The global options passed on to every viewer (``--db``, ``--config``, ``--private``…)."""
    server_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    sessions: set[ViewerSession] = field(default_factory=set)
    """The sessions with a viewer running or starting."""

    def load_keys(self) -> asyncssh.SSHAuthorizedKeys | None:
        """The authorized keys as the file holds them now (None: unreadable, nobody gets in)."""
        try:
            return asyncssh.read_authorized_keys(str(self.authorized_keys))
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s: %s: refusing every key", self.authorized_keys, exc)
            return None

    def viewer_command(self, fingerprint: str) -> list[str]:
        """``python -P -m explorer --viewer ssh --state-file …``: -P keeps the cwd off sys.path."""
        state = self.sessions_dir / f"{key_file_name(fingerprint)}.json"
        return [
            sys.executable,
            "-P",
            "-m",
            "explorer",
            *self.viewer_args,
            "--viewer",
            "ssh",
            "--state-file",
            str(state),
        ]

    async def close_all(self, reason: str) -> None:
        """End every session with ``reason`` on its terminal; wait for the viewers to stop."""
        await asyncio.gather(*(s.end(reason) for s in list(self.sessions)))


class ViewerServer(asyncssh.SSHServer):
    """One connection: public keys from the authorized_keys file, nothing else, no forwarding."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.peer = "?"
        self.fingerprint: str | None = None
        self._keys: asyncssh.SSHAuthorizedKeys | None = None
        self._conn: asyncssh.SSHServerConnection | None = None
        self._sessions = 0
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        """Remember the peer, for the log and the keys' ``from=`` patterns."""
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        """Log a connection that never got in."""
        if self._idle is not None:
            self._idle.cancel()
        if self.fingerprint is None:
            log.info("refused %s: no authorized key", self.peer)

    def begin_auth(self, username: str) -> bool:
        """Read the keys again for each connection: a key taken out of the file is out now."""
        self._keys = self.settings.load_keys()
        return True

    def password_auth_supported(self) -> bool:
        """Passwords are never accepted."""
        return False

    def kbdint_auth_supported(self) -> bool:
        """Keyboard-interactive is never accepted."""
        return False

    def host_based_auth_supported(self) -> bool:
        """Host-based authentication is never accepted."""
        return False

    def public_key_auth_supported(self) -> bool:
        """Public keys are the only way in."""
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """A key listed in the file (its ``from=`` pattern honoured); certificates are not."""
        if self._keys is None:
            return False
        host = self.peer.rsplit(":", 1)[0]
        if self._keys.validate(key, host, host) is None:
            return False
        # asyncssh checks the signature after this; the last key accepted is the one in use
        self.fingerprint = key.get_fingerprint("sha256")
        return True

    def auth_completed(self) -> None:
        """Close a connection that opens no session (forwarding only): it has nothing to do."""
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(NO_SESSION_TIMEOUT, self._close_if_unused)

    def _close_if_unused(self) -> None:
        if self._sessions == 0 and self._conn is not None:
            log.info("closed %s (%s): no session opened", self.peer, self.fingerprint)
            self._conn.close()

    def session_requested(self) -> ViewerSession:
        """A session: the viewer, on a pty, and nothing else."""
        self._sessions += 1
        assert self.fingerprint is not None  # sessions come only after authentication
        return ViewerSession(self.settings, self.peer, self.fingerprint)


class ViewerSession(asyncssh.SSHServerSession[bytes]):
    """One session: a pty at the client's size running the viewer, bytes copied both ways."""

    def __init__(self, settings: ServeSettings, peer: str, fingerprint: str) -> None:
        self.settings = settings
        self.peer = peer
        self.fingerprint = fingerprint
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._term: str | None = None
        self._size = (80, 24, 0, 0)
        self._master: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._input = bytearray()
        self._reading = False
        self._open = True
        self._reason: str | None = None
        """Why the server ends the session (idle, stopping); None: the viewer or client did."""
        self._last_input = time.monotonic()
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None

    # -- what the client asks for ------------------------------------------------------------
    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        """Keep the channel."""
        self._chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Mapping[int, int]
    ) -> bool:
        """Accept the client's terminal: its TERM and size go to the viewer's pty."""
        self._term = term_type
        self._size = term_size
        return True

    def shell_requested(self) -> bool:
        """The session's one program is the viewer."""
        return True

    def exec_requested(self, command: str) -> bool:
        """No command of the client's is run."""
        log.info("refused exec from %s (%s)", self.peer, self.fingerprint)
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        """No subsystem (sftp) either."""
        log.info("refused subsystem %r from %s", subsystem[:32], self.peer)
        return False

    def break_received(self, msec: int) -> bool:
        """A break means nothing to the viewer."""
        return False

    def session_started(self) -> None:
        """Start the viewer, unless the client has no terminal or the server is full."""
        chan = self._chan
        assert chan is not None
        if self._term is None:
            self._refuse("ssh-serve shows a terminal console: connect with a terminal (ssh -t)")
            return
        if len(self.settings.sessions) >= self.settings.max_sessions:
            count = len(self.settings.sessions)
            log.info("refused %s (%s): %d sessions open", self.peer, self.fingerprint, count)
            self._refuse(f"{count} sessions are open; try later")
            return
        self.settings.sessions.add(self)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _refuse(self, message: str) -> None:
        assert self._chan is not None
        self._chan.write(f"depin-explorer: {message}\r\n".encode())
        self._chan.exit(EXIT_REFUSED)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        """Keys from the client to the viewer's pty."""
        self._last_input = time.monotonic()
        if self._master is None:
            return
        self._input += data
        self._flush_input()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        """Set the pty's new size and tell the viewer (the pty has no session to signal)."""
        self._size = (width, height, pixwidth, pixheight)
        if self._master is not None and self._proc is not None:
            self._set_size(self._master)
            self._signal(signal.SIGWINCH)

    def pause_writing(self) -> None:
        """The client reads slower than the viewer draws: stop reading the pty for now."""
        self._stop_reading()

    def resume_writing(self) -> None:
        """The client caught up."""
        self._start_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """The channel is gone (client quit, dropped, closed): the viewer goes with it."""
        self._open = False
        if self._task is not None and self._proc is not None and self._proc.returncode is None:
            # kept: the loop holds only a weak reference to a task
            self._stopping = asyncio.get_running_loop().create_task(self._stop())

    # -- the viewer ----------------------------------------------------------------------------
    async def _run(self) -> None:
        chan = self._chan
        assert chan is not None
        master, slave = os.openpty()
        self._master = master
        status: int | None = None
        try:
            os.set_blocking(master, False)
            self._set_size(master)
            env = viewer_env(self._term, chan.get_environment(), self.settings.server_env)
            command = self.settings.viewer_command(self.fingerprint)
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    env=env,
                    cwd=env.get("HOME", "/"),
                    start_new_session=True,  # its own process group: stopped as one
                )
            finally:
                os.close(slave)
            log.info("session start %s %s pid %d", self.peer, self.fingerprint, self._proc.pid)
            if not self._open:  # the client left while the viewer started
                await self._stop()
            self._start_reading()
            if self.settings.idle_timeout > 0:
                self._watch = asyncio.get_running_loop().create_task(self._watch_idle())
            status = await self._proc.wait()
            self._drain()
        except OSError as exc:
            log.warning(
                "session %s %s: cannot start the viewer: %s", self.peer, self.fingerprint, exc
            )
            if self._open:
                chan.write(f"depin-explorer: cannot start the console: {exc}\r\n".encode())
        finally:
            self._stop_reading()
            if self._watch is not None:
                self._watch.cancel()
            asyncio.get_running_loop().remove_writer(master)
            self._master = None
            os.close(master)
            if self._proc is not None:
                self._kill_group(signal.SIGKILL)  # anything the viewer left behind
            self.settings.sessions.discard(self)
            self._finish(status)

    def _finish(self, status: int | None) -> None:
        chan = self._chan
        assert chan is not None
        seconds = time.monotonic() - self._started
        how = self._reason or ("client gone" if not self._open else f"exit {status}")
        log.info("session end %s %s after %.0f s: %s", self.peer, self.fingerprint, seconds, how)
        if not self._open:
            return
        if self._reason is not None:
            chan.write(TERMINAL_RESET + f"depin-explorer: {self._reason}\r\n".encode())
            chan.exit(EXIT_ENDED)
        elif status is None:
            chan.exit(EXIT_ENDED)
        else:
            chan.exit(status if status >= 0 else 128 - status)

    async def end(self, reason: str) -> None:
        """End the session from the server's side: ``reason`` is shown to the client."""
        self._reason = self._reason or reason
        await self._stop()
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _watch_idle(self) -> None:
        timeout = self.settings.idle_timeout
        while True:
            left = self._last_input + timeout - time.monotonic()
            if left <= 0:
                minutes = f"{timeout / 60:g} min" if timeout >= 60 else f"{timeout:g} s"
                self._reason = f"no key pressed for {minutes}: session closed"
                await self._stop()
                return
            await asyncio.sleep(left)

    async def _stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._kill_group(signal.SIGHUP)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            self._kill_group(signal.SIGKILL)
            await proc.wait()

    def _kill_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        try:
            os.killpg(self._proc.pid, sig)  # start_new_session: its pid is its group's id
        except (ProcessLookupError, PermissionError):
            pass

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._kill_group(sig)

    # -- bytes both ways -------------------------------------------------------------------------
    def _set_size(self, fd: int) -> None:
        columns, rows = clamp_size(self._size[0], self._size[1])
        pixels = (min(self._size[2], 65535), min(self._size[3], 65535))
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, *pixels))

    def _start_reading(self) -> None:
        if self._master is not None and not self._reading and self._open:
            asyncio.get_running_loop().add_reader(self._master, self._on_output)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._master is not None and self._reading:
            asyncio.get_running_loop().remove_reader(self._master)
        self._reading = False

    def _on_output(self) -> None:
        assert self._master is not None and self._chan is not None
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the viewer closed its end (it is exiting)
            data = b""
        if not data:
            self._stop_reading()
            return
        if self._open:
            self._chan.write(data)

    def _drain(self) -> None:
        """What the viewer wrote before it exited (its last frame, the terminal restored)."""
        while self._master is not None:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EAGAIN: all read; EIO: closed
                return
            if not data:
                return
            if self._open:
                assert self._chan is not None
                self._chan.write(data)

    def _flush_input(self) -> None:
        assert self._master is not None and self._chan is not None
        loop = asyncio.get_running_loop()
        try:
            written = os.write(self._master, self._input)
        except BlockingIOError:
            written = 0
        except OSError:  # the viewer is exiting
            self._input.clear()
            return
        del self._input[:written]
        if self._input:  # the pty is full: wait for the viewer to read, and hold the client
            loop.add_writer(self._master, self._retry_input)
            if len(self._input) > INPUT_HIGH_WATER:
                self._chan.pause_reading()

    def _retry_input(self) -> None:
        assert self._master is not None and self._chan is not None
        asyncio.get_running_loop().remove_writer(self._master)
        self._flush_input()
        if len(self._input) <= INPUT_HIGH_WATER:
            self._chan.resume_reading()
