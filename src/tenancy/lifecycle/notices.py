"""Delivering the notices moves queued (lifecycle events, owner emails): each is claimed for a
short lease so two deliverers never send it at once, sent, and marked delivered; a failure is
retried with exponential backoff until a day has passed, then the notice is dead (the runbook's
`event_undelivered`, redelivered from the console or the CLI). An email goes out once: one a
deliverer sent and could not mark (it died, or its store failed) is found in the mail log by its
notice id and only marked. A receiver may still see an event twice: the Standard Webhooks id is
the notice id, for the receiver to drop the repeat."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import structlog

from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.lifecycle import Notice, NoticeKind, NoticeStatus
from tenancy.errors import NotFoundError, PermanentError, TenancyError
from tenancy.ports import Clock, EventPublisher, LifecycleStore, Mailer

__all__ = ["DeliveryReport", "NoticeDispatcher"]

log = structlog.get_logger(__name__)

_FIRST_RETRY = timedelta(seconds=30)
_LONGEST_RETRY = timedelta(hours=1)
_LEASE = timedelta(minutes=2)  # longer than a webhook's timeout and an SMTP send
_SENT = frozenset({"stored", "delivered"})  # the mail log's statuses of an email that went out


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(self.delivered + other.delivered, self.retrying + other.retrying, self.dead + other.dead)


class NoticeDispatcher:
    def __init__(
        self,
        store: LifecycleStore,
        mailer: Mailer,
        events: EventPublisher,
        clock: Clock,
        *,
        dead_after: timedelta = timedelta(days=1),
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._events = events
        self._clock = clock
        self._dead_after = dead_after

    def deliver_due(self, limit: int = 100) -> DeliveryReport:
        """Delivers every notice due now (the worker's loop, the Lambda schedule)."""
        now = format_timestamp(self._clock.now())
        report = DeliveryReport()
        for notice in self._store.due_notices(now, limit):
            report += self._deliver(notice)
        return report

    def deliver(self, notice_ids: Iterable[str]) -> DeliveryReport:
        """Delivers these notices now if they are due (right after the move that queued them).
        Never raises for a busy store: the notices were committed with their move, so the
        dispatcher's loop delivers them later, and the move must not be reported as failed."""
        now = format_timestamp(self._clock.now())
        report = DeliveryReport()
        for notice_id in notice_ids:
            try:
                notice = self._store.get_notice(notice_id)
                if notice is not None and notice.status is NoticeStatus.PENDING and notice.next_attempt_at <= now:
                    report += self._deliver(notice)
            except TenancyError as error:
                log.warning("notice_left_for_the_dispatcher", notice_id=notice_id, error=str(error))
        return report

    def redeliver(self, notice_id: str) -> Notice:
        """A dead (or pending) notice delivered again now, its attempts counted afresh: the
        runbook's repair of `event_undelivered`. Raises NotFoundError for an unknown id."""
        notice = self._store.get_notice(notice_id)
        if notice is None:
            raise NotFoundError(f"no notice {notice_id}")
        if notice.status is NoticeStatus.DELIVERED:
            return notice
        now = format_timestamp(self._clock.now())
        revived = dataclasses.replace(
            notice, status=NoticeStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now, last_error=None
        )
        self._store.update_notice(revived)
        self._deliver(revived)
        return self._store.get_notice(notice_id) or revived

    def _deliver(self, notice: Notice) -> DeliveryReport:
        now = self._clock.now()
        if not self._store.claim_notice(notice, format_timestamp(now + _LEASE)):
            return DeliveryReport()  # another deliverer has it
        attempts = notice.attempts + 1
        try:
            self._send(notice)
        except TenancyError as error:
            permanent = isinstance(error, PermanentError)
            expired = now - parse_timestamp(notice.created_at) >= self._dead_after
            delay = min(_FIRST_RETRY * 2 ** (attempts - 1), _LONGEST_RETRY)
            status = NoticeStatus.DEAD if permanent or expired else NoticeStatus.PENDING
            self._store.update_notice(
                dataclasses.replace(
                    notice,
                    status=status,
                    attempts=attempts,
                    next_attempt_at=format_timestamp(now + delay),
                    last_error=str(error)[:500],
                )
            )
            log.warning(
                "notice_undelivered",
                notice_id=notice.notice_id,
                kind=notice.kind.value,
                tenant_id=notice.tenant_id,
                attempts=attempts,
                dead=status is NoticeStatus.DEAD,
                error=str(error),
            )
            return DeliveryReport(dead=1) if status is NoticeStatus.DEAD else DeliveryReport(retrying=1)
        self._store.update_notice(
            dataclasses.replace(
                notice,
                status=NoticeStatus.DELIVERED,
                attempts=attempts,
                delivered_at=format_timestamp(now),
                last_error=None,
            )
        )
        log.info("notice_delivered", notice_id=notice.notice_id, kind=notice.kind.value, tenant_id=notice.tenant_id)
        return DeliveryReport(delivered=1)

    def _send(self, notice: Notice) -> None:
        if notice.kind is NoticeKind.EMAIL:
            email = notice.email()
            if self._sent_already(notice.notice_id, email.to):
                log.info("notice_sent_already", notice_id=notice.notice_id, tenant_id=notice.tenant_id)
                return
            self._mailer.send(dataclasses.replace(email, tags={**email.tags, "notice_id": notice.notice_id}))
        else:
            self._events.publish(notice.event())

    def _sent_already(self, notice_id: str, to: str) -> bool:
        """Whether this email went out already: a deliverer that died, or whose store failed,
        after sending and before marking the notice delivered. The mail log keeps each email with
        its notice id, and a person cannot drop a repeat as a webhook receiver can."""
        return any(
            message.tags.get("notice_id") == notice_id and message.status in _SENT
            for message in self._mailer.outbox(to, 50)
        )
