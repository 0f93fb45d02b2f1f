"""The sweep for stalled jobs: a job with no message to bring it to a worker gets one, once; a
run that died mid-job is released; one that died every time is parked. The stall time and the
worker's sweep period are settings, which a soak shortens to heal a failed send within seconds."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tenancy.bootstrap import Services, build
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.ports import ProvisioningJournal

from helpers import ManualClock, journal_job, make_settings, wait_until, work

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


@pytest.fixture
def soak_services(tmp_path: Path) -> Iterator[Services]:
    """Services with the soak's short stall time and sweep period, on a clock the test moves."""
    settings = make_settings(tmp_path / "soak-home", stalled_after_seconds=30, stalled_sweep_seconds=0.05)
    built = build(settings, clock=ManualClock())
    yield built
    built.close()


def test_a_short_stall_time_requeues_a_job_whose_send_failed_within_seconds(soak_services: Services) -> None:
    clock = soak_services.clock
    assert isinstance(clock, ManualClock)
    job = journal_job(soak_services, "TXN-SOAK01", "soak@example.com")  # its queue send failed: no message

    clock.advance(29)
    assert soak_services.sweeper.sweep().requeued == []
    clock.advance(2)
    assert soak_services.sweeper.sweep().requeued == [job.transaction_id]
    work(soak_services)

    assert soak_services.journal.get(job.transaction_id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]


def test_the_polling_worker_sweeps_on_the_configured_period(soak_services: Services) -> None:
    clock = soak_services.clock
    assert isinstance(clock, ManualClock)
    sweeps: list[object] = []

    def sweep() -> object:
        sweeps.append(soak_services.sweeper.sweep())
        return sweeps[-1]

    stop = threading.Event()
    worker = threading.Thread(target=soak_services.worker.run_until, args=(stop, 0.01, sweep), daemon=True)
    worker.start()
    try:
        wait_until(lambda: sweeps, 5, "the worker's first sweep")  # made before the job exists
        job = journal_job(soak_services, "TXN-SOAK02", "soak2@example.com")  # no message: only a sweep finds it
        clock.advance(31)

        # Only a later sweep can heal it: with the default period (5 minutes) this would time out.
        wait_until(
            lambda: soak_services.journal.get(job.transaction_id).status is JobStatus.SUCCEEDED,  # type: ignore[union-attr]
            5,
            "the worker's own sweep to requeue the job and the worker to provision it",
        )
    finally:
        stop.set()
        worker.join(5)
