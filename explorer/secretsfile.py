"""``secrets.toml`` beside the config: API keys for those who do not keep them in the environment.

The OpenSSH rule (authfile.c ``sshkey_perm_ok``; CPython ``netrc``): a file that holds keys is
refused when anyone but its owner can read it, when someone else owns it, or when others can
write its directory (they could swap it). The config file holds no secrets and is never refused
for its mode. The environment always wins over the file.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

from explorer.config import ConfigError

NAMES = ("COINGECKO_API_KEY", "COINGECKO_API_PLAN", "IONET_TOKEN")
"""What the file may set: the same names as the environment variables."""


def check_private(path: Path, info: os.stat_result) -> None:
    """Refuse a secrets file others could read, own or replace (ConfigError with the fix)."""
    uid = os.getuid()
    if info.st_uid != uid:
        raise ConfigError(
            f"{path}: holds secrets but is owned by uid {info.st_uid}, not you (uid {uid}); "
            "refusing to read it"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(
            f"{path}: holds secrets but others can read it (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    parent = path.parent.stat()
    if stat.S_IMODE(parent.st_mode) & 0o022 or parent.st_uid not in (uid, 0):
        raise ConfigError(
            f"{path}: others can replace files in {path.parent}; run: chmod 700 {path.parent}"
        )


def read_secrets_file(path: Path) -> dict[str, str]:
    """The keys in ``path`` (none when it does not exist), after the permission checks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    info = os.fstat(fd)  # the file we read, not one swapped in
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        check_private(path, info)
        raw = handle.read(64 * 1024)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # the message of a TOML error can quote the line, i.e. the key: name the problem only
        raise ConfigError(f"{path}: not valid TOML ({type(exc).__name__})") from None
    out: dict[str, str] = {}
    for name, value in data.items():
        if name not in NAMES:
            raise ConfigError(f"{path}: unknown name {name[:40]!r} (known: {', '.join(NAMES)})")
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {name}: must be a string")
        out[name] = value
    return out
