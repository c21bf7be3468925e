"""Alerts: hysteresis from rule observations to firing and resolved alerts, and their reads.

Reads are "as of time T" like every query; the screen, the CLI and exports use them.

A condition must hold for the rule's ``for`` before its alert fires, and be clear for
``resolve_after`` before it resolves; a flap shorter than that only restarts the wait. The wait is
kept in ``alert_pending`` (not in memory), so a collector restarted mid-wait carries on. Each
transition is one row of ``alerts`` (inserted on firing, updated in place on resolving) and is
returned to the caller, who runs the actions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cache.alert_rules import Observation, Rule, observe
from cache.db import iso, parse_iso, write_txn
from cache.queries import _FAR_FUTURE, _bound

ALERT_KEYS = (
    "rule",
    "subject",
    "severity",
    "state",
    "started_at",
    "resolved_at",
    "value",
    "message",
)
"""The keys of an alert in JSON, CSV, the webhook body and a command's stdin, in this order."""
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
_COLUMNS = (
    "id, rule, kind, subject, severity, since, started_at, resolved_at, value, message, poll_id"
)


@dataclass(frozen=True)
class Alert:
    """One alert, with its state as of the moment it was read."""

    id: int
    rule: str
    kind: str
    subject: str
    severity: str
    state: str
    """``firing`` or ``resolved``."""
    since: datetime
    """When the condition was first seen (``for`` before ``started_at`` at the earliest)."""
    started_at: datetime
    """When it fired."""
    resolved_at: datetime | None
    value: float | None
    message: str
    poll_id: int | None = None

    @property
    def firing(self) -> bool:
        """Whether the alert is firing."""
        return self.state == "firing"

    def record(self) -> dict[str, Any]:
        """Exactly :data:`ALERT_KEYS`; times as UTC ISO 8601 text, a missing value as None."""
        value = self.value
        if value is not None and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        return {
            "rule": self.rule,
            "subject": self.subject,
            "severity": self.severity,
            "state": self.state,
            "started_at": iso(self.started_at),
            "resolved_at": iso(self.resolved_at) if self.resolved_at else None,
            "value": value,
            "message": self.message,
        }


