"""Debian's OpenSSH client against a real ``depin-explorer ssh-serve`` on loopback.

``require_ssh`` skips the caller when ``ssh``/``ssh-keygen`` are missing (fails under CI=true,
where .ci/run installs openssh-client). ``ssh_serve`` starts the server on a port the system
picks, with every platform dir under the test's tmp_path, and stops it on the way out.
``PtyClient`` runs ``ssh -tt`` in a real pty (its size set like a terminal's), reads what the
session draws and sends keys. ``viewers`` lists the session processes a server started, found
by the test's own directory in their command line (other test runs may hold sessions too).
Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.support.prom import _die_with_parent, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
SESSION_TIMEOUT = 40.0
"""A session's first frame on a loaded 2-core machine (a viewer starts in about 1 s here)."""
_ESCAPES = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    rb"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS, SOS, PM, APC
    rb"|\x1b[@-Z\\-_]"  # other two-byte escapes
    rb"|\x1b[()][0-9A-Za-z]"  # charset selection
)


def require_ssh() -> tuple[str, str]:
    """(ssh, ssh-keygen); skip the caller when missing, fail instead under CI=true."""
    ssh, keygen = shutil.which("ssh"), shutil.which("ssh-keygen")
    if ssh and keygen:
        return ssh, keygen
    reason = "the OpenSSH client is not installed (apt-get install openssh-client)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def make_key(directory: Path, name: str) -> Path:
    """A new ed25519 key pair without passphrase; returns the private key's path."""
    _, keygen = require_ssh()
    path = directory / name
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
        check=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    return path


