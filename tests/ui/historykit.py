"""A cache where things changed between "from" (NOW − 6 h) and now, for the History tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sources.models import NetworkMetric, NodeSample, Reading, Reward
from tests.ui.appkit import (
    DEVICES,
    NOW,
    markets_page,
    store,
    store_devices,
    store_fleet,
    store_live,
    store_networks,
)

LOOKED = NOW - timedelta(hours=6)
"""When the user last looked, in these tests."""


def _older_market() -> Reading:
    """The fixture's rankings six hours earlier: other ranks and prices, one more project."""
    page = markets_page()
    ranks = {"render-token": 41, "akash-network": 131, "io-net": 290, "helium": 98}
    prices = {"render-token": 5.40, "akash-network": 3.10, "io-net": 1.62, "helium": 6.02}
    coins = [
        c.model_copy(
            update={
                "rank": ranks.get(c.coin_id, c.rank),
                "price_usd": prices.get(c.coin_id, c.price_usd),
            }
        )
        for c in page.market
        if c.coin_id != "bittensor"  # new since
    ]
    dropped = page.market[0].model_copy(
        update={
            "coin_id": "old-\x1b[31mcoin",
            "name": "Old\x1b[31m Coin",
            "symbol": "old",
            "rank": 400,
        }
    )
    return Reading(market=[*coins, dropped])


def history_cache(tmp_path: Path) -> Path:
    """Polls before LOOKED and just before NOW, every section with something to say."""
    db = tmp_path / "cache.db"
    before = LOOKED - timedelta(hours=1)

    def node(name: str, up: bool, network: str | None = "io.net") -> NodeSample:
        labels = {"device_id": DEVICES[name]} if name in DEVICES else {}
        return NodeSample(node=name, source_kind="exporter", network=network, labels=labels, up=up)

    store(
        db,
        "fleet",
        before,
        Reading(
            nodes=[
                node("gpu-01", True),
                node("gpu-02", True),
                node("gpu-03", True),
                node("cpu-01", False, "akash"),
                node("gpu-retired-\x1b[2Jrig", True),
            ]
        ),
    )
    store(db, "coingecko", before, _older_market())
    store_networks(db, at=before)
    store(
        db,
        "ionet",
        before + timedelta(minutes=1),
        Reading(
            metrics=[
                NetworkMetric(network="io.net", metric="gpus_total", value=20500, unit="count"),
                NetworkMetric(network="io.net", metric="gpu_utilization_pct", value=71.2, unit="%"),
            ]
        ),
    )
    store(
        db,
        "akash",
        before + timedelta(minutes=1),
        Reading(
            metrics=[
                NetworkMetric(
                    network="akash", metric="memory_total_bytes", value=2748 + 2**40, unit="bytes"
                )
            ]
        ),
    )
    store_live(db, at=NOW - timedelta(minutes=3))
    store_networks(db, at=NOW - timedelta(seconds=50))
    store_fleet(db)
    store_devices(db)
    store(
        db,
        "ionet-devices",
        NOW - timedelta(minutes=2),
        Reading(
            rewards=[
                Reward(
                    network="io.net",
                    device_id="0d5c7e1a-unlabelled",
                    at=NOW - timedelta(hours=2),
                    amount=1.5,
                    token="IO",
                    source="io.net block x",
                )
            ]
        ),
    )
    return db


def at_local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
