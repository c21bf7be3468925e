"""Fleet nodes by PromQL from a Prometheus-compatible server (Thanos, VictoriaMetrics, Mimir too).

One poll runs a few instant queries concurrently (``GET /api/v1/query``, docs/promql.md),
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
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import GenericAlias
from typing import Any

import httpx
import msgspec

from sources.base import HttpPolicy, SourceDefaults, get_json
from sources.figures import (
    GPU_MEMORY_MAX_MIB,
    GPU_POWER_RANGE_W,
    GPU_TEMP_RANGE_C,
    GPU_UTIL_RANGE,
    VIRTUAL_NET_DEVICES,
)
from sources.models import EndpointError, ErrorKind, NodeColumns, Reading, SourceError
from sources.text import one_line, safe_text

QUERY_PATH = "/api/v1/query"
# Sized for a fleet of 300,000 nodes: every series of the largest answer (``up``, which carries
# each target's labels: about 300-500 bytes a series behind the Prometheus Operator) fits.
DEFAULT_LIMIT = 300_000
DEFAULT_MAX_BODY_MB = 192
# Answers read and decoded at once; each may be tens of MB until it is decoded.
QUERIES_IN_FLIGHT = 3
# The share of the poll's timeout the queries may use (``up`` first, then in turn); the rest is
# for decoding and joining (about a second for 100,000 nodes), and a query whose turn comes with
# less than MIN_QUERY_S left is not sent.
QUERY_SHARE = 0.85
MIN_QUERY_S = 0.25
MAX_LABELS = 30
MAX_LABEL_NAME = 128
LABEL_VALUE_LEN = 256
NOTE_LEN = 500
RATE_WINDOW = "5m"
# Pseudo filesystems never count as the root disk.
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
    nic = (f'device!~"{VIRTUAL_NET_DEVICES}"',)
    w = RATE_WINDOW
    # DCGM series of one physical GPU: a MIG-partitioned GPU writes one per GPU instance (same
    # gpu index, a GPU_I_ID each) and omits GPU_UTIL, so GPUs are counted from every family.
    dcgm_any = vector_selector("", m, f'__name__=~"{DCGM_GPU_FAMILIES}"')
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
        # pod veths, bridges and tunnels carry bytes that also cross a physical NIC
        "net_rx_bps": (
            f"sum by (instance) (rate({v('node_network_receive_bytes_total', *nic)}[{w}]))"
        ),
        "net_tx_bps": (
            f"sum by (instance) (rate({v('node_network_transmit_bytes_total', *nic)}[{w}]))"
        ),
        # a value outside a figure's plausible range is a DCGM "blank" sentinel or a glitch:
        # the comparison drops that series before it reaches the mean, max or sum
        "gpu_util_pct": (
            f"avg by (instance) ({in_range(v('DCGM_FI_DEV_GPU_UTIL'), GPU_UTIL_RANGE)}) or "
            "avg by (instance) (100 * "
            f"{in_range(v('nvidia_smi_utilization_gpu_ratio'), _ratio(GPU_UTIL_RANGE))})"
        ),
        "gpu_temp_c": (
            f"max by (instance) ({in_range(v('DCGM_FI_DEV_GPU_TEMP'), GPU_TEMP_RANGE_C)}) or "
            f"max by (instance) ({in_range(v('nvidia_smi_temperature_gpu'), GPU_TEMP_RANGE_C)})"
        ),
        # per GPU first (max: MIG repeats the board's power on every instance), then summed
        "gpu_power_w": (
            "sum by (instance) (max by (instance, gpu) "
            f"({in_range(v('DCGM_FI_DEV_POWER_USAGE'), GPU_POWER_RANGE_W)})) or "
            "sum by (instance) (max by (instance, uuid) "
            f"({in_range(v('nvidia_smi_power_draw_watts'), GPU_POWER_RANGE_W)}))"
        ),
        # one GPU per index (dcgm) or uuid (nvidia_smi), however many jobs, pods or MIG
        # instances repeat it
        "gpus": (
            f"count by (instance) (group by (instance, gpu) ({dcgm_any})) or "
            f"count by (instance) (group by (instance, uuid) ({v('nvidia_smi_gpu_info')}))"
        ),
        # used ÷ total over all of a node's GPUs; dcgm reports MiB used, free and reserved (its
        # total is their sum) and only some versions a total, as the exporter path reads them
        "gpu_mem_pct": (
            f"100 * {dcgm_memory('DCGM_FI_DEV_FB_USED', m)} / ("
            f"{dcgm_memory('DCGM_FI_DEV_FB_TOTAL', m)} or ("
            f"{dcgm_memory('DCGM_FI_DEV_FB_USED', m)} + {dcgm_memory('DCGM_FI_DEV_FB_FREE', m)}"
            f" + ({dcgm_memory('DCGM_FI_DEV_FB_RESERVED', m)} or "
            f"0 * {dcgm_memory('DCGM_FI_DEV_FB_USED', m)}))) or "
            f"100 * sum by (instance) ({in_range(v('nvidia_smi_memory_used_bytes'), _SMI_B)}) / "
            f"sum by (instance) ({in_range(v('nvidia_smi_memory_total_bytes'), _SMI_B)})"
        ),
    }


def dcgm_memory(metric: str, matchers: str) -> str:
    """A node's dcgm memory figure (MiB), each GPU counted once, MIG instances summed.

    A MIG-partitioned GPU writes one series per GPU instance (``GPU_I_ID``), each with that
    instance's share; a whole-GPU series (no ``GPU_I_ID``) wins where there is one, as in the
    exporter path, and a series repeated by several jobs or pods counts once (max).
    """
    whole = in_range(vector_selector(metric, matchers, 'GPU_I_ID=""'), _DCGM_MIB)
    parts = in_range(vector_selector(metric, matchers, 'GPU_I_ID!=""'), _DCGM_MIB)
    return (
        "sum by (instance) ("
        f"max by (instance, gpu) ({whole}) or "
        f"sum by (instance, gpu) (max by (instance, gpu, GPU_I_ID) ({parts})))"
    )


def in_range(selector: str, bounds: tuple[float, float]) -> str:
    """``selector``'s series whose value lies within ``bounds`` (a PromQL filter, not bool)."""
    low, high = bounds
    return f"({selector} >= {_number(low)} <= {_number(high)})"


