"""Puts stalled jobs back on the work queue. A job is written before its queue message is sent;
on AWS the two cannot share a transaction, so a send that fails after the journal write leaves a
queued job that no message will ever bring to a worker. A job queued or due for retry that nobody
has touched for STALLED_AFTER gets a fresh message; a second message for a job whose first one
was only slow is harmless, since a run claims its job (provisioning.worker)."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.ports import Clock, JobQueue, ProvisioningJournal
from tenancy.provisioning.worker import STALLED_AFTER

__all__ = ["StalledJobSweeper"]

log = structlog.get_logger(__name__)

# Per status and sweep. The journal lists newest first; a backlog larger than this is swept over
# several sweeps, as each swept job is touched and drops out of the stalled ones.
_BATCH = 1000


class StalledJobSweeper:
    def __init__(
        self, journal: ProvisioningJournal, queue: JobQueue, clock: Clock, stalled_after: timedelta = STALLED_AFTER
    ) -> None:
        self._journal = journal
        self._queue = queue
        self._clock = clock
        self._stalled_after = stalled_after

    def sweep(self) -> list[str]:
        """Sends a message for each stalled job; returns their transaction ids."""
        now = self._clock.now()
        requeued: list[str] = []
        for status in (JobStatus.QUEUED, JobStatus.RETRYING):
            for job in self._journal.list_jobs(status.value, limit=_BATCH):
                if self._stalled(job, now) and self._touch(job, now):
                    self._queue.send(job.transaction_id)
                    requeued.append(job.transaction_id)
                    log.warning("job_requeued", transaction_id=job.transaction_id, status=job.status.value)
        return requeued

    def _stalled(self, job: ProvisioningJob, now: datetime) -> bool:
        due = job.next_attempt_at if job.status is JobStatus.RETRYING and job.next_attempt_at else job.updated_at
        return parse_timestamp(due) + self._stalled_after <= now

    def _touch(self, job: ProvisioningJob, now: datetime) -> bool:
        """Marks the job as just requeued (so the next sweep leaves it for STALLED_AFTER), unless
        a run claimed it since it was read: then it is moving, and needs no message."""
        touched = job.with_changes(updated_at=format_timestamp(now), next_attempt_at=None)
        return self._journal.save_claimed(touched, expected_claim=job.claim)
