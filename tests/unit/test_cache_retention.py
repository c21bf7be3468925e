"""cache.retention and cache.rollup: rollups, pruning, thinning and history at the right
resolution, all with an injected clock (``now`` is an argument, never the wall clock)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean

import pytest

from cache import retention
from cache.db import iso, open_writer
from cache.queries import latest_fleet, latest_rankings, node_history
from cache.retention import RetentionPolicy, apply_retention
from cache.store import PollRecord, write_poll
from sources.models import ErrorKind, MarketCoin, NodeSample, Reading, SourceError

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=10)
DAYS = 5
NOW = T0 + timedelta(days=DAYS)
POLICY = RetentionPolicy(
    raw_days=1,
    minute_days=2,
    hour_days=3,
    day_days=None,
    snapshot_full_days=1,
    snapshot_hourly_days=2,
)


def cpu_at(moment: datetime) -> float:
    return float(moment.hour * 2 + moment.minute / 10)


def fleet_poll(conn: sqlite3.Connection, at: datetime, with_c: bool) -> int:
    nodes = [
        NodeSample(node="a", source_kind="exporter", up=True, cpu_pct=cpu_at(at), gpu_temp_c=50.0),
        # b is down every third poll: down samples carry no values
        NodeSample(node="b", source_kind="exporter", up=at.minute != 30, mem_pct=40.0)
        if at.minute != 30
        else NodeSample(node="b", source_kind="exporter", up=False, error="connect: refused"),
    ]
    if with_c:
        nodes.append(NodeSample(node="c", source_kind="exporter", up=True, cpu_pct=5.0))
    return write_poll(conn, PollRecord("fleet", at, at, Reading(nodes=nodes)))


def coin(price: float) -> MarketCoin:
    return MarketCoin.model_validate(
        {"id": "render", "name": "Render", "current_price": price, "sparkline_in_7d": [1.0, 2.0]}
    )


def build(db: Path) -> sqlite3.Connection:
    """Five days: fleet and rankings every 10 min, a failure a day, the sample, a reward."""
    conn = open_writer(db)
    sample_at = datetime(2024, 6, 30, tzinfo=UTC)
    write_poll(conn, PollRecord("sample", T0, T0, Reading(market=[coin(9.0)], at=sample_at)))
    moment = T0
    while moment < NOW:
        fleet_poll(conn, moment, with_c=moment < T0 + timedelta(days=1))
        write_poll(conn, PollRecord("coingecko", moment, moment, Reading(market=[coin(1.0)])))
        if moment.hour == 12 and moment.minute == 0:
            error = SourceError(ErrorKind.TIMEOUT, "slow")
            write_poll(conn, PollRecord("akash", moment, moment, error=error))
        moment += STEP
    conn.execute(
        "INSERT INTO rewards VALUES (1, 'io.net', 'd-1', 'a', ?, 1.5, 'IO', 'blocks', 'ok', ?)",
        (iso(T0), iso(T0)),
    )
    return conn


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("retention") / "c.db"
    build(db).close()
    return db


@pytest.fixture
def conn(built: Path, tmp_path: Path) -> sqlite3.Connection:
    """A fresh copy of the built cache per test (building it takes a second)."""
    src = sqlite3.connect(built)
    copy = tmp_path / "copy.db"
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    writer = open_writer(copy)
    writer.row_factory = sqlite3.Row  # as readers have it: queries and retention both work
    return writer


def count(conn: sqlite3.Connection, sql: str, *params: object) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def test_fleet_tiers_after_one_run(conn: sqlite3.Connection) -> None:
    report = apply_retention(conn, POLICY, NOW)
    raw_oldest = conn.execute(
        "SELECT MIN(p.finished_at) FROM node_samples s JOIN polls p ON p.id = s.poll_id "
        "WHERE s.node = 'a'"
    ).fetchone()[0]
    assert raw_oldest >= iso(NOW - timedelta(days=1))
    minutes = conn.execute(
        "SELECT MIN(bucket_at), MAX(bucket_at) FROM node_rollups "
        "WHERE resolution = 60 AND node = 'a'"
    ).fetchone()
    assert minutes[0] >= iso(NOW - timedelta(days=2)) and minutes[1] < iso(NOW - timedelta(days=1))
    hours = count(conn, "SELECT COUNT(*) FROM node_rollups WHERE resolution = 3600 AND node = 'a'")
    assert hours == 3 * 24  # three days of hours kept, every hour that is over
    days = count(conn, "SELECT COUNT(*) FROM node_rollups WHERE resolution = 86400 AND node = 'a'")
    assert days == DAYS  # every day that is over, forever
    assert report.samples_rolled_up > 0 and report.polls_deleted > 0
    assert report.rollups_written[3600] == DAYS * 24 * 2 + 24  # a and b all along, c for a day


def test_rollup_values_are_the_means_of_the_samples(conn: sqlite3.Connection) -> None:
    apply_retention(conn, POLICY, NOW)
    hour = T0 + timedelta(days=4, hours=7)
    row = conn.execute(
        "SELECT samples, up_samples, cpu_pct, gpu_temp_c, gpu_temp_max_c FROM node_rollups "
        "WHERE resolution = 3600 AND node = 'a' AND bucket_at = ?",
        (iso(hour),),
    ).fetchone()
    row = tuple(row)
    expected = mean(cpu_at(hour + STEP * i) for i in range(6))
    assert row == (6, 6, pytest.approx(expected), 50.0, 50.0)
    b_hour = conn.execute(
        "SELECT samples, up_samples, mem_pct FROM node_rollups "
        "WHERE resolution = 3600 AND node = 'b' AND bucket_at = ?",
        (iso(hour),),
    ).fetchone()
    assert tuple(b_hour) == (6, 5, 40.0)  # the down sample counts, but has no values
    day = conn.execute(
        "SELECT samples, up_samples, cpu_pct FROM node_rollups "
        "WHERE resolution = 86400 AND node = 'a' AND bucket_at = ?",
        (iso(T0 + timedelta(days=1)),),
    ).fetchone()
    assert tuple(day) == (144, 144, pytest.approx(mean(cpu_at(T0 + STEP * i) for i in range(144))))


def test_second_run_changes_nothing(conn: sqlite3.Connection) -> None:
    apply_retention(conn, POLICY, NOW)
    dump = list(conn.iterdump())
    again = apply_retention(conn, POLICY, NOW)
    assert not again.changed
    assert list(conn.iterdump()) == dump


def test_interrupted_run_resumes_to_the_same_state(
    conn: sqlite3.Connection, built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between any two transactions loses no data: the next run finishes the job."""
    reference = tmp_path / "ref.db"
    src = sqlite3.connect(built)
    dst = sqlite3.connect(reference)
    src.backup(dst)
    src.close()
    dst.close()
    ref = open_writer(reference)
    apply_retention(ref, POLICY, NOW)
    expected = sorted(ref.iterdump())
    monkeypatch.setattr(retention, "BATCH_ROWS", 50)
    original = retention._Writer.txn
    calls = {"n": 0}

    def flaky(self: retention._Writer):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] % 7 == 0:
            raise KeyboardInterrupt  # as if killed between transactions
        return original(self)

    monkeypatch.setattr(retention._Writer, "txn", flaky)
    for _ in range(500):
        try:
            apply_retention(conn, POLICY, NOW)
            break
        except KeyboardInterrupt:
            continue
    monkeypatch.setattr(retention._Writer, "txn", original)
    monkeypatch.setattr(retention, "BATCH_ROWS", 5000)
    apply_retention(conn, POLICY, NOW)
    assert sorted(conn.iterdump()) == expected


