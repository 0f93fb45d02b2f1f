"""The lifecycle sweep on both backends, driven by the time it is asked to judge: a subscription
whose renewal does not come goes past due (once PayFast confirms it), then suspended, then
cancelled (at PayFast too); a cancelling one is cancelled once its paid-through date passes; a
renewal brings a past-due tenant back. Every move is applied once, recorded in the tenant's
history with its event, and its owner email sent once, whatever races it."""

from __future__ import annotations

import dataclasses
import re
import threading
from typing import Any

import pytest

from lifecycle_support import PAID_THROUGH, Subscriber, at, payfast, services, subscriber
from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi
from tenancy.bootstrap import Services
from tenancy.domain.billing import BillingKind, PayfastSubscription, SubscriptionStatus
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import EventType, LifecycleEvent, NoticeKind, NoticeStatus, Trigger, email_hash
from tenancy.domain.model import PaymentVerdict, TenantStatus
from tenancy.errors import AccountNotFoundError, InvalidInputError, TransientError
from tenancy.lifecycle.emails import DELETION_WARNING_SUBJECT, SUBJECTS
from tenancy.lifecycle.offboarding import TenantOffboarding

from aws_support import Backend
from helpers import pay, work

__all__ = ["payfast", "services", "subscriber"]  # the fixtures this suite uses, from lifecycle_support


def test_a_day_of_slack_then_a_missed_renewal_confirmed_by_payfast_is_past_due(
    services: Services, subscriber: Subscriber
) -> None:
    assert services.lifecycle_sweep.run(at("2027-01-07", 23)).applied == []
    assert subscriber.status() is TenantStatus.ACTIVE

    report = services.lifecycle_sweep.run(at("2027-01-08"))

    [move] = report.applied
    assert (move.tenant_id, move.trigger, move.actor) == (subscriber.tenant_id, Trigger.TIME, "lifecycle-sweep")
    assert "paid through 2027-01-06" in move.reason
    assert subscriber.status() is TenantStatus.PAST_DUE
    assert subscriber.moves() == [
        (TenantStatus.PROVISIONING, TenantStatus.ACTIVE, EventType.ACTIVATED),
        (TenantStatus.ACTIVE, TenantStatus.PAST_DUE, EventType.PAST_DUE),
    ]
    assert subscriber.emails(SUBJECTS[TenantStatus.PAST_DUE]) == 1
    [payment_failed] = [
        m for m in services.mailer.outbox(subscriber.email) if m.subject == SUBJECTS[TenantStatus.PAST_DUE]
    ]
    assert "until 2027-01-14" in payment_failed.text  # the site keeps working until the grace period ends
    assert "/account" in payment_failed.text
    events = [notice.event().type for notice in services.lifecycle.notices() if notice.kind is NoticeKind.EVENT]
    assert sorted(events) == sorted([EventType.ACTIVATED, EventType.PAST_DUE])


def test_a_charge_payfast_made_whose_itn_never_came_is_not_a_missed_payment(
    services: Services, subscriber: Subscriber, payfast: SimulatedSubscriptionApi
) -> None:
    payfast.charge(subscriber.token)  # run_date moves on to 2027-02-06

    report = services.lifecycle_sweep.run(at("2027-01-09"))

    assert report.applied == []
    assert report.skipped == [(subscriber.tenant_id, "a renewal was found instead")]
    assert subscriber.status() is TenantStatus.ACTIVE


def test_payfast_out_of_reach_leaves_the_tenant_for_the_next_sweep(services: Services, subscriber: Subscriber) -> None:
    class Unreachable(SimulatedSubscriptionApi):
        def fetch(self, token: str) -> PayfastSubscription:
            raise TransientError("PayFast's API: timed out")

    unreachable = dataclasses.replace(services, payfast_api=Unreachable.__new__(Unreachable))

    report = unreachable.lifecycle_sweep.run(at("2027-01-09"))

    assert report.applied == []
    assert report.skipped == [(subscriber.tenant_id, "PayFast's API: timed out")]
    assert subscriber.status() is TenantStatus.ACTIVE


