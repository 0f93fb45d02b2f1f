"""Settling a checkout's subscription: every accepted ITN of the checkout that carries PayFast's
token (its first charge, each renewal, a cancellation) is applied to the tenant once, in the order
the ledger received them, and never twice.

The ledger is the record of what PayFast said; the subscription's billing history is the record
of what has been applied (a charge by its pf_payment_id, a cancellation likewise). Settling is
therefore idempotent and can run any number of times, from anywhere: after an ITN is kept, after
the provisioning job succeeds (a renewal that came while the first charge was still provisioning
waits for it), and from the runbook's repair. Each run reads the subscription, applies what is
missing and writes it over the version it read; a concurrent run that wrote first makes this one
read again and re-apply (ConflictError), so two runs cannot both apply the same renewal.

An old ITN never undoes newer state: ITNs of a subscription the tenant has since replaced (a
CANCELLED replayed after the tenant bought again) are stale and change nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

import structlog

from tenancy.billing.emails import cancellation_email, receipt_email
from tenancy.domain.billing import BillingEntry, BillingKind, Frequency, Subscription, SubscriptionStatus
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.lifecycle import (
    EventType,
    LifecycleCommit,
    Notice,
    NoticeKind,
    Transition,
    Trigger,
    email_notice,
)
from tenancy.domain.model import JobStatus, OutgoingEmail, PaymentRecord, PaymentVerdict, Tenant, TenantStatus
from tenancy.domain.plans import PlanCatalogue
from tenancy.errors import ConflictError, NotFoundError, TenancyError, TransientError
from tenancy.lifecycle.moves import record_move, tenant_changes
from tenancy.lifecycle.notices import NoticeDispatcher
from tenancy.payments import payfast
from tenancy.ports import (
    Clock,
    LifecycleStore,
    PaymentLedger,
    ProvisioningJournal,
    SubscriptionApi,
    SubscriptionStore,
    TenantStore,
)

__all__ = ["Settled", "SubscriptionBilling", "reactivated_tenant_of", "subscription_itns", "token_of"]

log = structlog.get_logger(__name__)

_ATTEMPTS = 5
# The checkout field that names the tenant a checkout is for (a plan change or buying again).
TENANT_FIELD = "custom_str2"


def token_of(payment: PaymentRecord) -> str | None:
    """PayFast's subscription token the ITN carries, or None (a once-off payment). Kept beside the
    raw fields, so an entry read without them (the audit's) still says it."""
    return payment.token or (payfast.field_value(payment.fields, "token") or "").strip() or None


def subscription_itns(payments: Iterable[PaymentRecord]) -> list[PaymentRecord]:
    """Of a checkout's ledger entries, the ITNs a subscription applies, in the order received:
    accepted, COMPLETE (a charge) or CANCELLED, with PayFast's token."""
    return [
        payment
        for payment in payments
        if payment.verdict is PaymentVerdict.ACCEPTED
        and payment.payment_status in {"COMPLETE", "CANCELLED"}
        and token_of(payment)
    ]


def reactivated_tenant_of(payment: PaymentRecord) -> str | None:
    """The existing tenant a checkout was for (custom_str2, signed), or None for a new tenant."""
    return (payfast.field_value(payment.fields, TENANT_FIELD) or "").strip() or None


class Settled(StrEnum):
    """What a settle found to do."""

    NOTHING = "nothing"  # no subscription ITN for this checkout: a once-off purchase
    DEFERRED = "deferred"  # the tenant is still provisioning: settled when its job succeeds
    STALE = "stale"  # the checkout's subscription was replaced since: its ITNs change nothing
    UP_TO_DATE = "up_to_date"  # every subscription ITN of the checkout was applied already
    APPLIED = "applied"


@dataclass
class _Work:
    """One settle's changes, made on copies and written at the end in one lifecycle commit: the
    tenant's changed fields, the subscription, the moves' history lines and the notices (events,
    and the owner's receipts and cancellation notice, so an email is owed exactly when the charge
    it tells of is applied)."""

    subscription: Subscription | None
    tenant: Tenant
    now: str
    reset_generations: bool = False
    replaced_token: str | None = None  # a running subscription this settle replaced: cancelled at PayFast
    transitions: list[Transition] = dataclasses.field(default_factory=list)
    notices: list[Notice] = dataclasses.field(default_factory=list)
    applied: int = 0

    def move(self, to: TenantStatus, *, key: str, reason: str, event: EventType | None = None) -> None:
        """Records the tenant's move to `to` (PayFast's doing) and the event it sends."""
        recorded = record_move(
            tenant_id=self.tenant.tenant_id,
            plan=self.tenant.plan,
            leaving=self.tenant.status,
            to=to,
            trigger=Trigger.ITN,
            actor="payfast",
            at=self.now,
            reason=reason,
            key=key,
            event=event,
        )
        self.transitions.append(recorded.transition)
        self.notices.append(recorded.notice)
        self.tenant = dataclasses.replace(self.tenant, status=to, updated_at=self.now)

    def email(self, email: OutgoingEmail, key: str) -> None:
        self.notices.append(email_notice(email, self.tenant.tenant_id, key, self.now))


class SubscriptionBilling:
    def __init__(
        self,
        *,
        subscriptions: SubscriptionStore,
        tenants: TenantStore,
        ledger: PaymentLedger,
        journal: ProvisioningJournal,
        plans: PlanCatalogue,
        lifecycle: LifecycleStore,
        notices: NoticeDispatcher,
        api: SubscriptionApi,
        clock: Clock,
        account_url: str,
        sender: str,
        support_email: str,
    ) -> None:
        self._subscriptions = subscriptions
        self._tenants = tenants
        self._ledger = ledger
        self._journal = journal
        self._plans = plans
        self._lifecycle = lifecycle
        self._notices = notices
        self._api = api
        self._clock = clock
        self._account_url = account_url
        self._sender = sender
        self._support_email = support_email

    def settle(self, transaction_id: str) -> Settled:
        """Applies whatever the checkout's subscription ITNs say and was not applied yet."""
        for _ in range(_ATTEMPTS):
            try:
                return self._settle_once(transaction_id)
            except ConflictError:
                continue  # another run wrote first: read again, apply what is left
        raise TransientError(f"the subscription of {transaction_id} kept changing while settled")

    def _settle_once(self, transaction_id: str) -> Settled:
        itns = subscription_itns(self._ledger.find(transaction_id=transaction_id))
        first = next((payment for payment in itns if payment.payment_status == "COMPLETE"), None)
        if first is None:
            return Settled.NOTHING
        returning_to = reactivated_tenant_of(first)
        tenant_id = returning_to or tenant_id_for(transaction_id)
        tenant = self._tenants.get(tenant_id)
        if tenant is None or tenant.status is TenantStatus.PROVISIONING:
            return Settled.DEFERRED
        if returning_to is not None and not self._returning_checked(transaction_id):
            return Settled.DEFERRED  # the saga checks first that the buyer belongs to that tenant
        subscription = self._subscriptions.get(tenant_id)
        token = token_of(first)
        work = _Work(subscription, tenant, format_timestamp(self._clock.now()))
        if subscription is not None and subscription.token != token:
            if not self._replaces(subscription, first, tenant):
                log.info("subscription_itns_stale", transaction_id=transaction_id, tenant_id=tenant_id)
                return Settled.STALE
            # The tenant subscribed again (after cancelling, or to change plan): the new
            # subscription takes the old one's place, its history carried over.
            work.subscription = self._new_subscription(first, tenant_id, carried=subscription)
            if subscription.status is SubscriptionStatus.ACTIVE:
                work.replaced_token = subscription.token  # paid anew while the old one still runs
            plan = self._plans.get(work.subscription.plan)
            event = EventType.PLAN_CHANGED if tenant.status is TenantStatus.ACTIVE else EventType.REACTIVATED
            work.tenant = dataclasses.replace(tenant, plan=plan.name, limits=plan.limits)
            work.move(
                TenantStatus.ACTIVE,
                key=f"subscribed:{token}",
                reason=f"a new subscription ({plan.name}) was bought for this tenant",
                event=event,
            )
            work.applied += 1
        for payment in itns:
            if token_of(payment) != token:
                continue  # another subscription's ITN under the same m_payment_id: never ours to apply
            self._apply(work, payment, first, tenant_id)
        if work.applied == 0:
            return Settled.UP_TO_DATE
        self._write(work, tenant)
        if work.replaced_token is not None:
            self._cancel_replaced(work.replaced_token, tenant_id)
        # The owner's emails go now, as they did before they were notices; a failure is retried
        # by the notices' dispatcher. Events wait for it: a slow webhook never slows an ITN.
        self._notices.deliver(notice.notice_id for notice in work.notices if notice.kind is NoticeKind.EMAIL)
        return Settled.APPLIED

    def _cancel_replaced(self, token: str, tenant_id: str) -> None:
        """The subscription an owner replaced by paying anew (past due, suspended) must charge no
        more: PayFast may still retry it. Best effort: a failure is logged for Finance to cancel
        it by hand; the new subscription stands either way."""
        try:
            self._api.cancel(token)
        except NotFoundError:
            pass  # PayFast has no such subscription left: nothing to charge
        except TenancyError as error:
            log.error("replaced_subscription_not_cancelled", tenant_id=tenant_id, token=token, error=str(error))
            return
        log.info("replaced_subscription_cancelled", tenant_id=tenant_id, token=token)

    def _returning_checked(self, transaction_id: str) -> bool:
        job = self._journal.get(transaction_id)
        return job is not None and job.returning and job.status is JobStatus.SUCCEEDED

    def _replaces(self, current: Subscription, first: PaymentRecord, tenant: Tenant) -> bool:
        """Whether a first charge with another token than the tenant's subscription is a new
        subscription (bought again, or paid anew when the old one's charge failed) rather than an
        old one replayed: it is new when it came after the current one was started, or
        (timestamps being whole seconds) in that very second when the current one no longer runs
        or is unpaid and the checkout was for this tenant (its owner came back: the saga checked
        they belong to it)."""
        received, started = parse_timestamp(first.received_at), parse_timestamp(current.created_at)
        unpaid = tenant.status in {TenantStatus.PAST_DUE, TenantStatus.SUSPENDED}
        ended = current.status is not SubscriptionStatus.ACTIVE or unpaid
        came_back = ended and reactivated_tenant_of(first) == current.tenant_id
        return received > started or (came_back and received == started)

    def _apply(self, work: _Work, payment: PaymentRecord, first: PaymentRecord, tenant_id: str) -> None:
        pf_payment_id = payment.pf_payment_id or ""
        if payment.payment_status == "CANCELLED":
            self._cancel(work, payment)
            return
        if work.subscription is None:
            work.subscription = self._new_subscription(first, tenant_id, carried=None)
            work.applied += 1
            return
        if work.subscription.has_payment(pf_payment_id):
            return
        self._renew(work, payment)

    def _new_subscription(self, first: PaymentRecord, tenant_id: str, carried: Subscription | None) -> Subscription:
        plan = self._plans.get(first.plan or "")
        now = format_timestamp(self._clock.now())
        transaction_id = first.transaction_id or ""
        entry = BillingEntry(
            BillingKind.FIRST_CHARGE,
            now,
            pf_payment_id=first.pf_payment_id,
            amount=_amount(first),
            invoice_number=f"{invoice_number_for(transaction_id)}-01",
            plan=plan.name,
        )
        return Subscription(
            tenant_id=tenant_id,
            token=token_of(first) or "",
            transaction_id=transaction_id,
            plan=plan.name,
            frequency=plan.billing or Frequency.MONTHLY,
            recurring_amount=plan.recurring_price_zar,
            billing_date=_billing_date(first),
            periods_paid=1,
            status=SubscriptionStatus.ACTIVE,
            created_at=now,
            updated_at=now,
            # A tenant that subscribes again keeps its history (tax records), and the version
            # it was read at, so the new subscription is written over the old one.
            history=(*(carried.history if carried else ()), entry),
            version=carried.version if carried else 0,
        )

    def _renew(self, work: _Work, payment: PaymentRecord) -> None:
        subscription = work.subscription
        assert subscription is not None
        amount = _amount(payment)
        if amount != subscription.recurring_amount:
            # The intake refuses these; one kept by an older version waits for an operator.
            log.warning(
                "renewal_amount_mismatch",
                transaction_id=subscription.transaction_id,
                pf_payment_id=payment.pf_payment_id,
                amount=str(amount),
                expected=str(subscription.recurring_amount),
            )
            return
        now = format_timestamp(self._clock.now())
        number = subscription.charges() + 1
        invoice = f"{invoice_number_for(subscription.transaction_id)}-{number:02d}"
        plan_name = subscription.pending_plan or subscription.plan
        plan = self._plans.get(plan_name)
        renewed = subscription.evolve(
            now,
            plan=plan_name,
            pending_plan=None,
            periods_paid=subscription.periods_paid + 1,
            history=(
                *subscription.history,
                BillingEntry(BillingKind.RENEWAL, now, payment.pf_payment_id, amount, invoice, plan_name),
            ),
        )
        work.subscription = renewed
        work.applied += 1
        pf_payment_id = payment.pf_payment_id or ""
        ended = {TenantStatus.PROVISIONING, TenantStatus.CANCELLED, TenantStatus.DELETED}
        if work.tenant.status in ended:
            # PayFast charged a subscription whose tenant has ended: the charge is on record (for
            # Finance to refund), the tenant is not brought back by it.
            log.warning("renewal_for_ended_tenant", tenant_id=work.tenant.tenant_id, pf_payment_id=pf_payment_id)
            return
        # The period starts again: the month's generations are counted afresh, and a pending
        # downgrade takes effect now that the period it was paid for is over.
        work.tenant = dataclasses.replace(work.tenant, plan=plan.name, limits=plan.limits)
        work.reset_generations = True
        status = TenantStatus.CANCELLING if renewed.status is SubscriptionStatus.CANCELLING else TenantStatus.ACTIVE
        work.move(
            status,
            key=f"charge:{pf_payment_id}",
            reason=f"renewal {pf_payment_id} ({invoice}): paid through {renewed.paid_through.isoformat()}",
            event=EventType.RENEWED,
        )
        if payment.email:
            receipt = receipt_email(
                to=payment.email,
                plan=plan,
                amount=amount,
                invoice_number=invoice,
                paid_through=renewed.paid_through,
                account_url=self._account_url,
                sender=self._sender,
                support_email=self._support_email,
                tags={"transaction_id": renewed.transaction_id, "pf_payment_id": pf_payment_id},
            )
            work.email(receipt, key=f"receipt:{pf_payment_id}")

    def _cancel(self, work: _Work, payment: PaymentRecord) -> None:
        subscription = work.subscription
        if subscription is None:
            return  # a cancellation before any charge was applied: nothing to end yet
        already = any(
            entry.kind is BillingKind.CANCELLATION and entry.pf_payment_id == payment.pf_payment_id
            for entry in subscription.history
        )
        if already or subscription.status is not SubscriptionStatus.ACTIVE:
            return
        now = format_timestamp(self._clock.now())
        work.subscription = subscription.evolve(
            now,
            status=SubscriptionStatus.CANCELLING,
            pending_plan=None,
            history=(
                *subscription.history,
                BillingEntry(BillingKind.CANCELLATION, now, payment.pf_payment_id, note="cancelled at PayFast"),
            ),
        )
        work.applied += 1
        key = f"cancel:{payment.pf_payment_id or subscription.token}"
        if work.tenant.status in {TenantStatus.ACTIVE, TenantStatus.PAST_DUE}:
            work.move(
                TenantStatus.CANCELLING,
                key=key,
                reason=f"cancelled at PayFast: access until {subscription.paid_through.isoformat()}",
            )
        if payment.email:
            notice = cancellation_email(
                to=payment.email,
                last_day=subscription.paid_through,
                account_url=self._account_url,
                sender=self._sender,
                support_email=self._support_email,
                tags={"transaction_id": subscription.transaction_id, "pf_payment_id": payment.pf_payment_id or ""},
            )
            work.email(notice, key=key)

    def _write(self, work: _Work, read: Tenant) -> None:
        assert work.subscription is not None
        changes = tenant_changes(read, work.tenant, reset_generations=work.reset_generations)
        # One write, on the condition that the tenant is still as it was read (a sweep that moved
        # it meanwhile makes this settle read again) and the subscription at the version read.
        saved = self._lifecycle.commit(
            LifecycleCommit(
                tenant_id=read.tenant_id,
                leaving=frozenset({read.status}),
                updated_at=work.now,
                changes=changes,
                subscription=work.subscription,
                transitions=tuple(work.transitions),
                notices=tuple(work.notices),
            )
        )
        assert saved is not None
        log.info(
            "subscription_settled",
            tenant_id=saved.tenant_id,
            transaction_id=saved.transaction_id,
            status=saved.status.value,
            paid_through=saved.paid_through.isoformat(),
            applied=work.applied,
        )


def _amount(payment: PaymentRecord) -> Decimal:
    try:
        return Decimal(payment.amount_gross or "")
    except InvalidOperation:
        return Decimal(0)


def _billing_date(first: PaymentRecord) -> date:
    """The subscription's first billing date: the ITN's `billing_date`, else the day it came."""
    given = payfast.field_value(first.fields, "billing_date") or ""
    try:
        return date.fromisoformat(given)
    except ValueError:
        return parse_timestamp(first.received_at).date()
