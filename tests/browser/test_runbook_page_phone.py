"""An operator on a phone follows a case's finding to its section of the runbook: the case page's
RB-001 scenario is a link, it lands on the section's heading of the runbook page, and that page
fits a 390 px window (code and tables scroll in their own box) and passes axe."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from conftest import PHONE, Snapshots, buy, invite_and_sign_in_operator
from servers import MailCatcher, RunningServer

OPERATOR = "runbook.reader.onaphone@platformoperations.example.org"
OWNER = "lost.identity.runbook@example.org"


def test_an_operator_on_a_phone_follows_a_4_2_case_to_its_runbook_section(
    phone: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    catcher, _ = smtp_server
    buy(web_server, catcher, OWNER)
    services = web_server.services()
    try:
        services.identity.delete_user(OWNER)  # RB-001 4.2: the tenant stands, its identity user is gone
        [job] = services.journal.find(email=OWNER)
    finally:
        services.close()
    invite_and_sign_in_operator(phone, web_server, smtp_server, OPERATOR, "Operator-Reader-9!")

    phone.goto(f"{web_server.base_url}/ops/cases/{job.transaction_id}")
    expect(phone.locator("#scenario")).to_have_text("4.2")
    snap(phone, "case")
    phone.locator("#scenario-link").click()

    expect(phone).to_have_url(f"{web_server.base_url}/ops/runbook#4-2")
    section = phone.locator('[id="4-2"]')  # an id starting with a digit is no CSS #selector
    expect(section).to_have_text("4.2 Scenario: Cognito User Creation Failed")
    expect(section).to_be_in_viewport()
    expect(phone.get_by_role("link", name="Runbook", exact=True)).to_have_attribute("aria-current", "page")
    # Wide code blocks scroll inside themselves, and the keyboard can reach them to scroll.
    for block in phone.locator("#runbook pre").all():
        expect(block).to_have_attribute("tabindex", "0")
    snap(phone, "runbook")
    assert phone.viewport_size == PHONE
    assert phone.evaluate("window.scrollX") == 0
