"""A purchase's status answers its buyer alone, through the real `tenancy serve`: the checkout's
return URL carries a status key, and without that key every status answer is the one for a
transaction never seen, for a web purchase and for a guessable RB-001 manual id alike."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tenancy.payments.checkout import STATUS_KEY_FIELD, status_key_digest

from servers import MailCatcher, RunningServer, free_port, server_env, start_server, stop_server, tenancy

NO_RECORD = {"detail": "We have no record of this payment"}
NO_PROVISIONING = {"detail": "No provisioning for this transaction"}
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, smtp_server: tuple[MailCatcher, int]) -> Iterator[RunningServer]:
    """`tenancy serve` in offline PayFast mode (the checkout's "Simulate payment") over plain HTTP."""
    home = tmp_path_factory.mktemp("status-home")
    env = server_env(home, free_port(), smtp_server[1], free_port(), TENANCY_PAYFAST_MODE="offline",
                     TENANCY_COOKIE_SECURE="false")  # fmt: skip
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


def hidden_fields(page: str, form_id: str) -> list[tuple[str, str]]:
    section = page.split(f'id="{form_id}"', 1)[1].split("</form>", 1)[0]
    return [(name, html.unescape(value)) for name, value in _HIDDEN.findall(section)]


def buy_offline(browser: httpx.Client, email: str) -> httpx.Response:
    """Pricing's Buy, the buyer's details, then "Simulate payment": the redirect to the return page."""
    start = browser.get("/checkout", params={"plan": "starter"}).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', start)
    assert token
    pay_page = browser.post("/checkout", data={"csrf_token": token.group(1), "plan": "starter",
                                               "name": "Status Buyer", "email": email})  # fmt: skip
    assert pay_page.status_code == 200, pay_page.text
    simulated = browser.post("/checkout/simulate", data=dict(hidden_fields(pay_page.text, "simulate-form")))
    assert simulated.status_code == 303, simulated.text
    return simulated


def wait_until_finished(browser: httpx.Client, status_url: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        answer = browser.get(status_url, headers={"Accept": "application/json"})
        if answer.status_code == 200:
            last = answer.json()
            if last["finished"]:
                return last
        time.sleep(0.05)
    raise AssertionError(f"the purchase never finished: {last}")


def client_for(server: RunningServer) -> httpx.Client:
    # Form posts name this site in Origin, as a browser's do.
    return httpx.Client(base_url=server.base_url, headers={"Origin": server.base_url}, timeout=10)


def test_the_return_page_follows_an_offline_purchase_with_its_key_to_ready(shop: RunningServer) -> None:
    with client_for(shop) as browser:
        redirect = buy_offline(browser, "status-buyer@example.com")
        location = redirect.headers["location"]
        query = parse_qs(urlsplit(location).query)
        transaction_id, key = query["txn"][0], query["key"][0]
        return_page = browser.get(location)
        status_url = re.search(r'data-status-url="([^"]+)"', return_page.text)
        assert status_url
        ready = wait_until_finished(browser, html.unescape(status_url.group(1)))
        after = browser.get(location).text

    assert urlsplit(location).path == "/checkout/return"
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", key)
    assert return_page.status_code == 200
    assert html.unescape(status_url.group(1)) == f"/checkout/status?txn={transaction_id}&key={key}"
    assert '<script src="/static/checkout-return.js"></script>' in return_page.text
    assert ready == {"transaction_id": transaction_id, "state": "ready", "finished": True,
                     "message": "Ready: check your email for your sign-in details."}  # fmt: skip
    assert "Ready: check your email" in after
    assert "checkout-return.js" not in after  # finished: nothing left to poll
    provisioning = httpx.get(f"{shop.base_url}/provisioning/{transaction_id}", params={"key": key})
    assert provisioning.status_code == 200
    assert provisioning.json()["status"] == "succeeded"
    assert provisioning.json()["completed_steps"][-1] == "welcome_email"
    # What made it so: the ITN PayFast would send echoed the key's digest, never the key.
    services = shop.services()
    try:
        (payment,) = services.ledger.find(transaction_id=transaction_id)
    finally:
        services.close()
    assert dict(payment.fields)[STATUS_KEY_FIELD] == status_key_digest(key)
    assert key not in json.dumps(payment.fields)


def test_without_its_key_a_purchase_answers_as_if_it_did_not_exist(shop: RunningServer) -> None:
    with client_for(shop) as browser:
        location = buy_offline(browser, "keyholder@example.com").headers["location"]
        query = parse_qs(urlsplit(location).query)
        transaction_id, key = query["txn"][0], query["key"][0]
        wait_until_finished(browser, f"/checkout/status?txn={transaction_id}&key={key}")
    unknown = "TXN-00000000DEADBEEF"
    wrong_keys = ["", "x" * 32, key[:-1] + ("A" if key[-1] != "A" else "B"), status_key_digest(key)]

    for txn in (transaction_id, unknown):
        for wrong in wrong_keys:
            params = {"key": wrong} if wrong else {}
            provisioning = httpx.get(f"{shop.base_url}/provisioning/{txn}", params=params)
            status = httpx.get(f"{shop.base_url}/checkout/status", params={"txn": txn, **params})
            assert (provisioning.status_code, provisioning.json()) == (404, NO_PROVISIONING), (txn, wrong)
            assert (status.status_code, status.json()) == (404, NO_RECORD), (txn, wrong)

    keyless = httpx.get(f"{shop.base_url}/checkout/return", params={"txn": transaction_id})
    wrong_page = httpx.get(f"{shop.base_url}/checkout/return", params={"txn": transaction_id, "key": "x" * 32})
    unknown_page = httpx.get(f"{shop.base_url}/checkout/return", params={"txn": unknown, "key": "x" * 32})
    assert keyless.status_code == 404
    assert "We have no record of this payment." in keyless.text
    assert wrong_page.status_code == unknown_page.status_code == 200
    assert wrong_page.text.replace(transaction_id, unknown) == unknown_page.text
    assert "We have no record of this payment yet" in wrong_page.text
    assert "Ready" not in wrong_page.text


def test_a_guessed_rb001_manual_id_has_no_public_status(shop: RunningServer) -> None:
    payload = '{"transactionId":"TXN-123456","email":"manual@example.com","plan":"professional"}'
    provisioned = tenancy(shop.env, "provision", "--payload", payload, "--json")
    assert provisioned.returncode == 0, provisioned.stderr
    assert json.loads(provisioned.stdout)["status"] == "succeeded"

    for params in ({}, {"key": "123456"}, {"key": "x" * 32}):
        provisioning = httpx.get(f"{shop.base_url}/provisioning/TXN-123456", params=params)
        status = httpx.get(f"{shop.base_url}/checkout/status", params={"txn": "TXN-123456", **params})
        assert (provisioning.status_code, provisioning.json()) == (404, NO_PROVISIONING), params
        assert (status.status_code, status.json()) == (404, NO_RECORD), params
    page = httpx.get(f"{shop.base_url}/checkout/return", params={"txn": "TXN-123456", "key": "123456"})
    assert "We have no record of this payment yet" in page.text
    assert "Ready" not in page.text
    # Operators still see it, from the stores: the CLI (and the console) are not behind the key.
    diagnosed = tenancy(shop.env, "diagnose", "--transaction-id", "TXN-123456", "--json")
    assert diagnosed.returncode == 0, diagnosed.stdout  # 0: healthy
    assert json.loads(diagnosed.stdout)["transaction_id"] == "TXN-123456"
