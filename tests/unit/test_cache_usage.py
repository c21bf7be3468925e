"""node_usage_hours (migration 7): kept by write_poll, filled by the migration of an older cache
and by fill_usage_hours, pruned by retention, and answering economics' usage as the window does."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cache import usage
from cache.db import SCHEMA_VERSION, iso, open_reader, open_writer
from cache.economics import _usage
from cache.queries import _bound_poll_id
from cache.store import PollRecord, write_poll
from sources.models import NodeSample, Reading

START = datetime(2026, 11, 26, 9, 17, 30, tzinfo=UTC)
HOURS_SQL = "SELECT * FROM node_usage_hours ORDER BY hour, node, source_kind"


def _sample(node: str, minute: int, kind: str = "exporter") -> NodeSample:
    up = minute % 17 != 5  # now and then down
    gpus = None if node == "cpu-01" else 2 + minute % 3
    watts = None if node == "gpu-02" and minute % 4 == 0 else 150.0 + minute
    return NodeSample(
        node=node, source_kind=kind, up=up, gpus=gpus, gpu_power_w=watts if gpus else None
    )


def _fleet(minutes: Iterator[int] | range) -> Iterator[tuple[datetime, Reading]]:
    for minute in minutes:
        nodes = ["gpu-01", "cpu-01"] + (["gpu-02"] if minute < 200 else [])  # gpu-02 goes away
        samples = [_sample(n, minute) for n in nodes]
        if minute % 2 == 0:
            samples.append(_sample("gpu-01", minute, "promql"))  # a second kind
        yield START + timedelta(minutes=minute, seconds=minute % 7), Reading(nodes=samples)


# every minute for 5 h 40 min, with a 20-minute stop (beyond any cap) in the third hour
MINUTES = [m for m in range(340) if not 130 <= m < 150]


def _write(db: Path, minutes: list[int]) -> None:
    conn = open_writer(db)
    try:
        for when, reading in _fleet(iter(minutes)):
            write_poll(conn, PollRecord("fleet", when - timedelta(seconds=1), when, reading))
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cache.db"
    _write(path, MINUTES)
    return path


def _windowed(conn: sqlite3.Connection, since: datetime, until: datetime, span: float) -> dict:
    """economics' usage the old way: every sample of the period windowed."""
    original = usage.usage_rows
    usage.usage_rows = lambda *args, **kwargs: None
    try:
        return _usage(conn, since, until, _bound_poll_id(conn, until), span)
    finally:
        usage.usage_rows = original


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].keys() == b[key].keys(), key
        for day in a[key]:
            for x, y in zip(a[key][day], b[key][day], strict=True):
                assert (x is None) == (y is None), (key, day)
                if x is not None:
                    assert x == pytest.approx(y, rel=1e-12, abs=1e-9), (key, day)


@pytest.mark.parametrize(
    ("since_min", "until_min", "span"),
    [
        (0, 340, 300.0),  # everything, until the last poll
        (23, 290, 300.0),  # time travel: successors after "until" in its hour
        (61, 301, 120.0),  # a cap shorter than the stop and a minute off the hour
        (45, 600, 300.0),  # "until" long after the last poll: the last samples count to the cap
        (100, 180, 900.0),  # a cap longer than the stop: its hour comes from the table
        (5, 50, 300.0),  # no whole hour: the window alone
    ],
)
def test_hours_answer_as_the_window_does(
    db: Path, since_min: int, until_min: int, span: float
) -> None:
    conn = open_reader(db)
    try:
        since = START + timedelta(minutes=since_min, seconds=11)
        until = START + timedelta(minutes=until_min, seconds=3)
        bound = _bound_poll_id(conn, until)
        assert usage.complete(conn, bound)
        got = _usage(conn, since, until, bound, span)
        _same(got, _windowed(conn, since, until, span))
        assert got  # not trivially empty
    finally:
        conn.close()


