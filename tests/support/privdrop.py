"""Run a function as an unprivileged user in a forked child (docs/reliability.md).

Root ignores permission bits, so a permission test run as root passes falsely. When the tests run
as root (CI), a system user is created once (``useradd``) and each call forks, drops to it with
setgroups/setgid/setuid and calls the function without exec: the test's virtual environment may
not be readable by that user, so everything the function needs must be imported before the fork.
The result (or the exception's type and text) comes back through a pipe. As a non-root user the
function runs in the fork as that user unchanged.
"""

from __future__ import annotations

import os
import pickle
import pwd
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

USER = "depin-reliability"
LIMIT = 60.0


@dataclass(frozen=True)
class Unprivileged:
    """Who the child runs as, and a directory it owns (outside root's 0700 pytest dirs)."""

    uid: int
    gid: int
    home: Path

    def run(self, func: Callable[[], Any], limit: float = LIMIT) -> Any:
        """``func()`` in a forked child as this user; its exception is re-raised as ChildError."""
        return run_as(self.uid, self.gid, func, limit)


class ChildError(Exception):
    """What the child raised: ``kind`` is the exception's class name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def _user() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        tool = shutil.which("useradd")
        if tool is None:
            pytest.skip("running as root without useradd: cannot test as an unprivileged user")
        done = subprocess.run(
            [tool, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if done.returncode not in (0, 9):  # 9: created meanwhile by a parallel run
            pytest.skip(f"useradd failed: {done.stderr.decode(errors='replace')[:200]}")
        entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


@pytest.fixture
def unprivileged() -> Iterator[Unprivileged]:
    """An unprivileged user and a fresh directory it owns, removed afterwards."""
    uid, gid = _user()
    home = Path(tempfile.mkdtemp(prefix="depin-unpriv-", dir="/tmp"))
    os.chmod(home, 0o755)
    if os.geteuid() == 0:
        os.chown(home, uid, gid)
    try:
        yield Unprivileged(uid, gid, home)
    finally:
        for path in [home, *home.rglob("*")]:  # undo chmods that would block the removal
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o755)
        shutil.rmtree(home, ignore_errors=True)


def run_as(uid: int, gid: int, func: Callable[[], Any], limit: float = LIMIT) -> Any:
    """Fork; in the child drop to ``uid``/``gid`` and call ``func``; return its result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            try:
                payload = ("ok", func())
            except BaseException as exc:  # everything goes back to the parent
                payload = ("error", type(exc).__name__, str(exc))
            data = pickle.dumps(payload)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.2)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if not chunks:
        raise AssertionError(f"the unprivileged child gave no result within {limit} s")
    result = pickle.loads(b"".join(chunks))
    if result[0] == "error":
        raise ChildError(result[1], result[2])
    return result[1]
