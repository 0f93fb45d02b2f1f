"""The rule about a tenant's usage (issue 16): usage above its plan's limit, which nothing repairs."""

from __future__ import annotations

from tenancy.domain.usage import Entitlements, period_for
from tenancy.runbook.evidence import CaseFile
from tenancy.runbook.findings import Evidence, Finding, NextStep, Store
from tenancy.runbook.rules.base import Context, Found, rule

__all__ = ["usage_over_limit"]


@rule("USE001", Finding.USAGE_OVER_LIMIT)
def usage_over_limit(case: CaseFile, context: Context) -> Found | None:
    """A tenant its people may use has used more of a metric than its plan allows: a downgrade
    lowered the limit under what was used, or someone edited the usage by hand. The usage is
    judged as the service API judges it, in the current period (a generation count kept for an
    earlier one is zero). Nothing is repaired (the usage is the application's truth, and a limit
    is the plan's) and no provisioning failed: new usage of the metric is refused until it comes
    down or the plan goes up. It comes last before healthy, so it never hides a failure."""
    tenant = case.tenant
    if tenant is None or not tenant.status.has_access:
        return None
    # The case's subscription is the one its tenant id names, as the service API reads it.
    entitlements = Entitlements.of(tenant, period_for(case.subscription, context.now))
    over = entitlements.over_limit()
    if not over:
        return None
    period = entitlements.period
    evidence = tuple(
        Evidence(
            Store.TENANTS,
            {
                "metric": metric.value,
                "used": entitlements.used(metric),
                "limit": entitlements.limit(metric),
                "period_start": period.start.isoformat(),
                "period_end": period.end.isoformat(),
            },
            f"{metric.value}: {entitlements.used(metric)} used of {entitlements.limit(metric)} {metric.unit} "
            f"allowed by plan {tenant.plan} (period {period.start.isoformat()} to {period.end.isoformat()})",
        )
        for metric in over
    )
    names = ", ".join(f"{metric.value} {entitlements.used(metric)} of {entitlements.limit(metric)}" for metric in over)
    return Found(
        f"Tenant {tenant.tenant_id} uses more than its plan {tenant.plan} allows: {names}.",
        NextStep(
            "Nothing to repair: ask the owner to bring the usage down (remove sites or files) or to upgrade; "
            "until then new usage of it is refused.",
            usage_over_limit_of=tenant.tenant_id,
        ),
        evidence=evidence,
    )
