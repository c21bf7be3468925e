"""PromqlSource against real Prometheus-compatible servers scraping a real node_exporter.

Every test runs twice: against Debian's ``prometheus`` and against Debian's ``victoria-metrics``
(single node, reading the same scrape config), each scraping ``prometheus-node-exporter`` on
free 127.0.0.1 ports (scrape interval 1 s), with two GPU exporter bodies served from loopback as
job "gpu" and the recorded real exporter bodies (tests/fixtures/real/) plus the written MIG and
DCGM-blank trap bodies as job "gpu-real"; tests/support/prom.py stops them whatever happens.
The source's numbers must agree with what the exporter itself serves, computed here by hand from
its /metrics, the GPU figures with the bodies' and with the exporter path's reading of the very
same bodies, and the node must turn down once the exporter is gone. The down test stops the
exporter, so it runs last for each server. Skipped without the binaries, except under CI=true
where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sources.base import make_client
from sources.exposition import parse_exposition
from sources.figures import VIRTUAL_NET_DEVICES
from sources.models import ErrorKind, NodeSample, Reading, SourceError
from sources.node_metrics import gpu_values
from sources.promql import DOWN_ERROR, SKIP_FSTYPES, PromqlSource
from tests.support.loopback import LoopbackServer, Reply
from tests.support.prom import (
    node_exporter,
    prometheus,
    query,
    require_binaries,
    start_victoria_metrics,
    stop,
    wait_for,
)

pytestmark = pytest.mark.integration

require_binaries()

SELECTOR = '{job="node"}'
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Bodies recorded from live exporters, and the written trap bodies no recording shows.
GPU_BODIES = (
    "real/dcgm_exporter_metrics.eccd-t4-doc.prom",
    "real/dcgm_exporter_metrics.upcloud-uks-l40s-doc.prom",
    "real/nvidia_gpu_exporter_metrics.ngx-golden-h100-80gb-590.48.01-load_trimmed.prom",
    "real/nvidia_gpu_exporter_metrics.ngx-golden-h200-mig-590.48.01-idle_trimmed.prom",
    "real/nvidia_gpu_exporter_metrics.ngx-golden-l40s-595.80-idle_trimmed.prom",
    "dcgm_exporter_mig.written.prom",
    "dcgm_exporter_blank_values.written.prom",
)
EKS_BODY = "real/node_exporter_metrics.1.9.1-eks-t3medium-doc_trimmed.prom"
SERVERS = ("prometheus", "victoria-metrics")


@dataclass
class Stack:
    server: str
    exporter: subprocess.Popen[bytes]
    exporter_url: str
    prometheus_url: str
    cpu_at_first_scrape: tuple[float, float]
    """The exporter's (idle, all modes) CPU seconds when the server had scraped it once."""
    gpu_bodies: dict[str, str]
    """The instance each GPU body of job "gpu-real" is scraped as -> its fixture path."""
    eks_instance: str

    @property
    def instance(self) -> str:
        return self.exporter_url.removeprefix("http://")


# Two GPU exporters as Prometheus sees them, served from loopback as job
# "gpu": dcgm-exporter with two H100s (FB in MiB) and nvidia_gpu_exporter with one RTX 4090.
DCGM = "\n".join(
    [
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge",
        "# TYPE DCGM_FI_DEV_GPU_TEMP gauge",
        "# TYPE DCGM_FI_DEV_POWER_USAGE gauge",
        "# TYPE DCGM_FI_DEV_FB_USED gauge",
        "# TYPE DCGM_FI_DEV_FB_FREE gauge",
        *(
            f'{name}{{gpu="{gpu}",UUID="GPU-{uuid}",device="nvidia{gpu}",'
            f'modelName="NVIDIA H100 80GB HBM3",Hostname="h1"}} {value}'
            for name, values in {
                "DCGM_FI_DEV_GPU_UTIL": ("80", "40"),
                "DCGM_FI_DEV_GPU_TEMP": ("65", "71"),
                "DCGM_FI_DEV_POWER_USAGE": ("300.5", "250.25"),
                "DCGM_FI_DEV_FB_USED": ("40960", "0"),
                "DCGM_FI_DEV_FB_FREE": ("40960", "81920"),
            }.items()
            for gpu, uuid, value in zip((0, 1), ("aaa", "bbb"), values, strict=True)
        ),
        "",
    ]
)
NVIDIA_SMI = "\n".join(
    [
        'nvidia_smi_gpu_info{uuid="ccc",name="NVIDIA GeForce RTX 4090",index="0"} 1',
        'nvidia_smi_utilization_gpu_ratio{uuid="ccc"} 0.35',
        'nvidia_smi_temperature_gpu{uuid="ccc"} 58',
        'nvidia_smi_power_draw_watts{uuid="ccc"} 210.5',
        'nvidia_smi_memory_used_bytes{uuid="ccc"} 6.442450944e+09',
        'nvidia_smi_memory_total_bytes{uuid="ccc"} 2.5769803776e+10',
        "",
    ]
)


