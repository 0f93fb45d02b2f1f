"""The rules about a purchase's PayFast subscription: an ITN of a subscription no checkout of ours
started (Finance's), a subscription ITN the ledger accepted that the tenant's subscription does
not show (its first charge never recorded, a renewal or a cancellation never applied), and
PayFast's own view of the subscription disagreeing with ours."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tenancy.billing.settle import subscription_itns, token_of
from tenancy.domain.billing import BillingKind, Frequency, PayfastSubscription, Subscription, SubscriptionStatus, cents
from tenancy.domain.model import PaymentRecord, TenantStatus
from tenancy.domain.plurals import plural
from tenancy.runbook.evidence import CaseFile
from tenancy.runbook.findings import ESCALATION, Evidence, Finding, NextStep, Store
from tenancy.runbook.rules.base import Context, Found, rule

__all__ = [
    "Disagreement",
    "disagreement",
    "payfast_amount",
    "payfast_period",
    "renewal_unapplied",
    "subscription_out_of_sync",
    "unapplied_itns",
    "unknown_subscription",
]

# PayFast's `status_text` values (payfast-subscriptions.md).
PAYFAST_CANCELLED, PAYFAST_PAUSED = "CANCELLED", "PAUSED"


@rule("SUB001", Finding.UNKNOWN_SUBSCRIPTION)
def unknown_subscription(case: CaseFile, context: Context) -> Found | None:
    """An accepted subscription ITN (a renewal or a cancellation, with PayFast's token) whose
    checkout never paid a first charge here: no completed payment, job or tenant. It was kept and
    answered so PayFast stops sending it; which customer it is, only PayFast's dashboard can say,
    so it goes to Finance."""
    itns = subscription_itns(case.payments)
    if not itns or case.completed_payment is not None or case.job is not None or case.tenant is not None:
        return None
    latest = itns[-1]
    return Found(
        f"PayFast sent a {latest.payment_status} ITN for subscription token {token_of(latest)}, "
        "which no checkout here started.",
        NextStep("Look the token up in PayFast's dashboard and tell Finance whose subscription it is."),
        ESCALATION["finance"],
    )


def unapplied_itns(case: CaseFile) -> list[PaymentRecord]:
    """The case's accepted subscription ITNs (of its subscription's token) that the subscription
    does not show: all of them when no subscription was recorded for a provisioned tenant."""
    tenant = case.tenant
    if tenant is None or tenant.status is TenantStatus.PROVISIONING:
        return []  # settled when provisioning ends; the job's own findings come first
    itns = subscription_itns(case.payments)
    subscription = case.subscription
    if subscription is None:
        return itns
    if subscription.transaction_id != case.transaction_id:
        return []  # the tenant subscribed again since: this checkout's ITNs are history
    cancelled = {entry.pf_payment_id for entry in subscription.history if entry.kind is BillingKind.CANCELLATION}
    return [
        payment
        for payment in itns
        if token_of(payment) == subscription.token
        and (
            not subscription.has_payment(payment.pf_payment_id or "")
            if payment.payment_status == "COMPLETE"
            else payment.pf_payment_id not in cancelled and subscription.status is SubscriptionStatus.ACTIVE
        )
    ]


@rule("SUB002", Finding.RENEWAL_UNAPPLIED)
def renewal_unapplied(case: CaseFile, context: Context) -> Found | None:
    """The ledger accepted a subscription ITN the tenant's subscription does not show: a first
    charge whose subscription was never recorded, a renewal whose period was never added (the
    owner is charged but `paid_through` did not move), or a cancellation never applied. Settling
    the checkout applies each, once, in the order PayFast sent them."""
    missing = unapplied_itns(case)
    if not missing:
        return None
    names = ", ".join(f"{payment.payment_status} {payment.pf_payment_id}" for payment in missing)
    subscription = case.subscription
    through = subscription.paid_through.isoformat() if subscription else "(no subscription recorded)"
    evidence = Evidence(
        Store.LEDGER,
        {"unapplied": [payment.pf_payment_id for payment in missing], "paid_through": through},
        f"accepted and not applied: {names}; paid through {through}",
    )
    return Found(
        f"{plural(len(missing), 'subscription payment')} of {case.transaction_id} accepted but not applied: {names}.",
        NextStep("applies the accepted subscription payments to the tenant's subscription, in order"),
        evidence=(evidence,),
    )


def payfast_amount(view: PayfastSubscription) -> Decimal:
    """PayFast's amount (cents) in rands, as Tenancy keeps amounts: 34900 -> 349.00."""
    return Decimal(view.amount_cents).scaleb(-2)


