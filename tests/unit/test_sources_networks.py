"""Public network sources: io.net, Akash, Filfox, Helium (docs/networks.md; schema drift: SC-02,
SC-04, SC-06, SC-08).

Each parser runs on its recorded or written body (tests/fixtures/README.md) with exact expected
numbers; each Source's ``fetch`` runs through httpx.MockTransport under a non-default base_url.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import sources.base
from sources import akash, filecoin, helium, ionet
from sources.akash import AkashSource
from sources.base import make_client
from sources.filecoin import FilecoinSource
from sources.helium import HeliumSource
from sources.ionet import IonetSource
from sources.models import ErrorKind, GpuModel, NetworkMetric, SourceError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def values(metrics: list[NetworkMetric]) -> dict[str, tuple[float, str]]:
    names = [m.metric for m in metrics]
    assert len(names) == len(set(names)), "one value per metric per endpoint"
    return {m.metric: (m.value, m.unit) for m in metrics}


def only_metrics(parsed: tuple[list[NetworkMetric], list[GpuModel]]) -> dict[str, Any]:
    metrics, models = parsed
    assert models == []
    return values(metrics)


def schema_error(parse: Callable[..., Any], body: Any, endpoint: str = "/ep", **kw: Any) -> str:
    with pytest.raises(SourceError) as info:
        parse(body, endpoint, **kw)
    assert info.value.kind is ErrorKind.SCHEMA
    assert info.value.message.startswith(f"{endpoint}: ")
    assert "schema changed?" in info.value.message
    return info.value.message


def row(models: list[GpuModel], name: str) -> GpuModel:
    [found] = [m for m in models if m.model == name]
    return found


# -- io.net /v1/io-explorer/network/info ---------------------------------------------------------

INFO = ionet.NETWORK_INFO


def test_ionet_network_info_sums_per_network_rows_and_computes_utilization():
    metrics, models = ionet.parse_network_info(load("ionet_network-info.written.json"), INFO)
    assert models == []
    assert all(m.network == "io.net" and m.endpoint == INFO for m in metrics)
    assert values(metrics) == {
        "devices_total": (24600, "count"),
        "devices_active": (16100, "count"),
        "gpus_total": (21100, "count"),  # "18234" + 2100 + 766, strings counted
        "gpus_active": (14000, "count"),
        "gpu_utilization_pct": (pytest.approx(14000 / 21100 * 100), "%"),
        "cpus_total": (3500, "count"),
        "cpus_active": (2100, "count"),
    }


def test_ionet_network_info_object_with_other_names_verified_and_hired():
    body = {
        "status": "succeeded",
        "data": {
            "totalGpus": "1000",
            "verifiedGpus": 800,
            "hiredGpus": 250,
            "cpus_total": 400,
            "cpus_verified": "300",
            "cpus_hired": 100,
            "note": "ignored",
        },
    }
    assert only_metrics(ionet.parse_network_info(body, INFO)) == {
        "devices_total": (1400, "count"),
        "devices_active": (350, "count"),
        "gpus_total": (1000, "count"),
        "gpus_active": (250, "count"),
        "gpus_verified": (800, "count"),
        "gpu_utilization_pct": (25.0, "%"),
        "cpus_total": (400, "count"),
        "cpus_active": (100, "count"),
        "cpus_verified": (300, "count"),
    }


def test_ionet_network_info_active_wins_over_hired():
    body = {"data": {"total_gpu": 10, "active_gpu": 4, "hired_gpu": 9}}
    assert only_metrics(ionet.parse_network_info(body, INFO))["gpus_active"] == (4, "count")


def test_ionet_network_info_per_type_rows():
    body = {
        "status": "succeeded",
        "data": [
            {"name": "GPU", "total": 500, "active": "125", "verified": 400},
            {"name": "CPU", "total": 100, "active": 50},
        ],
    }
    assert only_metrics(ionet.parse_network_info(body, INFO)) == {
        "devices_total": (600, "count"),
        "devices_active": (175, "count"),
        "gpus_total": (500, "count"),
        "gpus_active": (125, "count"),
        "gpus_verified": (400, "count"),
        "gpu_utilization_pct": (25.0, "%"),
        "cpus_total": (100, "count"),
        "cpus_active": (50, "count"),
    }


def test_ionet_network_info_nested_per_type_objects():
    body = {"data": {"gpu": {"total": 40, "active": 10}, "cpus": {"total": 8, "active": 2}}}
    got = only_metrics(ionet.parse_network_info(body, INFO))
    assert got["gpus_total"] == (40, "count")
    assert got["cpus_active"] == (2, "count")
    assert got["devices_total"] == (48, "count")
    assert got["gpu_utilization_pct"] == (25.0, "%")


def test_ionet_network_info_gpus_only_has_no_devices_and_no_cpus():
    body = {"status": "succeeded", "data": [{"name": "IO", "total_gpu": 100, "active_gpu": 20}]}
    assert only_metrics(ionet.parse_network_info(body, INFO)) == {
        "gpus_total": (100, "count"),
        "gpus_active": (20, "count"),
        "gpu_utilization_pct": (20.0, "%"),
    }


def test_ionet_network_info_partial_rows_are_not_summed():
    """A row without active_gpu: a sum of the others would under-count, so it is left out."""
    body = {
        "data": [
            {"name": "IO", "total_gpu": 100, "active_gpu": 20, "total_cpu": 5, "active_cpu": 1},
            {"name": "Render", "total_gpu": 50, "total_cpu": 5, "active_cpu": 2},
        ]
    }
    got = only_metrics(ionet.parse_network_info(body, INFO))
    assert got["gpus_total"] == (150, "count")
    assert "gpus_active" not in got
    assert "gpu_utilization_pct" not in got
    assert "devices_active" not in got
    assert got["devices_total"] == (160, "count")
    assert got["cpus_active"] == (3, "count")


def test_ionet_network_info_total_row_is_not_double_counted():
    body = {
        "data": [
            {"name": "IO", "total_gpu": 100, "active_gpu": 20},
            {"name": "Render", "total_gpu": 50, "active_gpu": 30},
            {"name": "Total", "total_gpu": 150, "active_gpu": 50},
        ]
    }
    got = only_metrics(ionet.parse_network_info(body, INFO))
    assert got["gpus_total"] == (150, "count")
    assert got["gpus_active"] == (50, "count")


def test_ionet_network_info_missing_and_junk_values_are_absent_not_zero():
    body = {"data": {"total_gpu": 100, "active_gpu": None, "total_cpu": "n/a", "active_cpu": -3}}
    assert only_metrics(ionet.parse_network_info(body, INFO)) == {"gpus_total": (100, "count")}


def test_ionet_network_info_zero_total_has_no_utilization():
    body = {"data": {"total_gpu": 0, "active_gpu": 0}}
    got = only_metrics(ionet.parse_network_info(body, INFO))
    assert got == {"gpus_total": (0, "count"), "gpus_active": (0, "count")}


@pytest.mark.parametrize(
    "body",
    [
        {"status": "succeeded", "data": [{"name": "IO", "gpu_count_all": 10, "busy": 3}]},
        {"status": "succeeded", "data": {}},
        {"status": "succeeded", "data": []},
        {"status": "succeeded", "data": ["IO", 3, None]},
        {"status": "succeeded", "data": {"total": 10, "active": 5}},  # of what? not counted
        {"detail": "Not authenticated"},
        [{"total_gpu": 1}],
        "Not found",
    ],
)
def test_ionet_network_info_without_counts_is_a_schema_error(body):
    schema_error(ionet.parse_network_info, body, INFO)


@pytest.mark.parametrize("status", ["failed", "error", None, 500])
def test_ionet_explorer_status_other_than_succeeded_is_an_error(status):
    body = {"status": status, "message": "database \x1b[31mdown", "data": {"total_gpu": 1}}
    for parse in (ionet.parse_network_info, ionet.parse_clusters):
        with pytest.raises(SourceError) as info:
            parse(body, INFO)
        assert info.value.kind is ErrorKind.HTTP_5XX
        assert "\x1b" not in info.value.message


# -- io.net clusters -----------------------------------------------------------------------------

CLUSTERS = ionet.CLUSTERS


def test_ionet_clusters_fixture_earnings_unit_unknown():
    got = only_metrics(ionet.parse_clusters(load("ionet_network-info-clusters.written.json"), "/c"))
    assert got == {
        "clusters_running": (1234, "count"),
        "earnings_total": (2712034.56, ""),
        "compute_hours_total": (4567890.5, "h"),
    }


@pytest.mark.parametrize(
    ("data", "unit"),
    [
        ({"total_earnings_io_coin": "12.5"}, "IO"),
        ({"total_earnings": 12.5, "currency": "$IO"}, "IO"),
        ({"total_earnings": 12.5, "unit": "usd"}, "USD"),
        ({"total_earnings_usd": 12.5}, "USD"),
        ({"total_earnings": 12.5, "currency": "EUR"}, ""),
    ],
)
def test_ionet_clusters_earnings_unit_only_when_stated(data, unit):
    got = only_metrics(ionet.parse_clusters({"status": "succeeded", "data": data}, CLUSTERS))
    assert got == {"earnings_total": (12.5, unit)}


def test_ionet_clusters_list_of_one_object_and_partial_fields():
    body = {"status": "succeeded", "data": [{"running_clusters": "42"}]}
    assert only_metrics(ionet.parse_clusters(body, CLUSTERS)) == {"clusters_running": (42, "count")}


@pytest.mark.parametrize(
    "body",
    [
        {"status": "succeeded", "data": {"clusters": 42, "earnings": 1}},
        {"status": "succeeded", "data": []},
        {"status": "succeeded", "data": {"running_clusters": None}},
        [],
    ],
)
def test_ionet_clusters_renamed_fields_are_a_schema_error(body):
    schema_error(ionet.parse_clusters, body, CLUSTERS)


# -- io.net blocks -------------------------------------------------------------------------------

BLOCKS = ionet.BLOCKS


def test_ionet_blocks_takes_the_newest_completed_block():
    got = only_metrics(ionet.parse_blocks(load("ionet_blocks-all.written.json"), BLOCKS))
    assert got == {
        "block_emission": (8310.22, "IO"),
        "block_workers": (118500, "count"),
        "block_gpus_verified": (98000, "count"),
        "block_cpus_verified": (2100, "count"),
        "blocks_total": (5678, "count"),
    }


def test_ionet_blocks_order_on_the_page_does_not_matter():
    body = load("ionet_blocks-all.written.json")
    body["blocks"].reverse()
    got = only_metrics(ionet.parse_blocks(body, BLOCKS))
    assert got["block_gpus_verified"] == (98000, "count")


def test_ionet_blocks_unparseable_ids_fall_back_to_page_order():
    body = {
        "blocks": [
            {"block_id": "latest", "status": "Completed", "total_workers": 7},
            {"block_id": "older", "status": "completed", "total_workers": 5},
        ]
    }
    assert only_metrics(ionet.parse_blocks(body, BLOCKS)) == {"block_workers": (7, "count")}


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ({"total_blocks": 3}, "no blocks list"),
        ({"total_blocks": 3, "block_list": []}, "no blocks list"),
        ({"blocks": []}, "no completed block"),
        (
            {"blocks": [{"block_id": "2024-10-15T13:00:00", "status": "In Progress"}]},
            "no completed block",
        ),
        (
            {"blocks": [{"block_id": "2024-10-15T13:00:00", "status": "Completed", "x": 1}]},
            "no emission or worker counts",
        ),
        ([], "no blocks list"),
    ],
)
def test_ionet_blocks_shape_errors(body, what):
    assert what in schema_error(ionet.parse_blocks, body, BLOCKS)


# -- io.net hardware catalogue -------------------------------------------------------------------

HARDWARE = ionet.HARDWARE


def test_ionet_vmaas_hardware_divides_price_by_cards():
    metrics, models = ionet.parse_hardware(load("ionet_vmaas-hardware.written.json"), HARDWARE)
    assert metrics == []
    assert [m.model for m in models] == ["H100 SXM5 80GB", "A100 SXM4 80GB", "RTX 4090", "L40S"]
    assert all(m.network == "io.net" and m.endpoint == HARDWARE for m in models)
    h100 = row(models, "H100 SXM5 80GB")
    assert (h100.cards, h100.memory_gb, h100.total, h100.available) == (8, 80, None, None)
    assert h100.price_usd_gpu_hour == pytest.approx(19.92 / 8)
    a100 = row(models, "A100 SXM4 80GB")  # strings, and sold out
    assert (a100.cards, a100.memory_gb, a100.available) == (8, 80, 0)
    assert a100.price_usd_gpu_hour == pytest.approx(1.5)
    assert row(models, "RTX 4090").price_usd_gpu_hour == pytest.approx(0.35)
    assert row(models, "L40S").price_usd_gpu_hour == pytest.approx(0.99)


def test_ionet_caas_hardware_uses_available_replicas():
    _, models = ionet.parse_hardware(load("ionet_caas-hardware.written.json"), "/caas")
    assert row(models, "RTX 4090").available == 37
    a6000 = row(models, "RTX A6000")
    assert (a6000.available, a6000.cards, a6000.memory_gb) == (0, 2, 48)
    assert a6000.price_usd_gpu_hour == pytest.approx(0.6)


@pytest.mark.parametrize("cards", [None, "lots", -2, 1.5])
def test_ionet_hardware_without_a_card_count_has_no_price(cards):
    body = {"data": {"hardware": [{"name": "X", "num_cards": cards, "price": 8.0}]}}
    [model] = ionet.parse_hardware(body, HARDWARE)[1]
    assert model.price_usd_gpu_hour is None
    assert model.cards is None


@pytest.mark.parametrize(
    ("vram", "expected"),
    [(80, 80.0), ("80", 80.0), ("80GB", 80.0), ("24 Gi", 24.0), (81920, None), ("lots", None)],
)
def test_ionet_hardware_vram_is_gb_or_missing(vram, expected):
    body = {"data": {"hardware": [{"name": "X", "num_cards": 1, "vram_per_card": vram}]}}
    assert ionet.parse_hardware(body, HARDWARE)[1][0].memory_gb == expected


def test_ionet_hardware_same_name_different_cards_are_told_apart():
    body = {
        "data": {
            "hardware": [
                {"name": "H100", "num_cards": 8, "price": 16.0},
                {"name": "H100", "num_cards": 1, "price": 2.5},
                {"name": "H100", "num_cards": 8, "price": 24.0, "sold_out": True},
                {"name": "H100", "num_cards": 8, "price": 20.0},
            ]
        }
    }
    _, models = ionet.parse_hardware(body, HARDWARE)
    assert [m.model for m in models] == ["H100 x8", "H100 x1"]
    eight = row(models, "H100 x8")  # merged: lowest price among the offers not sold out
    assert eight.price_usd_gpu_hour == pytest.approx(2.0)
    assert eight.available is None  # two offers have no count
    assert row(models, "H100 x1").price_usd_gpu_hour == pytest.approx(2.5)


def test_ionet_hardware_all_sold_out_duplicates_are_zero_available():
    body = {
        "data": {
            "hardware": [
                {"name": "A", "num_cards": 2, "price": 4.0, "sold_out": True},
                {"name": "A", "num_cards": 2, "price": 3.0, "sold_out": True},
            ]
        }
    }
    [model] = ionet.parse_hardware(body, HARDWARE)[1]
    assert (model.model, model.available, model.price_usd_gpu_hour) == ("A", 0, 1.5)


def test_ionet_hardware_skips_a_few_nameless_entries_but_not_many():
    good = [{"name": f"G{i}", "num_cards": 1, "price": 1} for i in range(9)]
    _, models = ionet.parse_hardware({"data": {"hardware": [*good, {"price": 1}]}}, HARDWARE)
    assert len(models) == 9
    bad = {"data": {"hardware": [*good[:2], {"price": 1}, {"name": ""}, 7]}}
    assert "3 of 5" in schema_error(ionet.parse_hardware, bad, HARDWARE)


@pytest.mark.parametrize(
    "body",
    [{"data": {"machines": []}}, {"data": {"hardware": {"a": 1}}}, [], {"data": None}],
)
def test_ionet_hardware_without_a_list_is_a_schema_error(body):
    schema_error(ionet.parse_hardware, body, HARDWARE)


def test_ionet_hardware_empty_catalogue_is_no_rows():
    assert ionet.parse_hardware({"data": {"hardware": []}}, HARDWARE) == ([], [])


CPU_OFFER = {"id": "1CPU__US", "name": "", "num_cards": 0, "price": 0.1, "vram_per_card": 0}


@pytest.mark.parametrize("cards", [0, "0", 0.0])
def test_ionet_hardware_cpu_only_offers_are_skipped_not_invalid(cards):
    """The live catalogue lists CPU machines beside GPU ones: out of scope, never "invalid"."""
    gpu = {"name": "H100", "num_cards": 8, "price": 16.0}
    cpus = [{**CPU_OFFER, "num_cards": cards, "id": f"{i}CPU"} for i in range(30)]
    _, models = ionet.parse_hardware({"data": {"hardware": [gpu, *cpus]}}, HARDWARE)
    assert [(m.model, m.price_usd_gpu_hour) for m in models] == [("H100", 2.0)]


def test_ionet_hardware_only_cpu_offers_is_no_rows():
    assert ionet.parse_hardware({"data": {"hardware": [CPU_OFFER] * 5}}, HARDWARE) == ([], [])


def test_ionet_hardware_cpu_offers_do_not_dilute_the_invalid_share():
    """3 nameless GPU entries of 5 still reject the catalogue, however many CPU offers."""
    good = [{"name": "G1", "num_cards": 1, "price": 1}, {"name": "G2", "num_cards": 1}]
    broken = [{"num_cards": 1, "price": 1}, {"name": " ", "num_cards": 2}, "H100"]
    body = {"data": {"hardware": [*good, *broken, *[CPU_OFFER] * 50]}}
    assert "3 of 5 GPU" in schema_error(ionet.parse_hardware, body, HARDWARE)


@pytest.mark.parametrize("price", [0, 0.0, "0"])
def test_ionet_hardware_free_offer_has_no_price(price):
    """``price: 0`` is a free or unpriced offer: the price is missing (shown "—"), never 0."""
    body = {"data": {"hardware": [{"name": "L40S", "num_cards": 1, "price": price}]}}
    [model] = ionet.parse_hardware(body, HARDWARE)[1]
    assert (model.model, model.cards, model.price_usd_gpu_hour) == ("L40S", 1, None)


def test_ionet_hardware_free_offer_does_not_undercut_a_paid_one():
    body = {
        "data": {
            "hardware": [
                {"name": "L40S", "num_cards": 1, "price": 0},
                {"name": "L40S", "num_cards": 1, "price": 0.9},
            ]
        }
    }
    [model] = ionet.parse_hardware(body, HARDWARE)[1]
    assert model.price_usd_gpu_hour == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("offer", "available"),
    [
        ({"sold_out": True}, 0),
        ({"sold_out": True, "available_replicas": 0}, 0),
        ({"sold_out": False, "available_replicas": 0}, 0),
        ({"sold_out": False}, None),
    ],
)
def test_ionet_hardware_sold_out_is_a_model_with_zero_available(offer, available):
    body = {"data": {"hardware": [{"name": "B300", "num_cards": 8, "price": 64.0, **offer}]}}
    [model] = ionet.parse_hardware(body, HARDWARE)[1]
    assert (model.model, model.available) == ("B300", available)
    assert model.price_usd_gpu_hour == pytest.approx(8.0)  # still priced: the catalogue rate


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"hardware": [{"name": "H100"}, {"name": "A100"}, {"model": "x"}, 1, None]}},
        {"data": {"hardware": ["H100", "A100", "L40S"]}},  # items changed type
        {"data": {"hardware": [{"gpu": "H100", "num_cards": 8, "price": 9}] * 4}},  # key renamed
    ],
)
def test_ionet_hardware_gpu_entries_without_names_reject_the_catalogue(body):
    schema_error(ionet.parse_hardware, body, HARDWARE)


@pytest.mark.parametrize("body", [[], "hardware", 7, None])
def test_ionet_hardware_body_not_an_object_is_a_schema_error(body):
    assert "expected an object" in schema_error(ionet.parse_hardware, body, HARDWARE)


# -- Akash /v1/network-capacity ------------------------------------------------------------------

CAPACITY = akash.NETWORK_CAPACITY
CAPACITY_EXPECTED = {
    "providers_active": (2, "count"),
    "cpus_active": (0.902, "count"),  # millicores / 1000
    "cpus_total": (2.736, "count"),
    "gpus_active": (904, "count"),
    "gpus_total": (2742, "count"),
    "gpu_utilization_pct": (pytest.approx(904 / 2742 * 100), "%"),
    "memory_active_bytes": (906, "bytes"),
    "memory_total_bytes": (2748, "bytes"),
    "storage_active_bytes": (1818, "bytes"),
    "storage_total_bytes": (5514, "bytes"),
}


def test_akash_network_capacity_nested_shape():
    body = load("akash_network-capacity.test_fixture_synthetic.json")
    metrics, _ = akash.parse_network_capacity(body, CAPACITY)
    assert all(m.network == "akash" and m.endpoint == CAPACITY for m in metrics)
    assert values(metrics) == CAPACITY_EXPECTED


def test_akash_network_capacity_flat_shape():
    body = load("akash_network-capacity-flat.written.json")
    assert only_metrics(akash.parse_network_capacity(body, CAPACITY)) == CAPACITY_EXPECTED


def test_akash_old_and_new_shapes_give_the_same_record():  # SC-08
    nested = akash.parse_network_capacity(
        load("akash_network-capacity.test_fixture_synthetic.json"), CAPACITY
    )
    flat = akash.parse_network_capacity(load("akash_network-capacity-flat.written.json"), CAPACITY)
    assert nested == flat


def test_akash_flat_numbers_as_strings_and_missing_gpu():
    body = {"activeProviderCount": "61", "activeCPU": "1500", "totalCPU": "4000", "totalGPU": None}
    assert only_metrics(akash.parse_network_capacity(body, CAPACITY)) == {
        "providers_active": (61, "count"),
        "cpus_active": (1.5, "count"),
        "cpus_total": (4.0, "count"),
    }


def test_akash_nested_storage_from_parts_when_no_total():
    body = {
        "resources": {
            "gpu": {"active": 3, "total": 4},
            "storage": {
                "ephemeral": {"active": 10, "total": 100},
                "persistent": {"active": 5, "total": None},
            },
        }
    }
    got = only_metrics(akash.parse_network_capacity(body, CAPACITY))
    assert got["storage_active_bytes"] == (15, "bytes")
    assert "storage_total_bytes" not in got  # a partial sum is not a total
    assert got["gpu_utilization_pct"] == (75.0, "%")
    assert "cpus_total" not in got and "providers_active" not in got


@pytest.mark.parametrize(
    "body",
    [
        {"activeProviderCount": 2},
        {"activeProviderCount": 2, "resources": None},
        {"activeProviderCount": 2, "resources": {"processors": {"active": 1}}},
        {"active_cpu": 1, "total_cpu": 2},
        [],
    ],
)
def test_akash_network_capacity_renamed_fields_are_a_schema_error(body):
    schema_error(akash.parse_network_capacity, body, CAPACITY)


@pytest.mark.parametrize(
    ("code", "kind"),
    [(400, ErrorKind.HTTP_4XX), (429, ErrorKind.RATE_LIMITED), (503, ErrorKind.HTTP_5XX)],
)
def test_akash_error_envelope_in_a_200_body(code, kind):
    body = {"statusCode": code, "error": "Bad", "message": "nope \x1b]0;x\x07"}
    with pytest.raises(SourceError) as info:
        akash.parse_network_capacity(body, CAPACITY)
    assert info.value.kind is kind
    assert "\x1b" not in info.value.message and "\x07" not in info.value.message


# -- Akash /v1/gpu and /v1/gpu-prices ------------------------------------------------------------


def test_akash_gpu_totals_only():
    assert only_metrics(akash.parse_gpu(load("akash_gpu.written.json"), akash.GPU)) == {
        "gpus_allocated": (331, "count"),
        "gpus_allocatable": (412, "count"),
    }


@pytest.mark.parametrize(
    "body",
    [
        {"gpus": {"details": {}}},
        {"gpus": {"total": {"allocatable": None, "allocated": "x"}}},
        {"gpu": {"total": {"allocatable": 1}}},
        {"gpus": []},
    ],
)
def test_akash_gpu_without_totals_is_a_schema_error(body):
    schema_error(akash.parse_gpu, body, akash.GPU)


def test_akash_gpu_prices_one_row_per_model_with_price_and_availability():
    metrics, models = akash.parse_gpu_prices(load("akash_gpu-prices.written.json"), "/p")
    assert metrics == []
    assert [m.model for m in models] == [
        "nvidia h100",
        "nvidia a100 80Gi",
        "nvidia a100 40Gi",
        "nvidia rtx4090",
        "nvidia t4",
    ]
    assert all(m.network == "akash" and m.endpoint == "/p" and m.cards is None for m in models)
    h100 = row(models, "nvidia h100")
    assert (h100.memory_gb, h100.total, h100.available) == (80, 120, 8)
    assert h100.price_usd_gpu_hour == pytest.approx(1.62)  # weightedAverage, not avg
    a100 = row(models, "nvidia a100 80Gi")  # SXM4 and PCIe merged
    assert (a100.memory_gb, a100.total, a100.available) == (80, 40, 10)
    assert a100.price_usd_gpu_hour == pytest.approx((1.1 * 24 + 0.9 * 16) / 40)
    small = row(models, "nvidia a100 40Gi")
    assert (small.memory_gb, small.total, small.available) == (40, 8, 2)
    assert small.price_usd_gpu_hour == pytest.approx(0.6)  # weightedAverage null: avg
    rtx = row(models, "nvidia rtx4090")
    assert (rtx.total, rtx.available, rtx.price_usd_gpu_hour) == (200, 61, pytest.approx(0.32))
    t4 = row(models, "nvidia t4")
    assert (t4.total, t4.available, t4.price_usd_gpu_hour) == (44, 0, None)  # null price


def test_akash_gpu_prices_single_memory_size_keeps_the_short_name():
    body = {"models": [{"vendor": "nvidia", "model": "a100", "ram": "80Gi", "price": None}]}
    [model] = akash.parse_gpu_prices(body, "/p")[1]
    assert (model.model, model.total, model.available) == ("nvidia a100", None, None)


def test_akash_gpu_prices_in_another_currency_are_not_usd():
    price = {"currency": "AKT", "weightedAverage": 3.0}
    body = {"models": [{"vendor": "nvidia", "model": "a100", "ram": "80Gi", "price": price}]}
    assert akash.parse_gpu_prices(body, "/p")[1][0].price_usd_gpu_hour is None


@pytest.mark.parametrize(
    ("ram", "expected"),
    [("80Gi", 80.0), ("24Gi", 24.0), ("80GB", 80.0), (48, 48.0), ("512Mi", 0.5), ("1Ti", 1024.0)],
)
def test_akash_memory_gb(ram, expected):
    assert akash.memory_gb(ram) == pytest.approx(expected)


@pytest.mark.parametrize("ram", [None, "", "lots", "80 furlongs", -1, "0Gi"])
def test_akash_memory_gb_unknown_is_none(ram):
    assert akash.memory_gb(ram) is None


@pytest.mark.parametrize(
    "body",
    [
        {"availability": {"total": 1}},
        {"models": {"nvidia": []}},
        {"models": [{"vendor": "nvidia"}, {"model": "a100"}, {"name": "x"}]},
        [],
    ],
)
def test_akash_gpu_prices_shape_errors(body):
    schema_error(akash.parse_gpu_prices, body, akash.GPU_PRICES)


# -- Akash /v1/dashboard-data --------------------------------------------------------------------

DASH = akash.DASHBOARD


def test_akash_gpu_for_a_provider_without_gpus_is_a_real_zero():
    """``/v1/gpu?provider=`` of a CPU-only provider: no details, totals 0 (not placeholders)."""
    body = {"gpus": {"total": {"allocatable": 0, "allocated": 0}, "details": {}}}
    assert only_metrics(akash.parse_gpu(body, akash.GPU)) == {
        "gpus_allocated": (0, "count"),
        "gpus_allocatable": (0, "count"),
    }


def test_akash_network_capacity_without_gpus_has_no_utilization():
    body = {
        "activeProviderCount": 3,
        "resources": {"cpu": {"active": 2000, "total": 8000}, "gpu": {"active": 0, "total": 0}},
    }
    got = only_metrics(akash.parse_network_capacity(body, CAPACITY))
    assert (got["gpus_active"], got["gpus_total"]) == ((0, "count"), (0, "count"))
    assert "gpu_utilization_pct" not in got  # 0 of 0 is no percentage


def test_akash_gpu_prices_model_no_provider_offers_now_is_a_row_with_zero_available():
    """A model whose providers are all gone: still listed, 0 available, no bids so no price."""
    body = {
        "availability": {"total": 0, "available": 0},
        "models": [
            {
                "vendor": "nvidia",
                "model": "rtx3060",
                "ram": "12Gi",
                "interface": "PCIe",
                "availability": {"total": 0, "available": 0},
                "providerAvailability": {"total": 0, "available": 0, "providers": []},
                "price": None,
            }
        ],
    }
    [model] = akash.parse_gpu_prices(body, akash.GPU_PRICES)[1]
    assert (model.model, model.total, model.available, model.price_usd_gpu_hour) == (
        "nvidia rtx3060",
        0,
        0,
        None,
    )


def test_akash_gpu_prices_without_any_model_is_no_rows():
    body = {"availability": {"total": 0, "available": 0}, "models": []}
    assert akash.parse_gpu_prices(body, akash.GPU_PRICES) == ([], [])


def test_akash_dashboard_leases_and_daily_spend():
    assert only_metrics(akash.parse_dashboard(load("akash_dashboard-data.written.json"), DASH)) == {
        "leases_active": (1423, "count"),
        "spend_daily_usd": (pytest.approx(61234.56789), "USD"),
        "spend_daily_akt": (pytest.approx(35123.456789), "AKT"),
    }


@pytest.mark.parametrize("usd", [0, None, "missing"])
def test_akash_dashboard_usd_falls_back_to_usdc(usd):
    """Newer console builds serve dailyUUsdSpent as a hard-coded 0: not published, not 0."""
    now: dict[str, Any] = {"activeLeaseCount": 5, "dailyUUsdcSpent": "2500000"}
    if usd != "missing":
        now["dailyUUsdSpent"] = usd
    got = only_metrics(akash.parse_dashboard({"now": now}, DASH))
    assert got == {"leases_active": (5, "count"), "spend_daily_usd": (2.5, "USD")}


def test_akash_dashboard_misspelt_capacity_key_is_accepted():
    body = load("akash_dashboard-data.written.json")
    body["netwqorkCapacity"] = body.pop("networkCapacity")
    got = only_metrics(akash.parse_dashboard(body, DASH))
    assert got["leases_active"] == (1423, "count")
    assert "providers_active" not in got  # capacity comes from /v1/network-capacity only


@pytest.mark.parametrize(
    "body",
    [
        {"chainStats": {}},
        {"now": []},
        {"now": {"activeLeases": 3, "spent": 1}},
        {"now": {"activeLeaseCount": None}},
    ],
)
def test_akash_dashboard_shape_errors(body):
    schema_error(akash.parse_dashboard, body, DASH)


# -- Filfox /overview ----------------------------------------------------------------------------


def test_filecoin_overview_big_decimal_strings():
    got = only_metrics(filecoin.parse_overview(load("filecoin_overview.written.json"), "/overview"))
    assert got == {
        "miners_active": (2345, "count"),
        "power_raw_bytes": (float(Decimal("23456789012345678901")), "bytes"),
        "power_qa_bytes": (float(Decimal("27890123456789012345")), "bytes"),
        "price_usd": (3.45, "USD"),
        "height": (4312345, ""),
    }
    assert got["power_raw_bytes"][0] > 2**63  # does not fit an int64: stored as REAL


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("23456789012345678901", 2.3456789012345678e19),
        (" 12 ", 12.0),
        (2**70, float(2**70)),
        ("1.5e3", 1500.0),
        ("NaN", None),
        ("Infinity", None),
        ("-5", None),
        ("1e999999", None),
        ("12 bytes", None),
        (True, None),
        (None, None),
        ([1], None),
    ],
)
def test_filecoin_big_number(value, expected):
    assert filecoin.big_number(value) == expected


def test_filecoin_overview_missing_fields_are_absent():
    body = {"activeMiners": "2345", "totalRawBytePower": None, "price": "n/a"}
    assert only_metrics(filecoin.parse_overview(body, "/overview")) == {
        "miners_active": (2345, "count")
    }


@pytest.mark.parametrize("body", [{"active_miners": 1, "raw_power": "2"}, [], "ok", {}])
def test_filecoin_overview_renamed_fields_are_a_schema_error(body):
    schema_error(filecoin.parse_overview, body, "/overview")


@pytest.mark.parametrize(
    ("key", "metric"),
    [
        ("activeMiners", "miners_active"),
        ("totalRawBytePower", "power_raw_bytes"),
        ("totalQualityAdjPower", "power_qa_bytes"),
        ("price", "price_usd"),
        ("height", "height"),
    ],
)
@pytest.mark.parametrize("zero", [0, "0", 0.0])
def test_filecoin_overview_zero_is_a_not_published_placeholder(key, metric, zero):
    """Mainnet always has miners, power, a height and a price: Filfox's 0 means missing."""
    body = {**load("filecoin_overview.written.json"), key: zero}
    got = only_metrics(filecoin.parse_overview(body, "/overview"))
    assert metric not in got
    assert len(got) == 4


