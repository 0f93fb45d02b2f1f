"""The SubscriptionStore port, the same assertions on SQLite and on DynamoDB (moto): a subscription
and its billing history read back whole, by tenant, token and checkout; every write is made over
the version it was read at (a stale writer gets ConflictError, and of two racing writers exactly
one wins); a token belongs to one tenant."""

from __future__ import annotations

import dataclasses
import threading
from datetime import date
from decimal import Decimal

import pytest

from tenancy.domain.billing import BillingEntry, BillingKind, Frequency, Subscription, SubscriptionStatus
from tenancy.errors import ConflictError, ItemAlreadyExistsError
from tenancy.ports import SubscriptionStore

from aws_support import Backend

TOKEN = "0b4f3e9c-5a2d-4c1e-9f7a-3d2b1c0e8a6f"


@pytest.fixture
def store(backend: Backend) -> SubscriptionStore:
    return backend.services.subscriptions


def subscription(tenant_id: str = "ten_abc", token: str = TOKEN, **changes: object) -> Subscription:
    first = BillingEntry(
        BillingKind.FIRST_CHARGE,
        "2026-12-06T10:00:00Z",
        pf_payment_id="1000001",
        amount=Decimal("299.00"),
        invoice_number="INV-ABC-01",
        plan="professional",
    )
    values: dict[str, object] = {
        "tenant_id": tenant_id,
        "token": token,
        "transaction_id": f"TXN-{tenant_id.upper()}",
        "plan": "professional",
        "frequency": Frequency.MONTHLY,
        "recurring_amount": Decimal("299.00"),
        "billing_date": date(2026, 1, 31),
        "periods_paid": 1,
        "status": SubscriptionStatus.ACTIVE,
        "created_at": "2026-12-06T10:00:00Z",
        "updated_at": "2026-12-06T10:00:00Z",
        "history": (first,),
    }
    values.update(changes)
    return Subscription(**values)  # type: ignore[arg-type]


def test_a_new_subscription_reads_back_whole_by_tenant_token_and_checkout(store: SubscriptionStore) -> None:
    saved = store.save(subscription(pending_plan="starter"))

    assert saved.version == 1
    assert store.get("ten_abc") == saved
    assert store.find_by_token(TOKEN) == saved
    assert store.find_by_transaction("TXN-TEN_ABC") == saved
    assert saved.paid_through == date(2026, 2, 28)
    assert saved.history[0].amount == Decimal("299.00")
    assert store.get("ten_other") is None
    assert store.find_by_token("no-such-token") is None
    assert store.find_by_transaction("TXN-NONE") is None
    assert store.get_many(["ten_abc", "ten_other", "ten_abc"]) == {"ten_abc": saved}


def test_a_write_over_the_version_read_moves_it_on_and_a_stale_one_is_refused(store: SubscriptionStore) -> None:
    saved = store.save(subscription())
    renewal = BillingEntry(BillingKind.RENEWAL, "2027-01-31T08:00:00Z", "1000002", Decimal("299.00"), "INV-ABC-02")
    renewed = store.save(dataclasses.replace(saved, periods_paid=2, history=(*saved.history, renewal)))

    assert renewed.version == 2
    assert store.get("ten_abc") == renewed
    assert renewed.paid_through == date(2026, 3, 31)  # from the anchor: no drift through February
    with pytest.raises(ConflictError):
        store.save(dataclasses.replace(saved, status=SubscriptionStatus.CANCELLING))
    with pytest.raises(ConflictError):
        store.save(subscription())  # a second "new" subscription for the same tenant
    assert store.get("ten_abc") == renewed


def test_of_two_writers_of_the_same_version_exactly_one_wins(store: SubscriptionStore) -> None:
    saved = store.save(subscription())
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def write(periods: int) -> None:
        start.wait()
        try:
            store.save(dataclasses.replace(saved, periods_paid=periods))
            outcomes.append(f"won {periods}")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(periods,)) for periods in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes)[0] == "conflict"
    assert len(outcomes) == 2
    winner = int(next(outcome for outcome in outcomes if outcome.startswith("won")).split()[1])
    stored = store.get("ten_abc")
    assert stored is not None
    assert stored.periods_paid == winner
    assert stored.version == 2


def test_a_token_belongs_to_one_tenant(store: SubscriptionStore) -> None:
    store.save(subscription())

    with pytest.raises(ItemAlreadyExistsError):
        store.save(subscription("ten_other"))
    assert store.get("ten_other") is None
    assert store.find_by_token(TOKEN) == store.get("ten_abc")


def test_a_tenant_that_subscribes_again_takes_a_new_token(store: SubscriptionStore) -> None:
    first = store.save(subscription())
    again = store.save(
        dataclasses.replace(first, token="9e8d7c6b-0000-4000-8000-000000000002", transaction_id="TXN-AGAIN")
    )

    assert store.find_by_token("9e8d7c6b-0000-4000-8000-000000000002") == again
    assert store.find_by_transaction("TXN-AGAIN") == again
    assert store.find_by_token(TOKEN) is None


def test_the_scan_lists_every_subscription_and_nothing_else(store: SubscriptionStore) -> None:
    for number in range(5):
        store.save(subscription(f"ten_{number}", token=f"token-{number}"))

    scanned = [item for page in store.scan(batch_size=2) for item in page]

    assert sorted(item.tenant_id for item in scanned) == [f"ten_{number}" for number in range(5)]


def test_the_figures_count_by_status_sum_the_monthly_revenue_and_the_weeks_renewals(store: SubscriptionStore) -> None:
    renewal = BillingEntry(BillingKind.RENEWAL, "2026-12-05T10:00:00Z", "2000001", Decimal("299.00"), "INV-1-02")
    old_renewal = BillingEntry(BillingKind.RENEWAL, "2026-11-01T10:00:00Z", "2000002", Decimal("299.00"), "INV-2-02")
    monthly = store.save(subscription("ten_monthly", token="token-monthly", history=(renewal,)))
    store.save(
        subscription(
            "ten_yearly",
            token="token-yearly",
            frequency=Frequency.ANNUALLY,
            recurring_amount=Decimal("999.00"),
            history=(old_renewal,),
        )
    )
    ending = store.save(subscription("ten_ending", token="token-ending"))
    cancelled = BillingEntry(BillingKind.CANCELLATION, "2026-12-05T11:00:00Z", "2000003")
    store.save(
        dataclasses.replace(
            ending,
            status=SubscriptionStatus.CANCELLING,
            updated_at="2026-12-05T11:00:00Z",
            history=(*ending.history, cancelled),
        )
    )
    store.save(dataclasses.replace(monthly, recurring_amount=Decimal("399.00")))  # an upgrade

    figures = store.figures(since="2026-11-29T00:00:00Z")

    assert figures.by_status == {SubscriptionStatus.ACTIVE: 2, SubscriptionStatus.CANCELLING: 1}
    assert figures.active == 2
    assert figures.monthly_recurring_revenue == Decimal("482.25")  # 399.00 + 999.00 / 12
    assert (figures.renewals, figures.cancellations) == (1, 1)
