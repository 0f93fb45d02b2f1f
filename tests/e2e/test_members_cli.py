"""`tenancy members list|add|remove|set-role` as an operator runs them, against an embedded home
with one professional subscriber (5 seats) bought through the intake and the worker: output
(human and JSON), exit codes (1: refused or not found, 2: bad usage), what changes and what a
`--dry-run` or an unconfirmed change leaves alone, the invitation email, the seats, and the repair
trail's entry for each change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenancy.bootstrap import Services, build
from tenancy.config import PayfastMode
from tenancy.domain.members import InvitationStatus, Role
from tenancy.domain.model import Tenant, UserRecord, UserStatus
from tenancy.members.team import MEMBER_FINDING

from helpers import make_settings
from purchases import SUBSCRIBED_EMAIL as OWNER
from purchases import SUBSCRIBED_TENANT_ID as TENANT_ID
from purchases import subscribe_offline
from servers import cli_env, tenancy

MEMBER = "bea@example.com"
PASSWORD = "Member-Passw0rd!"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    # A home per test: each test's seats and trail start from the owner alone.
    home = tmp_path / "members-cli-home"
    subscribe_offline(home)
    return home


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return cli_env(home, TENANCY_PAYFAST_MODE="offline")


@pytest.fixture
def services(home: Path) -> Iterator[Services]:
    """The home's stores, as the CLI opens them."""
    opened = build(make_settings(home, payfast_mode=PayfastMode.OFFLINE))
    yield opened
    opened.close()


def tenant(services: Services) -> Tenant:
    found = services.tenants.get(TENANT_ID)
    assert found is not None
    return found


def joined(services: Services, email: str = MEMBER, role: Role = Role.EDITOR) -> UserRecord:
    """`email` invited by the owner and joined (the invitee's part, which no CLI command plays)."""
    invited = services.team.invite(tenant(services), email, role, by=OWNER)
    return services.team.accept(invited.link.rsplit("/join/", 1)[1], PASSWORD)


def trail(services: Services) -> list[tuple[str, str, str]]:
    return [
        (entry.operator, entry.actions[0], entry.outcome)
        for entry in services.trail.entries(tenant_id=TENANT_ID)
        if entry.finding == MEMBER_FINDING
    ]


def invitation_emails(services: Services, address: str) -> list[str]:
    return [mail.text for mail in services.mailer.outbox(address) if mail.tags.get("kind") == "invitation"]


# --- list ---------------------------------------------------------------------------------------


def test_list_shows_members_with_role_status_and_owner_the_pending_invitations_and_the_seats(
    env: dict[str, str], services: Services
) -> None:
    member = joined(services)
    pending = services.team.invite(tenant(services), "cy@example.com", Role.VIEWER, by=OWNER)

    human = tenancy(env, "members", "list", OWNER)
    as_json = tenancy(env, "members", "list", TENANT_ID, "--json")

    assert human.returncode == 0, human.stderr
    header, *people, invited = human.stdout.splitlines()
    assert header == f"{TENANT_ID} ({tenant(services).name}), plan professional: 3 of 5 seats held"
    # Members who joined in the same second may come in either order.
    assert sorted(people) == [
        f"  {MEMBER}  editor  active  never signed in",
        f"  {OWNER}  tenant_admin  active  owner  never signed in",
    ]
    assert invited == f"  cy@example.com  viewer  invited (until {pending.invitation.expires_at})"
    assert as_json.returncode == 0, as_json.stderr
    document: dict[str, Any] = json.loads(as_json.stdout)
    assert document["tenant_id"] == TENANT_ID
    assert document["seats"] == {"used": 3, "limit": 5}
    people_json = sorted(
        (each["email"], each["role"], each["status"], each["owner"], each["last_sign_in_at"])
        for each in document["members"]
    )
    assert people_json == [
        (MEMBER, "editor", "active", False, None),
        (OWNER, "tenant_admin", "active", True, None),
    ]
    [bea] = [each for each in document["members"] if each["email"] == MEMBER]
    assert (bea["user_id"], bea["joined_at"]) == (member.user_id, member.created_at)
    assert document["invitations"] == [
        {
            "invitation_id": pending.invitation.invitation_id,
            "email": "cy@example.com",
            "role": "viewer",
            "expires_at": pending.invitation.expires_at,
        }
    ]
    # The link is a secret of the invitee's inbox: never printed.
    assert pending.link not in human.stdout + as_json.stdout


