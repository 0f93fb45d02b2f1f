"""The buyer's pages and browser sign-in, through the real app (TestClient over the embedded backend):
what each page shows, what each form post changes, and what a bad or forged post does not."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.domain.model import JobStatus, PaymentVerdict
from tenancy.errors import TransientError
from tenancy.payments.checkout import STATUS_KEY_FIELD, CheckoutLinks, checkout_signature_matches, status_key_digest
from tenancy.web.app import create_app
from tenancy.web.pages.security import CONTENT_SECURITY_POLICY, CSRF_COOKIE, SESSION_COOKIE

from helpers import make_settings, work
from page_client import (
    NEW_PASSWORD,
    buy_and_provision,
    checkout,
    choose_new_password,
    csrf_token_in,
    form_fields,
    page_client,
    reset_code,
    sign_in,
    signed_in_customer,
    simulate,
    simulate_to_return,
    welcome_password,
)


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Services]:
    services = build(make_settings(tmp_path / "home", payfast_mode="offline", public_url="https://shop.example"))
    yield services
    services.close()


@pytest.fixture
def client(offline: Services) -> Iterator[TestClient]:
    with page_client(offline) as client:
        yield client


def test_pricing_lists_every_plan_with_price_limits_and_a_buy_link(client: TestClient, offline: Services) -> None:
    response = client.get("/pricing")

    assert response.status_code == 200
    for plan in offline.plans.plans:
        assert plan.display_name in response.text
        assert f"R{plan.price_zar:.2f}" in response.text
        assert f"{plan.limits.max_generations_per_month} generations a month" in response.text
        assert f'href="/checkout?plan={plan.name}"' in response.text


def test_every_page_carries_the_content_security_policy_and_framing_refusal(client: TestClient) -> None:
    for path in ("/pricing", "/checkout?plan=starter", "/auth/login", "/auth/forgot", "/checkout?plan=nope"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-frame-options"] == "DENY", path
        assert "'unsafe-inline'" not in response.headers["content-security-policy"]


def test_the_csrf_cookie_is_secure_httponly_and_strict(client: TestClient) -> None:
    cookie = client.get("/auth/login").headers["set-cookie"]

    assert cookie.startswith("__Host-tenancy_csrf=")
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "SameSite=strict" in cookie


def test_checkout_for_an_unknown_plan_is_a_404_page(client: TestClient) -> None:
    response = client.get("/checkout?plan=platinum")

    assert response.status_code == 404
    assert "Unknown plan" in response.text


def test_checkout_renders_the_payfast_form_signed_with_every_required_field(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path / "home", public_url="https://shop.example"))  # sandbox mode
    with page_client(services) as client:
        page = checkout(client, plan="starter", name="Ada King Lovelace")
    services.close()

    fields = form_fields(page, "payfast-form")
    values = dict(fields)
    assert 'action="https://sandbox.payfast.co.za/eng/process"' in page
    assert re.fullmatch(r"TXN-[0-9A-F]{16}", values["m_payment_id"])
    assert values["custom_str1"] == "starter"
    assert values["amount"] == "99.00"
    assert (values["name_first"], values["name_last"]) == ("Ada", "King Lovelace")
    assert values["notify_url"] == "https://shop.example/payments/payfast/itn"
    key = CheckoutLinks.status_key_in(values["return_url"])
    assert values["return_url"] == f"https://shop.example/checkout/return?txn={values['m_payment_id']}&key={key}"
    assert values[STATUS_KEY_FIELD] == status_key_digest(key)
    assert values["cancel_url"] == "https://shop.example/checkout?plan=starter&cancelled=1"
    assert checkout_signature_matches(fields, services.settings.passphrase)
    assert "Simulate payment" not in page  # only offline


def test_checkout_refuses_a_bad_email_and_keeps_what_was_typed(client: TestClient, offline: Services) -> None:
    token = csrf_token_in(client.get("/checkout?plan=starter").text)

    response = client.post("/checkout", data={"csrf_token": token, "plan": "starter", "name": "Ada", "email": "nope"})

    assert response.status_code == 400
    assert "Enter a valid email address" in response.text
    assert 'value="Ada"' in response.text
    assert list(offline.ledger.scan()) == []


@pytest.mark.parametrize("forgery", ["no token", "wrong token", "other site"])
def test_a_forged_form_post_is_refused_and_changes_nothing(client: TestClient, offline: Services,
                                                           forgery: str) -> None:  # fmt: skip
    page = checkout(client)
    fields = dict(form_fields(page, "simulate-form"))
    headers = {}
    if forgery == "no token":
        del fields["csrf_token"]
    elif forgery == "wrong token":
        fields["csrf_token"] = "x" * 43
    else:
        headers["origin"] = "https://evil.example"

    with structlog.testing.capture_logs() as logs:
        response = client.post("/checkout/simulate", data=fields, headers=headers, follow_redirects=False)

    assert response.status_code == 403
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == ["csrf_refused"]
    assert "We did not accept this form" in response.text
    assert [batch for batch in offline.ledger.scan() if batch] == []


def test_simulated_payment_is_a_signed_itn_through_intake_and_provisions_once(client: TestClient,
                                                                             offline: Services) -> None:  # fmt: skip
    page = checkout(client)
    transaction_id = simulate(client, page)
    # Pressing it again (a double click, the back button) is a duplicate, not a second tenant.
    client.post("/checkout/simulate", data=dict(form_fields(page, "simulate-form")), follow_redirects=False)
    work(offline)

    payments = offline.ledger.find(transaction_id=transaction_id)
    assert [payment.verdict for payment in payments].count(PaymentVerdict.ACCEPTED) == 1
    job = offline.journal.get(transaction_id)
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED
    tenant = offline.tenants.find_by_transaction(transaction_id)
    assert tenant is not None
    assert tenant.plan == "professional"
    assert sum(len(batch) for batch in offline.tenants.scan()) == 1


def test_a_tampered_simulated_payment_is_refused(client: TestClient, offline: Services) -> None:
    fields = dict(form_fields(checkout(client), "simulate-form"))
    fields["amount"] = "1.00"

    response = client.post("/checkout/simulate", data=fields, follow_redirects=False)

    assert response.status_code == 400
    assert "changed after it was signed" in response.text
    assert [batch for batch in offline.ledger.scan() if batch] == []


def test_simulation_does_not_exist_outside_offline_mode(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path / "home"))
    with page_client(services) as client:
        page = checkout(client)
        fields = form_fields(page, "payfast-form")
        token = client.cookies.get(CSRF_COOKIE)
        response = client.post("/checkout/simulate", data={"csrf_token": token, **dict(fields)})
    services.close()

    assert response.status_code == 404
    assert [batch for batch in services.ledger.scan() if batch] == []


def test_the_return_page_follows_the_purchase_from_payment_to_ready(client: TestClient, offline: Services) -> None:
    page = checkout(client)
    form = dict(form_fields(page, "simulate-form"))
    transaction_id, key = form["m_payment_id"], CheckoutLinks.status_key_in(form["return_url"])
    status = {"txn": transaction_id, "key": key}

    before = client.get("/checkout/status", params=status)
    waiting = client.get("/checkout/return", params=status)
    assert simulate_to_return(client, page) == (transaction_id, key)
    queued = client.get("/checkout/return", params=status)
    work(offline)
    ready = client.get("/checkout/status", params=status).json()

    # Before PayFast's ITN nothing opens the purchase, not even its key: the page waits and polls.
    assert (before.status_code, before.json()) == (404, {"detail": "We have no record of this payment"})
    assert waiting.status_code == 200
    assert "We have no record of this payment yet" in waiting.text
    assert "Setting up your site" in queued.text
    assert f'data-status-url="/checkout/status?txn={transaction_id}&amp;key={key}"' in queued.text
    assert '<script src="/static/checkout-return.js"></script>' in queued.text
    assert (ready["state"], ready["finished"]) == ("ready", True)
    assert ready["message"].startswith("Ready: check your email")
    assert "Ready: check your email" in client.get("/checkout/return", params=status).text


def test_the_status_answers_no_one_without_the_purchases_key(client: TestClient, offline: Services) -> None:
    transaction_id, key = simulate_to_return(client, checkout(client))
    work(offline)
    other_transaction, other_key = simulate_to_return(client, checkout(client, email="bob@example.com"))

    refused = [
        client.get("/checkout/status", params=params)
        for params in (
            {"txn": transaction_id},
            {"txn": transaction_id, "key": ""},
            {"txn": transaction_id, "key": key[:-1]},
            {"txn": transaction_id, "key": status_key_digest(key)},
            {"txn": transaction_id, "key": other_key},  # another purchase's key
            {"txn": other_transaction, "key": key},
            {"txn": "TXN-123456", "key": key},  # RB-001's manual ids are guessable
        )
    ]

    assert [(answer.status_code, answer.json()) for answer in refused] == [
        (404, {"detail": "We have no record of this payment"})] * len(refused)  # fmt: skip
    assert client.get("/checkout/status", params={"txn": transaction_id, "key": key}).json()["state"] == "ready"


def test_the_return_page_without_the_right_key_says_no_more_than_for_an_unknown_purchase(
    client: TestClient, offline: Services
) -> None:
    transaction_id = simulate(client, checkout(client))
    work(offline)

    wrong = client.get("/checkout/return", params={"txn": transaction_id, "key": "x" * 32})
    unknown = client.get("/checkout/return", params={"txn": "TXN-0000000000000000", "key": "x" * 32})
    keyless = client.get("/checkout/return", params={"txn": transaction_id})

    assert wrong.status_code == unknown.status_code == 200
    assert wrong.text.replace(transaction_id, "TXN-0000000000000000") == unknown.text
    assert "We have no record of this payment yet" in wrong.text
    assert "Ready" not in wrong.text
    assert keyless.status_code == 404
    assert "We have no record of this payment." in keyless.text
    assert "checkout-return.js" not in keyless.text
    assert keyless.headers["cache-control"] == wrong.headers["cache-control"] == "no-store"


def test_the_return_page_names_the_transaction_when_provisioning_fails(client: TestClient,
                                                                       offline: Services) -> None:  # fmt: skip
    transaction_id, key = simulate_to_return(client, checkout(client))
    job = offline.journal.get(transaction_id)
    assert job is not None
    offline.journal.save(job.with_changes(status=JobStatus.DEAD_LETTERED, last_error="mail refused"))

    page = client.get("/checkout/return", params={"txn": transaction_id, "key": key}).text

    assert "We could not finish setting up your site" in page
    support = '<a href="mailto:support@kimmyai.io">support@kimmyai.io</a>'
    assert f"{support} and quote <strong>{transaction_id}</strong>" in page
    assert "mail refused" not in page


@pytest.mark.parametrize("txn", ["", "TXN-", "ORDER-1", "TXN-<script>"])
def test_the_return_page_refuses_a_malformed_transaction_id(client: TestClient, txn: str) -> None:
    assert client.get("/checkout/return", params={"txn": txn, "key": "k" * 32}).status_code == 400
    assert client.get("/checkout/status", params={"txn": txn, "key": "k" * 32}).status_code == 422


def test_first_sign_in_asks_for_a_new_password_then_the_account_page_shows_the_plan(
    client: TestClient, offline: Services
) -> None:
    signed_in_customer(client, offline)

    cookie = client.cookies.get(SESSION_COOKIE)
    page = client.get("/account")

    assert cookie
    assert page.status_code == 200
    assert 'id="plan">Professional<' in page.text
    assert 'max="5"' in page.text
    assert 'max="100"' in page.text
    assert 'max="500"' in page.text
    assert "Ada Lovelace" in page.text
    assert offline.accounts.login("ada@example.com", NEW_PASSWORD) is not None


def test_the_session_cookie_is_httponly_secure_and_lax(client: TestClient, offline: Services) -> None:
    buy_and_provision(client, offline)
    challenge = sign_in(client, "ada@example.com", welcome_password(offline, "ada@example.com"))

    done = choose_new_password(client, challenge.text, NEW_PASSWORD)

    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "SameSite=lax" in cookie


def test_sign_in_shows_the_runbook_messages(client: TestClient, offline: Services) -> None:
    unknown = sign_in(client, "nobody@example.com", "Whatever-1!")
    buy_and_provision(client, offline)
    tenant = offline.tenants.find_by_transaction(offline.journal.find(email="ada@example.com")[0].transaction_id)
    assert tenant is not None
    offline.tenants.delete(tenant.tenant_id)
    orphan = sign_in(client, "ada@example.com", welcome_password(offline, "ada@example.com"))

    assert (unknown.status_code, orphan.status_code) == (401, 403)
    assert "Account not found" in unknown.text
    assert "Tenant not found" in orphan.text
    assert SESSION_COOKIE not in client.cookies


def test_mismatched_new_passwords_are_refused_and_the_challenge_stays_open(client: TestClient,
                                                                          offline: Services) -> None:  # fmt: skip
    buy_and_provision(client, offline)
    challenge = sign_in(client, "ada@example.com", welcome_password(offline, "ada@example.com"))
    fields = dict(form_fields(challenge.text, "new-password-form"))

    mismatch = client.post("/auth/new-password", data={**fields, "new_password": NEW_PASSWORD,
                                                       "confirm_password": NEW_PASSWORD + "x"})  # fmt: skip
    weak = client.post("/auth/new-password", data={**fields, "new_password": "short", "confirm_password": "short"})
    chosen = {**fields, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    accepted = client.post("/auth/new-password", data=chosen, follow_redirects=False)

    assert mismatch.status_code == 400
    assert "do not match" in mismatch.text
    assert weak.status_code == 400
    assert "at least 8 characters" in weak.text
    assert accepted.status_code == 303


def test_pages_that_need_a_session_send_the_browser_to_sign_in(client: TestClient) -> None:
    anonymous = client.get("/account", follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, "forged.token.value", domain="testserver")
    forged = client.get("/account", follow_redirects=False)

    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/auth/login?next=/account")
    assert (forged.status_code, forged.headers["location"]) == (303, "/auth/login?next=/account")


def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(client: TestClient,
                                                                         offline: Services) -> None:  # fmt: skip
    signed_in_customer(client, offline)
    client.cookies.clear()

    inside = sign_in(client, "ada@example.com", NEW_PASSWORD, next_path="/pricing")
    outside = sign_in(client, "ada@example.com", NEW_PASSWORD, next_path="//evil.example/steal")

    assert inside.headers["location"] == "/pricing"
    assert outside.headers["location"] == "/account"


def test_signing_out_ends_the_session(client: TestClient, offline: Services) -> None:
    signed_in_customer(client, offline)
    token = csrf_token_in(client.get("/account").text)

    response = client.post("/auth/logout", data={"csrf_token": token}, follow_redirects=False)

    assert response.status_code == 303
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
    assert client.get("/account", follow_redirects=False).status_code == 303


def test_forgot_password_emails_a_code_that_sets_a_new_password(client: TestClient, offline: Services) -> None:
    signed_in_customer(client, offline)
    client.cookies.clear()
    token = csrf_token_in(client.get("/auth/forgot").text)

    sent = client.post("/auth/forgot", data={"csrf_token": token, "email": "ada@example.com"})
    code = reset_code(offline, "ada@example.com")
    form = {"csrf_token": token, "email": "ada@example.com", "code": code,
            "new_password": "Reset-Passw0rd!", "confirm_password": "Reset-Passw0rd!"}  # fmt: skip
    done = client.post("/auth/reset", data=form, follow_redirects=False)
    again = client.post("/auth/reset", data=form)

    assert sent.status_code == 200
    assert "If an account exists for ada@example.com" in sent.text
    assert (done.status_code, done.headers["location"]) == (303, "/auth/login?changed=1")
    assert "Your password is changed" in client.get("/auth/login?changed=1").text
    assert sign_in(client, "ada@example.com", "Reset-Passw0rd!").headers["location"] == "/account"
    assert sign_in(client, "ada@example.com", NEW_PASSWORD).status_code == 401
    assert again.status_code == 401
    assert "Invalid or expired code" in again.text


def test_forgot_password_answers_the_same_for_an_unknown_email(client: TestClient, offline: Services) -> None:
    token = csrf_token_in(client.get("/auth/forgot").text)

    response = client.post("/auth/forgot", data={"csrf_token": token, "email": "nobody@example.com"})

    assert response.status_code == 200
    assert "If an account exists for nobody@example.com" in response.text
    assert list(offline.mailer.outbox("nobody@example.com")) == []


def test_a_wrong_reset_code_changes_nothing(client: TestClient, offline: Services) -> None:
    signed_in_customer(client, offline)
    token = csrf_token_in(client.get("/auth/forgot").text)
    client.post("/auth/forgot", data={"csrf_token": token, "email": "ada@example.com"})
    code = reset_code(offline, "ada@example.com")
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)

    response = client.post("/auth/reset", data={"csrf_token": token, "email": "ada@example.com", "code": wrong,
                                                "new_password": "Reset-Passw0rd!",
                                                "confirm_password": "Reset-Passw0rd!"})  # fmt: skip

    assert response.status_code == 401
    assert "Invalid or expired code" in response.text
    assert sign_in(client, "ada@example.com", NEW_PASSWORD).status_code == 303


BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_a_browser_gets_an_error_page_where_a_program_gets_json(client: TestClient) -> None:
    page = client.get("/no/such/page", headers=BROWSER)
    program = client.get("/no/such/page", headers={"accept": "application/json"})

    assert page.status_code == program.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in page.text
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert program.json() == {"detail": "Not Found"}


def test_a_failing_identity_provider_is_an_error_page_not_a_traceback(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path / "home", payfast_mode="offline"))

    class Unavailable:
        def __getattr__(self, name: str) -> object:
            raise TransientError("identity provider throttled")

    broken = dataclasses.replace(services, identity=Unavailable())  # type: ignore[arg-type]
    with page_client(broken) as client:
        token = csrf_token_in(client.get("/auth/login").text)
        form = {"csrf_token": token, "email": "ada@example.com", "password": "Whatever-1!"}
        response = client.post("/auth/login/form", data=form, headers=BROWSER)
    services.close()

    assert response.status_code == 503
    assert "Temporarily unavailable" in response.text
    assert "throttled" not in response.text
    assert "Traceback" not in response.text


def test_signing_in_returns_to_the_page_with_its_query(client: TestClient) -> None:
    response = client.get("/ops/jobs?status=dead_lettered", follow_redirects=False)

    assert response.headers["location"] == "/auth/login?next=/ops/jobs%3Fstatus%3Ddead_lettered"
    page = client.get(response.headers["location"]).text
    assert 'name="next" value="/ops/jobs?status=dead_lettered"' in page


def test_without_secure_cookies_the_cookie_names_drop_the_host_prefix(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path / "home", cookie_secure=False))
    with TestClient(create_app(services), base_url="http://testserver") as client:
        cookie = client.get("/auth/login").headers["set-cookie"]
    services.close()

    assert cookie.startswith("tenancy_csrf=")
    assert "Secure" not in cookie


def test_a_form_posted_through_the_public_address_is_accepted(client: TestClient, offline: Services) -> None:
    # A proxy in front may rewrite Host; the browser's Origin is then the public URL.
    token = csrf_token_in(client.get("/checkout?plan=starter").text)
    form = {"csrf_token": token, "plan": "starter", "name": "Ada", "email": "ada@example.com"}

    through_proxy = client.post("/checkout", data=form, headers={"origin": "https://shop.example"})
    elsewhere = client.post("/checkout", data=form, headers={"origin": "https://shop.example.evil"})

    assert through_proxy.status_code == 200
    assert elsewhere.status_code == 403


def test_in_live_mode_the_form_posts_to_payfasts_live_process_url(tmp_path: Path) -> None:
    live = {"payfast_mode": "live", "payfast_merchant_id": "10012345", "payfast_merchant_key": "live-key-1",
            "payfast_passphrase": "a-live-passphrase"}  # fmt: skip
    services = build(make_settings(tmp_path / "home", public_url="https://shop.example", **live))
    with page_client(services) as client:
        page = checkout(client, plan="starter")
    services.close()

    fields = form_fields(page, "payfast-form")
    assert 'action="https://www.payfast.co.za/eng/process"' in page
    assert dict(fields)["merchant_id"] == "10012345"
    assert checkout_signature_matches(fields, "a-live-passphrase")
    assert "a-live-passphrase" not in page
