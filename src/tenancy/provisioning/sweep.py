"""Puts stalled jobs back on the work queue. A job is written before its queue message is sent;
on AWS the two cannot share a transaction, so a send that fails after the journal write leaves a
queued job that no message will ever bring to a worker. And a run started by hand (RB-001 4.1's
direct invocation, a console repair) that dies leaves a `running` job with no message at all.

A job queued, due for retry or running that nobody has touched for STALLED_AFTER gets a fresh
message; a second message for a job whose first one was only slow is harmless, since a run
claims its job (provisioning.worker). A running job that has used up its attempts is parked in
the dead-letter queue instead, so a job that kills every run does not go round for ever.

Where the sweep can look for a job's message (the embedded queue) it sends one only to a job that
has none. On SQS a look is a receive, so it counts instead: while the work queue holds at least
as many messages as there are jobs waiting for one, a job that waits long is behind the backlog,
not lost, and queued and retrying jobs get no second message (one each per STALLED_AFTER for as
long as a backlog lasted would only grow it); once the queue holds fewer, the stalled ones do."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.domain.plurals import plural
from tenancy.ports import Clock, JobQueue, ProvisioningJournal, PurchaseObserver
from tenancy.provisioning.worker import STALLED_AFTER

__all__ = ["StalledJobSweeper", "SweepResult"]

log = structlog.get_logger(__name__)

# Per status and sweep, oldest first: a larger backlog is swept over several sweeps.
_BATCH = 1000
_WAITING = (JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING)  # each needs a message
_EVER = "0001-01-01T00:00:00Z"  # a time before every job (DynamoDB refuses an empty key value)


@dataclass(frozen=True, slots=True)
class SweepResult:
    requeued: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    # Purchases whose stale dead letter went (healed since SQS parked a copy): see Services.sweep.
    cleared: list[str] = field(default_factory=list)
    # Purchases whose accepted subscription payment the sweep applied (renewal_unapplied repaired).
    settled: list[str] = field(default_factory=list)

    def as_document(self) -> dict[str, list[str]]:
        return {"requeued": self.requeued, "parked": self.parked, "cleared": self.cleared, "settled": self.settled}


class StalledJobSweeper:
    def __init__(
        self,
        journal: ProvisioningJournal,
        queue: JobQueue,
        clock: Clock,
        *,
        max_attempts: int,
        stalled_after: timedelta = STALLED_AFTER,
        observer: PurchaseObserver | None = None,
    ) -> None:
        self._observer = observer
        self._journal = journal
        self._queue = queue
        self._clock = clock
        self._max_attempts = max_attempts
        self._stalled_after = stalled_after

    def sweep(self) -> SweepResult:
        now = self._clock.now()
        cutoff = format_timestamp(now - self._stalled_after)
        result = SweepResult()
        behind_a_backlog: bool | None = None  # asked of the queue only when a job has stalled
        for status in _WAITING:
            for job in self._journal.stale_jobs(status.value, cutoff, limit=_BATCH):
                if not self._stalled(job, now) or self._has_a_message(job):
                    continue
                if status is not JobStatus.RUNNING:  # a running job's stall is its run's
                    if behind_a_backlog is None:
                        behind_a_backlog = self._backlog_holds_every_message()
                    if behind_a_backlog:
                        break
                self._rescue(job, now, result)
                if self._observer is not None:
                    self._observer.changed(job.transaction_id)
        return result

    def _stalled(self, job: ProvisioningJob, now: datetime) -> bool:
        if job.status is JobStatus.RETRYING and job.next_attempt_at:
            return parse_timestamp(job.next_attempt_at) + self._stalled_after <= now
        return True  # stale_jobs chose it by its last write

    def _backlog_holds_every_message(self) -> bool:
        """On SQS: whether the work queue holds a message (visible, in flight or delayed) for
        every job that waits for one. SQS's counts are approximate; a job whose message was lost
        is requeued once the queue has drained below the jobs waiting, as it would have waited
        behind the backlog anyway."""
        if not self._queue.listing_counts_as_delivery:
            return False
        messages, _dead = self._queue.depth()
        if messages == 0:
            return False
        # Only the waiting statuses: counting every job (the succeeded ones) would read them all.
        return messages >= sum(self._journal.count_updated_since(status.value, _EVER) for status in _WAITING)

    def _has_a_message(self, job: ProvisioningJob) -> bool:
        # Only where looking is free: on SQS a look is a receive, and a duplicate is harmless.
        return not self._queue.listing_counts_as_delivery and bool(
            self._queue.messages(transaction_id=job.transaction_id)
        )

    def _rescue(self, job: ProvisioningJob, now: datetime, result: SweepResult) -> None:
        stamp = format_timestamp(now)
        if job.status is JobStatus.RUNNING and job.attempts >= self._max_attempts:
            stopped, attempts = plural(job.attempts, "time"), plural(job.attempts, "attempt")
            error = f"stalled: its run stopped {stopped} without a word (after {attempts})"
            parked = job.with_changes(status=JobStatus.DEAD_LETTERED, last_error=error, claim=None, updated_at=stamp)
            if self._journal.save_claimed(parked, expected_claim=job.claim):
                self._queue.send_dead_letter(job.transaction_id, error)
                result.parked.append(job.transaction_id)
                log.error("job_dead_lettered", transaction_id=job.transaction_id, error=error)
            return
        # Written first, conditional on the claim read: a job a run took meanwhile is moving and
        # needs no message. A running job is released (claim cleared), so a run still going
        # somewhere stops at its next write.
        released = job.with_changes(status=JobStatus.QUEUED, claim=None) if job.status is JobStatus.RUNNING else job
        touched = released.with_changes(updated_at=stamp, next_attempt_at=None)
        if self._journal.save_claimed(touched, expected_claim=job.claim):
            self._queue.send(job.transaction_id)
            result.requeued.append(job.transaction_id)
            log.warning("job_requeued", transaction_id=job.transaction_id, status=job.status.value)
