"""Alert actions: a webhook against a loopback receiver, a real command, the Alerting glue."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cache.alerts import ALERT_KEYS, Alert
from cache.db import open_writer
from cache.store import PollRecord, write_poll
from explorer.alert_config import AlertsConfig, WebhookConfig
from explorer.alerting import Alerting, run_command, send_webhook, webhook_headers
from explorer.config import ConfigError
from sources.base import HttpPolicy, make_client, post_json
from sources.models import ErrorKind, NodeSample, Reading, SourceError
from tests.support.loopback import PostReceiver, Reply

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ALERT = Alert(
    id=1,
    rule="node down",
    kind="node_down",
    subject="gpu-01",
    severity="critical",
    state="firing",
    since=T0 - timedelta(minutes=1),
    started_at=T0,
    resolved_at=None,
    value=None,
    message="gpu-01 is down: cannot connect to 10.0.0.5",
)


def webhook(url: str, **kw: object) -> WebhookConfig:
    return WebhookConfig.model_validate({"url": url, "timeout": 2, **kw})


def test_webhook_posts_the_alert_with_headers_from_the_environment() -> None:
    with PostReceiver() as receiver:
        hook = webhook(receiver.url, headers_env={"Authorization": "HOOK_TOKEN"})
        headers = webhook_headers(hook, {"HOOK_TOKEN": "Bearer s3cret-token"})
        assert asyncio.run(send_webhook(hook, headers, ALERT)) == 200
    [(path, raw, body)] = receiver.posts
    sent = {k.lower(): v for k, v in raw.items()}
    assert path == "/hook" and sent["authorization"] == "Bearer s3cret-token"
    assert sent["content-type"] == "application/json"
    assert list(body) == list(ALERT_KEYS)
    assert body == ALERT.record()


def test_webhook_retries_a_503_and_a_429_then_delivers_once() -> None:
    replies = [Reply(503, b"{}"), Reply(429, b"{}", {"retry-after": "0"}), Reply(200, b"{}")]
    with PostReceiver(replies) as receiver:
        assert asyncio.run(send_webhook(webhook(receiver.url, retries=3), {}, ALERT)) == 200
    assert receiver.attempts == 3 and len(receiver.bodies()) == 1


def test_webhook_gives_up_after_its_retries_and_never_on_a_4xx(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with PostReceiver([Reply(500, b'{"error": "down"}')]) as receiver:
        started = time.monotonic()
        assert asyncio.run(send_webhook(webhook(receiver.url, retries=2), {}, ALERT)) is None
        assert receiver.attempts == 3 and time.monotonic() - started < 10
    with PostReceiver([Reply(400, b"{}")]) as receiver:
        assert asyncio.run(send_webhook(webhook(receiver.url, retries=5), {}, ALERT)) is None
        assert receiver.attempts == 1
    assert "alert webhook not delivered: HTTP 500 from 127.0.0.1: down" in caplog.text


def test_webhook_to_a_closed_port_is_bounded() -> None:
    with PostReceiver() as receiver:
        url = receiver.url
    started = time.monotonic()
    assert asyncio.run(send_webhook(webhook(url, retries=2, timeout=1), {}, ALERT)) is None
    assert time.monotonic() - started < 1 * 3 + 4 * 2 + 1


def test_post_json_never_follows_a_redirect_nor_repeats_a_header() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = b'{"error": "bad token Bearer s3cret-token"}'
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"location": "https://elsewhere.example/x"})
        return httpx.Response(401, content=body, headers={"content-type": "application/json"})

    async def run(path: str) -> SourceError:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(SourceError) as caught:
                await post_json(
                    client,
                    f"https://hooks.example{path}?key=abcdefgh",
                    {"a": 1},
                    headers={"authorization": "Bearer s3cret-token"},
                    policy=HttpPolicy(deadline=5, attempts=3),
                )
            return caught.value

    moved = asyncio.run(run("/moved"))
    assert moved.kind is ErrorKind.HTTP_4XX and "elsewhere.example not followed" in moved.message
    denied = asyncio.run(run("/hook"))
    assert denied.kind is ErrorKind.AUTH and "s3cret" not in denied.message
    assert "abcdefgh" not in denied.message and "/hook" not in denied.message


def test_missing_header_variable_is_a_config_error() -> None:
    hook = webhook("http://127.0.0.1:9/hook", headers_env={"X-Token": "NOT_SET_ANYWHERE"})
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE is not set"):
        webhook_headers(hook, {})


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "action.py"
    path.write_text(body)
    return [sys.executable, str(path)]


def test_command_gets_the_alert_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    argv = script(tmp_path, f"import sys\nopen({str(out)!r}, 'w').write(sys.stdin.read())\n")
    assert asyncio.run(run_command([*argv], ALERT, 10)) == 0
    assert json.loads(out.read_text()) == ALERT.record()


def test_command_is_never_run_through_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    argv = script(tmp_path, f"import json, sys\njson.dump(sys.argv[1:], open({str(out)!r}, 'w'))\n")
    assert asyncio.run(run_command([*argv, "$(touch pwned)", "; rm -rf /"], ALERT, 10)) == 0
    assert json.loads(out.read_text()) == ["$(touch pwned)", "; rm -rf /"]
    assert not Path("pwned").exists()


def test_command_failures_are_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow = script(tmp_path, "import time\ntime.sleep(30)\n")
    started = time.monotonic()
    assert asyncio.run(run_command(slow, ALERT, 0.5)) is None
    assert time.monotonic() - started < 5
    assert asyncio.run(run_command([str(tmp_path / "no-such-program")], ALERT, 5)) is None
    failing = script(tmp_path, "import sys\nsys.exit(3)\n")
    assert asyncio.run(run_command(failing, ALERT, 5)) == 3
    text = caplog.text
    assert "killed after 0.5 s" in text and "cannot start" in text and "status 3" in text


def test_alerting_evaluates_and_delivers_in_order(tmp_path: Path) -> None:
    """Firing, then resolved: the resolution waits for the firing's retries, never overtakes."""
    db = tmp_path / "cache.db"
    out = tmp_path / "lines.txt"
    argv = script(tmp_path, f"import sys\nopen({str(out)!r}, 'a').write(sys.stdin.read())\n")
    now = [T0]
    seen: list[str] = []

    async def scenario(receiver: PostReceiver) -> None:
        config = AlertsConfig.model_validate(
            {
                "rules": [{"name": "down", "kind": "node_down", "for": 0}],
                "command": argv,
                "webhook": {"url": receiver.url, "timeout": 2, "retries": 3},
            }
        )
        alerting = Alerting(config, lambda: now[0], environ={})
        alerting.on_transition = lambda alert: seen.append(alert.state)
        conn = open_writer(db)

        async def in_writer(func):  # the poller's writer thread, here inline
            return func(conn)

        for i, up in enumerate([False, False, True]):
            now[0] = T0 + timedelta(seconds=i)
            reading = Reading(nodes=[NodeSample(node="gpu-01", source_kind="exporter", up=up)])
            record = PollRecord("fleet", now[0], now[0], reading=reading)
            await alerting.after_poll(in_writer, write_poll(conn, record))
        assert await alerting.drain(20)
        await alerting.close()
        conn.close()

    with PostReceiver([Reply(503, b"{}"), Reply(200, b"{}")]) as receiver:
        asyncio.run(scenario(receiver))
    assert seen == ["firing", "resolved"]
    assert [b["state"] for b in receiver.bodies()] == ["firing", "resolved"]  # type: ignore[index]
    assert [json.loads(line)["state"] for line in out.read_text().splitlines()] == [
        "firing",
        "resolved",
    ]


def test_a_broken_cache_never_fails_the_poll(caplog: pytest.LogCaptureFixture) -> None:
    alerting = Alerting(AlertsConfig(), environ={})

    async def broken(func):
        raise sqlite3.OperationalError("database is locked")

    assert asyncio.run(alerting.after_poll(broken, 7)) == []
    assert "alert rules not evaluated after poll 7: database is locked" in caplog.text


def test_the_log_line_of_an_alert_is_one_clean_line(caplog: pytest.LogCaptureFixture) -> None:
    """A subject is a node name read from the cache (a copied one may hold anything)."""
    alerting = Alerting(AlertsConfig(), environ={})
    hostile = replace(ALERT, subject="gpu-01\n2026 alert resolved: fake\x1b[2J\u202e")

    async def in_writer(func):  # the evaluation's outcome, as the writer thread returns it
        return [hostile]

    assert asyncio.run(alerting.after_poll(in_writer, 7)) == [hostile]
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alert ")]
    assert line.startswith("alert firing: node down gpu-01")
    assert not any(c in line for c in "\n\x1b\u202e"), line
