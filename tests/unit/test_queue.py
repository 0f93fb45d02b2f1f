"""SqliteJobQueue: SQS's semantics (visibility timeout, receive count, redrive to a DLQ) on SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.queue import DEAD_LETTER_QUEUE, SqliteJobQueue

from helpers import ManualClock


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "queue.db")
    yield db
    db.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.fromtimestamp(1_800_000_000, UTC))


@pytest.fixture
def queue(database: Database, clock: ManualClock) -> SqliteJobQueue:
    return SqliteJobQueue(database, max_receive_count=3, clock=clock)


def _dlq_errors(database: Database) -> dict[str, str]:
    rows = database.read("SELECT transaction_id, last_error FROM queue_messages WHERE queue = ?", (DEAD_LETTER_QUEUE,))
    return {row["transaction_id"]: row["last_error"] for row in rows}


def test_send_receive_delete(queue: SqliteJobQueue) -> None:
    assert queue.depth() == (0, 0)
    queue.send("TXN-1")
    assert queue.depth() == (1, 0)
    [message] = queue.receive(10, visibility_timeout=30)
    assert message.transaction_id == "TXN-1"
    assert message.receive_count == 1
    assert message.receipt
    assert message.sent_at.endswith("Z")
    queue.delete(message.receipt)
    assert queue.depth() == (0, 0)
    assert queue.receive(10, visibility_timeout=30) == []


def test_receive_returns_at_most_max_messages_oldest_first(queue: SqliteJobQueue) -> None:
    for n in range(5):
        queue.send(f"TXN-{n}")
    first = queue.receive(2, visibility_timeout=30)
    second = queue.receive(10, visibility_timeout=30)
    assert [m.transaction_id for m in first] == ["TXN-0", "TXN-1"]
    assert [m.transaction_id for m in second] == ["TXN-2", "TXN-3", "TXN-4"]
    assert queue.receive(10, visibility_timeout=30) == []


def test_a_delayed_send_is_invisible_until_the_delay_passes(queue: SqliteJobQueue, clock: ManualClock) -> None:
    queue.send("TXN-1", delay_seconds=10)
    assert queue.receive(1, visibility_timeout=30) == []
    clock.advance(9.9)
    assert queue.receive(1, visibility_timeout=30) == []
    clock.advance(0.1)
    assert [m.transaction_id for m in queue.receive(1, visibility_timeout=30)] == ["TXN-1"]


def test_a_received_message_is_invisible_until_its_visibility_timeout_passes(
    queue: SqliteJobQueue, clock: ManualClock
) -> None:
    queue.send("TXN-1")
    [first] = queue.receive(1, visibility_timeout=30)
    assert queue.depth() == (1, 0)  # still in the queue, just hidden
    clock.advance(29.9)
    assert queue.receive(1, visibility_timeout=30) == []
    clock.advance(0.1)
    [again] = queue.receive(1, visibility_timeout=30)
    assert again.transaction_id == "TXN-1"
    assert again.receive_count == first.receive_count + 1 == 2
    assert again.receipt != first.receipt


def test_receive_count_increments_on_every_delivery(queue: SqliteJobQueue, clock: ManualClock) -> None:
    queue.send("TXN-1")
    counts = []
    for _ in range(3):
        [message] = queue.receive(1, visibility_timeout=5)
        counts.append(message.receive_count)
        clock.advance(5)
    assert counts == [1, 2, 3]


def test_delete_with_a_stale_receipt_does_nothing_to_the_newer_delivery(
    queue: SqliteJobQueue, clock: ManualClock
) -> None:
    queue.send("TXN-1")
    [stale] = queue.receive(1, visibility_timeout=5)
    clock.advance(5)
    [fresh] = queue.receive(1, visibility_timeout=60)
    queue.delete(stale.receipt)
    assert queue.depth() == (1, 0)
    # The newer delivery is still hidden (not made visible by the stale delete) ...
    clock.advance(30)
    assert queue.receive(1, visibility_timeout=60) == []
    # ... and its own receipt still works.
    queue.delete(fresh.receipt)
    assert queue.depth() == (0, 0)


def test_retry_later_and_dead_letter_with_a_stale_receipt_do_nothing(queue: SqliteJobQueue, clock: ManualClock) -> None:
    queue.send("TXN-1")
    [stale] = queue.receive(1, visibility_timeout=5)
    clock.advance(5)
    [fresh] = queue.receive(1, visibility_timeout=60)
    queue.retry_later(stale.receipt, 0)
    queue.dead_letter(stale.receipt, "stale worker gave up")
    assert queue.depth() == (1, 0)
    assert queue.receive(1, visibility_timeout=60) == []
    queue.delete(fresh.receipt)
    assert queue.depth() == (0, 0)


def test_retry_later_delays_visibility(queue: SqliteJobQueue, clock: ManualClock) -> None:
    queue.send("TXN-1")
    [message] = queue.receive(1, visibility_timeout=300)
    queue.retry_later(message.receipt, 20)
    clock.advance(19.5)
    assert queue.receive(1, visibility_timeout=300) == []
    clock.advance(0.5)
    [again] = queue.receive(1, visibility_timeout=300)
    assert again.transaction_id == "TXN-1"
    assert again.receive_count == 2


def test_retry_later_with_zero_delay_makes_it_visible_at_once(queue: SqliteJobQueue) -> None:
    queue.send("TXN-1")
    [message] = queue.receive(1, visibility_timeout=300)
    queue.retry_later(message.receipt, 0)
    assert [m.transaction_id for m in queue.receive(1, visibility_timeout=300)] == ["TXN-1"]


def test_dead_letter_moves_the_message_to_the_dlq(
    queue: SqliteJobQueue, clock: ManualClock, database: Database
) -> None:
    queue.send("TXN-1")
    queue.send("TXN-2")
    [message] = queue.receive(1, visibility_timeout=30)
    queue.dead_letter(message.receipt, "permanent: unknown plan")
    assert queue.depth() == (1, 1)
    assert _dlq_errors(database) == {"TXN-1": "permanent: unknown plan"}
    clock.advance(3600)
    # Only the other message is ever delivered again.
    assert [m.transaction_id for m in queue.receive(10, visibility_timeout=30)] == ["TXN-2"]
    # A dead-lettered message's old receipt no longer touches it.
    queue.delete(message.receipt)
    assert queue.depth() == (1, 1)


def test_a_message_delivered_max_receive_count_times_goes_to_the_dlq(
    queue: SqliteJobQueue, clock: ManualClock, database: Database
) -> None:
    queue.send("TXN-1")
    for expected_count in (1, 2, 3):  # max_receive_count=3: each worker "dies" holding it
        [message] = queue.receive(1, visibility_timeout=10)
        assert message.receive_count == expected_count
        clock.advance(10)
    assert queue.receive(1, visibility_timeout=10) == []
    assert queue.depth() == (0, 1)
    assert "maximum receive count" in _dlq_errors(database)["TXN-1"]


def test_the_receive_limit_does_not_touch_a_message_still_in_flight(queue: SqliteJobQueue, clock: ManualClock) -> None:
    queue.send("TXN-1")
    for _ in range(2):
        queue.receive(1, visibility_timeout=10)
        clock.advance(10)
    [third] = queue.receive(1, visibility_timeout=10)
    queue.send("TXN-2")
    # Another receive while the third delivery is being worked on leaves it alone ...
    assert [m.transaction_id for m in queue.receive(1, visibility_timeout=10)] == ["TXN-2"]
    assert queue.depth() == (2, 0)
    # ... so the worker holding it can still finish it.
    queue.delete(third.receipt)
    assert queue.depth() == (1, 0)


def test_concurrent_receivers_never_get_the_same_message(queue: SqliteJobQueue) -> None:
    total = 60
    for n in range(total):
        queue.send(f"TXN-{n}")
    received: list[list[str]] = [[] for _ in range(6)]
    start = threading.Barrier(len(received))
    errors: list[BaseException] = []

    def receive_all(bucket: list[str]) -> None:
        try:
            start.wait()
            while True:
                messages = queue.receive(2, visibility_timeout=300)
                if not messages:
                    return
                bucket.extend(message.transaction_id for message in messages)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=receive_all, args=(bucket,)) for bucket in received]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    everything = [transaction_id for bucket in received for transaction_id in bucket]
    assert len(everything) == total
    assert set(everything) == {f"TXN-{n}" for n in range(total)}
