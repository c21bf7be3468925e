"""The Rewards screen's missed blocks: columns, rows and summary lines (no widgets).

What is computed and its limits is :mod:`cache.reward_misses` (docs/economics.md). A figure our
history does not hold is "—"; a block whose hour has no samples says "no samples".
"""

from __future__ import annotations

import json

from rich.text import Text

from cache.db import iso
from cache.reward_misses import Miss, NodeMisses, RewardMisses
from cache.text import safe_text
from screens.render import missing, text
from screens.widgets.fleet_table import Column, number_cell

WHY = {
    "down": "down",
    "network_down": "net down",
    "hot": "hot GPU",
    "idle": "idle GPU",
    "no_samples": "no samp.",
    "partly_sampled": "part sam",
    "no_node": "no node",
}
"""A node's most common cause we can see, in the Rewards table's 8-cell ``Why`` column."""
NO_CAUSE = "no cause"
"""``Why`` of a node whose missed blocks show no cause in our history."""
MAX_SUMMARY_LINES = 4


def _why(value: object) -> Text:
    if not isinstance(value, str):
        return missing()
    return Text(value, style="dim" if value == NO_CAUSE else "yellow")


def _block(value: object) -> Text:
    """A block's start as ``11-26 06:00`` (UTC, like the io.net block ids)."""
    if not isinstance(value, str):
        return missing()
    return Text(f"{value[5:10]} {value[11:16]}")


def _minutes(value: object) -> Text:
    if not isinstance(value, int | float):
        return missing()
    return Text(f"{value:.0f}m", style="red" if value >= 1 else "")


def _network(value: object) -> Text:
    if not isinstance(value, str):
        return missing()
    return text(value, "red" if "down" in value.casefold() else "", 20)


def node_columns() -> list[Column]:
    """The per-node view's two columns: missed blocks and the most common cause we can see."""
    return [
        Column("missed", "Miss", 4, "right", number_cell(",d")),
        Column("why", "Why", 8, render=_why),
    ]


def node_cells(found: NodeMisses | None) -> dict[str, object]:
    """The ``missed`` and ``why`` cells of one node (None: no io.net blocks stored)."""
    if found is None:
        return {"missed": None, "why": None}
    why = WHY.get(found.seen or "", NO_CAUSE) if found.missed else ""
    return {"missed": found.missed, "why": why}


def columns() -> list[Column]:
    """The missed-blocks view: one row per block, io.net's cause and our figures of its hour."""
    return [
        Column("at", "Block UTC", 11, render=_block),
        Column("node", "Node", 12),
        Column("cause", "io.net", 13),
        Column("seen", "Our history", 22),
        Column("down_min", "Down", 4, "right", _minutes),
        Column("sampled_min", "Smp", 4, "right", number_cell(",.0f", "m")),
        Column("cpu_pct", "CPU", 4, "right", number_cell(",.0f")),
        Column("gpu_util_pct", "GPU", 4, "right", number_cell(",.0f")),
        Column("gpu_temp_max_c", "°C", 4, "right", number_cell(",.0f")),
        Column("network_status", "Net says", 9, render=_network),
        Column("device_id", "Device", 10),
    ]


def row_key(miss: Miss) -> str:
    """Unique per block and device (a node may carry several devices), whatever the names hold.

    JSON, not the names joined by a separator: a copied cache may hold any character in them,
    and two rows with one key would be refused by the table.
    """
    return json.dumps([miss.who, miss.device_id, iso(miss.at)])


def key_who(key: str) -> str:
    """The node (or unlabelled device) of a :func:`row_key`."""
    return str(json.loads(key)[0])


def row(miss: Miss) -> tuple[object, ...]:
    """The cells of one missed block, raw (times as ISO text, minutes as numbers)."""
    f = miss.figures
    values: dict[str, object] = {
        "at": iso(miss.at),
        "node": miss.who,
        "cause": miss.cause,
        "seen": miss.seen_label,
        "down_min": miss.down_min,
        "sampled_min": miss.sampled_min,
        "cpu_pct": f.cpu_pct if f else None,
        "gpu_util_pct": f.gpu_util_pct if f else None,
        "gpu_temp_max_c": f.gpu_temp_max_c if f else None,
        "network_status": miss.network_status,
        "device_id": miss.device_id,
    }
    return tuple(values[c.key] for c in columns())


def summary_line(found: NodeMisses) -> Text:
    """``gpu-01  19 earned / 5 missed (4 failed, 1 not in block) · down 38 min in 4 of 5 …``."""
    line = text(found.who, "bold", 20)
    line.pad_right(max(0, 11 - line.cell_len))
    line.append(f" {found.earned} earned / {found.missed} missed")
    if found.causes:
        parts = ", ".join(f"{n} {safe_text(cause, 30)}" for cause, n in found.causes.items())
        line.append(f" ({parts})")
    if found.missed:
        line.append("  ·  ")
        line.append(found.summary, style="yellow" if found.seen else "dim")
    return line


def summary(misses: RewardMisses | None) -> Text:
    """The summary lines of the nodes that missed blocks, most misses first."""
    out = Text()
    nodes = sorted(
        (n for n in (misses.nodes.values() if misses else []) if n.missed),
        key=lambda n: (-n.missed, n.who),
    )
    if not nodes:
        return Text("no missed io.net block stored for this period", style="dim")
    for found in nodes[:MAX_SUMMARY_LINES]:
        if out:
            out.append("\n")
        out.append_text(summary_line(found))
    if len(nodes) > MAX_SUMMARY_LINES:
        out.append(f"\n… {len(nodes) - MAX_SUMMARY_LINES} more nodes with missed blocks", "dim")
    return out
