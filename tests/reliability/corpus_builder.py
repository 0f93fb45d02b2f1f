"""Builds the hostile-ITN corpus: each case is a raw body PayFast never sent, named
`NN-what__reason.itn`, where `reason` is a word the rejection must contain.

Run `python tests/reliability/corpus_builder.py` to rewrite tests/reliability/corpus/;
test_hostile_itns.py checks the files are exactly what this builds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_MERCHANT_KEY, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.payments.payfast import checkout_signature, itn_signature
from tenancy.payments.simulator import build_itn, encode_form

CORPUS = Path(__file__).parent / "corpus"
MERCHANT_KEY = PAYFAST_SANDBOX_MERCHANT_KEY  # public, and in every checkout form's HTML anyway
Fields = list[tuple[str, str]]


def signed(**changes: str) -> Fields:
    """A genuine-looking ITN, correctly signed, with `changes` applied before signing."""
    values = {
        "transaction_id": changes.pop("transaction_id", "TXN-HOSTILE"),
        "pf_payment_id": changes.pop("pf_payment_id", "7000001"),
        "email": changes.pop("email", "victim@example.com"),
        "plan": changes.pop("plan", "professional"),
        "amount": changes.pop("amount", "299.00"),
        "merchant_id": changes.pop("merchant_id", PAYFAST_SANDBOX_MERCHANT_ID),
        "passphrase": changes.pop("passphrase", PAYFAST_SANDBOX_PASSPHRASE),
        "status": changes.pop("status", "COMPLETE"),
        "name_first": changes.pop("name_first", "Eve"),
        "name_last": changes.pop("name_last", "Mallory"),
    }
    fields = build_itn(**values)
    if changes:
        fields = resign([(key, changes.get(key, value)) for key, value in fields])
    return fields


def resign(fields: Fields, passphrase: str | None = PAYFAST_SANDBOX_PASSPHRASE) -> Fields:
    body = [(key, value) for key, value in fields if key != "signature"]
    return [*body, ("signature", itn_signature(body, passphrase))]


def without(name: str) -> Fields:
    return resign([(key, value) for key, value in signed() if key != name])


def tampered(name: str, value: str) -> Fields:
    """A field changed after signing: what an attacker without the passphrase can do."""
    return [(key, value if key == name else original) for key, original in signed()]


def with_signature(value: str) -> Fields:
    return [(key, value if key == "signature" else original) for key, original in signed()]


def raw(fields: Fields) -> bytes:
    return encode_form(fields)


def checkout_form(transaction_id: str = "TXN-HOSTILE") -> Fields:
    """A checkout form as our checkout page hands it to any buyer (the fields checkout.py's
    `checkout_fields` writes, signed as it signs them, signature last): what an attacker holds
    without the passphrase. Written out here so that the corpus stays fixed while the form grows."""
    fields = [
        ("merchant_id", PAYFAST_SANDBOX_MERCHANT_ID),
        ("merchant_key", MERCHANT_KEY),
        ("return_url", f"https://shop.example/checkout/return?txn={transaction_id}"),
        ("cancel_url", "https://shop.example/checkout?plan=professional&cancelled=1"),
        ("notify_url", "https://shop.example/payments/payfast/itn"),
        ("name_first", "Eve"),
        ("name_last", "Mallory"),
        ("email_address", "eve@example.com"),
        ("m_payment_id", transaction_id),
        ("amount", "299.00"),
        ("item_name", "Site Builder professional"),
        ("custom_str1", "professional"),
    ]
    return [*fields, ("signature", checkout_signature(fields, PAYFAST_SANDBOX_PASSPHRASE))]


def forged_from_checkout(transaction_id: str = "TXN-HOSTILE", pf_payment_id: str = "7000002") -> Fields:
    """A checkout form with its own signature, then what makes it a paid ITN, unsigned after it.
    Its signature matches the fields before it by the ITN rule too (a checkout form has no
    blanks to drop): only a refusal of unsigned fields stops it."""
    paid = [("pf_payment_id", pf_payment_id), ("payment_status", "COMPLETE"), ("amount_gross", "299.00")]
    return [*checkout_form(transaction_id), *paid]


def moved_after_signature(name: str = "payment_status") -> Fields:
    """A genuine ITN signed without `name`, which then follows the signature, unsigned."""
    genuine = signed()
    return [*resign([pair for pair in genuine if pair[0] != name]), (name, dict(genuine)[name])]


def full_width(text: str) -> str:
    """The digits as full-width ones (U+FF10..U+FF19), which str.isdigit() and Decimal() accept."""
    return "".join(chr(ord(char) - ord("0") + 0xFF10) if char in "0123456789" else char for char in text)


def signed_with_extra(name: str, value: str) -> Fields:
    """A genuine ITN with one more field just before its signature, correctly signed."""
    body = signed()[:-1]
    return resign([*body[:-1], (name, value), body[-1]])


def cases() -> dict[str, bytes]:
    genuine = signed()
    signature = dict(genuine)["signature"]
    builders: list[tuple[str, str, Callable[[], bytes]]] = [
        ("missing-m-payment-id", "m_payment_id", lambda: raw(without("m_payment_id"))),
        ("missing-pf-payment-id", "pf_payment_id", lambda: raw(without("pf_payment_id"))),
        ("missing-payment-status", "payment_status", lambda: raw(without("payment_status"))),
        ("missing-merchant-id", "merchant_id", lambda: raw(without("merchant_id"))),
        ("missing-signature", "signature", lambda: raw([pair for pair in genuine if pair[0] != "signature"])),
        ("blank-signature", "signature", lambda: raw(with_signature(""))),
        ("blank-merchant-id", "merchant_id", lambda: raw(signed(merchant_id=""))),
        ("blank-pf-payment-id", "pf_payment_id", lambda: raw(resign(tampered("pf_payment_id", "")))),
        (
            "signature-of-other-fields",
            "signature",
            lambda: raw(with_signature(dict(signed(amount="1.00"))["signature"])),
        ),
        ("fields-reordered-after-signing", "signature", lambda: raw([genuine[1], genuine[0], *genuine[2:]])),
        ("signature-uppercase", "signature", lambda: raw(with_signature(signature.upper()))),
        ("signature-trailing-space", "signature", lambda: raw(with_signature(signature + " "))),
        ("signed-without-passphrase", "signature", lambda: raw(resign(genuine, None))),
        ("signed-with-wrong-passphrase", "signature", lambda: raw(resign(genuine, "guessed-passphrase"))),
        ("signature-first", "signature", lambda: raw([("signature", signature), *genuine[:-1]])),
        ("amount-tampered-after-signing", "signature", lambda: raw(tampered("amount_gross", "1.00"))),
        ("plan-tampered-after-signing", "signature", lambda: raw(tampered("custom_str1", "enterprise"))),
        ("email-tampered-after-signing", "signature", lambda: raw(tampered("email_address", "eve@example.com"))),
        ("sql-in-name-unsigned", "signature", lambda: raw(tampered("name_first", "Robert'); DROP TABLE tenants;--"))),
        ("script-in-name-unsigned", "signature", lambda: raw(tampered("name_last", "<script>alert(1)</script>"))),
        ("html-attribute-in-name-unsigned", "signature", lambda: raw(tampered("name_first", '" onmouseover="x'))),
        ("template-in-name-unsigned", "signature", lambda: raw(tampered("name_first", "{{7*7}}${jndi:ldap://x}"))),
        ("null-byte-in-name-unsigned", "signature", lambda: raw(tampered("name_last", "Mal\x00lory"))),
        ("percent-garbage-unsigned", "signature", lambda: raw(genuine).replace(b"Eve", b"%ZZ%")),
        ("unknown-plan", "plan", lambda: raw(signed(plan="platinum"))),
        ("missing-plan", "plan", lambda: raw(without("custom_str1"))),
        ("amount-two-cents-over", "amount", lambda: raw(signed(amount="299.02"))),
        ("amount-two-cents-under", "amount", lambda: raw(signed(amount="298.98"))),
        ("amount-negative", "amount", lambda: raw(signed(amount_gross="-299.00"))),
        ("amount-huge", "amount", lambda: raw(signed(amount_gross="1" + "0" * 30))),
        ("amount-nan", "amount", lambda: raw(signed(amount_gross="NaN"))),
        ("amount-infinity", "amount", lambda: raw(signed(amount_gross="Infinity"))),
        ("amount-words", "amount", lambda: raw(signed(amount_gross="two hundred"))),
        ("amount-empty", "amount", lambda: raw(signed(amount_gross=""))),
        ("amount-missing", "amount", lambda: raw(without("amount_gross"))),
        ("cheaper-plan-price", "amount", lambda: raw(signed(amount="99.00"))),
        ("wrong-merchant", "merchant", lambda: raw(signed(merchant_id="10000999"))),
        ("status-lowercase", "payment_status", lambda: raw(signed(payment_status="complete"))),
        ("status-unknown", "payment_status", lambda: raw(signed(payment_status="REFUNDED"))),
        ("transaction-id-with-spaces", "transaction id", lambda: raw(signed(transaction_id="TXN 1; DROP"))),
        ("transaction-id-too-long", "transaction id", lambda: raw(signed(transaction_id="TXN-" + "9" * 70))),
        ("transaction-id-unicode", "transaction id", lambda: raw(signed(transaction_id="TXN-ü"))),
        ("email-unicode-domain", "email", lambda: raw(signed(email="user@exämple.com"))),
        ("email-without-at", "email", lambda: raw(signed(email="user.example.com"))),
        ("email-without-domain-dot", "email", lambda: raw(signed(email="user@localhost"))),
        ("email-empty-local-part", "email", lambda: raw(signed(email="@example.com"))),
        ("email-double-at", "email", lambda: raw(signed(email="user@@example.com"))),
        ("email-with-space", "email", lambda: raw(signed(email="us er@example.com"))),
        ("email-double-dot-domain", "email", lambda: raw(signed(email="user@example..com"))),
        ("email-with-markup", "email", lambda: raw(signed(email="<script>@example.com"))),
        ("email-local-part-too-long", "email", lambda: raw(signed(email="u" * 65 + "@example.com"))),
        ("email-blank", "email", lambda: raw(signed(email=""))),
        ("duplicate-keys", "more than once", lambda: raw(genuine) + b"&amount_gross=1.00"),
        ("field-without-name", "no name", lambda: b"=orphan&" + raw(genuine)),
        ("non-utf8-bytes", "UTF-8", lambda: raw(genuine).replace(b"Eve", b"\xff\xfe")),
        ("percent-encoded-non-utf8", "UTF-8", lambda: raw(genuine).replace(b"Eve", b"%FF%FE")),
        ("json-body", "form-urlencoded", lambda: b'{"m_payment_id": "TXN-1"}'),
        ("empty-body", "empty", lambda: b""),
        # Issue 11: a checkout form's signature passed off as an ITN's, and unsigned fields.
        ("forged-from-checkout-signature", "not signed", lambda: raw(forged_from_checkout())),
        ("field-after-signature", "not signed", lambda: raw([*genuine, ("note", "appended")])),
        ("required-field-only-after-signature", "not signed", lambda: raw(moved_after_signature())),
        ("checkout-form-as-itn", "pf_payment_id", lambda: raw(checkout_form())),
        ("merchant-key-in-itn", "merchant_key", lambda: raw(signed_with_extra("merchant_key", MERCHANT_KEY))),
        # Issue 11: amounts PayFast never writes, each correctly signed so only the amount check refuses them.
        ("amount-one-cent-under", "amount", lambda: raw(signed(amount="298.99"))),
        ("amount-one-cent-over", "amount", lambda: raw(signed(amount="299.01"))),
        ("amount-exponent", "amount", lambda: raw(signed(amount_gross="2.99e2"))),
        ("amount-exponent-overflow", "amount", lambda: raw(signed(amount_gross="1e1000000"))),
        ("amount-plus-sign", "amount", lambda: raw(signed(amount_gross="+299.00"))),
        ("amount-leading-space", "amount", lambda: raw(signed(amount_gross=" 299.00"))),
        ("amount-trailing-newline", "amount", lambda: raw(signed(amount_gross="299.00\n"))),
        ("amount-three-decimals", "amount", lambda: raw(signed(amount_gross="299.000"))),
        ("amount-no-decimals", "amount", lambda: raw(signed(amount_gross="299"))),
        ("amount-decimal-comma", "amount", lambda: raw(signed(amount_gross="299,00"))),
        ("amount-full-width-digits", "amount", lambda: raw(signed(amount_gross=full_width("299.00")))),
    ]
    return {f"{number:02d}-{name}__{reason.replace(' ', '-')}.itn": build() for number, (name, reason, build)
            in enumerate(builders, start=1)}  # fmt: skip


def one_megabyte_body() -> bytes:
    """Kept out of the files (it would only bloat the repository); the test sends it too."""
    return raw(signed()) + b"&pad=" + b"x" * 1_048_576


def write() -> None:
    CORPUS.mkdir(exist_ok=True)
    for stale in CORPUS.glob("*.itn"):
        stale.unlink()
    for name, body in cases().items():
        (CORPUS / name).write_bytes(body)


if __name__ == "__main__":
    write()
    sys.stdout.write(f"wrote {len(cases())} cases to {CORPUS}\n")
