"""The rules about the provisioning job and the tenant's own state: work still under way, and
purchases that wait for a person's decision."""

from __future__ import annotations

from tenancy.domain.clock import parse_timestamp
from tenancy.domain.model import JobStatus, TenantStatus
from tenancy.provisioning.worker import STALLED_AFTER
from tenancy.runbook.evidence import CaseFile, shown
from tenancy.runbook.findings import ESCALATION, Finding, NextStep
from tenancy.runbook.rules.base import IN_FLIGHT, Context, Found, owner_linked, rule

__all__ = ["in_progress", "needs_review"]

# Neither a failure nor the end of provisioning: the tenant is held or ended on purpose. A
# cancelling or past-due tenant is neither: its owner keeps full access for now.
_DELIBERATE = frozenset({TenantStatus.SUSPENDED, TenantStatus.CANCELLED})


@rule("JOB001", Finding.IN_PROGRESS)
def in_progress(case: CaseFile, context: Context) -> Found | None:
    """The job is queued, running or waiting for a retry, and a worker still has it in hand: its
    message waits in the work queue, its retry is due soon, or it moved recently. Whatever the
    other stores miss now, the worker is about to do: the only step is to wait. A job that stalled
    for longer than STALLED_AFTER is treated as lost, and the rules after this one judge it."""
    job = case.job
    if job is None or job.status not in IN_FLIGHT or not _still_moving(case, context):
        return None
    when = f"; next attempt at {job.next_attempt_at}" if job.status is JobStatus.RETRYING else ""
    return Found(
        f"Provisioning is {job.status.value} (attempt {job.attempts}){when}.",
        NextStep("Wait for the worker; diagnose again after the next attempt."),
    )


@rule("JOB002", Finding.NEEDS_REVIEW)
def needs_review(case: CaseFile, context: Context) -> Found | None:
    """A person must decide, so nothing is repaired and Finance is told (RB-001 section 6): the
    saga stopped for review (a second purchase by an owner who has a tenant), or the tenant,
    whose stores all agree, was suspended or cancelled by hand (one with a subscription is held by
    its lifecycle: `tenant_held`), a deliberate state and no provisioning failure. It comes before
    the missing-record rules: a job stopped for review has no tenant of its own yet, and that is
    as it should be."""
    job, tenant = case.job, case.tenant
    if job is not None and job.status is JobStatus.NEEDS_REVIEW:
        return Found(
            f"Provisioning stopped for a human decision: {shown(job.review_reason)}.",
            NextStep("Decide with the customer: refund the payment, or provision a second tenant by hand."),
            ESCALATION["finance"],
        )
    if tenant is None or tenant.status not in _DELIBERATE or not owner_linked(case):
        return None
    if case.subscription is not None and case.subscription.tenant_id == tenant.tenant_id:
        return None  # its subscription's lifecycle holds it: `tenant_held`, no decision to make
    return Found(
        f"Tenant {tenant.tenant_id} is {tenant.status.value}: a deliberate state, not a provisioning failure.",
        NextStep("Check the billing history before changing it."),
        ESCALATION["finance"],
    )


def _still_moving(case: CaseFile, context: Context) -> bool:
    """Whether an unfinished job is still in a worker's hands: its message waits in the work
    queue (where the queue can show it; SQS cannot show messages in flight), its retry is due
    soon, or it moved recently. A job that stalled for longer is treated as lost."""
    job = case.job
    if job is None:
        return False
    if any(not message.dead_lettered for message in case.messages):
        return True
    if case.messages:  # only dead letters: no worker will see it again
        return False
    if job.status is JobStatus.RETRYING and job.next_attempt_at:
        return parse_timestamp(job.next_attempt_at) + STALLED_AFTER > context.now
    return parse_timestamp(job.updated_at) + STALLED_AFTER > context.now
