"""The tenant lifecycle on SQLite: a move is one transaction that updates the tenant's row on the
condition that its status is still the one the move leaves, saves the subscription over its
version, appends the history lines and queues the notices (`tenant_history`, `notices`)."""

from __future__ import annotations

import json
import sqlite3

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.store import limits_json
from tenancy.adapters.local.subscriptions import save_subscription
from tenancy.domain.billing import Subscription
from tenancy.domain.lifecycle import (
    DELETED_NAME,
    EventType,
    LifecycleCommit,
    Notice,
    NoticeKind,
    NoticeStatus,
    Tombstone,
    Transition,
    Trigger,
    encode_body,
)
from tenancy.domain.model import TenantStatus
from tenancy.errors import ConflictError, NotFoundError

__all__ = ["SqliteLifecycleStore"]


class SqliteLifecycleStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def commit(self, commit: LifecycleCommit) -> Subscription | None:
        with self._database.transaction() as connection:
            _update_tenant(connection, commit)
            saved = save_subscription(connection, commit.subscription) if commit.subscription else None
            connection.executemany(
                "INSERT INTO tenant_history (tenant_id, at, from_status, to_status, trigger, actor, reason, event)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        move.tenant_id,
                        move.at,
                        move.from_status.value,
                        move.to_status.value,
                        move.trigger.value,
                        move.actor,
                        move.reason,
                        move.event.value,
                    )
                    for move in commit.transitions
                ],
            )
            # A notice's id is derived from its move: queued again (a replayed move that changed
            # nothing else) it is the same notice, kept once.
            connection.executemany(
                "INSERT INTO notices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (notice_id) DO NOTHING",
                [_notice_row(notice) for notice in commit.notices],
            )
            if commit.tombstone is not None:
                stone = commit.tombstone
                connection.execute(
                    "INSERT INTO tombstones VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING",
                    (
                        stone.tenant_id,
                        stone.owner_email_hash,
                        stone.plan,
                        stone.transaction_id,
                        stone.created_at,
                        stone.cancelled_at,
                        stone.deleted_at,
                        stone.reason,
                    ),
                )
        return saved

    def tombstone(self, tenant_id: str) -> Tombstone | None:
        rows = self._database.read("SELECT * FROM tombstones WHERE tenant_id = ?", (tenant_id,))
        if not rows:
            return None
        row = rows[0]
        return Tombstone(
            tenant_id=row["tenant_id"],
            owner_email_hash=row["owner_email_hash"],
            plan=row["plan"],
            transaction_id=row["transaction_id"],
            created_at=row["created_at"],
            cancelled_at=row["cancelled_at"],
            deleted_at=row["deleted_at"],
            reason=row["reason"],
        )

    def history(self, tenant_id: str) -> list[Transition]:
        rows = self._database.read("SELECT * FROM tenant_history WHERE tenant_id = ? ORDER BY seq", (tenant_id,))
        return [
            Transition(
                tenant_id=row["tenant_id"],
                from_status=TenantStatus(row["from_status"]),
                to_status=TenantStatus(row["to_status"]),
                trigger=Trigger(row["trigger"]),
                actor=row["actor"],
                at=row["at"],
                reason=row["reason"],
                event=EventType(row["event"]),
            )
            for row in rows
        ]

    def due_notices(self, now: str, limit: int = 100) -> list[Notice]:
        rows = self._database.read(
            "SELECT * FROM notices WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
            (now, limit),
        )
        return [_notice(row) for row in rows]

    def get_notice(self, notice_id: str) -> Notice | None:
        rows = self._database.read("SELECT * FROM notices WHERE notice_id = ?", (notice_id,))
        return _notice(rows[0]) if rows else None

    def claim_notice(self, notice: Notice, until: str) -> bool:
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE notices SET next_attempt_at = ? WHERE notice_id = ? AND status = 'pending'"
                " AND attempts = ? AND next_attempt_at = ?",
                (until, notice.notice_id, notice.attempts, notice.next_attempt_at),
            )
            return cursor.rowcount == 1

    def update_notice(self, notice: Notice) -> None:
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE notices SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?, delivered_at = ?"
                " WHERE notice_id = ?",
                (
                    notice.status.value,
                    notice.attempts,
                    notice.next_attempt_at,
                    notice.last_error,
                    notice.delivered_at,
                    notice.notice_id,
                ),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"notice {notice.notice_id} not found")

    def notices(self, status: NoticeStatus | None = None, limit: int = 100) -> list[Notice]:
        if status is None:
            rows = self._database.read("SELECT * FROM notices ORDER BY created_at DESC LIMIT ?", (limit,))
        else:
            rows = self._database.read(
                "SELECT * FROM notices WHERE status = ? ORDER BY created_at DESC LIMIT ?", (status.value, limit)
            )
        return [_notice(row) for row in rows]

    def dead_notices_of(self, tenant_id: str) -> list[Notice]:
        rows = self._database.read(
            "SELECT * FROM notices WHERE tenant_id = ? AND status = 'dead' ORDER BY created_at, notice_id", (tenant_id,)
        )
        return [_notice(row) for row in rows]

    def count_events_since(self, event_type: EventType, since: str) -> int:
        rows = self._database.read(
            "SELECT COUNT(*) FROM notices"
            " WHERE kind = 'event' AND created_at >= ? AND json_extract(body, '$.type') = ?",
            (since, event_type.value),
        )
        return int(rows[0][0])

    def queue_notice(self, notice: Notice) -> bool:
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO notices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (notice_id) DO NOTHING",
                _notice_row(notice),
            )
            return cursor.rowcount == 1

    def notice_counts(self) -> dict[NoticeStatus, int]:
        rows = self._database.read("SELECT status, COUNT(*) AS count FROM notices GROUP BY status")
        return {NoticeStatus(row["status"]): row["count"] for row in rows}


