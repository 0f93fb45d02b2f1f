"""Sign-in sessions on SQLite, shared by every process that opens the same database file."""

from __future__ import annotations

import json
import sqlite3

from tenancy.adapters.local.database import Database
from tenancy.domain.model import SessionKind, SignInSession

__all__ = ["SqliteSessionStore"]


class SqliteSessionStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def create(self, session: SignInSession) -> None:
        with self._database.transaction() as connection:
            # Sessions past their end are of no use to anyone: keep the table small as we go.
            connection.execute("DELETE FROM sign_in_sessions WHERE expires_at < ?", (session.created_at,))
            connection.execute(
                "INSERT INTO sign_in_sessions (session_id, secret_hash, kind, username, subject, tenant_id, roles,"
                " created_at, expires_at, provider_refresh_token, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session.session_id,
                    session.secret_hash,
                    session.kind.value,
                    session.username,
                    session.subject,
                    session.tenant_id,
                    json.dumps(list(session.roles)),
                    session.created_at,
                    session.expires_at,
                    session.provider_refresh_token,
                    session.revoked_at,
                ),
            )

    def get(self, session_id: str) -> SignInSession | None:
        rows = self._database.read("SELECT * FROM sign_in_sessions WHERE session_id = ?", (session_id,))
        return _session(rows[0]) if rows else None

    def rotate(self, session_id: str, *, expected_secret_hash: str, new_secret_hash: str) -> bool:
        with self._database.transaction() as connection:
            changed = connection.execute(
                "UPDATE sign_in_sessions SET secret_hash = ?"
                " WHERE session_id = ? AND secret_hash = ? AND revoked_at IS NULL",
                (new_secret_hash, session_id, expected_secret_hash),
            ).rowcount
        return changed == 1

    def revoke(self, session_id: str, revoked_at: int) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "UPDATE sign_in_sessions SET revoked_at = COALESCE(revoked_at, ?), provider_refresh_token = NULL"
                " WHERE session_id = ?",
                (revoked_at, session_id),
            )

    def revoke_user(self, username: str, revoked_at: int) -> int:
        with self._database.transaction() as connection:
            ended = connection.execute(
                "UPDATE sign_in_sessions SET revoked_at = ?, provider_refresh_token = NULL"
                " WHERE username = ? AND revoked_at IS NULL",
                (revoked_at, username),
            ).rowcount
        return int(ended)

    def set_tokens_not_before(self, username: str, not_before: int) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO token_revocations (username, not_before) VALUES (?, ?)"
                " ON CONFLICT (username) DO UPDATE SET not_before = MAX(not_before, excluded.not_before)",
                (username, not_before),
            )

    def tokens_not_before(self, username: str) -> int | None:
        rows = self._database.read("SELECT not_before FROM token_revocations WHERE username = ?", (username,))
        return int(rows[0][0]) if rows else None


def _session(row: sqlite3.Row) -> SignInSession:
    return SignInSession(
        session_id=row["session_id"],
        secret_hash=row["secret_hash"],
        kind=SessionKind(row["kind"]),
        username=row["username"],
        subject=row["subject"],
        tenant_id=row["tenant_id"],
        roles=tuple(json.loads(row["roles"])),
        created_at=int(row["created_at"]),
        expires_at=int(row["expires_at"]),
        provider_refresh_token=row["provider_refresh_token"],
        revoked_at=None if row["revoked_at"] is None else int(row["revoked_at"]),
    )
