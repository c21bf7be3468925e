"""Reward misses explained: each io.net block a device did not earn, beside our own history.

For a period ``[since, until]`` (``until`` is T, or now), the stored io.net rewards of blocks in
the period, fetched by ``until`` (as :mod:`cache.economics` reads them). A block is **missed**
when it paid nothing (``amount`` 0). Its cause as io.net says it comes from the stored
``status`` (:func:`io_cause`):

- ``failed``: the block worker detail said ``Failed`` (io.net: the PoW/PoTL checks not met);
- ``not nominated`` / ``slashed``: a status naming them (io.net documents only ``Success`` and
  ``Failed`` for a worker; other words are matched so that a new one is not called "failed");
- ``not in block``: the block worker endpoint answered 404, stored as 0 with status
  ``not in block``: the device was not a worker of that block (io.net does not say why, so it is
  not called "not nominated");
- ``paid 0``: io.net said ``Success`` (or nothing) and paid 0;
- any other status, as stored.

For that hour, what our history says (:mod:`cache.reward_hours`: down minutes, mean CPU and GPU
utilization, hottest GPU) and the network's own status for the device: the ``devices`` rows of
polls finished in that hour. Then one cause we can see (:func:`seen_cause`), the first that
holds: down at least a minute; the network says down; a GPU at or above :data:`HOT_GPU_C`;
GPUs idle (mean under :data:`IDLE_GPU_PCT`); no samples at all; samples for under
:data:`PARTLY_SAMPLED_S` of the hour; else none ("no cause in our history"). A device no fleet
node is labelled with has no samples to look at. Nothing is guessed: what is not stored is
"no samples" or missing.

The exporter's network error counters are not stored, so no cause is "network errors".
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from cache.db import iso, parse_iso
from cache.economics import MAX_SPAN
from cache.queries import _bound_poll_id
from cache.reward_hours import HOUR, HourFigures, hour_figures, poll_ids
from cache.text import safe_text

NETWORK = "io.net"
HOT_GPU_C = 85.0
"""A GPU this hot (°C) may throttle or fail a check: most GPUs slow down from about 83-87 °C."""
IDLE_GPU_PCT = 10.0
"""Mean GPU utilization below this (%) over the hour: the GPUs were idle."""
DOWN_MIN_S = 60.0
"""Down for at least this long (s) in the hour counts as down."""
PARTLY_SAMPLED_S = 3000.0
"""Samples standing for less of the hour than this (s, 50 min): part of the hour is unseen."""
DOWN_STATUSES = frozenset({"down", "offline", "inactive"})
"""io.net device statuses that mean the network sees the device down (it publishes up/down)."""

DEVICE_POLLS = "source = 'ionet-devices'"
"""The polls that store io.net device rows (polls.source)."""

MARK_CAUSES = {
    "failed": "failed",
    "not nominated": "not nom.",
    "slashed": "slashed",
    "not in block": "not in blk",
    "paid 0": "paid 0",
}
"""io.net's causes as a chart mark names them (a mark label has 10 cells)."""

SEEN_ORDER = ("down", "network_down", "hot", "idle", "no_samples", "partly_sampled", "no_node")
"""Causes we can see, in the order they are tried for a block and rank ties in a summary."""


@dataclass(frozen=True)
class Miss:
    """One missed block of one device, with what io.net and our history say about its hour."""

    who: str
    """The fleet node, else the device id (as the Rewards screen lists it)."""
    node: str | None
    device_id: str
    at: datetime
    """The block's start (UTC); the block is the hour from there."""
    status: str | None
    cause: str
    """As io.net says it (:func:`io_cause`)."""
    figures: HourFigures | None
    """Our samples of that hour; None: no sample stands for any of it (or no fleet node)."""
    network_status: str | None
    """The device's statuses in the hour's ``devices`` rows ("up", "down", "up/down")."""
    seen: str | None
    """The cause we can see (a key of :data:`SEEN_ORDER`); None: no cause in our history."""
    seen_label: str

    @property
    def short(self) -> str:
        """``"failed: down 38 min"``: io.net's cause and ours, for a chart mark or a cell."""
        return f"{self.cause}: {self.seen_label}"

    @property
    def mark(self) -> str:
        """io.net's cause in at most 10 cells (``"failed"``, ``"not in blk"``); another as stored.

        For a chart's time axis: the node's summary line says the rest. Sanitised here: the
        chart reads its drawing back as ANSI text, so an escape in a stored status would be
        obeyed there (a colour, an OSC 8 link), not shown.
        """
        return safe_text(MARK_CAUSES.get(self.cause, self.cause), 40)

    @property
    def down_min(self) -> float | None:
        """Minutes of the hour that down samples stand for (None: no samples)."""
        return self.figures.down_s / 60 if self.figures else None

    @property
    def sampled_min(self) -> float | None:
        """Minutes of the hour some sample stands for (None: no samples)."""
        return self.figures.sampled_s / 60 if self.figures else None


