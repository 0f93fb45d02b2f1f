"""An operator in a real browser: invited with `tenancy ops add-operator`, signs in, finds a tenant
broken as RB-001 4.2 (its identity user deleted), repairs it from the console after reading the
dry-run plan, and sees verify pass and the repair in the trail."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Dialog, Page, expect

from tenancy.domain.model import JobStatus
from tenancy.runbook.audit_export import CSV_COLUMNS

from conftest import Snapshots, buy, email_to, invite_and_sign_in_operator
from helpers import journal_job
from servers import MailCatcher, RunningServer, temporary_password_in

OPERATOR = "ops-browser@example.com"
OWNER = "broken-owner@example.com"


def test_an_operator_repairs_an_rb001_4_2_case_from_the_console(
    page: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    catcher, _ = smtp_server
    buy(web_server, catcher, OWNER, plan="professional")
    services = web_server.services()
    try:
        services.identity.delete_user(OWNER)  # RB-001 4.2: the tenant stands, its identity user is gone
        services.scheduled_audit.run()  # deleted by hand: the weekly audit is what finds it
    finally:
        services.close()
    invite_and_sign_in_operator(page, web_server, smtp_server, OPERATOR, "Operator-Chosen-5!")
    expect(page).to_have_url(f"{web_server.base_url}/ops")
    expect(page.locator("#finding-identity_user_missing .count")).to_have_text("1")
    snap(page, "dashboard")

    page.get_by_role("link", name="Jobs and cases").click()
    page.get_by_label("Email, tenant id or transaction id").fill(OWNER)
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tr.job-row")
    expect(rows).to_have_count(1)
    snap(page, "jobs")
    rows.first.get_by_role("link").click()

    expect(page.locator("#scenario")).to_have_text("4.2")
    expect(page.locator("#verify-result")).to_have_text("Verification failed")
    expect(page.locator("#trail-empty")).to_be_visible()
    snap(page, "case-broken")
    page.get_by_role("link", name="Repair…").click()

    expect(page.get_by_role("heading", name="The repair will (dry run: nothing has changed yet)")).to_be_visible()
    expect(page.locator("#plan li").first).to_be_visible()
    snap(page, "repair-plan")
    questions: list[str] = []

    def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Repair now").click()

    expect(page.locator("#notice")).to_have_text("Repaired. The checks below ran again after the repair.")
    expect(page.locator("#finding")).to_have_text("healthy")
    expect(page.locator("#verify-result")).to_have_text("All checks pass")
    expect(page.locator("tr.trail-entry")).to_have_count(1)
    expect(page.locator("tr.trail-entry td").first).to_have_text(OPERATOR)
    snap(page, "case-repaired")
    assert len(questions) == 1
    assert "This changes data" in questions[0]

    services = web_server.services()
    try:
        user = services.identity.get_user(OWNER)
        assert user is not None
        assert user.tenant_id is not None
        tenant = services.tenants.get(user.tenant_id)
        assert tenant is not None
        assert tenant.owner_user_id == user.sub
    finally:
        services.close()
    # The repair sent the owner a new welcome email with a fresh temporary password.
    assert len([message for message in catcher.to(OWNER) if "Welcome" in message["Subject"]]) == 2


def test_an_operator_redrives_a_dead_letter_and_reads_the_outbox_and_the_audit(
    page: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    catcher, _ = smtp_server
    parked_email = "parked@example.com"
    services = web_server.services()
    try:
        job = journal_job(services, "TXN-PARKED1", parked_email, "starter")
        services.journal.save(job.with_changes(status=JobStatus.DEAD_LETTERED, attempts=5,
                                               last_error="transient: SMTP timeout (after 5 attempts)"))  # fmt: skip
        services.queue.send_dead_letter("TXN-PARKED1", "transient: SMTP timeout (after 5 attempts)")
    finally:
        services.close()
    operator = "ops-dlq@example.com"
    invite_and_sign_in_operator(page, web_server, smtp_server, operator, "Operator-Chosen-6!")

    page.get_by_role("link", name="Dead-letter queue").click()
    expect(page.get_by_role("heading", name="Dead-letter queue")).to_be_visible()
    expect(page.locator("#dlq-count")).to_have_text("1 dead-lettered message.")
    snap(page, "dlq")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#dlq").get_by_role("button", name="Redrive").click()
    expect(page.locator("#notice")).to_contain_text("back on the work queue")
    expect(page.locator("#dlq-count")).to_have_text("0 dead-lettered messages.")
    snap(page, "dlq-redriven")
    # The server's own worker now provisions the redriven job: its welcome email arrives.
    assert temporary_password_in(email_to(catcher, parked_email, "Welcome"))

    page.get_by_role("link", name="Mail outbox").click()
    expect(page.get_by_role("heading", name="Mail outbox")).to_be_visible()
    expect(page.locator("tr.mail-row").filter(has_text=parked_email)).to_have_count(1)
    snap(page, "mail")

    page.get_by_role("link", name="Weekly audit").click()
    expect(page.get_by_role("heading", name="Provisioning audit")).to_be_visible()
    snap(page, "audit")
    with page.expect_download() as download_info:
        page.locator("#csv-link").click()
    download = download_info.value
    csv_text = Path(download.path()).read_text()
    assert csv_text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert download.suggested_filename.startswith("provisioning-audit-")
