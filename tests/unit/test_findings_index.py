"""The findings index kept true (runbook.findings_index): every change the system makes to a
purchase judges it again (an ITN, a worker's run, the sweep, a repair, a redrive), the full audit
catches what changed outside the system and says when it ran, and the weekly schedule runs it."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from tenancy.bootstrap import Services, build
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import invoice_number_for, storage_prefix_for
from tenancy.domain.model import Billing, IndexedPurchase, JobStatus, PaymentVerdict, Tenant, TenantStatus, Usage
from tenancy.errors import TransientError
from tenancy.payments.simulator import encode_form
from tenancy.runbook.audit_schedule import ScheduledAudit
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Finding
from tenancy.runbook.findings_index import AuditTrigger

from helpers import BrokenTenantStore, ManualClock, make_settings, pay, work


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def services(tmp_path: Path, clock: ManualClock) -> Iterator[Services]:
    built = build(make_settings(tmp_path / "home", payfast_mode="offline", retry_max_attempts=1), clock=clock)
    yield built
    built.close()


def finding_of(services: Services, transaction_id: str) -> str | None:
    entry = services.findings_index.get(transaction_id)
    return entry.finding if entry else None


def test_a_purchase_is_judged_when_paid_and_again_when_provisioned(services: Services) -> None:
    transaction_id = pay(services, "ada@example.com")

    paid = services.findings_index.get(transaction_id)
    assert paid is not None
    assert (paid.finding, paid.job_status, paid.email) == ("in_progress", "queued", "ada@example.com")
    assert services.findings_index.count_by_finding() == {"in_progress": 1}

    work(services)

    provisioned = services.findings_index.get(transaction_id)
    assert provisioned is not None
    assert (provisioned.finding, provisioned.job_status) == ("healthy", "succeeded")
    assert provisioned.tenant_id is not None
    assert provisioned.tenant_id.startswith("ten_")
    assert services.findings_index.count_by_finding() == {"healthy": 1}


def test_a_failed_run_a_redrive_and_a_repair_each_move_the_finding(services: Services) -> None:
    transaction_id = pay(services, "grace@example.com")
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))
    assert finding_of(services, transaction_id) == "provisioning_failed"

    [message] = services.runbook.dead_letters()
    assert services.runbook.redrive(message.message_id, operator="ops")
    assert finding_of(services, transaction_id) == "in_progress"

    work(services)
    assert finding_of(services, transaction_id) == "healthy"

    services.identity.delete_user("grace@example.com")  # outside the system: nobody hears of it
    assert finding_of(services, transaction_id) == "healthy"

    result = services.runbook.repair(Selector(transaction_id=transaction_id), operator="ops")
    assert result.after.finding is Finding.HEALTHY
    assert finding_of(services, transaction_id) == "healthy"
    assert services.findings_index.count_by_finding() == {"healthy": 1}


def test_a_rejected_itn_is_judged_but_a_duplicate_changes_nothing(services: Services, clock: ManualClock) -> None:
    rejected = pay(services, "eve@example.com", amount="1.00")
    assert finding_of(services, rejected) == "payment_not_complete"
    paid = pay(services, "bob@example.com")
    before = services.findings_index.get(paid)

    clock.advance(minutes=1)
    [payment] = services.ledger.find(transaction_id=paid)
    again = services.intake.receive(encode_form(payment.fields), "197.97.145.145")

    assert again.verdict is PaymentVerdict.DUPLICATE
    assert services.findings_index.get(paid) == before  # not even judged again


def test_the_full_audit_catches_what_changed_outside_the_system_and_says_when_it_ran(
    services: Services, clock: ManualClock
) -> None:
    healthy, broken = pay(services, "ann@example.com"), pay(services, "ben@example.com")
    work(services)
    services.identity.delete_user("ben@example.com")
    assert services.findings_index.last_audit() is None

    clock.advance(hours=2)
    report = services.auditor.run(since=clock.now() - timedelta(days=7), trigger=AuditTrigger.CLI)

    assert [case.diagnosis.transaction_id for case in report.cases] == [broken]
    assert finding_of(services, broken) == "identity_user_missing"
    assert finding_of(services, healthy) == "healthy"
    assert services.findings_index.count_by_finding() == {"healthy": 1, "identity_user_missing": 1}
    run = services.findings_index.last_audit()
    assert run is not None
    assert (run.trigger, run.purchases, run.findings) == ("cli", 2, 1)
    assert run.finished_at == format_timestamp(clock.now())


def test_a_tenant_an_operator_made_by_hand_is_found_by_the_audit_then_by_each_change_without_a_scan(
    services: Services, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    transaction_id = pay(services, "hal@example.com")
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))
    stamp = format_timestamp(clock.now())
    hand_made = Tenant(  # RB-001 4.3: a new tenant id, the purchase named in its billing
        tenant_id="ten_NEWID",
        owner_user_id="",
        name="Hal's sites",
        plan="professional",
        status=TenantStatus.ACTIVE,
        limits=services.plans.get("professional").limits,
        usage=Usage(sites_count=0, generations_this_month=0, storage_used_mb=0),
        storage_prefix=storage_prefix_for("ten_NEWID"),
        billing=Billing(transaction_id, invoice_number_for(transaction_id)),
        created_at=stamp,
        updated_at=stamp,
    )
    services.tenants.put(hand_made)

    clock.advance(hours=1)
    services.auditor.run(since=clock.now() - timedelta(days=7), trigger=AuditTrigger.CLI)
    audited = services.findings_index.get(transaction_id)
    assert audited is not None
    assert audited.tenant_id == "ten_NEWID"

    def scanning(transaction_id: str) -> None:
        raise AssertionError("the recorder looked for the tenant by scanning the tenants")

    # Each change judges the purchase again by key: the hand-made tenant is still its tenant.
    monkeypatch.setattr(services.tenants, "find_by_transaction", scanning)
    clock.advance(minutes=5)
    again = services.findings_recorder.record(transaction_id)

    assert again is not None
    assert (again.finding, again.tenant_id) == (audited.finding, "ten_NEWID")
    assert again.classified_at > audited.classified_at


def test_an_open_entry_whose_purchase_vanished_is_judged_again_by_the_audit(services: Services) -> None:
    services.findings_index.put(
        IndexedPurchase("TXN-GONE", "identity_user_missing", "2026-01-17T00:00:00Z", "2026-01-17T00:00:00Z")
    )

    services.auditor.run(since=services.clock.now() - timedelta(days=7), trigger=AuditTrigger.CONSOLE)

    assert finding_of(services, "TXN-GONE") == "payment_not_found"
    assert services.findings_index.count_by_finding() == {"payment_not_found": 1}


def test_a_purchase_the_stores_cannot_answer_for_keeps_its_entry_and_nothing_fails(services: Services) -> None:
    transaction_id = pay(services, "kim@example.com")

    class Unreachable:
        def get(self, tenant_id: str) -> None:
            raise TransientError("throttled")

        def find_by_transaction(self, transaction_id: str) -> None:
            raise TransientError("throttled")

    cut_off = dataclasses.replace(services, tenants=Unreachable())  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        cut_off.findings_recorder.changed(transaction_id)

    assert finding_of(services, transaction_id) == "in_progress"
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == ["findings_index_not_updated"]


def test_the_schedule_audits_when_none_ran_then_once_an_interval(services: Services, clock: ManualClock) -> None:
    schedule = ScheduledAudit(services.auditor, services.findings_index, clock, timedelta(hours=168))
    pay(services, "lee@example.com")
    work(services)

    assert schedule.due()
    first = schedule.run_if_due()
    assert first is not None
    assert first.totals.transactions == 1
    assert services.findings_index.last_audit().trigger == "schedule"  # type: ignore[union-attr]

    clock.advance(hours=167)
    assert schedule.run_if_due() is None
    clock.advance(hours=1)
    assert schedule.run_if_due() is not None


def test_a_failed_scheduled_audit_is_logged_and_tried_again_a_quarter_of_an_hour_later(
    services: Services, clock: ManualClock
) -> None:
    class Failing:
        def run(self, **_arguments: object) -> None:
            raise TransientError("database busy")

    schedule = ScheduledAudit(Failing(), services.findings_index, clock, timedelta(hours=168))  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        assert schedule.run_if_due() is None

    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == ["scheduled_audit_failed"]
    assert not schedule.due()
    clock.advance(minutes=15)
    assert schedule.due()


def test_an_audit_a_killed_process_left_is_claimed_so_a_restarted_one_waits_its_quarter_of_an_hour(
    services: Services, clock: ManualClock
) -> None:
    class Killed:
        def run(self, **_arguments: object) -> None:
            raise KeyboardInterrupt  # stands for the SIGKILL: nothing after it runs, nothing is logged

    pay(services, "kit@example.com")
    work(services)
    first = ScheduledAudit(Killed(), services.findings_index, clock, timedelta(hours=168))  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        first.run_if_due()

    # The process started again, and a second one beside it: neither audits while the claim holds.
    restarted = ScheduledAudit(services.auditor, services.findings_index, clock, timedelta(hours=168))
    beside = ScheduledAudit(services.auditor, services.findings_index, clock, timedelta(hours=168))
    clock.advance(minutes=14)
    assert restarted.run_if_due() is None
    assert beside.run_if_due() is None
    assert services.findings_index.last_audit() is None

    clock.advance(minutes=1)
    assert restarted.run_if_due() is not None
    assert beside.run_if_due() is None  # audited: not due for a week
    audit = services.findings_index.last_audit()
    assert audit is not None
    assert (audit.trigger, audit.purchases) == ("schedule", 1)


def test_a_busy_store_while_asking_whether_an_audit_is_due_is_a_failed_check_not_a_crash(
    services: Services, clock: ManualClock
) -> None:
    class BusyIndex:
        def last_audit(self) -> None:
            raise TransientError("database busy")

    schedule = ScheduledAudit(services.auditor, BusyIndex(), clock, timedelta(hours=168))  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        assert schedule.run_if_due() is None

    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == ["scheduled_audit_failed"]


# --- The counts SQLite keeps by trigger -------------------------------------------------------


def test_counts_follow_rows_written_by_hand_and_an_older_database_is_counted_when_opened(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path / "home", payfast_mode="offline"))
    try:
        paid = [pay(services) for _ in range(3)]
        work(services)
        assert services.journal.count_by_status() == {JobStatus.SUCCEEDED: 3}
    finally:
        services.close()
    path = tmp_path / "home" / "tenancy.db"
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM provisioning WHERE transaction_id = ?", (paid[0],))  # an operator's SQL
        tally = "SELECT name, count FROM tally WHERE name LIKE 'jobs:%' AND count > 0"
        counted = dict(connection.execute(tally).fetchall())
        assert counted == {"jobs:succeeded": 2}
        # A database from before the tallies: no tallies, no triggers.
        connection.execute("DROP TABLE tally")
        connection.execute("DROP TABLE minutely")
        for (trigger,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            connection.execute(f"DROP TRIGGER {trigger}")
    connection.close()

    reopened = build(make_settings(tmp_path / "home", payfast_mode="offline"))
    try:
        assert reopened.journal.count_by_status() == {JobStatus.SUCCEEDED: 2}
        assert sum(reopened.ledger.paid_by_hour("2000-01-01T00:00:00Z").values()) == 3
        assert sum(reopened.journal.succeeded_by_hour("2000-01-01T00:00:00Z").values()) == 2
    finally:
        reopened.close()
