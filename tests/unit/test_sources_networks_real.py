"""Public network parsers on bodies recorded from the live services (tests/fixtures/real/).

Where each body comes from is in tests/fixtures/real/README.md. The expected numbers are read
off the recorded bodies by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sources import filecoin, ionet
from sources.models import GpuModel

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "real"


def load(name: str) -> Any:
    return json.loads((REAL / name).read_text())


def by_model(models: list[GpuModel]) -> dict[str, GpuModel]:
    found = {m.model: m for m in models}
    assert len(found) == len(models)
    return found


# -- io.net /v1/io-cloud/{vmaas,caas}/hardware (recorded 2026-06-13) -----------------------------


def test_ionet_vmaas_real_catalogue_keeps_its_gpu_models():
    """The CPU-only offer is skipped, not counted invalid: the GPU models all appear."""
    body = load("ionet_vmaas-hardware.wayneornn-public-pricing.json")
    metrics, models = ionet.parse_hardware(body, ionet.HARDWARE)
    assert metrics == []
    rows = by_model(models)
    assert list(rows) == ["H100", "B300", "L40S"]  # "1CPU__US" (name "", 0 cards) left out
    h100 = rows["H100"]
    assert (h100.cards, h100.memory_gb, h100.available) == (8, 80, None)  # vmaas has no count
    assert h100.price_usd_gpu_hour == pytest.approx(27.875342465753423 / 8)
    b300 = rows["B300"]  # sold out: still a model, 0 available is a real figure
    assert (b300.cards, b300.memory_gb, b300.available) == (8, 288, 0)
    assert b300.price_usd_gpu_hour == pytest.approx(63.86301369863014 / 8)
    l40s = rows["L40S"]  # "price": 0 is a free offer: no price, never 0
    assert (l40s.cards, l40s.memory_gb, l40s.available, l40s.price_usd_gpu_hour) == (
        1,
        48,
        None,
        None,
    )


def test_ionet_caas_real_catalogue_reads_replicas():
    body = load("ionet_caas-hardware.wayneornn-public-pricing.json")
    rows = by_model(ionet.parse_hardware(body, "/v1/io-cloud/caas/hardware")[1])
    assert (rows["H100"].available, rows["B300"].available) == (3, 0)
    assert rows["H100"].price_usd_gpu_hour == pytest.approx(27.875342465753423 / 8)


# -- Filfox /api/v1/overview (recorded 2021-04-01) -----------------------------------------------


def test_filecoin_real_overview():
    body = load("filecoin_overview.mufanh-filecoin-backend.json")
    metrics, models = filecoin.parse_overview(body, filecoin.OVERVIEW)
    assert models == []
    assert {m.metric: (m.value, m.unit) for m in metrics} == {
        "miners_active": (1766, "count"),
        "power_raw_bytes": (float(4366509356523454464), "bytes"),
        "power_qa_bytes": (float(4367548626787631104), "bytes"),
        "price_usd": (229.21, "USD"),
        "height": (632623, ""),
    }
