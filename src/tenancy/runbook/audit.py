"""RB-001 section 7's weekly audit: every purchase in a time window gathered and named by the very
rules `diagnose` uses, its look-ups answered from one batched read of each store (no per-tenant
round trips), and the window's failed attempts, dead-letters and repairs, healed since or not
(runbook.attempts)."""

from __future__ import annotations

import gc
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, TypeVar

from tenancy.domain import durations
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.ids import normalized_email_or_none
from tenancy.domain.model import (
    IdentityUser,
    OutboxMessage,
    PaymentRecord,
    PaymentVerdict,
    ProvisioningJob,
    QueuedMessage,
    Tenant,
    UserRecord,
)
from tenancy.errors import InvalidInputError, TenancyError
from tenancy.ports import RepairTrail
from tenancy.runbook.attempts import AttemptTracker, PurchaseAttempts
from tenancy.runbook.diagnose import DEFAULT_PASSWORD_TTL, ESCALATION_AGE, diagnosis_of
from tenancy.runbook.evidence import MAIL_LIMIT, CaseFile, EvidenceStores, Purchase, Selector, gather, people_sought
from tenancy.runbook.findings import ESCALATION, Advise, Diagnosis, Finding
from tenancy.runbook.rules import Context, first_match
from tenancy.runbook.service import Runbook

__all__ = [
    "MULTIPLE_FAILURES",
    "AuditReport",
    "AuditTotals",
    "AuditedCase",
    "Escalation",
    "FindingGroup",
    "FixResult",
    "Progress",
    "fix_findings",
    "parse_duration",
    "run_audit",
    "window_start",
]

# RB-001 section 6: more than this many failures goes to the Engineering Lead.
MULTIPLE_FAILURES = 3
_CLASSIFY_BATCH = 1000

Progress = Callable[[int], None]
"""Told how many more records were read or cases classified, after each batch."""


# --- The window --------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """The audit window's length: `7d`, `24h`, `90m` (see `domain.durations`)."""
    return durations.parse_duration(text, what="--since")


def window_start(now: datetime, duration: timedelta) -> datetime:
    try:
        return now - duration
    except OverflowError:
        raise InvalidInputError("--since reaches back before the year 1") from None


# --- The report --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditedCase:
    """One failed purchase: its diagnosis and how long since the purchase started (job created,
    else first ITN, else tenant created), the same start `diagnose` measures the hour from."""

    diagnosis: Diagnosis
    age_seconds: int | None

    @property
    def finding(self) -> Finding:
        return self.diagnosis.finding

    def older_than(self, limit: timedelta) -> bool:
        return self.age_seconds is not None and self.age_seconds > limit.total_seconds()

    def as_record(self) -> dict[str, Any]:
        """The case as data (the next step as its fields), for the CSV's columns."""
        return {**self.diagnosis.as_record(), "age_seconds": self.age_seconds}

    def as_document(self, advise: Advise) -> dict[str, Any]:
        """For people: `advise` words the next step."""
        return {**self.diagnosis.as_document(advise), "age_seconds": self.age_seconds}


@dataclass(frozen=True, slots=True)
class FindingGroup:
    finding: Finding
    cases: tuple[AuditedCase, ...]

    @property
    def count(self) -> int:
        return len(self.cases)

    @property
    def transaction_ids(self) -> tuple[str, ...]:
        return tuple(case.diagnosis.transaction_id for case in self.cases if case.diagnosis.transaction_id)

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(case.diagnosis.email for case in self.cases if case.diagnosis.email))

    @property
    def oldest_age_seconds(self) -> int | None:
        return _oldest(self.cases)

    def as_document(self) -> dict[str, Any]:
        return {
            "finding": self.finding.value,
            "runbook_section": self.finding.runbook_section,
            "count": self.count,
            "transaction_ids": list(self.transaction_ids),
            "emails": list(self.emails),
            "oldest_unresolved_age_seconds": self.oldest_age_seconds,
        }


