"""The tenant lifecycle on DynamoDB: a move is one TransactWriteItems that updates the tenant item
on the condition that its status is still the one the move leaves, saves the subscription over its
version (with its token claim), and puts the history lines and the notices into the `lifecycle`
table.

The `lifecycle` table (key `pk`, `sk`) holds a tenant's history under "TENANT#<id>" (sort key
"HISTORY#<sequence>", in the order recorded), a deleted tenant's tombstone (sort key
"TOMBSTONE") and each notice under "NOTICE#<id>"; `status-index` (notice_status,
created_at) lists notices by status and `tenant-index` (tenant_id, notice_status) a tenant's
(only notices have both attributes: the history and the tombstones stay out of it). A notice is
put on the condition that it is new: a move replayed queues its notice once (the transaction is
written again without the notices it found)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from tenancy.adapters.aws._errors import aws_errors, error_code
from tenancy.adapters.aws._items import Item, attribute, item_from, plain
from tenancy.adapters.aws._pages import count_matching, query_pages
from tenancy.adapters.aws.subscriptions import refused, subscription_writes
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
from tenancy.errors import ConflictError, ItemAlreadyExistsError, NotFoundError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["STATUS_INDEX", "TENANT_INDEX", "DynamoLifecycleStore"]

STATUS_INDEX = "status-index"
TENANT_INDEX = "tenant-index"
_TENANT, _HISTORY, _NOTICE, _TOMBSTONE = "TENANT#", "HISTORY#", "NOTICE#", "TOMBSTONE"
_ATTEMPTS = 3  # writes of one commit when replayed notices must be left out


class DynamoLifecycleStore:
    def __init__(self, client: DynamoDBClient, *, lifecycle_table: str, tenants_table: str, subscriptions_table: str):
        self._client = client
        self._table = lifecycle_table
        self._tenants = tenants_table
        self._subscriptions = subscriptions_table

    def commit(self, commit: LifecycleCommit) -> Subscription | None:
        notices = list(commit.notices)
        for _ in range(_ATTEMPTS):
            items = self._items(commit, notices)
            with aws_errors("moving a tenant"):
                try:
                    self._client.transact_write_items(TransactItems=items)
                except ClientError as error:
                    if error_code(error) != "TransactionCanceledException":
                        raise
                    notices = self._refused(commit, notices, error)
                    continue
            if commit.subscription is None:
                return None
            return _at_version(commit.subscription)
        raise TransientError(f"the move of tenant {commit.tenant_id} kept being refused")

    def _items(self, commit: LifecycleCommit, notices: list[Notice]) -> list[Any]:
        items: list[Any] = [{"Update": self._tenant_update(commit)}]
        if commit.subscription is not None:
            items += subscription_writes(self._subscriptions, commit.subscription)
        sequence = time.time_ns()
        for offset, move in enumerate(commit.transitions):
            items.append({"Put": {"TableName": self._table, "Item": _history_item(move, sequence + offset)}})
        if commit.tombstone is not None:
            items.append({"Put": {"TableName": self._table, "Item": _tombstone_item(commit.tombstone)}})
        for notice in notices:
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _notice_item(notice),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        return items

    def _tenant_update(self, commit: LifecycleCommit) -> dict[str, Any]:
        changes = commit.changes
        names = {"#updated_at": "updated_at", "#status": "status"}
        values: dict[str, Any] = {":updated_at": attribute(commit.updated_at)}
        assignments = ["#updated_at = :updated_at"]
        if changes.status is not None:
            assignments.append("#status = :status")
            values[":status"] = attribute(changes.status.value)
        if changes.plan is not None:
            names["#plan"] = "plan"
            values[":plan"] = attribute(changes.plan)
            assignments.append("#plan = :plan")
        if changes.limits is not None:
            names["#limits"] = "limits"
            values[":limits"] = attribute(
                {
                    "max_sites": changes.limits.max_sites,
                    "max_generations_per_month": changes.limits.max_generations_per_month,
                    "max_storage_mb": changes.limits.max_storage_mb,
                    "custom_domain_allowed": changes.limits.custom_domain_allowed,
                }
            )
            assignments.append("#limits = :limits")
        if changes.reset_generations:
            names |= {"#usage": "usage", "#generations": "generations_this_month"}
            values[":zero"] = attribute(0)
            assignments.append("#usage.#generations = :zero")
        if changes.erase_people:
            names |= {"#owner": "owner_user_id", "#name": "name"}
            values |= {":no_owner": attribute(""), ":deleted_name": attribute(DELETED_NAME)}
            assignments += ["#owner = :no_owner", "#name = :deleted_name"]
        leaving = sorted(status.value for status in commit.leaving)
        marks = []
        for number, status in enumerate(leaving):
            values[f":leaving{number}"] = attribute(status)
            marks.append(f":leaving{number}")
        return {
            "TableName": self._tenants,
            "Key": {"tenant_id": attribute(commit.tenant_id)},
            "UpdateExpression": "SET " + ", ".join(assignments),
            # Absent tenants fail it too (no status): UpdateItem never creates a tenant here.
            "ConditionExpression": f"#status IN ({', '.join(marks)})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def _refused(self, commit: LifecycleCommit, notices: list[Notice], error: ClientError) -> list[Notice]:
        """Raises what refused the commit, or returns the notices left to queue when only
        notices queued before (a replayed move's) refused it."""
        reasons = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
        failed = {number for number, code in enumerate(reasons) if code not in {"None", ""}}
        if not reasons or 0 in failed:
            self._tenant_refused(commit)
        first_notice = (
            1
            + (2 if commit.subscription is not None else 0)
            + len(commit.transitions)
            + (1 if commit.tombstone is not None else 0)
        )
        if commit.subscription is not None and failed & {1, 2}:
            refused(self._client, self._subscriptions, commit.subscription)
        if any(code not in {"ConditionalCheckFailed", "None", ""} for code in reasons):
            raise TransientError(f"moving tenant {commit.tenant_id}: {', '.join(sorted(set(reasons)))}")
        return [notice for number, notice in enumerate(notices) if first_notice + number not in failed]

    def _tenant_refused(self, commit: LifecycleCommit) -> None:
        with aws_errors("reading a tenant's status"):
            item = self._client.get_item(
                TableName=self._tenants, Key={"tenant_id": attribute(commit.tenant_id)}, ConsistentRead=True
            ).get("Item")
        if item is None:
            raise NotFoundError(f"tenant {commit.tenant_id} not found")
        status = item.get("status", {}).get("S", "")
        if status not in {leaving.value for leaving in commit.leaving}:
            leaving = " or ".join(sorted(value.value for value in commit.leaving))
            raise ConflictError(f"tenant {commit.tenant_id} is {status} now, not {leaving}")

    def tombstone(self, tenant_id: str) -> Tombstone | None:
        with aws_errors("reading a tombstone"):
            item = self._client.get_item(
                TableName=self._table,
                Key={"pk": attribute(_TENANT + tenant_id), "sk": attribute(_TOMBSTONE)},
                ConsistentRead=True,
            ).get("Item")
        if item is None:
            return None
        values = plain(item)
        return Tombstone(
            tenant_id=values["tenant_id"],
            owner_email_hash=values["owner_email_hash"],
            plan=values["plan"],
            transaction_id=values["transaction_id"],
            created_at=values["created_at"],
            cancelled_at=values.get("cancelled_at"),
            deleted_at=values["deleted_at"],
            reason=values["reason"],
        )

    def history(self, tenant_id: str) -> list[Transition]:
        items = self._query(
            {
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :history)",
                "ExpressionAttributeValues": {":pk": attribute(_TENANT + tenant_id), ":history": attribute(_HISTORY)},
                "ConsistentRead": True,
            },
            "reading a tenant's history",
        )
        return [_transition(item) for item in items]

    def due_notices(self, now: str, limit: int = 100) -> list[Notice]:
        pending = self._by_status(NoticeStatus.PENDING, limit=None)
        due = sorted((notice for notice in pending if notice.next_attempt_at <= now), key=lambda n: n.next_attempt_at)
        # The index is read eventually consistently: each due notice is read again, consistently,
        # and kept only if still due: one another deliverer claimed meanwhile has its lease set
        # ahead, and claiming that fresh copy would deliver it twice.
        fresh = [self.get_notice(notice.notice_id) for notice in due[:limit]]
        return [
            notice
            for notice in fresh
            if notice is not None and notice.status is NoticeStatus.PENDING and notice.next_attempt_at <= now
        ]

    def get_notice(self, notice_id: str) -> Notice | None:
        with aws_errors("reading a notice"):
            item = self._client.get_item(
                TableName=self._table,
                Key={"pk": attribute(_NOTICE + notice_id), "sk": attribute(_NOTICE)},
                ConsistentRead=True,
            ).get("Item")
        return _notice(item) if item else None

    def claim_notice(self, notice: Notice, until: str) -> bool:
        try:
            with aws_errors("claiming a notice"):
                self._client.update_item(
                    TableName=self._table,
                    Key={"pk": attribute(_NOTICE + notice.notice_id), "sk": attribute(_NOTICE)},
                    UpdateExpression="SET next_attempt_at = :until",
                    ConditionExpression="notice_status = :pending AND attempts = :attempts AND next_attempt_at = :read",
                    ExpressionAttributeValues={
                        ":until": attribute(until),
                        ":pending": attribute(NoticeStatus.PENDING.value),
                        ":attempts": attribute(notice.attempts),
                        ":read": attribute(notice.next_attempt_at),
                    },
                )
        except ItemAlreadyExistsError:  # the condition failed: another deliverer has it
            return False
        return True

    def update_notice(self, notice: Notice) -> None:
        try:
            with aws_errors("writing a notice's delivery"):
                self._client.put_item(
                    TableName=self._table,
                    Item=_notice_item(notice),
                    ConditionExpression="attribute_exists(pk)",
                )
        except ItemAlreadyExistsError:  # the failed condition here means "no such notice"
            raise NotFoundError(f"notice {notice.notice_id} not found") from None

    def queue_notice(self, notice: Notice) -> bool:
        try:
            with aws_errors("queuing a notice"):
                self._client.put_item(
                    TableName=self._table, Item=_notice_item(notice), ConditionExpression="attribute_not_exists(pk)"
                )
        except ItemAlreadyExistsError:
            return False
        return True

    def notices(self, status: NoticeStatus | None = None, limit: int = 100) -> list[Notice]:
        if status is not None:
            return self._by_status(status, limit=limit)
        found = [notice for each in NoticeStatus for notice in self._by_status(each, limit=limit)]
        return sorted(found, key=lambda notice: notice.created_at, reverse=True)[:limit]

    def dead_notices_of(self, tenant_id: str) -> list[Notice]:
        request: dict[str, Any] = {
            "IndexName": TENANT_INDEX,
            "KeyConditionExpression": "tenant_id = :tenant AND notice_status = :dead",
            "ExpressionAttributeValues": {":tenant": attribute(tenant_id), ":dead": attribute(NoticeStatus.DEAD.value)},
        }
        found = [_notice(item) for item in self._query(request, "listing a tenant's dead notices")]
        return sorted(found, key=lambda notice: (notice.created_at, notice.notice_id))

    def count_events_since(self, event_type: EventType, since: str) -> int:
        return sum(
            count_matching(
                self._client,
                {
                    "TableName": self._table,
                    "IndexName": STATUS_INDEX,
                    "KeyConditionExpression": "notice_status = :status AND created_at >= :since",
                    # The body is JSON text: its "type" field, quoted, names the event.
                    "FilterExpression": "kind = :event AND contains(body, :type)",
                    "ExpressionAttributeValues": {
                        ":status": attribute(status.value),
                        ":since": attribute(since),
                        ":event": attribute(NoticeKind.EVENT.value),
                        ":type": attribute(f'"type":"{event_type.value}"'),
                    },
                },
                "counting lifecycle events",
            )
            for status in NoticeStatus
        )

    def notice_counts(self) -> dict[NoticeStatus, int]:
        counts = {
            status: count_matching(
                self._client,
                {
                    "TableName": self._table,
                    "IndexName": STATUS_INDEX,
                    "KeyConditionExpression": "notice_status = :status",
                    "ExpressionAttributeValues": {":status": attribute(status.value)},
                },
                "counting notices",
            )
            for status in NoticeStatus
        }
        return {status: count for status, count in counts.items() if count}

    def _by_status(self, status: NoticeStatus, limit: int | None) -> list[Notice]:
        request: dict[str, Any] = {
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "notice_status = :status",
            "ExpressionAttributeValues": {":status": attribute(status.value)},
            "ScanIndexForward": False,
        }
        return [_notice(item) for item in self._query(request, "listing notices", limit)]

    def _query(self, request: dict[str, Any], doing: str, limit: int | None = None) -> list[dict[str, Any]]:
        request = {"TableName": self._table, **request}
        if limit is not None:
            request["Limit"] = limit
        found: list[dict[str, Any]] = []
        for page in query_pages(self._client, cast("Any", request), doing):
            found += page
            if limit is not None and len(found) >= limit:
                return found[:limit]  # newest first: the pages after hold only older ones
        return found


