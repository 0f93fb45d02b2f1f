"""Team members on DynamoDB: every change that moves a seat or a tenant admin is one
TransactWriteItems whose conditions hold the rule (seats left, another admin kept).

The tenant item counts its seats (`seats_used`: members and pending invitations) and its tenant
admins (`admins`); an item written before either existed (RB-001's own) counts its owner alone.
The `invitations` table (key `invitation_id`) holds each invitation, listed per tenant by
`tenant-index` (tenant_id, created_at), and one marker per pending invitation
("PENDING#<tenant>#<email>", no tenant_id, so the index skips it) whose conditional put makes
"one pending invitation per email and tenant" a rule of the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tenancy.adapters.aws._errors import aws_errors
from tenancy.adapters.aws._items import Item, attribute, item_from, plain, user_item
from tenancy.adapters.aws._pages import query_pages, scan_pages
from tenancy.adapters.aws._transactions import CONDITION_REFUSED, transact
from tenancy.domain.members import Invitation, InvitationStatus, Role
from tenancy.domain.model import UserRecord
from tenancy.errors import ConflictError, ItemAlreadyExistsError, NotFoundError, SeatsTakenError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["TENANT_INDEX", "DynamoTeamStore"]

TENANT_INDEX = "tenant-index"
_ONE = {"N": "1"}


class DynamoTeamStore:
    def __init__(self, client: DynamoDBClient, *, invitations_table: str, tenants_table: str, users_table: str):
        self._client = client
        self._table = invitations_table
        self._tenants = tenants_table
        self._users = users_table

    def invite(self, invitation: Invitation, max_users: int) -> None:
        if max_users <= 1:  # the owner holds the only seat
            self._require_tenant(invitation.tenant_id)
            raise SeatsTakenError(max_users)
        reasons = self._transact(
            [
                {"Update": self._take_seat(invitation.tenant_id, max_users)},
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _marker(invitation.tenant_id, invitation.email),
                        "ConditionExpression": "attribute_not_exists(invitation_id)",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _invitation_item(invitation),
                        "ConditionExpression": "attribute_not_exists(invitation_id)",
                    }
                },
            ]
        )
        if reasons is None:
            return
        # Invited already comes first: that invitation holds a seat of its own, so a full tenant
        # is no reason to refuse it (a retry of an invitation cut short meets this). A refused
        # transaction need not report every item's refusal: the marker is read when in doubt.
        if reasons[1] == CONDITION_REFUSED or (reasons[0] == CONDITION_REFUSED and self._marked(invitation)):
            raise ItemAlreadyExistsError(f"{invitation.email} is invited already")
        if reasons[0] == CONDITION_REFUSED:
            self._require_tenant(invitation.tenant_id)
            raise SeatsTakenError(max_users)
        raise ItemAlreadyExistsError(f"{invitation.email} is invited already")

    def _marked(self, invitation: Invitation) -> bool:
        """Whether the email has a pending invitation to the tenant (its marker)."""
        with aws_errors("reading an invitation"):
            return "Item" in self._client.get_item(
                TableName=self._table, Key=_marker_key(invitation.tenant_id, invitation.email), ConsistentRead=True
            )

    def get_invitation(self, invitation_id: str) -> Invitation | None:
        with aws_errors("reading an invitation"):
            item = self._client.get_item(
                TableName=self._table, Key={"invitation_id": attribute(invitation_id)}, ConsistentRead=True
            ).get("Item")
        return _invitation(item) if item and "tenant_id" in item else None

    def invitations(self, tenant_id: str) -> list[Invitation]:
        found = [
            _invitation(item)
            for page in query_pages(
                self._client,
                {
                    "TableName": self._table,
                    "IndexName": TENANT_INDEX,
                    "KeyConditionExpression": "tenant_id = :tenant",
                    "ExpressionAttributeValues": {":tenant": attribute(tenant_id)},
                    "ScanIndexForward": False,
                },
                "listing invitations",
            )
            for item in page
        ]
        # The index is read eventually consistently: each one is read again.
        fresh = [self.get_invitation(invitation.invitation_id) for invitation in found]
        return [invitation for invitation in fresh if invitation is not None]

    def expired(self, now: str, limit: int = 1000) -> list[Invitation]:
        # Invitations are few (a team's, seven days each): a filtered scan, read again one by one.
        found: list[Invitation] = []
        for page in scan_pages(
            self._client,
            {
                "TableName": self._table,
                "FilterExpression": "#status = :pending AND expires_at <= :now",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":pending": attribute(InvitationStatus.PENDING.value),
                    ":now": attribute(now),
                },
            },
            "reading expired invitations",
        ):
            found += [_invitation(item) for item in page if "tenant_id" in item]
            if len(found) >= limit:
                break
        return found[:limit]

    def scan_accepted(self, batch_size: int = 1000) -> Iterator[list[Invitation]]:
        for page in scan_pages(
            self._client,
            {
                "TableName": self._table,
                "FilterExpression": "#status = :accepted",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":accepted": attribute(InvitationStatus.ACCEPTED.value)},
                "Limit": batch_size,
            },
            "reading accepted invitations",
        ):
            found = [_invitation(item) for item in page if "tenant_id" in item]
            if found:
                yield found

    def close_invitation(self, invitation_id: str, status: InvitationStatus, at: str) -> bool:
        invitation = self.get_invitation(invitation_id)
        if invitation is None or invitation.status is not InvitationStatus.PENDING:
            return False
        reasons = self._transact(
            [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"invitation_id": attribute(invitation_id)},
                        "UpdateExpression": "SET #status = :status, updated_at = :at",
                        "ConditionExpression": "#status = :pending",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {
                            ":status": attribute(status.value),
                            ":at": attribute(at),
                            ":pending": attribute(InvitationStatus.PENDING.value),
                        },
                    }
                },
                {"Delete": {"TableName": self._table, "Key": _marker_key(invitation.tenant_id, invitation.email)}},
                {"Update": self._release_seat(invitation.tenant_id)},
            ]
        )
        return reasons is None

    def renew_invitation(self, invitation_id: str, secret_hash: str, expires_at: str, at: str) -> bool:
        try:
            with aws_errors("renewing an invitation"):
                self._client.update_item(
                    TableName=self._table,
                    Key={"invitation_id": attribute(invitation_id)},
                    UpdateExpression="SET secret_hash = :hash, expires_at = :expires, updated_at = :at",
                    ConditionExpression="#status = :pending",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":hash": attribute(secret_hash),
                        ":expires": attribute(expires_at),
                        ":at": attribute(at),
                        ":pending": attribute(InvitationStatus.PENDING.value),
                    },
                )
        except ItemAlreadyExistsError:
            return False
        return True

    def accept(self, invitation_id: str, user: UserRecord, at: str) -> bool:
        invitation = self.get_invitation(invitation_id)
        if invitation is None:
            return False
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {"invitation_id": attribute(invitation_id)},
                    "UpdateExpression": "SET #status = :accepted, user_id = :user, updated_at = :at",
                    "ConditionExpression": "#status = :pending AND expires_at > :at",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {
                        ":accepted": attribute(InvitationStatus.ACCEPTED.value),
                        ":user": attribute(user.user_id),
                        ":at": attribute(at),
                        ":pending": attribute(InvitationStatus.PENDING.value),
                    },
                }
            },
            {"Delete": {"TableName": self._table, "Key": _marker_key(invitation.tenant_id, invitation.email)}},
            {
                "Put": {
                    "TableName": self._users,
                    "Item": user_item(user),
                    "ConditionExpression": "attribute_not_exists(user_id)",
                }
            },
        ]
        if user.role == Role.TENANT_ADMIN.value:
            items.append({"Update": self._count_admin(user.tenant_id, +1)})
        reasons = self._transact(items)
        if reasons is None:
            return True
        if reasons[0] != CONDITION_REFUSED and len(reasons) > 2 and reasons[2] == CONDITION_REFUSED:
            raise ItemAlreadyExistsError(f"user {user.user_id} exists")
        return False

    def add_member(self, user: UserRecord, max_users: int) -> None:
        if max_users <= 1:
            self._require_tenant(user.tenant_id)
            raise SeatsTakenError(max_users)
        take = self._take_seat(user.tenant_id, max_users, admin=user.role == Role.TENANT_ADMIN.value)
        reasons = self._transact(
            [
                {"Update": take},
                {
                    "Put": {
                        "TableName": self._users,
                        "Item": user_item(user),
                        "ConditionExpression": "attribute_not_exists(user_id)",
                    }
                },
            ]
        )
        if reasons is None:
            return
        if reasons[0] == CONDITION_REFUSED:
            self._require_tenant(user.tenant_id)
            raise SeatsTakenError(max_users)
        raise ItemAlreadyExistsError(f"user {user.user_id} exists")

    def set_role(self, user: UserRecord, role: Role) -> None:
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self._users,
                    "Key": {"user_id": attribute(user.user_id)},
                    "UpdateExpression": "SET #role = :role",
                    "ConditionExpression": "#role = :old AND #status = :active",
                    "ExpressionAttributeNames": {"#role": "role", "#status": "status"},
                    "ExpressionAttributeValues": {
                        ":role": attribute(role.value),
                        ":old": attribute(user.role),
                        ":active": attribute("active"),
                    },
                }
            }
        ]
        was_admin, is_admin = user.role == Role.TENANT_ADMIN.value, role is Role.TENANT_ADMIN
        if was_admin != is_admin:
            items.append({"Update": self._count_admin(user.tenant_id, +1 if is_admin else -1)})
        reasons = self._transact(items)
        if reasons is None:
            return
        if len(reasons) > 1 and reasons[1] == CONDITION_REFUSED:
            raise ConflictError("a tenant must keep at least one tenant admin")
        raise ConflictError(f"member {user.email} changed since it was read")

    def remove_member(self, user: UserRecord) -> bool:
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self._users,
                    "Key": {"user_id": attribute(user.user_id)},
                    "UpdateExpression": "SET #status = :disabled",
                    "ConditionExpression": "#status = :active",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":disabled": attribute("disabled"), ":active": attribute("active")},
                }
            },
            {"Update": self._release_seat(user.tenant_id, admin=user.role == Role.TENANT_ADMIN.value)},
        ]
        reasons = self._transact(items)
        if reasons is None:
            return True
        if reasons[0] != CONDITION_REFUSED and reasons[1] == CONDITION_REFUSED:
            raise ConflictError("a tenant must keep at least one tenant admin")
        return False

    def seats_used(self, tenant_id: str) -> int:
        item = self._require_tenant(tenant_id)
        seats = plain(item).get("seats_used")
        return 1 if seats is None else int(seats)

    def _require_tenant(self, tenant_id: str) -> Item:
        with aws_errors("reading a tenant"):
            item = self._client.get_item(
                TableName=self._tenants,
                Key={"tenant_id": attribute(tenant_id)},
                ConsistentRead=True,
                ProjectionExpression="tenant_id, seats_used, admins",
            ).get("Item")
        if item is None:
            raise NotFoundError(f"tenant {tenant_id} not found")
        return item

    def _take_seat(self, tenant_id: str, max_users: int, *, admin: bool = False) -> dict[str, Any]:
        return self._counts(tenant_id, seats=+1, admins=+1 if admin else 0, max_users=max_users)

    def _release_seat(self, tenant_id: str, *, admin: bool = False) -> dict[str, Any]:
        return self._counts(tenant_id, seats=-1, admins=-1 if admin else 0)

    def _count_admin(self, tenant_id: str, change: int) -> dict[str, Any]:
        return self._counts(tenant_id, seats=0, admins=change)

    def _counts(self, tenant_id: str, *, seats: int, admins: int, max_users: int | None = None) -> dict[str, Any]:
        """One update of the tenant's counters (a transaction writes an item once). A tenant
        without a counter holds one seat and one admin (its owner): a seat is taken only while
        fewer than `max_users` (>= 2) are held, and the last admin is never given up."""
        sets, conditions = [], ["attribute_exists(tenant_id)"]
        values: dict[str, Any] = {":one": _ONE}
        for name, change in (("seats_used", seats), ("admins", admins)):
            if change:
                sign = "+" if change > 0 else "-"
                sets.append(f"{name} = if_not_exists({name}, :one) {sign} :one")
        if seats > 0 and max_users is not None:
            values[":max"] = attribute(max_users)
            conditions.append("(attribute_not_exists(seats_used) OR seats_used < :max)")
        if admins < 0:
            conditions.append("admins > :one")
        return {
            "TableName": self._tenants,
            "Key": {"tenant_id": attribute(tenant_id)},
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeValues": values,
        }

    def _transact(self, items: list[Any]) -> list[str] | None:
        return transact(self._client, items, "writing team members")


def _marker_key(tenant_id: str, email: str) -> dict[str, Any]:
    return {"invitation_id": attribute(f"PENDING#{tenant_id}#{email.lower()}")}


def _marker(tenant_id: str, email: str) -> Item:
    return dict(_marker_key(tenant_id, email))


def _invitation_item(invitation: Invitation) -> Item:
    return item_from(
        {
            "invitation_id": invitation.invitation_id,
            "tenant_id": invitation.tenant_id,
            "email": invitation.email.lower(),
            "role": invitation.role.value,
            "secret_hash": invitation.secret_hash,
            "status": invitation.status.value,
            "invited_by": invitation.invited_by,
            "created_at": invitation.created_at,
            "expires_at": invitation.expires_at,
            "updated_at": invitation.updated_at,
            "user_id": invitation.user_id,
        }
    )


def _invitation(item: Item) -> Invitation:
    values = plain(item)
    return Invitation(
        invitation_id=str(values["invitation_id"]),
        tenant_id=str(values["tenant_id"]),
        email=str(values["email"]),
        role=Role(values["role"]),
        secret_hash=str(values["secret_hash"]),
        status=InvitationStatus(values["status"]),
        invited_by=str(values["invited_by"]),
        created_at=str(values["created_at"]),
        expires_at=str(values["expires_at"]),
        updated_at=str(values["updated_at"]),
        user_id=None if values.get("user_id") is None else str(values["user_id"]),
    )
