"""A virtualised, columnar table that stays fast with 100,000 rows (the Fleet screen's table).

Textual's ``DataTable`` builds a row object and measures cells for every row it is given, which
costs seconds at 10,000 rows. ``FleetTable`` hands the raw rows to a
:class:`~screens.widgets.table_model.TableModel` (rows, keys, sort, filter, grouping: plain
Python, no Textual) and renders only the lines in the viewport through the Line API
(``render_line``), caching rendered ``Strip``s in a small LRU (the pattern of toolong's
``log_lines.py``). The widget owns what is about the screen: the cursor, scrolling, painting,
keys, clicks and messages.

Raw values stay raw (numbers, ``None``, ``str``) so that sorting uses them; each column's
``render`` turns a value into a Rich ``Text`` through ``screens.render``, so untrusted strings are
sanitised and never parsed as markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cache.text import safe_text
from screens.render import missing, text
from screens.widgets.table_model import Group, TableModel

Align = Literal["left", "right"]
"""How a column's cells sit in their width."""

_GAP = 1
"""Blank cells between two columns."""
_GAP_SEGMENT = Segment(" " * _GAP)
_CELL_CACHE_SIZE = 50_000
"""Cells kept rendered; cleared whole when full (cheap, and values repeat within a refresh)."""

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Characters a cell must never carry to the terminal (a renderer that skipped safe_text)."""

_LEVELS = {"warn": "fleet-table--warn", "critical": "fleet-table--critical"}
"""``style_for`` results that map to theme-coloured component classes."""

_MARK = "\x00"
"""Tags non-row entries of a window snapshot, so that they never equal a row's entry."""


@dataclass(frozen=True)
class Column:
    """One column: identity, header, layout and how to draw a raw value.

    Attributes:
        key: Stable identifier used by ``sort_by``, ``filter`` and ``group_by``.
        label: Header text (shown literally; may come from data, e.g. a node label name).
        width: Cell width in terminal cells, fixed so that no cell is ever measured.
        align: ``"left"`` or ``"right"``.
        render: Turns a raw value into a ``Text`` cell; use ``screens.render`` helpers.
        style_for: Optional colouring from a raw value: ``"warn"`` or ``"critical"`` use the
            theme's warning/error colours, ``""`` means none, anything else is a Rich style.
        sortable: False for a column whose order would tell what it hides (private mode):
            ``sort_by`` and header clicks leave the order as it is.
    """

    key: str
    label: str
    width: int
    align: Align = "left"
    render: Callable[[object], Text] = field(default=text)
    style_for: Callable[[object], str] | None = None
    sortable: bool = True

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"column {self.key!r}: width must be at least 1")


def number_cell(spec: str = ",.1f", suffix: str = "") -> Callable[[object], Text]:
    """A renderer for numeric columns: ``format(value, spec) + suffix``, missing as "—".

    Args:
        spec: A ``format`` spec such as ``",.1f"`` or ``".0%"``.
        suffix: Appended after the number (a unit such as ``" W"``).

    Returns:
        A ``Column.render`` callable.
    """

    def render(value: object) -> Text:
        if value is None or (isinstance(value, float) and value != value):
            return missing()
        if isinstance(value, int | float):
            return text(format(value, spec) + suffix)
        return text(value)  # not a number after all: show it literally rather than fail

    return render


