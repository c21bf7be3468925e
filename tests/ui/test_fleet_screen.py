"""The Fleet screen: summary, sort, filter, group, drill-down, hostile labels."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Input, Static

from screens.fleet import FleetScreen
from screens.node import NodeScreen
from screens.widgets.fleet_table import FleetTable
from tests.support.ui import settle
from tests.ui.appkit import make_app, store_devices, store_fleet


async def open_fleet(pilot) -> FleetTable:
    await pilot.press("4")
    await settle(pilot)
    assert isinstance(pilot.app.screen, FleetScreen)
    return pilot.app.screen.query_one(FleetTable)


async def test_summary_and_default_order_put_trouble_first(tmp_path: Path) -> None:
    store_fleet(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_fleet(pilot)
        summary = str(app.screen.query_one("#fleet-summary", Static).render())
        assert "6 nodes" in summary and "1 down" in summary and "1 stale" in summary
        assert "4,010 W" in summary
        keys = table.visible_keys()
        assert keys[0] == "gpu-03"  # down sorts first ("down" < "stale" < "up")
        assert keys[1] == "gpu-stale"


async def test_sort_filter_group_and_drill_down(tmp_path: Path) -> None:
    store_fleet(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_fleet(pilot)
        await pilot.press("s")  # next column after status: CPU%, descending
        assert table.visible_keys()[0] == "gpu-02"
        assert table.visible_keys()[-1] == "gpu-03"  # no value: last either way
        await pilot.press("S")
        assert table.visible_keys()[0] == "cpu-01"
        assert table.visible_keys()[-1] == "gpu-03"
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"akash")
        assert set(table.visible_keys()) == {"cpu-01", "gpu-stale"}
        await pilot.press("escape")
        assert table.visible_count == 6
        await pilot.press("g")  # by network
        assert table.group_key == "network"
        groups = dict(table.groups)
        assert groups["io.net"] == 3 and groups["akash"] == 2
        await pilot.press("g")
        assert table.group_key == "source"
        await pilot.press("g", "g")  # then each node label key, sorted: device_id, rack
        await settle(pilot)
        assert table.group_key == "label" and table.columns[-1].label == "rack"
        assert dict(table.groups) == {"r1": 1, "r2": 2, None: 3}
        summary = str(app.screen.query_one("#fleet-summary", Static).render())
        assert "grouped by rack" in summary
        await pilot.press("g")
        await settle(pilot)
        assert table.group_key is None
        assert table.columns[-1].key == "source"  # the label column is gone again
        table.move_cursor_to("gpu-02")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NodeScreen)
        assert app.screen.node.node == "gpu-02"
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_node_screen_charts_history_over_ranges(tmp_path: Path) -> None:
    from datetime import timedelta

    from screens.widgets.chart import Chart
    from tests.ui.appkit import NOW

    db = tmp_path / "cache.db"
    for minutes in (300, 50, 30, 10):  # four samples: three within the last hour
        store_fleet(db, at=NOW - timedelta(minutes=minutes))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_fleet(pilot)
        table.move_cursor_to("gpu-01")
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, NodeScreen)
        assert screen.query_one("#chart-cpu_pct", Chart).display
        title = str(screen.query_one("#chart-title-cpu_pct", Static).render())
        assert "(4 samples)" in title  # 24 h range by default
        await pilot.press("]")  # 7 d
        await settle(pilot)
        await pilot.press("]")  # 1 h
        assert screen.range_index == 0, screen.range_index
        await settle(pilot)
        title = str(screen.query_one("#chart-title-cpu_pct", Static).render())
        assert "(3 samples)" in title
        down = str(screen.query_one("#chart-title-gpu_temp_c", Static).render())
        assert "71.0" in down


async def test_hostile_node_names_and_labels_render_literally(tmp_path: Path) -> None:
    from datetime import timedelta

    from sources.models import NodeSample, Reading
    from tests.corpus import ALL
    from tests.ui.appkit import NOW, store

    nodes = [
        NodeSample(
            node=p,
            source_kind="exporter",
            up=i % 2 == 0,
            network=p,
            labels={"network": p, "k": p},
            cpu_pct=float(i),
        )
        for i, p in enumerate(ALL)
    ]
    store(tmp_path / "cache.db", "fleet", NOW - timedelta(seconds=5), Reading(nodes=nodes))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_fleet(pilot)
        assert table.row_count == len(ALL)
        await pilot.press("g")
        for _ in range(10):
            await pilot.press("down", "enter")
            await pilot.pause()
            await pilot.press("escape")
        assert app.is_running


def test_configured_thresholds_colour_the_cells() -> None:
    from screens.fleet import fleet_columns

    columns = {c.key: c for c in fleet_columns({"gpu_temp_c": (60, 70), "cpu_pct": (85, 95)})}
    temp = columns["gpu_temp_c"].style_for
    assert (temp(59.0), temp(65.0), temp(71.0), temp(None)) == ("", "warn", "critical", "")
    assert columns["mem_pct"].style_for is None  # no level configured: no colour


async def test_rewards_column_summary_and_node_ionet_section(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    store_fleet(db)
    store_devices(db)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_fleet(pilot)
        rows = {k: table.row_for(k) for k in table.visible_keys()}
        reward = [c.key for c in table.columns].index("reward_24h")
        # 23 blocks in the last 24 h, four of them "not in block": 19 x 0.25 IO
        assert rows["gpu-01"][reward] == 4.75
        assert rows["gpu-02"][reward] is None  # no rewards stored: missing, not 0
        summary = str(app.screen.query_one("#fleet-summary", Static).render())
        assert "4.75 IO earned 24h" in summary
        await pilot.press("s")  # sorting by the rewards column puts the earner first
        while table.sort_state[0] != "reward_24h":
            await pilot.press("s")
        assert table.visible_keys()[0] == "gpu-01"
        table.move_cursor_to("gpu-01")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NodeScreen)
        ionet = str(app.screen.query_one("#node-ionet", Static).render())
        assert "uptime 96%" in ionet and "402.88 IO to date" in ionet
        assert "RTX A6000 ×8" in ionet and "151 earned, 9 failed, 8 missed" in ionet
        assert "4.7500 IO in 19 of 23 blocks" in ionet  # the default range is 24 h
        await pilot.press("escape")
        table.move_cursor_to("gpu-02")
        await pilot.press("enter")
        await settle(pilot)
        ionet = str(app.screen.query_one("#node-ionet", Static).render())
        assert "down" in ionet and "none stored" in ionet and "http_5xx" in ionet


async def test_sources_screen_warns_before_the_io_net_token_expires(tmp_path: Path) -> None:
    import base64
    import json
    from datetime import timedelta

    from pydantic import SecretStr

    from explorer.config import Config, Secrets
    from tests.ui.appkit import NOW

    def jwt(expires: float) -> str:
        claims = base64.urlsafe_b64encode(json.dumps({"exp": expires}).encode()).decode()
        return f"eyJhbGciOiJIUzI1NiJ9.{claims.rstrip('=')}.c2ln"

    config = Config.model_validate({"sources": {"ionet": {"device_ids": [DEVICE]}}})
    store_fleet(tmp_path / "cache.db")
    for expires, expected in (
        (NOW + timedelta(days=10), "(in 10 d)"),
        (NOW + timedelta(days=2), "(in 2 d)"),
        (NOW - timedelta(hours=1), "expired"),
    ):
        app = make_app(tmp_path, config=config)
        app.secrets = Secrets(ionet_token=SecretStr(jwt(expires.timestamp())))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("7")
            await settle(pilot)
            rendered = app.screen.query_one("#sources-notes", Static).content
            assert isinstance(rendered, Text) and expected in rendered.plain
            styles = {str(span.style) for span in rendered.spans}
            if expected == "(in 10 d)":
                assert "bold yellow" not in styles and "bold red" not in styles
            elif expected == "(in 2 d)":
                assert "bold yellow" in styles
            else:
                assert "bold red" in styles


DEVICE = "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17"


async def test_tokens_and_label_keys_from_a_copied_cache_are_sanitised(tmp_path: Path) -> None:
    """A copied database is untrusted: raw escapes in reward tokens and label keys stay inert."""
    import sqlite3

    from tests.ui.appkit import DEVICES

    db = tmp_path / "cache.db"
    store_fleet(db)
    store_devices(db)
    hostile = "IO\x1b]52;c;cHduZWQ=\x07"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE rewards SET token = ?", (hostile,))
        conn.execute("UPDATE devices SET earnings_token = ?", (hostile,))
        conn.execute(
            "UPDATE nodes SET labels = ? WHERE node = 'gpu-01'",
            ('{"\\u001b[2Jrack": "r1", "device_id": "' + DEVICES["gpu-01"] + '"}',),
        )
        # as in a file from before the writer kept the label keys: they are found in the labels
        conn.execute("DELETE FROM meta WHERE key = 'label_keys'")
    conn.close()
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_fleet(pilot)
        summary = ""
        for _ in range(6):  # network, source, then the label keys: stop at the hostile one
            await pilot.press("g")
            await settle(pilot)
            summary = str(app.screen.query_one("#fleet-summary", Static).render())
            if "2Jrack" in summary:
                break
        assert "grouped by" in summary and "2Jrack" in summary and "\x1b" not in summary
        table.move_cursor_to("gpu-01")
        await pilot.press("enter")
        await settle(pilot)
        ionet = str(app.screen.query_one("#node-ionet", Static).render())
        assert "IO" in ionet and "\x1b" not in ionet and "\x07" not in ionet


async def test_an_empty_fleet_says_why_and_what_fills_it(tmp_path: Path) -> None:
    for offline, said in (
        (True, "no fleet poll stored; offline, nothing is polled"),
        (False, "no fleet poll stored yet: this machine and [[fleet.targets]] are polled"),
    ):
        app = make_app(tmp_path, offline=offline)  # no poll runs: poll=False
        async with app.run_test(size=(120, 40)) as pilot:
            await open_fleet(pilot)
            summary = str(app.screen.query_one("#fleet-summary", Static).render())
            assert summary.startswith("0 nodes") and said in summary, summary
    store_fleet(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_fleet(pilot)
        assert "no fleet poll" not in str(app.screen.query_one("#fleet-summary", Static).render())
