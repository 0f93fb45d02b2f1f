"""`tenancy tenant`: a tenant's data on request: `export` (everything held about it, as JSON, for
its owner's data request) and `delete` (at once, on request: recorded with the operator and the
reason; the tombstone and the billing history are kept)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tenancy.cli.common import JsonOption, OperatorOption, fail, operator_name, print_json, services_for
from tenancy.cli.subscription import SelectorArgument, selected_tenant_id
from tenancy.domain.clock import format_timestamp
from tenancy.domain.lifecycle import Trigger
from tenancy.domain.model import RepairRecord
from tenancy.domain.plurals import plural
from tenancy.errors import TenancyError

__all__ = ["register", "tenant_app"]

tenant_app = typer.Typer(help="A tenant's data on request: export it, or delete it.", no_args_is_help=True)

DELETE_FINDING = "tenant_delete"  # the repair trail's name for an operator's deletion


def register(app: typer.Typer) -> None:
    app.add_typer(tenant_app, name="tenant")


@tenant_app.command("export")
def export(
    selector: SelectorArgument,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON here instead of stdout.")] = None,
) -> None:
    """Everything the system holds about a tenant, as one JSON document: the tenant record, its
    people, the subscription and billing history, the lifecycle history, payments, jobs and emails."""
    with services_for() as services:
        tenant_id = selected_tenant_id(services, selector)
        try:
            document = services.offboarding.export(tenant_id)
        except TenancyError as error:
            fail(str(error))
    if out is None:
        print_json(document)
        return
    out.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    out.chmod(0o600)  # a person's data: readable by the operator alone
    typer.echo(f"wrote {out} ({tenant_id})")


@tenant_app.command("delete")
def delete(
    selector: SelectorArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (the owner's request, say): kept in the history.")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
    operator: OperatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deletes a tenant now, on request: its identity users and users records go, its record
    becomes a tombstone (id, owner email hash, plan, dates), its billing history stays. Run again
    on a deleted tenant, it removes whoever is left."""
    who = operator_name(operator)
    with services_for() as services:
        tenant_id = selected_tenant_id(services, selector)
        tenant = services.tenants.get(tenant_id)
        if tenant is None:
            fail(f"no tenant {tenant_id}")
        if not reason.strip() and tenant.status.value != "deleted":
            fail("say why with --reason (the owner's request, say): it is kept in the tenant's history", 2)
        if not yes and not typer.confirm(f"Delete tenant {tenant_id} ({tenant.name}) and its people for good?"):
            fail("nothing deleted", 1)
        try:
            deleted = services.offboarding.delete(tenant_id, trigger=Trigger.OPERATOR, actor=who, reason=reason)
        except TenancyError as error:
            fail(str(error))
        services.trail.record(
            RepairRecord(
                at=format_timestamp(services.clock.now()),
                operator=who,
                transaction_id=tenant.billing.transaction_id,
                tenant_id=tenant_id,
                email=None,
                finding=DELETE_FINDING,
                actions=(f"delete tenant {tenant_id}: {reason or 'finish removing its people'}",),
                before={"tenant_status": tenant.status.value},
                after={"tenant_status": "deleted", "people_removed": len(deleted.people_removed)},
                outcome="finished" if deleted.already else "deleted",
            )
        )
    if as_json:
        print_json(
            {
                "tenant_id": tenant_id,
                "already_deleted": deleted.already,
                "people_removed": list(deleted.people_removed),
                "tombstone": {
                    "owner_email_hash": deleted.tombstone.owner_email_hash,
                    "plan": deleted.tombstone.plan,
                    "created_at": deleted.tombstone.created_at,
                    "cancelled_at": deleted.tombstone.cancelled_at,
                    "deleted_at": deleted.tombstone.deleted_at,
                },
            }
        )
        return
    people = plural(len(deleted.people_removed), "person", "people")
    typer.echo(f"tenant {tenant_id} deleted; {people} removed; tombstone and billing history kept")
