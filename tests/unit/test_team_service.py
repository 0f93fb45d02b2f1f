"""A tenant's team through `services.team` over the embedded backend with a ManualClock, mail
going to a real SMTP server: the invitation email (team, inviter, role; its kept copy without the
link), joining (a confirmed identity user with the tenant and the role, a users record, a sign-in
with the chosen password), a weak password and an expired link refused with nothing made, the
expiry sweep giving the seat back (also from the embedded worker's lifecycle sweep thread), one
member event per change, the repair trail, removal (identity user gone, users record disabled,
every session ended, seat back), the owner and the last admin kept, and the transfer of ownership."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest

from tenancy.background import background_threads
from tenancy.bootstrap import Services, build
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import EventType, Notice, NoticeKind
from tenancy.domain.members import InvitationStatus, Role, parse_invitation_token
from tenancy.domain.model import IdentityUserStatus, Tenant, Tokens, UserRecord, UserStatus
from tenancy.errors import (
    InvalidCredentialsError,
    InvalidInputError,
    InvalidTokenError,
    PasswordPolicyError,
    TransientError,
)
from tenancy.members.team import MEMBER_FINDING, Invited

from helpers import ManualClock, make_settings, pay, wait_until, work
from servers import MailCatcher

OWNER = "ada@example.com"
MEMBER = "bea@example.com"
PASSWORD = "Member-Passw0rd!"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 12, 7, 10, tzinfo=UTC))


@pytest.fixture
def services(tmp_path: Path, clock: ManualClock, smtp_server: tuple[MailCatcher, int]) -> Iterator[Services]:
    # A real mail server: only a delivered email's kept copy loses its secrets (the link).
    _, port = smtp_server
    settings = make_settings(
        tmp_path / "home",
        payfast_mode="offline",
        public_url="https://shop.example",
        smtp_url=f"smtp://127.0.0.1:{port}",
    )
    built = build(settings, clock=clock)
    yield built
    built.close()


@pytest.fixture
def tenant(services: Services) -> Tenant:
    """A provisioned Professional tenant (5 seats) bought once; its owner holds one seat."""
    transaction_id = pay(services, OWNER, plan="professional")
    work(services)
    found = services.tenants.get(tenant_id_for(transaction_id))
    assert found is not None
    return found


def current(services: Services, tenant: Tenant) -> Tenant:
    found = services.tenants.get(tenant.tenant_id)
    assert found is not None
    return found


def token_of(invited: Invited) -> str:
    return invited.link.rsplit("/join/", 1)[1]


def joined(services: Services, tenant: Tenant, email: str = MEMBER, role: Role = Role.EDITOR) -> UserRecord:
    """`email` invited by the owner and joined with PASSWORD."""
    return services.team.accept(token_of(services.team.invite(tenant, email, role, by=OWNER)), PASSWORD)


def sign_in(services: Services, email: str = MEMBER) -> Tokens:
    tokens = services.accounts.login(email, PASSWORD)
    assert isinstance(tokens, Tokens)
    return tokens


def member_events(services: Services, tenant: Tenant) -> list[tuple[str, str]]:
    """(event type, member email) of every member event queued for the tenant, sorted."""
    return sorted(
        (notice.body["type"], notice.body["data"]["email"])
        for notice in services.lifecycle.notices(limit=1000)
        if notice.kind is NoticeKind.EVENT
        and notice.tenant_id == tenant.tenant_id
        and notice.body["type"].startswith("member.")
    )


def bodies(message: Message) -> dict[str, str]:
    """The decoded text of each part of a delivered message, by content type."""
    return {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }


def trail(services: Services, tenant: Tenant) -> list[tuple[str, str, str]]:
    """(operator, action, outcome) of the tenant's team entries in the repair trail, oldest first."""
    return [
        (entry.operator, entry.actions[0], entry.outcome)
        for entry in services.trail.entries(tenant_id=tenant.tenant_id)
        if entry.finding == MEMBER_FINDING
    ]


# --- Inviting -----------------------------------------------------------------------------------


