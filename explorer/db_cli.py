"""``depin-explorer db``: look after the cache file (info, prune, vacuum, backup, check).

Exit status: 0 done (``check``: intact); 1 the file is damaged (``check``) or the operation failed;
2 refused or a usage problem: ``--offline`` or another process holding the writer lock for
``prune``/``vacuum``, an existing backup target, no cache file, a bad config. One line on stderr,
never a traceback.

explorer/cli.py registers this group at its end; import ``explorer.cli``, not this module, first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from cache.db import SCHEMA_VERSION, CacheError, utc_now
from cache.lock import WriterLock, holder_pid, lock_path
from explorer.cli import Setup, _merge, fail, global_options, load_setup
from sources.text import safe_text

EXIT_FAILED = 1
EXIT_REFUSED = 2
CLOCK: Callable[[], datetime] = utc_now


def _mb(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} B"


@click.group("db")
@global_options
@click.pass_context
def db(ctx: click.Context, **globals_: Any) -> None:
    """Look after the SQLite history: info, prune, vacuum, backup, check."""
    _merge(ctx, **globals_)


def _setup(ctx: click.Context, globals_: dict[str, Any]) -> Setup:
    _merge(ctx, **globals_)
    return load_setup(ctx)


def _require_file(path: Path) -> None:
    if not path.is_file():
        fail(f"no cache at {path}", EXIT_REFUSED)


@db.command("info")
@global_options
@click.pass_context
def db_info(ctx: click.Context, **globals_: Any) -> None:
    """File size, tables and rows, polls per source, schema version, writer."""
    setup = _setup(ctx, globals_)
    _require_file(setup.db_path)
    from cache.maintenance import database_info

    try:
        info = database_info(setup.db_path)
    except CacheError as exc:
        fail(str(exc), EXIT_FAILED)
        return
    wal = f" (+ WAL {_mb(info.wal_bytes)})" if info.wal_bytes else ""
    click.echo(f"file      {info.path}  {_mb(info.size_bytes)}{wal}")
    newer = "" if info.schema_version <= SCHEMA_VERSION else "  (newer than this build!)"
    click.echo(f"schema    {info.schema_version} (this build: {SCHEMA_VERSION}){newer}")
    writer = "none" if info.writer_pid is None else f"pid {info.writer_pid or '?'}"
    click.echo(f"writer    {writer}")
    click.echo("\ntable              rows")
    for name, rows in info.tables:
        click.echo(f"{name:<14} {rows:>10,}")
    if info.sources:
        click.echo("\nsource         polls  oldest                    newest")
        for s in info.sources:
            name = safe_text(s.source, 40)  # a copied file's text is untrusted
            click.echo(f"{name:<12} {s.polls:>7,}  {safe_text(s.oldest)}  {safe_text(s.newest)}")
    if info.progress:
        click.echo(
            "\nretention  "
            + "  ".join(
                f"{safe_text(k, 40)} {safe_text(v, 40)}" for k, v in sorted(info.progress.items())
            )
        )


def _writer(ctx: click.Context, setup: Setup, verb: str) -> WriterLock:
    """The writer lock, or a refusal: never write beside another writer or offline."""
    if ctx.obj.offline:
        fail(f"db {verb} writes to the cache; not with --offline", EXIT_REFUSED)
    _require_file(setup.db_path)
    lock = WriterLock(setup.db_path)
    try:
        got = lock.acquire()
    except CacheError as exc:
        fail(str(exc), EXIT_REFUSED)
        raise
    if not got:
        pid = holder_pid(setup.db_path)
        who = f"process {pid}" if pid else "another process"
        fail(
            f"{who} holds the writer lock ({lock_path(setup.db_path).name}); it prunes on its "
            f"own schedule. Stop it to {verb} by hand.",
            EXIT_REFUSED,
        )
    return lock


@db.command("prune")
@global_options
@click.pass_context
def db_prune(ctx: click.Context, **globals_: Any) -> None:
    """Apply the [retention] policy now: roll up and delete what is past its age."""
    setup = _setup(ctx, globals_)
    lock = _writer(ctx, setup, "prune")
    from cache.db import open_writer
    from cache.retention import apply_retention

    try:
        policy = setup.config.retention.policy()
        conn = open_writer(setup.db_path)
        try:
            report = apply_retention(conn, policy, _now(ctx))
        finally:
            conn.close()
    except (CacheError, sqlite3.DatabaseError) as exc:
        fail(f"prune failed: {exc}", EXIT_FAILED)
        return
    finally:
        lock.release()
    written = sum(report.rollups_written.values())
    click.echo(
        f"pruned {setup.db_path}: {report.samples_rolled_up:,} raw samples rolled up, "
        f"{written:,} rollup rows written, {report.rollups_deleted:,} deleted, "
        f"{report.polls_deleted:,} polls deleted, {report.sparklines_dropped:,} sparklines "
        f"dropped ({report.transactions} transactions, longest "
        f"{report.longest_transaction_ms:.0f} ms)"
    )


def _now(ctx: click.Context) -> datetime:
    """The clock (tests replace ``CLOCK``)."""
    return CLOCK()


@db.command("vacuum")
@global_options
@click.pass_context
def db_vacuum(ctx: click.Context, **globals_: Any) -> None:
    """Give free pages back to the file system (needs the file's size in free disk)."""
    setup = _setup(ctx, globals_)
    lock = _writer(ctx, setup, "vacuum")
    from cache.db import open_writer
    from cache.maintenance import vacuum

    before = setup.db_path.stat().st_size
    try:
        conn = open_writer(setup.db_path)
        try:
            vacuum(conn)
        finally:
            conn.close()
    except (CacheError, sqlite3.DatabaseError) as exc:
        fail(f"vacuum failed: {exc}", EXIT_FAILED)
        return
    finally:
        lock.release()
    after = setup.db_path.stat().st_size
    click.echo(f"vacuumed {setup.db_path}: {_mb(before)} -> {_mb(after)}")


@db.command("backup")
@global_options
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def db_backup(ctx: click.Context, path: Path, **globals_: Any) -> None:
    """Write a consistent copy to PATH (mode 0600), also while a collector writes."""
    setup = _setup(ctx, globals_)
    _require_file(setup.db_path)
    from cache.maintenance import backup

    try:
        size = backup(setup.db_path, path.expanduser())
    except FileExistsError as exc:
        fail(str(exc), EXIT_REFUSED)
        return
    except (CacheError, OSError, sqlite3.DatabaseError) as exc:
        fail(f"backup failed: {exc}", EXIT_FAILED)
        return
    click.echo(f"backed up {setup.db_path} to {path} ({_mb(size)}, checked)")


@db.command("check")
@global_options
@click.pass_context
def db_check(ctx: click.Context, **globals_: Any) -> None:
    """Integrity and foreign-key check: exit 0 when intact, 1 when damaged."""
    setup = _setup(ctx, globals_)
    _require_file(setup.db_path)
    from cache.maintenance import check

    result = check(setup.db_path)
    for problem in result.problems[:20]:
        click.echo(f"  {safe_text(problem, 300)}", err=True)
    if result.ok:
        click.echo(f"ok: {setup.db_path} passed integrity_check and foreign_key_check")
        return
    more = len(result.problems)
    fail(f"damaged: {setup.db_path}: {more} problem{'s' if more > 1 else ''}", EXIT_FAILED)
