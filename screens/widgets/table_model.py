"""The data behind ``FleetTable``: rows, keys, sort, filter and grouping, with no drawing.

Pure Python: no Textual, no Rich (an import-linter contract keeps it so), so that the order of
100,000 rows can be tested and timed without an app. The model never reorders the data: it keeps
the raw rows as tuples and derives index lists of the rows on show. Sorting and filtering work
on per-column keys computed once per data set, so each is one ``list.sort``/list comprehension
over plain Python lists.

Display lines: below the header, each line is a row index (``>= 0``) or ``-(g + 1)`` for the
header of group ``g``. Positions count shown data rows only (group headers are not positions),
which is what a cursor moves over; the cursor itself belongs to the widget.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

JOIN = "\x00"
"""Separates columns in a filter haystack; a needle never contains it, so no cross-column hit."""

Update = Literal["unchanged", "patched", "reordered", "replaced"]
"""What :meth:`TableModel.update_rows` did: nothing; changed values only (same rows on show, in
the same order); changed values that moved, hid or regrouped rows; a new data set (row indexes
mean other rows now)."""


class ColumnSpec(Protocol):
    """What the model needs of a column: an identity and whether it may be sorted by."""

    @property
    def key(self) -> str:
        """Stable identifier used by ``sort_by``, ``filter`` and ``group_by``."""
        ...

    @property
    def sortable(self) -> bool:
        """False for a column whose order would tell what it hides (private mode)."""
        ...


ColumnT = TypeVar("ColumnT", bound=ColumnSpec)


@dataclass(frozen=True, slots=True)
class Group:
    """A group header line: the group's sort key, a raw value to show and its row count."""

    key: object
    value: object
    count: int


def is_missing(value: object) -> bool:
    """Whether a raw value counts as missing (``None``, ``""`` or NaN): such values sort last."""
    return value is None or value == "" or (isinstance(value, float) and value != value)


def mixed_key(value: object) -> tuple[int, float, str]:
    """A total order over values of different types: numbers, then text, then the rest."""
    if isinstance(value, int | float):
        return (0, float(value), "")
    if isinstance(value, str):
        return (1, 0.0, value.casefold())
    return (2, 0.0, str(value).casefold())


