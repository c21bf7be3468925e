"""Fleet nodes by PromQL from a Prometheus-compatible server (Thanos, VictoriaMetrics, Mimir too).

One poll runs a few instant queries concurrently (``GET /api/v1/query``, reference/apis.md §7),
each aggregated ``by (instance)`` so a node is one series per query, and joins them on the
``instance`` label. ``up`` decides which nodes exist and whether they are healthy: when it fails
nothing is known, so the poll fails. Any other query may fail on its own: its values stay None and
the failure is listed in ``Reading.errors`` under the field it feeds (``cpu_pct``, ``gpus``, …).

Sample values arrive as JSON strings (``"0.25"``, ``"NaN"``, ``"+Inf"``); anything not finite
becomes None, never 0. Server ``warnings`` do not fail a query; they are returned, sanitised, in
``Reading.note``. Every query carries ``timeout`` (just under our own deadline, so the server's
timeout error arrives before ours) and ``limit`` (newer servers truncate; older ones ignore it, so
the result is capped here too).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from sources.base import HttpPolicy, get_json
from sources.models import EndpointError, ErrorKind, NodeSample, Reading, SourceError
from sources.text import one_line, safe_text

QUERY_PATH = "/api/v1/query"
DEFAULT_LIMIT = 5000
MAX_LABELS = 30
MAX_LABEL_NAME = 128
NOTE_LEN = 500
RATE_WINDOW = "5m"
# Pseudo filesystems never count as the root disk (apis.md §6.1).
SKIP_FSTYPES = "tmpfs|overlay|squashfs|nsfs"
DOWN_ERROR = "down: the Prometheus server's last scrape of it failed (up=0)"

_METRIC_PREFIX = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*\s*\{")
# errorType → kind; 4xx-like types are config or query errors, not worth a retry.
_ERROR_KINDS = {
    "bad_data": ErrorKind.HTTP_4XX,
    "execution": ErrorKind.HTTP_4XX,
    "not_found": ErrorKind.HTTP_4XX,
    "not_acceptable": ErrorKind.HTTP_4XX,
    "timeout": ErrorKind.TIMEOUT,
    "canceled": ErrorKind.TIMEOUT,
    "internal": ErrorKind.HTTP_5XX,
    "unavailable": ErrorKind.HTTP_5XX,
}


def selector_matchers(selector: str) -> str:
    """The label matchers inside a selector's braces: ``{job="node"}`` → ``job="node"``.

    Empty (or ``{}``) means every series. Bare matchers without braces are accepted too.

    Raises:
        ValueError: the selector names a metric (``up{job="node"}``) or its braces do not close.
    """
    text = selector.strip()
    if not text:
        return ""
    if _METRIC_PREFIX.match(text):
        raise ValueError(
            'selector must be label matchers in braces, like {job="node"}, without a metric name'
        )
    if text.startswith("{"):
        if not text.endswith("}"):
            raise ValueError('selector must be label matchers in braces, like {job="node"}')
        text = text[1:-1]
    # PromQL accepts a trailing comma, but the matchers are joined after ours with one
    return text.strip().strip(",").strip()


def vector_selector(metric: str, matchers: str, *extra: str) -> str:
    """``metric{extra…,matchers}``, or the bare name when there is no matcher at all.

    ``up{}`` is a PromQL parse error, so an empty selector must not leave empty braces behind.
    """
    parts = [part for part in (*extra, matchers) if part]
    return f"{metric}{{{','.join(parts)}}}" if parts else metric


def build_queries(selector: str) -> dict[str, str]:
    """The PromQL sent for each NodeSample field, ``selector`` merged into every metric.

    Each query but ``up`` is aggregated ``by (instance)``, so it has at most one series per node.
    The GPU queries read dcgm-exporter (``DCGM_FI_DEV_*``) or, for an instance without it,
    nvidia_gpu_exporter (``nvidia_smi_*``): ``or`` keeps the left side's series per instance.

    Raises:
        ValueError: as for :func:`selector_matchers`.
    """
    m = selector_matchers(selector)

    def v(metric: str, *extra: str) -> str:
        return vector_selector(metric, m, *extra)

    idle = 'mode="idle"'
    root = ('mountpoint="/"', f'fstype!~"{SKIP_FSTYPES}"')
    nic = ('device!="lo"',)
    w = RATE_WINDOW
    return {
        "up": v("up"),
        # idle ÷ all modes, not avg(idle rate): rate() over a window longer than a series' life
        # is scaled down by its age (a fresh target read 99 % busy); the ratio cancels that out
        "cpu_pct": (
            f"100 * (1 - sum by (instance) (rate({v('node_cpu_seconds_total', idle)}[{w}])) / "
            f"sum by (instance) (rate({v('node_cpu_seconds_total')}[{w}])))"
        ),
        "mem_pct": (
            "avg by (instance) (100 * (1 - "
            f"{v('node_memory_MemAvailable_bytes')} / {v('node_memory_MemTotal_bytes')}))"
        ),
        "disk_pct": (
            "max by (instance) (100 * (1 - "
            f"{v('node_filesystem_avail_bytes', *root)} / "
            f"{v('node_filesystem_size_bytes', *root)}))"
        ),
        "load1": f"max by (instance) ({v('node_load1')})",
        "uptime_s": f"max by (instance) ({v('node_time_seconds')} - {v('node_boot_time_seconds')})",
        "net_rx_bps": (
            f"sum by (instance) (rate({v('node_network_receive_bytes_total', *nic)}[{w}]))"
        ),
        "net_tx_bps": (
            f"sum by (instance) (rate({v('node_network_transmit_bytes_total', *nic)}[{w}]))"
        ),
        "gpu_util_pct": (
            f"avg by (instance) ({v('DCGM_FI_DEV_GPU_UTIL')}) or "
            f"avg by (instance) (100 * {v('nvidia_smi_utilization_gpu_ratio')})"
        ),
        "gpu_temp_c": (
            f"max by (instance) ({v('DCGM_FI_DEV_GPU_TEMP')}) or "
            f"max by (instance) ({v('nvidia_smi_temperature_gpu')})"
        ),
        "gpu_power_w": (
            f"sum by (instance) ({v('DCGM_FI_DEV_POWER_USAGE')}) or "
            f"sum by (instance) ({v('nvidia_smi_power_draw_watts')})"
        ),
        # one GPU per index (dcgm) or uuid (nvidia_smi), however many jobs or pods repeat it
        "gpus": (
            f"count by (instance) (group by (instance, gpu) ({v('DCGM_FI_DEV_GPU_UTIL')})) or "
            f"count by (instance) (group by (instance, uuid) ({v('nvidia_smi_gpu_info')}))"
        ),
        # used ÷ total over all of a node's GPUs; dcgm reports MiB used and free, not a total
        "gpu_mem_pct": (
            f"100 * sum by (instance) ({v('DCGM_FI_DEV_FB_USED')}) / "
            f"(sum by (instance) ({v('DCGM_FI_DEV_FB_USED')}) + "
            f"sum by (instance) ({v('DCGM_FI_DEV_FB_FREE')})) or "
            f"100 * sum by (instance) ({v('nvidia_smi_memory_used_bytes')}) / "
            f"sum by (instance) ({v('nvidia_smi_memory_total_bytes')})"
        ),
    }


def sample_value(raw: Any) -> float | None:
    """A sample value (a JSON string: ``"0.25"``, ``"NaN"``, ``"+Inf"``); None unless finite."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        try:
            number = float(raw)
        except ValueError:
            return None
    elif isinstance(raw, int | float):
        number = float(raw)
    else:
        return None
    return number if math.isfinite(number) else None


