"""A tenant's team: invitations (a single-use link by email, seven days, revocable, re-sendable),
joining (the identity user and the users record made, the password chosen), roles, removal
(identity user disabled, sessions ended, users record disabled, identity user deleted), and the
transfer of ownership. Seats are taken and given back by the store's conditional writes; every
change is kept in the repair trail and told to the Site Builder application as a member event."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from tenancy.accounts.roles import OPERATOR_ROLE, ROLES_CLAIM, roles_of
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import normalize_email, temporary_password
from tenancy.domain.lifecycle import EventType, event_notice, new_event
from tenancy.domain.members import (
    INVITATION_LIFETIME,
    Invitation,
    InvitationStatus,
    Role,
    invitation_secret_hash,
    new_invitation_link_parts,
    parse_invitation_token,
    secret_matches,
)
from tenancy.domain.model import IdentityUser, RepairRecord, Tenant, UserRecord, UserStatus
from tenancy.domain.passwords import password_policy_failures
from tenancy.domain.plans import PlanCatalogue
from tenancy.errors import (
    ConflictError,
    InvalidInputError,
    ItemAlreadyExistsError,
    NotFoundError,
    PasswordPolicyError,
    PermanentError,
    TransientError,
)
from tenancy.lifecycle.notices import NoticeDispatcher
from tenancy.members.mail import TeamMail
from tenancy.payments.intake import looks_like_email
from tenancy.ports import (
    Clock,
    IdentityProvider,
    LifecycleStore,
    Mailer,
    RepairTrail,
    TeamStore,
    TenantStore,
    UserStore,
)

__all__ = ["Invited", "TeamService"]

log = structlog.get_logger(__name__)

MEMBER_FINDING = "team_member"  # the repair trail's name for a change to a tenant's team


@dataclass(frozen=True, slots=True)
class Invited:
    invitation: Invitation
    link: str  # the single-use link, shown to no one but the invitee's inbox


class TeamService:
    def __init__(
        self,
        *,
        tenants: TenantStore,
        users: UserStore,
        team: TeamStore,
        identity: IdentityProvider,
        plans: PlanCatalogue,
        lifecycle: LifecycleStore,
        notices: NoticeDispatcher,
        trail: RepairTrail,
        mail: TeamMail,
        mailer: Mailer,
        clock: Clock,
        end_sessions: Callable[[str, str], object],
    ) -> None:
        self._tenants = tenants
        self._users = users
        self._team = team
        self._identity = identity
        self._plans = plans
        self._lifecycle = lifecycle
        self._notices = notices
        self._trail = trail
        self._mail = mail
        self._mailer = mailer
        self._clock = clock
        self._end_sessions = end_sessions

    # --- Reading ---

    def members(self, tenant_id: str) -> list[UserRecord]:
        """The tenant's people, active first, then by when they joined."""
        people = self._users.find_by_tenant(tenant_id)
        return sorted(people, key=lambda user: (user.status is not UserStatus.ACTIVE, user.created_at))

    def invitations(self, tenant_id: str, *, pending_only: bool = False) -> list[Invitation]:
        found = self._team.invitations(tenant_id)
        return [each for each in found if each.status is InvitationStatus.PENDING] if pending_only else found

    def seats(self, tenant: Tenant) -> tuple[int, int]:
        """(seats used, seats the plan has): members and pending invitations hold one each."""
        return self._team.seats_used(tenant.tenant_id), self._plans.get(tenant.plan).max_users

    def member(self, tenant_id: str, user_id: str) -> UserRecord:
        user = self._users.get(user_id)
        if user is None or user.tenant_id != tenant_id:
            raise NotFoundError(f"no member {user_id} in tenant {tenant_id}")
        return user

    # --- Invitations ---

    def invite(self, tenant: Tenant, email: str, role: Role, *, by: str) -> Invited:
        """Invites `email` as `role`, holding a seat: InvalidInputError (saying why) for an email
        that is a member already, belongs to another tenant or an operator, or is invited
        already; SeatsTakenError when every seat is held. An invitation the mail server will not
        take is withdrawn (its seat given back): InvalidInputError when it refuses the address,
        TransientError when it cannot be reached."""
        address = normalize_email(email)
        # The shape every owner's address has (PayFast's checkout takes no other): one @, a
        # dotted domain, no spaces. Else a seat is held, and an email sent, for no one.
        if not looks_like_email(address):
            raise InvalidInputError(f"{email!r} is not an email address: check it and try again")
        self._refuse_taken(tenant, address)
        invitation_id, secret = new_invitation_link_parts()
        now = self._clock.now()
        at = format_timestamp(now)
        invitation = Invitation(
            invitation_id=invitation_id,
            tenant_id=tenant.tenant_id,
            email=address,
            role=role,
            secret_hash=invitation_secret_hash(secret),
            status=InvitationStatus.PENDING,
            invited_by=by,
            created_at=at,
            expires_at=format_timestamp(now + INVITATION_LIFETIME),
            updated_at=at,
        )
        try:
            self._team.invite(invitation, self._plans.get(tenant.plan).max_users)
        except ItemAlreadyExistsError:
            raise InvalidInputError(
                f"{address} is invited already: resend the invitation, or revoke it first"
            ) from None
        try:
            link = self._send_invitation(tenant, invitation, secret)
        except (TransientError, PermanentError) as failure:
            # Unsent, it would hold a seat for no one, and asking again would be "invited already".
            self._team.close_invitation(invitation_id, InvitationStatus.REVOKED, format_timestamp(self._clock.now()))
            log.warning(
                "invitation_not_sent", tenant_id=tenant.tenant_id, invitation_id=invitation_id, error=str(failure)
            )
            if isinstance(failure, PermanentError):
                raise InvalidInputError(
                    f"the invitation to {address} could not be delivered ({failure}): check the address"
                ) from None
            raise
        # The trail first: the change is made (the invitation kept, its email sent); a busy store
        # while queueing the event fails the request, and the resend the owner then makes queues
        # the event owed, but nothing would write this entry again.
        self._record(tenant, by, f"invite {address} as {role.value}", {}, {"invitation": invitation_id}, "invited")
        self._event(tenant, EventType.MEMBER_INVITED, f"invited:{invitation_id}", email=address, role=role.value)
        log.info("member_invited", tenant_id=tenant.tenant_id, invitation_id=invitation_id, role=role.value)
        return Invited(invitation, link)

    def resend(self, tenant: Tenant, invitation_id: str, *, by: str) -> Invited:
        """A new link (the old one stops working) and seven days from now; the member-invited
        event queued if it was not."""
        invitation = self._pending(tenant.tenant_id, invitation_id)
        _, secret = new_invitation_link_parts()
        now = self._clock.now()
        expires_at = format_timestamp(now + INVITATION_LIFETIME)
        if not self._team.renew_invitation(
            invitation_id, invitation_secret_hash(secret), expires_at, format_timestamp(now)
        ):
            raise InvalidInputError(f"invitation {invitation_id} is no longer pending")
        renewed = self._team.get_invitation(invitation_id)
        assert renewed is not None
        link = self._send_invitation(tenant, renewed, secret)
        # Owed if the invitation's own request failed after its commit (a throttled store: asking
        # again says "invited already", and the owner resends); queued once, whatever the case.
        self._event(
            tenant, EventType.MEMBER_INVITED, f"invited:{invitation_id}", email=renewed.email, role=renewed.role.value
        )
        self._record(
            tenant, by, f"resend the invitation of {invitation.email}", {}, {"invitation": invitation_id}, "resent"
        )
        return Invited(renewed, link)

    def revoke(self, tenant: Tenant, invitation_id: str, *, by: str) -> Invitation:
        """Ends a pending invitation (its link stops working) and gives its seat back."""
        invitation = self._pending(tenant.tenant_id, invitation_id)
        if not self._team.close_invitation(
            invitation_id, InvitationStatus.REVOKED, format_timestamp(self._clock.now())
        ):
            raise InvalidInputError(f"invitation {invitation_id} is no longer pending")
        self._record(
            tenant, by, f"revoke the invitation of {invitation.email}", {}, {"invitation": invitation_id}, "revoked"
        )
        log.info("invitation_revoked", tenant_id=tenant.tenant_id, invitation_id=invitation_id)
        return invitation

    def expire_due(self, at: datetime | None = None) -> int:
        """Closes every pending invitation past its seven days at `at` (default now), giving its
        seat back (the sweep; `lifecycle run --as-of` judges them at its own time)."""
        now = format_timestamp(at if at is not None else self._clock.now())
        expired = 0
        for invitation in self._team.expired(now):
            expired += self._team.close_invitation(invitation.invitation_id, InvitationStatus.EXPIRED, now)
        return expired

    def invitation_for(self, token: str) -> tuple[Invitation, Tenant]:
        """The usable invitation a link names, with its tenant; InvalidInputError saying why not
        (unknown, used, revoked, expired) without telling which secret was wrong."""
        parsed = parse_invitation_token(token)
        invitation = self._team.get_invitation(parsed[0]) if parsed else None
        if parsed is None or invitation is None or not secret_matches(invitation, parsed[1]):
            raise InvalidInputError("This invitation link is not valid. Ask for a new invitation.")
        now = format_timestamp(self._clock.now())
        if invitation.status is InvitationStatus.ACCEPTED:
            raise InvalidInputError("This invitation was used already. Sign in instead.")
        if invitation.status is InvitationStatus.REVOKED:
            raise InvalidInputError("This invitation was withdrawn. Ask the person who invited you.")
        # A team that cannot take members is said first: "ask for a new one" would be no help.
        tenant = self._tenants.get(invitation.tenant_id)
        if tenant is None or not tenant.status.has_access:
            raise InvalidInputError("This team cannot take new members now. Ask the person who invited you.")
        if invitation.status is InvitationStatus.EXPIRED or invitation.expires_at <= now:
            raise InvalidInputError("This invitation has expired. Ask for a new one.")
        return invitation, tenant

    def accept(self, token: str, password: str) -> UserRecord:
        """Joins the tenant the link invites to: the identity user (with the password chosen)
        and the users record, once. PasswordPolicyError for a weak password; InvalidInputError
        for a link that cannot be used."""
        try:
            invitation, tenant = self.invitation_for(token)
        except InvalidInputError:
            self._joined_event_owed(token)
            raise
        # The embedded identity provider's set_password takes any password (Cognito's checks
        # it): the policy is checked here, before anything is made, on both backends.
        failures = password_policy_failures(password)
        if failures:
            raise PasswordPolicyError("Password must have " + ", ".join(failures))
        self._refuse_taken(tenant, invitation.email, invited=invitation)
        identity = self._member_identity(tenant, invitation)
        self._identity.set_password(invitation.email, password, permanent=True)
        at = format_timestamp(self._clock.now())
        user = UserRecord(
            identity.sub, tenant.tenant_id, invitation.email, invitation.role.value, UserStatus.ACTIVE, at
        )
        try:
            accepted = self._team.accept(invitation.invitation_id, user, at)
        except ItemAlreadyExistsError:  # a second click of the link, a moment after the first
            accepted = False
        if not accepted:
            self._joined_event_owed(token)
            raise InvalidInputError("This invitation can no longer be used. Ask for a new one.")
        self._event(
            tenant, EventType.MEMBER_JOINED, f"joined:{invitation.invitation_id}", email=user.email, role=user.role
        )
        log.info("member_joined", tenant_id=tenant.tenant_id, user_id=user.user_id, role=user.role)
        return user

    # --- Members ---

    def set_role(self, tenant: Tenant, user_id: str, role: Role, *, by: str) -> UserRecord:
        """Changes a member's role (in the users record and the identity user's custom:roles);
        ConflictError when it would leave the tenant without a tenant admin."""
        member = self._active_member(tenant.tenant_id, user_id)
        if member.role == role.value:
            return member
        if member.user_id == tenant.owner_user_id:
            raise InvalidInputError("the owner stays a tenant admin: transfer ownership to another admin first")
        self._team.set_role(member, role)
        self._identity.update_attributes(member.email, {ROLES_CLAIM: role.value})
        # The old role is in every token issued so far: end them, so the next one carries the new.
        self._end_sessions(member.email, "role_changed")
        self._record(
            tenant,
            by,
            f"set the role of {member.email} to {role.value}",
            {"role": member.role},
            {"role": role.value},
            "role_changed",
        )
        self._event(
            tenant,
            EventType.MEMBER_ROLE_CHANGED,
            f"role:{user_id}:{format_timestamp(self._clock.now())}",
            email=member.email,
            role=role.value,
            previous_role=member.role,
        )
        return self.member(tenant.tenant_id, user_id)

    def remove(self, tenant: Tenant, user_id: str, *, by: str) -> UserRecord:
        """Removes a member at once: identity user disabled, every session and token ended, users
        record disabled (its seat given back), identity user deleted. The owner is never removed
        (transfer ownership first); nor the last tenant admin (ConflictError)."""
        member = self.member(tenant.tenant_id, user_id)
        if member.user_id == tenant.owner_user_id:
            raise InvalidInputError("the owner cannot be removed: transfer ownership to another admin first")
        if member.status is UserStatus.ACTIVE:
            if member.role == Role.TENANT_ADMIN.value and self._admins(tenant.tenant_id) <= 1:
                raise ConflictError("a tenant must keep at least one tenant admin")
            self._disable_identity(member.email)
            self._end_sessions(member.email, "member_removed")
            self._team.remove_member(member)
        self._delete_identity(member.email, tenant.tenant_id)
        self._record(
            tenant, by, f"remove {member.email}", {"status": member.status.value}, {"status": "disabled"}, "removed"
        )
        self._event(tenant, EventType.MEMBER_REMOVED, f"removed:{user_id}", email=member.email, role=member.role)
        log.info("member_removed", tenant_id=tenant.tenant_id, user_id=user_id)
        return self.member(tenant.tenant_id, user_id)

    def transfer_ownership(self, tenant: Tenant, user_id: str, *, by: str) -> Tenant:
        """Makes an active tenant admin the owner (`owner_user_id`), recorded."""
        member = self._active_member(tenant.tenant_id, user_id)
        if member.role != Role.TENANT_ADMIN.value:
            raise InvalidInputError(f"{member.email} is not a tenant admin: make them one first")
        at = format_timestamp(self._clock.now())
        self._tenants.set_owner(tenant.tenant_id, member.user_id, at)
        self._record(
            tenant,
            by,
            f"transfer ownership to {member.email}",
            {"owner_user_id": tenant.owner_user_id},
            {"owner_user_id": member.user_id},
            "owner_changed",
        )
        log.info("ownership_transferred", tenant_id=tenant.tenant_id, user_id=user_id)
        updated = self._tenants.get(tenant.tenant_id)
        assert updated is not None
        return updated

    def restore_access(self, record: UserRecord) -> None:
        """RB-001 4.2 for a member whose identity user is gone (the repair of member_mismatch): a
        new identity user for the active users record (its tenant, its role) with a temporary
        password, emailed to the member. The email goes first: a repair that stops after it leaves
        the identity user still missing, so the finding stands and the next repair sends a new
        password; the other order could leave an identity user whose password nobody was told.
        The users record keeps its id: a sign-in finds it by email (AccountService.member_of)."""
        tenant = self._tenants.get(record.tenant_id)
        if tenant is None:
            raise NotFoundError(f"no tenant {record.tenant_id}")
        try:
            role = Role.named(record.role)
        except ValueError as unknown:
            raise InvalidInputError(f"the users record of {record.email}: {unknown}") from None
        password = temporary_password()
        self._mailer.send(self._mail.access_restored(record.email, tenant.name, role, password))
        attributes = {
            "email": record.email,
            "email_verified": "true",
            "custom:tenant_id": record.tenant_id,
            ROLES_CLAIM: record.role,
        }
        try:
            self._identity.create_user(record.email, attributes, temporary_password=password)
        except ItemAlreadyExistsError:
            # Made a moment ago (a second repair): this email's password is made the one that works.
            existing = self._identity.get_user(record.email)
            if existing is None or existing.tenant_id != record.tenant_id:
                raise ConflictError(f"{record.email} became another account's meanwhile: diagnose again") from None
            self._identity.set_password(record.email, password, permanent=False)
        log.info("member_access_restored", tenant_id=record.tenant_id, user_id=record.user_id)

    # --- Helpers ---

    def _joined_event_owed(self, token: str) -> None:
        """The member-joined event of an invitation this link accepted already, queued if it is
        not (once: its id comes from the invitation): an acceptance whose event could not be
        queued after its commit (a throttled store) was answered 503, and its retry is told the
        link was used; without this, the Site Builder application would never hear of the member."""
        parsed = parse_invitation_token(token)
        invitation = self._team.get_invitation(parsed[0]) if parsed else None
        if parsed is None or invitation is None or not secret_matches(invitation, parsed[1]):
            return
        if invitation.status is not InvitationStatus.ACCEPTED or invitation.user_id is None:
            return
        user = self._users.get(invitation.user_id)
        tenant = self._tenants.get(invitation.tenant_id)
        if user is None or tenant is None:
            return
        self._event(
            tenant, EventType.MEMBER_JOINED, f"joined:{invitation.invitation_id}", email=user.email, role=user.role
        )

    def _refuse_taken(self, tenant: Tenant, address: str, invited: Invitation | None = None) -> None:
        identity = self._identity.get_user(address)
        if identity is not None and OPERATOR_ROLE in roles_of(identity.attributes):
            raise InvalidInputError(f"{address} is an operator account and cannot join a tenant")
        if identity is not None and identity.tenant_id not in {None, tenant.tenant_id}:
            raise InvalidInputError(
                f"{address} already belongs to another Site Builder account: one email, one account. "
                "Invite another address."
            )
        for record in self._users.find_by_email(address):
            if record.status is not UserStatus.ACTIVE and record.tenant_id != tenant.tenant_id:
                continue  # removed from another tenant once: free to join this one
            if record.tenant_id != tenant.tenant_id:
                raise InvalidInputError(
                    f"{address} already belongs to another Site Builder account: one email, one account. "
                    "Invite another address."
                )
            if record.status is UserStatus.ACTIVE:
                raise InvalidInputError(f"{address} is a member of this team already")
        if identity is not None and identity.tenant_id == tenant.tenant_id and invited is None:
            # An identity user of this tenant without an active users record: a removed member
            # whose deletion did not finish. Finish it before inviting them again.
            self._delete_identity(address, tenant.tenant_id)

    def _member_identity(self, tenant: Tenant, invitation: Invitation) -> IdentityUser:
        """The invitee's identity user, carrying the tenant and the invitation's role: made now;
        or made a moment ago by a second click of the link; or left over from a removal that did
        not finish (disabled: made afresh; else its attributes set, so that no role it held
        before outlives the invitation's)."""
        attributes = {
            "email": invitation.email,
            "email_verified": "true",
            "custom:tenant_id": tenant.tenant_id,
            ROLES_CLAIM: invitation.role.value,
        }
        identity = self._identity.get_user(invitation.email)
        if identity is not None and not identity.enabled:
            # Not another tenant's, nor an operator's: _refuse_taken has seen to that.
            self._identity.delete_user(invitation.email)
            identity = None
        if identity is None:
            try:
                return self._identity.create_user(
                    invitation.email, attributes, temporary_password=secrets.token_urlsafe(24)
                )
            except ItemAlreadyExistsError:
                identity = self._identity.get_user(invitation.email)
                if identity is None:
                    raise InvalidInputError("This invitation can no longer be used. Ask for a new one.") from None
        return self._identity.update_attributes(
            invitation.email, {"custom:tenant_id": tenant.tenant_id, ROLES_CLAIM: invitation.role.value}
        )

    def _pending(self, tenant_id: str, invitation_id: str) -> Invitation:
        invitation = self._team.get_invitation(invitation_id)
        if invitation is None or invitation.tenant_id != tenant_id:
            raise NotFoundError(f"no invitation {invitation_id}")
        if invitation.status is not InvitationStatus.PENDING:
            raise InvalidInputError(f"the invitation of {invitation.email} is {invitation.status.value}, not pending")
        return invitation

    def _active_member(self, tenant_id: str, user_id: str) -> UserRecord:
        member = self.member(tenant_id, user_id)
        if member.status is not UserStatus.ACTIVE:
            raise InvalidInputError(f"{member.email} is no longer a member")
        return member

    def _admins(self, tenant_id: str) -> int:
        return sum(
            1
            for user in self._users.find_by_tenant(tenant_id)
            if user.status is UserStatus.ACTIVE and user.role == Role.TENANT_ADMIN.value
        )

    def _disable_identity(self, email: str) -> None:
        with contextlib.suppress(NotFoundError):
            self._identity.disable_user(email)

    def _delete_identity(self, email: str, tenant_id: str) -> None:
        identity = self._identity.get_user(email)
        if identity is not None and identity.tenant_id == tenant_id:
            self._identity.delete_user(email)

    def _send_invitation(self, tenant: Tenant, invitation: Invitation, secret: str) -> str:
        link = self._mail.link(f"{invitation.invitation_id}.{secret}")
        email = self._mail.invitation(
            invitation.email, tenant.name, invitation.invited_by, invitation.role, link, invitation.expires_at[:10]
        )
        # Sent directly (never queued): the link is a secret the outbox must not keep.
        self._mailer.send(email)
        return link

    def _event(self, tenant: Tenant, event_type: EventType, key: str, **data: str) -> None:
        at = format_timestamp(self._clock.now())
        event = new_event(event_type, tenant.tenant_id, tenant.plan, tenant.status, at, key, **data)
        notice = event_notice(event, at)
        if self._lifecycle.queue_notice(notice):
            self._notices.deliver([notice.notice_id])

    def _record(
        self, tenant: Tenant, by: str, action: str, before: dict[str, object], after: dict[str, object], outcome: str
    ) -> None:
        self._trail.record(
            RepairRecord(
                at=format_timestamp(self._clock.now()),
                operator=by,
                transaction_id=tenant.billing.transaction_id,
                tenant_id=tenant.tenant_id,
                email=None,
                finding=MEMBER_FINDING,
                actions=(action,),
                before=before,
                after=after,
                outcome=outcome,
            )
        )
