"""The records Tenancy keeps: tenants, users, identity users, provisioning jobs, payments, mail.

Field names follow `shared/spec/data-contract.md`; statuses are enums, never loose strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from tenancy.domain.plans import Limits

__all__ = [
    "AuditRun",
    "AuthChallenge",
    "Billing",
    "IdentityUser",
    "IdentityUserStatus",
    "IndexedPurchase",
    "JobStatus",
    "LogComponent",
    "LogEvent",
    "OutboxMessage",
    "OutgoingEmail",
    "PaymentRecord",
    "PaymentVerdict",
    "ProvisioningJob",
    "QueueMessage",
    "QueuedMessage",
    "RepairRecord",
    "SessionKind",
    "SignInSession",
    "Step",
    "Tenant",
    "TenantStatus",
    "Tokens",
    "Usage",
    "UserRecord",
    "UserStatus",
]


class TenantStatus(StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a renewal did not come; full access, with a warning, for the grace period
    CANCELLING = "cancelling"  # cancelled at PayFast; full access until the paid-through date
    SUSPENDED = "suspended"  # past due beyond the grace period: billing only
    CANCELLED = "cancelled"
    DELETED = "deleted"  # a tombstone: the people are gone, the billing history kept

    @property
    def has_access(self) -> bool:
        """Whether the tenant's people may sign in and use it (tenant-lifecycle.md's access column)."""
        return self in {TenantStatus.ACTIVE, TenantStatus.PAST_DUE, TenantStatus.CANCELLING}

    @property
    def billing_only(self) -> bool:
        """Whether its people may sign in only to pay (tenant-lifecycle.md: suspended, cancelled)."""
        return self in {TenantStatus.SUSPENDED, TenantStatus.CANCELLED}


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class IdentityUserStatus(StrEnum):
    """Cognito's user statuses that the embedded identity provider mirrors."""

    FORCE_CHANGE_PASSWORD = "FORCE_CHANGE_PASSWORD"  # noqa: S105 - a status name
    CONFIRMED = "CONFIRMED"
    RESET_REQUIRED = "RESET_REQUIRED"


class Step(StrEnum):
    """The saga's steps, in the order they run."""

    TENANT_RECORD = "tenant_record"
    IDENTITY_USER = "identity_user"
    OWNER_LINK = "owner_link"
    USERS_RECORD = "users_record"
    ACTIVATE = "activate"
    WELCOME_EMAIL = "welcome_email"


class JobStatus(StrEnum):
    """The journal's state machine: QUEUED -> RUNNING -> (RETRYING -> RUNNING)* -> an end state."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    NEEDS_REVIEW = "needs_review"
    DEAD_LETTERED = "dead_lettered"

    @property
    def is_final(self) -> bool:
        return self in {JobStatus.SUCCEEDED, JobStatus.NEEDS_REVIEW, JobStatus.DEAD_LETTERED}


class PaymentVerdict(StrEnum):
    ACCEPTED = "accepted"  # valid and new; a COMPLETE one created a provisioning job
    DUPLICATE = "duplicate"  # valid, but this pf_payment_id + status was accepted before
    REJECTED = "rejected"  # failed a security check; nothing provisioned
    UNCONFIRMED = "unconfirmed"  # PayFast's validate endpoint could not be reached; PayFast will retry


@dataclass(frozen=True, slots=True)
class Usage:
    sites_count: int = 0
    generations_this_month: int = 0
    storage_used_mb: int = 0
    # The first day (ISO date) of the usage period the generation count belongs to; None until the
    # first record (domain.usage). Kept in the usage map, beside RB-001's three counts.
    period_start: str | None = None


@dataclass(frozen=True, slots=True)
class Billing:
    transaction_id: str
    invoice_number: str


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    owner_user_id: str
    name: str
    plan: str
    status: TenantStatus
    limits: Limits
    usage: Usage
    storage_prefix: str
    billing: Billing
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    tenant_id: str
    email: str
    role: str
    status: UserStatus
    created_at: str
    last_sign_in_at: str | None = None  # beside RB-001's fields: the member's latest sign-in


@dataclass(frozen=True, slots=True)
class IdentityUser:
    username: str
    sub: str
    status: IdentityUserStatus
    enabled: bool
    attributes: dict[str, str]
    created_at: datetime

    @property
    def email(self) -> str:
        return self.attributes.get("email", self.username)

    @property
    def tenant_id(self) -> str | None:
        return self.attributes.get("custom:tenant_id") or None


@dataclass(frozen=True, slots=True)
class Tokens:
    """Cognito's AuthenticationResult, in snake_case."""

    id_token: str
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - a token type name


class SessionKind(StrEnum):
    BROWSER = "browser"  # the pages' cookie
    API = "api"  # a refresh-token family handed to an API client


