"""Server-side sessions and the login slow-down, on the real embedded stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tenancy.accounts.sessions import SessionLifetimes, SessionService
from tenancy.accounts.throttle import LoginLimits, LoginThrottle, wait_text
from tenancy.adapters.local.ratelimit import SqliteRateLimiter
from tenancy.adapters.local.sessions import SqliteSessionStore
from tenancy.bootstrap import Services
from tenancy.domain.model import Tokens
from tenancy.errors import InvalidTokenError

EMAIL = "ada@example.com"
PASSWORD = "Right-Passw0rd!"


class FakeClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sessions(services: Services, clock: FakeClock) -> SessionService:
    attributes = {"email": EMAIL, "custom:roles": "tenant_admin", "custom:tenant_id": "ten_abc"}
    services.identity.create_user(EMAIL, attributes, "Temp-Passw0rd!")
    services.identity.set_password(EMAIL, PASSWORD, permanent=True)
    store = SqliteSessionStore(services.database)  # type: ignore[arg-type]
    return SessionService(store, services.identity, clock, SessionLifetimes(browser_seconds=3600, api_seconds=7200))


def provider_tokens(services: Services) -> Tokens:
    tokens = services.identity.authenticate(EMAIL, PASSWORD)
    assert isinstance(tokens, Tokens)
    return tokens


def test_a_browser_session_carries_who_and_which_tenant_and_ends_when_its_time_is_up(
    services: Services, sessions: SessionService, clock: FakeClock
) -> None:
    claims = services.identity.verify_id_token(provider_tokens(services).id_token)
    cookie = sessions.start_browser(claims)

    live = sessions.browser_session(cookie)
    clock.moment += timedelta(seconds=3600)

    assert live is not None
    assert (live.username, live.tenant_id, live.roles) == (EMAIL, "ten_abc", ("tenant_admin",))
    assert sessions.browser_session(cookie) is None


def test_a_session_token_is_only_good_for_its_own_kind_and_with_its_own_secret(
    services: Services, sessions: SessionService
) -> None:
    claims = services.identity.verify_id_token(provider_tokens(services).id_token)
    cookie = sessions.start_browser(claims)
    api = sessions.start_api(provider_tokens(services))
    session_id = cookie.split(".")[0]

    with pytest.raises(InvalidTokenError):
        sessions.refresh(cookie)  # a browser cookie is no refresh token
    assert sessions.browser_session(api.refresh_token) is None
    assert sessions.browser_session(f"{session_id}.{'x' * 43}") is None
    assert sessions.browser_session("not a token") is None
    assert sessions.browser_session(cookie) is not None  # a wrong guess does not end a browser session


def test_the_provider_refresh_token_is_never_handed_out(services: Services, sessions: SessionService) -> None:
    provider = provider_tokens(services)

    ours = sessions.start_api(provider)
    refreshed = sessions.refresh(ours.refresh_token)

    assert provider.refresh_token not in {ours.refresh_token, refreshed.refresh_token}
    assert services.identity.verify_id_token(refreshed.id_token)["email"] == EMAIL


def test_an_id_token_issued_before_its_user_signed_out_everywhere_no_longer_counts(
    services: Services, sessions: SessionService, clock: FakeClock
) -> None:
    tokens = provider_tokens(services)
    claims = services.identity.verify_id_token(tokens.id_token)
    clock.moment = datetime.fromtimestamp(int(claims["iat"]), UTC)  # type: ignore[arg-type]
    sessions.require_current(claims)

    sessions.end_everywhere(EMAIL, "test")

    with pytest.raises(InvalidTokenError):
        sessions.require_current(claims)  # issued in the same second as the sign-out: ended too
    assert sessions.require_current({**claims, "iat": int(claims["iat"]) + 1}) is None  # type: ignore[call-overload]


def test_sign_ins_slow_down_after_many_failures_and_the_wait_is_capped(services: Services) -> None:
    limits = LoginLimits(slow_down_after=3, max_delay_seconds=4.0)
    limiter = SqliteRateLimiter(services.database, clock=services.clock)  # type: ignore[arg-type]
    throttle = LoginThrottle(limiter, limits, services.clock)
    delays = []
    for _ in range(8):
        delays.append(throttle.delay_for(EMAIL))
        throttle.failed(EMAIL)

    assert delays == [0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert throttle.delay_for("someone-else@example.com") == 0.0


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "1 second"), (30, "30 seconds"), (60, "1 minute"), (61, "2 minutes"), (900, "15 minutes")]
)
def test_waits_are_said_in_words(seconds: int, text: str) -> None:
    assert wait_text(seconds) == text
