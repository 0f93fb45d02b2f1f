"""The PayFast checkout form (payments.checkout) and what the return page reports (provisioning.status)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from tenancy.bootstrap import Services, build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_MERCHANT_KEY, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.plans import Limits, Plan
from tenancy.errors import InvalidInputError
from tenancy.payments.checkout import Buyer, CheckoutLinks, checkout_fields, checkout_signature_matches, parse_buyer
from tenancy.provisioning.status import PurchaseState, purchase_status

from helpers import make_settings, pay, work

PLAN = Plan("starter", "Starter", Decimal("99.00"), Limits(1, 20, 100, custom_domain_allowed=False))
LINKS = CheckoutLinks("https://shop.example")


def form(buyer: Buyer) -> list[tuple[str, str]]:
    return checkout_fields(
        plan=PLAN,
        buyer=buyer,
        transaction_id="TXN-1",
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        merchant_key=PAYFAST_SANDBOX_MERCHANT_KEY,
        links=LINKS,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
    )


def test_the_form_is_in_payfasts_order_and_signed_over_the_non_empty_values() -> None:
    fields = form(Buyer("Ada", "", "ada@example.com"))

    names = [name for name, _ in fields]
    assert names == ["merchant_id", "merchant_key", "return_url", "cancel_url", "notify_url", "name_first",
                     "email_address", "m_payment_id", "amount", "item_name", "custom_str1", "signature"]  # fmt: skip
    pairs = "&".join(f"{name}={quote_plus(value)}" for name, value in fields[:-1])
    base = f"{pairs}&passphrase={PAYFAST_SANDBOX_PASSPHRASE}"
    assert fields[-1] == ("signature", hashlib.md5(base.encode()).hexdigest())


def test_a_changed_field_or_a_missing_signature_no_longer_matches() -> None:
    fields = form(Buyer("Ada", "Lovelace", "ada@example.com"))
    cheaper = [(name, "1.00" if name == "amount" else value) for name, value in fields]
    unsigned = fields[:-1]

    assert checkout_signature_matches(fields, PAYFAST_SANDBOX_PASSPHRASE)
    assert not checkout_signature_matches(cheaper, PAYFAST_SANDBOX_PASSPHRASE)
    assert not checkout_signature_matches(unsigned, PAYFAST_SANDBOX_PASSPHRASE)
    assert not checkout_signature_matches(fields, "another passphrase")


@pytest.mark.parametrize(
    ("name", "email", "problem"),
    [
        ("", "ada@example.com", "Enter your name"),
        ("x" * 101, "ada@example.com", "at most 100"),
        ("Ada", "ada", "valid email"),
        ("Ada", "ada@localhost", "valid email"),
        ("Ada", "a da@example.com", "valid email"),
    ],
)
def test_bad_buyer_details_say_what_is_wrong(name: str, email: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        parse_buyer(name, email)


def test_buyer_details_are_tidied() -> None:
    tidied = parse_buyer("  Ada   King  Lovelace ", " Ada@Example.COM ")

    assert tidied == Buyer("Ada", "King Lovelace", "ada@example.com")


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Services]:
    services = build(make_settings(tmp_path / "home", payfast_mode="offline"))
    yield services
    services.close()


def test_purchase_status_from_payment_to_ready(offline: Services) -> None:
    services = offline
    before = purchase_status("TXN-A", services.journal, services.ledger)
    pay(services, plan="starter", transaction_id="TXN-A")
    queued = purchase_status("TXN-A", services.journal, services.ledger)
    work(services)
    after = purchase_status("TXN-A", services.journal, services.ledger)

    assert [before.state, queued.state, after.state] == [
        PurchaseState.AWAITING_PAYMENT, PurchaseState.SETTING_UP, PurchaseState.READY]  # fmt: skip
    assert after.finished
    assert not queued.finished


def test_a_failed_payment_is_reported_as_such(offline: Services) -> None:
    services = offline
    pay(services, plan="starter", transaction_id="TXN-F", status="FAILED")

    status = purchase_status("TXN-F", services.journal, services.ledger)

    assert status.state is PurchaseState.PAYMENT_FAILED
    assert status.finished
    assert "did not go through" in status.message
