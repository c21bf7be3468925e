"""What changed between two times: the cache as of ``since`` against the cache as of ``until``.

Built only from the "as of T" queries (cache.queries, cache.rewards), so nothing stored after
``until`` is ever used, and time travel and copied databases need no special case.

Both ends are snapshots: a node that went down and came back up between them counts as
unchanged. The rules, per (node, source kind):

- **down** / **up**: present at both ends, with a newer sample at ``until`` whose ``up`` differs.
- **new**: no sample at ``since``, one at ``until``.
- **gone**: a sample at ``since`` and no newer one by ``until`` (or none at all: pruned),
  while its source kind did store newer samples of other nodes in between. A collector that
  scrapes a target always stores a sample, a down one when the target does not answer, so a
  node with no new sample while its siblings got one was dropped from the targets. When the
  whole source kind stored nothing in between (collector stopped, app closed) nothing can be
  said, and such nodes count as unchanged rather than gone.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cache.queries import CoinRow, NodeRow, PollInfo, latest_fleet, latest_metrics, latest_rankings
from cache.rewards import reward_rows

NodeChangeKind = Literal["down", "gone", "up", "new"]
NODE_CHANGE_ORDER: tuple[NodeChangeKind, ...] = ("down", "gone", "up", "new")
"""Trouble first: the order :attr:`Changes.nodes` is sorted in."""


@dataclass(frozen=True)
class NodeChange:
    """One (node, source kind) whose state differs between the two times."""

    node: str
    source_kind: str
    network: str | None
    kind: NodeChangeKind
    up: bool
    """Its state at ``until`` (for "gone": its last known state)."""
    error: str | None
    """The last sample's error (why it is down), if any."""
    last_seen: datetime
    """When its newest sample as of ``until`` was stored."""


@dataclass(frozen=True)
class CoinMove:
    """One project across two rankings snapshots; one side is None for new or dropped ones."""

    coin_id: str
    symbol: str | None
    name: str
    rank_before: int | None
    rank_after: int | None
    price_before: float | None
    price_after: float | None

    @property
    def rank_move(self) -> int | None:
        """Places climbed (positive) or lost (negative); None without both ranks."""
        if self.rank_before is None or self.rank_after is None:
            return None
        return self.rank_before - self.rank_after

    @property
    def price_change_pct(self) -> float | None:
        """Price change in percent; None without both prices or from a zero price."""
        if self.price_before is None or self.price_after is None or self.price_before == 0:
            return None
        return (self.price_after - self.price_before) / self.price_before * 100


@dataclass(frozen=True)
class RankingChanges:
    """Two rankings snapshots compared; empty when they cannot be compared."""

    before: PollInfo | None
    after: PollInfo | None
    moves: tuple[CoinMove, ...]
    """Projects in both whose rank or price changed, biggest rank move first, then price move."""
    new: tuple[CoinMove, ...]
    dropped: tuple[CoinMove, ...]

    @property
    def comparable(self) -> bool:
        """Both ends exist and are the same kind (never the 2024 sample against live data)."""
        return (
            self.before is not None
            and self.after is not None
            and self.before.is_sample == self.after.is_sample
        )


@dataclass(frozen=True)
class MetricDelta:
    """One (network, metric) stored at both times."""

    network: str
    metric: str
    unit: str
    before: float
    after: float
    before_at: datetime
    after_at: datetime

    @property
    def delta(self) -> float:
        """The value at ``until`` minus the value at ``since``."""
        return self.after - self.before

    @property
    def pct(self) -> float | None:
        """The change in percent of ``before``; None from zero."""
        return None if self.before == 0 else self.delta / abs(self.before) * 100


@dataclass(frozen=True)
class RewardTotal:
    """Rewards with block times in (since, until] for one node (or unlabelled device) and token."""

    node: str | None
    device_id: str | None
    """Set only for rewards of a device no fleet node is labelled with (``node`` is None)."""
    network: str
    token: str
    amount: float
    count: int
    """Reward rows (blocks), including those that paid nothing."""
    paid: int
    """Rows with an amount above zero."""


@dataclass(frozen=True)
class Changes:
    """Everything that changed between ``since`` and ``until`` (None: now)."""

    since: datetime
    until: datetime | None
    nodes: tuple[NodeChange, ...]
    fleet_before: int
    fleet_after: int
    """(node, source kind) pairs known at each end."""
    rankings: RankingChanges
    metrics: tuple[MetricDelta, ...]
    """Every (network, metric) present at both ends, changed or not, by network and metric."""
    rewards: tuple[RewardTotal, ...]

    @property
    def metrics_changed(self) -> tuple[MetricDelta, ...]:
        """Only the figures whose value moved."""
        return tuple(m for m in self.metrics if m.delta != 0)


