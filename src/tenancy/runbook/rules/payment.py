"""The rules about the payment: nothing known of the purchase at all, or a payment that is not
(yet) a completed, accepted one."""

from __future__ import annotations

from tenancy.domain.model import PaymentVerdict
from tenancy.runbook.evidence import CaseFile
from tenancy.runbook.findings import ESCALATION, Finding, NextStep
from tenancy.runbook.rules.base import Context, Found, rule

__all__ = ["payment_not_complete", "payment_not_found"]

# Words of a rejection reason that name the security checks, and the money checks.
_SECURITY_CHECKS = ("signature", "source address")
_MONEY_CHECKS = ("amount", "merchant", "plan")


@rule("PAY001", Finding.PAYMENT_NOT_FOUND)
def payment_not_found(case: CaseFile, context: Context) -> Found | None:
    """No ITN, job, tenant or identity user for the selector: the stores know nothing of the
    purchase, so only the customer's PayFast receipt can tell where the money went."""
    if case.payments or case.job is not None or case.tenant is not None or case.identity_user is not None:
        return None
    return Found(
        f"No payment, job, tenant or identity user for {case.selector.describe()}.",
        NextStep("Ask the customer for the PayFast receipt (pf_payment_id) and check the merchant dashboard."),
    )


@rule("PAY002", Finding.PAYMENT_NOT_COMPLETE)
def payment_not_complete(case: CaseFile, context: Context) -> Found | None:
    """ITNs, but none COMPLETE and accepted, and no job or tenant: PayFast reported the payment
    FAILED, PENDING or CANCELLED, or a check rejected the ITN. Nothing is provisioned until a
    COMPLETE ITN passes every check. A rejection by the signature or source-address check goes to
    Security, by the amount, merchant or plan check to Finance (RB-001 section 6)."""
    if not case.payments or case.completed_payment is not None or case.job is not None or case.tenant is not None:
        return None
    latest = case.payments[-1]
    if latest.verdict is PaymentVerdict.REJECTED:
        reason = "; ".join(latest.reasons) or "rejected"
        security = any(word in reason for word in _SECURITY_CHECKS)
        money = any(word in reason for word in _MONEY_CHECKS)
        return Found(
            f"The ITN was rejected by a security check: {reason}.",
            NextStep("Nothing was provisioned. Confirm the payment in PayFast's dashboard before acting."),
            ESCALATION["security"] if security else ESCALATION["finance"] if money else None,
        )
    status = latest.payment_status or "unknown"
    return Found(
        f"The payment is {status} ({latest.verdict.value}): nothing is provisioned until PayFast reports COMPLETE.",
        NextStep("Ask the customer to complete the payment; PayFast sends a new ITN when it does."),
    )
