"""Subscriptions end to end through the real intake and worker, on SQLite and on DynamoDB (moto):
the first charge provisions once and stores the subscription; each renewal extends paid_through
by a period, resets the month's generations, writes an invoice and a receipt, and never makes a
second tenant, identity user or welcome email; a cancellation leaves access until the paid-through
date; late, duplicated, concurrent and hostile ITNs change nothing they must not."""

from __future__ import annotations

import dataclasses
import threading
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tenancy.billing.emails import CANCELLATION_SUBJECT, RECEIPT_SUBJECT
from tenancy.billing.settle import Settled
from tenancy.bootstrap import SWEEP_OPERATOR, Services
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.billing import BillingKind, Frequency, SubscriptionStatus
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import PaymentRecord, PaymentVerdict, TenantStatus
from tenancy.errors import TransientError
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token
from tenancy.provisioning.welcome import WELCOME_SUBJECT
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Finding

from aws_support import Backend
from helpers import ManualClock, work

PAYFAST_ADDRESS = "197.97.145.145"
TODAY = "2026-12-06"


@pytest.fixture
def services(backend: Backend) -> Services:
    return backend.services


class Checkout:
    """One subscription checkout, and the ITNs PayFast sends for it."""

    def __init__(self, services: Services, number: int = 1, plan: str = "professional") -> None:
        self.services = services
        self.transaction_id = f"TXN-SUB{number:04d}"
        self.email = f"subscriber{number}@example.com"
        self.plan = plan
        self.token = new_subscription_token()
        self.tenant_id = tenant_id_for(self.transaction_id)
        self._payments = 0
        self._base = 8_000_000_000 + number * 1000

    def itn(self, status: str = "COMPLETE", **changes: Any) -> PaymentRecord:
        self._payments += 1
        values: dict[str, Any] = {
            "transaction_id": self.transaction_id,
            "email": self.email,
            "plan": self.plan,
            "amount": self.services.plans.get(self.plan).price_zar,
            "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
            "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
            "pf_payment_id": str(self._base + self._payments),
            "status": status,
            "token": self.token,
            "billing_date": TODAY,
        }
        values.update(changes)
        return self.services.intake.receive(encode_form(build_itn(**values)), PAYFAST_ADDRESS)


def subscribe(services: Services, number: int = 1) -> Checkout:
    checkout = Checkout(services, number)
    assert checkout.itn().verdict is PaymentVerdict.ACCEPTED
    work(services)
    return checkout


def emails_to(services: Services, address: str, subject: str) -> list[str]:
    return [message.subject for message in services.mailer.outbox(address) if message.subject.startswith(subject)]


def test_the_first_charge_provisions_once_and_stores_the_subscription(services: Services) -> None:
    checkout = subscribe(services)

    tenant = services.tenants.get(checkout.tenant_id)
    subscription = services.subscriptions.get(checkout.tenant_id)
    assert tenant is not None
    assert tenant.status is TenantStatus.ACTIVE
    assert subscription is not None
    assert subscription.token == checkout.token
    assert subscription.transaction_id == checkout.transaction_id
    assert (subscription.plan, subscription.frequency) == ("professional", Frequency.MONTHLY)
    assert subscription.recurring_amount == Decimal("299.00")
    assert subscription.billing_date == date(2026, 12, 6)
    assert subscription.paid_through == date(2027, 1, 6)
    assert subscription.status is SubscriptionStatus.ACTIVE
    [first] = subscription.history
    assert first.kind is BillingKind.FIRST_CHARGE
    assert first.amount == Decimal("299.00")
    assert first.invoice_number == f"{invoice_number_for(checkout.transaction_id)}-01"
    assert services.subscriptions.find_by_token(checkout.token) == subscription
    assert len(emails_to(services, checkout.email, WELCOME_SUBJECT)) == 1


def test_two_renewals_extend_paid_through_with_two_receipts_and_no_second_tenant(services: Services) -> None:
    checkout = subscribe(services)
    tenant = services.tenants.get(checkout.tenant_id)
    assert tenant is not None
    services.tenants.put(
        dataclasses.replace(tenant, usage=dataclasses.replace(tenant.usage, generations_this_month=42))
    )

    first, second = checkout.itn(), checkout.itn()
    work(services)

    assert (first.verdict, second.verdict) == (PaymentVerdict.ACCEPTED, PaymentVerdict.ACCEPTED)
    subscription = services.subscriptions.get(checkout.tenant_id)
    assert subscription is not None
    assert subscription.paid_through == date(2027, 3, 6)
    assert [entry.invoice_number for entry in subscription.history] == [
        f"{invoice_number_for(checkout.transaction_id)}-{number:02d}" for number in (1, 2, 3)
    ]
    renewed = services.tenants.get(checkout.tenant_id)
    assert renewed is not None
    assert renewed.usage.generations_this_month == 0
    assert renewed.status is TenantStatus.ACTIVE
    assert len(emails_to(services, checkout.email, RECEIPT_SUBJECT)) == 2
    assert len(emails_to(services, checkout.email, WELCOME_SUBJECT)) == 1
    assert [job.transaction_id for job in services.journal.find(email=checkout.email)] == [checkout.transaction_id]
    assert len(services.users.find_by_email(checkout.email)) == 1