def clean_labels(metric: Mapping[Any, Any]) -> dict[str, str]:
    """A series' labels, sanitised and bounded (``__name__`` dropped)."""
    out: dict[str, str] = {}
    for key, value in metric.items():
        if len(out) >= MAX_LABELS:
            break
        if not isinstance(key, str) or key == "__name__":
            continue
        out[safe_text(key, MAX_LABEL_NAME)] = safe_text(value if isinstance(value, str) else "")
    return out


@dataclass(frozen=True)
class QueryResult:
    """One instant vector: (labels, value) per series, and what the server warned about."""

    series: list[tuple[dict[str, str], float | None]]
    warnings: list[str]
    truncated: int = 0
    """Series beyond ``limit`` that were dropped (0 when none were)."""


def parse_response(body: Any, name: str, limit: int = DEFAULT_LIMIT) -> QueryResult:
    """Read one ``/api/v1/query`` answer that must be an instant vector.

    Args:
        body: the decoded JSON envelope.
        name: the query's field name, used in error messages.
        limit: at most this many series are kept (0: all).

    Raises:
        SourceError: an error envelope (kind from its ``errorType``), or any result that is not a
            vector (kind ``schema``).
    """
    if not isinstance(body, dict):
        raise SourceError(ErrorKind.SCHEMA, f"{name}: not a Prometheus API answer")
    status = body.get("status")
    if status != "success":
        error_type = body.get("errorType")
        kind = _ERROR_KINDS.get(error_type, ErrorKind.HTTP_4XX)
        if status != "error":
            raise SourceError(ErrorKind.SCHEMA, f"{name}: no success or error status in answer")
        raise SourceError(
            kind,
            f"{name}: {one_line(error_type or 'error', 40)}: "
            f"{one_line(body.get('error') or 'no message', 200)}",
        )
    raw_warnings = body.get("warnings")
    warnings = [
        one_line(w, 200)
        for w in (raw_warnings if isinstance(raw_warnings, list) else [])[:20]
        if isinstance(w, str) and w.strip()
    ]
    data = body.get("data")
    if not isinstance(data, dict):
        raise SourceError(ErrorKind.SCHEMA, f"{name}: answer has no data object")
    result_type = data.get("resultType")
    if result_type != "vector":
        got = one_line(result_type, 20) if isinstance(result_type, str) else "nothing"
        raise SourceError(ErrorKind.SCHEMA, f"{name}: expected a vector result, got {got}")
    result = data.get("result")
    if not isinstance(result, list):
        raise SourceError(ErrorKind.SCHEMA, f"{name}: vector result is not a list")
    kept = result[:limit] if limit > 0 else result
    series: list[tuple[dict[str, str], float | None]] = []
    for item in kept:
        # native histograms carry "histogram" instead of "value": nothing we can use
        if not isinstance(item, dict) or not isinstance(item.get("metric", {}), dict):
            continue
        value = item.get("value")
        if not isinstance(value, list) or len(value) != 2:
            continue
        series.append((clean_labels(item.get("metric", {})), sample_value(value[1])))
    return QueryResult(series=series, warnings=warnings, truncated=len(result) - len(kept))


