"""Records to DynamoDB items and back, in the shapes of shared/spec/data-contract.md and RB-001.

Type encoding is boto3's own (`TypeSerializer`/`TypeDeserializer`): ints are `N`, bools `BOOL`,
dicts `M`, lists `L`. Reading is strict on types, so a hand-made item with a number written as
a string is reported as breaking the contract instead of being half understood.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tenancy.domain.model import (
    Billing,
    JobStatus,
    PaymentRecord,
    PaymentVerdict,
    ProvisioningJob,
    RepairRecord,
    Step,
    Tenant,
    TenantStatus,
    Usage,
    UserRecord,
    UserStatus,
)
from tenancy.domain.plans import Limits
from tenancy.errors import PermanentError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]
else:
    Item = dict

__all__ = [
    "ACCEPTED_PREFIX",
    "ITN_ENTRY_TYPE",
    "ITN_PREFIX",
    "UNKNOWN_PAYMENT_ID",
    "Item",
    "accepted_marker_item",
    "attribute",
    "item_from",
    "job_from_item",
    "job_item",
    "ordered_id",
    "payment_from_item",
    "payment_item",
    "plain",
    "repair_from_item",
    "repair_item",
    "tenant_from_item",
    "tenant_item",
    "usage_map",
    "user_from_item",
    "user_item",
]

ITN_PREFIX = "ITN#"
ACCEPTED_PREFIX = "ACCEPTED#"
# The payments table's partition key cannot be empty: ITNs without a pf_payment_id (rejected
# garbage) share this partition, and the record's own value is kept in `substituted`.
UNKNOWN_PAYMENT_ID = "unknown"
# Only ITN entries carry `entry_type`, so the sparse `received-index` holds them and no markers.
ITN_ENTRY_TYPE = "ITN"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def attribute(value: object) -> AttributeValueTypeDef:
    """One Python value as a DynamoDB attribute value."""
    return _serializer.serialize(value)


def item_from(values: Mapping[str, object]) -> Item:
    """An item of the given attributes; None means "no attribute" (optional fields are omitted)."""
    return {name: attribute(value) for name, value in values.items() if value is not None}


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's attributes as Python values (numbers as Decimal)."""
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


_plain = plain


@contextmanager
def _contract(kind: str, key: object) -> Iterator[None]:
    """A stored item missing an attribute, or with a wrong type, will not read on a retry either."""
    try:
        yield
    except KeyError as error:
        raise PermanentError(f"{kind} item {key!r} does not match the data contract: no {error}") from None
    except (TypeError, ValueError) as error:
        raise PermanentError(f"{kind} item {key!r} does not match the data contract: {error}") from None


def _integer(values: Mapping[str, object], name: str) -> int:
    value = values[name]
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise TypeError(f"{name} should be an N holding an integer, not {value!r}")


def _boolean(values: Mapping[str, object], name: str) -> bool:
    value = values[name]
    if isinstance(value, bool):
        return value
    raise TypeError(f"{name} should be a BOOL, not {value!r}")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected an S, got {value!r}")


def _optional_text(values: Mapping[str, object], name: str) -> str | None:
    value = values.get(name)
    return None if value is None else _text(value)


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | set):
        raise TypeError(f"expected an L of S, got {value!r}")
    return tuple(_text(element) for element in value)


_id_lock = threading.Lock()
_last_id_time = 0


