"""The console's list of provisioning jobs: found by email, tenant id or transaction id (each
purchase found diagnosed afresh), or the newest ones with the finding the findings index holds for
their purchase, narrowed by status and finding. Paid purchases that never got a job (RB-001 4.1)
are listed too, from the index."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tenancy.domain.ids import normalize_email
from tenancy.domain.model import IndexedPurchase, JobStatus, ProvisioningJob
from tenancy.ports import FindingsIndex, PaymentLedger, ProvisioningJournal
from tenancy.runbook.findings import Diagnosis, Finding

__all__ = ["MAX_ROWS", "PAGE_ROWS", "JobFilters", "JobRow", "job_rows", "rows_for_query", "search_jobs"]

NO_JOB = "no job"
# Rows a list shows at first; "show more" asks for more, up to MAX_ROWS.
PAGE_ROWS = 50
MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class JobFilters:
    query: str = ""  # an email, a tenant id or a transaction id
    status: JobStatus | None = None
    finding: Finding | None = None
    limit: int = PAGE_ROWS


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
    def of_entry(cls, entry: IndexedPurchase, job: ProvisioningJob | None) -> JobRow:
        return cls(entry.transaction_id, entry.email, entry.tenant_id, Finding(entry.finding), job)

    @classmethod
    def of_diagnosis(cls, diagnosis: Diagnosis, transaction_id: str) -> JobRow:
        return cls(transaction_id, diagnosis.email, diagnosis.tenant_id, diagnosis.finding, None)


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


def job_rows(
    journal: ProvisioningJournal, index: FindingsIndex, filters: JobFilters, judge: Callable[[str], Finding]
) -> list[JobRow]:
    """The rows to show without a search, from the findings index: newest first, after the failed
    purchases that have no job at all (the most urgent). A job whose purchase the index has never
    judged (written by hand, or before the first audit) is judged now by `judge`."""
    if filters.finding is not None:
        rows = _rows_of(journal, index.with_finding(filters.finding.value, filters.limit))
        rows.sort(key=lambda row: row.job.updated_at if row.job else "", reverse=True)
        return _narrowed(rows, filters)
    jobs = journal.list_jobs(filters.status.value if filters.status else None, filters.limit)
    known = index.get_many([job.transaction_id for job in jobs])
    rows = [JobRow.of_job(job, _finding_of(job, known.get(job.transaction_id), judge)) for job in jobs]
    if filters.status is None:
        rows = _jobless(index, filters.limit) + rows
    return _narrowed(rows, filters)


def _finding_of(job: ProvisioningJob, entry: IndexedPurchase | None, judge: Callable[[str], Finding]) -> Finding:
    return Finding(entry.finding) if entry is not None else judge(job.transaction_id)


def _rows_of(journal: ProvisioningJournal, entries: list[IndexedPurchase]) -> list[JobRow]:
    jobs = journal.get_many([entry.transaction_id for entry in entries if entry.job_status is not None])
    return [JobRow.of_entry(entry, jobs.get(entry.transaction_id)) for entry in entries]


def _jobless(index: FindingsIndex, limit: int) -> list[JobRow]:
    """Failed purchases the journal has no job for, newest first."""
    quiet = (Finding.HEALTHY.value, Finding.IN_PROGRESS.value)
    return [JobRow.of_entry(entry, None) for entry in index.without_job(quiet, limit)]