def _number(value: float) -> str:
    """A bound as PromQL reads it, exactly (``16777216``, not ``1.67772e+07``)."""
    return str(int(value)) if value == int(value) else repr(value)


def _ratio(bounds: tuple[float, float]) -> tuple[float, float]:
    return bounds[0] / 100, bounds[1] / 100


_DCGM_MIB = (0.0, GPU_MEMORY_MAX_MIB)
_SMI_B = (0.0, GPU_MEMORY_MAX_MIB * 2**20)
# The dcgm-exporter families a GPU (or each of its MIG instances) reports, whatever it omits.
DCGM_GPU_FAMILIES = "DCGM_FI_DEV_(GPU_UTIL|GPU_TEMP|POWER_USAGE|FB_USED|FB_FREE)"


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
    if len(metric) <= MAX_LABELS and _plain(metric):
        out = dict(metric)
        out.pop("__name__", None)
        return out
    out = {}
    for key, value in metric.items():
        if len(out) >= MAX_LABELS:
            break
        if not isinstance(key, str) or key == "__name__":
            continue
        out[safe_text(key, MAX_LABEL_NAME)] = safe_text(
            value if isinstance(value, str) else "", LABEL_VALUE_LEN
        )
    return out


def _bounded_labels(metric: dict[str, str]) -> dict[str, str]:
    """Labels known to be printable ASCII (the answer has no escape): only bounds to check."""
    if (
        len(metric) > MAX_LABELS
        or max(map(len, metric), default=0) > MAX_LABEL_NAME
        or max(map(len, metric.values()), default=0) > LABEL_VALUE_LEN
    ):
        return clean_labels(metric)
    metric.pop("__name__", None)  # the decoder's own dict: nobody else holds it
    return metric


