"""The account page's Billing section in words: the subscription's state, its next charge, its
history, and each plan it could move to with the difference in price and when the move happens.
Pure: built from the tenant, its subscription and the catalogue, so every sentence is testable."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tenancy.billing.changes import exceeded_limits
from tenancy.domain.billing import BillingEntry, BillingKind, Subscription, SubscriptionStatus
from tenancy.domain.model import Tenant, TenantStatus
from tenancy.domain.plans import Limits, Plan, PlanCatalogue
from tenancy.errors import UnknownPlanError

__all__ = ["BillingLine", "BillingSection", "PlanOption", "billing_section", "rands"]

_KIND_WORDS = {
    BillingKind.FIRST_CHARGE: "First charge",
    BillingKind.RENEWAL: "Renewal",
    BillingKind.CANCELLATION: "Cancelled",
    BillingKind.PLAN_CHANGE: "Plan change",
}


def rands(amount: Decimal) -> str:
    return f"R{amount:.2f}"


@dataclass(frozen=True, slots=True)
class PlanOption:
    """A plan the subscription may move to: `difference` per period ("+R700.00 / month") against
    what the next charge would be, and `effect`, when and how the move happens."""

    name: str
    display_name: str
    price_label: str
    difference: str
    effect: str
    limits: str
    over_limits: str  # "" unless a downgrade the tenant's usage is over (the server refuses it)
    keeps: bool = False  # the plan in effect, chosen to drop a pending downgrade


@dataclass(frozen=True, slots=True)
class BillingLine:
    """One row of the billing history table."""

    date: str
    what: str  # with the plan it was for: "Renewal: Professional"
    invoice_number: str
    amount: str


@dataclass(frozen=True, slots=True)
class BillingSection:
    """Everything the Billing section shows. `subscribed` False: a once-off purchase."""

    subscribed: bool
    plan_name: str
    status: str  # "Active", "Cancelled: access until 2027-01-06", "Bought once: no renewals"
    next_charge: str  # "R299.00 on 2027-01-06"; "" when no charge is coming
    pending: str  # "Changes to Starter on 2027-01-06"; "" when nothing is pending
    last_day: str  # the last day of access should the subscription be cancelled (ISO date)
    history: tuple[BillingLine, ...]
    options: tuple[PlanOption, ...]
    can_change: bool  # the plan and cancel forms are shown (an active subscription of an active tenant)


def billing_section(tenant: Tenant, subscription: Subscription | None, plans: PlanCatalogue) -> BillingSection:
    if subscription is None:
        return BillingSection(
            subscribed=False,
            plan_name=_display_name(plans, tenant.plan),
            status="Bought once: no renewals",
            next_charge="",
            pending="",
            last_day="",
            history=(),
            options=(),
            can_change=False,
        )
    paid_through = subscription.paid_through.isoformat()
    can_change = subscription.status is SubscriptionStatus.ACTIVE and tenant.status is TenantStatus.ACTIVE
    pending = subscription.pending_plan
    return BillingSection(
        subscribed=True,
        plan_name=_display_name(plans, subscription.plan),
        status=_status_words(subscription, tenant),
        next_charge=_next_charge(subscription, tenant),
        pending="" if pending is None else f"Changes to {_display_name(plans, pending)} on {paid_through}",
        last_day=paid_through,
        history=tuple(_line(entry, plans) for entry in reversed(subscription.history)),  # newest first
        options=_options(tenant, subscription, plans) if can_change else (),
        can_change=can_change,
    )


def _next_charge(subscription: Subscription, tenant: Tenant) -> str:
    next_billing = subscription.next_billing_date
    if next_billing is None:
        return ""
    amount = rands(subscription.recurring_amount)
    if tenant.status in {TenantStatus.PAST_DUE, TenantStatus.SUSPENDED}:
        return f"{amount} due on {next_billing} did not go through"  # never a date in the past as "next"
    return f"{amount} on {next_billing}"


def _status_words(subscription: Subscription, tenant: Tenant) -> str:
    if subscription.status is SubscriptionStatus.ACTIVE and tenant.status is TenantStatus.PAST_DUE:
        return "Payment overdue"
    if subscription.status is SubscriptionStatus.ACTIVE:
        return "Active"
    if subscription.status is SubscriptionStatus.CANCELLING:
        return f"Cancelled: access until {subscription.paid_through.isoformat()}"
    return "Cancelled"


def _options(tenant: Tenant, subscription: Subscription, plans: PlanCatalogue) -> tuple[PlanOption, ...]:
    """Every plan billed as the subscription is, but the one it is on (or, with a downgrade
    pending, the one it moves to). A plan of another period needs a new checkout, not a change."""
    # With a downgrade pending, the recurring amount is already the lower plan's: compare with the plan in effect.
    current_price = (
        subscription.recurring_amount
        if subscription.pending_plan is None
        else _price_of(plans, subscription.plan, subscription.recurring_amount)
    )
    next_charge = subscription.paid_through.isoformat()
    options = []
    for plan in plans.plans:
        if plan.billing is not subscription.frequency or plan.name == (subscription.pending_plan or subscription.plan):
            continue
        # The same rule as services.subscription_changes: back to the plan in effect, or a dearer one, is now.
        upgrade = plan.name == subscription.plan or plan.recurring_price_zar > current_price
        over = "" if upgrade else "; ".join(exceeded_limits(tenant, plan.limits))
        options.append(
            PlanOption(
                name=plan.name,
                display_name=plan.display_name,
                price_label=plan.price_label(),
                difference=_difference(plan, subscription),
                effect=_effect(plan, subscription, upgrade, next_charge),
                limits=_limits_words(plan.limits),
                over_limits=over,
                keeps=plan.name == subscription.plan,
            )
        )
    return tuple(options)


def _difference(plan: Plan, subscription: Subscription) -> str:
    """Against the amount the next charge would be: what the owner's charges change by."""
    change = plan.recurring_price_zar - subscription.recurring_amount
    sign = "+" if change >= 0 else "-"
    return f"{sign}{rands(abs(change))} / {subscription.frequency.period_word}"


