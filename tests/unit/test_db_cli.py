"""``depin-explorer db``: info, prune, vacuum, backup (also during writes), check, and refusals."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cache.db import SCHEMA_VERSION, open_reader, open_writer
from cache.lock import WriterLock
from cache.queries import latest_fleet
from cache.store import PollRecord, write_poll
from explorer.cli import cli  # imports explorer.db_cli, which needs explorer.cli first
from sources.models import NodeSample, Reading

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def run(runner: CliRunner, *args: object) -> Result:
    return runner.invoke(cli, [str(a) for a in args])


def fill(db: Path, polls: int = 50, step: timedelta = timedelta(minutes=30)) -> None:
    conn = open_writer(db)
    try:
        for i in range(polls):
            at = T0 + step * i
            nodes = [
                NodeSample(node=f"n{k}", source_kind="exporter", up=True, cpu_pct=i)
                for k in range(3)
            ]
            write_poll(conn, PollRecord("fleet", at, at, Reading(nodes=nodes)))
    finally:
        conn.close()


def test_info_lists_tables_sources_and_schema(runner: CliRunner, db_path: Path) -> None:
    fill(db_path)
    result = run(runner, "db", "info", "--db", db_path)
    assert result.exit_code == 0, result.output
    assert f"schema    {SCHEMA_VERSION} (this build: {SCHEMA_VERSION})" in result.output
    assert "writer    none" in result.output
    assert "node_samples          150" in result.output
    assert (
        "fleet             50  2026-11-01T00:00:00.000Z  2026-11-02T00:30:00.000Z" in result.output
    )


def test_info_shows_a_copied_files_meta_text_sanitised(runner: CliRunner, db_path: Path) -> None:
    fill(db_path, 2)
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("INSERT INTO meta VALUES ('retention.\x1b]52;c;eA==\x07x', '\x1b[2J')")
        conn.commit()
    finally:
        conn.close()
    result = run(runner, "db", "info", "--db", db_path)
    assert result.exit_code == 0 and "retention  " in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "alerts " in result.output  # migration 6's tables are counted too


def test_info_names_the_writer(runner: CliRunner, db_path: Path) -> None:
    fill(db_path, 2)
    with WriterLock(db_path):
        result = run(runner, "db", "info", "--db", db_path)
    assert f"writer    pid {os.getpid()}" in result.output


def test_missing_file_is_one_line_and_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    for command in ("info", "prune", "vacuum", "check"):
        result = run(runner, "db", command, "--db", tmp_path / "nope.db")
        assert result.exit_code == 2, (command, result.output)
        assert result.output.strip().count("\n") == 0 and "no cache at" in result.output
    result = run(runner, "db", "backup", tmp_path / "b.db", "--db", tmp_path / "nope.db")
    assert result.exit_code == 2


def test_prune_applies_the_configured_policy(
    runner: CliRunner, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(db_path)
    config = tmp_path / "config.toml"
    config.write_text("[retention]\nraw_days = 1\nminute_days = 1\n")
    monkeypatch.setattr("explorer.db_cli.CLOCK", lambda: T0 + timedelta(days=3))
    result = run(runner, "db", "prune", "--db", db_path, "--config", config)
    assert result.exit_code == 0, result.output
    assert "raw samples rolled up" in result.output
    conn = open_reader(db_path)
    assert (
        conn.execute("SELECT COUNT(*) FROM node_rollups WHERE resolution = 3600").fetchone()[0]
        == 25 * 3
    )
    assert {r.node for r in latest_fleet(conn)} == {"n0", "n1", "n2"}
    conn.close()
    again = run(runner, "db", "prune", "--db", db_path, "--config", config)
    assert "0 raw samples rolled up, 0 rollup rows written, 0 deleted, 0 polls" in again.output


def test_prune_and_vacuum_refused_offline_or_beside_a_writer(
    runner: CliRunner, db_path: Path
) -> None:
    fill(db_path, 2)
    for command in ("prune", "vacuum"):
        offline = run(runner, "db", command, "--offline", "--db", db_path)
        assert offline.exit_code == 2 and "not with --offline" in offline.output
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from cache.lock import WriterLock; "
            "l = WriterLock(Path(sys.argv[1])); print(l.acquire(), flush=True); time.sleep(60)",
            str(db_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        for command in ("prune", "vacuum"):
            result = run(runner, "db", command, "--db", db_path)
            assert result.exit_code == 2
            assert f"process {holder.pid} holds the writer lock" in result.output
            assert "Traceback" not in result.output
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        holder.stdout.close()  # type: ignore[union-attr]
    assert run(runner, "db", "vacuum", "--db", db_path).exit_code == 0  # gone with its holder


def test_vacuum_reports_sizes(runner: CliRunner, db_path: Path) -> None:
    fill(db_path, 200)
    conn = open_writer(db_path)
    conn.execute("DELETE FROM node_samples")
    conn.close()
    before = db_path.stat().st_size
    result = run(runner, "db", "vacuum", "--db", db_path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"vacuumed {db_path}: ") and " -> " in result.output
    assert db_path.stat().st_size < before
    assert not Path(f"{db_path}-wal").exists() or Path(f"{db_path}-wal").stat().st_size == 0


def test_backup_is_private_checked_and_never_overwrites(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    fill(db_path, 5)
    dest = tmp_path / "copy.db"
    result = run(runner, "db", "backup", dest, "--db", db_path, "--offline")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    copy = open_reader(dest)
    assert copy.execute("SELECT COUNT(*) FROM polls").fetchone()[0] == 5
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    copy.close()
    dest.write_bytes(b"mine")
    again = run(runner, "db", "backup", dest, "--db", db_path)
    assert again.exit_code == 2 and "exists" in again.output
    assert dest.read_bytes() == b"mine"
    assert not list(tmp_path.glob(".copy.db.*"))  # no temporary file left behind
    nodir = run(runner, "db", "backup", tmp_path / "no" / "x.db", "--db", db_path)
    assert nodir.exit_code == 1 and "no such directory" in nodir.output


def test_backup_while_another_thread_writes_is_consistent(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    fill(db_path, 5)
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        conn = open_writer(db_path)
        i = 0
        while not stop.is_set():
            at = T0 + timedelta(days=30, seconds=i)
            nodes = [NodeSample(node=f"w{k}", source_kind="exporter", up=True) for k in range(200)]
            write_poll(conn, PollRecord("fleet", at, at, Reading(nodes=nodes)))
            written.append(i)
            i += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5:
            threading.Event().wait(0.01)
        results = [
            run(runner, "db", "backup", tmp_path / f"b{i}.db", "--db", db_path) for i in range(5)
        ]
    finally:
        stop.set()
        thread.join()
    assert len(written) > 5
    for i, result in enumerate(results):
        assert result.exit_code == 0, result.output
        conn = sqlite3.connect(tmp_path / f"b{i}.db")
        # every poll in the copy is complete: its 200 (or 3) samples, never part of them
        sizes = conn.execute(
            "SELECT p.items, COUNT(s.node) FROM polls p LEFT JOIN node_samples s "
            "ON s.poll_id = p.id GROUP BY p.id"
        ).fetchall()
        assert all(items == n for items, n in sizes)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        check = run(runner, "db", "check", "--db", tmp_path / f"b{i}.db")
        assert check.exit_code == 0 and check.output.startswith("ok: ")


def test_check_gives_a_verdict(runner: CliRunner, db_path: Path, tmp_path: Path) -> None:
    fill(db_path, 20)
    ok = run(runner, "db", "check", "--db", db_path)
    assert ok.exit_code == 0 and "passed integrity_check and foreign_key_check" in ok.output
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    bad = run(runner, "db", "check", "--db", junk)
    assert bad.exit_code == 1 and "damaged:" in bad.output and "Traceback" not in bad.output
    # a dangling reference: a nodes row pointing to a poll that is gone
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DELETE FROM polls WHERE id = 1")
    conn.commit()
    conn.close()
    fk = run(runner, "db", "check", "--db", db_path)
    assert fk.exit_code == 1 and "refers to a missing polls row" in fk.output


def test_check_finds_a_corrupted_page(runner: CliRunner, db_path: Path) -> None:
    fill(db_path, 200)
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db_path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = os.urandom(4096)
    db_path.write_bytes(bytes(data))
    result = run(runner, "db", "check", "--db", db_path)
    assert result.exit_code == 1 and "damaged:" in result.output


@pytest.mark.parametrize("command", ["info", "check"])
def test_read_only_commands_work_beside_a_writer(
    runner: CliRunner, db_path: Path, command: str
) -> None:
    fill(db_path, 2)
    with WriterLock(db_path):
        assert run(runner, "db", command, "--db", db_path).exit_code == 0
