"""cache.lock: one writer per cache file, asked of the kernel, gone with its holder (SIGKILL)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache.lock import WriterLock, WriterLockHeldError, holder_pid, lock_path

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from pathlib import Path
from cache.lock import WriterLock
lock = WriterLock(Path(sys.argv[1]))
print("got" if lock.acquire() else "busy", flush=True)
time.sleep(60)
"""


def spawn_holder(db: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "got"
    return proc


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


def test_free_lock_is_taken_released_and_file_is_private(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    assert holder_pid(db) is None  # no lock file yet
    lock = WriterLock(db)
    assert lock.acquire() and lock.held
    assert lock.acquire()  # re-entrant for the same object
    assert holder_pid(db) == os.getpid()
    assert stat.S_IMODE(lock_path(db).stat().st_mode) == 0o600
    assert lock_path(db).read_text().strip() == str(os.getpid())
    lock.release()
    assert not lock.held and holder_pid(db) is None
    assert lock_path(db).exists() and lock_path(db).read_text() == ""
    lock.release()  # twice is fine


def test_second_holder_in_the_same_process_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with WriterLock(db):
        assert not WriterLock(db).acquire()
        with pytest.raises(WriterLockHeldError, match=f"process {os.getpid()} is writing"):
            with WriterLock(db):
                pass
    assert WriterLock(db).acquire()


def test_other_process_holds_it_until_it_exits(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    proc = spawn_holder(db)
    try:
        assert holder_pid(db) == proc.pid
        lock = WriterLock(db)
        assert not lock.acquire()
        with pytest.raises(WriterLockHeldError) as info:
            lock.__enter__()
        assert info.value.pid == proc.pid
    finally:
        stop(proc)
    assert holder_pid(db) is None
    assert WriterLock(db).acquire()


def test_sigkill_releases_it_and_a_stale_pid_is_not_trusted(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    proc = spawn_holder(db)
    stop(proc, signal.SIGKILL)
    assert lock_path(db).read_text().strip() == str(proc.pid)  # the dead pid is still written
    assert holder_pid(db) is None  # but the kernel says nobody holds the lock
    lock = WriterLock(db)
    assert lock.acquire()
    assert lock_path(db).read_text().strip() == str(os.getpid())
    lock.release()


def test_lock_with_a_wide_mode_left_behind_is_narrowed(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    lock_path(db).write_text("123\n")
    lock_path(db).chmod(0o644)
    with WriterLock(db):
        assert stat.S_IMODE(lock_path(db).stat().st_mode) == 0o600


def test_waits_briefly_for_a_pid_being_written(tmp_path: Path) -> None:
    import fcntl

    db = tmp_path / "c.db"
    fd = os.open(lock_path(db), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # locked, pid not written (yet): held, pid unknown
        started = time.monotonic()
        assert holder_pid(db) == 0
        assert time.monotonic() - started < 1
    finally:
        os.close(fd)
