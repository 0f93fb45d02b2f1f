"""The weekly audit as a CSV file, its ages and its failed attempts in words: shared by `tenancy
audit` and the operations console, so the download and the command's `--format csv` are the same
file and every output says the same sentences."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from tenancy.domain.plurals import plural
from tenancy.runbook.attempts import AttemptOutcome, PurchaseAttempts
from tenancy.runbook.audit import AuditReport

__all__ = ["CSV_COLUMNS", "attempts_headline", "csv_rows", "human_age", "render_csv", "verdict_line"]

CSV_COLUMNS = (
    "transaction_id",
    "email",
    "tenant_id",
    "finding",
    "runbook_section",
    "summary",
    "escalate_to",
    "age_seconds",
    # RB-001 section 7's attempts: where the purchase stands now and what failed in the window.
    "outcome",
    "failed_attempts",
    "dead_lettered",
    "repairs",
    "redrives",
    "last_error",
)


# A spreadsheet runs a cell that starts with one of these as a formula; the audit's cells come
# partly from ITNs anyone can post (an email address, a transaction id).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: AuditReport) -> str:
    """One row per open finding, then one per purchase that failed in the window and has healed
    (or is being retried) since, with a header row; text cells never start a formula."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(report):
        writer.writerow({column: _inert(value) for column, value in row.items()})
    return buffer.getvalue()


def csv_rows(report: AuditReport) -> Iterator[dict[str, Any]]:
    """The CSV's rows as dictionaries keyed by CSV_COLUMNS."""
    by_transaction = {row.transaction_id: row for row in report.attempts}
    listed: set[str] = set()
    for case in report.cases:
        transaction_id = case.diagnosis.transaction_id
        attempts = by_transaction.get(transaction_id) if transaction_id else None
        if transaction_id:
            listed.add(transaction_id)
        yield {**case.as_record(), **_attempt_cells(attempts, AttemptOutcome.OPEN)}
    for attempts in report.attempts:
        if attempts.transaction_id in listed:
            continue
        yield {
            "transaction_id": attempts.transaction_id,
            "email": attempts.email,
            "tenant_id": attempts.tenant_id,
            "finding": attempts.finding.value,
            "runbook_section": attempts.finding.runbook_section,
            "summary": f"{attempts.history}; {attempts.now} now",
            "escalate_to": None,
            "age_seconds": None,
            **_attempt_cells(attempts, attempts.outcome),
        }


def _attempt_cells(attempts: PurchaseAttempts | None, outcome: AttemptOutcome) -> dict[str, Any]:
    return {
        "outcome": outcome.value,
        "failed_attempts": attempts.failed_attempts if attempts else 0,
        "dead_lettered": "yes" if attempts and attempts.dead_lettered else "no",
        "repairs": attempts.repairs if attempts else 0,
        "redrives": attempts.redrives if attempts else 0,
        "last_error": attempts.last_error if attempts else None,
    }


def _inert(value: object) -> object:
    """OWASP's advice for CSV injection: a leading quote makes the cell text."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def attempts_headline(report: AuditReport) -> str:
    """The window's failures in one sentence, healed or not: `9 failed attempts, 1 dead-lettered
    purchase and 1 repair in this window, over 2 purchases: 2 healed.`"""
    totals = report.totals
    counted = [plural(totals.failed_attempts, "failed attempt")]
    counted.append(plural(totals.dead_lettered, "dead-lettered purchase"))
    counted.append(plural(totals.repairs, "repair"))
    if totals.redrives:
        counted.append(plural(totals.redrives, "redrive"))
    outcomes = [
        f"{sum(1 for row in report.attempts if row.outcome is outcome)} {words}"
        for outcome, words in (
            (AttemptOutcome.HEALED, "healed"),
            (AttemptOutcome.IN_PROGRESS, "still being retried"),
            (AttemptOutcome.OPEN, "still open"),
        )
        if any(row.outcome is outcome for row in report.attempts)
    ]
    listed = ", ".join(counted[:-1]) + " and " + counted[-1]
    return f"{listed} in this window, over {plural(len(report.attempts), 'purchase')}: {', '.join(outcomes)}."


def verdict_line(report: AuditReport) -> str:
    """The audit's one-line answer: nothing failed at all, failures that have all healed, or how
    many findings are still open."""
    if report.has_findings:
        return f"{plural(report.totals.findings, 'open finding')} in this window."
    if not report.attempts:
        return "No failed provisioning attempts in this window."
    return "No open findings in this window: " + attempts_headline(report)


def human_age(seconds: int | None) -> str:
    """`45s`, `12m`, `3h 05m`, `2d 04h`: enough precision for an operator to judge urgency."""
    if seconds is None:
        return "unknown"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if days:
        return f"{days}d {hours % 24:02d}h"
    if hours:
        return f"{hours}h {minutes % 60:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"
