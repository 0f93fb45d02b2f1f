"""RB-001 section 7's weekly audit is of *attempts*: the failed attempts, dead-letters and repairs
of the window are reported even when they have healed, each with where it stands now. Purchases
run through the real intake, worker, repair and redrive; the audit reads the journal, the trail
and the DLQ."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tenancy.advice import next_action
from tenancy.bootstrap import Services, build
from tenancy.cli.audit import render_markdown
from tenancy.domain.clock import utc_now
from tenancy.domain.model import JobStatus, RepairRecord
from tenancy.ports import RepairTrail
from tenancy.runbook.attempts import AttemptOutcome, history_of
from tenancy.runbook.audit import AuditReport, run_audit
from tenancy.runbook.audit_export import render_csv, verdict_line
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Finding

from helpers import BrokenTenantStore, FlakyTenantStore, make_settings, pay, work

WEEK = timedelta(days=7)
FIVE_ATTEMPTS = 5


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build(make_settings(tmp_path / "home", payfast_mode="offline", retry_max_attempts=FIVE_ATTEMPTS))
    yield built
    built.close()


@dataclasses.dataclass(frozen=True)
class ShiftedClock:
    ago: timedelta

    def now(self) -> datetime:
        return utc_now() - self.ago


def retried_then_provisioned(services: Services, failures: int) -> str:
    transaction_id = pay(services)
    work(dataclasses.replace(services, tenants=FlakyTenantStore(services.tenants, failures)), rounds=10)
    assert services.runbook.diagnose(Selector(transaction_id=transaction_id)).healthy
    return transaction_id


def dead_lettered(services: Services) -> str:
    transaction_id = pay(services)
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)), rounds=10)
    job = services.journal.get(transaction_id)
    assert job is not None
    assert (job.status, job.attempts) == (JobStatus.DEAD_LETTERED, FIVE_ATTEMPTS)
    return transaction_id


def audit(services: Services, window: timedelta = WEEK, trail: RepairTrail | None = None) -> AuditReport:
    now = services.clock.now()
    return run_audit(services.evidence_stores, since=now - window, now=now, trail=trail or services.trail)


def test_a_day_of_nine_failed_attempts_a_dead_letter_and_a_repair_is_reported_after_it_healed(
    services: Services,
) -> None:
    retried = retried_then_provisioned(services, failures=4)  # four failures, then the fifth run worked
    repaired = dead_lettered(services)  # five failures, parked in the DLQ ...
    result = services.runbook.repair(Selector(transaction_id=repaired), operator="alice")  # ... then repaired
    assert result.outcome == "repaired"

    report = audit(services)

    assert not report.has_findings  # nothing is open: the exit code stays 0
    totals = report.totals.as_document()
    assert {key: totals[key] for key in ("findings", "failed_attempts", "dead_lettered", "repairs", "redrives")} == {
        "findings": 0,
        "failed_attempts": 9,
        "dead_lettered": 1,
        "repairs": 1,
        "redrives": 0,
    }
    rows = {row.transaction_id: row for row in report.attempts}
    assert set(rows) == {retried, repaired}
    assert (rows[retried].failed_attempts, rows[retried].dead_lettered, rows[retried].repairs) == (4, False, 0)
    assert (rows[repaired].failed_attempts, rows[repaired].dead_lettered, rows[repaired].repairs) == (5, True, 1)
    assert rows[repaired].last_error == "transient: ProvisionedThroughputExceededException (after 5 attempts)"
    assert {row.outcome for row in report.attempts} == {AttemptOutcome.HEALED}
    assert rows[repaired].history == "5 failed attempts, dead-lettered, 1 repair"

    verdict = verdict_line(report)
    assert verdict == (
        "No open findings in this window: 9 failed attempts, 1 dead-lettered purchase and 1 repair in this window,"
        " over 2 purchases: 2 healed."
    )
    markdown = render_markdown(report)
    assert "No failed provisioning attempts" not in markdown
    assert verdict in markdown
    assert "| Failed attempts | 9 |" in markdown
    assert f"| {repaired} | {services.journal.get(repaired).email} | 5 | yes | 1 | 0 |" in markdown  # type: ignore[union-attr]
    document = json.loads(json.dumps(report.as_document(next_action)))
    assert Counter(row["outcome"] for row in document["attempts"]) == {"healed": 2}
    assert document["totals"]["failed_attempts"] == 9
    csv_rows = {row["transaction_id"]: row for row in csv.DictReader(io.StringIO(render_csv(report)))}
    assert set(csv_rows) == {retried, repaired}
    assert {
        key: csv_rows[repaired][key] for key in ("finding", "outcome", "failed_attempts", "dead_lettered", "repairs")
    } == {
        "finding": "healthy",
        "outcome": "healed",
        "failed_attempts": "5",
        "dead_lettered": "yes",
        "repairs": "1",
    }
    assert csv_rows[repaired]["summary"] == "5 failed attempts, dead-lettered, 1 repair; healed now"


def test_a_redriven_job_keeps_the_attempts_the_redrive_wiped(services: Services) -> None:
    transaction_id = dead_lettered(services)
    [message] = services.runbook.dead_letters()
    assert services.runbook.redrive(message.message_id, operator="bob")
    work(services)

    [row] = audit(services).attempts

    job = services.journal.get(transaction_id)
    assert job is not None
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)  # the journal alone has forgotten
    assert (row.transaction_id, row.failed_attempts, row.dead_lettered, row.redrives) == (
        transaction_id, FIVE_ATTEMPTS, True, 1
    )  # fmt: skip
    assert row.outcome is AttemptOutcome.HEALED


def test_open_and_retrying_purchases_are_reported_with_their_state_now(services: Services) -> None:
    parked = dead_lettered(services)
    retrying = pay(services)
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)), rounds=1)

    report = audit(services)

    rows = {row.transaction_id: row for row in report.attempts}
    assert (rows[parked].outcome, rows[parked].finding, rows[parked].now) == (
        AttemptOutcome.OPEN, Finding.PROVISIONING_FAILED, "open: provisioning_failed"
    )  # fmt: skip
    assert (rows[retrying].outcome, rows[retrying].failed_attempts, rows[retrying].now) == (
        AttemptOutcome.IN_PROGRESS, 1, "in progress"
    )  # fmt: skip
    assert verdict_line(report) == "1 open finding in this window."
    [open_row] = [row for row in csv.DictReader(io.StringIO(render_csv(report))) if row["transaction_id"] == parked]
    assert (open_row["finding"], open_row["outcome"], open_row["failed_attempts"]) == (
        "provisioning_failed",
        "open",
        "5",
    )


def test_failures_that_healed_before_the_window_are_not_the_week_s(services: Services) -> None:
    ten_days_ago = dataclasses.replace(services, clock=ShiftedClock(timedelta(days=10)))
    old = pay(ten_days_ago)
    work(dataclasses.replace(ten_days_ago, tenants=FlakyTenantStore(services.tenants, 2)), rounds=10)
    assert services.runbook.diagnose(Selector(transaction_id=old)).healthy

    assert audit(services).attempts == ()
    assert verdict_line(audit(services)) == "No failed provisioning attempts in this window."
    [row] = audit(services, window=timedelta(days=11)).attempts
    assert (row.transaction_id, row.failed_attempts) == (old, 2)


def test_a_repair_this_week_of_a_purchase_made_earlier_brings_it_into_the_audit(services: Services) -> None:
    ten_days_ago = dataclasses.replace(services, clock=ShiftedClock(timedelta(days=10)))
    old = pay(ten_days_ago)
    work(dataclasses.replace(ten_days_ago, tenants=BrokenTenantStore(services.tenants)), rounds=10)

    services.runbook.repair(Selector(transaction_id=old), operator="carol")
    report = audit(services)

    [row] = report.attempts
    assert (row.transaction_id, row.failed_attempts, row.dead_lettered, row.repairs, row.outcome) == (
        old, FIVE_ATTEMPTS, True, 1, AttemptOutcome.HEALED
    )  # fmt: skip
    assert report.totals.healthy == 1  # it was classified as diagnose would


def test_a_trail_entry_from_before_attempts_were_kept_is_read_from_its_evidence(services: Services) -> None:
    transaction_id = dead_lettered(services)
    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))
    # What a repair recorded before the trail kept the attempts: the diagnosis, nothing more.
    entry = RepairRecord(
        at="2026-01-01T00:00:00Z", operator="old", transaction_id=transaction_id, tenant_id=diagnosis.tenant_id,
        email=diagnosis.email, finding=diagnosis.finding.value, actions=(), before=diagnosis.as_document(next_action),
        after={}, outcome="repaired",
    )  # fmt: skip

    history = history_of(entry)

    assert (history.cleared, history.dead_lettered) == (FIVE_ATTEMPTS, True)
    assert history.last_error == "transient: ProvisionedThroughputExceededException (after 5 attempts)"
    mismatch = dataclasses.replace(entry, finding="tenant_id_mismatch")  # such a repair reruns nothing
    assert history_of(mismatch).cleared == 0


class CountingTrail:
    def __init__(self, real: RepairTrail) -> None:
        self._real = real
        self.calls: list[dict[str, Any]] = []

    def entries(self, **subjects: Any) -> list[RepairRecord]:
        self.calls.append(subjects)
        return self._real.entries(**subjects)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the audit called trail.{name}()")


def test_the_audit_reads_the_trail_once(services: Services) -> None:
    for _ in range(3):
        transaction_id = dead_lettered(services)
        services.runbook.repair(Selector(transaction_id=transaction_id), operator="dave")
    trail = CountingTrail(services.trail)

    report = audit(services, trail=trail)  # type: ignore[arg-type]

    assert trail.calls == [{}]
    assert report.totals.repairs == 3
