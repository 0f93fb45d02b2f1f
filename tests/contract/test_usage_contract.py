"""The usage store and the service keys, on both backends: a record is one conditional write
that holds the quota, answers a repeated idempotency key with its first answer, starts a new
period's generation count from zero once, and refuses a tenant without access; keys are kept
hashed and refused once revoked."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from tenancy.adapters.aws.usage import DynamoUsageStore
from tenancy.bootstrap import Services
from tenancy.domain.model import Billing, Tenant, TenantStatus, Usage
from tenancy.domain.usage import Metric, UsageChange
from tenancy.errors import (
    InvalidInputError,
    InvalidTokenError,
    ItemAlreadyExistsError,
    NotFoundError,
    TenantInactiveError,
)

from aws_support import Backend

NOW = "2026-12-07T10:00:00Z"
PERIOD = "2026-12-01"


def _tenant(
    services: Services,
    tenant_id: str = "ten_usage",
    *,
    status: TenantStatus = TenantStatus.ACTIVE,
    usage: Usage | None = None,
    plan: str = "starter",
) -> Tenant:
    tenant = Tenant(
        tenant_id=tenant_id,
        owner_user_id="",
        name="Usage test",
        plan=plan,
        status=status,
        limits=services.plans.get(plan).limits,
        usage=usage or Usage(),
        storage_prefix=f"tenants/{tenant_id}",
        billing=Billing("TXN-USAGE", "INV-USAGE"),
        created_at=NOW,
        updated_at=NOW,
    )
    services.tenants.create(tenant)
    return tenant


def test_a_delta_within_the_quota_is_applied_and_one_past_it_is_refused_without_a_change(backend: Backend) -> None:
    services = backend.services
    tenant = _tenant(services)  # starter: 20 generations a month
    store = services.usage_store
    first = store.record(tenant, UsageChange(Metric.GENERATIONS, 18, "k1"), PERIOD, NOW)
    assert first.applied
    assert first.used == 18
    assert first.limit == 20
    refused = store.record(tenant, UsageChange(Metric.GENERATIONS, 3, "k2"), PERIOD, NOW)
    assert not refused.applied
    assert refused.used == 18
    last = store.record(tenant, UsageChange(Metric.GENERATIONS, 2, "k3"), PERIOD, NOW)
    assert last.applied
    assert last.used == 20
    stored = services.tenants.get(tenant.tenant_id)
    assert stored is not None
    assert stored.usage.generations_this_month == 20
    assert stored.usage.period_start == PERIOD


def test_a_repeated_key_answers_its_first_answer_and_changes_nothing(backend: Backend) -> None:
    services = backend.services
    tenant = _tenant(services)
    store = services.usage_store
    store.record(tenant, UsageChange(Metric.GENERATIONS, 5, "same"), PERIOD, NOW)
    again = store.record(tenant, UsageChange(Metric.GENERATIONS, 5, "same"), PERIOD, NOW)
    assert again.replayed
    assert again.applied
    assert again.used == 5
    stored = services.tenants.get(tenant.tenant_id)
    assert stored is not None
    assert stored.usage.generations_this_month == 5
    refused = store.record(tenant, UsageChange(Metric.GENERATIONS, 50, "too-many"), PERIOD, NOW)
    replayed_refusal = store.record(tenant, UsageChange(Metric.GENERATIONS, 50, "too-many"), PERIOD, NOW)
    assert not refused.applied
    assert not replayed_refusal.applied
    assert replayed_refusal.replayed
    with pytest.raises(InvalidInputError):
        store.record(tenant, UsageChange(Metric.GENERATIONS, 6, "same"), PERIOD, NOW)


def test_a_replay_while_its_first_record_is_answered_on_dynamodb_answers_the_first_answer(
    aws_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On DynamoDB the answer's usage is kept just after the write: a replay in between waits for it.
    services = aws_backend.services
    tenant, store = _tenant(services), services.usage_store
    written, go_on, looked = threading.Event(), threading.Event(), threading.Event()
    applied, answer = DynamoUsageStore._applied, DynamoUsageStore._answer

    def paused_after_the_write(self: DynamoUsageStore, tenant_id: str, change: UsageChange, *rest: str) -> Any:
        if change.idempotency_key == "first":
            written.set()
            go_on.wait(10)
        return applied(self, tenant_id, change, *rest)

    def seen(self: DynamoUsageStore, tenant_id: str, key: str) -> Any:
        found = answer(self, tenant_id, key)
        if key == "first" and found is not None and "usage" not in found:
            looked.set()  # the replay found the answer without its usage
        return found

    monkeypatch.setattr(DynamoUsageStore, "_applied", paused_after_the_write)
    monkeypatch.setattr(DynamoUsageStore, "_answer", seen)
    outcomes: dict[str, Any] = {}

    def record(name: str, key: str, amount: int) -> threading.Thread:
        change = UsageChange(Metric.GENERATIONS, amount, key)
        thread = threading.Thread(target=lambda: outcomes.update({name: store.record(tenant, change, PERIOD, NOW)}))
        thread.start()
        return thread

    writer = record("first", "first", 5)
    assert written.wait(10)
    replayer = record("replay", "first", 5)
    assert looked.wait(10)
    store.record(tenant, UsageChange(Metric.GENERATIONS, 3, "meanwhile"), PERIOD, NOW)
    go_on.set()
    writer.join(10)
    replayer.join(10)

    assert outcomes["replay"].replayed
    assert outcomes["replay"].used == outcomes["first"].used
    stored = services.tenants.get(tenant.tenant_id)
    assert stored is not None
    assert stored.usage.generations_this_month == 8


def test_sites_are_set_lowered_to_zero_at_most_and_a_set_above_the_limit_is_refused(backend: Backend) -> None:
    services = backend.services
    tenant = _tenant(services, plan="professional")  # 5 sites
    store = services.usage_store
    assert store.record(tenant, UsageChange(Metric.SITES, 4, "s1", absolute=True), PERIOD, NOW).used == 4
    assert not store.record(tenant, UsageChange(Metric.SITES, 6, "s2", absolute=True), PERIOD, NOW).applied
    assert store.record(tenant, UsageChange(Metric.SITES, -10, "s3"), PERIOD, NOW).used == 0
    assert store.record(tenant, UsageChange(Metric.SITES, 2, "s4"), PERIOD, NOW).used == 2
    assert store.record(tenant, UsageChange(Metric.STORAGE_MB, -1, "m1"), PERIOD, NOW).used == 0


def test_usage_above_a_lowered_limit_may_only_come_down(backend: Backend) -> None:
    services = backend.services
    tenant = _tenant(services, usage=Usage(sites_count=4))  # starter allows 1 site
    store = services.usage_store
    assert not store.record(tenant, UsageChange(Metric.SITES, 1, "up"), PERIOD, NOW).applied
    assert store.record(tenant, UsageChange(Metric.SITES, 3, "down", absolute=True), PERIOD, NOW).used == 3
    assert store.record(tenant, UsageChange(Metric.SITES, -1, "minus"), PERIOD, NOW).used == 2


def test_a_new_period_starts_the_generation_count_from_zero_once(backend: Backend) -> None:
    services = backend.services
    tenant = _tenant(services, usage=Usage(generations_this_month=19, period_start="2026-11-01"))
    store = services.usage_store
    first = store.record(tenant, UsageChange(Metric.GENERATIONS, 4, "dec-1"), PERIOD, NOW)
    assert first.applied
    assert first.used == 4
    reread = services.tenants.get(tenant.tenant_id)
    assert reread is not None
    second = store.record(reread, UsageChange(Metric.GENERATIONS, 3, "dec-2"), PERIOD, NOW)
    assert second.used == 7
    stored = services.tenants.get(tenant.tenant_id)
    assert stored is not None
    assert stored.usage.generations_this_month == 7


def test_a_tenant_without_access_records_nothing_and_an_unknown_one_is_not_found(backend: Backend) -> None:
    services = backend.services
    suspended = _tenant(services, status=TenantStatus.SUSPENDED)
    with pytest.raises(TenantInactiveError) as refused:
        services.usage_store.record(suspended, UsageChange(Metric.GENERATIONS, 1, "k"), PERIOD, NOW)
    assert refused.value.status == "suspended"
    assert refused.value.reason == "payment overdue"
    stored = services.tenants.get(suspended.tenant_id)
    assert stored is not None
    assert stored.usage.generations_this_month == 0
    ghost = replace(suspended, tenant_id="ten_ghost", status=TenantStatus.ACTIVE)
    with pytest.raises(NotFoundError):
        services.usage_store.record(ghost, UsageChange(Metric.GENERATIONS, 1, "k"), PERIOD, NOW)


def test_fifty_parallel_records_for_the_last_ten_units_give_exactly_ten(backend: Backend) -> None:
    services = backend.services
    tenant = _tenant(services, usage=Usage(generations_this_month=10, period_start=PERIOD))  # 10 of 20 left
    store = services.usage_store

    def one(index: int) -> bool:
        return store.record(tenant, UsageChange(Metric.GENERATIONS, 1, f"race-{index}"), PERIOD, NOW).applied

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(50)))
    assert results.count(True) == 10
    assert results.count(False) == 40
    stored = services.tenants.get(tenant.tenant_id)
    assert stored is not None
    assert stored.usage.generations_this_month == 20


def test_a_correction_sets_the_level_whatever_the_limit(backend: Backend) -> None:
    services = backend.services
    tenant = _tenant(services)
    usage = services.usage_store.correct(tenant.tenant_id, Metric.STORAGE_MB, 250, PERIOD, NOW)
    assert usage.storage_used_mb == 250
    with pytest.raises(NotFoundError):
        services.usage_store.correct("ten_ghost", Metric.SITES, 1, PERIOD, NOW)


def test_answers_are_forgotten_after_their_lifetime(backend: Backend) -> None:
    services = backend.services
    tenant = _tenant(services)
    services.usage_store.record(tenant, UsageChange(Metric.GENERATIONS, 1, "old"), PERIOD, "2026-11-01T00:00:00Z")
    services.usage_store.record(tenant, UsageChange(Metric.GENERATIONS, 1, "new"), PERIOD, NOW)
    assert services.usage_store.forget_answers("2026-11-15T00:00:00Z") == 1
    # The old key is new again: recorded a second time.
    assert not services.usage_store.record(tenant, UsageChange(Metric.GENERATIONS, 1, "old"), PERIOD, NOW).replayed


def test_service_keys_are_kept_hashed_checked_and_refused_once_revoked(backend: Backend) -> None:
    services = backend.services
    keys = services.service_keys
    key = keys.create("site-builder")
    assert key.startswith("tnc_site-builder.")
    stored = services.service_key_store.get("site-builder")
    assert stored is not None
    assert key.split(".", 1)[1] not in stored.key_hash
    assert keys.authenticate(key).name == "site-builder"
    with pytest.raises(ItemAlreadyExistsError):
        keys.create("site-builder")
    with pytest.raises(InvalidTokenError):
        keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))
    with pytest.raises(InvalidTokenError):
        keys.authenticate("tnc_nobody." + key.split(".", 1)[1])
    assert keys.revoke("site-builder")
    assert not keys.revoke("site-builder")
    with pytest.raises(InvalidTokenError):
        keys.authenticate(key)
    assert [(each.name, each.active) for each in keys.all()] == [("site-builder", False)]
