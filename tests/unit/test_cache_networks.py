"""Network metrics and GPU models in the cache: per-endpoint last good values, as-of, exports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cache.db import open_reader, open_writer
from cache.export import (
    GPU_MODELS_KEYS,
    NETWORKS_KEYS,
    gpu_models_records,
    networks_records,
    to_csv,
    to_json,
)
from cache.queries import latest_good_poll, latest_gpu_models, latest_metrics, metric_history
from cache.store import PollRecord, write_poll
from sources.models import (
    EndpointError,
    ErrorKind,
    GpuModel,
    NetworkMetric,
    Reading,
    SourceError,
)

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def m(name: str, value: float, endpoint: str = "/a", network: str = "akash") -> NetworkMetric:
    return NetworkMetric(network=network, metric=name, value=value, unit="count", endpoint=endpoint)


def put(
    db: Path,
    at: datetime,
    reading: Reading | None = None,
    error: SourceError | None = None,
    source: str = "akash",
) -> int:
    conn = open_writer(db)
    try:
        return write_poll(conn, PollRecord(source, at - timedelta(seconds=2), at, reading, error))
    finally:
        conn.close()


def test_failing_endpoint_keeps_its_last_good_value_with_its_own_time(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, T0, Reading(metrics=[m("gpus_total", 400, "/gpu"), m("leases_active", 90, "/dash")]))
    partial = Reading(
        metrics=[m("gpus_total", 410, "/gpu")],
        errors=[EndpointError("/dash", SourceError(ErrorKind.HTTP_5XX, "HTTP 503 from host"))],
    )
    poll_id = put(db, T0 + timedelta(minutes=2), partial)
    conn = open_reader(db)
    latest = {x.metric: x for x in latest_metrics(conn)}
    assert latest["gpus_total"].value == 410
    assert latest["gpus_total"].fetched_at == T0 + timedelta(minutes=2)
    assert latest["leases_active"].value == 90
    assert latest["leases_active"].fetched_at == T0
    row = conn.execute("SELECT status, error_kind FROM polls WHERE id = ?", (poll_id,)).fetchone()
    assert tuple(row) == ("partial", "http_5xx")
    assert latest_good_poll(conn, ("akash",)).id == poll_id


def test_failed_poll_stores_no_rows_and_as_of_sees_nothing_newer(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(db, T0, Reading(metrics=[m("gpus_total", 1)]))
    put(db, T0 + timedelta(minutes=1), Reading(metrics=[m("gpus_total", 2)]))
    put(db, T0 + timedelta(minutes=2), error=SourceError(ErrorKind.SCHEMA, "schema changed?"))
    put(db, T0 + timedelta(minutes=3), Reading(metrics=[m("gpus_total", 3)]))
    conn = open_reader(db)
    assert [x.value for x in latest_metrics(conn)] == [3]
    assert [x.value for x in latest_metrics(conn, at=T0 + timedelta(minutes=2, seconds=30))] == [2]
    assert latest_metrics(conn, at=T0 - timedelta(seconds=1)) == []
    history = metric_history(conn, "akash", "gpus_total", since=T0)
    assert [v for _, v in history] == [1, 2, 3]


def test_gpu_models_latest_catalogue_per_network_and_export_keys(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    old = GpuModel(network="io.net", model="H100", cards=8, price_usd_gpu_hour=2.0)
    new = GpuModel(
        network="io.net",
        model="A100",
        memory_gb=80,
        cards=8,
        total=None,
        available=0,
        price_usd_gpu_hour=1.25,
    )
    akash = GpuModel(
        network="akash",
        model="nvidia rtx4090",
        memory_gb=24,
        total=40,
        available=12,
        price_usd_gpu_hour=None,
    )
    put(db, T0, Reading(gpu_models=[old]), source="ionet")
    put(db, T0 + timedelta(minutes=1), Reading(gpu_models=[new]), source="ionet")
    put(db, T0 + timedelta(minutes=1), Reading(gpu_models=[akash]))
    conn = open_reader(db)
    rows = latest_gpu_models(conn)
    assert [(r.network, r.model) for r in rows] == [("akash", "nvidia rtx4090"), ("io.net", "A100")]
    records = gpu_models_records(rows)
    assert all(tuple(r) == GPU_MODELS_KEYS for r in records)
    assert records[0]["price_usd_gpu_hour"] is None and records[0]["available"] == 12
    assert records[1]["memory_gb"] == 80 and isinstance(records[1]["memory_gb"], int)
    assert records[1]["fetched_at"] == "2026-11-25T10:01:00.000Z"
    assert json.loads(to_json(records))[1]["price_usd_gpu_hour"] == 1.25
    header = to_csv(records, GPU_MODELS_KEYS).splitlines()[0]
    assert header == ",".join(GPU_MODELS_KEYS)


def test_networks_export_has_the_contract_keys_and_numbers(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    put(
        db,
        T0,
        Reading(
            metrics=[
                m("gpus_total", 400),
                m("gpus_active", 300),
                NetworkMetric(network="akash", metric="gpu_utilization_pct", value=75.0, unit="%"),
            ]
        ),
    )
    conn = open_reader(db)
    records = networks_records(latest_metrics(conn))
    assert all(tuple(r) == NETWORKS_KEYS for r in records)
    by_metric = {r["metric"]: r for r in records}
    assert by_metric["gpu_utilization_pct"]["value"] == 75
    assert by_metric["gpus_total"] == {
        "network": "akash",
        "metric": "gpus_total",
        "value": 400,
        "unit": "count",
        "source": "akash",
        "fetched_at": "2026-11-25T10:00:00.000Z",
    }
