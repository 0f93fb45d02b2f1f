"""The tenant lifecycle as data (shared/design/tenant-lifecycle.md): the moves a tenant makes, the
record each leaves in the tenant's history, the event the Site Builder application hears of it,
and the notices (events, owner emails) a move queues in the same write that records it.

A move is applied by one conditional write on the state it leaves (`LifecycleCommit.leaving`):
of two writers that read the same state, one wins and the other gets ConflictError, so a move
happens once however many sweeps and ITNs race for it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tenancy.domain.billing import Subscription
from tenancy.domain.model import OutgoingEmail, TenantStatus
from tenancy.domain.plans import Limits

__all__ = [
    "DELETED_NAME",
    "MOVES",
    "EventType",
    "LifecycleCommit",
    "LifecycleEvent",
    "Move",
    "Notice",
    "NoticeKind",
    "NoticeStatus",
    "TenantChanges",
    "Tombstone",
    "Transition",
    "Trigger",
    "email_hash",
    "email_notice",
    "encode_body",
    "event_notice",
    "move_for",
    "new_event",
]


class Trigger(StrEnum):
    """What set a move off."""

    PROVISIONING = "provisioning"  # the saga finished a first charge's work
    ITN = "itn"  # PayFast said so
    TIME = "time"  # the lifecycle sweep: a period ran out
    OWNER = "owner"  # the tenant's owner, from the account page
    OPERATOR = "operator"  # an operator, from the CLI or the console


class EventType(StrEnum):
    ACTIVATED = "tenant.activated"
    RENEWED = "tenant.renewed"
    PAST_DUE = "tenant.past_due"
    SUSPENDED = "tenant.suspended"
    CANCELLING = "tenant.cancelling"
    CANCELLED = "tenant.cancelled"
    REACTIVATED = "tenant.reactivated"
    PLAN_CHANGED = "tenant.plan_changed"
    DELETED = "tenant.deleted"
    MEMBER_INVITED = "member.invited"
    MEMBER_JOINED = "member.joined"
    MEMBER_REMOVED = "member.removed"
    MEMBER_ROLE_CHANGED = "member.role_changed"


@dataclass(frozen=True, slots=True)
class Move:
    """One row of the lifecycle's transition table: from any of `leaving`, on `trigger`, to `to`."""

    leaving: frozenset[TenantStatus]
    triggers: frozenset[Trigger]
    to: TenantStatus
    event: EventType


_S = TenantStatus
_T = Trigger

# tenant-lifecycle.md's transitions table, as the code reads it. A move not in it is refused.
MOVES: tuple[Move, ...] = (
    Move(frozenset({_S.PROVISIONING}), frozenset({_T.PROVISIONING}), _S.ACTIVE, EventType.ACTIVATED),
    Move(frozenset({_S.ACTIVE, _S.PAST_DUE, _S.SUSPENDED}), frozenset({_T.ITN}), _S.ACTIVE, EventType.RENEWED),
    # A charge PayFast made before it was cancelled: paid, but still ending.
    Move(frozenset({_S.CANCELLING}), frozenset({_T.ITN}), _S.CANCELLING, EventType.RENEWED),
    Move(frozenset({_S.ACTIVE}), frozenset({_T.ITN, _T.OWNER, _T.OPERATOR}), _S.ACTIVE, EventType.PLAN_CHANGED),
    Move(frozenset({_S.ACTIVE}), frozenset({_T.TIME}), _S.PAST_DUE, EventType.PAST_DUE),
    Move(frozenset({_S.PAST_DUE}), frozenset({_T.TIME}), _S.SUSPENDED, EventType.SUSPENDED),
    Move(frozenset({_S.SUSPENDED}), frozenset({_T.TIME, _T.OPERATOR}), _S.CANCELLED, EventType.CANCELLED),
    Move(
        frozenset({_S.ACTIVE, _S.PAST_DUE}),
        frozenset({_T.ITN, _T.OWNER, _T.OPERATOR}),
        _S.CANCELLING,
        EventType.CANCELLING,
    ),
    Move(frozenset({_S.CANCELLING}), frozenset({_T.TIME}), _S.CANCELLED, EventType.CANCELLED),
    # A new subscription bought for this tenant (its owner came back).
    Move(
        frozenset({_S.SUSPENDED, _S.CANCELLED, _S.CANCELLING, _S.PAST_DUE}),
        frozenset({_T.ITN}),
        _S.ACTIVE,
        EventType.REACTIVATED,
    ),
    Move(frozenset({_S.CANCELLED}), frozenset({_T.TIME, _T.OPERATOR}), _S.DELETED, EventType.DELETED),
    Move(
        frozenset({_S.ACTIVE, _S.CANCELLING, _S.SUSPENDED, _S.CANCELLED, _S.PAST_DUE}),
        frozenset({_T.OPERATOR}),
        _S.DELETED,
        EventType.DELETED,
    ),
)


def move_for(leaving: TenantStatus, trigger: Trigger, to: TenantStatus, event: EventType | None = None) -> Move:
    """The table's row for this move (the first that fits); ValueError if the table has none."""
    for move in MOVES:
        if leaving in move.leaving and trigger in move.triggers and move.to is to and event in {None, move.event}:
            return move
    raise ValueError(f"a tenant cannot move from {leaving.value} to {to.value} on {trigger.value}")


