"""Subscriptions on DynamoDB: the `subscriptions` table, one item per tenant (key `tenant_id`)
holding the subscription and its billing history, found by PayFast's token (`token-index`) and by
the checkout's m_payment_id (`transaction-index`).

A token belongs to one tenant: beside each subscription an item keyed "TOKEN#<token>" names the
tenant that holds it, written in the same transaction as the subscription with the condition that
no other tenant holds it. The subscription itself is written on the condition that its `version`
is the one it was read at, so of two writers that read the same version only one wins."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from tenancy.adapters.aws._errors import aws_errors, error_code
from tenancy.adapters.aws._items import attribute, plain
from tenancy.adapters.subscription_codec import subscription_from_mapping, subscription_to_mapping
from tenancy.domain.billing import (
    BillingKind,
    Subscription,
    SubscriptionFigures,
    SubscriptionStatus,
    annual_cents,
)
from tenancy.errors import ConflictError, ItemAlreadyExistsError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["TOKEN_INDEX", "TRANSACTION_INDEX", "DynamoSubscriptionStore", "refused", "subscription_writes"]

TOKEN_INDEX = "token-index"  # noqa: S105 - an index name
TRANSACTION_INDEX = "transaction-index"
_TOKEN_CLAIM = "TOKEN#"  # noqa: S105 - a key prefix
_SUBSCRIPTION = "subscription"
_BATCH_GET = 100  # BatchGetItem's limit of keys per request


class DynamoSubscriptionStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def get(self, tenant_id: str) -> Subscription | None:
        with aws_errors("reading a subscription"):
            item = self._client.get_item(
                TableName=self._table, Key={"tenant_id": attribute(tenant_id)}, ConsistentRead=True
            ).get("Item")
        return _subscription(item) if item and "token" in item else None

    def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Subscription]:
        found: dict[str, Subscription] = {}
        wanted = list(dict.fromkeys(tenant_ids))
        for start in range(0, len(wanted), _BATCH_GET):
            keys: list[Any] = [{"tenant_id": attribute(tenant_id)} for tenant_id in wanted[start : start + _BATCH_GET]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                with aws_errors("reading subscriptions"):
                    response = self._client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table, []):
                    if "token" in item:
                        subscription = _subscription(item)
                        found[subscription.tenant_id] = subscription
                request = cast("dict[str, Any]", response.get("UnprocessedKeys") or {})
        return found

    def find_by_token(self, token: str) -> Subscription | None:
        return self._by_index(TOKEN_INDEX, "token", token)

    def find_by_transaction(self, transaction_id: str) -> Subscription | None:
        return self._by_index(TRANSACTION_INDEX, "transaction_id", transaction_id)

    def save(self, subscription: Subscription) -> Subscription:
        with aws_errors("writing a subscription"):
            try:
                self._client.transact_write_items(TransactItems=subscription_writes(self._table, subscription))
            except ClientError as error:
                if error_code(error) != "TransactionCanceledException":
                    raise
                refused(self._client, self._table, subscription)
        return replace(subscription, version=subscription.version + 1)

    def scan(self, batch_size: int = 1000) -> Iterator[list[Subscription]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Limit": batch_size,
            "ConsistentRead": True,
            "FilterExpression": "item_type = :subscription",
            "ExpressionAttributeValues": {":subscription": attribute(_SUBSCRIPTION)},
        }
        while True:
            with aws_errors("scanning subscriptions"):
                page = self._client.scan(**request)
            if page["Items"]:
                yield [_subscription(item) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def figures(self, since: str) -> SubscriptionFigures:
        # A scan: DynamoDB keeps no sums. One page of the console costs a read of every
        # subscription; a counts item kept by each write (as the findings index keeps one) is
        # the step when subscriptions number in the hundreds of thousands.
        by_status: dict[SubscriptionStatus, int] = {}
        annual = renewals = cancellations = 0
        for page in self.scan():
            for subscription in page:
                by_status[subscription.status] = by_status.get(subscription.status, 0) + 1
                if subscription.status is SubscriptionStatus.ACTIVE:
                    annual += annual_cents(subscription)
                for entry in subscription.history:
                    if entry.at >= since:
                        renewals += entry.kind is BillingKind.RENEWAL
                        cancellations += entry.kind is BillingKind.CANCELLATION
        return SubscriptionFigures(
            by_status=by_status,
            monthly_recurring_revenue=(Decimal(annual) / 100 / 12).quantize(Decimal("0.01")),
            renewals=renewals,
            cancellations=cancellations,
        )

    def _by_index(self, index: str, name: str, value: str) -> Subscription | None:
        # An index is read eventually consistently: the item it names is read again, consistently.
        with aws_errors(f"finding a subscription by {name}"):
            items = self._client.query(
                TableName=self._table,
                IndexName=index,
                KeyConditionExpression="#key = :value",
                ExpressionAttributeNames={"#key": name},
                ExpressionAttributeValues={":value": attribute(value)},
            )["Items"]
        tenant_ids = sorted(item["tenant_id"]["S"] for item in items if "S" in item["tenant_id"])
        for tenant_id in tenant_ids:
            found = self.get(tenant_id)
            if found is not None and getattr(found, name) == value:
                return found
        return None


def subscription_writes(table: str, subscription: Subscription) -> list[Any]:
    """The transaction items that save `subscription` over the version it was read at, with the
    claim on its token (a lifecycle commit writes them beside the tenant's)."""
    item = {name: attribute(value) for name, value in subscription_to_mapping(subscription).items()}
    item |= {"version": attribute(subscription.version + 1), "item_type": attribute(_SUBSCRIPTION)}
    put_subscription: dict[str, Any] = {"TableName": table, "Item": item}
    if subscription.version == 0:
        put_subscription["ConditionExpression"] = "attribute_not_exists(tenant_id)"
    else:
        put_subscription["ConditionExpression"] = "version = :read"
        put_subscription["ExpressionAttributeValues"] = {":read": attribute(subscription.version)}
    claim = {
        "TableName": table,
        "Item": {
            "tenant_id": attribute(_TOKEN_CLAIM + subscription.token),
            "owner": attribute(subscription.tenant_id),
            "item_type": attribute("token"),
        },
        "ConditionExpression": "attribute_not_exists(tenant_id) OR #owner = :me",
        "ExpressionAttributeNames": {"#owner": "owner"},
        "ExpressionAttributeValues": {":me": attribute(subscription.tenant_id)},
    }
    return [{"Put": put_subscription}, {"Put": claim}]


def refused(client: DynamoDBClient, table: str, subscription: Subscription) -> None:
    """Raises what refused a subscription's write: its token held by another tenant
    (ItemAlreadyExistsError), else a newer version (ConflictError)."""
    with aws_errors("reading a token's holder"):
        claim = client.get_item(
            TableName=table, Key={"tenant_id": attribute(_TOKEN_CLAIM + subscription.token)}, ConsistentRead=True
        ).get("Item")
    if claim is not None and claim["owner"].get("S") != subscription.tenant_id:
        raise ItemAlreadyExistsError(f"another tenant's subscription has the token of {subscription.tenant_id}'s")
    raise ConflictError(f"the subscription of {subscription.tenant_id} changed since it was read")


def _subscription(item: Mapping[str, Any]) -> Subscription:
    values = plain(item)
    return subscription_from_mapping(values, int(values["version"]))
