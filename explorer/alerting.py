"""Alert rules evaluated after every stored poll, and the actions run on each transition.

Whoever writes the cache evaluates (a collector, or a TUI polling in-process; never a read-only
TUI): the poller hands each stored poll to :meth:`Alerting.after_poll`, which runs the rules in
the writer thread (cache/alerts.py) and queues the actions. A command and a webhook each have one
delivery task working through a bounded queue, in order (a firing is delivered before its
resolution) and off the writer thread, so a slow receiver never holds up a poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from cache.alerts import Alert, evaluate
from cache.db import Clock, utc_now
from cache.text import safe_text
from explorer.alert_config import AlertsConfig, WebhookConfig
from explorer.config import ConfigError
from sources.base import WEBHOOK_BODY_CAP, HttpPolicy, make_client, post_json
from sources.models import SourceError

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
"""Deliveries waiting per action; beyond it new transitions are logged and dropped."""
BACKOFF_CAP = 4.0
TransitionCallback = Callable[[Alert], None]
RunInWriter = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


def alert_json(alert: Alert) -> bytes:
    """The body of a webhook and a command's stdin: the alert's export keys as one object."""
    return json.dumps(alert.record(), ensure_ascii=False).encode() + b"\n"


def _kill(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: children go with it
    except (ProcessLookupError, PermissionError):
        pass


async def run_command(argv: list[str], alert: Alert, limit: float) -> int | None:
    """Run ``argv`` (no shell) with the alert as JSON on stdin; its exit status, or None.

    Output is discarded; a command that cannot start, fails or overruns ``limit`` s (then it is
    killed with its process group) is logged, never raised.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # no terminal signals from the TUI; killable as a group
        )
    except OSError as exc:
        log.warning("alert command %s cannot start: %s", argv[0], exc.strerror or exc)
        return None
    try:
        await asyncio.wait_for(process.communicate(alert_json(alert)), limit)
    except TimeoutError:
        _kill(process)
        await process.wait()
        log.warning("alert command %s killed after %g s", argv[0], limit)
        return None
    except asyncio.CancelledError:
        _kill(process)
        raise
    if process.returncode:
        log.warning("alert command %s exited with status %s", argv[0], process.returncode)
    return process.returncode


def webhook_policy(webhook: WebhookConfig) -> HttpPolicy:
    """Every attempt's timeout and every back-off, added up: a bounded delivery."""
    attempts = webhook.retries + 1
    return HttpPolicy(
        deadline=webhook.timeout * attempts + BACKOFF_CAP * webhook.retries,
        body_cap=WEBHOOK_BODY_CAP,
        attempts=attempts,
        backoff_cap=BACKOFF_CAP,
    )


async def send_webhook(
    webhook: WebhookConfig,
    headers: Mapping[str, str],
    alert: Alert,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int | None:
    """POST the alert; the accepting status, or None after logging why it was not delivered."""
    async with make_client(timeout=webhook.timeout, transport=transport) as client:
        try:
            return await post_json(
                client, webhook.url, alert.record(), headers=headers, policy=webhook_policy(webhook)
            )
        except SourceError as exc:
            log.warning("alert webhook not delivered: %s (%s)", exc.message, exc.kind)
            return None


def webhook_headers(webhook: WebhookConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """Header values from the environment variables ``headers_env`` names."""
    headers = {}
    for header, variable in webhook.headers_env.items():
        value = environ.get(variable, "").strip()
        if not value:
            raise ConfigError(f"alerts.webhook.headers_env: {variable} is not set")
        headers[header] = value
    return headers


class Alerting:
    """The configured rules and actions of one writer."""

    def __init__(
        self,
        config: AlertsConfig,
        clock: Clock = utc_now,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        self.rules = config.rules_for_cache()
        self.command = list(config.command)
        self.command_timeout = config.command_timeout
        self.webhook = config.webhook
        env = os.environ if environ is None else environ
        self.headers = webhook_headers(self.webhook, env) if self.webhook else {}
        self.clock = clock
        self.transport = transport
        self.on_transition = on_transition
        """Called on the event loop for each transition (the TUI's toast and bell)."""
        self._queues: dict[str, asyncio.Queue[Alert]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def evaluate(self, conn: sqlite3.Connection, poll_id: int) -> list[Alert]:
        """Run the rules on one stored poll (in the writer thread); the transitions."""
        return evaluate(conn, self.rules, poll_id, self.clock())

    async def after_poll(self, run_in_writer: RunInWriter, poll_id: int) -> list[Alert]:
        """Evaluate in the writer thread, then queue the actions; never raises for a poll."""
        try:
            transitions: list[Alert] = await run_in_writer(
                lambda conn: self.evaluate(conn, poll_id)
            )
        except (sqlite3.Error, ValueError) as exc:  # the poll is stored; the rules try next time
            log.warning("alert rules not evaluated after poll %d: %s", poll_id, exc)
            return []
        for alert in transitions:
            log.warning(  # a subject is a node name from the cache: one clean line in the log
                "alert %s: %s %s: %s",
                alert.state,
                alert.rule,
                safe_text(alert.subject, max_len=120),
                alert.message,
            )
            if self.command:
                self._enqueue("command", alert)
            if self.webhook:
                self._enqueue("webhook", alert)
            if self.on_transition is not None:
                try:
                    self.on_transition(alert)
                except Exception:  # a display problem must not stop alerting
                    log.exception("alert callback failed")
        return transitions

    def _enqueue(self, action: str, alert: Alert) -> None:
        queue = self._queues.get(action)
        if queue is None:
            queue = self._queues[action] = asyncio.Queue(QUEUE_LIMIT)
            self._workers[action] = asyncio.create_task(
                self._deliver(action, queue), name=f"alert-{action}"
            )
        try:
            queue.put_nowait(alert)
        except asyncio.QueueFull:
            log.warning("alert %s dropped: %d deliveries already waiting", action, QUEUE_LIMIT)

    async def _deliver(self, action: str, queue: asyncio.Queue[Alert]) -> None:
        while True:
            alert = await queue.get()
            try:
                if action == "command":
                    await run_command(self.command, alert, self.command_timeout)
                elif self.webhook is not None:
                    await send_webhook(self.webhook, self.headers, alert, self.transport)
            except Exception:  # a bug in one delivery must not stop the next ones
                log.exception("alert %s failed", action)
            finally:
                queue.task_done()

    async def drain(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for queued deliveries; whether all were done."""
        try:
            async with asyncio.timeout(seconds):
                for queue in list(self._queues.values()):
                    await queue.join()
        except TimeoutError:
            return False
        return True

    async def close(self, grace: float = 5.0) -> None:
        """Let deliveries in progress finish for up to ``grace`` seconds, then stop."""
        await self.drain(grace)
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
