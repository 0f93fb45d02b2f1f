"""Gathering the case: everything every store knows about one purchase, found by email,
tenant id or transaction id."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tenancy.domain.ids import normalize_email, tenant_id_for
from tenancy.domain.model import (
    IdentityUser,
    JobStatus,
    OutboxMessage,
    PaymentRecord,
    ProvisioningJob,
    QueuedMessage,
    Tenant,
    UserRecord,
)
from tenancy.errors import InvalidInputError, TenancyError
from tenancy.ports import IdentityProvider, JobQueue, Mailer, PaymentLedger, ProvisioningJournal, TenantStore, UserStore
from tenancy.provisioning.welcome import WELCOME_SUBJECT

__all__ = [
    "NONE_SHOWN",
    "STORED_NOT_DELIVERED",
    "CaseFile",
    "EvidenceStores",
    "Selector",
    "gather",
    "mail_status_words",
    "shown",
    "welcome_emails_among",
]

# How a missing value reads in text meant for people; JSON keeps null.
NONE_SHOWN = "(none)"
# The embedded outbox's `stored`: kept because no SMTP server was configured, so nobody got it.
STORED_NOT_DELIVERED = "stored, not delivered (no SMTP configured)"
_STATUS_WORDS = {"stored": STORED_NOT_DELIVERED}


def shown(value: object) -> str:
    """`value` as text for people: NONE_SHOWN for a missing or empty one, never `None`."""
    return NONE_SHOWN if value is None or value == "" else str(value)


def mail_status_words(status: str) -> str:
    """A kept email's status as operators read it: `stored` says that it was never delivered."""
    return _STATUS_WORDS.get(status, status or NONE_SHOWN)


@dataclass(frozen=True, slots=True)
class Selector:
    email: str | None = None
    tenant_id: str | None = None
    transaction_id: str | None = None

    def __post_init__(self) -> None:
        given = [value for value in (self.email, self.tenant_id, self.transaction_id) if value]
        if len(given) != 1:
            raise InvalidInputError("give exactly one of --email, --tenant-id, --transaction-id")

    def describe(self) -> str:
        if self.email:
            return f"email {self.email}"
        if self.tenant_id:
            return f"tenant {self.tenant_id}"
        return f"transaction {self.transaction_id}"


@dataclass(frozen=True, slots=True)
class EvidenceStores:
    ledger: PaymentLedger
    journal: ProvisioningJournal
    queue: JobQueue
    tenants: TenantStore
    users: UserStore
    identity: IdentityProvider
    mailer: Mailer


@dataclass(frozen=True, slots=True)
class CaseFile:
    """What is known about one purchase. `transaction_id`, `email` and `tenant_id` are the
    best answers the stores agree on; any may be None when nothing names it."""

    selector: Selector
    transaction_id: str | None
    email: str | None
    tenant_id: str | None
    payments: tuple[PaymentRecord, ...] = ()
    job: ProvisioningJob | None = None
    messages: tuple[QueuedMessage, ...] = ()
    tenant: Tenant | None = None
    users: tuple[UserRecord, ...] = ()
    identity_user: IdentityUser | None = None
    emails: tuple[OutboxMessage, ...] = ()
    other_transactions: tuple[str, ...] = field(default=())
    mail_statistics: tuple[tuple[str, int], ...] = ()  # the provider's own counts (RB-001 4.4)

    @property
    def completed_payment(self) -> PaymentRecord | None:
        accepted = [p for p in self.payments if p.payment_status == "COMPLETE" and p.verdict.value == "accepted"]
        return accepted[-1] if accepted else None

    @property
    def welcome_emails(self) -> tuple[OutboxMessage, ...]:
        return welcome_emails_among(self.emails, self.transaction_id)


def welcome_emails_among(emails: Iterable[OutboxMessage], transaction_id: str | None) -> tuple[OutboxMessage, ...]:
    """The welcome emails of the purchase (all of them when no transaction is known), in order."""
    return tuple(
        message
        for message in emails
        if message.subject == WELCOME_SUBJECT
        and (not transaction_id or message.tags.get("transaction_id") in (None, transaction_id))
    )


