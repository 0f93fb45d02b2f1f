"""The LifecycleStore contract on both backends: a move is one conditional, atomic write of the
tenant's changed fields, its subscription, its history and its notices; the notices' outbox
delivers each once (a claim per delivery)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from tenancy.domain.billing import Frequency, Subscription, SubscriptionStatus
from tenancy.domain.lifecycle import (
    EventType,
    LifecycleCommit,
    NoticeStatus,
    TenantChanges,
    Trigger,
    event_notice,
    new_event,
)
from tenancy.domain.model import Billing, Tenant, TenantStatus, Usage
from tenancy.errors import ConflictError, NotFoundError
from tenancy.lifecycle.moves import record_move

from aws_support import Backend

AT = "2027-01-10T09:00:00Z"


def a_tenant(backend: Backend, tenant_id: str = "ten_lifecycle1", status: TenantStatus = TenantStatus.ACTIVE) -> Tenant:
    plan = backend.services.plans.get("professional")
    tenant = Tenant(
        tenant_id=tenant_id,
        owner_user_id="sub-owner",
        name="Lifecycle Co",
        plan=plan.name,
        status=status,
        limits=plan.limits,
        usage=Usage(sites_count=3, generations_this_month=42, storage_used_mb=120),
        storage_prefix=f"tenants/{tenant_id}",
        billing=Billing("TXN-LIFE1", "INV-LIFE1"),
        created_at="2027-01-01T00:00:00Z",
        updated_at="2027-01-01T00:00:00Z",
    )
    backend.services.tenants.create(tenant)
    return tenant


def a_subscription(tenant_id: str) -> Subscription:
    return Subscription(
        tenant_id=tenant_id,
        token="tok-lifecycle-1",
        transaction_id="TXN-LIFE1",
        plan="professional",
        frequency=Frequency.MONTHLY,
        recurring_amount=Decimal("299.00"),
        billing_date=date(2027, 1, 1),
        periods_paid=1,
        status=SubscriptionStatus.ACTIVE,
        created_at=AT,
        updated_at=AT,
    )


def past_due_commit(tenant: Tenant, at: str = AT) -> LifecycleCommit:
    recorded = record_move(
        tenant_id=tenant.tenant_id,
        plan=tenant.plan,
        leaving=TenantStatus.ACTIVE,
        to=TenantStatus.PAST_DUE,
        trigger=Trigger.TIME,
        actor="lifecycle-sweep",
        at=at,
        reason="paid through 2027-02-01, no renewal",
        key="past_due:2027-02-01",
    )
    return LifecycleCommit(
        tenant_id=tenant.tenant_id,
        leaving=frozenset({TenantStatus.ACTIVE}),
        updated_at=at,
        changes=TenantChanges(status=TenantStatus.PAST_DUE),
        transitions=(recorded.transition,),
        notices=(recorded.notice,),
    )


def test_a_move_writes_the_status_its_history_line_and_its_event_together(backend: Backend) -> None:
    services = backend.services
    tenant = a_tenant(backend)

    services.lifecycle.commit(past_due_commit(tenant))

    moved = services.tenants.get(tenant.tenant_id)
    assert moved is not None
    assert moved.status is TenantStatus.PAST_DUE
    assert moved.updated_at == AT
    assert moved.usage == tenant.usage
    assert moved.owner_user_id == "sub-owner"
    [line] = services.lifecycle.history(tenant.tenant_id)
    assert (line.from_status, line.to_status, line.trigger, line.event) == (
        TenantStatus.ACTIVE,
        TenantStatus.PAST_DUE,
        Trigger.TIME,
        EventType.PAST_DUE,
    )
    assert line.reason == "paid through 2027-02-01, no renewal"
    [notice] = services.lifecycle.due_notices(AT)
    event = notice.event()
    assert (event.type, event.tenant_id, event.status, event.plan) == (
        EventType.PAST_DUE,
        tenant.tenant_id,
        TenantStatus.PAST_DUE,
        "professional",
    )


def test_a_move_from_a_state_the_tenant_has_left_changes_nothing(backend: Backend) -> None:
    services = backend.services
    tenant = a_tenant(backend, status=TenantStatus.SUSPENDED)

    with pytest.raises(ConflictError, match="suspended"):
        services.lifecycle.commit(past_due_commit(tenant))

    stored = services.tenants.get(tenant.tenant_id)
    assert stored is not None
    assert stored.status is TenantStatus.SUSPENDED
    assert services.lifecycle.history(tenant.tenant_id) == []
    assert services.lifecycle.notices() == []


def test_a_move_of_a_tenant_that_does_not_exist_is_not_found_and_creates_nothing(backend: Backend) -> None:
    services = backend.services
    ghost = replace(a_tenant(backend), tenant_id="ten_ghost")

    with pytest.raises(NotFoundError):
        services.lifecycle.commit(past_due_commit(ghost))

    assert services.tenants.get("ten_ghost") is None
    assert services.lifecycle.history("ten_ghost") == []


def test_a_stale_subscription_refuses_the_whole_move(backend: Backend) -> None:
    services = backend.services
    tenant = a_tenant(backend)
    services.subscriptions.save(a_subscription(tenant.tenant_id))  # now at version 1
    stale = a_subscription(tenant.tenant_id)  # read at version 0

    with pytest.raises(ConflictError):
        services.lifecycle.commit(replace(past_due_commit(tenant), subscription=stale))

    stored = services.tenants.get(tenant.tenant_id)
    assert stored is not None
    assert stored.status is TenantStatus.ACTIVE
    assert services.lifecycle.history(tenant.tenant_id) == []


def test_a_move_saves_the_subscription_over_its_version_and_resets_only_the_months_generations(
    backend: Backend,
) -> None:
    services = backend.services
    tenant = a_tenant(backend)
    current = services.subscriptions.save(a_subscription(tenant.tenant_id))
    enterprise = services.plans.get("enterprise")

    saved = services.lifecycle.commit(
        LifecycleCommit(
            tenant_id=tenant.tenant_id,
            leaving=frozenset({TenantStatus.ACTIVE}),
            updated_at=AT,
            changes=TenantChanges(plan="enterprise", limits=enterprise.limits, reset_generations=True),
            subscription=current.evolve(AT, periods_paid=2),
        )
    )

    assert saved is not None
    assert saved.version == current.version + 1
    stored_subscription = services.subscriptions.get(tenant.tenant_id)
    assert stored_subscription is not None
    assert stored_subscription.periods_paid == 2
    stored = services.tenants.get(tenant.tenant_id)
    assert stored is not None
    assert (stored.plan, stored.limits, stored.status) == ("enterprise", enterprise.limits, TenantStatus.ACTIVE)
    assert stored.usage == Usage(sites_count=3, generations_this_month=0, storage_used_mb=120)


def test_a_notice_queued_again_by_a_replayed_move_is_one_notice(backend: Backend) -> None:
    services = backend.services
    tenant = a_tenant(backend)
    first = past_due_commit(tenant)
    services.lifecycle.commit(first)
    # The same move's notice again, with a move that is allowed (the tenant is past_due now).
    replayed = replace(first, leaving=frozenset({TenantStatus.PAST_DUE}), changes=TenantChanges(), transitions=())

    services.lifecycle.commit(replayed)

    assert len(services.lifecycle.notices()) == 1
    assert services.lifecycle.notice_counts() == {NoticeStatus.PENDING: 1}


def test_of_two_racing_moves_from_one_state_exactly_one_is_applied(backend: Backend) -> None:
    services = backend.services
    tenant = a_tenant(backend)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def move(at: str) -> None:
        start.wait()
        try:
            services.lifecycle.commit(past_due_commit(tenant, at))
            outcomes.append("applied")
        except ConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=move, args=(at,)) for at in (AT, "2027-01-10T09:00:01Z")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["applied", "refused"]
    assert len(services.lifecycle.history(tenant.tenant_id)) == 1


def test_a_notice_is_claimed_by_one_deliverer_and_leaves_the_due_list_once_delivered(backend: Backend) -> None:
    services = backend.services
    tenant = a_tenant(backend)
    services.lifecycle.commit(past_due_commit(tenant))
    [notice] = services.lifecycle.due_notices(AT)
    lease = "2027-01-10T09:02:00Z"

    assert services.lifecycle.claim_notice(notice, lease) is True
    assert services.lifecycle.claim_notice(notice, lease) is False  # read before the first claim
    assert services.lifecycle.due_notices(AT) == []  # leased until 09:02
    [leased] = services.lifecycle.due_notices(lease)

    services.lifecycle.update_notice(
        replace(leased, status=NoticeStatus.DELIVERED, attempts=1, delivered_at="2027-01-10T09:00:05Z")
    )

    assert services.lifecycle.due_notices("2027-12-31T00:00:00Z") == []
    stored = services.lifecycle.get_notice(notice.notice_id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.delivered_at) == (NoticeStatus.DELIVERED, 1, "2027-01-10T09:00:05Z")
    assert services.lifecycle.notices(NoticeStatus.DELIVERED) == [stored]
    assert services.lifecycle.notice_counts() == {NoticeStatus.DELIVERED: 1}


def test_a_notice_claimed_between_the_index_read_and_its_fresh_read_is_not_due_on_dynamodb(
    aws_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DynamoDB lists due notices from an index, then reads each one again: a deliverer that
    # claimed it in between (its lease set) has it, and the second must not claim the fresh copy.
    services = aws_backend.services
    store = services.lifecycle
    store.commit(past_due_commit(a_tenant(aws_backend)))
    [notice] = store.due_notices(AT)
    listed = type(store)._by_status
    monkeypatch.setattr(type(store), "_by_status", lambda self, status, limit=None: [notice])  # the stale index
    assert store.claim_notice(notice, "2027-01-10T09:02:00Z") is True  # the first deliverer

    due = store.due_notices(AT)

    monkeypatch.setattr(type(store), "_by_status", listed)
    assert due == []


def test_a_tenants_dead_notices_are_read_by_the_tenant_oldest_first(backend: Backend) -> None:
    store = backend.services.lifecycle
    ours, theirs = a_tenant(backend), a_tenant(backend, "ten_lifecycle2")
    store.commit(past_due_commit(ours))
    store.commit(past_due_commit(theirs))
    later = new_event(
        EventType.SUSPENDED, ours.tenant_id, "professional", TenantStatus.SUSPENDED, "2027-01-11T09:00:00Z", "s:1"
    )
    assert store.queue_notice(event_notice(later))
    assert store.dead_notices_of(ours.tenant_id) == []  # pending, not dead
    for notice in store.notices(limit=10):
        store.update_notice(replace(notice, status=NoticeStatus.DEAD, attempts=9, last_error="answered 503"))

    [their_notice] = store.dead_notices_of(theirs.tenant_id)
    first, second = store.dead_notices_of(ours.tenant_id)

    assert their_notice.tenant_id == theirs.tenant_id
    assert (first.event().type, second.event().type) == (EventType.PAST_DUE, EventType.SUSPENDED)
    assert {first.status, second.status, their_notice.status} == {NoticeStatus.DEAD}
    store.update_notice(replace(first, status=NoticeStatus.DELIVERED, delivered_at="2027-01-12T00:00:00Z"))
    assert store.dead_notices_of(ours.tenant_id) == [second]
    assert store.dead_notices_of("ten_nobody") == []


def test_an_unknown_notice_cannot_be_updated(backend: Backend) -> None:
    services = backend.services
    tenant = a_tenant(backend)
    services.lifecycle.commit(past_due_commit(tenant))
    [notice] = services.lifecycle.notices()

    with pytest.raises(NotFoundError):
        services.lifecycle.update_notice(replace(notice, notice_id="evt_unknown"))

    assert services.lifecycle.get_notice("evt_unknown") is None
    assert services.lifecycle.notices() == [notice]


def test_events_are_counted_by_type_since_a_moment(backend: Backend) -> None:
    services = backend.services
    tenant = a_tenant(backend)
    services.lifecycle.commit(past_due_commit(tenant))  # one tenant.past_due, queued at AT

    assert services.lifecycle.count_events_since(EventType.PAST_DUE, "2027-01-10T00:00:00Z") == 1
    assert services.lifecycle.count_events_since(EventType.PAST_DUE, "2027-01-10T09:00:01Z") == 0
    assert services.lifecycle.count_events_since(EventType.SUSPENDED, "2027-01-01T00:00:00Z") == 0
