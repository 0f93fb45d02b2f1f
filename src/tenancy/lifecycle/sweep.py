"""The lifecycle sweep: every move that time has made due, applied once (tenant-lifecycle.md).

A subscribed tenant's deadlines all follow from its paid-through date P: past due after P + 1 day
(a day's slack for a late ITN), suspended after the grace period, cancelled after being suspended
too long; a cancelling tenant is cancelled once P has passed. Each move is a lifecycle commit on
the state it leaves, so a sweep that races another sweep or an ITN applies it once or not at all
(the loser skips the tenant; the next sweep judges it again). Before a tenant is called past due,
its accepted ITNs are settled and PayFast is asked: a renewal Tenancy missed is never a missed
payment. Once-off tenants (no subscription) never move with time, unless an operator cancels
them. A cancelled tenant's owner is warned a week before its data is deleted, and the tenant is
deleted (lifecycle.offboarding) once the retention period is over; a deletion a crash cut short is
finished by the sweeps of the week after it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import structlog

from tenancy.domain.billing import BillingEntry, BillingKind, Subscription, SubscriptionStatus
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.lifecycle import LifecycleCommit, Notice, TenantChanges, Transition, Trigger, email_notice
from tenancy.domain.model import OutgoingEmail, Tenant, TenantStatus
from tenancy.errors import ConflictError, NotFoundError, TenancyError
from tenancy.lifecycle.due import Deadlines, DueMove, LifecyclePeriods, deadlines, due_move
from tenancy.lifecycle.emails import LifecycleMail
from tenancy.lifecycle.moves import owner_email, record_move
from tenancy.lifecycle.notices import NoticeDispatcher
from tenancy.lifecycle.offboarding import TenantOffboarding
from tenancy.ports import Clock, LifecycleStore, SubscriptionApi, SubscriptionStore, TenantStore, UserStore

__all__ = [
    "ACTOR",
    "Deadlines",
    "DueMove",
    "LifecyclePeriods",
    "LifecycleSweep",
    "SweepReport",
    "deadlines",
    "parse_as_of",
]

log = structlog.get_logger(__name__)

ACTOR = "lifecycle-sweep"
_MOVES_PER_TENANT = 4  # active -> past_due -> suspended -> cancelled, in one sweep far enough on
_WARNING = timedelta(days=7)  # how long before the deletion the owner is warned
_FINISHING = timedelta(days=7)  # how long after a deletion each sweep checks it was finished


@dataclass
class SweepReport:
    """What a sweep did (or, dry, would do): the moves applied or due, and the tenants it left
    for the next sweep with the reason."""

    as_of: str
    dry_run: bool
    applied: list[Transition] = field(default_factory=list)
    due: list[DueMove] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)  # deletions a crash interrupted, finished now


class LifecycleSweep:
    def __init__(
        self,
        *,
        tenants: TenantStore,
        subscriptions: SubscriptionStore,
        users: UserStore,
        lifecycle: LifecycleStore,
        api: SubscriptionApi,
        notices: NoticeDispatcher,
        settle: Callable[[str], object],
        mail: LifecycleMail,
        periods: LifecyclePeriods,
        offboarding: TenantOffboarding,
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._subscriptions = subscriptions
        self._users = users
        self._lifecycle = lifecycle
        self._api = api
        self._notices = notices
        self._settle = settle
        self._mail = mail
        self._periods = periods
        self._offboarding = offboarding
        self._clock = clock

    def run(self, as_of: datetime, *, dry_run: bool = False) -> SweepReport:
        report = SweepReport(format_timestamp(as_of), dry_run)
        for page in self._tenants.scan():
            if not dry_run:
                self._finish_deletions(page, as_of, report)
            moving = [tenant for tenant in page if tenant.status in _SWEPT]
            if not moving:
                continue
            try:
                subscriptions = self._subscriptions.get_many([tenant.tenant_id for tenant in moving])
            except TenancyError as error:
                for tenant in moving:
                    self._leave(tenant, error, report)
                continue
            for tenant in moving:
                try:
                    self._sweep_one(tenant, subscriptions.get(tenant.tenant_id), as_of, report, dry_run=dry_run)
                except TenancyError as error:
                    # A busy store while judging one tenant is that tenant's: the sweep goes on
                    # with the rest, and the next sweep judges this one again.
                    self._leave(tenant, error, report)
        if not dry_run and report.applied:
            log.info("lifecycle_swept", as_of=report.as_of, applied=len(report.applied), skipped=len(report.skipped))
        return report

    def run_for(self, tenant_id: str, as_of: datetime) -> SweepReport:
        """The sweep for one tenant: its due moves applied as `run` applies them (the runbook's
        repair of `lifecycle_overdue`)."""
        report = SweepReport(format_timestamp(as_of), dry_run=False)
        tenant = self._tenants.get(tenant_id)
        if tenant is not None:
            self._sweep_one(tenant, self._subscriptions.get(tenant_id), as_of, report, dry_run=False)
        return report

    def _sweep_one(
        self, tenant: Tenant, subscription: Subscription | None, as_of: datetime, report: SweepReport, *, dry_run: bool
    ) -> None:
        if subscription is not None and tenant.status in _TIMED:  # once-off: no paid-through date
            if dry_run:
                report.due += self._due_chain(tenant, subscription, as_of.date())
                return
            tenant = self._sweep_tenant(tenant, subscription, as_of, report)
        if tenant.status is TenantStatus.CANCELLED:
            self._retention(tenant, as_of, report, dry_run=dry_run)

    @staticmethod
    def _leave(tenant: Tenant, error: TenancyError, report: SweepReport) -> None:
        report.skipped.append((tenant.tenant_id, str(error)))
        log.warning("lifecycle_tenant_skipped", tenant_id=tenant.tenant_id, error=str(error))

    def _finish_deletions(self, page: list[Tenant], as_of: datetime, report: SweepReport) -> None:
        """A deletion a crash interrupted (its tombstone written, some of its people not yet
        removed) is finished by a later sweep: each sweep looks at the tenants deleted in the
        week before it, so no one is left behind for an operator to find."""
        for tenant in page:
            if tenant.status is not TenantStatus.DELETED or parse_timestamp(tenant.updated_at) < as_of - _FINISHING:
                continue
            try:
                deleted = self._offboarding.delete(
                    tenant.tenant_id, trigger=Trigger.TIME, actor=ACTOR, reason="finish the deletion"
                )
            except TenancyError as error:
                report.skipped.append((tenant.tenant_id, f"its deletion not finished: {error}"))
                continue
            if deleted.people_removed:
                report.finished.append(tenant.tenant_id)
                log.warning("deletion_finished", tenant_id=tenant.tenant_id, people=len(deleted.people_removed))

    def due(self, tenant: Tenant, subscription: Subscription, today: date) -> DueMove | None:
        """The move time has made due for this tenant today, if any."""
        return due_move(tenant, subscription, today, self._periods)

    def _due_chain(self, tenant: Tenant, subscription: Subscription, today: date) -> list[DueMove]:
        """Every move due in turn (a dry run's answer: what the sweep would apply)."""
        found: list[DueMove] = []
        for _ in range(_MOVES_PER_TENANT):
            due = self.due(tenant, subscription, today)
            if due is None:
                break
            found.append(due)
            tenant = dataclasses.replace(tenant, status=due.to)
        return found

    def _sweep_tenant(self, tenant: Tenant, subscription: Subscription, as_of: datetime, report: SweepReport) -> Tenant:
        """Applies the tenant's due moves in turn; returns the tenant as the last one left it."""
        for _ in range(_MOVES_PER_TENANT):
            due = self.due(tenant, subscription, as_of.date())
            if due is None:
                return tenant
            try:
                applied = self._apply(tenant, subscription, due, as_of)
            except ConflictError:
                # An ITN or another sweep moved it since it was read: the next sweep judges it anew.
                report.skipped.append((tenant.tenant_id, "changed while swept"))
                return tenant
            except TenancyError as error:
                report.skipped.append((tenant.tenant_id, str(error)))
                log.warning("lifecycle_move_skipped", tenant_id=tenant.tenant_id, to=due.to.value, error=str(error))
                return tenant
            if applied is None:
                report.skipped.append((tenant.tenant_id, "a renewal was found instead"))
                return tenant
            report.applied.append(applied)
            fresh_tenant = self._tenants.get(tenant.tenant_id)
            fresh_subscription = self._subscriptions.get(tenant.tenant_id)
            if fresh_tenant is None or fresh_subscription is None:
                return tenant
            tenant, subscription = fresh_tenant, fresh_subscription
        return tenant

    def _retention(self, tenant: Tenant, as_of: datetime, report: SweepReport, *, dry_run: bool) -> None:
        """A cancelled tenant: warned a week before its data is deleted, deleted once the
        retention period is over."""
        delete_on = self._offboarding.deletion_due(tenant, as_of.date(), self._periods.retention_days)
        if delete_on is None:
            return
        today = as_of.date()
        if today >= delete_on:
            reason = f"kept {self._periods.retention_days} days after cancellation (until {delete_on.isoformat()})"
            if dry_run:
                report.due.append(DueMove(tenant.tenant_id, tenant.plan, tenant.status, TenantStatus.DELETED, reason))
                return
            try:
                self._offboarding.delete(
                    tenant.tenant_id, trigger=Trigger.TIME, actor=ACTOR, reason=reason, as_of=as_of
                )
            except ConflictError:
                report.skipped.append((tenant.tenant_id, "changed while swept"))
                return
            except TenancyError as error:
                report.skipped.append((tenant.tenant_id, str(error)))
                return
            report.applied += self._lifecycle.history(tenant.tenant_id)[-1:]
        elif today >= delete_on - _WARNING and not dry_run:
            self._warn(tenant, delete_on)

    def _warn(self, tenant: Tenant, delete_on: date) -> None:
        owner = owner_email(self._users, tenant)
        if owner is None:
            return
        now = format_timestamp(self._clock.now())
        notice = email_notice(self._mail.deletion_warning(owner, delete_on=delete_on), tenant.tenant_id, "warning", now)
        if self._lifecycle.get_notice(notice.notice_id) is not None:
            return  # warned already
        try:
            self._lifecycle.commit(
                LifecycleCommit(
                    tenant.tenant_id, frozenset({TenantStatus.CANCELLED}), tenant.updated_at, notices=(notice,)
                )
            )
        except ConflictError:
            return  # bought again meanwhile: no warning owed
        self._notices.deliver([notice.notice_id])

    def _apply(self, tenant: Tenant, subscription: Subscription, due: DueMove, as_of: datetime) -> Transition | None:
        if due.to is TenantStatus.PAST_DUE:
            confirmed = self._overdue_confirmed(tenant, subscription)
            if confirmed is None:
                return None
            subscription = confirmed
        # The move is dated at the time judged (a rehearsal's history says when it would happen);
        # what it owes the outside world is due now.
        at, now = format_timestamp(as_of), format_timestamp(self._clock.now())
        marks = deadlines(subscription, self._periods)
        after = subscription
        if due.to is TenantStatus.CANCELLED:
            if due.leaving is TenantStatus.SUSPENDED:
                self._cancel_at_payfast(subscription)
            after = _ended(subscription, at, due.reason)
        recorded = record_move(
            tenant_id=tenant.tenant_id,
            plan=tenant.plan,
            leaving=due.leaving,
            to=due.to,
            trigger=Trigger.TIME,
            actor=ACTOR,
            at=at,
            reason=due.reason,
            key=f"{due.to.value}:{marks.paid_through.isoformat()}",
            data={"paid_through": marks.paid_through.isoformat(), "grace_until": marks.grace_until.isoformat()},
            queued_at=now,
        )
        notices: list[Notice] = [recorded.notice]
        owner = owner_email(self._users, tenant)
        if owner is not None:
            email = self._email(due.to, owner, marks, as_of)
            notices.append(email_notice(email, tenant.tenant_id, f"{due.to.value}:{marks.paid_through}", now))
        self._lifecycle.commit(
            LifecycleCommit(
                tenant_id=tenant.tenant_id,
                leaving=frozenset({due.leaving}),
                updated_at=at,
                changes=TenantChanges(status=due.to),
                # Written even unchanged: the move is judged on this version of the subscription,
                # so a renewal settled meanwhile (the tenant's status untouched by it) refuses it.
                subscription=after,
                transitions=(recorded.transition,),
                notices=tuple(notices),
            )
        )
        self._notices.deliver(notice.notice_id for notice in notices)
        log.info(
            "tenant_moved",
            tenant_id=tenant.tenant_id,
            from_status=due.leaving.value,
            to_status=due.to.value,
            trigger=Trigger.TIME.value,
            reason=due.reason,
        )
        return recorded.transition

    def _overdue_confirmed(self, tenant: Tenant, subscription: Subscription) -> Subscription | None:
        """The subscription, read again, if the renewal truly did not come (None if it did):
        settles the checkout's accepted ITNs first (one kept but not applied), then asks PayFast.
        A charge PayFast made on the paid-through date, whose ITN never reached Tenancy, is not a
        missed payment: the runbook's subscription checks take it from there."""
        self._settle(subscription.transaction_id)
        fresh = self._subscriptions.get(tenant.tenant_id)
        if fresh is None or fresh.paid_through != subscription.paid_through:
            return None  # a renewal was applied by the settle
        payfast = self._api.fetch(subscription.token)  # TransientError: the next sweep asks again
        # PayFast moves `run_date` on with each charge; one still at (or before) the paid-through
        # date means the charge did not go through (payfast-subscriptions.md, failed renewal).
        if _day(payfast.run_date) > subscription.paid_through:
            log.warning(
                "renewal_itn_missing",
                tenant_id=tenant.tenant_id,
                token=subscription.token,
                payfast_run_date=payfast.run_date,
                paid_through=subscription.paid_through.isoformat(),
            )
            return None
        return fresh

    def _cancel_at_payfast(self, subscription: Subscription) -> None:
        try:
            self._api.cancel(subscription.token)
        except NotFoundError:
            log.info("payfast_subscription_gone", token=subscription.token)  # nothing left to cancel

    def _email(self, to: TenantStatus, owner: str, marks: Deadlines, as_of: datetime) -> OutgoingEmail:
        if to is TenantStatus.PAST_DUE:
            return self._mail.past_due(owner, paid_through=marks.paid_through, grace_until=marks.grace_until)
        if to is TenantStatus.SUSPENDED:
            return self._mail.suspended(owner, cancel_on=marks.cancel_after)
        return self._mail.cancelled(owner, delete_on=as_of.date() + timedelta(days=self._periods.retention_days))


_TIMED = frozenset({TenantStatus.ACTIVE, TenantStatus.PAST_DUE, TenantStatus.SUSPENDED, TenantStatus.CANCELLING})
_SWEPT = _TIMED | {TenantStatus.CANCELLED}


def _ended(subscription: Subscription, at: str, reason: str) -> Subscription:
    """The subscription as it is once the tenant is cancelled: over, with the why in its history."""
    if subscription.status is SubscriptionStatus.CANCELLED:
        return subscription
    return subscription.evolve(
        at,
        status=SubscriptionStatus.CANCELLED,
        pending_plan=None,
        history=(*subscription.history, BillingEntry(BillingKind.CANCELLATION, at, note=f"ended: {reason}")),
    )


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return date.min  # PayFast gave no date: nothing shows a newer charge


def parse_as_of(text: str) -> datetime:
    """An operator's `--as-of` (any ISO-8601 time; a bare date is its midnight UTC)."""
    return parse_timestamp(text if "T" in text else f"{text}T00:00:00Z")
