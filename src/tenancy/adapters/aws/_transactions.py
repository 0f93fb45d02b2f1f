"""TransactWriteItems with the refusal as data: a store that writes several items at once reads
which of them failed their condition to say why (a seat taken, a key answered before)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tenancy.adapters.aws._errors import aws_errors, error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["CONDITION_REFUSED", "transact"]

CONDITION_REFUSED = "ConditionalCheckFailed"  # a cancellation reason's code


def transact(client: DynamoDBClient, items: list[Any], doing: str) -> list[str] | None:
    """None once written; refused, each item's cancellation reason code, in order ("" for an item
    that did not refuse). Any other failure raises as `aws_errors` maps it."""
    with aws_errors(doing):
        try:
            client.transact_write_items(TransactItems=items)
        except ClientError as error:
            reasons = error.response.get("CancellationReasons", [])
            if error_code(error) != "TransactionCanceledException" or not reasons:
                raise
            return [str(reason.get("Code") or "") for reason in reasons]
    return None
