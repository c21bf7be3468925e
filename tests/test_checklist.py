"""Every case of the reliability checklist (docs/reliability.md) is proven by a test.

The case ids are listed here too, so a case dropped from the doc is still caught. A case counts as
covered when its id (e.g. ``DB-05``) appears in a test module under tests/ (a docstring, a
comment or a test's name); docs/reliability.md maps each case to its test and must list them all.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
DOC = ROOT / "docs" / "reliability.md"

CASES: dict[str, int] = {"UI": 10, "PR": 15, "HT": 14, "DB": 11, "SE": 8, "SC": 7}
"""Section prefix -> number of checklist cases (SC-08, an extra schema case, is tested too)."""
IDS = [f"{prefix}-{n:02d}" for prefix, count in CASES.items() for n in range(1, count + 1)]


def test_the_list_has_every_case() -> None:
    assert len(IDS) == 65 and len(set(IDS)) == 65


def test_every_case_has_a_test() -> None:
    sources = {
        path: path.read_text(encoding="utf-8")
        for path in TESTS.rglob("test_*.py")
        if path.resolve() != Path(__file__).resolve()
    }
    missing = [
        case
        for case in IDS
        if not any(re.search(rf"\b{case}\b", text) for text in sources.values())
    ]
    assert missing == [], f"no test names these cases: {missing}"


def test_the_doc_maps_every_case() -> None:
    text = DOC.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| ((?:UI|PR|HT|DB|SE|SC)-\d\d) \|", text, re.MULTILINE))
    assert sorted(set(IDS) - rows) == [], "cases missing from docs/reliability.md"
