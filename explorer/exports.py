"""Files written by `e` (export what a table shows): where they go and how they are written.

Into ``exports/`` of the platform data dir (next to the default cache; `depin-explorer config
path` prints it), not the working directory: a TUI started from anywhere, over SSH, puts them in
one known place. Each file is new: a UTC-timestamped name, created 0600 with O_EXCL in a 0700
directory, so nothing is ever overwritten and nobody else can read an operator's earnings.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from cache.export import to_csv
from explorer.paths import data_dir
from screens.table_export import HIDDEN, TableExport

_STEM = re.compile(r"[^A-Za-z0-9_.-]+")

REWARD_AMOUNT_KEYS = frozenset({"amount"})
"""The money in ``export rewards`` (cache.export.REWARDS_KEYS): what ``--private`` hides."""


def hide_reward_amounts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``export rewards --private``: every amount written as the Rewards screen shows it.

    Missing stays null; missed blocks, their causes and the hour's figures stay (not money).
    """
    return [
        {k: HIDDEN if k in REWARD_AMOUNT_KEYS and v is not None else v for k, v in r.items()}
        for r in records
    ]


def exports_dir() -> Path:
    """``exports/`` in the platform data dir."""
    return data_dir() / "exports"


def export_stem(table: TableExport, moment: datetime) -> str:
    """The file name without ``.csv``: the table's name and the UTC moment."""
    return f"{_STEM.sub('-', table.name).strip('-') or 'table'}-{moment:%Y%m%dT%H%M%SZ}"


def export_body(table: TableExport) -> str:
    """``table`` as CSV, formula cells neutralised."""
    return to_csv(table.records(), list(table.columns))


def write_export(table: TableExport, moment: datetime, directory: Path | None = None) -> Path:
    """Write ``table`` as CSV (formula cells neutralised) to a new file; return its path."""
    directory = directory or exports_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = export_stem(table, moment)
    body = export_body(table)
    for attempt in range(1, 1000):
        path = directory / (f"{stem}.csv" if attempt == 1 else f"{stem}-{attempt}.csv")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue  # two exports in one second: the next free name
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(body)
        return path
    raise FileExistsError(f"{directory}: no free name for {stem}.csv")
