"""The runbook's lifecycle findings on both backends, through `services.runbook` as the CLI and the
console use it: a move due and not applied (`lifecycle_overdue`, repaired by applying it), a
lifecycle event that died undelivered (`event_undelivered`, repaired by delivering it), people
left behind by an interrupted deletion (`access_mismatch`, repaired by finishing it), and a
cleanly deleted tenant, which is no failure at all (`tenant_deleted`)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from lifecycle_support import Subscriber, payfast, services, subscriber
from tenancy.bootstrap import Services
from tenancy.domain.clock import format_timestamp
from tenancy.domain.lifecycle import EventType, LifecycleEvent, NoticeStatus, Trigger, event_notice, new_event
from tenancy.domain.model import TenantStatus, UserStatus
from tenancy.errors import PermanentError
from tenancy.runbook import audit_lookup, evidence
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import ESCALATION, Finding, Store
from tenancy.runbook.findings_index import AuditTrigger
from tenancy.runbook.rules.base import Context
from tenancy.runbook.rules.lifecycle import access_mismatch

from aws_support import Backend

__all__ = ["payfast", "services", "subscriber"]  # the fixtures this suite uses, from lifecycle_support


def move_clock_to(backend: Backend, day: str) -> None:
    target = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    backend.clock.advance(seconds=(target - backend.clock.now()).total_seconds())


class Refusing:
    """The Site Builder application's end of the event port, refusing for good until told not to."""

    def __init__(self) -> None:
        self.received: list[LifecycleEvent] = []
        self.refuse = True

    def publish(self, event: LifecycleEvent) -> None:
        if self.refuse:
            raise PermanentError("webhook to app.example: answered 410")
        self.received.append(event)


def test_a_move_due_and_not_applied_is_named_with_its_evidence_and_repaired_as_the_sweep_would(
    backend: Backend, services: Services, subscriber: Subscriber
) -> None:
    selector = Selector(tenant_id=subscriber.tenant_id)
    move_clock_to(backend, "2027-01-09")  # paid through 2027-01-06: past due since the 8th

    diagnosis = services.runbook.diagnose(selector)

    assert diagnosis.finding is Finding.LIFECYCLE_OVERDUE
    assert diagnosis.repairable
    [evidence] = [item for item in diagnosis.evidence if item.store is Store.LIFECYCLE]
    assert evidence.fields["due"] == "past_due"
    assert evidence.fields["paid_through"] == "2027-01-06"

    result = services.runbook.repair(selector, operator="alice")

    assert result.outcome == "repaired"
    assert subscriber.status() is TenantStatus.PAST_DUE
    assert result.after.finding is not Finding.LIFECYCLE_OVERDUE


def test_an_event_that_died_undelivered_is_named_and_delivered_again(
    services: Services, subscriber: Subscriber
) -> None:
    application = Refusing()
    wired = dataclasses.replace(services, events=application)
    wired.notices.deliver_due()  # the tenant's tenant.activated: refused for good
    [dead] = wired.lifecycle.notices(NoticeStatus.DEAD)
    selector = Selector(tenant_id=subscriber.tenant_id)

    diagnosis = wired.runbook.diagnose(selector)
    application.refuse = False
    result = wired.runbook.repair(selector, operator="alice")

    assert diagnosis.finding is Finding.EVENT_UNDELIVERED
    assert "answered 410" in " ".join(diagnosis.evidence_lines)
    assert result.outcome == "repaired"
    assert [event.event_id for event in application.received] == [dead.notice_id]
    redelivered = wired.lifecycle.get_notice(dead.notice_id)
    assert redelivered is not None
    assert redelivered.status is NoticeStatus.DELIVERED
    assert result.after.finding is not Finding.EVENT_UNDELIVERED


