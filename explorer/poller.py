"""Runs each source on its own schedule and writes every result into the cache.

Used by the TUI (as an async worker) and by ``depin-explorer poll``. Network I/O is async;
SQLite writes go to one dedicated writer thread, so the event loop never blocks on the disk.
A 429 reschedules the source (it never sleeps in the worker); a key error pauses it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx

from cache.db import CacheError, Clock, open_writer, utc_now
from cache.lock import WriterLock, WriterLockHeldError, holder_pid
from cache.network_status import fleet_labels
from cache.queries import previous_counters
from cache.retention import RetentionReport, apply_retention
from cache.rewards import fleet_devices, known_rewards
from cache.store import PollRecord, has_rankings, write_poll
from explorer.alerting import Alerting
from explorer.config import Config, Secrets
from explorer.registry import SourceSettings, build_sources
from sources.base import (
    RETRY_AFTER_DEFAULT,
    CacheInput,
    Counters,
    PollContext,
    Source,
    make_client,
)
from sources.breaker import CircuitBreaker
from sources.models import ErrorKind, SourceError

log = logging.getLogger(__name__)

T = TypeVar("T")

StoredCallback = Callable[[PollRecord, int], None]
MAX_RATE_BACKOFF = 900.0
RETENTION_FIRST_DELAY = 60.0
"""Retention runs a minute after start (not in the way of the first polls), then per interval."""
MIN_FREE_BYTES = 64 * 1024 * 1024
"""Below this much free space on the cache's disk writes pause (docs/reliability.md)."""


@dataclass
class Schedule:
    """When a source may run next, and why not sooner."""

    interval: float
    next_due: float = 0.0
    paused: str | None = None
    """Set on key errors: no more polls until the config changes."""
    retry_at: datetime | None = None
    rate_backoff: float = RETRY_AFTER_DEFAULT
    """Wait after a 429 that named no Retry-After: 60 s, doubling up to 15 min."""
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    """Opens after 5 failed cycles; then one trial poll at a time, with back-off."""


@dataclass
class Outcome:
    """What one source did in one round: stored a poll, or was skipped and why."""

    source: str
    record: PollRecord | None = None
    skipped: str | None = None
    detail: str | None = None

    @property
    def failed(self) -> bool:
        """Failed polls, and sources held back by a rate limit, a pause or an open circuit."""
        held = self.skipped in ("rate limited", "paused", "circuit open", "writes paused")
        return held or (self.record is not None and not self.record.ok)


