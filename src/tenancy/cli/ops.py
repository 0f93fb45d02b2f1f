"""`tenancy ops`: the operations console's own accounts (operators, who belong to no tenant)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenancy.cli.common import JsonOption, fail, print_json, services_for
from tenancy.domain.ids import normalize_email
from tenancy.errors import InvalidInputError, NotFoundError

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


@ops_app.command("list-operators")
def list_operators(as_json: JsonOption = False) -> None:
    """List the operator accounts: email, status and whether each is enabled."""
    with services_for() as services:
        operators = services.operators.list_operators()
    rows = [
        {"email": user.username, "status": user.status.value, "enabled": user.enabled, "created_at": user.created_at}
        for user in operators
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no operators yet: add one with `tenancy ops add-operator EMAIL`")
        return
    for row in rows:
        state = "" if row["enabled"] else " (disabled)"
        typer.echo(f"{row['email']}  {row['status']}{state}")


@ops_app.command("remove-operator")
def remove_operator(email: Annotated[str, typer.Argument(help="The operator's email address.")]) -> None:
    """Delete an operator account; every session of theirs ends at once. Tenant accounts are refused."""
    with services_for() as services:
        try:
            services.operators.remove_operator(email)
        except NotFoundError as error:
            fail(str(error))
        except InvalidInputError as error:
            fail(str(error), 2)
    typer.echo(f"operator {normalize_email(email)} removed; their sessions are ended")