def test_filecoin_overview_only_placeholders_stores_nothing_without_an_error():
    body = {"height": 0, "activeMiners": 0, "totalRawBytePower": "0", "price": 0, "accounts": 9}
    assert filecoin.parse_overview(body, "/overview") == ([], [])


@pytest.mark.parametrize(
    "body",
    [
        {"activeMiners": {"n": 1}, "height": [1], "price": "n/a"},  # types changed
        {"activeMiners": -1, "height": "soon"},
    ],
)
def test_filecoin_overview_figures_of_the_wrong_type_are_a_schema_error(body):
    schema_error(filecoin.parse_overview, body, "/overview")


# -- Helium pagination metadata ------------------------------------------------------------------

PAGINATION = helium.PAGINATION


@pytest.mark.parametrize(("sub", "count"), [("iot", 371234), ("mobile", 28345)])
def test_helium_pagination_counts(sub, count):
    body = load(f"helium_pagination-metadata-{sub}.written.json")
    metrics, _ = helium.parse_pagination(body, PAGINATION, subnetwork=sub)
    assert values(metrics) == {f"hotspots_{sub}_total": (count, "count")}
    assert metrics[0].network == "helium" and metrics[0].endpoint == PAGINATION


def test_helium_count_as_string():
    body = {"pageSize": 10000, "totalItems": "12", "totalPages": 1}
    got = only_metrics(helium.parse_pagination(body, PAGINATION, subnetwork="iot"))
    assert got == {"hotspots_iot_total": (12, "count")}


