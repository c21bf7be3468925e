"""Opening the SQLite cache: pragmas, numbered migrations, schema-version checks.

One writer (the poller) opens with :func:`open_writer`, which applies migrations inside
``BEGIN IMMEDIATE`` so that several processes starting at once on a new file never race.
Screens and exports open with :func:`open_reader` (``mode=ro``), one connection per thread.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

BUSY_TIMEOUT_MS = 5000
SAMPLE_SOURCE = "sample"
"""The bundled 2024 snapshot's source name: history, never live data or a price."""

_GAP = "(julianday(np.finished_at) - julianday(pp.finished_at)) * 86400.0"
"""Seconds from a sample (poll ``pp``) to its node's next one (poll ``np``), as economics has it."""
_USAGE_UPSERT = (
    "ON CONFLICT (hour, node, source_kind) DO UPDATE SET "
    "gpu_s = CASE WHEN excluded.gpu_s IS NULL THEN gpu_s WHEN gpu_s IS NULL THEN excluded.gpu_s "
    "ELSE gpu_s + excluded.gpu_s END, "
    "joules = CASE WHEN excluded.joules IS NULL THEN joules WHEN joules IS NULL "
    "THEN excluded.joules ELSE joules + excluded.joules END, "
    "up_s = up_s + excluded.up_s, max_gap_s = MAX(max_gap_s, excluded.max_gap_s), "
    "next_poll_id = MAX(next_poll_id, excluded.next_poll_id), "
    "next_at = MAX(next_at, excluded.next_at)"
)
_USAGE_COLUMNS = "hour, node, source_kind, gpu_s, joules, up_s, max_gap_s, next_poll_id, next_at"
USAGE_BACKFILL = f"""
    INSERT INTO node_usage_hours ({_USAGE_COLUMNS})
    SELECT substr(t, 1, 13), node, source_kind,
        SUM(CASE WHEN up AND gpus IS NOT NULL THEN gpus * gap END),
        SUM(CASE WHEN up AND gpu_power_w IS NOT NULL THEN gpu_power_w * gap END),
        SUM(CASE WHEN up THEN gap ELSE 0 END), MAX(gap), MAX(next_id), MAX(next_at)
    FROM (SELECT node, source_kind, up, gpus, gpu_power_w, t, next_id, next_at,
            (julianday(next_at) - julianday(t)) * 86400.0 AS gap
        FROM (SELECT s.node, s.source_kind, s.up, s.gpus, s.gpu_power_w, p.finished_at AS t,
                LEAD(s.poll_id) OVER w AS next_id, LEAD(p.finished_at) OVER w AS next_at
            FROM node_samples s JOIN polls p ON p.id = s.poll_id
            WINDOW w AS (PARTITION BY s.node, s.source_kind ORDER BY s.poll_id)))
    WHERE next_id IS NOT NULL
    GROUP BY substr(t, 1, 13), node, source_kind"""
"""Fills ``node_usage_hours`` from the samples already stored (migration 7 of an older cache)."""
USAGE_UPKEEP = f"""
    INSERT INTO node_usage_hours ({_USAGE_COLUMNS})
    SELECT substr(pp.finished_at, 1, 13), prev.node, prev.source_kind,
        CASE WHEN prev.up AND prev.gpus IS NOT NULL THEN prev.gpus * {_GAP} END,
        CASE WHEN prev.up AND prev.gpu_power_w IS NOT NULL THEN prev.gpu_power_w * {_GAP} END,
        CASE WHEN prev.up THEN {_GAP} ELSE 0 END, {_GAP}, np.id, np.finished_at
    FROM polls np JOIN node_samples cur ON cur.poll_id = np.id
    JOIN node_samples prev ON prev.node = cur.node AND prev.source_kind = cur.source_kind
        AND prev.poll_id = (SELECT MAX(poll_id) FROM node_samples WHERE node = cur.node
            AND source_kind = cur.source_kind AND poll_id < cur.poll_id)
    JOIN polls pp ON pp.id = prev.poll_id
    WHERE np.id = ?
    {_USAGE_UPSERT}"""
"""One poll's samples complete their nodes' previous ones: those samples' gaps and sums go to
their hours (cache/store.py, in the poll's transaction)."""

