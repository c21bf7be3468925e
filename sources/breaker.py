"""A circuit breaker per source: stop polling an upstream that keeps failing, probe it rarely.

closed -> open after ``threshold`` (5) consecutive failed cycles. While open, nothing is sent until
the next trial: the first one ``first_delay`` (60 s) after opening, each later one after a delay
drawn with full jitter from [``first_delay``, ``first_delay`` * 2**n], capped at ``max_delay``
(15 min). A trial is one request at a time (half-open); the first success closes the breaker, a
failed trial opens it again with the next, doubled, ceiling. The clock is passed in, so tests
drive it with a fake one.
"""

from __future__ import annotations

import random
from typing import Literal

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """One source's breaker. Not thread-safe; used from the poller's event loop only.

    Args:
        threshold: consecutive failed cycles that open the breaker.
        first_delay: seconds from opening to the first trial.
        max_delay: the longest wait between trials.
        rng: the jitter source (injectable for tests).
    """

    def __init__(
        self,
        threshold: int = 5,
        first_delay: float = 60.0,
        max_delay: float = 900.0,
        rng: random.Random | None = None,
    ) -> None:
        if threshold < 1 or not 0 < first_delay <= max_delay:
            raise ValueError("need threshold >= 1 and 0 < first_delay <= max_delay")
        self.threshold = threshold
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._rng = rng or random.Random()
        self._state: State = "closed"
        self._failures = 0
        self._trials = 0  # failed trials since the breaker opened
        self._next_trial: float | None = None

    @property
    def state(self) -> State:
        """``closed`` (polling), ``open`` (waiting for a trial) or ``half-open`` (trial running)."""
        return self._state

    @property
    def next_trial_at(self) -> float | None:
        """When the next trial may start (clock seconds), while open; otherwise None."""
        return self._next_trial if self._state == "open" else None

    @property
    def consecutive_failures(self) -> int:
        """Failed cycles in a row, failed trials included."""
        return self._failures

    def allow(self, now: float) -> bool:
        """Whether a cycle may run now; when open and due, grants exactly one trial."""
        if self._state == "closed":
            return True
        if self._state == "open" and self._next_trial is not None and now >= self._next_trial:
            self._state = "half-open"
            return True
        return False

    def record_success(self) -> None:
        """A cycle (or the trial) succeeded: close the breaker and forget the failures."""
        self._state = "closed"
        self._failures = 0
        self._trials = 0
        self._next_trial = None

    def record_failure(self, now: float) -> None:
        """A cycle failed at ``now``: count it; open (again) at the threshold or after a trial."""
        self._failures += 1
        if self._state == "half-open":
            self._trials += 1
            self._open(now)
        elif self._state == "closed" and self._failures >= self.threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        ceiling = min(self.max_delay, self.first_delay * 2 ** min(self._trials, 32))
        delay = self._rng.uniform(self.first_delay, ceiling) if self._trials else self.first_delay
        self._state = "open"
        self._next_trial = now + delay
