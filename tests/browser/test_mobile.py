"""Every page on a phone: a 390x844 window, as on an iPhone 12 to 15. A buyer's pages (pricing to
the account, sign-in, password reset, the return page in each state, the error pages) and every
operations-console page must fit its width: the page never scrolls sideways (`snap` fails the test
on any element that reaches past the right edge outside a scroll box, and names it), tables scroll
inside their own box, which the keyboard can reach and scroll, and long emails and ids wrap.
Each page is screenshotted at 390 px under tests/artifacts/ and checked with axe."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tenancy.domain.ids import new_transaction_id
from tenancy.domain.model import JobStatus
from tenancy.payments.simulator import build_itn, encode_form

from conftest import PHONE, Snapshots, buy, email_to, invite_and_sign_in_operator
from helpers import journal_job
from purchases import keyed, status_key_for, wait_for_job
from servers import MailCatcher, RunningServer, temporary_password_in

# Wider than a phone in one line, and with no hyphen or space to break at: in the header, the
# facts of the payment page and the console's tables.
LONG_EMAIL = "grace.brewster.murrayhopper.navalreserve@computinghistory.example.org"
OPERATOR = "operations.oncall.weekendrota.dutyengineer@platformoperations.example.org"


def every_page_fit(page: Page, snap: Snapshots) -> None:
    """Every page `snap` took was no wider than the phone (else the elements that reach past its edge)."""
    assert page.viewport_size == PHONE
    overflows, snap.overflows = snap.overflows, []  # said here, not again when `snap` ends
    assert overflows == [], "\n".join(["pages wider than the phone:", *overflows])


def scrolls_in_its_own_box(page: Page, region_name: str) -> None:
    """The table in the region named `region_name` is wider than the phone and scrolls inside its
    box, which the keyboard reaches (Tab) and scrolls (arrow keys), while the page stays put."""
    region = page.get_by_role("region", name=region_name)
    expect(region).to_have_attribute("tabindex", "0")
    assert region.evaluate("box => box.scrollWidth > box.clientWidth"), f"{region_name}: nothing to scroll"
    region.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("box => box.scrollLeft > 0", arg=region.element_handle())
    assert page.evaluate("window.scrollX") == 0


def status_of(page: Page, url: str) -> int:
    response = page.goto(url)
    assert response is not None, url
    return response.status


def post_itn(server: RunningServer, transaction_id: str, email: str, status: str = "COMPLETE") -> None:
    """An ITN for a checkout whose status key is `status_key_for(transaction_id)`, as PayFast sends it."""
    services = server.services()
    try:
        price = services.plans.get("starter").price_zar
        merchant_id, passphrase = services.settings.payfast_merchant_id, services.settings.passphrase
    finally:
        services.close()
    itn = build_itn(transaction_id=transaction_id, email=email, plan="starter", amount=price, status=status,
                    merchant_id=merchant_id, passphrase=passphrase, custom=keyed(transaction_id))  # fmt: skip
    response = httpx.post(f"{server.base_url}/payments/payfast/itn", content=encode_form(itn),
                          headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert response.status_code == 200, response.text


def hold_job_at(server: RunningServer, transaction_id: str, status: JobStatus) -> None:
    """Puts a finished job back in `status`, as a slow worker or a failed run would have left it."""
    job = wait_for_job(server, transaction_id)
    services = server.services()
    try:
        services.journal.save(job.with_changes(status=status))
    finally:
        services.close()


def test_a_buyer_on_a_phone_sees_every_page_fit(
    phone: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    catcher, base = smtp_server[0], web_server.base_url
    phone.goto(f"{base}/pricing")
    expect(phone.get_by_role("heading", name="Choose your Site Builder plan")).to_be_visible()
    snap(phone, "pricing")

    phone.get_by_role("link", name="Buy Professional").click()
    phone.get_by_role("button", name="Continue to payment").click()
    expect(phone.locator("#form-errors li")).to_have_count(2)
    snap(phone, "checkout-errors")
    phone.get_by_label("Your name").fill("Grace Brewster Murray Hopper")
    phone.get_by_label("Email").fill(LONG_EMAIL)
    snap(phone, "checkout")
    phone.get_by_role("button", name="Continue to payment").click()

    expect(phone.get_by_role("heading", name="Pay for Professional")).to_be_visible()
    snap(phone, "pay")
    phone.get_by_role("button", name="Simulate payment").click()
    expect(phone.locator("#purchase-status")).to_have_text(re.compile(r"^Ready: check your email"))
    snap(phone, "return-ready")

    temporary = temporary_password_in(email_to(catcher, LONG_EMAIL, "Welcome"))
    phone.get_by_role("link", name="Sign in").last.click()
    phone.get_by_label("Email").fill(LONG_EMAIL)
    phone.get_by_label("Password").fill("not-the-password")
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.locator("#login-error")).to_be_visible()
    snap(phone, "sign-in-refused")
    phone.get_by_label("Password").fill(temporary)
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.get_by_role("heading", name="Choose a new password")).to_be_visible()
    snap(phone, "new-password")
    phone.get_by_label("New password", exact=True).fill("Phone-Chosen-4!")
    phone.get_by_label("Repeat the new password").fill("Phone-Chosen-4!")
    phone.get_by_role("button", name="Set password and continue").click()

    expect(phone).to_have_url(f"{base}/account")
    expect(phone.locator("#plan")).to_have_text("Professional")
    snap(phone, "account")
    phone.goto(f"{base}/pricing")
    expect(phone.locator("#owner-note")).to_be_visible()
    snap(phone, "pricing-owner")
    phone.goto(f"{base}/checkout?plan=starter")
    snap(phone, "checkout-owner")
    assert status_of(phone, f"{base}/ops") == 403
    snap(phone, "ops-refused")
    assert status_of(phone, f"{base}/no-such-page") == 404
    expect(phone.get_by_role("heading", name="Page not found")).to_be_visible()
    snap(phone, "not-found")

    phone.get_by_role("button", name=f"Sign out {LONG_EMAIL}").click()
    expect(phone.get_by_role("heading", name="Sign in")).to_be_visible()
    snap(phone, "signed-out")
    phone.get_by_role("link", name="Forgot your password?").click()
    phone.get_by_label("Email").fill(LONG_EMAIL)
    snap(phone, "forgot")
    phone.get_by_role("button", name="Email me a code").click()
    expect(phone.get_by_role("status")).to_contain_text(f"If an account exists for {LONG_EMAIL}")
    code = re.search(r"Your reset code: (\d+)", email_to(catcher, LONG_EMAIL, "reset code"))
    assert code
    phone.get_by_label("Reset code").fill(code.group(1))
    snap(phone, "reset")
    every_page_fit(phone, snap)


def test_the_return_page_fits_a_phone_in_every_state(
    phone: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    base = web_server.base_url
    owner = "second.purchase.owner.withalongaddress@phoneshop.example.org"
    buy(web_server, smtp_server[0], owner)
    states = ("setting-up", "failed", "account-exists", "awaiting", "unpaid")
    purchases = {name: new_transaction_id() for name in states}
    post_itn(web_server, purchases["setting-up"], "slow.phone-buyer@example.org")
    hold_job_at(web_server, purchases["setting-up"], JobStatus.RUNNING)
    post_itn(web_server, purchases["failed"], "unlucky.phone-buyer@example.org")
    hold_job_at(web_server, purchases["failed"], JobStatus.DEAD_LETTERED)
    post_itn(web_server, purchases["account-exists"], owner)
    wait_for_job(web_server, purchases["account-exists"], JobStatus.NEEDS_REVIEW)
    post_itn(web_server, purchases["awaiting"], "pending.phone-buyer@example.org", status="PENDING")
    post_itn(web_server, purchases["unpaid"], "declined.phone-buyer@example.org", status="FAILED")

    shown = {
        "setting-up": "Setting up your site…",
        "failed": "We could not finish setting up your site.",
        "account-exists": "This email address already has a Site Builder account",
        "awaiting": "Waiting for PayFast to confirm your payment…",
        "unpaid": "PayFast reports that your payment did not go through.",
    }
    for name, transaction_id in purchases.items():
        phone.goto(f"{base}/checkout/return?txn={transaction_id}&key={status_key_for(transaction_id)}")
        expect(phone.locator("#purchase-status")).to_contain_text(shown[name])
        snap(phone, f"return-{name}")

    phone.goto(f"{base}/checkout/return?txn={purchases['failed']}&key={'x' * 32}")
    expect(phone.locator("#purchase-status")).to_contain_text("We have no record of this payment yet")
    snap(phone, "return-no-record-yet")
    assert status_of(phone, f"{base}/checkout/return?txn={purchases['failed']}") == 404
    expect(phone.get_by_role("alert")).to_contain_text("We have no record of this payment.")
    snap(phone, "return-without-key")
    every_page_fit(phone, snap)


def test_the_operations_console_fits_a_phone(
    phone: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    catcher, _ = smtp_server
    broken_owner = "identityuser.deletedbymistake@longcustomerdomain.example.org"
    buy(web_server, catcher, broken_owner, plan="professional")
    services = web_server.services()
    try:
        services.identity.delete_user(broken_owner)  # RB-001 4.2: the case page has evidence and a repair
        [broken] = services.journal.find(email=broken_owner)
        parked = journal_job(services, "TXN-PHONEPARKED0001", "parked.onaphone.withalongname@example.org")
        error = "permanent: 550 5.1.1 <parked.onaphone.withalongname@example.org>: mailbox unavailable"
        services.journal.save(parked.with_changes(status=JobStatus.DEAD_LETTERED, attempts=5, last_error=error))
        services.queue.send_dead_letter(parked.transaction_id, error)
        services.scheduled_audit.run()  # written and deleted by hand: the weekly audit finds both
    finally:
        services.close()
    invite_and_sign_in_operator(phone, web_server, smtp_server, OPERATOR, "Operator-Phone-8!")

    expect(phone).to_have_url(f"{web_server.base_url}/ops")
    expect(phone.locator("#finding-identity_user_missing .count")).to_have_text("1")
    snap(phone, "dashboard")

    phone.get_by_role("link", name="Jobs and cases").click()
    expect(phone.locator("tr.job-row").first).to_be_visible()
    snap(phone, "jobs")
    scrolls_in_its_own_box(phone, "Provisioning jobs")

    phone.goto(f"{web_server.base_url}/ops/cases/{broken.transaction_id}")
    expect(phone.locator("#scenario")).to_have_text("4.2")
    snap(phone, "case")
    phone.get_by_role("link", name="Repair…").click()
    expect(phone.locator("#plan li").first).to_be_visible()
    snap(phone, "repair-plan")
    phone.goto(f"{web_server.base_url}/ops/cases/{OPERATOR}")
    snap(phone, "case-operator")
    phone.goto(f"{web_server.base_url}/ops/cases/not-a-selector")
    snap(phone, "case-unknown")

    phone.get_by_role("link", name="Dead-letter queue").click()
    expect(phone.locator("tr.dlq-row")).to_have_count(1)
    snap(phone, "dlq")
    scrolls_in_its_own_box(phone, "Dead-lettered messages")

    phone.get_by_role("link", name="Mail outbox").click()
    mail_row = phone.locator("tr.mail-row").filter(has_text=broken_owner).first
    mail_row.locator("summary").click()
    expect(mail_row.locator("pre")).to_be_visible()
    phone.get_by_role("region", name="Emails in the outbox").evaluate("box => { box.scrollLeft = 0; }")
    snap(phone, "mail")

    phone.get_by_role("link", name="Weekly audit").click()
    expect(phone.get_by_role("heading", name="Provisioning audit")).to_be_visible()
    snap(phone, "audit")
    every_page_fit(phone, snap)
