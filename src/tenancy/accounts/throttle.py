"""Login throttling: after repeated failures an account, or a source address, is locked out for
the rest of the window, with a clear 429 and how long to wait. Also the cap on how many
forgotten-password codes an account, or a source address, may ask for."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tenancy.errors import RateLimitedError
from tenancy.ports import Clock, RateLimiter

__all__ = ["LoginLimits", "LoginThrottle", "ResetLimits", "ResetRequestThrottle"]


@dataclass(frozen=True, slots=True)
class LoginLimits:
    max_failures_per_account: int = 5
    max_failures_per_source: int = 20
    window_seconds: int = 900


class LoginThrottle:
    def __init__(self, limiter: RateLimiter, limits: LoginLimits, clock: Clock) -> None:
        self._limiter = limiter
        self._limits = limits
        self._clock = clock

    def attempt(self, username: str, source: str) -> None:
        """Counts this attempt before the password is checked, atomically, so parallel guesses
        cannot all slip in under the limit; raises RateLimitedError past it. The same answer for
        every email, known or not, so the lockout itself reveals nothing."""
        window = self._limits.window_seconds
        if self._limiter.hit(_account(username), window_seconds=window) > self._limits.max_failures_per_account:
            raise RateLimitedError("Too many failed sign-ins for this account; try again later", self._retry_after())
        if source and self._limiter.hit(_source(source), window_seconds=window) > self._limits.max_failures_per_source:
            raise RateLimitedError("Too many failed sign-ins from this address; try again later", self._retry_after())

    def succeeded(self, username: str, source: str) -> None:
        """A right password: the account's count starts again; the source keeps only its failures."""
        window = self._limits.window_seconds
        self._limiter.reset(_account(username), window_seconds=window)
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


def _source(source: str) -> str:
    return f"login:source:{source}"
