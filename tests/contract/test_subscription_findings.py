"""The runbook's subscription findings, on SQLite and on DynamoDB (moto), through `diagnose`,
`repair` and the audit: a renewal the ledger accepted but the subscription does not show is
`renewal_unapplied` and its repair applies it once; a subscription ITN no checkout here started
is `unknown_subscription`, for Finance, and is not repairable."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tenancy.bootstrap import Services
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.ids import invoice_number_for
from tenancy.domain.model import PaymentVerdict
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token
from tenancy.runbook.audit import run_audit
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import ESCALATION, Finding

from aws_support import Backend
from helpers import work

PAYFAST_ADDRESS = "197.97.145.145"


@pytest.fixture
def services(backend: Backend) -> Services:
    return backend.services


def send(services: Services, transaction_id: str, token: str, pf_payment_id: str, status: str = "COMPLETE") -> None:
    fields = build_itn(
        transaction_id=transaction_id,
        email=f"{transaction_id.lower()}@example.com",
        plan="professional",
        amount="299.00",
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
        pf_payment_id=pf_payment_id,
        status=status,
        token=token,
        billing_date="2026-12-06",
    )
    assert services.intake.receive(encode_form(fields), PAYFAST_ADDRESS).verdict is PaymentVerdict.ACCEPTED


def renewal_lost(services: Services) -> tuple[str, str]:
    """A subscribed tenant whose second charge was accepted, then lost before it was applied (the
    process stopped between the ledger and the subscription): rewound here by hand."""
    transaction_id, token = "TXN-LOSTRENEWAL", new_subscription_token()
    send(services, transaction_id, token, "7000000001")
    work(services)
    send(services, transaction_id, token, "7000000002")
    job = services.journal.get(transaction_id)
    assert job is not None
    subscription = services.subscriptions.get(job.tenant_id)
    assert subscription is not None
    assert subscription.periods_paid == 2
    services.subscriptions.save(dataclasses.replace(subscription, periods_paid=1, history=subscription.history[:1]))
    return transaction_id, job.tenant_id


def test_a_renewal_accepted_but_not_applied_is_named_with_its_evidence(services: Services) -> None:
    transaction_id, _ = renewal_lost(services)

    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))

    assert diagnosis.finding is Finding.RENEWAL_UNAPPLIED
    assert diagnosis.finding.repairable
    assert "COMPLETE 7000000002" in diagnosis.summary
    assert any(item.fields.get("unapplied") == ["7000000002"] for item in diagnosis.evidence)


def test_repairing_it_applies_the_renewal_once_and_the_purchase_is_healthy(services: Services) -> None:
    transaction_id, tenant_id = renewal_lost(services)

    first = services.runbook.repair(Selector(transaction_id=transaction_id), operator="ops@example.com")
    again = services.runbook.diagnose(Selector(transaction_id=transaction_id))

    assert first.outcome == "repaired"
    assert first.after.finding is Finding.HEALTHY
    assert again.finding is Finding.HEALTHY
    subscription = services.subscriptions.get(tenant_id)
    assert subscription is not None
    assert subscription.periods_paid == 2
    assert [entry.pf_payment_id for entry in subscription.history] == ["7000000001", "7000000002"]
    [entry] = services.trail.entries(transaction_id=transaction_id)
    assert entry.finding == Finding.RENEWAL_UNAPPLIED.value


def test_the_audit_finds_the_unapplied_renewal(services: Services) -> None:
    transaction_id, _ = renewal_lost(services)
    now = services.clock.now()

    report = run_audit(services.evidence_stores, since=now - timedelta(days=7), now=now)

    assert [case.diagnosis.finding for case in report.cases] == [Finding.RENEWAL_UNAPPLIED]
    assert report.cases[0].diagnosis.transaction_id == transaction_id


def test_a_cancellation_for_a_subscription_no_checkout_started_goes_to_finance(services: Services) -> None:
    send(services, "TXN-NEVERSEEN", new_subscription_token(), "7000000009", status="CANCELLED")

    diagnosis = services.runbook.diagnose(Selector(transaction_id="TXN-NEVERSEEN"))

    assert diagnosis.finding is Finding.UNKNOWN_SUBSCRIPTION
    assert diagnosis.escalate_to == ESCALATION["finance"]
    assert not diagnosis.finding.repairable


def test_a_subscribed_purchase_shows_its_subscription_and_history_as_evidence(services: Services) -> None:
    transaction_id, token = "TXN-EVIDENCE", new_subscription_token()
    send(services, transaction_id, token, "7000000011")
    work(services)
    send(services, transaction_id, token, "7000000012")

    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))

    assert diagnosis.finding is Finding.HEALTHY
    lines = [item.text for item in diagnosis.evidence if item.store is not None and item.store.value == "subscriptions"]
    assert lines[0].startswith("active monthly professional subscription, R299.00 / month, paid through 2027-02-06")
    assert token in lines[0]
    assert [line.split(" at ")[0] for line in lines[1:]] == ["first charge", "renewal"]
    assert f"invoice {invoice_number_for(transaction_id)}-02" in lines[2]


def test_a_renewal_rejected_for_its_amount_alerts_finance_and_a_foreign_token_alerts_security(
    services: Services,
) -> None:
    transaction_id, token = "TXN-ALERTS", new_subscription_token()
    send(services, transaction_id, token, "7000000021")
    work(services)
    cheap = build_itn(
        transaction_id=transaction_id,
        email="txn-alerts@example.com",
        plan="professional",
        amount="1.00",
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
        pf_payment_id="7000000022",
        token=token,
    )
    assert services.intake.receive(encode_form(cheap), PAYFAST_ADDRESS).verdict is PaymentVerdict.REJECTED
    assert services.alert_monitor.check().result("payment_failures").firing

    foreign = build_itn(
        transaction_id=transaction_id,
        email="txn-alerts@example.com",
        plan="professional",
        amount="299.00",
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
        pf_payment_id="7000000023",
        token=new_subscription_token(),
    )
    assert services.intake.receive(encode_form(foreign), PAYFAST_ADDRESS).verdict is PaymentVerdict.REJECTED
    security = services.alert_monitor.check().result("security_rejections")
    assert security.value == 1


def test_a_cancelling_subscriber_is_healthy_until_paid_through(services: Services) -> None:
    transaction_id, token = "TXN-CANCELLING", new_subscription_token()
    send(services, transaction_id, token, "7000000031")
    work(services)
    send(services, transaction_id, token, "7000000031", status="CANCELLED")

    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))

    assert diagnosis.finding is Finding.HEALTHY
    assert "is cancelling" in diagnosis.summary
    assert "until 2027-01-06" in diagnosis.summary
