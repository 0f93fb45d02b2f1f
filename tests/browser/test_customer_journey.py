"""A buyer in a real browser: pricing -> checkout -> simulated payment -> the return page shows
ready -> sign in with the emailed temporary password -> choose a password -> the account page. And
the unhappy paths a buyer meets: a second purchase by an owner, a purchase that fails, and a return
page that has no record of the payment (each saying whom to ask, by address)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from conftest import Snapshots, buy, email_to, sign_in_first_time
from servers import (
    MailCatcher,
    RunningServer,
    free_port,
    server_env,
    start_server,
    stop_server,
    temporary_password_in,
)

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
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/checkout/status" in request.url else None)
    page.get_by_role("button", name="Simulate payment").click()

    expect(page).to_have_url(re.compile(rf"/checkout/return\?txn={transaction_id}&key=[A-Za-z0-9_-]{{32}}$"))
    key = parse_qs(urlsplit(page.url).query)["key"][0]
    # The page polls with its status key (if it is not ready at once); the server provisions meanwhile.
    expect(page.locator("#purchase-status")).to_have_text(re.compile(r"^Ready: check your email"))
    expect(page.locator("#next-steps")).to_be_visible()
    assert all(parse_qs(urlsplit(url).query) == {"txn": [transaction_id], "key": [key]} for url in polls), polls
    snap(page, "return-ready")

    # The same return page with another key knows nothing of the purchase, and polls with that key.
    polls.clear()
    page.goto(f"{web_server.base_url}/checkout/return?txn={transaction_id}&key={'x' * 32}")
    expect(page.locator("#purchase-status")).to_have_text(re.compile(r"^We have no record of this payment yet"))
    expect(page.locator("#next-steps")).to_be_hidden()
    snap(page, "return-wrong-key")
    with page.expect_request(lambda request: "/checkout/status" in request.url):
        pass  # the page's next poll (it polls every second while it has no record)
    assert polls
    assert all(parse_qs(urlsplit(url).query) == {"txn": [transaction_id], "key": ["x" * 32]} for url in polls), polls
    expect(page.locator("#purchase-status")).to_have_text(re.compile(r"^We have no record of this payment yet"))
    page.goto(f"{web_server.base_url}/checkout/return?txn={transaction_id}")
    expect(page.get_by_role("alert")).to_contain_text("We have no record of this payment.")
    page.goto(f"{web_server.base_url}/checkout/return?txn={transaction_id}&key={key}")
    expect(page.locator("#purchase-status")).to_have_text(re.compile(r"^Ready: check your email"))

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
    expect(page.locator("#tenant-status")).to_have_text("Active")
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


DEFAULT_SUPPORT = "support@kimmyai.io"  # TENANCY_SUPPORT_EMAIL unset: support@ the sender's domain
FAILING_SUPPORT = "help@shop.example"


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Offline mode, whose welcome emails cannot be sent (nothing listens at its SMTP port) and whose
    jobs get one attempt: every purchase is dead-lettered. Each job lingers 2 s after its first step,
    so the page is seen setting up first."""
    home = tmp_path_factory.mktemp("tenancy-failing")
    env = server_env(home, free_port(), free_port(), free_port(), TENANCY_PAYFAST_MODE="offline",
                     TENANCY_RETRY_MAX_ATTEMPTS="1", TENANCY_SUPPORT_EMAIL=FAILING_SUPPORT,
                     TENANCY_FAULTS="slow_step:tenant_record:2")  # fmt: skip
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


def buy_in_browser(page: Page, base_url: str, plan: str, name: str, email: str) -> str:
    """Pricing -> Buy -> details -> Continue to payment; the transaction id on the payment page."""
    page.goto(f"{base_url}/pricing")
    page.get_by_role("link", name=f"Buy {plan}").click()
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_role("heading", name=f"Pay for {plan}")).to_be_visible()
    return page.locator("#transaction-id").inner_text()


