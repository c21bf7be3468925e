"""A cache for the Rewards screen: a price from two days ago, io.net rewards, GPU samples."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from explorer.config import Config, EconomicsConfig
from sources.models import NodeSample, Reading
from tests.ui.appkit import NOW, store, store_devices, store_fleet, store_live

ECONOMICS = Config(
    economics=EconomicsConfig(
        power_price_per_kwh=0.25, hardware_cost={"default": 12000.0, "gpu-01": 18000.0}
    )
)


def rewards_cache(tmp_path: Path) -> None:
    """io-net at $1.62 from two days ago; gpu-01 and gpu-02 up with 8 GPUs for the last 2 h."""
    db = tmp_path / "cache.db"
    store_live(db, at=NOW - timedelta(days=2))
    for minutes in range(120, 10, -5):
        nodes = [
            NodeSample(
                node=name,
                source_kind="exporter",
                network="io.net",
                up=True,
                gpus=8,
                gpu_power_w=watts,
            )
            for name, watts in (("gpu-01", 2400.0), ("gpu-02", 1200.0))
        ]
        store(db, "fleet", NOW - timedelta(minutes=minutes), Reading(nodes=nodes))
    store_fleet(db)
    store_devices(db)
