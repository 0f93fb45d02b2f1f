"""Entitlements: what a plan's limits allow, what a tenant has used, and the period a monthly
count runs over.

Three metrics are counted against the tenant's `limits` (RB-001 4.3's `usage` map): generations
(monthly, reset at each period start), sites and storage (whose truth lives in the Site Builder
application, so it may also set them). A tenant's usage period is its subscription's paid period
(from the last charge to the next), or the calendar month (UTC) for a once-off purchase. The
usage map remembers the period its generation count belongs to (`period_start`): the first
record of a new period starts the count from zero, in the same conditional write, so a period
is reset exactly once whoever records first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from tenancy.domain.billing import Subscription, add_months
from tenancy.domain.model import Tenant, TenantStatus, Usage
from tenancy.domain.plans import Limits

__all__ = [
    "WARNING_THRESHOLDS",
    "Entitlements",
    "Metric",
    "UsageChange",
    "UsageOutcome",
    "UsagePeriod",
    "crossed_thresholds",
    "current_usage",
    "period_for",
    "refusal_reason",
    "usage_in_period",
]

# The share of a limit at which the owner is told, once per period each (80% and 100%).
WARNING_THRESHOLDS = (80, 100)


class Metric(StrEnum):
    """What the Site Builder application records. Only a level (sites, storage) may be set; a
    count of events (generations) only grows, or shrinks by a correction."""

    GENERATIONS = "generations"
    SITES = "sites"
    STORAGE_MB = "storage_mb"

    @property
    def usage_field(self) -> str:
        """Its name in the tenant's `usage` map."""
        return _USAGE_FIELDS[self]

    @property
    def limit_field(self) -> str:
        """Its name in the tenant's `limits` map."""
        return _LIMIT_FIELDS[self]

    @property
    def settable(self) -> bool:
        return self is not Metric.GENERATIONS

    @property
    def unit(self) -> str:
        return _UNITS[self]

    def used(self, usage: Usage) -> int:
        value: int = getattr(usage, self.usage_field)
        return value

    def limit(self, limits: Limits) -> int:
        value: int = getattr(limits, self.limit_field)
        return value

    @classmethod
    def named(cls, name: str) -> Metric:
        try:
            return cls(name.strip().lower())
        except ValueError:
            known = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown metric {name!r} (known: {known})") from None


_USAGE_FIELDS = {
    Metric.GENERATIONS: "generations_this_month",
    Metric.SITES: "sites_count",
    Metric.STORAGE_MB: "storage_used_mb",
}
_LIMIT_FIELDS = {
    Metric.GENERATIONS: "max_generations_per_month",
    Metric.SITES: "max_sites",
    Metric.STORAGE_MB: "max_storage_mb",
}
_UNITS = {Metric.GENERATIONS: "generations", Metric.SITES: "sites", Metric.STORAGE_MB: "MB"}


@dataclass(frozen=True, slots=True)
class UsagePeriod:
    """[start, end): the days a monthly count runs over."""

    start: date
    end: date


def period_for(subscription: Subscription | None, now: datetime) -> UsagePeriod:
    """The subscription's last paid period (it moves on only when a charge is applied, so a
    tenant past due keeps counting in the period it paid for), else the calendar month of `now`."""
    if subscription is not None and subscription.periods_paid > 0:
        end = subscription.paid_through
        paid = subscription.periods_paid - 1
        start = add_months(subscription.billing_date, paid * subscription.frequency.months)
        return UsagePeriod(start, end)
    first = now.date().replace(day=1)
    return UsagePeriod(first, add_months(first, 1))


def current_usage(usage: Usage, period: UsagePeriod) -> Usage:
    """The usage as it stands in `period`: a generation count kept for an earlier period is zero
    in this one (the stored count is reset by the period's first record)."""
    return usage_in_period(usage, period.start.isoformat())


def usage_in_period(usage: Usage, period_start: str) -> Usage:
    """`current_usage` for the period starting on `period_start` (ISO date), as the stores know it."""
    if usage.period_start == period_start:
        return usage
    return replace(usage, generations_this_month=0)


@dataclass(frozen=True, slots=True)
class UsageChange:
    """One request to record usage: add `amount` (may be negative: a site deleted; the result
    never goes below zero), or, when `absolute`, set the level to `amount` (sites, storage).
    `idempotency_key` makes a repeat of the request answer the first answer."""

    metric: Metric
    amount: int
    idempotency_key: str
    absolute: bool = False

    def __post_init__(self) -> None:
        if self.absolute and not self.metric.settable:
            raise ValueError(f"{self.metric.value} is a count: record it with a delta, not set it")
        if self.absolute and self.amount < 0:
            raise ValueError("a level cannot be set below zero")

    @property
    def fingerprint(self) -> str:
        """What a repeat of the request must match to be answered from the first."""
        text = f"{self.metric.value}:{'set' if self.absolute else 'delta'}:{self.amount}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def result(self, used: int) -> int:
        """The level after applying this change to `used`."""
        return self.amount if self.absolute else max(0, used + self.amount)

    def raises(self, used: int) -> bool:
        return self.result(used) > used

    def allowed(self, used: int, limit: int) -> bool:
        """A change may always lower usage (or keep it); it may raise it only up to the limit."""
        after = self.result(used)
        return after <= used or after <= limit


@dataclass(frozen=True, slots=True)
class UsageOutcome:
    """What a usage record did: `applied`, with the usage after it; or refused (quota exceeded),
    with the usage it found. `replayed` marks the answer given again to a repeated idempotency key."""

    tenant_id: str
    change: UsageChange
    applied: bool
    usage: Usage
    limits: Limits
    at: str
    replayed: bool = False

    @property
    def used(self) -> int:
        return self.change.metric.used(self.usage)

    @property
    def limit(self) -> int:
        return self.change.metric.limit(self.limits)


@dataclass(frozen=True, slots=True)
class Entitlements:
    """A tenant's status, plan, limits and usage in its current period."""

    tenant_id: str
    status: TenantStatus
    plan: str
    limits: Limits
    usage: Usage
    period: UsagePeriod

    @classmethod
    def of(cls, tenant: Tenant, period: UsagePeriod) -> Entitlements:
        usage = current_usage(tenant.usage, period)
        return cls(tenant.tenant_id, tenant.status, tenant.plan, tenant.limits, usage, period)

    def used(self, metric: Metric) -> int:
        return metric.used(self.usage)

    def limit(self, metric: Metric) -> int:
        return metric.limit(self.limits)

    def remaining(self, metric: Metric) -> int:
        return max(0, self.limit(metric) - self.used(metric))

    def over_limit(self) -> list[Metric]:
        """The metrics used beyond the plan's limit (a downgrade, a hand edit)."""
        return [metric for metric in Metric if self.used(metric) > self.limit(metric)]


def crossed_thresholds(used: int, limit: int) -> list[int]:
    """The warning thresholds (percent of the limit) that `used` has reached."""
    if limit <= 0:
        return [] if used <= 0 else list(WARNING_THRESHOLDS)
    return [threshold for threshold in WARNING_THRESHOLDS if used * 100 >= threshold * limit]


def refusal_reason(status: TenantStatus) -> str | None:
    """Why a tenant in `status` may not record usage, or None if it may."""
    if status.has_access:
        return None
    return {
        TenantStatus.PROVISIONING: "the tenant is still being set up",
        TenantStatus.SUSPENDED: "payment overdue",
        TenantStatus.CANCELLED: "subscription ended",
        TenantStatus.DELETED: "the tenant was deleted",
    }.get(status, f"the tenant is {status.value}")
