"""The `tenancy` command line (Typer). Each module registers its commands on `app`."""

from __future__ import annotations

import sys

import typer

from tenancy.cli import alerts, audit, aws, core, logs, ops, runbook
from tenancy.errors import TenancyError

__all__ = ["app", "main"]

app = typer.Typer(
    name="tenancy",
    help="Tenancy: PayFast payment in, working Site Builder tenant out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
core.register(app)
runbook.register(app)
alerts.register(app)
logs.register(app)
audit.register(app)
aws.register(app)
ops.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: a TenancyError becomes one line on stderr, never a traceback."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="tenancy", standalone_mode=True)
    except TenancyError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