class FleetTable(ScrollView, can_focus=True, inherit_bindings=False):
    """A virtualised table: header pinned on line 0, then only the visible rows rendered.

    Data in through :meth:`set_rows` (and :meth:`update_rows` for a refresh of the same
    columns); :meth:`sort_by`, :meth:`filter` and :meth:`group_by` reorder an index list, never
    the data. Posts :class:`RowSelected` on Enter (or a click on the highlighted row) and
    :class:`SortChanged` when a header label is clicked.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False, id="fleet_table.up", tooltip="Previous row"),
        Binding(
            "down", "cursor_down", "Down", show=False, id="fleet_table.down", tooltip="Next row"
        ),
        Binding(
            "pageup",
            "page_up",
            "Page up",
            show=False,
            id="fleet_table.page_up",
            tooltip="One screen up",
        ),
        Binding(
            "pagedown",
            "page_down",
            "Page down",
            show=False,
            id="fleet_table.page_down",
            tooltip="One screen down",
        ),
        Binding("home", "first", "First", show=False, id="fleet_table.first", tooltip="First row"),
        Binding("end", "last", "Last", show=False, id="fleet_table.last", tooltip="Last row"),
        Binding(
            "enter",
            "select",
            "Open",
            id="fleet_table.select",
            tooltip="Open the highlighted node",
        ),
    ]
    """Cursor movement and selection; ids let ``App.set_keymap`` rebind them."""

    ALLOWED_ACTIONS: ClassVar[frozenset[str]] = frozenset(
        {"cursor_up", "cursor_down", "page_up", "page_down", "first", "last", "select"}
    )
    """The only actions this widget runs (reliability.md R3)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "fleet-table--header",
        "fleet-table--cursor",
        "fleet-table--group",
        "fleet-table--warn",
        "fleet-table--critical",
        "fleet-table--empty",
    }

    DEFAULT_CSS = """
    FleetTable {
        width: 1fr;
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        background: $surface;
        color: $foreground;
        & > .fleet-table--header { background: $panel; color: $foreground; text-style: bold; }
        & > .fleet-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .fleet-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .fleet-table--group { background: $boost; color: $accent; text-style: bold; }
        & > .fleet-table--warn { color: $warning; }
        & > .fleet-table--critical { color: $error; text-style: bold; }
        & > .fleet-table--empty { color: $text-muted; text-style: italic; }
    }
    """
    """Theme variables only; a screen may set ``overflow-x: auto`` to scroll wide tables."""

    @dataclass
    class RowSelected(Message):
        """Enter (or a click on the highlighted row) on a data row."""

        table: FleetTable
        """The table that posted the message."""
        key: str
        """The selected row's key."""

        @property
        def control(self) -> FleetTable:
            """The table, so that ``@on(FleetTable.RowSelected, "#id")`` works."""
            return self.table

    @dataclass
    class SortChanged(Message):
        """A click on a header label sorted the table (again on the same label: reversed)."""

        table: FleetTable
        """The table that posted the message."""
        column_key: str
        """The column now sorted by."""
        descending: bool
        """The new direction."""

        @property
        def control(self) -> FleetTable:
            """The table, so that ``@on(FleetTable.SortChanged, "#id")`` works."""
            return self.table

    def __init__(
        self,
        *,
        cache_size: int = 400,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        """Create an empty table.

        Args:
            cache_size: Rendered lines kept in the LRU (a few screens' worth).
            name: Widget name.
            id: Widget id.
            classes: CSS classes.
            disabled: Start disabled.
        """
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._model: TableModel[Column] = TableModel()
        self._table_width = 0
        self._cursor = 0
        """Position of the highlighted row among the shown rows (the model knows no cursor)."""
        self._line_cache: LRUCache[tuple[object, ...], Strip] = LRUCache(cache_size)
        self._base_style: Style | None = None
        self._cell_cache: dict[tuple[object, ...], list[Segment]] = {}
        """(column number, value type, value) -> the cell's segments: a refresh where most
        values repeat (statuses, networks, whole percentages) builds rows from these."""

    # ------------------------------------------------------------------ public API

    @property
    def model(self) -> TableModel[Column]:
        """The data, order, filter and grouping on show; change them through the table."""
        return self._model

    @property
    def columns(self) -> tuple[Column, ...]:
        """The columns, in display order."""
        return self._model.columns

    @property
    def row_count(self) -> int:
        """All data rows held, whatever the filter."""
        return self._model.row_count

    @property
    def visible_count(self) -> int:
        """Data rows on show (after the filter); group header lines are not counted."""
        return self._model.visible_count

    @property
    def cursor_key(self) -> str | None:
        """The highlighted row's key, or ``None`` when nothing is on show."""
        if not self._model.order:
            return None
        return self._model.key_at(self._cursor)

    @property
    def cursor_position(self) -> int:
        """The highlighted row's position among the shown rows (0-based)."""
        return self._cursor

    @property
    def sort_state(self) -> tuple[str, bool] | None:
        """``(column_key, descending)``, or ``None`` for the input order."""
        return self._model.sort_state

    @property
    def group_key(self) -> str | None:
        """The column rows are grouped by, if any."""
        return self._model.group_key

    @property
    def filter_text(self) -> str:
        """The current filter needle (case-folded), ``""`` when showing all."""
        return self._model.filter_text

    @property
    def groups(self) -> list[tuple[object, int]]:
        """``(value, row count)`` of each group header on show, in display order."""
        return [(g.value, g.count) for g in self._model.groups]

    def visible_keys(self, start: int = 0, stop: int | None = None) -> list[str]:
        """Keys of the shown data rows ``[start:stop]`` in display order (for export and tests).

        Args:
            start: First position.
            stop: End position (exclusive); ``None`` for the end.

        Returns:
            Row keys; group header lines are skipped.
        """
        return self._model.visible_keys(start, stop)

    def row_for(self, key: str) -> tuple[object, ...] | None:
        """The raw values of the row with ``key``, or ``None``."""
        return self._model.row_for(key)

    def display_lines(self) -> list[str | tuple[object, int]]:
        """Every display line below the header: a row key, or ``(group value, count)``."""
        return self._model.display_lines()

    def set_rows(
        self,
        columns: Sequence[Column],
        rows: Sequence[Sequence[object]],
        keys: Sequence[str],
    ) -> None:
        """Replace columns and data; keeps sort, filter and grouping where their columns remain.

        Args:
            columns: Column definitions, in display order.
            rows: One sequence of raw values per row, in column order.
            keys: A unique, stable key per row (node id); the cursor follows it.

        Raises:
            ValueError: On a length mismatch or duplicate keys.
        """
        follow = self.cursor_key
        self._model.set_rows(columns, rows, keys)  # raises before anything changes
        widths = [column.width for column in self._model.columns]
        self._table_width = sum(widths) + _GAP * max(0, len(widths) - 1)
        self._drop_rendered()  # row indexes, columns and renderers may all have changed
        self._show(follow)

    def update_rows(self, rows: Sequence[Sequence[object]], keys: Sequence[str]) -> None:
        """Replace the data for the same columns, repainting only lines whose content changed.

        The viewport stays where it is (a live refresh must not move what the operator reads);
        the cursor keeps its key. When nothing changed, nothing is repainted.

        Args:
            rows: One sequence of raw values per row, in column order.
            keys: A unique key per row; rows may come, go or move.

        Raises:
            ValueError: Before ``set_rows``, on a length mismatch or on duplicate keys.
        """
        follow = self.cursor_key
        before = self._window() if self._model.columns else []
        update = self._model.update_rows(rows, keys)
        if update == "unchanged":
            return
        if update == "replaced":
            self._drop_rendered()  # row indexes now mean other rows
        if update != "patched":  # rows moved, hid or regrouped: find the cursor's row again
            self._follow(follow)
        self._repaint_changed(before)

    def sort_by(self, column_key: str, descending: bool | None = None) -> None:
        """Sort by a column; missing values (None, NaN, "") go last in both directions.

        Text sorts case-insensitively; ties keep the input order (stable and repeatable).

        Args:
            column_key: The column to sort by.
            descending: The direction; ``None`` reverses the current direction when already
                sorted by this column, else sorts ascending.

        Raises:
            KeyError: For an unknown column.
        """
        follow = self.cursor_key
        if self._model.sort_by(column_key, descending):
            self._show(follow)

    def can_sort_by(self, column_key: str) -> bool:
        """Whether ``column_key`` is a column here that may be sorted by."""
        return self._model.can_sort_by(column_key)

    def clear_sort(self) -> None:
        """Back to the input order."""
        follow = self.cursor_key
        self._model.clear_sort()
        self._show(follow)

    def filter(self, text: str, columns: Sequence[str] = ()) -> None:
        """Show only rows where ``text`` occurs (case-insensitively) in one of ``columns``.

        Args:
            text: The needle; ``""`` shows every row.
            columns: Column keys to search; empty means every column.

        Raises:
            KeyError: For an unknown column.
        """
        follow = self.cursor_key
        self._model.filter(text, columns)
        self._show(follow)

    def group_by(self, column_key: str | None) -> None:
        """Group rows by a column's value (groups ascending, missing last), or ungroup.

        Within a group rows keep the current sort. Each group is preceded by a header line with
        its value and row count; the cursor skips header lines.

        Args:
            column_key: The column to group by, or ``None``.

        Raises:
            KeyError: For an unknown column.
        """
        follow = self.cursor_key
        self._model.group_by(column_key)
        self._show(follow)

    def cursor_to_top(self) -> None:
        """Highlight the first row on show: a new order is read from the top."""
        first = self.visible_keys(0, 1)
        if first:
            self.move_cursor_to(first[0])

    def next_sort_key(self, after: str, keys: Sequence[str] | None = None) -> str:
        """The column after ``after`` (in ``keys``, else the table's order) that may be sorted by.

        Columns hidden by private mode are skipped; ``after`` itself if no other one may.
        """
        return self._model.next_sort_key(after, keys)

    def move_cursor_to(self, key: str) -> bool:
        """Highlight the row with ``key`` if it is on show, scrolling it into view.

        Args:
            key: A row key.

        Returns:
            Whether the row is on show.
        """
        position = self._model.position_of(key)
        if position is None:
            return False
        self._move_cursor(position)
        return True

    # ------------------------------------------------------------------ view changes

    def _drop_rendered(self) -> None:
        self._line_cache.clear()
        self._cell_cache.clear()

    def _follow(self, key: str | None) -> None:
        """After the model changed what is on show: keep ``key`` highlighted, resize the view."""
        position = self._model.position_of(key)
        shown = self._model.visible_count
        self._cursor = position if position is not None else max(0, min(self._cursor, shown - 1))
        size = Size(self._table_width, len(self._model.lines) + 1)
        if size != self.virtual_size:
            # Setting the reactive would repaint every line; callers refresh what changed.
            self.set_reactive(FleetTable.virtual_size, size)
            self.refresh(layout=True, repaint=False)

    def _show(self, follow: str | None) -> None:
        """A new order or membership: the cursor's row stays highlighted and in view."""
        self._follow(follow)
        self._scroll_cursor_into_view()
        self.refresh()

    # ------------------------------------------------------------------ geometry

    @property
    def _page_height(self) -> int:
        """Display lines below the pinned header."""
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        model = self._model
        if not model.order or not self.is_mounted:
            return
        line = model.line_of(self._cursor)
        top = self.scroll_offset.y
        height = self._page_height
        if line < top:
            target = line - 1 if line > 0 and model.lines[line - 1] < 0 else line
        elif line >= top + height:
            target = line - height + 1
        else:
            return
        self.scroll_to(y=target, animate=False, force=True)

    def _refresh_display_line(self, line: int) -> None:
        y = line + 1 - self.scroll_offset.y
        if 1 <= y <= self._page_height:
            self.refresh(Region(0, y, self.size.width, 1))

    def _window(self) -> list[object]:
        """What each visible line shows, to compare before and after a data refresh."""
        top = self.scroll_offset.y
        model = self._model
        lines, rows, keys = model.lines, model.rows, model.keys
        cursor_row = model.order[self._cursor] if model.order else -1
        out: list[object] = []
        for line in range(top, top + self._page_height):
            if line >= len(lines):  # the "no rows" message sits on the first line
                out.append((_MARK, bool(rows)) if line == 0 else None)
                continue
            entry = lines[line]
            if entry >= 0:
                out.append((keys[entry], rows[entry], entry == cursor_row))
            else:
                out.append((_MARK, model.groups[-entry - 1]))
        return out

    def _repaint_changed(self, before: list[object]) -> None:
        """Refresh only the screen lines whose content differs from ``before``."""
        if not self.is_mounted:
            return
        after = self._window()
        width = self.size.width
        start: int | None = None
        for y, (old, new) in enumerate(zip(before, after, strict=False)):
            same = old == new
            if not same and start is None:
                start = y
            elif same and start is not None:
                self.refresh(Region(0, start + 1, width, y - start))
                start = None
        if start is not None:
            self.refresh(Region(0, start + 1, width, len(after) - start))

    # ------------------------------------------------------------------ rendering

    def notify_style_update(self) -> None:
        """Theme or focus changed: cached lines carry old colours."""
        super().notify_style_update()
        self._line_cache.clear()
        self._cell_cache.clear()
        self._base_style = None

    def _on_focus(self, event: events.Focus) -> None:
        self._line_cache.clear()
        self._cell_cache.clear()
        self._base_style = None
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self._line_cache.clear()
        self._cell_cache.clear()
        self._base_style = None
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """One screen line: the pinned header on line 0, then rows and group headers."""
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        if self._base_style is None:  # computing it walks the DOM: once per style change
            self._base_style = self.rich_style
        base = self._base_style
        model = self._model
        if y == 0:
            key: tuple[object, ...] = ("header", model.sort_state, width, scroll_x)
            strip = self._line_cache.get(key)
            if strip is None:
                style = self.get_component_rich_style("fleet-table--header")
                strip = self._header_strip().apply_style(style)
                strip = strip.crop_extend(scroll_x, scroll_x + width, style)
                self._line_cache[key] = strip
            return strip
        line = scroll_y + y - 1
        lines = model.lines
        if line >= len(lines):
            if line == 0:  # nothing on show: say why rather than a blank table
                return self._empty_strip(width)
            return Strip.blank(width, base)
        entry = lines[line]
        if entry < 0:
            group = model.groups[-entry - 1]
            key = ("group", group.key, group.count, str(group.value), model.group_key, width)
            strip = self._line_cache.get(key)
            if strip is None:
                style = self.get_component_rich_style("fleet-table--group")
                strip = self._group_strip(group).apply_style(style)
                strip = strip.crop_extend(0, width, style)
                self._line_cache[key] = strip
            return strip
        order = model.order
        is_cursor = bool(order) and entry == order[self._cursor]
        key = (entry, model.versions[entry], is_cursor, width, scroll_x)
        strip = self._line_cache.get(key)
        if strip is None:
            strip = self._row_strip(entry).apply_style(base)
            pad: Style | None = base
            if is_cursor:
                pad = self.get_component_rich_style("fleet-table--cursor")
                strip = Strip(
                    list(Segment.apply_style(iter(strip), post_style=pad)), strip.cell_length
                )
            strip = strip.crop_extend(scroll_x, scroll_x + width, pad)
            self._line_cache[key] = strip
        return strip

    def _fit(self, cell: Text, width: int, align: Align) -> Text:
        cell.truncate(width, overflow="ellipsis")
        excess = width - cell.cell_len
        if excess > 0:
            if align == "right":
                cell.pad_left(excess)
            else:
                cell.pad_right(excess)
        return cell

    def _cell(self, column: Column, value: object) -> Text:
        cell = column.render(value).copy()  # a renderer may hand out a shared Text
        if _CONTROL.search(cell.plain):  # a renderer that skipped screens.render
            cell = Text(safe_text(cell.plain, max_len=len(cell.plain)), style=cell.style)
        if column.style_for is not None and (level := column.style_for(value)):
            component = _LEVELS.get(level)
            style: Style | str = (
                self.get_component_rich_style(component, partial=True) if component else level
            )
            cell.stylize(style)
        return self._fit(cell, column.width, column.align)

    def _row_strip(self, row_index: int) -> Strip:
        row = self._model.rows[row_index]
        segments: list[Segment] = []
        cache = self._cell_cache
        console = self.app.console
        for number, column in enumerate(self._model.columns):
            if number:
                segments.append(_GAP_SEGMENT)
            value = row[number]
            try:
                key: tuple[object, ...] | None = (number, type(value), value)
                cell = cache.get(key)  # type: ignore[arg-type]  # an unhashable value raises below
            except TypeError:  # an unhashable value: render it every time
                key, cell = None, None
            if cell is None:
                holder = Text(no_wrap=True, end="")  # render() alone drops the base style
                holder.append_text(self._cell(column, value))
                cell = list(holder.render(console))
                if key is not None:
                    if len(cache) >= _CELL_CACHE_SIZE:
                        cache.clear()
                    cache[key] = cell
            segments.extend(cell)
        return Strip(segments, self._table_width)

    def _header_strip(self) -> Strip:
        line = Text(no_wrap=True, end="")
        gap = " " * _GAP
        sort = self._model.sort_state
        for number, column in enumerate(self._model.columns):
            if number:
                line.append(gap)
            label = text(column.label, max_len=64)
            if sort is not None and sort[0] == column.key:
                arrow = "▼" if sort[1] else "▲"
                label.truncate(max(0, column.width - 1), overflow="ellipsis")
                label.append(arrow)
            line.append_text(self._fit(label, column.width, column.align))
        return Strip(line.render(self.app.console))

    def _group_strip(self, group: Group) -> Strip:
        key = self._model.group_key
        column = next(c for c in self._model.columns if c.key == key)
        line = Text("▾ ", no_wrap=True, end="")
        line.append_text(text(column.label, max_len=64))
        line.append(": ")
        value = column.render(group.value).copy()
        if _CONTROL.search(value.plain):
            value = Text(safe_text(value.plain, max_len=len(value.plain)), style=value.style)
        line.append_text(value)
        line.append(f"  ({group.count:,})")
        return Strip(line.render(self.app.console))

    def _empty_strip(self, width: int) -> Strip:
        message = "no rows match the filter" if self._model.row_count else "no rows"
        style = self.get_component_rich_style("fleet-table--empty")
        return Strip([Segment(f" {message}", style)]).crop_extend(0, width, self.rich_style)

    # ------------------------------------------------------------------ input

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only this widget's own actions run (reliability.md R3)."""
        return action in self.ALLOWED_ACTIONS

    def _move_cursor(self, position: int) -> None:
        shown = self._model.visible_count
        if not shown:
            return
        position = max(0, min(position, shown - 1))
        old = self._cursor
        self._cursor = position
        if old != position:
            self._refresh_display_line(self._model.line_of(old))
            self._refresh_display_line(self._model.line_of(position))
        self._scroll_cursor_into_view()

    def action_cursor_up(self) -> None:
        """Highlight the previous data row."""
        self._move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        """Highlight the next data row."""
        self._move_cursor(self._cursor + 1)

    def action_page_up(self) -> None:
        """Move the highlight one screen up."""
        if self._model.order:
            line = self._model.line_of(self._cursor) - self._page_height
            self._move_cursor(self._model.position_at_line(line, forward=True))

    def action_page_down(self) -> None:
        """Move the highlight one screen down."""
        if self._model.order:
            line = self._model.line_of(self._cursor) + self._page_height
            self._move_cursor(self._model.position_at_line(line, forward=False))

    def action_first(self) -> None:
        """Highlight the first row and show the top (its group header too)."""
        self._move_cursor(0)
        self.scroll_to(y=0, animate=False, force=True)

    def action_last(self) -> None:
        """Highlight the last row."""
        self._move_cursor(self._model.visible_count - 1)

    def action_select(self) -> None:
        """Post :class:`RowSelected` for the highlighted row."""
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RowSelected(self, key))

    def _column_at(self, x: int) -> int | None:
        left = 0
        for number, column in enumerate(self._model.columns):
            if left <= x < left + column.width:
                return number
            left += column.width + _GAP
        return None

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y == 0:
            column = self._column_at(offset.x + self.scroll_offset.x)
            if column is not None and self._model.columns[column].sortable:
                key = self._model.columns[column].key
                self.sort_by(key)
                sort = self._model.sort_state
                assert sort is not None
                self.post_message(self.SortChanged(self, key, sort[1]))
            return
        line = self.scroll_offset.y + offset.y - 1
        lines = self._model.lines
        if not 0 <= line < len(lines) or lines[line] < 0:
            return
        position = self._model.position_at_line(line, forward=True)
        if position == self._cursor:
            self.action_select()
        else:
            self._move_cursor(position)
