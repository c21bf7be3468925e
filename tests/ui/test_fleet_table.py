"""FleetTable: the virtualised Fleet table driven through Pilot at 80x24 and 120x40."""

from __future__ import annotations

import random

import pytest
from rich.text import Text
from textual.message import Message

from screens.render import text
from screens.widgets.fleet_table import Column, FleetTable
from tests.support.ui import COLUMNS, SIZES, CountingTable, TableApp, make_rows

HOSTILE = "\x1b]52;c;x\x07[@click=app.quit]x"


def posted(messages: list[Message], kind: type[Message]) -> list[Message]:
    """Each message once (the hook sees it again at every node it bubbles through)."""
    return list({id(m): m for m in messages if isinstance(m, kind)}.values())


def screen_lines(table: FleetTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


def value(table: FleetTable, key: str, column: str) -> object:
    row = table.row_for(key)
    assert row is not None
    return row[[c.key for c in table.columns].index(column)]


def cursor_on_screen(table: FleetTable) -> bool:
    key = table.cursor_key
    assert key is not None
    name = value(table, key, "name")
    return any(line.startswith(f"{name} ") for line in screen_lines(table)[1:])


@pytest.mark.parametrize("size", SIZES)
async def test_renders_header_and_visible_rows_only(size: tuple[int, int]) -> None:
    rows, keys = make_rows(500)
    app = TableApp(rows, keys)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(CountingTable)
        lines = screen_lines(table)
        for label in ("Node", "Network", "Status", "CPU %", "Power", "Rewards 24h"):
            assert label in lines[0]
        assert lines[1].startswith("node-00000   io.net   down")
        assert "—" in lines[1]  # missing CPU and rewards shown as a dash, not 0
        assert lines[size[1] - 1].startswith(f"node-{size[1] - 2:05d}")
        assert all(len(line) == size[0] for line in lines)
        assert table.row_count == table.visible_count == 500
        assert table.virtual_size.height == 501
        assert len(table.rendered) < 4 * size[1]  # only the viewport was ever rendered


async def test_warn_and_critical_cells_use_theme_colours() -> None:
    rows = [("hot", "io.net", "up", 95.0, 1, 1.0), ("warm", "io.net", "up", 75.0, 1, 1.0)]
    rows.append(("cool", "io.net", "up", 10.0, 1, 1.0))
    app = TableApp(rows, ["a", "b", "c"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(CountingTable)
        critical = table.get_component_rich_style("fleet-table--critical", partial=True).color
        warn = table.get_component_rich_style("fleet-table--warn", partial=True).color

        def colour_of(y: int, needle: str) -> object:
            segment = next(s for s in table.render_line(y) if needle in s.text)
            return segment.style.color if segment.style else None

        await pilot.press("down", "down")  # the cursor row takes the cursor colours
        assert colour_of(1, "95.0") == critical
        assert colour_of(2, "75.0") == warn
        assert critical != warn
        assert colour_of(2, "warm") != warn  # only the CPU cell is coloured


@pytest.mark.parametrize("size", SIZES)
async def test_cursor_keys_move_and_keep_the_row_in_view(size: tuple[int, int]) -> None:
    rows, keys = make_rows(1000)
    app = TableApp(rows, keys)
    async with app.run_test(size=size) as pilot:
        table = app.query_one(CountingTable)
        page = size[1] - 1
        assert table.cursor_key == "key-0"
        await pilot.press("up")
        assert table.cursor_key == "key-0"
        await pilot.press("down", "down")
        assert table.cursor_key == "key-2"
        await pilot.press("pagedown")
        assert table.cursor_position == 2 + page
        assert cursor_on_screen(table)
        await pilot.press("pageup")
        assert table.cursor_position == 2
        await pilot.press("end")
        assert table.cursor_key == "key-999"
        await pilot.pause()
        assert table.scroll_offset.y == table.max_scroll_y
        assert screen_lines(table)[-1].startswith("node-00999")
        await pilot.press("home")
        assert table.cursor_key == "key-0"
        assert table.scroll_offset.y == 0
        table.scroll_to(y=50, animate=False)  # the wheel or scrollbar: rows follow, header stays
        await pilot.pause()
        assert screen_lines(table)[0].startswith("Node")
        assert screen_lines(table)[1].startswith("node-00050")
        table.scroll_to(y=0, animate=False)
        await pilot.pause()
        for _ in range(page + 3):
            await pilot.press("down")
        assert cursor_on_screen(table)
        assert table.scroll_offset.y == 4  # scrolled just enough


async def test_sort_ascending_descending_with_missing_last() -> None:
    rows, keys = make_rows(300)
    app = TableApp(rows, keys)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(CountingTable)
        for descending in (False, True):
            table.sort_by("cpu", descending=descending)
            await pilot.pause()
            values = [value(table, k, "cpu") for k in table.visible_keys()]
            present = [v for v in values if v is not None]
            assert values[len(present) :] == [None] * (len(values) - len(present))
            assert len(present) == 300 - len(range(0, 300, 7))
            assert present == sorted(present, reverse=descending)  # type: ignore[type-var]
            assert table.sort_state == ("cpu", descending)
            assert ("▼" if descending else "▲") in screen_lines(table)[0]
        table.sort_by("cpu")  # None: same column again reverses
        assert table.sort_state == ("cpu", False)
        table.clear_sort()
        assert table.visible_keys(0, 3) == ["key-0", "key-1", "key-2"]


async def test_sort_text_is_case_insensitive_and_stable() -> None:
    rows = [
        ("b-node", "io.net", "up", 1.0, 1, 1.0),
        ("A-node", "akash", "up", 1.0, 1, 1.0),
        ("c-node", "Akash", "up", 1.0, 1, 1.0),
        ("d-node", "", "up", 1.0, 1, 1.0),
        ("e-node", "IO.NET", "up", 1.0, 1, 1.0),
        ("f-node", None, "up", 1.0, 1, 1.0),
    ]
    keys = ["b", "a", "c", "d", "e", "f"]
    app = TableApp(rows, keys)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(CountingTable)
        table.sort_by("name")
        await pilot.pause()
        assert table.visible_keys() == ["a", "b", "c", "d", "e", "f"]
        table.sort_by("network")  # ties ("akash"/"Akash") keep input order; "" and None last
        assert table.visible_keys() == ["a", "c", "b", "e", "d", "f"]
        table.sort_by("network", descending=True)
        assert table.visible_keys() == ["b", "e", "a", "c", "d", "f"]
        table.sort_by("cpu", descending=True)  # all equal: input order in both directions
        assert table.visible_keys() == keys


async def test_header_click_sorts_and_posts_sort_changed() -> None:
    rows, keys = make_rows(50)
    messages: list[Message] = []
    app = TableApp(rows, keys)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        table = app.query_one(CountingTable)
        await pilot.click(CountingTable, offset=(36, 0))  # the "Power" label
        await pilot.pause()
        assert table.sort_state == ("power", False)
        await pilot.click(CountingTable, offset=(36, 0))
        await pilot.pause()
        assert table.sort_state == ("power", True)
        changes = posted(messages, FleetTable.SortChanged)
        assert [(m.column_key, m.descending) for m in changes] == [
            ("power", False),
            ("power", True),
        ]
        assert changes[0].control is table
        powers = [value(table, k, "power") for k in table.visible_keys()]
        assert powers == sorted(powers, reverse=True)  # type: ignore[type-var]


async def test_filter_is_case_insensitive_substring_and_empty_shows_all() -> None:
    rows, keys = make_rows(300)
    app = TableApp(rows, keys)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(CountingTable)
        table.filter("AKA", ["network"])
        await pilot.pause()
        assert table.visible_count == 100
        assert {value(table, k, "network") for k in table.visible_keys()} == {"Akash"}
        assert table.row_count == 300
        table.filter("node-0001", ["name", "network"])
        assert table.visible_keys() == [f"key-{i}" for i in range(10, 20)]
        table.filter("zzz", ["name"])
        await pilot.pause()
        assert table.visible_count == 0
        assert table.cursor_key is None
        assert "no rows match" in screen_lines(table)[1]
        await pilot.press("down", "enter")  # nothing to move to or select: no crash
        table.filter("")
        assert table.visible_count == 300
        table.filter("DOWN")  # no columns: every column
        assert table.visible_count == len(range(0, 300, 11))


async def test_group_by_shows_headers_with_counts_and_cursor_skips_them() -> None:
    rows, keys = make_rows(30)
    app = TableApp(rows, keys)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(CountingTable)
        table.sort_by("name", descending=True)
        table.group_by("network")
        await pilot.pause()
        assert table.groups == [("Akash", 10), ("io.net", 10), ("nosana", 10)]
        lines = table.display_lines()
        assert lines[0] == ("Akash", 10)
        assert lines[11] == ("io.net", 10)
        assert lines[1:3] == ["key-28", "key-25"]  # the current sort inside each group
        assert table.visible_count == 30 and len(lines) == 33
        shown = screen_lines(table)
        assert "Network: Akash  (10)" in shown[1]
        assert "Network: io.net  (10)" in shown[12]
        await pilot.press("home")
        assert table.cursor_key == "key-28"  # the first data row, not the header
        for _ in range(10):
            await pilot.press("down")
        assert table.cursor_key == "key-27"  # skipped the io.net header line
        await pilot.press("up")
        assert table.cursor_key == "key-1"
        table.filter("node-0000", ["name"])  # counts follow the filter
        assert table.groups == [("Akash", 3), ("io.net", 4), ("nosana", 3)]
        table.group_by(None)
        assert table.groups == [] and len(table.display_lines()) == table.visible_count


async def test_group_paging_and_end_at_80x24() -> None:
    rows, keys = make_rows(400)
    app = TableApp(rows, keys)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(CountingTable)
        table.group_by("status")
        await pilot.pause()
        assert table.groups == [("down", 37), ("up", 363)]
        await pilot.press("pagedown", "pagedown", "end")
        assert table.cursor_key == table.visible_keys()[-1]
        assert cursor_on_screen(table)
        await pilot.press("home")
        assert table.scroll_offset.y == 0
        assert "Status: down  (37)" in screen_lines(table)[1]


async def test_enter_and_click_post_row_selected_with_the_key() -> None:
    rows, keys = make_rows(100)
    messages: list[Message] = []
    app = TableApp(rows, keys)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        table = app.query_one(CountingTable)
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        await pilot.click(CountingTable, offset=(3, 6))  # line 6 = position 5: highlight
        await pilot.pause()
        assert table.cursor_key == "key-5"
        await pilot.click(CountingTable, offset=(3, 6))  # again: select
        await pilot.pause()
        selected = posted(messages, FleetTable.RowSelected)
        assert [m.key for m in selected] == ["key-2", "key-5"]
        assert all(m.control is table for m in selected)


async def test_cursor_follows_its_key_across_sort_filter_and_refresh() -> None:
    rows, keys = make_rows(2000)
    app = TableApp(rows, keys)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(CountingTable)
        assert table.move_cursor_to("key-1234")
        table.sort_by("power", descending=True)
        await pilot.pause()
        assert table.cursor_key == "key-1234"
        assert cursor_on_screen(table)
        table.filter("node-012", ["name"])
        await pilot.pause()
        assert table.cursor_key == "key-1234"
        assert cursor_on_screen(table)
        table.group_by("network")
        assert table.cursor_key == "key-1234"
        shuffled = list(zip(rows, keys, strict=True))
        random.Random(1).shuffle(shuffled)
        table.update_rows([r for r, _ in shuffled], [k for _, k in shuffled])
        assert table.cursor_key == "key-1234"
        table.set_rows(COLUMNS, [r for r, _ in shuffled], [k for _, k in shuffled])
        assert table.cursor_key == "key-1234"
        assert table.sort_state == ("power", True) and table.group_key == "network"
        table.filter("node-0001", ["name"])  # the cursor's row is filtered out: still valid
        assert table.cursor_key in table.visible_keys()


async def test_update_rows_repaints_only_changed_lines() -> None:
    rows, keys = make_rows(1000)
    app = TableApp(rows, keys)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(CountingTable)
        await pilot.pause()
        table.rendered.clear()
        table.update_rows([tuple(r) for r in rows], list(keys))  # equal values, new objects
        await pilot.pause()
        assert table.rendered == []

        changed = [list(r) for r in rows]
        changed[3][4] = 999  # power of the row on line 4
        changed[900][4] = 1  # far below the viewport
        table.update_rows(changed, keys)
        await pilot.pause()
        assert table.rendered == [4]
        assert "999 W" in table.render_line(4).text

        table.rendered.clear()
        more = [*changed, ("node-new", "io.net", "up", 5.0, 5, 5.0)]  # a row arrives at the end
        table.update_rows(more, [*keys, "key-new"])
        await pilot.pause()
        assert table.row_count == 1001
        assert table.cursor_key == "key-0"
        assert set(table.rendered) <= {0}  # the new row is off screen; at most a relayout


async def test_update_rows_resorts_when_the_sort_column_changes() -> None:
    rows, keys = make_rows(100)
    app = TableApp(rows, keys)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(CountingTable)
        table.sort_by("power", descending=True)
        await pilot.press("home")
        top = table.visible_keys(0, 1)[0]
        assert table.cursor_key == top
        table.rendered.clear()
        changed = [list(r) for r in rows]
        changed[50][4] = 9_000
        table.update_rows(changed, keys)
        await pilot.pause()
        assert table.visible_keys(0, 2) == ["key-50", top]
        assert table.cursor_key == top  # cursor kept its key, now one line lower
        assert set(table.rendered) == set(range(1, 24))  # every row moved down; not the header
        assert "9,000 W" in table.render_line(1).text


async def test_hostile_text_is_shown_literally_and_runs_nothing() -> None:
    columns = [Column("name", HOSTILE, 40), Column("network", "Network", 30)]
    rows = [(HOSTILE, HOSTILE), ("plain", "[bold red]ALERT[/]")]
    messages: list[Message] = []
    app = TableApp(rows, ["evil", "plain"], columns)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        table = app.query_one(CountingTable)
        await pilot.pause()
        lines = screen_lines(table)
        shown = "␛]52;c;x␇[@click=app.quit]x"
        assert lines[0].startswith(shown)  # the header label too
        assert lines[1].startswith(shown)
        assert "[bold red]ALERT[/]" in lines[2]
        assert not any(ch in "".join(lines) for ch in "\x1b\x07")
        for y in (0, 1, 1, 2):
            await pilot.click(CountingTable, offset=(20, y))
        await pilot.press("enter")
        table.group_by("network")
        await pilot.pause()
        assert any(shown in line for line in screen_lines(table))
        assert app.is_running
    assert app.return_code in (None, 0)


async def test_a_renderer_that_skips_safe_text_is_still_sanitised() -> None:
    columns = [Column("name", "Name", 20, render=lambda v: Text(str(v)))]
    app = TableApp([("a\x1b[2Jb",)], ["k"], columns)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        line = app.query_one(CountingTable).render_line(1).text
        assert line.startswith("a␛[2Jb") and "\x1b" not in line


async def test_bad_input_is_refused_and_changes_nothing() -> None:
    app = TableApp([], [], columns=[])
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(CountingTable)
        await pilot.pause()
        with pytest.raises(ValueError, match="set_rows"):
            table.update_rows([("x",)], ["x"])
        table.set_rows(COLUMNS, [], [])
        await pilot.pause()
        assert "no rows" in screen_lines(table)[1]
        table.set_rows(COLUMNS, *make_rows(3))
        with pytest.raises(ValueError, match="one per column"):
            table.set_rows(COLUMNS[:2], *make_rows(3))
        assert table.columns == tuple(COLUMNS) and table.row_count == 3
        with pytest.raises(ValueError, match="one per column"):
            table.update_rows([("short",), *make_rows(3)[0][1:]], make_rows(3)[1])
        assert table.row_count == 3
        with pytest.raises(ValueError, match="unique"):
            table.set_rows(COLUMNS, make_rows(2)[0], ["same", "same"])
        with pytest.raises(ValueError, match="keys"):
            table.set_rows(COLUMNS, make_rows(2)[0], ["one"])
        with pytest.raises(ValueError, match="one per column"):
            table.set_rows(COLUMNS, [("short",)], ["one"])
        with pytest.raises(KeyError):
            table.sort_by("nope")
        with pytest.raises(ValueError):
            Column("x", "X", 0)
        assert text(None).plain == "—"


@pytest.mark.parametrize("size", SIZES)
async def test_100k_rows_paint_sort_filter_and_group(size: tuple[int, int]) -> None:
    rows, keys = make_rows(100_000)
    app = TableApp([], [])
    async with app.run_test(size=size) as pilot:
        table = app.query_one(CountingTable)
        table.set_rows(COLUMNS, rows, keys)
        await pilot.pause()
        assert table.row_count == table.visible_count == 100_000
        assert screen_lines(table)[1].startswith("node-00000")
        assert len(table.rendered) < 4 * size[1]
        table.sort_by("rewards", descending=True)
        await pilot.pause()
        top = [value(table, k, "rewards") for k in table.visible_keys(0, 100)]
        assert top == sorted(top, reverse=True)  # type: ignore[type-var]
        assert value(table, table.visible_keys(99_999)[0], "rewards") is None
        table.filter("node-0420", ["name", "network"])
        await pilot.pause()
        assert table.visible_count == 10
        table.filter("")
        table.group_by("network")
        await pilot.pause()
        assert [count for _, count in table.groups] == [33_333, 33_334, 33_333]
        await pilot.press("end")
        assert table.cursor_key == table.visible_keys()[-1]


async def test_a_column_that_may_not_be_sorted_by_keeps_the_order() -> None:
    # private mode: sorting by a hidden column would rank the rows by what it hides
    hidden = [
        *COLUMNS[:-1],
        Column("rewards", "Rewards 24h", 11, "right", lambda _: Text("•••"), sortable=False),
    ]
    rows, keys = make_rows(30)
    messages: list[Message] = []
    app = TableApp(rows, keys, hidden)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        table = app.query_one(CountingTable)
        assert not table.can_sort_by("rewards") and table.can_sort_by("power")
        assert not table.can_sort_by("no-such-column")
        table.sort_by("rewards", descending=True)
        assert table.sort_state is None and table.visible_keys() == keys
        await pilot.click(CountingTable, offset=(44, 0))  # the "Rewards 24h" label
        await pilot.pause()
        assert table.sort_state is None and not posted(messages, FleetTable.SortChanged)

        assert table.next_sort_key("power") == "name"  # past the hidden last one, wrapping
        assert table.next_sort_key("cpu", ["cpu", "rewards", "status"]) == "status"
        table.sort_by("cpu", descending=True)
        table.cursor_to_top()
        assert table.cursor_key == table.visible_keys(0, 1)[0]

        table.set_rows(COLUMNS, rows, keys)  # shown again: sortable
        table.sort_by("rewards", descending=True)
        assert table.sort_state == ("rewards", True)
        table.set_rows(hidden, rows, keys)  # hidden while sorted by it: the order goes
        assert table.sort_state is None and table.visible_keys() == keys
