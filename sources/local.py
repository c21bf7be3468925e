"""This machine as a fleet of one: psutil for the host, NVML for NVIDIA GPUs when present.

The same counters as node_exporter are kept (CPU seconds, network bytes), so CPU % and network
rates come from the previous stored sample exactly as for scraped nodes. No NVIDIA driver means no
GPU values (None), never zeros.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from sources.base import PollContext, SourceDefaults
from sources.models import NodeSample, Reading
from sources.text import safe_text

log = logging.getLogger(__name__)


def _rate(now: dict[str, float], before: dict[str, float] | None, key: str) -> float | None:
    if not before or key not in now or key not in before or "at" not in before:
        return None
    elapsed = now["at"] - before["at"]
    delta = now[key] - before[key]
    if elapsed <= 0 or delta < 0:  # clock went back or the counter reset: no guess
        return None
    return delta / elapsed


def host_values(previous: dict[str, float] | None, now: float) -> dict[str, Any]:
    """CPU, memory, root disk, load, uptime and network figures of this machine."""
    cpu = psutil.cpu_times()
    busy_fields = [v for k, v in cpu._asdict().items() if k not in ("guest", "guest_nice")]
    net = psutil.net_io_counters(pernic=True)
    counters = {
        "at": now,
        "cpu_idle_s": cpu.idle + getattr(cpu, "iowait", 0.0),
        "cpu_total_s": sum(busy_fields),
        "net_rx_bytes": float(sum(v.bytes_recv for k, v in net.items() if k != "lo")),
        "net_tx_bytes": float(sum(v.bytes_sent for k, v in net.items() if k != "lo")),
    }
    cpu_pct = None
    total = _rate(counters, previous, "cpu_total_s")
    idle = _rate(counters, previous, "cpu_idle_s")
    if total and idle is not None:
        cpu_pct = max(0.0, min(100.0, (1 - idle / total) * 100))
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage("/")
    return {
        "cpu_pct": cpu_pct,
        "mem_pct": (1 - memory.available / memory.total) * 100 if memory.total else None,
        "disk_pct": (1 - disk.free / disk.total) * 100 if disk.total else None,
        "load1": os.getloadavg()[0],
        "uptime_s": time.time() - psutil.boot_time(),
        "net_rx_bps": _rate(counters, previous, "net_rx_bytes"),
        "net_tx_bps": _rate(counters, previous, "net_tx_bytes"),
        "counters": counters,
    }


def nvml_values() -> dict[str, Any]:
    """Mean utilization, hottest temperature, summed power and memory use across GPUs."""
    try:
        import pynvml
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return {}  # no driver: no GPU values at all
    try:
        count = pynvml.nvmlDeviceGetCount()
        if count == 0:
            return {}
        utils, temps, watts, used, total = [], [], [], 0, 0
        for index in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            utils.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            temps.append(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
            watts.append(pynvml.nvmlDeviceGetPowerUsage(handle) / 1000)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            used += memory.used
            total += memory.total
        return {
            "gpus": count,
            "gpu_util_pct": sum(utils) / count,
            "gpu_temp_c": max(temps),
            "gpu_power_w": sum(watts),
            "gpu_mem_pct": used / total * 100 if total else None,
        }
    except pynvml.NVMLError as exc:
        log.warning("NVML: %s", exc)
        return {}
    finally:
        pynvml.nvmlShutdown()


@dataclass
class LocalSource(SourceDefaults):
    """This machine; makes no network request."""

    name: str = "local"
    uses_network: bool = False
    counter_kind: str = "local"
    node: str = field(default_factory=lambda: safe_text(socket.gethostname() or "localhost"))
    previous: dict[str, dict[str, float]] = field(default_factory=dict)

    def prepare(self, context: PollContext) -> None:
        """Take the previous counters the poller keeps for this source."""
        self.previous = context.previous

    def _sample(self) -> NodeSample:
        values = host_values(self.previous.get(self.node), time.time())
        return NodeSample(node=self.node, source_kind="local", up=True, **values, **nvml_values())

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """One sample, read off the event loop (psutil and NVML are blocking calls)."""
        return Reading(nodes=[await asyncio.to_thread(self._sample)])
