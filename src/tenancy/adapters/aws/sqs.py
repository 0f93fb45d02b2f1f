"""The JobQueue port on Amazon SQS: the `provisioning` queue, whose RedrivePolicy parks a message in
`provisioning-dlq` after MAX_RECEIVE_COUNT deliveries, and that dead-letter queue.

Where SQS cannot do what the embedded queue does (list or remove messages without receiving them,
fetch a message by its receipt), the class says so on the method.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tenancy.adapters.aws._errors import aws_errors, error_code
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import QueuedMessage, QueueMessage
from tenancy.errors import InvalidInputError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import MessageSystemAttributeNameType, QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
    )

    from tenancy.ports import Clock

__all__ = ["DEAD_LETTER_QUEUE", "WORK_QUEUE", "SqsJobQueue"]

# The logical names operators see, the same as the embedded queue's (QueuedMessage.dead_lettered
# reads the `-dlq` suffix), whatever the deployed queues are called.
WORK_QUEUE = "provisioning"
DEAD_LETTER_QUEUE = "provisioning-dlq"

MAX_DELAY_SECONDS = 900  # SQS's DelaySeconds limit
MAX_VISIBILITY_SECONDS = 43_200  # SQS's 12-hour visibility limit
_BATCH = 10  # SQS's MaxNumberOfMessages and batch-entry limit
# How long a look at a queue keeps the messages it has seen hidden, so the next receive of the
# same look returns others: longer than a look over _PEEK_LIMIT messages takes.
_PEEK_HOLD_SECONDS = 30
_PEEK_LIMIT = 1000
# How long dead_letter holds a message while it copies it to the DLQ, so no other worker gets
# it between the copy and the delete.
_MOVE_HOLD_SECONDS = 30
_MAX_ERROR_CHARS = 2000  # as the embedded queue keeps
_EVERY_MESSAGE: tuple[QueueAttributeNameType, ...] = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)

# Message attributes that carry what a move to another queue would otherwise lose.
_LAST_ERROR = "last_error"
_RECEIVE_COUNT = "receive_count"  # deliveries before it was dead-lettered
_FIRST_SENT = "first_sent_timestamp"  # ms since the epoch: when the job was first enqueued
_REDRIVE_POLICY_ERROR = "exceeded the maximum receive count"

# A receipt whose message is gone (deleted, moved to the DLQ) or that SQS no longer honours.
_GONE_CODES = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"})


@dataclass(frozen=True, slots=True)
class _Receipt:
    """What QueueMessage.receipt carries. SQS cannot fetch a message by its receipt handle, and
    dead_letter must re-send the body, so the receipt holds the body's facts beside the handle.

    A bare SQS receipt handle (a Lambda event record's) also works for `delete` and `retry_later`.
    """

    handle: str
    transaction_id: str
    receive_count: int
    first_sent_ms: int

    def encode(self) -> str:
        return json.dumps([self.handle, self.transaction_id, self.receive_count, self.first_sent_ms])

    @staticmethod
    def decode(receipt: str) -> _Receipt | None:
        """The receipt from `receive`, or None for anything else (a bare receipt handle)."""
        try:
            handle, transaction_id, receive_count, first_sent_ms = json.loads(receipt)
        except (ValueError, TypeError):
            return None
        if not (isinstance(handle, str) and isinstance(transaction_id, str)):
            return None
        if not (isinstance(receive_count, int) and isinstance(first_sent_ms, int)):
            return None
        return _Receipt(handle, transaction_id, receive_count, first_sent_ms)


def _handle(receipt: str) -> str | None:
    """The SQS receipt handle in a receipt from `receive` or a bare one; None for an empty one."""
    decoded = _Receipt.decode(receipt)
    handle = decoded.handle if decoded is not None else receipt.strip()
    return handle or None


@dataclass(frozen=True, slots=True)
class _Seen:
    """A message received during a look at a queue, still held by that look."""

    handle: str
    message: QueuedMessage
    first_sent_ms: int


class SqsJobQueue:
    """JobQueue on SQS. Messages are `{"transaction_id": ...}`.

    `receive` short-polls by default (WaitTimeSeconds 0): the worker paces its own polls and
    must notice its stop signal at once, and the port's receive answers "what is visible now".
    Short polling samples only some SQS hosts, so an empty answer does not prove an empty
    queue; the next poll finds the message. A deployment that polls idle queues a lot can pass
    `receive_wait_seconds` (up to 20) for long polling instead.

    SQS keeps its own time for delays and visibility timeouts; `clock` only dates a look (the
    `visible_at` of what `messages` lists).
    """

    listing_counts_as_delivery = True  # SQS cannot list a queue: `messages` receives (see there)

    def __init__(
        self, client: SQSClient, queue_url: str, dlq_url: str, *, clock: Clock, receive_wait_seconds: int = 0
    ) -> None:
        self._client = client
        self._clock = clock
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._receive_wait_seconds = min(max(receive_wait_seconds, 0), 20)

    def send(self, transaction_id: str, delay_seconds: float = 0) -> None:
        """As the port says, except that SQS delays a message by at most 15 minutes: a longer
        delay is cut to 900 s, and the message arrives early (the worker's journal still holds
        `next_attempt_at`). Fractions of a second round up."""
        with aws_errors("sending a provisioning message"):
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=_body(transaction_id),
                DelaySeconds=_whole_seconds(delay_seconds, MAX_DELAY_SECONDS),
            )

    def receive(self, max_messages: int, visibility_timeout: float) -> list[QueueMessage]:
        """As the port says. SQS hands out at most 10 per call, so this asks again until it has
        `max_messages` or a call returns none. The timeout rounds up to whole seconds, at most 12 h."""
        received: list[QueueMessage] = []
        visibility = _whole_seconds(visibility_timeout, MAX_VISIBILITY_SECONDS)
        while len(received) < max_messages:
            batch = self._receive_batch(
                self._queue_url, min(max_messages - len(received), _BATCH), visibility, self._receive_wait_seconds
            )
            if not batch:
                break
            for message in batch:
                transaction_id = _transaction_id(message)
                receive_count = _system_int(message, "ApproximateReceiveCount")
                first_sent_ms = _first_sent_ms(message)
                if transaction_id is None:
                    # Not one of ours (a hand-sent message): park it rather than hand it out forever.
                    self._park_foreign(message)
                    continue
                receipt = _Receipt(message["ReceiptHandle"], transaction_id, receive_count, first_sent_ms)
                received.append(
                    QueueMessage(receipt.encode(), transaction_id, receive_count, _format_ms(first_sent_ms))
                )
        return received

    def delete(self, receipt: str) -> None:
        """As the port says. SQS promises only that the latest receipt deletes; an older one
        (the message redelivered since) may still delete it."""
        handle = _handle(receipt)
        if handle is not None:
            self._delete(self._queue_url, handle)

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        """As the port says, through ChangeMessageVisibility: at most 12 h, counted by SQS from
        the receive (the worker's backoff stays far below). A gone receipt does nothing."""
        handle = _handle(receipt)
        if handle is not None:
            self._change_visibility(handle, _whole_seconds(delay_seconds, MAX_VISIBILITY_SECONDS))

    def dead_letter(self, receipt: str, error: str) -> None:
        """Sends a copy to the DLQ with `error` (and the receive count and first send time, which
        the copy would otherwise lose) as message attributes, then deletes the original. Copy
        first: a failure in between leaves a duplicate, never a lost job. A gone receipt does
        nothing. Needs a receipt from `receive` (a bare handle does not say what to copy)."""
        handle = _handle(receipt)
        # Extending the visibility both tells whether the receipt still names a message in flight
        # and keeps the message from another worker until it is deleted.
        if handle is None or not self._change_visibility(handle, _MOVE_HOLD_SECONDS):
            return
        decoded = _Receipt.decode(receipt)
        if decoded is None:
            raise InvalidInputError("dead_letter needs a receipt from receive(), not a bare SQS receipt handle")
        attributes = {
            _LAST_ERROR: _string(error[:_MAX_ERROR_CHARS] or "failed"),
            _RECEIVE_COUNT: _number(decoded.receive_count),
            _FIRST_SENT: _number(decoded.first_sent_ms),
        }
        with aws_errors("dead-lettering a provisioning message"):
            self._client.send_message(
                QueueUrl=self._dlq_url, MessageBody=_body(decoded.transaction_id), MessageAttributes=attributes
            )
        self._delete(self._queue_url, decoded.handle)

    def send_dead_letter(self, transaction_id: str, error: str) -> None:
        with aws_errors("dead-lettering a provisioning message"):
            self._client.send_message(
                QueueUrl=self._dlq_url,
                MessageBody=_body(transaction_id),
                MessageAttributes={_LAST_ERROR: _string(error[:_MAX_ERROR_CHARS] or "failed")},
            )

    def depth(self) -> tuple[int, int]:
        """Visible, in-flight and delayed messages of each queue (SQS's approximate counts)."""
        return self._count(self._queue_url), self._count(self._dlq_url)

    def messages(self, *, transaction_id: str | None = None, dead_lettered: bool | None = None) -> list[QueuedMessage]:
        """As the port says, with SQS's limits: SQS cannot list a queue, so this receives every
        visible message (up to 1000 per queue), notes it and makes it visible again at once.

        - Messages in flight (held by a worker) or delayed are not seen: for the work queue this
          lists what waits, not what is being worked on. `depth` counts them all.
        - Each look counts as a receive: ApproximateReceiveCount rises by one, which brings a
          work-queue message one delivery nearer the RedrivePolicy's limit. `receive_count`
          reports the count before the look; a message dead-lettered by `dead_letter` reports
          its deliveries in the work queue, as the embedded queue does.
        - A dead-lettered message without a `last_error` attribute was moved by the RedrivePolicy
          (the only way SQS fills a DLQ), so it reports the embedded queue's wording for that.
        """
        wanted = [url for url, dlq in ((self._queue_url, False), (self._dlq_url, True)) if dead_lettered in (None, dlq)]
        found: list[_Seen] = []
        for url in wanted:
            with self._look(url) as seen:
                found.extend(seen)
        # Stable: messages sent in the same millisecond keep the order SQS handed them out in.
        found.sort(key=lambda item: item.first_sent_ms)
        return [
            item.message for item in found if transaction_id is None or item.message.transaction_id == transaction_id
        ]

    def redrive(self, message_id: str) -> bool:
        """Finds the message in the DLQ by its MessageId, sends a copy (with its first send time
        and last error, without its receive count) to the work queue and deletes it from the
        DLQ. The copy has a new MessageId. False if the message is not visible in the DLQ.

        StartMessageMoveTask would move the whole DLQ at once, but not say which jobs moved, and
        the runbook updates each job's journal entry as it redrives it; so one by one it is."""
        with self._look(self._dlq_url) as seen:
            target = next((item for item in seen if item.message.message_id == message_id), None)
            if target is None:
                return False
            attributes = {_FIRST_SENT: _number(target.first_sent_ms)}
            if target.message.last_error is not None:
                # The embedded queue keeps it too: the work queue shows why the job was parked.
                attributes[_LAST_ERROR] = _string(target.message.last_error)
            with aws_errors("redriving a dead-lettered message"):
                self._client.send_message(
                    QueueUrl=self._queue_url,
                    MessageBody=_body(target.message.transaction_id),
                    MessageAttributes=attributes,
                )
            self._delete(self._dlq_url, target.handle)
            seen.remove(target)
        return True

    def remove_dead_letter(self, message_id: str) -> bool:
        """As the port says. SQS deletes only by receipt handle, so this looks at the DLQ (a
        receive), deletes the message with the MessageId from that look with its handle, and lets
        the others go at once. False if the message is not visible in the DLQ (gone, or held by
        another look at that moment)."""
        with self._look(self._dlq_url) as seen:
            target = next((item for item in seen if item.message.message_id == message_id), None)
            if target is None:
                return False
            self._delete(self._dlq_url, target.handle)
            seen.remove(target)
        return True

    def purge(self, transaction_id: str) -> int:
        """As the port says, but only for messages SQS lets it see (see `messages`): one in
        flight or delayed stays."""
        purged = 0
        for url in (self._queue_url, self._dlq_url):
            with self._look(url) as seen:
                doomed = [item for item in seen if item.message.transaction_id == transaction_id]
                for item in doomed:
                    self._delete(url, item.handle)
                    seen.remove(item)
                purged += len(doomed)
        return purged

    # --- SQS calls ----------------------------------------------------------------------------

    def _receive_batch(self, url: str, count: int, visibility: int, wait_seconds: int) -> list[MessageTypeDef]:
        with aws_errors("receiving provisioning messages"):
            response = self._client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=visibility,
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=["All"],
            )
        return list(response.get("Messages", []))

    def _delete(self, url: str, handle: str) -> None:
        with aws_errors("deleting a provisioning message"):
            try:
                self._client.delete_message(QueueUrl=url, ReceiptHandle=handle)
            except ClientError as error:
                if not _receipt_gone(error):
                    raise

    def _change_visibility(self, handle: str, seconds: int) -> bool:
        """False if the receipt no longer names a message in flight."""
        with aws_errors("changing a message's visibility"):
            try:
                self._client.change_message_visibility(
                    QueueUrl=self._queue_url, ReceiptHandle=handle, VisibilityTimeout=seconds
                )
            except ClientError as error:
                if not _receipt_gone(error):
                    raise
                return False
        return True

    def _count(self, url: str, names: Sequence[QueueAttributeNameType] = _EVERY_MESSAGE) -> int:
        with aws_errors("reading a queue's depth"):
            attributes = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(name, "0")) for name in names)

    def _park_foreign(self, message: MessageTypeDef) -> None:
        with aws_errors("dead-lettering a foreign message"):
            self._client.send_message(
                QueueUrl=self._dlq_url,
                MessageBody=message.get("Body", ""),
                MessageAttributes={_LAST_ERROR: _string("not a provisioning message")},
            )
        self._delete(self._queue_url, message["ReceiptHandle"])

    @contextmanager
    def _look(self, url: str) -> Iterator[list[_Seen]]:
        """Every visible message of the queue, held for the look; whatever is still in the list
        when the look ends is made visible again at once."""
        seen: list[_Seen] = []
        try:
            self._receive_all(url, seen)
            yield seen
        finally:
            self._release(url, [item.handle for item in seen])

    def _receive_all(self, url: str, seen: list[_Seen]) -> None:
        """Fills `seen` as it goes, so a failure half-way still releases what it holds."""
        dead_lettered = url == self._dlq_url
        expected = self._count(url, ["ApproximateNumberOfMessages"])
        looked_at = format_timestamp(self._clock.now())
        long_polled = False
        while len(seen) < _PEEK_LIMIT:
            batch = self._receive_batch(url, _BATCH, _PEEK_HOLD_SECONDS, 0)
            if not batch:
                # A short poll samples only some SQS hosts. When the count says more are there,
                # one long poll (which asks every host) settles it; once, to keep a look short.
                if long_polled or len(seen) >= expected:
                    break
                long_polled = True
                batch = self._receive_batch(url, _BATCH, _PEEK_HOLD_SECONDS, 1)
                if not batch:
                    break
            seen.extend(self._seen(message, dead_lettered, looked_at) for message in batch)
        seen.sort(key=lambda item: item.first_sent_ms)

    @staticmethod
    def _seen(message: MessageTypeDef, dead_lettered: bool, looked_at: str) -> _Seen:
        # This look was one more receive; report the count from before it.
        receive_count = max(_system_int(message, "ApproximateReceiveCount") - 1, 0)
        carried_count = _attribute(message, _RECEIVE_COUNT)
        if dead_lettered and carried_count is not None and carried_count.isdigit():
            receive_count = int(carried_count)
        last_error = _attribute(message, _LAST_ERROR)
        if dead_lettered and last_error is None:
            last_error = _REDRIVE_POLICY_ERROR
        first_sent_ms = _first_sent_ms(message)
        return _Seen(
            handle=message["ReceiptHandle"],
            message=QueuedMessage(
                message_id=message["MessageId"],
                queue=DEAD_LETTER_QUEUE if dead_lettered else WORK_QUEUE,
                transaction_id=_transaction_id(message) or "",
                receive_count=receive_count,
                sent_at=_format_ms(first_sent_ms),
                visible_at=looked_at,
                last_error=last_error,
            ),
            first_sent_ms=first_sent_ms,
        )

    def _release(self, url: str, handles: Sequence[str]) -> None:
        for start in range(0, len(handles), _BATCH):
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for index, handle in enumerate(handles[start : start + _BATCH])
            ]
            # A failed entry is harmless: that message reappears when the look's hold ends.
            with aws_errors("returning looked-at messages"):
                self._client.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def _receipt_gone(error: ClientError) -> bool:
    code = error_code(error)
    if code in _GONE_CODES:
        return True
    # SQS's answer for a deleted message's receipt: "Value ... for parameter ReceiptHandle is invalid.
    # Reason: Message does not exist or is not available for visibility timeout change."
    message = str(error.response.get("Error", {}).get("Message", ""))
    return code in ("InvalidParameterValue", "AWS.SimpleQueueService.InvalidParameterValue") and (
        "ReceiptHandle" in message
    )