def test_an_owner_is_led_to_the_account_and_a_second_purchase_is_explained(
    page: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    email = "again@example.com"
    temporary = buy(web_server, smtp_server[0], email, plan="professional")
    sign_in_first_time(page, web_server.base_url, email, temporary, "Again-Chosen-3!")
    expect(page.locator("#tenant-status")).to_have_text("Active")

    page.goto(f"{web_server.base_url}/pricing")
    expect(page.locator("#owner-note")).to_contain_text(
        "You already have the Professional plan: manage it from your account."
    )
    expect(page.get_by_role("link", name="Buy Starter")).to_have_count(0)
    expect(page.locator("#owner-note").get_by_role("link", name=DEFAULT_SUPPORT)).to_be_visible()
    snap(page, "pricing-owner")
    page.locator("#owner-note").get_by_role("link", name="your account").click()
    expect(page).to_have_url(f"{web_server.base_url}/account")

    page.goto(f"{web_server.base_url}/checkout?plan=starter")
    expect(page.get_by_role("heading", name="You already have the Professional plan")).to_be_visible()
    expect(page.get_by_role("button", name="Continue to payment")).to_have_count(0)
    snap(page, "checkout-owner")

    # Signed out, the same person buys again with the same email: paid, and stopped for review.
    page.get_by_role("button", name=f"Sign out {email}").click()
    transaction_id = buy_in_browser(page, web_server.base_url, "Starter", "Again Owner", email)
    page.get_by_role("button", name="Simulate payment").click()

    status = page.locator("#purchase-status")
    expect(status).to_have_text(
        "This email address already has a Site Builder account, so we did not set up a second one."
    )
    steps = page.locator("#account-exists-steps")
    expect(steps).to_be_visible()
    expect(steps).to_contain_text("You have been charged for this purchase, and your existing account is unchanged")
    expect(steps).to_contain_text(f"email {DEFAULT_SUPPORT} and quote {transaction_id}")
    expect(steps.get_by_role("link", name=DEFAULT_SUPPORT)).to_have_attribute("href", f"mailto:{DEFAULT_SUPPORT}")
    expect(page.locator("#progress")).to_be_hidden()
    expect(page.locator("#failed-steps")).to_be_hidden()
    snap(page, "return-second-purchase")
    steps.get_by_role("link", name="sign in to it").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_failed_purchase_shows_the_support_address_and_the_reference(
    page: Page, failing_server: RunningServer, snap: Snapshots
) -> None:
    transaction_id = buy_in_browser(page, failing_server.base_url, "Starter", "Unlucky Buyer", "unlucky@example.com")
    # Offline mode: simulating is the way through; PayFast is the marked exception.
    expect(page.get_by_role("button", name="Simulate payment")).not_to_have_class(re.compile("secondary"))
    expect(page.get_by_role("button", name="Pay with PayFast")).to_have_class(re.compile("secondary"))
    expect(page.locator("#payfast-hint")).to_have_text(re.compile("needs a PayFast account"))
    snap(page, "pay-offline")
    page.get_by_role("button", name="Simulate payment").click()

    expect(page.locator("#purchase-status")).to_have_text("Setting up your site…")
    expect(page.locator("#progress")).to_be_visible()
    snap(page, "return-setting-up")
    expect(page.locator("#purchase-status")).to_have_text(
        "We could not finish setting up your site. Our team has been alerted.", timeout=30_000
    )
    steps = page.locator("#failed-steps")
    expect(steps).to_be_visible()
    expect(steps).to_contain_text("please do not pay again")
    expect(steps).to_contain_text(f"email {FAILING_SUPPORT} and quote {transaction_id}")
    expect(steps.get_by_role("link", name=FAILING_SUPPORT)).to_have_attribute("href", f"mailto:{FAILING_SUPPORT}")
    expect(page.locator("#progress")).to_be_hidden()
    snap(page, "return-failed")

    # The same page loaded afresh says the same, with no script left polling.
    page.reload()
    expect(page.locator("#failed-steps")).to_contain_text(f"email {FAILING_SUPPORT} and quote {transaction_id}")
    expect(page.locator("script[src='/static/checkout-return.js']")).to_have_count(0)


def test_a_return_page_with_no_record_stops_polling_and_says_whom_to_ask(
    page: Page, web_server: RunningServer, snap: Snapshots
) -> None:
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/checkout/status" in request.url else None)
    page.clock.install()
    with page.expect_response(lambda response: "/checkout/status" in response.url):
        page.goto(f"{web_server.base_url}/checkout/return?txn=TXN-00000000DEADBEEF&key={'x' * 32}")
    status = page.locator("#purchase-status")
    expect(status).to_have_text(re.compile(r"^We have no record of this payment yet\. If you have just paid"))
    spinner = page.locator("#progress")
    expect(spinner).to_be_visible()
    assert spinner.evaluate("element => getComputedStyle(element).animationName") == "spin"
    page.emulate_media(reduced_motion="reduce")
    assert spinner.evaluate("element => getComputedStyle(element).animationName") == "none"
    snap(page, "return-no-record-yet")

    # Long before the 15 minutes a known purchase gets: after 90 s of answers that know nothing of it.
    with page.expect_response(lambda response: "/checkout/status" in response.url):
        page.clock.fast_forward("01:35")
    expect(status).to_have_text("We have no record of this payment.")
    steps = page.locator("#no-record-steps")
    expect(steps).to_be_visible()
    expect(steps).to_contain_text("If you have just paid, PayFast may not have told us yet")
    expect(steps).to_contain_text(f"email {DEFAULT_SUPPORT} and quote TXN-00000000DEADBEEF")
    expect(spinner).to_be_hidden()
    snap(page, "return-no-record")
    asked = len(polls)
    page.clock.fast_forward("10:00")
    page.wait_for_timeout(300)
    assert len(polls) == asked  # it stopped
