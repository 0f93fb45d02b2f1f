"""The entitlements vocabulary: the usage period (a subscription's paid period, else the calendar
month), what a change may do to a level against a limit, the warning thresholds, and the shape
of a service key."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenancy.domain.billing import Frequency, Subscription, SubscriptionStatus
from tenancy.domain.model import Usage
from tenancy.domain.service_keys import hash_secret, new_secret, parse_key, render_key
from tenancy.domain.usage import Metric, UsageChange, UsagePeriod, crossed_thresholds, current_usage, period_for

SUBSCRIPTION = Subscription(
    tenant_id="ten_x",
    token="tok",
    transaction_id="TXN-1",
    plan="professional",
    frequency=Frequency.MONTHLY,
    recurring_amount=Decimal("299.00"),
    billing_date=date(2026, 1, 31),
    periods_paid=3,
    status=SubscriptionStatus.ACTIVE,
    created_at="2026-01-31T00:00:00Z",
    updated_at="2026-01-31T00:00:00Z",
)


def test_a_subscriptions_period_is_its_last_paid_one_and_does_not_drift_through_february() -> None:
    period = period_for(SUBSCRIPTION, datetime(2026, 4, 10, tzinfo=UTC))
    assert period == UsagePeriod(date(2026, 3, 31), date(2026, 4, 30))


def test_a_subscription_past_due_keeps_counting_in_the_period_it_paid_for() -> None:
    period = period_for(SUBSCRIPTION, datetime(2026, 5, 5, tzinfo=UTC))  # paid through 30 April
    assert period.end == date(2026, 4, 30)


def test_without_a_subscription_the_period_is_the_calendar_month() -> None:
    new_years_eve = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert period_for(None, new_years_eve) == UsagePeriod(date(2026, 12, 1), date(2027, 1, 1))
    unpaid = replace(SUBSCRIPTION, periods_paid=0)
    assert period_for(unpaid, datetime(2026, 2, 3, tzinfo=UTC)).start == date(2026, 2, 1)


def test_a_generation_count_of_an_earlier_period_is_zero_in_this_one() -> None:
    period = UsagePeriod(date(2026, 12, 1), date(2027, 1, 1))
    old = Usage(sites_count=2, generations_this_month=17, storage_used_mb=9, period_start="2026-11-01")
    assert current_usage(old, period) == replace(old, generations_this_month=0)
    current = replace(old, period_start="2026-12-01")
    assert current_usage(current, period) == current


@given(used=st.integers(0, 200), limit=st.integers(0, 200), amount=st.integers(-300, 300))
def test_a_delta_may_always_lower_usage_and_raise_it_only_up_to_the_limit(used: int, limit: int, amount: int) -> None:
    change = UsageChange(Metric.SITES, amount, "k")
    after = change.result(used)
    assert after >= 0
    assert change.allowed(used, limit) == (after <= used or after <= limit)
    if amount < 0:
        assert change.allowed(used, limit)


def test_a_level_is_set_only_for_sites_and_storage_and_never_below_zero() -> None:
    assert UsageChange(Metric.STORAGE_MB, 40, "k", absolute=True).result(900) == 40
    with pytest.raises(ValueError, match="count"):
        UsageChange(Metric.GENERATIONS, 4, "k", absolute=True)
    with pytest.raises(ValueError, match="below zero"):
        UsageChange(Metric.SITES, -1, "k", absolute=True)


def test_the_same_request_has_the_same_fingerprint_and_a_different_one_does_not() -> None:
    first = UsageChange(Metric.SITES, 3, "k")
    assert first.fingerprint == UsageChange(Metric.SITES, 3, "other-key").fingerprint
    assert first.fingerprint != UsageChange(Metric.SITES, 3, "k", absolute=True).fingerprint
    assert first.fingerprint != UsageChange(Metric.SITES, 4, "k").fingerprint


def test_the_warnings_fire_at_eighty_and_a_hundred_percent() -> None:
    assert crossed_thresholds(79, 100) == []
    assert crossed_thresholds(80, 100) == [80]
    assert crossed_thresholds(100, 100) == [80, 100]
    assert crossed_thresholds(1, 1) == [80, 100]
    assert crossed_thresholds(0, 0) == []


def test_a_service_key_reads_back_its_name_and_secret_and_nothing_malformed_passes() -> None:
    secret = new_secret()
    assert parse_key(render_key("site-builder", secret)) == ("site-builder", secret)
    for malformed in ("", "tnc_", f"tnc_Site.{secret}", f"tnc_site{secret}", f"xyz_site.{secret}", "tnc_site.short"):
        assert parse_key(malformed) is None
    assert hash_secret(secret, b"pepper-one") != hash_secret(secret, b"pepper-two")
