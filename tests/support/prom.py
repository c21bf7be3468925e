"""Real Prometheus and node_exporter binaries on loopback, for integration tests.

``start_node_exporter`` and ``start_prometheus`` spawn Debian's binaries (or upstream ones named
by ``NODE_EXPORTER_BIN`` / ``PROMETHEUS_BIN``) on free 127.0.0.1 ports, with their logs in files
under the test's tmp_path, and return only once they answer; a start that fails stops the process
and raises with the log's tail. The ``node_exporter`` and ``prometheus`` context managers stop
them on the way out whatever happened (SIGTERM, then SIGKILL after a bound). Every wait is
bounded. The children also get SIGKILL if the test process dies without cleaning up (Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

START_TIMEOUT = 20.0
STOP_GRACE = 5.0
POLL_INTERVAL = 0.1
# node_exporter collectors the fleet reads: cheap, no hardware probing, no sysfs walks.
CHEAP_COLLECTORS = (
    "cpu",
    "meminfo",
    "filesystem",
    "loadavg",
    "time",
    "stat",
    "netdev",
    "uname",
    "os",
)
NODE_EXPORTER_NAMES = ("prometheus-node-exporter", "node_exporter")
PROMETHEUS_NAMES = ("prometheus",)
VICTORIA_METRICS_NAMES = ("victoria-metrics", "victoria-metrics-prod")

T = TypeVar("T")


def _which(env: str, names: Sequence[str]) -> str | None:
    override = os.environ.get(env)
    if override:
        return override if os.access(override, os.X_OK) else None
    return next((path for name in names if (path := shutil.which(name))), None)


def node_exporter_binary() -> str | None:
    """Path of node_exporter (``NODE_EXPORTER_BIN`` or on PATH), or None."""
    return _which("NODE_EXPORTER_BIN", NODE_EXPORTER_NAMES)


def prometheus_binary() -> str | None:
    """Path of prometheus (``PROMETHEUS_BIN`` or on PATH), or None."""
    return _which("PROMETHEUS_BIN", PROMETHEUS_NAMES)


def victoria_metrics_binary() -> str | None:
    """Path of VictoriaMetrics single-node (``VICTORIA_METRICS_BIN`` or on PATH), or None."""
    return _which("VICTORIA_METRICS_BIN", VICTORIA_METRICS_NAMES)


def require_victoria_metrics() -> str:
    """The victoria-metrics path; skip the caller when missing, fail instead under CI=true."""
    binary = victoria_metrics_binary()
    if binary is not None:
        return binary
    reason = "victoria-metrics not installed (apt-get install victoria-metrics)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def require_binaries() -> tuple[str, str]:
    """(node_exporter, prometheus) paths; skip the caller when missing, fail instead under CI.

    Callable from a test, a fixture or module level. CI (``CI=true``) installs both with apt-get,
    so a missing binary there is a broken setup, not a reason to skip.
    """
    exporter, prometheus = node_exporter_binary(), prometheus_binary()
    missing = [
        what
        for what, path in (("prometheus-node-exporter", exporter), ("prometheus", prometheus))
        if path is None
    ]
    if exporter is not None and prometheus is not None:
        return exporter, prometheus
    reason = (
        f"{' and '.join(missing)} not installed (apt-get install prometheus "
        "prometheus-node-exporter)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process may still take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = POLL_INTERVAL
) -> T:
    """Call ``check`` until it returns something other than None or False, at most ``timeout`` s.

    Exceptions from ``check`` (a connection refused while a server starts) count as "not yet".

    Raises:
        TimeoutError: naming ``what`` and the last exception, if any.
    """
    end = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last, result = exc, None
        if result is not None and result is not False:
            return result
        if time.monotonic() >= end:
            suffix = f" (last error: {type(last).__name__}: {last})" if last else ""
            raise TimeoutError(f"{what} not within {timeout:g} s{suffix}")
        time.sleep(interval)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # a killed test run must not leave servers holding ports; Linux only (PR_SET_PDEATHSIG = 1)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


def stop(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """Stop one process we started: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _started(proc: subprocess.Popen[bytes], log: Path, ready: Callable[[], Any], what: str) -> None:
    """Wait until ``ready`` holds; on failure or early exit stop ``proc`` and raise with its log."""

    def check() -> Any:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        return ready()

    try:
        wait_for(check, timeout=START_TIMEOUT, what=f"{what} ready")
    except (TimeoutError, RuntimeError) as exc:
        stop(proc)
        raise RuntimeError(f"{exc}\n--- {log.name} ---\n{_log_tail(log)}") from exc


def _answers(url: str) -> bool:
    return httpx.get(url, timeout=2.0).status_code == 200


def start_node_exporter(
    tmp_path: Path, collectors: Sequence[str] | None = CHEAP_COLLECTORS
) -> tuple[subprocess.Popen[bytes], str]:
    """Start node_exporter on a free loopback port; return (process, ``http://127.0.0.1:PORT``).

    Args:
        tmp_path: where its log goes.
        collectors: the only collectors enabled; None keeps the exporter's defaults.
    """
    binary, _ = require_binaries()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    if collectors is not None:
        args += ["--collector.disable-defaults", *(f"--collector.{c}" for c in collectors)]
    log = tmp_path / f"node_exporter-{port}.log"
    proc = _spawn(args, log)
    _started(proc, log, lambda: _answers(url + "/metrics"), "node_exporter")
    return proc, url


