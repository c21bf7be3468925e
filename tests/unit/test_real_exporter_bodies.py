"""Exporter bodies recorded by third parties from live exporters (tests/fixtures/real/).

Each body goes through the functions the exporter source uses (parse_exposition, then
node_values / gpu_values), and every figure is checked against arithmetic done by hand on the
body (written out in the comments). The traps real fleets show (MIG instances, DCGM blank codes,
pod interfaces on Kubernetes nodes, node_exporter 1.9 families) each have their own test, on the
real body where it shows the trap, else on a small ``*.written.prom`` fixture.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import httpx
import pytest

from sources.base import make_client
from sources.exporter import ExporterFleetSource, Target
from sources.exposition import Sample, parse_exposition
from sources.figures import VIRTUAL_NET_DEVICES
from sources.node_metrics import gpu_values, node_values

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL = FIXTURES / "real"
EKS = "node_exporter_metrics.1.9.1-eks-t3medium-doc_trimmed.prom"
DCGM_T4 = "dcgm_exporter_metrics.eccd-t4-doc.prom"
DCGM_L40S = "dcgm_exporter_metrics.upcloud-uks-l40s-doc.prom"
SMI_H100 = "nvidia_gpu_exporter_metrics.ngx-golden-h100-80gb-590.48.01-load_trimmed.prom"
SMI_H200_MIG = "nvidia_gpu_exporter_metrics.ngx-golden-h200-mig-590.48.01-idle_trimmed.prom"
SMI_L40S = "nvidia_gpu_exporter_metrics.ngx-golden-l40s-595.80-idle_trimmed.prom"
GPU_BODIES = (DCGM_T4, DCGM_L40S, SMI_H100, SMI_H200_MIG, SMI_L40S)
NO_GPU = dict.fromkeys(("gpus", "gpu_util_pct", "gpu_temp_c", "gpu_power_w", "gpu_mem_pct"))
# The EKS body's own clock (node_time_seconds), so "now" is when it was scraped.
EKS_NOW = 1749373412.5602407


def real(name: str) -> list[Sample]:
    return parse_exposition((REAL / name).read_text(encoding="utf-8"))


def written(name: str) -> list[Sample]:
    return parse_exposition((FIXTURES / name).read_text(encoding="utf-8"))


def later(samples: list[Sample], **added: float) -> list[Sample]:
    """The same body a scrape later: bytes added to the named devices' rx and tx counters."""
    out = []
    for name, labels, value in samples:
        if name.startswith("node_network_") and labels.get("device") in added:
            value += added[labels["device"]]
        out.append(Sample(name, labels, value))
    return out


# --- one test per real body ---------------------------------------------------------------------


def test_dcgm_t4_body_without_help_or_type_lines():
    samples = real(DCGM_T4)
    assert len(samples) == 20  # 20 sample lines, no comment lines at all
    assert gpu_values(samples) == {
        "gpus": 1,  # one UUID: GPU-6d5c0ac5-...
        "gpu_util_pct": 91.0,  # DCGM_FI_DEV_GPU_UTIL 91
        "gpu_temp_c": 74.0,  # DCGM_FI_DEV_GPU_TEMP 74 (MEMORY_TEMP 0 is another figure)
        "gpu_power_w": pytest.approx(68.244),  # POWER_USAGE 68.244000
        # FB used 5120 of used + free + reserved = 5120 + 9791 + 447 = 15358 MiB: 33.3377 %
        "gpu_mem_pct": pytest.approx(100 * 5120 / 15358),
    }
    assert gpu_values(samples)["gpu_mem_pct"] == pytest.approx(33.3377, abs=1e-4)


def test_dcgm_l40s_body():
    samples = real(DCGM_L40S)
    assert len(samples) == 23
    assert gpu_values(samples) == {
        "gpus": 1,  # one UUID: GPU-5b4e07f6-...
        "gpu_util_pct": 0.0,  # GPU_UTIL 0: a real 0, not missing
        "gpu_temp_c": 32.0,
        "gpu_power_w": pytest.approx(35.686),
        "gpu_mem_pct": 0.0,  # FB used 0 of 0 + 45459 + 608 MiB
    }


def test_nvidia_gpu_exporter_h100_under_load():
    values = gpu_values(real(SMI_H100))
    assert values == {
        "gpus": 1,  # one uuid (masked as zeros, no GPU- prefix)
        "gpu_util_pct": 100.0,  # utilization_gpu_ratio 1 x 100 (gpu-burn)
        "gpu_temp_c": 59.0,  # temperature_gpu 59 (temperature_gpu_tlimit 26 is not it)
        "gpu_power_w": pytest.approx(631.95),  # power_draw_watts, not instant 625.68
        # memory used / total = 20780679168 / 85520809984 = 24.299 % (used + free != total)
        "gpu_mem_pct": pytest.approx(100 * 20780679168 / 85520809984),
    }
    assert values["gpu_mem_pct"] == pytest.approx(24.299, abs=1e-3)


