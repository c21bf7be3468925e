"""From parsed exporter samples to the per-node figures of the fleet view.

:func:`node_values` reads a node_exporter body, :func:`gpu_values` a dcgm-exporter or
nvidia_gpu_exporter body. Figures that the body does not carry are None, never 0; so are NaN
and ±Inf. Rates come from counters: this scrape's totals against the ``counters`` the previous
scrape returned, and a counter that went backwards (a reboot, an exporter restart) gives None
for that scrape rather than a guess.

Real GPU bodies carry values that are not readings: DCGM's "blank" codes for a field the GPU
cannot report (2^63 - 14 and its neighbours, or 2^31 - 16 ...) and the odd 2^32 - 1. Each GPU
figure has a documented plausible range (``_GPU_RANGES``) and DCGM's blank codes are refused by
name, so such a value is missing for that GPU and never averaged or summed into the node.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from sources.exposition import Sample
from sources.figures import (
    GPU_MEMORY_MAX_MIB,
    GPU_POWER_RANGE_W,
    GPU_TEMP_RANGE_C,
    GPU_UTIL_RANGE,
    VIRTUAL_NET_DEVICES,
)

__all__ = ["gpu_values", "node_values"]

# Filesystems that are not the machine's disk (container layers, RAM, snap images, namespaces).
_SKIP_FSTYPES = frozenset({"tmpfs", "overlay", "squashfs", "nsfs"})
# Loopback and pod/container interfaces: their traffic also crosses a physical one.
_VIRTUAL_NET = re.compile(VIRTUAL_NET_DEVICES)
_NODE_GAUGES = frozenset(
    {
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "node_time_seconds",
        "node_boot_time_seconds",
    }
)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _pct(value: float | None) -> float | None:
    """Clamp a percentage to 0-100; None stays None."""
    if value is None or not math.isfinite(value):
        return None
    return min(100.0, max(0.0, value))


def _sum(values: Iterable[float]) -> float | None:
    """Sum of finite values; None when there are none or any is not finite."""
    total = 0.0
    seen = False
    for value in values:
        if not math.isfinite(value):
            return None
        total += value
        seen = True
    return total if seen else None


def _previous(previous: dict[str, float] | None, key: str) -> float | None:
    """A finite number stored by the previous scrape (it went through JSON: trust no type)."""
    value = previous.get(key) if previous else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _rate(
    now: float, current: float | None, previous: dict[str, float] | None, key: str
) -> float | None:
    """Per-second increase of a counter since the previous scrape.

    None on the first scrape, when no time has passed, or when the counter went backwards
    (a reset: reboot, exporter restart, an interface that went away).
    """
    before = _previous(previous, key)
    at = _previous(previous, "at")
    if current is None or before is None or at is None:
        return None
    elapsed = now - at
    if elapsed <= 0 or current < before:
        return None
    return (current - before) / elapsed


def node_values(
    samples: list[Sample], *, now: float, previous: dict[str, float] | None
) -> dict[str, Any]:
    """Health and load of one node from a node_exporter scrape.

    Args:
        samples: The parsed body.
        now: When the body was scraped (Unix seconds); rates are per second of this clock.
        previous: The ``counters`` this function returned for the same node last time, or None.

    Returns:
        ``cpu_pct`` (0-100 across all cores: 1 - Δidle/Δall of ``node_cpu_seconds_total``),
        ``mem_pct`` (1 - MemAvailable/MemTotal), ``disk_pct`` (the ``/`` filesystem:
        1 - avail/size), ``load1``, ``uptime_s``, ``net_rx_bps`` and ``net_tx_bps`` (bytes per
        second summed over the devices that ``VIRTUAL_NET_DEVICES`` does not match: no ``lo``,
        no pod veths), each None when it cannot be known, and
        ``counters``: the totals to pass back as ``previous`` next time (only those present).
    """
    gauges: dict[str, float] = {}
    cpu_idle: list[float] = []
    cpu_all: list[float] = []
    net_rx: list[float] = []
    net_tx: list[float] = []
    root: list[tuple[dict[str, str], str, float]] = []
    for name, labels, value in samples:
        if name == "node_cpu_seconds_total":
            cpu_all.append(value)
            if labels.get("mode") == "idle":
                cpu_idle.append(value)
        elif name == "node_network_receive_bytes_total":
            if _VIRTUAL_NET.fullmatch(labels.get("device", "")) is None:
                net_rx.append(value)
        elif name == "node_network_transmit_bytes_total":
            if _VIRTUAL_NET.fullmatch(labels.get("device", "")) is None:
                net_tx.append(value)
        elif name in ("node_filesystem_size_bytes", "node_filesystem_avail_bytes"):
            if labels.get("mountpoint") == "/" and labels.get("fstype") not in _SKIP_FSTYPES:
                root.append((labels, name, value))
        elif name in _NODE_GAUGES:
            gauges.setdefault(name, value)

    counters: dict[str, float] = {"at": now}
    idle_s = _sum(cpu_idle)
    total_s = _sum(cpu_all)
    if idle_s is not None and total_s is not None:
        counters["cpu_idle_s"] = idle_s
        counters["cpu_total_s"] = total_s
    rx = _sum(net_rx)
    tx = _sum(net_tx)
    if rx is not None:
        counters["net_rx_bytes"] = rx
    if tx is not None:
        counters["net_tx_bytes"] = tx

    return {
        "cpu_pct": _cpu_pct(idle_s, total_s, previous),
        "mem_pct": _used_pct(
            gauges.get("node_memory_MemAvailable_bytes"), gauges.get("node_memory_MemTotal_bytes")
        ),
        "disk_pct": _root_disk_pct(root),
        "load1": _finite_or_none(gauges.get("node_load1")),
        "uptime_s": _uptime(gauges.get("node_time_seconds"), gauges.get("node_boot_time_seconds")),
        "net_rx_bps": _rate(now, rx, previous, "net_rx_bytes"),
        "net_tx_bps": _rate(now, tx, previous, "net_tx_bytes"),
        "counters": counters,
    }


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None else _finite(value)


def _cpu_pct(
    idle_s: float | None, total_s: float | None, previous: dict[str, float] | None
) -> float | None:
    idle_before = _previous(previous, "cpu_idle_s")
    total_before = _previous(previous, "cpu_total_s")
    if idle_s is None or total_s is None or idle_before is None or total_before is None:
        return None
    d_idle = idle_s - idle_before
    d_total = total_s - total_before
    # Either sum going backwards is a reset (reboot, CPU taken offline): no figure this time.
    if d_idle < 0 or d_total <= 0:
        return None
    return _pct((1.0 - d_idle / d_total) * 100.0)


def _used_pct(available: float | None, total: float | None) -> float | None:
    """1 - available/total, as a percentage; None without both or with a total of 0."""
    if available is None or total is None:
        return None
    if not math.isfinite(available) or not math.isfinite(total) or total <= 0:
        return None
    return _pct((1.0 - available / total) * 100.0)


def _root_disk_pct(root: list[tuple[dict[str, str], str, float]]) -> float | None:
    # Pair size and avail by their full label set; if / is listed more than once, take the
    # largest filesystem (the real disk rather than a small overlay of it).
    sizes: dict[tuple[tuple[str, str], ...], float] = {}
    avails: dict[tuple[tuple[str, str], ...], float] = {}
    for labels, name, value in root:
        key = tuple(sorted(labels.items()))
        target = sizes if name == "node_filesystem_size_bytes" else avails
        target.setdefault(key, value)
    best: tuple[float, float] | None = None
    for key, size in sizes.items():
        avail = avails.get(key)
        if avail is None or not math.isfinite(size) or not math.isfinite(avail) or size <= 0:
            continue
        if best is None or size > best[0]:
            best = (size, avail)
    return None if best is None else _used_pct(best[1], best[0])


def _uptime(now_s: float | None, boot_s: float | None) -> float | None:
    if now_s is None or boot_s is None or not math.isfinite(now_s) or not math.isfinite(boot_s):
        return None
    uptime = now_s - boot_s
    return uptime if uptime >= 0 else None


# --- GPUs ---------------------------------------------------------------------------------------

_DCGM_PREFIX = "DCGM_FI_"
_SMI_PREFIX = "nvidia_smi_"
# nvidia_gpu_exporter series about the exporter itself, not a GPU (they carry no uuid).
_SMI_EXPORTER = frozenset(
    {
        "nvidia_smi_last_collect_success",
        "nvidia_smi_last_collect_success_timestamp_seconds",
        "nvidia_smi_last_collect_duration_seconds",
        "nvidia_smi_failed_scrapes_total",
        "nvidia_smi_command_exit_code",
    }
)
# Metric -> per-GPU figure. Utilization, temperature and power share units across exporters
# (nvidia_smi's ratio is scaled to %); memory keeps each exporter's unit (dcgm MiB, nvidia_smi
# bytes), so its figures are kept apart and only ever divided within one exporter.
_DCGM_FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": "util",
    "DCGM_FI_DEV_GPU_TEMP": "temp",
    "DCGM_FI_DEV_POWER_USAGE": "power",
    "DCGM_FI_DEV_FB_USED": "dcgm_used",
    "DCGM_FI_DEV_FB_FREE": "dcgm_free",
    "DCGM_FI_DEV_FB_RESERVED": "dcgm_reserved",
    "DCGM_FI_DEV_FB_TOTAL": "dcgm_total",
}
_SMI_FIELDS = {
    "nvidia_smi_utilization_gpu_ratio": "util",
    "nvidia_smi_temperature_gpu": "temp",
    "nvidia_smi_power_draw_watts": "power",
    # Newer drivers add these next to (or instead of) power.draw.
    "nvidia_smi_power_draw_instant_watts": "power_instant",
    "nvidia_smi_power_draw_average_watts": "power_average",
    "nvidia_smi_memory_used_bytes": "smi_used",
    "nvidia_smi_memory_free_bytes": "smi_free",
    "nvidia_smi_memory_total_bytes": "smi_total",
}
_SMI_RATIOS = frozenset({"nvidia_smi_utilization_gpu_ratio"})
# Figures read per memory slice: dcgm-exporter on a MIG-partitioned GPU writes one series per
# GPU instance under the GPU's UUID, each with that instance's share of the memory.
_MEMORY_FIELDS = frozenset(
    {"dcgm_used", "dcgm_free", "dcgm_reserved", "dcgm_total", "smi_used", "smi_free", "smi_total"}
)
_INSTANCE_LABEL = "gpu_i_id"  # dcgm-exporter's GPU_I_ID, folded
_WHOLE_GPU = ""

# Plausible range of each per-GPU figure after unit conversion (sources.figures says why);
# dcgm counts memory in MiB, nvidia_smi in bytes.
_GPU_RANGES: dict[str, tuple[float, float]] = {
    "util": GPU_UTIL_RANGE,
    "temp": GPU_TEMP_RANGE_C,
    "power": GPU_POWER_RANGE_W,
    "power_instant": GPU_POWER_RANGE_W,
    "power_average": GPU_POWER_RANGE_W,
    **dict.fromkeys(
        ("dcgm_used", "dcgm_free", "dcgm_reserved", "dcgm_total"), (0.0, GPU_MEMORY_MAX_MIB)
    ),
    **dict.fromkeys(("smi_used", "smi_free", "smi_total"), (0.0, GPU_MEMORY_MAX_MIB * 2**20)),
}
# DCGM's "no value" codes (dcgm_structs.h): DCGM_INT32_BLANK 0x7ffffff0 and NOT_FOUND,
# NOT_SUPPORTED, NOT_PERMISSIONED after it; DCGM_INT64_BLANK 0x7ffffffffffffff0 (and +1..+3,
# e.g. 9223372036854775794); DCGM_FP64_BLANK 2^47 (and +1..+3). Every int64 code parses to the
# float 2^63, above 2^47, so one bound catches the 64-bit ones. Refused even where a range
# would already catch them, so a wider range cannot let them through.
_DCGM_INT32_BLANKS = frozenset(float(0x7FFFFFF0 + step) for step in range(4))
_DCGM_FP64_BLANK = 140737488355328.0


def _plausible(field: str, value: float, dcgm: bool) -> bool:
    """Whether ``value`` can be a reading of ``field`` (not NaN, ±Inf, a sentinel or a glitch)."""
    if dcgm and (value in _DCGM_INT32_BLANKS or value >= _DCGM_FP64_BLANK):
        return False
    low, high = _GPU_RANGES[field]
    return low <= value <= high  # False for NaN too


_NO_GPU: dict[str, Any] = {
    "gpus": None,
    "gpu_util_pct": None,
    "gpu_temp_c": None,
    "gpu_power_w": None,
    "gpu_mem_pct": None,
}


def _gpu_id(folded: dict[str, str], dcgm: bool) -> str | None:
    """A physical GPU's identity across both exporters: its UUID without ``GPU-``, lower case.

    ``folded`` is the label set with lower-case names (dcgm-exporter writes ``UUID``,
    ``Hostname`` or ``hostname`` depending on the release). Without a UUID, dcgm's ``gpu`` index
    and ``device`` name together stand in. The GPU instances of a MIG GPU share its UUID, so
    they are one GPU here. A series with none of these labels is not about one GPU (an
    nvidia_smi series without ``uuid`` is about the exporter), so it is left out, not refused.
    """
    uuid = folded.get("uuid", "").strip().lower()
    if uuid:
        return uuid[4:] if uuid.startswith("gpu-") else uuid
    if not dcgm:
        return None
    index = folded.get("gpu", "")
    device = folded.get("device", "")
    if index or device:
        return f"gpu={index};device={device}"
    return None


def gpu_values(samples: list[Sample]) -> dict[str, Any]:
    """GPU figures of one node from a dcgm-exporter or nvidia_gpu_exporter body.

    A body with no GPU series (a node_exporter body, or nvidia_gpu_exporter whose last
    collection failed and so removed them) gives None for every figure, not 0. So does
    ``nvidia_smi_last_collect_success 0``: whatever series remain are not current.

    A GPU is counted from any of its series, so a MIG GPU without a utilization series still
    counts; its utilization is then missing. Memory of the instances of a MIG GPU (dcgm's
    ``GPU_I_ID``) is summed per GPU, unless a series for the whole GPU is there too. Other
    figures are the GPU's own and repeat on each instance, so the first is kept. A value
    outside its plausible range, or a DCGM blank code, is missing for that GPU.

    Returns:
        ``gpus`` (distinct physical GPUs), ``gpu_util_pct`` (mean), ``gpu_temp_c`` (highest),
        ``gpu_power_w`` (sum), ``gpu_mem_pct`` (used of total memory, over the GPUs that
        report both), each None when unknown.
    """
    per_gpu: dict[str, dict[str, float]] = {}
    # GPU -> memory figure -> instance id (_WHOLE_GPU without one) -> value.
    memory_parts: dict[str, dict[str, dict[str, float]]] = {}
    collect_failed = False
    for name, labels, value in samples:
        if name.startswith(_DCGM_PREFIX):
            dcgm = True
            field = _DCGM_FIELDS.get(name)
        elif name.startswith(_SMI_PREFIX):
            if name in _SMI_EXPORTER:
                collect_failed |= name == "nvidia_smi_last_collect_success" and value == 0
                continue
            dcgm = False
            field = _SMI_FIELDS.get(name)
        else:
            continue
        folded = {key.lower(): item for key, item in labels.items()}
        gpu = _gpu_id(folded, dcgm)
        if gpu is None:
            continue
        figures = per_gpu.setdefault(gpu, {})
        if field is None:
            continue
        if name in _SMI_RATIOS:
            value *= 100.0
        plausible = _plausible(field, value, dcgm)
        if field in _MEMORY_FIELDS:
            # The first series of each instance wins: with Kubernetes pod mapping the same
            # GPU (or instance) can be listed once per pod. An instance without a reading
            # (NaN) leaves the GPU's figure missing rather than a partial sum.
            parts = memory_parts.setdefault(gpu, {}).setdefault(field, {})
            parts.setdefault(
                folded.get(_INSTANCE_LABEL, _WHOLE_GPU), value if plausible else math.nan
            )
        elif plausible:
            figures.setdefault(field, value)

    if not per_gpu or collect_failed:
        return dict(_NO_GPU)

    for gpu, fields in memory_parts.items():
        for field, parts in fields.items():
            whole = parts.get(_WHOLE_GPU)
            total = whole if whole is not None else sum(parts.values())
            if not math.isnan(total):
                per_gpu[gpu][field] = total

    utils: list[float] = []
    temps: list[float] = []
    powers: list[float] = []
    mem_used = 0.0
    mem_total = 0.0
    for figures in per_gpu.values():
        if "util" in figures:
            utils.append(figures["util"])
        if "temp" in figures:
            temps.append(figures["temp"])
        for key in ("power", "power_instant", "power_average"):
            if key in figures:
                powers.append(figures[key])
                break
        memory = _gpu_memory(figures, "dcgm") or _gpu_memory(figures, "smi")
        if memory is not None:
            mem_used += memory[0]
            mem_total += memory[1]

    return {
        "gpus": len(per_gpu),
        "gpu_util_pct": _pct(sum(utils) / len(utils)) if utils else None,
        "gpu_temp_c": max(temps) if temps else None,
        "gpu_power_w": sum(powers) if powers else None,
        "gpu_mem_pct": _pct(mem_used / mem_total * 100.0) if mem_total > 0 else None,
    }


def _gpu_memory(figures: dict[str, float], source: str) -> tuple[float, float] | None:
    """(used, total) from one exporter: its total, or used + free (+ reserved, dcgm)."""
    used = figures.get(f"{source}_used")
    if used is None:
        return None
    total = figures.get(f"{source}_total")
    if total is None:
        free = figures.get(f"{source}_free")
        if free is None:
            return None
        total = used + free + figures.get(f"{source}_reserved", 0.0)
    if total <= 0 or used < 0:
        return None
    return used, total
