"""Does the network agree a node is up: our own view of each node against the network's.

Our view is the node's latest sample (``node_samples.up`` of its newest poll). The network's view
is the newest status the network published about the node: io.net's device summary for a node
labelled ``device_id`` (source ``ionet-devices``), the Akash console's ``isOnline`` for a node
labelled ``provider`` (source ``akash-providers``); both are stored in ``devices``. Each side has
an age (now − the poll that read it). A side is *too old* when its age passes its limit
(:class:`Limits`): ours after the Fleet's stale time (twice the fleet interval), the network's
after twice its source's interval. Then, or when the network published no status, the state is
``unknown``: nothing is guessed.

States (the text the Fleet shows, which survives NO_COLOR): ``agrees`` (both up or both down),
``net↓`` (the network says down while we see it up), ``net↑ we↓`` (the network says up while we
see it down), ``unknown``. Exports use :data:`EXPORT_STATES` instead.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cache.db import iso, parse_iso
from cache.queries import _bound, _bound_poll_id
from cache.rollup import _first_poll_id

AGREES = "agrees"
NET_DOWN = "net↓"
"""The network says down while our latest poll sees the node up."""
NET_UP = "net↑ we↓"
"""The network says up while our latest poll sees the node down."""
UNKNOWN = "unknown"
DISAGREES = frozenset({NET_DOWN, NET_UP})
EXPORT_STATES = {
    AGREES: "agrees",
    NET_DOWN: "network_down",
    NET_UP: "network_up",
    UNKNOWN: "unknown",
}
"""The state as ``export fleet`` writes it (``net_status``)."""

IONET_SOURCE = "ionet-devices"
AKASH_SOURCE = "akash-providers"
NETWORK_SOURCES = {IONET_SOURCE: ("io.net", "device_id"), AKASH_SOURCE: ("akash", "provider")}
"""Poll source → (the ``devices.network`` it stores, the node label naming the device)."""
LABELS = tuple(label for _, label in NETWORK_SOURCES.values())
NODE_KINDS = ("exporter", "promql", "local")
"""The order our own views of one node are preferred in when it is seen several ways."""

_UP_WORDS = frozenset({"up", "online", "active", "running", "true"})
_DOWN_WORDS = frozenset({"down", "offline", "inactive", "false"})


@dataclass(frozen=True)
class Limits:
    """How old (seconds) each side's latest reading may be before the state is ``unknown``."""

    ours_s: float = 300.0
    """Our view: the Fleet's stale time (twice the fleet interval; 2 × 150 s by default)."""
    network_s: float = 1800.0
    """The network's view: twice the device source's interval (io.net devices: 2 × 300 s, at
    least 3 s per device; Akash providers: 2 × 300 s), with room for a slow cycle."""


MIN_NETWORK_AGE = 600.0
"""Seconds: the network's reading is never called too old sooner than this."""


def network_limit(interval: float) -> float:
    """How old the network's reading may be: twice its source's interval, at least 10 min."""
    return max(2 * interval, MIN_NETWORK_AGE)


@dataclass(frozen=True)
class NetReading:
    """The newest status the network published about one node."""

    network: str
    """``io.net`` or ``akash``."""
    device_id: str
    """The io.net device id or the Akash provider address."""
    up: bool | None
    """None when the network published no status we can read."""
    at: datetime
    """When it was read (the poll's finish time)."""
    source: str
    """The poll source (``ionet-devices``, ``akash-providers``)."""


@dataclass(frozen=True)
class NodeNetStatus:
    """One node, both views and what they say together."""

    node: str
    state: str
    ours_up: bool | None
    ours_at: datetime | None
    net: NetReading | None

    def ages(self, now: datetime) -> tuple[float | None, float | None]:
        """Seconds since our reading and since the network's (None when there is none)."""
        ours = (now - self.ours_at).total_seconds() if self.ours_at else None
        net = (now - self.net.at).total_seconds() if self.net else None
        return ours, net


def status_up(text: object) -> bool | None:
    """A published status as up (True) or down (False); anything else is not a reading."""
    if not isinstance(text, str):
        return None
    word = text.strip().lower()
    if word in _UP_WORDS:
        return True
    if word in _DOWN_WORDS:
        return False
    return None


