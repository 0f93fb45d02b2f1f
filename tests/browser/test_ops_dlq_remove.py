"""An operator in a real browser removes a stale dead-letter message: the purchase healed, its old
copy still sits in the DLQ keeping the alarm on. The console offers Remove for that message only
(not for the purchase still broken), asks first, and the week's audit still shows the dead-letter."""

from __future__ import annotations

from playwright.sync_api import Dialog, Page, expect

from tenancy.domain.model import JobStatus

from conftest import Snapshots, buy, invite_and_sign_in_operator
from helpers import journal_job
from servers import MailCatcher, RunningServer

HEALED_OWNER = "healed-owner@example.com"
BROKEN = "TXN-STILL-BROKEN"
OPERATOR = "ops-remover@example.com"


def test_an_operator_removes_the_stale_copy_of_a_healed_purchase(
    page: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    catcher, _ = smtp_server
    buy(web_server, catcher, HEALED_OWNER)
    services = web_server.services()
    try:
        [job] = services.journal.find(email=HEALED_OWNER)
        healed = job.transaction_id
        # The sweep parked a copy while a slow run was still going; the run then finished.
        services.queue.send_dead_letter(healed, "stalled: its run stopped 5 times without a word (after 5 attempts)")
        broken = journal_job(services, BROKEN, "still-broken@example.com", "starter")
        services.journal.save(broken.with_changes(status=JobStatus.DEAD_LETTERED, attempts=5,
                                                  last_error="permanent: 550 mailbox unavailable"))  # fmt: skip
        services.queue.send_dead_letter(BROKEN, "permanent: 550 mailbox unavailable")
    finally:
        services.close()
    invite_and_sign_in_operator(page, web_server, smtp_server, OPERATOR, "Operator-Chosen-7!")

    page.get_by_role("link", name="Dead-letter queue").click()
    expect(page.locator("#dlq-count")).to_have_text("2 dead-lettered messages.")
    healed_row = page.locator("tr.dlq-row").filter(has_text=healed)
    broken_row = page.locator("tr.dlq-row").filter(has_text=BROKEN)
    expect(healed_row.locator(".purchase-now")).to_have_text("healed (healthy)")
    expect(broken_row.locator(".purchase-now")).to_have_text("provisioning_failed")
    expect(broken_row.get_by_role("button", name="Remove")).to_have_count(0)
    snap(page, "dlq-with-a-stale-copy")
    questions: list[str] = []

    def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    healed_row.get_by_role("button", name="Remove").click()

    expect(page.locator("#notice")).to_have_text(
        "The message is removed from the dead-letter queue; its purchase stays healthy."
    )
    expect(page.locator("#dlq-count")).to_have_text("1 dead-lettered message.")
    expect(page.locator("tr.dlq-row")).to_have_count(1)
    expect(page.locator("tr.dlq-row").first).to_contain_text(BROKEN)
    snap(page, "dlq-stale-copy-removed")
    assert len(questions) == 1
    assert questions[0].startswith("Remove message ")
    assert "Its purchase is healthy" in questions[0]

    page.get_by_role("link", name="Weekly audit").click()
    attempts = page.locator("#attempts")
    expect(attempts.locator("tr.attempt-row").filter(has_text=healed)).to_contain_text("healed")
    expect(attempts.locator("tr.attempt-row").filter(has_text=BROKEN)).to_contain_text("open: provisioning_failed")
    snap(page, "audit-attempts")