MIGRATIONS: list[str] = [
    # 1: polls and rankings snapshots
    """
    CREATE TABLE polls (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        data_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok', 'partial', 'failed')),
        error_kind TEXT,
        error TEXT,
        latency_ms REAL,
        items INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        retry_at TEXT
    );
    CREATE INDEX polls_source_finished ON polls (source, finished_at);
    CREATE TABLE market (
        poll_id INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
        coin_id TEXT NOT NULL,
        symbol TEXT,
        name TEXT NOT NULL,
        rank INTEGER,
        price_usd REAL,
        market_cap_usd REAL,
        volume_24h_usd REAL,
        fdv_usd REAL,
        change_24h_pct REAL,
        change_7d_pct REAL,
        change_30d_pct REAL,
        sparkline_7d TEXT,
        category TEXT,
        devices INTEGER,
        last_updated TEXT,
        PRIMARY KEY (poll_id, coin_id)
    );
    CREATE INDEX market_coin ON market (coin_id, poll_id);
    """,
    # 2: public networks: metrics in long form, GPU models, per-endpoint failures
    """
    CREATE TABLE network_stats (
        poll_id INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
        network TEXT NOT NULL,
        metric TEXT NOT NULL,
        value REAL NOT NULL,
        unit TEXT NOT NULL DEFAULT '',
        endpoint TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (poll_id, network, metric)
    );
    CREATE INDEX network_stats_metric ON network_stats (network, metric, poll_id);
    CREATE TABLE gpu_models (
        poll_id INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
        network TEXT NOT NULL,
        model TEXT NOT NULL,
        memory_gb REAL,
        cards INTEGER,
        total INTEGER,
        available INTEGER,
        price_usd_gpu_hour REAL,
        endpoint TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (poll_id, network, model)
    );
    CREATE INDEX gpu_models_network ON gpu_models (network, poll_id);
    CREATE TABLE poll_errors (
        poll_id INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
        endpoint TEXT NOT NULL,
        error_kind TEXT NOT NULL,
        error TEXT NOT NULL
    );
    CREATE INDEX poll_errors_poll ON poll_errors (poll_id);
    """,
    # 3: the operator's fleet: one row per node per poll, and each node's identity and labels
    """
    CREATE TABLE node_samples (
        poll_id INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        source_kind TEXT NOT NULL,
        up INTEGER NOT NULL,
        error TEXT,
        cpu_pct REAL,
        mem_pct REAL,
        disk_pct REAL,
        load1 REAL,
        uptime_s REAL,
        net_rx_bps REAL,
        net_tx_bps REAL,
        gpus INTEGER,
        gpu_util_pct REAL,
        gpu_temp_c REAL,
        gpu_power_w REAL,
        gpu_mem_pct REAL,
        counters TEXT,
        PRIMARY KEY (poll_id, node, source_kind)
    );
    CREATE INDEX node_samples_node ON node_samples (node, source_kind, poll_id);
    CREATE TABLE nodes (
        node TEXT NOT NULL,
        source_kind TEXT NOT NULL,
        network TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        first_poll_id INTEGER NOT NULL REFERENCES polls (id),
        last_poll_id INTEGER NOT NULL REFERENCES polls (id),
        PRIMARY KEY (node, source_kind)
    );
    """,
    # 4: io.net devices: status per poll, and rewards as rows (one per device per reward block).
    # Rewards carry no cascade: they are the earnings history, kept when old polls are pruned.
    """
    CREATE TABLE devices (
        poll_id INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
        network TEXT NOT NULL,
        device_id TEXT NOT NULL,
        node TEXT,
        name TEXT,
        status TEXT,
        uptime_pct REAL,
        connectivity_tier TEXT,
        hardware TEXT,
        hardware_quantity INTEGER,
        location TEXT,
        earnings_total REAL,
        earnings_token TEXT,
        slashed_total REAL,
        block_rewards_7d REAL,
        blocks_earned_7d INTEGER,
        blocks_failed_7d INTEGER,
        blocks_missed_7d INTEGER,
        jobs_running INTEGER,
        compute_hours REAL,
        error TEXT,
        PRIMARY KEY (poll_id, network, device_id)
    );
    CREATE INDEX devices_device ON devices (network, device_id, poll_id);
    CREATE TABLE rewards (
        poll_id INTEGER NOT NULL,
        network TEXT NOT NULL,
        device_id TEXT NOT NULL,
        node TEXT,
        at TEXT NOT NULL,
        amount REAL NOT NULL,
        token TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT,
        fetched_at TEXT NOT NULL,
        PRIMARY KEY (network, device_id, source)
    );
    CREATE INDEX rewards_node_at ON rewards (node, at);
    CREATE INDEX rewards_at ON rewards (at);
    """,
    # 5: retention (cache/retention.py): per-node rollups at 60 s, 1 h and 1 d, each value column
    # the mean of the bucket's samples (NULLs skipped); polls by time for "as of T" and pruning.
    """
    CREATE TABLE node_rollups (
        resolution INTEGER NOT NULL CHECK (resolution IN (60, 3600, 86400)),
        node TEXT NOT NULL,
        source_kind TEXT NOT NULL,
        bucket_at TEXT NOT NULL,
        samples INTEGER NOT NULL,
        up_samples INTEGER NOT NULL,
        cpu_pct REAL,
        mem_pct REAL,
        disk_pct REAL,
        load1 REAL,
        uptime_s REAL,
        net_rx_bps REAL,
        net_tx_bps REAL,
        gpus REAL,
        gpu_util_pct REAL,
        gpu_temp_c REAL,
        gpu_power_w REAL,
        gpu_mem_pct REAL,
        gpu_temp_max_c REAL,
        PRIMARY KEY (resolution, node, source_kind, bucket_at)
    ) WITHOUT ROWID;
    CREATE INDEX polls_finished ON polls (finished_at);
    """,
    # 6: alerts (cache/alerts.py): one row per firing, resolved in place; alert_pending holds what
    # hysteresis needs between polls (a condition seen since when), so a restart keeps it.
    """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        state TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
        since TEXT NOT NULL,
        started_at TEXT NOT NULL,
        resolved_at TEXT,
        value REAL,
        message TEXT NOT NULL,
        poll_id INTEGER
    );
    CREATE INDEX alerts_started ON alerts (started_at);
    CREATE UNIQUE INDEX alerts_firing ON alerts (rule, subject) WHERE state = 'firing';
    CREATE TABLE alert_pending (
        rule TEXT NOT NULL,
        subject TEXT NOT NULL,
        toward TEXT NOT NULL CHECK (toward IN ('firing', 'resolved')),
        since TEXT NOT NULL,
        value REAL,
        message TEXT NOT NULL,
        PRIMARY KEY (rule, subject)
    ) WITHOUT ROWID;
    """,
    # 7: each node's GPU time, GPU energy and up time per UTC hour of its samples, kept by the
    # writer as each sample's successor is stored (cache/usage.py), so the Rewards screen sums
    # hours instead of windowing every sample of the period; filled here from what is stored.
    f"""
    CREATE TABLE node_usage_hours (
        hour TEXT NOT NULL,
        node TEXT NOT NULL,
        source_kind TEXT NOT NULL,
        gpu_s REAL,
        joules REAL,
        up_s REAL NOT NULL,
        max_gap_s REAL NOT NULL,
        next_poll_id INTEGER NOT NULL,
        next_at TEXT NOT NULL,
        PRIMARY KEY (hour, node, source_kind)
    ) WITHOUT ROWID;
    CREATE TABLE node_usage_state (
        only INTEGER PRIMARY KEY CHECK (only = 1),
        complete_to INTEGER NOT NULL
    );
    {USAGE_BACKFILL};
    INSERT INTO node_usage_state SELECT 1, COALESCE(MAX(poll_id), 0) FROM node_samples;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
LABEL_KEYS = "label_keys"
"""``meta`` key: a JSON list of every label key the fleet's nodes have carried (sorted)."""


class CacheError(Exception):
    """The cache file cannot be used; the message says why and what to do."""


class SchemaTooNewError(CacheError):
    """The file was written by a newer depin-explorer."""


class CorruptCacheError(CacheError):
    """The file is damaged, or not an SQLite database at all."""


class ForeignCacheError(CorruptCacheError):
    """An SQLite database of another program: moved aside like a damaged one (never written)."""


class ReadOnlyCacheError(CacheError):
    """This process may read the cache but not write it (permissions, read-only mount)."""


QUICK_CHECK_MAX_BYTES = 100 * 1024 * 1024
"""The writer runs ``PRAGMA quick_check`` at open on files up to this size (well under 1 s)."""
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p")
Notice = Callable[[str], None]


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order in SQL."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> datetime:
    """Inverse of :func:`iso` (also accepts other ISO 8601 forms)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _pragmas(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")


def schema_version(conn: sqlite3.Connection) -> int:
    """The stored schema version: 0 for an empty file; CacheError for a foreign one."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return 0
    if "meta" not in tables:
        raise ForeignCacheError("this file is an SQLite database, but not a depin-explorer cache")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _check_not_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{path} has schema version {version}, newer than this depin-explorer "
            f"understands ({SCHEMA_VERSION}): upgrade depin-explorer"
        )


