"""`subscription_out_of_sync` on SQLite and on DynamoDB (moto): PayFast's own view of a
subscription (its `fetch`, played by the embedded simulator on a database of its own) disagrees
with ours. Cancelled there while active here, or charging another amount, is named with both
views as evidence, and its repair re-syncs ours from PayFast; PayFast paused is named and left to
Finance. PayFast that cannot be asked is evidence, never a failed diagnose, and the weekly audit
never asks it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi
from tenancy.bootstrap import Services
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.billing import BillingKind, PayfastSubscription, Subscription, SubscriptionStatus
from tenancy.domain.model import PaymentVerdict, TenantStatus
from tenancy.errors import TransientError
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token
from tenancy.ports import SubscriptionApi
from tenancy.runbook.audit import run_audit
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import ESCALATION, Finding, Store
from tenancy.runbook.findings_index import AuditTrigger
from tenancy.runbook.resync import CANCELLED_NOTE
from tenancy.runbook.service import Runbook

from aws_support import Backend
from helpers import work

PAYFAST_ADDRESS = "197.97.145.145"
WEEK = timedelta(days=7)


@pytest.fixture
def services(backend: Backend) -> Services:
    return backend.services


@pytest.fixture
def payfast(tmp_path: Path) -> Iterator[SimulatedSubscriptionApi]:
    """PayFast's side: the simulator on a database of its own, which neither backend shares."""
    database = Database(tmp_path / "payfast.db")
    yield SimulatedSubscriptionApi(database)
    database.close()


def runbook_asking(services: Services, api: SubscriptionApi) -> Runbook:
    """The backend's runbook, wired as bootstrap wires it, asking `api` for PayFast's view."""
    return Runbook(
        stores=services.evidence_stores,
        worker=services.worker,
        trail=services.trail,
        accounts=services.accounts,
        clock=services.clock,
        password_ttl=services.password_ttl,
        observer=services.purchase_observer,
        settle=services.billing.settle,
        payfast=api,
    )


def subscribe(services: Services, transaction_id: str, token: str) -> str:
    """A provisioned tenant on the professional plan at R299.00 a month; its tenant id."""
    fields = build_itn(
        transaction_id=transaction_id,
        email=f"{transaction_id.lower()}@example.com",
        plan="professional",
        amount="299.00",
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
        pf_payment_id="8000000001",
        token=token,
        billing_date="2026-12-06",
    )
    assert services.intake.receive(encode_form(fields), PAYFAST_ADDRESS).verdict is PaymentVerdict.ACCEPTED
    work(services)
    job = services.journal.get(transaction_id)
    assert job is not None
    assert services.subscriptions.get(job.tenant_id) is not None
    return job.tenant_id


def subscribed_at_both(services: Services, payfast: SimulatedSubscriptionApi, transaction_id: str) -> tuple[str, str]:
    """A tenant subscribed here and at PayFast alike; its tenant id and the token."""
    token = new_subscription_token()
    tenant_id = subscribe(services, transaction_id, token)
    payfast.register(token, amount_cents=29900, frequency=3, run_date="2027-01-06")
    return tenant_id, token


def ours(services: Services, tenant_id: str) -> Subscription:
    subscription = services.subscriptions.get(tenant_id)
    assert subscription is not None
    return subscription


def tenant_status(services: Services, tenant_id: str) -> TenantStatus:
    tenant = services.tenants.get(tenant_id)
    assert tenant is not None
    return tenant.status


class PayfastDown:
    """PayFast that cannot be reached (the boundary: the HTTP client's TransientError)."""

    def fetch(self, token: str) -> PayfastSubscription:
        raise TransientError("PayFast did not answer after 3 attempts")

    def pause(self, token: str, cycles: int = 1) -> None:
        raise TransientError("PayFast did not answer after 3 attempts")

    def unpause(self, token: str) -> None:
        raise TransientError("PayFast did not answer after 3 attempts")

    def cancel(self, token: str) -> None:
        raise TransientError("PayFast did not answer after 3 attempts")

    def update(
        self,
        token: str,
        *,
        amount_cents: int | None = None,
        frequency: int | None = None,
        run_date: str | None = None,
        cycles: int | None = None,
    ) -> None:
        raise TransientError("PayFast did not answer after 3 attempts")


class NeverAsked(PayfastDown):
    """PayFast that fails the test if anything asks it."""

    def fetch(self, token: str) -> PayfastSubscription:
        pytest.fail(f"PayFast was asked about {token}")


# --- Cancelled at PayFast, active here ---------------------------------------------------------


def test_a_subscription_cancelled_at_payfast_but_active_here_is_named_with_both_views(
    services: Services, payfast: SimulatedSubscriptionApi
) -> None:
    _, token = subscribed_at_both(services, payfast, "TXN-SYNC-CANCEL")
    payfast.cancel(token)

    diagnosis = runbook_asking(services, payfast).diagnose(Selector(transaction_id="TXN-SYNC-CANCEL"))

    assert diagnosis.finding is Finding.SUBSCRIPTION_OUT_OF_SYNC
    assert diagnosis.finding.repairable
    assert "cancelled at PayFast, active here" in diagnosis.summary
    [both] = [item for item in diagnosis.evidence if "payfast_status" in item.fields]
    assert both.store is Store.SUBSCRIPTIONS
    assert (both.fields["status"], both.fields["payfast_status"]) == ("active", "CANCELLED")
    assert (both.fields["recurring_amount"], both.fields["payfast_amount"]) == ("299.00", "299.00")
    assert f"payfast: CANCELLED R299.00 / month, next run 2027-01-06, 0 charges complete (token {token})" in (
        diagnosis.evidence_lines
    )


