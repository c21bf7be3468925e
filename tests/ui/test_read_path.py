"""The one read path every screen shares (screens/base.py): frozen context, order, failures.

A probe screen whose read takes a given time per call shows that a superseded result is never
drawn, whatever order the reads complete in; a read that raises is said on the screen and on
the status line; a read that takes a moment says what it is reading; a cache written by a newer
depin-explorer, opened in a real pty, says to upgrade and leaves the file as it was.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from cache.queries import PollInfo
from screens.base import NEWER_SCHEMA, CacheScreen, ReadContext
from screens.widgets.status_line import StatusLine
from tests.corpus import FORBIDDEN_SEQUENCES
from tests.support.ui import run_in_pty, settle
from tests.ui.appkit import NOW, make_app, store_live


class Probe(CacheScreen[int, int]):
    """Read number N sleeps ``delays[N]`` seconds and returns N; what is drawn is recorded."""

    LOADING: ClassVar[str] = "probing the cache"

    def __init__(self, delays: dict[int, float], fail: str = "") -> None:
        super().__init__()
        self.delays = delays
        self.fail = fail
        self.asked = 0
        self.drawn: list[int | None] = []
        self.threads: set[str] = set()
        self.reads = 0

    def compose(self) -> ComposeResult:
        yield Static(id="probe")
        yield StatusLine()

    def read_options(self) -> int:
        self.asked += 1
        return self.asked

    def read(self, conn: sqlite3.Connection, ctx: ReadContext[int]) -> tuple[int, PollInfo | None]:
        self.threads.add(threading.current_thread().name)
        self.reads += 1
        assert ctx.now == NOW and ctx.at is None and ctx.offline
        time.sleep(self.delays.get(ctx.options, 0.0))
        if self.fail:
            raise RuntimeError(self.fail)
        return ctx.options, None

    def render_data(self, data: int | None) -> None:
        self.drawn.append(data)


def notice_text(screen: CacheScreen[int, int]) -> str:
    shown = screen.query_one("#read-notice", Static)
    assert shown.display
    content = shown.content
    return content.plain if isinstance(content, Text) else str(content)


async def test_a_superseded_read_is_never_drawn_whatever_order_they_finish_in(tmp_path: Path):
    store_live(tmp_path / "cache.db", at=NOW)
    # read 1 (on showing the screen) is slow, 2..5 finish in order, 6 last: 2, 3, 4, 5, 1, 6
    probe = Probe({1: 0.9, 2: 0.05, 3: 0.15, 4: 0.25, 5: 0.35, 6: 1.2})
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(probe)
        for _ in range(5):
            await pilot.pause(0.02)
            probe.reload()  # reads 2..6, each superseding the ones before
        deadline = time.monotonic() + 5
        while 6 not in probe.drawn and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await settle(pilot)
    assert probe.asked == 6
    assert probe.drawn == [6]  # every earlier read was superseded before its result arrived
    assert probe.threads and threading.main_thread().name not in probe.threads


async def test_results_arriving_in_order_are_each_drawn(tmp_path: Path):
    store_live(tmp_path / "cache.db", at=NOW)
    probe = Probe({})
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(probe)
        await settle(pilot)
        probe.reload()
        await settle(pilot)
    assert probe.drawn == [1, 2]


async def test_a_read_that_raises_is_said_on_the_screen_and_the_status_line(tmp_path: Path):
    store_live(tmp_path / "cache.db", at=NOW)
    probe = Probe({}, fail="boom")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(probe)
        await settle(pilot)
        said = notice_text(probe)
        status = str(probe.query_one(StatusLine).render())
    assert probe.drawn == []  # nothing half-read is drawn
    assert said == "could not read the cache: RuntimeError: boom (full text in the log)"
    assert said in status


async def test_a_failure_text_is_sanitised_before_it_is_drawn(tmp_path: Path):
    store_live(tmp_path / "cache.db", at=NOW)
    probe = Probe({}, fail="bad \x1b]52;c;aGk=\x07 row \x1b[2J[red]x[/red]")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 24)) as pilot:
        await app.push_screen(probe)
        await settle(pilot)
        said = notice_text(probe)
        status = str(probe.query_one(StatusLine).render())
    for shown in (said, status):
        assert not any(seq in shown for seq in FORBIDDEN_SEQUENCES)
    assert "␛[2J[red]x[/red]" in said  # shown for what it is: no escape, no markup


async def test_a_slow_read_says_what_it_is_reading_then_draws(tmp_path: Path):
    store_live(tmp_path / "cache.db", at=NOW)
    probe = Probe({1: 0.8})
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(probe)
        await pilot.pause(0.4)
        assert notice_text(probe) == "Probing the cache…"
        await settle(pilot)
        deadline = time.monotonic() + 3
        while not probe.drawn and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert probe.drawn == [1]
        assert not probe.query_one("#read-notice", Static).display


def newer_schema_cache(tmp_path: Path) -> Path:
    db = tmp_path / "cache.db"
    store_live(db, at=NOW)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    return db


async def test_a_newer_schema_says_to_upgrade_on_every_screen(tmp_path: Path):
    newer_schema_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        for key in "12345678":
            await pilot.press(key)
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, CacheScreen)
            assert NEWER_SCHEMA in notice_text(screen), key
            assert NEWER_SCHEMA in str(screen.query_one(StatusLine).render()), key


def test_a_newer_schema_cache_opened_offline_in_a_pty_says_to_upgrade(tmp_path: Path):
    db = newer_schema_cache(tmp_path)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update(TERM="xterm-256color", TZ="UTC", HOME=str(tmp_path))
    for name in ("DATA", "STATE", "CONFIG"):
        env[f"XDG_{name}_HOME"] = str(tmp_path / name.lower())
    keys = [(4.0, b"2"), (6.0, b"q")]
    output, code = run_in_pty(["--offline", "--db", str(db)], keys, env, size=(120, 40))
    text = output.decode("utf-8", errors="replace")
    assert code == 0, text[-2000:]  # no worse than it started: a clean exit
    assert "Traceback" not in text
    flat = " ".join(text.split())
    assert "this cache was written by a newer" in flat and "upgrade to read it" in flat
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # never written


class Counting(Probe):
    """The same options every time: what a screen shown for the first time asks for twice."""

    def read_options(self) -> int:
        self.asked += 1
        return 1


async def test_a_request_for_what_the_read_under_way_reads_is_answered_by_it(tmp_path: Path):
    store_live(tmp_path / "cache.db", at=NOW)
    probe = Counting({1: 0.5})
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(probe)
        await pilot.pause(0.05)
        probe.reload()  # the same moment, modes and options: no second read beside the first
        await pilot.pause(0.05)
        probe.reload(new_data=True)  # a poll was stored since the first began: read again
        deadline = time.monotonic() + 5
        while len(probe.drawn) < 1 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await settle(pilot)
    assert probe.reads == 2 and probe.drawn == [1]
