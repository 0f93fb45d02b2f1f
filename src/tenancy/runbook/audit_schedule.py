"""The weekly audit, on a schedule: a full audit of every purchase ever made (the reconciliation
that refreshes the findings index, catching what changed outside the system) whenever the last
one finished more than TENANCY_AUDIT_INTERVAL_HOURS ago, or never ran. The embedded backend runs
it in a thread of `tenancy serve` and `tenancy worker`; AWS runs it from an EventBridge schedule
(`tenancy.lambdas.audit_handler`).

Whether one is due is read from the index (its last recorded run), and the process that runs it
first claims it in the index for a quarter of an hour: processes that restart, or several that
share the stores, neither audit on their own clock nor at once, and an audit that failed, or
whose process was killed, is tried again by whichever process checks first once the claim has
run out."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import structlog

from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.errors import TenancyError
from tenancy.ports import Clock, FindingsIndex
from tenancy.runbook.audit import AuditReport
from tenancy.runbook.findings_index import Auditor, AuditTrigger

__all__ = ["BEGINNING", "ScheduledAudit"]

log = structlog.get_logger(__name__)

# The scheduled audit reaches back to the first purchase: it is the index's reconciliation.
BEGINNING = datetime.min.replace(tzinfo=UTC)
_RETRY_AFTER_FAILURE = timedelta(minutes=15)


class ScheduledAudit:
    def __init__(self, auditor: Auditor, index: FindingsIndex, clock: Clock, interval: timedelta) -> None:
        self._auditor = auditor
        self._index = index
        self._clock = clock
        self._interval = interval
        self._not_before: datetime | None = None  # after a failed run, when to try again

    def due(self) -> bool:
        now = self._clock.now()
        if self._not_before is not None and now < self._not_before:
            return False
        last = self._index.last_audit()
        return last is None or parse_timestamp(last.finished_at) + self._interval <= now

    def run(self) -> AuditReport:
        """One full audit now, refreshing the index, recorded as the schedule's."""
        return self._auditor.run(since=BEGINNING, trigger=AuditTrigger.SCHEDULE)

    def run_if_due(self) -> AuditReport | None:
        """The audit if one is due and no other process holds it (None otherwise). A failed run
        is logged and tried again a quarter of an hour later, never raised: the worker it runs
        beside must keep working."""
        try:
            # Whether one is due reads the stores too (when the last audit ran): a busy store there
            # is a failed check like any other, not a crash.
            if not self.due():
                return None
            now = self._clock.now()
            if not self._index.claim_audit(format_timestamp(now), format_timestamp(now + _RETRY_AFTER_FAILURE)):
                return None  # another process audits now, or its audit failed less than the period ago
            return self.run()
        except TenancyError as error:
            self._not_before = self._clock.now() + _RETRY_AFTER_FAILURE
            log.error("scheduled_audit_failed", error=str(error))
            return None

    def run_until(self, stop: threading.Event, check_seconds: float) -> None:
        """Checks every `check_seconds` until `stop` is set."""
        log.info("audit_schedule_started", interval_hours=self._interval.total_seconds() / 3600)
        while not stop.is_set():
            try:
                self.run_if_due()
            except Exception:
                # An unexpected failure (a broken store) must not end the thread for good.
                log.exception("scheduled_audit_crashed")
            stop.wait(check_seconds)
        log.info("audit_schedule_stopped")
