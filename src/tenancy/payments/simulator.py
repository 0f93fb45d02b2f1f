"""Builds signed ITNs the way PayFast sends them: for demos (`tenancy itn send`), tests and benchmarks."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from decimal import Decimal

from tenancy.payments.payfast import encode_value, itn_signature

__all__ = ["CUSTOM_FIELDS", "build_itn", "encode_form", "new_subscription_token"]

# The custom fields PayFast echoes from the checkout form, in the ITN's order; custom_str1 is the plan.
CUSTOM_FIELDS = (*(f"custom_str{n}" for n in range(1, 6)), *(f"custom_int{n}" for n in range(1, 6)))


def build_itn(
    *,
    transaction_id: str,
    email: str,
    plan: str,
    amount: Decimal | str,
    merchant_id: str,
    passphrase: str | None,
    status: str = "COMPLETE",
    pf_payment_id: str | None = None,
    name_first: str = "Test",
    name_last: str = "Customer",
    custom: Mapping[str, str] | None = None,
    token: str | None = None,
    billing_date: str | None = None,
) -> list[tuple[str, str]]:
    """The fields in PayFast's order, with a correct signature last. `custom` holds the checkout
    form's custom fields, echoed as PayFast echoes them (custom_str1 is always `plan`). A
    subscription's ITN also carries its `token` and `billing_date` (YYYY-MM-DD), signed, just
    before the signature; with neither, the ITN is a once-off payment's, as before."""
    echoed = {**(custom or {}), "custom_str1": plan}
    if unknown := set(echoed) - set(CUSTOM_FIELDS):
        raise ValueError(f"not a PayFast custom field: {', '.join(sorted(unknown))}")
    gross = Decimal(str(amount)).quantize(Decimal("0.01"))
    fee = (gross * Decimal("-0.035")).quantize(Decimal("0.01"))
    fields: list[tuple[str, str]] = [
        ("m_payment_id", transaction_id),
        ("pf_payment_id", pf_payment_id or str(secrets.randbelow(10**9) + 10**9)),
        ("payment_status", status),
        ("item_name", f"Site Builder {plan}"),
        ("item_description", ""),
    ]
    if status != "CANCELLED":
        fields += [("amount_gross", str(gross)), ("amount_fee", str(fee)), ("amount_net", str(gross + fee))]
    fields += [(name, echoed.get(name, "")) for name in CUSTOM_FIELDS]
    fields += [
        ("name_first", name_first),
        ("name_last", name_last),
        ("email_address", email),
        ("merchant_id", merchant_id),
    ]
    fields += [(name, value) for name, value in (("token", token), ("billing_date", billing_date)) if value is not None]
    fields.append(("signature", itn_signature(fields, passphrase)))
    return fields


def new_subscription_token() -> str:
    """A subscription token shaped as PayFast's are: a UUID4, 36 characters with hyphens."""
    return str(uuid.uuid4())


def encode_form(fields: list[tuple[str, str]]) -> bytes:
    """`application/x-www-form-urlencoded` in the given order, encoded as PayFast encodes it."""
    return "&".join(f"{key}={encode_value(value)}" for key, value in fields).encode("utf-8")
