"""The FindingsIndex port, the same assertions on SQLite and on DynamoDB (moto): entries replace
each other, the counts by finding follow every change exactly (concurrent writers included), a
finding lists its purchases newest first, and the last full audit reads back."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from tenancy.domain.model import AuditRun, IndexedPurchase
from tenancy.ports import FindingsIndex

from aws_support import Backend


@pytest.fixture
def index(backend: Backend) -> FindingsIndex:
    return backend.services.findings_index


def entry(transaction_id: str = "TXN-1", finding: str = "healthy", **changes: object) -> IndexedPurchase:
    values: dict[str, object] = {
        "transaction_id": transaction_id,
        "finding": finding,
        "classified_at": "2026-12-06T10:00:00Z",
        "changed_at": "2026-12-06T09:00:00Z",
        "email": "ada@example.com",
        "tenant_id": "ten_abc",
        "job_status": "succeeded",
    }
    values.update(changes)
    return IndexedPurchase(**values)  # type: ignore[arg-type]


def test_an_entry_reads_back_whole_and_a_second_replaces_it(index: FindingsIndex) -> None:
    first = entry()
    jobless = entry("TXN-2", "provisioning_failed", email=None, tenant_id=None, job_status=None)
    index.put(first)
    index.put(jobless)

    assert index.get("TXN-1") == first
    assert index.get("TXN-2") == jobless
    assert index.get("TXN-3") is None

    moved = dataclasses.replace(first, finding="identity_user_missing", changed_at="2026-12-06T11:00:00Z")
    index.put(moved)

    assert index.get("TXN-1") == moved
    assert index.get_many(["TXN-1", "TXN-2", "TXN-3", "TXN-1"]) == {"TXN-1": moved, "TXN-2": jobless}


def test_the_counts_follow_every_change_of_finding(index: FindingsIndex) -> None:
    assert index.count_by_finding() == {}

    index.put(entry("TXN-1", "in_progress"))
    index.put(entry("TXN-2", "in_progress"))
    index.put(entry("TXN-3", "healthy"))
    assert index.count_by_finding() == {"in_progress": 2, "healthy": 1}

    index.put(entry("TXN-1", "healthy"))
    index.put(entry("TXN-2", "welcome_email_missing"))
    index.put(entry("TXN-2", "welcome_email_missing", classified_at="2026-12-06T12:00:00Z"))  # same finding
    assert index.count_by_finding() == {"healthy": 2, "welcome_email_missing": 1}


def test_a_finding_lists_its_purchases_most_recently_changed_first(index: FindingsIndex) -> None:
    for number, changed in ((1, "09:00"), (2, "11:00"), (3, "10:00")):
        index.put(entry(f"TXN-{number}", "identity_user_missing", changed_at=f"2026-12-06T{changed}:00Z"))
    index.put(entry("TXN-4", "healthy"))

    listed = index.with_finding("identity_user_missing")
    assert [found.transaction_id for found in listed] == ["TXN-2", "TXN-3", "TXN-1"]
    newest_two = index.with_finding("identity_user_missing", limit=2)
    assert [found.transaction_id for found in newest_two] == ["TXN-2", "TXN-3"]
    assert index.with_finding("needs_review") == []


def test_concurrent_writers_of_one_purchase_leave_the_counts_exact(index: FindingsIndex) -> None:
    index.put(entry("TXN-1", "in_progress"))
    findings = ["healthy", "welcome_email_missing"] * 4
    start = threading.Barrier(len(findings))

    def write(finding: str) -> None:
        start.wait()
        index.put(entry("TXN-1", finding))

    threads = [threading.Thread(target=write, args=(finding,)) for finding in findings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    last = index.get("TXN-1")
    assert last is not None
    assert index.count_by_finding() == {last.finding: 1}


def test_the_last_audit_reads_back(index: FindingsIndex) -> None:
    assert index.last_audit() is None
    first = AuditRun("2026-12-06T10:00:00Z", "2026-12-06T10:00:09Z", "schedule", "0001-01-01T00:00:00Z", 120, 2)
    second = dataclasses.replace(first, started_at="2026-12-06T11:00:00Z", finished_at="2026-12-06T11:00:05Z",
                                 trigger="cli", findings=0)  # fmt: skip
    index.record_audit(first)
    index.record_audit(second)

    assert index.last_audit() == second


def test_purchases_without_a_job_are_listed_newest_first_less_the_findings_excluded(index: FindingsIndex) -> None:
    index.put(entry("TXN-1", "provisioning_failed", job_status=None, changed_at="2026-12-06T09:00:00Z"))
    index.put(entry("TXN-2", "payment_not_complete", job_status=None, changed_at="2026-12-06T11:00:00Z"))
    index.put(entry("TXN-3", "in_progress", job_status=None, changed_at="2026-12-06T12:00:00Z"))
    index.put(entry("TXN-4", "identity_user_missing", changed_at="2026-12-06T13:00:00Z"))  # has a job

    listed = index.without_job(("healthy", "in_progress"))

    assert [found.transaction_id for found in listed] == ["TXN-2", "TXN-1"]
    assert [found.transaction_id for found in index.without_job(())] == ["TXN-3", "TXN-2", "TXN-1"]
    assert [found.transaction_id for found in index.without_job((), limit=1)] == ["TXN-3"]


def test_the_scheduled_audit_is_claimed_by_one_at_a_time_until_its_claim_runs_out(index: FindingsIndex) -> None:
    assert index.claim_audit("2026-12-06T10:00:00Z", until="2026-12-06T10:15:00Z")
    assert not index.claim_audit("2026-12-06T10:14:59Z", until="2026-12-06T10:29:59Z")
    assert index.claim_audit("2026-12-06T10:15:00Z", until="2026-12-06T10:30:00Z")

    results: list[bool] = []
    start = threading.Barrier(6)

    def claim() -> None:
        start.wait()
        results.append(index.claim_audit("2026-12-06T11:00:00Z", until="2026-12-06T11:15:00Z"))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
