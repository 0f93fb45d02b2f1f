"""The account page's Team section, its forms, and the team on the pricing page and the console's
case page, through the real app (TestClient over the embedded backend, offline PayFast): what every
member sees; what a tenant admin's forms change (records, emails, sessions); the refusals shown on
the page; and that the right to manage (and to bill) is read from the users record, not the session
or a form field."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.domain.members import InvitationStatus, Role
from tenancy.domain.model import Tenant, Tokens, UserRecord, UserStatus
from tenancy.runbook.evidence import Selector

from helpers import make_settings
from page_client import buy_and_provision, csrf_token_in, page_client, sign_in, signed_in_customer

OWNER = "ada@example.com"
MEMBER = "grace@example.com"
MEMBER_PASSWORD = "Member-Passw0rd!"
OPERATOR = "ops@example.com"
OPERATOR_PASSWORD = "Operator-Passw0rd!"


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Services]:
    services = build(make_settings(tmp_path / "home", payfast_mode="offline", public_url="https://shop.example"))
    yield services
    services.close()


@pytest.fixture
def owner(offline: Services) -> Iterator[TestClient]:
    """The signed-in owner of a Professional subscription (5 seats)."""
    with page_client(offline) as client:
        signed_in_customer(client, offline, OWNER)
        yield client


def tenant_of(services: Services) -> Tenant:
    [record] = services.users.find_by_email(OWNER)
    found = services.tenants.get(record.tenant_id)
    assert found is not None
    return found


def joined(services: Services, email: str = MEMBER, role: Role = Role.EDITOR) -> UserRecord:
    """A member who accepted the owner's invitation and chose MEMBER_PASSWORD."""
    invited = services.team.invite(tenant_of(services), email, role, by=OWNER)
    return services.team.accept(invited.link.rsplit("/join/", 1)[1], MEMBER_PASSWORD)


@pytest.fixture
def member_client(offline: Services) -> Iterator[TestClient]:
    """A second browser, for a member to sign in with."""
    with page_client(offline) as client:
        yield client


def post(client: TestClient, path: str, **fields: str) -> tuple[int, str, str]:
    """Posts a form of the account page (its CSRF token included); status, location and text."""
    token = csrf_token_in(client.get("/account").text)
    response = client.post(path, data={"csrf_token": token, **fields}, follow_redirects=False)
    return response.status_code, response.headers.get("location", ""), response.text


