"""The operations console's dashboard numbers: jobs by status, the alert rules, payments vs tenants
provisioned per hour, and purchases by finding, all read from counts the stores keep (the alert
monitor's, the hourly tallies, the findings index), so the page costs the same at a thousand
purchases and at a million."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tenancy.domain.billing import SubscriptionFigures
from tenancy.domain.clock import format_timestamp
from tenancy.domain.lifecycle import EventType
from tenancy.domain.model import AuditRun, JobStatus, TenantStatus
from tenancy.domain.plurals import plural
from tenancy.ports import (
    FindingsIndex,
    LifecycleStore,
    PaymentLedger,
    ProvisioningJournal,
    SubscriptionStore,
    TenantStore,
)
from tenancy.runbook.alerts import AlertMonitor, AlertReport, AlertResult, AlertThresholds, error_rate_sample, evaluate
from tenancy.runbook.findings import Finding

__all__ = [
    "SERIES_HOURS",
    "Dashboard",
    "HourlySeries",
    "LifecycleFigures",
    "read_dashboard",
    "read_lifecycle",
    "series_start",
]

SERIES_HOURS = 168  # seven days
_HOUR = timedelta(hours=1)
_IN_PROGRESS = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING)


def series_start(now: datetime, hours: int = SERIES_HOURS) -> datetime:
    """The start of the first hourly bucket: the last bucket is the hour `now` is in."""
    current_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return current_hour - (hours - 1) * _HOUR


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
    findings: dict[Finding, int]  # purchases by their finding now (the findings index)
    last_audit: AuditRun | None  # the last full audit that refreshed the index
    series: HourlySeries
    alerts: AlertReport  # the same rules and thresholds as `tenancy alerts check`
    thresholds: AlertThresholds
    error_rate_sample: tuple[int, int]  # (failed an attempt, updated) in the alert window
    subscriptions: SubscriptionFigures | None = None  # the business: None when no store is read
    lifecycle: LifecycleFigures | None = None  # tenants by state, churn: None when no store is read

    @property
    def payments(self) -> int:
        return sum(self.series.payments)

    @property
    def provisioned(self) -> int:
        return sum(self.series.provisioned)

    @property
    def purchases(self) -> int:
        """Purchases in the findings index."""
        return sum(self.findings.values())

    @property
    def healthy_purchases(self) -> int:
        return self.findings.get(Finding.HEALTHY, 0)

    @property
    def purchases_in_progress(self) -> int:
        return self.findings.get(Finding.IN_PROGRESS, 0)

    @property
    def with_findings(self) -> int:
        """Purchases in the index that are neither healthy nor in progress: the failures."""
        return sum(count for finding, count in self.findings.items() if finding.is_failure)

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


@dataclass(frozen=True, slots=True)
class LifecycleFigures:
    """Tenants by state, and the week's churn (tenants cancelled) and reactivations (tenants
    that came back by paying again), from the lifecycle events of the week."""

    by_status: dict[TenantStatus, int]
    churned: int
    reactivated: int

    def count(self, status: TenantStatus) -> int:
        return self.by_status.get(status, 0)


def read_lifecycle(tenants: TenantStore, lifecycle: LifecycleStore, since: str) -> LifecycleFigures:
    return LifecycleFigures(
        by_status=tenants.count_by_status(),
        churned=lifecycle.count_events_since(EventType.CANCELLED, since),
        reactivated=lifecycle.count_events_since(EventType.REACTIVATED, since),
    )


def read_dashboard(
    *,
    monitor: AlertMonitor,
    journal: ProvisioningJournal,
    ledger: PaymentLedger,
    index: FindingsIndex,
    now: datetime,
    subscriptions: SubscriptionStore | None = None,
    tenants: TenantStore | None = None,
    lifecycle: LifecycleStore | None = None,
) -> Dashboard:
    """Counts only, whatever the number of purchases: the alert monitor's (jobs by status, the
    window's few jobs and rejections, the queue depths), the hourly tallies of the last seven days,
    and the findings index's counts by finding with its last full audit."""
    start = series_start(now)
    inputs = monitor.inputs(now)
    since = format_timestamp(start)
    series = HourlySeries(
        start, _in_hours(ledger.paid_by_hour(since), start), _in_hours(journal.succeeded_by_hour(since), start)
    )
    counts = index.count_by_finding()
    return Dashboard(
        jobs_by_status=dict(inputs.jobs_by_status),
        findings={finding: counts.get(finding.value, 0) for finding in Finding},
        last_audit=index.last_audit(),
        series=series,
        alerts=AlertReport(checked_at=now, inputs=inputs, results=evaluate(inputs, monitor.thresholds, now)),
        thresholds=monitor.thresholds,
        error_rate_sample=error_rate_sample(inputs, monitor.thresholds, now),
        # Renewals and cancellations over the same seven days as the chart.
        subscriptions=subscriptions.figures(since) if subscriptions is not None else None,
        lifecycle=None if tenants is None or lifecycle is None else read_lifecycle(tenants, lifecycle, since),
    )


def _in_hours(counts: dict[str, int], start: datetime, hours: int = SERIES_HOURS) -> tuple[int, ...]:
    """Counts by hour key (`2026-01-18T09`) as one value per bucket from `start`."""
    return tuple(counts.get((start + index * _HOUR).strftime("%Y-%m-%dT%H"), 0) for index in range(hours))
