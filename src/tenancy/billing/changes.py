"""Plan changes and cancellation of a tenant's PayFast subscription, as an operator asks for them
(tenant-lifecycle.md's upgrade, downgrade and cancel rows), each kept in the repair trail.

An upgrade raises the tenant's limits at once and PayFast charges the new amount from the next
charge; a downgrade only sets `pending_plan` (settle applies it at the next renewal, so limits
never drop inside a period already paid for) and PayFast's amount; a cancel ends the subscription
at PayFast and leaves the tenant `cancelling`, with access until the paid-through date.

PayFast is asked first: when it fails, nothing here has changed and the error propagates. Then
the tenant's changed fields, the subscription, the move and what it owes (its event, the owner's
email) are written in one lifecycle commit, on the condition that neither changed since they were
read (a settle that wrote in between makes the change read both again and re-apply)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

import structlog

from tenancy.billing.emails import cancellation_email
from tenancy.domain.billing import BillingEntry, BillingKind, Subscription, SubscriptionStatus, cents
from tenancy.domain.clock import format_timestamp
from tenancy.domain.lifecycle import EventType, LifecycleCommit, Notice, Transition, Trigger, email_notice
from tenancy.domain.model import RepairRecord, Tenant, TenantStatus, Usage
from tenancy.domain.plans import Limits, Plan, PlanCatalogue
from tenancy.domain.plurals import plural
from tenancy.domain.usage import current_usage, period_for
from tenancy.errors import ConflictError, InvalidInputError, TransientError, UnknownPlanError
from tenancy.lifecycle.moves import owner_email, record_move, tenant_changes
from tenancy.lifecycle.notices import NoticeDispatcher
from tenancy.ports import (
    Clock,
    LifecycleStore,
    PurchaseObserver,
    RepairTrail,
    SubscriptionApi,
    SubscriptionStore,
    TeamStore,
    TenantStore,
    UserStore,
)

__all__ = [
    "CANCEL_FINDING",
    "PLAN_CHANGE_FINDING",
    "ChangeKind",
    "SubscriptionChange",
    "SubscriptionChanges",
    "exceeded_limits",
]

log = structlog.get_logger(__name__)

# The repair trail's `finding` of each kind of change (the trail is the operators' audit log).
PLAN_CHANGE_FINDING = "subscription_plan_change"
CANCEL_FINDING = "subscription_cancel"

# Writes retried when a settle (an ITN) wrote the subscription between our read and our write.
_ATTEMPTS = 5


class ChangeKind(StrEnum):
    UPGRADE = "upgrade"  # takes effect now
    DOWNGRADE = "downgrade"  # takes effect at the next renewal
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """What a change did, or (`dry_run`) would do: its actions in words, the tenant and the
    subscription before and after (after as written, or as they would be written)."""

    kind: ChangeKind
    tenant_id: str
    actions: tuple[str, ...]
    before: Subscription
    after: Subscription
    tenant_before: Tenant
    tenant_after: Tenant
    dry_run: bool
    outcome: str  # dry_run | upgraded | downgrade_scheduled | cancelled | cancelled_already
    emailed: str | None = None  # the owner told of a cancellation


def exceeded_limits(tenant: Tenant, limits: Limits, usage: Usage | None = None) -> list[str]:
    """Each limit the tenant's usage (`usage`: in the current period, as domain.usage reckons it;
    else as stored) is over, with both numbers ("5 sites, the plan allows 1")."""
    usage = usage or tenant.usage
    checks = (
        (plural(usage.sites_count, "site"), usage.sites_count, limits.max_sites),
        (f"{usage.storage_used_mb} MB of storage", usage.storage_used_mb, limits.max_storage_mb),
        (
            f"{plural(usage.generations_this_month, 'generation')} this month",
            usage.generations_this_month,
            limits.max_generations_per_month,
        ),
    )
    return [f"{what}, the plan allows {allowed}" for what, used, allowed in checks if used > allowed]


def _limits_words(limits: Limits) -> str:
    domain = "custom domain" if limits.custom_domain_allowed else "no custom domain"
    return (
        f"{plural(limits.max_sites, 'site')}, {plural(limits.max_generations_per_month, 'generation')} a month, "
        f"{limits.max_storage_mb} MB, {domain}"
    )


def _rands(amount: Decimal) -> str:
    return f"R{amount:.2f}"


class SubscriptionChanges:
    """Upgrades, downgrades and cancels tenants' subscriptions at PayFast (`api`) and here
    (`tenants`, `subscriptions`), keeping each change in `trail` and telling `observer` of it.
    The owner (found through `users`) is emailed the last day of a cancelled subscription."""

    def __init__(
        self,
        *,
        subscriptions: SubscriptionStore,
        tenants: TenantStore,
        users: UserStore,
        api: SubscriptionApi,
        plans: PlanCatalogue,
        trail: RepairTrail,
        clock: Clock,
        lifecycle: LifecycleStore,
        notices: NoticeDispatcher,
        sender: str,
        support_email: str,
        account_url: str,
        observer: PurchaseObserver | None = None,
        team: TeamStore | None = None,
    ) -> None:
        self._team = team
        self._subscriptions = subscriptions
        self._tenants = tenants
        self._users = users
        self._api = api
        self._plans = plans
        self._trail = trail
        self._clock = clock
        self._lifecycle = lifecycle
        self._notices = notices
        self._sender = sender
        self._support_email = support_email
        self._account_url = account_url
        self._observer = observer

    # --- Plan changes ---

    def plan_change(
        self, tenant_id: str, plan: str, *, actor: str, trigger: Trigger = Trigger.OPERATOR, dry_run: bool = False
    ) -> SubscriptionChange:
        """Moves the tenant's subscription to `plan`: an upgrade (a higher recurring price, or back
        to the plan in effect when a downgrade is pending) now, a downgrade at the next renewal.
        Raises InvalidInputError, changing nothing, for a change that cannot be made."""
        tenant, subscription = self._changeable(tenant_id, "change its plan")
        if tenant.status is not TenantStatus.ACTIVE:
            raise InvalidInputError(f"tenant {tenant_id} is {tenant.status.value}: only an active tenant changes plan")
        target = self._target(subscription, plan)
        upgrade = target.name == subscription.plan or target.recurring_price_zar > self._current_price(subscription)
        usage = current_usage(tenant.usage, period_for(subscription, self._clock.now()))
        if not upgrade and (exceeded := exceeded_limits(tenant, target.limits, usage)):
            raise InvalidInputError(
                f"cannot downgrade {tenant_id} to {target.name}: its usage exceeds the plan's limits "
                f"({'; '.join(exceeded)})"
            )
        if not upgrade and self._team is not None:
            held = self._team.seats_used(tenant_id)
            if held > target.max_users:
                extra = held - target.max_users
                raise InvalidInputError(
                    f"cannot downgrade {tenant_id} to {target.name}: {held} seats are held (members and pending "
                    f"invitations) and the plan has {target.max_users}; remove {extra} first"
                )
        kind = ChangeKind.UPGRADE if upgrade else ChangeKind.DOWNGRADE
        change = self._upgraded if upgrade else self._downgraded
        actions = self._plan_actions(tenant, subscription, target, kind)
        if dry_run:
            preview = change(tenant, subscription, target, format_timestamp(self._clock.now()))
            return SubscriptionChange(
                kind, tenant_id, actions, subscription, preview[1], tenant, preview[0], True, "dry_run"
            )
        # PayFast first: when it refuses or cannot be reached, nothing here has changed.
        self._api.update(subscription.token, amount_cents=cents(target.recurring_price_zar))
        tenant_after, after, _ = self._write(
            tenant_id, lambda t, s, now: change(t, s, target, now), _Mover(trigger, actor, self._plan_moved)
        )
        outcome = "upgraded" if upgrade else "downgrade_scheduled"
        result = SubscriptionChange(kind, tenant_id, actions, subscription, after, tenant, tenant_after, False, outcome)
        self._record(result, PLAN_CHANGE_FINDING, actor)
        log.info(
            "subscription_plan_changed",
            tenant_id=tenant_id,
            kind=kind.value,
            plan=target.name,
            recurring_amount=str(target.recurring_price_zar),
            operator=actor,
        )
        return result

    def _target(self, subscription: Subscription, name: str) -> Plan:
        target = self._plans.get(name.strip())  # UnknownPlanError, an InvalidInputError, names the known plans
        if not target.is_subscription:
            raise InvalidInputError(f"plan {target.name} is sold once, not as a subscription")
        if target.name == subscription.plan and subscription.pending_plan is None:
            raise InvalidInputError(f"tenant {subscription.tenant_id} is on the {target.name} plan already")
        if target.name == subscription.pending_plan:
            raise InvalidInputError(
                f"tenant {subscription.tenant_id} moves to {target.name} at the next renewal already "
                f"({subscription.paid_through.isoformat()})"
            )
        if target.billing is not subscription.frequency:
            # A subscription's paid-through date counts its periods from one anchor: a new period
            # length needs a new subscription (a checkout), not an update of this one.
            raise InvalidInputError(
                f"plan {target.name} is billed {target.billing_name}, the subscription "
                f"{subscription.frequency.name.lower()}: changing the billing period needs a new checkout"
            )
        return target

    def _current_price(self, subscription: Subscription) -> Decimal:
        """The recurring price of the plan in effect now (with a downgrade pending, the amount
        PayFast charges is already the lower plan's)."""
        if subscription.pending_plan is None:
            return subscription.recurring_amount
        try:
            return self._plans.get(subscription.plan).recurring_price_zar
        except UnknownPlanError:
            return subscription.recurring_amount

    @staticmethod
    def _upgraded(tenant: Tenant, subscription: Subscription, target: Plan, now: str) -> tuple[Tenant, Subscription]:
        note = f"{subscription.plan} to {target.name} now; {_rands(target.recurring_price_zar)} from the next charge"
        if subscription.pending_plan is not None:
            note += f" (the downgrade to {subscription.pending_plan} is dropped)"
        changed = subscription.evolve(
            now,
            plan=target.name,
            pending_plan=None,
            recurring_amount=target.recurring_price_zar,
            history=(*subscription.history, BillingEntry(BillingKind.PLAN_CHANGE, now, plan=target.name, note=note)),
        )
        raised = dataclasses.replace(tenant, plan=target.name, limits=target.limits, updated_at=now)
        return raised, changed

    @staticmethod
    def _downgraded(tenant: Tenant, subscription: Subscription, target: Plan, now: str) -> tuple[Tenant, Subscription]:
        note = (
            f"{subscription.plan} to {target.name} from the next renewal "
            f"({subscription.paid_through.isoformat()}); {_rands(target.recurring_price_zar)} from the next charge"
        )
        changed = subscription.evolve(
            now,
            pending_plan=target.name,
            recurring_amount=target.recurring_price_zar,
            history=(*subscription.history, BillingEntry(BillingKind.PLAN_CHANGE, now, plan=target.name, note=note)),
        )
        return tenant, changed

    @staticmethod
    def _plan_actions(tenant: Tenant, subscription: Subscription, target: Plan, kind: ChangeKind) -> tuple[str, ...]:
        next_charge = subscription.paid_through.isoformat()
        payfast = (
            f"PayFast: charge {_rands(target.recurring_price_zar)} per {subscription.frequency.period_word} "
            f"from the next charge ({next_charge})"
        )
        if kind is ChangeKind.DOWNGRADE:
            return (
                payfast,
                f"subscription: {target.name} from the next renewal ({next_charge}); "
                f"recurring amount {_rands(target.recurring_price_zar)}",
                f"tenant {tenant.tenant_id}: keeps the {subscription.plan} limits until then, "
                f"then {_limits_words(target.limits)}",
            )
        dropped = f" (the downgrade to {subscription.pending_plan} is dropped)" if subscription.pending_plan else ""
        return (
            payfast,
            f"subscription: plan {target.name}, recurring amount {_rands(target.recurring_price_zar)}{dropped}",
            f"tenant {tenant.tenant_id}: plan {tenant.plan} -> {target.name} now, limits "
            f"{_limits_words(target.limits)}",
        )

    # --- Cancellation ---

    def cancel(
        self, tenant_id: str, *, actor: str, trigger: Trigger = Trigger.OPERATOR, dry_run: bool = False
    ) -> SubscriptionChange:
        """Cancels the subscription at PayFast (cancelled there already counts as success); the
        tenant keeps access until the paid-through date (`cancelling`) and the owner is told so."""
        tenant, subscription = self._changeable(tenant_id, "cancel it")
        owner = owner_email(self._users, tenant)
        last_day = subscription.paid_through.isoformat()
        actions = (
            "PayFast: cancel the subscription (no further charges)",
            f"subscription: cancelling; paid through {last_day}",
            f"tenant {tenant_id}: cancelling, full access until {last_day}"
            if tenant.status.has_access
            else f"tenant {tenant_id}: stays {tenant.status.value}",
            f"email {owner}: the subscription is cancelled, access until {last_day}"
            if owner
            else "email nobody: the tenant's owner has no users record",
        )
        cancel = ChangeKind.CANCEL
        if dry_run:
            preview = _cancelled(tenant, subscription, format_timestamp(self._clock.now()))
            return SubscriptionChange(
                cancel, tenant_id, actions, subscription, preview[1], tenant, preview[0], True, "dry_run"
            )
        self._api.cancel(subscription.token)
        mover = _Mover(trigger, actor, functools.partial(self._cancel_moved, owner))
        tenant_after, after, wrote = self._write(tenant_id, _cancelled_if_active, mover)
        # When PayFast's CANCELLED ITN was settled in between, it told the owner already.
        emailed = owner if wrote else None
        outcome = "cancelled" if wrote else "cancelled_already"
        result = SubscriptionChange(
            cancel, tenant_id, actions, subscription, after, tenant, tenant_after, False, outcome, emailed
        )
        self._record(result, CANCEL_FINDING, actor)
        log.info("subscription_cancelled", tenant_id=tenant_id, paid_through=last_day, operator=actor)
        return result

    def _plan_moved(self, mover: _Mover, read: Tenant, after: Tenant, subscription: Subscription, now: str) -> _Moved:
        if after.plan == read.plan:
            return [], []  # a downgrade: the plan moves at the next renewal, with its event
        recorded = record_move(
            tenant_id=read.tenant_id,
            plan=after.plan,
            leaving=read.status,
            to=after.status,
            trigger=mover.trigger,
            actor=mover.actor,
            at=now,
            reason=f"plan {read.plan} to {after.plan}",
            key=f"plan:{subscription.version}:{after.plan}",
            event=EventType.PLAN_CHANGED,
            data={"previous_plan": read.plan},
        )
        return [recorded.transition], [recorded.notice]

    def _cancel_moved(
        self, owner: str | None, mover: _Mover, read: Tenant, after: Tenant, subscription: Subscription, now: str
    ) -> _Moved:
        transitions: list[Transition] = []
        notices: list[Notice] = []
        key = f"cancel:{subscription.token}"
        if after.status is not read.status:
            recorded = record_move(
                tenant_id=read.tenant_id,
                plan=read.plan,
                leaving=read.status,
                to=after.status,
                trigger=mover.trigger,
                actor=mover.actor,
                at=now,
                reason=f"cancelled by {mover.actor}: access until {subscription.paid_through.isoformat()}",
                key=key,
            )
            transitions.append(recorded.transition)
            notices.append(recorded.notice)
        if owner is not None:
            email = cancellation_email(
                to=owner,
                last_day=subscription.paid_through,
                account_url=self._account_url,
                sender=self._sender,
                support_email=self._support_email,
                tags={"transaction_id": subscription.transaction_id, "tenant_id": subscription.tenant_id},
            )
            notices.append(email_notice(email, read.tenant_id, key, now))
        return transitions, notices

    # --- Shared ---

    def _changeable(self, tenant_id: str, doing: str) -> tuple[Tenant, Subscription]:
        """The tenant and its subscription, if the subscription is active; else InvalidInputError."""
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise InvalidInputError(f"no tenant {tenant_id}")
        subscription = self._subscriptions.get(tenant_id)
        if subscription is None:
            raise InvalidInputError(f"tenant {tenant_id} has no subscription (a once-off purchase?)")
        if subscription.status is not SubscriptionStatus.ACTIVE:
            raise InvalidInputError(
                f"the subscription of {tenant_id} is {subscription.status.value}, not active: cannot {doing}"
            )
        return tenant, subscription

    def _write(
        self,
        tenant_id: str,
        change: Callable[[Tenant, Subscription, str], tuple[Tenant, Subscription]],
        mover: _Mover,
    ) -> tuple[Tenant, Subscription, bool]:
        """Reads the tenant and the subscription, applies `change`, and writes the tenant's changed
        fields, the subscription, the move and its notices in one commit over what was read;
        again from the read when a settle wrote first. Returns what was written and whether the
        subscription needed writing at all."""
        for _ in range(_ATTEMPTS):
            tenant, subscription = self._tenants.get(tenant_id), self._subscriptions.get(tenant_id)
            if tenant is None or subscription is None:
                raise InvalidInputError(f"tenant {tenant_id} or its subscription vanished during the change")
            now = format_timestamp(self._clock.now())
            tenant_after, after = change(tenant, subscription, now)
            if after == subscription:
                return tenant, subscription, False
            transitions, notices = mover.moved(mover, tenant, tenant_after, after, now)
            try:
                saved = self._lifecycle.commit(
                    LifecycleCommit(
                        tenant_id=tenant_id,
                        leaving=frozenset({tenant.status}),
                        updated_at=now,
                        changes=tenant_changes(tenant, tenant_after),
                        subscription=after,
                        transitions=tuple(transitions),
                        notices=tuple(notices),
                    )
                )
            except ConflictError:
                continue  # a settle wrote in between: read both again and re-apply
            assert saved is not None
            self._notices.deliver(notice.notice_id for notice in notices)
            if self._observer is not None:
                self._observer.changed(saved.transaction_id)
            return tenant_after, saved, True
        raise TransientError(f"the subscription of {tenant_id} kept changing; PayFast has the change, try again")

    def _record(self, change: SubscriptionChange, finding: str, actor: str) -> None:
        self._trail.record(
            RepairRecord(
                at=format_timestamp(self._clock.now()),
                operator=actor,
                transaction_id=change.after.transaction_id,
                tenant_id=change.tenant_id,
                email=change.emailed,
                finding=finding,
                actions=change.actions,
                before=_state(change.tenant_before, change.before),
                after=_state(change.tenant_after, change.after),
                outcome=change.outcome,
            )
        )


_Moved = tuple[list[Transition], list[Notice]]


@dataclass(frozen=True, slots=True)
class _Mover:
    """Who is making a change, and how its move is recorded once the change is made."""

    trigger: Trigger
    actor: str
    moved: Callable[[_Mover, Tenant, Tenant, Subscription, str], _Moved]


def _cancelled(tenant: Tenant, subscription: Subscription, now: str) -> tuple[Tenant, Subscription]:
    changed = subscription.evolve(
        now,
        status=SubscriptionStatus.CANCELLING,
        pending_plan=None,
        history=(
            *subscription.history,
            BillingEntry(BillingKind.CANCELLATION, now, note="cancelled by Tenancy through PayFast's API"),
        ),
    )
    # As settle does for a CANCELLED ITN: a tenant without access (suspended) stays as it is.
    if tenant.status in {TenantStatus.ACTIVE, TenantStatus.PAST_DUE}:
        tenant = dataclasses.replace(tenant, status=TenantStatus.CANCELLING, updated_at=now)
    return tenant, changed


def _cancelled_if_active(tenant: Tenant, subscription: Subscription, now: str) -> tuple[Tenant, Subscription]:
    """A CANCELLED ITN settled since the read did the cancellation already: nothing left to do."""
    if subscription.status is not SubscriptionStatus.ACTIVE:
        return tenant, subscription
    return _cancelled(tenant, subscription, now)


def _state(tenant: Tenant, subscription: Subscription) -> dict[str, object]:
    """The trail's picture of a tenant's billing: JSON values only (both backends keep JSON)."""
    return {
        "tenant_status": tenant.status.value,
        "tenant_plan": tenant.plan,
        "limits": dataclasses.asdict(tenant.limits),
        "subscription_status": subscription.status.value,
        "plan": subscription.plan,
        "pending_plan": subscription.pending_plan,
        "recurring_amount": f"{subscription.recurring_amount:.2f}",
        "paid_through": subscription.paid_through.isoformat(),
    }
