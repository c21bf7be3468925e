"""The malicious corpus through this round's views: the Fleet's Net and NetAge columns, the
Rewards Miss/Why columns and the missed-blocks view (``m``), the Node screen's miss marks, the
Rankings per-device columns, and a ``status_disagrees`` alert (reliability.md UI-01..UI-06).

The cache is written through the store with placeholder names, then every text the screens
show is overwritten raw with a corpus string (node names, network, label values, device ids,
io.net device name, status, location, hardware, tier, error, token, reward causes, coin names):
a copied cache need not have been sanitised on the way in, so what is tested is the render side.
Each screen is checked on what it paints (the compositor's strips) and on every table cell as
its renderer draws it (rows scrolled out of view too): no control, escape, bidi or zero-width
character, no link or click action from the data, markup shown literally.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.app import App
from textual.widgets import DataTable

from cache.alert_rules import Rule
from cache.alerts import evaluate
from cache.db import open_writer
from cache.store import PollRecord, write_poll
from screens.alerts import AlertsScreen
from screens.fleet import FleetScreen
from screens.node import NodeScreen
from screens.rankings import RankingsScreen
from screens.rewards import RewardsScreen
from screens.widgets.fleet_table import FleetTable
from sources.models import DeviceStatus, NodeSample, Reading, Reward
from tests.corpus import FORBIDDEN_SEQUENCES
from tests.support.ui import settle
from tests.ui.appkit import NOW, make_app, store_live, store_networks
from tests.ui.hostile import raw_corpus

RAW = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
                 "\u2060-\u2069\ufeff\ufff9-\ufffb]")  # fmt: skip
"""What must never be painted: C0 (tab aside), DEL, C1, bidi controls, zero-width, BOM."""
EVIL = ("evil.example", "file://", "pwned", "app.quit", "suspend_process", "ctrl+q", "'help'")
"""Traces of a corpus link or click action in a painted style."""
FLEET_AT = NOW - timedelta(seconds=20)
DEVICES_AT = NOW - timedelta(minutes=2)
BLOCK = NOW.replace(hour=10)
"""Every device's missed block: inside the Rewards' 24 h and the Node charts' range."""
RULE = Rule("net disagrees", "status_disagrees", "warning")
PER_DEVICE = ("io-net", "akash-network", "filecoin", "helium")


def hostile_cache(tmp_path: Path) -> list[str]:
    """A fleet of one node per corpus string, each an io.net device that missed a block."""
    payloads = raw_corpus(tmp_path / "trap")
    db = tmp_path / "cache.db"
    store_live(db)
    store_networks(db)  # the device counts of the per-device columns
    conn = open_writer(db)
    try:
        nodes = [
            NodeSample(
                node=f"p{i}",
                source_kind="exporter",
                network="io.net",
                labels={"device_id": f"d{i}", "rack": "r"},
                up=i % 3 != 0,
                cpu_pct=40.0,
                gpus=1,
                gpu_util_pct=50.0,
                gpu_temp_c=70.0,
            )
            for i in range(len(payloads))
        ]
        start = FLEET_AT - timedelta(seconds=1)
        write_poll(conn, PollRecord("fleet", start, FLEET_AT, reading=Reading(nodes=nodes)))
        devices = [
            DeviceStatus(
                network="io.net",
                device_id=f"d{i}",
                node=f"p{i}",
                name="n",
                status="down" if i % 2 else "up",
                connectivity_tier="t",
                hardware="h",
                location="l",
                earnings_total=1.0,
                earnings_token="IO",
                error="e",
            )
            for i in range(len(payloads))
        ]
        rewards = [
            Reward(
                network="io.net",
                device_id=f"d{i}",
                node=f"p{i}",
                at=BLOCK,
                amount=0.0,
                token="IO",
                source=f"io.net block {BLOCK:%Y-%m-%dT%H:%M:%S}",
                status=f"s{i}",
            )
            for i in range(len(payloads))
        ]
        reading = Reading(devices=devices, rewards=rewards)
        start = DEVICES_AT - timedelta(seconds=1)
        poll_id = write_poll(conn, PollRecord("ionet-devices", start, DEVICES_AT, reading=reading))
        _overwrite(conn, payloads)
        evaluate(conn, [RULE], poll_id, NOW)  # the alert messages name the raw node names
    finally:
        conn.close()
    return payloads