def test_helium_bad_subnetwork_envelope_is_http_4xx():
    body = {"statusCode": 400, "error": "Bad Request", "message": "Invalid subnetwork"}
    with pytest.raises(SourceError) as info:
        helium.parse_pagination(body, PAGINATION, subnetwork="iot")
    assert info.value.kind is ErrorKind.HTTP_4XX
    assert "Invalid subnetwork" in info.value.message


@pytest.mark.parametrize(
    "body",
    [{"pageSize": 10000, "total": 5}, {"totalItems": None}, {"totalItems": 1.5}, [5], {}],
)
def test_helium_missing_total_is_a_schema_error(body):
    schema_error(helium.parse_pagination, body, PAGINATION, subnetwork="mobile")


@pytest.mark.parametrize("total", [0, "0", 0.0])
@pytest.mark.parametrize("sub", ["iot", "mobile"])
def test_helium_zero_total_is_a_not_indexed_placeholder(total, sub):
    """Registered hotspots never drop to 0: totalItems 0 stores nothing, and is no error."""
    body = {"pageSize": 10000, "totalItems": total, "totalPages": 0}
    assert helium.parse_pagination(body, PAGINATION, subnetwork=sub) == ([], [])


@pytest.mark.parametrize("total", [-3, "many", True, {"n": 5}])
def test_helium_total_of_the_wrong_type_is_a_schema_error(total):
    body = {"pageSize": 10000, "totalItems": total, "totalPages": 1}
    schema_error(helium.parse_pagination, body, PAGINATION, subnetwork="iot")


