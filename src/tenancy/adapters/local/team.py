"""Team members on SQLite: invitations, the seats they and the members hold, and the members'
roles. Every change that moves a seat or a tenant admin is one write transaction whose
`UPDATE ... WHERE` holds the rule (seats left, another admin kept), never a read then a write.

The tenant row counts its seats (`seats_used`: members and pending invitations) and its tenant
admins (`admins`); a row written before either existed counts its owner alone (1).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from tenancy.adapters.local.database import Database
from tenancy.domain.members import Invitation, InvitationStatus, Role
from tenancy.domain.model import UserRecord
from tenancy.errors import ConflictError, ItemAlreadyExistsError, NotFoundError, SeatsTakenError

__all__ = ["SqliteTeamStore"]

_SEATS = "COALESCE(seats_used, 1)"
_ADMINS = "COALESCE(admins, 1)"


class SqliteTeamStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def invite(self, invitation: Invitation, max_users: int) -> None:
        with self._database.transaction() as connection:
            # Invited already comes first: that invitation holds a seat of its own, so a full
            # tenant is no reason to refuse it (a retry of an invitation cut short meets this).
            if connection.execute(
                "SELECT 1 FROM invitations WHERE tenant_id = ? AND email = ? AND status = 'pending'",
                (invitation.tenant_id, invitation.email),
            ).fetchone():
                raise ItemAlreadyExistsError(f"{invitation.email} is invited already")
            taken = connection.execute(
                f"UPDATE tenants SET seats_used = {_SEATS} + 1 WHERE tenant_id = ? AND {_SEATS} < ?",  # noqa: S608
                (invitation.tenant_id, max_users),
            ).rowcount
            if taken == 0:
                _seats_refusal(connection, invitation.tenant_id, max_users)
            try:
                connection.execute(
                    "INSERT INTO invitations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _invitation_row(invitation)
                )
            except sqlite3.IntegrityError:
                # The seat taken above goes back with the transaction.
                raise ItemAlreadyExistsError(f"{invitation.email} is invited already") from None

    def get_invitation(self, invitation_id: str) -> Invitation | None:
        rows = self._database.read("SELECT * FROM invitations WHERE invitation_id = ?", (invitation_id,))
        return _invitation(rows[0]) if rows else None

    def invitations(self, tenant_id: str) -> list[Invitation]:
        rows = self._database.read(
            "SELECT * FROM invitations WHERE tenant_id = ? ORDER BY created_at DESC, invitation_id", (tenant_id,)
        )
        return [_invitation(row) for row in rows]

    def expired(self, now: str, limit: int = 1000) -> list[Invitation]:
        rows = self._database.read(
            "SELECT * FROM invitations WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [_invitation(row) for row in rows]

    def scan_accepted(self, batch_size: int = 1000) -> Iterator[list[Invitation]]:
        for rows in self._database.scan("invitations", "invitation_id", batch_size, "status = 'accepted'"):
            yield [_invitation(row) for row in rows]

    def close_invitation(self, invitation_id: str, status: InvitationStatus, at: str) -> bool:
        with self._database.transaction() as connection:
            row = connection.execute(
                "UPDATE invitations SET status = ?, updated_at = ? WHERE invitation_id = ? AND status = 'pending'"
                " RETURNING tenant_id",
                (status.value, at, invitation_id),
            ).fetchone()
            if row is None:
                return False
            _release_seat(connection, row["tenant_id"])
            return True

    def renew_invitation(self, invitation_id: str, secret_hash: str, expires_at: str, at: str) -> bool:
        with self._database.transaction() as connection:
            return (
                connection.execute(
                    "UPDATE invitations SET secret_hash = ?, expires_at = ?, updated_at = ?"
                    " WHERE invitation_id = ? AND status = 'pending'",
                    (secret_hash, expires_at, at, invitation_id),
                ).rowcount
                == 1
            )

    def accept(self, invitation_id: str, user: UserRecord, at: str) -> bool:
        with self._database.transaction() as connection:
            accepted = connection.execute(
                "UPDATE invitations SET status = 'accepted', user_id = ?, updated_at = ?"
                " WHERE invitation_id = ? AND status = 'pending' AND expires_at > ?",
                (user.user_id, at, invitation_id, at),
            ).rowcount
            if accepted == 0:
                return False
            try:
                connection.execute(
                    "INSERT INTO users (user_id, tenant_id, email, role, status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (user.user_id, user.tenant_id, user.email.lower(), user.role, user.status.value, user.created_at),
                )
            except sqlite3.IntegrityError:
                raise ItemAlreadyExistsError(f"user {user.user_id} exists") from None
            if user.role == Role.TENANT_ADMIN.value:
                connection.execute(f"UPDATE tenants SET admins = {_ADMINS} + 1 WHERE tenant_id = ?", (user.tenant_id,))  # noqa: S608
            return True

    def add_member(self, user: UserRecord, max_users: int) -> None:
        with self._database.transaction() as connection:
            taken = connection.execute(
                f"UPDATE tenants SET seats_used = {_SEATS} + 1,"  # noqa: S608
                f" admins = {_ADMINS} + ? WHERE tenant_id = ? AND {_SEATS} < ?",
                (int(user.role == Role.TENANT_ADMIN.value), user.tenant_id, max_users),
            ).rowcount
            if taken == 0:
                _seats_refusal(connection, user.tenant_id, max_users)
            try:
                connection.execute(
                    "INSERT INTO users (user_id, tenant_id, email, role, status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (user.user_id, user.tenant_id, user.email.lower(), user.role, user.status.value, user.created_at),
                )
            except sqlite3.IntegrityError:
                raise ItemAlreadyExistsError(f"user {user.user_id} exists") from None

    def set_role(self, user: UserRecord, role: Role) -> None:
        with self._database.transaction() as connection:
            changed = connection.execute(
                "UPDATE users SET role = ? WHERE user_id = ? AND role = ? AND status = 'active'",
                (role.value, user.user_id, user.role),
            ).rowcount
            if changed == 0:
                raise ConflictError(f"member {user.email} changed since it was read")
            was_admin, is_admin = user.role == Role.TENANT_ADMIN.value, role is Role.TENANT_ADMIN
            if was_admin and not is_admin:
                _drop_admin(connection, user.tenant_id)
            elif is_admin and not was_admin:
                connection.execute(f"UPDATE tenants SET admins = {_ADMINS} + 1 WHERE tenant_id = ?", (user.tenant_id,))  # noqa: S608

    def remove_member(self, user: UserRecord) -> bool:
        with self._database.transaction() as connection:
            removed = connection.execute(
                "UPDATE users SET status = 'disabled' WHERE user_id = ? AND status = 'active'", (user.user_id,)
            ).rowcount
            if removed == 0:
                return False
            if user.role == Role.TENANT_ADMIN.value:
                _drop_admin(connection, user.tenant_id)
            _release_seat(connection, user.tenant_id)
            return True

    def seats_used(self, tenant_id: str) -> int:
        rows = self._database.read(f"SELECT {_SEATS} AS seats FROM tenants WHERE tenant_id = ?", (tenant_id,))  # noqa: S608
        if not rows:
            raise NotFoundError(f"tenant {tenant_id} not found")
        return int(rows[0]["seats"])


def _seats_refusal(connection: sqlite3.Connection, tenant_id: str, max_users: int) -> None:
    found = connection.execute("SELECT 1 FROM tenants WHERE tenant_id = ?", (tenant_id,)).fetchone()
    if found is None:
        raise NotFoundError(f"tenant {tenant_id} not found")
    raise SeatsTakenError(max_users)


def _release_seat(connection: sqlite3.Connection, tenant_id: str) -> None:
    connection.execute(
        f"UPDATE tenants SET seats_used = MAX({_SEATS} - 1, 0) WHERE tenant_id = ?",  # noqa: S608
        (tenant_id,),
    )


def _drop_admin(connection: sqlite3.Connection, tenant_id: str) -> None:
    """One tenant admin fewer, refused (the transaction undone) if it was the last."""
    kept = connection.execute(
        f"UPDATE tenants SET admins = {_ADMINS} - 1 WHERE tenant_id = ? AND {_ADMINS} > 1",  # noqa: S608
        (tenant_id,),
    ).rowcount
    if kept == 0:
        raise ConflictError("a tenant must keep at least one tenant admin")


def _invitation_row(invitation: Invitation) -> tuple[object, ...]:
    return (
        invitation.invitation_id,
        invitation.tenant_id,
        invitation.email,
        invitation.role.value,
        invitation.secret_hash,
        invitation.status.value,
        invitation.invited_by,
        invitation.created_at,
        invitation.expires_at,
        invitation.updated_at,
        invitation.user_id,
    )


def _invitation(row: sqlite3.Row) -> Invitation:
    return Invitation(
        invitation_id=row["invitation_id"],
        tenant_id=row["tenant_id"],
        email=row["email"],
        role=Role(row["role"]),
        secret_hash=row["secret_hash"],
        status=InvitationStatus(row["status"]),
        invited_by=row["invited_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        updated_at=row["updated_at"],
        user_id=row["user_id"],
    )