def test_list_of_an_unknown_tenant_exits_1(env: dict[str, str]) -> None:
    result = tenancy(env, "members", "list", "ten_nosuchtenant00")

    assert result.returncode == 1
    assert "no tenant ten_nosuchtenant00" in result.stderr
    assert "Traceback" not in result.stderr


# --- add ----------------------------------------------------------------------------------------


def test_add_with_dry_run_says_what_it_would_do_and_changes_nothing(env: dict[str, str], services: Services) -> None:
    result = tenancy(env, "members", "add", OWNER, MEMBER, "viewer", "--dry-run", "--operator", "alice")

    assert result.returncode == 0, result.stderr
    assert f"would invite {MEMBER} to {TENANT_ID} as viewer (1 of 5 seats held)" in result.stdout
    assert services.team.invitations(TENANT_ID) == []
    assert invitation_emails(services, MEMBER) == []
    assert services.team.seats(tenant(services)) == (1, 5)
    assert trail(services) == []


def test_add_unconfirmed_changes_nothing(env: dict[str, str], services: Services) -> None:
    # No --yes and no one at the terminal to answer: the question goes unanswered.
    result = tenancy(env, "members", "add", OWNER, MEMBER, "viewer")

    assert result.returncode == 1
    assert services.team.invitations(TENANT_ID) == []
    assert invitation_emails(services, MEMBER) == []
    assert trail(services) == []


def test_add_with_yes_sends_the_invitation_holds_a_seat_and_is_kept_in_the_trail(
    env: dict[str, str], services: Services
) -> None:
    result = tenancy(env, "members", "add", OWNER, "Bea@Example.com", "viewer", "--yes", "--operator", "alice")

    assert result.returncode == 0, result.stderr
    [invitation] = services.team.invitations(TENANT_ID)
    assert (invitation.email, invitation.role, invitation.status) == (MEMBER, Role.VIEWER, InvitationStatus.PENDING)
    assert invitation.invited_by == "alice"
    assert result.stdout.strip() == f"invited {MEMBER} as viewer; the link works until {invitation.expires_at}"
    [email] = invitation_emails(services, MEMBER)
    assert f"alice invites you to join {tenant(services).name} on Site Builder as a viewer" in email
    assert f"/join/{invitation.invitation_id}." in email  # no SMTP here: the outbox is the inbox
    assert "/join/" not in result.stdout  # the link is for the invitee alone
    assert services.team.seats(tenant(services)) == (2, 5)
    assert trail(services) == [("alice", f"invite {MEMBER} as viewer", "invited")]


def test_add_is_refused_with_exit_1_for_a_member_and_when_every_seat_is_held(
    env: dict[str, str], services: Services
) -> None:
    joined(services)
    for number in range(3):  # the owner, the member and three invitations: all 5 seats
        services.team.invite(tenant(services), f"guest{number}@example.com", Role.VIEWER, by=OWNER)

    member = tenancy(env, "members", "add", OWNER, MEMBER, "editor", "--yes")
    full = tenancy(env, "members", "add", OWNER, "late@example.com", "editor", "--yes")

    assert member.returncode == 1
    assert f"{MEMBER} is a member of this team already" in member.stderr
    assert full.returncode == 1
    assert "every seat is taken: the plan has 5" in full.stderr
    assert "Traceback" not in member.stderr + full.stderr
    assert invitation_emails(services, "late@example.com") == []
    assert services.team.seats(tenant(services)) == (5, 5)


def test_a_bad_role_exits_2_and_changes_nothing(env: dict[str, str], services: Services) -> None:
    joined(services)

    add = tenancy(env, "members", "add", OWNER, "cy@example.com", "owner", "--yes")
    set_role = tenancy(env, "members", "set-role", OWNER, MEMBER, "superuser", "--yes")

    for result in (add, set_role):
        assert result.returncode == 2
        assert "unknown role" in result.stderr
        assert "tenant_admin, editor, viewer" in result.stderr
    assert [each.email for each in services.team.invitations(TENANT_ID, pending_only=True)] == []
    assert services.users.find_by_email(MEMBER)[0].role == "editor"
    assert trail(services) == [(OWNER, f"invite {MEMBER} as editor", "invited")]


# --- set-role -----------------------------------------------------------------------------------