# -- fetch through httpx.MockTransport -----------------------------------------------------------


def reply(status: int, body: Any, content_type: str = "application/json") -> httpx.Response:
    """A streamed response: get_json reads the raw stream."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(
        status, headers={"content-type": content_type}, stream=httpx.ByteStream(data)
    )


class Upstream:
    """Serves fixtures by path under ``base``; ``faults`` maps a path to a response factory."""

    def __init__(
        self,
        base: str,
        routes: dict[str, Callable[[httpx.Request], Any]],
        faults: dict[str, Callable[[], httpx.Response]] | None = None,
    ) -> None:
        self.base = base.rstrip("/")
        self.routes = routes
        self.faults = faults or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url.copy_with(query=None))
        assert url.startswith(self.base + "/"), url
        path = url[len(self.base) :]
        if path in self.faults:
            return self.faults[path]()
        if path not in self.routes:
            return reply(404, b"Not found", "text/plain")
        return reply(200, self.routes[path](request))

    def client(self) -> httpx.AsyncClient:
        return make_client(transport=httpx.MockTransport(self))

    def paths(self) -> set[str]:
        return {str(r.url.copy_with(query=None))[len(self.base) :] for r in self.requests}


def fixture_route(name: str) -> Callable[[httpx.Request], Any]:
    return lambda _request: load(name)


def html() -> httpx.Response:
    return reply(200, b"<html><body>Sign in to continue</body></html>", "text/html")


def server_error() -> httpx.Response:
    return reply(500, {"error": "boom"})


class _NoJitter:
    def uniform(self, low: float, high: float) -> float:
        return 0.0


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of a 500 wait 0 s instead of up to 1.5 s of jitter."""
    monkeypatch.setattr(sources.base, "random", SimpleNamespace(Random=_NoJitter))


