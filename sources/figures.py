"""The per-node figures a fleet sample carries, and what they leave out: plain names, no pydantic.

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

VIRTUAL_NET_DEVICES = (
    "lo|veth.*|eni.*|cali.*|cni.*|flannel.*|docker.*|br-.*|virbr.*|cilium_.*|lxc.*"
    "|vxlan.*|tunl.*|kube-ipvs.*|nodelocaldns|ifb.*"
)
"""Network devices that ``net_rx_bps``/``net_tx_bps`` do not count, as one regex.

Loopback and the virtual devices of containers and Kubernetes (pod veths: ``veth*``, AWS VPC
CNI ``eni*``, Calico ``cali*``, ``cni0``, ``flannel.1``, ``docker0``/``br-*``/``virbr*`` bridges,
Cilium ``lxc*``/``cilium_*``, overlay tunnels, kube-proxy's ``kube-ipvs0``, ``ifb*`` mirrors): their
bytes also cross a physical interface, so counting them would add the same traffic twice.
The pattern is meant fully anchored and uses no backslash, so it means the same in Python's
``re.fullmatch`` and in a PromQL matcher (``device!~"..."``, anchored by Prometheus).
"""

# Plausible range of each per-GPU figure (util in %); a value outside is a sentinel or a glitch
# and is missing for that GPU, in the exporter path and in the PromQL queries alike. Util is
# 0-100 by definition. Temperature: GPUs throttle near 90 and shut down near 110 °C, so
# -40..150 °C holds any real reading. Power: the largest GPU module draws under 3 kW, so
# 0..5000 W. Memory: the largest GPU has under 300 GB, so 0..16 TiB.
GPU_UTIL_RANGE = (0.0, 100.0)
GPU_TEMP_RANGE_C = (-40.0, 150.0)
GPU_POWER_RANGE_W = (0.0, 5000.0)
GPU_MEMORY_MAX_MIB = 16.0 * 2**20
