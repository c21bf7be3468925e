"""``depin-explorer serve``: the console in a browser, a read-only viewer per session."""

from __future__ import annotations

from typing import Any

import click

from explorer.cli import _merge, fail, global_options


@click.command("serve")
@global_options
@click.pass_context
def serve(ctx: click.Context, **globals_: Any) -> None:
    """Serve the console to a browser on loopback (token required; work in progress)."""
    _merge(ctx, **globals_)
    fail("serve is not available yet")
