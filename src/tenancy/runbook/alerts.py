"""RB-001 sections 6 and 7 as alert rules: what the stores must look like before someone is told.

`evaluate` is pure (data and `now` in, one `AlertResult` per rule out); `AlertMonitor` reads the
data through the ports; `AlertWatch` turns successive evaluations into start/resolve transitions;
`AlertDispatcher` hands alerts to the notifiers routed to each escalation target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.lifecycle import EventType, NoticeStatus
from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict, ProvisioningJob
from tenancy.domain.plurals import plural
from tenancy.ports import (
    Clock,
    FindingsIndex,
    JobQueue,
    LifecycleStore,
    Notifier,
    PaymentLedger,
    ProvisioningJournal,
)
from tenancy.runbook.findings import ESCALATION, Finding

# The findings that are provisioning failures an operator (or `tenancy repair`) must fix.
REPAIRABLE_FINDINGS = tuple(finding.value for finding in Finding if finding.repairable)

__all__ = [
    "ALERT_TARGETS",
    "ESCALATION_EMAILS",
    "RULES",
    "AlertDispatcher",
    "AlertInputs",
    "AlertMonitor",
    "AlertReport",
    "AlertResult",
    "AlertThresholds",
    "AlertTransition",
    "AlertWatch",
    "Delivery",
    "Severity",
    "error_rate_sample",
    "evaluate",
    "failed_an_attempt",
    "rejection_kind",
]

log = structlog.get_logger(__name__)

ALERT_TARGETS = tuple(ESCALATION)  # engineering, finance, security, on_call
# RB-001 section 6's email contacts: the default recipients of email alerts for these targets.
ESCALATION_EMAILS = {"finance": "finance@company.com", "security": "security@company.com"}


class Severity(StrEnum):
    """PagerDuty's four severities, so an alert maps onto an incident unchanged."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """The knobs of the rules (settings `TENANCY_ALERT_*`)."""

    window_minutes: int = 60
    error_rate: float = 0.2
    error_rate_min_jobs: int = 5
    multiple_failures: int = 3
    security_rejections: int = 5
    unresolved_minutes: int = 60
    suspensions_per_day: int = 10


@dataclass(frozen=True, slots=True)
class AlertInputs:
    """What the rules look at. `jobs` need only hold the jobs a rule can care about (unfinished,
    or updated within the window); `payments` those received within the window (only rejected
    ones can fire a rule). Succeeded jobs updated within the window may be counted instead of
    listed: `recent_succeeded` of them, `recent_succeeded_retried` of those with more than one
    attempt. error_rate adds these counts to what it finds in `jobs`, so a job is counted or
    listed, never both."""

    queue_depth: int
    dlq_depth: int
    jobs: Sequence[ProvisioningJob] = ()
    payments: Sequence[PaymentRecord] = ()
    jobs_by_status: Mapping[JobStatus, int] = field(default_factory=dict)
    payments_by_verdict: Mapping[PaymentVerdict, int] = field(default_factory=dict)
    recent_succeeded: int = 0
    recent_succeeded_retried: int = 0
    # Purchases the findings index holds a repairable finding for (RB-001 4.1-4.4 and the
    # mismatch); None when no index is read, and multiple_failures counts parked jobs instead.
    open_failures: int | None = None
    # The tenant lifecycle: tenants suspended in the last day, and notices that died undelivered.
    suspensions_last_day: int = 0
    undelivered_notices: int = 0


