"""The retention policy alone, cheap to import: the config validates it on every start."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each resolution is kept, in days (``day_days=None``: forever)."""

    raw_days: float = 7.0
    minute_days: float = 30.0
    hour_days: float = 400.0
    day_days: float | None = None
    snapshot_full_days: float = 1.0
    snapshot_hourly_days: float = 90.0

    def __post_init__(self) -> None:
        # Hours must be over before their raw samples go: hence at least one day of raw.
        chain = [
            ("raw_days", self.raw_days, 1.0),
            ("minute_days", self.minute_days, self.raw_days),
            ("hour_days", self.hour_days, self.minute_days),
            ("snapshot_full_days", self.snapshot_full_days, 1 / 24),
            ("snapshot_hourly_days", self.snapshot_hourly_days, self.snapshot_full_days),
        ]
        if self.day_days is not None:
            chain.append(
                ("day_days", self.day_days, max(self.hour_days, self.snapshot_hourly_days))
            )
        for name, value, minimum in chain:
            if not math.isfinite(value) or value < minimum:
                raise ValueError(f"{name} must be at least {minimum:g} (got {value:g})")