@dataclass(frozen=True)
class NodeMisses:
    """A node's (or unlabelled device's) blocks over the period: earned, missed, why."""

    who: str
    earned: int
    missed: int
    causes: dict[str, int]
    """io.net's causes of the missed blocks, most frequent first."""
    seen: str | None
    """The most common cause we can see (a key of :data:`SEEN_ORDER`); None: none seen."""
    seen_count: int
    summary: str
    """``"down 38 min in 5 of 7 missed blocks"``, or ``"no cause in our history"``."""


@dataclass(frozen=True)
class RewardMisses:
    """The period's missed blocks (oldest first) and a summary per node."""

    since: datetime
    until: datetime
    misses: list[Miss]
    nodes: dict[str, NodeMisses] = field(default_factory=dict)


def io_cause(status: str | None, amount: float) -> str | None:
    """io.net's cause of a block that paid ``amount`` with stored ``status``; None: earned."""
    if amount > 0:
        return None
    word = (status or "").strip().casefold()
    if word == "not in block":
        return "not in block"
    if "nominat" in word:
        return "not nominated"
    if "slash" in word:
        return "slashed"
    if word in ("failed", "failure", "fail"):
        return "failed"
    if word in ("", "success", "succeeded"):
        return "paid 0"
    return status.strip() if status else "paid 0"


def _network_status(statuses: list[str]) -> str | None:
    seen: list[str] = []
    for status in statuses:
        if status not in seen:
            seen.append(status)
    return "/".join(seen) if seen else None


def seen_cause(
    figures: HourFigures | None, network_status: str | None, has_node: bool
) -> tuple[str | None, str]:
    """The first cause our history shows for the hour, and its label."""
    if figures is not None and figures.down_s >= DOWN_MIN_S:
        return "down", f"down {figures.down_s / 60:.0f} min"
    statuses = (network_status or "").split("/")
    down = [s for s in statuses if s.casefold() in DOWN_STATUSES]
    if down:
        return "network_down", f"network says {down[0]}"
    if not has_node:
        return "no_node", "no fleet node: no samples"
    if figures is None:
        return "no_samples", "no samples"
    if figures.gpu_temp_max_c is not None and figures.gpu_temp_max_c >= HOT_GPU_C:
        return "hot", f"GPU {figures.gpu_temp_max_c:.0f} °C"
    if figures.gpu_util_pct is not None and figures.gpu_util_pct < IDLE_GPU_PCT:
        return "idle", f"GPU idle ({figures.gpu_util_pct:.0f} %)"
    if figures.sampled_s < PARTLY_SAMPLED_S:
        return "partly_sampled", f"samples for {figures.sampled_s / 60:.0f} of 60 min"
    return None, "no cause in our history"


def _summary(misses: list[Miss]) -> tuple[str | None, int, str]:
    counts = Counter(m.seen for m in misses if m.seen is not None)
    if not counts:
        return None, 0, "no cause in our history"
    seen = max(counts, key=lambda k: (counts[k], -SEEN_ORDER.index(k)))
    n, total = counts[seen], len(misses)
    of = f"{n} of {total} missed block{'s' if total != 1 else ''}"
    chosen = [m for m in misses if m.seen == seen]
    if seen == "down":
        minutes = sum(m.figures.down_s for m in chosen if m.figures) / 60
        return seen, n, f"down {minutes:.0f} min in {of}"
    if seen == "hot":
        hottest = max(m.figures.gpu_temp_max_c or 0.0 for m in chosen if m.figures)
        return seen, n, f"GPU hot (up to {hottest:.0f} °C) in {of}"
    words = {
        "network_down": "network says down",
        "idle": "GPU idle",
        "no_samples": "no samples",
        "partly_sampled": "samples for part of the hour",
        "no_node": "no fleet node (no samples)",
    }
    return seen, n, f"{words[seen]} in {of}"


_STATUSES = (
    # CROSS JOIN: each request (device, poll ids, hour) an index range of that device's rows
    "SELECT j.key, d.status FROM json_each(:q) j CROSS JOIN devices d "
    "ON d.network = :network AND d.device_id = json_extract(j.value, '$[0]') "
    "AND d.poll_id >= json_extract(j.value, '$[1]') AND d.poll_id <= json_extract(j.value, '$[2]') "
    "JOIN polls p ON p.id = d.poll_id AND p.finished_at >= json_extract(j.value, '$[3]') "
    "AND p.finished_at < json_extract(j.value, '$[4]') WHERE d.status IS NOT NULL "
    "ORDER BY j.key, p.finished_at"
)


