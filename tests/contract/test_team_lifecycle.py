"""A tenant's team under its lifecycle, on SQLite and on DynamoDB with Cognito (moto): a member of
a suspended or cancelled tenant loses access as the owner does, and no one joins it; deleting the
tenant removes every member (identity user and users record) and leaves no usable invitation; a
downgrade to a plan with fewer seats than are held is refused, saying how many to remove, until
they are; and the AWS lifecycle Lambda's sweep expires invitations past their seven days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from lifecycle_support import Subscriber, at, payfast, services, subscriber
from tenancy import lambdas
from tenancy.billing.changes import ChangeKind
from tenancy.bootstrap import Services
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import Trigger
from tenancy.domain.members import InvitationStatus, Role
from tenancy.domain.model import Tenant, TenantStatus, Tokens, UserRecord
from tenancy.errors import InvalidInputError, TenantBlockedError
from tenancy.members.team import Invited

from aws_support import Backend
from helpers import lambda_context, pay, work

__all__ = ["payfast", "services", "subscriber"]  # the fixtures this suite uses, from lifecycle_support

PASSWORD = "Member-Passw0rd!"
EDITOR = "editor@example.com"
VIEWER = "viewer@example.com"


def tenant_of(services: Services, tenant_id: str) -> Tenant:
    found = services.tenants.get(tenant_id)
    assert found is not None
    return found


def token_of(invited: Invited) -> str:
    return invited.link.rsplit("/join/", 1)[1]


def join(services: Services, subscriber: Subscriber, email: str, role: Role) -> UserRecord:
    """`email` invited by the owner and joined with PASSWORD."""
    tenant = tenant_of(services, subscriber.tenant_id)
    invited = services.team.invite(tenant, email, role, by=subscriber.email)
    return services.team.accept(token_of(invited), PASSWORD)


def id_token(services: Services, email: str, password: str = PASSWORD) -> str:
    tokens = services.accounts.login(email, password)
    assert isinstance(tokens, Tokens)
    return tokens.id_token


def owner_password(services: Services, subscriber: Subscriber) -> str:
    """Sets the owner's password (the welcome email's temporary one needs a challenge first)."""
    services.identity.set_password(subscriber.email, PASSWORD, permanent=True)
    return PASSWORD


# --- Suspended and cancelled ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "status"), [("2027-01-17", TenantStatus.SUSPENDED), ("2027-02-16", TenantStatus.CANCELLED)]
)
def test_a_member_of_a_blocked_tenant_loses_access_as_the_owner_does(
    services: Services, subscriber: Subscriber, when: str, status: TenantStatus
) -> None:
    join(services, subscriber, EDITOR, Role.EDITOR)
    owner_password(services, subscriber)
    before = id_token(services, EDITOR)
    assert services.accounts.member_for_token(before)[0].tenant_id == subscriber.tenant_id
    # A pending invitation of the tenant, for after.
    pending = services.team.invite(tenant_of(services, subscriber.tenant_id), VIEWER, Role.VIEWER, by=subscriber.email)

    services.lifecycle_sweep.run(at(when))
    if subscriber.status() is not status:  # cancelled is reached through suspended, one move a sweep
        services.lifecycle_sweep.run(at(when))
    assert subscriber.status() is status

    for email in (subscriber.email, EDITOR):
        # Both sign in (to reach billing, as RB-001 says of the owner) and both are refused the tenant,
        # with a token issued before the move as with one issued after.
        fresh = id_token(services, email)
        with pytest.raises(TenantBlockedError, match=status.value):
            services.accounts.member_for_token(fresh)
    with pytest.raises(TenantBlockedError):
        services.accounts.member_for_token(before)
    # No one joins a blocked tenant.
    with pytest.raises(InvalidInputError, match="cannot take new members"):
        services.team.accept(token_of(pending), PASSWORD)
    assert services.identity.get_user(VIEWER) is None


# --- Deletion ------------------------------------------------------------------------------------


def test_deleting_the_tenant_removes_every_member_and_leaves_no_usable_invitation(
    services: Services, subscriber: Subscriber
) -> None:
    editor = join(services, subscriber, EDITOR, Role.EDITOR)
    admin = join(services, subscriber, "admin@example.com", Role.TENANT_ADMIN)
    gone = join(services, subscriber, "gone@example.com", Role.VIEWER)
    services.team.remove(tenant_of(services, subscriber.tenant_id), gone.user_id, by="alice")
    pending = services.team.invite(tenant_of(services, subscriber.tenant_id), VIEWER, Role.VIEWER, by=subscriber.email)
    people = {subscriber.email, EDITOR, "admin@example.com", "gone@example.com"}
    assert {user.email for user in services.users.find_by_tenant(subscriber.tenant_id)} == people

    deleted = services.offboarding.delete(
        subscriber.tenant_id, trigger=Trigger.OPERATOR, actor="alice", reason="the customer asked"
    )

    assert set(deleted.people_removed) == people
    assert services.users.find_by_tenant(subscriber.tenant_id) == []
    for user in (editor, admin, gone):
        assert services.users.get(user.user_id) is None
    for email in people:
        assert services.identity.get_user(email) is None, email
    assert subscriber.status() is TenantStatus.DELETED
    with pytest.raises(InvalidInputError):
        services.team.accept(token_of(pending), PASSWORD)
    assert services.identity.get_user(VIEWER) is None
    # Run again (an interrupted deletion is finished so): nothing left, nothing fails.
    again = services.offboarding.delete(subscriber.tenant_id, trigger=Trigger.OPERATOR, actor="alice", reason="again")
    assert (again.already, again.people_removed) == (True, ())


# --- Seats and plan changes -----------------------------------------------------------------------


def test_a_downgrade_to_fewer_seats_than_are_held_is_refused_saying_how_many_to_remove(
    services: Services, subscriber: Subscriber
) -> None:
    member = join(services, subscriber, EDITOR, Role.EDITOR)
    pending = services.team.invite(tenant_of(services, subscriber.tenant_id), VIEWER, Role.VIEWER, by=subscriber.email)
    before = services.subscriptions.get(subscriber.tenant_id)
    assert services.team_store.seats_used(subscriber.tenant_id) == 3  # owner, member, invitation

    with pytest.raises(InvalidInputError) as refused:
        services.subscription_changes.plan_change(subscriber.tenant_id, "starter", actor="alice")

    message = str(refused.value)
    assert "3 seats are held" in message
    assert "the plan has 1" in message
    assert "remove 2 first" in message
    assert services.subscriptions.get(subscriber.tenant_id) == before  # nothing changed
    assert [entry.outcome for entry in services.trail.entries(tenant_id=subscriber.tenant_id)] == ["invited"] * 2

    # One removed, one revoked: the owner's seat is all the lower plan needs.
    tenant = tenant_of(services, subscriber.tenant_id)
    services.team.remove(tenant, member.user_id, by="alice")
    services.team.revoke(tenant, pending.invitation.invitation_id, by="alice")
    change = services.subscription_changes.plan_change(subscriber.tenant_id, "starter", actor="alice")

    assert (change.kind, change.outcome) == (ChangeKind.DOWNGRADE, "downgrade_scheduled")


def test_an_upgrade_is_never_refused_for_seats(services: Services, subscriber: Subscriber) -> None:
    join(services, subscriber, EDITOR, Role.EDITOR)

    change = services.subscription_changes.plan_change(subscriber.tenant_id, "enterprise", actor="alice")

    assert change.outcome == "upgraded"
    assert services.team.seats(tenant_of(services, subscriber.tenant_id)) == (2, 50)


# --- The AWS lifecycle Lambda's sweep -----------------------------------------------------------


CONTEXT: Any = lambda_context("lifecycle")
SWEEP_EVENT = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}, "job": "sweep"}


@pytest.fixture
def lambda_services(aws_backend: Backend) -> Iterator[Services]:
    """The container's services, as `lambdas.services()` builds them."""
    lambdas.use_services(aws_backend.services)
    yield aws_backend.services
    lambdas.use_services(None)