def test_small_batches_keep_transactions_short_and_give_the_same_result(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH_ROWS", 20)
    report = apply_retention(conn, POLICY, NOW)
    assert report.transactions > 50
    assert report.longest_transaction_ms < 500
    assert count(conn, "SELECT COUNT(*) FROM node_rollups WHERE resolution = 86400") == 2 * 5 + 1


def test_sample_rewards_and_the_last_sample_of_a_gone_node_stay(conn: sqlite3.Connection) -> None:
    apply_retention(conn, POLICY, NOW)
    assert count(conn, "SELECT COUNT(*) FROM polls WHERE source = 'sample'") == 1
    assert count(conn, "SELECT COUNT(*) FROM rewards") == 1
    fleet = {r.node: r for r in latest_fleet(conn)}
    assert fleet["c"].values["cpu_pct"] == 5.0  # gone four days ago, still last seen
    assert fleet["c"].fetched_at < T0 + timedelta(days=1)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_snapshots_are_thinned_per_hour_then_per_day(conn: sqlite3.Connection) -> None:
    apply_retention(conn, POLICY, NOW)

    def per(bucket_len: int, low: datetime, high: datetime) -> set[int]:
        rows = conn.execute(
            f"SELECT substr(finished_at, 1, {bucket_len}), COUNT(*) FROM polls "
            "WHERE source = 'coingecko' AND finished_at >= ? AND finished_at < ? GROUP BY 1",
            (iso(low), iso(high)),
        ).fetchall()
        return {n for _, n in rows}

    assert per(13, NOW - timedelta(hours=23), NOW) == {6}  # the last day: every poll
    assert per(13, NOW - timedelta(days=2), NOW - timedelta(days=1)) == {1}  # then hourly
    assert per(10, T0, NOW - timedelta(days=2)) == {1}  # then daily
    assert count(conn, "SELECT COUNT(*) FROM polls WHERE status = 'failed'") == 1  # the newest
    # sparklines: one per closed hour for the last day, then one per day, then none
    spark = conn.execute(
        "SELECT p.finished_at FROM market m JOIN polls p ON p.id = m.poll_id "
        "WHERE p.source = 'coingecko' AND m.sparkline_7d IS NOT NULL ORDER BY 1"
    ).fetchall()
    assert len(spark) == 24 + 1
    rankings = latest_rankings(conn, at=NOW - timedelta(hours=5, minutes=25))
    assert rankings is not None and rankings.coins[0].price_usd == 1.0
    # that snapshot lost its sparkline; the one of the hour before stands in for it
    spark_at = {r[0] for r in spark}
    assert iso(rankings.poll.finished_at) not in spark_at
    assert rankings.coins[0].sparkline_7d == (1.0, 2.0)
    # past snapshot_hourly_days sparklines are gone: none, rather than a stale one
    old = latest_rankings(conn, at=T0 + timedelta(days=2, hours=23, minutes=55))
    assert old is not None and old.poll.source == "coingecko" and old.coins[0].sparkline_7d == ()


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (timedelta(hours=12), 0),
        (timedelta(days=1, hours=12), 60),
        (timedelta(days=2, hours=12), 3600),
        (timedelta(days=4, hours=12), 86400),
    ],
)
def test_node_history_reads_the_tier_that_covers_its_range(
    conn: sqlite3.Connection, span: timedelta, expected: int
) -> None:
    apply_retention(conn, POLICY, NOW)
    since = NOW - span
    points = node_history(conn, "a", "exporter", since, fields=("cpu_pct",))
    times = [t for t, _ in points]
    assert times == sorted(times) and times[0] >= since
    # reaches to now: the newest bucket (labelled by its start) holds the newest raw samples
    assert times[-1] >= NOW - timedelta(seconds=max(expected, 600))
    if expected == 0:
        assert len(points) == 72
    else:
        old = [t for t in times if t < NOW - timedelta(days=2)]
        assert all(t.timestamp() % expected == 0 for t in old)


