"""Command line: the bare command starts the TUI; ``poll``, ``export`` and ``config`` for scripts.

``--config``, ``--db``, ``--offline`` and ``--log-file`` are accepted before and after any
subcommand. Heavy imports (Textual, httpx, pydantic, SQLite, asyncio) are deferred into the
commands that need them: ``--help``, ``--version`` and shell completion load none of them
(tests/unit/test_cli_startup.py, benchmarks/cli_start.py).
"""

from __future__ import annotations

import ast
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from explorer import __version__
from explorer.errors import ConfigError
from explorer.paths import (
    CONFIG_ENV,
    default_config_path,
    default_db_path,
    default_log_path,
    private_write,
    state_file_path,
)
from explorer.setup import Setup, default_setup, read_toml, start_screen
from explorer.setup import load_setup as load_setup_files

if TYPE_CHECKING:
    from explorer.host import Viewer

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2


@dataclass
class Globals:
    """Global options, merged from the group and the subcommand (the later one wins)."""

    config: Path | None = None
    db: Path | None = None
    offline: bool = False
    private: bool = False
    """Start the TUI in private mode: earnings hidden, for screen sharing."""
    log_file: Path | None = None
    at: str | None = None
    """Time travel for the TUI and exports: "2026-11-20 14:00" (local), "-3h", ISO 8601."""
    viewer: str | None = None
    """A remote session's read-only TUI ("browser", "ssh"): started by ``serve``/``ssh-serve``."""
    state_file: Path | None = None
    """The remote session's own state file (watchlist, last look), else the user's."""

    def config_path(self) -> Path:
        """``--config``, else ``DEPIN_EXPLORER_CONFIG``, else the platform config dir."""
        return self.config or default_config_path()


def _merge(ctx: click.Context, **values: Any) -> None:
    glob = ctx.ensure_object(Globals)
    for key, value in values.items():
        if value not in (None, False):
            setattr(glob, key, value)