def _metrics_server(body: str) -> LoopbackServer:
    reply = Reply(body=body.encode(), headers={"content-type": "text/plain; version=0.0.4"})
    return LoopbackServer({"/metrics": [reply]})


def _body_server(path: str) -> LoopbackServer:
    return _metrics_server((FIXTURES / path).read_text(encoding="utf-8"))


@contextlib.contextmanager
def _server(kind: str, tmp: Path, targets: list[str], jobs: dict[str, list[str]]) -> Iterator[str]:
    if kind == "prometheus":
        with prometheus(tmp, targets, interval="1s", extra_jobs=jobs) as (_, url):
            yield url
        return
    proc, url = start_victoria_metrics(tmp, targets, interval="1s", extra_jobs=jobs)
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module", params=SERVERS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(request.param)
    with contextlib.ExitStack() as servers:
        dcgm = servers.enter_context(_metrics_server(DCGM))
        smi = servers.enter_context(_metrics_server(NVIDIA_SMI))
        real = {path: servers.enter_context(_body_server(path)) for path in GPU_BODIES}
        eks = servers.enter_context(_body_server(EKS_BODY))
        exporter, exporter_url = servers.enter_context(node_exporter(tmp))
        jobs = {
            "gpu": [dcgm.url, smi.url],
            "gpu-real": [server.url for server in real.values()],
            "eks": [eks.url],
        }
        prometheus_url = servers.enter_context(_server(request.param, tmp, [exporter_url], jobs))
        cpu = cpu_seconds(exporter_samples(exporter_url))  # the start saw the first scrape
        # rate() over the 5m window needs two samples of each counter
        wait_for(lambda: _scrapes(prometheus_url) >= 2, timeout=15, what="two scrapes")
        yield Stack(
            request.param,
            exporter,
            exporter_url,
            prometheus_url,
            cpu,
            {_host(server.url): path for path, server in real.items()},
            _host(eks.url),
        )


def _host(url: str) -> str:
    """The ``instance`` a server gives the target at ``url`` (``host:port``)."""
    return url.removeprefix("http://").split("/", 1)[0]


def _scrapes(url: str) -> int:
    result = query(url, f"count_over_time(up{SELECTOR}[1m])")
    return int(float(result[0]["value"][1])) if result else 0


def exporter_samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample the exporter serves right now."""
    text = httpx.get(url + "/metrics", timeout=5.0).text
    out = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(_LABEL.findall(match.group(2) or ""))
            out.append((match.group(1), labels, float(match.group(3))))
    return out


def cpu_seconds(samples: list[tuple[str, dict[str, str], float]]) -> tuple[float, float]:
    """(idle, all modes) CPU seconds summed over every CPU."""
    cpu = [(labels.get("mode"), v) for n, labels, v in samples if n == "node_cpu_seconds_total"]
    return sum(v for mode, v in cpu if mode == "idle"), sum(v for _, v in cpu)


def expected_from_exporter(url: str, since: tuple[float, float]) -> dict[str, float | None]:
    """The PromQL formulas, by hand, on the exporter's own body."""
    samples = exporter_samples(url)

    def one(name: str) -> float:
        [value] = [v for n, _, v in samples if n == name]
        return value

    def root(name: str) -> list[float]:
        return [
            v
            for n, labels, v in samples
            if n == name
            and labels.get("mountpoint") == "/"
            and not re.fullmatch(SKIP_FSTYPES, labels.get("fstype", ""))
        ]

    avail, size = root("node_filesystem_avail_bytes"), root("node_filesystem_size_bytes")
    disk = 100 * (1 - avail[0] / size[0]) if avail and size else None
    nics = [
        labels["device"]
        for n, labels, _ in samples
        if n == "node_network_receive_bytes_total"
        and not re.fullmatch(VIRTUAL_NET_DEVICES, labels.get("device", ""))
    ]
    idle, total = cpu_seconds(samples)
    busy = 100 * (1 - (idle - since[0]) / (total - since[1])) if total > since[1] else None
    return {
        "cpu_pct": busy,
        "mem_pct": 100
        * (1 - one("node_memory_MemAvailable_bytes") / one("node_memory_MemTotal_bytes")),
        "disk_pct": disk,
        "load1": one("node_load1"),
        "uptime_s": one("node_time_seconds") - one("node_boot_time_seconds"),
        "nics": float(len(nics)),
    }


