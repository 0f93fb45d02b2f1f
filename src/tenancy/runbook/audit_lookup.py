"""The weekly audit's EvidenceLookup: one page of purchases at a time, each store asked a few
batched questions for the whole page (the ports' `get_many`, `find_many`, `get_users`...), so the
audit holds one page of evidence whatever the number of purchases. Anything not read ahead is
asked of the stores one at a time: the answers are always the stores' own."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TypeVar

from tenancy.domain.billing import Subscription
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import Notice
from tenancy.domain.members import Invitation
from tenancy.domain.model import (
    IdentityUser,
    OutboxMessage,
    PaymentRecord,
    ProvisioningJob,
    QueuedMessage,
    Tenant,
    UserRecord,
    UserStatus,
)
from tenancy.runbook.evidence import (
    DEAD_NOTICE_LIMIT,
    MAIL_LIMIT,
    EvidenceStores,
    Purchase,
    is_member_record,
    people_sought,
)

__all__ = ["PageLookup", "members_among", "unrecorded_among"]

_Key = TypeVar("_Key")
_Answer = TypeVar("_Answer")

MailStatistics = tuple[tuple[str, int], ...]


def _read_ahead(
    answers: dict[_Key, _Answer],
    keys: Iterable[_Key],
    read: Callable[[list[_Key]], Mapping[_Key, _Answer]],
    nothing: _Answer,
) -> None:
    """One batched `read` of the keys not answered yet; a key it does not answer finds `nothing`."""
    missing = [key for key in dict.fromkeys(keys) if key not in answers]
    if not missing:
        return
    found = read(missing)
    for key in missing:
        answers[key] = found.get(key, nothing)


def members_among(stores: EvidenceStores, records: Sequence[UserRecord]) -> list[tuple[Tenant, UserRecord]]:
    """Of a page of users records, the active members' besides their tenants' owners (the owner
    link tells them apart), each with its tenant: the tenants read in one batch."""
    active = [record for record in records if record.status is UserStatus.ACTIVE]
    if not active:
        return []
    tenants = stores.tenants.get_many(list(dict.fromkeys(record.tenant_id for record in active)))
    return [
        (tenant, record)
        for record in active
        if (tenant := tenants.get(record.tenant_id)) is not None and is_member_record(record, tenant, None)
    ]


def unrecorded_among(stores: EvidenceStores, invitations: Sequence[Invitation]) -> list[Invitation]:
    """Of a page of accepted invitations, those whose member has no users record in the tenant
    while its identity user, enabled, still names it: their records read in one batch, identity
    users and records by email (one under another id: its identity user made again since) only
    for the invitations with no record (rare), in one batch each."""
    ids = [invitation.user_id for invitation in invitations if invitation.user_id]
    records = stores.users.get_many(ids) if ids else {}
    gone = [invitation for invitation in invitations if invitation.user_id not in records]
    if not gone:
        return []
    emails = list(dict.fromkeys(invitation.email for invitation in gone))
    found = stores.identity.get_users(emails)
    elsewhere = stores.users.find_by_emails(emails)
    return [
        invitation
        for invitation in gone
        if (user := found.get(invitation.email)) is not None
        and user.enabled
        and user.tenant_id == invitation.tenant_id
        and not any(record.tenant_id == invitation.tenant_id for record in elsewhere.get(invitation.email, ()))
    ]


class PageLookup:
    """An EvidenceLookup over the stores for a page of purchases: `read_named` and `read_people`
    read the page's evidence ahead in a few batched queries; a look-up of anything else asks the
    store itself (and keeps the answer). The queue's messages come from the one listing the audit
    read (a listing of SQS counts as a delivery, so it is never repeated), by transaction id.
    `teams` are the users records of the members besides their owners, by tenant, as the audit's
    members pass read them: a tenant's members are answered from them, never by a query per
    tenant (none for a tenant of one); None asks the store about every tenant. `unrecorded` are
    likewise the accepted invitations whose member has no users record, by tenant, as the audit's
    invitations pass found them (the others' members were read as users records)."""

    def __init__(
        self,
        stores: EvidenceStores,
        messages: Mapping[str, Sequence[QueuedMessage]],
        mail_statistics: Callable[[], MailStatistics],
        teams: Mapping[str, Sequence[UserRecord]] | None = None,
        unrecorded: Mapping[str, Sequence[Invitation]] | None = None,
    ) -> None:
        self._stores = stores
        self._teams = teams
        self._unrecorded = unrecorded
        self._joined: dict[str, Sequence[Invitation]] = {}
        self._members: dict[str, Sequence[UserRecord]] = {}
        self._records_by_id: dict[str, UserRecord | None] = {}
        self._messages = messages
        self._mail_statistics = mail_statistics
        self._jobs: dict[str, ProvisioningJob | None] = {}
        self._payments: dict[str, Sequence[PaymentRecord]] = {}
        self._tenants: dict[str, Tenant | None] = {}
        self._billed: dict[str, Tenant | None] = {}
        self._identity_users: dict[str, IdentityUser | None] = {}
        self._owners: dict[str, IdentityUser | None] = {}
        self._users: dict[str, Sequence[UserRecord]] = {}
        self._mail: dict[str, Sequence[OutboxMessage]] = {}
        self._subscriptions: dict[str, Subscription | None] = {}
        self._dead: dict[str, list[Notice]] | None = None  # None: unread, or the read was cut
        self._dead_read = False
        self.records_read = 0  # rows the batched reads brought back, for the progress bar

    # --- Reading a page ahead ---

    def know_jobs(self, jobs: Mapping[str, ProvisioningJob | None]) -> None:
        """Jobs already read (the journal's own page), by transaction id."""
        self._jobs.update(jobs)

    def read_payments(self, transaction_ids: Collection[str]) -> None:
        """The transaction ids' ITNs."""
        # No rule reads an ITN's raw fields: they are left unread.
        find = functools.partial(self._stores.ledger.find_many, with_fields=False)
        _read_ahead(self._payments, transaction_ids, self._counted_lists(find), ())

    def read_tenants(self, transaction_ids: Collection[str]) -> None:
        """The tenants the transaction ids' jobs name (their jobs read already)."""
        jobs = [job for job in (self._jobs.get(transaction_id) for transaction_id in transaction_ids) if job]
        _read_ahead(self._tenants, (job.tenant_id for job in jobs), self._counted(self._stores.tenants.get_many), None)

    def read_named(self, transaction_ids: Collection[str]) -> None:
        """What the transaction ids find: their jobs, ITNs and tenants (by the job's tenant id,
        else billed to the transaction), as `gather` will look them up."""
        stores = self._stores
        _read_ahead(self._jobs, transaction_ids, self._counted(stores.journal.get_many), None)
        self.read_payments(transaction_ids)
        self.read_tenants(transaction_ids)
        unbilled = [
            transaction_id
            for transaction_id in transaction_ids
            if (job := self._jobs[transaction_id]) is None or self._tenants[job.tenant_id] is None
        ]
        _read_ahead(self._billed, unbilled, self._counted(stores.tenants.find_by_transactions), None)

    def read_people(self, transaction_ids: Iterable[str]) -> None:
        """The people the purchases' cases will look up: identity users, users records and mail
        by the email the job or ITNs name (`people_sought`), identity users by owner subject."""
        emails: dict[str, None] = {}
        subjects: dict[str, None] = {}
        tenant_ids: dict[str, None] = {}
        purchasers: list[tuple[Tenant, str | None]] = []
        for transaction_id in transaction_ids:
            tenant = self._tenant_of(transaction_id)
            email, subject = people_sought(Purchase.of_transaction(transaction_id), self)
            if tenant is not None:
                tenant_ids[tenant.tenant_id] = None
                if subject is None:
                    purchasers.append((tenant, email))
            if email:
                emails[email] = None
            if subject:
                subjects[subject] = None
        stores = self._stores
        _read_ahead(self._identity_users, emails, self._counted(stores.identity.get_users), None)
        _read_ahead(self._users, emails, self._counted_lists(stores.users.find_by_emails), ())
        _read_ahead(self._mail, emails, self._counted_lists(self._outboxes), ())
        # Rare (a tenant written by hand names only its owner's subject): one look-up each.
        for subject in subjects:
            self.identity_user_by_subject(subject)
        self._read_owner_links(purchasers)
        self._read_members(tenant_ids)

    def _read_owner_links(self, purchasers: Iterable[tuple[Tenant, str | None]]) -> None:
        """The users records of the owner links that are not their purchaser's (a handed-on
        ownership, a broken link), in one batch: `gather` reads them (`user_record`)."""
        wanted: dict[str, None] = {}
        for tenant, email in purchasers:
            purchaser = self._identity_users.get(email) if email else None
            if tenant.owner_user_id and (purchaser is None or purchaser.sub != tenant.owner_user_id):
                wanted[tenant.owner_user_id] = None
        _read_ahead(self._records_by_id, wanted, self._counted(self._stores.users.get_many), None)

    def _tenant_of(self, transaction_id: str) -> Tenant | None:
        """The purchase's tenant as `gather` finds it (read ahead by `read_named`): its job's, else
        the one billed to it."""
        job = self._jobs.get(transaction_id)
        tenant = self._tenants.get(job.tenant_id) if job is not None else None
        return tenant if tenant is not None else self._billed.get(transaction_id)

    def _read_members(self, tenant_ids: Iterable[str]) -> None:
        """The identity users of the tenants' members, in one batch."""
        if self._teams is None:
            return
        emails = {record.email: None for tenant_id in tenant_ids for record in self.members(tenant_id)}
        _read_ahead(self._identity_users, emails, self._counted(self._stores.identity.get_users), None)

    def _outboxes(self, recipients: Sequence[str]) -> Mapping[str, Sequence[OutboxMessage]]:
        return self._stores.mailer.outboxes(recipients, limit=MAIL_LIMIT)

    def _counted(
        self, read: Callable[[list[_Key]], Mapping[_Key, _Answer]]
    ) -> Callable[[list[_Key]], Mapping[_Key, _Answer]]:
        def counted(keys: list[_Key]) -> Mapping[_Key, _Answer]:
            found = read(keys)
            self.records_read += len(found)
            return found

        return counted

    def _counted_lists(
        self, read: Callable[[list[_Key]], Mapping[_Key, Sequence[_Answer]]]
    ) -> Callable[[list[_Key]], Mapping[_Key, Sequence[_Answer]]]:
        def counted(keys: list[_Key]) -> Mapping[_Key, Sequence[_Answer]]:
            found = read(keys)
            self.records_read += sum(len(answers) for answers in found.values())
            return found

        return counted

    # --- EvidenceLookup ---

    def payments(self, transaction_id: str) -> Sequence[PaymentRecord]:
        if transaction_id not in self._payments:
            self._payments[transaction_id] = self._stores.payments(transaction_id)
        return self._payments[transaction_id]

    def job(self, transaction_id: str) -> ProvisioningJob | None:
        if transaction_id not in self._jobs:
            self._jobs[transaction_id] = self._stores.job(transaction_id)
        return self._jobs[transaction_id]

    def messages(self, transaction_id: str) -> Sequence[QueuedMessage]:
        return self._messages.get(transaction_id, ())

    def tenant(self, tenant_id: str) -> Tenant | None:
        if tenant_id not in self._tenants:
            self._tenants[tenant_id] = self._stores.tenant(tenant_id)
        return self._tenants[tenant_id]

    def tenant_for_transaction(self, transaction_id: str) -> Tenant | None:
        if transaction_id not in self._billed:
            self._billed[transaction_id] = self._stores.tenant_for_transaction(transaction_id)
        return self._billed[transaction_id]

    def identity_user(self, email: str) -> IdentityUser | None:
        if email not in self._identity_users:
            self._identity_users[email] = self._stores.identity.get_users([email]).get(email)
        return self._identity_users[email]

    def identity_user_by_subject(self, subject: str) -> IdentityUser | None:
        if subject not in self._owners:
            self._owners[subject] = self._stores.identity_user_by_subject(subject)
        return self._owners[subject]

    def user_records(self, email: str) -> Sequence[UserRecord]:
        if email not in self._users:
            self._users[email] = self._stores.user_records(email)
        return self._users[email]

    def mail(self, recipient: str) -> Sequence[OutboxMessage]:
        if recipient not in self._mail:
            self._mail[recipient] = self._stores.mail(recipient)
        return self._mail[recipient]

    def mail_statistics(self) -> MailStatistics:
        return self._mail_statistics()

    def user_record(self, user_id: str) -> UserRecord | None:
        # Rare (an owner link that is not the purchaser's: a handed-on ownership): one look-up each.
        if user_id not in self._records_by_id:
            self._records_by_id[user_id] = self._stores.user_record(user_id)
            self.records_read += 1
        return self._records_by_id[user_id]

    def members(self, tenant_id: str) -> Sequence[UserRecord]:
        if self._teams is not None:
            return self._teams.get(tenant_id, ())
        if tenant_id not in self._members:
            self._members[tenant_id] = self._stores.members(tenant_id)
            self.records_read += len(self._members[tenant_id])
        return self._members[tenant_id]

    def joined(self, tenant_id: str) -> Sequence[Invitation]:
        if self._unrecorded is not None:
            return self._unrecorded.get(tenant_id, ())
        if tenant_id not in self._joined:
            self._joined[tenant_id] = self._stores.joined(tenant_id)
            self.records_read += len(self._joined[tenant_id])
        return self._joined[tenant_id]

    def undelivered(self, tenant_id: str) -> Sequence[Notice]:
        # Dead notices are few: read once for the page, then handed out by tenant. A read cut at
        # its limit (many died: a receiver down for a day) may miss some tenant's, so then each
        # tenant's are read by the tenant.
        if not self._dead_read:
            self._dead_read = True
            dead = self._stores.dead_notices()
            if len(dead) < DEAD_NOTICE_LIMIT:
                self._dead = {}
                for notice in dead:
                    self._dead.setdefault(notice.tenant_id, []).append(notice)
        if self._dead is None:
            return self._stores.undelivered(tenant_id)
        return self._dead.get(tenant_id, ())

    def subscription(self, tenant_id: str) -> Subscription | None:
        if tenant_id not in self._subscriptions:
            self._read_subscriptions()
        if tenant_id not in self._subscriptions:
            self._subscriptions[tenant_id] = self._stores.subscription(tenant_id)
        return self._subscriptions[tenant_id]

    def _read_subscriptions(self) -> None:
        """The subscriptions of every tenant the page's records name (a case's tenant id is one of
        them: its tenant's, its job's, its identity user's, or the one its transaction derives),
        in one batched read when the first case asks for one."""
        subscriptions = self._stores.subscriptions
        if subscriptions is None:
            return
        named: dict[str, None] = {}
        for transaction_id in (*self._jobs, *self._payments):
            named[tenant_id_for(transaction_id)] = None
        for job in self._jobs.values():
            if job is not None:
                named[job.tenant_id] = None
        for tenant in (*self._tenants.values(), *self._billed.values()):
            if tenant is not None:
                named[tenant.tenant_id] = None
        for user in (*self._identity_users.values(), *self._owners.values()):
            if user is not None and user.tenant_id:
                named[user.tenant_id] = None
        _read_ahead(self._subscriptions, named, self._counted(subscriptions.get_many), None)
