"""Shared by the benchmark scripts: BUDGET lines, isolated app environments, a real pty.

Every process the benchmarks start runs with its own HOME and XDG directories under a temporary
folder, so nothing touches the real home, and is stopped by its own pid.
"""

from __future__ import annotations

import compileall
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The app of this checkout (not whichever one the venv's console script points at), so the
# benchmarks measure the code beside them: ``python -m explorer`` with PYTHONPATH at the root.
APP = [sys.executable, "-m", "explorer"]
GLANCES = BIN / "glances"
FIXTURE = ROOT / "tests" / "fixtures" / "node_exporter_1.5.0_2cpu.prom"
TERM_SIZE = (120, 40)
# Generated data lives outside the work tree (about 2 GB); DEPIN_BENCH_DIR moves it.
DATA_DIR = Path(
    os.environ.get("DEPIN_BENCH_DIR", Path(tempfile.gettempdir()) / "depin-explorer-bench")
)

# CSI, OSC and two-byte escape sequences: what is left is the text a person would see.
_ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


PACKAGES = ("explorer", "screens", "sources", "cache")


def ensure_bytecode() -> None:
    """Compile the project's modules to .pyc, as pip does for the peers' packages.

    Without it, a shell with PYTHONDONTWRITEBYTECODE=1 (this VM has it) would compile every
    module of ours on every start (about 20 ms) while Textual and glances load their .pyc.
    """
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)


def exporter_fixture() -> Path:
    """The real node_exporter 1.5.0 body (tests/fixtures/README.md)."""
    return FIXTURE


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def budget_line(
    name: str,
    passed: bool,
    measured: str,
    budget: str,
    peer: str | None = None,
    ratio: str | None = None,
) -> str:
    """The one line per budget that ``make bench`` collects (format fixed by issue 8)."""
    verdict = "PASS" if passed else "FAIL"
    return (
        f"BUDGET {name} {verdict} measured={measured} budget={budget} "
        f"peer={peer or '-'} ratio={ratio or '-'}"
    )


def isolated_env(home: Path) -> dict[str, str]:
    """An environment whose HOME and XDG dirs are inside ``home``, for the app and its peers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "TEXTUAL", "DEPIN_EXPLORER", "COINGECKO"))
        and k not in ("COLUMNS", "LINES", "TMUX", "NO_COLOR")
    }
    for name in ("config", "data", "state", "cache", "runtime"):
        path = home / name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[f"XDG_{name.upper()}_HOME" if name != "runtime" else "XDG_RUNTIME_DIR"] = str(path)
    env.update(HOME=str(home), TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env["PYTHONPATH"] = str(ROOT)
    return env


class PtyProcess:
    """A program on a real pseudo-terminal, its output drained by a thread.

    ``wait_for`` returns the moment the text first appeared in the output, taken when the bytes
    arrived (not when the caller looked), with escape sequences stripped.
    """

    def __init__(
        self, argv: Sequence[str], env: dict[str, str], size: tuple[int, int] = TERM_SIZE
    ) -> None:
        import fcntl
        import struct
        import termios

        master, slave = os.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self._master = master
        self._lock = threading.Condition()
        self._text = b""  # stripped output, trimmed to the last 256 KiB
        self._raw_tail = b""  # an escape sequence may be split across reads
        self._seen: dict[bytes, float] = {}
        self._closed = False
        self.bytes_out = 0
        """Bytes the program wrote to its terminal so far (what an SSH session would carry)."""

        def controlling_tty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=env.get("HOME"),
            start_new_session=True,
            preexec_fn=controlling_tty,  # the pty becomes its controlling terminal
            close_fds=True,
        )
        os.close(slave)
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self._master], [], [], 0.5)
                if not ready:
                    if self.proc.poll() is not None:
                        break
                    continue
                chunk = os.read(self._master, 65536)
            except OSError:
                break
            if not chunk:
                break
            arrived = time.perf_counter()
            self.bytes_out += len(chunk)
            data = self._raw_tail + chunk
            cut = data.rfind(b"\x1b")
            if cut >= len(data) - 64:  # keep a possibly unfinished sequence for the next read
                data, self._raw_tail = data[:cut], data[cut:]
            else:
                self._raw_tail = b""
            with self._lock:
                self._text = (self._text + _ANSI.sub(b"", data))[-262144:]
                for marker in list(self._seen):
                    if self._seen[marker] < 0 and marker in self._text:
                        self._seen[marker] = arrived
                self._lock.notify_all()
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def wait_for(self, text: str | Sequence[str], timeout: float = 60.0) -> float:
        """Seconds from process start until ``text`` (or any of several) was on the terminal.

        TimeoutError if it never appears, with the last output in the message.
        """
        markers = [m.encode() for m in ([text] if isinstance(text, str) else text)]
        deadline = time.monotonic() + timeout
        with self._lock:
            for marker in markers:
                self._seen.setdefault(marker, -1.0)
                if self._seen[marker] < 0 and marker in self._text:
                    self._seen[marker] = time.perf_counter()
            while all(self._seen[m] < 0 for m in markers):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    tail = self._text[-600:].decode(errors="replace")
                    raise TimeoutError(f"{text!r} never appeared; last output: {tail!r}")
                self._lock.wait(min(left, 0.5))
            return min(self._seen[m] for m in markers if self._seen[m] >= 0) - self.started

    def forget(self) -> None:
        """Drop the output seen so far, so the next ``wait_for`` looks only at new frames."""
        with self._lock:
            self._text = b""
            self._seen.clear()

    def send(self, keys: str) -> None:
        os.write(self._master, keys.encode())

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its threads (and any children)."""
        proc = psutil.Process(self.proc.pid)
        times = proc.cpu_times()
        total = times.user + times.system
        for child in proc.children(recursive=True):
            with _gone():
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return total

    def rss_mb(self) -> float:
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, to this process only (by pid); then close the terminal."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._thread.join(timeout=2)
        os.close(self._master)

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _gone:
    """Ignore a child process that exited between listing and reading it."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, psutil.Error)


def scratch_copy(source: Path, target: Path) -> Path:
    """A private copy of a generated cache for benchmarks that write into it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def remove_cache(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
