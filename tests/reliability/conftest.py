"""Fixtures of the reliability tests: an unprivileged user (the cache: tests/conftest.py)."""

from __future__ import annotations

from tests.support.privdrop import unprivileged  # noqa: F401 - a fixture, used by name
