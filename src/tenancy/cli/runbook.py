"""RB-001 commands: diagnose, repair, verify and the dead-letter queue."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated

import typer
from rich.table import Table

from tenancy.cli.common import JsonOption, console, fail, print_json, services_for
from tenancy.errors import InvalidInputError
from tenancy.runbook.dead_letters import dead_letter_row
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Diagnosis
from tenancy.runbook.verify import VerifyReport

__all__ = ["register"]

dlq_app = typer.Typer(help="The dead-letter queue: jobs that failed every attempt.", no_args_is_help=True)

EmailOption = Annotated[str | None, typer.Option("--email", help="The owner's email.")]
TenantOption = Annotated[str | None, typer.Option("--tenant-id", help="The tenant id (ten_...).")]
TransactionOption = Annotated[str | None, typer.Option("--transaction-id", help="The transaction id (TXN-...).")]


def register(app: typer.Typer) -> None:
    for command in (diagnose, repair, verify):
        app.command()(command)
    app.add_typer(dlq_app, name="dlq")


def _selector(email: str | None, tenant_id: str | None, transaction_id: str | None) -> Selector:
    try:
        return Selector(email=email, tenant_id=tenant_id, transaction_id=transaction_id)
    except InvalidInputError as error:
        fail(str(error), 2)


def _print_diagnosis(diagnosis: Diagnosis) -> None:
    section = f" (RB-001 {diagnosis.finding.runbook_section})" if diagnosis.finding.runbook_section else ""
    colour = "green" if diagnosis.healthy else "red"
    console.print(f"[bold {colour}]{diagnosis.finding.value}[/]{section}: {diagnosis.summary}")
    for line in diagnosis.evidence:
        console.print(f"  - {line}", markup=False, highlight=False)
    console.print(f"next: {diagnosis.next_action}", markup=False)
    if diagnosis.escalate_to:
        console.print(f"[bold]escalate to:[/] {diagnosis.escalate_to}")


def _print_verify(report: VerifyReport) -> None:
    table = Table("check", "result", "detail")
    for check in report.checks:
        result = "skip" if check.passed is None else "[green]pass[/]" if check.passed else "[red]fail[/]"
        table.add_row(check.name, result, check.detail)
    console.print(table)
    console.print("[green]verified[/]" if report.passed else "[red]verification failed[/]")


def diagnose(
    email: EmailOption = None,
    tenant_id: TenantOption = None,
    transaction_id: TransactionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Name the one finding for a purchase, with its evidence from every store (exit 0 only when healthy)."""
    selector = _selector(email, tenant_id, transaction_id)
    with services_for() as services:
        diagnosis = services.runbook.diagnose(selector)
    if as_json:
        print_json(diagnosis.as_document())
    else:
        _print_diagnosis(diagnosis)
    raise typer.Exit(0 if diagnosis.healthy else 1)


def repair(
    email: EmailOption = None,
    tenant_id: TenantOption = None,
    transaction_id: TransactionOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Repair without asking.")] = False,
    operator: Annotated[str | None, typer.Option(help="Who is repairing (default: $USER).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run RB-001's resolution for the diagnosed finding, then verify (exit 0 only when healthy after)."""
    selector = _selector(email, tenant_id, transaction_id)
    who = operator or os.environ.get("USER") or getpass.getuser()
    with services_for() as services:
        runbook = services.runbook
        if not dry_run and not yes:
            plan = runbook.plan(selector)
            if plan.has_work:
                if not sys.stdin.isatty():
                    fail("repair changes data: add --yes (or --dry-run to see the plan)", 2)
                _print_diagnosis(plan.diagnosis)
                for action in plan.actions:
                    console.print(f"  will: {action}", markup=False)
                if not typer.confirm("Repair?"):
                    fail("not repaired", 1)
        result = runbook.repair(selector, operator=who, dry_run=dry_run)
    if as_json:
        print_json(result.as_document())
    else:
        _print_diagnosis(result.plan.diagnosis)
        if result.plan.actions:
            console.print("plan:" if dry_run else "done:")
            for action in result.plan.actions:
                console.print(f"  - {action}", markup=False)
        console.print(f"outcome: [bold]{result.outcome}[/]")
        if not dry_run and result.outcome not in {"nothing_to_do", "not_repairable"}:
            console.print("after:")
            _print_diagnosis(result.after)
        _print_verify(result.verification)
    healthy = result.after.healthy and result.verification.passed
    raise typer.Exit(0 if healthy else 1)


def verify(
    email: EmailOption = None,
    tenant_id: TenantOption = None,
    transaction_id: TransactionOption = None,
    password: Annotated[str | None, typer.Option(help="Also sign in with this password and check the token.")] = None,
    as_json: JsonOption = False,
) -> None:
    """RB-001 section 5: every check must pass (exit 0), each printed pass or fail."""
    selector = _selector(email, tenant_id, transaction_id)
    with services_for() as services:
        report = services.runbook.verify(selector, password)
    if as_json:
        print_json(report.as_document())
    else:
        _print_verify(report)
    raise typer.Exit(0 if report.passed else 1)


@dlq_app.command("list")
def dlq_list(as_json: JsonOption = False) -> None:
    """Dead-lettered jobs with their last error and attempts."""
    with services_for() as services:
        rows = [dead_letter_row(services.journal.get(m.transaction_id), m) for m in services.runbook.dead_letters()]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "transaction", "email", "attempts", "received", "last error")
    for row in rows:
        table.add_row(*(str(row[key] or "") for key in ("id", "transaction_id", "email", "attempts",
                                                          "receive_count", "last_error")))  # fmt: skip
    console.print(table)


@dlq_app.command("show")
def dlq_show(message_id: Annotated[str, typer.Argument(help="The message id from `dlq list`.")],
             as_json: JsonOption = False) -> None:  # fmt: skip
    """One dead-lettered job, with its diagnosis."""
    with services_for() as services:
        message = next((m for m in services.runbook.dead_letters() if m.message_id == message_id), None)
        if message is None:
            fail(f"no dead-lettered message {message_id}")
        row = dead_letter_row(services.journal.get(message.transaction_id), message)
        diagnosis = services.runbook.diagnose(Selector(transaction_id=message.transaction_id))
    if as_json:
        print_json({**row, "diagnosis": diagnosis.as_document()})
        return
    for key, value in row.items():
        console.print(f"{key}: {value}", markup=False)
    _print_diagnosis(diagnosis)


@dlq_app.command("redrive")
def dlq_redrive(
    message_id: Annotated[str | None, typer.Argument(help="The message id from `dlq list`.")] = None,
    redrive_all: Annotated[bool, typer.Option("--all", help="Redrive every dead-lettered message.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Put dead-lettered jobs back on the queue, with a fresh set of attempts."""
    if (message_id is None) == (not redrive_all):
        fail("give a message id or --all", 2)
    with services_for() as services:
        runbook = services.runbook
        if redrive_all:
            moved = runbook.redrive_all()
        elif message_id is not None and runbook.redrive(message_id):
            moved = [message_id]
        else:
            fail(f"no dead-lettered message {message_id}")
    if as_json:
        print_json({"redriven": moved})
    else:
        console.print(f"redriven: {', '.join(moved) or 'none'}")
