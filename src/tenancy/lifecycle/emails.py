"""The owner's emails for the lifecycle's time-driven moves: a payment that did not come, the
suspension, the cancellation, the warning before the data is deleted, and the deletion. Each says
what happened, what it means for the site, and what to do next, with the support address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from html import escape

from tenancy.domain.model import OutgoingEmail, TenantStatus

__all__ = ["DELETION_WARNING_SUBJECT", "SUBJECTS", "LifecycleMail"]

SUBJECTS: dict[TenantStatus, str] = {
    TenantStatus.PAST_DUE: "Your Site Builder payment did not go through",
    TenantStatus.SUSPENDED: "Your Site Builder site is suspended",
    TenantStatus.CANCELLED: "Your Site Builder subscription has ended",
    TenantStatus.DELETED: "Your Site Builder account is deleted",
}
DELETION_WARNING_SUBJECT = "Your Site Builder data will be deleted in 7 days"


@dataclass(frozen=True, slots=True)
class LifecycleMail:
    """What every lifecycle email needs: who sends it, where the owner pays, whom to ask."""

    sender: str
    billing_url: str
    support_email: str

    def past_due(self, to: str, *, paid_through: date, grace_until: date) -> OutgoingEmail:
        return self._email(
            to,
            SUBJECTS[TenantStatus.PAST_DUE],
            [
                f"We did not receive your Site Builder payment due on {paid_through.isoformat()}.",
                f"Your site keeps working until {grace_until.isoformat()}. After that it is suspended "
                "until the payment is made.",
                "PayFast tries the card again over the next few days. To fix it now, check the card "
                f"with your bank, or pay from your billing page: {self.billing_url}",
            ],
        )

    def suspended(self, to: str, *, cancel_on: date) -> OutgoingEmail:
        return self._email(
            to,
            SUBJECTS[TenantStatus.SUSPENDED],
            [
                "Your Site Builder site is suspended because its payment is overdue. Your data is kept.",
                f"Pay now to bring it back at once, on the same account: {self.billing_url}",
                f"If it is not paid by {cancel_on.isoformat()}, the subscription is cancelled.",
            ],
        )

    def cancelled(self, to: str, *, delete_on: date) -> OutgoingEmail:
        return self._email(
            to,
            SUBJECTS[TenantStatus.CANCELLED],
            [
                "Your Site Builder subscription has ended and your site is no longer available.",
                f"Your data is kept until {delete_on.isoformat()}, then deleted for good.",
                f"To come back with everything as it was, subscribe again before then: {self.billing_url}",
            ],
        )

    def deletion_warning(self, to: str, *, delete_on: date) -> OutgoingEmail:
        return self._email(
            to,
            DELETION_WARNING_SUBJECT,
            [
                f"Your Site Builder data will be deleted on {delete_on.isoformat()}: your sites, your "
                "files and the accounts of your team.",
                f"To keep it, subscribe again before then: {self.billing_url}",
            ],
        )

    def deleted(self, to: str) -> OutgoingEmail:
        return self._email(
            to,
            SUBJECTS[TenantStatus.DELETED],
            [
                "Your Site Builder account and its data are deleted, as your subscription ended.",
                "We keep only your billing history, as tax law requires.",
            ],
        )

    def _email(self, to: str, subject: str, paragraphs: list[str]) -> OutgoingEmail:
        paragraphs = [*paragraphs, f"Questions? Write to {self.support_email}."]
        return OutgoingEmail(
            to=to,
            subject=subject,
            text="\n\n".join(paragraphs) + "\n",
            html="".join(f"<p>{escape(paragraph)}</p>" for paragraph in paragraphs),
            sender=self.sender,
        )