def test_far_enough_on_one_sweep_applies_each_due_move_in_turn_and_cancels_at_payfast(
    services: Services, subscriber: Subscriber, payfast: SimulatedSubscriptionApi
) -> None:
    services.lifecycle_sweep.run(at("2027-01-14"))  # the grace period's last day: still past due
    assert subscriber.status() is TenantStatus.PAST_DUE

    services.lifecycle_sweep.run(at("2027-01-15"))
    assert subscriber.status() is TenantStatus.SUSPENDED
    assert payfast.fetch(subscriber.token).status_text == "ACTIVE"

    services.lifecycle_sweep.run(at("2027-02-15"))

    assert subscriber.status() is TenantStatus.CANCELLED
    assert payfast.fetch(subscriber.token).status_text == "CANCELLED"
    subscription = services.subscriptions.get(subscriber.tenant_id)
    assert subscription is not None
    assert subscription.status is SubscriptionStatus.CANCELLED
    assert [move[1] for move in subscriber.moves()] == [
        TenantStatus.ACTIVE,
        TenantStatus.PAST_DUE,
        TenantStatus.SUSPENDED,
        TenantStatus.CANCELLED,
    ]
    for status in (TenantStatus.PAST_DUE, TenantStatus.SUSPENDED, TenantStatus.CANCELLED):
        assert subscriber.emails(SUBJECTS[status]) == 1

    again = services.lifecycle_sweep.run(at("2027-02-16"))

    assert again.applied == []
    assert len(subscriber.moves()) == 4


def test_a_dry_run_names_every_due_move_and_changes_nothing(services: Services, subscriber: Subscriber) -> None:
    report = services.lifecycle_sweep.run(at("2027-03-01"), dry_run=True)

    assert [(due.leaving, due.to) for due in report.due] == [
        (TenantStatus.ACTIVE, TenantStatus.PAST_DUE),
        (TenantStatus.PAST_DUE, TenantStatus.SUSPENDED),
        (TenantStatus.SUSPENDED, TenantStatus.CANCELLED),
    ]
    assert report.applied == []
    assert subscriber.status() is TenantStatus.ACTIVE
    assert len(subscriber.moves()) == 1


def test_a_renewal_brings_a_past_due_tenant_back_to_active(services: Services, subscriber: Subscriber) -> None:
    services.lifecycle_sweep.run(at("2027-01-08"))
    assert subscriber.status() is TenantStatus.PAST_DUE

    assert subscriber.itn().verdict is PaymentVerdict.ACCEPTED
    work(services)

    assert subscriber.status() is TenantStatus.ACTIVE
    assert subscriber.moves()[-1] == (TenantStatus.PAST_DUE, TenantStatus.ACTIVE, EventType.RENEWED)
    subscription = services.subscriptions.get(subscriber.tenant_id)
    assert subscription is not None
    assert subscription.paid_through.isoformat() == "2027-02-06"


def test_a_cancelling_tenant_is_cancelled_once_its_paid_through_date_passes(
    services: Services, subscriber: Subscriber
) -> None:
    assert subscriber.itn(status="CANCELLED").verdict is PaymentVerdict.ACCEPTED
    work(services)
    assert subscriber.status() is TenantStatus.CANCELLING

    assert services.lifecycle_sweep.run(at(PAID_THROUGH, 23)).applied == []
    services.lifecycle_sweep.run(at("2027-01-07"))

    assert subscriber.status() is TenantStatus.CANCELLED
    assert subscriber.moves()[-2:] == [
        (TenantStatus.ACTIVE, TenantStatus.CANCELLING, EventType.CANCELLING),
        (TenantStatus.CANCELLING, TenantStatus.CANCELLED, EventType.CANCELLED),
    ]
    assert subscriber.emails(SUBJECTS[TenantStatus.CANCELLED]) == 1


def test_two_sweeps_racing_apply_each_move_once(services: Services, subscriber: Subscriber) -> None:
    start = threading.Barrier(2)

    def sweep() -> None:
        start.wait()
        services.lifecycle_sweep.run(at("2027-01-08"))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert subscriber.moves().count((TenantStatus.ACTIVE, TenantStatus.PAST_DUE, EventType.PAST_DUE)) == 1
    assert subscriber.emails(SUBJECTS[TenantStatus.PAST_DUE]) == 1


