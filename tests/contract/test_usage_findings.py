"""The runbook's `usage_over_limit` on both backends, through `services.runbook` and the audit as
the CLI and the console use them: usage above the plan's limit (here an operator's hand edit) is
named with its evidence, repaired by nothing and counted with the healthy; a generation count is
judged in the subscription's current paid period, as the service API judges it, so the count of
the period before a renewal no longer counts."""

from __future__ import annotations

from datetime import UTC, datetime

from lifecycle_support import Subscriber, payfast, services, subscriber
from tenancy.bootstrap import Services
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import PaymentVerdict
from tenancy.domain.usage import Metric
from tenancy.runbook.audit import run_audit
from tenancy.runbook.evidence import CaseFile, Selector
from tenancy.runbook.findings import Evidence, Finding, Store
from tenancy.runbook.findings_index import AuditTrigger

from helpers import work

__all__ = ["payfast", "services", "subscriber"]  # the fixtures this suite uses, from lifecycle_support

BEGINNING = datetime(2020, 1, 1, tzinfo=UTC)


def over_limit_evidence(evidence: tuple[Evidence, ...]) -> list[dict[str, object]]:
    return [dict(item.fields) for item in evidence if item.store is Store.TENANTS and "metric" in item.fields]


def audited(services: Services) -> dict[str, Finding]:
    """Each purchase's finding as the audit judges it (its batched look-ups, not diagnose's)."""
    findings: dict[str, Finding] = {}

    def classified(case: CaseFile, finding: Finding) -> None:
        findings[case.transaction_id or ""] = finding

    run_audit(services.evidence_stores, since=BEGINNING, now=services.clock.now(), classified=classified)
    return findings


def test_sites_above_the_plan_are_named_with_evidence_and_never_repaired(
    services: Services, subscriber: Subscriber
) -> None:
    selector = Selector(tenant_id=subscriber.tenant_id)
    assert services.runbook.diagnose(selector).healthy
    # professional allows 5 sites; the count is set by hand, as `tenancy usage set` does.
    services.usage.correct(subscriber.tenant_id, Metric.SITES, 7, reason="imported by hand", operator="alice")

    diagnosis = services.runbook.diagnose(selector)
    result = services.runbook.repair(selector, operator="bob")

    assert diagnosis.finding is Finding.USAGE_OVER_LIMIT
    assert over_limit_evidence(diagnosis.evidence) == [
        {"metric": "sites", "used": 7, "limit": 5, "period_start": "2026-12-06", "period_end": "2027-01-06"}
    ]
    assert "sites 7 of 5" in diagnosis.summary
    assert (diagnosis.repairable, diagnosis.escalate_to) == (False, None)
    assert result.outcome == "not_repairable"
    tenant = services.tenants.get(subscriber.tenant_id)
    assert tenant is not None
    assert tenant.usage.sites_count == 7  # nothing was changed


def test_the_audit_counts_usage_over_the_limit_with_the_healthy_and_indexes_it(
    services: Services, subscriber: Subscriber
) -> None:
    services.usage.correct(subscriber.tenant_id, Metric.STORAGE_MB, 900, reason="hand edit", operator="alice")

    report = services.auditor.run(since=BEGINNING, trigger=AuditTrigger.CLI)

    # No provisioning failure: no case in the report, counted with the healthy.
    assert (report.totals.findings, report.totals.healthy) == (0, 1)
    # Yet the console's jobs list, filtered by the finding, finds it.
    indexed = services.findings_index.with_finding(Finding.USAGE_OVER_LIMIT.value)
    assert [entry.transaction_id for entry in indexed] == [subscriber.transaction_id]


def test_a_generation_count_kept_for_an_earlier_period_counts_as_zero(
    services: Services, subscriber: Subscriber
) -> None:
    selector = Selector(tenant_id=subscriber.tenant_id)
    at = format_timestamp(services.clock.now())
    # professional allows 100 generations a period. The subscriber's period is its paid one,
    # 2026-12-06 to 2027-01-06: 150 kept for the one before, and nothing recorded since.
    services.usage_store.correct(subscriber.tenant_id, Metric.GENERATIONS, 150, "2026-11-06", at)
    earlier = services.runbook.diagnose(selector)
    audited_earlier = audited(services)
    # The same count in this period (as `tenancy usage set` writes it).
    services.usage.correct(subscriber.tenant_id, Metric.GENERATIONS, 150, reason="hand edit", operator="alice")
    current = services.runbook.diagnose(selector)

    assert earlier.finding is Finding.HEALTHY
    assert audited_earlier[subscriber.transaction_id] is Finding.HEALTHY
    assert current.finding is Finding.USAGE_OVER_LIMIT
    assert over_limit_evidence(current.evidence) == [
        {"metric": "generations", "used": 150, "limit": 100, "period_start": "2026-12-06", "period_end": "2027-01-06"}
    ]
    # The audit's batched look-ups read the subscription too: judged in the calendar month
    # (from 2026-12-01), this count would be an earlier period's, and zero.
    assert audited(services)[subscriber.transaction_id] is Finding.USAGE_OVER_LIMIT


def test_a_renewal_starts_a_period_in_which_the_last_one_s_generations_are_not_over(
    services: Services, subscriber: Subscriber
) -> None:
    selector = Selector(tenant_id=subscriber.tenant_id)
    services.usage.correct(subscriber.tenant_id, Metric.GENERATIONS, 150, reason="hand edit", operator="alice")
    assert services.runbook.diagnose(selector).finding is Finding.USAGE_OVER_LIMIT

    assert subscriber.itn().verdict is PaymentVerdict.ACCEPTED  # a renewal: paid through 2027-02-06
    work(services)

    assert services.runbook.diagnose(selector).finding is Finding.HEALTHY
    assert services.usage.entitlements(subscriber.tenant_id).used(Metric.GENERATIONS) == 0
