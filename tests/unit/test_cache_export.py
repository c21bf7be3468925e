"""cache.export: the fixed key set, JSON numbers and nulls, CSV header and formula neutralising."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

from cache.export import RANKINGS_KEYS, rankings_records, to_csv, to_json
from cache.queries import CoinRow, PollInfo, Rankings, latest_rankings
from cache.store import PollRecord, write_poll
from sources.models import MarketCoin, Reading

KEYS = [
    "coin_id",
    "symbol",
    "name",
    "rank",
    "price_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "change_24h_pct",
    "change_7d_pct",
    "change_30d_pct",
    "source",
    "fetched_at",
    # per-device figures (cache/market_devices.py; tests/unit/test_rankings_per_device.py)
    "price_change_30d_pct",
    "devices_network",
    "devices_metric",
    "devices",
    "devices_fetched_at",
    "market_cap_per_device_usd",
    "devices_change_30d_pct",
]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
FETCHED = datetime(2026, 11, 25, 12, 0, 5, 250000, tzinfo=UTC)


def poll(source: str = "coingecko", data_at: datetime = FETCHED) -> PollInfo:
    return PollInfo(
        id=7,
        source=source,
        finished_at=data_at,
        data_at=data_at,
        status="ok",
        error_kind=None,
        error=None,
        latency_ms=12.0,
        items=2,
        skipped=0,
        retry_at=None,
    )


def row(coin_id: str = "helium", **values: object) -> CoinRow:
    fields: dict[str, object] = {
        "coin_id": coin_id,
        "symbol": "hnt",
        "name": "Helium",
        "rank": 98,
        "price_usd": 6.02,
        "market_cap_usd": 1050000000.0,
        "volume_24h_usd": 9900000.0,
        "fdv_usd": 1365000000.0,
        "change_24h_pct": 0.87,
        "change_7d_pct": 1.1,
        "change_30d_pct": None,
        "sparkline_7d": (1.0, 2.0),
        "category": "DePIN",
        "devices": 400000,
    }
    fields.update(values)
    return CoinRow(**fields)  # type: ignore[arg-type]


def rankings(*rows: CoinRow, source: str = "coingecko", data_at: datetime = FETCHED) -> Rankings:
    return Rankings(poll=poll(source, data_at), coins=list(rows))


def test_records_have_exactly_the_nineteen_keys_in_order() -> None:
    records = rankings_records(rankings(row(), row("akash", name="Akash", symbol=None)))
    assert len(records) == 2
    for record in records:
        assert list(record) == KEYS
    assert list(RANKINGS_KEYS) == KEYS


def test_no_snapshot_exports_an_empty_list() -> None:
    assert rankings_records(None) == []
    assert json.loads(to_json(rankings_records(None))) == []
    assert to_csv([], RANKINGS_KEYS).splitlines() == [",".join(KEYS)]


def test_json_numbers_are_numbers_and_missing_values_null() -> None:
    text = to_json(
        rankings_records(
            rankings(
                row(
                    price_usd=70187.0,
                    market_cap_usd=1.38e12,
                    volume_24h_usd=None,
                    change_24h_pct=-2.41,
                    change_7d_pct=0.5,
                    change_30d_pct=None,
                    symbol=None,
                    rank=None,
                )
            )
        )
    )
    (record,) = json.loads(text)
    assert record["price_usd"] == 70187 and type(record["price_usd"]) is int
    assert record["market_cap_usd"] == 1380000000000 and type(record["market_cap_usd"]) is int
    assert record["change_24h_pct"] == -2.41 and type(record["change_24h_pct"]) is float
    assert record["change_7d_pct"] == 0.5
    assert record["volume_24h_usd"] is None
    assert record["change_30d_pct"] is None
    assert record["symbol"] is None
    assert record["rank"] is None
    # literally numbers and null in the text, never strings or NaN
    assert '"price_usd": 70187,' in text
    assert '"change_30d_pct": null' in text
    assert "NaN" not in text and '"70187"' not in text


def test_rank_and_name_survive_json() -> None:
    (record,) = json.loads(to_json(rankings_records(rankings(row(name="io.net ⚡", rank=310)))))
    assert record["rank"] == 310 and type(record["rank"]) is int
    assert record["name"] == "io.net ⚡"
    assert record["source"] == "coingecko"
    assert record["coin_id"] == "helium"


def test_fetched_at_is_iso_8601_utc_with_z() -> None:
    cet = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 25, 13, 0, 5, 250000, tzinfo=cet)
    (record,) = rankings_records(rankings(row(), data_at=local))
    assert ISO_UTC.match(record["fetched_at"]), record["fetched_at"]
    parsed = datetime.fromisoformat(record["fetched_at"].replace("Z", "+00:00"))
    assert parsed == FETCHED
    assert record["fetched_at"].startswith("2026-11-25T12:00:05")


def test_sample_rows_carry_source_and_date() -> None:
    sample_day = datetime(2024, 6, 30, tzinfo=UTC)
    (record,) = rankings_records(rankings(row(), source="sample", data_at=sample_day))
    assert record["source"] == "sample"
    assert record["fetched_at"].startswith("2024-06-30T00:00:00")
    assert record["fetched_at"].endswith("Z")


def test_csv_header_equals_the_keys_and_cells_follow() -> None:
    text = to_csv(
        rankings_records(rankings(row(price_usd=70187.0, change_30d_pct=None))), RANKINGS_KEYS
    )
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == KEYS
    assert len(parsed) == 2
    cells = dict(zip(KEYS, parsed[1], strict=True))
    assert cells["coin_id"] == "helium"
    assert cells["price_usd"] == "70187"
    assert cells["change_24h_pct"] == "0.87"
    assert cells["change_30d_pct"] == ""
    assert cells["source"] == "coingecko"
    assert ISO_UTC.match(cells["fetched_at"])


def test_csv_formula_cells_are_neutralised_se08() -> None:
    """SE-08: formula-looking cells get a leading quote."""
    hostile = [
        row("a", name='=HYPERLINK("http://evil")', symbol="=1+1"),
        row("b", name="+1", symbol="+x"),
        row("c", name="@SUM(A1)", symbol="@s"),
        row("d", name="-2+3", symbol="-x"),
        row("e", name="\tTAB", symbol="\tx"),
    ]
    text = to_csv(rankings_records(rankings(*hostile)), RANKINGS_KEYS)
    lines = list(csv.reader(io.StringIO(text, newline="")))[1:]
    names = [line[KEYS.index("name")] for line in lines]
    symbols = [line[KEYS.index("symbol")] for line in lines]
    assert names == ['\'=HYPERLINK("http://evil")', "'+1", "'@SUM(A1)", "'-2+3", "'\tTAB"]
    assert symbols == ["'=1+1", "'+x", "'@s", "'-x", "'\tx"]


def test_csv_negative_numbers_are_not_prefixed() -> None:
    text = to_csv(
        rankings_records(
            rankings(row(change_24h_pct=-2.41, change_7d_pct=-9.0, change_30d_pct=-0.001))
        ),
        RANKINGS_KEYS,
    )
    line = list(csv.reader(io.StringIO(text, newline="")))[1]
    cells = dict(zip(KEYS, line, strict=True))
    assert cells["change_24h_pct"] == "-2.41"
    assert cells["change_7d_pct"] == "-9"
    assert cells["change_30d_pct"] == "-0.001"
    assert "'" not in text


def test_json_is_not_neutralised() -> None:
    (record,) = json.loads(to_json(rankings_records(rankings(row(name="=1+1")))))
    assert record["name"] == "=1+1"


def test_hostile_names_neutralised_after_a_round_trip_through_the_cache(
    writer: sqlite3.Connection, reader: sqlite3.Connection
) -> None:
    names = ['=HYPERLINK("http://evil")', "+1", "@SUM(A1)"]
    coins = [
        MarketCoin.model_validate(
            {
                "id": f"c{i}",
                "symbol": name,
                "name": name,
                "market_cap": 1000 - i,
                "price_change_percentage_24h": -1.5,
                "change_24h_pct": -1.5,
            }
        )
        for i, name in enumerate(names)
    ]
    write_poll(writer, PollRecord("coingecko", FETCHED, FETCHED, reading=Reading(market=coins)))
    text = to_csv(rankings_records(latest_rankings(reader)), RANKINGS_KEYS)
    lines = list(csv.reader(io.StringIO(text, newline="")))
    assert lines[0] == KEYS
    assert [line[KEYS.index("name")] for line in lines[1:]] == ["'" + n for n in names]
    assert [line[KEYS.index("symbol")] for line in lines[1:]] == ["'" + n for n in names]
    assert [line[KEYS.index("change_24h_pct")] for line in lines[1:]] == ["-1.5"] * 3