def ordered_id() -> str:
    """A UUIDv7 (RFC 9562) with the sub-millisecond clock in `rand_a`: unique, and in creation
    order as a string, so ids written in the same second still sort the way they were written."""
    global _last_id_time
    with _id_lock:
        nanoseconds = time.time_ns()
        milliseconds, rest = divmod(nanoseconds, 1_000_000)
        moment = (milliseconds << 12) | (rest * 4096 // 1_000_000)
        moment = max(moment, _last_id_time + 1)  # monotonic even if the clock stalls or steps back
        _last_id_time = moment
    value = (moment >> 12) << 80 | 0x7 << 76 | (moment & 0xFFF) << 64 | 0b10 << 62 | secrets.randbits(62)
    return str(uuid.UUID(int=value))


# Tenants (RB-001 4.3) -------------------------------------------------------------------------


def usage_map(usage: Usage) -> dict[str, object]:
    """The `usage` map: RB-001's three counts, and the period the generation count belongs to once known."""
    counts: dict[str, object] = {
        "sites_count": usage.sites_count,
        "generations_this_month": usage.generations_this_month,
        "storage_used_mb": usage.storage_used_mb,
    }
    if usage.period_start is not None:
        counts["period_start"] = usage.period_start
    return counts


def tenant_item(tenant: Tenant) -> Item:
    return item_from(
        {
            "tenant_id": tenant.tenant_id,
            "owner_user_id": tenant.owner_user_id,
            "name": tenant.name,
            "plan": tenant.plan,
            "status": tenant.status.value,
            "limits": {
                "max_sites": tenant.limits.max_sites,
                "max_generations_per_month": tenant.limits.max_generations_per_month,
                "max_storage_mb": tenant.limits.max_storage_mb,
                "custom_domain_allowed": tenant.limits.custom_domain_allowed,
            },
            "usage": usage_map(tenant.usage),
            "storage_prefix": tenant.storage_prefix,
            "billing": {
                "transaction_id": tenant.billing.transaction_id,
                "invoice_number": tenant.billing.invoice_number,
            },
            "created_at": tenant.created_at,
            "updated_at": tenant.updated_at,
        }
    )


def tenant_from_item(item: Mapping[str, Any]) -> Tenant:
    values = _plain(item)
    with _contract("tenants", values.get("tenant_id")):
        limits, usage, billing = values["limits"], values["usage"], values["billing"]
        return Tenant(
            tenant_id=_text(values["tenant_id"]),
            owner_user_id=_text(values["owner_user_id"]),
            name=_text(values["name"]),
            plan=_text(values["plan"]),
            status=TenantStatus(values["status"]),
            limits=Limits(
                max_sites=_integer(limits, "max_sites"),
                max_generations_per_month=_integer(limits, "max_generations_per_month"),
                max_storage_mb=_integer(limits, "max_storage_mb"),
                custom_domain_allowed=_boolean(limits, "custom_domain_allowed"),
            ),
            usage=Usage(
                sites_count=_integer(usage, "sites_count"),
                generations_this_month=_integer(usage, "generations_this_month"),
                storage_used_mb=_integer(usage, "storage_used_mb"),
                period_start=_optional_text(usage, "period_start"),
            ),
            storage_prefix=_text(values["storage_prefix"]),
            billing=Billing(_text(billing["transaction_id"]), _text(billing["invoice_number"])),
            created_at=_text(values["created_at"]),
            updated_at=_text(values["updated_at"]),
        )


# Users (RB-001 4.2) ---------------------------------------------------------------------------


def user_item(user: UserRecord) -> Item:
    return item_from(
        {
            "user_id": user.user_id,
            "tenant_id": user.tenant_id,
            "email": user.email.lower(),
            "role": user.role,
            "status": user.status.value,
            "created_at": user.created_at,
            "last_sign_in_at": user.last_sign_in_at,
        }
    )


def user_from_item(item: Mapping[str, Any]) -> UserRecord:
    values = _plain(item)
    with _contract("users", values.get("user_id")):
        return UserRecord(
            user_id=_text(values["user_id"]),
            tenant_id=_text(values["tenant_id"]),
            email=_text(values["email"]),
            role=_text(values["role"]),
            status=UserStatus(values["status"]),
            created_at=_text(values["created_at"]),
            last_sign_in_at=_optional_text(values, "last_sign_in_at"),
        )


# Provisioning journal ---------------------------------------------------------------------------


def job_item(job: ProvisioningJob) -> Item:
    """`completed_steps` is an L of S: it keeps the saga's order and may be empty (an SS can be
    neither); `attempts` is an N; the optional fields are absent while None."""
    return item_from(
        {
            "transaction_id": job.transaction_id,
            "tenant_id": job.tenant_id,
            "invoice_number": job.invoice_number,
            "email": job.email,
            "plan": job.plan,
            "tenant_name": job.tenant_name,
            "status": job.status.value,
            "pf_payment_id": job.pf_payment_id,
            "completed_steps": [step.value for step in job.completed_steps],
            "attempts": job.attempts,
            "owner_user_id": job.owner_user_id,
            "last_error": job.last_error,
            "review_reason": job.review_reason,
            "next_attempt_at": job.next_attempt_at,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "claim": job.claim,
            "returning": True if job.returning else None,  # absent for a new tenant's job
        }
    )


def job_from_item(item: Mapping[str, Any]) -> ProvisioningJob:
    values = _plain(item)
    with _contract("provisioning", values.get("transaction_id")):
        return ProvisioningJob(
            transaction_id=_text(values["transaction_id"]),
            tenant_id=_text(values["tenant_id"]),
            invoice_number=_text(values["invoice_number"]),
            email=_text(values["email"]),
            plan=_text(values["plan"]),
            tenant_name=_text(values["tenant_name"]),
            status=JobStatus(values["status"]),
            created_at=_text(values["created_at"]),
            updated_at=_text(values["updated_at"]),
            pf_payment_id=_optional_text(values, "pf_payment_id"),
            completed_steps=tuple(Step(step) for step in _texts(values.get("completed_steps", []))),
            attempts=_integer(values, "attempts") if "attempts" in values else 0,
            owner_user_id=_optional_text(values, "owner_user_id"),
            last_error=_optional_text(values, "last_error"),
            review_reason=_optional_text(values, "review_reason"),
            next_attempt_at=_optional_text(values, "next_attempt_at"),
            claim=_optional_text(values, "claim"),
            returning=values.get("returning") is True,
        )


# Payment ledger -------------------------------------------------------------------------------


def _indexable(values: dict[str, object], names: tuple[str, ...]) -> dict[str, object]:
    """DynamoDB refuses empty strings as key attributes (table or index): such values are left
    out of the indexed attribute and kept, as they were, in the `substituted` map."""
    substituted = {name: values[name] for name in names if values.get(name) == ""}
    for name in substituted:
        values[name] = None
    return substituted


def payment_item(payment: PaymentRecord, entry_key: str) -> Item:
    """One ITN: `fields` is an L of two-element Ls ([key, value], in arrival order), `reasons` an
    L of S; the optional fields are absent while None."""
    values: dict[str, object] = {
        "pf_payment_id": payment.pf_payment_id,
        "entry_key": entry_key,
        "entry_type": ITN_ENTRY_TYPE,
        "received_at": payment.received_at,
        "source_ip": payment.source_ip,
        "fields": [[key, value] for key, value in payment.fields],
        "verdict": payment.verdict.value,
        "reasons": list(payment.reasons),
        "transaction_id": payment.transaction_id,
        "payment_status": payment.payment_status,
        "email": payment.email,
        "plan": payment.plan,
        "amount_gross": payment.amount_gross,
        "token": payment.token,
    }
    substituted = _indexable(values, ("pf_payment_id", "transaction_id", "email"))
    if payment.pf_payment_id is None:
        substituted["pf_payment_id"] = None
    if values["pf_payment_id"] is None:
        values["pf_payment_id"] = UNKNOWN_PAYMENT_ID
    item = item_from(values)
    if substituted:
        item["substituted"] = attribute(substituted)
    return item


def accepted_marker_item(payment: PaymentRecord, entry_key: str) -> Item:
    """The dedupe marker of an accepted (pf_payment_id, payment_status). It has no transaction_id,
    email or entry_type, so no index ever shows it; it names the ITN entry it accepted."""
    return item_from(
        {
            "pf_payment_id": payment.pf_payment_id,
            "entry_key": ACCEPTED_PREFIX + (payment.payment_status or ""),
            "accepted_entry_key": entry_key,
            "accepted_at": payment.received_at,
        }
    )


def payment_from_item(item: Mapping[str, Any]) -> PaymentRecord:
    values = _plain(item)
    with _contract("payments", values.get("entry_key")):
        values.update(values.pop("substituted", {}))
        return PaymentRecord(
            received_at=_text(values["received_at"]),
            source_ip=_text(values["source_ip"]),
            fields=tuple((_text(key), _text(value)) for key, value in values["fields"]),
            verdict=PaymentVerdict(values["verdict"]),
            reasons=_texts(values.get("reasons", [])),
            pf_payment_id=_optional_text(values, "pf_payment_id"),
            transaction_id=_optional_text(values, "transaction_id"),
            payment_status=_optional_text(values, "payment_status"),
            email=_optional_text(values, "email"),
            plan=_optional_text(values, "plan"),
            amount_gross=_optional_text(values, "amount_gross"),
            token=_optional_text(values, "token"),
        )


# Repair trail -----------------------------------------------------------------------------------


def repair_item(entry: RepairRecord, repair_id: str) -> Item:
    """`before` and `after` are JSON strings (S), serialized exactly as the embedded trail does
    (`default=str`): the states hold floats, None and nested values that an M cannot take as
    they are (TypeSerializer refuses floats), and an operator reads them whole."""
    values: dict[str, object] = {
        "repair_id": repair_id,
        "at": entry.at,
        "operator": entry.operator,
        "transaction_id": entry.transaction_id,
        "tenant_id": entry.tenant_id,
        "email": entry.email,
        "finding": entry.finding,
        "actions": list(entry.actions),
        "before": json.dumps(entry.before, default=str),
        "after": json.dumps(entry.after, default=str),
        "outcome": entry.outcome,
    }
    substituted = _indexable(values, ("transaction_id", "tenant_id", "email"))
    item = item_from(values)
    if substituted:
        item["substituted"] = attribute(substituted)
    return item


def repair_from_item(item: Mapping[str, Any]) -> RepairRecord:
    values = _plain(item)
    with _contract("repairs", values.get("repair_id")):
        values.update(values.pop("substituted", {}))
        return RepairRecord(
            at=_text(values["at"]),
            operator=_text(values["operator"]),
            transaction_id=_optional_text(values, "transaction_id"),
            tenant_id=_optional_text(values, "tenant_id"),
            email=_optional_text(values, "email"),
            finding=_text(values["finding"]),
            actions=_texts(values.get("actions", [])),
            before=json.loads(_text(values["before"])),
            after=json.loads(_text(values["after"])),
            outcome=_text(values["outcome"]),
        )
