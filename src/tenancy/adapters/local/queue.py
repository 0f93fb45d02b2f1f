"""An SQS-shaped work queue on SQLite: visibility timeout, receive count, delays and a DLQ.

Messages live in one table; `queue` says which queue holds each. A receive takes the
write lock, so two workers (threads or processes) never get the same message at once.
"""

from __future__ import annotations

import secrets
import sqlite3
from datetime import UTC, datetime

from tenancy.adapters.local.database import Database
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import QueuedMessage, QueueMessage
from tenancy.ports import Clock

__all__ = ["DEAD_LETTER_QUEUE", "WORK_QUEUE", "SqliteJobQueue", "enqueue"]

WORK_QUEUE = "provisioning"
DEAD_LETTER_QUEUE = "provisioning-dlq"


def enqueue(connection: sqlite3.Connection, transaction_id: str, delay_seconds: float = 0, *, now: datetime) -> None:
    """Adds a message inside the caller's transaction (so it commits with the caller's writes)."""
    connection.execute(
        "INSERT INTO queue_messages (queue, transaction_id, visible_at, sent_at) VALUES (?, ?, ?, ?)",
        (WORK_QUEUE, transaction_id, now.timestamp() + delay_seconds, format_timestamp(now)),
    )


class SqliteJobQueue:
    """Delays and visibility timeouts run on `clock`: every process sharing the file must read the
    same time (the system clock, outside tests)."""

    listing_counts_as_delivery = False  # a SELECT: looking changes nothing

    def __init__(self, database: Database, *, clock: Clock, max_receive_count: int = 10) -> None:
        self._database = database
        self._max_receive_count = max_receive_count
        self._clock = clock

    def send(self, transaction_id: str, delay_seconds: float = 0) -> None:
        with self._database.transaction() as connection:
            enqueue(connection, transaction_id, delay_seconds, now=self._clock.now())

    def receive(self, max_messages: int, visibility_timeout: float) -> list[QueueMessage]:
        now = self._seconds()
        received: list[QueueMessage] = []
        with self._database.transaction() as connection:
            # Like SQS's redrive policy: a message delivered too often (its workers kept
            # dying) goes to the DLQ instead of being handed out again.
            connection.execute(
                "UPDATE queue_messages SET queue = ?, receipt = NULL,"
                " last_error = COALESCE(last_error, 'exceeded the maximum receive count')"
                " WHERE queue = ? AND visible_at <= ? AND receive_count >= ?",
                (DEAD_LETTER_QUEUE, WORK_QUEUE, now, self._max_receive_count),
            )
            rows = connection.execute(
                "SELECT id, transaction_id, receive_count, sent_at FROM queue_messages"
                " WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, id LIMIT ?",
                (WORK_QUEUE, now, max_messages),
            ).fetchall()
            for row in rows:
                receipt = f"{row['id']}:{secrets.token_hex(8)}"
                connection.execute(
                    "UPDATE queue_messages SET visible_at = ?, receive_count = receive_count + 1, receipt = ?"
                    " WHERE id = ?",
                    (now + visibility_timeout, receipt, row["id"]),
                )
                received.append(QueueMessage(receipt, row["transaction_id"], row["receive_count"] + 1, row["sent_at"]))
        return received

    def delete(self, receipt: str) -> None:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM queue_messages WHERE receipt = ?", (receipt,))

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "UPDATE queue_messages SET visible_at = ? WHERE receipt = ?", (self._seconds() + delay_seconds, receipt)
            )

    def dead_letter(self, receipt: str, error: str) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "UPDATE queue_messages SET queue = ?, receipt = NULL, visible_at = ?, last_error = ? WHERE receipt = ?",
                (DEAD_LETTER_QUEUE, self._seconds(), error[:2000], receipt),
            )

    def send_dead_letter(self, transaction_id: str, error: str) -> None:
        now = self._clock.now()
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO queue_messages (queue, transaction_id, visible_at, sent_at, last_error)"
                " VALUES (?, ?, ?, ?, ?)",
                (DEAD_LETTER_QUEUE, transaction_id, now.timestamp(), format_timestamp(now), error[:2000]),
            )

    def depth(self) -> tuple[int, int]:
        rows = self._database.read("SELECT queue, COUNT(*) AS n FROM queue_messages GROUP BY queue")
        counts = {row["queue"]: row["n"] for row in rows}
        return counts.get(WORK_QUEUE, 0), counts.get(DEAD_LETTER_QUEUE, 0)

    def messages(self, *, transaction_id: str | None = None, dead_lettered: bool | None = None) -> list[QueuedMessage]:
        conditions: list[str] = []
        parameters: list[object] = []
        if transaction_id is not None:
            conditions.append("transaction_id = ?")
            parameters.append(transaction_id)
        if dead_lettered is not None:
            conditions.append("queue = ?")
            parameters.append(DEAD_LETTER_QUEUE if dead_lettered else WORK_QUEUE)
        where = " AND ".join(conditions) or "1 = 1"
        rows = self._database.read(
            f"SELECT * FROM queue_messages WHERE {where} ORDER BY id",  # noqa: S608 - fixed conditions
            tuple(parameters),
        )
        return [
            QueuedMessage(
                message_id=str(row["id"]),
                queue=row["queue"],
                transaction_id=row["transaction_id"],
                receive_count=row["receive_count"],
                sent_at=row["sent_at"],
                visible_at=format_timestamp(datetime.fromtimestamp(row["visible_at"], UTC)),
                last_error=row["last_error"],
            )
            for row in rows
        ]

    def redrive(self, message_id: str) -> bool:
        if not message_id.isdigit():
            return False
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE queue_messages SET queue = ?, visible_at = ?, receive_count = 0, receipt = NULL"
                " WHERE id = ? AND queue = ?",
                (WORK_QUEUE, self._seconds(), int(message_id), DEAD_LETTER_QUEUE),
            )
            return cursor.rowcount == 1

    def remove_dead_letter(self, message_id: str) -> bool:
        if not message_id.isdigit():
            return False
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM queue_messages WHERE id = ? AND queue = ?", (int(message_id), DEAD_LETTER_QUEUE)
            )
            return cursor.rowcount == 1

    def purge(self, transaction_id: str) -> int:
        with self._database.transaction() as connection:
            return connection.execute("DELETE FROM queue_messages WHERE transaction_id = ?", (transaction_id,)).rowcount

    def _seconds(self) -> float:
        """Now, as the table's `visible_at` counts it: seconds since the epoch."""
        return self._clock.now().timestamp()
