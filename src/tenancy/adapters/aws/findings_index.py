"""The findings index on DynamoDB: the `findings` table, one item per purchase (`index_key`
"PURCHASE#<transaction id>"), one item of counts by finding (`index_key` "COUNTS", an attribute
per finding), the latest full audit (`index_key` "AUDIT") and the scheduled audit's claim
(`index_key` "AUDIT_CLAIM", held `until` a time). `finding-index` (finding,
changed_at) lists a finding's purchases, newest first; only purchase items carry `finding`.

An entry and the counts change in one TransactWriteItems whose condition is the finding the
entry had when read, so two writers of the same purchase cannot both move the counts from the
same finding: the loser reads again and moves them from the winner's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from tenancy.adapters.aws._errors import CONDITION_FAILED, aws_errors, error_code
from tenancy.adapters.aws._items import attribute
from tenancy.domain.model import AuditRun, IndexedPurchase
from tenancy.errors import TransientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

__all__ = ["FINDING_INDEX", "DynamoFindingsIndex"]

FINDING_INDEX = "finding-index"
_PURCHASE = "PURCHASE#"
_COUNTS = "COUNTS"
_AUDIT = "AUDIT"
_AUDIT_CLAIM = "AUDIT_CLAIM"
_ATTEMPTS = 8
_BATCH_GET = 100  # BatchGetItem's limit of keys per request
_OPTIONAL = ("email", "tenant_id", "job_status")
_RACES = frozenset({CONDITION_FAILED, "TransactionCanceledException"})


class DynamoFindingsIndex:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def put(self, entry: IndexedPurchase) -> None:
        for _ in range(_ATTEMPTS):
            before = self.get(entry.transaction_id)
            if self._replace(entry, before.finding if before else None):
                return
        raise TransientError(f"the findings index entry of {entry.transaction_id} kept changing while written")

    def _replace(self, entry: IndexedPurchase, old: str | None) -> bool:
        """One conditional write from `old`; False when another writer changed the entry first."""
        put: dict[str, Any] = {"TableName": self._table, "Item": _item(entry)}
        if old is None:
            put["ConditionExpression"] = "attribute_not_exists(index_key)"
        else:
            put["ConditionExpression"] = "finding = :old"
            put["ExpressionAttributeValues"] = {":old": attribute(old)}
        items: list[TransactWriteItemTypeDef] = [{"Put": cast("Any", put)}]
        if old != entry.finding:
            moves = {"#new": entry.finding} | ({"#old": old} if old is not None else {})
            expression = "ADD #new :one" + (", #old :minus" if old is not None else "")
            values = {":one": attribute(1)} | ({":minus": attribute(-1)} if old is not None else {})
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {"index_key": attribute(_COUNTS)},
                        "UpdateExpression": expression,
                        "ExpressionAttributeNames": moves,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        with aws_errors("indexing a finding"):
            try:
                if len(items) == 1:
                    self._client.put_item(**put)
                else:
                    self._client.transact_write_items(TransactItems=items)
            except ClientError as error:
                # The condition failed (another writer changed the entry since it was read) or the
                # transaction met another on the same items: read again and retry.
                if error_code(error) in _RACES:
                    return False
                raise
        return True

    def get(self, transaction_id: str) -> IndexedPurchase | None:
        with aws_errors("reading the findings index"):
            item = self._client.get_item(
                TableName=self._table, Key={"index_key": attribute(_PURCHASE + transaction_id)}, ConsistentRead=True
            ).get("Item")
        return _entry(item) if item else None

    def get_many(self, transaction_ids: Sequence[str]) -> dict[str, IndexedPurchase]:
        wanted = list(dict.fromkeys(transaction_ids))
        found: dict[str, IndexedPurchase] = {}
        for start in range(0, len(wanted), _BATCH_GET):
            page = wanted[start : start + _BATCH_GET]
            keys: list[Mapping[str, Any]] = [{"index_key": attribute(_PURCHASE + each)} for each in page]
            while keys:
                with aws_errors("reading the findings index"):
                    response = self._client.batch_get_item(RequestItems={self._table: {"Keys": keys}})
                for item in response.get("Responses", {}).get(self._table, []):
                    entry = _entry(item)
                    found[entry.transaction_id] = entry
                unprocessed: Any = response.get("UnprocessedKeys", {})
                keys = list(unprocessed.get(self._table, {}).get("Keys", []))
        return found

    def count_by_finding(self) -> dict[str, int]:
        with aws_errors("reading the findings counts"):
            item = self._client.get_item(
                TableName=self._table, Key={"index_key": attribute(_COUNTS)}, ConsistentRead=True
            ).get("Item", {})
        return {name: int(value["N"]) for name, value in item.items() if "N" in value and int(value["N"]) > 0}

    def with_finding(self, finding: str, limit: int = 100) -> list[IndexedPurchase]:
        found: list[IndexedPurchase] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": FINDING_INDEX,
            "KeyConditionExpression": "finding = :finding",
            "ExpressionAttributeValues": {":finding": attribute(finding)},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        while len(found) < limit:
            with aws_errors("listing the findings index"):
                page = self._client.query(**request)
            found.extend(_entry(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def without_job(self, excluding: Sequence[str], limit: int = 100) -> list[IndexedPurchase]:
        # One query per finding not excluded, filtered by DynamoDB to the entries with no job.
        found: list[IndexedPurchase] = []
        for finding in self._findings_counted(excluding):
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": FINDING_INDEX,
                "KeyConditionExpression": "finding = :finding",
                "FilterExpression": "attribute_not_exists(job_status)",
                "ExpressionAttributeValues": {":finding": attribute(finding)},
                "ScanIndexForward": False,
            }
            while True:
                with aws_errors("listing the findings index"):
                    page = self._client.query(**request)
                found.extend(_entry(item) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found.sort(key=lambda entry: (entry.changed_at, entry.transaction_id), reverse=True)
        return found[:limit]

    def _findings_counted(self, excluding: Sequence[str]) -> list[str]:
        """The findings some purchase has now (the counts item's), less those excluded."""
        return [finding for finding in self.count_by_finding() if finding not in excluding]

    def record_audit(self, run: AuditRun) -> None:
        item = {
            "index_key": attribute(_AUDIT),
            "started_at": attribute(run.started_at),
            "finished_at": attribute(run.finished_at),
            "trigger": attribute(run.trigger),
            "since": attribute(run.since),
            "purchases": attribute(run.purchases),
            "findings": attribute(run.findings),
        }
        with aws_errors("recording the audit"):
            self._client.put_item(TableName=self._table, Item=item)

    def claim_audit(self, now: str, until: str) -> bool:
        with aws_errors("claiming the scheduled audit"):
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={"index_key": attribute(_AUDIT_CLAIM), "until": attribute(until)},
                    ConditionExpression="attribute_not_exists(index_key) OR #until <= :now",
                    ExpressionAttributeNames={"#until": "until"},
                    ExpressionAttributeValues={":now": attribute(now)},
                )
            except ClientError as error:
                if error_code(error) == CONDITION_FAILED:
                    return False
                raise
        return True

    def last_audit(self) -> AuditRun | None:
        with aws_errors("reading the last audit"):
            item = self._client.get_item(
                TableName=self._table, Key={"index_key": attribute(_AUDIT)}, ConsistentRead=True
            ).get("Item")
        if not item:
            return None
        return AuditRun(
            started_at=item["started_at"]["S"],
            finished_at=item["finished_at"]["S"],
            trigger=item["trigger"]["S"],
            since=item["since"]["S"],
            purchases=int(item["purchases"]["N"]),
            findings=int(item["findings"]["N"]),
        )


def _item(entry: IndexedPurchase) -> dict[str, Any]:
    item = {
        "index_key": attribute(_PURCHASE + entry.transaction_id),
        "transaction_id": attribute(entry.transaction_id),
        "finding": attribute(entry.finding),
        "classified_at": attribute(entry.classified_at),
        "changed_at": attribute(entry.changed_at),
    }
    for name in _OPTIONAL:
        value = getattr(entry, name)
        if value:  # an index key is never empty, and an empty attribute says nothing
            item[name] = attribute(value)
    return item


def _entry(item: Mapping[str, Any]) -> IndexedPurchase:
    return IndexedPurchase(
        transaction_id=item["transaction_id"]["S"],
        finding=item["finding"]["S"],
        classified_at=item["classified_at"]["S"],
        changed_at=item["changed_at"]["S"],
        **{name: item[name]["S"] if name in item else None for name in _OPTIONAL},
    )