def _effect(plan: Plan, subscription: Subscription, upgrade: bool, next_charge: str) -> str:
    price = f"{rands(plan.recurring_price_zar)} / {subscription.frequency.period_word}"
    if plan.name == subscription.plan:
        return f"Keeps {plan.display_name} and drops the pending change; {price} from the next charge on {next_charge}."
    if upgrade:
        return f"Now: {plan.display_name}'s limits at once; {price} from the next charge on {next_charge}."
    return f"From the next charge on {next_charge}: {plan.display_name}'s limits and {price}. No change until then."


def _limits_words(limits: Limits) -> str:
    domain = "custom domain" if limits.custom_domain_allowed else "no custom domain"
    sites = "site" if limits.max_sites == 1 else "sites"
    return (
        f"{limits.max_sites} {sites}, {limits.max_generations_per_month} generations a month, "
        f"{limits.max_storage_mb} MB, {domain}"
    )


def _line(entry: BillingEntry, plans: PlanCatalogue) -> BillingLine:
    what = _KIND_WORDS.get(entry.kind, entry.kind.value)
    return BillingLine(
        date=entry.at[:10],  # the contract timestamp's date: the day it was applied
        # The plan goes with what happened: fewer columns, so the table fits a phone.
        what=what if entry.plan is None else f"{what}: {_display_name(plans, entry.plan)}",
        invoice_number=entry.invoice_number or "",
        amount="" if entry.amount is None else rands(entry.amount),
    )


def _display_name(plans: PlanCatalogue, name: str) -> str:
    try:
        return plans.get(name).display_name
    except UnknownPlanError:  # a plan since taken out of the catalogue
        return name


def _price_of(plans: PlanCatalogue, name: str, fallback: Decimal) -> Decimal:
    try:
        return plans.get(name).recurring_price_zar
    except UnknownPlanError:
        return fallback
