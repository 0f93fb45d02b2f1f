"""The JobQueue contract, run with the same assertions against the embedded SqliteJobQueue and
SqsJobQueue (on moto's SQS, with the queues and RedrivePolicy `tenancy aws bootstrap` creates).

Where SQS genuinely differs (it cannot list a queue without receiving it, so a look counts as a
receive and misses messages in flight), the contract holds what both honour and the SQS-only
behaviour is tested at the end of the file.
"""

from __future__ import annotations

import json

import pytest

from tenancy.adapters.aws.resources import MAX_RECEIVE_COUNT
from tenancy.adapters.aws.sqs import SqsJobQueue
from tenancy.bootstrap import SystemClock
from tenancy.domain.model import QueueMessage
from tenancy.errors import InvalidInputError, NotFoundError
from tenancy.ports import JobQueue

from aws_support import AwsContext, Backend
from helpers import ManualClock

# Whole seconds (SQS counts no less), passed by moving the backend's clock on, never slept through:
# long enough that a slow run cannot pass them in real time on moto, where SQS's own time flows too.
VISIBLE_AGAIN_AFTER = 60


@pytest.fixture
def queue(backend: Backend) -> JobQueue:
    # Bootstrap gives the embedded queue the limit the deployed RedrivePolicy has (MAX_RECEIVE_COUNT).
    return backend.services.queue


def _by_transaction(messages: list[QueueMessage]) -> dict[str, QueueMessage]:
    return {message.transaction_id: message for message in messages}


# --- sending and receiving ------------------------------------------------------------------


def test_send_receive_delete(queue: JobQueue) -> None:
    assert queue.depth() == (0, 0)
    queue.send("TXN-1")
    assert queue.depth() == (1, 0)

    [message] = queue.receive(10, visibility_timeout=30)

    assert message.transaction_id == "TXN-1"
    assert message.receive_count == 1
    assert message.receipt
    assert message.sent_at.endswith("Z")
    assert queue.depth() == (1, 0)  # in flight: still in the queue, just hidden
    queue.delete(message.receipt)
    assert queue.depth() == (0, 0)
    assert queue.receive(10, visibility_timeout=30) == []


def test_receive_returns_at_most_max_messages_each_once(queue: JobQueue) -> None:
    sent = {f"TXN-{n}" for n in range(13)}
    for transaction_id in sorted(sent):
        queue.send(transaction_id)

    first = queue.receive(2, visibility_timeout=30)
    rest = queue.receive(12, visibility_timeout=30)  # more than SQS hands out in one call

    assert len(first) == 2
    assert len(rest) == 11
    assert {message.transaction_id for message in first + rest} == sent
    assert queue.receive(10, visibility_timeout=30) == []


def test_delayed_hidden_and_retried_messages_come_back_when_their_time_passes(
    queue: JobQueue, clock: ManualClock
) -> None:
    queue.send("TXN-DELAYED", delay_seconds=VISIBLE_AGAIN_AFTER)
    queue.send("TXN-HIDDEN")
    [hidden] = queue.receive(10, visibility_timeout=VISIBLE_AGAIN_AFTER)
    queue.send("TXN-RETRIED")
    [retried] = queue.receive(10, visibility_timeout=300)
    queue.retry_later(retried.receipt, VISIBLE_AGAIN_AFTER)

    assert (hidden.transaction_id, retried.transaction_id) == ("TXN-HIDDEN", "TXN-RETRIED")
    assert queue.receive(10, visibility_timeout=60) == []
    assert queue.depth() == (3, 0)  # delayed and in-flight messages are counted

    clock.advance(VISIBLE_AGAIN_AFTER + 1)
    again = _by_transaction(queue.receive(10, visibility_timeout=60))

    assert {name: message.receive_count for name, message in again.items()} == {
        "TXN-DELAYED": 1,
        "TXN-HIDDEN": 2,
        "TXN-RETRIED": 2,
    }
    assert again["TXN-HIDDEN"].receipt != hidden.receipt


