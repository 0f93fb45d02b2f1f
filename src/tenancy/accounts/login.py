"""Login and tenant access for customers, producing RB-001 3.1's symptoms:
no identity user -> "Account not found"; no active tenant -> "Tenant not found"; a suspended or
cancelled tenant's people sign in, and reach only billing ("Tenant suspended").
Operators sign in without a tenant. Also the forgotten-password reset by emailed code, and the
check that an API caller's ID token still counts."""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from tenancy.accounts.reset import ResetMail, password_reset_email
from tenancy.accounts.roles import OPERATOR_ROLE, roles_of
from tenancy.accounts.sessions import SessionService
from tenancy.accounts.throttle import LoginThrottle, ResetRequestThrottle
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import normalize_email
from tenancy.domain.model import AuthChallenge, Tenant, Tokens, UserRecord, UserStatus
from tenancy.errors import (
    AccountNotFoundError,
    AuthenticationError,
    ConfigurationError,
    InvalidCredentialsError,
    InvalidTokenError,
    PermanentError,
    TenancyError,
    TenantBlockedError,
    TenantNotFoundError,
    TransientError,
)
from tenancy.ports import Clock, IdentityProvider, TenantStore, UserStore

__all__ = ["AccountService"]

log = structlog.get_logger(__name__)