def test_a_once_off_tenant_never_moves_with_time(services: Services) -> None:
    transaction_id = pay(services, email="onceoff@example.com")
    work(services)

    report = services.lifecycle_sweep.run(at("2031-01-01"))

    assert report.applied == []
    tenant = services.tenants.get(tenant_id_for(transaction_id))
    assert tenant is not None
    assert tenant.status is TenantStatus.ACTIVE


def cancel_now(services: Services, subscriber: Subscriber) -> None:
    """Cancelled at PayFast, and the paid-through date passed: cancelled on 2027-01-07."""
    assert subscriber.itn(status="CANCELLED").verdict is PaymentVerdict.ACCEPTED
    work(services)
    services.lifecycle_sweep.run(at("2027-01-07"))
    assert subscriber.status() is TenantStatus.CANCELLED


def test_a_cancelled_tenant_is_warned_a_week_before_and_deleted_once_its_retention_ends(
    services: Services, subscriber: Subscriber
) -> None:
    cancel_now(services, subscriber)  # retention: 90 days, until 2027-04-07
    [owner] = services.users.find_by_tenant(subscriber.tenant_id)

    services.lifecycle_sweep.run(at("2027-03-30"))
    assert subscriber.emails(DELETION_WARNING_SUBJECT) == 0
    services.lifecycle_sweep.run(at("2027-03-31"))
    services.lifecycle_sweep.run(at("2027-04-01"))
    assert subscriber.emails(DELETION_WARNING_SUBJECT) == 1
    assert subscriber.status() is TenantStatus.CANCELLED

    services.lifecycle_sweep.run(at("2027-04-07"))

    tenant = services.tenants.get(subscriber.tenant_id)
    assert tenant is not None
    assert (tenant.status, tenant.name, tenant.owner_user_id) == (TenantStatus.DELETED, "(deleted)", "")
    assert services.users.find_by_tenant(subscriber.tenant_id) == []
    assert services.users.get(owner.user_id) is None
    assert services.identity.get_user(subscriber.email) is None
    with pytest.raises(AccountNotFoundError):
        services.accounts.login(subscriber.email, "Any-Passw0rd!")
    stone = services.lifecycle.tombstone(subscriber.tenant_id)
    assert stone is not None
    assert stone.owner_email_hash == email_hash(subscriber.email)
    assert subscriber.email not in repr(stone)
    assert (stone.plan, stone.transaction_id) == ("professional", subscriber.transaction_id)
    assert stone.cancelled_at == "2027-01-07T09:00:00Z"
    assert stone.deleted_at == "2027-04-07T09:00:00Z"
    subscription = services.subscriptions.get(subscriber.tenant_id)
    assert subscription is not None  # the billing history is kept, for tax records
    assert [entry.kind for entry in subscription.history] == [
        BillingKind.FIRST_CHARGE,
        BillingKind.CANCELLATION,
        BillingKind.CANCELLATION,
    ]
    assert subscriber.moves()[-1] == (TenantStatus.CANCELLED, TenantStatus.DELETED, EventType.DELETED)
    assert subscriber.emails(SUBJECTS[TenantStatus.DELETED]) == 1