def test_retry_later_with_zero_delay_makes_it_visible_at_once(queue: JobQueue) -> None:
    queue.send("TXN-1")
    [message] = queue.receive(1, visibility_timeout=300)

    queue.retry_later(message.receipt, 0)

    assert [m.transaction_id for m in queue.receive(1, visibility_timeout=300)] == ["TXN-1"]


def test_receive_count_increments_on_every_delivery(queue: JobQueue) -> None:
    queue.send("TXN-1")
    counts = []
    for _ in range(3):
        [message] = queue.receive(1, visibility_timeout=300)
        counts.append(message.receive_count)
        queue.retry_later(message.receipt, 0)  # a worker giving it back
    assert counts == [1, 2, 3]


def test_a_receipt_whose_message_is_gone_does_nothing(queue: JobQueue) -> None:
    queue.send("TXN-1")
    [message] = queue.receive(1, visibility_timeout=300)
    queue.delete(message.receipt)

    queue.delete(message.receipt)
    queue.retry_later(message.receipt, 0)
    queue.dead_letter(message.receipt, "a late worker gave up")
    for nonsense in ("not-a-receipt", ""):
        queue.delete(nonsense)
        queue.retry_later(nonsense, 0)
        queue.dead_letter(nonsense, "nonsense")

    assert queue.depth() == (0, 0)
    assert queue.messages() == []


# --- the dead-letter queue ------------------------------------------------------------------


def test_dead_letter_moves_the_message_to_the_dlq_with_its_last_error(queue: JobQueue) -> None:
    queue.send("TXN-1")
    queue.send("TXN-2")
    received = _by_transaction(queue.receive(10, visibility_timeout=300))
    queue.retry_later(received["TXN-2"].receipt, 0)

    queue.dead_letter(received["TXN-1"].receipt, "permanent: unknown plan")

    assert queue.depth() == (1, 1)
    [parked] = queue.messages(dead_lettered=True)
    assert (parked.transaction_id, parked.queue, parked.dead_lettered) == ("TXN-1", "provisioning-dlq", True)
    assert parked.last_error == "permanent: unknown plan"
    assert parked.receive_count == 1  # how often it was delivered before it was parked
    assert parked.sent_at == received["TXN-1"].sent_at
    [waiting] = queue.messages(dead_lettered=False)
    assert (waiting.transaction_id, waiting.queue, waiting.last_error) == ("TXN-2", "provisioning", None)
    # Only the other message is ever delivered again ...
    assert [m.transaction_id for m in queue.receive(10, visibility_timeout=300)] == ["TXN-2"]
    # ... and the parked one's old receipt no longer touches it.
    queue.delete(received["TXN-1"].receipt)
    assert queue.depth() == (1, 1)


def test_send_dead_letter_parks_a_message_straight_in_the_dlq(queue: JobQueue) -> None:
    queue.send_dead_letter("TXN-9", "permanent: manual run failed")

    assert queue.depth() == (0, 1)
    [parked] = queue.messages()
    assert (parked.transaction_id, parked.dead_lettered, parked.receive_count) == ("TXN-9", True, 0)
    assert parked.last_error == "permanent: manual run failed"
    assert queue.receive(10, visibility_timeout=300) == []  # the DLQ is never worked on


def test_a_message_delivered_more_than_max_receive_count_times_goes_to_the_dlq(queue: JobQueue) -> None:
    # RB-001 4.1: "if provisioning never triggered, check SQS DLQ". Workers that keep dying
    # holding a message (here: giving it back) leave it to the RedrivePolicy.
    queue.send("TXN-1")
    for expected_count in range(1, MAX_RECEIVE_COUNT + 1):
        [message] = queue.receive(1, visibility_timeout=300)
        assert message.receive_count == expected_count
        queue.retry_later(message.receipt, 0)

    assert queue.receive(1, visibility_timeout=300) == []

    assert queue.depth() == (0, 1)
    [parked] = queue.messages(dead_lettered=True)
    assert parked.transaction_id == "TXN-1"
    assert parked.receive_count == MAX_RECEIVE_COUNT
    assert parked.last_error == "exceeded the maximum receive count"