def _plain(metric: Mapping[Any, Any]) -> bool:
    """Whether every label is printable ASCII text within bounds: safe_text would change none.

    Checked on the joined text by C string methods, a third of the cost of one safe_text call
    per name and value; nearly every label of a real server passes.
    """
    try:
        names = "".join(metric)
        values = "".join(metric.values())
    except TypeError:  # a name or value that is not a string
        return False
    return (
        names.isascii()
        and values.isascii()
        and names.isprintable()
        and values.isprintable()
        and max(map(len, metric), default=0) <= MAX_LABEL_NAME
        and max(map(len, metric.values()), default=0) <= LABEL_VALUE_LEN
    )


# -- typed decoding -------------------------------------------------------------------------------
# msgspec decodes straight into these (docs/promql.md has the benchmark against json and orjson).
# An aggregated query's series only needs its instance: the decoder skips every other label
# without building it, so no Python dict per series is made and thrown away. Only ``up`` keeps a
# node's labels. gc=False: none of them can be in a reference cycle, and 100,000 tracked objects
# would make every collection during the poll walk them.


class _Point(msgspec.Struct, array_like=True, gc=False):
    """``[timestamp, "value"]``, the value read as a float by the decoder itself (lax mode)."""

    at: Any
    value: float | None


class _AnyPoint(msgspec.Struct, array_like=True, gc=False):
    """The same, for an answer the lax decoder refused (``"+Inf"``, a junk value)."""

    at: Any
    value: str | float | None


class _Instance(msgspec.Struct, gc=False):
    instance: str = ""


def _list_of(item: type) -> Any:
    """``list[item]`` for a type made at run time, which a subscript cannot name statically."""
    return GenericAlias(list, (item,))


def _series_type(point: type, labelled: bool) -> type:
    metric: Any = dict[str, str] if labelled else _Instance
    default: Any = msgspec.field(default_factory=dict if labelled else _Instance)
    return msgspec.defstruct(
        "Series",
        [("metric", metric, default), ("value", point | None, None)],
        gc=False,
    )


_ABSENT = msgspec.Raw()  # a Raw field cannot be Optional: empty means the key was absent


class _Data(msgspec.Struct, gc=False):
    resultType: str | None = None
    result: msgspec.Raw = _ABSENT  # decoded once resultType says it is a vector


class _Envelope(msgspec.Struct, gc=False):
    status: str | None = None
    data: msgspec.Raw = _ABSENT
    errorType: str | None = None
    error: str | None = None
    warnings: msgspec.Raw = _ABSENT


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_DATA = msgspec.json.Decoder(_Data)
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_ANY = msgspec.json.Decoder()
# (labelled?) -> the three ways to read a result, fastest first: the whole list with values as
# floats; the whole list with values as strings; one item at a time, skipping what does not fit.
_FAST = {
    labelled: msgspec.json.Decoder(_list_of(_series_type(_Point, labelled)), strict=False)
    for labelled in (True, False)
}
_LENIENT = {
    labelled: msgspec.json.Decoder(_list_of(_series_type(_AnyPoint, labelled)))
    for labelled in (True, False)
}
_ONE = {labelled: _series_type(_AnyPoint, labelled) for labelled in (True, False)}


def _whole_type(labelled: bool) -> type:
    """A success envelope with its vector typed through: the common answer in one pass."""
    data = msgspec.defstruct(
        "VectorData",
        [("resultType", str), ("result", _list_of(_series_type(_Point, labelled)))],
        gc=False,
    )
    return msgspec.defstruct(
        "VectorAnswer",
        [("status", str), ("data", data), ("warnings", list[str] | None, None)],
        gc=False,
    )


