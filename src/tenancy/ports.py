"""The ports: what the service layer needs from the outside world, one Protocol each.

Each method's docstring is its contract; every backend (local SQLite, AWS) meets it,
and the contract tests run the same assertions against each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from tenancy.domain.billing import PayfastSubscription, Subscription, SubscriptionFigures
from tenancy.domain.lifecycle import (
    EventType,
    LifecycleCommit,
    LifecycleEvent,
    Notice,
    NoticeStatus,
    Tombstone,
    Transition,
)
from tenancy.domain.members import Invitation, InvitationStatus, Role
from tenancy.domain.model import (
    AuditRun,
    AuthChallenge,
    IdentityUser,
    IndexedPurchase,
    JobStatus,
    LogEvent,
    OutboxMessage,
    OutgoingEmail,
    PaymentRecord,
    PaymentVerdict,
    ProvisioningJob,
    QueuedMessage,
    QueueMessage,
    RepairRecord,
    SignInSession,
    Tenant,
    TenantStatus,
    Tokens,
    Usage,
    UserRecord,
)
from tenancy.domain.service_keys import ServiceKey
from tenancy.domain.usage import Metric, UsageChange, UsageOutcome

__all__ = [
    "Clock",
    "EventPublisher",
    "FindingsIndex",
    "IdentityProvider",
    "JobQueue",
    "LifecycleStore",
    "LogSource",
    "Mailer",
    "Notifier",
    "PaymentConfirmer",
    "PaymentLedger",
    "ProvisioningJournal",
    "PurchaseObserver",
    "RateLimiter",
    "RepairTrail",
    "ServiceKeyStore",
    "SessionStore",
    "SubscriptionApi",
    "SubscriptionStore",
    "TeamStore",
    "TenantStore",
    "UsageStore",
    "UserStore",
]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class TenantStore(Protocol):
    def get(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None."""
        ...

    def create(self, tenant: Tenant) -> None:
        """Writes the tenant if no tenant has its id; else raises ItemAlreadyExistsError."""
        ...

    def set_owner(self, tenant_id: str, owner_user_id: str, updated_at: str) -> None:
        """Sets `owner_user_id`; raises NotFoundError if the tenant does not exist."""
        ...

    def set_status(self, tenant_id: str, status: TenantStatus, updated_at: str) -> None:
        """Sets `status`; raises NotFoundError if the tenant does not exist."""
        ...

    def find_by_transaction(self, transaction_id: str) -> Tenant | None:
        """The tenant whose billing carries this transaction id, or None. If several do (a
        hand-made `ten_NEWID` beside the project's own), the one with the id derived from the
        transaction wins, else the earliest created."""
        ...

    def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Tenant]:
        """`get` for many ids in a few reads: the tenants found, by id (an id none has is left out)."""
        ...

    def find_by_transactions(self, transaction_ids: Sequence[str]) -> dict[str, Tenant]:
        """`find_by_transaction` for many transaction ids, choosing as it does: the tenant found
        for each, by transaction id (one no tenant carries is left out)."""
        ...

    def scan_created(self, batch_size: int = 1000) -> Iterator[list[tuple[str, str, str]]]:
        """(tenant_id, billing transaction id, created_at) of every tenant, in batches, without
        building the tenants."""
        ...

    def put(self, tenant: Tenant) -> None:
        """Writes the tenant whether or not it exists (an operator's hand-made record, a repair)."""
        ...

    def delete(self, tenant_id: str) -> None:
        """Removes the tenant if it exists."""
        ...

    def scan(self, batch_size: int = 1000) -> Iterator[list[Tenant]]:
        """Every tenant, in batches."""
        ...

    def count_by_status(self) -> dict[TenantStatus, int]:
        """How many tenants there are in each status (a status with none is left out)."""
        ...


