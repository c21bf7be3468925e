"""Shell completion: ``depin-explorer completion SHELL`` prints click's script for bash, zsh and
fish, and the completion protocol (``_DEPIN_EXPLORER_COMPLETE``, ``COMP_WORDS``,
``COMP_CWORD``) completes command names, subcommands and choices.

The protocol is exercised in a subprocess as the shell runs it; a real bash, when installed,
sources the script and completes ``depin-explorer ex`` itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from explorer.cli import COMPLETE_VAR, cli

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30.0
# A shim named like the console script, so the scripts' own ``depin-explorer`` calls reach
# this checkout's code.
SHIM = f'#!/bin/sh\nexec "{sys.executable}" -m explorer "$@"\n'


def complete(words: str, cword: int, shell: str = "bash") -> list[str]:
    """What the completion protocol answers for COMP_WORDS/COMP_CWORD, one item a line."""
    env = {**os.environ, COMPLETE_VAR: f"{shell}_complete", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(cword)
    result = subprocess.run(
        [sys.executable, "-m", "explorer"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=TIMEOUT_S,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _depin_explorer_completion depin-explorer"),
        ("zsh", "#compdef depin-explorer"),
        ("fish", "complete --no-files --command depin-explorer"),
    ],
)
def test_completion_command_prints_the_script(shell: str, marker: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell], prog_name="depin-explorer")
    assert result.exit_code == 0, result.output
    assert marker in result.output
    assert f"{COMPLETE_VAR}={shell}_complete" in result.output


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_is_clicks_source_script(shell: str) -> None:
    script = CliRunner().invoke(cli, ["completion", shell], prog_name="depin-explorer").output
    env = {**os.environ, COMPLETE_VAR: f"{shell}_source"}
    source = subprocess.run(
        [sys.executable, "-m", "explorer"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=TIMEOUT_S,
        check=True,
    ).stdout
    assert script.strip() == source.strip()


def test_completion_refuses_an_unknown_shell() -> None:
    result = CliRunner().invoke(cli, ["completion", "tcsh"], prog_name="depin-explorer")
    assert result.exit_code == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.output


def test_bash_completes_ex_to_export() -> None:
    assert complete("depin-explorer ex", 1) == ["plain,export"]


def test_bash_completes_subcommands_and_choices() -> None:
    assert complete("depin-explorer export ", 2) == [
        "plain,alerts",
        "plain,fleet",
        "plain,gpu-models",
        "plain,networks",
        "plain,rankings",
        "plain,rewards",
    ]
    assert complete("depin-explorer export rankings --format ", 4) == ["plain,json", "plain,csv"]
    assert complete("depin-explorer db ", 2) == [
        "plain,backup",
        "plain,check",
        "plain,info",
        "plain,prune",
        "plain,vacuum",
    ]
    assert complete("depin-explorer completion ", 2) == ["plain,bash", "plain,zsh", "plain,fish"]


def test_zsh_completion_carries_each_commands_help() -> None:
    lines = complete("depin-explorer ", 1, "zsh")
    # zsh_complete: type, value, help; three lines per item
    items = dict(zip(lines[1::3], lines[2::3], strict=True))
    assert items["poll"].startswith("Poll sources and store")
    assert items["db"].startswith("Look after the SQLite history")  # a lazy command
    assert "completion" in items


def test_real_bash_completes_ex_to_export(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    shim = tmp_path / "bin" / "depin-explorer"
    shim.parent.mkdir()
    shim.write_text(SHIM)
    shim.chmod(0o755)
    script = tmp_path / "completion.bash"
    result = CliRunner().invoke(cli, ["completion", "bash"], prog_name="depin-explorer")
    script.write_text(result.output)
    # What bash does on TAB after "depin-explorer ex": call the registered function.
    probe = (
        f"source {script}\n"
        "COMP_WORDS=(depin-explorer ex); COMP_CWORD=1\n"
        "_depin_explorer_completion depin-explorer\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["export"]
