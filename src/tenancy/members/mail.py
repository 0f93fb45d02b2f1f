"""The invitation email: who invites whom to which team, as what, the single-use link (a secret:
no stored copy of the email keeps it) and until when it works."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from tenancy.domain.members import Role
from tenancy.domain.model import OutgoingEmail

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

    def link(self, token: str) -> str:
        return f"{self.base_url}/join/{token}"

    def invitation(self, to: str, team: str, inviter: str, role: Role, link: str, until: str) -> OutgoingEmail:
        paragraphs = [
            f"{inviter} invites you to join {team} on Site Builder as {_WHAT[role]}.",
            f"Open this link to accept and choose your password: {link}",
            f"The link works once, until {until}. If you did not expect this, ignore this email.",
            f"Questions? Write to {self.support_email}.",
        ]
        return OutgoingEmail(
            to=to,
            subject=f"You are invited to join {team} on Site Builder",
            text="\n\n".join(paragraphs) + "\n",
            html="".join(f"<p>{escape(paragraph)}</p>" for paragraph in paragraphs),
            sender=self.sender,
            tags={"kind": "invitation"},
            secrets=(link,),
        )
