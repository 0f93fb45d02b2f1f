"""A subscription's checkout form (PayFast's recurring fields, in PayFast's order, signed), the ITN
builder's subscription fields, and the offline simulated payment of a subscription
(`payfast-subscriptions.md`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_MERCHANT_KEY, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.billing import Frequency
from tenancy.domain.model import PaymentRecord, PaymentVerdict
from tenancy.domain.plans import Limits, Plan
from tenancy.errors import ConfigurationError
from tenancy.payments.checkout import (
    TENANT_ID_FIELD,
    Buyer,
    CheckoutLinks,
    checkout_fields,
    checkout_signature_matches,
    payfast_today,
)
from tenancy.payments.payfast import CHECKOUT_FIELD_ORDER, field_value, signature_matches
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token

from helpers import ManualClock, make_settings
from page_client import checkout, csrf_token_in, form_fields, page_client, simulate

LIMITS = Limits(5, 100, 500, custom_domain_allowed=True)
MONTHLY = Plan("professional", "Professional", Decimal("299.00"), LIMITS)
ONCE_OFF = Plan("professional", "Professional", Decimal("299.00"), LIMITS, billing=None)
TODAY = date(2026, 12, 6)
BUYER = Buyer("Ada", "Lovelace", "ada@example.com")
# 22:30 UTC on the 6th is already the 7th at PayFast (UTC+2).
LATE_EVENING_UTC = datetime(2026, 12, 6, 22, 30, tzinfo=UTC)


def form(plan: Plan, tenant_id: str | None = None, passphrase: str | None = PAYFAST_SANDBOX_PASSPHRASE,
         merchant_id: str = PAYFAST_SANDBOX_MERCHANT_ID) -> list[tuple[str, str]]:  # fmt: skip
    return checkout_fields(
        plan=plan,
        buyer=BUYER,
        transaction_id="TXN-1",
        status_key="the-buyers-status-key",
        merchant_id=merchant_id,
        merchant_key=PAYFAST_SANDBOX_MERCHANT_KEY,
        links=CheckoutLinks("https://shop.example"),
        passphrase=passphrase,
        today=TODAY,
        tenant_id=tenant_id,
    )


def names(fields: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in fields]


# --- the checkout form ------------------------------------------------------------------------


def test_a_subscription_form_ends_with_payfasts_recurring_fields_in_its_order_signed() -> None:
    fields = form(MONTHLY)

    assert names(fields) == ["merchant_id", "merchant_key", "return_url", "cancel_url", "notify_url",
                             "name_first", "name_last", "email_address", "m_payment_id", "amount", "item_name",
                             "custom_str1", "custom_str3", "subscription_type", "billing_date", "recurring_amount",
                             "frequency", "cycles", "signature"]  # fmt: skip
    assert [name for name in CHECKOUT_FIELD_ORDER if name in names(fields)] == names(fields)[:-1]
    values = dict(fields)
    assert (values["subscription_type"], values["billing_date"], values["recurring_amount"]) == (
        "1",
        "2026-12-06",
        "299.00",
    )
    assert (values["frequency"], values["cycles"], values["amount"]) == ("3", "0", "299.00")
    assert checkout_signature_matches(fields, PAYFAST_SANDBOX_PASSPHRASE)


def test_the_first_charge_and_the_recurring_amount_and_frequency_come_from_the_plan() -> None:
    plan = Plan("p", "P", Decimal("99.00"), LIMITS, billing=Frequency.QUARTERLY, recurring_price_zar=Decimal("249.5"))

    values = dict(form(plan))

    assert (values["amount"], values["recurring_amount"], values["frequency"]) == ("99.00", "249.50", "4")


def test_a_once_off_form_has_no_recurring_fields() -> None:
    fields = form(ONCE_OFF)

    assert names(fields)[-4:] == ["item_name", "custom_str1", "custom_str3", "signature"]
    assert checkout_signature_matches(fields, PAYFAST_SANDBOX_PASSPHRASE)


@pytest.mark.parametrize("plan", [MONTHLY, ONCE_OFF], ids=["subscription", "once-off"])
def test_a_checkout_for_an_existing_tenant_carries_its_id_signed_in_custom_str2(plan: Plan) -> None:
    fields = form(plan, tenant_id="ten_abcdefghijklmnop")
    other_tenant = [(name, "ten_qrstuvwxyz234567" if name == TENANT_ID_FIELD else value) for name, value in fields]

    assert TENANT_ID_FIELD == "custom_str2"
    assert names(fields)[names(fields).index("custom_str1") :][:3] == ["custom_str1", "custom_str2", "custom_str3"]
    assert field_value(fields, TENANT_ID_FIELD) == "ten_abcdefghijklmnop"
    assert checkout_signature_matches(fields, PAYFAST_SANDBOX_PASSPHRASE)
    assert not checkout_signature_matches(other_tenant, PAYFAST_SANDBOX_PASSPHRASE)


def test_a_changed_recurring_field_no_longer_matches() -> None:
    fields = form(MONTHLY)
    cheaper = [(name, "1.00" if name == "recurring_amount" else value) for name, value in fields]

    assert not checkout_signature_matches(cheaper, PAYFAST_SANDBOX_PASSPHRASE)


def test_a_subscription_needs_a_passphrase_a_once_off_purchase_does_not() -> None:
    with pytest.raises(ConfigurationError, match="passphrase"):
        form(MONTHLY, passphrase=None)

    assert checkout_signature_matches(form(ONCE_OFF, passphrase=None), None)


@pytest.mark.parametrize(
    ("now", "today"),
    [
        (datetime(2026, 12, 6, 21, 59, 59, tzinfo=UTC), date(2026, 12, 6)),
        (datetime(2026, 12, 6, 22, 0, tzinfo=UTC), date(2026, 12, 7)),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), date(2027, 1, 1)),
    ],
)
def test_payfasts_today_is_the_date_in_south_africa(now: datetime, today: date) -> None:
    assert payfast_today(now) == today


# --- the ITN builder ----------------------------------------------------------------------------


def itn(status: str = "COMPLETE", token: str | None = None, billing_date: str | None = None) -> list[tuple[str, str]]:
    return build_itn(transaction_id="TXN-1", email="ada@example.com", plan="professional", amount="299.00",
                     merchant_id="10000100", passphrase="jt7NOE43FZPn", pf_payment_id="1234567",
                     custom={"custom_str3": "abc"}, status=status, token=token, billing_date=billing_date)  # fmt: skip


def test_an_itn_without_a_token_is_exactly_the_once_off_itn_it_always_was() -> None:
    # Built by the builder as it was before subscriptions: no field, order or byte may move.
    before = (
        "m_payment_id=TXN-1&pf_payment_id=1234567&payment_status=COMPLETE&item_name=Site+Builder+professional"
        "&item_description=&amount_gross=299.00&amount_fee=-10.46&amount_net=288.54&custom_str1=professional"
        "&custom_str2=&custom_str3=abc&custom_str4=&custom_str5=&custom_int1=&custom_int2=&custom_int3="
        "&custom_int4=&custom_int5=&name_first=Test&name_last=Customer&email_address=ada%40example.com"
        "&merchant_id=10000100&signature=e71fe67c050676e570f2dc73b75c21c0"
    )

    assert encode_form(itn()).decode() == before


def test_a_subscription_itn_carries_token_and_billing_date_signed_just_before_the_signature() -> None:
    token = new_subscription_token()
    fields = itn(token=token, billing_date="2026-12-06")
    other_token = [(name, new_subscription_token() if name == "token" else value) for name, value in fields]

    assert names(fields)[-4:] == ["merchant_id", "token", "billing_date", "signature"]
    assert (field_value(fields, "token"), field_value(fields, "billing_date")) == (token, "2026-12-06")
    assert names(fields)[:-3] == names(itn())[:-1]
    assert signature_matches(fields, "jt7NOE43FZPn")
    assert not signature_matches(other_token, "jt7NOE43FZPn")


def test_a_cancelled_subscriptions_itn_has_its_token_and_no_amounts() -> None:
    fields = itn(status="CANCELLED", token="a" * 36, billing_date="2026-12-06")

    assert not any(name.startswith("amount_") for name in names(fields))
    assert field_value(fields, "token") == "a" * 36
    assert signature_matches(fields, "jt7NOE43FZPn")


def test_a_new_subscription_token_looks_like_payfasts_a_uuid4_of_36_characters() -> None:
    tokens = {new_subscription_token() for _ in range(100)}

    assert len(tokens) == 100
    for token in tokens:
        assert len(token) == 36
        assert uuid.UUID(token).version == 4
        assert str(uuid.UUID(token)) == token


# --- the offline simulated payment --------------------------------------------------------------

ONCE_OFF_CATALOGUE = """
[plans.lifetime]
price_zar = "1499.00"
billing = "once"
max_sites = 1
max_generations_per_month = 20
max_storage_mb = 100
custom_domain_allowed = false

