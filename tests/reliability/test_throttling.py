"""Throttles through real HTTP: repeated sign-in failures lock out the account and the source
address with a clear 429, the same for every email; a flood of ITNs from one address is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.payments.simulator import build_itn, encode_form

from servers import RunningServer, cli_env, free_port, start_server, stop_server


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
    )
    running = start_server(home, env)
    services = running.services()
    try:
        services.identity.create_user(
            "locked@example.com", {"email": "locked@example.com", "custom:roles": "tenant_admin"}, "Temp-Passw0rd!"
        )
        services.identity.set_password("locked@example.com", "Right-Passw0rd!", permanent=True)
    finally:
        services.close()
    yield running
    stop_server(running)


def login(server: RunningServer, email: str, password: str, source: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": source},
    )


def test_an_account_is_locked_after_repeated_failures_even_for_the_right_password(
    throttled_server: RunningServer,
) -> None:
    answers = [login(throttled_server, "locked@example.com", "wrong", f"10.1.0.{n}").status_code for n in range(3)]

    locked = login(throttled_server, "locked@example.com", "Right-Passw0rd!", "10.1.0.9")

    assert answers == [401, 401, 401]
    assert locked.status_code == 429
    assert "Too many failed sign-ins for this account" in locked.json()["detail"]
    assert 1 <= int(locked.headers["Retry-After"]) <= 900


def test_a_source_is_locked_after_failures_across_accounts_known_or_not(throttled_server: RunningServer) -> None:
    answers = [login(throttled_server, f"probe{n}@example.com", "guess", "10.2.0.1").status_code for n in range(6)]

    blocked = login(throttled_server, "someone-else@example.com", "guess", "10.2.0.1")
    elsewhere = login(throttled_server, "someone-else@example.com", "guess", "10.2.0.2")

    assert answers == [401] * 6
    assert blocked.status_code == 429
    assert "from this address" in blocked.json()["detail"]
    assert elsewhere.status_code == 401
    assert elsewhere.json()["detail"] == "Account not found"


def test_a_flood_of_itns_from_one_address_is_refused_with_429(throttled_server: RunningServer) -> None:
    if time.time() % 60 > 50:  # the counter's minute is about to roll over: start in a fresh one
        time.sleep(61 - time.time() % 60)

    def post(source: str, n: int) -> httpx.Response:
        fields = build_itn(
            transaction_id=f"TXN-FLOOD{n}{source[-1]}",
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

    answers = [post("10.3.0.1", n).status_code for n in range(6)]
    other = post("10.3.0.2", 99)

    assert answers == [200] * 5 + [429]
    assert other.status_code == 200
