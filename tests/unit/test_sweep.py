"""The sweep for stalled jobs: a job with no message to bring it to a worker gets one, once."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from tenancy.bootstrap import Services
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import JobStatus

from helpers import journal_job, work

EMAIL = "stalled@example.com"


class Later:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def stalled_job(services: Services, transaction_id: str = "TXN-STALL1") -> str:
    """A job the journal has, whose queue message was never sent (the send failed after the write)."""
    old = format_timestamp(services.clock.now() - timedelta(minutes=20))
    job = journal_job(services, transaction_id, EMAIL)
    services.journal.save(job.with_changes(created_at=old, updated_at=old))
    return transaction_id


def test_a_stalled_job_gets_a_message_and_is_then_provisioned(services: Services) -> None:
    transaction_id = stalled_job(services)
    assert services.queue.depth() == (0, 0)

    requeued = services.sweeper().sweep()
    again = services.sweeper().sweep()  # just touched: not stalled again for STALLED_AFTER
    work(services)

    assert requeued == [transaction_id]
    assert again == []
    job = services.journal.get(transaction_id)
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED
    assert services.tenants.find_by_transaction(transaction_id) is not None
    assert len(services.mailer.outbox(EMAIL)) == 1


def test_a_young_job_and_a_finished_one_are_left_alone(services: Services) -> None:
    journal_job(services, "TXN-YOUNG1", "young@example.com")
    finished = stalled_job(services, "TXN-DONE01")
    services.sweeper().sweep()
    work(services)
    assert services.journal.get(finished).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    later = dataclasses.replace(services, clock=Later(services.clock.now() + timedelta(minutes=5)))

    assert later.sweeper().sweep() == []


def test_a_retry_overdue_by_the_stall_time_is_requeued_and_one_not_yet_due_is_not(services: Services) -> None:
    now = services.clock.now()
    overdue = journal_job(services, "TXN-RETRY1", "overdue@example.com")
    due = format_timestamp(now - timedelta(minutes=16))
    services.journal.save(overdue.with_changes(status=JobStatus.RETRYING, attempts=1, next_attempt_at=due))
    waiting = journal_job(services, "TXN-RETRY2", "waiting@example.com")
    services.journal.save(waiting.with_changes(status=JobStatus.RETRYING, attempts=1,
                                               next_attempt_at=format_timestamp(now + timedelta(minutes=4)),
                                               updated_at=format_timestamp(now - timedelta(hours=1))))  # fmt: skip

    assert services.sweeper().sweep() == ["TXN-RETRY1"]
