"""Fetching a public network's endpoints one by one, so one failure never discards the rest.

Each endpoint is a path under the source's single ``base_url`` and a parser from its JSON body to
metrics and GPU models. A parser raises SourceError (kind ``schema``) when the body does not have
the shape it needs; it never guesses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from sources.base import HttpPolicy, RequestBudget, SourceDefaults, get_json
from sources.models import (
    EndpointError,
    ErrorKind,
    GpuModel,
    NetworkMetric,
    Reading,
    SourceError,
)

Parsed = tuple[list[NetworkMetric], list[GpuModel]]
Parser = Callable[[Any, str], Parsed]
"""(JSON body, endpoint path) -> (metrics, GPU models)."""


@dataclass(frozen=True)
class Endpoint:
    """One GET under ``base_url`` and how to read its body."""

    path: str
    parse: Parser
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The path, with its query when it has one (two endpoints may share a path)."""
        if not self.params:
            return self.path
        return self.path + "?" + "&".join(f"{k}={v}" for k, v in self.params.items())


def metric(
    network: str, name: str, value: float | None, unit: str, endpoint: str, out: list[NetworkMetric]
) -> None:
    """Append a metric when the network published a value (missing stays missing, never 0)."""
    if value is not None:
        out.append(
            NetworkMetric(network=network, metric=name, value=value, unit=unit, endpoint=endpoint)
        )


def utilization(active: float | None, total: float | None) -> float | None:
    """Active ÷ total × 100 from the same poll; None when either is missing or total is 0."""
    if active is None or total is None or total <= 0:
        return None
    return active / total * 100.0


async def fetch_endpoints(
    client: httpx.AsyncClient,
    base_url: str,
    endpoints: Sequence[Endpoint],
    *,
    deadline: float,
    headers: Mapping[str, str] | None = None,
    budget: RequestBudget | None = None,
) -> Reading:
    """GET every endpoint concurrently within one overall deadline; parse each on its own.

    ``budget``, when given, is taken before every attempt of every endpoint (the budget is often
    shared with another source of the same provider, so each request must count).

    Returns whatever succeeded with the failures listed in ``Reading.errors``; raises the most
    telling SourceError when every endpoint failed (a rate limit or key error first).
    """
    root = base_url.rstrip("/")
    started = time.monotonic()

    async def one(endpoint: Endpoint) -> Parsed:
        remaining = max(0.1, deadline - (time.monotonic() - started))
        body = await get_json(
            client,
            root + endpoint.path,
            params=endpoint.params,
            headers=headers,
            policy=HttpPolicy(deadline=remaining),
            budget=budget,  # the provider's limit counts every request, retries included
        )
        try:
            return endpoint.parse(body, endpoint.path)
        except SourceError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            raise SourceError(
                ErrorKind.SCHEMA,
                f"{endpoint.path}: unexpected shape ({type(exc).__name__}; schema changed?)",
            ) from exc

    results = await asyncio.gather(*(one(e) for e in endpoints), return_exceptions=True)
    metrics: list[NetworkMetric] = []
    gpu_models: list[GpuModel] = []
    errors: list[EndpointError] = []
    for endpoint, result in zip(endpoints, results, strict=True):
        if isinstance(result, SourceError):
            errors.append(EndpointError(endpoint.label, result))
        elif isinstance(result, BaseException):
            raise result
        else:
            metrics.extend(result[0])
            gpu_models.extend(result[1])
    if errors and not metrics and not gpu_models:
        ranked = sorted(
            errors,
            key=lambda e: (
                e.error.kind is not ErrorKind.RATE_LIMITED,
                e.error.kind is not ErrorKind.AUTH,
            ),
        )
        first = ranked[0].error
        detail = "; ".join(f"{e.endpoint}: {e.error.kind}" for e in errors[:4])
        raise SourceError(
            first.kind,
            f"every endpoint failed ({detail}): {first.message}",
            status=first.status,
            retry_after=first.retry_after,
        )
    return Reading(metrics=metrics, gpu_models=gpu_models, errors=errors)


@dataclass
class NetworkSource(SourceDefaults):
    """A public network's API: its endpoints under one ``base_url``, each stored on its own.

    Subclasses set ``ENDPOINTS`` and the defaults of ``base_url`` and ``name``.
    """

    ENDPOINTS: ClassVar[tuple[Endpoint, ...]] = ()
    base_url: str = ""
    timeout: float = 10.0
    name: str = ""
    uses_network: bool = True
    budget: RequestBudget | None = None
    """A client-side request budget, where the provider documents one."""

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """Fetch every endpoint; failures are listed in ``Reading.errors`` unless all failed."""
        return await fetch_endpoints(
            client,
            self.base_url,
            self.ENDPOINTS,
            deadline=self.timeout,
            headers={"accept": "application/json"},
            budget=self.budget,
        )