def _wrap(path: Path, exc: sqlite3.Error) -> CacheError:
    return CacheError(f"cannot use the cache {path}: {exc}")


def _set_wal(conn: sqlite3.Connection) -> None:
    # Switching to WAL needs an exclusive lock and does not wait on busy_timeout: when several
    # processes open a new file at once, retry for as long as the busy timeout would have.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def open_writer(path: Path, on_notice: Notice | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the cache for writing and bring its schema up to date.

    With ``on_notice`` (the poller, which holds the writer lock), a damaged file is moved aside
    with its ``-wal`` and ``-shm`` to ``<name>.corrupt-<UTC time>``, a fresh cache is created and
    the notice says so; a cache on a network filesystem gets a warning. Without it, a damaged
    file raises CorruptCacheError and is left as it is. Another program's SQLite database given
    as the cache is moved aside the same way (renamed, never written or deleted). Readers never
    quarantine anything.
    """
    if on_notice is not None and (fstype := network_filesystem(path)):
        on_notice(
            f"{path} is on a network filesystem ({fstype}): SQLite's WAL needs a local disk; "
            "set [cache] path or --db to a local path"
        )
    try:
        return _open_writer(path)
    except CorruptCacheError as exc:
        if on_notice is None:
            raise
        moved = quarantine(path)
        on_notice(f"{exc}; moved it aside to {moved.name} and started a new cache")
        return _open_writer(path)


def _open_writer(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _read_only(path, exc.strerror or str(exc)) from exc
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        _pragmas(conn)
        if 0 < (path.stat().st_size if path.exists() else 0) <= QUICK_CHECK_MAX_BYTES:
            # damage away from page 1 shows only here; never migrate on top of it
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                raise sqlite3.DatabaseError(f"quick_check: {rows[0][0]}")
        # before anything is written (even the switch to WAL): never touch another program's file
        schema_version(conn)
        _set_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA journal_size_limit = 16777216")
        migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        text = str(exc)
        if any(m in text for m in ("not a database", "malformed", "quick_check")):
            raise CorruptCacheError(f"{path} is damaged ({text})") from exc
        if any(m in text for m in ("readonly", "unable to open", "read-only")):
            raise _read_only(path, text) from exc
        raise _wrap(path, exc) from exc
    except ForeignCacheError as exc:
        if conn is not None:
            conn.close()
        raise ForeignCacheError(f"{path}: {exc}") from exc
    except CacheError:
        if conn is not None:
            conn.close()
        raise
    return conn


def _read_only(path: Path, why: str) -> ReadOnlyCacheError:
    return ReadOnlyCacheError(f"cannot write the cache {path} as uid {os.getuid()}: {why}")


def quarantine(path: Path, now: datetime | None = None) -> Path:
    """Move a damaged cache aside with its ``-wal`` and ``-shm``; return the new name.

    The three move together (a ``-wal`` replayed into another file corrupts it), never over an
    earlier quarantined copy, and nothing is deleted.
    """
    stamp = (now or utc_now()).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while any(Path(f"{target}{s}").exists() for s in ("", "-wal", "-shm")):
        number += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{target}{suffix}")
    return target


def network_filesystem(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The filesystem type when ``path`` lives on NFS, SMB, sshfs and the like, else None."""
    try:
        lines = mounts.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    where = path.expanduser().resolve()
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ").replace("\\011", "\t")
        if (where == Path(point) or Path(point) in where.parents) and len(point) > len(best):
            best, best_type = point, fields[2]
    if best_type and (best_type in NETWORK_FILESYSTEMS or best_type.startswith(("nfs", "smb"))):
        return best_type
    return None


