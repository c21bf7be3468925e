"""The per-node figures a fleet sample carries: plain names, no pydantic.

The cache's readers (and so the first frame of the TUI) need only these names, not the models.
"""

from __future__ import annotations

NODE_VALUE_FIELDS = (
    "cpu_pct",
    "mem_pct",
    "disk_pct",
    "load1",
    "uptime_s",
    "net_rx_bps",
    "net_tx_bps",
    "gpus",
    "gpu_util_pct",
    "gpu_temp_c",
    "gpu_power_w",
    "gpu_mem_pct",
)
"""The per-node figures, in the order of the cache columns and the fleet export."""