def _update_tenant(connection: sqlite3.Connection, commit: LifecycleCommit) -> None:
    changes = commit.changes
    assignments, values = ["updated_at = ?"], [commit.updated_at]
    if changes.status is not None:
        assignments.append("status = ?")
        values.append(changes.status.value)
    if changes.plan is not None:
        assignments.append("plan = ?")
        values.append(changes.plan)
    if changes.limits is not None:
        assignments.append("limits = ?")
        values.append(limits_json(changes.limits))
    if changes.reset_generations:
        assignments.append("usage = json_set(usage, '$.generations_this_month', 0)")
    if changes.erase_people:
        assignments += ["owner_user_id = ''", "name = ?"]
        values.append(DELETED_NAME)
    leaving = sorted(status.value for status in commit.leaving)
    marks = ", ".join("?" for _ in leaving)
    cursor = connection.execute(
        f"UPDATE tenants SET {', '.join(assignments)} WHERE tenant_id = ? AND status IN ({marks})",  # noqa: S608 - fixed SQL
        (*values, commit.tenant_id, *leaving),
    )
    if cursor.rowcount == 1:
        return
    found = connection.execute("SELECT status FROM tenants WHERE tenant_id = ?", (commit.tenant_id,)).fetchone()
    if found is None:
        raise NotFoundError(f"tenant {commit.tenant_id} not found")
    raise ConflictError(f"tenant {commit.tenant_id} is {found['status']} now, not {' or '.join(leaving)}")


def _notice_row(notice: Notice) -> tuple[object, ...]:
    return (
        notice.notice_id,
        notice.kind.value,
        notice.tenant_id,
        encode_body(notice.body),
        notice.created_at,
        notice.status.value,
        notice.attempts,
        notice.next_attempt_at,
        notice.last_error,
        notice.delivered_at,
    )


def _notice(row: sqlite3.Row) -> Notice:
    return Notice(
        notice_id=row["notice_id"],
        kind=NoticeKind(row["kind"]),
        tenant_id=row["tenant_id"],
        body=json.loads(row["body"]),
        created_at=row["created_at"],
        status=NoticeStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
    )
