"""The sweep for stalled jobs: a job with no message to bring it to a worker gets one, once; a
run that died mid-job is released; one that died every time is parked."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from tenancy.bootstrap import Services
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.ports import ProvisioningJournal

from helpers import journal_job, work

EMAIL = "stalled@example.com"


class Later:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def stalled_job(services: Services, transaction_id: str = "TXN-STALL1", **changes: Any) -> ProvisioningJob:
    """A job the journal has, whose queue message was never sent (the send failed after the write)."""
    old = format_timestamp(services.clock.now() - timedelta(minutes=20))
    job = journal_job(services, transaction_id, f"{transaction_id.lower()}@example.com")
    job = job.with_changes(created_at=old, updated_at=old, **changes)
    services.journal.save(job)
    return job


def test_a_stalled_job_gets_a_message_and_is_then_provisioned(services: Services) -> None:
    job = stalled_job(services)
    assert services.queue.depth() == (0, 0)

    swept = services.sweeper.sweep()
    again = services.sweeper.sweep()  # it has a message now, and was just touched
    work(services)

    assert swept.requeued == [job.transaction_id]
    assert again.requeued == []
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.SUCCEEDED
    assert len(services.mailer.outbox(job.email)) == 1


def test_a_job_whose_message_waits_in_the_queue_gets_no_second_one(services: Services) -> None:
    job = stalled_job(services)
    services.queue.send(job.transaction_id)

    assert services.sweeper.sweep().requeued == []
    assert services.queue.depth() == (1, 0)


def test_a_young_job_and_a_finished_one_are_left_alone(services: Services) -> None:
    journal_job(services, "TXN-YOUNG1", "young@example.com")
    finished = stalled_job(services, "TXN-DONE01")
    services.sweeper.sweep()
    work(services)
    assert services.journal.get(finished.transaction_id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    later = dataclasses.replace(services, clock=Later(services.clock.now() + timedelta(minutes=5)))

    assert later.sweeper.sweep().requeued == []


def test_a_retry_overdue_by_the_stall_time_is_requeued_and_one_not_yet_due_is_not(services: Services) -> None:
    now = services.clock.now()
    stalled_job(services, "TXN-RETRY1", status=JobStatus.RETRYING, attempts=1,
                next_attempt_at=format_timestamp(now - timedelta(minutes=16)))  # fmt: skip
    stalled_job(services, "TXN-RETRY2", status=JobStatus.RETRYING, attempts=1,
                next_attempt_at=format_timestamp(now + timedelta(minutes=4)))  # fmt: skip

    assert services.sweeper.sweep().requeued == ["TXN-RETRY1"]


def test_a_running_job_whose_run_died_is_released_and_requeued(services: Services) -> None:
    """A run started by hand (RB-001 4.1, a console repair) that died leaves no message at all."""
    job = stalled_job(services, status=JobStatus.RUNNING, attempts=1, claim="dead-run")

    swept = services.sweeper.sweep()

    released = services.journal.get(job.transaction_id)
    assert swept.requeued == [job.transaction_id]
    assert released is not None
    assert (released.status, released.claim) == (JobStatus.QUEUED, None)
    assert not services.journal.save_claimed(released, expected_claim="dead-run")  # the dead run is fenced out
    work(services)
    assert services.journal.get(job.transaction_id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]


def test_a_running_job_that_used_up_its_attempts_is_parked_not_requeued(services: Services) -> None:
    attempts = services.settings.retry_max_attempts
    job = stalled_job(services, status=JobStatus.RUNNING, attempts=attempts, claim="dead-run")

    swept = services.sweeper.sweep()

    parked = services.journal.get(job.transaction_id)
    assert (swept.requeued, swept.parked) == ([], [job.transaction_id])
    assert parked is not None
    assert parked.status is JobStatus.DEAD_LETTERED
    assert services.queue.depth() == (0, 1)


def test_old_stalled_jobs_are_not_starved_by_a_backlog_of_young_ones(services: Services) -> None:
    stalled = stalled_job(services, "TXN-OLDEST")
    for number in range(5):
        journal_job(services, f"TXN-YOUNG{number}", f"young{number}@example.com")  # queued just now

    assert services.sweeper.sweep().requeued == [stalled.transaction_id]


class StaleReads:
    """The journal as a sweep saw it a moment ago: since then a run claimed the job."""

    def __init__(self, real: ProvisioningJournal, seen: ProvisioningJob) -> None:
        self._real = real
        self._seen = seen

    def stale_jobs(self, status: str, updated_before: str, limit: int = 1000) -> list[ProvisioningJob]:
        return [self._seen] if status == self._seen.status.value else []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_job_a_run_claimed_since_the_sweep_read_it_gets_no_message(services: Services) -> None:
    seen = stalled_job(services)
    services.journal.save(seen.with_changes(status=JobStatus.RUNNING, attempts=1, claim="live-run"))
    sweeping = dataclasses.replace(services, journal=StaleReads(services.journal, seen))

    assert sweeping.sweeper.sweep().requeued == []
    assert services.queue.depth() == (0, 0)
    assert services.journal.get(seen.transaction_id).claim == "live-run"  # type: ignore[union-attr]
