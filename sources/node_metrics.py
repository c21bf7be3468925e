"""From parsed exporter samples to the per-node figures of the fleet view.

:func:`node_values` reads a node_exporter body, :func:`gpu_values` a dcgm-exporter or
nvidia_gpu_exporter body (reference/apis.md §6.1-6.4). Figures that the body does not carry are
None, never 0; so are NaN and ±Inf. Rates come from counters: this scrape's totals against the
``counters`` the previous scrape returned, and a counter that went backwards (a reboot, an
exporter restart) gives None for that scrape rather than a guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sources.exposition import Sample

__all__ = ["gpu_values", "node_values"]

# Filesystems that are not the machine's disk (container layers, RAM, snap images, namespaces).
_SKIP_FSTYPES = frozenset({"tmpfs", "overlay", "squashfs", "nsfs"})
_LOOPBACK = "lo"
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
        second summed over devices other than ``lo``), each None when it cannot be known, and
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
            if labels.get("device") != _LOOPBACK:
                net_rx.append(value)
        elif name == "node_network_transmit_bytes_total":
            if labels.get("device") != _LOOPBACK:
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
_NO_GPU: dict[str, Any] = {
    "gpus": None,
    "gpu_util_pct": None,
    "gpu_temp_c": None,
    "gpu_power_w": None,
    "gpu_mem_pct": None,
}


def _gpu_id(labels: dict[str, str], dcgm: bool) -> str | None:
    """A GPU's identity across both exporters: its UUID without ``GPU-``, lower case.

    Label names are matched case-insensitively (dcgm-exporter writes ``UUID``, ``Hostname`` or
    ``hostname`` depending on the release). Without a UUID, dcgm's ``gpu`` index or ``device``
    name stands in; an nvidia_smi series without ``uuid`` is not about one GPU.
    """
    folded = {key.lower(): value for key, value in labels.items()}
    uuid = folded.get("uuid", "").strip().lower()
    if uuid:
        return uuid[4:] if uuid.startswith("gpu-") else uuid
    if not dcgm:
        return None
    if folded.get("gpu"):
        return "index:" + folded["gpu"]
    if folded.get("device"):
        return "device:" + folded["device"]
    return None


def gpu_values(samples: list[Sample]) -> dict[str, Any]:
    """GPU figures of one node from a dcgm-exporter or nvidia_gpu_exporter body.

    A body with no GPU series (a node_exporter body, or nvidia_gpu_exporter whose last
    collection failed and so removed them) gives None for every figure, not 0. So does
    ``nvidia_smi_last_collect_success 0``: whatever series remain are not current.

    Returns:
        ``gpus`` (distinct GPUs), ``gpu_util_pct`` (mean), ``gpu_temp_c`` (highest),
        ``gpu_power_w`` (sum), ``gpu_mem_pct`` (used of total memory, over the GPUs that
        report both), each None when unknown.
    """
    per_gpu: dict[str, dict[str, float]] = {}
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
        gpu = _gpu_id(labels, dcgm)
        if gpu is None:
            continue
        figures = per_gpu.setdefault(gpu, {})
        if field is not None and math.isfinite(value):
            figures.setdefault(field, value * 100.0 if name in _SMI_RATIOS else value)

    if not per_gpu or collect_failed:
        return dict(_NO_GPU)

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
