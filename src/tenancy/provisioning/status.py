"""What a buyer sees after paying: is the purchase still on its way, being set up, ready, or stuck.

Only the holder of the checkout's status key sees it (payments.checkout): the key's digest must be
in an accepted ITN of the transaction. Read from the ledger first (the keyed payments), then from
the journal (a job exists once a COMPLETE payment was accepted)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict, ProvisioningJob
from tenancy.payments.checkout import STATUS_KEY_FIELD, status_key_matches
from tenancy.payments.payfast import field_value
from tenancy.ports import PaymentLedger, ProvisioningJournal

__all__ = ["NO_RECORD", "KeyedPurchase", "PurchaseState", "PurchaseStatus", "find_purchase", "purchase_status"]

# What every answer without a matching key says, whether or not the transaction exists.
NO_RECORD = "We have no record of this payment"


class PurchaseState(StrEnum):
    # No payment this key opens: an unknown transaction, a wrong key, or an ITN still on its way.
    NO_RECORD = "no_record"
    AWAITING_PAYMENT = "awaiting_payment"  # PayFast says PENDING: the payment is not through yet
    SETTING_UP = "setting_up"
    READY = "ready"
    FAILED = "failed"
    # Paid, but the email already has an account (RB-001 section 6): the job waits for a person.
    ACCOUNT_EXISTS = "account_exists"
    PAYMENT_FAILED = "payment_failed"


_MESSAGES = {
    PurchaseState.NO_RECORD: f"{NO_RECORD} yet. If you have just paid, PayFast may still be confirming it; "
    "this page updates by itself.",
    PurchaseState.AWAITING_PAYMENT: "Waiting for PayFast to confirm your payment…",
    PurchaseState.SETTING_UP: "Setting up your site…",
    PurchaseState.READY: "Ready: check your email for your sign-in details.",
    # What to do next (the support address, the reference) is the return page's to say.
    PurchaseState.FAILED: "We could not finish setting up your site. Our team has been alerted.",
    PurchaseState.ACCOUNT_EXISTS: "This email address already has a Site Builder account, "
    "so we did not set up a second one.",
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
    def known(self) -> bool:
        """False for NO_RECORD: the JSON answers are then a 404, as for a transaction never seen."""
        return self.state is not PurchaseState.NO_RECORD

    @property
    def finished(self) -> bool:
        return self.state in {
            PurchaseState.READY,
            PurchaseState.FAILED,
            PurchaseState.ACCOUNT_EXISTS,
            PurchaseState.PAYMENT_FAILED,
        }

    def as_document(self) -> dict[str, object]:
        return {
            "transaction_id": self.transaction_id,
            "state": self.state.value,
            "message": self.message,
            "finished": self.finished,
        }


@dataclass(frozen=True, slots=True)
class KeyedPurchase:
    """What a status key opens: the transaction's accepted ITNs that carry the key's digest, and
    the provisioning job one of them started (None until a COMPLETE one did)."""

    transaction_id: str
    payments: tuple[PaymentRecord, ...]
    job: ProvisioningJob | None


def find_purchase(
    transaction_id: str, status_key: str, journal: ProvisioningJournal, ledger: PaymentLedger
) -> KeyedPurchase | None:
    """The purchase `status_key` opens, or None alike for an unknown transaction, a missing or
    wrong key, and a purchase that has no key (RB-001's manual trigger, which sends no ITN)."""
    if not status_key:
        return None
    payments = tuple(
        payment
        for payment in ledger.find(transaction_id=transaction_id)
        if payment.verdict is PaymentVerdict.ACCEPTED
        and status_key_matches(status_key, field_value(payment.fields, STATUS_KEY_FIELD))
    )
    if not payments:
        return None
    job = journal.get(transaction_id)
    # Only the job a keyed payment started: not a manual job that happens to share the id.
    if job is not None and (job.pf_payment_id is None or job.pf_payment_id not in {p.pf_payment_id for p in payments}):
        job = None
    return KeyedPurchase(transaction_id, payments, job)


def purchase_status(
    transaction_id: str, status_key: str, journal: ProvisioningJournal, ledger: PaymentLedger
) -> PurchaseStatus:
    purchase = find_purchase(transaction_id, status_key, journal, ledger)
    if purchase is None:
        return PurchaseStatus(transaction_id, PurchaseState.NO_RECORD)
    job = purchase.job
    if job is not None:
        if job.status is JobStatus.SUCCEEDED:
            return PurchaseStatus(transaction_id, PurchaseState.READY)
        if job.status is JobStatus.NEEDS_REVIEW:
            # The saga stops for review only when the email already owns an account (another
            # tenant, or an operator account): no second site is set up, the first is untouched.
            return PurchaseStatus(transaction_id, PurchaseState.ACCOUNT_EXISTS)
        if job.status is JobStatus.DEAD_LETTERED:
            return PurchaseStatus(transaction_id, PurchaseState.FAILED)
        return PurchaseStatus(transaction_id, PurchaseState.SETTING_UP)
    if any(payment.payment_status == "FAILED" for payment in purchase.payments):
        return PurchaseStatus(transaction_id, PurchaseState.PAYMENT_FAILED)
    # PENDING (or CANCELLED): a COMPLETE may still follow.
    return PurchaseStatus(transaction_id, PurchaseState.AWAITING_PAYMENT)