def test_usage_rows_uses_the_table(db: Path) -> None:
    conn = open_reader(db)
    try:
        until = START + timedelta(minutes=330)
        rows = usage.usage_rows(conn, iso(START), until, _bound_poll_id(conn, until), 300.0)
        assert rows is not None
        assert conn.execute("SELECT COUNT(*) FROM node_usage_hours").fetchone()[0] > 10
        # the hour of the stop has a gap beyond the cap: windowed from the samples
        gaps = conn.execute("SELECT MAX(max_gap_s) FROM node_usage_hours").fetchone()[0]
        assert gaps == pytest.approx(22 * 60, abs=10)  # promql: minute 128 to 150
    finally:
        conn.close()


def _hours(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(HOURS_SQL).fetchall()
    finally:
        conn.close()


def _approx_rows(rows: list[tuple[object, ...]]) -> list[object]:
    return [tuple(pytest.approx(v) if isinstance(v, float) else v for v in r) for r in rows]


def test_migration_of_an_older_cache_fills_the_table(db: Path, tmp_path: Path) -> None:
    kept = _hours(db)
    old = sqlite3.connect(db, isolation_level=None)
    old.execute("DROP TABLE node_usage_hours")
    old.execute("DROP TABLE node_usage_state")
    old.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    old.close()
    conn = open_writer(db)  # migrates 6 -> 7
    try:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
        newest = conn.execute("SELECT MAX(id) FROM polls").fetchone()[0]
        assert usage.complete(conn, newest)
    finally:
        conn.close()
    assert _hours(db) == _approx_rows(kept)
    _write(db, [340, 341, 342])  # the writer carries on from the migrated table
    conn = open_reader(db)
    try:
        until = START + timedelta(minutes=343)
        since = START + timedelta(minutes=10)
        _same(
            _usage(conn, since, until, _bound_poll_id(conn, until), 300.0),
            _windowed(conn, since, until, 300.0),
        )
    finally:
        conn.close()


def test_samples_stored_around_write_poll_are_refilled(tmp_path: Path) -> None:
    path = tmp_path / "bulk.db"
    reference = tmp_path / "reference.db"
    _write(reference, MINUTES)
    conn = open_writer(path)
    try:  # a bulk loader: the reference's polls and samples copied in directly
        conn.execute("ATTACH ? AS ref", (str(reference),))
        conn.execute("INSERT INTO polls SELECT * FROM ref.polls")
        conn.execute("INSERT INTO node_samples SELECT * FROM ref.node_samples")
        conn.execute("INSERT INTO nodes SELECT * FROM ref.nodes")
        conn.execute("DETACH ref")
        newest = conn.execute("SELECT MAX(id) FROM polls").fetchone()[0]
        assert not usage.complete(conn, newest)
        until = START + timedelta(minutes=330)
        assert usage.usage_rows(conn, iso(START), until, newest, 300.0) is None
        usage.fill_usage_hours(conn)
        assert usage.complete(conn, newest)
        assert _hours(path) == _approx_rows(_hours(reference))
        later = START + timedelta(minutes=341)
        write_poll(conn, PollRecord("fleet", later, later, next(_fleet(range(341, 342)))[1]))
        assert usage.complete(conn, newest + 1)  # complete again: the writer keeps it
    finally:
        conn.close()


def test_prune_drops_hours_before_the_raw_samples(db: Path) -> None:
    conn = open_writer(db)
    try:
        cut = iso(START + timedelta(hours=2))
        total = conn.execute("SELECT COUNT(*) FROM node_usage_hours").fetchone()[0]
        older = conn.execute(
            "SELECT COUNT(*) FROM node_usage_hours WHERE hour < ?", (cut[:13],)
        ).fetchone()[0]
        assert 0 < older < total
        assert usage.prune(conn, cut, 2) == 2
        while usage.prune(conn, cut, 2):
            pass
        left = conn.execute("SELECT MIN(hour), COUNT(*) FROM node_usage_hours").fetchone()
        assert left == (cut[:13], total - older)
    finally:
        conn.close()
