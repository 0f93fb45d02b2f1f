"""The operations console's dashboard numbers: jobs by status, the alert rules, and payments vs
tenants provisioned per hour, from one pass over the journal, the ledger's recent entries and the
tenants (the findings come from `run_audit`, as `tenancy audit` classifies them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict, ProvisioningJob, Tenant, TenantStatus
from tenancy.domain.plurals import plural
from tenancy.ports import JobQueue, PaymentLedger, ProvisioningJournal, TenantStore
from tenancy.runbook.alerts import (
    AlertInputs,
    AlertReport,
    AlertResult,
    AlertThresholds,
    error_rate_sample,
    evaluate,
)

__all__ = [
    "SERIES_HOURS",
    "Dashboard",
    "HourlySeries",
    "hourly_counts",
    "is_payment",
    "read_dashboard",
    "series_start",
]

SERIES_HOURS = 168  # seven days
_HOUR = timedelta(hours=1)
_IN_PROGRESS = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING)


def series_start(now: datetime, hours: int = SERIES_HOURS) -> datetime:
    """The start of the first hourly bucket: the last bucket is the hour `now` is in."""
    current_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return current_hour - (hours - 1) * _HOUR


def hourly_counts(moments: Iterable[datetime], start: datetime, hours: int = SERIES_HOURS) -> tuple[int, ...]:
    """How many of `moments` fall in each hour from `start`; those outside the buckets are ignored."""
    counts = [0] * hours
    for moment in moments:
        index = (moment - start) // _HOUR
        if 0 <= index < hours:
            counts[index] += 1
    return tuple(counts)


def is_payment(payment: PaymentRecord) -> bool:
    """A paid purchase: an accepted COMPLETE ITN (the one that creates the provisioning job)."""
    return payment.verdict is PaymentVerdict.ACCEPTED and payment.payment_status == "COMPLETE"


@dataclass(frozen=True, slots=True)
class HourlySeries:
    start: datetime  # the first bucket's start, on the hour
    payments: tuple[int, ...]  # accepted COMPLETE ITNs received in each hour
    provisioned: tuple[int, ...]  # jobs that succeeded (last updated) in each hour

    @property
    def hours(self) -> tuple[datetime, ...]:
        return tuple(self.start + index * _HOUR for index in range(len(self.payments)))

    @property
    def peak(self) -> int:
        return max((*self.payments, *self.provisioned, 0))

    def by_day(self) -> tuple[tuple[date, int, int], ...]:
        """(day, payments, provisioned) for each UTC day the buckets touch, oldest first."""
        days: dict[date, tuple[int, int]] = {}
        for hour, paid, provisioned in zip(self.hours, self.payments, self.provisioned, strict=True):
            before = days.get(hour.date(), (0, 0))
            days[hour.date()] = (before[0] + paid, before[1] + provisioned)
        return tuple((day, paid, provisioned) for day, (paid, provisioned) in days.items())


@dataclass(frozen=True, slots=True)
class Dashboard:
    jobs_by_status: dict[JobStatus, int]
    active_tenants: int
    series: HourlySeries
    alerts: AlertReport  # the same rules and thresholds as `tenancy alerts check`
    thresholds: AlertThresholds
    error_rate_sample: tuple[int, int]  # (failed an attempt, updated) in the alert window

    @property
    def payments(self) -> int:
        return sum(self.series.payments)

    @property
    def provisioned(self) -> int:
        return sum(self.series.provisioned)

    @property
    def succeeded(self) -> int:
        return self.jobs_by_status.get(JobStatus.SUCCEEDED, 0)

    @property
    def in_progress(self) -> int:
        return sum(self.jobs_by_status.get(status, 0) for status in _IN_PROGRESS)

    @property
    def dead_lettered(self) -> int:
        return self.jobs_by_status.get(JobStatus.DEAD_LETTERED, 0)

    @property
    def needs_review(self) -> int:
        return self.jobs_by_status.get(JobStatus.NEEDS_REVIEW, 0)

    @property
    def queue_depth(self) -> int:
        return self.alerts.inputs.queue_depth

    @property
    def dlq_depth(self) -> int:
        return self.alerts.inputs.dlq_depth

    @property
    def error_rate(self) -> AlertResult:
        return self.alerts.result("error_rate")

    @property
    def error_rate_note(self) -> str:
        """Why the error rate fires or not, beside the rate: with the default minimum of 5 jobs,
        `1 of 2 jobs; the rule waits for 5 jobs in the window` explains a 50% that is not an alert."""
        failed, updated = self.error_rate_sample
        counted = f"{failed} of {plural(updated, 'job')}" if updated else "no jobs yet"
        minimum = self.thresholds.error_rate_min_jobs
        if updated < minimum:
            return f"{counted}; the rule waits for {plural(minimum, 'job')} in the window"
        return f"{counted}; the rule fires above {self.thresholds.error_rate * 100:g}%"


@dataclass
class _Tally:
    """What one pass over the stores keeps: counts, the series' moments, and what the alert
    rules need (AlertInputs' contract: unfinished or recently updated jobs, recent payments)."""

    alert_from: datetime
    jobs_by_status: Counter[JobStatus] = field(default_factory=Counter)
    alert_jobs: list[ProvisioningJob] = field(default_factory=list)
    provisioned_at: list[datetime] = field(default_factory=list)
    paid_at: list[datetime] = field(default_factory=list)
    alert_payments: list[PaymentRecord] = field(default_factory=list)
    payments_by_verdict: Counter[PaymentVerdict] = field(default_factory=Counter)
    active_tenants: int = 0

    def add_job(self, job: ProvisioningJob) -> None:
        self.jobs_by_status[job.status] += 1
        updated = parse_timestamp(job.updated_at)
        if job.status is JobStatus.SUCCEEDED:
            self.provisioned_at.append(updated)
        # Succeeded jobs from before the alert window can fire no rule: counted, not kept.
        if job.status is not JobStatus.SUCCEEDED or updated >= self.alert_from:
            self.alert_jobs.append(job)

    def add_payment(self, payment: PaymentRecord) -> None:
        self.payments_by_verdict[payment.verdict] += 1
        received = parse_timestamp(payment.received_at)
        if is_payment(payment):
            self.paid_at.append(received)
        if received >= self.alert_from:
            self.alert_payments.append(payment)

    def add_tenant(self, tenant: Tenant) -> None:
        if tenant.status is TenantStatus.ACTIVE:
            self.active_tenants += 1


def read_dashboard(
    *,
    journal: ProvisioningJournal,
    ledger: PaymentLedger,
    tenants: TenantStore,
    queue: JobQueue,
    thresholds: AlertThresholds,
    now: datetime,
) -> Dashboard:
    """One scan of the journal and the tenants, the ledger since the earlier of the series' start
    and the alert window, one queue count; the alert rules are evaluated on that same data."""
    start = series_start(now)
    tally = _Tally(alert_from=now - timedelta(minutes=max(thresholds.window_minutes, 0)))
    for jobs in journal.scan():
        for job in jobs:
            tally.add_job(job)
    for payments in ledger.scan(since=format_timestamp(min(start, tally.alert_from))):
        for payment in payments:
            tally.add_payment(payment)
    for batch in tenants.scan():
        for tenant in batch:
            tally.add_tenant(tenant)
    queue_depth, dlq_depth = queue.depth()
    inputs = AlertInputs(
        queue_depth=queue_depth,
        dlq_depth=dlq_depth,
        jobs=tally.alert_jobs,
        payments=tally.alert_payments,
        jobs_by_status=tally.jobs_by_status,
        payments_by_verdict=tally.payments_by_verdict,
    )
    series = HourlySeries(start, hourly_counts(tally.paid_at, start), hourly_counts(tally.provisioned_at, start))
    return Dashboard(
        jobs_by_status=dict(tally.jobs_by_status),
        active_tenants=tally.active_tenants,
        series=series,
        alerts=AlertReport(checked_at=now, inputs=inputs, results=evaluate(inputs, thresholds, now)),
        thresholds=thresholds,
        error_rate_sample=error_rate_sample(inputs, thresholds, now),
    )