def test_redrive_puts_a_dead_lettered_message_back_with_its_receive_count_reset(queue: JobQueue) -> None:
    queue.send("TXN-1")
    [message] = queue.receive(1, visibility_timeout=300)
    queue.dead_letter(message.receipt, "transient: smtp down (after 5 attempts)")
    [parked] = queue.messages(dead_lettered=True)

    assert queue.redrive(parked.message_id) is True

    assert queue.depth() == (1, 0)
    assert queue.messages(dead_lettered=True) == []
    [again] = queue.receive(1, visibility_timeout=300)
    assert (again.transaction_id, again.receive_count) == ("TXN-1", 1)
    assert again.sent_at == message.sent_at  # still the job's first enqueueing
    assert queue.redrive(parked.message_id) is False  # no longer in the DLQ
    assert queue.redrive("no-such-message") is False


def test_remove_dead_letter_deletes_one_parked_message_for_good(queue: JobQueue) -> None:
    # A job that healed after it was parked leaves its copy in the DLQ, keeping the alarm on.
    queue.send("TXN-1")
    queue.send("TXN-2")
    queue.send_dead_letter("TXN-1", "permanent: refused")
    queue.send_dead_letter("TXN-3", "transient: smtp down (after 5 attempts)")
    parked = {message.transaction_id: message for message in queue.messages(dead_lettered=True)}
    waiting = queue.messages(dead_lettered=False)

    assert queue.remove_dead_letter(parked["TXN-1"].message_id) is True

    assert [(m.transaction_id, m.last_error) for m in queue.messages(dead_lettered=True)] == [
        ("TXN-3", "transient: smtp down (after 5 attempts)")
    ]
    assert queue.depth() == (2, 1)
    assert queue.remove_dead_letter(parked["TXN-1"].message_id) is False  # gone already
    assert queue.remove_dead_letter("no-such-message") is False
    for message in waiting:  # a work-queue message is never removed, whatever its id
        assert queue.remove_dead_letter(message.message_id) is False
    assert queue.depth() == (2, 1)
    assert {m.transaction_id for m in queue.receive(10, visibility_timeout=300)} == {"TXN-1", "TXN-2"}
    assert queue.redrive(parked["TXN-1"].message_id) is False


# --- looking and purging --------------------------------------------------------------------


def test_messages_lists_both_queues_oldest_first_without_taking_them(queue: JobQueue) -> None:
    for transaction_id in ("TXN-A", "TXN-B", "TXN-C"):
        queue.send(transaction_id)
    queue.send_dead_letter("TXN-B", "permanent: refused")

    everything = queue.messages()
    only_b = queue.messages(transaction_id="TXN-B")
    parked_b = queue.messages(transaction_id="TXN-B", dead_lettered=True)
    waiting = queue.messages(dead_lettered=False)

    assert [(m.transaction_id, m.dead_lettered) for m in everything] == [
        ("TXN-A", False),
        ("TXN-B", False),
        ("TXN-C", False),
        ("TXN-B", True),
    ]
    assert [(m.transaction_id, m.dead_lettered) for m in only_b] == [("TXN-B", False), ("TXN-B", True)]
    assert [(m.transaction_id, m.last_error) for m in parked_b] == [("TXN-B", "permanent: refused")]
    assert [m.transaction_id for m in waiting] == ["TXN-A", "TXN-B", "TXN-C"]
    assert all(m.receive_count == 0 and m.visible_at.endswith("Z") for m in everything)
    assert len({m.message_id for m in everything}) == 4
    assert queue.messages(transaction_id="TXN-NONE") == []
    # Looking took nothing: every message is still there to be worked on.
    assert queue.depth() == (3, 1)
    assert {m.transaction_id for m in queue.receive(10, visibility_timeout=300)} == {"TXN-A", "TXN-B", "TXN-C"}