def test_repairing_it_makes_ours_and_the_tenant_cancelling_and_the_purchase_healthy(
    services: Services, payfast: SimulatedSubscriptionApi
) -> None:
    tenant_id, token = subscribed_at_both(services, payfast, "TXN-SYNC-REPAIR")
    payfast.cancel(token)
    runbook = runbook_asking(services, payfast)
    selector = Selector(transaction_id="TXN-SYNC-REPAIR")

    result = runbook.repair(selector, operator="ops@example.com")

    assert result.outcome == "repaired"
    assert any("cancelling, as PayFast has it" in action for action in result.plan.actions)
    subscription = ours(services, tenant_id)
    assert subscription.status is SubscriptionStatus.CANCELLING
    assert subscription.history[-1].kind is BillingKind.CANCELLATION
    assert subscription.history[-1].note == CANCELLED_NOTE
    assert tenant_status(services, tenant_id) is TenantStatus.CANCELLING
    assert result.after.finding is Finding.HEALTHY
    assert runbook.diagnose(selector).finding is Finding.HEALTHY
    [entry] = services.trail.entries(transaction_id="TXN-SYNC-REPAIR")
    assert entry.finding == Finding.SUBSCRIPTION_OUT_OF_SYNC.value


def test_a_second_repair_finds_nothing_left_to_re_sync(services: Services, payfast: SimulatedSubscriptionApi) -> None:
    tenant_id, token = subscribed_at_both(services, payfast, "TXN-SYNC-TWICE")
    payfast.cancel(token)
    runbook = runbook_asking(services, payfast)
    runbook.repair(Selector(transaction_id="TXN-SYNC-TWICE"), operator="ops@example.com")

    again = runbook.repair(Selector(transaction_id="TXN-SYNC-TWICE"), operator="ops@example.com")

    assert again.outcome == "nothing_to_do"
    cancellations = [e for e in ours(services, tenant_id).history if e.kind is BillingKind.CANCELLATION]
    assert len(cancellations) == 1


# --- Another amount at PayFast -----------------------------------------------------------------


def test_an_amount_that_differs_at_payfast_is_repaired_to_payfast_s(
    services: Services, payfast: SimulatedSubscriptionApi
) -> None:
    tenant_id, token = subscribed_at_both(services, payfast, "TXN-SYNC-AMOUNT")
    payfast.update(token, amount_cents=34900)
    runbook = runbook_asking(services, payfast)
    selector = Selector(transaction_id="TXN-SYNC-AMOUNT")

    before = runbook.diagnose(selector)
    result = runbook.repair(selector, operator="ops@example.com")

    assert before.finding is Finding.SUBSCRIPTION_OUT_OF_SYNC
    assert "PayFast charges R349.00, we expect R299.00" in before.summary
    assert result.outcome == "repaired"
    subscription = ours(services, tenant_id)
    assert subscription.recurring_amount == Decimal("349.00")
    assert subscription.status is SubscriptionStatus.ACTIVE
    assert subscription.history[-1].kind is BillingKind.PLAN_CHANGE
    assert "re-synced from PayFast" in subscription.history[-1].note
    assert tenant_status(services, tenant_id) is TenantStatus.ACTIVE
    assert runbook.diagnose(selector).finding is Finding.HEALTHY


# --- Paused at PayFast -------------------------------------------------------------------------


def test_a_subscription_paused_at_payfast_is_named_for_finance_and_left_as_it_is(
    services: Services, payfast: SimulatedSubscriptionApi
) -> None:
    tenant_id, token = subscribed_at_both(services, payfast, "TXN-SYNC-PAUSED")
    payfast.pause(token)
    runbook = runbook_asking(services, payfast)

    result = runbook.repair(Selector(transaction_id="TXN-SYNC-PAUSED"), operator="ops@example.com")

    assert result.plan.diagnosis.finding is Finding.SUBSCRIPTION_OUT_OF_SYNC
    assert "paused at PayFast, active here" in result.plan.diagnosis.summary
    assert result.plan.diagnosis.escalate_to == ESCALATION["finance"]
    assert result.outcome == "not_repairable"
    assert ours(services, tenant_id).status is SubscriptionStatus.ACTIVE


# --- PayFast that cannot be asked, and the audit that never asks -------------------------------


def test_payfast_that_cannot_be_asked_is_evidence_and_the_diagnosis_still_answers(services: Services) -> None:
    token = new_subscription_token()
    subscribe(services, "TXN-SYNC-DOWN", token)

    diagnosis = runbook_asking(services, PayfastDown()).diagnose(Selector(transaction_id="TXN-SYNC-DOWN"))

    assert diagnosis.finding is Finding.HEALTHY
    [line] = [line for line in diagnosis.evidence_lines if line.startswith("payfast:")]
    assert line == (f"payfast: PayFast could not be asked about token {token}: PayFast did not answer after 3 attempts")


def test_the_weekly_audit_never_asks_payfast(services: Services) -> None:
    # Wired where bootstrap finds PayFast's API: the purchase's every change (settled, judged
    # again for the findings index) and the audit itself would ask this one if they asked at all.
    wired = dataclasses.replace(services)
    wired.subscription_api = NeverAsked()
    subscribe(wired, "TXN-SYNC-AUDIT", new_subscription_token())
    now = wired.clock.now()

    report = run_audit(wired.evidence_stores, since=now - WEEK, now=now)
    scheduled = wired.auditor.run(since=now - WEEK, trigger=AuditTrigger.SCHEDULE)

    assert report.totals.healthy == scheduled.totals.healthy == 1
    assert not report.cases
    assert not scheduled.cases
