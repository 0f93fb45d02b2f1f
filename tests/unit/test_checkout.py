"""The PayFast checkout form (payments.checkout), its status key, and what the return page reports
(provisioning.status) to the key's holder alone."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

from tenancy.bootstrap import Services, build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_MERCHANT_KEY, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.plans import Limits, Plan
from tenancy.errors import InvalidInputError
from tenancy.payments.checkout import (
    STATUS_KEY_FIELD,
    Buyer,
    CheckoutLinks,
    checkout_fields,
    checkout_signature_matches,
    new_status_key,
    parse_buyer,
    status_key_digest,
    status_key_matches,
)
from tenancy.payments.payfast import field_value, signature_matches
from tenancy.payments.simulator import build_itn
from tenancy.provisioning.status import NO_RECORD, PurchaseState, find_purchase, purchase_status

from helpers import journal_job, make_settings, pay, work

# Once-off: the form as it is without PayFast's recurring fields (test_subscription_checkout has those).
PLAN = Plan("starter", "Starter", Decimal("99.00"), Limits(1, 20, 100, custom_domain_allowed=False), billing=None)
LINKS = CheckoutLinks("https://shop.example")
KEY = "the-buyers-status-key"


def form(buyer: Buyer) -> list[tuple[str, str]]:
    return checkout_fields(
        plan=PLAN,
        buyer=buyer,
        transaction_id="TXN-1",
        status_key=KEY,
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        merchant_key=PAYFAST_SANDBOX_MERCHANT_KEY,
        links=LINKS,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
        today=date(2026, 12, 6),
    )


def test_the_form_is_in_payfasts_order_and_signed_over_the_non_empty_values() -> None:
    fields = form(Buyer("Ada", "", "ada@example.com"))

    names = [name for name, _ in fields]
    assert names == ["merchant_id", "merchant_key", "return_url", "cancel_url", "notify_url", "name_first",
                     "email_address", "m_payment_id", "amount", "item_name", "custom_str1", "custom_str3",
                     "signature"]  # fmt: skip
    pairs = "&".join(f"{name}={quote_plus(value)}" for name, value in fields[:-1])
    base = f"{pairs}&passphrase={PAYFAST_SANDBOX_PASSPHRASE}"
    assert fields[-1] == ("signature", hashlib.md5(base.encode()).hexdigest())


def test_the_return_url_carries_the_status_key_and_the_signed_form_its_digest() -> None:
    values = dict(form(Buyer("Ada", "", "ada@example.com")))

    assert values["return_url"] == f"https://shop.example/checkout/return?txn=TXN-1&key={KEY}"
    assert CheckoutLinks.status_key_in(values["return_url"]) == KEY
    assert values[STATUS_KEY_FIELD] == hashlib.sha256(KEY.encode()).hexdigest()
    assert KEY not in values[STATUS_KEY_FIELD]


def test_a_new_status_key_is_192_random_bits_in_url_safe_characters() -> None:
    keys = {new_status_key() for _ in range(100)}

    assert len(keys) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", key) for key in keys)
    key = keys.pop()
    assert parse_qs(urlsplit(LINKS.return_url("TXN-1", key)).query) == {"txn": ["TXN-1"], "key": [key]}


def test_the_status_key_digest_is_sha256_hex_and_only_its_key_matches() -> None:
    digest = status_key_digest("abc")

    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert status_key_matches("abc", digest)
    assert not status_key_matches("abd", digest)
    assert not status_key_matches("abc ", digest)
    assert not status_key_matches("", digest)
    assert not status_key_matches("", status_key_digest(""))  # an empty key opens nothing, ever
    assert not status_key_matches("abc", "")
    assert not status_key_matches("abc", None)
    assert not status_key_matches("abc", digest[:-1])


def test_a_return_url_without_a_key_has_the_empty_key() -> None:
    assert CheckoutLinks.status_key_in("/checkout/return?txn=TXN-1") == ""
    assert CheckoutLinks.status_key_in("not a url") == ""


def test_the_simulated_itn_echoes_the_forms_custom_fields_signed() -> None:
    fields = build_itn(transaction_id="TXN-1", email="ada@example.com", plan="starter", amount="99.00",
                       merchant_id=PAYFAST_SANDBOX_MERCHANT_ID, passphrase=PAYFAST_SANDBOX_PASSPHRASE,
                       custom={STATUS_KEY_FIELD: status_key_digest(KEY), "custom_str1": "ignored"})  # fmt: skip

    names = [name for name, _ in fields]
    assert names[names.index("custom_str1") : names.index("custom_int5") + 1] == [
        *(f"custom_str{n}" for n in range(1, 6)), *(f"custom_int{n}" for n in range(1, 6))]  # fmt: skip
    assert field_value(fields, STATUS_KEY_FIELD) == status_key_digest(KEY)
    assert field_value(fields, "custom_str1") == "starter"
    assert field_value(fields, "custom_str2") == ""
    assert signature_matches(fields, PAYFAST_SANDBOX_PASSPHRASE)
    with pytest.raises(ValueError, match="custom_str6"):
        build_itn(transaction_id="TXN-1", email="ada@example.com", plan="starter", amount="99.00",
                  merchant_id=PAYFAST_SANDBOX_MERCHANT_ID, passphrase=None, custom={"custom_str6": "x"})  # fmt: skip


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


KEYED = {"custom": {STATUS_KEY_FIELD: status_key_digest(KEY)}}


def states(services: Services, transaction_id: str, *keys: str) -> list[PurchaseState]:
    return [purchase_status(transaction_id, key, services.journal, services.ledger).state for key in keys]


def test_purchase_status_from_payment_to_ready(offline: Services) -> None:
    services = offline
    before = purchase_status("TXN-A", KEY, services.journal, services.ledger)
    pay(services, plan="starter", transaction_id="TXN-A", **KEYED)
    queued = purchase_status("TXN-A", KEY, services.journal, services.ledger)
    work(services)
    after = purchase_status("TXN-A", KEY, services.journal, services.ledger)

    assert [before.state, queued.state, after.state] == [
        PurchaseState.NO_RECORD, PurchaseState.SETTING_UP, PurchaseState.READY]  # fmt: skip
    assert not before.known
    assert before.message.startswith(NO_RECORD)
    assert after.finished
    assert not queued.finished


def test_without_the_key_a_purchase_is_no_record_at_every_stage(offline: Services) -> None:
    services = offline
    keys = ("", "a-wrong-key", status_key_digest(KEY), KEY.upper())

    unpaid = states(services, "TXN-B", *keys)
    pay(services, plan="starter", transaction_id="TXN-B", **KEYED)
    queued = states(services, "TXN-B", *keys)
    work(services)
    ready = states(services, "TXN-B", *keys)

    assert unpaid == queued == ready == [PurchaseState.NO_RECORD] * len(keys)
    assert states(services, "TXN-B", KEY) == [PurchaseState.READY]


def test_a_failed_payment_is_reported_as_such(offline: Services) -> None:
    services = offline
    pay(services, plan="starter", transaction_id="TXN-F", status="FAILED", **KEYED)

    status = purchase_status("TXN-F", KEY, services.journal, services.ledger)

    assert status.state is PurchaseState.PAYMENT_FAILED
    assert status.finished
    assert "did not go through" in status.message
    assert states(services, "TXN-F", "", "wrong") == [PurchaseState.NO_RECORD] * 2


def test_a_pending_payment_is_awaiting_confirmation(offline: Services) -> None:
    pay(offline, plan="starter", transaction_id="TXN-P", status="PENDING", **KEYED)

    assert states(offline, "TXN-P", KEY, "") == [PurchaseState.AWAITING_PAYMENT, PurchaseState.NO_RECORD]


def test_a_purchase_from_before_status_keys_has_no_public_status(offline: Services) -> None:
    pay(offline, plan="starter", transaction_id="TXN-OLD")  # custom_str3 empty
    work(offline)

    assert states(offline, "TXN-OLD", "", "any-key") == [PurchaseState.NO_RECORD] * 2


def test_an_itn_that_was_not_accepted_opens_nothing_even_with_the_digest(offline: Services) -> None:
    pay(offline, plan="starter", transaction_id="TXN-X", passphrase="forged", **KEYED)  # rejected: signature
    (entry,) = offline.ledger.find(transaction_id="TXN-X")

    assert entry.verdict.value == "rejected"
    assert field_value(entry.fields, STATUS_KEY_FIELD) == status_key_digest(KEY)
    assert states(offline, "TXN-X", KEY) == [PurchaseState.NO_RECORD]


def test_an_rb001_manual_purchase_has_no_public_status(offline: Services) -> None:
    journal_job(offline, "TXN-123456", "user@example.com")  # what `tenancy provision` writes: no ITN

    assert states(offline, "TXN-123456", "", KEY, "123456") == [PurchaseState.NO_RECORD] * 3


def test_a_keyed_payment_never_opens_a_job_it_did_not_start(offline: Services) -> None:
    """A manual job under the same id is not the buyer's: the key shows its own payment only."""
    journal_job(offline, "TXN-SHARED", "user@example.com")
    pay(offline, plan="starter", transaction_id="TXN-SHARED", **KEYED)

    purchase = find_purchase("TXN-SHARED", KEY, offline.journal, offline.ledger)

    assert purchase is not None
    assert purchase.job is None
    assert states(offline, "TXN-SHARED", KEY) == [PurchaseState.AWAITING_PAYMENT]
