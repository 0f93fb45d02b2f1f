"""What a tenant may use and has used: the entitlements read, the usage record (the store's one
conditional write, retried when the tenant changed under it), the owner's warnings near a limit,
and an operator's correction (kept in the repair trail)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog

from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import RepairRecord, Tenant, Usage
from tenancy.domain.usage import (
    Entitlements,
    Metric,
    UsageChange,
    UsageOutcome,
    UsagePeriod,
    crossed_thresholds,
    period_for,
)
from tenancy.errors import ConflictError, NotFoundError, TransientError
from tenancy.lifecycle.moves import owner_email
from tenancy.lifecycle.notices import NoticeDispatcher
from tenancy.ports import Clock, LifecycleStore, RepairTrail, SubscriptionStore, TenantStore, UsageStore, UserStore
from tenancy.usage.warnings import UsageMail, warning_notices

__all__ = ["ANSWER_LIFETIME", "CORRECTION_FINDING", "UsageCorrection", "UsageService"]

log = structlog.get_logger(__name__)

CORRECTION_FINDING = "usage_correction"  # the repair trail's name for an operator's correction
ANSWER_LIFETIME = timedelta(days=7)  # how long a usage record's idempotency key is remembered
_ATTEMPTS = 5
_WARNED_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class UsageCorrection:
    tenant_id: str
    metric: Metric
    before: int
    after: int


class UsageService:
    def __init__(
        self,
        *,
        tenants: TenantStore,
        subscriptions: SubscriptionStore,
        usage: UsageStore,
        users: UserStore,
        lifecycle: LifecycleStore,
        notices: NoticeDispatcher,
        trail: RepairTrail,
        mail: UsageMail,
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._subscriptions = subscriptions
        self._usage = usage
        self._users = users
        self._lifecycle = lifecycle
        self._notices = notices
        self._trail = trail
        self._mail = mail
        self._clock = clock
        self._warned: set[tuple[object, ...]] = set()  # warnings queued (or found queued) by this process

    def entitlements(self, tenant_id: str) -> Entitlements:
        """The tenant's status, plan, limits and usage in its current period. NotFoundError if none."""
        tenant = self._tenant(tenant_id)
        return Entitlements.of(tenant, self._period(tenant_id))

    def of_tenant(self, tenant: Tenant) -> Entitlements:
        """The entitlements of a tenant already read (the account page, the console)."""
        return Entitlements.of(tenant, self._period(tenant.tenant_id))

    def record(self, tenant_id: str, change: UsageChange) -> UsageOutcome:
        """Records the change once per idempotency key, or refuses it without changing anything
        (quota exceeded: an outcome not applied). NotFoundError, TenantInactiveError."""
        for _ in range(_ATTEMPTS):
            tenant = self._tenant(tenant_id)
            period = self._period(tenant_id)
            at = format_timestamp(self._clock.now())
            try:
                outcome = self._usage.record(tenant, change, period.start.isoformat(), at)
            except ConflictError:
                continue  # the limit or the period moved since the read: read again
            if not outcome.applied:
                # An applied record is kept as its idempotency key's answer; a refusal is news.
                log.info(
                    "usage_refused",
                    tenant_id=tenant_id,
                    metric=change.metric.value,
                    amount=change.amount,
                    absolute=change.absolute,
                    used=outcome.used,
                    limit=outcome.limit,
                    replayed=outcome.replayed,
                )
            elif not outcome.replayed:
                self._warn(tenant, outcome, period)
            return outcome
        raise TransientError(f"the usage of tenant {tenant_id} kept changing; try again")

    def correct(self, tenant_id: str, metric: Metric, value: int, *, reason: str, operator: str) -> UsageCorrection:
        """Sets a metric by hand (whatever the limit), kept in the repair trail with the reason."""
        if value < 0:
            raise ValueError("usage cannot be below zero")
        tenant = self._tenant(tenant_id)
        period = self._period(tenant_id)
        before = Entitlements.of(tenant, period).used(metric)
        at = format_timestamp(self._clock.now())
        usage: Usage = self._usage.correct(tenant_id, metric, value, period.start.isoformat(), at)
        self._trail.record(
            RepairRecord(
                at=at,
                operator=operator,
                transaction_id=tenant.billing.transaction_id,
                tenant_id=tenant_id,
                email=None,
                finding=CORRECTION_FINDING,
                actions=(f"set {metric.value} from {before} to {value}: {reason}",),
                before={metric.usage_field: before},
                after={metric.usage_field: metric.used(usage)},
                outcome="corrected",
            )
        )
        log.info("usage_corrected", tenant_id=tenant_id, metric=metric.value, before=before, after=value)
        return UsageCorrection(tenant_id, metric, before, metric.used(usage))

    def forget_old_answers(self) -> int:
        """Drops the answers of idempotency keys older than ANSWER_LIFETIME (the lifecycle run)."""
        return self._usage.forget_answers(format_timestamp(self._clock.now() - ANSWER_LIFETIME))

    def _tenant(self, tenant_id: str) -> Tenant:
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise NotFoundError(f"tenant {tenant_id} not found")
        return tenant

    def _period(self, tenant_id: str) -> UsagePeriod:
        return period_for(self._subscriptions.get(tenant_id), self._clock.now())

    def _warn(self, tenant: Tenant, outcome: UsageOutcome, period: UsagePeriod) -> None:
        """Queues (and sends at once) the warnings this record's usage calls for; a failure to
        queue is logged, never the record's: the next record near the limit queues it again."""
        reached = crossed_thresholds(outcome.used, outcome.limit)[-1:]
        # Every record near a limit calls for its warning; this process asks the stores once.
        asked = (tenant.tenant_id, period.start, outcome.change.metric, tuple(reached), outcome.limit)
        if not reached or asked in self._warned:
            return
        to = owner_email(self._users, tenant)
        if to is None:
            log.warning("usage_warning_without_owner", tenant_id=tenant.tenant_id)
            return
        try:
            notices = warning_notices(
                outcome,
                to,
                self._mail,
                period_start=period.start.isoformat(),
                period_end=period.end.isoformat(),
            )
            queued = [notice.notice_id for notice in notices if self._lifecycle.queue_notice(notice)]
            if len(self._warned) >= _WARNED_REMEMBERED:
                self._warned.clear()
            self._warned.add(asked)
            if queued:
                self._notices.deliver(queued)
        except (TransientError, OSError) as error:
            log.warning("usage_warning_not_queued", tenant_id=tenant.tenant_id, error=str(error))
