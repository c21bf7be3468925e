"""explorer.config and explorer.logsetup: defaults, clear errors, plan roots, masking, redaction."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from explorer.config import (
    EXAMPLE,
    Config,
    ConfigError,
    Secrets,
    coingecko_root,
    load_config,
    load_secrets,
    mask,
)
from explorer.logsetup import RedactingFilter

PUBLIC_ROOT = "https://api.coingecko.com/api/v3"
PRO_ROOT = "https://pro-api.coingecko.com/api/v3"
KEY = "CG-q7Zx9LmW2pR8tV4nK6yB3"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    return message


# -- loading -------------------------------------------------------------------------------------


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path / "absent.toml")
    cg = config.sources.coingecko
    assert cg.enabled is True
    assert cg.base_url is None
    assert cg.interval == 120
    assert cg.timeout == 10
    assert cg.category == "depin"
    assert cg.max_coins == 250
    assert config.sources.sample.enabled is True
    assert config.sources.sample.interval >= 1
    assert config.cache.path is None
    assert config.keys == {}
    assert config == Config()


def test_a_required_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="absent.toml"):
        load_config(path, required=True)


def test_a_valid_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[sources.coingecko]
enabled = false
base_url = "http://127.0.0.1:9/api/v3"
interval = 300
timeout = 4.5
category = "artificial-intelligence"
max_coins = 40

[sources.sample]
enabled = false

[cache]
path = "/tmp/depin-test.db"

[ui]
start_screen = "rankings"

[keys]
"rankings.filter" = "slash,ctrl+f"
""",
    )
    config = load_config(path)
    cg = config.sources.coingecko
    assert cg.enabled is False
    assert cg.base_url == "http://127.0.0.1:9/api/v3"
    assert cg.interval == 300
    assert cg.timeout == 4.5
    assert cg.category == "artificial-intelligence"
    assert cg.max_coins == 40
    assert config.sources.sample.enabled is False
    assert config.cache.path == Path("/tmp/depin-test.db")
    assert config.ui.start_screen == "rankings"
    assert config.keys == {"rankings.filter": "slash,ctrl+f"}


def test_the_example_file_is_valid_and_means_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, EXAMPLE)) == Config()


def test_bad_toml_names_the_file_and_the_place(tmp_path: Path) -> None:
    path = write(tmp_path, '[sources.coingecko]\ninterval = 12O\ncategory = "depin"\n')
    message = config_error(path)
    # a syntax error has no reliable key; the message points at its line instead
    assert "line 2" in message
    assert "TOML" in message


def test_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[sources.coingecko]\nintervall = 60\n")
    message = config_error(path)
    assert "sources.coingecko.intervall" in message


def test_unknown_table_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[sources.coingeko]\ninterval = 60\n")
    assert "sources.coingeko" in config_error(path)


def test_interval_zero_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[sources.coingecko]\ninterval = 0\n")
    message = config_error(path)
    assert "sources.coingecko.interval" in message
    assert "1" in message.split("sources.coingecko.interval", 1)[1]


def test_interval_one_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "[sources.coingecko]\ninterval = 1\n")
    assert load_config(path).sources.coingecko.interval == 1


def test_wrong_type_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[sources.coingecko]\nmax_coins = "lots"\n')
    message = config_error(path)
    assert "sources.coingecko.max_coins" in message
    assert "integer" in message


def test_wrong_type_for_a_table_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[sources]\ncoingecko = 5\n")
    assert "sources.coingecko" in config_error(path)


def test_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[ui]\nstart_screen = "caf\xe9"\n')
    config_error(path)


# -- secrets and roots ---------------------------------------------------------------------------


def test_no_key_no_plan() -> None:
    secrets = load_secrets({})
    assert secrets.coingecko_api_key is None
    assert secrets.coingecko_plan is None
    assert coingecko_root(Config(), secrets) == PUBLIC_ROOT


def test_a_key_without_a_plan_is_demo() -> None:
    secrets = load_secrets({"COINGECKO_API_KEY": KEY})
    assert secrets.coingecko_plan == "demo"
    assert secrets.coingecko_api_key is not None
    assert secrets.coingecko_api_key.get_secret_value() == KEY
    assert KEY not in repr(secrets) and KEY not in str(secrets)
    assert coingecko_root(Config(), secrets) == PUBLIC_ROOT


def test_invalid_plan_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="COINGECKO_API_PLAN"):
        load_secrets({"COINGECKO_API_KEY": KEY, "COINGECKO_API_PLAN": "enterprise"})
    monkeypatch.setenv("COINGECKO_API_PLAN", "platinum")
    with pytest.raises(ConfigError, match="COINGECKO_API_PLAN"):
        load_secrets()


def test_plan_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINGECKO_API_KEY", KEY)
    monkeypatch.setenv("COINGECKO_API_PLAN", "Pro")
    assert load_secrets().coingecko_plan == "pro"