def _overwrite(conn, payloads: list[str]) -> None:
    """Every text the new views show, replaced raw by a corpus string (no sanitiser)."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        for i, p in enumerate(payloads):
            old = f"p{i}"
            for table in ("node_samples", "nodes", "node_usage_hours", "devices", "rewards"):
                conn.execute(f"UPDATE {table} SET node = ? WHERE node = ?", (p, old))
            labels = json.dumps({"device_id": f"d{i}", "rack": p, "network": p})
            conn.execute("UPDATE nodes SET labels = ?, network = ? WHERE node = ?", (labels, p, p))
            conn.execute(
                "UPDATE devices SET name = ?, connectivity_tier = ?, hardware = ?, location = ?, "
                "earnings_token = ?, error = ? WHERE device_id = ?",
                (p, p, p, p, p, p, f"d{i}"),
            )
            if i % 4 == 3:  # a status no one can read: the Net column says unknown
                conn.execute("UPDATE devices SET status = ? WHERE device_id = ?", (p, f"d{i}"))
            conn.execute("UPDATE rewards SET status = ? WHERE device_id = ?", (p, f"d{i}"))
            if i % 2:  # a device id no fleet label names (the misses view's Device column)
                conn.execute("UPDATE rewards SET device_id = ? WHERE device_id = ?", (p, f"d{i}"))
        for coin, p in zip(PER_DEVICE, payloads, strict=False):
            conn.execute("UPDATE market SET name = ?, symbol = ? WHERE coin_id = ?", (p, p, coin))
        conn.execute("COMMIT")


# -- what is painted -----------------------------------------------------------------------------
def painted(app: App[None]) -> tuple[list[str], list[Style]]:
    """The current screen as the terminal gets it: its lines, and every style on them."""
    lines, styles = [], []
    for strip in app.screen._compositor.render_strips():
        lines.append("".join(segment.text for segment in strip))
        styles += [segment.style for segment in strip if segment.style is not None]
    return lines, styles


def assert_clean(texts: Iterable[str], styles: Iterable[Style], where: str) -> None:
    """No raw control, escape, bidi or zero-width character (a line break included, each text
    being one line or one cell); no link or action from the data."""
    for text in texts:
        found = RAW.search(text)
        assert found is None, (where, repr(text[max(0, found.start() - 20) : found.end() + 20]))
        for sequence in FORBIDDEN_SEQUENCES:
            assert sequence not in text, (where, sequence)
    for style in styles:
        traces = f"{style.link or ''} {style.meta or ''}"
        assert not any(word in traces for word in EVIL), (where, traces)


def assert_screen_clean(app: App[None], where: str) -> str:
    """The painted screen is clean; its text, one line per screen line."""
    lines, styles = painted(app)
    assert_clean(lines, styles, where)
    width = app.size.width
    assert all(cell_len(line) == width for line in lines), where  # no line pushed out of shape
    return "\n".join(lines)


def fleet_cells(table: FleetTable) -> list[Text]:
    """Every shown row's cells as the table draws them, scrolled into view or not."""
    cells = []
    for key in table.visible_keys():
        row = table.row_for(key)
        assert row is not None
        cells += [table._cell(c, v) for c, v in zip(table.columns, row, strict=True)]
    return cells


def data_table_cells(table: DataTable) -> list[Text]:
    """Every row's cells of a DataTable, as handed to it."""
    out = []
    for row in range(table.row_count):
        out += [c if isinstance(c, Text) else Text(str(c)) for c in table.get_row_at(row)]
    return out


def assert_cells_clean(cells: list[Text], where: str) -> str:
    """Each cell is clean; their text, one cell per line."""
    styles = [s for c in cells for s in [c.style, *(span.style for span in c.spans)]]
    assert_clean([c.plain for c in cells], [s for s in styles if isinstance(s, Style)], where)
    return "\n".join(c.plain for c in cells)


# -- the screens ---------------------------------------------------------------------------------
async def test_fleet_net_and_netage_columns(tmp_path: Path) -> None:
    payloads = hostile_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        assert isinstance(app.screen, FleetScreen)
        table = app.screen.query_one(FleetTable)
        assert table.visible_count == len(payloads)
        keys = [c.key for c in table.columns]
        nets = [table.row_for(k)[keys.index("net")] for k in table.visible_keys()]  # type: ignore[index]
        assert {"agrees", "net↓", "net↑ we↓", "unknown"} <= set(nets)  # every state reached
        plain = assert_cells_clean(fleet_cells(table), "fleet cells")
        assert "[bold red]ALER" in plain  # the node name, literally (16 cells: cut short)
        assert "\u241b" in plain  # ESC shown as ␛
        assert_screen_clean(app, "fleet")
        for _ in range(4):  # group by network, source, then the hostile network and rack labels
            await pilot.press("g")
            await settle(pilot)
            assert_screen_clean(app, "fleet grouped")
        while app.screen.group is not None:
            await pilot.press("g")
            await settle(pilot)
        await pilot.press("enter")  # a node opens from its row (every node: the next test)
        await settle(pilot)
        assert isinstance(app.screen, NodeScreen)
        assert_screen_clean(app, "node from the fleet")
        assert app.is_running