IONET_BASE = "http://mirror.test/ionet/"
IONET_ROUTES = {
    ionet.NETWORK_INFO: fixture_route("ionet_network-info.written.json"),
    ionet.CLUSTERS: fixture_route("ionet_network-info-clusters.written.json"),
    ionet.BLOCKS: fixture_route("ionet_blocks-all.written.json"),
    ionet.HARDWARE: fixture_route("ionet_vmaas-hardware.written.json"),
}


def test_sources_defaults_and_names():
    assert (IonetSource().base_url, IonetSource().name) == ("https://api.io.solutions", "ionet")
    assert AkashSource().base_url == "https://console-api.akash.network"
    assert FilecoinSource().base_url == "https://filfox.info/api/v1"
    assert HeliumSource().base_url == "https://entities.nft.helium.io"
    for cls in (IonetSource, AkashSource, FilecoinSource, HeliumSource):
        assert cls().uses_network is True
    assert (AkashSource().name, FilecoinSource().name, HeliumSource().name) == (
        "akash",
        "filecoin",
        "helium",
    )


async def test_ionet_fetch_all_endpoints_under_base_url():
    upstream = Upstream(IONET_BASE, IONET_ROUTES)
    async with upstream.client() as client:
        reading = await IonetSource(base_url=IONET_BASE, timeout=5).fetch(client)
    assert upstream.paths() == set(IONET_ROUTES)
    assert len(upstream.requests) == 4
    assert all(r.headers.get("token") is None for r in upstream.requests)  # no auth needed
    assert reading.errors == []
    got = values(reading.metrics)
    assert got["gpus_total"] == (21100, "count")
    assert got["clusters_running"] == (1234, "count")
    assert got["block_emission"] == (8310.22, "IO")
    assert {m.endpoint for m in reading.metrics} == {ionet.NETWORK_INFO, ionet.CLUSTERS, BLOCKS}
    assert {m.model for m in reading.gpu_models} == {
        "H100 SXM5 80GB",
        "A100 SXM4 80GB",
        "RTX 4090",
        "L40S",
    }