class UserStore(Protocol):
    def get(self, user_id: str) -> UserRecord | None:
        """The users record, or None."""
        ...

    def get_many(self, user_ids: Sequence[str]) -> dict[str, UserRecord]:
        """The records of these ids that exist, by id, in batches (never one read per id)."""
        ...

    def find_by_email(self, email: str) -> list[UserRecord]:
        """Every users record for the (lower-cased) email, oldest first."""
        ...

    def find_by_tenant(self, tenant_id: str) -> list[UserRecord]:
        """Every users record of the tenant (its people), oldest first."""
        ...

    def find_by_emails(self, emails: Sequence[str]) -> dict[str, list[UserRecord]]:
        """`find_by_email` for many emails in a few reads, by the email as given (normalized alike,
        oldest first); an email with no record is left out."""
        ...

    def create(self, user: UserRecord) -> None:
        """Writes the record if none has its user_id; else raises ItemAlreadyExistsError."""
        ...

    def put(self, user: UserRecord) -> None:
        """Writes the record whether or not it exists."""
        ...

    def delete(self, user_id: str) -> None:
        """Removes the record if it exists."""
        ...

    def record_sign_in(self, email: str, at: str) -> None:
        """Notes `at` as the latest sign-in on the email's active records (none: nothing)."""
        ...

    def scan(self, batch_size: int = 1000) -> Iterator[list[UserRecord]]:
        """Every users record, in batches."""
        ...


class ProvisioningJournal(Protocol):
    def get(self, transaction_id: str) -> ProvisioningJob | None:
        """The job for the transaction, or None."""
        ...

    def get_many(self, transaction_ids: Sequence[str]) -> dict[str, ProvisioningJob]:
        """`get` for many transaction ids in a few reads: the jobs found, by transaction id."""
        ...

    def tenant_ids(self, transaction_ids: Sequence[str]) -> dict[str, str]:
        """The tenant id each transaction's job names, by transaction id (one with no job, as `get`
        finds it, is left out), without reading the jobs."""
        ...

    def create(self, job: ProvisioningJob) -> bool:
        """Writes the job unless one exists for its transaction id; True if it wrote it."""
        ...

    def stale_jobs(self, status: str, updated_before: str, limit: int = 1000) -> list[ProvisioningJob]:
        """Jobs in `status` last written before `updated_before` (a contract timestamp), oldest first."""
        ...

    def save_claimed(self, job: ProvisioningJob, *, expected_claim: str | None) -> bool:
        """Writes `job` only if the stored job's `claim` is still `expected_claim` (None: no
        claim); False, writing nothing, when it is not (another run claimed the job)."""
        ...

    def save(self, job: ProvisioningJob) -> None:
        """Replaces the stored job with this one (same transaction id)."""
        ...

    def list_jobs(self, status: str | None = None, limit: int = 100) -> list[ProvisioningJob]:
        """Jobs, newest first, optionally only those with this status."""
        ...

    def find(self, *, email: str | None = None, tenant_id: str | None = None) -> list[ProvisioningJob]:
        """Jobs matching every given filter, oldest first."""
        ...

    def scan(self, batch_size: int = 1000) -> Iterator[list[ProvisioningJob]]:
        """Every job, in batches."""
        ...

    def count_by_status(self) -> dict[JobStatus, int]:
        """How many jobs are in each status, counted in the store by the status index, without
        reading the jobs; a status no job is in is left out."""
        ...

    def succeeded_by_hour(self, since: str) -> dict[str, int]:
        """Succeeded jobs by the hour of their last update (`2026-01-18T09`: a timestamp's first
        13 characters), for the hours from `since`'s on; hours with none may be left out."""
        ...

    def count_updated_since(self, status: str, updated_since: str, *, min_attempts: int = 0) -> int:
        """How many jobs in `status`, last written at or after `updated_since` (a contract
        timestamp), have at least `min_attempts` attempts; counted by the status index."""
        ...


