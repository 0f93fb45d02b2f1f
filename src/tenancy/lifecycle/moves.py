"""One move of a tenant, as every writer records it (settle, plan changes, the saga, the sweep):
the history line, checked against the lifecycle's transition table, and the event the Site
Builder application is sent, its id derived from what makes the move unique."""

from __future__ import annotations

from dataclasses import dataclass

from tenancy.domain.lifecycle import (
    EventType,
    Notice,
    TenantChanges,
    Transition,
    Trigger,
    event_notice,
    move_for,
    new_event,
)
from tenancy.domain.model import Tenant, TenantStatus
from tenancy.ports import UserStore

__all__ = ["Recorded", "owner_email", "record_move", "tenant_changes"]


@dataclass(frozen=True, slots=True)
class Recorded:
    transition: Transition
    notice: Notice


def record_move(
    *,
    tenant_id: str,
    plan: str,
    leaving: TenantStatus,
    to: TenantStatus,
    trigger: Trigger,
    actor: str,
    at: str,
    reason: str,
    key: str,
    event: EventType | None = None,
    data: dict[str, str] | None = None,
    queued_at: str | None = None,
) -> Recorded:
    """The move's history line and event notice. `key` names what made the move (a payment id,
    a token, the state it left and when): the same move recorded twice makes the same event.
    The event is due for delivery at `queued_at` (now; default: the move's own time, `at`).
    Raises ValueError for a move the transition table does not have."""
    row = move_for(leaving, trigger, to, event)
    transition = Transition(tenant_id, leaving, to, trigger, actor, at, reason, row.event)
    lifecycle_event = new_event(row.event, tenant_id, plan, to, at, key, **(data or {}))
    return Recorded(transition, event_notice(lifecycle_event, queued_at))


def tenant_changes(read: Tenant, after: Tenant, *, reset_generations: bool = False) -> TenantChanges:
    """The fields `after` changed from `read`: what a lifecycle commit writes, and nothing else."""
    return TenantChanges(
        status=after.status if after.status is not read.status else None,
        plan=after.plan if after.plan != read.plan else None,
        limits=after.limits if after.limits != read.limits else None,
        reset_generations=reset_generations,
    )


def owner_email(users: UserStore, tenant: Tenant) -> str | None:
    """Whom a move's owner email goes to: the tenant owner's users record's email, or None."""
    record = users.get(tenant.owner_user_id) if tenant.owner_user_id else None
    return record.email if record is not None else None
