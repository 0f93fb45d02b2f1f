"""The `tenancy` command line (Typer). Each module registers its commands on `app`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tenancy.cli import alerts, audit, aws, core, lifecycle, logs, members, ops, runbook, subscription, tenant, usage
from tenancy.cli.common import show_logs_on_terminal
from tenancy.errors import TenancyError

__all__ = ["app", "main"]

app = typer.Typer(
    name="tenancy",
    help="Tenancy: PayFast payment in, working Site Builder tenant out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also print the log lines on stderr (JSON, at TENANCY_LOG_LEVEL). Without it a command"
            " prints only its own output and logs to TENANCY_HOME/logs; serve and worker always log to stderr.",
        ),
    ] = False,
) -> None:
    show_logs_on_terminal(verbose)


core.register(app)
runbook.register(app)
alerts.register(app)
logs.register(app)
audit.register(app)
aws.register(app)
ops.register(app)
subscription.register(app)
lifecycle.register(app)
tenant.register(app)
usage.register(app)
members.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: a TenancyError becomes one line on stderr, never a traceback."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="tenancy", standalone_mode=True)
    except TenancyError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