def _at_version(subscription: Subscription) -> Subscription:
    return replace(subscription, version=subscription.version + 1)


def _history_item(move: Transition, sequence: int) -> Item:
    return item_from(
        {
            "pk": _TENANT + move.tenant_id,
            # In the order recorded (as SQLite's sequence): a rehearsal's moves are dated ahead.
            "sk": f"{_HISTORY}{sequence:020d}",
            "tenant_id": move.tenant_id,
            "at": move.at,
            "from_status": move.from_status.value,
            "to_status": move.to_status.value,
            "trigger": move.trigger.value,
            "actor": move.actor,
            "reason": move.reason,
            "event": move.event.value,
        }
    )


def _tombstone_item(stone: Tombstone) -> Item:
    return item_from(
        {
            "pk": _TENANT + stone.tenant_id,
            "sk": _TOMBSTONE,
            "tenant_id": stone.tenant_id,
            "owner_email_hash": stone.owner_email_hash,
            "plan": stone.plan,
            "transaction_id": stone.transaction_id,
            "created_at": stone.created_at,
            "cancelled_at": stone.cancelled_at,
            "deleted_at": stone.deleted_at,
            "reason": stone.reason,
        }
    )


def _transition(item: Mapping[str, Any]) -> Transition:
    values = plain(item)
    return Transition(
        tenant_id=values["tenant_id"],
        from_status=TenantStatus(values["from_status"]),
        to_status=TenantStatus(values["to_status"]),
        trigger=Trigger(values["trigger"]),
        actor=values["actor"],
        at=values["at"],
        reason=values["reason"],
        event=EventType(values["event"]),
    )


def _notice_item(notice: Notice) -> Item:
    return item_from(
        {
            "pk": _NOTICE + notice.notice_id,
            "sk": _NOTICE,
            "notice_id": notice.notice_id,
            "kind": notice.kind.value,
            "tenant_id": notice.tenant_id,
            "body": encode_body(notice.body),
            "created_at": notice.created_at,
            "notice_status": notice.status.value,
            "attempts": notice.attempts,
            "next_attempt_at": notice.next_attempt_at,
            "last_error": notice.last_error,
            "delivered_at": notice.delivered_at,
        }
    )


def _notice(item: Mapping[str, Any]) -> Notice:
    values = plain(item)
    return Notice(
        notice_id=values["notice_id"],
        kind=NoticeKind(values["kind"]),
        tenant_id=values["tenant_id"],
        body=json.loads(values["body"]),
        created_at=values["created_at"],
        status=NoticeStatus(values["notice_status"]),
        attempts=int(values["attempts"]),
        next_attempt_at=values["next_attempt_at"],
        last_error=values.get("last_error"),
        delivered_at=values.get("delivered_at"),
    )
