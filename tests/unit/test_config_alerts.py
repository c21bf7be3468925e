"""``[alerts]`` and ``[[alerts.rules]]``: durations, kind-specific keys, clear errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from explorer.config import Config, ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_rules_in_the_cache_terms(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[alerts]
command = ["/usr/local/bin/page-me", "--team", "ops"]
bell = true
webhook = { url = "https://hooks.example/x", headers_env = { Authorization = "HOOK" } }

[[alerts.rules]]
kind = "node_down"
for = 1
severity = "critical"

[[alerts.rules]]
name = "hot"
kind = "gpu_temp_above"
celsius = 85
for = "90s"
resolve_after = "10m"

[[alerts.rules]]
kind = "devices_drop"
metric = "gpus"
percent = 10
subjects = ["io.net"]
""",
        )
    )
    down, hot, drop = config.alerts.rules_for_cache()
    assert (down.name, down.severity, down.for_s, down.resolve_after_s) == (
        "node_down",
        "critical",
        60.0,
        60.0,
    )
    assert (hot.name, hot.threshold, hot.for_s, hot.resolve_after_s) == ("hot", 85, 90, 600)
    assert (drop.metric, drop.threshold, drop.days, drop.subjects, drop.for_s) == (
        "gpus",
        10,
        7.0,
        ("io.net",),
        0.0,
    )
    assert config.alerts.bell and config.alerts.command[0] == "/usr/local/bin/page-me"
    assert config.alerts.webhook is not None and config.alerts.webhook.retries == 3


def test_config_check_output_reads_back_the_same(tmp_path: Path) -> None:
    config = Config.model_validate(
        {"alerts": {"rules": [{"kind": "utilization_below", "percent": 20, "for": 0.5}]}}
    )
    dumped = tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))
    assert 'for = "30s"' in dumped  # with its unit: a bare number would read as minutes
    again = Config.model_validate(tomllib.loads(dumped))
    assert again.alerts.rules_for_cache() == config.alerts.rules_for_cache()


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ('kind = "gpu_temp_above"', "gpu_temp_above needs celsius"),
        ('kind = "price_change"', "price_change needs percent"),
        ('kind = "node_down"\ncelsius = 80', "celsius: not a setting of node_down"),
        ('kind = "source_failing"\npercent = 5', "percent: not a setting of source_failing"),
        ('kind = "node_down"\nfor = "5 minutes"', "a duration"),
        ('kind = "node_down"\nfor = -1', "between 0 and 30 days"),
        ('kind = "node_up"', "alerts.rules.0.kind"),
        ('kind = "node_down"\nseverity = "page"', "alerts.rules.0.severity"),
        ('kind = "node_down"\n[[alerts.rules]]\nkind = "node_down"', "two rules named"),
    ],
)
def test_bad_rules_name_the_key(tmp_path: Path, rules: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(write(tmp_path, f"[[alerts.rules]]\n{rules}\n"))


def test_command_is_a_list_and_webhooks_are_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alerts.command"):
        load_config(write(tmp_path, '[alerts]\ncommand = "notify-send alert"\n'))
    with pytest.raises(ConfigError, match="alerts.webhook.url"):
        load_config(write(tmp_path, '[alerts.webhook]\nurl = "file:///etc/passwd"\n'))
    with pytest.raises(ConfigError, match="not an environment variable name"):
        load_config(
            write(
                tmp_path,
                '[alerts.webhook]\nurl = "http://x"\nheaders_env = { X-Key = "$(id)" }\n',
            )
        )
