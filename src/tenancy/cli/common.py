"""What every command shares: settings, wired services, JSON output, one-line errors, and where
log lines go: one-shot commands print only their own output and log to TENANCY_HOME/logs (and
stderr too with `tenancy --verbose`); the services (`serve`, `worker`) log to stderr as well."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from tenancy.bootstrap import Services, build, log_directory
from tenancy.config import Settings
from tenancy.logging_setup import configure_logging

__all__ = [
    "JsonOption",
    "OperatorOption",
    "console",
    "fail",
    "load_settings",
    "operator_name",
    "print_json",
    "services_for",
    "show_logs_on_terminal",
]

console = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
OperatorOption = Annotated[
    str | None, typer.Option("--operator", help="Who is acting, for the repair trail (default: $USER).")
]


def operator_name(operator: str | None) -> str:
    """Who an operator's change is recorded against: `--operator`, else the login name."""
    return operator or os.environ.get("USER") or getpass.getuser()


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        # Only locations and messages: the input values may be secrets.
        problems = "; ".join(
            f"TENANCY_{'_'.join(str(part) for part in issue['loc']).upper() or 'SETTINGS'}: {issue['msg']}"
            for issue in error.errors(include_input=False)
        )
        fail(f"configuration: {problems}", 2)


class _Verbosity:
    """Whether `tenancy --verbose` asked for log lines on the terminal (set once per invocation)."""

    logs_on_terminal = False


def show_logs_on_terminal(shown: bool) -> None:
    _Verbosity.logs_on_terminal = shown


@contextmanager
def services_for(settings: Settings | None = None, *, logs_on_terminal: bool = False) -> Iterator[Services]:
    """The wired services for one command. Log lines go to TENANCY_HOME/logs, and to stderr only
    for a service (`logs_on_terminal`) or with `--verbose`: the terminal of a one-shot command
    shows what the command says, not what the stores and providers logged on its way."""
    settings = settings or load_settings()
    terminal = logs_on_terminal or _Verbosity.logs_on_terminal
    configure_logging(settings.log_level, log_dir=log_directory(settings), terminal=terminal)
    services = build(settings)
    try:
        yield services
    finally:
        services.close()


def print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, default=str))
