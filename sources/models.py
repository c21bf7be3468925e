"""Reading models: the vocabulary that sources produce and the cache stores.

Models are tolerant: unknown fields are ignored, anything the screens do not strictly need is
optional, numbers that are not finite or not numbers at all become ``None`` (shown as "—", never
as 0), and every string is sanitised on the way in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sized
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from sources.text import safe_text

_DEVICE_ID = re.compile(r"[0-9A-Fa-f-]{8,64}")


def is_device_id(text: str) -> bool:
    """An io.net device id (a UUID): the only text that may go into a device's API path."""
    return _DEVICE_ID.fullmatch(text) is not None


INT64_MAX = 2**63 - 1


def _finite_or_none(value: Any) -> float | None:
    """Lax number: accept numbers and numeric strings; NaN, inf, junk and bools become None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # JSON allows integers far past any float
            return None
        return number if math.isfinite(number) else None
    return None


def _rank_or_none(value: Any) -> int | None:
    number = _finite_or_none(value)
    if number is None or number != int(number) or not 0 < number <= INT64_MAX:
        return None
    return int(number)


def _count_or_none(value: Any) -> int | None:
    """A non-negative count; 0 is a real value here (none available), unlike a rank."""
    number = _finite_or_none(value)
    if number is None or number != int(number) or not 0 <= number <= INT64_MAX:
        return None
    return int(number)


def _clean_text(value: Any) -> Any:
    return safe_text(value) if isinstance(value, str) else value


Number = Annotated[float | None, BeforeValidator(_finite_or_none)]
Rank = Annotated[int | None, BeforeValidator(_rank_or_none)]
CleanText = Annotated[str, BeforeValidator(_clean_text), Field(min_length=1, max_length=300)]
OptionalText = Annotated[str | None, BeforeValidator(_clean_text)]


def _sparkline(value: Any) -> list[float | None] | None:
    """CoinGecko's ``{"price": [...]}``; tolerate gaps, junk points become None."""
    if isinstance(value, dict):
        value = value.get("price")
    if not isinstance(value, list):
        return None
    return [_finite_or_none(point) for point in value[:1000]]


class MarketCoin(BaseModel):
    """One project in a rankings snapshot (CoinGecko ``/coins/markets`` item or a sample row)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    coin_id: CleanText = Field(validation_alias="id")
    symbol: OptionalText = None
    name: CleanText
    rank: Rank = Field(default=None, validation_alias="market_cap_rank")
    price_usd: Number = Field(default=None, validation_alias="current_price")
    market_cap_usd: Number = Field(default=None, validation_alias="market_cap")
    volume_24h_usd: Number = Field(default=None, validation_alias="total_volume")
    fdv_usd: Number = Field(default=None, validation_alias="fully_diluted_valuation")
    change_24h_pct: Number = None
    change_7d_pct: Number = None
    change_30d_pct: Number = None
    sparkline_7d: Annotated[list[float | None] | None, BeforeValidator(_sparkline)] = Field(
        default=None, validation_alias="sparkline_in_7d"
    )
    category: OptionalText = None
    devices: Rank = None
    last_updated: OptionalText = None


class ErrorKind(StrEnum):
    """Why a poll failed; shown on screen and stored with the failed poll."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    TOO_LARGE = "too_large"
    BAD_CONTENT_TYPE = "bad_content_type"
    EMPTY = "empty"
    TRUNCATED = "truncated"
    SCHEMA = "schema"
    PARSE = "parse"
    INTERNAL = "internal"


MESSAGE_LEN = 500
"""The longest error message kept (what the cache stores): room for a hint after the cause."""


class SourceError(Exception):
    """A failed fetch, described without any secret or raw upstream text.

    ``message`` is built from (source, status, error class) and sanitised upstream text only.
    ``retry_after`` (seconds) asks the poller not to call this source again before then.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = safe_text(message, MESSAGE_LEN)
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class NetworkMetric(BaseModel):
    """One figure a public network publishes, in long form (network, metric, value, unit).

    Metric names are part of the export contract: ``devices_total``, ``devices_active``,
    ``gpus_total``, ``gpus_active``, ``gpus_verified``, ``gpu_utilization_pct``, ``cpus_total``,
    ``cpus_active``, ``clusters_running``, ``providers_active``, ``leases_active``,
    ``hotspots_total``, ``miners_active`` and others where a network has them.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    network: str
    metric: str
    value: float = Field(allow_inf_nan=False)
    unit: str = ""
    endpoint: str = ""
    """Which endpoint of the source it came from (a path, without query)."""


class GpuModel(BaseModel):
    """A GPU model on offer in a network: availability and price per GPU-hour."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    network: str
    model: CleanText
    memory_gb: Number = None
    cards: Rank = None
    """GPUs per machine in a catalogue entry (prices here are already per GPU)."""
    total: Annotated[int | None, BeforeValidator(_count_or_none)] = None
    available: Annotated[int | None, BeforeValidator(_count_or_none)] = None
    price_usd_gpu_hour: Number = None
    endpoint: str = ""


class NodeSample(BaseModel):
    """One node of the operator's fleet at one poll: health and load, GPU figures if any.

    ``source_kind`` is ``exporter`` (scraped /metrics), ``promql`` (a Prometheus server) or
    ``local`` (this machine). No GPU means the GPU fields are None, never 0. ``counters`` are the
    raw counter totals the next poll turns into rates (CPU seconds, network bytes).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    node: CleanText
    source_kind: str
    network: OptionalText = None
    labels: dict[str, str] = Field(default_factory=dict)
    up: bool
    error: OptionalText = None
    """Why a node is down (one sanitised line), when it is."""
    cpu_pct: Number = None
    mem_pct: Number = None
    disk_pct: Number = None
    load1: Number = None
    uptime_s: Number = None
    net_rx_bps: Number = None
    net_tx_bps: Number = None
    gpus: Annotated[int | None, BeforeValidator(_count_or_none)] = None
    gpu_util_pct: Number = None
    gpu_temp_c: Number = None
    gpu_power_w: Number = None
    gpu_mem_pct: Number = None
    counters: dict[str, float] = Field(default_factory=dict)


