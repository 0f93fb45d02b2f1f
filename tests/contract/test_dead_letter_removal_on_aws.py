"""Removing stale dead-letter messages on the AWS backend (SQS, DynamoDB, Cognito on moto): the
stale copy goes (received from the DLQ and deleted with its receipt handle), the work queue is
never looked at (a look would count as a delivery of each waiting job), and the trail entry in
DynamoDB keeps what the weekly audit reads."""

from __future__ import annotations

from dataclasses import replace

from tenancy.bootstrap import build
from tenancy.config import PayfastMode
from tenancy.runbook.attempts import history_of
from tenancy.runbook.evidence import Selector

from aws_support import AwsContext, moto_cognito
from helpers import pay, work


def test_remove_healed_on_sqs_takes_the_stale_copy_and_never_looks_at_the_work_queue(aws: AwsContext) -> None:
    settings = aws.settings.model_copy(update={"payfast_mode": PayfastMode.OFFLINE})
    services = replace(build(settings), identity=moto_cognito(aws))
    try:
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
    finally:
        services.close()

    assert [(decision.message.transaction_id, decision.removed) for decision in decisions] == [(healed, True)]
    assert depth == (1, 0)
    assert (entry.outcome, entry.operator, entry.finding) == ("removed", "ops", "healthy")
    assert history_of(entry).dead_lettered  # read back from DynamoDB as the audit reads it
    [message] = received["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # this test's own receive only
