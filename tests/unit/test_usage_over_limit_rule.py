"""USE001 `usage_over_limit` on cases built in memory: usage is judged in the tenant's current
period as the service API judges it (the subscription's paid period, else the calendar month; a
generation count kept for an earlier period is zero), and only for a tenant its people may use."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tenancy.domain.billing import Frequency, Subscription, SubscriptionStatus
from tenancy.domain.model import Billing, Tenant, TenantStatus, Usage
from tenancy.domain.plans import Limits
from tenancy.runbook.evidence import CaseFile, Selector
from tenancy.runbook.findings import Store
from tenancy.runbook.rules import Context
from tenancy.runbook.rules.usage import usage_over_limit

NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
TENANT = "ten_usage_rule"
LIMITS = Limits(max_sites=1, max_generations_per_month=20, max_storage_mb=100, custom_domain_allowed=False)
# Charged on 2026-11-06 and 2026-12-06: its current period runs from 2026-12-06 to 2027-01-06.
SUBSCRIPTION = Subscription(
    tenant_id=TENANT,
    token="3f2c7e1a-0000-4000-8000-000000000016",
    transaction_id="TXN-USAGE-RULE",
    plan="starter",
    frequency=Frequency.MONTHLY,
    recurring_amount=Decimal("99.00"),
    billing_date=date(2026, 11, 6),
    periods_paid=2,
    status=SubscriptionStatus.ACTIVE,
    created_at="2026-11-06T10:00:00Z",
    updated_at="2026-12-06T10:00:00Z",
)


def case(
    usage: Usage, *, status: TenantStatus = TenantStatus.ACTIVE, subscription: Subscription | None = None
) -> CaseFile:
    tenant = Tenant(
        tenant_id=TENANT,
        owner_user_id="sub-owner",
        name="Usage rule",
        plan="starter",
        status=status,
        limits=LIMITS,
        usage=usage,
        storage_prefix=f"tenants/{TENANT}",
        billing=Billing("TXN-USAGE-RULE", "INV-1"),
        created_at="2026-11-06T10:00:00Z",
        updated_at="2026-11-06T10:00:00Z",
    )
    return CaseFile(
        Selector(tenant_id=TENANT),
        "TXN-USAGE-RULE",
        "owner@example.com",
        TENANT,
        tenant=tenant,
        subscription=subscription,
    )


def test_usage_within_every_limit_is_no_finding() -> None:
    at_the_limits = Usage(sites_count=1, generations_this_month=20, storage_used_mb=100, period_start="2026-12-01")

    assert usage_over_limit(case(at_the_limits), Context(NOW)) is None


def test_a_once_off_tenant_s_generations_are_counted_in_the_calendar_month() -> None:
    this_month = Usage(generations_this_month=25, period_start="2026-12-01")
    last_month = Usage(generations_this_month=25, period_start="2026-11-01")

    found = usage_over_limit(case(this_month), Context(NOW))

    assert found is not None
    [evidence] = found.evidence
    assert evidence.store is Store.TENANTS
    assert dict(evidence.fields) == {
        "metric": "generations",
        "used": 25,
        "limit": 20,
        "period_start": "2026-12-01",
        "period_end": "2027-01-01",
    }
    # A count kept for last month is zero in this one: the next record starts it again.
    assert usage_over_limit(case(last_month), Context(NOW)) is None


def test_a_subscriber_s_generations_are_counted_in_its_paid_period_not_the_calendar_month() -> None:
    this_period = Usage(generations_this_month=25, period_start="2026-12-06")
    calendar_month = Usage(generations_this_month=25, period_start="2026-12-01")

    found = usage_over_limit(case(this_period, subscription=SUBSCRIPTION), Context(NOW))

    assert found is not None
    [evidence] = found.evidence
    assert (evidence.fields["period_start"], evidence.fields["period_end"]) == ("2026-12-06", "2027-01-06")
    assert "generations 25 of 20" in found.summary
    # The calendar month's start names no period of this subscriber's: that count is an earlier one's.
    assert usage_over_limit(case(calendar_month, subscription=SUBSCRIPTION), Context(NOW)) is None


def test_sites_and_storage_are_levels_counted_whatever_the_period() -> None:
    old = Usage(sites_count=3, storage_used_mb=150, generations_this_month=99, period_start="2026-10-06")

    found = usage_over_limit(case(old, subscription=SUBSCRIPTION), Context(NOW))

    assert found is not None
    assert [evidence.fields["metric"] for evidence in found.evidence] == ["sites", "storage_mb"]
    assert found.next_step.usage_over_limit_of == TENANT
    assert found.escalate_to is None


@pytest.mark.parametrize("status", [TenantStatus.PAST_DUE, TenantStatus.CANCELLING])
def test_a_tenant_its_people_still_use_is_named(status: TenantStatus) -> None:
    assert usage_over_limit(case(Usage(sites_count=2), status=status), Context(NOW)) is not None


@pytest.mark.parametrize(
    "status", [TenantStatus.PROVISIONING, TenantStatus.SUSPENDED, TenantStatus.CANCELLED, TenantStatus.DELETED]
)
def test_a_tenant_its_people_cannot_use_is_not_named(status: TenantStatus) -> None:
    # Nothing can be recorded for it anyway; its own finding (held, deleted, in progress) says why.
    assert usage_over_limit(case(Usage(sites_count=2), status=status), Context(NOW)) is None


def test_a_case_without_a_tenant_is_not_named() -> None:
    no_tenant = CaseFile(Selector(tenant_id=TENANT), None, None, TENANT)

    assert usage_over_limit(no_tenant, Context(NOW)) is None
