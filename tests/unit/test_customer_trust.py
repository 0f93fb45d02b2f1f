"""What a buyer and an owner see on the unhappy paths, through the real app (TestClient over the
embedded backend): a second purchase, the support address on every failure, the return page's
progress and its "no record", offline checkout, every form problem at once, human error pages,
the favicon and statuses in words (issue 12, "Customers")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from tenancy.accounts.reset import password_reset_email
from tenancy.bootstrap import Services, build
from tenancy.config import Settings
from tenancy.domain.model import JobStatus
from tenancy.provisioning.welcome import welcome_email
from tenancy.web.app import create_app
from tenancy.web.pages.rendering import STATIC_DIR
from tenancy.web.pages.security import CONTENT_SECURITY_POLICY

from helpers import journal_job, make_settings, work
from page_client import (
    NEW_PASSWORD,
    buy_and_provision,
    checkout,
    csrf_token_in,
    form_fields,
    page_client,
    reset_code,
    sign_in,
    signed_in_customer,
    simulate_to_return,
    welcome_password,
)

SUPPORT = "help@shop.example"
BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
MAILTO = f'<a href="mailto:{SUPPORT}">{SUPPORT}</a>'


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Services]:
    services = build(make_settings(tmp_path / "home", payfast_mode="offline", public_url="https://shop.example",
                                   support_email=SUPPORT))  # fmt: skip
    yield services
    services.close()


@pytest.fixture
def client(offline: Services) -> Iterator[TestClient]:
    with page_client(offline) as client:
        yield client


def visible_text(page: str) -> str:
    """The words a person reads: tags, comments and the head taken out."""
    body = page.split("<body>", 1)[-1]
    words = " ".join(re.sub(r"<[^>]+>", " ", body).split())
    return re.sub(r" ([.,:;!?])", r"\1", words)  # "<a>your account</a>." reads "your account."


# --- a signed-in owner and a second purchase ---------------------------------------------------


def test_pricing_for_a_signed_in_owner_names_their_plan_and_leads_to_the_account(
    client: TestClient, offline: Services
) -> None:
    anonymous = client.get("/pricing").text
    signed_in_customer(client, offline)

    page = client.get("/pricing")

    assert 'href="/checkout?plan=starter"' in anonymous
    assert page.status_code == 200
    assert "You already have the Professional plan: manage it from your account." in visible_text(page.text)
    assert 'href="/account"' in page.text
    assert 'href="/checkout?plan=' not in page.text  # nothing to buy a second site with
    assert SUPPORT in page.text  # plan changes: whom to ask


def test_checkout_for_a_signed_in_owner_explains_and_takes_no_payment(client: TestClient, offline: Services) -> None:
    signed_in_customer(client, offline)
    payments_before = sum(len(batch) for batch in offline.ledger.scan())

    shown = client.get("/checkout?plan=starter")
    token = csrf_token_in(shown.text)
    posted = client.post("/checkout", data={"csrf_token": token, "plan": "starter", "name": "Ada Lovelace",
                                            "email": "ada@example.com"})  # fmt: skip

    for response in (shown, posted):
        text = visible_text(response.text)
        assert "You already have the Professional plan" in text
        assert 'href="/account"' in response.text
        assert "payfast-form" not in response.text
        assert 'action="/checkout"' not in response.text
    assert shown.status_code == 200
    assert posted.status_code == 409
    assert sum(len(batch) for batch in offline.ledger.scan()) == payments_before


def test_a_second_purchase_by_the_same_email_says_what_happened_and_what_to_do(client: TestClient,
                                                                              offline: Services) -> None:  # fmt: skip
    buy_and_provision(client, offline, "ada@example.com")
    transaction_id, key = simulate_to_return(client, checkout(client, plan="starter", email="ada@example.com"))
    work(offline)
    job = offline.journal.get(transaction_id)
    assert job is not None
    assert job.status is JobStatus.NEEDS_REVIEW  # how provisioning ends for it: RB-001 section 6

    status = client.get("/checkout/status", params={"txn": transaction_id, "key": key}).json()
    page = client.get("/checkout/return", params={"txn": transaction_id, "key": key}).text
    text = visible_text(page)

    assert status["state"] == "account_exists"
    assert status["finished"] is True
    assert status["message"] == ("This email address already has a Site Builder account, "
                                 "so we did not set up a second one.")  # fmt: skip
    assert "We could not finish setting up" not in text
    assert "already has a Site Builder account" in text
    assert "You have been charged for this purchase" in text
    assert f"email {SUPPORT} and quote {transaction_id}" in text
    assert MAILTO in page
    assert 'href="/auth/login"' in page
    assert "try again" not in text.lower()
    assert "not charged" not in text.lower()


# --- the support address -------------------------------------------------------------------------


def test_the_support_address_defaults_to_the_senders_domain_and_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENANCY_SUPPORT_EMAIL", raising=False)
    monkeypatch.delenv("TENANCY_EMAIL_FROM", raising=False)
    assert Settings().effective_support_email == "support@kimmyai.io"
    assert Settings(email_from="Site Builder <noreply@shop.example>").effective_support_email == "support@shop.example"
    monkeypatch.setenv("TENANCY_SUPPORT_EMAIL", "help@shop.example")
    assert Settings().effective_support_email == "help@shop.example"
    with pytest.raises(ValidationError, match="TENANCY_SUPPORT_EMAIL"):
        Settings(support_email="not an address")


def test_failure_pages_name_the_support_address(client: TestClient, offline: Services) -> None:
    missing = client.get("/no/such/page", headers=BROWSER)
    unknown_purchase = client.get("/checkout/return", params={"txn": "TXN-0000000000000000"})
    transaction_id, key = simulate_to_return(client, checkout(client, email="bob@example.com"))
    job = offline.journal.get(transaction_id)
    assert job is not None
    offline.journal.save(job.with_changes(status=JobStatus.DEAD_LETTERED, last_error="mail refused"))
    failed = client.get("/checkout/return", params={"txn": transaction_id, "key": key})

    for response in (missing, unknown_purchase, failed):
        assert MAILTO in response.text, response.url
    assert f"email {SUPPORT} and quote TXN-0000000000000000" in visible_text(unknown_purchase.text)
    failed_text = visible_text(failed.text)
    assert "We could not finish setting up your site" in failed_text
    assert f"email {SUPPORT} and quote {transaction_id}" in failed_text
    assert "please do not pay again" in failed_text
    assert "mail refused" not in failed.text


def test_an_account_without_an_active_site_names_the_support_address(client: TestClient, offline: Services) -> None:
    signed_in_customer(client, offline)
    tenant = offline.tenants.find_by_transaction(offline.journal.find(email="ada@example.com")[0].transaction_id)
    assert tenant is not None
    offline.tenants.delete(tenant.tenant_id)

    page = client.get("/account")

    assert page.status_code == 403
    assert "Tenant not found" in page.text
    assert MAILTO in page.text
    assert 'href="/account"' not in page.text.split("<main", 1)[1]  # no link back to the page that failed


def test_the_welcome_and_reset_emails_name_the_support_address(client: TestClient, offline: Services) -> None:
    signed_in_customer(client, offline)
    client.cookies.clear()
    token = csrf_token_in(client.get("/auth/forgot").text)
    client.post("/auth/forgot", data={"csrf_token": token, "email": "ada@example.com"})
    assert reset_code(offline, "ada@example.com")

    mails = {mail.tags.get("kind"): mail for mail in offline.mailer.outbox("ada@example.com")}

    assert f"Questions? Email {SUPPORT} and quote your invoice number." in mails["welcome"].text
    assert f"Questions? Email {SUPPORT}." in mails["password_reset"].text


def test_the_emails_html_links_the_support_address_escaped(offline: Services) -> None:
    job = journal_job(offline, "TXN-HTML01", "ada@example.com")
    odd = "help+<b>@shop.example"
    welcome = welcome_email(job, offline.plans.get("professional"), password="Temp-Passw0rd!", login_url="https://x/",
                            sender="noreply@shop.example", password_ttl_days=7, support_email=odd)  # fmt: skip
    reset = password_reset_email("ada@example.com", "12345678", login_url="https://x/auth/login",
                                 sender="noreply@shop.example", support_email=SUPPORT)  # fmt: skip

    assert '<a href="mailto:help+&lt;b&gt;@shop.example">help+&lt;b&gt;@shop.example</a>' in (welcome.html or "")
    assert "<b>" not in (welcome.html or "")
    assert MAILTO in (reset.html or "")


# --- the return page -------------------------------------------------------------------------------


def test_the_return_page_shows_progress_while_setting_up_and_none_when_finished(client: TestClient,
                                                                               offline: Services) -> None:  # fmt: skip
    transaction_id, key = simulate_to_return(client, checkout(client))
    setting_up = client.get("/checkout/return", params={"txn": transaction_id, "key": key}).text
    work(offline)
    ready = client.get("/checkout/return", params={"txn": transaction_id, "key": key}).text
    css = client.get("/static/site.css").text

    assert "Setting up your site" in setting_up
    assert re.search(r'<span class="spinner" id="progress" aria-hidden="true"\s*>', setting_up)
    assert 'id="progress"' not in ready
    assert "@keyframes spin" in css
    reduced = css.split("@media (prefers-reduced-motion: reduce)", 1)[1].split("}\n}", 1)[0]
    assert "animation: none" in reduced
    assert "style=" not in setting_up  # the strict CSP allows no inline style


def test_the_return_page_for_an_unknown_purchase_is_truthful_and_says_whom_to_ask(client: TestClient) -> None:
    page = client.get("/checkout/return", params={"txn": "TXN-0000000000000000", "key": "x" * 32}).text
    text = visible_text(page)

    # What the page says while it still polls: true for a buyer whose payment PayFast has not yet reported.
    assert "We have no record of this payment yet. If you have just paid" in text
    # What it says once it stops polling (shown by checkout-return.js after the limit): ready in the page.
    final = page.split('id="no-record-steps"', 1)[1].split("</div>", 1)[0]
    assert " hidden" in final.split(">", 1)[0]
    assert "If you have just paid, PayFast may not have told us yet" in visible_text(final)
    assert f"email {SUPPORT} and quote TXN-0000000000000000" in visible_text(final)
    limit = re.search(r'data-no-record-limit-seconds="(\d+)"', page)
    assert limit
    assert 60 <= int(limit.group(1)) <= 120  # about a minute or two, not the 15 minutes of a known purchase


def test_the_return_page_script_stops_after_a_limit_of_no_record_answers(client: TestClient) -> None:
    script = client.get("/static/checkout-return.js").text

    assert "data-no-record-limit-seconds" in script
    assert "no-record-steps" in script
    assert "15 * 60 * 1000" in script  # the overall limit stays for a purchase that is known


# --- offline checkout ----------------------------------------------------------------------------


def test_offline_checkout_makes_simulate_payment_the_primary_action(client: TestClient) -> None:
    page = checkout(client)
    simulate_at, payfast_at = page.index('id="simulate-form"'), page.index('id="payfast-form"')
    simulate_form = page[simulate_at:].split("</form>", 1)[0]
    payfast_form = page[payfast_at:].split("</form>", 1)[0]

    assert simulate_at < payfast_at
    assert re.search(r'<button type="submit">Simulate payment</button>', simulate_form)
    assert re.search(r'<button type="submit" class="secondary"[^>]*>Pay with PayFast</button>', payfast_form)
    assert "needs a PayFast account" in visible_text(page)


def test_no_page_a_customer_sees_says_itn(client: TestClient, offline: Services) -> None:
    transaction_id, key = simulate_to_return(client, checkout(client))
    paths = ("/pricing", "/checkout?plan=starter", "/checkout?plan=starter&cancelled=1", "/auth/login",
             "/auth/forgot", "/auth/reset", "/checkout?plan=nope", f"/checkout/return?txn={transaction_id}",
             f"/checkout/return?txn={transaction_id}&key={key}")  # fmt: skip
    pages = [client.get(path).text for path in paths]
    pages.append(checkout(client))
    fields = dict(form_fields(pages[-1], "simulate-form"))
    fields["amount"] = "1.00"
    pages.append(client.post("/checkout/simulate", data=fields).text)
    work(offline)
    pages.append(client.get(f"/checkout/return?txn={transaction_id}&key={key}").text)
    pages.append(client.get("/static/checkout-return.js").text.split("(function", 1)[1])  # its messages

    for page in pages:
        assert not re.search(r"\bITNs?\b", visible_text(page)), visible_text(page)[:300]


# --- forms: every problem at once ------------------------------------------------------------------


def test_the_checkout_form_shows_every_problem_at_once(client: TestClient, offline: Services) -> None:
    token = csrf_token_in(client.get("/checkout?plan=starter").text)

    response = client.post("/checkout", data={"csrf_token": token, "plan": "starter", "name": " ", "email": "nope"})

    text = visible_text(response.text)
    assert response.status_code == 400
    assert "Enter your name" in text
    assert "Enter a valid email address" in text
    assert re.search(r'id="name"[^>]*aria-invalid="true"', response.text)
    assert re.search(r'id="email"[^>]*aria-invalid="true"', response.text)
    assert 'value="nope"' in response.text
    assert [batch for batch in offline.ledger.scan() if batch] == []


def test_the_reset_form_shows_every_problem_at_once(client: TestClient) -> None:
    token = csrf_token_in(client.get("/auth/reset").text)

    response = client.post("/auth/reset", data={"csrf_token": token, "email": "", "code": "",
                                                "new_password": "short", "confirm_password": "other"})  # fmt: skip

    text = visible_text(response.text)
    assert response.status_code == 400
    for problem in ("Enter your email address", "Enter the reset code from the email", "The passwords do not match",
                    "at least 8 characters", "an uppercase letter", "a number", "a symbol"):  # fmt: skip
        assert problem in text, problem


def test_the_new_password_form_shows_every_problem_at_once(client: TestClient, offline: Services) -> None:
    buy_and_provision(client, offline)
    challenge = sign_in(client, "ada@example.com", welcome_password(offline, "ada@example.com"))
    fields = dict(form_fields(challenge.text, "new-password-form"))

    response = client.post("/auth/new-password", data={**fields, "new_password": "short", "confirm_password": "x"})
    chosen = {**fields, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    accepted = client.post("/auth/new-password", data=chosen, follow_redirects=False)

    text = visible_text(response.text)
    assert response.status_code == 400
    assert "The passwords do not match" in text
    assert "at least 8 characters" in text
    assert accepted.status_code == 303  # the challenge stayed open


# --- error pages, favicon, words ------------------------------------------------------------------


def test_error_pages_are_written_for_people(client: TestClient) -> None:
    missing = client.get("/no/such/page", headers=BROWSER)
    wrong_method = client.delete("/pricing", headers=BROWSER)
    program = client.get("/no/such/page", headers={"accept": "application/json"})

    assert missing.status_code == 404
    assert "<h1>Page not found</h1>" in missing.text
    assert "Not Found" not in missing.text
    assert "There is no page at this address" in missing.text
    assert wrong_method.status_code == 405
    assert "Method Not Allowed" not in wrong_method.text
    assert "<h1>" in wrong_method.text
    assert missing.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert program.json() == {"detail": "Not Found"}  # programs keep the plain answer


def test_an_unexpected_error_is_a_page_that_says_what_to_do(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path / "home", support_email=SUPPORT))
    app = create_app(services)

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("secret detail of a bug")

    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        page = client.get("/broken", headers=BROWSER)
        program = client.get("/broken", headers={"accept": "application/json"})
    services.close()

    assert page.status_code == program.status_code == 500
    assert "<h1>Something went wrong</h1>" in page.text
    assert "Try again in a minute" in page.text
    assert MAILTO in page.text
    assert "secret detail" not in page.text + program.text
    assert "Traceback" not in page.text
    assert program.json() == {"detail": "Something went wrong on our side. Try again in a minute."}


def test_the_403_page_links_a_signed_in_owner_to_the_account(client: TestClient, offline: Services) -> None:
    anonymous_forbidden = client.post("/checkout", data={}, headers=BROWSER)  # no CSRF token: 403
    signed_in_customer(client, offline)

    refused = client.get("/ops", headers=BROWSER)

    assert refused.status_code == 403
    main = refused.text.split("<main", 1)[1]
    assert '<a href="/account">Go to your account</a>' in main
    assert anonymous_forbidden.status_code == 403
    assert "Go to your account" not in anonymous_forbidden.text


def test_there_is_a_favicon(client: TestClient) -> None:
    page = client.get("/pricing").text
    icon = client.get("/static/favicon.svg")
    legacy = client.get("/favicon.ico")

    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.lstrip().startswith("<svg")
    assert (STATIC_DIR / "favicon.svg").stat().st_size < 2048
    assert legacy.status_code == 200
    assert legacy.content == icon.content


def test_the_account_page_shows_the_status_in_words(client: TestClient, offline: Services) -> None:
    signed_in_customer(client, offline)

    page = client.get("/account").text

    assert 'id="tenant-status">Active<' in page
