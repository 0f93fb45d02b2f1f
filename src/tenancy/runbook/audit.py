"""RB-001 section 7's weekly audit: every purchase in a time window gathered and named by the very
rules `diagnose` uses, the stores read page by page with a few batched look-ups per page (no
per-purchase round trips, memory bounded whatever the number of purchases), and the window's failed
attempts, dead-letters and repairs, healed since or not (runbook.attempts)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tenancy.domain import durations
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.members import Invitation
from tenancy.domain.model import JobStatus, PaymentVerdict, ProvisioningJob, QueuedMessage, UserRecord
from tenancy.errors import InvalidInputError, TenancyError
from tenancy.lifecycle.due import LifecyclePeriods
from tenancy.ports import RepairTrail
from tenancy.runbook.attempts import AttemptTracker, PurchaseAttempts
from tenancy.runbook.audit_lookup import PageLookup, members_among, unrecorded_among
from tenancy.runbook.diagnose import DEFAULT_PASSWORD_TTL, ESCALATION_AGE, diagnosis_of
from tenancy.runbook.evidence import (
    CaseFile,
    EvidenceStores,
    Member,
    Purchase,
    Selector,
    gather,
    people_sought,
)
from tenancy.runbook.findings import ESCALATION, Advise, Diagnosis, Finding
from tenancy.runbook.rules import DEFAULT_PERIODS, Context, first_match
from tenancy.runbook.service import Runbook

__all__ = [
    "MULTIPLE_FAILURES",
    "AuditReport",
    "AuditTotals",
    "AuditedCase",
    "Classified",
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

Progress = Callable[[int], None]
"""Told how many more records were read or cases classified, after each page."""

Classified = Callable[[CaseFile, Finding], None]
"""Told of every purchase the audit classifies (healthy ones too) with its finding, as it goes:
how the audit refreshes the findings index."""


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


# --- Which purchases the window holds, each classified once ------------------------------------
#
# A purchase is in the window when it was paid (an ITN received), its job created, its tenant
# created, or it failed, was repaired or redriven in it. The audit reads the stores in pages and
# never holds the window's purchases: each is classified by exactly one of these passes, in order.
#
# 1. The repair trail's and the queue's entries (few) are read whole.
# 2. The tenants created in the window: a purchase with no job is set aside for pass 5; one with a
#    job, whose tenant is not the one the job names, is marked for pass 4.
# 2b. The users table, page by page, for the team members (issue 17): each page's tenants read in
#    one batch tell the owners' records from the members'; only members' identity users are read
#    (one batch per page, none without members). The members' records are kept (a tenant's cases
#    read its members from them, never with a query per tenant), and a tenant with a member who
#    cannot sign in brings its purchase into the audit, whenever bought, as a trail entry does:
#    marked for pass 4, set aside for pass 5 when it has no job.
# 2c. The accepted invitations, page by page: one whose member has no users record any more while
#    its identity user still names the tenant brings its tenant's purchase in the same way, and is
#    kept (few) for that tenant's case.
# 3. The ITNs received in the window are counted; those of a purchase with no job are set aside.
# 4. The journal, page by page: each job's purchase is classified here when it is in the window by
#    the job itself (created, or failed in it), the trail, pass 2's mark, an ITN received in it or
#    its own tenant created in it (`_classified_by_journal`: the one test of who classifies it).
# 5. What was set aside (purchases with no job, trail entries', and the odd ones whose stored ids
#    carry blanks), classified unless pass 4's test says pass 4 did.
#
# Only what was set aside and marked (rare: purchases with no job, hand-made tenants) is held
# across pages, with the report's own failures, in-progress ids and attempts, and the members'
# users records (pass 2b: one small record per member besides the owners, none for a tenant of one).

# Purchases per page: each store is asked a few batched questions per page.
_PAGE = 1000

_FAILING = frozenset({JobStatus.DEAD_LETTERED, JobStatus.RETRYING})
_CONTRACT_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _ignore_progress(_count: int) -> None:
    return None


@dataclass
class _PaymentCounts:
    payments: int = 0
    rejected: int = 0
    rejected_without_transaction: int = 0


@dataclass(frozen=True, slots=True)
class _AttemptFacts:
    """What the attempts rows need of a purchase, kept when it is classified."""

    job: ProvisioningJob | None
    email: str | None
    finding: Finding


class _Audit:
    """One run of the audit: the passes above and what the report keeps."""

    def __init__(
        self,
        stores: EvidenceStores,
        *,
        since: datetime,
        now: datetime,
        password_ttl: timedelta,
        periods: LifecyclePeriods,
        advance: Progress,
        classified: Classified | None,
    ) -> None:
        self._stores = stores
        self._since = since
        self._now = now
        self._advance = advance
        self._classified = classified
        self._context = Context(now, password_ttl, self._mail_statistics, periods)
        # The first whole second at or after `since`: a contract timestamp (whole seconds) is in
        # the window exactly when it is at or after this one.
        first = since.replace(microsecond=0)
        self._first_second = format_timestamp(first if first == since else first + timedelta(seconds=1))
        self._statistics: tuple[tuple[str, int], ...] | None = None
        self.attempts = AttemptTracker(since)
        self.counts = _PaymentCounts()
        self.tenants_created = 0
        self.transactions = 0
        self.healthy = 0
        self.failures: list[AuditedCase] = []
        self.in_progress: list[str] = []
        self._messages: dict[str, list[QueuedMessage]] = defaultdict(list)
        self._trail_keys: set[str] = set()
        self._other_tenants: set[str] = set()  # pass 2's mark: a job, and a tenant not its own
        self._set_aside: set[str] = set()  # for pass 5
        self._teams: dict[str, list[UserRecord]] = {}  # pass 2b: members besides the owner, by tenant
        self._member_keys: set[str] = set()  # pass 2b's mark: a member who cannot sign in
        self._unrecorded: dict[str, list[Invitation]] = {}  # pass 2c: members with no users record
        self._facts: dict[str, _AttemptFacts] = {}

    def _mail_statistics(self) -> tuple[tuple[str, int], ...]:
        """Read once, when the first case cites them."""
        if self._statistics is None:
            self._statistics = self._stores.mail_statistics()
        return self._statistics

    def _in_window(self, timestamp: str) -> bool:
        if _CONTRACT_TIMESTAMP.fullmatch(timestamp):
            # The contract's own format (nearly every record) orders as its text does: compared
            # with the window's first whole second, without parsing it.
            return timestamp >= self._first_second
        return parse_timestamp(timestamp) >= self._since

    def _lookup(self) -> PageLookup:
        return PageLookup(self._stores, self._messages, self._mail_statistics, self._teams, self._unrecorded)

    # --- 1. The trail and the queue ---

    def read_trail(self, trail: RepairTrail | None) -> None:
        """The window's repairs, redrives and removals: each brings its purchase into the audit
        (it may have healed since, as a repaired purchase usually has)."""
        if trail is None:
            return
        entries = trail.entries()
        for entry in entries:
            if self.attempts.note_entry(entry) and entry.transaction_id and entry.transaction_id.strip():
                self._trail_keys.add(entry.transaction_id.strip())
        # Pass 4 classifies those with a job; pass 5 finds which those are.
        self._set_aside |= self._trail_keys
        self._advance(len(entries))

    def read_queue(self) -> None:
        """Both queues, listed once (on SQS each look counts as a delivery); a queue holds the
        work in flight, not the purchases ever made."""
        queued = self._stores.queue.messages()
        for message in queued:
            self._messages[message.transaction_id].append(message)
        self._advance(len(queued))

    # --- 2. Tenants created in the window ---

    def read_tenants(self) -> None:
        journal = self._stores.journal
        for page in self._stores.tenants.scan_created(_PAGE):
            created: list[tuple[str, str]] = []
            for tenant_id, billed_to, created_at in page:
                if not self._in_window(created_at):
                    continue
                self.tenants_created += 1
                transaction_id = billed_to.strip()
                if not transaction_id:
                    continue  # names no purchase: counted, never a case
                if transaction_id != billed_to:
                    self._set_aside.add(transaction_id)  # its look-ups use the stripped id
                else:
                    created.append((tenant_id, transaction_id))
            jobs_tenants = journal.tenant_ids([transaction_id for _, transaction_id in created]) if created else {}
            for tenant_id, transaction_id in created:
                if transaction_id not in jobs_tenants:
                    self._set_aside.add(transaction_id)
                elif tenant_id != jobs_tenants[transaction_id]:
                    self._other_tenants.add(transaction_id)
            self._advance(len(page))

    # --- 2b. Team members ---

    def read_members(self) -> None:
        stores = self._stores
        for page in stores.users.scan(_PAGE):
            # The owner's records are the owner rules' to judge; a purchaser's record that is not
            # the owner's (ownership transferred) is told apart when its case is gathered.
            members = members_among(stores, page)
            emails = list(dict.fromkeys(record.email for _, record in members))
            found = stores.identity.get_users(emails) if emails else {}
            for tenant, record in members:
                self._teams.setdefault(tenant.tenant_id, []).append(record)
                transaction_id = tenant.billing.transaction_id.strip()
                if transaction_id and Member(record, found.get(record.email)).disagreement is not None:
                    self._member_keys.add(transaction_id)
            self._advance(len(page) + len(found))
        self._read_unrecorded()
        # Pass 4 classifies those with a job; pass 5 finds which those are.
        self._set_aside |= self._member_keys

    def _read_unrecorded(self) -> None:
        """Pass 2c: the accepted invitations, page by page, for a member whose users record is gone
        while its identity user still names the tenant (`unrecorded_among`)."""
        stores = self._stores
        if stores.team is None:
            return
        for page in stores.team.scan_accepted(_PAGE):
            orphans = unrecorded_among(stores, page)
            tenants = stores.tenants.get_many(list({invitation.tenant_id for invitation in orphans})) if orphans else {}
            for invitation in orphans:
                tenant = tenants.get(invitation.tenant_id)
                if tenant is None:
                    continue
                self._unrecorded.setdefault(tenant.tenant_id, []).append(invitation)
                if transaction_id := tenant.billing.transaction_id.strip():
                    self._member_keys.add(transaction_id)
            self._advance(len(page))

    # --- 3. ITNs received in the window ---

    def read_ledger(self) -> None:
        # The whole ledger: `received_at` is compared as a time, as written, not as text.
        journal = self._stores.journal
        for page in self._stores.ledger.scan_transactions(None, _PAGE):
            paid: list[str] = []
            for stored, verdict, received_at in page:
                if not self._in_window(received_at):
                    continue
                transaction_id = stored.strip() if stored else ""
                self.counts.payments += 1
                if verdict is PaymentVerdict.REJECTED:
                    self.counts.rejected += 1
                    if not transaction_id:
                        self.counts.rejected_without_transaction += 1
                if transaction_id != stored and transaction_id:
                    self._set_aside.add(transaction_id)  # `payments(id)` does not find this ITN
                elif transaction_id:
                    paid.append(transaction_id)
            if paid:
                with_jobs = journal.tenant_ids(paid)
                self._set_aside.update(transaction_id for transaction_id in paid if transaction_id not in with_jobs)
            self._advance(len(page))

    # --- 4. The journal ---

    def read_journal(self) -> None:
        for jobs in self._stores.journal.scan(_PAGE):
            lookup = self._lookup()
            lookup.know_jobs({job.transaction_id: job for job in jobs})
            members: list[str] = []
            undecided: list[str] = []
            for job in jobs:
                transaction_id = job.transaction_id.strip()
                failed = self.attempts.note_job(job)  # every job, as each may have failed in the window
                if not transaction_id:
                    continue
                if transaction_id != job.transaction_id:
                    # The look-ups (by the stripped id) never find this job: its purchase has none.
                    if failed or self._in_window(job.created_at):
                        self._set_aside.add(transaction_id)
                    continue
                if failed or self._marked(transaction_id, job):
                    members.append(transaction_id)
                else:
                    undecided.append(transaction_id)
            members += self._in_window_by_evidence(undecided, lookup)
            self._classify_page(members, lookup, read=len(jobs))

    def _marked(self, transaction_id: str, job: ProvisioningJob) -> bool:
        """In the window by what the job, the trail, pass 2 or pass 2b say, without reading more."""
        return (
            self._in_window(job.created_at)
            or transaction_id in self._trail_keys
            or transaction_id in self._other_tenants
            or transaction_id in self._member_keys
        )

    def _in_window_by_evidence(self, transaction_ids: list[str], lookup: PageLookup) -> list[str]:
        """Of purchases with a job not in the window by itself: those an ITN received in the
        window, or the job's own tenant (the one its tenant id names) created in it, brings in."""
        if not transaction_ids:
            return []
        lookup.read_payments(transaction_ids)
        lookup.read_tenants(transaction_ids)
        brought: list[str] = []
        for transaction_id in transaction_ids:
            job = lookup.job(transaction_id)
            tenant = lookup.tenant(job.tenant_id) if job is not None else None
            if any(self._in_window(payment.received_at) for payment in lookup.payments(transaction_id)) or (
                tenant is not None
                and tenant.billing.transaction_id.strip() == transaction_id
                and self._in_window(tenant.created_at)
            ):
                brought.append(transaction_id)
        return brought

    def _classified_by_journal(self, transaction_ids: list[str], lookup: PageLookup) -> set[str]:
        """Pass 4's test, for a page of purchases read ahead: which of them did it classify?"""
        marked: set[str] = set()
        undecided: list[str] = []
        for transaction_id in transaction_ids:
            job = lookup.job(transaction_id)
            if job is None or job.transaction_id != transaction_id:
                continue
            if self.attempts.note_job(job) or self._marked(transaction_id, job):
                marked.add(transaction_id)
            else:
                undecided.append(transaction_id)
        return marked.union(self._in_window_by_evidence(undecided, lookup))

    # --- 5. What was set aside ---

    def read_set_aside(self) -> None:
        pending = sorted(self._set_aside)
        self._set_aside = set()
        for start in range(0, len(pending), _PAGE):
            page = pending[start : start + _PAGE]
            lookup = self._lookup()
            lookup.read_named(page)
            done = self._classified_by_journal(page, lookup)
            self._classify_page(
                [transaction_id for transaction_id in page if transaction_id not in done], lookup, read=0
            )

    # --- Classifying ---

    def _classify_page(self, transaction_ids: list[str], lookup: PageLookup, *, read: int) -> None:
        if transaction_ids:
            lookup.read_named(transaction_ids)
            lookup.read_people(transaction_ids)
        for transaction_id in transaction_ids:
            self._classify(transaction_id, lookup)
        self._advance(read + lookup.records_read + len(transaction_ids))

    def _classify(self, transaction_id: str, lookup: PageLookup) -> None:
        # The very cases and rules `diagnose` has; only a failure's diagnosis (its evidence most
        # of the time it takes) is written, a healthy purchase is only counted.
        messages = self._messages.get(transaction_id, ())
        for message in messages:
            self.attempts.note_message(message)
        case = gather(Purchase.of_transaction(transaction_id), lookup)
        rule, found = first_match(case, self._context)
        if self._classified is not None:
            self._classified(case, rule.finding)
        self.transactions += 1
        if rule.finding is Finding.IN_PROGRESS:
            self.in_progress.append(transaction_id)
        elif not rule.finding.is_failure:
            self.healthy += 1  # healthy, or a tenant that left and was deleted as it should be
        else:
            self.failures.append(AuditedCase(diagnosis_of(case, rule, found, self._now), _age_seconds(case, self._now)))
        job = case.job
        if (
            transaction_id in self._trail_keys
            or (job is not None and (job.attempts > 1 or job.status in _FAILING))
            or any(message.dead_lettered for message in messages)
        ):
            # May have an attempts row (AttemptTracker): what the row needs, kept.
            email = people_sought(Purchase.of_transaction(transaction_id), lookup)[0]
            self._facts[transaction_id] = _AttemptFacts(job, email, rule.finding)

    def _facts_of(self, transaction_id: str) -> _AttemptFacts:
        """A purchase with an attempts row, as classified; one the test above did not foresee is
        read again from the stores, as `diagnose` reads it."""
        if transaction_id not in self._facts:
            case = gather(Purchase.of_transaction(transaction_id), self._stores)
            rule, _ = first_match(case, self._context)
            email = people_sought(Purchase.of_transaction(transaction_id), self._stores)[0]
            self._facts[transaction_id] = _AttemptFacts(case.job, email, rule.finding)
        return self._facts[transaction_id]

    def report(self) -> AuditReport:
        failures = sorted(
            self.failures, key=lambda case: (-(case.age_seconds or 0), case.diagnosis.transaction_id or "")
        )
        attempts = self.attempts.rows(
            lambda transaction_id: self._facts_of(transaction_id).finding,
            lambda transaction_id: self._facts_of(transaction_id).job,
            lambda transaction_id: self._facts_of(transaction_id).email,
        )
        counts = self.counts
        totals = AuditTotals(
            payments=counts.payments,
            rejected_payments=counts.rejected,
            rejected_without_transaction=counts.rejected_without_transaction,
            transactions=self.transactions,
            tenants=self.tenants_created,
            healthy=self.healthy,
            in_progress=len(self.in_progress),
            findings=len(failures),
            failed_attempts=sum(row.failed_attempts for row in attempts),
            dead_lettered=sum(1 for row in attempts if row.dead_lettered),
            repairs=sum(row.repairs for row in attempts),
            redrives=sum(row.redrives for row in attempts),
        )
        return AuditReport(self._since, self._now, totals, tuple(failures), tuple(sorted(self.in_progress)), attempts)


