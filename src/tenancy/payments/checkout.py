"""The PayFast payment form that sends a buyer to PayFast: its fields in PayFast's documented
order, signed as checkout forms are (empty values dropped, values trimmed).

Each checkout has a status key: a random secret in the return URL only the buyer is sent to, whose
SHA-256 digest rides in a custom field PayFast echoes in its signed ITN. The ledger keeps the ITN,
so the purchase's status opens to the key alone, with no store of keys and no server secret.

A subscription plan's form also carries PayFast's recurring fields (`payfast-subscriptions.md`):
PayFast charges the first amount now and the recurring amount every period until cancelled."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

from tenancy.domain.ids import normalize_email
from tenancy.domain.plans import Plan
from tenancy.errors import ConfigurationError, InvalidInputError
from tenancy.payments.payfast import checkout_signature

__all__ = [
    "STATUS_KEY_FIELD",
    "TENANT_ID_FIELD",
    "Buyer",
    "CheckoutLinks",
    "checkout_fields",
    "checkout_signature_matches",
    "item_name_for",
    "new_status_key",
    "parse_buyer",
    "payfast_today",
    "status_key_digest",
    "status_key_matches",
]

MAX_NAME_LENGTH = 100
MAX_EMAIL_LENGTH = 254
# custom_str1 is the plan, custom_str2 the tenant a checkout for an existing tenant is for.
TENANT_ID_FIELD = "custom_str2"
STATUS_KEY_FIELD = "custom_str3"
# PayFast's `subscription_type` for a subscription PayFast itself bills on schedule.
_RECURRING_BILLING = "1"
# `cycles` 0: charge every period until the subscription is cancelled.
_UNTIL_CANCELLED = "0"
# South Africa Standard Time, PayFast's day (UTC+2 all year, no daylight saving).
_PAYFAST_TIMEZONE = timezone(timedelta(hours=2), "SAST")


def payfast_today(now: datetime) -> date:
    """The date it is at PayFast at `now` (an aware time, the clock's). A subscription's first
    `billing_date` is today in PayFast's eyes: from 22:00 UTC, the UTC date is already yesterday."""
    return now.astimezone(_PAYFAST_TIMEZONE).date()


def new_status_key() -> str:
    """A checkout's status key: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def status_key_digest(key: str) -> str:
    """What the checkout form (and so the ITN) carries in STATUS_KEY_FIELD: the key's SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def status_key_matches(key: str, digest: str | None) -> bool:
    """Whether `key` is the one whose digest is `digest`, compared in constant time. An empty key or
    digest (a checkout from before status keys, or a manual purchase) matches nothing."""
    if not key or not digest:
        return False
    return hmac.compare_digest(status_key_digest(key).encode("ascii"), digest.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Buyer:
    name_first: str
    name_last: str
    email: str


@dataclass(frozen=True, slots=True)
class CheckoutLinks:
    """Where PayFast sends the buyer back (return, cancel) and where it posts the ITN (notify)."""

    base_url: str

    def return_url(self, transaction_id: str, status_key: str) -> str:
        # PayFast adds nothing to return_url, so the transaction id and the status key travel in it.
        return f"{self.base_url}/checkout/return?{urlencode({'txn': transaction_id, 'key': status_key})}"

    @staticmethod
    def status_key_in(return_url: str) -> str:
        """The status key a return URL carries ("" when it has none)."""
        return parse_qs(urlsplit(return_url).query).get("key", [""])[0]

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
    status_key: str,
    merchant_id: str,
    merchant_key: str,
    links: CheckoutLinks,
    passphrase: str | None,
    today: date,
    tenant_id: str | None = None,
) -> list[tuple[str, str]]:
    """The form's hidden fields, signature last. Empty values stay out of the form, as PayFast
    drops them from the signature. `status_key` goes into the return URL, its digest into
    STATUS_KEY_FIELD (signed, so it cannot be swapped for another). `tenant_id` names the
    existing tenant a checkout is for (a plan change, buying again) in TENANT_ID_FIELD, signed.

    A subscription plan adds PayFast's recurring fields after the others, first billed `today`
    (see `payfast_today`); PayFast refuses a subscription without a passphrase, so this does too."""
    if plan.billing is not None and not passphrase:
        raise ConfigurationError("PayFast subscriptions need a passphrase: set TENANCY_PAYFAST_PASSPHRASE")
    fields = [
        ("merchant_id", merchant_id),
        ("merchant_key", merchant_key),
        ("return_url", links.return_url(transaction_id, status_key)),
        ("cancel_url", links.cancel_url(plan.name)),
        ("notify_url", links.notify_url),
        ("name_first", buyer.name_first),
        ("name_last", buyer.name_last),
        ("email_address", buyer.email),
        ("m_payment_id", transaction_id),
        ("amount", f"{plan.price_zar:.2f}"),
        ("item_name", item_name_for(plan)),
        ("custom_str1", plan.name),
        (TENANT_ID_FIELD, tenant_id or ""),
        (STATUS_KEY_FIELD, status_key_digest(status_key)),
    ]
    if plan.billing is not None:
        fields += [
            ("subscription_type", _RECURRING_BILLING),
            ("billing_date", today.isoformat()),
            ("recurring_amount", f"{plan.recurring_price_zar:.2f}"),
            ("frequency", str(plan.billing.value)),
            ("cycles", _UNTIL_CANCELLED),
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
