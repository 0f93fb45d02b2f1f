"""The console's list of provisioning jobs: found by email, tenant id or transaction id, or the
newest ones, each with the finding the audit gives its purchase, narrowed by status and finding.
Paid purchases that never got a job (RB-001 4.1) are listed too, from the audit's failures."""

from __future__ import annotations

from dataclasses import dataclass

from tenancy.domain.ids import normalize_email
from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.ports import ProvisioningJournal
from tenancy.runbook.audit import AuditReport
from tenancy.runbook.findings import Diagnosis, Finding

__all__ = ["JobFilters", "JobRow", "findings_by_transaction", "job_rows", "search_jobs"]

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


def job_rows(journal: ProvisioningJournal, report: AuditReport, filters: JobFilters) -> list[JobRow]:
    """The rows to show, newest first after the purchases that have no job at all (the most urgent)."""
    findings = findings_by_transaction(report)
    jobs = _candidates(journal, report, filters, findings)
    rows = [JobRow.of_job(job, findings.get(job.transaction_id, Finding.HEALTHY)) for job in jobs]
    rows.sort(key=lambda row: row.job.updated_at if row.job else "", reverse=True)
    if filters.status is None:
        rows = _jobless(journal, report, filters, {row.transaction_id for row in rows}) + rows
    else:
        rows = [row for row in rows if row.job is not None and row.job.status is filters.status]
    if filters.finding is not None:
        rows = [row for row in rows if row.finding is filters.finding]
    return rows[: filters.limit]


def _candidates(
    journal: ProvisioningJournal, report: AuditReport, filters: JobFilters, findings: dict[str, Finding]
) -> list[ProvisioningJob]:
    if filters.query.strip():
        return search_jobs(journal, filters.query)
    if filters.finding is not None and filters.finding is not Finding.HEALTHY:
        # The newest jobs might not include an old failure: go by the audit's list instead.
        chosen = [transaction_id for transaction_id, finding in findings.items() if finding is filters.finding]
        return [job for job in map(journal.get, chosen) if job is not None]
    return journal.list_jobs(filters.status.value if filters.status else None, filters.limit)


def _jobless(journal: ProvisioningJournal, report: AuditReport, filters: JobFilters, listed: set[str]) -> list[JobRow]:
    """Failed purchases the journal has no job for, matching the query when there is one."""
    query = normalize_email(filters.query)
    rows: list[JobRow] = []
    for case in report.cases:
        diagnosis = case.diagnosis
        transaction_id = diagnosis.transaction_id
        if not transaction_id or transaction_id in listed:
            continue
        named = {transaction_id.lower(), (diagnosis.tenant_id or "").lower(), (diagnosis.email or "").lower()}
        if query and query not in named:
            continue
        if journal.get(transaction_id) is None:
            rows.append(JobRow.of_diagnosis(diagnosis, transaction_id))
    return rows
