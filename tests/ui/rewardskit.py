"""A cache for the Rewards screen: a price from two days ago, io.net rewards, GPU samples."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from explorer.config import Config, EconomicsConfig
from sources.models import DeviceStatus, NodeSample, Reading, Reward
from tests.ui.appkit import DEVICES, NOW, store, store_devices, store_fleet, store_live

ECONOMICS = Config(
    economics=EconomicsConfig(
        power_price_per_kwh=0.25, hardware_cost={"default": 12000.0, "gpu-01": 18000.0}
    )
)
DOWN = range(100, 75, -5)
"""Minutes before NOW when gpu-02's exporter does not answer, with ``misses``: 10:20-10:40."""
HOT = range(55, 10, -5)
"""Minutes before NOW when gpu-02's hottest GPU is at 91 °C, with ``misses``: 11:05-11:50."""


def _gpu_02(minutes: int, misses: bool) -> NodeSample:
    if misses and minutes in DOWN:
        return NodeSample(
            node="gpu-02", source_kind="exporter", up=False, error="connect: connection refused"
        )
    return NodeSample(
        node="gpu-02",
        source_kind="exporter",
        network="io.net",
        up=True,
        cpu_pct=35.0,
        gpus=8,
        gpu_util_pct=64.0,
        gpu_temp_c=91.0 if misses and minutes in HOT else 70.0,
        gpu_power_w=1200.0,
    )


def rewards_cache(tmp_path: Path, misses: bool = False) -> None:
    """io-net at $1.62 from two days ago; gpu-01 and gpu-02 up with 8 GPUs for the last 2 h.

    gpu-01's io.net blocks (``store_devices``): 23 in the last 24 h, four "not in block", all
    in hours without samples. With ``misses``, gpu-02 also has blocks: 08:00 paid, 09:00
    failed (no samples then), 10:00 failed (its exporter down 25 min), 11:00 failed (io.net
    says the device is down; its GPUs at 91 °C).
    """
    db = tmp_path / "cache.db"
    store_live(db, at=NOW - timedelta(days=2))
    for minutes in range(120, 10, -5):
        nodes = [
            NodeSample(
                node="gpu-01",
                source_kind="exporter",
                network="io.net",
                up=True,
                gpus=8,
                gpu_power_w=2400.0,
            ),
            _gpu_02(minutes, misses),
        ]
        store(db, "fleet", NOW - timedelta(minutes=minutes), Reading(nodes=nodes))
    store_fleet(db)
    store_devices(db)
    if misses:
        blocks = [(8, 0.25, "Success"), (9, 0.0, "Failed"), (10, 0.0, "Failed")]
        blocks.append((11, 0.0, "Failed"))
        rewards = [
            Reward(
                network="io.net",
                device_id=DEVICES["gpu-02"],
                node="gpu-02",
                at=NOW.replace(hour=h),
                amount=amount,
                token="IO",
                source=f"io.net block {NOW.replace(hour=h).strftime('%Y-%m-%dT%H:%M:%S')}",
                status=status,
            )
            for h, amount, status in blocks
        ]
        device = DeviceStatus(
            network="io.net", device_id=DEVICES["gpu-02"], node="gpu-02", status="down"
        )
        store(
            db,
            "ionet-devices",
            NOW - timedelta(minutes=2),
            Reading(devices=[device], rewards=rewards),
        )