def test_a_deletion_a_crash_cut_short_is_finished_by_the_next_sweep_within_a_week(
    services: Services, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancel_now(services, subscriber)  # retention: 90 days, until 2027-04-07
    removing = TenantOffboarding._remove

    def crash(self: TenantOffboarding, people: list[Any]) -> tuple[str, ...]:
        raise RuntimeError("killed after the tombstone, before its people went")

    monkeypatch.setattr(TenantOffboarding, "_remove", crash)
    with pytest.raises(RuntimeError):
        services.lifecycle_sweep.run(at("2027-04-07"))
    monkeypatch.setattr(TenantOffboarding, "_remove", removing)
    tenant = services.tenants.get(subscriber.tenant_id)
    assert tenant is not None
    assert tenant.status is TenantStatus.DELETED
    assert services.identity.get_user(subscriber.email) is not None  # left behind

    finishing = services.lifecycle_sweep.run(at("2027-04-08"))
    later = services.lifecycle_sweep.run(at("2027-04-09"))

    assert finishing.finished == [subscriber.tenant_id]
    assert later.finished == []
    assert services.identity.get_user(subscriber.email) is None
    assert services.users.find_by_tenant(subscriber.tenant_id) == []
    deleted = [move for move in subscriber.moves() if move[1] is TenantStatus.DELETED]
    assert len(deleted) == 1  # finished, not deleted again


def test_a_busy_store_while_judging_one_tenant_leaves_that_tenant_and_sweeps_the_rest(
    services: Services, subscriber: Subscriber, payfast: SimulatedSubscriptionApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Subscriber(services, payfast, number=2)
    for each in (subscriber, other):
        assert each.itn(status="CANCELLED").verdict is PaymentVerdict.ACCEPTED
    work(services)
    services.lifecycle_sweep.run(at("2027-01-07"))
    assert (subscriber.status(), other.status()) == (TenantStatus.CANCELLED, TenantStatus.CANCELLED)
    reading = services.lifecycle.history

    def throttled_for_one(tenant_id: str) -> Any:
        if tenant_id == subscriber.tenant_id:
            raise TransientError("the store is throttling (ProvisionedThroughputExceededException)")
        return reading(tenant_id)

    monkeypatch.setattr(services.lifecycle, "history", throttled_for_one)
    report = services.lifecycle_sweep.run(at("2027-04-07"))  # both tenants' retention is over
    monkeypatch.setattr(services.lifecycle, "history", reading)

    assert other.status() is TenantStatus.DELETED
    assert services.identity.get_user(other.email) is None
    assert subscriber.status() is TenantStatus.CANCELLED
    assert [tenant_id for tenant_id, _ in report.skipped] == [subscriber.tenant_id]
    assert "throttling" in report.skipped[0][1]

    services.lifecycle_sweep.run(at("2027-04-07", hour=10))

    assert subscriber.status() is TenantStatus.DELETED
    assert services.identity.get_user(subscriber.email) is None


def test_an_operator_deletes_on_request_with_a_reason_and_a_second_run_only_finishes(
    services: Services, subscriber: Subscriber
) -> None:
    with pytest.raises(InvalidInputError, match="reason"):
        services.offboarding.delete(subscriber.tenant_id, trigger=Trigger.OPERATOR, actor="alice", reason=" ")

    deleted = services.offboarding.delete(
        subscriber.tenant_id, trigger=Trigger.OPERATOR, actor="alice", reason="the owner asked (ticket 4411)"
    )
    again = services.offboarding.delete(subscriber.tenant_id, trigger=Trigger.OPERATOR, actor="alice", reason="")

    assert (deleted.already, deleted.people_removed) == (False, (subscriber.email,))
    assert (again.already, again.people_removed) == (True, ())
    last = services.lifecycle.history(subscriber.tenant_id)[-1]
    assert (last.from_status, last.to_status, last.trigger, last.actor, last.reason) == (
        TenantStatus.ACTIVE,
        TenantStatus.DELETED,
        Trigger.OPERATOR,
        "alice",
        "the owner asked (ticket 4411)",
    )


def test_an_export_holds_everything_about_the_tenant(services: Services, subscriber: Subscriber) -> None:
    assert subscriber.itn().verdict is PaymentVerdict.ACCEPTED  # a renewal
    work(services)

    document = services.offboarding.export(subscriber.tenant_id)

    assert document["tenant"]["tenant_id"] == subscriber.tenant_id
    assert [person["email"] for person in document["people"]] == [subscriber.email]
    assert [user["username"] for user in document["identity_users"]] == [subscriber.email]
    assert [entry["kind"] for entry in document["subscription"]["history"]] == ["first_charge", "renewal"]
    assert [move["to_status"] for move in document["lifecycle_history"]] == ["active", "active"]
    assert len(document["payments"]) == 2
    assert [job["transaction_id"] for job in document["provisioning_jobs"]] == [subscriber.transaction_id]
    subjects = [message["subject"] for message in document["emails"]]
    assert any(subject.startswith("Your Site Builder receipt") for subject in subjects)
    # The welcome email is there, its temporary password not (the embedded outbox keeps it whole).
    shown = [
        found for message in document["emails"] for found in re.findall(r"Temporary password: (\S+)", message["text"])
    ]
    assert shown == ["[redacted]"]


class CrashingApplication:
    """A deliverer that dies mid-delivery (the process killed after the move's commit)."""

    def publish(self, event: LifecycleEvent) -> None:
        raise RuntimeError("killed")


class RecordingApplication:
    def __init__(self) -> None:
        self.received: list[EventType] = []

    def publish(self, event: LifecycleEvent) -> None:
        self.received.append(event.type)


def test_a_crash_between_a_move_and_its_event_still_sends_the_event_once(
    backend: Backend, services: Services, subscriber: Subscriber
) -> None:
    dataclasses.replace(services, events=RecordingApplication()).notices.deliver_due()  # tenant.activated, done

    with pytest.raises(RuntimeError, match="killed"):
        dataclasses.replace(services, events=CrashingApplication()).lifecycle_sweep.run(at("2027-01-08"))

    assert subscriber.status() is TenantStatus.PAST_DUE  # the move is committed, its event owed
    restarted = RecordingApplication()
    after_restart = dataclasses.replace(services, events=restarted)
    after_restart.notices.deliver_due()  # the owner's email goes; the event is the dead deliverer's
    assert restarted.received == []  # its lease still holds
    assert subscriber.emails(SUBJECTS[TenantStatus.PAST_DUE]) == 1
    backend.clock.advance(minutes=3)
    after_restart.notices.deliver_due()
    after_restart.notices.deliver_due()
    assert restarted.received == [EventType.PAST_DUE]


def test_an_email_sent_whose_notice_could_not_be_marked_is_not_sent_again(
    backend: Backend, services: Services, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = services.lifecycle
    marking = store.update_notice

    def busy_after_the_send(notice: Any) -> None:
        if notice.kind is NoticeKind.EMAIL and notice.status is NoticeStatus.DELIVERED:
            raise TransientError("database is locked")  # the email went; marking it failed
        marking(notice)

    monkeypatch.setattr(store, "update_notice", busy_after_the_send)
    report = services.lifecycle_sweep.run(at("2027-01-08"))  # past due: the owner's email is sent
    monkeypatch.setattr(store, "update_notice", marking)
    assert subscriber.status() is TenantStatus.PAST_DUE
    # The move was made: the sweep says so, not "left for the next run" (its notice is the dispatcher's).
    assert [(move.tenant_id, move.to_status) for move in report.applied] == [
        (subscriber.tenant_id, TenantStatus.PAST_DUE)
    ]
    assert report.skipped == []
    assert subscriber.emails(SUBJECTS[TenantStatus.PAST_DUE]) == 1

    backend.clock.advance(minutes=3)  # the lease is over: the notice is due again
    services.notices.deliver_due()

    assert subscriber.emails(SUBJECTS[TenantStatus.PAST_DUE]) == 1
    assert services.lifecycle.notices(NoticeStatus.PENDING) == []


def test_a_sweep_and_a_renewal_racing_never_lose_the_renewal(services: Services, subscriber: Subscriber) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def sweep() -> None:
        start.wait()
        services.lifecycle_sweep.run(at("2027-01-08"))

    def renew() -> None:
        start.wait()
        try:
            assert subscriber.itn().verdict is PaymentVerdict.ACCEPTED
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=sweep), threading.Thread(target=renew)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    work(services)

    assert errors == []
    assert subscriber.status() is TenantStatus.ACTIVE
    subscription = services.subscriptions.get(subscriber.tenant_id)
    assert subscription is not None
    assert subscription.paid_through.isoformat() == "2027-02-06"
    moves = subscriber.moves()
    assert moves.count((TenantStatus.ACTIVE, TenantStatus.PAST_DUE, EventType.PAST_DUE)) <= 1
    assert moves[-1][1] is TenantStatus.ACTIVE
