"""`tenancy lifecycle`: the moves time has made due (`run`, or `run --dry-run` to see them), at
now or, for a rehearsal, at another time; and a tenant's history of moves (`history`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from tenancy.cli.common import JsonOption, fail, print_json, services_for
from tenancy.cli.subscription import SelectorArgument, selected_tenant_id
from tenancy.config import PayfastMode
from tenancy.domain.lifecycle import Transition
from tenancy.domain.plurals import plural
from tenancy.errors import TenancyError
from tenancy.lifecycle.due import DueMove
from tenancy.lifecycle.sweep import SweepReport, parse_as_of

__all__ = ["lifecycle_app", "register"]

lifecycle_app = typer.Typer(
    help="The tenant lifecycle: apply what is due, and a tenant's history.", no_args_is_help=True
)

# A clock a little ahead of the server's is not "the future": only a rehearsal is refused in live mode.
_CLOCK_SKEW = timedelta(minutes=5)


def register(app: typer.Typer) -> None:
    app.add_typer(lifecycle_app, name="lifecycle")


def _transition_document(move: Transition) -> dict[str, str]:
    return {
        "tenant_id": move.tenant_id,
        "from": move.from_status.value,
        "to": move.to_status.value,
        "trigger": move.trigger.value,
        "actor": move.actor,
        "at": move.at,
        "reason": move.reason,
        "event": move.event.value,
    }


def _due_document(move: DueMove) -> dict[str, str]:
    return {"tenant_id": move.tenant_id, "from": move.leaving.value, "to": move.to.value, "reason": move.reason}


def _report_document(report: SweepReport) -> dict[str, object]:
    return {
        "as_of": report.as_of,
        "dry_run": report.dry_run,
        "applied": [_transition_document(move) for move in report.applied],
        "due": [_due_document(move) for move in report.due],
        "skipped": [{"tenant_id": tenant_id, "reason": reason} for tenant_id, reason in report.skipped],
        "finished": report.finished,
    }


@lifecycle_app.command("run")
def run(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", metavar="ISO-TIME", help="Judge what is due at this time (default: now)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what is due; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Applies every lifecycle move that is due (past due, suspended, cancelled) and prints each.
    A time in the future is a rehearsal: refused in live PayFast mode."""
    with services_for() as services:
        now = services.clock.now()
        try:
            moment = parse_as_of(as_of) if as_of else now
        except ValueError:
            fail(f"--as-of {as_of!r} is not an ISO-8601 time (e.g. 2027-03-01T00:00:00Z)", 2)
        if moment > now + _CLOCK_SKEW and services.settings.payfast_mode is PayfastMode.LIVE:
            fail("a time in the future is a rehearsal, refused in live PayFast mode (TENANCY_PAYFAST_MODE=live)", 2)
        try:
            report = services.lifecycle_sweep.run(moment, dry_run=dry_run)
            # As the schedules do: invitations past their seven days give their seats back, judged
            # at the run's time (a rehearsal ahead expires what would have expired by then; a run
            # for a past time still frees every seat already expired by now).
            expired = 0 if dry_run else services.team.expire_due(max(moment, now))
        except TenancyError as error:
            fail(str(error))
    if as_json:
        print_json(_report_document(report))
        return
    if dry_run:
        for due in report.due:
            typer.echo(f"due  {due.tenant_id}  {due.leaving.value} -> {due.to.value}  {due.reason}")
        typer.echo(f"{plural(len(report.due), 'move')} due at {report.as_of} (dry run: nothing changed)")
        return
    for move in report.applied:
        typer.echo(f"moved  {move.tenant_id}  {move.from_status.value} -> {move.to_status.value}  {move.reason}")
    for tenant_id in report.finished:
        typer.echo(f"deleted  {tenant_id}  its deletion, cut short before, finished")
    for tenant_id, reason in report.skipped:
        typer.echo(f"left   {tenant_id}  {reason} (the next run judges it again)")
    if expired:
        typer.echo(f"{plural(expired, 'invitation')} expired: their seats are free again")
    typer.echo(f"{plural(len(report.applied), 'move')} applied at {report.as_of}")


@lifecycle_app.command("history")
def history(selector: SelectorArgument, as_json: JsonOption = False) -> None:
    """A tenant's moves, oldest first: when, from, to, what moved it (trigger, actor) and why."""
    with services_for() as services:
        tenant_id = selected_tenant_id(services, selector)
        moves = services.lifecycle.history(tenant_id)
    if as_json:
        print_json({"tenant_id": tenant_id, "history": [_transition_document(move) for move in moves]})
        return
    if not moves:
        typer.echo(f"{tenant_id}: no moves recorded yet")
        return
    for move in moves:
        typer.echo(
            f"{move.at}  {move.from_status.value} -> {move.to_status.value}  {move.event.value}  "
            f"by {move.trigger.value} ({move.actor})  {move.reason}"
        )
