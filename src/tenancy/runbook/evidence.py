"""Gathering the case: everything every store knows about one purchase, found by email,
tenant id or transaction id."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tenancy.domain.billing import PayfastSubscription, Subscription
from tenancy.domain.ids import normalize_email, tenant_id_for
from tenancy.domain.lifecycle import Notice, NoticeStatus
from tenancy.domain.members import Invitation, InvitationStatus, Role
from tenancy.domain.model import (
    IdentityUser,
    JobStatus,
    OutboxMessage,
    PaymentRecord,
    ProvisioningJob,
    QueuedMessage,
    Tenant,
    UserRecord,
    UserStatus,
)
from tenancy.errors import InvalidInputError, TenancyError
from tenancy.ports import (
    IdentityProvider,
    JobQueue,
    LifecycleStore,
    Mailer,
    PaymentLedger,
    ProvisioningJournal,
    SubscriptionStore,
    TeamStore,
    TenantStore,
    UserStore,
)
from tenancy.provisioning.welcome import WELCOME_SUBJECT

__all__ = [
    "DEAD_NOTICE_LIMIT",
    "MAIL_LIMIT",
    "NONE_SHOWN",
    "STORED_NOT_DELIVERED",
    "CaseFile",
    "EvidenceLookup",
    "EvidenceStores",
    "Member",
    "Purchase",
    "PurchaseSearch",
    "Selector",
    "find_purchase",
    "gather",
    "is_member_record",
    "mail_status_words",
    "people_sought",
    "shown",
    "welcome_emails_among",
]

# How a missing value reads in text meant for people; JSON keeps null.
NONE_SHOWN = "(none)"
# The embedded outbox's `stored`: kept because no SMTP server was configured, so nobody got it.
STORED_NOT_DELIVERED = "stored, not delivered (no SMTP configured)"
_STATUS_WORDS = {"stored": STORED_NOT_DELIVERED}
# A case holds at most this many of the owner's emails, the newest.
MAIL_LIMIT = 50
# Dead notices read at once (each one raised an alert; thousands would mean the webhook is down).
DEAD_NOTICE_LIMIT = 1000


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

    @classmethod
    def parse(cls, key: str) -> Selector:
        """One key as an operator types it: `@` means an email, `ten_` a tenant id, anything else
        a transaction id. Raises InvalidInputError for an empty key."""
        text = key.strip()
        if "@" in text:
            return cls(email=text)
        if text.startswith("ten_"):
            return cls(tenant_id=text)
        return cls(transaction_id=text)

    def describe(self) -> str:
        if self.email:
            return f"email {self.email}"
        if self.tenant_id:
            return f"tenant {self.tenant_id}"
        return f"transaction {self.transaction_id}"


class EvidenceLookup(Protocol):
    """The look-ups a purchase's case is read with (`gather`). The stores answer them one query
    at a time (EvidenceStores); the weekly audit answers them from what it read of each store in
    one pass. Either answers as the stores do: emails and usernames are matched normalized
    (trimmed, lower case), and a look-up that finds nothing answers None or nothing."""

    def payments(self, transaction_id: str) -> Sequence[PaymentRecord]:
        """Every ITN the ledger holds for the transaction, oldest first."""
        ...

    def job(self, transaction_id: str) -> ProvisioningJob | None:
        """The transaction's provisioning job."""
        ...

    def messages(self, transaction_id: str) -> Sequence[QueuedMessage]:
        """The transaction's messages in the work queue and the dead-letter queue."""
        ...

    def tenant(self, tenant_id: str) -> Tenant | None: ...

    def tenant_for_transaction(self, transaction_id: str) -> Tenant | None:
        """The tenant billed to the transaction (`TenantStore.find_by_transaction`'s choice when
        several are)."""
        ...

    def identity_user(self, email: str) -> IdentityUser | None:
        """The identity user whose username is the email."""
        ...

    def identity_user_by_subject(self, subject: str) -> IdentityUser | None:
        """The identity user with this `sub`: a hand-written tenant's record names its owner so."""
        ...

    def user_records(self, email: str) -> Sequence[UserRecord]:
        """The users records of the email, oldest first."""
        ...

    def mail(self, recipient: str) -> Sequence[OutboxMessage]:
        """The emails kept for the recipient, newest first, at most MAIL_LIMIT of them."""
        ...

    def mail_statistics(self) -> tuple[tuple[str, int], ...]:
        """The mail provider's delivery counts for all recipients (RB-001 4.4 step 1), by name;
        none when the provider cannot say right now (it is evidence, never a reason to fail)."""
        ...

    def subscription(self, tenant_id: str) -> Subscription | None:
        """The tenant's PayFast subscription, with its billing history."""
        ...

    def undelivered(self, tenant_id: str) -> Sequence[Notice]:
        """The tenant's lifecycle notices that died undelivered (events, owner emails)."""
        ...

    def members(self, tenant_id: str) -> Sequence[UserRecord]:
        """The tenant's users records (its owner's and its members'), oldest first."""
        ...

    def user_record(self, user_id: str) -> UserRecord | None:
        """The users record of this id (the record a tenant's owner link names), or None."""
        ...

    def joined(self, tenant_id: str) -> Sequence[Invitation]:
        """The tenant's accepted invitations (each names the member it made), where one may
        name a member whose users record is gone; the audit's answers hold only those."""
        ...


