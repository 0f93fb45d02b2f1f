"""Operators: accounts for the operations console. An operator is an identity user with the
`operator` role and no tenant, invited by email with a temporary password."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import structlog

from tenancy.accounts.roles import OPERATOR_ROLE, ROLES_CLAIM, TENANT_ADMIN_ROLE, roles_of
from tenancy.domain.ids import normalize_email, temporary_password
from tenancy.domain.model import IdentityUser, OutgoingEmail
from tenancy.errors import InvalidInputError, ItemAlreadyExistsError
from tenancy.payments.intake import looks_like_email
from tenancy.ports import IdentityProvider, Mailer

__all__ = ["OPERATOR_INVITE_SUBJECT", "OperatorInvite", "OperatorInviteSettings", "OperatorService"]

OPERATOR_INVITE_SUBJECT = "Your Tenancy operations console account"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OperatorInvite:
    email: str
    created: bool  # False: the account was an operator already, and nothing was sent


@dataclass(frozen=True, slots=True)
class OperatorInviteSettings:
    login_url: str
    sender: str
    temporary_password_ttl_days: int


class OperatorService:
    def __init__(self, identity: IdentityProvider, mailer: Mailer, settings: OperatorInviteSettings) -> None:
        self._identity = identity
        self._mailer = mailer
        self._settings = settings

    def add_operator(self, email: str) -> OperatorInvite:
        """Creates the operator's identity user and emails the invitation. An existing operator is
        left as it is; a tenant's account is refused (InvalidInputError), since one identity user
        cannot be both and the saga would otherwise see an operator where it expects an owner."""
        email = normalize_email(email)
        if not looks_like_email(email):
            raise InvalidInputError(f"{email!r} is not a valid email address")
        existing = self._identity.get_user(email)
        if existing is not None:
            return self._existing(existing, email)
        password = temporary_password()
        attributes = {"email": email, "email_verified": "true", ROLES_CLAIM: OPERATOR_ROLE}
        try:
            user = self._identity.create_user(email, attributes, password)
        except ItemAlreadyExistsError:
            # Created meanwhile by someone else, whose invitation carries the password.
            raced = self._identity.get_user(email)
            if raced is None:
                raise
            return self._existing(raced, email)
        try:
            message_id = self._mailer.send(self._invitation(email, password, user.sub))
        except Exception:
            # Nobody knows this password: without the user, running the command again starts clean.
            self._identity.delete_user(email)
            raise
        log.info("operator_invited", identity_sub=user.sub, message_id=message_id)
        return OperatorInvite(email, created=True)

    @staticmethod
    def _existing(user: IdentityUser, email: str) -> OperatorInvite:
        roles = roles_of(user.attributes)
        if OPERATOR_ROLE in roles and TENANT_ADMIN_ROLE not in roles and user.tenant_id is None:
            return OperatorInvite(email, created=False)
        raise InvalidInputError(f"{email} is a tenant account; an operator needs an account of its own")

    def _invitation(self, email: str, password: str, sub: str) -> OutgoingEmail:
        settings = self._settings
        days = settings.temporary_password_ttl_days
        text = (
            "Hello,\n\n"
            "You have an account on the Tenancy operations console.\n\n"
            f"Sign in: {settings.login_url}\n"
            f"Email: {email}\n"
            f"Temporary password: {password}\n\n"
            "You will choose your own password when you first sign in. "
            f"The temporary password expires in {days} days.\n"
        )
        html = (
            "<p>Hello,</p>"
            "<p>You have an account on the Tenancy operations console.</p>"
            f'<p>Sign in: <a href="{escape(settings.login_url)}">{escape(settings.login_url)}</a><br>'
            f"Email: {escape(email)}<br>"
            f"Temporary password: <code>{escape(password)}</code></p>"
            "<p>You will choose your own password when you first sign in. "
            f"The temporary password expires in {days} days.</p>"
        )
        return OutgoingEmail(
            to=email,
            subject=OPERATOR_INVITE_SUBJECT,
            text=text,
            html=html,
            sender=settings.sender,
            tags={"kind": "operator_invite", "identity_sub": sub},
            secrets=(password,),
        )
