"""``depin-explorer alerts`` and ``export alerts``: the alerts table for scripts and spreadsheets.

``alerts`` exits 1 while any alert fires (as of ``--at``, else now), 0 when none does, and 2 when
it cannot tell (no cache, a bad config or ``--at``): a cron job or a monitoring check can act on
the status alone. explorer/cli.py registers both commands at its end.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from cache.alerts import ALERT_KEYS, Alert, alert_records, firing, history
from cache.db import CacheError, open_reader
from cache.export import to_csv, to_json
from explorer.cli import _merge, as_of, export_format, fail, global_options, load_setup
from sources.text import safe_text

EXIT_FIRING = 1
EXIT_UNKNOWN = 2
EXPORT_LIMIT = 10_000_000
TABLE_COLUMNS = ("state", "severity", "rule", "subject", "started", "resolved", "value", "message")


def _read(
    ctx: click.Context, globals_: dict[str, Any], firing_only: bool, unreadable: int
) -> tuple[list[Alert], list[Alert]]:
    """(shown alerts, firing alerts) as of ``--at``; exit ``unreadable`` without a cache."""
    _merge(ctx, **globals_)
    setup = load_setup(ctx)
    at = as_of(ctx)
    try:
        conn = open_reader(setup.db_path)
        try:
            now_firing = firing(conn, at)
            shown = now_firing if firing_only else history(conn, at, limit=EXPORT_LIMIT)
        finally:
            conn.close()
    except CacheError as exc:
        fail(str(exc), unreadable)
        raise  # unreachable
    return shown, now_firing


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def _cells(alert: Alert) -> list[str]:
    value = "—" if alert.value is None else f"{alert.value:g}"
    # a copied cache is untrusted too: no control bytes reach the terminal
    return [
        alert.state,
        alert.severity,
        safe_text(alert.rule, 60),
        safe_text(alert.subject, 60),
        _when(alert.started_at),
        _when(alert.resolved_at),
        value,
        safe_text(alert.message, 300),
    ]


def table(alerts: list[Alert]) -> str:
    """Aligned columns, a header, one alert per line (the message last, not padded)."""
    rows = [[c.upper() for c in TABLE_COLUMNS], *(_cells(a) for a in alerts)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS) - 1)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    ]
    return "\n".join(lines) + "\n"


@click.command("alerts")
@global_options
@click.option("--firing", "firing_only", is_flag=True, help="Only the alerts firing now.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_context
def alerts(ctx: click.Context, firing_only: bool, fmt: str, **globals_: Any) -> None:
    """Alerts, newest first; exit status 1 while any fires, 0 when none does, 2 unknown."""
    shown, now_firing = _read(ctx, globals_, firing_only, EXIT_UNKNOWN)
    if fmt == "json":
        click.echo(to_json(alert_records(shown)), nl=False)
    elif shown:
        click.echo(table(shown), nl=False)
    else:
        click.echo("no alerts firing" if firing_only else "no alerts")
    sys.exit(EXIT_FIRING if now_firing else 0)


@click.command("alerts")
@global_options
@export_format
@click.pass_context
def export_alerts(ctx: click.Context, fmt: str, **globals_: Any) -> None:
    """Every alert that had fired by --at (else now), newest first, with its state then."""
    shown, _ = _read(ctx, globals_, False, 1)  # as every export: 1 when there is no cache
    records = alert_records(shown)
    click.echo(to_json(records) if fmt == "json" else to_csv(records, ALERT_KEYS), nl=False)
