"""A virtualised, columnar table that stays fast with 100,000 rows (the Fleet screen's table).

Textual's ``DataTable`` builds a row object and measures cells for every row it is given, which
costs seconds at 10,000 rows. ``FleetTable`` keeps the raw rows as tuples and an index list of
the rows on show, and renders only the lines in the viewport through the Line API
(``render_line``), caching rendered ``Strip``s in a small LRU (the pattern of toolong's
``log_lines.py``). Sorting and filtering work on per-column keys computed once per data set, so
each is one ``list.sort``/list comprehension over plain Python lists.

Raw values stay raw (numbers, ``None``, ``str``) so that sorting uses them; each column's
``render`` turns a value into a Rich ``Text`` through ``screens.render``, so untrusted strings are
sanitised and never parsed as markup.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, NamedTuple

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

Align = Literal["left", "right"]
"""How a column's cells sit in their width."""

_GAP = 1
_GAP_SEGMENT = Segment(" " * _GAP)
_CELL_CACHE_SIZE = 50_000
"""Cells kept rendered; cleared whole when full (cheap, and values repeat within a refresh)."""
"""Blank cells between two columns."""

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Characters a cell must never carry to the terminal (a renderer that skipped safe_text)."""

_LEVELS = {"warn": "fleet-table--warn", "critical": "fleet-table--critical"}
"""``style_for`` results that map to theme-coloured component classes."""

_JOIN = "\x00"
"""Separates columns in a filter haystack; a needle never contains it, so no cross-column hit."""


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


class _Group(NamedTuple):
    """A group header line: the group's sort key, a raw value to show and its row count."""

    key: object
    value: object
    count: int


def _is_missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


def _mixed_key(value: object) -> tuple[int, float, str]:
    """A total order over values of different types: numbers, then text, then the rest."""
    if isinstance(value, int | float):
        return (0, float(value), "")
    if isinstance(value, str):
        return (1, 0.0, value.casefold())
    return (2, 0.0, str(value).casefold())


def _sort_keys(values: list[object]) -> list[object]:
    """Per-row sort keys for one column, ``None`` where the value is missing.

    Homogeneous columns keep cheap keys (the number itself, the case-folded string), which
    keeps a 100,000-row sort to a few tens of milliseconds; mixed columns fall back to tuples.
    """
    kinds = {type(v) for v in values}
    kinds.discard(type(None))
    if kinds <= {int, float, bool}:
        return [None if v is None or v != v else v for v in values]
    if kinds == {str}:
        folded: dict[str, str | None] = {}  # one folded string per distinct value, not per row
        return [
            folded.setdefault(v, v.casefold() or None) if isinstance(v, str) else None
            for v in values
        ]
    if len(kinds) == 1:
        return [None if _is_missing(v) else v for v in values]
    return [None if _is_missing(v) else _mixed_key(v) for v in values]