def test_the_invitation_email_names_the_team_the_inviter_and_the_role_and_only_the_sent_copy_has_the_link(
    services: Services, tenant: Tenant, smtp_server: tuple[MailCatcher, int]
) -> None:
    catcher, _ = smtp_server
    earlier = len(catcher.to(MEMBER))  # the server serves the whole module

    invited = services.team.invite(tenant, MEMBER, Role.EDITOR, by=OWNER)

    assert invited.link.startswith("https://shop.example/join/inv_")
    [sent] = catcher.to(MEMBER)[earlier:]
    # The invitee gets the link, in both parts.
    assert [invited.link in body for body in bodies(sent).values()] == [True, True]
    [kept] = services.mailer.outbox(MEMBER)
    assert kept.status == "delivered"
    assert kept.tags == {"kind": "invitation"}
    assert tenant.name in kept.subject
    assert f"{OWNER} invites you to join {tenant.name} on Site Builder as an editor" in kept.text
    assert "until 2026-12-14" in kept.text  # seven days
    # The kept copy (text and HTML) has no usable link: an outbox reader cannot join the team.
    assert invited.link not in kept.text
    assert "Open this link to accept and choose your password: [redacted]" in kept.text
    assert services.database is not None
    [row] = services.database.read("SELECT html_body FROM outbox WHERE message_id = ?", (kept.message_id,))
    assert invited.link not in row["html_body"]
    assert "[redacted]" in row["html_body"]
    # Nor does the store: only a hash of the link's secret.
    parsed = parse_invitation_token(token_of(invited))
    assert parsed is not None
    stored = services.team_store.get_invitation(parsed[0])
    assert stored is not None
    assert (stored.status, stored.email, stored.role) == (InvitationStatus.PENDING, MEMBER, Role.EDITOR)
    assert parsed[1] not in stored.secret_hash
    assert services.team.seats(tenant) == (2, 5)  # the owner and the pending invitation


# --- Joining ------------------------------------------------------------------------------------


def test_accepting_makes_a_confirmed_identity_user_and_a_users_record_and_the_member_signs_in(
    services: Services, tenant: Tenant
) -> None:
    invited = services.team.invite(tenant, MEMBER, Role.VIEWER, by=OWNER)

    user = services.team.accept(token_of(invited), PASSWORD)

    identity = services.identity.get_user(MEMBER)
    assert identity is not None
    assert (identity.status, identity.enabled) == (IdentityUserStatus.CONFIRMED, True)
    assert identity.attributes["custom:tenant_id"] == tenant.tenant_id
    assert identity.attributes["custom:roles"] == "viewer"
    assert services.users.get(identity.sub) == user
    assert (user.tenant_id, user.email, user.role, user.status) == (
        tenant.tenant_id,
        MEMBER,
        "viewer",
        UserStatus.ACTIVE,
    )
    # The chosen password signs in at once, with no new-password challenge, to the tenant.
    tokens = sign_in(services)
    signed_in_tenant, record = services.accounts.member_for_token(tokens.id_token)
    assert (signed_in_tenant.tenant_id, record.user_id, record.role) == (tenant.tenant_id, user.user_id, "viewer")
    with pytest.raises(InvalidCredentialsError):
        services.accounts.login(MEMBER, "Wrong-Passw0rd!")
    assert services.team.seats(tenant) == (2, 5)  # the invitation's seat is now the member's
    with pytest.raises(InvalidInputError, match="used already"):
        services.team.accept(token_of(invited), PASSWORD)


def test_a_weak_password_is_refused_and_nothing_is_made(services: Services, tenant: Tenant) -> None:
    invited = services.team.invite(tenant, MEMBER, Role.EDITOR, by=OWNER)

    with pytest.raises(PasswordPolicyError):
        services.team.accept(token_of(invited), "weak")

    assert services.identity.get_user(MEMBER) is None
    assert services.users.find_by_email(MEMBER) == []
    assert services.team.invitations(tenant.tenant_id)[0].status is InvitationStatus.PENDING
    # The link still works with a password that passes.
    assert services.team.accept(token_of(invited), PASSWORD).email == MEMBER


def test_an_expired_invitation_is_refused_and_the_expiry_sweep_closes_it_and_gives_its_seat_back(
    services: Services, tenant: Tenant, clock: ManualClock
) -> None:
    invited = services.team.invite(tenant, MEMBER, Role.EDITOR, by=OWNER)
    assert services.team.seats(tenant) == (2, 5)
    clock.advance(days=8)

    with pytest.raises(InvalidInputError, match="expired"):
        services.team.accept(token_of(invited), PASSWORD)
    assert services.identity.get_user(MEMBER) is None
    assert services.users.find_by_email(MEMBER) == []

    assert services.team.expire_due() == 1
    assert services.team.expire_due() == 0  # once

    [closed] = services.team.invitations(tenant.tenant_id)
    assert closed.status is InvitationStatus.EXPIRED
    assert services.team.seats(tenant) == (1, 5)
    with pytest.raises(InvalidInputError, match="expired"):
        services.team.accept(token_of(invited), PASSWORD)


