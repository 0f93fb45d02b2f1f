"""The lifecycle's transition table (shared/design/tenant-lifecycle.md) as the code reads it: every
move the design lists is allowed with its event, every other is refused, and one move recorded twice
makes one event."""

from __future__ import annotations

import pytest

from tenancy.domain.lifecycle import EventType, Trigger, move_for
from tenancy.domain.model import TenantStatus as S
from tenancy.lifecycle.moves import record_move

T = Trigger

# (from, trigger, to, event): the design's transitions table, row by row.
DESIGNED = [
    (S.PROVISIONING, T.PROVISIONING, S.ACTIVE, EventType.ACTIVATED),
    (S.ACTIVE, T.ITN, S.ACTIVE, EventType.RENEWED),
    (S.PAST_DUE, T.ITN, S.ACTIVE, EventType.RENEWED),
    (S.SUSPENDED, T.ITN, S.ACTIVE, EventType.RENEWED),
    (S.ACTIVE, T.TIME, S.PAST_DUE, EventType.PAST_DUE),
    (S.PAST_DUE, T.TIME, S.SUSPENDED, EventType.SUSPENDED),
    (S.SUSPENDED, T.TIME, S.CANCELLED, EventType.CANCELLED),
    (S.ACTIVE, T.ITN, S.CANCELLING, EventType.CANCELLING),
    (S.PAST_DUE, T.OWNER, S.CANCELLING, EventType.CANCELLING),
    (S.ACTIVE, T.OPERATOR, S.CANCELLING, EventType.CANCELLING),
    (S.CANCELLING, T.TIME, S.CANCELLED, EventType.CANCELLED),
    (S.SUSPENDED, T.ITN, S.ACTIVE, EventType.REACTIVATED),
    (S.CANCELLED, T.ITN, S.ACTIVE, EventType.REACTIVATED),
    (S.CANCELLING, T.ITN, S.ACTIVE, EventType.REACTIVATED),
    (S.CANCELLED, T.TIME, S.DELETED, EventType.DELETED),
    (S.ACTIVE, T.OPERATOR, S.DELETED, EventType.DELETED),
    (S.ACTIVE, T.OWNER, S.ACTIVE, EventType.PLAN_CHANGED),
]

REFUSED = [
    (S.ACTIVE, T.TIME, S.SUSPENDED),  # never straight past the grace period
    (S.ACTIVE, T.TIME, S.CANCELLED),
    (S.PAST_DUE, T.TIME, S.CANCELLED),
    (S.CANCELLED, T.TIME, S.ACTIVE),  # only a payment brings a tenant back
    (S.SUSPENDED, T.OWNER, S.ACTIVE),
    (S.DELETED, T.ITN, S.ACTIVE),  # a tombstone never comes back
    (S.DELETED, T.OPERATOR, S.DELETED),
    (S.PROVISIONING, T.OPERATOR, S.DELETED),  # provisioning finishes first
    (S.CANCELLED, T.TIME, S.PAST_DUE),
    (S.PROVISIONING, T.ITN, S.ACTIVE),  # only the saga activates
]


@pytest.mark.parametrize(("leaving", "trigger", "to", "event"), DESIGNED)
def test_every_designed_move_is_allowed_with_its_event(leaving: S, trigger: T, to: S, event: EventType) -> None:
    assert move_for(leaving, trigger, to, event).event is event


@pytest.mark.parametrize(("leaving", "trigger", "to"), REFUSED)
def test_a_move_the_design_does_not_have_is_refused(leaving: S, trigger: T, to: S) -> None:
    with pytest.raises(ValueError, match=f"from {leaving.value} to {to.value} on {trigger.value}"):
        move_for(leaving, trigger, to)


def test_one_move_recorded_twice_makes_one_event_and_another_move_another() -> None:
    def past_due(key: str) -> str:
        recorded = record_move(
            tenant_id="ten_moves",
            plan="professional",
            leaving=S.ACTIVE,
            to=S.PAST_DUE,
            trigger=T.TIME,
            actor="lifecycle-sweep",
            at="2027-01-08T09:00:00Z",
            reason="no renewal",
            key=key,
        )
        assert recorded.transition.event is EventType.PAST_DUE
        return recorded.notice.notice_id

    assert past_due("past_due:2027-01-06") == past_due("past_due:2027-01-06")
    assert past_due("past_due:2027-01-06") != past_due("past_due:2027-02-06")
