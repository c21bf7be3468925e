"""What each alert rule sees in one stored poll: for every subject, breached or not, and why.

Pure SQL over the cache. Each kind reads only the poll just stored (and, for trends, the history
before it), so evaluating after every poll costs in proportion to that poll, never to the whole
history. A subject a poll says nothing about (a node that is down has no GPU temperature) is not
observed at all: its alert neither fires nor resolves on that poll.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from cache.db import SAMPLE_SOURCE, iso
from cache.network_status import DISAGREES, NETWORK_SOURCES, UNKNOWN, network_views, node_statuses
from cache.text import safe_text

MESSAGE_MAX = 800
"""Characters of an alert message kept (a node name and an error message fit)."""


@dataclass(frozen=True)
class Rule:
    """One ``[[alerts.rules]]`` entry, in the cache's own terms (no config classes here)."""

    name: str
    kind: str
    severity: str = "warning"
    for_s: float = 0.0
    """The condition must hold this long (seconds) before the alert fires."""
    resolve_after_s: float = 0.0
    """The condition must be clear this long before a firing alert resolves."""
    threshold: float | None = None
    """Degrees for gpu_temp_above, percent for utilization_below, price_change, devices_drop."""
    scope: str = "node"
    """utilization_below: ``node`` or ``network``."""
    metric: str = "devices"
    """devices_drop: ``devices`` or ``gpus``."""
    direction: str = "any"
    """price_change: ``any``, ``up`` or ``down``."""
    days: float = 7.0
    """devices_drop: the window compared."""
    cycles: int = 3
    """source_failing: failed polls in a row."""
    subjects: tuple[str, ...] = ()
    """Only these nodes, networks, coin ids or sources; empty means all."""


@dataclass(frozen=True)
class Observation:
    """One subject as one poll shows it."""

    subject: str
    breached: bool
    value: float | None
    message: str


def _wanted(rule: Rule, subject: str) -> bool:
    return not rule.subjects or subject in rule.subjects


def _poll_source(conn: sqlite3.Connection, poll_id: int) -> tuple[str, str] | None:
    row = conn.execute("SELECT source, status FROM polls WHERE id = ?", (poll_id,)).fetchone()
    return (row[0], row[1]) if row else None


def _node_rows(conn: sqlite3.Connection, poll_id: int) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT node, up, error, cpu_pct, gpus, gpu_util_pct, gpu_temp_c FROM node_samples "
        "WHERE poll_id = ? ORDER BY node",
        (poll_id,),
    ).fetchall()


def node_down(conn: sqlite3.Connection, rule: Rule, poll_id: int) -> list[Observation]:
    """Each node of the poll: breached while its scrape fails."""
    out = []
    for node, up, error, *_ in _node_rows(conn, poll_id):
        if _wanted(rule, str(node)):
            why = f"{node} is down" + (f": {error}" if error else "") if not up else f"{node} is up"
            out.append(Observation(str(node), not up, None, why))
    return out


def gpu_temp_above(conn: sqlite3.Connection, rule: Rule, poll_id: int) -> list[Observation]:
    """Each up node with a GPU temperature: breached above ``threshold`` °C (the hottest GPU)."""
    limit = float(rule.threshold or 0.0)
    out = []
    for node, up, _, _, _, _, temp in _node_rows(conn, poll_id):
        if up and isinstance(temp, int | float) and _wanted(rule, str(node)):
            message = f"{node} GPU at {temp:.0f} °C (limit {limit:g} °C)"
            out.append(Observation(str(node), temp > limit, float(temp), message))
    return out


def _node_utilization(conn: sqlite3.Connection, rule: Rule, poll_id: int) -> list[Observation]:
    # a GPU node is busy when its GPUs are; a node without GPUs when its CPUs are
    limit = float(rule.threshold or 0.0)
    out = []
    for node, up, _, cpu, gpus, gpu_util, _ in _node_rows(conn, poll_id):
        value, what = (gpu_util, "GPU") if gpus else (cpu, "CPU")
        if up and isinstance(value, int | float) and _wanted(rule, str(node)):
            message = f"{node} {what} utilization {value:.0f} % (below {limit:g} %)"
            out.append(Observation(str(node), value < limit, float(value), message))
    return out