async def test_ionet_fetch_one_endpoint_500_keeps_the_others(no_backoff):
    upstream = Upstream(IONET_BASE, IONET_ROUTES, {ionet.CLUSTERS: server_error})
    async with upstream.client() as client:
        reading = await IonetSource(base_url=IONET_BASE).fetch(client)
    assert [(e.endpoint, e.error.kind) for e in reading.errors] == [
        (ionet.CLUSTERS, ErrorKind.HTTP_5XX)
    ]
    got = values(reading.metrics)
    assert "clusters_running" not in got
    assert got["gpu_utilization_pct"][0] == pytest.approx(14000 / 21100 * 100)
    assert len(reading.gpu_models) == 4


async def test_ionet_fetch_schema_drift_on_one_endpoint_is_listed():
    routes = dict(IONET_ROUTES)
    routes[ionet.NETWORK_INFO] = lambda _r: {"status": "succeeded", "data": [{"gpuz": 1}]}
    upstream = Upstream(IONET_BASE, routes)
    async with upstream.client() as client:
        reading = await IonetSource(base_url=IONET_BASE).fetch(client)
    [error] = reading.errors
    assert (error.endpoint, error.error.kind) == (ionet.NETWORK_INFO, ErrorKind.SCHEMA)
    assert "gpus_total" not in values(reading.metrics)
    assert values(reading.metrics)["blocks_total"] == (5678, "count")


