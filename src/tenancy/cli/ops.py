"""`tenancy ops`: the operations console's own accounts (operators, who belong to no tenant)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenancy.cli.common import fail, services_for
from tenancy.errors import InvalidInputError

__all__ = ["ops_app", "register"]

ops_app = typer.Typer(help="The operations console's accounts.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(ops_app, name="ops")


@ops_app.command("add-operator")
def add_operator(email: Annotated[str, typer.Argument(help="The operator's email address.")]) -> None:
    """Create an operator account and email it a temporary password (never printed here)."""
    with services_for() as services:
        try:
            invite = services.operators.add_operator(email)
        except InvalidInputError as error:
            fail(str(error))
    if invite.created:
        typer.echo(f"operator {invite.email} invited: the temporary password is in the invitation email")
    else:
        typer.echo(f"operator {invite.email} is already an operator")