def sort_keys(values: list[object]) -> list[object]:
    """Per-row sort keys for one column, ``None`` where the value is missing.

    Homogeneous columns keep cheap keys (the number itself, the case-folded string), which
    keeps a 100,000-row sort to a few tens of milliseconds; mixed columns fall back to tuples.

    Args:
        values: One column's raw values, one per row.

    Returns:
        A key per row, ``None`` for a missing value.
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
        return [None if is_missing(v) else v for v in values]
    return [None if is_missing(v) else mixed_key(v) for v in values]


def folded_text(values: list[object]) -> list[str]:
    """Case-folded text of one column for the substring filter; missing is ``""``.

    Args:
        values: One column's raw values, one per row.

    Returns:
        A folded string per row.
    """
    return ["" if v is None else (v if isinstance(v, str) else str(v)).casefold() for v in values]


def _lookup(keys: list[object]) -> Callable[[int], Any]:
    """``keys.__getitem__`` typed as a sort key: a bound method, not a lambda, per row."""
    return keys.__getitem__


def checked_rows(
    rows: Sequence[Sequence[object]], keys: Sequence[str], width: int
) -> tuple[list[tuple[object, ...]], list[str], dict[str, int]]:
    """Rows as tuples, keys as a list and the key index, once they are known to fit.

    Args:
        rows: One sequence of raw values per row.
        keys: A key per row.
        width: The number of columns every row must have.

    Returns:
        The rows, the keys and each key's row index.

    Raises:
        ValueError: On a length mismatch or duplicate keys.
    """
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


class TableModel(Generic[ColumnT]):
    """Columns, rows and keys, and which rows are on show in which order.

    Every mutator leaves the view (:attr:`order`, :attr:`lines`, :attr:`groups`) consistent
    with the data and the sort, filter and grouping; a widget reads it after the call. Bad input
    raises before any state changes.
    """

    def __init__(self) -> None:
        """Create an empty model: no columns, no rows, input order, no filter, no groups."""
        self._columns: tuple[ColumnT, ...] = ()
        self._col_index: dict[str, int] = {}
        self._rows: list[tuple[object, ...]] = []
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._version: list[int] = []
        # Derived per data set, computed lazily and dropped when their column changes.
        self._sort_key_cache: dict[int, list[object]] = {}
        self._perm_cache: dict[tuple[int, bool], Sequence[int]] = {}
        self._fold_cache: dict[int, list[str]] = {}
        self._hay_cache: dict[tuple[int, ...], list[str]] = {}
        # View settings, by column number.
        self._sort: tuple[int, bool] | None = None
        self._needle = ""
        self._filter_cols: tuple[int, ...] = ()
        self._group: int | None = None
        # What is on show: data rows in display order, display lines and, when grouped, the
        # display line of each shown row (None when ungrouped: line and position coincide).
        self._order: Sequence[int] = []
        self._lines: Sequence[int] = []
        self._data_lines: list[int] | None = None
        self._groups: list[Group] = []

    # ------------------------------------------------------------------ reading

    @property
    def columns(self) -> tuple[ColumnT, ...]:
        """The columns, in display order."""
        return self._columns

    @property
    def rows(self) -> Sequence[tuple[object, ...]]:
        """Every row's raw values, in input order (not to be mutated)."""
        return self._rows

    @property
    def keys(self) -> Sequence[str]:
        """Every row's key, in input order (not to be mutated)."""
        return self._keys

    @property
    def versions(self) -> Sequence[int]:
        """Per row, how many times :meth:`update_rows` changed it in place (for caching)."""
        return self._version

    @property
    def order(self) -> Sequence[int]:
        """Row indexes of the shown data rows, in display order."""
        return self._order

    @property
    def lines(self) -> Sequence[int]:
        """Display lines: a row index, or ``-(g + 1)`` for the header of ``groups[g]``."""
        return self._lines

    @property
    def groups(self) -> Sequence[Group]:
        """The group headers on show, in display order (empty when ungrouped)."""
        return self._groups

    @property
    def row_count(self) -> int:
        """All data rows held, whatever the filter."""
        return len(self._rows)

    @property
    def visible_count(self) -> int:
        """Data rows on show (after the filter); group header lines are not counted."""
        return len(self._order)

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

    def key_at(self, position: int) -> str:
        """The key of the shown data row at ``position``.

        Raises:
            IndexError: Outside ``range(visible_count)``.
        """
        return self._keys[self._order[position]]

    def visible_keys(self, start: int = 0, stop: int | None = None) -> list[str]:
        """Keys of the shown data rows ``[start:stop]`` in display order.

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
        """Every display line: a row key, or ``(group value, count)`` for a group header."""
        out: list[str | tuple[object, int]] = []
        for entry in self._lines:
            if entry >= 0:
                out.append(self._keys[entry])
            else:
                group = self._groups[-entry - 1]
                out.append((group.value, group.count))
        return out

    def position_of(self, key: str | None) -> int | None:
        """The position of the row with ``key`` among the shown rows, or ``None``."""
        row = None if key is None else self._index.get(key)
        if row is None:
            return None
        try:
            return self._order.index(row)
        except ValueError:
            return None

    def line_of(self, position: int) -> int:
        """The display line of the shown data row at ``position``."""
        return position if self._data_lines is None else self._data_lines[position]

    def position_at_line(self, line: int, forward: bool) -> int:
        """The data row at or after (``forward``) / at or before display ``line``, clamped.

        Args:
            line: A display line (may be a group header, or out of range).
            forward: Which way to look from a group header line.

        Returns:
            A position in ``range(visible_count)`` (0 when nothing is on show).
        """
        if self._data_lines is None:
            return max(0, min(line, len(self._order) - 1))
        position = bisect_left(self._data_lines, line)
        if not forward and (
            position >= len(self._data_lines) or self._data_lines[position] != line
        ):
            position -= 1
        return max(0, min(position, len(self._order) - 1))

    def can_sort_by(self, column_key: str) -> bool:
        """Whether ``column_key`` is a column here that may be sorted by."""
        index = self._col_index.get(column_key)
        return index is not None and self._columns[index].sortable

    def next_sort_key(self, after: str, keys: Sequence[str] | None = None) -> str:
        """The column after ``after`` (in ``keys``, else column order) that may be sorted by.

        Args:
            after: The current sort column; need not be one of ``keys``.
            keys: The cycle to follow; ``None`` for the columns in display order.

        Returns:
            The next sortable key, wrapping; ``after`` itself if no other one may be sorted by.
        """
        order = list(keys) if keys is not None else [c.key for c in self._columns]
        at = order.index(after) if after in order else -1
        for step in range(1, len(order) + 1):
            key = order[(at + step) % len(order)]
            if self.can_sort_by(key):
                return key
        return after

    # ------------------------------------------------------------------ changing

    def set_rows(
        self,
        columns: Sequence[ColumnT],
        rows: Sequence[Sequence[object]],
        keys: Sequence[str],
    ) -> None:
        """Replace columns and data; keeps sort, filter and grouping where their columns remain.

        A sort by a column that is gone or may no longer be sorted by is dropped (the order it
        gave would tell what is hidden).

        Args:
            columns: Column definitions, in display order.
            rows: One sequence of raw values per row, in column order.
            keys: A unique, stable key per row.

        Raises:
            ValueError: On a length mismatch or duplicate keys.
        """
        old_columns = self._columns
        new_columns = tuple(columns)
        checked = checked_rows(rows, keys, len(new_columns))  # before any state changes
        self._columns = new_columns
        self._col_index = {column.key: i for i, column in enumerate(new_columns)}
        self._install(*checked)
        if old_columns != new_columns:
            self._sort = self._remap_sort(self._sort, old_columns)
            self._group = self._remap_index(self._group, old_columns)
            remapped = [self._remap_index(c, old_columns) for c in self._filter_cols]
            self._filter_cols = tuple(c for c in remapped if c is not None)
            if not self._filter_cols:
                self._needle = ""
        self._rebuild()

    def update_rows(self, rows: Sequence[Sequence[object]], keys: Sequence[str]) -> Update:
        """Replace the data for the same columns, re-deriving only what changed.

        Args:
            rows: One sequence of raw values per row, in column order.
            keys: A unique key per row; rows may come, go or move.

        Returns:
            What changed, so that a widget repaints (and drops caches) no more than it must.

        Raises:
            ValueError: Before ``set_rows``, on a length mismatch or on duplicate keys.
        """
        if not self._columns:
            raise ValueError("update_rows needs the columns of a set_rows call first")
        new_rows = [row if type(row) is tuple else tuple(row) for row in rows]
        new_keys = list(keys)
        if new_keys == self._keys:
            return self._update_in_place(new_rows)
        self._install(*checked_rows(new_rows, new_keys, len(self._columns)))
        self._rebuild()
        return "replaced"

    def sort_by(self, column_key: str, descending: bool | None = None) -> bool:
        """Sort by a column; missing values (None, NaN, "") go last in both directions.

        Text sorts case-insensitively; ties keep the input order (stable and repeatable).

        Args:
            column_key: The column to sort by.
            descending: The direction; ``None`` reverses the current direction when already
                sorted ascending by this column, else sorts ascending.

        Returns:
            False (and nothing changes) when the column may not be sorted by.

        Raises:
            KeyError: For an unknown column.
        """
        column = self._col_index[column_key]
        if not self._columns[column].sortable:
            return False
        if descending is None:
            descending = self._sort == (column, False)
        self._sort = (column, descending)
        self._rebuild()
        return True

    def clear_sort(self) -> None:
        """Back to the input order."""
        self._sort = None
        self._rebuild()

    def filter(self, text: str, columns: Sequence[str] = ()) -> None:
        """Show only rows where ``text`` occurs (case-insensitively) in one of ``columns``.

        Args:
            text: The needle; ``""`` shows every row.
            columns: Column keys to search; empty means every column.

        Raises:
            KeyError: For an unknown column (nothing changes).
        """
        indexes = [self._col_index[c] for c in columns] or list(range(len(self._columns)))
        self._needle = text.casefold().replace(JOIN, "")
        self._filter_cols = tuple(indexes)
        self._rebuild()

    def group_by(self, column_key: str | None) -> None:
        """Group rows by a column's value (groups ascending, missing last), or ungroup.

        Within a group rows keep the current sort; groups follow the filter.

        Args:
            column_key: The column to group by, or ``None``.

        Raises:
            KeyError: For an unknown column.
        """
        self._group = None if column_key is None else self._col_index[column_key]
        self._rebuild()

    # ------------------------------------------------------------------ internals

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

    def _update_in_place(self, new_rows: list[tuple[object, ...]]) -> Update:
        """Same keys in the same order: patch changed rows, re-derive only what they touch."""
        if len(new_rows) != len(self._keys):
            raise ValueError(f"{len(new_rows)} rows but {len(self._keys)} keys")
        old_rows = self._rows
        changed = [
            i for i, (old, new) in enumerate(zip(old_rows, new_rows, strict=True)) if old != new
        ]
        if not changed:
            return "unchanged"
        width = len(self._columns)
        if any(len(new_rows[i]) != width for i in changed):
            raise ValueError(f"every row must have {width} values, one per column")
        touched: set[int] = set()
        for i in changed:
            old, new = old_rows[i], new_rows[i]
            touched.update(c for c in range(width) if old[c] != new[c])
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
            self._rebuild()
            return "reordered"
        return "patched"

    def _remap_sort(
        self, sort: tuple[int, bool] | None, old_columns: tuple[ColumnT, ...]
    ) -> tuple[int, bool] | None:
        if sort is None:
            return None
        index = self._remap_index(sort[0], old_columns)
        if index is None or not self._columns[index].sortable:
            return None  # gone, or now hidden: the order it gave would tell what is hidden
        return (index, sort[1])

    def _remap_index(self, index: int | None, old_columns: tuple[ColumnT, ...]) -> int | None:
        if index is None or index >= len(old_columns):
            return None
        return self._col_index.get(old_columns[index].key)

    def _column_values(self, column: int) -> list[object]:
        return [row[column] for row in self._rows]

    def _sort_keys(self, column: int) -> list[object]:
        keys = self._sort_key_cache.get(column)
        if keys is None:
            keys = self._sort_key_cache[column] = sort_keys(self._column_values(column))
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
            present.sort(key=_lookup(keys), reverse=descending)
        except TypeError:  # one type that does not order (e.g. dicts): order by its text
            keys = self._sort_key_cache[column] = [
                None if k is None else mixed_key(str(k)) for k in keys
            ]
            present.sort(key=_lookup(keys), reverse=descending)
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
                    values = self._fold_cache[column] = folded_text(self._column_values(column))
                folded.append(values)
            hay = (
                folded[0] if len(folded) == 1 else [JOIN.join(t) for t in zip(*folded, strict=True)]
            )
            self._hay_cache[columns] = hay
        return hay

    def _rebuild(self) -> None:
        """Recompute what is on show from sort, filter and grouping."""
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
            present.sort()
        except TypeError:
            present.sort(key=lambda k: mixed_key(str(k)))
        ordered = present + ([None] if None in buckets else [])
        order: list[int] = []
        lines: list[int] = []
        data_lines: list[int] = []
        groups: list[Group] = []
        for number, key in enumerate(ordered):
            rows = buckets[key]
            groups.append(Group(key, self._rows[rows[0]][column], len(rows)))
            lines.append(-(number + 1))
            start = len(lines)
            data_lines.extend(range(start, start + len(rows)))
            lines.extend(rows)
            order.extend(rows)
        self._order, self._lines, self._data_lines, self._groups = order, lines, data_lines, groups