def classify(
    ours_up: bool | None,
    ours_age: float | None,
    net_up: bool | None,
    net_age: float | None,
    limits: Limits = Limits(),
) -> str:
    """The state of one node from both views and their ages (seconds).

    ``unknown`` when either side has no reading or is older than its limit.
    """
    if ours_up is None or ours_age is None or ours_age > limits.ours_s:
        return UNKNOWN
    if net_up is None or net_age is None or net_age > limits.network_s:
        return UNKNOWN
    if ours_up == net_up:
        return AGREES
    return NET_DOWN if ours_up else NET_UP


def _labels(raw: object) -> dict[str, object]:
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _label_nodes(conn: sqlite3.Connection, label: str) -> dict[str, list[str]]:
    """Each value of ``label`` with its nodes (only nodes whose labels mention the key are read)."""
    out: dict[str, list[str]] = {}
    for node, raw in conn.execute(
        "SELECT DISTINCT node, labels FROM nodes WHERE labels LIKE ? ORDER BY node",
        (f'%"{label}"%',),
    ):
        value = _labels(raw).get(label)
        if isinstance(value, str) and value.strip():
            nodes = out.setdefault(value.strip(), [])
            if node not in nodes:
                nodes.append(node)
    return out


def _last_status(
    conn: sqlite3.Connection, network: str, device_id: str, bound: int
) -> tuple[str, str] | None:
    """(status, finished_at) of the device's newest row with a status, up to poll ``bound``."""
    row = conn.execute(
        "SELECT d.status, p.finished_at FROM devices d JOIN polls p ON p.id = d.poll_id "
        "WHERE d.network = ? AND d.device_id = ? AND d.poll_id <= ? AND d.status IS NOT NULL "
        "ORDER BY d.poll_id DESC LIMIT 1",
        (network, device_id, bound),
    ).fetchone()
    return (row[0], row[1]) if row else None


def network_views(conn: sqlite3.Connection, at: datetime | None = None) -> dict[str, NetReading]:
    """Each node with the network's newest reading about it, as of ``at``.

    Reads only the devices the newest good poll of each network source listed (a handful per
    node labelled with a device id or provider, never the whole fleet); a device whose status
    that poll could not read falls back to its newest stored status, with that reading's age.
    """
    out: dict[str, NetReading] = {}
    bound = _bound_poll_id(conn, at)
    for source, (network, label) in NETWORK_SOURCES.items():
        poll = conn.execute(
            "SELECT id FROM polls WHERE source = ? AND status != 'failed' AND finished_at <= ? "
            "AND id <= ? ORDER BY finished_at DESC, id DESC LIMIT 1",
            (source, _bound(at), bound),
        ).fetchone()
        if poll is None:
            continue
        rows = conn.execute(
            "SELECT d.device_id, d.node, d.status, p.finished_at FROM devices d "
            "JOIN polls p ON p.id = d.poll_id WHERE d.poll_id = ? AND d.network = ?",
            (poll[0], network),
        ).fetchall()
        if not rows:
            continue
        # an Akash provider is usually a cluster: every node labelled with it shares its state
        by_label = _label_nodes(conn, label) if source == AKASH_SOURCE else {}
        for device_id, node, status, finished in rows:
            if status is None:
                last = _last_status(conn, network, device_id, bound)
                if last is not None:
                    status, finished = last
            reading = NetReading(network, device_id, status_up(status), parse_iso(finished), source)
            for name in {*by_label.get(device_id, ()), *([node] if node else [])}:
                out.setdefault(name, reading)
    return out


def _our_latest(conn: sqlite3.Connection, node: str, bound: int) -> tuple[bool, datetime] | None:
    """The node's newest sample (any way it is seen) up to poll ``bound``: (up, when)."""
    best: tuple[int, bool, str] | None = None
    for (kind,) in conn.execute("SELECT source_kind FROM nodes WHERE node = ?", (node,)):
        row = conn.execute(
            "SELECT s.poll_id, s.up, p.finished_at FROM node_samples s "
            "JOIN polls p ON p.id = s.poll_id WHERE s.node = ? AND s.source_kind = ? "
            "AND s.poll_id <= ? ORDER BY s.poll_id DESC LIMIT 1",
            (node, kind, bound),
        ).fetchone()
        if row is not None and (best is None or row[0] > best[0]):
            best = (row[0], bool(row[1]), row[2])
    return (best[1], parse_iso(best[2])) if best else None


