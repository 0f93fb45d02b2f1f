"""The forgotten-password email: the one-time code and a link to the reset form, as text and
as escaped HTML. The code is a secret, so no stored copy of the email keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode, urlsplit, urlunsplit

from tenancy.domain.model import OutgoingEmail
from tenancy.ports import Mailer

__all__ = ["RESET_SUBJECT", "ResetMail", "password_reset_email", "reset_url"]

RESET_SUBJECT = "Your Site Builder password reset code"
_LOGIN_PATH = "/auth/login"


@dataclass(frozen=True, slots=True)
class ResetMail:
    """What sending a reset code needs: the mailer, the sender, the login URL setting and the
    support address the email names."""

    mailer: Mailer
    sender: str
    login_url: str
    support_email: str


def reset_url(login_url: str, email: str) -> str:
    """The reset form beside the login page: `{base}/auth/reset?email=...`, where base is the
    login URL without its `/auth/login` (the site root when the login URL has another path)."""
    parts = urlsplit(login_url)
    prefix = parts.path.removesuffix(_LOGIN_PATH) if parts.path.endswith(_LOGIN_PATH) else ""
    return urlunsplit((parts.scheme, parts.netloc, f"{prefix}/auth/reset", urlencode({"email": email}), ""))


def password_reset_email(email: str, code: str, *, login_url: str, sender: str, support_email: str) -> OutgoingEmail:
    link = reset_url(login_url, email)
    text = (
        "Hello,\n\n"
        f"Someone asked to reset the password of the Site Builder account {email}.\n\n"
        f"Your reset code: {code}\n\n"
        f"Enter it with your new password at {link}\n"
        "The code works once, for one hour.\n\n"
        "If you did not ask for this, ignore this email: your password stays as it is.\n\n"
        f"Questions? Email {support_email}.\n"
    )
    html = (
        "<p>Hello,</p>"
        f"<p>Someone asked to reset the password of the Site Builder account {escape(email)}.</p>"
        f"<p>Your reset code: <code>{escape(code)}</code></p>"
        f'<p>Enter it with your new password at <a href="{escape(link)}">{escape(link)}</a><br>'
        "The code works once, for one hour.</p>"
        "<p>If you did not ask for this, ignore this email: your password stays as it is.</p>"
        f'<p>Questions? Email <a href="mailto:{escape(support_email)}">{escape(support_email)}</a>.</p>'
    )
    return OutgoingEmail(
        to=email,
        subject=RESET_SUBJECT,
        text=text,
        html=html,
        sender=sender,
        tags={"kind": "password_reset"},
        secrets=(code,),
    )
