"""The single-writer lock of a cache file: ``fcntl.flock`` on a sidecar ``<db>.lock``.

Exactly one process writes a cache (the poller of a TUI, or a ``depin-explorer poll`` collector);
every other process reads it. The lock is an advisory ``flock`` on ``<db>.lock``, so the kernel
drops it when the holder dies, even on SIGKILL: a stale pid in the file never blocks anyone. The
file holds the holder's pid for messages only; who holds the lock is always asked of the kernel.

The lock file is never deleted (deleting a flock file lets two processes lock two different
inodes of the same name); release empties it instead.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from cache.db import CacheError, ReadOnlyCacheError


def lock_path(db_path: Path) -> Path:
    """The sidecar lock file of a cache file."""
    return db_path.with_name(db_path.name + ".lock")


class WriterLockHeldError(CacheError):
    """Another process holds the writer lock."""

    def __init__(self, db_path: Path, pid: int | None) -> None:
        self.pid = pid
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"{who} is writing {db_path} (it holds {lock_path(db_path).name})")


class WriterLock:
    """``acquire()`` without blocking, ``release()``, or ``with WriterLock(path):``."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if it is free; False when another process (or object) holds it."""
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC (Python's default): a child we spawn must not inherit, and keep, the lock.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # a reader, not a writer
                raise ReadOnlyCacheError(
                    f"cannot write the cache {self.db_path} as uid {os.getuid()}: "
                    f"cannot create {self.path.name}: {exc.strerror}"
                ) from exc
            raise CacheError(f"cannot create the writer lock {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise CacheError(f"cannot lock {self.path}: {exc.strerror}") from exc
        try:
            os.fchmod(fd, 0o600)  # a file left by an older run may have a wider mode
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is informational; the flock is what counts
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock back (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale pid for the next reader of the file
        except OSError:
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> WriterLock:
        if not self.acquire():
            raise WriterLockHeldError(self.db_path, holder_pid(self.db_path))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # at interpreter shutdown; the kernel drops the lock anyway
            pass


def holder_pid(db_path: Path) -> int | None:
    """The pid of the process holding the writer lock, or None when nobody holds it.

    Asks the kernel (a shared non-blocking flock), never trusts the file alone. Returns 0 when the
    lock is held but the pid cannot be read (the holder is between locking and writing it, or
    the file is not readable).
    """
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return 0  # exists but unreadable: assume a writer rather than write beside one
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        for _ in range(20):  # the holder writes its pid right after locking
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            if text.isdigit():
                return int(text)
            time.sleep(0.005)
        return 0
    finally:
        os.close(fd)