@contextmanager
def write_txn(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error.

    SQLite may already have rolled back (SQLITE_FULL does): a second ROLLBACK would raise
    "no transaction is active" and hide the real error.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration, a trigger's body (its own semicolons) kept whole."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        yield pending


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the missing numbered migrations, each with its version record, atomically."""
    with write_txn(conn):
        version = schema_version(conn)
        _check_not_newer(version, path)
        if version == 0:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(number),),
            )


def _connect_ro(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro{'&immutable=1' if immutable else ''}",
        uri=True,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
    )
    _pragmas(conn)
    return conn


def open_reader(path: Path) -> sqlite3.Connection:
    """Open the cache read-only. A missing file is an error the caller turns into "no data"."""
    if not path.exists():
        raise CacheError(f"no cache at {path} yet")
    try:
        conn = _connect_ro(path)
        try:
            version = schema_version(conn)
        except sqlite3.OperationalError as exc:
            conn.close()
            # A WAL file in a directory we may not write (a shared cache): SQLite cannot make
            # the -shm it needs. With no -wal either, every commit is in the main file, so it
            # can be read as immutable; a writer at work would have left its -wal there.
            if not (
                ("readonly" in str(exc) or "unable to open" in str(exc))
                and not os.access(path.parent, os.W_OK)
                and not Path(f"{path}-wal").exists()
            ):
                raise
            conn = _connect_ro(path, immutable=True)
            version = schema_version(conn)
        _check_not_newer(version, path)
        if version == 0:
            conn.close()
            raise CacheError(f"{path} is empty: nothing polled yet")
    except sqlite3.DatabaseError as exc:
        raise _wrap(path, exc) from exc
    conn.row_factory = sqlite3.Row
    return conn
