"""The team's emails: the invitation (who invites whom to which team, as what, the single-use link,
a secret no stored copy of the email keeps, and until when it works), and the access restored by
a repair (RB-001 4.2 for a member: the sign-in link and a temporary password, a secret too)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from tenancy.domain.members import Role
from tenancy.domain.model import OutgoingEmail
from tenancy.domain.plurals import plural

__all__ = ["TeamMail"]

_WHAT = {
    Role.TENANT_ADMIN: "an admin (the team, billing and everything else)",
    Role.EDITOR: "an editor (you can change the sites)",
    Role.VIEWER: "a viewer (you can see the sites, not change them)",
}


@dataclass(frozen=True, slots=True)
class TeamMail:
    sender: str
    base_url: str  # where the link points: /join/<token>
    support_email: str
    login_url: str
    password_ttl_days: int

    def link(self, token: str) -> str:
        return f"{self.base_url}/join/{token}"

    def invitation(self, to: str, team: str, inviter: str, role: Role, link: str, until: str) -> OutgoingEmail:
        paragraphs = [
            f"{inviter} invites you to join {team} on Site Builder as {_WHAT[role]}.",
            f"Open this link to accept and choose your password: {link}",
            f"The link works once, until {until}. If you did not expect this, ignore this email.",
            f"Questions? Write to {self.support_email}.",
        ]
        return self._email(to, f"You are invited to join {team} on Site Builder", paragraphs, "invitation", link)

    def access_restored(self, to: str, team: str, role: Role, password: str) -> OutgoingEmail:
        paragraphs = [
            f"Your sign-in to {team} on Site Builder, as {_WHAT[role]}, was set up again by our support team.",
            f"Sign in: {self.login_url}",
            f"Email: {to}",
            f"Temporary password: {password}",
            "You will choose your own password when you sign in. "
            f"The temporary password expires in {plural(self.password_ttl_days, 'day')}.",
            f"Questions? Write to {self.support_email}.",
        ]
        return self._email(to, f"Your Site Builder sign-in to {team} is back", paragraphs, "access_restored", password)

    def _email(self, to: str, subject: str, paragraphs: list[str], kind: str, secret: str) -> OutgoingEmail:
        """Plain paragraphs as text and as escaped HTML; `secret` is what no stored copy keeps."""
        return OutgoingEmail(
            to=to,
            subject=subject,
            text="\n\n".join(paragraphs) + "\n",
            html="".join(f"<p>{escape(paragraph)}</p>" for paragraph in paragraphs),
            sender=self.sender,
            tags={"kind": kind},
            secrets=(secret,),
        )
