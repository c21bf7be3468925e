"""Scraping the operator's exporters with Prometheus semantics.

Bounded concurrency, one deadline per target, a 4 MiB body cap and a sample cap; all-or-nothing
per target (a failed scrape marks the node down and stores no partial sample). Counter rates come
from the previous stored sample of the same node, handed in as ``previous`` by the poller, so two
separate ``poll --once`` runs already give rates.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from sources.base import HttpPolicy, PollContext, SourceDefaults, get_text, make_client
from sources.exposition import ExpositionError, parse_exposition
from sources.models import ErrorKind, NodeSample, Reading, SourceError
from sources.node_metrics import gpu_values, node_values
from sources.text import one_line, safe_text

log = logging.getLogger(__name__)

METRICS_BODY_CAP = 4 * 1024 * 1024
ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


@dataclass(frozen=True)
class Credentials:
    """Basic auth or a bearer token, held as secrets until the header is built."""

    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None

    def headers(self) -> dict[str, str]:
        """The Authorization header, built at the last moment."""
        if self.token is not None:
            return {"authorization": f"Bearer {self.token.get_secret_value()}"}
        if self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password.get_secret_value()}".encode()
            return {"authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}


def credentials_from_env(
    username: str | None,
    password_env: str | None,
    token_env: str | None,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Read the named environment variables; a named but unset variable is an error."""
    env = os.environ if environ is None else environ
    token = password = None
    if token_env:
        if not env.get(token_env):
            raise ValueError(f"environment variable {token_env} is not set")
        token = SecretStr(env[token_env])
    if password_env:
        if not env.get(password_env):
            raise ValueError(f"environment variable {password_env} is not set")
        password = SecretStr(env[password_env])
    return Credentials(username=username, password=password, token=token)


@dataclass(frozen=True)
class Target:
    """One node: its exporter URL, an optional GPU exporter URL, labels and credentials."""

    name: str
    url: str
    gpu_url: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    credentials: Credentials = Credentials()
    ca_file: str | None = None
    """The CA that signed this exporter's certificate (exporter-toolkit TLS)."""
    insecure: bool = False

    @property
    def network(self) -> str | None:
        """The DePIN network the node serves, from its ``network`` label."""
        return self.labels.get("network")


def _is_openmetrics(content_type: str) -> bool:
    return "openmetrics" in content_type.lower()


@dataclass
class ExporterFleetSource(SourceDefaults):
    """Every configured exporter target, scraped concurrently; one NodeSample per target."""

    targets: Callable[[], list[Target]]
    """Called each cycle: static targets plus file_sd lists re-read when they change."""
    timeout: float = 10.0
    concurrency: int = 64
    max_samples: int = 20_000
    name: str = "fleet"
    uses_network: bool = True
    counter_kind: str = "exporter"
    """Whose stored counters the poller hands back in ``previous``."""
    previous: dict[str, dict[str, float]] = field(default_factory=dict)
    """Each node's counter totals from the previous stored sample (set by the poller)."""
    clock: Callable[[], float] = time.time

    def prepare(self, context: PollContext) -> None:
        """Take the previous counters the poller keeps for this source."""
        self.previous = context.previous

    async def _scrape(self, client: httpx.AsyncClient, url: str, target: Target) -> list[Any]:
        policy = HttpPolicy(deadline=self.timeout, body_cap=METRICS_BODY_CAP, attempts=1)
        headers = {"accept": ACCEPT, **target.credentials.headers()}
        body, content_type = await get_text(client, url, headers=headers, policy=policy)
        kind = content_type.split(";")[0].strip().lower()
        if kind and not (kind.startswith("text/plain") or "openmetrics" in kind):
            # a login page or a proxy's error page: never feed it to the parser
            raise SourceError(
                ErrorKind.BAD_CONTENT_TYPE,
                f"{target.name}: answered {one_line(kind, 60)}, not metrics",
            )
        if not body.strip():
            raise SourceError(ErrorKind.EMPTY, f"{target.name}: empty body (not all zeros)")
        try:
            return parse_exposition(
                body, openmetrics=_is_openmetrics(content_type), max_samples=self.max_samples
            )
        except ExpositionError as exc:
            kind = {"sample_limit": ErrorKind.TOO_LARGE, "truncated": ErrorKind.TRUNCATED}.get(
                exc.reason, ErrorKind.PARSE
            )
            raise SourceError(kind, f"{target.name}: {exc.reason}: {one_line(exc, 120)}") from exc

    async def scrape_target(self, client: httpx.AsyncClient, target: Target) -> NodeSample:
        """Scrape one node (and its GPU exporter); any failure makes it a down sample."""
        base = {
            "node": target.name,
            "source_kind": "exporter",
            "network": target.network,
            "labels": {safe_text(k, 100): safe_text(v) for k, v in target.labels.items()},
        }
        try:
            samples = await self._scrape(client, target.url, target)
            gpu_samples = (
                await self._scrape(client, target.gpu_url, target) if target.gpu_url else []
            )
        except SourceError as error:
            return NodeSample(**base, up=False, error=f"{error.kind}: {error.message}")
        values = node_values(samples, now=self.clock(), previous=self.previous.get(target.name))
        gpu = gpu_values(gpu_samples or samples)
        return NodeSample(**base, up=True, **values, **gpu)

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """All targets, at most ``concurrency`` at a time; down nodes are data, not errors."""
        targets = self.targets()
        if not targets:
            raise SourceError(ErrorKind.EMPTY, "no fleet targets configured")
        gate = asyncio.Semaphore(self.concurrency)
        # targets with their own CA (or TLS checks off) get their own client for this cycle
        own = {(t.ca_file, t.insecure) for t in targets if t.ca_file or t.insecure}
        clients: dict[tuple[str | None, bool], httpx.AsyncClient] = {}
        try:
            for ca_file, insecure in own:
                try:
                    clients[(ca_file, insecure)] = make_client(
                        timeout=self.timeout, ca_file=ca_file, insecure=insecure
                    )
                except ValueError as exc:  # an unreadable CA file: those targets are down
                    log.warning("fleet: %s", one_line(exc, 200))

            async def bounded(target: Target) -> NodeSample:
                key = (target.ca_file, target.insecure)
                if key in own and key not in clients:
                    return NodeSample(
                        node=target.name,
                        source_kind="exporter",
                        up=False,
                        network=target.network,
                        error=f"connect: cannot load ca_file {target.ca_file}",
                    )
                async with gate:
                    return await self.scrape_target(clients.get(key, client), target)

            nodes = await asyncio.gather(*(bounded(t) for t in targets))
        finally:
            for own_client in clients.values():
                await own_client.aclose()
        return Reading(nodes=list(nodes))
