"""`tenancy members`: an operator's view and changes of a tenant's team (list, add, remove,
set-role), each change with `--dry-run` or `--yes` and kept in the repair trail."""

from __future__ import annotations

from typing import Annotated

import typer

from tenancy.bootstrap import Services
from tenancy.cli.common import JsonOption, OperatorOption, fail, operator_name, print_json, services_for
from tenancy.cli.subscription import DryRunOption, SelectorArgument, YesOption, selected_tenant_id
from tenancy.domain.ids import normalize_email
from tenancy.domain.members import Role
from tenancy.domain.model import Tenant, UserRecord, UserStatus
from tenancy.errors import InvalidInputError, TenancyError

__all__ = ["members_app", "register"]

members_app = typer.Typer(help="A tenant's team members: list, add, remove, set-role.", no_args_is_help=True)

EmailArgument = Annotated[str, typer.Argument(metavar="EMAIL", help="The member's email.")]
RoleArgument = Annotated[str, typer.Argument(metavar="ROLE", help="tenant_admin, editor or viewer.")]


def register(app: typer.Typer) -> None:
    app.add_typer(members_app, name="members")


def _role(name: str) -> Role:
    try:
        return Role.named(name)
    except ValueError as error:
        fail(str(error), 2)


def _tenant(services: Services, selector: str) -> Tenant:
    tenant_id = selected_tenant_id(services, selector)
    tenant = services.tenants.get(tenant_id)
    if tenant is None:
        fail(f"no tenant {tenant_id}")
    return tenant


def _member(services: Services, tenant: Tenant, email: str) -> UserRecord:
    # The one normalisation of every email lookup: `lower()` alone would let a lookalike (the
    # Kelvin sign, full-width letters) name, and change, another member.
    try:
        wanted = normalize_email(email)
    except InvalidInputError as error:
        fail(str(error), 2)
    for user in services.team.members(tenant.tenant_id):
        if user.email == wanted:
            return user
    fail(f"{email} is not a member of {tenant.tenant_id} (`tenancy members list {tenant.tenant_id}` shows them)")


def _identity_left(services: Services, tenant: Tenant, member: UserRecord) -> bool:
    identity = services.identity.get_user(member.email)
    return identity is not None and identity.tenant_id == tenant.tenant_id


@members_app.command("list")
def list_members(selector: SelectorArgument, as_json: JsonOption = False) -> None:
    """The tenant's members (role, status, owner), its pending invitations and its seats."""
    with services_for() as services:
        tenant = _tenant(services, selector)
        members = services.team.members(tenant.tenant_id)
        invitations = services.team.invitations(tenant.tenant_id, pending_only=True)
        used, limit = services.team.seats(tenant)
    if as_json:
        print_json(
            {
                "tenant_id": tenant.tenant_id,
                "seats": {"used": used, "limit": limit},
                "members": [
                    {
                        "user_id": user.user_id,
                        "email": user.email,
                        "role": user.role,
                        "status": user.status.value,
                        "owner": user.user_id == tenant.owner_user_id,
                        "joined_at": user.created_at,
                        "last_sign_in_at": user.last_sign_in_at,
                    }
                    for user in members
                ],
                "invitations": [
                    {
                        "invitation_id": each.invitation_id,
                        "email": each.email,
                        "role": each.role.value,
                        "expires_at": each.expires_at,
                    }
                    for each in invitations
                ],
            }
        )
        return
    typer.echo(f"{tenant.tenant_id} ({tenant.name}), plan {tenant.plan}: {used} of {limit} seats held")
    for user in members:
        owner = "  owner" if user.user_id == tenant.owner_user_id else ""
        seen = f"  last sign-in {user.last_sign_in_at}" if user.last_sign_in_at else "  never signed in"
        typer.echo(f"  {user.email}  {user.role}  {user.status.value}{owner}{seen}")
    for each in invitations:
        typer.echo(f"  {each.email}  {each.role.value}  invited (until {each.expires_at})")


@members_app.command("add")
def add(
    selector: SelectorArgument,
    email: EmailArgument,
    role: RoleArgument = "editor",
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    operator: OperatorOption = None,
) -> None:
    """Invites EMAIL to the tenant as ROLE: the invitation email goes to them, and a seat is held
    until they accept (seven days)."""
    chosen = _role(role)
    who = operator_name(operator)
    with services_for() as services:
        tenant = _tenant(services, selector)
        if dry_run:
            used, limit = services.team.seats(tenant)
            typer.echo(f"would invite {email} to {tenant.tenant_id} as {chosen.value} ({used} of {limit} seats held)")
            return
        if not yes and not typer.confirm(f"Invite {email} to {tenant.tenant_id} as {chosen.value}?"):
            fail("nothing changed", 1)
        try:
            invited = services.team.invite(tenant, email, chosen, by=who)
        except TenancyError as error:
            fail(str(error))
    typer.echo(
        f"invited {invited.invitation.email} as {chosen.value}; the link works until {invited.invitation.expires_at}"
    )


@members_app.command("remove")
def remove(
    selector: SelectorArgument,
    email: EmailArgument,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    operator: OperatorOption = None,
) -> None:
    """Removes a member at once: their sign-in and sessions end, their seat is given back."""
    who = operator_name(operator)
    with services_for() as services:
        tenant = _tenant(services, selector)
        member = _member(services, tenant, email)
        if member.status is not UserStatus.ACTIVE and not _identity_left(services, tenant, member):
            # Nothing left to do; a removal interrupted before its identity user went is finished below.
            fail(f"{member.email} was removed already")
        if dry_run:
            typer.echo(f"would remove {member.email} ({member.role}) from {tenant.tenant_id}")
            return
        if not yes and not typer.confirm(f"Remove {member.email} from {tenant.tenant_id}?"):
            fail("nothing changed", 1)
        try:
            services.team.remove(tenant, member.user_id, by=who)
        except TenancyError as error:
            fail(str(error))
    typer.echo(f"removed {member.email} from {tenant.tenant_id}: signed out everywhere, seat given back")


@members_app.command("set-role")
def set_role(
    selector: SelectorArgument,
    email: EmailArgument,
    role: RoleArgument,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    operator: OperatorOption = None,
) -> None:
    """Changes a member's role (a tenant always keeps one tenant admin)."""
    chosen = _role(role)
    who = operator_name(operator)
    with services_for() as services:
        tenant = _tenant(services, selector)
        member = _member(services, tenant, email)
        if dry_run:
            typer.echo(f"would set the role of {member.email} from {member.role} to {chosen.value}")
            return
        if not yes and not typer.confirm(f"Make {member.email} {chosen.value}?"):
            fail("nothing changed", 1)
        try:
            services.team.set_role(tenant, member.user_id, chosen, by=who)
        except TenancyError as error:
            fail(str(error))
    typer.echo(f"{member.email} is now {chosen.value} (signed out, to sign in with the new role)")
