"""A request budget a source accepts is a budget it spends (reliability: io.net 150 req / 10 s).

Every function, method and dataclass field under ``sources/`` whose name says "budget" is found
by introspection, and each must have an exerciser here that runs it with counting budgets and
checks that every request took a slot. A new source (or a new ``budget`` parameter) without an
exerciser fails :func:`test_every_budget_taker_has_an_exerciser`, so a budget that is accepted
but never handed to ``get_json`` cannot come back silently. Every ``NetworkSource`` subclass is
exercised generically, so a new public network is covered without writing anything.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import sources
from sources.akash_providers import AkashProviderSource
from sources.base import RequestBudget, get_json, make_client
from sources.ionet_devices import IonetDeviceSource
from sources.models import SourceError
from sources.network import Endpoint, NetworkSource, fetch_endpoints

BUDGET_TYPES = {"sources.base.RequestBudget", "sources.base.BudgetChain"}
"""The budgets themselves, not takers of one."""
ROOT = "http://127.0.0.1:9/api"
DEVICE = "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17"


class CountingBudget(RequestBudget):
    """A roomy budget that records every slot taken."""

    def __init__(self) -> None:
        super().__init__(10_000, 10.0)
        self.calls = 0

    async def acquire(self, deadline_remaining: float) -> None:
        self.calls += 1
        await super().acquire(deadline_remaining)


class Recorder:
    """Answers every GET with ``{}`` (or a 500 for paths in ``failing``) and counts requests."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.requests: list[httpx.Request] = []
        self.failing = failing

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if any(request.url.path.endswith(path) for path in self.failing):
            return httpx.Response(500, json={"error": "boom"})
        return httpx.Response(200, json={})

    def client(self) -> httpx.AsyncClient:
        return make_client(transport=httpx.MockTransport(self))


def _takes_budget(function: Any) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return any("budget" in name for name in parameters)


def budget_takers() -> set[str]:
    """Dotted names of everything in ``sources/`` that accepts a request budget."""
    found: set[str] = set()
    for info in pkgutil.iter_modules(sources.__path__):
        module = importlib.import_module(f"sources.{info.name}")
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__:
                continue  # imported from elsewhere: counted where it is defined
            dotted = f"{module.__name__}.{name}"
            if dotted in BUDGET_TYPES:
                continue
            if inspect.isclass(obj):
                if dataclasses.is_dataclass(obj) and any(
                    "budget" in f.name for f in dataclasses.fields(obj)
                ):
                    found.add(dotted)
                for attr, member in vars(obj).items():
                    if attr == "__init__" and dataclasses.is_dataclass(obj):
                        continue  # generated from the fields above
                    if inspect.isfunction(member) and _takes_budget(member):
                        found.add(f"{dotted}.{attr}")
            elif inspect.isfunction(obj) and _takes_budget(obj):
                found.add(dotted)
    return found


def _budget_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if "budget" in f.name]


# -- exercisers: each runs its taker with counting budgets and checks every request counted ----


async def _network_source(cls: type[NetworkSource]) -> None:
    """Any NetworkSource: one slot per request (retries included), for every endpoint."""
    assert cls.ENDPOINTS, f"{cls.__name__} has no endpoints to exercise"
    budgets = {name: CountingBudget() for name in _budget_fields(cls)}
    upstream = Recorder(failing=(cls.ENDPOINTS[0].path,))  # a 500 is retried: 3 attempts
    source = cls(base_url=ROOT, **budgets)  # type: ignore[arg-type]
    async with upstream.client() as client:
        try:
            await source.fetch(client)
        except SourceError:
            pass  # ``{}`` may be a schema error everywhere; the requests were still made
    assert len(upstream.requests) > len(cls.ENDPOINTS)
    for name, budget in budgets.items():
        assert budget.calls == len(upstream.requests), f"{cls.__name__}.{name} not spent"


async def _fetch_endpoints() -> None:
    budget = CountingBudget()
    endpoints = [Endpoint("/a", lambda body, path: ([], [])), Endpoint("/b", lambda b, p: ([], []))]
    upstream = Recorder()
    async with upstream.client() as client:
        await fetch_endpoints(client, ROOT, endpoints, deadline=5.0, budget=budget)
    assert len(upstream.requests) == 2
    assert budget.calls == 2