@dataclass
class Poller:
    """Polls sources and stores each poll atomically; one instance per writer process."""

    config: Config
    secrets: Secrets
    db_path: Path
    offline: bool = False
    clock: Clock = utc_now
    transport: httpx.AsyncBaseTransport | None = None
    on_stored: StoredCallback | None = None
    on_notice: Callable[[str], None] | None = None
    """Warnings about the cache itself: a damaged file moved aside, writes paused or resumed."""
    sources: dict[str, Source] = field(default_factory=dict)
    settings: dict[str, SourceSettings] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    alerting: Alerting | None = None
    """Alert rules run after each stored poll; built from ``[alerts]`` unless offline."""

    def __post_init__(self) -> None:
        if not self.sources:
            built = build_sources(self.config, self.secrets)
            self.sources = {name: source for name, (source, _) in built.items()}
            self.settings = {name: settings for name, (_, settings) in built.items()}
        for name in self.sources:
            self.settings.setdefault(name, SourceSettings(interval=120.0, timeout=10.0))
            self.schedules.setdefault(name, Schedule(interval=self.settings[name].interval))
        if self.alerting is None and not self.offline:  # offline: no webhooks, no commands
            self.alerting = Alerting(self.config.alerts, self.clock, transport=self.transport)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-writer")
        self._lock = WriterLock(self.db_path)
        self._previous: dict[str, Counters] = {}
        """Per source with a ``counter_kind``: read from the cache once, then kept up to date."""
        self._retention_due = time.monotonic() + RETENTION_FIRST_DELAY
        self._conn: sqlite3.Connection | None = None
        self._clients: dict[tuple[str | None, bool], httpx.AsyncClient] = {}
        self._rng = random.Random()
        self._wake: asyncio.Event | None = None
        self._open_notices: list[str] = []
        self.writes_paused: str | None = None
        """Why polls are not being stored (a full disk); None while writes go through."""

    # -- the writer thread ------------------------------------------------------------------
    def _writer(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_writer(self.db_path, on_notice=self._open_notices.append)
        return self._conn

    async def _run_in_writer(self, func: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: func(self._writer()))

    async def prepare(self) -> None:
        """Take the writer lock, open the cache (applying migrations), restore rate limits.

        Raises:
            WriterLockHeldError: another process (a collector) writes this cache.
        """
        if not self._lock.acquire():
            raise WriterLockHeldError(self.db_path, holder_pid(self.db_path))
        await self._run_in_writer(lambda conn: None)
        for message in self._open_notices:  # gathered in the writer thread, told from here
            self._notice(message)
        self._open_notices.clear()
        rows = await self._run_in_writer(
            lambda conn: conn.execute(
                "SELECT source, MAX(retry_at) FROM polls WHERE retry_at IS NOT NULL GROUP BY source"
            ).fetchall()
        )
        now = self.clock()
        for source, retry_at in rows:
            schedule = self.schedules.get(source)
            if schedule is None:
                continue
            when = datetime.fromisoformat(retry_at.replace("Z", "+00:00"))
            if when > now:
                schedule.retry_at = when
                schedule.next_due = time.monotonic() + (when - now).total_seconds()

    async def close(self) -> None:
        """Close the HTTP client and the writer connection."""
        if self.alerting is not None:  # deliveries under way get a moment to finish
            await self.alerting.close(grace=2.0)
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._conn is not None:
            conn = self._conn
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._lock.release()

    def _http(self, name: str) -> httpx.AsyncClient:
        # One client per CA bundle: sources on the public PKI share a connection pool.
        settings = self.settings[name]
        key = (str(settings.ca_file) if settings.ca_file else None, settings.insecure)
        if key not in self._clients:
            self._clients[key] = make_client(
                transport=self.transport, ca_file=key[0], insecure=key[1]
            )
        return self._clients[key]

    def _deadline(self, name: str) -> float:
        return self.settings[name].timeout + 1.0

    async def _context(self, name: str, source: Source) -> PollContext:
        """Read from the cache what ``source`` declared it needs, as plain values."""
        kind = source.counter_kind
        if kind is not None and name not in self._previous:
            # rates continue from the last stored sample across runs; later polls of this run
            # hand on their own counters (see poll_source), so the cache is asked once per source
            self._previous[name] = await self._run_in_writer(
                lambda conn: previous_counters(conn, kind)
            )
        needs = source.needs
        devices: dict[str, str] = {}
        rewards: set[tuple[str, str]] = set()
        providers: dict[str, str] = {}
        if needs:
            since = self.clock() - source.reward_lookback
            devices, rewards, providers = await self._run_in_writer(
                lambda conn: (
                    fleet_devices(conn) if CacheInput.FLEET_DEVICES in needs else {},
                    known_rewards(conn, since) if CacheInput.KNOWN_REWARDS in needs else set(),
                    fleet_labels(conn, "provider") if CacheInput.FLEET_PROVIDERS in needs else {},
                )
            )
        return PollContext(
            clock=self.clock,
            previous=self._previous.get(name, {}),
            fleet_devices=devices,
            known_rewards=rewards,
            fleet_providers=providers,
        )

    # -- polling ----------------------------------------------------------------------------
    async def poll_source(self, name: str) -> Outcome:
        """Run one source now (if allowed) and store its poll."""
        source = self.sources[name]
        schedule = self.schedules[name]
        # Offline means browsing what is cached (perhaps a colleague's copy): only a source that
        # makes no request and samples nothing of this machine (the bundled sample) may run.
        if self.offline and not source.runs_offline:
            return Outcome(name, skipped="offline")
        if schedule.paused:
            return Outcome(name, skipped="paused", detail=f"paused: {schedule.paused}")
        if schedule.retry_at and schedule.retry_at > self.clock():
            until = schedule.retry_at.astimezone().strftime("%H:%M:%S")
            return Outcome(name, skipped="rate limited", detail=f"rate limited until {until}")
        if source.stand_in:  # only into a cache without rankings
            if await self._run_in_writer(has_rankings):
                schedule.next_due = time.monotonic() + schedule.interval
                return Outcome(name, skipped="not needed")
        elif not schedule.breaker.allow(time.monotonic()):
            return Outcome(name, skipped="circuit open", detail=self.circuit_note(name))
        source.prepare(await self._context(name, source))
        started = self.clock()
        error: SourceError | None = None
        reading = None
        try:
            async with asyncio.timeout(self._deadline(name)):  # a hard cap on the whole cycle
                reading = await source.fetch(self._http(name))
        except SourceError as exc:
            error = exc
        except TimeoutError:
            error = SourceError(
                ErrorKind.TIMEOUT, f"no complete poll within {self._deadline(name):g} s"
            )
        except asyncio.CancelledError:
            if schedule.breaker.state == "half-open":  # never leave a trial without a result
                schedule.breaker.record_failure(time.monotonic())
            raise
        except Exception as exc:  # a bug in a parser must not stop the other sources
            log.exception("source %s crashed", name)
            error = SourceError(ErrorKind.INTERNAL, f"internal error: {type(exc).__name__}")
        finished = self.clock()
        retry_at = self._reschedule(name, error, finished)
        record = PollRecord(
            source=name,
            started_at=started,
            finished_at=finished,
            reading=reading,
            error=error,
            retry_at=retry_at,
        )
        if self._disk_low():
            return self._pause_writes(name, "less than 64 MiB free on its disk")
        try:
            poll_id = await self._run_in_writer(lambda conn: write_poll(conn, record))
        except sqlite3.Error as exc:  # the poll is lost, never half-written: say so clearly
            if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_FULL:
                return self._pause_writes(name, "the disk is full")
            raise CacheError(f"cannot store the poll of {name} in {self.db_path}: {exc}") from exc
        if self.writes_paused is not None:
            self.writes_paused = None
            self._notice(f"writes to {self.db_path} resumed")
        previous = self._previous.get(name)
        if previous is not None and reading is not None and error is None:
            previous.update({n.node: dict(n.counters) for n in reading.nodes if n.counters})
        if error:
            log.warning("poll %s failed: %s (%s)", name, error.message, error.kind)
        else:
            log.info("poll %s stored %d items", name, reading.items if reading else 0)
        if self.alerting is not None:  # in the writer thread; actions are queued, not awaited
            await self.alerting.after_poll(self._run_in_writer, poll_id)
        if self.on_stored is not None:
            self.on_stored(record, poll_id)
        return Outcome(name, record=record)

    def _notice(self, message: str) -> None:
        log.warning("%s", message)
        if self.on_notice is not None:
            self.on_notice(message)

    def _disk_low(self) -> bool:
        try:
            return shutil.disk_usage(self.db_path.parent).free < MIN_FREE_BYTES
        except OSError:
            return False  # the write itself will say what is wrong

    def _pause_writes(self, name: str, why: str) -> Outcome:
        # The transaction rolled back whole (no partial rows); every later poll retries the
        # write, so storing resumes by itself once there is room again. One notice per change.
        if self.writes_paused is None:
            self.writes_paused = f"{why}: writes to {self.db_path} paused"
            self._notice(f"{self.writes_paused}; they resume by themselves when there is room")
        return Outcome(name, skipped="writes paused", detail=self.writes_paused)

    def _reschedule(self, name: str, error: SourceError | None, now: datetime) -> datetime | None:
        schedule = self.schedules[name]
        jitter = self._rng.uniform(0.9, 1.1)
        floor = self.sources[name].min_interval()  # a provider's request budget
        interval = max(schedule.interval, floor or 0.0)
        schedule.next_due = time.monotonic() + interval * jitter
        schedule.retry_at = None
        if error is None:
            schedule.breaker.record_success()
            schedule.rate_backoff = RETRY_AFTER_DEFAULT
            return None
        own_rules = error.kind in (ErrorKind.RATE_LIMITED, ErrorKind.AUTH)
        if not own_rules or schedule.breaker.state == "half-open":  # a trial always gets a result
            schedule.breaker.record_failure(time.monotonic())
            trial = schedule.breaker.next_trial_at
            if schedule.breaker.state == "open" and trial is not None:
                schedule.next_due = max(schedule.next_due, trial)
        if error.kind is ErrorKind.AUTH:
            schedule.paused = "check API key"
        wait = error.retry_after
        if wait is None and error.kind is ErrorKind.RATE_LIMITED:
            wait = schedule.rate_backoff
            schedule.rate_backoff = min(schedule.rate_backoff * 2, MAX_RATE_BACKOFF)
        if wait is not None:
            schedule.retry_at = now + timedelta(seconds=wait)
            schedule.next_due = max(schedule.next_due, time.monotonic() + wait)
        return schedule.retry_at

    async def poll_once(self, only: Iterable[str] | None = None) -> list[Outcome]:
        """One round of every selected source regardless of intervals (the sample first)."""
        names = [n for n in self.sources if only is None or n in set(only)]
        outcomes = []
        for name in [n for n in names if self.sources[n].stand_in]:  # before any real data
            outcomes.append(await self.poll_source(name))
            names.remove(name)
        outcomes += await asyncio.gather(*(self.poll_source(n) for n in names))
        return outcomes

    async def run(self, stop: asyncio.Event, only: Iterable[str] | None = None) -> None:
        """Poll each source when it is due until ``stop`` is set; cycles never overlap."""
        names = [n for n in self.sources if only is None or n in set(only)]
        running: dict[str, asyncio.Task[Outcome]] = {}
        while not stop.is_set():
            now = time.monotonic()
            for name in names:
                if name not in running and self.schedules[name].next_due <= now:
                    if self.offline and not self.sources[name].runs_offline:
                        self.schedules[name].next_due = float("inf")
                        continue
                    running[name] = asyncio.create_task(self.poll_source(name))
            if self._retention_due <= now and not self.offline:
                await self.run_retention()
            for name, task in list(running.items()):
                if task.done():
                    del running[name]
                    if task.exception() is not None:
                        log.error("poll of %s failed to store: %r", name, task.exception())
                        self.schedules[name].next_due = time.monotonic() + 30
            due = min(
                (self.schedules[n].next_due for n in names if n not in running), default=now + 60
            )
            wait = max(0.05, min(due - time.monotonic(), 60.0))
            self._wake = asyncio.Event()
            waiters = [
                asyncio.create_task(stop.wait()),
                asyncio.create_task(self._wake.wait()),
                *running.values(),
            ]
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters[:2]:
                waiter.cancel()
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)

    async def run_retention(self) -> RetentionReport | None:
        """Roll up and prune per ``[retention]``, in the writer thread between polls.

        Short transactions (cache.retention), so polls queue behind it for moments only. Never
        offline: an offline session does not write beyond the first-run sample.
        """
        retention = self.config.retention
        self._retention_due = time.monotonic() + retention.interval
        if not retention.enabled or self.offline:
            return None
        policy, now = retention.policy(), self.clock()
        try:
            report = await self._run_in_writer(lambda conn: apply_retention(conn, policy, now))
        except sqlite3.Error as exc:  # the history stays as it was; try again next interval
            log.warning("retention failed: %s", exc)
            return None
        log.info("retention: %s", report)
        return report

    def circuit_note(self, name: str) -> str | None:
        """``circuit open until HH:MM:SS`` while a source's breaker is open."""
        breaker = self.schedules[name].breaker
        if breaker.state != "open" or breaker.next_trial_at is None:
            return None
        wait = max(0.0, breaker.next_trial_at - time.monotonic())
        until = (self.clock() + timedelta(seconds=wait)).astimezone().strftime("%H:%M:%S")
        return f"circuit open until {until}"

    def poll_soon(self, name: str | None = None) -> None:
        """Make a source (or all) due now; a pause for a key error stays."""
        for key, schedule in self.schedules.items():
            if name is None or key == name:
                schedule.next_due = 0.0
        if self._wake is not None:
            self._wake.set()
