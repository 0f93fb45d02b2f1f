"""Team members: the roles a tenant's people hold, and the invitations that bring them in.

A tenant's members are its users records (RB-001's `users` table: one item per member with its
`role`), each an identity user whose `custom:tenant_id` names the tenant and whose
`custom:roles` carries the role. A plan's seats (`max_users`) are held by the members and by the
invitations still pending, counted on the tenant item by conditional writes only.

An invitation's link carries `<invitation_id>.<secret>`: the id finds it, and only a SHA-256 of
the 32 random bytes of secret is kept, so the store never holds a usable link.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from tenancy.domain.model import UserRecord, UserStatus

__all__ = [
    "INVITATION_LIFETIME",
    "Invitation",
    "InvitationStatus",
    "Role",
    "invitation_secret_hash",
    "manages_team",
    "new_invitation_link_parts",
    "parse_invitation_token",
    "secret_matches",
]

INVITATION_LIFETIME = timedelta(days=7)
_TOKEN = re.compile(r"^(inv_[a-z0-9]{20})\.([A-Za-z0-9_-]{43})$")


class Role(StrEnum):
    """What a member may do: a tenant admin everything (members, billing); an editor change the
    tenant's sites; a viewer only read."""

    TENANT_ADMIN = "tenant_admin"
    EDITOR = "editor"
    VIEWER = "viewer"

    @property
    def may_change(self) -> bool:
        return self is not Role.VIEWER

    @property
    def manages(self) -> bool:
        """Members and billing."""
        return self is Role.TENANT_ADMIN

    @property
    def label(self) -> str:
        return {Role.TENANT_ADMIN: "Admin", Role.EDITOR: "Editor", Role.VIEWER: "Viewer"}[self]

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls(name.strip().lower())
        except ValueError:
            known = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown role {name!r} (known: {known})") from None


def manages_team(record: UserRecord | None) -> bool:
    """The one answer, for the API and the pages alike, to "may this person manage the team and
    the billing?": their active users record's role, read on each request. The session's
    custom:roles claim is not asked: a role change ends the member's sessions, so no token
    outlives it, and the record is the truth RB-001 reads."""
    return record is not None and record.status is UserStatus.ACTIVE and record.role == Role.TENANT_ADMIN.value


class InvitationStatus(StrEnum):
    PENDING = "pending"  # holds a seat until accepted, revoked or expired
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Invitation:
    invitation_id: str
    tenant_id: str
    email: str
    role: Role
    secret_hash: str
    status: InvitationStatus
    invited_by: str  # who invited: a member's email, or an operator's name
    created_at: str
    expires_at: str
    updated_at: str
    user_id: str | None = None  # the member it made, once accepted

    def usable(self, now: str) -> bool:
        return self.status is InvitationStatus.PENDING and now < self.expires_at


def new_invitation_link_parts() -> tuple[str, str]:
    """A new (invitation_id, secret)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    invitation_id = "inv_" + "".join(secrets.choice(alphabet) for _ in range(20))
    return invitation_id, secrets.token_urlsafe(32)


def invitation_secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_invitation_token(token: str) -> tuple[str, str] | None:
    """(invitation_id, secret) of a well-formed link token, else None."""
    match = _TOKEN.match(token.strip())
    return (match.group(1), match.group(2)) if match else None


def secret_matches(invitation: Invitation, secret: str) -> bool:
    return hmac.compare_digest(invitation.secret_hash, invitation_secret_hash(secret))
