"""``--help``, ``--version`` and shell completion answer at once: they import no Textual, no
HTTP client, no SQLite, no pydantic, no asyncio and none of the app's other packages.

Each case runs the console script's entry point (``explorer.cli:main``) in a fresh interpreter
and reads ``sys.modules`` after click has answered. Listing the lazy commands reads their help
from their source instead of importing them; the tests check it lists exactly what importing
them would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from explorer import cli as cli_module
from explorer.cli import LazyGroup, cli, lazy_help

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "textual",
    "rich",
    "httpx",
    "sqlite3",
    "sqlite_utils",
    "pydantic",
    "msgspec",
    "asyncio",
    "platformdirs",  # about 20 ms; the paths are asked for only by commands that use them
    "cache",
    "sources",
    "screens",
)
"""Top-level packages none of the quick answers may load."""
TIMEOUT_S = 30.0
# Runs main() as the console script does, then reports every loaded module on stderr.
RUNNER = r"""
import json, sys
sys.argv = ["depin-explorer", *json.loads(sys.argv[1])]
from explorer.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def loaded_modules(args: list[str], env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """What ``depin-explorer ARGS`` printed on stdout, and the modules it had loaded."""
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=TIMEOUT_S,
        check=False,
    )
    _, marker, listing = result.stderr.rpartition("\nMODULES ")
    assert marker, f"the runner did not finish: {result.stderr[-2000:]}"
    return result.stdout, set(json.loads(listing))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["-h"], ["export", "--help"], ["completion", "bash"]],
    ids=["help", "version", "h", "export-help", "completion-script"],
)
def test_quick_answers_import_nothing_heavy(args: list[str]) -> None:
    stdout, modules = loaded_modules(args)
    assert stdout.strip(), "the command printed nothing"
    assert heavy(modules) == [], f"depin-explorer {' '.join(args)} imported these"


def test_version_prints_the_version() -> None:
    from explorer import __version__

    stdout, _ = loaded_modules(["--version"])
    assert stdout.strip() == f"depin-explorer, version {__version__}"


def test_completing_a_command_name_imports_nothing_heavy() -> None:
    # What the shell runs on every TAB: it must be as quick as --help.
    env = {
        "_DEPIN_EXPLORER_COMPLETE": "zsh_complete",
        "COMP_WORDS": "depin-explorer ",
        "COMP_CWORD": "1",
    }
    stdout, modules = loaded_modules([], env)
    assert "ssh-serve" in stdout.splitlines()  # a lazy command, listed with its help
    assert heavy(modules) == []


def test_the_runner_sees_a_heavy_import() -> None:
    # The check above can fail: a command that needs the cache does load it.
    _, modules = loaded_modules(["db", "--help"])
    assert "cache" in {m.split(".")[0] for m in modules}


def lazy_groups() -> list[LazyGroup]:
    groups: list[LazyGroup] = []

    def walk(group: click.Group) -> None:
        if isinstance(group, LazyGroup):
            groups.append(group)
        for command in group.commands.values():
            if isinstance(command, click.Group):
                walk(command)

    walk(cli)
    return groups


def test_every_lazy_command_is_listed_without_importing_it() -> None:
    targets = sorted({target for group in lazy_groups() for target in group.lazy.values()})
    assert targets, "no lazy command found"
    for target in targets:
        module, name = target.split(":")
        command: click.Command = getattr(import_module(module), name)
        text = lazy_help(target)
        assert text is not None, f"{target}: its help cannot be read from the source"
        stand_in = click.Command(command.name, help=text)
        for limit in (30, 45, 60, 80, 200):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)


def test_a_command_with_help_in_its_decorator_is_imported(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "lazy_probe.py").write_text(
        "import click\n\n"
        "@click.command('probe', help='Set here.')\n"
        "def probe() -> None:\n"
        '    """Not what click shows."""\n\n'
        "def plain() -> None:\n"
        '    """Shown."""\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert lazy_help("lazy_probe:probe") is None
    assert lazy_help("lazy_probe:plain") == "Shown."
    assert lazy_help("lazy_probe:missing") is None
    assert lazy_help("no_such_module_here:x") is None


@pytest.mark.parametrize("args", [["--help"], ["export", "--help"]], ids=["root", "export"])
@pytest.mark.parametrize("width", [80, 120])
def test_help_lists_the_same_with_and_without_importing(
    args: list[str], width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    quick = runner.invoke(cli, args, prog_name="depin-explorer", terminal_width=width)
    monkeypatch.setattr(cli_module, "lazy_help", lambda target: None)  # import each to list it
    imported = runner.invoke(cli, args, prog_name="depin-explorer", terminal_width=width)
    assert quick.exit_code == imported.exit_code == 0
    assert quick.output == imported.output
    assert "Commands:" in quick.output