def changes(conn: sqlite3.Connection, since: datetime, until: datetime | None = None) -> Changes:
    """Compare the cache as of ``since`` with the cache as of ``until`` (None: now)."""
    if until is not None and since > until:
        raise ValueError("the start of a comparison must not be after its end")
    before_fleet = {(r.node, r.source_kind): r for r in latest_fleet(conn, since)}
    after_fleet = {(r.node, r.source_kind): r for r in latest_fleet(conn, until)}
    return Changes(
        since=since,
        until=until,
        nodes=node_changes(before_fleet, after_fleet),
        fleet_before=len(before_fleet),
        fleet_after=len(after_fleet),
        rankings=ranking_changes(conn, since, until),
        metrics=metric_deltas(conn, since, until),
        rewards=reward_totals(conn, since, until),
    )


def node_changes(
    before: dict[tuple[str, str], NodeRow], after: dict[tuple[str, str], NodeRow]
) -> tuple[NodeChange, ...]:
    """The down/gone/up/new rules of this module's docstring, trouble first, then by name."""

    def fresh(key: tuple[str, str]) -> bool:
        # a newer sample than the one at `since`: same fetch time means the same sample
        old = before.get(key)
        return key in after and (old is None or after[key].fetched_at != old.fetched_at)

    active_kinds = {key[1] for key in after if fresh(key)}
    out: list[NodeChange] = []
    for key, row in after.items():
        if key not in before:
            out.append(_change(row, "new"))
        elif fresh(key) and row.up != before[key].up:
            out.append(_change(row, "up" if row.up else "down"))
    for key, row in before.items():
        if not fresh(key) and key[1] in active_kinds:
            out.append(_change(after.get(key, row), "gone"))
    out.sort(key=lambda c: (NODE_CHANGE_ORDER.index(c.kind), c.node, c.source_kind))
    return tuple(out)


def _change(row: NodeRow, kind: NodeChangeKind) -> NodeChange:
    return NodeChange(
        row.node, row.source_kind, row.network, kind, row.up, row.error, row.fetched_at
    )


def _move(before: CoinRow | None, after: CoinRow | None) -> CoinMove:
    either = after or before
    assert either is not None
    return CoinMove(
        coin_id=either.coin_id,
        symbol=either.symbol,
        name=either.name,
        rank_before=before.rank if before else None,
        rank_after=after.rank if after else None,
        price_before=before.price_usd if before else None,
        price_after=after.price_usd if after else None,
    )


def ranking_changes(
    conn: sqlite3.Connection, since: datetime, until: datetime | None
) -> RankingChanges:
    """Rank and price moves between the rankings snapshots shown at the two times."""
    old = latest_rankings(conn, since)
    new = latest_rankings(conn, until)
    empty = RankingChanges(old.poll if old else None, new.poll if new else None, (), (), ())
    if old is None or new is None or not empty.comparable or old.poll.id == new.poll.id:
        return empty
    before = {c.coin_id: c for c in old.coins}
    after = {c.coin_id: c for c in new.coins}
    moves = [
        _move(before[k], coin)
        for k, coin in after.items()
        if k in before and (before[k].rank != coin.rank or before[k].price_usd != coin.price_usd)
    ]
    moves.sort(
        key=lambda m: (-abs(m.rank_move or 0), -abs(m.price_change_pct or 0.0), m.name, m.coin_id)
    )

    def by_rank(m: CoinMove) -> tuple[bool, int, str]:
        rank = m.rank_after if m.rank_after is not None else m.rank_before
        return (rank is None, rank or 0, m.name)

    added = sorted((_move(None, c) for k, c in after.items() if k not in before), key=by_rank)
    dropped = sorted((_move(c, None) for k, c in before.items() if k not in after), key=by_rank)
    return RankingChanges(empty.before, empty.after, tuple(moves), tuple(added), tuple(dropped))


def metric_deltas(
    conn: sqlite3.Connection, since: datetime, until: datetime | None
) -> tuple[MetricDelta, ...]:
    """Every (network, metric) known at both times, with its value at each."""
    before = {(m.network, m.metric): m for m in latest_metrics(conn, since)}
    out = []
    for m in latest_metrics(conn, until):
        old = before.get((m.network, m.metric))
        if old is None or old.unit != m.unit:  # a figure whose unit changed has no delta
            continue
        pair = (old.value, m.value, old.fetched_at, m.fetched_at)
        out.append(MetricDelta(m.network, m.metric, m.unit, *pair))
    return tuple(out)


def reward_totals(
    conn: sqlite3.Connection, since: datetime, until: datetime | None
) -> tuple[RewardTotal, ...]:
    """Rewards for block times in (since, until], fetched by ``until``, per node and token."""
    sums: dict[tuple[str | None, str | None, str, str], list[float]] = {}
    for r in reward_rows(conn, at=until, since=since):
        if r.at <= since or (until is not None and r.at > until):
            continue
        key = (r.node, None if r.node else r.device_id, r.network, r.token)
        total = sums.setdefault(key, [0.0, 0, 0])
        total[0] += r.amount
        total[1] += 1
        total[2] += r.amount > 0
    return tuple(
        RewardTotal(node, device, network, token, amount, int(count), int(paid))
        for (node, device, network, token), (amount, count, paid) in sorted(
            sums.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or kv[0][1] or "", kv[0][3])
        )
    )
