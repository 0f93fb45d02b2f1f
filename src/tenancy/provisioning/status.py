"""What a buyer sees after paying: is the purchase still on its way, being set up, ready, or stuck.

Read from the journal first (a job exists once a COMPLETE payment was accepted), then from the
ledger (a payment that arrived but started no job says why)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tenancy.domain.model import JobStatus, PaymentVerdict
from tenancy.ports import PaymentLedger, ProvisioningJournal

__all__ = ["PurchaseState", "PurchaseStatus", "purchase_status"]


class PurchaseState(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"  # PayFast has not told us yet; its ITN may trail the buyer
    SETTING_UP = "setting_up"
    READY = "ready"
    FAILED = "failed"
    PAYMENT_FAILED = "payment_failed"


_MESSAGES = {
    PurchaseState.AWAITING_PAYMENT: "Waiting for PayFast to confirm your payment…",
    PurchaseState.SETTING_UP: "Setting up your site…",
    PurchaseState.READY: "Ready: check your email for your sign-in details.",
    PurchaseState.FAILED: "We could not finish setting up your account. Our team has been alerted; "
    "please contact support and quote your transaction id.",
    PurchaseState.PAYMENT_FAILED: "PayFast reports that your payment did not go through. You can try again.",
}


@dataclass(frozen=True, slots=True)
class PurchaseStatus:
    transaction_id: str
    state: PurchaseState

    @property
    def message(self) -> str:
        return _MESSAGES[self.state]

    @property
    def finished(self) -> bool:
        return self.state is not PurchaseState.AWAITING_PAYMENT and self.state is not PurchaseState.SETTING_UP

    def as_document(self) -> dict[str, object]:
        return {
            "transaction_id": self.transaction_id,
            "state": self.state.value,
            "message": self.message,
            "finished": self.finished,
        }


def purchase_status(transaction_id: str, journal: ProvisioningJournal, ledger: PaymentLedger) -> PurchaseStatus:
    job = journal.get(transaction_id)
    if job is not None:
        if job.status is JobStatus.SUCCEEDED:
            return PurchaseStatus(transaction_id, PurchaseState.READY)
        if job.status in {JobStatus.NEEDS_REVIEW, JobStatus.DEAD_LETTERED}:
            return PurchaseStatus(transaction_id, PurchaseState.FAILED)
        return PurchaseStatus(transaction_id, PurchaseState.SETTING_UP)
    payments = ledger.find(transaction_id=transaction_id)
    if any(payment.payment_status == "FAILED" for payment in payments if payment.verdict is PaymentVerdict.ACCEPTED):
        return PurchaseStatus(transaction_id, PurchaseState.PAYMENT_FAILED)
    # A rejected or unconfirmed ITN may still be followed by a genuine one (PayFast retries).
    return PurchaseStatus(transaction_id, PurchaseState.AWAITING_PAYMENT)
