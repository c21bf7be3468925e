"""Generate the realistic cache the budgets are measured on.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/realistic_cache.py [--force] [--path FILE]

What a cache looks like after a season of use (the performance budgets, docs/performance.md):

- the fleet: 500 nodes (60 % with GPUs) scraped every minute for 7 days and an hour: 10,141
  polls and 5,070,500 ``node_samples`` rows, each with its counter totals, as the poller stores
  them;
- hourly and daily rollups of those nodes for 90 days in ``node_rollups``;
- rankings: 250 coins every hour for 90 days (2,160 polls, 540,000 ``market`` rows; 7-day
  sparklines where retention keeps them: the last day, then one snapshot a day), four of them
  under the CoinGecko ids of the networks the app polls (Rankings' per-device columns); the four
  public networks every hour for 90 days (``network_stats``);
- io.net: every io.net node of the fleet (about a fifth) labelled with its device id, the
  devices polled hourly for 90 days (``devices``: status, uptime, 7-day block counts) and each
  hour's block reward stored (``rewards``: most paid, about 5 % failed, 2 % not in the block).

The schema comes from ``cache.db.open_writer``; rows are bulk-inserted with ``executemany`` in one
transaction with the journal off, and the file is put back in WAL mode at the end. A JSON file
beside the cache records the generator version, the schema version, the file's size and the last
sample time; an existing cache is reused while the versions and the size still match.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import DATA_DIR  # noqa: E402
from cache.db import SCHEMA_VERSION, iso, open_writer  # noqa: E402
from cache.device_growth import COIN_NETWORKS  # noqa: E402
from cache.store import DEVICE_FIELDS  # noqa: E402
from cache.usage import fill_usage_hours  # noqa: E402
from sources.figures import NODE_VALUE_FIELDS  # noqa: E402

GENERATOR_VERSION = 5  # 3: network figures as the sources name them; 4: io.net devices, rewards
# 5: the four polled networks' coins under their CoinGecko ids (Rankings' per-device columns)
NODES = 500
RAW_DAYS = 7
ROLLUP_DAYS = 90
COINS = 250
REAL_COIN_INDEXES = (3, 20, 45, 110)
"""Where the coins of the networks the app polls (COIN_NETWORKS, in its order) sit in the table."""
COIN_NAMES = {
    "io-net": ("IO", "io.net"),
    "akash-network": ("AKT", "Akash Network"),
    "filecoin": ("FIL", "Filecoin"),
    "helium": ("HNT", "Helium"),
}
Figure = tuple[str, str, float, float]
"""(metric, unit, low, high): a figure the network's source stores, and the range of its values."""
NETWORKS: dict[str, tuple[str, list[Figure]]] = {
    # the metric names and units the sources store, magnitudes of late 2026
    "ionet": (
        "io.net",
        [
            ("devices_total", "count", 300_000, 330_000),
            ("devices_active", "count", 20_000, 30_000),
            ("gpus_total", "count", 290_000, 320_000),
            ("gpus_active", "count", 18_000, 28_000),
            ("gpus_verified", "count", 90_000, 110_000),
            ("cpus_total", "count", 10_000, 12_000),
            ("cpus_active", "count", 1_000, 2_000),
            ("gpu_utilization_pct", "%", 6, 10),
            ("clusters_running", "count", 2_000, 4_000),
            ("earnings_total", "USD", 2e7, 3e7),
            ("compute_hours_total", "h", 1e8, 1.2e8),
        ],
    ),
    "akash": (
        "akash",
        [
            ("providers_active", "count", 60, 90),
            ("gpus_total", "count", 700, 900),
            ("gpus_active", "count", 400, 700),
            ("gpus_allocatable", "count", 650, 850),
            ("gpus_allocated", "count", 400, 700),
            ("cpus_total", "count", 15_000, 20_000),
            ("cpus_active", "count", 5_000, 9_000),
            ("gpu_utilization_pct", "%", 55, 80),
            ("leases_active", "count", 600, 900),
            ("spend_daily_usd", "USD", 20_000, 40_000),
            ("spend_daily_akt", "AKT", 8_000, 15_000),
        ],
    ),
    "filecoin": (
        "filecoin",
        [
            ("miners_active", "count", 1_800, 2_200),
            ("power_raw_bytes", "bytes", 1.6e19, 1.8e19),
            ("power_qa_bytes", "bytes", 2.0e19, 2.3e19),
            ("height", "", 4.4e6, 4.5e6),
            ("price_usd", "USD", 2.5, 4.5),
        ],
    ),
    "helium": (
        "helium",
        [
            ("hotspots_iot_total", "count", 350_000, 370_000),
            ("hotspots_mobile_total", "count", 30_000, 40_000),
        ],
    ),
}
NODE_NETWORKS = ["io.net", "akash", "nosana", "render", "grass"]
DEFAULT_PATH = DATA_DIR / "realistic.db"
BATCH = 50_000


