"""The provisioning worker: receives jobs, runs the saga, and retries, finishes or dead-letters each."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import structlog

from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.model import JobStatus, ProvisioningJob, QueueMessage
from tenancy.domain.plurals import plural
from tenancy.errors import ClaimLostError, PermanentError, TransientError
from tenancy.ports import Clock, JobQueue, ProvisioningJournal, PurchaseObserver
from tenancy.provisioning.retry import RetryPolicy
from tenancy.provisioning.saga import ProvisioningSaga

__all__ = ["STALLED_AFTER", "SWEEP_EVERY", "JobOutcome", "NextAction", "ProvisioningWorker"]

# An unfinished job nobody has touched for this long is in no worker's hands any more (lost);
# younger, it is left to the worker that has it. The sweep's default (TENANCY_STALLED_AFTER_SECONDS).
STALLED_AFTER = timedelta(minutes=15)
# How often a polling worker looks for stalled jobs (provisioning.sweep); TENANCY_STALLED_SWEEP_SECONDS.
SWEEP_EVERY = timedelta(minutes=5)

log = structlog.get_logger(__name__)

# The longest a worker waits between polls while its queue or journal keeps failing.
_MAX_POLL_BACKOFF_SECONDS = 30.0


class NextAction(StrEnum):
    FINISHED = "finished"  # succeeded or needs review: the message is done with
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    BUSY = "busy"  # another run holds the job: look again after `delay_seconds`
    SUPERSEDED = "superseded"  # another run took the job over from this one: leave it to that run


@dataclass(frozen=True, slots=True)
class JobOutcome:
    job: ProvisioningJob
    action: NextAction
    delay_seconds: float = 0.0

    def as_document(self) -> dict[str, object]:
        """Where a run left the job: what `tenancy provision` prints and RB-001 4.1's invoke answers."""
        job = self.job
        return {
            "transaction_id": job.transaction_id,
            "tenant_id": job.tenant_id,
            "status": job.status.value,
            "completed_steps": [step.value for step in job.completed_steps],
            "next_action": self.action.value,
            "last_error": job.last_error,
            "review_reason": job.review_reason,
        }


