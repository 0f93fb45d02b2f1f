"""The one error tree of Tenancy.

    TenancyError
    ├── ConfigurationError      settings that cannot work (refused at start)
    ├── InvalidInputError       bad input from a user or a caller; says what is wrong
    │   └── UnknownPlanError
    ├── TransientError          may succeed if tried again later: the worker retries with backoff
    ├── PermanentError          will fail the same way every time: the job is dead-lettered
    ├── NeedsReviewError        a human must decide (RB-001 section 6); the job stops, nothing is undone
    ├── ClaimLostError          another run (a worker, a repair) took the job over; this run stops
    ├── ItemAlreadyExistsError  a conditional create lost against an existing item
    ├── ConflictError           a conditional update lost: the item changed since it was read
    ├── NotFoundError           the item asked for does not exist
    ├── TenantInactiveError     the tenant may not use what it bought now (suspended, cancelled...)
    ├── SeatsTakenError         every seat of the tenant's plan is held (members, pending invitations)
    ├── RateLimitedError        too many attempts from one account or source; try after `retry_after`
    └── AuthenticationError     login refused; `reason` is what the user is shown
        ├── AccountNotFoundError    no identity user ("Account not found", RB-001 3.1)
        ├── InvalidCredentialsError wrong password or expired temporary password
        ├── TenantNotFoundError     identity user without an active tenant ("Tenant not found")
        │   └── TenantBlockedError  suspended or cancelled: billing only ("Tenant suspended")
        ├── InvalidSessionError     challenge session unknown, used or expired
        ├── PasswordPolicyError     new password too weak
        └── InvalidTokenError       bearer token missing, malformed, forged or expired

Adapters translate vendor errors into this tree where they see them, so the
service layer decides "retry or dead-letter" by type alone.
"""

from __future__ import annotations

__all__ = [
    "AccountNotFoundError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "InvalidCredentialsError",
    "InvalidInputError",
    "InvalidSessionError",
    "InvalidTokenError",
    "ItemAlreadyExistsError",
    "NeedsReviewError",
    "NotFoundError",
    "PasswordPolicyError",
    "PermanentError",
    "RateLimitedError",
    "SeatsTakenError",
    "TenancyError",
    "TenantBlockedError",
    "TenantInactiveError",
    "TenantNotFoundError",
    "TransientError",
    "UnknownPlanError",
]


class TenancyError(Exception):
    """Base of every error Tenancy raises on purpose."""


class ConfigurationError(TenancyError):
    """Settings that cannot work; raised at start, before anything is served."""


class InvalidInputError(TenancyError):
    """Input that is wrong and will stay wrong; the message says why."""


class UnknownPlanError(InvalidInputError):
    """The plan named is not in the catalogue."""


class TransientError(TenancyError):
    """A failure that may pass: throttling, timeouts, a server's 5xx, a lock."""


class PermanentError(TenancyError):
    """A failure that will repeat on every attempt; the job goes to the DLQ."""


class NeedsReviewError(TenancyError):
    """Provisioning must stop for a human decision (RB-001 section 6)."""


class ClaimLostError(TenancyError):
    """The job's claim changed under this run: another run holds the job now, so this one
    must stop writing it and doing its steps."""


class ItemAlreadyExistsError(TenancyError):
    """A create-if-absent write found the item already there."""


class ConflictError(TenancyError):
    """A write made over the version an item was read at found another version stored: someone
    wrote in between. Read again and re-apply."""


class NotFoundError(TenancyError):
    """The item asked for does not exist."""


class TenantInactiveError(TenancyError):
    """The tenant exists but has no access now, so nothing may be used or recorded for it:
    `status` is the tenant's, `reason` says why in words its owner understands."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"tenant is {status}: {reason}")
        self.status = status
        self.reason = reason


class SeatsTakenError(TenancyError):
    """Every seat of the tenant's plan is held, by members and pending invitations."""

    def __init__(self, seats: int) -> None:
        super().__init__(
            f"every seat is taken: the plan has {seats} (members and pending invitations hold one each); "
            "remove a member, revoke an invitation or upgrade the plan"
        )
        self.seats = seats


class RateLimitedError(TenancyError):
    """Too many attempts; `retry_after` is how many seconds until the next one may succeed."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = max(retry_after, 1)


class AuthenticationError(TenancyError):
    """Login or token refused. `reason` is safe to show the user."""

    reason = "Not authorized"
    status_code = 401

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or self.reason)
        if reason is not None:
            self.reason = reason


class AccountNotFoundError(AuthenticationError):
    reason = "Account not found"


class InvalidCredentialsError(AuthenticationError):
    reason = "Incorrect email or password"


class TenantNotFoundError(AuthenticationError):
    reason = "Tenant not found"
    status_code = 403


class TenantBlockedError(TenantNotFoundError):
    """The tenant exists, and its people may sign in, but not use it: suspended (payment overdue)
    or cancelled (subscription ended). Only its billing is open to them. `why` says it in words
    an owner understands; `status` is the tenant's."""

    def __init__(self, status: str) -> None:
        suspended = status == "suspended"
        super().__init__("Tenant suspended" if suspended else "Tenant cancelled")
        self.status = status
        self.why = "payment overdue" if suspended else "subscription ended"


class InvalidSessionError(AuthenticationError):
    reason = "Session is invalid or has expired"


class PasswordPolicyError(AuthenticationError):
    reason = "Password does not meet the policy"
    status_code = 400


class InvalidTokenError(AuthenticationError):
    reason = "Invalid or expired token"
