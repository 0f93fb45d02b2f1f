"""Plan changes and cancellation of a subscription, on SQLite and on DynamoDB (moto), against the
offline PayFast simulator: an upgrade raises the limits now and PayFast's amount; a downgrade
waits for the next renewal and is refused while usage exceeds the lower plan; a cancel leaves the
tenant cancelling with the owner told, and PayFast's CANCELLED ITN after it changes nothing; a
dry run or a PayFast failure changes nothing anywhere; each change is kept in the repair trail."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi
from tenancy.billing.changes import CANCEL_FINDING, PLAN_CHANGE_FINDING, ChangeKind, SubscriptionChanges
from tenancy.billing.emails import CANCELLATION_SUBJECT
from tenancy.bootstrap import Services
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.billing import BillingKind, PayfastSubscription, Subscription, SubscriptionStatus
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import LifecycleCommit
from tenancy.domain.model import PaymentRecord, PaymentVerdict, Tenant, TenantStatus
from tenancy.errors import InvalidInputError, PermanentError, TransientError
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token
from tenancy.ports import LifecycleStore, SubscriptionApi, SubscriptionStore

from aws_support import Backend
from helpers import work

PAYFAST_ADDRESS = "197.97.145.145"
TODAY = "2026-12-06"
PAID_THROUGH = date(2027, 1, 6)
OPERATOR = "alice"


class Checkout:
    """A subscription bought through the real intake and worker, and the ITNs PayFast sends for it."""

    def __init__(self, services: Services, plan: str = "professional") -> None:
        self.services = services
        self.transaction_id = "TXN-CHG0001"
        self.email = "changer@example.com"
        self.plan = plan
        self.token = new_subscription_token()
        self.tenant_id = tenant_id_for(self.transaction_id)
        self._payments = 0

    def itn(self, status: str = "COMPLETE", **changes: Any) -> PaymentRecord:
        self._payments += 1
        values: dict[str, Any] = {
            "transaction_id": self.transaction_id,
            "email": self.email,
            "plan": self.plan,
            "amount": self.services.plans.get(self.plan).price_zar,
            "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
            "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
            "pf_payment_id": str(7_000_000_000 + self._payments),
            "status": status,
            "token": self.token,
            "billing_date": TODAY,
        }
        values.update(changes)
        return self.services.intake.receive(encode_form(build_itn(**values)), PAYFAST_ADDRESS)


@pytest.fixture
def payfast(tmp_path: Path) -> Iterator[SimulatedSubscriptionApi]:
    """PayFast's subscription API, offline, on its own SQLite file (the AWS backend has none)."""
    database = Database(tmp_path / "payfast" / "simulator.sqlite")
    yield SimulatedSubscriptionApi(database)
    database.close()


def changes_with(
    services: Services, api: SubscriptionApi, lifecycle: LifecycleStore | None = None
) -> SubscriptionChanges:
    """The service as bootstrap wires it, but talking to `api`."""
    return SubscriptionChanges(
        subscriptions=services.subscriptions,
        tenants=services.tenants,
        users=services.users,
        api=api,
        plans=services.plans,
        trail=services.trail,
        clock=services.clock,
        lifecycle=lifecycle or services.lifecycle,
        notices=services.notices,
        support_email=services.settings.effective_support_email,
        sender=services.settings.email_from,
        account_url=f"{services.settings.public_base_url}/account",
        observer=services.purchase_observer,
    )


@pytest.fixture
def checkout(backend: Backend, payfast: SimulatedSubscriptionApi) -> Checkout:
    """A professional subscription, first charge applied, known to the simulator."""
    services = backend.services
    bought = Checkout(services)
    assert bought.itn().verdict is PaymentVerdict.ACCEPTED
    work(services)
    payfast.register(bought.token, amount_cents=29900, frequency=3, run_date=PAID_THROUGH)
    return bought


@pytest.fixture
def changes(backend: Backend, payfast: SimulatedSubscriptionApi) -> SubscriptionChanges:
    return changes_with(backend.services, payfast)


def state(services: Services, tenant_id: str) -> tuple[Tenant, Subscription]:
    tenant, subscription = services.tenants.get(tenant_id), services.subscriptions.get(tenant_id)
    assert tenant is not None
    assert subscription is not None
    return tenant, subscription


def cancellation_emails(services: Services, address: str) -> list[str]:
    return [message.text for message in services.mailer.outbox(address) if message.subject == CANCELLATION_SUBJECT]