def _folded(values: list[object]) -> list[str]:
    """Case-folded text of one column for the substring filter; missing is ``""``."""
    return ["" if v is None else (v if isinstance(v, str) else str(v)).casefold() for v in values]


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
        self._columns: tuple[Column, ...] = ()
        self._col_index: dict[str, int] = {}
        self._rows: list[tuple[object, ...]] = []
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._version: list[int] = []
        self._table_width = 0
        # Derived per data set, computed lazily and dropped when their column changes.
        self._sort_key_cache: dict[int, list[object]] = {}
        self._perm_cache: dict[tuple[int, bool], Sequence[int]] = {}
        self._fold_cache: dict[int, list[str]] = {}
        self._hay_cache: dict[tuple[int, ...], list[str]] = {}
        # View state.
        self._sort: tuple[int, bool] | None = None
        self._needle = ""
        self._filter_cols: tuple[int, ...] = ()
        self._group: int | None = None
        # What is on show: data rows in display order, display lines (a row index, or -(g+1)
        # for group header g) and, when grouped, the display line of each shown row.
        self._order: Sequence[int] = []
        self._lines: Sequence[int] = []
        self._data_lines: list[int] | None = None
        self._groups: list[_Group] = []
        self._cursor = 0
        self._line_cache: LRUCache[tuple[object, ...], Strip] = LRUCache(cache_size)
        self._base_style: Style | None = None
        self._cell_cache: dict[tuple[object, ...], list[Segment]] = {}
        """(column number, value type, value) -> the cell's segments: a refresh where most
        values repeat (statuses, networks, whole percentages) builds rows from these."""

    # ------------------------------------------------------------------ public API

    @property
    def columns(self) -> tuple[Column, ...]:
        """The columns, in display order."""
        return self._columns

    @property
    def row_count(self) -> int:
        """All data rows held, whatever the filter."""
        return len(self._rows)

    @property
    def visible_count(self) -> int:
        """Data rows on show (after the filter); group header lines are not counted."""
        return len(self._order)

    @property
    def cursor_key(self) -> str | None:
        """The highlighted row's key, or ``None`` when nothing is on show."""
        if not self._order:
            return None
        return self._keys[self._order[self._cursor]]

    @property
    def cursor_position(self) -> int:
        """The highlighted row's position among the shown rows (0-based)."""
        return self._cursor

    @property
    def sort_state(self) -> tuple[str, bool] | None:
        """``(column_key, descending)``, or ``None`` for the input order."""
        if self._sort is None:
            return None
        return self._columns[self._sort[0]].key, self._sort[1]

    @property
    def group_key(self) -> str | None:
        """The column rows are grouped by, if any."""
        return None if self._group is None else self._columns[self._group].key

    @property
    def filter_text(self) -> str:
        """The current filter needle (case-folded), ``""`` when showing all."""
        return self._needle

    @property
    def groups(self) -> list[tuple[object, int]]:
        """``(value, row count)`` of each group header on show, in display order."""
        return [(g.value, g.count) for g in self._groups]

    def visible_keys(self, start: int = 0, stop: int | None = None) -> list[str]:
        """Keys of the shown data rows ``[start:stop]`` in display order (for export and tests).

        Args:
            start: First position.
            stop: End position (exclusive); ``None`` for the end.

        Returns:
            Row keys; group header lines are skipped.
        """
        keys = self._keys
        return [keys[i] for i in self._order[start:stop]]

    def row_for(self, key: str) -> tuple[object, ...] | None:
        """The raw values of the row with ``key``, or ``None``."""
        index = self._index.get(key)
        return None if index is None else self._rows[index]

    def display_lines(self) -> list[str | tuple[object, int]]:
        """Every display line below the header: a row key, or ``(group value, count)``."""
        out: list[str | tuple[object, int]] = []
        for entry in self._lines:
            if entry >= 0:
                out.append(self._keys[entry])
            else:
                group = self._groups[-entry - 1]
                out.append((group.value, group.count))
        return out

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
        old_columns = self._columns
        new_columns = tuple(columns)
        checked = self._checked(rows, keys, len(new_columns))  # before any state changes
        self._columns = new_columns
        self._col_index = {column.key: i for i, column in enumerate(new_columns)}
        widths = [column.width for column in new_columns]
        self._table_width = sum(widths) + _GAP * max(0, len(widths) - 1)
        self._install(*checked)
        if old_columns != new_columns:
            self._sort = self._remap(self._sort, old_columns)
            self._group = self._remap_index(self._group, old_columns)
            remapped = [self._remap_index(c, old_columns) for c in self._filter_cols]
            self._filter_cols = tuple(c for c in remapped if c is not None)
            if not self._filter_cols:
                self._needle = ""
        self._rebuild(follow)
        self._scroll_cursor_into_view()
        self.refresh()

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
        if not self._columns:
            raise ValueError("update_rows needs the columns of a set_rows call first")
        new_rows = [row if type(row) is tuple else tuple(row) for row in rows]
        new_keys = list(keys)
        if new_keys == self._keys:
            self._update_in_place(new_rows)
            return
        checked = self._checked(new_rows, new_keys, len(self._columns))
        follow = self.cursor_key
        before = self._window()
        self._install(*checked)
        self._rebuild(follow)
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
        column = self._col_index[column_key]
        if not self._columns[column].sortable:
            return
        if descending is None:
            descending = self._sort is not None and self._sort == (column, False)
        self._sort = (column, descending)
        self._apply_view()

    def can_sort_by(self, column_key: str) -> bool:
        """Whether ``column_key`` is a column here that may be sorted by."""
        index = self._col_index.get(column_key)
        return index is not None and self._columns[index].sortable

    def clear_sort(self) -> None:
        """Back to the input order."""
        self._sort = None
        self._apply_view()

    def filter(self, text: str, columns: Sequence[str] = ()) -> None:
        """Show only rows where ``text`` occurs (case-insensitively) in one of ``columns``.

        Args:
            text: The needle; ``""`` shows every row.
            columns: Column keys to search; empty means every column.

        Raises:
            KeyError: For an unknown column.
        """
        self._needle = text.casefold().replace(_JOIN, "")
        indexes = [self._col_index[c] for c in columns] or list(range(len(self._columns)))
        self._filter_cols = tuple(indexes)
        self._apply_view()

    def group_by(self, column_key: str | None) -> None:
        """Group rows by a column's value (groups ascending, missing last), or ungroup.

        Within a group rows keep the current sort. Each group is preceded by a header line with
        its value and row count; the cursor skips header lines.

        Args:
            column_key: The column to group by, or ``None``.

        Raises:
            KeyError: For an unknown column.
        """
        self._group = None if column_key is None else self._col_index[column_key]
        self._apply_view()

    def cursor_to_top(self) -> None:
        """Highlight the first row on show: a new order is read from the top."""
        first = self.visible_keys(0, 1)
        if first:
            self.move_cursor_to(first[0])

    def next_sort_key(self, after: str, keys: Sequence[str] | None = None) -> str:
        """The column after ``after`` (in ``keys``, else the table's order) that may be sorted by.

        Columns hidden by private mode are skipped; ``after`` itself if no other one may.
        """
        order = list(keys) if keys is not None else [c.key for c in self._columns]
        at = order.index(after) if after in order else -1
        for step in range(1, len(order) + 1):
            key = order[(at + step) % len(order)]
            if self.can_sort_by(key):
                return key
        return after

    def move_cursor_to(self, key: str) -> bool:
        """Highlight the row with ``key`` if it is on show, scrolling it into view.

        Args:
            key: A row key.

        Returns:
            Whether the row is on show.
        """
        position = self._position_of(key)
        if position is None:
            return False
        self._move_cursor(position)
        return True

    # ------------------------------------------------------------------ data handling

    @staticmethod
    def _checked(
        rows: Sequence[Sequence[object]], keys: Sequence[str], width: int
    ) -> tuple[list[tuple[object, ...]], list[str], dict[str, int]]:
        """Rows as tuples, keys as a list and the key index, or ``ValueError``."""
        new_rows = [row if type(row) is tuple else tuple(row) for row in rows]
        new_keys = list(keys)
        if len(new_rows) != len(new_keys):
            raise ValueError(f"{len(new_rows)} rows but {len(new_keys)} keys")
        if any(len(row) != width for row in new_rows):
            raise ValueError(f"every row must have {width} values, one per column")
        index = {key: i for i, key in enumerate(new_keys)}
        if len(index) != len(new_keys):
            raise ValueError("row keys must be unique")
        return new_rows, new_keys, index

    def _install(
        self, new_rows: list[tuple[object, ...]], new_keys: list[str], index: dict[str, int]
    ) -> None:
        """Take a checked data set; everything derived from the old one is dropped."""
        self._rows = new_rows
        self._keys = new_keys
        self._index = index
        self._version = [0] * len(new_rows)
        self._sort_key_cache.clear()
        self._perm_cache.clear()
        self._fold_cache.clear()
        self._hay_cache.clear()
        self._line_cache.clear()
        self._cell_cache.clear()  # columns (and so renderers) may have changed

    def _update_in_place(self, new_rows: list[tuple[object, ...]]) -> None:
        """Same keys in the same order: patch changed rows, re-derive only what they touch."""
        if len(new_rows) != len(self._keys):
            raise ValueError(f"{len(new_rows)} rows but {len(self._keys)} keys")
        old_rows = self._rows
        changed = [
            i for i, (old, new) in enumerate(zip(old_rows, new_rows, strict=True)) if old != new
        ]
        if not changed:
            return
        width = len(self._columns)
        if any(len(new_rows[i]) != width for i in changed):
            raise ValueError(f"every row must have {width} values, one per column")
        touched: set[int] = set()
        for i in changed:
            old, new = old_rows[i], new_rows[i]
            touched.update(c for c in range(width) if old[c] != new[c])
        follow = self.cursor_key
        before = self._window()
        version = self._version
        for i in changed:
            version[i] += 1
        self._rows = new_rows
        for c in touched:
            self._sort_key_cache.pop(c, None)
            self._fold_cache.pop(c, None)
            self._perm_cache.pop((c, False), None)
            self._perm_cache.pop((c, True), None)
        for cols in [cols for cols in self._hay_cache if touched.intersection(cols)]:
            del self._hay_cache[cols]
        view_columns = set(self._filter_cols if self._needle else ())
        if self._sort is not None:
            view_columns.add(self._sort[0])
        if self._group is not None:
            view_columns.add(self._group)
        if touched & view_columns:  # order, membership or groups may have changed
            self._rebuild(follow)
        self._repaint_changed(before)

    def _remap(
        self, sort: tuple[int, bool] | None, old_columns: tuple[Column, ...]
    ) -> tuple[int, bool] | None:
        if sort is None:
            return None
        index = self._remap_index(sort[0], old_columns)
        if index is None or not self._columns[index].sortable:
            return None  # gone, or now hidden: the order it gave would tell what is hidden
        return (index, sort[1])

    def _remap_index(self, index: int | None, old_columns: tuple[Column, ...]) -> int | None:
        if index is None or index >= len(old_columns):
            return None
        return self._col_index.get(old_columns[index].key)

    def _column_values(self, column: int) -> list[object]:
        return [row[column] for row in self._rows]

    def _sort_keys(self, column: int) -> list[object]:
        keys = self._sort_key_cache.get(column)
        if keys is None:
            keys = self._sort_key_cache[column] = _sort_keys(self._column_values(column))
        return keys

    def _permutation(self, column: int, descending: bool) -> Sequence[int]:
        """All row indexes sorted by ``column``, missing last; cached per direction."""
        cached = self._perm_cache.get((column, descending))
        if cached is not None:
            return cached
        keys = self._sort_keys(column)
        present = [i for i, k in enumerate(keys) if k is not None]
        absent = [i for i, k in enumerate(keys) if k is None]
        try:
            # reverse=True keeps ties in input order, so both directions are stable
            present.sort(key=keys.__getitem__, reverse=descending)
        except TypeError:  # one type that does not order (e.g. dicts): order by its text
            keys = self._sort_key_cache[column] = [
                None if k is None else _mixed_key(str(k)) for k in keys
            ]
            present.sort(key=keys.__getitem__, reverse=descending)
        # an int array: 4 bytes a row, where a list holds a 28-byte int object per row
        perm = array("i", present)
        perm.extend(absent)
        self._perm_cache[(column, descending)] = perm
        return perm

    def _haystack(self, columns: tuple[int, ...]) -> list[str]:
        hay = self._hay_cache.get(columns)
        if hay is None:
            folded = []
            for column in columns:
                values = self._fold_cache.get(column)
                if values is None:
                    values = self._fold_cache[column] = _folded(self._column_values(column))
                folded.append(values)
            hay = (
                folded[0]
                if len(folded) == 1
                else [_JOIN.join(t) for t in zip(*folded, strict=True)]
            )
            self._hay_cache[columns] = hay
        return hay

    def _rebuild(self, follow: str | None) -> None:
        """Recompute what is on show from sort, filter and grouping; keep ``follow`` highlighted."""
        if self._sort is None:
            base: Sequence[int] = array("i", range(len(self._rows)))
        else:
            base = self._permutation(*self._sort)
        if self._needle and self._filter_cols:
            hay = self._haystack(self._filter_cols)
            needle = self._needle
            base = [i for i in base if needle in hay[i]]
        if self._group is None:
            self._order = base
            self._lines = base
            self._data_lines = None
            self._groups = []
        else:
            self._build_groups(base, self._group)
        old = self._cursor
        position = None if follow is None else self._position_of(follow)
        self._cursor = position if position is not None else max(0, min(old, len(self._order) - 1))
        size = Size(self._table_width, len(self._lines) + 1)
        if size != self.virtual_size:
            # Setting the reactive would repaint every line; callers refresh what changed.
            self.set_reactive(FleetTable.virtual_size, size)
            self.refresh(layout=True, repaint=False)

    def _build_groups(self, base: Sequence[int], column: int) -> None:
        keys = self._sort_keys(column)
        buckets: dict[object, list[int]] = {}
        for i in base:
            bucket = buckets.get(keys[i])
            if bucket is None:
                buckets[keys[i]] = [i]
            else:
                bucket.append(i)
        present = [k for k in buckets if k is not None]
        try:
            present.sort()  # type: ignore[type-var]
        except TypeError:
            present.sort(key=lambda k: _mixed_key(str(k)))
        ordered = present + ([None] if None in buckets else [])
        order: list[int] = []
        lines: list[int] = []
        data_lines: list[int] = []
        groups: list[_Group] = []
        for number, key in enumerate(ordered):
            rows = buckets[key]
            groups.append(_Group(key, self._rows[rows[0]][column], len(rows)))
            lines.append(-(number + 1))
            start = len(lines)
            data_lines.extend(range(start, start + len(rows)))
            lines.extend(rows)
            order.extend(rows)
        self._order, self._lines, self._data_lines, self._groups = order, lines, data_lines, groups

    def _apply_view(self) -> None:
        follow = self.cursor_key
        self._rebuild(follow)
        self._scroll_cursor_into_view()
        self.refresh()

    def _position_of(self, key: str) -> int | None:
        row = self._index.get(key)
        if row is None:
            return None
        try:
            return self._order.index(row)
        except ValueError:
            return None

    # ------------------------------------------------------------------ geometry

    @property
    def _page_height(self) -> int:
        """Display lines below the pinned header."""
        return max(1, self.scrollable_content_region.height - 1)

    def _line_of(self, position: int) -> int:
        return position if self._data_lines is None else self._data_lines[position]

    def _position_at_line(self, line: int, forward: bool) -> int:
        """The data row at or after (``forward``) / at or before display ``line``."""
        if self._data_lines is None:
            return max(0, min(line, len(self._order) - 1))
        position = bisect_left(self._data_lines, line)
        if not forward and (
            position >= len(self._data_lines) or self._data_lines[position] != line
        ):
            position -= 1
        return max(0, min(position, len(self._order) - 1))

    def _scroll_cursor_into_view(self) -> None:
        if not self._order or not self.is_mounted:
            return
        line = self._line_of(self._cursor)
        top = self.scroll_offset.y
        height = self._page_height
        if line < top:
            target = line - 1 if line > 0 and self._lines[line - 1] < 0 else line
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
        lines = self._lines
        cursor_row = self._order[self._cursor] if self._order else -1
        out: list[object] = []
        for line in range(top, top + self._page_height):
            if line >= len(lines):  # the "no rows" message sits on the first line
                out.append((_JOIN, bool(self._rows)) if line == 0 else None)
                continue
            entry = lines[line]
            if entry >= 0:
                out.append((self._keys[entry], self._rows[entry], entry == cursor_row))
            else:
                out.append((_JOIN, self._groups[-entry - 1]))
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
        if y == 0:
            key: tuple[object, ...] = ("header", self._sort, width, scroll_x)
            strip = self._line_cache.get(key)
            if strip is None:
                style = self.get_component_rich_style("fleet-table--header")
                strip = self._header_strip().apply_style(style)
                strip = strip.crop_extend(scroll_x, scroll_x + width, style)
                self._line_cache[key] = strip
            return strip
        line = scroll_y + y - 1
        if line >= len(self._lines):
            if line == 0:  # nothing on show: say why rather than a blank table
                return self._empty_strip(width)
            return Strip.blank(width, base)
        entry = self._lines[line]
        if entry < 0:
            group = self._groups[-entry - 1]
            key = ("group", group.key, group.count, str(group.value), self._group, width)
            strip = self._line_cache.get(key)
            if strip is None:
                style = self.get_component_rich_style("fleet-table--group")
                strip = self._group_strip(group).apply_style(style)
                strip = strip.crop_extend(0, width, style)
                self._line_cache[key] = strip
            return strip
        is_cursor = bool(self._order) and entry == self._order[self._cursor]
        key = (entry, self._version[entry], is_cursor, width, scroll_x)
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
        row = self._rows[row_index]
        segments: list[Segment] = []
        cache = self._cell_cache
        console = self.app.console
        for number, column in enumerate(self._columns):
            if number:
                segments.append(_GAP_SEGMENT)
            value = row[number]
            try:
                key: tuple[object, ...] | None = (number, type(value), value)
                cell = cache.get(key)  # type: ignore[arg-type]
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
        for number, column in enumerate(self._columns):
            if number:
                line.append(gap)
            label = text(column.label, max_len=64)
            if self._sort is not None and self._sort[0] == number:
                arrow = "▼" if self._sort[1] else "▲"
                label.truncate(max(0, column.width - 1), overflow="ellipsis")
                label.append(arrow)
            line.append_text(self._fit(label, column.width, column.align))
        return Strip(line.render(self.app.console))

    def _group_strip(self, group: _Group) -> Strip:
        assert self._group is not None
        column = self._columns[self._group]
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
        message = "no rows match the filter" if self._rows else "no rows"
        style = self.get_component_rich_style("fleet-table--empty")
        return Strip([Segment(f" {message}", style)]).crop_extend(0, width, self.rich_style)

    # ------------------------------------------------------------------ input

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only this widget's own actions run (reliability.md R3)."""
        return action in self.ALLOWED_ACTIONS

    def _move_cursor(self, position: int) -> None:
        if not self._order:
            return
        position = max(0, min(position, len(self._order) - 1))
        old = self._cursor
        self._cursor = position
        if old != position:
            self._refresh_display_line(self._line_of(old))
            self._refresh_display_line(self._line_of(position))
        self._scroll_cursor_into_view()

    def action_cursor_up(self) -> None:
        """Highlight the previous data row."""
        self._move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        """Highlight the next data row."""
        self._move_cursor(self._cursor + 1)

    def action_page_up(self) -> None:
        """Move the highlight one screen up."""
        if self._order:
            line = self._line_of(self._cursor) - self._page_height
            self._move_cursor(self._position_at_line(line, forward=True))

    def action_page_down(self) -> None:
        """Move the highlight one screen down."""
        if self._order:
            line = self._line_of(self._cursor) + self._page_height
            self._move_cursor(self._position_at_line(line, forward=False))

    def action_first(self) -> None:
        """Highlight the first row and show the top (its group header too)."""
        self._move_cursor(0)
        self.scroll_to(y=0, animate=False, force=True)

    def action_last(self) -> None:
        """Highlight the last row."""
        self._move_cursor(len(self._order) - 1)

    def action_select(self) -> None:
        """Post :class:`RowSelected` for the highlighted row."""
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RowSelected(self, key))

    def _column_at(self, x: int) -> int | None:
        left = 0
        for number, column in enumerate(self._columns):
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
            if column is not None and self._columns[column].sortable:
                self.sort_by(self._columns[column].key)
                assert self._sort is not None
                self.post_message(self.SortChanged(self, self._columns[column].key, self._sort[1]))
            return
        line = self.scroll_offset.y + offset.y - 1
        if not 0 <= line < len(self._lines) or self._lines[line] < 0:
            return
        position = self._position_at_line(line, forward=True)
        if position == self._cursor:
            self.action_select()
        else:
            self._move_cursor(position)
