"""Prometheus file_sd target lists (JSON or YAML), re-read when the file changes.

Each target becomes a node named by its ``instance`` label (default: the ``host:port`` address, as
in Prometheus); its labels are kept. A file that turns bad keeps the last good list and says why.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sources.exporter import Credentials, Target
from sources.text import one_line

log = logging.getLogger(__name__)
MAX_TARGETS = 100_000
NO_CREDENTIALS = Credentials()


class FileSdError(ValueError):
    """The file cannot be read as a file_sd list; the message says where."""


def parse_file_sd(
    text: str,
    *,
    path: Path,
    scheme: str = "http",
    metrics_path: str = "/metrics",
    credentials: Credentials = NO_CREDENTIALS,
    ca_file: str | None = None,
    insecure: bool = False,
) -> list[Target]:
    """Targets from a file_sd document: ``[{"targets": [...], "labels": {...}}, ...]``."""
    try:
        data: Any = (
            yaml.safe_load(text) if path.suffix.lower() in (".yml", ".yaml") else json.loads(text)
        )
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        raise FileSdError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {one_line(exc, 120)}"
        ) from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise FileSdError(f"{path}: expected a list of target groups")
    targets: list[Target] = []
    for number, group in enumerate(data):
        if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
            raise FileSdError(f"{path}: group {number}: needs a 'targets' list")
        labels = group.get("labels")
        labels = {} if labels is None else labels
        if not isinstance(labels, dict):
            raise FileSdError(f"{path}: group {number}: 'labels' must be a mapping")
        labels = {str(k): str(v) for k, v in labels.items()}
        group_scheme = labels.pop("__scheme__", scheme)
        group_path = labels.pop("__metrics_path__", metrics_path)
        for address in group["targets"]:
            if not isinstance(address, str) or not address or "/" in address:
                raise FileSdError(f"{path}: group {number}: bad target {one_line(address, 60)}")
            own = {k: v for k, v in labels.items() if not k.startswith("__")}
            name = own.pop("instance", address)
            targets.append(
                Target(
                    name=name,
                    url=f"{group_scheme}://{address}{group_path}",
                    labels=own,
                    credentials=credentials,
                    ca_file=ca_file,
                    insecure=insecure,
                )
            )
            if len(targets) > MAX_TARGETS:
                raise FileSdError(f"{path}: more than {MAX_TARGETS} targets")
    return targets


@dataclass
class FileSdWatcher:
    """Re-reads ``path`` when its modification time or size changes."""

    path: Path
    scheme: str = "http"
    metrics_path: str = "/metrics"
    credentials: Credentials = Credentials()
    ca_file: str | None = None
    insecure: bool = False
    targets: list[Target] = field(default_factory=list)
    error: str | None = None
    _stamp: tuple[int, int] | None = None

    def load(self) -> list[Target]:
        """The current targets; the last good list when the file is missing or bad."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror or exc}"
            return self.targets
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return self.targets
        try:
            text = self.path.read_text(encoding="utf-8")
            self.targets = parse_file_sd(
                text,
                path=self.path,
                scheme=self.scheme,
                metrics_path=self.metrics_path,
                credentials=self.credentials,
                ca_file=self.ca_file,
                insecure=self.insecure,
            )
            self.error = None
            log.info("file_sd %s: %d targets", self.path, len(self.targets))
        except (OSError, UnicodeDecodeError, FileSdError) as exc:
            self.error = one_line(exc, 200)
            log.warning("file_sd: %s (keeping %d targets)", self.error, len(self.targets))
        self._stamp = stamp
        return self.targets
