"""The forgotten-password use case on the real embedded services: the code goes by email to the
account's address and nowhere else (not the logs), and the answer never tells who has an account."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from tenancy.accounts.reset import password_reset_email, reset_url
from tenancy.adapters.local.ratelimit import SqliteRateLimiter
from tenancy.bootstrap import Services, build
from tenancy.domain.model import OutboxMessage, OutgoingEmail, Tokens
from tenancy.errors import InvalidCredentialsError, PermanentError, TransientError
from tenancy.ports import IdentityProvider

from helpers import ManualClock, make_settings

EMAIL = "owner@example.com"
PASSWORD = "Own-Passw0rd!"
RESET_PASSWORD = "Reset-Passw0rd!"
CODE_LINE = re.compile(r"^Your reset code: (\d{8})$", re.MULTILINE)
SOURCE = "203.0.113.7"
# The rate limiter's time, held still so its hourly windows cannot roll over mid-test.
LIMITER_NOW = datetime.fromtimestamp(1_768_739_400, UTC)


@pytest.fixture
def services(tmp_path: Path) -> Services:
    services = build(make_settings(tmp_path / "home"))
    assert services.database is not None
    services.rate_limiter = SqliteRateLimiter(services.database, clock=ManualClock(LIMITER_NOW))
    services.identity.create_user(EMAIL, {"email": EMAIL, "email_verified": "true"}, "Temp-Passw0rd!")
    services.identity.set_password(EMAIL, PASSWORD, permanent=True)
    return services


def _reset_emails(services: Services) -> list[OutboxMessage]:
    return [message for message in services.mailer.outbox() if message.tags.get("kind") == "password_reset"]


def _code_in(message: OutboxMessage) -> str:
    [code] = CODE_LINE.findall(message.text)
    return str(code)


def test_the_reset_code_is_emailed_to_the_account_and_sets_the_new_password(services: Services) -> None:
    services.accounts.request_password_reset("  Owner@Example.COM ")

    [message] = _reset_emails(services)
    assert message.to == EMAIL
    assert message.sender == "noreply@kimmyai.io"
    assert message.subject == "Your Site Builder password reset code"
    assert "http://127.0.0.1:8000/auth/reset?email=owner%40example.com" in message.text
    services.accounts.confirm_password_reset(EMAIL, f" {_code_in(message)} ", RESET_PASSWORD)
    assert isinstance(services.identity.authenticate(EMAIL, RESET_PASSWORD), Tokens)
    with pytest.raises(InvalidCredentialsError):
        services.identity.authenticate(EMAIL, PASSWORD)


def test_an_unknown_email_gets_no_email_and_no_error(services: Services) -> None:
    services.accounts.request_password_reset("nobody@example.com")
    services.accounts.request_password_reset("   ")

    assert services.mailer.outbox() == []


def test_an_account_still_on_its_temporary_password_gets_no_email_and_no_error(services: Services) -> None:
    services.identity.set_password(EMAIL, "Temp-Passw0rd!", permanent=False)

    services.accounts.request_password_reset(EMAIL)

    assert services.mailer.outbox() == []


def test_a_wrong_or_empty_code_is_an_invalid_or_expired_code(services: Services) -> None:
    services.accounts.request_password_reset(EMAIL)

    for wrong in ("", "   ", "12345678x"):
        with pytest.raises(InvalidCredentialsError) as caught:
            services.accounts.confirm_password_reset(EMAIL, wrong, RESET_PASSWORD)
        assert caught.value.reason == "Invalid or expired code"


def test_the_reset_code_never_reaches_the_logs(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), structlog.testing.capture_logs() as logs:
        services.accounts.request_password_reset(EMAIL)
        code = _code_in(_reset_emails(services)[0])
        services.accounts.confirm_password_reset(EMAIL, code, RESET_PASSWORD)

    events = [entry["event"] for entry in logs]
    assert events == ["password_reset_started", "sessions_ended", "password_reset_confirmed"]
    assert code not in json.dumps(logs, default=str)
    assert code not in caplog.text


def test_a_stored_copy_of_the_reset_email_keeps_no_code() -> None:
    email = password_reset_email(
        EMAIL,
        "40417321",
        login_url="https://dev.kimmyai.io/auth/login",
        sender="noreply@kimmyai.io",
        support_email="support@kimmyai.io",
    )

    assert "40417321" in email.text
    assert email.html is not None
    assert "<code>40417321</code>" in email.html
    assert email.tags == {"kind": "password_reset"}
    redacted = email.redacted()
    assert "40417321" not in redacted.text
    assert "40417321" not in (redacted.html or "")


@pytest.mark.parametrize(
    ("login_url", "expected"),
    [
        ("https://dev.kimmyai.io/auth/login", "https://dev.kimmyai.io/auth/reset?email=a%2Bb%40example.com"),
        ("https://example.com/app/auth/login", "https://example.com/app/auth/reset?email=a%2Bb%40example.com"),
        ("https://example.com/signin", "https://example.com/auth/reset?email=a%2Bb%40example.com"),
    ],
)
def test_the_reset_link_sits_beside_the_login_page(login_url: str, expected: str) -> None:
    assert reset_url(login_url, "a+b@example.com") == expected


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**8:08d}"


def test_a_fourth_reset_request_within_the_hour_sends_nothing_and_says_so_only_in_the_log(
    services: Services,
) -> None:
    with structlog.testing.capture_logs() as logs:
        for _ in range(4):
            services.accounts.request_password_reset(EMAIL, SOURCE)

    assert len(_reset_emails(services)) == 3
    assert [entry["log_level"] for entry in logs if entry["event"] == "password_reset_throttled"] == ["warning"]


def test_one_address_asking_for_many_accounts_is_cut_off_known_or_not(services: Services) -> None:
    for number in range(20):
        services.accounts.request_password_reset(f"stranger{number}@example.com", SOURCE)

    services.accounts.request_password_reset(EMAIL, SOURCE)
    assert _reset_emails(services) == []
    services.accounts.request_password_reset(EMAIL, "198.51.100.1")
    assert len(_reset_emails(services)) == 1


class _FailingResets:
    """The identity provider, failing to start a reset as Cognito does when busy."""

    def __init__(self, inner: IdentityProvider, failure: Exception) -> None:
        self._inner = inner
        self._failure = failure

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def start_password_reset(self, username: str) -> str | None:
        raise self._failure


class _DownMailer:
    def send(self, email: OutgoingEmail) -> str:
        raise TransientError("mail server unavailable")


@pytest.mark.parametrize(
    "failure", [TransientError("LimitExceededException"), PermanentError("InternalErrorException")]
)
def test_a_provider_failure_to_start_a_reset_is_logged_and_answers_as_usual(
    services: Services, failure: Exception
) -> None:
    failing = replace(services, identity=_FailingResets(services.identity, failure))

    with structlog.testing.capture_logs() as logs:
        failing.accounts.request_password_reset(EMAIL, SOURCE)

    [entry] = [entry for entry in logs if entry["event"] == "password_reset_failed"]
    assert entry["log_level"] == "warning"
    assert EMAIL not in json.dumps(logs, default=str)
    assert _reset_emails(services) == []


def test_a_mail_server_failure_answers_as_usual(services: Services) -> None:
    down = replace(services, mailer=_DownMailer())

    with structlog.testing.capture_logs() as logs:
        down.accounts.request_password_reset(EMAIL, SOURCE)

    assert [entry["event"] for entry in logs] == ["password_reset_failed"]


def test_a_valid_code_is_never_refused_by_the_sign_in_limits(services: Services) -> None:
    # Four wrong codes from this address: past the sign-in limit for the account from here, but a
    # lock there would let anyone keep the owner from resetting. The provider's own limit of five
    # tries per code (however many codes are asked for) is what bounds guessing.
    services.accounts.request_password_reset(EMAIL, SOURCE)
    code = _code_in(_reset_emails(services)[0])
    for _ in range(4):
        with pytest.raises(InvalidCredentialsError):
            services.accounts.confirm_password_reset(EMAIL, _wrong(code), RESET_PASSWORD)

    services.accounts.confirm_password_reset(EMAIL, code, RESET_PASSWORD)
    assert isinstance(services.identity.authenticate(EMAIL, RESET_PASSWORD), Tokens)


def test_guessing_codes_stays_bounded_by_the_providers_tries_per_code(services: Services) -> None:
    services.accounts.request_password_reset(EMAIL, SOURCE)
    code = _code_in(_reset_emails(services)[0])
    for _ in range(3):
        with pytest.raises(InvalidCredentialsError):
            services.accounts.confirm_password_reset(EMAIL, _wrong(code), RESET_PASSWORD)
    services.accounts.request_password_reset(EMAIL, SOURCE)
    code = _code_in(_reset_emails(services)[0])
    for _ in range(2):
        with pytest.raises(InvalidCredentialsError):
            services.accounts.confirm_password_reset(EMAIL, _wrong(code), RESET_PASSWORD)

    with pytest.raises(InvalidCredentialsError):
        services.accounts.confirm_password_reset(EMAIL, code, RESET_PASSWORD)
    assert isinstance(services.identity.authenticate(EMAIL, PASSWORD), Tokens)


def test_the_right_code_clears_the_accounts_count_of_wrong_ones(services: Services) -> None:
    for new_password in (RESET_PASSWORD, "Second-Passw0rd!"):
        services.accounts.request_password_reset(EMAIL, SOURCE)
        code = _code_in(_reset_emails(services)[0])
        for _ in range(4):
            with pytest.raises(InvalidCredentialsError):
                services.accounts.confirm_password_reset(EMAIL, _wrong(code), new_password)
        services.accounts.confirm_password_reset(EMAIL, code, new_password)

    assert isinstance(services.identity.authenticate(EMAIL, "Second-Passw0rd!"), Tokens)
