"""SUB003 `subscription_out_of_sync` on cases built in memory: PayFast's view of an active
subscription of ours that disagrees (cancelled, paused, another amount) is named; one that agrees,
one of ours already cancelling, or no view at all (the audit never asks PayFast) is not."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from tenancy.domain.billing import Frequency, PayfastSubscription, Subscription, SubscriptionStatus
from tenancy.runbook.evidence import CaseFile, Selector
from tenancy.runbook.findings import ESCALATION, Finding
from tenancy.runbook.rules import Context
from tenancy.runbook.rules.subscriptions import subscription_out_of_sync

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TOKEN = "3f2c7e1a-0000-4000-8000-000000000001"
OURS = Subscription(
    tenant_id="ten_sync",
    token=TOKEN,
    transaction_id="TXN-SYNC",
    plan="professional",
    frequency=Frequency.MONTHLY,
    recurring_amount=Decimal("299.00"),
    billing_date=date(2026, 12, 6),
    periods_paid=1,
    status=SubscriptionStatus.ACTIVE,
    created_at="2026-12-06T10:00:00Z",
    updated_at="2026-12-06T10:00:00Z",
)
THEIRS = PayfastSubscription(
    token=TOKEN,
    status_text="ACTIVE",
    amount_cents=29900,
    frequency=3,
    cycles=0,
    cycles_complete=1,
    run_date="2027-01-06",
)


def case(ours: Subscription | None = OURS, *, asked: bool = True, **payfast: Any) -> CaseFile:
    """A case with our subscription and PayFast's view of it (changed by `payfast`), or none."""
    view = dataclasses.replace(THEIRS, **payfast) if asked else None
    return CaseFile(
        Selector(transaction_id="TXN-SYNC"),
        "TXN-SYNC",
        "owner@example.com",
        "ten_sync",
        subscription=ours,
        payfast=view,
    )


def test_payfast_agreeing_with_ours_is_no_finding() -> None:
    assert subscription_out_of_sync(case(), Context(NOW)) is None


def test_no_view_of_payfast_is_no_finding() -> None:
    assert subscription_out_of_sync(case(asked=False), Context(NOW)) is None


def test_ours_already_cancelling_agrees_with_payfast_cancelled() -> None:
    cancelling = dataclasses.replace(OURS, status=SubscriptionStatus.CANCELLING)

    assert subscription_out_of_sync(case(cancelling, status_text="CANCELLED", amount_cents=1), Context(NOW)) is None


def test_cancelled_at_payfast_while_active_here_is_out_of_sync() -> None:
    found = subscription_out_of_sync(case(status_text="CANCELLED"), Context(NOW))

    assert found is not None
    assert subscription_out_of_sync.finding is Finding.SUBSCRIPTION_OUT_OF_SYNC
    assert "cancelled at PayFast, active here" in found.summary
    assert found.escalate_to is None
    [evidence] = found.evidence
    assert evidence.fields["disagreements"] == ["cancelled at PayFast, active here"]


def test_another_amount_at_payfast_is_out_of_sync_in_rands() -> None:
    found = subscription_out_of_sync(case(amount_cents=34900), Context(NOW))

    assert found is not None
    assert "PayFast charges R349.00, we expect R299.00" in found.summary
    assert "R349.00" in found.next_step.advice


@pytest.mark.parametrize("amount_cents", [29900, 34900])
def test_paused_at_payfast_goes_to_finance(amount_cents: int) -> None:
    found = subscription_out_of_sync(case(status_text="PAUSED", amount_cents=amount_cents), Context(NOW))

    assert found is not None
    assert "paused at PayFast, active here" in found.summary
    assert found.escalate_to == ESCALATION["finance"]


def test_a_pause_alone_offers_no_repair_and_a_pause_with_another_amount_does() -> None:
    paused = subscription_out_of_sync(case(status_text="PAUSED", amount_cents=29900), Context(NOW))
    paused_and_dearer = subscription_out_of_sync(case(status_text="PAUSED", amount_cents=34900), Context(NOW))

    assert paused is not None
    assert paused_and_dearer is not None
    assert paused.next_step.repairable is False  # Tenancy keeps no paused state: nothing to re-sync
    assert paused_and_dearer.next_step.repairable is True  # the amount is re-synced
