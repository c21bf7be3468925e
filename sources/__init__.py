"""Upstream sources: one module per API; no Textual, no SQLite."""
