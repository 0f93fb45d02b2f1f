"""The PayFast payment form that sends a buyer to PayFast: its fields in PayFast's documented
order, signed as checkout forms are (empty values dropped, values trimmed)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from tenancy.domain.ids import normalize_email
from tenancy.domain.plans import Plan
from tenancy.errors import InvalidInputError
from tenancy.payments.payfast import checkout_signature

__all__ = ["Buyer", "CheckoutLinks", "checkout_fields", "checkout_signature_matches", "item_name_for", "parse_buyer"]

MAX_NAME_LENGTH = 100
MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True, slots=True)
class Buyer:
    name_first: str
    name_last: str
    email: str


@dataclass(frozen=True, slots=True)
class CheckoutLinks:
    """Where PayFast sends the buyer back (return, cancel) and where it posts the ITN (notify)."""

    base_url: str

    def return_url(self, transaction_id: str) -> str:
        # PayFast adds nothing to return_url, so the transaction id travels in it.
        return f"{self.base_url}/checkout/return?{urlencode({'txn': transaction_id})}"

    def cancel_url(self, plan: str) -> str:
        return f"{self.base_url}/checkout?{urlencode({'plan': plan, 'cancelled': '1'})}"

    @property
    def notify_url(self) -> str:
        return f"{self.base_url}/payments/payfast/itn"


def parse_buyer(name: str, email: str) -> Buyer:
    """The buyer from a checkout form's two fields; InvalidInputError says what is wrong."""
    name = " ".join(name.split())
    email = normalize_email(email)
    if not name:
        raise InvalidInputError("Enter your name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"Your name must be at most {MAX_NAME_LENGTH} characters")
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > MAX_EMAIL_LENGTH or any(c.isspace() for c in email):
        raise InvalidInputError("Enter a valid email address")
    first, _, last = name.partition(" ")
    return Buyer(name_first=first, name_last=last, email=email)


def item_name_for(plan: Plan) -> str:
    return f"Site Builder {plan.name}"


def checkout_fields(
    *,
    plan: Plan,
    buyer: Buyer,
    transaction_id: str,
    merchant_id: str,
    merchant_key: str,
    links: CheckoutLinks,
    passphrase: str | None,
) -> list[tuple[str, str]]:
    """The form's hidden fields, signature last. Empty values stay out of the form, as PayFast
    drops them from the signature."""
    fields = [
        ("merchant_id", merchant_id),
        ("merchant_key", merchant_key),
        ("return_url", links.return_url(transaction_id)),
        ("cancel_url", links.cancel_url(plan.name)),
        ("notify_url", links.notify_url),
        ("name_first", buyer.name_first),
        ("name_last", buyer.name_last),
        ("email_address", buyer.email),
        ("m_payment_id", transaction_id),
        ("amount", f"{plan.price_zar:.2f}"),
        ("item_name", item_name_for(plan)),
        ("custom_str1", plan.name),
    ]
    fields = [(key, value) for key, value in fields if value.strip()]
    fields.append(("signature", checkout_signature(fields, passphrase)))
    return fields


def checkout_signature_matches(fields: Sequence[tuple[str, str]], passphrase: str | None) -> bool:
    """Whether a posted-back form is one we signed, unchanged."""
    received = dict(fields).get("signature", "")
    unsigned = [(key, value) for key, value in fields if key != "signature"]
    expected = checkout_signature(unsigned, passphrase)
    return hmac.compare_digest(received.encode("utf-8"), expected.encode("ascii"))