async def fetch(source: PromqlSource) -> Reading:
    async with make_client(timeout=5.0) as client:
        return await source.fetch(client)


def samples(reading: Reading) -> list[NodeSample]:
    assert reading.node_columns is not None, "a PromQL reading sends its nodes as columns"
    return reading.node_columns.samples()


def the_node(reading: Reading) -> NodeSample:
    [node] = samples(reading)
    return node


async def test_promql_agrees_with_the_exporter(stack: Stack):
    source = PromqlSource(url=stack.prometheus_url, selector=SELECTOR, timeout=5.0)
    expected = expected_from_exporter(stack.exporter_url, stack.cpu_at_first_scrape)
    reading = await fetch(source)
    assert reading.errors == [] and reading.note is None
    node = the_node(reading)
    assert node.node == stack.instance and node.source_kind == "promql"
    assert node.up is True and node.error is None
    assert node.labels == {"instance": stack.instance, "job": "node"}
    assert node.mem_pct == pytest.approx(expected["mem_pct"], abs=5)
    assert node.load1 == pytest.approx(expected["load1"], abs=1.0)
    assert node.uptime_s == pytest.approx(expected["uptime_s"], abs=30)
    if expected["disk_pct"] is None:  # no real root filesystem (a container's overlay)
        assert node.disk_pct is None
    else:
        assert node.disk_pct == pytest.approx(expected["disk_pct"], abs=2)
    assert node.cpu_pct is not None and 0 <= node.cpu_pct <= 100
    for rate in (node.net_rx_bps, node.net_tx_bps):
        assert (rate is None) if not expected["nics"] else (rate is not None and rate >= 0)
    # no GPU exporter: no GPU values, not zeros
    assert (node.gpus, node.gpu_util_pct, node.gpu_temp_c, node.gpu_power_w) == (None,) * 4
    assert node.gpu_mem_pct is None


def busy_from_raw_samples(url: str) -> tuple[float, float]:
    """(busy %, newest sample time) by hand from every stored CPU sample: 1 - Δidle / Δall."""
    idle = total = 0.0
    newest = 0.0
    for series in query(url, f"node_cpu_seconds_total{SELECTOR}[5m]"):
        (_, first), (last_ts, last) = series["values"][0], series["values"][-1]
        delta = float(last) - float(first)
        total += delta
        idle += delta if series["metric"]["mode"] == "idle" else 0.0
        newest = max(newest, float(last_ts))
    return 100 * (1 - idle / total), newest


async def test_cpu_is_busy_time_over_all_cpu_time_even_for_a_young_series(stack: Stack):
    # The series is seconds old, far shorter than the 5m window: rate() alone is scaled down by
    # its age (avg(rate(idle)) read ~99 % busy on an idle machine). The ratio must equal the
    # stored samples' Δidle / Δall exactly; retried until no scrape lands between the reads.
    source = PromqlSource(url=stack.prometheus_url, selector=SELECTOR, timeout=5.0)
    for _ in range(10):
        before = busy_from_raw_samples(stack.prometheus_url)
        cpu = the_node(await fetch(source)).cpu_pct
        if busy_from_raw_samples(stack.prometheus_url) == before:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("a scrape landed between the reads 10 times in a row")
    if stack.server == "prometheus":
        assert cpu == pytest.approx(before[0], abs=1e-6)
    else:
        # VictoriaMetrics reads "now" -search.latencyOffset (1 s) back and its rate() takes the
        # sample before the window as the start: the same ratio over a slightly other span
        assert cpu == pytest.approx(before[0], abs=5)


async def test_gpu_values_from_dcgm_or_nvidia_smi_exporters(stack: Stack):
    source = PromqlSource(url=stack.prometheus_url, selector='{job="gpu"}', timeout=5.0)
    reading = await fetch(source)
    assert reading.errors == [] and len(samples(reading)) == 2
    dcgm, smi = sorted(samples(reading), key=lambda n: n.gpus or 0, reverse=True)
    assert dcgm.up and smi.up
    gpu = ("gpus", "gpu_util_pct", "gpu_temp_c", "gpu_power_w", "gpu_mem_pct")
    # mean util, hottest GPU, summed power, used / (used + free) over both boards
    assert [getattr(dcgm, f) for f in gpu] == [2, 60.0, 71.0, 550.75, 25.0]
    assert [getattr(smi, f) for f in gpu] == [1, pytest.approx(35.0), 58.0, 210.5, 25.0]
    # no node_exporter there: no CPU figures, not zeros
    assert (dcgm.cpu_pct, dcgm.mem_pct, smi.load1) == (None, None, None)


