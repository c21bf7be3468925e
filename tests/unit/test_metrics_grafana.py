"""docs/grafana/depin-explorer.json: valid JSON that uses only the exporter's own metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from explorer.metrics_listen import CacheCollector, MetricsListener
from tests.unit.test_metrics_view import NOW, build

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "depin-explorer.json"
SELECTOR = re.compile(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\s*\{")
DEPIN = re.compile(r"\bdepin_[a-z0-9_]+")


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        found.append(query["query"] if isinstance(query, dict) else query)
    return found


def served_names(db: Path) -> set[str]:
    listener = MetricsListener("127.0.0.1", 0, CacheCollector(db, clock=lambda: NOW))
    listener.start()
    try:
        text = httpx.get(f"http://127.0.0.1:{listener.address[1]}/metrics", timeout=5).text
    finally:
        listener.stop()
    return {f.name for f in text_string_to_metric_families(text) if f.samples}


def test_every_metric_the_dashboard_names_is_served(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] == "depin-explorer" and dashboard["panels"]
    exprs = expressions(dashboard)
    assert len(exprs) >= 20
    named = {name for e in exprs for name in DEPIN.findall(e)}
    selectors = {name for e in exprs for name in SELECTOR.findall(e)}
    assert selectors <= named, f"not an exporter metric: {selectors - named}"
    db = tmp_path / "c.db"
    build(db)
    served = served_names(db)
    assert named <= served, f"the dashboard uses metrics the exporter lacks: {named - served}"
    # and it shows most of what is served (a metric added later belongs on it too)
    assert len(named) >= len(served) - 3, served - named
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
