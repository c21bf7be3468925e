"""The status line every screen has: which source, how old, live/cached/sample, offline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from cache.queries import PollInfo, SourceState
from screens.render import age, local_time, text


@dataclass(frozen=True)
class Freshness:
    """How a screen's data stands, given its poll and what the cache knows of its sources."""

    poll: PollInfo | None
    states: Sequence[SourceState]
    offline: bool
    as_of: datetime | None = None
    """Time travel: the moment shown (then "now" is that moment, never the clock)."""
    attached: str | None = None
    """Read-only next to a collector: "attached to collector, pid N"."""


def describe(
    fresh: Freshness,
    now: datetime,
    interval: Callable[[str], float],
    note: Callable[[str], str | None],
    watched_sources: Sequence[str],
) -> tuple[Text, str]:
    """The status text and its level: "ok", "warn" (stale or failing) or "sample"."""
    out = Text()
    level = "ok"
    if fresh.as_of is not None:
        out.append(f"AS OF {local_time(fresh.as_of, True)}", style="bold reverse")
        out.append(" ")
    poll = fresh.poll
    if poll is None:
        out.append("no data yet", style="bold")
        level = "warn"
    elif poll.is_sample:
        out.append("sample · ", style="bold")
        out.append(poll.data_at.strftime("%Y-%m-%d"))
        level = "sample"
    else:
        seconds = (now - poll.finished_at).total_seconds()
        stale = seconds > 2 * interval(poll.source)
        mode = "cached" if fresh.offline or stale or fresh.as_of else "live"
        out.append_text(text(poll.source, "bold", 40))  # a copied database is untrusted too
        out.append(" · ", style="bold")
        out.append(f"{mode} · {age(seconds)} ago")
        if stale:
            level = "warn"
            out.append(" (stale)", style="bold")
    # the session's mode before the problems, which are longer: a narrow terminal cuts the end
    if fresh.attached:
        out.append(f" · {fresh.attached}", style="bold")
    if fresh.offline:
        out.append(" · offline", style="bold")
    problems: list[Text] = []
    for state in fresh.states:
        if state.source not in watched_sources or state.source == "sample":
            continue
        held = note(state.source)
        if not held and state.last.retry_at and state.last.retry_at > now:
            held = f"rate limited until {local_time(state.last.retry_at)}"  # told by the cache
        if held:
            problems.append(Text.assemble(text(state.source, max_len=40), f" {held}"))
        elif state.last.status == "failed":
            problem = Text.assemble(
                text(state.source, max_len=40),
                f" failing since {local_time(state.last.finished_at)}: ",
            )
            problem.append_text(text(state.last.error_kind or "error"))
            problems.append(problem)
    if problems:
        level = "warn"
    if len(problems) > 2:  # one line cannot hold them all: count them, the Sources screen lists
        out.append(f" · {len(problems)} sources failing (7: Sources)")
    for problem in problems if len(problems) <= 2 else []:
        out.append(" · ")
        out.append_text(problem)
    if fresh.as_of is not None:
        out.append(" · , . step  T live", style="dim")
        level = "travel"
    return out, level


class StatusLine(Static):
    """One line at the bottom of a screen; turns amber when its data is stale or failing."""

    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; color: $text; padding: 0 1; }
    StatusLine.-warn { background: $warning 40%; }
    StatusLine.-sample { background: $secondary 35%; }
    StatusLine.-travel { background: $accent 45%; }
    """

    _shown: tuple[str, str] | None = None

    def show(self, content: Text, level: str) -> None:
        """Render ``content`` and set the warn/sample/travel classes.

        The age ticks every 2 s but reads "5 min ago" for a minute: an unchanged line is not
        redrawn, so an idle console sends next to nothing over SSH.
        """
        key = (content.markup, level)
        if key == self._shown:
            return
        self._shown = key
        self.set_class(level == "warn", "-warn")
        self.set_class(level == "sample", "-sample")
        self.set_class(level == "travel", "-travel")
        self.update(content, layout=False)  # always one line: no layout pass