class JobQueue(Protocol):
    # True where `messages` must receive messages to see them (SQS): each look then counts as a
    # delivery towards the queue's redrive limit, so views shown again and again must not look.
    listing_counts_as_delivery: bool

    def send(self, transaction_id: str, delay_seconds: float = 0) -> None:
        """Enqueues a provisioning message, visible after `delay_seconds`."""
        ...

    def receive(self, max_messages: int, visibility_timeout: float) -> list[QueueMessage]:
        """Up to `max_messages` visible messages, each hidden for `visibility_timeout`
        seconds and its receive count increased. A message not deleted in that time
        is delivered again (to this or any other worker)."""
        ...

    def delete(self, receipt: str) -> None:
        """Removes a received message. A receipt whose message is gone (deleted, dead-lettered)
        does nothing. A stale one (the message redelivered since) must not be relied on: the
        embedded queue ignores it, SQS may still act on it (as for retry_later and dead_letter)."""
        ...

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        """Makes a received message visible again after `delay_seconds`."""
        ...

    def dead_letter(self, receipt: str, error: str) -> None:
        """Moves a received message to the dead-letter queue with its last error."""
        ...

    def send_dead_letter(self, transaction_id: str, error: str) -> None:
        """Parks a message for the transaction straight in the dead-letter queue (a job that failed
        outside a worker, e.g. in a manual run)."""
        ...

    def depth(self) -> tuple[int, int]:
        """(messages in the queue, messages in the dead-letter queue)."""
        ...

    def messages(self, *, transaction_id: str | None = None, dead_lettered: bool | None = None) -> list[QueuedMessage]:
        """Messages in either queue (or only the DLQ / only the work queue), oldest first, without
        taking them from the queue. SQS cannot browse: it lists only messages neither in flight
        nor delayed, and each look counts as a receive towards the RedrivePolicy's limit."""
        ...

    def redrive(self, message_id: str) -> bool:
        """Moves a dead-lettered message back to the work queue, visible now with its receive
        count reset. False if no such message is in the DLQ."""
        ...

    def remove_dead_letter(self, message_id: str) -> bool:
        """Deletes one message from the dead-letter queue for good (a stale copy of a job that has
        healed since). True if it removed it; False, changing nothing, if no such message is in the
        DLQ. Never touches the work queue, whatever the id."""
        ...

    def purge(self, transaction_id: str) -> int:
        """Removes every message (either queue) for the transaction that `messages` would list;
        returns how many."""
        ...


class PaymentLedger(Protocol):
    def record(self, payment: PaymentRecord, job: ProvisioningJob | None) -> PaymentRecord:
        """Keeps `payment` in the ledger, durably and atomically with its consequences.

        An ACCEPTED payment whose (pf_payment_id, payment_status) was accepted before is
        kept as DUPLICATE instead, also when copies arrive concurrently. For a payment
        still ACCEPTED, `job` (if given) is written to the journal and enqueued in the
        same transaction, unless a job for its transaction id exists already.
        Returns the payment as kept (with its final verdict).
        """
        ...

    def find(
        self, *, transaction_id: str | None = None, pf_payment_id: str | None = None, email: str | None = None
    ) -> list[PaymentRecord]:
        """Ledger entries matching every given filter, oldest first."""
        ...

    def find_many(
        self, transaction_ids: Sequence[str], *, with_fields: bool = True
    ) -> dict[str, list[PaymentRecord]]:
        """`find(transaction_id=...)` for many transaction ids in a few reads: each one's entries,
        oldest first, by transaction id (one with no entry is left out). With `with_fields` false
        the entries come without the ITN's raw fields (`fields` is empty): the audit judges by the
        parsed columns, and the raw fields are most of what an entry costs to read."""
        ...

    def scan_transactions(
        self, since: str | None = None, batch_size: int = 1000
    ) -> Iterator[list[tuple[str | None, PaymentVerdict, str]]]:
        """(transaction_id, verdict, received_at) of the entries `scan` yields, in the same order
        and batches, without building the entries."""
        ...

    def scan(self, since: str | None = None, batch_size: int = 1000) -> Iterator[list[PaymentRecord]]:
        """Every ledger entry (only those received at or after `since`, a contract timestamp,
        when given), oldest first, in batches."""
        ...

    def paid_by_hour(self, since: str) -> dict[str, int]:
        """Accepted COMPLETE ITNs (paid purchases) by the hour received (`2026-01-18T09`), for
        the hours from `since`'s on; hours with none may be left out."""
        ...

    def count_by_verdict(self, since: str | None = None) -> dict[PaymentVerdict, int]:
        """How many ledger entries (only those received at or after `since`, a contract
        timestamp, when given) have each verdict, counted without building the entries; a
        verdict no entry has is left out. Dedupe markers are not entries."""
        ...

    def with_verdict(self, verdict: str, since: str) -> list[PaymentRecord]:
        """The ledger entries with `verdict` received at or after `since` (a contract
        timestamp), oldest first."""
        ...