def test_a_renewal_delivered_twice_is_applied_once(services: Services) -> None:
    checkout = subscribe(services)
    body = encode_form(
        build_itn(
            transaction_id=checkout.transaction_id,
            email=checkout.email,
            plan="professional",
            amount="299.00",
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
            pf_payment_id="8000009999",
            token=checkout.token,
            billing_date=TODAY,
        )
    )

    verdicts = [services.intake.receive(body, PAYFAST_ADDRESS).verdict for _ in range(2)]

    assert verdicts == [PaymentVerdict.ACCEPTED, PaymentVerdict.DUPLICATE]
    subscription = services.subscriptions.get(checkout.tenant_id)
    assert subscription is not None
    assert subscription.periods_paid == 2
    assert len(emails_to(services, checkout.email, RECEIPT_SUBJECT)) == 1


def resent_itn(checkout: Checkout, pf_payment_id: str, status: str = "COMPLETE") -> bytes:
    """A subscription ITN of `checkout` whose body PayFast sends again, byte for byte, until answered 200."""
    amount = {"amount": "299.00"} if status == "COMPLETE" else {"amount": "0.00"}
    return encode_form(
        build_itn(
            transaction_id=checkout.transaction_id,
            email=checkout.email,
            plan="professional",
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
            pf_payment_id=pf_payment_id,
            status=status,
            token=checkout.token,
            billing_date=TODAY,
            **amount,
        )
    )


def busy_once(monkeypatch: pytest.MonkeyPatch, services: Services) -> list[str]:
    """The tenant store answers its next read (the settle's: an ITN's checks read none) as a busy
    store does; the tenant ids refused."""
    store, refused = services.tenants, []
    read = store.get

    def get(tenant_id: str) -> Any:
        if not refused:
            refused.append(tenant_id)
            raise TransientError("database is locked")
        return read(tenant_id)

    monkeypatch.setattr(store, "get", get)
    return refused