@dataclass(frozen=True, slots=True)
class SignInSession:
    """One sign-in, kept server-side so that it can be ended: a browser's session, or an API
    client's refresh-token family. The bearer holds `<session_id>.<secret>`; only the secret's
    SHA-256 is kept. Times are epoch seconds (DynamoDB's TTL reads `expires_at` as is)."""

    session_id: str
    secret_hash: str
    kind: SessionKind
    username: str
    subject: str
    tenant_id: str | None
    roles: tuple[str, ...]
    created_at: int
    expires_at: int
    # The identity provider's own refresh token behind an API family; never handed out.
    provider_refresh_token: str | None = None
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    challenge: str
    session: str


@dataclass(frozen=True, slots=True)
class ProvisioningJob:
    """One row of the provisioning journal, keyed by the transaction id."""

    transaction_id: str
    tenant_id: str
    invoice_number: str
    email: str
    plan: str
    tenant_name: str
    status: JobStatus
    created_at: str
    updated_at: str
    pf_payment_id: str | None = None
    completed_steps: tuple[Step, ...] = ()
    attempts: int = 0
    owner_user_id: str | None = None
    last_error: str | None = None
    review_reason: str | None = None
    next_attempt_at: str | None = None
    # The run that holds the job (a random id written when a run claims it): each of the run's
    # writes is conditional on it, so a run that was overtaken stops instead of running on.
    claim: str | None = None
    # A checkout for a tenant that exists (its owner buying again, or changing plan by subscribing
    # anew): nothing to provision; the payment's subscription reactivates that tenant.
    returning: bool = False

    def with_changes(self, **changes: object) -> ProvisioningJob:
        return replace(self, **changes)  # type: ignore[arg-type]

    def has_done(self, step: Step) -> bool:
        return step in self.completed_steps


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """One ITN as it arrived, with what was decided about it."""

    received_at: str
    source_ip: str
    fields: tuple[tuple[str, str], ...]
    verdict: PaymentVerdict
    reasons: tuple[str, ...] = ()
    pf_payment_id: str | None = None
    transaction_id: str | None = None
    payment_status: str | None = None
    email: str | None = None
    plan: str | None = None
    amount_gross: str | None = None
    token: str | None = None  # PayFast's subscription token: the ITNs of a subscription carry it

    def with_verdict(self, verdict: PaymentVerdict, *reasons: str) -> PaymentRecord:
        return replace(self, verdict=verdict, reasons=self.reasons + reasons)


@dataclass(frozen=True, slots=True)
class QueueMessage:
    receipt: str
    transaction_id: str
    receive_count: int
    sent_at: str


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message as an operator sees it, in the work queue or the dead-letter queue."""

    message_id: str
    queue: str
    transaction_id: str
    receive_count: int
    sent_at: str
    visible_at: str
    last_error: str | None = None

    @property
    def dead_lettered(self) -> bool:
        return self.queue.endswith("-dlq")


@dataclass(frozen=True, slots=True)
class RepairRecord:
    """One entry of the repair audit trail: who did what to which tenant, and the states before and after."""

    at: str
    operator: str
    transaction_id: str | None
    tenant_id: str | None
    email: str | None
    finding: str
    actions: tuple[str, ...]
    before: dict[str, object]
    after: dict[str, object]
    outcome: str


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str | None = None
    sender: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    # Values (a temporary password) that no stored copy keeps once a mail server has the email.
    secrets: tuple[str, ...] = ()

    def redacted(self) -> OutgoingEmail:
        """This email with every secret replaced, as it is kept in a mail log."""
        text, html = self.text, self.html
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
            html = html.replace(secret, "[redacted]") if html is not None else None
        return replace(self, text=text, html=html, secrets=())


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    message_id: str
    to: str
    sender: str
    subject: str
    text: str
    status: str
    created_at: str
    error: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class LogComponent(StrEnum):
    """Which log an event goes to: one file under TENANCY_HOME/logs locally, one log group on AWS."""

    ITN = "itn"  # /aws/lambda/site-builder-{env}-itn-handler
    PROVISIONING = "provisioning"  # /aws/lambda/site-builder-{env}-provisioning
    APP = "app"  # everything else: the web app, the CLI, login


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One logged event: `message` is the line as written (JSON), `fields` the same line parsed."""

    timestamp: datetime
    component: str
    message: str
    fields: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IndexedPurchase:
    """A purchase's finding as the runbook last judged it, kept in the findings index so that the
    console, /metrics and the alerts read findings without auditing every purchase again.
    `finding` is a runbook Finding's value; `changed_at` the purchase's own latest change (its
    job's update, else its newest ITN, else its tenant's creation), which lists sort by."""

    transaction_id: str
    finding: str
    classified_at: str
    changed_at: str
    email: str | None = None
    tenant_id: str | None = None
    job_status: str | None = None  # None: the journal has no job for the purchase


@dataclass(frozen=True, slots=True)
class AuditRun:
    """One full audit that refreshed the findings index: when it ran, who or what ran it, over
    which window, and what it found."""

    started_at: str
    finished_at: str
    trigger: str  # `schedule`, `cli` or `console`
    since: str
    purchases: int
    findings: int
