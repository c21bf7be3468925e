"""Akash providers: the console's online state of each provider the fleet names.

One request per provider and cycle, ``GET /v1/providers/{address}`` on the console API (no
auth), for the providers named by fleet labels (``provider = "akash1…"``) and by
``[sources.akash] providers``; never the whole ``/v1/providers`` list, which is large. Each answer
becomes a :class:`~sources.models.DeviceStatus` with network ``akash`` and the provider address as
``device_id``, stored in the ``devices`` table like an io.net device:

- ``status``: ``up`` when ``isOnline`` is true, ``down`` when false; missing when ``isOnline`` is
  not a boolean, or when the console's own check (``lastCheckDate``) is older than
  ``max_check_age`` (a stale check is not a reading of now) or absent;
- ``uptime_pct``: ``uptime7d`` × 100 (the console publishes 0–1 fractions);
- ``name``, ``location`` (``ipCountry``, else ``country``), ``hardware`` (the GPU models, joined).

A 404 means the console does not know the address: the row says so in ``error``, with no status.
The console publishes no request limit; its servers cache for 60 s, and one call per 3 s is the
advice we follow (:data:`REQUEST_LIMIT` per :data:`REQUEST_WINDOW`), so the interval is never
below 3 s per provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from sources.akash import DEFAULT_ROOT, NETWORK
from sources.akash_address import is_provider_address
from sources.base import (
    CacheInput,
    HttpPolicy,
    PollContext,
    RequestBudget,
    SourceDefaults,
    get_json,
)
from sources.models import DeviceStatus, EndpointError, ErrorKind, Reading, SourceError
from sources.models import _finite_or_none as lax_number
from sources.text import one_line

PROVIDER = "/v1/providers/{address}"
REQUEST_LIMIT = 20
REQUEST_WINDOW = 60.0
"""One request per 3 s on average, in bursts of up to 20."""
MAX_CHECK_AGE = 3600.0
"""Seconds: a console check older than this is not taken as the provider's state now."""
CONCURRENCY = 4

ProviderMap = dict[str, str | None]
"""provider address → the fleet node labelled with it (None for one configured on its own)."""


def _schema(endpoint: str, what: str) -> SourceError:
    return SourceError(ErrorKind.SCHEMA, f"{endpoint}: {what} (schema changed?)")


def _text(value: Any, limit: int = 80) -> str | None:
    if isinstance(value, str):
        return one_line(value, limit) or None
    return None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_provider(
    body: Any, endpoint: str, now: datetime, max_check_age: float = MAX_CHECK_AGE
) -> dict[str, Any]:
    """The ``DeviceStatus`` fields of one provider detail body.

    Raises:
        SourceError: ``schema`` when the body is not a provider object (no ``owner``).
    """
    if not isinstance(body, dict) or not isinstance(body.get("owner"), str):
        raise _schema(endpoint, "not a provider object")
    online = body.get("isOnline")
    checked = _moment(body.get("lastCheckDate"))
    status: str | None = None
    note: str | None = None
    if not isinstance(online, bool):
        note = "no isOnline"
    elif checked is None:
        note = "no lastCheckDate"
    elif (now - checked).total_seconds() > max_check_age:
        note = f"console last checked it {checked:%Y-%m-%dT%H:%MZ}"
    else:
        status = "up" if online else "down"
    uptime = lax_number(body.get("uptime7d"))
    models = body.get("gpuModels")
    hardware = None
    if isinstance(models, list):
        names = sorted(
            {
                f"{m.get('vendor', '')} {m.get('model', '')}".strip()
                for m in models
                if isinstance(m, dict) and isinstance(m.get("model"), str)
            }
        )
        hardware = _text(", ".join(names), 120) if names else None
    return {
        "name": _text(body.get("name")) or _text(body.get("hostUri")),
        "status": status,
        "uptime_pct": uptime * 100 if uptime is not None and 0 <= uptime <= 1 else None,
        "location": _text(body.get("ipCountry")) or _text(body.get("country")),
        "hardware": hardware,
        "error": note,
    }


@dataclass
class AkashProviderSource(SourceDefaults):
    """The console's online state for every Akash provider the fleet names."""

    base_url: str = DEFAULT_ROOT
    providers: Callable[[], ProviderMap] = dict
    timeout: float = 30.0
    name: str = "akash-providers"
    uses_network: bool = True
    max_check_age: float = MAX_CHECK_AGE
    api_budget: RequestBudget = field(
        default_factory=lambda: RequestBudget(REQUEST_LIMIT, REQUEST_WINDOW)
    )
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    fleet_providers: ProviderMap = field(default_factory=dict)
    """Providers named by the labels of nodes in the cache (file_sd, Prometheus); set by the
    poller before each run."""
    needs = frozenset({CacheInput.FLEET_PROVIDERS})

    @property
    def budget(self) -> RequestBudget:
        """One call per 3 s on average to the console API."""
        return self.api_budget

    def prepare(self, context: PollContext) -> None:
        """Take the providers the fleet's nodes are labelled with, read before each run."""
        self.clock = context.clock
        self.fleet_providers = dict(context.fleet_providers)

    def all_providers(self) -> ProviderMap:
        """Configured and labelled providers (a fleet node name wins).

        Only well-formed addresses: a label may hold anything, and this goes into a URL.
        """
        merged: ProviderMap = dict(self.providers())
        for address, node in self.fleet_providers.items():
            if node or address not in merged:
                merged[address] = node
        return {a: n for a, n in merged.items() if is_provider_address(a)}

    def min_interval(self) -> float:
        """Seconds per cycle that keep every provider within the budget's average rate."""
        return len(self.all_providers()) * REQUEST_WINDOW / REQUEST_LIMIT

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """One request per provider; a failed one is listed, the others stored."""
        providers = self.all_providers()
        if not providers:
            return Reading(note="no node labelled with an Akash provider address")
        started = time.monotonic()
        now = self.clock()
        errors: list[EndpointError] = []
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(address: str, node: str | None) -> DeviceStatus:
            async with gate:
                return await self._provider(client, address, node, now, started, errors)

        results = await asyncio.gather(*(one(a, n) for a, n in providers.items()))
        statuses = list(results)
        if errors and len(errors) == len(statuses):
            first = errors[0].error
            raise SourceError(
                first.kind,
                f"every provider request failed: {first.message}",
                status=first.status,
                retry_after=first.retry_after,
            )
        return Reading(devices=statuses, errors=errors)

    async def _provider(
        self,
        client: httpx.AsyncClient,
        address: str,
        node: str | None,
        now: datetime,
        started: float,
        errors: list[EndpointError],
    ) -> DeviceStatus:
        path = PROVIDER.format(address=address)
        label = path.replace(address, address[:12] + "…")
        remaining = max(0.1, self.timeout - (time.monotonic() - started))
        try:
            body = await get_json(
                client,
                self.base_url.rstrip("/") + path,
                headers={"accept": "application/json"},
                policy=HttpPolicy(deadline=remaining),
                budget=self.api_budget,
            )
            fields = parse_provider(body, label, now, self.max_check_age)
        except SourceError as exc:
            if exc.kind == ErrorKind.RATE_LIMITED:
                raise  # the whole cycle waits for the budget or the console's Retry-After
            if exc.status != 404:
                errors.append(EndpointError(label, exc))
            why = "not known to the console (404)" if exc.status == 404 else exc.kind
            return DeviceStatus(network=NETWORK, device_id=address, node=node, error=str(why))
        return DeviceStatus(network=NETWORK, device_id=address, node=node, **fields)