def _network_utilization(conn: sqlite3.Connection, rule: Rule, poll_id: int) -> list[Observation]:
    limit = float(rule.threshold or 0.0)
    rows = conn.execute(
        "SELECT network, value FROM network_stats WHERE poll_id = ? "
        "AND metric = 'gpu_utilization_pct' ORDER BY network",
        (poll_id,),
    ).fetchall()
    return [
        Observation(
            network, value < limit, value, f"{network} GPU utilization {value:.1f} % ({limit:g} %)"
        )
        for network, value in rows
        if _wanted(rule, network)
    ]


def utilization_below(conn: sqlite3.Connection, rule: Rule, poll_id: int) -> list[Observation]:
    """Nodes (GPU, else CPU utilization) or networks (GPU utilization) below ``threshold`` %."""
    if rule.scope == "network":
        return _network_utilization(conn, rule, poll_id)
    return _node_utilization(conn, rule, poll_id)


def price_change(conn: sqlite3.Connection, rule: Rule, poll_id: int) -> list[Observation]:
    """Each coin of a live rankings poll: breached when its 24 h change passes ``threshold`` %."""
    source = _poll_source(conn, poll_id)
    if source is None or source[0] == SAMPLE_SOURCE:  # the sample is history, not news
        return []
    limit = float(rule.threshold or 0.0)
    out = []
    for coin_id, symbol, change in conn.execute(
        "SELECT coin_id, symbol, change_24h_pct FROM market WHERE poll_id = ? "
        "AND change_24h_pct IS NOT NULL ORDER BY coin_id",
        (poll_id,),
    ):
        if not _wanted(rule, coin_id):
            continue
        if rule.direction == "up":
            breached = change >= limit
        elif rule.direction == "down":
            breached = change <= -limit
        else:
            breached = abs(change) >= limit
        name = (symbol or coin_id).upper()
        out.append(Observation(coin_id, breached, change, f"{name} {change:+.1f} % in 24 h"))
    return out


def devices_drop(
    conn: sqlite3.Connection, rule: Rule, poll_id: int, now: datetime
) -> list[Observation]:
    """Each network's device (or GPU) count: breached when ``threshold`` % below ``days`` ago.

    With a shorter history, against the oldest stored value.
    """
    metric = "gpus_total" if rule.metric == "gpus" else "devices_total"
    limit = float(rule.threshold or 0.0)
    start = iso(now - timedelta(days=rule.days))
    out = []
    for network, value in conn.execute(
        "SELECT network, value FROM network_stats WHERE poll_id = ? AND metric = ? "
        "ORDER BY network",
        (poll_id, metric),
    ).fetchall():
        if not _wanted(rule, network):
            continue
        before = "SELECT n.value FROM network_stats n JOIN polls p ON p.id = n.poll_id "
        before += "WHERE n.network = ? AND n.metric = ? AND n.poll_id < ? "
        ref = (
            conn.execute(
                before + "AND p.finished_at <= ? ORDER BY n.poll_id DESC LIMIT 1",
                (network, metric, poll_id, start),
            ).fetchone()
            or conn.execute(
                before + "ORDER BY n.poll_id LIMIT 1", (network, metric, poll_id)
            ).fetchone()
        )
        if ref is None or ref[0] <= 0:
            continue  # nothing to compare with yet
        drop = (ref[0] - value) / ref[0] * 100
        what = "GPUs" if rule.metric == "gpus" else "devices"
        word = "down" if drop >= 0 else "up"
        message = f"{network} {what} {value:,.0f}, {word} {abs(drop):.1f} % from {ref[0]:,.0f}"
        out.append(Observation(network, drop >= limit, round(drop, 3), message))
    return out


