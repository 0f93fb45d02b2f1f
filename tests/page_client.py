"""Driving the server-rendered pages from TestClient: CSRF tokens, hidden fields, signing in."""

from __future__ import annotations

import html
import re

import httpx
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services
from tenancy.web.app import create_app

from helpers import work

__all__ = [
    "NEW_PASSWORD",
    "buy_and_provision",
    "checkout",
    "choose_new_password",
    "csrf_token_in",
    "form_fields",
    "page_client",
    "reset_code",
    "sign_in",
    "signed_in_customer",
    "simulate",
    "simulate_to_return",
    "welcome_password",
]

_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def page_client(services: Services) -> TestClient:
    # https: the session and CSRF cookies are Secure, and the client only sends them over https.
    # Origin: a browser names the page's site on every form post, and the pages require it.
    return TestClient(create_app(services), base_url="https://testserver", headers={"Origin": "https://testserver"})


def csrf_token_in(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def form_fields(page: str, form_id: str) -> list[tuple[str, str]]:
    """The hidden fields of the form with `form_id`, in document order, unescaped as a browser would."""
    section = page.split(f'id="{form_id}"', 1)[1].split("</form>", 1)[0]
    return [(name, html.unescape(value)) for name, value in _INPUT.findall(section)]


def sign_in(client: TestClient, email: str, password: str, next_path: str = "") -> httpx.Response:
    token = csrf_token_in(client.get("/auth/login").text)
    form = {"csrf_token": token, "email": email, "password": password, "next": next_path}
    return client.post("/auth/login/form", data=form, follow_redirects=False)


def checkout(client: TestClient, plan: str = "professional", name: str = "Ada Lovelace",
             email: str = "ada@example.com") -> str:  # fmt: skip
    token = csrf_token_in(client.get(f"/checkout?plan={plan}").text)
    response = client.post("/checkout", data={"csrf_token": token, "plan": plan, "name": name, "email": email})
    assert response.status_code == 200, response.text
    return response.text


def simulate_to_return(client: TestClient, page: str) -> tuple[str, str]:
    """Presses "Simulate payment"; the transaction id and the status key of the return page it lands on."""
    response = client.post("/checkout/simulate", data=dict(form_fields(page, "simulate-form")), follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    match = re.fullmatch(r"/checkout/return\?txn=(TXN-[0-9A-F]+)&key=([A-Za-z0-9_-]{32})", location)
    assert match, location
    return match.group(1), match.group(2)


def simulate(client: TestClient, page: str) -> str:
    """Presses "Simulate payment"; the transaction id from the return page it lands on."""
    return simulate_to_return(client, page)[0]


def choose_new_password(client: TestClient, challenge_page: str, password: str) -> httpx.Response:
    """Answers the new-password challenge page that a first sign-in shows."""
    fields = dict(form_fields(challenge_page, "new-password-form"))
    fields.update(new_password=password, confirm_password=password)
    return client.post("/auth/new-password", data=fields, follow_redirects=False)


NEW_PASSWORD = "Chosen-Passw0rd!"


def welcome_password(services: Services, email: str) -> str:
    """The temporary password in the newest welcome email (the embedded outbox keeps it whole)."""
    match = re.search(r"Temporary password: (\S+)", services.mailer.outbox(email)[0].text)
    assert match
    return match.group(1)


def reset_code(services: Services, email: str) -> str:
    mails = [mail for mail in services.mailer.outbox(email) if "reset code" in mail.subject]
    match = re.search(r"Your reset code: (\d+)", mails[0].text)
    assert match
    return match.group(1)


def buy_and_provision(client: TestClient, services: Services, email: str = "ada@example.com") -> str:
    """Checkout, simulated payment and the worker: a provisioned tenant; its transaction id."""
    transaction_id = simulate(client, checkout(client, email=email))
    work(services)
    return transaction_id


def signed_in_customer(client: TestClient, services: Services, email: str = "ada@example.com") -> None:
    """A provisioned customer signed in with NEW_PASSWORD chosen on the first sign-in."""
    buy_and_provision(client, services, email)
    challenge = sign_in(client, email, welcome_password(services, email))
    assert challenge.status_code == 200
    assert "Choose a new password" in challenge.text
    done = choose_new_password(client, challenge.text, NEW_PASSWORD)
    assert (done.status_code, done.headers["location"]) == (303, "/account")
