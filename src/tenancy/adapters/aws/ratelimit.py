"""Rate-limit counters on DynamoDB: one item per key and window, counted with an atomic ADD and
removed by the table's TTL once the window is over."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenancy.adapters.aws._errors import aws_errors
from tenancy.errors import ItemAlreadyExistsError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from tenancy.ports import Clock

__all__ = ["DynamoRateLimiter"]


class DynamoRateLimiter:
    def __init__(self, client: DynamoDBClient, table: str, *, clock: Clock) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    def hit(self, key: str, *, window_seconds: int) -> int:
        window = self._window(window_seconds)
        with aws_errors(f"counting {key}"):
            response = self._client.update_item(
                TableName=self._table,
                Key={"limit_key": {"S": f"{key}#{window}"}},
                UpdateExpression="ADD #count :one SET expires_at = :expires",
                ExpressionAttributeNames={"#count": "count"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":expires": {"N": str((window + 2) * window_seconds)},
                },
                ReturnValues="UPDATED_NEW",
            )
        return int(response["Attributes"]["count"]["N"])

    def count(self, key: str, *, window_seconds: int) -> int:
        with aws_errors(f"reading {key}"):
            item = self._client.get_item(
                TableName=self._table,
                Key={"limit_key": {"S": f"{key}#{self._window(window_seconds)}"}},
                ConsistentRead=True,
            ).get("Item")
        return int(item["count"]["N"]) if item else 0

    def reset(self, key: str, *, window_seconds: int) -> None:
        with aws_errors(f"resetting {key}"):
            self._client.delete_item(
                TableName=self._table, Key={"limit_key": {"S": f"{key}#{self._window(window_seconds)}"}}
            )

    def release(self, key: str, *, window_seconds: int) -> None:
        try:
            with aws_errors(f"releasing {key}"):
                self._client.update_item(
                    TableName=self._table,
                    Key={"limit_key": {"S": f"{key}#{self._window(window_seconds)}"}},
                    UpdateExpression="ADD #count :minus_one",
                    ConditionExpression="#count > :zero",
                    ExpressionAttributeNames={"#count": "count"},
                    ExpressionAttributeValues={":minus_one": {"N": "-1"}, ":zero": {"N": "0"}},
                )
        except ItemAlreadyExistsError:
            return  # the condition failed: nothing counted in this window, nothing to take back

    def _window(self, window_seconds: int) -> int:
        return int(self._clock.now().timestamp() // window_seconds)
