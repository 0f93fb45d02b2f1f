"""Sign-in rules beyond the identity provider: the order checks run in, and the throttle."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tenancy.bootstrap import Services, build
from tenancy.errors import InvalidCredentialsError, InvalidSessionError, RateLimitedError

from helpers import make_settings


@pytest.fixture
def services(tmp_path: Path) -> Services:
    return build(make_settings(tmp_path / "home", login_max_failures_per_account=3))


def test_a_bad_session_is_refused_before_anything_is_said_about_the_tenant(services: Services) -> None:
    services.identity.create_user("tenantless@example.com", {"email": "tenantless@example.com"}, "Temp-Passw0rd!")

    with pytest.raises(InvalidSessionError):
        services.accounts.complete_new_password("tenantless@example.com", "not-a-session", "New-Passw0rd!")


def test_parallel_guesses_cannot_all_slip_under_the_account_limit(services: Services) -> None:
    services.identity.create_user("target@example.com", {"email": "target@example.com"}, "Temp-Passw0rd!")
    services.identity.set_password("target@example.com", "Right-Passw0rd!", permanent=True)
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(10)

    def guess() -> None:
        start.wait()
        try:
            services.accounts.login("target@example.com", "wrong-guess", "10.9.0.1")
        except (InvalidCredentialsError, RateLimitedError) as error:
            with lock:
                outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=guess) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("InvalidCredentialsError") == 3
    assert outcomes.count("RateLimitedError") == 7