def test_an_upgrade_raises_the_limits_now_and_payfasts_amount_from_the_next_charge(
    backend: Backend, payfast: SimulatedSubscriptionApi, changes: SubscriptionChanges, checkout: Checkout
) -> None:
    services = backend.services

    change = changes.plan_change(checkout.tenant_id, "enterprise", actor=OPERATOR)

    assert (change.kind, change.outcome) == (ChangeKind.UPGRADE, "upgraded")
    tenant, subscription = state(services, checkout.tenant_id)
    enterprise = services.plans.get("enterprise")
    assert (tenant.plan, tenant.limits) == ("enterprise", enterprise.limits)
    assert tenant.status is TenantStatus.ACTIVE
    assert (subscription.plan, subscription.pending_plan) == ("enterprise", None)
    assert subscription.recurring_amount == Decimal("999.00")
    assert subscription.paid_through == PAID_THROUGH  # the period paid for is not changed
    assert subscription.history[-1].kind is BillingKind.PLAN_CHANGE
    assert subscription.history[-1].plan == "enterprise"
    assert payfast.fetch(checkout.token).amount_cents == 99900
    [entry] = services.trail.entries(tenant_id=checkout.tenant_id)
    assert (entry.finding, entry.operator, entry.outcome) == (PLAN_CHANGE_FINDING, OPERATOR, "upgraded")
    assert (entry.before["plan"], entry.after["plan"]) == ("professional", "enterprise")
    assert entry.after["recurring_amount"] == "999.00"
    # The next renewal is checked against the new amount, and keeps the new plan.
    assert checkout.itn(amount="999.00").verdict is PaymentVerdict.ACCEPTED
    renewed, subscription = state(services, checkout.tenant_id)
    assert renewed.plan == "enterprise"
    assert subscription.periods_paid == 2


def test_a_downgrade_waits_for_the_next_renewal_and_is_applied_by_it(
    backend: Backend, payfast: SimulatedSubscriptionApi, changes: SubscriptionChanges, checkout: Checkout
) -> None:
    services = backend.services
    professional = services.plans.get("professional")

    change = changes.plan_change(checkout.tenant_id, "starter", actor=OPERATOR)

    assert (change.kind, change.outcome) == (ChangeKind.DOWNGRADE, "downgrade_scheduled")
    tenant, subscription = state(services, checkout.tenant_id)
    assert (tenant.plan, tenant.limits) == ("professional", professional.limits)  # never mid-period
    assert (subscription.plan, subscription.pending_plan) == ("professional", "starter")
    assert subscription.recurring_amount == Decimal("99.00")
    assert "from the next renewal" in subscription.history[-1].note
    assert payfast.fetch(checkout.token).amount_cents == 9900
    [entry] = services.trail.entries(tenant_id=checkout.tenant_id)
    assert (entry.outcome, entry.after["pending_plan"]) == ("downgrade_scheduled", "starter")

    renewal = checkout.itn(amount="99.00")

    assert renewal.verdict is PaymentVerdict.ACCEPTED
    tenant, subscription = state(services, checkout.tenant_id)
    assert (tenant.plan, tenant.limits) == ("starter", services.plans.get("starter").limits)
    assert (subscription.plan, subscription.pending_plan) == ("starter", None)
    assert subscription.paid_through == date(2027, 2, 6)


def test_a_downgrade_is_refused_while_usage_exceeds_the_lower_plan_and_names_the_limits(
    backend: Backend, payfast: SimulatedSubscriptionApi, changes: SubscriptionChanges, checkout: Checkout
) -> None:
    services = backend.services
    tenant, before = state(services, checkout.tenant_id)
    services.tenants.put(
        dataclasses.replace(tenant, usage=dataclasses.replace(tenant.usage, sites_count=3, storage_used_mb=250))
    )

    with pytest.raises(InvalidInputError) as refused:
        changes.plan_change(checkout.tenant_id, "starter", actor=OPERATOR)

    message = str(refused.value)
    assert "3 sites, the plan allows 1" in message
    assert "250 MB of storage, the plan allows 100" in message
    assert "generations" not in message  # within the limit: not named
    assert state(services, checkout.tenant_id)[1] == before
    assert payfast.fetch(checkout.token).amount_cents == 29900
    assert services.trail.entries(tenant_id=checkout.tenant_id) == []


