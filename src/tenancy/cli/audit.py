"""`tenancy audit`: RB-001 section 7's weekly audit of failed provisioning attempts (open findings,
and the failed attempts, dead-letters and repairs of the window with their outcome now), as a
table, JSON, CSV or a markdown report, optionally repairing what can be repaired."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress as ProgressBar
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tenancy.advice import next_action
from tenancy.bootstrap import Services
from tenancy.cli.common import console, fail, print_json, services_for
from tenancy.domain.clock import format_timestamp
from tenancy.domain.plurals import plural
from tenancy.errors import InvalidInputError
from tenancy.runbook.audit import (
    AuditReport,
    FixResult,
    Progress,
    fix_findings,
    parse_duration,
    window_start,
)
from tenancy.runbook.audit_export import CSV_COLUMNS, attempts_headline, human_age, render_csv, verdict_line
from tenancy.runbook.findings_index import AuditTrigger

# CSV_COLUMNS, human_age and render_csv live in runbook.audit_export (the console writes the same
# file); they stay importable from here.
__all__ = ["CSV_COLUMNS", "ReportFormat", "human_age", "register", "render_csv", "render_markdown"]


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MARKDOWN = "markdown"


def register(app: typer.Typer) -> None:
    app.command()(audit)


def audit(
    since: Annotated[str, typer.Option("--since", help="How far back to look: 7d, 24h, 90m.")] = "7d",
    report_format: Annotated[
        ReportFormat, typer.Option("--format", case_sensitive=False, help="table, json, csv or markdown.")
    ] = ReportFormat.TABLE,
    fix: Annotated[bool, typer.Option("--fix", help="Repair every repairable finding, then audit again.")] = False,
    operator: Annotated[str | None, typer.Option(help="Who is repairing, for --fix (default: $USER).")] = None,
) -> None:
    """Audit every purchase of the window as `diagnose` would, and list the window's failed attempts,
    dead-letters and repairs with their outcome now (exit 0 only when no finding is open).

    With --fix the report is the audit after the repairs; JSON adds `fixes` and `before`."""
    try:
        duration = parse_duration(since)
    except InvalidInputError as error:
        fail(str(error), 2)
    with services_for() as services:
        try:
            start = window_start(services.clock.now(), duration)
        except InvalidInputError as error:
            fail(str(error), 2)
        report = _audit(services, start)
        fixes: tuple[FixResult, ...] = ()
        before = report
        if fix:
            who = operator or os.environ.get("USER") or getpass.getuser()
            fixes = fix_findings(report, services.runbook, operator=who)
            report = _audit(services, start)
    _render(report_format, report, before if fix else None, fixes)
    raise typer.Exit(1 if report.has_findings else 0)


def _audit(services: Services, since: datetime) -> AuditReport:
    """The full audit, refreshing the findings index the console and /metrics read."""
    with _progress() as advance:
        return services.auditor.run(since=since, trigger=AuditTrigger.CLI, progress=advance)


@contextmanager
def _progress() -> Iterator[Progress | None]:
    """A progress bar on stderr for an operator watching; nothing when stderr is a file or a pipe."""
    if not sys.stderr.isatty():
        yield None
        return
    bar = ProgressBar(
        SpinnerColumn(),
        TextColumn("auditing: {task.completed:,.0f} records read and cases classified"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task("audit", total=None)
        yield lambda count: bar.advance(task, count)


def _render(
    report_format: ReportFormat, report: AuditReport, before: AuditReport | None, fixes: tuple[FixResult, ...]
) -> None:
    if report_format is ReportFormat.JSON:
        print_json(_json_document(report, before, fixes))
    elif report_format is ReportFormat.CSV:
        typer.echo(render_csv(report), nl=False)
        for fix in fixes:
            # The CSV on stdout stays one row per failure; what --fix did goes beside it.
            typer.echo(f"fixed {fix.transaction_id}: {fix.before} -> {fix.outcome} -> {fix.after}", err=True)
    elif report_format is ReportFormat.MARKDOWN:
        typer.echo(render_markdown(report, before, fixes), nl=False)
    else:
        _print_tables(report, before, fixes)


# --- JSON --------------------------------------------------------------------------------------


def _json_document(report: AuditReport, before: AuditReport | None, fixes: tuple[FixResult, ...]) -> dict[str, Any]:
    """The report; with --fix, the report after the repairs with the first one and the repairs beside it."""
    document = report.as_document(next_action)
    if before is not None:
        document["fixes"] = [fix.as_document() for fix in fixes]
        document["before"] = before.as_document(next_action)
    return document


# --- Markdown ----------------------------------------------------------------------------------


def render_markdown(report: AuditReport, before: AuditReport | None = None, fixes: tuple[FixResult, ...] = ()) -> str:
    """A report an operator can paste into a ticket or a chat: totals, findings, escalations."""
    lines = [
        f"# Provisioning audit, {format_timestamp(report.since)} to {format_timestamp(report.now)}",
        "",
        *_markdown_table(("Measure", "Count"), _total_rows(report)),
        "",
    ]
    lines += [verdict_line(report), ""]
    if report.has_findings:
        lines += [f"Oldest unresolved failure: {human_age(report.oldest_unresolved_age_seconds)}.", ""]
        lines += ["## Findings", "", *_markdown_table(_GROUP_HEADER, _group_rows(report, markdown=True)), ""]
        lines += ["## Cases", "", *_markdown_table(_CASE_HEADER, _case_rows(report)), ""]
    if report.attempts:
        # Without open findings the verdict line above already is this headline.
        headline = [attempts_headline(report), ""] if report.has_findings else []
        lines += [f"## {_ATTEMPTS_TITLE}", "", *headline, *_markdown_table(_ATTEMPT_HEADER, _attempt_rows(report)), ""]
    if report.in_progress:
        lines += [f"In progress (a worker still has them): {', '.join(report.in_progress)}", ""]
    lines += ["## Escalations (RB-001 section 6)", ""]
    lines += [
        f"- **{escalation.contact}**: {escalation.reason}: {', '.join(escalation.transaction_ids)}"
        for escalation in report.escalations
    ] or ["- None."]
    lines.append("")
    if before is not None:
        findings_before = plural(before.totals.findings, "finding")
        lines += [f"## Repairs (--fix; {findings_before} before, {report.totals.findings} after)", ""]
        lines += [*_markdown_table(_FIX_HEADER, _fix_rows(fixes)), ""] if fixes else ["Nothing was repairable.", ""]
    return "\n".join(lines)


def _markdown_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *(line(row) for row in rows)]


def _markdown_cell(text: str) -> str:
    # A pipe or a line break inside a cell would end the cell or the row.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


# --- Table -------------------------------------------------------------------------------------


def _print_tables(report: AuditReport, before: AuditReport | None, fixes: tuple[FixResult, ...]) -> None:
    console.print(f"[bold]Provisioning audit[/] {format_timestamp(report.since)} to {format_timestamp(report.now)}")
    if before is not None:
        title = f"Repairs (--fix): {plural(before.totals.findings, 'finding')} before, {report.totals.findings} after"
        console.print(_table(_FIX_HEADER, _fix_rows(fixes), title=title))
    console.print(_table(("Measure", "Count"), _total_rows(report), title="Totals"))
    if report.in_progress:
        console.print(f"in progress (a worker still has them): {_abbreviated(report.in_progress)}")
    if report.attempts:
        shown_attempts = _attempt_rows(report)[-_CASES_SHOWN:]
        more = len(report.attempts) - len(shown_attempts)
        title = _ATTEMPTS_TITLE + (f" (latest {len(shown_attempts)}; all with --format csv)" if more > 0 else "")
        console.print(_table(_ATTEMPT_HEADER, shown_attempts, title=title))
        if report.has_findings:  # otherwise the verdict line below says it
            console.print(attempts_headline(report), markup=False, highlight=False)
    if not report.has_findings:
        console.print(verdict_line(report), style="green", markup=False, highlight=False)
        return
    console.print(_table(_GROUP_HEADER, _group_rows(report, markdown=False), title="Findings"))
    # The terminal gets the cases without their summaries; csv, markdown and json carry them.
    shown = [(row[0], row[1], row[3], row[5], row[6]) for row in _case_rows(report)[:_CASES_SHOWN]]
    more = report.totals.findings - len(shown)
    title = f"Oldest {len(shown)} of {report.totals.findings} (all with --format csv)" if more > 0 else "Cases"
    console.print(_table(("Transaction", "Email", "Finding", "Escalate to", "Age"), shown, title=title))
    console.print(f"oldest unresolved failure: [bold]{human_age(report.oldest_unresolved_age_seconds)}[/]")
    escalations = [
        (escalation.contact, escalation.reason, _abbreviated(escalation.transaction_ids))
        for escalation in report.escalations
    ]
    if escalations:
        console.print(
            _table(("Escalate to", "Why", "Transactions"), escalations, title="Escalations (RB-001 section 6)")
        )
    else:
        console.print("escalations: none")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, title: str) -> Table:
    # Identifiers stay whole (an operator copies them); the prose around them folds.
    table = Table(title=title)
    for column in header:
        table.add_column(column, overflow="fold", no_wrap=column in _IDENTIFIERS)
    for row in rows:
        table.add_row(*row, end_section=False)
    return table


# --- Rows shared by the formats ----------------------------------------------------------------

_GROUP_HEADER = ("Finding", "RB-001", "Count", "Oldest unresolved", "Transactions")
_CASE_HEADER = ("Transaction", "Email", "Tenant", "Finding", "Summary", "Escalate to", "Age")
_FIX_HEADER = ("Transaction", "Before", "Outcome", "After")
_ATTEMPT_HEADER = (
    "Transaction",
    "Email",
    "Failed attempts",
    "DLQ",
    "Repairs",
    "Redrives",
    "Last error",
    "Now",
)
_ATTEMPTS_TITLE = "Failed attempts, dead-letters and repairs (healed or not)"
_LISTED = 10
_CASES_SHOWN = 50
_IDENTIFIERS = {"Finding", "Transaction", "Email", "Measure"}


def _total_rows(report: AuditReport) -> list[tuple[str, ...]]:
    totals = report.totals
    return [
        ("Payments received", str(totals.payments)),
        ("Rejected payments", str(totals.rejected_payments)),
        ("Rejected, naming no transaction", str(totals.rejected_without_transaction)),
        ("Transactions audited", str(totals.transactions)),
        ("Tenants created", str(totals.tenants)),
        ("Healthy", str(totals.healthy)),
        ("In progress", str(totals.in_progress)),
        ("Findings", str(totals.findings)),
        ("Failed attempts", str(totals.failed_attempts)),
        ("Dead-lettered purchases", str(totals.dead_lettered)),
        ("Repairs", str(totals.repairs)),
        ("Redrives", str(totals.redrives)),
    ]


def _group_rows(report: AuditReport, *, markdown: bool) -> list[tuple[str, ...]]:
    """Markdown lists every transaction (it is the record); the terminal table abbreviates."""
    return [
        (
            group.finding.value,
            group.finding.runbook_section or "-",
            str(group.count),
            human_age(group.oldest_age_seconds),
            ", ".join(group.transaction_ids) if markdown else _abbreviated(group.transaction_ids),
        )
        for group in report.groups
    ]


def _case_rows(report: AuditReport) -> list[tuple[str, ...]]:
    return [
        (
            case.diagnosis.transaction_id or "-",
            case.diagnosis.email or "-",
            case.diagnosis.tenant_id or "-",
            case.finding.value,
            case.diagnosis.summary,
            case.diagnosis.escalate_to or "-",
            human_age(case.age_seconds),
        )
        for case in report.cases
    ]


def _attempt_rows(report: AuditReport) -> list[tuple[str, ...]]:
    return [
        (
            row.transaction_id,
            row.email or "-",
            str(row.failed_attempts),
            "yes" if row.dead_lettered else "no",
            str(row.repairs),
            str(row.redrives),
            row.last_error or "-",
            row.now,
        )
        for row in report.attempts
    ]


def _fix_rows(fixes: tuple[FixResult, ...]) -> list[tuple[str, ...]]:
    return [
        (fix.transaction_id, fix.before.value, fix.outcome + (f" ({fix.error})" if fix.error else ""), fix.after.value)
        for fix in fixes
    ]


def _abbreviated(transaction_ids: tuple[str, ...]) -> str:
    shown = ", ".join(transaction_ids[:_LISTED])
    more = len(transaction_ids) - _LISTED
    return f"{shown} and {more} more" if more > 0 else shown