def gather(selector: Selector, stores: EvidenceStores) -> CaseFile:
    """The case for `selector`. Its email comes from the selector, the job or the payments; when
    none names one, from the identity user whose subject the tenant record names as owner."""
    transaction_id, email, others = _resolve(selector, stores)
    payments = tuple(stores.ledger.find(transaction_id=transaction_id)) if transaction_id else ()
    job = stores.journal.get(transaction_id) if transaction_id else None
    if email is None:
        email = job.email if job else next((p.email for p in reversed(payments) if p.email), None)
    tenant = _tenant(selector, stores, transaction_id, job)
    identity_user = stores.identity.get_user(email) if email else None
    if email is None and tenant is not None and tenant.owner_user_id:
        # A tenant written by hand (RB-001 4.3) has no payment or job to name its owner's email;
        # its record names the owner's identity subject instead.
        identity_user = stores.identity.get_user_by_subject(tenant.owner_user_id)
        email = identity_user.username if identity_user else None
    users = tuple(stores.users.find_by_email(email)) if email else ()
    tenant_id = (
        tenant.tenant_id
        if tenant
        else (job.tenant_id if job else (identity_user.tenant_id if identity_user else selector.tenant_id))
    )
    if tenant_id is None and transaction_id and payments:
        tenant_id = tenant_id_for(transaction_id)
    return CaseFile(
        selector=selector,
        transaction_id=transaction_id,
        email=email,
        tenant_id=tenant_id,
        payments=payments,
        job=job,
        messages=tuple(stores.queue.messages(transaction_id=transaction_id)) if transaction_id else (),
        tenant=tenant,
        users=users,
        identity_user=identity_user,
        emails=tuple(stores.mailer.outbox(email, limit=50)) if email else (),
        other_transactions=others,
    )


def mail_statistics(stores: EvidenceStores) -> tuple[tuple[str, int], ...]:
    """The mail provider's delivery counts; none when the provider cannot say right now (it is
    evidence, never a reason for diagnose to fail)."""
    try:
        return tuple(sorted(stores.mailer.delivery_statistics().items()))
    except TenancyError:
        return ()


def _resolve(selector: Selector, stores: EvidenceStores) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(transaction id, email, the email's other transactions) for the selector."""
    if selector.transaction_id:
        return selector.transaction_id.strip(), None, ()
    if selector.tenant_id:
        tenant = stores.tenants.get(selector.tenant_id)
        if tenant is not None:
            return tenant.billing.transaction_id, None, ()
        jobs = stores.journal.find(tenant_id=selector.tenant_id)
        return (jobs[-1].transaction_id, None, ()) if jobs else (None, None, ())
    email = normalize_email(selector.email or "")
    transactions = _transactions_of(email, stores)
    if not transactions:
        for user in stores.users.find_by_email(email):
            tenant = stores.tenants.get(user.tenant_id)
            if tenant is not None:
                transactions.append(tenant.billing.transaction_id)
    chosen = _most_relevant(transactions, stores)
    return chosen, email, tuple(transaction for transaction in transactions if transaction != chosen)


def _transactions_of(email: str, stores: EvidenceStores) -> list[str]:
    seen: dict[str, None] = {}
    for job in stores.journal.find(email=email):
        seen[job.transaction_id] = None
    for payment in stores.ledger.find(email=email):
        if payment.transaction_id:
            seen[payment.transaction_id] = None
    return list(seen)


def _most_relevant(transactions: list[str], stores: EvidenceStores) -> str | None:
    """An email may have bought more than once. The operator is asked about, in order: the
    newest purchase whose job is not done; the newest paid one that never got a job; the
    newest done one; the newest of any kind."""
    if not transactions:
        return None
    jobs = {transaction_id: stores.journal.get(transaction_id) for transaction_id in transactions}
    newest_first = list(reversed(transactions))
    for transaction_id in newest_first:
        job = jobs[transaction_id]
        if job is not None and job.status is not JobStatus.SUCCEEDED:
            return transaction_id
    for transaction_id in newest_first:
        paid = any(
            payment.payment_status == "COMPLETE" and payment.verdict.value == "accepted"
            for payment in stores.ledger.find(transaction_id=transaction_id)
        )
        if jobs[transaction_id] is None and paid:
            return transaction_id
    for transaction_id in newest_first:
        if jobs[transaction_id] is not None:
            return transaction_id
    return newest_first[0]


def _tenant(
    selector: Selector, stores: EvidenceStores, transaction_id: str | None, job: ProvisioningJob | None
) -> Tenant | None:
    if selector.tenant_id:
        tenant = stores.tenants.get(selector.tenant_id)
        if tenant is not None:
            return tenant
    if job is not None:
        tenant = stores.tenants.get(job.tenant_id)
        if tenant is not None:
            return tenant
    return stores.tenants.find_by_transaction(transaction_id) if transaction_id else None
