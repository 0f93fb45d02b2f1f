"""RB-001 commands: diagnose, repair, verify and the dead-letter queue."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from tenancy.advice import next_action
from tenancy.cli.common import JsonOption, OperatorOption, console, fail, operator_name, print_json, services_for
from tenancy.domain.plurals import plural
from tenancy.errors import InvalidInputError
from tenancy.runbook.dead_letters import DeadLetterDecision, dead_letter_row
from tenancy.runbook.evidence import Selector, shown
from tenancy.runbook.findings import Diagnosis, Finding
from tenancy.runbook.runbook_doc import DOCUMENT_NAME, RunbookLinks, load_runbook, runbook_page_path
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
    for item in diagnosis.evidence:
        console.print(f"  - {item.line}", markup=False, highlight=False)
    console.print(f"next: {next_action(diagnosis)}", markup=False)
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
        base_url = services.settings.public_base_url
    section = diagnosis.finding.runbook_section
    title, url = _runbook_title_and_url(section, base_url)
    if as_json:
        fields = list(diagnosis.as_document(next_action).items())
        # Right after runbook_section: the section's title and where to read it.
        after = [key for key, _ in fields].index("runbook_section") + 1
        print_json(dict([*fields[:after], ("runbook_title", title), ("runbook_url", url), *fields[after:]]))
    else:
        _print_diagnosis(diagnosis)
        if section and url:
            heading = f"{section} {title}" if title else section
            # One unbroken line: the link must survive a narrow terminal to be copied or clicked.
            console.print(f"runbook: {DOCUMENT_NAME} {heading} — {url}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(0 if diagnosis.healthy else 1)


def _runbook_title_and_url(section: str | None, base_url: str) -> tuple[str | None, str | None]:
    """The section's title as the shipped runbook has it (None when the document or the section is
    missing) and its page in the console; neither for a finding with no section."""
    if not section:
        return None, None
    part = RunbookLinks(load_runbook()).section(section)
    return (part.title if part else None), f"{base_url}{runbook_page_path(section)}"


def repair(
    email: EmailOption = None,
    tenant_id: TenantOption = None,
    transaction_id: TransactionOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing (exit 0 when it could plan).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Repair without asking.")] = False,
    operator: Annotated[str | None, typer.Option(help="Who is repairing (default: $USER).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run RB-001's resolution for the diagnosed finding, then verify.

    Exit codes:
    0: healthy after the repair; with --dry-run, the plan was printed (or there is nothing to do).
    1: not healthy after the repair; with --dry-run, no plan (the finding has no automatic repair).
    2: a usage error, or an operator's account (an operator is not a tenant: never repaired).
    """
    selector = _selector(email, tenant_id, transaction_id)
    who = operator_name(operator)
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
        base_url = services.settings.public_base_url
    diagnosis = result.plan.diagnosis
    if diagnosis.finding is Finding.NOT_A_TENANT:
        # Nothing was changed (it has no repair): refused as `ops remove-operator` refuses a tenant.
        fail(f"{shown(diagnosis.email)} is {Finding.NOT_A_TENANT.label}: there is nothing to repair", 2)
    if as_json:
        print_json(result.as_document(next_action))
    else:
        _print_diagnosis(result.plan.diagnosis)
        if result.plan.actions:
            console.print("plan:" if dry_run else "done:")
            for action in result.plan.actions:
                console.print(f"  - {action}", markup=False)
        elif not diagnosis.healthy:
            # With or without --dry-run: say that no plan could be made, not only an outcome word.
            console.print(_no_plan(diagnosis, base_url), markup=False, highlight=False, soft_wrap=True)
        console.print(f"outcome: [bold]{result.outcome}[/]")
        if not dry_run and result.outcome not in {"nothing_to_do", "not_repairable"}:
            console.print("after:")
            _print_diagnosis(result.after)
        _print_verify(result.verification)
    if dry_run:
        # A dry run succeeds when it could say what it would do; it repairs nothing to judge.
        raise typer.Exit(0 if result.plan.has_work or diagnosis.healthy else 1)
    healthy = result.after.healthy and result.verification.passed
    raise typer.Exit(0 if healthy else 1)


def _no_plan(diagnosis: Diagnosis, base_url: str) -> str:
    """Why `repair` has no plan for a finding: it has no automatic repair, and where RB-001 says
    what a person does instead (the section `diagnose` links, when the finding has one)."""
    line = f"no plan: {diagnosis.finding.value} has no automatic repair"
    section = diagnosis.finding.runbook_section
    title, url = _runbook_title_and_url(section, base_url)
    if not section:
        return f"{line}; follow the next step above"
    heading = f"{section} {title}" if title else section
    return f"{line}; see {DOCUMENT_NAME} {heading} — {url}"