@pytest.mark.parametrize(
    ("plan", "words"),
    [
        ("platinum", "unknown plan 'platinum'"),
        ("professional", "on the professional plan already"),
    ],
)
def test_a_plan_change_that_cannot_be_made_is_refused_with_a_reason(
    backend: Backend, changes: SubscriptionChanges, checkout: Checkout, plan: str, words: str
) -> None:
    with pytest.raises(InvalidInputError, match=words):
        changes.plan_change(checkout.tenant_id, plan, actor=OPERATOR)


def test_a_change_to_a_cancelled_subscription_is_refused(
    backend: Backend, changes: SubscriptionChanges, checkout: Checkout
) -> None:
    changes.cancel(checkout.tenant_id, actor=OPERATOR)

    with pytest.raises(InvalidInputError, match="cancelling, not active"):
        changes.plan_change(checkout.tenant_id, "enterprise", actor=OPERATOR)
    with pytest.raises(InvalidInputError, match="cancelling, not active"):
        changes.cancel(checkout.tenant_id, actor=OPERATOR)


def test_a_change_to_a_tenant_without_a_subscription_is_refused(backend: Backend, changes: SubscriptionChanges) -> None:
    once_off = _once_off_tenant(backend.services)

    with pytest.raises(InvalidInputError, match="has no subscription"):
        changes.plan_change(once_off, "enterprise", actor=OPERATOR)
    with pytest.raises(InvalidInputError, match="has no subscription"):
        changes.cancel(once_off, actor=OPERATOR)
    with pytest.raises(InvalidInputError, match="no tenant ten_unknown"):
        changes.cancel("ten_unknown", actor=OPERATOR)


def _once_off_tenant(services: Services) -> str:
    """A tenant bought once (no subscription): another purchase through the intake and the worker."""
    record = services.intake.receive(
        encode_form(
            build_itn(
                transaction_id="TXN-ONCE0001",
                email="once@example.com",
                plan="starter",
                amount="99.00",
                merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
                passphrase=PAYFAST_SANDBOX_PASSPHRASE,
            )
        ),
        PAYFAST_ADDRESS,
    )
    assert record.verdict is PaymentVerdict.ACCEPTED
    work(services)
    tenant_id = tenant_id_for("TXN-ONCE0001")
    assert services.tenants.get(tenant_id) is not None
    return tenant_id


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(
    backend: Backend, payfast: SimulatedSubscriptionApi, changes: SubscriptionChanges, checkout: Checkout
) -> None:
    services = backend.services
    tenant, subscription = state(services, checkout.tenant_id)

    upgrade = changes.plan_change(checkout.tenant_id, "enterprise", actor=OPERATOR, dry_run=True)
    cancel = changes.cancel(checkout.tenant_id, actor=OPERATOR, dry_run=True)

    assert (upgrade.outcome, upgrade.after.plan, upgrade.tenant_after.plan) == ("dry_run", "enterprise", "enterprise")
    assert any("R999.00" in action for action in upgrade.actions)
    assert (cancel.outcome, cancel.after.status) == ("dry_run", SubscriptionStatus.CANCELLING)
    assert any(checkout.email in action for action in cancel.actions)
    assert state(services, checkout.tenant_id) == (tenant, subscription)
    assert payfast.fetch(checkout.token) == PayfastSubscription(
        token=checkout.token,
        status_text="ACTIVE",
        amount_cents=29900,
        frequency=3,
        cycles=0,
        cycles_complete=0,
        run_date=PAID_THROUGH.isoformat(),
    )
    assert services.trail.entries(tenant_id=checkout.tenant_id) == []
    assert cancellation_emails(services, checkout.email) == []


def test_a_cancel_leaves_the_tenant_cancelling_tells_the_owner_and_the_itn_after_it_changes_nothing(
    backend: Backend, payfast: SimulatedSubscriptionApi, changes: SubscriptionChanges, checkout: Checkout
) -> None:
    services = backend.services

    change = changes.cancel(checkout.tenant_id, actor=OPERATOR)

    assert (change.outcome, change.emailed) == ("cancelled", checkout.email)
    tenant, subscription = state(services, checkout.tenant_id)
    assert tenant.status is TenantStatus.CANCELLING
    assert tenant.status.has_access
    assert subscription.status is SubscriptionStatus.CANCELLING
    assert subscription.next_billing_date is None
    assert subscription.history[-1].kind is BillingKind.CANCELLATION
    assert payfast.fetch(checkout.token).status_text == "CANCELLED"
    [notice] = cancellation_emails(services, checkout.email)
    assert PAID_THROUGH.isoformat() in notice
    [entry] = services.trail.entries(tenant_id=checkout.tenant_id)
    assert (entry.finding, entry.outcome, entry.email) == (CANCEL_FINDING, "cancelled", checkout.email)
    assert (entry.before["tenant_status"], entry.after["tenant_status"]) == ("active", "cancelling")

    # PayFast then sends its CANCELLED ITN for the cancel made through its API.
    assert checkout.itn("CANCELLED").verdict is PaymentVerdict.ACCEPTED

    assert state(services, checkout.tenant_id) == (tenant, subscription)
    assert len(cancellation_emails(services, checkout.email)) == 1


