"""Delivering what moves owe (lifecycle events, owner emails) on the embedded backend: delivered
once, retried with growing backoff, dead after a day (or at once when the receiver refuses for
good), redelivered on request, and never sent twice by two deliverers at once."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tenancy.bootstrap import Services, build
from tenancy.domain.clock import format_timestamp
from tenancy.domain.lifecycle import (
    EventType,
    LifecycleCommit,
    LifecycleEvent,
    NoticeStatus,
    TenantChanges,
    email_notice,
    event_notice,
    new_event,
)
from tenancy.domain.model import OutgoingEmail, TenantStatus
from tenancy.errors import PermanentError, TransientError
from tenancy.lifecycle.notices import DeliveryReport

from helpers import ManualClock, make_settings, pay, work


class RecordingPublisher:
    """The Site Builder application's end of the event port: records, or fails as told."""

    def __init__(self) -> None:
        self.received: list[LifecycleEvent] = []
        self.failures: list[Exception] = []
        self._lock = threading.Lock()

    def publish(self, event: LifecycleEvent) -> None:
        with self._lock:
            if self.failures:
                raise self.failures.pop(0)
            self.received.append(event)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def services(tmp_path: Path, clock: ManualClock, publisher: RecordingPublisher) -> Iterator[Services]:
    built = build(make_settings(tmp_path / "home", payfast_mode="offline"), clock=clock)
    yield dataclasses.replace(built, events=publisher)
    built.close()


def queue_event(services: Services) -> str:
    """A tenant (its tenant.activated delivered) and one `tenant.plan_changed` event queued in a
    commit, not yet delivered; returns the event id."""
    transaction_id = pay(services, email="owner@example.com")
    work(services)
    assert services.notices.deliver_due().delivered == 1
    [record] = services.users.find_by_email("owner@example.com")
    now = format_timestamp(services.clock.now())
    event = new_event(
        EventType.PLAN_CHANGED, record.tenant_id, "professional", TenantStatus.ACTIVE, now, transaction_id
    )
    services.lifecycle.commit(
        LifecycleCommit(
            tenant_id=record.tenant_id,
            leaving=frozenset({TenantStatus.ACTIVE}),
            updated_at=now,
            changes=TenantChanges(),
            notices=(event_notice(event),),
        )
    )
    return event.event_id


def test_a_due_event_is_delivered_once_and_marked(services: Services, publisher: RecordingPublisher) -> None:
    event_id = queue_event(services)

    first = services.notices.deliver_due()
    again = services.notices.deliver_due()

    assert first.delivered == 1
    assert again.delivered == 0
    assert event_id in [event.event_id for event in publisher.received]
    stored = services.lifecycle.get_notice(event_id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.delivered_at) == (
        NoticeStatus.DELIVERED,
        1,
        format_timestamp(services.clock.now()),
    )


def test_a_busy_store_right_after_the_commit_leaves_the_notice_to_the_dispatchers_loop(
    services: Services, publisher: RecordingPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = queue_event(services)
    claiming = services.lifecycle.claim_notice

    def busy(*arguments: object) -> bool:
        raise TransientError("database is locked")

    monkeypatch.setattr(services.lifecycle, "claim_notice", busy)
    assert services.notices.deliver([event_id]) == DeliveryReport()  # no error for the move's caller
    monkeypatch.setattr(services.lifecycle, "claim_notice", claiming)
    assert event_id not in [event.event_id for event in publisher.received]

    assert services.notices.deliver_due().delivered == 1
    assert event_id in [event.event_id for event in publisher.received]


def test_a_failing_receiver_is_retried_with_growing_backoff_then_dead_after_a_day(
    services: Services, publisher: RecordingPublisher, clock: ManualClock
) -> None:
    event_id = queue_event(services)
    publisher.failures = [TransientError("webhook to app.example: answered 503")] * 100

    services.notices.deliver_due()
    first = services.lifecycle.get_notice(event_id)
    assert first is not None
    assert (first.status, first.attempts, first.last_error) == (
        NoticeStatus.PENDING,
        1,
        "webhook to app.example: answered 503",
    )
    assert first.next_attempt_at == format_timestamp(clock.now() + timedelta(seconds=30))
    clock.advance(seconds=29)
    assert services.notices.deliver_due().retrying == 0  # not due before 30 s
    clock.advance(seconds=1)
    services.notices.deliver_due()
    second = services.lifecycle.get_notice(event_id)
    assert second is not None
    assert second.attempts == 2
    clock.advance(seconds=59)
    assert services.notices.deliver_due().retrying == 0  # the next wait is twice as long
    clock.advance(hours=24)

    report = services.notices.deliver_due()

    assert report.dead == 1
    dead = services.lifecycle.get_notice(event_id)
    assert dead is not None
    assert dead.status is NoticeStatus.DEAD
    assert services.lifecycle.notice_counts() == {NoticeStatus.DELIVERED: 1, NoticeStatus.DEAD: 1}


def test_a_receiver_that_refuses_for_good_makes_the_notice_dead_at_once_and_redelivery_sends_it(
    services: Services, publisher: RecordingPublisher
) -> None:
    event_id = queue_event(services)
    publisher.failures = [PermanentError("webhook to app.example: answered 410")]

    assert services.notices.deliver_due().dead == 1
    assert event_id not in [event.event_id for event in publisher.received]

    redelivered = services.notices.redeliver(event_id)

    assert redelivered.status is NoticeStatus.DELIVERED
    assert [event.event_id for event in publisher.received][-1] == event_id


def test_an_email_notice_goes_through_the_mailer_tagged_with_its_notice(services: Services) -> None:
    transaction_id = pay(services, email="mailme@example.com")
    work(services)
    [record] = services.users.find_by_email("mailme@example.com")
    now = format_timestamp(services.clock.now())
    notice = email_notice(
        OutgoingEmail(to="mailme@example.com", subject="Your Site Builder site is suspended", text="Pay now."),
        record.tenant_id,
        transaction_id,
        now,
    )
    services.lifecycle.commit(
        LifecycleCommit(record.tenant_id, frozenset({TenantStatus.ACTIVE}), now, notices=(notice,))
    )

    services.notices.deliver([notice.notice_id])

    [sent] = [m for m in services.mailer.outbox("mailme@example.com") if m.subject.endswith("suspended")]
    assert sent.tags["notice_id"] == notice.notice_id
    stored = services.lifecycle.get_notice(notice.notice_id)
    assert stored is not None
    assert stored.status is NoticeStatus.DELIVERED


def test_two_deliverers_at_once_send_each_notice_once(services: Services, publisher: RecordingPublisher) -> None:
    for number in range(5):
        pay(services, email=f"racer{number}@example.com")
    work(services)
    start = threading.Barrier(2)

    def deliver() -> None:
        start.wait()
        services.notices.deliver_due()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    ids = [event.event_id for event in publisher.received]
    assert len(ids) == 5
    assert len(set(ids)) == 5