def test_nvidia_gpu_exporter_h200_in_mig_mode_has_no_util():
    samples = real(SMI_H200_MIG)
    assert not [s for s in samples if s.name == "nvidia_smi_utilization_gpu_ratio"]
    assert gpu_values(samples) == {
        "gpus": 1,  # counted from its other series, not from utilization
        "gpu_util_pct": None,  # nvidia-smi says N/A in MIG mode: missing (shown "—"), not 0
        "gpu_temp_c": 28.0,
        "gpu_power_w": pytest.approx(78.28),  # power_draw_watts
        "gpu_mem_pct": pytest.approx(100 * 57671680 / 150754820096),  # 0.0383 %
    }


def test_nvidia_gpu_exporter_idle_l40s_reads_util_as_the_body_says():
    assert gpu_values(real(SMI_L40S)) == {
        "gpus": 1,
        # utilization_gpu_ratio 1 on an idle card: 100 %, exactly as the body says
        "gpu_util_pct": 100.0,
        "gpu_temp_c": 63.0,
        "gpu_power_w": pytest.approx(144.97),  # power_draw_watts (instant 127.67)
        "gpu_mem_pct": 0.0,  # used 0 of 48305799168 bytes
    }


def test_node_exporter_1_9_1_on_eks():
    samples = real(EKS)
    assert len(samples) == 60
    first = node_values(samples, now=EKS_NOW, previous=None)
    assert first["cpu_pct"] is None  # a rate: needs two scrapes
    assert first["net_rx_bps"] is None and first["net_tx_bps"] is None
    # 1 - MemAvailable / MemTotal = 1 - 3058581504 / 4037943296 = 24.254 %
    assert first["mem_pct"] == pytest.approx(100 * (1 - 3058581504 / 4037943296))
    assert first["mem_pct"] == pytest.approx(24.254, abs=1e-3)
    # "/" is xfs on /dev/nvme0n1p1: 1 - 17024630784 / 21462233088 = 20.676 %
    assert first["disk_pct"] == pytest.approx(100 * (1 - 17024630784 / 21462233088))
    assert first["disk_pct"] == pytest.approx(20.676, abs=1e-3)
    assert first["load1"] == 0.08
    # node_time_seconds - node_boot_time_seconds = 1749373412.5602407 - 1749363510 = 9902.56 s
    assert first["uptime_s"] == pytest.approx(9902.5602407, abs=1e-6)
    counters = first["counters"]
    assert counters["at"] == EKS_NOW
    # idle: 9591.35 + 9591.06; all modes: cpu0 9853.09 + cpu1 9854.38
    assert counters["cpu_idle_s"] == pytest.approx(19182.41)
    assert counters["cpu_total_s"] == pytest.approx(9853.09 + 9854.38)
    # physical only: eth0 + eth1; the five eni* pod interfaces and lo are left out
    assert counters["net_rx_bytes"] == 574105556 + 5041781  # 579147337
    assert counters["net_tx_bytes"] == 22850595 + 2640838  # 25491433
    assert gpu_values(samples) == NO_GPU

    # CPU since boot, against a zero baseline: 1 - 19182.41 / 19707.47 = 2.664 % busy
    since_boot = node_values(samples, now=EKS_NOW, previous={"cpu_idle_s": 0, "cpu_total_s": 0})
    assert since_boot["cpu_pct"] == pytest.approx(100 * (1 - 19182.41 / 19707.47))
    assert since_boot["cpu_pct"] == pytest.approx(2.664, abs=1e-3)

    # 10 s later eth0 moved 50,000 bytes each way: 5,000 B/s
    second = node_values(later(samples, eth0=50_000), now=EKS_NOW + 10, previous=counters)
    assert second["net_rx_bps"] == pytest.approx(5_000.0)
    assert second["net_tx_bps"] == pytest.approx(5_000.0)


# --- traps --------------------------------------------------------------------------------------