@dataclass(frozen=True)
class Info:
    """What the sidecar JSON records: enough to reuse a cache and to query it "as of" its end."""

    path: Path
    end: datetime
    node_samples: int
    rollups: int
    rollup_table: bool


def node_name(index: int) -> str:
    return f"node-{index:04d}"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def load_info(path: Path = DEFAULT_PATH) -> Info | None:
    """The recorded generation of ``path`` if it is current, else None."""
    try:
        meta = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if (
        meta.get("generator") != GENERATOR_VERSION
        or meta.get("schema_version") != SCHEMA_VERSION
        or not path.exists()
        or path.stat().st_size != meta.get("size")
    ):
        return None
    return Info(
        path,
        datetime.fromisoformat(meta["end"]),
        meta["node_samples"],
        meta["rollups"],
        meta["rollup_table"],
    )


def ensure(path: Path = DEFAULT_PATH, force: bool = False) -> Info:
    """Generate the cache unless a current one is already there."""
    info = None if force else load_info(path)
    return info if info is not None else generate(path)


@dataclass
class _Node:
    name: str
    network: str
    gpus: int | None
    cpu: float
    mem: float
    disk: float
    uptime0: float
    power: float
    device_id: str | None = None
    """The io.net device id the node is labelled with (io.net nodes only)."""


def _nodes(rng: random.Random) -> list[_Node]:
    out = []
    for i in range(NODES):
        gpus = rng.choice([1, 1, 2, 4, 8]) if rng.random() < 0.6 else None
        out.append(
            _Node(
                node_name(i),
                rng.choice(NODE_NETWORKS),
                gpus,
                rng.uniform(5, 90),
                rng.uniform(20, 90),
                rng.uniform(10, 95),
                rng.uniform(3600, 60 * 86400),
                rng.uniform(80, 350),
            )
        )
        if out[-1].network == "io.net":
            out[-1].device_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return out


REWARD_IO = 0.25
"""A paid block's reward (IO), before the hour's jitter."""