@dataclass(frozen=True, slots=True)
class Transition:
    """One line of a tenant's history: who or what moved it, when, why, from and to."""

    tenant_id: str
    from_status: TenantStatus
    to_status: TenantStatus
    trigger: Trigger
    actor: str
    at: str
    reason: str
    event: EventType


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """What the Site Builder application hears of a move (the webhook's or EventBridge's body)."""

    event_id: str
    type: EventType
    tenant_id: str
    plan: str
    status: TenantStatus
    at: str
    data: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The event as the Standard Webhooks payload shape: type, timestamp, data."""
        return {
            "type": self.type.value,
            "timestamp": self.at,
            "data": {"tenant_id": self.tenant_id, "plan": self.plan, "status": self.status.value, **self.data},
        }


class NoticeKind(StrEnum):
    EVENT = "event"
    EMAIL = "email"


class NoticeStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # retried for its whole window and never delivered: the runbook's to redrive


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a move owes the outside world (an event, an owner email), queued in the move's
    own write and delivered after it, retried until delivered or dead. `notice_id` is derived
    from the move, so queuing the same move's notice twice is one notice."""

    notice_id: str
    kind: NoticeKind
    tenant_id: str
    body: dict[str, Any]
    created_at: str
    status: NoticeStatus = NoticeStatus.PENDING
    attempts: int = 0
    next_attempt_at: str = ""
    last_error: str | None = None
    delivered_at: str | None = None

    def event(self) -> LifecycleEvent:
        body = self.body
        return LifecycleEvent(
            event_id=self.notice_id,
            type=EventType(body["type"]),
            tenant_id=body["tenant_id"],
            plan=body["plan"],
            status=TenantStatus(body["status"]),
            at=body["at"],
            data=dict(body.get("data", {})),
        )

    def email(self) -> OutgoingEmail:
        body = self.body
        return OutgoingEmail(
            to=body["to"],
            subject=body["subject"],
            text=body["text"],
            html=body.get("html"),
            sender=body.get("sender", ""),
            tags=dict(body.get("tags", {})),
        )


def _notice_id(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


def event_notice(event: LifecycleEvent, queued_at: str | None = None) -> Notice:
    """The event as a notice, due at once: at `queued_at` (now), or at the event's own time."""
    body = {
        "type": event.type.value,
        "tenant_id": event.tenant_id,
        "plan": event.plan,
        "status": event.status.value,
        "at": event.at,
        "data": event.data,
    }
    queued = queued_at or event.at
    return Notice(event.event_id, NoticeKind.EVENT, event.tenant_id, body, queued, next_attempt_at=queued)


def new_event(
    event_type: EventType, tenant_id: str, plan: str, status: TenantStatus, at: str, key: str, **data: str
) -> LifecycleEvent:
    """An event whose id is derived from `key` (what makes the move unique: the transition's
    time and states, or the payment it applied), so the same move always makes the same event."""
    return LifecycleEvent(
        _notice_id("evt", event_type.value, tenant_id, key), event_type, tenant_id, plan, status, at, data
    )


def email_notice(email: OutgoingEmail, tenant_id: str, key: str, at: str) -> Notice:
    """An owner email as a notice. Emails with secrets (a temporary password) are never queued:
    the outbox keeps nothing a log may not."""
    if email.secrets:
        raise ValueError("an email carrying a secret is sent directly, never queued")
    body = {
        "to": email.to,
        "subject": email.subject,
        "text": email.text,
        "html": email.html,
        "sender": email.sender,
        "tags": email.tags,
    }
    return Notice(
        _notice_id("eml", tenant_id, key, email.subject), NoticeKind.EMAIL, tenant_id, body, at, next_attempt_at=at
    )


@dataclass(frozen=True, slots=True)
class TenantChanges:
    """The tenant fields a commit sets; None leaves a field as it is. Only these are written, so a
    commit never overwrites what another writer changed meanwhile (usage, the owner).
    `erase_people` blanks what names a person (the owner's subject, the display name): a
    deleted tenant's item keeps only what the tombstone needs."""

    status: TenantStatus | None = None
    plan: str | None = None
    limits: Limits | None = None
    reset_generations: bool = False
    erase_people: bool = False


DELETED_NAME = "(deleted)"


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is kept of a deleted tenant, for good: its id (never reused), a hash of its owner's
    email (to answer "did this person have an account?" without keeping the address), its plan,
    its billing (the subscription's history stays beside it, for tax records) and its dates."""

    tenant_id: str
    owner_email_hash: str
    plan: str
    transaction_id: str
    created_at: str
    cancelled_at: str | None
    deleted_at: str
    reason: str


def email_hash(email: str) -> str:
    """The owner's email as a tombstone keeps it: SHA-256 of the lower-cased address."""
    return "sha256:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LifecycleCommit:
    """One atomic write: the tenant's changes if its status is still one of `leaving` (else
    ConflictError; NotFoundError if there is no such tenant), the subscription over the version
    it was read at (else ConflictError), the history lines, and the notices (each queued once)."""

    tenant_id: str
    leaving: frozenset[TenantStatus]
    updated_at: str
    changes: TenantChanges = TenantChanges()
    subscription: Subscription | None = None
    transitions: tuple[Transition, ...] = ()
    notices: tuple[Notice, ...] = ()
    tombstone: Tombstone | None = None


def encode_body(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