class PurchaseSearch(EvidenceLookup, Protocol):
    """An EvidenceLookup that can also tell which purchases an email or a tenant id names, for
    `find_purchase`: the stores can; the audit, which starts from transaction ids, need not."""

    def jobs_by_email(self, email: str) -> Sequence[ProvisioningJob]:
        """The email's provisioning jobs, oldest first."""
        ...

    def payments_by_email(self, email: str) -> Sequence[PaymentRecord]:
        """The email's ITNs, oldest first."""
        ...

    def jobs_by_tenant(self, tenant_id: str) -> Sequence[ProvisioningJob]:
        """The jobs that name the tenant id, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class EvidenceStores:
    """The stores the evidence comes from, and the PurchaseSearch over them: one query per look-up."""

    ledger: PaymentLedger
    journal: ProvisioningJournal
    queue: JobQueue
    tenants: TenantStore
    users: UserStore
    identity: IdentityProvider
    mailer: Mailer
    subscriptions: SubscriptionStore | None = None  # None: a runbook that knows no subscriptions
    lifecycle: LifecycleStore | None = None  # None: a runbook that knows no lifecycle
    team: TeamStore | None = None  # None: a runbook that knows no invitations
    # How a purchase's tenant is found by its transaction; None: the tenant store's own look-up
    # (on DynamoDB, a scan for a tenant not created yet). See runbook.passive.TenantByKey.
    tenant_finder: Callable[[str], Tenant | None] | None = None

    def payments(self, transaction_id: str) -> Sequence[PaymentRecord]:
        return self.ledger.find(transaction_id=transaction_id)

    def job(self, transaction_id: str) -> ProvisioningJob | None:
        return self.journal.get(transaction_id)

    def messages(self, transaction_id: str) -> Sequence[QueuedMessage]:
        return self.queue.messages(transaction_id=transaction_id)

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id)

    def tenant_for_transaction(self, transaction_id: str) -> Tenant | None:
        if self.tenant_finder is not None:
            return self.tenant_finder(transaction_id)
        return self.tenants.find_by_transaction(transaction_id)

    def identity_user(self, email: str) -> IdentityUser | None:
        return self.identity.get_user(email)

    def identity_user_by_subject(self, subject: str) -> IdentityUser | None:
        return self.identity.get_user_by_subject(subject)

    def user_records(self, email: str) -> Sequence[UserRecord]:
        return self.users.find_by_email(email)

    def mail(self, recipient: str) -> Sequence[OutboxMessage]:
        return self.mailer.outbox(recipient, limit=MAIL_LIMIT)

    def mail_statistics(self) -> tuple[tuple[str, int], ...]:
        try:
            return tuple(sorted(self.mailer.delivery_statistics().items()))
        except TenancyError:
            return ()

    def subscription(self, tenant_id: str) -> Subscription | None:
        return self.subscriptions.get(tenant_id) if self.subscriptions is not None else None

    def undelivered(self, tenant_id: str) -> Sequence[Notice]:
        return self.lifecycle.dead_notices_of(tenant_id) if self.lifecycle is not None else ()

    def dead_notices(self) -> Sequence[Notice]:
        """Every notice that died undelivered (few: each is an alert), at most DEAD_NOTICE_LIMIT."""
        if self.lifecycle is None:
            return ()
        return self.lifecycle.notices(NoticeStatus.DEAD, limit=DEAD_NOTICE_LIMIT)

    def members(self, tenant_id: str) -> Sequence[UserRecord]:
        return self.users.find_by_tenant(tenant_id)

    def user_record(self, user_id: str) -> UserRecord | None:
        return self.users.get(user_id)

    def joined(self, tenant_id: str) -> Sequence[Invitation]:
        if self.team is None:
            return ()
        return [each for each in self.team.invitations(tenant_id) if each.status is InvitationStatus.ACCEPTED]

    def jobs_by_email(self, email: str) -> Sequence[ProvisioningJob]:
        return self.journal.find(email=email)

    def payments_by_email(self, email: str) -> Sequence[PaymentRecord]:
        return self.ledger.find(email=email)

    def jobs_by_tenant(self, tenant_id: str) -> Sequence[ProvisioningJob]:
        return self.journal.find(tenant_id=tenant_id)


@dataclass(frozen=True, slots=True)
class Member:
    """One of the tenant's members other than its owner (issue 17): each must be a users record
    and an enabled identity user whose custom:tenant_id is the tenant the record names. Either
    may be missing: `record` None is a member whose users record is gone while its identity user
    still names the tenant (found by `joined`, the accepted invitation that made it);
    `identity_user` None, one whose identity user is gone."""

    record: UserRecord | None
    identity_user: IdentityUser | None
    joined: Invitation | None = None  # the invitation that made the member, when `record` is None

    @property
    def email(self) -> str:
        if self.record is not None:
            return self.record.email
        if self.joined is not None:
            return self.joined.email
        return self.identity_user.username if self.identity_user is not None else ""

    @property
    def tenant_id(self) -> str | None:
        """The tenant the member belongs to: its users record's, else its invitation's."""
        if self.record is not None:
            return self.record.tenant_id
        return self.joined.tenant_id if self.joined is not None else None

    @property
    def role(self) -> str:
        """The users record's role; with no record, the identity user's custom:roles when it is a
        member's role (what the member's tokens carry), else the invitation's."""
        if self.record is not None:
            return self.record.role
        claimed = self.identity_user.attributes.get("custom:roles", "") if self.identity_user else ""
        if claimed in {role.value for role in Role}:
            return claimed
        return self.joined.role.value if self.joined is not None else Role.VIEWER.value

    @property
    def disagreement(self) -> str | None:
        """What is wrong with the member, in words, or None when the two records agree."""
        user, record = self.identity_user, self.record
        if record is None:
            return f"member {self.email} ({self.role}) has an identity user of the tenant but no users record"
        if user is None:
            return f"member {record.email} ({record.role}) has no identity user"
        if user.tenant_id != record.tenant_id:
            return (
                f"member {record.email} ({record.role}): identity custom:tenant_id={shown(user.tenant_id)}, "
                f"users record {record.user_id} -> {record.tenant_id}"
            )
        return None


