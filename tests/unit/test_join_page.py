"""The join page (`/join/<token>`, the invitation email's link) through the real app (TestClient
over the embedded backend, time on a ManualClock): what it shows the invitee, that choosing a
password joins the team and signs them in, and the page a used, withdrawn, expired, unknown or
refused link gets instead, saying what happened and what to do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.domain.members import InvitationStatus, Role
from tenancy.domain.model import Tenant, UserStatus
from tenancy.web.pages.security import SESSION_COOKIE

from helpers import ManualClock, make_settings
from page_client import buy_and_provision, csrf_token_in, page_client, signed_in_customer

OWNER = "ada@example.com"
INVITEE = "grace@example.com"
CHOSEN = "Joining-Passw0rd!"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def offline(tmp_path: Path, clock: ManualClock) -> Iterator[Services]:
    settings = make_settings(tmp_path / "home", payfast_mode="offline", public_url="https://shop.example")
    services = build(settings, clock=clock)
    yield services
    services.close()


@pytest.fixture
def owner_client(offline: Services) -> Iterator[TestClient]:
    with page_client(offline) as client:
        signed_in_customer(client, offline, OWNER)  # Professional: 5 seats
        yield client


@pytest.fixture
def invitee(offline: Services) -> Iterator[TestClient]:
    """The invitee's own browser: no cookies."""
    with page_client(offline) as client:
        yield client


def owners_tenant(services: Services) -> Tenant:
    [record] = services.users.find_by_email(OWNER)
    found = services.tenants.get(record.tenant_id)
    assert found is not None
    return found


def invite(services: Services, email: str = INVITEE, role: Role = Role.EDITOR) -> str:
    """Invites `email` as the owner would; the link's path, read from the email sent."""
    services.team.invite(owners_tenant(services), email, role, by=OWNER)
    match = re.search(r"https://shop\.example(/join/\S+)", services.mailer.outbox(email)[0].text)
    assert match, "the invitation email carries no join link"
    return match.group(1)


def join(client: TestClient, path: str, password: str = CHOSEN, repeated: str | None = None) -> tuple[int, str, str]:
    """Chooses the password on the join page; status, location and text of the answer."""
    token = csrf_token_in(client.get(path).text)
    form = {
        "csrf_token": token,
        "new_password": password,
        "confirm_password": password if repeated is None else repeated,
    }
    response = client.post(path, data=form, follow_redirects=False)
    return response.status_code, response.headers.get("location", ""), response.text


# --- The invitation, and joining ---


def test_the_join_page_says_who_invites_whom_to_which_team_as_what_until_when(
    offline: Services, owner_client: TestClient, invitee: TestClient, clock: ManualClock
) -> None:
    path = invite(offline, role=Role.VIEWER)
    team = owners_tenant(offline).name

    response = invitee.get(path)

    assert response.status_code == 200
    page = response.text
    assert f"{OWNER} invites you to join <strong>{team}</strong> on Site Builder as" in page
    assert '<strong id="join-role">Viewer</strong> (sees the sites, changes nothing)' in page
    assert f'id="join-email">{INVITEE}<' in page
    expires = clock.now() + timedelta(days=7)  # the link works 7 days from the invitation
    assert f'id="join-expires">{expires:%Y-%m-%d %H:%M} UTC<' in page
    # The site's password policy, stated as the new-password page states it.
    assert "At least 8 characters, with upper and lower case letters, a digit and a symbol." in page
    assert 'id="join-form"' in page
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in page  # fits a phone


def test_choosing_a_password_joins_the_team_and_signs_the_member_in(
    offline: Services, owner_client: TestClient, invitee: TestClient
) -> None:
    path = invite(offline)

    status, location, _ = join(invitee, path)

    assert (status, location) == (303, "/account?team=joined#team")
    [member] = offline.users.find_by_email(INVITEE)
    tenant = owners_tenant(offline)
    assert (member.tenant_id, member.role, member.status) == (tenant.tenant_id, "editor", UserStatus.ACTIVE)
    identity = offline.identity.get_user(INVITEE)
    assert identity is not None
    assert identity.attributes["custom:tenant_id"] == tenant.tenant_id
    [invitation] = offline.team.invitations(tenant.tenant_id)
    assert invitation.status is InvitationStatus.ACCEPTED
    # Signed in: the account page is the new member's, as an editor (no billing, no team forms).
    page = invitee.get(location).text
    assert "Welcome: you have joined the team." in page
    assert f"Sign out {INVITEE}" in page
    assert f"<h1>{tenant.name}</h1>" in page
    assert 'id="invite-form"' not in page
    assert 'id="cancel-form"' not in page
    # The password chosen is the member's from now on.
    assert offline.accounts.login(INVITEE, CHOSEN) is not None


