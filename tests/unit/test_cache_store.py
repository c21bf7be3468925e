"""cache.store and cache.queries: one poll = one transaction, failed polls, as-of reads."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import cache.store
from cache.queries import coin_history, latest_rankings, latest_rankings_poll, source_states
from cache.store import PollRecord, has_rankings, write_poll
from sources.coingecko import parse_markets
from sources.models import ErrorKind, MarketCoin, Reading, SourceError
from sources.sample import SAMPLE_DATE, load_sample

T0 = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


def coin(coin_id: str, price: float | None, **extra: Any) -> MarketCoin:
    return MarketCoin.model_validate(
        {
            "id": coin_id,
            "symbol": coin_id[:3],
            "name": coin_id.title(),
            "current_price": price,
            "market_cap": None if price is None else price * 1_000_000,
            **extra,
        }
    )


def record(
    source: str,
    finished: datetime,
    coins: list[MarketCoin] | None = None,
    *,
    error: SourceError | None = None,
    at: datetime | None = None,
    retry_at: datetime | None = None,
) -> PollRecord:
    reading = None if coins is None else Reading(market=coins, at=at)
    return PollRecord(
        source=source,
        started_at=finished - timedelta(seconds=2),
        finished_at=finished,
        reading=reading,
        error=error,
        retry_at=retry_at,
    )


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    return (
        conn.execute("SELECT COUNT(*) FROM polls").fetchone()[0],
        conn.execute("SELECT COUNT(*) FROM market").fetchone()[0],
    )


def prices(conn: sqlite3.Connection, at: datetime | None = None) -> dict[str, float | None]:
    rankings = latest_rankings(conn, at)
    assert rankings is not None
    return {c.coin_id: c.price_usd for c in rankings.coins}


def test_nothing_stored_means_no_rankings(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    assert latest_rankings(reader) is None
    assert latest_rankings_poll(reader) is None
    assert not has_rankings(writer)
    assert source_states(reader) == []


def test_good_poll_round_trips(
    writer: sqlite3.Connection, reader: sqlite3.Connection, depin_page: list[dict]
) -> None:
    coins, skipped = parse_markets(depin_page)
    assert skipped == 0
    poll_id = write_poll(
        writer,
        PollRecord("coingecko", T0, T0 + timedelta(seconds=1), reading=Reading(market=coins)),
    )
    rankings = latest_rankings(reader)
    assert rankings is not None
    assert rankings.poll.id == poll_id
    assert rankings.poll.source == "coingecko"
    assert rankings.poll.status == "ok"
    assert rankings.poll.items == len(depin_page)
    assert rankings.poll.data_at == T0 + timedelta(seconds=1)  # no reading.at: fetched now
    stored = {c.coin_id: c for c in rankings.coins}
    assert set(stored) == {item["id"] for item in depin_page}
    tao = stored["bittensor"]
    assert (tao.price_usd, tao.market_cap_usd, tao.rank) == (412.31, 3050000000.0, 27)
    assert tao.sparkline_7d[0] == 412.31
    assert len(tao.sparkline_7d) == len(depin_page[0]["sparkline_in_7d"]["price"])
    # ordered by market cap, largest first
    caps = [c.market_cap_usd for c in rankings.coins]
    assert caps == sorted(caps, reverse=True)


def test_failed_poll_keeps_the_last_good_snapshot(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    good_id = write_poll(
        writer, record("coingecko", T0, [coin("helium", 6.02), coin("akash", 2.87)])
    )
    error = SourceError(
        ErrorKind.RATE_LIMITED,
        "rate limited by api.coingecko.com: You've exceeded the Rate Limit",
        status=429,
        retry_after=119,
    )
    retry = T0 + timedelta(minutes=5, seconds=119)
    failed_id = write_poll(
        writer, record("coingecko", T0 + timedelta(minutes=5), error=error, retry_at=retry)
    )
    assert failed_id != good_id

    rankings = latest_rankings(reader)
    assert rankings is not None
    assert rankings.poll.id == good_id
    assert {c.coin_id: c.price_usd for c in rankings.coins} == {"helium": 6.02, "akash": 2.87}

    row = writer.execute(
        "SELECT status, error_kind, error, items, retry_at FROM polls WHERE id = ?", (failed_id,)
    ).fetchone()
    assert row[0] == "failed"
    assert row[1] == "rate_limited"
    assert "rate limited by api.coingecko.com" in row[2]
    assert row[3] == 0
    assert row[4] == "2026-11-25T09:06:59.000Z"
    assert (
        writer.execute("SELECT COUNT(*) FROM market WHERE poll_id = ?", (failed_id,)).fetchone()[0]
        == 0
    )


def test_a_reading_with_an_error_is_stored_as_failed_without_rows(
    writer: sqlite3.Connection,
    reader: sqlite3.Connection,
) -> None:
    rec = record(
        "coingecko",
        T0,
        [coin("helium", 6.02)],
        error=SourceError(ErrorKind.SCHEMA, "schema changed?"),
    )
    poll_id = write_poll(writer, rec)
    assert writer.execute("SELECT status FROM polls WHERE id = ?", (poll_id,)).fetchone()[0] == (
        "failed"
    )
    assert counts(writer) == (1, 0)
    assert latest_rankings(reader) is None


def test_error_message_is_sanitised_and_bounded(writer: sqlite3.Connection) -> None:
    error = SourceError(ErrorKind.HTTP_4XX, "bad \x1b]52;c;aGk=\x07 thing " + "x" * 5000)
    poll_id = write_poll(writer, record("coingecko", T0, error=error))
    stored = writer.execute("SELECT error FROM polls WHERE id = ?", (poll_id,)).fetchone()[0]
    assert "\x1b" not in stored and "\x07" not in stored
    assert len(stored) <= 501


def test_insert_failing_mid_transaction_leaves_nothing(
    writer: sqlite3.Connection, reader: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_poll(writer, record("coingecko", T0, [coin("helium", 6.02)]))
    before = counts(writer)

    real_row = cache.store._market_row

    def row_violating_not_null(poll_id: int, item: MarketCoin) -> tuple[object, ...]:
        row = list(real_row(poll_id, item))
        if item.coin_id == "akash":
            row[3] = None  # name is NOT NULL
        return tuple(row)

    monkeypatch.setattr(cache.store, "_market_row", row_violating_not_null)
    later = T0 + timedelta(minutes=2)
    batch = [coin("filecoin", 4.91), coin("akash", 2.87), coin("render", 6.21)]
    with pytest.raises(sqlite3.IntegrityError):
        write_poll(writer, record("coingecko", later, batch))

    assert not writer.in_transaction
    assert counts(writer) == before
    assert (
        writer.execute(
            "SELECT COUNT(*) FROM polls WHERE finished_at >= '2026-11-25T09:02'"
        ).fetchone()[0]
        == 0
    )
    assert prices(reader) == {"helium": 6.02}

    # the connection stays usable: the next poll stores normally
    monkeypatch.setattr(cache.store, "_market_row", real_row)
    write_poll(writer, record("coingecko", later, batch))
    assert prices(reader) == {"filecoin": 4.91, "akash": 2.87, "render": 6.21}


def test_exception_raised_mid_transaction_leaves_nothing(
    writer: sqlite3.Connection, reader: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_row = cache.store._market_row
    calls = []

    def row_then_crash(poll_id: int, item: MarketCoin) -> tuple[object, ...]:
        calls.append(item.coin_id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # after the poll row was inserted
        return real_row(poll_id, item)

    monkeypatch.setattr(cache.store, "_market_row", row_then_crash)
    with pytest.raises(KeyboardInterrupt):
        write_poll(writer, record("coingecko", T0, [coin("helium", 6.02), coin("akash", 2.87)]))
    assert calls == ["helium", "akash"]
    assert not writer.in_transaction
    assert counts(writer) == (0, 0)
    assert latest_rankings(reader) is None


def test_non_finite_and_huge_numbers_never_reach_sqlite(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    # model_construct skips validation, so these values reach the store as they are
    hostile = MarketCoin.model_construct(
        coin_id="weird",
        symbol="wrd",
        name="Weird",
        rank=2**63,
        price_usd=float("nan"),
        market_cap_usd=float("inf"),
        volume_24h_usd=float("-inf"),
        fdv_usd=1e308 * 10,
        change_24h_pct=float("nan"),
        change_7d_pct=float("inf"),
        change_30d_pct=float("-inf"),
        sparkline_7d=[1.5, float("nan"), float("inf"), float("-inf"), 2.5],
        category=None,
        devices=2**63,
        last_updated=None,
    )
    poll_id = write_poll(writer, record("coingecko", T0, [hostile]))
    row = writer.execute(
        "SELECT typeof(rank), typeof(price_usd), typeof(market_cap_usd), "
        "typeof(volume_24h_usd), typeof(fdv_usd), typeof(change_24h_pct), "
        "typeof(change_7d_pct), typeof(change_30d_pct), typeof(devices), sparkline_7d "
        "FROM market WHERE poll_id = ?",
        (poll_id,),
    ).fetchone()
    assert row[:9] == ("null",) * 9
    assert "NaN" not in row[9] and "Infinity" not in row[9]
    assert json.loads(row[9]) == [1.5, None, None, None, 2.5]

    rankings = latest_rankings(reader)
    assert rankings is not None
    only = rankings.coins[0]
    assert only.price_usd is None and only.market_cap_usd is None and only.rank is None
    assert only.sparkline_7d == (1.5, None, None, None, 2.5)


def test_largest_int64_values_are_kept(writer: sqlite3.Connection) -> None:
    big = MarketCoin.model_construct(
        coin_id="big",
        symbol=None,
        name="Big",
        rank=2**63 - 1,
        devices=2**63 - 1,
        price_usd=None,
        market_cap_usd=None,
        volume_24h_usd=None,
        fdv_usd=None,
        change_24h_pct=None,
        change_7d_pct=None,
        change_30d_pct=None,
        sparkline_7d=None,
        category=None,
        last_updated=None,
    )
    write_poll(writer, record("coingecko", T0, [big]))
    assert writer.execute("SELECT rank, devices FROM market").fetchone() == (2**63 - 1, 2**63 - 1)


def test_live_data_wins_over_a_newer_sample(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    live_id = write_poll(writer, record("coingecko", T0, [coin("helium", 6.02)]))
    sample_id = write_poll(
        writer, record("sample", T0 + timedelta(hours=1), load_sample(), at=SAMPLE_DATE)
    )
    rankings = latest_rankings(reader)
    assert rankings is not None
    assert rankings.poll.id == live_id
    assert rankings.poll.source == "coingecko"
    assert not rankings.poll.is_sample
    # also as of any moment after both polls
    as_of = latest_rankings_poll(reader, T0 + timedelta(hours=2))
    assert as_of is not None and as_of.id == live_id
    # the sample poll really is the newer one
    newest = reader.execute("SELECT id FROM polls ORDER BY finished_at DESC LIMIT 1").fetchone()
    assert newest[0] == sample_id


def test_sample_is_used_only_while_no_live_snapshot_exists(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    sample_id = write_poll(writer, record("sample", T0, load_sample(), at=SAMPLE_DATE))
    rankings = latest_rankings(reader)
    assert rankings is not None
    assert rankings.poll.id == sample_id
    assert rankings.poll.is_sample
    assert rankings.poll.data_at == SAMPLE_DATE
    assert len(rankings.coins) == 20

    live_id = write_poll(writer, record("coingecko", T0 + timedelta(hours=1), [coin("hnt", 6.0)]))
    now = latest_rankings_poll(reader)
    assert now is not None and now.id == live_id
    # as of a moment before the live poll, the sample is still what was shown
    before = latest_rankings_poll(reader, T0 + timedelta(minutes=30))
    assert before is not None and before.id == sample_id


def test_as_of_returns_the_snapshot_at_or_before_t(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    t1, t2, t3 = T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    write_poll(writer, record("coingecko", t1, [coin("helium", 1.0), coin("akash", 10.0)]))
    write_poll(writer, record("coingecko", t2, [coin("helium", 2.0), coin("akash", 20.0)]))
    write_poll(writer, record("coingecko", t3, [coin("helium", 3.0), coin("akash", 30.0)]))

    assert prices(reader, t2) == {"helium": 2.0, "akash": 20.0}
    assert prices(reader, t2 + timedelta(minutes=59)) == {"helium": 2.0, "akash": 20.0}
    assert prices(reader, t2 - timedelta(milliseconds=1)) == {"helium": 1.0, "akash": 10.0}
    assert prices(reader, t3) == {"helium": 3.0, "akash": 30.0}
    assert prices(reader) == {"helium": 3.0, "akash": 30.0}
    assert latest_rankings(reader, t1 - timedelta(seconds=1)) is None

    history = coin_history(reader, "helium", at=t2)
    assert [price for _, price, _ in history] == [1.0, 2.0]

    # a failed poll between T2 and T3 changes nothing as of T2
    write_poll(
        writer,
        record(
            "coingecko",
            t2 + timedelta(minutes=1),
            error=SourceError(ErrorKind.TIMEOUT, "no complete answer"),
        ),
    )
    assert prices(reader, t2 + timedelta(minutes=2)) == {"helium": 2.0, "akash": 20.0}


def test_as_of_accepts_other_timezones(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    write_poll(writer, record("coingecko", T0, [coin("helium", 1.0)]))
    plus_two = timezone(timedelta(hours=2))
    # 10:59:59 at +02:00 is 08:59:59 UTC, before T0
    assert latest_rankings(reader, datetime(2026, 11, 25, 10, 59, 59, tzinfo=plus_two)) is None
    assert prices(reader, datetime(2026, 11, 25, 11, 0, 0, tzinfo=plus_two)) == {"helium": 1.0}


def test_coin_history_is_oldest_first(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    for step, price in enumerate([5.0, 6.0, 7.0, 8.0]):
        write_poll(
            writer,
            record(
                "coingecko",
                T0 + timedelta(minutes=step),
                [coin("helium", price), coin("akash", 100 + price)],
            ),
        )
    history = coin_history(reader, "helium")
    assert [p for _, p, _ in history] == [5.0, 6.0, 7.0, 8.0]
    assert [t for t, _, _ in history] == [T0 + timedelta(minutes=m) for m in range(4)]
    assert [cap for _, _, cap in history] == [5e6, 6e6, 7e6, 8e6]
    # the limit keeps the newest points, still oldest first
    assert [p for _, p, _ in coin_history(reader, "helium", limit=2)] == [7.0, 8.0]
    assert coin_history(reader, "nonexistent") == []


def test_coin_history_uses_the_data_time_of_the_sample(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    write_poll(writer, record("sample", T0, load_sample(), at=SAMPLE_DATE))
    history = coin_history(reader, "render")
    assert len(history) == 1
    assert history[0][0] == SAMPLE_DATE
    assert history[0][1] == 6.85


def test_source_states(writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
    fail = SourceError(ErrorKind.HTTP_5XX, "HTTP 502 from api.coingecko.com")
    write_poll(writer, record("sample", T0, load_sample(), at=SAMPLE_DATE))
    ok_id = write_poll(writer, record("coingecko", T0 + timedelta(minutes=1), [coin("hnt", 6.0)]))
    write_poll(writer, record("coingecko", T0 + timedelta(minutes=2), error=fail))
    last_id = write_poll(writer, record("coingecko", T0 + timedelta(minutes=3), error=fail))

    states = {s.source: s for s in source_states(reader)}
    assert set(states) == {"coingecko", "sample"}
    cg = states["coingecko"]
    assert cg.last.id == last_id
    assert cg.last.status == "failed"
    assert cg.last.error_kind == "http_5xx"
    assert cg.last_ok is not None and cg.last_ok.id == ok_id
    assert cg.failures_since_ok == 2
    assert states["sample"].failures_since_ok == 0
    assert states["sample"].last_ok is not None and states["sample"].last_ok.is_sample

    # as of the first failure
    as_of = {s.source: s for s in source_states(reader, T0 + timedelta(minutes=2))}
    assert as_of["coingecko"].failures_since_ok == 1

    # a good poll resets the count
    new_ok = write_poll(writer, record("coingecko", T0 + timedelta(minutes=4), [coin("hnt", 6.1)]))
    cg = {s.source: s for s in source_states(reader)}["coingecko"]
    assert cg.last.id == new_ok and cg.last_ok is not None and cg.last_ok.id == new_ok
    assert cg.failures_since_ok == 0


def test_source_state_of_a_source_that_never_succeeded(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    fail = SourceError(ErrorKind.CONNECT, "cannot connect to api.coingecko.com")
    for minute in range(3):
        write_poll(writer, record("coingecko", T0 + timedelta(minutes=minute), error=fail))
    (state,) = source_states(reader)
    assert state.last_ok is None
    assert state.failures_since_ok == 3
    assert state.last.error_kind == "connect"


def test_has_rankings(writer: sqlite3.Connection) -> None:
    write_poll(writer, record("coingecko", T0, error=SourceError(ErrorKind.EMPTY, "empty body")))
    assert not has_rankings(writer)
    write_poll(writer, record("sample", T0, load_sample(), at=SAMPLE_DATE))
    assert has_rankings(writer)
