"""Building the app on a prepared cache with a frozen clock, for Pilot and snapshot tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cache.db import open_writer
from cache.store import PollRecord, write_poll
from explorer.app import DepinExplorerApp
from explorer.config import Config, Secrets
from sources.coingecko import parse_markets
from sources.models import ErrorKind, Reading, SourceError
from sources.sample import SAMPLE_DATE, load_sample

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def frozen() -> datetime:
    return NOW


def markets_page(name: str = "coingecko_markets_depin.written.json") -> Reading:
    coins, skipped = parse_markets(json.loads((FIXTURES / name).read_text()))
    return Reading(market=coins, skipped=skipped)


def store(
    db: Path,
    source: str,
    at: datetime,
    reading: Reading | None = None,
    error: SourceError | None = None,
    retry_at: datetime | None = None,
) -> int:
    conn = open_writer(db)
    try:
        return write_poll(
            conn,
            PollRecord(
                source=source,
                started_at=at - timedelta(seconds=1),
                finished_at=at,
                retry_at=retry_at,
                reading=reading,
                error=error,
            ),
        )
    finally:
        conn.close()


def store_sample(db: Path, at: datetime = NOW - timedelta(hours=5)) -> int:
    return store(db, "sample", at, Reading(market=load_sample(), at=SAMPLE_DATE))


def store_live(db: Path, at: datetime = NOW - timedelta(seconds=40)) -> int:
    return store(db, "coingecko", at, markets_page())


def store_failure(db: Path, at: datetime, kind: ErrorKind = ErrorKind.HTTP_5XX) -> int:
    return store(db, "coingecko", at, error=SourceError(kind, "HTTP 503 from api.coingecko.com"))


def make_app(
    tmp_path: Path, *, poll: bool = False, offline: bool = True, config: Config | None = None
) -> DepinExplorerApp:
    return DepinExplorerApp(
        config or Config(),
        Secrets(),
        tmp_path / "cache.db",
        offline=offline,
        state_path=tmp_path / "state.json",
        clock=frozen,
        poll=poll,
    )


def _parsed(parser, fixture: str, endpoint: str, **kw) -> Reading:
    metrics, gpus = parser(json.loads((FIXTURES / fixture).read_text()), endpoint, **kw)
    return Reading(metrics=metrics, gpu_models=gpus)


def store_networks(db: Path, at: datetime = NOW - timedelta(seconds=50)) -> None:
    """One poll of each network from the written fixtures; Akash's dashboard endpoint failed."""
    from sources import akash, filecoin, helium, ionet
    from sources.models import EndpointError

    def merge(*readings: Reading, errors=()) -> Reading:
        return Reading(
            metrics=[m for r in readings for m in r.metrics],
            gpu_models=[g for r in readings for g in r.gpu_models],
            errors=list(errors),
        )

    store(
        db,
        "ionet",
        at,
        merge(
            _parsed(
                ionet.parse_network_info, "ionet_network-info.written.json", ionet.NETWORK_INFO
            ),
            _parsed(
                ionet.parse_clusters, "ionet_network-info-clusters.written.json", ionet.CLUSTERS
            ),
            _parsed(ionet.parse_hardware, "ionet_vmaas-hardware.written.json", ionet.HARDWARE),
        ),
    )
    store(
        db,
        "akash",
        at,
        merge(
            _parsed(
                akash.parse_network_capacity,
                "akash_network-capacity.test_fixture_synthetic.json",
                akash.NETWORK_CAPACITY,
            ),
            _parsed(akash.parse_gpu_prices, "akash_gpu-prices.written.json", akash.GPU_PRICES),
            errors=[
                EndpointError(
                    akash.DASHBOARD,
                    SourceError(ErrorKind.HTTP_5XX, "HTTP 503 from console-api.akash.network"),
                )
            ],
        ),
    )
    store(
        db,
        "filecoin",
        at - timedelta(hours=2),
        _parsed(filecoin.parse_overview, "filecoin_overview.written.json", filecoin.OVERVIEW),
    )
    store(
        db,
        "helium",
        at,
        _parsed(
            helium.parse_pagination,
            "helium_pagination-metadata-iot.written.json",
            helium.PAGINATION,
            subnetwork="iot",
        ),
    )


DEVICES = {
    "gpu-01": "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17",
    "gpu-02": "599ef4af-7fe6-44b5-aba3-25899bde2ab6",
}
RACKS = {"gpu-01": "r1", "gpu-02": "r2", "cpu-01": "r2"}


