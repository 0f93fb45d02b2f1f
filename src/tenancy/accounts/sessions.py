"""Sign-in sessions kept server-side, so that signing out really ends them.

A browser's cookie and an API client's refresh token both name a session record:
`<session_id>.<secret>`, of which only the secret's SHA-256 is stored. A browser session carries
what the pages need (who, which tenant, which roles); an API session is a refresh-token family
that holds the identity provider's own refresh token, never handed out. Each refresh rotates the
secret; a secret used twice (a stolen copy racing its owner) ends the whole family.

The provider's ID tokens are verified offline, so to end those too each user has a mark: ID tokens
issued before it no longer count. Signing out of the API, a password reset, and the removal or
demotion of an operator set it; a browser's sign-out does not need to, as no browser holds a token.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

import structlog

from tenancy.accounts.roles import roles_of
from tenancy.domain.ids import normalize_email, normalized_email_or_none
from tenancy.domain.model import SessionKind, SignInSession, Tokens
from tenancy.errors import InvalidTokenError
from tenancy.ports import Clock, IdentityProvider, SessionStore

__all__ = ["SessionLifetimes", "SessionService", "session_secret", "username_of"]

log = structlog.get_logger(__name__)

_SESSION_TOKEN = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")
# A sign-in right after a revocation waits out the rest of that second at most (see `not_before_for`).
_MAX_WAIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class SessionLifetimes:
    browser_seconds: int = 12 * 3600
    api_seconds: int = 30 * 86_400


def session_secret(token: str) -> str | None:
    """The secret half of a well-formed session token, or None."""
    match = _SESSION_TOKEN.match(token)
    return match.group(2) if match else None


def username_of(claims: Mapping[str, object]) -> str:
    # A verified token's username was normalised when the account was made; an older account's
    # that no longer passes today's rules simply matches no mark and no session.
    username = claims.get("cognito:username") or claims.get("email") or ""
    return normalized_email_or_none(str(username)) or str(username)


def not_before_for(moment: float) -> int:
    """ID tokens carry whole seconds (`iat`): a mark set during second S ends tokens issued up to
    and including S, so a stolen token issued a moment before a sign-out cannot survive it."""
    return math.floor(moment) + 1


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class SessionService:
    def __init__(
        self, store: SessionStore, identity: IdentityProvider, clock: Clock, lifetimes: SessionLifetimes
    ) -> None:
        self._store = store
        self._identity = identity
        self._clock = clock
        self._lifetimes = lifetimes

    def start_browser(self, claims: Mapping[str, object]) -> str:
        """A new browser session for the verified ID token's claims; returns the cookie's value."""
        return self._start(SessionKind.BROWSER, claims, None, self._lifetimes.browser_seconds)

    def start_api(self, tokens: Tokens) -> Tokens:
        """The provider's tokens with their refresh token swapped for a new family's."""
        claims = self._identity.verify_id_token(tokens.id_token)
        token = self._start(SessionKind.API, claims, tokens.refresh_token, self._lifetimes.api_seconds)
        return replace(tokens, refresh_token=token)

    def browser_session(self, token: str | None) -> SignInSession | None:
        """The live browser session the cookie names, or None."""
        found = self._live(token, SessionKind.BROWSER)
        return found[0] if found is not None else None

    def refresh(self, token: str) -> Tokens:
        """New ID and access tokens and the family's next refresh token. A refresh token that was
        already used ends its family (InvalidTokenError), as does any failure to rotate."""
        found = self._live(token, SessionKind.API, reuse_ends_family=True)
        if found is None:
            raise InvalidTokenError()
        session, secret = found
        provider_refresh_token = session.provider_refresh_token
        if provider_refresh_token is None:
            raise InvalidTokenError()
        new_secret = secrets.token_urlsafe(32)
        if not self._store.rotate(
            session.session_id, expected_secret_hash=_digest(secret), new_secret_hash=_digest(new_secret)
        ):
            # Another use of the same token won the race: one of the two is not the owner.
            self._end_family(session, "refresh_token_raced")
            raise InvalidTokenError()
        tokens = self._identity.refresh(provider_refresh_token)
        return replace(tokens, refresh_token=f"{session.session_id}.{new_secret}")

    def end(self, token: str) -> SignInSession | None:
        """Ends the session the token names (a browser cookie or an API refresh token) and, for an
        API family, every ID token of its user issued so far. Returns the session it ended."""
        found = self._live(token, None)
        if found is None:
            return None
        session = found[0]
        now = self._clock.now().timestamp()
        self._store.revoke(session.session_id, int(now))
        if session.kind is SessionKind.API:
            self._store.set_tokens_not_before(session.username, not_before_for(now))
        log.info("session_ended", kind=session.kind.value, session_id=session.session_id)
        return session

    def end_everywhere(self, username: str, reason: str) -> int:
        """Ends every session of the user, at the provider too, and every ID token issued so far:
        after a password reset, or when an operator is removed or demoted."""
        username = normalize_email(username)
        now = self._clock.now().timestamp()
        ended = self._store.revoke_user(username, int(now))
        self._store.set_tokens_not_before(username, not_before_for(now))
        self._identity.sign_out_everywhere(username)
        log.info("sessions_ended", reason=reason, sessions=ended)
        return ended

    def require_current(self, claims: Mapping[str, object]) -> None:
        """InvalidTokenError for a verified ID token issued before its user's sessions were ended."""
        mark = self._store.tokens_not_before(username_of(claims))
        issued_at = claims.get("iat")
        if mark is not None and (not isinstance(issued_at, int | float) or issued_at < mark):
            raise InvalidTokenError()

    def wait_out_revocation(self, username: str) -> None:
        """A sign-in in the very second its user's tokens were ended would get a token the mark
        ends too: wait for the next second first (at most one, and only then)."""
        mark = self._store.tokens_not_before(normalize_email(username))
        if mark is None:
            return
        wait = mark - self._clock.now().timestamp()
        if 0 < wait <= _MAX_WAIT_SECONDS:
            time.sleep(wait)

    def _start(
        self, kind: SessionKind, claims: Mapping[str, object], provider_refresh_token: str | None, lifetime: int
    ) -> str:
        session_id, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        tenant_id = claims.get("custom:tenant_id")
        now = int(self._clock.now().timestamp())
        self._store.create(
            SignInSession(
                session_id=session_id,
                secret_hash=_digest(secret),
                kind=kind,
                username=username_of(claims),
                subject=str(claims.get("sub", "")),
                tenant_id=tenant_id if isinstance(tenant_id, str) and tenant_id else None,
                roles=tuple(sorted(roles_of(claims))),
                created_at=now,
                expires_at=now + lifetime,
                provider_refresh_token=provider_refresh_token,
            )
        )
        log.info("session_started", kind=kind.value, session_id=session_id)
        return f"{session_id}.{secret}"

    def _live(
        self, token: str | None, kind: SessionKind | None, *, reuse_ends_family: bool = False
    ) -> tuple[SignInSession, str] | None:
        match = _SESSION_TOKEN.match(token or "")
        if match is None:
            return None
        session_id, secret = match.groups()
        session = self._store.get(session_id)
        if session is None or (kind is not None and session.kind is not kind):
            return None
        if session.revoked_at is not None or session.expires_at <= self._clock.now().timestamp():
            return None
        if not hmac.compare_digest(session.secret_hash, _digest(secret)):
            if reuse_ends_family:
                # Only the family's holders know its id: an old secret under it is a replayed token.
                self._end_family(session, "refresh_token_reused")
            return None
        return session, secret

    def _end_family(self, session: SignInSession, reason: str) -> None:
        now = self._clock.now().timestamp()
        self._store.revoke(session.session_id, int(now))
        self._store.set_tokens_not_before(session.username, not_before_for(now))
        log.warning(reason, session_id=session.session_id)