async def test_ionet_fetch_every_endpoint_failing_raises():
    faults = {path: html for path in IONET_ROUTES}
    upstream = Upstream(IONET_BASE, IONET_ROUTES, faults)
    async with upstream.client() as client:
        with pytest.raises(SourceError) as info:
            await IonetSource(base_url=IONET_BASE).fetch(client)
    assert info.value.kind is ErrorKind.BAD_CONTENT_TYPE
    assert len(upstream.requests) == 4  # HTML with 200 is not retried


AKASH_BASE = "http://127.0.0.1:8080/console"
AKASH_ROUTES = {
    akash.NETWORK_CAPACITY: fixture_route("akash_network-capacity.test_fixture_synthetic.json"),
    akash.GPU: fixture_route("akash_gpu.written.json"),
    akash.GPU_PRICES: fixture_route("akash_gpu-prices.written.json"),
    akash.DASHBOARD: fixture_route("akash_dashboard-data.written.json"),
}


async def test_akash_fetch_all_endpoints_under_base_url():
    upstream = Upstream(AKASH_BASE, AKASH_ROUTES)
    async with upstream.client() as client:
        reading = await AkashSource(base_url=AKASH_BASE).fetch(client)
    assert upstream.paths() == set(AKASH_ROUTES)
    assert "/v1/providers" not in upstream.paths()
    assert reading.errors == []
    got = values(reading.metrics)  # also: no metric comes from two endpoints
    assert got["providers_active"] == (2, "count")
    assert got["gpus_allocated"] == (331, "count")
    assert got["leases_active"] == (1423, "count")
    assert len(reading.gpu_models) == 5
    assert len({m.model for m in reading.gpu_models}) == 5


