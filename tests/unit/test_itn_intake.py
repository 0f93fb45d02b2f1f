"""PaymentIntake on the real embedded stores: PayFast's six checks, the ledger, the journal and the queue.

Only PayFast's validate endpoint (check 5) is replaced, by `StubConfirmer`: PayFast's
servers are the one thing a test cannot run. Everything else is the embedded backend.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal

import pytest

from tenancy.bootstrap import Services
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict
from tenancy.errors import TransientError
from tenancy.payments import payfast
from tenancy.payments.intake import IntakePolicy, PaymentIntake
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.ports import PaymentLedger

from page_client import checkout, form_fields, page_client

MERCHANT_ID = "10000100"
PASSPHRASE = "jt7NOE43FZPn"
PAYFAST_PEER = "197.97.145.150"  # inside 197.97.145.144/28
OUTSIDE_PEER = "8.8.8.8"
EMAIL = "Buyer@Example.com"


class StubConfirmer:
    """PayFast's validate endpoint: answers as configured and remembers what it was asked."""

    def __init__(self) -> None:
        self.answer = True
        self.error: Exception | None = None
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def confirm(self, parameter_string: str) -> bool:
        with self._lock:
            self.asked.append(parameter_string)
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.fixture
def confirmer() -> StubConfirmer:
    return StubConfirmer()


@pytest.fixture
def policy(services: Services) -> IntakePolicy:
    """The policy `services.intake` runs with (sandbox mode: source and confirmation checks on)."""
    settings = services.settings
    built = IntakePolicy(
        merchant_id=settings.payfast_merchant_id,
        passphrase=settings.passphrase,
        source_ranges=settings.payfast_source_ranges,
        trusted_proxies=settings.trusted_proxies,
    )
    assert built.merchant_id == MERCHANT_ID
    assert built.passphrase == PASSPHRASE
    assert built.source_ranges == ("127.0.0.0/8", "197.97.145.144/28")
    assert built.trusted_proxies == ()
    return built


def make_intake(services: Services, policy: IntakePolicy, confirmer: StubConfirmer) -> PaymentIntake:
    return PaymentIntake(policy, services.plans, services.ledger, confirmer, services.clock)


@pytest.fixture
def intake(services: Services, policy: IntakePolicy, confirmer: StubConfirmer) -> PaymentIntake:
    return make_intake(services, policy, confirmer)


def price(services: Services, plan: str = "starter") -> Decimal:
    return services.plans.get(plan).price_zar


def signed_itn(
    services: Services,
    transaction_id: str,
    *,
    plan: str = "starter",
    amount: Decimal | str | None = None,
    status: str = "COMPLETE",
    pf_payment_id: str = "1221576",
    email: str = EMAIL,
    merchant_id: str = MERCHANT_ID,
    passphrase: str | None = PASSPHRASE,
) -> list[tuple[str, str]]:
    return build_itn(
        transaction_id=transaction_id,
        email=email,
        plan=plan,
        amount=price(services, "starter") if amount is None else amount,
        merchant_id=merchant_id,
        passphrase=passphrase,
        status=status,
        pf_payment_id=pf_payment_id,
        name_first="Jane",
        name_last="Buyer",
    )


def resigned(fields: list[tuple[str, str]], passphrase: str | None = PASSPHRASE) -> list[tuple[str, str]]:
    unsigned = [(key, value) for key, value in fields if key != "signature"]
    return [*unsigned, ("signature", payfast.itn_signature(unsigned, passphrase))]


def with_amount_gross(fields: list[tuple[str, str]], amount_gross: str) -> list[tuple[str, str]]:
    """`fields` with another amount_gross, correctly signed again."""
    return resigned([(key, amount_gross if key == "amount_gross" else value) for key, value in fields])


def assert_nothing_provisioned(services: Services) -> None:
    assert services.journal.list_jobs() == []
    assert services.queue.depth() == (0, 0)


def assert_rejected(services: Services, record: PaymentRecord, transaction_id: str, reason: str) -> None:
    assert record.verdict is PaymentVerdict.REJECTED
    assert any(reason in text for text in record.reasons), record.reasons
    kept = services.ledger.find(transaction_id=transaction_id)
    assert [(entry.verdict, entry.reasons) for entry in kept] == [(PaymentVerdict.REJECTED, record.reasons)]
    assert services.journal.get(transaction_id) is None
    assert_nothing_provisioned(services)


