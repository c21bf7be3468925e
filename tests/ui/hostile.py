"""A cache whose rankings carry the malicious corpus, written raw (as a copied file could be)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cache.db import iso, open_writer
from tests.corpus import ALL
from tests.ui.appkit import NOW


def raw_corpus(tmpdir: Path) -> list[str]:
    """The corpus with the screenshot payload aimed at ``tmpdir``.

    Lone surrogates cannot be stored as SQLite text at all; the sources turn them into U+FFFD
    before storage (tested in tests/unit), so they are left out of a raw database here.
    """
    out = []
    for item in ALL:
        item = item.replace("TMPDIR", str(tmpdir))
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            continue
        out.append(item)
    return out


def store_hostile_rankings(db: Path, tmpdir: Path) -> list[str]:
    """One live poll whose every name, symbol and error message is a corpus string.

    Bypasses cache.store on purpose: the screens must be safe even on a database that was not
    written by us (a copy from a colleague), so the render-side sanitising is what is tested.
    """
    payloads = raw_corpus(tmpdir)
    conn = open_writer(db)
    at = NOW - timedelta(seconds=30)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        cursor = conn.execute(
            "INSERT INTO polls (source, started_at, finished_at, data_at, status, items) "
            "VALUES ('coingecko', ?, ?, ?, 'ok', ?)",
            (iso(at), iso(at), iso(at), len(payloads)),
        )
        poll_id = cursor.lastrowid
        conn.executemany(
            "INSERT INTO market (poll_id, coin_id, symbol, name, rank, price_usd, "
            "market_cap_usd, change_24h_pct, category) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (poll_id, f"coin-{i}", p, p, i + 1, 1.0 + i, 1e9 - i * 1e6, (i % 7) - 3.0, p)
                for i, p in enumerate(payloads)
            ],
        )
        conn.execute(
            "INSERT INTO polls (source, started_at, finished_at, data_at, status, error_kind, "
            "error, items) VALUES ('coingecko', ?, ?, ?, 'failed', 'http_4xx', ?, 0)",
            (iso(NOW), iso(NOW), iso(NOW), " | ".join(payloads[:12])),
        )
        conn.execute("COMMIT")
    conn.close()
    return payloads