def test_a_subscription_cancelled_at_payfast_already_is_cancelled_here_too(
    backend: Backend, payfast: SimulatedSubscriptionApi, changes: SubscriptionChanges, checkout: Checkout
) -> None:
    payfast.cancel(checkout.token)  # by the buyer on PayFast's site; its ITN not here yet

    change = changes.cancel(checkout.tenant_id, actor=OPERATOR)

    assert change.outcome == "cancelled"
    tenant, subscription = state(backend.services, checkout.tenant_id)
    assert (tenant.status, subscription.status) == (TenantStatus.CANCELLING, SubscriptionStatus.CANCELLING)


class UnreachablePayfast:
    """PayFast down: every call times out (after the client's own retries)."""

    def fetch(self, token: str) -> PayfastSubscription:
        raise TransientError("PayFast did not answer in 10s")

    def pause(self, token: str, cycles: int = 1) -> None:
        raise TransientError("PayFast did not answer in 10s")

    def unpause(self, token: str) -> None:
        raise TransientError("PayFast did not answer in 10s")

    def cancel(self, token: str) -> None:
        raise TransientError("PayFast did not answer in 10s")

    def update(self, token: str, **changes: int | str | None) -> None:
        raise TransientError("PayFast did not answer in 10s")


def test_a_payfast_failure_leaves_everything_unchanged(
    backend: Backend, payfast: SimulatedSubscriptionApi, checkout: Checkout
) -> None:
    services = backend.services
    before = state(services, checkout.tenant_id)
    down = changes_with(services, UnreachablePayfast())
    refusing = changes_with(services, payfast)
    payfast.cancel(checkout.token)  # PayFast refuses to update a cancelled subscription

    with pytest.raises(TransientError):
        down.plan_change(checkout.tenant_id, "enterprise", actor=OPERATOR)
    with pytest.raises(TransientError):
        down.cancel(checkout.tenant_id, actor=OPERATOR)
    with pytest.raises(PermanentError, match="cancelled"):
        refusing.plan_change(checkout.tenant_id, "starter", actor=OPERATOR)

    assert state(services, checkout.tenant_id) == before
    assert payfast.fetch(checkout.token).amount_cents == 29900
    assert services.trail.entries(tenant_id=checkout.tenant_id) == []
    assert cancellation_emails(services, checkout.email) == []


class SettleWritesFirst:
    """The lifecycle store with a settle's write slipped in before the change's first commit."""

    def __init__(self, lifecycle: LifecycleStore, subscriptions: SubscriptionStore) -> None:
        self._lifecycle = lifecycle
        self._subscriptions = subscriptions
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lifecycle, name)

    def commit(self, commit: LifecycleCommit) -> Subscription | None:
        if not self.raced:
            self.raced = True
            current = self._subscriptions.get(commit.tenant_id)
            assert current is not None
            self._subscriptions.save(current.evolve(current.updated_at, periods_paid=current.periods_paid + 1))
        return self._lifecycle.commit(commit)


def test_a_change_that_loses_a_race_with_a_settle_reads_again_and_keeps_both(
    backend: Backend, payfast: SimulatedSubscriptionApi, checkout: Checkout
) -> None:
    services = backend.services
    racing = SettleWritesFirst(services.lifecycle, services.subscriptions)
    changes = changes_with(services, payfast, lifecycle=racing)

    changes.plan_change(checkout.tenant_id, "enterprise", actor=OPERATOR)

    assert racing.raced
    _, subscription = state(services, checkout.tenant_id)
    assert subscription.periods_paid == 2  # the settle's write kept
    assert subscription.plan == "enterprise"  # and the change re-applied over it
    assert [entry.kind for entry in subscription.history].count(BillingKind.PLAN_CHANGE) == 1