_WHOLE: dict[bool, msgspec.json.Decoder[Any]] = {
    labelled: msgspec.json.Decoder(_whole_type(labelled), strict=False)
    for labelled in (True, False)
}


@dataclass(frozen=True)
class QueryResult:
    """One instant vector, column by column: the instance, value and labels of each series.

    ``labels`` holds every label (sanitised) of each series for a query read with
    ``labelled=True`` (``up``) and is None for the aggregated queries, which need only the
    instance. ``instances[i]`` is empty for a series without one.
    """

    instances: list[str]
    values: list[float | None]
    warnings: list[str]
    labels: list[dict[str, str]] | None = None
    truncated: int = 0
    """Series beyond ``limit`` that were dropped (0 when none were)."""


def _decode(decoder: msgspec.json.Decoder[Any], raw: bytes | bytearray | memoryview) -> Any:
    try:
        return decoder.decode(raw)
    except RecursionError as exc:
        raise SourceError(ErrorKind.PARSE, "JSON nested too deeply") from exc


def _warnings(raw: msgspec.Raw) -> list[str]:
    if not raw:
        return []
    try:
        found = _ANY.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return []
    return [
        one_line(w, 200)
        for w in (found if isinstance(found, list) else [])[:20]
        if isinstance(w, str) and w.strip()
    ]


def _series_items(raw: msgspec.Raw, labelled: bool, name: str) -> list[Any]:
    """Every well-formed series of the result; a malformed item is skipped, not fatal.

    The whole list is decoded in one typed pass, values as floats; a value that is not a plain
    number (``"+Inf"``) means a second whole pass with values as strings; only when some item
    does not fit at all (a hostile or broken server) is it read one item at a time. Valid
    bodies pay nothing for the leniency.
    """
    for decoder in (_FAST[labelled], _LENIENT[labelled]):
        try:
            items: list[Any] = _decode(decoder, raw)
            return items
        except msgspec.ValidationError:
            continue
    try:
        raw_items = _decode(_ITEMS, raw)
    except msgspec.ValidationError as exc:
        raise SourceError(ErrorKind.SCHEMA, f"{name}: vector result is not a list") from exc
    item_type = _ONE[labelled]
    kept: list[Any] = []
    for item in raw_items:
        try:
            kept.append(msgspec.json.decode(item, type=item_type))
        except msgspec.ValidationError:
            continue
    return kept


def _read_carefully(
    body: bytes | bytearray | memoryview, name: str, labelled: bool
) -> tuple[list[Any], list[str]]:
    """The series and warnings of an answer the one-pass read refused, or why it is no vector."""
    try:
        envelope = _decode(_ENVELOPE, body)
    except msgspec.ValidationError as exc:
        raise SourceError(ErrorKind.SCHEMA, f"{name}: not a Prometheus API answer") from exc
    except msgspec.DecodeError as exc:
        raise SourceError(ErrorKind.TRUNCATED, f"{name}: invalid or truncated JSON") from exc
    if envelope.status != "success":
        if envelope.status != "error":
            raise SourceError(ErrorKind.SCHEMA, f"{name}: no success or error status in answer")
        error_type = envelope.errorType
        raise SourceError(
            _ERROR_KINDS.get(error_type or "", ErrorKind.HTTP_4XX),
            f"{name}: {one_line(error_type or 'error', 40)}: "
            f"{one_line(envelope.error or 'no message', 200)}",
        )
    warnings = _warnings(envelope.warnings)
    try:
        data = _decode(_DATA, envelope.data) if envelope.data else None
    except msgspec.ValidationError:
        data = None
    if data is None:
        raise SourceError(ErrorKind.SCHEMA, f"{name}: answer has no data object")
    if data.resultType != "vector":
        got = one_line(data.resultType, 20) if data.resultType else "nothing"
        raise SourceError(ErrorKind.SCHEMA, f"{name}: expected a vector result, got {got}")
    if not data.result:
        raise SourceError(ErrorKind.SCHEMA, f"{name}: vector result is not a list")
    return _series_items(data.result, labelled, name), warnings


