"""Looking after the cache file: what it holds, a consistent backup, an integrity verdict, vacuum.

Everything here but :func:`vacuum` only reads the cache, so it works beside a running collector:
``info``, ``backup`` and ``check`` open it read-only (``mode=ro``), and a backup is one read
transaction (``VACUUM INTO``): a consistent snapshot of the last committed poll, never a torn copy.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cache.db import SCHEMA_VERSION, CacheError, open_reader, schema_version
from cache.lock import holder_pid

_TABLES = (
    "polls",
    "market",
    "network_stats",
    "gpu_models",
    "poll_errors",
    "node_samples",
    "node_rollups",
    "nodes",
    "devices",
    "rewards",
    "alerts",
    "alert_pending",
)


@dataclass(frozen=True)
class SourceSpan:
    """The polls one source has stored."""

    source: str
    polls: int
    oldest: str
    newest: str


@dataclass(frozen=True)
class DbInfo:
    """What ``db info`` shows."""

    path: Path
    size_bytes: int
    wal_bytes: int
    schema_version: int
    tables: list[tuple[str, int]]
    sources: list[SourceSpan]
    writer_pid: int | None
    progress: dict[str, str]
    """Retention progress from ``meta`` (how far hours, days and raw expiry have got)."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def database_info(path: Path) -> DbInfo:
    """Size, schema, row counts, poll span per source and writer of a cache file."""
    conn = open_reader(path)
    try:
        conn.execute("BEGIN")  # one snapshot for every count, even while a collector writes
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        tables = [
            (name, int(conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]))
            for name in _TABLES
            if name in present
        ]
        sources = [
            SourceSpan(r[0], r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT source, COUNT(*), MIN(finished_at), MAX(finished_at) FROM polls "
                "GROUP BY source ORDER BY source"
            )
        ]
        progress = {
            r[0].removeprefix("retention."): r[1]
            for r in conn.execute("SELECT key, value FROM meta WHERE key LIKE 'retention.%'")
        }
        version = schema_version(conn)
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise CacheError(f"cannot read {path}: {exc}") from exc
    finally:
        conn.close()
    return DbInfo(
        path=path,
        size_bytes=_size(path),
        wal_bytes=_size(path.with_name(path.name + "-wal")),
        schema_version=version,
        tables=tables,
        sources=sources,
        writer_pid=holder_pid(path),
        progress=progress,
    )


def backup(path: Path, dest: Path) -> int:
    """Write a consistent copy of the cache to ``dest`` (created 0600); return its size.

    Refuses an existing ``dest``. The copy is compacted and in rollback-journal mode, so it opens
    anywhere, read-only media included. Written beside ``dest`` first and linked into place, so
    ``dest`` never exists half written.
    """
    if dest.exists() or dest.is_symlink():
        raise FileExistsError(f"{dest} exists; choose a new file name")
    if not dest.parent.is_dir():
        raise CacheError(f"no such directory: {dest.parent}")
    conn = open_reader(path)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)  # VACUUM INTO accepts an empty file, and keeps its mode
        conn.execute("VACUUM INTO ?", (str(tmp),))
        conn.close()
        problems = _integrity(tmp, quick=True)
        if problems:
            raise CacheError(f"the copy failed its check: {problems[0]}")
        try:
            os.link(tmp, dest)  # fails if dest appeared meanwhile: never overwrite
        except FileExistsError:
            raise FileExistsError(f"{dest} exists; choose a new file name") from None
        except OSError:
            if dest.exists():
                raise FileExistsError(f"{dest} exists; choose a new file name") from None
            os.rename(tmp, dest)  # a file system without hard links
    except sqlite3.DatabaseError as exc:
        raise CacheError(f"backup of {path} failed: {exc}") from exc
    finally:
        conn.close()
        tmp.unlink(missing_ok=True)
    return _size(dest)


@dataclass(frozen=True)
class CheckResult:
    """The verdict of ``db check``."""

    ok: bool
    problems: list[str]


def _integrity(path: Path, *, quick: bool = False) -> list[str]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        pragma = "quick_check" if quick else "integrity_check"
        problems = [r[0] for r in conn.execute(f"PRAGMA {pragma}") if r[0] != "ok"]
        for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
            problems.append(f"{table} row {rowid}: refers to a missing {parent} row")
        return problems
    finally:
        conn.close()


def check(path: Path) -> CheckResult:
    """``PRAGMA integrity_check`` and ``foreign_key_check``; also a schema this build knows."""
    if not path.is_file():
        raise CacheError(f"no cache at {path}")
    try:
        problems = _integrity(path)
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as c:
            version = schema_version(c)
    except (sqlite3.DatabaseError, CacheError) as exc:
        return CheckResult(False, [str(exc)])
    if version > SCHEMA_VERSION:
        problems.append(f"schema version {version} is newer than this depin-explorer understands")
    return CheckResult(not problems, problems)


def vacuum(conn: sqlite3.Connection) -> None:
    """Rebuild the file without its free pages and truncate the WAL (writer connection only).

    VACUUM writes a full copy through the WAL: it needs about the file's size in free disk.
    """
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