@pytest.mark.parametrize("status", ["COMPLETE", "CANCELLED"])
def test_an_itn_kept_but_not_applied_is_answered_as_not_received_and_payfasts_resend_applies_it(
    services: Services, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    checkout = subscribe(services)
    body = resent_itn(checkout, "8000007777", status)
    refused = busy_once(monkeypatch, services)

    with pytest.raises(TransientError, match="subscription is not updated yet"):
        services.intake.receive(body, PAYFAST_ADDRESS)

    [kept] = services.ledger.find(pf_payment_id="8000007777")
    left = services.subscriptions.get(checkout.tenant_id)
    assert refused == [checkout.tenant_id]
    assert kept.verdict is PaymentVerdict.ACCEPTED
    assert left is not None
    assert (left.periods_paid, left.status) == (1, SubscriptionStatus.ACTIVE)
    [indexed] = services.findings_index.with_finding(Finding.RENEWAL_UNAPPLIED.value)
    assert indexed.transaction_id == checkout.transaction_id

    resent = services.intake.receive(body, PAYFAST_ADDRESS)

    applied = services.subscriptions.get(checkout.tenant_id)
    assert resent.verdict is PaymentVerdict.DUPLICATE
    assert applied is not None
    if status == "COMPLETE":
        assert (applied.periods_paid, applied.paid_through) == (2, date(2027, 2, 6))
        assert len(emails_to(services, checkout.email, RECEIPT_SUBJECT)) == 1
    else:
        assert applied.status is SubscriptionStatus.CANCELLING
        assert len(emails_to(services, checkout.email, CANCELLATION_SUBJECT)) == 1
    assert services.runbook.diagnose(Selector(transaction_id=checkout.transaction_id)).healthy
    assert services.findings_index.with_finding(Finding.RENEWAL_UNAPPLIED.value) == []
    assert services.intake.receive(body, PAYFAST_ADDRESS).verdict is PaymentVerdict.DUPLICATE
    again = services.subscriptions.get(checkout.tenant_id)
    assert again is not None
    assert again.history == applied.history


def test_the_sweep_applies_a_renewal_whose_resend_never_came_and_keeps_it_in_the_trail(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = subscribe(services)
    busy_once(monkeypatch, services)
    with pytest.raises(TransientError):
        services.intake.receive(resent_itn(checkout, "8000007778"), PAYFAST_ADDRESS)

    swept = services.sweep()

    subscription = services.subscriptions.get(checkout.tenant_id)
    [entry] = services.trail.entries(transaction_id=checkout.transaction_id)
    assert swept.settled == [checkout.transaction_id]
    assert subscription is not None
    assert subscription.paid_through == date(2027, 2, 6)
    assert (entry.operator, entry.finding) == (SWEEP_OPERATOR, Finding.RENEWAL_UNAPPLIED.value)
    assert entry.after["finding"] == "healthy"
    assert len(emails_to(services, checkout.email, RECEIPT_SUBJECT)) == 1
    assert services.sweep().settled == []  # applied once


def test_a_renewal_that_comes_while_the_first_charge_provisions_is_applied_after_it(services: Services) -> None:
    checkout = Checkout(services)
    assert checkout.itn().verdict is PaymentVerdict.ACCEPTED
    assert checkout.itn().verdict is PaymentVerdict.ACCEPTED  # the renewal, before any worker ran
    assert services.subscriptions.get(checkout.tenant_id) is None  # waits for the tenant

    work(services)

    subscription = services.subscriptions.get(checkout.tenant_id)
    assert subscription is not None
    assert subscription.periods_paid == 2
    assert [entry.kind for entry in subscription.history] == [BillingKind.FIRST_CHARGE, BillingKind.RENEWAL]
    assert len(services.journal.find(email=checkout.email)) == 1


def test_concurrent_settles_of_one_renewal_apply_it_once(services: Services) -> None:
    checkout = subscribe(services)
    assert checkout.itn().verdict is PaymentVerdict.ACCEPTED
    # The renewal was applied when kept; undo it by hand to race two settles for it.
    subscription = services.subscriptions.get(checkout.tenant_id)
    assert subscription is not None
    rewound = services.subscriptions.save(
        dataclasses.replace(subscription, periods_paid=1, history=subscription.history[:1])
    )
    outcomes: list[Settled] = []
    start = threading.Barrier(2)

    def settle() -> None:
        start.wait()
        outcomes.append(services.billing.settle(checkout.transaction_id))

    threads = [threading.Thread(target=settle) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    settled = services.subscriptions.get(checkout.tenant_id)
    assert settled is not None
    assert settled.version > rewound.version
    assert settled.periods_paid == 2
    assert len(settled.history) == 2
    assert sorted(outcomes) == sorted([Settled.APPLIED, Settled.UP_TO_DATE])


def test_a_renewal_of_the_wrong_amount_is_rejected_and_changes_nothing(services: Services) -> None:
    checkout = subscribe(services)

    record = checkout.itn(amount="99.00")

    assert record.verdict is PaymentVerdict.REJECTED
    assert "recurring amount 299.00" in record.reasons[0]
    subscription = services.subscriptions.get(checkout.tenant_id)
    assert subscription is not None
    assert subscription.periods_paid == 1


def test_a_renewal_is_checked_against_the_subscriptions_amount_not_the_plans_first_price(services: Services) -> None:
    checkout = subscribe(services)
    subscription = services.subscriptions.get(checkout.tenant_id)
    assert subscription is not None
    services.subscriptions.save(dataclasses.replace(subscription, recurring_amount=Decimal("999.00")))

    assert checkout.itn().verdict is PaymentVerdict.REJECTED  # 299.00, the plan's price
    assert checkout.itn(amount="999.00").verdict is PaymentVerdict.ACCEPTED


def test_a_renewal_with_a_forged_token_is_rejected(services: Services) -> None:
    checkout = subscribe(services)

    record = checkout.itn(token=new_subscription_token())

    assert record.verdict is PaymentVerdict.REJECTED
    assert "not the subscription token" in record.reasons[0]
    subscription = services.subscriptions.get(checkout.tenant_id)
    assert subscription is not None
    assert subscription.periods_paid == 1


def test_a_renewal_for_another_tenants_checkout_is_rejected(services: Services) -> None:
    mine, theirs = subscribe(services, 1), subscribe(services, 2)

    # My token, their m_payment_id: a renewal meant to extend their tenant with my subscription.
    record = mine.itn(transaction_id=theirs.transaction_id)

    assert record.verdict is PaymentVerdict.REJECTED
    for checkout in (mine, theirs):
        subscription = services.subscriptions.get(checkout.tenant_id)
        assert subscription is not None
        assert subscription.periods_paid == 1


def test_a_cancellation_leaves_access_until_paid_through_and_tells_the_owner(services: Services) -> None:
    checkout = subscribe(services)

    record = checkout.itn("CANCELLED")

    assert record.verdict is PaymentVerdict.ACCEPTED
    subscription = services.subscriptions.get(checkout.tenant_id)
    tenant = services.tenants.get(checkout.tenant_id)
    assert subscription is not None
    assert subscription.status is SubscriptionStatus.CANCELLING
    assert subscription.next_billing_date is None
    assert tenant is not None
    assert tenant.status is TenantStatus.CANCELLING
    assert tenant.status.has_access
    [notice] = [
        message for message in services.mailer.outbox(checkout.email) if message.subject == CANCELLATION_SUBJECT
    ]
    assert "2027-01-06" in notice.text
    assert checkout.itn("CANCELLED").verdict is PaymentVerdict.ACCEPTED  # a second one changes nothing
    assert len(emails_to(services, checkout.email, CANCELLATION_SUBJECT)) == 1


def test_a_late_cancellation_of_a_replaced_subscription_changes_nothing(services: Services) -> None:
    checkout = subscribe(services)
    subscription = services.subscriptions.get(checkout.tenant_id)
    assert subscription is not None
    # The tenant has since subscribed again (a new token), after the first subscription ended.
    later = services.clock.now() + timedelta(days=40)
    replaced = services.subscriptions.save(
        dataclasses.replace(
            subscription,
            token=new_subscription_token(),
            transaction_id="TXN-AGAIN",
            created_at=later.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    )

    assert services.billing.settle(checkout.transaction_id) is Settled.STALE
    assert services.subscriptions.get(checkout.tenant_id) == replaced


def test_a_cancelled_owner_who_buys_again_gets_the_same_tenant_back_with_a_new_subscription(
    services: Services, clock: ManualClock
) -> None:
    checkout = subscribe(services)
    assert checkout.itn("CANCELLED").verdict is PaymentVerdict.ACCEPTED
    services.identity.set_password(checkout.email, "Owner-Chosen-Passw0rd!", permanent=True)
    clock.advance(days=40)  # bought again well after the first subscription began
    again = Checkout(services, number=2, plan="enterprise")
    again.email = checkout.email

    # Its first charge is today's: paid through a month from now (not overdue).
    record = again.itn(custom={"custom_str2": checkout.tenant_id}, billing_date=clock.now().date().isoformat())
    work(services)

    assert record.verdict is PaymentVerdict.ACCEPTED
    job = services.journal.get(again.transaction_id)
    assert job is not None
    assert (job.tenant_id, job.returning, job.status.value) == (checkout.tenant_id, True, "succeeded")
    assert services.tenants.get(again.tenant_id) is None  # no second tenant
    tenant = services.tenants.get(checkout.tenant_id)
    assert tenant is not None
    assert (tenant.status, tenant.plan, tenant.limits.max_sites) == (TenantStatus.ACTIVE, "enterprise", 50)
    subscription = services.subscriptions.get(checkout.tenant_id)
    assert subscription is not None
    assert (subscription.token, subscription.transaction_id) == (again.token, again.transaction_id)
    assert subscription.status is SubscriptionStatus.ACTIVE
    kinds = [entry.kind for entry in subscription.history]
    assert kinds == [BillingKind.FIRST_CHARGE, BillingKind.CANCELLATION, BillingKind.FIRST_CHARGE]
    assert len(emails_to(services, checkout.email, WELCOME_SUBJECT)) == 1
    assert len(services.users.find_by_email(checkout.email)) == 1
    diagnosis = services.runbook.diagnose(Selector(transaction_id=again.transaction_id))
    assert diagnosis.finding is Finding.HEALTHY
    # The old subscription's ITNs, delivered late, change nothing now.
    assert services.billing.settle(checkout.transaction_id) is Settled.STALE


def test_a_checkout_for_a_tenant_the_buyer_does_not_belong_to_is_left_for_review(services: Services) -> None:
    owner = subscribe(services)
    stranger = Checkout(services, number=3)

    stranger.itn(custom={"custom_str2": owner.tenant_id})
    work(services)

    job = services.journal.get(stranger.transaction_id)
    assert job is not None
    assert job.status.value == "needs_review"
    assert "no member" in (job.review_reason or "")
    subscription = services.subscriptions.get(owner.tenant_id)
    assert subscription is not None
    assert subscription.token == owner.token  # untouched