def source_failing(conn: sqlite3.Connection, rule: Rule, poll_id: int) -> list[Observation]:
    """The polled source: breached after ``cycles`` failed polls in a row."""
    source = _poll_source(conn, poll_id)
    if source is None or not _wanted(rule, source[0]):
        return []
    name = source[0]
    last_good = conn.execute(
        "SELECT MAX(id) FROM polls WHERE source = ? AND status != 'failed' AND id <= ?",
        (name, poll_id),
    ).fetchone()[0]
    failed = conn.execute(
        "SELECT COUNT(*) FROM polls WHERE source = ? AND status = 'failed' AND id > ? AND id <= ?",
        (name, last_good or 0, poll_id),
    ).fetchone()[0]
    error = conn.execute("SELECT error FROM polls WHERE id = ?", (poll_id,)).fetchone()[0]
    message = f"{name} failed {failed} polls in a row" + (f": {error}" if error else "")
    if not failed:
        message = f"{name} polls again"
    return [Observation(name, failed >= rule.cycles, float(failed), message)]


def _word(up: bool | None) -> str:
    return "up" if up else "down"


def status_disagrees(
    conn: sqlite3.Connection, rule: Rule, poll_id: int, now: datetime
) -> list[Observation]:
    """Each node the network reports on, after a poll of either view: breached while they differ.

    A fleet poll observes the nodes it sampled, a network poll (io.net devices, Akash
    providers) the nodes it read; a node whose state is unknown (no reading, or one side too
    old: cache/network_status.py) is not observed, so it neither fires nor resolves.
    """
    source = _poll_source(conn, poll_id)
    if source is None:
        return []
    views = network_views(conn)
    if source[0] in NETWORK_SOURCES:
        nodes = [n for n, v in views.items() if v.source == source[0]]
    else:
        nodes = [
            n
            for n in views
            if conn.execute(
                "SELECT 1 FROM node_samples WHERE poll_id = ? AND node = ? LIMIT 1", (poll_id, n)
            ).fetchone()
        ]
    out = []
    for node, status in node_statuses(conn, now, nodes=nodes).items():
        net = status.net
        if status.state == UNKNOWN or net is None or not _wanted(rule, node):
            continue
        # the name as the store caps it, so a longer one (a copied cache) keeps what is said
        message = (
            f"{safe_text(node)}: {net.network} says {_word(net.up)}, "
            f"our poll says {_word(status.ours_up)}"
        )
        out.append(Observation(node, status.state in DISAGREES, None, message))
    return out


def observe(conn: sqlite3.Connection, rule: Rule, poll_id: int, now: datetime) -> list[Observation]:
    """What ``rule`` sees in poll ``poll_id`` (empty when the poll says nothing about it).

    Messages are built from cache text (node names, errors, symbols) and go to logs, toasts,
    webhooks and commands as well as the Alerts screen: each is sanitised once here, as a cache
    copied from elsewhere need not have been on the way in.
    """
    return [
        Observation(o.subject, o.breached, o.value, safe_text(o.message, MESSAGE_MAX))
        for o in _observe(conn, rule, poll_id, now)
    ]


def _observe(
    conn: sqlite3.Connection, rule: Rule, poll_id: int, now: datetime
) -> list[Observation]:
    if rule.kind == "node_down":
        return node_down(conn, rule, poll_id)
    if rule.kind == "gpu_temp_above":
        return gpu_temp_above(conn, rule, poll_id)
    if rule.kind == "utilization_below":
        return utilization_below(conn, rule, poll_id)
    if rule.kind == "price_change":
        return price_change(conn, rule, poll_id)
    if rule.kind == "devices_drop":
        return devices_drop(conn, rule, poll_id, now)
    if rule.kind == "source_failing":
        return source_failing(conn, rule, poll_id)
    if rule.kind == "status_disagrees":
        return status_disagrees(conn, rule, poll_id, now)
    raise ValueError(f"unknown alert rule kind {rule.kind!r}")
