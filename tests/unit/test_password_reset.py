"""The forgotten-password use case on the real embedded services: the code goes by email to the
account's address and nowhere else (not the logs), and the answer never tells who has an account."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import structlog

from tenancy.accounts.reset import password_reset_email, reset_url
from tenancy.bootstrap import Services, build
from tenancy.domain.model import OutboxMessage, Tokens
from tenancy.errors import InvalidCredentialsError

from helpers import make_settings

EMAIL = "owner@example.com"
PASSWORD = "Own-Passw0rd!"
RESET_PASSWORD = "Reset-Passw0rd!"
CODE_LINE = re.compile(r"^Your reset code: (\d{8})$", re.MULTILINE)


@pytest.fixture
def services(tmp_path: Path) -> Services:
    services = build(make_settings(tmp_path / "home"))
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
    assert events == ["password_reset_started", "password_reset_confirmed"]
    assert code not in json.dumps(logs, default=str)
    assert code not in caplog.text


def test_a_stored_copy_of_the_reset_email_keeps_no_code() -> None:
    email = password_reset_email(
        EMAIL, "40417321", login_url="https://dev.kimmyai.io/auth/login", sender="noreply@kimmyai.io"
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