def parse_response(
    body: bytes | bytearray | memoryview,
    name: str,
    limit: int = DEFAULT_LIMIT,
    labelled: bool = True,
) -> QueryResult:
    """Read one ``/api/v1/query`` answer that must be an instant vector.

    Args:
        body: the raw JSON envelope, as the server sent it (decompressed).
        name: the query's field name, used in error messages.
        limit: at most this many series are kept (0: all).
        labelled: keep every label of a series (``up``); otherwise only ``instance`` is read.

    Raises:
        SourceError: an error envelope (kind from its ``errorType``), any result that is not a
            vector (kind ``schema``), or a body that is not JSON (``truncated``, ``parse``).
    """
    if len(body) < 64 and not bytes(body).strip():
        raise SourceError(ErrorKind.EMPTY, f"{name}: empty body")
    warnings: list[str] = []
    items: list[Any] | None = None
    try:  # the common answer, read in one pass
        whole = _decode(_WHOLE[labelled], body)
        if whole.status == "success" and whole.data.resultType == "vector":
            items = whole.data.result
            warnings = [one_line(w, 200) for w in (whole.warnings or [])[:20] if w.strip()]
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass  # read again step by step below, to say what is wrong or to skip what is malformed
    if items is None:
        items, warnings = _read_carefully(body, name, labelled)
    truncated = 0
    if 0 < limit < len(items):
        truncated = len(items) - limit
        del items[limit:]
    if any(item.value is None for item in items):  # native histograms: no plain value
        items = [item for item in items if item.value is not None]
    values: list[Any] = [item.value.value for item in items]
    try:
        plain = math.isfinite(math.fsum(values))  # every value a finite float, in one C pass
    except (TypeError, OverflowError):  # None, a string ("+Inf", junk), or out of range
        plain = False
    if not plain:
        values = [sample_value(value) for value in values]
    labels: list[dict[str, str]] | None = None
    if labelled:
        # printable ASCII with no escape anywhere: every label decodes to plain text already
        plain_text = (
            isinstance(body, bytes | bytearray)
            and body.isascii()
            and b"\\" not in body
            and b"\x7f" not in body
        )
        clean = _bounded_labels if plain_text else clean_labels
        labels = [clean(item.metric) for item in items]
        instances = [item.metric.get("instance", "") for item in items]
    else:
        # the join key as the server sent it; only up's instances become node names
        instances = [item.metric.instance for item in items]
    return QueryResult(instances, values, warnings, labels, truncated)


def _instance(labels: Mapping[str, str]) -> str | None:
    instance = labels.get("instance")
    return instance if instance else None


def _raw_body(body: bytes | bytearray) -> bytes | bytearray:
    """The body as it came: it is decoded in a thread, not on the loop the poller shares."""
    return body