def test_set_role_changes_the_record_and_the_identity_user_and_is_kept_in_the_trail(
    env: dict[str, str], services: Services
) -> None:
    member = joined(services)

    dry = tenancy(env, "members", "set-role", OWNER, MEMBER, "viewer", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would set the role of {MEMBER} from editor to viewer" in dry.stdout
    assert services.users.get(member.user_id) == member

    result = tenancy(env, "members", "set-role", TENANT_ID, MEMBER, "viewer", "--yes", "--operator", "alice")

    assert result.returncode == 0, result.stderr
    assert f"{MEMBER} is now viewer" in result.stdout
    changed = services.users.get(member.user_id)
    assert changed is not None
    assert changed.role == "viewer"
    identity = services.identity.get_user(MEMBER)
    assert identity is not None
    assert identity.attributes["custom:roles"] == "viewer"
    assert trail(services)[-1] == ("alice", f"set the role of {MEMBER} to viewer", "role_changed")


def test_set_role_refuses_to_demote_the_owner_with_exit_1(env: dict[str, str], services: Services) -> None:
    result = tenancy(env, "members", "set-role", OWNER, OWNER, "editor", "--yes", "--operator", "alice")

    assert result.returncode == 1
    assert "the owner stays a tenant admin: transfer ownership" in result.stderr
    assert services.users.find_by_email(OWNER)[0].role == "tenant_admin"
    assert trail(services) == []


# --- remove -------------------------------------------------------------------------------------


def test_remove_ends_the_members_access_gives_the_seat_back_and_is_kept_in_the_trail(
    env: dict[str, str], services: Services
) -> None:
    member = joined(services)
    assert services.team.seats(tenant(services)) == (2, 5)

    dry = tenancy(env, "members", "remove", OWNER, MEMBER, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {MEMBER} (editor) from {TENANT_ID}" in dry.stdout
    assert services.identity.get_user(MEMBER) is not None

    result = tenancy(env, "members", "remove", OWNER, MEMBER, "--yes", "--operator", "alice")

    assert result.returncode == 0, result.stderr
    assert f"removed {MEMBER} from {TENANT_ID}" in result.stdout
    removed = services.users.get(member.user_id)
    assert removed is not None
    assert removed.status is UserStatus.DISABLED
    assert services.identity.get_user(MEMBER) is None
    assert services.team.seats(tenant(services)) == (1, 5)
    assert trail(services)[-1] == ("alice", f"remove {MEMBER}", "removed")

    again = tenancy(env, "members", "remove", OWNER, MEMBER, "--yes", "--operator", "alice")

    assert again.returncode == 1
    assert f"{MEMBER} was removed already" in again.stderr
    assert trail(services)[-1] == ("alice", f"remove {MEMBER}", "removed")
    assert len([entry for entry in trail(services) if entry[2] == "removed"]) == 1


def test_remove_refuses_the_owner_with_exit_1(env: dict[str, str], services: Services) -> None:
    result = tenancy(env, "members", "remove", OWNER, OWNER, "--yes")

    assert result.returncode == 1
    assert "the owner cannot be removed" in result.stderr
    assert services.identity.get_user(OWNER) is not None
    assert services.users.find_by_email(OWNER)[0].status is UserStatus.ACTIVE
    assert trail(services) == []


def test_an_email_that_is_not_a_member_exits_1_for_remove_and_set_role(env: dict[str, str], services: Services) -> None:
    remove = tenancy(env, "members", "remove", OWNER, "nobody@example.com", "--yes")
    set_role = tenancy(env, "members", "set-role", OWNER, "nobody@example.com", "viewer", "--yes")

    for result in (remove, set_role):
        assert result.returncode == 1
        assert f"nobody@example.com is not a member of {TENANT_ID}" in result.stderr
        assert "Traceback" not in result.stderr
    assert trail(services) == []


def test_remove_finishes_a_removal_interrupted_before_the_identity_user_went(
    env: dict[str, str], services: Services
) -> None:
    member = joined(services)
    # The users record was disabled (seat given back), then the run stopped: the identity user is left.
    assert services.team_store.remove_member(member)
    assert services.identity.get_user(MEMBER) is not None

    result = tenancy(env, "members", "remove", OWNER, MEMBER, "--yes", "--operator", "alice")

    assert result.returncode == 0, result.stderr
    assert services.identity.get_user(MEMBER) is None
    assert services.team.seats(tenant(services)) == (1, 5)  # given back once, not twice
    assert trail(services)[-1] == ("alice", f"remove {MEMBER}", "removed")
