"""Sign-in sessions on DynamoDB: one item per session, plus one item per user holding the time
before which that user's ID tokens no longer count. The table's TTL removes both once over."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenancy.adapters.aws._errors import aws_errors
from tenancy.domain.model import SessionKind, SignInSession
from tenancy.errors import ItemAlreadyExistsError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["DynamoSessionStore"]

_USER_PREFIX = "USER#"
# A user's token mark must outlive every ID token issued before it (Cognito allows up to a day).
_MARK_LIFETIME_SECONDS = 2 * 86_400


class DynamoSessionStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def create(self, session: SignInSession) -> None:
        item: dict[str, Any] = {
            "session_id": {"S": session.session_id},
            "secret_hash": {"S": session.secret_hash},
            "kind": {"S": session.kind.value},
            "username": {"S": session.username},
            "subject": {"S": session.subject},
            "roles": {"L": [{"S": role} for role in session.roles]},
            "created_at": {"N": str(session.created_at)},
            "expires_at": {"N": str(session.expires_at)},
        }
        if session.tenant_id is not None:
            item["tenant_id"] = {"S": session.tenant_id}
        if session.provider_refresh_token is not None:
            item["provider_refresh_token"] = {"S": session.provider_refresh_token}
        with aws_errors("creating a session"):
            self._client.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(session_id)"
            )

    def get(self, session_id: str) -> SignInSession | None:
        if session_id.startswith(_USER_PREFIX):
            return None
        with aws_errors("reading a session"):
            item = self._client.get_item(
                TableName=self._table, Key={"session_id": {"S": session_id}}, ConsistentRead=True
            ).get("Item")
        return _session(item) if item else None

    def rotate(self, session_id: str, *, expected_secret_hash: str, new_secret_hash: str) -> bool:
        try:
            with aws_errors("rotating a session"):
                self._client.update_item(
                    TableName=self._table,
                    Key={"session_id": {"S": session_id}},
                    UpdateExpression="SET secret_hash = :new",
                    ConditionExpression="secret_hash = :expected AND attribute_not_exists(revoked_at)",
                    ExpressionAttributeValues={
                        ":new": {"S": new_secret_hash},
                        ":expected": {"S": expected_secret_hash},
                    },
                )
        except ItemAlreadyExistsError:
            return False  # the condition failed: rotated already, or revoked
        return True

    def revoke(self, session_id: str, revoked_at: int) -> None:
        try:
            with aws_errors("revoking a session"):
                self._client.update_item(
                    TableName=self._table,
                    Key={"session_id": {"S": session_id}},
                    UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at) REMOVE provider_refresh_token",
                    ConditionExpression="attribute_exists(session_id)",
                    ExpressionAttributeValues={":at": {"N": str(revoked_at)}},
                )
        except ItemAlreadyExistsError:
            return  # no such session: nothing to end

    def revoke_user(self, username: str, revoked_at: int) -> int:
        ended = 0
        for session_id in self._live_session_ids(username):
            self.revoke(session_id, revoked_at)
            ended += 1
        return ended

    def set_tokens_not_before(self, username: str, not_before: int) -> None:
        try:
            with aws_errors("marking a user's tokens"):
                self._client.update_item(
                    TableName=self._table,
                    Key={"session_id": {"S": f"{_USER_PREFIX}{username}"}},
                    UpdateExpression="SET not_before = :mark, expires_at = :expires",
                    ConditionExpression="attribute_not_exists(not_before) OR not_before < :mark",
                    ExpressionAttributeValues={
                        ":mark": {"N": str(not_before)},
                        ":expires": {"N": str(not_before + _MARK_LIFETIME_SECONDS)},
                    },
                )
        except ItemAlreadyExistsError:
            return  # a later mark is there already: marks never move backwards

    def tokens_not_before(self, username: str) -> int | None:
        with aws_errors("reading a user's token mark"):
            item = self._client.get_item(
                TableName=self._table, Key={"session_id": {"S": f"{_USER_PREFIX}{username}"}}, ConsistentRead=True
            ).get("Item")
        return int(item["not_before"]["N"]) if item and "not_before" in item else None

    def _live_session_ids(self, username: str) -> list[str]:
        found: list[str] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "username-index",
            "KeyConditionExpression": "username = :username",
            "FilterExpression": "attribute_not_exists(revoked_at)",
            "ExpressionAttributeValues": {":username": {"S": username}},
            "ProjectionExpression": "session_id",
        }
        while True:
            with aws_errors("listing a user's sessions"):
                page = self._client.query(**query)
            found.extend(item["session_id"]["S"] for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _session(item: dict[str, Any]) -> SignInSession:
    return SignInSession(
        session_id=item["session_id"]["S"],
        secret_hash=item["secret_hash"]["S"],
        kind=SessionKind(item["kind"]["S"]),
        username=item["username"]["S"],
        subject=item["subject"]["S"],
        tenant_id=item["tenant_id"]["S"] if "tenant_id" in item else None,
        roles=tuple(role["S"] for role in item.get("roles", {}).get("L", [])),
        created_at=int(item["created_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        provider_refresh_token=item["provider_refresh_token"]["S"] if "provider_refresh_token" in item else None,
        revoked_at=int(item["revoked_at"]["N"]) if "revoked_at" in item else None,
    )