def _instance(labels: Mapping[str, str]) -> str | None:
    instance = labels.get("instance")
    return instance if instance else None


@dataclass
class PromqlSource:
    """Fleet nodes from a Prometheus-compatible server, one per ``instance`` matching ``selector``.

    Attributes:
        url: the server root (``http://127.0.0.1:9090``, or a path prefix for a proxy).
        selector: label matchers such as ``{job="node"}``, merged into every metric; empty means
            every target the server scrapes.
        timeout: the deadline of one poll in seconds; the server is asked to give up just before.
        headers: auth headers built from the environment; never logged nor repeated in errors.
        name: the source name (one per configured server).
        limit: the most series read from any one query.
    """

    url: str
    selector: str = ""
    timeout: float = 10.0
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    name: str = "promql"
    uses_network: bool = True
    limit: int = DEFAULT_LIMIT

    def queries(self) -> dict[str, str]:
        """The PromQL sent for each field (see :func:`build_queries`)."""
        return build_queries(self.selector)

    def _params(self, query: str) -> dict[str, str]:
        # 90 % of our deadline, so the server's own "timeout" error reaches us before we give up
        server_timeout_ms = max(100, int(self.timeout * 900))
        params = {"query": query, "timeout": f"{server_timeout_ms}ms"}
        if self.limit > 0:
            params["limit"] = str(self.limit)
        return params

    async def _query(self, client: httpx.AsyncClient, name: str, query: str) -> QueryResult:
        headers = {"accept": "application/json", **(self.headers or {})}
        try:
            body = await get_json(
                client,
                self.url.rstrip("/") + QUERY_PATH,
                params=self._params(query),
                headers=headers,
                policy=HttpPolicy(deadline=self.timeout),
            )
        except SourceError as error:
            raise SourceError(
                error.kind,
                f"{name}: {error.message}",
                status=error.status,
                retry_after=error.retry_after,
            ) from error
        return parse_response(body, name, self.limit)

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """Run every query concurrently and join them into one NodeSample per instance.

        Raises:
            SourceError: the ``up`` query failed (node health unknown), it matched no target, or
                the selector is malformed.
        """
        try:
            queries = self.queries()
        except ValueError as exc:
            raise SourceError(ErrorKind.HTTP_4XX, f"selector {self.selector!r}: {exc}") from exc
        names = list(queries)
        results = await asyncio.gather(
            *(self._query(client, name, queries[name]) for name in names),
            return_exceptions=True,
        )
        by_name: dict[str, QueryResult] = {}
        errors: list[EndpointError] = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, SourceError):
                errors.append(EndpointError(name, result))
            elif isinstance(result, BaseException):
                raise result
            else:
                by_name[name] = result
        up = by_name.get("up")
        if up is None:
            first = next(e.error for e in errors if e.endpoint == "up")
            raise SourceError(
                first.kind,
                f"node health unknown: {first.message}",
                status=first.status,
                retry_after=first.retry_after,
            )
        notes: list[str] = []
        for name in names:
            result = by_name.get(name)
            if result is None:
                continue
            notes += [w for w in result.warnings if w not in notes]
            if result.truncated:
                notes.append(f"{name}: {result.truncated} series over the limit of {self.limit}")
        health: dict[str, tuple[bool, dict[str, str]]] = {}
        skipped = 0
        for labels, value in up.series:
            instance = _instance(labels)
            if instance is None:
                skipped += 1
                continue
            healthy = value == 1.0
            if instance in health:  # the same target under two jobs: down if either is down
                healthy = healthy and health[instance][0]
                labels = health[instance][1]
            health[instance] = (healthy, labels)
        if not health:
            note = f" ({one_line('; '.join(notes), 200)})" if notes else ""
            raise SourceError(ErrorKind.EMPTY, f"no target matches {queries['up']}{note}")
        values: dict[str, dict[str, float | None]] = {instance: {} for instance in health}
        for name, result in by_name.items():
            if name == "up":
                continue
            for labels, value in result.series:
                instance = _instance(labels)
                if instance in values:
                    values[instance].setdefault(name, value)
        nodes = []
        for instance, (healthy, labels) in health.items():
            # a down node's rates still see old samples for 5 minutes: show none of them
            fields = values[instance] if healthy else {}
            nodes.append(
                NodeSample(
                    node=safe_text(instance),
                    source_kind="promql",
                    network=labels.get("network") or None,
                    labels=labels,
                    up=healthy,
                    error=None if healthy else DOWN_ERROR,
                    **fields,
                )
            )
        note = one_line("; ".join(notes), NOTE_LEN) if notes else None
        return Reading(nodes=nodes, errors=errors, skipped=skipped, note=note)