# --- The audit ---------------------------------------------------------------------------------


def run_audit(
    stores: EvidenceStores,
    *,
    since: datetime,
    now: datetime,
    progress: Progress | None = None,
    password_ttl: timedelta = DEFAULT_PASSWORD_TTL,
    periods: LifecyclePeriods = DEFAULT_PERIODS,
    trail: RepairTrail | None = None,
    classified: Classified | None = None,
) -> AuditReport:
    """Classifies every purchase paid, queued or provisioned at or after `since`, as `diagnose`
    would at `now`, and sums them up by finding with RB-001 section 6's escalations. Every purchase
    that failed an attempt or was dead-lettered in the window, or (given the `trail`) repaired or
    redriven in it, is also reported with its outcome now, healed or not. The stores are read in
    pages (see the passes above): memory holds a page, the report and the rare purchases with no
    job, whatever the number of purchases."""
    audit = _Audit(
        stores,
        since=since,
        now=now,
        password_ttl=password_ttl,
        periods=periods,
        advance=progress or _ignore_progress,
        classified=classified,
    )
    audit.read_trail(trail)
    audit.read_queue()
    audit.read_tenants()
    audit.read_members()
    audit.read_ledger()
    audit.read_journal()
    audit.read_set_aside()
    return audit.report()


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
        if transaction_id is None or not case.diagnosis.repairable:
            continue
        try:
            result = runbook.repair(Selector(transaction_id=transaction_id), operator=operator)
        except TenancyError as error:
            # One purchase that cannot be repaired must not stop the others being repaired.
            results.append(FixResult(transaction_id, case.finding, "error", case.finding, str(error)))
            continue
        results.append(FixResult(transaction_id, result.plan.diagnosis.finding, result.outcome, result.after.finding))
    return tuple(results)