class AccountService:
    def __init__(
        self,
        identity: IdentityProvider,
        tenants: TenantStore,
        throttle: LoginThrottle | None = None,
        reset_mail: ResetMail | None = None,
        reset_throttle: ResetRequestThrottle | None = None,
        sessions: SessionService | None = None,
        users: UserStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._identity = identity
        self._users = users
        self._clock = clock
        self._tenants = tenants
        self._throttle = throttle
        self._reset_mail = reset_mail
        self._reset_throttle = reset_throttle
        self._sessions = sessions

    def sign_in_delay(self, email: str) -> float:
        """Seconds a sign-in of this account waits before its password is checked (the caller
        waits without holding a thread): more as its failures from everywhere pile up."""
        if self._throttle is None:
            return 0.0
        return self._throttle.delay_for(normalize_email(email))

    def login(self, email: str, password: str, source: str = "") -> Tokens | AuthChallenge:
        """Tokens or the new-password challenge; the password is checked before the tenant,
        so only the account's owner learns that its tenant is missing. Repeated failures lock
        this source out of the account, or out of every account, for a while (RateLimitedError);
        the account itself is never locked (see `sign_in_delay`)."""
        username = normalize_email(email)
        if self._throttle is not None:
            self._throttle.attempt(username, source)
        if self._sessions is not None:
            self._sessions.wait_out_revocation(username)
        try:
            result = self._identity.authenticate(username, password)
        except AuthenticationError:
            if self._throttle is not None:
                self._throttle.failed(username)
            raise
        if self._throttle is not None:
            self._throttle.succeeded(username, source)
        self._require_access(username)
        if isinstance(result, Tokens):
            self._note_sign_in(username)
        return result

    def complete_new_password(self, email: str, session: str, new_password: str) -> Tokens:
        """The session is checked before the tenant, as the password is in `login`, so that a
        caller without a valid session learns nothing about an account."""
        username = normalize_email(email)
        tokens = self._identity.respond_to_new_password_challenge(username, session, new_password)
        self._require_access(username)
        self._note_sign_in(username)
        return tokens

    def _note_sign_in(self, username: str) -> None:
        """The member's latest sign-in, for the team list; never a reason to refuse one."""
        if self._users is None or self._clock is None:
            return
        try:
            self._users.record_sign_in(username, format_timestamp(self._clock.now()))
        except TenancyError as error:
            log.warning("sign_in_not_noted", error=str(error))

    def request_password_reset(self, email: str, source: str = "") -> None:
        """Emails a reset code when the account may reset (Cognito emails its own). Says nothing
        either way, so the reset form cannot be used to learn which emails have accounts: past
        the request limit, or when the provider fails, it quietly sends nothing."""
        username = normalize_email(email)
        if not username:
            return
        if self._reset_throttle is not None and not self._reset_throttle.allows(username, source):
            log.warning("password_reset_throttled")
            return
        try:
            code = self._identity.start_password_reset(username)
        except AccountNotFoundError:
            log.info("password_reset_unknown_account")
            return
        except InvalidCredentialsError as refused:
            log.info("password_reset_refused", reason=refused.reason)
            return
        except (TransientError, PermanentError) as failure:
            # Only a real account reaches the provider call that fails (Cognito's
            # LimitExceededException), so an error page here would tell who has an account.
            log.warning("password_reset_failed", error=type(failure).__name__)
            return
        if code is None:
            log.info("password_reset_started", delivered_by="identity_provider")
            return
        if self._reset_mail is None:
            raise ConfigurationError("password reset codes need a mailer: wire AccountService with reset_mail")
        mail = self._reset_mail
        try:
            message_id = mail.mailer.send(
                password_reset_email(
                    username, code, login_url=mail.login_url, sender=mail.sender, support_email=mail.support_email
                )
            )
        except (TransientError, PermanentError) as failure:
            # As above: a mail server's refusal must not answer differently for a real account.
            log.warning("password_reset_failed", error=type(failure).__name__)
            return
        log.info("password_reset_started", delivered_by="mailer", message_id=message_id)

    def confirm_password_reset(self, email: str, code: str, new_password: str) -> None:
        """Sets the new password with the emailed code. InvalidCredentialsError ("Invalid or
        expired code") for a wrong, used or expired code; PasswordPolicyError for a weak password.
        A valid code is never refused: guessing is bounded by the provider (a few tries per code)
        and by the cap on codes sent; a wrong code still counts as a failed sign-in. Success ends
        every session of the account, everywhere."""
        username = normalize_email(email)
        code = code.strip()
        if not code:
            raise InvalidCredentialsError("Invalid or expired code")
        try:
            self._identity.confirm_password_reset(username, code, new_password)
        except InvalidCredentialsError:
            if self._throttle is not None:
                self._throttle.failed(username)
            raise
        if self._sessions is not None:
            self._sessions.end_everywhere(username, "password_reset")
        log.info("password_reset_confirmed")

    def tenant_for_token(self, id_token: str) -> Tenant:
        """The caller's own tenant, named only by the verified token: never another tenant."""
        return self._tenant_of(self._claims(id_token))

    def member_for_token(self, id_token: str) -> tuple[Tenant, UserRecord]:
        """The caller's tenant and its active users record (whose `role` is the truth the API
        enforces, read on every request): InvalidTokenError for a token whose user is no longer
        an active member of the tenant it names."""
        claims = self._claims(id_token)
        tenant = self._tenant_of(claims)
        member = self._member(tenant, claims)
        if member is None:
            raise InvalidTokenError("not a member of this tenant")
        return tenant, member

    def _claims(self, id_token: str) -> Mapping[str, object]:
        claims = self._identity.verify_id_token(id_token)
        if self._sessions is not None:
            self._sessions.require_current(claims)
        return claims

    def _tenant_of(self, claims: Mapping[str, object]) -> Tenant:
        tenant_id = claims.get("custom:tenant_id")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise InvalidTokenError("token carries no tenant")
        return self.active_tenant(tenant_id)

    def _member(self, tenant: Tenant, claims: Mapping[str, object]) -> UserRecord | None:
        sub, email = claims.get("sub"), claims.get("email")
        return self.member_of(
            tenant.tenant_id, email if isinstance(email, str) else "", sub if isinstance(sub, str) else None
        )

    def member_of(self, tenant_id: str, email: str, sub: str | None = None) -> UserRecord | None:
        """The person's active users record in the tenant, or None: by the identity subject (the
        normal flow keys a record by it), else by email (RB-001's hand-made "user_..." records)."""
        if self._users is None:
            return None
        found = self._users.get(sub) if sub else None
        candidates = [found] if found is not None else []
        if not candidates and email:
            candidates = self._users.find_by_email(email)
        for record in candidates:
            if record.tenant_id == tenant_id and record.status is UserStatus.ACTIVE:
                return record
        return None

    def active_tenant(self, tenant_id: str) -> Tenant:
        """The tenant if its people have access (active, past due, or cancelling until paid
        through); TenantBlockedError when they may only pay (suspended, cancelled: the record is
        read each time, so a move takes effect at once); TenantNotFoundError otherwise."""
        tenant = self._tenants.get(tenant_id)
        if tenant is not None and tenant.status.billing_only:
            raise TenantBlockedError(tenant.status.value)
        if tenant is None or not tenant.status.has_access:
            raise TenantNotFoundError()
        return tenant

    def _require_access(self, username: str) -> None:
        """An operator needs no tenant; anyone else needs one they may use or pay for."""
        user = self._identity.get_user(username)
        if user is not None and OPERATOR_ROLE in roles_of(user.attributes):
            return
        tenant_id = user.tenant_id if user is not None else None
        tenant = self._tenants.get(tenant_id) if tenant_id else None
        # A suspended or cancelled tenant's people sign in to reach billing (and pay).
        if tenant is None or not (tenant.status.has_access or tenant.status.billing_only):
            raise TenantNotFoundError()
