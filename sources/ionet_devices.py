"""io.net devices: each labelled node's explorer status, earnings and hourly block rewards.

Per device and cycle (io.net's documented per-device endpoints):

- ``/v1/io-explorer/devices/{id}/summary``: status, uptime (100 − ``down_percentage``),
  connectivity tier, total earnings (``total_earnings_io_coin`` in IO where published, else
  ``total_earnings`` with no unit), slashed;
- ``/v1/io-explorer/devices/{id}/details``: hardware, location, running jobs;
- ``/v1/io-blocks/devices/{id}/block-rewards-summary/{from}/{to}``: the last 7 days' block totals;
- ``/v1/io-blocks/blocks/{block_id}/workers/{id}``: what the device got in one hourly block, for
  the newest completed blocks not stored yet (at most ``blocks_per_cycle`` per device, so a new
  fleet catches up over a few cycles instead of bursting). Each becomes a :class:`Reward` row;
  a 404 means the device was not a worker in that block and is stored as 0, so it is not asked
  again.

Auth: the token from ``IONET_TOKEN`` goes in the ``Token`` header; on a 401 the request is
repeated once with ``Authorization: Bearer`` (the newer docs), and that style is kept. A second
401 stops the cycle: "io.net token expired or invalid". Budgets: the whole explorer API allows
150 requests per 10 s (shared with the network source), summary and details 100 per 5 min each,
so the poll interval is never below 3 s per device (:meth:`IonetDeviceSource.min_interval`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from sources.base import (
    BudgetChain,
    CacheInput,
    HttpPolicy,
    PollContext,
    RequestBudget,
    SourceDefaults,
    get_json,
)
from sources.ionet import BLOCKS, DEFAULT_ROOT, NETWORK
from sources.models import (
    DeviceStatus,
    EndpointError,
    ErrorKind,
    Reading,
    Reward,
    SourceError,
    is_device_id,
)
from sources.models import _count_or_none as lax_count
from sources.models import _finite_or_none as lax_number
from sources.text import one_line

SUMMARY = "/v1/io-explorer/devices/{device_id}/summary"
DETAILS = "/v1/io-explorer/devices/{device_id}/details"
REWARDS_SUMMARY = "/v1/io-blocks/devices/{device_id}/block-rewards-summary/{start}/{end}"
BLOCK_WORKER = "/v1/io-blocks/blocks/{block_id}/workers/{device_id}"
PER_DEVICE_WINDOW = 300.0
PER_DEVICE_LIMIT = 100
"""io.net: device summary and device details, 100 requests per 5 minutes each."""
REWARD_TOKEN = "IO"
TOKEN_LIFETIME = timedelta(days=21)
"""An io.net token is valid for 21 days, so a token without ``exp`` is judged by ``iat``."""
BLOCK_LOOKBACK = timedelta(hours=48)
DEVICE_CONCURRENCY = 8

DeviceMap = dict[str, str | None]
"""device_id → the fleet node labelled with it (None for a device configured on its own)."""


# -- the token ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenInfo:
    """What the JWT says about itself (read, never verified: io.net verifies it)."""

    expires_at: datetime | None
    issued_at: datetime | None


def token_info(token: str) -> TokenInfo | None:
    """The ``exp`` and ``iat`` claims of a JWT; None when it is not a readable JWT."""
    parts = token.strip().split(".")
    if len(parts) != 3 or len(parts[1]) > 8192:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return None
    if not isinstance(claims, dict):
        return None

    def moment(key: str) -> datetime | None:
        value = lax_number(claims.get(key))
        if value is None or not 0 < value < 1e11:
            return None
        return datetime.fromtimestamp(value, UTC)

    issued = moment("iat")
    expires = moment("exp") or (issued + TOKEN_LIFETIME if issued else None)
    return TokenInfo(expires_at=expires, issued_at=issued)


# -- parsing -------------------------------------------------------------------------------------


def _schema(endpoint: str, what: str) -> SourceError:
    return SourceError(ErrorKind.SCHEMA, f"{endpoint}: {what} (schema changed?)")


def _data(body: Any, endpoint: str) -> dict[str, Any]:
    """The explorer family's ``{"status": "succeeded", "data": {...}}`` envelope."""
    if not isinstance(body, dict):
        raise _schema(endpoint, "not a JSON object")
    status = body.get("status")
    if isinstance(status, str) and status.lower() not in ("succeeded", "success", "ok"):
        raise SourceError(ErrorKind.SCHEMA, f"{endpoint}: io.net says {one_line(status, 40)}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise _schema(endpoint, "no data object")
    return data


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = one_line(str(value), 80)
        return text or None
    return None


def parse_summary(body: Any, endpoint: str) -> dict[str, Any]:
    """Device status fields from a summary body (docs spelling and live spelling alike)."""
    data = _data(body, endpoint)
    down = lax_number(data.get("down_percentage"))
    earnings_io = lax_number(data.get("total_earnings_io_coin"))
    earnings = earnings_io if earnings_io is not None else lax_number(data.get("total_earnings"))
    slashed_keys = (
        ("total_slahed_io_coin", "total_slashed_io_coin") if earnings_io is not None else ()
    )
    slashed = None
    for key in (*slashed_keys, "total_slashed_earnings", "total_slashed_earning"):
        slashed = lax_number(data.get(key))
        if slashed is not None:
            break
    status = _text(data.get("status"))
    if status is None and isinstance(data.get("is_working"), bool):
        status = "up" if data["is_working"] else "down"
    return {
        "name": _text(data.get("device_name")),
        "status": status,
        "uptime_pct": None if down is None or not 0 <= down <= 100 else 100.0 - down,
        "connectivity_tier": _text(data.get("connectivity_tier")),
        "earnings_total": earnings,
        "earnings_token": REWARD_TOKEN if earnings_io is not None else None,
        "slashed_total": slashed,
        "compute_hours": lax_number(data.get("total_compute_hours_served")),
    }


def parse_details(body: Any, endpoint: str) -> dict[str, Any]:
    """Hardware, location and running jobs from a details body."""
    data = _data(body, endpoint)
    jobs = data.get("jobs")
    running = None
    if isinstance(jobs, list):
        running = sum(
            1 for j in jobs if isinstance(j, dict) and str(j.get("status", "")).lower() == "running"
        )
    out: dict[str, Any] = {
        "hardware": _text(data.get("hardware_name")),
        "hardware_quantity": lax_count(data.get("hardware_quantity")),
        "location": _text(data.get("location_name")) or _text(data.get("iso2")),
        "jobs_running": running,
        "tier_name": _text(data.get("base_tier_name")),
    }
    if data.get("status") is not None:
        out["status"] = _text(data.get("status"))
    return out


def parse_rewards_summary(body: Any, endpoint: str) -> dict[str, Any]:
    """7-day block totals from the flat (unwrapped) block-rewards summary."""
    if not isinstance(body, dict) or "total_block_rewards" not in body:
        raise _schema(endpoint, "no total_block_rewards")
    return {
        "block_rewards_7d": lax_number(body.get("total_block_rewards")),
        "blocks_earned_7d": lax_count(body.get("total_blocks_earned")),
        "blocks_failed_7d": lax_count(body.get("total_blocks_failed")),
        "blocks_missed_7d": lax_count(body.get("total_blocks_missed")),
    }


def block_start(block_id: str) -> datetime | None:
    """An hourly block id (``2024-05-13T15:00:00``, no zone: UTC) as a UTC datetime."""
    try:
        moment = datetime.fromisoformat(block_id.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def completed_blocks(body: Any, now: datetime) -> list[str]:
    """Ids of completed blocks from ``/blocks/all/1``, newest first, within the look-back."""
    blocks = body.get("blocks") if isinstance(body, dict) else None
    if not isinstance(blocks, list):
        raise _schema(BLOCKS, "no blocks list")
    found: list[tuple[datetime, str]] = []
    for block in blocks[:200]:
        if not isinstance(block, dict) or str(block.get("status", "")).lower() != "completed":
            continue
        block_id = block.get("block_id")
        if not isinstance(block_id, str):
            continue
        start = block_start(block_id)
        if start is not None and now - BLOCK_LOOKBACK <= start <= now:
            found.append((start, block_id))
    return [block_id for _, block_id in sorted(found, reverse=True)]


def parse_block_worker(body: Any, endpoint: str) -> tuple[float, str | None]:
    """(amount rewarded, status) from a flat block worker detail."""
    if not isinstance(body, dict):
        raise _schema(endpoint, "not a JSON object")
    amount = lax_number(body.get("rewarded"))
    if amount is None or amount < 0:
        raise _schema(endpoint, "no rewarded amount")
    return amount, _text(body.get("status"))


# -- the source ----------------------------------------------------------------------------------


@dataclass
class IonetDeviceSource(SourceDefaults):
    """io.net per-device status and rewards for every node labelled with a ``device_id``.

    ``devices`` gives the configured ones; the poller adds the fleet's labelled nodes from the
    cache (``fleet_devices``) and the rewards already stored (``known_rewards``) before each run.
    """

    base_url: str = DEFAULT_ROOT
    token: str | None = None
    devices: Callable[[], DeviceMap] = dict
    timeout: float = 60.0
    name: str = "ionet-devices"
    uses_network: bool = True
    blocks_per_cycle: int = 4
    api_budget: RequestBudget = field(default_factory=lambda: RequestBudget(150, 10.0))
    """Shared with the io.net network source: one limit for the whole explorer API."""
    summary_budget: RequestBudget = field(
        default_factory=lambda: RequestBudget(PER_DEVICE_LIMIT, PER_DEVICE_WINDOW)
    )
    details_budget: RequestBudget = field(
        default_factory=lambda: RequestBudget(PER_DEVICE_LIMIT, PER_DEVICE_WINDOW)
    )
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    fleet_devices: DeviceMap = field(default_factory=dict)
    known_rewards: set[tuple[str, str]] = field(default_factory=set)
    """(device_id, reward source) pairs already stored; set by the poller."""
    _bearer: bool = False
    needs = frozenset({CacheInput.FLEET_DEVICES, CacheInput.KNOWN_REWARDS})
    reward_lookback = BLOCK_LOOKBACK  # older blocks are never asked for again

    @property
    def budget(self) -> RequestBudget:
        """The explorer API's limit, shared with the io.net network source."""
        return self.api_budget

    def prepare(self, context: PollContext) -> None:
        """Take the fleet's labelled nodes and the stored rewards, read before each run."""
        self.clock = context.clock
        self.fleet_devices = dict(context.fleet_devices)
        self.known_rewards = context.known_rewards

    def all_devices(self) -> DeviceMap:
        """Configured devices and the fleet's labelled nodes (a fleet node name wins).

        A label that is not a device id (labels come from file_sd or a remote Prometheus) is
        left out: it would go into a URL that carries the io.net token.
        """
        merged: DeviceMap = dict(self.devices())
        for device_id, node in self.fleet_devices.items():
            if is_device_id(device_id) and (node or device_id not in merged):
                merged[device_id] = node
        return merged

    def min_interval(self) -> float:
        """Seconds per cycle that keep summary and details within 100 per 5 min each."""
        return len(self.all_devices()) * PER_DEVICE_WINDOW / PER_DEVICE_LIMIT

    async def fetch(self, client: httpx.AsyncClient) -> Reading:
        """One cycle over every device; per-endpoint failures are listed, not fatal."""
        if not self.token:
            raise SourceError(
                ErrorKind.AUTH,
                "IONET_TOKEN is not set: copy the token of the Explorer's Devices request "
                "(see README) into IONET_TOKEN",
            )
        devices = self.all_devices()
        if not devices:
            return Reading(note="no node labelled with an io.net device_id")
        started = time.monotonic()
        now = self.clock()
        errors: list[EndpointError] = []
        blocks: list[str] = []
        try:
            body = await self._get(client, BLOCKS, self.api_budget, started, auth=False)
            blocks = completed_blocks(body, now)
        except SourceError as exc:
            self._fatal(exc)
            errors.append(EndpointError(BLOCKS, exc))
        gate = asyncio.Semaphore(DEVICE_CONCURRENCY)

        async def one(device_id: str, node: str | None) -> tuple[DeviceStatus, list[Reward]]:
            async with gate:
                return await self._device(client, device_id, node, blocks, now, started, errors)

        results = await asyncio.gather(
            *(one(d, n) for d, n in devices.items()), return_exceptions=True
        )
        statuses: list[DeviceStatus] = []
        rewards: list[Reward] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result  # a cycle-level stop (token, rate limit) or a bug
            statuses.append(result[0])
            rewards.extend(result[1])
        if errors and all(s.error for s in statuses) and not rewards:
            first = errors[0].error
            raise SourceError(
                first.kind,
                f"every device request failed: {first.message}",
                status=first.status,
                retry_after=first.retry_after,
            )
        return Reading(devices=statuses, rewards=rewards, errors=errors)

    # -- one device ---------------------------------------------------------------------------
    async def _device(
        self,
        client: httpx.AsyncClient,
        device_id: str,
        node: str | None,
        blocks: list[str],
        now: datetime,
        started: float,
        errors: list[EndpointError],
    ) -> tuple[DeviceStatus, list[Reward]]:
        fields: dict[str, Any] = {}
        failed: list[str] = []
        today = now.date()
        calls: list[
            tuple[str, RequestBudget | BudgetChain, Callable[[Any, str], dict[str, Any]]]
        ] = [
            (
                SUMMARY.format(device_id=device_id),
                BudgetChain(self.api_budget, self.summary_budget),
                parse_summary,
            ),
            (
                DETAILS.format(device_id=device_id),
                BudgetChain(self.api_budget, self.details_budget),
                parse_details,
            ),
            (
                REWARDS_SUMMARY.format(
                    device_id=device_id,
                    start=(today - timedelta(days=6)).isoformat(),
                    end=today.isoformat(),
                ),
                self.api_budget,
                parse_rewards_summary,
            ),
        ]
        for path, budget, parse in calls:
            try:
                parsed = parse(await self._get(client, path, budget, started), path)
            except SourceError as exc:
                self._fatal(exc)
                errors.append(EndpointError(_label(path, device_id), exc))
                failed.append(f"{_label(path, device_id)}: {exc.kind}")
                continue
            tier_name = parsed.pop("tier_name", None)
            if tier_name and not fields.get("connectivity_tier"):
                fields["connectivity_tier"] = tier_name
            # the summary's status wins over the details' (the summary is the explorer's view)
            if path.endswith("/details") and fields.get("status"):
                parsed.pop("status", None)
            fields.update({k: v for k, v in parsed.items() if v is not None or k not in fields})
        rewards = await self._rewards(client, device_id, node, blocks, started, errors, failed)
        status = DeviceStatus(
            network=NETWORK,
            device_id=device_id,
            node=node,
            error="; ".join(failed)[:300] or None,
            **fields,
        )
        return status, rewards

    async def _rewards(
        self,
        client: httpx.AsyncClient,
        device_id: str,
        node: str | None,
        blocks: list[str],
        started: float,
        errors: list[EndpointError],
        failed: list[str],
    ) -> list[Reward]:
        out: list[Reward] = []
        new = [b for b in blocks if (device_id, _reward_source(b)) not in self.known_rewards]
        for block_id in new[: self.blocks_per_cycle]:
            path = BLOCK_WORKER.format(block_id=block_id, device_id=device_id)
            try:
                amount, status = parse_block_worker(
                    await self._get(client, path, self.api_budget, started), path
                )
            except SourceError as exc:
                if exc.status == 404:  # not a worker in that block: it earned nothing there
                    amount, status = 0.0, "not in block"
                else:
                    self._fatal(exc)
                    errors.append(EndpointError(_label(path, device_id), exc))
                    failed.append(f"block {block_id}: {exc.kind}")
                    continue
            at = block_start(block_id)
            if at is None:
                continue
            out.append(
                Reward(
                    network=NETWORK,
                    device_id=device_id,
                    node=node,
                    at=at,
                    amount=amount,
                    token=REWARD_TOKEN,
                    source=_reward_source(block_id),
                    status=status,
                )
            )
        return out

    # -- HTTP ---------------------------------------------------------------------------------
    def _headers(self, bearer: bool) -> dict[str, str]:
        assert self.token is not None
        auth = {"authorization": f"Bearer {self.token}"} if bearer else {"token": self.token}
        return {"accept": "application/json", **auth}

    async def _get(
        self,
        client: httpx.AsyncClient,
        path: str,
        budget: RequestBudget | BudgetChain,
        started: float,
        *,
        auth: bool = True,
    ) -> Any:
        url = self.base_url.rstrip("/") + path

        async def attempt(headers: Mapping[str, str]) -> Any:
            remaining = max(0.1, self.timeout - (time.monotonic() - started))
            return await get_json(
                client, url, headers=headers, policy=HttpPolicy(deadline=remaining), budget=budget
            )

        if not auth:
            return await attempt({"accept": "application/json"})
        try:
            return await attempt(self._headers(self._bearer))
        except SourceError as exc:
            if exc.status != 401:
                raise
            if self._bearer:
                raise _token_error() from exc
        try:  # the newer docs' header; kept for later requests when it works
            body = await attempt(self._headers(True))
        except SourceError as exc:
            if exc.status != 401:
                raise
            raise _token_error() from exc
        self._bearer = True
        return body

    @staticmethod
    def _fatal(exc: SourceError) -> None:
        """A dead token or a rate limit stops the whole cycle; anything else is per endpoint."""
        if exc.kind in (ErrorKind.AUTH, ErrorKind.RATE_LIMITED):
            raise exc


def _token_error() -> SourceError:
    return SourceError(ErrorKind.AUTH, "io.net token expired or invalid (HTTP 401)", status=401)


def _reward_source(block_id: str) -> str:
    return f"io.net block {block_id}"


def _label(path: str, device_id: str) -> str:
    """The endpoint with the device id shortened, for error lists."""
    return path.replace(device_id, device_id[:8] + "…")
