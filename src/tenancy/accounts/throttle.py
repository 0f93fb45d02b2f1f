"""Login throttling, built so that nobody can lock anybody else out.

Guesses are bounded where the guesser is: an address that keeps failing for one account is refused
for that account (429), and an address that keeps failing across accounts is refused for all of
them. The account itself is never locked: failures from everywhere only slow its sign-ins down
(a rising wait before the password is checked), so its owner, with the right password, always gets
in. Also the cap on how many forgotten-password codes an account, or an address, may ask for."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tenancy.errors import RateLimitedError
from tenancy.ports import Clock, RateLimiter

__all__ = ["LoginLimits", "LoginThrottle", "ResetLimits", "ResetRequestThrottle", "wait_text"]


@dataclass(frozen=True, slots=True)
class LoginLimits:
    max_failures_per_account: int = 5  # for one account from one address, then 429 for that pair
    max_failures_per_source: int = 20  # from one address over all accounts, then 429 for that address
    window_seconds: int = 900
    slow_down_after: int = 10  # failures of one account from anywhere before its sign-ins wait
    max_delay_seconds: float = 8.0


def wait_text(seconds: int) -> str:
    """How long a refusal lasts, for people: `30 seconds`, `1 minute`, `15 minutes`."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class LoginThrottle:
    def __init__(self, limiter: RateLimiter, limits: LoginLimits, clock: Clock) -> None:
        self._limiter = limiter
        self._limits = limits
        self._clock = clock

    def attempt(self, username: str, source: str) -> None:
        """Counts this attempt for the address (and the account from it) before the password is
        checked, atomically, so parallel guesses cannot all slip in under the limit; raises
        RateLimitedError past either. The same answer for every email, known or not."""
        window = self._limits.window_seconds
        if self._limiter.hit(_pair(username, source), window_seconds=window) > self._limits.max_failures_per_account:
            retry = self._retry_after()
            raise RateLimitedError(
                f"Too many failed sign-ins for this account from your address; try again in {wait_text(retry)}, "
                "or reset your password",
                retry,
            )
        if source and self._limiter.hit(_source(source), window_seconds=window) > self._limits.max_failures_per_source:
            retry = self._retry_after()
            raise RateLimitedError(
                f"Too many failed sign-ins from your address; try again in {wait_text(retry)}", retry
            )

    def failed(self, username: str) -> None:
        """A wrong password or code: one more failure of the account, from wherever it came."""
        self._limiter.hit(_account(username), window_seconds=self._limits.window_seconds)

    def delay_for(self, username: str) -> float:
        """How long a sign-in of this account waits before its password is checked: nothing until
        `slow_down_after` failures in the window, then doubling from half a second, capped."""
        failures = self._limiter.count(_account(username), window_seconds=self._limits.window_seconds)
        beyond = failures - self._limits.slow_down_after
        if beyond < 0:
            return 0.0
        return float(min(self._limits.max_delay_seconds, 0.5 * 2 ** min(beyond, 16)))

    def succeeded(self, username: str, source: str) -> None:
        """A right password: this address starts again for the account, and keeps only its failures."""
        window = self._limits.window_seconds
        self._limiter.reset(_pair(username, source), window_seconds=window)
        if source:
            self._limiter.release(_source(source), window_seconds=window)

    def _retry_after(self) -> int:
        window = self._limits.window_seconds
        now = self._clock.now().timestamp()
        return math.ceil((math.floor(now / window) + 1) * window - now)


@dataclass(frozen=True, slots=True)
class ResetLimits:
    max_codes_per_account: int = 3
    max_requests_per_source: int = 20
    window_seconds: int = 3600


class ResetRequestThrottle:
    """Caps reset emails: each one is mail sent to a stranger's inbox on request, and each new
    code replaces the one the account's owner may be typing."""

    def __init__(self, limiter: RateLimiter, limits: ResetLimits) -> None:
        self._limiter = limiter
        self._limits = limits

    def allows(self, username: str, source: str) -> bool:
        """Counts this request, for every email alike (known or not, so the cap reveals nothing);
        False past either limit."""
        window = self._limits.window_seconds
        if self._limiter.hit(f"reset:account:{username}", window_seconds=window) > self._limits.max_codes_per_account:
            return False
        hits = self._limiter.hit(f"reset:source:{source}", window_seconds=window) if source else 0
        return hits <= self._limits.max_requests_per_source


def _account(username: str) -> str:
    return f"login:account:{username}"


def _pair(username: str, source: str) -> str:
    return f"login:pair:{source}:{username}"


def _source(source: str) -> str:
    return f"login:source:{source}"
