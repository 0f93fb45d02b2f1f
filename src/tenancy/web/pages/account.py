"""The account page (its Usage section reads `services.usage`, as the Site Builder application is
held to it), and its owner's billing forms: change the subscription's plan, or cancel it,
through `services.subscription_changes`. A form acts on the signed-in viewer's own tenant, named by
the server-side session alone (never by a form field), and only for its tenant admins (the owner
and co-admins: the role read from the viewer's users record, see `pages.team_view`). The Team
section (`pages.team_view`, its forms in `pages.team`) is shown to every member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from tenancy.billing.changes import exceeded_limits
from tenancy.bootstrap import Services
from tenancy.domain.billing import Subscription, SubscriptionStatus
from tenancy.domain.lifecycle import Trigger
from tenancy.domain.model import Tenant, TenantStatus
from tenancy.domain.usage import Metric, crossed_thresholds
from tenancy.errors import (
    InvalidInputError,
    TenancyError,
    TenantBlockedError,
    TenantNotFoundError,
    TransientError,
    UnknownPlanError,
)
from tenancy.lifecycle.due import deadlines
from tenancy.web.deps import ServicesDep
from tenancy.web.pages.billing_view import BillingSection, billing_section, rands
from tenancy.web.pages.rendering import redirect, render
from tenancy.web.pages.security import read_form
from tenancy.web.pages.team_view import ROLE_CHOICES, is_tenant_admin, team_section
from tenancy.web.pages.viewer import Viewer, require_viewer

__all__ = ["CONFIRM_FIELD", "account_page", "router"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)

# The cancel form's checkbox: the server, not a script, checks that the owner ticked it.
CONFIRM_FIELD = "confirm"


def account_page(
    request: Request,
    services: Services,
    viewer: Viewer,
    *,
    done: str = "",
    error: str | None = None,
    chosen: str = "",
    status_code: int = 200,
    team_done: str = "",
) -> Response:
    """The account page of the viewer's own tenant: with its Billing section for tenant admins,
    the notice of a billing change just `done` (a redirect's `?billing=`) or of a team change
    (`team_done`, a redirect's `?team=`), or a refusal (`error`)."""
    try:
        tenant = _own_tenant(services, viewer)
    except TenantBlockedError:
        return _billing_only(request, services, viewer)
    if tenant is None:
        return _no_tenant(request, viewer)
    try:
        plan_name = services.plans.get(tenant.plan).display_name
    except UnknownPlanError:  # a plan since taken out of the catalogue: the tenant keeps its limits
        plan_name = tenant.plan
    context: dict[str, Any] = {"tenant": tenant, "plan_name": plan_name, "billing": None, "notice": None}
    subscription = services.subscriptions.get(tenant.tenant_id)
    admin = _is_owner(services, viewer)
    if admin:
        context["billing"] = billing_section(tenant, subscription, services.plans)
        context["notice"] = _notice(done, subscription, services)
    context["warning"] = _past_due_warning(services, tenant, subscription, owner=admin)
    context["usage"] = _usage_section(services, tenant, context["billing"])
    context["team"] = team_section(services, tenant, viewer)
    context["team_notice"] = TEAM_NOTICES.get(team_done)
    context["role_choices"] = ROLE_CHOICES
    context.update(error=error, chosen=chosen, confirm_field=CONFIRM_FIELD)
    return render(request, "account.html", context, status_code=status_code, viewer=viewer)


@router.post("/account/billing/plan")
async def change_plan(request: Request, services: ServicesDep) -> Response:
    viewer = require_viewer(request)
    form = await read_form(request)
    tenant = _owned_tenant(request, services, viewer)
    if isinstance(tenant, Response):
        return tenant
    plan = form.get("plan", "").strip()
    if not plan:
        message = "Choose the plan to move to, then press Change plan. Nothing was changed."
        return account_page(request, services, viewer, error=message, status_code=400)
    try:
        change = await run_in_threadpool(
            services.subscription_changes.plan_change,
            tenant.tenant_id,
            plan,
            actor=_owner(viewer),
            trigger=Trigger.OWNER,
            dry_run=False,
        )
    except InvalidInputError as refusal:
        log.info("billing_change_refused", tenant_id=tenant.tenant_id, plan=plan, reason=str(refusal))
        message = _plan_refusal(services, tenant, plan, refusal)
        return account_page(request, services, viewer, error=message, chosen=plan, status_code=400)
    except TenancyError as failure:
        return _payfast_failed(request, services, viewer, tenant, failure, chosen=plan)
    return redirect(f"/account?billing={change.outcome}")


@router.post("/account/billing/cancel")
async def cancel_subscription(request: Request, services: ServicesDep) -> Response:
    viewer = require_viewer(request)
    form = await read_form(request)
    tenant = _owned_tenant(request, services, viewer)
    if isinstance(tenant, Response):
        return tenant
    if form.get(CONFIRM_FIELD) != "yes":
        message = "Tick the box to confirm that you want to cancel, then press Cancel subscription again."
        return account_page(request, services, viewer, error=message, status_code=400)
    try:
        change = await run_in_threadpool(
            services.subscription_changes.cancel,
            tenant.tenant_id,
            actor=_owner(viewer),
            trigger=Trigger.OWNER,
            dry_run=False,
        )
    except InvalidInputError as refusal:
        log.info("billing_cancel_refused", tenant_id=tenant.tenant_id, reason=str(refusal))
        message = f"Your subscription was not cancelled: {refusal}. Reload this page to see where it stands."
        return account_page(request, services, viewer, error=message, status_code=400)
    except TenancyError as failure:
        return _payfast_failed(request, services, viewer, tenant, failure)
    # "cancelled_already": PayFast's own cancellation got here first; to the owner, the same news.
    return redirect("/account?billing=cancelled" if change.outcome.startswith("cancelled") else "/account")


def _is_owner(services: Services, viewer: Viewer) -> bool:
    """Billing is for the tenant's admins (the owner and co-admins), not its editors or viewers."""
    return is_tenant_admin(services, viewer)


# The news of a team change just made (a redirect's `?team=`): no names in the address.
TEAM_NOTICES = {
    "joined": "Welcome: you have joined the team. You are signed in; next time, sign in with your email and password.",
    "invited": "Invitation sent. The link in it works once, for 7 days; the invitation holds a seat until then.",
    "resent": "Invitation sent again, with a new link for 7 days from now. The earlier link no longer works.",
    "revoked": "Invitation withdrawn: its link no longer works and its seat is free.",
    "role_changed": "Role changed. The member is signed out and gets the new role when they sign in again.",
    "removed": "Member removed: they are signed out everywhere and can no longer sign in. Their seat is free.",
    "owner_changed": "Ownership handed on. You stay an admin of the team.",
}


def _own_tenant(services: Services, viewer: Viewer) -> Tenant | None:
    """The viewer's tenant while its people have access (active, past due or cancelling); None
    when there is none; TenantBlockedError when they may only pay (suspended, cancelled)."""
    if viewer.tenant_id is None:
        return None
    try:
        # The tenant comes from the server-side session alone, never from the request.
        return services.accounts.active_tenant(viewer.tenant_id)
    except TenantBlockedError:
        raise
    except TenantNotFoundError:
        return None


def _past_due_warning(
    services: Services, tenant: Tenant, subscription: Subscription | None, *, owner: bool
) -> str | None:
    """A past-due tenant's warning: what did not happen, until when the site works, what to do."""
    if tenant.status is not TenantStatus.PAST_DUE or subscription is None:
        return None
    marks = deadlines(subscription, services.lifecycle_periods)
    what = (
        f"Your payment due on {marks.paid_through.isoformat()} did not go through. Your site keeps working "
        f"until {marks.grace_until.isoformat()}; after that it is suspended until it is paid."
    )
    if owner:
        return f"{what} PayFast tries your card again over the next days; to pay now, choose Pay now below."
    return f"{what} Ask your site's owner to pay."


class UsageState(StrEnum):
    """Where a metric stands against its limit: the warning thresholds of the owner's emails."""

    WITHIN = "within"  # below 80%
    NEAR = "near"  # from 80%: "Nearly used up"
    REACHED = "reached"  # at or past the limit: new ones are refused


class UpgradePath(StrEnum):
    """How this viewer raises a limit."""

    CHANGE_PLAN = "change_plan"  # the owner's Change plan form offers a plan with more
    SUPPORT = "support"  # the owner emails support (a once-off purchase, no bigger plan, not active)
    OWNER = "owner"  # a member who is not the owner asks them


@dataclass(frozen=True, slots=True)
class UsageBar:
    """One metric of the Usage section: `used` of `limit`, and its state."""

    key: str  # the row's id: limit-{key}, meter-{key}
    label: str
    unit: str
    used: int
    limit: int
    percent: int
    state: UsageState
    refused: str  # what a reached limit refuses, in the owner's words
    resets_on: str  # the day a monthly count starts again (ISO date); "" for a level

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class UsageSection:
    """The Usage section: a bar per metric of the current period (the entitlements the Site Builder
    application is held to), and how this viewer raises a limit."""

    bars: tuple[UsageBar, ...]
    period_start: str
    period_last_day: str
    upgrade: UpgradePath


_USAGE_ROWS = (
    (Metric.SITES, "sites", "Sites", "", "new sites are refused"),
    (Metric.GENERATIONS, "generations", "Page generations this period", "", "new page generations are refused"),
    (Metric.STORAGE_MB, "storage", "Storage", "MB", "storing more is refused"),
)


def _usage_section(services: Services, tenant: Tenant, billing: BillingSection | None) -> UsageSection:
    """The tenant's usage against its limits in the current period, read as the service API reads it."""
    entitlements = services.usage.of_tenant(tenant)
    period = entitlements.period
    bars = []
    for metric, key, label, unit, refused in _USAGE_ROWS:
        used, limit = entitlements.used(metric), entitlements.limit(metric)
        percent = used * 100 // limit if limit > 0 else (100 if used > 0 else 0)
        crossed = crossed_thresholds(used, limit)
        state = UsageState.REACHED if 100 in crossed else UsageState.NEAR if crossed else UsageState.WITHIN
        resets_on = period.end.isoformat() if metric is Metric.GENERATIONS else ""
        bars.append(UsageBar(key, label, unit, used, limit, percent, state, refused, resets_on))
    return UsageSection(
        bars=tuple(bars),
        period_start=period.start.isoformat(),
        period_last_day=(period.end - timedelta(days=1)).isoformat(),
        upgrade=_upgrade_path(services, tenant, billing),
    )


def _upgrade_path(services: Services, tenant: Tenant, billing: BillingSection | None) -> UpgradePath:
    """The way to more this page already offers: the owner's Change plan form when it lists a plan
    with a higher limit, else the support address (as the Billing section says); a member asks the owner."""
    if billing is None:
        return UpgradePath.OWNER
    for option in billing.options if billing.can_change else ():
        try:
            limits = services.plans.get(option.name).limits
        except UnknownPlanError:
            continue
        if any(metric.limit(limits) > metric.limit(tenant.limits) for metric in Metric):
            return UpgradePath.CHANGE_PLAN
    return UpgradePath.SUPPORT


def _billing_only(request: Request, services: Services, viewer: Viewer) -> Response:
    """The page of a suspended or cancelled tenant: what happened, what is kept, and Pay now (a
    checkout for this very tenant) for its owner."""
    tenant = services.tenants.get(viewer.tenant_id or "")
    if tenant is None:
        return _no_tenant(request, viewer)
    subscription = services.subscriptions.get(tenant.tenant_id)
    periods = services.lifecycle_periods
    if tenant.status is TenantStatus.SUSPENDED:
        title, action = "Your site is suspended", "Pay now"
        message = ["Your site is suspended because its payment is overdue. Your data is kept."]
        if subscription is not None:
            marks = deadlines(subscription, periods)
            message.append(
                f"It was paid through {marks.paid_through.isoformat()}. If it is not paid by "
                f"{marks.cancel_after.isoformat()}, the subscription is cancelled."
            )
        message.append("Paying brings your site back at once, on this same account.")
    else:
        title, action = "Your subscription has ended", "Subscribe again"
        message = [
            "Your subscription has ended and your site is no longer available.",
            f"Your data is kept for {periods.retention_days} days after it ended, then deleted. "
            "Subscribing again brings your site back as it was.",
        ]
    context = {
        "title": title,
        "message": message,
        "action": action,
        "tenant": tenant,
        "plan": tenant.plan,
        "owner": _is_owner(services, viewer),
    }
    return render(request, "account_blocked.html", context, status_code=403, viewer=viewer)


def _owned_tenant(request: Request, services: Services, viewer: Viewer) -> Tenant | Response:
    """The viewer's tenant if they own it and it has access; else the page that says why not."""
    if not _is_owner(services, viewer):
        return _owners_only(request, viewer)
    tenant = _own_tenant(services, viewer)
    return _no_tenant(request, viewer) if tenant is None else tenant


def _notice(done: str, subscription: Subscription | None, services: Services) -> str | None:
    """The news of a change just made, said from what is stored now: a `?billing=` that the stored
    subscription does not bear out (typed by hand, or overtaken) shows nothing."""
    if subscription is None:
        return None
    paid_through = subscription.paid_through.isoformat()
    period = subscription.frequency.period_word
    price = f"{rands(subscription.recurring_amount)} / {period}"
    active = subscription.status is SubscriptionStatus.ACTIVE
    if done == "upgraded" and active and subscription.pending_plan is None:
        plan = _display_name(services, subscription.plan)
        return (
            f"Your plan is now {plan}, with its limits from now on. "
            f"PayFast charges {price} from your next charge on {paid_through}."
        )
    if done == "downgrade_scheduled" and active and subscription.pending_plan is not None:
        pending, plan = _display_name(services, subscription.pending_plan), _display_name(services, subscription.plan)
        return (
            f"Your plan changes to {pending} on {paid_through}, and PayFast charges {price} from then. "
            f"You keep {plan} until that day."
        )
    if done == "cancelled" and subscription.status is SubscriptionStatus.CANCELLING:
        return (
            "Your subscription is cancelled: PayFast charges nothing more. "
            f"Your site stays available until {paid_through}."
        )
    return None


def _plan_refusal(services: Services, tenant: Tenant, plan: str, refusal: InvalidInputError) -> str:
    """Why the plan did not change, and what to do, in the owner's words where we know them."""
    try:
        target = services.plans.get(plan)
    except UnknownPlanError:
        return "We have no plan by that name. Choose one of the plans listed under Change plan."
    exceeded = exceeded_limits(tenant, target.limits)
    # Only a downgrade is refused for usage (an upgrade raises limits): say which limits and what to do.
    if exceeded and target.recurring_price_zar < _recurring_price(services, tenant.plan):
        return (
            f"Your plan was not changed: you use more than {target.display_name} allows ({'; '.join(exceeded)}). "
            f"Delete sites or files until you are within its limits, then choose {target.display_name} again."
        )
    return f"Your plan was not changed: {refusal}. Reload this page to see your plan as it is now."


def _recurring_price(services: Services, plan: str) -> Decimal:
    try:
        return services.plans.get(plan).recurring_price_zar
    except UnknownPlanError:  # a plan since taken out of the catalogue: any plan left is a move up
        return Decimal(0)


def _payfast_failed(
    request: Request, services: Services, viewer: Viewer, tenant: Tenant, failure: TenancyError, *, chosen: str = ""
) -> Response:
    """PayFast (or a store) failed: for a transient failure, try again later; otherwise, support."""
    log.warning("billing_change_failed", tenant_id=tenant.tenant_id, error=str(failure), kind=type(failure).__name__)
    if isinstance(failure, TransientError):
        message = (
            "PayFast did not answer in time, so the change may not have been made. "
            "Reload this page in a few minutes to see where things stand, then try again if needed."
        )
        return account_page(request, services, viewer, error=message, chosen=chosen, status_code=503)
    message = (
        f"PayFast refused the change, so nothing was changed. Email {services.settings.effective_support_email} "
        f"and quote your tenant id, {tenant.tenant_id}."
    )
    return account_page(request, services, viewer, error=message, chosen=chosen, status_code=502)


def _display_name(services: Services, name: str) -> str:
    try:
        return services.plans.get(name).display_name
    except UnknownPlanError:
        return name


def _no_tenant(request: Request, viewer: Viewer) -> Response:
    message = "Tenant not found: this account has no active site."
    # No link back to the account: it is the page that failed.
    context = {"title": "Tenant not found", "message": message, "account_link": False}
    return render(request, "error.html", context, status_code=403, viewer=viewer)


def _owners_only(request: Request, viewer: Viewer) -> Response:
    message = "Only the owner of a site can change its billing. Ask your site's owner to make the change."
    return render(request, "error.html", {"title": "Owners only", "message": message}, status_code=403, viewer=viewer)


def _owner(viewer: Viewer) -> str:
    """Who the audit trail names for an owner's own change: told apart from an operator's."""
    return f"owner {viewer.email}"
