"""The findings index, kept: each purchase judged again by the runbook's own rules whenever the
system changes it (FindingsRecorder, the PurchaseObserver that intake, the worker, the sweep and
the runbook tell), and every purchase a full audit classifies written back (IndexRefresh), so the
console, /metrics and the alerts read findings without auditing every purchase on each look.

The full audit stays the reconciliation: it catches what changed outside the system (a record
written or deleted by hand), which no observer hears of."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import AuditRun, IndexedPurchase
from tenancy.errors import TenancyError
from tenancy.lifecycle.due import LifecyclePeriods
from tenancy.ports import Clock, FindingsIndex, RepairTrail
from tenancy.runbook.audit import AuditReport, Progress, run_audit
from tenancy.runbook.evidence import CaseFile, EvidenceStores, Purchase, gather
from tenancy.runbook.findings import Finding
from tenancy.runbook.rules import DEFAULT_PASSWORD_TTL, DEFAULT_PERIODS, Context, first_match

__all__ = ["OPEN", "AuditTrigger", "Auditor", "FindingsRecorder", "IndexRefresh", "indexed"]

log = structlog.get_logger(__name__)

# The findings an index entry can be stale in: everything but healthy. A full audit judges again
# any such entry it did not meet (a purchase whose records are all gone since).
OPEN = tuple(finding for finding in Finding if finding is not Finding.HEALTHY)
_REFRESH_BATCH = 500
_OPEN_LIMIT = 1_000_000


def indexed(case: CaseFile, finding: Finding, now: datetime) -> IndexedPurchase:
    """The index entry of a classified case. Its purchase last changed when its job was last
    updated, else when its newest ITN came, else when its tenant was created."""
    if case.job is not None:
        changed_at = case.job.updated_at
    elif case.payments:
        changed_at = max(payment.received_at for payment in case.payments)
    elif case.tenant is not None:
        changed_at = case.tenant.created_at
    else:
        changed_at = format_timestamp(now)
    return IndexedPurchase(
        transaction_id=case.transaction_id or "",
        finding=finding.value,
        classified_at=format_timestamp(now),
        changed_at=changed_at,
        email=case.email,
        tenant_id=case.tenant_id,
        job_status=case.job.status.value if case.job is not None else None,
    )


class FindingsRecorder:
    """Judges a purchase again, as `tenancy diagnose` would, and writes its finding to the index.
    `stores` must be ones whose look-ups change nothing (on SQS: dead letters only; see
    runbook.passive), since it runs after every change."""

    def __init__(
        self,
        stores: EvidenceStores,
        index: FindingsIndex,
        clock: Clock,
        password_ttl: timedelta = DEFAULT_PASSWORD_TTL,
        periods: LifecyclePeriods = DEFAULT_PERIODS,
    ) -> None:
        self._stores = stores
        self._index = index
        self._clock = clock
        self._password_ttl = password_ttl
        self._periods = periods

    def changed(self, transaction_id: str) -> None:
        """PurchaseObserver: never raises. A purchase it cannot judge now keeps its old entry
        until its next change or the next full audit."""
        try:
            self.record(transaction_id)
        except TenancyError as error:
            log.warning("findings_index_not_updated", transaction_id=transaction_id, error=str(error))
        except Exception:
            # The index only reports on the work: whatever goes wrong here, the change it was told
            # of (a payment kept, a job run) stands, and the next audit sets the entry right.
            log.exception("findings_index_not_updated", transaction_id=transaction_id)

    def record(self, transaction_id: str) -> IndexedPurchase | None:
        """The purchase judged now and written to the index; None for a blank transaction id."""
        stripped = transaction_id.strip()
        if not stripped:
            return None
        now = self._clock.now()
        case = gather(Purchase.of_transaction(stripped), self._stores)
        rule, _found = first_match(case, Context(now, self._password_ttl, self._stores.mail_statistics, self._periods))
        entry = indexed(case, rule.finding, now)
        self._index.put(entry)
        return entry


@dataclass
class IndexRefresh:
    """What a full audit writes back: its `classified` callback (runbook.audit), told of every
    purchase it judges. Entries are compared in batches and only those that differ are written;
    `finish` then judges again the open entries the audit never met, and records the run."""

    index: FindingsIndex
    recorder: FindingsRecorder
    clock: Clock
    now: datetime = field(init=False)
    written: int = 0
    classified: int = 0
    _pending: list[IndexedPurchase] = field(default_factory=list)
    _unmet: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.now = self.clock.now()
        # Few: the purchases not healthy when the audit started.
        self._unmet = {
            entry.transaction_id
            for finding in OPEN
            for entry in self.index.with_finding(finding.value, limit=_OPEN_LIMIT)
        }

    def __call__(self, case: CaseFile, finding: Finding) -> None:
        if not case.transaction_id:
            return
        self.classified += 1
        self._unmet.discard(case.transaction_id)
        self._pending.append(indexed(case, finding, self.now))
        if len(self._pending) >= _REFRESH_BATCH:
            self._flush()

    def finish(self, *, started_at: datetime, trigger: str, since: datetime, findings: int) -> AuditRun:
        self._flush()
        for transaction_id in sorted(self._unmet):
            self.recorder.changed(transaction_id)
        run = AuditRun(
            started_at=format_timestamp(started_at),
            finished_at=format_timestamp(self.clock.now()),
            trigger=trigger,
            since=format_timestamp(since),
            purchases=self.classified,
            findings=findings,
        )
        self.index.record_audit(run)
        return run

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        known = self.index.get_many([entry.transaction_id for entry in pending])
        for entry in _changed(pending, known):
            self.index.put(entry)
            self.written += 1


def _changed(entries: Iterable[IndexedPurchase], known: dict[str, IndexedPurchase]) -> Iterable[IndexedPurchase]:
    """The entries that say something other than the index does (the time judged aside)."""
    for entry in entries:
        before = known.get(entry.transaction_id)
        if before is None or _meaning(before) != _meaning(entry):
            yield entry


def _meaning(entry: IndexedPurchase) -> tuple[object, ...]:
    return (entry.finding, entry.changed_at, entry.email, entry.tenant_id, entry.job_status)


class AuditTrigger(StrEnum):
    """Who ran a full audit, as the console shows it."""

    SCHEDULE = "schedule"
    CLI = "cli"
    CONSOLE = "console"


@dataclass(frozen=True, slots=True)
class Auditor:
    """The full audit (runbook.audit) as `tenancy audit`, the console and the schedule run it:
    every purchase it classifies is written back to the findings index, and the run is recorded
    there, so the console can say when the index was last reconciled with the stores."""

    stores: EvidenceStores
    index: FindingsIndex
    recorder: FindingsRecorder
    trail: RepairTrail
    clock: Clock
    password_ttl: timedelta = DEFAULT_PASSWORD_TTL
    periods: LifecyclePeriods = DEFAULT_PERIODS

    def run(self, *, since: datetime, trigger: AuditTrigger, progress: Progress | None = None) -> AuditReport:
        started_at = self.clock.now()
        refresh = IndexRefresh(self.index, self.recorder, self.clock)
        report = run_audit(
            self.stores,
            since=since,
            now=refresh.now,
            progress=progress,
            password_ttl=self.password_ttl,
            periods=self.periods,
            trail=self.trail,
            classified=refresh,
        )
        run = refresh.finish(started_at=started_at, trigger=trigger.value, since=since, findings=len(report.cases))
        log.info(
            "audit_finished",
            trigger=run.trigger,
            since=run.since,
            purchases=run.purchases,
            findings=run.findings,
            index_entries_written=refresh.written,
        )
        return report
