"""The alert monitor reads counts and indexes instead of whole stores (what keeps /metrics cheap):
on both backends it must give the alert results a full scan of the stores (and a full audit, for
the purchases with an open finding) gives, at the window's edge too."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tenancy.bootstrap import Services
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict, ProvisioningJob
from tenancy.runbook.alerts import AlertInputs, evaluate
from tenancy.runbook.audit_schedule import BEGINNING
from tenancy.runbook.findings_index import AuditTrigger

from helpers import ManualClock

# Half a second past the minute: the alert window starts between two stored (whole-second) times.
NOW = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
# Low thresholds, so that rules fire in some mixes and not in others.
THRESHOLDS = {"alert_error_rate_min_jobs": 1, "alert_failures_threshold": 2, "alert_security_threshold": 1}


@pytest.fixture
def backend_settings() -> dict[str, Any]:
    return THRESHOLDS


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


_serial = iter(range(300000, 999999))
_SECURITY = ("signature mismatch", "source address 10.0.0.1 is not PayFast's", "PayFast did not confirm the ITN")
_FINANCE = ("merchant_id is not ours", "amount_gross 1.00 is not the plan's price", "unknown plan 'gold'")


def _minutes_ago(minutes: float) -> str:
    return format_timestamp(NOW - timedelta(minutes=minutes))


def _moment(rng: random.Random) -> str:
    """A time spread over three hours, often right at the alert window's edge (60 min ago)."""
    edge = NOW - timedelta(minutes=60)
    return rng.choice(
        [
            _minutes_ago(rng.uniform(0, 180)),
            format_timestamp(edge),  # 11:00:00, half a second before the window: outside
            format_timestamp(edge + timedelta(seconds=1)),  # 11:00:01: inside
            format_timestamp(edge - timedelta(seconds=1)),
        ]
    )


def seed_mix(services: Services, rng: random.Random, jobs: int = 80, payments: int = 60) -> None:
    """Jobs in every status with every kind of attempt count, and payments of every verdict with
    security, finance and other reasons, spread around the alert window's edge."""
    for _ in range(jobs):
        transaction_id = f"TXN-{next(_serial)}"
        updated = _moment(rng)
        created = format_timestamp(parse_timestamp(updated) - timedelta(minutes=rng.choice([0, 5, 90])))
        services.journal.create(
            ProvisioningJob(
                transaction_id=transaction_id,
                tenant_id=tenant_id_for(transaction_id),
                invoice_number=invoice_number_for(transaction_id),
                email=f"{transaction_id.lower()}@example.com",
                plan="professional",
                tenant_name="Acme",
                status=rng.choice([*JobStatus, JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]),
                created_at=created,
                updated_at=updated,
                attempts=rng.choice([0, 1, 1, 2, 3]),
            )
        )
    for number in range(payments):
        verdict = rng.choice(list(PaymentVerdict))
        reasons = (rng.choice([*_SECURITY, *_FINANCE, "missing field m_payment_id"]),)
        services.ledger.record(
            PaymentRecord(
                _moment(rng),
                "197.97.145.150",
                (),
                verdict,
                reasons if verdict is PaymentVerdict.REJECTED else (),
                pf_payment_id=str(900000 + number),
                payment_status="COMPLETE",
            ),
            None,
        )
    for _ in range(rng.randint(0, 3)):
        services.queue.send(f"TXN-{next(_serial)}")


def scanned_inputs(services: Services, now: datetime, *, count_all_payments: bool) -> AlertInputs:
    """The monitor's inputs as they were read before the counts: every job and every payment, and
    the failures a full audit of every purchase finds (which the findings index counts)."""
    audit = services.auditor.run(since=BEGINNING, trigger=AuditTrigger.CLI)
    open_failures = sum(1 for case in audit.cases if case.finding.repairable)
    since = now - timedelta(minutes=services.settings.alert_window_minutes)
    jobs: list[ProvisioningJob] = []
    by_status: Counter[JobStatus] = Counter()
    for batch in services.journal.scan():
        for job in batch:
            by_status[job.status] += 1
            if job.status is not JobStatus.SUCCEEDED or parse_timestamp(job.updated_at) >= since:
                jobs.append(job)
    payments: list[PaymentRecord] = []
    by_verdict: Counter[PaymentVerdict] = Counter()
    for batch in services.ledger.scan(since=None if count_all_payments else format_timestamp(since)):
        for payment in batch:
            by_verdict[payment.verdict] += 1
            if parse_timestamp(payment.received_at) >= since:
                payments.append(payment)
    queue_depth, dlq_depth = services.queue.depth()
    return AlertInputs(queue_depth, dlq_depth, jobs, payments, by_status, by_verdict, open_failures=open_failures)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("count_all_payments", [False, True])
def test_the_monitor_answers_as_a_full_scan_would(services: Services, seed: int, count_all_payments: bool) -> None:
    seed_mix(services, random.Random(seed))
    monitor = services.alert_monitor
    reference = scanned_inputs(services, NOW, count_all_payments=count_all_payments)

    report = monitor.check(count_all_payments=count_all_payments)

    assert report.results == evaluate(reference, monitor.thresholds, NOW)
    assert dict(report.inputs.jobs_by_status) == dict(reference.jobs_by_status)
    assert dict(report.inputs.payments_by_verdict) == dict(reference.payments_by_verdict)
    assert (report.inputs.queue_depth, report.inputs.dlq_depth) == (reference.queue_depth, reference.dlq_depth)