def test_the_lifecycle_lambdas_sweep_expires_invitations_past_seven_days_and_gives_their_seats_back(
    aws_backend: Backend, lambda_services: Services
) -> None:
    services = lambda_services
    transaction_id = pay(services, "owner@example.com", plan="professional")
    work(services)
    tenant = tenant_of(services, tenant_id_for(transaction_id))
    old = services.team.invite(tenant, EDITOR, Role.EDITOR, by="owner@example.com")
    aws_backend.clock.advance(days=6)
    young = services.team.invite(tenant, VIEWER, Role.VIEWER, by="owner@example.com")
    aws_backend.clock.advance(days=1, seconds=1)  # the first is past its seven days, the second is not
    assert services.team.seats(tenant) == (3, 5)

    lambdas.lifecycle_handler(SWEEP_EVENT, CONTEXT)
    lambdas.lifecycle_handler({**SWEEP_EVENT, "job": "notices"}, CONTEXT)  # only delivers: expires nothing

    statuses = {each.invitation_id: each.status for each in services.team.invitations(tenant.tenant_id)}
    assert statuses == {
        old.invitation.invitation_id: InvitationStatus.EXPIRED,
        young.invitation.invitation_id: InvitationStatus.PENDING,
    }
    assert services.team.seats(tenant) == (2, 5)
    with pytest.raises(InvalidInputError, match="expired"):
        services.team.accept(token_of(old), PASSWORD)
    # A week on, the sweep expires the second too.
    aws_backend.clock.advance(timedelta(days=7).total_seconds())
    lambdas.lifecycle_handler(SWEEP_EVENT, CONTEXT)
    assert services.team.invitations(tenant.tenant_id, pending_only=True) == []
    assert services.team.seats(tenant) == (1, 5)
