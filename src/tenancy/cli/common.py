"""What every command shares: settings, wired services, JSON output, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from tenancy.bootstrap import Services, build, log_directory
from tenancy.config import Settings
from tenancy.logging_setup import configure_logging

__all__ = ["JsonOption", "console", "fail", "load_settings", "print_json", "services_for"]

console = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


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


@contextmanager
def services_for(settings: Settings | None = None) -> Iterator[Services]:
    settings = settings or load_settings()
    configure_logging(settings.log_level, log_dir=log_directory(settings))
    services = build(settings)
    try:
        yield services
    finally:
        services.close()


def print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, default=str))
