"""The app's key bindings and the allow-list of actions that may run at all.

Each binding has an id, so users can remap it in the config's ``[keys]`` table.
"""

from __future__ import annotations

from textual.binding import Binding, BindingType

APP_BINDINGS: list[BindingType] = [
    Binding(
        "1",
        "show('overview')",
        "Overview",
        id="screen.overview",
        show=False,
        tooltip="Market summary and source freshness",
    ),
    Binding(
        "2",
        "show('rankings')",
        "Rankings",
        id="screen.rankings",
        show=False,
        tooltip="DePIN projects ranked",
    ),
    Binding(
        "3",
        "show('networks')",
        "Networks",
        id="screen.networks",
        show=False,
        tooltip="Public DePIN networks: devices, GPUs, utilization",
    ),
    Binding(
        "4",
        "show('fleet')",
        "Fleet",
        id="screen.fleet",
        show=False,
        tooltip="Your nodes: up, busy, hot",
    ),
    Binding(
        "5",
        "show('rewards')",
        "Rewards",
        id="screen.rewards",
        show=False,
        tooltip="What your nodes earned, its value, GPU-hours, power cost, net, payback",
    ),
    Binding(
        "6",
        "show('history')",
        "History",
        id="screen.history",
        show=False,
        tooltip="What changed since you last looked, or between any two times",
    ),
    Binding(
        "7",
        "show('sources')",
        "Sources",
        id="screen.sources",
        show=False,
        tooltip="Every source's state, errors and next poll",
    ),
    Binding(
        "8",
        "show('alerts')",
        "Alerts",
        id="screen.alerts",
        show=False,
        tooltip="Alerts firing now and before; filter by state and severity",
    ),
    Binding("r", "refresh", "Refresh", id="poll.refresh", tooltip="Poll every source now"),
    Binding(
        "t",
        "time_travel",
        "Time",
        show=False,
        id="travel.open",
        tooltip="Show every screen as of a past moment",
    ),
    Binding(
        "comma",
        "step_poll(-1)",
        "Earlier",
        show=False,
        id="travel.previous",
        tooltip="Time travel: one poll earlier",
    ),
    Binding(
        "full_stop",
        "step_poll(1)",
        "Later",
        show=False,
        id="travel.next",
        tooltip="Time travel: one poll later (past the newest: live)",
    ),
    Binding("T", "live", "Live", show=False, id="travel.live", tooltip="Back to live data"),
    Binding(
        "e",
        "export_table",
        "Export",
        show=False,
        id="table.export",
        tooltip="Write the table as shown (filter and sort) to a CSV file",
    ),
    Binding(
        "p",
        "toggle_private",
        "Private",
        show=False,
        id="privacy.toggle",
        tooltip="Private mode: hide earnings everywhere, for screen sharing",
    ),
    Binding("question_mark", "toggle_help", "Help", id="help", tooltip="Show the keys"),
    Binding("q", "request_quit", "Quit", id="quit", tooltip="Quit"),
    Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True, id="quit.ctrl"),
]
ALLOWED_ACTIONS: frozenset[str] = frozenset(
    {
        "show",
        "refresh",
        "time_travel",
        "step_poll",
        "live",
        "toggle_help",
        "request_quit",
        "command_palette",
        "focus_next",
        "focus_previous",
        "help_quit",
        "show_help_panel",
        "hide_help_panel",
        "back",
        "bell",
        "export_table",
        "toggle_private",
    }
)
"""Second layer against markup from data: no other app action runs (reliability.md R3)."""