def store_devices(db: Path, at: datetime = NOW - timedelta(minutes=3)) -> None:
    """io.net status of gpu-01 and gpu-02, and hourly block rewards over the last day."""
    from sources.models import DeviceStatus, Reward

    statuses = [
        DeviceStatus(
            network="io.net",
            device_id=DEVICES["gpu-01"],
            node="gpu-01",
            name="rig-07",
            status="up",
            uptime_pct=96.0,
            connectivity_tier="3",
            hardware="RTX A6000",
            hardware_quantity=8,
            location="Germany",
            earnings_total=402.8815,
            earnings_token="IO",
            slashed_total=1.125,
            block_rewards_7d=38.5125,
            blocks_earned_7d=151,
            blocks_failed_7d=9,
            blocks_missed_7d=8,
            jobs_running=1,
            compute_hours=1312.5,
        ),
        DeviceStatus(
            network="io.net",
            device_id=DEVICES["gpu-02"],
            node="gpu-02",
            status="down",
            uptime_pct=78.0,
            error="/v1/io-blocks/devices/599ef4af…/block-rewards-summary: http_5xx",
        ),
    ]
    hour = at.replace(minute=0, second=0, microsecond=0)
    rewards = [
        Reward(
            network="io.net",
            device_id=DEVICES["gpu-01"],
            node="gpu-01",
            at=hour - timedelta(hours=h),
            amount=0.25 if h % 5 else 0.0,
            token="IO",
            source=f"io.net block {(hour - timedelta(hours=h)).strftime('%Y-%m-%dT%H:%M:%S')}",
            status="Success" if h % 5 else "not in block",
        )
        for h in range(1, 30)  # 29 hours: the oldest six fall outside the 24 h column
    ]
    store(db, "ionet-devices", at, Reading(devices=statuses, rewards=rewards))


def store_fleet(db: Path, at: datetime = NOW - timedelta(seconds=20)) -> None:
    """A small fleet: GPU nodes on io.net, one hot, one down, one stale, one via Prometheus."""
    from sources.models import NodeSample

    def node(name: str, network: str | None, **values) -> NodeSample:
        labels = {"network": network} if network else {}
        if name in DEVICES:
            labels["device_id"] = DEVICES[name]
        if name in RACKS:
            labels["rack"] = RACKS[name]
        return NodeSample(
            node=name, source_kind="exporter", network=network, labels=labels, **values
        )

    store(
        db,
        "fleet",
        at - timedelta(minutes=10),
        Reading(nodes=[node("gpu-stale", "akash", up=True, cpu_pct=12.0, mem_pct=30.0)]),
    )
    store(
        db,
        "fleet",
        at,
        Reading(
            nodes=[
                node(
                    "gpu-01",
                    "io.net",
                    up=True,
                    cpu_pct=42.0,
                    mem_pct=61.0,
                    disk_pct=55.0,
                    load1=1.2,
                    uptime_s=86400 * 3,
                    gpus=8,
                    gpu_util_pct=97.0,
                    gpu_temp_c=71.0,
                    gpu_power_w=2810.0,
                    gpu_mem_pct=88.0,
                ),
                node(
                    "gpu-02",
                    "io.net",
                    up=True,
                    cpu_pct=97.0,
                    mem_pct=91.0,
                    disk_pct=93.0,
                    load1=9.5,
                    uptime_s=3600.0,
                    gpus=8,
                    gpu_util_pct=12.0,
                    gpu_temp_c=92.0,
                    gpu_power_w=1200.0,
                    gpu_mem_pct=20.0,
                ),
                node("gpu-03", "io.net", up=False, error="connect: cannot connect to 10.0.0.7"),
                node(
                    "cpu-01",
                    "akash",
                    up=True,
                    cpu_pct=8.0,
                    mem_pct=22.0,
                    disk_pct=40.0,
                    load1=0.3,
                    uptime_s=86400 * 40,
                ),
            ]
        ),
    )
    store(
        db,
        "promql",
        at,
        Reading(
            nodes=[
                NodeSample(
                    node="10.0.0.9:9100",
                    source_kind="promql",
                    up=True,
                    cpu_pct=33.0,
                    mem_pct=45.0,
                    disk_pct=61.0,
                    load1=2.0,
                    uptime_s=7200.0,
                )
            ]
        ),
    )