def test_dcgm_mig_instances_sum_memory_and_count_physical_gpus():
    samples = written("dcgm_exporter_mig.written.prom")
    assert len({s.labels["GPU_I_ID"] + s.labels["UUID"] for s in samples}) == 5  # 5 instances
    assert not [s for s in samples if s.name == "DCGM_FI_DEV_GPU_UTIL"]  # MIG omits it
    assert gpu_values(samples) == {
        "gpus": 2,  # two UUIDs (gpu 0: 3 instances, gpu 1: 2 instances)
        "gpu_util_pct": None,  # no utilization series at all: missing, not 0
        "gpu_temp_c": 47.0,  # the hotter GPU; each instance repeats its GPU's 41 or 47
        # one reading per GPU, not per instance: 210.5 + 180.25 (not 3 x 210.5 + 2 x 180.25)
        "gpu_power_w": pytest.approx(390.75),
        # used: (10000 + 5000 + 1000) + (30000 + 4000) = 50000 MiB;
        # total: used + free = 16000 + 54000 + 34000 + 46000 = 150000 MiB: 33.33 %
        "gpu_mem_pct": pytest.approx(100 * 50_000 / 150_000),
    }


def test_dcgm_mig_whole_gpu_memory_wins_and_repeats_are_not_summed():
    def fb(name: str, value: float, instance: str | None, pod: str = "") -> Sample:
        labels = {"gpu": "0", "UUID": "GPU-a", "device": "nvidia0", "pod": pod}
        if instance is not None:
            labels |= {"GPU_I_ID": instance, "GPU_I_PROFILE": "3g.40gb"}
        return Sample(name, labels, value)

    instances = [
        fb("DCGM_FI_DEV_FB_USED", 10.0, "1"),
        fb("DCGM_FI_DEV_FB_FREE", 30.0, "1"),
        fb("DCGM_FI_DEV_FB_USED", 10.0, "2"),
        fb("DCGM_FI_DEV_FB_FREE", 50.0, "2"),
    ]
    assert gpu_values(instances)["gpu_mem_pct"] == pytest.approx(20.0)  # 20 of 100
    # The same instance listed again for another pod (pod mapping) is not counted twice.
    repeated = [*instances, fb("DCGM_FI_DEV_FB_USED", 10.0, "1", pod="p2")]
    assert gpu_values(repeated)["gpu_mem_pct"] == pytest.approx(20.0)
    # A series for the whole GPU, where one is written, is the GPU's figure: 60 of 80.
    whole = [fb("DCGM_FI_DEV_FB_USED", 60.0, None), fb("DCGM_FI_DEV_FB_FREE", 20.0, None)]
    assert gpu_values(instances + whole)["gpu_mem_pct"] == pytest.approx(75.0)
    # An instance whose reading is a blank code leaves the GPU's memory missing, not partial.
    blank = [*instances[:3], fb("DCGM_FI_DEV_FB_FREE", 2147483634.0, "2")]
    assert gpu_values(blank)["gpu_mem_pct"] is None
    assert gpu_values(blank)["gpus"] == 1


def test_dcgm_gpu_count_does_not_depend_on_gpu_util():
    samples = [s for s in real(DCGM_T4) if s.name != "DCGM_FI_DEV_GPU_UTIL"]
    values = gpu_values(samples)
    assert values["gpus"] == 1
    assert values["gpu_util_pct"] is None
    assert values["gpu_temp_c"] == 74.0 and values["gpu_mem_pct"] == pytest.approx(
        33.3377, abs=1e-4
    )


def test_dcgm_without_uuid_counts_gpu_index_and_device():
    def temp(labels: dict[str, str], value: float) -> Sample:
        return Sample("DCGM_FI_DEV_GPU_TEMP", labels, value)

    samples = [
        temp({"gpu": "0", "device": "nvidia0"}, 50.0),
        temp({"gpu": "0", "device": "nvidia0", "GPU_I_ID": "1"}, 50.0),  # its MIG instance
        temp({"gpu": "1", "device": "nvidia1"}, 60.0),
        temp({"device": "nvidia2"}, 40.0),  # no index: the device name alone
    ]
    assert gpu_values(samples)["gpus"] == 3
    assert gpu_values(samples)["gpu_temp_c"] == 60.0
    assert gpu_values([temp({"Hostname": "h"}, 50.0)]) == NO_GPU  # no GPU label: not a GPU


def test_dcgm_blank_values_are_missing_never_averaged():
    samples = written("dcgm_exporter_blank_values.written.prom")
    # GPU 0 reads util 40, 55 °C, 150 W, FB 1000 used / 3000 free. GPU 1 reads only DCGM blank
    # codes and 2^32 - 1: util 4294967295, temp 9223372036854775794 (INT64_NOT_SUPPORTED),
    # power 140737488355330 (FP64_NOT_SUPPORTED), FB free 2147483634 (INT32_NOT_SUPPORTED),
    # FB used 9223372036854775792 (INT64_BLANK).
    assert gpu_values(samples) == {
        "gpus": 2,  # both GPUs are there; one cannot report
        "gpu_util_pct": 40.0,  # GPU 0 only: 40, not (40 + 4294967295) / 2 clamped to 100
        "gpu_temp_c": 55.0,  # not 9.2e18
        "gpu_power_w": 150.0,  # not 150 + 1.4e14
        "gpu_mem_pct": 25.0,  # GPU 0 only: 1000 / (1000 + 3000)
    }
    only_blanks = [s for s in samples if s.labels["gpu"] == "1"]
    assert gpu_values(only_blanks) == {**NO_GPU, "gpus": 1}