class FindingsIndex(Protocol):
    """Each purchase's current finding (one entry per transaction id), counted by finding, and
    the last full audit. Written by the runbook after every change the system makes to a
    purchase and by each full audit; read by the console, /metrics and the alerts."""

    def put(self, entry: IndexedPurchase) -> None:
        """Writes the purchase's entry, replacing the one before, and keeps the per-finding counts
        exact (the entry and the counts change together, or neither does)."""
        ...

    def get(self, transaction_id: str) -> IndexedPurchase | None:
        """The purchase's entry, or None if it was never indexed."""
        ...

    def get_many(self, transaction_ids: Sequence[str]) -> dict[str, IndexedPurchase]:
        """The entries of those purchases that were indexed, by transaction id."""
        ...

    def count_by_finding(self) -> dict[str, int]:
        """How many purchases have each finding now (findings with none may be left out); read
        from counts kept as entries change, never by counting the entries."""
        ...

    def with_finding(self, finding: str, limit: int = 100) -> list[IndexedPurchase]:
        """Entries with the finding, the most recently changed purchase first, at most `limit`."""
        ...

    def without_job(self, excluding: Sequence[str], limit: int = 100) -> list[IndexedPurchase]:
        """Entries of purchases the journal had no job for when judged, whose finding is not one
        of `excluding`, the most recently changed first, at most `limit`; read without going
        through the entries that have a job."""
        ...

    def record_audit(self, run: AuditRun) -> None:
        """Keeps the full audit that just refreshed the index (only the latest is read back)."""
        ...

    def last_audit(self) -> AuditRun | None:
        """The latest full audit recorded, or None if none ran yet."""
        ...

    def claim_audit(self, now: str, until: str) -> bool:
        """Claims the next scheduled audit until `until` (ISO-8601 UTC); False while another
        claim is held (its `until` is after `now`). One process of many audits at a time, and
        one that failed or was killed holds the others off until its claim runs out."""
        ...


class PurchaseObserver(Protocol):
    """Told by whatever changes a purchase (ITN intake, the worker, the sweep, the runbook) that
    it did, so its finding is judged again. Never raises: a purchase it could not judge waits for
    the next change or the next full audit."""

    def changed(self, transaction_id: str) -> None: ...


class PaymentConfirmer(Protocol):
    def confirm(self, parameter_string: str) -> bool:
        """Asks PayFast whether it sent this ITN: True for `VALID`, False for anything
        else. Raises TransientError when PayFast cannot be reached."""
        ...


class SubscriptionApi(Protocol):
    """PayFast's subscription API (`payfast-subscriptions.md`), by the subscription's token.
    Every call raises TransientError when PayFast cannot be reached or answers 5xx (after the
    client's own retries), NotFoundError for a token PayFast does not know, and PermanentError
    for any other refusal (its message says PayFast's reason)."""

    def fetch(self, token: str) -> PayfastSubscription:
        """The subscription as PayFast has it now."""
        ...

    def pause(self, token: str, cycles: int = 1) -> None:
        """Skips the next `cycles` charges."""
        ...

    def unpause(self, token: str) -> None: ...

    def cancel(self, token: str) -> None:
        """Cancels the subscription; one cancelled already counts as success."""
        ...

    def update(
        self,
        token: str,
        *,
        amount_cents: int | None = None,
        frequency: int | None = None,
        run_date: str | None = None,
        cycles: int | None = None,
    ) -> None:
        """Changes what is given (amounts in cents, `run_date` YYYY-MM-DD) from the next charge."""
        ...


