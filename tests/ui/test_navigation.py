"""Pilot tests: keys, navigation, sorting, filtering, watchlist, drill-down."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable, Input, Static

from screens.overview import OverviewScreen
from screens.project import ProjectScreen
from screens.rankings import RankingsScreen
from screens.widgets.chart import Chart
from screens.widgets.status_line import StatusLine
from tests.support.ui import settle, status
from tests.ui.appkit import NOW, make_app, store_failure, store_live, store_sample


def names(screen: RankingsScreen) -> list[str]:
    return [c.name for c in screen.shown]


async def test_first_run_offline_shows_the_labelled_sample(tmp_path: Path) -> None:
    app = make_app(tmp_path, poll=True, offline=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        headline = str(app.screen.query_one("#overview-headline", Static).render())
        assert "Projects 20" in headline and "sample" in headline.lower()
        assert "sample · 2024-06-30" in status(app) and "offline" in status(app)
        await pilot.press("2")
        await settle(pilot)
        assert isinstance(app.screen, RankingsScreen)
        assert len(app.screen.shown) == 20
        assert "sample · 2024-06-30" in status(app)


async def test_live_snapshot_wins_over_sample(tmp_path: Path) -> None:
    store_live(tmp_path / "cache.db")
    store_sample(tmp_path / "cache.db", at=NOW)  # newer, but the sample never wins over live
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        assert "Render" in names(app.screen) and "Hivemapper" not in names(app.screen)
        assert "coingecko · cached · 40 s ago" in status(app)


async def test_number_keys_switch_screens_and_q_quits(tmp_path: Path) -> None:
    store_sample(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        assert isinstance(app.screen, RankingsScreen)
        await pilot.press("1")
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_sorting_by_keys_and_header_click(tmp_path: Path) -> None:
    store_live(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        assert names(screen)[0] == "Render"  # market cap, descending
        await pilot.press("S")
        assert names(screen)[0] == "io.net"  # market cap, ascending
        screen.sort_by("change_24h")
        assert names(screen)[:2] == ["io.net", "Render"]
        assert names(screen)[-1] == "Akash Network"
        await pilot.press("s")  # next column: 7d change
        assert screen.sort_key == "change_7d" and names(screen)[0] == "io.net"
        screen.sort_by("name")
        assert names(screen) == sorted(names(screen), key=str.casefold)
        table = screen.query_one(DataTable)
        table.post_message(
            DataTable.HeaderSelected(
                table,
                table.columns.get(next(k for k in table.columns if k.value == "price")).key,
                4,
                table.columns[next(k for k in table.columns if k.value == "price")].label,
            )
        )
        await pilot.pause()
        assert screen.sort_key == "price" and names(screen)[0] == "Bittensor"


async def test_missing_values_sort_last_both_ways(tmp_path: Path) -> None:
    store_live(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        screen.sort_by("change_30d", descending=True)
        assert names(screen)[-1] == "Helium"  # no 30d change
        screen.sort_by("change_30d", descending=False)
        assert names(screen)[-1] == "Helium"


async def test_filter_by_name_or_symbol_and_escape_clears(tmp_path: Path) -> None:
    store_live(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press("a", "k", "t")
        assert names(screen) == ["Akash Network"]
        await pilot.press("enter")
        assert isinstance(app.focused, DataTable) and names(screen) == ["Akash Network"]
        await pilot.press("escape")
        assert len(names(screen)) == 6 and not screen.filter_text
        await pilot.press("slash", "n", "e", "t")  # "io.net" by name, "Akash Network" too
        assert set(names(screen)) == {"io.net", "Akash Network"}
        await pilot.press("escape")
        assert len(names(screen)) == 6


async def test_watchlist_star_and_only_view_persist_in_state_file(tmp_path: Path) -> None:
    store_live(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        await pilot.press("down", "f")  # Bittensor
        assert app.is_watched("bittensor")
        await pilot.press("w")
        assert names(screen) == ["Bittensor"]
        await pilot.press("w")
        assert len(names(screen)) == 6
    state = json.loads((tmp_path / "state.json").read_text())
    assert list(state["databases"].values())[0]["watchlist"] == ["bittensor"]
    app2 = make_app(tmp_path)
    async with app2.run_test(size=(120, 40)) as pilot:
        assert app2.is_watched("bittensor")
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("down", "f")
        assert not app2.is_watched("bittensor")


async def test_enter_opens_project_with_history_and_escape_returns(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    store_live(db, at=NOW.replace(hour=10))
    store_live(db, at=NOW.replace(hour=11))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ProjectScreen)
        assert app.screen.coin.coin_id == "render-token"
        title = str(app.screen.query_one("#project-history-title", Static).render())
        assert "2 snapshots" in title
        assert app.screen.query_one("#project-spark-7d", Chart).display
        await pilot.press("escape")
        assert isinstance(app.screen, RankingsScreen)


async def test_failing_source_turns_status_amber_and_keeps_last_good(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    store_live(db)
    store_failure(db, NOW)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        line = app.screen.query_one(StatusLine)
        assert line.has_class("-warn")
        assert "failing since 12:00:00: http_5xx" in status(app)
        assert len(app.screen.shown) == 6


async def test_rate_limited_source_says_until_when(tmp_path: Path) -> None:
    from datetime import timedelta

    from sources.models import ErrorKind, SourceError
    from tests.ui.appkit import store

    db = tmp_path / "cache.db"
    store_live(db)
    error = SourceError(ErrorKind.RATE_LIMITED, "rate limited by api.coingecko.com", status=429)
    store(db, "coingecko", NOW, error=error, retry_at=NOW + timedelta(seconds=119))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        assert "coingecko rate limited until 12:01:59" in status(app)
        assert len(app.screen.shown) == 6


async def test_help_panel_and_refresh_offline(tmp_path: Path) -> None:
    store_sample(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("question_mark")
        await pilot.pause()
        assert not app.screen.query("HelpPanel")
        await pilot.press("r")
        await pilot.pause()
        assert any("offline" in str(n.message) for n in app._notifications)


async def test_keys_can_be_remapped_by_binding_id(tmp_path: Path) -> None:
    from explorer.config import Config

    store_sample(tmp_path / "cache.db")
    app = make_app(tmp_path, config=Config.model_validate({"keys": {"screen.rankings": "x"}}))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("x")
        assert isinstance(app.screen, RankingsScreen)


async def test_command_palette_switches_screen(tmp_path: Path) -> None:
    store_sample(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"go: Rankings")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RankingsScreen)


async def test_a_burst_of_failures_is_one_toast(tmp_path: Path) -> None:
    import httpx

    from explorer.app import DepinExplorerApp
    from explorer.config import Config, Secrets
    from tests.ui.appkit import frozen

    down = httpx.MockTransport(lambda request: httpx.Response(404, content=b"gone"))
    config = Config.model_validate({"fleet": {"local": {"enabled": False}}})
    app = DepinExplorerApp(
        config,
        Secrets(),
        tmp_path / "cache.db",
        offline=False,
        state_path=tmp_path / "state.json",
        clock=frozen,
        transport=down,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(40):  # bounded: the five network sources fail within a few seconds
            await pilot.pause(0.1)
            if len(app._failing) == 5 and not app._newly_failing:
                break
        toasts = [str(n.message) for n in app._notifications]
        assert len(toasts) == 1, toasts
        assert toasts[0].startswith("5 sources failing")
