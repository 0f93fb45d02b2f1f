"""Operators on the real embedded services: invited by email, signed in without a tenant, and
never mistaken for a tenant's owner."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from tenancy.bootstrap import Services, build
from tenancy.domain.model import (
    AuthChallenge,
    IdentityUserStatus,
    JobStatus,
    OutboxMessage,
    OutgoingEmail,
    TenantStatus,
    Tokens,
)
from tenancy.errors import InvalidInputError, InvalidTokenError, TenantNotFoundError, TransientError

from helpers import journal_job, make_settings

OPERATOR = "ops@example.com"
PASSWORD_LINE = re.compile(r"^Temporary password: (\S+)$", re.MULTILINE)
OWN_PASSWORD = "Own-Passw0rd!"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = build(make_settings(tmp_path / "home"))
    yield services
    services.close()


def _invitations(services: Services) -> list[OutboxMessage]:
    return [message for message in services.mailer.outbox() if message.tags.get("kind") == "operator_invite"]


def _password_in(message: OutboxMessage) -> str:
    [password] = PASSWORD_LINE.findall(message.text)
    return str(password)


def test_an_operator_is_created_without_a_tenant_and_invited_by_email(services: Services) -> None:
    invite = services.operators.add_operator("  Ops@Example.COM ")

    assert (invite.email, invite.created) == (OPERATOR, True)
    user = services.identity.get_user(OPERATOR)
    assert user is not None
    assert user.status is IdentityUserStatus.FORCE_CHANGE_PASSWORD
    assert user.tenant_id is None
    assert user.attributes == {
        "email": OPERATOR,
        "email_verified": "true",
        "custom:roles": "operator",
        "sub": user.sub,
    }
    [message] = _invitations(services)
    assert message.to == OPERATOR
    assert message.subject == "Your Tenancy operations console account"
    assert "Sign in: http://127.0.0.1:8000/auth/login" in message.text
    answer = services.identity.authenticate(OPERATOR, _password_in(message))
    assert isinstance(answer, AuthChallenge)


def test_adding_an_operator_again_sends_nothing(services: Services) -> None:
    services.operators.add_operator(OPERATOR)

    again = services.operators.add_operator(OPERATOR)

    assert (again.email, again.created) == (OPERATOR, False)
    assert len(_invitations(services)) == 1


def test_a_tenant_account_cannot_become_an_operator(services: Services) -> None:
    job = journal_job(services, "TXN-700001", "owner@example.com")
    services.saga.run(job)
    before = services.identity.get_user("owner@example.com")

    with pytest.raises(InvalidInputError) as refused:
        services.operators.add_operator("owner@example.com")

    assert str(refused.value) == "owner@example.com is a tenant account; an operator needs an account of its own"
    assert services.identity.get_user("owner@example.com") == before
    assert _invitations(services) == []


def test_a_tenantless_leftover_account_is_not_turned_into_an_operator(services: Services) -> None:
    # The saga adopts such a user as the next purchase's owner, so it is a tenant account.
    services.identity.create_user("left@example.com", {"email": "left@example.com"}, "Left-0ver-Pass!")

    with pytest.raises(InvalidInputError, match="is a tenant account"):
        services.operators.add_operator("left@example.com")


@pytest.mark.parametrize("email", ["", "not-an-email", "two@@example.com"])
def test_an_invalid_email_is_refused(services: Services, email: str) -> None:
    with pytest.raises(InvalidInputError, match="valid email"):
        services.operators.add_operator(email)
    assert services.mailer.outbox() == []


class _DownMailer:
    def send(self, email: OutgoingEmail) -> str:
        raise TransientError("mail server unreachable: ConnectionRefusedError")

    def outbox(self, to: str | None = None, limit: int = 100) -> Sequence[OutboxMessage]:
        return []


def test_an_invitation_that_cannot_be_sent_leaves_no_account_behind(services: Services) -> None:
    down = replace(services, mailer=_DownMailer())  # type: ignore[arg-type]

    with pytest.raises(TransientError):
        down.operators.add_operator(OPERATOR)

    assert services.identity.get_user(OPERATOR) is None
    assert services.operators.add_operator(OPERATOR).created


def test_an_operator_signs_in_without_a_tenant(services: Services) -> None:
    services.operators.add_operator(OPERATOR)
    temporary = _password_in(_invitations(services)[0])

    challenge = services.accounts.login(OPERATOR, temporary)
    assert isinstance(challenge, AuthChallenge)
    assert challenge.challenge == "NEW_PASSWORD_REQUIRED"
    first = services.accounts.complete_new_password(OPERATOR, challenge.session, OWN_PASSWORD)
    tokens = services.accounts.login(OPERATOR, OWN_PASSWORD)

    assert isinstance(tokens, Tokens)
    for issued in (first, tokens):
        claims = services.identity.verify_id_token(issued.id_token)
        assert claims["custom:roles"] == "operator"
        assert "custom:tenant_id" not in claims
    with pytest.raises(InvalidTokenError):
        services.accounts.tenant_for_token(tokens.id_token)


def test_a_tenant_admin_without_an_active_tenant_is_still_tenant_not_found(services: Services) -> None:
    attributes = {"email": "owner@example.com", "custom:tenant_id": "ten_gone", "custom:roles": "tenant_admin"}
    services.identity.create_user("owner@example.com", attributes, "Temp-Passw0rd!")
    services.identity.set_password("owner@example.com", OWN_PASSWORD, permanent=True)

    with pytest.raises(TenantNotFoundError):
        services.accounts.login("owner@example.com", OWN_PASSWORD)


def test_a_purchase_with_an_operators_email_needs_review_and_leaves_the_operator_alone(services: Services) -> None:
    services.operators.add_operator(OPERATOR)
    before = services.identity.get_user(OPERATOR)
    job = journal_job(services, "TXN-700002", OPERATOR)

    outcome = services.saga.run(job)

    assert outcome.status is JobStatus.NEEDS_REVIEW
    assert outcome.review_reason is not None
    assert "operator" in outcome.review_reason
    assert services.identity.get_user(OPERATOR) == before
    assert services.users.find_by_email(OPERATOR) == []
    tenant = services.tenants.get(job.tenant_id)
    assert tenant is None or tenant.status is not TenantStatus.ACTIVE
    assert [message.subject for message in services.mailer.outbox(OPERATOR)] == [
        "Your Tenancy operations console account"
    ]
