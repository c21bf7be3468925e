"""cache/metrics_view.py on written histories: latest good readings, missing figures absent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cache.db import iso, open_reader, open_writer
from cache.metrics_view import MetricsView, read_view
from cache.store import PollRecord, write_poll
from explorer.metrics_listen import families
from sources.models import (
    DeviceStatus,
    EndpointError,
    ErrorKind,
    GpuModel,
    MarketCoin,
    NetworkMetric,
    NodeSample,
    Reading,
    Reward,
    SourceError,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DEVICE = "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17"


def put(
    db: Path,
    source: str,
    at: datetime,
    reading: Reading | None = None,
    error: SourceError | None = None,
) -> int:
    conn = open_writer(db)
    try:
        return write_poll(conn, PollRecord(source, at - timedelta(seconds=2), at, reading, error))
    finally:
        conn.close()


def metric(name: str, value: float, endpoint: str, unit: str = "count") -> NetworkMetric:
    return NetworkMetric(network="akash", metric=name, value=value, unit=unit, endpoint=endpoint)


def coin(coin_id: str, cap: float | None, volume: float | None = 1e6) -> MarketCoin:
    return MarketCoin.model_validate(
        {
            "id": coin_id,
            "symbol": coin_id[:3],
            "name": coin_id.title(),
            "current_price": 2.5,
            "market_cap": cap,
            "total_volume": volume,
        }
    )


def node(name: str, up: bool, network: str | None = "io.net", kind: str = "exporter") -> NodeSample:
    return NodeSample(
        node=name, source_kind=kind, network=network, up=up, cpu_pct=10 if up else None
    )


def build(db: Path) -> None:
    """Akash good, then partial, then failed; rankings live and sample; a fleet with a down and
    a stale node; one io.net device with rewards; one alert firing and one resolved."""
    put(
        db,
        "akash",
        NOW - timedelta(minutes=10),
        Reading(
            metrics=[metric("gpus_total", 400, "/gpu"), metric("leases_active", 90, "/dash")],
            gpu_models=[
                GpuModel(
                    network="akash", model="h100", total=10, available=3, price_usd_gpu_hour=1.5
                ),
                GpuModel(network="akash", model="a100", available=2),
            ],
        ),
    )
    partial = Reading(
        metrics=[metric("gpus_total", 410, "/gpu")],
        errors=[EndpointError("/dash", SourceError(ErrorKind.HTTP_5XX, "HTTP 503"))],
    )
    put(db, "akash", NOW - timedelta(minutes=5), partial)
    put(db, "akash", NOW - timedelta(minutes=1), error=SourceError(ErrorKind.TIMEOUT, "slow"))
    put(db, "sample", NOW - timedelta(hours=2), Reading(market=[coin("old-sample", 9e12)]))
    put(
        db,
        "coingecko",
        NOW - timedelta(minutes=3),
        Reading(market=[coin("render", 3e9), coin("helium", 1e9, None), coin("akash", 2e9)]),
    )
    put(db, "coingecko", NOW - timedelta(minutes=1), error=SourceError(ErrorKind.HTTP_5XX, "503"))
    put(db, "fleet", NOW - timedelta(minutes=10), Reading(nodes=[node("gone-quiet", True)]))
    put(
        db,
        "fleet",
        NOW - timedelta(seconds=20),
        Reading(
            nodes=[node("gpu-01", True), node("gpu-02", False), node("akash-1", True, "akash")]
        ),
    )
    put(db, "local", NOW - timedelta(seconds=10), Reading(nodes=[node("me", True, None, "local")]))
    rewards = [
        Reward(
            network="io.net",
            device_id=DEVICE,
            node="gpu-01",
            at=NOW - timedelta(hours=h),
            amount=amount,
            token="IO",
            source=f"io.net block {h}",
        )
        for h, amount in ((2, 0.25), (3, 0.5), (30, 9.0))
    ]
    device = DeviceStatus(
        network="io.net", device_id=DEVICE, node="gpu-01", earnings_total=12.5, earnings_token="IO"
    )
    put(db, "ionet-devices", NOW - timedelta(minutes=4), Reading(devices=[device], rewards=rewards))
    conn = open_writer(db)
    try:
        for rule, severity, resolved in (
            ("node down", "critical", None),
            ("hot gpu", "warning", iso(NOW - timedelta(minutes=30))),
        ):
            conn.execute(
                "INSERT INTO alerts (rule, kind, subject, severity, state, since, started_at, "
                "resolved_at, value, message) VALUES (?, 'node_down', 'gpu-02', ?, ?, ?, ?, ?, "
                "NULL, 'down')",
                (
                    rule,
                    severity,
                    "resolved" if resolved else "firing",
                    iso(NOW - timedelta(hours=1)),
                    iso(NOW - timedelta(hours=1)),
                    resolved,
                ),
            )
    finally:
        conn.close()


def view(
    db: Path, *, watchlist: frozenset[str] = frozenset(), top_coins: int = 20, private: bool = False
) -> MetricsView:
    conn = open_reader(db)
    try:
        return read_view(
            conn,
            NOW,
            watchlist=watchlist,
            top_coins=top_coins,
            stale_after={"exporter": 60.0, "local": 60.0},
            private=private,
        )
    finally:
        conn.close()


def test_latest_good_figure_wins_over_later_failures(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    build(db)
    figures = {(m.network, m.metric): m for m in view(db).networks}
    assert figures[("akash", "gpus_total")].value == 410  # the partial poll's
    assert figures[("akash", "gpus_total")].fetched_at == NOW - timedelta(minutes=5)
    # /dash failed in the partial poll and everything failed after: its own last good value
    assert figures[("akash", "leases_active")].value == 90
    assert figures[("akash", "leases_active")].fetched_at == NOW - timedelta(minutes=10)


def test_gpu_models_with_missing_figures_are_absent_series(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    build(db)
    by_name = {f.name: f for f in families(view(db))}
    price = {
        s.labels["model"]: s.value for s in by_name["depin_gpu_model_price_usd_per_hour"].samples
    }
    available = {s.labels["model"]: s.value for s in by_name["depin_gpu_model_available"].samples}
    total = {s.labels["model"]: s.value for s in by_name["depin_gpu_model_total"].samples}
    assert price == {"h100": 1.5}  # a100 has no price: no series, not 0
    assert available == {"h100": 3, "a100": 2}
    assert total == {"h100": 10}


def test_coins_from_the_newest_live_snapshot_never_the_sample(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    build(db)
    coins = view(db, top_coins=2).coins
    assert coins is not None and coins.source == "coingecko"
    assert coins.fetched_at == NOW - timedelta(minutes=3)  # the later failure changes nothing
    assert [c.coin_id for c in coins.coins] == ["render", "akash"]  # top 2 by market cap
    watched = view(db, watchlist=frozenset({"helium", "not-listed"})).coins
    assert watched is not None and [c.coin_id for c in watched.coins] == ["helium"]
    by_name = {f.name: f for f in families(view(db, watchlist=frozenset({"helium", "render"})))}
    volume = {s.labels["coin"] for s in by_name["depin_coin_volume_24h_usd"].samples}
    assert volume == {"render"}  # helium's volume is missing: absent
    prices = {s.labels["coin"]: s.value for s in by_name["depin_coin_price_usd"].samples}
    assert prices == {"helium": 2.5, "render": 2.5}


def test_only_a_sample_means_no_coins(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, "sample", NOW - timedelta(hours=2), Reading(market=[coin("old-sample", 9e12)]))
    assert view(db).coins is None
    by_name = {f.name: f for f in families(view(db))}
    assert by_name["depin_coin_price_usd"].samples == []


def test_fleet_counted_by_network_kind_and_state(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    build(db)
    counts = {(c.network, c.source_kind): (c.up, c.down, c.stale) for c in view(db).fleet}
    assert counts == {
        ("io.net", "exporter"): (
            1,
            1,
            1,
        ),  # gpu-01 up, gpu-02 down, gone-quiet last seen 10 min ago
        ("akash", "exporter"): (1, 0, 0),
        (None, "local"): (1, 0, 0),
    }


def test_rewards_summed_over_24_hours_and_hidden_in_private_mode(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    build(db)
    (device,) = view(db).rewards
    assert (device.device_id, device.node, device.token) == (DEVICE, "gpu-01", "IO")
    assert device.rewards_24h == 0.75  # the 30 h old block is outside the window
    assert device.earnings == 12.5
    private = view(db, private=True)
    assert private.rewards == []
    names = {f.name for f in families(private, private=True)}
    assert not any(name.startswith("depin_device_") for name in names)


def test_alerts_firing_and_configured_rules_not_firing(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    build(db)
    read = view(db)
    assert read.alerts_firing == {("node down", "critical"): 1}
    by_name = {
        f.name: f for f in families(read, [("hot gpu", "warning"), ("node down", "critical")])
    }
    firing = {
        (s.labels["rule"], s.labels["severity"]): s.value
        for s in by_name["depin_alerts_firing"].samples
    }
    assert firing == {("node down", "critical"): 1, ("hot gpu", "warning"): 0}


def test_source_health(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    build(db)
    health = {s.source: s for s in view(db).sources}
    assert set(health) == {"akash", "coingecko", "fleet", "ionet-devices", "local", "sample"}
    akash = health["akash"]
    assert akash.state == "failing"
    assert akash.last_success_at == NOW - timedelta(minutes=5)  # the partial poll counts
    assert akash.last_poll_at == NOW - timedelta(minutes=1)
    assert akash.failures_since_success == 1
    assert akash.last_duration_s == 2.0
    by_name = {f.name: f for f in families(view(db))}
    states = {
        s.labels["state"]: s.value
        for s in by_name["depin_source_state"].samples
        if s.labels["source"] == "akash"
    }
    assert states == {"ok": 0, "partial": 0, "failing": 1}
    age = {
        s.labels["source"]: s.value
        for s in by_name["depin_source_last_success_age_seconds"].samples
    }
    assert age["akash"] == 300


def test_a_source_that_never_succeeded_has_no_success_series(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, "filecoin", NOW - timedelta(minutes=1), error=SourceError(ErrorKind.TIMEOUT, "slow"))
    read = view(db)
    (filecoin,) = read.sources
    assert filecoin.last_success_at is None and filecoin.failures_since_success == 1
    by_name = {f.name: f for f in families(read)}
    assert by_name["depin_source_last_success_timestamp_seconds"].samples == []
    assert by_name["depin_source_last_success_age_seconds"].samples == []
    assert by_name["depin_network_value"].samples == []