def node_statuses(
    conn: sqlite3.Connection,
    now: datetime,
    at: datetime | None = None,
    limits: Limits = Limits(),
    nodes: Iterable[str] | None = None,
) -> dict[str, NodeNetStatus]:
    """Every node the network reports on (or only ``nodes``): both views and the state.

    ``now`` is the moment ages are measured from (``at`` itself with time travel).
    """
    views = network_views(conn, at)
    wanted = views.keys() if nodes is None else [n for n in nodes if n in views]
    bound = _bound_poll_id(conn, at)
    out: dict[str, NodeNetStatus] = {}
    for node in sorted(wanted):
        net = views[node]
        ours = _our_latest(conn, node, bound)
        ours_up, ours_at = ours if ours else (None, None)
        state = classify(
            ours_up,
            (now - ours_at).total_seconds() if ours_at else None,
            net.up,
            (now - net.at).total_seconds(),
            limits,
        )
        out[node] = NodeNetStatus(node, state, ours_up, ours_at, net)
    return out


# -- timelines (the Node screen) ---------------------------------------------------------------

Timeline = list[tuple[datetime, bool | None]]
"""(moment, up) points, oldest first; None where a reading said nothing we can read."""


@dataclass(frozen=True)
class StatusTimelines:
    """Both views of one node over a range, for drawing side by side."""

    ours: Timeline
    """Our polls of the node: up or down at each poll's finish time."""
    network: Timeline
    """The network's readings: up, down or None (no readable status) at each poll of it."""
    network_name: str | None = None
    """``io.net`` or ``akash``; None when the node carries no device id or provider label."""
    source_kind: str | None = None
    """Which of our ways of seeing the node ``ours`` follows (exporter first)."""


def status_timelines(
    conn: sqlite3.Connection,
    node: str,
    start: datetime,
    end: datetime,
    at: datetime | None = None,
    source_kind: str | None = None,
) -> StatusTimelines:
    """Both views of ``node`` over ``[start, end]`` (poll finish times), as stored by ``at``.

    Ours comes from the raw samples (``node_samples``) of ``source_kind`` when the node is seen
    that way, else of its preferred way (exporter, then promql, then local); ranges older than
    raw retention come back empty, not guessed from rollups. The network's comes from ``devices``
    rows of the node's ``device_id`` (io.net) or ``provider`` (Akash) label. ``at`` (time travel)
    leaves out every poll stored after it, as every "as of T" read does.
    """
    low, high = iso(start), iso(end)
    # poll ids grow with time: each node's (device's) index range from near ``start`` up to T
    first, bound = _first_poll_id(conn, start), _bound_poll_id(conn, at)
    kinds: dict[str, dict[str, object]] = {
        kind: _labels(raw)
        for kind, raw in conn.execute(
            "SELECT source_kind, labels FROM nodes WHERE node = ?", (node,)
        )
    }
    preferred = (source_kind,) if source_kind else ()
    kind = next((k for k in (*preferred, *NODE_KINDS, *sorted(kinds)) if k in kinds), None)
    ours: Timeline = []
    if kind is not None:
        ours = [
            (parse_iso(finished), bool(up))
            for up, finished in conn.execute(
                "SELECT s.up, p.finished_at FROM node_samples s JOIN polls p ON p.id = s.poll_id "
                "WHERE s.node = ? AND s.source_kind = ? AND s.poll_id BETWEEN ? AND ? "
                "AND p.finished_at BETWEEN ? AND ? ORDER BY p.finished_at, s.poll_id",
                (node, kind, first, bound, low, high),
            )
        ]
    network: Timeline = []
    network_name = None
    labels: dict[str, object] = {}
    for found in kinds.values():
        labels = {**found, **labels}
    for source, (name, label) in NETWORK_SOURCES.items():
        device_id = labels.get(label)
        if not isinstance(device_id, str) or not device_id.strip():
            continue
        network_name = name
        network = [
            (parse_iso(finished), status_up(status))
            for status, finished in conn.execute(
                "SELECT d.status, p.finished_at FROM devices d JOIN polls p ON p.id = d.poll_id "
                "WHERE d.network = ? AND d.device_id = ? AND d.poll_id BETWEEN ? AND ? "
                "AND p.source = ? AND p.finished_at BETWEEN ? AND ? "
                "ORDER BY p.finished_at, d.poll_id",
                (name, device_id.strip(), first, bound, source, low, high),
            )
        ]
        break  # io.net first: a node is one device; a provider label beside it is the cluster
    return StatusTimelines(ours, network, network_name, kind)


def fleet_labels(conn: sqlite3.Connection, label: str) -> dict[str, str]:
    """Each value of ``label`` with the first node (by name) carrying it: what a poll asks about."""
    return {value: nodes[0] for value, nodes in _label_nodes(conn, label).items()}
