"""The console's list of provisioning jobs: found by email, tenant id or transaction id, or the
newest ones, each with the finding the audit gives its purchase, narrowed by status and finding.
Paid purchases that never got a job (RB-001 4.1) are listed too, from the audit's failures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tenancy.domain.ids import normalize_email
from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.ports import PaymentLedger, ProvisioningJournal
from tenancy.runbook.audit import AuditReport
from tenancy.runbook.findings import Diagnosis, Finding

__all__ = ["JobFilters", "JobRow", "findings_by_transaction", "job_rows", "rows_for_query", "search_jobs"]

NO_JOB = "no job"


@dataclass(frozen=True, slots=True)
class JobFilters:
    query: str = ""  # an email, a tenant id or a transaction id
    status: JobStatus | None = None
    finding: Finding | None = None
    limit: int = 200


@dataclass(frozen=True, slots=True)
class JobRow:
    transaction_id: str
    email: str | None
    tenant_id: str | None
    finding: Finding
    job: ProvisioningJob | None  # None: paid, but the journal has no job for it

    @property
    def status(self) -> str:
        return self.job.status.value if self.job else NO_JOB

    @classmethod
    def of_job(cls, job: ProvisioningJob, finding: Finding) -> JobRow:
        return cls(job.transaction_id, job.email, job.tenant_id, finding, job)

    @classmethod
    def of_diagnosis(cls, diagnosis: Diagnosis, transaction_id: str) -> JobRow:
        return cls(transaction_id, diagnosis.email, diagnosis.tenant_id, diagnosis.finding, None)


def findings_by_transaction(report: AuditReport) -> dict[str, Finding]:
    """The audit's finding for each failed or in-progress purchase; any other it audited is healthy."""
    findings = dict.fromkeys(report.in_progress, Finding.IN_PROGRESS)
    for case in report.cases:
        if case.diagnosis.transaction_id:
            findings[case.diagnosis.transaction_id] = case.finding
    return findings


def search_jobs(journal: ProvisioningJournal, query: str) -> list[ProvisioningJob]:
    """Jobs whose transaction id, tenant id or owner email is `query` (exactly, email case aside)."""
    text = query.strip()
    if not text:
        return []
    found = {job.transaction_id: job for job in journal.find(tenant_id=text)}
    if "@" in text:
        found.update((job.transaction_id, job) for job in journal.find(email=normalize_email(text)))
    job = journal.get(text)
    if job is not None:
        found[job.transaction_id] = job
    return list(found.values())


def rows_for_query(
    journal: ProvisioningJournal,
    ledger: PaymentLedger,
    diagnose: Callable[[str], Diagnosis],
    filters: JobFilters,
    diagnose_tenant: Callable[[str], Diagnosis] | None = None,
) -> list[JobRow]:
    """The rows for a search: only the purchases the query names are diagnosed, each on its own
    (what `tenancy diagnose` does), so a search costs a few lookups, not an audit of every store.
    A tenant id that no job or payment names is diagnosed by `diagnose_tenant`, when given."""
    text = filters.query.strip()
    jobs = {job.transaction_id: job for job in search_jobs(journal, text)}
    payments = ledger.find(email=normalize_email(text)) if "@" in text else ledger.find(transaction_id=text)
    paid_only = {payment.transaction_id for payment in payments if payment.transaction_id} - jobs.keys()
    rows = [JobRow.of_job(job, diagnose(transaction_id).finding) for transaction_id, job in jobs.items()]
    rows.sort(key=lambda row: row.job.updated_at if row.job else "", reverse=True)
    jobless = [JobRow.of_diagnosis(diagnose(transaction_id), transaction_id) for transaction_id in sorted(paid_only)]
    if not rows and not jobless and diagnose_tenant is not None and text.startswith("ten_"):
        # A tenant written by hand (RB-001 4.3) has neither: its own record names its purchase.
        diagnosis = diagnose_tenant(text)
        if diagnosis.transaction_id and diagnosis.finding is not Finding.PAYMENT_NOT_FOUND:
            jobless = [JobRow.of_diagnosis(diagnosis, diagnosis.transaction_id)]
    return _narrowed(jobless + rows, filters)


def _narrowed(rows: list[JobRow], filters: JobFilters) -> list[JobRow]:
    if filters.status is not None:
        rows = [row for row in rows if row.job is not None and row.job.status is filters.status]
    if filters.finding is not None:
        rows = [row for row in rows if row.finding is filters.finding]
    return rows[: filters.limit]


def job_rows(journal: ProvisioningJournal, report: AuditReport, filters: JobFilters) -> list[JobRow]:
    """The rows to show without a search, from an audit: newest first, after the purchases that
    have no job at all (the most urgent)."""
    findings = findings_by_transaction(report)
    jobs = _candidates(journal, filters, findings)
    rows = [JobRow.of_job(job, findings.get(job.transaction_id, Finding.HEALTHY)) for job in jobs]
    rows.sort(key=lambda row: row.job.updated_at if row.job else "", reverse=True)
    if filters.status is None:
        rows = _jobless(journal, report, {row.transaction_id for row in rows}) + rows
    return _narrowed(rows, filters)


def _candidates(
    journal: ProvisioningJournal, filters: JobFilters, findings: dict[str, Finding]
) -> list[ProvisioningJob]:
    if filters.finding is not None and filters.finding is not Finding.HEALTHY:
        # The newest jobs might not include an old failure: go by the audit's list instead.
        chosen = [transaction_id for transaction_id, finding in findings.items() if finding is filters.finding]
        return [job for job in map(journal.get, chosen) if job is not None]
    return journal.list_jobs(filters.status.value if filters.status else None, filters.limit)


def _jobless(journal: ProvisioningJournal, report: AuditReport, listed: set[str]) -> list[JobRow]:
    """Failed purchases the journal has no job for."""
    rows: list[JobRow] = []
    for case in report.cases:
        transaction_id = case.diagnosis.transaction_id
        if transaction_id and transaction_id not in listed and journal.get(transaction_id) is None:
            rows.append(JobRow.of_diagnosis(case.diagnosis, transaction_id))
    return rows
