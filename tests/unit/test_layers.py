"""The package stack of docs/architecture.md, checked in a fresh interpreter (import-linter runs in
`make test` too): sources and cache never pull in Textual or Rich, cache never httpx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(result.stdout.split())


@pytest.mark.parametrize(
    "module",
    ["sources.base", "sources.coingecko", "sources.sample", "sources.models", "sources.text"],
)
def test_sources_import_no_ui_and_no_sqlite(module: str) -> None:
    loaded = loaded_after(module)
    assert not {"textual", "sqlite3", "sqlite_utils"} & loaded


@pytest.mark.parametrize("module", ["sources.models", "sources.text"])
def test_reading_models_need_no_rich(module: str) -> None:
    # httpx itself imports rich (for its optional CLI), so only modules without HTTP are checked
    assert "rich" not in loaded_after(module)


@pytest.mark.parametrize("module", ["cache.db", "cache.store", "cache.queries", "cache.export"])
def test_cache_imports_no_ui_and_no_http(module: str) -> None:
    loaded = loaded_after(module)
    assert not {"textual", "rich", "httpx"} & loaded


def test_screens_never_import_http_or_the_app() -> None:
    loaded = loaded_after("screens.rankings, screens.overview, screens.project")
    assert "httpx" not in loaded and "explorer" not in {m.split(".")[0] for m in loaded}


def test_cli_version_does_not_load_textual() -> None:
    assert "textual" not in loaded_after("explorer.cli")


@pytest.mark.parametrize("package", ["explorer", "screens", "sources", "cache"])
def test_packages_are_ours_not_same_named_distributions(package: str) -> None:
    module = __import__(package)
    assert Path(module.__file__).resolve().is_relative_to(ROOT)


def test_first_frame_needs_neither_pydantic_nor_http() -> None:
    # issue 8's first_paint budget: the config is validated (pydantic) after the first frame,
    # the poller (httpx) starts after it, and ``db``/``alerts`` load only when run.
    loaded = loaded_after("explorer.cli, explorer.app, screens.overview")
    assert not {"pydantic", "httpx", "explorer.config", "sources.models"} & loaded
    assert not {"explorer.db_cli", "explorer.alerts_cli", "explorer.poller"} & loaded
