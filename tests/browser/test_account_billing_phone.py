"""The account page's Billing section on a phone (390x844): a subscriber's plan, next charge,
history, plan change and cancel forms fit the width (`snap` fails the test on any element past the
right edge outside a scroll box, and on any axe violation), and both forms work without a script."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from conftest import PHONE, Snapshots, email_to, sign_in_first_time
from servers import MailCatcher, RunningServer, temporary_password_in

# Wider than a phone in one line, with nowhere to break: the header and the facts must wrap it.
SUBSCRIBER = "katherine.coleman.goble.johnson.langley@spaceflighthistory.example.org"


def test_the_billing_section_fits_a_phone_and_its_forms_work(
    phone: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    base = web_server.base_url
    phone.goto(f"{base}/checkout?plan=professional")
    phone.get_by_label("Your name").fill("Katherine Johnson")
    phone.get_by_label("Email").fill(SUBSCRIBER)
    phone.get_by_role("button", name="Continue to payment").click()
    phone.get_by_role("button", name="Simulate payment").click()
    expect(phone.locator("#purchase-status")).to_have_text(re.compile(r"^Ready: check your email"))
    temporary = temporary_password_in(email_to(smtp_server[0], SUBSCRIBER, "Welcome"))
    sign_in_first_time(phone, base, SUBSCRIBER, temporary, "Phone-Billing-7!")

    expect(phone).to_have_url(f"{base}/account")
    expect(phone.locator("#billing-status")).to_have_text("Active")
    expect(phone.locator("#next-charge")).to_have_text(re.compile(r"^R299\.00 on \d{4}-\d{2}-\d{2}$"))
    expect(phone.locator("#billing-history tbody tr")).to_have_count(1)
    snap(phone, "account-billing")

    phone.get_by_label(re.compile(r"^Starter: R99\.00 / month")).check()
    phone.get_by_role("button", name="Change plan").click()
    expect(phone.locator("#billing-notice")).to_contain_text("Your plan changes to Starter on")
    expect(phone.locator("#pending-plan")).to_have_text(re.compile(r"^Changes to Starter on "))
    snap(phone, "account-downgrade-pending")

    phone.get_by_role("button", name="Cancel subscription").click()  # not ticked: the browser asks first
    expect(phone).to_have_url(f"{base}/account?billing=downgrade_scheduled")
    phone.get_by_label(re.compile(r"^Yes, cancel: my site closes after ")).check()
    phone.get_by_role("button", name="Cancel subscription").click()
    expect(phone.locator("#billing-notice")).to_contain_text("Your subscription is cancelled")
    expect(phone.locator("#billing-status")).to_have_text(re.compile(r"^Cancelled: access until "))
    expect(phone.locator("#cancel-form")).to_have_count(0)
    snap(phone, "account-cancelled")
    assert phone.viewport_size == PHONE