@dataclass(frozen=True, slots=True)
class Escalation:
    """One row of RB-001 section 6 that the window's failures meet."""

    condition: str  # a key of findings.ESCALATION
    contact: str
    reason: str
    transaction_ids: tuple[str, ...]

    def as_document(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "escalate_to": self.contact,
            "reason": self.reason,
            "transaction_ids": list(self.transaction_ids),
        }


@dataclass(frozen=True, slots=True)
class AuditTotals:
    payments: int  # ledger entries received in the window, whatever their verdict
    rejected_payments: int  # of those, rejected by a security check
    rejected_without_transaction: int  # of those, naming no transaction: counted here, never a case
    # purchases audited: paid, job created or tenant created in the window, or failed, repaired or
    # redriven in it
    transactions: int
    tenants: int  # tenant records created in the window
    healthy: int
    in_progress: int  # a worker still has the job: neither healthy nor failed yet
    findings: int  # failed purchases: neither healthy nor in progress
    # RB-001 section 7's attempts (AuditReport.attempts), healed since or not:
    failed_attempts: int = 0  # failed provisioning runs
    dead_lettered: int = 0  # purchases whose job reached the dead-letter queue
    repairs: int = 0  # repairs recorded in the trail
    redrives: int = 0  # dead-letter redrives recorded in the trail

    def as_document(self) -> dict[str, int]:
        return {
            "payments": self.payments,
            "rejected_payments": self.rejected_payments,
            "rejected_without_transaction": self.rejected_without_transaction,
            "transactions": self.transactions,
            "tenants": self.tenants,
            "healthy": self.healthy,
            "in_progress": self.in_progress,
            "findings": self.findings,
            "failed_attempts": self.failed_attempts,
            "dead_lettered": self.dead_lettered,
            "repairs": self.repairs,
            "redrives": self.redrives,
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    since: datetime
    now: datetime
    totals: AuditTotals
    cases: tuple[AuditedCase, ...]  # the failures, oldest first
    in_progress: tuple[str, ...]  # transaction ids
    # Every purchase that failed an attempt, was dead-lettered, repaired or redriven in the window,
    # with its outcome now (healed ones too): the attempts RB-001 section 7 audits.
    attempts: tuple[PurchaseAttempts, ...] = ()

    @property
    def has_findings(self) -> bool:
        """Findings still open (the exit code's question); healed attempts are not findings."""
        return bool(self.cases)

    @property
    def groups(self) -> tuple[FindingGroup, ...]:
        """One group per finding present, in the order `Finding` declares them (RB-001's order)."""
        by_finding: dict[Finding, list[AuditedCase]] = defaultdict(list)
        for case in self.cases:
            by_finding[case.finding].append(case)
        return tuple(FindingGroup(finding, tuple(by_finding[finding])) for finding in Finding if finding in by_finding)

    @property
    def oldest_unresolved_age_seconds(self) -> int | None:
        return _oldest(self.cases)

    @property
    def escalations(self) -> tuple[Escalation, ...]:
        return _escalations(self.cases)

    def as_document(self, advise: Advise) -> dict[str, Any]:
        """For people (`tenancy audit --format json`): `advise` words each case's next step."""
        return {
            "window": {"since": format_timestamp(self.since), "now": format_timestamp(self.now)},
            "totals": self.totals.as_document(),
            "findings": [group.as_document() for group in self.groups],
            "oldest_unresolved_age_seconds": self.oldest_unresolved_age_seconds,
            "escalations": [escalation.as_document() for escalation in self.escalations],
            "in_progress": list(self.in_progress),
            "cases": [case.as_document(advise) for case in self.cases],
            "attempts": [row.as_document() for row in self.attempts],
        }


def _oldest(cases: Iterable[AuditedCase]) -> int | None:
    ages = [case.age_seconds for case in cases if case.age_seconds is not None]
    return max(ages) if ages else None


def _ids(cases: Iterable[AuditedCase]) -> tuple[str, ...]:
    return tuple(case.diagnosis.transaction_id for case in cases if case.diagnosis.transaction_id)


def _escalations(cases: tuple[AuditedCase, ...]) -> tuple[Escalation, ...]:
    """RB-001 section 6 applied to the whole window. Finance and Security follow the escalation
    `diagnose` named for each case; the other two rows are about the window as a whole."""
    escalations: list[Escalation] = []
    if len(cases) > MULTIPLE_FAILURES:
        escalations.append(
            Escalation(
                "engineering",
                ESCALATION["engineering"],
                f"{len(cases)} failed purchases in the window (more than {MULTIPLE_FAILURES})",
                _ids(cases),
            )
        )
    for condition, reason in (
        ("finance", "payment-related: rejected amount or merchant, or a purchase waiting for review"),
        ("security", "ITNs rejected by the signature or source-address check"),
    ):
        named = [case for case in cases if case.diagnosis.escalate_to == ESCALATION[condition]]
        if named:
            escalations.append(Escalation(condition, ESCALATION[condition], reason, _ids(named)))
    overdue = [case for case in cases if case.older_than(ESCALATION_AGE)]
    if overdue:
        escalations.append(
            Escalation("on_call", ESCALATION["on_call"], "failures unresolved for more than 1 hour", _ids(overdue))
        )
    return tuple(escalations)


# --- Reading the stores once -------------------------------------------------------------------


def _ignore_progress(_count: int) -> None:
    return None


def _at_or_after(timestamp: str, since: datetime) -> bool:
    return parse_timestamp(timestamp) >= since


_Record = TypeVar("_Record")


def _copier_without(record_type: Callable[..., _Record], name: str, empty: object) -> Callable[[_Record], _Record]:
    """`lambda record: dataclasses.replace(record, name=empty)` for one frozen dataclass, at
    less than two thirds of the cost (`replace` looks the fields up again on every call): the
    audit copies a record for every ITN and email it keeps."""
    declared = fields(record_type)  # type: ignore[arg-type]
    if not all(field.init and not field.kw_only for field in declared):
        raise TypeError(f"{record_type} has a field its constructor does not take by position")
    names = [field.name for field in declared]
    at = names.index(name)
    values_of = attrgetter(*names)

    def copy(record: _Record) -> _Record:
        values = values_of(record)
        return record_type(*values[:at], empty, *values[at + 1 :])

    return copy


# The raw ITN fields and the email bodies are dropped: no rule reads them, and across a
# large ledger and outbox they would be most of the memory the audit holds.
_without_itn_fields = _copier_without(PaymentRecord, "fields", ())
_without_text = _copier_without(OutboxMessage, "text", "")


@dataclass
class _PaymentCounts:
    payments: int = 0
    rejected: int = 0
    rejected_without_transaction: int = 0


class _AuditLookup:
    """The EvidenceLookup the audit gathers its cases with: every store read once into memory,
    keeping what the window's cases will look up. Keys are the values as stored; look-ups use the
    stripped transaction id and the normalized email, as the stores answer them."""

    def __init__(
        self, stores: EvidenceStores, since: datetime, advance: Progress, trail: RepairTrail | None = None
    ) -> None:
        self.since = since
        self.attempts = AttemptTracker(since)
        self._stores = stores
        self._trail = trail
        self._mail_statistics: tuple[tuple[str, int], ...] | None = None
        self._jobs: dict[str, ProvisioningJob] = {}
        self._tenants_by_id: dict[str, Tenant] = {}
        self._tenants_by_transaction: dict[str, Tenant] = {}
        self._billed_more_than_once: set[str] = set()  # transactions several tenant records name
        self._payments: dict[str, list[PaymentRecord]] = defaultdict(list)
        self._identity_users: dict[str, IdentityUser] = {}
        self._owners: dict[str, IdentityUser] = {}  # by subject, for tenants no job or payment names an email for
        self._users: dict[str, list[UserRecord]] = defaultdict(list)
        self._emails: dict[str, list[OutboxMessage]] = defaultdict(list)
        self._messages: dict[str, list[QueuedMessage]] = defaultdict(list)
        self._keys: dict[str, str | None] = {}
        self.counts = _PaymentCounts()
        self.tenants_created = 0
        self.window: set[str] = set()
        self._read_window(stores, advance)
        self._read_evidence(stores, advance)

    # --- EvidenceLookup ---

    def payments(self, transaction_id: str) -> Sequence[PaymentRecord]:
        return self._payments.get(transaction_id, ())

    def job(self, transaction_id: str) -> ProvisioningJob | None:
        return self._jobs.get(transaction_id)

    def messages(self, transaction_id: str) -> Sequence[QueuedMessage]:
        return self._messages.get(transaction_id, ())

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants_by_id.get(tenant_id)

    def tenant_for_transaction(self, transaction_id: str) -> Tenant | None:
        if transaction_id in self._billed_more_than_once:
            # Rare (a tenant written by hand beside the project's own): which one counts is the store's choice.
            return self._stores.tenant_for_transaction(transaction_id)
        return self._tenants_by_transaction.get(transaction_id)

    def identity_user(self, email: str) -> IdentityUser | None:
        key = self._key(email)
        return self._identity_users.get(key) if key else None

    def identity_user_by_subject(self, subject: str) -> IdentityUser | None:
        return self._owners.get(subject)

    def user_records(self, email: str) -> Sequence[UserRecord]:
        key = self._key(email)
        return self._users.get(key, ()) if key else ()

    def mail(self, recipient: str) -> Sequence[OutboxMessage]:
        key = self._key(recipient)
        return self._emails.get(key, ()) if key else ()

    def mail_statistics(self) -> tuple[tuple[str, int], ...]:
        """Read once, when the first case cites them."""
        if self._mail_statistics is None:
            self._mail_statistics = self._stores.mail_statistics()
        return self._mail_statistics

    def email_of(self, transaction_id: str) -> str | None:
        """The email the purchase's job or ITNs name."""
        return people_sought(Purchase.of_transaction(transaction_id), self)[0]

    def _key(self, email: str) -> str | None:
        # Stored data, written before today's rules perhaps: an address they refuse matches nothing.
        if email not in self._keys:
            self._keys[email] = normalized_email_or_none(email)
        return self._keys[email]

    # --- Reading the stores ---

    def _read_window(self, stores: EvidenceStores, advance: Progress) -> None:
        for jobs in stores.journal.scan():
            for job in jobs:
                self._jobs[job.transaction_id] = job
                # A job that failed in the window is audited even when it was bought before.
                if self.attempts.note_job(job) or _at_or_after(job.created_at, self.since):
                    self._open(job.transaction_id)
            advance(len(jobs))
        for tenants in stores.tenants.scan():
            for tenant in tenants:
                self._index_tenant(tenant)
            advance(len(tenants))
        # The whole ledger, not only the window: a purchase in the window may have older ITNs
        # (a PENDING before the COMPLETE), and `gather` shows them all.
        for payments in stores.ledger.scan():
            for payment in payments:
                self._index_payment(payment)
            advance(len(payments))
        self._read_trail(advance)
        self._forget_outside_window()

    def _read_trail(self, advance: Progress) -> None:
        """The window's repairs, redrives and removals: each brings its purchase into the audit
        (it may have healed since, as a repaired purchase usually has)."""
        if self._trail is None:
            return
        entries = self._trail.entries()
        for entry in entries:
            if self.attempts.note_entry(entry) and entry.transaction_id:
                self._open(entry.transaction_id)
        advance(len(entries))

    def _forget_outside_window(self) -> None:
        """Lookups are by the window's (stripped) transaction ids only, so the rest can go before
        the evidence is read: a week's audit of a large store then holds little beyond the week."""
        self._jobs = {key: job for key, job in self._jobs.items() if key in self.window}
        self._payments = defaultdict(list, {key: kept for key, kept in self._payments.items() if key in self.window})
        self._tenants_by_transaction = {
            key: tenant for key, tenant in self._tenants_by_transaction.items() if key in self.window
        }
        wanted = {job.tenant_id for job in self._jobs.values()}
        self._tenants_by_id = {key: tenant for key, tenant in self._tenants_by_id.items() if key in wanted}

    def _index_tenant(self, tenant: Tenant) -> None:
        self._tenants_by_id[tenant.tenant_id] = tenant
        transaction_id = tenant.billing.transaction_id
        if self._tenants_by_transaction.setdefault(transaction_id, tenant) is not tenant:
            self._billed_more_than_once.add(transaction_id)
        if _at_or_after(tenant.created_at, self.since):
            self.tenants_created += 1
            self._open(transaction_id)

    def _index_payment(self, payment: PaymentRecord) -> None:
        in_window = _at_or_after(payment.received_at, self.since)
        transaction_id = payment.transaction_id if payment.transaction_id and payment.transaction_id.strip() else None
        if in_window:
            self._count(payment, has_transaction=transaction_id is not None)
        if transaction_id is None:
            return
        self._payments[transaction_id].append(_without_itn_fields(payment))
        if in_window:
            self._open(transaction_id)

    def _count(self, payment: PaymentRecord, *, has_transaction: bool) -> None:
        self.counts.payments += 1
        if payment.verdict is PaymentVerdict.REJECTED:
            self.counts.rejected += 1
            if not has_transaction:
                self.counts.rejected_without_transaction += 1

    def _open(self, transaction_id: str) -> None:
        stripped = transaction_id.strip()
        if stripped:
            self.window.add(stripped)

    def _read_evidence(self, stores: EvidenceStores, advance: Progress) -> None:
        """Only what the window's cases will look up is kept: the people `gather` will look up
        by email, or by the owner's subject where no email is known."""
        wanted: set[str | None] = set()
        subjects: set[str] = set()
        for transaction_id in self.window:
            address, subject = people_sought(Purchase.of_transaction(transaction_id), self)
            if address:
                wanted.add(self._key(address))
            if subject:
                subjects.add(subject)
        wanted.discard(None)
        for identity_users in stores.identity.scan_users():
            for user in identity_users:
                if user.username in wanted:
                    self._identity_users[user.username] = user
                if user.sub in subjects:
                    self._owners[user.sub] = user
            advance(len(identity_users))
        wanted |= {user.username for user in self._owners.values()}
        for users in stores.users.scan():
            for record in users:
                if record.email in wanted:
                    self._users[record.email].append(record)
            advance(len(users))
        for records in self._users.values():
            if len(records) > 1:
                records.sort(key=lambda record: (record.created_at, record.user_id))
        for emails in stores.mailer.scan():
            for email in emails:
                if email.to in wanted:
                    self._emails[email.to].append(_without_text(email))
            advance(len(emails))
        for recipient, kept in self._emails.items():
            if len(kept) > 1:
                # Newest first, as `outbox` answers. Emails of the same second keep message-id
                # order: the outbox's insertion order is not in the record.
                self._emails[recipient] = sorted(kept, key=lambda email: email.created_at, reverse=True)[:MAIL_LIMIT]
        queued = stores.queue.messages()
        for message in queued:
            if message.transaction_id in self.window:
                self._messages[message.transaction_id].append(message)
                self.attempts.note_message(message)
        advance(len(queued))


# --- The audit ---------------------------------------------------------------------------------

_pause_lock = threading.Lock()
_pauses = 0
_collector_was_enabled = False


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Python's cycle collector off while audits run (in any thread), back as it was after the
    last. An audit allocates records by the hundred thousand and keeps most of them, the case
    the collector's heuristics handle worst: it walked the kept records again and again, almost
    3 s of an 11 s audit over 100k purchases, to free nothing (an audit makes no reference
    cycles; all it drops is freed at once by reference counting, collector or not)."""
    global _pauses, _collector_was_enabled
    with _pause_lock:
        if _pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _collector_was_enabled:
                gc.enable()


def run_audit(
    stores: EvidenceStores,
    *,
    since: datetime,
    now: datetime,
    progress: Progress | None = None,
    password_ttl: timedelta = DEFAULT_PASSWORD_TTL,
    trail: RepairTrail | None = None,
) -> AuditReport:
    """Classifies every purchase paid, queued or provisioned at or after `since`, as `diagnose`
    would at `now`, and sums them up by finding with RB-001 section 6's escalations. Every purchase
    that failed an attempt or was dead-lettered in the window, or (given the `trail`) repaired or
    redriven in it, is also reported with its outcome now, healed or not."""
    with _cycle_collector_paused():
        advance = progress or _ignore_progress
        return _audit(stores, since=since, now=now, advance=advance, password_ttl=password_ttl, trail=trail)


def _audit(
    stores: EvidenceStores,
    *,
    since: datetime,
    now: datetime,
    advance: Progress,
    password_ttl: timedelta,
    trail: RepairTrail | None,
) -> AuditReport:
    lookup = _AuditLookup(stores, since, advance, trail)
    context = Context(now, password_ttl, lookup.mail_statistics)
    failures: list[AuditedCase] = []
    in_progress: list[str] = []
    healthy = 0
    for done, transaction_id in enumerate(sorted(lookup.window), start=1):
        # The very cases and rules `diagnose` has; only a failure's diagnosis (its evidence most
        # of the time it takes) is written, a healthy purchase is only counted.
        case = gather(Purchase.of_transaction(transaction_id), lookup)
        rule, found = first_match(case, context)
        if rule.finding is Finding.HEALTHY:
            healthy += 1
        elif rule.finding is Finding.IN_PROGRESS:
            in_progress.append(transaction_id)
        else:
            failures.append(AuditedCase(diagnosis_of(case, rule, found, now), _age_seconds(case, now)))
        if done % _CLASSIFY_BATCH == 0:
            advance(_CLASSIFY_BATCH)
    advance(len(lookup.window) % _CLASSIFY_BATCH)
    failures.sort(key=lambda case: (-(case.age_seconds or 0), case.diagnosis.transaction_id or ""))
    counts = lookup.counts
    # Every purchase the loop classified and did not keep as a failure or in progress is healthy.
    finding_now = {case.diagnosis.transaction_id: case.finding for case in failures}
    finding_now.update(dict.fromkeys(in_progress, Finding.IN_PROGRESS))
    attempts = lookup.attempts.rows(
        lambda transaction_id: finding_now.get(transaction_id, Finding.HEALTHY), lookup.job, lookup.email_of
    )
    totals = AuditTotals(
        payments=counts.payments,
        rejected_payments=counts.rejected,
        rejected_without_transaction=counts.rejected_without_transaction,
        transactions=len(lookup.window),
        tenants=lookup.tenants_created,
        healthy=healthy,
        in_progress=len(in_progress),
        findings=len(failures),
        failed_attempts=sum(row.failed_attempts for row in attempts),
        dead_lettered=sum(1 for row in attempts if row.dead_lettered),
        repairs=sum(row.repairs for row in attempts),
        redrives=sum(row.redrives for row in attempts),
    )
    return AuditReport(since, now, totals, tuple(failures), tuple(in_progress), attempts)


def _age_seconds(case: CaseFile, now: datetime) -> int | None:
    if case.job is not None:
        started = case.job.created_at
    elif case.payments:
        started = case.payments[0].received_at
    elif case.tenant is not None:
        started = case.tenant.created_at
    else:
        return None
    return max(0, int((now - parse_timestamp(started)).total_seconds()))


# --- --fix -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FixResult:
    """One repair the audit ran: the finding before, how the repair ended, the finding after."""

    transaction_id: str
    before: Finding
    outcome: str  # as RepairResult.outcome, or `error` when the repair refused
    after: Finding
    error: str | None = None

    def as_document(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "before": self.before.value,
            "outcome": self.outcome,
            "after": self.after.value,
            "error": self.error,
        }


def fix_findings(report: AuditReport, runbook: Runbook, *, operator: str) -> tuple[FixResult, ...]:
    """Repairs every repairable failure of the report, one at a time, through the runbook's own
    repair (so each gets its audit-trail entry). Payment and review findings are left alone."""
    results: list[FixResult] = []
    for case in report.cases:
        transaction_id = case.diagnosis.transaction_id
        if transaction_id is None or not case.finding.repairable:
            continue
        try:
            result = runbook.repair(Selector(transaction_id=transaction_id), operator=operator)
        except TenancyError as error:
            # One purchase that cannot be repaired must not stop the others being repaired.
            results.append(FixResult(transaction_id, case.finding, "error", case.finding, str(error)))
            continue
        results.append(FixResult(transaction_id, result.plan.diagnosis.finding, result.outcome, result.after.finding))
    return tuple(results)