def verify(
    email: EmailOption = None,
    tenant_id: TenantOption = None,
    transaction_id: TransactionOption = None,
    password: Annotated[str | None, typer.Option(help="Also sign in with this password and check the token.")] = None,
    as_json: JsonOption = False,
) -> None:
    """RB-001 section 5 and the welcome email (4.4): every check must pass (exit 0), each printed pass or fail."""
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
        print_json({**row, "diagnosis": diagnosis.as_document(next_action)})
        return
    for key, value in row.items():
        console.print(f"{key}: {shown(value)}", markup=False)
    _print_diagnosis(diagnosis)




@dlq_app.command("redrive")
def dlq_redrive(
    message_id: Annotated[str | None, typer.Argument(help="The message id from `dlq list`.")] = None,
    redrive_all: Annotated[bool, typer.Option("--all", help="Redrive every dead-lettered message.")] = False,
    operator: OperatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put dead-lettered jobs back on the queue, with a fresh set of attempts (kept in the repair trail)."""
    if (message_id is None) == (not redrive_all):
        fail("give a message id or --all", 2)
    who = operator_name(operator)
    with services_for() as services:
        runbook = services.runbook
        if redrive_all:
            moved = runbook.redrive_all(operator=who)
        elif message_id is not None and runbook.redrive(message_id, operator=who):
            moved = [message_id]
        else:
            fail(f"no dead-lettered message {message_id}")
    if as_json:
        print_json({"redriven": moved})
    else:
        console.print(f"redriven: {', '.join(moved) or 'none'}")


@dlq_app.command("remove")
def dlq_remove(
    message_id: Annotated[str | None, typer.Argument(help="The message id from `dlq list`.")] = None,
    healed: Annotated[
        bool, typer.Option("--healed", help="Remove every message whose purchase is healthy (per diagnose).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --healed: say what would go and why; change nothing.")
    ] = False,
    operator: OperatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete dead-lettered messages for good: one by its id, or with --healed every stale one (its
    purchase has healed since, so it only keeps the DLQ alarm firing). Each removal is kept in the
    repair trail. Exit 1 when the id is not in the dead-letter queue."""
    if (message_id is None) == (not healed):
        fail("give a message id or --healed", 2)
    if dry_run and not healed:
        fail("--dry-run goes with --healed (`dlq show ID` tells what removing one message would leave)", 2)
    who = operator_name(operator)
    with services_for() as services:
        if message_id is None:
            decisions = services.runbook.remove_healed_dead_letters(operator=who, dry_run=dry_run)
            _print_healed_removal(decisions, dry_run=dry_run, as_json=as_json)
            return
        decision = services.runbook.remove_dead_letter(message_id, operator=who)
    if decision is None:
        fail(f"no dead-lettered message {message_id} (see `tenancy dlq list`)")
    if as_json:
        print_json(decision.as_document(next_action))
        return
    typer.echo(f"removed {_described(decision)}")
    if decision.diagnosis is not None and not decision.healed:
        # Removing the message does not fix the purchase; say what would.
        typer.echo(f"the purchase still needs work: {next_action(decision.diagnosis)}")


def _print_healed_removal(decisions: list[DeadLetterDecision], *, dry_run: bool, as_json: bool) -> None:
    # Plain lines, never wrapped: an operator copies the ids and the commands out of them.
    going = [decision for decision in decisions if decision.healed]
    kept = [decision for decision in decisions if not decision.healed]
    verb = "would remove" if dry_run else "removed"
    if as_json:
        going_key = "would_remove" if dry_run else "removed"
        going_documents = [decision.as_document(next_action) for decision in going]
        kept_documents = [decision.as_document(next_action) for decision in kept]
        print_json({"dry_run": dry_run, going_key: going_documents, "kept": kept_documents})
        return
    for decision in going:
        typer.echo(f"{verb} {_described(decision)}")
    for decision in kept:
        typer.echo(f"kept {_described(decision)}")
    summary = f"{verb} {_messages(len(going))}, kept {_messages(len(kept))}"
    typer.echo(summary + (" (dry run: nothing changed)" if dry_run else ""))


def _described(decision: DeadLetterDecision) -> str:
    return f"{decision.message.message_id} ({decision.message.transaction_id or 'no purchase'}): {decision.reason}"


def _messages(count: int) -> str:
    return plural(count, "message")
