"""``[retention]`` in the config file, mapped to cache.retention.RetentionPolicy."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cache.retention import RetentionPolicy
from explorer.config import EXAMPLE, Config, ConfigError, load_config


def test_defaults_are_the_policy_defaults() -> None:
    assert Config().retention.policy() == RetentionPolicy()
    assert Config().retention.enabled and Config().retention.interval == 3600


def test_example_file_spells_out_the_defaults() -> None:
    section = tomllib.loads(EXAMPLE)["retention"]
    assert Config.model_validate({"retention": section}).retention.policy() == RetentionPolicy()


def test_numbers_and_forever(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[retention]\nraw_days = 2\nminute_days = 10\nday_days = 3650\n")
    policy = load_config(path).retention.policy()
    assert (policy.raw_days, policy.minute_days, policy.day_days) == (2, 10, 3650)
    path.write_text('[retention]\nday_days = "forever"\n')
    assert load_config(path).retention.policy().day_days is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("raw_days = 0.5", "retention.raw_days"),
        ("raw_days = 60", "minute_days must be at least 60"),
        ('day_days = "always"', "retention.day_days"),
        ("keep = 3", "retention.keep"),
        ("interval = 5", "retention.interval"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[retention]\n{body}\n")
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(path)