async def test_every_node_screen_and_its_miss_marks(tmp_path: Path) -> None:
    """Each node's io.net line (device name, status, tier, hardware, location, error, token)
    and its missed block's mark on every chart's time axis, the cause being a corpus string."""
    payloads = hostile_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 60)) as pilot:
        await settle(pilot)
        for node in payloads:
            app.push_screen(NodeScreen(node, "exporter"))
            await settle(pilot)
            text = assert_screen_clean(app, f"node {node[:20]!r}")
            marks = [line for line in text.splitlines() if "┤" in line or "│" in line]
            if node.startswith("\x1b]8;;https://evil.example/"):
                assert any("\u241b]8;;" in line for line in marks)  # the mark, on an axis
                # shown whole: none of the escape was taken by the chart's ANSI reading
                assert all("8;;" not in line.replace("\u241b]8;;", "") for line in marks)
            app.pop_screen()
            await settle(pilot)
        assert app.is_running


def test_a_miss_mark_is_sanitised_for_the_chart(tmp_path: Path) -> None:
    """The chart reads its drawing back as ANSI: a raw escape in a mark would be obeyed."""
    from cache.db import open_reader
    from cache.reward_misses import reward_misses

    payloads = hostile_cache(tmp_path)
    conn = open_reader(tmp_path / "cache.db")
    try:
        found = reward_misses(conn, NOW - timedelta(hours=24), NOW)
    finally:
        conn.close()
    assert {m.cause for m in found.misses} == {p.strip() for p in payloads}  # stored raw
    for miss in found.misses:
        assert not RAW.search(miss.mark), repr(miss.mark[:40])
        assert len(miss.mark) <= 41


async def test_rewards_miss_why_and_the_misses_view(tmp_path: Path) -> None:
    payloads = hostile_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("5")
        await settle(pilot)
        assert isinstance(app.screen, RewardsScreen)
        table = app.screen.query_one(FleetTable)
        assert table.visible_count >= len(payloads)
        keys = [c.key for c in table.columns]
        assert {"missed", "why"} <= set(keys)
        missed = [table.row_for(k)[keys.index("missed")] for k in table.visible_keys()]  # type: ignore[index]
        assert sum(m for m in missed if isinstance(m, int)) == len(payloads)
        plain = assert_cells_clean(fleet_cells(table), "rewards cells")
        assert "[bold red]" in plain  # literally, cut to the column
        assert_screen_clean(app, "rewards")
        await pilot.press("m")
        await settle(pilot)
        assert app.screen.show_misses
        assert table.visible_count == len(payloads)
        plain = assert_cells_clean(fleet_cells(table), "misses cells")
        assert "[link=http" in plain  # a cause or a name, literally
        text = assert_screen_clean(app, "misses view")
        assert "missed" in text
        opened = 0
        for _ in range(3):  # Enter opens the node of a missed block
            await pilot.press("enter")
            await settle(pilot)
            if isinstance(app.screen, NodeScreen):
                opened += 1
                assert_screen_clean(app, "node from a missed block")
                await pilot.press("escape")
                await settle(pilot)
            await pilot.press("down")
        assert opened  # a row whose raw name has no fleet node only says so
        await pilot.press("v")  # per UTC day: the totals above still name networks and tokens
        await settle(pilot)
        assert not app.screen.show_misses and app.screen.by_day
        assert_cells_clean(fleet_cells(table), "rewards per day")
        assert_screen_clean(app, "rewards per day")
        assert app.is_running


async def test_rankings_per_device_columns(tmp_path: Path) -> None:
    payloads = hostile_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RankingsScreen)
        hostile = [c for c in screen.shown if c.coin_id in PER_DEVICE]
        assert {c.name for c in hostile} == set(payloads[: len(PER_DEVICE)])
        per_device = [screen.per_device[c.coin_id] for c in hostile]
        assert any(d.market_cap_per_device_usd is not None for d in per_device)
        plain = assert_cells_clean(data_table_cells(screen.query_one(DataTable)), "rankings")
        assert "[bold red]" in plain  # literally, cut to the column
        assert_screen_clean(app, "rankings")
        for _ in range(len(screen.shown)):  # sort by every column, per-device ones included
            await pilot.press("s")
            await pilot.pause()
            assert_screen_clean(app, f"rankings sorted by {screen.sort_key}")


