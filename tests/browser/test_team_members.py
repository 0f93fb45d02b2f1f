"""A team in Chromium against `tenancy serve`: the owner invites from the account page's Team
section, the member opens the emailed link on a phone, chooses a password and is signed in; the
owner removes them and the member's next page load goes to sign-in (their session ended at once).
Every page shot is checked by `snap` for axe violations and for overflow at its width."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from conftest import Snapshots, buy, email_to, sign_in_first_time
from servers import MailCatcher, RunningServer

OWNER = "team.owner@example.com"
# Long, with nowhere to break: the join page and the Team section must wrap it on a phone.
MEMBER = "margaret.heafield.hamilton.apollo.guidance@softwareengineering.example.org"


def test_the_owner_invites_the_member_joins_and_is_signed_out_when_removed(
    page: Page, phone: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    base = web_server.base_url
    catcher = smtp_server[0]
    temporary = buy(web_server, catcher, OWNER, plan="professional")  # 5 seats
    sign_in_first_time(page, base, OWNER, temporary, "Team-Owner-7!")
    expect(page).to_have_url(f"{base}/account")
    expect(page.locator("#team-seats")).to_contain_text("1 of 5")

    # The owner invites, from the Team section's form.
    page.get_by_label("Email", exact=True).fill(MEMBER)
    page.get_by_label("Role", exact=True).select_option("editor")
    page.get_by_role("button", name="Invite").click()
    expect(page.locator("#team-notice")).to_contain_text("Invitation sent.")
    expect(page.locator("#team-seats")).to_contain_text("2 of 5")
    expect(page.locator("#invitations")).to_contain_text(MEMBER)
    snap(page, "owner-invited")

    # The member opens the emailed link on their phone and chooses a password.
    link = re.search(r"/join/\S+", email_to(catcher, MEMBER, "invited"))
    assert link, "the invitation email carries no join link"
    phone.goto(f"{base}{link.group(0)}")
    expect(phone.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Join "))
    expect(phone.locator("#join-email")).to_have_text(MEMBER)
    expect(phone.locator("#join-role")).to_have_text("Editor")
    snap(phone, "join-page")
    phone.get_by_label("New password", exact=True).fill("Team-Member-7!")
    phone.get_by_label("Repeat the new password").fill("Team-Member-7!")
    phone.get_by_role("button", name=re.compile(r"^Join ")).click()

    # Signed in: the account page, as an editor, with the team and no forms.
    expect(phone).to_have_url(f"{base}/account?team=joined#team")
    expect(phone.locator("#team-notice")).to_contain_text("you have joined the team")
    expect(phone.get_by_role("button", name=f"Sign out {MEMBER}")).to_be_visible()
    expect(phone.locator("#team-ask-admin")).to_be_visible()
    expect(phone.locator("#invite-form")).to_have_count(0)
    snap(phone, "member-account")

    # The owner sees the member and removes them (confirming the browser's question).
    page.reload()
    expect(page.locator("#members")).to_contain_text(MEMBER)
    expect(page.locator("#invitations-empty")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Remove {MEMBER}").click()
    expect(page.locator("#team-notice")).to_contain_text("Member removed")
    expect(page.locator("#team-seats")).to_contain_text("1 of 5")
    snap(page, "owner-removed")

    # The member's next page load goes to sign-in: their session ended with the removal.
    phone.reload()
    expect(phone).to_have_url(re.compile(rf"^{re.escape(base)}/auth/login\?next="))
    expect(phone.get_by_role("heading", name="Sign in")).to_be_visible()
    phone.get_by_label("Email").fill(MEMBER)
    phone.get_by_label("Password").fill("Team-Member-7!")
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.locator("#login-error")).to_be_visible()  # and can no longer sign in
