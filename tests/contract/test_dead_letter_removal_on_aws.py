"""Removing stale dead-letter messages on the AWS backend (SQS, DynamoDB, Cognito on moto): the
stale copy goes (received from the DLQ and deleted with its receipt handle), the work queue is
never looked at (a look would count as a delivery of each waiting job), and the trail entry in
DynamoDB keeps what the weekly audit reads."""

from __future__ import annotations

from tenancy.runbook.attempts import history_of
from tenancy.runbook.evidence import Selector

from aws_support import Backend
from helpers import pay, work


def test_remove_healed_on_sqs_takes_the_stale_copy_and_never_looks_at_the_work_queue(aws_backend: Backend) -> None:
    services, aws = aws_backend.services, aws_backend.moto
    healed = pay(services, email="healed@example.com")
    work(services)
    assert services.runbook.diagnose(Selector(transaction_id=healed)).healthy
    services.queue.send_dead_letter(healed, "stalled: its run stopped 5 times without a word (after 5 attempts)")
    pay(services, email="waiting@example.com")  # queued; no worker runs

    decisions = services.runbook.remove_healed_dead_letters(operator="ops")
    depth = services.queue.depth()
    [entry] = services.trail.entries(transaction_id=healed)
    received = aws.session.client("sqs").receive_message(
        QueueUrl=aws.resources.queue_url, AttributeNames=["ApproximateReceiveCount"]
    )

    assert [(decision.message.transaction_id, decision.removed) for decision in decisions] == [(healed, True)]
    assert depth == (1, 0)
    assert (entry.outcome, entry.operator, entry.finding) == ("removed", "ops", "healthy")
    assert history_of(entry).dead_lettered  # read back from DynamoDB as the audit reads it
    [message] = received["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # this test's own receive only


def test_the_sweep_clears_a_stale_dead_letter_and_keeps_one_that_still_needs_someone(
    aws_backend: Backend,
) -> None:
    # SQS parks a message after too many receives even while its job goes on; once the job has
    # succeeded from another copy, the sweep takes the stale copy away (the DLQ alarm then speaks
    # only of purchases that need someone), and keeps the one whose purchase is still broken.
    services = aws_backend.services
    healed = pay(services, email="healed@example.com")
    work(services)
    broken = pay(services, email="broken@example.com")  # never provisioned: not healthy
    services.queue.send_dead_letter(healed, "parked by SQS after 10 receives")
    services.queue.send_dead_letter(broken, "parked by SQS after 10 receives")

    swept = services.sweep()

    assert swept.cleared == [healed]
    assert [message.transaction_id for message in services.queue.messages(dead_lettered=True)] == [broken]
    [entry] = services.trail.entries(transaction_id=healed)
    assert (entry.outcome, entry.operator) == ("removed", "stalled-job sweep")
