"""``export rewards --private``: no amount in the output (JSON or CSV), missed blocks explained."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cache.export import REWARDS_KEYS
from explorer.cli import cli
from explorer.exports import REWARD_AMOUNT_KEYS
from screens.table_export import HIDDEN
from tests.ui.rewardskit import rewards_cache

AT = "2026-11-25T12:00:00Z"
"""The rewards kit's "now": the missed blocks' hours lie in the window the causes are read for."""
NOT_MONEY = frozenset(
    {"node", "network", "device_id", "at", "token", "source", "fetched_at", "status", "missed"}
    | {"cause", "seen_cause", "down_min", "sampled_min", "cpu_pct_mean", "gpu_util_pct_mean"}
    | {"gpu_temp_max_c", "network_status"}
)
"""Every column ``--private`` leaves as it is: named here, so a new column is decided on."""


def _export(db: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--db", str(db), "--at", AT, "export", "rewards", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_rewards_column_is_money_or_not() -> None:
    # A new money column must join REWARD_AMOUNT_KEYS, or --private would write it out.
    assert frozenset(REWARDS_KEYS) == REWARD_AMOUNT_KEYS | NOT_MONEY
    assert not REWARD_AMOUNT_KEYS & NOT_MONEY


@pytest.mark.parametrize("where", ["group", "command"])
def test_private_json_holds_no_amount(tmp_path: Path, where: str) -> None:
    rewards_cache(tmp_path, misses=True)
    db = tmp_path / "cache.db"
    shown = json.loads(_export(db))
    if where == "group":  # depin-explorer --private export rewards
        result = CliRunner().invoke(
            cli, ["--private", "--db", str(db), "--at", AT, "export", "rewards"]
        )
        assert result.exit_code == 0, result.output
        out = result.output
    else:
        out = _export(db, "--private")
    hidden = json.loads(out)
    assert len(hidden) == len(shown) > 20
    assert {r["amount"] for r in shown} >= {0.25, 0}
    assert {r["amount"] for r in hidden} == {HIDDEN}
    assert "0.25" not in out
    for plain, private in zip(shown, hidden, strict=True):
        assert {k: plain[k] for k in NOT_MONEY} == {k: private[k] for k in NOT_MONEY}
    missed = [r for r in hidden if r["missed"]]
    assert len(missed) == len([r for r in shown if r["missed"]]) > 0  # the count stays
    assert any(r["cause"] or r["seen_cause"] for r in missed)  # and the causes


def test_private_csv_holds_no_amount(tmp_path: Path) -> None:
    rewards_cache(tmp_path, misses=True)
    db = tmp_path / "cache.db"
    shown = list(csv.DictReader(io.StringIO(_export(db, "--format", "csv"))))
    out = _export(db, "--format", "csv", "--private")
    hidden = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0] == ",".join(REWARDS_KEYS)
    assert len(hidden) == len(shown) > 20
    assert {r["amount"] for r in hidden} == {HIDDEN}
    assert "0.25" not in out
    for plain, private in zip(shown, hidden, strict=True):
        assert {k: plain[k] for k in NOT_MONEY} == {k: private[k] for k in NOT_MONEY}