class SubscriptionStore(Protocol):
    """Each tenant's current subscription, with its billing history, beside the tenant record."""

    def get(self, tenant_id: str) -> Subscription | None:
        """The tenant's subscription, or None."""
        ...

    def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Subscription]:
        """`get` for many tenants in a few reads: the subscriptions found, by tenant id."""
        ...

    def find_by_token(self, token: str) -> Subscription | None:
        """The subscription PayFast's token names, or None."""
        ...

    def find_by_transaction(self, transaction_id: str) -> Subscription | None:
        """The subscription whose checkout was this m_payment_id, or None."""
        ...

    def save(self, subscription: Subscription) -> Subscription:
        """Writes `subscription` over the version it was read at (`version`; 0 for a tenant with
        none yet) and returns it with the version it now has. Raises ConflictError when the
        stored version is another (someone wrote in between: read again and re-apply), and
        ItemAlreadyExistsError when another tenant's subscription has the same token."""
        ...

    def scan(self, batch_size: int = 1000) -> Iterator[list[Subscription]]:
        """Every subscription, in batches."""
        ...

    def figures(self, since: str) -> SubscriptionFigures:
        """Subscriptions by status, the monthly recurring revenue of the active ones, and the
        renewals and cancellations applied at or after `since` (a contract timestamp)."""
        ...


class LifecycleStore(Protocol):
    """The tenant lifecycle's record: the one write that moves a tenant (with its subscription,
    its history and the notices the move owes), and the notices' outbox."""

    def commit(self, commit: LifecycleCommit) -> Subscription | None:
        """Writes everything `commit` holds, atomically, or nothing (its docstring says the
        conditions); returns the subscription at the version it now has (None if it had none)."""
        ...

    def history(self, tenant_id: str) -> list[Transition]:
        """The tenant's moves, oldest first."""
        ...

    def tombstone(self, tenant_id: str) -> Tombstone | None:
        """What is kept of a deleted tenant, or None (not deleted)."""
        ...

    def due_notices(self, now: str, limit: int = 100) -> list[Notice]:
        """Pending notices whose next attempt is at or before `now`, the earliest due first."""
        ...

    def get_notice(self, notice_id: str) -> Notice | None:
        """The notice, or None."""
        ...

    def claim_notice(self, notice: Notice, until: str) -> bool:
        """Takes the notice for delivery until `until` (its next attempt moves there), if it is
        still pending with the attempts and next attempt it was read with; False when another
        deliverer took it (or it changed) since it was read."""
        ...

    def update_notice(self, notice: Notice) -> None:
        """Writes the notice's delivery state (status, attempts, next attempt, last error,
        delivered at); raises NotFoundError if no notice has its id."""
        ...

    def notices(self, status: NoticeStatus | None = None, limit: int = 100) -> list[Notice]:
        """Notices (of one status, or all), the newest first."""
        ...

    def dead_notices_of(self, tenant_id: str) -> list[Notice]:
        """The tenant's notices that died undelivered, oldest first: read by the tenant (a
        purchase's evidence, judged after every change to it), never out of every dead notice."""
        ...

    def notice_counts(self) -> dict[NoticeStatus, int]:
        """How many notices there are of each status (a status with none is left out)."""
        ...

    def count_events_since(self, event_type: EventType, since: str) -> int:
        """How many lifecycle events of this type were queued at or after `since` (a contract
        timestamp), whatever became of them: the alerts' suspensions per day."""
        ...

    def queue_notice(self, notice: Notice) -> bool:
        """Queues a notice that no move owes (a usage warning), once: False, and nothing
        written, when a notice with its id exists already."""
        ...


class UsageStore(Protocol):
    """Each tenant's usage (the tenant item's `usage` map), written only by conditional updates,
    and the answers given to each idempotency key."""

    def record(self, tenant: Tenant, change: UsageChange, period_start: str, at: str) -> UsageOutcome:
        """Applies `change` to the stored tenant in one conditional write that also holds the
        quota: applied only if the stored tenant has access (TenantStatus.has_access), and if the
        change lowers the level or leaves it within the limit. A generation count kept for a
        period other than `period_start` starts from zero, and the period is written with it.
        The outcome (applied, or refused with the usage found) is kept under (tenant,
        idempotency key): the key seen again answers that outcome with `replayed` set, changing
        nothing (InvalidInputError if the change differs). `tenant` as read is where the store
        starts: a stored tenant that moved since (its usage, limit, period or status) is judged
        as it is now. Raises NotFoundError (no tenant), TenantInactiveError (no access now;
        nothing kept), TransientError (it kept moving)."""
        ...

    def correct(self, tenant_id: str, metric: Metric, value: int, period_start: str, at: str) -> Usage:
        """Sets the metric to `value` whatever the limit or the status (an operator's correction;
        a generation count is set for `period_start`); returns the usage after. NotFoundError if
        there is no tenant."""
        ...

    def forget_answers(self, before: str) -> int:
        """Drops the answers kept for idempotency keys first seen before `before`; how many."""
        ...


