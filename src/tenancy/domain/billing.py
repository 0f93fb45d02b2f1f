"""Recurring billing's vocabulary: PayFast's billing frequencies, a subscription as Tenancy keeps
it beside its tenant (with its billing history), and a subscription as PayFast's API reports it.

A subscription's paid-through date is always computed from its anchor (the first billing date)
and the number of periods paid, never by adding a month to the last date: the 31st of January
paid three times is paid through the 30th of April, not the 28th (no drift through February)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from enum import IntEnum, StrEnum

__all__ = [
    "BillingEntry",
    "BillingKind",
    "Frequency",
    "PayfastSubscription",
    "Subscription",
    "SubscriptionFigures",
    "SubscriptionStatus",
    "add_months",
    "annual_cents",
    "cents",
]


class Frequency(IntEnum):
    """PayFast's `frequency` codes (the checkout form and the subscription API)."""

    MONTHLY = 3
    QUARTERLY = 4
    BIANNUALLY = 5
    ANNUALLY = 6

    @property
    def months(self) -> int:
        return {3: 1, 4: 3, 5: 6, 6: 12}[self.value]

    @property
    def period_word(self) -> str:
        """The period as a price is said: "R299.00 / month"."""
        return {3: "month", 4: "quarter", 5: "half-year", 6: "year"}[self.value]

    @classmethod
    def named(cls, name: str) -> Frequency:
        """A frequency by its name in the plan catalogue ("monthly", "annually"...)."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            known = ", ".join(member.name.lower() for member in cls)
            raise ValueError(f"unknown billing frequency {name!r} (known: {known})") from None


def add_months(anchor: date, months: int) -> date:
    """`anchor` moved on by whole months, the day kept where the month has it, else the month's last."""
    month_index = anchor.month - 1 + months
    year, month = anchor.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(anchor.day, calendar.monthrange(year, month)[1]))


def cents(amount: Decimal) -> int:
    """Rands and cents as PayFast's API counts them: 299.00 -> 29900."""
    return int((amount * 100).to_integral_exact())


class SubscriptionStatus(StrEnum):
    """The subscription's own state (the tenant's status follows it)."""

    ACTIVE = "active"
    CANCELLING = "cancelling"  # cancelled at PayFast; access until paid_through
    CANCELLED = "cancelled"


class BillingKind(StrEnum):
    FIRST_CHARGE = "first_charge"
    RENEWAL = "renewal"
    CANCELLATION = "cancellation"
    PLAN_CHANGE = "plan_change"


@dataclass(frozen=True, slots=True)
class BillingEntry:
    """One line of a tenant's billing history. A charge carries PayFast's payment id, the amount
    and its invoice number; a cancellation or a plan change carries what happened in `note`."""

    kind: BillingKind
    at: str  # when Tenancy applied it (contract timestamp)
    pf_payment_id: str | None = None
    amount: Decimal | None = None
    invoice_number: str | None = None
    plan: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    """A tenant's PayFast subscription as Tenancy keeps it, beside the tenant record.

    `transaction_id` is the checkout's m_payment_id, which every ITN of the subscription repeats;
    `periods_paid` counts the charges applied since `billing_date` (the anchor), so
    `paid_through` is always `billing_date` + periods_paid periods. `version` grows by one with
    every write: a store writes a subscription only over the version it was read at."""

    tenant_id: str
    token: str
    transaction_id: str
    plan: str
    frequency: Frequency
    recurring_amount: Decimal
    billing_date: date
    periods_paid: int
    status: SubscriptionStatus
    created_at: str
    updated_at: str
    pending_plan: str | None = None
    history: tuple[BillingEntry, ...] = field(default=())
    version: int = 0

    @property
    def paid_through(self) -> date:
        return add_months(self.billing_date, self.periods_paid * self.frequency.months)

    @property
    def next_billing_date(self) -> date | None:
        """The next charge PayFast will make, or None once cancelled."""
        return self.paid_through if self.status is SubscriptionStatus.ACTIVE else None

    def has_payment(self, pf_payment_id: str) -> bool:
        return any(entry.pf_payment_id == pf_payment_id for entry in self.history)

    def charges(self) -> int:
        return sum(1 for entry in self.history if entry.kind in {BillingKind.FIRST_CHARGE, BillingKind.RENEWAL})

    def evolve(self, updated_at: str, **changes: object) -> Subscription:
        """A copy with `changes`, stamped `updated_at` (the version is the store's to move)."""
        return replace(self, updated_at=updated_at, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SubscriptionFigures:
    """The business in a few numbers, for the console: subscriptions by status, monthly recurring
    revenue (the active subscriptions' recurring amounts, each as a month's worth), and the
    renewals and cancellations applied since a moment (a week ago, on the dashboard)."""

    by_status: dict[SubscriptionStatus, int]
    monthly_recurring_revenue: Decimal
    renewals: int
    cancellations: int

    @property
    def active(self) -> int:
        return self.by_status.get(SubscriptionStatus.ACTIVE, 0)


def annual_cents(subscription: Subscription) -> int:
    """The subscription's recurring amount as a year's worth, in cents (exact for every frequency)."""
    return cents(subscription.recurring_amount) * (12 // subscription.frequency.months)


@dataclass(frozen=True, slots=True)
class PayfastSubscription:
    """A subscription as PayFast's `fetch` reports it. `status_text` is ACTIVE, PAUSED or
    CANCELLED; `run_date` is the next charge (in the past when the last charge failed)."""

    token: str
    status_text: str
    amount_cents: int
    frequency: int
    cycles: int
    cycles_complete: int
    run_date: str