@dataclass(frozen=True, slots=True)
class AlertResult:
    rule: str
    severity: Severity
    target: str  # a key of ESCALATION
    firing: bool
    value: float
    threshold: float
    message: str

    @property
    def escalate_to(self) -> str:
        return ESCALATION[self.target]

    def as_document(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "target": self.target,
            "escalate_to": self.escalate_to,
            "firing": self.firing,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class AlertReport:
    checked_at: datetime
    inputs: AlertInputs
    results: tuple[AlertResult, ...]

    @property
    def firing(self) -> tuple[AlertResult, ...]:
        return tuple(result for result in self.results if result.firing)

    def result(self, rule: str) -> AlertResult:
        return next(result for result in self.results if result.rule == rule)


# Rejection reasons as PaymentIntake writes them (payments/intake.py); a unit test feeds real
# intake rejections through `rejection_kind` so the two cannot drift apart unnoticed.
_SECURITY_REASONS = (
    "signature mismatch",
    "source address",
    "PayFast did not confirm",
    "missing field signature",
    "field after signature",  # an unsigned field appended: the forgery of a checkout form's signature
    "merchant_key in an ITN",  # a checkout form posted as a notification
    # A subscription ITN signed for one checkout and replayed for another's, or with a token
    # not the subscription's: someone with a valid ITN trying it elsewhere.
    "token belongs to another",
    "token is not the subscription token",
)
_PAYMENT_REASONS = ("merchant_id is not ours", "amount_gross", "unknown plan")


def rejection_kind(payment: PaymentRecord) -> str | None:
    """`security`, `finance` or None (malformed input, not a rejection) for a ledger entry."""
    if payment.verdict is not PaymentVerdict.REJECTED:
        return None
    for reason in payment.reasons:
        if reason.startswith(_SECURITY_REASONS):
            return "security"
        if reason.startswith(_PAYMENT_REASONS):
            return "finance"
    return None


def failed_an_attempt(job: ProvisioningJob) -> bool:
    """True for a job that failed at least once: dead-lettered, waiting to retry, or retried.
    `attempts` counts runs, so a second run means the first one failed."""
    return job.status in {JobStatus.DEAD_LETTERED, JobStatus.RETRYING} or job.attempts > 1


def _within(timestamp: str, since: datetime) -> bool:
    return parse_timestamp(timestamp) >= since


def _dlq_not_empty(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> AlertResult:
    depth = inputs.dlq_depth
    return AlertResult(
        rule="dlq_not_empty",
        severity=Severity.ERROR,
        target="engineering",
        firing=depth > 0,
        value=depth,
        threshold=0,
        message=(
            f"{plural(depth, 'job')} in the dead-letter queue: see `tenancy dlq list`; `tenancy dlq remove --healed`"
            " clears those whose purchase has healed since (RB-001 7)"
        ),
    )


def error_rate_sample(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> tuple[int, int]:
    """(jobs that failed an attempt, jobs updated) in the window: what `error_rate` divides, and
    what the console shows beside the rate."""
    since = now - timedelta(minutes=thresholds.window_minutes)
    listed = [job for job in inputs.jobs if _within(job.updated_at, since)]
    failed = sum(1 for job in listed if failed_an_attempt(job)) + inputs.recent_succeeded_retried
    return failed, len(listed) + inputs.recent_succeeded


def _error_rate(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> AlertResult:
    failed, recent = error_rate_sample(inputs, thresholds, now)
    rate = failed / recent if recent else 0.0
    # Below the minimum sample one unlucky job would read as a 100% error rate.
    enough = recent >= thresholds.error_rate_min_jobs
    return AlertResult(
        rule="error_rate",
        severity=Severity.WARNING,
        target="engineering",
        firing=enough and rate > thresholds.error_rate,
        value=round(rate, 4),
        threshold=thresholds.error_rate,
        message=(
            f"{failed} of {plural(recent, 'job')} updated in the last {thresholds.window_minutes} min failed an attempt"
            + ("" if enough else f" (fewer than {thresholds.error_rate_min_jobs}: not judged)")
        ),
    )


def _multiple_failures(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> AlertResult:
    retrying = sum(1 for job in inputs.jobs if job.status is JobStatus.RETRYING)
    if inputs.open_failures is None:
        unresolved = retrying + sum(1 for job in inputs.jobs if job.status is JobStatus.DEAD_LETTERED)
        what = "dead-lettered or retrying"
    else:
        # The index knows failures no job shows (a user deleted by hand) and forgets a parked job
        # whose purchase healed; a retrying job's purchase is still in progress there.
        unresolved = inputs.open_failures + retrying
        what = "purchases with an open RB-001 finding, and jobs retrying"
    return AlertResult(
        rule="multiple_failures",
        severity=Severity.ERROR,
        target="engineering",
        firing=unresolved > thresholds.multiple_failures,
        value=unresolved,
        threshold=thresholds.multiple_failures,
        message=f"{plural(unresolved, 'unresolved provisioning failure')} ({what}; RB-001 6)",
    )


def _payment_failures(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> AlertResult:
    since = now - timedelta(minutes=thresholds.window_minutes)
    rejected = sum(1 for p in inputs.payments if _within(p.received_at, since) and rejection_kind(p) == "finance")
    review = sum(1 for job in inputs.jobs if job.status is JobStatus.NEEDS_REVIEW and _within(job.updated_at, since))
    total = rejected + review
    return AlertResult(
        rule="payment_failures",
        severity=Severity.WARNING,
        target="finance",
        firing=total > 0,
        value=total,
        threshold=0,
        message=(
            f"{plural(rejected, 'ITN')} rejected for merchant, plan or amount"
            f" and {plural(review, 'paid job')} needing review"
            f" in the last {thresholds.window_minutes} min"
        ),
    )


def _security_rejections(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> AlertResult:
    since = now - timedelta(minutes=thresholds.window_minutes)
    count = sum(1 for p in inputs.payments if _within(p.received_at, since) and rejection_kind(p) == "security")
    return AlertResult(
        rule="security_rejections",
        severity=Severity.ERROR,
        target="security",
        firing=count > thresholds.security_rejections,
        value=count,
        threshold=thresholds.security_rejections,
        message=(
            f"{plural(count, 'ITN')} rejected for signature, source address or PayFast confirmation"
            f" in the last {thresholds.window_minutes} min"
        ),
    )


def _unresolved_over_an_hour(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> AlertResult:
    cutoff = now - timedelta(minutes=thresholds.unresolved_minutes)
    # NEEDS_REVIEW waits on a human decision by design; it is Finance's alert, not a page.
    stuck = [
        job
        for job in inputs.jobs
        if job.status not in {JobStatus.SUCCEEDED, JobStatus.NEEDS_REVIEW} and parse_timestamp(job.created_at) < cutoff
    ]
    oldest = min((job.created_at for job in stuck), default=None)
    return AlertResult(
        rule="unresolved_over_an_hour",
        severity=Severity.CRITICAL,
        target="on_call",
        firing=bool(stuck),
        value=len(stuck),
        threshold=0,
        message=(
            f"{plural(len(stuck), 'job')} unresolved for more than {thresholds.unresolved_minutes} min"
            + (f" (oldest created {oldest})" if oldest else "")
        ),
    )


def _suspensions(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> AlertResult:
    count = inputs.suspensions_last_day
    return AlertResult(
        rule="suspensions_high",
        severity=Severity.WARNING,
        target="finance",
        firing=count > thresholds.suspensions_per_day,
        value=count,
        threshold=thresholds.suspensions_per_day,
        message=(
            f"{plural(count, 'tenant')} suspended for non-payment in the last day: more than usual, check "
            "PayFast for failing charges (`tenancy lifecycle history` shows each tenant's moves)"
        ),
    )


def _events_undelivered(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> AlertResult:
    count = inputs.undelivered_notices
    return AlertResult(
        rule="events_undelivered",
        severity=Severity.ERROR,
        target="engineering",
        firing=count > 0,
        value=count,
        threshold=0,
        message=(
            f"{plural(count, 'lifecycle notice')} (events for the Site Builder application, owner emails) "
            "undelivered after a day of retries: `tenancy diagnose` names each tenant's "
            "(event_undelivered) and `tenancy repair` delivers them again"
        ),
    )


Rule = Callable[[AlertInputs, AlertThresholds, datetime], AlertResult]
RULES: dict[str, Rule] = {
    "dlq_not_empty": _dlq_not_empty,
    "error_rate": _error_rate,
    "multiple_failures": _multiple_failures,
    "payment_failures": _payment_failures,
    "security_rejections": _security_rejections,
    "unresolved_over_an_hour": _unresolved_over_an_hour,
    "suspensions_high": _suspensions,
    "events_undelivered": _events_undelivered,
}


def evaluate(inputs: AlertInputs, thresholds: AlertThresholds, now: datetime) -> tuple[AlertResult, ...]:
    """Every rule, in a fixed order, judged on `inputs` as of `now`."""
    return tuple(rule(inputs, thresholds, now) for rule in RULES.values())


class AlertMonitor:
    """Reads what the rules need through the ports and evaluates them."""

    def __init__(
        self,
        *,
        journal: ProvisioningJournal,
        ledger: PaymentLedger,
        queue: JobQueue,
        clock: Clock,
        thresholds: AlertThresholds,
        index: FindingsIndex | None = None,
        lifecycle: LifecycleStore | None = None,
    ) -> None:
        self._index = index
        self._lifecycle = lifecycle
        self._journal = journal
        self._ledger = ledger
        self._queue = queue
        self._clock = clock
        self.thresholds = thresholds

    def check(self, *, count_all_payments: bool = False) -> AlertReport:
        """Evaluates every rule now. `count_all_payments` also counts the whole ledger by verdict
        (for /metrics); otherwise only the window's payments are counted."""
        now = self._clock.now()
        inputs = self.inputs(now, count_all_payments=count_all_payments)
        return AlertReport(checked_at=now, inputs=inputs, results=evaluate(inputs, self.thresholds, now))

    def inputs(self, now: datetime, *, count_all_payments: bool = False) -> AlertInputs:
        """What the rules need, read through counts and indexes, never a whole store: jobs are
        counted by status; jobs not succeeded are listed (a handful while all is well); succeeded
        jobs updated within the window are only counted; payments are counted by verdict and only
        the window's rejected ones are read (no other verdict can fire a rule)."""
        since = now - timedelta(minutes=max(self.thresholds.window_minutes, 0))
        by_status = self._journal.count_by_status()
        jobs = [
            job
            for status in JobStatus
            if status is not JobStatus.SUCCEEDED and by_status.get(status, 0) > 0
            for job in self._jobs_in(status, by_status[status])
        ]
        # Stored timestamps are whole seconds, so counting from the first whole second at or after
        # `since` counts exactly the jobs `_within` keeps.
        first_second = format_timestamp(since if not since.microsecond else since + timedelta(seconds=1))
        recent = self._journal.count_updated_since(JobStatus.SUCCEEDED, first_second)
        retried = self._journal.count_updated_since(JobStatus.SUCCEEDED, first_second, min_attempts=2) if recent else 0
        window_start = format_timestamp(since)
        by_verdict = self._ledger.count_by_verdict(None if count_all_payments else window_start)
        rejected = self._ledger.with_verdict(PaymentVerdict.REJECTED, window_start)
        queue_depth, dlq_depth = self._queue.depth()
        open_failures = None
        if self._index is not None:
            counts = self._index.count_by_finding()
            open_failures = sum(counts.get(finding, 0) for finding in REPAIRABLE_FINDINGS)
        suspensions = undelivered = 0
        if self._lifecycle is not None:
            suspensions = self._lifecycle.count_events_since(
                EventType.SUSPENDED, format_timestamp(now - timedelta(days=1))
            )
            undelivered = self._lifecycle.notice_counts().get(NoticeStatus.DEAD, 0)
        return AlertInputs(
            suspensions_last_day=suspensions,
            undelivered_notices=undelivered,
            queue_depth=queue_depth,
            dlq_depth=dlq_depth,
            jobs=jobs,
            payments=[payment for payment in rejected if _within(payment.received_at, since)],
            jobs_by_status=by_status,
            payments_by_verdict=by_verdict,
            recent_succeeded=recent,
            recent_succeeded_retried=retried,
            open_failures=open_failures,
        )

    def _jobs_in(self, status: JobStatus, counted: int) -> list[ProvisioningJob]:
        """Every job in `status`: `counted` of them a moment ago, and any that came since."""
        limit = counted + 100
        while True:
            jobs = self._journal.list_jobs(status, limit=limit)
            if len(jobs) < limit:
                return jobs
            limit *= 2


@dataclass(frozen=True, slots=True)
class AlertTransition:
    result: AlertResult
    resolved: bool  # False: started firing; True: stopped firing


class AlertWatch:
    """Remembers which rules fired last time, so a watcher notifies on changes, not every tick."""

    def __init__(self) -> None:
        self._firing: set[str] = set()

    def observe(self, results: Iterable[AlertResult]) -> list[AlertTransition]:
        transitions: list[AlertTransition] = []
        for result in results:
            was_firing = result.rule in self._firing
            if result.firing and not was_firing:
                self._firing.add(result.rule)
                transitions.append(AlertTransition(result, resolved=False))
            elif was_firing and not result.firing:
                self._firing.discard(result.rule)
                transitions.append(AlertTransition(result, resolved=True))
        return transitions


@dataclass(frozen=True, slots=True)
class Delivery:
    rule: str
    destination: str
    delivered: bool
    error: str | None = None

    def as_document(self) -> dict[str, object]:
        return {"rule": self.rule, "destination": self.destination, "delivered": self.delivered, "error": self.error}


class AlertDispatcher:
    """Sends an alert to every notifier routed to its target. A notifier that fails is logged and
    reported in the returned deliveries: alerting must never stop because one destination is down."""

    def __init__(self, routes: Mapping[str, Sequence[Notifier]]) -> None:
        self._routes = routes

    @property
    def routes(self) -> Mapping[str, Sequence[Notifier]]:
        """The notifiers of each escalation target."""
        return self._routes

    def dispatch(self, result: AlertResult, *, resolved: bool = False) -> list[Delivery]:
        return [self._deliver(notifier, result, resolved) for notifier in self._routes.get(result.target, ())]

    def _deliver(self, notifier: Notifier, result: AlertResult, resolved: bool) -> Delivery:
        try:
            notifier.notify(rule=result.rule, severity=result.severity.value, summary=result.message, resolved=resolved)
        except Exception as error:  # noqa: BLE001 - any notifier failure is reported, never raised
            log.warning(
                "alert_notify_failed",
                rule=result.rule,
                destination=notifier.name,
                error_type=type(error).__name__,
                error=str(error),
            )
            return Delivery(result.rule, notifier.name, delivered=False, error=f"{type(error).__name__}: {error}")
        return Delivery(result.rule, notifier.name, delivered=True)
