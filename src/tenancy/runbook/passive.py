"""A queue for views shown again and again (the operations console). On SQS, listing the work
queue receives its messages, and every look brings each waiting job one delivery nearer the
dead-letter queue. Through this wrapper such a view sees only the dead letters, and diagnose
judges the rest from the journal (its time-based `in_progress`); everything else, the repairs
and redrives included, goes to the real queue."""

from __future__ import annotations

from tenancy.domain.model import QueuedMessage, QueueMessage
from tenancy.ports import JobQueue

__all__ = ["DeadLettersOnly"]


class DeadLettersOnly:
    listing_counts_as_delivery = False

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue

    def messages(self, *, transaction_id: str | None = None, dead_lettered: bool | None = None) -> list[QueuedMessage]:
        if dead_lettered is False:
            return []
        return self._queue.messages(transaction_id=transaction_id, dead_lettered=True)

    def send(self, transaction_id: str, delay_seconds: float = 0) -> None:
        self._queue.send(transaction_id, delay_seconds)

    def receive(self, max_messages: int, visibility_timeout: float) -> list[QueueMessage]:
        return self._queue.receive(max_messages, visibility_timeout)

    def delete(self, receipt: str) -> None:
        self._queue.delete(receipt)

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        self._queue.retry_later(receipt, delay_seconds)

    def dead_letter(self, receipt: str, error: str) -> None:
        self._queue.dead_letter(receipt, error)

    def send_dead_letter(self, transaction_id: str, error: str) -> None:
        self._queue.send_dead_letter(transaction_id, error)

    def depth(self) -> tuple[int, int]:
        return self._queue.depth()

    def redrive(self, message_id: str) -> bool:
        return self._queue.redrive(message_id)

    def remove_dead_letter(self, message_id: str) -> bool:
        return self._queue.remove_dead_letter(message_id)

    def purge(self, transaction_id: str) -> int:
        return self._queue.purge(transaction_id)
