"""A subscription as both backends store it: one flat mapping of strings and integers (amounts
as exact decimal strings, dates as ISO text), with its billing history as a list of mappings.
The SQLite store keeps it as JSON, the DynamoDB store as an item; one codec keeps them alike."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from tenancy.domain.billing import BillingEntry, BillingKind, Frequency, Subscription, SubscriptionStatus

__all__ = ["entry_from_mapping", "subscription_from_mapping", "subscription_to_mapping"]


def subscription_to_mapping(subscription: Subscription) -> dict[str, Any]:
    """Every field but `version`, which each store keeps in its own way."""
    mapping: dict[str, Any] = {
        "tenant_id": subscription.tenant_id,
        "token": subscription.token,
        "transaction_id": subscription.transaction_id,
        "plan": subscription.plan,
        "frequency": int(subscription.frequency),
        "recurring_amount": f"{subscription.recurring_amount:.2f}",
        "billing_date": subscription.billing_date.isoformat(),
        "periods_paid": subscription.periods_paid,
        "paid_through": subscription.paid_through.isoformat(),  # for an operator reading the raw item
        "status": subscription.status.value,
        "created_at": subscription.created_at,
        "updated_at": subscription.updated_at,
        "history": [_entry_to_mapping(entry) for entry in subscription.history],
    }
    if subscription.pending_plan:
        mapping["pending_plan"] = subscription.pending_plan
    return mapping


def subscription_from_mapping(mapping: Mapping[str, Any], version: int) -> Subscription:
    return Subscription(
        tenant_id=str(mapping["tenant_id"]),
        token=str(mapping["token"]),
        transaction_id=str(mapping["transaction_id"]),
        plan=str(mapping["plan"]),
        frequency=Frequency(int(mapping["frequency"])),
        recurring_amount=Decimal(str(mapping["recurring_amount"])),
        billing_date=date.fromisoformat(str(mapping["billing_date"])),
        periods_paid=int(mapping["periods_paid"]),
        status=SubscriptionStatus(str(mapping["status"])),
        created_at=str(mapping["created_at"]),
        updated_at=str(mapping["updated_at"]),
        pending_plan=str(mapping["pending_plan"]) if mapping.get("pending_plan") else None,
        history=tuple(entry_from_mapping(entry) for entry in mapping.get("history", ())),
        version=version,
    )


def _entry_to_mapping(entry: BillingEntry) -> dict[str, Any]:
    mapping: dict[str, Any] = {"kind": entry.kind.value, "at": entry.at}
    if entry.pf_payment_id is not None:
        mapping["pf_payment_id"] = entry.pf_payment_id
    if entry.amount is not None:
        mapping["amount"] = f"{entry.amount:.2f}"
    if entry.invoice_number is not None:
        mapping["invoice_number"] = entry.invoice_number
    if entry.plan is not None:
        mapping["plan"] = entry.plan
    if entry.note:
        mapping["note"] = entry.note
    return mapping


def entry_from_mapping(mapping: Mapping[str, Any]) -> BillingEntry:
    amount = mapping.get("amount")
    return BillingEntry(
        kind=BillingKind(str(mapping["kind"])),
        at=str(mapping["at"]),
        pf_payment_id=str(mapping["pf_payment_id"]) if mapping.get("pf_payment_id") is not None else None,
        amount=Decimal(str(amount)) if amount is not None else None,
        invoice_number=str(mapping["invoice_number"]) if mapping.get("invoice_number") is not None else None,
        plan=str(mapping["plan"]) if mapping.get("plan") is not None else None,
        note=str(mapping.get("note", "")),
    )