@pytest.mark.parametrize(
    ("name", "value", "figure"),
    [
        ("nvidia_smi_utilization_gpu_ratio", 4294967295.0, "gpu_util_pct"),
        ("nvidia_smi_utilization_gpu_ratio", 1.5, "gpu_util_pct"),  # 150 %
        ("nvidia_smi_temperature_gpu", 4294967295.0, "gpu_temp_c"),
        ("nvidia_smi_temperature_gpu", -273.0, "gpu_temp_c"),
        ("nvidia_smi_power_draw_watts", 4294967.295, "gpu_power_w"),  # NVML's mW 2^32 - 1
        ("nvidia_smi_power_draw_watts", -1.0, "gpu_power_w"),
        ("DCGM_FI_DEV_GPU_UTIL", 2147483632.0, "gpu_util_pct"),  # DCGM_INT32_BLANK
        ("DCGM_FI_DEV_GPU_TEMP", 2147483635.0, "gpu_temp_c"),  # DCGM_INT32_NOT_PERMISSIONED
        ("DCGM_FI_DEV_POWER_USAGE", 140737488355328.0, "gpu_power_w"),  # DCGM_FP64_BLANK
        ("DCGM_FI_DEV_GPU_UTIL", math.nan, "gpu_util_pct"),
    ],
)
def test_a_value_outside_its_range_is_missing(name: str, value: float, figure: str):
    labels = {"uuid": "GPU-x"} if name.startswith("nvidia") else {"UUID": "GPU-x", "gpu": "0"}
    values = gpu_values([Sample(name, labels, value)])
    assert values["gpus"] == 1
    assert values[figure] is None


def test_range_edges_are_readings():
    labels = {"UUID": "GPU-x", "gpu": "0"}
    samples = [
        Sample("DCGM_FI_DEV_GPU_UTIL", labels, 100.0),
        Sample("DCGM_FI_DEV_GPU_TEMP", labels, 0.0),
        Sample("DCGM_FI_DEV_POWER_USAGE", labels, 0.0),
        Sample("DCGM_FI_DEV_FB_USED", labels, 0.0),
        Sample("DCGM_FI_DEV_FB_FREE", labels, 81920.0),
    ]
    assert gpu_values(samples) == {
        "gpus": 1,
        "gpu_util_pct": 100.0,
        "gpu_temp_c": 0.0,
        "gpu_power_w": 0.0,
        "gpu_mem_pct": 0.0,
    }
    # A blank power.draw gives way to the GPU's instant power, as a missing one does.
    smi = [
        Sample("nvidia_smi_power_draw_watts", {"uuid": "u"}, 4294967.295),
        Sample("nvidia_smi_power_draw_instant_watts", {"uuid": "u"}, 88.5),
    ]
    assert gpu_values(smi)["gpu_power_w"] == 88.5


def test_eks_pod_interfaces_are_not_counted_in_rates():
    samples = real(EKS)
    previous = node_values(samples, now=EKS_NOW, previous=None)["counters"]
    # 10 s later: eth0 +100,000 and eth1 +20,000 bytes each way; the pods' eni* interfaces
    # moved 1,000,000 bytes each (traffic that crossed eth0/eth1 already); lo 5,000,000.
    moved = {f"eni{suffix}": 1_000_000 for suffix in ("2738a7062a8", "859fc8c2dd6")}
    body = later(samples, eth0=100_000, eth1=20_000, lo=5_000_000, **moved)
    values = node_values(body, now=EKS_NOW + 10, previous=previous)
    # (100,000 + 20,000) / 10 s = 12,000 B/s, not (120,000 + 2,000,000 + 5,000,000) / 10
    assert values["net_rx_bps"] == pytest.approx(12_000.0)
    assert values["net_tx_bps"] == pytest.approx(12_000.0)