def test_plan_pro_without_base_url_uses_the_pro_root() -> None:
    assert coingecko_root(Config(), Secrets(coingecko_plan="pro")) == PRO_ROOT
    assert coingecko_root(Config(), Secrets(coingecko_plan="demo")) == PUBLIC_ROOT


def test_explicit_base_url_wins_over_the_plan(tmp_path: Path) -> None:
    mirror = "http://127.0.0.1:8080/api/v3"
    config = load_config(write(tmp_path, f'[sources.coingecko]\nbase_url = "{mirror}"\n'))
    for plan in ("pro", "demo", None):
        assert coingecko_root(config, Secrets(coingecko_plan=plan)) == mirror
    # even when it happens to be the public root and the plan is pro
    public = load_config(write(tmp_path, f'[sources.coingecko]\nbase_url = "{PUBLIC_ROOT}"\n'))
    assert coingecko_root(public, Secrets(coingecko_plan="pro")) == PUBLIC_ROOT


# -- masking -------------------------------------------------------------------------------------


def longest_shared_run(secret: str, shown: str) -> int:
    return max(
        (
            j - i
            for i in range(len(secret))
            for j in range(i + 1, len(secret) + 1)
            if secret[i:j] in shown
        ),
        default=0,
    )


@pytest.mark.parametrize("length", [1, 3, 4, 5, 8, 11, 12, 13, 24, 40, 200])
def test_mask_never_reveals_more_than_four_characters(length: int) -> None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&()*"
    secret = (alphabet * 3)[:length]
    shown = mask(SecretStr(secret))
    assert secret not in shown
    assert longest_shared_run(secret, shown) <= 4
    assert shown  # says something: that a key is set


def test_mask_of_a_real_looking_key_shows_its_last_four() -> None:
    shown = mask(SecretStr(KEY))
    assert KEY[-4:] in shown
    assert KEY[:-4] not in shown
    assert longest_shared_run(KEY, shown) == 4


def test_mask_of_nothing_says_not_set() -> None:
    assert "not set" in mask(None)


# -- log redaction -------------------------------------------------------------------------------


def filtered(filt: RedactingFilter, msg: str, *args: object) -> str:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args or None, None)
    assert filt.filter(record) is True
    return record.getMessage()


def test_redacting_filter_removes_a_known_key() -> None:
    filt = RedactingFilter([KEY])
    out = filtered(filt, "calling with %s and again %s", KEY, KEY)
    assert KEY not in out
    assert out.count("[redacted]") == 2
    assert out.startswith("calling with ")


def test_redacting_filter_removes_api_key_query_values() -> None:
    filt = RedactingFilter()
    out = filtered(
        filt, "GET https://x/api/v3/ping?x_cg_demo_api_key=abc123SECRET&api_key=def456SECRET&a=1"
    )
    assert "abc123SECRET" not in out and "def456SECRET" not in out
    assert "api_key=[redacted]" in out
    assert out.endswith("&a=1")


def test_redacting_filter_removes_header_values() -> None:
    filt = RedactingFilter()
    for text in (
        "x-cg-demo-api-key: CG-headerSECRET1",
        "X-Cg-Pro-Api-Key: CG-headerSECRET1",
        "headers={'x-cg-demo-api-key': 'CG-headerSECRET1', 'accept': 'application/json'}",
        '{"x-cg-pro-api-key": "CG-headerSECRET1"}',
    ):
        out = filtered(filt, text)
        assert "headerSECRET1" not in out, out
        assert "[redacted]" in out


def test_redacting_filter_keeps_ordinary_messages() -> None:
    filt = RedactingFilter([KEY])
    assert filtered(filt, "poll %s stored %d items", "coingecko", 6) == (
        "poll coingecko stored 6 items"
    )


def test_redaction_through_a_logger_including_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter([KEY]))
    log = logging.getLogger("test_config.redaction")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        log.debug("header %s", {"x-cg-demo-api-key": KEY})
        try:
            raise RuntimeError(f"failed with key {KEY} in ?api_key={KEY}")
        except RuntimeError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "RuntimeError" in text and "boom" in text
    assert KEY not in text
    assert KEY[:-4] not in text


def test_fleet_thresholds_merge_with_defaults_and_are_checked(tmp_path) -> None:
    from explorer.config import ConfigError, load_config

    path = tmp_path / "t.toml"
    path.write_text("[fleet.thresholds]\ngpu_temp_c = { warn = 70, critical = 80 }\n")
    thresholds = load_config(path).fleet.thresholds
    assert (thresholds["gpu_temp_c"].warn, thresholds["gpu_temp_c"].critical) == (70, 80)
    assert thresholds["cpu_pct"].critical == 95  # defaults kept for figures not set
    path.write_text("[fleet.thresholds]\ncpu_pct = { warn = 90, critical = 80 }\n")
    with pytest.raises(ConfigError, match="fleet.thresholds.cpu_pct"):
        load_config(path)
    path.write_text("[fleet.thresholds]\nbogus = { warn = 1, critical = 2 }\n")
    with pytest.raises(ConfigError, match="fleet.thresholds"):
        load_config(path)
