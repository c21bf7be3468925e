"""The Alerts screen (key 8): firing first, then history; state and severity filters; time
travel; hostile text shown literally; a toast and the bell per transition; snapshots."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from cache.alert_rules import Rule
from cache.alerts import evaluate, firing
from cache.db import open_reader, open_writer
from cache.store import PollRecord, write_poll
from explorer.config import Config
from screens.alerts import AlertsScreen
from sources.models import ErrorKind, NodeSample, Reading, SourceError
from tests.support.ui import settle
from tests.ui.appkit import NOW, make_app

SIZES = [(80, 24), (120, 40)]
RULES = [
    Rule("node down", "node_down", "critical", for_s=60, resolve_after_s=60),
    Rule("gpu hot", "gpu_temp_above", "warning", threshold=85),
    Rule("coingecko failing", "source_failing", "info", cycles=2),
]
HOSTILE = "rig[bold red]07[/]\x1b[2J"
SHOWN = "rig[bold red]07[/]␛[2J"  # literally: no markup, the control byte made visible


def alerts_cache(tmp_path: Path) -> Path:
    """gpu-02 down (fired 40 min ago), gpu-01 hot now, a resolved outage of gpu-03 and of a
    hostile-named node, and CoinGecko failing twice in a row."""
    db = tmp_path / "cache.db"
    conn = open_writer(db)

    def fleet(at, *samples: NodeSample) -> None:
        poll_id = write_poll(conn, PollRecord("fleet", at, at, reading=Reading(nodes=[*samples])))
        evaluate(conn, RULES, poll_id, at)

    def n(name: str, up: bool = True, temp: float | None = None) -> NodeSample:
        return NodeSample(node=name, source_kind="exporter", up=up, gpus=8, gpu_temp_c=temp)

    error = "cannot connect to 10.0.0.7: connection refused"
    start = NOW - timedelta(hours=3)
    fleet(start, n("gpu-03", False), n(HOSTILE, False))
    fleet(start + timedelta(minutes=2), n("gpu-03", False), n(HOSTILE, False))
    fleet(start + timedelta(minutes=30), n("gpu-03"), n(HOSTILE))
    fleet(start + timedelta(minutes=32), n("gpu-03"), n(HOSTILE))
    down = NodeSample(node="gpu-02", source_kind="exporter", up=False, error=error)
    fleet(NOW - timedelta(minutes=42), down)
    fleet(NOW - timedelta(minutes=40), down, n("gpu-01", temp=79.0))
    fleet(NOW - timedelta(minutes=1), down, n("gpu-01", temp=91.0))
    for minutes in (30, 20):
        at = NOW - timedelta(minutes=minutes)
        failure = SourceError(ErrorKind.HTTP_5XX, "HTTP 503 from api.coingecko.com")
        poll_id = write_poll(conn, PollRecord("coingecko", at, at, error=failure))
        evaluate(conn, RULES, poll_id, at)
    conn.close()
    return db


def opened(*presses: str):
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        for key in presses:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def cells(screen: AlertsScreen) -> list[tuple[str, str, str]]:
    table = screen.query_one(DataTable)
    return [
        (str(table.get_row_at(i)[0]), str(table.get_row_at(i)[1]), str(table.get_row_at(i)[3]))
        for i in range(table.row_count)
    ]


async def test_firing_first_then_history_and_the_filters(tmp_path: Path) -> None:
    alerts_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened()(pilot)
        screen = app.screen
        assert isinstance(screen, AlertsScreen)
        assert cells(screen) == [
            ("● firing", "CRIT", "gpu-02"),
            ("● firing", "warn", "gpu-01"),
            ("● firing", "info", "coingecko"),
            ("resolved", "CRIT", SHOWN),
            ("resolved", "CRIT", "gpu-03"),
        ]
        summary = str(screen.query_one("#alerts-summary", Static).render())
        assert "3 firing (1 critical, 1 warning, 1 info) · 2 resolved" in summary
        detail = str(screen.query_one("#alerts-detail", Static).render())
        assert "gpu-02 is down: cannot connect to 10.0.0.7: connection refused" in detail
        await pilot.press("s")  # firing only
        await settle(pilot)
        assert [c[0] for c in cells(screen)] == ["● firing"] * 3
        shown = screen.table_export()  # what `e` writes: the rows as filtered
        assert [r["subject"] for r in shown.records()] == ["gpu-02", "gpu-01", "coingecko"]
        assert shown.records()[0]["started_at"] == "2026-11-25T11:20:00.000Z"
        await pilot.press("s", "v")  # resolved only, critical
        await settle(pilot)
        assert [c[2] for c in cells(screen)] == [SHOWN, "gpu-03"]
        await pilot.press("s", "v")  # all states, warnings
        await settle(pilot)
        assert [c[2] for c in cells(screen)] == ["gpu-01"]
        await pilot.press("s", "s")  # resolved warnings: none
        await settle(pilot)
        assert "no alerts match the filter" in str(screen.query_one("#alerts-detail").render())


async def test_time_travel_shows_the_alerts_of_then(tmp_path: Path) -> None:
    alerts_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await opened()(pilot)
        app.travel_to(NOW - timedelta(hours=2, minutes=50))  # during the old outage
        await settle(pilot)
        assert cells(app.screen) == [  # type: ignore[arg-type]
            ("● firing", "CRIT", SHOWN),
            ("● firing", "CRIT", "gpu-03"),
        ]


async def test_a_transition_toasts_and_rings_the_bell(tmp_path: Path) -> None:
    db = alerts_cache(tmp_path)
    conn = open_reader(db)
    hot = next(a for a in firing(conn) if a.subject == "gpu-01")
    conn.close()
    config = Config.model_validate({"alerts": {"bell": True}})
    app = make_app(tmp_path, config=config)
    rang = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.bell = lambda: rang.append(True)  # type: ignore[method-assign]
        app._alert_changed(hot)
        await pilot.pause()
        [toast] = list(app._notifications)
        assert toast.title == "warning alert firing: gpu hot (8: Alerts)"
        assert toast.message == "gpu-01 GPU at 91 °C (limit 85 °C)"
        assert toast.severity == "warning" and not toast.markup
    assert rang == [True]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_alerts_snapshot(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    alerts_cache(tmp_path)
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=opened())
