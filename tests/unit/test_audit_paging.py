"""The weekly audit reads the stores page by page: every purchase of the window is classified
exactly once, whichever store brings it into the window and whatever the page size, and the
report is the same."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_audit import back_in_time, email_of, provision, seed_broken_team, seed_every_branch, send_itn

from tenancy.bootstrap import Services, build
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import RepairRecord
from tenancy.runbook import audit as audit_module
from tenancy.runbook.audit import AuditReport, run_audit
from tenancy.runbook.evidence import CaseFile
from tenancy.runbook.findings import Finding

from helpers import ManualClock, make_settings

MONTH = timedelta(days=30)
OLD_PAID_AGAIN = "TXN-OLD-PAID-AGAIN"  # provisioned a month ago, an ITN for it this week
OLD_RETENANTED = "TXN-OLD-RETENANTED"  # its tenant deleted, then written again by hand this week
OLD_HAND_TENANT = "TXN-OLD-HAND"  # a second tenant, ten_HANDNEW, written by hand this week
TRAIL_ONLY = "TXN-TRAIL-ONLY"  # no job, no ITN, no tenant: only a repair this week names it
OLD_UNTOUCHED = "TXN-OLD-UNTOUCHED"  # nothing this week: outside the window
OLD_TEAM = "TXN-OLD-TEAM"  # provisioned a month ago; a member of its team cannot sign in now


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build(make_settings(tmp_path / "home", payfast_mode="offline"))
    yield built
    built.close()


def seed_the_window_s_ways_in(services: Services) -> None:
    """Old purchases that this week's ITN, tenant or trail entry, or a team member who cannot sign
    in, brings into the window, and one that nothing brings in."""
    month_ago = back_in_time(services, MONTH)
    now = format_timestamp(services.clock.now())
    for transaction_id in (OLD_PAID_AGAIN, OLD_RETENANTED, OLD_HAND_TENANT, OLD_UNTOUCHED, OLD_TEAM):
        provision(month_ago, transaction_id, email_of(transaction_id))
    seed_broken_team(month_ago, tenant_id_for(OLD_TEAM), format_timestamp(month_ago.clock.now()))
    send_itn(services, OLD_PAID_AGAIN, email_of(OLD_PAID_AGAIN))
    own = services.tenants.get(tenant_id_for(OLD_RETENANTED))
    assert own is not None
    services.tenants.delete(own.tenant_id)
    services.tenants.put(dataclasses.replace(own, created_at=now, updated_at=now))
    other = services.tenants.get(tenant_id_for(OLD_HAND_TENANT))
    assert other is not None
    services.tenants.put(dataclasses.replace(other, tenant_id="ten_HANDNEW", created_at=now, updated_at=now))
    services.trail.record(
        RepairRecord(now, "ops", TRAIL_ONLY, None, None, "provisioning_failed", (), {}, {}, "repaired")
    )


def audited(
    services: Services, page: int, monkeypatch: pytest.MonkeyPatch, now: datetime | None = None
) -> tuple[AuditReport, Counter[str]]:
    monkeypatch.setattr(audit_module, "_PAGE", page)
    seen: Counter[str] = Counter()

    def classified(case: CaseFile, _finding: Finding) -> None:
        seen[case.transaction_id or ""] += 1

    now = now or services.clock.now()
    report = run_audit(
        services.evidence_stores, since=now - timedelta(days=7), now=now, trail=services.trail, classified=classified
    )
    return report, seen


def test_every_purchase_the_window_holds_is_classified_once_whichever_store_brings_it_in(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_every_branch(services)
    seed_the_window_s_ways_in(services)

    report, seen = audited(services, 1000, monkeypatch)

    assert max(seen.values()) == 1
    assert sum(seen.values()) == report.totals.transactions
    assert {OLD_PAID_AGAIN, OLD_RETENANTED, OLD_HAND_TENANT, TRAIL_ONLY, OLD_TEAM} <= set(seen)
    assert OLD_UNTOUCHED not in seen
    # seed_week's, the branches' own (not ten_HANDMADE, older; the subscribed, the five lifecycle
    # ones, the one over its limits, the broken team and the team whose member lost its users
    # record included), and the two
    assert report.totals.tenants == 6 + 19 + 2


@pytest.mark.parametrize("page", [1, 3, 7])
def test_the_report_is_the_same_whatever_the_page_size(
    services: Services, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    seed_every_branch(services)
    seed_the_window_s_ways_in(services)
    now = services.clock.now()  # one moment for both: the cases' ages must not differ by a tick
    whole, _ = audited(services, 1000, monkeypatch, now)

    paged, seen = audited(services, page, monkeypatch, now)

    assert max(seen.values()) == 1
    assert paged.totals == whole.totals
    assert paged.cases == whole.cases
    assert paged.in_progress == whole.in_progress
    assert paged.attempts == whole.attempts


def test_a_purchase_classified_is_told_with_its_case_healthy_or_not(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_every_branch(services)
    told: dict[str, Finding] = {}

    def classified(case: CaseFile, finding: Finding) -> None:
        told[case.transaction_id or ""] = finding

    now = services.clock.now()
    report = run_audit(services.evidence_stores, since=now - timedelta(days=60), now=now, classified=classified)

    assert len(told) == report.totals.transactions
    # A tenant deleted or held by its lifecycle is counted with the healthy: none is a failure.
    quiet = {finding for finding in Finding if not finding.is_failure} - {Finding.IN_PROGRESS}
    assert sum(finding in quiet for finding in told.values()) == report.totals.healthy
    assert {t: f for t, f in told.items() if f.is_failure} == {
        case.diagnosis.transaction_id: case.finding for case in report.cases
    }


@pytest.mark.parametrize(("offset", "audited_count"), [(-0.5, 1), (0.0, 1), (0.5, 0), (1.0, 0)])
def test_the_window_starts_at_its_exact_moment_not_at_its_second(
    tmp_path: Path, offset: float, audited_count: int
) -> None:
    clock = ManualClock()  # stands still: the job, the ITN-less saga and the tenant share one second
    services = build(make_settings(tmp_path / "edge", payfast_mode="offline"), clock=clock)
    try:
        provision(services, "TXN-EDGE", email_of("TXN-EDGE"))
        created = parse_timestamp(format_timestamp(clock.now()))  # whole seconds, as records keep times

        report = run_audit(
            services.evidence_stores, since=created + timedelta(seconds=offset), now=created + timedelta(minutes=5)
        )
    finally:
        services.close()

    assert report.totals.transactions == audited_count
    assert report.totals.tenants == audited_count
