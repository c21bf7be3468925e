"""Time travel: every screen as of T shows what was stored at or before T, nothing newer; `t`,
`,` `.` and `T` move through history; the status line says so."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from textual.widgets import Input, Static

from cache.db import open_reader
from cache.queries import latest_metrics
from screens.fleet import FleetScreen
from screens.node import NodeScreen
from screens.rankings import RankingsScreen
from screens.time_travel import TimeTravelPrompt
from screens.widgets.fleet_table import FleetTable
from sources.models import NetworkMetric, NodeSample, Reading
from tests.support.ui import settle, status
from tests.ui.appkit import NOW, make_app, markets_page, store

T1, T2, T3 = NOW - timedelta(hours=3), NOW - timedelta(hours=2), NOW - timedelta(hours=1)


def history(db: Path) -> None:
    """Three rounds of rankings, a network figure and a node, each with its own values."""
    for n, at in enumerate((T1, T2, T3), start=1):
        page = markets_page()
        coins = [c.model_copy(update={"price_usd": float(n)}) for c in page.market]
        store(db, "coingecko", at, Reading(market=coins))
        store(
            db,
            "akash",
            at,
            Reading(
                metrics=[
                    NetworkMetric(
                        network="akash", metric="gpus_total", value=100.0 * n, endpoint="/v1/gpu"
                    )
                ]
            ),
        )
        store(
            db,
            "fleet",
            at,
            Reading(
                nodes=[NodeSample(node="gpu-01", source_kind="exporter", up=True, cpu_pct=10.0 * n)]
            ),
        )


def prices(app) -> set[float | None]:
    screen = app.screen
    assert isinstance(screen, RankingsScreen)
    return {c.price_usd for c in screen.shown}


def cpu(app) -> object:
    table = app.screen.query_one(FleetTable)
    keys = [c.key for c in table.columns]
    return table.row_for("gpu-01")[keys.index("cpu_pct")]


async def test_every_screen_as_of_t2_shows_t2(tmp_path: Path) -> None:
    history(tmp_path / "cache.db")
    app = make_app(tmp_path)
    app.at = T2 + timedelta(minutes=30)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "AS OF" in status(app) and "· cached ·" in status(app)
        await pilot.press("2")
        await settle(pilot)
        assert prices(app) == {2.0}
        await pilot.press("4")
        await settle(pilot)
        assert isinstance(app.screen, FleetScreen) and cpu(app) == 20.0
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NodeScreen)
        title = str(app.screen.query_one("#chart-title-cpu_pct", Static).render())
        assert "last 20.0 %" in title and "(2 samples)" in title  # T3's sample is not shown
        await pilot.press("escape")
        await pilot.press("3")
        await settle(pilot)
        console = Console(width=60, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#panel-akash", Static).content)
        panel = console.export_text()
        assert "200" in panel and "300" not in panel
        conn = open_reader(tmp_path / "cache.db")
        assert [m.value for m in latest_metrics(conn, app.at)] == [200.0]


async def test_step_through_polls_and_back_to_live(tmp_path: Path) -> None:
    history(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        assert prices(app) == {3.0} and app.at is None
        await pilot.press("comma")  # one poll before the newest
        await settle(pilot)
        assert app.at == T2
        assert prices(app) == {2.0}
        assert "AS OF" in status(app)
        await pilot.press("comma")
        await settle(pilot)
        assert prices(app) == {1.0} and app.at == T1
        await pilot.press("full_stop")
        await settle(pilot)
        assert app.at == T2
        for _ in range(2):  # nothing before T1: it stays there, and says so
            await pilot.press("comma")
            await settle(pilot)
        assert app.at == T1
        for _ in range(2):
            await pilot.press("full_stop")
            await settle(pilot)
        assert app.at == T3
        await pilot.press("full_stop")  # past the newest poll: live
        await settle(pilot)
        assert app.at is None
        await pilot.press("comma")
        await settle(pilot)
        await pilot.press("T")
        await settle(pilot)
        assert app.at is None and prices(app) == {3.0} and "AS OF" not in status(app)


async def test_t_prompt_relative_times_errors_and_live(tmp_path: Path) -> None:
    history(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, TimeTravelPrompt)
        await pilot.press(*"soon", "enter")
        await pilot.pause()
        error = str(app.screen.query_one("#travel-error", Static).render())
        assert 'cannot read "soon"' in error and isinstance(app.screen, TimeTravelPrompt)
        app.screen.query_one(Input).value = "-150m"  # between T1 and T2
        await pilot.press("enter")
        await settle(pilot)
        assert app.at == NOW - timedelta(minutes=150)
        assert prices(app) == {1.0}
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("enter")  # empty: live
        await settle(pilot)
        assert app.at is None and prices(app) == {3.0}
