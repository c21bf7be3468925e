"""A Prometheus server refusing a query: the Sources screen says which query, why, and what to do.

The poll is a real PromqlSource fetch through httpx.MockTransport (``up`` answers, ``cpu_pct`` is
refused with Prometheus' "too many samples" error), stored as the poller stores it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
from rich.text import Text
from textual.widgets import DataTable, Static

from explorer.config import Config
from sources.base import make_client
from sources.promql import PromqlSource
from tests.support.ui import settle
from tests.ui.appkit import NOW, make_app, store

URL = "http://prom.test:9090"
UP = {
    "status": "success",
    "data": {
        "resultType": "vector",
        "result": [{"metric": {"__name__": "up", "instance": "gpu-1:9400"}, "value": [1, "1"]}],
    },
}
TOO_MANY = {
    "status": "error",
    "errorType": "execution",
    "error": "query processing would load too many samples into memory in query execution",
}


def server(request: httpx.Request) -> httpx.Response:
    query = request.url.params["query"]
    if query == "up":
        return httpx.Response(200, json=UP)
    if query.startswith("100 * (1 - sum by (instance) (rate(node_cpu"):
        return httpx.Response(422, json=TOO_MANY)
    return httpx.Response(200, json={"status": "success", "data": UP["data"] | {"result": []}})


async def test_the_refused_query_and_its_remedy_are_on_the_sources_screen(tmp_path: Path):
    async with make_client(transport=httpx.MockTransport(server)) as client:
        reading = await PromqlSource(url=URL).fetch(client)
    store(tmp_path / "cache.db", "promql", NOW - timedelta(seconds=20), reading)
    config = Config.model_validate(
        {"fleet": {"prometheus": [{"url": URL}], "local": {"enabled": False}}}
    )
    app = make_app(tmp_path, config=config)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        table.move_cursor(row=names.index("promql"))
        row = table.get_row_at(names.index("promql"))
        assert "partial" in str(row[1]) and "cpu_pct: HTTP 422" in str(row[6])
        await pilot.press("enter")
        await settle(pilot)
        shown = app.screen.query_one("#error-box Static", Static).content
        assert isinstance(shown, Text)
        text = " ".join(shown.plain.split())
        assert "cpu_pct http_4xx" in text
        assert "query processing would load too many samples into memory" in text
        assert "narrow the selector of the [[fleet.prometheus]] at prom.test:9090" in text
        assert "--query.max-samples" in text
    assert json.dumps(TOO_MANY)  # the body the server sent is the one the test names
