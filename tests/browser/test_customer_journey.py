"""A buyer in a real browser: pricing -> checkout -> simulated payment -> the return page shows
ready -> sign in with the emailed temporary password -> choose a password -> the account page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from conftest import Snapshots, buy, email_to, sign_in_first_time
from servers import MailCatcher, RunningServer, temporary_password_in

NEW_PASSWORD = "Browser-Chosen-9!"


def test_a_buyer_pays_signs_in_and_sees_the_plan_limits(
    page: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    catcher = smtp_server[0]
    page.goto(f"{web_server.base_url}/pricing")
    expect(page.get_by_role("heading", name="Choose your Site Builder plan")).to_be_visible()
    snap(page, "pricing")

    page.get_by_role("link", name="Buy Professional").click()
    expect(page.get_by_role("heading", name="Buy Professional")).to_be_visible()
    page.get_by_label("Your name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@example.com")
    snap(page, "checkout")
    page.get_by_role("button", name="Continue to payment").click()

    expect(page.get_by_role("heading", name="Pay for Professional")).to_be_visible()
    payfast_form = page.locator("#payfast-form")
    expect(payfast_form).to_have_attribute("action", "https://sandbox.payfast.co.za/eng/process")
    expect(payfast_form.locator('input[name="custom_str1"]')).to_have_value("professional")
    expect(payfast_form.locator('input[name="signature"]')).to_have_value(re.compile(r"^[0-9a-f]{32}$"))
    transaction_id = page.locator("#transaction-id").inner_text()
    assert re.fullmatch(r"TXN-[0-9A-F]{16}", transaction_id)
    snap(page, "pay")
    page.get_by_role("button", name="Simulate payment").click()

    expect(page).to_have_url(re.compile(rf"/checkout/return\?txn={transaction_id}$"))
    # The page polls; the worker in the server provisions meanwhile.
    expect(page.locator("#purchase-status")).to_have_text(re.compile(r"^Ready: check your email"))
    expect(page.locator("#next-steps")).to_be_visible()
    snap(page, "return-ready")

    password = temporary_password_in(email_to(catcher, "grace@example.com", "Welcome"))
    page.get_by_role("link", name="Sign in").last.click()
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill(password)
    snap(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    snap(page, "new-password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password and continue").click()

    expect(page).to_have_url(f"{web_server.base_url}/account")
    expect(page.get_by_role("heading", name="Grace Hopper")).to_be_visible()
    expect(page.locator("#plan")).to_have_text("Professional")
    expect(page.locator("#tenant-status")).to_have_text("active")
    for key, allowed in (("sites", "5"), ("generations", "100"), ("storage", "500")):
        expect(page.locator(f"#limit-{key} .allowed")).to_have_text(allowed)
        expect(page.locator(f"#meter-{key}")).to_have_attribute("max", allowed)
    snap(page, "account")

    session = next(cookie for cookie in page.context.cookies() if cookie["name"] == "__Host-tenancy_session")
    assert session["httpOnly"]
    assert session["secure"]
    assert session["sameSite"] == "Lax"
    services = web_server.services()
    try:
        tenant = services.tenants.find_by_transaction(transaction_id)
        assert tenant is not None
        assert tenant.plan == "professional"
        assert services.identity.get_user("grace@example.com") is not None
    finally:
        services.close()


def tab_to(page: Page, accessible_name: str, limit: int = 20) -> None:
    """Presses Tab until the focused element has `accessible_name` (its aria-label or text)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.getAttribute('aria-label') || document.activeElement.innerText")
        if focused.strip() == accessible_name:
            return
    raise AssertionError(f"{accessible_name!r} cannot be reached with Tab")


def test_checkout_works_from_the_keyboard_alone(page: Page, web_server: RunningServer) -> None:
    page.goto(f"{web_server.base_url}/pricing")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    tab_to(page, "Buy Starter")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Buy Starter")).to_be_visible()
    page.get_by_label("Your name").focus()
    page.keyboard.type("Keyboard User")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type("keys@example.com")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Pay for Starter")).to_be_visible()
    tab_to(page, "Simulate payment")
    page.keyboard.press("Enter")
    expect(page.locator("#purchase-status")).to_have_text(re.compile(r"^Ready: check your email"))


def test_a_customer_who_forgot_the_password_resets_it_with_the_emailed_code(
    page: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    catcher = smtp_server[0]
    email = "forgetful@example.com"
    temporary = buy(web_server, catcher, email)
    sign_in_first_time(page, web_server.base_url, email, temporary, "First-Chosen-1!")
    expect(page).to_have_url(f"{web_server.base_url}/account")
    page.get_by_role("button", name=f"Sign out {email}").click()

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(email)
    snap(page, "forgot")
    page.get_by_role("button", name="Email me a code").click()

    expect(page.get_by_role("status")).to_contain_text(f"If an account exists for {email}")
    code = re.search(r"Your reset code: (\d+)", email_to(catcher, email, "reset code"))
    assert code
    page.get_by_label("Reset code").fill(code.group(1))
    page.get_by_label("New password", exact=True).fill("Reset-Chosen-2!")
    page.get_by_label("Repeat the new password").fill("Reset-Chosen-2!")
    snap(page, "reset")
    page.get_by_role("button", name="Change password").click()

    expect(page.get_by_role("status")).to_have_text("Your password is changed. Sign in with it.")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("Reset-Chosen-2!")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{web_server.base_url}/account")
    snap(page, "account-after-reset")
