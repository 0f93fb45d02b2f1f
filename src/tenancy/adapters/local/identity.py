"""The embedded identity provider: Cognito's statuses, temporary passwords, new-password
challenge and RS256 tokens, kept in the local SQLite database.

Only hashes are stored: argon2id for passwords and password-reset codes, SHA-256 for challenge
sessions and refresh tokens. Neither passwords, codes nor session tokens ever appear in an error message.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from tenancy.adapters.local.batches import rows_where_in
from tenancy.adapters.local.database import Database
from tenancy.adapters.local.signing_keys import SigningKeys
from tenancy.config import Settings
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.ids import normalize_email, normalized_email_or_none
from tenancy.domain.model import AuthChallenge, IdentityUser, IdentityUserStatus, Tokens
from tenancy.domain.passwords import password_policy_failures
from tenancy.errors import (
    AccountNotFoundError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidSessionError,
    InvalidTokenError,
    ItemAlreadyExistsError,
    NotFoundError,
    PasswordPolicyError,
)
from tenancy.ports import Clock

__all__ = ["NEW_PASSWORD_REQUIRED", "EmbeddedIdentityProvider", "password_policy_failures"]

NEW_PASSWORD_REQUIRED = "NEW_PASSWORD_REQUIRED"  # noqa: S105 - a challenge name, not a password
_SESSION_PURPOSE = "new_password"
_REFRESH_TOKEN_TTL = timedelta(days=30)
_ACCESS_SCOPE = "openid email profile"
_CONFIRMED = IdentityUserStatus.CONFIRMED
_FORCE_CHANGE = IdentityUserStatus.FORCE_CHANGE_PASSWORD
_RESET_REQUIRED = IdentityUserStatus.RESET_REQUIRED
_HASH_LANES = 4  # argon2-cffi's default parallelism
# Cognito's forgotten-password codes live an hour. Eight digits rather than its six, so each
# code is that much harder to guess, whatever limits the caller sets on asking for codes.
_RESET_CODE_TTL_SECONDS = timedelta(hours=1).total_seconds()
_RESET_CODE_DIGITS = 8
_RESET_CODE_MAX_ATTEMPTS = 5
_INVALID_CODE = "Invalid or expired code"
_CANNOT_RESET = "Password cannot be reset in the current state"
# Cognito's default policy lives in the domain (domain.passwords): the pages check it too.


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _user_from_row(row: sqlite3.Row) -> IdentityUser:
    return IdentityUser(
        username=row["username"],
        sub=row["sub"],
        status=IdentityUserStatus(row["status"]),
        enabled=bool(row["enabled"]),
        attributes=json.loads(row["attributes"]),
        created_at=parse_timestamp(row["created_at"]),
    )


def _username_or_none(email: str) -> str | None:
    """`normalized_email_or_none`, without its per-character Unicode checks for the usual address
    (printable ASCII, for which it is the stripped address in lower case): a batch of thousands
    would spend most of its time there."""
    stripped = email.strip()
    if stripped.isascii() and stripped.isprintable():
        return stripped.lower() or None
    return normalized_email_or_none(email)


class EmbeddedIdentityProvider:
    """The IdentityProvider port for the local backend, keyed by the email as `normalize_email` spells it."""

    def __init__(
        self,
        database: Database,
        keys: SigningKeys,
        *,
        issuer: str,
        audience: str,
        token_ttl_seconds: int,
        temporary_password_ttl: timedelta,
        challenge_ttl_seconds: int,
        hasher: argon2.PasswordHasher,
        clock: Clock,
    ) -> None:
        self._database = database
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._token_ttl_seconds = token_ttl_seconds
        self._temporary_password_ttl = temporary_password_ttl
        self._challenge_ttl_seconds = challenge_ttl_seconds
        self._hasher = hasher
        # Expiries (tokens, sessions, temporary passwords, reset codes) are judged by `clock`.
        self._clock = clock
        # Checked against when the username is unknown, so that answer costs as much as a wrong password.
        self._dummy_hash = hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_settings(cls, database: Database, settings: Settings, clock: Clock) -> EmbeddedIdentityProvider:
        hasher = argon2.PasswordHasher(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_kib,
            # argon2 needs 8 KiB per lane, so the small memory settings allows (tests) get fewer lanes.
            parallelism=min(_HASH_LANES, settings.password_hash_memory_kib // 8),
            type=argon2.Type.ID,
        )
        return cls(
            database,
            SigningKeys.load_or_create(settings.keys_dir),
            issuer=settings.effective_token_issuer,
            audience=settings.token_audience,
            token_ttl_seconds=settings.token_ttl_seconds,
            temporary_password_ttl=timedelta(days=settings.temporary_password_ttl_days),
            challenge_ttl_seconds=settings.challenge_ttl_seconds,
            hasher=hasher,
            clock=clock,
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return self._keys.jwks()

    def create_user(self, username: str, attributes: dict[str, str], temporary_password: str) -> IdentityUser:
        username = normalize_email(username)
        if not username:
            raise InvalidInputError("the username (email) is empty")
        now = self._clock.now()
        sub = str(uuid.uuid4())
        stored = {**attributes, "sub": sub}
        # Hashed before taking the write lock: argon2 is slow on purpose.
        password_hash = self._hasher.hash(temporary_password)
        with self._database.transaction() as connection:
            try:
                connection.execute(
                    "INSERT INTO identity_users (username, sub, status, enabled, attributes, password_hash,"
                    " password_expires_at, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
                    (
                        username,
                        sub,
                        _FORCE_CHANGE.value,
                        json.dumps(stored),
                        password_hash,
                        (now + self._temporary_password_ttl).timestamp(),
                        format_timestamp(now),
                        format_timestamp(now),
                    ),
                )
            except sqlite3.IntegrityError:
                raise ItemAlreadyExistsError(f"identity user {username} exists") from None
        # Whole seconds, as stored, so this equals what get_user returns.
        created_at = parse_timestamp(format_timestamp(now))
        return IdentityUser(username, sub, _FORCE_CHANGE, enabled=True, attributes=stored, created_at=created_at)

    def get_user(self, username: str) -> IdentityUser | None:
        row = self._find(normalize_email(username))
        return _user_from_row(row) if row is not None else None

    def get_users(self, usernames: Sequence[str]) -> dict[str, IdentityUser]:
        keys = {username: _username_or_none(username) for username in usernames}
        wanted = [key for key in keys.values() if key is not None]
        found = {
            row["username"]: _user_from_row(row)
            for row in rows_where_in(self._database, "SELECT * FROM identity_users", "username", wanted)
        }
        return {username: found[key] for username, key in keys.items() if key is not None and key in found}

    def get_user_by_subject(self, sub: str) -> IdentityUser | None:
        if not sub or any(character in sub for character in '"\\'):
            return None  # as Cognito's filter: no subject it issues holds these
        rows = self._database.read("SELECT * FROM identity_users WHERE sub = ?", (sub,))
        return _user_from_row(rows[0]) if rows else None

    def delete_user(self, username: str) -> None:
        username = normalize_email(username)
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM identity_users WHERE username = ?", (username,))
            self._end_sessions(connection, username)
            connection.execute("DELETE FROM identity_refresh_tokens WHERE username = ?", (username,))
            connection.execute("DELETE FROM identity_reset_codes WHERE username = ?", (username,))

    def disable_user(self, username: str) -> None:
        username = normalize_email(username)
        with self._database.transaction() as connection:
            found = connection.execute("UPDATE identity_users SET enabled = 0 WHERE username = ?", (username,)).rowcount
            if found == 0:
                raise NotFoundError(f"identity user {username} not found")
            # As Cognito: a disabled user's refresh tokens no longer work.
            self._end_sessions(connection, username)

    def scan_users(self, batch_size: int = 1000) -> Iterator[list[IdentityUser]]:
        for rows in self._database.scan("identity_users", "username", batch_size):
            yield [_user_from_row(row) for row in rows]

    def update_attributes(self, username: str, attributes: dict[str, str]) -> IdentityUser:
        """Merges `attributes` into the user's; `sub` stays as it is, as in Cognito."""
        username = normalize_email(username)
        with self._database.transaction() as connection:
            row = connection.execute("SELECT * FROM identity_users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise NotFoundError(f"identity user {username} not found")
            merged = {**json.loads(row["attributes"]), **attributes, "sub": row["sub"]}
            connection.execute(
                "UPDATE identity_users SET attributes = ?, updated_at = ? WHERE username = ?",
                (json.dumps(merged), format_timestamp(self._clock.now()), username),
            )
        return replace(_user_from_row(row), attributes=merged)

    def set_password(self, username: str, password: str, *, permanent: bool) -> None:
        username = normalize_email(username)
        now = self._clock.now()
        status, expires_at = (_CONFIRMED, None) if permanent else (_FORCE_CHANGE, now + self._temporary_password_ttl)
        password_hash = self._hasher.hash(password)
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE identity_users SET password_hash = ?, status = ?, password_expires_at = ?, updated_at = ?"
                " WHERE username = ?",
                (
                    password_hash,
                    status.value,
                    expires_at.timestamp() if expires_at else None,
                    format_timestamp(now),
                    username,
                ),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"identity user {username} not found")
            # A challenge begun with the previous password must not overwrite this one.
            self._end_sessions(connection, username)

    def reset_password(self, username: str) -> None:
        """RESET_REQUIRED; pending challenges and refresh tokens stop working with the old password."""
        username = normalize_email(username)
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE identity_users SET status = ?, password_expires_at = NULL, updated_at = ? WHERE username = ?",
                (_RESET_REQUIRED.value, format_timestamp(self._clock.now()), username),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"identity user {username} not found")
            self._end_sessions(connection, username)
            connection.execute("UPDATE identity_refresh_tokens SET revoked = 1 WHERE username = ?", (username,))

    def start_password_reset(self, username: str) -> str | None:
        """A fresh code, replacing any earlier one; the caller emails it. Cognito's refusals are
        mirrored: a user who never chose a password (FORCE_CHANGE_PASSWORD) or a disabled one.
        A new code inherits the wrong tries of a live earlier one, so asking again grants no
        more guesses; once those are used up it also keeps that code's end, so asking again
        cannot stretch the lockout either."""
        username = normalize_email(username)
        row = self._find(username)
        user = _user_from_row(row) if row is not None else None
        if user is None or not user.enabled or user.status is _FORCE_CHANGE:
            # Every answer costs one hash, so how long it takes does not tell who has an account.
            self._hasher.hash(secrets.token_urlsafe(16))
        if user is None:
            raise AccountNotFoundError()
        if not user.enabled:
            raise InvalidCredentialsError("User is disabled")
        if user.status is _FORCE_CHANGE:
            raise InvalidCredentialsError(_CANNOT_RESET)
        code = f"{secrets.randbelow(10**_RESET_CODE_DIGITS):0{_RESET_CODE_DIGITS}d}"
        code_hash = self._hasher.hash(code)
        now = self._clock.now().timestamp()
        with self._database.transaction() as connection:
            earlier = connection.execute(
                "SELECT attempts, expires_at FROM identity_reset_codes WHERE username = ? AND expires_at > ?",
                (username, now),
            ).fetchone()
            attempts = earlier["attempts"] if earlier is not None else 0
            used_up = attempts >= _RESET_CODE_MAX_ATTEMPTS
            expires_at = earlier["expires_at"] if earlier is not None and used_up else now + _RESET_CODE_TTL_SECONDS
            connection.execute(
                "INSERT OR REPLACE INTO identity_reset_codes (username, code_hash, expires_at, attempts)"
                " VALUES (?, ?, ?, ?)",
                (username, code_hash, expires_at, attempts),
            )
        return code

    def confirm_password_reset(self, username: str, code: str, new_password: str) -> None:
        """Sets the password for good and ends every session and refresh token, as `reset_password` does."""
        username = normalize_email(username)
        # The policy first: it says nothing about the code, and a weak password then costs no try.
        failures = password_policy_failures(new_password)
        if failures:
            raise PasswordPolicyError("Password must have " + ", ".join(failures))
        now = self._clock.now()
        with self._database.transaction() as connection:
            # The try is counted before the code is checked, so parallel guesses cannot together
            # try more codes than the limit allows.
            counted = connection.execute(
                "UPDATE identity_reset_codes SET attempts = attempts + 1"
                " WHERE username = ? AND attempts < ? AND expires_at > ?",
                (username, _RESET_CODE_MAX_ATTEMPTS, now.timestamp()),
            ).rowcount
            row = connection.execute(
                "SELECT code_hash FROM identity_reset_codes WHERE username = ?", (username,)
            ).fetchone()
        live = counted == 1 and row is not None
        # argon2's check compares in constant time; a missing code costs the same check.
        code_hash: str = row["code_hash"] if live else self._dummy_hash
        if not self._password_matches(code_hash, code) or not live:
            raise InvalidCredentialsError(_INVALID_CODE)
        password_hash = self._hasher.hash(new_password)
        with self._database.transaction() as connection:
            # Deleting the very code checked is the single-use guarantee: after a concurrent
            # confirm, or once a newer code replaced it, this deletes nothing.
            claimed = connection.execute(
                "DELETE FROM identity_reset_codes WHERE username = ? AND code_hash = ?", (username, code_hash)
            ).rowcount
            if claimed != 1:
                raise InvalidCredentialsError(_INVALID_CODE)
            connection.execute(
                "UPDATE identity_users SET password_hash = ?, status = ?, password_expires_at = NULL, updated_at = ?"
                " WHERE username = ?",
                (password_hash, _CONFIRMED.value, format_timestamp(now), username),
            )
            self._end_sessions(connection, username)
            connection.execute("UPDATE identity_refresh_tokens SET revoked = 1 WHERE username = ?", (username,))

    def authenticate(self, username: str, password: str) -> Tokens | AuthChallenge:
        username = normalize_email(username)
        row = self._find(username)
        if row is None:
            self._password_matches(self._dummy_hash, password)
            raise AccountNotFoundError()
        # Checked before any refusal, so every answer costs one hash check, and first: a wrong
        # password gets the same answer whatever state the account is in (reset required,
        # disabled), so only someone who knows the password learns the account's state.
        if not self._password_matches(row["password_hash"], password):
            raise InvalidCredentialsError()
        user = _user_from_row(row)
        now = self._clock.now()
        if user.status is _RESET_REQUIRED:
            raise InvalidCredentialsError("Password reset required")
        if not user.enabled:
            raise InvalidCredentialsError("User is disabled")
        expires_at = row["password_expires_at"]
        if user.status is _FORCE_CHANGE and expires_at is not None and now.timestamp() >= expires_at:
            raise InvalidCredentialsError("Temporary password has expired and must be reset by an administrator")
        self._rehash_if_needed(username, row["password_hash"], password)
        if user.status is _FORCE_CHANGE:
            return self._start_challenge(username, now)
        with self._database.transaction() as connection:
            refresh_token = self._store_refresh_token(connection, username, now)
        return self._tokens(user, now, now, refresh_token)

    def respond_to_new_password_challenge(self, username: str, session: str, new_password: str) -> Tokens:
        username = normalize_email(username)
        session_hash = _digest(session)
        now = self._clock.now()
        # Checked before the policy so a weak password leaves a valid session usable for the next try.
        if not self._session_open(session_hash, username, now.timestamp()):
            raise InvalidSessionError()
        failures = password_policy_failures(new_password)
        if failures:
            raise PasswordPolicyError("Password must have " + ", ".join(failures))
        password_hash = self._hasher.hash(new_password)
        with self._database.transaction() as connection:
            # The conditional UPDATE is the single-use guarantee: only one concurrent caller can flip `used`.
            claimed = connection.execute(
                "UPDATE identity_sessions SET used = 1"
                " WHERE session_hash = ? AND username = ? AND purpose = ? AND used = 0 AND expires_at > ?",
                (session_hash, username, _SESSION_PURPOSE, now.timestamp()),
            ).rowcount
            if claimed != 1:
                raise InvalidSessionError()
            changed = connection.execute(
                "UPDATE identity_users SET password_hash = ?, status = ?, password_expires_at = NULL, updated_at = ?"
                " WHERE username = ? AND status = ? AND enabled = 1",
                (password_hash, _CONFIRMED.value, format_timestamp(now), username, _FORCE_CHANGE.value),
            ).rowcount
            if changed != 1:
                raise InvalidSessionError()
            row = connection.execute("SELECT * FROM identity_users WHERE username = ?", (username,)).fetchone()
            refresh_token = self._store_refresh_token(connection, username, now)
        return self._tokens(_user_from_row(row), now, now, refresh_token)

    def refresh(self, refresh_token: str) -> Tokens:
        """New ID and access tokens for a live refresh token (which stays the same)."""
        now = self._clock.now()
        rows = self._database.read(
            "SELECT t.auth_time, t.expires_at, t.revoked, u.* FROM identity_refresh_tokens AS t"
            " JOIN identity_users AS u ON u.username = t.username WHERE t.token_hash = ?",
            (_digest(refresh_token),),
        )
        if not rows:
            raise InvalidTokenError()
        row = rows[0]
        user = _user_from_row(row)
        if row["revoked"] or now.timestamp() >= row["expires_at"] or not user.enabled or user.status is not _CONFIRMED:
            raise InvalidTokenError()
        return self._tokens(user, datetime.fromtimestamp(row["auth_time"], UTC), now, refresh_token)

    def sign_out_everywhere(self, username: str) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "UPDATE identity_refresh_tokens SET revoked = 1 WHERE username = ?", (normalize_email(username),)
            )

    def verify_id_token(self, token: str) -> dict[str, object]:
        claims = self._keys.verify(token, self._audience, self._issuer, now=self._clock.now())
        if claims.get("token_use") != "id":
            raise InvalidTokenError()
        return claims

    def _find(self, username: str) -> sqlite3.Row | None:
        rows = self._database.read("SELECT * FROM identity_users WHERE username = ?", (username,))
        return rows[0] if rows else None

    def _password_matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _rehash_if_needed(self, username: str, password_hash: str, password: str) -> None:
        if not self._hasher.check_needs_rehash(password_hash):
            return
        new_hash = self._hasher.hash(password)
        with self._database.transaction() as connection:
            # Only over the hash just verified, so a password changed meanwhile is kept.
            connection.execute(
                "UPDATE identity_users SET password_hash = ? WHERE username = ? AND password_hash = ?",
                (new_hash, username, password_hash),
            )

    def _start_challenge(self, username: str, now: datetime) -> AuthChallenge:
        session = secrets.token_urlsafe(32)
        with self._database.transaction() as connection:
            # Housekeeping, so abandoned challenges do not pile up.
            connection.execute(
                "DELETE FROM identity_sessions WHERE username = ? AND (used = 1 OR expires_at <= ?)",
                (username, now.timestamp()),
            )
            connection.execute(
                "INSERT INTO identity_sessions (session_hash, username, purpose, expires_at, used)"
                " VALUES (?, ?, ?, ?, 0)",
                (_digest(session), username, _SESSION_PURPOSE, now.timestamp() + self._challenge_ttl_seconds),
            )
        return AuthChallenge(NEW_PASSWORD_REQUIRED, session)

    def _session_open(self, session_hash: str, username: str, now: float) -> bool:
        rows = self._database.read(
            "SELECT 1 FROM identity_sessions"
            " WHERE session_hash = ? AND username = ? AND purpose = ? AND used = 0 AND expires_at > ?",
            (session_hash, username, _SESSION_PURPOSE, now),
        )
        return bool(rows)

    @staticmethod
    def _end_sessions(connection: sqlite3.Connection, username: str) -> None:
        connection.execute("UPDATE identity_sessions SET used = 1 WHERE username = ? AND used = 0", (username,))

    @staticmethod
    def _store_refresh_token(connection: sqlite3.Connection, username: str, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        connection.execute(
            "INSERT INTO identity_refresh_tokens (token_hash, username, auth_time, expires_at, revoked)"
            " VALUES (?, ?, ?, ?, 0)",
            (_digest(token), username, now.timestamp(), (now + _REFRESH_TOKEN_TTL).timestamp()),
        )
        return token

    def _tenant_status(self, tenant_id: str | None) -> str | None:
        if not tenant_id:
            return None
        rows = self._database.read("SELECT status FROM tenants WHERE tenant_id = ?", (tenant_id,))
        return str(rows[0]["status"]) if rows else None

    def _tokens(self, user: IdentityUser, auth_time: datetime, now: datetime, refresh_token: str) -> Tokens:
        issued_at = int(now.timestamp())
        common: dict[str, Any] = {
            "sub": user.sub,
            "iss": self._issuer,
            "iat": issued_at,
            "exp": issued_at + self._token_ttl_seconds,
            "auth_time": int(auth_time.timestamp()),
        }
        tenant = {"custom:tenant_id": user.tenant_id} if user.tenant_id else {}
        # Every attribute goes into the ID token, as Cognito does; the registered claims win over them.
        id_claims = {
            **user.attributes,
            **common,
            "aud": self._audience,
            "token_use": "id",
            "cognito:username": user.username,
            "email": user.email,
            "email_verified": user.attributes.get("email_verified", "").lower() == "true",
            "jti": str(uuid.uuid4()),
        }
        status = self._tenant_status(user.tenant_id)
        if status is not None:
            # As Cognito's pre-token-generation trigger adds it: the status when the token was
            # issued, for the application's own checks (the API reads the record each time).
            id_claims["custom:tenant_status"] = status
        access_claims = {
            **common,
            **tenant,
            "token_use": "access",
            "client_id": self._audience,
            "username": user.username,
            "scope": _ACCESS_SCOPE,
            "jti": str(uuid.uuid4()),
        }
        return Tokens(
            id_token=self._keys.sign(id_claims),
            access_token=self._keys.sign(access_claims),
            refresh_token=refresh_token,
            expires_in=self._token_ttl_seconds,
        )
