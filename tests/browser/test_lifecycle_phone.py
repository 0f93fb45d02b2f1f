"""A subscriber's account on a phone (390x844) as time runs out on an unpaid subscription, through
the real server, with the operator's own `tenancy lifecycle run --as-of` moving time: past due
(a warning with the last day before suspension, and Pay now), then suspended (only what happened,
what is kept and Pay now; the API answers 403). Each page fits the width and passes axe, and Pay
now leads to a checkout for this same site."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from conftest import PHONE, Snapshots, email_to, sign_in_first_time
from servers import MailCatcher, RunningServer, cli_env, temporary_password_in, tenancy

SUBSCRIBER = "grace.hopper.cobol.compilers.and.nanoseconds@navalhistory.example.org"


def lifecycle_run(server: RunningServer, as_of: str) -> list[dict[str, str]]:
    result = tenancy(
        cli_env(server.home, TENANCY_PAYFAST_MODE="offline"), "lifecycle", "run", "--as-of", as_of, "--json"
    )
    assert result.returncode == 0, result.stderr
    applied: list[dict[str, str]] = json.loads(result.stdout)["applied"]
    return applied


def test_an_unpaid_subscriber_is_warned_then_suspended_and_can_pay_now_on_a_phone(
    phone: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    base = web_server.base_url
    phone.goto(f"{base}/checkout?plan=professional")
    phone.get_by_label("Your name").fill("Grace Hopper")
    phone.get_by_label("Email").fill(SUBSCRIBER)
    phone.get_by_role("button", name="Continue to payment").click()
    phone.get_by_role("button", name="Simulate payment").click()
    expect(phone.locator("#purchase-status")).to_have_text(re.compile(r"^Ready: check your email"))
    temporary = temporary_password_in(email_to(smtp_server[0], SUBSCRIBER, "Welcome"))
    sign_in_first_time(phone, base, SUBSCRIBER, temporary, "Phone-Lifecycle-9!")
    expect(phone).to_have_url(f"{base}/account")
    services = web_server.services()
    try:
        [owner] = services.users.find_by_email(SUBSCRIBER)
        subscription = services.subscriptions.get(owner.tenant_id)
    finally:
        services.close()
    assert subscription is not None
    paid_through = subscription.paid_through

    [past_due] = lifecycle_run(web_server, (paid_through + timedelta(days=2)).isoformat())
    assert past_due["to"] == "past_due"
    phone.goto(f"{base}/account")
    grace_until = (paid_through + timedelta(days=8)).isoformat()
    expect(phone.locator("#past-due-notice")).to_contain_text(f"Your site keeps working until {grace_until}")
    expect(phone.locator("#tenant-status")).to_have_text("Past due")
    expect(phone.locator("#billing-status")).to_have_text("Payment overdue")
    expect(phone.locator("#next-charge")).to_have_text(f"R299.00 due on {paid_through.isoformat()} did not go through")
    snap(phone, "account-past-due")

    [suspended] = lifecycle_run(web_server, (paid_through + timedelta(days=10)).isoformat())
    assert suspended["to"] == "suspended"
    phone.goto(f"{base}/account")
    expect(phone.get_by_role("heading", name="Your site is suspended")).to_be_visible()
    expect(phone.locator("#blocked-notice")).to_contain_text("Your data is kept.")
    expect(phone.locator("#support")).to_contain_text(owner.tenant_id)
    snap(phone, "account-suspended")

    phone.get_by_role("button", name="Pay now").click()
    expect(phone).to_have_url(re.compile(r"/checkout\?plan=professional$"))
    expect(phone.get_by_text("Subscribe again: Professional")).to_be_visible()  # for this same site
    expect(phone.get_by_text(SUBSCRIBER, exact=True)).to_be_visible()  # the owner's own email pays
    snap(phone, "checkout-pay-now")
    assert phone.viewport_size == PHONE
