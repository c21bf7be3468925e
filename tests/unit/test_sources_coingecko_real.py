"""CoinGecko ``/coins/markets`` on a body recorded from the live API (tests/fixtures/real/).

Where it comes from is in tests/fixtures/real/README.md; expected values are read off the body.
"""

from __future__ import annotations

import json
from pathlib import Path

from sources.coingecko import parse_markets

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "real"


def test_real_page_with_a_placeholder_market_cap():
    body = json.loads((REAL / "coingecko_coins-markets.forbole-soljuno.json").read_text())
    coins, skipped = parse_markets(body)
    assert skipped == 0
    by_id = {c.coin_id: c for c in coins}
    assert list(by_id) == ["cosmos", "bitcanna", "bitcoin"]
    bitcanna = by_id["bitcanna"]  # "market_cap": 0 with "market_cap_rank": null
    assert (bitcanna.market_cap_usd, bitcanna.rank, bitcanna.fdv_usd) == (None, None, None)
    assert (bitcanna.price_usd, bitcanna.volume_24h_usd) == (0.086703, 248346.0)
    assert bitcanna.change_24h_pct == -1.02652  # no _in_currency field: the rounded one
    cosmos = by_id["cosmos"]
    assert (cosmos.market_cap_usd, cosmos.rank, cosmos.fdv_usd) == (8191073374.0, 20, None)
    assert (by_id["bitcoin"].market_cap_usd, by_id["bitcoin"].fdv_usd) == (
        777407839306.0,
        859714534378.0,
    )
    assert all(c.sparkline_7d is None for c in coins)  # asked without sparkline=true
    assert all(c.change_7d_pct is None and c.change_30d_pct is None for c in coins)
