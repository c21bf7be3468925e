"""parse_moment: the times a user types for "from", time travel and ``--at``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cache.timeparse import parse_moment

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def berlin() -> Iterator[None]:
    """Local time is Europe/Berlin (CET/CEST) for the test, UTC again afterwards."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        os.environ["TZ"] = old or "UTC"
        time.tzset()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("now", NOW),
        ("  NOW ", NOW),
        ("-3h", NOW - timedelta(hours=3)),
        ("-90m", NOW - timedelta(minutes=90)),
        ("-90min", NOW - timedelta(minutes=90)),
        ("-2d", NOW - timedelta(days=2)),
        ("-1d12h", NOW - timedelta(days=1, hours=12)),
        ("- 1w", NOW - timedelta(weeks=1)),
        ("-1.5h", NOW - timedelta(minutes=90)),
        ("-45s", NOW - timedelta(seconds=45)),
        ("3h ago", NOW - timedelta(hours=3)),
        ("2026-11-20 14:00", datetime(2026, 11, 20, 14, 0, tzinfo=UTC)),
        ("2026-11-20  14:00:30", datetime(2026, 11, 20, 14, 0, 30, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T14:00:00Z", datetime(2026, 11, 20, 14, 0, tzinfo=UTC)),
        ("2026-11-20t14:00z", datetime(2026, 11, 20, 14, 0, tzinfo=UTC)),
        ("2026-11-20T14:00+01:00", datetime(2026, 11, 20, 13, 0, tzinfo=UTC)),
        ("2026-11-20T14:00", datetime(2026, 11, 20, 14, 0, tzinfo=UTC)),
        ("11:30", datetime(2026, 11, 25, 11, 30, tzinfo=UTC)),
        ("14:00", datetime(2026, 11, 24, 14, 0, tzinfo=UTC)),  # still to come today: yesterday
    ],
)
def test_accepted_forms_in_utc_local_time(typed: str, expected: datetime) -> None:
    moment = parse_moment(typed, NOW)
    assert moment == expected and moment.tzinfo == UTC


def test_relative_from_a_now_in_another_zone_is_returned_in_utc() -> None:
    now = NOW.astimezone(timezone(timedelta(hours=5)))
    assert parse_moment("-1h", now) == NOW - timedelta(hours=1)
    assert parse_moment("-1h", now).tzinfo == UTC


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "no time given"),
        ("   ", "no time given"),
        ("yesterday-ish", 'cannot read "yesterday-ish" as a time: use'),
        ("-3x", 'cannot read "-3x"'),
        ("+3h", 'cannot read "+3h"'),
        ("25:00", "no such time of day"),
        ("2026-13-01 10:00", 'cannot read "2026-13-01 10:00"'),
        ("2026-11-26 10:00", "is in the future"),
        ("-99999999999d", "too far back"),
        ("0001-01-01 00:00", "out of range"),
        ("x" * 200, "…"),
    ],
)
def test_bad_input_says_why_and_how(typed: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_moment(typed, NOW)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 200  # a long paste is not repeated in full


def test_future_allowed_when_asked() -> None:
    later = parse_moment("2026-11-26 10:00", NOW, allow_future=True)
    assert later == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_moment("-1h", NOW.replace(tzinfo=None))


def test_local_time_uses_the_offset_of_that_date(berlin: None) -> None:
    assert parse_moment("2026-07-01 14:00", NOW) == datetime(2026, 7, 1, 12, tzinfo=UTC)  # CEST
    assert parse_moment("2026-01-15 14:00", NOW) == datetime(2026, 1, 15, 13, tzinfo=UTC)  # CET
    # "14:00" today in Berlin is 13:00 UTC: after 12:00 UTC, so yesterday's
    assert parse_moment("14:00", NOW) == datetime(2026, 11, 24, 13, tzinfo=UTC)
    assert parse_moment("12:00", NOW) == datetime(2026, 11, 25, 11, tzinfo=UTC)


def test_dst_gap_is_refused_and_overlap_takes_the_first(berlin: None) -> None:
    with pytest.raises(ValueError, match="does not exist in local time"):
        parse_moment("2026-03-29 02:30", NOW)  # clocks jumped from 02:00 to 03:00
    # 02:30 happened twice on 2026-10-25: the first one, still CEST (+02:00)
    assert parse_moment("2026-10-25 02:30", NOW) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert parse_moment("2026-10-25 03:30", NOW) == datetime(2026, 10, 25, 2, 30, tzinfo=UTC)
    # relative times do not care about the wall clock
    assert parse_moment("-1d", datetime(2026, 3, 29, 12, tzinfo=UTC)) == datetime(
        2026, 3, 28, 12, tzinfo=UTC
    )