async def test_an_empty_selector_sees_every_target(stack: Stack):
    reading = await fetch(PromqlSource(url=stack.prometheus_url, timeout=5.0))
    nodes = {n.node: n for n in samples(reading)}
    assert len(nodes) == 4 + len(GPU_BODIES) and reading.errors == []
    assert nodes[stack.instance].mem_pct is not None and nodes[stack.instance].gpus is None


async def test_a_selector_matching_nothing_is_an_empty_poll(stack: Stack):
    source = PromqlSource(url=stack.prometheus_url, selector='{job="nope"}', timeout=5.0)
    with pytest.raises(SourceError) as info:
        await fetch(source)
    assert info.value.kind is ErrorKind.EMPTY


async def test_the_real_servers_bad_data_error_fails_the_poll(stack: Stack):
    source = PromqlSource(url=stack.prometheus_url, selector='{job=~"("}', timeout=5.0)
    with pytest.raises(SourceError) as info:
        await fetch(source)
    # Prometheus says 400 bad_data, VictoriaMetrics 422 with its own text: both a query error
    status = 400 if stack.server == "prometheus" else 422
    assert info.value.kind is ErrorKind.HTTP_4XX and info.value.status == status
    assert f"node health unknown: up: HTTP {status}" in info.value.message


GPU_FIELDS = ("gpus", "gpu_util_pct", "gpu_temp_c", "gpu_power_w", "gpu_mem_pct")


async def test_real_gpu_bodies_read_the_same_through_the_server_as_scraped(stack: Stack):
    # The same recorded bodies, the same figures: MIG instances summed per GPU, GPUs counted
    # without GPU_UTIL, DCGM blanks and out-of-range values missing, in both paths alike.
    source = PromqlSource(url=stack.prometheus_url, selector='{job="gpu-real"}', timeout=5.0)
    reading = await fetch(source)
    assert reading.errors == []
    nodes = {n.node: n for n in samples(reading)}
    assert set(nodes) == set(stack.gpu_bodies)
    for instance, path in stack.gpu_bodies.items():
        node = nodes[instance]
        assert node.up, path
        scraped = gpu_values(parse_exposition((FIXTURES / path).read_text(encoding="utf-8")))
        for field in GPU_FIELDS:
            want = scraped[field]
            got = getattr(node, field)
            assert (got is None) == (want is None), f"{path}: {field} {got} vs {want}"
            if want is not None:
                assert got == pytest.approx(want, rel=1e-9), f"{path}: {field}"
        assert node.gpus is not None and node.gpus >= 1, path


async def test_pod_interfaces_are_left_out_by_the_server_as_by_the_exporter_path(stack: Stack):
    # The EKS node's body: the PromQL matcher keeps exactly the devices the Python pattern keeps.
    kept = query(
        stack.prometheus_url,
        f'node_network_receive_bytes_total{{job="eks",device!~"{VIRTUAL_NET_DEVICES}"}}',
    )
    every = query(stack.prometheus_url, 'node_network_receive_bytes_total{job="eks"}')
    devices = {series["metric"]["device"] for series in every}
    expected = {d for d in devices if not re.fullmatch(VIRTUAL_NET_DEVICES, d)}
    assert {series["metric"]["device"] for series in kept} == expected
    assert expected and expected != devices  # the body has pod interfaces to leave out


async def test_stopping_the_exporter_turns_the_node_down(stack: Stack):
    # runs last in this module: the exporter does not come back
    source = PromqlSource(url=stack.prometheus_url, selector=SELECTOR, timeout=5.0)
    assert the_node(await fetch(source)).up is True
    stop(stack.exporter)
    end = time.monotonic() + 15
    node = the_node(await fetch(source))
    while node.up and time.monotonic() < end:
        await asyncio.sleep(0.5)
        node = the_node(await fetch(source))
    assert node.up is False, "still up 15 s after the exporter stopped"
    assert node.node == stack.instance and node.error == DOWN_ERROR
    assert (node.cpu_pct, node.mem_pct, node.uptime_s, node.net_rx_bps) == (None,) * 4