[plans.professional]
price_zar = "299.00"
max_sites = 5
max_generations_per_month = 100
max_storage_mb = 500
custom_domain_allowed = true
"""


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Services]:
    plans = tmp_path / "plans.toml"
    plans.write_text(ONCE_OFF_CATALOGUE, encoding="utf-8")
    settings = make_settings(tmp_path / "home", payfast_mode="offline", public_url="https://shop.example",
                             plans_file=plans)  # fmt: skip
    services = build(settings, clock=ManualClock(LATE_EVENING_UTC))
    yield services
    services.close()


@pytest.fixture
def client(offline: Services) -> Iterator[TestClient]:
    with page_client(offline) as client:
        yield client


def the_itn(services: Services, transaction_id: str) -> PaymentRecord:
    [record] = services.ledger.find(transaction_id=transaction_id)
    return record


def test_the_checkout_page_asks_payfast_for_a_subscription_first_billed_on_payfasts_today(client: TestClient) -> None:
    page = checkout(client, plan="professional")

    values = dict(form_fields(page, "simulate-form"))
    assert (values["subscription_type"], values["billing_date"]) == ("1", "2026-12-07")
    assert (values["recurring_amount"], values["frequency"], values["cycles"]) == ("299.00", "3", "0")
    assert "R299.00 / month, until you cancel" in page


def test_a_simulated_subscription_payment_carries_a_token_and_billing_date_and_is_accepted(
    client: TestClient, offline: Services
) -> None:
    page = checkout(client, plan="professional")
    transaction_id = simulate(client, page)
    # Pressing it again is PayFast's retry of the same ITN: the same payment, the same token.
    client.post("/checkout/simulate", data=dict(form_fields(page, "simulate-form")), follow_redirects=False)

    records = offline.ledger.find(transaction_id=transaction_id)
    first = records[0]
    assert first.verdict is PaymentVerdict.ACCEPTED
    token = field_value(first.fields, "token") or ""
    assert uuid.UUID(token).version == 4
    assert len(token) == 36
    assert field_value(first.fields, "billing_date") == "2026-12-07"
    assert {field_value(record.fields, "token") for record in records} == {token}
    assert {record.pf_payment_id for record in records} == {first.pf_payment_id}


def test_a_simulated_once_off_payment_has_no_token(client: TestClient, offline: Services) -> None:
    transaction_id = simulate(client, checkout(client, plan="lifetime"))

    record = the_itn(offline, transaction_id)
    assert record.verdict is PaymentVerdict.ACCEPTED
    assert field_value(record.fields, "token") is None
    assert field_value(record.fields, "billing_date") is None


def test_a_simulated_payment_echoes_the_checkouts_tenant_id(client: TestClient, offline: Services) -> None:
    # No page makes a checkout for an existing tenant yet: the signed form is made here, as one will.
    plan = offline.plans.get("professional")
    fields = form(plan, tenant_id="ten_abcdefghijklmnop", merchant_id=offline.settings.payfast_merchant_id)
    token = csrf_token_in(client.get("/checkout?plan=professional").text)

    response = client.post("/checkout/simulate", data={"csrf_token": token, **dict(fields)}, follow_redirects=False)

    assert response.status_code == 303, response.text
    record = the_itn(offline, "TXN-1")
    assert field_value(record.fields, TENANT_ID_FIELD) == "ten_abcdefghijklmnop"
    assert field_value(record.fields, "token") is not None
