"""What `e` writes: the rows a table shows (after filter and sort), its columns, raw values.

A screen builds a :class:`TableExport`; the host writes it to a file in a thread and says where
(``ExplorerHost.export_table``). Screens never write files themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich.text import Text

from cache.db import iso
from cache.diff import Changes
from screens.render import missing
from screens.widgets.fleet_table import FleetTable

HIDDEN = "•••"
"""What private mode shows (and exports) instead of an earning."""


def hidden_cell(value: object) -> Text:
    """A table cell in private mode: "•••" for a value, missing stays missing."""
    return missing() if value is None else Text(HIDDEN, style="dim", justify="right")


@dataclass(frozen=True)
class TableExport:
    """A table as shown: a file-name stem, column keys and one tuple of raw values per row."""

    name: str
    columns: Sequence[str]
    rows: Sequence[Sequence[object]]
    private_columns: frozenset[str] = field(default_factory=frozenset)
    """Columns of earnings: written as :data:`HIDDEN` while private mode is on."""

    def masked(self) -> TableExport:
        """The same table with every private column's values hidden."""
        hide = [i for i, c in enumerate(self.columns) if c in self.private_columns]
        if not hide:
            return self
        rows = [
            tuple(HIDDEN if i in hide and v is not None else v for i, v in enumerate(row))
            for row in self.rows
        ]
        return TableExport(self.name, self.columns, rows, self.private_columns)

    def records(self) -> list[dict[str, object]]:
        """One dict per row (times as ISO 8601 UTC text), in :func:`cache.export.to_csv` form."""
        return [
            {
                c: iso(v) if isinstance(v, datetime) else v
                for c, v in zip(self.columns, row, strict=True)
            }
            for row in self.rows
        ]


def from_fleet_table(
    name: str, table: FleetTable, private_columns: Sequence[str] = ()
) -> TableExport:
    """The shown rows of a FleetTable in display order (grouping aside), every column raw."""
    columns = [c.key for c in table.columns]
    rows = [row for key in table.visible_keys() if (row := table.row_for(key)) is not None]
    return TableExport(name, columns, rows, frozenset(private_columns))


def changes_export(found: Changes) -> TableExport:
    """History's changes, every one (not only the lines on screen), one per row."""
    rows: list[tuple[object, ...]] = [
        ("nodes", c.node, c.network, c.kind, None, None, c.source_kind, None) for c in found.nodes
    ]
    ranks = found.rankings
    for kind, moves in (("moved", ranks.moves), ("new", ranks.new), ("dropped", ranks.dropped)):
        rows += [
            ("rankings", m.name, None, kind, m.rank_before, m.rank_after, "rank", None)
            for m in moves
        ]
    rows += [
        ("networks", m.metric, m.network, "changed", m.before, m.after, m.unit, None)
        for m in found.metrics_changed
    ]
    rows += [
        ("rewards", r.node or r.device_id, r.network, "earned", None, None, r.token, r.amount)
        for r in found.rewards
    ]
    columns = ("section", "subject", "network", "change", "before", "after", "unit", "earned")
    return TableExport("history", columns, rows, frozenset({"earned"}))
