"""Pilot tests of the History screen: the default "from", picking another, time travel, empty
sections, hostile text. The app does not bind key 6 yet, so the screen is pushed directly."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Input, Static

from explorer.app import DepinExplorerApp
from screens.history import HistoryScreen, span
from tests.support.ui import settle
from tests.ui.appkit import NOW, make_app
from tests.ui.historykit import LOOKED, at_local, history_cache


def plain(pilot: Pilot, selector: str) -> str:
    """What a Static shows, as plain text (Text or a rich Table alike)."""
    console = Console(width=160, file=io.StringIO(), color_system=None, record=True)
    console.print(pilot.app.screen.query_one(selector, Static).content)
    return console.export_text()


async def open_history(pilot: Pilot, screen: HistoryScreen | None = None) -> HistoryScreen:
    await settle(pilot)
    shown = screen or HistoryScreen()
    pilot.app.push_screen(shown)
    await settle(pilot)
    return shown


def app_with(tmp_path: Path, looked: datetime | None) -> DepinExplorerApp:
    history_cache(tmp_path)
    app = make_app(tmp_path)
    app.last_looked = lambda: looked  # type: ignore[method-assign]  # not on the app yet
    return app


async def test_default_is_since_you_last_looked_with_every_section(tmp_path: Path) -> None:
    app = app_with(tmp_path, LOOKED)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_history(pilot)
        assert screen.shown_data is not None and screen.shown_data.since == LOOKED
        title = plain(pilot, "#history-title")
        assert f"{at_local(LOOKED)} → {at_local(NOW)}" in title and "6 h apart" in title
        assert "since you last looked" in title
        nodes = plain(pilot, "#history-nodes").splitlines()
        kinds = [line.split()[1] for line in nodes if line.strip()]
        assert kinds == ["down", "gone", "up", "new", "new"]  # trouble first
        assert "gpu-03" in nodes[0] and "cannot connect to 10.0.0.7" in nodes[0]
        assert "1 down" in plain(pilot, "#history-nodes-title")
        rankings = plain(pilot, "#history-rankings")
        assert "#131 → #120" in rankings and "$3.10 → $2.87" in rankings and "-7.4%" in rankings
        assert "new: Bittensor #27" in rankings
        networks = plain(pilot, "#history-networks")
        assert "20,500 → 21,100" in networks and "+600" in networks and "+2.9%" in networks
        assert "1.0 TiB → 2,748 B" in networks  # units kept, bytes readable
        assert "3 of 26 figures moved" in plain(pilot, "#history-networks-title")
        rewards = plain(pilot, "#history-rewards")
        assert "gpu-01" in rewards and "1.0000 IO" in rewards and "4 of 4 blocks paid" in rewards
        assert "2.5000 IO" in plain(pilot, "#history-rewards-title")


async def test_hostile_names_are_sanitised(tmp_path: Path) -> None:
    app = app_with(tmp_path, LOOKED)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_history(pilot)
        shown = plain(pilot, "#history-nodes") + plain(pilot, "#history-rankings")
        assert "gpu-retired-" in shown and "Old" in shown
        assert "\x1b" not in shown


async def test_without_a_last_look_the_last_24_hours(tmp_path: Path) -> None:
    app = app_with(tmp_path, None)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot)
        assert screen.shown_data is not None
        assert screen.shown_data.since == NOW - timedelta(hours=24)
        assert "over the last 24 h" in plain(pilot, "#history-title")
        await pilot.press("l")
        await settle(pilot)
        assert "No last look recorded yet" in plain(pilot, "#history-message")


async def test_a_host_with_no_last_looked_method_works(tmp_path: Path) -> None:
    history_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot)
        assert screen.shown_data is not None
        assert screen.shown_data.since == NOW - timedelta(hours=24)


async def test_pick_from_with_relative_and_local_times_and_refuse_bad_input(
    tmp_path: Path,
) -> None:
    app = app_with(tmp_path, LOOKED)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot)
        await pilot.press("s")
        field = screen.query_one("#history-since", Input)
        assert not field.has_class("-hidden") and field.has_focus
        await pilot.press(*"-3h", "enter")
        await settle(pilot)
        assert screen.chosen == NOW - timedelta(hours=3)
        assert screen.shown_data is not None and screen.shown_data.since == NOW - timedelta(hours=3)
        assert field.has_class("-hidden")
        assert "from the time you picked" in plain(pilot, "#history-title")
        # bad input: a clear message, the field stays open, the old "from" stays
        await pilot.press("s", *"yesterday-ish", "enter")
        await settle(pilot)
        message = plain(pilot, "#history-message")
        assert "Not changed" in message and 'cannot read "yesterday-ish"' in message
        assert screen.chosen == NOW - timedelta(hours=3) and not field.has_class("-hidden")
        # a future "from" is refused too
        field.value = ""
        await pilot.press(*"2026-11-26 09:00", "enter")
        await settle(pilot)
        assert "in the future" in plain(pilot, "#history-message")
        # local "YYYY-MM-DD HH:MM"
        field.value = ""
        await pilot.press(*"2026-11-25 10:30", "enter")
        await settle(pilot)
        assert screen.chosen == NOW - timedelta(minutes=90)
        assert screen.query_one("#history-message").has_class("-hidden")
        # escape closes the field and keeps "from"; l goes back to the last look; d to 24 h
        await pilot.press("s", "x", "escape")
        assert field.has_class("-hidden") and screen.chosen == NOW - timedelta(minutes=90)
        await pilot.press("l")
        await settle(pilot)
        assert screen.chosen is None and screen.shown_data.since == LOOKED
        await pilot.press("d")
        await settle(pilot)
        assert screen.shown_data.since == NOW - timedelta(hours=24)


async def test_time_travel_shows_nothing_newer_than_to(tmp_path: Path) -> None:
    # the early polls are at LOOKED - 1 h, the recent ones in the last minutes before NOW
    app = app_with(tmp_path, LOOKED - timedelta(minutes=30))
    travel = NOW - timedelta(hours=4)
    app.clock = lambda: travel
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_history(pilot)
        assert screen.shown_data is not None and screen.shown_data.until == travel
        for key in ("nodes", "rankings", "networks", "rewards"):
            assert "no change" in plain(pilot, f"#history-{key}"), key
        assert "gpu-03" not in plain(pilot, "#history-nodes")
        assert plain(pilot, "#history-nodes-title").strip() == "Nodes"  # no dangling "of N"
        # a last look after "to" (travelled back past it) falls back to 24 h before "to"
        app.last_looked = lambda: NOW  # type: ignore[method-assign]
        screen.reload()
        await settle(pilot)
        assert screen.shown_data.since == travel - timedelta(hours=24)


async def test_from_not_before_to_says_so(tmp_path: Path) -> None:
    app = app_with(tmp_path, None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot, HistoryScreen(since=NOW + timedelta(hours=1)))
        assert '"from" is not before "to"' in plain(pilot, "#history-nodes")


async def test_empty_cache_every_section_says_no_change(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot)
        for key in ("nodes", "rankings", "networks", "rewards"):
            assert plain(pilot, f"#history-{key}").startswith("no change"), key


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(45, "45 s"), (1200, "20 min"), (3 * 3600, "3 h"), (12000, "3 h 20 min"), (187200, "2 d 4 h")],
)
def test_span(seconds: float, shown: str) -> None:
    assert span(seconds) == shown