async def _get_json() -> None:
    budget = CountingBudget()
    upstream = Recorder(failing=("/x",))
    async with upstream.client() as client:
        with pytest.raises(SourceError):
            await get_json(client, ROOT + "/x", budget=budget, sleep=_no_sleep)
    assert budget.calls == len(upstream.requests) == 3


async def _no_sleep(_seconds: float) -> None:
    return None


async def _ionet_devices() -> None:
    """Every device request takes the whole-API budget; summary and details their own too."""
    budgets = {name: CountingBudget() for name in _budget_fields(IonetDeviceSource)}
    upstream = Recorder()
    source = IonetDeviceSource(
        base_url=ROOT,
        token="t",
        devices=lambda: {DEVICE: None},
        clock=lambda: datetime(2026, 11, 26, 10, 30, tzinfo=UTC),
        **budgets,  # type: ignore[arg-type]
    )
    async with upstream.client() as client:
        try:
            await source.fetch(client)
        except SourceError:
            pass
    paths = [r.url.path for r in upstream.requests]
    assert len(paths) == 4  # blocks page, summary, details, rewards summary
    assert budgets["api_budget"].calls == len(paths)
    assert budgets["summary_budget"].calls == sum(p.endswith("/summary") for p in paths) == 1
    assert budgets["details_budget"].calls == sum(p.endswith("/details") for p in paths) == 1


async def _akash_providers() -> None:
    """One slot per provider request, a retried 500 included."""
    good, failing = "akash1hcu596l97rqkcllcwundclhgkvurld6grecjgy", "akash1" + "q" * 38
    budget = CountingBudget()
    upstream = Recorder(failing=(failing,))
    source = AkashProviderSource(
        base_url=ROOT, providers=lambda: {good: None, failing: None}, api_budget=budget
    )
    async with upstream.client() as client:
        with pytest.raises(SourceError):  # ``{}`` is no provider object: every request failed
            await source.fetch(client)
    paths = [r.url.path for r in upstream.requests]
    assert sum(p.endswith(failing) for p in paths) == 3  # retried
    assert sum(p.endswith(good) for p in paths) == 1
    assert budget.calls == len(paths) == 4


EXERCISERS: dict[str, Callable[[], Awaitable[None]]] = {
    "sources.network.fetch_endpoints": _fetch_endpoints,
    "sources.base.get_json": _get_json,
    "sources.ionet_devices.IonetDeviceSource": _ionet_devices,
    "sources.ionet_devices.IonetDeviceSource._get": _ionet_devices,
    "sources.akash_providers.AkashProviderSource": _akash_providers,
}


def _exerciser(dotted: str) -> Callable[[], Awaitable[None]] | None:
    if dotted in EXERCISERS:
        return EXERCISERS[dotted]
    module_name, _, name = dotted.rpartition(".")
    obj = getattr(importlib.import_module(module_name), name, None)
    if inspect.isclass(obj) and issubclass(obj, NetworkSource) and obj.ENDPOINTS:
        return lambda: _network_source(obj)
    return None


TAKERS = sorted(budget_takers())


def test_the_known_budget_takers_are_found():
    """The discovery itself works (else the test below would pass on nothing)."""
    assert {
        "sources.network.fetch_endpoints",
        "sources.network.NetworkSource",
        "sources.ionet.IonetSource",
        "sources.ionet_devices.IonetDeviceSource",
        "sources.base.get_json",
    } <= set(TAKERS)


@pytest.mark.parametrize("dotted", TAKERS)
def test_every_budget_taker_has_an_exerciser(dotted):
    base = dotted == "sources.network.NetworkSource"  # no endpoints: its subclasses are run
    assert base or _exerciser(dotted) is not None, (
        f"{dotted} accepts a request budget: add an exerciser to {__name__} that proves it is spent"
    )


@pytest.mark.parametrize("dotted", [t for t in TAKERS if t != "sources.network.NetworkSource"])
async def test_an_accepted_budget_is_spent(dotted):
    exerciser = _exerciser(dotted)
    assert exerciser is not None
    await exerciser()


async def test_ionet_network_source_spends_its_default_budget():
    """The io.net network source has a budget by default (shared with the device source)."""
    from sources.ionet import IonetSource

    source = IonetSource(base_url=ROOT)
    assert isinstance(source.budget, RequestBudget)
    upstream = Recorder()
    async with upstream.client() as client:
        try:
            await source.fetch(client)
        except SourceError:
            pass
    assert len(source.budget._granted) == len(upstream.requests) == 4
