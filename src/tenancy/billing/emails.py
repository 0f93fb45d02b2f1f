"""The owner's billing emails: a receipt for each renewal, and the notice of a cancellation with
the last day of access. Text and escaped HTML, like the welcome email."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from html import escape

from tenancy.domain.model import OutgoingEmail
from tenancy.domain.plans import Plan

__all__ = ["CANCELLATION_SUBJECT", "RECEIPT_SUBJECT", "cancellation_email", "receipt_email"]

RECEIPT_SUBJECT = "Your Site Builder receipt"
CANCELLATION_SUBJECT = "Your Site Builder subscription is cancelled"


def _html(paragraphs: list[str]) -> str:
    return "".join(f"<p>{escape(paragraph)}</p>" for paragraph in paragraphs)


def receipt_email(
    *,
    to: str,
    plan: Plan,
    amount: Decimal,
    invoice_number: str,
    paid_through: date,
    account_url: str,
    sender: str,
    support_email: str,
    tags: dict[str, str],
) -> OutgoingEmail:
    paragraphs = [
        "Thank you: your Site Builder subscription has renewed.",
        f"Invoice {invoice_number}: R{amount:.2f} for the {plan.display_name} plan.",
        f"Paid through {paid_through.isoformat()}.",
        f"Your billing history and invoices: {account_url}",
        f"Questions? Write to {support_email}.",
    ]
    return OutgoingEmail(
        to=to,
        subject=f"{RECEIPT_SUBJECT} {invoice_number}",
        text="\n\n".join(paragraphs) + "\n",
        html=_html(paragraphs),
        sender=sender,
        tags=tags,
    )


def cancellation_email(
    *, to: str, last_day: date, account_url: str, sender: str, support_email: str, tags: dict[str, str]
) -> OutgoingEmail:
    paragraphs = [
        "Your Site Builder subscription is cancelled: PayFast will not charge you again.",
        f"You keep full access until {last_day.isoformat()}, the last day you paid for.",
        f"Changed your mind? Subscribe again from your account before then: {account_url}",
        f"Questions? Write to {support_email}.",
    ]
    return OutgoingEmail(
        to=to,
        subject=CANCELLATION_SUBJECT,
        text="\n\n".join(paragraphs) + "\n",
        html=_html(paragraphs),
        sender=sender,
        tags=tags,
    )
