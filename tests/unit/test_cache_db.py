"""cache.db: migrations, schema version, pragmas, and what happens with files that are not ours."""

from __future__ import annotations

import multiprocessing
import queue
import random
import sqlite3
from pathlib import Path

import pytest

from cache.db import (
    SCHEMA_VERSION,
    CacheError,
    SchemaTooNewError,
    open_reader,
    open_writer,
    write_txn,
)

EXPECTED_TABLES = {"meta", "polls", "market"}


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def stored_version(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    finally:
        conn.close()


def make_newer(path: Path) -> None:
    open_writer(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    conn.close()


def test_schema_version_is_a_positive_count_of_migrations() -> None:
    assert SCHEMA_VERSION >= 1


def test_new_file_gets_tables_and_schema_version(db_path: Path) -> None:
    assert not db_path.exists()
    conn = open_writer(db_path)
    try:
        assert EXPECTED_TABLES <= tables(conn)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(polls)")}
        assert {"source", "finished_at", "data_at", "status", "error_kind", "retry_at"} <= columns
    finally:
        conn.close()
    assert db_path.exists()
    assert stored_version(db_path) == [("schema_version", str(SCHEMA_VERSION))]


def test_reopening_is_idempotent(db_path: Path) -> None:
    open_writer(db_path).close()
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO polls (source, started_at, finished_at, data_at, status) "
            "VALUES ('x', 'a', 'b', 'c', 'ok')"
        )
    schema_before = conn.execute(
        "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    ).fetchall()
    conn.close()

    for _ in range(3):
        open_writer(db_path).close()

    conn = sqlite3.connect(db_path)
    try:
        schema_after = conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY name"
        ).fetchall()
        assert schema_after == schema_before
        assert conn.execute("SELECT COUNT(*) FROM polls").fetchone()[0] == 1
    finally:
        conn.close()
    assert stored_version(db_path) == [("schema_version", str(SCHEMA_VERSION))]


def test_writer_refuses_a_newer_schema(db_path: Path) -> None:
    """DB-10: an older app never writes a newer schema, and says "upgrade depin-explorer"."""
    make_newer(db_path)
    with pytest.raises(SchemaTooNewError, match="upgrade depin-explorer"):
        open_writer(db_path)
    # refusing must not rewrite the version it refused
    assert stored_version(db_path) == [("schema_version", str(SCHEMA_VERSION + 1))]


def test_reader_refuses_a_newer_schema(db_path: Path) -> None:
    make_newer(db_path)
    with pytest.raises(SchemaTooNewError, match="upgrade depin-explorer"):
        open_reader(db_path)


def test_schema_too_new_is_a_cache_error() -> None:
    assert issubclass(SchemaTooNewError, CacheError)


def test_foreign_sqlite_file_is_a_cache_error_and_left_alone(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.close()

    with pytest.raises(CacheError) as caught:
        open_writer(db_path)
    assert not isinstance(caught.value, SchemaTooNewError)
    assert "not a depin-explorer cache" in str(caught.value)

    with pytest.raises(CacheError):
        open_reader(db_path)

    conn = sqlite3.connect(db_path)
    try:
        assert tables(conn) == {"invoices"}
        assert conn.execute("SELECT total FROM invoices").fetchall() == [(12.5,)]
    finally:
        conn.close()


def test_random_bytes_file_is_a_cache_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    garbage = random.Random(8).randbytes(16384)
    db_path.write_bytes(garbage)

    with pytest.raises(CacheError) as caught:
        open_writer(db_path)
    assert not isinstance(caught.value, sqlite3.Error)
    assert str(db_path) in str(caught.value)

    with pytest.raises(CacheError) as caught_reader:
        open_reader(db_path)
    assert not isinstance(caught_reader.value, sqlite3.Error)


def test_zero_length_file_initialises_normally(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    assert db_path.stat().st_size == 0
    conn = open_writer(db_path)
    try:
        assert EXPECTED_TABLES <= tables(conn)
    finally:
        conn.close()
    assert stored_version(db_path) == [("schema_version", str(SCHEMA_VERSION))]


def test_writer_sets_wal_and_busy_timeout(writer: sqlite3.Connection, db_path: Path) -> None:
    assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert writer.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert writer.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # WAL is a property of the file: a plain connection sees it too
    plain = sqlite3.connect(db_path)
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        plain.close()


def test_reader_is_read_only(writer: sqlite3.Connection, db_path: Path) -> None:
    reader = open_reader(db_path)
    try:
        assert reader.execute("SELECT COUNT(*) FROM polls").fetchone()[0] == 0
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute(
                "INSERT INTO polls (source, started_at, finished_at, data_at, status) "
                "VALUES ('x', 'a', 'b', 'c', 'ok')"
            )
    finally:
        reader.close()


def test_reader_on_missing_file_is_a_cache_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "none.db"
    with pytest.raises(CacheError):
        open_reader(missing)
    assert not missing.exists()
    assert not missing.parent.exists()


def test_reader_on_zero_length_file_is_a_cache_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    with pytest.raises(CacheError):
        open_reader(db_path)


# -- three processes migrating one new file at once (DB-04) -------------------------------------

PROCESSES = 3
ROUNDS = 25  # the race is timing-dependent: several fresh files make a failure near-certain


def _open_writers_in_child(paths: list[str], barrier, results) -> None:  # type: ignore[no-untyped-def]
    for round_no, path in enumerate(paths):
        try:
            barrier.wait(timeout=30)  # every process opens the same new file at the same moment
            conn = open_writer(Path(path))
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            conn.close()
            results.put((round_no, "ok", row[0]))
        except BaseException as exc:  # report everything, the parent asserts
            results.put((round_no, "error", f"{type(exc).__name__}: {exc}"))


def test_three_processes_migrating_a_new_file_at_once(tmp_path: Path) -> None:
    paths = [tmp_path / f"race{n}" / "history.db" for n in range(ROUNDS)]
    for path in paths:
        path.parent.mkdir()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_open_writers_in_child, args=([str(p) for p in paths], barrier, results))
        for _ in range(PROCESSES)
    ]
    outcomes: list[tuple[int, str, str]] = []
    try:
        for proc in procs:
            proc.start()
        for _ in range(PROCESSES * ROUNDS):
            try:
                outcomes.append(results.get(timeout=60))
            except queue.Empty:
                pytest.fail(f"the children went quiet for 60 s; so far: {outcomes}")
        for proc in procs:
            proc.join(timeout=30)
        assert [p.exitcode for p in procs] == [0] * PROCESSES
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    errors = sorted({o for o in outcomes if o[1] != "ok"})
    assert errors == [], f"{len(errors)} of {len(outcomes)} opens failed, first: {errors[0]}"
    assert sorted(outcomes) == sorted(
        (n, "ok", str(SCHEMA_VERSION)) for n in range(ROUNDS) for _ in range(PROCESSES)
    )
    for path in paths:
        assert stored_version(path) == [("schema_version", str(SCHEMA_VERSION))]
        conn = sqlite3.connect(path)
        try:
            assert EXPECTED_TABLES <= tables(conn)
        finally:
            conn.close()


def test_write_txn_commits_rolls_back_and_keeps_the_real_error(tmp_path: Path) -> None:
    conn = open_writer(tmp_path / "c.db")
    try:
        with write_txn(conn):
            conn.execute("INSERT INTO meta VALUES ('a', '1')")
        with pytest.raises(ValueError, match="boom"), write_txn(conn):
            conn.execute("INSERT INTO meta VALUES ('b', '2')")
            raise ValueError("boom")
        # SQLite already rolled back (as SQLITE_FULL does): the real error, not "no transaction"
        with pytest.raises(ValueError, match="disk"), write_txn(conn):
            conn.execute("ROLLBACK")
            raise ValueError("disk full")
        keys = {r[0] for r in conn.execute("SELECT key FROM meta")}
        assert "a" in keys and "b" not in keys and not conn.in_transaction
    finally:
        conn.close()