def _target(value: str) -> tuple[str, str]:
    """``host:port`` and metrics path of a target given as ``host:port`` or a URL."""
    if "://" not in value:
        return value, "/metrics"
    parts = urlsplit(value)
    return parts.netloc, parts.path or "/metrics"


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """Run an instant query on a Prometheus server and return its vector (test helper)."""
    response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5.0)
    body = response.json()
    if body.get("status") != "success":
        raise ValueError(f"query {promql!r} failed: {body.get('error')}")
    return list(body["data"]["result"])


def _scrape_config(job: str, targets: Sequence[str], interval: str) -> dict[str, Any]:
    parsed = [_target(t) for t in targets]
    paths = {path for _, path in parsed}
    if len(paths) > 1:
        raise ValueError(f"the targets of job {job} must share one metrics path")
    return {
        "job_name": job,
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "metrics_path": paths.pop() if paths else "/metrics",
        "static_configs": [{"targets": [host for host, _ in parsed]}],
    }


def start_prometheus(
    tmp_path: Path,
    scrape_targets: Sequence[str],
    interval: str = "1s",
    *,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start Prometheus on a free loopback port, scraping ``scrape_targets`` as job ``node``.

    Returns once the server is ready and ``up`` has a sample for every target.

    Args:
        tmp_path: where its config, TSDB and log go.
        scrape_targets: ``host:port`` or URLs (``http://127.0.0.1:9100/metrics``); one path for
            all.
        interval: scrape and evaluation interval (the scrape timeout is the same).
        extra_jobs: more jobs, by name, with their targets in the same forms.
    """
    _, binary = require_binaries()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    jobs = {"node": scrape_targets, **(extra_jobs or {})}
    home = tmp_path / f"prometheus-{port}"
    config_file = _write_scrape_config(
        home / "prometheus.yml", jobs, interval, {"evaluation_interval": interval}
    )
    args = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]
    log = home / "prometheus.log"
    proc = _spawn(args, log)
    _started(proc, log, lambda: _answers(url + "/-/ready"), "prometheus")
    # the first scrape comes ~5 s after start: Prometheus hands out targets on a 5 s tick
    _first_scrape(proc, log, url, jobs, "prometheus")
    return proc, url


def _write_scrape_config(
    path: Path,
    jobs: Mapping[str, Sequence[str]],
    interval: str,
    extra_global: Mapping[str, str] | None = None,
) -> Path:
    """One scrape config (JSON, which is YAML) that Prometheus and VictoriaMetrics both read."""
    config = {
        "global": {"scrape_interval": interval, **(extra_global or {})},
        "scrape_configs": [_scrape_config(job, t, interval) for job, t in jobs.items()],
    }
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config, indent=2))
    return path


def _first_scrape(
    proc: subprocess.Popen[bytes],
    log: Path,
    url: str,
    jobs: Mapping[str, Sequence[str]],
    what: str,
) -> None:
    """Wait until ``up`` has a sample for every target of every job."""
    expected = sum(len(t) for t in jobs.values())
    if expected:
        _started(proc, log, lambda: len(query(url, "up")) >= expected, f"{what} first scrape")


def start_victoria_metrics(
    tmp_path: Path,
    scrape_targets: Sequence[str],
    interval: str = "1s",
    *,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start VictoriaMetrics on a free loopback port, scraping as :func:`start_prometheus` does.

    It reads the same scrape config (``-promscrape.config``) and answers the same HTTP API.
    ``-search.latencyOffset`` is cut from its 30 s default to 1 s: otherwise an instant query
    sees nothing scraped in the last 30 s, which would hide a node that went down. Returns once
    ``up`` has a sample for every target.
    """
    binary = require_victoria_metrics()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    jobs = {"node": scrape_targets, **(extra_jobs or {})}
    home = tmp_path / f"victoria-metrics-{port}"
    config_file = _write_scrape_config(home / "scrape.yml", jobs, interval)
    args = [
        binary,
        f"-promscrape.config={config_file}",
        f"-storageDataPath={home / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=1d",
        "-search.latencyOffset=1s",
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]
    log = home / "victoria-metrics.log"
    proc = _spawn(args, log)
    _started(proc, log, lambda: _answers(url + "/health"), "victoria-metrics")
    _first_scrape(proc, log, url, jobs, "victoria-metrics")
    return proc, url


@contextlib.contextmanager
def node_exporter(
    tmp_path: Path, collectors: Sequence[str] | None = CHEAP_COLLECTORS
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A running node_exporter (see :func:`start_node_exporter`), always stopped on exit."""
    proc, url = start_node_exporter(tmp_path, collectors)
    try:
        yield proc, url
    finally:
        stop(proc)


@contextlib.contextmanager
def prometheus(
    tmp_path: Path,
    scrape_targets: Sequence[str],
    interval: str = "1s",
    *,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A running Prometheus (see :func:`start_prometheus`), always stopped on exit."""
    proc, url = start_prometheus(tmp_path, scrape_targets, interval, extra_jobs=extra_jobs)
    try:
        yield proc, url
    finally:
        stop(proc)