def test_node_history_as_of_t_shows_nothing_newer(conn: sqlite3.Connection) -> None:
    apply_retention(conn, POLICY, NOW)
    at = NOW - timedelta(days=2, hours=5, minutes=25)
    points = node_history(conn, "a", "exporter", at - timedelta(days=2), at=at)
    assert points and all(t + timedelta(hours=1) <= at for t, _ in points[:-1])
    assert points[-1][0] <= at
    recent = node_history(conn, "a", "exporter", NOW - timedelta(hours=2), at=NOW - STEP * 3)
    assert [t for t, _ in recent][-1] == NOW - STEP * 3


def test_node_history_without_any_retention_is_raw(conn: sqlite3.Connection) -> None:
    points = node_history(conn, "b", "exporter", T0 - timedelta(days=1), fields=("mem_pct",))
    assert len(points) == DAYS * 144
    assert points[3][1] == {"mem_pct": None}  # the down sample at :30 is there, empty


@pytest.mark.parametrize(
    "kwargs",
    [
        {"raw_days": 0.5},
        {"minute_days": 0.5},
        {"hour_days": 10, "minute_days": 20},
        {"day_days": 100},
        {"snapshot_hourly_days": 0.5},
        {"raw_days": float("nan")},
    ],
)
def test_policy_refuses_inconsistent_ages(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be at least"):
        RetentionPolicy(**kwargs)