def payfast_period(view: PayfastSubscription) -> str:
    """PayFast's frequency as a price says it ("month"); "cycle" for a code Tenancy does not know."""
    try:
        return Frequency(view.frequency).period_word
    except ValueError:
        return "cycle"


@dataclass(frozen=True, slots=True)
class Disagreement:
    """How PayFast's view of a subscription that is active here differs from ours."""

    cancelled: bool  # cancelled at PayFast: no further charges
    paused: bool  # paused at PayFast: Tenancy keeps no paused state, so no repair can show it
    amount: Decimal | None  # PayFast's recurring amount, when it charges another than ours

    @property
    def resyncable(self) -> bool:
        """Whether re-syncing ours from PayFast changes anything (a pause alone it cannot)."""
        return self.cancelled or self.amount is not None

    def reasons(self, ours: Subscription) -> list[str]:
        """Each disagreement in words, for the summary and the evidence."""
        reasons = ["cancelled at PayFast, active here"] if self.cancelled else []
        if self.paused:
            reasons.append("paused at PayFast, active here")
        if self.amount is not None:
            reasons.append(f"PayFast charges R{self.amount:.2f}, we expect R{ours.recurring_amount:.2f}")
        return reasons


def disagreement(ours: Subscription, view: PayfastSubscription) -> Disagreement | None:
    """How PayFast's `view` disagrees with `ours`, or None when it does not. Only an active
    subscription of ours can: one cancelling here charges nothing more, whatever PayFast says.
    The amount of one cancelled at PayFast no longer matters either."""
    if ours.status is not SubscriptionStatus.ACTIVE or view.token != ours.token:
        return None
    cancelled = view.status_text == PAYFAST_CANCELLED
    paused = view.status_text == PAYFAST_PAUSED
    amount = None if cancelled or view.amount_cents == cents(ours.recurring_amount) else payfast_amount(view)
    found = Disagreement(cancelled, paused, amount)
    return found if cancelled or paused or amount is not None else None


@rule("SUB003", Finding.SUBSCRIPTION_OUT_OF_SYNC)
def subscription_out_of_sync(case: CaseFile, context: Context) -> Found | None:
    """PayFast's own view of the tenant's subscription (its `fetch`, asked only when one purchase
    is diagnosed, never by the audit) disagrees with ours, which is active: cancelled there (on
    PayFast's site, its CANCELLED ITN never reaching us), paused there, or charging another amount.
    PayFast charges the card, so its word stands: the repair re-syncs ours from it. A pause it
    cannot show (Tenancy keeps no paused state): that one goes to Finance to settle at PayFast."""
    ours, view = case.subscription, case.payfast
    if ours is None or view is None:
        return None
    found = disagreement(ours, view)
    if found is None:
        return None
    reasons = found.reasons(ours)
    fields: dict[str, object] = {
        "token": ours.token,
        "status": ours.status.value,
        "recurring_amount": f"{ours.recurring_amount:.2f}",
        "payfast_status": view.status_text,
        "payfast_amount": f"{payfast_amount(view):.2f}",
        "payfast_run_date": view.run_date,
        "disagreements": reasons,
    }
    text = (
        f"ours {ours.status.value} R{ours.recurring_amount:.2f} / {ours.frequency.period_word}, PayFast "
        f"{view.status_text} R{payfast_amount(view):.2f} / {payfast_period(view)}: {'; '.join(reasons)}"
    )
    evidence = Evidence(Store.SUBSCRIPTIONS, fields, text)
    summary = f"PayFast's view of subscription {ours.token} disagrees with ours: {'; '.join(reasons)}."
    # A pause is Finance's to settle at PayFast, with the owner: Tenancy keeps no paused state.
    finance = ESCALATION["finance"] if found.paused else None
    if not found.resyncable:
        advice = (
            "PayFast has the subscription paused, which Tenancy cannot show and no repair changes: "
            "have Finance unpause or cancel it at PayFast, with the owner."
        )
        return Found(summary, NextStep(advice, repairable=False), finance, (evidence,))
    steps = ["marks the subscription and the tenant cancelling, as PayFast has it"] if found.cancelled else []
    if found.amount is not None:
        steps.append(f"sets the subscription's recurring amount to PayFast's R{found.amount:.2f}")
    advice = "re-syncs our subscription from PayFast: " + "; ".join(steps)
    if found.paused:
        advice += "; the pause, which Tenancy cannot show, stays for Finance to settle at PayFast"
    return Found(summary, NextStep(advice), finance, (evidence,))
