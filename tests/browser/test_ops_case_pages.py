"""Case pages in a real browser that must not contradict the runbook: an RB-001 4.4 purchase (its
welcome email lost) is never shown as passing, and an operator's own account is shown as an
operator, not a tenant, with no repair offered."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from conftest import Snapshots, buy, invite_and_sign_in_operator
from servers import MailCatcher, RunningServer

OPERATOR = "ops-cases@example.com"
OWNER = "lost-welcome@example.com"


def test_a_4_4_case_is_not_green_and_an_operator_is_not_a_tenant(
    page: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    catcher, _ = smtp_server
    buy(web_server, catcher, OWNER)
    services = web_server.services()
    try:
        assert services.database is not None
        with services.database.transaction() as connection:  # RB-001 4.4: the welcome email's record is lost
            connection.execute("DELETE FROM outbox WHERE to_address = ?", (OWNER,))
        [job] = services.journal.find(email=OWNER)
    finally:
        services.close()
    invite_and_sign_in_operator(page, web_server, smtp_server, OPERATOR, "Operator-Cases-5!")
    expect(page).to_have_url(f"{web_server.base_url}/ops")

    page.goto(f"{web_server.base_url}/ops/cases/{job.transaction_id}")

    expect(page.locator("#finding")).to_have_text("welcome_email_missing")
    expect(page.locator("#verify-result")).to_have_text("Verification failed")
    welcome = page.get_by_role("row", name="welcome email sent to the owner (RB-001 4.4)")
    expect(welcome.get_by_role("cell").first).to_have_text("fail")
    expect(page.locator("#verify-question")).to_contain_text("Can the owner sign in to a working tenant?")
    expect(page.get_by_role("link", name="Repair…")).to_be_visible()
    snap(page, "case-4-4")

    page.goto(f"{web_server.base_url}/ops/cases/{OPERATOR}")

    expect(page.locator("#finding")).to_have_text("not_a_tenant")
    expect(page.locator("#finding-label")).to_have_text("an operator account, not a tenant")
    expect(page.locator("#verify-result")).to_have_text("Verification failed")
    expect(page.get_by_role("link", name="Repair…")).to_have_count(0)
    expect(page.locator("#diagnosis")).not_to_contain_text("None")
    snap(page, "case-operator")
