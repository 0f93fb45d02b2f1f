"""When a subscribed tenant's lifecycle moves are due (shared/design/tenant-lifecycle.md): every
deadline follows from the paid-through date P. Past due after P plus a day's slack (a late ITN),
suspended after the grace period, cancelled after being suspended too long; a cancelling tenant is
cancelled once P has passed. Pure: the sweep applies what this says is due, the runbook finds what
is due and was not applied, the pages show the dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from tenancy.domain.billing import Subscription, SubscriptionStatus
from tenancy.domain.model import Tenant, TenantStatus

__all__ = ["Deadlines", "DueMove", "LifecyclePeriods", "deadlines", "due_move"]


@dataclass(frozen=True, slots=True)
class LifecyclePeriods:
    """TENANCY_GRACE_DAYS, TENANCY_SUSPENDED_DAYS and TENANCY_RETENTION_DAYS."""

    grace_days: int = 7
    suspended_days: int = 30
    retention_days: int = 90


@dataclass(frozen=True, slots=True)
class Deadlines:
    """A subscribed tenant's dates: each move is due the day after its date."""

    paid_through: date
    overdue_after: date  # past due after this day
    grace_until: date  # suspended after this day
    cancel_after: date  # cancelled after this day (while suspended)


def deadlines(subscription: Subscription, periods: LifecyclePeriods) -> Deadlines:
    """The subscription's dates under these periods."""
    paid_through = subscription.paid_through
    overdue_after = paid_through + timedelta(days=1)
    grace_until = overdue_after + timedelta(days=periods.grace_days)
    return Deadlines(paid_through, overdue_after, grace_until, grace_until + timedelta(days=periods.suspended_days))


@dataclass(frozen=True, slots=True)
class DueMove:
    """A move time has made due: from `leaving` to `to`, and why."""

    tenant_id: str
    plan: str
    leaving: TenantStatus
    to: TenantStatus
    reason: str


def due_move(tenant: Tenant, subscription: Subscription, today: date, periods: LifecyclePeriods) -> DueMove | None:
    """The move time has made due for a subscribed tenant today, if any (the sweep applies it;
    the runbook calls one not applied `lifecycle_overdue`)."""
    marks = deadlines(subscription, periods)
    status = tenant.status

    def move(to: TenantStatus, reason: str) -> DueMove:
        return DueMove(tenant.tenant_id, tenant.plan, status, to, reason)

    if status is TenantStatus.ACTIVE and subscription.status is SubscriptionStatus.ACTIVE:
        if today > marks.overdue_after:
            return move(
                TenantStatus.PAST_DUE,
                f"paid through {marks.paid_through.isoformat()}; no renewal by {marks.overdue_after.isoformat()}",
            )
    elif status is TenantStatus.PAST_DUE and today > marks.grace_until:
        return move(TenantStatus.SUSPENDED, f"grace period ended {marks.grace_until.isoformat()}")
    elif status is TenantStatus.SUSPENDED and today > marks.cancel_after:
        return move(
            TenantStatus.CANCELLED,
            f"suspended {periods.suspended_days} days without payment (until {marks.cancel_after.isoformat()})",
        )
    elif status is TenantStatus.CANCELLING and today > marks.paid_through:
        return move(TenantStatus.CANCELLED, f"paid-through date {marks.paid_through.isoformat()} passed")
    return None