def _drop_frames(error: BaseException) -> None:
    """Let go of the frames a failed query's traceback holds, and so of its body.

    A refused answer can be up to ``max_body_mb``; the frames that read it keep it alive as long
    as the error does, and the errors of one poll live until it is stored. Only the message,
    kind and status are kept.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def refusal_hint(error: SourceError, source: PromqlSource) -> str:
    """What narrows or unblocks a query the server refused, or that we refused to read.

    Empty when the failure is not about the query's size or cost (a bad token, a refused port).
    """
    message = error.message.lower()
    where = source.where()
    if error.kind is ErrorKind.TOO_LARGE:
        return f"raise max_body_mb of {where} (now {source.max_body_mb}) or narrow its selector"
    if any(marker in message for marker in _TOO_BIG_MARKERS):
        return (
            f"narrow the selector of {where}, or raise the server's own limit "
            "(Prometheus --query.max-samples, VictoriaMetrics -search.maxUniqueTimeseries, "
            "Thanos/Mimir max series per query)"
        )
    if error.kind is ErrorKind.TIMEOUT or "timed out" in message:
        if "raise [fleet] timeout" in message:
            return ""
        return f"raise [fleet] timeout (now {source.timeout:g} s) or narrow the selector of {where}"
    return ""


# Phrases of the servers' "this query is too big" errors (Prometheus, VictoriaMetrics, Thanos,
# Mimir, Cortex), lower-cased.
_TOO_BIG_MARKERS = (
    "too many samples",
    "max-samples",
    "maxsamples",
    "maxuniquetimeseries",
    "too many time series",
    "too many series",
    "max number of series",
    "max series",
    "series limit",
    "exceeded the maximum",
    "exceeds the limit",
    "would fetch too many",
)


@dataclass
class PromqlSource(SourceDefaults):
    """Fleet nodes from a Prometheus-compatible server, one per ``instance`` matching ``selector``.

    Attributes:
        url: the server root (``http://127.0.0.1:9090``, or a path prefix for a proxy).
        selector: label matchers such as ``{job="node"}``, merged into every metric; empty means
            every target the server scrapes.
        timeout: the deadline of one poll in seconds; the server is asked to give up just before.
        headers: auth headers built from the environment; never logged nor repeated in errors.
        name: the source name (one per configured server).
        limit: the most series read from any one query (0: all).
        max_body_mb: the largest answer read, in MiB, after decompression.
    """

    url: str
    selector: str = ""
    timeout: float = 10.0
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    name: str = "promql"
    uses_network: bool = True
    limit: int = DEFAULT_LIMIT
    max_body_mb: int = DEFAULT_MAX_BODY_MB

    def where(self) -> str:
        """This server as the config names it, by host only (a URL may carry credentials)."""
        url = httpx.URL(self.url)
        port = f":{url.port}" if url.port else ""
        return f"the [[fleet.prometheus]] at {one_line(url.host + port, 80)}"

    def queries(self) -> dict[str, str]:
        """The PromQL sent for each field (see :func:`build_queries`)."""
        return build_queries(self.selector)

    def _params(self, query: str, remaining: float) -> dict[str, str]:
        # 90 % of what is left, so the server's own "timeout" error reaches us before we give up
        server_timeout_ms = max(100, int(remaining * 900))
        params = {"query": query, "timeout": f"{server_timeout_ms}ms"}
        if self.limit > 0:
            params["limit"] = str(self.limit)
        return params

    async def _query(
        self,
        client: httpx.AsyncClient,
        name: str,
        query: str,
        slots: asyncio.Semaphore,
        ends: float,
    ) -> QueryResult:
        headers = {"accept": "application/json", "accept-encoding": "gzip", **(self.headers or {})}
        # a few answers at a time: each may be tens of MB before it is decoded
        async with slots:
            # one deadline for the whole poll: a query queued behind slow ones gets what is left
            remaining = ends - time.monotonic()
            if remaining < MIN_QUERY_S:
                raise SourceError(
                    ErrorKind.TIMEOUT,
                    f"{name}: not sent, the poll's {self.timeout:g} s were spent on the queries "
                    f"before it; raise [fleet] timeout or narrow the selector of {self.where()}",
                )
            policy = HttpPolicy(deadline=remaining, body_cap=self.max_body_mb * 1024 * 1024)
            try:
                body = await get_json(
                    client,
                    self.url.rstrip("/") + QUERY_PATH,
                    params=self._params(query, remaining),
                    headers=headers,
                    policy=policy,
                    decode=_raw_body,
                )
                return await asyncio.to_thread(parse_response, body, name, self.limit, name == "up")
            except SourceError as error:
                _drop_frames(error)
                hint = refusal_hint(error, self)
                message = (
                    error.message
                    if error.message.startswith(f"{name}: ")
                    else (f"{name}: {error.message}")
                )
                raise SourceError(
                    error.kind,
                    f"{message}; {hint}" if hint else message,
                    status=error.status,
                    retry_after=error.retry_after,
                ) from None

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """Run every query and join them into one NodeSample per instance.

        Raises:
            SourceError: the ``up`` query failed (node health unknown), it matched no target, or
                the selector is malformed.
        """
        try:
            queries = self.queries()
        except ValueError as exc:
            raise SourceError(ErrorKind.HTTP_4XX, f"selector {self.selector!r}: {exc}") from exc
        names = list(queries)
        slots = asyncio.Semaphore(QUERIES_IN_FLIGHT)
        # the rest of the timeout is for decoding and the join, before the poller's own cut-off
        ends = time.monotonic() + self.timeout * QUERY_SHARE
        results = await asyncio.gather(
            *(self._query(client, name, queries[name], slots, ends) for name in names),
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
            answer = by_name.get(name)
            if answer is None:
                continue
            notes += [w for w in answer.warnings if w not in notes]
            if answer.truncated:
                notes.append(
                    f"{name}: {answer.truncated} series over the limit of {self.limit}; "
                    f"raise limit of {self.where()} (0 = all)"
                )
        return await asyncio.to_thread(_join, up, by_name, errors, notes, queries["up"])


def _join(
    up: QueryResult,
    by_name: Mapping[str, QueryResult],
    errors: list[EndpointError],
    notes: list[str],
    up_query: str,
) -> Reading:
    """One row per instance of ``up``, each figure a column from its query: linear, no objects.

    Each query becomes an instance -> value dict and then a column in ``up``'s row order, both
    built by C loops (``dict(zip)``, ``map``), so 100,000 nodes by a dozen queries join in well
    under a second.
    """
    first_row: dict[str, int] = {}
    healthy: list[bool] = []
    keys: list[str] = []
    labels: list[dict[str, str]] = []
    skipped = 0
    for instance, value, series_labels in zip(
        up.instances, up.values, up.labels or (), strict=True
    ):
        if not instance:
            skipped += 1
            continue
        at = first_row.get(instance)
        if at is None:
            first_row[instance] = len(keys)
            keys.append(instance)
            healthy.append(value == 1.0)
            labels.append(series_labels)
        else:  # the same target under two jobs: down if either is down, first labels kept
            healthy[at] = healthy[at] and value == 1.0
    if not keys:
        note = f" ({one_line('; '.join(notes), 200)})" if notes else ""
        raise SourceError(ErrorKind.EMPTY, f"no target matches {up_query}{note}")
    down = [not is_up for is_up in healthy]
    any_down = any(down)
    columns: dict[str, list[float | None]] = {}
    for name, result in by_name.items():
        if name == "up":
            continue
        # reversed: when an instance repeats, its first series is the one that stays
        by_instance = dict(zip(reversed(result.instances), reversed(result.values), strict=True))
        column = list(map(by_instance.get, keys))
        if any_down:  # a down node's rates still see old samples for 5 minutes: none shown
            column = [
                None if is_down else value for value, is_down in zip(column, down, strict=True)
            ]
        if name == "gpus":
            column = [None if value is None else _whole(value) for value in column]
        columns[name] = column
    return Reading(
        node_columns=NodeColumns(
            source_kind="promql",
            nodes=[safe_text(instance) for instance in keys],
            up=healthy,
            errors=[DOWN_ERROR if is_down else None for is_down in down],
            networks=[node_labels.get("network") or None for node_labels in labels],
            labels=labels,
            values=columns,
        ),
        errors=errors,
        skipped=skipped,
        note=one_line("; ".join(notes), NOTE_LEN) if notes else None,
    )


def _whole(value: float) -> float | None:
    """A count of GPUs: a whole, non-negative number, else missing."""
    return value if value >= 0 and value == int(value) else None