async def test_status_disagrees_alerts(tmp_path: Path) -> None:
    payloads = hostile_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("8")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AlertsScreen)
        ours = [a for a in screen.shown if a.kind == "status_disagrees"]
        assert len(ours) >= len(payloads) // 4  # every node whose views disagree fired
        assert {a.subject for a in ours} <= set(payloads)
        plain = assert_cells_clean(data_table_cells(screen.query_one(DataTable)), "alerts")
        assert "[bold red]" in plain  # literally, cut to the column
        for row in range(len(ours)):  # the detail line under the table, for each alert
            screen.query_one(DataTable).move_cursor(row=row)
            await pilot.pause()
            assert_screen_clean(app, f"alert {row}")


def test_status_disagrees_messages_carry_no_raw_control(tmp_path: Path) -> None:
    """The stored message goes to logs, toasts, webhooks and commands too, not only a screen."""
    payloads = hostile_cache(tmp_path)
    conn = open_writer(tmp_path / "cache.db")
    try:
        rows = conn.execute(
            "SELECT subject, message FROM alerts WHERE kind = 'status_disagrees'"
        ).fetchall()
    finally:
        conn.close()
    assert rows and {s for s, _ in rows} <= set(payloads)
    for _, message in rows:
        assert not RAW.search(message), repr(message[:80])
        assert message.endswith(("says down, our poll says up", "says up, our poll says down"))
        assert len(message) < 400  # the name cut as the store cuts it, what is said kept


def test_an_akash_provider_body_of_corpus_strings_is_stored_clean(tmp_path: Path) -> None:
    """Where the Net column's Akash text enters: name, host, country, GPU models of the body."""
    from sources.akash_providers import parse_provider

    for p in raw_corpus(tmp_path):
        body = {
            "owner": p,
            "name": p,
            "hostUri": p,
            "ipCountry": p,
            "country": p,
            "isOnline": p,
            "lastCheckDate": p,
            "uptime7d": p,
            "gpuModels": [{"vendor": p, "model": p}, {"vendor": 7, "model": p}, p],
        }
        fields = parse_provider(body, "/v1/providers/akash1…", NOW)
        device = DeviceStatus(network="akash", device_id="akash1x", **fields)
        for key in ("name", "location", "hardware", "error", "status"):
            value = getattr(device, key)
            assert value is None or (not RAW.search(value) and len(value) <= 121), (key, value)
        assert device.status is None  # no isOnline boolean: no reading


async def test_a_separator_in_a_raw_name_neither_collides_nor_opens_another_node(
    tmp_path: Path,
) -> None:
    """Row keys join name and kind (and device, block) with U+001F, which the store never lets
    into a name; a copied cache can hold it: two rows must not get one key (the table refuses
    duplicate keys), and Enter opens the row's own node."""
    db = tmp_path / "cache.db"
    conn = open_writer(db)
    try:
        nodes = [
            NodeSample(node="x", source_kind="promql", up=True, cpu_pct=10.0),
            NodeSample(node="y", source_kind="exporter", up=True, cpu_pct=20.0),
        ]
        write_poll(conn, PollRecord("fleet", FLEET_AT, FLEET_AT, reading=Reading(nodes=nodes)))
        rewards = [
            Reward(
                network="io.net",
                device_id=device,
                node=node,
                at=BLOCK,
                amount=0.0,
                token="IO",
                source=f"io.net block {BLOCK:%Y-%m-%dT%H:%M:%S}",
                status="Failed",
            )
            for node, device in (("a", "b"), ("c", "d"))
        ]
        reading = Reading(rewards=rewards)
        write_poll(conn, PollRecord("ionet-devices", DEVICES_AT, DEVICES_AT, reading=reading))
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for table in ("node_samples", "nodes", "node_usage_hours"):  # "x␟promql", raw
                conn.execute(f"UPDATE {table} SET node = ? WHERE node = 'y'", ("x\x1fpromql",))
            # ("a␟b", "c") and ("a", "b␟c"): one key if joined as they are
            update = "UPDATE rewards SET node = ?, device_id = ? WHERE node = ?"
            conn.execute(update, ("a\x1fb", "c", "a"))
            conn.execute(update, ("a", "b\x1fc", "c"))
            conn.execute("COMMIT")
    finally:
        conn.close()
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        table = app.screen.query_one(FleetTable)
        assert table.visible_count == 2
        opened = set()
        for _ in range(2):
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, NodeScreen)
            opened.add((app.screen.node_name, app.screen.source_kind))
            await pilot.press("escape", "down")
            await settle(pilot)
        assert opened == {("x", "promql"), ("x\x1fpromql", "exporter")}
        await pilot.press("5", "m")
        await settle(pilot)
        assert isinstance(app.screen, RewardsScreen) and app.screen.show_misses
        assert app.screen.query_one(FleetTable).visible_count == 2
        assert app.is_running