# --- A genuine payment ---------------------------------------------------------------------


def test_valid_complete_itn_is_accepted_and_queues_one_provisioning_job(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    fields = signed_itn(services, "TXN-100001")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert record.verdict is PaymentVerdict.ACCEPTED
    assert record.reasons == ()
    assert confirmer.asked == [payfast.parameter_string(fields)]
    assert "signature=" not in confirmer.asked[0]
    assert "passphrase=" not in confirmer.asked[0]

    [kept] = services.ledger.find(transaction_id="TXN-100001")
    assert kept.verdict is PaymentVerdict.ACCEPTED
    assert kept.fields == tuple(fields)
    assert kept.source_ip == PAYFAST_PEER
    assert (kept.pf_payment_id, kept.payment_status, kept.plan) == ("1221576", "COMPLETE", "starter")
    assert kept.amount_gross == "99.00"
    assert kept.email == "buyer@example.com"

    job = services.journal.get("TXN-100001")
    assert job is not None
    assert job.status is JobStatus.QUEUED
    assert job.tenant_id == tenant_id_for("TXN-100001")
    assert job.invoice_number == invoice_number_for("TXN-100001") == "INV-100001"
    assert (job.email, job.plan, job.tenant_name, job.pf_payment_id) == (
        "buyer@example.com",
        "starter",
        "Jane Buyer",
        "1221576",
    )
    assert len(services.journal.list_jobs()) == 1
    assert services.queue.depth() == (1, 0)
    [message] = services.queue.receive(10, 30)
    assert message.transaction_id == "TXN-100001"


def test_same_itn_again_is_a_duplicate_and_provisions_nothing_more(services: Services, intake: PaymentIntake) -> None:
    body = encode_form(signed_itn(services, "TXN-100002"))

    first = intake.receive(body, PAYFAST_PEER)
    second = intake.receive(body, PAYFAST_PEER)

    assert first.verdict is PaymentVerdict.ACCEPTED
    assert second.verdict is PaymentVerdict.DUPLICATE
    assert second.reasons == ("already processed",)
    kept = services.ledger.find(transaction_id="TXN-100002")
    assert [entry.verdict for entry in kept] == [PaymentVerdict.ACCEPTED, PaymentVerdict.DUPLICATE]
    assert len(services.journal.list_jobs()) == 1
    assert services.queue.depth() == (1, 0)


def test_pending_then_complete_for_the_same_payment_are_both_kept_with_one_job(
    services: Services, intake: PaymentIntake
) -> None:
    pending = intake.receive(encode_form(signed_itn(services, "TXN-100003", status="PENDING")), PAYFAST_PEER)
    assert pending.verdict is PaymentVerdict.ACCEPTED
    assert services.journal.get("TXN-100003") is None
    assert services.queue.depth() == (0, 0)

    complete = intake.receive(encode_form(signed_itn(services, "TXN-100003")), PAYFAST_PEER)

    assert complete.verdict is PaymentVerdict.ACCEPTED
    kept = services.ledger.find(pf_payment_id="1221576")
    assert [(entry.payment_status, entry.verdict) for entry in kept] == [
        ("PENDING", PaymentVerdict.ACCEPTED),
        ("COMPLETE", PaymentVerdict.ACCEPTED),
    ]
    job = services.journal.get("TXN-100003")
    assert job is not None
    assert job.status is JobStatus.QUEUED
    assert len(services.journal.list_jobs()) == 1
    assert services.queue.depth() == (1, 0)


@pytest.mark.parametrize("status", ["FAILED", "PENDING"])
def test_failed_and_pending_itns_are_recorded_without_a_job(
    services: Services, intake: PaymentIntake, status: str
) -> None:
    record = intake.receive(encode_form(signed_itn(services, "TXN-100004", status=status)), PAYFAST_PEER)

    assert record.verdict is PaymentVerdict.ACCEPTED
    [kept] = services.ledger.find(transaction_id="TXN-100004")
    assert (kept.verdict, kept.payment_status) == (PaymentVerdict.ACCEPTED, status)
    assert_nothing_provisioned(services)


def test_cancelled_itn_without_amount_fields_is_accepted_without_a_job(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    fields = signed_itn(services, "TXN-100005", status="CANCELLED")
    assert not {"amount_gross", "amount_fee", "amount_net"} & {key for key, _ in fields}

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert record.verdict is PaymentVerdict.ACCEPTED
    assert confirmer.asked == [payfast.parameter_string(fields)]
    [kept] = services.ledger.find(transaction_id="TXN-100005")
    assert (kept.verdict, kept.payment_status, kept.amount_gross) == (PaymentVerdict.ACCEPTED, "CANCELLED", None)
    assert_nothing_provisioned(services)


def test_second_complete_for_the_same_transaction_with_a_new_payment_id_does_not_provision_twice(
    services: Services, intake: PaymentIntake
) -> None:
    first = intake.receive(encode_form(signed_itn(services, "TXN-100006", pf_payment_id="1")), PAYFAST_PEER)
    second = intake.receive(encode_form(signed_itn(services, "TXN-100006", pf_payment_id="2")), PAYFAST_PEER)

    assert (first.verdict, second.verdict) == (PaymentVerdict.ACCEPTED, PaymentVerdict.ACCEPTED)
    assert len(services.ledger.find(transaction_id="TXN-100006")) == 2
    job = services.journal.get("TXN-100006")
    assert job is not None
    assert job.pf_payment_id == "1"
    assert len(services.journal.list_jobs()) == 1
    assert services.queue.depth() == (1, 0)


# --- Check 1: signature --------------------------------------------------------------------


def test_forged_signature_is_rejected(services: Services, intake: PaymentIntake, confirmer: StubConfirmer) -> None:
    fields = signed_itn(services, "TXN-200001")
    forged = [*fields[:-1], ("signature", "0" * 32)]

    record = intake.receive(encode_form(forged), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-200001", "signature mismatch")
    assert confirmer.asked == []


def test_value_changed_after_signing_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    fields = signed_itn(services, "TXN-200002", plan="enterprise", amount=price(services, "enterprise"))
    tampered = [(key, "starter" if key == "custom_str1" else value) for key, value in fields]

    record = intake.receive(encode_form(tampered), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-200002", "signature mismatch")
    assert confirmer.asked == []


@pytest.mark.parametrize("wrong", ["not-the-passphrase", None], ids=["other-passphrase", "no-passphrase"])
def test_itn_signed_with_the_wrong_passphrase_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer, wrong: str | None
) -> None:
    fields = signed_itn(services, "TXN-200003", passphrase=wrong)

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-200003", "signature mismatch")
    assert confirmer.asked == []


def test_a_checkout_form_with_payment_fields_after_its_signature_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    # The form our checkout page hands any buyer, signed with our passphrase: its signature is a
    # valid ITN signature of the fields before it, so only what follows it can be refused.
    with page_client(services) as client:
        form = form_fields(checkout(client, plan="starter", email="eve@example.com"), "payfast-form")
    transaction_id = dict(form)["m_payment_id"]
    assert payfast.itn_signature(form[:-1], PASSPHRASE) == dict(form)["signature"]
    paid = [("pf_payment_id", "1221599"), ("payment_status", "COMPLETE"), ("amount_gross", "99.00")]

    record = intake.receive(encode_form([*form, *paid]), PAYFAST_PEER)

    assert_rejected(services, record, transaction_id, "field after signature: 'pf_payment_id' is not signed")
    assert confirmer.asked == []


def test_the_checkout_form_itself_is_not_an_itn(services: Services, intake: PaymentIntake) -> None:
    with page_client(services) as client:
        form = form_fields(checkout(client, plan="starter", email="eve@example.com"), "payfast-form")

    record = intake.receive(encode_form(form), PAYFAST_PEER)

    assert_rejected(services, record, dict(form)["m_payment_id"], "missing field pf_payment_id")


def test_an_unknown_field_after_the_signature_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    fields = [*signed_itn(services, "TXN-200005"), ("note", "appended")]

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-200005", "field after signature: 'note' is not signed")
    assert confirmer.asked == []


def test_a_required_field_only_after_the_signature_is_rejected(services: Services, intake: PaymentIntake) -> None:
    genuine = signed_itn(services, "TXN-200006")
    fields = [*resigned([pair for pair in genuine if pair[0] != "payment_status"]), ("payment_status", "COMPLETE")]

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-200006", "field after signature: 'payment_status' is not signed")


def test_a_signed_itn_carrying_merchant_key_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    genuine = signed_itn(services, "TXN-200007")
    fields = resigned([*genuine[:-2], ("merchant_key", "46f0cd694581a"), genuine[-2]])
    assert payfast.signature_matches(fields, PASSPHRASE)

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-200007", "merchant_key in an ITN")
    assert confirmer.asked == []


def test_an_unknown_field_before_the_signature_is_tolerated(services: Services, intake: PaymentIntake) -> None:
    genuine = signed_itn(services, "TXN-200008")
    fields = resigned([*genuine[:-2], ("something_new", "x"), genuine[-2]])

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert record.verdict is PaymentVerdict.ACCEPTED
    assert services.journal.get("TXN-200008") is not None


def test_forged_copy_does_not_block_the_genuine_itn(services: Services, intake: PaymentIntake) -> None:
    fields = signed_itn(services, "TXN-200004")
    forged = intake.receive(encode_form([*fields[:-1], ("signature", "f" * 32)]), PAYFAST_PEER)
    genuine = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert (forged.verdict, genuine.verdict) == (PaymentVerdict.REJECTED, PaymentVerdict.ACCEPTED)
    assert services.journal.get("TXN-200004") is not None
    assert services.queue.depth() == (1, 0)


# --- Check 2: source address ---------------------------------------------------------------


def test_itn_from_outside_payfast_ranges_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    record = intake.receive(encode_form(signed_itn(services, "TXN-300001")), OUTSIDE_PEER)

    assert_rejected(services, record, "TXN-300001", f"source address {OUTSIDE_PEER}")
    assert services.ledger.find(transaction_id="TXN-300001")[0].source_ip == OUTSIDE_PEER
    assert confirmer.asked == []


def test_forwarded_for_spoof_from_an_untrusted_peer_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    body = encode_form(signed_itn(services, "TXN-300002"))

    record = intake.receive(body, OUTSIDE_PEER, forwarded_for=PAYFAST_PEER)

    assert_rejected(services, record, "TXN-300002", f"source address {OUTSIDE_PEER}")
    assert record.source_ip == OUTSIDE_PEER
    assert confirmer.asked == []


def test_trusted_proxy_forwarding_a_payfast_address_is_accepted(
    services: Services, policy: IntakePolicy, confirmer: StubConfirmer
) -> None:
    behind_proxy = make_intake(services, replace(policy, trusted_proxies=("127.0.0.1/32",)), confirmer)

    record = behind_proxy.receive(encode_form(signed_itn(services, "TXN-300003")), "127.0.0.1", PAYFAST_PEER)

    assert record.verdict is PaymentVerdict.ACCEPTED
    [kept] = services.ledger.find(transaction_id="TXN-300003")
    assert kept.source_ip == PAYFAST_PEER
    assert services.journal.get("TXN-300003") is not None
    assert services.queue.depth() == (1, 0)


def test_trusted_proxy_forwarding_an_outside_address_is_rejected(
    services: Services, policy: IntakePolicy, confirmer: StubConfirmer
) -> None:
    # The peer 127.0.0.1 is itself in the test ranges: the forwarded sender must decide.
    behind_proxy = make_intake(services, replace(policy, trusted_proxies=("127.0.0.1/32",)), confirmer)

    record = behind_proxy.receive(encode_form(signed_itn(services, "TXN-300004")), "127.0.0.1", OUTSIDE_PEER)

    assert_rejected(services, record, "TXN-300004", f"source address {OUTSIDE_PEER}")
    assert confirmer.asked == []


# --- Check 3: merchant ---------------------------------------------------------------------


def test_itn_for_another_merchant_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    fields = signed_itn(services, "TXN-400001", merchant_id="10000101")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-400001", "merchant_id")
    assert confirmer.asked == []


# --- Check 4: amount -----------------------------------------------------------------------


@pytest.mark.parametrize("delta", [Decimal("0.02"), Decimal("-0.02")], ids=["over", "under"])
def test_amount_off_by_two_cents_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer, delta: Decimal
) -> None:
    fields = signed_itn(services, "TXN-500001", amount=price(services) + delta)

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-500001", "amount_gross does not match")
    assert confirmer.asked == []


@pytest.mark.parametrize("delta", [Decimal("0.01"), Decimal("-0.01")], ids=["over", "under"])
def test_amount_off_by_one_cent_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer, delta: Decimal
) -> None:
    # The spec's 0.01 is the PHP SDK's float epsilon, not a price tolerance (intake.py).
    fields = signed_itn(services, "TXN-500002", amount=price(services) + delta)

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-500002", "amount_gross does not match the starter price 99.00")
    assert confirmer.asked == []


@pytest.mark.parametrize(
    "amount",
    ["1e1000000", "9.9e1", "+99.00", " 99.00", "99.00 ", "99.00\n", "99.000", "99.0", "99", "99,00", ".99",
     "\uff19\uff19.\uff10\uff10", "\u0669\u0669.\u0660\u0660", "-99.00", "NaN", "Infinity", "sNaN", ""],
    ids=["overflowing-exponent", "exponent", "plus-sign", "leading-space", "trailing-space", "trailing-newline",
         "three-decimals", "one-decimal", "no-decimals", "decimal-comma", "no-rands", "full-width-digits",
         "arabic-indic-digits", "negative", "nan", "infinity", "signalling-nan", "empty"],
)  # fmt: skip
def test_an_amount_not_written_as_rands_and_cents_is_rejected_and_kept(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer, amount: str
) -> None:
    # Each is correctly signed: only the amount check can refuse it, and none may raise.
    fields = with_amount_gross(signed_itn(services, "TXN-500006"), amount)

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-500006", "amount_gross")
    assert record.reasons[0].startswith("amount_gross "), record.reasons
    assert confirmer.asked == []


def test_an_amount_with_a_leading_zero_is_not_how_payfast_writes_it(
    services: Services, intake: PaymentIntake
) -> None:
    # Digits, a point, two decimals, as PayFast writes them: "099.00" is the price in value only.
    fields = with_amount_gross(signed_itn(services, "TXN-500007"), "099.00")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-500007", "amount_gross")
    assert record.reasons[0].startswith("amount_gross '099.00' is not an amount"), record.reasons


def test_a_missing_amount_is_rejected(services: Services, intake: PaymentIntake) -> None:
    fields = resigned([pair for pair in signed_itn(services, "TXN-500008") if pair[0] != "amount_gross"])

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-500008", "amount_gross is missing")


def test_amount_of_a_cheaper_plan_is_rejected(services: Services, intake: PaymentIntake) -> None:
    fields = signed_itn(services, "TXN-500003", plan="enterprise", amount=price(services, "starter"))

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-500003", "enterprise price")


def test_unknown_plan_is_rejected(services: Services, intake: PaymentIntake, confirmer: StubConfirmer) -> None:
    fields = signed_itn(services, "TXN-500004", plan="platinum")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-500004", "unknown plan 'platinum'")
    assert confirmer.asked == []


def test_amount_that_is_not_a_number_is_rejected(services: Services, intake: PaymentIntake) -> None:
    fields = with_amount_gross(signed_itn(services, "TXN-500005"), "NaN")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-500005", "amount_gross")


# --- Field validation ----------------------------------------------------------------------


def test_lowercase_status_complete_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    fields = signed_itn(services, "TXN-600001", status="complete")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-600001", "unknown payment_status 'complete'")
    assert confirmer.asked == []


def test_missing_pf_payment_id_is_rejected(services: Services, intake: PaymentIntake, confirmer: StubConfirmer) -> None:
    fields = resigned([(key, value) for key, value in signed_itn(services, "TXN-600002") if key != "pf_payment_id"])
    assert payfast.signature_matches(fields, PASSPHRASE)

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-600002", "missing field pf_payment_id")
    assert confirmer.asked == []


def test_blank_pf_payment_id_is_rejected(services: Services, intake: PaymentIntake) -> None:
    fields = resigned(
        [(key, "" if key == "pf_payment_id" else value) for key, value in signed_itn(services, "TXN-600003")]
    )

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-600003", "missing field pf_payment_id")


def test_malformed_email_is_rejected(services: Services, intake: PaymentIntake, confirmer: StubConfirmer) -> None:
    fields = signed_itn(services, "TXN-600004", email="buyer at example.com")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-600004", "email_address")
    assert confirmer.asked == []


def test_m_payment_id_with_spaces_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    fields = signed_itn(services, "TXN 600005")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN 600005", "m_payment_id")
    assert confirmer.asked == []


def test_body_that_is_not_utf8_is_rejected_and_kept(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    body = b"m_payment_id=TXN-600006&payment_status=COMPLETE&name_first=\xff\xfe"

    record = intake.receive(body, PAYFAST_PEER)

    assert record.verdict is PaymentVerdict.REJECTED
    assert any("UTF-8" in reason for reason in record.reasons)
    [kept] = services.ledger.find()
    assert kept.verdict is PaymentVerdict.REJECTED
    assert kept.reasons == record.reasons
    assert kept.source_ip == PAYFAST_PEER
    assert kept.transaction_id is None
    [(raw_key, raw_value)] = kept.fields
    assert raw_key == "_raw"
    assert raw_value.startswith("m_payment_id=TXN-600006&")
    assert confirmer.asked == []
    assert_nothing_provisioned(services)


# --- Check 5: server confirmation ----------------------------------------------------------


def test_itn_payfast_does_not_confirm_is_rejected(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    confirmer.answer = False
    fields = signed_itn(services, "TXN-700001")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert_rejected(services, record, "TXN-700001", "PayFast did not confirm")
    assert confirmer.asked == [payfast.parameter_string(fields)]


class _LedgerBusyOnReads:
    """The ledger, its look-ups failing as a busy or throttled store's do; keeping still works."""

    def __init__(self, ledger: PaymentLedger) -> None:
        self._ledger = ledger

    def find(self, **_criteria: str | None) -> list[PaymentRecord]:
        raise TransientError("database busy while reading")

    def __getattr__(self, name: str) -> object:
        return getattr(self._ledger, name)


def test_a_store_failing_during_the_checks_leaves_the_itn_unconfirmed_without_blaming_payfast(
    services: Services, policy: IntakePolicy, confirmer: StubConfirmer
) -> None:
    busy = replace(services, ledger=_LedgerBusyOnReads(services.ledger))
    intake = make_intake(busy, policy, confirmer)
    # A PENDING ITN is looked up in the ledger (a stale one must not follow a COMPLETE).
    fields = signed_itn(services, "TXN-700003", status="PENDING")

    record = intake.receive(encode_form(fields), PAYFAST_PEER)

    assert record.verdict is PaymentVerdict.UNCONFIRMED
    assert record.reasons == ("not checked yet: database busy while reading",)
    assert confirmer.asked == []  # PayFast was never asked, so it is not what failed


def test_unreachable_payfast_leaves_itn_unconfirmed_and_a_retry_is_accepted(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    fields = signed_itn(services, "TXN-700002")
    body = encode_form(fields)
    confirmer.error = TransientError("connect timeout")

    first = intake.receive(body, PAYFAST_PEER)

    assert first.verdict is PaymentVerdict.UNCONFIRMED
    assert first.reasons == ("not checked yet: PayFast validate failed: connect timeout",)
    [kept] = services.ledger.find(transaction_id="TXN-700002")
    assert kept.verdict is PaymentVerdict.UNCONFIRMED
    assert_nothing_provisioned(services)

    confirmer.error = None
    retry = intake.receive(body, PAYFAST_PEER)

    assert retry.verdict is PaymentVerdict.ACCEPTED
    kept_all = services.ledger.find(transaction_id="TXN-700002")
    assert [entry.verdict for entry in kept_all] == [PaymentVerdict.UNCONFIRMED, PaymentVerdict.ACCEPTED]
    assert confirmer.asked == [payfast.parameter_string(fields)] * 2
    job = services.journal.get("TXN-700002")
    assert job is not None
    assert job.status is JobStatus.QUEUED
    assert len(services.journal.list_jobs()) == 1
    assert services.queue.depth() == (1, 0)


# --- Offline policy (payfast_mode offline) -------------------------------------------------


@pytest.fixture
def offline_intake(services: Services, policy: IntakePolicy, confirmer: StubConfirmer) -> PaymentIntake:
    return make_intake(services, replace(policy, check_source=False, confirm_with_payfast=False), confirmer)


def test_offline_policy_accepts_a_peer_outside_the_ranges_without_asking_payfast(
    services: Services, offline_intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    record = offline_intake.receive(encode_form(signed_itn(services, "TXN-800001")), OUTSIDE_PEER)

    assert record.verdict is PaymentVerdict.ACCEPTED
    assert confirmer.asked == []
    assert services.journal.get("TXN-800001") is not None
    assert services.queue.depth() == (1, 0)


def test_offline_policy_still_rejects_a_forged_signature(services: Services, offline_intake: PaymentIntake) -> None:
    fields = signed_itn(services, "TXN-800002")

    record = offline_intake.receive(encode_form([*fields[:-1], ("signature", "0" * 32)]), OUTSIDE_PEER)

    assert_rejected(services, record, "TXN-800002", "signature mismatch")


def test_offline_policy_still_rejects_a_wrong_amount(services: Services, offline_intake: PaymentIntake) -> None:
    fields = signed_itn(services, "TXN-800003", amount=price(services) + Decimal("0.02"))

    record = offline_intake.receive(encode_form(fields), OUTSIDE_PEER)

    assert_rejected(services, record, "TXN-800003", "amount_gross does not match")


# --- Check 6: concurrent duplicates --------------------------------------------------------


def test_ten_concurrent_copies_of_one_itn_provision_exactly_once(
    services: Services, intake: PaymentIntake, confirmer: StubConfirmer
) -> None:
    body = encode_form(signed_itn(services, "TXN-900001"))
    copies = 10
    start = threading.Barrier(copies)

    def post() -> PaymentVerdict:
        start.wait(timeout=10)
        return intake.receive(body, PAYFAST_PEER).verdict

    with ThreadPoolExecutor(max_workers=copies) as pool:
        futures = [pool.submit(post) for _ in range(copies)]
        verdicts = [future.result(timeout=60) for future in futures]

    assert Counter(verdicts) == {PaymentVerdict.ACCEPTED: 1, PaymentVerdict.DUPLICATE: 9}
    kept = services.ledger.find(transaction_id="TXN-900001")
    assert Counter(entry.verdict for entry in kept) == {PaymentVerdict.ACCEPTED: 1, PaymentVerdict.DUPLICATE: 9}
    assert len(confirmer.asked) == copies
    assert len(services.journal.list_jobs()) == 1
    job = services.journal.get("TXN-900001")
    assert job is not None
    assert job.status is JobStatus.QUEUED
    assert services.queue.depth() == (1, 0)


# --- the flood guard ------------------------------------------------------------------------------


def limited_intake(services: Services, policy: IntakePolicy, confirmer: StubConfirmer) -> PaymentIntake:
    assert services.rate_limiter is not None
    return PaymentIntake(
        replace(policy, max_per_minute_per_source=2), services.plans, services.ledger, confirmer, services.clock,
        services.rate_limiter,
    )  # fmt: skip


def test_a_flood_from_one_address_outside_payfast_is_refused_before_the_ledger(
    services: Services, policy: IntakePolicy, confirmer: StubConfirmer
) -> None:
    from tenancy.errors import RateLimitedError

    offline = limited_intake(services, replace(policy, check_source=False), confirmer)
    bodies = [encode_form(signed_itn(services, f"TXN-F{n}", pf_payment_id=f"90{n}")) for n in range(3)]

    first = [offline.receive(body, "8.8.8.8").verdict for body in bodies[:2]]
    with pytest.raises(RateLimitedError) as refused:
        offline.receive(bodies[2], "8.8.8.8")

    assert first == [PaymentVerdict.ACCEPTED, PaymentVerdict.ACCEPTED]
    assert 1 <= refused.value.retry_after <= 60
    assert services.ledger.find(transaction_id="TXN-F2") == []
    assert offline.receive(bodies[2], "8.8.4.4").verdict is PaymentVerdict.ACCEPTED


def test_payfast_addresses_are_never_throttled(
    services: Services, policy: IntakePolicy, confirmer: StubConfirmer
) -> None:
    guarded = limited_intake(services, policy, confirmer)
    bodies = [encode_form(signed_itn(services, f"TXN-P{n}", pf_payment_id=f"80{n}")) for n in range(5)]

    verdicts = [guarded.receive(body, "197.97.145.150").verdict for body in bodies]

    assert verdicts == [PaymentVerdict.ACCEPTED] * 5