def _network_statuses(
    conn: sqlite3.Connection, wanted: set[tuple[str, datetime]], bound: int
) -> dict[tuple[str, datetime], str | None]:
    """(device id, hour) → the device's statuses in the devices rows of polls in that hour."""
    ids: dict[datetime, tuple[int, int] | None] = {}
    keys: list[tuple[str, datetime]] = []
    requests: list[tuple[str, int, int, str, str]] = []
    for device_id, hour in sorted(wanted):
        if hour not in ids:
            ids[hour] = poll_ids(conn, hour, hour + HOUR, bound, DEVICE_POLLS)
        span_ids = ids[hour]
        if span_ids is not None:
            keys.append((device_id, hour))
            requests.append((device_id, *span_ids, iso(hour), iso(hour + HOUR)))
    found: dict[tuple[str, datetime], list[str]] = {}
    if requests:
        params = {"q": json.dumps(requests), "network": NETWORK}
        for index, status in conn.execute(_STATUSES, params):
            found.setdefault(keys[int(index)], []).append(str(status))
    return {key: _network_status(found.get(key, [])) for key in wanted}


def reward_misses(
    conn: sqlite3.Connection,
    since: datetime,
    until: datetime,
    node: str | None = None,
    span: float = MAX_SPAN,
    at: datetime | None = None,
) -> RewardMisses:
    """Every io.net block in ``[since, until]`` not earned, as stored by ``at``, explained.

    ``at`` is the "as of" moment (default ``until``: the period ends at T). ``node`` limits it
    to one fleet node's devices. ``span``: the longest time one sample may stand for (as
    economics has it).
    """
    as_of = until if at is None else at
    # "+network": not the primary key's network prefix (every io.net row) but the period's
    # range of the at index; SQLite picks the former without ANALYZE statistics
    sql = (
        "SELECT COALESCE(node, device_id), node, device_id, at, amount, status FROM rewards "
        "WHERE +network = ? AND at >= ? AND at <= ? AND fetched_at <= ?"
    )
    args: list[object] = [NETWORK, iso(since), iso(until), iso(as_of)]
    if node is not None:
        sql += " AND node = ?"
        args.append(node)
    rows = conn.execute(sql + " ORDER BY at, device_id", args).fetchall()
    earned: Counter[str] = Counter()
    missed: list[tuple[str, str | None, str, datetime, str | None, str]] = []
    for who, owner, device_id, start, amount, status in rows:
        cause = io_cause(status, float(amount))
        if cause is None:
            earned[who] += 1
        else:
            missed.append((who, owner, device_id, parse_iso(start), status, cause))
    bound = _bound_poll_id(conn, as_of)
    figures = hour_figures(
        conn, ((o, h) for _, o, _, h, _, _ in missed if o is not None), as_of, bound, span
    )
    statuses = _network_statuses(conn, {(d, h) for _, _, d, h, _, _ in missed}, bound)
    misses: list[Miss] = []
    for who, owner, device_id, start, status, cause in missed:
        found = figures.get((owner, start)) if owner is not None else None
        network = statuses.get((device_id, start))
        seen, label = seen_cause(found, network, owner is not None)
        misses.append(
            Miss(who, owner, device_id, start, status, cause, found, network, seen, label)
        )
    by_who: dict[str, list[Miss]] = {}
    for miss in misses:
        by_who.setdefault(miss.who, []).append(miss)
    nodes: dict[str, NodeMisses] = {}
    for who in sorted(set(earned) | set(by_who)):
        mine = by_who.get(who, [])
        causes = Counter(m.cause for m in mine)
        seen, count, summary = _summary(mine) if mine else (None, 0, "no missed block")
        nodes[who] = NodeMisses(
            who, earned[who], len(mine), dict(causes.most_common()), seen, count, summary
        )
    return RewardMisses(since, until, misses, nodes)


def missed_blocks(
    conn: sqlite3.Connection,
    node: str,
    since: datetime,
    until: datetime,
    at: datetime | None = None,
    span: float = MAX_SPAN,
) -> list[tuple[datetime, str]]:
    """One node's missed blocks starting in ``[since, until]``, as stored by ``at``, oldest first.

    Each is (the block's start, UTC; io.net's cause as :attr:`Miss.mark` says it): for a
    chart's time axis. ``at`` is the time-travel moment or now (default ``until``).
    """
    found = reward_misses(conn, since, until, node=node, span=span, at=at)
    return [(m.at, m.mark) for m in found.misses]
