"""The account page's Team section in words: seats held of the plan's, the members and the pending
invitations, and which forms this viewer gets. Whether the viewer may manage the team (and the
billing) is read server-side from their own users record on every request, never from a form."""

from __future__ import annotations

from dataclasses import dataclass

from tenancy.bootstrap import Services
from tenancy.domain.members import Invitation, Role, manages_team
from tenancy.domain.model import Tenant, UserRecord, UserStatus
from tenancy.errors import NotFoundError, UnknownPlanError
from tenancy.web.pages.viewer import Viewer

__all__ = [
    "ROLE_CHOICES",
    "InvitationRow",
    "MemberRow",
    "RoleChoice",
    "TeamSection",
    "is_tenant_admin",
    "member_of",
    "role_words",
    "team_section",
    "timestamp_words",
]


@dataclass(frozen=True, slots=True)
class RoleChoice:
    value: str
    label: str
    what: str  # what the role may do, in the member's words


ROLE_CHOICES = (
    RoleChoice(Role.TENANT_ADMIN.value, Role.TENANT_ADMIN.label, "the team, billing and everything else"),
    RoleChoice(Role.EDITOR.value, Role.EDITOR.label, "changes the sites"),
    RoleChoice(Role.VIEWER.value, Role.VIEWER.label, "sees the sites, changes nothing"),
)


def role_words(role: str) -> str:
    """`Editor` for `editor`; a role this version does not know, as stored."""
    return next((choice.label for choice in ROLE_CHOICES if choice.value == role), role)


def timestamp_words(timestamp: str) -> str:
    """`2026-12-14 02:30 UTC` for the data contract's `2026-12-14T02:30:00Z`."""
    return f"{timestamp[:10]} {timestamp[11:16]} UTC" if len(timestamp) >= 16 else timestamp


def member_of(services: Services, viewer: Viewer) -> UserRecord | None:
    """The viewer's active users record in their own tenant (the session names both), or None."""
    if viewer.tenant_id is None:
        return None
    return services.accounts.member_of(viewer.tenant_id, viewer.email)


def is_tenant_admin(services: Services, viewer: Viewer) -> bool:
    """Whether the viewer manages the team and the billing: their users record says (the API's
    own rule, domain.members.manages_team)."""
    return manages_team(member_of(services, viewer))


@dataclass(frozen=True, slots=True)
class MemberRow:
    user_id: str
    email: str
    role: str
    role_label: str
    status: str  # "Active" or "Removed"
    owner: bool
    you: bool
    joined: str
    active: bool
    last_sign_in: str  # "2026-12-07 09:30 UTC", or "never"

    @property
    def can_change_role(self) -> bool:
        # The owner stays an admin: ownership is handed on first.
        return self.active and not self.owner

    @property
    def can_remove(self) -> bool:
        return self.active and not self.owner and not self.you


@dataclass(frozen=True, slots=True)
class InvitationRow:
    invitation_id: str
    email: str
    role_label: str
    expires: str
    invited_by: str


@dataclass(frozen=True, slots=True)
class TeamSection:
    seats_used: int
    seats_limit: int | None  # None: the tenant's plan is no longer in the catalogue
    members: tuple[MemberRow, ...]
    invitations: tuple[InvitationRow, ...]
    manage: bool  # the viewer is a tenant admin: the forms
    owner: bool  # the viewer owns the tenant: the transfer form

    @property
    def seats_full(self) -> bool:
        return self.seats_limit is not None and self.seats_used >= self.seats_limit

    @property
    def transfer_to(self) -> tuple[MemberRow, ...]:
        """Who may become the owner: the other active tenant admins."""
        return tuple(
            row for row in self.members if row.active and not row.owner and row.role == Role.TENANT_ADMIN.value
        )


def team_section(services: Services, tenant: Tenant, viewer: Viewer) -> TeamSection:
    """The Team section of the viewer's own tenant, read as `GET /tenants/me/members` reads it."""
    try:
        used, limit = services.team.seats(tenant)
        seats_limit: int | None = limit
    except UnknownPlanError:  # a plan since taken out of the catalogue: its seats are unknown
        used, seats_limit = _seats_used(services, tenant), None
    me = member_of(services, viewer)
    members = tuple(
        MemberRow(
            user_id=user.user_id,
            email=user.email,
            role=user.role,
            role_label=role_words(user.role),
            status="Active" if user.status is UserStatus.ACTIVE else "Removed",
            owner=user.user_id == tenant.owner_user_id,
            you=me is not None and user.user_id == me.user_id,
            joined=user.created_at[:10],
            active=user.status is UserStatus.ACTIVE,
            last_sign_in=_sign_in_words(user.last_sign_in_at),
        )
        for user in services.team.members(tenant.tenant_id)
    )
    invitations = tuple(
        _invitation_row(each) for each in services.team.invitations(tenant.tenant_id, pending_only=True)
    )
    manage = is_tenant_admin(services, viewer)
    return TeamSection(
        seats_used=used,
        seats_limit=seats_limit,
        members=members,
        invitations=invitations,
        manage=manage,
        owner=manage and me is not None and me.user_id == tenant.owner_user_id,
    )


def _seats_used(services: Services, tenant: Tenant) -> int:
    try:
        return services.team_store.seats_used(tenant.tenant_id)
    except NotFoundError:
        return 0


def _invitation_row(invitation: Invitation) -> InvitationRow:
    return InvitationRow(
        invitation_id=invitation.invitation_id,
        email=invitation.email,
        role_label=invitation.role.label,
        expires=timestamp_words(invitation.expires_at),
        invited_by=invitation.invited_by,
    )


def _sign_in_words(at: str | None) -> str:
    return "never" if not at else f"{at[:10]} {at[11:16]} UTC"
