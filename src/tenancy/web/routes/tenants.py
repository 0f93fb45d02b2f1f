"""`GET /tenants/me`: the caller's own tenant, chosen by the verified token alone, with its
subscription (null for a once-off purchase), its paid-through date and, while past due, the last
day of its grace period. A suspended or cancelled tenant answers 403 with the reason and where to
pay (web.app's TenantBlockedError handler)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from tenancy.domain.billing import BillingEntry, Subscription
from tenancy.domain.model import Tenant, TenantStatus, Usage
from tenancy.lifecycle.due import deadlines
from tenancy.web.deps import BearerToken, ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["tenants"])


class LimitsView(BaseModel):
    max_sites: int
    max_generations_per_month: int
    max_storage_mb: int
    custom_domain_allowed: bool


class UsageView(BaseModel):
    sites_count: int
    generations_this_month: int
    storage_used_mb: int


class BillingEntryView(BaseModel):
    kind: str
    at: str
    amount: str | None  # rands and cents, "299.00"; null for a cancellation or a plan change
    invoice_number: str | None
    plan: str | None
    note: str

    @classmethod
    def of(cls, entry: BillingEntry) -> BillingEntryView:
        return cls(
            kind=entry.kind.value,
            at=entry.at,
            amount=None if entry.amount is None else f"{entry.amount:.2f}",
            invoice_number=entry.invoice_number,
            plan=entry.plan,
            note=entry.note,
        )


class SubscriptionView(BaseModel):
    """What the owner needs of the subscription. PayFast's token and payment ids stay out: the
    token names the subscription at PayFast's API, and nothing the caller does needs it."""

    status: str
    plan: str
    pending_plan: str | None  # a downgrade that takes effect at the next charge
    frequency: str  # "monthly", "quarterly", "biannually", "annually"
    recurring_amount: str  # "299.00"
    paid_through: str  # ISO date
    next_billing_date: str | None  # ISO date; null once cancelled
    history: list[BillingEntryView]

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionView:
        next_billing = subscription.next_billing_date
        return cls(
            status=subscription.status.value,
            plan=subscription.plan,
            pending_plan=subscription.pending_plan,
            frequency=subscription.frequency.name.lower(),
            recurring_amount=f"{subscription.recurring_amount:.2f}",
            paid_through=subscription.paid_through.isoformat(),
            next_billing_date=None if next_billing is None else next_billing.isoformat(),
            history=[BillingEntryView.of(entry) for entry in subscription.history],
        )


class TenantView(BaseModel):
    tenant_id: str
    name: str
    plan: str
    status: str
    limits: LimitsView
    usage: UsageView
    storage_prefix: str
    created_at: str
    subscription: SubscriptionView | None = None  # None: bought once, no renewals
    paid_through: str | None = None  # ISO date; None: bought once
    grace_until: str | None = None  # ISO date, while past due: the last day before suspension

    @classmethod
    def of(
        cls,
        tenant: Tenant,
        subscription: Subscription | None = None,
        grace_until: str | None = None,
        usage: Usage | None = None,
    ) -> TenantView:
        """`usage`: in the current period (UsageService.of_tenant); else as stored."""
        limits, usage = tenant.limits, usage or tenant.usage
        return cls(
            tenant_id=tenant.tenant_id,
            name=tenant.name,
            plan=tenant.plan,
            status=tenant.status.value,
            limits=LimitsView(
                max_sites=limits.max_sites,
                max_generations_per_month=limits.max_generations_per_month,
                max_storage_mb=limits.max_storage_mb,
                custom_domain_allowed=limits.custom_domain_allowed,
            ),
            usage=UsageView(
                sites_count=usage.sites_count,
                generations_this_month=usage.generations_this_month,
                storage_used_mb=usage.storage_used_mb,
            ),
            storage_prefix=tenant.storage_prefix,
            created_at=tenant.created_at,
            subscription=None if subscription is None else SubscriptionView.of(subscription),
            paid_through=None if subscription is None else subscription.paid_through.isoformat(),
            grace_until=grace_until,
        )


@router.get(
    "/tenants/me",
    responses={
        401: {"description": "Missing, invalid or expired token"},
        403: {
            "description": "Tenant not found; or suspended or cancelled: "
            '`{"detail": "Tenant suspended", "reason": "payment overdue", "billing_url": ...}`'
        },
    },
)
async def my_tenant(token: BearerToken, services: ServicesDep) -> TenantView:
    tenant = await run_in_threadpool(services.accounts.tenant_for_token, token)
    subscription = await run_in_threadpool(services.subscriptions.get, tenant.tenant_id)
    grace_until = None
    if subscription is not None and tenant.status is TenantStatus.PAST_DUE:
        grace_until = deadlines(subscription, services.lifecycle_periods).grace_until.isoformat()
    entitlements = await run_in_threadpool(services.usage.of_tenant, tenant)
    return TenantView.of(tenant, subscription, grace_until, entitlements.usage)
