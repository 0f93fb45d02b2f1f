"""Login and tenant access for customers, producing RB-001 3.1's symptoms:
no identity user -> "Account not found"; no active tenant -> "Tenant not found"."""

from __future__ import annotations

from tenancy.accounts.throttle import LoginThrottle
from tenancy.domain.ids import normalize_email
from tenancy.domain.model import AuthChallenge, Tenant, TenantStatus, Tokens
from tenancy.errors import InvalidTokenError, TenantNotFoundError
from tenancy.ports import IdentityProvider, TenantStore

__all__ = ["AccountService"]


class AccountService:
    def __init__(self, identity: IdentityProvider, tenants: TenantStore, throttle: LoginThrottle | None = None) -> None:
        self._identity = identity
        self._tenants = tenants
        self._throttle = throttle

    def login(self, email: str, password: str, source: str = "") -> Tokens | AuthChallenge:
        """Tokens or the new-password challenge; the password is checked before the tenant,
        so only the account's owner learns that its tenant is missing. Repeated failures lock
        the account and the source out for a while (RateLimitedError)."""
        username = normalize_email(email)
        if self._throttle is not None:
            self._throttle.attempt(username, source)
        result = self._identity.authenticate(username, password)
        if self._throttle is not None:
            self._throttle.succeeded(username, source)
        self._require_active_tenant(username)
        return result

    def complete_new_password(self, email: str, session: str, new_password: str) -> Tokens:
        """The session is checked before the tenant, as the password is in `login`, so that a
        caller without a valid session learns nothing about an account."""
        username = normalize_email(email)
        tokens = self._identity.respond_to_new_password_challenge(username, session, new_password)
        self._require_active_tenant(username)
        return tokens

    def tenant_for_token(self, id_token: str) -> Tenant:
        """The caller's own tenant, named only by the verified token: never another tenant."""
        claims = self._identity.verify_id_token(id_token)
        tenant_id = claims.get("custom:tenant_id")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise InvalidTokenError("token carries no tenant")
        tenant = self._tenants.get(tenant_id)
        if tenant is None or tenant.status is not TenantStatus.ACTIVE:
            raise TenantNotFoundError()
        return tenant

    def _require_active_tenant(self, username: str) -> None:
        user = self._identity.get_user(username)
        tenant_id = user.tenant_id if user is not None else None
        tenant = self._tenants.get(tenant_id) if tenant_id else None
        if tenant is None or tenant.status is not TenantStatus.ACTIVE:
            raise TenantNotFoundError()