def _ionet_rows(
    poll_id: int, moment: datetime, finished: datetime, nodes: list[_Node], rng: random.Random
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """One hourly io.net devices poll: each device's status row, and the last hour's reward."""
    devices: list[tuple[object, ...]] = []
    rewards: list[tuple[object, ...]] = []
    block = moment - timedelta(hours=1)
    block_id = f"{int(block.timestamp() // 3600)}"
    for n in nodes:
        if n.device_id is None:
            continue
        up = rng.random() > 0.01
        fields: dict[str, object] = {
            "node": n.name,
            "name": f"{n.name}-worker",
            "status": "up" if up else "down",
            "uptime_pct": round(rng.uniform(90, 100), 1),
            "connectivity_tier": "tier 3",
            "hardware": "NVIDIA RTX 4090",
            "hardware_quantity": n.gpus or 1,
            "location": "Germany",
            "earnings_total": round(rng.uniform(100, 900), 2),
            "earnings_token": "IO",
            "slashed_total": 0.0,
            "block_rewards_7d": round(rng.uniform(30, 42), 2),
            "blocks_earned_7d": rng.randint(150, 168),
            "blocks_failed_7d": rng.randint(0, 10),
            "blocks_missed_7d": rng.randint(0, 5),
            "jobs_running": rng.randint(0, 2),
            "compute_hours": round(rng.uniform(100, 2000), 1),
            "error": None,
        }
        devices.append((poll_id, "io.net", n.device_id, *(fields[f] for f in DEVICE_FIELDS)))
        luck = rng.random()
        amount, status = (
            (0.0, "Failed")
            if luck < 0.05
            else (0.0, "not in block")
            if luck < 0.07
            else (REWARD_IO * rng.uniform(0.9, 1.1), "Success")
        )
        rewards.append(
            (
                poll_id,
                "io.net",
                n.device_id,
                n.name,
                iso(block),
                amount,
                "IO",
                f"io.net block {block_id}",
                status,
                iso(finished),
            )
        )
    return devices, rewards


def _sample_rows(
    poll_id: int, at: float, start: float, nodes: list[_Node], rng: random.Random
) -> Iterator[tuple[object, ...]]:
    # One poll's rows in the column order of node_samples (migration 3).
    wave = math.sin(at / 3600.0)
    for index, n in enumerate(nodes):
        if rng.random() < 0.005:
            yield (
                poll_id,
                n.name,
                "exporter",
                0,
                "connect: connection refused",
                *([None] * len(NODE_VALUE_FIELDS)),
                None,
            )
            continue
        cpu = min(100.0, max(0.0, n.cpu + 10 * wave + rng.uniform(-5, 5)))
        util = None if n.gpus is None else min(100.0, max(0.0, cpu + rng.uniform(-20, 20)))
        uptime = n.uptime0 + at - start
        counters = (
            f'{{"at":{at:.3f},"cpu_idle_s":{uptime * 2 * (1 - cpu / 100):.2f},'
            f'"cpu_total_s":{uptime * 2:.2f},"net_rx_bytes":{int(uptime * 9e4 + index)},'
            f'"net_tx_bytes":{int(uptime * 4e4 + index)}}}'
        )
        yield (
            poll_id,
            n.name,
            "exporter",
            1,
            None,
            round(cpu, 2),
            round(n.mem + rng.uniform(-3, 3), 2),
            round(n.disk, 2),
            round(cpu / 50, 2),
            round(uptime, 0),
            round(rng.uniform(1e4, 1e7), 0),
            round(rng.uniform(1e4, 5e6), 0),
            n.gpus,
            None if util is None else round(util, 1),
            None if util is None else round(45 + util * 0.35 + rng.uniform(-2, 2), 1),
            None if util is None else round(n.power * (0.3 + util / 140) * (n.gpus or 1), 0),
            None if util is None else round(util * 0.8, 1),
            counters,
        )


def _rollup_row(
    resolution: int, node: _Node, bucket: datetime, rng: random.Random
) -> tuple[object, ...]:
    # cache.rollup.ROLLUP_COLUMNS order: a bucket's counts, the means, the hottest GPU.
    samples = resolution // 60
    cpu = rng.uniform(max(0.0, node.cpu - 10), min(100.0, node.cpu + 10))
    util = None if node.gpus is None else min(100.0, cpu + rng.uniform(-15, 15))
    temp = None if util is None else 45 + util * 0.35
    return (
        resolution,
        node.name,
        "exporter",
        iso(bucket),
        samples,
        samples,
        round(cpu, 2),
        round(node.mem, 2),
        round(node.disk, 2),
        round(cpu / 50, 2),
        round(node.uptime0, 0),
        round(rng.uniform(1e4, 1e7), 0),
        round(rng.uniform(1e4, 5e6), 0),
        node.gpus,
        None if util is None else round(util, 1),
        None if temp is None else round(temp, 1),
        None if util is None else round(node.power * (0.3 + util / 140) * (node.gpus or 1), 0),
        None if util is None else round(util * 0.8, 1),
        None if temp is None else round(temp + rng.uniform(0, 6), 1),
    )


def _spark(rng: random.Random, price: float) -> str:
    points = []
    for _ in range(168):
        price *= 1 + rng.uniform(-0.01, 0.01)
        points.append(round(price, 6))
    return json.dumps(points, separators=(",", ":"))


def _rollup_support() -> tuple[str, dict[str, str]] | None:
    """The rollup insert and retention's progress keys, when this checkout has rollups."""
    try:
        from cache import rollup
    except ImportError:
        return None
    keys: dict[str, str] = {}
    try:
        from cache import retention

        keys = {
            "hours": retention._WATERMARK[3600],
            "days": retention._WATERMARK[86400],
            "raw": retention._RAW_WATERMARK,
        }
    except (ImportError, AttributeError, KeyError):
        pass  # no retention yet: rollups without its progress marks
    return rollup.INSERT_ROLLUP, keys


def _floor(moment: datetime, seconds: int) -> datetime:
    stamp = int(moment.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(stamp, UTC)


def generate(path: Path) -> Info:
    """Write a fresh realistic cache at ``path`` (replacing any) and its sidecar."""
    started = time.perf_counter()
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), _sidecar(path)):
        stale.unlink(missing_ok=True)
    rng = random.Random(8)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    # Raw samples reach an hour past 7 days, as they do between two retention runs, so a 7-day
    # query is answered from raw samples (1-minute steps).
    raw_start = end - timedelta(days=RAW_DAYS, hours=1)
    long_start = _floor(end - timedelta(days=ROLLUP_DAYS), 3600)
    nodes = _nodes(rng)

    conn = open_writer(path)  # the app's own schema, every migration applied
    conn.execute("PRAGMA journal_mode = OFF")  # a generated file: no crash safety needed
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    support = _rollup_support() if "node_rollups" in tables else None

    # Every poll in time order, so poll ids grow with finish time as the app relies on.
    events: list[tuple[datetime, str]] = []
    moment = raw_start
    while moment <= end:
        events.append((moment, "fleet"))
        moment += timedelta(minutes=1)
    moment = long_start
    while moment <= end:
        events.extend((moment, source) for source in ("coingecko", *NETWORKS, "ionet-devices"))
        moment += timedelta(hours=1)
    events.sort(key=lambda e: e[0])

    coin_base = [
        (f"coin-{i:03d}", 10 ** rng.uniform(-3, 3), 10 ** rng.uniform(6, 10)) for i in range(COINS)
    ]
    # The projects whose networks the app polls, at ranks spread down the table, so Rankings
    # reads their device figures' 90-day history as it does on a real cache.
    for index, coin in zip(REAL_COIN_INDEXES, COIN_NETWORKS, strict=True):
        coin_base[index] = (coin, *coin_base[index][1:])
    sparks = [[_spark(rng, price) for _ in range(4)] for _, price, _ in coin_base]
    values = ",".join("?" * (6 + len(NODE_VALUE_FIELDS)))
    sql = {
        "samples": f"INSERT INTO node_samples VALUES ({values})",
        "market": "INSERT INTO market VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "stats": "INSERT INTO network_stats VALUES (?,?,?,?,?,?)",
        "devices": f"INSERT INTO devices VALUES ({','.join('?' * (3 + len(DEVICE_FIELDS)))})",
        "rewards": "INSERT INTO rewards VALUES (?,?,?,?,?,?,?,?,?,?)",
    }
    pending: dict[str, list[tuple[object, ...]]] = {kind: [] for kind in sql}

    def flush(kind: str, force: bool = False) -> None:
        if pending[kind] and (force or len(pending[kind]) >= BATCH):
            conn.executemany(sql[kind], pending[kind])
            pending[kind].clear()

    sample_count = 0
    first_fleet = last_fleet = 0
    day_ago = end - timedelta(days=1)
    conn.execute("BEGIN")
    devices = sum(1 for n in nodes if n.device_id)
    for poll_id, (moment, source) in enumerate(events, start=1):
        finished = moment + timedelta(seconds=2)
        items = {"fleet": NODES, "coingecko": COINS, "ionet-devices": devices}.get(source, 5)
        conn.execute(
            "INSERT INTO polls (id, source, started_at, finished_at, data_at, status, latency_ms, "
            "items) VALUES (?,?,?,?,?,'ok',?,?)",
            (poll_id, source, iso(moment), iso(finished), iso(moment), 2000.0, items),
        )
        stamp = moment.timestamp()
        if source == "fleet":
            first_fleet = first_fleet or poll_id
            last_fleet = poll_id
            rows = list(_sample_rows(poll_id, stamp, raw_start.timestamp(), nodes, rng))
            sample_count += len(rows)
            pending["samples"].extend(rows)
            flush("samples")
        elif source == "coingecko":
            hour = int(stamp // 3600)
            drift = 1 + 0.05 * math.sin(hour / 24)
            # Retention keeps the 7-day sparkline on every snapshot of the last day, then on
            # one a day: the rest carry none.
            keep_spark = moment >= day_ago or moment.hour == 0
            for rank, (coin, price, cap) in enumerate(coin_base, start=1):
                pending["market"].append(
                    (
                        poll_id,
                        coin,
                        *COIN_NAMES.get(coin, (coin[-3:].upper(), f"Coin {coin}")),
                        rank,
                        price * drift,
                        cap * drift,
                        cap * 0.05,
                        cap * 1.4,
                        rng.uniform(-12, 12),
                        rng.uniform(-30, 30),
                        rng.uniform(-60, 60),
                        sparks[rank - 1][(hour // 24) % 4] if keep_spark else None,
                        "depin",
                        None,
                        iso(moment),
                    )
                )
            flush("market")
        elif source == "ionet-devices":
            device_rows, reward_rows = _ionet_rows(poll_id, moment, finished, nodes, rng)
            pending["devices"].extend(device_rows)
            pending["rewards"].extend(reward_rows)
            flush("devices")
            flush("rewards")
        else:
            network, metrics = NETWORKS[source]
            for metric, unit, low, high in metrics:
                value = rng.uniform(low, high)
                if unit in ("count", "bytes") or metric == "height":  # whole numbers
                    value = float(round(value))
                pending["stats"].append((poll_id, network, metric, value, unit, f"/{metric}"))
            flush("stats")
    for kind in pending:
        flush(kind, force=True)

    labels = [
        (
            n.name,
            "exporter",
            n.network,
            json.dumps(
                {"network": n.network, "region": f"r{i % 7}"}
                | ({"device_id": n.device_id} if n.device_id else {}),
                sort_keys=True,
            ),
            first_fleet,
            last_fleet,
        )
        for i, n in enumerate(nodes)
    ]
    conn.executemany("INSERT INTO nodes VALUES (?,?,?,?,?,?)", labels)

    rollups = 0
    if support is not None:
        insert, keys = support
        # Hours and days that are over, for 90 days (retention rolls hours from raw samples as
        # soon as they are over, days from hours). Minute rollups exist only past the raw week
        # and are not part of the budget's cache.
        for resolution in (3600, 86400):
            closed = _floor(end, resolution)
            bucket = _floor(long_start, resolution)
            batch: list[tuple[object, ...]] = []
            while bucket < closed:
                batch.extend(_rollup_row(resolution, n, bucket, rng) for n in nodes)
                bucket += timedelta(seconds=resolution)
            conn.executemany(insert, batch)
            rollups += len(batch)
        marks = {
            "hours": iso(_floor(end, 3600)),
            "days": iso(_floor(end, 86400)),
            "raw": iso(raw_start),
        }
        conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(keys[name], value) for name, value in marks.items() if name in keys],
        )
    # the samples went in without write_poll: build the hourly usage it would have kept
    fill_usage_hours(conn)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = WAL")  # as the app leaves it
    conn.close()

    info = Info(path, end, sample_count, rollups, support is not None)
    _sidecar(path).write_text(
        json.dumps(
            {
                "generator": GENERATOR_VERSION,
                "schema_version": SCHEMA_VERSION,
                "end": end.isoformat(),
                "node_samples": sample_count,
                "rollups": rollups,
                "rollup_table": support is not None,
                "size": path.stat().st_size,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--force", action="store_true", help="regenerate even if current")
    args = parser.parse_args()
    started = time.perf_counter()
    reused = not args.force and load_info(args.path) is not None
    info = ensure(args.path, force=args.force)
    size_mb = info.path.stat().st_size / 2**20
    print(
        f"realistic cache {'reused' if reused else 'generated'} in "
        f"{time.perf_counter() - started:.1f} s: {info.path} ({size_mb:,.0f} MiB), "
        f"{info.node_samples:,} node_samples rows ({NODES} nodes x {RAW_DAYS} days x 1 min), "
        f"{COINS} coins and 4 networks hourly for {ROLLUP_DAYS} days, "
        + (
            f"{info.rollups:,} node_rollups rows (hourly and daily)"
            if info.rollup_table
            else "no node_rollups table in this schema (no rollups generated)"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
