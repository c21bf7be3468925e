"""Per-node figures (sources/node_metrics.py) from the node_exporter and GPU exporter fixtures.

The "later" node body is the real one with counters advanced by known amounts (see
tests/fixtures/README.md), so CPU % and network rates have exact expected values.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sources.exposition import Sample, parse_exposition
from sources.node_metrics import gpu_values, node_values

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
T0 = 1_795_636_151.0
GPU_KEYS = {"gpus", "gpu_util_pct", "gpu_temp_c", "gpu_power_w", "gpu_mem_pct"}
NODE_KEYS = {
    "cpu_pct",
    "mem_pct",
    "disk_pct",
    "load1",
    "uptime_s",
    "net_rx_bps",
    "net_tx_bps",
    "counters",
}


def load(name: str) -> list[Sample]:
    return parse_exposition((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def first() -> list[Sample]:
    return load("node_exporter_1.5.0_2cpu.prom")


@pytest.fixture(scope="module")
def later() -> list[Sample]:
    return load("node_exporter_1.5.0_2cpu_later.prom")


# --- node_exporter ------------------------------------------------------------------------------


def test_first_scrape(first):
    values = node_values(first, now=T0, previous=None)
    assert set(values) == NODE_KEYS
    # Rates need two scrapes: None, never 0.
    assert values["cpu_pct"] is None
    assert values["net_rx_bps"] is None
    assert values["net_tx_bps"] is None
    assert values["mem_pct"] == pytest.approx(100 * (1 - 2.483142656e10 / 2.5276510208e10))
    assert values["mem_pct"] == pytest.approx(1.7608587749)
    assert values["disk_pct"] == pytest.approx(100 * (1 - 8.375863296e10 / 2.70553174016e11))
    assert values["load1"] == 0.35
    assert values["uptime_s"] == pytest.approx(1.7956361517717254e09 - 1.79563484e09)
    assert values["counters"] == {
        "at": T0,
        "cpu_idle_s": pytest.approx(1140.52 + 1109.04),
        "cpu_total_s": pytest.approx(
            1140.52
            + 1
            + 0.22
            + 10.07
            + 33.88
            + 125
            + 1109.04
            + 8.58
            + 2.63
            + 10.46
            + 45.97
            + 133.76
        ),
        "net_rx_bytes": 6.9953392e07,  # eth0 alone: ifb0/ifb1 (0 bytes) are virtual, no lo here
        "net_tx_bytes": 191311.0,
    }


def test_second_scrape_gives_exact_cpu_and_rates(first, later):
    previous = node_values(first, now=T0, previous=None)["counters"]
    values = node_values(later, now=T0 + 10, previous=previous)
    # Δall = 10 s per CPU = 20 s, Δidle = 8 + 6 = 14 s: 30 % busy across both cores.
    assert values["cpu_pct"] == pytest.approx(30.0, abs=1e-9)
    assert values["net_rx_bps"] == pytest.approx(100_000.0)
    assert values["net_tx_bps"] == pytest.approx(25_000.0)
    assert values["mem_pct"] == pytest.approx(100 * (1 - 2.4e10 / 2.5276510208e10))
    assert values["disk_pct"] == pytest.approx(100 * (1 - 8e10 / 2.70553174016e11))
    assert values["load1"] == 0.42
    assert values["uptime_s"] == pytest.approx(1311.7717254 + 10, abs=1e-6)
    assert values["counters"]["at"] == T0 + 10


def test_rates_follow_the_elapsed_time(first, later):
    previous = node_values(first, now=T0, previous=None)["counters"]
    values = node_values(later, now=T0 + 40, previous=previous)
    assert values["net_rx_bps"] == pytest.approx(25_000.0)
    assert values["cpu_pct"] == pytest.approx(30.0)  # from CPU seconds, not the wall clock
    for now in (T0, T0 - 5):  # no time passed, or the clock went back
        stalled = node_values(later, now=now, previous=previous)
        assert stalled["net_rx_bps"] is None and stalled["net_tx_bps"] is None


def test_counter_reset_gives_none(first, later):
    previous = node_values(later, now=T0, previous=None)["counters"]
    # The earlier body read after the later one: every counter went backwards (a reboot).
    values = node_values(first, now=T0 + 10, previous=previous)
    assert values["cpu_pct"] is None
    assert values["net_rx_bps"] is None
    assert values["net_tx_bps"] is None
    assert values["mem_pct"] is not None  # gauges are unaffected
    # and the next scrape has a fresh baseline
    again = node_values(later, now=T0 + 20, previous=values["counters"])
    assert again["cpu_pct"] == pytest.approx(30.0)


def test_previous_from_json_is_not_trusted(later):
    for previous in ({}, {"at": "x", "cpu_idle_s": None}, {"at": True, "net_rx_bytes": "1"}):
        values = node_values(later, now=T0, previous=previous)
        assert values["cpu_pct"] is None and values["net_rx_bps"] is None


def test_missing_metrics_give_none_not_zero():
    values = node_values([Sample("go_goroutines", {}, 8.0)], now=T0, previous={"at": T0 - 10})
    assert {key: values[key] for key in NODE_KEYS - {"counters"}} == dict.fromkeys(
        NODE_KEYS - {"counters"}
    )
    assert values["counters"] == {"at": T0}
    assert node_values([], now=T0, previous=None)["mem_pct"] is None


def test_non_finite_values_give_none():
    samples = [
        Sample("node_memory_MemTotal_bytes", {}, math.inf),
        Sample("node_memory_MemAvailable_bytes", {}, 1.0),
        Sample("node_load1", {}, math.nan),
        Sample("node_time_seconds", {}, math.nan),
        Sample("node_boot_time_seconds", {}, 1.0),
        Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "idle"}, math.nan),
        Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "user"}, 5.0),
        Sample("node_network_receive_bytes_total", {"device": "eth0"}, math.inf),
    ]
    values = node_values(
        samples, now=T0, previous={"at": T0 - 1, "cpu_idle_s": 0, "cpu_total_s": 0}
    )
    assert values["mem_pct"] is None
    assert values["load1"] is None
    assert values["uptime_s"] is None
    assert values["cpu_pct"] is None
    assert values["net_rx_bps"] is None
    assert values["counters"] == {"at": T0}


def test_memory_total_of_zero():
    samples = [
        Sample("node_memory_MemTotal_bytes", {}, 0.0),
        Sample("node_memory_MemAvailable_bytes", {}, 0.0),
    ]
    assert node_values(samples, now=T0, previous=None)["mem_pct"] is None


def test_loopback_is_not_counted():
    def body(lo: float, eth: float) -> list[Sample]:
        return [
            Sample("node_network_receive_bytes_total", {"device": "lo"}, lo),
            Sample("node_network_receive_bytes_total", {"device": "eth0"}, eth),
            Sample("node_network_transmit_bytes_total", {"device": "lo"}, lo),
            Sample("node_network_transmit_bytes_total", {"device": "eth0"}, eth),
        ]

    previous = node_values(body(1e9, 1000), now=T0, previous=None)["counters"]
    assert previous["net_rx_bytes"] == 1000
    values = node_values(body(5e9, 3000), now=T0 + 2, previous=previous)
    assert values["net_rx_bps"] == 1000 and values["net_tx_bps"] == 1000


def test_root_filesystem_skips_pseudo_filesystems():
    def fs(fstype: str, mountpoint: str, size: float, avail: float) -> list[Sample]:
        labels = {"device": "d", "fstype": fstype, "mountpoint": mountpoint}
        return [
            Sample("node_filesystem_size_bytes", labels, size),
            Sample("node_filesystem_avail_bytes", labels, avail),
        ]

    only_overlay = fs("overlay", "/", 100, 10) + fs("ext4", "/data", 100, 50)
    assert node_values(only_overlay, now=T0, previous=None)["disk_pct"] is None
    for skipped in ("tmpfs", "squashfs", "nsfs"):
        assert node_values(fs(skipped, "/", 100, 10), now=T0, previous=None)["disk_pct"] is None
    mixed = fs("tmpfs", "/", 100, 99) + fs("ext4", "/", 200, 50) + fs("ext4", "/boot", 1, 0)
    assert node_values(mixed, now=T0, previous=None)["disk_pct"] == pytest.approx(75.0)
    no_avail = [Sample("node_filesystem_size_bytes", {"fstype": "ext4", "mountpoint": "/"}, 9)]
    assert node_values(no_avail, now=T0, previous=None)["disk_pct"] is None


def test_cpu_percent_is_clamped_and_needs_elapsed_cpu_time(first):
    counters = node_values(first, now=T0, previous=None)["counters"]
    same = node_values(first, now=T0 + 10, previous=counters)
    assert same["cpu_pct"] is None  # no CPU time passed between the two bodies
    assert (
        0 <= node_values(first, now=T0, previous={**counters, "cpu_total_s": 0})["cpu_pct"] <= 100
    )


# --- GPUs ---------------------------------------------------------------------------------------


def test_dcgm_exporter_two_gpus():
    values = gpu_values(load("dcgm_exporter_2gpu.written.prom"))
    assert values == {
        "gpus": 2,
        "gpu_util_pct": pytest.approx(66.0),  # mean of 87 and 45
        "gpu_temp_c": 71.0,  # the hotter one
        "gpu_power_w": pytest.approx(555.75),  # 245.5 + 310.25
        "gpu_mem_pct": pytest.approx(100 * 80_000 / 163_840),  # (60000 + 20000) of 2 x 81920 MiB
    }


def test_nvidia_gpu_exporter_one_gpu():
    values = gpu_values(load("nvidia_gpu_exporter_1gpu.written.prom"))
    assert values == {
        "gpus": 1,
        "gpu_util_pct": pytest.approx(73.0),  # ratio 0.73 x 100
        "gpu_temp_c": 64.0,
        "gpu_power_w": pytest.approx(312.45),
        "gpu_mem_pct": pytest.approx(25.0),  # 6141 of 24564 MiB, in bytes
    }


def test_node_body_has_no_gpu(first):
    assert gpu_values(first) == dict.fromkeys(GPU_KEYS)
    assert gpu_values([]) == dict.fromkeys(GPU_KEYS)


def test_failed_nvidia_smi_collection_is_no_gpu_not_zero():
    body = (
        "# TYPE nvidia_smi_last_collect_success gauge\n"
        "nvidia_smi_last_collect_success 0\n"
        "nvidia_smi_failed_scrapes_total 3\n"
        "nvidia_smi_command_exit_code 9\n"
    )
    assert gpu_values(parse_exposition(body)) == dict.fromkeys(GPU_KEYS)
    # Series left over next to a failed collection are not current either.
    stale = load("nvidia_gpu_exporter_1gpu.written.prom")
    stale = [s for s in stale if s.name != "nvidia_smi_last_collect_success"]
    stale.append(Sample("nvidia_smi_last_collect_success", {}, 0.0))
    assert gpu_values(stale) == dict.fromkeys(GPU_KEYS)


def test_dcgm_label_names_match_case_insensitively():
    def gpu(uuid_label: str, uuid: str, util: float) -> list[Sample]:
        labels = {"gpu": "0", uuid_label: uuid, "hostname": "h"}
        return [
            Sample("DCGM_FI_DEV_GPU_UTIL", labels, util),
            Sample("DCGM_FI_DEV_FB_USED", labels, 10.0),
            Sample("DCGM_FI_DEV_FB_FREE", labels, 30.0),
        ]

    samples = gpu("uuid", "GPU-AAA", 10.0) + gpu("Uuid", "gpu-bbb", 30.0)
    values = gpu_values(samples)
    assert values["gpus"] == 2  # distinct UUIDs, though both say gpu="0"
    assert values["gpu_util_pct"] == 20.0
    assert values["gpu_mem_pct"] == 25.0
    assert values["gpu_temp_c"] is None and values["gpu_power_w"] is None


def test_dcgm_memory_total_and_reserved():
    labels = {"gpu": "0", "UUID": "GPU-1"}
    with_total = [
        Sample("DCGM_FI_DEV_FB_USED", labels, 30.0),
        Sample("DCGM_FI_DEV_FB_FREE", labels, 60.0),
        Sample("DCGM_FI_DEV_FB_TOTAL", labels, 100.0),
    ]
    assert gpu_values(with_total)["gpu_mem_pct"] == 30.0
    with_reserved = [*with_total[:2], Sample("DCGM_FI_DEV_FB_RESERVED", labels, 10.0)]
    assert gpu_values(with_reserved)["gpu_mem_pct"] == 30.0
    used_only = with_total[:1]
    assert gpu_values(used_only)["gpu_mem_pct"] is None
    assert gpu_values(used_only)["gpus"] == 1


def test_dcgm_without_uuid_falls_back_to_the_index():
    samples = [
        Sample("DCGM_FI_DEV_GPU_TEMP", {"gpu": "0"}, 50.0),
        Sample("DCGM_FI_DEV_GPU_TEMP", {"gpu": "1"}, 55.0),
        Sample("DCGM_FI_DEV_GPU_TEMP", {"gpu": "1"}, 99.0),  # a repeat keeps the first
    ]
    assert gpu_values(samples) == {
        "gpus": 2,
        "gpu_util_pct": None,
        "gpu_temp_c": 55.0,
        "gpu_power_w": None,
        "gpu_mem_pct": None,
    }


def test_gpu_non_finite_values_are_ignored():
    labels = {"uuid": "u1"}
    samples = [
        Sample("nvidia_smi_utilization_gpu_ratio", labels, math.nan),
        Sample("nvidia_smi_temperature_gpu", labels, math.inf),
        Sample("nvidia_smi_power_draw_instant_watts", labels, 100.0),
    ]
    assert gpu_values(samples) == {
        "gpus": 1,
        "gpu_util_pct": None,
        "gpu_temp_c": None,
        "gpu_power_w": 100.0,  # newer drivers' instant power stands in for power.draw
        "gpu_mem_pct": None,
    }