class TeamStore(Protocol):
    """A tenant's invitations, and the seats and tenant admins its members hold, changed only by
    conditional writes: seats (members and pending invitations) counted on the tenant item
    (`seats_used`; an item without it counts its owner alone), tenant admins too (`admins`)."""

    def invite(self, invitation: Invitation, max_users: int) -> None:
        """Stores the pending invitation and takes a seat, atomically: SeatsTakenError when the
        tenant holds `max_users` seats already, ItemAlreadyExistsError when the email has a
        pending invitation to the tenant, NotFoundError when there is no tenant."""
        ...

    def get_invitation(self, invitation_id: str) -> Invitation | None:
        """The invitation, or None."""
        ...

    def invitations(self, tenant_id: str) -> list[Invitation]:
        """The tenant's invitations, every status, the newest first."""
        ...

    def expired(self, now: str, limit: int = 1000) -> list[Invitation]:
        """Pending invitations whose time ran out at or before `now` (the sweep closes them)."""
        ...

    def scan_accepted(self, batch_size: int = 1000) -> Iterator[list[Invitation]]:
        """Every accepted invitation, a page at a time (the audit's check that each member it
        made still has a users record)."""
        ...

    def close_invitation(self, invitation_id: str, status: InvitationStatus, at: str) -> bool:
        """Revokes or expires a pending invitation and gives its seat back, atomically; False
        (nothing changed) if it is not pending."""
        ...

    def renew_invitation(self, invitation_id: str, secret_hash: str, expires_at: str, at: str) -> bool:
        """A pending invitation's new link and expiry (the old link stops working); False if not pending."""
        ...

    def accept(self, invitation_id: str, user: UserRecord, at: str) -> bool:
        """Marks the invitation accepted and creates the member's users record, atomically, if it
        is pending and unexpired at `at` (its seat is the member's now); False otherwise.
        ItemAlreadyExistsError if a users record has the user's id."""
        ...

    def add_member(self, user: UserRecord, max_users: int) -> None:
        """Creates the users record and takes a seat, atomically (SeatsTakenError, NotFoundError,
        ItemAlreadyExistsError as `invite`)."""
        ...

    def set_role(self, user: UserRecord, role: Role) -> None:
        """Changes an active member's role, atomically with the tenant's count of admins:
        ConflictError if the member changed since read, or if it would leave no tenant admin."""
        ...

    def remove_member(self, user: UserRecord) -> bool:
        """Disables an active member's users record and gives its seat back, atomically;
        ConflictError if it is the last tenant admin; False if it was not active."""
        ...

    def seats_used(self, tenant_id: str) -> int:
        """The seats the tenant holds (members and pending invitations); NotFoundError if none."""
        ...