class ProvisioningWorker:
    def __init__(
        self,
        *,
        queue: JobQueue,
        journal: ProvisioningJournal,
        saga: ProvisioningSaga,
        retry: RetryPolicy,
        clock: Clock,
        visibility_timeout: float,
        batch_size: int = 1,
        observer: PurchaseObserver | None = None,
        sweep_every: timedelta = SWEEP_EVERY,
    ) -> None:
        self._observer = observer
        self._sweep_every = sweep_every
        self._queue = queue
        self._journal = journal
        self._saga = saga
        self._retry = retry
        self._clock = clock
        self._visibility_timeout = visibility_timeout
        self._batch_size = batch_size

    def run_job(self, job: ProvisioningJob) -> JobOutcome:
        """One attempt at the job, with the journal kept true whatever happens.

        The attempt first claims the job: a conditional write of a new claim over the one it
        read. Two runs that read the same state cannot both claim it, a job another run is
        working on (RUNNING, and written within the visibility timeout) is left alone, and
        every later write of this run is conditional on its claim, so a run that was taken
        over (it outlived its lease) stops at its next step instead of running on beside the
        new one."""
        if job.status.is_final:
            return JobOutcome(job, NextAction.FINISHED)
        held_for = self._lease_left(job)
        if held_for > 0:
            log.info("job_busy", transaction_id=job.transaction_id, seconds_left=round(held_for, 1))
            return JobOutcome(job, NextAction.BUSY, held_for)
        claimed = job.with_changes(
            status=JobStatus.RUNNING, attempts=job.attempts + 1, claim=uuid.uuid4().hex, updated_at=self._now()
        )
        if not self._journal.save_claimed(claimed, expected_claim=job.claim):
            log.info("job_busy", transaction_id=job.transaction_id, reason="claimed by another run")
            return JobOutcome(job, NextAction.BUSY, self._visibility_timeout)
        job = claimed
        log.info("job_started", transaction_id=job.transaction_id, tenant_id=job.tenant_id, attempt=job.attempts)
        try:
            outcome = self._attempt(job)
        except ClaimLostError:
            log.warning("job_superseded", transaction_id=job.transaction_id, tenant_id=job.tenant_id)
            return JobOutcome(job, NextAction.SUPERSEDED)  # the run that took over tells the observer
        if self._observer is not None:
            self._observer.changed(job.transaction_id)
        return outcome

    def _attempt(self, job: ProvisioningJob) -> JobOutcome:
        try:
            job = self._saga.run(job)
        except ClaimLostError:
            raise
        except PermanentError as error:
            return self._dead_letter(self._recorded_progress(job), f"permanent: {error}")
        except TransientError as error:
            return self._retry_or_dead_letter(self._recorded_progress(job), f"transient: {error}")
        except Exception as error:
            # An unforeseen failure is retried, then parked: never lost.
            log.exception("job_crashed", transaction_id=job.transaction_id)
            return self._retry_or_dead_letter(
                self._recorded_progress(job), f"unexpected: {type(error).__name__}: {error}"
            )
        log.info("job_finished", transaction_id=job.transaction_id, tenant_id=job.tenant_id, status=job.status.value)
        return JobOutcome(job, NextAction.FINISHED)

    def handle(self, message: QueueMessage) -> JobOutcome | None:
        job = self._journal.get(message.transaction_id)
        if job is None:
            self._queue.dead_letter(message.receipt, "no provisioning journal entry for this transaction")
            log.error("job_missing", transaction_id=message.transaction_id)
            return None
        outcome = self.run_job(job)
        if outcome.action is NextAction.SUPERSEDED:
            return outcome  # the run that took over holds this message now
        # A job already dead-lettered comes back only when its move to the DLQ failed (or the worker
        # died before it): its message belongs in the DLQ, where operators look, not deleted.
        parked = outcome.job.status is JobStatus.DEAD_LETTERED
        if outcome.action is NextAction.FINISHED and not parked:
            self._queue.delete(message.receipt)
        elif outcome.action in {NextAction.RETRY, NextAction.BUSY}:
            self._queue.retry_later(message.receipt, outcome.delay_seconds)
        else:
            self._queue.dead_letter(message.receipt, outcome.job.last_error or "failed")
        return outcome

    def poll_once(self) -> int:
        """Receives one batch and handles it; returns how many messages there were."""
        messages = self._queue.receive(self._batch_size, self._visibility_timeout)
        for message in messages:
            self.handle(message)
        return len(messages)

    def run_until(
        self, stop: threading.Event, idle_seconds: float, sweep: Callable[[], object] | None = None
    ) -> None:
        """Polls until `stop` is set; the job in hand is finished before returning. `sweep`, if
        given, runs every `sweep_every` (it puts stalled jobs back on the queue)."""
        log.info("worker_started")
        failures = 0
        next_sweep = time.monotonic()
        while not stop.is_set():
            try:
                if sweep is not None and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self._sweep_every.total_seconds()
                    sweep()
                handled = self.poll_once()
                failures = 0
            except TransientError as error:
                log.warning("worker_poll_failed", error=str(error))
                handled = 0
            except Exception:
                # Any other failure of the queue or journal (a broken database file, denied access)
                # must not end the loop: a dead worker thread leaves a server that accepts payments
                # and provisions none. Its message comes back after the visibility timeout; the
                # loop keeps polling, more slowly while the failure lasts.
                failures += 1
                log.exception("worker_poll_crashed", consecutive_failures=failures)
                stop.wait(min(idle_seconds * 2**failures, _MAX_POLL_BACKOFF_SECONDS))
                continue
            if handled == 0:
                stop.wait(idle_seconds)
        log.info("worker_stopped")

    def _recorded_progress(self, job: ProvisioningJob) -> ProvisioningJob:
        """The job with the steps the saga recorded before it failed, so they are not overwritten."""
        try:
            stored = self._journal.get(job.transaction_id)
        except TransientError:
            return job
        if stored is None:
            return job
        return job.with_changes(completed_steps=stored.completed_steps, owner_user_id=stored.owner_user_id)

    def _retry_or_dead_letter(self, job: ProvisioningJob, error: str) -> JobOutcome:
        if self._retry.exhausted(job.attempts):
            return self._dead_letter(job, f"{error} (after {plural(job.attempts, 'attempt')})")
        delay = self._retry.delay(job.attempts)
        job = job.with_changes(
            status=JobStatus.RETRYING,
            last_error=error,
            next_attempt_at=format_timestamp(self._clock.now() + timedelta(seconds=delay)),
            updated_at=self._now(),
        )
        self._save(job)
        log.warning(
            "job_retry",
            transaction_id=job.transaction_id,
            tenant_id=job.tenant_id,
            attempt=job.attempts,
            delay_seconds=round(delay, 3),
            error=error,
        )
        return JobOutcome(job, NextAction.RETRY, delay)

    def _dead_letter(self, job: ProvisioningJob, error: str) -> JobOutcome:
        job = job.with_changes(
            status=JobStatus.DEAD_LETTERED, last_error=error, next_attempt_at=None, updated_at=self._now()
        )
        self._save(job)
        log.error("job_dead_lettered", transaction_id=job.transaction_id, tenant_id=job.tenant_id, error=error)
        return JobOutcome(job, NextAction.DEAD_LETTER)

    def _save(self, job: ProvisioningJob) -> None:
        if not self._journal.save_claimed(job, expected_claim=job.claim):
            raise ClaimLostError(f"{job.transaction_id} was claimed by another run")

    def _lease_left(self, job: ProvisioningJob) -> float:
        """Seconds until a RUNNING job's last write is older than the visibility timeout: until
        then its run is taken to be alive (it writes after every step)."""
        if job.status is not JobStatus.RUNNING:
            return 0.0
        age = (self._clock.now() - parse_timestamp(job.updated_at)).total_seconds()
        # Capped: a write stamped in the future (a skewed clock) must not hold the job for longer.
        return min(self._visibility_timeout, max(0.0, self._visibility_timeout - age))

    def _now(self) -> str:
        return format_timestamp(self._clock.now())