def test_the_expiry_sweep_judges_invitations_at_the_time_it_is_given(
    services: Services, tenant: Tenant, clock: ManualClock
) -> None:
    services.team.invite(tenant, MEMBER, Role.EDITOR, by=OWNER)
    week_and_a_day = datetime.fromtimestamp(clock.now().timestamp() + 8 * 86400, UTC)

    assert services.team.expire_due(clock.now()) == 0
    assert services.team.expire_due(week_and_a_day) == 1

    [closed] = services.team.invitations(tenant.tenant_id)
    assert closed.status is InvitationStatus.EXPIRED
    assert closed.updated_at.startswith(week_and_a_day.strftime("%Y-%m-%dT%H:%M:%S"))
    assert services.team.seats(tenant) == (1, 5)


def test_an_invitation_within_its_seven_days_is_left_pending_by_the_sweep(
    services: Services, tenant: Tenant, clock: ManualClock
) -> None:
    services.team.invite(tenant, MEMBER, Role.EDITOR, by=OWNER)
    clock.advance(days=6, hours=23)

    assert services.team.expire_due() == 0
    assert services.team.invitations(tenant.tenant_id, pending_only=True)[0].email == MEMBER
    assert services.team.seats(tenant) == (2, 5)


def test_the_embedded_lifecycle_sweep_thread_expires_due_invitations(
    services: Services, tenant: Tenant, clock: ManualClock
) -> None:
    services.team.invite(tenant, MEMBER, Role.EDITOR, by=OWNER)
    clock.advance(days=8)
    stop = threading.Event()
    [sweep] = [thread for thread in background_threads(services, stop, workers=1) if thread.name == "lifecycle-sweep"]

    sweep.start()
    try:
        wait_until(
            lambda: services.team.seats(tenant) == (1, 5),
            timeout=10,
            message=lambda: f"the invitation to expire (seats {services.team.seats(tenant)})",
        )
    finally:
        stop.set()
        sweep.join(timeout=10)

    [closed] = services.team.invitations(tenant.tenant_id)
    assert closed.status is InvitationStatus.EXPIRED


# --- Events and the trail ----------------------------------------------------------------------


def test_each_change_queues_its_member_event_once(services: Services, tenant: Tenant, clock: ManualClock) -> None:
    user = joined(services, tenant)
    clock.advance(minutes=1)
    services.team.set_role(tenant, user.user_id, Role.VIEWER, by=OWNER)
    services.team.set_role(tenant, user.user_id, Role.VIEWER, by=OWNER)  # no change: no event
    clock.advance(minutes=1)
    services.team.remove(tenant, user.user_id, by=OWNER)

    assert member_events(services, tenant) == sorted(
        [
            (EventType.MEMBER_INVITED.value, MEMBER),
            (EventType.MEMBER_JOINED.value, MEMBER),
            (EventType.MEMBER_ROLE_CHANGED.value, MEMBER),
            (EventType.MEMBER_REMOVED.value, MEMBER),
        ]
    )
    [changed] = [
        notice
        for notice in services.lifecycle.notices(limit=1000)
        if notice.body.get("type") == EventType.MEMBER_ROLE_CHANGED.value
    ]
    assert changed.body["data"] == {"email": MEMBER, "role": "viewer", "previous_role": "editor"}


