"""``depin-explorer ssh-serve``: the console over SSH, public keys only, one read-only viewer each.

explorer/cli.py registers this command lazily; import ``explorer.cli``, not this module, first.
"""

from __future__ import annotations

from typing import Any

import click

from explorer.cli import _merge, fail, global_options


@click.command("ssh-serve")
@global_options
@click.pass_context
def ssh_serve(ctx: click.Context, **globals_: Any) -> None:
    """Serve the console over SSH to the keys in an authorized_keys file (read-only)."""
    _merge(ctx, **globals_)
    fail("ssh-serve is not built yet")
