"""Throttles through real HTTP: repeated sign-in failures shut out the address that made them (for
that account, or for every account) with a clear 429, the same for every email, but never lock the
owner out; X-Forwarded-For is believed only from a trusted proxy; a flood of ITNs is refused."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tenancy.bootstrap import Services, build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.model import JobStatus
from tenancy.payments.simulator import build_itn, encode_form

from helpers import make_settings, pay, wait_until, work
from page_client import csrf_token_in, reset_code
from servers import PAYFAST_ADDRESS, PayfastStandIn, RunningServer, cli_env, free_port, start_server, stop_server


@pytest.fixture(scope="module")
def throttled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("throttle-home")
    env = cli_env(
        home,
        TENANCY_PORT=str(free_port()),
        TENANCY_PAYFAST_MODE="offline",
        TENANCY_TRUSTED_PROXIES="127.0.0.1/32",  # X-Forwarded-For stands for distinct callers
        TENANCY_LOGIN_MAX_FAILURES_PER_ACCOUNT="3",
        TENANCY_LOGIN_MAX_FAILURES_PER_SOURCE="6",
        TENANCY_ITN_MAX_PER_MINUTE_PER_SOURCE="5",
        TENANCY_LOGIN_MAX_DELAY_SECONDS="0.2",
        TENANCY_COOKIE_SECURE="false",  # plain HTTP: httpx sends the reset form's CSRF cookie back
    )
    running = start_server(home, env)
    create_customer(running, "locked@example.com")
    yield running
    stop_server(running)


def create_customer(server: RunningServer, email: str) -> None:
    """An account with a permanent password and an active tenant, so that a right password signs in."""
    services = build(make_settings(server.home, payfast_mode="offline"))
    try:
        transaction_id = pay(services, email)
        work(services)
        # The server's own worker may have taken the job first: wait for whichever runs it.
        wait_until(lambda: _succeeded(services, transaction_id), 30, f"{transaction_id} to be provisioned")
        services.identity.set_password(email, "Right-Passw0rd!", permanent=True)
    finally:
        services.close()


def _succeeded(services: Services, transaction_id: str) -> bool:
    job = services.journal.get(transaction_id)
    return job is not None and job.status is JobStatus.SUCCEEDED


def login(server: RunningServer, email: str, password: str, source: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": source},
    )


def test_failures_for_an_account_shut_out_that_address_but_never_its_owner(throttled_server: RunningServer) -> None:
    answers = [login(throttled_server, "locked@example.com", "wrong", "10.1.0.1").status_code for _ in range(3)]

    attacker = login(throttled_server, "locked@example.com", "Right-Passw0rd!", "10.1.0.1")
    owner = login(throttled_server, "locked@example.com", "Right-Passw0rd!", "10.1.0.9")

    assert answers == [401, 401, 401]
    assert attacker.status_code == 429
    assert "Too many failed sign-ins for this account from your address" in attacker.json()["detail"]
    assert 1 <= int(attacker.headers["Retry-After"]) <= 900
    assert re.search(r"try again in \d+ (minutes?|seconds?)", attacker.json()["detail"])
    assert owner.status_code == 200
    assert owner.json()["id_token"]


def test_failures_from_many_addresses_slow_the_account_down_but_never_lock_it(
    throttled_server: RunningServer,
) -> None:
    # Eleven failures from four addresses: past TENANCY_LOGIN_SLOW_DOWN_AFTER (10), so the
    # account's sign-ins now wait (capped by TENANCY_LOGIN_MAX_DELAY_SECONDS), but they still work.
    email = "slowed@example.com"
    create_customer(throttled_server, email)
    answers = [
        login(throttled_server, email, "wrong", f"10.4.0.{attempt // 3}").status_code for attempt in range(11)
    ]

    owner = login(throttled_server, email, "Right-Passw0rd!", "10.4.0.200")

    assert answers == [401] * 11
    assert owner.status_code == 200


def reset_password(server: RunningServer, email: str, new_password: str, source: str) -> httpx.Response:
    """Forgot password, then the emailed code with a new password, as a browser at `source` does
    it through the pages; the answer to the reset form."""
    headers = {"Origin": server.base_url, "X-Forwarded-For": source}
    with httpx.Client(base_url=server.base_url, headers=headers) as browser:
        token = csrf_token_in(browser.get("/auth/forgot").text)
        asked = browser.post("/auth/forgot", data={"csrf_token": token, "email": email})
        assert asked.status_code == 200, asked.text
        services = server.services()
        try:
            code = reset_code(services, email)  # the newest reset email's
        finally:
            services.close()
        form = {
            "csrf_token": csrf_token_in(browser.get(f"/auth/reset?email={email}").text),
            "email": email,
            "code": code,
            "new_password": new_password,
            "confirm_password": new_password,
        }
        return browser.post("/auth/reset", data=form, follow_redirects=False)


def test_a_valid_reset_code_is_never_refused_even_from_a_shut_out_address(throttled_server: RunningServer) -> None:
    email = "reset-locked@example.com"
    create_customer(throttled_server, email)
    failures = [login(throttled_server, email, "wrong", "10.5.0.1").status_code for _ in range(3)]
    assert failures == [401, 401, 401]
    assert login(throttled_server, email, "Right-Passw0rd!", "10.5.0.1").status_code == 429  # shut out

    from_elsewhere = reset_password(throttled_server, email, "Elsewhere-Passw0rd!", "10.5.0.2")
    signed_in = login(throttled_server, email, "Elsewhere-Passw0rd!", "10.5.0.3")
    from_the_same = reset_password(throttled_server, email, "Same-Address-Passw0rd!", "10.5.0.1")
    signed_in_again = login(throttled_server, email, "Same-Address-Passw0rd!", "10.5.0.3")

    for reset in (from_elsewhere, from_the_same):
        assert reset.status_code == 303, reset.text
        assert reset.headers["location"] == "/auth/login?changed=1"
    assert signed_in.status_code == 200
    assert signed_in.json()["id_token"]
    assert signed_in_again.status_code == 200
    assert signed_in_again.json()["id_token"]


def test_a_source_is_locked_after_failures_across_accounts_known_or_not(throttled_server: RunningServer) -> None:
    answers = [login(throttled_server, f"probe{n}@example.com", "guess", "10.2.0.1").status_code for n in range(6)]

    blocked = login(throttled_server, "someone-else@example.com", "guess", "10.2.0.1")
    elsewhere = login(throttled_server, "someone-else@example.com", "guess", "10.2.0.2")

    assert answers == [401] * 6
    assert blocked.status_code == 429
    assert "from your address" in blocked.json()["detail"]
    assert elsewhere.status_code == 401
    assert elsewhere.json()["detail"] == "Account not found"


def test_a_flood_of_itns_from_one_address_is_refused_with_429(throttled_server: RunningServer) -> None:
    def post(source: str, n: int) -> httpx.Response:
        fields = build_itn(
            transaction_id=f"TXN-FLOOD{n}{source.replace('.', '')}",
            email=f"flood{n}@example.com",
            plan="starter",
            amount="99.00",
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
        )
        return httpx.post(
            f"{throttled_server.base_url}/payments/payfast/itn",
            content=encode_form(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": source},
        )

    # The server counts ITNs per minute of its clock (this host's). A flood that straddles a minute
    # is counted in two windows, so it is sent again, from a new address, until one fits in a minute.
    for attempt in range(3):
        minute = int(time.time() // 60)
        answers = [post(f"10.3.{attempt}.1", n).status_code for n in range(6)]
        if int(time.time() // 60) == minute:
            break
    other = post("10.3.9.2", 99)

    assert answers == [200] * 5 + [429]
    assert other.status_code == 200


@pytest.fixture(scope="module")
def untrusting_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """PayFast's real ranges, sandbox checks on, and no trusted proxy: the socket peer is all
    that counts (127.0.0.1 here), whatever X-Forwarded-For says."""
    home = tmp_path_factory.mktemp("untrusting-home")
    validate = PayfastStandIn(free_port(), permissive=True)
    threading.Thread(target=validate.serve_forever, daemon=True).start()
    env = cli_env(
        home,
        TENANCY_PORT=str(free_port()),
        TENANCY_PAYFAST_MODE="sandbox",
        TENANCY_PAYFAST_VALIDATE_URL=f"http://127.0.0.1:{validate.server_address[1]}/eng/query/validate",
        TENANCY_TRUSTED_PROXIES="",
        TENANCY_WORKERS="0",
        TENANCY_LOGIN_MAX_FAILURES_PER_ACCOUNT="3",
        TENANCY_ITN_MAX_PER_MINUTE_PER_SOURCE="5",
    )
    env.pop("TENANCY_PAYFAST_SOURCE_RANGES", None)
    running = start_server(home, env)
    yield running
    stop_server(running)
    validate.shutdown()
    validate.server_close()
    assert "Traceback" not in running.log_text()


def test_an_itn_claiming_a_payfast_address_from_an_untrusted_peer_is_refused(
    untrusting_server: RunningServer,
) -> None:
    fields = build_itn(
        transaction_id="TXN-FORWARDED1",
        email="forwarded@example.com",
        plan="starter",
        amount="99.00",
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
    )
    response = httpx.post(
        f"{untrusting_server.base_url}/payments/payfast/itn",
        content=encode_form(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": PAYFAST_ADDRESS},
    )

    assert response.status_code == 400
    assert "source address 127.0.0.1 is not in PayFast's ranges" in response.text
    services = untrusting_server.services()
    try:
        assert services.journal.get("TXN-FORWARDED1") is None
        assert services.tenants.find_by_transaction("TXN-FORWARDED1") is None
    finally:
        services.close()


def test_a_guesser_cannot_dodge_the_sign_in_limit_by_varying_x_forwarded_for(
    untrusting_server: RunningServer,
) -> None:
    answers = [
        login(untrusting_server, "nobody@example.com", "guess", f"198.51.100.{n}").status_code for n in range(4)
    ]

    assert answers == [401, 401, 401, 429]


def test_an_itn_flood_cannot_dodge_the_limit_by_varying_x_forwarded_for(untrusting_server: RunningServer) -> None:
    def post(peer: str, n: int) -> httpx.Response:
        fields = build_itn(
            transaction_id=f"TXN-SPOOF{n}{peer.replace('.', '')}",
            email=f"spoof{n}@example.com",
            plan="starter",
            amount="99.00",
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
        )
        # Each from the same real peer, each claiming a new address (PayFast's own, once).
        forged = PAYFAST_ADDRESS if n == 5 else f"203.0.113.{n}"
        # A loopback address of its own, so that no other test's ITNs share this peer's count.
        transport = httpx.HTTPTransport(local_address=peer)
        with httpx.Client(transport=transport) as client:
            return client.post(
                f"{untrusting_server.base_url}/payments/payfast/itn",
                content=encode_form(fields),
                headers={"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": forged},
            )

    # As in the flood test above: sent again, from a new peer, until the flood fits in one minute.
    for attempt in range(3):
        peer = f"127.0.3.{attempt + 1}"
        minute = int(time.time() // 60)
        answers = [post(peer, n) for n in range(6)]
        if int(time.time() // 60) == minute:
            break

    # TENANCY_ITN_MAX_PER_MINUTE_PER_SOURCE=5: five are judged (and refused for their real source),
    # the sixth is refused before any work.
    assert [answer.status_code for answer in answers] == [400] * 5 + [429]
    assert all(f"source address {peer} is not in PayFast's ranges" in answer.text for answer in answers[:5])
    assert 1 <= int(answers[5].headers["Retry-After"]) <= 60