def is_member_record(record: UserRecord, tenant: Tenant, owner_email: str | None) -> bool:
    """Whether the users record is an active member's of the tenant, not its owner's: the owner
    (by the tenant's owner link or the purchase's email) is judged by the owner rules."""
    return (
        record.status is UserStatus.ACTIVE
        and record.tenant_id == tenant.tenant_id
        and record.user_id != tenant.owner_user_id
        and normalize_email(record.email) != normalize_email(owner_email or "")
    )


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
    subscription: Subscription | None = None
    undelivered: tuple[Notice, ...] = ()  # the tenant's lifecycle notices that died undelivered
    # PayFast's own view of `subscription`, asked only for one purchase's diagnose, repair or
    # verify (never by the audit); `payfast_error` says why PayFast could not be asked.
    payfast: PayfastSubscription | None = None
    payfast_error: str | None = None
    # The tenant's active members other than its owner, each with its identity user (issue 17).
    members: tuple[Member, ...] = ()
    # The users record the tenant's owner link names when that is not the purchaser (ownership
    # handed on to another tenant admin, issue 17; or a broken link): read only then.
    owner_record: UserRecord | None = None

    @property
    def ownership_handed_on(self) -> bool:
        """Whether the purchaser handed the tenant's ownership on to another of its tenant admins,
        who the owner rules then judge as the owner link (the purchaser is a member, or left)."""
        return self.tenant is not None and _handed_on(self.tenant, self.owner_record, self.email)

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


@dataclass(frozen=True, slots=True)
class Purchase:
    """The purchase a selector names: its transaction id, and the email when the selector is one
    (with that email's other purchases). None of them when the stores know nothing of it."""

    selector: Selector
    transaction_id: str | None
    email: str | None = None
    other_transactions: tuple[str, ...] = ()

    @classmethod
    def of_transaction(cls, transaction_id: str) -> Purchase:
        return cls(Selector(transaction_id=transaction_id), transaction_id.strip())