def test_purge_removes_every_message_for_the_transaction_from_both_queues(queue: JobQueue) -> None:
    queue.send("TXN-1")
    queue.send("TXN-1")
    queue.send("TXN-2")
    queue.send_dead_letter("TXN-1", "permanent: refused")

    assert queue.purge("TXN-1") == 3

    assert queue.depth() == (1, 0)
    assert [m.transaction_id for m in queue.messages()] == ["TXN-2"]
    assert queue.purge("TXN-1") == 0


# --- SQS only: what follows from SQS having no way to look without receiving -----------------


@pytest.fixture
def sqs_queue(aws_backend: Backend) -> JobQueue:
    return aws_backend.services.queue


def test_sqs_a_look_counts_as_a_receive(sqs_queue: JobQueue) -> None:
    sqs_queue.send("TXN-1")

    [listed] = sqs_queue.messages()
    [message] = sqs_queue.receive(1, visibility_timeout=300)

    assert listed.receive_count == 0  # reported as it was before the look ...
    assert message.receive_count == 2  # ... but SQS counted the look


def test_sqs_a_message_in_flight_is_counted_but_not_listed_or_purged(sqs_queue: JobQueue) -> None:
    sqs_queue.send("TXN-1")
    [message] = sqs_queue.receive(1, visibility_timeout=300)

    assert sqs_queue.depth() == (1, 0)
    assert sqs_queue.messages() == []
    assert sqs_queue.purge("TXN-1") == 0
    sqs_queue.delete(message.receipt)  # the worker holding it still finishes it
    assert sqs_queue.depth() == (0, 0)


def test_sqs_a_delay_beyond_15_minutes_is_capped_not_refused(sqs_queue: JobQueue) -> None:
    sqs_queue.send("TXN-1", delay_seconds=3600)

    assert sqs_queue.depth() == (1, 0)
    assert sqs_queue.receive(1, visibility_timeout=30) == []


def test_sqs_a_bare_receipt_handle_from_a_lambda_record_works_for_retry_and_delete(
    aws: AwsContext, sqs_queue: JobQueue
) -> None:
    sqs, queue = aws.session.client("sqs"), sqs_queue
    queue.send("TXN-1")
    record = sqs.receive_message(QueueUrl=aws.resources.queue_url, VisibilityTimeout=300)["Messages"][0]

    queue.retry_later(record["ReceiptHandle"], 0)
    [message] = queue.receive(1, visibility_timeout=300)
    with pytest.raises(InvalidInputError, match="receipt from receive"):
        # A bare handle does not say what to copy to the DLQ (the Lambda uses send_dead_letter).
        queue.dead_letter(record["ReceiptHandle"], "permanent")
    queue.delete(record["ReceiptHandle"])

    assert message.receive_count == 2
    assert queue.depth() == (0, 0)


def test_sqs_a_message_that_is_not_a_provisioning_job_is_parked_at_once(aws: AwsContext, sqs_queue: JobQueue) -> None:
    sqs, queue = aws.session.client("sqs"), sqs_queue
    sqs.send_message(QueueUrl=aws.resources.queue_url, MessageBody="hello")
    queue.send("TXN-1")

    received = queue.receive(10, visibility_timeout=300)

    assert [m.transaction_id for m in received] == ["TXN-1"]
    [parked] = queue.messages(dead_lettered=True)
    assert (parked.transaction_id, parked.last_error) == ("", "not a provisioning message")
    raw = sqs.receive_message(QueueUrl=aws.resources.dlq_url)["Messages"][0]
    assert raw["Body"] == "hello"


def test_sqs_messages_are_json_with_the_transaction_id(aws: AwsContext, sqs_queue: JobQueue) -> None:
    sqs_queue.send("TXN-123456")

    raw = aws.session.client("sqs").receive_message(QueueUrl=aws.resources.queue_url)["Messages"][0]

    assert json.loads(raw["Body"]) == {"transaction_id": "TXN-123456"}


def test_sqs_a_missing_queue_is_a_project_error(aws: AwsContext) -> None:
    missing = aws.resources.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    queue = SqsJobQueue(aws.session.client("sqs"), missing, aws.resources.dlq_url, clock=SystemClock())

    with pytest.raises(NotFoundError, match="sending a provisioning message"):
        queue.send("TXN-1")