def _body(transaction_id: str) -> str:
    return json.dumps({"transaction_id": transaction_id})


def _transaction_id(message: MessageTypeDef) -> str | None:
    try:
        body: Any = json.loads(message.get("Body", ""))
    except ValueError:
        return None
    transaction_id = body.get("transaction_id") if isinstance(body, dict) else None
    return transaction_id if isinstance(transaction_id, str) and transaction_id else None


def _system_int(message: MessageTypeDef, name: MessageSystemAttributeNameType) -> int:
    value = (message.get("Attributes") or {}).get(name, "")
    return int(value) if value.isdigit() else 0


def _attribute(message: MessageTypeDef, name: str) -> str | None:
    value = (message.get("MessageAttributes") or {}).get(name)
    return value.get("StringValue") if value is not None else None


def _first_sent_ms(message: MessageTypeDef) -> int:
    carried = _attribute(message, _FIRST_SENT)
    if carried is not None and carried.isdigit():
        return int(carried)
    return _system_int(message, "SentTimestamp")


def _format_ms(milliseconds: int) -> str:
    return format_timestamp(datetime.fromtimestamp(milliseconds / 1000, UTC))


def _whole_seconds(seconds: float, limit: int) -> int:
    """SQS takes whole seconds: round up, so a message never shows before its time."""
    if math.isnan(seconds) or seconds <= 0:
        return 0
    return limit if math.isinf(seconds) else min(math.ceil(seconds), limit)


def _string(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


def _number(value: int) -> MessageAttributeValueTypeDef:
    return {"DataType": "Number", "StringValue": str(value)}