def find_purchase(selector: Selector, search: PurchaseSearch) -> Purchase:
    """The purchase `selector` names. A tenant id names its tenant's purchase, else the newest
    job's; an email names its most relevant purchase (`_most_relevant`)."""
    if selector.transaction_id:
        return Purchase.of_transaction(selector.transaction_id)
    if selector.tenant_id:
        tenant = search.tenant(selector.tenant_id)
        if tenant is not None:
            return Purchase(selector, tenant.billing.transaction_id)
        jobs = search.jobs_by_tenant(selector.tenant_id)
        return Purchase(selector, jobs[-1].transaction_id if jobs else None)
    email = normalize_email(selector.email or "")
    transactions = _transactions_of(email, search)
    if not transactions:
        for user in search.user_records(email):
            tenant = search.tenant(user.tenant_id)
            if tenant is not None:
                transactions.append(tenant.billing.transaction_id)
    chosen = _most_relevant(transactions, search)
    others = tuple(transaction for transaction in transactions if transaction != chosen)
    return Purchase(selector, chosen, email, others)


@dataclass(frozen=True, slots=True)
class _Named:
    """What the purchase's transaction id finds, and the email and owner the people are looked up by."""

    payments: tuple[PaymentRecord, ...]
    job: ProvisioningJob | None
    tenant: Tenant | None
    email: str | None  # the selector's, else the job's or the ITNs'
    owner_subject: str | None  # only when no email is known: the tenant record's owner


def _named(purchase: Purchase, lookup: EvidenceLookup) -> _Named:
    transaction_id = purchase.transaction_id
    payments = tuple(lookup.payments(transaction_id)) if transaction_id else ()
    job = lookup.job(transaction_id) if transaction_id else None
    email = purchase.email
    if email is None:
        email = job.email if job else next((p.email for p in reversed(payments) if p.email), None)
    tenant = _tenant(purchase.selector, lookup, transaction_id, job)
    # A tenant written by hand (RB-001 4.3) has no payment or job to name its owner's email;
    # its record names the owner's identity subject instead.
    owner = (tenant.owner_user_id or None) if email is None and tenant is not None else None
    return _Named(payments, job, tenant, email, owner)


def people_sought(purchase: Purchase, lookup: EvidenceLookup) -> tuple[str | None, str | None]:
    """(email, owner subject): what `gather` looks the purchase's people up by (identity user,
    users records, mail), from what the transaction id finds. The audit keeps, of the people
    stores, only what its purchases' cases will look up."""
    named = _named(purchase, lookup)
    return named.email, named.owner_subject


def gather(purchase: Purchase, lookup: EvidenceLookup) -> CaseFile:
    """The case of the purchase. Its email comes from the selector, the job or the payments; when
    none names one, from the identity user whose subject the tenant record names as owner."""
    named = _named(purchase, lookup)
    transaction_id, job, tenant, email = purchase.transaction_id, named.job, named.tenant, named.email
    if named.owner_subject is not None:
        identity_user = lookup.identity_user_by_subject(named.owner_subject)
        email = identity_user.username if identity_user else None
    else:
        identity_user = lookup.identity_user(email) if email else None
    tenant_id = (
        tenant.tenant_id
        if tenant
        else (job.tenant_id if job else (identity_user.tenant_id if identity_user else purchase.selector.tenant_id))
    )
    if tenant_id is None and transaction_id and named.payments:
        tenant_id = tenant_id_for(transaction_id)
    users = tuple(lookup.user_records(email)) if email else ()
    owner_record = _owner_elsewhere(tenant, identity_user, lookup)
    if tenant is not None and _handed_on(tenant, owner_record, email) and not _active_in(users, tenant):
        # The purchaser handed the ownership on and then left the team: the owner answers for it.
        assert owner_record is not None
        identity_user = lookup.identity_user(owner_record.email)
        users = tuple(lookup.user_records(owner_record.email))
    return CaseFile(
        selector=purchase.selector,
        transaction_id=transaction_id,
        email=email,
        tenant_id=tenant_id,
        payments=named.payments,
        job=job,
        messages=tuple(lookup.messages(transaction_id)) if transaction_id else (),
        tenant=tenant,
        users=users,
        identity_user=identity_user,
        emails=tuple(lookup.mail(email)) if email else (),
        other_transactions=purchase.other_transactions,
        subscription=lookup.subscription(tenant_id) if tenant_id else None,
        undelivered=tuple(lookup.undelivered(tenant_id)) if tenant_id else (),
        members=_members(tenant, email, lookup) if tenant else (),
        owner_record=owner_record,
    )


