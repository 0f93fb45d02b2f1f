"""The stalled-job sweep on SQS, where it cannot look for a job's message (a look is a receive):
behind a backlog that holds a message for every waiting job, it sends no second ones; once the
queue holds fewer messages than jobs waiting, the stalled jobs get one and are provisioned."""

from __future__ import annotations

from tenancy.domain.model import JobStatus

from aws_support import Backend
from helpers import journal_job, work


def test_a_backlog_gets_no_second_messages_and_a_lost_one_is_sent_once_the_queue_holds_fewer(
    aws_backend: Backend,
) -> None:
    services, clock = aws_backend.services, aws_backend.clock
    waiting = [journal_job(services, f"TXN-BACKLOG{n}", f"backlog{n}@example.com").transaction_id for n in range(4)]
    for transaction_id in waiting:
        services.queue.send(transaction_id)
    clock.advance(hours=1)  # all of them stalled, behind a slow queue

    assert services.sweeper.sweep().requeued == []
    assert services.queue.depth() == (4, 0)

    lost = journal_job(services, "TXN-BACKLOG-LOST", "lost@example.com").transaction_id  # its send failed
    clock.advance(hours=1)

    requeued = services.sweeper.sweep().requeued

    assert sorted(requeued) == sorted([*waiting, lost])  # which one lacks a message, SQS cannot say
    assert services.queue.depth() == (9, 0)
    work(services, rounds=20)  # a message a round; the second ones only find their job done
    for transaction_id in [*waiting, lost]:
        job = services.journal.get(transaction_id)
        assert job is not None
        assert job.status is JobStatus.SUCCEEDED
    assert services.queue.depth() == (0, 0)
