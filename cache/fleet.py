"""The Fleet screen's reads: flat rows for very large fleets, and one node on demand.

:func:`cache.queries.latest_fleet` builds a full :class:`~cache.queries.NodeRow` per node (labels
parsed, every figure in a dict), which exports need. The Fleet table needs only a few figures per
node, so :func:`fleet_rows` returns plain tuples of just those, straight from SQLite; the one node
the operator opens is read in full by :func:`node_row`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cache.db import LABEL_KEYS
from cache.queries import NODE_COLUMNS, NodeRow, _bound_poll_id, node_from_row

FLEET_FIGURES = (
    "cpu_pct",
    "mem_pct",
    "disk_pct",
    "gpu_util_pct",
    "gpu_temp_c",
    "gpu_power_w",
    "uptime_s",
)
"""The figures of a fleet row, in this order after (node, source_kind, network, up)."""


WHOLE = frozenset({"cpu_pct", "mem_pct", "disk_pct", "gpu_util_pct", "gpu_temp_c"})
"""Figures the table shows as whole numbers; read as such (``whole=True``) they come back as
Python's shared small ints, which saves 24 bytes per value at 100,000 nodes."""


@dataclass(frozen=True)
class FleetRows:
    """Every node's latest sample as flat tuples, streamed from the cursor.

    Each row is ``(node, source_kind, network, up, *FLEET_FIGURES, finished_at, label)``:
    ``finished_at`` is the poll's ISO time text and ``label`` the value of the requested label
    (None when none was asked for or the node lacks it). ``rows`` can be iterated once, while
    the connection is open: a 100,000-node fleet is never held twice in memory.
    """

    rows: Iterator[tuple[Any, ...]]
    """SQLite rows: each cell typed by its column (TEXT, INTEGER, REAL or NULL)."""
    label_keys: list[str]
    """Every label key the nodes carry, sorted."""


def fleet_rows(
    conn: sqlite3.Connection,
    at: datetime | None = None,
    label: str | None = None,
    *,
    whole: bool = False,
) -> FleetRows:
    """Each (node, source kind) with its most recent sample stored at or before ``at``.

    ``whole`` rounds the percentages and the temperature to whole numbers (see :data:`WHOLE`).
    """
    figures = ", ".join(
        f"CAST(ROUND(s.{f}) AS INTEGER)" if whole and f in WHOLE else f"s.{f}"
        for f in FLEET_FIGURES
    )
    # the labels JSON only when a label is asked for: it is the widest column
    head = (
        f"SELECT s.node, s.source_kind, n.network, s.up, {figures}, p.finished_at, "
        f"{'n.labels' if label else 'NULL'} "
    )
    keys = label_keys(conn)
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: sqlite3.Row objects cost more than the query
    bound = _bound_poll_id(conn, at)
    newest = conn.execute("SELECT MAX(id) FROM polls").fetchone()[0] or 0
    if bound >= newest:
        # Live: each node's newest poll is in `nodes`, no need to group the whole sample table.
        # CROSS JOIN keeps `nodes` the outer loop, read in its primary key order: rows come
        # sorted by node without a sort step.
        rows = cursor.execute(
            head + "FROM nodes n CROSS JOIN node_samples s ON s.poll_id = n.last_poll_id "
            "AND s.node = n.node AND s.source_kind = n.source_kind "
            "JOIN polls p ON p.id = s.poll_id ORDER BY n.node, n.source_kind"
        )
    else:
        rows = cursor.execute(
            head + "FROM (SELECT node, source_kind, MAX(poll_id) AS poll_id FROM node_samples "
            "      WHERE poll_id <= ? GROUP BY node, source_kind) latest "
            "JOIN node_samples s ON s.poll_id = latest.poll_id AND s.node = latest.node "
            "     AND s.source_kind = latest.source_kind "
            "JOIN polls p ON p.id = s.poll_id "
            "LEFT JOIN nodes n ON n.node = s.node AND n.source_kind = s.source_kind "
            "ORDER BY s.node, s.source_kind",
            (bound,),
        )
    return FleetRows(rows if label is None else _labelled(rows, label), sorted(keys))


def label_keys(conn: sqlite3.Connection) -> set[str]:
    """Every label key the nodes carry: kept by the writer, found the slow way in older files.

    A cache written before the writer kept them (or copied from one) has no ``label_keys``:
    then SQLite's own JSON reader lists them, about 0.3 s for 100,000 nodes.
    """
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (LABEL_KEYS,)).fetchone()
    if row is not None:
        try:
            stored = json.loads(row[0])
        except (ValueError, TypeError):
            stored = None
        if isinstance(stored, list):
            return {key for key in stored if isinstance(key, str)}
    try:
        found = conn.execute(
            "SELECT DISTINCT j.key FROM nodes, json_each(nodes.labels) j "
            "WHERE json_valid(nodes.labels) AND json_type(nodes.labels) = 'object'"
        ).fetchall()
    except sqlite3.DatabaseError:  # an SQLite without JSON, or damaged labels
        return set()
    return {key for (key,) in found if isinstance(key, str)}


def _labelled(rows: Iterator[tuple[Any, ...]], label: str) -> Iterator[tuple[Any, ...]]:
    """Replace each row's labels JSON by the value of ``label`` in it.

    Label sets repeat across a fleet: each distinct one is parsed once.
    """
    values: dict[object, str | None] = {}
    for row in rows:
        raw = row[-1]
        if raw not in values:
            try:
                parsed = json.loads(raw) if isinstance(raw, str) else {}
            except ValueError:
                parsed = {}
            value = parsed.get(label) if isinstance(parsed, dict) else None
            values[raw] = None if value is None else str(value)
        yield (*row[:-1], values[raw])


def node_row(
    conn: sqlite3.Connection, node: str, source_kind: str, at: datetime | None = None
) -> NodeRow | None:
    """One node's latest sample in full (labels, error, every figure), as of ``at``."""
    cursor = conn.cursor()
    cursor.row_factory = None
    row = cursor.execute(
        f"SELECT {NODE_COLUMNS} FROM node_samples s JOIN polls p ON p.id = s.poll_id "
        "LEFT JOIN nodes n ON n.node = s.node AND n.source_kind = s.source_kind "
        "WHERE s.node = ? AND s.source_kind = ? AND s.poll_id <= ? "
        "ORDER BY s.poll_id DESC LIMIT 1",
        (node, source_kind, _bound_poll_id(conn, at)),
    ).fetchone()
    return node_from_row(row) if row else None