@pytest.mark.parametrize(
    "device",
    [
        "lo",
        "veth1a2b3c",
        "eni2738a7062a8",
        "cali5f2e0c1d9ab",
        "cni0",
        "flannel.1",
        "docker0",
        "br-3f9a1c2d4e5b",
        "lxc12ab34cd",
        "cilium_host",
        "vxlan.calico",
        "tunl0",
        "kube-ipvs0",
        "nodelocaldns",
        "ifb0",
    ],
)
def test_virtual_devices_match_the_exclusion_pattern(device: str):
    assert re.fullmatch(VIRTUAL_NET_DEVICES, device)


@pytest.mark.parametrize("device", ["eth0", "eth1", "ens5", "enp0s3", "eno1", "wlan0", "bond0"])
def test_physical_devices_do_not_match_the_exclusion_pattern(device: str):
    assert re.fullmatch(VIRTUAL_NET_DEVICES, device) is None


def test_exclusion_pattern_means_the_same_in_promql():
    # PromQL writes it inside "..." with Go string escapes: no backslash or quote to escape.
    assert "\\" not in VIRTUAL_NET_DEVICES and '"' not in VIRTUAL_NET_DEVICES
    # Anchored in PromQL, so only a whole name matches here too: "lo" is not "loop0" or "xlo".
    assert re.fullmatch(VIRTUAL_NET_DEVICES, "loop0") is None
    assert re.fullmatch(VIRTUAL_NET_DEVICES, "xlo") is None


def test_node_exporter_1_9_new_families_are_ignored():
    samples = written("node_exporter_1.9_mount_info.written.prom")
    names = {s.name for s in samples}
    assert {"node_filesystem_mount_info", "node_filesystem_device_error"} <= names
    values = node_values(samples, now=EKS_NOW, previous=None)
    # "/" is ext4: 1 - 3e10 / 1.2e11 = 75 %. mount_info's mountpoint="/" (value 1) is not a
    # size, and the NFS mount with device_error="permission denied" has no size at all.
    assert values["disk_pct"] == pytest.approx(75.0)
    assert values["mem_pct"] is None and values["load1"] is None  # not in this body: None
    assert gpu_values(samples) == NO_GPU
    # The real 1.9.1 body: device_error="" on every filesystem series; "/" still pairs up.
    assert all(
        "device_error" in s.labels for s in real(EKS) if s.name.startswith("node_filesystem")
    )


def test_items_out_of_scope_are_skipped_not_refused():
    # nvidia_gpu_exporter series about the exporter or its process list carry no uuid
    # (nvidia_smi_compute_apps_last_collect_success): not a GPU, and no reason to refuse.
    h100 = real(SMI_H100)
    unlabelled = [s for s in h100 if s.name.startswith("nvidia_smi_") and "uuid" not in s.labels]
    assert {s.name for s in unlabelled} >= {"nvidia_smi_compute_apps_last_collect_success"}
    assert gpu_values(unlabelled) == NO_GPU
    # Per-process series (pid, process_name) name the same uuid: still one GPU.
    apps = [s for s in h100 if s.name.startswith("nvidia_smi_compute_app_")]
    assert len(apps) == 6 and gpu_values(apps)["gpus"] == 1
    # The EKS body's 10 tmpfs mounts (8 pod sandbox shm, /run, /run/user/0) are skipped;
    # "/" alone gives the disk figure.
    fs = [s for s in real(EKS) if s.name == "node_filesystem_size_bytes"]
    assert sum(s.labels["fstype"] == "tmpfs" for s in fs) == 10
    assert node_values(fs + [s for s in real(EKS) if "avail" in s.name], now=0, previous=None)[
        "disk_pct"
    ] == pytest.approx(20.676, abs=1e-3)


@pytest.mark.parametrize("gpu_body", GPU_BODIES)
async def test_every_real_body_scrapes_up_through_the_exporter_source(gpu_body: str) -> None:
    bodies = {9100: (REAL / EKS).read_bytes(), 9400: (REAL / gpu_body).read_bytes()}
    headers = {"content-type": "text/plain; version=0.0.4; charset=utf-8"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=bodies[request.url.port])

    node = Target(
        name="n", url="http://127.0.0.1:9100/metrics", gpu_url="http://127.0.0.1:9400/metrics"
    )
    fleet = ExporterFleetSource(targets=lambda: [node], timeout=2.0, clock=lambda: EKS_NOW)
    async with make_client(transport=httpx.MockTransport(handler)) as client:
        [sample] = (await fleet.fetch(client)).nodes
    assert sample.up and sample.error is None
    expected = gpu_values(real(gpu_body))
    assert {key: getattr(sample, key) for key in NO_GPU} == expected
    assert sample.gpus == 1
    assert sample.disk_pct == pytest.approx(20.676, abs=1e-3)
    assert sample.counters["net_rx_bytes"] == 579147337
