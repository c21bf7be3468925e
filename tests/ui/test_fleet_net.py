"""The Fleet's Net column: the network's view of each node against ours, with its age.

gpu-01's io.net device says up like our poll (agrees), gpu-02's says down while we see it up,
rig-down's says up while our scrape fails; k8s-1 and k8s-2 share one Akash provider the console
calls online; gpu-03 and cpu-01 carry no device id or provider: the network says nothing ("—").
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from cache.network_status import AGREES, NET_DOWN, NET_UP
from screens.fleet import COLUMN_KEYS, FleetScreen
from screens.widgets.fleet_table import FleetTable
from sources.models import DeviceStatus, NodeSample, Reading
from tests.support.ui import settle
from tests.ui.appkit import DEVICES, NOW, make_app, store, store_devices, store_fleet

DEVICE = "0b0c7d4e-1111-4a2b-9c3d-5e6f70819203"
PROVIDER = "akash1hcu596l97rqkcllcwundclhgkvurld6grecjgy"
AT = NOW - timedelta(seconds=20)


def io_net(device_id: str, node: str, status: str) -> DeviceStatus:
    return DeviceStatus(network="io.net", device_id=device_id, node=node, status=status)


def fleet_with_networks(db: Path) -> None:
    store_fleet(db)

    def sample(name: str, up: bool, network: str, **labels: str) -> NodeSample:
        return NodeSample(node=name, source_kind="exporter", up=up, network=network, labels=labels)

    store(
        db,
        "fleet",
        AT,
        Reading(
            nodes=[
                sample("rig-down", False, "io.net", device_id=DEVICE),
                sample("k8s-1", True, "akash", provider=PROVIDER),
                sample("k8s-2", True, "akash", provider=PROVIDER),
            ]
        ),
    )
    store(
        db,
        "ionet-devices",
        NOW - timedelta(minutes=2),
        Reading(
            devices=[
                io_net(DEVICES["gpu-01"], "gpu-01", "up"),
                io_net(DEVICES["gpu-02"], "gpu-02", "down"),
                io_net(DEVICE, "rig-down", "up"),
            ]
        ),
    )
    store(
        db,
        "akash-providers",
        NOW - timedelta(minutes=1),
        Reading(
            devices=[DeviceStatus(network="akash", device_id=PROVIDER, node="k8s-1", status="up")]
        ),
    )


def _column(table: FleetTable, key: str) -> int:
    return [c.key for c in table.columns].index(key)


async def open_fleet(pilot) -> FleetTable:
    await pilot.press("4")
    await settle(pilot)
    assert isinstance(pilot.app.screen, FleetScreen)
    return pilot.app.screen.query_one(FleetTable)


async def test_net_column_states_ages_filter_and_sort(tmp_path: Path) -> None:
    fleet_with_networks(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_fleet(pilot)
        net, age = _column(table, "net"), _column(table, "net_seen_s")
        assert net == _column(table, "status") + 1  # beside our own status
        states = {key: table.row_for(key)[net] for key in table.visible_keys()}
        # the promql node is keyed with its source kind; it and gpu-03, cpu-01 say nothing
        assert {k: v for k, v in states.items() if v is not None} == {
            "gpu-01": AGREES,
            "gpu-02": NET_DOWN,
            "rig-down": NET_UP,
            "k8s-1": AGREES,
            "k8s-2": AGREES,
        }
        assert states["gpu-03"] is None and states["cpu-01"] is None
        ages = {key: table.row_for(key)[age] for key in ("gpu-01", "rig-down", "k8s-2", "gpu-03")}
        assert ages == {"gpu-01": 120.0, "rig-down": 120.0, "k8s-2": 60.0, "gpu-03": None}
        summary = str(app.screen.query_one("#fleet-summary", Static).render())
        assert "≠ 2 net disagree" in summary

        # drawn as words and arrows (NO_COLOR keeps them), "—" where the network is silent
        shown = "\n".join(
            "".join(seg.text for seg in table.render_line(y)) for y in range(table.size.height)
        )
        assert "net↑ we↓" in shown and "net↓" in shown and "agrees" in shown
        gpu03 = next(line for line in shown.splitlines() if line.startswith("gpu-03"))
        assert "—" in gpu03.split()[3]  # Node, Network, Status, then Net

        # filter by the state's text, like node, network and source
        table.filter("net↑", ("node", "network", "source", "net"))
        assert table.visible_keys() == ["rig-down"]
        await pilot.press("slash", *"agrees")
        await settle(pilot)
        assert set(table.visible_keys()) == {"gpu-01", "k8s-1", "k8s-2"}
        await pilot.press("escape")

        # sortable like every column: states in order, the silent nodes last either way
        table.sort_by("net", False)
        order = [table.row_for(k)[net] for k in table.visible_keys()]
        assert order[:5] == [AGREES, AGREES, AGREES, NET_UP, NET_DOWN]
        assert order[5:] == [None] * (len(order) - 5)
        table.sort_by("net", True)
        order = [table.row_for(k)[net] for k in table.visible_keys()]
        assert order[0] == NET_DOWN and order[-1] is None
        assert COLUMN_KEYS[-2:] == ["net", "net_seen_s"]  # `s` reaches them too, last


async def test_too_old_network_reading_is_unknown(tmp_path: Path) -> None:
    """A device reading older than twice its source's interval (at least 10 min) is unknown."""
    db = tmp_path / "cache.db"
    store_fleet(db)
    store_devices(db, at=NOW - timedelta(minutes=11))
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_fleet(pilot)
        net = _column(table, "net")
        assert table.row_for("gpu-02")[net] == "unknown"
        assert table.row_for("gpu-01")[net] == "unknown"
        summary = str(app.screen.query_one("#fleet-summary", Static).render())
        assert "≠ 0 net disagree" in summary
        cell = table.columns[net].render("unknown")
        assert isinstance(cell, Text) and cell.plain == "unknown"