Count = Annotated[int | None, BeforeValidator(_count_or_none)]


class DeviceStatus(BaseModel):
    """One io.net device as the explorer reports it: status, uptime, tier, earnings to date.

    ``node`` is the fleet node labelled with this ``device_id`` (None for a device configured
    on its own). ``error`` says why some of it is missing when an endpoint failed.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    network: str
    device_id: CleanText
    node: OptionalText = None
    name: OptionalText = None
    status: OptionalText = None
    uptime_pct: Number = None
    connectivity_tier: OptionalText = None
    hardware: OptionalText = None
    hardware_quantity: Count = None
    location: OptionalText = None
    earnings_total: Number = None
    earnings_token: OptionalText = None
    slashed_total: Number = None
    block_rewards_7d: Number = None
    blocks_earned_7d: Count = None
    blocks_failed_7d: Count = None
    blocks_missed_7d: Count = None
    jobs_running: Count = None
    compute_hours: Number = None
    error: OptionalText = None


class Reward(BaseModel):
    """One reward a device received: an amount of a token at a time, with its source reference.

    ``source`` names what paid it (e.g. ``io.net block 2024-05-13T15:00:00``) and is unique per
    device, so a reward fetched twice is stored once.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    network: str
    device_id: CleanText
    node: OptionalText = None
    at: datetime
    amount: float = Field(allow_inf_nan=False)
    token: CleanText
    source: CleanText
    status: OptionalText = None


@dataclass(frozen=True)
class NodeColumns:
    """Many fleet nodes of one poll, column by column: how a fleet read at scale travels.

    A Prometheus server answers for 100,000 nodes at once; as one NodeSample each they would
    take seconds to validate and hundreds of MB to hold, only to be turned into table rows. The
    source fills these columns instead (row ``i`` is one node) and the cache stores them by
    zipping the columns. The source guarantees what NodeSample validation would check: every
    text sanitised by :func:`~sources.text.safe_text` (names not empty, labels bounded), every
    value a finite float or None, ``gpus`` whole counts or None. :meth:`samples` gives the
    same nodes as NodeSamples (validated) for the few readers that want objects.

    Attributes:
        source_kind: as :attr:`NodeSample.source_kind`, the same for every row.
        nodes: each node's name.
        up: whether each node answered.
        errors: why each down node is down (None for those up).
        networks: each node's ``network`` label, or None.
        labels: each node's labels.
        values: figure name (one of ``sources.figures.NODE_VALUE_FIELDS``) -> that figure of
            every node; a figure no node has is left out.
    """

    source_kind: str
    nodes: list[str]
    up: list[bool]
    errors: list[str | None]
    networks: list[str | None]
    labels: list[dict[str, str]]
    values: dict[str, list[float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = len(self.nodes)
        columns: list[Sized] = [self.up, self.errors, self.networks, self.labels]
        columns.extend(self.values.values())
        if any(len(column) != rows for column in columns):
            raise ValueError("every column of NodeColumns needs one entry per node")

    def __len__(self) -> int:
        return len(self.nodes)

    def samples(self) -> list[NodeSample]:
        """Every row as a validated NodeSample, in order."""
        names = list(self.values)
        return [
            NodeSample(
                node=node,
                source_kind=self.source_kind,
                network=network,
                labels=labels,
                up=up,
                error=error,
                **{name: self.values[name][row] for name in names},
            )
            for row, (node, up, error, network, labels) in enumerate(
                zip(self.nodes, self.up, self.errors, self.networks, self.labels, strict=True)
            )
        ]


@dataclass(frozen=True)
class EndpointError:
    """One endpoint of a multi-endpoint source that failed while others succeeded."""

    endpoint: str
    error: SourceError


@dataclass(frozen=True)
class Reading:
    """What one fetch of a source returned, ready to be stored as one poll.

    A multi-endpoint source (a public network) may return some data and some ``errors``: what
    came back is stored, and each failed endpoint keeps its last good values.
    """

    market: list[MarketCoin] = field(default_factory=list)
    metrics: list[NetworkMetric] = field(default_factory=list)
    gpu_models: list[GpuModel] = field(default_factory=list)
    nodes: list[NodeSample] = field(default_factory=list)
    node_columns: NodeColumns | None = None
    """Fleet nodes read at scale (a PromQL server), beside or instead of ``nodes``."""
    devices: list[DeviceStatus] = field(default_factory=list)
    rewards: list[Reward] = field(default_factory=list)
    errors: list[EndpointError] = field(default_factory=list)
    skipped: int = 0
    at: datetime | None = None
    """When the data is from, if not now (the bundled sample is dated 2024-06-30)."""
    note: str | None = None

    @property
    def items(self) -> int:
        """Rows this reading stores."""
        return (
            len(self.market)
            + len(self.metrics)
            + len(self.gpu_models)
            + len(self.nodes)
            + len(self.node_columns or ())
            + len(self.devices)
            + len(self.rewards)
        )