def global_options(func: F) -> F:
    """Add the global options to a group or command; values merge into ``ctx.obj``."""
    options = [
        click.option(
            "--config",
            "config",
            type=click.Path(path_type=Path),
            default=None,
            help=f"Config file (default: ${CONFIG_ENV} or the platform config dir).",
        ),
        click.option(
            "--db",
            "db",
            type=click.Path(path_type=Path),
            default=None,
            help="SQLite history file (default: the platform data dir).",
        ),
        click.option(
            "--offline",
            "offline",
            is_flag=True,
            default=False,
            help="Make no network request; show what the cache holds.",
        ),
        click.option(
            "--private",
            "private",
            is_flag=True,
            default=False,
            help=(
                "Hide earnings on every screen and in exports (screen sharing;"
                " p toggles it, except in serve and ssh-serve sessions)."
            ),
        ),
        click.option(
            "--at",
            "at",
            default=None,
            metavar="TIME",
            help='Show the cache as of TIME: "2026-11-20 14:00" (local), -3h, -2d, ISO 8601.',
        ),
        click.option(
            "--log-file",
            "log_file",
            type=click.Path(path_type=Path),
            default=None,
            help="Debug log (default: a file in the platform state dir).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


export_format = click.option(
    "--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True
)
"""The ``--format`` of every ``export`` table."""


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """One line on stderr and an exit status; never a traceback."""
    click.echo(f"depin-explorer: {message}", err=True)
    sys.exit(code)


def _setup_loader(ctx: click.Context, data: dict[str, Any] | None = None) -> Callable[[], Setup]:
    glob = ctx.ensure_object(Globals)
    path = glob.config_path()
    return lambda: load_setup_files(
        path, required=glob.config is not None, db=glob.db, log_file=glob.log_file, data=data
    )


def load_setup(ctx: click.Context) -> Setup:
    """Load config and secrets, set up the redacting log; config errors exit 2."""
    try:
        setup = _setup_loader(ctx)()
    except ConfigError as exc:
        fail(f"config error: {exc}")
        raise  # unreachable; for the type checker
    if setup.log_problem:
        click.echo(f"depin-explorer: {setup.log_problem}", err=True)
    return setup


HELP_KEYWORDS = frozenset({"help", "short_help", "hidden", "deprecated", "cls"})
"""Arguments of a command's decorator that change what it lists; with any, it is imported."""


def _command_call(decorator: ast.expr) -> ast.Call | None:
    """The call of ``@click.command(...)``, ``@click.group(...)`` or ``@group.command(...)``."""
    if isinstance(decorator, ast.Call):
        func = decorator.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("command", "group"):
            return decorator
    return None


def lazy_help(target: str) -> str | None:
    """A lazy command's docstring ("module:function"), read from its source, not imported.

    Listing commands (``--help``, completion) needs only their help text; importing their
    modules would load the cache, pydantic or Textual behind them. None when the command is not
    a plain decorated function with a docstring: the caller imports it then.
    """
    module, name = target.split(":")
    spec = find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(spec.origin).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            for decorator in node.decorator_list:
                call = _command_call(decorator)
                if call is not None and any(k.arg in HELP_KEYWORDS for k in call.keywords):
                    return None
            return ast.get_docstring(node)  # cleaned as click cleans it (inspect.cleandoc)
    return None


class LazyGroup(click.Group):
    """A group some of whose subcommands are imported only when used.

    Click's documented pattern for lazy subcommands: starting the TUI never loads the code (and
    the cache modules) of ``db``, ``alerts`` or ``export alerts``; listing them (``--help``,
    completion) reads their help from the source (:func:`lazy_help`) without importing them.
    """

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}
        """Command name -> "module:attribute"."""
        self._listing = False

    @contextmanager
    def _listed(self) -> Iterator[None]:
        """While listing subcommands, lazy ones are stand-ins carrying their help."""
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand's name, lazy or not, for ``--help``."""
        return sorted([*super().list_commands(ctx), *self.lazy])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands section of ``--help``, lazy commands not imported."""
        with self._listed():
            super().format_commands(ctx, formatter)

    def shell_complete(
        self, ctx: click.Context, incomplete: str
    ) -> list[click.shell_completion.CompletionItem]:
        """Completions of subcommand names (with their short help) and options."""
        with self._listed():
            return super().shell_complete(ctx, incomplete)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand, imported now if it is a lazy one (a stand-in while listing)."""
        target = self.lazy.get(cmd_name)
        if self._listing and target is not None and (text := lazy_help(target)) is not None:
            return click.Command(cmd_name, help=text)
        if cmd_name in self.lazy:
            module, name = self.lazy[cmd_name].split(":")
            command: click.Command = getattr(import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy={
        "db": "explorer.db_cli:db",
        "alerts": "explorer.alerts_cli:alerts",
        "serve": "explorer.serve:serve",
        "ssh-serve": "explorer.ssh_serve:ssh_serve",
    },
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="depin-explorer")
@global_options
# What ``serve`` and ``ssh-serve`` start per session; hidden: not a mode a user picks.
@click.option("--viewer", type=click.Choice(["browser", "ssh"]), default=None, hidden=True)
@click.option("--state-file", type=click.Path(path_type=Path), default=None, hidden=True)
@click.pass_context
def cli(ctx: click.Context, **globals_: Any) -> None:
    """A terminal console for DePIN networks, markets and your own node fleet."""
    _merge(ctx, **globals_)
    if ctx.invoked_subcommand is None:
        run_tui(ctx)


def as_of(ctx: click.Context) -> datetime | None:
    """``--at`` as a UTC moment (None: live); a bad value exits 2 with the reason."""
    text = ctx.ensure_object(Globals).at
    if text is None:
        return None
    from cache.timeparse import parse_moment

    try:
        return parse_moment(text, datetime.now(UTC))
    except ValueError as exc:
        fail(f"--at: {exc}")
        raise  # unreachable


def run_tui(ctx: click.Context) -> None:
    """Start the Textual app; it validates the config after its first frame (explorer/setup)."""
    glob = ctx.ensure_object(Globals)
    at = as_of(ctx)
    path = glob.config_path()
    try:  # a missing, unreadable or malformed file: its one line before anything is drawn
        data = read_toml(path, required=glob.config is not None)
    except ConfigError as exc:
        fail(f"config error: {exc}")
        return
    # No cyclic GC while starting: everything allocated until the config is applied lives as
    # long as the app (the app freezes it then and turns the GC back on; docs/performance.md).
    gc.disable()
    from cache.db import CacheError
    from explorer.app import DepinExplorerApp

    app = DepinExplorerApp.deferred(
        _setup_loader(ctx, data),  # validated after the first frame, not read twice
        lambda: default_setup(path, glob.db),
        start_screen=start_screen(data),
        offline=glob.offline,
        state_path=glob.state_file or state_file_path(),
        at=at,
        private=glob.private,
        viewer=cast("Viewer | None", glob.viewer),  # click's Choice allows only those
    )
    try:
        app.run()
    except CacheError as exc:
        fail(str(exc))
    if app.fatal_message:
        fail(app.fatal_message, app.fatal_code)
    if app.return_code:  # a crash (its report is printed): not a success for scripts
        sys.exit(app.return_code)


@cli.command()
@global_options
@click.option("--once", is_flag=True, help="One round of every enabled source, then exit.")
@click.option(
    "--only",
    default=None,
    metavar="NAME[,NAME…]",
    help="Poll only these sources (names of [sources.NAME] tables).",
)
@click.option(
    "--metrics-listen",
    "metrics_listen",
    default=None,
    metavar="HOST:PORT",
    help="Serve /metrics for Prometheus there, e.g. 127.0.0.1:9464 ([collector] metrics_listen).",
)
@click.pass_context
def poll(
    ctx: click.Context, once: bool, only: str | None, metrics_listen: str | None, **globals_: Any
) -> None:
    """Poll sources and store every result in the cache (headless)."""
    _merge(ctx, **globals_)
    if ctx.obj.at is not None:
        fail("--at is for looking back (the TUI, export); poll always stores the present")
    setup = load_setup(ctx)
    from cache.db import CacheError
    from explorer.poller import Poller

    try:
        poller = Poller(
            setup.config,
            setup.secrets,
            setup.db_path,
            offline=ctx.obj.offline,
            on_notice=lambda message: click.echo(f"depin-explorer: {message}", err=True),
        )
    except ConfigError as exc:  # e.g. a named credentials variable that is not set
        fail(f"config error: {exc}")
        return
    names = None
    if only:
        from explorer.registry import expand_only

        names = expand_only([n.strip() for n in only.split(",") if n.strip()], poller.settings)
        unknown = [n for n in names if n not in poller.sources]
        if unknown:
            known = ", ".join(sorted(poller.sources)) or "none"
            fail(f"--only: unknown or disabled source {', '.join(unknown)} (enabled: {known})")
    import asyncio
    import os

    from explorer.metrics_listen import listener_for_poll

    try:
        listener = listener_for_poll(
            setup.config,
            setup.db_path,
            listen=metrics_listen,
            once=once,
            private=ctx.obj.private,
            state_path=ctx.obj.state_file or state_file_path(),
            intervals={name: s.interval for name, s in poller.settings.items()},
            environ=os.environ,
            warn=lambda message: click.echo(f"depin-explorer: {message}", err=True),
        )
    except ConfigError as exc:
        fail(f"config error: {exc}")
        return
    if listener is not None:
        listener.start()
    try:
        code = asyncio.run(_poll(poller, once=once, only=names))
    except CacheError as exc:
        fail(str(exc))
        return
    finally:
        if listener is not None:
            listener.stop()
    sys.exit(code)


async def _poll(poller: Any, *, once: bool, only: list[str] | None) -> int:
    import asyncio
    import signal

    await poller.prepare()
    try:
        if once:
            return _report(await poller.poll_once(only))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await poller.run(stop, only)
        return 0
    finally:
        await poller.close()


def _report(outcomes: list[Any]) -> int:
    from sources.models import MESSAGE_LEN
    from sources.text import one_line

    failed = 0
    for outcome in outcomes:
        if outcome.record is not None and not outcome.record.ok:
            failed += 1
            error = outcome.record.error
            click.echo(
                f"{outcome.source}: {error.kind}: {one_line(error.message, MESSAGE_LEN)}", err=True
            )
        elif outcome.record is not None and outcome.record.reading.errors:
            failed += 1  # partial: what came back is stored, but not every endpoint answered
            for part in outcome.record.reading.errors:
                click.echo(
                    f"{outcome.source}: partial: {part.endpoint}: {part.error.kind}: "
                    f"{one_line(part.error.message, MESSAGE_LEN)}",
                    err=True,
                )
        elif outcome.failed:  # held back: rate limited, paused or circuit open
            failed += 1
            click.echo(f"{outcome.source}: {outcome.detail}", err=True)
    return 1 if failed else 0


@cli.group(cls=LazyGroup, lazy={"alerts": "explorer.alerts_cli:export_alerts"})
@global_options
@click.pass_context
def export(ctx: click.Context, **globals_: Any) -> None:
    """Write the latest stored snapshot of a table to stdout."""
    _merge(ctx, **globals_)


@export.command("rankings")
@global_options
@export_format
@click.pass_context
def export_rankings(ctx: click.Context, fmt: str, **globals_: Any) -> None:
    """The latest rankings snapshot (live if any was stored, else the sample)."""
    _export(ctx, "rankings", fmt, globals_)


@export.command("networks")
@global_options
@export_format
@click.pass_context
def export_networks(ctx: click.Context, fmt: str, **globals_: Any) -> None:
    """Each (network, metric) with its most recent successfully fetched value."""
    _export(ctx, "networks", fmt, globals_)


@export.command("gpu-models")
@global_options
@export_format
@click.pass_context
def export_gpu_models(ctx: click.Context, fmt: str, **globals_: Any) -> None:
    """GPU models on offer per network: availability and price per GPU-hour."""
    _export(ctx, "gpu-models", fmt, globals_)


@export.command("fleet")
@global_options
@export_format
@click.pass_context
def export_fleet(ctx: click.Context, fmt: str, **globals_: Any) -> None:
    """Each (source, node) with its latest sample: up, CPU, memory, disk, GPU figures."""
    _export(ctx, "fleet", fmt, globals_)


@export.command("rewards")
@global_options
@export_format
@click.pass_context
def export_rewards(ctx: click.Context, fmt: str, **globals_: Any) -> None:
    """Every stored reward: node, network, device, when earned, amount, token, source.

    With --private every amount is written as "•••", as the Rewards screen shows it in private
    mode; missed blocks, their causes and counts stay.
    """
    _export(ctx, "rewards", fmt, globals_)


def _export(ctx: click.Context, table: str, fmt: str, globals_: dict[str, Any]) -> None:
    _merge(ctx, **globals_)
    setup = load_setup(ctx)
    at = as_of(ctx)
    from cache import export, queries
    from cache.db import CacheError, open_reader

    try:
        conn = open_reader(setup.db_path)
        try:
            keys: tuple[str, ...]
            if table == "rankings":
                keys = export.RANKINGS_KEYS
                records = export.rankings_export(conn, at)
            elif table == "fleet":
                keys = export.FLEET_KEYS
                records = export.fleet_export(conn, at)
            elif table == "rewards":
                keys = export.REWARDS_KEYS
                records = export.rewards_export(conn, at)
                if ctx.obj.private:  # the other tables hold no earnings
                    from explorer.exports import hide_reward_amounts

                    records = hide_reward_amounts(records)
            elif table == "networks":
                keys = export.NETWORKS_KEYS
                records = export.networks_records(queries.latest_metrics(conn, at))
            else:
                keys = export.GPU_MODELS_KEYS
                records = export.gpu_models_records(queries.latest_gpu_models(conn, at))
        finally:
            conn.close()
    except CacheError as exc:
        fail(str(exc), 1)
        return
    click.echo(export.to_json(records) if fmt == "json" else export.to_csv(records, keys), nl=False)


@cli.group("config")
@global_options
@click.pass_context
def config_group(ctx: click.Context, **globals_: Any) -> None:
    """Create, check and locate the configuration."""
    _merge(ctx, **globals_)


@config_group.command("init")
@global_options
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_context
def config_init(ctx: click.Context, force: bool, **globals_: Any) -> None:
    """Write a commented example config (mode 0600)."""
    _merge(ctx, **globals_)
    path = ctx.obj.config_path()
    if path.exists() and not force:
        fail(f"{path} exists; use --force to overwrite it")
    from explorer.config import EXAMPLE

    private_write(path, EXAMPLE)
    click.echo(f"wrote {path}")


@config_group.command("check")
@global_options
@click.pass_context
def config_check(ctx: click.Context, **globals_: Any) -> None:
    """Validate the config and print the effective settings, secrets masked."""
    _merge(ctx, **globals_)
    setup = load_setup(ctx)
    import tomli_w

    from explorer.config import coingecko_root, mask

    settings = setup.config.model_dump(mode="json", exclude_none=True)
    settings["sources"]["coingecko"]["base_url"] = coingecko_root(setup.config, setup.secrets)
    click.echo(
        f"# {setup.config_path}"
        f"{'' if setup.config_path.exists() else ' (not found: defaults)'}: valid"
    )
    click.echo(tomli_w.dumps(settings), nl=False)
    click.echo("\n# environment")
    click.echo(f"# COINGECKO_API_KEY = {mask(setup.secrets.coingecko_api_key)}")
    click.echo(f"# COINGECKO_API_PLAN = {setup.secrets.coingecko_plan or '(keyless)'}")


@config_group.command("path")
@global_options
@click.pass_context
def config_path(ctx: click.Context, **globals_: Any) -> None:
    """Print the paths in use: config, database, state, log."""
    _merge(ctx, **globals_)
    glob = ctx.obj
    path = glob.config_path()
    from explorer.config import load_config

    try:
        db = glob.db or load_config(path).cache.path or default_db_path()
    except ConfigError:
        db = glob.db or default_db_path()
    click.echo(f"config    {path}{'' if path.exists() else '  (not created)'}")
    click.echo(f"database  {db}")
    click.echo(f"state     {state_file_path()}")
    click.echo(f"log       {glob.log_file or default_log_path()}")


COMPLETE_VAR = "_DEPIN_EXPLORER_COMPLETE"
"""Click's completion variable for the ``depin-explorer`` program (``_{PROG}_COMPLETE``)."""


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    Load it in the shell's startup file, e.g. ``eval "$(depin-explorer completion bash)"`` in
    ~/.bashrc; docs/install.md has zsh and fish. It is click's own script, the same as
    ``_DEPIN_EXPLORER_COMPLETE=bash_source depin-explorer`` prints.
    """
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    if complete is None:  # click's Choice allows only the shells click knows
        fail(f"no completion for {shell}")
        return
    root = click.get_current_context().find_root()
    prog_name = root.info_name or "depin-explorer"
    click.echo(complete(root.command, {}, prog_name, COMPLETE_VAR).source())


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="depin-explorer")