def throttle_the_next_notice(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store throttles the next notice queued (after the commit it belongs to), then recovers."""
    queue_notice = services.lifecycle.queue_notice
    failures = iter([TransientError("database busy while starting a transaction")])

    def throttled_once(notice: Notice) -> bool:
        for failure in failures:
            raise failure
        return queue_notice(notice)

    monkeypatch.setattr(services.lifecycle, "queue_notice", throttled_once)


def test_an_acceptance_whose_event_was_not_queued_queues_it_when_the_link_is_used_again(
    services: Services, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the soak (soak/members.py): the store throttled right after the acceptance's
    # commit, the request answered 503, and its retry told "used already": the Site Builder
    # application never heard of the member. The retry queues the event owed, once.
    token = token_of(services.team.invite(tenant, MEMBER, Role.EDITOR, by=OWNER))
    throttle_the_next_notice(services, monkeypatch)
    with pytest.raises(TransientError):
        services.team.accept(token, PASSWORD)
    assert (EventType.MEMBER_JOINED.value, MEMBER) not in member_events(services, tenant)
    assert [user.email for user in services.users.find_by_tenant(tenant.tenant_id)].count(MEMBER) == 1

    for _ in range(2):  # the retry, and a click on the link later
        with pytest.raises(InvalidInputError, match="used already"):
            services.team.accept(token, PASSWORD)
    assert member_events(services, tenant) == sorted(
        [(EventType.MEMBER_INVITED.value, MEMBER), (EventType.MEMBER_JOINED.value, MEMBER)]
    )
    with pytest.raises(InvalidInputError, match="not valid"):  # a wrong secret owes nothing, says nothing
        services.team.accept(token[:-4] + "AAAA", PASSWORD)


def test_an_invitation_whose_event_was_not_queued_queues_it_when_resent(
    services: Services, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the soak (soak/members.py): the store throttled after the invitation's commit and
    # its email, the request failed, asking again said "invited already", and the owner resent it:
    # the Site Builder application never heard of the invitation. The resend queues it, once.
    throttle_the_next_notice(services, monkeypatch)
    with pytest.raises(TransientError):
        services.team.invite(tenant, MEMBER, Role.EDITOR, by=OWNER)
    with pytest.raises(InvalidInputError, match="invited already"):
        services.team.invite(tenant, MEMBER, Role.EDITOR, by=OWNER)
    assert member_events(services, tenant) == []
    # The invitation was made: the trail says so, though its request failed.
    assert [entry.actions for entry in services.trail.entries(tenant_id=tenant.tenant_id)] == [
        (f"invite {MEMBER} as editor",)
    ]
    [pending] = services.team.invitations(tenant.tenant_id, pending_only=True)
    for _ in range(2):
        resent = services.team.resend(tenant, pending.invitation_id, by=OWNER)
    assert member_events(services, tenant) == [(EventType.MEMBER_INVITED.value, MEMBER)]
    services.team.accept(token_of(resent), PASSWORD)
    assert member_events(services, tenant) == sorted(
        [(EventType.MEMBER_INVITED.value, MEMBER), (EventType.MEMBER_JOINED.value, MEMBER)]
    )


def test_every_change_to_the_team_is_kept_in_the_repair_trail(
    services: Services, tenant: Tenant, clock: ManualClock
) -> None:
    user = joined(services, tenant, role=Role.TENANT_ADMIN)
    services.team.set_role(tenant, user.user_id, Role.EDITOR, by="alice")
    services.team.set_role(tenant, user.user_id, Role.TENANT_ADMIN, by="alice")
    services.team.transfer_ownership(tenant, user.user_id, by=OWNER)
    other = services.team.invite(tenant, "cy@example.com", Role.VIEWER, by=MEMBER)
    services.team.resend(current(services, tenant), other.invitation.invitation_id, by=MEMBER)
    services.team.revoke(current(services, tenant), other.invitation.invitation_id, by=MEMBER)
    owner = services.users.find_by_email(OWNER)[0]
    services.team.remove(current(services, tenant), owner.user_id, by="alice")

    assert trail(services, tenant) == [
        (OWNER, f"invite {MEMBER} as tenant_admin", "invited"),
        ("alice", f"set the role of {MEMBER} to editor", "role_changed"),
        ("alice", f"set the role of {MEMBER} to tenant_admin", "role_changed"),
        (OWNER, f"transfer ownership to {MEMBER}", "owner_changed"),
        (MEMBER, "invite cy@example.com as viewer", "invited"),
        (MEMBER, "resend the invitation of cy@example.com", "resent"),
        (MEMBER, "revoke the invitation of cy@example.com", "revoked"),
        ("alice", f"remove {OWNER}", "removed"),
    ]
    entries = services.trail.entries(tenant_id=tenant.tenant_id)
    demoted = next(entry for entry in entries if entry.outcome == "role_changed")
    assert (demoted.before, demoted.after) == ({"role": "tenant_admin"}, {"role": "editor"})


# --- Removing -----------------------------------------------------------------------------------


def test_removing_a_member_deletes_the_identity_user_disables_the_record_ends_every_session_and_frees_the_seat(
    services: Services, tenant: Tenant
) -> None:
    user = joined(services, tenant)
    tokens = sign_in(services)
    cookie = services.sessions.start_browser(services.identity.verify_id_token(tokens.id_token))
    api = services.sessions.start_api(tokens)
    assert services.sessions.browser_session(cookie) is not None
    assert services.team.seats(tenant) == (2, 5)

    removed = services.team.remove(tenant, user.user_id, by=OWNER)

    assert removed.status is UserStatus.DISABLED
    assert services.users.get(user.user_id) == removed
    assert services.identity.get_user(MEMBER) is None
    assert services.sessions.browser_session(cookie) is None
    for token in (cookie, api.refresh_token):
        stored = services.session_store.get(token.partition(".")[0])
        assert stored is not None
        assert stored.revoked_at is not None  # ended in the store, not only refused
    with pytest.raises(InvalidTokenError):
        services.sessions.refresh(api.refresh_token)
    with pytest.raises(InvalidTokenError):
        services.accounts.member_for_token(tokens.id_token)  # a token issued before is worth nothing
    assert services.team.seats(tenant) == (1, 5)
    assert [member.email for member in services.team.members(tenant.tenant_id)] == [OWNER, MEMBER]
    assert services.team.members(tenant.tenant_id)[1].status is UserStatus.DISABLED


def test_the_owner_cannot_be_removed(services: Services, tenant: Tenant) -> None:
    joined(services, tenant, role=Role.TENANT_ADMIN)  # another admin: the owner is still not removable
    owner = services.users.find_by_email(OWNER)[0]

    with pytest.raises(InvalidInputError, match="transfer ownership"):
        services.team.remove(tenant, owner.user_id, by="alice")

    assert services.users.get(owner.user_id) == owner
    assert services.identity.get_user(OWNER) is not None
    assert trail(services, tenant) == [(OWNER, f"invite {MEMBER} as tenant_admin", "invited")]


def test_the_owner_stays_a_tenant_admin_and_another_admin_can_be_demoted(services: Services, tenant: Tenant) -> None:
    owner = services.users.find_by_email(OWNER)[0]
    assert owner.role == "tenant_admin"

    with pytest.raises(InvalidInputError, match="the owner stays a tenant admin"):
        services.team.set_role(tenant, owner.user_id, Role.EDITOR, by="alice")

    assert services.users.get(owner.user_id) == owner
    identity = services.identity.get_user(OWNER)
    assert identity is not None
    assert identity.attributes["custom:roles"] == "tenant_admin"
    user = joined(services, tenant, role=Role.TENANT_ADMIN)
    assert services.team.set_role(tenant, user.user_id, Role.VIEWER, by="alice").role == "viewer"
    with pytest.raises(InvalidInputError, match="transfer ownership"):
        services.team.set_role(tenant, owner.user_id, Role.VIEWER, by="alice")


def test_a_role_change_reaches_the_identity_user_and_ends_the_old_tokens(services: Services, tenant: Tenant) -> None:
    user = joined(services, tenant)
    before = sign_in(services)

    services.team.set_role(tenant, user.user_id, Role.VIEWER, by=OWNER)

    identity = services.identity.get_user(MEMBER)
    assert identity is not None
    assert identity.attributes["custom:roles"] == "viewer"
    with pytest.raises(InvalidTokenError):
        services.accounts.member_for_token(before.id_token)  # it still says "editor"


# --- Ownership ----------------------------------------------------------------------------------


def test_transferring_ownership_changes_owner_user_id_to_a_tenant_admin_only(
    services: Services, tenant: Tenant
) -> None:
    editor = joined(services, tenant, email="ed@example.com", role=Role.EDITOR)
    admin = joined(services, tenant, role=Role.TENANT_ADMIN)

    with pytest.raises(InvalidInputError, match="not a tenant admin"):
        services.team.transfer_ownership(tenant, editor.user_id, by=OWNER)
    assert current(services, tenant).owner_user_id == tenant.owner_user_id

    moved = services.team.transfer_ownership(tenant, admin.user_id, by=OWNER)

    assert moved.owner_user_id == admin.user_id
    assert current(services, tenant).owner_user_id == admin.user_id
    entries = services.trail.entries(tenant_id=tenant.tenant_id)
    [entry] = [entry for entry in entries if entry.outcome == "owner_changed"]
    assert (entry.before, entry.after) == ({"owner_user_id": tenant.owner_user_id}, {"owner_user_id": admin.user_id})
    # The new owner cannot be removed; the old one, now a co-admin, can.
    with pytest.raises(InvalidInputError, match="owner cannot be removed"):
        services.team.remove(moved, admin.user_id, by="alice")
    assert services.team.remove(moved, tenant.owner_user_id, by="alice").status is UserStatus.DISABLED
