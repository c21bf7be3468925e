"""Reading io.net device status and rewards "as of time T", like every other cache query.

Rewards are rows (node, network, device, time, amount, token, source reference). "As of T" means
fetched at or before T: a reward for a block at 14:00 fetched at 15:10 is not shown at 15:00.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cache.db import iso, parse_iso
from cache.queries import _bound, _bound_poll_id
from cache.store import DEVICE_FIELDS


@dataclass(frozen=True)
class DeviceRow:
    """A device's most recent status row, with when it was fetched."""

    network: str
    device_id: str
    values: dict[str, object]
    fetched_at: datetime

    def get(self, name: str) -> object:
        """One of :data:`cache.store.DEVICE_FIELDS` (None when not published)."""
        return self.values.get(name)


@dataclass(frozen=True)
class RewardRow:
    """One stored reward."""

    node: str | None
    network: str
    device_id: str
    at: datetime
    amount: float
    token: str
    source: str
    status: str | None
    fetched_at: datetime


def latest_devices(conn: sqlite3.Connection, at: datetime | None = None) -> list[DeviceRow]:
    """Each (network, device) with its newest status row stored at or before ``at``."""
    bound = _bound_poll_id(conn, at)
    cols = ", ".join(f"d.{f}" for f in DEVICE_FIELDS)
    rows = conn.execute(
        f"SELECT d.network, d.device_id, {cols}, p.finished_at FROM "
        "(SELECT network, device_id, MAX(poll_id) AS poll_id FROM devices WHERE poll_id <= ? "
        " GROUP BY network, device_id) latest "
        "JOIN devices d ON d.poll_id = latest.poll_id AND d.network = latest.network "
        "     AND d.device_id = latest.device_id "
        "JOIN polls p ON p.id = d.poll_id ORDER BY d.network, d.device_id",
        (bound,),
    ).fetchall()
    return _device_rows(rows)


def _device_rows(rows: list[Any]) -> list[DeviceRow]:
    return [
        DeviceRow(
            r[0],
            r[1],
            dict(zip(DEVICE_FIELDS, r[2 : 2 + len(DEVICE_FIELDS)], strict=True)),
            parse_iso(r[-1]),
        )
        for r in rows
    ]


def latest_device(
    conn: sqlite3.Connection,
    network: str,
    device_id: str | None,
    node: str,
    at: datetime | None = None,
) -> DeviceRow | None:
    """One node's device on ``network``, its newest status row stored at or before ``at``.

    By the node's ``device_id`` label (any poll: the device index), else by the node name in
    the newest poll that stored devices of ``network`` (a name match needs no index: one poll's
    rows). One device's seeks, where :func:`latest_devices` groups every row ever stored.
    """
    bound = _bound_poll_id(conn, at)
    cols = ", ".join(f"d.{f}" for f in DEVICE_FIELDS)
    select = f"SELECT d.network, d.device_id, {cols}, p.finished_at FROM devices d "
    select += "JOIN polls p ON p.id = d.poll_id "
    if device_id:
        rows = conn.execute(
            select + "WHERE d.network = ? AND d.device_id = ? AND d.poll_id <= ? "
            "ORDER BY d.poll_id DESC LIMIT 1",
            (network, device_id, bound),
        ).fetchall()
        if rows:
            return _device_rows(rows)[0]
    # newest first along the primary key ("+network": not the device index's every row)
    newest = conn.execute(
        "SELECT poll_id FROM devices WHERE +network = ? AND poll_id <= ? "
        "ORDER BY poll_id DESC LIMIT 1",
        (network, bound),
    ).fetchone()
    if newest is None:
        return None
    rows = conn.execute(
        select + "WHERE d.poll_id = ? AND d.network = ? AND d.node = ? "
        "ORDER BY d.device_id LIMIT 1",
        (newest[0], network, node),
    ).fetchall()
    return _device_rows(rows)[0] if rows else None


def fleet_devices(conn: sqlite3.Connection) -> dict[str, str]:
    """device_id → node for every fleet node labelled with an io.net ``device_id``."""
    out: dict[str, str] = {}
    for node, labels in conn.execute(
        "SELECT node, labels FROM nodes WHERE labels LIKE '%\"device_id\"%' ORDER BY node"
    ):
        try:
            parsed = json.loads(labels)
        except ValueError:
            continue
        device_id = parsed.get("device_id") if isinstance(parsed, dict) else None
        if isinstance(device_id, str) and device_id.strip():
            out.setdefault(device_id.strip(), node)
    return out


def known_rewards(conn: sqlite3.Connection, since: datetime) -> set[tuple[str, str]]:
    """(device_id, source) of rewards for times from ``since``: what need not be fetched again."""
    return {
        (r[0], r[1])
        for r in conn.execute("SELECT device_id, source FROM rewards WHERE at >= ?", (iso(since),))
    }


def _row(r: sqlite3.Row | tuple[Any, ...]) -> RewardRow:  # cells typed by the schema
    return RewardRow(
        node=r[0],
        network=r[1],
        device_id=r[2],
        at=parse_iso(r[3]),
        amount=float(r[4]),
        token=r[5],
        source=r[6],
        status=r[7],
        fetched_at=parse_iso(r[8]),
    )


_REWARD_COLS = "node, network, device_id, at, amount, token, source, status, fetched_at"


def reward_rows(
    conn: sqlite3.Connection,
    at: datetime | None = None,
    since: datetime | None = None,
    node: str | None = None,
    device: tuple[str, str] | None = None,
) -> list[RewardRow]:
    """Rewards fetched at or before ``at``, optionally from ``since`` and for one node or device.

    ``device`` is (network, device id): that device's rows only.
    """
    sql = f"SELECT {_REWARD_COLS} FROM rewards WHERE fetched_at <= ?"
    args: list[object] = [_bound(at)]
    if since is not None:
        sql += " AND at >= ?"
        args.append(iso(since))
    if node is not None:
        sql += " AND node = ?"
        args.append(node)
    if device is not None:
        # "+": through the at index when there is a since (one period's rows, stored together),
        # not the primary key's (network, device) (every block the device ever had, scattered)
        sql += (
            " AND +network = ? AND +device_id = ?"
            if since
            else " AND network = ? AND device_id = ?"
        )
        args.extend(device)
    sql += " ORDER BY at, network, device_id"
    return [_row(r) for r in conn.execute(sql, args)]


def rewards_by_node(
    conn: sqlite3.Connection, now: datetime, window: timedelta = timedelta(hours=24)
) -> dict[str, tuple[float, str]]:
    """Each node's rewards for times in [now − window, now], fetched by ``now``: (sum, token).

    A node paid in several tokens shows the one it got most rows of (sums never mix tokens).
    """
    rows = conn.execute(
        "SELECT node, token, SUM(amount), COUNT(*) FROM rewards "
        "WHERE node IS NOT NULL AND at >= ? AND at <= ? AND fetched_at <= ? "
        "GROUP BY node, token ORDER BY COUNT(*)",
        (iso(now - window), iso(now), iso(now)),
    ).fetchall()
    return {node: (float(total), token) for node, token, total, _ in rows}
