"""A tenant leaving for good: everything the system holds about it, exported (the owner's data
request), and its deletion: the tenant's move to `deleted` with its tombstone, then its people
(identity users and users records) removed.

The move is written first, in one commit with the tombstone, the `tenant.deleted` event and the
owner's email (the address is known only while the people exist). Removing the people comes after
and is idempotent: a deletion interrupted between the two is finished by running it again
(`tenancy tenant delete` on a deleted tenant removes whoever is left), and until then the runbook
sees an identity that outlived its tenant. Nothing is deleted before the retention period unless
an operator asks, with a reason, and the billing history is never deleted."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import structlog

from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.lifecycle import LifecycleCommit, TenantChanges, Tombstone, Trigger, email_hash, email_notice
from tenancy.domain.model import Tenant, TenantStatus, UserRecord
from tenancy.domain.secret_lines import hide_secret_lines
from tenancy.errors import InvalidInputError, NotFoundError
from tenancy.lifecycle.emails import LifecycleMail
from tenancy.lifecycle.moves import record_move
from tenancy.lifecycle.notices import NoticeDispatcher
from tenancy.ports import (
    Clock,
    IdentityProvider,
    LifecycleStore,
    Mailer,
    PaymentLedger,
    ProvisioningJournal,
    SubscriptionStore,
    TenantStore,
    UserStore,
)

__all__ = ["Deleted", "TenantOffboarding", "cancelled_at"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Deleted:
    tenant_id: str
    tombstone: Tombstone
    people_removed: tuple[str, ...]  # the emails whose identity user and users record are gone
    already: bool  # the tenant was deleted before; this run only finished removing its people


def cancelled_at(lifecycle: LifecycleStore, tenant: Tenant) -> str | None:
    """When the tenant was cancelled (its last move to `cancelled`), or None."""
    moves = [move for move in lifecycle.history(tenant.tenant_id) if move.to_status is TenantStatus.CANCELLED]
    return moves[-1].at if moves else None


class TenantOffboarding:
    def __init__(
        self,
        *,
        tenants: TenantStore,
        users: UserStore,
        identity: IdentityProvider,
        subscriptions: SubscriptionStore,
        lifecycle: LifecycleStore,
        ledger: PaymentLedger,
        journal: ProvisioningJournal,
        mailer: Mailer,
        notices: NoticeDispatcher,
        mail: LifecycleMail,
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._users = users
        self._identity = identity
        self._subscriptions = subscriptions
        self._lifecycle = lifecycle
        self._ledger = ledger
        self._journal = journal
        self._mailer = mailer
        self._notices = notices
        self._mail = mail
        self._clock = clock

    def delete(
        self, tenant_id: str, *, trigger: Trigger, actor: str, reason: str, as_of: datetime | None = None
    ) -> Deleted:
        """Deletes the tenant (`trigger` TIME: retention over; OPERATOR: on request, from any
        state but provisioning). Raises NotFoundError for no such tenant, InvalidInputError for
        a move the lifecycle does not allow (ConflictError if it moved meanwhile)."""
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise NotFoundError(f"no tenant {tenant_id}")
        people = self._people(tenant)
        if tenant.status is TenantStatus.DELETED:
            stone = self._lifecycle.tombstone(tenant_id)
            if stone is None:
                raise InvalidInputError(f"tenant {tenant_id} is deleted but has no tombstone: see the runbook")
            return Deleted(tenant_id, stone, self._remove(people), already=True)
        if not reason.strip():
            raise InvalidInputError("a deletion needs a reason (kept in the tenant's history)")
        moment = as_of or self._clock.now()
        at, now = format_timestamp(moment), format_timestamp(self._clock.now())
        owner = self._owner(tenant, people)
        try:
            recorded = record_move(
                tenant_id=tenant_id,
                plan=tenant.plan,
                leaving=tenant.status,
                to=TenantStatus.DELETED,
                trigger=trigger,
                actor=actor,
                at=at,
                reason=reason,
                key="deleted",
                queued_at=now,
            )
        except ValueError as refused:
            raise InvalidInputError(str(refused)) from None
        stone = Tombstone(
            tenant_id=tenant_id,
            owner_email_hash=email_hash(owner) if owner else "",
            plan=tenant.plan,
            transaction_id=tenant.billing.transaction_id,
            created_at=tenant.created_at,
            cancelled_at=cancelled_at(self._lifecycle, tenant),
            deleted_at=at,
            reason=reason,
        )
        notices = [recorded.notice]
        if owner:
            notices.append(email_notice(self._mail.deleted(owner), tenant_id, "deleted", now))
        self._lifecycle.commit(
            LifecycleCommit(
                tenant_id=tenant_id,
                leaving=frozenset({tenant.status}),
                updated_at=at,
                changes=TenantChanges(status=TenantStatus.DELETED, erase_people=True),
                transitions=(recorded.transition,),
                notices=tuple(notices),
                tombstone=stone,
            )
        )
        # The email goes before the people do; the notice's address is its only copy after.
        self._notices.deliver(notice.notice_id for notice in notices)
        removed = self._remove(people)
        log.info("tenant_deleted", tenant_id=tenant_id, trigger=trigger.value, actor=actor, people=len(removed))
        return Deleted(tenant_id, stone, removed, already=False)

    def deletion_due(self, tenant: Tenant, today: date, retention_days: int) -> date | None:
        """The day a cancelled tenant's data is deleted (its cancellation plus the retention
        period), or None when it is not cancelled (or its cancellation was never recorded)."""
        if tenant.status is not TenantStatus.CANCELLED:
            return None
        when = cancelled_at(self._lifecycle, tenant) or tenant.updated_at
        return parse_timestamp(when).date() + timedelta(days=retention_days)

    def export(self, tenant_id: str) -> dict[str, Any]:
        """Everything the system holds about the tenant, as JSON values: the tenant record, its
        people (users records and identity users, without secrets), the subscription and its
        billing history, the lifecycle history, the payments and jobs of its checkouts, and the
        emails sent to its people."""
        tenant = self._tenants.get(tenant_id)
        stone = self._lifecycle.tombstone(tenant_id)
        if tenant is None and stone is None:
            raise NotFoundError(f"no tenant {tenant_id}")
        people = self._people(tenant) if tenant is not None else []
        subscription = self._subscriptions.get(tenant_id)
        checkouts = sorted(
            {
                *([tenant.billing.transaction_id] if tenant else []),
                *([subscription.transaction_id] if subscription else []),
            }
        )
        identities = [self._identity.get_user(person.email) for person in people]
        return {
            "exported_at": format_timestamp(self._clock.now()),
            "tenant": _plain(tenant),
            "tombstone": _plain(stone),
            "people": [_plain(person) for person in people],
            "identity_users": [
                {
                    "username": found.username,
                    "status": found.status.value,
                    "enabled": found.enabled,
                    "attributes": found.attributes,
                }
                for found in identities
                if found is not None
            ],
            "subscription": _plain(subscription),
            "lifecycle_history": [_plain(move) for move in self._lifecycle.history(tenant_id)],
            "payments": [
                _plain(payment)
                for transaction_id in checkouts
                for payment in self._ledger.find(transaction_id=transaction_id)
            ],
            "provisioning_jobs": [_plain(job) for job in self._journal.find(tenant_id=tenant_id)],
            "emails": [
                # A temporary password or a reset code is a credential, never part of an export.
                _plain(dataclasses.replace(message, text=hide_secret_lines(message.text, "[redacted]")))
                for person in people
                for message in self._mailer.outbox(person.email)
            ],
        }

    def _people(self, tenant: Tenant) -> list[UserRecord]:
        found = {user.user_id: user for user in self._users.find_by_tenant(tenant.tenant_id)}
        owner = self._users.get(tenant.owner_user_id) if tenant.owner_user_id else None
        if owner is not None and owner.tenant_id == tenant.tenant_id:
            found.setdefault(owner.user_id, owner)
        return sorted(found.values(), key=lambda user: (user.created_at, user.user_id))

    def _owner(self, tenant: Tenant, people: list[UserRecord]) -> str | None:
        for person in people:
            if person.user_id == tenant.owner_user_id:
                return person.email
        return people[0].email if people else None

    def _remove(self, people: list[UserRecord]) -> tuple[str, ...]:
        removed = []
        for person in people:
            # A member removed here long ago may have joined another tenant since, with the same
            # email: an identity user that names another tenant is theirs now, and stays.
            identity = self._identity.get_user(person.email)
            if identity is not None and identity.tenant_id in {None, person.tenant_id}:
                self._identity.delete_user(person.email)
            self._users.delete(person.user_id)
            removed.append(person.email)
        return tuple(removed)


def _plain(value: object) -> Any:
    """A dataclass as JSON values (enums as their values, decimals and dates as text)."""
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, str | int | float | bool):
        return value.value if hasattr(value, "value") and not isinstance(value, bool) else value
    return str(value)