def test_a_password_the_policy_refuses_says_every_problem_and_joins_no_one(
    offline: Services, owner_client: TestClient, invitee: TestClient
) -> None:
    path = invite(offline)

    status, _, page = join(invitee, path, password="short", repeated="other")

    assert status == 400
    assert "The password must have at least 8 characters, an uppercase letter, a number, a symbol" in page
    assert "The passwords do not match" in page
    assert offline.users.find_by_email(INVITEE) == []
    assert offline.identity.get_user(INVITEE) is None
    # The link still works: the invitee tries again.
    assert join(invitee, path)[0] == 303


def test_joining_on_a_browser_where_someone_else_is_signed_in_ends_their_session_first(
    offline: Services, owner_client: TestClient
) -> None:
    path = invite(offline)
    owners_cookie = owner_client.cookies.get(SESSION_COOKIE)

    page = owner_client.get(path).text
    status, location, _ = join(owner_client, path)

    assert f"You are signed in as {OWNER} on this browser." in page
    assert (status, location) == (303, "/account?team=joined#team")
    assert owners_cookie is not None
    assert offline.sessions.browser_session(owners_cookie) is None
    assert f"Sign out {INVITEE}" in owner_client.get("/account").text


# --- Links that cannot be used ---


def test_a_used_link_says_so_and_offers_sign_in(
    offline: Services, owner_client: TestClient, invitee: TestClient
) -> None:
    path = invite(offline)
    assert join(invitee, path)[0] == 303
    invitee.cookies.clear()

    response = invitee.get(path)
    status, _, posted = join_without_form(invitee, path)

    assert response.status_code == 410
    assert "<h1>This invitation was used already</h1>" in response.text
    assert "If it was you, sign in with your email and the password you chose." in response.text
    assert 'id="join-sign-in"' in response.text
    assert 'id="join-form"' not in response.text
    assert (status, "This invitation was used already" in posted) == (410, True)
    assert len(offline.users.find_by_email(INVITEE)) == 1


def join_without_form(client: TestClient, path: str) -> tuple[int, str, str]:
    """Posts a password to a link whose page shows no form (a tab left open, a replay)."""
    token = csrf_token_in(client.get("/auth/login").text)
    form = {"csrf_token": token, "new_password": CHOSEN, "confirm_password": CHOSEN}
    response = client.post(path, data=form, follow_redirects=False)
    return response.status_code, response.headers.get("location", ""), response.text


def test_a_withdrawn_link_says_an_admin_withdrew_it(
    offline: Services, owner_client: TestClient, invitee: TestClient
) -> None:
    path = invite(offline)
    tenant = owners_tenant(offline)
    [pending] = offline.team.invitations(tenant.tenant_id)
    offline.team.revoke(tenant, pending.invitation_id, by=OWNER)

    response = invitee.get(path)
    status, _, _ = join_without_form(invitee, path)

    assert response.status_code == 410
    assert "<h1>This invitation was withdrawn</h1>" in response.text
    assert "ask the person who invited you to invite you again" in response.text
    assert status == 410
    assert offline.identity.get_user(INVITEE) is None


def test_a_link_past_its_7_days_has_expired(
    offline: Services, owner_client: TestClient, invitee: TestClient, clock: ManualClock
) -> None:
    path = invite(offline)
    clock.advance(days=7, seconds=1)

    before_the_sweep = invitee.get(path)
    offline.team.expire_due()
    after_the_sweep = invitee.get(path)

    for response in (before_the_sweep, after_the_sweep):
        assert response.status_code == 410
        assert "<h1>This invitation has expired</h1>" in response.text
        assert "An invitation link works for 7 days" in response.text


def test_an_unknown_or_wrong_link_says_nothing_of_any_invitation(
    offline: Services, owner_client: TestClient, invitee: TestClient
) -> None:
    path = invite(offline)
    tenant = owners_tenant(offline)
    [pending] = offline.team.invitations(tenant.tenant_id)
    offline.team.revoke(tenant, pending.invitation_id, by=OWNER)
    # The right invitation id with another secret: it must not learn that the invitation was withdrawn.
    wrong_secret = path[: path.index(".") + 1] + "A" * 43

    for candidate in ("/join/nonsense", wrong_secret):
        response = invitee.get(candidate)
        assert response.status_code == 404
        assert "<h1>This invitation link does not work</h1>" in response.text
        assert "withdrew" not in response.text
        assert "ask the person who invited you to send it again" in response.text


def test_an_email_that_joined_another_account_since_it_was_invited_is_refused_on_the_page(
    offline: Services, owner_client: TestClient, invitee: TestClient
) -> None:
    path = invite(offline)
    with page_client(offline) as elsewhere:
        buy_and_provision(elsewhere, offline, INVITEE)  # the invitee buys a site of their own

    status, _, page = join(invitee, path)

    assert status == 400
    assert "<h1>You could not join this team</h1>" in page
    assert "already belongs to another Site Builder account" in page
    [record] = offline.users.find_by_email(INVITEE)
    assert record.tenant_id != owners_tenant(offline).tenant_id