def fingerprint(key: Path) -> str:
    """``SHA256:…`` of a key pair, as ssh-keygen prints it."""
    _, keygen = require_ssh()
    out = subprocess.run(
        [keygen, "-l", "-E", "sha256", "-f", f"{key}.pub"],
        check=True,
        timeout=30,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


def plain(output: bytes) -> str:
    """The session's output with escape sequences taken out (text as drawn, not placed)."""
    return _ESCAPES.sub(b"", output).decode("utf-8", errors="replace")


def server_env(tmp_path: Path) -> dict[str, str]:
    """The server's environment: every platform dir and HOME under ``tmp_path``."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(tmp_path / "home"),
        "TZ": "UTC",
        "LANG": "C.UTF-8",
    }
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        env[f"XDG_{name}_HOME"] = str(tmp_path / f"xdg-{name.lower()}")
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


@dataclass
class Server:
    """A running ``ssh-serve``: its process, port, stderr log and the client key it accepts."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    key: Path
    tmp_path: Path

    def log_text(self) -> str:
        """What the server wrote to stderr so far."""
        return self.log.read_text(errors="replace")

    def ssh_args(
        self, key: Path | None = None, *extra: str, tty: bool = True, batch: bool = True
    ) -> list[str]:
        """``ssh -tt`` to this server with ``key`` (default: the authorized one) and no agent;
        ``batch`` False lets ssh ask for a password (through SSH_ASKPASS)."""
        ssh, _ = require_ssh()
        return [
            ssh,
            *(["-tt"] if tty else []),
            "-p",
            str(self.port),
            "-i",
            str(key or self.key),
            "-F",
            "/dev/null",  # no user or system ssh_config (SendEnv, agents, control masters)
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            f"BatchMode={'yes' if batch else 'no'}",
            "-o",
            "LogLevel=ERROR",
            *extra,
            "127.0.0.1",
        ]


@contextlib.contextmanager
def ssh_serve(
    tmp_path: Path, db: Path, *options: str, authorized: Sequence[Path] | None = None
) -> Iterator[Server]:
    """Start ``depin-explorer ssh-serve`` on 127.0.0.1 (port 0: the system picks) against
    ``db``; the authorized_keys file holds ``authorized`` (default: one new key)."""
    require_ssh()
    keys = list(authorized) if authorized is not None else [make_key(tmp_path, "client")]
    authorized_keys = tmp_path / "authorized_keys"
    authorized_keys.write_text("".join(Path(f"{k}.pub").read_text() for k in keys))
    log = tmp_path / "ssh-serve.log"
    args = [
        sys.executable,
        "-m",
        "explorer",
        "ssh-serve",
        "--port",
        "0",
        "--db",
        str(db),
        "--authorized-keys",
        str(authorized_keys),
        *options,
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env(tmp_path),
            cwd=ROOT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def bound() -> int | None:
        if proc.poll() is not None:
            raise RuntimeError(f"ssh-serve exited with {proc.returncode}: {log.read_text()}")
        found = re.search(r"ssh-serve on 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        return int(found.group(1)) if found else None

    try:
        port = wait_for(bound, timeout=START_TIMEOUT, what="ssh-serve listening")
        yield Server(proc, port, log, keys[0], tmp_path)
    finally:
        stop(proc, grace=10.0)


def viewers(tmp_path: Path) -> list[psutil.Process]:
    """The session viewers (``--viewer ssh``) whose state file is under ``tmp_path``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "--viewer" in cmdline and "ssh" in cmdline and any(str(tmp_path) in a for a in cmdline):
            found.append(proc)
    return found


class PtyClient:
    """``ssh`` in a pty of its own: what the session draws, the keys sent, the exit status."""

    def __init__(self, args: list[str], size: tuple[int, int] = (120, 40)) -> None:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", "/"),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
        }
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execvpe(args[0], args, env)
        self.resize(*size, signal_client=False)
        self.output = bytearray()
        self.status: int | None = None

    def resize(self, columns: int, rows: int, *, signal_client: bool = True) -> None:
        """Set the terminal's size as a terminal emulator does: TIOCSWINSZ, then SIGWINCH."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        if signal_client:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGWINCH)

    def send(self, data: bytes) -> None:
        """Type ``data``."""
        os.write(self.fd, data)

    def _pump(self, wait: float) -> bool:
        """Read what is there within ``wait`` s; False once the client has exited."""
        ready, _, _ = select.select([self.fd], [], [], wait)
        if ready:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            self.output += chunk
            if chunk:
                return True
        done, code = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.status = os.waitstatus_to_exitcode(code)
            self._drain()
            return False
        return True

    def _drain(self) -> None:
        while select.select([self.fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def read_until(self, text: str, since: int = 0, timeout: float = SESSION_TIMEOUT) -> str:
        """Read until the output from byte ``since`` on shows ``text`` (escapes taken out)."""
        end = time.monotonic() + timeout
        while True:
            shown = plain(bytes(self.output[since:]))
            if text in shown:
                return shown
            if self.status is not None or time.monotonic() >= end:
                tail = shown[-1500:]
                raise AssertionError(f"{text!r} not shown (exit {self.status}); last: {tail!r}")
            self._pump(0.1)

    def wait(self, timeout: float = SESSION_TIMEOUT) -> int:
        """The client's exit status, reading its output until it exits."""
        end = time.monotonic() + timeout
        while self.status is None:
            if time.monotonic() >= end:
                raise AssertionError(f"ssh still running after {timeout:g} s")
            self._pump(0.1)
        return self.status

    def kill(self) -> None:
        """SIGKILL the client (a dropped connection) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.wait(10.0)

    def close(self) -> None:
        """Kill the client if it still runs; close the pty."""
        if self.status is None:
            self.kill()
        os.close(self.fd)


@contextlib.contextmanager
def pty_client(args: list[str], size: tuple[int, int] = (120, 40)) -> Iterator[PtyClient]:
    """A :class:`PtyClient`, killed and closed on the way out."""
    client = PtyClient(args, size)
    try:
        yield client
    finally:
        client.close()


def no_viewer_left(
    server: Server, seen: Sequence[psutil.Process] = (), timeout: float = 15.0
) -> None:
    """Wait until the server has no child left, no viewer of this test runs and each viewer in
    ``seen`` is gone and reaped (a zombie is still a process left behind); fail naming them."""
    parent = psutil.Process(server.proc.pid)

    def left() -> list[psutil.Process]:
        found = {p.pid: p for p in [*parent.children(recursive=True), *viewers(server.tmp_path)]}
        found.update({p.pid: p for p in seen if p.is_running()})
        return list(found.values())

    try:
        wait_for(lambda: not left(), timeout=timeout, what="every session viewer stopped")
    except TimeoutError:
        described = []
        for proc in left():
            with contextlib.suppress(psutil.Error):
                described.append((proc.pid, proc.status(), " ".join(proc.cmdline())))
        raise AssertionError(f"viewers left behind: {described}") from None
