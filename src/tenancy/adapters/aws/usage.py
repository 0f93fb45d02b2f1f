"""Usage and service keys on DynamoDB.

A usage record is one TransactWriteItems: the answer item for (tenant, idempotency key), put on
the condition that it is new, and an UpdateItem of the tenant's `usage` map whose
ConditionExpression holds the quota. DynamoDB's conditions compare but do not add, so the
quota is written as "the level is at most the limit minus the delta", with the limit as read
(the condition also requires it unchanged): no read decides a write, the condition does. A
refused update is then read again, to say why (no tenant, no access) or to judge the change
again on what is there now: the quota refuses it (its answer kept too), or it is written anew.

The `usage-answers` table (key `tenant_id`, `idempotency_key`) expires answers by TTL
(`expires_at`); the `service-keys` table is keyed by the key's `name`.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tenancy.adapters.aws._errors import aws_errors
from tenancy.adapters.aws._items import Item, attribute, plain, tenant_from_item, usage_map
from tenancy.adapters.aws._pages import scan_pages
from tenancy.adapters.aws._transactions import CONDITION_REFUSED, transact
from tenancy.domain.clock import parse_timestamp
from tenancy.domain.model import Tenant, TenantStatus, Usage
from tenancy.domain.plans import Limits
from tenancy.domain.service_keys import ServiceKey
from tenancy.domain.usage import Metric, UsageChange, UsageOutcome, refusal_reason, usage_in_period
from tenancy.errors import (
    InvalidInputError,
    ItemAlreadyExistsError,
    NotFoundError,
    TenantInactiveError,
    TransientError,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["DynamoServiceKeyStore", "DynamoUsageStore"]

ANSWER_LIFETIME_SECONDS = 7 * 24 * 3600
_WITH_ACCESS = tuple(sorted(status.value for status in TenantStatus if status.has_access))
_ATTEMPTS = 8  # writes of one record refused because the tenant moved under it
# A replay that finds its answer kept without the usage waits this long, in all, for its writer
# to keep it (a few milliseconds after the write; a writer that died never does).
_ANSWER_WAITS = (0.02, 0.04, 0.08, 0.16, 0.32, 0.64)


class DynamoUsageStore:
    def __init__(self, client: DynamoDBClient, *, tenants_table: str, answers_table: str) -> None:
        self._client = client
        self._tenants = tenants_table
        self._answers = answers_table

    def record(self, tenant: Tenant, change: UsageChange, period_start: str, at: str) -> UsageOutcome:
        kept = self._answer(tenant.tenant_id, change.idempotency_key)
        if kept is not None:
            return self._replayed(kept, tenant.tenant_id, change)
        current, fresh = tenant, False
        for attempt in range(_ATTEMPTS):
            used = _level(current.usage, change.metric, period_start)
            limit = change.metric.limit(current.limits)
            if not change.allowed(used, limit):
                if fresh:
                    return self._refused(current, change, period_start, at)
                current, fresh = self._accessible(tenant.tenant_id), True  # a refusal is judged on a fresh read
                continue
            update: Any = {"TableName": self._tenants, **_update(current, change, used, limit, period_start, at)}
            answer: Any = {
                "TableName": self._answers,
                "Item": _answer_item(tenant.tenant_id, change, at, applied=True),
                "ConditionExpression": "attribute_not_exists(idempotency_key)",
            }
            reasons = self._transact([{"Put": answer}, {"Update": update}])
            if reasons is None:
                return self._applied(tenant.tenant_id, change, period_start, at)
            if reasons[0] == CONDITION_REFUSED:  # the key was recorded meanwhile
                found = self._answer(tenant.tenant_id, change.idempotency_key)
                if found is not None:
                    return self._replayed(found, tenant.tenant_id, change)
            if "TransactionConflict" in reasons:
                time.sleep(0.01 * (attempt + 1))
            # The tenant was not as read (its usage, limit, period or status moved): judge again.
            current, fresh = self._accessible(tenant.tenant_id), True
        raise TransientError(f"usage of tenant {tenant.tenant_id} kept changing under its record")

    def _transact(self, items: list[Any]) -> list[str] | None:
        return transact(self._client, items, "recording usage")

    def correct(self, tenant_id: str, metric: Metric, value: int, period_start: str, at: str) -> Usage:
        names = {"#usage": "usage", "#field": metric.usage_field, "#updated_at": "updated_at"}
        values: dict[str, Any] = {":value": attribute(value), ":at": attribute(at)}
        expression = "SET #usage.#field = :value, #updated_at = :at"
        if metric is Metric.GENERATIONS:
            names["#period"] = "period_start"
            values[":period"] = attribute(period_start)
            expression += ", #usage.#period = :period"
        try:
            with aws_errors("correcting usage"):
                item = self._client.update_item(
                    TableName=self._tenants,
                    Key={"tenant_id": attribute(tenant_id)},
                    UpdateExpression=expression,
                    ConditionExpression="attribute_exists(tenant_id)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                )["Attributes"]
        except ItemAlreadyExistsError:
            raise NotFoundError(f"tenant {tenant_id} not found") from None
        return tenant_from_item(item).usage

    def forget_answers(self, before: str) -> int:
        # TTL expires answers on its own; this drops the older ones now (the lifecycle run calls it).
        forgotten = 0
        for page in scan_pages(
            self._client,
            {
                "TableName": self._answers,
                "FilterExpression": "created_at < :before",
                "ExpressionAttributeValues": {":before": attribute(before)},
                "ProjectionExpression": "tenant_id, idempotency_key",
            },
            "reading usage answers",
        ):
            for item in page:
                with aws_errors("forgetting a usage answer"):
                    self._client.delete_item(
                        TableName=self._answers,
                        Key={"tenant_id": item["tenant_id"], "idempotency_key": item["idempotency_key"]},
                    )
                forgotten += 1
        return forgotten

    def _answer(self, tenant_id: str, key: str) -> dict[str, Any] | None:
        with aws_errors("reading a usage answer"):
            item = self._client.get_item(
                TableName=self._answers,
                Key={"tenant_id": attribute(tenant_id), "idempotency_key": attribute(key)},
                ConsistentRead=True,
            ).get("Item")
        return plain(item) if item else None

    def _tenant(self, tenant_id: str) -> Tenant:
        with aws_errors("reading a tenant"):
            item = self._client.get_item(
                TableName=self._tenants, Key={"tenant_id": attribute(tenant_id)}, ConsistentRead=True
            ).get("Item")
        if item is None:
            raise NotFoundError(f"tenant {tenant_id} not found")
        return tenant_from_item(item)

    def _applied(self, tenant_id: str, change: UsageChange, period_start: str, at: str) -> UsageOutcome:
        """The usage after the write (read at once: it may include records made meanwhile), kept
        with the answer so a repeat of the key reports it."""
        after = self._tenant(tenant_id)
        usage = usage_in_period(after.usage, period_start)
        with aws_errors("keeping a usage answer"):
            self._client.update_item(
                TableName=self._answers,
                Key={"tenant_id": attribute(tenant_id), "idempotency_key": attribute(change.idempotency_key)},
                UpdateExpression="SET #usage = :usage, #limits = :limits",
                ExpressionAttributeNames={"#usage": "usage", "#limits": "limits"},
                ExpressionAttributeValues={":usage": attribute(usage_map(usage)), ":limits": _limits(after.limits)},
            )
        return UsageOutcome(tenant_id, change, True, usage, after.limits, at)

    def _accessible(self, tenant_id: str) -> Tenant:
        """The tenant read now, if it has access (else NotFoundError, TenantInactiveError)."""
        now = self._tenant(tenant_id)
        reason = refusal_reason(now.status)
        if reason is not None:
            raise TenantInactiveError(now.status.value, reason)
        return now

    def _refused(self, tenant: Tenant, change: UsageChange, period_start: str, at: str) -> UsageOutcome:
        reason = refusal_reason(tenant.status)
        if reason is not None:
            raise TenantInactiveError(tenant.status.value, reason)
        usage = usage_in_period(tenant.usage, period_start)
        item = _answer_item(tenant.tenant_id, change, at, applied=False)
        item["usage"] = attribute(usage_map(usage))
        item["limits"] = _limits(tenant.limits)
        try:
            with aws_errors("keeping a usage answer"):
                self._client.put_item(
                    TableName=self._answers, Item=item, ConditionExpression="attribute_not_exists(idempotency_key)"
                )
        except ItemAlreadyExistsError:
            found = self._answer(tenant.tenant_id, change.idempotency_key)
            if found is not None:
                return self._replayed(found, tenant.tenant_id, change)
        return UsageOutcome(tenant.tenant_id, change, False, usage, tenant.limits, at)

    def _replayed(self, kept: dict[str, Any], tenant_id: str, change: UsageChange) -> UsageOutcome:
        if kept["fingerprint"] != change.fingerprint:
            raise InvalidInputError(f"idempotency key {change.idempotency_key!r} was used for a different usage record")
        if "usage" not in kept:
            kept = self._kept_in_full(tenant_id, change.idempotency_key, kept)
        if "usage" in kept:
            usage = _usage(kept["usage"])
            limits = _limits_from(kept["limits"])
        else:  # the writer stopped between the write and keeping its answer: the usage as it is now
            now = self._tenant(tenant_id)
            usage, limits = now.usage, now.limits
        return UsageOutcome(tenant_id, change, bool(kept["applied"]), usage, limits, kept["created_at"], replayed=True)


    def _kept_in_full(self, tenant_id: str, key: str, kept: dict[str, Any]) -> dict[str, Any]:
        """The answer once its writer has kept the usage with it. A replay that comes between the
        write and that waits, so that it answers what the first answer said, not the usage as it
        is by then; after a writer that died, `kept` as it was."""
        for pause in _ANSWER_WAITS:
            time.sleep(pause)
            found = self._answer(tenant_id, key)
            if found is not None and "usage" in found:
                return found
        return kept


def _level(usage: Usage, metric: Metric, period_start: str) -> int:
    return metric.used(usage_in_period(usage, period_start))




def _update(tenant: Tenant, change: UsageChange, used: int, limit: int, period_start: str, at: str) -> dict[str, Any]:
    """The tenant's UpdateItem: the change, on the conditions that make it the one `allowed` judged."""
    metric = change.metric
    names = {
        "#status": "status",
        "#usage": "usage",
        "#field": metric.usage_field,
        "#limits": "limits",
        "#limit": metric.limit_field,
        "#updated_at": "updated_at",
    }
    values: dict[str, Any] = {":at": attribute(at), ":limit": attribute(limit)}
    for index, status in enumerate(_WITH_ACCESS):
        values[f":access{index}"] = attribute(status)
    access = ", ".join(f":access{index}" for index in range(len(_WITH_ACCESS)))
    conditions = [f"#status IN ({access})", "#limits.#limit = :limit"]
    sets = ["#updated_at = :at"]
    new_period = metric is Metric.GENERATIONS and tenant.usage.period_start != period_start
    if metric is Metric.GENERATIONS:
        names["#period"] = "period_start"
        values[":period"] = attribute(period_start)
        sets.append("#usage.#period = :period")
        if new_period:
            # The period's first record: its count starts from zero, once (the next one sees the period).
            conditions.append("(attribute_not_exists(#usage.#period) OR #usage.#period <> :period)")
        else:
            conditions.append("#usage.#period = :period")
    after = change.result(used)
    if new_period or change.absolute:
        values[":after"] = attribute(after)
        sets.append("#usage.#field = :after")
        if not new_period and after > limit:  # allowed only as a lowering: the level must still be above
            values[":after_floor"] = attribute(after)
            conditions.append("#usage.#field >= :after_floor")
    elif change.amount >= 0:
        values[":delta"] = attribute(change.amount)
        values[":ceiling"] = attribute(limit - change.amount)
        sets.append("#usage.#field = #usage.#field + :delta")
        conditions.append("#usage.#field <= :ceiling")
    elif used >= -change.amount:
        values[":delta"] = attribute(change.amount)
        values[":floor"] = attribute(-change.amount)
        sets.append("#usage.#field = #usage.#field + :delta")
        conditions.append("#usage.#field >= :floor")
    else:  # more taken away than there is: down to zero, if it is still below what is taken away
        values[":zero"] = attribute(0)
        values[":floor"] = attribute(-change.amount)
        sets.append("#usage.#field = :zero")
        conditions.append("#usage.#field < :floor")
    return {
        "Key": {"tenant_id": attribute(tenant.tenant_id)},
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _answer_item(tenant_id: str, change: UsageChange, at: str, *, applied: bool) -> Item:
    expires = int(parse_timestamp(at).timestamp()) + ANSWER_LIFETIME_SECONDS
    return {
        "tenant_id": attribute(tenant_id),
        "idempotency_key": attribute(change.idempotency_key),
        "fingerprint": attribute(change.fingerprint),
        "applied": attribute(applied),
        "created_at": attribute(at),
        "expires_at": attribute(expires),
    }


def _limits(limits: Limits) -> Any:
    return attribute(
        {
            "max_sites": limits.max_sites,
            "max_generations_per_month": limits.max_generations_per_month,
            "max_storage_mb": limits.max_storage_mb,
            "custom_domain_allowed": limits.custom_domain_allowed,
        }
    )


def _integer(value: object) -> int:
    return int(value) if isinstance(value, Decimal | int) else 0


def _usage(values: dict[str, Any]) -> Usage:
    period = values.get("period_start")
    return Usage(
        sites_count=_integer(values.get("sites_count")),
        generations_this_month=_integer(values.get("generations_this_month")),
        storage_used_mb=_integer(values.get("storage_used_mb")),
        period_start=period if isinstance(period, str) else None,
    )


def _limits_from(values: dict[str, Any]) -> Limits:
    return Limits(
        max_sites=_integer(values.get("max_sites")),
        max_generations_per_month=_integer(values.get("max_generations_per_month")),
        max_storage_mb=_integer(values.get("max_storage_mb")),
        custom_domain_allowed=bool(values.get("custom_domain_allowed")),
    )


class DynamoServiceKeyStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def create(self, key: ServiceKey) -> None:
        item: Item = {
            "name": attribute(key.name),
            "key_hash": attribute(key.key_hash),
            "created_at": attribute(key.created_at),
        }
        if key.revoked_at is not None:
            item["revoked_at"] = attribute(key.revoked_at)
        try:
            with aws_errors("creating a service key"):
                self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(#n)",
                                      ExpressionAttributeNames={"#n": "name"})  # fmt: skip
        except ItemAlreadyExistsError:
            raise ItemAlreadyExistsError(f"a service key named {key.name} exists") from None

    def get(self, name: str) -> ServiceKey | None:
        with aws_errors("reading a service key"):
            item = self._client.get_item(TableName=self._table, Key={"name": attribute(name)}, ConsistentRead=True).get(
                "Item"
            )
        return _key(item) if item else None

    def all(self) -> list[ServiceKey]:
        keys = [
            _key(item)
            for page in scan_pages(self._client, {"TableName": self._table}, "reading service keys")
            for item in page
        ]
        return sorted(keys, key=lambda key: key.name)

    def revoke(self, name: str, at: str) -> bool:
        try:
            with aws_errors("revoking a service key"):
                self._client.update_item(
                    TableName=self._table,
                    Key={"name": attribute(name)},
                    UpdateExpression="SET revoked_at = :at",
                    ConditionExpression="attribute_exists(#n) AND attribute_not_exists(revoked_at)",
                    ExpressionAttributeNames={"#n": "name"},
                    ExpressionAttributeValues={":at": attribute(at)},
                )
        except ItemAlreadyExistsError:
            return False
        return True


def _key(item: Item) -> ServiceKey:
    values = plain(item)
    revoked = values.get("revoked_at")
    revoked_at = None if revoked is None else str(revoked)
    return ServiceKey(str(values["name"]), str(values["key_hash"]), str(values["created_at"]), revoked_at)
