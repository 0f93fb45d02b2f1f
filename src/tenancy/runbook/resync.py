"""The repair of `subscription_out_of_sync`: our subscription re-synced from PayFast's view.
PayFast charges the card, so where the two disagree its word stands: cancelled there makes ours
(and the tenant) cancelling, another amount there becomes ours. A pause Tenancy cannot show."""

from __future__ import annotations

from datetime import datetime

import structlog

from tenancy.domain.billing import BillingEntry, BillingKind, PayfastSubscription, Subscription, SubscriptionStatus
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import TenantStatus
from tenancy.errors import ConflictError, TransientError
from tenancy.ports import SubscriptionStore, TenantStore
from tenancy.runbook.evidence import CaseFile
from tenancy.runbook.rules.subscriptions import Disagreement, disagreement

__all__ = ["CANCELLED_NOTE", "resync_actions", "resync_from_payfast"]

log = structlog.get_logger(__name__)

CANCELLED_NOTE = "cancelled at PayFast; found by the runbook"
_ATTEMPTS = 5


def resync_actions(case: CaseFile) -> list[str]:
    """What the re-sync would do to the case's subscription and tenant, in words."""
    ours, view = case.subscription, case.payfast
    found = disagreement(ours, view) if ours is not None and view is not None else None
    if ours is None or found is None:
        return []
    actions = []
    if found.cancelled:
        through = ours.paid_through.isoformat()
        actions.append(f"mark subscription {ours.token} cancelling, as PayFast has it (paid through {through})")
        tenant = case.tenant
        if tenant is not None and tenant.status is TenantStatus.ACTIVE:
            actions.append(f"set tenant {tenant.tenant_id} cancelling (full access until {through})")
    if found.amount is not None:
        actions.append(
            f"set the recurring amount of subscription {ours.token} to PayFast's R{found.amount:.2f} "
            f"(was R{ours.recurring_amount:.2f})"
        )
    return actions


def resync_from_payfast(
    *,
    subscriptions: SubscriptionStore,
    tenants: TenantStore,
    tenant_id: str,
    view: PayfastSubscription,
    now: datetime,
) -> Subscription | None:
    """Re-syncs the tenant's subscription from PayFast's `view` and returns it as written (as read
    when nothing disagrees any more, None when the tenant has none). The subscription is written
    over the version read; a settle or a plan change that wrote first makes it read again and
    re-judge. Raises TransientError when it kept changing."""
    stamp = format_timestamp(now)
    for _ in range(_ATTEMPTS):
        ours = subscriptions.get(tenant_id)
        found = disagreement(ours, view) if ours is not None else None
        if ours is None or found is None or not found.resyncable:
            return ours  # in step already (or re-subscribed since: another token), or only paused
        if found.cancelled:
            # The tenant first: a crash before the subscription is written leaves the finding
            # standing, and the repair run again sets the same status.
            tenant = tenants.get(tenant_id)
            if tenant is not None and tenant.status is TenantStatus.ACTIVE:
                tenants.set_status(tenant_id, TenantStatus.CANCELLING, stamp)
        try:
            saved = subscriptions.save(_resynced(ours, found, stamp))
        except ConflictError:
            continue  # written in between: read again, judge again
        log.info(
            "subscription_resynced_from_payfast",
            tenant_id=tenant_id,
            token=saved.token,
            status=saved.status.value,
            recurring_amount=f"{saved.recurring_amount:.2f}",
        )
        return saved
    raise TransientError(f"the subscription of {tenant_id} kept changing while re-synced from PayFast")


def _resynced(ours: Subscription, found: Disagreement, stamp: str) -> Subscription:
    if found.cancelled:
        entry = BillingEntry(BillingKind.CANCELLATION, stamp, note=CANCELLED_NOTE)
        return ours.evolve(
            stamp, status=SubscriptionStatus.CANCELLING, pending_plan=None, history=(*ours.history, entry)
        )
    assert found.amount is not None
    note = (
        f"recurring amount re-synced from PayFast: R{ours.recurring_amount:.2f} to R{found.amount:.2f}; "
        "found by the runbook"
    )
    entry = BillingEntry(BillingKind.PLAN_CHANGE, stamp, amount=found.amount, plan=ours.plan, note=note)
    return ours.evolve(stamp, recurring_amount=found.amount, history=(*ours.history, entry))
