"""``[alerts]`` and ``[[alerts.rules]]``: what to watch, how long before it counts, who to tell.

Kept apart from explorer/config.py (which holds one field for it) so that file stays readable.
Durations are minutes when a bare number (``for = 1``, as the rules read: "down for 1 minute"),
or a number with a unit: ``"30s"``, ``"5m"``, ``"2h"``, ``"1d"``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from cache.alert_rules import Rule

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION = 30 * 86400.0
DEFAULT_FOR = {
    "node_down": 300.0,
    "gpu_temp_above": 300.0,
    "utilization_below": 900.0,
    "price_change": 0.0,
    "devices_drop": 0.0,
    "source_failing": 0.0,
    "status_disagrees": 900.0,
}
"""Seconds; price, device and source rules already span 24 h, days or several polls. The
network's view of a node lags ours (io.net and Akash check on their own schedules), so a
disagreement counts after 15 minutes by default."""
NEEDS = {
    "gpu_temp_above": {"celsius"},
    "utilization_below": {"percent"},
    "price_change": {"percent"},
    "devices_drop": {"percent"},
}
ALLOWED = {
    "node_down": set(),
    "gpu_temp_above": {"celsius"},
    "utilization_below": {"percent", "scope"},
    "price_change": {"percent", "direction"},
    "devices_drop": {"percent", "metric", "days"},
    "source_failing": {"cycles"},
    "status_disagrees": set(),
}
"""Which of the kind-specific keys each kind takes; any other is an error, not silently unused."""
_SPECIFIC = {"celsius", "percent", "scope", "metric", "direction", "days", "cycles"}


def _duration(value: object) -> float:
    """Seconds from minutes (a number) or a number with a unit (``"90s"``, ``"5m"``)."""
    if isinstance(value, bool):
        raise ValueError("a duration: minutes, or a number with s, m, h or d")
    if isinstance(value, int | float):
        seconds = float(value) * 60
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError('a duration: minutes, or a number with s, m, h or d ("30s", "5m")')
    if not 0 <= seconds <= MAX_DURATION:
        raise ValueError("a duration between 0 and 30 days")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlertRuleConfig(_Section):
    """``[[alerts.rules]]``: one condition, its hysteresis and its severity."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)
    """Unique among the rules; defaults to the kind."""
    kind: Literal[
        "node_down",
        "gpu_temp_above",
        "utilization_below",
        "price_change",
        "devices_drop",
        "source_failing",
        "status_disagrees",
    ]
    severity: Literal["info", "warning", "critical"] = "warning"
    for_: Duration | None = Field(default=None, alias="for")
    """How long the condition must hold before the alert fires (default per kind)."""
    resolve_after: Duration | None = None
    """How long it must be clear before the alert resolves (default: the same as ``for``)."""
    celsius: float | None = Field(default=None, gt=-50, lt=200)
    percent: float | None = Field(default=None, gt=0, le=1000)
    scope: Literal["node", "network"] = "node"
    metric: Literal["devices", "gpus"] = "devices"
    direction: Literal["any", "up", "down"] = "any"
    days: float = Field(default=7.0, gt=0, le=400)
    cycles: int = Field(default=3, ge=1, le=10_000)
    subjects: list[str] = Field(default_factory=list, max_length=10_000)
    """Only these nodes, networks, coin ids or sources; empty means all."""

    @model_validator(mode="after")
    def _keys_fit_the_kind(self) -> AlertRuleConfig:
        for key in sorted(NEEDS.get(self.kind, set())):
            if getattr(self, key) is None:
                raise ValueError(f"{self.kind} needs {key}")
        # a key of another kind set to anything but its default is a mistake, not a no-op
        fields = type(self).model_fields
        stray = {
            key
            for key in _SPECIFIC - ALLOWED[self.kind]
            if getattr(self, key) != fields[key].get_default(call_default_factory=True)
        }
        if stray:
            raise ValueError(f"{', '.join(sorted(stray))}: not a setting of {self.kind}")
        return self

    @field_serializer("for_", "resolve_after")
    def _seconds(self, value: float | None) -> str | None:
        # written back with a unit: a bare number would read as minutes
        return None if value is None else f"{value:g}s"

    @property
    def rule_name(self) -> str:
        """The name alerts carry."""
        return self.name or self.kind

    def rule(self) -> Rule:
        """The cache's form of this rule."""
        wait = DEFAULT_FOR[self.kind] if self.for_ is None else self.for_
        return Rule(
            name=self.rule_name,
            kind=self.kind,
            severity=self.severity,
            for_s=wait,
            resolve_after_s=wait if self.resolve_after is None else self.resolve_after,
            threshold=self.celsius if self.kind == "gpu_temp_above" else self.percent,
            scope=self.scope,
            metric=self.metric,
            direction=self.direction,
            days=self.days,
            cycles=self.cycles,
            subjects=tuple(self.subjects),
        )


class WebhookConfig(_Section):
    """``[alerts.webhook]``: each transition POSTed as JSON."""

    url: str = Field(pattern=r"^https?://")
    headers_env: dict[str, str] = Field(default_factory=dict)
    """Header name -> the environment variable holding its value (tokens never in the file)."""
    timeout: float = Field(default=10.0, gt=0, le=120)
    """Seconds per attempt."""
    retries: int = Field(default=3, ge=0, le=10)
    """Further attempts after a failed one (connection errors, timeouts, 429, 5xx)."""

    @field_validator("headers_env")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for header, variable in value.items():
            if not re.fullmatch(r"[A-Za-z0-9-]{1,100}", header):
                raise ValueError(f"not a header name: {header[:40]!r}")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,100}", variable):
                raise ValueError(f"not an environment variable name: {variable[:40]!r}")
        return value


class AlertsConfig(_Section):
    """``[alerts]``: the rules, and the actions run on each transition (firing and resolved)."""

    rules: list[AlertRuleConfig] = Field(default_factory=list, max_length=1000)
    command: list[str] = Field(default_factory=list, max_length=100)
    """An argv list run with the alert as JSON on stdin; never through a shell."""
    command_timeout: float = Field(default=10.0, gt=0, le=600)
    webhook: WebhookConfig | None = None
    bell: bool = False
    """Ring the terminal bell in a TUI that evaluates the rules."""

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if value and not value[0].strip():
            raise ValueError("the first item is the program to run")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsConfig:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.rule_name in seen:
                raise ValueError(f"two rules named {rule.rule_name!r}: give each a name")
            seen.add(rule.rule_name)
        return self

    def rules_for_cache(self) -> list[Rule]:
        """Every rule in the cache's terms."""
        return [r.rule() for r in self.rules]
