"""Prometheus file_sd lists: JSON and YAML, labels kept, re-read on change, bad files keep the
last good list."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sources.exporter import Credentials, credentials_from_env
from sources.file_sd import FileSdError, FileSdWatcher, parse_file_sd

GROUPS = [
    {"targets": ["10.0.0.5:9100", "10.0.0.6:9100"], "labels": {"network": "io.net", "rack": "a"}},
    {
        "targets": ["gpu-7.lan:9100"],
        "labels": {"instance": "gpu-7", "__scheme__": "https", "__metrics_path__": "/node/metrics"},
    },
]


def test_json_groups_become_named_targets_with_labels(tmp_path: Path) -> None:
    targets = parse_file_sd(json.dumps(GROUPS), path=tmp_path / "t.json")
    assert [t.name for t in targets] == ["10.0.0.5:9100", "10.0.0.6:9100", "gpu-7"]
    assert targets[0].url == "http://10.0.0.5:9100/metrics"
    assert targets[0].labels == {"network": "io.net", "rack": "a"}
    assert targets[0].network == "io.net"
    assert targets[2].url == "https://gpu-7.lan:9100/node/metrics"
    assert "__scheme__" not in targets[2].labels


def test_yaml_is_read_too(tmp_path: Path) -> None:
    text = "- targets: ['127.0.0.1:9100']\n  labels:\n    network: akash\n"
    [target] = parse_file_sd(text, path=tmp_path / "t.yml")
    assert target.network == "akash" and target.url == "http://127.0.0.1:9100/metrics"


@pytest.mark.parametrize(
    "text",
    [
        '{"targets": []}',
        '[{"labels": {}}]',
        '[{"targets": [5]}]',
        '[{"targets": ["a/b"]}]',
        "[",
        '[{"targets": ["x"], "labels": []}]',
    ],
)
def test_bad_documents_are_refused_with_the_path(tmp_path: Path, text: str) -> None:
    with pytest.raises(FileSdError, match="t.json"):
        parse_file_sd(text, path=tmp_path / "t.json")


def test_watcher_rereads_on_change_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps([{"targets": ["127.0.0.1:9100"]}]))
    watcher = FileSdWatcher(path)
    assert [t.name for t in watcher.load()] == ["127.0.0.1:9100"]
    path.write_text(json.dumps([{"targets": ["127.0.0.1:9100", "127.0.0.1:9101"]}]))
    os.utime(path, ns=(1, 2_000_000_000_000))  # a new mtime even within one clock tick
    assert len(watcher.load()) == 2 and watcher.error is None
    path.write_text("[not json")
    os.utime(path, ns=(1, 3_000_000_000_000))
    assert len(watcher.load()) == 2  # the last good list stays
    assert watcher.error and "nodes.json" in watcher.error
    path.unlink()
    assert len(watcher.load()) == 2 and "nodes.json" in watcher.error


def test_credentials_come_from_named_variables_and_stay_secret() -> None:
    creds = credentials_from_env("ops", "PASS_VAR", None, environ={"PASS_VAR": "s3cret-pass"})
    assert creds.headers() == {"authorization": "Basic b3BzOnMzY3JldC1wYXNz"}
    assert "s3cret" not in repr(creds)
    token = credentials_from_env(None, None, "TOK", environ={"TOK": "abc.def.ghi"})
    assert token.headers() == {"authorization": "Bearer abc.def.ghi"}
    assert Credentials().headers() == {}
    with pytest.raises(ValueError, match="MISSING is not set"):
        credentials_from_env("ops", "MISSING", None, environ={})