class ServiceKeyStore(Protocol):
    """The service API's credentials, by name, hashed."""

    def create(self, key: ServiceKey) -> None:
        """Stores a new key; ItemAlreadyExistsError if the name is taken (revoked keys keep theirs)."""
        ...

    def get(self, name: str) -> ServiceKey | None:
        """The key of this name, or None."""
        ...

    def all(self) -> list[ServiceKey]:
        """Every key, revoked ones too, by name."""
        ...

    def revoke(self, name: str, at: str) -> bool:
        """Marks the key revoked at `at`; False if there is no such key or it was revoked before."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: LifecycleEvent) -> None:
        """Delivers the event to the Site Builder application (a webhook, an event bus). Raises
        TransientError when a later attempt may succeed, PermanentError when none will."""
        ...


class IdentityProvider(Protocol):
    """A Cognito-shaped user directory keyed by username (the lower-cased email)."""

    def create_user(self, username: str, attributes: dict[str, str], temporary_password: str) -> IdentityUser:
        """Creates the user in FORCE_CHANGE_PASSWORD with a temporary password and sends
        nothing. Raises ItemAlreadyExistsError if the username exists."""
        ...

    def get_user(self, username: str) -> IdentityUser | None:
        """The user, or None."""
        ...

    def get_user_by_subject(self, sub: str) -> IdentityUser | None:
        """The user whose `sub` (the immutable subject a tenant's `owner_user_id` holds) is
        exactly `sub`, or None: also for an empty subject or one no provider could have issued
        (a quote or backslash in it). Never a prefix match. Cognito: ListUsers with the filter
        `sub = "..."`."""
        ...

    def get_users(self, usernames: Sequence[str]) -> dict[str, IdentityUser]:
        """`get_user` for many usernames: the users found, by the username as given (an address
        the provider could not hold is left out, as is one with no user)."""
        ...

    def update_attributes(self, username: str, attributes: dict[str, str]) -> IdentityUser:
        """Sets the given attributes, keeping the others; NotFoundError if no such user."""
        ...

    def set_password(self, username: str, password: str, *, permanent: bool) -> None:
        """Permanent: status CONFIRMED. Temporary: FORCE_CHANGE_PASSWORD, expiring after
        the configured validity. NotFoundError if no such user."""
        ...

    def reset_password(self, username: str) -> None:
        """Status RESET_REQUIRED: the old password stops working. NotFoundError if no such user.
        Cognito refuses a user still in FORCE_CHANGE_PASSWORD (PermanentError): give such a
        user a new temporary password with set_password instead."""
        ...

    def start_password_reset(self, username: str) -> str | None:
        """Begins a forgotten-password reset (Cognito's ForgotPassword). Returns the one-time code
        for the caller to email (embedded), or None when the provider emails it itself (Cognito).
        The current password keeps working until the reset is confirmed; a new code replaces any
        earlier one. Raises AccountNotFoundError for an unknown user and InvalidCredentialsError
        for one who cannot reset: still on a temporary password (FORCE_CHANGE_PASSWORD), or disabled."""
        ...

    def confirm_password_reset(self, username: str, code: str, new_password: str) -> None:
        """Completes a reset (Cognito's ConfirmForgotPassword): the code is used up, the password
        becomes `new_password` for good (CONFIRMED). Raises InvalidCredentialsError ("Invalid or
        expired code") for a wrong, used, expired or too often guessed code, PasswordPolicyError
        for a weak password (the code stays usable)."""
        ...

    def authenticate(self, username: str, password: str) -> Tokens | AuthChallenge:
        """Tokens for a CONFIRMED user, a NEW_PASSWORD_REQUIRED challenge for one with a
        temporary password. Raises AccountNotFoundError or InvalidCredentialsError."""
        ...

    def respond_to_new_password_challenge(self, username: str, session: str, new_password: str) -> Tokens:
        """Completes the challenge once: sets the permanent password, returns tokens.
        Raises InvalidSessionError or PasswordPolicyError."""
        ...

    def delete_user(self, username: str) -> None:
        """Removes the user if it exists (Cognito's AdminDeleteUser)."""
        ...

    def disable_user(self, username: str) -> None:
        """Refuses the user's sign-in and refresh from now on (Cognito's AdminDisableUser);
        NotFoundError if there is no such user."""
        ...

    def scan_users(self, batch_size: int = 1000) -> Iterator[list[IdentityUser]]:
        """Every user, in batches (Cognito's ListUsers pages)."""
        ...

    def refresh(self, refresh_token: str) -> Tokens:
        """New ID and access tokens for a valid refresh token; InvalidTokenError otherwise."""
        ...

    def sign_out_everywhere(self, username: str) -> None:
        """Revokes every refresh token the provider issued to the user (Cognito's
        AdminUserGlobalSignOut); an unknown user is no error."""
        ...

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify this provider's tokens, as a JWKS document."""
        ...

    def verify_id_token(self, token: str) -> dict[str, object]:
        """The claims of a valid ID token issued by this provider; InvalidTokenError otherwise."""
        ...


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Sends the email (and keeps it in the outbox); returns its message id.
        Raises TransientError when the mail server fails in a way worth retrying, PermanentError
        when it refuses the email for good; either way the attempt is kept as `failed`."""
        ...

    def outbox(self, to: str | None = None, limit: int = 100) -> Sequence[OutboxMessage]:
        """Sent and attempted emails, newest first, optionally for one recipient."""
        ...

    def outboxes(self, recipients: Sequence[str], limit: int = 100) -> dict[str, list[OutboxMessage]]:
        """`outbox(to=recipient, limit=limit)` for many recipients in a few reads, by the recipient
        as given (newest first, at most `limit` each); a recipient with no email is left out."""
        ...

    def scan(self, batch_size: int = 1000) -> Iterator[list[OutboxMessage]]:
        """Every email kept, in batches."""
        ...

    def delivery_statistics(self) -> dict[str, int]:
        """What the mail provider reports about its deliveries, for diagnose's evidence (SES:
        get_send_statistics summed over its two-week window; the outbox: emails per status)."""
        ...


class RepairTrail(Protocol):
    def record(self, entry: RepairRecord) -> None:
        """Keeps the entry for good."""
        ...

    def entries(
        self, *, transaction_id: str | None = None, tenant_id: str | None = None, email: str | None = None
    ) -> list[RepairRecord]:
        """Entries about any of the given subjects (every entry when none is given), oldest first."""
        ...


class Notifier(Protocol):
    """One alert destination (a log, an inbox, a chat channel, a pager)."""

    @property
    def name(self) -> str:
        """The destination's name as operators see it: `log`, `email`, `slack`, `pagerduty`."""
        ...

    def notify(self, *, rule: str, severity: str, summary: str, resolved: bool = False) -> None:
        """Tells the destination that alert `rule` fires (or, with `resolved`, stopped firing).
        `severity` is critical, error, warning or info; `summary` is one line for a human.
        Raises TransientError when the destination cannot be reached or refuses; never puts a
        secret (webhook URL, routing key) in the error."""
        ...


class LogSource(Protocol):
    """The logs every process writes, read like CloudWatch Logs' FilterLogEvents."""

    def filter_events(
        self,
        *,
        component: str | None = None,
        pattern: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[LogEvent]:
        """The first `limit` events, oldest first, logged between `start` and `end` (both
        inclusive, either open when None) in one component's log (a LogComponent value; every
        log when None) whose line matches `pattern` (CloudWatch filter-pattern syntax; every
        line when None or empty). Raises InvalidInputError for a pattern or component it
        cannot read."""
        ...


class SessionStore(Protocol):
    """Sign-in sessions (browser cookies and API refresh-token families) and, per user, the time
    before which the provider's ID tokens no longer count. Shared by every process of a deployment."""

    def create(self, session: SignInSession) -> None:
        """Keeps a new session (its id is random and new)."""
        ...

    def get(self, session_id: str) -> SignInSession | None:
        """The session, revoked or not, or None if there is none (or it has been purged)."""
        ...

    def rotate(self, session_id: str, *, expected_secret_hash: str, new_secret_hash: str) -> bool:
        """Replaces the secret in one conditional write: True only if the session is not revoked
        and its secret hash was `expected_secret_hash`, so two uses of one refresh token can
        never both rotate it."""
        ...

    def revoke(self, session_id: str, revoked_at: int) -> None:
        """Ends the session (idempotent) and forgets the provider's refresh token it held."""
        ...

    def revoke_user(self, username: str, revoked_at: int) -> int:
        """Ends every live session of the user; returns how many it ended."""
        ...

    def set_tokens_not_before(self, username: str, not_before: int) -> None:
        """ID tokens of the user issued (`iat`) before `not_before` no longer count. Never moves
        an existing mark backwards."""
        ...

    def tokens_not_before(self, username: str) -> int | None:
        """The mark set by `set_tokens_not_before`, or None."""
        ...


class RateLimiter(Protocol):
    """Counters in fixed time windows (window number = now // window_seconds), shared by every
    process of a deployment: login failures per account and per source, ITNs per source."""

    def hit(self, key: str, *, window_seconds: int) -> int:
        """Counts one event for `key` in the current window; returns the window's count with it."""
        ...

    def count(self, key: str, *, window_seconds: int) -> int:
        """The current window's count for `key`, counting nothing."""
        ...

    def reset(self, key: str, *, window_seconds: int) -> None:
        """Forgets the current window's count for `key`."""
        ...

    def release(self, key: str, *, window_seconds: int) -> None:
        """Takes one back from the current window's count for `key` (never below zero): an
        attempt counted up front that turned out not to be a failure."""
        ...
