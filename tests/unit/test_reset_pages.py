"""The forgot-password pages under attack, through the real app: the answer never tells who has
an account, reset emails and code guesses are capped, and a busy provider gets a page, not JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tenancy.adapters.local.ratelimit import SqliteRateLimiter
from tenancy.bootstrap import Services, build
from tenancy.errors import RateLimitedError, TransientError
from tenancy.ports import IdentityProvider

from helpers import ManualClock, make_settings
from page_client import (
    csrf_token_in,
    page_client,
    reset_code,
    signed_in_customer,
)

EMAIL = "ada@example.com"
UNKNOWN = "nobody@example.com"
RESET_PASSWORD = "Reset-Passw0rd!"


class LimiterClock(ManualClock):
    """The rate limiter's time, held still until a test moves it past a window."""

    def __init__(self) -> None:
        super().__init__(datetime.fromtimestamp(1_768_737_600, UTC))


class BusyIdentity:
    """The identity provider as Cognito answers when busy (LimitExceededException, mapped to
    TransientError): only for real accounts, since Cognito checks the user first."""

    def __init__(self, inner: IdentityProvider, failure: Exception) -> None:
        self._inner = inner
        self._failure = failure

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def start_password_reset(self, username: str) -> str | None:
        if self._inner.get_user(username) is not None:
            raise self._failure
        return self._inner.start_password_reset(username)

    def confirm_password_reset(self, username: str, code: str, new_password: str) -> None:
        raise self._failure


def offline_services(home: Path, clock: LimiterClock, **settings: object) -> Services:
    services = build(make_settings(home, payfast_mode="offline", public_url="https://shop.example", **settings))
    assert services.database is not None
    services.rate_limiter = SqliteRateLimiter(services.database, clock=clock)
    return services


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Services]:
    services = offline_services(tmp_path / "home", LimiterClock())
    yield services
    services.close()


@pytest.fixture
def client(offline: Services) -> Iterator[TestClient]:
    with page_client(offline) as client:
        signed_in_customer(client, offline, EMAIL)
        client.cookies.clear()
        yield client


def forgot(client: TestClient, email: str) -> httpx.Response:
    token = csrf_token_in(client.get("/auth/forgot").text)
    return client.post("/auth/forgot", data={"csrf_token": token, "email": email})


def reset(client: TestClient, code: str) -> httpx.Response:
    token = csrf_token_in(client.get("/auth/reset").text)
    form = {"csrf_token": token, "email": EMAIL, "code": code,
            "new_password": RESET_PASSWORD, "confirm_password": RESET_PASSWORD}  # fmt: skip
    return client.post("/auth/reset", data=form, follow_redirects=False)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**8:08d}"


def reset_emails(services: Services) -> int:
    return len([mail for mail in services.mailer.outbox(EMAIL) if mail.tags.get("kind") == "password_reset"])


def page_without(response: httpx.Response, email: str) -> str:
    """The page with what differs by request alone (the CSRF token and the email typed) taken out."""
    return re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', response.text).replace(
        email, "EMAIL"
    )


def test_a_real_account_and_an_unknown_one_get_the_same_page(client: TestClient) -> None:
    real = forgot(client, EMAIL)
    unknown = forgot(client, UNKNOWN)

    assert real.status_code == unknown.status_code == 200
    assert page_without(real, EMAIL) == page_without(unknown, UNKNOWN)


def test_the_fourth_reset_request_within_the_hour_sends_no_email_and_answers_the_same(
    client: TestClient, offline: Services
) -> None:
    answers = [forgot(client, EMAIL) for _ in range(4)]

    assert reset_emails(offline) == 3
    assert answers[3].status_code == 200
    assert page_without(answers[3], EMAIL) == page_without(answers[0], EMAIL)


def test_the_right_code_is_never_refused_after_wrong_ones_from_the_same_address(tmp_path: Path) -> None:
    services = offline_services(tmp_path / "home", LimiterClock(), login_max_failures_per_account=3)
    with page_client(services) as client:
        signed_in_customer(client, services, EMAIL)
        client.cookies.clear()
        forgot(client, EMAIL)
        code = reset_code(services, EMAIL)
        for _ in range(3):
            assert reset(client, wrong(code)).status_code == 401

        answer = reset(client, code)
    services.close()

    assert (answer.status_code, answer.headers["location"]) == (303, "/auth/login?changed=1")


def test_asking_again_after_four_wrong_codes_leaves_one_guess(tmp_path: Path) -> None:
    # The login limits set high, so this is the provider's own limit on each code.
    services = offline_services(tmp_path / "home", LimiterClock(), login_max_failures_per_account=50)
    with page_client(services) as client:
        signed_in_customer(client, services, EMAIL)
        client.cookies.clear()
        forgot(client, EMAIL)
        first = reset_code(services, EMAIL)
        for _ in range(4):
            assert reset(client, wrong(first)).status_code == 401
        forgot(client, EMAIL)
        second = reset_code(services, EMAIL)

        last_guess = reset(client, wrong(second))
        right_too_late = reset(client, second)
    services.close()

    assert last_guess.status_code == 401
    assert right_too_late.status_code == 401
    assert "Invalid or expired code" in right_too_late.text


@pytest.mark.parametrize("failure", [TransientError("LimitExceededException"), RateLimitedError("busy", 60)])
def test_a_busy_provider_gives_the_usual_forgot_page(client: TestClient, offline: Services, failure: Exception) -> None:
    busy = replace(offline, identity=BusyIdentity(offline.identity, failure))
    with page_client(busy) as busy_client:
        real = forgot(busy_client, EMAIL)
        unknown = forgot(busy_client, UNKNOWN)

    assert real.status_code == unknown.status_code == 200
    assert page_without(real, EMAIL) == page_without(unknown, UNKNOWN)


def test_a_busy_provider_gives_a_503_page_on_reset(client: TestClient, offline: Services) -> None:
    busy = replace(offline, identity=BusyIdentity(offline.identity, TransientError("LimitExceededException")))
    with page_client(busy) as busy_client:
        response = reset(busy_client, "12345678")

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "The service is busy; try again in a minute." in response.text
