"""The weekly audit as a CSV file and its ages in words: shared by `tenancy audit` and the
operations console, so the download and the command's `--format csv` are the same file."""

from __future__ import annotations

import csv
import io

from tenancy.runbook.audit import AuditReport

__all__ = ["CSV_COLUMNS", "human_age", "render_csv"]

CSV_COLUMNS = (
    "transaction_id",
    "email",
    "tenant_id",
    "finding",
    "runbook_section",
    "summary",
    "escalate_to",
    "age_seconds",
)


# A spreadsheet runs a cell that starts with one of these as a formula; the audit's cells come
# partly from ITNs anyone can post (an email address, a transaction id).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: AuditReport) -> str:
    """One row per failed purchase, with a header row; text cells never start a formula."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for case in report.cases:
        writer.writerow({column: _inert(value) for column, value in case.as_document().items()})
    return buffer.getvalue()


def _inert(value: object) -> object:
    """OWASP's advice for CSV injection: a leading quote makes the cell text."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


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