def alert_records(alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """The export form of each alert."""
    return [a.record() for a in alerts]


def has_alerts(conn: sqlite3.Connection) -> bool:
    """Whether the file has the alerts table (a cache from before migration 6 has none)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alerts'"
    ).fetchone()
    return row is not None


def _alert(row: Sequence[Any], bound: str) -> Alert:
    resolved = row[7] if row[7] is not None and row[7] <= bound else None
    return Alert(
        id=row[0],
        rule=row[1],
        kind=row[2],
        subject=row[3],
        severity=row[4],
        state="resolved" if resolved else "firing",
        since=parse_iso(row[5]),
        started_at=parse_iso(row[6]),
        resolved_at=parse_iso(resolved) if resolved else None,
        value=row[8],
        message=row[9],
        poll_id=row[10],
    )


def firing(conn: sqlite3.Connection, at: datetime | None = None) -> list[Alert]:
    """Alerts firing at ``at`` (now when None), most severe first, then the oldest."""
    if not has_alerts(conn):
        return []
    bound = _bound(at)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM alerts WHERE started_at <= ? "
        "AND (resolved_at IS NULL OR resolved_at > ?) ORDER BY started_at, id",
        (bound, bound),
    ).fetchall()
    alerts = [_alert(r, bound) for r in rows]
    return sorted(alerts, key=lambda a: SEVERITY_ORDER.get(a.severity, 3))


def history(
    conn: sqlite3.Connection,
    at: datetime | None = None,
    *,
    severity: str | None = None,
    state: str | None = None,
    limit: int = 1000,
) -> list[Alert]:
    """Alerts that had fired by ``at``, newest first, each with its state as of ``at``.

    ``severity`` keeps one severity; ``state`` keeps ``firing`` or ``resolved`` ones (as of
    ``at``: an alert resolved after ``at`` was still firing then).
    """
    if not has_alerts(conn):
        return []
    bound = _bound(at)
    sql = f"SELECT {_COLUMNS} FROM alerts WHERE started_at <= ?"
    args: list[object] = [bound]
    if severity is not None:
        sql += " AND severity = ?"
        args.append(severity)
    if state == "firing":
        sql += " AND (resolved_at IS NULL OR resolved_at > ?)"
        args.append(bound)
    elif state == "resolved":
        sql += " AND resolved_at <= ?"
        args.append(bound)
    sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
    args.append(limit)
    return [_alert(r, bound) for r in conn.execute(sql, args).fetchall()]


# -- evaluation (the writer only) ------------------------------------------------------------


def _open_alert(conn: sqlite3.Connection, rule: str, subject: str) -> Sequence[Any] | None:
    row: Sequence[Any] | None = conn.execute(
        f"SELECT {_COLUMNS} FROM alerts WHERE rule = ? AND subject = ? AND state = 'firing'",
        (rule, subject),
    ).fetchone()
    return row


def _step(
    conn: sqlite3.Connection, rule: Rule, seen: Observation, now: datetime, poll_id: int
) -> Alert | None:
    """One subject through the hysteresis; the transition it makes, if any."""
    current = _open_alert(conn, rule.name, seen.subject)
    toward = "resolved" if current else "firing"
    if seen.breached != (toward == "firing"):  # as it is: any wait in progress starts over
        conn.execute(
            "DELETE FROM alert_pending WHERE rule = ? AND subject = ?", (rule.name, seen.subject)
        )
        return None
    pending = conn.execute(
        "SELECT toward, since FROM alert_pending WHERE rule = ? AND subject = ?",
        (rule.name, seen.subject),
    ).fetchone()
    if pending is None or pending[0] != toward:
        since = now
        conn.execute(
            "INSERT OR REPLACE INTO alert_pending VALUES (?,?,?,?,?,?)",
            (rule.name, seen.subject, toward, iso(now), seen.value, seen.message),
        )
    else:
        since = parse_iso(pending[1])
    wait = rule.for_s if toward == "firing" else rule.resolve_after_s
    if (now - since).total_seconds() < wait:
        return None
    conn.execute(
        "DELETE FROM alert_pending WHERE rule = ? AND subject = ?", (rule.name, seen.subject)
    )
    if current is None:
        cursor = conn.execute(
            "INSERT INTO alerts (rule, kind, subject, severity, state, since, started_at, "
            "resolved_at, value, message, poll_id) VALUES (?,?,?,?,'firing',?,?,NULL,?,?,?)",
            (
                rule.name,
                rule.kind,
                seen.subject,
                rule.severity,
                iso(since),
                iso(now),
                seen.value,
                seen.message,
                poll_id,
            ),
        )
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (cursor.lastrowid,)
        ).fetchone()
        return _alert(row, _FAR_FUTURE)
    return _resolve(conn, current, now)


def _resolve(conn: sqlite3.Connection, current: Sequence[Any], now: datetime) -> Alert:
    conn.execute(
        "UPDATE alerts SET state = 'resolved', resolved_at = ? WHERE id = ?", (iso(now), current[0])
    )
    row = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (current[0],)).fetchone()
    return _alert(row, _FAR_FUTURE)


def evaluate(
    conn: sqlite3.Connection, rules: Sequence[Rule], poll_id: int, now: datetime
) -> list[Alert]:
    """Apply every rule to the poll just stored; store and return the transitions.

    One ``BEGIN IMMEDIATE`` transaction. Alerts of rules no longer configured resolve here too,
    so removing a rule never leaves an alert firing forever.
    """
    names = [r.name for r in rules]
    marks = ",".join("?" * len(names))
    out: list[Alert] = []
    with write_txn(conn):
        for rule in rules:
            for seen in observe(conn, rule, poll_id, now):
                transition = _step(conn, rule, seen, now, poll_id)
                if transition is not None:
                    out.append(transition)
        orphans = conn.execute(
            f"SELECT {_COLUMNS} FROM alerts WHERE state = 'firing' AND rule NOT IN ({marks})",
            names,
        ).fetchall()
        out += [_resolve(conn, row, now) for row in orphans]
        conn.execute(f"DELETE FROM alert_pending WHERE rule NOT IN ({marks})", names)
    return out
