"""Operators: accounts for the operations console. An operator is an identity user with the
`operator` role and no tenant, invited by email with a temporary password."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import structlog

from tenancy.accounts.roles import OPERATOR_ROLE, ROLES_CLAIM, TENANT_ADMIN_ROLE, roles_of
from tenancy.accounts.sessions import SessionService
from tenancy.domain.ids import normalize_email, temporary_password
from tenancy.domain.model import IdentityUser, OutgoingEmail
from tenancy.domain.plurals import plural
from tenancy.errors import InvalidInputError, ItemAlreadyExistsError, NotFoundError
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
    def __init__(
        self,
        identity: IdentityProvider,
        mailer: Mailer,
        settings: OperatorInviteSettings,
        sessions: SessionService | None = None,
    ) -> None:
        self._identity = identity
        self._mailer = mailer
        self._settings = settings
        self._sessions = sessions

    def list_operators(self) -> list[IdentityUser]:
        """Every operator account, by email."""
        found = [
            user
            for batch in self._identity.scan_users()
            for user in batch
            if _is_operator_account(user)
        ]
        return sorted(found, key=lambda user: user.username)

    def remove_operator(self, email: str) -> None:
        """Deletes the operator's account and ends every session of theirs at once. NotFoundError
        when there is no such account; InvalidInputError for a tenant's account, which this
        command must never delete."""
        email = normalize_email(email)
        user = self._identity.get_user(email)
        if user is None:
            raise NotFoundError(f"{email} has no account")
        if not _is_operator_account(user):
            raise InvalidInputError(f"{email} is not an operator account; nothing was removed")
        self._identity.delete_user(email)
        if self._sessions is not None:
            self._sessions.end_everywhere(email, "operator_removed")
        log.info("operator_removed", identity_sub=user.sub)

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
        if _is_operator_account(user):
            return OperatorInvite(email, created=False)
        raise InvalidInputError(f"{email} is a tenant account; an operator needs an account of its own")

    def _invitation(self, email: str, password: str, sub: str) -> OutgoingEmail:
        settings = self._settings
        days = plural(settings.temporary_password_ttl_days, "day")
        text = (
            "Hello,\n\n"
            "You have an account on the Tenancy operations console.\n\n"
            f"Sign in: {settings.login_url}\n"
            f"Email: {email}\n"
            f"Temporary password: {password}\n\n"
            "You will choose your own password when you first sign in. "
            f"The temporary password expires in {days}.\n"
        )
        html = (
            "<p>Hello,</p>"
            "<p>You have an account on the Tenancy operations console.</p>"
            f'<p>Sign in: <a href="{escape(settings.login_url)}">{escape(settings.login_url)}</a><br>'
            f"Email: {escape(email)}<br>"
            f"Temporary password: <code>{escape(password)}</code></p>"
            "<p>You will choose your own password when you first sign in. "
            f"The temporary password expires in {days}.</p>"
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


def _is_operator_account(user: IdentityUser) -> bool:
    """An operator's own account: the role, and no tenant (one identity user is never both)."""
    roles = roles_of(user.attributes)
    return OPERATOR_ROLE in roles and TENANT_ADMIN_ROLE not in roles and user.tenant_id is None
