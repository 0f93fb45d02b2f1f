"""`tenancy service-keys` (the service API's credentials: create, list, revoke) and `tenancy
usage` (a tenant's usage against its limits: show, and an operator's correction, kept in the
repair trail)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenancy.cli.common import JsonOption, OperatorOption, console, fail, operator_name, print_json, services_for
from tenancy.cli.subscription import SelectorArgument, YesOption, selected_tenant_id
from tenancy.domain.usage import Entitlements, Metric, refusal_reason
from tenancy.errors import ConfigurationError, ItemAlreadyExistsError, TenancyError

__all__ = ["register", "service_keys_app", "usage_app"]

service_keys_app = typer.Typer(help="The service API's keys: create, list, revoke.", no_args_is_help=True)
usage_app = typer.Typer(help="A tenant's usage against its plan's limits: show, correct.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(service_keys_app, name="service-keys")
    app.add_typer(usage_app, name="usage")


@service_keys_app.command("create")
def create_key(name: Annotated[str, typer.Argument(help="Whose key: lower-case letters, digits, dashes.")]) -> None:
    """Makes a key and prints it once: only a keyed hash of it is kept, so it cannot be shown again."""
    with services_for() as services:
        try:
            key = services.service_keys.create(name)
        except ValueError as error:
            fail(str(error), 2)
        except ItemAlreadyExistsError:
            fail(f"a key named {name} exists (revoked keys keep their names): choose another name")
        except ConfigurationError as error:
            fail(str(error), 2)
    typer.echo(key)
    typer.echo(
        f"Keep it now: it is shown only this once. The Site Builder application sends it as "
        f"`Authorization: Bearer <key>`; `tenancy service-keys revoke {name}` ends it.",
        err=True,
    )


@service_keys_app.command("list")
def list_keys(as_json: JsonOption = False) -> None:
    """Every key's name, when it was made, and when it was revoked (the keys themselves are never kept)."""
    with services_for() as services:
        keys = services.service_keys.all()
    if as_json:
        print_json([{"name": key.name, "created_at": key.created_at, "revoked_at": key.revoked_at} for key in keys])
        return
    if not keys:
        typer.echo("No service keys. Make one with `tenancy service-keys create NAME`.")
        return
    for key in keys:
        state = "active" if key.active else f"revoked {key.revoked_at}"
        typer.echo(f"{key.name}  created {key.created_at}  {state}")


@service_keys_app.command("revoke")
def revoke_key(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Ends a key at once: the next request with it answers 401."""
    with services_for() as services:
        found = services.service_key_store.get(name)
        if found is None:
            fail(f"no service key named {name} (`tenancy service-keys list` shows them)")
        if not services.service_keys.revoke(name):
            fail(f"the key {name} was revoked already, at {found.revoked_at}")
    typer.echo(f"revoked {name}: requests with it are refused from now on")


def _document(entitlements: Entitlements) -> dict[str, object]:
    return {
        "tenant_id": entitlements.tenant_id,
        "status": entitlements.status.value,
        "plan": entitlements.plan,
        "active": refusal_reason(entitlements.status) is None,
        "period": {"start": entitlements.period.start.isoformat(), "end": entitlements.period.end.isoformat()},
        "metrics": {
            metric.value: {
                "used": entitlements.used(metric),
                "limit": entitlements.limit(metric),
                "remaining": entitlements.remaining(metric),
            }
            for metric in Metric
        },
        "over_limit": [metric.value for metric in entitlements.over_limit()],
    }


@usage_app.command("show")
def show(selector: SelectorArgument, as_json: JsonOption = False) -> None:
    """The tenant's usage in its current period against its plan's limits, and what remains."""
    with services_for() as services:
        tenant_id = selected_tenant_id(services, selector)
        try:
            entitlements = services.usage.entitlements(tenant_id)
        except TenancyError as error:
            fail(str(error))
    if as_json:
        print_json(_document(entitlements))
        return
    period = entitlements.period
    console.print(
        f"{entitlements.tenant_id}  {entitlements.plan}  {entitlements.status.value}"
        f"  period {period.start.isoformat()} to {period.end.isoformat()}",
        highlight=False,
    )
    for metric in Metric:
        used, limit = entitlements.used(metric), entitlements.limit(metric)
        note = "  OVER THE LIMIT" if used > limit else ""
        console.print(f"  {metric.value:<12} {used} of {limit} {metric.unit}{note}", highlight=False)
    reason = refusal_reason(entitlements.status)
    if reason is not None:
        console.print(f"  no usage may be recorded now: {reason}", highlight=False)
    if entitlements.over_limit():
        console.print(
            "  Usage above the limit is kept; new usage of it is refused until it comes down or the plan goes up.",
            highlight=False,
        )


@usage_app.command("set")
def set_usage(
    selector: SelectorArgument,
    metric: Annotated[str, typer.Argument(help="generations, sites or storage_mb.")],
    value: Annotated[int, typer.Argument(help="The corrected level (0 or more).")],
    reason: Annotated[str, typer.Option("--reason", help="Why: kept in the repair trail.")] = "",
    yes: YesOption = False,
    operator: OperatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Corrects a metric by hand, whatever the limit (a count the application got wrong),
    recorded in the repair trail with who did it and why."""
    try:
        chosen = Metric.named(metric)
    except ValueError as error:
        fail(str(error), 2)
    if value < 0:
        fail("usage cannot be below zero", 2)
    if not reason.strip():
        fail('say why with --reason "...": it is kept in the repair trail', 2)
    who = operator_name(operator)
    with services_for() as services:
        tenant_id = selected_tenant_id(services, selector)
        if not yes and not typer.confirm(f"Set {chosen.value} of {tenant_id} to {value}?"):
            fail("nothing changed", 1)
        try:
            corrected = services.usage.correct(tenant_id, chosen, value, reason=reason.strip(), operator=who)
        except TenancyError as error:
            fail(str(error))
    if as_json:
        print_json(
            {"tenant_id": tenant_id, "metric": chosen.value, "before": corrected.before, "after": corrected.after}
        )
        return
    typer.echo(
        f"{tenant_id}: {chosen.value} set from {corrected.before} to {corrected.after} (kept in the repair trail)"
    )