def team_text(page: str) -> str:
    """The Team section's text, tags removed and spaces collapsed."""
    section = page.split('<section id="team"', 1)[1].split("</section>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section)).strip()


# --- What every member sees ---


def test_the_owner_sees_seats_held_themself_as_owner_and_every_form(owner: TestClient, offline: Services) -> None:
    page = owner.get("/account").text

    text = team_text(page)
    assert "1 of 5 seats held on your plan." in text
    assert f"{OWNER} Owner You Admin · Active · joined" in text
    # The owner signed in to see the page: the list says when, from the users record.
    [me] = offline.users.find_by_email(OWNER)
    assert me.last_sign_in_at is not None
    assert f"last sign-in {me.last_sign_in_at[:10]} {me.last_sign_in_at[11:16]} UTC" in text
    assert "No invitations waiting." in text
    assert 'id="invite-form"' in page
    assert 'id="transfer-none"' in page  # no other admin to hand the ownership to yet
    assert 'action="/account/team/members/' not in page  # nothing to change of the owner's own row


def test_inviting_from_the_form_sends_the_email_holds_a_seat_and_lists_the_invitation(
    owner: TestClient, offline: Services
) -> None:
    status, location, _ = post(owner, "/account/team/invite", email=MEMBER, role="viewer")

    assert (status, location) == (303, "/account?team=invited#team")
    tenant = tenant_of(offline)
    [invitation] = offline.team.invitations(tenant.tenant_id)
    assert (invitation.email, invitation.role, invitation.status) == (MEMBER, Role.VIEWER, InvitationStatus.PENDING)
    assert invitation.invited_by == OWNER
    [email] = offline.mailer.outbox(MEMBER)
    assert "https://shop.example/join/inv_" in email.text
    page = owner.get(location).text
    text = team_text(page)
    assert "Invitation sent." in text
    assert "2 of 5 seats held on your plan." in text
    assert f"{MEMBER} Viewer · link works until {invitation.expires_at[:10]} {invitation.expires_at[11:16]} UTC" in text
    assert f'action="/account/team/invitations/{invitation.invitation_id}/resend"' in page
    assert f'action="/account/team/invitations/{invitation.invitation_id}/revoke"' in page


def test_resend_mails_a_new_link_and_revoke_frees_the_seat(owner: TestClient, offline: Services) -> None:
    post(owner, "/account/team/invite", email=MEMBER, role="editor")
    tenant = tenant_of(offline)
    [invitation] = offline.team.invitations(tenant.tenant_id)
    first_link = offline.mailer.outbox(MEMBER)[0].text

    resent = post(owner, f"/account/team/invitations/{invitation.invitation_id}/resend")
    second_link = offline.mailer.outbox(MEMBER)[0].text
    revoked = post(owner, f"/account/team/invitations/{invitation.invitation_id}/revoke")

    assert resent[:2] == (303, "/account?team=resent#team")
    assert len(offline.mailer.outbox(MEMBER)) == 2
    assert first_link != second_link
    assert revoked[:2] == (303, "/account?team=revoked#team")
    [closed] = offline.team.invitations(tenant.tenant_id)
    assert closed.status is InvitationStatus.REVOKED
    text = team_text(owner.get(revoked[1]).text)
    assert "Invitation withdrawn" in text
    assert "1 of 5 seats held" in text
    assert "No invitations waiting." in text


def test_an_editor_sees_the_team_but_no_forms_and_no_billing_and_is_refused_server_side(
    owner: TestClient, offline: Services, member_client: TestClient
) -> None:
    joined(offline, role=Role.EDITOR)
    assert sign_in(member_client, MEMBER, MEMBER_PASSWORD).status_code == 303

    page = member_client.get("/account").text
    # A forged role field changes nothing: the right to invite is read from the users record.
    status, _, refused = post(member_client, "/account/team/invite", email="eve@example.com", role="tenant_admin")

    text = team_text(page)
    assert "2 of 5 seats held" in text
    assert f"{OWNER} Owner Admin · Active" in text
    assert f"{MEMBER} You Editor · Active" in text
    assert "An admin of your team invites people and changes roles: ask one of them." in text
    assert "<form" not in page.split('<section id="team"', 1)[1].split("</section>", 1)[0]
    assert 'id="cancel-form"' not in page
    assert "Your site's owner sees and changes its billing" in page
    assert status == 403
    assert "Only an admin of your team can change the team." in refused
    assert offline.mailer.outbox("eve@example.com") == []


def test_a_co_admin_gets_the_team_forms_and_billing_but_cannot_hand_the_ownership_on(
    owner: TestClient, offline: Services, member_client: TestClient
) -> None:
    owner_record = offline.users.find_by_email(OWNER)[0]
    joined(offline, role=Role.TENANT_ADMIN)
    assert sign_in(member_client, MEMBER, MEMBER_PASSWORD).status_code == 303

    page = member_client.get("/account").text
    status, _, _ = post(member_client, "/account/team/owner", user_id=offline.users.find_by_email(MEMBER)[0].user_id,
                        confirm="yes")  # fmt: skip

    assert 'id="invite-form"' in page
    assert 'id="cancel-form"' in page  # billing is for every tenant admin, not the owner alone
    assert 'id="change-plan-form"' in page
    assert 'id="transfer-heading"' not in page
    assert status == 403
    assert tenant_of(offline).owner_user_id == owner_record.user_id


def test_the_session_saying_tenant_admin_is_not_enough_when_the_users_record_says_editor(
    owner: TestClient, offline: Services, member_client: TestClient
) -> None:
    record = joined(offline, role=Role.TENANT_ADMIN)
    assert sign_in(member_client, MEMBER, MEMBER_PASSWORD).status_code == 303
    # The users record changed under a live session (by hand, or a change whose session-ending failed).
    offline.users.put(dataclasses.replace(record, role=Role.EDITOR.value))

    page = member_client.get("/account").text
    status, _, _ = post(member_client, "/account/billing/cancel", confirm="yes")
    invited = post(member_client, "/account/team/invite", email="eve@example.com", role="viewer")[0]

    assert 'id="invite-form"' not in page
    assert 'id="cancel-form"' not in page
    assert (status, invited) == (403, 403)



def test_the_pages_and_the_api_answer_alike_when_the_record_names_an_admin_the_session_does_not(
    owner: TestClient, offline: Services, member_client: TestClient
) -> None:
    record = joined(offline, role=Role.EDITOR)
    assert sign_in(member_client, MEMBER, MEMBER_PASSWORD).status_code == 303
    tokens = offline.accounts.login(MEMBER, MEMBER_PASSWORD)
    assert isinstance(tokens, Tokens)
    token = tokens.id_token
    # Made an admin by hand in the users table: the session's custom:roles still says editor.
    offline.users.put(dataclasses.replace(record, role=Role.TENANT_ADMIN.value))

    page = member_client.get("/account").text
    listed = member_client.get("/tenants/me/members", headers={"Authorization": f"Bearer {token}"})
    invited = member_client.post(
        "/tenants/me/members",
        json={"email": "eve@example.com", "role": "viewer"},
        headers={"Authorization": f"Bearer {token}"},
    )

    # One rule (domain.members.manages_team) for both: the users record's role.
    assert 'id="invite-form"' in page
    assert 'id="cancel-form"' in page
    assert listed.status_code == 200
    assert invited.status_code == 201
    pending = offline.team.invitations(record.tenant_id, pending_only=True)
    assert [(invitation.email, invitation.invited_by) for invitation in pending] == [("eve@example.com", MEMBER)]

# --- Roles, removal, ownership ---


def test_changing_a_role_updates_the_record_and_the_identity_user_and_signs_the_member_out(
    owner: TestClient, offline: Services, member_client: TestClient
) -> None:
    record = joined(offline, role=Role.VIEWER)
    assert sign_in(member_client, MEMBER, MEMBER_PASSWORD).status_code == 303

    status, location, _ = post(owner, f"/account/team/members/{record.user_id}/role", role="editor")

    assert (status, location) == (303, "/account?team=role_changed#team")
    changed = offline.users.get(record.user_id)
    identity = offline.identity.get_user(MEMBER)
    assert changed is not None
    assert identity is not None
    assert (changed.role, identity.attributes["custom:roles"]) == ("editor", "editor")
    assert f"{MEMBER} Editor · Active" in team_text(owner.get(location).text)
    # The old role was in the member's session: they sign in again to get the new one.
    response = member_client.get("/account", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/auth/login?next=/account")


def test_removing_a_member_disables_them_frees_the_seat_and_ends_their_session_at_once(
    owner: TestClient, offline: Services, member_client: TestClient
) -> None:
    record = joined(offline)
    assert sign_in(member_client, MEMBER, MEMBER_PASSWORD).status_code == 303
    assert member_client.get("/account", follow_redirects=False).status_code == 200

    status, location, _ = post(owner, f"/account/team/members/{record.user_id}/remove")

    assert (status, location) == (303, "/account?team=removed#team")
    removed = offline.users.get(record.user_id)
    assert removed is not None
    assert removed.status is UserStatus.DISABLED
    assert offline.identity.get_user(MEMBER) is None
    text = team_text(owner.get(location).text)
    assert "Member removed" in text
    assert "1 of 5 seats held" in text
    assert f"{MEMBER} Editor · Removed" in text
    response = member_client.get("/account", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/auth/login?next=/account")


def test_the_owner_hands_the_ownership_to_a_co_admin_and_stays_an_admin(owner: TestClient, offline: Services) -> None:
    record = joined(offline, role=Role.TENANT_ADMIN)

    page = owner.get("/account").text
    status, location, _ = post(owner, "/account/team/owner", user_id=record.user_id, confirm="yes")

    assert f'<option value="{record.user_id}">{MEMBER}</option>' in page
    assert (status, location) == (303, "/account?team=owner_changed#team")
    assert tenant_of(offline).owner_user_id == record.user_id
    after = owner.get(location).text
    text = team_text(after)
    assert f"{MEMBER} Owner Admin" in text
    assert f"{OWNER} You Admin · Active" in text
    assert 'id="transfer-heading"' not in after  # only the owner hands it on
    assert 'id="invite-form"' in after


def test_handing_the_ownership_on_needs_the_box_ticked(owner: TestClient, offline: Services) -> None:
    record = joined(offline, role=Role.TENANT_ADMIN)
    before = tenant_of(offline).owner_user_id

    status, _, page = post(owner, "/account/team/owner", user_id=record.user_id)

    assert status == 400
    assert "Ownership was not handed on: choose the admin to hand it to, tick the box to confirm" in page
    assert tenant_of(offline).owner_user_id == before


# --- Refusals, said on the page ---


def test_every_seat_held_hides_the_form_and_a_post_says_why_nobody_was_invited(
    owner: TestClient, offline: Services
) -> None:
    for number in range(4):
        assert post(owner, "/account/team/invite", email=f"person{number}@example.com", role="viewer")[0] == 303

    page = owner.get("/account").text
    status, _, refused = post(owner, "/account/team/invite", email="one.too.many@example.com", role="viewer")

    assert "5 of 5 seats held" in team_text(page)
    assert 'id="invite-form"' not in page
    assert 'id="seats-full"' in page
    assert status == 409
    assert "Nobody was invited: every seat of your plan is held (5 of 5" in refused
    assert "Remove a member, withdraw an invitation, or move to a plan with more seats." in refused
    assert offline.mailer.outbox("one.too.many@example.com") == []


def test_an_email_invited_already_or_of_another_account_is_refused_with_the_reason(
    owner: TestClient, offline: Services
) -> None:
    with page_client(offline) as elsewhere:
        buy_and_provision(elsewhere, offline, "other.owner@example.com")
    post(owner, "/account/team/invite", email=MEMBER, role="editor")

    twice = post(owner, "/account/team/invite", email=MEMBER, role="viewer")
    other = post(owner, "/account/team/invite", email="other.owner@example.com", role="editor")

    assert twice[0] == 400
    assert f"Nobody was invited: {MEMBER} is invited already: resend the invitation, or revoke it first." in twice[2]
    assert other[0] == 400
    assert "Nobody was invited: other.owner@example.com already belongs to another Site Builder account" in other[2]
    assert len(offline.team.invitations(tenant_of(offline).tenant_id)) == 1


def test_the_owner_cannot_make_themself_an_editor(owner: TestClient, offline: Services) -> None:
    [me] = offline.users.find_by_email(OWNER)

    status, _, page = post(owner, f"/account/team/members/{me.user_id}/role", role="editor")

    assert status == 400
    assert "The role was not changed: the owner stays a tenant admin" in page
    assert offline.users.find_by_email(OWNER)[0].role == "tenant_admin"


def test_an_admin_cannot_remove_themself_nor_a_member_of_another_tenant(owner: TestClient, offline: Services) -> None:
    [me] = offline.users.find_by_email(OWNER)
    with page_client(offline) as elsewhere:
        buy_and_provision(elsewhere, offline, "other.owner@example.com")
    [stranger] = offline.users.find_by_email("other.owner@example.com")

    myself = post(owner, f"/account/team/members/{me.user_id}/remove")
    theirs = post(owner, f"/account/team/members/{stranger.user_id}/remove")

    assert myself[0] == 400
    assert "you cannot remove yourself" in myself[2]
    assert theirs[0] == 404
    assert "The member was not removed: it is not in your team" in theirs[2]
    assert offline.users.get(stranger.user_id) == stranger


# --- Pricing and the console ---


def test_the_pricing_page_lists_the_seats_of_every_plan(offline: Services) -> None:
    with page_client(offline) as client:
        page = client.get("/pricing").text

    assert '<li id="seats-starter">1 seat for your team (you alone)</li>' in page
    assert '<li id="seats-professional">5 seats for your team</li>' in page
    assert '<li id="seats-enterprise">50 seats for your team</li>' in page


def test_the_case_page_lists_the_members_and_pending_invitations(owner: TestClient, offline: Services) -> None:
    record = joined(offline, role=Role.VIEWER)
    post(owner, "/account/team/invite", email="pending@example.com", role="editor")
    attributes = {"email": OPERATOR, "email_verified": "true", "custom:roles": "operator"}
    offline.identity.create_user(OPERATOR, attributes, "Temporary-Passw0rd!")
    offline.identity.set_password(OPERATOR, OPERATOR_PASSWORD, permanent=True)
    tenant = tenant_of(offline)
    [job] = offline.journal.find(email=OWNER)
    assert offline.runbook.diagnose(Selector(transaction_id=job.transaction_id)).tenant_id == tenant.tenant_id

    with page_client(offline) as operator:
        assert sign_in(operator, OPERATOR, OPERATOR_PASSWORD).status_code == 303
        page = operator.get(f"/ops/cases/{job.transaction_id}").text

    assert "3 of 5 seats held (members and pending invitations)." in page
    owner_row = row(page, f"member-{tenant.owner_user_id}")
    assert owner_row.startswith(f"{OWNER} tenant_admin active owner ")
    assert row(page, f"member-{record.user_id}").startswith(f"{MEMBER} viewer active ")
    [invitation] = offline.team.invitations(tenant.tenant_id, pending_only=True)
    assert row(page, f"invitation-{invitation.invitation_id}") == (
        f"pending@example.com editor {OWNER} {invitation.expires_at}"
    )


def row(page: str, row_id: str) -> str:
    """The text of the table row with `row_id`, tags removed and spaces collapsed."""
    match = re.search(rf'<tr [^>]*id="{re.escape(row_id)}">(.*?)</tr>', page, re.DOTALL)
    assert match, f"no row {row_id}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()