async def test_akash_fetch_html_on_one_endpoint_keeps_the_others():
    upstream = Upstream(AKASH_BASE, AKASH_ROUTES, {akash.GPU_PRICES: html})
    async with upstream.client() as client:
        reading = await AkashSource(base_url=AKASH_BASE).fetch(client)
    assert [(e.endpoint, e.error.kind) for e in reading.errors] == [
        (akash.GPU_PRICES, ErrorKind.BAD_CONTENT_TYPE)
    ]
    assert reading.gpu_models == []
    assert values(reading.metrics)["gpu_utilization_pct"][0] == pytest.approx(904 / 2742 * 100)


async def test_akash_fetch_every_endpoint_failing_raises(no_backoff):
    faults = {path: server_error for path in AKASH_ROUTES}
    upstream = Upstream(AKASH_BASE, AKASH_ROUTES, faults)
    async with upstream.client() as client:
        with pytest.raises(SourceError) as info:
            await AkashSource(base_url=AKASH_BASE).fetch(client)
    assert info.value.kind is ErrorKind.HTTP_5XX
    assert len(upstream.requests) == 12  # 3 attempts each


FILFOX_BASE = "http://mirror.test/filfox/api/v1"


async def test_filecoin_fetch_under_base_url():
    upstream = Upstream(FILFOX_BASE, {"/overview": fixture_route("filecoin_overview.written.json")})
    async with upstream.client() as client:
        reading = await FilecoinSource(base_url=FILFOX_BASE).fetch(client)
    assert upstream.paths() == {"/overview"}
    assert values(reading.metrics)["miners_active"] == (2345, "count")
    assert reading.gpu_models == [] and reading.errors == []


async def test_filecoin_fetch_failure_raises():
    upstream = Upstream(FILFOX_BASE, {}, {"/overview": html})
    async with upstream.client() as client:
        with pytest.raises(SourceError) as info:
            await FilecoinSource(base_url=FILFOX_BASE).fetch(client)
    assert info.value.kind is ErrorKind.BAD_CONTENT_TYPE


HELIUM_BASE = "http://mirror.test/helium/"


def helium_route(request: httpx.Request) -> Any:
    sub = request.url.params["subnetwork"]
    return load(f"helium_pagination-metadata-{sub}.written.json")


async def test_helium_fetch_both_subnetworks():
    upstream = Upstream(HELIUM_BASE, {PAGINATION: helium_route})
    async with upstream.client() as client:
        reading = await HeliumSource(base_url=HELIUM_BASE).fetch(client)
    assert upstream.paths() == {PAGINATION}
    assert sorted(r.url.params["subnetwork"] for r in upstream.requests) == ["iot", "mobile"]
    assert values(reading.metrics) == {
        "hotspots_iot_total": (371234, "count"),
        "hotspots_mobile_total": (28345, "count"),
    }
    assert reading.errors == []


@pytest.mark.parametrize("failing", ["iot", "mobile"])
async def test_helium_fetch_one_subnetwork_failing_is_named(failing, no_backoff):
    def respond(request: httpx.Request) -> Any:
        if request.url.params["subnetwork"] == failing:
            return {"statusCode": 500, "error": "Internal Server Error"}
        return helium_route(request)

    upstream = Upstream(HELIUM_BASE, {PAGINATION: respond})
    async with upstream.client() as client:
        reading = await HeliumSource(base_url=HELIUM_BASE).fetch(client)
    ok = "mobile" if failing == "iot" else "iot"
    assert set(values(reading.metrics)) == {f"hotspots_{ok}_total"}
    assert [(e.endpoint, e.error.kind) for e in reading.errors] == [
        (f"{PAGINATION}?subnetwork={failing}", ErrorKind.HTTP_5XX)
    ]


async def test_helium_fetch_http_500_on_one_subnetwork(no_backoff):
    def respond(request: httpx.Request) -> Any:
        return helium_route(request)

    class Faulty(Upstream):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.params.get("subnetwork") == "iot":
                self.requests.append(request)
                return server_error()
            return super().__call__(request)

    upstream = Faulty(HELIUM_BASE, {PAGINATION: respond})
    async with upstream.client() as client:
        reading = await HeliumSource(base_url=HELIUM_BASE).fetch(client)
    assert values(reading.metrics) == {"hotspots_mobile_total": (28345, "count")}
    assert [e.endpoint for e in reading.errors] == [f"{PAGINATION}?subnetwork=iot"]


async def test_helium_fetch_both_failing_raises():
    upstream = Upstream(HELIUM_BASE, {}, {PAGINATION: html})
    async with upstream.client() as client:
        with pytest.raises(SourceError) as info:
            await HeliumSource(base_url=HELIUM_BASE).fetch(client)
    assert info.value.kind is ErrorKind.BAD_CONTENT_TYPE