def test_a_tenants_dead_event_is_found_however_many_other_tenants_events_died_after_it(
    backend: Backend, services: Services, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each judgement used to read the newest DEAD_NOTICE_LIMIT (1000) dead notices of every tenant
    # and keep this tenant's: slow on every ITN once many had died, and blind past the limit. A
    # limit of 3 stands for "many" here; the tenant's own are read by the tenant now.
    monkeypatch.setattr(evidence, "DEAD_NOTICE_LIMIT", 3)
    monkeypatch.setattr(audit_lookup, "DEAD_NOTICE_LIMIT", 3)
    refusing = dataclasses.replace(services, events=Refusing())
    refusing.notices.deliver_due()  # the subscriber's tenant.activated: refused for good
    for number in range(5):
        backend.clock.advance(seconds=60)
        event = new_event(
            EventType.ACTIVATED, f"ten_other{number}", "starter", TenantStatus.ACTIVE, "2027-01-02T00:00:00Z", "a"
        )
        assert services.lifecycle.queue_notice(event_notice(event, format_timestamp(backend.clock.now())))
    refusing.notices.deliver_due()
    assert len(services.lifecycle.notices(NoticeStatus.DEAD, limit=10)) == 6

    diagnosis = services.runbook.diagnose(Selector(tenant_id=subscriber.tenant_id))
    report = services.auditor.run(since=datetime(2020, 1, 1, tzinfo=UTC), trigger=AuditTrigger.CLI)

    assert diagnosis.finding is Finding.EVENT_UNDELIVERED
    assert [case.finding for case in report.cases] == [Finding.EVENT_UNDELIVERED]


def test_people_left_by_an_interrupted_deletion_are_named_and_removed(
    services: Services, subscriber: Subscriber
) -> None:
    [owner] = services.users.find_by_tenant(subscriber.tenant_id)
    services.offboarding.delete(subscriber.tenant_id, trigger=Trigger.OPERATOR, actor="alice", reason="asked")
    # The deletion as a crash would leave it: the tombstone written, the people still there.
    services.identity.create_user(
        subscriber.email,
        {"email": subscriber.email, "email_verified": "true", "custom:tenant_id": subscriber.tenant_id},
        "Temp-Passw0rd!",
    )
    services.users.create(dataclasses.replace(owner, status=UserStatus.ACTIVE))
    selector = Selector(tenant_id=subscriber.tenant_id)

    diagnosis = services.runbook.diagnose(selector)
    result = services.runbook.repair(selector, operator="alice")

    assert diagnosis.finding is Finding.ACCESS_MISMATCH
    assert f"identity user {subscriber.email}" in diagnosis.summary
    assert result.outcome == "repaired"
    assert services.identity.get_user(subscriber.email) is None
    assert services.users.find_by_tenant(subscriber.tenant_id) == []
    assert result.after.finding is Finding.TENANT_DELETED


def test_a_cleanly_deleted_tenant_is_no_failure_and_offers_no_repair(
    services: Services, subscriber: Subscriber
) -> None:
    services.offboarding.delete(subscriber.tenant_id, trigger=Trigger.OPERATOR, actor="alice", reason="asked")

    diagnosis = services.runbook.diagnose(Selector(transaction_id=subscriber.transaction_id))
    report = services.auditor.run(since=datetime(2020, 1, 1, tzinfo=UTC), trigger=AuditTrigger.CLI)

    assert diagnosis.finding is Finding.TENANT_DELETED
    assert not diagnosis.repairable
    assert not diagnosis.finding.is_failure
    assert report.totals.findings == 0
    assert report.totals.healthy == 1


def test_a_disabled_owner_of_an_active_tenant_goes_to_security_without_a_repair(
    services: Services, subscriber: Subscriber
) -> None:
    # Disabled by hand (the Cognito console's "Disable user"): Tenancy never disables anyone.
    user = services.identity.get_user(subscriber.email)
    assert user is not None
    case = services.runbook.case(Selector(tenant_id=subscriber.tenant_id))
    disabled = dataclasses.replace(case, identity_user=dataclasses.replace(user, enabled=False))

    found = access_mismatch(disabled, Context(services.clock.now()))

    assert found is not None
    assert f"its owner {subscriber.email} cannot sign in" in found.summary
    assert found.next_step.repairable is False
    assert found.escalate_to == ESCALATION["security"]


def test_a_tenant_its_lifecycle_suspended_is_held_not_a_failure_for_review(
    backend: Backend, services: Services, subscriber: Subscriber
) -> None:
    services.lifecycle_sweep.run(datetime(2027, 1, 20, 9, tzinfo=UTC))  # past due, then suspended
    move_clock_to(backend, "2027-01-20")

    diagnosis = services.runbook.diagnose(Selector(tenant_id=subscriber.tenant_id))

    assert subscriber.status() is TenantStatus.SUSPENDED
    assert diagnosis.finding is Finding.TENANT_HELD
    assert "payment overdue" in diagnosis.summary
    assert not diagnosis.finding.is_failure
    assert not diagnosis.repairable
    assert diagnosis.escalate_to is None