def _handed_on(tenant: Tenant, owner: UserRecord | None, purchaser_email: str | None) -> bool:
    """Whether the owner link names another active tenant admin of the tenant than the purchaser."""
    return (
        owner is not None
        and owner.user_id == tenant.owner_user_id
        and owner.tenant_id == tenant.tenant_id
        and owner.status is UserStatus.ACTIVE
        and owner.role == Role.TENANT_ADMIN.value
        and normalize_email(owner.email) != normalize_email(purchaser_email or "")
    )


def _active_in(records: Iterable[UserRecord], tenant: Tenant) -> bool:
    return any(record.tenant_id == tenant.tenant_id and record.status is UserStatus.ACTIVE for record in records)


def _owner_elsewhere(
    tenant: Tenant | None, purchaser: IdentityUser | None, lookup: EvidenceLookup
) -> UserRecord | None:
    """The owner link's users record, read only when the link does not name the purchaser (rare:
    a handed-on ownership, or a broken link; one look-up each)."""
    if tenant is None or not tenant.owner_user_id:
        return None
    if purchaser is not None and purchaser.sub == tenant.owner_user_id:
        return None
    return lookup.user_record(tenant.owner_user_id)


def _members(tenant: Tenant, owner_email: str | None, lookup: EvidenceLookup) -> tuple[Member, ...]:
    records = lookup.members(tenant.tenant_id)
    members = [
        Member(record, lookup.identity_user(record.email))
        for record in records
        if is_member_record(record, tenant, owner_email)
    ]
    return (*members, *_unrecorded(tenant, records, lookup))


def _unrecorded(tenant: Tenant, records: Sequence[UserRecord], lookup: EvidenceLookup) -> list[Member]:
    """The members an accepted invitation made whose users record is gone (deleted by hand, or
    lost) while their identity user still names the tenant: they can sign in, and the API, which
    reads the record, refuses them everything. A member removed keeps a disabled record, and a
    removal finished deletes or disables the identity user: neither is one of these."""
    known_ids = {record.user_id for record in records}
    known_emails = {normalize_email(record.email) for record in records}
    found: list[Member] = []
    for invitation in lookup.joined(tenant.tenant_id):
        if invitation.user_id in known_ids or normalize_email(invitation.email) in known_emails:
            continue
        user = lookup.identity_user(invitation.email)
        if user is not None and user.enabled and user.tenant_id == tenant.tenant_id and user.sub not in known_ids:
            found.append(Member(None, user, invitation))
            known_emails.add(normalize_email(invitation.email))  # a member invited twice is one member
    return found


def _transactions_of(email: str, search: PurchaseSearch) -> list[str]:
    seen: dict[str, None] = {}
    for job in search.jobs_by_email(email):
        seen[job.transaction_id] = None
    for payment in search.payments_by_email(email):
        if payment.transaction_id:
            seen[payment.transaction_id] = None
    return list(seen)


def _most_relevant(transactions: list[str], lookup: EvidenceLookup) -> str | None:
    """An email may have bought more than once. The operator is asked about, in order: the
    newest purchase whose job is not done; the newest paid one that never got a job; the
    newest done one; the newest of any kind."""
    if not transactions:
        return None
    jobs = {transaction_id: lookup.job(transaction_id) for transaction_id in transactions}
    newest_first = list(reversed(transactions))
    for transaction_id in newest_first:
        job = jobs[transaction_id]
        if job is not None and job.status is not JobStatus.SUCCEEDED:
            return transaction_id
    for transaction_id in newest_first:
        paid = any(
            payment.payment_status == "COMPLETE" and payment.verdict.value == "accepted"
            for payment in lookup.payments(transaction_id)
        )
        if jobs[transaction_id] is None and paid:
            return transaction_id
    for transaction_id in newest_first:
        if jobs[transaction_id] is not None:
            return transaction_id
    return newest_first[0]


def _tenant(
    selector: Selector, lookup: EvidenceLookup, transaction_id: str | None, job: ProvisioningJob | None
) -> Tenant | None:
    if selector.tenant_id:
        tenant = lookup.tenant(selector.tenant_id)
        if tenant is not None:
            return tenant
    if job is not None:
        tenant = lookup.tenant(job.tenant_id)
        if tenant is not None:
            return tenant
    return lookup.tenant_for_transaction(transaction_id) if transaction_id else None
